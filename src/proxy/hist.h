/*
 * hist: the latency histogram of the proxy's metrics, log-linear buckets in microseconds.
 *
 * Bucket i counts observations v with bounds[i-1] < v <= bounds[i] (bounds[-1] = -inf). The
 * first 16 bounds are 1..16 us; above 16 us every power of two is split into 16 equal buckets,
 * so a bucket is at most 1/16 (6.25%) of its lower bound wide and a quantile read at the
 * bucket's midpoint is within ~3% of the truth. Finite bounds end at 2^26 us (67 s); the last
 * bucket is +Inf, written as -1 in JSON. The layout is fixed at compile time so that every
 * worker, every snapshot and every reader agree without exchanging the bounds.
 */
#ifndef SLUICE_PROXY_HIST_H
#define SLUICE_PROXY_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_SUB 16
#define HIST_FINITE (16 + 22 * HIST_SUB) /* bounds 1..16, then 2^4..2^26 in 16ths */
#define HIST_BUCKETS (HIST_FINITE + 1)   /* plus +Inf */

/* Upper bound of bucket i in microseconds; UINT64_MAX for the +Inf bucket. */
uint64_t hist_bound(size_t i);
/* Index of the bucket that counts an observation of v microseconds. */
size_t hist_index(uint64_t v);
/*
 * Estimates quantile q (0..1) from counts[HIST_BUCKETS] by linear interpolation inside the
 * bucket that holds it. Returns 0 when there are no observations; an estimate in the +Inf
 * bucket returns the last finite bound.
 */
double hist_quantile(const uint64_t *counts, double q);
/* Number of observations strictly slower than bound(i) is the sum of counts after i. */
uint64_t hist_count_above(const uint64_t *counts, uint64_t threshold_us);

#endif
