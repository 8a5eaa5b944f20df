/*
 * judge: a Kayenta-compatible canary judge (the behaviour of spinnaker/kayenta's
 * NetflixACAJudge with its MannWhitneyClassifier, reimplemented): each metric is classified
 * Pass / High / Low / Nodata from a Mann-Whitney test of canary against baseline, and the
 * classifications are combined into a weighted score with pass and marginal thresholds.
 *
 * Per metric (judge_metric), in this order:
 *   1. NaN values are removed, or replaced by 0 (Kayenta's default when nanStrategy is unset).
 *   2. Optionally, outliers are removed: values outside [Q1 - f IQR, Q3 + f IQR] (f = 3).
 *   3. No data on either side: Nodata (a failure when the metric must have data).
 *   4. Identical samples, or a single distinct value overall: Pass.
 *   5. Mann-Whitney two-sided test at the confidence level (default 0.98): Hodges-Lehmann
 *      estimate and interval of canary - baseline.
 *   6. Tolerance rule: High when the interval's lower end is above tolerance * |estimate|
 *      (default 25%) and the direction allows increases; Low when its upper end is below
 *      -tolerance * |estimate| and the direction allows decreases.
 *   7. Effect size = mean(canary) / mean(baseline): High also needs effect >= allowed
 *      increase, Low needs effect <= allowed decrease (both default 1: no extra condition).
 *   8. A critical metric classified High with effect >= critical increase (or Low with effect
 *      <= critical decrease) is a critical failure: the whole judgement fails with score 0.
 *
 * Score (judge_score): per group, 100 * passing metrics / metrics counted (Nodata is not
 * counted unless the metric must have data); the summary is the weighted mean of the group
 * scores (equal weights when none are given). Pass at score >= pass threshold (default 95),
 * Marginal at >= marginal threshold (default 75), else Fail.
 *
 * Pure: no I/O. judge_metric allocates working copies and frees them before returning.
 */
#ifndef SLUICE_JUDGE_H
#define SLUICE_JUDGE_H

#include <stddef.h>

#include "stats/mannwhitney.h"
#include "util/log.h"

enum judge_direction { JUDGE_EITHER, JUDGE_INCREASE, JUDGE_DECREASE };
enum judge_nan { JUDGE_NAN_REPLACE, JUDGE_NAN_REMOVE };
enum judge_class { JUDGE_PASS, JUDGE_HIGH, JUDGE_LOW, JUDGE_NODATA };
enum judge_verdict { JUDGE_VERDICT_PASS, JUDGE_VERDICT_MARGINAL, JUDGE_VERDICT_FAIL };

struct judge_metric_config {
	const char *name;   /* for messages; may be NULL */
	const char *group;  /* score group; NULL means "default" */
	enum judge_direction direction;
	enum judge_nan nan_strategy;
	int remove_outliers;
	double outlier_factor;    /* 3.0 */
	double confidence;        /* 0.98 */
	double tolerance;         /* 0.25 */
	double allowed_increase;  /* 1.0 */
	double allowed_decrease;  /* 1.0 */
	double critical_increase; /* 1.0 */
	double critical_decrease; /* 1.0 */
	int critical;             /* a critical failure fails the whole judgement */
	int must_have_data;       /* Nodata counts as a failure */
};

struct judge_metric_result {
	enum judge_class classification;
	int critical_failure;
	char reason[160];
	size_t n_canary, n_baseline;  /* after NaN handling and outlier removal */
	int tested;                   /* 1 when mw holds a test result */
	struct mw_result mw;
	double effect;                /* mean(canary) / mean(baseline) */
	double bound;                 /* tolerance * |estimate| */
};

struct judge_summary {
	double score;                 /* 0..100 */
	enum judge_verdict verdict;
	int critical_failure;
	char reason[200];
};

void judge_metric_config_default(struct judge_metric_config *c);

/* Classifies one metric. Returns 0, or -1 with e set (invalid configuration, more values
 * than MW_MAX_N, out of memory). */
__attribute__((warn_unused_result)) int judge_metric(const struct judge_metric_config *c, const double *canary,
						     size_t n_canary, const double *baseline, size_t n_baseline,
						     struct judge_metric_result *r /* OUT */, struct err *e);

/* Combines n metric results. groups/weights (ngroups entries, may be 0) give group weights;
 * a group without a weight gets weight 0 when weights are given. Returns 0 or -1 with e set. */
__attribute__((warn_unused_result)) int judge_score(const struct judge_metric_config *configs,
						    const struct judge_metric_result *results, size_t n,
						    const char *const *groups, const double *weights, size_t ngroups,
						    double pass_threshold, double marginal_threshold,
						    struct judge_summary *out /* OUT */, struct err *e);

const char *judge_class_name(enum judge_class c);     /* "pass", "high", "low", "nodata" */
const char *judge_verdict_name(enum judge_verdict v); /* "pass", "marginal", "fail" */

#endif
