/*
 * tokens: the API's bearer tokens in the store: finding the token a request presents, and the
 * admin token of the server's first start. What a token may do is server/auth.h's.
 */
#ifndef SLUICE_TOKENS_H
#define SLUICE_TOKENS_H

#include <stdint.h>

#include "server/auth.h"
#include "store/store.h"

/* Outcomes of tokens_authenticate besides 0 (ok) and -1 (the store failed: e says why). */
#define TOKENS_MISSING 1  /* no Authorization header */
#define TOKENS_INVALID 2  /* not a bearer token of ours, unknown, revoked or expired */

/* What tokens_authenticate remembers of the tokens it found, so that the store is asked only
 * once per token and per store change (a revocation is a change: it takes effect at once).
 * A token the server issued (AUTH_SECRET_LEN bytes) is also remembered by its secret, compared
 * in constant time, so that a known token costs no SHA-256 per request: the secrets stay in
 * this process's memory only (never written, wiped on release). Zero it before the first use
 * (all zeros is empty); tokens_cache_release frees it. */
#define TOKENS_CACHE 64
struct tokens_cache {
	uint64_t changes; /* store_changes() the entries were read at */
	struct tokens_cached {
		char hash[AUTH_HASH_LEN + 1];
		unsigned char secret[AUTH_SECRET_LEN]; /* valid when has_secret */
		int has_secret;
		char name[64];
		json_t *scopes; /* NULL: an empty entry */
		int64_t expires_at; /* 0: never */
		int valid;  /* 0: known to be revoked (or unknown: remembered too) */
	} e[TOKENS_CACHE];
	unsigned next;
};
void tokens_cache_release(struct tokens_cache *c);

/* Finds the token an "Authorization: Bearer SECRET" value names and fills *p. `now` is the
 * wall clock in ms. cache may be NULL. Never copies the secret anywhere but into the cache
 * (not into e, not into a log). */
int tokens_authenticate(store *s, struct tokens_cache *cache, const char *authorization /* may be NULL */,
			int64_t now, struct auth_principal *p /* OUT */, struct err *e);

/*
 * The server's first start: when the store holds no token at all, creates "admin" (scope
 * admin), writes its secret to `path` (mode 0600, replaced atomically) and returns 1; 0 when
 * tokens exist (nothing is touched); -1 with e on failure. The file is written before the
 * token is stored, so a crash between the two leaves no token that nobody holds.
 */
int tokens_bootstrap(store *s, const char *path, struct err *e);

#endif
