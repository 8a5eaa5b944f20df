/*
 * tokens: the API's tokens in the store (see tokens.h).
 */
#include "server/tokens.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int tokens_authenticate(store *s, const char *authz, int64_t now, struct auth_principal *p, struct err *e)
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
	char hash[AUTH_HASH_LEN + 1];
	if (auth_hash(secret, len, hash))
		return TOKENS_INVALID;
	json_t *t = NULL;
	int rc = store_get_token(s, hash, &t, e);
	if (rc == STORE_NOTFOUND)
		return TOKENS_INVALID;
	if (rc)
		return -1;
	json_t *exp = json_object_get(t, "expires_at"), *rev = json_object_get(t, "revoked_at");
	int valid = json_is_null(rev) && (json_is_null(exp) || json_integer_value(exp) > now);
	if (valid)
		auth_principal_set(p, json_string_value(json_object_get(t, "name")), json_object_get(t, "scopes"));
	json_decref(t);
	return valid ? 0 : TOKENS_INVALID;
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
	char tmp[4200];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return err_set(e, "token file path too long: %s", path);
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return err_set(e, "could not create %s: %s", tmp, strerror(errno));
	char line[AUTH_SECRET_LEN + 2];
	memcpy(line, secret, AUTH_SECRET_LEN);
	line[AUTH_SECRET_LEN] = '\n';
	int ok = write(fd, line, AUTH_SECRET_LEN + 1) == AUTH_SECRET_LEN + 1 && fsync(fd) == 0;
	ok &= close(fd) == 0;
	if (!ok || rename(tmp, path)) {
		int err = errno;
		unlink(tmp);
		return err_set(e, "could not write the admin token to %s: %s", path, strerror(err));
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
	memset(line, 0, sizeof(line));
	return rc ? -1 : 1;
}
