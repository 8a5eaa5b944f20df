/*
 * routers: the server's traffic router, made of one router per place a region's proxy runs.
 *
 * The reconciler, the verifier and the executor see one router (router.h). Behind it, a
 * route "service.env.region" goes to the router of its region, chosen by the region's runtime
 * (runtimes_get): the built-in proxy on this machine (router_proxy, `given`) for local regions
 * and for regions not resolved yet; a hosted router (router_hosted: a proxy on each Docker
 * host, run by the region's runtime from its proxy_image) for a docker region, made the
 * first time one of its routes is touched. router_ensure makes every one of them run but
 * fails only for the local proxy: a region whose proxies do not answer fails its own puts
 * (its routes are tried again on the next pass) and nothing else. The counters snapshot is
 * the union of every router's routes, held as of the oldest snapshot among the routers that
 * have proxies.
 *
 * token: the proxies' admin API token (NULL: none), handed to the hosted routers it makes.
 * Ownership: takes `local` (freed with the set); rs stays the caller's and must outlive it.
 * NULL when out of memory (local is then freed). Not thread-safe: the server's loop thread.
 */
#ifndef SLUICE_ROUTERS_H
#define SLUICE_ROUTERS_H

#include "router/router.h"
#include "server/runtimes.h"

router *routers_new(runtimes *rs, router *local, const char *token);

#endif
