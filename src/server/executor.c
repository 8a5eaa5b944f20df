/*
 * executor: drives every active deployment's pipeline.
 *
 * Each tick, for each active deployment (one per service and environment runs; later ones
 * wait their turn): observe every region the pipeline controls (instances from the runtime,
 * the verification verdict from the proxy's metrics), feed the observation to the pure state
 * machine, and when the state changes persist the new state, its event records and any new
 * stable release in ONE transaction. Acting is left to the reconciler, which reads the
 * persisted state: so a crash between the two only repeats idempotent work.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

/* ---- verification windows (in memory; a restart opens a fresh window) ---- */

static struct window *window_get(struct server *srv, int64_t dep, int region, int create)
{
	for (size_t i = 0; i < srv->nwindows; i++)
		if (srv->windows[i].deployment == dep && srv->windows[i].region == region)
			return &srv->windows[i];
	if (!create)
		return NULL;
	struct window *w = realloc(srv->windows, (srv->nwindows + 1) * sizeof(*w));
	if (!w)
		return NULL;
	srv->windows = w;
	w = &srv->windows[srv->nwindows++];
	memset(w, 0, sizeof(*w));
	w->deployment = dep;
	w->region = region;
	w->step = -1;
	return w;
}

static void windows_forget(struct server *srv, int64_t dep)
{
	for (size_t i = 0; i < srv->nwindows;) {
		if (srv->windows[i].deployment == dep) {
			json_decref(srv->windows[i].evidence);
			srv->windows[i] = srv->windows[--srv->nwindows];
		} else {
			i++;
		}
	}
}

const struct window *executor_window(struct server *srv, int64_t deployment, int region)
{
	return window_get(srv, deployment, region, 0);
}

/* Reads one version's cumulative counters from the proxy snapshot. Returns 0 if absent. */
static int read_counts(const json_t *metrics, const char *route, const char *version,
		       struct version_window *w)
{
	memset(w, 0, sizeof(*w));
	const json_t *rt = json_object_get(json_object_get(metrics, "routes"), route);
	const json_t *v = json_object_get(json_object_get(rt, "versions"), version);
	if (!v)
		return 0;
	const json_t *resp = json_object_get(v, "responses");
	w->requests = (uint64_t)json_integer_value(json_object_get(v, "requests"));
	w->errors = (uint64_t)(json_integer_value(json_object_get(resp, "5xx")) +
			       json_integer_value(json_object_get(v, "upstream_errors")));
	const json_t *lat = json_object_get(v, "latency_us");
	const json_t *bounds = json_object_get(lat, "bounds"), *counts = json_object_get(lat, "counts");
	size_t n = json_array_size(bounds);
	if (n > ANALYSIS_MAX_BUCKETS)
		n = ANALYSIS_MAX_BUCKETS;
	w->nbuckets = (int)n;
	for (size_t i = 0; i < n; i++) {
		double b = json_number_value(json_array_get(bounds, i));
		w->bounds_ms[i] = b < 0 ? INFINITY : b / 1000.0;
		w->counts[i] = (uint64_t)json_integer_value(json_array_get(counts, i));
	}
	return 1;
}

static void window_diff(struct version_window *now, const struct version_window *base)
{
	now->requests = now->requests >= base->requests ? now->requests - base->requests : 0;
	now->errors = now->errors >= base->errors ? now->errors - base->errors : 0;
	for (int i = 0; i < now->nbuckets && i < base->nbuckets; i++)
		now->counts[i] = now->counts[i] >= base->counts[i] ? now->counts[i] - base->counts[i] : 0;
}

static void refresh_metrics(struct server *srv)
{
	uint64_t now = loop_now(srv->loop);
	if (srv->metrics && now - srv->metrics_at < SERVER_TICK_MS / 2)
		return;
	json_t *m = NULL;
	struct err e = {""};
	if (router_metrics(srv->router, &m, &e)) {
		log_warn("metrics: %s", e.msg);
		return;
	}
	json_decref(srv->metrics);
	srv->metrics = m;
	srv->metrics_at = now;
}

static enum pl_verdict verify(struct server *srv, int64_t dep, const json_t *svc, const char *env,
			      const struct pl_state *st, int ri, char *msg, size_t msglen)
{
	const struct pl_region *r = &st->regions[ri];
	struct window *w = window_get(srv, dep, ri, 1);
	if (!w)
		return PL_VERDICT_NONE;
	refresh_metrics(srv);
	if (!srv->metrics) {
		snprintf(msg, msglen, "no metrics from the proxy yet");
		return PL_VERDICT_NONE;
	}
	char route[256];
	reconcile_route_name(route, sizeof(route), json_string_value(json_object_get(svc, "name")),
			     env, r->name);
	struct version_window cur_new, cur_old;
	read_counts(srv->metrics, route, st->version, &cur_new);
	int has_old = r->stable[0] && read_counts(srv->metrics, route, r->stable, &cur_old);
	if (!has_old)
		memset(&cur_old, 0, sizeof(cur_old));
	if (w->step != r->step || !w->has_base) {
		/* a new window: everything before this moment belongs to another step */
		w->step = r->step;
		w->has_base = 1;
		w->base_new = cur_new;
		w->base_old = cur_old;
		snprintf(w->verdict, sizeof(w->verdict), "window opened");
		snprintf(msg, msglen, "window opened");
		return PL_VERDICT_NONE;
	}
	window_diff(&cur_new, &w->base_new);
	window_diff(&cur_old, &w->base_old);
	const json_t *an = json_object_get(svc, "analysis");
	struct analysis_limits lim = {
		.min_requests = (uint64_t)json_integer_value(json_object_get(an, "min_requests")),
		.max_error_rate = json_number_value(json_object_get(an, "max_error_rate")),
		.max_error_rate_increase = json_number_value(json_object_get(an, "max_error_rate_increase")),
		.max_p99_ms = (double)json_integer_value(json_object_get(an, "max_p99_latency_ms")),
	};
	json_t *evidence = NULL;
	enum pl_verdict v = analysis_threshold(&lim, &cur_new, has_old ? &cur_old : NULL, msg, msglen,
					       &evidence);
	snprintf(w->verdict, sizeof(w->verdict), "%s", msg);
	if (evidence) {
		json_object_set_new(evidence, "region", json_string(r->name));
		json_object_set_new(evidence, "step_percent",
				    json_integer(r->stable[0] ? st->cfg.steps[r->step] : 100));
		json_decref(w->evidence);
		w->evidence = evidence;
	}
	return v;
}

static void observe(struct server *srv, int64_t dep, const json_t *svc, const char *env,
		    const struct pl_state *st, int ri, struct pl_obs *o)
{
	const struct pl_region *r = &st->regions[ri];
	const char *name = json_string_value(json_object_get(svc, "name"));
	memset(o, 0, sizeof(*o));
	o->new_wanted = (int)json_integer_value(json_object_get(svc, "instances"));
	struct instance_info *in = NULL;
	size_t n = 0;
	if (runtime_list(srv->rt, name, env, r->name, NULL, &in, &n))
		return;
	int new_alive = 0, old_alive = 0;
	for (size_t i = 0; i < n; i++) {
		int gone = in[i].state == INSTANCE_STOPPED;
		if (!strcmp(in[i].version, st->version)) {
			if (!gone)
				new_alive++;
			if (in[i].state == INSTANCE_HEALTHY)
				o->new_healthy++;
			/* Two restarts without ever serving mean the release is broken, not unlucky. */
			if (!gone && in[i].state != INSTANCE_HEALTHY && in[i].restarts >= 2 && !o->new_broken) {
				o->new_broken = 1;
				snprintf(o->broken_reason, sizeof(o->broken_reason), "%.40s restarted %u times: %.100s",
					 in[i].id, in[i].restarts, in[i].reason);
			}
		} else if (r->stable[0] && !strcmp(in[i].version, r->stable) && !gone) {
			old_alive++;
		}
	}
	free(in);
	o->old_stopped = old_alive == 0;
	o->new_stopped = new_alive == 0;
	if (r->state == R_STEP)
		o->verdict = verify(srv, dep, svc, env, st, ri, o->verdict_msg, sizeof(o->verdict_msg));
}

/* Persists (state, actions) in one transaction. */
static int persist(struct server *srv, int64_t id, const char *service, const char *env,
		   const struct pl_state *st, const struct pl_actions *acts)
{
	struct err e = {""};
	json_t *js = pipeline_to_json(st);
	const char *phase = pipeline_phase_name(st->phase);
	int rc = store_begin(srv->store, &e);
	if (!rc)
		rc = store_update_deployment(srv->store, id, js, phase, st->reason[0] ? st->reason : NULL, &e);
	for (int i = 0; !rc && i < acts->n; i++) {
		const struct pl_action *a = &acts->a[i];
		const char *region = a->region >= 0 ? st->regions[a->region].name : NULL;
		if (a->type == PL_ACT_SET_STABLE) {
			rc = store_set_stable(srv->store, service, env, region, st->version, id, &e);
		} else if (a->type == PL_ACT_RECORD) {
			const struct window *w = a->region >= 0 ? window_get(srv, id, a->region, 0) : NULL;
			const json_t *evidence = NULL;
			if (w && (!strcmp(a->kind, "passed") || !strcmp(a->kind, "aborted")))
				evidence = w->evidence;
			rc = store_add_event(srv->store, id, a->kind, region, a->message, evidence, &e);
			log_info("deployment %lld %s %s%s%s: %s", (long long)id, service, a->kind,
				 region ? " in " : "", region ? region : "", a->message);
		}
	}
	if (!rc)
		rc = store_commit(srv->store, &e);
	else
		store_rollback(srv->store);
	json_decref(js);
	if (rc)
		log_error("deployment %lld: could not persist: %s", (long long)id, e.msg);
	return rc;
}

static void after_actions(struct server *srv, int64_t id, const struct pl_actions *acts)
{
	for (int i = 0; i < acts->n; i++)
		if (acts->a[i].type == PL_ACT_RESET_WINDOW) {
			struct window *w = window_get(srv, id, acts->a[i].region, 0);
			if (w)
				w->has_base = 0;
		}
}

static void drive(struct server *srv, json_t *dep)
{
	int64_t id = json_integer_value(json_object_get(dep, "id"));
	const char *service = json_string_value(json_object_get(dep, "service"));
	const char *env = json_string_value(json_object_get(dep, "env"));
	struct pl_state st;
	if (pipeline_from_json(json_object_get(dep, "state"), &st)) {
		log_error("deployment %lld: unreadable state; marking failed", (long long)id);
		store_update_deployment(srv->store, id, json_object_get(dep, "state"), "failed",
					"unreadable pipeline state", NULL);
		return;
	}
	json_t *svc = server_service(srv, service);
	if (!svc)
		return;
	int64_t now = store_now_ms();
	struct pl_actions acts;
	int started = 0;
	for (int i = 0; i < st.nregions; i++)
		if (st.regions[i].state != R_PENDING)
			started = 1;
	if (!started && !st.aborted) {
		struct pl_event ev = {.type = PL_EV_START, .now = now};
		if (pipeline_step(&st, &ev, &acts) && persist(srv, id, service, env, &st, &acts) == 0)
			after_actions(srv, id, &acts);
		json_decref(svc);
		return; /* let the reconciler start instances before observing */
	}
	for (int i = 0; i < st.nregions && !pipeline_done(&st); i++) {
		enum pl_rstate rs = st.regions[i].state;
		if (rs != R_STARTING && rs != R_STEP && rs != R_PROMOTING && rs != R_ABORTING)
			continue;
		struct pl_event ev = {.type = PL_EV_OBSERVE, .now = now, .region = i};
		observe(srv, id, svc, env, &st, i, &ev.obs);
		struct pl_state before = st;
		if (pipeline_step(&st, &ev, &acts)) {
			if (persist(srv, id, service, env, &st, &acts)) {
				st = before;
				break;
			}
			after_actions(srv, id, &acts);
		}
	}
	if (pipeline_done(&st)) {
		log_info("deployment %lld of %s %s ended: %s%s%s", (long long)id, service, st.version,
			 pipeline_phase_name(st.phase), st.reason[0] ? ": " : "", st.reason);
	}
	json_decref(svc);
}

void executor_tick(struct server *srv)
{
	json_t *active = NULL;
	struct err e = {""};
	if (store_active_deployments(srv->store, &active, &e)) {
		log_error("executor: %s", e.msg);
		return;
	}
	/* One pipeline per service and environment at a time: the oldest active one runs. */
	json_t *seen = json_object();
	size_t i;
	json_t *dep;
	json_array_foreach(active, i, dep) {
		char key[300];
		snprintf(key, sizeof(key), "%s/%s", json_string_value(json_object_get(dep, "service")),
			 json_string_value(json_object_get(dep, "env")));
		if (json_object_get(seen, key))
			continue;
		json_object_set_new(seen, key, json_true());
		drive(srv, dep);
	}
	json_decref(seen);
	/* forget the windows of deployments that ended */
	for (size_t w = 0; w < srv->nwindows;) {
		int live = 0;
		json_array_foreach(active, i, dep)
			if (json_integer_value(json_object_get(dep, "id")) == srv->windows[w].deployment)
				live = 1;
		if (live) {
			w++;
			continue;
		}
		windows_forget(srv, srv->windows[w].deployment);
	}
	json_decref(active);
	reconcile_all(srv);
}

int64_t executor_create(struct server *srv, const char *service, const char *env,
			const char *version, enum pl_kind kind, int force, json_t *gate_report,
			struct err *e)
{
	json_t *svc = server_service(srv, service), *envm = server_environment(srv, env);
	int64_t id = -1;
	if (!svc) {
		err_set(e, "service '%s' is not known: apply its manifest first", service);
		goto out;
	}
	if (!envm) {
		err_set(e, "environment '%s' is not known: apply its manifest first", env);
		goto out;
	}
	json_t *rel = NULL;
	if (store_get_release(srv->store, service, version, &rel, e) != 0) {
		if (!e || !e->msg[0] || strstr(e->msg, "store:") == NULL)
			err_set(e, "release %s %s is not known: push it first with 'sluice release push'",
				service, version);
		goto out;
	}
	json_decref(rel);
	json_t *active = NULL;
	if (store_active_deployments(srv->store, &active, e))
		goto out;
	size_t i;
	json_t *d;
	json_array_foreach(active, i, d)
		if (!strcmp(json_string_value(json_object_get(d, "service")), service) &&
		    !strcmp(json_string_value(json_object_get(d, "env")), env) && kind == PL_DEPLOY) {
			err_set(e, "deployment %lld of %s %s is still running in %s; wait for it or "
				   "'sluice rollback %s'",
				(long long)json_integer_value(json_object_get(d, "id")), service,
				json_string_value(json_object_get(d, "version")), env, service);
			json_decref(active);
			goto out;
		}
	json_decref(active);

	const json_t *strat = json_object_get(svc, "strategy");
	struct pl_config cfg = {
		.step_duration_ms = json_integer_value(json_object_get(strat, "step_duration_ms")),
		.max_step_duration_ms = json_integer_value(json_object_get(strat, "max_step_duration_ms")),
		.start_timeout_ms = 120000,
	};
	json_t *v;
	json_array_foreach(json_object_get(strat, "steps"), i, v)
		if (cfg.nsteps < PL_MAX_STEPS)
			cfg.steps[cfg.nsteps++] = (int)json_integer_value(v);
	if (kind == PL_ROLLBACK) {
		cfg.steps[0] = 100;
		cfg.nsteps = 1;
	}
	const json_t *regions = json_object_get(envm, "regions");
	int nr = (int)json_array_size(regions);
	if (nr > PL_MAX_REGIONS) {
		err_set(e, "environment '%s' has %d regions; at most %d are supported", env, nr, PL_MAX_REGIONS);
		goto out;
	}
	const char *names[PL_MAX_REGIONS];
	char stables[PL_MAX_REGIONS][PL_NAME_MAX];
	const char *stp[PL_MAX_REGIONS];
	json_array_foreach(regions, i, v) {
		names[i] = json_string_value(json_object_get(v, "name"));
		stables[i][0] = '\0';
		if (store_get_stable(srv->store, service, env, names[i], stables[i], PL_NAME_MAX, e) < 0)
			goto out;
		stp[i] = stables[i];
	}
	struct pl_state st;
	if (pipeline_init(&st, kind, version, &cfg, names, stp, nr)) {
		err_set(e, "invalid pipeline for %s: check strategy.steps", service);
		goto out;
	}
	json_t *js = pipeline_to_json(&st);
	if (store_begin(srv->store, e) == 0) {
		int rc = store_create_deployment(srv->store, service, env, version,
						 pipeline_kind_name(kind), js, &id, e);
		if (!rc && force)
			rc = store_add_event(srv->store, id, "gate_overridden", NULL,
					     "compatibility gate overridden with --force", gate_report, e);
		else if (!rc && gate_report)
			rc = store_add_event(srv->store, id, "gate_passed", NULL,
					     "compatible with every live version", gate_report, e);
		if (!rc)
			rc = store_commit(srv->store, e);
		else
			store_rollback(srv->store);
		if (rc)
			id = -1;
	}
	json_decref(js);
out:
	json_decref(svc);
	json_decref(envm);
	return id;
}

int executor_abort(struct server *srv, int64_t id, const char *reason, int preempt, struct err *e)
{
	json_t *dep = NULL;
	int rc = store_get_deployment(srv->store, id, &dep, e);
	if (rc)
		return rc == STORE_NOTFOUND ? err_set(e, "deployment %lld not found", (long long)id) : -1;
	struct pl_state st;
	if (pipeline_from_json(json_object_get(dep, "state"), &st)) {
		json_decref(dep);
		return err_set(e, "deployment %lld has an unreadable state", (long long)id);
	}
	struct pl_event ev = {.type = PL_EV_ABORT, .now = store_now_ms(), .preempt = preempt};
	snprintf(ev.reason, sizeof(ev.reason), "%s", reason);
	struct pl_actions acts;
	rc = 0;
	if (pipeline_step(&st, &ev, &acts))
		rc = persist(srv, id, json_string_value(json_object_get(dep, "service")),
			     json_string_value(json_object_get(dep, "env")), &st, &acts);
	json_decref(dep);
	return rc ? err_set(e, "could not record the abort") : 0;
}
