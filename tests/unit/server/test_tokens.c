/* tokens_authenticate with its cache: a known token is found by its secret (no hash per
 * request), and a revocation, a near-miss secret or an expiry are still refused at once. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/tokens.h"

static store *s;
static char dir[64], bearer[AUTH_SECRET_LEN + 16];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/sluice-test-tokens-XXXXXX");
	cr_assert(mkdtemp(dir));
	char path[128];
	struct err e = {""};
	snprintf(path, sizeof(path), "%s/sluice.db", dir);
	cr_assert_eq(store_open(&s, path, &e), 0, "%s", e.msg);
	snprintf(path, sizeof(path), "%s/admin.token", dir);
	cr_assert_eq(tokens_bootstrap(s, path, &e), 1, "%s", e.msg);
	FILE *f = fopen(path, "r");
	char secret[AUTH_SECRET_LEN + 2] = "";
	cr_assert(f && fgets(secret, sizeof(secret), f));
	fclose(f);
	secret[strcspn(secret, "\n")] = '\0';
	snprintf(bearer, sizeof(bearer), "Bearer %s", secret);
}

static void teardown(void)
{
	store_close(s);
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(tokens, .init = setup, .fini = teardown);

static int auth(struct tokens_cache *c, const char *authz, int64_t now)
{
	struct auth_principal p;
	struct err e = {""};
	int rc = tokens_authenticate(s, c, authz, now, &p, &e);
	if (!rc)
		auth_principal_release(&p);
	return rc;
}

Test(tokens, cached_by_secret_and_revoked_at_once)
{
	static struct tokens_cache c;
	cr_assert_eq(auth(&c, bearer, 1), 0);
	cr_assert_eq(auth(&c, bearer, 1), 0, "the second time from the cache");
	int cached = 0;
	for (int i = 0; i < TOKENS_CACHE; i++)
		cached += c.e[i].has_secret;
	cr_assert_eq(cached, 1, "remembered by its secret");
	/* the same length, one byte off: not that token */
	char near[sizeof(bearer)];
	snprintf(near, sizeof(near), "%s", bearer);
	near[strlen(near) - 1] = near[strlen(near) - 1] == 'A' ? 'B' : 'A';
	cr_assert_eq(auth(&c, near, 1), TOKENS_INVALID);
	cr_assert_eq(auth(&c, bearer, 1), 0);
	struct err e = {""};
	cr_assert_eq(store_revoke_token(s, "admin", 2, &e), 0, "%s", e.msg);
	cr_assert_eq(auth(&c, bearer, 3), TOKENS_INVALID, "a revocation takes effect at once");
	cr_assert_eq(auth(&c, NULL, 3), TOKENS_MISSING);
	tokens_cache_release(&c);
	for (size_t i = 0; i < sizeof(c); i++)
		cr_assert_eq(((unsigned char *)&c)[i], 0, "released: the secrets are wiped");
}
