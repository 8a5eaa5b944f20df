/*
 * Authentication, authorization and audit of the API (src/server/api.c, auth.c, tokens.c).
 *
 * The matrix: every endpoint of the route table × a set of tokens (none, malformed, revoked,
 * expired, one per action, and tokens limited to services and environments by names and
 * patterns). For each cell the test's own oracle (written here, not auth.c's code) says
 * whether the token may make the request; an allowed request must succeed exactly as the
 * admin's does (2xx), a refused one must be 401 or 403 and change nothing in the store. Each
 * token runs the whole sequence on a fresh server, so that cells do not depend on each other.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/auth.h"
#include "server/tokens.h"
#include "support/shell.h"
#include "util/sha256.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

static const char *const manifests =
	"kind: Environment\n"
	"name: production\n"
	"regions:\n"
	"  - name: eu\n"
	"---\n"
	"kind: Environment\n"
	"name: staging\n"
	"regions:\n"
	"  - name: eu\n"
	"    port_offset: 200\n"
	"---\n"
	"kind: Service\n"
	"name: pay\n"
	"listen_port: 18101\n"
	"---\n"
	"kind: Service\n"
	"name: web\n"
	"listen_port: 18102\n";

#define FLAGSET                                                                             \
	"{\"flags\": {\"f\": {\"state\": \"ENABLED\", \"variants\": {\"on\": true, \"off\": false}, " \
	"\"defaultVariant\": \"on\"}}}"

static struct shell sh;
static struct shell_answer ans;
static char digest[72];

/* ---- set-up: two services, two environments, a failed deployment of pay ---- */

static void admin_ok(const char *method, const char *target, const char *body)
{
	int st = shell_call(&sh, NULL, method, target, body, body ? strlen(body) : 0, &ans);
	cr_assert(st >= 200 && st < 300, "%s %s: %d %s", method, target, st, ans.text);
}

static void upload(const char *bytes, char out[72])
{
	struct sha256 h;
	unsigned char d[32];
	char hex[65], path[128];
	sha256_init(&h);
	sha256_update(&h, bytes, strlen(bytes));
	sha256_final(&h, d);
	sha256_hex(d, hex);
	snprintf(out, 72, "sha256:%s", hex);
	snprintf(path, sizeof(path), "/v1/artifacts/%s", out);
	admin_ok("PUT", path, bytes);
}

static void setup(void)
{
	shell_open(&sh, NULL);
	json_t *b = json_pack("{s:[{s:s, s:s}]}", "files", "name", "m.yaml", "content", manifests);
	char *txt = json_dumps(b, 0);
	admin_ok("POST", "/v1/apply", txt);
	free(txt);
	json_decref(b);
	upload("#!/bin/sh\n# app\n", digest);
	const char *versions[] = {"v1", "v2", "v3"};
	for (int i = 0; i < 3; i++) {
		char body[256];
		snprintf(body, sizeof(body), "{\"version\": \"%s\", \"digest\": \"%s\"}", versions[i], digest);
		admin_ok("POST", "/v1/services/pay/releases", body);
		admin_ok("POST", "/v1/services/web/releases", body);
	}
	struct err e = {""};
	cr_assert_eq(store_set_stable(sh.store, "pay", "production", "eu", "v1", 0, &e), 0, "%s", e.msg);
	cr_assert_eq(store_set_stable(sh.store, "web", "production", "eu", "v1", 0, &e), 0, "%s", e.msg);
	/* deployment 1: pay v2 in production, whose region failed (what retry is for) */
	admin_ok("POST", "/v1/deployments", "{\"service\": \"pay\", \"version\": \"v2\", \"force\": true}");
	cr_assert_eq(json_integer_value(json_object_get(ans.json, "id")), 1);
	json_t *dep = NULL;
	cr_assert_eq(store_get_deployment(sh.store, 1, &dep, &e), 0, "%s", e.msg);
	json_t *state = json_object_get(dep, "state");
	json_object_set_new(json_array_get(json_object_get(state, "regions"), 0), "state", json_string("failed"));
	cr_assert_eq(store_update_deployment(sh.store, 1, state, "active", NULL, &e), 0, "%s", e.msg);
	json_decref(dep);
	/* a flag set in production */
	json_t *fb = json_pack("{s:s}", "content", FLAGSET);
	char *ft = json_dumps(fb, 0);
	admin_ok("POST", "/v1/flags/production", ft);
	admin_ok("POST", "/v1/flags/staging", ft);
	free(ft);
	json_decref(fb);
	/* flag rollout 1, in staging */
	admin_ok("POST", "/v1/flags/staging/flag/f/rollout",
		 "{\"variant\": \"off\", \"steps\": [50, 100], \"service\": \"pay\"}");
}

static void teardown(void)
{
	shell_answer_free(&ans);
	shell_close(&sh);
}

static int count_files(const char *dir)
{
	DIR *d = opendir(dir);
	cr_assert(d, "%s", dir);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Everything the API can change, but the audit log: equal before and after a refusal. */
static char *state_of(void)
{
	struct err e = {""};
	json_t *all = json_object(), *v = NULL;
	const char *kinds[] = {"Service", "Environment"};
	for (int k = 0; k < 2; k++) {
		cr_assert_eq(store_list_manifests(sh.store, kinds[k], &v, &e), 0, "%s", e.msg);
		json_object_set_new(all, kinds[k], v);
	}
	const char *svcs[] = {"pay", "web"};
	for (int k = 0; k < 2; k++) {
		cr_assert_eq(store_list_releases(sh.store, svcs[k], &v, &e), 0, "%s", e.msg);
		json_object_set_new(all, svcs[k], v);
	}
	cr_assert_eq(store_list_deployments(sh.store, NULL, &v, &e), 0, "%s", e.msg);
	json_object_set_new(all, "deployments", v);
	cr_assert_eq(store_list_stable(sh.store, NULL, &v, &e), 0, "%s", e.msg);
	json_object_set_new(all, "stable", v);
	cr_assert_eq(store_list_tokens(sh.store, &v, &e), 0, "%s", e.msg);
	json_object_set_new(all, "tokens", v);
	json_object_set_new(all, "artifacts", json_integer(count_files(sh.artifacts)));
	char *s = json_dumps(all, JSON_SORT_KEYS);
	json_decref(all);
	return s;
}

/* ---- the oracle ---- */

enum target { SOMEWHERE, SERVICE_ANY_ENV, EXACT, ENV, TOKEN_ENV };

struct row {
	const char *method, *target, *body;
	enum auth_action action;
	enum target kind;
	const char *service, *env; /* NULL: every one */
	int conflict_ok; /* allowed, it may still find the deployment in no state for it: 409
			  * (past the permission check, which is what the matrix tests) */
};

/* In the order they run (a refused request changes nothing, so the order is the same for
 * every token). The artifact uploaded is new for each token's server. */
static const struct row rows[] = {
	{"GET", "/v1/health", NULL, AUTH_PUBLIC, SOMEWHERE},
	{"GET", "/ui", NULL, AUTH_PUBLIC, SOMEWHERE},
	{"GET", "/ui/app.js", NULL, AUTH_PUBLIC, SOMEWHERE},
	{"GET", "/v1/server", NULL, AUTH_READ, SOMEWHERE},
	{"GET", "/metrics", NULL, AUTH_READ, SOMEWHERE},
	{"GET", "/v1/services", NULL, AUTH_READ, SOMEWHERE},
	{"GET", "/v1/status", NULL, AUTH_READ, SOMEWHERE},
	{"GET", "/v1/status?service=pay", NULL, AUTH_READ, SERVICE_ANY_ENV, "pay"},
	{"GET", "/v1/services/pay/releases", NULL, AUTH_READ, SERVICE_ANY_ENV, "pay"},
	{"GET", "/v1/deployments", NULL, AUTH_READ, SOMEWHERE},
	{"GET", "/v1/deployments/1", NULL, AUTH_READ, EXACT, "pay", "production"},
	{"GET", "/v1/deployments/1/events", NULL, AUTH_READ, EXACT, "pay", "production"},
	{"GET", "/v1/can-i-deploy?service=pay&version=v2&env=production", NULL, AUTH_READ, EXACT, "pay",
	 "production"},
	{"POST", "/v1/plan", "{\"targets\": {\"pay\": \"v2\"}}", AUTH_READ, EXACT, "pay", "production"},
	{"GET", "/v1/logs?service=pay&env=production", NULL, AUTH_READ, EXACT, "pay", "production"},
	{"POST", "/v1/apply", "APPLY", AUTH_APPLY, EXACT, "pay", NULL},
	{"PUT", "/v1/artifacts/DIGEST", "#!/bin/sh\n# another\n", AUTH_RELEASE, SOMEWHERE},
	{"POST", "/v1/services/pay/releases", "RELEASE", AUTH_RELEASE, SERVICE_ANY_ENV, "pay"},
	{"GET", "/v1/whoami", NULL, AUTH_READ, SOMEWHERE},
	{"GET", "/v1/events/stream", NULL, AUTH_READ, SOMEWHERE},
	{"GET", "/v1/events/stream?service=pay", NULL, AUTH_READ, SERVICE_ANY_ENV, "pay"},
	{"POST", "/v1/deployments/1/abort", "{}", AUTH_ROLLBACK, EXACT, "pay", "production"},
	{"POST", "/v1/deployments/1/promote", "{}", AUTH_DEPLOY, EXACT, "pay", "production", 1},
	{"POST", "/v1/deployments/1/retry", "{\"region\": \"eu\"}", AUTH_RETRY, EXACT, "pay", "production"},
	{"POST", "/v1/deployments", "{\"service\": \"pay\", \"version\": \"v3\", \"force\": true}", AUTH_DEPLOY, EXACT, "pay",
	 "production"},
	{"POST", "/v1/services/pay/rollback", "{\"to\": \"v1\"}", AUTH_ROLLBACK, EXACT, "pay", "production"},
	{"GET", "/v1/flags/production", NULL, AUTH_READ, ENV, NULL, "production"},
	{"GET", "/v1/flags/production/history", NULL, AUTH_READ, ENV, NULL, "production"},
	{"GET", "/v1/flags/production/flag/f", NULL, AUTH_READ, ENV, NULL, "production"},
	{"POST", "/v1/envs/production/ofrep/v1/evaluate/flags/f", "{\"context\": {\"targetingKey\": \"u\"}}",
	 AUTH_EVALUATE, ENV, NULL, "production"},
	{"POST", "/v1/envs/production/ofrep/v1/evaluate/flags", "{}", AUTH_EVALUATE, ENV, NULL, "production"},
	{"POST", "/ofrep/v1/evaluate/flags/f", "{}", AUTH_EVALUATE, TOKEN_ENV, NULL, "production"},
	{"POST", "/ofrep/v1/evaluate/flags", "{}", AUTH_EVALUATE, TOKEN_ENV, NULL, "production"},
	{"POST", "/v1/flags/production", "FLAGS", AUTH_FLAGS, ENV, NULL, "production"},
	{"GET", "/v1/flags/production/rollouts", NULL, AUTH_READ, ENV, NULL, "production"},
	{"GET", "/v1/flag-rollouts/1", NULL, AUTH_READ, ENV, NULL, "staging"},
	{"POST", "/v1/flags/production/flag/f/rollout", "{\"variant\": \"off\", \"steps\": [10, 100], \"service\": \"pay\"}",
	 AUTH_FLAGS, ENV, NULL, "production"},
	{"POST", "/v1/flags/production/flag/f/rollout/abort", "{\"reason\": \"test\"}", AUTH_FLAGS, ENV, NULL,
	 "production"},
	{"POST", "/v1/flags/production/flag/f", "{\"action\": \"kill\", \"reason\": \"test\"}", AUTH_FLAGS, ENV, NULL,
	 "production"},
	{"GET", "/v1/tokens", NULL, AUTH_ADMIN, EXACT},
	{"POST", "/v1/tokens", "{\"name\": \"new\", \"scopes\": [{\"actions\": [\"read\"]}]}", AUTH_ADMIN, EXACT},
	{"POST", "/v1/tokens/new/revoke", "{}", AUTH_ADMIN, EXACT},
	{"GET", "/v1/audit", NULL, AUTH_ADMIN, EXACT},
	{"POST", "/v1/notifications", "{\"url\": \"http://127.0.0.1:9/hook\"}", AUTH_ADMIN, EXACT},
	{"GET", "/v1/notifications", NULL, AUTH_ADMIN, EXACT},
	{"DELETE", "/v1/notifications/1", "{}", AUTH_ADMIN, EXACT},
	{"POST", "/v1/shutdown", "{}", AUTH_ADMIN, EXACT},
};
#define NROWS (sizeof(rows) / sizeof(rows[0]))

struct tok {
	const char *name;
	const char *scopes;              /* JSON; NULL: a token that is not valid */
	enum { VALID, NONE, GARBAGE, REVOKED, EXPIRED } how;
	/* the oracle's view of the one scope (tokens here have one) */
	const char *actions[3];
	const char *services, *envs; /* one pattern each: "*", a name, or "prefix*" */
};

static const struct tok toks[] = {
	{"none", NULL, NONE},
	{"garbage", NULL, GARBAGE},
	{"revoked", "[{\"actions\": [\"admin\"]}]", REVOKED},
	{"expired", "[{\"actions\": [\"admin\"]}]", EXPIRED},
	{"read", "[{\"actions\": [\"read\"]}]", VALID, {"read"}, "*", "*"},
	{"apply", "[{\"actions\": [\"apply\"]}]", VALID, {"apply"}, "*", "*"},
	{"release", "[{\"actions\": [\"release\"]}]", VALID, {"release"}, "*", "*"},
	{"deploy", "[{\"actions\": [\"deploy\"]}]", VALID, {"deploy"}, "*", "*"},
	{"rollback", "[{\"actions\": [\"rollback\"]}]", VALID, {"rollback"}, "*", "*"},
	{"retry", "[{\"actions\": [\"retry\"]}]", VALID, {"retry"}, "*", "*"},
	{"flags", "[{\"actions\": [\"flags\"]}]", VALID, {"flags"}, "*", "*"},
	{"admin2", "[{\"actions\": [\"admin\"]}]", VALID, {"admin"}, "*", "*"},
	{"pay-prod", "[{\"actions\": [\"deploy\", \"read\"], \"services\": [\"pay\"], \"envs\": [\"production\"]}]",
	 VALID, {"deploy", "read"}, "pay", "production"},
	{"web-only", "[{\"actions\": [\"deploy\", \"read\", \"release\"], \"services\": [\"web\"]}]", VALID,
	 {"deploy", "read", "release"}, "web", "*"},
	{"pay-staging", "[{\"actions\": [\"read\", \"rollback\"], \"services\": [\"pay\"], \"envs\": [\"staging\"]}]",
	 VALID, {"read", "rollback"}, "pay", "staging"},
	{"p-pattern", "[{\"actions\": [\"rollback\", \"apply\", \"retry\"], \"services\": [\"p*\"], \"envs\": [\"prod*\"]}]",
	 VALID, {"rollback", "apply", "retry"}, "p*", "prod*"},
	{"all-envs-apply", "[{\"actions\": [\"apply\", \"release\"], \"services\": [\"pay\"]}]", VALID,
	 {"apply", "release"}, "pay", "*"},
	{"evaluate-prod", "[{\"actions\": [\"evaluate\"], \"envs\": [\"production\"]}]", VALID, {"evaluate"}, "*",
	 "production"},
	{"evaluate-staging", "[{\"actions\": [\"evaluate\"], \"envs\": [\"staging\"]}]", VALID, {"evaluate"}, "*",
	 "staging"},
	{"flag-ops", "[{\"actions\": [\"flags\", \"read\"], \"envs\": [\"prod*\"]}]", VALID, {"flags", "read"}, "*",
	 "prod*"},
};
#define NTOKS (sizeof(toks) / sizeof(toks[0]))

/* The oracle's pattern match: "*", "prefix*" or a name. */
static int match(const char *pat, const char *name)
{
	size_t n = strlen(pat);
	if (!name)
		return !strcmp(pat, "*"); /* every one: only "*" covers it */
	if (n && pat[n - 1] == '*')
		return !strncmp(pat, name, n - 1);
	return !strcmp(pat, name);
}

static int may(const struct tok *t, const struct row *r)
{
	if (r->action == AUTH_PUBLIC)
		return 1;
	if (t->how != VALID)
		return 0;
	int has = 0;
	for (int i = 0; i < 3 && t->actions[i]; i++) {
		if (!strcmp(t->actions[i], "admin"))
			return r->kind != TOKEN_ENV;
		has |= !strcmp(t->actions[i], auth_action_name(r->action));
	}
	if (!has)
		return 0;
	switch (r->kind) {
	case SOMEWHERE:
		return 1;
	case SERVICE_ANY_ENV:
		return match(t->services, r->service);
	case EXACT:
		return match(t->services, r->service) && match(t->envs, r->env);
	case ENV:
		return match(t->envs, r->env);
	case TOKEN_ENV:
		/* the environment is the token's own: one name, no pattern */
		return !strchr(t->envs, '*');
	}
	return 0;
}

/* A token that may evaluate but names no single environment: the call is understood and
 * answered 400 (use the base URL of an environment), not refused. */
static int several_envs(const struct tok *t, const struct row *r)
{
	if (r->kind != TOKEN_ENV || t->how != VALID)
		return 0;
	int evaluates = 0;
	for (int i = 0; i < 3 && t->actions[i]; i++)
		evaluates |= !strcmp(t->actions[i], "evaluate") || !strcmp(t->actions[i], "admin");
	return evaluates && strchr(t->envs, '*');
}

/* ---- the matrix ---- */

/* The body of a row, with the per-server values filled in. */
static char *body_of(const struct row *r)
{
	if (!r->body)
		return NULL;
	if (!strcmp(r->body, "APPLY")) {
		json_t *b = json_pack("{s:[{s:s, s:s}]}", "files", "name", "pay.yaml", "content",
				      "kind: Service\nname: pay\nlisten_port: 18101\ninstances: 2\n");
		char *s = json_dumps(b, 0);
		json_decref(b);
		return s;
	}
	if (!strcmp(r->body, "FLAGS")) {
		json_t *b = json_pack("{s:s, s:s}", "content", FLAGSET, "reason", "matrix");
		char *s = json_dumps(b, 0);
		json_decref(b);
		return s;
	}
	if (!strcmp(r->body, "RELEASE")) {
		char *s = malloc(256);
		snprintf(s, 256, "{\"version\": \"v9\", \"digest\": \"%s\"}", digest);
		return s;
	}
	return strdup(r->body);
}

static void target_of(const struct row *r, char *dst, size_t len)
{
	const char *d = strstr(r->target, "DIGEST");
	if (!d) {
		snprintf(dst, len, "%s", r->target);
		return;
	}
	struct sha256 h;
	unsigned char dg[32];
	char hex[65];
	sha256_init(&h);
	sha256_update(&h, r->body, strlen(r->body));
	sha256_final(&h, dg);
	sha256_hex(dg, hex);
	snprintf(dst, len, "%.*ssha256:%s", (int)(d - r->target), r->target, hex);
}

/* A token of the row's kind on the current server. */
static void make_token(const struct tok *t, char secret[AUTH_SECRET_LEN + 1])
{
	secret[0] = '\0';
	if (t->how == NONE)
		return;
	if (t->how == GARBAGE) {
		snprintf(secret, AUTH_SECRET_LEN + 1, "slc_%s", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
		return;
	}
	if (t->how == EXPIRED) {
		char hash[AUTH_HASH_LEN + 1];
		struct err e = {""};
		cr_assert_eq(auth_new_secret(secret, hash, &e), 0);
		json_t *scopes = json_loads(t->scopes, 0, NULL);
		struct store_token st = {t->name, hash, scopes, store_now_ms() - 1000, "test"};
		cr_assert_eq(store_put_token(sh.store, &st, &e), 0, "%s", e.msg);
		json_decref(scopes);
		return;
	}
	shell_token(&sh, t->name, t->scopes, secret);
	if (t->how == REVOKED) {
		char path[128];
		snprintf(path, sizeof(path), "/v1/tokens/%s/revoke", t->name);
		admin_ok("POST", path, "{}");
	}
}

TestSuite(auth, .init = setup, .fini = teardown);

/* One token's row of the matrix; the counts are added to *allowed and *refused. */
static void run_token(const struct tok *t, int *allowed, int *refused)
{
	char secret[AUTH_SECRET_LEN + 1];
	make_token(t, secret);
	for (size_t i = 0; i < NROWS; i++) {
		const struct row *r = &rows[i];
		char target[256];
		target_of(r, target, sizeof(target));
		char *body = body_of(r);
		char *before = state_of();
		int st = shell_call(&sh, t->how == NONE ? SHELL_NO_TOKEN : secret, r->method, target, body,
				    body ? strlen(body) : 0, &ans);
		char *after = state_of();
		if (several_envs(t, r)) {
			cr_expect_eq(st, 400, "token %s, %s %s: got %d %s", t->name, r->method, target, st, ans.text);
			cr_expect(strstr(ans.text, "/v1/envs/ENV"), "%s", ans.text);
			(*refused)++;
		} else if (may(t, r)) {
			cr_expect((st >= 200 && st < 300) || (r->conflict_ok && st == 409), "token %s may %s %s: got %d %s",
				  t->name, r->method, target, st, ans.text);
			(*allowed)++;
		} else {
			cr_expect(st == 401 || st == 403, "token %s may not %s %s: got %d %s", t->name, r->method,
				  target, st, ans.text);
			cr_expect(t->how == VALID ? st == 403 : st == 401, "token %s: %d for %s %s", t->name, st,
				  r->method, target);
			cr_expect_str_eq(before, after, "token %s, refused %s %s, changed the store", t->name,
					 r->method, target);
			(*refused)++;
		}
		free(before);
		free(after);
		free(body);
	}
}

/* Criterion runs each token on a fresh server: one test per token. */
#define MATRIX(i)                                                                     \
	Test(auth, matrix_##i)                                                        \
	{                                                                             \
		int a = 0, r = 0;                                                     \
		if ((i) < NTOKS)                                                      \
			run_token(&toks[i], &a, &r);                                  \
		cr_log_info("token %s: %d allowed, %d refused", (i) < NTOKS ? toks[i].name : "-", a, r); \
	}
MATRIX(0) MATRIX(1) MATRIX(2) MATRIX(3) MATRIX(4) MATRIX(5) MATRIX(6) MATRIX(7) MATRIX(8)
MATRIX(9) MATRIX(10) MATRIX(11) MATRIX(12) MATRIX(13) MATRIX(14) MATRIX(15) MATRIX(16)
MATRIX(17) MATRIX(18) MATRIX(19)

Test(auth, matrix_covers_every_token_and_route)
{
	cr_assert_eq(NTOKS, 20, "one MATRIX(i) per token");
	size_t n;
	const struct route *routes = api_routes(&n);
	for (size_t k = 0; k < n; k++) {
		int seen = 0;
		for (size_t i = 0; i < NROWS && !seen; i++) {
			if (strcmp(rows[i].method, routes[k].method))
				continue;
			/* the pattern against the row's path, segment by segment */
			const char *p = routes[k].pattern, *t = rows[i].target;
			int ok = 1;
			while (ok && *p && *t) {
				if (*p == '{') {
					p = strchr(p, '}') + 1;
					while (*t && *t != '/' && *t != '?')
						t++;
				} else {
					ok = *p++ == *t++;
				}
			}
			seen = ok && !*p && (!*t || *t == '?');
		}
		cr_expect(seen, "route %s %s is not in the matrix", routes[k].method, routes[k].pattern);
	}
	cr_log_info("matrix: %zu routes, %zu requests x %zu tokens = %zu cells", n, NROWS, NTOKS, NROWS * NTOKS);
}

/* ---- audit ---- */

static json_t *audit_rows(void)
{
	cr_assert_eq(shell_call(&sh, NULL, "GET", "/v1/audit", NULL, 0, &ans), 200, "%s", ans.text);
	return json_incref(json_object_get(ans.json, "audit"));
}

static const json_t *last_row(const json_t *rows_)
{
	return json_array_get(rows_, json_array_size(rows_) - 1);
}

Test(auth, every_change_and_refusal_is_audited_with_who_what_and_where)
{
	char secret[AUTH_SECRET_LEN + 1];
	shell_token(&sh, "ci", "[{\"actions\": [\"deploy\", \"read\"], \"services\": [\"pay\"]}]", secret);
	const char *ok = "{\"service\": \"pay\", \"version\": \"v3\", \"env\": \"staging\", \"force\": true}";
	cr_assert_eq(shell_call(&sh, secret, "POST", "/v1/deployments", ok, strlen(ok), &ans), 201, "%s", ans.text);
	json_t *a = audit_rows();
	const json_t *r = last_row(a);
	cr_expect_str_eq(json_string_value(json_object_get(r, "token")), "ci");
	cr_expect_str_eq(json_string_value(json_object_get(r, "action")), "deploy");
	cr_expect_str_eq(json_string_value(json_object_get(r, "request")), "POST /v1/deployments");
	cr_expect_str_eq(json_string_value(json_object_get(r, "service")), "pay");
	cr_expect_str_eq(json_string_value(json_object_get(r, "env")), "staging");
	cr_expect_str_eq(json_string_value(json_object_get(r, "result")), "ok");
	cr_expect_str_eq(json_string_value(json_object_get(r, "client")), "127.0.0.1:1");
	cr_expect_gt(json_integer_value(json_object_get(r, "at")), 0);
	size_t n = json_array_size(a);
	json_decref(a);

	/* a refusal: audited with the reason; reads are not audited */
	const char *web = "{\"service\": \"web\", \"version\": \"v3\", \"force\": true}";
	cr_assert_eq(shell_call(&sh, secret, "POST", "/v1/deployments", web, strlen(web), &ans), 403, "%s", ans.text);
	cr_assert_eq(shell_call(&sh, secret, "GET", "/v1/status", NULL, 0, &ans), 200, "%s", ans.text);
	a = audit_rows();
	cr_expect_eq(json_array_size(a), n + 1, "one more row: the refusal (the reads are not audited)");
	r = last_row(a);
	cr_expect_str_eq(json_string_value(json_object_get(r, "service")), "web");
	cr_expect(strstr(json_string_value(json_object_get(r, "result")), "403 token 'ci' may not deploy web"),
		  "%s", json_string_value(json_object_get(r, "result")));
	json_decref(a);

	/* unauthenticated calls are not audited (they could fill the log), only logged */
	cr_assert_eq(shell_call(&sh, SHELL_NO_TOKEN, "POST", "/v1/deployments", web, strlen(web), &ans), 401);
	a = audit_rows();
	cr_expect_eq(json_array_size(a), n + 1);
	json_decref(a);

	/* the filter by service */
	cr_assert_eq(shell_call(&sh, NULL, "GET", "/v1/audit?service=web", NULL, 0, &ans), 200, "%s", ans.text);
	cr_expect_eq(json_array_size(json_object_get(ans.json, "audit")), 4, "three releases of web and the refusal: %s", ans.text);
	cr_assert_eq(shell_call(&sh, NULL, "GET", "/v1/audit?since=abc", NULL, 0, &ans), 400);
	cr_expect(strstr(ans.text, "'since'"), "%s", ans.text);
}

/* The record is written in the transaction of the change: when it cannot be written, the
 * change does not happen either. */
Test(auth, no_change_without_its_audit_record)
{
	char *before = state_of();
	faulty_store_fail(sh.fault, "add_audit");
	const char *b = "{\"service\": \"pay\", \"version\": \"v3\", \"env\": \"staging\", \"force\": true}";
	cr_expect_eq(shell_call(&sh, NULL, "POST", "/v1/deployments", b, strlen(b), &ans), 500, "%s", ans.text);
	cr_expect_eq(shell_call(&sh, NULL, "POST", "/v1/services/pay/rollback", "{\"to\": \"v1\"}", 12, &ans), 500,
		     "%s", ans.text);
	faulty_store_fail(sh.fault, NULL);
	char *after = state_of();
	cr_expect_str_eq(before, after, "nothing changed without its audit record");
	free(before);
	free(after);
}

/* Nothing in the API edits or deletes the log: the only route under /v1/audit reads. */
Test(auth, the_audit_log_has_no_route_that_changes_it)
{
	size_t n;
	const struct route *r = api_routes(&n);
	for (size_t i = 0; i < n; i++)
		if (!strncmp(r[i].pattern, "/v1/audit", 9))
			cr_expect_str_eq(r[i].method, "GET", "%s %s", r[i].method, r[i].pattern);
	cr_expect_eq(shell_call(&sh, NULL, "DELETE", "/v1/audit", NULL, 0, &ans), 405);
}

/* The secret is shown once, in the creation's answer; never in lists, the audit log, errors. */
Test(auth, the_secret_appears_only_in_the_creation_answer)
{
	char secret[AUTH_SECRET_LEN + 1];
	shell_token(&sh, "ci", "[{\"actions\": [\"read\"]}]", secret);
	const char *reads[] = {"/v1/tokens", "/v1/audit", "/v1/status"};
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(shell_call(&sh, NULL, "GET", reads[i], NULL, 0, &ans), 200);
		cr_expect_null(strstr(ans.text, secret), "%s shows the secret", reads[i]);
		cr_expect_null(strstr(ans.text, sh.admin), "%s shows the admin secret", reads[i]);
	}
	/* a refused call with the token: the error does not quote it */
	cr_assert_eq(shell_call(&sh, secret, "POST", "/v1/shutdown", "{}", 2, &ans), 403);
	cr_expect_null(strstr(ans.text, secret));
	char bad[AUTH_SECRET_LEN + 1];
	snprintf(bad, sizeof(bad), "%s", secret);
	bad[10] = bad[10] == 'A' ? 'B' : 'A';
	cr_assert_eq(shell_call(&sh, bad, "GET", "/v1/status", NULL, 0, &ans), 401);
	cr_expect_null(strstr(ans.text, bad));
	cr_expect(strstr(ans.headers, "WWW-Authenticate: Bearer"), "%s", ans.headers);
	/* the store keeps its hash only */
	char cmd[PATH_MAX + 128];
	snprintf(cmd, sizeof(cmd), "grep -q -a '%s' %s/sluice.db* 2>/dev/null", secret, sh.dir);
	cr_expect_neq(system(cmd), 0, "the secret is in the store's files");
}

/* Token bodies are typed strictly; names stay taken after a revocation. */
Test(auth, token_bodies_and_names)
{
	static const struct {
		const char *body, *says;
	} bad[] = {
		{"{\"name\": \"x\"}", "scopes"},
		{"{\"name\": \"x\", \"scopes\": []}", "scopes"},
		{"{\"name\": \"x\", \"scopes\": [{\"actions\": [\"root\"]}]}", "scopes[0].actions[0]"},
		{"{\"name\": \"x\", \"scopes\": [{\"actions\": [\"read\"], \"services\": [\"Pay\"]}]}",
		 "scopes[0].services[0]"},
		{"{\"name\": \"x\", \"scopes\": [{\"actions\": [\"read\"], \"envs\": [\"../x\"]}]}", "scopes[0].envs[0]"},
		{"{\"name\": \"x\", \"scopes\": [{\"actions\": [\"read\"], \"verbs\": []}]}", "verbs"},
		{"{\"name\": \"x\", \"scopes\": [{\"actions\": \"read\"}]}", "scopes[0].actions"},
		{"{\"name\": \"X y\", \"scopes\": [{\"actions\": [\"read\"]}]}", "name"},
		{"{\"name\": \"x\", \"scopes\": [{\"actions\": [\"read\"]}], \"expires_in\": \"1s\"}", "expires_in"},
		{"{\"name\": \"x\", \"scopes\": [{\"actions\": [\"read\"]}], \"expires_in\": \"soon\"}", "expires_in"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(shell_call(&sh, NULL, "POST", "/v1/tokens", bad[i].body, strlen(bad[i].body), &ans), 400,
			     "%s: %s", bad[i].body, ans.text);
		cr_expect(strstr(ans.text, bad[i].says), "%s: '%s' not in %s", bad[i].body, bad[i].says, ans.text);
	}
	const char *good = "{\"name\": \"x\", \"scopes\": [{\"actions\": [\"read\"]}], \"expires_in\": \"30d\"}";
	cr_assert_eq(shell_call(&sh, NULL, "POST", "/v1/tokens", good, strlen(good), &ans), 201, "%s", ans.text);
	int64_t exp = json_integer_value(json_object_get(ans.json, "expires_at"));
	cr_expect(exp > store_now_ms() + 29LL * 86400000 && exp < store_now_ms() + 31LL * 86400000);
	cr_assert_eq(shell_call(&sh, NULL, "POST", "/v1/tokens/x/revoke", "{}", 2, &ans), 200, "%s", ans.text);
	cr_expect_eq(shell_call(&sh, NULL, "POST", "/v1/tokens", good, strlen(good), &ans), 409, "%s", ans.text);
	cr_expect_eq(shell_call(&sh, NULL, "POST", "/v1/tokens/nobody/revoke", "{}", 2, &ans), 404, "%s", ans.text);
}

/* A token limited to some services sees only those in lists. */
Test(auth, lists_show_only_what_the_token_may_read)
{
	char secret[AUTH_SECRET_LEN + 1];
	shell_token(&sh, "web-reader", "[{\"actions\": [\"read\"], \"services\": [\"web\"]}]", secret);
	cr_assert_eq(shell_call(&sh, secret, "GET", "/v1/services", NULL, 0, &ans), 200);
	json_t *svcs = json_object_get(ans.json, "services");
	cr_expect_eq(json_array_size(svcs), 1, "%s", ans.text);
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(svcs, 0), "name")), "web");
	cr_assert_eq(shell_call(&sh, secret, "GET", "/v1/status", NULL, 0, &ans), 200);
	cr_expect_null(strstr(ans.text, "\"pay\""), "%s", ans.text);
	cr_assert_eq(shell_call(&sh, secret, "GET", "/v1/deployments", NULL, 0, &ans), 200);
	cr_expect_eq(json_array_size(json_object_get(ans.json, "deployments")), 0, "pay's deployment is hidden: %s",
		     ans.text);
	cr_expect_eq(shell_call(&sh, secret, "GET", "/v1/deployments/1", NULL, 0, &ans), 403, "%s", ans.text);
}
