/*
 * rollouts: guarded flag rollouts driven from the server's tick.
 */
#include "server/rollouts.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/notify.h"
#include "server/notifier.h"
#include "util/log.h"

/* What this process keeps of one active rollout (lost on restart: the window begins again). */
struct live {
	int64_t id;
	int fresh;                    /* started by this process: no resume needed */
	int seen;                     /* still active at the last pass */
	int has_last;
	struct rollout_window last;   /* cumulative counters at the previous snapshot */
	struct rollout_window window; /* differences summed since the window began */
	int64_t since_ms;             /* the state's since_ms the window belongs to */
	int has_test;
	struct rollout_test test;
};

struct rollouts {
	store *store;
	flags *flags;
	router *router;
	catalog *catalog;
	replica *replica;
	const json_t *metrics; /* the snapshot of the previous pass (the router's: compared only) */
	struct live *live;
	size_t nlive;
};

rollouts *rollouts_new(const struct rollouts_deps *d)
{
	rollouts *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->store = d->store;
	r->flags = d->flags;
	r->router = d->router;
	r->catalog = d->catalog;
	r->replica = d->replica;
	return r;
}

void rollouts_free(rollouts *r)
{
	if (!r)
		return;
	free(r->live);
	free(r);
}

static struct live *live_get(rollouts *r, int64_t id, int create, int *created)
{
	if (created)
		*created = 0;
	for (size_t i = 0; i < r->nlive; i++)
		if (r->live[i].id == id)
			return &r->live[i];
	if (!create)
		return NULL;
	struct live *all = realloc(r->live, (r->nlive + 1) * sizeof(*all));
	if (!all)
		return NULL;
	r->live = all;
	struct live *l = &all[r->nlive++];
	memset(l, 0, sizeof(*l));
	l->id = id;
	if (created)
		*created = 1;
	return l;
}

/* ---- the service's counters in an environment ---- */

static void add_version(const json_t *v, struct rollout_window *w)
{
	w->requests += (uint64_t)json_integer_value(json_object_get(v, "requests"));
	/* 5xx as the client saw them (the proxy's own 502/504 included), as the verifier counts */
	w->errors += (uint64_t)json_integer_value(json_object_get(json_object_get(v, "responses"), "5xx"));
	const json_t *lat = json_object_get(v, "latency_us");
	const json_t *bounds = json_object_get(lat, "bounds"), *counts = json_object_get(lat, "counts");
	size_t n = json_array_size(counts);
	if (n > json_array_size(bounds))
		n = json_array_size(bounds);
	if (n > ROLLOUT_BUCKETS)
		n = ROLLOUT_BUCKETS;
	/* a version's buckets stop at its last non-empty one (docs/proxy.md): the bounds of every
	 * version are prefixes of the same list, so the longest holds them all */
	for (size_t i = (size_t)w->nbuckets; i < n; i++)
		w->bound_us[i] = json_number_value(json_array_get(bounds, i));
	if ((int)n > w->nbuckets)
		w->nbuckets = (int)n;
	for (size_t i = 0; i < n; i++)
		w->counts[i] += (uint64_t)json_integer_value(json_array_get(counts, i));
}

/* Sums the cumulative counters of every version of the service's route in every region of env.
 * 0 when the environment is unknown (nothing counted). */
static int service_counts(rollouts *r, const json_t *metrics, const char *service, const char *env,
			  struct rollout_window *w)
{
	memset(w, 0, sizeof(*w));
	const struct env_manifest *em = NULL;
	struct err e;
	if (catalog_environment(r->catalog, env, &em, &e))
		return 0;
	const json_t *routes = json_object_get(metrics, "routes");
	for (size_t i = 0; i < em->nregions; i++) {
		char name[256];
		router_route_name(name, sizeof(name), service, env, em->regions[i].name);
		const char *ver;
		const json_t *v;
		json_object_foreach((json_t *)json_object_get(json_object_get(routes, name), "versions"), ver, v)
			add_version(v, w);
	}
	catalog_release_environment(r->catalog, em);
	return 1;
}

static uint64_t sub0(uint64_t a, uint64_t b)
{
	return a >= b ? a - b : 0; /* a restarted proxy starts its counters again */
}

static void add_delta(struct rollout_window *win, const struct rollout_window *cur, const struct rollout_window *last)
{
	win->requests += sub0(cur->requests, last->requests);
	win->errors += sub0(cur->errors, last->errors);
	if (cur->nbuckets > win->nbuckets) { /* prefixes of the same bounds: the longer wins */
		win->nbuckets = cur->nbuckets;
		memcpy(win->bound_us, cur->bound_us, sizeof(win->bound_us));
	}
	/* a bucket the last snapshot did not list was empty then */
	for (int i = 0; i < cur->nbuckets; i++)
		win->counts[i] += sub0(cur->counts[i], i < last->nbuckets ? last->counts[i] : 0);
}

/* ---- evidence ---- */

static json_t *jnum(double x)
{
	return isfinite(x) ? json_real(x) : json_null();
}

json_t *rollouts_evidence(const struct rollout_state *s, const struct rollout_test *t)
{
	double slow_tol = s->cfg.tolerance > ROLLOUT_SLOW_MIN_TOLERANCE ? s->cfg.tolerance : ROLLOUT_SLOW_MIN_TOLERANCE;
	json_t *tests = json_pack(
		"[{s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:o, s:f, s:s}, {s:s, s:s, s:f, s:I, s:I, s:I, s:I, s:o, s:o, s:f, s:s}]",
		"metric", "error_rate", "test", "one-sample: the rate above the baseline's upper bound x (1 + tolerance)",
		"events", (json_int_t)t->now.errors, "requests", (json_int_t)t->now.requests, "baseline_events",
		(json_int_t)t->baseline.errors, "baseline_requests", (json_int_t)t->baseline.requests, "limit",
		jnum(t->err_limit), "e_value", jnum(t->err_e), "e_threshold", t->threshold, "decision",
		t->err_e >= t->threshold ? "fail" : "continue", "metric", "slow_requests", "test",
		"one-sample: the share slower than slow_ms above the baseline's upper bound x (1 + tolerance)", "slow_ms",
		(double)t->slow_us / 1000, "events", (json_int_t)t->now.slow, "requests", (json_int_t)t->now.done,
		"baseline_events", (json_int_t)t->baseline.slow, "baseline_requests", (json_int_t)t->baseline.done, "limit",
		jnum(t->slow_limit), "e_value", jnum(t->slow_e), "e_threshold", t->threshold, "decision",
		t->slow_e >= t->threshold ? "fail" : "continue");
	json_object_set_new(json_array_get(tests, 1), "tolerance", json_real(slow_tol));
	return json_pack("{s:s, s:s, s:i, s:f, s:f, s:s, s:o}", "method", "sequential (anytime-valid, one-sample)",
			 "variant", s->cfg.variant, "weight", t->weight, "alpha", s->cfg.alpha, "tolerance",
			 s->cfg.tolerance, "decision", t->decision ? t->decision : "continue", "tests", tests);
}

/* ---- persisting a transition ---- */

/* The stored state: the machine's, plus the flag before the rollout and as last written. */
static json_t *state_json(const struct rollout_state *s, const json_t *original, const json_t *written)
{
	json_t *j = rollout_to_json(s);
	if (j) {
		json_object_set(j, "original", (json_t *)original);
		json_object_set(j, "written", written ? (json_t *)written : json_null());
	}
	return j;
}

static const char *store_phase(const struct rollout_state *s)
{
	return rollout_done(s) ? rollout_phase_name(s->phase) : "active";
}

/* Writes the transition of rollout `id` (row: its stored row) in one transaction: the flag
 * (a new weight, or put back), the state, the events. A flag changed by someone else turns a
 * weight change into "interrupted" (the machine is fed that instead, once). Returns 0 or -1. */
static int commit(rollouts *r, int64_t id, const char *env, const char *flag, const char *service,
		  struct rollout_state *s, struct rollout_actions *a, const json_t *original, json_t **written,
		  struct err *e)
{
	char by[48];
	snprintf(by, sizeof(by), "rollout %lld", (long long)id);
	for (int attempt = 0; attempt < 2; attempt++) {
		if (store_begin(r->store, e))
			return -1;
		/* the owner of the service's lease writes fenced, like the executor (a write from the
		 * API on another replica goes unfenced, as the executor's do) */
		if (r->replica && replica_owns(r->replica, service) && replica_fence(r->replica, service, e)) {
			store_rollback(r->store);
			return -1;
		}
		int rc = 0;
		json_t *now_written = *written ? json_incref(*written) : NULL;
		const json_t *expect = *written ? *written : original;
		const char *why = a->nrecords ? a->records[a->nrecords - 1].message : "";
		int64_t version = 0;
		char restore_note[sizeof(e->msg) + 32] = "";
		if (a->set_weight >= 0) {
			json_t *def = rollout_flag_at(original, s->cfg.variant, a->set_weight, e);
			json_t *w = NULL;
			rc = def ? flags_replace(r->flags, env, flag, def, expect, by, why, &version, &w, e) : ROLLOUTS_INVALID;
			json_decref(def);
			if (!rc) {
				json_decref(now_written);
				now_written = w;
			}
		} else if (a->restore) {
			rc = flags_replace(r->flags, env, flag, original, expect, by, why, &version, NULL, e);
			if (!rc) {
				json_decref(now_written);
				now_written = NULL;
				snprintf(restore_note, sizeof(restore_note), "flag set version %lld", (long long)version);
			} else if (rc == FLAGS_CONFLICT || rc == STORE_NOTFOUND) {
				/* someone changed (or removed) the flag since: theirs stands */
				snprintf(restore_note, sizeof(restore_note), "not put back: %s", e->msg);
				rc = 0;
			}
		}
		if (rc == FLAGS_CONFLICT || rc == STORE_NOTFOUND || rc == ROLLOUTS_INVALID || rc == FLAGS_INVALID) {
			/* the step cannot be written: the rollout stops, the flag as it is */
			store_rollback(r->store);
			json_decref(now_written);
			if (attempt)
				return -1;
			struct rollout_event ev = {ROLLOUT_EV_INTERRUPTED, s->since_ms, NULL, e->msg};
			/* the interruption applies to the state before this step: the weight the flag had */
			if (a->set_weight >= 0)
				s->weight = s->step > 0 ? s->cfg.steps[s->step - 1] : 0;
			s->phase = ROLLOUT_STEP;
			(void)rollout_step(s, &ev, a);
			continue;
		}
		json_t *st = !rc ? state_json(s, original, now_written) : NULL;
		if (!rc && st)
			rc = store_update_rollout(r->store, id, st, store_phase(s), e);
		json_decref(st);
		for (int i = 0; !rc && i < a->nrecords; i++) {
			const struct rollout_record *rec = &a->records[i];
			json_t *ev = rec->has_test ? rollouts_evidence(s, &rec->test) : json_object();
			if (version && (a->set_weight >= 0 || a->restore) && i == a->nrecords - 1)
				json_object_set_new(ev, "flag_version", json_integer(version));
			if (restore_note[0] && i == a->nrecords - 1)
				json_object_set_new(ev, "restore", json_string(restore_note));
			rc = store_add_rollout_event(r->store, id, rec->type, rec->message, ev, e);
			/* a revert by the judgment is announced, in this transaction, with its evidence */
			if (!rc && !strcmp(rec->type, "reverted")) {
				char when[32];
				notify_time(store_now_ms(), when);
				json_t *notice = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:O}", "type",
							   "flag.reverted", "time", when, "env", env, "flag", flag,
							   "by", by, "message", rec->message, "rollout", (json_int_t)id,
							   "evidence", ev);
				rc = notice ? notifier_raise(r->store, env, service, notice, e) : err_set(e, "out of memory");
				json_decref(notice);
			}
			json_decref(ev);
		}
		if (rc) {
			store_rollback(r->store);
			json_decref(now_written);
			return -1;
		}
		if (store_commit(r->store, e)) {
			json_decref(now_written);
			return -1;
		}
		json_decref(*written);
		*written = now_written;
		for (int i = 0; i < a->nrecords; i++) {
			if (!strcmp(a->records[i].type, "reverted"))
				log_warn("flag %s in %s: rollout %lld reverted: %s%s%s", flag, env, (long long)id,
					 a->records[i].message, restore_note[0] ? "; " : "", restore_note);
			else
				log_info("flag %s in %s: rollout %lld %s: %s", flag, env, (long long)id, a->records[i].type,
					 a->records[i].message);
		}
		return 0;
	}
	return -1;
}

/* The state of a stored row, with its flag before the rollout and as last written. */
static int load(const json_t *row, struct rollout_state *s, const json_t **original, json_t **written)
{
	const json_t *st = json_object_get(row, "state");
	*original = json_object_get(st, "original");
	const json_t *w = json_object_get(st, "written");
	*written = json_is_object(w) ? json_incref((json_t *)w) : NULL;
	if (rollout_from_json(st, s) || !json_is_object(*original)) {
		json_decref(*written);
		*written = NULL;
		return -1;
	}
	return 0;
}

/* ---- the tick ---- */

static void tick_one(rollouts *r, const json_t *row, const json_t *metrics, int fresh_metrics, int64_t now_ms)
{
	int64_t id = json_integer_value(json_object_get(row, "id"));
	const char *env = json_string_value(json_object_get(row, "env"));
	const char *flag = json_string_value(json_object_get(row, "flag"));
	const char *service = json_string_value(json_object_get(row, "service"));
	if (!env || !flag || !service)
		return;
	if (r->replica && !replica_owns(r->replica, service))
		return;
	struct rollout_state s;
	const json_t *original;
	json_t *written = NULL;
	if (load(row, &s, &original, &written)) {
		log_warn("rollout %lld: its stored state is malformed; left as it is", (long long)id);
		return;
	}
	int created;
	struct live *l = live_get(r, id, 1, &created);
	if (!l) {
		json_decref(written);
		return;
	}
	l->seen = 1;
	struct err e = {""};
	struct rollout_actions a;
	if (created) {
		/* a rollout this process did not start: the server restarted (or took it over) */
		struct rollout_event ev = {ROLLOUT_EV_RESUME, now_ms, NULL, NULL};
		(void)rollout_step(&s, &ev, &a);
		if (commit(r, id, env, flag, service, &s, &a, original, &written, &e))
			log_warn("rollout %lld: %s", (long long)id, e.msg);
		l->since_ms = s.since_ms;
		json_decref(written);
		return;
	}
	/* someone else changed the flag: stop, leave theirs */
	json_t *cur = NULL;
	int rc = flags_get_flag(r->flags, env, flag, &cur, &e);
	const json_t *expect = written ? written : original;
	if (rc == STORE_NOTFOUND || (!rc && !json_equal(cur, (json_t *)expect))) {
		json_decref(cur);
		char why[320];
		snprintf(why, sizeof(why), "%.300s", rc ? e.msg : "the flag was changed by someone else");
		struct rollout_event ev = {ROLLOUT_EV_INTERRUPTED, now_ms, NULL, why};
		(void)rollout_step(&s, &ev, &a);
		if (commit(r, id, env, flag, service, &s, &a, original, &written, &e))
			log_warn("rollout %lld: %s", (long long)id, e.msg);
		json_decref(written);
		return;
	}
	json_decref(cur);
	if (rc) {
		json_decref(written);
		return; /* the store failed: next tick */
	}
	if (l->since_ms != s.since_ms) {
		memset(&l->window, 0, sizeof(l->window));
		l->since_ms = s.since_ms;
	}
	if (metrics && fresh_metrics) {
		struct rollout_window now;
		if (service_counts(r, metrics, service, env, &now)) {
			if (l->has_last)
				add_delta(&l->window, &now, &l->last);
			l->last = now;
			l->has_last = 1;
		}
	}
	struct rollout_event ev = {ROLLOUT_EV_TICK, now_ms, &l->window, NULL};
	(void)rollout_step(&s, &ev, &a);
	if (a.has_last) {
		l->test = a.last;
		l->has_test = 1;
	}
	if (a.changed) {
		if (commit(r, id, env, flag, service, &s, &a, original, &written, &e))
			log_warn("rollout %lld: %s", (long long)id, e.msg);
		else if (l->since_ms != s.since_ms) {
			memset(&l->window, 0, sizeof(l->window));
			l->since_ms = s.since_ms;
			l->has_test = 0;
		}
	}
	json_decref(written);
}

void rollouts_tick(rollouts *r, int64_t now_ms)
{
	json_t *list = NULL;
	struct err e = {""};
	if (store_list_rollouts(r->store, NULL, 1, &list, &e))
		return;
	for (size_t i = 0; i < r->nlive; i++)
		r->live[i].seen = 0;
	const json_t *metrics = NULL;
	int fresh = 0;
	if (json_array_size(list) && r->router) {
		uint64_t at = 0;
		metrics = router_latest_metrics(r->router, &at);
		fresh = metrics && metrics != r->metrics;
		r->metrics = metrics;
	}
	size_t i;
	json_t *row;
	json_array_foreach(list, i, row)
		tick_one(r, row, metrics, fresh, now_ms);
	json_decref(list);
	/* forget what ended */
	for (size_t k = 0; k < r->nlive;) {
		if (!r->live[k].seen && !r->live[k].fresh)
			r->live[k] = r->live[--r->nlive];
		else {
			r->live[k].fresh = 0;
			k++;
		}
	}
}

/* ---- operators ---- */

int rollouts_start(rollouts *r, const struct rollouts_request *q, int64_t *id, struct err *e)
{
	*id = 0;
	const struct env_manifest *em = NULL;
	const struct service_manifest *sm = NULL;
	int rc = catalog_environment(r->catalog, q->env, &em, e);
	if (rc)
		return rc == STORE_NOTFOUND ? (err_set(e, "environment '%s' is not defined", q->env), STORE_NOTFOUND) : -1;
	catalog_release_environment(r->catalog, em);
	rc = catalog_service(r->catalog, q->service, &sm, e);
	if (rc)
		return rc == STORE_NOTFOUND ? (err_set(e, "service '%s' is not defined", q->service), STORE_NOTFOUND) : -1;
	struct rollout_config cfg = {0};
	if (strlen(q->variant) >= sizeof(cfg.variant)) {
		catalog_release_service(r->catalog, sm);
		return err_set(e, "variant name too long"), ROLLOUTS_INVALID;
	}
	snprintf(cfg.variant, sizeof(cfg.variant), "%s", q->variant);
	memcpy(cfg.steps, q->steps, sizeof(cfg.steps));
	cfg.nsteps = q->nsteps;
	cfg.step_ms = q->step_ms >= 0 ? q->step_ms : (int64_t)sm->strategy.step_duration_ms;
	cfg.baseline_ms = q->baseline_ms >= 0 ? q->baseline_ms : cfg.step_ms;
	cfg.min_requests = (uint64_t)sm->analysis.min_requests;
	cfg.alpha = sm->analysis.alpha > 0 ? sm->analysis.alpha : 0.05;
	cfg.tolerance = sm->analysis.tolerance;
	catalog_release_service(r->catalog, sm);
	struct rollout_state s;
	if (rollout_init(&s, &cfg, store_now_ms(), e))
		return ROLLOUTS_INVALID;
	json_t *orig = NULL;
	rc = flags_get_flag(r->flags, q->env, q->flag, &orig, e);
	if (rc)
		return rc == STORE_NOTFOUND ? STORE_NOTFOUND : -1;
	/* every step's flag must be a valid one: checked now, not at the first step */
	json_t *probe = rollout_flag_at(orig, cfg.variant, cfg.steps[0], e);
	if (!probe) {
		struct err inner = *e;
		err_set(e, "flag '%s': %.400s", q->flag, inner.msg);
		json_decref(orig);
		return ROLLOUTS_INVALID;
	}
	json_decref(probe);
	json_t *st = state_json(&s, orig, NULL);
	char steps[96] = "";
	for (int i = 0; i < cfg.nsteps; i++)
		snprintf(steps + strlen(steps), sizeof(steps) - strlen(steps), "%s%d", i ? "," : "", cfg.steps[i]);
	char msg[512];
	snprintf(msg, sizeof(msg),
		 "rollout of variant %s over steps %s%% judged on %s's error rate and latency in %s: baseline for "
		 "%.1f s first, then each step at least %.1f s and %llu requests",
		 cfg.variant, steps, q->service, q->env, (double)cfg.baseline_ms / 1000, (double)cfg.step_ms / 1000,
		 (unsigned long long)cfg.min_requests);
	rc = store_begin(r->store, e);
	if (!rc)
		rc = store_create_rollout(r->store, q->env, q->flag, q->service, st, q->by, q->why, id, e);
	if (!rc)
		rc = store_add_rollout_event(r->store, *id, "started", msg, NULL, e);
	if (!rc)
		rc = store_commit(r->store, e);
	else
		store_rollback(r->store);
	json_decref(st);
	json_decref(orig);
	if (rc)
		return rc == STORE_CONFLICT ? STORE_CONFLICT : -1;
	int created;
	struct live *l = live_get(r, *id, 1, &created);
	if (l) {
		l->fresh = 1;
		l->since_ms = s.since_ms;
	}
	log_info("flag %s in %s: rollout %lld started: %s", q->flag, q->env, (long long)*id, msg);
	return 0;
}

int rollouts_abort(rollouts *r, const char *env, const char *flag, const char *by, const char *why, int64_t *id,
		   struct err *e)
{
	*id = 0;
	json_t *list = NULL;
	if (store_list_rollouts(r->store, env, 1, &list, e))
		return -1;
	const json_t *row = NULL;
	size_t i;
	json_t *x;
	json_array_foreach(list, i, x)
		if (!strcmp(json_string_value(json_object_get(x, "flag")), flag))
			row = x;
	if (!row) {
		json_decref(list);
		return err_set(e, "flag '%s' has no rollout in progress in %s", flag, env), STORE_NOTFOUND;
	}
	*id = json_integer_value(json_object_get(row, "id"));
	struct rollout_state s;
	const json_t *original;
	json_t *written = NULL;
	if (load(row, &s, &original, &written)) {
		json_decref(list);
		return err_set(e, "rollout %lld: its stored state is malformed", (long long)*id);
	}
	char reason[400];
	snprintf(reason, sizeof(reason), "by %s%s%s", by, why && *why ? ": " : "", why ? why : "");
	struct rollout_event ev = {ROLLOUT_EV_ABORT, store_now_ms(), NULL, reason};
	struct rollout_actions a;
	(void)rollout_step(&s, &ev, &a);
	int rc = commit(r, *id, env, flag, json_string_value(json_object_get(row, "service")), &s, &a, original,
			&written, e);
	json_decref(written);
	json_decref(list);
	return rc;
}

json_t *rollouts_live(rollouts *r, int64_t id)
{
	struct live *l = live_get(r, id, 0, NULL);
	if (!l)
		return NULL;
	json_t *j = json_pack("{s:{s:I, s:I}}", "window", "requests", (json_int_t)l->window.requests, "errors",
			      (json_int_t)l->window.errors);
	if (j && l->has_test) {
		struct rollout_state s = {0};
		s.cfg.alpha = 2 / l->test.threshold;
		json_t *ev = rollouts_evidence(&s, &l->test);
		json_object_del(ev, "alpha");
		json_object_del(ev, "tolerance");
		json_object_del(ev, "variant");
		json_object_set_new(j, "judgement", ev);
	}
	return j;
}
