/*
 * gate: can-i-deploy and plans against the server's own record of what is live: the stable
 * releases in the store, the deployments in flight, and every version whose instances the
 * regions' runtimes run. A version that may be live and cannot be read fails the check (it is
 * never left out). Both return a new report (src/contract/plan.h describes it), or NULL with
 * e (an unknown service or environment is named; a store failure starts with "store: ").
 */
#ifndef SLUICE_GATE_H
#define SLUICE_GATE_H

#include <jansson.h>

#include "server/catalog.h"
#include "server/runtimes.h"
#include "store/store.h"
#include "util/log.h"

/* cat: the server's catalog (borrowed), or NULL for one of the call's own (each manifest then
 * parsed again by the call). */
json_t *gate_can_i_deploy(store *s, runtimes *rts, catalog *cat, const char *service,
			  const char *version, const char *env, struct err *e);
/* targets: {"service": "version", ...} */
json_t *gate_plan(store *s, runtimes *rts, catalog *cat, const json_t *targets, const char *env,
		  struct err *e);

#endif
