#include "core/pipeline.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const phase_names[] = {"active", "promoted", "rolled_back", "failed", "preempted", "split"};
static const char *const rstate_names[] = {"pending", "starting", "step", "promoting", "done",
					   "aborting", "rolled_back", "baking", "reverted", "smoke",
					   "side_by_side", "hold", "retry_wait", "failed"};
static const char *const kind_names[] = {"deploy", "rollback", "hotfix"};
static const char *const strategy_names[] = {"canary", "rolling", "blue-green"};
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

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

const char *pipeline_strategy_name(enum pl_strategy k)
{
	return strategy_names[k];
}

static int lookup(const char *const *names, int n, const char *v)
{
	for (int i = 0; v && i < n; i++)
		if (!strcmp(names[i], v))
			return i;
	return -1;
}

int pipeline_strategy_from_name(const char *name)
{
	return lookup(strategy_names, COUNT(strategy_names), name);
}

static void copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
}

int pipeline_init(struct pl_state *s, enum pl_kind kind, const char *version,
		  const struct pl_config *cfg, const struct pl_region_init *regions, int nregions)
{
	if (nregions < 1 || nregions > PL_MAX_REGIONS || cfg->nsteps < 1 ||
	    cfg->nsteps > PL_MAX_STEPS || cfg->steps[cfg->nsteps - 1] != 100 ||
	    strlen(version) >= PL_NAME_MAX || cfg->instances < 1)
		return -1;
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->phase = PL_ACTIVE;
	copy(s->version, sizeof(s->version), version);
	s->cfg = *cfg;
	if (s->cfg.max_surge + s->cfg.max_unavailable < 1)
		s->cfg.max_surge = 1;
	s->nregions = nregions;
	for (int i = 0; i < nregions; i++) {
		if (strlen(regions[i].name) >= PL_NAME_MAX || strlen(regions[i].env) >= PL_NAME_MAX ||
		    strlen(regions[i].stable) >= PL_NAME_MAX)
			return -1;
		copy(s->regions[i].name, PL_NAME_MAX, regions[i].name);
		copy(s->regions[i].env, PL_NAME_MAX, regions[i].env);
		copy(s->regions[i].stable, PL_NAME_MAX, regions[i].stable);
		s->regions[i].wave = regions[i].wave;
		s->regions[i].stage = regions[i].stage;
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
	/* the records that state a verification's outcome carry its evidence */
	a->verdict = type == PL_ACT_RECORD &&
		     (!strcmp(kind, "passed") || !strcmp(kind, "aborted") || !strcmp(kind, "baked") ||
		      !strcmp(kind, "reverted") || !strcmp(kind, "stage_passed"));
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
	r->seen = now; /* a region entering a state is observed: a retry after a wait is no silence */
}

/* States in which the pipeline drives the region (and the wave is not finished). */
static int is_active(enum pl_rstate st)
{
	return st == R_STARTING || st == R_SMOKE || st == R_STEP || st == R_SIDE_BY_SIDE ||
	       st == R_HOLD || st == R_PROMOTING || st == R_BAKING || st == R_ABORTING ||
	       st == R_RETRY_WAIT;
}

int pipeline_controls(const struct pl_state *s, int i)
{
	return i >= 0 && i < s->nregions && is_active(s->regions[i].state) &&
	       s->regions[i].state != R_RETRY_WAIT;
}

static int any_region_in(const struct pl_state *s, enum pl_rstate st)
{
	for (int i = 0; i < s->nregions; i++)
		if (s->regions[i].state == st)
			return 1;
	return 0;
}

/* ---- rolling arithmetic: step s alternates surge (even) and retire (odd) ---- */

static int rolling_batch(const struct pl_state *s)
{
	int b = s->cfg.max_surge + s->cfg.max_unavailable;
	return b < 1 ? 1 : b;
}

static int imin(int a, int b)
{
	return a < b ? a : b;
}

/* Instances of the new version wanted at step `step`, and of the old one. */
static void rolling_counts(const struct pl_state *s, int step, int *n_new, int *n_old,
			   int *w_new, int *w_old)
{
	int N = s->cfg.instances, b = rolling_batch(s), j = step / 2;
	int before = imin(N, j * b), after = imin(N, (j + 1) * b);
	*n_new = after;
	if (step % 2 == 0) {
		/* surge: the new batch starts; max_unavailable old instances leave at once (out of
		 * the route first), so that old + new never exceed N + max_surge */
		*n_old = imin(N - before, N + s->cfg.max_surge - after);
		*w_new = before;
		*w_old = *n_old;
		if (!*w_new && !*w_old)
			*w_new = 1; /* the only old instance left: the route waits for the new one */
	} else { /* retire: as many old instances leave */
		*n_old = N - after;
		*w_new = after;
		*w_old = N - after;
	}
}

/* ---- region transitions ---- */

/* Starts region i. Returns 0 when there is nothing to do there (the version is already its
 * stable release): the region is done at once. */
static int start_region(struct pl_state *s, int i, int64_t now, struct pl_actions *out)
{
	struct pl_region *r = &s->regions[i];
	if (!strcmp(r->stable, s->version)) {
		enter(r, R_DONE, now);
		r->ended_at = now;
		act(out, PL_ACT_RECORD, i, "region_done", "%s already runs %s", r->name, s->version);
		return 0;
	}
	if (s->cfg.strategy == PL_ROLLING && r->stable[0] && s->kind != PL_ROLLBACK && !r->stage) {
		enter(r, R_STEP, now);
		r->step = 0;
		act(out, PL_ACT_RECORD, i, "starting", "rolling %s over %s, %d instance(s) at a time",
		    s->version, r->stable, rolling_batch(s));
		return 1;
	}
	enter(r, R_STARTING, now);
	if (r->stable[0])
		act(out, PL_ACT_RECORD, i, "starting", "starting %s beside stable %s%s", s->version,
		    r->stable, r->stage ? " (pre-production stage)" : "");
	else
		act(out, PL_ACT_RECORD, i, "starting", "starting %s (no stable release yet)%s", s->version,
		    r->stage ? " (pre-production stage)" : "");
	return 1;
}

static void set_step(struct pl_state *s, int i, int step, int64_t now, struct pl_actions *out)
{
	struct pl_region *r = &s->regions[i];
	enter(r, R_STEP, now);
	r->step = step;
	act(out, PL_ACT_RESET_WINDOW, i, "window", NULL);
	act(out, PL_ACT_RECORD, i, "step", "step %d/%d: %s gets %d%% of traffic", step + 1,
	    s->cfg.nsteps, s->version, s->cfg.steps[step]);
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

/* Healthy new instances (and smoke checks passed): what comes next. */
static void after_smoke(struct pl_state *s, int i, int64_t now, struct pl_actions *out)
{
	struct pl_region *r = &s->regions[i];
	if (s->kind == PL_ROLLBACK) {
		promote(s, i, now, out);
	} else if (r->stage) {
		enter(r, R_SIDE_BY_SIDE, now);
		act(out, PL_ACT_RESET_WINDOW, i, "window", NULL);
		act(out, PL_ACT_TRAFFIC, i, "traffic", NULL);
		act(out, PL_ACT_RECORD, i, "side_by_side", "%s%s%s under generated traffic for %lld ms",
		    s->version, r->stable[0] ? " and " : "", r->stable[0] ? r->stable : "",
		    (long long)s->cfg.side_by_side_ms);
	} else if (!r->stable[0]) {
		promote(s, i, now, out);
	} else if (s->cfg.strategy == PL_BLUE_GREEN) {
		enter(r, R_HOLD, now);
		act(out, PL_ACT_RESET_WINDOW, i, "window", NULL);
		act(out, PL_ACT_RECORD, i, "switched", "all traffic on %s; %s kept %lld ms for an instant rollback",
		    s->version, r->stable, (long long)s->cfg.keep_old_ms);
	} else {
		set_step(s, i, 0, now, out);
	}
}

static void abort_region(struct pl_state *s, int i, int64_t now, const char *why,
			 struct pl_actions *out)
{
	struct pl_region *r = &s->regions[i];
	if (r->state == R_RETRY_WAIT) { /* nothing of the new version runs there */
		enter(r, R_ROLLED_BACK, now);
		return;
	}
	r->paused = 0;
	r->blind_ms = 0;
	enter(r, R_ABORTING, now);
	act(out, PL_ACT_RECORD, i, "aborted", "%s; traffic returns to %s, then %s stops", why,
	    r->stable[0] ? r->stable : "nothing", s->version);
}

/* A regression is proven (or an abort was asked): every region in flight goes back. */
static void regression(struct pl_state *s, int64_t now, const char *why, struct pl_actions *out)
{
	s->aborted = 1;
	if (!s->reason[0])
		copy(s->reason, sizeof(s->reason), why);
	for (int i = 0; i < s->nregions; i++) {
		enum pl_rstate st = s->regions[i].state;
		if (st == R_STARTING || st == R_SMOKE || st == R_STEP || st == R_SIDE_BY_SIDE ||
		    st == R_HOLD || st == R_RETRY_WAIT)
			abort_region(s, i, now, why, out);
	}
}

/* The region's new instances do not come up: stop them, then retry or give up. */
static void transient(struct pl_state *s, int i, int64_t now, const char *why, struct pl_actions *out)
{
	struct pl_region *r = &s->regions[i];
	r->attempts++;
	enter(r, R_ABORTING, now);
	act(out, PL_ACT_RECORD, i, "region_attempt_failed", "attempt %d of %d: %s; %s stops",
	    r->attempts, s->cfg.region_retries + 1, why, s->version);
}

static int wave_of_next(const struct pl_state *s)
{
	int w = -1;
	for (int i = 0; i < s->nregions; i++)
		if (s->regions[i].state == R_PENDING && (w < 0 || s->regions[i].wave < w))
			w = s->regions[i].wave;
	return w;
}

/* The version region i serves once the deployment has ended ("" = nothing). */
static const char *ended_version(const struct pl_state *s, int i)
{
	const struct pl_region *r = &s->regions[i];
	return r->state == R_DONE ? s->version : r->stable;
}

/* The production regions of an ended deployment: how many serve the new release, how many
 * another one; a REVERTED region is followed by a rollback of every region (not a split). */
static void tally(const struct pl_state *s, int *on_new, int *on_old, int *reverted)
{
	*on_new = *on_old = *reverted = 0;
	for (int i = 0; i < s->nregions; i++) {
		if (s->regions[i].stage)
			continue;
		*reverted |= s->regions[i].state == R_REVERTED;
		if (!strcmp(ended_version(s, i), s->version))
			(*on_new)++;
		else
			(*on_old)++;
	}
}

/* Production rolled the release back everywhere: the stage goes back to its previous stable
 * release too, so that it is not the next stage's comparison point. */
static void unstage(struct pl_state *s, int64_t now, struct pl_actions *out)
{
	for (int i = 0; i < s->nregions; i++) {
		struct pl_region *r = &s->regions[i];
		if (!r->stage || r->state != R_DONE || !r->stable[0] || !strcmp(r->stable, s->version))
			continue;
		enter(r, R_ROLLED_BACK, now);
		act(out, PL_ACT_RESTORE_STABLE, i, "stable", "%s", r->stable);
		act(out, PL_ACT_RECORD, i, "region_rolled_back",
		    "%s/%s serves %s again: %s was rolled back in production", r->env, r->name, r->stable,
		    s->version);
	}
}

static void finish(struct pl_state *s, int64_t now, struct pl_actions *out)
{
	int rolled = 0, had_stable = 0, failed = 0, on_new, on_old, reverted;
	for (int i = 0; i < s->nregions; i++) {
		enum pl_rstate st = s->regions[i].state;
		if (st == R_ROLLED_BACK || st == R_REVERTED) {
			rolled = 1;
			had_stable |= s->regions[i].stable[0] != '\0';
		}
		failed |= st == R_FAILED;
	}
	tally(s, &on_new, &on_old, &reverted);
	if (s->preempted)
		s->phase = PL_PREEMPTED;
	else if (on_new && on_old && !reverted)
		s->phase = PL_SPLIT;
	else if (s->aborted || rolled)
		s->phase = had_stable ? PL_ROLLED_BACK : PL_FAILED;
	else if (failed)
		s->phase = PL_FAILED;
	else
		s->phase = PL_PROMOTED;
	if (s->phase != PL_PROMOTED && s->phase != PL_SPLIT && !on_new && (s->aborted || rolled))
		unstage(s, now, out);
	if (s->phase == PL_PROMOTED) {
		act(out, PL_ACT_RECORD, -1, "done", "%s is stable in every region", s->version);
	} else if (s->phase == PL_SPLIT) {
		char where[PL_MSG_MAX] = "";
		size_t n = 0;
		for (int i = 0; i < s->nregions && n < sizeof(where); i++) {
			const char *v = ended_version(s, i);
			int w = snprintf(where + n, sizeof(where) - n, "%s%s %s", n ? ", " : "", s->regions[i].name,
					 v[0] ? v : "nothing");
			n += w > 0 ? (size_t)w : 0;
		}
		act(out, PL_ACT_RECORD, -1, "split", "regions run different versions: %s (%s)", where,
		    s->reason[0] ? s->reason : "some regions did not promote");
	} else {
		act(out, PL_ACT_RECORD, -1, pipeline_phase_name(s->phase), "%s", s->reason);
	}
}

/* Starts the next wave when the current one is over (and has baked), or ends the deployment.
 * Returns 1 when something changed. */
static int advance(struct pl_state *s, int64_t now, struct pl_actions *out)
{
	for (int i = 0; i < s->nregions; i++)
		if (is_active(s->regions[i].state))
			return 0;
	int failed = any_region_in(s, R_FAILED);
	int next = wave_of_next(s);
	if (s->aborted || next < 0 || (failed && !s->cfg.continue_on_failure)) {
		if (failed && next >= 0 && !s->aborted && !s->reason[0])
			snprintf(s->reason, sizeof(s->reason), "a region failed; later waves halted");
		finish(s, now, out);
		return 1;
	}
	/* wave_bake: the previous production wave must have run this long */
	int64_t last_end = 0;
	int prev_stage = 0;
	for (int i = 0; i < s->nregions; i++)
		if (s->regions[i].wave < next && s->regions[i].ended_at > last_end) {
			last_end = s->regions[i].ended_at;
			prev_stage = s->regions[i].stage;
		}
	if (last_end && !prev_stage && now < last_end + s->cfg.wave_bake_ms)
		return 0;
	int changed = 0;
	for (int i = 0; i < s->nregions; i++)
		if (s->regions[i].state == R_PENDING && s->regions[i].wave == next) {
			start_region(s, i, now, out);
			changed = 1;
		}
	if (changed)
		advance(s, now, out); /* every region of the wave may already have been done */
	return changed;
}

/* States whose next move waits on a verification verdict. */
static int waits_verdict(const struct pl_state *s, enum pl_rstate st)
{
	return (st == R_STEP && s->cfg.strategy != PL_ROLLING) || st == R_HOLD || st == R_BAKING ||
	       st == R_SIDE_BY_SIDE;
}

/* Observed time: moves `since` forward by what nobody observed, records the observation at
 * least every PL_HEARTBEAT_MS, and holds a blind region. Returns 1 when the state changed;
 * *hold = 1 when the region must not move (blind or paused). */
static int account(struct pl_state *s, int i, const struct pl_event *ev, struct pl_actions *out, int *hold)
{
	struct pl_region *r = &s->regions[i];
	int64_t gap = r->seen ? ev->now - r->seen : 0;
	int changed = 0;
	*hold = r->paused;
	if (r->paused || s->cfg.observe_gap_ms <= 0)
		return 0;
	if (gap > s->cfg.observe_gap_ms) {
		r->since += gap;
		r->seen = ev->now;
		act(out, PL_ACT_RECORD, i, "unobserved",
		    "%s was not observed for %lld ms (the control plane was away); its deadlines moved by as much",
		    r->name, (long long)gap);
		changed = 1;
		gap = 0;
	}
	if (ev->obs.blind && waits_verdict(s, r->state)) {
		*hold = 1;
		if (!r->seen || gap >= PL_HEARTBEAT_MS) {
			if (!r->blind_ms)
				act(out, PL_ACT_RECORD, i, "waiting",
				    "no metrics from the proxy: %s waits; the time is not counted against %s", r->name,
				    s->version);
			r->since += gap;
			r->blind_ms += gap ? gap : 1;
			r->seen = ev->now;
			changed = 1;
		}
		if (s->cfg.max_unobserved_ms > 0 && r->blind_ms >= s->cfg.max_unobserved_ms) {
			r->paused = 1;
			act(out, PL_ACT_RECORD, i, "paused",
			    "no metrics from the proxy for %lld ms (max_unobserved %lld ms): %s is paused at its "
			    "weights until an operator resumes it (sluice retry) or rolls it back",
			    (long long)r->blind_ms, (long long)s->cfg.max_unobserved_ms, r->name);
			changed = 1;
		}
		return changed;
	}
	if (r->blind_ms) {
		r->since += gap;
		r->blind_ms = 0;
		r->seen = ev->now;
		return 1;
	}
	if (!r->seen || gap >= PL_HEARTBEAT_MS) {
		r->seen = ev->now;
		changed = 1;
	}
	return changed;
}

static int observe_state(struct pl_state *s, const struct pl_event *ev, struct pl_actions *out);

static int observe(struct pl_state *s, const struct pl_event *ev, struct pl_actions *out)
{
	int hold = 0;
	int changed = account(s, ev->region, ev, out, &hold);
	if (hold)
		return changed;
	return observe_state(s, ev, out) | changed;
}

static int observe_state(struct pl_state *s, const struct pl_event *ev, struct pl_actions *out)
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
			transient(s, i, ev->now, why, out);
			return 1;
		}
		if (o->new_wanted > 0 && o->new_healthy >= o->new_wanted && o->base_healthy >= o->base_wanted) {
			if (o->base_wanted)
				act(out, PL_ACT_RECORD, i, "healthy", "%d instance(s) of %s and %d of its baseline are "
				    "healthy", o->new_healthy, s->version, o->base_healthy);
			else
				act(out, PL_ACT_RECORD, i, "healthy", "%d instance(s) of %s are healthy",
				    o->new_healthy, s->version);
			if (s->cfg.smoke && s->kind != PL_ROLLBACK) {
				enter(r, R_SMOKE, ev->now);
				act(out, PL_ACT_SMOKE, i, "smoke", NULL);
			} else {
				after_smoke(s, i, ev->now, out);
			}
			return 1;
		}
		if (age >= s->cfg.start_timeout_ms) {
			snprintf(why, sizeof(why), "instances of %s not healthy after %lld ms (%d/%d healthy)",
				 s->version, (long long)age, o->new_healthy, o->new_wanted);
			transient(s, i, ev->now, why, out);
			return 1;
		}
		return 0;
	case R_SMOKE:
		if (o->verdict == PL_VERDICT_FAIL) {
			snprintf(why, sizeof(why), "smoke checks failed in %s: %s", r->name, o->verdict_msg);
			regression(s, ev->now, why, out);
			advance(s, ev->now, out);
			return 1;
		}
		if (o->verdict == PL_VERDICT_PASS) {
			act(out, PL_ACT_RECORD, i, "smoke_passed", "%s", o->verdict_msg);
			after_smoke(s, i, ev->now, out);
			return 1;
		}
		return 0;
	case R_STEP:
		if (s->cfg.strategy == PL_ROLLING) {
			int nn, no, wn, wo;
			rolling_counts(s, r->step, &nn, &no, &wn, &wo);
			if (o->new_broken) {
				snprintf(why, sizeof(why), "instances of %s are failing: %s", s->version, o->broken_reason);
				transient(s, i, ev->now, why, out);
				return 1;
			}
			if (r->step % 2 == 0 && o->new_healthy >= nn) {
				r->step++;
				r->since = ev->now;
				act(out, PL_ACT_RECORD, i, "step", "%d of %d instances run %s; retiring old ones",
				    nn, s->cfg.instances, s->version);
				return 1;
			}
			if (r->step % 2 == 1 && o->old_running <= no) {
				if (nn >= s->cfg.instances) {
					promote(s, i, ev->now, out);
				} else {
					r->step++;
					r->since = ev->now;
				}
				return 1;
			}
			if (age >= s->cfg.start_timeout_ms) {
				snprintf(why, sizeof(why), "rolling step %d not done after %lld ms", r->step + 1,
					 (long long)age);
				transient(s, i, ev->now, why, out);
				return 1;
			}
			return 0;
		}
		__attribute__((fallthrough)); /* a canary step */
	case R_HOLD:
		if (o->new_broken) {
			snprintf(why, sizeof(why), "instances of %s are failing: %s", s->version, o->broken_reason);
			regression(s, ev->now, why, out);
			advance(s, ev->now, out);
			return 1;
		}
		if (o->verdict == PL_VERDICT_FAIL) {
			if (r->state == R_HOLD)
				snprintf(why, sizeof(why), "verification failed after the switch: %s", o->verdict_msg);
			else
				snprintf(why, sizeof(why), "verification failed at %d%%: %s",
					 s->cfg.steps[r->step], o->verdict_msg);
			regression(s, ev->now, why, out);
			advance(s, ev->now, out);
			return 1;
		}
		if (r->state == R_HOLD) {
			if (age >= s->cfg.keep_old_ms) {
				if (o->verdict_msg[0])
					act(out, PL_ACT_RECORD, i, "passed", "%s", o->verdict_msg);
				promote(s, i, ev->now, out);
				return 1;
			}
			return 0;
		}
		if (o->verdict != PL_VERDICT_PASS && age >= s->cfg.max_step_duration_ms) {
			snprintf(why, sizeof(why), "no verdict within %lld ms at %d%%: %s",
				 (long long)s->cfg.max_step_duration_ms, s->cfg.steps[r->step],
				 o->verdict_msg[0] ? o->verdict_msg : "not enough requests");
			regression(s, ev->now, why, out);
			advance(s, ev->now, out);
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
	case R_SIDE_BY_SIDE:
		if (o->verdict == PL_VERDICT_FAIL) {
			snprintf(why, sizeof(why), "pre-production stage failed in %.40s/%.40s: %.250s", r->env, r->name,
				 o->verdict_msg);
			regression(s, ev->now, why, out);
			advance(s, ev->now, out);
			return 1;
		}
		if (o->verdict == PL_VERDICT_PASS && age >= s->cfg.side_by_side_ms) {
			act(out, PL_ACT_RECORD, i, "stage_passed", "%s", o->verdict_msg);
			promote(s, i, ev->now, out);
			return 1;
		}
		if (age >= s->cfg.side_by_side_ms + s->cfg.max_step_duration_ms) {
			snprintf(why, sizeof(why), "pre-production stage in %s/%s gave no verdict", r->env, r->name);
			regression(s, ev->now, why, out);
			advance(s, ev->now, out);
			return 1;
		}
		return 0;
	case R_PROMOTING:
		if (!o->old_stopped)
			return 0;
		if (s->cfg.bake_ms > 0 && r->stable[0] && s->kind != PL_ROLLBACK && !r->stage) {
			enter(r, R_BAKING, ev->now);
			act(out, PL_ACT_RESET_WINDOW, i, "window", NULL);
			act(out, PL_ACT_RECORD, i, "baking", "verifying %s against %s's recorded behaviour for %lld ms",
			    s->version, r->stable, (long long)s->cfg.bake_ms);
			return 1;
		}
		enter(r, R_DONE, ev->now);
		r->ended_at = ev->now;
		act(out, PL_ACT_RECORD, i, "region_done", "%s done", r->name);
		advance(s, ev->now, out);
		return 1;
	case R_BAKING:
		if (o->verdict == PL_VERDICT_FAIL) {
			enter(r, R_REVERTED, ev->now);
			snprintf(why, sizeof(why), "post-deployment verification failed: %s", o->verdict_msg);
			act(out, PL_ACT_RECORD, i, "reverted", "%s; rolling back to %s", why, r->stable);
			act(out, PL_ACT_REVERT, i, "revert", "%s", r->stable);
			regression(s, ev->now, why, out);
			advance(s, ev->now, out);
			return 1;
		}
		if (age >= s->cfg.bake_ms) {
			enter(r, R_DONE, ev->now);
			r->ended_at = ev->now;
			act(out, PL_ACT_RECORD, i, "baked", "%s", o->verdict_msg[0] ? o->verdict_msg : "no regression");
			act(out, PL_ACT_RECORD, i, "region_done", "%s done", r->name);
			advance(s, ev->now, out);
			return 1;
		}
		return 0;
	case R_ABORTING:
		if (!o->new_stopped)
			return 0;
		if (s->aborted || r->attempts == 0) {
			enter(r, R_ROLLED_BACK, ev->now);
			act(out, PL_ACT_RECORD, i, "region_rolled_back", "%s serves %s again", r->name,
			    r->stable[0] ? r->stable : "nothing");
		} else if (r->attempts <= s->cfg.region_retries) {
			enter(r, R_RETRY_WAIT, ev->now);
			int64_t backoff = s->cfg.retry_backoff_ms;
			for (int k = 1; k < r->attempts && backoff < 3600000; k++)
				backoff *= 2;
			r->retry_at = ev->now + backoff;
			act(out, PL_ACT_RECORD, i, "retry_scheduled", "%s retries in %lld ms", r->name,
			    (long long)backoff);
			return 1;
		} else {
			enter(r, R_FAILED, ev->now);
			act(out, PL_ACT_RECORD, i, "region_failed", "%s failed after %d attempts; %s",
			    r->name, r->attempts,
			    s->cfg.continue_on_failure ? "later waves go on" : "later waves halt");
			if (!s->reason[0])
				snprintf(s->reason, sizeof(s->reason), "region %s failed after %d attempts", r->name,
					 r->attempts);
		}
		advance(s, ev->now, out);
		return 1;
	default:
		return 0;
	}
}

static int tick(struct pl_state *s, int64_t now, struct pl_actions *out)
{
	int changed = 0;
	for (int i = 0; i < s->nregions; i++) {
		struct pl_region *r = &s->regions[i];
		if (r->state == R_RETRY_WAIT && now >= r->retry_at && !s->aborted) {
			act(out, PL_ACT_RECORD, i, "retry", "retrying %s (attempt %d)", r->name, r->attempts + 1);
			start_region(s, i, now, out);
			changed = 1;
		}
	}
	return advance(s, now, out) || changed;
}

int pipeline_step(struct pl_state *s, const struct pl_event *ev, struct pl_actions *out)
{
	out->n = 0;
	if (ev->type == PL_EV_RETRY && ev->region >= 0 && ev->region < s->nregions &&
	    s->regions[ev->region].paused && s->phase == PL_ACTIVE) {
		struct pl_region *r = &s->regions[ev->region];
		r->paused = 0;
		r->blind_ms = 0;
		r->seen = ev->now;
		act(out, PL_ACT_RECORD, ev->region, "resumed", "%s resumed (asked)", r->name);
		return 1;
	}
	if (ev->type == PL_EV_RETRY) {
		if (ev->region < 0 || ev->region >= s->nregions || s->regions[ev->region].state != R_FAILED ||
		    s->aborted || s->phase == PL_PREEMPTED)
			return 0;
		struct pl_region *r = &s->regions[ev->region];
		r->attempts = 0;
		s->phase = PL_ACTIVE;
		s->reason[0] = '\0';
		act(out, PL_ACT_RECORD, ev->region, "retry", "retrying %s alone (asked)", r->name);
		start_region(s, ev->region, ev->now, out);
		advance(s, ev->now, out);
		return 1;
	}
	if (s->phase != PL_ACTIVE)
		return 0;
	switch (ev->type) {
	case PL_EV_START:
		for (int i = 0; i < s->nregions; i++)
			if (s->regions[i].state != R_PENDING)
				return 0;
		act(out, PL_ACT_RECORD, -1, "started", "%s of %s (%s)", pipeline_kind_name(s->kind),
		    s->version, pipeline_strategy_name(s->cfg.strategy));
		if (s->kind == PL_ROLLBACK)
			for (int i = 0; i < s->nregions; i++)
				start_region(s, i, ev->now, out);
		advance(s, ev->now, out);
		return 1;
	case PL_EV_OBSERVE:
		if (ev->region < 0 || ev->region >= s->nregions)
			return 0;
		return observe(s, ev, out);
	case PL_EV_TICK:
		return tick(s, ev->now, out);
	case PL_EV_ABORT:
		s->preempted = ev->preempt;
		regression(s, ev->now, ev->reason, out);
		copy(s->reason, sizeof(s->reason), ev->reason);
		advance(s, ev->now, out);
		return 1;
	case PL_EV_PROMOTE: {
		int done = 0;
		for (int i = 0; i < s->nregions; i++) {
			struct pl_region *r = &s->regions[i];
			if ((ev->region >= 0 && ev->region != i) || r->stage ||
			    !((r->state == R_STEP && s->cfg.strategy == PL_CANARY) || r->state == R_HOLD))
				continue;
			act(out, PL_ACT_RECORD, i, "promote_now", "promoted now, remaining steps and checks skipped (%s)",
			    ev->reason[0] ? ev->reason : "asked");
			promote(s, i, ev->now, out);
			done = 1;
		}
		if (done)
			advance(s, ev->now, out);
		return done;
	}
	case PL_EV_RETRY:
		break;
	}
	return 0;
}

int pipeline_done(const struct pl_state *s)
{
	return s->phase != PL_ACTIVE;
}

int pipeline_started(const struct pl_state *s)
{
	for (int i = 0; i < s->nregions; i++)
		if (s->regions[i].state != R_PENDING)
			return 1;
	return 0;
}

const char *pipeline_release_of(const char *label, char *buf, size_t len)
{
	size_t n = strlen(label), k = strlen(PL_BASELINE_SUFFIX);
	if (n <= k || strcmp(label + n - k, PL_BASELINE_SUFFIX) || n - k >= len)
		return label;
	memcpy(buf, label, n - k);
	buf[n - k] = '\0';
	return buf;
}

int pipeline_baseline(const struct pl_state *s, int i, char *label, size_t len)
{
	const struct pl_region *r = &s->regions[i];
	if (!s->cfg.baseline || s->cfg.strategy != PL_CANARY || s->kind == PL_ROLLBACK || r->stage ||
	    !r->stable[0] || !strcmp(r->stable, s->version))
		return -1;
	int w;
	if (r->state == R_STARTING || r->state == R_SMOKE)
		w = 0;
	else if (r->state == R_STEP && r->step >= 0 && r->step < s->cfg.nsteps && s->cfg.steps[r->step] < 100)
		w = s->cfg.steps[r->step] <= 50 ? s->cfg.steps[r->step] : 100 - s->cfg.steps[r->step];
	else
		return -1;
	snprintf(label, len, "%s%s", r->stable, PL_BASELINE_SUFFIX);
	return w;
}

void pipeline_desired(const struct pl_state *s, int i, struct pl_desired *d)
{
	const struct pl_region *r = &s->regions[i];
	const char *old = r->stable[0] ? r->stable : NULL;
	const char *nv = s->version;
	int N = s->cfg.instances;
	int wb = pipeline_baseline(s, i, d->baseline, sizeof(d->baseline));
	d->nrun = d->nroute = 0;
#define RUN(v, c) (d->run[d->nrun].version = (v), d->run[d->nrun++].count = (c))
#define ROUTE(v, w) (d->route[d->nroute].version = (v), d->route[d->nroute++].weight = (w))
	if (wb >= 0) {
		/* the canary strategy with a baseline: stable, baseline and canary */
		int w = r->state == R_STEP ? s->cfg.steps[r->step] : 0;
		RUN(old, N);
		ROUTE(old, 100 - w - wb);
		RUN(d->baseline, N);
		ROUTE(d->baseline, wb);
		RUN(nv, N);
		ROUTE(nv, w);
		return;
	}
	switch (r->state) {
	case R_STARTING:
	case R_SMOKE:
		if (old) {
			RUN(old, N);
			ROUTE(old, 100);
		}
		RUN(nv, N);
		ROUTE(nv, 0);
		break;
	case R_STEP:
		if (s->cfg.strategy == PL_ROLLING) {
			int nn, no, wn, wo;
			rolling_counts(s, r->step, &nn, &no, &wn, &wo);
			if (old && no > 0)
				RUN(old, no);
			RUN(nv, nn);
			if (old && wo > 0)
				ROUTE(old, wo);
			ROUTE(nv, wn);
		} else {
			int w = s->cfg.steps[r->step];
			if (old) {
				RUN(old, N);
				ROUTE(old, 100 - w);
			}
			RUN(nv, N);
			ROUTE(nv, old ? w : 100);
		}
		break;
	case R_SIDE_BY_SIDE:
		if (old) {
			RUN(old, N);
			ROUTE(old, 50);
		}
		RUN(nv, N);
		ROUTE(nv, old ? 50 : 100);
		break;
	case R_HOLD:
		if (old)
			RUN(old, N);
		RUN(nv, N);
		ROUTE(nv, 100);
		break;
	case R_PROMOTING:
	case R_DONE:
	case R_BAKING:
	case R_REVERTED:
		RUN(nv, N);
		ROUTE(nv, 100);
		break;
	case R_PENDING:
	case R_ABORTING:
	case R_ROLLED_BACK:
	case R_RETRY_WAIT:
	case R_FAILED:
		if (old) {
			RUN(old, N);
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
		json_array_append_new(regions,
				      json_pack("{s:s, s:s, s:s, s:i, s:b, s:s, s:i, s:I, s:i, s:I, s:I, s:I, s:I, s:b}",
						"name", r->name, "env", r->env, "stable", r->stable, "wave",
						r->wave, "stage", r->stage, "state",
						pipeline_rstate_name(r->state), "step", r->step, "since",
						(json_int_t)r->since, "attempts", r->attempts, "retry_at",
						(json_int_t)r->retry_at, "ended_at", (json_int_t)r->ended_at,
						"seen", (json_int_t)r->seen, "blind_ms", (json_int_t)r->blind_ms,
						"paused", r->paused));
		if (s->phase != PL_ACTIVE) /* what it serves now that the deployment has ended */
			json_object_set_new(json_array_get(regions, (size_t)i), "runs",
					    json_string(ended_version(s, i)));
	}
	const struct pl_config *c = &s->cfg;
	json_t *cfg = json_pack("{s:s, s:o, s:i, s:i, s:i, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i, s:I, s:b, s:b, s:I, s:I}",
				"strategy", pipeline_strategy_name(c->strategy), "steps", steps,
				"instances", c->instances, "max_surge", c->max_surge, "max_unavailable",
				c->max_unavailable, "smoke", c->smoke, "step_duration_ms",
				(json_int_t)c->step_duration_ms, "max_step_duration_ms",
				(json_int_t)c->max_step_duration_ms, "start_timeout_ms",
				(json_int_t)c->start_timeout_ms, "bake_ms", (json_int_t)c->bake_ms,
				"keep_old_ms", (json_int_t)c->keep_old_ms, "wave_bake_ms",
				(json_int_t)c->wave_bake_ms, "side_by_side_ms", (json_int_t)c->side_by_side_ms,
				"region_retries", c->region_retries, "retry_backoff_ms",
				(json_int_t)c->retry_backoff_ms, "continue_on_failure", c->continue_on_failure,
				"baseline", c->baseline, "max_unobserved_ms", (json_int_t)c->max_unobserved_ms,
				"observe_gap_ms", (json_int_t)c->observe_gap_ms);
	return json_pack("{s:s, s:s, s:s, s:o, s:o, s:s, s:b, s:b}", "kind", pipeline_kind_name(s->kind),
			 "phase", pipeline_phase_name(s->phase), "version", s->version, "config", cfg,
			 "regions", regions, "reason", s->reason, "aborted", s->aborted, "preempted",
			 s->preempted);
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
	int k = lookup(kind_names, COUNT(kind_names), kind);
	int p = lookup(phase_names, COUNT(phase_names), phase);
	if (k < 0 || p < 0 || strlen(version) >= PL_NAME_MAX)
		return -1;
	s->kind = (enum pl_kind)k;
	s->phase = (enum pl_phase)p;
	s->aborted = aborted;
	s->preempted = preempted;
	copy(s->version, sizeof(s->version), version);
	copy(s->reason, sizeof(s->reason), reason);
	struct pl_config *c = &s->cfg;
	const char *strategy = "canary";
	json_t *steps;
	json_int_t sd = 0, msd = 0, st = 0, bake = 0, keep = 0, wb = 0, sbs = 0, backoff = 0, unobs = 0, gapms = 0;
	int smoke = 0, cont = 0, baseline = 0;
	c->instances = 1;
	if (json_unpack(cfg, "{s?s, s:o, s?i, s?i, s?i, s?b, s:I, s:I, s:I, s?I, s?I, s?I, s?I, s?i, s?I, s?b, s?b, s?I, s?I}",
			"strategy", &strategy, "steps", &steps, "instances", &c->instances,
			"max_surge", &c->max_surge, "max_unavailable", &c->max_unavailable, "smoke",
			&smoke, "step_duration_ms", &sd, "max_step_duration_ms", &msd,
			"start_timeout_ms", &st, "bake_ms", &bake, "keep_old_ms", &keep,
			"wave_bake_ms", &wb, "side_by_side_ms", &sbs, "region_retries",
			&c->region_retries, "retry_backoff_ms", &backoff, "continue_on_failure", &cont,
			"baseline", &baseline, "max_unobserved_ms", &unobs, "observe_gap_ms", &gapms) ||
	    !json_is_array(steps) || json_array_size(steps) < 1 ||
	    json_array_size(steps) > PL_MAX_STEPS || !json_is_array(regions) ||
	    json_array_size(regions) > PL_MAX_REGIONS)
		return -1;
	int strat = pipeline_strategy_from_name(strategy);
	if (strat < 0)
		return -1;
	c->strategy = (enum pl_strategy)strat;
	c->smoke = smoke;
	c->continue_on_failure = cont;
	c->baseline = baseline;
	c->nsteps = (int)json_array_size(steps);
	for (int i = 0; i < c->nsteps; i++)
		c->steps[i] = (int)json_integer_value(json_array_get(steps, (size_t)i));
	c->step_duration_ms = sd;
	c->max_step_duration_ms = msd;
	c->start_timeout_ms = st;
	c->bake_ms = bake;
	c->keep_old_ms = keep;
	c->wave_bake_ms = wb;
	c->side_by_side_ms = sbs;
	c->retry_backoff_ms = backoff;
	c->max_unobserved_ms = unobs;
	c->observe_gap_ms = gapms;
	s->nregions = (int)json_array_size(regions);
	for (int i = 0; i < s->nregions; i++) {
		struct pl_region *r = &s->regions[i];
		const char *name, *env = "", *stable, *state;
		int stage = 0, paused = 0;
		json_int_t since, retry_at = 0, ended_at = 0, seen = 0, blind = 0;
		if (json_unpack(json_array_get(regions, (size_t)i),
				"{s:s, s?s, s:s, s?i, s?b, s:s, s:i, s:I, s?i, s?I, s?I, s?I, s?I, s?b}", "name", &name, "env",
				&env, "stable", &stable, "wave", &r->wave, "stage", &stage, "state", &state,
				"step", &r->step, "since", &since, "attempts", &r->attempts, "retry_at",
				&retry_at, "ended_at", &ended_at, "seen", &seen, "blind_ms", &blind, "paused",
				&paused))
			return -1;
		int rs = lookup(rstate_names, COUNT(rstate_names), state);
		if (rs < 0 || r->step < 0 || r->step >= 4 * 64 || strlen(name) >= PL_NAME_MAX ||
		    strlen(env) >= PL_NAME_MAX || strlen(stable) >= PL_NAME_MAX)
			return -1;
		copy(r->name, PL_NAME_MAX, name);
		copy(r->env, PL_NAME_MAX, env);
		copy(r->stable, PL_NAME_MAX, stable);
		r->stage = stage;
		r->state = (enum pl_rstate)rs;
		r->since = since;
		r->retry_at = retry_at;
		r->ended_at = ended_at;
		r->seen = seen;
		r->blind_ms = blind;
		r->paused = paused;
	}
	return 0;
}
