/*
 * mannwhitney: the Mann-Whitney U (Wilcoxon rank-sum) test with the Hodges-Lehmann shift
 * estimate and its confidence interval, computed the way R's
 * wilcox.test(canary, baseline, conf.int = TRUE) does, so results can be checked against R and
 * scipy.stats.mannwhitneyu.
 *
 * Conventions: x is the canary (R's first argument), y the baseline. U is the statistic of x
 * (R's W, scipy's U1): the number of pairs (x_i, y_j) with x_i > y_j, ties counting 1/2.
 * The shift is "canary minus baseline": a positive estimate means the canary is larger.
 *
 * Method (MW_AUTO follows R's default): the exact null distribution when both samples have
 * fewer than 50 values and there are no ties; otherwise the normal approximation with
 * tie-corrected variance and (when `correct`) a continuity correction of 1/2.
 * Exact interval: order statistics of the n_x * n_y pairwise differences; exact estimate: their
 * median. Asymptotic interval and estimate: roots of the standardized statistic as a function
 * of the shift, found with Brent's method to tolerance 1e-4 (R's uniroot default here).
 *
 * Pure: no I/O. mw_test allocates working memory internally and frees it before returning.
 */
#ifndef SLUICE_MANNWHITNEY_H
#define SLUICE_MANNWHITNEY_H

#include <stddef.h>

#include "util/log.h"

/* Hard limits: each sample at most this many values; the exact method at most this many
 * pairs (the exact distribution costs n_x * n_y * (n_x * n_y) additions). */
#define MW_MAX_N 2000000
#define MW_EXACT_MAX_PAIRS 10000

enum mw_alternative {
	MW_TWO_SIDED, /* the canary differs */
	MW_GREATER,   /* the canary is larger */
	MW_LESS,      /* the canary is smaller */
};

enum mw_method {
	MW_AUTO,       /* R's default: exact when both n < 50 and no ties */
	MW_EXACT,      /* exact distribution, ignoring ties (scipy's method='exact') */
	MW_ASYMPTOTIC, /* normal approximation */
};

struct mw_options {
	enum mw_alternative alternative;
	enum mw_method method;
	double conf_level; /* in (0, 1); R's default 0.95 */
	int correct;       /* continuity correction (R's and scipy's default: 1) */
	int conf_int;      /* compute the estimate and the interval */
};

struct mw_result {
	double u;        /* statistic of the canary (R's W) */
	double p;        /* p-value for the chosen alternative */
	double z;        /* standardized statistic (asymptotic method), NaN for exact */
	int exact;       /* 1 when the exact distribution was used */
	int ties;        /* 1 when the pooled sample has ties */
	double estimate; /* Hodges-Lehmann shift (canary - baseline); NaN without conf_int */
	double ci_lo;    /* interval; -INFINITY / +INFINITY for one-sided alternatives */
	double ci_hi;
};

/* R's defaults: two-sided, automatic method, 0.95, continuity correction, interval on. */
void mw_options_default(struct mw_options *o);

/*
 * Runs the test. Both samples need at least one value, no NaN or infinity, and at most MW_MAX_N
 * values. Returns 0, or -1 with a message in e (bad input, exact method asked for too many
 * pairs, out of memory). When every pooled value is the same, p is 1 and the interval is the
 * single shift between the samples (R gives NaN there).
 */
__attribute__((warn_unused_result)) int mw_test(const double *x, size_t nx, const double *y, size_t ny,
						const struct mw_options *o, struct mw_result *r /* OUT */,
						struct err *e);

/* Standard normal distribution function and its inverse (full double precision). */
double mw_pnorm(double z);
double mw_qnorm(double p);

#endif
