/*
 * auth: who may call the API, and what they may do. Bearer tokens, their scopes, and the one
 * decision "may this token do this action on this service in this environment".
 *
 * A token's secret is "slc_" followed by 43 base64url characters (256 random bits). The store
 * keeps only its SHA-256 (store.h): the secret is shown once, when it is created. With 256
 * bits of entropy a fast hash is enough (nobody can search the space), and it lets a request
 * find its token with one indexed lookup; nothing compares secrets byte by byte.
 *
 * Where tokens are kept and found: server/tokens.h. This module is pure (no store, no files):
 * the fuzz target of the API's bodies links it.
 *
 * A token carries scopes; each scope grants a set of actions on the services and environments
 * that its patterns match:
 *     {"actions": ["deploy", "rollback"], "services": ["pay-*"], "envs": ["production"]}
 * "services" and "envs" default to ["*"]. A pattern is a name (lowercase letters, digits, '-')
 * in which '*' stands for any run of characters. The action "admin" grants every action on
 * everything (tokens, shutdown, the audit log included). No action implies another one: a CI
 * token that deploys and then watches the rollout needs "deploy" and "read".
 */
#ifndef SLUICE_AUTH_H
#define SLUICE_AUTH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/log.h"

/* What a route needs (http/routes.h's permission column) and what a scope grants. */
enum auth_action {
	AUTH_PUBLIC,   /* nothing: liveness only, it reveals nothing else */
	AUTH_READ,
	AUTH_APPLY,    /* manifests */
	AUTH_RELEASE,  /* artifacts and releases */
	AUTH_DEPLOY,
	AUTH_ROLLBACK,
	AUTH_RETRY,
	AUTH_FLAGS,    /* changing feature flags */
	AUTH_ADMIN,    /* tokens, shutdown, the audit log; and everything else */
	AUTH_EVALUATE, /* evaluating feature flags (OFREP), and nothing else */
	AUTH_NACTIONS
};

#define AUTH_SECRET_PREFIX "slc_"
#define AUTH_SECRET_LEN 47   /* the prefix and 43 characters */
#define AUTH_HASH_LEN 64     /* hex digits */
#define AUTH_MAX_SCOPES 16
#define AUTH_PATTERN_MAX 64  /* bytes of one pattern, NUL included */

/* Whether an action changes something (what the audit log records): not public, read or
 * evaluate. */
int auth_action_changes(enum auth_action a);
/* "read", "deploy", ... ("?" out of range). */
const char *auth_action_name(enum auth_action a);
/* The action of that name (not "public"), or -1. */
int auth_action_parse(const char *name);

/* A new secret (AUTH_SECRET_LEN characters and a NUL) from the kernel's random source, and
 * its hash. -1 with e when no randomness could be had. */
int auth_new_secret(char secret[AUTH_SECRET_LEN + 1] /* OUT */,
		    char hash[AUTH_HASH_LEN + 1] /* OUT */, struct err *e);
/* The hash of a presented secret; -1 when it does not have a secret's shape (then nothing
 * about it is worth looking up). */
int auth_hash(const char *secret, size_t len, char hash[AUTH_HASH_LEN + 1] /* OUT */);

/* Whether s is a valid name pattern (lowercase letters, digits, '-', '*'; 1..63 bytes). */
int auth_pattern_ok(const char *s);
/* Whether a pattern matches a name ('*' is any run of characters). */
int auth_pattern_match(const char *pattern, const char *name);

/* The caller of one request: the token's name and scopes. */
struct auth_principal {
	char name[64];
	json_t *scopes;   /* owned; NULL when unauthenticated */
	int admin;
};

/* Fills p with a copy of name and a new reference to scopes (an array in the normalized form
 * that api_body's token body produces). Returns 0. */
int auth_principal_set(struct auth_principal *p /* OUT */, const char *name, json_t *scopes);
void auth_principal_release(struct auth_principal *p);

/*
 * The decision. service and env name the target; NULL means "every one" (a scope grants it
 * only when its pattern is "*"). auth_allows_somewhere says whether any scope grants the
 * action at all (the route-level check, before the target is known), auth_allows_service
 * whether one grants it on the service in at least one environment (for what is not tied to
 * an environment: a release, a service's list of releases), auth_allows_env whether one
 * grants it in the environment for at least one service (listing environments). A principal
 * without scopes (unauthenticated) is allowed AUTH_PUBLIC only; "admin" is allowed all.
 */
int auth_allows(const struct auth_principal *p, enum auth_action a, const char *service,
		const char *env);
int auth_allows_somewhere(const struct auth_principal *p, enum auth_action a);
int auth_allows_service(const struct auth_principal *p, enum auth_action a, const char *service);
int auth_allows_env(const struct auth_principal *p, enum auth_action a, const char *env);

#endif
