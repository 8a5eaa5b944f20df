#include "server/prometheus.h"

#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop/loop.h"
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

/* The query_range URL of one query into url. Returns 0, or -1 with e. */
static int range_url(struct buf *url, const char *base_url, const char *query, double start_s,
		     double end_s, double step_s, struct err *e)
{
	char *q = curl_easy_escape(NULL, query, 0);
	if (!q)
		return err_set(e, "out of memory");
	size_t blen = strlen(base_url);
	while (blen && base_url[blen - 1] == '/')
		blen--;
	int rc = buf_addf(url, "%.*s/api/v1/query_range?query=%s&start=%.3f&end=%.3f&step=%.3f", (int)blen,
			  base_url, q, start_s, end_s, step_s);
	curl_free(q);
	return rc ? err_set(e, "query too long") : 0;
}

/* ---- judging ---- */

void prom_metric_config(const struct manifest_metric *m, struct judge_metric_config *c)
{
	judge_metric_config_default(c);
	c->name = m->name;
	c->group = c->name; /* one group per metric: its weight is the metric's */
	if (m->direction == MANIFEST_INCREASE)
		c->direction = JUDGE_INCREASE;
	else if (m->direction == MANIFEST_DECREASE)
		c->direction = JUDGE_DECREASE;
	c->critical = m->critical;
	c->allowed_increase = m->allowed_increase;
	c->allowed_decrease = m->allowed_decrease;
	c->critical_increase = m->critical_increase;
	c->critical_decrease = m->critical_decrease;
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

/* ---- asking Prometheus, asynchronously ---- */

enum { SIDE_CANARY, SIDE_BASE, SIDE_BEFORE, SIDES }; /* BEFORE: the baseline just before */

struct prom_slot {
	prom_run *run;
	int metric, side;
	uint64_t fetch; /* in flight, or 0 */
	char *query;
	double *values;
	size_t n, finite;
	int done;
};

struct prom_run {
	fetcher *f;
	/* what the run needs of the manifest's analysis, copied: a run may outlive the manifest
	 * (the strings of metrics[] and server are the run's own) */
	struct manifest_metric metrics[PROM_MAX_METRICS];
	char *server;
	double pass_score, marginal_score;
	struct prom_target canary, baseline;
	char *strings; /* the targets' strings, one allocation */
	double start_s, end_s, step_s;
	size_t nm;
	int pending;
	uint64_t timer; /* the 0 ms timer that reports an early error from the loop, or 0 */
	char msg[256];  /* the first error; set = the run has failed */
	prom_done_fn *fn;
	void *arg;
	struct prom_slot slot[PROM_MAX_METRICS][SIDES];
};

static void run_free(prom_run *r)
{
	for (size_t i = 0; i < r->nm; i++)
		for (int k = 0; k < SIDES; k++) {
			if (r->slot[i][k].fetch)
				fetch_cancel(r->f, r->slot[i][k].fetch);
			free(r->slot[i][k].query);
			free(r->slot[i][k].values);
		}
	if (r->timer)
		loop_timer_cancel(fetcher_loop(r->f), r->timer);
	for (size_t i = 0; i < r->nm; i++) {
		free((char *)r->metrics[i].name);
		free((char *)r->metrics[i].query);
	}
	free(r->server);
	free(r->strings);
	free(r);
}

static const char *metric_name(const prom_run *r, size_t i)
{
	const char *n = r->metrics[i].name;
	return n ? n : "?";
}

static void judge_all(prom_run *r, enum pl_verdict *v, json_t **evidence);

static void finish(prom_run *r)
{
	enum pl_verdict v = PL_VERDICT_NONE;
	json_t *ev = NULL;
	if (!r->msg[0])
		judge_all(r, &v, &ev);
	r->fn(r->arg, v, r->msg, ev);
	run_free(r);
}

static void fail_run(prom_run *r, size_t metric, const char *why)
{
	if (!r->msg[0])
		snprintf(r->msg, sizeof(r->msg), "metric %s: %s", metric_name(r, metric), why);
}

static int ask(prom_run *r, size_t i, int side, struct err *e);

static void cancel_all(prom_run *r)
{
	for (size_t i = 0; i < r->nm; i++)
		for (int k = 0; k < SIDES; k++)
			if (r->slot[i][k].fetch) {
				fetch_cancel(r->f, r->slot[i][k].fetch);
				r->slot[i][k].fetch = 0;
			}
	r->pending = 0;
}

static void on_answer(void *arg, const struct fetch_result *res)
{
	struct prom_slot *sl = arg;
	prom_run *r = sl->run;
	sl->fetch = 0;
	r->pending--;
	struct err e = {""};
	if (!res->ok) {
		fail_run(r, (size_t)sl->metric, res->error);
	} else if (res->status != 200 && res->status != 400 && res->status != 422) {
		char why[96];
		snprintf(why, sizeof(why), "prometheus answered %ld", res->status);
		fail_run(r, (size_t)sl->metric, why);
	} else if (!(sl->values = malloc(PROM_MAX_SAMPLES * sizeof(double)))) {
		fail_run(r, (size_t)sl->metric, "out of memory");
	} else if (prom_parse_range(res->body, res->body_len, sl->values, PROM_MAX_SAMPLES, &sl->n, &e)) {
		fail_run(r, (size_t)sl->metric, e.msg);
	} else {
		sl->done = 1;
		for (size_t k = 0; k < sl->n; k++)
			sl->finite += !isnan(sl->values[k]);
		/* a baseline that served nothing in the window (the canary has all the traffic at
		 * the last step) is read over as long a time just before it */
		if (sl->side == SIDE_BASE && sl->finite < PROM_MIN_SAMPLES &&
		    ask(r, (size_t)sl->metric, SIDE_BEFORE, &e))
			fail_run(r, (size_t)sl->metric, e.msg);
	}
	if (r->msg[0])
		cancel_all(r); /* one metric that cannot be judged: the run says so now */
	if (r->pending == 0)
		finish(r);
}

/* Starts one query. Returns 0, or -1 with e. */
static int ask(prom_run *r, size_t i, int side, struct err *e)
{
	struct prom_slot *sl = &r->slot[i][side];
	const char *tmpl = r->metrics[i].query, *base = r->server;
	double start = r->start_s, end = r->end_s;
	if (side == SIDE_BEFORE) {
		start = r->start_s - (r->end_s - r->start_s);
		end = r->start_s;
	}
	if (!tmpl)
		return err_set(e, "no query");
	if (!(sl->query = malloc(PROM_MAX_QUERY + 1)))
		return err_set(e, "out of memory");
	if (prom_expand(tmpl, side == SIDE_CANARY ? &r->canary : &r->baseline, sl->query,
			PROM_MAX_QUERY + 1, e))
		return -1;
	struct buf url;
	buf_init(&url, PROM_MAX_QUERY * 3 + 1024);
	if (range_url(&url, base, sl->query, start, end, r->step_s, e)) {
		buf_release(&url);
		return -1;
	}
	struct fetch_req req = {.url = url.data, .timeout_ms = PROM_TIMEOUT_MS,
				.max_response = PROM_MAX_RESPONSE};
	sl->run = r;
	sl->metric = (int)i;
	sl->side = side;
	sl->fetch = fetch_start(r->f, &req, on_answer, sl);
	buf_release(&url);
	if (!sl->fetch)
		return err_set(e, "out of memory");
	r->pending++;
	return 0;
}

static void on_timer(loop *l, void *arg)
{
	(void)l;
	prom_run *r = arg;
	r->timer = 0;
	finish(r);
}

static char *copy_target(char **at, const char *s)
{
	char *d = *at;
	size_t n = strlen(s) + 1;
	memcpy(d, s, n);
	*at += n;
	return d;
}

/* Copies the analysis of svc into r; -1 when out of memory. */
static int copy_analysis(prom_run *r, const struct service_manifest *svc)
{
	r->step_s = (double)svc->analysis.interval_ms / 1000.0;
	r->pass_score = svc->analysis.pass_score;
	r->marginal_score = svc->analysis.marginal_score;
	if (svc->analysis.prometheus && *svc->analysis.prometheus &&
	    !(r->server = strdup(svc->analysis.prometheus)))
		return -1;
	size_t nm = svc->analysis.nmetrics < PROM_MAX_METRICS ? svc->analysis.nmetrics : PROM_MAX_METRICS;
	for (; r->nm < nm; r->nm++) {
		const struct manifest_metric *m = &svc->analysis.metrics[r->nm];
		struct manifest_metric *c = &r->metrics[r->nm];
		*c = *m;
		c->name = m->name ? strdup(m->name) : NULL;
		c->query = m->query ? strdup(m->query) : NULL;
		if ((m->name && !c->name) || (m->query && !c->query)) {
			r->nm++;
			return -1;
		}
	}
	return 0;
}

prom_run *prom_start(fetcher *f, const struct service_manifest *svc, const struct prom_target *canary,
		     const struct prom_target *baseline, double start_s, double end_s,
		     prom_done_fn *fn, void *arg)
{
	prom_run *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	const struct prom_target *t[2] = {canary, baseline};
	size_t len = 0;
	for (int k = 0; k < 2; k++)
		len += strlen(t[k]->service) + strlen(t[k]->version) + strlen(t[k]->region) +
		       strlen(t[k]->env) + 4;
	if (!(r->strings = malloc(len))) {
		free(r);
		return NULL;
	}
	char *at = r->strings;
	struct prom_target *dst[2] = {&r->canary, &r->baseline};
	for (int k = 0; k < 2; k++)
		*dst[k] = (struct prom_target){copy_target(&at, t[k]->service), copy_target(&at, t[k]->version),
					       copy_target(&at, t[k]->region), copy_target(&at, t[k]->env)};
	r->f = f;
	r->fn = fn;
	r->arg = arg;
	r->start_s = start_s;
	r->end_s = end_s;
	if (copy_analysis(r, svc)) {
		run_free(r);
		return NULL;
	}
	if (r->step_s < 0.1)
		r->step_s = 0.1; /* query_range refuses more than 11,000 points: keep windows cheap */
	struct err e = {""};
	if (r->nm && r->server)
		for (size_t i = 0; i < r->nm && !r->msg[0]; i++)
			for (int side = SIDE_CANARY; side <= SIDE_BASE && !r->msg[0]; side++)
				if (ask(r, i, side, &e))
					fail_run(r, i, e.msg);
	if (r->pending == 0 || r->msg[0]) {
		/* nothing asked, or an early error: cancel what started, answer from the loop */
		cancel_all(r);
		if (!(r->timer = loop_timer(fetcher_loop(f), 0, on_timer, r))) {
			run_free(r);
			return NULL;
		}
	}
	return r;
}

void prom_cancel(prom_run *r)
{
	if (r)
		run_free(r);
}

/* Judges every metric from the answers; sets r->msg. */
static void judge_all(prom_run *r, enum pl_verdict *vout, json_t **evidence)
{
	size_t nm = r->nm;
	const char *base = r->server;
	char *msg = r->msg;
	size_t msglen = sizeof(r->msg);
	*vout = PL_VERDICT_NONE;
	*evidence = NULL;
	if (!nm || !base) {
		snprintf(msg, msglen, "no prometheus metrics");
		*vout = PL_VERDICT_PASS;
		return;
	}
	double start_s = r->start_s, end_s = r->end_s;
	struct judge_metric_config cfg[PROM_MAX_METRICS];
	struct judge_metric_result res[PROM_MAX_METRICS];
	const char *groups[PROM_MAX_METRICS];
	double weights[PROM_MAX_METRICS];
	json_t *per = json_array();
	enum pl_verdict v = PL_VERDICT_NONE;
	struct err e = {""};
	if (!per) {
		snprintf(msg, msglen, "prometheus: out of memory");
		return;
	}
	for (size_t i = 0; i < nm; i++) {
		prom_metric_config(&r->metrics[i], &cfg[i]);
		groups[i] = cfg[i].group;
		weights[i] = r->metrics[i].weight;
		const struct prom_slot *c = &r->slot[i][SIDE_CANARY], *b = &r->slot[i][SIDE_BASE];
		double bstart = start_s, bend = end_s;
		if (b->finite < PROM_MIN_SAMPLES && r->slot[i][SIDE_BEFORE].done) {
			b = &r->slot[i][SIDE_BEFORE];
			bstart = start_s - (end_s - start_s);
			bend = start_s;
		}
		if (c->finite < PROM_MIN_SAMPLES || b->finite < PROM_MIN_SAMPLES) {
			snprintf(msg, msglen, "metric %s: waiting for samples (canary %zu, baseline %zu of %d)",
				 cfg[i].name, c->finite, b->finite, PROM_MIN_SAMPLES);
			goto out;
		}
		if (judge_metric(&cfg[i], c->values, c->n, b->values, b->n, &res[i], &e)) {
			snprintf(msg, msglen, "metric %.60s: %.180s", cfg[i].name, e.msg);
			goto out;
		}
		const struct judge_metric_result *jr = &res[i];
		json_t *mw = jr->tested ? json_pack("{s:o, s:o, s:o, s:o, s:b}", "u", jnum(jr->mw.u), "p_value",
						    jnum(jr->mw.p), "estimate", jnum(jr->mw.estimate),
						    "interval", json_pack("[o, o]", jnum(jr->mw.ci_lo), jnum(jr->mw.ci_hi)),
						    "exact", jr->mw.exact)
					: json_null();
		json_array_append_new(
			per, json_pack("{s:s, s:s, s:s, s:[o, o], s:s, s:b, s:I, s:I, s:o, s:o, s:o, s:s, s:s, s:b, s:o}",
				       "metric", cfg[i].name, "query_canary", c->query, "query_baseline", b->query,
				       "baseline_range", jnum(bstart), jnum(bend), "direction",
				       cfg[i].direction == JUDGE_INCREASE   ? "increase"
				       : cfg[i].direction == JUDGE_DECREASE ? "decrease"
									    : "either",
				       "critical", cfg[i].critical, "canary_samples", (json_int_t)jr->n_canary,
				       "baseline_samples", (json_int_t)jr->n_baseline, "effect", jnum(jr->effect),
				       "allowed_increase", jnum(cfg[i].allowed_increase), "critical_increase",
				       jnum(cfg[i].critical_increase), "classification",
				       judge_class_name(jr->classification), "reason", jr->reason,
				       "critical_failure", jr->critical_failure, "mann_whitney", mw));
	}
	struct judge_summary sum;
	double pass = r->pass_score, marginal = r->marginal_score;
	if (judge_score(cfg, res, nm, groups, weights, nm, pass, marginal, &sum, &e)) {
		snprintf(msg, msglen, "prometheus metrics: %.200s", e.msg);
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
	*evidence = json_pack("{s:s, s:s, s:o, s:o, s:f, s:f, s:s, s:b, s:s, s:O}", "provider", "prometheus",
			      "server", base, "start", jnum(start_s), "end", jnum(end_s), "pass_score",
			      pass, "marginal_score", marginal, "verdict", verdict_word(v),
			      "critical_failure", sum.critical_failure, "reason", sum.reason, "metrics", per);
	if (*evidence)
		json_object_set_new(*evidence, "score", json_real(sum.score));
out:
	json_decref(per);
	*vout = v;
}
