/*
 * worker: the proxy's data path. One worker = one thread = one event loop, with its own
 * SO_REUSEPORT listener per route, its own client connections and its own upstream keep-alive
 * pools; workers share nothing on the hot path but relaxed per-worker counters.
 *
 * The admin side (proxy.c) owns the route table and talks to workers only through messages
 * (a mutex-protected queue plus an eventfd): "route NAME is now R", "route NAME is gone",
 * "stop". Routes and backends are immutable once published, except the few atomics documented
 * below, and reference-counted: a worker holds one reference per route it knows and counts its
 * own requests on it locally, so replacing a route never waits for and never disturbs the
 * requests already using the old one.
 */
#ifndef SLUICE_PROXY_WORKER_H
#define SLUICE_PROXY_WORKER_H

#include <pthread.h>
#include <stdint.h>

#include "proxy/metrics.h"
#include "proxy/route.h"

struct proxy_limits {
	size_t max_head;
	size_t max_headers;
	uint64_t max_body;
	unsigned max_conns; /* for the whole proxy; each worker gets its share */
	unsigned client_timeout_ms;
	unsigned upstream_timeout_ms;
};

/* Passive health checking: this many consecutive upstream errors (connect failure, reset,
 * timeout) eject a backend for EJECT_MS, unless it is the last usable one of its version. */
#define PROXY_EJECT_FAILS 5
#define PROXY_EJECT_MS 10000

struct uconn;

/* One worker's view of a backend: written by that worker only. */
struct backend_w {
	int64_t in_flight; /* relaxed atomic: the admin thread reads it */
	struct uconn *idle; /* keep-alive pool (LIFO) */
	unsigned nidle;
} __attribute__((aligned(64)));

struct backend {
	int refs; /* atomic */
	struct route_addr addr;
	int removed;             /* atomic: no longer in the route's current version set */
	unsigned fails;          /* atomic: consecutive upstream errors */
	uint64_t ejected_until;  /* atomic: monotonic ms */
	struct backend_w *w;     /* [nworkers] */
};

struct rversion {
	struct metrics_series *m;
	size_t nb;
	struct backend **b; /* references held */
};

struct route {
	int refs; /* atomic */
	struct route_cfg cfg;
	struct rversion v[ROUTE_MAX_VERSIONS];
};

void route_ref(struct route *r);
void route_unref(struct route *r);
void backend_unref(struct backend *b);

/*
 * Shared listeners (routes with hosts) are announced before the first route that uses them
 * (WMSG_LISTEN) and withdrawn after the last one left them (WMSG_UNLISTEN); messages are
 * applied in order, so a route never names a listener its worker does not know.
 */
enum wmsg_kind { WMSG_ROUTE, WMSG_DELETE, WMSG_LISTEN, WMSG_UNLISTEN, WMSG_STOP };

struct wmsg {
	struct wmsg *next;
	enum wmsg_kind kind;
	char name[ROUTE_NAME_MAX];
	struct route *r; /* WMSG_ROUTE: one reference, handed to the worker */
	int lfd;         /* WMSG_ROUTE: a new listener of the route's own (the old one is closed),
			  * or -1; WMSG_LISTEN: the shared listener's socket for this worker */
	unsigned lid;    /* WMSG_ROUTE: the shared listener whose table takes the route's hosts
			  * (0: the route's own listener); WMSG_LISTEN, WMSG_UNLISTEN: which one */
};

typedef struct worker worker;

/* Creates worker `id` of n; it starts running with worker_start. NULL when out of resources. */
worker *worker_new(unsigned id, unsigned n, const struct proxy_limits *lim);
int worker_start(worker *w);
/*
 * Queues a message (taking ownership of it) and wakes the worker. One sending thread only.
 * Returns the message's sequence number: the worker has applied it once worker_applied
 * reaches it (used to report a removed backend "drained" only when no worker can still pick it).
 */
uint64_t worker_send(worker *w, struct wmsg *m);
uint64_t worker_applied(const worker *w);
/* Waits for the thread to end (after WMSG_STOP) and frees everything. */
void worker_join_free(worker *w);

#endif
