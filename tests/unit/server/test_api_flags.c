/*
 * Feature flags through the API (src/server/api_flags.c, flags.c): applying a set, its history,
 * operators' changes, and OFREP's answers (shapes, reasons, errors, ETag and 304, 401/403
 * without a body, 429 with Retry-After).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "support/shell.h"

static struct shell sh;
static struct shell_answer ans;

static const char *const flags_yaml =
	"flags:\n"
	"  dark-mode:\n"
	"    state: ENABLED\n"
	"    variants: {on: true, off: false}\n"
	"    defaultVariant: off\n"
	"    targeting: {if: [{ends_with: [{var: email}, \"@staff.io\"]}, \"on\", null]}\n"
	"  color:\n"
	"    state: ENABLED\n"
	"    variants: {red: \"#f00\", none: \"\"}\n"
	"    defaultVariant: none\n"
	"  limit:\n"
	"    state: ENABLED\n"
	"    variants: {zero: 0, ten: 10}\n"
	"    defaultVariant: zero\n"
	"  config:\n"
	"    state: ENABLED\n"
	"    variants: {empty: {}, full: {a: 1}}\n"
	"    defaultVariant: empty\n"
	"    metadata: {owner: web}\n"
	"  retired:\n"
	"    state: DISABLED\n"
	"    variants: {a: true}\n"
	"    defaultVariant: a\n"
	"  nodefault:\n"
	"    state: ENABLED\n"
	"    variants: {a: true}\n"
	"    defaultVariant: null\n";

static const char *const env_yaml = "kind: Environment\nname: production\nregions: [{name: eu}]\n";

static int call(const char *token, const char *method, const char *target, const char *body)
{
	return shell_call(&sh, token, method, target, body, body ? strlen(body) : 0, &ans);
}

static int apply_flags(const char *yaml, int strict)
{
	json_t *b = json_pack("{s:s, s:s, s:b, s:s}", "name", "flags.yaml", "content", yaml, "strict", strict,
			      "reason", "first set");
	char *t = json_dumps(b, 0);
	int st = call(NULL, "POST", "/v1/flags/production", t);
	free(t);
	json_decref(b);
	return st;
}

static void setup(void)
{
	shell_open(&sh, &(struct shell_opts){.ofrep_rate = 0});
	json_t *b = json_pack("{s:[{s:s, s:s}]}", "files", "name", "env.yaml", "content", env_yaml);
	char *t = json_dumps(b, 0);
	cr_assert_eq(call(NULL, "POST", "/v1/apply", t), 200, "%s", ans.text);
	free(t);
	json_decref(b);
	cr_assert_eq(apply_flags(flags_yaml, 0), 200, "%s", ans.text);
}

static void teardown(void)
{
	shell_answer_free(&ans);
	shell_close(&sh);
}

TestSuite(flags_api, .init = setup, .fini = teardown);

Test(flags_api, a_bad_set_is_refused_whole_with_its_place)
{
	cr_assert_eq(apply_flags("flags:\n  x:\n    state: ON\n    variants: {a: 1}\n", 0), 400, "%s", ans.text);
	cr_expect(strstr(ans.text, "flags.yaml:3:12: flags.x.state"), "%s", ans.text);
	cr_assert_eq(call(NULL, "GET", "/v1/flags/production/history", NULL), 200);
	cr_expect_eq(json_array_size(json_object_get(ans.json, "versions")), 1, "nothing stored: %s", ans.text);
	/* warnings: accepted, reported; --strict refuses */
	const char *warned = "flags:\n  x:\n    state: ENABLED\n    variants: {a: 1}\n    defaultVariant: a\n"
			     "    targeting: {nope: []}\n";
	cr_assert_eq(apply_flags(warned, 1), 400, "%s", ans.text);
	cr_expect(strstr(ans.text, "unknown operation 'nope'") && strstr(ans.text, "--strict"), "%s", ans.text);
	cr_assert_eq(apply_flags(warned, 0), 200, "%s", ans.text);
	cr_expect(strstr(json_string_value(json_array_get(json_object_get(ans.json, "warnings"), 0)),
			 "flags.x: targeting: unknown operation 'nope'"), "%s", ans.text);
	cr_expect_eq(json_integer_value(json_object_get(ans.json, "version")), 2);
}

static json_t *ofrep(const char *key, const char *ctx, int want)
{
	char path[256], body[512];
	snprintf(path, sizeof(path), "/v1/envs/production/ofrep/v1/evaluate/flags%s%s", key ? "/" : "", key ? key : "");
	snprintf(body, sizeof(body), "{\"context\": %s}", ctx);
	int st = call(NULL, "POST", path, body);
	cr_expect_eq(st, want, "%s %s: %d %s", key ? key : "(bulk)", ctx, st, ans.text);
	return ans.json;
}

Test(flags_api, ofrep_answers_in_the_protocols_shapes)
{
	json_t *r = ofrep("dark-mode", "{\"targetingKey\": \"u\", \"email\": \"a@staff.io\"}", 200);
	cr_expect(json_is_true(json_object_get(r, "value")), "%s", ans.text);
	cr_expect_str_eq(json_string_value(json_object_get(r, "reason")), "TARGETING_MATCH");
	cr_expect_str_eq(json_string_value(json_object_get(r, "variant")), "on");
	cr_expect_str_eq(json_string_value(json_object_get(r, "key")), "dark-mode");
	r = ofrep("dark-mode", "{\"email\": \"a@else.io\"}", 200);
	cr_expect(json_is_false(json_object_get(r, "value")), "a false value is sent as such: %s", ans.text);
	cr_expect_str_eq(json_string_value(json_object_get(r, "reason")), "DEFAULT");
	/* zero values are values */
	r = ofrep("color", "{}", 200);
	cr_expect_str_eq(json_string_value(json_object_get(r, "value")), "", "%s", ans.text);
	cr_expect_str_eq(json_string_value(json_object_get(r, "reason")), "STATIC");
	r = ofrep("limit", "{}", 200);
	cr_expect(json_is_integer(json_object_get(r, "value")) && json_integer_value(json_object_get(r, "value")) == 0);
	r = ofrep("config", "{}", 200);
	cr_expect(json_is_object(json_object_get(r, "value")) && json_object_size(json_object_get(r, "value")) == 0);
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(r, "metadata"), "owner")), "web");
	/* no value: the client uses its own default */
	r = ofrep("retired", "{}", 200);
	cr_expect_null(json_object_get(r, "value"), "%s", ans.text);
	cr_expect_str_eq(json_string_value(json_object_get(r, "reason")), "DISABLED");
	r = ofrep("nodefault", "{}", 200);
	cr_expect_null(json_object_get(r, "value"), "%s", ans.text);
	/* errors */
	r = ofrep("nosuch", "{}", 404);
	cr_expect_str_eq(json_string_value(json_object_get(r, "errorCode")), "FLAG_NOT_FOUND");
	cr_expect_str_eq(json_string_value(json_object_get(r, "key")), "nosuch");
	r = ofrep("color", "[1]", 400);
	cr_expect_str_eq(json_string_value(json_object_get(r, "errorCode")), "INVALID_CONTEXT");
	r = ofrep("color", "{\"targetingKey\": 5}", 400);
	cr_expect_str_eq(json_string_value(json_object_get(r, "errorCode")), "INVALID_CONTEXT");
	cr_assert_eq(call(NULL, "POST", "/v1/envs/production/ofrep/v1/evaluate/flags/color", "{\"context\":"), 400);
	cr_expect_str_eq(json_string_value(json_object_get(ans.json, "errorCode")), "PARSE_ERROR", "%s", ans.text);
}

Test(flags_api, bulk_etag_304_and_a_kill_seen_at_once)
{
	json_t *r = ofrep(NULL, "{\"targetingKey\": \"u\"}", 200);
	cr_assert_eq(json_array_size(json_object_get(r, "flags")), 6, "%s", ans.text);
	const char *h = strstr(ans.headers, "ETag: \"");
	cr_assert(h, "%s", ans.headers);
	char tag[64];
	cr_assert_eq(sscanf(h, "ETag: %63s", tag), 1);
	/* the same question again, with the tag: 304 and no body */
	char raw[1024];
	int n = snprintf(raw, sizeof(raw),
			 "POST /v1/envs/production/ofrep/v1/evaluate/flags HTTP/1.1\r\nHost: localhost\r\n"
			 "Content-Type: application/json\r\nAuthorization: Bearer %s\r\nIf-None-Match: %s\r\n"
			 "Content-Length: 35\r\n\r\n{\"context\": {\"targetingKey\": \"u\"}}", sh.admin, tag);
	cr_assert_eq(shell_raw(&sh, raw, (size_t)n, &ans), 304, "%s", ans.text);
	cr_expect_str_eq(ans.text, "");
	/* another context: another answer, another tag */
	ofrep(NULL, "{\"targetingKey\": \"u\", \"email\": \"x@staff.io\"}", 200);
	cr_expect_null(strstr(ans.headers, tag), "a different answer has a different tag");
	/* kill dark-mode: the old tag no longer matches, and everyone gets false */
	cr_assert_eq(call(NULL, "POST", "/v1/flags/production/flag/dark-mode", "{\"action\": \"kill\", \"reason\": \"bug 42\"}"),
		     200, "%s", ans.text);
	cr_assert_eq(shell_raw(&sh, raw, (size_t)n, &ans), 200, "%s", ans.text);
	json_t *r2 = ofrep("dark-mode", "{\"email\": \"a@staff.io\"}", 200);
	cr_expect(json_is_false(json_object_get(r2, "value")), "killed: %s", ans.text);
	cr_expect_str_eq(json_string_value(json_object_get(r2, "reason")), "STATIC");
	/* the history says who and why; the audit log has it too */
	cr_assert_eq(call(NULL, "GET", "/v1/flags/production/history", NULL), 200);
	json_t *v = json_array_get(json_object_get(ans.json, "versions"), 0);
	cr_expect_str_eq(json_string_value(json_object_get(v, "why")), "bug 42");
	cr_expect_str_eq(json_string_value(json_object_get(v, "by")), "admin");
	cr_assert_eq(call(NULL, "GET", "/v1/audit", NULL), 200);
	cr_expect(strstr(ans.text, "/v1/flags/production/flag/dark-mode"), "%s", ans.text);
}

Test(flags_api, operators_changes)
{
	cr_assert_eq(call(NULL, "POST", "/v1/flags/production/flag/color", "{\"action\": \"kill\"}"), 400, "%s", ans.text);
	cr_expect(strstr(ans.text, "no off variant"), "%s", ans.text);
	cr_assert_eq(call(NULL, "POST", "/v1/flags/production/flag/color", "{\"action\": \"set\", \"variant\": \"red\"}"),
		     200, "%s", ans.text);
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(ans.json, "flag"), "defaultVariant")), "red");
	cr_assert_eq(call(NULL, "POST", "/v1/flags/production/flag/color", "{\"action\": \"set\", \"variant\": \"blue\"}"),
		     400, "%s", ans.text);
	cr_assert_eq(call(NULL, "POST", "/v1/flags/production/flag/color", "{\"action\": \"disable\"}"), 200);
	json_t *r = ofrep("color", "{}", 200);
	cr_expect_str_eq(json_string_value(json_object_get(r, "reason")), "DISABLED");
	cr_assert_eq(call(NULL, "POST", "/v1/flags/production/flag/color", "{\"action\": \"enable\"}"), 200);
	r = ofrep("color", "{}", 200);
	cr_expect_str_eq(json_string_value(json_object_get(r, "value")), "#f00");
	cr_assert_eq(call(NULL, "POST", "/v1/flags/production/flag/nosuch", "{\"action\": \"enable\"}"), 404);
	cr_assert_eq(call(NULL, "POST", "/v1/flags/production/flag/color", "{\"action\": \"explode\"}"), 400);
	cr_assert_eq(call(NULL, "GET", "/v1/flags/production/flag/color", NULL), 200);
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(ans.json, "flag"), "state")), "ENABLED");
}

Test(flags_api, ofrep_refusals_have_no_body_and_the_rate_is_kept)
{
	cr_assert_eq(call(SHELL_NO_TOKEN, "POST", "/ofrep/v1/evaluate/flags/color", "{}"), 401);
	cr_expect_str_eq(ans.text, "");
	char other[AUTH_SECRET_LEN + 1], evaluator[AUTH_SECRET_LEN + 1];
	shell_token(&sh, "reader", "[{\"actions\": [\"read\"]}]", other);
	cr_assert_eq(call(other, "POST", "/ofrep/v1/evaluate/flags/color", "{}"), 403);
	cr_expect_str_eq(ans.text, "");
	/* the environment comes from the token */
	shell_token(&sh, "web-app", "[{\"actions\": [\"evaluate\"], \"envs\": [\"production\"]}]", evaluator);
	cr_assert_eq(call(evaluator, "POST", "/ofrep/v1/evaluate/flags/color", "{}"), 200, "%s", ans.text);
	cr_assert_eq(call(evaluator, "GET", "/v1/status", NULL), 403, "an evaluation token reads nothing else");
	cr_assert_eq(call(evaluator, "GET", "/v1/flags/production", NULL), 403);
	/* evaluations are not audited */
	cr_assert_eq(call(NULL, "GET", "/v1/audit", NULL), 200);
	cr_expect_null(strstr(ans.text, "ofrep"), "%s", ans.text);
}

Test(flags_api, over_the_rate_is_429_with_retry_after)
{
	shell_answer_free(&ans);
	shell_close(&sh);
	shell_open(&sh, &(struct shell_opts){.ofrep_rate = 5});
	json_t *b = json_pack("{s:[{s:s, s:s}]}", "files", "name", "env.yaml", "content", env_yaml);
	char *t = json_dumps(b, 0);
	cr_assert_eq(call(NULL, "POST", "/v1/apply", t), 200, "%s", ans.text);
	free(t);
	json_decref(b);
	cr_assert_eq(apply_flags(flags_yaml, 0), 200, "%s", ans.text);
	int ok = 0, limited = 0;
	for (int i = 0; i < 20; i++) {
		int st = call(NULL, "POST", "/v1/envs/production/ofrep/v1/evaluate/flags/color", "{}");
		ok += st == 200;
		if (st == 429) {
			limited++;
			cr_expect(strstr(ans.headers, "Retry-After: "), "%s", ans.headers);
		}
	}
	cr_expect(ok >= 5 && ok <= 6 && limited >= 14, "%d ok, %d limited", ok, limited);
}

/* A FlagSet manifest through POST /v1/apply (sluice apply): the flag set of its environment,
 * checked with its place in the file, a new version only when it changed. */
Test(flags_api, a_flagset_through_apply)
{
	const char *yaml = "kind: Environment\nname: staging\nregions: [{name: eu}]\n---\n"
			   "kind: FlagSet\nname: staging\nflags:\n  beta:\n    state: ENABLED\n"
			   "    variants: {on: true, off: false}\n    defaultVariant: on\n";
	json_t *b = json_pack("{s:[{s:s, s:s}]}", "files", "name", "all.yaml", "content", yaml);
	char *t = json_dumps(b, 0);
	cr_assert_eq(call(NULL, "POST", "/v1/apply", t), 200, "%s", ans.text);
	json_t *applied = json_object_get(ans.json, "applied");
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(applied, 1), "kind")), "FlagSet");
	cr_expect(json_is_true(json_object_get(json_array_get(applied, 1), "changed")), "%s", ans.text);
	cr_assert_eq(call(NULL, "POST", "/v1/apply", t), 200, "%s", ans.text);
	cr_expect(json_is_false(json_object_get(json_array_get(json_object_get(ans.json, "applied"), 1), "changed")),
		  "the same set again is no new version: %s", ans.text);
	free(t);
	json_decref(b);
	cr_assert_eq(call(NULL, "POST", "/v1/envs/staging/ofrep/v1/evaluate/flags/beta", "{}"), 200, "%s", ans.text);
	cr_expect(json_is_true(json_object_get(ans.json, "value")), "%s", ans.text);
	cr_assert_eq(call(NULL, "GET", "/v1/flags/staging/history", NULL), 200);
	cr_expect_eq(json_array_size(json_object_get(ans.json, "versions")), 1, "%s", ans.text);
	/* a broken FlagSet refuses the whole file, with its place */
	const char *bad = "kind: Environment\nname: qa\nregions: [{name: eu}]\n---\n"
			  "kind: FlagSet\nname: qa\nflags:\n  beta:\n    state: MAYBE\n    variants: {on: true}\n";
	b = json_pack("{s:[{s:s, s:s}]}", "files", "name", "bad.yaml", "content", bad);
	t = json_dumps(b, 0);
	cr_assert_eq(call(NULL, "POST", "/v1/apply", t), 400, "%s", ans.text);
	cr_expect(strstr(ans.text, "bad.yaml:9:12: flags.beta.state"), "%s", ans.text);
	free(t);
	json_decref(b);
	cr_assert_eq(call(NULL, "GET", "/v1/services", NULL), 200);
	cr_expect_null(strstr(ans.text, "\"qa\""), "nothing of the file was stored: %s", ans.text);
	/* the flags action is needed in the environment */
	char ops[AUTH_SECRET_LEN + 1];
	shell_token(&sh, "applier", "[{\"actions\": [\"apply\"]}]", ops);
	b = json_pack("{s:[{s:s, s:s}]}", "files", "name", "f.yaml", "content",
		      "kind: FlagSet\nname: staging\nflags: {}\n");
	t = json_dumps(b, 0);
	cr_expect_eq(call(ops, "POST", "/v1/apply", t), 403, "%s", ans.text);
	free(t);
	json_decref(b);
}
