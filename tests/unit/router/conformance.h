/*
 * conformance: what every traffic-router driver (src/router/router.h) must do, as Criterion
 * checks parameterized by a factory. A driver's test file fills a router_factory and registers
 * one Test per check, each with its own base port, and router_conformance_fini as .fini:
 *
 *     static const struct router_factory proxy = {.kind = "proxy", .open = ..., ...};
 *     TestSuite(proxy, .fini = router_conformance_fini, .timeout = 60);
 *     Test(proxy, put_carries_weighted_traffic) { router_conformance_weighted(&proxy, 24110); }
 *
 * Real traffic: each check starts its backends here (HTTP servers on 127.0.0.1, kernel-chosen
 * ports) and sends requests to the endpoint router_route_endpoint names. A check uses the
 * loopback ports base..base+9 (the driver's own, e.g. the proxy's admin API, at base; routes
 * at base+1...): give every check its own base, below 32768 and used by no other test, as
 * Criterion may run them at the same time.
 *
 * What a check leaves behind (the router's processes, the temporary directory, backends) is
 * stopped by router_conformance_fini, also after a failed assertion.
 */
#ifndef SLUICE_TEST_ROUTER_CONFORMANCE_H
#define SLUICE_TEST_ROUTER_CONFORMANCE_H

#include "router/router.h"

struct router_factory {
	const char *kind; /* must equal router_kind() of what open returns */
	void *ctx;        /* the driver test's own */
	/* A new router that keeps its state in the fresh, empty directory dir and, when it needs
	 * an endpoint of its own (an admin API), uses 127.0.0.1:port. Starts nothing. NULL on
	 * failure. */
	router *(*open)(const struct router_factory *f, const char *dir, int port);
	/* Kills what runs behind r (the proxy process) abruptly, as a crash would: the driver is
	 * not told. 0, or -1 when there was nothing to kill. */
	int (*crash)(const struct router_factory *f, router *r, const char *dir, int port);
	/* Deletes the route `name` in the router itself, behind the driver's back (as an
	 * operator would): used to see whether an identical put is sent again. 0 or -1. */
	int (*drop_route)(const struct router_factory *f, const char *dir, int port, const char *name);
};

/* ensure starts the router and it answers; a second ensure is cheap and answers too. */
void router_conformance_ensure(const struct router_factory *f, int base);
/* A route with two weighted versions carries traffic to their backends in proportion. */
void router_conformance_weighted(const struct router_factory *f, int base);
/* A changed weight (and a changed backend list) is applied by the next put. */
void router_conformance_reweight(const struct router_factory *f, int base);
/* An identical put is not sent again; a changed one is; after a crash, it is sent again. */
void router_conformance_idempotent(const struct router_factory *f, int base);
/* delete removes the route (traffic is refused); deleting a missing route is success. */
void router_conformance_delete(const struct router_factory *f, int base);
/* route_state: a removed backend with a request in flight is busy (draining, in flight 1),
 * then drained once the request ends; the active ones are active. */
void router_conformance_drain(const struct router_factory *f, int base);
/* The counters snapshot (in the background, with a fetcher) counts requests per version. */
void router_conformance_counters(const struct router_factory *f, int base);
/* router_generation changes when the router process is replaced, and the routes go out
 * again. */
void router_conformance_generation(const struct router_factory *f, int base);
/* stop: the router no longer serves the route. */
void router_conformance_stop(const struct router_factory *f, int base);

/* Two routes with hosts share one port: each host reaches its route's backends, an unknown
 * host is refused (421 for the proxy), a wildcard added by a put is served, a deleted
 * route's host is refused while the other route still serves. */
void router_conformance_hosts(const struct router_factory *f, int base);

/* Stops and frees what the last check started (Criterion .fini). */
void router_conformance_fini(void);

#endif
