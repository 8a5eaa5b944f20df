/*
 * executor: drives every active deployment's pipeline.
 *
 * One pipeline per service at a time: each tick, per service, the deployment that has started
 * runs; when none has, a rollback or hotfix goes first, else the oldest (a queue, which lives
 * in the store and so survives restarts). For the running one: observe every region the
 * pipeline controls (instances from the runtime; by state, the smoke checks, the verification
 * window from the proxy's metrics, the pre-production stage's traffic result), feed the
 * observation to the pure state machine, and when the state changes persist the new state, its
 * event records, a new stable release or a revert's rollback in ONE transaction. Acting is left
 * to the reconciler, which reads the persisted state: so a crash between the two only repeats
 * idempotent work. The stage's traffic generator is a child process (`sluice load`) started by
 * the executor and identified by its result file, so a restarted server finds its result.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/catalog.h"
#include "util/name.h"
#include "server/executor.h"
#include "server/reconcile.h"
#include "server/smoke.h"
#include "server/verify.h"
#include "util/fault.h"
#include "util/spawn.h"

struct executor {
	loop *loop;
	store *store;
	runtimes *runtimes;
	router *router;
	verifier *verifier;
	reconciler *reconciler;
	fetcher *fetch;
	catalog *cat;     /* the manifests: the server's, or own_cat */
	catalog *own_cat; /* when none was given */
	replica *replica; /* NULL: this server owns every service */
	char data_dir[PATH_MAX];
	struct smoke_job *smoke_jobs; /* smoke checks in flight */
	int64_t last_store_log;       /* an unreachable store is logged every 5 s, not every tick */
	struct crash_hist *crashes;   /* restarts seen of the instances observed */
};

static int64_t create_in_tx(executor *ex, const char *service, const char *env,
			    const char *version, enum pl_kind kind, struct err *e);

/* ---- the pre-production stage's traffic: `sluice load` as a child ---- */

/* A stage entry's files are named after the region and the moment it entered SIDE_BY_SIDE, so
 * a retried stage never reads an earlier attempt's result: DATA/traffic/DEP-REGION-SINCE.json
 * (the result, written by the generator when it ends) and .pid (the generator's pid). */
static void traffic_path(executor *ex, int64_t dep, int region, int64_t since, const char *ext, char *buf,
			 size_t len)
{
	snprintf(buf, len, "%s/traffic/%lld-%d-%lld.%s", ex->data_dir, (long long)dep, region, (long long)since,
		 ext);
}

/* Whether the generator of this stage entry runs: its pid file names a live process whose
 * command line holds the result file's path (a recycled pid runs something else). */
static int traffic_running(executor *ex, int64_t dep, int ri, int64_t since)
{
	char pidf[PATH_MAX + 64], result[PATH_MAX + 64], proc[64], cmd[4096];
	traffic_path(ex, dep, ri, since, "pid", pidf, sizeof(pidf));
	traffic_path(ex, dep, ri, since, "json", result, sizeof(result));
	FILE *f = fopen(pidf, "r");
	long pid = 0;
	if (!f)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	if (pid <= 0)
		return 0;
	snprintf(proc, sizeof(proc), "/proc/%ld/cmdline", pid);
	f = fopen(proc, "r");
	if (!f)
		return 0;
	size_t n = fread(cmd, 1, sizeof(cmd) - 1, f);
	fclose(f);
	size_t rl = strlen(result);
	for (size_t i = 0; i + rl <= n; i++) /* the arguments are NUL-separated */
		if (!memcmp(cmd + i, result, rl))
			return 1;
	return 0;
}

/* Starts the generator (detached, in its own session) for duration_ms. */
static void start_traffic(executor *ex, int64_t dep, const struct service_manifest *svc,
			  const struct pl_state *st, int ri, int64_t duration_ms)
{
	const struct pl_region *r = &st->regions[ri];
	char result[PATH_MAX + 64], pidf[PATH_MAX + 64], dir[PATH_MAX + 16], exe[PATH_MAX];
	traffic_path(ex, dep, ri, r->since, "json", result, sizeof(result));
	traffic_path(ex, dep, ri, r->since, "pid", pidf, sizeof(pidf));
	snprintf(dir, sizeof(dir), "%s/traffic", ex->data_dir);
	mkdir(dir, 0755);
	unlink(result);
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return;
	exe[n] = '\0';
	const char *service = svc->name;
	struct err e;
	const struct env_manifest *envm = NULL;
	int port = catalog_listen_port(ex->cat, r->env, r->name, service, &e);
	if (port < 0 || catalog_environment(ex->cat, r->env, &envm, &e) < 0) {
		/* without its port and rate it cannot run; the stage fails for want of a result */
		log_error("deployment %lld: stage traffic not started: %s", (long long)dep, e.msg);
		return;
	}
	int rate = envm ? envm->stage.traffic_rate : 0;
	catalog_release_environment(ex->cat, envm);
	/* The route must carry the new version before the first generated request: for a first
	 * release it is created by this very transition (the reconciler would send it after this
	 * tick, and the generator's first connections would be refused). */
	reconcile_all(ex->reconciler);
	const char *path = svc->nsmoke ? svc->smoke[0].path : "/";
	char url[512], rates[32], dur[32];
	char rn[256], ep[ROUTER_ENDPOINT_MAX];
	router_route_name(rn, sizeof(rn), service, r->env, r->name);
	if (router_route_endpoint(ex->router, rn, port, ep, sizeof(ep))) {
		log_error("deployment %lld: stage traffic not started: no endpoint for route %s port %d",
			  (long long)dep, rn, port);
		return;
	}
	snprintf(url, sizeof(url), "http://%s%s", ep, path ? path : "/");
	snprintf(rates, sizeof(rates), "%d", rate > 0 ? rate : 50);
	snprintf(dur, sizeof(dur), "%.3f", (double)duration_ms / 1000.0);
	char host[NAME_HOST_MAX + 1];
	char *argv[] = {exe, "load", "--url", url, "--rate", rates, "--duration", dur, "--conns", "4",
			"--json", result, NULL, NULL, NULL};
	if (catalog_route_host(ex->cat, r->env, r->name, service, host, sizeof(host), &e) > 0) {
		/* routed by Host on a shared listener: the generated requests name the service */
		argv[12] = "--host";
		argv[13] = host;
	}
	struct spawn_opts so = {.argv = argv, .out_fd = -1, .detach = 1, .pid_file = pidf};
	if (spawn_start(&so, NULL, &e) != 0) {
		log_warn("deployment %lld: could not start the stage's traffic: %s", (long long)dep, e.msg);
		return; /* no result and no generator: the next observation starts it again */
	}
	log_info("deployment %lld: stage traffic to %s at %s/s for %s s", (long long)dep, url, rates, dur);
}

/* The least a generator started again runs: enough requests for a verdict. */
#define TRAFFIC_RESUME_MIN_MS 2000

/* The stage's verdict: verification as the window goes, then the generator's result. The
 * generator is derived from the persisted state like every other action: a stage entry with
 * neither a result nor a running generator (the server died between the commit and the start,
 * or the generator died) gets one now, for what remains of the stage's observed time. */
static enum pl_verdict stage_verdict(executor *ex, int64_t dep, const struct service_manifest *svc,
				     const struct pl_state *st, int ri, int64_t now, char *msg, size_t msglen)
{
	const struct pl_region *r = &st->regions[ri];
	enum pl_verdict v = verify_region(ex->verifier, dep, svc, r->env, st, ri, msg, msglen);
	if (v == PL_VERDICT_FAIL)
		return v;
	int64_t age = now - r->since;
	char result[PATH_MAX + 64];
	traffic_path(ex, dep, ri, r->since, "json", result, sizeof(result));
	json_t *j = json_load_file(result, 0, NULL);
	if (!j) {
		if (!traffic_running(ex, dep, ri, r->since)) {
			int64_t left = st->cfg.side_by_side_ms - age;
			if (left < TRAFFIC_RESUME_MIN_MS)
				left = TRAFFIC_RESUME_MIN_MS;
			log_info("deployment %lld: no traffic generator for the stage in %s: starting one for %lld ms",
				 (long long)dep, r->name, (long long)left);
			start_traffic(ex, dep, svc, st, ri, left);
		}
		snprintf(msg, msglen, "waiting for the stage's traffic result");
		return PL_VERDICT_NONE;
	}
	if (age < st->cfg.side_by_side_ms) {
		json_decref(j);
		return PL_VERDICT_NONE;
	}
	json_int_t reqs = json_integer_value(json_object_get(j, "requests"));
	json_int_t failed = json_integer_value(json_object_get(j, "failed"));
	json_int_t s5xx = json_integer_value(json_object_get(j, "5xx"));
	json_int_t conn = json_integer_value(json_object_get(j, "connection_errors"));
	json_decref(j);
	if (reqs == 0 || failed > 0) {
		snprintf(msg, msglen,
			 "%lld of %lld generated requests failed (5xx %lld, connection %lld) while old and "
			 "new served side by side",
			 (long long)failed, (long long)reqs, (long long)s5xx, (long long)conn);
		return PL_VERDICT_FAIL;
	}
	snprintf(msg, msglen, "%lld generated requests, 0 failed, old and new side by side", (long long)reqs);
	return PL_VERDICT_PASS;
}

/* ---- crash loops ---- */

/* An instance that served and crashed is restarted, not blamed (its failed requests count in
 * the verification like any other); one restarted strategy.crash_loop_restarts times within
 * strategy.crash_loop_window crash-loops and fails the region like one that never gets
 * healthy. The restarts are timed as the executor sees the runtime's counter grow (in memory:
 * a restarted server starts every window again, which only delays the verdict). */
#define CRASH_MAX 64

struct crash_hist {
	struct crash_hist *next;
	char id[RUNTIME_ID_MAX];
	unsigned restarts; /* the runtime's counter when last seen */
	int64_t at[CRASH_MAX]; /* when each restart was seen, oldest first */
	int n;
	int seen;
};

/* Records instance `in`'s restarts at `now`; returns how many fall within window_ms. */
static int crash_count(executor *ex, const struct instance_info *in, int64_t now, int64_t window_ms)
{
	struct crash_hist *h = ex->crashes;
	while (h && strcmp(h->id, in->id))
		h = h->next;
	if (!h) {
		if (!(h = calloc(1, sizeof(*h))))
			return 0;
		snprintf(h->id, sizeof(h->id), "%s", in->id);
		h->restarts = in->restarts; /* restarts before we looked are not timed */
		h->next = ex->crashes;
		ex->crashes = h;
	}
	h->seen = 1;
	for (; h->restarts < in->restarts; h->restarts++) {
		if (h->n == CRASH_MAX) {
			memmove(h->at, h->at + 1, (CRASH_MAX - 1) * sizeof(h->at[0]));
			h->n--;
		}
		h->at[h->n++] = now;
	}
	h->restarts = in->restarts; /* a counter that went back: another process */
	int k = 0;
	for (int i = 0; i < h->n; i++)
		k += now - h->at[i] <= window_ms;
	return k;
}

/* Forgets the instances no tick looked at since the last call (all of them with all = 1). */
static void crash_sweep(executor *ex, int all)
{
	for (struct crash_hist **p = &ex->crashes; *p;) {
		struct crash_hist *h = *p;
		if (h->seen && !all) {
			h->seen = 0;
			p = &h->next;
			continue;
		}
		*p = h->next;
		free(h);
	}
}

/* ---- observation ---- */

/* Smoke checks run asynchronously: a job per region and state entry (a retry is another job),
 * one run per healthy new instance; the verdict is given on the tick after the last run ends.
 * A job that no tick looks at any more (the region moved on, the deployment ended) is
 * cancelled at the end of the tick. */
struct smoke_slot {
	struct smoke_job *job;
	smoke_run *run; /* NULL once finished */
	char id[RUNTIME_ID_MAX]; /* the instance */
};

struct smoke_job {
	struct smoke_job *next;
	int64_t dep;
	int region;
	int64_t since;
	int seen;
	int pending, tried, ok;
	char first_bad[200];
	size_t nslots;
	struct smoke_slot slots[];
};

static void smoke_job_free(struct smoke_job *j)
{
	for (size_t i = 0; i < j->nslots; i++)
		smoke_cancel(j->slots[i].run);
	free(j);
}

static void smoke_done(void *arg, const json_t *evidence, int ok)
{
	struct smoke_slot *sl = arg;
	struct smoke_job *j = sl->job;
	sl->run = NULL;
	j->pending--;
	j->tried++;
	j->ok &= ok;
	size_t k;
	const json_t *c;
	json_array_foreach(evidence, k, c) {
		if (json_is_true(json_object_get(c, "ok")) || j->first_bad[0])
			continue;
		const char *err = json_string_value(json_object_get(c, "error"));
		snprintf(j->first_bad, sizeof(j->first_bad), "%.60s: %.130s", sl->id,
			 err ? err : "unexpected answer");
	}
}

/* Starts a job for the healthy instances of `version`; NULL when none is healthy yet. */
static struct smoke_job *smoke_job_start(executor *ex, const struct service_manifest *svc, int64_t dep, int ri,
					 int64_t since, const struct instance_info *in, size_t n,
					 const char *version)
{
	size_t healthy = 0;
	for (size_t i = 0; i < n; i++)
		healthy += !strcmp(in[i].version, version) && in[i].state == INSTANCE_HEALTHY;
	if (!healthy)
		return NULL;
	struct smoke_job *j = calloc(1, sizeof(*j) + healthy * sizeof(j->slots[0]));
	if (!j)
		return NULL;
	*j = (struct smoke_job){.dep = dep, .region = ri, .since = since, .ok = 1};
	for (size_t i = 0; i < n; i++) {
		if (strcmp(in[i].version, version) || in[i].state != INSTANCE_HEALTHY)
			continue;
		struct smoke_slot *sl = &j->slots[j->nslots++];
		sl->job = j;
		snprintf(sl->id, sizeof(sl->id), "%s", in[i].id);
		int rc = smoke_start(ex->fetch, svc->smoke, svc->nsmoke, in[i].endpoint, smoke_done, sl,
				     &sl->run);
		if (rc < 0) {
			smoke_job_free(j);
			return NULL; /* out of memory: try again on the next tick */
		}
		if (rc == 0)
			j->pending++;
		else
			j->tried++; /* no check at all: passed */
	}
	j->next = ex->smoke_jobs;
	ex->smoke_jobs = j;
	return j;
}

static void smoke(executor *ex, int64_t dep, int ri, const struct pl_region *r,
		  const struct service_manifest *svc, const struct instance_info *in, size_t n, const char *version,
		  struct pl_obs *o)
{
	struct smoke_job *j = ex->smoke_jobs;
	while (j && (j->dep != dep || j->region != ri || j->since != r->since))
		j = j->next;
	if (!j && !(j = smoke_job_start(ex, svc, dep, ri, r->since, in, n, version)))
		return; /* nothing healthy to check yet */
	j->seen = 1;
	size_t nchecks = svc->nsmoke;
	if (j->pending) {
		snprintf(o->verdict_msg, sizeof(o->verdict_msg), "%zu smoke check(s) running on %zu instance(s)",
			 nchecks, j->nslots);
		return;
	}
	o->verdict = j->ok ? PL_VERDICT_PASS : PL_VERDICT_FAIL;
	if (j->ok)
		snprintf(o->verdict_msg, sizeof(o->verdict_msg), "%zu smoke check(s) passed on %d instance(s)",
			 nchecks, j->tried);
	else
		snprintf(o->verdict_msg, sizeof(o->verdict_msg), "%s", j->first_bad);
}

/* Cancels the smoke jobs no tick looked at since the last call (all of them with all = 1). */
static void smoke_sweep(executor *ex, int all)
{
	for (struct smoke_job **p = &ex->smoke_jobs; *p;) {
		struct smoke_job *j = *p;
		if (j->seen && !all) {
			j->seen = 0;
			p = &j->next;
			continue;
		}
		*p = j->next;
		smoke_job_free(j);
	}
}

executor *executor_new(const struct executor_deps *d)
{
	executor *ex = calloc(1, sizeof(*ex));
	if (!ex)
		return NULL;
	ex->loop = d->loop;
	ex->store = d->store;
	ex->runtimes = d->runtimes;
	ex->router = d->router;
	ex->verifier = d->verifier;
	ex->reconciler = d->reconciler;
	ex->fetch = d->fetch;
	ex->replica = d->replica;
	ex->cat = d->catalog;
	if (!ex->cat && !(ex->cat = ex->own_cat = catalog_new(d->store, d->runtimes))) {
		free(ex);
		return NULL;
	}
	snprintf(ex->data_dir, sizeof(ex->data_dir), "%s", d->data_dir);
	return ex;
}

void executor_free(executor *ex)
{
	if (!ex)
		return;
	smoke_sweep(ex, 1);
	crash_sweep(ex, 1);
	catalog_free(ex->own_cat);
	free(ex);
}

static void observe(executor *ex, int64_t dep, const struct service_manifest *svc, const struct pl_state *st,
		    int ri, int64_t now, struct pl_obs *o)
{
	const struct pl_region *r = &st->regions[ri];
	const char *name = svc->name;
	memset(o, 0, sizeof(*o));
	struct pl_desired d;
	pipeline_desired(st, ri, &d);
	for (int k = 0; k < d.nrun; k++) {
		if (!strcmp(d.run[k].version, st->version))
			o->new_wanted = d.run[k].count;
		if (d.run[k].version == d.baseline)
			o->base_wanted = d.run[k].count;
	}
	struct instance_info *in = NULL;
	size_t n = 0;
	runtime *rt = NULL;
	struct err e = {""};
	if (catalog_runtime(ex->cat, r->env, r->name, &rt, &e) || !rt ||
	    runtime_list(rt, name, r->env, r->name, NULL, &in, &n))
		return; /* nothing observed: the region waits (its start timeout still runs) */
	int new_alive = 0, old_alive = 0;
	for (size_t i = 0; i < n; i++) {
		int gone = in[i].state == INSTANCE_STOPPED || in[i].state == INSTANCE_STOPPING;
		if (!strcmp(in[i].version, st->version)) {
			if (in[i].state != INSTANCE_STOPPED)
				new_alive++;
			if (in[i].state == INSTANCE_HEALTHY)
				o->new_healthy++;
			/* Two restarts without serving in between mean the release is broken, not
			 * unlucky: an instance that served and was killed is restarted, not blamed. */
			if (!gone && in[i].state != INSTANCE_HEALTHY && in[i].failed_starts >= 2 && !o->new_broken) {
				o->new_broken = 1;
				snprintf(o->broken_reason, sizeof(o->broken_reason),
					 "%.40s restarted %u times without becoming healthy: %.100s", in[i].id,
					 in[i].failed_starts, in[i].reason);
			}
			int loops = crash_count(ex, &in[i], now, (int64_t)svc->strategy.crash_loop_window_ms);
			if (!gone && svc->strategy.crash_loop_restarts > 0 && loops >= svc->strategy.crash_loop_restarts &&
			    !o->new_broken) {
				o->new_broken = 1;
				snprintf(o->broken_reason, sizeof(o->broken_reason),
					 "%.40s crash-loops: restarted %d times within %llu ms (crash_loop_restarts %d, "
					 "crash_loop_window): %.60s",
					 in[i].id, loops, (unsigned long long)svc->strategy.crash_loop_window_ms,
					 svc->strategy.crash_loop_restarts, in[i].reason);
			}
		} else if (o->base_wanted && !strcmp(in[i].version, d.baseline)) {
			o->base_healthy += in[i].state == INSTANCE_HEALTHY;
		} else if (r->stable[0] && !strcmp(in[i].version, r->stable)) {
			if (in[i].state != INSTANCE_STOPPED)
				old_alive++;
			if (!gone)
				o->old_running++;
		}
	}
	o->old_stopped = old_alive == 0;
	o->new_stopped = new_alive == 0;
	/* The runtime refused to start them at all: that fails the attempt now, not after the
	 * start timeout; the region's retries (with backoff) try again. */
	const char *why = o->new_wanted ? reconcile_start_error(ex->reconciler, name, r->env, r->name, st->version) : NULL;
	if (why && !o->new_broken) {
		o->new_broken = 1;
		snprintf(o->broken_reason, sizeof(o->broken_reason), "could not start instances: %.150s", why);
	}
	switch (r->state) {
	case R_SMOKE:
		smoke(ex, dep, ri, r, svc, in, n, st->version, o);
		break;
	case R_STEP:
		if (st->cfg.strategy != PL_ROLLING) {
			o->verdict = verify_region(ex->verifier, dep, svc, r->env, st, ri, o->verdict_msg,
						   sizeof(o->verdict_msg));
			o->blind = verify_blind(ex->verifier);
		}
		break;
	case R_HOLD:
	case R_BAKING:
		o->verdict = verify_region(ex->verifier, dep, svc, r->env, st, ri, o->verdict_msg, sizeof(o->verdict_msg));
		o->blind = verify_blind(ex->verifier);
		break;
	case R_SIDE_BY_SIDE:
		o->verdict = stage_verdict(ex, dep, svc, st, ri, now, o->verdict_msg, sizeof(o->verdict_msg));
		o->blind = verify_blind(ex->verifier);
		break;
	default:
		break;
	}
	free(in);
}

/* Writes (state, actions) inside the caller's transaction, as a compare-and-set when `read`
 * is the stored state the change was made from (store_update_deployment_if): a deployment
 * that another writer changed since (an operator's abort or retry accepted by another
 * replica, the owner's tick) is left alone and STORE_CONFLICT returned, so no write of one
 * replica silently undoes another's; the caller reads it again. *written (may be NULL) is the
 * state written (the caller's to json_decref). */
static int persist_in_tx(executor *ex, int64_t id, const char *service, const char *env,
			 const struct pl_state *st, const struct pl_actions *acts, const json_t *read,
			 json_t **written, struct err *e)
{
	json_t *js = pipeline_to_json(st);
	int rc = read ? store_update_deployment_if(ex->store, id, read, js, pipeline_phase_name(st->phase),
						   st->reason[0] ? st->reason : NULL, e)
		      : store_update_deployment(ex->store, id, js, pipeline_phase_name(st->phase),
						st->reason[0] ? st->reason : NULL, e);
	if (written && !rc)
		*written = json_incref(js);
	json_decref(js);
	for (int i = 0; !rc && i < acts->n; i++) {
		const struct pl_action *a = &acts->a[i];
		const struct pl_region *r = a->region >= 0 ? &st->regions[a->region] : NULL;
		const char *region = r ? r->name : NULL;
		if (a->type == PL_ACT_SET_STABLE) {
			rc = store_set_stable(ex->store, service, r->env, region, st->version, id, e);
		} else if (a->type == PL_ACT_RESTORE_STABLE) {
			rc = store_set_stable(ex->store, service, r->env, region, a->message, id, e);
		} else if (a->type == PL_ACT_REVERT) {
			/* same transaction: the rollback exists as soon as the revert is recorded */
			rc = create_in_tx(ex, service, env, a->message, PL_ROLLBACK, e) < 0 ? -1 : 0;
		} else if (a->type == PL_ACT_RECORD) {
			const struct window *w = a->region >= 0 ? verify_window(ex->verifier, id, a->region) : NULL;
			const json_t *evidence = NULL;
			if (w && a->verdict)
				evidence = w->evidence;
			rc = store_add_event(ex->store, id, a->kind, region, a->message, evidence, e);
			log_info("deployment %lld %s %s%s%s: %s", (long long)id, service, a->kind,
				 region ? " in " : "", region ? region : "", a->message);
		}
	}
	if (rc && written) {
		json_decref(*written);
		*written = NULL;
	}
	return rc;
}

/* The one place a write of a pipeline is fenced: inside the caller's transaction, this
 * replica's tenure of the service's lease must still hold (store_lease_check). `always`: the
 * executor's own ticks (a service it does not own is refused); otherwise (a request from the
 * API) only a service this replica owns is fenced, others are written as they come. */
static int fence(executor *ex, const char *service, int always, struct err *e)
{
	if (!ex->replica || (!always && !replica_owns(ex->replica, service)))
		return 0;
	int rc = replica_fence(ex->replica, service, e);
	if (rc == STORE_FENCED)
		log_warn("%s: write refused (fenced): %s", service, e->msg);
	return rc ? -1 : 0;
}

/* Persists (state, actions) in one transaction, fenced, compared with *read (the stored state
 * the change was made from; replaced by the state written once it is committed). 0,
 * STORE_CONFLICT (another writer changed the deployment: nothing written) or -1. */
static int persist_fenced(executor *ex, int64_t id, const char *service, const char *env,
			  const struct pl_state *st, const struct pl_actions *acts, int always,
			  json_t **read)
{
	struct err e = {""};
	json_t *written = NULL;
	int rc = store_begin(ex->store, &e);
	if (!rc)
		rc = fence(ex, service, always, &e);
	if (!rc)
		rc = persist_in_tx(ex, id, service, env, st, acts, *read, &written, &e);
	if (!rc)
		rc = store_commit(ex->store, &e);
	else
		store_rollback(ex->store);
	if (!rc) {
		json_decref(*read);
		*read = written;
		return 0;
	}
	json_decref(written);
	if (rc == STORE_CONFLICT)
		log_info("deployment %lld: changed by another writer meanwhile (read again): %s",
			 (long long)id, e.msg);
	else
		log_error("deployment %lld: could not persist: %s", (long long)id, e.msg);
	return rc == STORE_CONFLICT ? STORE_CONFLICT : -1;
}

static int persist(executor *ex, int64_t id, const char *service, const char *env,
		   const struct pl_state *st, const struct pl_actions *acts, json_t **read)
{
	return persist_fenced(ex, id, service, env, st, acts, 1, read);
}

/* Effects that are not in the store: they follow the commit. */
static void after_actions(executor *ex, int64_t id, const struct service_manifest *svc,
			  const struct pl_state *st, const struct pl_actions *acts)
{
	for (int i = 0; i < acts->n; i++) {
		if (acts->a[i].type == PL_ACT_RESET_WINDOW)
			verify_reset(ex->verifier, id, acts->a[i].region);
		else if (acts->a[i].type == PL_ACT_TRAFFIC)
			start_traffic(ex, id, svc, st, acts->a[i].region, st->cfg.side_by_side_ms);
	}
}

/* Applies ev; persists and acts when it changed something. Returns -1 when persisting failed
 * (the state is then left as it was). */
static int apply(executor *ex, int64_t id, const struct service_manifest *svc, const char *service,
		 const char *env, struct pl_state *st, const struct pl_event *ev, json_t **read)
{
	struct pl_actions acts;
	struct pl_state before = *st;
	if (!pipeline_step(st, ev, &acts))
		return 0;
	if (persist(ex, id, service, env, st, &acts, read)) {
		*st = before;
		return -1;
	}
	/* a test hook (util/fault.h): die as a kill -9 would, between the commit and the actions */
	for (int i = 0; i < acts.n; i++)
		if (acts.a[i].type == PL_ACT_RECORD)
			fault_after_commit(acts.a[i].kind);
	after_actions(ex, id, svc, st, &acts);
	return 1;
}

static void drive(executor *ex, json_t *dep)
{
	int64_t id = json_integer_value(json_object_get(dep, "id"));
	const char *service = json_string_value(json_object_get(dep, "service"));
	const char *env = json_string_value(json_object_get(dep, "env"));
	struct pl_state st;
	if (pipeline_from_json(json_object_get(dep, "state"), &st)) {
		log_error("deployment %lld: unreadable state; marking failed", (long long)id);
		struct err e;
		if (store_update_deployment(ex->store, id, json_object_get(dep, "state"), "failed",
					    "unreadable pipeline state", &e))
			log_error("deployment %lld: %s", (long long)id, e.msg);
		return;
	}
	const struct service_manifest *svc = NULL;
	struct err e;
	if (catalog_service(ex->cat, service, &svc, &e)) {
		log_error("deployment %lld: %s", (long long)id, e.msg);
		return;
	}
	/* what every write of this pass is compared with (persist_in_tx) */
	json_t *read = json_incref(json_object_get(dep, "state"));
	int64_t now = store_now_ms();
	if (!pipeline_started(&st) && !st.aborted) {
		/* A queued deployment waited while others changed what is stable: it starts from
		 * what is stable now (a region already on its version is then done at once). */
		for (int i = 0; i < st.nregions; i++) {
			char cur[PL_NAME_MAX] = "";
			int rc = store_get_stable(ex->store, service, st.regions[i].env, st.regions[i].name,
						  cur, sizeof(cur), &e);
			if (rc < 0) {
				/* start from what is stable, or not yet: the next tick tries again */
				log_error("deployment %lld: %s", (long long)id, e.msg);
				catalog_release_service(ex->cat, svc);
				json_decref(read);
				return;
			}
			snprintf(st.regions[i].stable, sizeof(st.regions[i].stable), "%s", cur);
		}
		struct pl_event ev = {.type = PL_EV_START, .now = now};
		apply(ex, id, svc, service, env, &st, &ev, &read);
		catalog_release_service(ex->cat, svc);
		json_decref(read);
		return; /* let the reconciler start instances before observing */
	}
	struct pl_event tick = {.type = PL_EV_TICK, .now = now};
	if (apply(ex, id, svc, service, env, &st, &tick, &read) < 0)
		goto out;
	for (int i = 0; i < st.nregions && !pipeline_done(&st); i++) {
		if (!pipeline_controls(&st, i))
			continue;
		struct pl_event ev = {.type = PL_EV_OBSERVE, .now = now, .region = i};
		observe(ex, id, svc, &st, i, now, &ev.obs);
		if (apply(ex, id, svc, service, env, &st, &ev, &read) < 0)
			break;
	}
	if (pipeline_done(&st))
		log_info("deployment %lld of %s %s ended: %s%s%s", (long long)id, service, st.version,
			 pipeline_phase_name(st.phase), st.reason[0] ? ": " : "", st.reason);
out:
	catalog_release_service(ex->cat, svc);
	json_decref(read);
}

/* A stored deployment whose state does not parse counts as started: it is the one the
 * executor looks at (and fails with "unreadable pipeline state"). */
static int has_started(const json_t *dep)
{
	struct pl_state st;
	return pipeline_from_json(json_object_get(dep, "state"), &st) || pipeline_started(&st);
}

/* The deployment of `service` that may run now: one that has started; else a rollback or a
 * hotfix; else the oldest. `active` is ordered oldest first. */
static json_t *runnable(json_t *active, const char *service)
{
	json_t *first = NULL, *urgent = NULL, *d;
	size_t i;
	json_array_foreach(active, i, d) {
		if (strcmp(json_string_value(json_object_get(d, "service")), service))
			continue;
		if (has_started(d))
			return d;
		const char *kind = json_string_value(json_object_get(d, "kind"));
		if (!urgent && kind && strcmp(kind, "deploy"))
			urgent = d;
		if (!first)
			first = d;
	}
	return urgent ? urgent : first;
}

void executor_tick(executor *ex)
{
	json_t *active = NULL;
	struct err e = {""};
	if (store_active_deployments(ex->store, &active, &e)) {
		int64_t now = store_now_ms();
		if (now - ex->last_store_log >= 5000) {
			ex->last_store_log = now;
			log_error("executor: %s", e.msg);
		}
		return;
	}
	json_t *seen = json_object();
	size_t i;
	json_t *dep;
	json_array_foreach(active, i, dep) {
		const char *service = json_string_value(json_object_get(dep, "service"));
		if (json_object_get(seen, service))
			continue;
		json_object_set_new(seen, service, json_true());
		if (ex->replica && !replica_owns(ex->replica, service))
			continue; /* another replica drives it */
		json_t *run = runnable(active, service);
		if (run)
			drive(ex, run);
	}
	json_decref(seen);
	/* forget the windows of deployments that ended */
	int64_t *ids = calloc(json_array_size(active) + 1, sizeof(*ids));
	if (ids) {
		json_array_foreach(active, i, dep)
			ids[i] = json_integer_value(json_object_get(dep, "id"));
		verify_keep_only(ex->verifier, ids, json_array_size(active));
		free(ids);
	}
	int busy = json_array_size(active) > 0;
	json_decref(active);
	smoke_sweep(ex, 0);
	crash_sweep(ex, 0);
	reconcile_tick(ex->reconciler, busy);
}

/* ---- creating deployments ---- */

/* Adds the regions of environment envm in wave order, starting at wave `first`. */
static int add_regions(executor *ex, const struct env_manifest *envm, const char *service, int first,
		       int stage, struct pl_region_init *out, char stables[][PL_NAME_MAX], int *n,
		       int *waves_used, struct err *e)
{
	const char *env = envm->name;
	int nwaves = 0;
	for (size_t i = 0; i < envm->nregions; i++) {
		if (*n >= PL_MAX_REGIONS)
			return err_set(e, "more than %d regions in one deployment", PL_MAX_REGIONS);
		const char *name = envm->regions[i].name;
		int wave = (int)i; /* default: one wave per region, in order */
		for (size_t j = 0; j < envm->nwaves; j++)
			for (size_t k = 0; k < envm->waves[j].nregions; k++)
				if (envm->waves[j].regions[k] == i)
					wave = (int)j;
		if (stage)
			wave = 0;
		if (wave + 1 > nwaves)
			nwaves = wave + 1;
		stables[*n][0] = '\0';
		if (store_get_stable(ex->store, service, env, name, stables[*n], PL_NAME_MAX, e) < 0)
			return -1;
		out[*n] = (struct pl_region_init){name, env, stables[*n], first + wave, stage};
		(*n)++;
	}
	*waves_used = nwaves;
	return 0;
}

/* analysis.baseline of a service manifest: canary steps run a baseline (pipeline_baseline). */
static int wants_baseline(const struct service_manifest *svc)
{
	return svc->analysis.baseline;
}

/* Builds the initial pipeline state of a deployment from the manifests and the stable
 * releases. Returns 0, or -1 with e. */
static enum pl_strategy strategy_of(enum manifest_strategy s)
{
	switch (s) {
	case MANIFEST_ROLLING:
		return PL_ROLLING;
	case MANIFEST_BLUE_GREEN:
		return PL_BLUE_GREEN;
	case MANIFEST_CANARY:
		break;
	}
	return PL_CANARY;
}

static int initial_state(executor *ex, const struct service_manifest *svc,
			 const struct env_manifest *envm, const char *service, const char *env,
			 const char *version, enum pl_kind kind, struct pl_state *st, struct err *e)
{
	struct pl_config cfg = {
		.strategy = strategy_of(svc->strategy.type),
		.instances = svc->instances,
		.max_surge = svc->strategy.max_surge,
		.max_unavailable = svc->strategy.max_unavailable,
		.smoke = svc->nsmoke > 0,
		.step_duration_ms = (int64_t)svc->strategy.step_duration_ms,
		.max_step_duration_ms = (int64_t)svc->strategy.max_step_duration_ms,
		.start_timeout_ms = 120000,
		.bake_ms = (int64_t)svc->bake_ms,
		.keep_old_ms = (int64_t)svc->strategy.keep_old_ms,
		.wave_bake_ms = (int64_t)envm->policy.wave_bake_ms,
		.region_retries = envm->policy.region_retries,
		.retry_backoff_ms = (int64_t)envm->policy.retry_backoff_ms,
		.baseline = wants_baseline(svc),
		.continue_on_failure = envm->policy.on_region_failure == MANIFEST_CONTINUE,
		.observe_gap_ms = PL_GAP_MS,
		.max_unobserved_ms = (int64_t)svc->strategy.max_unobserved_ms,
	};
	for (size_t i = 0; i < svc->strategy.nsteps; i++)
		if (cfg.nsteps < PL_MAX_STEPS)
			cfg.steps[cfg.nsteps++] = svc->strategy.steps[i];
	if (!cfg.nsteps)
		cfg.steps[cfg.nsteps++] = 100;
	if (kind == PL_ROLLBACK) {
		cfg.strategy = PL_CANARY;
		cfg.steps[0] = 100;
		cfg.nsteps = 1;
		cfg.bake_ms = 0;
		cfg.smoke = 0;
	}
	struct pl_region_init regions[PL_MAX_REGIONS];
	char stables[PL_MAX_REGIONS][PL_NAME_MAX];
	int n = 0, waves = 0;
	/* the pre-production stage first, when this environment is promoted from another */
	const char *from = envm->promotion.from;
	const struct env_manifest *stage_env = NULL;
	if (from && kind != PL_ROLLBACK) {
		int rc = catalog_environment(ex->cat, from, &stage_env, e);
		if (rc < 0)
			return -1;
		if (rc)
			return err_set(e, "environment '%s' is promoted from '%s', which is not known: apply it first",
				       env, from);
	}
	if (stage_env) {
		cfg.side_by_side_ms = (int64_t)stage_env->stage.side_by_side_ms;
		if (add_regions(ex, stage_env, service, 0, 1, regions, stables, &n, &waves, e)) {
			catalog_release_environment(ex->cat, stage_env);
			return -1;
		}
	}
	/* the region names point into the manifests: keep them until pipeline_init copied them */
	int rc = add_regions(ex, envm, service, waves, 0, regions, stables, &n, &waves, e);
	if (!rc && pipeline_init(st, kind, version, &cfg, regions, n))
		rc = err_set(e, "invalid pipeline for %s: check strategy.steps and instances", service);
	catalog_release_environment(ex->cat, stage_env);
	return rc;
}

/* Creates a deployment inside the caller's transaction. Returns its id or -1 with e. */
static int64_t create_in_tx(executor *ex, const char *service, const char *env,
			    const char *version, enum pl_kind kind, struct err *e)
{
	const struct service_manifest *svc = NULL;
	const struct env_manifest *envm = NULL;
	int64_t id = -1;
	struct pl_state st;
	int rc = catalog_service(ex->cat, service, &svc, e);
	if (rc == STORE_NOTFOUND)
		err_set(e, "service '%s' is not known: apply its manifest first", service);
	if (rc == 0 && (rc = catalog_environment(ex->cat, env, &envm, e)) == STORE_NOTFOUND)
		err_set(e, "environment '%s' is not known: apply its manifest first", env);
	if (rc == 0 && initial_state(ex, svc, envm, service, env, version, kind, &st, e) == 0) {
		json_t *js = pipeline_to_json(&st);
		if (store_create_deployment(ex->store, service, env, version, pipeline_kind_name(kind),
					    js, &id, e))
			id = -1;
		json_decref(js);
	}
	catalog_release_service(ex->cat, svc);
	catalog_release_environment(ex->cat, envm);
	return id;
}

/* Marks a deployment that has not started as superseded, in the caller's transaction. */
static int supersede(executor *ex, const json_t *d, int64_t by, struct err *e)
{
	int64_t id = json_integer_value(json_object_get(d, "id"));
	char msg[160];
	snprintf(msg, sizeof(msg), "superseded by deployment %lld before it started", (long long)by);
	/* compared with the state read: if its owner started it meanwhile, it is not superseded
	 * (STORE_CONFLICT: the caller reads again) */
	const json_t *st = json_object_get(d, "state");
	int rc = store_update_deployment_if(ex->store, id, st, st, "superseded", msg, e);
	if (rc)
		return rc == STORE_CONFLICT ? STORE_CONFLICT : -1;
	return store_add_event(ex->store, id, "superseded", NULL, msg, NULL, e);
}

/* Whether each region's runtime can run instances of this release (a driver may name files or
 * containers after them): one that cannot is refused here, before anything starts. Returns 0,
 * or -1 with e. */
static int names_refused(executor *ex, const struct service_manifest *svc, const char *service, const char *env,
			 const char *version, struct err *e)
{
	const struct env_manifest *envm = NULL;
	int rc = catalog_environment(ex->cat, env, &envm, e);
	if (rc < 0)
		return -1;
	rc = 0; /* an unknown environment is refused later, with its name */
	int baseline = wants_baseline(svc);
	for (size_t i = 0; envm && i < envm->nregions; i++) {
		const struct manifest_region *r = &envm->regions[i];
		const char *region = r->name;
		runtime *rt = NULL;
		if (runtimes_resolve(ex->runtimes, env, r, &rt, e) && !runtimes_local_ready(ex->runtimes)) {
			/* a standby replica: the local runtime is another replica's; its owner's
			 * runtime refuses a name it cannot run when it starts the instances */
			e->msg[0] = '\0';
			continue;
		}
		if (!rt || runtime_check_names(rt, service, env, region, version, e)) {
			rc = -1;
			break;
		}
		/* a baseline's instances carry the stable version and a suffix */
		char stable[PL_NAME_MAX], label[PL_NAME_MAX + 16];
		int src = baseline ? store_get_stable(ex->store, service, env, region, stable, sizeof(stable), e)
				   : STORE_NOTFOUND;
		if (src < 0) {
			rc = -1;
			break;
		}
		if (src == 0) {
			snprintf(label, sizeof(label), "%s%s", stable, PL_BASELINE_SUFFIX);
			if (runtime_check_names(rt, service, env, region, label, e)) {
				rc = -1;
				break;
			}
		}
	}
	catalog_release_environment(ex->cat, envm);
	return rc;
}

/* How many times an operator's request is read and applied again when another writer changed
 * the deployment in between (each pass is a few ms; the owner writes a few times a second). */
#define EXECUTOR_CAS_TRIES 20

/* One attempt; *conflict is set when a deployment it pre-empts changed meanwhile. */
static int64_t create_once(executor *ex, const char *service, const char *env, const char *version,
			   enum pl_kind kind, int force, json_t *gate_report, int *conflict, struct err *e)
{
	/* the service first: a release of an unknown service cannot be pushed, so "push it" would
	 * send the user the wrong way */
	const struct service_manifest *svc = NULL;
	int rc = catalog_service(ex->cat, service, &svc, e);
	if (rc == STORE_NOTFOUND)
		err_set(e, "service '%s' is not known: apply its manifest first", service);
	if (rc)
		return -1;
	json_t *rel = NULL;
	rc = store_get_release(ex->store, service, version, &rel, e);
	json_decref(rel);
	if (rc) {
		catalog_release_service(ex->cat, svc);
		if (rc == STORE_NOTFOUND)
			err_set(e, "release %s %s is not known: push it first with 'sluice release push'",
				service, version);
		return -1;
	}
	int supersede_policy = svc->policy.concurrency == MANIFEST_SUPERSEDE;
	rc = names_refused(ex, svc, service, env, version, e);
	catalog_release_service(ex->cat, svc);
	if (rc)
		return -1;
	json_t *active = NULL;
	if (store_active_deployments(ex->store, &active, e))
		return -1;
	if (store_begin(ex->store, e)) {
		json_decref(active);
		return -1;
	}
	if (fence(ex, service, 0, e)) {
		store_rollback(ex->store);
		json_decref(active);
		return err_set(e, "store: this replica's lease of %s was lost; try again", service);
	}
	int64_t id = create_in_tx(ex, service, env, version, kind, e);
	rc = id < 0 ? -1 : 0;
	size_t i;
	json_t *d;
	json_array_foreach(active, i, d) {
		if (rc || strcmp(json_string_value(json_object_get(d, "service")), service))
			continue;
		int64_t other = json_integer_value(json_object_get(d, "id"));
		if (kind != PL_DEPLOY && has_started(d)) {
			/* a rollback or hotfix pre-empts the pipeline in flight */
			struct pl_state ost;
			struct pl_actions acts;
			if (pipeline_from_json(json_object_get(d, "state"), &ost) == 0) {
				char why[PL_MSG_MAX];
				snprintf(why, sizeof(why), "pre-empted by %s %lld of %s", pipeline_kind_name(kind),
					 (long long)id, version);
				struct pl_event ev = {.type = PL_EV_ABORT, .now = store_now_ms(), .preempt = 1};
				snprintf(ev.reason, sizeof(ev.reason), "%s", why);
				if (pipeline_step(&ost, &ev, &acts))
					rc = persist_in_tx(ex, other, service, json_string_value(json_object_get(d, "env")),
							   &ost, &acts, json_object_get(d, "state"), NULL, e);
			}
		} else if (!has_started(d) &&
			   (kind != PL_DEPLOY || supersede_policy)) {
			rc = supersede(ex, d, id, e);
		}
	}
	json_decref(active);
	if (!rc && force)
		rc = store_add_event(ex->store, id, "gate_overridden", NULL,
				     "compatibility gate overridden with --force", gate_report, e);
	else if (!rc && gate_report)
		rc = store_add_event(ex->store, id, "gate_passed", NULL,
				     "compatible with every live version", gate_report, e);
	if (!rc)
		rc = store_commit(ex->store, e);
	else
		store_rollback(ex->store);
	*conflict = rc == STORE_CONFLICT;
	return rc ? -1 : id;
}

int64_t executor_create(executor *ex, const char *service, const char *env, const char *version,
			enum pl_kind kind, int force, json_t *gate_report, struct err *e)
{
	for (int tries = 0; tries < EXECUTOR_CAS_TRIES; tries++) {
		int conflict = 0;
		int64_t id = create_once(ex, service, env, version, kind, force, gate_report, &conflict, e);
		if (!conflict)
			return id;
	}
	return err_set(e, "store: the deployment in flight of %s kept changing; try again", service);
}

/*
 * An operator's request on a deployment (abort, promote now): ev applied to its state as read,
 * written as a compare-and-set, read and applied again after a conflict (another writer came in
 * between), so it is recorded once and never undone. region (may be NULL) names ev->region.
 * A request the state machine has nothing to do for is 0 when nothing_ok, else -1 with
 * `nothing` as the message. `what` names the request in errors.
 */
static int request(executor *ex, int64_t id, struct pl_event *ev, const char *region, int nothing_ok,
		   const char *nothing, const char *what, struct err *e)
{
	for (int tries = 0; tries < EXECUTOR_CAS_TRIES; tries++) {
		json_t *dep = NULL;
		int rc = store_get_deployment(ex->store, id, &dep, e);
		if (rc)
			return rc == STORE_NOTFOUND ? err_set(e, "deployment %lld not found", (long long)id) : -1;
		struct pl_state st;
		if (pipeline_from_json(json_object_get(dep, "state"), &st)) {
			json_decref(dep);
			return err_set(e, "deployment %lld has an unreadable state", (long long)id);
		}
		ev->now = store_now_ms();
		if (region) {
			ev->region = -1;
			for (int i = 0; i < st.nregions; i++)
				if (!strcmp(st.regions[i].name, region))
					ev->region = i;
			if (ev->region < 0) {
				json_decref(dep);
				return err_set(e, "deployment %lld has no region '%s'", (long long)id, region);
			}
		}
		struct pl_actions acts;
		if (!pipeline_step(&st, ev, &acts)) {
			json_decref(dep);
			return nothing_ok ? 0 : err_set(e, "deployment %lld %s", (long long)id, nothing);
		}
		json_t *read = json_incref(json_object_get(dep, "state"));
		rc = persist_fenced(ex, id, json_string_value(json_object_get(dep, "service")),
				    json_string_value(json_object_get(dep, "env")), &st, &acts, 0, &read);
		json_decref(read);
		json_decref(dep);
		if (rc != STORE_CONFLICT)
			return rc ? err_set(e, "store: could not record the %s", what) : 0;
	}
	return err_set(e, "store: deployment %lld kept changing; the %s was not recorded, try again",
		       (long long)id, what);
}

int executor_abort(executor *ex, int64_t id, const char *reason, int preempt, struct err *e)
{
	struct pl_event ev = {.type = PL_EV_ABORT, .preempt = preempt};
	snprintf(ev.reason, sizeof(ev.reason), "%s", reason);
	return request(ex, id, &ev, NULL, 1, "", "abort", e);
}

int executor_promote(executor *ex, int64_t id, const char *region, const char *reason, struct err *e)
{
	struct pl_event ev = {.type = PL_EV_PROMOTE, .region = -1};
	snprintf(ev.reason, sizeof(ev.reason), "%s", reason);
	return request(ex, id, &ev, region, 0,
		       region ? "has no such region in a canary step or holding the old set: nothing to promote now"
			      : "has no region in a canary step or holding the old set: nothing to promote now",
		       "promotion", e);
}

/* One attempt: 0, -1 with e, or STORE_CONFLICT (read again). */
static int retry_once(executor *ex, int64_t id, const char *region, struct err *e)
{
	json_t *dep = NULL;
	int rc = store_get_deployment(ex->store, id, &dep, e);
	if (rc)
		return rc == STORE_NOTFOUND ? err_set(e, "deployment %lld not found", (long long)id) : -1;
	struct pl_state st;
	int ri = -1;
	if (pipeline_from_json(json_object_get(dep, "state"), &st) == 0)
		for (int i = 0; i < st.nregions; i++)
			if (!strcmp(st.regions[i].name, region))
				ri = i;
	const char *service = json_string_value(json_object_get(dep, "service"));
	const char *env = json_string_value(json_object_get(dep, "env"));
	rc = 0;
	if (ri < 0) {
		rc = err_set(e, "deployment %lld has no region '%s'", (long long)id, region);
	} else if (st.regions[ri].paused) {
		/* a region paused for want of metrics: the operator resumes it */
		struct pl_event ev = {.type = PL_EV_RETRY, .now = store_now_ms(), .region = ri};
		struct pl_actions acts;
		json_t *read = json_incref(json_object_get(dep, "state"));
		if (pipeline_step(&st, &ev, &acts))
			rc = persist_fenced(ex, id, service, env, &st, &acts, 0, &read);
		json_decref(read);
		if (rc == -1)
			err_set(e, "store: could not record the resume");
	} else if (st.regions[ri].state != R_FAILED) {
		rc = err_set(e, "region %s of deployment %lld is %s, not failed or paused: only those are retried",
			     region, (long long)id, pipeline_rstate_name(st.regions[ri].state));
	} else {
		/* a newer deployment of the service may have run since: never go back behind it */
		json_t *list = NULL;
		if (store_list_deployments(ex->store, service, &list, e) == 0) {
			json_t *newest = json_array_get(list, 0);
			if (newest && json_integer_value(json_object_get(newest, "id")) != id)
				rc = err_set(e, "deployment %lld of %s is newer; retry is only for the latest",
					     (long long)json_integer_value(json_object_get(newest, "id")), service);
			json_decref(list);
		} else {
			rc = -1;
		}
		if (!rc) {
			struct pl_event ev = {.type = PL_EV_RETRY, .now = store_now_ms(), .region = ri};
			struct pl_actions acts;
			json_t *read = json_incref(json_object_get(dep, "state"));
			if (pipeline_step(&st, &ev, &acts))
				rc = persist_fenced(ex, id, service, env, &st, &acts, 0, &read);
			json_decref(read);
			if (rc == -1)
				err_set(e, "store: could not record the retry");
		}
	}
	json_decref(dep);
	return rc;
}

int executor_retry(executor *ex, int64_t id, const char *region, struct err *e)
{
	/* read again after a conflict: if another replica retried the region meanwhile, the
	 * region is no longer failed and this request is refused, so it is done once */
	for (int tries = 0; tries < EXECUTOR_CAS_TRIES; tries++) {
		int rc = retry_once(ex, id, region, e);
		if (rc != STORE_CONFLICT)
			return rc;
	}
	return err_set(e, "store: deployment %lld kept changing; the retry was not recorded, try again",
		       (long long)id);
}
