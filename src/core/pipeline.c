#include "core/pipeline.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const phase_names[] = {"active", "promoted", "rolled_back", "failed", "preempted"};
static const char *const rstate_names[] = {"pending", "starting", "step", "promoting", "done",
					   "aborting", "rolled_back", "baking", "reverted"};
#define NRSTATES ((int)(sizeof(rstate_names) / sizeof(rstate_names[0])))
static const char *const kind_names[] = {"deploy", "rollback"};

const char *pipeline_phase_name(enum pl_phase p)
{
	return phase_names[p];
}

const char *pipeline_rstate_name(enum pl_rstate r)
{
	return rstate_names[r];
}

const char *pipeline_kind_name(enum pl_kind k)
{
	return kind_names[k];
}

static void copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

int pipeline_init(struct pl_state *s, enum pl_kind kind, const char *version,
		  const struct pl_config *cfg, const char *const *regions,
		  const char *const *stables, int nregions)
{
	if (nregions < 1 || nregions > PL_MAX_REGIONS || cfg->nsteps < 1 ||
	    cfg->nsteps > PL_MAX_STEPS || cfg->steps[cfg->nsteps - 1] != 100 ||
	    strlen(version) >= PL_NAME_MAX)
		return -1;
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->phase = PL_ACTIVE;
	copy(s->version, sizeof(s->version), version);
	s->cfg = *cfg;
	s->nregions = nregions;
	for (int i = 0; i < nregions; i++) {
		copy(s->regions[i].name, PL_NAME_MAX, regions[i]);
		copy(s->regions[i].stable, PL_NAME_MAX, stables[i]);
		s->regions[i].state = R_PENDING;
	}
	return 0;
}

__attribute__((format(printf, 5, 6))) static void act(struct pl_actions *out,
						      enum pl_action_type type, int region,
						      const char *kind, const char *fmt, ...)
{
	if (out->n >= PL_MAX_ACTIONS)
		return;
	struct pl_action *a = &out->a[out->n++];
	a->type = type;
	a->region = region;
	copy(a->kind, sizeof(a->kind), kind);
	a->message[0] = '\0';
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(a->message, sizeof(a->message), fmt, ap);
		va_end(ap);
	}
}

static void enter(struct pl_region *r, enum pl_rstate st, int64_t now)
{
	r->state = st;
	r->since = now;
}

/* Starts region i. Returns 0 when there is nothing to do there (the version is already its
 * stable release): the region is done at once. */
static int start_region(struct pl_state *s, int i, int64_t now, struct pl_actions *out)
{
	struct pl_region *r = &s->regions[i];
	if (!strcmp(r->stable, s->version)) {
		enter(r, R_DONE, now);
		act(out, PL_ACT_RECORD, i, "region_done", "%s already runs %s", r->name, s->version);
		return 0;
	}
	enter(r, R_STARTING, now);
	if (r->stable[0])
		act(out, PL_ACT_RECORD, i, "starting", "starting %s beside stable %s", s->version, r->stable);
	else
		act(out, PL_ACT_RECORD, i, "starting", "starting %s (no stable release yet)", s->version);
	return 1;
}

static void set_step(struct pl_state *s, int i, int step, int64_t now, struct pl_actions *out)
{
	struct pl_region *r = &s->regions[i];
	enter(r, R_STEP, now);
	r->step = step;
	act(out, PL_ACT_RESET_WINDOW, i, "window", NULL);
	act(out, PL_ACT_RECORD, i, "step", "step %d/%d: %s gets %d%% of traffic", step + 1,
	    s->cfg.nsteps, s->version, r->stable[0] ? s->cfg.steps[step] : 100);
}

static void promote(struct pl_state *s, int i, int64_t now, struct pl_actions *out)
{
	struct pl_region *r = &s->regions[i];
	enter(r, R_PROMOTING, now);
	act(out, PL_ACT_SET_STABLE, i, "stable", "%s", s->version);
	if (r->stable[0])
		act(out, PL_ACT_RECORD, i, "promoted", "%s is stable; %s drains and stops", s->version,
		    r->stable);
	else
		act(out, PL_ACT_RECORD, i, "promoted", "%s is stable", s->version);
}

static void abort_region(struct pl_state *s, int i, int64_t now, const char *why,
			 struct pl_actions *out)
{
	struct pl_region *r = &s->regions[i];
	enter(r, R_ABORTING, now);
	s->aborted = 1;
	if (!s->reason[0])
		copy(s->reason, sizeof(s->reason), why);
	act(out, PL_ACT_RECORD, i, "aborted", "%s; traffic returns to %s, then %s stops", why,
	    r->stable[0] ? r->stable : "nothing", s->version);
}

static int any_region_in(const struct pl_state *s, enum pl_rstate st)
{
	for (int i = 0; i < s->nregions; i++)
		if (s->regions[i].state == st)
			return 1;
	return 0;
}

/* After a region finished or rolled back: start the next one, or end the deployment. */
static void advance(struct pl_state *s, int64_t now, struct pl_actions *out)
{
	if (any_region_in(s, R_STARTING) || any_region_in(s, R_STEP) ||
	    any_region_in(s, R_PROMOTING) || any_region_in(s, R_ABORTING) || any_region_in(s, R_BAKING))
		return;
	if (s->aborted || any_region_in(s, R_ROLLED_BACK) || any_region_in(s, R_REVERTED)) {
		int had_stable = 0;
		for (int i = 0; i < s->nregions; i++)
			if ((s->regions[i].state == R_ROLLED_BACK || s->regions[i].state == R_REVERTED) &&
			    s->regions[i].stable[0])
				had_stable = 1;
		s->phase = s->preempted ? PL_PREEMPTED : had_stable ? PL_ROLLED_BACK : PL_FAILED;
		act(out, PL_ACT_RECORD, -1, pipeline_phase_name(s->phase), "%s", s->reason);
		return;
	}
	for (int i = 0; i < s->nregions; i++)
		if (s->regions[i].state == R_PENDING && start_region(s, i, now, out))
			return;
	s->phase = PL_PROMOTED;
	act(out, PL_ACT_RECORD, -1, "done", "%s is stable in every region", s->version);
}

static int observe(struct pl_state *s, const struct pl_event *ev, struct pl_actions *out)
{
	int i = ev->region;
	const struct pl_obs *o = &ev->obs;
	struct pl_region *r = &s->regions[i];
	int64_t age = ev->now - r->since;
	char why[PL_MSG_MAX];

	switch (r->state) {
	case R_STARTING:
		if (o->new_broken) {
			snprintf(why, sizeof(why), "instances of %s are failing: %s", s->version, o->broken_reason);
			abort_region(s, i, ev->now, why, out);
			return 1;
		}
		if (o->new_wanted > 0 && o->new_healthy >= o->new_wanted) {
			act(out, PL_ACT_RECORD, i, "healthy", "%d instance(s) of %s are healthy", o->new_healthy,
			    s->version);
			/* A rollback returns to a known good release, and a first release has no
			 * stable version to compare with or fall back to: both take all traffic
			 * once healthy. */
			if (s->kind == PL_ROLLBACK || !r->stable[0])
				promote(s, i, ev->now, out);
			else
				set_step(s, i, 0, ev->now, out);
			return 1;
		}
		if (age >= s->cfg.start_timeout_ms) {
			snprintf(why, sizeof(why), "instances of %s not healthy after %lld ms (%d/%d healthy)",
				 s->version, (long long)age, o->new_healthy, o->new_wanted);
			abort_region(s, i, ev->now, why, out);
			return 1;
		}
		return 0;
	case R_STEP:
		if (o->new_broken) {
			snprintf(why, sizeof(why), "instances of %s are failing: %s", s->version, o->broken_reason);
			abort_region(s, i, ev->now, why, out);
			return 1;
		}
		if (o->verdict == PL_VERDICT_FAIL) {
			snprintf(why, sizeof(why), "verification failed at %d%%: %s",
				 r->stable[0] ? s->cfg.steps[r->step] : 100, o->verdict_msg);
			abort_region(s, i, ev->now, why, out);
			return 1;
		}
		if (o->verdict != PL_VERDICT_PASS && age >= s->cfg.max_step_duration_ms) {
			snprintf(why, sizeof(why), "no verdict within %lld ms at %d%%: %s",
				 (long long)s->cfg.max_step_duration_ms,
				 r->stable[0] ? s->cfg.steps[r->step] : 100,
				 o->verdict_msg[0] ? o->verdict_msg : "not enough requests");
			abort_region(s, i, ev->now, why, out);
			return 1;
		}
		if (o->verdict == PL_VERDICT_PASS && age >= s->cfg.step_duration_ms) {
			act(out, PL_ACT_RECORD, i, "passed", "%s", o->verdict_msg);
			if (r->step + 1 < s->cfg.nsteps)
				set_step(s, i, r->step + 1, ev->now, out);
			else
				promote(s, i, ev->now, out);
			return 1;
		}
		return 0;
	case R_PROMOTING:
		if (o->old_stopped && s->cfg.bake_ms > 0 && r->stable[0] && s->kind == PL_DEPLOY) {
			enter(r, R_BAKING, ev->now);
			act(out, PL_ACT_RESET_WINDOW, i, "window", NULL);
			act(out, PL_ACT_RECORD, i, "baking", "verifying %s against %s's recorded behaviour for %lld ms",
			    s->version, r->stable, (long long)s->cfg.bake_ms);
			return 1;
		}
		if (o->old_stopped) {
			enter(r, R_DONE, ev->now);
			act(out, PL_ACT_RECORD, i, "region_done", "%s done", r->name);
			advance(s, ev->now, out);
			return 1;
		}
		return 0;
	case R_BAKING:
		if (o->verdict == PL_VERDICT_FAIL) {
			enter(r, R_REVERTED, ev->now);
			s->aborted = 1;
			snprintf(why, sizeof(why), "post-deployment verification failed: %s", o->verdict_msg);
			if (!s->reason[0])
				copy(s->reason, sizeof(s->reason), why);
			act(out, PL_ACT_RECORD, i, "reverted", "%s; rolling back to %s", why, r->stable);
			act(out, PL_ACT_REVERT, i, "revert", "%s", r->stable);
			advance(s, ev->now, out);
			return 1;
		}
		if (age >= s->cfg.bake_ms) {
			enter(r, R_DONE, ev->now);
			act(out, PL_ACT_RECORD, i, "baked", "%s", o->verdict_msg[0] ? o->verdict_msg : "no regression");
			act(out, PL_ACT_RECORD, i, "region_done", "%s done", r->name);
			advance(s, ev->now, out);
			return 1;
		}
		return 0;
	case R_ABORTING:
		if (o->new_stopped) {
			enter(r, R_ROLLED_BACK, ev->now);
			act(out, PL_ACT_RECORD, i, "region_rolled_back", "%s serves %s again", r->name,
			    r->stable[0] ? r->stable : "nothing");
			advance(s, ev->now, out);
			return 1;
		}
		return 0;
	default:
		return 0;
	}
}

int pipeline_step(struct pl_state *s, const struct pl_event *ev, struct pl_actions *out)
{
	out->n = 0;
	if (s->phase != PL_ACTIVE)
		return 0;
	switch (ev->type) {
	case PL_EV_START:
		if (any_region_in(s, R_STARTING) || s->regions[0].state != R_PENDING)
			return 0;
		act(out, PL_ACT_RECORD, -1, "started", "%s of %s", pipeline_kind_name(s->kind), s->version);
		if (s->kind == PL_ROLLBACK) {
			for (int i = 0; i < s->nregions; i++) {
				if (!strcmp(s->regions[i].stable, s->version))
					enter(&s->regions[i], R_DONE, ev->now);
				else
					enter(&s->regions[i], R_STARTING, ev->now);
			}
		}
		advance(s, ev->now, out);
		return 1;
	case PL_EV_OBSERVE:
		if (ev->region < 0 || ev->region >= s->nregions)
			return 0;
		return observe(s, ev, out);
	case PL_EV_ABORT: {
		copy(s->reason, sizeof(s->reason), ev->reason);
		s->aborted = 1;
		s->preempted = ev->preempt;
		for (int i = 0; i < s->nregions; i++) {
			enum pl_rstate st = s->regions[i].state;
			if (st == R_STARTING || st == R_STEP)
				abort_region(s, i, ev->now, ev->reason, out);
		}
		/* Regions promoting finish first (their new version is already stable there). */
		advance(s, ev->now, out);
		return 1;
	}
	}
	return 0;
}

int pipeline_done(const struct pl_state *s)
{
	return s->phase != PL_ACTIVE;
}

void pipeline_desired(const struct pl_state *s, int i, struct pl_desired *d)
{
	const struct pl_region *r = &s->regions[i];
	const char *old = r->stable[0] ? r->stable : NULL;
	const char *nv = s->version;
	d->nrun = d->nroute = 0;
#define RUN(v) (d->run[d->nrun++] = (v))
#define ROUTE(v, w) (d->route[d->nroute].version = (v), d->route[d->nroute++].weight = (w))
	switch (r->state) {
	case R_STARTING:
		if (old) {
			RUN(old);
			ROUTE(old, 100);
		}
		RUN(nv);
		ROUTE(nv, 0);
		break;
	case R_STEP: {
		int w = old ? s->cfg.steps[r->step] : 100;
		if (old) {
			RUN(old);
			ROUTE(old, 100 - w);
		}
		RUN(nv);
		ROUTE(nv, w);
		break;
	}
	case R_PROMOTING:
	case R_DONE:
	case R_BAKING:
	case R_REVERTED:
		RUN(nv);
		ROUTE(nv, 100);
		break;
	case R_PENDING:
	case R_ABORTING:
	case R_ROLLED_BACK:
		if (old) {
			RUN(old);
			ROUTE(old, 100);
		}
		break;
	}
#undef RUN
#undef ROUTE
}

json_t *pipeline_to_json(const struct pl_state *s)
{
	json_t *steps = json_array();
	for (int i = 0; i < s->cfg.nsteps; i++)
		json_array_append_new(steps, json_integer(s->cfg.steps[i]));
	json_t *regions = json_array();
	for (int i = 0; i < s->nregions; i++) {
		const struct pl_region *r = &s->regions[i];
		json_array_append_new(regions, json_pack("{s:s, s:s, s:s, s:i, s:I}", "name", r->name,
							 "stable", r->stable, "state",
							 pipeline_rstate_name(r->state), "step", r->step,
							 "since", (json_int_t)r->since));
	}
	return json_pack("{s:s, s:s, s:s, s:{s:o, s:I, s:I, s:I, s:I}, s:o, s:s, s:b, s:b}", "kind",
			 pipeline_kind_name(s->kind), "phase", pipeline_phase_name(s->phase),
			 "version", s->version, "config", "steps", steps, "step_duration_ms",
			 (json_int_t)s->cfg.step_duration_ms, "max_step_duration_ms",
			 (json_int_t)s->cfg.max_step_duration_ms, "start_timeout_ms",
			 (json_int_t)s->cfg.start_timeout_ms, "bake_ms", (json_int_t)s->cfg.bake_ms,
			 "regions", regions, "reason", s->reason,
			 "aborted", s->aborted, "preempted", s->preempted);
}

static int lookup(const char *const *names, int n, const char *v)
{
	for (int i = 0; v && i < n; i++)
		if (!strcmp(names[i], v))
			return i;
	return -1;
}

int pipeline_from_json(const json_t *j, struct pl_state *s)
{
	memset(s, 0, sizeof(*s));
	const char *kind = NULL, *phase = NULL, *version = NULL, *reason = NULL;
	json_t *cfg = NULL, *regions = NULL;
	int aborted = 0, preempted = 0;
	if (json_unpack((json_t *)j, "{s:s, s:s, s:s, s:o, s:o, s?s, s?b, s?b}", "kind", &kind,
			"phase", &phase, "version", &version, "config", &cfg, "regions", &regions,
			"reason", &reason, "aborted", &aborted, "preempted", &preempted))
		return -1;
	s->aborted = aborted;
	s->preempted = preempted;
	int k = lookup(kind_names, 2, kind), p = lookup(phase_names, 5, phase);
	if (k < 0 || p < 0)
		return -1;
	s->kind = (enum pl_kind)k;
	s->phase = (enum pl_phase)p;
	copy(s->version, sizeof(s->version), version);
	copy(s->reason, sizeof(s->reason), reason);
	json_t *steps;
	json_int_t sd, msd, st, bake = 0;
	if (json_unpack(cfg, "{s:o, s:I, s:I, s:I, s?I}", "steps", &steps, "step_duration_ms", &sd,
			"max_step_duration_ms", &msd, "start_timeout_ms", &st, "bake_ms", &bake) ||
	    !json_is_array(steps) || json_array_size(steps) > PL_MAX_STEPS ||
	    !json_is_array(regions) || json_array_size(regions) > PL_MAX_REGIONS)
		return -1;
	s->cfg.nsteps = (int)json_array_size(steps);
	for (int i = 0; i < s->cfg.nsteps; i++)
		s->cfg.steps[i] = (int)json_integer_value(json_array_get(steps, (size_t)i));
	s->cfg.step_duration_ms = sd;
	s->cfg.max_step_duration_ms = msd;
	s->cfg.start_timeout_ms = st;
	s->cfg.bake_ms = bake;
	s->nregions = (int)json_array_size(regions);
	for (int i = 0; i < s->nregions; i++) {
		const char *name, *stable, *state;
		int step;
		json_int_t since;
		if (json_unpack(json_array_get(regions, (size_t)i), "{s:s, s:s, s:s, s:i, s:I}", "name",
				&name, "stable", &stable, "state", &state, "step", &step, "since", &since))
			return -1;
		int rs = lookup(rstate_names, NRSTATES, state);
		if (rs < 0 || step < 0 || step >= PL_MAX_STEPS)
			return -1;
		copy(s->regions[i].name, PL_NAME_MAX, name);
		copy(s->regions[i].stable, PL_NAME_MAX, stable);
		s->regions[i].state = (enum pl_rstate)rs;
		s->regions[i].step = step;
		s->regions[i].since = since;
	}
	return 0;
}
