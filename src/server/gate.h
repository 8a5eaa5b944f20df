/*
 * gate: can-i-deploy and plans against the server's own record of what is live.
 * Both return a new report (src/contract/plan.h describes it), or NULL with e.
 */
#ifndef SLUICE_GATE_H
#define SLUICE_GATE_H

#include "server/server.h"

json_t *gate_can_i_deploy(struct server *srv, const char *service, const char *version,
			  const char *env, struct err *e);
/* targets: {"service": "version", ...} */
json_t *gate_plan(struct server *srv, const json_t *targets, const char *env, struct err *e);

#endif
