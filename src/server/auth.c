/*
 * auth: tokens, scopes and the authorization decision (see auth.h).
 */
#include "server/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/sha256.h"

static const char *const action_names[AUTH_NACTIONS] = {
	"public", "read", "apply", "release", "deploy", "rollback", "retry", "flags", "admin", "evaluate",
};

int auth_action_changes(enum auth_action a)
{
	return a != AUTH_PUBLIC && a != AUTH_READ && a != AUTH_EVALUATE && (unsigned)a < AUTH_NACTIONS;
}

const char *auth_action_name(enum auth_action a)
{
	return (unsigned)a < AUTH_NACTIONS ? action_names[a] : "?";
}

int auth_action_parse(const char *name)
{
	for (int i = AUTH_READ; i < AUTH_NACTIONS; i++)
		if (!strcmp(name, action_names[i]))
			return i;
	return -1;
}

/* ---- secrets ---- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void hash_of(const char *secret, size_t len, char hash[AUTH_HASH_LEN + 1])
{
	struct sha256 h;
	unsigned char d[32];
	sha256_init(&h);
	sha256_update(&h, secret, len);
	sha256_final(&h, d);
	sha256_hex(d, hash);
}

int auth_new_secret(char secret[AUTH_SECRET_LEN + 1], char hash[AUTH_HASH_LEN + 1], struct err *e)
{
	unsigned char r[33]; /* 32 random bytes; the 33rd pads the last group of three */
	size_t got = 0;
	while (got < 32) {
		ssize_t n = getrandom(r + got, 32 - got, 0);
		if (n < 0 && errno != EINTR)
			return err_set(e, "could not read random bytes: %s", strerror(errno));
		got += n > 0 ? (size_t)n : 0;
	}
	r[32] = 0;
	char *p = secret + strlen(AUTH_SECRET_PREFIX);
	memcpy(secret, AUTH_SECRET_PREFIX, strlen(AUTH_SECRET_PREFIX));
	for (size_t i = 0; i < 33; i += 3) {
		unsigned v = (unsigned)r[i] << 16 | (unsigned)r[i + 1] << 8 | r[i + 2];
		*p++ = b64url[v >> 18 & 63];
		*p++ = b64url[v >> 12 & 63];
		*p++ = b64url[v >> 6 & 63];
		*p++ = b64url[v & 63];
	}
	/* 44 characters were written for 33 bytes; the 43 that carry the 32 random bytes stay */
	secret[AUTH_SECRET_LEN] = '\0';
	hash_of(secret, AUTH_SECRET_LEN, hash);
	return 0;
}

int auth_hash(const char *secret, size_t len, char hash[AUTH_HASH_LEN + 1])
{
	size_t pre = strlen(AUTH_SECRET_PREFIX);
	if (len != AUTH_SECRET_LEN || memcmp(secret, AUTH_SECRET_PREFIX, pre))
		return -1;
	for (size_t i = pre; i < len; i++)
		if (!memchr(b64url, secret[i], 64) || !secret[i])
			return -1;
	hash_of(secret, len, hash);
	return 0;
}

/* ---- scopes ---- */

int auth_pattern_match(const char *pat, const char *name)
{
	/* Iterative glob with one backtrack point: '*' patterns never blow up. */
	const char *star = NULL, *resume = NULL;
	while (*name) {
		if (*pat == '*') {
			star = pat++;
			resume = name;
		} else if (*pat == *name) {
			pat++;
			name++;
		} else if (star) {
			pat = star + 1;
			name = ++resume;
		} else {
			return 0;
		}
	}
	while (*pat == '*')
		pat++;
	return *pat == '\0';
}

int auth_pattern_ok(const char *s)
{
	size_t n = strlen(s);
	if (!n || n >= AUTH_PATTERN_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      s[i] == '*'))
			return 0;
	return 1;
}

/* ---- the decision ---- */

static int list_has(const json_t *list, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v)
		if (!strcmp(json_string_value(v), s))
			return 1;
	return 0;
}

/* Whether a pattern list covers `name`; NULL asks for every name ("*"). */
static int covers(const json_t *patterns, const char *name)
{
	size_t i;
	json_t *v;
	json_array_foreach(patterns, i, v) {
		const char *p = json_string_value(v);
		if (name ? auth_pattern_match(p, name) : !strcmp(p, "*"))
			return 1;
	}
	return 0;
}

/* svc_any, env_any: any service (environment) will do, the name is ignored. */
static int decide(const struct auth_principal *p, enum auth_action a, const char *service,
		  const char *env, int svc_any, int env_any)
{
	if (a == AUTH_PUBLIC)
		return 1;
	if (!p->scopes || a < AUTH_PUBLIC || a >= AUTH_NACTIONS)
		return 0;
	if (p->admin)
		return 1;
	size_t i;
	json_t *sc;
	json_array_foreach(p->scopes, i, sc) {
		if (!list_has(json_object_get(sc, "actions"), auth_action_name(a)))
			continue;
		if ((svc_any || covers(json_object_get(sc, "services"), service)) &&
		    (env_any || covers(json_object_get(sc, "envs"), env)))
			return 1;
	}
	return 0;
}

int auth_allows(const struct auth_principal *p, enum auth_action a, const char *service, const char *env)
{
	return decide(p, a, service, env, 0, 0);
}

int auth_allows_somewhere(const struct auth_principal *p, enum auth_action a)
{
	return decide(p, a, NULL, NULL, 1, 1);
}

int auth_allows_service(const struct auth_principal *p, enum auth_action a, const char *service)
{
	return decide(p, a, service, NULL, 0, 1);
}

int auth_allows_env(const struct auth_principal *p, enum auth_action a, const char *env)
{
	return decide(p, a, NULL, env, 1, 0);
}

void auth_principal_release(struct auth_principal *p)
{
	json_decref(p->scopes);
	memset(p, 0, sizeof(*p));
}

int auth_principal_set(struct auth_principal *p, const char *name, json_t *scopes)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->scopes = json_incref(scopes);
	size_t i;
	json_t *sc;
	json_array_foreach(p->scopes, i, sc)
		p->admin |= list_has(json_object_get(sc, "actions"), "admin");
	return 0;
}
