/*
 * JsonLogic (src/flags/logic.c): one row per rule, data and expected answer, written from
 * JsonLogic's reference semantics and flagd's documentation of its operations.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "flags/logic.h"
#include "flags/murmur3.h"

static const struct row {
	const char *rule, *data, *want; /* want: the JSON of the answer, or "ERROR" */
} rows[] = {
	/* literals and arrays of rules */
	{"1", "{}", "1"},
	{"\"a\"", "{}", "\"a\""},
	{"[1, {\"var\": \"a\"}]", "{\"a\": 2}", "[1, 2]"},
	{"{\"a\": 1, \"b\": 2}", "{}", "{\"a\": 1, \"b\": 2}"},
	/* var */
	{"{\"var\": \"a\"}", "{\"a\": 1}", "1"},
	{"{\"var\": [\"a\"]}", "{\"a\": 1}", "1"},
	{"{\"var\": \"a.b.c\"}", "{\"a\": {\"b\": {\"c\": \"x\"}}}", "\"x\""},
	{"{\"var\": \"a.1\"}", "{\"a\": [10, 20]}", "20"},
	{"{\"var\": 1}", "[\"zero\", \"one\"]", "\"one\""},
	{"{\"var\": [\"z\", 26]}", "{\"a\": 1}", "26"},
	{"{\"var\": [\"a.b\", \"d\"]}", "{\"a\": null}", "\"d\""},
	{"{\"var\": [\"a\", \"d\"]}", "{\"a\": null}", "null"},
	{"{\"var\": \"\"}", "{\"a\": 1}", "{\"a\": 1}"},
	{"{\"var\": \"missing\"}", "{}", "null"},
	{"{\"var\": \"$flagd.flagKey\"}", "{}", "\"my-flag\""},
	{"{\"var\": \"$flagd.timestamp\"}", "{}", "1700000000"},
	/* missing, missing_some */
	{"{\"missing\": [\"a\", \"b\"]}", "{\"a\": 1}", "[\"b\"]"},
	{"{\"missing\": [\"a\", \"b\"]}", "{\"a\": \"\", \"b\": 0}", "[\"a\"]"},
	{"{\"missing_some\": [1, [\"a\", \"b\", \"c\"]]}", "{\"a\": 1}", "[]"},
	{"{\"missing_some\": [2, [\"a\", \"b\", \"c\"]]}", "{\"a\": 1}", "[\"b\", \"c\"]"},
	/* if, truthiness */
	{"{\"if\": [true, \"yes\", \"no\"]}", "{}", "\"yes\""},
	{"{\"if\": [[], \"yes\", \"no\"]}", "{}", "\"no\""},
	{"{\"if\": [\"0\", \"yes\", \"no\"]}", "{}", "\"yes\""},
	{"{\"if\": [0, \"yes\", \"no\"]}", "{}", "\"no\""},
	{"{\"if\": [false, 1, false, 2, 3]}", "{}", "3"},
	{"{\"if\": [false, 1, true, 2, 3]}", "{}", "2"},
	{"{\"if\": [false, 1]}", "{}", "null"},
	{"{\"?:\": [true, 1, 2]}", "{}", "1"},
	{"{\"!\": [[]]}", "{}", "true"},
	{"{\"!\": \"\"}", "{}", "true"},
	{"{\"!!\": [\"0\"]}", "{}", "true"},
	{"{\"!!\": [{}]}", "{}", "true"},
	/* and/or answer values, lazily */
	{"{\"or\": [0, \"\", \"a\", {\"unknown\": 1}]}", "{}", "\"a\""},
	{"{\"and\": [1, \"\", {\"unknown\": 1}]}", "{}", "\"\""},
	{"{\"and\": [1, 2]}", "{}", "2"},
	{"{\"or\": [0, false]}", "{}", "false"},
	/* equality, loose and strict */
	{"{\"==\": [1, \"1\"]}", "{}", "true"},
	{"{\"==\": [0, false]}", "{}", "true"},
	{"{\"==\": [null, 0]}", "{}", "false"},
	{"{\"==\": [null, null]}", "{}", "true"},
	{"{\"==\": [\"\", 0]}", "{}", "true"},
	{"{\"==\": [[1], 1]}", "{}", "true"},
	{"{\"==\": [\"abc\", \"abc\"]}", "{}", "true"},
	{"{\"===\": [1, \"1\"]}", "{}", "false"},
	{"{\"===\": [1, 1.0]}", "{}", "true"},
	{"{\"!=\": [1, \"2\"]}", "{}", "true"},
	{"{\"!==\": [1, \"1\"]}", "{}", "true"},
	/* comparisons: strings as strings, else numbers */
	{"{\"<\": [1, 2]}", "{}", "true"},
	{"{\"<\": [\"10\", \"9\"]}", "{}", "true"},
	{"{\"<\": [\"10\", 9]}", "{}", "false"},
	{"{\"<\": [1, 2, 3]}", "{}", "true"},
	{"{\"<\": [1, 1, 3]}", "{}", "false"},
	{"{\"<=\": [1, 1, 3]}", "{}", "true"},
	{"{\">\": [\"b\", \"a\"]}", "{}", "true"},
	{"{\">=\": [null, 0]}", "{}", "true"},
	{"{\">\": [\"abc\", 1]}", "{}", "false"},
	{"{\"<\": [\"abc\", 1]}", "{}", "false"},
	/* arithmetic */
	{"{\"+\": [1, \"2\", 3.5]}", "{}", "6.5"},
	{"{\"+\": [\"3px\"]}", "{}", "3"},
	{"{\"-\": [5]}", "{}", "-5"},
	{"{\"-\": [5, \"2\"]}", "{}", "3"},
	{"{\"*\": [2, 3, 4]}", "{}", "24"},
	{"{\"/\": [7, 2]}", "{}", "3.5"},
	{"{\"%\": [7, 3]}", "{}", "1"},
	{"{\"/\": [1, 0]}", "{}", "null"},
	{"{\"max\": [1, 3, 2]}", "{}", "3"},
	{"{\"min\": [1, \"0\", 2]}", "{}", "0"},
	/* in, cat, substr, merge */
	{"{\"in\": [\"Spring\", \"Springfield\"]}", "{}", "true"},
	{"{\"in\": [\"x\", [\"a\", \"x\"]]}", "{}", "true"},
	{"{\"in\": [1, [\"1\"]]}", "{}", "false"},
	{"{\"in\": [\"a\", 5]}", "{}", "false"},
	{"{\"in\": [{\"var\": \"email\"}, [\"a@b.c\", \"d@e.f\"]]}", "{\"email\": \"d@e.f\"}", "true"},
	{"{\"cat\": [\"I love\", \" pie\", 1, 2.5, true, null, [1, 2]]}", "{}", "\"I love pie12.5true1,2\""},
	{"{\"substr\": [\"jsonlogic\", 4]}", "{}", "\"logic\""},
	{"{\"substr\": [\"jsonlogic\", -5]}", "{}", "\"logic\""},
	{"{\"substr\": [\"jsonlogic\", 1, 3]}", "{}", "\"son\""},
	{"{\"substr\": [\"jsonlogic\", 4, -2]}", "{}", "\"log\""},
	{"{\"merge\": [[1, 2], 3, [[4]]]}", "{}", "[1, 2, 3, [4]]"},
	/* iteration */
	{"{\"map\": [[1, 2, 3], {\"*\": [{\"var\": \"\"}, 2]}]}", "{}", "[2, 4, 6]"},
	{"{\"filter\": [{\"var\": \"xs\"}, {\">\": [{\"var\": \"\"}, 1]}]}", "{\"xs\": [1, 2, 3]}", "[2, 3]"},
	{"{\"reduce\": [[1, 2, 3], {\"+\": [{\"var\": \"current\"}, {\"var\": \"accumulator\"}]}, 10]}", "{}", "16"},
	{"{\"all\": [[1, 2], {\">\": [{\"var\": \"\"}, 0]}]}", "{}", "true"},
	{"{\"all\": [[], {\">\": [{\"var\": \"\"}, 0]}]}", "{}", "false"},
	{"{\"none\": [[1, 2], {\">\": [{\"var\": \"\"}, 5]}]}", "{}", "true"},
	{"{\"some\": [[1, 7], {\">\": [{\"var\": \"\"}, 5]}]}", "{}", "true"},
	/* flagd: starts_with, ends_with (null on bad input) */
	{"{\"starts_with\": [{\"var\": \"email\"}, \"admin\"]}", "{\"email\": \"admin@x.io\"}", "true"},
	{"{\"ends_with\": [{\"var\": \"email\"}, \"@x.io\"]}", "{\"email\": \"admin@x.io\"}", "true"},
	{"{\"ends_with\": [{\"var\": \"email\"}, \"@y.io\"]}", "{\"email\": \"admin@x.io\"}", "false"},
	{"{\"starts_with\": [5, \"5\"]}", "{}", "null"},
	{"{\"ends_with\": [\"a\"]}", "{}", "null"},
	/* flagd: sem_ver */
	{"{\"sem_ver\": [\"1.2.3\", \"=\", \"1.2.3\"]}", "{}", "true"},
	{"{\"sem_ver\": [\"v1.2.3\", \"=\", \"1.2.3\"]}", "{}", "true"},
	{"{\"sem_ver\": [\"1.2.3\", \">=\", \"1.2.0\"]}", "{}", "true"},
	{"{\"sem_ver\": [\"1.10.0\", \">\", \"1.9.0\"]}", "{}", "true"},
	{"{\"sem_ver\": [\"1.0.0-alpha\", \"<\", \"1.0.0\"]}", "{}", "true"},
	{"{\"sem_ver\": [\"1.0.0-alpha.1\", \"<\", \"1.0.0-alpha.beta\"]}", "{}", "true"},
	{"{\"sem_ver\": [\"1.0.0-beta.2\", \"<\", \"1.0.0-beta.11\"]}", "{}", "true"},
	{"{\"sem_ver\": [\"1.0.0-rc.1\", \">\", \"1.0.0-beta.11\"]}", "{}", "true"},
	{"{\"sem_ver\": [\"1.0.0+build.1\", \"=\", \"1.0.0\"]}", "{}", "true"},
	{"{\"sem_ver\": [\"1.5.0\", \"^\", \"1.2.0\"]}", "{}", "true"},
	{"{\"sem_ver\": [\"2.0.0\", \"^\", \"1.2.0\"]}", "{}", "false"},
	{"{\"sem_ver\": [\"1.2.9\", \"~\", \"1.2.0\"]}", "{}", "true"},
	{"{\"sem_ver\": [\"1.3.0\", \"~\", \"1.2.0\"]}", "{}", "false"},
	{"{\"sem_ver\": [\"1.2\", \"<\", \"1.2.1\"]}", "{}", "true"},
	{"{\"sem_ver\": [\"one\", \"=\", \"1.0.0\"]}", "{}", "null"},
	{"{\"sem_ver\": [\"1.0.0\", \"<>\", \"1.0.0\"]}", "{}", "null"},
	{"{\"sem_ver\": [\"01.0.0\", \"=\", \"1.0.0\"]}", "{}", "null"},
	/* unknown operations fail their evaluation, lazily */
	{"{\"frobnicate\": [1]}", "{}", "ERROR"},
	{"{\"if\": [true, 1, {\"frobnicate\": [1]}]}", "{}", "1"},
	{"{\"if\": [false, 1, {\"frobnicate\": [1]}]}", "{}", "ERROR"},
};

static char *eval_text(const char *rule_txt, const char *data_txt, char *err, size_t errlen)
{
	json_t *rule = json_loads(rule_txt, JSON_DECODE_ANY, NULL), *data = json_loads(data_txt, JSON_DECODE_ANY, NULL);
	cr_assert(rule && data, "bad test JSON: %s / %s", rule_txt, data_txt);
	logic *l = logic_compile(rule, NULL);
	cr_assert(l);
	char buf[4096];
	struct logic_arena a;
	logic_arena_init(&a, buf, sizeof(buf));
	struct logic_env env = {.context = data, .flag_key = "my-flag", .timestamp = 1700000000};
	struct logic_value v;
	struct err e = {""};
	char *out;
	if (logic_eval(l, &env, &a, &v, &e)) {
		snprintf(err, errlen, "%s", e.msg);
		out = strdup("ERROR");
	} else {
		json_t *j = logic_to_json(&v);
		out = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
		json_decref(j);
	}
	logic_arena_release(&a);
	logic_free(l);
	json_decref(rule);
	json_decref(data);
	return out;
}

Test(logic, jsonlogic_and_flagd_operations)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char err[256] = "";
		char *got = eval_text(rows[i].rule, rows[i].data, err, sizeof(err));
		char *want;
		if (!strcmp(rows[i].want, "ERROR")) {
			want = strdup("ERROR");
		} else {
			json_t *w = json_loads(rows[i].want, JSON_DECODE_ANY, NULL);
			cr_assert(w, "bad want: %s", rows[i].want);
			want = json_dumps(w, JSON_ENCODE_ANY | JSON_COMPACT | JSON_SORT_KEYS);
			json_decref(w);
		}
		cr_expect_str_eq(got, want, "%s on %s: got %s, want %s %s", rows[i].rule, rows[i].data, got, want, err);
		free(got);
		free(want);
	}
}

Test(logic, unknown_operations_and_refs_are_warnings)
{
	json_t *evals = json_loads("{\"isAdmin\": {\"starts_with\": [{\"var\": \"email\"}, \"admin\"]},"
				   " \"loop\": {\"$ref\": \"loop\"}}", 0, NULL);
	static const struct {
		const char *rule, *warning;
	} cases[] = {
		{"{\"frobnicate\": 1}", "unknown operation 'frobnicate'"},
		{"{\"if\": [{\"$ref\": \"nothing\"}, 1, 2]}", "$ref 'nothing' names no evaluator"},
		{"{\"$ref\": \"loop\"}", "cycle"},
		{"{\"$ref\": \"isAdmin\"}", NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *r = json_loads(cases[i].rule, 0, NULL);
		logic *l = logic_compile(r, evals);
		cr_assert(l);
		const char *w = logic_warning(l);
		if (cases[i].warning)
			cr_expect(w && strstr(w, cases[i].warning), "%s: %s", cases[i].rule, w ? w : "(none)");
		else
			cr_expect_null(w, "%s: %s", cases[i].rule, w);
		logic_free(l);
		json_decref(r);
	}
	/* a $ref expands to the evaluator's rule */
	json_t *r = json_loads("{\"$ref\": \"isAdmin\"}", 0, NULL), *ctx = json_loads("{\"email\": \"admin@x\"}", 0, NULL);
	logic *l = logic_compile(r, evals);
	struct logic_arena a;
	logic_arena_init(&a, NULL, 0);
	struct logic_env env = {.context = ctx};
	struct logic_value v;
	struct err e;
	cr_assert_eq(logic_eval(l, &env, &a, &v, &e), 0, "%s", e.msg);
	cr_expect(v.t == LOGIC_BOOL && v.b);
	logic_arena_release(&a);
	logic_free(l);
	json_decref(r);
	json_decref(ctx);
	json_decref(evals);
}

/* Published MurmurHash3 x86_32 vectors. */
Test(logic, murmur3_vectors)
{
	cr_expect_eq(murmur3_32("", 0, 0), 0u);
	cr_expect_eq(murmur3_32("", 0, 1), 0x514e28b7u);
	cr_expect_eq(murmur3_32("", 0, 0xffffffffu), 0x81f16f39u);
	cr_expect_eq(murmur3_32("\0\0\0\0", 4, 0), 0x2362f9deu);
	cr_expect_eq(murmur3_32("aaaa", 4, 0x9747b28cu), 0x5a97808au);
	cr_expect_eq(murmur3_32("abc", 3, 0), 0xb3dd93fau);
	cr_expect_eq(murmur3_32("Hello, world!", 13, 1234), 0xfaf6cdb3u);
	const char *fox = "The quick brown fox jumps over the lazy dog";
	cr_expect_eq(murmur3_32(fox, strlen(fox), 0x9747b28cu), 0x2fa826cdu);
}

/* fractional: the bucket of the algorithm, computed here from the hash, and the split of
 * many keys within 1% of the weights. */
Test(logic, fractional_buckets_by_the_documented_algorithm)
{
	json_t *rule = json_loads("{\"fractional\": [[\"red\", 25], [\"blue\", 25], [\"green\", 50]]}", 0, NULL);
	logic *l = logic_compile(rule, NULL);
	int counts[3] = {0, 0, 0};
	const char *names[] = {"red", "blue", "green"};
	struct logic_arena a;
	logic_arena_init(&a, NULL, 0);
	for (int i = 0; i < 10000; i++) {
		char key[32], ctxt[64], hk[64];
		snprintf(key, sizeof(key), "user-%d", i);
		snprintf(ctxt, sizeof(ctxt), "{\"targetingKey\": \"%s\"}", key);
		json_t *ctx = json_loads(ctxt, 0, NULL);
		struct logic_env env = {.context = ctx, .flag_key = "color"};
		struct logic_value v;
		struct err e;
		cr_assert_eq(logic_eval(l, &env, &a, &v, &e), 0);
		cr_assert_eq(v.t, LOGIC_STR);
		/* the documented algorithm, by hand */
		int n = snprintf(hk, sizeof(hk), "color%s", key);
		uint64_t bucket = ((uint64_t)murmur3_32(hk, (size_t)n, 0) * 100) >> 32;
		const char *want = bucket < 25 ? "red" : bucket < 50 ? "blue" : "green";
		cr_assert(v.s.len == strlen(want) && !memcmp(v.s.p, want, v.s.len), "%s: bucket %llu", key,
			  (unsigned long long)bucket);
		for (int k = 0; k < 3; k++)
			counts[k] += v.s.len == strlen(names[k]) && !memcmp(v.s.p, names[k], v.s.len);
		logic_arena_reset(&a);
		json_decref(ctx);
	}
	cr_expect(counts[0] > 2400 && counts[0] < 2600, "red %d", counts[0]);
	cr_expect(counts[1] > 2400 && counts[1] < 2600, "blue %d", counts[1]);
	cr_expect(counts[2] > 4900 && counts[2] < 5100, "green %d", counts[2]);
	/* an explicit bucketing value; no targeting key: null; weight 1 by default */
	json_t *r2 = json_loads("{\"fractional\": [{\"var\": \"email\"}, [\"a\"], [\"b\"]]}", 0, NULL);
	logic *l2 = logic_compile(r2, NULL);
	json_t *ctx = json_loads("{\"email\": \"x@y\"}", 0, NULL);
	struct logic_env env = {.context = ctx, .flag_key = "f"};
	struct logic_value v;
	struct err e;
	cr_assert_eq(logic_eval(l2, &env, &a, &v, &e), 0);
	uint64_t bucket = ((uint64_t)murmur3_32("x@y", 3, 0) * 2) >> 32;
	cr_expect(v.t == LOGIC_STR && v.s.p[0] == (bucket ? 'b' : 'a'));
	json_t *none = json_object();
	env.context = none;
	cr_assert_eq(logic_eval(l, &env, &a, &v, &e), 0);
	cr_expect_eq(v.t, LOGIC_NULL, "no targeting key: null");
	json_decref(none);
	json_decref(ctx);
	logic_free(l2);
	json_decref(r2);
	logic_arena_release(&a);
	logic_free(l);
	json_decref(rule);
}
