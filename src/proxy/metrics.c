#include "proxy/metrics.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/strmap.h"

struct metrics {
	unsigned nworkers;
	struct metrics_series **series;
	size_t n, cap;
	strmap *index; /* "route\nversion" -> series */
	struct buf bounds; /* the constant "bounds" array of the JSON, formatted once */
	size_t bound_end[HIST_BUCKETS]; /* bounds.data[0, bound_end[k]): "[" and bounds 0..k */
	size_t *order, norder; /* the series sorted by route and version, as of n == norder */
};

/* Appends decimal v: the snapshot writes ~750 numbers per series, printf would dominate. */
static int add_u64(struct buf *b, uint64_t v)
{
	char tmp[24];
	size_t i = sizeof(tmp);
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return buf_add(b, tmp + i, sizeof(tmp) - i);
}

/* The sum of one series over its workers. Only hist[0, nb) is written: the counts beyond are
 * 0 (no worker ever counted there) and are not cleared, 3 KB per series for nothing. */
struct total {
	uint64_t requests, responses[5], upstream_errors, latency_sum_us;
	int64_t in_flight;
	size_t nb;
	uint64_t hist[HIST_BUCKETS];
};

metrics *metrics_new(unsigned nworkers)
{
	metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->nworkers = nworkers;
	if (!(m->index = strmap_new())) {
		free(m);
		return NULL;
	}
	buf_init(&m->bounds, BUF_NOLIMIT);
	int rc = buf_adds(&m->bounds, "[");
	for (size_t k = 0; k < HIST_FINITE; k++) {
		rc |= add_u64(&m->bounds, hist_bound(k));
		m->bound_end[k] = m->bounds.len;
		rc |= buf_adds(&m->bounds, ",");
	}
	rc |= buf_adds(&m->bounds, "-1");
	m->bound_end[HIST_BUCKETS - 1] = m->bounds.len;
	if (rc) {
		buf_release(&m->bounds);
		strmap_free(m->index);
		free(m);
		return NULL;
	}
	return m;
}

void metrics_free(metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++) {
		free(m->series[i]->cells);
		free(m->series[i]);
	}
	free(m->series);
	free(m->order);
	strmap_free(m->index);
	buf_release(&m->bounds);
	free(m);
}

struct metrics_series *metrics_series(metrics *m, const char *route, const char *version)
{
	if (strlen(route) >= ROUTE_NAME_MAX || strlen(version) >= ROUTE_VERSION_MAX)
		return NULL;
	char key[ROUTE_NAME_MAX + ROUTE_VERSION_MAX + 2];
	snprintf(key, sizeof(key), "%s\n%s", route, version); /* neither holds a newline */
	struct metrics_series *found = strmap_get(m->index, key);
	if (found)
		return found;
	if (m->n >= METRICS_MAX_SERIES)
		return NULL;
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		struct metrics_series **p = realloc(m->series, cap * sizeof(*p));
		if (!p)
			return NULL;
		m->series = p;
		m->cap = cap;
	}
	struct metrics_series *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cells = aligned_alloc(64, sizeof(struct metrics_cell) * m->nworkers);
	if (!s->cells) {
		free(s);
		return NULL;
	}
	memset(s->cells, 0, sizeof(struct metrics_cell) * m->nworkers);
	strcpy(s->route, route);
	strcpy(s->version, version);
	if (strmap_put(m->index, key, s)) {
		free(s->cells);
		free(s);
		return NULL;
	}
	m->series[m->n++] = s;
	return s;
}

#define LD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

static void sum(const metrics *m, const struct metrics_series *s, struct total *t)
{
	memset(t, 0, offsetof(struct total, hist));
	for (unsigned w = 0; w < m->nworkers; w++) {
		size_t nb = (size_t)LD(&s->cells[w].nb);
		if (nb > t->nb)
			t->nb = nb < HIST_BUCKETS ? nb : HIST_BUCKETS;
	}
	memset(t->hist, 0, t->nb * sizeof(t->hist[0]));
	for (unsigned w = 0; w < m->nworkers; w++) {
		const struct metrics_cell *c = &s->cells[w];
		t->requests += LD(&c->requests);
		for (int k = 0; k < 5; k++)
			t->responses[k] += LD(&c->responses[k]);
		t->upstream_errors += LD(&c->upstream_errors);
		t->in_flight += LD(&c->in_flight);
		t->latency_sum_us += LD(&c->latency_sum_us);
		/* only the buckets a worker ever counted in: at thousands of routes most
		 * histograms use a few of their 369 (a count newer than the nb read above
		 * is in the next snapshot) */
		for (size_t k = 0; k < t->nb; k++)
			t->hist[k] += LD(&c->hist[k]);
	}
	/* A reader may see a decrement before the matching increment of another counter. */
	if (t->in_flight < 0)
		t->in_flight = 0;
}

/* Series sorted by route so the JSON groups them; indexes into m->series. */
static int by_route(const void *a, const void *b, void *arg)
{
	const metrics *m = arg;
	const struct metrics_series *x = m->series[*(const size_t *)a], *y = m->series[*(const size_t *)b];
	int c = strcmp(x->route, y->route);
	return c ? c : strcmp(x->version, y->version);
}

/* The order (kept: series are only ever added, so it is sorted again only when there are
 * new ones, not at every snapshot), or NULL when out of memory. */
static const size_t *sorted(metrics *m)
{
	if (m->order && m->norder == m->n)
		return m->order;
	size_t *idx = realloc(m->order, (m->n ? m->n : 1) * sizeof(*idx));
	if (!idx)
		return NULL;
	for (size_t i = 0; i < m->n; i++)
		idx[i] = i;
	qsort_r(idx, m->n, sizeof(*idx), by_route, (void *)m);
	m->order = idx;
	m->norder = m->n;
	return idx;
}

int metrics_json(metrics *m, uint64_t time_ms, struct buf *out)
{
	const size_t *idx = sorted(m);
	if (!idx)
		return -1;
	struct total *t = malloc(sizeof(*t));
	if (!t)
		return -1;
	int rc = buf_addf(out, "{\"time_ms\":%llu,\"routes\":{", (unsigned long long)time_ms);
	const char *prev = NULL;
	for (size_t i = 0; i < m->n && !rc; i++) {
		const struct metrics_series *s = m->series[idx[i]];
		sum(m, s, t);
		if (!prev || strcmp(prev, s->route))
			rc |= buf_adds(out, prev ? "}},\"" : "\"") | buf_adds(out, s->route) |
			      buf_adds(out, "\":{\"versions\":{");
		else
			rc |= buf_adds(out, ",");
		prev = s->route;
		/* Route and version names are validated tokens: no JSON escaping needed. Numbers
		 * by hand: printf was a third of a snapshot's time at thousands of series. */
		rc |= buf_adds(out, "\"") | buf_adds(out, s->version) |
		      buf_adds(out, "\":{\"requests\":") | add_u64(out, t->requests) |
		      buf_adds(out, ",\"responses\":{\"1xx\":") | add_u64(out, t->responses[0]) |
		      buf_adds(out, ",\"2xx\":") | add_u64(out, t->responses[1]) |
		      buf_adds(out, ",\"3xx\":") | add_u64(out, t->responses[2]) |
		      buf_adds(out, ",\"4xx\":") | add_u64(out, t->responses[3]) |
		      buf_adds(out, ",\"5xx\":") | add_u64(out, t->responses[4]) |
		      buf_adds(out, "},\"upstream_errors\":") | add_u64(out, t->upstream_errors) |
		      buf_adds(out, ",\"in_flight\":") | add_u64(out, (uint64_t)t->in_flight) |
		      buf_adds(out, ",\"latency_sum_us\":") | add_u64(out, t->latency_sum_us) |
		      buf_adds(out, ",\"latency_us\":{\"bounds\":");
		/* the buckets up to the last one that is not empty: at thousands of routes, most
		 * idle, the full 369 of each series made megabytes for the admin thread to write
		 * and the control plane to parse */
		size_t nb = t->nb;
		while (nb && !t->hist[nb - 1])
			nb--;
		rc |= nb ? buf_add(out, m->bounds.data, m->bound_end[nb - 1]) : buf_adds(out, "[");
		rc |= buf_adds(out, "],\"counts\":[");
		for (size_t k = 0; k < nb; k++)
			rc |= (k ? buf_add(out, ",", 1) : 0) | add_u64(out, t->hist[k]);
		rc |= buf_adds(out, "]}}");
	}
	rc |= buf_adds(out, prev ? "}}}}" : "}}");
	free(t);
	return rc ? -1 : 0;
}

int metrics_prometheus(metrics *m, struct buf *out)
{
	static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
	struct total *t = malloc(sizeof(*t) * (m->n ? m->n : 1));
	if (!t)
		return -1;
	for (size_t i = 0; i < m->n; i++)
		sum(m, m->series[i], &t[i]);
	int rc = 0;
#define LBL "route=\"%s\",version=\"%s\""
	rc |= buf_adds(out, "# HELP sluice_proxy_requests_total Requests routed to a version.\n"
			    "# TYPE sluice_proxy_requests_total counter\n");
	for (size_t i = 0; i < m->n; i++)
		rc |= buf_addf(out, "sluice_proxy_requests_total{" LBL "} %llu\n", m->series[i]->route,
			       m->series[i]->version, (unsigned long long)t[i].requests);
	rc |= buf_adds(out, "# HELP sluice_proxy_responses_total Responses sent, by status class.\n"
			    "# TYPE sluice_proxy_responses_total counter\n");
	for (size_t i = 0; i < m->n; i++)
		for (int k = 0; k < 5; k++)
			rc |= buf_addf(out, "sluice_proxy_responses_total{" LBL ",class=\"%s\"} %llu\n",
				       m->series[i]->route, m->series[i]->version, classes[k],
				       (unsigned long long)t[i].responses[k]);
	rc |= buf_adds(out, "# HELP sluice_proxy_upstream_errors_total Connect failures, resets and "
			    "timeouts talking to a backend.\n"
			    "# TYPE sluice_proxy_upstream_errors_total counter\n");
	for (size_t i = 0; i < m->n; i++)
		rc |= buf_addf(out, "sluice_proxy_upstream_errors_total{" LBL "} %llu\n",
			       m->series[i]->route, m->series[i]->version,
			       (unsigned long long)t[i].upstream_errors);
	rc |= buf_adds(out, "# HELP sluice_proxy_in_flight Requests being proxied now.\n"
			    "# TYPE sluice_proxy_in_flight gauge\n");
	for (size_t i = 0; i < m->n; i++)
		rc |= buf_addf(out, "sluice_proxy_in_flight{" LBL "} %lld\n", m->series[i]->route,
			       m->series[i]->version, (long long)t[i].in_flight);
	rc |= buf_adds(out, "# HELP sluice_proxy_request_duration_seconds Time from the request head "
			    "to the end of the response.\n"
			    "# TYPE sluice_proxy_request_duration_seconds histogram\n");
	for (size_t i = 0; i < m->n && !rc; i++) {
		uint64_t cum = 0, total = 0;
		for (size_t k = 0; k < t[i].nb; k++)
			total += t[i].hist[k];
		/* Every 4th bound keeps the exposition small; cumulative counts stay exact. */
		for (size_t k = 0; k < HIST_FINITE; k++) {
			cum += k < t[i].nb ? t[i].hist[k] : 0;
			if (k % 4 == 3)
				rc |= buf_addf(out, "sluice_proxy_request_duration_seconds_bucket{" LBL
					       ",le=\"%.6g\"} %llu\n", m->series[i]->route,
					       m->series[i]->version, (double)hist_bound(k) / 1e6,
					       (unsigned long long)cum);
		}
		rc |= buf_addf(out, "sluice_proxy_request_duration_seconds_bucket{" LBL ",le=\"+Inf\"} %llu\n"
			       "sluice_proxy_request_duration_seconds_sum{" LBL "} %.6f\n"
			       "sluice_proxy_request_duration_seconds_count{" LBL "} %llu\n",
			       m->series[i]->route, m->series[i]->version, (unsigned long long)total,
			       m->series[i]->route, m->series[i]->version,
			       (double)t[i].latency_sum_us / 1e6, m->series[i]->route,
			       m->series[i]->version, (unsigned long long)total);
	}
#undef LBL
	free(t);
	return rc ? -1 : 0;
}
