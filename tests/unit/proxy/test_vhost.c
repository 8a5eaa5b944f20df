/* Host routing: the vhost table (one row per request), host and prefix validation, the route
 * fields that put a route on a shared listener, and the admin table's sharing rules. */
#include <criterion/criterion.h>
#include <string.h>

#include "proxy/proxy.h"
#include "proxy/route.h"
#include "proxy/vhost.h"
#include "util/name.h"

static int A, B, C, D, E; /* the values: their addresses */

static vhost *table(void)
{
	vhost *t = vhost_new();
	cr_assert(t);
	cr_assert_eq(vhost_add(t, "api.example.com", NULL, &A, NULL), 0);
	cr_assert_eq(vhost_add(t, "API.example.com", "/v2", &B, NULL), 0); /* case folded */
	cr_assert_eq(vhost_add(t, "api.example.com", "/v2/admin", &C, NULL), 0);
	cr_assert_eq(vhost_add(t, "*.example.com", NULL, &D, NULL), 0);
	cr_assert_eq(vhost_add(t, "*.eu.example.com", "/", &E, NULL), 0);
	cr_assert_eq(vhost_add(t, "only.example.org", "/x", &E, NULL), 0);
	return t;
}

Test(vhost, lookup_table)
{
	static const struct {
		const char *host, *path;
		int want; /* enum vhost_result */
		const int *val;
	} rows[] = {
		{"api.example.com", "/", VHOST_FOUND, &A},
		{"Api.Example.COM:8080", "/users?x=1", VHOST_FOUND, &A},
		{"api.example.com.", "/", VHOST_FOUND, &A},             /* trailing dot */
		{"api.example.com", "/v2", VHOST_FOUND, &B},
		{"api.example.com", "/v2?q", VHOST_FOUND, &B},
		{"api.example.com", "/v2/users", VHOST_FOUND, &B},
		{"api.example.com", "/v2/admin/x", VHOST_FOUND, &C},    /* the longest prefix wins */
		{"api.example.com", "/v2admin", VHOST_FOUND, &A},       /* whole segments only */
		{"api.example.com", "/v20", VHOST_FOUND, &A},
		{"www.example.com", "/", VHOST_FOUND, &D},              /* wildcard */
		{"a.b.example.com", "/", VHOST_FOUND, &D},              /* any depth */
		{"x.eu.example.com", "/", VHOST_FOUND, &E},             /* the longest suffix wins */
		{"eu.example.com", "/", VHOST_FOUND, &D},
		{"example.com", "/", VHOST_NO_HOST, NULL},              /* *.x is not x */
		{"example.org", "/", VHOST_NO_HOST, NULL},
		{"only.example.org", "/x/y", VHOST_FOUND, &E},
		{"only.example.org", "/", VHOST_NO_PATH, NULL},         /* host served, path not */
		{"only.example.org", "*", VHOST_NO_PATH, NULL},
		{"api.example.com", "*", VHOST_FOUND, &A},              /* OPTIONS *: the "/" prefix */
		{"", "/", VHOST_BAD_HOST, NULL},
		{":80", "/", VHOST_BAD_HOST, NULL},
		{"[::1]:80", "/", VHOST_NO_HOST, NULL},
		{"[::1", "/", VHOST_BAD_HOST, NULL},
	};
	vhost *t = table();
	cr_assert_eq(vhost_count(t), 6);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		void *v = NULL;
		int r = vhost_find(t, rows[i].host, strlen(rows[i].host), rows[i].path, strlen(rows[i].path), &v);
		cr_assert_eq(r, rows[i].want, "row %zu (%s %s): %d", i, rows[i].host, rows[i].path, r);
		if (rows[i].val)
			cr_assert_eq(v, rows[i].val, "row %zu (%s %s): wrong value", i, rows[i].host, rows[i].path);
	}
	void *v;
	cr_assert_eq(vhost_find(t, NULL, 0, "/", 1, &v), VHOST_BAD_HOST);
	char longname[300];
	memset(longname, 'a', sizeof(longname));
	cr_assert_eq(vhost_find(t, longname, sizeof(longname), "/", 1, &v), VHOST_BAD_HOST);
	vhost_free(t);
}

Test(vhost, add_conflict_delete)
{
	vhost *t = table();
	void *other = NULL;
	cr_assert_eq(vhost_add(t, "api.EXAMPLE.com", "/v2", &E, &other), -2);
	cr_assert_eq(other, &B);
	cr_assert_eq(vhost_add(t, "*.example.com", "/", &E, &other), -2, "NULL and \"/\" are one prefix");
	cr_assert_eq(other, &D);
	/* deleting with the wrong value leaves the pair */
	vhost_del(t, "api.example.com", "/v2", &A);
	void *v;
	cr_assert_eq(vhost_find(t, "api.example.com", 15, "/v2", 3, &v), VHOST_FOUND);
	cr_assert_eq(v, &B);
	vhost_del(t, "api.example.com", "/v2", &B);
	cr_assert_eq(vhost_find(t, "api.example.com", 15, "/v2", 3, &v), VHOST_FOUND);
	cr_assert_eq(v, &A, "the shorter prefix takes over");
	vhost_del(t, "api.example.com", NULL, &A);
	vhost_del(t, "api.example.com", "/v2/admin", &C);
	cr_assert_eq(vhost_find(t, "api.example.com", 15, "/", 1, &v), VHOST_FOUND);
	cr_assert_eq(v, &D, "the exact entry is gone: the wildcard serves");
	cr_assert_eq(vhost_count(t), 3);
	vhost_free(t);
}

Test(vhost, many_hosts_grow_the_table)
{
	vhost *t = vhost_new();
	static int vals[5000];
	char name[64];
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "svc%d.example.com", i);
		cr_assert_eq(vhost_add(t, name, NULL, &vals[i], NULL), 0);
	}
	for (int i = 0; i < 5000; i++) {
		void *v = NULL;
		snprintf(name, sizeof(name), "SVC%d.example.com:80", i);
		cr_assert_eq(vhost_find(t, name, strlen(name), "/", 1, &v), VHOST_FOUND);
		cr_assert_eq(v, &vals[i]);
	}
	for (int i = 0; i < 5000; i += 2) {
		snprintf(name, sizeof(name), "svc%d.example.com", i);
		vhost_del(t, name, NULL, &vals[i]);
	}
	cr_assert_eq(vhost_count(t), 2500);
	void *v;
	cr_assert_eq(vhost_find(t, "svc10.example.com", 17, "/", 1, &v), VHOST_NO_HOST);
	cr_assert_eq(vhost_find(t, "svc11.example.com", 17, "/", 1, &v), VHOST_FOUND);
	vhost_free(t);
}

Test(vhost, patterns_and_prefixes)
{
	static const char *good[] = {"a", "a.b", "*.b.c", "xn--d1acufc.xn--p1ai", "1.2.3.4", "A-B.c"};
	static const char *bad[] = {"", "*", "*.", "a..b", ".a", "a.", "-a.b", "a-.b", "a_b", "a:80",
				    "*.*.a", "a.*.b", "[::1]"};
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		cr_assert(name_host_ok(good[i]), "%s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		cr_assert(!name_host_ok(bad[i]), "%s", bad[i]);
	static const char *pgood[] = {"/", "/a", "/a/b", "/a-b.c~d", "/%41"};
	static const char *pbad[] = {"", "a", "/a/", "//a", "/a?b", "/a#b", "/a b"};
	for (size_t i = 0; i < sizeof(pgood) / sizeof(*pgood); i++)
		cr_assert(name_path_prefix_ok(pgood[i]), "%s", pgood[i]);
	for (size_t i = 0; i < sizeof(pbad) / sizeof(*pbad); i++)
		cr_assert(!name_path_prefix_ok(pbad[i]), "%s", pbad[i]);
}

static json_t *js(const char *s)
{
	json_error_t je;
	json_t *j = json_loads(s, 0, &je);
	cr_assert(j, "bad test JSON: %s", je.text);
	return j;
}

#define V1 "\"versions\":[{\"version\":\"v1\",\"weight\":1,\"backends\":[\"127.0.0.1:1\"]}]"

Test(vhost, route_fields)
{
	static const struct {
		const char *json, *msg;
	} bad[] = {
		{"{\"listen\":\"127.0.0.1:1\",\"hosts\":[]," V1 "}", "hosts: must be an array of 1 to 32"},
		{"{\"listen\":\"127.0.0.1:1\",\"hosts\":\"a\"," V1 "}", "hosts: must be an array"},
		{"{\"listen\":\"127.0.0.1:1\",\"hosts\":[\"a\",\"a:80\"]," V1 "}", "hosts[1]: must be a DNS name"},
		{"{\"listen\":\"127.0.0.1:1\",\"hosts\":[\"a\",\"A\"]," V1 "}", "hosts[1]: duplicate host a"},
		{"{\"listen\":\"127.0.0.1:1\",\"path_prefix\":\"/a\"," V1 "}", "path_prefix: needs hosts"},
		{"{\"listen\":\"127.0.0.1:1\",\"hosts\":[\"a\"],\"path_prefix\":\"/a/\"," V1 "}",
		 "path_prefix: must be \"/\" or"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		json_t *j = js(bad[i].json);
		struct route_cfg c;
		struct err e = {{0}};
		cr_assert_eq(route_cfg_parse(j, "routes[1]", &c, &e), -1, "case %zu accepted", i);
		cr_assert(strstr(e.msg, bad[i].msg) && !strncmp(e.msg, "routes[1].", 10), "case %zu: got '%s'",
			  i, e.msg);
		route_cfg_release(&c);
		json_decref(j);
	}
	json_t *j = js("{\"listen\":\"127.0.0.1:1\",\"hosts\":[\"Api.Example.com\",\"*.x.org\"],"
		       "\"path_prefix\":\"/v1\"," V1 "}");
	struct route_cfg c;
	struct err e;
	cr_assert_eq(route_cfg_parse(j, "", &c, &e), 0, "%s", e.msg);
	json_t *o = route_cfg_json(&c);
	char *s = json_dumps(json_object_get(o, "hosts"), JSON_COMPACT);
	cr_assert_str_eq(s, "[\"api.example.com\",\"*.x.org\"]");
	cr_assert_str_eq(json_string_value(json_object_get(o, "path_prefix")), "/v1");
	free(s);
	json_decref(o);
	route_cfg_release(&c);
	json_decref(j);
}

/* The admin table: routes with hosts share an address, others do not; a pair is served once. */
Test(vhost, shared_listener_rules)
{
	struct proxy_limits lim;
	proxy_limits_default(&lim);
	proxy *p;
	struct err e;
	cr_assert_eq(proxy_new(&p, 2, &lim, &e), 0, "%s", e.msg);
	cr_assert_eq(proxy_start(p, &e), 0, "%s", e.msg);
	json_t *a = js("{\"listen\":\"127.0.0.1:0\",\"hosts\":[\"a.test\"]," V1 "}");
	cr_assert_eq(proxy_route_put(p, a, "a", "", &e), 0, "%s", e.msg);
	json_t *g = proxy_route_json(p, "a");
	char addr[64], body[512];
	snprintf(addr, sizeof(addr), "%s", json_string_value(json_object_get(g, "listen")));
	json_decref(g);
	/* another route with hosts shares it */
	snprintf(body, sizeof(body), "{\"listen\":\"%s\",\"hosts\":[\"b.test\",\"a.test\"],\"path_prefix\":\"/b\"," V1 "}", addr);
	json_t *b = js(body);
	cr_assert_eq(proxy_route_put(p, b, "b", "", &e), 0, "%s", e.msg);
	/* the same host and prefix twice: refused, naming the route that has it */
	snprintf(body, sizeof(body), "{\"listen\":\"%s\",\"hosts\":[\"c.test\",\"B.test\"],\"path_prefix\":\"/b\"," V1 "}", addr);
	json_t *c = js(body);
	cr_assert_eq(proxy_route_put(p, c, "c", "", &e), -1);
	cr_assert(strstr(e.msg, "hosts[1]: b.test with path prefix /b on ") &&
		  strstr(e.msg, "is already served by route b"), "%s", e.msg);
	/* replacing a route with its own pairs is fine */
	cr_assert_eq(proxy_route_put(p, b, "b", "", &e), 0, "%s", e.msg);
	/* a route without hosts cannot take a shared address */
	snprintf(body, sizeof(body), "{\"listen\":\"%s\"," V1 "}", addr);
	json_t *x = js(body);
	cr_assert_eq(proxy_route_put(p, x, "x", "", &e), -1);
	cr_assert(strstr(e.msg, "listen: ") && strstr(e.msg, "shared by routes with hosts"), "%s", e.msg);
	/* nor can a route with hosts take the address of one without */
	json_t *own = js("{\"listen\":\"127.0.0.1:0\"," V1 "}");
	cr_assert_eq(proxy_route_put(p, own, "own", "", &e), 0, "%s", e.msg);
	g = proxy_route_json(p, "own");
	snprintf(body, sizeof(body), "{\"listen\":\"%s\",\"hosts\":[\"d.test\"]," V1 "}",
		 json_string_value(json_object_get(g, "listen")));
	json_decref(g);
	json_t *d = js(body);
	cr_assert_eq(proxy_route_put(p, d, "d", "", &e), -1);
	cr_assert(strstr(e.msg, "already used by route own (its own listener"), "%s", e.msg);
	/* deleting b frees its pairs: c fits now */
	cr_assert_eq(proxy_route_delete(p, "b"), 0);
	cr_assert_eq(proxy_route_put(p, c, "c", "", &e), 0, "%s", e.msg);
	/* a route leaves the shared listener for one of its own, and comes back */
	cr_assert_eq(proxy_route_put(p, own, "a", "", &e), 0, "%s", e.msg);
	cr_assert_eq(proxy_route_put(p, a, "a", "", &e), 0, "%s", e.msg);
	cr_assert_eq(proxy_route_delete(p, "a"), 0);
	cr_assert_eq(proxy_route_delete(p, "c"), 0);
	/* a route that leaves its own listener for hosts frees the address for another route */
	g = proxy_route_json(p, "own");
	char ownaddr[64];
	snprintf(ownaddr, sizeof(ownaddr), "%s", json_string_value(json_object_get(g, "listen")));
	json_decref(g);
	json_t *own2shared = js("{\"listen\":\"127.0.0.1:0\",\"hosts\":[\"own.test\"]," V1 "}");
	cr_assert_eq(proxy_route_put(p, own2shared, "own", "", &e), 0, "%s", e.msg);
	snprintf(body, sizeof(body), "{\"listen\":\"%s\"," V1 "}", ownaddr);
	json_t *z = js(body);
	cr_assert_eq(proxy_route_put(p, z, "z", "", &e), 0, "%s", e.msg);
	cr_assert_eq(proxy_route_delete(p, "z"), 0);
	cr_assert_eq(proxy_route_delete(p, "own"), 0);
	json_decref(own2shared);
	json_decref(z);
	json_decref(a);
	json_decref(b);
	json_decref(c);
	json_decref(x);
	json_decref(own);
	json_decref(d);
	proxy_free(p);
}
