/*
 * router: the traffic-router driver, i.e. the control plane's side of the built-in proxy.
 *
 * It makes sure one `sluice proxy` process runs (started in its own session so it outlives the
 * server; a restarted server finds it again through its admin address), and talks to the
 * proxy's admin API (docs/proxy.md): replace a route atomically, read a route's backend states
 * (draining, in flight), read the per-version metrics snapshot. A route is only sent when it
 * differs from what this router last sent successfully, so calling router_put_route on every
 * reconcile pass costs nothing. A Kubernetes driver would set Gateway API weights instead.
 */
#ifndef SLUICE_ROUTER_H
#define SLUICE_ROUTER_H

#include <jansson.h>
#include <stdint.h>

#include "loop/fetch.h"
#include "util/log.h"

typedef struct router router;

/* admin: "127.0.0.1:7071"; exe: path of the sluice binary; dir: where the proxy's config and
 * log live. Does not start anything yet. */
router *router_new(const char *admin, const char *exe, const char *dir);
void router_free(router *r);
/* Reads that repeat (the proxy's health, the metrics snapshot) then go in the background on f's
 * loop instead of blocking. NULL cancels them and goes back to blocking reads: do that before
 * freeing f. */
void router_use_fetcher(router *r, fetcher *f);
/* A number that changes when the proxy's health changes or another proxy process answers
 * (whose routes must be sent again): a reconciler that saw the same number has nothing new. */
uint64_t router_generation(const router *r);

/* Starts the proxy when its admin endpoint does not answer; returns 0 when it answers. When
 * it had to be (re)started, everything cached is forgotten so routes are sent again. With a
 * fetcher, a proxy that answered stays trusted until a background check (every second, started
 * from here) says otherwise: no request blocks the caller then. */
int router_ensure(router *r, struct err *e);

/* PUT /v1/routes/NAME unless identical to the last successful PUT. */
int router_put_route(router *r, const char *name, const json_t *route, struct err *e);
/* DELETE /v1/routes/NAME when this router sent it or does not know (a 404 is success). */
int router_delete_route(router *r, const char *name, struct err *e);
/* GET /v1/routes/NAME (with backends_state). */
int router_get_route(router *r, const char *name, json_t **out, struct err *e);
/* The latest metrics snapshot (GET /v1/metrics) and the loop time its request went out (*at:
 * it holds everything the proxy counted before then), or NULL before the first; starts
 * fetching the next one in the background unless one is on its way. Needs a fetcher. */
const json_t *router_latest_metrics(router *r, uint64_t *at);
/* Asks the proxy to exit (SIGTERM to the recorded pid). */
void router_stop(router *r);

#endif
