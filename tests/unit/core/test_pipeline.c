/* Table-driven tests of the pipeline state machine: every transition. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "core/analysis.h"
#include "core/pipeline.h"

static struct pl_config config(void)
{
	struct pl_config cfg = {.steps = {10, 50, 100}, .nsteps = 3, .instances = 2, .max_surge = 1,
				.step_duration_ms = 1000, .max_step_duration_ms = 10000,
				.start_timeout_ms = 5000, .keep_old_ms = 3000, .side_by_side_ms = 4000,
				.retry_backoff_ms = 1000};
	return cfg;
}

static struct pl_state make(enum pl_kind kind, const char *stable0, const char *stable1)
{
	struct pl_config cfg = config();
	struct pl_region_init regions[] = {{"us-east", "production", stable0, 0, 0},
					   {"eu-west", "production", stable1, 1, 0}};
	struct pl_state s;
	cr_assert_eq(pipeline_init(&s, kind, "v2", &cfg, regions, 2), 0);
	return s;
}

/* One row: a deployment whose regions are in (r0, r1) at step `step` since t=0, then an
 * event; the expected states, phase, and the kinds of the recorded actions. */
struct row {
	const char *name;
	enum pl_kind kind;
	const char *stable;
	enum pl_rstate r0, r1;
	int step;
	enum pl_event_type ev;
	int region;
	int64_t now;
	struct pl_obs obs;
	int preempt;
	/* expected */
	int changed;
	enum pl_rstate want_r0, want_r1;
	int want_step;
	enum pl_phase want_phase;
	const char *want_actions; /* space-separated kinds of PL_ACT_RECORD, "stable", "window" */
	int64_t bake;             /* the service's bake window, ms */
};

#define OBS(...) ((struct pl_obs){__VA_ARGS__})

static const struct row rows[] = {
	{"start begins the first region", PL_DEPLOY, "v1", R_PENDING, R_PENDING, 0, PL_EV_START, 0, 5, {0}, 0,
	 1, R_STARTING, R_PENDING, 0, PL_ACTIVE, "started starting", 0},
	{"a region that already runs the version is done at once", PL_DEPLOY, "v2", R_PENDING, R_PENDING, 0, PL_EV_START, 0, 5, {0}, 0,
	 1, R_DONE, R_DONE, 0, PL_PROMOTED, "started region_done region_done done", 0},
	{"start twice is ignored", PL_DEPLOY, "v1", R_STARTING, R_PENDING, 0, PL_EV_START, 0, 5, {0}, 0,
	 0, R_STARTING, R_PENDING, 0, PL_ACTIVE, "", 0},
	{"not yet healthy waits", PL_DEPLOY, "v1", R_STARTING, R_PENDING, 0, PL_EV_OBSERVE, 0, 100,
	 OBS(.new_healthy = 1, .new_wanted = 2), 0, 0, R_STARTING, R_PENDING, 0, PL_ACTIVE, "", 0},
	{"healthy goes to the first step", PL_DEPLOY, "v1", R_STARTING, R_PENDING, 0, PL_EV_OBSERVE, 0, 100,
	 OBS(.new_healthy = 2, .new_wanted = 2), 0, 1, R_STEP, R_PENDING, 0, PL_ACTIVE, "healthy window step", 0},
	{"first release is promoted once healthy", PL_DEPLOY, "", R_STARTING, R_PENDING, 0, PL_EV_OBSERVE, 0, 100,
	 OBS(.new_healthy = 1, .new_wanted = 1), 0, 1, R_PROMOTING, R_PENDING, 0, PL_ACTIVE, "healthy stable promoted", 0},
	{"broken instances while starting are a transient failure", PL_DEPLOY, "v1", R_STARTING, R_PENDING, 0, PL_EV_OBSERVE, 0, 100,
	 OBS(.new_wanted = 2, .new_broken = 1), 0, 1, R_ABORTING, R_PENDING, 0, PL_ACTIVE, "region_attempt_failed", 0},
	{"start timeout is a transient failure", PL_DEPLOY, "v1", R_STARTING, R_PENDING, 0, PL_EV_OBSERVE, 0, 5000,
	 OBS(.new_wanted = 2), 0, 1, R_ABORTING, R_PENDING, 0, PL_ACTIVE, "region_attempt_failed", 0},
	{"pass before step_duration waits", PL_DEPLOY, "v1", R_STEP, R_PENDING, 0, PL_EV_OBSERVE, 0, 500,
	 OBS(.verdict = PL_VERDICT_PASS), 0, 0, R_STEP, R_PENDING, 0, PL_ACTIVE, "", 0},
	{"pass after step_duration advances", PL_DEPLOY, "v1", R_STEP, R_PENDING, 0, PL_EV_OBSERVE, 0, 1000,
	 OBS(.verdict = PL_VERDICT_PASS), 0, 1, R_STEP, R_PENDING, 1, PL_ACTIVE, "passed window step", 0},
	{"pass at the last step promotes", PL_DEPLOY, "v1", R_STEP, R_PENDING, 2, PL_EV_OBSERVE, 0, 1000,
	 OBS(.verdict = PL_VERDICT_PASS), 0, 1, R_PROMOTING, R_PENDING, 2, PL_ACTIVE, "passed stable promoted", 0},
	{"fail aborts at once", PL_DEPLOY, "v1", R_STEP, R_PENDING, 1, PL_EV_OBSERVE, 0, 10,
	 OBS(.verdict = PL_VERDICT_FAIL), 0, 1, R_ABORTING, R_PENDING, 1, PL_ACTIVE, "aborted", 0},
	{"no verdict by max_step_duration aborts", PL_DEPLOY, "v1", R_STEP, R_PENDING, 0, PL_EV_OBSERVE, 0, 10000,
	 OBS(.verdict = PL_VERDICT_NONE), 0, 1, R_ABORTING, R_PENDING, 0, PL_ACTIVE, "aborted", 0},
	{"inconclusive waits until max_step_duration", PL_DEPLOY, "v1", R_STEP, R_PENDING, 0, PL_EV_OBSERVE, 0, 9999,
	 OBS(.verdict = PL_VERDICT_INCONCLUSIVE), 0, 0, R_STEP, R_PENDING, 0, PL_ACTIVE, "", 0},
	{"broken instances abort during a step", PL_DEPLOY, "v1", R_STEP, R_PENDING, 0, PL_EV_OBSERVE, 0, 10,
	 OBS(.new_broken = 1), 0, 1, R_ABORTING, R_PENDING, 0, PL_ACTIVE, "aborted", 0},
	{"promoting waits for the old instances", PL_DEPLOY, "v1", R_PROMOTING, R_PENDING, 2, PL_EV_OBSERVE, 0, 10,
	 OBS(0), 0, 0, R_PROMOTING, R_PENDING, 2, PL_ACTIVE, "", 0},
	{"old stopped: region done, next region starts", PL_DEPLOY, "v1", R_PROMOTING, R_PENDING, 2, PL_EV_OBSERVE, 0, 10,
	 OBS(.old_stopped = 1), 0, 1, R_DONE, R_STARTING, 2, PL_ACTIVE, "region_done starting", 0},
	{"last region done: promoted", PL_DEPLOY, "v1", R_DONE, R_PROMOTING, 2, PL_EV_OBSERVE, 1, 10,
	 OBS(.old_stopped = 1), 0, 1, R_DONE, R_DONE, 2, PL_PROMOTED, "region_done done", 0},
	{"aborting waits for the canary to stop", PL_DEPLOY, "v1", R_ABORTING, R_PENDING, 0, PL_EV_OBSERVE, 0, 10,
	 OBS(0), 0, 0, R_ABORTING, R_PENDING, 0, PL_ACTIVE, "", 0},
	{"canary stopped: rolled back, later regions untouched", PL_DEPLOY, "v1", R_ABORTING, R_PENDING, 0, PL_EV_OBSERVE, 0, 10,
	 OBS(.new_stopped = 1), 0, 1, R_ROLLED_BACK, R_PENDING, 0, PL_ROLLED_BACK, "region_rolled_back rolled_back", 0},
	{"failure in a later region keeps the done one: the deployment ends split", PL_DEPLOY, "v1", R_DONE, R_ABORTING, 0, PL_EV_OBSERVE, 1, 10,
	 OBS(.new_stopped = 1), 0, 1, R_DONE, R_ROLLED_BACK, 0, PL_SPLIT, "region_rolled_back split", 0},
	{"first release that fails ends failed", PL_DEPLOY, "", R_ABORTING, R_PENDING, 0, PL_EV_OBSERVE, 0, 10,
	 OBS(.new_stopped = 1), 0, 1, R_ROLLED_BACK, R_PENDING, 0, PL_FAILED, "region_rolled_back failed", 0},
	{"abort during a step", PL_DEPLOY, "v1", R_STEP, R_PENDING, 1, PL_EV_ABORT, 0, 10, {0}, 0,
	 1, R_ABORTING, R_PENDING, 1, PL_ACTIVE, "aborted", 0},
	{"pre-empt while promoting lets the promotion finish", PL_DEPLOY, "v1", R_PROMOTING, R_PENDING, 2, PL_EV_ABORT, 0, 10, {0}, 1,
	 1, R_PROMOTING, R_PENDING, 2, PL_ACTIVE, "", 0},
	{"pre-empt between regions ends at once", PL_DEPLOY, "v1", R_DONE, R_PENDING, 2, PL_EV_ABORT, 0, 10, {0}, 1,
	 1, R_DONE, R_PENDING, 2, PL_PREEMPTED, "preempted", 0},
	{"promote now in a canary step skips the remaining steps", PL_DEPLOY, "v1", R_STEP, R_PENDING, 0, PL_EV_PROMOTE, -1, 10, {0}, 0,
	 1, R_PROMOTING, R_PENDING, 0, PL_ACTIVE, "promote_now stable promoted", 0},
	{"promote now of one region leaves the others as they are", PL_DEPLOY, "v1", R_STEP, R_STEP, 1, PL_EV_PROMOTE, 1, 10, {0}, 0,
	 1, R_STEP, R_PROMOTING, 1, PL_ACTIVE, "promote_now stable promoted", 0},
	{"promote now while starting does nothing (nothing verified yet to skip to)", PL_DEPLOY, "v1", R_STARTING, R_PENDING, 0, PL_EV_PROMOTE, -1, 10, {0}, 0,
	 0, R_STARTING, R_PENDING, 0, PL_ACTIVE, "", 0},
	{"promote now between waves does nothing: later waves keep their steps", PL_DEPLOY, "v1", R_DONE, R_PENDING, 2, PL_EV_PROMOTE, -1, 10, {0}, 0,
	 0, R_DONE, R_PENDING, 2, PL_ACTIVE, "", 0},
	{"events for a region out of range are ignored", PL_DEPLOY, "v1", R_STEP, R_PENDING, 0, PL_EV_OBSERVE, 7, 10,
	 OBS(.verdict = PL_VERDICT_FAIL), 0, 0, R_STEP, R_PENDING, 0, PL_ACTIVE, "", 0},
	{"promoted with a bake window: baking", PL_DEPLOY, "v1", R_PROMOTING, R_PENDING, 2, PL_EV_OBSERVE, 0, 10,
	 OBS(.old_stopped = 1), 0, 1, R_BAKING, R_PENDING, 2, PL_ACTIVE, "window baking", 2000},
	{"baking waits for the window", PL_DEPLOY, "v1", R_BAKING, R_PENDING, 2, PL_EV_OBSERVE, 0, 1999,
	 OBS(.verdict = PL_VERDICT_PASS), 0, 0, R_BAKING, R_PENDING, 2, PL_ACTIVE, "", 2000},
	{"baked: region done, next starts", PL_DEPLOY, "v1", R_BAKING, R_PENDING, 2, PL_EV_OBSERVE, 0, 2000,
	 OBS(.verdict = PL_VERDICT_NONE), 0, 1, R_DONE, R_STARTING, 2, PL_ACTIVE, "baked region_done starting", 2000},
	{"a regression while baking reverts", PL_DEPLOY, "v1", R_BAKING, R_PENDING, 2, PL_EV_OBSERVE, 0, 100,
	 OBS(.verdict = PL_VERDICT_FAIL), 0, 1, R_REVERTED, R_PENDING, 2, PL_ROLLED_BACK, "reverted revert rolled_back", 2000},
	{"rollback starts every region at once", PL_ROLLBACK, "v1", R_PENDING, R_PENDING, 0, PL_EV_START, 0, 0, {0}, 0,
	 1, R_STARTING, R_STARTING, 0, PL_ACTIVE, "started starting starting", 0},
	{"rollback target healthy switches all traffic", PL_ROLLBACK, "v1", R_STARTING, R_STARTING, 0, PL_EV_OBSERVE, 0, 10,
	 OBS(.new_healthy = 1, .new_wanted = 1), 0, 1, R_PROMOTING, R_STARTING, 0, PL_ACTIVE, "healthy stable promoted", 0},
};

static void kinds_of(const struct pl_actions *a, char *out, size_t n)
{
	out[0] = '\0';
	for (int i = 0; i < a->n; i++) {
		const char *k = a->a[i].kind; /* records name their event; other actions their type */
		if (out[0])
			strncat(out, " ", n - strlen(out) - 1);
		strncat(out, k, n - strlen(out) - 1);
	}
}

Test(pipeline, transitions)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct pl_state s = make(r->kind, r->stable, r->stable);
		s.regions[0].state = r->r0;
		s.regions[1].state = r->r1;
		s.regions[0].step = s.regions[1].step = r->step;
		s.cfg.bake_ms = r->bake;
		if (r->r0 == R_ABORTING || r->r1 == R_ABORTING)
			s.aborted = 1; /* an aborting region means a regression was proven */
		struct pl_event ev = {.type = r->ev, .now = r->now, .region = r->region, .obs = r->obs,
				      .preempt = r->preempt};
		snprintf(ev.reason, sizeof(ev.reason), "asked");
		struct pl_actions acts;
		int changed = pipeline_step(&s, &ev, &acts);
		char kinds[256];
		kinds_of(&acts, kinds, sizeof(kinds));
		cr_expect_eq(changed, r->changed, "%s: changed %d", r->name, changed);
		cr_expect_eq(s.regions[0].state, r->want_r0, "%s: r0 %s", r->name, pipeline_rstate_name(s.regions[0].state));
		cr_expect_eq(s.regions[1].state, r->want_r1, "%s: r1 %s", r->name, pipeline_rstate_name(s.regions[1].state));
		cr_expect_eq(s.regions[0].step, r->want_step, "%s: step %d", r->name, s.regions[0].step);
		cr_expect_eq(s.phase, r->want_phase, "%s: phase %s", r->name, pipeline_phase_name(s.phase));
		cr_expect_str_eq(kinds, r->want_actions, "%s: actions '%s'", r->name, kinds);
		/* the outcome of a verification carries its evidence; nothing else does */
		for (int k = 0; k < acts.n; k++) {
			const char *kd = acts.a[k].kind;
			int want = acts.a[k].type == PL_ACT_RECORD &&
				   (!strcmp(kd, "passed") || !strcmp(kd, "aborted") || !strcmp(kd, "baked") ||
				    !strcmp(kd, "reverted") || !strcmp(kd, "stage_passed"));
			cr_expect_eq(acts.a[k].verdict, want, "%s: %s verdict %d", r->name, kd, acts.a[k].verdict);
		}
	}
}

Test(pipeline, finished_deployments_ignore_events)
{
	struct pl_state s = make(PL_DEPLOY, "v1", "v1");
	s.phase = PL_PROMOTED;
	struct pl_event ev = {.type = PL_EV_START};
	struct pl_actions a;
	cr_assert_eq(pipeline_step(&s, &ev, &a), 0);
	cr_assert_eq(a.n, 0);
}

Test(pipeline, started_once_a_region_leaves_pending)
{
	struct pl_state s = make(PL_DEPLOY, "v1", "v1");
	cr_expect_eq(pipeline_started(&s), 0, "a new deployment is queued");
	s.regions[1].state = R_STARTING;
	cr_expect_eq(pipeline_started(&s), 1, "the second region started");
	s.regions[1].state = R_PENDING;
	s.regions[0].state = R_DONE;
	cr_expect_eq(pipeline_started(&s), 1, "a region done has started");
}

Test(pipeline, desired_state_moves_traffic_before_instances)
{
	struct pl_state s = make(PL_DEPLOY, "v1", "v1");
	struct pl_desired d;
	s.regions[0].state = R_STARTING;
	pipeline_desired(&s, 0, &d);
	cr_assert_eq(d.nrun, 2);
	cr_assert_eq(d.route[0].weight, 100);
	cr_assert_eq(d.route[1].weight, 0);
	s.regions[0].state = R_STEP;
	s.regions[0].step = 1;
	pipeline_desired(&s, 0, &d);
	cr_assert_str_eq(d.route[1].version, "v2");
	cr_assert_eq(d.route[1].weight, 50);
	cr_assert_eq(d.route[0].weight, 50);
	s.regions[0].state = R_ABORTING;
	pipeline_desired(&s, 0, &d);
	cr_assert_eq(d.nrun, 1);
	cr_assert_str_eq(d.run[0].version, "v1");
	cr_assert_eq(d.nroute, 1);
	s.regions[0].state = R_PROMOTING;
	pipeline_desired(&s, 0, &d);
	cr_assert_eq(d.nroute, 1);
	cr_assert_str_eq(d.route[0].version, "v2");
}

/* With a baseline, each canary step routes stable, baseline (the stable release under its own
 * label, as many instances as the canary) and canary; the baseline's weight is the canary's up
 * to what the stable can give; the last step (100%) and every other state run none. */
Test(pipeline, baseline_runs_beside_the_canary_with_the_canarys_weight)
{
	struct pl_state s = make(PL_DEPLOY, "v1", "v1");
	s.cfg.baseline = 1;
	s.cfg.steps[0] = 10, s.cfg.steps[1] = 60, s.cfg.steps[2] = 100;
	struct pl_desired d;
	char label[PL_LABEL_MAX];
	static const struct {
		enum pl_rstate state;
		int step;
		int base_w; /* -1: no baseline */
		int stable_w, canary_w;
	} want[] = {
		{R_STARTING, 0, 0, 100, 0}, {R_SMOKE, 0, 0, 100, 0}, {R_STEP, 0, 10, 80, 10},
		{R_STEP, 1, 40, 0, 60},     {R_STEP, 2, -1, 0, 100}, {R_PROMOTING, 2, -1, -1, 100},
		{R_ABORTING, 1, -1, 100, -1},
	};
	for (size_t k = 0; k < sizeof(want) / sizeof(want[0]); k++) {
		s.regions[0].state = want[k].state;
		s.regions[0].step = want[k].step;
		cr_assert_eq(pipeline_baseline(&s, 0, label, sizeof(label)), want[k].base_w, "row %zu", k);
		pipeline_desired(&s, 0, &d);
		int bw = -1, sw = -1, cw = -1, brun = 0;
		for (int i = 0; i < d.nroute; i++) {
			if (!strcmp(d.route[i].version, "v1~baseline"))
				bw = d.route[i].weight;
			else if (!strcmp(d.route[i].version, "v1"))
				sw = d.route[i].weight;
			else if (!strcmp(d.route[i].version, "v2"))
				cw = d.route[i].weight;
		}
		for (int i = 0; i < d.nrun; i++)
			if (!strcmp(d.run[i].version, "v1~baseline"))
				brun = d.run[i].count;
		cr_assert_eq(bw, want[k].base_w, "row %zu: baseline weight %d", k, bw);
		cr_assert_eq(sw, want[k].stable_w, "row %zu: stable weight %d", k, sw);
		cr_assert_eq(cw, want[k].canary_w, "row %zu: canary weight %d", k, cw);
		cr_assert_eq(brun, want[k].base_w >= 0 ? s.cfg.instances : 0, "row %zu", k);
		if (want[k].base_w >= 0)
			cr_assert_str_eq(label, "v1~baseline");
	}
	/* none for a rollback, a first release, a region already on the version, or a stage */
	s.regions[0].state = R_STEP;
	s.regions[0].step = 0;
	s.kind = PL_ROLLBACK;
	cr_assert_eq(pipeline_baseline(&s, 0, label, sizeof(label)), -1);
	s.kind = PL_DEPLOY;
	s.regions[0].stable[0] = 0;
	cr_assert_eq(pipeline_baseline(&s, 0, label, sizeof(label)), -1);
	s.cfg.baseline = 0;
	strcpy(s.regions[0].stable, "v1");
	cr_assert_eq(pipeline_baseline(&s, 0, label, sizeof(label)), -1);
	/* the release behind a label */
	char rel[PL_NAME_MAX];
	cr_assert_str_eq(pipeline_release_of("v1~baseline", rel, sizeof(rel)), "v1");
	cr_assert_str_eq(pipeline_release_of("v1", rel, sizeof(rel)), "v1");
	cr_assert_str_eq(pipeline_release_of("~baseline", rel, sizeof(rel)), "~baseline");
}

/* Starting waits for the baseline's instances as well as the canary's; the flag survives JSON. */
Test(pipeline, starting_waits_for_the_baseline_and_the_flag_is_stored)
{
	struct pl_state s = make(PL_DEPLOY, "v1", "v1");
	s.cfg.baseline = 1;
	s.regions[0].state = R_STARTING;
	struct pl_actions a;
	struct pl_event ev = {.type = PL_EV_OBSERVE, .region = 0, .now = 100,
			      .obs = {.new_healthy = 2, .new_wanted = 2, .base_healthy = 1, .base_wanted = 2}};
	cr_assert_eq(pipeline_step(&s, &ev, &a), 0);
	cr_assert_eq(s.regions[0].state, R_STARTING);
	ev.obs.base_healthy = 2;
	cr_assert_eq(pipeline_step(&s, &ev, &a), 1);
	cr_assert_eq(s.regions[0].state, R_STEP);
	cr_assert(strstr(a.a[0].message, "2 of its baseline are healthy"), "%s", a.a[0].message);
	json_t *j = pipeline_to_json(&s);
	struct pl_state back;
	cr_assert_eq(pipeline_from_json(j, &back), 0);
	json_decref(j);
	cr_assert_eq(back.cfg.baseline, 1);
}

Test(pipeline, whole_run_promotes_region_by_region)
{
	struct pl_state s = make(PL_DEPLOY, "v1", "v1");
	struct pl_actions a;
	struct pl_event ev = {.type = PL_EV_START, .now = 0};
	pipeline_step(&s, &ev, &a);
	int64_t t = 0;
	for (int r = 0; r < 2; r++) {
		ev = (struct pl_event){.type = PL_EV_OBSERVE, .region = r, .now = t += 10,
				       .obs = OBS(.new_healthy = 1, .new_wanted = 1)};
		cr_assert(pipeline_step(&s, &ev, &a));
		for (int k = 0; k < 3; k++) {
			ev = (struct pl_event){.type = PL_EV_OBSERVE, .region = r, .now = t += 1000,
					       .obs = OBS(.verdict = PL_VERDICT_PASS)};
			cr_assert(pipeline_step(&s, &ev, &a));
		}
		cr_assert_eq(s.regions[r].state, R_PROMOTING);
		ev = (struct pl_event){.type = PL_EV_OBSERVE, .region = r, .now = t += 10, .obs = OBS(.old_stopped = 1)};
		cr_assert(pipeline_step(&s, &ev, &a));
	}
	cr_assert_eq(s.phase, PL_PROMOTED);
}

Test(pipeline, json_round_trip)
{
	struct pl_state s = make(PL_DEPLOY, "v1", "");
	s.regions[1].state = R_STEP;
	s.regions[1].step = 2;
	s.regions[1].since = 123456789012;
	s.aborted = 1;
	snprintf(s.reason, sizeof(s.reason), "because");
	json_t *j = pipeline_to_json(&s);
	struct pl_state t;
	cr_assert_eq(pipeline_from_json(j, &t), 0);
	json_decref(j);
	cr_assert_eq(memcmp(&s, &t, sizeof(s)), 0);
	json_t *bad = json_pack("{s:s}", "kind", "deploy");
	cr_assert_eq(pipeline_from_json(bad, &t), -1);
	json_decref(bad);
}

Test(analysis, threshold_verdicts)
{
	struct analysis_limits lim = {.min_requests = 20, .max_error_rate = 0.05,
				      .max_error_rate_increase = 0.02, .max_p99_ms = 100};
	struct version_window c = {.requests = 10, .errors = 0, .nbuckets = 3,
				   .bounds_ms = {10, 100, 1000}, .counts = {10, 0, 0}};
	struct version_window st = c;
	char msg[256];
	json_t *ev = NULL;
	cr_assert_eq(analysis_threshold(&lim, &c, &st, msg, sizeof(msg), &ev), PL_VERDICT_NONE);
	c.requests = 40;
	c.counts[0] = 40;
	cr_assert_eq(analysis_threshold(&lim, &c, &st, msg, sizeof(msg), &ev), PL_VERDICT_PASS, "%s", msg);
	json_decref(ev);
	c.errors = 4; /* 10% > 5% */
	cr_assert_eq(analysis_threshold(&lim, &c, &st, msg, sizeof(msg), &ev), PL_VERDICT_FAIL);
	cr_assert(strstr(msg, "error rate"), "%s", msg);
	cr_assert_str_eq(json_string_value(json_object_get(ev, "verdict")), "fail");
	json_decref(ev);
	c.errors = 0;
	c.counts[0] = 0;
	c.counts[2] = 40; /* everything slower than 100 ms */
	cr_assert_eq(analysis_threshold(&lim, &c, &st, msg, sizeof(msg), NULL), PL_VERDICT_FAIL);
	cr_assert(strstr(msg, "p99"), "%s", msg);
	/* a gross failure is caught before min_requests */
	struct version_window g = {.requests = 10, .errors = 6};
	cr_assert_eq(analysis_threshold(&lim, &g, &st, msg, sizeof(msg), NULL), PL_VERDICT_FAIL);
}

Test(analysis, quantile_interpolates)
{
	struct version_window w = {.nbuckets = 2, .bounds_ms = {10, 20}, .counts = {50, 50}};
	cr_assert_float_eq(analysis_quantile(&w, 0.5), 10.0, 1e-9);
	cr_assert_float_eq(analysis_quantile(&w, 0.75), 15.0, 1e-9);
}

/* ---- flows: a sequence of events and the states they lead to ---- */

static int step(struct pl_state *s, enum pl_event_type t, int region, int64_t now, struct pl_obs o,
		char *kinds, size_t n)
{
	struct pl_event ev = {.type = t, .region = region, .now = now, .obs = o};
	snprintf(ev.reason, sizeof(ev.reason), "asked");
	struct pl_actions a;
	int changed = pipeline_step(s, &ev, &a);
	if (kinds)
		kinds_of(&a, kinds, n);
	return changed;
}

Test(pipeline, transient_failure_is_retried_with_backoff_then_fails_the_region_and_halts)
{
	struct pl_state s = make(PL_DEPLOY, "v1", "v1");
	s.cfg.region_retries = 1;
	char k[256];
	step(&s, PL_EV_START, 0, 0, OBS(0), k, sizeof(k));
	cr_assert_eq(s.regions[0].state, R_STARTING);
	step(&s, PL_EV_OBSERVE, 0, 100, OBS(.new_wanted = 2, .new_broken = 1), k, sizeof(k));
	cr_assert_eq(s.regions[0].state, R_ABORTING);
	step(&s, PL_EV_OBSERVE, 0, 200, OBS(.new_stopped = 1), k, sizeof(k));
	cr_assert_eq(s.regions[0].state, R_RETRY_WAIT);
	cr_assert_str_eq(k, "retry_scheduled");
	cr_assert_eq(s.regions[0].retry_at, 1200);
	cr_assert_eq(step(&s, PL_EV_TICK, 0, 1100, OBS(0), k, sizeof(k)), 0, "not yet due");
	step(&s, PL_EV_TICK, 0, 1200, OBS(0), k, sizeof(k));
	cr_assert_eq(s.regions[0].state, R_STARTING);
	cr_assert_str_eq(k, "retry starting");
	step(&s, PL_EV_OBSERVE, 0, 1300, OBS(.new_wanted = 2, .new_broken = 1), k, sizeof(k));
	step(&s, PL_EV_OBSERVE, 0, 1400, OBS(.new_stopped = 1), k, sizeof(k));
	cr_assert_eq(s.regions[0].state, R_FAILED);
	cr_assert_eq(s.regions[1].state, R_PENDING, "halt: the next wave does not start");
	cr_assert_eq(s.phase, PL_FAILED);
	cr_assert_str_eq(k, "region_failed failed");
	/* sluice retry: that region alone */
	step(&s, PL_EV_RETRY, 0, 5000, OBS(0), k, sizeof(k));
	cr_assert_eq(s.phase, PL_ACTIVE);
	cr_assert_eq(s.regions[0].state, R_STARTING);
	cr_assert_eq(s.regions[1].state, R_PENDING);
	cr_assert_eq(s.regions[0].attempts, 0);
	cr_assert_eq(step(&s, PL_EV_RETRY, 1, 5000, OBS(0), k, sizeof(k)), 0, "only failed regions retry");
}

Test(pipeline, continue_policy_lets_later_waves_go_on)
{
	struct pl_state s = make(PL_DEPLOY, "v1", "v1");
	s.cfg.continue_on_failure = 1;
	s.regions[0].state = R_ABORTING;
	s.regions[0].attempts = 1;
	char k[256];
	step(&s, PL_EV_OBSERVE, 0, 10, OBS(.new_stopped = 1), k, sizeof(k));
	cr_assert_eq(s.regions[0].state, R_FAILED);
	cr_assert_eq(s.regions[1].state, R_STARTING);
	cr_assert_eq(s.phase, PL_ACTIVE);
}

Test(pipeline, waves_run_in_parallel_and_wait_for_the_wave_bake)
{
	struct pl_config cfg = config();
	cfg.wave_bake_ms = 5000;
	struct pl_region_init regions[] = {{"a", "production", "v1", 0, 0},
					   {"b", "production", "v1", 1, 0},
					   {"c", "production", "v1", 1, 0}};
	struct pl_state s;
	cr_assert_eq(pipeline_init(&s, PL_DEPLOY, "v2", &cfg, regions, 3), 0);
	char k[256];
	step(&s, PL_EV_START, 0, 0, OBS(0), k, sizeof(k));
	cr_assert_eq(s.regions[0].state, R_STARTING);
	cr_assert_eq(s.regions[1].state, R_PENDING);
	s.regions[0].state = R_PROMOTING;
	step(&s, PL_EV_OBSERVE, 0, 1000, OBS(.old_stopped = 1), k, sizeof(k));
	cr_assert_eq(s.regions[0].state, R_DONE);
	cr_assert_eq(s.regions[1].state, R_PENDING, "the wave bakes first");
	cr_assert_eq(step(&s, PL_EV_TICK, 0, 5999, OBS(0), k, sizeof(k)), 0);
	step(&s, PL_EV_TICK, 0, 6000, OBS(0), k, sizeof(k));
	cr_assert_eq(s.regions[1].state, R_STARTING);
	cr_assert_eq(s.regions[2].state, R_STARTING, "regions of one wave roll out in parallel");
	/* a regression in one region of the wave rolls back both */
	s.regions[1].state = R_STEP;
	s.regions[2].state = R_STEP;
	step(&s, PL_EV_OBSERVE, 1, 6100, OBS(.verdict = PL_VERDICT_FAIL), k, sizeof(k));
	cr_assert_eq(s.regions[1].state, R_ABORTING);
	cr_assert_eq(s.regions[2].state, R_ABORTING);
	cr_assert_eq(s.regions[0].state, R_DONE, "done regions stay done");
}

Test(pipeline, smoke_checks_gate_the_first_traffic)
{
	struct pl_state s = make(PL_DEPLOY, "v1", "v1");
	s.cfg.smoke = 1;
	s.regions[0].state = R_STARTING;
	char k[256];
	step(&s, PL_EV_OBSERVE, 0, 10, OBS(.new_healthy = 2, .new_wanted = 2), k, sizeof(k));
	cr_assert_eq(s.regions[0].state, R_SMOKE);
	cr_assert_str_eq(k, "healthy smoke");
	struct pl_desired d;
	pipeline_desired(&s, 0, &d);
	cr_assert_eq(d.route[1].weight, 0, "no traffic before the smoke checks pass");
	step(&s, PL_EV_OBSERVE, 0, 20, OBS(.verdict = PL_VERDICT_PASS), k, sizeof(k));
	cr_assert_eq(s.regions[0].state, R_STEP);
	struct pl_state t = make(PL_DEPLOY, "v1", "v1");
	t.cfg.smoke = 1;
	t.regions[0].state = R_SMOKE;
	step(&t, PL_EV_OBSERVE, 0, 20, OBS(.verdict = PL_VERDICT_FAIL), k, sizeof(k));
	cr_assert_eq(t.regions[0].state, R_ABORTING);
	cr_assert(t.aborted, "a failed smoke check is a regression, not retried");
}

Test(pipeline, blue_green_switches_at_once_and_keeps_the_old_set)
{
	struct pl_state s = make(PL_DEPLOY, "v1", "v1");
	s.cfg.strategy = PL_BLUE_GREEN;
	s.regions[0].state = R_STARTING;
	char k[256];
	struct pl_desired d;
	pipeline_desired(&s, 0, &d);
	cr_assert_eq(d.run[1].count, 2, "the whole new set starts");
	step(&s, PL_EV_OBSERVE, 0, 10, OBS(.new_healthy = 2, .new_wanted = 2), k, sizeof(k));
	cr_assert_eq(s.regions[0].state, R_HOLD);
	pipeline_desired(&s, 0, &d);
	cr_assert_eq(d.nroute, 1);
	cr_assert_str_eq(d.route[0].version, "v2");
	cr_assert_eq(d.nrun, 2, "the old set is kept");
	cr_assert_eq(step(&s, PL_EV_OBSERVE, 0, 3000, OBS(0), k, sizeof(k)), 0);
	step(&s, PL_EV_OBSERVE, 0, 3010, OBS(0), k, sizeof(k));
	cr_assert_eq(s.regions[0].state, R_PROMOTING);
	/* a failure during the hold switches back at once */
	struct pl_state t = make(PL_DEPLOY, "v1", "v1");
	t.cfg.strategy = PL_BLUE_GREEN;
	t.regions[0].state = R_HOLD;
	step(&t, PL_EV_OBSERVE, 0, 100, OBS(.verdict = PL_VERDICT_FAIL), k, sizeof(k));
	cr_assert_eq(t.regions[0].state, R_ABORTING);
	pipeline_desired(&t, 0, &d);
	cr_assert_str_eq(d.route[0].version, "v1");
	cr_assert_eq(d.route[0].weight, 100);
}

/* Runs a rolling deployment of `n` instances through its steps, checking each step's desired
 * state against `expect` (run new, run old, weight new, weight old). */
static void rolling_walk(int n, int surge, int unavailable, const int (*expect)[4], int nsteps)
{
	struct pl_state s = make(PL_DEPLOY, "v1", "v1");
	s.cfg.strategy = PL_ROLLING;
	s.cfg.instances = n;
	s.cfg.max_surge = surge;
	s.cfg.max_unavailable = unavailable;
	char k[256];
	step(&s, PL_EV_START, 0, 0, OBS(0), k, sizeof(k));
	cr_assert_eq(s.regions[0].state, R_STEP);
	struct pl_desired d;
	for (int st = 0; st < nsteps; st++) {
		cr_assert_eq(s.regions[0].step, st);
		pipeline_desired(&s, 0, &d);
		int rn = 0, ro = 0, wn = 0, wo = 0;
		for (int i = 0; i < d.nrun; i++)
			*(strcmp(d.run[i].version, "v2") ? &ro : &rn) = d.run[i].count;
		for (int i = 0; i < d.nroute; i++)
			*(strcmp(d.route[i].version, "v2") ? &wo : &wn) = d.route[i].weight;
		cr_assert(rn == expect[st][0] && ro == expect[st][1] && wn == expect[st][2] && wo == expect[st][3],
			  "N=%d surge %d unavailable %d, step %d: run %d/%d weights %d/%d", n, surge,
			  unavailable, st, rn, ro, wn, wo);
		cr_assert_leq(rn + ro, n + surge, "step %d: more than N + max_surge instances", st);
		struct pl_obs o = st % 2 == 0 ? OBS(.new_healthy = expect[st][0], .old_running = n)
					      : OBS(.new_healthy = n, .old_running = expect[st][1]);
		step(&s, PL_EV_OBSERVE, 0, 10 + st, o, k, sizeof(k));
	}
	cr_assert_eq(s.regions[0].state, R_PROMOTING);
}

Test(pipeline, rolling_replaces_instances_a_batch_at_a_time)
{
	/* surge 1: a new instance starts, then an old one leaves */
	int surge1[][4] = {{1, 3, 0, 3}, {1, 2, 1, 2}, {2, 2, 1, 2}, {2, 1, 2, 1}, {3, 1, 2, 1}, {3, 0, 3, 0}};
	rolling_walk(3, 1, 0, surge1, 6);
	/* surge 0, unavailable 1: an old instance leaves the route as its replacement starts */
	int unavail1[][4] = {{1, 2, 0, 2}, {1, 2, 1, 2}, {2, 1, 1, 1}, {2, 1, 2, 1}, {3, 0, 2, 0}, {3, 0, 3, 0}};
	rolling_walk(3, 0, 1, unavail1, 6);
	/* surge 1, unavailable 1 over 4: batches of two, one above N and one below */
	int both[][4] = {{2, 3, 0, 3}, {2, 2, 2, 2}, {4, 1, 2, 1}, {4, 0, 4, 0}};
	rolling_walk(4, 1, 1, both, 4);
	/* one instance, surge 0: the old one keeps the route until the new one can take it */
	int single[][4] = {{1, 0, 1, 0}, {1, 0, 1, 0}};
	rolling_walk(1, 0, 1, single, 2);
}

Test(pipeline, the_preproduction_stage_runs_first_and_its_failure_keeps_production_untouched)
{
	struct pl_config cfg = config();
	struct pl_region_init regions[] = {{"local", "preprod", "v1", 0, 1},
					   {"us-east", "production", "v1", 1, 0}};
	struct pl_state s;
	cr_assert_eq(pipeline_init(&s, PL_DEPLOY, "v2", &cfg, regions, 2), 0);
	char k[256];
	step(&s, PL_EV_START, 0, 0, OBS(0), k, sizeof(k));
	cr_assert_eq(s.regions[0].state, R_STARTING);
	step(&s, PL_EV_OBSERVE, 0, 10, OBS(.new_healthy = 2, .new_wanted = 2), k, sizeof(k));
	cr_assert_eq(s.regions[0].state, R_SIDE_BY_SIDE);
	cr_assert_str_eq(k, "healthy window traffic side_by_side");
	struct pl_desired d;
	pipeline_desired(&s, 0, &d);
	cr_assert_eq(d.route[0].weight, 50);
	cr_assert_eq(d.route[1].weight, 50);
	cr_assert_eq(step(&s, PL_EV_OBSERVE, 0, 4000, OBS(.verdict = PL_VERDICT_NONE), k, sizeof(k)), 0);
	struct pl_state f = s;
	step(&s, PL_EV_OBSERVE, 0, 4010, OBS(.verdict = PL_VERDICT_PASS), k, sizeof(k));
	cr_assert_eq(s.regions[0].state, R_PROMOTING);
	step(&f, PL_EV_OBSERVE, 0, 4010, OBS(.verdict = PL_VERDICT_FAIL), k, sizeof(k));
	cr_assert_eq(f.regions[0].state, R_ABORTING);
	step(&f, PL_EV_OBSERVE, 0, 4020, OBS(.new_stopped = 1), k, sizeof(k));
	cr_assert_eq(f.phase, PL_ROLLED_BACK);
	cr_assert_eq(f.regions[1].state, R_PENDING, "production never started");
}

/* Honest end states (issue 18): regions on different versions end `split` with each region's
 * version in the record; a release rolled back in every production region is rolled back in
 * the pre-production stage too, so the next stage does not compare against it. */
Test(pipeline, a_split_names_each_regions_version)
{
	struct pl_state s = make(PL_DEPLOY, "v1", "v1");
	s.regions[0].state = R_DONE;
	s.regions[1].state = R_ABORTING;
	s.aborted = 1;
	snprintf(s.reason, sizeof(s.reason), "verification failed at 50%%");
	struct pl_event ev = {.type = PL_EV_OBSERVE, .region = 1, .now = 10, .obs = OBS(.new_stopped = 1)};
	struct pl_actions a;
	cr_assert_eq(pipeline_step(&s, &ev, &a), 1);
	cr_expect_eq(s.phase, PL_SPLIT);
	cr_expect_str_eq(pipeline_phase_name(s.phase), "split");
	const struct pl_action *last = &a.a[a.n - 1];
	cr_expect_str_eq(last->kind, "split");
	cr_expect(strstr(last->message, "us-east v2, eu-west v1"), "%s", last->message);
	json_t *j = pipeline_to_json(&s);
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "regions"), 0), "runs")), "v2");
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "regions"), 1), "runs")), "v1");
	struct pl_state t;
	cr_expect_eq(pipeline_from_json(j, &t), 0);
	cr_expect_eq(t.phase, PL_SPLIT);
	json_decref(j);
}

Test(pipeline, a_release_rolled_back_in_production_is_rolled_back_in_the_stage)
{
	struct pl_config cfg = config();
	struct pl_region_init regions[] = {{"pp", "preprod", "v1", 0, 1}, {"us-east", "production", "v1", 1, 0}};
	struct pl_state s;
	cr_assert_eq(pipeline_init(&s, PL_DEPLOY, "v2", &cfg, regions, 2), 0);
	s.regions[0].state = R_DONE;
	s.regions[1].state = R_ABORTING;
	s.aborted = 1;
	struct pl_event ev = {.type = PL_EV_OBSERVE, .region = 1, .now = 10, .obs = OBS(.new_stopped = 1)};
	struct pl_actions a;
	char k[256];
	cr_assert_eq(pipeline_step(&s, &ev, &a), 1);
	kinds_of(&a, k, sizeof(k));
	cr_expect_eq(s.phase, PL_ROLLED_BACK, "the stage does not make it a split");
	cr_expect_eq(s.regions[0].state, R_ROLLED_BACK);
	cr_expect_str_eq(k, "region_rolled_back stable region_rolled_back rolled_back");
	int restored = 0;
	for (int i = 0; i < a.n; i++)
		if (a.a[i].type == PL_ACT_RESTORE_STABLE) {
			restored++;
			cr_expect_eq(a.a[i].region, 0);
			cr_expect_str_eq(a.a[i].message, "v1");
		}
	cr_expect_eq(restored, 1);
	/* a split keeps the stage: the release still runs in production */
	struct pl_region_init three[] = {{"pp", "preprod", "v1", 0, 1}, {"us-east", "production", "v1", 1, 0},
					 {"eu-west", "production", "v1", 2, 0}};
	cr_assert_eq(pipeline_init(&s, PL_DEPLOY, "v2", &cfg, three, 3), 0);
	s.regions[0].state = R_DONE;
	s.regions[1].state = R_DONE;
	s.regions[2].state = R_ABORTING;
	s.aborted = 1;
	ev.region = 2;
	cr_assert_eq(pipeline_step(&s, &ev, &a), 1);
	cr_expect_eq(s.phase, PL_SPLIT);
	cr_expect_eq(s.regions[0].state, R_DONE);
}
