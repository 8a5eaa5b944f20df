/*
 * tokens: the API's tokens in the store (see tokens.h).
 */
#include "server/tokens.h"
#include "util/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

void tokens_cache_release(struct tokens_cache *c)
{
	for (int i = 0; i < TOKENS_CACHE; i++)
		json_decref(c->e[i].scopes);
	explicit_bzero(c, sizeof(*c));
}

/* Equal bytes, in a time that does not depend on where they differ. */
static int same_secret(const unsigned char *a, const char *b, size_t n)
{
	unsigned char d = 0;
	for (size_t i = 0; i < n; i++)
		d |= a[i] ^ (unsigned char)b[i];
	return d == 0;
}

/* The cached entry of a secret the server issued (its length), or NULL; the cache is emptied
 * first when the store changed. */
static struct tokens_cached *cache_find_secret(store *s, struct tokens_cache *c, const char *secret, size_t len)
{
	uint64_t now = store_changes(s);
	if (c->changes != now) {
		tokens_cache_release(c);
		c->changes = now;
	}
	if (len != AUTH_SECRET_LEN)
		return NULL;
	for (int i = 0; i < TOKENS_CACHE; i++)
		if (c->e[i].has_secret && same_secret(c->e[i].secret, secret, len))
			return &c->e[i];
	return NULL;
}

/* The cached entry of hash, after dropping everything when the store changed; NULL if none. */
static struct tokens_cached *cache_find(store *s, struct tokens_cache *c, const char *hash)
{
	uint64_t now = store_changes(s);
	if (c->changes != now) {
		tokens_cache_release(c);
		c->changes = now;
	}
	for (int i = 0; i < TOKENS_CACHE; i++)
		if (c->e[i].hash[0] && !strcmp(c->e[i].hash, hash))
			return &c->e[i];
	return NULL;
}

int tokens_authenticate(store *s, struct tokens_cache *cache, const char *authz, int64_t now,
			struct auth_principal *p, struct err *e)
{
	memset(p, 0, sizeof(*p));
	if (!authz || !*authz)
		return TOKENS_MISSING;
	if (strncasecmp(authz, "Bearer ", 7))
		return TOKENS_INVALID;
	const char *secret = authz + 7;
	while (*secret == ' ')
		secret++;
	size_t len = strlen(secret);
	while (len && secret[len - 1] == ' ')
		len--;
	struct tokens_cached *c = cache ? cache_find_secret(s, cache, secret, len) : NULL;
	if (c)
		goto found;
	char hash[AUTH_HASH_LEN + 1];
	if (auth_hash(secret, len, hash))
		return TOKENS_INVALID;
	c = cache ? cache_find(s, cache, hash) : NULL;
	if (!c) {
		json_t *t = NULL;
		int rc = store_get_token(s, hash, &t, e);
		if (rc < 0)
			return -1;
		struct tokens_cached fresh = {.valid = 0};
		snprintf(fresh.hash, sizeof(fresh.hash), "%s", hash);
		if (rc == 0) {
			json_t *exp = json_object_get(t, "expires_at");
			fresh.valid = json_is_null(json_object_get(t, "revoked_at"));
			fresh.expires_at = json_is_integer(exp) ? json_integer_value(exp) : 0;
			snprintf(fresh.name, sizeof(fresh.name), "%s", json_string_value(json_object_get(t, "name")));
			fresh.scopes = json_incref(json_object_get(t, "scopes"));
		}
		json_decref(t);
		if (cache) {
			c = &cache->e[cache->next++ % TOKENS_CACHE];
			json_decref(c->scopes);
			*c = fresh;
			if (len == AUTH_SECRET_LEN) {
				memcpy(c->secret, secret, len);
				c->has_secret = 1;
			}
		} else {
			c = &fresh;
		}
		if (!cache) {
			int ok = c->valid && (!c->expires_at || c->expires_at > now);
			if (ok)
				auth_principal_set(p, c->name, c->scopes);
			json_decref(c->scopes);
			return ok ? 0 : TOKENS_INVALID;
		}
	}
found:
	if (!c->valid || !c->scopes || (c->expires_at && c->expires_at <= now))
		return TOKENS_INVALID;
	auth_principal_set(p, c->name, c->scopes);
	return 0;
}

int tokens_bootstrap(store *s, const char *path, struct err *e)
{
	json_t *list = NULL;
	if (store_list_tokens(s, &list, e))
		return -1;
	size_t n = json_array_size(list);
	json_decref(list);
	if (n)
		return 0;
	char secret[AUTH_SECRET_LEN + 1], hash[AUTH_HASH_LEN + 1];
	if (auth_new_secret(secret, hash, e))
		return -1;
	if (secret_write(path, secret, e)) {
		memset(secret, 0, sizeof(secret));
		return -1;
	}
	json_t *scopes = json_pack("[{s:[s], s:[s], s:[s]}]", "actions", "admin", "services", "*", "envs", "*");
	struct store_token t = {.name = "admin", .hash = hash, .scopes = scopes, .created_by = ""};
	int rc = store_begin(s, e);
	if (!rc)
		rc = store_put_token(s, &t, e);
	if (!rc)
		rc = store_commit(s, e);
	else
		store_rollback(s);
	json_decref(scopes);
	memset(secret, 0, sizeof(secret));
	return rc ? -1 : 1;
}
