/*
 * api_internal: what the API's handler files share (src/server/api.c, api_flags.c): the api
 * object, one request's context, and the helpers every handler answers with. Not for other
 * modules: they use server/api.h.
 */
#ifndef SLUICE_API_INTERNAL_H
#define SLUICE_API_INTERNAL_H

#include <jansson.h>
#include <limits.h>

#include "http/routes.h"
#include "server/api.h"
#include "server/api_body.h"
#include "server/auth.h"
#include "server/evstream.h"
#include "server/flags.h"
#include "server/rollouts.h"
#include "server/tokens.h"
#include "flags/logic.h"
#include "util/name.h"

#define NAME_QUERY_MAX 256
#define API_MAX_ROUTES 64 /* rows of the route table, for per-route counters */

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
	/* The request being served (the loop serves one at a time, from the middleware to the
	 * after hook): who sent it, and the target its audit record names. */
	struct auth_principal who;
	char target_service[NAME_QUERY_MAX], target_env[NAME_QUERY_MAX];
	/* feature flags: the sets (the server's, or own_flags), an evaluation arena, and each
	 * token's budget of OFREP evaluations (a token bucket of `rate` per second) */
	flags *flags, *own_flags;
	rollouts *rollouts;       /* guarded flag rollouts, or NULL */
	struct logic_arena arena;
	char arena_buf[16384];
	double rate;
	struct tokens_cache tokens;
	evstream *evs; /* the open event streams (GET /v1/events/stream) */
	/* the API's own counters, for /metrics: answers per route and status class (1xx..5xx,
	 * and [..][0] for answers without a route: 404, 405), gate refusals, OFREP evaluations */
	uint64_t answers[API_MAX_ROUTES + 1][6];
	uint64_t gate_refusals, evaluations;
	struct notifier *notifier; /* for /metrics; may be NULL */
	struct api_bucket {
		char name[64];
		double tokens;
		int64_t at_ms;
	} buckets[256];
};

struct route_ctx {
	api *srv;
	const struct route *rt;
	const struct httpd_req *req;
	struct httpd_resp *resp;
	const struct routes_params *p;
};

/* Answers status with body (stolen) as JSON; 500 when it cannot be written. */
void api_reply(struct httpd_resp *resp, int status, json_t *body /* stolen */);
/* The same without indentation (OFREP: machines read it, many times a second). */
void api_reply_compact(struct httpd_resp *resp, int status, json_t *body /* stolen */);
/* The request body checked as a body of `kind` (server/api_body.h): a new reference to its
 * normalized form, or NULL after answering 400 (invalid JSON at line/column, or the field
 * path and what was expected). An empty body reads as {}. */
json_t *api_parse(struct route_ctx *c, enum api_body kind);
/* body's string member `key`, or NULL. */
const char *api_field(const json_t *body, const char *key);
/* A query parameter that must follow the rule of `kind`, decoded into dst (NAME_QUERY_MAX
 * bytes): NULL when absent, or after answering 400 (*bad set). */
const char *api_query_name(struct route_ctx *c, const char *key, enum name_kind kind, int required,
			   char *dst, int *bad);
/* A name from the path; answers 400 and returns NULL when it is not one. */
const char *api_path_name(struct route_ctx *c, const char *param);

/* Names the target of a request that changes something, for its audit record (NULL: none). */
void api_target(struct route_ctx *c, enum auth_action act, const char *service, const char *env);

enum target_kind { TARGET_EXACT, TARGET_SERVICE_ANY_ENV, TARGET_ENV };
/* Whether the caller may do `act` on service in env (NULL: every one; TARGET_ENV: env alone,
 * for what belongs to an environment, not a service); answers 403 and returns 0 when not. */
int api_allowed(struct route_ctx *c, enum auth_action act, const char *service, const char *env,
		enum target_kind kind);
/* Whether the caller may read what concerns service in env (NULL env: any), without answering. */
int api_may_read(const api *a, const char *service, const char *env);

/* Takes one evaluation from the caller's budget: 1, or 0 with *retry_ms when it is empty. */
int api_rate_take(api *a, int64_t *retry_ms /* OUT */);

/* The handlers of api_flags.c (the route table is api.c's). */
void api_h_flags_get(struct route_ctx *c);
void api_h_flags_apply(struct route_ctx *c);
void api_h_flags_history(struct route_ctx *c);
void api_h_flag_get(struct route_ctx *c);
void api_h_flag_change(struct route_ctx *c);
void api_h_ofrep_one(struct route_ctx *c);
void api_h_rollout_start(struct route_ctx *c);
void api_h_rollout_abort(struct route_ctx *c);
void api_h_rollout_list(struct route_ctx *c);
void api_h_rollout_get(struct route_ctx *c);
void api_h_ofrep_bulk(struct route_ctx *c);
const struct route *api_route_table(size_t *n /* OUT */);
/* api_live.c: the events stream, whoami, abort; api_ui.c: the dashboard's files */
void api_h_events_stream(struct route_ctx *c);
void api_h_whoami(struct route_ctx *c);
void api_h_abort(struct route_ctx *c);
void api_h_promote(struct route_ctx *c);
void api_h_ui_index(struct route_ctx *c);
void api_h_ui_file(struct route_ctx *c);
/* api_metrics.c */
void api_h_metrics(struct route_ctx *c);
void api_h_notify_add(struct route_ctx *c);
void api_h_notify_list(struct route_ctx *c);
void api_h_notify_remove(struct route_ctx *c);

#endif
