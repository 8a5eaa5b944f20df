/*
 * routes: the table that sends an API request to its handler, for the APIs served with
 * http/server.h (the control plane's /v1, and the room it keeps for /ofrep/v1 and /ui).
 *
 * A route is a method, a path pattern, the permission it needs and a handler. The permission
 * is the application's number: this module only hands it to the middleware, which decides
 * (authentication, authorization, limits). Declaring it in the table means no handler can be
 * reached without the middleware having seen what it needs.
 *
 * Patterns are absolute paths of literal segments and captures: "/v1/deployments/{id}/retry".
 * A capture matches one non-empty segment; its value is percent-decoded and refused (400)
 * when it holds '/', a control character or more than ROUTES_MAX_VALUE - 1 bytes, so a
 * handler never sees a value that could name another path. A pattern may end in "/{*rest}":
 * that capture takes the rest of the path, undecoded (static files). Matching is exact on the
 * segment count otherwise; an empty segment ("//", a trailing "/") matches nothing.
 *
 * Dispatch: the first route whose pattern and method match wins. A path that some pattern
 * matches but not with this method gets 405 with an Allow header naming the methods that
 * would; a path no pattern matches gets 404. Before the handler, each middleware runs in
 * order; one that answers (returns nonzero) stops the request there. After the handler (or the
 * refusal), the `after` hook sees the final response (access logs, audit, metrics).
 *
 * Bodies: a route also declares what a request that may change something must send, the
 * Content-Type (NULL: application/json) and the largest body (0: ROUTES_BODY_DEFAULT). This
 * module only hands them on: the middleware checks the type, the server's on_head hook finds
 * the route of a head (routes_find) and sets the body limit before any body byte is read.
 *
 * Nothing here allocates: the parameters live in the caller's stack frame during the call.
 */
#ifndef SLUICE_ROUTES_H
#define SLUICE_ROUTES_H

#include <stdint.h>

#include "http/server.h"

#define ROUTES_MAX_PARAMS 4
#define ROUTES_MAX_VALUE 256     /* a capture's decoded value, NUL included */
#define ROUTES_MAX_SEGMENTS 16   /* longer paths match no pattern (404) */
#define ROUTES_BODY_DEFAULT (4u << 20) /* a route's body limit when it declares none (JSON) */

/* The captures of the matched pattern, in pattern order. */
struct routes_params {
	int n;
	const char *name[ROUTES_MAX_PARAMS];  /* points into the pattern: "id" for "{id}" */
	char value[ROUTES_MAX_PARAMS][ROUTES_MAX_VALUE];
};

struct route;

/* The handler: fills resp (status, body). p is valid during the call only. */
typedef void routes_handler(void *ctx, const struct route *rt, const struct httpd_req *req,
			    const struct routes_params *p, struct httpd_resp *resp);

struct route {
	const char *method;    /* "GET", "POST", "PUT", "DELETE" */
	const char *pattern;   /* "/v1/services/{service}/releases" */
	int permission;        /* the application's; read by the middleware only */
	routes_handler *fn;
	const char *summary;   /* one line for people: docs, logs, the route listing */
	const char *content_type; /* what a POST/PUT/DELETE must send; NULL: application/json */
	uint64_t body_max;     /* its largest body in bytes; 0: ROUTES_BODY_DEFAULT */
};

/* Runs before the handler. Returns 0 to let the request go on, nonzero after it answered
 * (resp filled: 401, 403, 413, 415 ...). */
typedef int routes_middleware(void *ctx, const struct route *rt, const struct httpd_req *req,
			      const struct routes_params *p, struct httpd_resp *resp);
/* Runs after the handler or the refusal, with the final response. rt is NULL for a 404/405. */
typedef void routes_after(void *ctx, const struct route *rt, const struct httpd_req *req,
			  const struct httpd_resp *resp);

struct routes_table {
	const struct route *routes;
	size_t n;
	routes_middleware *const *middleware; /* NULL-terminated, may be NULL */
	routes_after *after;                  /* may be NULL */
};

/* Answers req through the table: 404, 405 (with Allow), 400 for a capture that is refused, a
 * middleware's refusal, or the handler's response. */
void routes_dispatch(const struct routes_table *t, void *ctx, const struct httpd_req *req,
		     struct httpd_resp *resp);

/* The route that routes_dispatch would run for method and path, with its captures in *p (OUT,
 * may be NULL); NULL when dispatch would answer 404, 405 or 400 (a refused capture). For hooks
 * that run before the body is read (the server's on_head). */
const struct route *routes_find(const struct routes_table *t, const char *method, const char *path,
				struct routes_params *p /* OUT, may be NULL */);

/* What rt declares, with the defaults applied: never NULL, never 0. */
const char *routes_content_type(const struct route *rt);
uint64_t routes_body_max(const struct route *rt);

/* The value of capture `name` (NULL when the pattern has none by that name). */
const char *routes_param(const struct routes_params *p, const char *name);

/* Whether a pattern is well-formed: absolute, no empty segment, captures "{name}" with a
 * name of [a-z_], at most ROUTES_MAX_PARAMS, "{*rest}" last only. For the tables' own test. */
int routes_pattern_ok(const char *pattern);

#endif
