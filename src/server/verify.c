#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/prometheus.h"
#include "server/verify.h"
#include "stats/rate.h"
#include "stats/mannwhitney.h"

/* Latency differences below this are not judged: at that scale the scheduler of a loaded host
 * (and a freshly started process warming up) decides, not the release. 1 ms, then 5 ms proved
 * too small on a busy shared 2-core machine: an instance with a tenth of the traffic sleeps
 * between most of its requests and pays the wake-up, so an identical release was 1.3 to 1.5
 * times as often above 5 ms as the stable (12% against 8%), which the test proves in time. */
#define SLOW_FLOOR_US 10000
/* The latency threshold is the stable version's 90th percentile... */
#define SLOW_QUANTILE 0.9
/* ...read once it has served this many requests. */
#define SLOW_MIN_REQUESTS 50
/* The least tolerance on the ratio of exceedances of that threshold. The ratio magnifies a
 * slowdown (a 20% slower log-normal latency, sigma 0.5, exceeds its old p90 1.8 times as
 * often), so the errors' tolerance (default 0.2) would demand proof that latency moved by a
 * few percent at most, which takes thousands of requests. */
#define SLOW_MIN_TOLERANCE 0.5

struct verifier {
	loop *loop;
	router *router;
	fetcher *fetch;           /* Prometheus queries, or NULL */
	json_t *metrics;          /* latest counters snapshot, or NULL */
	uint64_t metrics_at;      /* loop time its request was sent */
	uint64_t asking_since;    /* verify_blind: the start of the current run of asking, 0 */
	uint64_t last_ask;        /* verify_blind: the loop time of the previous call */
	struct window **windows;  /* each one allocated alone (callbacks point at it) */
	size_t nwindows;
};

/* ---- verification windows (in memory; a restart opens a fresh window) ---- */

static struct window *window_get(verifier *vr, int64_t dep, int region, int create)
{
	for (size_t i = 0; i < vr->nwindows; i++)
		if (vr->windows[i]->deployment == dep && vr->windows[i]->region == region)
			return vr->windows[i];
	if (!create)
		return NULL;
	struct window **all = realloc(vr->windows, (vr->nwindows + 1) * sizeof(*all));
	if (!all)
		return NULL;
	vr->windows = all;
	struct window *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	all[vr->nwindows++] = w;
	w->deployment = dep;
	w->region = region;
	w->step = -1;
	return w;
}

static void prom_clear(struct window *w)
{
	prom_cancel(w->prom);
	w->prom = NULL;
	w->prom_done = 0;
	w->prom_msg[0] = '\0';
	json_decref(w->prom_evidence);
	w->prom_evidence = NULL;
}

static void window_free(struct window *w)
{
	prom_clear(w);
	json_decref(w->evidence);
	free(w);
}

void verify_forget(verifier *vr, int64_t dep)
{
	for (size_t i = 0; i < vr->nwindows;) {
		if (vr->windows[i]->deployment == dep) {
			window_free(vr->windows[i]);
			vr->windows[i] = vr->windows[--vr->nwindows];
		} else {
			i++;
		}
	}
}

verifier *verify_new(loop *l, router *r, fetcher *f)
{
	verifier *vr = calloc(1, sizeof(*vr));
	if (vr) {
		vr->loop = l;
		vr->router = r;
		vr->fetch = f;
	}
	return vr;
}

void verify_free(verifier *vr)
{
	if (!vr)
		return;
	for (size_t i = 0; i < vr->nwindows; i++)
		window_free(vr->windows[i]);
	free(vr->windows);
	json_decref(vr->metrics);
	free(vr);
}

void verify_keep_only(verifier *vr, const int64_t *ids, size_t n)
{
	for (size_t w = 0; w < vr->nwindows;) {
		int64_t dep = vr->windows[w]->deployment;
		int live = 0;
		for (size_t k = 0; k < n && !live; k++)
			live = ids[k] == dep;
		if (live)
			w++;
		else
			verify_forget(vr, dep); /* removes every window of dep, this one included */
	}
}

const struct window *verify_window(verifier *vr, int64_t deployment, int region)
{
	return window_get(vr, deployment, region, 0);
}

void verify_reset(verifier *vr, int64_t dep, int region)
{
	struct window *w = window_get(vr, dep, region, 0);
	if (w)
		w->has_base = 0;
}

/* ---- reading the proxy's snapshot ---- */

static const json_t *version_json(const json_t *metrics, const char *route, const char *version)
{
	const json_t *rt = json_object_get(json_object_get(metrics, "routes"), route);
	return json_object_get(json_object_get(rt, "versions"), version);
}

/* Reads one version's cumulative counters from the proxy snapshot. Returns 0 if absent. */
static int read_counts(const json_t *metrics, const char *route, const char *version,
		       struct version_window *w)
{
	memset(w, 0, sizeof(*w));
	const json_t *v = version_json(metrics, route, version);
	if (!v)
		return 0;
	const json_t *resp = json_object_get(v, "responses");
	w->requests = (uint64_t)json_integer_value(json_object_get(v, "requests"));
	/* 5xx as the client saw them: the proxy's own 502/504 for upstream errors included, so
	 * adding upstream_errors would count those twice (docs/proxy.md) */
	w->errors = (uint64_t)json_integer_value(json_object_get(resp, "5xx"));
	const json_t *lat = json_object_get(v, "latency_us");
	const json_t *bounds = json_object_get(lat, "bounds"), *counts = json_object_get(lat, "counts");
	size_t n = json_array_size(bounds);
	if (n > ANALYSIS_MAX_BUCKETS)
		n = ANALYSIS_MAX_BUCKETS;
	w->nbuckets = (int)n;
	for (size_t i = 0; i < n; i++) {
		double b = json_number_value(json_array_get(bounds, i));
		w->bounds_ms[i] = b < 0 ? INFINITY : b / 1000.0;
		w->counts[i] = (uint64_t)json_integer_value(json_array_get(counts, i));
	}
	return 1;
}

/* The sequential method's counters: requests, errors, and from the whole histogram (every
 * bucket) the completed requests and those slower than slow_us (0: none counted). */
static int read_wcounts(const json_t *metrics, const char *route, const char *version,
			uint64_t slow_us, struct window_counts *c)
{
	memset(c, 0, sizeof(*c));
	const json_t *v = version_json(metrics, route, version);
	if (!v)
		return 0;
	c->requests = (uint64_t)json_integer_value(json_object_get(v, "requests"));
	c->errors = (uint64_t)json_integer_value(json_object_get(json_object_get(v, "responses"), "5xx"));
	const json_t *lat = json_object_get(v, "latency_us");
	const json_t *bounds = json_object_get(lat, "bounds"), *counts = json_object_get(lat, "counts");
	for (size_t i = 0; i < json_array_size(counts) && i < json_array_size(bounds); i++) {
		uint64_t k = (uint64_t)json_integer_value(json_array_get(counts, i));
		c->done += k;
		/* bucket i holds (bound[i-1], bound[i]]: all of it is slower than slow_us when its
		 * lower end is at or above slow_us (so the count is exact when slow_us is a bound, and
		 * otherwise starts at the next bound: the same rule for both versions) */
		if (slow_us && i > 0 &&
		    json_number_value(json_array_get(bounds, i - 1)) >= (double)slow_us)
			c->slow += k;
	}
	return 1;
}

/* The smallest histogram bound at or above the q quantile of a version's cumulative latency
 * (microseconds), or 0 when it has served fewer than min requests. */
static uint64_t quantile_bound(const json_t *metrics, const char *route, const char *version,
			       double q, uint64_t min)
{
	const json_t *lat = json_object_get(version_json(metrics, route, version), "latency_us");
	const json_t *bounds = json_object_get(lat, "bounds"), *counts = json_object_get(lat, "counts");
	size_t n = json_array_size(counts);
	uint64_t total = 0, seen = 0;
	for (size_t i = 0; i < n; i++)
		total += (uint64_t)json_integer_value(json_array_get(counts, i));
	if (total < min || !total)
		return 0;
	for (size_t i = 0; i < n; i++) {
		seen += (uint64_t)json_integer_value(json_array_get(counts, i));
		if ((double)seen >= q * (double)total) {
			double b = json_number_value(json_array_get(bounds, i));
			/* in the +Inf bucket: the last finite bound */
			if (b < 0 && i > 0)
				b = json_number_value(json_array_get(bounds, i - 1));
			return b > 0 ? (uint64_t)b : 1;
		}
	}
	return 0;
}

static void window_diff(struct version_window *now, const struct version_window *base)
{
	now->requests = now->requests >= base->requests ? now->requests - base->requests : 0;
	now->errors = now->errors >= base->errors ? now->errors - base->errors : 0;
	for (int i = 0; i < now->nbuckets && i < base->nbuckets; i++)
		now->counts[i] = now->counts[i] >= base->counts[i] ? now->counts[i] - base->counts[i] : 0;
}

static uint64_t sub0(uint64_t a, uint64_t b)
{
	return a >= b ? a - b : 0; /* a restarted proxy starts its counters again */
}

/* The router's latest snapshot; the router reads the next one in the background meanwhile
 * (one read in flight at a time, so asking for every region of a tick costs one read), and a
 * verdict reads counters up to a tick old (the tests work on differences between polls). */
static void refresh_metrics(verifier *vr)
{
	uint64_t at = 0;
	const json_t *m = router_latest_metrics(vr->router, &at);
	if (m && m != vr->metrics) {
		json_decref(vr->metrics);
		vr->metrics = json_incref((json_t *)m);
		vr->metrics_at = at;
	}
}

int verify_blind(verifier *vr)
{
	refresh_metrics(vr);
	uint64_t now = loop_now(vr->loop);
	/* counters are old either because nobody asked for a while (no verdict was due) or because
	 * the proxy does not answer: only asking for VERIFY_STALE_MS in vain tells them apart, so
	 * a run of asking that stopped for longer than VERIFY_ASK_GAP_MS starts again */
	if (!vr->asking_since || now - vr->last_ask > VERIFY_ASK_GAP_MS)
		vr->asking_since = now;
	vr->last_ask = now;
	if (!vr->metrics)
		return 1; /* none since the server started */
	if (now <= vr->metrics_at + VERIFY_STALE_MS)
		return 0;
	uint64_t from = vr->asking_since > vr->metrics_at ? vr->asking_since : vr->metrics_at;
	return now - from >= VERIFY_STALE_MS;
}

/* JSON has no infinity or NaN: those become null (an open end of an interval). */
static json_t *jnum(double x)
{
	return isfinite(x) ? json_real(x) : json_null();
}

/* Evidence of one two-sample counts test, plus its absolute floor test. */
static json_t *counts_evidence(const char *metric, const struct seq_counts *s, double floor_limit,
			       double floor_log_e, int floor_pass, int decision)
{
	struct seq_evidence ev;
	seq_counts_evidence(s, &ev);
	return json_pack("{s:s, s:s, s:f, s:f, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:I, s:I, s:o, s:o, "
			 "s:{s:s, s:o, s:o, s:f, s:s}, s:s}",
			 "metric", metric, "test", "rate ratio canary/stable (Lindon-Malek conditional binomial)",
			 "alpha", s->alpha, "tolerance", s->tolerance, "e_fail", jnum(ev.e_fail), "e_pass",
			 jnum(ev.e_pass), "e_threshold", jnum(ev.threshold), "ratio_estimate",
			 jnum(ev.ratio_estimate), "ratio_lo", jnum(ev.ratio_lo), "ratio_hi", jnum(ev.ratio_hi),
			 "canary_events", (json_int_t)ev.canary_events, "canary_requests",
			 (json_int_t)ev.canary_trials, "stable_events", (json_int_t)ev.baseline_events,
			 "stable_requests", (json_int_t)ev.baseline_trials, "share_lo", jnum(ev.share_lo),
			 "share_hi", jnum(ev.share_hi), "floor", "test", "canary rate below limit (one-sample)",
			 "limit", jnum(floor_limit), "e_value", jnum(exp(floor_log_e)), "e_threshold",
			 1 / s->alpha, "decision", floor_pass ? "pass" : "continue", "decision",
			 decision == PL_VERDICT_FAIL ? "fail" : decision == PL_VERDICT_PASS ? "pass" : "continue");
}

/* The canary's share of traffic in this window, known from the pipeline's weights (see
 * pipeline_desired), or -1 (estimated by the test from the request split) otherwise. */
static double canary_share(const struct pl_state *st, const struct pl_region *r)
{
	if (!r->stable[0])
		return 1;
	if (r->state == R_STEP && st->cfg.strategy == PL_CANARY && r->step >= 0 && r->step < st->cfg.nsteps)
		return st->cfg.steps[r->step] / 100.0;
	if (r->state == R_SIDE_BY_SIDE)
		return 0.5;
	if (r->state == R_HOLD)
		return 1;
	return -1;
}

/* What the canary is compared with in region ri now: its baseline while one is routed (the
 * share is then the canary's part of canary + baseline), else the stable release (NULL when
 * there is none) with the share from canary_share. */
struct reference {
	const char *version;
	const char *word; /* "baseline" or "stable", for messages */
	double share;
	char label[PL_LABEL_MAX];
};

static void reference_of(const struct pl_state *st, int ri, struct reference *ref)
{
	const struct pl_region *r = &st->regions[ri];
	int wb = pipeline_baseline(st, ri, ref->label, sizeof(ref->label));
	if (wb > 0 && r->state == R_STEP) {
		int w = st->cfg.steps[r->step];
		ref->version = ref->label;
		ref->word = "baseline";
		ref->share = (double)w / (w + wb);
		return;
	}
	ref->version = r->stable[0] ? r->stable : NULL;
	ref->word = "stable";
	ref->share = canary_share(st, r);
}

/* One-sample test that a rate is above the old version's recorded one: the recorded rate's
 * upper bound at level a, times 1 + tolerance, is the limit; returns the log e-value. */
static double above_recorded(uint64_t events, uint64_t trials, uint64_t rec_events, uint64_t rec_trials,
			     double a, double tolerance, double *limit)
{
	*limit = rate_upper(rec_events, rec_trials, a) * (1 + tolerance);
	return *limit < 1 ? rate_log_e(events, trials, *limit, 0) : -INFINITY;
}

struct seq_params {
	double alpha, tolerance;
	double err_floor;  /* errors pass once the canary's rate is proven below this */
	double slow_tolerance; /* on the ratio of slow requests: max(tolerance, SLOW_MIN_TOLERANCE) */
	double slow_floor; /* slow requests pass once the canary's share is proven below this */
};

static void seq_params(const struct service_manifest *svc, struct seq_params *p)
{
	p->alpha = svc->analysis.alpha;
	if (!(p->alpha > 0 && p->alpha <= 0.5))
		p->alpha = 0.05;
	p->tolerance = svc->analysis.tolerance;
	double mer = svc->analysis.max_error_rate;
	double meri = svc->analysis.max_error_rate_increase;
	/* proven below both: within the absolute limit, and whatever the stable's rate, no more
	 * than the allowed increase above it */
	p->err_floor = mer < meri ? mer : meri;
	p->slow_tolerance = p->tolerance > SLOW_MIN_TOLERANCE ? p->tolerance : SLOW_MIN_TOLERANCE;
	p->slow_floor = (1 - SLOW_QUANTILE) * (1 + p->slow_tolerance);
}

/* One poll of a canary step with the sequential method. */
static enum pl_verdict seq_step(struct window *w, const json_t *metrics, const char *route,
				const struct pl_state *st, const struct pl_region *r, const struct reference *ref,
				const struct seq_params *p, char *msg, size_t msglen, json_t **evidence)
{
	double share = ref->share;
	const char *rw = ref->word;
	if (!w->slow_us && r->stable[0]) {
		uint64_t b = quantile_bound(metrics, route, r->stable, SLOW_QUANTILE, SLOW_MIN_REQUESTS);
		if (b) {
			/* fixed before any of the data it will judge: the counts start now */
			w->slow_us = b < SLOW_FLOOR_US ? SLOW_FLOOR_US : b;
			struct window_counts c;
			read_wcounts(metrics, route, st->version, w->slow_us, &c);
			w->last_new.slow = c.slow;
			w->last_new.done = c.done;
			if (!ref->version || !read_wcounts(metrics, route, ref->version, w->slow_us, &c))
				memset(&c, 0, sizeof(c));
			w->last_old.slow = c.slow;
			w->last_old.done = c.done;
		}
	}
	struct window_counts cn, co;
	read_wcounts(metrics, route, st->version, w->slow_us, &cn);
	if (!ref->version || !read_wcounts(metrics, route, ref->version, w->slow_us, &co))
		memset(&co, 0, sizeof(co));
	seq_counts_update(&w->seq_err, sub0(cn.errors, w->last_new.errors), sub0(cn.requests, w->last_new.requests),
			  sub0(co.errors, w->last_old.errors), sub0(co.requests, w->last_old.requests), share);
	if (w->slow_us)
		seq_counts_update(&w->seq_slow, sub0(cn.slow, w->last_new.slow), sub0(cn.done, w->last_new.done),
				  sub0(co.slow, w->last_old.slow), sub0(co.done, w->last_old.done), share);
	w->last_new = cn;
	w->last_old = co;
	if (w->decided == PL_VERDICT_FAIL && w->evidence) {
		/* a proven regression stays proven, with the evidence of the moment it was */
		snprintf(msg, msglen, "%s", w->verdict);
		*evidence = json_incref(w->evidence);
		return PL_VERDICT_FAIL;
	}
	const struct seq_counts *se = &w->seq_err, *ss = &w->seq_slow;
	double thr = log(1 / se->alpha);
	/* fail: a ratio above 1 proven, at any poll (also after a pass: the step goes on) */
	int err_fail = se->decision == SEQ_FAIL || se->log_e_fail >= thr;
	int slow_fail = w->slow_us && (ss->decision == SEQ_FAIL || ss->log_e_fail >= thr);
	double err_fe = rate_log_e(se->canary_events, se->canary_trials, p->err_floor, 1);
	double slow_fe = rate_log_e(ss->canary_events, ss->canary_trials, p->slow_floor, 1);
	/* With all the traffic on the canary (last step, blue-green hold) the ratio tests see no
	 * baseline: compare its error rate with the stable's recorded at the previous step. */
	double rec_err_limit = NAN, rec_le = -INFINITY;
	if (share >= 1 && w->has_rec) {
		const struct window_counts *o = &w->rec_old;
		rec_le = above_recorded(se->canary_events, se->canary_trials, o->errors, o->requests, se->alpha,
					p->tolerance, &rec_err_limit);
		err_fail |= rec_le >= thr;
		/* latency is not compared with a record: the version then served a share of the
		 * load and now serves all of it, which moves latency by itself */
	}
	int err_pass = !err_fail && (se->decision == SEQ_PASS || err_fe >= thr);
	int slow_pass = w->slow_us && !slow_fail && (ss->decision == SEQ_PASS || slow_fe >= thr);
	enum pl_verdict v = PL_VERDICT_NONE;
	if (err_fail || slow_fail)
		v = PL_VERDICT_FAIL;
	else if (w->decided == PL_VERDICT_PASS || (err_pass && slow_pass))
		v = PL_VERDICT_PASS;
	if (v != PL_VERDICT_NONE)
		w->decided = v;
	struct seq_evidence ee;
	seq_counts_evidence(se, &ee);
	if (err_fail && rec_le >= thr) {
		snprintf(msg, msglen, "error rate above the stable's recorded at the previous step (proven, e=%.3g >= %.3g): "
			 "canary %llu errors of %llu, limit %.3f%% (recorded %llu of %llu)",
			 exp(rec_le), 1 / se->alpha, (unsigned long long)ee.canary_events,
			 (unsigned long long)ee.canary_trials, rec_err_limit * 100,
			 (unsigned long long)w->rec_old.errors, (unsigned long long)w->rec_old.requests);
	} else if (err_fail) {
		snprintf(msg, msglen, "error rate higher than %s's (proven, e=%.3g >= %.3g): canary %llu errors of %llu, "
			 "%s %llu of %llu, ratio >= %.2f",
			 rw, ee.e_fail, 1 / se->alpha, (unsigned long long)ee.canary_events,
			 (unsigned long long)ee.canary_trials, rw, (unsigned long long)ee.baseline_events,
			 (unsigned long long)ee.baseline_trials, ee.ratio_lo);
	} else if (slow_fail) {
		struct seq_evidence es;
		seq_counts_evidence(ss, &es);
		snprintf(msg, msglen, "more canary requests slower than %.1f ms than %s's (proven, e=%.3g): canary %llu "
			 "of %llu, %s %llu of %llu, ratio >= %.2f",
			 (double)w->slow_us / 1000, rw, es.e_fail, (unsigned long long)es.canary_events,
			 (unsigned long long)es.canary_trials, rw, (unsigned long long)es.baseline_events,
			 (unsigned long long)es.baseline_trials, es.ratio_lo);
	} else if (v == PL_VERDICT_PASS) {
		snprintf(msg, msglen, "no regression (proven): canary %llu errors of %llu, %s %llu of %llu; "
			 "slow (> %.1f ms) canary %llu of %llu",
			 (unsigned long long)ee.canary_events, (unsigned long long)ee.canary_trials, rw,
			 (unsigned long long)ee.baseline_events, (unsigned long long)ee.baseline_trials,
			 (double)w->slow_us / 1000, (unsigned long long)ss->canary_events,
			 (unsigned long long)ss->canary_trials);
	} else {
		snprintf(msg, msglen, "collecting: canary %llu errors of %llu (%s %llu of %llu), errors %s, latency %s",
			 (unsigned long long)ee.canary_events, (unsigned long long)ee.canary_trials, rw,
			 (unsigned long long)ee.baseline_events, (unsigned long long)ee.baseline_trials,
			 err_pass ? "pass" : "undecided",
			 !w->slow_us ? "waiting for stable's p90" : slow_pass ? "pass" : "undecided");
	}
	json_t *tests = json_array();
	json_array_append_new(tests, counts_evidence("error_rate", se, p->err_floor, err_fe, err_pass,
						     err_fail ? PL_VERDICT_FAIL : err_pass ? PL_VERDICT_PASS : PL_VERDICT_NONE));
	if (w->slow_us) {
		json_t *t = counts_evidence("slow_requests", ss, p->slow_floor, slow_fe, slow_pass,
					    slow_fail ? PL_VERDICT_FAIL : slow_pass ? PL_VERDICT_PASS : PL_VERDICT_NONE);
		json_object_set_new(t, "slow_ms", json_real((double)w->slow_us / 1000));
		json_object_set_new(t, "threshold_rule", json_string("stable's p90 before the counts, at least 10 ms"));
		json_array_append_new(tests, t);
	}
	if (share >= 1 && w->has_rec) {
		const struct window_counts *o = &w->rec_old;
		json_array_append_new(tests, json_pack("{s:s, s:s, s:I, s:I, s:o, s:o, s:f, s:s}", "metric",
						       "error_rate", "test", "one-sample: rate above the stable's recorded",
						       "recorded_events", (json_int_t)o->errors, "recorded_requests",
						       (json_int_t)o->requests, "limit", jnum(rec_err_limit), "e_value",
						       jnum(exp(rec_le)), "e_threshold", 1 / se->alpha, "decision",
						       rec_le >= thr ? "fail" : "continue"));
	}
	*evidence = json_pack("{s:s, s:s, s:f, s:f, s:o, s:{s:I, s:I}, s:{s:I, s:I}, s:o}", "method", "sequential",
			      "verdict", v == PL_VERDICT_FAIL ? "fail" : v == PL_VERDICT_PASS ? "pass" : "continue",
			      "alpha", p->alpha, "tolerance", p->tolerance, "share", jnum(share < 0 ? NAN : share), "canary",
			      "requests", (json_int_t)se->canary_trials, "errors", (json_int_t)se->canary_events,
			      "stable", "requests", (json_int_t)se->baseline_trials, "errors",
			      (json_int_t)se->baseline_events, "tests", tests);
	/* "stable" above holds the counts of what the canary was compared with: */
	json_object_set_new(*evidence, "compared_with", json_string(rw));
	if (ref->version)
		json_object_set_new(*evidence, "compared_version", json_string(ref->version));
	return v;
}

/* One poll of a bake with the sequential method: the new stable against the old version's
 * recorded error rate, a one-sample test that the new rate is above the recorded one (its
 * upper confidence bound) times 1 + tolerance. A bake only fails or goes on: it ends by time. */
static enum pl_verdict seq_bake(struct window *w, const json_t *metrics, const char *route,
				const struct pl_state *st, const struct seq_params *p, char *msg,
				size_t msglen, json_t **evidence)
{
	struct window_counts c;
	read_wcounts(metrics, route, st->version, w->slow_us, &c);
	uint64_t req = sub0(c.requests, w->last_new.requests), err = sub0(c.errors, w->last_new.errors);
	uint64_t done = sub0(c.done, w->last_new.done), slow = sub0(c.slow, w->last_new.slow);
	double a = p->alpha; /* one test: the whole alpha */
	double thr = log(1 / a);
	const struct window_counts *o = &w->rec_old;
	double p_err;
	double le = above_recorded(err, req, o->errors, o->requests, a, p->tolerance, &p_err);
	int err_fail = le >= thr;
	enum pl_verdict v = err_fail ? PL_VERDICT_FAIL : PL_VERDICT_PASS;
	if (err_fail)
		snprintf(msg, msglen, "error rate above the previous release's (proven, e=%.3g): %llu errors of %llu "
			 "requests, limit %.3f%% (recorded %llu of %llu)",
			 exp(le), (unsigned long long)err, (unsigned long long)req, p_err * 100,
			 (unsigned long long)o->errors, (unsigned long long)o->requests);
	else
		snprintf(msg, msglen, "no regression against the previous release: %llu errors of %llu requests "
			 "(limit %.3f%%)", (unsigned long long)err, (unsigned long long)req, p_err * 100);
	json_t *tests = json_array();
	json_array_append_new(tests, json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:o, s:f, s:s}", "metric",
					       "error_rate", "test", "one-sample: rate above recorded bound",
					       "events", (json_int_t)err, "requests", (json_int_t)req,
					       "recorded_events", (json_int_t)o->errors, "recorded_requests",
					       (json_int_t)o->requests, "limit", jnum(p_err), "e_value",
					       jnum(exp(le)), "e_threshold", 1 / a, "decision",
					       err_fail ? "fail" : "continue"));
	/* Latency is reported, not tested: the recorded window served a share of the load, the
	 * new stable serves all of it, and latency moves with load by itself. */
	if (w->slow_us && o->done > 0)
		json_array_append_new(tests, json_pack("{s:s, s:f, s:I, s:I, s:I, s:I, s:s}", "metric",
						       "slow_requests", "slow_ms", (double)w->slow_us / 1000,
						       "events", (json_int_t)slow, "requests", (json_int_t)done,
						       "recorded_events", (json_int_t)o->slow, "recorded_requests",
						       (json_int_t)o->done, "decision", "reported, not tested"));
	*evidence = json_pack("{s:s, s:s, s:f, s:f, s:o}", "method", "sequential", "verdict",
			      v == PL_VERDICT_FAIL ? "fail" : "pass", "alpha", p->alpha, "tolerance",
			      p->tolerance, "tests", tests);
	return v;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void prom_done(void *arg, enum pl_verdict v, const char *msg, json_t *evidence)
{
	struct window *w = arg;
	w->prom = NULL;
	snprintf(w->prom_msg, sizeof(w->prom_msg), "%s", msg);
	if (v == PL_VERDICT_NONE) {
		json_decref(evidence); /* no test was made (no samples yet, Prometheus away): ask again */
		return;
	}
	w->prom_done = 1;
	w->prom_verdict = v;
	json_decref(w->prom_evidence);
	w->prom_evidence = evidence;
}

/* The Prometheus metrics of a canary step: judged once, when the step's minimum duration has
 * passed (a fixed-sample test is only valid when looked at once). The queries run in the
 * background; a later poll sees the verdict. */
/* The custom metrics of a step: the canary against what it is compared with (the baseline's
 * label, STABLE~baseline, is the proxy's version label of its series, and {version} of its
 * instances' arguments). */
static void prom_step(verifier *vr, struct window *w, const struct service_manifest *svc,
		      const char *env, const struct pl_state *st, const struct pl_region *r,
		      const struct reference *ref)
{
	if (w->prom_done || w->prom || !svc->analysis.nmetrics || !ref->version)
		return;
	int64_t now = wall_ms();
	if (now - w->opened_ms < st->cfg.step_duration_ms)
		return;
	struct prom_target canary = {svc->name, st->version, r->name, env};
	struct prom_target base = {svc->name, ref->version, r->name, env};
	w->prom = prom_start(vr->fetch, svc, &canary, &base, (double)w->opened_ms / 1000, (double)now / 1000,
			     prom_done, w);
	if (w->prom && !w->prom_msg[0])
		snprintf(w->prom_msg, sizeof(w->prom_msg), "asking prometheus");
}

enum pl_verdict verify_region(verifier *vr, int64_t dep, const struct service_manifest *svc, const char *env,
			      const struct pl_state *st, int ri, char *msg, size_t msglen)
{
	const struct pl_region *r = &st->regions[ri];
	struct window *w = window_get(vr, dep, ri, 1);
	if (!w)
		return PL_VERDICT_NONE;
	refresh_metrics(vr);
	if (!vr->metrics) {
		snprintf(msg, msglen, "no metrics from the proxy yet");
		return PL_VERDICT_NONE;
	}
	char route[256];
	router_route_name(route, sizeof(route), svc->name, env, r->name);
	int sequential = svc->analysis.method == MANIFEST_SEQUENTIAL;
	struct seq_params sp;
	seq_params(svc, &sp);
	struct reference ref;
	reference_of(st, ri, &ref);
	struct version_window cur_new, cur_old;
	read_counts(vr->metrics, route, st->version, &cur_new);
	int has_old = ref.version && read_counts(vr->metrics, route, ref.version, &cur_old);
	if (!has_old)
		memset(&cur_old, 0, sizeof(cur_old));
	/* a bake is its own window, compared with the old version's last recorded window */
	int baking = r->state == R_BAKING;
	int wstep = baking ? -2 : r->step;
	if (w->step != wstep || !w->has_base) {
		/* The proxy's counters arrive in the background: a snapshot requested before this
		 * step began (before its route went out, at the end of the previous tick) may hold
		 * requests split with the previous step's weights. Open on one requested since. */
		uint64_t now = loop_now(vr->loop);
		if (!w->opening || w->opening_step != wstep) {
			w->opening = 1;
			w->opening_step = wstep;
			w->opening_after = now;
		}
		if (vr->router && vr->metrics_at < w->opening_after) {
			snprintf(msg, msglen, "window opening: waiting for the proxy's counters of this step");
			return PL_VERDICT_NONE;
		}
		w->opening = 0;
		/* a new window: everything before this moment belongs to another step */
		w->step = wstep;
		w->has_base = 1;
		w->base_new = cur_new;
		w->base_old = cur_old;
		w->decided = PL_VERDICT_NONE;
		w->opened_ms = wall_ms();
		prom_clear(w);
		/* errors and latency are two tests: each gets half of alpha */
		seq_counts_init(&w->seq_err, sp.alpha / 2, sp.tolerance);
		seq_counts_init(&w->seq_slow, sp.alpha / 2, sp.slow_tolerance);
		if (!baking)
			w->slow_us = 0; /* a bake keeps the threshold its baseline was recorded with */
		read_wcounts(vr->metrics, route, st->version, w->slow_us, &w->last_new);
		if (!ref.version || !read_wcounts(vr->metrics, route, ref.version, w->slow_us, &w->last_old))
			memset(&w->last_old, 0, sizeof(w->last_old));
		snprintf(w->verdict, sizeof(w->verdict), "window opened");
		snprintf(msg, msglen, "window opened");
		return PL_VERDICT_NONE;
	}
	window_diff(&cur_new, &w->base_new);
	window_diff(&cur_old, &w->base_old);
	struct analysis_limits lim = {
		.min_requests = (uint64_t)svc->analysis.min_requests,
		.max_error_rate = svc->analysis.max_error_rate,
		.max_error_rate_increase = svc->analysis.max_error_rate_increase,
		.max_p99_ms = (double)svc->analysis.max_p99_latency_ms,
		.reference = ref.word,
	};
	json_t *evidence = NULL;
	enum pl_verdict v;
	if (sequential && baking && w->has_rec) {
		v = seq_bake(w, vr->metrics, route, st, &sp, msg, msglen, &evidence);
	} else if (sequential && !baking) {
		v = seq_step(w, vr->metrics, route, st, r, &ref, &sp, msg, msglen, &evidence);
		/* the old version over this step, for the bake that follows the promotion */
		const struct seq_counts *se = &w->seq_err, *ss = &w->seq_slow;
		if (se->baseline_trials > 0 && ref.share < 1) {
			w->rec_old = (struct window_counts){se->baseline_trials, se->baseline_events,
							    ss->baseline_trials, ss->baseline_events};
			w->has_rec = 1;
		}
	} else {
		/* threshold; also a sequential bake after a restart (nothing recorded): absolute
		 * limits only */
		const struct version_window *base = NULL;
		if (baking)
			base = w->has_recorded ? &w->recorded_old : NULL;
		else if (has_old)
			base = &cur_old;
		v = analysis_threshold(&lim, &cur_new, base, msg, msglen, &evidence);
		if (!baking && has_old && cur_old.requests > 0) {
			w->recorded_old = cur_old;
			w->has_recorded = 1;
		}
	}
	/* custom Prometheus metrics: a canary step passes only when they pass too */
	if (!baking && v != PL_VERDICT_FAIL) {
		prom_step(vr, w, svc, env, st, r, &ref);
		if (svc->analysis.nmetrics) {
			if (w->prom_done && w->prom_verdict == PL_VERDICT_FAIL) {
				v = PL_VERDICT_FAIL;
				snprintf(msg, msglen, "%s", w->prom_msg);
			} else if (v == PL_VERDICT_PASS && !(w->prom_done && w->prom_verdict == PL_VERDICT_PASS)) {
				char inner[192];
				snprintf(inner, sizeof(inner), "%s", msg);
				snprintf(msg, msglen, "%s; waiting for prometheus metrics: %s", inner,
					 w->prom_msg[0] ? w->prom_msg : "the step's minimum duration");
				v = PL_VERDICT_NONE;
			} else if (v == PL_VERDICT_PASS) {
				char inner[160];
				snprintf(inner, sizeof(inner), "%s", msg);
				snprintf(msg, msglen, "%s; %s", inner, w->prom_msg);
			}
		}
		if (evidence && w->prom_evidence)
			json_object_set(evidence, "prometheus", w->prom_evidence);
	}
	snprintf(w->verdict, sizeof(w->verdict), "%s", msg);
	if (evidence) {
		json_object_set_new(evidence, "region", json_string(r->name));
		if (baking)
			json_object_set_new(evidence, "phase", json_string("bake"));
		else
			json_object_set_new(evidence, "step_percent",
					    json_integer(r->stable[0] && r->step >= 0 && r->step < st->cfg.nsteps
								 ? st->cfg.steps[r->step]
								 : 100));
		json_decref(w->evidence);
		w->evidence = evidence;
	}
	return v;
}
