/*
 * router: the traffic-router interface, what the control plane needs from whatever splits a
 * service's traffic between its versions.
 *
 * The reconciler keeps one route per service x environment x region ("service.env.region"):
 * a port it is reached on, and weighted versions, each with the endpoints ("host:port") of
 * its instances. It puts the route on every pass, reads the route's drain state before it
 * stops an instance that left it, and deletes the route when no version may take traffic.
 * The verifier reads the per-version counters. Everything else (a process to start, an admin
 * API, JSON bodies, a Gateway API object, which host a route listens on) belongs to the
 * driver behind the operation table below.
 *
 * Drivers:
 *   - "proxy" (router_proxy.c): the built-in `sluice proxy`, started in its own session so it
 *     outlives the server, driven through its admin API (docs/proxy.md).
 *   - "hosted" (router_hosted.c): the same proxy run by a region's runtime on each of its
 *     hosts (a container of the sluice binary on every Docker host of the region).
 * A Gateway API (Kubernetes) driver implements the same table and
 * must pass the conformance suite, tests/unit/router/conformance.h.
 *
 * Invariants every driver keeps:
 *   - router_put_route is idempotent and cheap: a route identical to the last one put
 *     successfully (since the last change of router_generation) is not sent again, so
 *     calling it on every reconcile pass costs nothing.
 *   - a put replaces the route atomically: a request is served by the old or the new route,
 *     never dropped; a backend that leaves the route drains (it receives no new request and
 *     finishes those in flight) and router_route_state says when it is drained.
 *   - router_generation changes whenever what was put may be lost (another router process
 *     answers, the router stopped answering): a caller that saw the same number has nothing
 *     to send again; one that sees another number puts its routes again.
 *
 * Threads: a router belongs to the thread that created it (the server's loop thread); it is
 * not locked. Calls may block for at most a few seconds (an admin request, a process start),
 * except the reads that repeat (health, counters), which go in the background once a fetcher
 * is given (router_use_fetcher).
 *
 * Errors: int return, 0 success, -1 with a message in e that names the route and what the
 * router answered. A failed put or delete changes nothing the caller relies on: it is tried
 * again on the next pass.
 */
#ifndef SLUICE_ROUTER_H
#define SLUICE_ROUTER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "loop/fetch.h"
#include "runtime/runtime.h"
#include "util/log.h"

typedef struct router router;

/* Limits of a route (those of the built-in proxy, the tightest driver): longer names or more
 * versions or backends are refused with an error by router_put_route. */
#define ROUTER_NAME_MAX 192    /* route names, NUL included */
#define ROUTER_VERSION_MAX 80  /* version names, NUL included */
#define ROUTER_ENDPOINT_MAX 262 /* "host:port" or "[v6]:port", NUL included */
#define ROUTER_MAX_VERSIONS 16
#define ROUTER_MAX_BACKENDS 256 /* per version */

/* The control plane's name of the route of a service in an env/region: "service.env.region"
 * (three names of at most 63 bytes fit ROUTER_NAME_MAX). */
void router_route_name(char *buf, size_t len, const char *service, const char *env,
		       const char *region);

/* One version of a route: its share of the traffic and where its instances answer. */
struct router_version {
	const char *name;             /* [A-Za-z0-9._+~-]+ */
	long long weight;             /* 0..10^9, on any scale; the shares are weight / sum */
	const char *const *backends;  /* nbackends distinct endpoints "host:port" */
	size_t nbackends;             /* 1..ROUTER_MAX_BACKENDS */
};

/* A route as the control plane wants it. The router only reads it during the call. */
struct router_route {
	const char *name;                      /* [A-Za-z0-9._-]+ */
	int port;                              /* where clients reach it (see router_route_endpoint) */
	const struct router_version *versions; /* 1..ROUTER_MAX_VERSIONS, at least one weight > 0 */
	size_t nversions;
	/* Routing by Host: with nhosts > 0 the listener on `port` is shared by every route that
	 * names hosts on it, and a request reaches this route when its Host is one of hosts
	 * (names, or wildcards "*.example.com") and its path is under path_prefix (NULL: all). With
	 * nhosts 0 the listener on `port` is the route's own. */
	const char *const *hosts;
	size_t nhosts;
	const char *path_prefix;
};

/* Where one backend of a route stands, as router_route_state reports it. */
enum router_backend_phase {
	ROUTER_BACKEND_ACTIVE,   /* in the route: receives requests */
	ROUTER_BACKEND_EJECTED,  /* in the route, set aside by a health check for now */
	ROUTER_BACKEND_DRAINING, /* left the route, requests in flight (or not yet seen by all) */
	ROUTER_BACKEND_DRAINED,  /* left the route, nothing can reach it: safe to stop */
};

struct router_backend {
	char version[ROUTER_VERSION_MAX];
	char addr[ROUTER_ENDPOINT_MAX];
	enum router_backend_phase phase;
	uint64_t in_flight;
};

/* The operation table of a driver. Every entry is required; the router_* functions below
 * dispatch to them and document the contract. */
struct router_ops {
	const char *kind; /* "proxy", ... */
	void (*free)(router *r);
	void (*use_fetcher)(router *r, fetcher *f);
	uint64_t (*generation)(const router *r);
	int (*ensure)(router *r, struct err *e);
	int (*route_endpoint)(router *r, const char *name, int port, char *buf, size_t len);
	int (*put_route)(router *r, const struct router_route *route, struct err *e);
	int (*delete_route)(router *r, const char *name, struct err *e);
	int (*route_state)(router *r, const char *name, struct router_backend **out, size_t *n,
			   struct err *e);
	const json_t *(*latest_metrics)(router *r, uint64_t *at);
	void (*stop)(router *r);
};

/* For drivers: the first member of every driver's own struct. */
struct router {
	const struct router_ops *ops;
};

/* ---- drivers ---- */

/*
 * The built-in proxy (kind "proxy"). admin: "host:port" of its admin API; exe: path of the
 * sluice binary that runs `sluice proxy`; dir: where the proxy's config, pid file and log
 * live (it must exist). token: the admin API's bearer token (NULL or "": none), sent with
 * every call and handed to a proxy it starts through $SLUICE_PROXY_TOKEN (docs/proxy.md).
 * Routes listen on 127.0.0.1. Starts nothing yet (router_ensure does). Returns NULL when out
 * of memory, a string does not fit or the token has a blank.
 */
router *router_proxy_new(const char *admin, const char *exe, const char *dir, const char *token);
/* The same driver for a `sluice proxy` that something else runs (a runtime, router_hosted):
 * router_ensure only checks that it answers on admin, router_stop only forgets what was put.
 * ca (NULL or "": plain HTTP): the admin API speaks TLS, its certificate signed by a CA in
 * this PEM file and naming admin's host. */
router *router_proxy_remote(const char *admin, const char *token, const char *ca);

/*
 * The proxies of one region run by the region's runtime (kind "hosted", router_hosted.c):
 * `count` instances of `sluice proxy --admin {host}:{port}` from `image` (the runtime's
 * artifact: for a docker runtime, an image of the sluice binary) as the service
 * ROUTER_HOSTED_SERVICE of env/region, one per host. Every call goes to each healthy one:
 * routes are put on all of them, a backend's drain state is the busiest of theirs, and the
 * counters snapshot is their sum (per route, version and counter), so verification reads a
 * region on several hosts as it reads one proxy. Their routes listen on 127.0.0.1 of their
 * host (host networking); router_route_endpoint names the host of the first one.
 * router_ensure makes the instances run (runtime_ensure: idempotent) and fails while none
 * is healthy. rt stays the caller's and must outlive the router. token: the admin API's
 * bearer token (NULL or "": none), given to each proxy as $SLUICE_PROXY_TOKEN and sent with
 * every call. NULL when out of memory.
 */
#define ROUTER_HOSTED_SERVICE "sluice-proxy"
#define ROUTER_HOSTED_VERSION "router"
/* The proxies' admin API over TLS (paths; the runtime's proxy_tls setting): each proxy gets
 * the certificate and key as PEM text in its environment and listens on every address of its
 * host (a tcp:// host's proxy is reached over the network), with its token; the router and
 * the runtime's health check verify it against ca. NULL: plain HTTP on the host's loopback. */
struct router_hosted_tls {
	const char *cert, *key, *ca;
};
router *router_hosted_new(runtime *rt, const char *env, const char *region, const char *image,
			  unsigned count, const char *token, const struct router_hosted_tls *tls);

/* ---- life cycle ---- */

/* The driver's kind ("proxy"). */
const char *router_kind(const router *r);
/* Frees the router (NULL is fine). What runs (the proxy and its routes) keeps running. */
void router_free(router *r);
/* Reads that repeat (health, the counters snapshot) then go in the background on f's loop
 * instead of blocking. NULL cancels them and goes back to blocking reads: do that before
 * freeing f. */
void router_use_fetcher(router *r, fetcher *f);
/* Makes sure the router runs and answers (starts it when it does not); 0 when it answers.
 * When it had to be (re)started, everything put before is forgotten, so the next puts are sent
 * again (router_generation changes when another process than the last one answers). With a fetcher, a router that answered stays trusted until
 * a background check (started from here) says otherwise: the caller is not blocked then. */
int router_ensure(router *r, struct err *e) __attribute__((warn_unused_result));
/* A number that changes when the router's health changes or another router process answers
 * (see the invariants above). */
uint64_t router_generation(const router *r);
/* Asks what runs (the proxy) to exit, and forgets what was put. */
void router_stop(router *r);

/* ---- routes ---- */

/* The endpoint "host:port" at which clients (other services, the stage's traffic) reach the
 * route `name` that listens on `port`, into buf. The route need not exist yet. Returns 0, or
 * -1 when it does not fit in len or port is not 1..65535. */
int router_route_endpoint(router *r, const char *name, int port, char *buf /* OUT */, size_t len)
	__attribute__((warn_unused_result));
/* Creates or atomically replaces route->name, unless identical to the last successful put. */
int router_put_route(router *r, const struct router_route *route, struct err *e)
	__attribute__((warn_unused_result));
/* Deletes the route; one that does not exist is success. Requests in flight finish. */
int router_delete_route(router *r, const char *name, struct err *e) __attribute__((warn_unused_result));
/* The backends of the route with their phase, those that left it and still drain included.
 * *out (malloc'd, the caller frees it; NULL when *n is 0) and *n are set on success. A route
 * that does not exist is an error. */
int router_route_state(router *r, const char *name, struct router_backend **out /* OUT */,
		       size_t *n /* OUT */, struct err *e) __attribute__((warn_unused_result));
/* Is a backend `addr` of this state still receiving (active) or finishing (in flight)
 * requests? An instance the caller wants to stop must not be, for a while. */
int router_backend_busy(const struct router_backend *b, size_t n, const char *addr);

/* ---- counters ---- */

/*
 * The latest per-version counters snapshot and the loop time its request went out (*at: it
 * holds everything counted before then), or NULL (*at 0) before the first; starts reading
 * the next one in the background unless one is on its way. Needs a fetcher. The snapshot has
 * the shape of the proxy's GET /v1/metrics (docs/proxy.md: routes.NAME.versions.VERSION with
 * requests, responses by class, latency_us buckets); another driver translates its counters
 * into that shape. The router owns it: valid until the next call on r (json_incref to keep).
 */
const json_t *router_latest_metrics(router *r, uint64_t *at /* OUT */);

#endif
