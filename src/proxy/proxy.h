/*
 * proxy: the proxy's control side: the route table, the workers, the admin API.
 *
 * The admin thread (the one that calls these functions and runs the admin loop) owns the
 * table: it validates a route, builds the immutable shared objects the workers use (struct
 * route with its backends and metric series), opens the route's SO_REUSEPORT listeners (one
 * per worker, so bind errors are reported to the caller, not discovered by a worker), and
 * hands each worker a reference. Nothing here is thread-safe: one thread drives a proxy.
 */
#ifndef SLUICE_PROXY_PROXY_H
#define SLUICE_PROXY_PROXY_H

#include <jansson.h>

#include "http/tls.h"
#include "loop/loop.h"
#include "proxy/worker.h"
#include "util/log.h"

typedef struct proxy proxy;

/* Defaults of docs/proxy.md. */
void proxy_limits_default(struct proxy_limits *lim);
/* Reads a "limits" object onto lim (fields absent keep their value). Errors name the field. */
int proxy_limits_parse(const json_t *j, const char *path, struct proxy_limits *lim, struct err *e);

__attribute__((warn_unused_result)) int proxy_new(proxy **out, unsigned workers,
						  const struct proxy_limits *lim, struct err *e);
/* Starts the worker threads. */
__attribute__((warn_unused_result)) int proxy_start(proxy *p, struct err *e);
/*
 * Creates or atomically replaces a route from its JSON object. `name` (the URL's, or NULL for
 * the config file, where the object must carry it) wins over a "name" field, which must match.
 * `path` prefixes field paths in errors. Returns 0, or -1 with e set and nothing changed.
 */
__attribute__((warn_unused_result)) int proxy_route_put(proxy *p, const json_t *j, const char *name,
							const char *path, struct err *e);
/* Removes a route: its listeners close now, its connections after their in-flight request.
 * Returns 0, or -1 when there is no such route. */
int proxy_route_delete(proxy *p, const char *name);
/* The route object with "backends_state", or NULL when unknown (new reference). */
json_t *proxy_route_json(proxy *p, const char *name);
/* {"routes": [...]} (new reference). */
json_t *proxy_routes_json(proxy *p);
/* Serves the admin API on addr with loop l (the admin thread's). With a token (not NULL or
 * ""), every request but GET /healthz and GET /metrics must carry "Authorization: Bearer
 * TOKEN", else 401.
 * With tls (taken: freed by proxy_free, even when this fails), it speaks only TLS. */
__attribute__((warn_unused_result)) int proxy_admin_start(proxy *p, loop *l, const char *addr,
							  const char *token, tls_ctx *tls,
							  struct err *e);
int proxy_admin_port(const proxy *p);
/*
 * Optional persistence (--state FILE): after every successful PUT or DELETE the routes are
 * written to path (via a temporary file and rename, so a crash leaves the old or the new file).
 * proxy_state_load PUTs the routes saved there; a missing file is not an error.
 */
void proxy_state_file(proxy *p, const char *path);
__attribute__((warn_unused_result)) int proxy_state_load(proxy *p, struct err *e);
/* Stops accepting, lets in-flight requests finish, joins the workers and frees everything. */
void proxy_free(proxy *p);

#endif
