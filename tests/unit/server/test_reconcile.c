/*
 * Unit tests of the reconciler (src/server/reconcile.c) on the fake runtime and the fake
 * router, with a real SQLite store (behind a pass-through driver that can fail one operation
 * on demand). Each case drives passes by hand and asserts the exact routes the router holds
 * and the instances the runtime runs.
 *
 * Time: the reconciler reads its loop's time (loop_now), which only moves when the loop runs.
 * Passes between two loop runs therefore see the same instant, and the drain grace (1 s of
 * drained backends before a stop) passes only in wait_grace(), which runs the loop for a bit
 * more than that: a lower bound, never an upper one.
 */
#include <criterion/criterion.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/manifest.h"
#include "core/pipeline.h"
#include "loop/loop.h"
#include "server/reconcile.h"
#include "server/runtimes.h"
#include "store/store.h"
#include "support/fake_router.h"
#include "support/fake_runtime.h"
#include "util/doc.h"

/* The grace reconcile.c waits for (RECONCILE_DRAIN_GRACE_MS), and a margin. */
#define GRACE_MS 1000
#define GRACE_WAIT_MS (GRACE_MS + 100)

#define ENV "production"
#define US "us-east"
#define EU "eu-west"
#define ROUTE_US "api." ENV "." US

/* ---- a store that fails one operation on demand ----
 *
 * The SQLite driver's own table, with the reads the reconciler makes wrapped: while fail_op
 * names one of them, it fails as a broken connection would (-1, a "store: " message). */

static const char *fail_op;
static struct store_ops faulty_ops;

static int failing(const char *op, struct err *e)
{
	if (fail_op && !strcmp(fail_op, op))
		return err_set(e, "store: disk I/O error (injected into %s)", op);
	return 0;
}

static int faulty_list_manifests(void *drv, const char *kind, json_t **out, struct err *e)
{
	return failing("list_manifests", e) ? -1 : store_sqlite_ops.list_manifests(drv, kind, out, e);
}

static int faulty_active_deployments(void *drv, json_t **out, struct err *e)
{
	return failing("active_deployments", e) ? -1 : store_sqlite_ops.active_deployments(drv, out, e);
}

static int faulty_list_stable(void *drv, const char *service, json_t **out, struct err *e)
{
	return failing("list_stable", e) ? -1 : store_sqlite_ops.list_stable(drv, service, out, e);
}

static int faulty_get_manifest(void *drv, const char *kind, const char *name, json_t **out,
			       struct err *e)
{
	return failing("get_manifest", e) ? -1 : store_sqlite_ops.get_manifest(drv, kind, name, out, e);
}

static int faulty_get_release(void *drv, const char *service, const char *version, json_t **out,
			      struct err *e)
{
	return failing("get_release", e) ? -1 : store_sqlite_ops.get_release(drv, service, version, out, e);
}

/* ---- the harness: one reconciler over its drivers, in a temporary directory ---- */

static struct {
	char dir[64];
	store *s;
	runtimes *rts;
	runtime *rt; /* owned by rts */
	router *r;
	loop *l;
	reconciler *rec;
	struct pl_state dep; /* the deployment deploy() created, as last written */
	int64_t dep_id;
} h;

static void apply(const char *yaml)
{
	struct err e = {""};
	doc *d;
	json_t *all;
	cr_assert_eq(doc_parse("test.yaml", yaml, strlen(yaml), &d, &e), 0, "%s", e.msg);
	cr_assert_eq(manifest_validate(d, &all, &e), 0, "%s", e.msg);
	doc_free(d);
	size_t i;
	json_t *m;
	json_array_foreach(all, i, m) {
		const char *kind = json_string_value(json_object_get(m, "kind"));
		const char *name = json_string_value(json_object_get(m, "name"));
		cr_assert_eq(store_put_manifest(h.s, kind, name, m, NULL, &e), 0, "%s", e.msg);
	}
	json_decref(all);
}

/* Two regions: us-east at port offset 0 (where the cases run) and eu-west at 100. */
static const char *envs = "kind: Environment\n"
			  "name: " ENV "\n"
			  "regions:\n"
			  "  - name: " US "\n"
			  "    port_offset: 0\n"
			  "  - name: " EU "\n"
			  "    port_offset: 100\n";

static void service(int instances)
{
	char yaml[256];
	snprintf(yaml, sizeof(yaml), "kind: Service\nname: api\nlisten_port: 18001\ninstances: %d\n",
		 instances);
	apply(yaml);
}

/* Registers a release (the reconciler only names its artifact's path; the fake runtime never
 * runs it, so no file is written). */
static void release(const char *version)
{
	static unsigned n;
	char digest[80];
	struct err e = {""};
	int created;
	snprintf(digest, sizeof(digest), "sha256:%064u", ++n);
	cr_assert_eq(store_put_release(h.s, "api", version, digest, 3, NULL, &created, &e), 0, "%s", e.msg);
}

static void set_stable(const char *region, const char *version)
{
	struct err e = {""};
	cr_assert_eq(store_set_stable(h.s, "api", ENV, region, version, 0, &e), 0, "%s", e.msg);
}

static void write_deployment(void)
{
	struct err e = {""};
	json_t *state = pipeline_to_json(&h.dep);
	cr_assert(state);
	if (h.dep_id)
		cr_assert_eq(store_update_deployment(h.s, h.dep_id, state, "active", NULL, &e), 0, "%s", e.msg);
	else
		cr_assert_eq(store_create_deployment(h.s, "api", ENV, h.dep.version, "deploy", state, &h.dep_id,
						     &e),
			     0, "%s", e.msg);
	json_decref(state);
}

/* An active canary deployment of `version` (steps 10, 50, 100; 2 instances) over the stable
 * v1, with us-east in `state` at `step` and eu-west still pending (so not controlled). */
static void deploy(const char *version, enum pl_rstate state, int step, int baseline)
{
	struct pl_config cfg = {.strategy = PL_CANARY, .steps = {10, 50, 100}, .nsteps = 3,
				.instances = 2, .step_duration_ms = 1, .max_step_duration_ms = 60000,
				.start_timeout_ms = 60000, .baseline = baseline};
	struct pl_region_init regions[] = {{US, ENV, "v1", 0, 0}, {EU, ENV, "", 1, 0}};
	cr_assert_eq(pipeline_init(&h.dep, PL_DEPLOY, version, &cfg, regions, 2), 0);
	h.dep.regions[0].state = state;
	h.dep.regions[0].step = step;
	h.dep_id = 0;
	write_deployment();
}

/* Moves us-east of the deployment to another state, as the executor would. */
static void move(enum pl_rstate state, int step)
{
	h.dep.regions[0].state = state;
	h.dep.regions[0].step = step;
	write_deployment();
}

static void init(void)
{
	struct err e = {""};
	snprintf(h.dir, sizeof(h.dir), "/tmp/sluice-reconcile-XXXXXX");
	cr_assert(mkdtemp(h.dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/sluice.db", h.dir);
	void *drv;
	cr_assert_eq(store_sqlite_ops.open(&drv, path, &e), 0, "%s", e.msg);
	faulty_ops = store_sqlite_ops;
	faulty_ops.open = NULL;
	faulty_ops.list_manifests = faulty_list_manifests;
	faulty_ops.active_deployments = faulty_active_deployments;
	faulty_ops.list_stable = faulty_list_stable;
	faulty_ops.get_release = faulty_get_release;
	faulty_ops.get_manifest = faulty_get_manifest;
	cr_assert_eq(store_attach(&h.s, &faulty_ops, drv, &e), 0, "%s", e.msg);
	fail_op = NULL;

	cr_assert_eq(runtime_open_ops(&h.rt, &fake_runtime_ops, NULL, &(struct runtime_host){h.dir}, &e), 0,
		     "%s", e.msg);
	cr_assert_eq(runtimes_open_with(&h.rts, h.dir, h.rt, &e), 0, "%s", e.msg);
	h.r = fake_router_new();
	h.l = loop_new();
	cr_assert(h.r && h.l);
	h.rec = reconcile_new(h.l, h.s, h.rts, h.r, h.dir);
	cr_assert(h.rec);
	h.dep_id = 0;

	apply(envs);
	service(2);
	release("v0");
	release("v1");
	release("v2");
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void fini(void)
{
	reconcile_free(h.rec);
	loop_free(h.l);
	router_free(h.r);
	runtimes_close(h.rts);
	store_close(h.s);
	nftw(h.dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* ---- driving and looking ---- */

static void pass(void)
{
	reconcile_all(h.rec);
}

static void tick(void)
{
	runtimes_tick(h.rts, loop_now(h.l));
}

/* A pass, the instances it started turn healthy, a pass that routes them. */
static void settle(void)
{
	pass();
	tick();
	pass();
}

static void stop_loop(loop *l, void *arg)
{
	loop_stop(l);
}

/* Lets the loop's clock pass the drain grace. */
static void wait_grace(void)
{
	uint64_t t0 = loop_now(h.l);
	cr_assert(loop_timer(h.l, GRACE_WAIT_MS, stop_loop, NULL));
	cr_assert_eq(loop_run(h.l), 0);
	cr_assert_geq(loop_now(h.l) - t0, GRACE_WAIT_MS);
}

static unsigned count(const char *version)
{
	return fake_runtime_count(h.rt, "api", ENV, US, version);
}

/* Whether reconcile_tick (not busy) ran a pass. */
static int tick_ran(void)
{
	uint64_t p0, s0, p1, s1;
	reconcile_counts(h.rec, &p0, &s0);
	reconcile_tick(h.rec, 0);
	reconcile_counts(h.rec, &p1, &s1);
	cr_assert_eq(p1 + s1, p0 + s0 + 1);
	return p1 > p0;
}

/* The router holds exactly `want` (JSON with ' for "). */
static void expect_routes_at(const char *want, const char *where, int line)
{
	char *text = strdup(want);
	for (char *p = text; *p; p++)
		if (*p == '\'')
			*p = '"';
	json_error_t je;
	json_t *exp = json_loads(text, 0, &je);
	cr_assert(exp, "bad expectation at line %d: %s", line, je.text);
	char *got = json_dumps(fake_router_routes(h.r), JSON_SORT_KEYS | JSON_COMPACT);
	char *wanted = json_dumps(exp, JSON_SORT_KEYS | JSON_COMPACT);
	cr_expect(json_equal(exp, fake_router_routes(h.r)), "%s (line %d):\n  routes %s\n  wanted %s", where,
		  line, got, wanted);
	free(got);
	free(wanted);
	json_decref(exp);
	free(text);
}
#define expect_routes(want, where) expect_routes_at(want, where, __LINE__)

/* Ports the fake runtime hands out, in start order. */
#define A0 "'127.0.0.1:30000'"
#define A1 "'127.0.0.1:30001'"
#define B0 "'127.0.0.1:30002'"
#define B1 "'127.0.0.1:30003'"
#define C0 "'127.0.0.1:30004'"
#define C1 "'127.0.0.1:30005'"
#define ROUTE(versions) "{'" ROUTE_US "': {'port': 18001, 'versions': {" versions "}}}"
#define V(name, weight, backends) "'" name "': {'weight': " #weight ", 'backends': [" backends "]}"

/* v1 stable in us-east, its two instances healthy and routed (30000, 30001). */
static void stable_v1(void)
{
	set_stable(US, "v1");
	settle();
	cr_assert_eq(count("v1"), 2);
	expect_routes(ROUTE(V("v1", 100, A0 "," A1)), "stable v1");
}

/* Writes the store (a release nobody deploys): the catalog parses manifests once per store
 * change, so a read that is to fail must follow a change to happen at all. */
static void touch(void)
{
	static int n;
	char version[32];
	snprintf(version, sizeof(version), "touch-%d", ++n);
	struct err e = {""};
	int created;
	cr_assert_eq(store_put_release(h.s, "api", version, "sha256:" "0000000000000000000000000000000"
				       "0000000000000000000000000000000ee", 3, NULL, &created, &e), 0, "%s", e.msg);
}

TestSuite(reconcile, .init = init, .fini = fini, .timeout = 30);

/* ---- the stable release, no deployment ---- */

Test(reconcile, a_stable_release_runs_and_is_routed_in_each_region)
{
	set_stable(US, "v1");
	set_stable(EU, "v1");
	const char *routes =
		"{'" ROUTE_US "': {'port': 18001, 'versions': {" V("v1", 100, A0 "," A1) "}},"
		" 'api." ENV "." EU "': {'port': 18101, 'versions': {" V("v1", 100, B0 "," B1) "}}}";

	pass();
	cr_expect_eq(count("v1"), 2, "instances from the manifest");
	cr_expect_eq(fake_runtime_count(h.rt, "api", ENV, EU, "v1"), 2);
	cr_expect_eq(fake_runtime_starts(h.rt), 4);
	/* nothing is healthy anywhere yet: the starting instances are all there is to route to */
	expect_routes(routes, "first pass");

	tick();
	pass();
	expect_routes(routes, "healthy");
	cr_expect_eq(fake_runtime_starts(h.rt), 4, "ensure is idempotent");
	cr_expect_eq(fake_router_deletes(h.r), 0);
	cr_expect_null(reconcile_start_error(h.rec, "api", ENV, US, "v1"));
}

Test(reconcile, a_region_without_stable_release_or_deployment_is_left_alone)
{
	pass();
	tick();
	pass();
	cr_expect_eq(fake_runtime_count(h.rt, NULL, NULL, NULL, NULL), 0);
	cr_expect_eq(fake_runtime_ensures(h.rt), 0);
	expect_routes("{}", "nothing deployed");
	cr_expect_eq(fake_router_puts(h.r) + fake_router_deletes(h.r), 0);
}

/* ---- an active deployment: both versions run, the route carries both weights ---- */

struct canary_case {
	const char *name;
	enum pl_rstate state;
	int step;
	int baseline;
	unsigned baselines; /* instances of v1~baseline */
	const char *starting; /* the route while v2 is starting (NULL: not asserted) */
	const char *healthy;  /* the route once v2 is healthy */
};

static const struct canary_case canary_cases[] = {
	{"starting: no traffic for v2 yet", R_STARTING, 0, 0, 0,
	 ROUTE(V("v1", 100, A0 "," A1)),
	 ROUTE(V("v1", 100, A0 "," A1) "," V("v2", 0, B0 "," B1))},
	{"step 10%", R_STEP, 0, 0, 0,
	 ROUTE(V("v1", 90, A0 "," A1)),
	 ROUTE(V("v1", 90, A0 "," A1) "," V("v2", 10, B0 "," B1))},
	{"step 50%", R_STEP, 1, 0, 0,
	 ROUTE(V("v1", 50, A0 "," A1)),
	 ROUTE(V("v1", 50, A0 "," A1) "," V("v2", 50, B0 "," B1))},
	{"step 100%", R_STEP, 2, 0, 0, NULL,
	 ROUTE(V("v1", 0, A0 "," A1) "," V("v2", 100, B0 "," B1))},
	{"step 10% with a baseline", R_STEP, 0, 1, 2,
	 ROUTE(V("v1", 80, A0 "," A1)),
	 ROUTE(V("v1", 80, A0 "," A1) "," V("v1~baseline", 10, B0 "," B1) "," V("v2", 10, C0 "," C1))},
	{"smoke checks: no traffic for v2", R_SMOKE, 0, 0, 0,
	 ROUTE(V("v1", 100, A0 "," A1)),
	 ROUTE(V("v1", 100, A0 "," A1) "," V("v2", 0, B0 "," B1))},
};

Test(reconcile, a_canary_runs_both_versions_and_routes_both_weights)
{
	stable_v1();
	for (size_t i = 0; i < sizeof(canary_cases) / sizeof(canary_cases[0]); i++) {
		const struct canary_case *c = &canary_cases[i];
		/* each case from the same start: a fresh reconciler, drivers and store */
		if (i) {
			fini();
			init();
			stable_v1();
		}
		deploy("v2", c->state, c->step, c->baseline);
		pass();
		cr_expect_eq(count("v1"), 2, "%s", c->name);
		cr_expect_eq(count("v2"), 2, "%s", c->name);
		cr_expect_eq(count("v1~baseline"), c->baselines, "%s", c->name);
		if (c->starting)
			expect_routes(c->starting, c->name);
		tick();
		pass();
		expect_routes(c->healthy, c->name);
		cr_expect_eq(count("v1"), 2, "%s", c->name);
		cr_expect_eq(count("v2"), 2, "%s", c->name);
		/* eu-west is not controlled by the deployment and has no stable release */
		cr_expect_eq(fake_runtime_count(h.rt, "api", ENV, EU, NULL), 0, "%s", c->name);
	}
}

/* ---- health: starting, unhealthy and crashing versions in the route ---- */

struct health_case {
	const char *name;
	const char *unhealthy;  /* versions whose instances fail health checks */
	const char *unhealthy2;
	const char *broken;     /* a version that crash-loops */
	int ticks;              /* runtime ticks after the marks */
	const char *route;
};

/* v1 and v2 at 50% each, both healthy (v1: 30000-1, v2: 30002-3), then: */
static const struct health_case health_cases[] = {
	{"v2 unhealthy keeps its unhealthy instances", "v2", NULL, NULL, 1,
	 ROUTE(V("v1", 50, A0 "," A1) "," V("v2", 50, B0 "," B1))},
	{"both unhealthy keep theirs", "v2", "v1", NULL, 1,
	 ROUTE(V("v1", 50, A0 "," A1) "," V("v2", 50, B0 "," B1))},
	{"v2 crashed (backoff) leaves the route", NULL, NULL, "v2", 1,
	 ROUTE(V("v1", 50, A0 "," A1))},
	{"v2 starting again leaves the route while v1 is healthy", NULL, NULL, "v2", 2,
	 ROUTE(V("v1", 50, A0 "," A1))},
};

Test(reconcile, starting_and_unhealthy_versions_in_the_route)
{
	const char *both = ROUTE(V("v1", 50, A0 "," A1) "," V("v2", 50, B0 "," B1));
	stable_v1();
	deploy("v2", R_STEP, 1, 0);
	pass();
	/* v2 starting while v1 is healthy: v2 is left out, v1 takes the traffic */
	expect_routes(ROUTE(V("v1", 50, A0 "," A1)), "v2 starting");
	tick();
	pass();
	expect_routes(both, "both healthy");

	for (size_t i = 0; i < sizeof(health_cases) / sizeof(health_cases[0]); i++) {
		const struct health_case *c = &health_cases[i];
		if (c->unhealthy)
			fake_runtime_set_unhealthy(h.rt, c->unhealthy, 1);
		if (c->unhealthy2)
			fake_runtime_set_unhealthy(h.rt, c->unhealthy2, 1);
		if (c->broken)
			fake_runtime_set_broken(h.rt, c->broken, 1);
		for (int t = 0; t < c->ticks; t++)
			tick();
		pass();
		expect_routes(c->route, c->name);
		cr_expect_eq(count("v1"), 2, "%s: nothing stops", c->name);
		cr_expect_eq(count("v2"), 2, "%s: nothing stops", c->name);

		/* mended: back to both healthy at the next tick */
		if (c->unhealthy)
			fake_runtime_set_unhealthy(h.rt, c->unhealthy, 0);
		if (c->unhealthy2)
			fake_runtime_set_unhealthy(h.rt, c->unhealthy2, 0);
		if (c->broken)
			fake_runtime_set_broken(h.rt, c->broken, 0);
		tick();
		pass();
		expect_routes(both, c->name);
	}
	cr_expect_eq(fake_runtime_starts(h.rt), 4, "no instance was replaced");
}

/* ---- traffic moves before instances ---- */

static void promoting(void)
{
	deploy("v2", R_STEP, 1, 0);
	settle();
	expect_routes(ROUTE(V("v1", 50, A0 "," A1) "," V("v2", 50, B0 "," B1)), "canary at 50%");
}

static void promote(void)
{
	move(R_PROMOTING, 1);
}

static void abort_it(void)
{
	move(R_ABORTING, 1);
}

/* An instance of v0 that nobody wants (left over by a crash): healthy, never routed. */
static void orphan(void)
{
	struct err e = {""};
	struct instance_spec spec = {.service = "api", .env = ENV, .region = US, .version = "v0",
				     .artifact = "/nonexistent", .command = "{artifact}"};
	cr_assert_eq(runtime_ensure(h.rt, &spec, 1, &e), 0, "%s", e.msg);
	tick();
}

static void nothing(void)
{
}

static void scale_down(void)
{
	service(1);
}

struct leave_case {
	const char *name;
	void (*prepare)(void); /* after stable_v1 */
	void (*change)(void);  /* makes `leaving` (some of its instances) unwanted */
	const char *leaving;
	unsigned before, after;  /* its instances */
	const char *staying;
	unsigned staying_n;
	const char *route; /* from the first pass after the change on */
};

static const struct leave_case leave_cases[] = {
	{"promoted: v1 leaves", promoting, promote, "v1", 2, 0, "v2", 2, ROUTE(V("v2", 100, B0 "," B1))},
	{"aborted: v2 leaves", promoting, abort_it, "v2", 2, 0, "v1", 2, ROUTE(V("v1", 100, A0 "," A1))},
	{"orphan: v0 is stopped", orphan, nothing, "v0", 1, 0, "v1", 2, ROUTE(V("v1", 100, A0 "," A1))},
	{"scaled down: v1's index 1 retires", nothing, scale_down, "v1", 2, 1, "v1", 1, ROUTE(V("v1", 100, A0))},
};

Test(reconcile, traffic_moves_before_instances_stop)
{
	for (size_t i = 0; i < sizeof(leave_cases) / sizeof(leave_cases[0]); i++) {
		const struct leave_case *c = &leave_cases[i];
		if (i) {
			fini();
			init();
		}
		stable_v1();
		c->prepare();
		c->change();

		/* the route changes first; the instances still run */
		pass();
		expect_routes(c->route, c->name);
		cr_expect_eq(count(c->leaving), c->before, "%s: stopped before its drain", c->name);
		tick();
		cr_expect(tick_ran(), "%s: a drain pending is work left", c->name);
		tick();
		cr_expect_eq(count(c->leaving), c->before, "%s: stopped within the grace", c->name);

		/* drained for the grace: stopped */
		wait_grace();
		pass();
		tick();
		expect_routes(c->route, c->name);
		cr_expect_eq(count(c->leaving), c->after, "%s: not stopped after its drain", c->name);
		cr_expect_eq(count(c->staying), c->staying_n, "%s", c->name);

		/* and then nothing is left to do */
		pass();
		cr_expect_not(tick_ran(), "%s: an idle pass after the stop", c->name);
		expect_routes(c->route, c->name);
		cr_expect_eq(count(c->leaving), c->after, "%s", c->name);
	}
}

/* The new route cannot be made (no instance of the version that gets all the traffic can take
 * it): the router keeps the last route, so the version it still names keeps running. */
Test(reconcile, a_version_leaves_only_once_its_replacement_is_routed)
{
	stable_v1();
	fake_runtime_set_broken(h.rt, "v2", 1);
	deploy("v2", R_STEP, 1, 0);
	pass();
	tick(); /* v2 crashes: backoff */
	pass();
	expect_routes(ROUTE(V("v1", 50, A0 "," A1)), "v2 crashing");
	move(R_PROMOTING, 1);
	pass();
	expect_routes(ROUTE(V("v1", 50, A0 "," A1)), "promoted, v2 still crashing");
	/* (no runtime tick here: the fake would restart v2, and a version with only starting
	 * instances is routed when no weighted version has a healthy one) */
	wait_grace();
	pass();
	pass();
	tick();
	expect_routes(ROUTE(V("v1", 50, A0 "," A1)), "promoted, v2 still crashing");
	cr_expect_eq(count("v1"), 2, "v1 stopped while the router still sends it everything");
	cr_expect(tick_ran(), "a route not sent is work left");

	/* v2 recovers: the route moves, then v1 drains and stops */
	fake_runtime_set_broken(h.rt, "v2", 0);
	tick();
	pass();
	expect_routes(ROUTE(V("v2", 100, B0 "," B1)), "v2 healthy");
	tick();
	cr_expect_eq(count("v1"), 2, "v1 stopped with no drain");
}

Test(reconcile, held_drains_keep_instances_running)
{
	stable_v1();
	promoting();
	fake_router_hold_drains(h.r, 1);
	promote();
	pass();
	expect_routes(ROUTE(V("v2", 100, B0 "," B1)), "promoted");
	cr_expect_eq(count("v1"), 2);

	/* requests in flight on v1's backends: no stop, however long it takes */
	wait_grace();
	pass();
	tick();
	pass();
	cr_expect_eq(count("v1"), 2, "stopped with requests in flight");
	cr_expect(tick_ran(), "a held drain is work left");

	/* drained now: the grace starts from here */
	fake_router_hold_drains(h.r, 0);
	pass();
	tick();
	pass();
	tick();
	cr_expect_eq(count("v1"), 2, "stopped as soon as drained, without the grace");
	expect_routes(ROUTE(V("v2", 100, B0 "," B1)), "promoted");
}

Test(reconcile, the_router_down_stops_nothing)
{
	stable_v1();
	promoting();
	promote();
	pass(); /* v1 leaves the route, its drain begins */
	expect_routes(ROUTE(V("v2", 100, B0 "," B1)), "promoted");
	unsigned puts = fake_router_puts(h.r);

	fake_router_fail(h.r, 1);
	wait_grace();
	pass();
	tick();
	cr_expect_eq(count("v1"), 2, "stopped while the router cannot be asked");
	cr_expect_eq(count("v2"), 2);
	cr_expect(tick_ran(), "a pass the router failed stays pending");
	cr_expect(tick_ran(), "still pending");
	cr_expect_eq(count("v1"), 2);
	cr_expect_eq(fake_router_puts(h.r), puts);

	/* back: the pass runs through again */
	fake_router_fail(h.r, 0);
	pass();
	cr_expect_gt(fake_router_puts(h.r), puts);
	expect_routes(ROUTE(V("v2", 100, B0 "," B1)), "router back");
	cr_expect_eq(count("v2"), 2);
}

Test(reconcile, a_router_down_from_the_start_gets_its_route_when_back)
{
	set_stable(US, "v1");
	fake_router_fail(h.r, 1);
	/* router_ensure fails first: the pass does nothing at all and stays pending */
	pass();
	cr_expect_eq(count("v1"), 0);
	expect_routes("{}", "router down");
	cr_expect(tick_ran(), "pending");
	cr_expect(tick_ran(), "still pending");

	fake_router_fail(h.r, 0);
	pass();
	tick();
	pass();
	cr_expect_eq(count("v1"), 2);
	expect_routes(ROUTE(V("v1", 100, A0 "," A1)), "router back");
	cr_expect_not(tick_ran(), "done");
}

/* ---- why instances cannot start ---- */

static void refuse(void)
{
	fake_runtime_refuse(h.rt, "fake runtime: no room for api");
}

static void accept_again(void)
{
	fake_runtime_refuse(h.rt, NULL);
}

static void unknown_release(void)
{
	set_stable(US, "v9"); /* no release v9 registered */
}

static void register_it(void)
{
	release("v9");
}

struct start_case {
	const char *name;
	void (*break_it)(void);
	void (*mend)(void);
	const char *version;
	const char *error; /* a substring of the recorded error */
};

static const struct start_case start_cases[] = {
	{"the runtime refuses", refuse, accept_again, "v1", "fake runtime: no room for api"},
	{"the release is unknown", unknown_release, register_it, "v9", "v9"},
};

Test(reconcile, a_start_refusal_is_recorded_and_cleared)
{
	for (size_t i = 0; i < sizeof(start_cases) / sizeof(start_cases[0]); i++) {
		const struct start_case *c = &start_cases[i];
		if (i) {
			fini();
			init();
		}
		set_stable(US, "v1");
		c->break_it();
		pass();
		const char *msg = reconcile_start_error(h.rec, "api", ENV, US, c->version);
		cr_expect(msg && strstr(msg, c->error), "%s: '%s'", c->name, msg ? msg : "(none)");
		cr_expect_null(reconcile_start_error(h.rec, "api", ENV, EU, c->version), "%s", c->name);
		cr_expect_eq(count(c->version), 0, "%s", c->name);
		expect_routes("{}", c->name);
		cr_expect(tick_ran(), "%s: a refused start is tried again", c->name);
		cr_expect(reconcile_start_error(h.rec, "api", ENV, US, c->version), "%s: kept", c->name);

		c->mend();
		pass();
		cr_expect_null(reconcile_start_error(h.rec, "api", ENV, US, c->version), "%s: cleared",
			       c->name);
		cr_expect_eq(count(c->version), 2, "%s", c->name);
		tick();
		pass();
		cr_expect_not(tick_ran(), "%s: nothing left to do", c->name);
	}
}

/* ---- a store read that fails is not "not found" ---- */

static const char *store_faults[] = {"list_stable", "list_manifests", "active_deployments",
				     "get_release"};

/* A release's digest, once read, is kept by the reconciler (releases never change): a fault
 * in get_release is met by a reconciler that has not read that release yet. The catalog reads
 * the manifests again only after one changed: a fault in list_manifests follows such a change. */
static void fail_next(const char *op)
{
	if (op && !strcmp(op, "list_manifests")) {
		static int port = 18500;
		char yaml[128];
		snprintf(yaml, sizeof(yaml), "kind: Service\nname: touched\nlisten_port: %d\n", ++port);
		apply(yaml);
	}
	if (op && !strcmp(op, "get_release")) {
		reconcile_free(h.rec);
		h.rec = reconcile_new(h.l, h.s, h.rts, h.r, h.dir);
		cr_assert(h.rec);
	}
	fail_op = op;
}

Test(reconcile, a_failed_store_read_keeps_routes_and_instances)
{
	const char *route = ROUTE(V("v1", 100, A0 "," A1));
	for (size_t i = 0; i < sizeof(store_faults) / sizeof(store_faults[0]); i++) {
		const char *op = store_faults[i];
		if (i) {
			fini();
			init();
		}
		stable_v1();
		unsigned puts = fake_router_puts(h.r);

		touch();
		fail_next(op);
		pass();
		expect_routes(route, op);
		cr_expect_eq(fake_router_deletes(h.r), 0, "%s: the route was deleted", op);
		cr_expect_eq(count("v1"), 2, "%s", op);
		cr_expect(tick_ran(), "%s: a failed read leaves the pass pending", op);
		cr_expect_null(reconcile_start_error(h.rec, "api", ENV, US, "v1"), "%s: not a refusal", op);
		/* even past the drain grace */
		wait_grace();
		pass();
		tick();
		pass();
		expect_routes(route, op);
		cr_expect_eq(count("v1"), 2, "%s: instances stopped on a failed read", op);
		cr_expect_eq(fake_router_deletes(h.r), 0, "%s", op);

		fail_op = NULL;
		pass();
		expect_routes(route, op);
		cr_expect_eq(count("v1"), 2, "%s", op);
		cr_expect_null(reconcile_start_error(h.rec, "api", ENV, US, "v1"), "%s", op);
		cr_expect_not(tick_ran(), "%s: the store answers again, nothing left to do", op);
		cr_expect_geq(fake_router_puts(h.r), puts, "%s", op);
	}
}

/* A start error says the runtime refused (the executor fails the region's attempt on it): a
 * store read that failed on the way is no such answer. It records nothing, and a refusal
 * recorded before stays as it was. */
struct start_fault_case {
	const char *name;
	const char *op;      /* the store operation that fails */
	const char *service; /* whose start error is looked at */
	const char *version;
};

static const struct start_fault_case start_fault_cases[] = {
	{"the release cannot be read", "get_release", "api", "v1"},
	/* a dependency's port comes from the catalog's manifests, read once per store change by
	 * the pass's listing (a failure there fails the whole pass: the test above) */
};

Test(reconcile, a_failed_store_read_is_not_a_start_error)
{
	for (size_t i = 0; i < sizeof(start_fault_cases) / sizeof(start_fault_cases[0]); i++) {
		const struct start_fault_case *c = &start_fault_cases[i];
		if (i) {
			fini();
			init();
		}
		/* web calls api: its instances are told where api's route is */
		apply("kind: Service\nname: web\nlisten_port: 18003\ndepends_on: [api]\n");
		struct err e = {""};
		int created;
		cr_assert_eq(store_put_release(h.s, "web", "w1", "sha256:" "00000000000000000000000000000000"
					       "000000000000000000000000000000ff", 3, NULL, &created, &e),
			     0, "%s", e.msg);
		set_stable(US, "v1");
		cr_assert_eq(store_set_stable(h.s, "web", ENV, US, "w1", 0, &e), 0, "%s", e.msg);
		settle();
		unsigned running = fake_runtime_count(h.rt, c->service, ENV, US, c->version);
		cr_assert_gt(running, 0, "%s", c->name);

		touch();
		fail_next(c->op);
		pass();
		cr_expect_null(reconcile_start_error(h.rec, c->service, ENV, US, c->version), "%s: '%s'",
			       c->name, reconcile_start_error(h.rec, c->service, ENV, US, c->version));
		cr_expect_eq(fake_runtime_count(h.rt, c->service, ENV, US, c->version), running, "%s", c->name);
		cr_expect(tick_ran(), "%s: tried again", c->name);

		/* a refusal known before the failure is kept through it, not replaced */
		fail_op = NULL;
		refuse();
		pass();
		const char *msg = reconcile_start_error(h.rec, c->service, ENV, US, c->version);
		cr_expect(msg && strstr(msg, "no room"), "%s: '%s'", c->name, msg ? msg : "(none)");
		fail_op = c->op;
		pass();
		msg = reconcile_start_error(h.rec, c->service, ENV, US, c->version);
		cr_expect(msg && strstr(msg, "no room"), "%s: kept: '%s'", c->name, msg ? msg : "(none)");

		fail_op = NULL;
		accept_again();
		pass();
		cr_expect_null(reconcile_start_error(h.rec, c->service, ENV, US, c->version), "%s", c->name);
		cr_expect_eq(fake_runtime_count(h.rt, c->service, ENV, US, c->version), running, "%s", c->name);
	}
}

/* A version whose instances all run was taken by the runtime as it is: passes do not ask
 * again (thousands of regions a pass), until a manifest changes what the spec is made of. */
Test(reconcile, a_running_version_is_ensured_again_only_after_a_manifest_change)
{
	stable_v1();
	unsigned ensures = fake_runtime_ensures(h.rt);
	release("v8"); /* a write that is no manifest */
	pass();
	pass();
	cr_expect_eq(fake_runtime_ensures(h.rt), ensures, "nothing to start: not ensured again");
	apply("kind: Service\nname: api\nlisten_port: 18001\ninstances: 2\n"
	      "run: {env: {MODE: changed}}\n");
	pass();
	cr_expect_eq(fake_runtime_ensures(h.rt), ensures + 1, "the changed spec goes to the runtime");
	ensures = fake_runtime_ensures(h.rt);
	pass();
	cr_expect_eq(fake_runtime_ensures(h.rt), ensures, "and once only");
	cr_expect_eq(count("v1"), 2);
}

/* ---- idle passes are skipped ---- */

static void write_store(void)
{
	release("v7");
}

static void runtime_changes(void)
{
	fake_runtime_set_unhealthy(h.rt, "v1", 1);
	tick();
}

static void router_restarts(void)
{
	router_stop(h.r); /* the fake forgets its routes and moves its generation */
}

struct idle_case {
	const char *name;
	void (*change)(void);
	int busy;
	int runs;
};

static const struct idle_case idle_cases[] = {
	{"nothing changed", nothing, 0, 0},
	{"a deployment is active (busy)", nothing, 1, 1},
	{"the store was written", write_store, 0, 1},
	{"an instance changed state", runtime_changes, 0, 1},
	{"the router's generation moved", router_restarts, 0, 1},
};

Test(reconcile, an_idle_tick_skips_its_pass)
{
	const char *route = ROUTE(V("v1", 100, A0 "," A1));
	for (size_t i = 0; i < sizeof(idle_cases) / sizeof(idle_cases[0]); i++) {
		const struct idle_case *c = &idle_cases[i];
		if (i) {
			fini();
			init();
		}
		stable_v1();
		uint64_t passes, skipped;
		reconcile_counts(h.rec, &passes, &skipped);
		cr_expect_eq(passes + skipped, 0, "%s", c->name);
		cr_expect_not(tick_ran(), "%s: settled", c->name);

		c->change();
		unsigned ensures = fake_runtime_ensures(h.rt);
		reconcile_tick(h.rec, c->busy);
		uint64_t p, s;
		reconcile_counts(h.rec, &p, &s);
		cr_expect_eq(p, (uint64_t)c->runs, "%s: passes", c->name);
		cr_expect_eq(s, (uint64_t)(2 - c->runs), "%s: skipped", c->name);
		/* a pass asks the runtime again only for what it has not taken as it is now: every
		 * instance runs, and no manifest changed */
		cr_expect_eq(fake_runtime_ensures(h.rt), ensures, "%s: ensured again", c->name);
		/* whatever changed, the routes are right again (the router that forgot them has
		 * them back) */
		expect_routes(route, c->name);
		cr_expect_not(tick_ran(), "%s: nothing new after the pass", c->name);
	}
}
