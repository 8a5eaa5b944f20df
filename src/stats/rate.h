/*
 * rate: one-sample tests of an event rate (errors, slow requests) against a fixed limit, for
 * the sequential method's absolute floors and the bake's comparison with a recorded rate.
 *
 * Pure arithmetic, no allocation, no state: the caller keeps the counts.
 */
#ifndef SLUICE_RATE_H
#define SLUICE_RATE_H

#include <stdint.h>

/*
 * Natural log of an e-value from `events` among `trials` Bernoulli trials against
 * H0: rate >= p0 (below = 1: evidence that the rate is below p0) or H0: rate <= p0 (below =
 * 0). A mixture with equal weights of the likelihood ratios of 8 alternatives, p0 times
 * 2^(-k/2) (below) or 2^(k/2) (above; kept under 1), k = 1..8: a nonnegative supermartingale
 * under H0, so rejecting when it reaches log(1/alpha) is valid at any time (Ville). -inf when
 * p0 is not in (0, 1) or events > trials.
 */
double rate_log_e(uint64_t events, uint64_t trials, double p0, int below);

/* Upper (1 - alpha) Wilson score bound of a rate from a recorded sample (looked at once, so a
 * fixed-sample bound); 1 with no trials. */
double rate_upper(uint64_t events, uint64_t trials, double alpha);

#endif
