/*
 * gate: the compatibility gate over what is live, fed from the server's own records.
 *
 * What is live in an environment, per region: the stable release (the rollback target, which
 * serves), the new version of a deployment in flight (a canary), and any version whose
 * instances still run (e.g. draining). Contracts come from the releases. The checks themselves
 * are the pure functions of src/contract/plan.h; this file only gathers their inputs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract/plan.h"
#include "core/pipeline.h"
#include "server/catalog.h"
#include "server/gate.h"
#include "server/listing.h"

/* Where the gate reads what is live. */
struct gate_src {
	store *store;
	catalog *cat;     /* the server's, or own_cat */
	catalog *own_cat; /* one for the call when none was given */
};

/* What is gathered for one check. The indexes keep it linear in what is live: with 1,000
 * services in 3 regions, scanning the arrays for each entry was quadratic. */
struct gather {
	struct plan_live *live;
	size_t nlive, caplive;
	struct plan_unit *rels;
	size_t nrels;
	contract **owned;  /* one parsed contract per release, freed at the end */
	json_t *strings;   /* keeps every string the arrays point to alive */
	json_t *live_seen; /* "region\nservice\nversion\nrole" of every live entry */
	json_t *rel_index; /* "service\nversion" -> position in rels */
	json_t *stable;    /* "service/region" -> version, in the environment gathered */
	listing *instances;
};

static const char *keep(struct gather *g, const char *s)
{
	json_t *v = json_string(s ? s : "");
	json_array_append_new(g->strings, v);
	return json_string_value(v);
}

static const contract *contract_of(struct gather *g, const char *service, const char *version)
{
	char key[256];
	snprintf(key, sizeof(key), "%s\n%s", service, version);
	json_t *i = json_object_get(g->rel_index, key);
	return i ? g->rels[json_integer_value(i)].contract : NULL;
}

static void add_live(struct gather *g, const char *region, const char *service,
		     const char *version, const char *role)
{
	char key[512];
	snprintf(key, sizeof(key), "%s\n%s\n%s\n%s", region, service, version, role);
	if (json_object_get(g->live_seen, key) || json_object_set_new(g->live_seen, key, json_true()))
		return;
	if (g->nlive == g->caplive) {
		size_t cap = g->caplive ? g->caplive * 2 : 32;
		struct plan_live *p = realloc(g->live, cap * sizeof(*p));
		if (!p)
			return;
		g->live = p;
		g->caplive = cap;
	}
	g->live[g->nlive++] = (struct plan_live){keep(g, region), keep(g, service), keep(g, version),
						 contract_of(g, service, version), keep(g, role)};
}

static void gather_free(struct gather *g)
{
	for (size_t i = 0; i < g->nrels; i++)
		contract_free(g->owned[i]);
	free(g->owned);
	free(g->rels);
	free(g->live);
	json_decref(g->strings);
	json_decref(g->live_seen);
	json_decref(g->rel_index);
	json_decref(g->stable);
	listing_free(g->instances);
}

static int add_release(struct gather *g, const struct gate_src *src, const char *name, const char *ver,
		       int has_contract, struct err *e)
{
	json_t *full = NULL;
	contract *ct = NULL;
	/* only a release with a contract is read whole (the listing says which have one) */
	int rc = has_contract ? store_get_release(src->store, name, ver, &full, e) : STORE_NOTFOUND;
	if (rc < 0)
		return -1;
	/* a release listed a moment ago is there; one that is not has no contract to add */
	if (rc == 0) {
		json_t *cj = json_object_get(full, "contract");
		struct err ce;
		if (json_is_object(cj) && contract_from_json(cj, ver, &ct, &ce))
			log_warn("release %s %s: stored contract is invalid: %s", name, ver, ce.msg);
	}
	json_decref(full);
	struct plan_unit *nr = realloc(g->rels, (g->nrels + 1) * sizeof(*nr));
	if (nr)
		g->rels = nr;
	contract **no = realloc(g->owned, (g->nrels + 1) * sizeof(*no));
	if (no)
		g->owned = no;
	if (!nr || !no) {
		contract_free(ct);
		return err_set(e, "out of memory");
	}
	g->rels[g->nrels] = (struct plan_unit){keep(g, name), keep(g, ver), ct};
	g->owned[g->nrels] = ct;
	char key[256];
	snprintf(key, sizeof(key), "%s\n%s", name, ver);
	if (!json_object_get(g->rel_index, key)) /* the first, as the scan found it */
		json_object_set_new(g->rel_index, key, json_integer((json_int_t)g->nrels));
	g->nrels++;
	return 0;
}

static int add_region(struct gather *g, const struct gate_src *src, const char *env, const char *name,
		      const char *rname, struct err *e)
{
	char key[256];
	snprintf(key, sizeof(key), "%s/%s", name, rname);
	const char *stable = json_string_value(json_object_get(g->stable, key));
	if (stable) {
		add_live(g, rname, name, stable, "stable");
		add_live(g, rname, name, stable, "serving");
	}
	const struct instance_info *in = NULL;
	size_t n = 0;
	runtime *rt = NULL;
	/* a version that may be running and is not seen would be left out of the check: fail */
	if (catalog_runtime(src->cat, env, rname, &rt, e) < 0)
		return -1;
	if (!rt)
		return 0;
	if (listing_region(g->instances, rt, name, env, rname, &in, &n))
		return err_set(e, "could not list the instances of %s in %s/%s", name, env, rname);
	for (size_t k = 0; k < n; k++)
		if (in[k].state != INSTANCE_STOPPED)
			add_live(g, rname, name, in[k].version, "serving");
	return 0;
}

static int gather(const struct gate_src *src, const char *env, struct gather *g, struct err *e)
{
	memset(g, 0, sizeof(*g));
	g->strings = json_array();
	g->live_seen = json_object();
	g->rel_index = json_object();
	g->stable = json_object();
	g->instances = listing_new(NULL);
	json_t *stable = NULL;
	const struct service_manifest **svcs = NULL;
	size_t nsvcs = 0;
	const struct env_manifest *envm = NULL;
	json_t *active = NULL;
	int rc = catalog_environment(src->cat, env, &envm, e);
	if (rc) {
		if (rc == STORE_NOTFOUND)
			err_set(e, "environment '%s' is not known", env);
		rc = -1;
		goto out;
	}
	rc = -1;
	if (!g->strings || !g->live_seen || !g->rel_index || !g->stable || !g->instances) {
		err_set(e, "out of memory");
		goto out;
	}
	if (catalog_services(src->cat, &svcs, &nsvcs, e) ||
	    store_active_deployments(src->store, &active, e) || store_list_stable(src->store, NULL, &stable, e))
		goto out;
	size_t i, j;
	json_t *r;
	json_array_foreach(stable, i, r) {
		if (strcmp(json_string_value(json_object_get(r, "env")), env))
			continue;
		char key[256];
		snprintf(key, sizeof(key), "%s/%s", json_string_value(json_object_get(r, "service")),
			 json_string_value(json_object_get(r, "region")));
		json_object_set(g->stable, key, json_object_get(r, "version"));
	}
	/* every release of every service, with its contract */
	for (i = 0; i < nsvcs; i++) {
		const char *name = svcs[i]->name;
		json_t *rels = NULL;
		if (store_list_releases(src->store, name, &rels, e))
			goto out;
		json_array_foreach(rels, j, r) {
			if (add_release(g, src, name, json_string_value(json_object_get(r, "version")),
					json_is_true(json_object_get(r, "has_contract")) ||
						json_integer_value(json_object_get(r, "has_contract")) != 0,
					e)) {
				json_decref(rels);
				goto out;
			}
		}
		json_decref(rels);
	}
	/* what is live, region by region */
	for (i = 0; i < nsvcs; i++)
		for (j = 0; j < envm->nregions; j++)
			if (add_region(g, src, env, svcs[i]->name, envm->regions[j].name, e))
				goto out;
	json_t *d;
	json_array_foreach(active, i, d) {
		struct pl_state st;
		if (pipeline_from_json(json_object_get(d, "state"), &st))
			continue;
		for (int k = 0; k < st.nregions; k++)
			if (!strcmp(st.regions[k].env, env) && pipeline_controls(&st, k))
				add_live(g, st.regions[k].name, json_string_value(json_object_get(d, "service")),
					 st.version, "canary");
	}
	rc = 0;
out:
	catalog_release_services(src->cat, svcs, nsvcs);
	json_decref(active);
	json_decref(stable);
	catalog_release_environment(src->cat, envm);
	if (rc)
		gather_free(g);
	return rc;
}

/* The environment's gate policy; -1 with e when the store failed (gather has seen it). */
static int policy_of(const struct gate_src *src, const char *env, struct plan_policy *p, struct err *e)
{
	const struct env_manifest *envm = NULL;
	if (catalog_environment(src->cat, env, &envm, e) < 0)
		return -1;
	*p = (struct plan_policy){.allow_unknown = envm && envm->policy.allow_unknown_consumers};
	catalog_release_environment(src->cat, envm);
	return 0;
}

/* The server's catalog, or one of the call's own when cat is NULL. */
static int src_open(struct gate_src *src, store *st, runtimes *rts, catalog *cat, struct err *e)
{
	*src = (struct gate_src){st, cat, NULL};
	if (!cat && !(src->cat = src->own_cat = catalog_new(st, rts)))
		return err_set(e, "out of memory");
	return 0;
}

json_t *gate_can_i_deploy(store *st, runtimes *rts, catalog *cat, const char *service,
			  const char *version, const char *env, struct err *e)
{
	struct gate_src srcv, *src = &srcv;
	struct gather g;
	if (src_open(src, st, rts, cat, e))
		return NULL;
	if (gather(src, env, &g, e)) {
		catalog_free(src->own_cat);
		return NULL;
	}
	json_t *report = NULL;
	size_t i;
	for (i = 0; i < g.nrels; i++)
		if (!strcmp(g.rels[i].service, service) && !strcmp(g.rels[i].version, version))
			break;
	if (i < g.nrels) {
		struct plan_policy p;
		if (policy_of(src, env, &p, e) == 0)
			report = plan_can_i_deploy(g.live, g.nlive, g.rels, g.nrels, &g.rels[i], &p, e);
	} else {
		err_set(e, "release %s %s is not known: push it first with 'sluice release push'",
			service, version);
	}
	gather_free(&g);
	catalog_free(src->own_cat);
	return report;
}

json_t *gate_plan(store *st, runtimes *rts, catalog *cat, const json_t *targets, const char *env,
		  struct err *e)
{
	struct plan_target t[PLAN_MAX_TARGETS];
	size_t n = 0;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)targets, k, v) {
		if (n == PLAN_MAX_TARGETS) {
			err_set(e, "at most %d services in one plan", PLAN_MAX_TARGETS);
			return NULL;
		}
		if (!json_is_string(v)) {
			err_set(e, "targets.%s: expected a version string", k);
			return NULL;
		}
		t[n].service = k;
		t[n++].version = json_string_value(v);
	}
	if (!n) {
		err_set(e, "targets: name at least one SERVICE=VERSION");
		return NULL;
	}
	struct gate_src srcv, *src = &srcv;
	struct gather g;
	if (src_open(src, st, rts, cat, e))
		return NULL;
	if (gather(src, env, &g, e)) {
		catalog_free(src->own_cat);
		return NULL;
	}
	struct plan_policy p;
	json_t *report = policy_of(src, env, &p, e) ? NULL
						    : plan_make(g.live, g.nlive, g.rels, g.nrels, t, n, &p, e);
	gather_free(&g);
	catalog_free(src->own_cat);
	return report;
}
