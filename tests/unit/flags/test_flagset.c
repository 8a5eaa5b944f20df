/*
 * Flag sets (src/flags/flagset.c): structure errors with their place, warnings for what only
 * fails some evaluations, and the reasons of flagd's evaluations.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "flags/flagset.h"

static const char *const good =
	"$schema: https://flagd.dev/schema/v0/flags.json\n"
	"metadata: {team: web}\n"
	"$evaluators:\n"
	"  isStaff: {ends_with: [{var: email}, \"@example.com\"]}\n"
	"flags:\n"
	"  new-checkout:\n"
	"    state: ENABLED\n"
	"    variants: {on: true, off: false}\n"
	"    defaultVariant: off\n"
	"    targeting:\n"
	"      if: [{$ref: isStaff}, \"on\", {fractional: [[\"on\", 10], [\"off\", 90]]}]\n"
	"    metadata: {owner: checkout}\n"
	"  banner:\n"
	"    state: ENABLED\n"
	"    variants: {plain: \"hello\", loud: \"HELLO\"}\n"
	"    defaultVariant: plain\n"
	"  retired:\n"
	"    state: DISABLED\n"
	"    variants: {a: 1, b: 2}\n"
	"    defaultVariant: a\n"
	"  nodefault:\n"
	"    state: ENABLED\n"
	"    variants: {a: {x: 1}}\n"
	"    defaultVariant: null\n"
	"  broken:\n"
	"    state: ENABLED\n"
	"    variants: {a: 1}\n"
	"    defaultVariant: a\n"
	"    targeting: {if: [{frobnicate: []}, \"a\", null]}\n"
	"  dangling:\n"
	"    state: ENABLED\n"
	"    variants: {a: 1}\n"
	"    defaultVariant: zz\n"
	"  boolish:\n"
	"    state: ENABLED\n"
	"    variants: {\"true\": 1, \"false\": 0}\n"
	"    defaultVariant: \"false\"\n"
	"    targeting: {\"==\": [{var: plan}, \"pro\"]}\n";

static flagset *parse(const char *text)
{
	flagset *fs = NULL;
	struct err e = {""};
	cr_assert_eq(flagset_parse("flags.yaml", text, strlen(text), &fs, &e), 0, "%s", e.msg);
	return fs;
}

static void eval(const flagset *fs, const char *key, const char *ctx, struct flag_result *r)
{
	json_t *c = ctx ? json_loads(ctx, 0, NULL) : NULL;
	struct logic_arena a;
	logic_arena_init(&a, NULL, 0);
	flagset_eval(fs, key, c, 1700000000, &a, r);
	logic_arena_release(&a);
	json_decref(c);
}

static char *value_text(const struct flag_result *r)
{
	return r->value ? json_dumps(r->value, JSON_ENCODE_ANY | JSON_COMPACT) : strdup("(none)");
}

Test(flagset, reasons)
{
	flagset *fs = parse(good);
	struct flag_result r;
	static const struct {
		const char *key, *ctx, *value, *variant, *reason, *code;
	} rows[] = {
		{"new-checkout", "{\"targetingKey\": \"u1\", \"email\": \"ann@example.com\"}", "true", "on", "TARGETING_MATCH", NULL},
		{"banner", "{}", "\"hello\"", "plain", "STATIC", NULL},
		{"retired", "{}", "(none)", NULL, "DISABLED", NULL},
		{"nodefault", "{}", "(none)", NULL, "STATIC", NULL},
		{"broken", "{}", "(none)", NULL, "ERROR", "GENERAL"},
		{"dangling", "{}", "(none)", NULL, "ERROR", "GENERAL"},
		{"boolish", "{\"plan\": \"pro\"}", "1", "true", "TARGETING_MATCH", NULL},
		{"boolish", "{\"plan\": \"free\"}", "0", "false", "TARGETING_MATCH", NULL},
		{"nosuch", "{}", "(none)", NULL, "ERROR", "FLAG_NOT_FOUND"},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		eval(fs, rows[i].key, rows[i].ctx, &r);
		char *v = value_text(&r);
		cr_expect_str_eq(v, rows[i].value, "%s: value %s", rows[i].key, v);
		cr_expect_str_eq(r.reason, rows[i].reason, "%s: reason %s (%s)", rows[i].key, r.reason, r.error);
		if (rows[i].variant)
			cr_expect_str_eq(r.variant ? r.variant : "(null)", rows[i].variant, "%s", rows[i].key);
		else
			cr_expect_null(r.variant, "%s", rows[i].key);
		if (rows[i].code)
			cr_expect_str_eq(r.error_code ? r.error_code : "(null)", rows[i].code, "%s", rows[i].key);
		else
			cr_expect_null(r.error_code, "%s: %s", rows[i].key, r.error);
		free(v);
	}
	/* fractional inside targeting is a TARGETING_MATCH too; metadata overlays the set's */
	eval(fs, "new-checkout", "{\"targetingKey\": \"u1\", \"email\": \"bob@other.org\"}", &r);
	cr_expect_str_eq(r.reason, "TARGETING_MATCH");
	cr_expect_str_eq(json_string_value(json_object_get(r.metadata, "team")), "web");
	cr_expect_str_eq(json_string_value(json_object_get(r.metadata, "owner")), "checkout");
	/* no targeting key for the split: TARGETING_KEY_MISSING, no value */
	eval(fs, "new-checkout", "{\"email\": \"bob@other.org\"}", &r);
	cr_expect_str_eq(r.reason, "ERROR");
	cr_expect_str_eq(r.error_code, "TARGETING_KEY_MISSING");
	cr_expect_null(r.value);
	/* ...but a rule that answers before the split needs none */
	eval(fs, "new-checkout", "{\"email\": \"ann@example.com\"}", &r);
	cr_expect_str_eq(r.reason, "TARGETING_MATCH");
	flagset_free(fs);
}

Test(flagset, warnings_for_what_fails_only_some_evaluations)
{
	flagset *fs = parse(good);
	cr_assert_eq(flagset_warning_count(fs), 2);
	cr_expect(strstr(flagset_warning(fs, 0), "flags.broken: targeting: unknown operation 'frobnicate'"), "%s",
		  flagset_warning(fs, 0));
	cr_expect(strstr(flagset_warning(fs, 1), "flags.dangling: defaultVariant 'zz' is not one of its variants"),
		  "%s", flagset_warning(fs, 1));
	cr_expect_eq(flagset_count(fs), 7);
	cr_expect_str_eq(flagset_key(fs, 0), "new-checkout");
	/* the normalized document parses again to the same */
	flagset *again = NULL;
	struct err e;
	cr_assert_eq(flagset_from_json(flagset_json(fs), "stored", &again, &e), 0, "%s", e.msg);
	cr_expect(json_equal((json_t *)flagset_json(fs), (json_t *)flagset_json(again)));
	flagset_free(again);
	flagset_free(fs);
}

Test(flagset, structure_errors_name_the_place)
{
	static const struct {
		const char *text, *says;
	} bad[] = {
		{"flags: {a: {state: ENABLED, variants: {x: 1}, defaultVariant: x}", "flags.yaml:2:1: invalid YAML"},
		{"flagz: {}\n", "flags.yaml:1:1: flagz: unknown key"},
		{"metadata: {}\n", "missing required key \"flags\""},
		{"flags:\n  a:\n    state: ON\n    variants: {x: 1}\n", "flags.yaml:3:12: flags.a.state: expected one of"},
		{"flags:\n  a:\n    state: ENABLED\n", "flags.a: missing required key \"variants\""},
		{"flags:\n  a:\n    state: ENABLED\n    variants: {}\n", "flags.a.variants: expected an object of at least one variant"},
		{"flags:\n  a:\n    state: ENABLED\n    variants: {x: 1, y: \"2\"}\n",
		 "flags.yaml:4:25: flags.a.variants.y: expected a number like variant 'x'"},
		{"flags:\n  a:\n    state: ENABLED\n    variants: {x: null}\n", "flags.a.variants.x: expected a boolean, string"},
		{"flags:\n  a:\n    state: ENABLED\n    variants: {x: 1}\n    defaultVariant: 1\n",
		 "flags.a.defaultVariant: expected a variant name or null"},
		{"flags:\n  a:\n    state: ENABLED\n    variants: {x: 1}\n    targeting: [1]\n",
		 "flags.a.targeting: expected a JsonLogic rule"},
		{"flags:\n  a:\n    state: ENABLED\n    variants: {x: 1}\n    metadata: {m: [1]}\n",
		 "flags.a.metadata.m: expected a string, a number or a boolean"},
		{"flags:\n  a:\n    state: ENABLED\n    variants: {x: 1}\n    targetting: {}\n",
		 "flags.a.targetting: unknown key (did you mean \"targeting\"?)"},
		{"flags:\n  \"a/b\":\n    state: ENABLED\n    variants: {x: 1}\n", "flags.a/b: a flag key"},
		{"flags: []\n", "flags: expected an object of flags"},
		{"{\"flags\": {\"a\": {\"state\": \"ENABLED\", \"variants\": {\"x\": true}}}, \"flags\": {}}", "duplicate"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		flagset *fs = NULL;
		struct err e = {""};
		cr_expect_eq(flagset_parse("flags.yaml", bad[i].text, strlen(bad[i].text), &fs, &e), -1, "%s", bad[i].text);
		cr_expect_null(fs);
		cr_expect(strstr(e.msg, bad[i].says), "%s\n  got: %s\n  want: %s", bad[i].text, e.msg, bad[i].says);
	}
}

Test(flagset, json_input_too)
{
	const char *j = "{\"flags\": {\"f\": {\"state\": \"ENABLED\", \"variants\": {\"on\": true, \"off\": false},"
			" \"defaultVariant\": \"on\", \"targeting\": {}}}}";
	flagset *fs = parse(j);
	struct flag_result r;
	eval(fs, "f", NULL, &r);
	cr_expect_str_eq(r.reason, "STATIC", "empty targeting is no targeting");
	cr_expect(json_is_true(r.value));
	cr_expect_eq(r.type, FLAG_BOOL);
	flagset_free(fs);
}

/* The example set the demo applies parses without a warning. */
Test(flagset, the_example_set_is_clean)
{
	FILE *f = fopen(SRC_DIR "/examples/flags/production.yaml", "r");
	cr_assert(f);
	char text[8192];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	flagset *fs = NULL;
	struct err e;
	cr_assert_eq(flagset_parse("production.yaml", text, n, &fs, &e), 0, "%s", e.msg);
	cr_expect_eq(flagset_warning_count(fs), 0, "%s", flagset_warning(fs, 0));
	flagset_free(fs);
}
