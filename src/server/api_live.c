/*
 * api_live: the API's handlers for following and steering deployments live, for the
 * dashboard (/ui) and `sluice events --follow`: the server-sent events stream
 * (GET /v1/events/stream, server/evstream.h), what the caller's token may do
 * (GET /v1/whoami), and aborting one deployment (POST /v1/deployments/{id}/abort).
 * The route table is api.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/api_internal.h"
#include "server/evstream.h"

/* A positive integer query parameter or header value: 0 when absent, -1 after answering 400. */
static int64_t positive(struct route_ctx *c, const char *what, const char *v)
{
	if (!v)
		return 0;
	char *end;
	long long n = strtoll(v, &end, 10);
	if (!*v || *end || n < 0 || v[0] == '-' || v[0] == '+') {
		httpd_error(c->resp, 400, "%s: expected a non-negative integer, got '%.32s'", what, v);
		return -1;
	}
	return n;
}

void api_h_events_stream(struct route_ctx *c)
{
	char svc[NAME_QUERY_MAX], dep[32], after[32], hdr[32], authz[256];
	int bad = 0;
	struct evstream_filter f = {NULL, 0, -1};
	f.service = api_query_name(c, "service", NAME_OBJECT, 0, svc, &bad);
	if (bad || (f.service && !api_allowed(c, AUTH_READ, f.service, NULL, TARGET_SERVICE_ANY_ENV)))
		return;
	f.deployment = positive(c, "query parameter 'deployment'", httpd_query(c->req, "deployment", dep, sizeof(dep)));
	if (f.deployment < 0)
		return;
	/* where to resume: the Last-Event-ID header (EventSource sends it when it reconnects),
	 * or ?after= for clients that cannot set headers */
	const char *last = httpd_header(c->req, "Last-Event-ID", hdr, sizeof(hdr));
	const char *what = "Last-Event-ID";
	if (!last || !*last) {
		last = httpd_query(c->req, "after", after, sizeof(after));
		what = "query parameter 'after'";
	}
	if (last) {
		int64_t v = positive(c, what, last);
		if (v < 0)
			return;
		f.after = v;
	}
	evstream_open(c->srv->evs, &c->srv->who, httpd_header(c->req, "Authorization", authz, sizeof(authz)),
		      &f, c->resp);
}

/* What the caller's token may do: everywhere ("somewhere": at least one service or
 * environment), or on ?service= in ?env= when they are given. */
void api_h_whoami(struct route_ctx *c)
{
	char svc[NAME_QUERY_MAX], env[NAME_QUERY_MAX];
	int bad = 0;
	const char *s = api_query_name(c, "service", NAME_OBJECT, 0, svc, &bad);
	const char *en = bad ? NULL : api_query_name(c, "env", NAME_OBJECT, 0, env, &bad);
	if (bad)
		return;
	const struct auth_principal *who = &c->srv->who;
	json_t *may = json_object();
	for (int a = AUTH_READ; a < AUTH_NACTIONS; a++) {
		int ok = s && en ? auth_allows(who, a, s, en)
			 : s	 ? auth_allows_service(who, a, s)
			 : en	 ? auth_allows_env(who, a, en)
				 : auth_allows_somewhere(who, a);
		json_object_set_new(may, auth_action_name(a), json_boolean(ok));
	}
	json_t *out = json_pack("{s:s, s:b, s:O, s:o}", "name", who->name, "admin", who->admin, "scopes",
				who->scopes ? who->scopes : json_null(), "may", may);
	if (s)
		json_object_set_new(out, "service", json_string(s));
	if (en)
		json_object_set_new(out, "env", json_string(en));
	api_reply(c->resp, 200, out);
}

/* The deployment of the path's {id}, in flight, that the token may act on with `action`: 1 with
 * *dep (the caller's), or 0 once the request is answered (400 for a bad id, 404, 500, the
 * refusal of api_allowed, 409 for one that ended). */
static int deployment_in_flight(struct route_ctx *c, enum auth_action action, long long *id, json_t **dep)
{
	const char *ids = routes_param(c->p, "id");
	char *end;
	*dep = NULL;
	*id = strtoll(ids, &end, 10);
	if (!*ids || *end || *id <= 0) {
		httpd_error(c->resp, 400, "deployment id must be a positive integer, got '%s'", ids);
		return 0;
	}
	struct err e = {""};
	int rc = store_get_deployment(c->srv->store, *id, dep, &e);
	if (rc) {
		httpd_error(c->resp, rc == STORE_NOTFOUND ? 404 : 500, "%s",
			    rc == STORE_NOTFOUND ? "no such deployment" : e.msg);
		return 0;
	}
	const char *phase = json_string_value(json_object_get(*dep, "phase"));
	if (!api_allowed(c, action, json_string_value(json_object_get(*dep, "service")),
			 json_string_value(json_object_get(*dep, "env")), TARGET_EXACT))
		;
	else if (!phase || strcmp(phase, "active"))
		httpd_error(c->resp, 409, "deployment %lld is not in flight (it ended %s)", *id,
			    phase ? phase : "?");
	else
		return 1;
	json_decref(*dep);
	*dep = NULL;
	return 0;
}

/* Stops a deployment in flight: traffic back to stable, new instances drained and stopped;
 * it ends rolled back. Needs the rollback action on its service in its environment. */
void api_h_abort(struct route_ctx *c)
{
	long long id;
	json_t *dep;
	if (!deployment_in_flight(c, AUTH_ROLLBACK, &id, &dep))
		return;
	char reason[160];
	snprintf(reason, sizeof(reason), "aborted by token %s", c->srv->who.name);
	struct err e = {""};
	if (executor_abort(c->srv->executor, id, reason, 0, &e))
		httpd_error(c->resp, store_failed(&e) ? 500 : 409, "%s", e.msg);
	else
		api_reply(c->resp, 200, json_pack("{s:I, s:b}", "id", (json_int_t)id, "aborting", 1));
	json_decref(dep);
}

/* "Promote now": the deployment's regions in a canary step (or holding the old set after a
 * blue-green switch) skip their remaining steps and checks and are promoted; ?region=R for one
 * region. Needs the deploy action on its service in its environment. */
void api_h_promote(struct route_ctx *c)
{
	char regbuf[NAME_QUERY_MAX];
	int bad = 0;
	const char *region = api_query_name(c, "region", NAME_OBJECT, 0, regbuf, &bad);
	long long id;
	json_t *dep;
	if (bad || !deployment_in_flight(c, AUTH_DEPLOY, &id, &dep))
		return;
	char reason[160];
	snprintf(reason, sizeof(reason), "by token %s", c->srv->who.name);
	struct err e = {""};
	if (executor_promote(c->srv->executor, id, region, reason, &e))
		httpd_error(c->resp, store_failed(&e) ? 500 : 409, "%s", e.msg);
	else
		api_reply(c->resp, 200, json_pack("{s:I, s:b}", "id", (json_int_t)id, "promoting", 1));
	json_decref(dep);
}
