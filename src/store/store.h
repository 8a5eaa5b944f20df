/*
 * store: the control plane's durable state, behind a driver interface.
 *
 * What it keeps: manifests (normalized JSON), releases (immutable: version -> digest), the
 * deployments with their pipeline state, their events (never deleted), per
 * service/environment/region the stable release and its history, the API's tokens (their
 * hashes, never the secrets), the audit log of every change made through the API
 * (append-only: no operation edits or deletes a row), and per environment the feature flag
 * set with every version it had, the guarded rollouts of flags with their events, and the
 * notification subscriptions with their outbox (what is still to be delivered to each webhook).
 * Artifacts (the release files) are files (store/artifacts.h); a shared store (PostgreSQL,
 * store_shared) also keeps a copy of each, in chunks, for replicas that do not share the files.
 *
 * Drivers: a store is opened from a location string, "SCHEME:REST", and the scheme picks the
 * driver that implements the operations below (struct store_ops). "sqlite:PATH", or a plain
 * path, is the embedded SQLite driver (store_sqlite.c); "postgres://..." or "postgresql://..."
 * (a libpq URI; "postgres:KEY=VALUE ..." for a conninfo string) is the PostgreSQL driver
 * (store_pg.c), which several control-plane replicas can share. Every driver passes the conformance
 * suite in tests/unit/store/conformance.h; what a driver needs to decide on its own (file
 * modes, connection settings, schema migrations) stays inside it. The public store_* functions
 * are thin dispatchers: they check the contract below and call the driver.
 *
 * Transactions: callers group the writes of one state change between store_begin and
 * store_commit, so a crash leaves either all or none of it ("persist, then act"). A store handle
 * holds at most one transaction; a nested store_begin is an error. A handle belongs to one
 * thread (the server's loop).
 *
 * Error contract: every operation takes a `struct err *e` that must not be NULL (asserted) and
 * returns
 *   0                on success,
 *   STORE_NOTFOUND   when the row it looks up (or updates) does not exist; e then says which,
 *   STORE_CONFLICT   when a write contradicts a stored row (a release version registered with
 *                    another digest; a lease another holder has); e says what to do instead,
 *   STORE_FENCED     (store_lease_check only) the caller no longer holds the lease it writes
 *                    under: the transaction must be rolled back, nothing of it is written,
 *   -1               when the store failed (I/O, a closed connection, a corrupt file); e says
 *                    why. A failure never reads as "not found": a caller that cannot tell
 *                    whether a row exists must not act as if it did not.
 * Every result must be looked at (warn_unused_result).
 *
 * Ownership: JSON returned through OUT parameters is a new reference owned by the caller
 * (json_decref); it is NULL after any non-zero return. Strings and JSON passed in are borrowed:
 * the store copies what it keeps.
 */
#ifndef SLUICE_STORE_H
#define SLUICE_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/log.h"

typedef struct store store;

#define STORE_NOTFOUND 1
#define STORE_CONFLICT 2
#define STORE_FENCED 3
/* The schema version this build writes (each driver migrates forward on open). */
#define STORE_SCHEMA_VERSION 8

#define STORE_WUR __attribute__((warn_unused_result))

/* ---- Life cycle ---- */

/* Opens the store at `location`: "sqlite:PATH" or a plain PATH (SQLite), "postgres://..." or
 * "postgresql://..." (PostgreSQL); a path that contains ':' before any '/' must be written
 * "sqlite:PATH". An unknown scheme is an error naming it. */
STORE_WUR int store_open(store **out /* OUT */, const char *location, struct err *e);
/* Closes the handle; an open transaction is rolled back. NULL is a no-op. */
void store_close(store *s);
/* The schema version of the stored data (STORE_SCHEMA_VERSION after a successful open). */
STORE_WUR int store_schema_version(store *s, int *version /* OUT */, struct err *e);
/* A number that grows with every row written through this handle (committed or not): a caller
 * that saw the same number before reads the same data again. A driver that other processes
 * write to as well (PostgreSQL) also grows it when it learns of their commits, shortly after
 * each (store_pg.c says how). */
STORE_WUR uint64_t store_changes(store *s);
/* A number that grows with every manifest changed through this handle (and at every rollback,
 * which may undo one), and, on a store other processes write as well (a driver without
 * sole_writer: PostgreSQL), with store_changes too: a caller that saw the same number reads the
 * same manifests again. It stays put while only deployments, events and the rest are
 * written, so what is derived from the manifests alone (server/catalog.h) survives them. */
STORE_WUR uint64_t store_manifest_changes(store *s);

/* ---- Transactions ---- */

/* Begins a write transaction (nested calls fail with -1). */
STORE_WUR int store_begin(store *s, struct err *e);
/* Commits; on failure the transaction is rolled back and -1 returned. */
STORE_WUR int store_commit(store *s, struct err *e);
/* Discards the open transaction's writes; no-op without one. */
void store_rollback(store *s);

/* ---- Manifests ---- */

/* kind is "Environment" or "Service". *changed tells whether the spec differs from the stored
 * one (an unchanged spec is not written). */
STORE_WUR int store_put_manifest(store *s, const char *kind, const char *name, const json_t *spec,
				 int *changed /* OUT, may be NULL */, struct err *e);
/* STORE_NOTFOUND when there is no such manifest. */
STORE_WUR int store_get_manifest(store *s, const char *kind, const char *name,
				 json_t **out /* OUT: spec */, struct err *e);
/* Array of specs ordered by name (empty when none). */
STORE_WUR int store_list_manifests(store *s, const char *kind, json_t **out /* OUT */, struct err *e);

/* ---- Releases ---- */

/* Registers a release. *created is 1 when written, 0 when the same digest was already
 * registered under this version (a no-op). STORE_CONFLICT when the version exists with another
 * digest. */
STORE_WUR int store_put_release(store *s, const char *service, const char *version,
				const char *digest, int64_t size, const json_t *contract /* may be NULL */,
				int *created /* OUT */, struct err *e);
/* {"service","version","digest","size","contract"|null,"created_at"}; STORE_NOTFOUND if none. */
STORE_WUR int store_get_release(store *s, const char *service, const char *version,
				json_t **out /* OUT */, struct err *e);
/* Oldest first: [{"service","version","digest","size","has_contract","created_at"}] */
STORE_WUR int store_list_releases(store *s, const char *service, json_t **out /* OUT */,
				  struct err *e);

/* ---- Deployments ---- */

/* `state` is the pipeline's serialized state. A new deployment's phase is "active"; later it is
 * a final outcome ("promoted", "rolled_back", "failed", "preempted", "superseded"). */
STORE_WUR int store_create_deployment(store *s, const char *service, const char *env,
				      const char *version, const char *kind, const json_t *state,
				      int64_t *id /* OUT */, struct err *e);
/* reason may be NULL. STORE_NOTFOUND when no deployment has this id. */
STORE_WUR int store_update_deployment(store *s, int64_t id, const json_t *state, const char *phase,
				      const char *reason, struct err *e);
/* The same, as a compare-and-set: only when the stored state is still `expected` (the state the
 * caller read and changed). STORE_CONFLICT when another writer changed it since (nothing is
 * written: read it again and redo the change), STORE_NOTFOUND when there is no such
 * deployment. What several replicas write to one deployment is thus applied once each, in
 * some order, and none is lost. */
STORE_WUR int store_update_deployment_if(store *s, int64_t id, const json_t *expected,
					 const json_t *state, const char *phase, const char *reason,
					 struct err *e);
/* {"id","service","env","version","kind","phase","reason","state","created_at","updated_at"};
 * STORE_NOTFOUND if none. */
STORE_WUR int store_get_deployment(store *s, int64_t id, json_t **out /* OUT */, struct err *e);
/* Newest first; service NULL = all. */
STORE_WUR int store_list_deployments(store *s, const char *service, json_t **out /* OUT */,
				     struct err *e);
/* Deployments whose phase is "active", oldest first. */
STORE_WUR int store_active_deployments(store *s, json_t **out /* OUT */, struct err *e);

/* ---- Events (append-only) ---- */

/* region and evidence may be NULL. STORE_NOTFOUND when the deployment does not exist. */
STORE_WUR int store_add_event(store *s, int64_t deployment, const char *type, const char *region,
			      const char *message, const json_t *evidence, struct err *e);
/* Oldest first: [{"id","at","type","region","message","evidence"}] (empty for an unknown id). */
STORE_WUR int store_list_events(store *s, int64_t deployment, json_t **out /* OUT */, struct err *e);
/* Every deployment's events with an id above `after`, oldest first, at most `limit` (> 0) of
 * them: [{"id","at","deployment","service","env","type","region","message","evidence"}]. For
 * followers (the server-sent events stream): ids only grow, so the last id seen is a cursor.
 * A negative `after` asks for the newest `limit` events instead (still oldest first). */
STORE_WUR int store_events_after(store *s, int64_t after, int64_t limit, json_t **out /* OUT */,
				 struct err *e);

/* ---- Stable releases per service/env/region, with history ---- */

STORE_WUR int store_set_stable(store *s, const char *service, const char *env, const char *region,
			       const char *version, int64_t deployment, struct err *e);
/* Copies the version into buf (truncated to len - 1); STORE_NOTFOUND when the region has none
 * yet. buf is "" after any non-zero return. */
STORE_WUR int store_get_stable(store *s, const char *service, const char *env, const char *region,
			       char *buf /* OUT */, size_t len, struct err *e);
/* The latest stable version before `current` in the region's history; STORE_NOTFOUND if none. */
STORE_WUR int store_previous_stable(store *s, const char *service, const char *env,
				    const char *region, const char *current, char *buf /* OUT */,
				    size_t len, struct err *e);
/* [{"service","env","region","version","deployment","since"}] (service NULL = all) */
STORE_WUR int store_list_stable(store *s, const char *service, json_t **out /* OUT */, struct err *e);

/* ---- API tokens ----
 *
 * A token is stored by the SHA-256 of its secret (64 lowercase hex digits), so neither the
 * store file nor its backups can authenticate anyone. Names are unique for ever: a revoked
 * token keeps its row, and its name, for the audit log. */
struct store_token {
	const char *name;       /* name_ok(NAME_OBJECT) */
	const char *hash;       /* sha256 hex of the secret */
	const json_t *scopes;   /* array of scopes as server/auth.h checked them; copied */
	int64_t expires_at;     /* wall-clock ms; 0 = never */
	const char *created_by; /* the creating token's name; "" for the server's own bootstrap */
};

/* STORE_CONFLICT when a token (even a revoked one) already has this name. */
STORE_WUR int store_put_token(store *s, const struct store_token *t, struct err *e);
/* The token whose hash this is: {"name","scopes","created_at","expires_at"|null,
 * "revoked_at"|null,"created_by"}; STORE_NOTFOUND when none. Expiry and revocation are the
 * caller's to judge. */
STORE_WUR int store_get_token(store *s, const char *hash, json_t **out /* OUT */, struct err *e);
/* Every token, by name, as store_get_token describes it (no hashes). */
STORE_WUR int store_list_tokens(store *s, json_t **out /* OUT */, struct err *e);
/* Marks the token revoked at `at` (ms); a token revoked before keeps its first time.
 * STORE_NOTFOUND when no token has this name. */
STORE_WUR int store_revoke_token(store *s, const char *name, int64_t at, struct err *e);

/* ---- Audit log (append-only) ---- */

struct store_audit {
	int64_t at;          /* wall-clock ms; 0 = now */
	const char *token;   /* the caller's token name */
	const char *action;  /* the permission used: "deploy", "apply", ... */
	const char *request; /* "POST /v1/deployments" */
	const char *service; /* the target, may be NULL */
	const char *env;     /* may be NULL */
	const char *result;  /* "ok", or the status and error: "409 the gate refuses ..." */
	const char *client;  /* the peer address */
};

/* Appends one row, in the open transaction if there is one. */
STORE_WUR int store_add_audit(store *s, const struct store_audit *a, struct err *e);
/* The rows with at >= since (ms; 0 = all) and for `service` (NULL = all), at most `limit` (> 0)
 * of them (the newest), oldest first: [{"id","at","token","action","request","service",
 * "env","result","client"}]. */
STORE_WUR int store_list_audit(store *s, const char *service, int64_t since, int64_t limit,
			       json_t **out /* OUT */, struct err *e);

/*
 * "Audited in the same transaction as its effect": the API attaches the record of the request
 * it is serving before its handler runs; the next store_commit on this handle writes it inside
 * the transaction it commits (a failure to write it fails the commit: no change goes
 * unaudited), and only that one commit. The record is copied.
 */
STORE_WUR int store_audit_attach(store *s, const struct store_audit *a, struct err *e);
/* Forgets the attached record: 1 when a commit wrote it, 0 when none did (the caller then
 * writes the outcome itself with store_add_audit). */
int store_audit_detach(store *s);

/* ---- Feature flags: one flag set per environment, every version kept ---- */

/* Stores doc (a normalized flag set, flags/flagset.h) as the environment's next version,
 * written by token `by` for the reason `why` (may be ""). *version is the new number (1 for
 * the first). */
STORE_WUR int store_put_flags(store *s, const char *env, const json_t *doc, const char *by,
			      const char *why, int64_t *version /* OUT */, struct err *e);
/* The environment's current set: {"env","version","doc","at","by","why"}; STORE_NOTFOUND when
 * it never had one. */
STORE_WUR int store_get_flags(store *s, const char *env, json_t **out /* OUT */, struct err *e);
/* Every version, newest first, without the documents: [{"version","at","by","why"}]. */
STORE_WUR int store_list_flag_versions(store *s, const char *env, json_t **out /* OUT */,
				       struct err *e);

/* ---- Guarded flag rollouts (server/rollouts.h): one row per rollout, events append-only ----
 *
 * `state` is the rollout's serialized state (core/rollout.h); phase is "active" while it runs,
 * then its outcome ("completed", "reverted", "aborted", "interrupted"). */

/* A new active rollout of flag in env, judged on service. STORE_CONFLICT when the flag already
 * has an active rollout in env (e names it). */
STORE_WUR int store_create_rollout(store *s, const char *env, const char *flag, const char *service,
				   const json_t *state, const char *by, const char *why,
				   int64_t *id /* OUT */, struct err *e);
/* STORE_NOTFOUND when no rollout has this id. */
STORE_WUR int store_update_rollout(store *s, int64_t id, const json_t *state, const char *phase,
				   struct err *e);
/* {"id","env","flag","service","phase","state","by","why","created_at","updated_at"};
 * STORE_NOTFOUND if none. */
STORE_WUR int store_get_rollout(store *s, int64_t id, json_t **out /* OUT */, struct err *e);
/* Rows as store_get_rollout's. env NULL = every environment. active_only: the active ones,
 * oldest first; otherwise every one, newest first. */
STORE_WUR int store_list_rollouts(store *s, const char *env, int active_only, json_t **out /* OUT */,
				  struct err *e);
/* evidence may be NULL. STORE_NOTFOUND when the rollout does not exist. */
STORE_WUR int store_add_rollout_event(store *s, int64_t rollout, const char *type, const char *message,
				      const json_t *evidence, struct err *e);
/* Oldest first: [{"id","at","type","message","evidence"}] (empty for an unknown id). */
STORE_WUR int store_list_rollout_events(store *s, int64_t rollout, json_t **out /* OUT */, struct err *e);

/* ---- Leases: which control-plane replica owns what, with fencing ----
 *
 * A lease is a row: name (what is owned, "service/checkout"), holder (a replica's id), epoch,
 * since (when this tenure began) and expires_at, every time read from the store's own clock
 * (the database server's for PostgreSQL), so replicas whose clocks disagree still agree on
 * who holds what. A tenure is one unbroken holding: its epoch is larger than every earlier
 * tenure's of that name (rows are never deleted, so epochs never go back).
 *
 * Fencing: a holder passes its epoch to store_lease_check inside every transaction that writes
 * what the lease owns. The check fails (STORE_FENCED) unless the holder still holds that very
 * tenure and it has not expired, and it keeps the lease row from changing hands until the
 * transaction ends: a write it allowed commits before the next tenure begins, or not at all.
 * So a holder that was paused past its expiry (SIGSTOP, a long GC-like stall, a network cut)
 * and wakes up cannot write late: its next check is refused and it rolls back.
 */

/* Takes or renews lease `name` for `holder` for ttl_ms (1..3600000) from now.
 * *epoch is the epoch the caller holds (0: none). The lease is renewed, keeping *epoch and
 * `since`, when holder holds it with that epoch and it has not expired; it is taken, with a new
 * larger *epoch and since = now, when it is free (never held, released, expired) or holder
 * holds it under another epoch (a restarted holder of the same id). Returns 0 with *epoch the
 * tenure now held, or STORE_CONFLICT (*epoch 0) when another holder's lease has not expired: e
 * says who holds it and for how much longer. */
STORE_WUR int store_lease_acquire(store *s, const char *name, const char *holder, int64_t ttl_ms,
				  int64_t *epoch /* IN/OUT */, struct err *e);
/* Gives up the tenure (holder, epoch) of `name`: it expires now, and another holder may take
 * it at once. A tenure already lost or expired is left as it is; both are 0. */
STORE_WUR int store_lease_release(store *s, const char *name, const char *holder, int64_t epoch,
				  struct err *e);
/* Inside a transaction (-1 outside one): 0 when holder holds `name` with `epoch` and it has not
 * expired; STORE_FENCED, with e naming the current holder, otherwise (the caller rolls back).
 * On 0 the lease cannot change hands until the transaction ends. */
STORE_WUR int store_lease_check(store *s, const char *name, const char *holder, int64_t epoch,
				struct err *e);
/* Every lease by name: [{"name","holder","epoch","since","expires_at","remaining_ms"}]; times
 * in ms by the store's clock; remaining_ms = expires_at - the store's now (<= 0: expired, free). */
STORE_WUR int store_list_leases(store *s, json_t **out /* OUT */, struct err *e);

/* ---- Artifacts in the store (a shared store's copy of the files: store/artifacts.h) ----
 *
 * An artifact is its digest ("sha256:HEX"), its size and its content in numbered chunks
 * (0, 1, ...; every chunk but the last of the same size, at most STORE_ARTIFACT_CHUNK_MAX
 * bytes). The writer puts every chunk, then the artifact's row, in ONE transaction: a row
 * exists only with all its chunks. The store does not hash: the reader checks the digest
 * (artifacts_fetch). Chunks of a digest already written are left as they are (the content is
 * the same by its name), so two replicas storing the same artifact at once both succeed. */
#define STORE_ARTIFACT_CHUNK_MAX (1u << 20)

/* Inside a transaction: chunk n (0..) of the artifact; len 1..STORE_ARTIFACT_CHUNK_MAX. */
STORE_WUR int store_put_artifact_chunk(store *s, const char *digest, int64_t n, const void *data,
				       size_t len, struct err *e);
/* Inside the same transaction, after its chunks: the artifact is complete (size bytes in
 * `chunks` chunks). *created is 0 when it was stored already (then nothing changes). */
STORE_WUR int store_put_artifact(store *s, const char *digest, int64_t size, int64_t chunks,
				 int *created /* OUT */, struct err *e);
/* Size and number of chunks of a complete artifact; STORE_NOTFOUND when there is none. */
STORE_WUR int store_get_artifact(store *s, const char *digest, int64_t *size /* OUT */,
				 int64_t *chunks /* OUT */, struct err *e);
/* Copies chunk n into buf (cap bytes); *len its size. STORE_NOTFOUND when there is no such
 * chunk; -1 when it is larger than cap. */
STORE_WUR int store_get_artifact_chunk(store *s, const char *digest, int64_t n, void *buf /* OUT */,
				       size_t cap, size_t *len /* OUT */, struct err *e);
/*
 * A value the whole control plane shares, such as the proxies' admin token: the value stored
 * under name, which is `fresh` when none was stored yet (outside a transaction: the insert
 * stands alone, and of replicas that start at once every one gets the value stored first).
 * name is 1..64 bytes, fresh 1..STORE_SECRET_MAX. out receives the value (cap bytes, at least
 * STORE_SECRET_MAX + 1). Returns 0, or -1 with e. The value is kept in clear: the store is as
 * secret as the data directory (docs/security.md).
 */
#define STORE_SECRET_MAX 256
STORE_WUR int store_secret(store *s, const char *name, const char *fresh, char *out /* OUT */,
			   size_t cap, struct err *e);
/* 1 when other processes (replicas on other machines) write this store too, so what one of
 * them needs from another, an artifact, must be in it; 0 for SQLite. */
int store_shared(store *s);
/* ---- Notifications: subscriptions and their outbox ----
 *
 * A subscription asks for the notifications of some types about an environment and a service
 * ("" = every one) at a webhook URL, in a format, signed with a secret. The secret is kept in
 * the store as given (it signs, so it cannot be hashed): only store_notify_pending returns it,
 * for the deliverer. A removed subscription keeps its row (deleted_at) and its outbox rows stay
 * undelivered for ever: nothing is sent for it any more.
 *
 * The outbox is the durable queue of deliveries: store_notify_enqueue writes one row per
 * matching subscription, in the open transaction (the one that writes the event it announces),
 * so an event is announced if and only if it was committed. A row is pending until
 * store_notify_mark records it delivered; per subscription, rows go out in id order, so
 * store_notify_pending answers only the oldest pending row of each subscription.
 */
struct store_subscription {
	const char *env;        /* "" = every environment */
	const char *service;    /* "" = every service */
	const char *types;      /* ",type,type," (each type a notification type, notify.h), never "" */
	const char *url;        /* checked by the caller (notify_url_check) */
	const char *format;     /* "json", "slack" or "cloudevents" */
	const char *secret;     /* HMAC key; "" = deliveries are not signed */
	const char *created_by; /* the creating token's name */
};

/* *id: the new subscription's id (> 0). */
STORE_WUR int store_put_subscription(store *s, const struct store_subscription *sub,
				     int64_t *id /* OUT */, struct err *e);
/* The live subscriptions by id, without secrets: [{"id","env","service","types","url","format",
 * "signed" (0/1),"created_at","created_by"}]. */
STORE_WUR int store_list_subscriptions(store *s, json_t **out /* OUT */, struct err *e);
/* Removes a live subscription; STORE_NOTFOUND when none has this id (or it was removed). */
STORE_WUR int store_delete_subscription(store *s, int64_t id, struct err *e);
/* Writes one outbox row (type, payload) for every live subscription that matches env, service
 * and type; *rows (may be NULL) says how many. In the open transaction when there is one. */
STORE_WUR int store_notify_enqueue(store *s, const char *env, const char *service,
				   const char *type, const json_t *payload, int64_t *rows /* OUT */,
				   struct err *e);
/* At most `limit` (> 0) rows, each the oldest pending row of a live subscription whose
 * next_at <= now_ms, oldest first: [{"id","subscription","type","payload","created_at",
 * "attempts","url","format","secret"}]. */
STORE_WUR int store_notify_pending(store *s, int64_t now_ms, int64_t limit, json_t **out /* OUT */,
				   struct err *e);
/* Records an attempt at row id: delivered (1), or failed (0) with `error` and the time of the
 * next attempt; attempts grows by one either way. STORE_NOTFOUND when no row has this id.
 * Not a change of state (store_changes does not grow for it). */
STORE_WUR int store_notify_mark(store *s, int64_t id, int delivered, int64_t next_at,
				const char *error, struct err *e);
/* Pending rows of live subscriptions, and the created_at of the oldest (0 when none). */
STORE_WUR int store_notify_backlog(store *s, int64_t *rows /* OUT */, int64_t *oldest /* OUT */,
				   struct err *e);

/*
 * The event hook: a function the store calls inside store_add_event, after the event row is
 * written and in the same transaction (one it opens itself when the caller has none), so what
 * it writes (the outbox rows) commits with the event or not at all. A non-zero return fails the
 * store_add_event (and rolls back the transaction the store opened). NULL removes it.
 */
typedef int store_event_hook(void *ctx, store *s, int64_t deployment, const char *type,
			     const char *region, const char *message, const json_t *evidence,
			     struct err *e);
void store_set_event_hook(store *s, store_event_hook *fn, void *ctx);

/* 1 when e holds the message of a store failure (a -1 above: every such message begins with
 * "store: "), else 0. For a caller that receives the error through a layer that passes only
 * the message on (the executor, the gate): it answers "failed" (HTTP 500), not "your request
 * is wrong" or "not found". */
int store_failed(const struct err *e);

/* How long store_commit took, every one through this handle (util/histo.h; for /metrics). */
struct histo;
const struct histo *store_commit_latency(store *s);

/* Wall-clock milliseconds, the timestamps the store writes. */
int64_t store_now_ms(void);

/* ---- Drivers ----
 *
 * A driver fills one struct store_ops. Each operation receives the driver's own state `drv`
 * (what its open returned) and otherwise the arguments and contract of the store_* function of
 * the same name; the dispatcher has already checked that e is not NULL, set OUT pointers to
 * NULL and emptied e, and it fills a message the driver left empty and prefixes a failure's
 * message with "store: " when the driver did not. `open` receives the
 * location without "SCHEME:". Every member is required, except `open` for a driver handed to
 * store_attach. */
struct store_ops {
	const char *scheme; /* "sqlite" */
	int (*open)(void **drv /* OUT */, const char *location, struct err *e);
	void (*close)(void *drv);
	int (*schema_version)(void *drv, int *version, struct err *e);
	uint64_t (*changes)(void *drv);
	int (*begin)(void *drv, struct err *e);
	int (*commit)(void *drv, struct err *e);
	void (*rollback)(void *drv);
	int (*put_manifest)(void *drv, const char *kind, const char *name, const json_t *spec,
			    int *changed, struct err *e);
	int (*get_manifest)(void *drv, const char *kind, const char *name, json_t **out, struct err *e);
	int (*list_manifests)(void *drv, const char *kind, json_t **out, struct err *e);
	int (*put_release)(void *drv, const char *service, const char *version, const char *digest,
			   int64_t size, const json_t *contract, int *created, struct err *e);
	int (*get_release)(void *drv, const char *service, const char *version, json_t **out,
			   struct err *e);
	int (*list_releases)(void *drv, const char *service, json_t **out, struct err *e);
	int (*create_deployment)(void *drv, const char *service, const char *env, const char *version,
				 const char *kind, const json_t *state, int64_t *id, struct err *e);
	int (*update_deployment)(void *drv, int64_t id, const json_t *state, const char *phase,
				 const char *reason, struct err *e);
	int (*get_deployment)(void *drv, int64_t id, json_t **out, struct err *e);
	int (*list_deployments)(void *drv, const char *service, json_t **out, struct err *e);
	int (*active_deployments)(void *drv, json_t **out, struct err *e);
	int (*add_event)(void *drv, int64_t deployment, const char *type, const char *region,
			 const char *message, const json_t *evidence, struct err *e);
	int (*list_events)(void *drv, int64_t deployment, json_t **out, struct err *e);
	int (*events_after)(void *drv, int64_t after, int64_t limit, json_t **out, struct err *e);
	int (*set_stable)(void *drv, const char *service, const char *env, const char *region,
			  const char *version, int64_t deployment, struct err *e);
	int (*get_stable)(void *drv, const char *service, const char *env, const char *region,
			  char *buf, size_t len, struct err *e);
	int (*previous_stable)(void *drv, const char *service, const char *env, const char *region,
			       const char *current, char *buf, size_t len, struct err *e);
	int (*list_stable)(void *drv, const char *service, json_t **out, struct err *e);
	int (*put_token)(void *drv, const struct store_token *t, struct err *e);
	int (*get_token)(void *drv, const char *hash, json_t **out, struct err *e);
	int (*list_tokens)(void *drv, json_t **out, struct err *e);
	int (*revoke_token)(void *drv, const char *name, int64_t at, struct err *e);
	int (*add_audit)(void *drv, const struct store_audit *a, struct err *e);
	int (*list_audit)(void *drv, const char *service, int64_t since, int64_t limit, json_t **out,
			  struct err *e);
	int (*put_flags)(void *drv, const char *env, const json_t *doc, const char *by, const char *why,
			 int64_t *version, struct err *e);
	int (*get_flags)(void *drv, const char *env, json_t **out, struct err *e);
	int (*list_flag_versions)(void *drv, const char *env, json_t **out, struct err *e);
	int (*lease_acquire)(void *drv, const char *name, const char *holder, int64_t ttl_ms,
			     int64_t *epoch, struct err *e);
	int (*lease_release)(void *drv, const char *name, const char *holder, int64_t epoch,
			     struct err *e);
	int (*lease_check)(void *drv, const char *name, const char *holder, int64_t epoch,
			   struct err *e);
	int (*list_leases)(void *drv, json_t **out, struct err *e);
	int (*put_artifact_chunk)(void *drv, const char *digest, int64_t n, const void *data,
				  size_t len, struct err *e);
	int (*put_artifact)(void *drv, const char *digest, int64_t size, int64_t chunks, int *created,
			    struct err *e);
	int (*get_artifact)(void *drv, const char *digest, int64_t *size, int64_t *chunks,
			    struct err *e);
	int (*get_artifact_chunk)(void *drv, const char *digest, int64_t n, void *buf, size_t cap,
				  size_t *len, struct err *e);
	int (*update_deployment_if)(void *drv, int64_t id, const json_t *expected, const json_t *state,
				    const char *phase, const char *reason, struct err *e);
	int (*secret)(void *drv, const char *name, const char *fresh, json_t **value, struct err *e);
	int (*put_subscription)(void *drv, const struct store_subscription *sub, int64_t *id,
				struct err *e);
	int (*list_subscriptions)(void *drv, json_t **out, struct err *e);
	int (*delete_subscription)(void *drv, int64_t id, struct err *e);
	int (*notify_enqueue)(void *drv, const char *env, const char *service, const char *type,
			      const json_t *payload, int64_t *rows, struct err *e);
	int (*notify_pending)(void *drv, int64_t now_ms, int64_t limit, json_t **out, struct err *e);
	int (*notify_mark)(void *drv, int64_t id, int delivered, int64_t next_at, const char *error,
			   struct err *e);
	int (*notify_backlog)(void *drv, int64_t *rows, int64_t *oldest, struct err *e);
	int (*create_rollout)(void *drv, const char *env, const char *flag, const char *service,
			      const json_t *state, const char *by, const char *why, int64_t *id,
			      struct err *e);
	int (*update_rollout)(void *drv, int64_t id, const json_t *state, const char *phase, struct err *e);
	int (*get_rollout)(void *drv, int64_t id, json_t **out, struct err *e);
	int (*list_rollouts)(void *drv, const char *env, int active_only, json_t **out, struct err *e);
	int (*add_rollout_event)(void *drv, int64_t rollout, const char *type, const char *message,
				 const json_t *evidence, struct err *e);
	int (*list_rollout_events)(void *drv, int64_t rollout, json_t **out, struct err *e);
	int shared; /* store_shared */
	/* Optional (0 by default): 1 when no other process writes this store while it is open
	 * (SQLite: one server per database), so that the writes through this handle are all
	 * there are (store_manifest_changes counts them). */
	int sole_writer;
};

/* The drivers built in (store_open picks among them by scheme). */
extern const struct store_ops store_sqlite_ops;
extern const struct store_ops store_pg_ops;

/* Makes a store handle of a driver instance opened by other means (a test's fault-injecting
 * wrapper, for one). The handle owns drv: store_close calls ops->close(drv). */
STORE_WUR int store_attach(store **out /* OUT */, const struct store_ops *ops, void *drv,
			   struct err *e);

#endif
