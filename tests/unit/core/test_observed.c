/* Table-driven tests of observed time in the pipeline (issue 18): deadlines count only the
 * time in which the region was observed; a verdict unreachable for want of the proxy's metrics
 * waits, and past max_unobserved pauses the region for an operator. Each row runs a canary
 * region (or a starting one) through segments of observations, one every `every` ms, as the
 * executor's ticks would, with silences between the segments (the control plane away). */
#include <criterion/criterion.h>
#include <string.h>

#include "core/pipeline.h"

struct segment {
	int64_t from, to, every; /* observations at from, from+every, ... <= to */
	int blind;
	enum pl_verdict verdict;
	int retry; /* an operator's PL_EV_RETRY at `from` instead */
};

struct row {
	const char *name;
	enum pl_rstate state;       /* the region starts here at t=0 (step 0) */
	int64_t max_unobserved_ms;
	struct segment seg[4];
	/* expected */
	enum pl_rstate want_state;
	int want_step;
	int want_paused;
	int64_t want_since;         /* -1: not checked */
	const char *want_kinds;     /* each space-separated kind must have been recorded */
	const char *unwanted_kind;  /* must not have been recorded (NULL: none) */
};

#define SEG(from, to, every, blind, verdict) {from, to, every, blind, verdict, 0}
#define RETRY(at) {at, at, 0, 0, PL_VERDICT_NONE, 1}
#define NONE PL_VERDICT_NONE

static const struct row rows[] = {
	{"watched all along: max_step_duration fires on time", R_STEP, 60000,
	 {SEG(200, 10000, 200, 0, NONE)},
	 R_ABORTING, 0, 0, -1, "aborted", "unobserved"},
	{"a 20 s outage is not charged: the deadline moves by the silence", R_STEP, 60000,
	 {SEG(200, 3000, 200, 0, NONE), SEG(23000, 30600, 200, 0, NONE)},
	 /* the last heartbeat before the outage was at 2200: since moves by 23000 - 2200 */
	 R_STEP, 0, 0, 20800, "unobserved", "aborted"},
	{"...and fires once the observed time reaches it", R_STEP, 60000,
	 {SEG(200, 3000, 200, 0, NONE), SEG(23000, 30800, 200, 0, NONE)},
	 R_ABORTING, 0, 0, -1, "unobserved aborted", NULL},
	{"no metrics from the proxy waits past max_step_duration, then a pass moves on", R_STEP, 60000,
	 {SEG(200, 2000, 200, 0, NONE), SEG(2200, 40000, 200, 1, NONE), SEG(40200, 40200, 200, 0, PL_VERDICT_PASS)},
	 R_STEP, 1, 0, 40200, "waiting passed step", "aborted"},
	{"a failing verdict while blind is not seen: nothing moves", R_STEP, 60000,
	 {SEG(200, 20000, 200, 1, PL_VERDICT_FAIL)},
	 R_STEP, 0, 0, -1, "waiting", "aborted"},
	{"blind for max_unobserved pauses the region at its weights", R_STEP, 30000,
	 {SEG(200, 31000, 200, 1, NONE), SEG(31200, 90000, 200, 0, PL_VERDICT_FAIL)},
	 R_STEP, 0, 1, -1, "waiting paused", "aborted"},
	{"an operator resumes a paused region; its verdicts count again", R_STEP, 30000,
	 {SEG(200, 31000, 200, 1, NONE), RETRY(50000),
	  SEG(50200, 50400, 200, 0, PL_VERDICT_FAIL)},
	 R_ABORTING, 0, 0, -1, "paused resumed aborted", NULL},
	{"max_unobserved 0 never pauses", R_STEP, 0,
	 {SEG(200, 400000, 1000, 1, NONE)},
	 R_STEP, 0, 0, -1, "waiting", "paused"},
	{"a start timeout counts observed time", R_STARTING, 60000,
	 {SEG(200, 1000, 200, 0, NONE), SEG(20000, 24600, 200, 0, NONE)},
	 /* heartbeat at 200; since moves by 20000 - 200: the 5 s timeout falls at 24800 */
	 R_STARTING, 0, 0, 19800, "unobserved", "region_attempt_failed"},
	{"...and fires once reached", R_STARTING, 60000,
	 {SEG(200, 1000, 200, 0, NONE), SEG(20000, 24800, 200, 0, NONE)},
	 R_ABORTING, 0, 0, -1, "region_attempt_failed", NULL},
	{"blindness does not hold a starting region (no verdict is awaited)", R_STARTING, 60000,
	 {SEG(200, 5000, 200, 1, NONE)},
	 R_ABORTING, 0, 0, -1, "region_attempt_failed", "waiting"},
	{"the stage's side by side waits through an outage", R_SIDE_BY_SIDE, 60000,
	 {SEG(200, 2000, 200, 0, NONE), SEG(60000, 61000, 200, 0, PL_VERDICT_PASS)},
	 R_SIDE_BY_SIDE, 0, 0, -1, "unobserved", "stage_passed"},
};

static void append(char *all, size_t n, const struct pl_actions *a)
{
	for (int i = 0; i < a->n; i++) {
		if (a->a[i].type != PL_ACT_RECORD)
			continue;
		strncat(all, " ", n - strlen(all) - 1);
		strncat(all, a->a[i].kind, n - strlen(all) - 1);
	}
}

static int recorded(const char *all, const char *kind)
{
	char k[64];
	snprintf(k, sizeof(k), " %s", kind);
	for (const char *p = strstr(all, k); p; p = strstr(p + 1, k))
		if (p[strlen(k)] == ' ' || p[strlen(k)] == '\0')
			return 1;
	return 0;
}

Test(observed, rows)
{
	for (size_t ri = 0; ri < sizeof(rows) / sizeof(rows[0]); ri++) {
		const struct row *w = &rows[ri];
		struct pl_config cfg = {.steps = {10, 50, 100}, .nsteps = 3, .instances = 1,
					.step_duration_ms = 1000, .max_step_duration_ms = 10000,
					.start_timeout_ms = 5000, .side_by_side_ms = 4000,
					.observe_gap_ms = PL_GAP_MS, .max_unobserved_ms = w->max_unobserved_ms};
		struct pl_region_init regions[] = {{"us-east", "production", "v1", 0, w->state == R_SIDE_BY_SIDE}};
		struct pl_state s;
		cr_assert_eq(pipeline_init(&s, PL_DEPLOY, "v2", &cfg, regions, 1), 0);
		s.regions[0].state = w->state;
		static char all[1 << 16];
		all[0] = '\0';
		for (int k = 0; k < 4 && w->seg[k].from; k++) {
			const struct segment *g = &w->seg[k];
			if (g->retry) {
				struct pl_event ev = {.type = PL_EV_RETRY, .now = g->from, .region = 0};
				struct pl_actions a;
				cr_expect_eq(pipeline_step(&s, &ev, &a), 1, "%s: the retry resumes", w->name);
				append(all, sizeof(all), &a);
				continue;
			}
			for (int64_t t = g->from; t <= g->to; t += g->every) {
				struct pl_event ev = {.type = PL_EV_OBSERVE, .now = t, .region = 0};
				ev.obs = (struct pl_obs){.new_healthy = 0, .new_wanted = 1, .blind = g->blind,
							 .verdict = g->verdict};
				snprintf(ev.obs.verdict_msg, sizeof(ev.obs.verdict_msg), "%s",
					 g->blind ? "no metrics from the proxy yet" : "window");
				struct pl_actions a;
				/* the executor persists what changed and reads it back on the next tick */
				if (pipeline_step(&s, &ev, &a)) {
					json_t *j = pipeline_to_json(&s);
					cr_assert_eq(pipeline_from_json(j, &s), 0);
					json_decref(j);
				}
				append(all, sizeof(all), &a);
				if (!g->every)
					break;
			}
		}
		const struct pl_region *r = &s.regions[0];
		cr_expect_eq(r->state, w->want_state, "%s: state %s, want %s (%s)", w->name,
			     pipeline_rstate_name(r->state), pipeline_rstate_name(w->want_state), all);
		cr_expect_eq(r->step, w->want_step, "%s: step %d", w->name, r->step);
		cr_expect_eq(r->paused, w->want_paused, "%s: paused %d", w->name, r->paused);
		if (w->want_since >= 0)
			cr_expect_eq(r->since, w->want_since, "%s: since %lld", w->name, (long long)r->since);
		char kinds[256];
		snprintf(kinds, sizeof(kinds), "%s", w->want_kinds);
		for (char *save = NULL, *k = strtok_r(kinds, " ", &save); k; k = strtok_r(NULL, " ", &save))
			cr_expect(recorded(all, k), "%s: no '%s' recorded (%s)", w->name, k, all);
		if (w->unwanted_kind)
			cr_expect(!recorded(all, w->unwanted_kind), "%s: '%s' recorded (%s)", w->name,
				  w->unwanted_kind, all);
	}
}

/* The state round-trips the new fields; one written before them reads as observed time off. */
Test(observed, serialization)
{
	struct pl_config cfg = {.steps = {100}, .nsteps = 1, .instances = 1, .observe_gap_ms = 3000,
				.max_unobserved_ms = 45000};
	struct pl_region_init regions[] = {{"us-east", "production", "v1", 0, 0}};
	struct pl_state s, t;
	cr_assert_eq(pipeline_init(&s, PL_DEPLOY, "v2", &cfg, regions, 1), 0);
	s.regions[0].seen = 1234;
	s.regions[0].blind_ms = 567;
	s.regions[0].paused = 1;
	json_t *j = pipeline_to_json(&s);
	cr_assert_eq(pipeline_from_json(j, &t), 0);
	cr_expect_eq(t.regions[0].seen, 1234);
	cr_expect_eq(t.regions[0].blind_ms, 567);
	cr_expect_eq(t.regions[0].paused, 1);
	cr_expect_eq(t.cfg.max_unobserved_ms, 45000);
	cr_expect_eq(t.cfg.observe_gap_ms, 3000);
	json_object_del(json_object_get(j, "config"), "observe_gap_ms");
	json_object_del(json_array_get(json_object_get(j, "regions"), 0), "seen");
	cr_assert_eq(pipeline_from_json(j, &t), 0);
	cr_expect_eq(t.cfg.observe_gap_ms, 0);
	cr_expect_eq(t.regions[0].seen, 0);
	json_decref(j);
}

/* A region retried after its backoff was not silent: its start timeout runs from the retry. */
Test(observed, a_retry_after_a_wait_is_no_silence)
{
	struct pl_config cfg = {.steps = {100}, .nsteps = 1, .instances = 1, .start_timeout_ms = 5000,
				.region_retries = 1, .retry_backoff_ms = 10000, .observe_gap_ms = PL_GAP_MS};
	struct pl_region_init regions[] = {{"us-east", "production", "v1", 0, 0}};
	struct pl_state s;
	cr_assert_eq(pipeline_init(&s, PL_DEPLOY, "v2", &cfg, regions, 1), 0);
	s.regions[0].state = R_RETRY_WAIT;
	s.regions[0].attempts = 1;
	s.regions[0].seen = 100;
	s.regions[0].retry_at = 10000;
	struct pl_actions a;
	struct pl_event tick = {.type = PL_EV_TICK, .now = 10000};
	cr_assert_eq(pipeline_step(&s, &tick, &a), 1);
	cr_assert_eq(s.regions[0].state, R_STARTING);
	struct pl_event ev = {.type = PL_EV_OBSERVE, .now = 10200, .obs = {.new_wanted = 1}};
	pipeline_step(&s, &ev, &a);
	cr_expect_eq(s.regions[0].since, 10000, "since %lld", (long long)s.regions[0].since);
	for (ev.now = 10400; ev.now <= 15000 && s.regions[0].state == R_STARTING; ev.now += 200)
		pipeline_step(&s, &ev, &a);
	cr_expect_eq(s.regions[0].state, R_ABORTING, "the start timeout fires 5 s after the retry");
	cr_expect_eq(ev.now, 15200, "at 15000 (%lld)", (long long)ev.now - 200);
}
