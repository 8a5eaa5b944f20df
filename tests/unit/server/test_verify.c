/* Unit tests of the verification: src/server/prometheus.h (templates,
 * query_range answers, verdicts of a score, metric configuration) and src/server/verify.h
 * (the one-sample e-values of the sequential method, the recorded-rate bound, and
 * verify_region's sequential method on synthetic proxy snapshots: abort, pass by the floors,
 * latency, the 100% step and the bake against the recorded stable); prom_start against a
 * fake Prometheus served here on loopback. */
#include <criterion/criterion.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop/loop.h"
#include "server/prometheus.h"
#include "server/verify.h"
#include "support/loopback.h"

static const struct prom_target canary = {"metadata", "v2", "east", "production"};

Test(prom_expand, substitutes_every_placeholder)
{
	char out[256];
	struct err e = {""};
	cr_assert_eq(prom_expand("x{service=\"{service}\",version=\"{version}\",region=\"{region}\","
				 "env=\"{env}\"}",
				 &canary, out, sizeof(out), &e),
		     0, "%s", e.msg);
	cr_expect_str_eq(out, "x{service=\"metadata\",version=\"v2\",region=\"east\",env=\"production\"}");
	cr_assert_eq(prom_expand("sum by (le) (r{route=\"{service}.{env}.{region}\"}[30s])", &canary, out,
				 sizeof(out), &e),
		     0);
	cr_expect_str_eq(out, "sum by (le) (r{route=\"metadata.production.east\"}[30s])");
}

Test(prom_expand, escapes_values_and_keeps_promql_braces)
{
	struct prom_target t = {"a\"b", "v\\1", "r", "e"};
	char out[128];
	struct err e = {""};
	cr_assert_eq(prom_expand("{x=\"1\"} {} {{ s=\"{service}\" v=\"{version}\"", &t, out, sizeof(out), &e), 0);
	cr_expect_str_eq(out, "{x=\"1\"} {} {{ s=\"a\\\"b\" v=\"v\\\\1\"");
}

Test(prom_expand, refuses_unknown_placeholders_and_overflow)
{
	char out[16];
	struct err e = {""};
	cr_expect_eq(prom_expand("up{job=\"{jobname}\"}", &canary, out, sizeof(out), &e), -1);
	cr_expect(strstr(e.msg, "unknown placeholder '{jobname}'"), "%s", e.msg);
	cr_expect_eq(prom_expand("up{x=\"{Service}\"}", &canary, out, sizeof(out), &e), -1);
	cr_expect(strstr(e.msg, "unknown placeholder '{Service}'"), "%s", e.msg);
	cr_expect_eq(prom_expand("up{x=\"{service", &canary, out, sizeof(out), &e), 0);
	cr_expect_str_eq(out, "up{x=\"{service");
	/* "metadata" makes the result 17 bytes: one more than fits */
	cr_expect_eq(prom_expand("123456789{service}", &canary, out, sizeof(out), &e), -1);
	cr_expect(strstr(e.msg, "longer than 15 bytes"), "%s", e.msg);
	char big[18];
	cr_expect_eq(prom_expand("12345678{env}", &canary, big, sizeof(big), &e), -1);
	cr_expect_eq(prom_expand("1234567{env}", &canary, big, sizeof(big), &e), 0);
	cr_expect_str_eq(big, "1234567production");
}

static const char matrix[] =
	"{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["
	"{\"metric\":{\"version\":\"v2\"},\"values\":[[1700000000,\"0.5\"],[1700000001.5,\"1e-3\"],"
	"[1700000003,\"NaN\"],[1700000004,\"+Inf\"]]},"
	"{\"metric\":{\"version\":\"v2\",\"x\":\"y\"},\"values\":[[1700000000,\"2\"]]}]}}";

Test(prom_parse, reads_every_series_in_order)
{
	double v[8];
	size_t n = 99;
	struct err e = {""};
	cr_assert_eq(prom_parse_range(matrix, strlen(matrix), v, 8, &n, &e), 0, "%s", e.msg);
	cr_assert_eq(n, 5);
	cr_expect_eq(v[0], 0.5);
	cr_expect_eq(v[1], 1e-3);
	cr_expect(isnan(v[2]));
	cr_expect(isnan(v[3]), "an infinite ratio is as undefined as NaN for the judge");
	cr_expect_eq(v[4], 2);
}

Test(prom_parse, limits_and_errors)
{
	double v[8];
	size_t n;
	struct err e = {""};
	cr_expect_eq(prom_parse_range(matrix, strlen(matrix), v, 4, &n, &e), -1);
	cr_expect(strstr(e.msg, "more than 4 values"), "%s", e.msg);
	const char *err = "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"parse error at char 5\"}";
	cr_expect_eq(prom_parse_range(err, strlen(err), v, 8, &n, &e), -1);
	cr_expect_str_eq(e.msg, "prometheus: bad_data: parse error at char 5");
	const char *vec = "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[]}}";
	cr_expect_eq(prom_parse_range(vec, strlen(vec), v, 8, &n, &e), -1);
	cr_expect(strstr(e.msg, "not a matrix (resultType vector)"), "%s", e.msg);
	const char *badval = "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["
			     "{\"values\":[[1,\"12abc\"]]}]}}";
	cr_expect_eq(prom_parse_range(badval, strlen(badval), v, 8, &n, &e), -1);
	cr_expect(strstr(e.msg, "\"12abc\" is not a number"), "%s", e.msg);
	const char *badpair = "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":["
			      "{\"values\":[[1,2]]}]}}";
	cr_expect_eq(prom_parse_range(badpair, strlen(badpair), v, 8, &n, &e), -1);
	cr_expect_eq(prom_parse_range("{\"status\":", 10, v, 8, &n, &e), -1);
	cr_expect(strstr(e.msg, "not JSON"), "%s", e.msg);
	cr_expect_eq(prom_parse_range(matrix, PROM_MAX_RESPONSE + 1, v, 8, &n, &e), -1);
	const char *empty = "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[]}}";
	cr_expect_eq(prom_parse_range(empty, strlen(empty), v, 8, &n, &e), 0);
	cr_expect_eq(n, 0);
}

Test(prom_verdict, maps_scores_to_pipeline_verdicts)
{
	struct judge_summary s = {.score = 100, .verdict = JUDGE_VERDICT_PASS};
	cr_expect_eq(prom_verdict(&s), PL_VERDICT_PASS);
	s.verdict = JUDGE_VERDICT_MARGINAL;
	cr_expect_eq(prom_verdict(&s), PL_VERDICT_INCONCLUSIVE);
	s.verdict = JUDGE_VERDICT_FAIL;
	cr_expect_eq(prom_verdict(&s), PL_VERDICT_FAIL);
	s.verdict = JUDGE_VERDICT_PASS;
	s.critical_failure = 1;
	cr_expect_eq(prom_verdict(&s), PL_VERDICT_FAIL);
}

/* A metric as the manifest validator normalizes it (its defaults filled). */
static struct manifest_metric metric(const char *name, const char *query, enum manifest_direction d)
{
	return (struct manifest_metric){.name = name, .query = query, .direction = d, .weight = 1.0,
					.allowed_increase = 1.0, .allowed_decrease = 1.0,
					.critical_increase = 1.0, .critical_decrease = 1.0};
}

/* A Service whose analysis asks server about metrics m[0..n) (the other defaults filled). */
static struct service_manifest prom_service(struct manifest_metric *m, size_t n, const char *server)
{
	struct service_manifest s = {.name = "metadata"};
	s.analysis.metrics = m;
	s.analysis.nmetrics = n;
	s.analysis.prometheus = server;
	s.analysis.interval_ms = 1000;
	s.analysis.pass_score = 95;
	s.analysis.marginal_score = 75;
	return s;
}

/* End to end through the judge, as prom_judge does once the samples are in: a canary whose
 * error ratio is far above the baseline's scores 0 and fails; an identical one passes. */
Test(prom_verdict, judge_results_to_verdicts)
{
	struct manifest_metric m = metric("errors", "x", MANIFEST_INCREASE);
	m.allowed_increase = 1.2;
	m.critical_increase = 2.0;
	struct judge_metric_config c;
	prom_metric_config(&m, &c);
	cr_expect_str_eq(c.name, "errors");
	cr_expect_eq(c.direction, JUDGE_INCREASE);
	cr_expect_eq(c.allowed_increase, 1.2);
	cr_expect_eq(c.critical_increase, 2.0);
	cr_expect_eq(c.critical, 0);
	double base[10] = {0.01, 0.012, 0.009, 0.011, 0.01, 0.008, 0.013, 0.01, 0.011, 0.009};
	double bad[10] = {0.5, 0.48, 0.52, 0.49, 0.51, 0.5, 0.47, 0.53, 0.5, 0.5};
	struct judge_metric_result r;
	struct judge_summary s;
	struct err e = {""};
	const char *groups[1] = {"errors"};
	double w[1] = {1};
	cr_assert_eq(judge_metric(&c, bad, 10, base, 10, &r, &e), 0, "%s", e.msg);
	cr_expect_eq(r.classification, JUDGE_HIGH);
	cr_assert_eq(judge_score(&c, &r, 1, groups, w, 1, 95, 75, &s, &e), 0);
	cr_expect_eq(prom_verdict(&s), PL_VERDICT_FAIL);
	cr_assert_eq(judge_metric(&c, base, 10, base, 10, &r, &e), 0);
	cr_assert_eq(judge_score(&c, &r, 1, groups, w, 1, 95, 75, &s, &e), 0);
	cr_expect_eq(prom_verdict(&s), PL_VERDICT_PASS);
}

/* ---- prom_start against a fake Prometheus on 127.0.0.1:0 (a thread per connection) ---- */

static int prom_lfd = -1;
static pthread_t prom_th;
static volatile int prom_stop, prom_hits, prom_before_hits;
static char prom_url[64];

/* Answers query_range: version v2 (the canary) is slow (values around 50), v1 around 10; a
 * query for version "idle" has no samples in the window, only before it (start < 1000). */
static void *prom_answer(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char req[8192];
	loopback_read_head(fd, req, sizeof(req), 2000); /* a cut request is answered all the same */
	__atomic_add_fetch(&prom_hits, 1, __ATOMIC_SEQ_CST);
	double centre = strstr(req, "%22v2%22") ? 50 : 10;
	int empty = strstr(req, "%22idle%22") && !strstr(req, "start=900.000");
	if (strstr(req, "start=900.000"))
		__atomic_add_fetch(&prom_before_hits, 1, __ATOMIC_SEQ_CST);
	char body[4096];
	size_t o = (size_t)snprintf(body, sizeof(body),
				    "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[{\"metric\":{},\"values\":[");
	for (int i = 0; i < (empty ? 0 : 20); i++)
		o += (size_t)snprintf(body + o, sizeof(body) - o, "%s[%d,\"%.1f\"]", i ? "," : "", 1000 + i,
				      centre + (i % 5));
	o += (size_t)snprintf(body + o, sizeof(body) - o, "]}]}}");
	char head[256];
	int hn = snprintf(head, sizeof(head),
			  "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
			  "Connection: close\r\n\r\n",
			  o);
	if (loopback_send_all(fd, head, (size_t)hn) == 0)
		loopback_send_all(fd, body, o);
	close(fd);
	return NULL;
}

static void *prom_serve(void *arg)
{
	(void)arg;
	for (int i = 0; i < 64 && !prom_stop;) {
		struct pollfd p = {prom_lfd, POLLIN, 0};
		if (poll(&p, 1, 100) <= 0)
			continue;
		int fd = accept(prom_lfd, NULL, NULL);
		if (fd < 0)
			continue;
		i++;
		pthread_t t;
		if (pthread_create(&t, NULL, prom_answer, (void *)(intptr_t)fd) == 0)
			pthread_detach(t);
		else
			close(fd);
	}
	return NULL;
}

static void prom_server_start(void)
{
	int port;
	prom_lfd = loopback_listen(64, NULL, 0, &port);
	snprintf(prom_url, sizeof(prom_url), "http://127.0.0.1:%d", port);
	prom_stop = 0;
	prom_hits = prom_before_hits = 0;
	cr_assert_eq(pthread_create(&prom_th, NULL, prom_serve, NULL), 0);
}

static void prom_server_stop(void)
{
	prom_stop = 1;
	pthread_join(prom_th, NULL);
	close(prom_lfd);
}

struct prom_outcome {
	loop *l; /* stopped by the callback when set */
	int calls;
	enum pl_verdict v;
	char msg[256];
	json_t *ev;
};

static void prom_cb(void *arg, enum pl_verdict v, const char *msg, json_t *ev)
{
	struct prom_outcome *o = arg;
	o->calls++;
	o->v = v;
	snprintf(o->msg, sizeof(o->msg), "%s", msg);
	json_decref(o->ev);
	o->ev = ev;
	if (o->l)
		loop_stop(o->l);
}

static void guard_fired(loop *l, void *arg)
{
	(void)arg;
	loop_stop(l);
}

/* Runs one judgement to its end (10 s at most). */
static struct prom_outcome judge_now(const struct service_manifest *an, const struct prom_target *c,
				     const struct prom_target *b, double start, double end)
{
	loop *l = loop_new();
	fetcher *f = fetcher_new(l);
	cr_assert(l && f);
	struct prom_outcome o = {.l = l};
	prom_run *r = prom_start(f, an, c, b, start, end, prom_cb, &o);
	cr_assert(r);
	cr_assert_eq(o.calls, 0, "the callback never runs inside prom_start");
	uint64_t guard = loop_timer(l, 10000, guard_fired, NULL);
	loop_run(l);
	loop_timer_cancel(l, guard);
	cr_assert_eq(o.calls, 1);
	o.l = NULL;
	fetcher_free(f);
	loop_free(l);
	return o;
}

Test(prom_start, without_metrics_or_server)
{
	struct service_manifest an = prom_service(NULL, 0, "http://127.0.0.1:9");
	struct prom_outcome o = judge_now(&an, &canary, &canary, 0, 10);
	cr_expect_eq(o.v, PL_VERDICT_PASS);
	cr_expect_null(o.ev);
	/* a server that is not there: no test was made, the caller asks again later */
	struct manifest_metric m = metric("e", "up{v=\"{version}\"}", MANIFEST_EITHER);
	an = prom_service(&m, 1, "http://127.0.0.1:9");
	o = judge_now(&an, &canary, &canary, 0, 10);
	cr_expect_eq(o.v, PL_VERDICT_NONE);
	cr_expect(strstr(o.msg, "metric e: "), "%s", o.msg);
	cr_expect_null(o.ev);
}

Test(prom_start, judges_every_metric_from_parallel_queries, .init = prom_server_start,
     .fini = prom_server_stop, .timeout = 30)
{
	static const struct prom_target v1 = {"metadata", "v1", "east", "production"};
	struct manifest_metric ms[2] = {metric("latency", "lat{v=\"{version}\"}", MANIFEST_INCREASE),
					metric("again", "lat2{v=\"{version}\"}", MANIFEST_INCREASE)};
	struct service_manifest svc = prom_service(ms, 2, prom_url);
	const struct service_manifest *an = &svc;
	/* the canary (v2) is five times slower than the baseline (v1): fail, with evidence */
	struct prom_outcome o = judge_now(an, &canary, &v1, 1000, 1020);
	cr_expect_eq(o.v, PL_VERDICT_FAIL, "%s", o.msg);
	cr_expect(strstr(o.msg, "metric latency differs"), "%s", o.msg);
	cr_assert(o.ev);
	cr_expect_eq(json_array_size(json_object_get(o.ev, "metrics")), 2);
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(o.ev, "metrics"), 0),
							    "query_canary")),
			 "lat{v=\"v2\"}");
	cr_expect_eq(prom_hits, 4, "two queries per metric");
	json_decref(o.ev);
	/* the same version on both sides: pass */
	o = judge_now(an, &v1, &v1, 1000, 1020);
	cr_expect_eq(o.v, PL_VERDICT_PASS, "%s", o.msg);
	json_decref(o.ev);
	/* a baseline without samples in the window is read just before it */
	static const struct prom_target idle = {"metadata", "idle", "east", "production"};
	o = judge_now(an, &v1, &idle, 1000, 1100);
	cr_expect_eq(prom_before_hits, 2, "one earlier query per metric");
	cr_expect_eq(o.v, PL_VERDICT_PASS, "%s", o.msg);
	cr_expect_eq(json_real_value(json_array_get(json_object_get(json_array_get(json_object_get(o.ev, "metrics"), 0),
								   "baseline_range"),
						 0)),
		     900.0);
	json_decref(o.ev);
}

Test(prom_start, cancel_means_no_callback)
{
	loop *l = loop_new();
	fetcher *f = fetcher_new(l);
	struct manifest_metric m = metric("e", "up", MANIFEST_EITHER);
	struct service_manifest an = prom_service(&m, 1, "http://127.0.0.1:9");
	struct prom_outcome o = {0};
	prom_run *r = prom_start(f, &an, &canary, &canary, 0, 10, prom_cb, &o);
	cr_assert(r);
	prom_cancel(r);
	uint64_t t = loop_timer(l, 300, guard_fired, NULL);
	loop_run(l);
	loop_timer_cancel(l, t);
	cr_expect_eq(o.calls, 0);
	fetcher_free(f);
	loop_free(l);
}

/* ---- verify_region with the sequential method, on synthetic proxy snapshots ---- */

#include "support/fake_router.h"

/* Cumulative counters of one version, as the proxy reports them. Latency buckets (us):
 * (0, 500], (500, 1000], (1000, 2000], (2000, 4000], (4000, 8000], (8000, +inf). */
struct vcount {
	long long requests, errors;
	long long lat[7];
};

static json_t *snapshot(const struct vcount *cv, const struct vcount *sv)
{
	json_t *versions = json_object();
	const struct vcount *vc[2] = {cv, sv};
	const char *names[2] = {"v2", "v1"};
	for (int i = 0; i < 2; i++) {
		if (!vc[i])
			continue;
		json_t *counts = json_array();
		for (int b = 0; b < 7; b++)
			json_array_append_new(counts, json_integer(vc[i]->lat[b]));
		json_object_set_new(versions, names[i],
				    json_pack("{s:I, s:{s:I}, s:I, s:{s:[i, i, i, i, i, i, i], s:o}}", "requests",
					      (json_int_t)vc[i]->requests, "responses", "5xx",
					      (json_int_t)vc[i]->errors, "upstream_errors", (json_int_t)0,
					      "latency_us", "bounds", 500, 1000, 2000, 4000, 8000, 16000, -1, "counts", counts));
	}
	return json_pack("{s:{s:{s:o}}}", "routes", "metadata.production.east", "versions", versions);
}

struct harness {
	loop *loop;
	router *router;
	verifier *vr;
	struct pl_state st;
	struct service_manifest svc;
	struct vcount c, s;
	char msg[256];
};

static void harness_init(struct harness *h, int step_percent)
{
	memset(h, 0, sizeof(*h));
	h->loop = loop_new();
	h->router = fake_router_new();
	cr_assert(h->loop && h->router);
	h->vr = verify_new(h->loop, h->router, NULL);
	cr_assert(h->vr);
	h->svc = (struct service_manifest){.name = "metadata"};
	h->svc.analysis.method = MANIFEST_SEQUENTIAL;
	h->svc.analysis.alpha = 0.05;
	h->svc.analysis.tolerance = 0.2;
	h->svc.analysis.max_error_rate = 0.1;
	h->svc.analysis.max_error_rate_increase = 0.1;
	h->svc.analysis.min_requests = 10;
	h->svc.analysis.max_p99_latency_ms = 1000;
	strcpy(h->st.version, "v2");
	h->st.cfg.strategy = PL_CANARY;
	h->st.cfg.steps[0] = step_percent;
	h->st.cfg.steps[1] = 100;
	h->st.cfg.nsteps = step_percent == 100 ? 1 : 2;
	h->st.cfg.step_duration_ms = 1000;
	h->st.nregions = 1;
	strcpy(h->st.regions[0].name, "east");
	strcpy(h->st.regions[0].stable, "v1");
	h->st.regions[0].state = R_STEP;
	/* the stable's history before the window: 1,000 fast requests, no errors */
	h->s.requests = 1000;
	h->s.lat[0] = 1000;
}

static enum pl_verdict poll_verdict(struct harness *h)
{
	/* a snapshot requested now: it holds everything counted so far */
	fake_router_set_metrics(h->router, snapshot(&h->c, &h->s), loop_now(h->loop));
	return verify_region(h->vr, 1, &h->svc, "production", &h->st, 0, h->msg, sizeof(h->msg));
}

static void harness_release(struct harness *h)
{
	verify_free(h->vr);
	router_free(h->router);
	loop_free(h->loop);
}

/* One poll's traffic: the canary gets `nc` requests (`ec` errors, latency bucket `bc`), the
 * stable `ns` requests without errors in bucket 0. */
static void traffic(struct harness *h, int nc, int ec, int bc, int ns)
{
	h->c.requests += nc;
	h->c.errors += ec;
	h->c.lat[bc] += nc;
	h->s.requests += ns;
	h->s.lat[0] += ns;
}

/* Polls after the same traffic each time (as `traffic`) while the verdict stays `from`, at most
 * `max` polls; returns the last verdict. */
static enum pl_verdict poll_while(struct harness *h, enum pl_verdict from, int max, int nc, int ec,
				  int bc, int ns)
{
	enum pl_verdict v = from;
	for (int polls = 0; v == from && polls < max; polls++) {
		traffic(h, nc, ec, bc, ns);
		v = poll_verdict(h);
	}
	return v;
}

static const json_t *test_of(const struct window *w, const char *metric)
{
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(w->evidence, "tests"), i, t)
		if (!strcmp(json_string_value(json_object_get(t, "metric")), metric))
			return t;
	return NULL;
}

Test(verify_sequential, half_failing_canary_is_aborted_within_a_few_dozen_requests)
{
	struct harness h;
	harness_init(&h, 10);
	cr_expect_eq(poll_verdict(&h), PL_VERDICT_NONE, "the first poll opens the window");
	cr_expect_str_eq(h.msg, "window opened");
	/* 10% share, half the canary's requests fail */
	enum pl_verdict v = poll_while(&h, PL_VERDICT_NONE, 100, 2, 1, 0, 18);
	cr_assert_eq(v, PL_VERDICT_FAIL, "%s", h.msg);
	cr_expect_leq(h.c.requests, 30, "took %lld canary requests", h.c.requests);
	cr_expect(strstr(h.msg, "error rate higher than stable's (proven"), "%s", h.msg);
	const struct window *w = verify_window(h.vr, 1, 0);
	cr_assert(w && w->evidence);
	cr_expect_str_eq(json_string_value(json_object_get(w->evidence, "method")), "sequential");
	cr_expect_str_eq(json_string_value(json_object_get(w->evidence, "verdict")), "fail");
	cr_expect_eq(json_real_value(json_object_get(w->evidence, "share")), 0.1);
	cr_expect_eq(json_integer_value(json_object_get(w->evidence, "step_percent")), 10);
	const json_t *t = test_of(w, "error_rate");
	cr_assert(t);
	cr_expect_str_eq(json_string_value(json_object_get(t, "decision")), "fail");
	cr_expect_geq(json_real_value(json_object_get(t, "e_fail")), json_real_value(json_object_get(t, "e_threshold")));
	cr_expect_eq(json_real_value(json_object_get(t, "e_threshold")), 40.0);
	cr_expect_gt(json_real_value(json_object_get(t, "ratio_lo")), 1.0);
	/* only the window's requests count: none of the stable's history */
	cr_expect_eq(json_integer_value(json_object_get(t, "stable_requests")), 18 * (h.c.requests / 2)); /* 2 canary, 18 stable a poll */
	cr_expect_eq(json_integer_value(json_object_get(t, "canary_requests")), h.c.requests);
	/* a proven regression stays proven, with its evidence, whatever comes after */
	char first[256];
	snprintf(first, sizeof(first), "%s", h.msg);
	for (int i = 0; i < 200; i++) {
		traffic(&h, 2, 0, 0, 18);
		cr_assert_eq(poll_verdict(&h), PL_VERDICT_FAIL);
	}
	cr_expect_str_eq(h.msg, first);
	harness_release(&h);
}

Test(verify_sequential, clean_canary_passes_by_its_floors)
{
	struct harness h;
	harness_init(&h, 10);
	poll_verdict(&h);
	const struct window *w = verify_window(h.vr, 1, 0);
	cr_expect_eq(w->slow_us, 0, "chosen at the first poll of the window");
	enum pl_verdict v = poll_while(&h, PL_VERDICT_NONE, 200, 2, 0, 0, 18);
	cr_assert_eq(v, PL_VERDICT_PASS, "%s", h.msg);
	w = verify_window(h.vr, 1, 0);
	cr_expect_eq(w->slow_us, 10000, "the stable's p90 is 500 us: the 10 ms floor applies");
	/* the error floor (0.1) needs 44 clean canary requests, the slow floor (15%) 29 */
	cr_expect_geq(h.c.requests, 44);
	cr_expect_leq(h.c.requests, 46);
	cr_expect(strstr(h.msg, "no regression (proven)"), "%s", h.msg);
	w = verify_window(h.vr, 1, 0);
	const json_t *t = test_of(w, "error_rate");
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(t, "floor"), "decision")), "pass");
	cr_expect_eq(json_real_value(json_object_get(json_object_get(t, "floor"), "limit")), 0.1);
	cr_expect(json_is_null(json_object_get(t, "ratio_hi")), "no errors: the ratio is unbounded");
	cr_expect(test_of(w, "slow_requests"));
	/* the pass sticks while nothing is proven against it */
	traffic(&h, 2, 0, 0, 18);
	cr_expect_eq(poll_verdict(&h), PL_VERDICT_PASS);
	harness_release(&h);
}

Test(verify_sequential, a_regression_after_a_pass_still_fails)
{
	struct harness h;
	harness_init(&h, 50);
	poll_verdict(&h);
	enum pl_verdict v = poll_while(&h, PL_VERDICT_NONE, 40, 10, 0, 0, 10);
	cr_assert_eq(v, PL_VERDICT_PASS, "%s", h.msg);
	v = poll_while(&h, PL_VERDICT_PASS, 50, 10, 5, 0, 10);
	cr_expect_eq(v, PL_VERDICT_FAIL, "%s", h.msg);
	harness_release(&h);
}

Test(verify_sequential, slower_canary_fails_on_latency)
{
	struct harness h;
	harness_init(&h, 50);
	poll_verdict(&h);
	/* every canary request above 16 ms, the stable's under 0.5 */
	enum pl_verdict v = poll_while(&h, PL_VERDICT_NONE, 40, 10, 0, 6, 10);
	cr_assert_eq(v, PL_VERDICT_FAIL, "%s", h.msg);
	cr_expect(strstr(h.msg, "slower than 10.0 ms"), "%s", h.msg);
	cr_expect_leq(h.c.requests, 30);
	const json_t *t = test_of(verify_window(h.vr, 1, 0), "slow_requests");
	cr_assert(t);
	cr_expect_str_eq(json_string_value(json_object_get(t, "decision")), "fail");
	cr_expect_eq(json_real_value(json_object_get(t, "tolerance")), 0.5, "slow requests: tolerance >= 0.5");
	harness_release(&h);
}

Test(verify_sequential, bake_compares_with_the_recorded_stable)
{
	struct harness h;
	harness_init(&h, 50);
	poll_verdict(&h);
	for (int i = 0; i < 50; i++) { /* a step where the old version serves 500 requests, 1% errors */
		traffic(&h, 10, 0, 0, 10);
		h.s.errors += i % 10 == 0;
		poll_verdict(&h);
	}
	/* promoted, then baking: the new stable serves everything, with 10% errors */
	h.st.regions[0].state = R_BAKING;
	verify_reset(h.vr, 1, 0);
	cr_expect_eq(poll_verdict(&h), PL_VERDICT_NONE, "a bake opens its own window");
	enum pl_verdict v = poll_while(&h, PL_VERDICT_PASS, 100, 20, 2, 0, 0);
	cr_assert_eq(v, PL_VERDICT_FAIL, "%s", h.msg);
	cr_expect(strstr(h.msg, "error rate above the previous release's (proven"), "%s", h.msg);
	const json_t *t = test_of(verify_window(h.vr, 1, 0), "error_rate");
	cr_assert(t);
	cr_expect_eq(json_integer_value(json_object_get(t, "recorded_requests")), 500);
	cr_expect_eq(json_integer_value(json_object_get(t, "recorded_events")), 5);
	cr_expect_gt(json_real_value(json_object_get(t, "limit")), 0.01);
	harness_release(&h);
}

Test(verify_sequential, healthy_bake_does_not_fail)
{
	struct harness h;
	harness_init(&h, 50);
	poll_verdict(&h);
	for (int i = 0; i < 50; i++) {
		traffic(&h, 10, 0, 0, 10);
		h.s.errors += i % 10 == 0;
		poll_verdict(&h);
	}
	h.st.regions[0].state = R_BAKING;
	verify_reset(h.vr, 1, 0);
	poll_verdict(&h);
	for (int i = 0; i < 200; i++) { /* 4,000 requests at the recorded 1% */
		traffic(&h, 20, i % 5 == 0, 0, 0);
		cr_assert_eq(poll_verdict(&h), PL_VERDICT_PASS, "poll %d: %s", i, h.msg);
	}
	harness_release(&h);
}

Test(verify_sequential, full_traffic_step_compares_with_the_recorded_stable)
{
	struct harness h;
	harness_init(&h, 50);
	poll_verdict(&h);
	for (int i = 0; i < 50; i++) { /* the 50% step: the stable serves 500 requests, 1% errors */
		traffic(&h, 10, 0, 0, 10);
		h.s.errors += i % 10 == 0;
		poll_verdict(&h);
	}
	h.st.regions[0].step = 1; /* 100%: the stable gets nothing, the ratio tests are blind */
	verify_reset(h.vr, 1, 0);
	poll_verdict(&h);
	enum pl_verdict v = poll_while(&h, PL_VERDICT_NONE, 100, 20, 2, 0, 0);
	cr_assert_eq(v, PL_VERDICT_FAIL, "%s", h.msg);
	cr_expect(strstr(h.msg, "recorded at the previous step"), "%s", h.msg);
	cr_expect_eq(json_real_value(json_object_get(verify_window(h.vr, 1, 0)->evidence, "share")), 1.0);
	harness_release(&h);
}

/* With the router's snapshots arriving in the background, a window opens only on one that was
 * requested after its step began: an older one may hold requests split with the previous
 * step's weights. */
Test(verify_sequential, a_window_opens_on_counters_requested_after_its_step_began)
{
	struct harness h;
	harness_init(&h, 10);
	uint64_t now = loop_now(h.loop);
	cr_assert_gt(now, 1000);
	/* requested before the step began (and old enough to be read again at every verdict) */
	fake_router_set_metrics(h.router, snapshot(&h.c, &h.s), now - 200);
	cr_assert_eq(verify_region(h.vr, 1, &h.svc, "production", &h.st, 0, h.msg, sizeof(h.msg)), PL_VERDICT_NONE);
	cr_assert(strstr(h.msg, "window opening"), "%s", h.msg);
	cr_assert_eq(verify_region(h.vr, 1, &h.svc, "production", &h.st, 0, h.msg, sizeof(h.msg)), PL_VERDICT_NONE);
	cr_assert(strstr(h.msg, "window opening"), "still the old snapshot: %s", h.msg);
	fake_router_set_metrics(h.router, snapshot(&h.c, &h.s), now); /* requested since */
	cr_assert_eq(verify_region(h.vr, 1, &h.svc, "production", &h.st, 0, h.msg, sizeof(h.msg)), PL_VERDICT_NONE);
	cr_assert_str_eq(h.msg, "window opened");
	harness_release(&h);
}

/* ---- verify_blind: the proxy away, told from counters nobody asked for ---- */

static void stop_loop(loop *l, void *arg)
{
	(void)arg;
	loop_stop(l);
}

/* Lets `ms` of loop time pass. */
static void pass_ms(struct harness *h, uint64_t ms)
{
	cr_assert(loop_timer(h->loop, ms, stop_loop, NULL));
	loop_run(h->loop);
}

/* Asked at every tick (the executor does, while a verdict is due), counters that stop coming
 * make the region blind once they are VERIFY_STALE_MS old: before a step's deadline, not
 * VERIFY_STALE_MS later still. (Takes VERIFY_STALE_MS of loop time.) */
Test(verify_blind, continuous_asking_sees_an_away_proxy_once_its_counters_are_stale, .timeout = 30)
{
	struct harness h;
	harness_init(&h, 10);
	pass_ms(&h, 10);
	uint64_t t0 = loop_now(h.loop);
	fake_router_set_metrics(h.router, snapshot(&h.c, &h.s), t0); /* the last that comes */
	cr_assert_eq(verify_blind(h.vr), 0, "fresh counters");
	int blind = 0;
	for (int i = 0; i < 40 && !blind; i++) {
		pass_ms(&h, 200);
		blind = verify_blind(h.vr);
	}
	uint64_t took = loop_now(h.loop) - t0;
	cr_assert(blind, "not blind after %llu ms", (unsigned long long)took);
	cr_expect_geq(took, VERIFY_STALE_MS, "blind after %llu ms: the counters were not stale yet",
		      (unsigned long long)took);
	cr_expect_lt(took, VERIFY_STALE_MS + 1000, "blind after %llu ms: the time asked in vain was not counted",
		     (unsigned long long)took);
	harness_release(&h);
}

/* Counters old because nobody asked (no verdict was due) prove nothing: asking must go on for
 * VERIFY_STALE_MS first. */
Test(verify_blind, counters_old_for_want_of_asking_are_not_blindness)
{
	struct harness h;
	harness_init(&h, 10);
	pass_ms(&h, 10);
	uint64_t t0 = loop_now(h.loop);
	fake_router_set_metrics(h.router, snapshot(&h.c, &h.s), t0 - 3 * VERIFY_STALE_MS);
	cr_expect_eq(verify_blind(h.vr), 0, "asking just began");
	pass_ms(&h, 300);
	cr_expect_eq(verify_blind(h.vr), 0, "asked for 300 ms only");
	/* a pause in the asking longer than VERIFY_ASK_GAP_MS starts the count again */
	pass_ms(&h, VERIFY_ASK_GAP_MS + 200);
	cr_expect_eq(verify_blind(h.vr), 0, "asking began again");
	harness_release(&h);
}
