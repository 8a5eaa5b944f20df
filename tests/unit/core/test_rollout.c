/* Table-driven tests of the guarded flag rollout's state machine, and of the flag each step
 * writes (evaluated by the real flag set, so the split is flagd's). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/rollout.h"
#include "flags/flagset.h"
#include "flags/logic.h"

static struct rollout_config config(void)
{
	struct rollout_config c = {.variant = "on", .steps = {10, 50, 100}, .nsteps = 3, .step_ms = 1000,
				   .baseline_ms = 2000, .min_requests = 20, .alpha = 0.05, .tolerance = 0.2};
	return c;
}

/* A window of `req` requests with `err` errors; `slow` of them took 50 ms, the rest 2 ms. */
static struct rollout_window win(uint64_t req, uint64_t err, uint64_t slow)
{
	struct rollout_window w = {.requests = req, .errors = err, .nbuckets = 4,
				   .bound_us = {1000, 5000, 100000, -1}, .counts = {0, req - slow, slow, 0}};
	return w;
}

/* A rollout in `phase` at step `step` since t=0, with a baseline of 1,000 requests, 10
 * errors, 100 slow (slow_us 5 ms: the 50 ms bucket's lower end); then one event at `now`. */
struct row {
	const char *name;
	enum rollout_phase phase;
	int step;
	enum rollout_event_type ev;
	int64_t now;
	uint64_t req, err, slow;
	/* expected */
	int changed;
	enum rollout_phase want_phase;
	int want_step, want_weight, set_weight, restore;
	const char *want_records; /* space-separated types */
};

static const struct row rows[] = {
	{"baseline waits for its duration", ROLLOUT_BASELINE, -1, ROLLOUT_EV_TICK, 1999, 500, 0, 0,
	 0, ROLLOUT_BASELINE, -1, 0, -1, 0, ""},
	{"baseline waits for enough requests", ROLLOUT_BASELINE, -1, ROLLOUT_EV_TICK, 5000, 19, 0, 0,
	 0, ROLLOUT_BASELINE, -1, 0, -1, 0, ""},
	{"baseline recorded: the first step begins", ROLLOUT_BASELINE, -1, ROLLOUT_EV_TICK, 2000, 200, 1, 10,
	 1, ROLLOUT_STEP, 0, 10, 10, 0, "baseline step"},
	{"a step with no evidence goes on", ROLLOUT_STEP, 0, ROLLOUT_EV_TICK, 500, 100, 1, 10,
	 0, ROLLOUT_STEP, 0, 10, -1, 0, ""},
	{"a step waits for min_requests even after its duration", ROLLOUT_STEP, 0, ROLLOUT_EV_TICK, 5000, 10, 0, 1,
	 0, ROLLOUT_STEP, 0, 10, -1, 0, ""},
	{"a harmless step passes after its duration", ROLLOUT_STEP, 0, ROLLOUT_EV_TICK, 1000, 100, 1, 10,
	 1, ROLLOUT_STEP, 1, 50, 50, 0, "passed step"},
	{"the last step passing completes", ROLLOUT_STEP, 2, ROLLOUT_EV_TICK, 1000, 100, 1, 10,
	 1, ROLLOUT_COMPLETED, 2, 100, -1, 0, "passed completed"},
	{"errors proven above the baseline revert at once", ROLLOUT_STEP, 0, ROLLOUT_EV_TICK, 100, 40, 12, 4,
	 1, ROLLOUT_REVERTED, 0, 10, -1, 1, "reverted"},
	{"latency proven above the baseline reverts", ROLLOUT_STEP, 1, ROLLOUT_EV_TICK, 100, 60, 0, 40,
	 1, ROLLOUT_REVERTED, 1, 50, -1, 1, "reverted"},
	{"a regression wins over a passing duration", ROLLOUT_STEP, 0, ROLLOUT_EV_TICK, 9000, 200, 60, 20,
	 1, ROLLOUT_REVERTED, 0, 10, -1, 1, "reverted"},
	{"abort during a step restores", ROLLOUT_STEP, 1, ROLLOUT_EV_ABORT, 10, 0, 0, 0,
	 1, ROLLOUT_ABORTED, 1, 50, -1, 1, "aborted"},
	{"abort during the baseline has nothing to restore", ROLLOUT_BASELINE, -1, ROLLOUT_EV_ABORT, 10, 0, 0, 0,
	 1, ROLLOUT_ABORTED, -1, 0, -1, 0, "aborted"},
	{"an operator's change interrupts without restoring", ROLLOUT_STEP, 0, ROLLOUT_EV_INTERRUPTED, 10, 0, 0, 0,
	 1, ROLLOUT_INTERRUPTED, 0, 10, -1, 0, "interrupted"},
	{"a restart begins the window again", ROLLOUT_STEP, 1, ROLLOUT_EV_RESUME, 700, 0, 0, 0,
	 1, ROLLOUT_STEP, 1, 50, -1, 0, "resumed"},
	{"a finished rollout ignores ticks", ROLLOUT_REVERTED, 0, ROLLOUT_EV_TICK, 9000, 200, 100, 0,
	 0, ROLLOUT_REVERTED, 0, 10, -1, 0, ""},
	{"a finished rollout ignores aborts", ROLLOUT_COMPLETED, 2, ROLLOUT_EV_ABORT, 9000, 0, 0, 0,
	 0, ROLLOUT_COMPLETED, 2, 100, -1, 0, ""},
};

static struct rollout_state make(enum rollout_phase phase, int step)
{
	struct rollout_config c = config();
	struct rollout_state s;
	struct err e;
	cr_assert_eq(rollout_init(&s, &c, 0, &e), 0, "%s", e.msg);
	s.phase = phase;
	s.step = step;
	s.weight = step >= 0 ? c.steps[step] : 0;
	if (phase != ROLLOUT_BASELINE) {
		s.baseline = (struct rollout_counts){1000, 10, 1000, 100};
		s.slow_us = 5000;
	}
	return s;
}

Test(rollout, transitions)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct rollout_state s = make(r->phase, r->step);
		struct rollout_window w = win(r->req, r->err, r->slow);
		struct rollout_event ev = {r->ev, r->now, &w, "test"};
		struct rollout_actions a;
		cr_assert_eq(rollout_step(&s, &ev, &a), 0);
		cr_assert_eq(a.changed, r->changed, "%s: changed", r->name);
		cr_assert_eq(s.phase, r->want_phase, "%s: phase %s", r->name, rollout_phase_name(s.phase));
		cr_assert_eq(s.step, r->want_step, "%s: step %d", r->name, s.step);
		cr_assert_eq(s.weight, r->want_weight, "%s: weight %d", r->name, s.weight);
		cr_assert_eq(a.set_weight, r->set_weight, "%s: set_weight %d", r->name, a.set_weight);
		cr_assert_eq(a.restore, r->restore, "%s: restore", r->name);
		char got[128] = "";
		for (int k = 0; k < a.nrecords; k++)
			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", k ? " " : "", a.records[k].type);
		cr_assert_str_eq(got, r->want_records, "%s: records", r->name);
		if (r->ev == ROLLOUT_EV_RESUME)
			cr_assert_eq(s.since_ms, r->now, "%s: the window begins at the resume", r->name);
		if (a.set_weight >= 0)
			cr_assert_eq(s.since_ms, r->now, "%s: a new step's window begins now", r->name);
	}
}

Test(rollout, reverted_records_its_evidence)
{
	struct rollout_state s = make(ROLLOUT_STEP, 0);
	struct rollout_window w = win(40, 12, 4);
	struct rollout_event ev = {ROLLOUT_EV_TICK, 100, &w, NULL};
	struct rollout_actions a;
	(void)rollout_step(&s, &ev, &a);
	cr_assert_eq(a.nrecords, 1);
	const struct rollout_record *r = &a.records[0];
	cr_assert(r->has_test);
	cr_assert_eq(r->test.now.errors, 12);
	cr_assert_eq(r->test.now.requests, 40);
	cr_assert_eq(r->test.baseline.requests, 1000);
	cr_assert_float_eq(r->test.threshold, 40, 1e-9, "two tests at alpha/2 each");
	cr_assert_geq(r->test.err_e, r->test.threshold);
	cr_assert_gt(r->test.err_limit, 0.01, "the baseline's rate is 1%%: the limit is above it");
	cr_assert_lt(r->test.err_limit, 0.03);
	cr_assert_str_eq(r->test.decision, "revert");
	cr_assert(strstr(r->message, "12 errors of 40 requests"), "%s", r->message);
	cr_assert(strstr(r->message, "put back"), "%s", r->message);
}

Test(rollout, baseline_fixes_the_latency_threshold)
{
	struct rollout_state s = make(ROLLOUT_BASELINE, -1);
	/* 95% at 2 ms (bucket bound 5 ms), 5% at 50 ms: the p90 bound is 5 ms, under the 10 ms floor */
	struct rollout_window w = win(200, 2, 10);
	struct rollout_event ev = {ROLLOUT_EV_TICK, 3000, &w, NULL};
	struct rollout_actions a;
	(void)rollout_step(&s, &ev, &a);
	cr_assert_eq(s.slow_us, ROLLOUT_SLOW_FLOOR_US);
	cr_assert_eq(s.baseline.requests, 200);
	cr_assert_eq(s.baseline.errors, 2);
	cr_assert_eq(s.baseline.slow, 0, "nothing counts as slow below the 100 ms bucket's lower end... %llu",
		     (unsigned long long)s.baseline.slow);
	/* half of them above 5 ms: the p90 is in the 100 ms bucket */
	s = make(ROLLOUT_BASELINE, -1);
	w = win(200, 0, 100);
	(void)rollout_step(&s, &ev, &a);
	cr_assert_eq(s.slow_us, 100000);
}

Test(rollout, init_checks_the_config)
{
	struct rollout_state s;
	struct err e;
	struct rollout_config c = config();
	c.steps[1] = 5;
	cr_assert_eq(rollout_init(&s, &c, 0, &e), -1);
	cr_assert(strstr(e.msg, "increase"), "%s", e.msg);
	c = config();
	c.steps[2] = 101;
	cr_assert_eq(rollout_init(&s, &c, 0, &e), -1);
	c = config();
	c.nsteps = 0;
	cr_assert_eq(rollout_init(&s, &c, 0, &e), -1);
	c = config();
	c.variant[0] = '\0';
	cr_assert_eq(rollout_init(&s, &c, 0, &e), -1);
	c = config();
	c.alpha = 0;
	cr_assert_eq(rollout_init(&s, &c, 0, &e), -1);
}

Test(rollout, json_round_trip)
{
	struct rollout_state s = make(ROLLOUT_STEP, 1), t;
	s.since_ms = 1234567;
	json_t *j = rollout_to_json(&s);
	cr_assert_not_null(j);
	cr_assert_eq(rollout_from_json(j, &t), 0);
	cr_assert_eq(memcmp(&s.cfg.steps, &t.cfg.steps, sizeof(s.cfg.steps)), 0);
	cr_assert_eq(t.phase, ROLLOUT_STEP);
	cr_assert_eq(t.step, 1);
	cr_assert_eq(t.weight, 50);
	cr_assert_eq(t.since_ms, 1234567);
	cr_assert_eq(t.baseline.slow, 100);
	cr_assert_eq(t.slow_us, 5000);
	cr_assert_float_eq(t.cfg.alpha, 0.05, 1e-12);
	cr_assert_str_eq(t.cfg.variant, "on");
	json_object_set_new(j, "step", json_integer(7));
	cr_assert_eq(rollout_from_json(j, &t), -1, "a step past the steps is malformed");
	json_object_set_new(j, "step", json_integer(1));
	json_object_set_new(j, "phase", json_string("dancing"));
	cr_assert_eq(rollout_from_json(j, &t), -1);
	json_decref(j);
}

/* The share of 10,000 targeting keys that get `variant` from the set doc's flag f. */
static double share_of(json_t *flag, const char *variant)
{
	json_t *set = json_pack("{s:{s:O}}", "flags", "f", flag);
	flagset *fs = NULL;
	struct err e;
	cr_assert_eq(flagset_from_json(set, "test", &fs, &e), 0, "%s", e.msg);
	cr_assert_eq(flagset_warning_count(fs), 0, "%s", flagset_warning(fs, 0));
	static char buf[16384];
	struct logic_arena a;
	int n = 0;
	logic_arena_init(&a, buf, sizeof(buf));
	for (int i = 0; i < 10000; i++) {
		logic_arena_reset(&a);
		char key[32];
		snprintf(key, sizeof(key), "user-%d", i);
		json_t *ctx = json_pack("{s:s, s:s}", "targetingKey", key, "email", i % 2 ? "a@example.com" : "b@x.org");
		struct flag_result r;
		flagset_eval(fs, "f", ctx, 0, &a, &r);
		n += r.variant && !strcmp(r.variant, variant);
		json_decref(ctx);
	}
	logic_arena_release(&a);
	flagset_free(fs);
	json_decref(set);
	return n / 10000.0;
}

Test(rollout, flag_without_targeting_gets_a_fractional_rule)
{
	json_t *orig = json_pack("{s:s, s:{s:b, s:b}, s:s}", "state", "ENABLED", "variants", "on", 1, "off", 0,
				 "defaultVariant", "off");
	struct err e;
	json_t *f = rollout_flag_at(orig, "on", 10, &e);
	cr_assert_not_null(f, "%s", e.msg);
	json_t *want = json_pack("{s:[[s,i],[s,i]]}", "fractional", "on", 10, "off", 90);
	cr_assert(json_equal(json_object_get(f, "targeting"), want));
	json_decref(want);
	double s10 = share_of(f, "on");
	cr_assert(s10 > 0.09 && s10 < 0.11, "10%% of the keys: %f", s10);
	json_decref(f);
	f = rollout_flag_at(orig, "on", 50, &e);
	double s50 = share_of(f, "on");
	cr_assert(s50 > 0.48 && s50 < 0.52, "50%%: %f", s50);
	json_decref(f);
	f = rollout_flag_at(orig, "on", 0, &e);
	cr_assert_float_eq(share_of(f, "on"), 0, 1e-9, "weight 0: nobody");
	json_decref(f);
	f = rollout_flag_at(orig, "on", 100, &e);
	cr_assert_float_eq(share_of(f, "on"), 1, 1e-9, "weight 100: everybody");
	json_decref(f);
	/* refusals */
	cr_assert_null(rollout_flag_at(orig, "maybe", 10, &e));
	cr_assert(strstr(e.msg, "no variant"), "%s", e.msg);
	cr_assert_null(rollout_flag_at(orig, "off", 10, &e));
	cr_assert(strstr(e.msg, "already"), "%s", e.msg);
	json_object_set_new(orig, "state", json_string("DISABLED"));
	cr_assert_null(rollout_flag_at(orig, "on", 10, &e));
	cr_assert(strstr(e.msg, "disabled"), "%s", e.msg);
	json_object_set_new(orig, "state", json_string("ENABLED"));
	json_object_set_new(orig, "defaultVariant", json_null());
	cr_assert_null(rollout_flag_at(orig, "on", 10, &e));
	cr_assert(strstr(e.msg, "default"), "%s", e.msg);
	json_decref(orig);
}

Test(rollout, flag_with_targeting_keeps_it_for_the_others)
{
	/* staff get "blue"; the rest the default "red" */
	json_t *orig = json_pack("{s:s, s:{s:s, s:s, s:s}, s:s, s:{s:[{s:[{s:s}, s]}, s, n]}}", "state", "ENABLED",
				 "variants", "red", "r", "blue", "b", "green", "g", "defaultVariant", "red", "targeting",
				 "if", "ends_with", "var", "email", "@example.com", "blue");
	struct err e;
	json_t *f = rollout_flag_at(orig, "green", 20, &e);
	cr_assert_not_null(f, "%s", e.msg);
	double g = share_of(f, "green"), b = share_of(f, "blue"), r = share_of(f, "red");
	cr_assert(g > 0.18 && g < 0.22, "green for 20%%: %f", g);
	cr_assert(b > 0.38 && b < 0.42, "half of the other 80%% are staff: %f", b);
	cr_assert(r > 0.38 && r < 0.42, "red: %f", r);
	json_decref(f);
	/* the keys that have the variant keep it as the weight grows */
	json_t *f20 = rollout_flag_at(orig, "green", 20, &e), *f60 = rollout_flag_at(orig, "green", 60, &e);
	json_t *d20 = json_pack("{s:{s:O}}", "flags", "f", f20), *d60 = json_pack("{s:{s:O}}", "flags", "f", f60);
	flagset *a = NULL, *c = NULL;
	cr_assert_eq(flagset_from_json(d20, "a", &a, &e), 0, "%s", e.msg);
	cr_assert_eq(flagset_from_json(d60, "b", &c, &e), 0, "%s", e.msg);
	static char buf[16384];
	struct logic_arena ar;
	logic_arena_init(&ar, buf, sizeof(buf));
	for (int i = 0; i < 2000; i++) {
		char key[32];
		snprintf(key, sizeof(key), "k%d", i);
		json_t *ctx = json_pack("{s:s}", "targetingKey", key);
		struct flag_result r1, r2;
		logic_arena_reset(&ar);
		flagset_eval(a, "f", ctx, 0, &ar, &r1);
		logic_arena_reset(&ar);
		flagset_eval(c, "f", ctx, 0, &ar, &r2);
		if (r1.variant && !strcmp(r1.variant, "green"))
			cr_assert_str_eq(r2.variant, "green", "key %s lost the variant at a larger weight", key);
		json_decref(ctx);
	}
	logic_arena_release(&ar);
	flagset_free(a);
	flagset_free(c);
	json_decref(d20);
	json_decref(d60);
	json_decref(f20);
	json_decref(f60);
	json_decref(orig);
}
