/*
 * judge: see judge.h. Defaults follow Kayenta's documented canary configuration
 * (docs/verification.md lists them).
 */
#include "stats/judge.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void judge_metric_config_default(struct judge_metric_config *c)
{
	memset(c, 0, sizeof(*c));
	c->direction = JUDGE_EITHER;
	c->nan_strategy = JUDGE_NAN_REPLACE;
	c->outlier_factor = 3.0;
	c->confidence = 0.98;
	c->tolerance = 0.25;
	c->allowed_increase = 1.0;
	c->allowed_decrease = 1.0;
	c->critical_increase = 1.0;
	c->critical_decrease = 1.0;
}

const char *judge_class_name(enum judge_class c)
{
	switch (c) {
	case JUDGE_HIGH:
		return "high";
	case JUDGE_LOW:
		return "low";
	case JUDGE_NODATA:
		return "nodata";
	default:
		return "pass";
	}
}

const char *judge_verdict_name(enum judge_verdict v)
{
	return v == JUDGE_VERDICT_PASS ? "pass" : v == JUDGE_VERDICT_MARGINAL ? "marginal" : "fail";
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* R's default (type 7) quantile of sorted values. */
static double quantile7(const double *v, size_t n, double p)
{
	double h = (double)(n - 1) * p;
	size_t lo = (size_t)floor(h);
	size_t hi = lo + 1 < n ? lo + 1 : lo;
	return v[lo] + (h - (double)lo) * (v[hi] - v[lo]);
}

/* Copies v without NaN (or with NaN as 0), then drops outliers if asked; returns the count. */
static size_t clean(const struct judge_metric_config *c, const double *v, size_t n, double *out)
{
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (isnan(v[i])) {
			if (c->nan_strategy == JUDGE_NAN_REPLACE)
				out[m++] = 0;
		} else {
			out[m++] = v[i];
		}
	}
	qsort(out, m, sizeof(double), cmp_double);
	if (!c->remove_outliers || m < 4)
		return m;
	double q1 = quantile7(out, m, 0.25), q3 = quantile7(out, m, 0.75), iqr = q3 - q1;
	double lo = q1 - c->outlier_factor * iqr, hi = q3 + c->outlier_factor * iqr;
	size_t k = 0;
	for (size_t i = 0; i < m; i++)
		if (out[i] >= lo && out[i] <= hi)
			out[k++] = out[i];
	return k;
}

static double mean(const double *v, size_t n)
{
	long double s = 0;
	for (size_t i = 0; i < n; i++)
		s += v[i];
	return (double)(s / (long double)n);
}

static int check_config(const struct judge_metric_config *c, struct err *e)
{
	if (!(c->confidence > 0 && c->confidence < 1))
		return err_set(e, "confidence %g must be between 0 and 1 (exclusive)", c->confidence);
	if (!(c->tolerance >= 0))
		return err_set(e, "tolerance %g must be 0 or more", c->tolerance);
	if (!(c->allowed_increase > 0) || !(c->allowed_decrease > 0) || !(c->critical_increase > 0) ||
	    !(c->critical_decrease > 0))
		return err_set(e, "allowed and critical increase/decrease must be positive ratios (1 = no change)");
	if (c->remove_outliers && !(c->outlier_factor > 0))
		return err_set(e, "outlier factor %g must be positive", c->outlier_factor);
	return 0;
}

int judge_metric(const struct judge_metric_config *c, const double *canary, size_t n_canary, const double *baseline,
		 size_t n_baseline, struct judge_metric_result *r, struct err *e)
{
	memset(r, 0, sizeof(*r));
	r->effect = NAN;
	r->bound = NAN;
	if (check_config(c, e))
		return -1;
	if (n_canary > MW_MAX_N || n_baseline > MW_MAX_N)
		return err_set(e, "too many values (%zu canary, %zu baseline): at most %d per side", n_canary,
			       n_baseline, MW_MAX_N);
	double *x = malloc((n_canary ? n_canary : 1) * sizeof(double));
	double *y = malloc((n_baseline ? n_baseline : 1) * sizeof(double));
	if (!x || !y) {
		free(x);
		free(y);
		return err_set(e, "out of memory copying %zu + %zu values", n_canary, n_baseline);
	}
	size_t nx = clean(c, canary, n_canary, x), ny = clean(c, baseline, n_baseline, y);
	r->n_canary = nx;
	r->n_baseline = ny;
	int rc = 0;
	if (nx == 0 || ny == 0) {
		r->classification = JUDGE_NODATA;
		snprintf(r->reason, sizeof(r->reason), "no data for the %s", nx == 0 ? "canary" : "baseline");
		r->critical_failure = c->critical && c->must_have_data;
		goto out;
	}
	int same = nx == ny, one_value = x[0] == x[nx - 1] && y[0] == y[ny - 1] && x[0] == y[0];
	for (size_t i = 0; same && i < nx; i++)
		same = x[i] == y[i];
	r->effect = 1;
	if (same || one_value) {
		r->classification = JUDGE_PASS;
		snprintf(r->reason, sizeof(r->reason), "%s", same ? "the canary and baseline data are identical"
								   : "every value is the same");
		goto out;
	}
	struct mw_options o;
	mw_options_default(&o);
	o.conf_level = c->confidence;
	if (mw_test(x, nx, y, ny, &o, &r->mw, e)) {
		rc = -1;
		goto out;
	}
	r->tested = 1;
	double mc = mean(x, nx), mb = mean(y, ny);
	r->effect = mb != 0 ? mc / mb : mc == 0 ? 1 : (mc > 0 ? INFINITY : -INFINITY);
	r->bound = c->tolerance * fabs(r->mw.estimate);
	int up = c->direction != JUDGE_DECREASE, down = c->direction != JUDGE_INCREASE;
	if (up && r->mw.ci_lo > r->bound && r->effect >= c->allowed_increase) {
		r->classification = JUDGE_HIGH;
		r->critical_failure = c->critical && r->effect >= c->critical_increase;
		snprintf(r->reason, sizeof(r->reason),
			 "the canary is higher: interval [%.6g, %.6g] is above %.6g and the mean ratio %.4g >= %.4g",
			 r->mw.ci_lo, r->mw.ci_hi, r->bound, r->effect, c->allowed_increase);
	} else if (down && r->mw.ci_hi < -r->bound && r->effect <= c->allowed_decrease) {
		r->classification = JUDGE_LOW;
		r->critical_failure = c->critical && r->effect <= c->critical_decrease;
		snprintf(r->reason, sizeof(r->reason),
			 "the canary is lower: interval [%.6g, %.6g] is below %.6g and the mean ratio %.4g <= %.4g",
			 r->mw.ci_lo, r->mw.ci_hi, -r->bound, r->effect, c->allowed_decrease);
	} else {
		r->classification = JUDGE_PASS;
		snprintf(r->reason, sizeof(r->reason), "no significant %s beyond the tolerance",
			 c->direction == JUDGE_INCREASE	  ? "increase"
			 : c->direction == JUDGE_DECREASE ? "decrease"
							  : "difference");
	}
out:
	free(x);
	free(y);
	return rc;
}

static const char *group_of(const struct judge_metric_config *c)
{
	return c->group ? c->group : "default";
}

int judge_score(const struct judge_metric_config *configs, const struct judge_metric_result *results, size_t n,
		const char *const *groups, const double *weights, size_t ngroups, double pass_threshold,
		double marginal_threshold, struct judge_summary *out, struct err *e)
{
	memset(out, 0, sizeof(*out));
	if (!(marginal_threshold <= pass_threshold))
		return err_set(e, "marginal threshold %g is above the pass threshold %g", marginal_threshold,
			       pass_threshold);
	for (size_t i = 0; i < ngroups; i++)
		if (!(weights[i] >= 0))
			return err_set(e, "group '%s' has a negative weight", groups[i]);
	for (size_t i = 0; i < n; i++)
		if (results[i].critical_failure) {
			out->critical_failure = 1;
			out->verdict = JUDGE_VERDICT_FAIL;
			snprintf(out->reason, sizeof(out->reason), "critical metric '%s' failed: %s",
				 configs[i].name ? configs[i].name : "?", results[i].reason);
			return 0;
		}
	/* group scores, visited in order of first appearance; O(n^2) on a handful of metrics */
	double wsum = 0, ssum = 0;
	for (size_t i = 0; i < n; i++) {
		const char *g = group_of(&configs[i]);
		size_t first = 0;
		while (strcmp(group_of(&configs[first]), g))
			first++;
		if (first != i)
			continue;
		double counted = 0, passed = 0;
		for (size_t k = i; k < n; k++) {
			if (strcmp(group_of(&configs[k]), g))
				continue;
			if (results[k].classification == JUDGE_NODATA && !configs[k].must_have_data)
				continue;
			counted++;
			passed += results[k].classification == JUDGE_PASS;
		}
		if (counted == 0)
			continue;
		double w = ngroups ? 0 : 1;
		for (size_t k = 0; k < ngroups; k++)
			if (!strcmp(groups[k], g))
				w = weights[k];
		wsum += w;
		ssum += w * 100 * passed / counted;
	}
	out->score = wsum > 0 ? ssum / wsum : 100;
	if (out->score >= pass_threshold)
		out->verdict = JUDGE_VERDICT_PASS;
	else if (out->score >= marginal_threshold)
		out->verdict = JUDGE_VERDICT_MARGINAL;
	else
		out->verdict = JUDGE_VERDICT_FAIL;
	snprintf(out->reason, sizeof(out->reason), "score %.1f (pass at %g, marginal at %g)", out->score,
		 pass_threshold, marginal_threshold);
	return 0;
}
