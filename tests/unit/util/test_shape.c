/*
 * Unit tests of src/util/shape: a small table of an API-like body checked in strict mode (field
 * paths, strict types, unknown fields, defaults), the same table over a YAML doc (positions)
 * and in the stored form ("_ms" keys, every key present).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "util/shape.h"

static const char *const modes[] = {"fast", "safe", NULL};

static int even(const char *s)
{
	return strlen(s) % 2 == 0;
}

static const struct shape_field opt_fields[] = {
	{.key = "level", .type = SHAPE_INT, .def = "1", .min = 0, .max = 9},
	{.key = "ratio", .type = SHAPE_NUMBER, .def = "0.5", .dmin = 0, .dmax = 1},
	{0},
};
static const struct shape_field name_elem = {.type = SHAPE_NAME, .name = NAME_OBJECT};
static const struct shape_field str_elem = {.type = SHAPE_STRING, .coerce = 1, .empty_ok = 1};
static const struct shape_field item_fields[] = {
	{.key = "id", .type = SHAPE_NAME, .required = 1, .name = NAME_OBJECT},
	{0},
};
static const struct shape_field item_elem = {.type = SHAPE_OBJECT, .sub = item_fields};

static const struct shape_field body_fields[] = {
	{.key = "service", .type = SHAPE_NAME, .required = 1, .name = NAME_OBJECT},
	{.key = "force", .type = SHAPE_BOOL, .def = "false"},
	{.key = "mode", .type = SHAPE_ENUM, .def = "\"safe\"", .choices = modes},
	{.key = "timeout", .type = SHAPE_DURATION, .def = "1000", .min = 10, .max = 60000},
	{.key = "note", .type = SHAPE_STRING, .nullable = 1, .def = "null", .max = 8},
	{.key = "tag", .type = SHAPE_STRING, .def = "\"ab\"", .check = even,
	 .what = "a string of even length"},
	{.key = "deps", .type = SHAPE_LIST, .def = "[]", .max = 3, .elem = &name_elem, .unique = 1},
	{.key = "env", .type = SHAPE_MAP, .def = "{}", .max = 2, .name = NAME_ENV_VAR, .elem = &str_elem},
	{.key = "items", .type = SHAPE_LIST, .def = "[]", .elem = &item_elem, .unique_key = "id",
	 .item = "item"},
	{.key = "options", .type = SHAPE_OBJECT, .sub = opt_fields},
	{0},
};

static json_t *parse(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
	cr_assert(j || !strcmp(text, ""), "bad test JSON %s: %s", text, je.text);
	return j;
}

Test(shape, body_defaults_are_filled_in_table_order)
{
	json_t *in = parse("{\"options\": {\"level\": 3}, \"service\": \"web\", \"timeout\": \"2s\"}");
	json_t *out = NULL;
	struct err e = {{0}};
	cr_assert_eq(shape_check_body(in, body_fields, &out, &e), 0, "%s", e.msg);
	char *s = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(6));
	cr_expect_str_eq(s, "{\"service\":\"web\",\"force\":false,\"mode\":\"safe\",\"timeout_ms\":2000,"
			    "\"note\":null,\"tag\":\"ab\",\"deps\":[],\"env\":{},\"items\":[],"
			    "\"options\":{\"level\":3,\"ratio\":0.5}}");
	free(s);
	json_decref(out);
	json_decref(in);
}

Test(shape, body_errors_name_the_field)
{
	static const struct {
		const char *body, *want;
	} rows[] = {
		{"{\"service\": \"web\", \"force\": \"yes\"}",
		 "request body: field 'force': expected true or false, got \"yes\""},
		{"{\"service\": \"web\", \"force\": 1}", "request body: field 'force': expected true or false, got 1"},
		{"{\"service\": \"web\", \"forse\": true}",
		 "request body: field 'forse': unknown field (did you mean \"force\"?)"},
		{"{\"service\": \"web\", \"colour\": 1}",
		 "request body: field 'colour': unknown field, expected one of: service, force, mode, timeout, "
		 "note, tag, deps, env, items, options"},
		{"{}", "request body: missing required field \"service\" (expected a name of lowercase letters, "
		       "digits and '-' (1..63 characters, starting and ending with a letter or digit))"},
		{"[]", "request body: expected a JSON object, got an empty list"},
		{"{\"service\": \"Web\"}",
		 "request body: field 'service': expected a name of lowercase letters, digits and '-' (1..63 "
		 "characters, starting and ending with a letter or digit), got \"Web\""},
		{"{\"service\": \"web\", \"mode\": \"fats\"}",
		 "request body: field 'mode': expected one of fast, safe, got \"fats\" (did you mean \"fast\"?)"},
		{"{\"service\": \"web\", \"timeout\": \"5ms\"}",
		 "request body: field 'timeout': expected a duration of at least 10ms, got 5ms"},
		{"{\"service\": \"web\", \"timeout\": true}",
		 "request body: field 'timeout': expected a duration like 250ms, 2s or 1m30s (or an integer "
		 "of milliseconds), got true"},
		{"{\"service\": \"web\", \"note\": \"123456789\"}",
		 "request body: field 'note': expected a string of at most 8 bytes without NUL"},
		{"{\"service\": \"web\", \"note\": 5}", "request body: field 'note': expected a string, got 5"},
		{"{\"service\": \"web\", \"tag\": \"abc\"}",
		 "request body: field 'tag': expected a string of even length, got \"abc\""},
		{"{\"service\": \"web\", \"deps\": [\"a\", \"b\", \"a\"]}",
		 "request body: field 'deps[2]': \"a\" is listed twice"},
		{"{\"service\": \"web\", \"deps\": [\"a\", \"b\", \"c\", \"d\"]}",
		 "request body: field 'deps': at most 3 entries, got 4"},
		{"{\"service\": \"web\", \"deps\": \"a\"}", "request body: field 'deps': expected a list, got \"a\""},
		{"{\"service\": \"web\", \"env\": {\"A\": 1}}",
		 "request body: field 'env.A': expected a string, got 1"},
		{"{\"service\": \"web\", \"env\": {\"1A\": \"x\"}}",
		 "request body: field 'env.1A': expected an environment variable name (letters, digits and "
		 "'_', not starting with a digit)"},
		{"{\"service\": \"web\", \"items\": [{\"id\": \"a\"}, {\"id\": \"a\"}]}",
		 "request body: field 'items[1].id': item \"a\" is listed twice (first as items[0])"},
		{"{\"service\": \"web\", \"items\": [{}]}",
		 "request body: field 'items[0]': missing required field \"id\" (expected a name of lowercase "
		 "letters, digits and '-' (1..63 characters, starting and ending with a letter or digit))"},
		{"{\"service\": \"web\", \"options\": {\"level\": 10}}",
		 "request body: field 'options.level': expected an integer 0..9, got 10"},
		{"{\"service\": \"web\", \"options\": {\"level\": \"3\"}}",
		 "request body: field 'options.level': expected an integer 0..9, got \"3\""},
		{"{\"service\": \"web\", \"options\": {\"ratio\": 2}}",
		 "request body: field 'options.ratio': expected a number 0..1, got 2"},
		{"{\"service\": \"web\", \"options\": null}",
		 "request body: field 'options': expected a JSON object, got null (nothing)"},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		json_t *in = parse(rows[i].body), *out = (json_t *)0x1;
		struct err e = {{0}};
		cr_expect_eq(shape_check_body(in, body_fields, &out, &e), -1, "row %zu accepted", i);
		cr_expect_eq(out, (json_t *)0x1, "row %zu: *out changed", i);
		cr_expect_str_eq(e.msg, rows[i].want, "row %zu", i);
		json_decref(in);
	}
	struct err e;
	json_t *out = NULL;
	cr_expect_eq(shape_check_body(NULL, body_fields, &out, &e), -1);
	cr_expect_str_eq(e.msg, "request body: expected a JSON object, got nothing");
}

Test(shape, body_accepts_null_where_nullable)
{
	json_t *in = parse("{\"service\": \"web\", \"note\": null, \"timeout\": 250}"), *out = NULL;
	struct err e;
	cr_assert_eq(shape_check_body(in, body_fields, &out, &e), 0, "%s", e.msg);
	cr_expect(json_is_null(json_object_get(out, "note")));
	cr_expect_eq(json_integer_value(json_object_get(out, "timeout_ms")), 250);
	json_decref(out);
	json_decref(in);
}

/* The same table over YAML: positions, coercion of scalars where a field coerces them. */
Test(shape, source_errors_have_positions)
{
	static const struct {
		const char *yaml, *want;
	} rows[] = {
		{"service: web\nforce: yes\n", "b.yaml:2:8: force: expected true or false, got \"yes\""},
		{"service: web\nenv:\n  A: [1]\n", "b.yaml:3:6: env.A: expected a string, got a list"},
		{"service: web\noptions:\n  levle: 1\n", "b.yaml:3:3: options.levle: unknown key (did you mean \"level\"?)"},
		{"force: true\n", "b.yaml:1:1: missing required key \"service\" (expected a name of lowercase "
				  "letters, digits and '-' (1..63 characters, starting and ending with a letter or digit))"},
		{"service: web\ndeps: [a, a]\n", "b.yaml:2:11: deps[1]: \"a\" is listed twice"},
		{"service: web\nnote:\n", "b.yaml:2:6: note: expected a string, got null (nothing)"},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		doc *d = NULL;
		struct err e = {{0}};
		cr_assert_eq(doc_parse("b.yaml", rows[i].yaml, strlen(rows[i].yaml), &d, &e), 0, "%s", e.msg);
		struct shape_ctx c = {.d = d, .mode = SHAPE_SOURCE, .e = &e};
		json_t *out = NULL;
		const json_t *root = doc_root(d, 0);
		cr_expect_eq(shape_check_object(&c, shape_at_node(root), "", body_fields, root, &out), -1,
			     "row %zu accepted", i);
		cr_expect_str_eq(e.msg, rows[i].want, "row %zu", i);
		doc_free(d);
	}
	doc *d = NULL;
	struct err e;
	const char *y = "service: web\nenv: {PORT: 8080, DEBUG: true}\ntimeout: 1m\n";
	cr_assert_eq(doc_parse("b.yaml", y, strlen(y), &d, &e), 0);
	struct shape_ctx c = {.d = d, .mode = SHAPE_SOURCE, .e = &e};
	json_t *out = NULL;
	cr_assert_eq(shape_check_object(&c, shape_at_node(doc_root(d, 0)), "", body_fields, doc_root(d, 0), &out),
		     0, "%s", e.msg);
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(out, "env"), "PORT")), "8080");
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(out, "env"), "DEBUG")), "true");
	cr_expect_eq(json_integer_value(json_object_get(out, "timeout_ms")), 60000);
	json_decref(out);
	doc_free(d);
}

/* The stored form: keys "_ms", every key present, and the normalized output is a fixed point. */
Test(shape, stored_form_is_a_fixed_point)
{
	json_t *in = parse("{\"service\": \"web\"}"), *norm = NULL, *again = NULL;
	struct err e;
	cr_assert_eq(shape_check_body(in, body_fields, &norm, &e), 0, "%s", e.msg);
	struct shape_ctx c = {.mode = SHAPE_STORED, .label = "thing 'web'", .stored = "thing", .e = &e};
	cr_assert_eq(shape_check_object(&c, shape_at_node(norm), "", body_fields, norm, &again), 0, "%s", e.msg);
	cr_expect(json_equal(norm, again));
	json_decref(again);

	json_object_del(json_object_get(norm, "options"), "ratio");
	cr_expect_eq(shape_check_object(&c, shape_at_node(norm), "", body_fields, norm, &again), -1);
	cr_expect_str_eq(e.msg, "thing 'web': options: missing key \"ratio\" (a normalized thing has every key)");
	json_object_set_new(norm, "timeout_ms", json_string("1s"));
	cr_expect_eq(shape_check_object(&c, shape_at_node(norm), "", body_fields, norm, &again), -1);
	cr_expect_str_eq(e.msg, "thing 'web': timeout_ms: expected an integer of milliseconds, got \"1s\"");
	json_object_set_new(norm, "timeout_ms", json_integer(1000));
	json_object_set_new(json_object_get(norm, "options"), "ratio", json_real(0.5));
	json_object_set_new(norm, "timeout", json_integer(5));
	cr_expect_eq(shape_check_object(&c, shape_at_node(norm), "", body_fields, norm, &again), -1);
	cr_expect(strstr(e.msg, "thing 'web': timeout: unknown key, expected one of:") == e.msg, "%s", e.msg);
	json_decref(norm);
	json_decref(in);
}

Test(shape, durations_round_trip)
{
	static const struct {
		const char *s;
		uint64_t ms;
	} rows[] = {{"0s", 0}, {"250ms", 250}, {"2s", 2000}, {"1m30s", 90000}, {"1h2m3s4ms", 3723004}};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint64_t ms = 1;
		char buf[48];
		cr_expect_eq(shape_duration_ms(rows[i].s, &ms), 0);
		cr_expect_eq(ms, rows[i].ms);
		cr_expect_str_eq(shape_duration_fmt(rows[i].ms, buf, sizeof(buf)), rows[i].s);
	}
	uint64_t ms = 0;
	cr_expect_eq(shape_duration_ms("30d", &ms), 0);
	cr_expect_eq(ms, 30ull * 86400000);
	cr_expect_eq(shape_duration_ms("1d12h", &ms), 0);
	cr_expect_eq(ms, 36ull * 3600000);
	cr_expect_eq(shape_duration_ms("12h1d", &ms), -1, "days come first");
	cr_expect_eq(shape_duration_ms("1d1d", &ms), -1);
}
