/*
 * analysis: the verdict of one verification window from the proxy's per-version counters.
 *
 * Pure. The executor takes a snapshot of the counters when a window begins (a new canary step)
 * and hands the differences since then to analysis_threshold, which compares the canary with
 * its configured limits and with the stable version: error rate, error-rate increase over
 * stable, and the 99th percentile of latency, once the canary has served min_requests.
 * Every verdict explains itself: the evidence object names each metric, its samples, the
 * observed value, the limit and the decision.
 */
#ifndef SLUICE_ANALYSIS_H
#define SLUICE_ANALYSIS_H

#include <jansson.h>
#include <stdint.h>

#include "core/pipeline.h"

#define ANALYSIS_MAX_BUCKETS 512 /* the proxy has 369 (docs/proxy.md) */

/* Counts for one version over a window (differences of cumulative counters). */
struct version_window {
	uint64_t requests;
	uint64_t errors; /* 5xx responses, the proxy's own 502/504 included */
	int nbuckets;
	double bounds_ms[ANALYSIS_MAX_BUCKETS]; /* upper bounds; the last may be +inf */
	uint64_t counts[ANALYSIS_MAX_BUCKETS];
};

struct analysis_limits {
	uint64_t min_requests;
	double max_error_rate;          /* absolute, 0..1 */
	double max_error_rate_increase; /* canary minus stable, 0..1 */
	double max_p99_ms;
	const char *reference; /* what the canary is compared with, for messages: "stable" (NULL) or
				* "baseline" */
};

/* Quantile q (0..1) of a window's latency, interpolated within its bucket; NaN when empty. */
double analysis_quantile(const struct version_window *w, double q);

/*
 * Judges the canary against the limits and the stable version (stable may be NULL on a first
 * release). Writes a one-line summary into msg and returns the verdict; *evidence (when not
 * NULL) receives a new JSON object the caller owns.
 */
enum pl_verdict analysis_threshold(const struct analysis_limits *lim,
				   const struct version_window *canary,
				   const struct version_window *stable, char *msg, size_t msglen,
				   json_t **evidence);

#endif
