/* secret: the files that hold the server's tokens (util/secret.h). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/secret.h"

static char dir[64], path[128];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/sluice-secret-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/token", dir);
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(secret, .init = setup, .fini = teardown, .timeout = 30);

static void put(const char *content, mode_t mode)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(content, f);
	fclose(f);
	cr_assert_eq(chmod(path, mode), 0);
}

Test(secret, written_owner_only_and_read_back)
{
	struct err e = {""};
	char out[SECRET_MAX + 1];
	cr_assert_eq(secret_write(path, "abc-123", &e), 0, "%s", e.msg);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(secret_read(path, out, sizeof(out), &e), 0, "%s", e.msg);
	cr_expect_str_eq(out, "abc-123");
}

Test(secret, a_missing_file_is_1_not_an_error)
{
	struct err e = {""};
	char out[SECRET_MAX + 1] = "x";
	cr_expect_eq(secret_read(path, out, sizeof(out), &e), 1);
	cr_expect_str_eq(out, "");
}

Test(secret, what_is_refused)
{
	static const struct {
		const char *content;
		mode_t mode;
		const char *says;
	} rows[] = {
		{"tok\n", 0644, "other users"},
		{"tok\n", 0620, "other users"},
		{"\n", 0600, "empty"},
		{"  \t\n", 0600, "empty"},
		{"to k\n", 0600, "blank or control"},
		{"to\001k\n", 0600, "blank or control"},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		put(rows[i].content, rows[i].mode);
		struct err e = {""};
		char out[SECRET_MAX + 1];
		cr_expect_eq(secret_read(path, out, sizeof(out), &e), -1, "row %zu", i);
		cr_expect(strstr(e.msg, rows[i].says), "row %zu: %s", i, e.msg);
	}
	char big[SECRET_MAX + 8];
	memset(big, 'a', sizeof(big) - 2);
	big[sizeof(big) - 2] = '\n';
	big[sizeof(big) - 1] = 0;
	put(big, 0600);
	struct err e = {""};
	char out[SECRET_MAX + 1];
	cr_expect_eq(secret_read(path, out, sizeof(out), &e), -1);
	cr_expect(strstr(e.msg, "longer"), "%s", e.msg);
	cr_expect_eq(secret_write(path, "", &e), -1);
}

Test(secret, blanks_around_the_line_and_later_lines_are_ignored)
{
	put("  tok-1 \r\nsecond line\n", 0600);
	struct err e = {""};
	char out[SECRET_MAX + 1];
	cr_assert_eq(secret_read(path, out, sizeof(out), &e), 0, "%s", e.msg);
	cr_expect_str_eq(out, "tok-1");
}

Test(secret, equal_compares_whole_strings)
{
	cr_expect(secret_equal("abc", 3, "abc"));
	cr_expect_not(secret_equal("abd", 3, "abc"));
	cr_expect_not(secret_equal("ab", 2, "abc"));
	cr_expect_not(secret_equal("abcd", 4, "abc"));
	cr_expect_not(secret_equal("", 0, "abc"));
}
