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

/* Finds the token an "Authorization: Bearer SECRET" value names and fills *p. `now` is the
 * wall clock in ms. Never copies the secret anywhere (not into e either). */
int tokens_authenticate(store *s, const char *authorization /* may be NULL */, int64_t now,
			struct auth_principal *p /* OUT */, struct err *e);

/*
 * The server's first start: when the store holds no token at all, creates "admin" (scope
 * admin), writes its secret to `path` (mode 0600, replaced atomically) and returns 1; 0 when
 * tokens exist (nothing is touched); -1 with e on failure. The file is written before the
 * token is stored, so a crash between the two leaves no token that nobody holds.
 */
int tokens_bootstrap(store *s, const char *path, struct err *e);

#endif
