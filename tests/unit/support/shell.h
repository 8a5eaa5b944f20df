/*
 * shell: the control plane's parts composed as src/server/main.c composes them (store, the
 * runtimes, router, loop, verifier, reconciler, executor, API) on the fake runtime and the
 * fake router, over a real SQLite store wrapped by faulty_store; and API requests sent through
 * api_handle in memory, parsed from their bytes as the server parses them.
 *
 * The store holds the admin token the server makes on its first start (sh->admin); calls
 * made with shell_call carry it unless the test gives another token (or SHELL_NO_TOKEN).
 *
 * Every function asserts (Criterion) instead of returning errors. Not thread-safe (tests).
 */
#ifndef SLUICE_TEST_SHELL_H
#define SLUICE_TEST_SHELL_H

#include <jansson.h>
#include <limits.h>

#include "server/api.h"
#include "server/auth.h"
#include "support/faulty_store.h"

struct shell {
	char dir[PATH_MAX], artifacts[PATH_MAX + 16];
	loop *loop;
	store *store;              /* the faulty wrapper around the real store */
	struct faulty_store *fault;
	runtime *rt;               /* the fake runtime, owned by rts */
	runtimes *rts;
	router *router;            /* the fake router */
	verifier *vr;
	reconciler *rec;
	executor *ex;
	catalog *cat;              /* the rollouts' manifests */
	flags *flags;              /* the flag sets, shared by the api and the rollouts */
	rollouts *rollouts;        /* guarded flag rollouts (ticked by the test: rollouts_tick) */
	api *api;
	char admin[AUTH_SECRET_LEN + 1];
};

struct shell_opts {
	const char *const *hosts; /* api_deps.hosts */
	double ofrep_rate;        /* api_deps.ofrep_rate */
};

/* Makes a temporary directory and every part in it. opts may be NULL. */
void shell_open(struct shell *sh, const struct shell_opts *opts);
/* Frees every part and removes the directory. */
void shell_close(struct shell *sh);

/* The answer to one request. */
struct shell_answer {
	int status;
	json_t *json;       /* the body when it is JSON, else NULL */
	char *text;         /* the body as it is, NUL-terminated */
	char headers[1024]; /* the extra header lines */
	const char *content_type;
};
void shell_answer_free(struct shell_answer *a);

/* Sends the request bytes raw (head, then len - head bytes of body) from `peer`. */
int shell_raw(struct shell *sh, const char *raw, size_t len, struct shell_answer *out /* OUT */);

#define SHELL_NO_TOKEN ""
/*
 * Sends `method target` with Host 127.0.0.1:7070, the content type the route wants
 * (application/json, octet-stream for an artifact) and "Authorization: Bearer TOKEN":
 * token NULL is the admin token, SHELL_NO_TOKEN sends none. Returns the status.
 */
int shell_call(struct shell *sh, const char *token, const char *method, const char *target,
	       const char *body, size_t len, struct shell_answer *out /* OUT */);

/* Creates a token through the API (as admin) with scopes given as JSON text; its secret goes
 * to secret. */
void shell_token(struct shell *sh, const char *name, const char *scopes_json,
		 char secret[AUTH_SECRET_LEN + 1] /* OUT */);

#endif
