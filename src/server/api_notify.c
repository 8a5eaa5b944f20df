/*
 * api_notify: the notification subscriptions (docs/observability.md): POST, GET and DELETE
 * /v1/notifications. Admin only: a webhook URL can itself be a secret (Slack's are). The HMAC
 * secret is answered once, in the 201 of its creation (generated when the request gives none),
 * and never again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/notify.h"
#include "server/api_internal.h"
#include "store/store.h"

#define SECRET_MIN 16

/* 32 random bytes as 64 hex digits */
static int new_secret(char out[65], struct err *e)
{
	unsigned char r[32];
	size_t got = 0;
	while (got < sizeof(r)) {
		ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
		if (n < 0)
			return err_set(e, "no random bytes for a secret");
		got += (size_t)n;
	}
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
	return 0;
}

/* ",a,b," -> ["a","b"] */
static json_t *types_array(const char *csv)
{
	json_t *a = json_array();
	const char *p = csv ? csv : "";
	while (*p) {
		if (*p == ',') {
			p++;
			continue;
		}
		size_t n = strcspn(p, ",");
		json_array_append_new(a, json_stringn(p, n));
		p += n;
	}
	return a;
}

static json_t *public_row(json_t *row /* stolen */)
{
	json_object_set_new(row, "types", types_array(json_string_value(json_object_get(row, "types"))));
	json_object_set_new(row, "signed", json_boolean(json_integer_value(json_object_get(row, "signed"))));
	json_object_del(row, "secret");
	return row;
}

void api_h_notify_add(struct route_ctx *c)
{
	json_t *body = api_parse(c, API_BODY_NOTIFY);
	if (!body)
		return;
	const char *env = api_field(body, "env"), *service = api_field(body, "service");
	api_target(c, AUTH_ADMIN, service, env);
	const char *url = api_field(body, "url"), *format = api_field(body, "format");
	const char *secret = api_field(body, "secret");
	char csv[NOTIFY_TYPES_CSV_MAX], made[65] = "";
	struct err e = {""};
	if (notify_types_csv(json_object_get(body, "types"), csv, &e) || notify_url_check(url, &e)) {
		httpd_error(c->resp, 400, "request body: field '%s': %s",
			    strncmp(e.msg, "url", 3) ? "types" : "url", e.msg);
		json_decref(body);
		return;
	}
	if (secret && strlen(secret) < SECRET_MIN) {
		httpd_error(c->resp, 400, "request body: field 'secret': at least %d characters (or leave it "
					  "out and the server makes one)", SECRET_MIN);
		json_decref(body);
		return;
	}
	if (!secret) {
		if (new_secret(made, &e)) {
			httpd_error(c->resp, 500, "%s", e.msg);
			json_decref(body);
			return;
		}
		secret = made;
	}
	struct store_subscription sub = {.env = env ? env : "", .service = service ? service : "",
					 .types = csv, .url = url, .format = format, .secret = secret,
					 .created_by = c->srv->who.name};
	int64_t id = 0;
	int rc = store_begin(c->srv->store, &e);
	if (!rc)
		rc = store_put_subscription(c->srv->store, &sub, &id, &e);
	if (!rc)
		rc = store_commit(c->srv->store, &e);
	else
		store_rollback(c->srv->store);
	if (rc)
		httpd_error(c->resp, 500, "%s", e.msg);
	else
		api_reply(c->resp, 201,
			  json_pack("{s:I, s:o, s:o, s:o, s:s, s:s, s:s, s:b}", "id", (json_int_t)id, "env",
				    env ? json_string(env) : json_null(), "service",
				    service ? json_string(service) : json_null(), "types", types_array(csv),
				    "url", url, "format", format, "secret", secret, "signed", 1));
	memset(made, 0, sizeof(made));
	json_decref(body);
}

void api_h_notify_list(struct route_ctx *c)
{
	api_target(c, AUTH_ADMIN, NULL, NULL);
	json_t *list = NULL;
	struct err e = {""};
	if (store_list_subscriptions(c->srv->store, &list, &e)) {
		httpd_error(c->resp, 500, "%s", e.msg);
		return;
	}
	json_t *out = json_array();
	size_t i;
	json_t *row;
	json_array_foreach(list, i, row) {
		json_t *r = public_row(json_incref(row));
		const char *env = json_string_value(json_object_get(r, "env"));
		const char *svc = json_string_value(json_object_get(r, "service"));
		if (env && !*env)
			json_object_set_new(r, "env", json_null());
		if (svc && !*svc)
			json_object_set_new(r, "service", json_null());
		json_array_append_new(out, r);
	}
	json_decref(list);
	int64_t backlog = 0, oldest = 0;
	if (store_notify_backlog(c->srv->store, &backlog, &oldest, &e)) {
		json_decref(out);
		httpd_error(c->resp, 500, "%s", e.msg);
		return;
	}
	api_reply(c->resp, 200, json_pack("{s:o, s:I}", "subscriptions", out, "backlog", (json_int_t)backlog));
}

void api_h_notify_remove(struct route_ctx *c)
{
	const char *v = routes_param(c->p, "id");
	char *end = NULL;
	long long id = v ? strtoll(v, &end, 10) : 0;
	if (!v || !*v || *end || id <= 0 || strlen(v) > 18) {
		httpd_error(c->resp, 400, "'%s' is not a subscription id (a positive number)", v ? v : "");
		return;
	}
	api_target(c, AUTH_ADMIN, NULL, NULL);
	struct err e = {""};
	int rc = store_begin(c->srv->store, &e);
	if (!rc)
		rc = store_delete_subscription(c->srv->store, id, &e);
	if (!rc)
		rc = store_commit(c->srv->store, &e);
	else
		store_rollback(c->srv->store);
	if (rc)
		httpd_error(c->resp, rc == STORE_NOTFOUND ? 404 : 500, "%s", e.msg);
	else
		api_reply(c->resp, 200, json_pack("{s:I, s:b}", "id", (json_int_t)id, "removed", 1));
}
