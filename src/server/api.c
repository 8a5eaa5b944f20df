/*
 * api: the control plane's HTTP/JSON API (/v1/...), documented in docs/api.md.
 *
 * Handlers validate everything they are given and answer 400 with a precise message (a
 * manifest's file:line:column, a field path) before changing anything; each change is one
 * store transaction. Errors are {"error": "..."}; 404 for unknown things, 409 for conflicts.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "contract/contract.h"
#include "core/manifest.h"
#include "http/routes.h"
#include "server/api.h"
#include "server/api_body.h"
#include "server/gate.h"
#include "server/catalog.h"
#include "server/executor.h"
#include "server/verify.h"
#include "store/artifacts.h"
#include "util/doc.h"
#include "util/shape.h"
#include "util/name.h"
#include "util/sha256.h"

struct api {
	loop *loop;
	store *store;
	runtimes *runtimes;
	executor *executor;
	reconciler *reconciler;
	verifier *verifier;
	catalog *cat;     /* the manifests: the server's, or own_cat */
	catalog *own_cat; /* when none was given */
	char artifacts_dir[PATH_MAX];
	int stop_data_plane;
	char hosts[API_MAX_HOSTS][API_HOST_MAX]; /* names the Host header may give */
	int nhosts;
};

struct route_ctx {
	api *srv;
	const struct httpd_req *req;
	struct httpd_resp *resp;
	const struct routes_params *p;
};

static void reply_json(struct httpd_resp *resp, int status, json_t *body /* stolen */)
{
	resp->status = status;
	char *txt = json_dumps(body, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(body);
	if (!txt || buf_adds(&resp->body, txt) || buf_adds(&resp->body, "\n")) {
		buf_reset(&resp->body);
		resp->status = 500;
		if (buf_adds(&resp->body, "{\"error\": \"response too large\"}\n"))
			resp->status = 500;
	}
	free(txt);
}

/* ---- request bodies: typed strictly, each against its table (util/shape.h) ---- */

/* The request body checked as a body of `kind` (server/api_body.h): a new reference to its
 * normalized form (defaults filled), or NULL after answering 400 with the line and column of
 * invalid JSON, or the field path and what was expected. An empty body reads as {} (a kind
 * without required fields accepts it). Duplicate keys are refused. */
static json_t *parse_body(struct route_ctx *c, enum api_body kind)
{
	json_error_t je;
	json_t *j = c->req->body_len ? json_loadb(c->req->body, c->req->body_len, JSON_REJECT_DUPLICATES, &je)
				     : json_object();
	if (!j) {
		httpd_error(c->resp, 400, "request body: invalid JSON at line %d column %d: %s", je.line,
			    je.column, je.text);
		return NULL;
	}
	json_t *out = NULL;
	struct err e = {""};
	int rc = api_body_check(kind, j, &out, &e);
	json_decref(j);
	if (rc) {
		httpd_error(c->resp, 400, "%s", e.msg);
		return NULL;
	}
	return out;
}

static const char *field(const json_t *body, const char *key)
{
	return json_string_value(json_object_get(body, key));
}

/* A query parameter that must follow the rule of `kind` (util/name.h), decoded into dst (at
 * least NAME_QUERY_MAX bytes): NULL when absent, or after answering 400 (*bad set) when it is
 * there and breaks the rule, or when required and absent. */
#define NAME_QUERY_MAX 256
static const char *query_name(struct route_ctx *c, const char *key, enum name_kind kind, int required,
			      char *dst, int *bad)
{
	const char *v = httpd_query(c->req, key, dst, NAME_QUERY_MAX);
	if (!v && required) {
		httpd_error(c->resp, 400, "query parameter '%s' is required", key);
		*bad = 1;
	} else if (v && !name_ok(kind, v)) {
		httpd_error(c->resp, 400, "query parameter '%s': expected %s, got '%.64s'", key, name_rule(kind), v);
		*bad = 1;
		v = NULL;
	}
	return *bad ? NULL : v;
}

/* A name from the path ({service}); answers 400 and returns NULL when it is not one. */
static const char *path_name(struct route_ctx *c, const char *param)
{
	const char *v = routes_param(c->p, param);
	if (!v || !name_object_ok(v)) {
		httpd_error(c->resp, 400, "%s '%s': use lowercase letters, digits and '-' (at most 63)",
			    param, v ? v : "");
		return NULL;
	}
	return v;
}

/* ---- POST /v1/apply ---- */

static void h_apply(struct route_ctx *c)
{
	json_t *body = parse_body(c, API_BODY_APPLY);
	if (!body)
		return;
	json_t *files = json_object_get(body, "files");
	json_t *all = json_array(), *errors = json_array();
	size_t i;
	json_t *f;
	json_array_foreach(files, i, f) {
		const char *name = json_string_value(json_object_get(f, "name"));
		const char *content = json_string_value(json_object_get(f, "content"));
		if (!name || !content) {
			json_array_append_new(errors, json_sprintf("files[%zu]: needs 'name' and 'content' strings", i));
			continue;
		}
		doc *d = NULL;
		struct err e = {""};
		json_t *ms = NULL;
		if (doc_parse(name, content, json_string_length(json_object_get(f, "content")), &d, &e) ||
		    manifest_validate(d, &ms, &e)) {
			json_array_append_new(errors, json_string(e.msg));
		} else {
			json_array_extend(all, ms);
		}
		json_decref(ms);
		doc_free(d);
	}
	if (json_array_size(errors)) {
		json_t *r = json_pack("{s:s, s:o}", "error", json_string_value(json_array_get(errors, 0)),
				      "errors", errors);
		reply_json(c->resp, 400, r);
		json_decref(all);
		json_decref(body);
		return;
	}
	json_decref(errors);
	struct err e = {""};
	json_t *applied = json_array();
	int rc = store_begin(c->srv->store, &e);
	json_t *m;
	json_array_foreach(all, i, m) {
		if (rc)
			break;
		const char *kind = json_string_value(json_object_get(m, "kind"));
		const char *name = json_string_value(json_object_get(m, "name"));
		int changed = 0;
		rc = store_put_manifest(c->srv->store, kind, name, m, &changed, &e);
		json_array_append_new(applied, json_pack("{s:s, s:s, s:b}", "kind", kind, "name", name,
							 "changed", changed));
	}
	if (!rc)
		rc = store_commit(c->srv->store, &e);
	else
		store_rollback(c->srv->store);
	if (rc) {
		json_decref(applied);
		httpd_error(c->resp, 500, "%s", e.msg);
	} else {
		reply_json(c->resp, 200, json_pack("{s:o}", "applied", applied));
	}
	json_decref(all);
	json_decref(body);
}

/* ---- PUT /v1/artifacts/sha256:HEX ---- */

/* The largest artifact accepted (the HTTP server's body limit is the same, main.c). */
#define API_ARTIFACT_MAX (256u << 20)

static void h_artifact_put(struct route_ctx *c)
{
	const char *id = routes_param(c->p, "digest");
	struct err e = {""};
	struct artifact_writer *w = NULL;
	if (!artifacts_valid_id(id)) {
		httpd_error(c->resp, 400, "artifact id must be sha256: and 64 lowercase hex digits");
		return;
	}
	int created = 0;
	int rc = artifacts_begin(&w, c->srv->artifacts_dir, id, API_ARTIFACT_MAX, &e);
	if (rc == 0) {
		rc = artifacts_write(w, c->req->body, c->req->body_len, &e);
		if (rc)
			artifacts_abort(w);
		else
			rc = artifacts_commit(w, &created, &e);
	}
	if (rc == ARTIFACTS_MISMATCH)
		httpd_error(c->resp, 400, "%s", e.msg);
	else if (rc == ARTIFACTS_TOOBIG)
		httpd_error(c->resp, 413, "%s", e.msg);
	else if (rc)
		httpd_error(c->resp, 500, "%s", e.msg);
	else
		reply_json(c->resp, created ? 201 : 200,
			   json_pack("{s:s, s:b}", "digest", id, "created", created));
}

/* ---- releases ---- */

static void h_release_push(struct route_ctx *c)
{
	const char *service = path_name(c, "service");
	if (!service)
		return;
	json_t *body = parse_body(c, API_BODY_RELEASE);
	if (!body)
		return;
	const char *version = field(body, "version"), *digest = field(body, "digest");
	json_t *cjson = json_object_get(body, "contract");
	struct err e = {""};
	const struct service_manifest *svc = NULL;
	int rc = catalog_service(c->srv->cat, service, &svc, &e);
	catalog_release_service(c->srv->cat, svc);
	if (rc) {
		if (rc == STORE_NOTFOUND)
			httpd_error(c->resp, 404, "service '%s' is not known: apply its manifest first", service);
		else
			httpd_error(c->resp, 500, "%s", e.msg);
		goto out;
	}
	int64_t size = 0;
	rc = artifacts_valid_id(digest) ? artifacts_stat(c->srv->artifacts_dir, digest, &size, &e)
					: ARTIFACTS_NOTFOUND;
	if (rc == ARTIFACTS_NOTFOUND) {
		httpd_error(c->resp, 400, "artifact %s has not been uploaded", digest);
		goto out;
	} else if (rc) {
		httpd_error(c->resp, 500, "%s", e.msg);
		goto out;
	}
	if (cjson && !json_is_null(cjson)) {
		contract *ct = NULL;
		if (contract_from_json(cjson, "contract", &ct, &e)) {
			httpd_error(c->resp, 400, "request body: %s", e.msg);
			goto out;
		}
		contract_free(ct);
	}
	int created = 0;
	rc = store_put_release(c->srv->store, service, version, digest, size,
			       json_is_object(cjson) ? cjson : NULL, &created, &e);
	if (rc) {
		httpd_error(c->resp, rc == STORE_CONFLICT ? 409 : 500, "%s", e.msg);
		goto out;
	}
	reply_json(c->resp, created ? 201 : 200,
		   json_pack("{s:s, s:s, s:s, s:b}", "service", service, "version", version, "digest",
			     digest, "created", created));
out:
	json_decref(body);
}

static void h_release_list(struct route_ctx *c)
{
	const char *service = path_name(c, "service");
	if (!service)
		return;
	json_t *list = NULL;
	const struct service_manifest *svc = NULL;
	struct err e = {""};
	int rc = catalog_service(c->srv->cat, service, &svc, &e);
	catalog_release_service(c->srv->cat, svc);
	if (rc) {
		if (rc == STORE_NOTFOUND)
			httpd_error(c->resp, 404, "service '%s' is not known", service);
		else
			httpd_error(c->resp, 500, "%s", e.msg);
		return;
	}
	if (store_list_releases(c->srv->store, service, &list, &e)) {
		httpd_error(c->resp, 500, "%s", e.msg);
		return;
	}
	reply_json(c->resp, 200, json_pack("{s:s, s:o}", "service", service, "releases", list));
}

/* ---- deployments ---- */

static void h_deploy(struct route_ctx *c)
{
	json_t *body = parse_body(c, API_BODY_DEPLOY);
	if (!body)
		return;
	const char *service = field(body, "service"), *version = field(body, "version");
	const char *env = field(body, "env");
	int force = json_is_true(json_object_get(body, "force"));
	enum pl_kind kind = json_is_true(json_object_get(body, "hotfix")) ? PL_HOTFIX : PL_DEPLOY;
	struct err e = {""};
	/* The gate: the release against every version that is live in the environment. */
	json_t *report = gate_can_i_deploy(c->srv->store, c->srv->runtimes, service, version, env, &e);
	if (!report) {
		httpd_error(c->resp, store_failed(&e) ? 500 : strstr(e.msg, "not known") ? 404 : 400, "%s", e.msg);
		json_decref(body);
		return;
	}
	const char *verdict = json_string_value(json_object_get(report, "verdict"));
	int refused = !verdict || strcmp(verdict, "ok");
	if (refused && !force) {
		reply_json(c->resp, 409,
			   json_pack("{s:s, s:o}", "error",
				     "the compatibility gate refuses this release next to what is live "
				     "(see the report; --force overrides and is recorded)",
				     "report", report));
		json_decref(body);
		return;
	}
	int64_t id = executor_create(c->srv->executor, service, env, version, kind, refused && force,
				     report, &e);
	json_decref(report);
	if (id < 0) {
		int status = store_failed(&e) ? 500 : strstr(e.msg, "not known") ? 404 : 400;
		httpd_error(c->resp, status, "%s", e.msg);
	} else {
		reply_json(c->resp, 201, json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)id, "service",
						   service, "version", version, "env", env));
	}
	json_decref(body);
}

/* The stable release a deployment in flight started from (its rollback target), or "". */
static void inflight_target(json_t *active, const char *service, char *target, size_t len,
			    int64_t *id)
{
	size_t i;
	json_t *d;
	target[0] = '\0';
	*id = 0;
	json_array_foreach(active, i, d) {
		if (strcmp(json_string_value(json_object_get(d, "service")), service))
			continue;
		struct pl_state st;
		if (pipeline_from_json(json_object_get(d, "state"), &st))
			continue;
		if (!pipeline_started(&st))
			continue;
		*id = json_integer_value(json_object_get(d, "id"));
		for (int k = 0; k < st.nregions && !target[0]; k++)
			if (!st.regions[k].stage && st.regions[k].stable[0])
				snprintf(target, len, "%s", st.regions[k].stable);
		return;
	}
}

static void h_rollback(struct route_ctx *c)
{
	const char *service = path_name(c, "service");
	if (!service)
		return;
	json_t *body = parse_body(c, API_BODY_ROLLBACK);
	if (!body)
		return;
	const char *env = field(body, "env"), *to = field(body, "to");
	struct err e = {""};
	const struct service_manifest *svc = NULL;
	int known = catalog_service(c->srv->cat, service, &svc, &e);
	catalog_release_service(c->srv->cat, svc);
	if (known) {
		if (known == STORE_NOTFOUND)
			httpd_error(c->resp, 404, "service '%s' is not known", service);
		else
			httpd_error(c->resp, 500, "%s", e.msg);
		json_decref(body);
		return;
	}
	json_t *active = NULL, *result = json_object();
	if (store_active_deployments(c->srv->store, &active, &e)) {
		json_decref(result);
		json_decref(body);
		httpd_error(c->resp, 500, "%s", e.msg);
		return;
	}
	char target[PL_NAME_MAX] = "";
	int64_t inflight = 0;
	inflight_target(active, service, target, sizeof(target), &inflight);
	json_decref(active);
	if (to) {
		snprintf(target, sizeof(target), "%s", to);
	} else if (inflight && !target[0]) {
		/* a first release in flight: there is nothing to return to, only to stop it */
		if (executor_abort(c->srv->executor, inflight, "rollback requested", 0, &e)) {
			json_decref(result);
			json_decref(body);
			httpd_error(c->resp, 500, "%s", e.msg);
			return;
		}
		json_object_set_new(result, "aborted", json_integer(inflight));
	} else if (!inflight) {
		/* nothing in flight: go back to the stable release before the current one */
		const struct env_manifest *envm = NULL;
		int rc = catalog_environment(c->srv->cat, env, &envm, &e);
		char cur[PL_NAME_MAX] = "";
		const char *rname = envm && envm->nregions ? envm->regions[0].name : NULL;
		if (rc >= 0 && rname)
			rc = store_get_stable(c->srv->store, service, env, rname, cur, sizeof(cur), &e);
		if (rc == 0 && rname)
			rc = store_previous_stable(c->srv->store, service, env, rname, cur, target,
						   sizeof(target), &e);
		catalog_release_environment(c->srv->cat, envm);
		if (rc < 0 || !rname) {
			/* env points into body: answer before freeing it */
			if (rc < 0)
				httpd_error(c->resp, 500, "%s", e.msg);
			else
				httpd_error(c->resp, 404, "environment '%s' is not known", env);
			json_decref(result);
			json_decref(body);
			return;
		}
		if (!target[0]) {
			httpd_error(c->resp, 409, "%s has no earlier stable release in %s to roll back to; "
						  "name one with --to", service, env);
			json_decref(result);
			json_decref(body);
			return;
		}
	}
	if (target[0]) {
		/* the rollback pre-empts the deployment in flight, in the same transaction */
		int64_t id = executor_create(c->srv->executor, service, env, target, PL_ROLLBACK, 0, NULL, &e);
		if (id < 0) {
			json_decref(result);
			json_decref(body);
			httpd_error(c->resp, store_failed(&e) ? 500 : strstr(e.msg, "not known") ? 404 : 400,
				    "%s", e.msg);
			return;
		}
		if (inflight)
			json_object_set_new(result, "preempted", json_integer(inflight));
		json_object_set_new(result, "id", json_integer(id));
		json_object_set_new(result, "version", json_string(target));
	}
	json_decref(body);
	reply_json(c->resp, 201, result);
}

static void h_retry(struct route_ctx *c)
{
	const char *ids = routes_param(c->p, "id");
	int64_t id;
	json_t *body = parse_body(c, API_BODY_RETRY);
	if (!body)
		return;
	const char *region = field(body, "region");
	char *end;
	id = strtoll(ids, &end, 10);
	struct err e = {""};
	if (*end || id <= 0)
		httpd_error(c->resp, 400, "deployment id must be a positive integer, got '%s'", ids);
	else if (executor_retry(c->srv->executor, id, region, &e))
		httpd_error(c->resp, store_failed(&e) ? 500 : strstr(e.msg, "not found") ? 404 : 409, "%s",
			    e.msg);
	else
		reply_json(c->resp, 200, json_pack("{s:I, s:s, s:b}", "id", (json_int_t)id, "region", region,
						   "retrying", 1));
	json_decref(body);
}

static void h_deployment_list(struct route_ctx *c)
{
	char service[NAME_QUERY_MAX];
	int bad = 0;
	const char *svc = query_name(c, "service", NAME_OBJECT, 0, service, &bad);
	if (bad)
		return;
	json_t *list = NULL;
	struct err e = {""};
	if (store_list_deployments(c->srv->store, svc, &list, &e)) {
		httpd_error(c->resp, 500, "%s", e.msg);
		return;
	}
	size_t i;
	json_t *d;
	json_array_foreach(list, i, d)
		json_object_del(d, "state");
	reply_json(c->resp, 200, json_pack("{s:o}", "deployments", list));
}

static int parse_id(const char *s, int64_t *id)
{
	char *end;
	long long v = strtoll(s, &end, 10);
	if (*s == '\0' || *end || v <= 0)
		return -1;
	*id = v;
	return 0;
}

static void deployment_get(struct route_ctx *c, int events)
{
	const char *ids = routes_param(c->p, "id");
	int64_t id;
	if (parse_id(ids, &id)) {
		httpd_error(c->resp, 400, "deployment id must be a positive integer, got '%s'", ids);
		return;
	}
	json_t *d = NULL;
	struct err e = {""};
	int rc = store_get_deployment(c->srv->store, id, &d, &e);
	if (rc) {
		httpd_error(c->resp, rc == STORE_NOTFOUND ? 404 : 500, "%s",
			    rc == STORE_NOTFOUND ? "no such deployment" : e.msg);
		return;
	}
	if (events) {
		json_t *list = NULL;
		if (store_list_events(c->srv->store, id, &list, &e)) {
			json_decref(d);
			httpd_error(c->resp, 500, "%s", e.msg);
			return;
		}
		json_object_set_new(d, "events", list);
	}
	/* the latest check of each region, while it runs */
	json_t *regions = json_object_get(json_object_get(d, "state"), "regions");
	size_t i;
	json_t *r;
	json_array_foreach(regions, i, r) {
		const struct window *w = verify_window(c->srv->verifier, id, (int)i);
		if (w && w->verdict[0])
			json_object_set_new(r, "check", json_string(w->verdict));
	}
	reply_json(c->resp, 200, d);
}

/* ---- status ---- */

/* NULL with e when the store failed. */
static json_t *region_status(api *srv, const char *service, const char *env,
			     const char *region, json_t *active, struct err *e)
{
	char stable[PL_NAME_MAX] = "";
	if (store_get_stable(srv->store, service, env, region, stable, sizeof(stable), e) < 0)
		return NULL;
	json_t *out = json_pack("{s:s, s:s?}", "region", region, "stable", stable[0] ? stable : NULL);
	json_t *traffic = json_array();
	int have_traffic = 0;
	size_t i;
	json_t *d;
	json_t *queued = json_array();
	int shown = 0;
	json_array_foreach(active, i, d) {
		if (strcmp(json_string_value(json_object_get(d, "service")), service))
			continue;
		struct pl_state st;
		if (pipeline_from_json(json_object_get(d, "state"), &st))
			continue;
		int64_t id = json_integer_value(json_object_get(d, "id"));
		if (!pipeline_started(&st) && shown) {
			json_array_append_new(queued, json_pack("{s:I, s:s, s:s}", "id", (json_int_t)id, "kind",
								 pipeline_kind_name(st.kind), "version", st.version));
			continue;
		}
		for (int ri = 0; ri < st.nregions; ri++) {
			if (strcmp(st.regions[ri].name, region) || strcmp(st.regions[ri].env, env))
				continue;
			const struct pl_region *r = &st.regions[ri];
			json_t *dj = json_pack("{s:I, s:s, s:s, s:s, s:s, s:i, s:i}", "id", (json_int_t)id, "kind",
					       pipeline_kind_name(st.kind), "strategy",
					       pipeline_strategy_name(st.cfg.strategy), "version", st.version,
					       "state", pipeline_rstate_name(r->state), "wave", r->wave,
					       "attempts", r->attempts);
			if (r->state == R_STEP) {
				json_object_set_new(dj, "step", json_integer(r->step + 1));
				json_object_set_new(dj, "steps", json_integer(st.cfg.strategy == PL_ROLLING
									     ? 0 : st.cfg.nsteps));
			}
			if (r->state == R_RETRY_WAIT)
				json_object_set_new(dj, "retry_at", json_integer(r->retry_at));
			const struct window *w = verify_window(srv->verifier, id, ri);
			if (w && w->verdict[0])
				json_object_set_new(dj, "check", json_string(w->verdict));
			json_object_set_new(out, "deployment", dj);
			shown = 1;
			if (pipeline_controls(&st, ri)) {
				struct pl_desired ds;
				pipeline_desired(&st, ri, &ds);
				int total = 0;
				for (int k = 0; k < ds.nroute; k++)
					total += ds.route[k].weight;
				for (int k = 0; k < ds.nroute; k++)
					json_array_append_new(traffic, json_pack("{s:s, s:i}", "version", ds.route[k].version,
										 "weight", total ? ds.route[k].weight * 100 / total : 0));
				have_traffic = 1;
			}
		}
	}
	if (json_array_size(queued))
		json_object_set_new(out, "queued", queued);
	else
		json_decref(queued);
	if (!have_traffic && stable[0])
		json_array_append_new(traffic, json_pack("{s:s, s:i}", "version", stable, "weight", 100));
	json_object_set_new(out, "traffic", traffic);
	struct instance_info *in = NULL;
	size_t n = 0;
	json_t *insts = json_array();
	runtime *rt = NULL;
	struct err re = {""};
	if (catalog_runtime(srv->cat, env, region, &rt, &re))
		json_object_set_new(out, "instances_error", json_string(re.msg));
	else if (runtime_list(rt, service, env, region, NULL, &in, &n) == 0) {
		for (size_t k = 0; k < n; k++)
			json_array_append_new(insts, json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s}", "id", in[k].id,
							       "version", in[k].version, "state",
							       runtime_state_name(in[k].state), "endpoint",
							       in[k].endpoint, "detail", in[k].detail, "restarts",
							       (int)in[k].restarts, "reason", in[k].reason));
		free(in);
	}
	json_object_set_new(out, "instances", insts);
	return out;
}

static void h_status(struct route_ctx *c)
{
	char want[NAME_QUERY_MAX];
	int bad = 0;
	const char *only = query_name(c, "service", NAME_OBJECT, 0, want, &bad);
	if (bad)
		return;
	const struct service_manifest **svcs = NULL;
	const struct env_manifest **envs = NULL;
	size_t nsvcs = 0, nenvs = 0;
	json_t *active = NULL;
	struct err e = {""};
	if (catalog_services(c->srv->cat, &svcs, &nsvcs, &e) ||
	    catalog_environments(c->srv->cat, &envs, &nenvs, &e) ||
	    store_active_deployments(c->srv->store, &active, &e)) {
		catalog_release_services(c->srv->cat, svcs, nsvcs);
		catalog_release_environments(c->srv->cat, envs, nenvs);
		httpd_error(c->resp, 500, "%s", e.msg);
		return;
	}
	json_t *out = json_array();
	size_t i, j, k;
	int found = 0, failed = 0;
	for (i = 0; i < nsvcs; i++) {
		const char *name = svcs[i]->name;
		if (failed || (only && strcmp(only, name)))
			continue;
		found = 1;
		json_t *ej = json_array();
		for (j = 0; j < nenvs; j++) {
			const char *env = envs[j]->name;
			json_t *rj = json_array();
			for (k = 0; k < envs[j]->nregions; k++) {
				json_t *rs = failed ? NULL
						    : region_status(c->srv, name, env,
								    envs[j]->regions[k].name, active, &e);
				failed |= !rs;
				json_array_append_new(rj, rs);
			}
			json_array_append_new(ej, json_pack("{s:s, s:o}", "env", env, "regions", rj));
		}
		json_array_append_new(out, json_pack("{s:s, s:o}", "service", name, "envs", ej));
	}
	catalog_release_services(c->srv->cat, svcs, nsvcs);
	catalog_release_environments(c->srv->cat, envs, nenvs);
	json_decref(active);
	if (failed) {
		json_decref(out);
		httpd_error(c->resp, 500, "%s", e.msg);
		return;
	}
	if (only && !found) {
		json_decref(out);
		httpd_error(c->resp, 404, "service '%s' is not known", only);
		return;
	}
	reply_json(c->resp, 200, json_pack("{s:o}", "services", out));
}

static void h_logs(struct route_ctx *c)
{
	char svc[NAME_QUERY_MAX], env[NAME_QUERY_MAX], region[NAME_QUERY_MAX], bytes[32];
	int bad = 0;
	const char *s = query_name(c, "service", NAME_OBJECT, 1, svc, &bad);
	const char *en = bad ? NULL : query_name(c, "env", NAME_OBJECT, 0, env, &bad);
	const char *r = bad ? NULL : query_name(c, "region", NAME_OBJECT, 0, region, &bad);
	if (bad)
		return;
	const char *b = httpd_query(c->req, "bytes", bytes, sizeof(bytes));
	size_t max = 65536;
	if (b) {
		char *end;
		unsigned long long v = strtoull(b, &end, 10);
		if (!*b || *end || b[0] == '-' || v == 0 || v > (8u << 20)) {
			httpd_error(c->resp, 400, "query parameter 'bytes': expected an integer 1..%u, got '%.32s'",
				    8u << 20, b);
			return;
		}
		max = (size_t)v;
	}
	c->resp->content_type = "text/plain; charset=utf-8";
	if (runtimes_logs(c->srv->runtimes, s, en, r, max, &c->resp->body))
		httpd_error(c->resp, 500, "could not read logs");
}

static void stop_soon(loop *l, void *arg)
{
	loop_stop(l);
}

static void h_shutdown(struct route_ctx *c)
{
	json_t *body = parse_body(c, API_BODY_SHUTDOWN);
	if (!body)
		return;
	c->srv->stop_data_plane = json_is_true(json_object_get(body, "data_plane"));
	json_decref(body);
	loop_timer(c->srv->loop, 50, stop_soon, NULL);
	reply_json(c->resp, 200, json_pack("{s:b, s:b}", "stopping", 1, "data_plane", c->srv->stop_data_plane));
}

static void h_can_i_deploy(struct route_ctx *c)
{
	char svc[NAME_QUERY_MAX], ver[NAME_QUERY_MAX], env[NAME_QUERY_MAX];
	int bad = 0;
	const char *s = query_name(c, "service", NAME_OBJECT, 1, svc, &bad);
	const char *v = bad ? NULL : query_name(c, "version", NAME_VERSION, 1, ver, &bad);
	const char *en = bad ? NULL : query_name(c, "env", NAME_OBJECT, 0, env, &bad);
	if (bad)
		return;
	struct err e = {""};
	json_t *report = gate_can_i_deploy(c->srv->store, c->srv->runtimes, s, v, en ? en : "production", &e);
	if (!report)
		httpd_error(c->resp, store_failed(&e) ? 500 : strstr(e.msg, "not known") ? 404 : 400, "%s", e.msg);
	else
		reply_json(c->resp, 200, report);
}

static void h_plan(struct route_ctx *c)
{
	json_t *body = parse_body(c, API_BODY_PLAN);
	if (!body)
		return;
	const char *env = field(body, "env");
	json_t *targets = json_object_get(body, "targets");
	struct err e = {""};
	json_t *report = gate_plan(c->srv->store, c->srv->runtimes, targets, env, &e);
	json_decref(body);
	if (!report)
		httpd_error(c->resp, store_failed(&e)                                           ? 500
				     : strstr(e.msg, "not known") || strstr(e.msg, "unknown") ? 404
											      : 400,
			    "%s", e.msg);
	else
		reply_json(c->resp, 200, report);
}

static void h_services(struct route_ctx *c)
{
	json_t *svcs = NULL, *envs = NULL;
	struct err e = {""};
	if (store_list_manifests(c->srv->store, "Service", &svcs, &e) ||
	    store_list_manifests(c->srv->store, "Environment", &envs, &e)) {
		json_decref(svcs);
		httpd_error(c->resp, 500, "%s", e.msg);
		return;
	}
	/* secret env values stay in the store; every answer shows them masked */
	json_t *shown = manifest_mask_secrets(svcs);
	json_decref(svcs);
	if (!shown) {
		json_decref(envs);
		httpd_error(c->resp, 500, "out of memory");
		return;
	}
	reply_json(c->resp, 200, json_pack("{s:o, s:o}", "services", shown, "environments", envs));
}



static void h_deployment_get(struct route_ctx *c)
{
	deployment_get(c, 0);
}

static void h_deployment_events(struct route_ctx *c)
{
	deployment_get(c, 1);
}

static void h_health(struct route_ctx *c)
{
	uint64_t passes, skipped;
	reconcile_counts(c->srv->reconciler, &passes, &skipped);
	reply_json(c->resp, 200, json_pack("{s:b, s:s, s:{s:I, s:I}}", "ok", 1, "version", SLUICE_VERSION,
					   "reconcile", "passes", (json_int_t)passes, "skipped", (json_int_t)skipped));
}

/* ---- the route table ---- */

/* Each handler gets its context from one adaptor per handler (the table's type). */
#define ADAPT(fn)                                                                              \
	static void r_##fn(void *ctx, const struct route *rt, const struct httpd_req *req,     \
			   const struct routes_params *p, struct httpd_resp *resp)             \
	{                                                                                      \
		struct route_ctx c = {.srv = ctx, .req = req, .resp = resp, .p = p};           \
		fn(&c);                                                                        \
	}
ADAPT(h_health)
ADAPT(h_apply)
ADAPT(h_artifact_put)
ADAPT(h_services)
ADAPT(h_release_push)
ADAPT(h_release_list)
ADAPT(h_rollback)
ADAPT(h_deploy)
ADAPT(h_deployment_list)
ADAPT(h_deployment_get)
ADAPT(h_retry)
ADAPT(h_deployment_events)
ADAPT(h_can_i_deploy)
ADAPT(h_plan)
ADAPT(h_status)
ADAPT(h_logs)
ADAPT(h_shutdown)

static const struct route api_table[] = {
	{"GET", "/v1/health", API_PUBLIC, r_h_health, "liveness"},
	{"POST", "/v1/apply", API_APPLY, r_h_apply, "apply manifests"},
	{"PUT", "/v1/artifacts/{digest}", API_RELEASE, r_h_artifact_put, "upload an artifact"},
	{"GET", "/v1/services", API_READ, r_h_services, "list services and environments"},
	{"POST", "/v1/services/{service}/releases", API_RELEASE, r_h_release_push, "register a release"},
	{"GET", "/v1/services/{service}/releases", API_READ, r_h_release_list, "list releases"},
	{"POST", "/v1/services/{service}/rollback", API_ROLLBACK, r_h_rollback, "roll back"},
	{"POST", "/v1/deployments", API_DEPLOY, r_h_deploy, "deploy a release"},
	{"GET", "/v1/deployments", API_READ, r_h_deployment_list, "list deployments"},
	{"GET", "/v1/deployments/{id}", API_READ, r_h_deployment_get, "one deployment"},
	{"POST", "/v1/deployments/{id}/retry", API_RETRY, r_h_retry, "retry a failed region"},
	{"GET", "/v1/deployments/{id}/events", API_READ, r_h_deployment_events, "a deployment's events"},
	{"GET", "/v1/can-i-deploy", API_READ, r_h_can_i_deploy, "the compatibility gate"},
	{"POST", "/v1/plan", API_READ, r_h_plan, "plan a multi-service change"},
	{"GET", "/v1/status", API_READ, r_h_status, "status of every service"},
	{"GET", "/v1/logs", API_READ, r_h_logs, "instance logs"},
	{"POST", "/v1/shutdown", API_ADMIN, r_h_shutdown, "stop the server"},
};

const struct route *api_routes(size_t *n)
{
	*n = sizeof(api_table) / sizeof(api_table[0]);
	return api_table;
}

const char *api_permission_name(enum api_permission p)
{
	static const char *const names[] = {"public", "read", "apply", "release", "deploy",
					    "rollback", "retry", "flags", "admin"};
	return (unsigned)p < sizeof(names) / sizeof(names[0]) ? names[p] : "?";
}

/* The host part of a Host value ("name", "name:port", "[v6]:port") into dst, lowercased;
 * -1 when it is malformed or too long. */
static int host_name(const char *v, char *dst, size_t len)
{
	const char *end;
	if (v[0] == '[') {
		end = strchr(v, ']');
		if (!end || (end[1] && end[1] != ':'))
			return -1;
		v++;
	} else {
		end = strchr(v, ':');
		if (!end)
			end = v + strlen(v);
	}
	size_t n = (size_t)(end - v);
	if (!n || n >= len)
		return -1;
	for (size_t i = 0; i < n; i++)
		dst[i] = (char)(v[i] >= 'A' && v[i] <= 'Z' ? v[i] + 32 : v[i]);
	dst[n] = '\0';
	if (*end == ']')
		end++;
	if (*end == ':' && (!end[1] || strspn(end + 1, "0123456789") != strlen(end + 1)))
		return -1;
	return 0;
}

/*
 * Browsers: a web page the operator opens may send "simple" cross-origin requests (a form's
 * POST, text/plain) without asking first, and DNS rebinding can make a foreign name point at
 * loopback. So: the Host header must name this server (loopback names and --allow-host), and
 * a request that may change something must say Content-Type: application/json (or
 * application/octet-stream for an artifact), which a page can only send after a CORS
 * preflight that this API never grants (it sends no CORS headers).
 */
static int mw_browser(void *ctx, const struct route *rt, const struct httpd_req *req,
		      const struct routes_params *p, struct httpd_resp *resp)
{
	api *a = ctx;
	char host[API_HOST_MAX + 16], name[API_HOST_MAX];
	if (!req->head || !httpd_header(req, "Host", host, sizeof(host))) {
		httpd_error(resp, 400, "a Host header is required");
		return 1;
	}
	int known = 0;
	if (host_name(host, name, sizeof(name)) == 0)
		for (int i = 0; i < a->nhosts && !known; i++)
			known = !strcmp(a->hosts[i], name);
	if (!known) {
		httpd_error(resp, 421, "this server does not answer to the name in Host '%s' (start it "
				       "with --allow-host NAME to allow one)", host);
		return 1;
	}
	if (!strcmp(req->method, "GET") || !strcmp(req->method, "HEAD"))
		return 0;
	const char *want = strcmp(rt->pattern, "/v1/artifacts/{digest}") ? "application/json"
									   : "application/octet-stream";
	char ct[128] = "";
	httpd_header(req, "Content-Type", ct, sizeof(ct));
	size_t wl = strlen(want);
	if (strncasecmp(ct, want, wl) || (ct[wl] && ct[wl] != ';' && ct[wl] != ' ')) {
		httpd_error(resp, 415, "%s %s needs Content-Type: %s (got '%s')", req->method, req->path,
			    want, ct);
		return 1;
	}
	return 0;
}

/* Logs every request that may change something, with its answer. */
static void log_change(void *ctx, const struct route *rt, const struct httpd_req *req,
		       const struct httpd_resp *resp)
{
	if (!strcmp(req->method, "GET") || !strcmp(req->method, "HEAD"))
		return;
	log_info("api: %s %s -> %d (%s, from %s)", req->method, req->path, resp->status,
		 rt ? api_permission_name(rt->permission) : "no route", req->peer);
}

static routes_middleware *const api_middleware[] = {mw_browser, NULL};

static const struct routes_table api_dispatch = {
	.routes = api_table,
	.n = sizeof(api_table) / sizeof(api_table[0]),
	.middleware = api_middleware, /* browser safety; authentication and limits go here, in order */
	.after = log_change,
};

api *api_new(const struct api_deps *d)
{
	api *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->loop = d->loop;
	a->store = d->store;
	a->runtimes = d->runtimes;
	a->executor = d->executor;
	a->reconciler = d->reconciler;
	a->verifier = d->verifier;
	a->cat = d->catalog;
	if (!a->cat && !(a->cat = a->own_cat = catalog_new(d->store, d->runtimes))) {
		free(a);
		return NULL;
	}
	snprintf(a->artifacts_dir, sizeof(a->artifacts_dir), "%s", d->artifacts_dir);
	static const char *const loopback[] = {"localhost", "127.0.0.1", "[::1]", NULL};
	for (int k = 0; k < 2; k++) {
		const char *const *list = k ? d->hosts : loopback;
		for (size_t i = 0; list && list[i] && a->nhosts < API_MAX_HOSTS; i++)
			if (host_name(list[i], a->hosts[a->nhosts], API_HOST_MAX) == 0)
				a->nhosts++;
	}
	return a;
}

void api_free(api *a)
{
	if (a)
		catalog_free(a->own_cat);
	free(a);
}

int api_stop_data_plane(const api *a)
{
	return a->stop_data_plane;
}

void api_handle(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	routes_dispatch(&api_dispatch, ctx, req, resp);
}
