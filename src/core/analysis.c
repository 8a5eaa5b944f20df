#include "core/analysis.h"

#include <math.h>
#include <stdio.h>

double analysis_quantile(const struct version_window *w, double q)
{
	uint64_t total = 0;
	for (int i = 0; i < w->nbuckets; i++)
		total += w->counts[i];
	if (!total)
		return NAN;
	double rank = q * (double)total;
	uint64_t seen = 0;
	for (int i = 0; i < w->nbuckets; i++) {
		if (!w->counts[i])
			continue;
		if ((double)(seen + w->counts[i]) >= rank) {
			double lo = i ? w->bounds_ms[i - 1] : 0;
			double hi = w->bounds_ms[i];
			if (isinf(hi))
				return lo; /* beyond the last finite bound: report the bound */
			double frac = (rank - (double)seen) / (double)w->counts[i];
			return lo + (hi - lo) * frac;
		}
		seen += w->counts[i];
	}
	return w->nbuckets ? w->bounds_ms[w->nbuckets - 1] : NAN;
}

static double rate(const struct version_window *w)
{
	return w->requests ? (double)w->errors / (double)w->requests : 0;
}

enum pl_verdict analysis_threshold(const struct analysis_limits *lim,
				   const struct version_window *canary,
				   const struct version_window *stable, char *msg, size_t msglen,
				   json_t **evidence)
{
	double cr = rate(canary);
	double sr = stable ? rate(stable) : 0;
	const char *ref = lim->reference ? lim->reference : "stable";
	double p99 = analysis_quantile(canary, 0.99);
	json_t *checks = json_array();
	enum pl_verdict v = PL_VERDICT_PASS;
	char first_fail[256] = "";

#define CHECK(metric, observed, limit, ok, ...)                                                  \
	do {                                                                                     \
		json_array_append_new(checks, json_pack("{s:s, s:f, s:f, s:s}", "metric", metric, \
							"observed", observed, "limit", limit,    \
							"decision", (ok) ? "pass" : "fail"));    \
		if (!(ok) && !first_fail[0])                                                     \
			snprintf(first_fail, sizeof(first_fail), __VA_ARGS__);                   \
	} while (0)

	/* A gross failure does not need min_requests to be proven: with at least 10 canary
	 * requests, an error rate three times the limit stops the canary at once. */
	int enough = canary->requests >= lim->min_requests;
	int gross = canary->requests >= 10 && cr > 3 * lim->max_error_rate && cr > 0.3;
	if (!enough && !gross) {
		snprintf(msg, msglen, "waiting for requests: canary %llu of %llu needed",
			 (unsigned long long)canary->requests, (unsigned long long)lim->min_requests);
		json_decref(checks);
		if (evidence)
			*evidence = NULL;
		return PL_VERDICT_NONE;
	}
	CHECK("error_rate", cr, lim->max_error_rate, cr <= lim->max_error_rate,
	      "canary error rate %.2f%% (%llu of %llu) exceeds %.2f%%", cr * 100,
	      (unsigned long long)canary->errors, (unsigned long long)canary->requests,
	      lim->max_error_rate * 100);
	if (stable && stable->requests > 0)
		CHECK("error_rate_increase", cr - sr, lim->max_error_rate_increase,
		      cr - sr <= lim->max_error_rate_increase,
		      "canary error rate %.2f%% is %.2f points above %s's %.2f%% (limit %.2f)",
		      cr * 100, (cr - sr) * 100, ref, sr * 100, lim->max_error_rate_increase * 100);
	if (!isnan(p99) && enough)
		CHECK("latency_p99_ms", p99, lim->max_p99_ms, p99 <= lim->max_p99_ms,
		      "canary p99 latency %.1f ms exceeds %.1f ms", p99, lim->max_p99_ms);
#undef CHECK
	if (first_fail[0]) {
		v = PL_VERDICT_FAIL;
		snprintf(msg, msglen, "%s", first_fail);
	} else {
		snprintf(msg, msglen, "canary error rate %.2f%% (%s %.2f%%), p99 %.1f ms over %llu requests",
			 cr * 100, ref, sr * 100, isnan(p99) ? 0.0 : p99, (unsigned long long)canary->requests);
	}
	if (evidence)
		*evidence = json_pack("{s:s, s:s, s:{s:I, s:I}, s:{s:I, s:I}, s:o}", "method", "threshold",
				      "verdict", v == PL_VERDICT_FAIL ? "fail" : "pass", "canary",
				      "requests", (json_int_t)canary->requests, "errors",
				      (json_int_t)canary->errors, "stable", "requests",
				      (json_int_t)(stable ? stable->requests : 0), "errors",
				      (json_int_t)(stable ? stable->errors : 0), "checks", checks);
	else
		json_decref(checks);
	return v;
}
