/*
 * store: the control plane's durable state in one SQLite file (WAL mode).
 *
 * What it keeps: manifests (normalized JSON), releases (immutable: version -> digest), the
 * deployments with their pipeline state, their events (never deleted: the history is the
 * audit trail), and per service/environment/region the stable release and its history.
 *
 * The schema is versioned (PRAGMA user_version) and migrated forward on open, each migration in
 * its own transaction. Callers group the writes of one state change between store_begin and
 * store_commit, so a crash leaves either all or none of it ("persist, then act").
 *
 * Error contract: functions return 0 on success, STORE_NOTFOUND (1) when a looked-up row does
 * not exist, and -1 on failure with the reason in e (when e is given). JSON returned through
 * OUT parameters is owned by the caller (json_decref).
 */
#ifndef SLUICE_STORE_H
#define SLUICE_STORE_H

#include <jansson.h>
#include <stdint.h>

#include "util/log.h"

typedef struct store store;

#define STORE_NOTFOUND 1
#define STORE_SCHEMA_VERSION 1

/* Life cycle */
__attribute__((warn_unused_result)) int store_open(store **out, const char *path, struct err *e);
void store_close(store *s);
int store_schema_version(store *s);
/* A number that grows with every row this store has written (committed or not): a caller that
 * saw the same number before reads the same data again. Only this process writes the file. */
uint64_t store_changes(store *s);

/* Transactions (BEGIN IMMEDIATE): nested calls are an error. */
__attribute__((warn_unused_result)) int store_begin(store *s, struct err *e);
__attribute__((warn_unused_result)) int store_commit(store *s, struct err *e);
void store_rollback(store *s);

/* Manifests: kind is "Environment" or "Service". *changed tells whether the spec differs. */
int store_put_manifest(store *s, const char *kind, const char *name, const json_t *spec,
		       int *changed /* OUT, may be NULL */, struct err *e);
int store_get_manifest(store *s, const char *kind, const char *name, json_t **out, struct err *e);
/* Array of specs ordered by name. */
int store_list_manifests(store *s, const char *kind, json_t **out, struct err *e);

/* Releases. Returns -1 with a clear message when the version exists with another digest;
 * *created is 0 when the same digest was already registered (a no-op). */
int store_put_release(store *s, const char *service, const char *version, const char *digest,
		      int64_t size, const json_t *contract /* may be NULL */, int *created,
		      struct err *e);
/* {"service","version","digest","size","contract"|null,"created_at"} */
int store_get_release(store *s, const char *service, const char *version, json_t **out,
		      struct err *e);
int store_list_releases(store *s, const char *service, json_t **out, struct err *e);

/* Deployments. `state` is the pipeline's serialized state. phase is "active" or a final
 * outcome ("promoted", "rolled_back", "failed", "preempted"). */
int store_create_deployment(store *s, const char *service, const char *env, const char *version,
			    const char *kind, const json_t *state, int64_t *id /* OUT */,
			    struct err *e);
int store_update_deployment(store *s, int64_t id, const json_t *state, const char *phase,
			    const char *reason, struct err *e);
/* {"id","service","env","version","kind","phase","reason","state","created_at","updated_at"} */
int store_get_deployment(store *s, int64_t id, json_t **out, struct err *e);
/* Newest first; service NULL = all. */
int store_list_deployments(store *s, const char *service, json_t **out, struct err *e);
/* Deployments whose phase is "active", oldest first. */
int store_active_deployments(store *s, json_t **out, struct err *e);

/* Events of a deployment, append-only. evidence may be NULL. */
int store_add_event(store *s, int64_t deployment, const char *type, const char *region,
		    const char *message, const json_t *evidence, struct err *e);
/* Oldest first; {"id","at","type","region","message","evidence"} */
int store_list_events(store *s, int64_t deployment, json_t **out, struct err *e);

/* Stable releases per service/env/region, with history. */
int store_set_stable(store *s, const char *service, const char *env, const char *region,
		     const char *version, int64_t deployment, struct err *e);
/* Copies the version into buf; STORE_NOTFOUND when the region has none yet. */
int store_get_stable(store *s, const char *service, const char *env, const char *region,
		     char *buf, size_t len, struct err *e);
/* The stable version before `current` in the region's history; STORE_NOTFOUND if none. */
int store_previous_stable(store *s, const char *service, const char *env, const char *region,
			  const char *current, char *buf, size_t len, struct err *e);
/* [{"service","env","region","version","deployment","since"}] (service NULL = all) */
int store_list_stable(store *s, const char *service, json_t **out, struct err *e);

/* Wall-clock milliseconds, the timestamps the store writes. */
int64_t store_now_ms(void);

#endif
