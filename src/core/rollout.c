/*
 * rollout: the guarded flag rollout's state machine and the flag each step writes.
 */
#include "core/rollout.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "stats/rate.h"

static const char *const phase_names[] = {"baseline", "step", "completed", "reverted", "aborted", "interrupted"};

const char *rollout_phase_name(enum rollout_phase p)
{
	return (unsigned)p < sizeof(phase_names) / sizeof(phase_names[0]) ? phase_names[p] : "?";
}

int rollout_done(const struct rollout_state *s)
{
	return s->phase != ROLLOUT_BASELINE && s->phase != ROLLOUT_STEP;
}

int rollout_init(struct rollout_state *s, const struct rollout_config *cfg, int64_t now_ms, struct err *e)
{
	memset(s, 0, sizeof(*s));
	if (!cfg->variant[0])
		return err_set(e, "a rollout needs a variant");
	if (cfg->nsteps < 1 || cfg->nsteps > ROLLOUT_MAX_STEPS)
		return err_set(e, "steps: 1 to %d percentages", ROLLOUT_MAX_STEPS);
	for (int i = 0; i < cfg->nsteps; i++) {
		if (cfg->steps[i] < 1 || cfg->steps[i] > 100)
			return err_set(e, "steps: %d is not a percentage in 1..100", cfg->steps[i]);
		if (i && cfg->steps[i] <= cfg->steps[i - 1])
			return err_set(e, "steps: must increase (%d after %d)", cfg->steps[i], cfg->steps[i - 1]);
	}
	if (cfg->step_ms < 0 || cfg->baseline_ms < 0)
		return err_set(e, "durations cannot be negative");
	if (!(cfg->alpha > 0 && cfg->alpha <= 0.5) || !(cfg->tolerance >= 0))
		return err_set(e, "alpha must be in (0, 0.5] and tolerance >= 0");
	s->cfg = *cfg;
	s->phase = ROLLOUT_BASELINE;
	s->step = -1;
	s->since_ms = now_ms;
	return 0;
}

void rollout_counts_of(const struct rollout_window *w, uint64_t slow_us, struct rollout_counts *c)
{
	memset(c, 0, sizeof(*c));
	c->requests = w->requests;
	c->errors = w->errors;
	for (int i = 0; i < w->nbuckets && i < ROLLOUT_BUCKETS; i++) {
		c->done += w->counts[i];
		/* all of bucket i is slower than slow_us when its lower end is at or above it */
		if (slow_us && i > 0 && w->bound_us[i - 1] >= (double)slow_us)
			c->slow += w->counts[i];
	}
}

/* The smallest bound at or above the q quantile of the window's latency (the last finite one
 * for the +inf bucket); 0 without data. */
static uint64_t quantile_bound(const struct rollout_window *w, double q)
{
	uint64_t total = 0, seen = 0;
	for (int i = 0; i < w->nbuckets; i++)
		total += w->counts[i];
	if (!total)
		return 0;
	for (int i = 0; i < w->nbuckets; i++) {
		seen += w->counts[i];
		if ((double)seen >= q * (double)total) {
			double b = w->bound_us[i];
			if (b < 0 && i > 0)
				b = w->bound_us[i - 1];
			return b > 0 ? (uint64_t)b : 1;
		}
	}
	return 0;
}

static void judge(const struct rollout_state *s, const struct rollout_window *w, struct rollout_test *t)
{
	memset(t, 0, sizeof(*t));
	rollout_counts_of(w, s->slow_us, &t->now);
	t->baseline = s->baseline;
	t->weight = s->weight;
	t->slow_us = s->slow_us;
	/* two tests, each at half of alpha */
	double a = s->cfg.alpha / 2;
	double slow_tol = s->cfg.tolerance > ROLLOUT_SLOW_MIN_TOLERANCE ? s->cfg.tolerance : ROLLOUT_SLOW_MIN_TOLERANCE;
	t->threshold = 1 / a;
	t->err_limit = rate_upper(s->baseline.errors, s->baseline.requests, a) * (1 + s->cfg.tolerance);
	t->err_e = t->err_limit < 1 ? exp(rate_log_e(t->now.errors, t->now.requests, t->err_limit, 0)) : 0;
	t->slow_limit = rate_upper(s->baseline.slow, s->baseline.done, a) * (1 + slow_tol);
	t->slow_e = t->slow_limit < 1 ? exp(rate_log_e(t->now.slow, t->now.done, t->slow_limit, 0)) : 0;
	t->decision = "continue";
}

static struct rollout_record *record(struct rollout_actions *out, const char *type)
{
	if (out->nrecords >= (int)(sizeof(out->records) / sizeof(out->records[0])))
		return NULL; /* never: no transition makes more */
	struct rollout_record *r = &out->records[out->nrecords++];
	memset(r, 0, sizeof(*r));
	snprintf(r->type, sizeof(r->type), "%s", type);
	return r;
}

static void begin_step(struct rollout_state *s, int k, int64_t now, struct rollout_actions *out)
{
	s->phase = ROLLOUT_STEP;
	s->step = k;
	s->weight = s->cfg.steps[k];
	s->since_ms = now;
	out->set_weight = s->weight;
	struct rollout_record *r = record(out, "step");
	if (r)
		snprintf(r->message, sizeof(r->message), "step %d of %d: variant %s for %d%% of targeting keys",
			 k + 1, s->cfg.nsteps, s->cfg.variant, s->weight);
}

static void tick_baseline(struct rollout_state *s, const struct rollout_event *ev, struct rollout_actions *out)
{
	const struct rollout_window *w = ev->window;
	if (ev->now_ms - s->since_ms < s->cfg.baseline_ms || w->requests < s->cfg.min_requests ||
	    w->requests == 0)
		return;
	uint64_t q = quantile_bound(w, ROLLOUT_SLOW_QUANTILE);
	s->slow_us = q > ROLLOUT_SLOW_FLOOR_US ? q : ROLLOUT_SLOW_FLOOR_US;
	rollout_counts_of(w, s->slow_us, &s->baseline);
	out->changed = 1;
	struct rollout_record *r = record(out, "baseline");
	if (r)
		snprintf(r->message, sizeof(r->message),
			 "baseline recorded over %.1f s: %llu errors of %llu requests, %llu of %llu slower than %.1f ms",
			 (double)(ev->now_ms - s->since_ms) / 1000, (unsigned long long)s->baseline.errors,
			 (unsigned long long)s->baseline.requests, (unsigned long long)s->baseline.slow,
			 (unsigned long long)s->baseline.done, (double)s->slow_us / 1000);
	begin_step(s, 0, ev->now_ms, out);
}

static void tick_step(struct rollout_state *s, const struct rollout_event *ev, struct rollout_actions *out)
{
	struct rollout_test t;
	judge(s, ev->window, &t);
	int err_fail = t.err_e >= t.threshold, slow_fail = t.slow_e >= t.threshold;
	int passed = ev->now_ms - s->since_ms >= s->cfg.step_ms && t.now.requests >= s->cfg.min_requests &&
		     t.now.requests > 0;
	if (err_fail || slow_fail) {
		t.decision = "revert";
		s->phase = ROLLOUT_REVERTED;
		out->changed = 1;
		out->restore = 1;
		struct rollout_record *r = record(out, "reverted");
		if (r) {
			r->has_test = 1;
			r->test = t;
			if (err_fail)
				snprintf(r->message, sizeof(r->message),
					 "variant %s at %d%%: error rate above the baseline's (proven, e=%.3g >= %.3g): "
					 "%llu errors of %llu requests, limit %.3f%% (baseline %llu of %llu); the flag is put back",
					 s->cfg.variant, s->weight, t.err_e, t.threshold, (unsigned long long)t.now.errors,
					 (unsigned long long)t.now.requests, t.err_limit * 100,
					 (unsigned long long)t.baseline.errors, (unsigned long long)t.baseline.requests);
			else
				snprintf(r->message, sizeof(r->message),
					 "variant %s at %d%%: more requests slower than %.1f ms than in the baseline "
					 "(proven, e=%.3g >= %.3g): %llu of %llu, limit %.3f%% (baseline %llu of %llu); "
					 "the flag is put back",
					 s->cfg.variant, s->weight, (double)t.slow_us / 1000, t.slow_e, t.threshold,
					 (unsigned long long)t.now.slow, (unsigned long long)t.now.done, t.slow_limit * 100,
					 (unsigned long long)t.baseline.slow, (unsigned long long)t.baseline.done);
		}
	} else if (passed) {
		t.decision = "pass";
		out->changed = 1;
		struct rollout_record *r = record(out, "passed");
		if (r) {
			r->has_test = 1;
			r->test = t;
			snprintf(r->message, sizeof(r->message),
				 "variant %s at %d%%: no regression over %.1f s: %llu errors of %llu requests "
				 "(limit %.3f%%), %llu of %llu slower than %.1f ms (limit %.3f%%)",
				 s->cfg.variant, s->weight, (double)(ev->now_ms - s->since_ms) / 1000,
				 (unsigned long long)t.now.errors, (unsigned long long)t.now.requests, t.err_limit * 100,
				 (unsigned long long)t.now.slow, (unsigned long long)t.now.done, (double)t.slow_us / 1000,
				 t.slow_limit * 100);
		}
		if (s->step + 1 < s->cfg.nsteps) {
			begin_step(s, s->step + 1, ev->now_ms, out);
		} else {
			s->phase = ROLLOUT_COMPLETED;
			struct rollout_record *c = record(out, "completed");
			if (c)
				snprintf(c->message, sizeof(c->message), "variant %s reached %d%%: the rollout is complete",
					 s->cfg.variant, s->weight);
		}
	}
	out->last = t;
	out->has_last = 1;
}

int rollout_step(struct rollout_state *s, const struct rollout_event *ev, struct rollout_actions *out)
{
	memset(out, 0, sizeof(*out));
	out->set_weight = -1;
	if (rollout_done(s))
		return 0;
	struct rollout_record *r;
	switch (ev->type) {
	case ROLLOUT_EV_TICK:
		if (!ev->window)
			return 0;
		if (s->phase == ROLLOUT_BASELINE)
			tick_baseline(s, ev, out);
		else
			tick_step(s, ev, out);
		break;
	case ROLLOUT_EV_RESUME:
		s->since_ms = ev->now_ms;
		out->changed = 1;
		if ((r = record(out, "resumed"))) {
			if (s->phase == ROLLOUT_BASELINE)
				snprintf(r->message, sizeof(r->message),
					 "the server restarted: the baseline window begins again");
			else
				snprintf(r->message, sizeof(r->message),
					 "the server restarted: step %d (%d%%) begins its window again", s->step + 1,
					 s->weight);
		}
		break;
	case ROLLOUT_EV_ABORT:
		out->restore = s->weight > 0;
		s->phase = ROLLOUT_ABORTED;
		out->changed = 1;
		if ((r = record(out, "aborted")))
			snprintf(r->message, sizeof(r->message), "aborted at %d%%%s%s%s", s->weight,
				 ev->reason && *ev->reason ? " (" : "", ev->reason ? ev->reason : "",
				 ev->reason && *ev->reason ? ")" : "");
		if (r && out->restore)
			snprintf(r->message + strlen(r->message), sizeof(r->message) - strlen(r->message),
				 ": the flag is put back");
		break;
	case ROLLOUT_EV_INTERRUPTED:
		s->phase = ROLLOUT_INTERRUPTED;
		out->changed = 1;
		if ((r = record(out, "interrupted")))
			snprintf(r->message, sizeof(r->message), "stopped at %d%%: %s; the flag is left as it is now",
				 s->weight, ev->reason ? ev->reason : "the flag was changed by someone else");
		break;
	}
	return 0;
}

/* ---- serialization ---- */

json_t *rollout_to_json(const struct rollout_state *s)
{
	json_t *steps = json_array();
	for (int i = 0; i < s->cfg.nsteps; i++)
		json_array_append_new(steps, json_integer(s->cfg.steps[i]));
	return json_pack("{s:s, s:o, s:I, s:I, s:I, s:f, s:f, s:s, s:i, s:i, s:I, s:{s:I, s:I, s:I, s:I}, s:I}",
			 "variant", s->cfg.variant, "steps", steps, "step_ms", (json_int_t)s->cfg.step_ms,
			 "baseline_ms", (json_int_t)s->cfg.baseline_ms, "min_requests",
			 (json_int_t)s->cfg.min_requests, "alpha", s->cfg.alpha, "tolerance", s->cfg.tolerance,
			 "phase", rollout_phase_name(s->phase), "step", s->step, "weight", s->weight, "since_ms",
			 (json_int_t)s->since_ms, "baseline", "requests", (json_int_t)s->baseline.requests, "errors",
			 (json_int_t)s->baseline.errors, "done", (json_int_t)s->baseline.done, "slow",
			 (json_int_t)s->baseline.slow, "slow_us", (json_int_t)s->slow_us);
}

static int get_int(const json_t *j, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
	const json_t *v = json_object_get(j, key);
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return -1;
	*out = json_integer_value(v);
	return 0;
}

int rollout_from_json(const json_t *j, struct rollout_state *s)
{
	memset(s, 0, sizeof(*s));
	const char *variant = json_string_value(json_object_get(j, "variant"));
	const char *phase = json_string_value(json_object_get(j, "phase"));
	const json_t *steps = json_object_get(j, "steps");
	const json_t *b = json_object_get(j, "baseline");
	if (!variant || strlen(variant) >= sizeof(s->cfg.variant) || !phase || !json_is_array(steps) ||
	    json_array_size(steps) < 1 || json_array_size(steps) > ROLLOUT_MAX_STEPS || !json_is_object(b))
		return -1;
	snprintf(s->cfg.variant, sizeof(s->cfg.variant), "%s", variant);
	s->cfg.nsteps = (int)json_array_size(steps);
	for (int i = 0; i < s->cfg.nsteps; i++) {
		const json_t *v = json_array_get(steps, (size_t)i);
		if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 100)
			return -1;
		s->cfg.steps[i] = (int)json_integer_value(v);
	}
	int64_t x[10];
	if (get_int(j, "step_ms", 0, INT64_MAX, &x[0]) || get_int(j, "baseline_ms", 0, INT64_MAX, &x[1]) ||
	    get_int(j, "min_requests", 0, INT64_MAX, &x[2]) || get_int(j, "step", -1, ROLLOUT_MAX_STEPS - 1, &x[3]) ||
	    get_int(j, "weight", 0, 100, &x[4]) || get_int(j, "since_ms", INT64_MIN, INT64_MAX, &x[5]) ||
	    get_int(j, "slow_us", 0, INT64_MAX, &x[6]) || get_int(b, "requests", 0, INT64_MAX, &x[7]) ||
	    get_int(b, "errors", 0, INT64_MAX, &x[8]) || get_int(b, "done", 0, INT64_MAX, &x[9]))
		return -1;
	int64_t slow;
	if (get_int(b, "slow", 0, INT64_MAX, &slow))
		return -1;
	s->cfg.step_ms = x[0];
	s->cfg.baseline_ms = x[1];
	s->cfg.min_requests = (uint64_t)x[2];
	s->step = (int)x[3];
	s->weight = (int)x[4];
	s->since_ms = x[5];
	s->slow_us = (uint64_t)x[6];
	s->baseline = (struct rollout_counts){(uint64_t)x[7], (uint64_t)x[8], (uint64_t)x[9], (uint64_t)slow};
	s->cfg.alpha = json_number_value(json_object_get(j, "alpha"));
	s->cfg.tolerance = json_number_value(json_object_get(j, "tolerance"));
	int p = -1;
	for (int i = 0; i < (int)(sizeof(phase_names) / sizeof(phase_names[0])); i++)
		if (!strcmp(phase, phase_names[i]))
			p = i;
	if (p < 0 || (p == ROLLOUT_STEP && (s->step < 0 || s->step >= s->cfg.nsteps)))
		return -1;
	s->phase = (enum rollout_phase)p;
	return 0;
}

/* ---- the flag at a weight ---- */

static int no_targeting(const json_t *t)
{
	return !t || json_is_null(t) || (json_is_object(t) && json_object_size(t) == 0);
}

json_t *rollout_flag_at(const json_t *orig, const char *variant, int weight, struct err *e)
{
	const json_t *variants = json_object_get(orig, "variants");
	if (!json_object_get(variants, variant)) {
		err_set(e, "the flag has no variant '%s'", variant);
		return NULL;
	}
	const char *state = json_string_value(json_object_get(orig, "state"));
	if (state && strcmp(state, "ENABLED")) {
		err_set(e, "the flag is disabled: enable it first ('sluice flag enable')");
		return NULL;
	}
	if (weight < 0 || weight > 100) {
		err_set(e, "weight %d is not a percentage", weight);
		return NULL;
	}
	const json_t *t = json_object_get(orig, "targeting");
	json_t *rule;
	if (no_targeting(t)) {
		const char *def = json_string_value(json_object_get(orig, "defaultVariant"));
		if (!def || !json_object_get(variants, def)) {
			err_set(e, "the flag has no targeting and no usable default variant: the variant would "
				   "share the keys with nothing (set one with 'sluice flag set --variant')");
			return NULL;
		}
		if (!strcmp(def, variant)) {
			err_set(e, "'%s' is already the flag's default variant", variant);
			return NULL;
		}
		rule = json_pack("{s:[[s,i],[s,i]]}", "fractional", variant, weight, def, 100 - weight);
	} else {
		rule = json_pack("{s:[{s:[{s:[[s,i],[s,i]]}, s]}, s, O]}", "if", "==", "fractional", variant, weight, "",
				 100 - weight, variant, variant, t);
	}
	json_t *flag = json_deep_copy(orig);
	if (!rule || !flag) {
		json_decref(rule);
		json_decref(flag);
		err_set(e, "out of memory");
		return NULL;
	}
	json_object_set_new(flag, "targeting", rule);
	return flag;
}
