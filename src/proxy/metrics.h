/*
 * metrics: per route x version counters of the proxy, written by the workers without locks
 * and merged on read by the admin thread.
 *
 * Each series (route name, version name) has one cell per worker, on its own cache lines. A
 * cell has a single writer (its worker), which updates it with relaxed atomic stores; the
 * admin thread sums the cells with relaxed loads, so a snapshot is consistent per counter, not
 * across counters (a request may be counted in `requests` before its response class). Series
 * are created by the admin thread only, before a route that uses them is published, and are
 * never freed while the proxy runs: counters are cumulative since start, across PUTs and
 * DELETEs. The number of series is capped (METRICS_MAX_SERIES).
 */
#ifndef SLUICE_PROXY_METRICS_H
#define SLUICE_PROXY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/hist.h"
#include "proxy/route.h"
#include "util/buf.h"

#define METRICS_MAX_SERIES 65536 /* 16,384 routes (MAX_ROUTES) x 4 versions */

struct metrics_cell {
	uint64_t requests;
	uint64_t responses[5]; /* 1xx..5xx */
	uint64_t upstream_errors;
	int64_t in_flight;
	uint64_t latency_sum_us;
	uint64_t nb; /* 1 + the highest bucket of hist ever counted: a reader sums no further */
	uint64_t hist[HIST_BUCKETS];
} __attribute__((aligned(64)));

struct metrics_series {
	char route[ROUTE_NAME_MAX];
	char version[ROUTE_VERSION_MAX];
	struct metrics_cell *cells; /* one per worker */
};

typedef struct metrics metrics;

metrics *metrics_new(unsigned nworkers);
void metrics_free(metrics *m);
/* Finds or creates the series (admin thread only). NULL when the cap is reached or no memory. */
struct metrics_series *metrics_series(metrics *m, const char *route, const char *version);

/* Hot path, called by worker `w` only. */
#define METRICS_ADD_(p, v) __atomic_store_n((p), __atomic_load_n((p), __ATOMIC_RELAXED) + (v), __ATOMIC_RELAXED)
static inline void metrics_begin(struct metrics_series *s, unsigned w)
{
	METRICS_ADD_(&s->cells[w].requests, 1);
	METRICS_ADD_(&s->cells[w].in_flight, 1);
}
/* status 0 = no response could be sent (client gone); upstream_error counts separately. */
static inline void metrics_end(struct metrics_series *s, unsigned w, int status, int upstream_error,
			       uint64_t latency_us)
{
	struct metrics_cell *c = &s->cells[w];
	METRICS_ADD_(&c->in_flight, -1);
	if (status >= 100 && status < 600)
		METRICS_ADD_(&c->responses[status / 100 - 1], 1);
	if (upstream_error)
		METRICS_ADD_(&c->upstream_errors, 1);
	METRICS_ADD_(&c->latency_sum_us, latency_us);
	size_t k = hist_index(latency_us);
	if (k >= __atomic_load_n(&c->nb, __ATOMIC_RELAXED))
		__atomic_store_n(&c->nb, (uint64_t)k + 1, __ATOMIC_RELAXED);
	METRICS_ADD_(&c->hist[k], 1);
}

/* The JSON snapshot of the admin API (see docs/proxy.md). Returns 0 or -1 (out of memory). */
int metrics_json(metrics *m, uint64_t time_ms, struct buf *out);
/* The Prometheus text exposition. Returns 0 or -1. */
int metrics_prometheus(metrics *m, struct buf *out);

#endif
