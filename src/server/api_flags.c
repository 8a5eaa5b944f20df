/*
 * api_flags: the feature flag endpoints of the API (docs/flags.md): the flag set of an
 * environment (read, apply, history), one flag (read, change), and OFREP evaluation.
 *
 * OFREP (open-feature/protocol): POST /ofrep/v1/evaluate/flags/{key} and the bulk
 * POST /ofrep/v1/evaluate/flags, with the body {"context": {...}}. A client sets a base URL
 * and a token: the environment is the base URL's (/v1/envs/ENV/ofrep/...) or, under /ofrep,
 * the one environment the token may evaluate in. Answers keep OFREP's shapes: a result
 * without a value (a disabled flag, no default variant) leaves "value" out so that the client
 * uses its own default; errors are {"key", "errorCode", "errorDetails"} (404 FLAG_NOT_FOUND,
 * 400 otherwise); a bulk answer carries an ETag computed from its bytes and answers 304 to a
 * matching If-None-Match; 401 and 403 come without a body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/api_internal.h"
#include "server/flags.h"
#include "store/store.h"
#include "util/sha256.h"

/* ---- operators: the set, its history, one flag ---- */

/* The environment in the path, known and within the token's reach for `act`; NULL after
 * answering. */
static const char *flag_env(struct route_ctx *c, enum auth_action act)
{
	const char *env = api_path_name(c, "env");
	if (!env || !api_allowed(c, act, NULL, env, TARGET_ENV))
		return NULL;
	return env;
}

static int answer_store(struct route_ctx *c, int rc, const struct err *e)
{
	if (rc == STORE_NOTFOUND)
		httpd_error(c->resp, 404, "%s", e->msg);
	else if (rc == FLAGS_INVALID)
		httpd_error(c->resp, 400, "%s", e->msg);
	else
		httpd_error(c->resp, 500, "%s", e->msg);
	return rc;
}

static json_t *warnings_json(const flagset *fs)
{
	json_t *w = json_array();
	for (size_t i = 0; i < flagset_warning_count(fs); i++)
		json_array_append_new(w, json_string(flagset_warning(fs, i)));
	return w;
}

void api_h_flags_get(struct route_ctx *c)
{
	const char *env = flag_env(c, AUTH_READ);
	if (!env)
		return;
	json_t *row = NULL;
	struct err e = {""};
	int rc = store_get_flags(c->srv->store, env, &row, &e);
	if (rc) {
		answer_store(c, rc, &e);
		return;
	}
	const flagset *fs = NULL;
	int64_t v;
	if ((rc = flags_current(c->srv->flags, env, &fs, &v, &e))) {
		json_decref(row);
		answer_store(c, rc, &e);
		return;
	}
	json_object_set_new(row, "warnings", warnings_json(fs));
	api_reply(c->resp, 200, row);
}

void api_h_flags_apply(struct route_ctx *c)
{
	const char *env = flag_env(c, AUTH_FLAGS);
	if (!env)
		return;
	json_t *body = api_parse(c, API_BODY_FLAGS_APPLY);
	if (!body)
		return;
	json_t *content = json_object_get(body, "content");
	int64_t version = 0;
	json_t *warnings = NULL;
	struct err e = {""};
	int rc = flags_apply(c->srv->flags, env, api_field(body, "name"), json_string_value(content),
			     json_string_length(content), json_is_true(json_object_get(body, "strict")),
			     c->srv->who.name, api_field(body, "reason"), &version, &warnings, &e);
	if (rc) {
		if (rc == FLAGS_INVALID && warnings) {
			api_reply(c->resp, 400, json_pack("{s:s, s:o}", "error", e.msg, "warnings", warnings));
			warnings = NULL;
		} else {
			answer_store(c, rc, &e);
		}
	} else {
		api_reply(c->resp, 200, json_pack("{s:s, s:I, s:O}", "env", env, "version", (json_int_t)version,
						  "warnings", warnings));
	}
	json_decref(warnings);
	json_decref(body);
}

void api_h_flags_history(struct route_ctx *c)
{
	const char *env = flag_env(c, AUTH_READ);
	if (!env)
		return;
	json_t *list = NULL;
	struct err e = {""};
	if (store_list_flag_versions(c->srv->store, env, &list, &e))
		httpd_error(c->resp, 500, "%s", e.msg);
	else
		api_reply(c->resp, 200, json_pack("{s:s, s:o}", "env", env, "versions", list));
}

/* The flag key in the path (any flagd key: captures never hold '/' or controls). */
static const char *flag_key(struct route_ctx *c)
{
	const char *k = routes_param(c->p, "key");
	if (!k || !*k || strlen(k) >= FLAGSET_KEY_MAX) {
		httpd_error(c->resp, 400, "a flag key has 1 to %d bytes", FLAGSET_KEY_MAX - 1);
		return NULL;
	}
	return k;
}

/* {"env","version","key","flag","warnings"} for one flag of the current set. */
static void reply_flag(struct route_ctx *c, const char *env, const char *key, int status)
{
	const flagset *fs = NULL;
	int64_t v;
	struct err e = {""};
	int rc = flags_current(c->srv->flags, env, &fs, &v, &e);
	if (rc) {
		answer_store(c, rc, &e);
		return;
	}
	json_t *flag = NULL;
	if (flagset_describe(fs, key, &flag)) {
		httpd_error(c->resp, 404, "flag '%s' is not defined in %s", key, env);
		return;
	}
	json_t *w = json_array();
	char prefix[FLAGSET_KEY_MAX + 16];
	snprintf(prefix, sizeof(prefix), "flags.%s: ", key);
	for (size_t i = 0; i < flagset_warning_count(fs); i++)
		if (!strncmp(flagset_warning(fs, i), prefix, strlen(prefix)))
			json_array_append_new(w, json_string(flagset_warning(fs, i)));
	api_reply(c->resp, status, json_pack("{s:s, s:I, s:s, s:o, s:o}", "env", env, "version", (json_int_t)v,
					     "key", key, "flag", flag, "warnings", w));
}

void api_h_flag_get(struct route_ctx *c)
{
	const char *env = flag_env(c, AUTH_READ), *key = env ? flag_key(c) : NULL;
	if (key)
		reply_flag(c, env, key, 200);
}

void api_h_flag_change(struct route_ctx *c)
{
	const char *env = flag_env(c, AUTH_FLAGS), *key = env ? flag_key(c) : NULL;
	if (!key)
		return;
	json_t *body = api_parse(c, API_BODY_FLAG_CHANGE);
	if (!body)
		return;
	const char *action = api_field(body, "action");
	enum flags_change what = !strcmp(action, "enable")    ? FLAGS_ENABLE
				 : !strcmp(action, "disable") ? FLAGS_DISABLE
				 : !strcmp(action, "kill")    ? FLAGS_KILL
							      : FLAGS_SET_DEFAULT;
	const char *variant = api_field(body, "variant");
	if (what == FLAGS_SET_DEFAULT && !variant) {
		httpd_error(c->resp, 400, "request body: field 'variant': required with \"action\": \"set\"");
		json_decref(body);
		return;
	}
	int64_t version = 0;
	struct err e = {""};
	int rc = flags_change(c->srv->flags, env, key, what, variant, c->srv->who.name, api_field(body, "reason"),
			      &version, &e);
	json_decref(body);
	if (rc)
		answer_store(c, rc == FLAGS_INVALID ? FLAGS_INVALID : rc, &e);
	else
		reply_flag(c, env, key, 200);
}

/* ---- OFREP ---- */

/* An OFREP error answer: {"key"?, "errorCode", "errorDetails"}. */
static void ofrep_error(struct route_ctx *c, int status, const char *key, const char *code, const char *details)
{
	json_t *j = json_pack("{s:s, s:s}", "errorCode", code, "errorDetails", details);
	if (key)
		json_object_set_new(j, "key", json_string(key));
	api_reply_compact(c->resp, status, j);
}

/* The environment of an OFREP call: the path's, or the one the token evaluates in. NULL after
 * answering (403 without a body when the token may not). */
static const char *ofrep_env(struct route_ctx *c, char *buf, size_t len)
{
	const char *env = routes_param(c->p, "env");
	api *a = c->srv;
	if (!env) {
		/* the token's one environment: a scope granting evaluate (or admin) with one name */
		const char *only = NULL;
		int several = 0;
		size_t i, k;
		json_t *sc, *v;
		json_array_foreach(a->who.scopes, i, sc) {
			int evaluates = 0;
			json_array_foreach(json_object_get(sc, "actions"), k, v)
				evaluates |= !strcmp(json_string_value(v), "evaluate") || !strcmp(json_string_value(v), "admin");
			if (!evaluates)
				continue;
			json_array_foreach(json_object_get(sc, "envs"), k, v) {
				const char *n = json_string_value(v);
				if (strchr(n, '*') || (only && strcmp(only, n)))
					several = 1;
				else
					only = n;
			}
		}
		if (!only || several) {
			ofrep_error(c, 400, routes_param(c->p, "key"), "GENERAL",
				    "this token evaluates flags in several environments (or none by name): "
				    "use the base URL /v1/envs/ENV");
			return NULL;
		}
		snprintf(buf, len, "%s", only);
		env = buf;
	} else if (!name_object_ok(env)) {
		ofrep_error(c, 400, routes_param(c->p, "key"), "GENERAL", "the environment in the path is not a name");
		return NULL;
	}
	if (!auth_allows_env(&a->who, AUTH_EVALUATE, env)) {
		c->resp->status = 403;
		return NULL;
	}
	return env;
}

/* The evaluation context of the body, {} when absent; NULL after answering PARSE_ERROR or
 * INVALID_CONTEXT. */
static json_t *ofrep_context(struct route_ctx *c, const char *key)
{
	json_error_t je;
	json_t *body = c->req->body_len ? json_loadb(c->req->body, c->req->body_len, JSON_REJECT_DUPLICATES, &je)
					: json_object();
	if (!body) {
		char d[256];
		snprintf(d, sizeof(d), "the body is not JSON: line %d column %d: %s", je.line, je.column, je.text);
		ofrep_error(c, 400, key, "PARSE_ERROR", d);
		return NULL;
	}
	json_t *ctx = json_is_object(body) ? json_object_get(body, "context") : NULL;
	if (!json_is_object(body) || (ctx && !json_is_object(ctx))) {
		json_decref(body);
		ofrep_error(c, 400, key, "INVALID_CONTEXT", "the body is {\"context\": {...}} with an object");
		return NULL;
	}
	json_t *tk = ctx ? json_object_get(ctx, "targetingKey") : NULL;
	if (tk && !json_is_string(tk)) {
		json_decref(body);
		ofrep_error(c, 400, key, "INVALID_CONTEXT", "targetingKey must be a string");
		return NULL;
	}
	json_t *out = ctx ? json_incref(ctx) : json_object();
	json_decref(body);
	return out;
}

/* One result in OFREP's shape. */
static json_t *ofrep_result(const struct flag_result *r)
{
	if (r->error_code)
		return json_pack("{s:s, s:s, s:s}", "key", r->key, "errorCode", r->error_code, "errorDetails", r->error);
	json_t *j = json_pack("{s:s, s:s}", "key", r->key, "reason", r->reason);
	if (r->variant)
		json_object_set_new(j, "variant", json_string(r->variant));
	if (r->value)
		json_object_set_new(j, "value", json_deep_copy(r->value));
	json_object_set_new(j, "metadata", r->metadata ? json_deep_copy(r->metadata) : json_object());
	return j;
}

static int ofrep_rate(struct route_ctx *c)
{
	int64_t retry_ms = 0;
	if (api_rate_take(c->srv, &retry_ms))
		return 0;
	char h[64];
	snprintf(h, sizeof(h), "Retry-After: %lld\r\n", (long long)((retry_ms + 999) / 1000));
	if (buf_adds(&c->resp->headers, h))
		log_warn("api: could not add Retry-After");
	ofrep_error(c, 429, routes_param(c->p, "key"), "GENERAL", "over this token's rate of evaluations");
	return -1;
}

void api_h_ofrep_one(struct route_ctx *c)
{
	const char *key = routes_param(c->p, "key");
	char envbuf[NAME_QUERY_MAX];
	const char *env = ofrep_env(c, envbuf, sizeof(envbuf));
	if (!env || ofrep_rate(c))
		return;
	json_t *ctx = ofrep_context(c, key);
	if (!ctx)
		return;
	const flagset *fs = NULL;
	int64_t v;
	struct err e = {""};
	int rc = flags_current(c->srv->flags, env, &fs, &v, &e);
	if (rc == STORE_NOTFOUND) {
		ofrep_error(c, 404, key, "FLAG_NOT_FOUND", e.msg);
	} else if (rc) {
		ofrep_error(c, 500, key, "GENERAL", e.msg);
	} else {
		struct flag_result r;
		flagset_eval(fs, key, ctx, (int64_t)time(NULL), &c->srv->arena, &r);
		c->srv->evaluations++;
		int status = !r.error_code ? 200 : !strcmp(r.error_code, "FLAG_NOT_FOUND") ? 404 : 400;
		api_reply_compact(c->resp, status, ofrep_result(&r));
		logic_arena_reset(&c->srv->arena);
	}
	json_decref(ctx);
}

void api_h_ofrep_bulk(struct route_ctx *c)
{
	char envbuf[NAME_QUERY_MAX];
	const char *env = ofrep_env(c, envbuf, sizeof(envbuf));
	if (!env || ofrep_rate(c))
		return;
	json_t *ctx = ofrep_context(c, NULL);
	if (!ctx)
		return;
	const flagset *fs = NULL;
	int64_t v;
	struct err e = {""};
	int rc = flags_current(c->srv->flags, env, &fs, &v, &e);
	json_t *list = json_array();
	if (rc && rc != STORE_NOTFOUND) {
		json_decref(list);
		json_decref(ctx);
		ofrep_error(c, 500, NULL, "GENERAL", e.msg);
		return;
	}
	time_t now = time(NULL);
	for (size_t i = 0; !rc && i < flagset_count(fs); i++) {
		struct flag_result r;
		flagset_eval(fs, flagset_key(fs, i), ctx, (int64_t)now, &c->srv->arena, &r);
		c->srv->evaluations++;
		json_array_append_new(list, ofrep_result(&r));
		logic_arena_reset(&c->srv->arena);
	}
	json_decref(ctx);
	api_reply_compact(c->resp, 200, json_pack("{s:o}", "flags", list));
	if (c->resp->status != 200)
		return;
	/* the ETag is the answer's own digest: equal answers, equal tags, whatever the context */
	struct sha256 h;
	unsigned char d[32];
	char hex[65], tag[64], have[256] = "";
	sha256_init(&h);
	sha256_update(&h, c->resp->body.data, c->resp->body.len);
	sha256_final(&h, d);
	sha256_hex(d, hex);
	snprintf(tag, sizeof(tag), "\"%.32s\"", hex);
	httpd_header(c->req, "If-None-Match", have, sizeof(have));
	char line[96];
	snprintf(line, sizeof(line), "ETag: %s\r\n", tag);
	if (buf_adds(&c->resp->headers, line))
		log_warn("api: could not add ETag");
	if (have[0] && (strstr(have, tag) || !strcmp(have, "*"))) {
		c->resp->status = 304;
		buf_reset(&c->resp->body);
	}
}

/* ---- guarded rollouts ---- */

static int rollouts_ready(struct route_ctx *c)
{
	if (c->srv->rollouts)
		return 1;
	httpd_error(c->resp, 503, "this server does not drive flag rollouts");
	return 0;
}

static void answer_rollout(struct route_ctx *c, int rc, const struct err *e)
{
	if (rc == STORE_NOTFOUND)
		httpd_error(c->resp, 404, "%s", e->msg);
	else if (rc == STORE_CONFLICT)
		httpd_error(c->resp, 409, "%s", e->msg);
	else if (rc == ROLLOUTS_INVALID)
		httpd_error(c->resp, 400, "%s", e->msg);
	else
		httpd_error(c->resp, 500, "%s", e->msg);
}

/* The stored row of rollout id with its events and what this server sees of it now. */
static json_t *rollout_json(struct route_ctx *c, int64_t id, struct err *e, int *rc)
{
	json_t *row = NULL, *events = NULL;
	if ((*rc = store_get_rollout(c->srv->store, id, &row, e)))
		return NULL;
	if ((*rc = store_list_rollout_events(c->srv->store, id, &events, e))) {
		json_decref(row);
		return NULL;
	}
	json_object_set_new(row, "events", events);
	json_t *live = c->srv->rollouts ? rollouts_live(c->srv->rollouts, id) : NULL;
	if (live)
		json_object_set_new(row, "live", live);
	/* the flags before the rollout and as written are in the flag set's history */
	json_t *st = json_object_get(row, "state");
	json_object_del(st, "original");
	json_object_del(st, "written");
	return row;
}

void api_h_rollout_start(struct route_ctx *c)
{
	const char *env = flag_env(c, AUTH_FLAGS), *key = env ? flag_key(c) : NULL;
	if (!key || !rollouts_ready(c))
		return;
	json_t *body = api_parse(c, API_BODY_FLAG_ROLLOUT);
	if (!body)
		return;
	struct rollouts_request q = {.env = env, .flag = key, .service = api_field(body, "service"),
				     .variant = api_field(body, "variant"), .by = c->srv->who.name,
				     .why = api_field(body, "reason")};
	const json_t *steps = json_object_get(body, "steps");
	q.nsteps = (int)json_array_size(steps);
	for (int i = 0; i < q.nsteps && i < ROLLOUT_MAX_STEPS; i++)
		q.steps[i] = (int)json_integer_value(json_array_get(steps, (size_t)i));
	const json_t *sd = json_object_get(body, "step_duration_ms"), *bl = json_object_get(body, "baseline_ms");
	q.step_ms = json_is_integer(sd) ? json_integer_value(sd) : -1;
	q.baseline_ms = json_is_integer(bl) ? json_integer_value(bl) : -1;
	int64_t id = 0;
	struct err e = {""};
	int rc = rollouts_start(c->srv->rollouts, &q, &id, &e);
	json_decref(body);
	if (rc) {
		answer_rollout(c, rc, &e);
		return;
	}
	json_t *row = rollout_json(c, id, &e, &rc);
	if (!row)
		answer_rollout(c, rc, &e);
	else
		api_reply(c->resp, 201, row);
}

void api_h_rollout_abort(struct route_ctx *c)
{
	const char *env = flag_env(c, AUTH_FLAGS), *key = env ? flag_key(c) : NULL;
	if (!key || !rollouts_ready(c))
		return;
	json_t *body = api_parse(c, API_BODY_FLAG_ROLLOUT_ABORT);
	if (!body)
		return;
	int64_t id = 0;
	struct err e = {""};
	int rc = rollouts_abort(c->srv->rollouts, env, key, c->srv->who.name, api_field(body, "reason"), &id, &e);
	json_decref(body);
	if (rc) {
		answer_rollout(c, rc, &e);
		return;
	}
	json_t *row = rollout_json(c, id, &e, &rc);
	if (!row)
		answer_rollout(c, rc, &e);
	else
		api_reply(c->resp, 200, row);
}

void api_h_rollout_list(struct route_ctx *c)
{
	const char *env = flag_env(c, AUTH_READ);
	if (!env)
		return;
	json_t *list = NULL;
	struct err e = {""};
	if (store_list_rollouts(c->srv->store, env, 0, &list, &e)) {
		httpd_error(c->resp, 500, "%s", e.msg);
		return;
	}
	size_t i;
	json_t *row;
	json_array_foreach(list, i, row) {
		json_t *st = json_object_get(row, "state");
		json_object_del(st, "original");
		json_object_del(st, "written");
	}
	api_reply(c->resp, 200, json_pack("{s:s, s:o}", "env", env, "rollouts", list));
}

void api_h_rollout_get(struct route_ctx *c)
{
	const char *ids = routes_param(c->p, "id");
	char *end = NULL;
	long long id = ids ? strtoll(ids, &end, 10) : 0;
	if (!ids || !*ids || *end || id <= 0) {
		httpd_error(c->resp, 400, "a rollout id is a positive integer, got '%s'", ids ? ids : "");
		return;
	}
	struct err e = {""};
	int rc;
	json_t *row = rollout_json(c, (int64_t)id, &e, &rc);
	if (!row) {
		answer_rollout(c, rc, &e);
		return;
	}
	const char *env = json_string_value(json_object_get(row, "env"));
	if (!api_allowed(c, AUTH_READ, NULL, env, TARGET_ENV)) {
		json_decref(row);
		return;
	}
	api_reply(c->resp, 200, row);
}
