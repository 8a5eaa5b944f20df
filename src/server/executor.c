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
#include "server/verify.h"

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
	if (r->state == R_STEP || r->state == R_BAKING)
		o->verdict = verify_region(srv, dep, svc, env, st, ri, o->verdict_msg, sizeof(o->verdict_msg));
}

static int64_t create_in_tx(struct server *srv, const char *service, const char *env,
			    const char *version, enum pl_kind kind, struct err *e);

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
		} else if (a->type == PL_ACT_REVERT) {
			/* same transaction: the rollback exists as soon as the revert is recorded */
			rc = create_in_tx(srv, service, env, a->message, PL_ROLLBACK, &e) < 0 ? -1 : 0;
		} else if (a->type == PL_ACT_RECORD) {
			const struct window *w = a->region >= 0 ? verify_window(srv, id, a->region) : NULL;
			const json_t *evidence = NULL;
			if (w && (!strcmp(a->kind, "passed") || !strcmp(a->kind, "aborted") ||
				  !strcmp(a->kind, "baked") || !strcmp(a->kind, "reverted")))
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
			verify_reset(srv, id, acts->a[i].region);
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
		verify_forget(srv, srv->windows[w].deployment);
	}
	json_decref(active);
	reconcile_all(srv);
}

/* Builds the initial pipeline state of a deployment from the manifests and the stable
 * releases. Returns 0, or -1 with e. */
static int initial_state(struct server *srv, const json_t *svc, const json_t *envm,
			 const char *service, const char *env, const char *version,
			 enum pl_kind kind, struct pl_state *st, struct err *e)
{
	const json_t *strat = json_object_get(svc, "strategy");
	struct pl_config cfg = {
		.step_duration_ms = json_integer_value(json_object_get(strat, "step_duration_ms")),
		.max_step_duration_ms = json_integer_value(json_object_get(strat, "max_step_duration_ms")),
		.start_timeout_ms = 120000,
		.bake_ms = json_integer_value(json_object_get(svc, "bake_ms")),
	};
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(strat, "steps"), i, v)
		if (cfg.nsteps < PL_MAX_STEPS)
			cfg.steps[cfg.nsteps++] = (int)json_integer_value(v);
	if (kind == PL_ROLLBACK) {
		cfg.steps[0] = 100;
		cfg.nsteps = 1;
		cfg.bake_ms = 0;
	}
	const json_t *regions = json_object_get(envm, "regions");
	int nr = (int)json_array_size(regions);
	if (nr > PL_MAX_REGIONS)
		return err_set(e, "environment '%s' has %d regions; at most %d are supported", env, nr,
			       PL_MAX_REGIONS);
	const char *names[PL_MAX_REGIONS];
	char stables[PL_MAX_REGIONS][PL_NAME_MAX];
	const char *stp[PL_MAX_REGIONS];
	json_array_foreach(regions, i, v) {
		names[i] = json_string_value(json_object_get(v, "name"));
		stables[i][0] = '\0';
		if (store_get_stable(srv->store, service, env, names[i], stables[i], PL_NAME_MAX, e) < 0)
			return -1;
		stp[i] = stables[i];
	}
	if (pipeline_init(st, kind, version, &cfg, names, stp, nr))
		return err_set(e, "invalid pipeline for %s: check strategy.steps", service);
	return 0;
}

/* Creates a deployment inside the caller's transaction. Returns its id or -1 with e. */
static int64_t create_in_tx(struct server *srv, const char *service, const char *env,
			    const char *version, enum pl_kind kind, struct err *e)
{
	json_t *svc = server_service(srv, service), *envm = server_environment(srv, env);
	int64_t id = -1;
	struct pl_state st;
	if (!svc)
		err_set(e, "service '%s' is not known: apply its manifest first", service);
	else if (!envm)
		err_set(e, "environment '%s' is not known: apply its manifest first", env);
	else if (initial_state(srv, svc, envm, service, env, version, kind, &st, e) == 0) {
		json_t *js = pipeline_to_json(&st);
		if (store_create_deployment(srv->store, service, env, version, pipeline_kind_name(kind),
					    js, &id, e))
			id = -1;
		json_decref(js);
	}
	json_decref(svc);
	json_decref(envm);
	return id;
}

int64_t executor_create(struct server *srv, const char *service, const char *env,
			const char *version, enum pl_kind kind, int force, json_t *gate_report,
			struct err *e)
{
	json_t *rel = NULL;
	int rc = store_get_release(srv->store, service, version, &rel, e);
	json_decref(rel);
	if (rc < 0)
		return -1;
	if (rc == STORE_NOTFOUND) {
		err_set(e, "release %s %s is not known: push it first with 'sluice release push'",
			service, version);
		return -1;
	}
	json_t *active = NULL;
	if (store_active_deployments(srv->store, &active, e))
		return -1;
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
			return -1;
		}
	json_decref(active);
	if (store_begin(srv->store, e))
		return -1;
	int64_t id = create_in_tx(srv, service, env, version, kind, e);
	rc = id < 0 ? -1 : 0;
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
	return rc ? -1 : id;
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
