#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "stats/judge.h"
#include "stats/mannwhitney.h"
#include "stats/rate.h"
#include "stats/sequential.h"

/* ---- Mann-Whitney against R 4.2 wilcox.test and scipy 1.10 mannwhitneyu ---- */

struct mw_case {
	const char *name;
	const double *x;
	size_t nx;
	const double *y;
	size_t ny;
	enum mw_alternative alt;
	double conf;
	double r_u, r_p, r_est, r_lo, r_hi;
	int r_exact;
	double sp_u, sp_asym_p, sp_exact_p; /* sp_exact_p is NaN when scipy's exact does not apply */
};
#include "fixtures/mw_cases.inc"

#define NCASES (sizeof(mw_cases) / sizeof(mw_cases[0]))

static int rel_close(double a, double b, double rel)
{
	if (a == b)
		return 1;
	return fabs(a - b) <= rel * fmax(fabs(a), fabs(b));
}

Test(mannwhitney, fixtures_cover_the_cases)
{
	int exact = 0, asym = 0, ties = 0, one_sided = 0;
	for (size_t i = 0; i < NCASES; i++) {
		exact += mw_cases[i].r_exact;
		asym += !mw_cases[i].r_exact;
		ties += !!strstr(mw_cases[i].name, "ties") || !!strstr(mw_cases[i].name, "zeros");
		one_sided += mw_cases[i].alt != MW_TWO_SIDED;
	}
	cr_assert_geq(exact, 15);
	cr_assert_geq(asym, 15);
	cr_assert_geq(ties, 10);
	cr_assert_geq(one_sided, 15);
}

Test(mannwhitney, matches_r_wilcox_test)
{
	for (size_t i = 0; i < NCASES; i++) {
		const struct mw_case *c = &mw_cases[i];
		struct mw_options o;
		mw_options_default(&o);
		o.alternative = c->alt;
		o.conf_level = c->conf;
		struct mw_result r;
		struct err e;
		cr_assert_eq(mw_test(c->x, c->nx, c->y, c->ny, &o, &r, &e), 0, "%s: %s", c->name, e.msg);
		cr_assert_eq(r.exact, c->r_exact, "%s: method", c->name);
		cr_assert(rel_close(r.u, c->r_u, 1e-9), "%s: U %.17g vs R %.17g", c->name, r.u, c->r_u);
		cr_assert(rel_close(r.p, c->r_p, 1e-9), "%s: p %.17g vs R %.17g", c->name, r.p, c->r_p);
		if (c->r_exact) {
			/* exact mode: the estimate and the interval are order statistics: identical */
			cr_assert(r.estimate == c->r_est, "%s: estimate %.17g vs R %.17g", c->name, r.estimate,
				  c->r_est);
			cr_assert(r.ci_lo == c->r_lo, "%s: lower %.17g vs R %.17g", c->name, r.ci_lo, c->r_lo);
			cr_assert(r.ci_hi == c->r_hi, "%s: upper %.17g vs R %.17g", c->name, r.ci_hi, c->r_hi);
		} else {
			/* root finding: within uniroot's tolerance */
			cr_assert(fabs(r.estimate - c->r_est) <= 1e-4, "%s: estimate %.17g vs R %.17g", c->name,
				  r.estimate, c->r_est);
			cr_assert(r.ci_lo == c->r_lo || fabs(r.ci_lo - c->r_lo) <= 1e-4, "%s: lower %.17g vs R %.17g",
				  c->name, r.ci_lo, c->r_lo);
			cr_assert(r.ci_hi == c->r_hi || fabs(r.ci_hi - c->r_hi) <= 1e-4, "%s: upper %.17g vs R %.17g",
				  c->name, r.ci_hi, c->r_hi);
		}
	}
}

Test(mannwhitney, matches_scipy_asymptotic_and_exact)
{
	int exact_checked = 0;
	for (size_t i = 0; i < NCASES; i++) {
		const struct mw_case *c = &mw_cases[i];
		struct mw_options o;
		mw_options_default(&o);
		o.alternative = c->alt;
		o.conf_int = 0;
		o.method = MW_ASYMPTOTIC;
		struct mw_result r;
		struct err e;
		cr_assert_eq(mw_test(c->x, c->nx, c->y, c->ny, &o, &r, &e), 0, "%s: %s", c->name, e.msg);
		cr_assert(rel_close(r.u, c->sp_u, 1e-9), "%s: U %.17g vs scipy %.17g", c->name, r.u, c->sp_u);
		cr_assert(rel_close(r.p, c->sp_asym_p, 1e-9), "%s: p %.17g vs scipy %.17g", c->name, r.p,
			  c->sp_asym_p);
		if (isnan(c->sp_exact_p))
			continue;
		o.method = MW_EXACT;
		cr_assert_eq(mw_test(c->x, c->nx, c->y, c->ny, &o, &r, &e), 0, "%s: %s", c->name, e.msg);
		cr_assert(rel_close(r.p, c->sp_exact_p, 1e-9), "%s: exact p %.17g vs scipy %.17g", c->name, r.p,
			  c->sp_exact_p);
		exact_checked++;
	}
	cr_assert_geq(exact_checked, 15);
}

Test(mannwhitney, refuses_bad_input)
{
	double x[] = { 1, 2, NAN }, y[] = { 1, 2 };
	struct mw_options o;
	mw_options_default(&o);
	struct mw_result r;
	struct err e;
	cr_assert_eq(mw_test(x, 3, y, 2, &o, &r, &e), -1);
	cr_assert(strstr(e.msg, "canary") != NULL, "%s", e.msg);
	cr_assert_eq(mw_test(x, 2, y, 0, &o, &r, &e), -1);
	cr_assert(strstr(e.msg, "baseline sample is empty") != NULL, "%s", e.msg);
	o.conf_level = 1.5;
	cr_assert_eq(mw_test(x, 2, y, 2, &o, &r, &e), -1);
	static double big[200];
	o.conf_level = 0.95;
	o.method = MW_EXACT;
	cr_assert_eq(mw_test(big, 200, big, 200, &o, &r, &e), -1);
	cr_assert(strstr(e.msg, "exact method is limited") != NULL, "%s", e.msg);
}

Test(mannwhitney, all_tied_gives_no_evidence)
{
	double x[] = { 4, 4, 4 }, y[] = { 4, 4 };
	struct mw_options o;
	mw_options_default(&o);
	struct mw_result r;
	struct err e;
	cr_assert_eq(mw_test(x, 3, y, 2, &o, &r, &e), 0);
	cr_assert_eq(r.p, 1);
	cr_assert_eq(r.estimate, 0);
}

Test(mannwhitney, normal_quantile_round_trips)
{
	double ps[] = { 1e-300, 1e-20, 1e-5, 0.001, 0.01, 0.025, 0.2, 0.5, 0.7, 0.975, 0.999 };
	for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
		cr_assert(rel_close(mw_pnorm(mw_qnorm(ps[i])), ps[i], 1e-12), "p %g", ps[i]);
	cr_assert(fabs(mw_qnorm(0.975) - 1.959963984540054) < 1e-14);
}

/* ---- Kayenta-style judge ---- */

static struct judge_metric_result classify(struct judge_metric_config *c, const double *x, size_t nx, const double *y,
					   size_t ny)
{
	struct judge_metric_result r;
	struct err e;
	cr_assert_eq(judge_metric(c, x, nx, y, ny, &r, &e), 0, "%s", e.msg);
	return r;
}

static const double base30[] = { 20.7, 22.8, 20.6, 20.9, 23.4, 21.5, 21.7, 18.3, 19.0, 25.8, 18.9, 19.3, 18.9, 24.2, 20.0,
				 18.2, 17.8, 23.0, 18.4, 16.9, 19.4, 17.9, 17.5, 16.1, 24.3, 15.9, 20.4, 19.0, 17.4, 18.8 };

Test(judge, high_low_pass_by_direction)
{
	struct judge_metric_config c;
	judge_metric_config_default(&c);
	double hi[30], lo[30];
	for (int i = 0; i < 30; i++) {
		hi[i] = base30[i] * 1.5;
		lo[i] = base30[i] * 0.5;
	}
	cr_assert_eq(classify(&c, hi, 30, base30, 30).classification, JUDGE_HIGH);
	cr_assert_eq(classify(&c, lo, 30, base30, 30).classification, JUDGE_LOW);
	c.direction = JUDGE_INCREASE;
	cr_assert_eq(classify(&c, lo, 30, base30, 30).classification, JUDGE_PASS);
	cr_assert_eq(classify(&c, hi, 30, base30, 30).classification, JUDGE_HIGH);
	c.direction = JUDGE_DECREASE;
	cr_assert_eq(classify(&c, hi, 30, base30, 30).classification, JUDGE_PASS);
	struct judge_metric_result r = classify(&c, lo, 30, base30, 30);
	cr_assert_eq(r.classification, JUDGE_LOW);
	cr_assert(r.tested && r.mw.ci_hi < -r.bound);
	cr_assert(fabs(r.effect - 0.5) < 1e-12);
}

Test(judge, tolerance_rule_needs_the_interval_to_clear_a_fraction_of_the_estimate)
{
	struct judge_metric_config c;
	judge_metric_config_default(&c);
	double x[30];
	for (int i = 0; i < 30; i++)
		x[i] = base30[i] + 0.8; /* a small shift: the interval will not clear 25% of it */
	struct judge_metric_result r = classify(&c, x, 30, base30, 30);
	cr_assert_eq(r.classification, JUDGE_PASS);
	c.tolerance = 0;
	c.confidence = 0.5;
	r = classify(&c, x, 30, base30, 30);
	cr_assert(r.mw.ci_lo > 0, "lower %g", r.mw.ci_lo);
	cr_assert_eq(r.classification, JUDGE_HIGH);
}

Test(judge, effect_size_thresholds_and_critical)
{
	struct judge_metric_config c;
	judge_metric_config_default(&c);
	double x[30];
	for (int i = 0; i < 30; i++)
		x[i] = base30[i] * 1.3;
	c.allowed_increase = 1.5; /* a 30% increase is allowed */
	cr_assert_eq(classify(&c, x, 30, base30, 30).classification, JUDGE_PASS);
	c.allowed_increase = 1.2;
	struct judge_metric_result r = classify(&c, x, 30, base30, 30);
	cr_assert_eq(r.classification, JUDGE_HIGH);
	cr_assert_eq(r.critical_failure, 0);
	c.critical = 1;
	c.critical_increase = 2.0; /* high, but not critically */
	cr_assert_eq(classify(&c, x, 30, base30, 30).critical_failure, 0);
	c.critical_increase = 1.25;
	struct judge_metric_result rc = classify(&c, x, 30, base30, 30);
	cr_assert_eq(rc.critical_failure, 1);

	struct judge_metric_config cfgs[2] = { c, c };
	struct judge_metric_result res[2] = { rc, classify(&c, base30, 30, base30, 30) };
	struct judge_summary s;
	struct err e;
	cr_assert_eq(judge_score(cfgs, res, 2, NULL, NULL, 0, 95, 75, &s, &e), 0);
	cr_assert_eq(s.verdict, JUDGE_VERDICT_FAIL);
	cr_assert_eq(s.critical_failure, 1);
	cr_assert_eq(s.score, 0);
}

Test(judge, nan_strategies_identical_and_nodata)
{
	struct judge_metric_config c;
	judge_metric_config_default(&c);
	double x[] = { NAN, NAN, 3, 4 }, y[] = { 3, 4, 0, 0 };
	/* replace: NaN become 0, the samples are then identical */
	struct judge_metric_result r = classify(&c, x, 4, y, 4);
	cr_assert_eq(r.classification, JUDGE_PASS);
	cr_assert(strstr(r.reason, "identical") != NULL, "%s", r.reason);
	c.nan_strategy = JUDGE_NAN_REMOVE;
	r = classify(&c, x, 4, y, 4);
	cr_assert_eq(r.n_canary, 2);
	cr_assert_eq(r.classification, JUDGE_PASS);
	double only_nan[] = { NAN, NAN };
	r = classify(&c, only_nan, 2, y, 4);
	cr_assert_eq(r.classification, JUDGE_NODATA);
	cr_assert_eq(r.critical_failure, 0);
	c.critical = c.must_have_data = 1;
	cr_assert_eq(classify(&c, only_nan, 2, y, 4).critical_failure, 1);
}

Test(judge, outliers_are_removed_on_request)
{
	struct judge_metric_config c;
	judge_metric_config_default(&c);
	double x[31];
	memcpy(x, base30, sizeof(base30));
	x[30] = 1e6;
	cr_assert_eq(classify(&c, x, 31, base30, 30).n_canary, 31);
	c.remove_outliers = 1;
	struct judge_metric_result r = classify(&c, x, 31, base30, 30);
	cr_assert_eq(r.n_canary, 30);
	cr_assert(fabs(r.effect - 1) < 1e-12, "effect %g", r.effect);
}

Test(judge, weighted_score_and_thresholds)
{
	struct judge_metric_config c[4];
	struct judge_metric_result r[4];
	memset(r, 0, sizeof(r));
	for (int i = 0; i < 4; i++)
		judge_metric_config_default(&c[i]);
	c[0].group = c[1].group = "latency";
	c[2].group = c[3].group = "errors";
	r[1].classification = JUDGE_HIGH; /* latency group: 50 */
	r[3].classification = JUDGE_NODATA; /* not counted: errors group 100 */
	const char *groups[] = { "latency", "errors" };
	double w[] = { 25, 75 };
	struct judge_summary s;
	struct err e;
	cr_assert_eq(judge_score(c, r, 4, groups, w, 2, 95, 75, &s, &e), 0, "%s", e.msg);
	cr_assert(fabs(s.score - 87.5) < 1e-9, "score %g", s.score);
	cr_assert_eq(s.verdict, JUDGE_VERDICT_MARGINAL);
	cr_assert_eq(judge_score(c, r, 4, NULL, NULL, 0, 95, 75, &s, &e), 0);
	cr_assert(fabs(s.score - 75) < 1e-9, "score %g", s.score);
	cr_assert_eq(s.verdict, JUDGE_VERDICT_MARGINAL);
	c[3].must_have_data = 1; /* nodata now fails: errors group 50 */
	cr_assert_eq(judge_score(c, r, 4, groups, w, 2, 95, 75, &s, &e), 0);
	cr_assert(fabs(s.score - 50) < 1e-9, "score %g", s.score);
	cr_assert_eq(s.verdict, JUDGE_VERDICT_FAIL);
	cr_assert_eq(judge_score(c, r, 4, groups, w, 2, 70, 75, &s, &e), -1);
}

/* ---- sequential tests ---- */

static uint64_t rng;

static double uniform(void)
{
	/* splitmix64: deterministic seeds for reproducible properties */
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return (double)(z >> 11) * 0x1.0p-53;
}

static double lognormal(double median, double sigma)
{
	double u = uniform(), v = uniform();
	return median * exp(sigma * sqrt(-2 * log(u > 0 ? u : 1e-300)) * cos(2 * M_PI * v));
}

/* Runs an errors stream; returns the decision and the canary requests seen at that point. */
static enum seq_decision errors_run(uint64_t seed, long n, double base, double canary, double share, int tell,
				    long *canary_seen, struct seq_counts *out)
{
	struct seq_counts s;
	seq_counts_init(&s, 0.05, 0.25);
	rng = seed;
	long cs = 0;
	for (long i = 0; i < n && seq_counts_decision(&s) == SEQ_CONTINUE; i++) {
		double sh = (i >= n / 2 && (seed & 1)) ? 0.5 : share; /* odd seeds move the share */
		int c = uniform() < sh;
		cs += c;
		seq_counts_observe(&s, c, uniform() < (c ? canary : base), tell ? sh : -1);
	}
	if (canary_seen)
		*canary_seen = cs;
	if (out)
		*out = s;
	return seq_counts_decision(&s);
}

Test(sequential, aa_does_not_fail_on_fixed_seeds, .timeout = 60)
{
	for (uint64_t seed = 1; seed <= 40; seed++)
		cr_assert_neq(errors_run(seed, 20000, 0.01, 0.01, 0.1, 1, NULL, NULL), SEQ_FAIL, "seed %llu",
			      (unsigned long long)seed);
	for (uint64_t seed = 100; seed <= 110; seed++)
		cr_assert_neq(errors_run(seed, 20000, 0.01, 0.01, 0.1, 0, NULL, NULL), SEQ_FAIL,
			      "unknown share, seed %llu", (unsigned long long)seed);
}

Test(sequential, gross_regression_fails_within_a_few_dozen_canary_requests)
{
	for (uint64_t seed = 1; seed <= 20; seed++) {
		long cs;
		struct seq_counts s;
		cr_assert_eq(errors_run(seed * 2, 100000, 0.01, 0.5, 0.1, 1, &cs, &s), SEQ_FAIL);
		cr_assert_leq(cs, 60, "seed %llu: %ld canary requests", (unsigned long long)seed, cs);
		struct seq_evidence ev;
		seq_counts_evidence(&s, &ev);
		cr_assert_geq(ev.e_fail, ev.threshold);
		cr_assert_geq(ev.ratio_lo, 1);
	}
	long cs;
	cr_assert_eq(errors_run(7, 100000, 0.01, 0.5, 0.1, 0, &cs, NULL), SEQ_FAIL);
	cr_assert_leq(cs, 200, "unknown share: %ld canary requests", cs);
}

Test(sequential, doubled_error_rate_fails_and_the_interval_covers_two)
{
	long total = 0;
	for (uint64_t seed = 2; seed <= 20; seed += 2) {
		long cs;
		struct seq_counts s;
		cr_assert_eq(errors_run(seed, 1000000, 0.01, 0.02, 0.1, 1, &cs, &s), SEQ_FAIL, "seed %llu",
			     (unsigned long long)seed);
		total += cs;
		struct seq_evidence ev;
		seq_counts_evidence(&s, &ev);
		cr_assert(ev.ratio_lo >= 1 && ev.ratio_lo <= 2 && ev.ratio_hi >= 2, "[%g, %g]", ev.ratio_lo, ev.ratio_hi);
	}
	cr_assert_leq(total / 10, 2500, "mean canary requests %ld", total / 10);
}

Test(sequential, equal_rates_pass_with_enough_data, .timeout = 60)
{
	long cs;
	struct seq_counts s;
	cr_assert_eq(errors_run(4, 2000000, 0.05, 0.05, 0.5, 1, &cs, &s), SEQ_PASS);
	struct seq_evidence ev;
	seq_counts_evidence(&s, &ev);
	cr_assert_lt(ev.ratio_hi, 1.25 + 1e-9);
	cr_assert_geq(ev.e_pass, ev.threshold);
	/* a canary above the tolerance must not pass */
	cr_assert_neq(errors_run(6, 400000, 0.05, 0.075, 0.5, 1, &cs, NULL), SEQ_PASS);
}

Test(sequential, batched_counters_decide_like_the_stream)
{
	struct seq_counts s;
	seq_counts_init(&s, 0.05, 0.25);
	/* polled every interval: 1000 requests, 10% canary, canary errors 20% vs 1% */
	int n = 0;
	while (seq_counts_decision(&s) == SEQ_CONTINUE && n < 100) {
		seq_counts_update(&s, 20, 100, 9, 900, 0.1);
		n++;
	}
	cr_assert_eq(seq_counts_decision(&s), SEQ_FAIL);
	cr_assert_leq(n, 2);
	seq_counts_init(&s, 0.05, 0.25);
	for (n = 0; n < 100; n++)
		seq_counts_update(&s, 1, 100, 9, 900, 0.1); /* exactly the expected counts under H0 */
	cr_assert_neq(seq_counts_decision(&s), SEQ_FAIL);
	cr_assert_eq(s.canary_trials, 10000);
}

static enum seq_decision latency_run(uint64_t seed, long n, double factor, long *canary_seen)
{
	struct seq_latency s;
	seq_latency_init(&s, 0.05, 0.25, 0.9);
	rng = seed;
	long cs = 0;
	for (long i = 0; i < n && seq_latency_decision(&s) == SEQ_CONTINUE; i++) {
		int c = uniform() < 0.1;
		cs += c;
		seq_latency_observe(&s, c, lognormal(100, 0.5) * (c ? factor : 1), 0.1);
	}
	*canary_seen = cs;
	return seq_latency_decision(&s);
}

Test(sequential, latency_shift_fails_and_aa_does_not)
{
	long cs;
	for (uint64_t seed = 1; seed <= 10; seed++) {
		cr_assert_eq(latency_run(seed, 200000, 1.2, &cs), SEQ_FAIL, "seed %llu", (unsigned long long)seed);
		cr_assert_leq(cs, 2000, "seed %llu: %ld", (unsigned long long)seed, cs);
		cr_assert_neq(latency_run(seed + 50, 20000, 1.0, &cs), SEQ_FAIL, "A/A seed %llu",
			      (unsigned long long)seed);
	}
}

Test(sequential, p2_quantile_tracks_the_baseline)
{
	struct seq_latency s;
	seq_latency_init(&s, 0.05, 0.25, 0.9);
	rng = 99;
	for (int i = 0; i < 20000; i++)
		seq_latency_observe(&s, 0, uniform() * 1000, 0.1);
	cr_assert(fabs(s.threshold - 900) < 15, "p90 %g", s.threshold);
}

Test(sequential, decision_sticks_and_names)
{
	struct seq_counts s;
	seq_counts_init(&s, 0.05, 0.25);
	for (int i = 0; i < 30; i++)
		seq_counts_observe(&s, 1, 1, 0.1);
	cr_assert_eq(seq_counts_decision(&s), SEQ_FAIL);
	uint64_t at = s.decided_at;
	for (int i = 0; i < 3000; i++)
		seq_counts_observe(&s, 0, 1, 0.1);
	cr_assert_eq(seq_counts_decision(&s), SEQ_FAIL);
	cr_assert_eq(s.decided_at, at);
	cr_assert_str_eq(seq_decision_name(SEQ_FAIL), "fail");
	cr_assert_str_eq(seq_decision_name(SEQ_PASS), "pass");
	cr_assert_str_eq(seq_decision_name(SEQ_CONTINUE), "continue");
}

/* ---- rate: one-sample tests of a rate against a limit ---- */

Test(rate, evidence_grows_with_data)
{
	/* no errors in many requests: the rate is proven below 2% (log(1/0.025) = 3.69) */
	cr_expect_lt(rate_log_e(0, 100, 0.02, 1), log(40));
	cr_expect_gt(rate_log_e(0, 400, 0.02, 1), log(40));
	/* at the limit itself there is no evidence either way */
	cr_expect_lt(rate_log_e(20, 1000, 0.02, 1), 0);
	cr_expect_lt(rate_log_e(20, 1000, 0.02, 0), 0);
	/* 50% errors against a 2% limit: proven above within a few dozen requests */
	cr_expect_gt(rate_log_e(10, 20, 0.02, 0), log(40));
	cr_expect(isinf(rate_log_e(1, 0, 0.02, 0)));
	cr_expect(isinf(rate_log_e(0, 10, 0, 1)));
	cr_expect(isinf(rate_log_e(0, 10, 1, 1)));
}


/* Under H0 (the true rate is the limit), checking after every request never crosses 1/alpha
 * in more than alpha of the runs (Ville's inequality): 1,000 runs of 3,000 requests. */
Test(rate, false_alarms_under_continuous_monitoring, .timeout = 60)
{
	const double alpha = 0.05, p0 = 0.05;
	rng = 88172645463325252ull;
	int crossed_up = 0, crossed_down = 0;
	for (int run = 0; run < 1000; run++) {
		uint64_t k = 0;
		int up = 0, down = 0;
		for (uint64_t n = 1; n <= 3000 && !(up && down); n++) {
			k += uniform() < p0;
			if (!up && rate_log_e(k, n, p0, 0) >= log(1 / alpha))
				up = 1;
			if (!down && rate_log_e(k, n, p0, 1) >= log(1 / alpha))
				down = 1;
		}
		crossed_up += up;
		crossed_down += down;
	}
	cr_expect_leq(crossed_up, 50, "rate-above test crossed in %d of 1000 null runs", crossed_up);
	cr_expect_leq(crossed_down, 50, "rate-below test crossed in %d of 1000 null runs", crossed_down);
}

Test(rate, recorded_upper_bound)
{
	/* Wilson bound, z = qnorm(0.975) = 1.959964: 10 of 1000 -> 0.01813 */
	cr_expect_float_eq(rate_upper(10, 1000, 0.025), 0.018318, 1e-4);
	cr_expect_gt(rate_upper(0, 1000, 0.025), 0);
	cr_expect_lt(rate_upper(0, 1000, 0.025), 0.005);
	cr_expect_eq(rate_upper(0, 0, 0.025), 1);
	cr_expect_leq(rate_upper(1000, 1000, 0.025), 1);
}
