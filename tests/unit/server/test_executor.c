/* Unit tests of the executor (src/server/executor.h), composed as src/server/main.c composes
 * it (a verifier without a fetcher, a reconciler, the executor) over the fake runtime, the fake
 * router and a real SQLite store in a temporary directory.
 *
 * The fake router stands for the proxy in both directions: the reconciler puts routes into it,
 * and at every step the test "serves" requests through the routes as they are (each version
 * gets requests in proportion to its weight; a version the test marks failing answers every
 * one of them with a 5xx), then hands the cumulative per-version counters to the verifier as
 * the proxy's snapshot. So the verdicts come from what the routes say, not from a script.
 *
 * A step is what the server's tick does: the runtimes tick, the executor ticks (which runs the
 * reconciler), the runtimes tick again. Before each step the event loop runs for 10 ms, which
 * is a lower bound only: it moves the loop's clock, which the reconciler's drain grace (a
 * backend must read drained for 1 s before its instances stop) and the verifier's windows
 * read. Every wait is a bounded number of steps; no test asserts an upper bound on time.
 *
 * Durations in the manifests are the validator's minimums (src/core/manifest.c): step_duration
 * 0, retry_backoff 0, bake 0. Smoke checks and the pre-production stage need real HTTP: the
 * integration tests cover them. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/manifest.h"
#include "core/pipeline.h"
#include "loop/loop.h"
#include "server/executor.h"
#include "server/reconcile.h"
#include "server/replica.h"
#include "server/runtimes.h"
#include "server/verify.h"
#include "store/artifacts.h"
#include "store/store.h"
#include "support/fake_router.h"
#include "support/fake_runtime.h"
#include "support/faulty_store.h"
#include "util/doc.h"
#include "util/log.h"
#include "util/sha256.h"

/* One environment, one region; a region that fails once is retried once, at once. */
static const char env_yaml[] =
	"kind: Environment\n"
	"name: production\n"
	"regions:\n"
	"  - name: east\n"
	"policy:\n"
	"  region_retries: 1\n"
	"  retry_backoff: 0\n";

/* api: the threshold method (5 canary requests decide); seq: the sequential method; solo:
 * supersedes the deploys still waiting; web: another service beside api. */
static const char services_yaml[] =
	"kind: Service\n"
	"name: api\n"
	"listen_port: 18001\n"
	"strategy: {steps: [50, 100], step_duration: 0}\n"
	"analysis: {method: threshold, min_requests: 5}\n"
	"---\n"
	"kind: Service\n"
	"name: seq\n"
	"listen_port: 18002\n"
	"strategy: {steps: [50, 100], step_duration: 0}\n"
	"analysis: {method: sequential}\n"
	"---\n"
	"kind: Service\n"
	"name: solo\n"
	"listen_port: 18003\n"
	"strategy: {steps: [50, 100], step_duration: 0}\n"
	"analysis: {method: threshold, min_requests: 5}\n"
	"policy: {concurrency: supersede}\n"
	"---\n"
	"kind: Service\n"
	"name: web\n"
	"listen_port: 18004\n"
	"strategy: {steps: [50, 100], step_duration: 0}\n"
	"analysis: {method: threshold, min_requests: 5}\n";

/* Enough steps for anything here: a drain needs 1 s of the loop's clock, so 100 steps of at
 * least 10 ms each; waits are bounded by steps, never by time. */
#define MAX_STEPS 1500

static struct {
	char dir[64];
	char artifacts[96];
	loop *loop;
	store *store;
	runtime *rt; /* the fake, owned by rts */
	runtimes *rts;
	router *router;
	verifier *vr;
	reconciler *rec;
	executor *ex;
	json_t *counts;            /* route -> version -> {"requests", "errors"} as the proxy counted */
	int traffic;               /* requests flow through the routes at every step */
	char failing[PL_NAME_MAX]; /* this version answers every request with a 5xx */
} H;

/* ---- set-up ---- */

static void apply(const char *yaml)
{
	doc *d = NULL;
	json_t *all = NULL;
	struct err e = {""};
	cr_assert_eq(doc_parse("test.yaml", yaml, strlen(yaml), &d, &e), 0, "%s", e.msg);
	cr_assert_eq(manifest_validate(d, &all, &e), 0, "%s", e.msg);
	doc_free(d);
	size_t i;
	json_t *m;
	json_array_foreach(all, i, m) {
		int changed = 0;
		cr_assert_eq(store_put_manifest(H.store, json_string_value(json_object_get(m, "kind")),
						json_string_value(json_object_get(m, "name")), m, &changed, &e),
			     0, "%s", e.msg);
	}
	json_decref(all);
}

/* Registers service@version with an artifact of a few bytes (the fake runtime never runs it). */
static void release(const char *service, const char *version)
{
	char content[128], hex[65], id[ARTIFACTS_ID_LEN + 1];
	unsigned char dg[32];
	snprintf(content, sizeof(content), "#!/bin/sh\n# %s %s\n", service, version);
	struct sha256 s;
	sha256_init(&s);
	sha256_update(&s, content, strlen(content));
	sha256_final(&s, dg);
	sha256_hex(dg, hex);
	snprintf(id, sizeof(id), "sha256:%s", hex);
	struct artifact_writer *w = NULL;
	struct err e = {""};
	int created = 0;
	cr_assert_eq(artifacts_begin(&w, H.artifacts, id, 1 << 20, &e), 0, "%s", e.msg);
	cr_assert_eq(artifacts_write(w, content, strlen(content), &e), 0, "%s", e.msg);
	cr_assert_eq(artifacts_commit(w, &created, &e), 0, "%s", e.msg);
	cr_assert_eq(store_put_release(H.store, service, version, id, (int64_t)strlen(content), NULL, &created, &e),
		     0, "%s", e.msg);
}

static void setup(void)
{
	memset(&H, 0, sizeof(H));
	log_set_level(LOG_WARN);
	snprintf(H.dir, sizeof(H.dir), "/tmp/sluice-executor-test-XXXXXX");
	cr_assert_not_null(mkdtemp(H.dir));
	snprintf(H.artifacts, sizeof(H.artifacts), "%s/artifacts", H.dir);
	cr_assert_eq(mkdir(H.artifacts, 0755), 0);
	char db[128];
	snprintf(db, sizeof(db), "%s/sluice.db", H.dir);
	struct err e = {""};
	cr_assert_eq(store_open(&H.store, db, &e), 0, "%s", e.msg);
	cr_assert_eq(runtime_open_ops(&H.rt, &fake_runtime_ops, NULL, &(struct runtime_host){H.dir}, &e), 0,
		     "%s", e.msg);
	cr_assert_eq(runtimes_open_with(&H.rts, H.dir, H.rt, &e), 0, "%s", e.msg);
	H.loop = loop_new();
	H.router = fake_router_new();
	cr_assert(H.loop && H.router);
	H.vr = verify_new(H.loop, H.router, NULL);
	cr_assert_not_null(H.vr);
	H.rec = reconcile_new(H.loop, H.store, H.rts, H.router, H.artifacts);
	cr_assert_not_null(H.rec);
	struct executor_deps xd = {H.loop, H.store, H.rts, H.router, H.vr, H.rec, NULL, H.dir, NULL, NULL};
	H.ex = executor_new(&xd);
	cr_assert_not_null(H.ex);
	H.counts = json_object();
	H.traffic = 1;
	apply(env_yaml);
	apply(services_yaml);
}

static void teardown(void)
{
	executor_free(H.ex);
	reconcile_free(H.rec);
	verify_free(H.vr);
	router_free(H.router);
	runtimes_close(H.rts);
	store_close(H.store);
	loop_free(H.loop);
	json_decref(H.counts);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", H.dir);
	cr_expect_eq(system(cmd), 0);
}

/* ---- the proxy's side: traffic through the routes, cumulative counters ---- */

static void serve(void)
{
	if (!H.traffic)
		return;
	const char *rn, *ver;
	json_t *route, *v;
	json_object_foreach((json_t *)fake_router_routes(H.router), rn, route) {
		json_object_foreach(json_object_get(route, "versions"), ver, v) {
			json_int_t w = json_integer_value(json_object_get(v, "weight"));
			if (w <= 0)
				continue;
			json_int_t n = (w + 9) / 10; /* 10 requests a step per route */
			json_t *byver = json_object_get(H.counts, rn);
			if (!byver)
				json_object_set_new(H.counts, rn, byver = json_object());
			json_t *c = json_object_get(byver, ver);
			if (!c)
				json_object_set_new(byver, ver, c = json_pack("{s:I, s:I}", "requests", (json_int_t)0,
									      "errors", (json_int_t)0));
			json_object_set_new(c, "requests",
					    json_integer(json_integer_value(json_object_get(c, "requests")) + n));
			if (!strcmp(ver, H.failing))
				json_object_set_new(c, "errors",
						    json_integer(json_integer_value(json_object_get(c, "errors")) + n));
		}
	}
}

/* The proxy's snapshot of the counters (every request fast: in the first latency bucket). */
static json_t *snapshot(void)
{
	json_t *routes = json_object();
	const char *rn, *ver;
	json_t *byver, *c;
	json_object_foreach(H.counts, rn, byver) {
		json_t *versions = json_object();
		json_object_foreach(byver, ver, c) {
			json_int_t req = json_integer_value(json_object_get(c, "requests"));
			json_object_set_new(versions, ver,
					    json_pack("{s:I, s:{s:I}, s:I, s:{s:[i, i, i, i, i, i, i], s:[I, i, i, i, i, i, i]}}",
						      "requests", req, "responses", "5xx",
						      json_integer_value(json_object_get(c, "errors")), "upstream_errors",
						      (json_int_t)0, "latency_us", "bounds", 500, 1000, 2000, 4000, 8000,
						      16000, -1, "counts", req, 0, 0, 0, 0, 0, 0));
		}
		json_object_set_new(routes, rn, json_pack("{s:o}", "versions", versions));
	}
	return json_pack("{s:o}", "routes", routes);
}

static void stop_loop(loop *l, void *arg)
{
	(void)arg;
	loop_stop(l);
}

/* One tick of the server (main.c's on_tick), after at least 10 ms of the loop's clock. */
static void step(void)
{
	loop_timer(H.loop, 10, stop_loop, NULL);
	cr_assert_eq(loop_run(H.loop), 0);
	runtimes_tick(H.rts, loop_clock_ms());
	serve();
	fake_router_set_metrics(H.router, snapshot(), loop_now(H.loop));
	executor_tick(H.ex);
	runtimes_tick(H.rts, loop_clock_ms());
}

/* ---- reading the store ---- */

static json_t *deployment(int64_t id)
{
	json_t *d = NULL;
	struct err e = {""};
	cr_assert_eq(store_get_deployment(H.store, id, &d, &e), 0, "deployment %lld: %s", (long long)id, e.msg);
	return d;
}

/* The deployment's phase ("active", "promoted", ..., "superseded"), copied. */
static const char *phase(int64_t id)
{
	static char buf[8][32];
	static int k;
	json_t *d = deployment(id);
	char *out = buf[k++ % 8];
	snprintf(out, 32, "%s", json_string_value(json_object_get(d, "phase")));
	json_decref(d);
	return out;
}

static const char *reason(int64_t id)
{
	static char buf[PL_MSG_MAX];
	json_t *d = deployment(id);
	snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(d, "reason")) ?: "");
	json_decref(d);
	return buf;
}

static struct pl_state state(int64_t id)
{
	json_t *d = deployment(id);
	struct pl_state st;
	cr_assert_eq(pipeline_from_json(json_object_get(d, "state"), &st), 0);
	json_decref(d);
	return st;
}

/* The state of the deployment's only region ("pending", "starting", "step", ...). */
static const char *region_state(int64_t id)
{
	struct pl_state st = state(id);
	return pipeline_rstate_name(st.regions[0].state);
}

static int started(int64_t id)
{
	struct pl_state st = state(id);
	return pipeline_started(&st);
}

/* Every event of a deployment (new reference). */
static json_t *events(int64_t id)
{
	json_t *ev = NULL;
	struct err e = {""};
	cr_assert_eq(store_list_events(H.store, id, &ev, &e), 0, "%s", e.msg);
	return ev;
}

/* Their types, "started,starting,...", for messages and order checks. */
static const char *event_types(int64_t id)
{
	static char buf[2048];
	json_t *ev = events(id);
	size_t i, o = 0;
	json_t *x;
	buf[0] = '\0';
	json_array_foreach(ev, i, x)
		o += (size_t)snprintf(buf + o, o < sizeof(buf) ? sizeof(buf) - o : 0, "%s%s", i ? "," : "",
				      json_string_value(json_object_get(x, "type")));
	json_decref(ev);
	return buf;
}

static int count_events(int64_t id, const char *type)
{
	json_t *ev = events(id);
	size_t i;
	json_t *x;
	int n = 0;
	json_array_foreach(ev, i, x)
		n += !strcmp(json_string_value(json_object_get(x, "type")), type);
	json_decref(ev);
	return n;
}

/* The first event of that type (new reference), or NULL. */
static json_t *first_event(int64_t id, const char *type)
{
	json_t *ev = events(id), *found = NULL;
	size_t i;
	json_t *x;
	json_array_foreach(ev, i, x)
		if (!found && !strcmp(json_string_value(json_object_get(x, "type")), type))
			found = json_incref(x);
	json_decref(ev);
	return found;
}

static const char *stable(const char *service)
{
	static char buf[PL_NAME_MAX];
	struct err e = {""};
	int rc = store_get_stable(H.store, service, "production", "east", buf, sizeof(buf), &e);
	cr_assert(rc == 0 || rc == STORE_NOTFOUND, "%s", e.msg);
	return buf;
}

static size_t deployments(void)
{
	json_t *all = NULL;
	struct err e = {""};
	cr_assert_eq(store_list_deployments(H.store, NULL, &all, &e), 0, "%s", e.msg);
	size_t n = json_array_size(all);
	json_decref(all);
	return n;
}

/* The versions of a service's route in east, "v1" or "v1=50,v2=50" (by name), or "" without a
 * route. */
static const char *route(const char *service)
{
	static char buf[256];
	char rn[256];
	router_route_name(rn, sizeof(rn), service, "production", "east");
	const json_t *r = json_object_get(fake_router_routes(H.router), rn);
	size_t o = 0;
	buf[0] = '\0';
	const char *ver;
	json_t *v;
	int n = 0;
	json_object_foreach(json_object_get(r, "versions"), ver, v)
		o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%s=%lld", n++ ? "," : "", ver,
				      (long long)json_integer_value(json_object_get(v, "weight")));
	return buf;
}

static unsigned running(const char *service, const char *version)
{
	return fake_runtime_count(H.rt, service, "production", "east", version);
}

/* ---- driving ---- */

static int64_t create(const char *service, const char *version, enum pl_kind kind)
{
	struct err e = {""};
	int64_t id = executor_create(H.ex, service, "production", version, kind, 0, NULL, &e);
	cr_assert_gt(id, 0, "%s %s: %s", service, version, e.msg);
	return id;
}

/* Steps until the deployment's phase is `want` (at most MAX_STEPS); returns the steps taken. */
static int until_phase(int64_t id, const char *want)
{
	for (int n = 0; n < MAX_STEPS; n++) {
		if (!strcmp(phase(id), want))
			return n;
		step();
	}
	cr_assert_fail("deployment %lld: still %s (region %s), not %s, after %d steps; events %s; reason %s",
		       (long long)id, phase(id), region_state(id), want, MAX_STEPS, event_types(id), reason(id));
	return -1;
}

/* Steps until the deployment's region is in state `want`. */
static void until_region(int64_t id, const char *want)
{
	for (int n = 0; n < MAX_STEPS; n++) {
		if (!strcmp(region_state(id), want))
			return;
		step();
	}
	cr_assert_fail("deployment %lld: region still %s, not %s; events %s", (long long)id, region_state(id), want,
		       event_types(id));
}

/* service@version promoted as its first release (nothing stable before). */
static int64_t first_release(const char *service, const char *version)
{
	release(service, version);
	int64_t id = create(service, version, PL_DEPLOY);
	until_phase(id, "promoted");
	cr_assert_str_eq(stable(service), version);
	return id;
}

/* A deploy of service@version over its stable release, held at the first canary step (no
 * traffic flows, so no verdict comes). */
static int64_t held_at_first_step(const char *service, const char *version)
{
	release(service, version);
	H.traffic = 0;
	int64_t id = create(service, version, PL_DEPLOY);
	until_region(id, "step");
	for (int i = 0; i < 20; i++)
		step();
	cr_assert_str_eq(region_state(id), "step", "no traffic, no verdict: %s", event_types(id));
	cr_assert_eq(state(id).regions[0].step, 0);
	return id;
}

TestSuite(executor, .init = setup, .fini = teardown, .timeout = 120);

/* ---- creating: refusals ---- */

struct refusal {
	const char *service, *env, *version;
	const char *msg;
};

static const struct refusal refusals[] = {
	{"ghost", "production", "v1", "service 'ghost' is not known: apply its manifest first"},
	{"api", "staging", "v1", "environment 'staging' is not known: apply its manifest first"},
	{"api", "production", "v9", "release api v9 is not known: push it first with 'sluice release push'"},
};

Test(executor, create_refuses_what_is_not_known_and_writes_nothing)
{
	release("api", "v1");
	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		const struct refusal *r = &refusals[i];
		for (enum pl_kind kind = PL_DEPLOY; kind <= PL_HOTFIX; kind++) {
			struct err e = {""};
			int64_t id = executor_create(H.ex, r->service, r->env, r->version, kind, 0, NULL, &e);
			cr_expect_eq(id, -1, "%s/%s/%s (%s)", r->service, r->env, r->version, pipeline_kind_name(kind));
			cr_expect_str_eq(e.msg, r->msg, "%s (%s): got \"%s\"", r->service, pipeline_kind_name(kind), e.msg);
			cr_expect_not(store_failed(&e), "a refusal is not a store failure: %s", e.msg);
			cr_expect_eq(deployments(), 0, "no deployment row after %s", r->msg);
		}
	}
	step();
	cr_expect_eq(fake_runtime_starts(H.rt), 0, "nothing was started");
	cr_expect_str_eq(route("api"), "");
}

/* ---- a first release ---- */

Test(executor, first_release_is_promoted_once_healthy)
{
	release("api", "v1");
	int64_t id = create("api", "v1", PL_DEPLOY);
	cr_expect_str_eq(phase(id), "active");
	cr_expect_not(started(id), "created, not started before a tick");
	cr_expect_eq(fake_runtime_starts(H.rt), 0, "the executor never acts itself");
	json_t *d = deployment(id);
	cr_expect_str_eq(json_string_value(json_object_get(d, "kind")), "deploy");
	cr_expect_str_eq(json_string_value(json_object_get(d, "version")), "v1");
	json_decref(d);

	step();
	cr_expect_str_eq(region_state(id), "starting");
	cr_expect_eq(running("api", "v1"), 1, "the reconciler started the instance in the same tick");
	int steps = until_phase(id, "promoted");
	cr_expect_leq(steps, 5, "healthy at the next runtime tick, promoted, done: %d steps", steps);
	cr_expect_str_eq(stable("api"), "v1");
	cr_expect_str_eq(event_types(id), "started,starting,healthy,promoted,region_done,done");
	json_t *p = first_event(id, "promoted");
	cr_expect_str_eq(json_string_value(json_object_get(p, "region")), "east");
	cr_expect_str_eq(json_string_value(json_object_get(p, "message")), "v1 is stable");
	json_decref(p);
	cr_expect_str_eq(region_state(id), "done");
	step();
	cr_expect_str_eq(route("api"), "v1=100", "the stable release serves");
	cr_expect_eq(running("api", "v1"), 1);
	json_t *active = NULL;
	struct err e = {""};
	cr_assert_eq(store_active_deployments(H.store, &active, &e), 0, "%s", e.msg);
	cr_expect_eq(json_array_size(active), 0);
	json_decref(active);
}

/* A canary over a stable release with clean traffic: every step passes, the old version drains
 * and stops, the new one is stable. */
Test(executor, clean_canary_is_promoted_step_by_step)
{
	first_release("api", "v1");
	release("api", "v2");
	int64_t id = create("api", "v2", PL_DEPLOY);
	until_region(id, "step");
	cr_expect_str_eq(route("api"), "v1=50,v2=50");
	until_phase(id, "promoted");
	cr_expect_str_eq(stable("api"), "v2");
	cr_expect_eq(count_events(id, "passed"), 2, "%s", event_types(id));
	json_t *p = first_event(id, "passed");
	const json_t *ev = json_object_get(p, "evidence");
	cr_expect_str_eq(json_string_value(json_object_get(ev, "method")), "threshold");
	cr_expect_str_eq(json_string_value(json_object_get(ev, "verdict")), "pass");
	cr_expect_eq(json_integer_value(json_object_get(ev, "step_percent")), 50);
	json_decref(p);
	cr_expect_str_eq(route("api"), "v2=100");
	cr_expect_eq(running("api", "v1"), 0, "the old version stopped once drained");
	cr_expect_eq(running("api", "v2"), 1);
}

/* ---- one pipeline per service ---- */

Test(executor, a_second_deploy_of_a_service_waits_another_service_runs_at_once)
{
	release("api", "v1");
	release("api", "v2");
	release("web", "v1");
	int64_t first = create("api", "v1", PL_DEPLOY);
	step();
	cr_assert(started(first));
	int64_t second = create("api", "v2", PL_DEPLOY);
	int64_t other = create("web", "v1", PL_DEPLOY);
	step();
	cr_expect_str_eq(phase(first), "active", "still running: %s", event_types(first));
	cr_expect(started(other), "another service's deploy runs at once: %s", event_types(other));
	cr_expect_not(started(second), "the same service's waits");
	while (!strcmp(phase(first), "active")) {
		cr_assert_not(started(second), "started while %lld is still %s", (long long)first,
			      region_state(first));
		cr_assert_eq(running("api", "v2"), 0);
		step();
	}
	cr_expect_str_eq(phase(first), "promoted");
	until_phase(second, "promoted");
	until_phase(other, "promoted");
	cr_expect_str_eq(stable("api"), "v2");
	cr_expect_str_eq(stable("web"), "v1");
	/* the queued deploy started from what was stable when it started, not when it was created */
	cr_expect_str_eq(state(second).regions[0].stable, "v1");
	json_t *s = first_event(second, "starting");
	cr_expect_str_eq(json_string_value(json_object_get(s, "message")), "starting v2 beside stable v1");
	json_decref(s);
}

/* Two deploys wait behind a running one: with `queue` both run in turn, with `supersede` the
 * older waiting one is superseded by the newer. */
struct concurrency_case {
	const char *service;
	const char *waiting_phase; /* of v2 once v3 is created */
};

static const struct concurrency_case concurrency[] = {
	{"api", "active"},
	{"solo", "superseded"},
};

Test(executor, waiting_deploys_queue_or_are_superseded_by_policy)
{
	for (size_t i = 0; i < sizeof(concurrency) / sizeof(concurrency[0]); i++) {
		const struct concurrency_case *c = &concurrency[i];
		release(c->service, "v1");
		release(c->service, "v2");
		release(c->service, "v3");
		int64_t v1 = create(c->service, "v1", PL_DEPLOY);
		step();
		int64_t v2 = create(c->service, "v2", PL_DEPLOY);
		cr_expect_str_eq(phase(v2), "active", "%s: waiting", c->service);
		int64_t v3 = create(c->service, "v3", PL_DEPLOY);
		cr_expect_str_eq(phase(v2), c->waiting_phase, "%s", c->service);
		cr_expect_str_eq(phase(v1), "active", "%s: the running one is not touched", c->service);
		cr_expect_str_eq(phase(v3), "active", "%s", c->service);
		until_phase(v1, "promoted");
		until_phase(v3, "promoted");
		cr_expect_str_eq(stable(c->service), "v3", "%s", c->service);
		if (!strcmp(c->waiting_phase, "superseded")) {
			cr_expect_str_eq(phase(v2), "superseded");
			char want[128];
			snprintf(want, sizeof(want), "superseded by deployment %lld before it started", (long long)v3);
			cr_expect_str_eq(reason(v2), want);
			cr_expect_str_eq(event_types(v2), "superseded");
			cr_expect_not(started(v2));
			cr_expect_str_eq(state(v3).regions[0].stable, "v1", "v3 went straight over v1");
		} else {
			cr_expect_str_eq(phase(v2), "promoted", "the oldest waiting one ran first");
			cr_expect_str_eq(state(v3).regions[0].stable, "v2", "then v3 over v2");
		}
	}
}

/* ---- pre-emption ---- */

struct preempt_case {
	enum pl_kind kind;
	const char *version;
};

static const struct preempt_case preempts[] = {
	{PL_ROLLBACK, "v1"},
	{PL_HOTFIX, "v3"},
};

Test(executor, rollback_or_hotfix_preempts_the_running_deployment)
{
	for (size_t i = 0; i < sizeof(preempts) / sizeof(preempts[0]); i++) {
		const struct preempt_case *c = &preempts[i];
		const char *service = i == 0 ? "api" : "web";
		first_release(service, "v1");
		int64_t running_id = held_at_first_step(service, "v2");
		cr_expect_eq(running(service, "v2"), 1);
		if (c->kind == PL_HOTFIX)
			release(service, c->version);
		int64_t id = create(service, c->version, c->kind);
		/* in the transaction that created it: the running one is aborting, pre-empted */
		struct pl_state st = state(running_id);
		cr_expect(st.aborted && st.preempted, "%s", pipeline_kind_name(c->kind));
		cr_expect_str_eq(region_state(running_id), "aborting");
		json_t *a = first_event(running_id, "aborted");
		cr_assert_not_null(a, "%s", event_types(running_id));
		char want[128];
		snprintf(want, sizeof(want), "pre-empted by %s %lld of %s", pipeline_kind_name(c->kind), (long long)id,
			 c->version);
		cr_expect(strstr(json_string_value(json_object_get(a, "message")), want), "%s",
			  json_string_value(json_object_get(a, "message")));
		json_decref(a);
		cr_expect_not(started(id));
		H.traffic = 1;
		while (!strcmp(phase(running_id), "active")) {
			cr_assert_not(started(id), "%s started before the pre-empted one was back on stable",
				      pipeline_kind_name(c->kind));
			step();
		}
		cr_expect_str_eq(phase(running_id), "preempted");
		cr_expect_str_eq(reason(running_id), want);
		cr_expect_eq(running(service, "v2"), 0, "its instances stopped");
		until_phase(id, "promoted");
		cr_expect_str_eq(stable(service), c->version);
		step();
		char r[32];
		snprintf(r, sizeof(r), "%s=100", c->version);
		cr_expect_str_eq(route(service), r);
	}
}

/* ---- transient failures: a crash-looping release ---- */

/* A working canary killed three times (it serves again after each): restarted, not blamed, and
 * the good release is promoted (issue 18: restarts that ended in serving do not count). */
Test(executor, a_working_canary_killed_three_times_is_still_promoted)
{
	first_release("api", "v1");
	release("api", "v2");
	int64_t id = create("api", "v2", PL_DEPLOY);
	until_region(id, "step");
	for (int k = 0; k < 3; k++) {
		fake_runtime_crash(H.rt, "v2");
		for (int n = 0; n < 4; n++)
			step();
	}
	until_phase(id, "promoted");
	cr_expect_eq(count_events(id, "region_attempt_failed"), 0, "%s", event_types(id));
	cr_expect_str_eq(stable("api"), "v2");
}

/* ...but one that keeps crashing after serving crash-loops: strategy.crash_loop_restarts
 * restarts within strategy.crash_loop_window fail it like a release that never serves. */
Test(executor, a_canary_restarted_crash_loop_restarts_times_within_the_window_is_rolled_back)
{
	apply("kind: Service\n"
	      "name: looper\n"
	      "listen_port: 18005\n"
	      "strategy: {steps: [50, 100], step_duration: 0, crash_loop_restarts: 2, crash_loop_window: 1m}\n"
	      "analysis: {method: threshold, min_requests: 5}\n");
	first_release("looper", "v1");
	release("looper", "v2");
	int64_t id = create("looper", "v2", PL_DEPLOY);
	until_region(id, "step");
	for (int k = 0; k < 2; k++) {
		fake_runtime_crash(H.rt, "v2");
		for (int n = 0; n < 4; n++)
			step();
	}
	until_phase(id, "rolled_back");
	cr_expect_str_eq(stable("looper"), "v1");
	cr_expect(strstr(reason(id), "crash-loops: restarted 2 times within 60000 ms"), "%s", reason(id));
}

Test(executor, crash_looping_canary_fails_the_region_after_its_retries_and_can_be_retried)
{
	first_release("api", "v1");
	release("api", "v2");
	fake_runtime_set_broken(H.rt, "v2", 1);
	int64_t id = create("api", "v2", PL_DEPLOY);
	until_phase(id, "failed");
	cr_expect_str_eq(region_state(id), "failed");
	/* region_retries: 1 -> two attempts, one retry between them */
	cr_expect_eq(count_events(id, "region_attempt_failed"), 2, "%s", event_types(id));
	cr_expect_eq(count_events(id, "retry_scheduled"), 1);
	cr_expect_eq(count_events(id, "retry"), 1);
	cr_expect_eq(count_events(id, "region_failed"), 1);
	cr_expect_eq(count_events(id, "aborted"), 0, "transient: not a regression");
	json_t *f = first_event(id, "region_attempt_failed");
	const char *msg = json_string_value(json_object_get(f, "message"));
	cr_expect(strstr(msg, "attempt 1 of 2: instances of v2 are failing: "), "%s", msg);
	cr_expect(strstr(msg, "restarted 2 times"), "%s", msg);
	json_decref(f);
	cr_expect_str_eq(reason(id), "region east failed after 2 attempts");
	cr_expect_str_eq(stable("api"), "v1");
	cr_expect_str_eq(route("api"), "v1=100", "the stable served throughout");
	cr_expect_eq(running("api", "v2"), 0);

	struct err e = {""};
	cr_expect_eq(executor_retry(H.ex, id, "west", &e), -1);
	char want[160];
	snprintf(want, sizeof(want), "deployment %lld has no region 'west'", (long long)id);
	cr_expect_str_eq(e.msg, want);
	cr_expect_eq(executor_retry(H.ex, 999, "east", &e), -1);
	cr_expect_str_eq(e.msg, "deployment 999 not found");
	cr_expect_str_eq(phase(id), "failed", "refusals change nothing");

	/* fixed (the host, say): the failed region alone starts again */
	fake_runtime_set_broken(H.rt, "v2", 0);
	cr_assert_eq(executor_retry(H.ex, id, "east", &e), 0, "%s", e.msg);
	cr_expect_str_eq(phase(id), "active");
	cr_expect_str_eq(region_state(id), "starting");
	cr_expect_eq(state(id).regions[0].attempts, 0, "a retry asked for starts the count again");
	json_t *evs = events(id);
	json_t *last = json_array_get(evs, json_array_size(evs) - 1);
	cr_expect_str_eq(json_string_value(json_object_get(last, "type")), "starting");
	json_t *asked = json_array_get(evs, json_array_size(evs) - 2);
	cr_expect_str_eq(json_string_value(json_object_get(asked, "message")), "retrying east alone (asked)");
	json_decref(evs);
	/* a region that is not failed is not retried */
	cr_expect_eq(executor_retry(H.ex, id, "east", &e), -1);
	snprintf(want, sizeof(want),
		 "region east of deployment %lld is starting, not failed or paused: only those are retried",
		 (long long)id);
	cr_expect_str_eq(e.msg, want);
	until_phase(id, "promoted");
	cr_expect_str_eq(stable("api"), "v2");
	cr_expect_str_eq(route("api"), "v2=100");
}

/* ---- regressions: a canary that answers 5xx ---- */

struct regression_case {
	const char *service;
	const char *method; /* analysis.method: the evidence names it */
};

static const struct regression_case regressions[] = {
	{"api", "threshold"},
	{"seq", "sequential"},
};

Test(executor, failing_canary_is_rolled_back_with_the_verdicts_evidence)
{
	for (size_t i = 0; i < sizeof(regressions) / sizeof(regressions[0]); i++) {
		const struct regression_case *c = &regressions[i];
		first_release(c->service, "v1");
		release(c->service, "v2");
		snprintf(H.failing, sizeof(H.failing), "v2");
		int64_t id = create(c->service, "v2", PL_DEPLOY);
		until_region(id, "aborting");
		/* traffic moves before instances: the route is back on the stable while v2 still runs
		 * (it stops only after reading drained for a second) */
		cr_expect_str_eq(route(c->service), "v1=100", "%s", c->method);
		cr_expect_eq(running(c->service, "v2"), 1, "%s", c->method);
		until_phase(id, "rolled_back");
		cr_expect(strstr(reason(id), "verification failed at 50%: "), "%s: %s", c->method, reason(id));
		json_t *a = first_event(id, "aborted");
		cr_assert_not_null(a, "%s: %s", c->method, event_types(id));
		cr_expect_str_eq(json_string_value(json_object_get(a, "region")), "east");
		cr_expect(strstr(json_string_value(json_object_get(a, "message")), "traffic returns to v1, then v2 stops"),
			  "%s", json_string_value(json_object_get(a, "message")));
		const json_t *ev = json_object_get(a, "evidence");
		cr_assert(json_is_object(ev), "%s: the verdict's evidence is recorded", c->method);
		cr_expect_str_eq(json_string_value(json_object_get(ev, "method")), c->method);
		cr_expect_str_eq(json_string_value(json_object_get(ev, "verdict")), "fail");
		cr_expect_str_eq(json_string_value(json_object_get(ev, "region")), "east");
		cr_expect_eq(json_integer_value(json_object_get(ev, "step_percent")), 50);
		cr_expect_gt(json_integer_value(json_object_get(json_object_get(ev, "canary"), "errors")), 0);
		json_decref(a);
		cr_expect_eq(count_events(id, "region_rolled_back"), 1, "%s", event_types(id));
		cr_expect_eq(count_events(id, "passed"), 0);
		cr_expect_str_eq(stable(c->service), "v1");
		cr_expect_str_eq(route(c->service), "v1=100");
		cr_expect_eq(running(c->service, "v2"), 0);
		cr_expect_eq(running(c->service, "v1"), 1);
		H.failing[0] = '\0';
	}
}

/* ---- abort ---- */

Test(executor, abort_returns_an_active_deployment_to_stable)
{
	first_release("api", "v1");
	int64_t id = held_at_first_step("api", "v2");
	cr_expect_str_eq(route("api"), "v1=50,v2=50");
	struct err e = {""};
	cr_assert_eq(executor_abort(H.ex, id, "stopped by a test", 0, &e), 0, "%s", e.msg);
	cr_expect_str_eq(region_state(id), "aborting", "recorded before anything acts");
	step();
	cr_expect_str_eq(route("api"), "v1=100");
	until_phase(id, "rolled_back");
	cr_expect_str_eq(reason(id), "stopped by a test");
	json_t *a = first_event(id, "aborted");
	cr_expect_str_eq(json_string_value(json_object_get(a, "message")),
			 "stopped by a test; traffic returns to v1, then v2 stops");
	json_decref(a);
	cr_expect_str_eq(stable("api"), "v1");
	cr_expect_eq(running("api", "v2"), 0);
	/* an ended deployment: nothing to do, nothing written */
	size_t before = strlen(event_types(id));
	cr_expect_eq(executor_abort(H.ex, id, "again", 0, &e), 0, "%s", e.msg);
	cr_expect_str_eq(phase(id), "rolled_back");
	cr_expect_eq(strlen(event_types(id)), before);
	cr_expect_eq(executor_abort(H.ex, 999, "nothing", 0, &e), -1);
	cr_expect_str_eq(e.msg, "deployment 999 not found");
}

/* ---- replicas: a replica drives what it owns, and a lost lease writes nothing ---- */

static void use_replica(replica *r)
{
	executor_free(H.ex);
	struct executor_deps xd = {H.loop, H.store, H.rts, H.router, H.vr, H.rec, NULL, H.dir, NULL, r};
	H.ex = executor_new(&xd);
	cr_assert_not_null(H.ex);
	reconcile_use_replica(H.rec, r);
}

static int64_t lease_epoch(const char *name)
{
	json_t *list = NULL;
	struct err e = {""};
	cr_assert_eq(store_list_leases(H.store, &list, &e), 0, "%s", e.msg);
	int64_t epoch = 0;
	size_t i;
	json_t *l;
	json_array_foreach(list, i, l)
		if (!strcmp(json_string_value(json_object_get(l, "name")), name))
			epoch = json_integer_value(json_object_get(l, "epoch"));
	json_decref(list);
	return epoch;
}

Test(executor, a_replica_drives_only_what_it_owns_and_a_fenced_write_changes_nothing)
{
	struct err e = {""};
	catalog *cat = catalog_new(H.store, H.rts);
	replica *a = replica_new(H.store, cat, H.rts, "replica-a", 60000);
	cr_assert(cat && a);
	int64_t b_epoch = 0;
	cr_assert_eq(store_lease_acquire(H.store, "service/api", "replica-b", 60000, &b_epoch, &e), 0, "%s", e.msg);
	replica_tick(a, 0);
	cr_expect_not(replica_owns(a, "api"), "another replica holds api");
	cr_expect(replica_owns(a, "web"), "a free lease is taken");
	use_replica(a);

	/* any replica accepts the request; only the owner drives it */
	release("api", "v1");
	int64_t id = create("api", "v1", PL_DEPLOY);
	for (int i = 0; i < 10; i++)
		step();
	cr_expect_not(started(id), "not driven by a replica that does not own api");
	cr_expect_eq(running("api", "v1"), 0, "nor converged");

	/* the owner leaves: released, taken on the next pass */
	cr_assert_eq(store_lease_release(H.store, "service/api", "replica-b", b_epoch, &e), 0, "%s", e.msg);
	usleep(1100 * 1000);
	replica_tick(a, 0);
	cr_assert(replica_owns(a, "api"));
	cr_expect_gt(lease_epoch("service/api"), b_epoch, "a new tenure");
	step();
	cr_expect(started(id), "driven by its new owner: %s", event_types(id));

	/* replica-a is paused past its lease (its own clock does not know yet) and replica-b takes
	 * api meanwhile: a's next transition is refused by the fence, nothing of it is written */
	int64_t a_epoch = lease_epoch("service/api");
	cr_assert_eq(store_lease_release(H.store, "service/api", "replica-a", a_epoch, &e), 0, "%s", e.msg);
	b_epoch = 0;
	cr_assert_eq(store_lease_acquire(H.store, "service/api", "replica-b", 60000, &b_epoch, &e), 0, "%s", e.msg);
	cr_assert(replica_owns(a, "api"), "a still believes it owns api");
	json_t *d = deployment(id);
	char *before = json_dumps(json_object_get(d, "state"), JSON_SORT_KEYS);
	json_decref(d);
	const char *types = event_types(id);
	char events_before[512];
	snprintf(events_before, sizeof(events_before), "%s", types);
	for (int i = 0; i < 5; i++)
		step();
	d = deployment(id);
	char *after = json_dumps(json_object_get(d, "state"), JSON_SORT_KEYS);
	json_decref(d);
	cr_expect_str_eq(after, before, "the fenced write changed nothing");
	cr_expect_str_eq(event_types(id), events_before, "no event was added");
	cr_expect_not(replica_owns(a, "api"), "a fenced replica drops the service");
	cr_expect(replica_owns(a, "web"), "and keeps the others");
	free(before);
	free(after);
	reconcile_use_replica(H.rec, NULL);
	replica_free(a);
	catalog_free(cat);
}

/* ---- operator requests on a replica that does not own the service: compare-and-set ---- */

/* The owner (H.ex) passes the first canary step: a transition it writes. */
static void owner_passes_a_step(void *arg)
{
	int64_t id = *(int64_t *)arg;
	H.traffic = 1;
	for (int i = 0; i < MAX_STEPS && count_events(id, "passed") < 1; i++)
		step();
	H.traffic = 0;
	cr_assert_eq(count_events(id, "passed"), 1, "%s", event_types(id));
}

/* Another replica's handle on the same database, wrapped so a test can act between its read and
 * its write. */
static store *second_handle(struct faulty_store **f)
{
	char db[128];
	snprintf(db, sizeof(db), "%s/sluice.db", H.dir);
	store *inner, *w;
	struct err e = {""};
	cr_assert_eq(store_open(&inner, db, &e), 0, "%s", e.msg);
	cr_assert_eq(faulty_store_open(&w, f, inner, &e), 0, "%s", e.msg);
	return w;
}

/* "Promote now" by an operator: a canary held at its first step (no traffic, so no verdict)
 * skips its remaining steps and checks, becomes stable, and the old version stops; asking
 * again once it is over is refused, and so is a region the deployment does not have. */
Test(executor, promote_now_skips_the_remaining_steps)
{
	first_release("api", "v1");
	int64_t id = held_at_first_step("api", "v2");
	struct err e = {""};
	cr_assert_neq(executor_promote(H.ex, id, "mars", "by test", &e), 0, "an unknown region was promoted");
	cr_expect(strstr(e.msg, "no region 'mars'"), "%s", e.msg);
	e.msg[0] = 0;
	cr_assert_eq(executor_promote(H.ex, id, NULL, "by token ops", &e), 0, "%s", e.msg);
	cr_expect_eq(count_events(id, "promote_now"), 1, "%s", event_types(id));
	until_phase(id, "promoted");
	cr_expect_eq(count_events(id, "passed"), 0, "no step was passed: %s", event_types(id));
	cr_expect_str_eq(stable("api"), "v2");
	cr_expect_str_eq(route("api"), "v2=100");
	cr_expect_eq(running("api", "v1"), 0);
	cr_assert_neq(executor_promote(H.ex, id, NULL, "again", &e), 0, "an ended deployment was promoted again");
}

Test(executor, an_abort_on_another_replica_is_recorded_once_and_undoes_no_transition)
{
	first_release("api", "v1");
	int64_t id = held_at_first_step("api", "v2");
	struct faulty_store *f;
	store *w = second_handle(&f);
	struct executor_deps xd = {H.loop, w, H.rts, H.router, H.vr, H.rec, NULL, H.dir, NULL, NULL};
	executor *other = executor_new(&xd);
	cr_assert_not_null(other);
	/* the other replica reads the deployment, then the owner writes a transition before the
	 * abort is written: the abort's first write is refused (compare-and-set), it reads again
	 * and applies the abort to the newer state */
	faulty_store_before(f, "begin", owner_passes_a_step, &id);
	struct err e = {""};
	cr_assert_eq(executor_abort(other, id, "stopped on another replica", 0, &e), 0, "%s", e.msg);
	cr_expect_eq(count_events(id, "passed"), 1, "the owner's transition happened: %s", event_types(id));
	cr_expect_eq(state(id).regions[0].step, 1, "and the abort did not undo it (written from its state)");
	cr_expect_eq(count_events(id, "aborted"), 1, "the abort is recorded once: %s", event_types(id));
	cr_expect(state(id).aborted);
	/* the owner carries it out */
	until_phase(id, "rolled_back");
	cr_expect_str_eq(reason(id), "stopped on another replica");
	cr_expect_str_eq(route("api"), "v1=100");
	cr_expect_eq(running("api", "v2"), 0);
	cr_expect_eq(count_events(id, "aborted"), 1, "%s", event_types(id));
	executor_free(other);
	store_close(w);
}

static int64_t abort_id;
static executor *abort_on;

static void another_replica_aborts(void *arg)
{
	(void)arg;
	struct err e = {""};
	cr_assert_eq(executor_abort(abort_on, abort_id, "aborted meanwhile", 0, &e), 0, "%s", e.msg);
}

Test(executor, the_owners_write_from_an_older_state_does_not_undo_an_abort)
{
	first_release("api", "v1");
	int64_t id = held_at_first_step("api", "v2");
	/* the owner now writes through a second handle; the abort comes through H.store */
	struct faulty_store *f;
	store *w = second_handle(&f);
	struct executor_deps xd = {H.loop, w, H.rts, H.router, H.vr, H.rec, NULL, H.dir, NULL, NULL};
	executor *owner = executor_new(&xd);
	cr_assert_not_null(owner);
	struct executor_deps od = {H.loop, H.store, H.rts, H.router, H.vr, H.rec, NULL, H.dir, NULL, NULL};
	abort_on = executor_new(&od);
	abort_id = id;
	executor_free(H.ex);
	H.ex = owner;
	/* the owner's next transition (the step passes) was read before the abort was written */
	faulty_store_before(f, "begin", another_replica_aborts, NULL);
	H.traffic = 1;
	until_phase(id, "rolled_back");
	cr_expect_str_eq(reason(id), "aborted meanwhile");
	cr_expect_eq(count_events(id, "aborted"), 1, "%s", event_types(id));
	cr_expect_eq(count_events(id, "passed"), 0, "the owner's stale transition was not written: %s",
		     event_types(id));
	cr_expect_str_eq(stable("api"), "v1");
	cr_expect_eq(running("api", "v2"), 0);
	H.ex = NULL;
	executor_free(owner);
	executor_free(abort_on);
	store_close(w);
	struct executor_deps xd2 = {H.loop, H.store, H.rts, H.router, H.vr, H.rec, NULL, H.dir, NULL, NULL};
	H.ex = executor_new(&xd2); /* for teardown */
}

/* Renewals that are due together go in one transaction: the leases stay held, in the same
 * tenure, past the deadline of the first grant. */
Test(executor, a_replica_renews_the_leases_due_together)
{
	catalog *cat = catalog_new(H.store, H.rts);
	replica *a = replica_new(H.store, cat, H.rts, "replica-a", 600);
	cr_assert(cat && a);
	replica_tick(a, 0);
	cr_assert(replica_owns(a, "api") && replica_owns(a, "web"));
	int64_t api = lease_epoch("service/api"), web = lease_epoch("service/web");
	struct timespec ts = {0, 250 * 1000000L}; /* past ttl / 3 */
	nanosleep(&ts, NULL);
	replica_tick(a, 0);
	nanosleep(&ts, NULL);
	nanosleep(&ts, NULL); /* 750 ms: past the first grant's expiry */
	cr_expect(replica_owns(a, "api") && replica_owns(a, "web"), "renewed");
	cr_expect_eq(lease_epoch("service/api"), api, "the same tenure");
	cr_expect_eq(lease_epoch("service/web"), web, "the same tenure");
	replica_free(a);
	catalog_free(cat);
}
