/*
 * reconcile: converge instances and proxy routes to the desired state, level-triggered.
 *
 * For every service, environment and region: the desired versions and traffic split come from
 * the active deployment's pipeline (pipeline_desired) or, when none controls the region, from
 * the stable release. Order matters and is the whole point (traffic moves before instances):
 *   1. make the desired versions' instances run (runtime_ensure; idempotent),
 *   2. send the route (healthy instances as backends; see step 2 for the fallbacks) to the proxy,
 *   3. stop a version that is no longer desired only once the proxy no longer routes to it and
 *      reports its backends drained.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>

#include "core/pipeline.h"

#include "server/catalog.h"
#include "util/name.h"
#include "server/listing.h"
#include "server/reconcile.h"
#include "store/artifacts.h"
#include "util/histo.h"

/* How long an instance must be reported drained before it is stopped. */
#define RECONCILE_DRAIN_GRACE_MS 1000
/* With nothing known to have changed, a pass still runs this often: the proxy may have lost
 * its routes (restarted by hand), and a reconciler never assumes an action happened. */
#define RECONCILE_IDLE_PASS_MS 2000

struct reconciler {
	struct histo pass_seconds; /* how long each pass took */
	loop *loop;
	store *store;
	runtimes *runtimes;
	router *router;
	catalog *cat;              /* the manifests */
	catalog *own_cat;          /* ...when none was given (reconcile_use_catalog) */
	replica *replica;          /* NULL: every service is ours */
	char artifacts_dir[PATH_MAX];
	json_t *idle;              /* instance id -> loop time it was first seen drained */
	json_t *start_errors;      /* "service/env/region/version" -> why its instances cannot start */
	json_t *start_errors_prev; /* the previous pass's, during a pass */
	json_t *digests;           /* "service/version" -> digest: releases never change */
	json_t *ensured;           /* start_error_key -> store_manifest_changes when runtime_ensure
				    * last took that version's spec (ensure_version) */
	int pending;               /* the last pass left something to do: a drain, a failed route */
	uint64_t seen_store, seen_runtime, seen_router, seen_at; /* what the last pass saw */
	uint64_t passes, skipped;  /* ticks with and without a pass */
	uint64_t last_error_log;
};

reconciler *reconcile_new(loop *l, store *s, runtimes *rts, router *r, const char *artifacts_dir)
{
	reconciler *rec = calloc(1, sizeof(*rec));
	if (rec)
		histo_init(&rec->pass_seconds, histo_seconds, histo_seconds_n);
	if (!rec)
		return NULL;
	rec->loop = l;
	rec->store = s;
	rec->runtimes = rts;
	rec->router = r;
	snprintf(rec->artifacts_dir, sizeof(rec->artifacts_dir), "%s", artifacts_dir);
	rec->idle = json_object();
	rec->start_errors = json_object();
	rec->digests = json_object();
	rec->ensured = json_object();
	rec->cat = rec->own_cat = catalog_new(s, rts);
	if (!rec->idle || !rec->start_errors || !rec->digests || !rec->ensured || !rec->cat) {
		reconcile_free(rec);
		return NULL;
	}
	return rec;
}

void reconcile_free(reconciler *rec)
{
	if (!rec)
		return;
	json_decref(rec->idle);
	json_decref(rec->start_errors);
	json_decref(rec->digests);
	json_decref(rec->ensured);
	catalog_free(rec->own_cat);
	free(rec);
}

void reconcile_use_catalog(reconciler *rec, catalog *c)
{
	rec->cat = c ? c : rec->own_cat;
}

void reconcile_use_replica(reconciler *rec, replica *r)
{
	rec->replica = r;
}

void reconcile_counts(const reconciler *rec, uint64_t *passes, uint64_t *skipped)
{
	*passes = rec->passes;
	*skipped = rec->skipped;
}


static void start_error_key(char *key, size_t len, const char *service, const char *env,
			    const char *region, const char *version)
{
	snprintf(key, len, "%s/%s/%s/%s", service, env, region, version);
}

/* Records why a version's instances could not be started (msg), or that they could (NULL), in
 * this reconcile pass; logged when the message changes, not on every tick. */
static void set_start_error(reconciler *rec, const char *service, const char *env, const char *region,
			    const char *version, const char *msg)
{
	char key[512];
	start_error_key(key, sizeof(key), service, env, region, version);
	const char *old = json_string_value(json_object_get(rec->start_errors_prev, key));
	if (!msg) {
		if (old)
			log_info("%s %s in %s/%s: instances can be started again", service, version, env, region);
		json_object_del(rec->start_errors, key);
		return;
	}
	if (!old || strcmp(old, msg))
		log_warn("%s %s in %s/%s: could not start instances: %s", service, version, env, region, msg);
	json_object_set_new(rec->start_errors, key, json_string(msg));
	rec->pending = 1; /* try again next tick */
}

const char *reconcile_start_error(reconciler *rec, const char *service, const char *env,
				  const char *region, const char *version)
{
	char key[512];
	start_error_key(key, sizeof(key), service, env, region, version);
	return json_string_value(json_object_get(rec->start_errors, key));
}

/* A store read failed on the way to starting a version: that says nothing about whether its
 * instances can start (the executor fails a region's attempt on a start error), so what the
 * last pass knew stands (a refusal recorded then stays, none is made up) and the next tick
 * tries again. */
static void start_unknown(reconciler *rec, const char *service, const char *env, const char *region,
			  const char *version, const char *msg)
{
	char key[512];
	start_error_key(key, sizeof(key), service, env, region, version);
	json_t *old = json_object_get(rec->start_errors_prev, key);
	if (old)
		json_object_set(rec->start_errors, key, old);
	uint64_t now = loop_now(rec->loop);
	if (now - rec->last_error_log > 5000) {
		rec->last_error_log = now;
		log_error("reconcile: %s %s in %s/%s left as it is: %s", service, version, env, region, msg);
	}
	rec->pending = 1;
}

/* Whether runtime_ensure already took the spec of a version whose `count` instances all run
 * (indexes below count): nothing it is made of (the manifests, the release, the upstreams'
 * routes) changed since, so asking again would change nothing. It still costs the runtime a
 * look at its every instance, which 3,000 regions a pass made quadratic. */
static int already_ensured(reconciler *rec, const char *service, const char *env, const char *region,
			   const char *version)
{
	char key[512];
	start_error_key(key, sizeof(key), service, env, region, version);
	json_t *at = json_object_get(rec->ensured, key);
	return at && (uint64_t)json_integer_value(at) == store_manifest_changes(rec->store);
}

/* Starts (or keeps) the instances of one version. */
static void ensure_version(reconciler *rec, runtime *rt, const struct service_manifest *svc,
			   const char *env, const char *region, const char *version, unsigned count)
{
	const char *name = svc->name;
	struct err e = {""};
	char buf[PL_NAME_MAX], key[PL_NAME_MAX + 160];
	const char *release = pipeline_release_of(version, buf, sizeof(buf));
	snprintf(key, sizeof(key), "%s/%s", name, release);
	/* A release is immutable (version -> digest, never rewritten nor deleted): once read,
	 * its digest needs no second store read, on this pass or any other. */
	const char *digest = json_string_value(json_object_get(rec->digests, key));
	if (!digest) {
		json_t *rel = NULL;
		int rc = store_get_release(rec->store, name, release, &rel, &e);
		if (rc < 0) {
			start_unknown(rec, name, env, region, version, e.msg);
			return;
		}
		if (rc != 0) {
			set_start_error(rec, name, env, region, version, e.msg);
			return;
		}
		json_t *d = json_object_get(rel, "digest");
		if (json_is_string(d))
			json_object_set(rec->digests, key, d);
		json_decref(rel);
		digest = json_string_value(json_object_get(rec->digests, key));
	}
	char artifact[PATH_MAX + 160];
	if (artifacts_path(rec->artifacts_dir, digest, artifact, sizeof(artifact), &e)) {
		set_start_error(rec, name, env, region, version, e.msg);
		return;
	}
	if (store_shared(rec->store)) {
		/* uploaded to another replica: made here from the store's copy, digest checked */
		int frc = artifacts_fetch(rec->store, rec->artifacts_dir, digest, ARTIFACTS_FETCH_MAX, &e);
		if (frc) {
			if (frc == -1 && store_failed(&e))
				start_unknown(rec, name, env, region, version, e.msg);
			else
				set_start_error(rec, name, env, region, version, e.msg);
			return;
		}
	}

	size_t nargs = svc->run.nargs, nenv = svc->run.nenv + 2 * svc->ndepends;
	const char **argv = calloc(nargs + 1, sizeof(char *));
	char **envv = calloc(nenv + 1, sizeof(char *));
	size_t k = 0, i;
	int failed = 0;
	for (i = 0; i < nargs; i++)
		argv[i] = svc->run.args[i];
	for (i = 0; i < svc->run.nenv; i++)
		if (asprintf(&envv[k], "%s=%s", svc->run.env[i].name, svc->run.env[i].value) > 0)
			k++;
	for (i = 0; i < svc->ndepends; i++) {
		const char *dep = svc->depends_on[i];
		char upper[80];
		size_t j = 0;
		for (; dep[j] && j < sizeof(upper) - 1; j++)
			upper[j] = dep[j] == '-' ? '_' : (char)(dep[j] >= 'a' && dep[j] <= 'z' ? dep[j] - 32 : dep[j]);
		upper[j] = '\0';
		int port = catalog_listen_port(rec->cat, env, region, dep, &e);
		if (port < 0) {
			/* the store failed; started without its upstream, it would fail: try again
			 * next pass */
			failed = 1;
			break;
		}
		char drn[256], ep[ROUTER_ENDPOINT_MAX];
		router_route_name(drn, sizeof(drn), dep, env, region);
		if (port > 0 && router_route_endpoint(rec->router, drn, port, ep, sizeof(ep)) == 0 &&
		    asprintf(&envv[k], "SLUICE_UPSTREAM_%s=%s", upper, ep) > 0)
			k++;
		/* a dependency routed by Host on a shared listener: the Host to send there */
		char dhost[NAME_HOST_MAX + 1];
		int hr = catalog_route_host(rec->cat, env, region, dep, dhost, sizeof(dhost), &e);
		if (hr < 0) {
			failed = 1;
			break;
		}
		if (hr > 0 && asprintf(&envv[k], "SLUICE_UPSTREAM_%s_HOST=%s", upper, dhost) > 0)
			k++;
	}
	struct instance_spec spec = {
		.service = name, .env = env, .region = region, .version = version,
		.artifact = artifact,
		.command = svc->run.command,
		.args = argv, .env_vars = (const char *const *)envv,
		.health_path = svc->health.path,
		.health_interval_ms = (unsigned)svc->health.interval_ms,
		.health_timeout_ms = (unsigned)svc->health.timeout_ms,
		.drain_timeout_ms = (unsigned)svc->drain_timeout_ms,
	};
	if (failed) {
		start_unknown(rec, name, env, region, version, e.msg);
	} else {
		char ekey[512];
		start_error_key(ekey, sizeof(ekey), name, env, region, version);
		int rc = runtime_ensure(rt, &spec, count, &e);
		set_start_error(rec, name, env, region, version, rc ? e.msg : NULL);
		if (rc)
			json_object_del(rec->ensured, ekey);
		else
			json_object_set_new(rec->ensured, ekey,
					    json_integer((json_int_t)store_manifest_changes(rec->store)));
	}
	for (i = 0; i < k; i++)
		free(envv[i]);
	free(envv);
	free(argv);
}

static int desired_count(const struct pl_desired *d, const char *version)
{
	for (int i = 0; i < d->nrun; i++)
		if (!strcmp(d->run[i].version, version))
			return d->run[i].count;
	return -1;
}

static int alive(const struct instance_info *in)
{
	return in->state != INSTANCE_STOPPED && in->state != INSTANCE_STOPPING;
}

/* What a pass reads once rather than once per service/env/region: the stable releases (one
 * query), the active deployments (each state parsed once) and each runtime's instances (one
 * listing, server/listing.h). A pass changes only the region it is at, and lists that one
 * again when it started something. */
struct pass {
	json_t *stable; /* "service/env/region" -> version */
	struct parsed {
		const char *service; /* borrowed from the active deployments' JSON */
		struct pl_state st;
	} *active;                    /* the active deployments whose state parses, oldest first */
	size_t nactive;
	listing *instances;
};

static int pass_init(struct pass *p, store *st, json_t *active, struct err *e)
{
	memset(p, 0, sizeof(*p));
	json_t *rows = NULL;
	if (store_list_stable(st, NULL, &rows, e))
		return -1;
	p->stable = json_object();
	p->active = calloc(json_array_size(active) + 1, sizeof(*p->active));
	p->instances = listing_new(NULL);
	if (!p->stable || !p->active || !p->instances) {
		json_decref(rows);
		return err_set(e, "out of memory");
	}
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r) {
		char key[3 * 96];
		snprintf(key, sizeof(key), "%s/%s/%s", json_string_value(json_object_get(r, "service")),
			 json_string_value(json_object_get(r, "env")),
			 json_string_value(json_object_get(r, "region")));
		json_object_set(p->stable, key, json_object_get(r, "version"));
	}
	json_decref(rows);
	json_array_foreach(active, i, r) {
		struct parsed *a = &p->active[p->nactive];
		a->service = json_string_value(json_object_get(r, "service"));
		if (a->service && !pipeline_from_json(json_object_get(r, "state"), &a->st))
			p->nactive++;
	}
	return 0;
}

static void pass_release(struct pass *p)
{
	json_decref(p->stable);
	free(p->active);
	listing_free(p->instances);
}

/* The stable release of a region as store_get_stable answers it, from the pass's one read. */
static int pass_stable(const struct pass *p, const char *service, const char *env, const char *region,
		       char *buf, size_t len)
{
	char key[3 * 96];
	snprintf(key, sizeof(key), "%s/%s/%s", service, env, region);
	const char *v = json_string_value(json_object_get(p->stable, key));
	snprintf(buf, len, "%s", v ? v : "");
	return v ? 0 : STORE_NOTFOUND;
}

static void reconcile_region(reconciler *rec, struct pass *p, runtime *rt,
			     const struct service_manifest *svc, const struct env_manifest *envm,
			     const struct manifest_region *region, const struct pl_desired *d)
{
	const char *name = svc->name, *env = envm->name, *rname = region->name;
	struct err e = {""};

	const struct instance_info *in = NULL;
	struct instance_info *own = NULL; /* the region listed again, after starting instances */
	size_t n = 0;
	if (listing_region(p->instances, rt, name, env, rname, &in, &n))
		return;
	/* 1. instances: start what is missing now; fewer instances wait for the drain below */
	uint64_t gen = runtimes_generation(rec->runtimes);
	int started = 0;
	for (int i = 0; i < d->nrun; i++) {
		int running = 0, beyond = 0;
		for (size_t j = 0; j < n; j++)
			if (alive(&in[j]) && !strcmp(in[j].version, d->run[i].version)) {
				running++;
				beyond += in[j].index >= d->run[i].count;
			}
		started |= running < d->run[i].count;
		if (running == d->run[i].count && !beyond &&
		    already_ensured(rec, name, env, rname, d->run[i].version))
			set_start_error(rec, name, env, rname, d->run[i].version, NULL); /* as it was */
		else if (running <= d->run[i].count)
			ensure_version(rec, rt, svc, env, rname, d->run[i].version, (unsigned)d->run[i].count);
	}
	if (started || runtimes_generation(rec->runtimes) != gen) {
		if (runtime_list(rt, name, env, rname, NULL, &own, &n))
			return;
		in = own;
	}

	/* 2. the route: healthy instances that stay, with the weights. Without a healthy one, a
	 * version keeps its unhealthy instances (they served; a health check may just have been
	 * slow). Instances that are still starting refuse connections: they are used only when
	 * no weighted version has a healthy instance, else their version is left out and its
	 * share goes to the others for now. */
	struct addrs {
		const char **a;
		size_t n;
	} healthy[PL_MAX_ROUTE], unhealthy[PL_MAX_ROUTE], starting[PL_MAX_ROUTE];
	/* the three lists of each version point into in[] (alive until free(in)) */
	const char **lists = calloc((size_t)d->nroute * 3 * (n ? n : 1), sizeof(*lists));
	if (!lists) {
		free(own);
		return;
	}
	int any_healthy = 0;
	for (int r = 0; r < d->nroute; r++) {
		healthy[r] = (struct addrs){lists + (size_t)r * 3 * n, 0};
		unhealthy[r] = (struct addrs){healthy[r].a + n, 0};
		starting[r] = (struct addrs){unhealthy[r].a + n, 0};
		int keep = desired_count(d, d->route[r].version);
		for (size_t j = 0; j < n; j++) {
			if (strcmp(in[j].version, d->route[r].version) || !in[j].endpoint[0] || !alive(&in[j]) ||
			    (keep >= 0 && in[j].index >= keep))
				continue;
			struct addrs *to = in[j].state == INSTANCE_HEALTHY     ? &healthy[r]
					   : in[j].state == INSTANCE_UNHEALTHY ? &unhealthy[r]
					   : in[j].state == INSTANCE_STARTING  ? &starting[r]
									       : NULL;
			if (to)
				to->a[to->n++] = in[j].endpoint;
		}
		any_healthy |= d->route[r].weight > 0 && healthy[r].n > 0;
	}
	/* a version with no backend at all is left out (a router refuses an empty backend
	 * list, and the whole route with it) */
	struct router_version versions[PL_MAX_ROUTE];
	size_t nversions = 0;
	for (int r = 0; r < d->nroute; r++) {
		const struct addrs *use = healthy[r].n     ? &healthy[r]
					  : unhealthy[r].n ? &unhealthy[r]
					  : any_healthy    ? NULL
							   : &starting[r];
		if (use && use->n)
			versions[nversions++] = (struct router_version){
				.name = d->route[r].version, .weight = d->route[r].weight,
				.backends = use->a, .nbackends = use->n};
	}
	char rn[256];
	router_route_name(rn, sizeof(rn), name, env, rname);
	int any_weight = 0, routable = 0;
	for (int r = 0; r < d->nroute; r++)
		any_weight |= d->route[r].weight > 0;
	for (size_t v = 0; v < nversions; v++)
		routable |= versions[v].weight > 0;
	int routed;
	if (any_weight && !routable) {
		/* traffic is wanted but no instance can take it yet: keep the router's last route
		 * and stop nothing until it can be replaced */
		routed = 0;
		snprintf(e.msg, sizeof(e.msg), "no running instance for any weighted version yet");
	} else if (any_weight) {
		struct router_route route = {
			.name = rn, .port = svc->listen_port + region->port_offset,
			.versions = versions, .nversions = nversions};
		char hostbuf[32][NAME_HOST_MAX + 1];
		const char *hosts[32];
		if (svc->route.nhosts) {
			/* by Host on the shared listener: each host for this environment and region */
			route.port = svc->route.port + region->port_offset;
			route.path_prefix = svc->route.path_prefix;
			for (size_t h = 0; h < svc->route.nhosts && h < 32; h++) {
				if (manifest_route_host(svc->route.hosts[h], env, rname, hostbuf[route.nhosts],
							sizeof(hostbuf[0])))
					continue;
				int dup = 0; /* the proxy ignores case: "A.x" and "a.x" are one host */
				for (size_t k = 0; k < route.nhosts; k++)
					dup |= !strcasecmp(hostbuf[k], hostbuf[route.nhosts]);
				if (!dup)
					hosts[route.nhosts] = hostbuf[route.nhosts], route.nhosts++;
			}
			route.hosts = hosts;
		}
		routed = router_put_route(rec->router, &route, &e) == 0;
	} else {
		/* nothing may take traffic (a first release starting, or aborted): no route at all;
		 * the router lets in-flight requests finish before it closes the listener */
		routed = router_delete_route(rec->router, rn, &e) == 0;
	}
	free(lists);
	if (!routed) {
		rec->pending = 1;
		uint64_t now = loop_now(rec->loop);
		if (now - rec->last_error_log > 5000) {
			log_warn("route %s: %s", rn, e.msg);
			rec->last_error_log = now;
		}
		free(own);
		return;
	}

	/* 3. instances no longer wanted (a whole version, or the highest indexes of one): stop
	 * them once the proxy has drained them */
	struct router_backend *state = NULL;
	size_t nstate = 0;
	int state_read = 0;
	for (size_t j = 0; j < n; j++) {
		if (!alive(&in[j]))
			continue;
		int keep = desired_count(d, in[j].version);
		if (keep >= 0 && in[j].index < keep)
			continue;
		rec->pending = 1; /* waiting for its drain, or for it to stop */
		if (any_weight) {
			if (!state_read) {
				state_read = 1;
				if (router_route_state(rec->router, rn, &state, &nstate, &e))
					break;
			}
			if (router_backend_busy(state, nstate, in[j].endpoint)) {
				json_object_del(rec->idle, in[j].id);
				continue;
			}
		}
		/* drained must hold for a while: a worker's request may still be on its way to the
		 * backend when the proxy first reports it drained */
		json_t *since = json_object_get(rec->idle, in[j].id);
		uint64_t now = loop_now(rec->loop);
		if (!since) {
			json_object_set_new(rec->idle, in[j].id, json_integer((json_int_t)now));
			continue;
		}
		if (now - (uint64_t)json_integer_value(since) < RECONCILE_DRAIN_GRACE_MS)
			continue;
		json_object_del(rec->idle, in[j].id);
		if (keep < 0) {
			log_info("%s: stopping %s (no longer routed, drained)", rn, in[j].version);
			runtime_stop(rt, name, env, rname, in[j].version);
			char key[512];
			start_error_key(key, sizeof(key), name, env, rname, in[j].version);
			json_object_del(rec->ensured, key);
		} else {
			log_info("%s: retiring %s (no longer routed, drained)", rn, in[j].id);
			ensure_version(rec, rt, svc, env, rname, in[j].version, (unsigned)keep);
		}
	}
	free(state);
	free(own);
}

/* The deployment that controls region (env, name) now, if any: its state and the index. */
static const struct pl_state *controlled_by(const struct pass *p, const char *service, const char *env,
					    const char *region, int *index)
{
	for (size_t i = 0; i < p->nactive; i++) {
		const struct pl_state *st = &p->active[i].st;
		if (strcmp(p->active[i].service, service))
			continue;
		for (int x = 0; x < st->nregions; x++)
			if (!strcmp(st->regions[x].env, env) && !strcmp(st->regions[x].name, region) &&
			    pipeline_controls(st, x)) {
				*index = x;
				return st;
			}
	}
	return NULL;
}

static int has_instances(struct pass *p, runtime *rt, const char *service, const char *env,
			 const char *region)
{
	const struct instance_info *in = NULL;
	size_t n = 0, live = 0;
	if (listing_region(p->instances, rt, service, env, region, &in, &n) == 0)
		for (size_t i = 0; i < n; i++)
			live += alive(&in[i]);
	return live > 0;
}

void reconcile_tick(reconciler *rec, int busy)
{
	if (!busy && !rec->pending && store_changes(rec->store) == rec->seen_store &&
	    runtimes_generation(rec->runtimes) == rec->seen_runtime &&
	    router_generation(rec->router) == rec->seen_router &&
	    loop_now(rec->loop) - rec->seen_at < RECONCILE_IDLE_PASS_MS) {
		rec->skipped++;
		return;
	}
	rec->passes++;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	reconcile_all(rec);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	histo_observe(&rec->pass_seconds, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
}

const struct histo *reconcile_pass_seconds(const reconciler *rec)
{
	return &rec->pass_seconds;
}

void reconcile_all(reconciler *rec)
{
	struct err e = {""};
	rec->pending = 1; /* until this pass has run to its end */
	if (router_ensure(rec->router, &e)) {
		uint64_t now = loop_now(rec->loop);
		if (now - rec->last_error_log > 5000) {
			log_error("%s", e.msg);
			rec->last_error_log = now;
		}
		return;
	}
	const struct service_manifest **svcs = NULL;
	const struct env_manifest **envs = NULL;
	size_t nsvcs = 0, nenvs = 0;
	json_t *active = NULL, *prev_errors = NULL;
	struct pass p = {0};
	if (catalog_services(rec->cat, &svcs, &nsvcs, &e) ||
	    catalog_environments(rec->cat, &envs, &nenvs, &e) ||
	    store_active_deployments(rec->store, &active, &e) || pass_init(&p, rec->store, active, &e)) {
		/* Not knowing the stable releases is not having none: every region keeps its
		 * route and instances, and the pass stays pending. */
		log_error("reconcile: %s", e.msg);
		goto out;
	}
	/* This pass records the start errors afresh: a version no longer started has none. */
	rec->pending = 0;
	prev_errors = rec->start_errors;
	rec->start_errors = json_object();
	rec->start_errors_prev = prev_errors;
	size_t i, j, k;
	for (i = 0; i < nsvcs; i++) {
		const struct service_manifest *svc = svcs[i];
		const char *name = svc->name;
		int count = svc->instances;
		if (rec->replica && !replica_owns(rec->replica, name))
			continue; /* its owner converges it */
		for (j = 0; j < nenvs; j++) {
			const struct env_manifest *envm = envs[j];
			const char *env = envm->name;
			for (k = 0; k < envm->nregions; k++) {
				const struct manifest_region *region = &envm->regions[k];
				const char *rname = region->name;
				struct pl_desired d = {.nrun = 0, .nroute = 0};
				runtime *rt = NULL;
				struct err rte = {""};
				int rt_ok = runtimes_resolve(rec->runtimes, env, region, &rt, &rte) == 0;
				char stable[PL_NAME_MAX] = "";
				int ri = -1;
				const struct pl_state *st = controlled_by(&p, name, env, rname, &ri);
				int rc = st ? 0 : pass_stable(&p, name, env, rname, stable, sizeof(stable));
				if (st) {
					pipeline_desired(st, ri, &d);
				} else if (rc == 0) {
					d.run[0].version = stable;
					d.run[0].count = count;
					d.nrun = 1;
					d.route[0].version = stable;
					d.route[0].weight = 100;
					d.nroute = 1;
				} else if (!rt_ok || !has_instances(&p, rt, name, env, rname)) {
					continue; /* nothing deployed here */
				}
				if (!rt_ok) { /* the region's runtime cannot be opened: its versions cannot start */
					for (int v = 0; v < d.nrun; v++)
						set_start_error(rec, name, env, rname, d.run[v].version, rte.msg);
					continue;
				}
				reconcile_region(rec, &p, rt, svc, envm, region, &d);
			}
		}
	}
	rec->start_errors_prev = NULL;
	/* what this pass has seen, its own changes included (they need no second look) */
	rec->seen_store = store_changes(rec->store);
	rec->seen_runtime = runtimes_generation(rec->runtimes);
	rec->seen_router = router_generation(rec->router);
	rec->seen_at = loop_now(rec->loop);
out:
	pass_release(&p);
	json_decref(prev_errors);
	catalog_release_services(rec->cat, svcs, nsvcs);
	catalog_release_environments(rec->cat, envs, nenvs);
	json_decref(active);
}
