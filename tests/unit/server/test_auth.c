/*
 * auth (src/server/auth.c): patterns, secrets and the decision, table-driven.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "server/auth.h"

Test(auth_unit, patterns)
{
	static const struct {
		const char *pat, *name;
		int match;
	} rows[] = {
		{"*", "pay", 1},         {"pay", "pay", 1},       {"pay", "pay2", 0},   {"pay*", "pay", 1},
		{"pay*", "payments", 1}, {"pay*", "apay", 0},     {"*-api", "pay-api", 1}, {"*-api", "pay-apix", 0},
		{"p*y", "py", 1},        {"p*y", "pxxy", 1},      {"p*y", "pxyz", 0},   {"a*b*c", "aXbYc", 1},
		{"a*b*c", "aXcYb", 0},   {"**", "x", 1},          {"", "", 1},          {"", "x", 0},
		{"*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		cr_expect_eq(auth_pattern_match(rows[i].pat, rows[i].name), rows[i].match, "%s ~ %s", rows[i].pat,
			     rows[i].name);
	cr_expect(auth_pattern_ok("pay-*"));
	cr_expect(auth_pattern_ok("*"));
	cr_expect_not(auth_pattern_ok(""));
	cr_expect_not(auth_pattern_ok("Pay"));
	cr_expect_not(auth_pattern_ok("pay/x"));
	cr_expect_not(auth_pattern_ok("a?"));
}

Test(auth_unit, secrets_have_one_shape_and_are_random)
{
	char s1[AUTH_SECRET_LEN + 1], s2[AUTH_SECRET_LEN + 1], h1[AUTH_HASH_LEN + 1], h2[AUTH_HASH_LEN + 1];
	struct err e;
	cr_assert_eq(auth_new_secret(s1, h1, &e), 0);
	cr_assert_eq(auth_new_secret(s2, h2, &e), 0);
	cr_expect_eq(strlen(s1), AUTH_SECRET_LEN);
	cr_expect_eq(strncmp(s1, "slc_", 4), 0);
	cr_expect_str_neq(s1, s2);
	cr_expect_str_neq(h1, h2);
	char again[AUTH_HASH_LEN + 1];
	cr_assert_eq(auth_hash(s1, strlen(s1), again), 0);
	cr_expect_str_eq(again, h1, "the hash of the secret is the stored one");
	cr_expect_eq(auth_hash(s1, strlen(s1) - 1, again), -1, "too short");
	char bad[AUTH_SECRET_LEN + 1];
	memcpy(bad, s1, sizeof(bad));
	bad[20] = '/';
	cr_expect_eq(auth_hash(bad, strlen(bad), again), -1, "not base64url");
	memcpy(bad, s1, sizeof(bad));
	bad[0] = 'x';
	cr_expect_eq(auth_hash(bad, strlen(bad), again), -1, "no prefix");
}

Test(auth_unit, decisions)
{
	json_t *scopes = json_loads("[{\"actions\": [\"deploy\", \"read\"], \"services\": [\"pay-*\"], \"envs\": [\"production\"]},"
				    " {\"actions\": [\"release\"], \"services\": [\"*\"], \"envs\": [\"*\"]}]", 0, NULL);
	struct auth_principal p;
	auth_principal_set(&p, "ci", scopes);
	json_decref(scopes);
	cr_expect_not(p.admin);
	cr_expect(auth_allows(&p, AUTH_DEPLOY, "pay-api", "production"));
	cr_expect_not(auth_allows(&p, AUTH_DEPLOY, "pay-api", "staging"));
	cr_expect_not(auth_allows(&p, AUTH_DEPLOY, "web", "production"));
	cr_expect_not(auth_allows(&p, AUTH_DEPLOY, NULL, "production"), "every service needs '*'");
	cr_expect_not(auth_allows(&p, AUTH_ROLLBACK, "pay-api", "production"), "no action implies another");
	cr_expect(auth_allows(&p, AUTH_RELEASE, NULL, NULL));
	cr_expect(auth_allows_service(&p, AUTH_READ, "pay-x"));
	cr_expect_not(auth_allows_service(&p, AUTH_READ, "web"));
	cr_expect(auth_allows_env(&p, AUTH_READ, "production"));
	cr_expect_not(auth_allows_env(&p, AUTH_READ, "staging"));
	cr_expect(auth_allows_somewhere(&p, AUTH_DEPLOY));
	cr_expect_not(auth_allows_somewhere(&p, AUTH_ADMIN));
	cr_expect(auth_allows(&p, AUTH_PUBLIC, NULL, NULL));
	auth_principal_release(&p);
	cr_expect_not(auth_allows(&p, AUTH_READ, "pay", "production"), "without a token: public only");
	cr_expect(auth_allows(&p, AUTH_PUBLIC, NULL, NULL));
	scopes = json_loads("[{\"actions\": [\"admin\"], \"services\": [\"*\"], \"envs\": [\"*\"]}]", 0, NULL);
	auth_principal_set(&p, "root", scopes);
	json_decref(scopes);
	cr_expect(p.admin);
	cr_expect(auth_allows(&p, AUTH_ROLLBACK, NULL, NULL));
	auth_principal_release(&p);
	cr_expect_eq(auth_action_parse("deploy"), AUTH_DEPLOY);
	cr_expect_eq(auth_action_parse("public"), -1);
	cr_expect_str_eq(auth_action_name(AUTH_FLAGS), "flags");
}
