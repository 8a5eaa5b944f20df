/* Unit tests of src/util/name: one row per (kind, name) with the expected answer. */
#include <criterion/criterion.h>
#include <string.h>

#include "util/name.h"

static char *repeat(char c, size_t n)
{
	static char buf[4][256];
	static int k;
	char *b = buf[k++ % 4];
	memset(b, c, n);
	b[n] = '\0';
	return b;
}

Test(name, rules)
{
	const struct {
		enum name_kind kind;
		const char *s;
		int ok;
	} rows[] = {
		/* object: services, environments, regions */
		{NAME_OBJECT, "metadata", 1},
		{NAME_OBJECT, "a", 1},
		{NAME_OBJECT, "0", 1},
		{NAME_OBJECT, "us-east-1", 1},
		{NAME_OBJECT, "0abc9", 1},
		{NAME_OBJECT, "a--b", 1},
		{NAME_OBJECT, "", 0},
		{NAME_OBJECT, "-a", 0},
		{NAME_OBJECT, "a-", 0},
		{NAME_OBJECT, "-", 0},
		{NAME_OBJECT, "Meta", 0},
		{NAME_OBJECT, "a_b", 0},
		{NAME_OBJECT, "a.b", 0},
		{NAME_OBJECT, "a b", 0},
		{NAME_OBJECT, "a/b", 0},
		{NAME_OBJECT, "caf\xc3\xa9", 0},
		{NAME_OBJECT, NULL, 0},
		/* version: as CI gives it */
		{NAME_VERSION, "1.4.2", 1},
		{NAME_VERSION, "v2", 1},
		{NAME_VERSION, "1.0.0+build.7", 1},
		{NAME_VERSION, "2024-05-01_3", 1},
		{NAME_VERSION, "RC1", 1},
		{NAME_VERSION, "", 0},
		{NAME_VERSION, "1.0 beta", 0},
		{NAME_VERSION, "../x", 0},
		{NAME_VERSION, "1:2", 0},
		{NAME_VERSION, "a~b", 0},
		{NAME_VERSION, NULL, 0},
		/* environment variables */
		{NAME_ENV_VAR, "PORT", 1},
		{NAME_ENV_VAR, "_x1", 1},
		{NAME_ENV_VAR, "log_level", 1},
		{NAME_ENV_VAR, "1BAD", 0},
		{NAME_ENV_VAR, "A-B", 0},
		{NAME_ENV_VAR, "A=B", 0},
		{NAME_ENV_VAR, "", 0},
		/* metrics */
		{NAME_METRIC, "p95_latency", 1},
		{NAME_METRIC, "http.errors-5xx", 1},
		{NAME_METRIC, "Errors", 1},
		{NAME_METRIC, "a b", 0},
		{NAME_METRIC, "a/b", 0},
		{NAME_METRIC, "", 0},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		cr_expect_eq(name_ok(rows[i].kind, rows[i].s), rows[i].ok, "row %zu: kind %d '%s'", i,
			     (int)rows[i].kind, rows[i].s ? rows[i].s : "(null)");
}

Test(name, lengths)
{
	const struct {
		enum name_kind kind;
		char c;
		size_t max;
	} rows[] = {
		{NAME_OBJECT, 'a', NAME_OBJECT_MAX},
		{NAME_VERSION, '1', NAME_VERSION_MAX},
		{NAME_ENV_VAR, 'A', NAME_ENV_VAR_MAX},
		{NAME_METRIC, 'm', NAME_METRIC_MAX},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		cr_expect(name_ok(rows[i].kind, repeat(rows[i].c, rows[i].max)), "row %zu at max", i);
		cr_expect(!name_ok(rows[i].kind, repeat(rows[i].c, rows[i].max + 1)), "row %zu over", i);
	}
}

Test(name, counted_strings_refuse_nul)
{
	cr_expect(name_ok_n(NAME_OBJECT, "ab", 2));
	cr_expect(!name_ok_n(NAME_OBJECT, "ab\0c", 4));
	cr_expect(!name_ok_n(NAME_OBJECT, NULL, 0));
}

Test(name, every_kind_has_a_rule_text)
{
	for (int k = NAME_OBJECT; k <= NAME_METRIC; k++)
		cr_expect(strlen(name_rule((enum name_kind)k)) > 10);
	cr_expect(strstr(name_rule(NAME_OBJECT), "lowercase"));
}

Test(name, labels)
{
	cr_expect(name_label_ok("1.4.2"));
	cr_expect(name_label_ok("v2~baseline"));
	cr_expect_not(name_label_ok("v2~"));
	cr_expect_not(name_label_ok("~baseline"));
	cr_expect_not(name_label_ok("v2~Base"));
	cr_expect_not(name_label_ok("v2~a~b"));
	cr_expect_not(name_label_ok("v/2~baseline"));
	cr_expect_not(name_label_ok(NULL));
}
