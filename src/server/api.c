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
#include "flags/flagset.h"
#include "http/routes.h"
#include "server/api.h"
#include "server/api_body.h"
#include "server/api_internal.h"
#include "server/notifier.h"
#include "core/notify.h"
#include "server/gate.h"
#include "server/tokens.h"
#include "server/catalog.h"
#include "server/executor.h"
#include "server/listing.h"
#include "server/verify.h"
#include "store/artifacts.h"
#include "util/doc.h"
#include "util/shape.h"
#include "util/name.h"
#include "util/sha256.h"


static void reply_with(struct httpd_resp *resp, int status, json_t *body, size_t dump_flags)
{
	resp->status = status;
	char *txt = json_dumps(body, dump_flags | JSON_PRESERVE_ORDER);
	json_decref(body);
	if (!txt || buf_adds(&resp->body, txt) || buf_adds(&resp->body, "\n")) {
		buf_reset(&resp->body);
		resp->status = 500;
		if (buf_adds(&resp->body, "{\"error\": \"response too large\"}\n"))
			resp->status = 500;
	}
	free(txt);
}

void api_reply(struct httpd_resp *resp, int status, json_t *body /* stolen */)
{
	reply_with(resp, status, body, JSON_INDENT(2));
}

void api_reply_compact(struct httpd_resp *resp, int status, json_t *body /* stolen */)
{
	reply_with(resp, status, body, JSON_COMPACT);
}

/* ---- request bodies: typed strictly, each against its table (util/shape.h) ---- */

/* The request body checked as a body of `kind` (server/api_body.h): a new reference to its
 * normalized form (defaults filled), or NULL after answering 400 with the line and column of
 * invalid JSON, or the field path and what was expected. An empty body reads as {} (a kind
 * without required fields accepts it). Duplicate keys are refused. */
json_t *api_parse(struct route_ctx *c, enum api_body kind)
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

const char *api_field(const json_t *body, const char *key)
{
	return json_string_value(json_object_get(body, key));
}

/* A query parameter that must follow the rule of `kind` (util/name.h), decoded into dst (at
 * least NAME_QUERY_MAX bytes): NULL when absent, or after answering 400 (*bad set) when it is
 * there and breaks the rule, or when required and absent. */
const char *api_query_name(struct route_ctx *c, const char *key, enum name_kind kind, int required,
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
const char *api_path_name(struct route_ctx *c, const char *param)
{
	const char *v = routes_param(c->p, param);
	if (!v || !name_object_ok(v)) {
		httpd_error(c->resp, 400, "%s '%s': use lowercase letters, digits and '-' (at most 63)",
			    param, v ? v : "");
		return NULL;
	}
	return v;
}

/* ---- authorization of a request's target ---- */

/* Whether a route may change something: what the audit log records. (POST /v1/plan only
 * reads: its permission says so.) */
static int changes(const struct route *rt)
{
	return rt && strcmp(rt->method, "GET") && auth_action_changes((enum auth_action)rt->permission);
}

/* The audit record of a request that may change something: attached to the store so that the
 * handler's commit writes it in its transaction (store.h), naming the target once the handler
 * knows it (a->target_*). */
static void audit_attach(api *a, const struct httpd_req *req, enum auth_action act)
{
	char request[300];
	snprintf(request, sizeof(request), "%s %s", req->method, req->path);
	struct store_audit rec = {.token = a->who.name,
				  .action = auth_action_name(act),
				  .request = request,
				  .service = a->target_service[0] ? a->target_service : NULL,
				  .env = a->target_env[0] ? a->target_env : NULL,
				  .result = "ok",
				  .client = req->peer};
	struct err e = {""};
	if (store_audit_attach(a->store, &rec, &e))
		log_error("api: could not prepare the audit record: %s", e.msg);
}

/* Names the target of a request that changes something (NULL: none in particular). */
void api_target(struct route_ctx *c, enum auth_action act, const char *service, const char *env)
{
	api *a = c->srv;
	if (!changes(c->rt))
		return;
	snprintf(a->target_service, sizeof(a->target_service), "%s", service ? service : "");
	snprintf(a->target_env, sizeof(a->target_env), "%s", env ? env : "");
	audit_attach(a, c->req, act);
}


/* Whether the caller may do `act` on service in env (NULL: every one); answers 403 and
 * returns 0 when not. A route that changes something audits this target. */
int api_allowed(struct route_ctx *c, enum auth_action act, const char *service, const char *env,
		   enum target_kind kind)
{
	api *a = c->srv;
	api_target(c, act, service, kind == TARGET_SERVICE_ANY_ENV ? NULL : env);
	int ok = kind == TARGET_SERVICE_ANY_ENV ? auth_allows_service(&a->who, act, service)
		 : kind == TARGET_ENV		 ? auth_allows_env(&a->who, act, env)
						 : auth_allows(&a->who, act, service, env);
	if (!ok && kind == TARGET_ENV)
		httpd_error(c->resp, 403, "token '%s' may not %s in %s", a->who.name, auth_action_name(act),
			    env ? env : "every environment");
	else if (!ok)
		httpd_error(c->resp, 403, "token '%s' may not %s %s%s%s", a->who.name, auth_action_name(act),
			    service ? service : "every service", kind == TARGET_EXACT ? " in " : "",
			    kind == TARGET_EXACT ? (env ? env : "every environment") : "");
	return ok;
}

/* Whether the caller may read what concerns service in env (NULL env: any of them); for
 * filtering lists, without answering. */
int api_may_read(const api *a, const char *service, const char *env)
{
	return env ? auth_allows(&a->who, AUTH_READ, service, env)
		   : auth_allows_service(&a->who, AUTH_READ, service);
}

/* ---- POST /v1/apply ---- */

/* A FlagSet manifest: its flag set as the environment's next version, unless it is the current
 * one already (*changed 0). Its warnings are appended to `warnings`. In the caller's
 * transaction. */
static int apply_flagset(struct route_ctx *c, const json_t *m, json_t *warnings, int *changed, struct err *e)
{
	const char *env = json_string_value(json_object_get(m, "name"));
	json_t *set_doc = flagset_manifest_doc(m), *cur = NULL;
	flagset *fs = NULL;
	char label[96];
	snprintf(label, sizeof(label), "FlagSet '%s'", env);
	int rc = set_doc ? flagset_from_json(set_doc, label, &fs, e) : err_set(e, "out of memory");
	if (!rc) {
		for (size_t k = 0; k < flagset_warning_count(fs); k++)
			json_array_append_new(warnings, json_sprintf("FlagSet %s: %s", env, flagset_warning(fs, k)));
		rc = store_get_flags(c->srv->store, env, &cur, e);
		if (rc == STORE_NOTFOUND)
			rc = 0;
	}
	*changed = !rc && !(cur && json_equal(json_object_get(cur, "doc"), (json_t *)flagset_json(fs)));
	if (!rc && *changed) {
		int64_t version;
		rc = store_put_flags(c->srv->store, env, flagset_json(fs), c->srv->who.name, "sluice apply",
				     &version, e);
	}
	flagset_free(fs);
	json_decref(cur);
	json_decref(set_doc);
	return rc ? -1 : 0;
}

static void h_apply(struct route_ctx *c)
{
	json_t *body = api_parse(c, API_BODY_APPLY);
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
		api_reply(c->resp, 400, r);
		json_decref(all);
		json_decref(body);
		return;
	}
	json_decref(errors);
	/* every manifest within the token's reach, or nothing is applied: a Service manifest acts
	 * in every environment, an Environment manifest on every service */
	const char *one = NULL;
	int several = 0;
	json_t *m;
	json_array_foreach(all, i, m) {
		const char *kind = json_string_value(json_object_get(m, "kind"));
		const char *name = json_string_value(json_object_get(m, "name"));
		int svc = !strcmp(kind, "Service");
		several |= !svc || (one && strcmp(one, name));
		one = svc ? name : one;
		/* a FlagSet is an environment's feature flags: changing them is the flags action */
		int ok = !strcmp(kind, "FlagSet") ? api_allowed(c, AUTH_FLAGS, NULL, name, TARGET_ENV)
						  : api_allowed(c, AUTH_APPLY, svc ? name : NULL, svc ? NULL : name,
								TARGET_EXACT);
		if (!ok) {
			json_decref(all);
			json_decref(body);
			return;
		}
	}
	api_target(c, AUTH_APPLY, several ? NULL : one, NULL);
	struct err e = {""};
	json_t *applied = json_array(), *warnings = json_array();
	int rc = store_begin(c->srv->store, &e);
	json_array_foreach(all, i, m) {
		if (rc)
			break;
		const char *kind = json_string_value(json_object_get(m, "kind"));
		const char *name = json_string_value(json_object_get(m, "name"));
		int changed = 0;
		if (!strcmp(kind, "FlagSet"))
			rc = apply_flagset(c, m, warnings, &changed, &e);
		else
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
		json_decref(warnings);
		httpd_error(c->resp, 500, "%s", e.msg);
	} else {
		api_reply(c->resp, 200, json_pack("{s:o, s:o}", "applied", applied, "warnings", warnings));
	}
	json_decref(all);
	json_decref(body);
}

/* ---- PUT /v1/artifacts/sha256:HEX ---- */

/* The largest artifact accepted: the route's body limit (the table below). */
#define API_ARTIFACT_MAX (256u << 20)

/*
 * An artifact is never held in memory: api_on_head opens the writer (store/artifacts.h) when
 * the head arrives and the server streams the body into it (httpd_body), hashing as it goes;
 * the handler commits what was streamed (the digest checked, then renamed into place) and
 * upload_done drops whatever was not committed: a body over the limit, a refused digest, a
 * client that went away or timed out mid-body. Only the temporary file existed, and it is gone.
 */
struct upload {
	struct artifact_writer *w; /* NULL once the handler took it */
	char id[ARTIFACTS_ID_LEN + 1];
	uint64_t got;
};

static int upload_write(void *arg, const char *data, size_t len, struct err *e)
{
	struct upload *u = arg;
	int rc = artifacts_write(u->w, data, len, e);
	if (rc == ARTIFACTS_TOOBIG)
		return 413;
	if (rc)
		return 500;
	u->got += len;
	return 0;
}

static void upload_done(void *arg)
{
	struct upload *u = arg;
	if (u->w) {
		log_info("api: upload of artifact %s dropped after %llu bytes (nothing stored)", u->id,
			 (unsigned long long)u->got);
		artifacts_abort(u->w);
	}
	free(u);
}

static void h_artifact_put(struct route_ctx *c)
{
	const char *id = routes_param(c->p, "digest");
	struct upload *u = c->req->body_sink;
	/* artifacts are content-addressed and belong to no service: any release scope uploads */
	api_target(c, AUTH_RELEASE, NULL, NULL);
	if (!artifacts_valid_id(id)) {
		httpd_error(c->resp, 400, "artifact id must be sha256: and 64 lowercase hex digits");
		return;
	}
	if (!u || !u->w) {
		/* the server was composed without api_on_head: the body was not streamed */
		httpd_error(c->resp, 500, "artifact uploads need the server's on_head hook (api_on_head)");
		return;
	}
	struct artifact_writer *w = u->w;
	u->w = NULL; /* commit frees it, whatever it answers */
	struct err e = {""};
	int created = 0;
	int rc = artifacts_commit(w, &created, &e);
	/* a shared store (replicas on several machines) gets its copy before the answer: a
	 * release pushed next may be started by a replica that never saw this upload */
	if (!rc && store_shared(c->srv->store) &&
	    artifacts_share(c->srv->store, c->srv->artifacts_dir, id, &e))
		rc = -1;
	if (rc == ARTIFACTS_MISMATCH)
		httpd_error(c->resp, 400, "%s", e.msg);
	else if (rc)
		httpd_error(c->resp, 500, "%s", e.msg);
	else
		api_reply(c->resp, created ? 201 : 200,
			   json_pack("{s:s, s:b, s:I}", "digest", id, "created", created, "size",
				     (json_int_t)u->got));
}

/* ---- releases ---- */

static void h_release_push(struct route_ctx *c)
{
	const char *service = api_path_name(c, "service");
	if (!service)
		return;
	if (!api_allowed(c, AUTH_RELEASE, service, NULL, TARGET_SERVICE_ANY_ENV))
		return;
	json_t *body = api_parse(c, API_BODY_RELEASE);
	if (!body)
		return;
	const char *version = api_field(body, "version"), *digest = api_field(body, "digest");
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
	rc = artifacts_valid_id(digest) ? artifacts_find(c->srv->store, c->srv->artifacts_dir, digest, &size, &e)
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
	rc = store_begin(c->srv->store, &e);
	if (!rc)
		rc = store_put_release(c->srv->store, service, version, digest, size,
				       json_is_object(cjson) ? cjson : NULL, &created, &e);
	if (!rc)
		rc = store_commit(c->srv->store, &e);
	else
		store_rollback(c->srv->store);
	if (rc) {
		httpd_error(c->resp, rc == STORE_CONFLICT ? 409 : 500, "%s", e.msg);
		goto out;
	}
	api_reply(c->resp, created ? 201 : 200,
		   json_pack("{s:s, s:s, s:s, s:b}", "service", service, "version", version, "digest",
			     digest, "created", created));
out:
	json_decref(body);
}

static void h_release_list(struct route_ctx *c)
{
	const char *service = api_path_name(c, "service");
	if (!service || !api_allowed(c, AUTH_READ, service, NULL, TARGET_SERVICE_ANY_ENV))
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
	api_reply(c->resp, 200, json_pack("{s:s, s:o}", "service", service, "releases", list));
}

/* ---- deployments ---- */

static void h_deploy(struct route_ctx *c)
{
	json_t *body = api_parse(c, API_BODY_DEPLOY);
	if (!body)
		return;
	const char *service = api_field(body, "service"), *version = api_field(body, "version");
	const char *env = api_field(body, "env");
	int force = json_is_true(json_object_get(body, "force"));
	enum pl_kind kind = json_is_true(json_object_get(body, "hotfix")) ? PL_HOTFIX : PL_DEPLOY;
	if (!api_allowed(c, AUTH_DEPLOY, service, env, TARGET_EXACT)) {
		json_decref(body);
		return;
	}
	struct err e = {""};
	/* The gate: the release against every version that is live in the environment. */
	json_t *report = gate_can_i_deploy(c->srv->store, c->srv->runtimes, c->srv->cat, service, version,
					   env, &e);
	if (!report) {
		httpd_error(c->resp, store_failed(&e) ? 500 : strstr(e.msg, "not known") ? 404 : 400, "%s", e.msg);
		json_decref(body);
		return;
	}
	const char *verdict = json_string_value(json_object_get(report, "verdict"));
	int refused = !verdict || strcmp(verdict, "ok");
	if (refused && !force) {
		c->srv->gate_refusals++;
		/* announced on its own (the refusal changes nothing else): one statement */
		char when[32];
		notify_time(store_now_ms(), when);
		json_t *notice = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:O}", "type", "gate.refused", "time",
					   when, "service", service, "env", env, "version", version, "message",
					   "the compatibility gate refuses this release next to what is live",
					   "report", report);
		if (notifier_raise(c->srv->store, env, service, notice, &e))
			log_warn("api: the gate's refusal of %s %s is not announced: %s", service, version, e.msg);
		json_decref(notice);
		api_reply(c->resp, 409,
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
		api_reply(c->resp, 201, json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)id, "service",
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
	const char *service = api_path_name(c, "service");
	if (!service)
		return;
	json_t *body = api_parse(c, API_BODY_ROLLBACK);
	if (!body)
		return;
	const char *env = api_field(body, "env"), *to = api_field(body, "to");
	if (!api_allowed(c, AUTH_ROLLBACK, service, env, TARGET_EXACT)) {
		json_decref(body);
		return;
	}
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
	api_reply(c->resp, 201, result);
}

static void h_retry(struct route_ctx *c)
{
	const char *ids = routes_param(c->p, "id");
	int64_t id;
	json_t *body = api_parse(c, API_BODY_RETRY);
	if (!body)
		return;
	const char *region = api_field(body, "region");
	char *end;
	id = strtoll(ids, &end, 10);
	struct err e = {""};
	json_t *dep = NULL;
	int rc = *end || id <= 0 ? 1 : store_get_deployment(c->srv->store, id, &dep, &e);
	if (*end || id <= 0)
		httpd_error(c->resp, 400, "deployment id must be a positive integer, got '%s'", ids);
	else if (rc)
		httpd_error(c->resp, rc == STORE_NOTFOUND ? 404 : 500, "%s%s",
			    rc == STORE_NOTFOUND ? "no such deployment: " : "", e.msg);
	else if (!api_allowed(c, AUTH_RETRY, json_string_value(json_object_get(dep, "service")),
			  json_string_value(json_object_get(dep, "env")), TARGET_EXACT))
		;
	else if (executor_retry(c->srv->executor, id, region, &e))
		httpd_error(c->resp, store_failed(&e) ? 500 : strstr(e.msg, "not found") ? 404 : 409, "%s",
			    e.msg);
	else
		api_reply(c->resp, 200, json_pack("{s:I, s:s, s:b}", "id", (json_int_t)id, "region", region,
						   "retrying", 1));
	json_decref(dep);
	json_decref(body);
}

static void h_deployment_list(struct route_ctx *c)
{
	char service[NAME_QUERY_MAX];
	int bad = 0;
	const char *svc = api_query_name(c, "service", NAME_OBJECT, 0, service, &bad);
	if (bad)
		return;
	json_t *list = NULL;
	struct err e = {""};
	if (store_list_deployments(c->srv->store, svc, &list, &e)) {
		httpd_error(c->resp, 500, "%s", e.msg);
		return;
	}
	json_t *shown = json_array();
	size_t i;
	json_t *d;
	json_array_foreach(list, i, d) {
		json_object_del(d, "state");
		if (api_may_read(c->srv, json_string_value(json_object_get(d, "service")),
			     json_string_value(json_object_get(d, "env"))))
			json_array_append(shown, d);
	}
	json_decref(list);
	api_reply(c->resp, 200, json_pack("{s:o}", "deployments", shown));
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
	if (!api_allowed(c, AUTH_READ, json_string_value(json_object_get(d, "service")),
		     json_string_value(json_object_get(d, "env")), TARGET_EXACT)) {
		json_decref(d);
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
	api_reply(c->resp, 200, d);
}

/* ---- status ---- */

/* What a status answer reads once rather than once per region: the stable releases (one
 * query), each runtime's instances (one listing, server/listing.h) and the leases by name.
 * Without it, the status of every service made a store query and a listing of every instance
 * for each region: quadratic in the services. */
struct status_reads {
	json_t *stable;      /* "service/env/region" -> version */
	json_t *leases;      /* lease name -> lease */
	listing *instances;
};

static int status_reads_init(struct status_reads *r, store *st, const char *only, struct err *e)
{
	memset(r, 0, sizeof(*r));
	json_t *rows = NULL, *leases = NULL;
	if (store_list_stable(st, only, &rows, e) || store_list_leases(st, &leases, e)) {
		json_decref(rows);
		return -1;
	}
	r->stable = json_object();
	r->leases = json_object();
	r->instances = listing_new(only);
	size_t i;
	json_t *x;
	json_array_foreach(rows, i, x) {
		char key[3 * 96];
		snprintf(key, sizeof(key), "%s/%s/%s", json_string_value(json_object_get(x, "service")),
			 json_string_value(json_object_get(x, "env")),
			 json_string_value(json_object_get(x, "region")));
		json_object_set(r->stable, key, json_object_get(x, "version"));
	}
	json_array_foreach(leases, i, x) {
		const char *name = json_string_value(json_object_get(x, "name"));
		if (name)
			json_object_set(r->leases, name, x);
	}
	json_decref(rows);
	json_decref(leases);
	if (!r->stable || !r->leases || !r->instances) {
		json_decref(r->stable);
		json_decref(r->leases);
		listing_free(r->instances);
		return err_set(e, "out of memory");
	}
	return 0;
}

static void status_reads_release(struct status_reads *r)
{
	json_decref(r->stable);
	json_decref(r->leases);
	listing_free(r->instances);
}

static json_t *region_status(api *srv, struct status_reads *reads, const char *service,
			     const char *env, const char *region, json_t *active)
{
	char stable[PL_NAME_MAX] = "", key[3 * 96];
	snprintf(key, sizeof(key), "%s/%s/%s", service, env, region);
	const char *sv = json_string_value(json_object_get(reads->stable, key));
	if (sv)
		snprintf(stable, sizeof(stable), "%s", sv);
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
	const struct instance_info *in = NULL;
	size_t n = 0;
	json_t *insts = json_array();
	runtime *rt = NULL;
	struct err re = {""};
	if (catalog_runtime(srv->cat, env, region, &rt, &re))
		json_object_set_new(out, "instances_error", json_string(re.msg));
	else if (!rt)
		json_object_set_new(out, "instances_error",
				    json_string("the local instances are seen by the replica that drives them"));
	else if (listing_region(reads->instances, rt, service, env, region, &in, &n) == 0) {
		for (size_t k = 0; k < n; k++)
			json_array_append_new(insts, json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s}", "id", in[k].id,
							       "version", in[k].version, "state",
							       runtime_state_name(in[k].state), "endpoint",
							       in[k].endpoint, "detail", in[k].detail, "restarts",
							       (int)in[k].restarts, "reason", in[k].reason));
	}
	json_object_set_new(out, "instances", insts);
	return out;
}

static void h_status(struct route_ctx *c)
{
	char want[NAME_QUERY_MAX];
	int bad = 0;
	const char *only = api_query_name(c, "service", NAME_OBJECT, 0, want, &bad);
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
	/* the stable releases and the instances, and which replica drives each service, since
	 * when (leases; none with one server that has not ticked yet) */
	struct status_reads reads;
	if (status_reads_init(&reads, c->srv->store, only, &e)) {
		catalog_release_services(c->srv->cat, svcs, nsvcs);
		catalog_release_environments(c->srv->cat, envs, nenvs);
		json_decref(active);
		httpd_error(c->resp, 500, "%s", e.msg);
		return;
	}
	json_t *out = json_array();
	size_t i, j, k;
	int found = 0, forbidden = 0;
	for (i = 0; i < nsvcs; i++) {
		const char *name = svcs[i]->name;
		if (only && strcmp(only, name))
			continue;
		found = 1;
		if (!api_may_read(c->srv, name, NULL)) {
			forbidden = only != NULL;
			continue;
		}
		json_t *ej = json_array();
		for (j = 0; j < nenvs; j++) {
			const char *env = envs[j]->name;
			if (!api_may_read(c->srv, name, env))
				continue;
			json_t *rj = json_array();
			for (k = 0; k < envs[j]->nregions; k++)
				json_array_append_new(rj, region_status(c->srv, &reads, name, env,
									envs[j]->regions[k].name, active));
			json_array_append_new(ej, json_pack("{s:s, s:o}", "env", env, "regions", rj));
		}
		json_t *sj = json_pack("{s:s, s:o}", "service", name, "envs", ej);
		char lname[160];
		snprintf(lname, sizeof(lname), "service/%s", name);
		json_t *l = json_object_get(reads.leases, lname);
		if (l) {
			json_int_t left = json_integer_value(json_object_get(l, "remaining_ms"));
			json_object_set_new(sj, "owner",
					    left > 0 ? json_pack("{s:O, s:O, s:O, s:I}", "replica",
								 json_object_get(l, "holder"), "epoch",
								 json_object_get(l, "epoch"), "since",
								 json_object_get(l, "since"), "expires_in_ms", left)
						 : json_null());
		}
		json_array_append_new(out, sj);
	}
	status_reads_release(&reads);
	catalog_release_services(c->srv->cat, svcs, nsvcs);
	catalog_release_environments(c->srv->cat, envs, nenvs);
	json_decref(active);
	if (only && !found) {
		json_decref(out);
		httpd_error(c->resp, 404, "service '%s' is not known", only);
		return;
	}
	if (forbidden) {
		json_decref(out);
		(void)api_allowed(c, AUTH_READ, only, NULL, TARGET_SERVICE_ANY_ENV);
		return;
	}
	api_reply(c->resp, 200, json_pack("{s:o}", "services", out));
}

static void h_logs(struct route_ctx *c)
{
	char svc[NAME_QUERY_MAX], env[NAME_QUERY_MAX], region[NAME_QUERY_MAX], bytes[32];
	int bad = 0;
	const char *s = api_query_name(c, "service", NAME_OBJECT, 1, svc, &bad);
	const char *en = bad ? NULL : api_query_name(c, "env", NAME_OBJECT, 0, env, &bad);
	const char *r = bad ? NULL : api_query_name(c, "region", NAME_OBJECT, 0, region, &bad);
	if (bad || !api_allowed(c, AUTH_READ, s, en, TARGET_EXACT))
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
	json_t *body = api_parse(c, API_BODY_SHUTDOWN);
	if (!body)
		return;
	api_target(c, AUTH_ADMIN, NULL, NULL);
	c->srv->stop_data_plane = json_is_true(json_object_get(body, "data_plane"));
	json_decref(body);
	loop_timer(c->srv->loop, 50, stop_soon, NULL);
	api_reply(c->resp, 200, json_pack("{s:b, s:b}", "stopping", 1, "data_plane", c->srv->stop_data_plane));
}

static void h_can_i_deploy(struct route_ctx *c)
{
	char svc[NAME_QUERY_MAX], ver[NAME_QUERY_MAX], env[NAME_QUERY_MAX];
	int bad = 0;
	const char *s = api_query_name(c, "service", NAME_OBJECT, 1, svc, &bad);
	const char *v = bad ? NULL : api_query_name(c, "version", NAME_VERSION, 1, ver, &bad);
	const char *en = bad ? NULL : api_query_name(c, "env", NAME_OBJECT, 0, env, &bad);
	if (bad || !api_allowed(c, AUTH_READ, s, en ? en : "production", TARGET_EXACT))
		return;
	struct err e = {""};
	json_t *report = gate_can_i_deploy(c->srv->store, c->srv->runtimes, c->srv->cat, s, v,
					   en ? en : "production", &e);
	if (!report)
		httpd_error(c->resp, store_failed(&e) ? 500 : strstr(e.msg, "not known") ? 404 : 400, "%s", e.msg);
	else
		api_reply(c->resp, 200, report);
}

static void h_plan(struct route_ctx *c)
{
	json_t *body = api_parse(c, API_BODY_PLAN);
	if (!body)
		return;
	const char *env = api_field(body, "env");
	json_t *targets = json_object_get(body, "targets");
	const char *svc;
	json_t *ver;
	json_object_foreach(targets, svc, ver)
		if (!api_allowed(c, AUTH_READ, svc, env, TARGET_EXACT)) {
			json_decref(body);
			return;
		}
	struct err e = {""};
	json_t *report = gate_plan(c->srv->store, c->srv->runtimes, c->srv->cat, targets, env, &e);
	json_decref(body);
	if (!report)
		httpd_error(c->resp, store_failed(&e)                                           ? 500
				     : strstr(e.msg, "not known") || strstr(e.msg, "unknown") ? 404
											      : 400,
			    "%s", e.msg);
	else
		api_reply(c->resp, 200, report);
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
	json_t *svc_shown = json_array(), *env_shown = json_array(), *m;
	size_t i;
	json_array_foreach(svcs, i, m)
		if (api_may_read(c->srv, json_string_value(json_object_get(m, "name")), NULL))
			json_array_append(svc_shown, m);
	json_array_foreach(envs, i, m)
		if (auth_allows_env(&c->srv->who, AUTH_READ, json_string_value(json_object_get(m, "name"))))
			json_array_append(env_shown, m);
	json_decref(svcs);
	json_decref(envs);
	/* secret env values stay in the store; every answer shows them masked */
	json_t *shown = manifest_mask_secrets(svc_shown);
	json_decref(svc_shown);
	if (!shown) {
		json_decref(env_shown);
		httpd_error(c->resp, 500, "out of memory");
		return;
	}
	api_reply(c->resp, 200, json_pack("{s:o, s:o}", "services", shown, "environments", env_shown));
}



static void h_deployment_get(struct route_ctx *c)
{
	deployment_get(c, 0);
}

static void h_deployment_events(struct route_ctx *c)
{
	deployment_get(c, 1);
}

/* Liveness, for anyone: nothing else (no version, no counters, no paths). */
static void h_health(struct route_ctx *c)
{
	api_reply(c->resp, 200, json_pack("{s:b}", "ok", 1));
}

static void h_server(struct route_ctx *c)
{
	uint64_t passes, skipped;
	reconcile_counts(c->srv->reconciler, &passes, &skipped);
	api_reply(c->resp, 200, json_pack("{s:b, s:s, s:{s:I, s:I}}", "ok", 1, "version", SLUICE_VERSION,
					   "reconcile", "passes", (json_int_t)passes, "skipped", (json_int_t)skipped));
}

/* ---- tokens and the audit log (admin) ---- */

static void h_token_create(struct route_ctx *c)
{
	json_t *body = api_parse(c, API_BODY_TOKEN);
	if (!body)
		return;
	const char *name = api_field(body, "name");
	json_t *exp = json_object_get(body, "expires_in_ms");
	int64_t expires_at = json_is_integer(exp) ? store_now_ms() + json_integer_value(exp) : 0;
	api_target(c, AUTH_ADMIN, NULL, NULL);
	char secret[AUTH_SECRET_LEN + 1], hash[AUTH_HASH_LEN + 1];
	struct err e = {""};
	int rc = auth_new_secret(secret, hash, &e);
	if (rc) {
		httpd_error(c->resp, 500, "%s", e.msg);
		json_decref(body);
		return;
	}
	struct store_token t = {.name = name, .hash = hash, .scopes = json_object_get(body, "scopes"),
				.expires_at = expires_at, .created_by = c->srv->who.name};
	rc = store_begin(c->srv->store, &e);
	if (!rc)
		rc = store_put_token(c->srv->store, &t, &e);
	if (!rc)
		rc = store_commit(c->srv->store, &e);
	else
		store_rollback(c->srv->store);
	if (rc)
		httpd_error(c->resp, rc == STORE_CONFLICT ? 409 : 500, "%s", e.msg);
	else
		api_reply(c->resp, 201,
			   json_pack("{s:s, s:s, s:O, s:o}", "name", name, "token", secret, "scopes",
				     json_object_get(body, "scopes"), "expires_at",
				     expires_at ? json_integer(expires_at) : json_null()));
	memset(secret, 0, sizeof(secret));
	json_decref(body);
}

static void h_token_list(struct route_ctx *c)
{
	json_t *list = NULL;
	struct err e = {""};
	if (store_list_tokens(c->srv->store, &list, &e))
		httpd_error(c->resp, 500, "%s", e.msg);
	else
		api_reply(c->resp, 200, json_pack("{s:o}", "tokens", list));
}

static void h_token_revoke(struct route_ctx *c)
{
	const char *name = api_path_name(c, "name");
	if (!name)
		return;
	json_t *body = api_parse(c, API_BODY_EMPTY);
	if (!body)
		return;
	json_decref(body);
	api_target(c, AUTH_ADMIN, NULL, NULL);
	struct err e = {""};
	int rc = store_begin(c->srv->store, &e);
	if (!rc)
		rc = store_revoke_token(c->srv->store, name, store_now_ms(), &e);
	if (!rc)
		rc = store_commit(c->srv->store, &e);
	else
		store_rollback(c->srv->store);
	if (rc)
		httpd_error(c->resp, rc == STORE_NOTFOUND ? 404 : 500, "%s", e.msg);
	else
		api_reply(c->resp, 200, json_pack("{s:s, s:b}", "name", name, "revoked", 1));
}

static void h_audit(struct route_ctx *c)
{
	char service[NAME_QUERY_MAX], num[32];
	int bad = 0;
	const char *svc = api_query_name(c, "service", NAME_OBJECT, 0, service, &bad);
	if (bad)
		return;
	int64_t since = 0, limit = 1000;
	const char *keys[] = {"since", "limit"};
	int64_t *vals[] = {&since, &limit};
	const long long max[] = {INT64_MAX / 2, 100000};
	for (int k = 0; k < 2; k++) {
		const char *v = httpd_query(c->req, keys[k], num, sizeof(num));
		if (!v)
			continue;
		char *end;
		errno = 0;
		long long x = strtoll(v, &end, 10);
		if (!*v || *end || errno || x < (k ? 1 : 0) || x > max[k]) {
			httpd_error(c->resp, 400, "query parameter '%s': expected an integer %d..%lld%s, got '%.32s'",
				    keys[k], k ? 1 : 0, max[k], k ? "" : " (ms since the epoch)", v);
			return;
		}
		*vals[k] = x;
	}
	json_t *list = NULL;
	struct err e = {""};
	if (store_list_audit(c->srv->store, svc, since, limit, &list, &e))
		httpd_error(c->resp, 500, "%s", e.msg);
	else
		api_reply(c->resp, 200, json_pack("{s:o}", "audit", list));
}

/* ---- the route table ---- */

/* Each handler gets its context from one adaptor per handler (the table's type). */
#define ADAPT(fn)                                                                              \
	static void r_##fn(void *ctx, const struct route *rt, const struct httpd_req *req,     \
			   const struct routes_params *p, struct httpd_resp *resp)             \
	{                                                                                      \
		struct route_ctx c = {.srv = ctx, .rt = rt, .req = req, .resp = resp, .p = p};           \
		fn(&c);                                                                        \
	}
ADAPT(h_health)
ADAPT(h_server)
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
ADAPT(h_token_create)
ADAPT(h_token_list)
ADAPT(h_token_revoke)
ADAPT(h_audit)
ADAPT(api_h_flags_get)
ADAPT(api_h_flags_apply)
ADAPT(api_h_flags_history)
ADAPT(api_h_flag_get)
ADAPT(api_h_flag_change)
ADAPT(api_h_ofrep_one)
ADAPT(api_h_ofrep_bulk)
ADAPT(api_h_metrics)
ADAPT(api_h_notify_add)
ADAPT(api_h_notify_list)
ADAPT(api_h_notify_remove)
ADAPT(api_h_rollout_start)
ADAPT(api_h_rollout_abort)
ADAPT(api_h_rollout_list)
ADAPT(api_h_rollout_get)
ADAPT(api_h_events_stream)
ADAPT(api_h_whoami)
ADAPT(api_h_abort)
ADAPT(api_h_promote)
ADAPT(api_h_ui_index)
ADAPT(api_h_ui_file)

/* A row leaves out the body columns (content type, body limit) when the JSON defaults apply. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const struct route api_table[] = {
	{"GET", "/v1/health", AUTH_PUBLIC, r_h_health, "liveness"},
	{"GET", "/v1/server", AUTH_READ, r_h_server, "the server's version and reconciler counters"},
	{"POST", "/v1/apply", AUTH_APPLY, r_h_apply, "apply manifests"},
	{"PUT", "/v1/artifacts/{digest}", AUTH_RELEASE, r_h_artifact_put, "upload an artifact",
	 "application/octet-stream", API_ARTIFACT_MAX},
	{"GET", "/v1/services", AUTH_READ, r_h_services, "list services and environments"},
	{"POST", "/v1/services/{service}/releases", AUTH_RELEASE, r_h_release_push, "register a release"},
	{"GET", "/v1/services/{service}/releases", AUTH_READ, r_h_release_list, "list releases"},
	{"POST", "/v1/services/{service}/rollback", AUTH_ROLLBACK, r_h_rollback, "roll back"},
	{"POST", "/v1/deployments", AUTH_DEPLOY, r_h_deploy, "deploy a release"},
	{"GET", "/v1/deployments", AUTH_READ, r_h_deployment_list, "list deployments"},
	{"GET", "/v1/deployments/{id}", AUTH_READ, r_h_deployment_get, "one deployment"},
	{"POST", "/v1/deployments/{id}/retry", AUTH_RETRY, r_h_retry, "retry a failed region"},
	{"GET", "/v1/deployments/{id}/events", AUTH_READ, r_h_deployment_events, "a deployment's events"},
	{"POST", "/v1/deployments/{id}/abort", AUTH_ROLLBACK, r_api_h_abort, "abort a deployment in flight"},
	{"POST", "/v1/deployments/{id}/promote", AUTH_DEPLOY, r_api_h_promote,
	 "promote now: skip the remaining steps (?region=R: one region)"},
	{"GET", "/v1/events/stream", AUTH_READ, r_api_h_events_stream, "every event as it happens (server-sent events)"},
	{"GET", "/v1/whoami", AUTH_READ, r_api_h_whoami, "the caller's token and what it may do"},
	{"GET", "/ui", AUTH_PUBLIC, r_api_h_ui_index, "the dashboard"},
	{"GET", "/ui/{*rest}", AUTH_PUBLIC, r_api_h_ui_file, "the dashboard's files"},
	{"GET", "/v1/can-i-deploy", AUTH_READ, r_h_can_i_deploy, "the compatibility gate"},
	{"POST", "/v1/plan", AUTH_READ, r_h_plan, "plan a multi-service change"},
	{"GET", "/v1/status", AUTH_READ, r_h_status, "status of every service"},
	{"GET", "/v1/logs", AUTH_READ, r_h_logs, "instance logs"},
	{"POST", "/v1/shutdown", AUTH_ADMIN, r_h_shutdown, "stop the server"},
	{"POST", "/v1/tokens", AUTH_ADMIN, r_h_token_create, "create a token"},
	{"GET", "/v1/tokens", AUTH_ADMIN, r_h_token_list, "list tokens"},
	{"POST", "/v1/tokens/{name}/revoke", AUTH_ADMIN, r_h_token_revoke, "revoke a token"},
	{"GET", "/v1/audit", AUTH_ADMIN, r_h_audit, "the audit log"},
	{"GET", "/v1/flags/{env}", AUTH_READ, r_api_h_flags_get, "an environment's flag set"},
	{"POST", "/v1/flags/{env}", AUTH_FLAGS, r_api_h_flags_apply, "apply an environment's flag set"},
	{"GET", "/v1/flags/{env}/history", AUTH_READ, r_api_h_flags_history, "the versions of a flag set"},
	{"GET", "/v1/flags/{env}/flag/{key}", AUTH_READ, r_api_h_flag_get, "one flag"},
	{"POST", "/v1/flags/{env}/flag/{key}", AUTH_FLAGS, r_api_h_flag_change, "enable, disable, kill a flag or set its default"},
	{"POST", "/v1/notifications", AUTH_ADMIN, r_api_h_notify_add, "subscribe a webhook to notifications"},
	{"GET", "/v1/notifications", AUTH_ADMIN, r_api_h_notify_list, "the notification subscriptions"},
	{"DELETE", "/v1/notifications/{id}", AUTH_ADMIN, r_api_h_notify_remove, "remove a subscription"},
	{"POST", "/v1/flags/{env}/flag/{key}/rollout", AUTH_FLAGS, r_api_h_rollout_start,
	 "start a guarded rollout of a flag's variant"},
	{"POST", "/v1/flags/{env}/flag/{key}/rollout/abort", AUTH_FLAGS, r_api_h_rollout_abort,
	 "abort a flag's rollout (the flag is put back)"},
	{"GET", "/v1/flags/{env}/rollouts", AUTH_READ, r_api_h_rollout_list, "the flag rollouts of an environment"},
	{"GET", "/v1/flag-rollouts/{id}", AUTH_READ, r_api_h_rollout_get, "one flag rollout with its events"},
	{"GET", "/metrics", AUTH_READ, r_api_h_metrics, "the control plane's metrics (Prometheus text)"},
	{"POST", "/ofrep/v1/evaluate/flags/{key}", AUTH_EVALUATE, r_api_h_ofrep_one, "OFREP: evaluate one flag"},
	{"POST", "/ofrep/v1/evaluate/flags", AUTH_EVALUATE, r_api_h_ofrep_bulk, "OFREP: evaluate every flag"},
	{"POST", "/v1/envs/{env}/ofrep/v1/evaluate/flags/{key}", AUTH_EVALUATE, r_api_h_ofrep_one,
	 "OFREP in one environment: evaluate one flag"},
	{"POST", "/v1/envs/{env}/ofrep/v1/evaluate/flags", AUTH_EVALUATE, r_api_h_ofrep_bulk,
	 "OFREP in one environment: evaluate every flag"},
};
#pragma GCC diagnostic pop

_Static_assert(sizeof(api_table) / sizeof(api_table[0]) <= API_MAX_ROUTES, "API_MAX_ROUTES");

/* The table, for api_metrics.c's labels. */
const struct route *api_route_table(size_t *n)
{
	*n = sizeof(api_table) / sizeof(api_table[0]);
	return api_table;
}

const struct route *api_routes(size_t *n)
{
	*n = sizeof(api_table) / sizeof(api_table[0]);
	return api_table;
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
 * a request that may change something must say the Content-Type its route declares
 * (application/json; application/octet-stream for an artifact), which a page can only send
 * after a CORS preflight that this API never grants (it sends no CORS headers).
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
	const char *want = routes_content_type(rt);
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

/*
 * Authentication: every route but the public ones needs a bearer token whose scopes grant the
 * route's action somewhere (the handler then checks the target: a service, an environment).
 * The token is looked up by its hash on every request, so a revocation takes effect at once.
 * A request that may change something gets its audit record attached here, so that even a
 * change made before the handler names its target is audited.
 */
static int mw_auth(void *ctx, const struct route *rt, const struct httpd_req *req,
		   const struct routes_params *p, struct httpd_resp *resp)
{
	api *a = ctx;
	auth_principal_release(&a->who);
	a->target_service[0] = a->target_env[0] = '\0';
	if (rt->permission == AUTH_PUBLIC)
		return 0;
	char authz[256];
	const char *h = req->head ? httpd_header(req, "Authorization", authz, sizeof(authz)) : NULL;
	struct err e = {""};
	int rc = tokens_authenticate(a->store, &a->tokens, h, store_now_ms(), &a->who, &e);
	if (rc < 0) {
		httpd_error(resp, 500, "%s", e.msg);
		return 1;
	}
	if (rc) {
		if (buf_adds(&resp->headers, "WWW-Authenticate: Bearer realm=\"sluice\"\r\n"))
			log_warn("api: could not add WWW-Authenticate");
		httpd_error(resp, 401, rc == TOKENS_MISSING
					       ? "this needs a token: send 'Authorization: Bearer TOKEN' (the CLI "
						 "reads $SLUICE_TOKEN, its config file, or a local server's admin.token)"
					       : "the token is not valid: unknown, revoked or expired");
		return 1;
	}
	if (changes(rt))
		audit_attach(a, req, (enum auth_action)rt->permission);
	if (!auth_allows_somewhere(&a->who, (enum auth_action)rt->permission)) {
		httpd_error(resp, 403, "token '%s' has no scope with the '%s' action", a->who.name,
			    auth_action_name((enum auth_action)rt->permission));
		return 1;
	}
	return 0;
}

/* "ok", or the status and the error the answer carries: what the audit log records. */
static void outcome(const struct httpd_resp *resp, char *dst, size_t len)
{
	if (resp->status >= 200 && resp->status < 300) {
		snprintf(dst, len, "ok");
		return;
	}
	json_t *j = json_loadb(resp->body.data, resp->body.len, 0, NULL);
	const char *msg = json_string_value(json_object_get(j, "error"));
	snprintf(dst, len, "%d %s", resp->status, msg ? msg : "");
	json_decref(j);
}

/* Logs every request that may change something, with its answer, and writes its audit record
 * when no commit did (a refusal, a failure, a change outside the store: an artifact file,
 * a shutdown). Unauthenticated requests are logged, not audited (they cannot fill the log). */
static void log_change(void *ctx, const struct route *rt, const struct httpd_req *req,
		       const struct httpd_resp *resp)
{
	api *a = ctx;
	int mutating = changes(rt);
	size_t row = rt ? (size_t)(rt - api_table) + 1 : 0;
	int cls = resp->status >= 100 && resp->status < 600 ? resp->status / 100 : 0;
	if (row <= API_MAX_ROUTES)
		a->answers[row][cls]++;
	/* an OFREP evaluation answered changes nothing and comes many times a second: a log line
	 * (formatted, written) each would cost more than the evaluation; its failures are logged */
	int quiet = rt && rt->permission == AUTH_EVALUATE && resp->status < 400;
	if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD"))
		log_msg(quiet ? LOG_DEBUG : LOG_INFO, "api: %s %s -> %d (%s, token %s, from %s)", req->method, req->path,
			resp->status, rt ? auth_action_name((enum auth_action)rt->permission) : "no route",
			a->who.scopes ? a->who.name : "none", req->peer);
	if (mutating && a->who.scopes && !store_audit_detach(a->store)) {
		char result[512], request[300];
		outcome(resp, result, sizeof(result));
		snprintf(request, sizeof(request), "%s %s", req->method, req->path);
		struct store_audit rec = {.token = a->who.name,
					  .action = auth_action_name((enum auth_action)rt->permission),
					  .request = request,
					  .service = a->target_service[0] ? a->target_service : NULL,
					  .env = a->target_env[0] ? a->target_env : NULL,
					  .result = result,
					  .client = req->peer};
		struct err e = {""};
		if (store_add_audit(a->store, &rec, &e))
			log_error("api: could not write the audit record of %s: %s", request, e.msg);
	} else {
		(void)store_audit_detach(a->store);
	}
	auth_principal_release(&a->who);
}

static routes_middleware *const api_middleware[] = {mw_browser, mw_auth, NULL};

static const struct routes_table api_dispatch = {
	.routes = api_table,
	.n = sizeof(api_table) / sizeof(api_table[0]),
	.middleware = api_middleware, /* browser safety, then authentication */
	.after = log_change,
};

/* The head of an upload: the checks every request gets (the middleware) and the digest's form
 * before a byte is written, then the writer the body streams into. The middleware runs again
 * at dispatch (it only reads the head). */
static int artifact_head(api *a, const struct route *rt, const struct httpd_req *req,
			 const struct routes_params *p, struct httpd_body *b, struct httpd_resp *resp)
{
	for (size_t i = 0; api_dispatch.middleware[i]; i++)
		if (api_dispatch.middleware[i](a, rt, req, p, resp)) {
			log_change(a, rt, req, resp);
			return 1;
		}
	const char *id = routes_param(p, "digest");
	if (!artifacts_valid_id(id)) {
		httpd_error(resp, 400, "artifact id must be sha256: and 64 lowercase hex digits");
		log_change(a, rt, req, resp);
		return 1;
	}
	struct upload *u = calloc(1, sizeof(*u));
	struct err e = {""};
	if (!u || artifacts_begin(&u->w, a->artifacts_dir, id, routes_body_max(rt), &e)) {
		httpd_error(resp, 500, "%s", u ? e.msg : "out of memory");
		log_change(a, rt, req, resp);
		free(u);
		return 1;
	}
	snprintf(u->id, sizeof(u->id), "%s", id);
	/* the loop serves other requests and commits while the body arrives: the checks above
	 * leave nothing attached to the store; dispatch runs them again with the body */
	(void)store_audit_detach(a->store);
	auth_principal_release(&a->who);
	b->write = upload_write;
	b->done = upload_done;
	b->arg = u;
	return 0;
}

int api_on_head(void *ctx, const struct httpd_req *req, struct httpd_body *b, struct httpd_resp *resp)
{
	struct routes_params p;
	const struct route *rt = routes_find(&api_dispatch, req->method, req->path, &p);
	if (!rt)
		return 0; /* 404, 405 or 400 from dispatch, after a body within the default limit */
	b->max_body = routes_body_max(rt);
	if (rt->fn == r_h_artifact_put)
		return artifact_head(ctx, rt, req, &p, b, resp);
	return 0;
}

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
	a->flags = d->flags;
	a->rollouts = d->rollouts;
	if (!a->flags && !(a->flags = a->own_flags = flags_new(d->store))) {
		catalog_free(a->own_cat);
		free(a);
		return NULL;
	}
	logic_arena_init(&a->arena, a->arena_buf, sizeof(a->arena_buf));
	if (!(a->evs = evstream_new(d->loop, d->store, NULL))) {
		flags_free(a->own_flags);
		catalog_free(a->own_cat);
		free(a);
		return NULL;
	}
	a->rate = d->ofrep_rate > 0 ? d->ofrep_rate : 100000;
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
	if (a) {
		evstream_free(a->evs);
		catalog_free(a->own_cat);
		flags_free(a->own_flags);
		tokens_cache_release(&a->tokens);
		logic_arena_release(&a->arena);
		auth_principal_release(&a->who);
	}
	free(a);
}

int api_stop_data_plane(const api *a)
{
	return a->stop_data_plane;
}

int api_rate_take(api *a, int64_t *retry_ms)
{
	int64_t now = store_now_ms();
	const char *name = a->who.name;
	unsigned h = 2166136261u;
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	struct api_bucket *b = &a->buckets[h % 256];
	if (strcmp(b->name, name)) {
		/* a new token in this slot (or a collision): it starts with a full bucket */
		snprintf(b->name, sizeof(b->name), "%s", name);
		b->tokens = a->rate;
		b->at_ms = now;
	}
	b->tokens += (double)(now - b->at_ms) * a->rate / 1000.0;
	if (b->tokens > a->rate)
		b->tokens = a->rate;
	b->at_ms = now;
	if (b->tokens >= 1) {
		b->tokens -= 1;
		return 1;
	}
	*retry_ms = (int64_t)((1 - b->tokens) * 1000.0 / a->rate) + 1;
	return 0;
}

void api_handle(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	routes_dispatch(&api_dispatch, ctx, req, resp);
	/* OFREP: 401 and 403 carry no body */
	if ((resp->status == 401 || resp->status == 403) && strstr(req->path, "/ofrep/v1/"))
		buf_reset(&resp->body);
}
