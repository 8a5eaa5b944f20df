/* Unit tests of src/http/routes: matching, captures, 404/405, middleware and the after hook. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "http/routes.h"

/* the table leaves the body columns out where the defaults apply (NULL, 0) */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

struct calls {
	char handled[64];
	char param[ROUTES_MAX_VALUE];
	int middleware, after, after_status, refuse;
};

static void h(void *ctx, const struct route *rt, const struct httpd_req *req,
	      const struct routes_params *p, struct httpd_resp *resp)
{
	struct calls *c = ctx;
	snprintf(c->handled, sizeof(c->handled), "%s", rt->summary);
	const char *v = p->n ? p->value[p->n - 1] : "";
	snprintf(c->param, sizeof(c->param), "%s", v);
	resp->status = 200;
}

static int mw(void *ctx, const struct route *rt, const struct httpd_req *req,
	      const struct routes_params *p, struct httpd_resp *resp)
{
	struct calls *c = ctx;
	c->middleware++;
	if (c->refuse && rt->permission > 0) {
		httpd_error(resp, 403, "no");
		return 1;
	}
	return 0;
}

static void after(void *ctx, const struct route *rt, const struct httpd_req *req,
		  const struct httpd_resp *resp)
{
	struct calls *c = ctx;
	c->after++;
	c->after_status = resp->status;
}

static const struct route table[] = {
	{"GET", "/v1/health", 0, h, "health"},
	{"GET", "/v1/deployments", 1, h, "list"},
	{"POST", "/v1/deployments", 2, h, "create"},
	{"GET", "/v1/deployments/{id}", 1, h, "get"},
	{"POST", "/v1/deployments/{id}/retry", 2, h, "retry"},
	{"GET", "/v1/services/{service}/releases", 1, h, "releases"},
	{"GET", "/ui/{*path}", 0, h, "ui"},
	{"PUT", "/v1/artifacts/{digest}", 2, h, "upload", "application/octet-stream", 256u << 20},
};

static routes_middleware *const chain[] = {mw, NULL};
static const struct routes_table T = {table, sizeof(table) / sizeof(table[0]), chain, after};

static int run(struct calls *c, const char *method, const char *path, struct httpd_resp *resp)
{
	struct httpd_req req = {.method = method, .path = path, .query = "", .body = "", .peer = "127.0.0.1:1"};
	buf_init(&resp->headers, 4096);
	buf_init(&resp->body, 65536);
	resp->status = 200;
	memset(c->handled, 0, sizeof(c->handled));
	routes_dispatch(&T, c, &req, resp);
	return resp->status;
}

static void done(struct httpd_resp *resp)
{
	buf_release(&resp->headers);
	buf_release(&resp->body);
}

Test(routes, table_driven)
{
	static const struct {
		const char *method, *path;
		int status;
		const char *handled, *param;
	} cases[] = {
		{"GET", "/v1/health", 200, "health", ""},
		{"GET", "/v1/deployments", 200, "list", ""},
		{"POST", "/v1/deployments", 200, "create", ""},
		{"GET", "/v1/deployments/42", 200, "get", "42"},
		{"POST", "/v1/deployments/42/retry", 200, "retry", "42"},
		{"GET", "/v1/services/metadata/releases", 200, "releases", "metadata"},
		{"GET", "/v1/services/a%2Db/releases", 200, "releases", "a-b"},
		{"GET", "/ui/assets/app.js", 200, "ui", "assets/app.js"},
		/* no pattern */
		{"GET", "/v1/nothing", 404, "", ""},
		{"GET", "/v1/deployments/42/retry/x", 404, "", ""},
		{"GET", "/", 404, "", ""},
		{"GET", "/ui", 404, "", ""},
		/* empty segments match nothing */
		{"GET", "/v1//deployments", 404, "", ""},
		{"GET", "/v1/deployments/", 404, "", ""},
		/* a pattern, another method */
		{"DELETE", "/v1/deployments", 405, "", ""},
		{"GET", "/v1/deployments/42/retry", 405, "", ""},
		/* captures that could name another path or smuggle bytes */
		{"GET", "/v1/deployments/a%2Fb", 400, "", ""},
		{"GET", "/v1/deployments/a%0ab", 400, "", ""},
		{"GET", "/v1/deployments/a%2", 400, "", ""},
		{"GET", "/v1/deployments/%zz", 400, "", ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct calls c = {0};
		struct httpd_resp resp;
		int st = run(&c, cases[i].method, cases[i].path, &resp);
		cr_expect_eq(st, cases[i].status, "%s %s: status %d", cases[i].method, cases[i].path, st);
		cr_expect_str_eq(c.handled, cases[i].handled, "%s %s: handled by '%s'", cases[i].method,
				 cases[i].path, c.handled);
		if (cases[i].status == 200)
			cr_expect_str_eq(c.param, cases[i].param, "%s %s: param '%s'", cases[i].method,
					 cases[i].path, c.param);
		cr_expect_eq(c.after, 1, "%s %s: the after hook runs once", cases[i].method, cases[i].path);
		cr_expect_eq(c.after_status, st);
		done(&resp);
	}
}

Test(routes, allow_header_names_each_method_once)
{
	struct calls c = {0};
	struct httpd_resp resp;
	cr_assert_eq(run(&c, "PUT", "/v1/deployments", &resp), 405);
	cr_expect_str_eq(resp.headers.data, "Allow: GET, POST\r\n");
	cr_expect_eq(c.middleware, 0, "no middleware runs without a route");
	done(&resp);
}

Test(routes, a_middleware_refusal_stops_the_handler)
{
	struct calls c = {.refuse = 1};
	struct httpd_resp resp;
	cr_expect_eq(run(&c, "POST", "/v1/deployments", &resp), 403);
	cr_expect_str_eq(c.handled, "");
	cr_expect_eq(c.middleware, 1);
	cr_expect_eq(c.after_status, 403);
	done(&resp);
	cr_expect_eq(run(&c, "GET", "/v1/health", &resp), 200, "permission 0 goes through");
	cr_expect_str_eq(c.handled, "health");
	done(&resp);
}

Test(routes, long_values_and_long_paths)
{
	char path[2048], seg[400];
	memset(seg, 'a', sizeof(seg) - 1);
	seg[sizeof(seg) - 1] = '\0';
	snprintf(path, sizeof(path), "/v1/deployments/%s", seg);
	struct calls c = {0};
	struct httpd_resp resp;
	cr_expect_eq(run(&c, "GET", path, &resp), 400, "a capture over the limit");
	done(&resp);
	seg[ROUTES_MAX_VALUE - 1] = '\0';
	snprintf(path, sizeof(path), "/v1/deployments/%s", seg);
	cr_expect_eq(run(&c, "GET", path, &resp), 200, "the longest capture that fits");
	cr_expect_eq(strlen(c.param), ROUTES_MAX_VALUE - 1);
	done(&resp);
	strcpy(path, "");
	for (int i = 0; i < ROUTES_MAX_SEGMENTS + 1; i++)
		strcat(path, "/x");
	cr_expect_eq(run(&c, "GET", path, &resp), 404);
	done(&resp);
}

Test(routes, pattern_checks)
{
	cr_expect(routes_pattern_ok("/v1/health"));
	cr_expect(routes_pattern_ok("/v1/deployments/{id}/retry"));
	cr_expect(routes_pattern_ok("/ui/{*path}"));
	cr_expect(routes_pattern_ok("/"));
	cr_expect_not(routes_pattern_ok("v1/health"));
	cr_expect_not(routes_pattern_ok("/v1//health"));
	cr_expect_not(routes_pattern_ok("/v1/{}"));
	cr_expect_not(routes_pattern_ok("/v1/{ID}"));
	cr_expect_not(routes_pattern_ok("/v1/x{id}"));
	cr_expect_not(routes_pattern_ok("/{*rest}/x"));
	cr_expect_not(routes_pattern_ok("/{a}/{b}/{c}/{d}/{e}"));
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		cr_expect(routes_pattern_ok(table[i].pattern), "%s", table[i].pattern);
}

Test(routes, find_answers_what_dispatch_would_run)
{
	static const struct {
		const char *method, *path;
		const char *summary; /* NULL: no route */
		const char *param;
	} cases[] = {
		{"GET", "/v1/health", "health", NULL},
		{"POST", "/v1/deployments", "create", NULL},
		{"GET", "/v1/deployments/42", "get", "42"},
		{"POST", "/v1/deployments/a%2Db/retry", "retry", "a-b"},
		{"PUT", "/v1/artifacts/sha256:00", "upload", "sha256:00"},
		{"GET", "/ui/a/b.js", "ui", "a/b.js"},
		{"GET", "/v1/nothing", NULL, NULL},           /* 404 */
		{"DELETE", "/v1/deployments", NULL, NULL},    /* 405 */
		{"GET", "/v1/artifacts/sha256:00", NULL, NULL}, /* 405: PUT only */
		{"GET", "/v1/deployments/a%2Fb", NULL, NULL}, /* 400 */
		{"GET", "/v1/deployments/", NULL, NULL},
		{"GET", "relative", NULL, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct routes_params p;
		memset(&p, 0x5a, sizeof(p));
		const struct route *r = routes_find(&T, cases[i].method, cases[i].path, &p);
		if (!cases[i].summary) {
			cr_expect_null(r, "%s %s: found '%s'", cases[i].method, cases[i].path, r ? r->summary : "");
			continue;
		}
		cr_assert_not_null(r, "%s %s: no route", cases[i].method, cases[i].path);
		cr_expect_str_eq(r->summary, cases[i].summary, "%s %s", cases[i].method, cases[i].path);
		if (cases[i].param) {
			cr_assert_eq(p.n, 1, "%s %s: %d captures", cases[i].method, cases[i].path, p.n);
			cr_expect_str_eq(p.value[0], cases[i].param);
		} else {
			cr_expect_eq(p.n, 0, "%s %s: %d captures", cases[i].method, cases[i].path, p.n);
		}
		/* the same answer without captures wanted */
		cr_expect_eq(routes_find(&T, cases[i].method, cases[i].path, NULL), r);
	}
}

Test(routes, body_columns_and_their_defaults)
{
	const struct route *json = routes_find(&T, "POST", "/v1/deployments", NULL);
	const struct route *up = routes_find(&T, "PUT", "/v1/artifacts/x", NULL);
	cr_assert(json && up);
	cr_expect_str_eq(routes_content_type(json), "application/json");
	cr_expect_eq(routes_body_max(json), ROUTES_BODY_DEFAULT);
	cr_expect_eq(ROUTES_BODY_DEFAULT, 4u << 20);
	cr_expect_str_eq(routes_content_type(up), "application/octet-stream");
	cr_expect_eq(routes_body_max(up), 256u << 20);
}
