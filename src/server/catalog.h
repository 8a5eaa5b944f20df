/*
 * catalog: what the control plane looks up about services and environments: their stored
 * manifests, the proxy port a service listens on in a region, the runtime that serves a region.
 *
 * Every lookup follows the store's contract: 0 with the answer, STORE_NOTFOUND when the
 * service, environment or region is unknown (e says which), -1 when the store (or opening a
 * runtime) failed (e). A failure is never an "unknown": callers that act on an answer (stop
 * instances, delete routes) must tell them apart. JSON handed out is a new reference.
 */
#ifndef SLUICE_CATALOG_H
#define SLUICE_CATALOG_H

#include <jansson.h>

#include "runtime/runtime.h"
#include "server/runtimes.h"
#include "store/store.h"
#include "util/log.h"

__attribute__((warn_unused_result)) int catalog_environment(store *s, const char *env,
							    json_t **out /* OUT */, struct err *e);
__attribute__((warn_unused_result)) int catalog_service(store *s, const char *service,
							json_t **out /* OUT */, struct err *e);
/* The proxy port of service svc in env/region: listen_port + the region's port_offset. Returns
 * the port, 0 when the service or region is unknown, -1 when the store failed (e). */
int catalog_listen_port(store *s, const char *env, const char *region, const char *svc,
			struct err *e);
/* The runtime of env/region, resolved from the Environment manifest the first time. */
__attribute__((warn_unused_result)) int catalog_runtime(store *s, runtimes *rts, const char *env,
							const char *region, runtime **out /* OUT */,
							struct err *e);

#endif
