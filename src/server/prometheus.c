#include "server/prometheus.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

/* ---- templates ---- */

static const char *target_value(const struct prom_target *t, const char *name, size_t len)
{
#define IS(s) (len == sizeof(s) - 1 && !memcmp(name, s, len))
	if (IS("service"))
		return t->service;
	if (IS("version"))
		return t->version;
	if (IS("region"))
		return t->region;
	if (IS("env"))
		return t->env;
#undef IS
	return NULL;
}

int prom_expand(const char *tmpl, const struct prom_target *t, char *out, size_t outlen,
		struct err *e)
{
	size_t o = 0;
#define PUT(ch)                                                                                   \
	do {                                                                                      \
		if (o + 1 >= outlen)                                                              \
			return err_set(e, "query longer than %zu bytes once expanded", outlen - 1); \
		out[o++] = (ch);                                                                  \
	} while (0)
	if (!outlen)
		return err_set(e, "no room for the query");
	for (const char *p = tmpl; *p; p++) {
		/* PromQL has braces of its own (label matchers): only {identifier} is ours */
		size_t id = 0;
		if (*p == '{')
			while ((p[1 + id] >= 'a' && p[1 + id] <= 'z') || (p[1 + id] >= 'A' && p[1 + id] <= 'Z') ||
			       p[1 + id] == '_')
				id++;
		if (!id || p[1 + id] != '}') {
			PUT(*p);
			continue;
		}
		const char *end = p + 1 + id;
		const char *v = target_value(t, p + 1, id);
		if (!v)
			return err_set(e, "unknown placeholder '%.*s' (use {service}, {version}, {region} "
					  "or {env})", id > 40 ? 42 : (int)id + 2, p);
		/* the values go into double-quoted label matchers: escape what would end them */
		for (; *v; v++) {
			if (*v == '\\' || *v == '"')
				PUT('\\');
			PUT(*v);
		}
		p = end;
	}
	out[o] = '\0';
	return 0;
#undef PUT
}

/* ---- answers ---- */

int prom_parse_range(const char *body, size_t len, double *values, size_t max, size_t *n,
		     struct err *e)
{
	*n = 0;
	if (len > PROM_MAX_RESPONSE)
		return err_set(e, "prometheus answer of %zu bytes exceeds %u", len, PROM_MAX_RESPONSE);
	json_error_t je;
	json_t *root = json_loadb(body, len, 0, &je);
	if (!root)
		return err_set(e, "prometheus answer is not JSON: %s (line %d)", je.text, je.line);
	int rc = -1;
	const char *status = json_string_value(json_object_get(root, "status"));
	const json_t *data = json_object_get(root, "data");
	const json_t *result = json_object_get(data, "result");
	if (!status || strcmp(status, "success")) {
		const char *et = json_string_value(json_object_get(root, "errorType"));
		const char *em = json_string_value(json_object_get(root, "error"));
		err_set(e, "prometheus: %s: %.300s", et ? et : "error", em ? em : "no message");
		goto out;
	}
	const char *type = json_string_value(json_object_get(data, "resultType"));
	if (!type || strcmp(type, "matrix") || !json_is_array(result)) {
		err_set(e, "prometheus answer is not a matrix (resultType %s)", type ? type : "missing");
		goto out;
	}
	size_t i, j;
	json_t *series, *pair;
	json_array_foreach(result, i, series) {
		const json_t *vals = json_object_get(series, "values");
		if (!json_is_array(vals)) {
			err_set(e, "prometheus answer: series %zu has no values", i);
			goto out;
		}
		json_array_foreach(vals, j, pair) {
			const char *s = json_string_value(json_array_get(pair, 1));
			if (!json_is_array(pair) || json_array_size(pair) != 2 || !s) {
				err_set(e, "prometheus answer: series %zu value %zu is not [time, \"value\"]", i, j);
				goto out;
			}
			if (*n >= max) {
				err_set(e, "prometheus answer has more than %zu values (narrow the query)", max);
				goto out;
			}
			char *end;
			double x = strtod(s, &end);
			if (end == s || *end) {
				err_set(e, "prometheus answer: series %zu value %zu: \"%.40s\" is not a number", i, j, s);
				goto out;
			}
			/* an infinite ratio (x / 0) is as undefined as 0 / 0 for the judge */
			values[(*n)++] = isfinite(x) ? x : NAN;
		}
	}
	rc = 0;
out:
	json_decref(root);
	return rc;
}

int prom_query_range(httpc *c, const char *base_url, const char *query, double start_s, double end_s,
		     double step_s, double *values, size_t max, size_t *n, struct err *e)
{
	*n = 0;
	char *q = httpc_escape(query);
	if (!q)
		return err_set(e, "out of memory");
	size_t blen = strlen(base_url);
	while (blen && base_url[blen - 1] == '/')
		blen--;
	struct buf url, resp;
	buf_init(&url, PROM_MAX_QUERY * 3 + 1024);
	buf_init(&resp, PROM_MAX_RESPONSE);
	int rc = -1;
	long status = 0;
	if (buf_addf(&url, "%.*s/api/v1/query_range?query=%s&start=%.3f&end=%.3f&step=%.3f", (int)blen,
		     base_url, q, start_s, end_s, step_s)) {
		err_set(e, "query too long");
		goto out;
	}
	if (httpc_request(c, "GET", url.data, NULL, 0, NULL, &status, &resp, e))
		goto out;
	if (status != 200 && status != 400 && status != 422) {
		err_set(e, "prometheus at %.*s answered %ld", (int)blen, base_url, status);
		goto out;
	}
	rc = prom_parse_range(resp.data, resp.len, values, max, n, e);
out:
	free(q);
	buf_release(&url);
	buf_release(&resp);
	return rc;
}

/* ---- judging ---- */

static double num_or(const json_t *o, const char *key, double def)
{
	const json_t *v = json_object_get(o, key);
	return json_is_number(v) ? json_number_value(v) : def;
}

void prom_metric_config(const json_t *m, struct judge_metric_config *c)
{
	judge_metric_config_default(c);
	c->name = json_string_value(json_object_get(m, "name"));
	c->group = c->name; /* one group per metric: its weight is the metric's */
	const char *dir = json_string_value(json_object_get(m, "direction"));
	if (dir && !strcmp(dir, "increase"))
		c->direction = JUDGE_INCREASE;
	else if (dir && !strcmp(dir, "decrease"))
		c->direction = JUDGE_DECREASE;
	c->critical = json_is_true(json_object_get(m, "critical"));
	c->allowed_increase = num_or(m, "allowed_increase", 1.0);
	c->allowed_decrease = num_or(m, "allowed_decrease", 1.0);
	c->critical_increase = num_or(m, "critical_increase", 1.0);
	c->critical_decrease = num_or(m, "critical_decrease", 1.0);
}

enum pl_verdict prom_verdict(const struct judge_summary *s)
{
	if (s->critical_failure || s->verdict == JUDGE_VERDICT_FAIL)
		return PL_VERDICT_FAIL;
	if (s->verdict == JUDGE_VERDICT_PASS)
		return PL_VERDICT_PASS;
	return PL_VERDICT_INCONCLUSIVE;
}

/* JSON has no NaN or infinity: those become null. */
static json_t *jnum(double x)
{
	return isfinite(x) ? json_real(x) : json_null();
}

static const char *verdict_word(enum pl_verdict v)
{
	switch (v) {
	case PL_VERDICT_PASS:
		return "pass";
	case PL_VERDICT_FAIL:
		return "fail";
	case PL_VERDICT_INCONCLUSIVE:
		return "marginal";
	default:
		return "continue";
	}
}

/* One side of one metric: expand, ask, count the usable samples. */
static int fetch(httpc *c, const char *base, const char *tmpl, const struct prom_target *t,
		 double start_s, double end_s, double step_s, char *query, double *vals, size_t *n,
		 size_t *finite, struct err *e)
{
	if (prom_expand(tmpl, t, query, PROM_MAX_QUERY + 1, e) ||
	    prom_query_range(c, base, query, start_s, end_s, step_s, vals, PROM_MAX_SAMPLES, n, e))
		return -1;
	*finite = 0;
	for (size_t i = 0; i < *n; i++)
		*finite += !isnan(vals[i]);
	return 0;
}

enum pl_verdict prom_judge(const json_t *an, const struct prom_target *canary,
			   const struct prom_target *baseline, double start_s, double end_s, char *msg,
			   size_t msglen, json_t **evidence)
{
	if (evidence)
		*evidence = NULL;
	const json_t *metrics = json_object_get(an, "metrics");
	size_t nm = json_array_size(metrics);
	const char *base = json_string_value(json_object_get(an, "prometheus"));
	if (!nm || !base) {
		snprintf(msg, msglen, "no prometheus metrics");
		return PL_VERDICT_PASS;
	}
	if (nm > PROM_MAX_METRICS)
		nm = PROM_MAX_METRICS;
	double step_s = num_or(an, "interval_ms", 1000) / 1000.0;
	if (step_s < 0.1)
		step_s = 0.1; /* query_range refuses more than 11,000 points: keep windows cheap */
	struct judge_metric_config cfg[PROM_MAX_METRICS];
	struct judge_metric_result res[PROM_MAX_METRICS];
	const char *groups[PROM_MAX_METRICS];
	double weights[PROM_MAX_METRICS];
	double *cv = malloc(PROM_MAX_SAMPLES * sizeof(double));
	double *bv = malloc(PROM_MAX_SAMPLES * sizeof(double));
	char *cq = malloc(PROM_MAX_QUERY + 1), *bq = malloc(PROM_MAX_QUERY + 1);
	httpc *c = httpc_new(PROM_TIMEOUT_MS, PROM_MAX_RESPONSE);
	json_t *per = json_array();
	enum pl_verdict v = PL_VERDICT_NONE;
	struct err e = {""};
	if (!cv || !bv || !cq || !bq || !c || !per) {
		snprintf(msg, msglen, "prometheus: out of memory");
		goto out;
	}
	for (size_t i = 0; i < nm; i++) {
		const json_t *m = json_array_get(metrics, i);
		const char *tmpl = json_string_value(json_object_get(m, "query"));
		prom_metric_config(m, &cfg[i]);
		groups[i] = cfg[i].group;
		weights[i] = num_or(m, "weight", 1.0);
		size_t ncv, nbv, fc, fb;
		double bstart = start_s, bend = end_s;
		if (!tmpl || fetch(c, base, tmpl, canary, start_s, end_s, step_s, cq, cv, &ncv, &fc, &e) ||
		    fetch(c, base, tmpl, baseline, start_s, end_s, step_s, bq, bv, &nbv, &fb, &e)) {
			snprintf(msg, msglen, "metric %s: %s", cfg[i].name ? cfg[i].name : "?", e.msg);
			goto out;
		}
		if (fb < PROM_MIN_SAMPLES) {
			/* a baseline that served nothing in the window (the canary has all the traffic
			 * at the last step) is read over as long a time just before it */
			bstart = start_s - (end_s - start_s);
			bend = start_s;
			if (fetch(c, base, tmpl, baseline, bstart, bend, step_s, bq, bv, &nbv, &fb, &e)) {
				snprintf(msg, msglen, "metric %s: %s", cfg[i].name, e.msg);
				goto out;
			}
		}
		if (fc < PROM_MIN_SAMPLES || fb < PROM_MIN_SAMPLES) {
			snprintf(msg, msglen, "metric %s: waiting for samples (canary %zu, baseline %zu of %d)",
				 cfg[i].name, fc, fb, PROM_MIN_SAMPLES);
			goto out;
		}
		if (judge_metric(&cfg[i], cv, ncv, bv, nbv, &res[i], &e)) {
			snprintf(msg, msglen, "metric %s: %s", cfg[i].name, e.msg);
			goto out;
		}
		const struct judge_metric_result *r = &res[i];
		json_t *mw = r->tested ? json_pack("{s:o, s:o, s:o, s:o, s:b}", "u", jnum(r->mw.u), "p_value",
						   jnum(r->mw.p), "estimate", jnum(r->mw.estimate),
						   "interval", json_pack("[o, o]", jnum(r->mw.ci_lo), jnum(r->mw.ci_hi)),
						   "exact", r->mw.exact)
				       : json_null();
		json_array_append_new(
			per, json_pack("{s:s, s:s, s:s, s:[o, o], s:s, s:b, s:I, s:I, s:o, s:o, s:o, s:s, s:s, s:b, s:o}",
				       "metric", cfg[i].name, "query_canary", cq, "query_baseline", bq,
				       "baseline_range", jnum(bstart), jnum(bend), "direction",
				       cfg[i].direction == JUDGE_INCREASE   ? "increase"
				       : cfg[i].direction == JUDGE_DECREASE ? "decrease"
									    : "either",
				       "critical", cfg[i].critical, "canary_samples", (json_int_t)r->n_canary,
				       "baseline_samples", (json_int_t)r->n_baseline, "effect", jnum(r->effect),
				       "allowed_increase", jnum(cfg[i].allowed_increase), "critical_increase",
				       jnum(cfg[i].critical_increase), "classification",
				       judge_class_name(r->classification), "reason", r->reason,
				       "critical_failure", r->critical_failure, "mann_whitney", mw));
	}
	struct judge_summary sum;
	double pass = num_or(an, "pass_score", 95), marginal = num_or(an, "marginal_score", 75);
	if (judge_score(cfg, res, nm, groups, weights, nm, pass, marginal, &sum, &e)) {
		snprintf(msg, msglen, "prometheus metrics: %s", e.msg);
		goto out;
	}
	v = prom_verdict(&sum);
	/* name the first metric that did not pass: that is what a person looks at */
	const char *worst = NULL;
	for (size_t i = 0; i < nm && !worst; i++)
		if (res[i].classification == JUDGE_HIGH || res[i].classification == JUDGE_LOW)
			worst = cfg[i].name;
	snprintf(msg, msglen, "prometheus metrics: score %.0f (%s)%s%s%s", sum.score, judge_verdict_name(sum.verdict),
		 worst ? ", metric " : "", worst ? worst : "", worst ? " differs from the baseline" : "");
	if (evidence)
		*evidence = json_pack("{s:s, s:s, s:o, s:o, s:f, s:f, s:s, s:b, s:s, s:O}", "provider", "prometheus",
				      "server", base, "start", jnum(start_s), "end", jnum(end_s), "pass_score",
				      pass, "marginal_score", marginal, "verdict", verdict_word(v),
				      "critical_failure", sum.critical_failure, "reason", sum.reason, "metrics", per);
	if (evidence && *evidence)
		json_object_set_new(*evidence, "score", json_real(sum.score));
out:
	json_decref(per);
	httpc_free(c);
	free(cv);
	free(bv);
	free(cq);
	free(bq);
	return v;
}
