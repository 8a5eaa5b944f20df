/*
 * histo: a Prometheus histogram kept in memory (fixed bucket bounds, cumulative on output).
 *
 * Invariants: bounds are strictly increasing and outlive the histogram (a static table); at
 * most HISTO_MAX of them; counts[i] counts observations <= bounds[i] and > bounds[i - 1],
 * counts[n] those above the last bound. Observing never allocates and never fails.
 * Not thread-safe: one thread (the server's loop) observes and writes.
 */
#ifndef SLUICE_HISTO_H
#define SLUICE_HISTO_H

#include <stdint.h>

#include "util/buf.h"

#define HISTO_MAX 16

struct histo {
	const double *bounds;
	int n;
	uint64_t counts[HISTO_MAX + 1];
	uint64_t count;
	double sum;
};

/* Bucket bounds for durations in seconds: 1 ms to 60 s. */
extern const double histo_seconds[];
extern const int histo_seconds_n;

void histo_init(struct histo *h, const double *bounds, int n);
void histo_observe(struct histo *h, double v);
/* Appends the series of one histogram: NAME_bucket{LABELS,le="..."} (cumulative, +Inf last),
 * NAME_sum and NAME_count. labels: "" or 'key="value",...' (already escaped). The # HELP and
 * # TYPE lines are the caller's (one per metric name). Non-zero when b's limit was reached. */
int histo_write(const struct histo *h, struct buf *b, const char *name, const char *labels);

#endif
