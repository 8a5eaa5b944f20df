/*
 * store_sqlite: the embedded store driver, one SQLite file in WAL mode ("sqlite:PATH").
 *
 * The schema is versioned (PRAGMA user_version) and migrated forward on open, each migration
 * in its own transaction. Writes are synchronous (synchronous = FULL): a committed transition
 * survives a power cut. Only this process writes the file, so the count of rows it changed is
 * the store's change counter. Statements are prepared once and reused.
 */
#include "store/store.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prepared statements are kept and reused: the reconciler asks the same few questions several
 * times per service on every tick, and compiling the SQL was a quarter of its time. */
#define STMT_CACHE 64

struct sqlite_store {
	sqlite3 *db;
	int in_tx;
	int last_rc; /* extended result code of the last failed step */
	uint64_t lease_rows; /* rows lease operations wrote: not changes of state (sq_changes) */
	struct {
		const char *sql; /* a string literal of this file: its address is the key */
		sqlite3_stmt *st;
	} stmts[STMT_CACHE];
	int nstmts;
};

/* Forward-only migrations; index i brings the schema from version i to i + 1. */
static const char *const migrations[] = {
	"CREATE TABLE manifests ("
	"  kind TEXT NOT NULL, name TEXT NOT NULL, spec TEXT NOT NULL, updated_at INTEGER NOT NULL,"
	"  PRIMARY KEY (kind, name));"
	"CREATE TABLE releases ("
	"  service TEXT NOT NULL, version TEXT NOT NULL, digest TEXT NOT NULL, size INTEGER NOT NULL,"
	"  contract TEXT, created_at INTEGER NOT NULL, PRIMARY KEY (service, version));"
	"CREATE TABLE deployments ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, service TEXT NOT NULL, env TEXT NOT NULL,"
	"  version TEXT NOT NULL, kind TEXT NOT NULL, phase TEXT NOT NULL, reason TEXT,"
	"  state TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
	"CREATE INDEX deployments_by_service ON deployments (service, id);"
	"CREATE INDEX deployments_by_phase ON deployments (phase);"
	"CREATE TABLE events ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, deployment INTEGER NOT NULL REFERENCES deployments(id),"
	"  at INTEGER NOT NULL, type TEXT NOT NULL, region TEXT, message TEXT NOT NULL, evidence TEXT);"
	"CREATE INDEX events_by_deployment ON events (deployment, id);"
	"CREATE TABLE stable ("
	"  service TEXT NOT NULL, env TEXT NOT NULL, region TEXT NOT NULL, version TEXT NOT NULL,"
	"  deployment INTEGER, since INTEGER NOT NULL, PRIMARY KEY (service, env, region));"
	"CREATE TABLE stable_history ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, service TEXT NOT NULL, env TEXT NOT NULL,"
	"  region TEXT NOT NULL, version TEXT NOT NULL, deployment INTEGER, at INTEGER NOT NULL);",
	/* 2: tokens and the audit log, which triggers keep append-only even for SQL typed by hand */
	"CREATE TABLE tokens ("
	"  name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, scopes TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL, expires_at INTEGER, revoked_at INTEGER,"
	"  created_by TEXT NOT NULL);"
	"CREATE TABLE audit ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, token TEXT NOT NULL,"
	"  action TEXT NOT NULL, request TEXT NOT NULL, service TEXT, env TEXT,"
	"  result TEXT NOT NULL, client TEXT NOT NULL);"
	"CREATE INDEX audit_by_service ON audit (service, id);"
	"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
	"  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
	"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
	"  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
	/* 3: feature flags, one set per environment, every version kept */
	"CREATE TABLE flag_versions ("
	"  env TEXT NOT NULL, version INTEGER NOT NULL, doc TEXT NOT NULL, at INTEGER NOT NULL,"
	"  by TEXT NOT NULL, why TEXT NOT NULL, PRIMARY KEY (env, version));",
	/* 4: leases (one process writes this file, so they are simply kept and checked) */
	"CREATE TABLE leases ("
	"  name TEXT PRIMARY KEY, holder TEXT NOT NULL, epoch INTEGER NOT NULL,"
	"  since INTEGER NOT NULL, expires_at INTEGER NOT NULL);",
	/* 5: artifacts in chunks (the server keeps SQLite's as files: the table is for the
	 * conformance suite and a later move of the file to a shared store) */
	"CREATE TABLE artifacts ("
	"  digest TEXT PRIMARY KEY, size INTEGER NOT NULL, chunks INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL);"
	"CREATE TABLE artifact_chunks ("
	"  digest TEXT NOT NULL, n INTEGER NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (digest, n));",
	/* 6: values the whole control plane shares (the proxies' admin token) */
	"CREATE TABLE secrets ("
	"  name TEXT PRIMARY KEY, value TEXT NOT NULL, created_at INTEGER NOT NULL);",
	/* 7: notification subscriptions and their outbox (rows of an event's transaction) */
	"CREATE TABLE notify_subscriptions ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, env TEXT NOT NULL, service TEXT NOT NULL,"
	"  types TEXT NOT NULL, url TEXT NOT NULL, format TEXT NOT NULL, secret TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL, created_by TEXT NOT NULL, deleted_at INTEGER);"
	"CREATE TABLE notify_outbox ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  subscription INTEGER NOT NULL REFERENCES notify_subscriptions(id),"
	"  type TEXT NOT NULL, payload TEXT NOT NULL, created_at INTEGER NOT NULL,"
	"  attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL, delivered_at INTEGER,"
	"  last_error TEXT);"
	"CREATE INDEX notify_outbox_pending ON notify_outbox (subscription, id) WHERE delivered_at IS NULL;",
	/* 8: guarded flag rollouts and their events (append-only, like a deployment's) */
	"CREATE TABLE flag_rollouts ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, env TEXT NOT NULL, flag TEXT NOT NULL,"
	"  service TEXT NOT NULL, phase TEXT NOT NULL, state TEXT NOT NULL, by TEXT NOT NULL,"
	"  why TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX flag_rollouts_one_active ON flag_rollouts (env, flag) WHERE phase = 'active';"
	"CREATE TABLE flag_rollout_events ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, rollout INTEGER NOT NULL REFERENCES flag_rollouts(id),"
	"  at INTEGER NOT NULL, type TEXT NOT NULL, message TEXT NOT NULL, evidence TEXT);"
	"CREATE INDEX flag_rollout_events_by_rollout ON flag_rollout_events (rollout, id);",
};

static int db_error(struct sqlite_store *s, struct err *e, const char *what)
{
	return err_set(e, "store: %s: %s", what, sqlite3_errmsg(s->db));
}

static int exec_sql(struct sqlite_store *s, const char *sql, struct err *e)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int rc = err_set(e, "store: %s", msg ? msg : "error");
		sqlite3_free(msg);
		return rc;
	}
	return 0;
}

static void sq_close(void *drv)
{
	struct sqlite_store *s = drv;
	if (!s)
		return;
	for (int i = 0; i < s->nstmts; i++)
		sqlite3_finalize(s->stmts[i].st);
	sqlite3_close(s->db);
	free(s);
}

static uint64_t sq_changes(void *drv)
{
	struct sqlite_store *s = drv;
	return (uint64_t)sqlite3_total_changes64(s->db) - s->lease_rows;
}

static int sq_schema_version(void *drv, int *version, struct err *e)
{
	struct sqlite_store *s = drv;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return db_error(s, e, "schema version");
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : db_error(s, e, "schema version");
}

static int sq_begin(void *drv, struct err *e)
{
	struct sqlite_store *s = drv;
	if (s->in_tx)
		return err_set(e, "store: nested transaction");
	if (exec_sql(s, "BEGIN IMMEDIATE", e))
		return -1;
	s->in_tx = 1;
	return 0;
}

static void sq_rollback(void *drv)
{
	struct sqlite_store *s = drv;
	if (s->in_tx)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	s->in_tx = 0;
}

static int sq_commit(void *drv, struct err *e)
{
	struct sqlite_store *s = drv;
	if (!s->in_tx)
		return err_set(e, "store: commit without a transaction");
	int rc = exec_sql(s, "COMMIT", e);
	if (rc)
		sq_rollback(s);
	s->in_tx = 0;
	return rc;
}

static int migrate(struct sqlite_store *s, struct err *e)
{
	int version;
	if (sq_schema_version(s, &version, e))
		return -1;
	int target = (int)(sizeof(migrations) / sizeof(migrations[0]));
	if (version > target)
		return err_set(e, "store: schema version %d is newer than this sluice (%d): upgrade sluice",
			       version, target);
	for (; version < target; version++) {
		char bump[64];
		snprintf(bump, sizeof(bump), "PRAGMA user_version = %d;", version + 1);
		if (sq_begin(s, e))
			return -1;
		if (exec_sql(s, migrations[version], e) || exec_sql(s, bump, e)) {
			sq_rollback(s);
			return -1;
		}
		if (sq_commit(s, e))
			return -1;
	}
	return 0;
}

static int sq_open(void **out, const char *path, struct err *e)
{
	struct sqlite_store *s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(e, "store: out of memory");
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		int rc = err_set(e, "store: could not open '%s': %s", path,
				 s->db ? sqlite3_errmsg(s->db) : "out of memory");
		sqlite3_close(s->db);
		free(s);
		return rc;
	}
	sqlite3_busy_timeout(s->db, 5000);
	if (exec_sql(s, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;", e) ||
	    migrate(s, e)) {
		sq_close(s);
		return -1;
	}
	*out = s;
	return 0;
}

/* --- statement helpers: bind "s" text, "i" int64, "j" json (NULL -> SQL NULL), "b" bytes
 * (two arguments: const void *, size_t) --- */

/* Hands back a statement after use: a kept one is reset for the next caller. */
static void release(struct sqlite_store *s, sqlite3_stmt *st)
{
	for (int i = 0; i < s->nstmts; i++)
		if (s->stmts[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			return;
		}
	sqlite3_finalize(st);
}

static int prepare(struct sqlite_store *s, sqlite3_stmt **st, const char *sql, const char *types, va_list ap,
		   struct err *e)
{
	*st = NULL;
	for (int i = 0; i < s->nstmts && !*st; i++)
		if (s->stmts[i].sql == sql)
			*st = s->stmts[i].st;
	if (!*st) {
		if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
			return db_error(s, e, "prepare");
		if (s->nstmts < STMT_CACHE) {
			s->stmts[s->nstmts].sql = sql;
			s->stmts[s->nstmts++].st = *st;
		}
	}
	for (int i = 0; types[i]; i++) {
		int rc;
		if (types[i] == 's') {
			const char *v = va_arg(ap, const char *);
			rc = v ? sqlite3_bind_text(*st, i + 1, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(*st, i + 1);
		} else if (types[i] == 'i') {
			rc = sqlite3_bind_int64(*st, i + 1, va_arg(ap, int64_t));
		} else if (types[i] == 'b') {
			const void *p = va_arg(ap, const void *);
			size_t n = va_arg(ap, size_t);
			rc = sqlite3_bind_blob64(*st, i + 1, p, n, SQLITE_TRANSIENT);
		} else {
			const json_t *j = va_arg(ap, const json_t *);
			if (j) {
				char *txt = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
				rc = txt ? sqlite3_bind_text(*st, i + 1, txt, -1, free) : SQLITE_NOMEM;
			} else {
				rc = sqlite3_bind_null(*st, i + 1);
			}
		}
		if (rc != SQLITE_OK) {
			int r = db_error(s, e, "bind");
			release(s, *st);
			return r;
		}
	}
	return 0;
}

static int sqlite_prepare(struct sqlite_store *s, sqlite3_stmt **st, const char *sql, struct err *e,
			  const char *types, ...)
{
	va_list ap;
	va_start(ap, types);
	int rc = prepare(s, st, sql, types, ap, e);
	va_end(ap);
	return rc;
}

/* Runs a statement that returns no rows. */
static int run(struct sqlite_store *s, struct err *e, const char *sql, const char *types, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	va_start(ap, types);
	int rc = prepare(s, &st, sql, types, ap, e);
	va_end(ap);
	if (rc)
		return -1;
	rc = sqlite3_step(st);
	s->last_rc = rc == SQLITE_DONE ? 0 : sqlite3_extended_errcode(s->db);
	int r = rc != SQLITE_DONE ? db_error(s, e, "write") : 0;
	release(s, st);
	return r;
}

static json_t *column_json(sqlite3_stmt *st, int i)
{
	const char *name = sqlite3_column_name(st, i);
	switch (sqlite3_column_type(st, i)) {
	case SQLITE_INTEGER:
		return json_integer(sqlite3_column_int64(st, i));
	case SQLITE_FLOAT:
		return json_real(sqlite3_column_double(st, i));
	case SQLITE_NULL:
		return json_null();
	default: {
		const char *txt = (const char *)sqlite3_column_text(st, i);
		/* Columns holding JSON documents are decoded; everything else is text. */
		if (!strcmp(name, "spec") || !strcmp(name, "state") || !strcmp(name, "contract") ||
		    !strcmp(name, "evidence") || !strcmp(name, "scopes") || !strcmp(name, "doc") ||
		    !strcmp(name, "payload")) {
			json_t *j = json_loads(txt, JSON_DECODE_ANY, NULL);
			return j ? j : json_null();
		}
		return json_string(txt);
	}
	}
}

/* Runs a query; rows become objects keyed by column name. With `single`, *out is the first
 * row (STORE_NOTFOUND when none); otherwise an array of all rows. With `column0`, rows are the
 * first column's value instead of objects. */
static int query(struct sqlite_store *s, json_t **out, int single, int column0, struct err *e, const char *sql,
		 const char *types, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	va_start(ap, types);
	int rc = prepare(s, &st, sql, types, ap, e);
	va_end(ap);
	if (rc)
		return -1;
	json_t *arr = json_array();
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *row;
		if (column0) {
			row = column_json(st, 0);
		} else {
			row = json_object();
			for (int i = 0; i < sqlite3_column_count(st); i++)
				json_object_set_new(row, sqlite3_column_name(st, i), column_json(st, i));
		}
		json_array_append_new(arr, row);
		if (single)
			break;
	}
	int bad = rc != SQLITE_ROW && rc != SQLITE_DONE ? db_error(s, e, "read") : 0;
	release(s, st);
	if (bad) {
		json_decref(arr);
		return -1;
	}
	if (single) {
		if (json_array_size(arr) == 0) {
			json_decref(arr);
			return STORE_NOTFOUND;
		}
		*out = json_incref(json_array_get(arr, 0));
		json_decref(arr);
		return 0;
	}
	*out = arr;
	return 0;
}

static int sq_put_manifest(void *drv, const char *kind, const char *name, const json_t *spec,
		       int *changed, struct err *e)
{
	struct sqlite_store *s = drv;
	json_t *old = NULL;
	int rc = query(s, &old, 1, 1, e, "SELECT spec FROM manifests WHERE kind = ? AND name = ?",
		       "ss", kind, name);
	if (rc < 0)
		return -1;
	int same = rc == 0 && json_equal(old, (json_t *)spec);
	json_decref(old);
	if (changed)
		*changed = !same;
	if (same)
		return 0;
	return run(s, e,
		   "INSERT INTO manifests (kind, name, spec, updated_at) VALUES (?, ?, ?, ?) "
		   "ON CONFLICT (kind, name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
		   "ssji", kind, name, spec, store_now_ms());
}

static int sq_get_manifest(void *drv, const char *kind, const char *name, json_t **out, struct err *e)
{
	struct sqlite_store *s = drv;
	return query(s, out, 1, 1, e, "SELECT spec FROM manifests WHERE kind = ? AND name = ?", "ss",
		     kind, name);
}

static int sq_list_manifests(void *drv, const char *kind, json_t **out, struct err *e)
{
	struct sqlite_store *s = drv;
	return query(s, out, 0, 1, e, "SELECT spec FROM manifests WHERE kind = ? ORDER BY name", "s",
		     kind);
}

static int sq_get_release(void *drv, const char *service, const char *version, json_t **out,
		      struct err *e)
{
	struct sqlite_store *s = drv;
	return query(s, out, 1, 0, e,
		     "SELECT service, version, digest, size, contract, created_at FROM releases "
		     "WHERE service = ? AND version = ?",
		     "ss", service, version);
}

static int sq_put_release(void *drv, const char *service, const char *version, const char *digest,
		      int64_t size, const json_t *contract, int *created, struct err *e)
{
	struct sqlite_store *s = drv;
	json_t *old = NULL;
	int rc = sq_get_release(drv, service, version, &old, e);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		const char *d = json_string_value(json_object_get(old, "digest"));
		int same = d && !strcmp(d, digest);
		if (!same)
			err_set(e, "release %s %s already exists with digest %s; a version is "
				   "immutable: push the new artifact under a new version",
				service, version, d ? d : "?");
		json_decref(old);
		if (!same)
			return STORE_CONFLICT;
		*created = 0;
		return 0;
	}
	*created = 1;
	return run(s, e,
		   "INSERT INTO releases (service, version, digest, size, contract, created_at) "
		   "VALUES (?, ?, ?, ?, ?, ?)",
		   "sssiji", service, version, digest, size, contract, store_now_ms());
}

static int sq_list_releases(void *drv, const char *service, json_t **out, struct err *e)
{
	struct sqlite_store *s = drv;
	return query(s, out, 0, 0, e,
		     "SELECT service, version, digest, size, contract IS NOT NULL AS has_contract, "
		     "created_at FROM releases WHERE service = ? ORDER BY created_at, version",
		     "s", service);
}

static int sq_create_deployment(void *drv, const char *service, const char *env, const char *version,
			    const char *kind, const json_t *state, int64_t *id, struct err *e)
{
	struct sqlite_store *s = drv;
	int64_t now = store_now_ms();
	if (run(s, e,
		"INSERT INTO deployments (service, env, version, kind, phase, state, created_at, updated_at) "
		"VALUES (?, ?, ?, ?, 'active', ?, ?, ?)",
		"ssssjii", service, env, version, kind, state, now, now))
		return -1;
	*id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

static int sq_update_deployment(void *drv, int64_t id, const json_t *state, const char *phase,
			    const char *reason, struct err *e)
{
	struct sqlite_store *s = drv;
	if (run(s, e, "UPDATE deployments SET state = ?, phase = ?, reason = ?, updated_at = ? WHERE id = ?",
		"jssii", state, phase, reason, store_now_ms(), id))
		return -1;
	return sqlite3_changes(s->db) == 0 ? STORE_NOTFOUND : 0;
}

static int sq_update_deployment_if(void *drv, int64_t id, const json_t *expected, const json_t *state,
				   const char *phase, const char *reason, struct err *e)
{
	struct sqlite_store *s = drv;
	if (run(s, e,
		"UPDATE deployments SET state = ?, phase = ?, reason = ?, updated_at = ? "
		"WHERE id = ? AND state = ?",
		"jssiij", state, phase, reason, store_now_ms(), id, expected))
		return -1;
	if (sqlite3_changes(s->db) == 1)
		return 0;
	json_t *row = NULL;
	int rc = query(s, &row, 1, 1, e, "SELECT id FROM deployments WHERE id = ?", "i", id);
	json_decref(row);
	return rc ? rc : STORE_CONFLICT;
}

#define DEPLOYMENT_COLUMNS "id, service, env, version, kind, phase, reason, state, created_at, updated_at"

static int sq_get_deployment(void *drv, int64_t id, json_t **out, struct err *e)
{
	struct sqlite_store *s = drv;
	return query(s, out, 1, 0, e, "SELECT " DEPLOYMENT_COLUMNS " FROM deployments WHERE id = ?",
		     "i", id);
}

static int sq_list_deployments(void *drv, const char *service, json_t **out, struct err *e)
{
	struct sqlite_store *s = drv;
	if (service)
		return query(s, out, 0, 0, e,
			     "SELECT " DEPLOYMENT_COLUMNS " FROM deployments WHERE service = ? ORDER BY id DESC",
			     "s", service);
	return query(s, out, 0, 0, e, "SELECT " DEPLOYMENT_COLUMNS " FROM deployments ORDER BY id DESC", "");
}

static int sq_active_deployments(void *drv, json_t **out, struct err *e)
{
	struct sqlite_store *s = drv;
	return query(s, out, 0, 0, e,
		     "SELECT " DEPLOYMENT_COLUMNS " FROM deployments WHERE phase = 'active' ORDER BY id", "");
}

static int sq_add_event(void *drv, int64_t deployment, const char *type, const char *region,
		    const char *message, const json_t *evidence, struct err *e)
{
	struct sqlite_store *s = drv;
	if (run(s, e,
		"INSERT INTO events (deployment, at, type, region, message, evidence) VALUES (?, ?, ?, ?, ?, ?)",
		"iisssj", deployment, store_now_ms(), type, region, message, evidence))
		/* the events table references deployments(id) (foreign_keys = ON) */
		return s->last_rc == SQLITE_CONSTRAINT_FOREIGNKEY ? STORE_NOTFOUND : -1;
	return 0;
}

static int sq_list_events(void *drv, int64_t deployment, json_t **out, struct err *e)
{
	struct sqlite_store *s = drv;
	return query(s, out, 0, 0, e,
		     "SELECT id, at, type, region, message, evidence FROM events WHERE deployment = ? ORDER BY id",
		     "i", deployment);
}

static int sq_events_after(void *drv, int64_t after, int64_t limit, json_t **out, struct err *e)
{
	struct sqlite_store *s = drv;
	if (after < 0) /* the newest ones, turned oldest first */
		return query(s, out, 0, 0, e,
			     "SELECT * FROM (SELECT e.id, e.at, e.deployment, d.service, d.env, e.type, "
			     "e.region, e.message, e.evidence FROM events e JOIN deployments d ON "
			     "d.id = e.deployment ORDER BY e.id DESC LIMIT ?) n ORDER BY id",
			     "i", limit);
	return query(s, out, 0, 0, e,
		     "SELECT e.id, e.at, e.deployment, d.service, d.env, e.type, e.region, e.message, "
		     "e.evidence FROM events e JOIN deployments d ON d.id = e.deployment WHERE e.id > ? "
		     "ORDER BY e.id LIMIT ?",
		     "ii", after, limit);
}

static int sq_set_stable(void *drv, const char *service, const char *env, const char *region,
		     const char *version, int64_t deployment, struct err *e)
{
	struct sqlite_store *s = drv;
	int64_t now = store_now_ms();
	if (run(s, e,
		"INSERT INTO stable (service, env, region, version, deployment, since) VALUES (?, ?, ?, ?, ?, ?) "
		"ON CONFLICT (service, env, region) DO UPDATE SET version = excluded.version, "
		"deployment = excluded.deployment, since = excluded.since",
		"ssssii", service, env, region, version, deployment, now))
		return -1;
	return run(s, e,
		   "INSERT INTO stable_history (service, env, region, version, deployment, at) VALUES (?, ?, ?, ?, ?, ?)",
		   "ssssii", service, env, region, version, deployment, now);
}

static int copy_string(json_t *v, char *buf, size_t len)
{
	const char *str = json_string_value(v);
	snprintf(buf, len, "%s", str ? str : "");
	json_decref(v);
	return 0;
}

static int sq_get_stable(void *drv, const char *service, const char *env, const char *region,
		     char *buf, size_t len, struct err *e)
{
	struct sqlite_store *s = drv;
	json_t *v;
	int rc = query(s, &v, 1, 1, e,
		       "SELECT version FROM stable WHERE service = ? AND env = ? AND region = ?", "sss",
		       service, env, region);
	return rc ? rc : copy_string(v, buf, len);
}

static int sq_previous_stable(void *drv, const char *service, const char *env, const char *region,
			  const char *current, char *buf, size_t len, struct err *e)
{
	struct sqlite_store *s = drv;
	json_t *v;
	int rc = query(s, &v, 1, 1, e,
		       "SELECT version FROM stable_history WHERE service = ? AND env = ? AND region = ? "
		       "AND version <> ? ORDER BY id DESC",
		       "ssss", service, env, region, current);
	return rc ? rc : copy_string(v, buf, len);
}

static int sq_list_stable(void *drv, const char *service, json_t **out, struct err *e)
{
	struct sqlite_store *s = drv;
	if (service)
		return query(s, out, 0, 0, e,
			     "SELECT service, env, region, version, deployment, since FROM stable "
			     "WHERE service = ? ORDER BY service, env, region",
			     "s", service);
	return query(s, out, 0, 0, e,
		     "SELECT service, env, region, version, deployment, since FROM stable ORDER BY service, env, region",
		     "");
}

/* ---- tokens and audit ---- */

static int sq_put_token(void *drv, const struct store_token *t, struct err *e)
{
	struct sqlite_store *s = drv;
	json_t *old = NULL;
	int rc = query(s, &old, 1, 1, e, "SELECT name FROM tokens WHERE name = ? OR hash = ?", "ss",
		       t->name, t->hash);
	json_decref(old);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		err_set(e, "a token named '%s' exists (names of revoked tokens stay taken, for the "
			   "audit log): choose another name", t->name);
		return STORE_CONFLICT;
	}
	return run(s, e,
		   "INSERT INTO tokens (name, hash, scopes, created_at, expires_at, created_by) "
		   "VALUES (?, ?, ?, ?, NULLIF(?, 0), ?)",
		   "ssjiis", t->name, t->hash, t->scopes, store_now_ms(), t->expires_at, t->created_by);
}

#define TOKEN_COLUMNS "name, scopes, created_at, expires_at, revoked_at, created_by"

static int sq_get_token(void *drv, const char *hash, json_t **out, struct err *e)
{
	struct sqlite_store *s = drv;
	return query(s, out, 1, 0, e, "SELECT " TOKEN_COLUMNS " FROM tokens WHERE hash = ?", "s", hash);
}

static int sq_list_tokens(void *drv, json_t **out, struct err *e)
{
	struct sqlite_store *s = drv;
	return query(s, out, 0, 0, e, "SELECT " TOKEN_COLUMNS " FROM tokens ORDER BY name", "");
}

static int sq_revoke_token(void *drv, const char *name, int64_t at, struct err *e)
{
	struct sqlite_store *s = drv;
	if (run(s, e, "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE name = ?", "is", at,
		name))
		return -1;
	return sqlite3_changes(s->db) ? 0 : STORE_NOTFOUND;
}

static int sq_add_audit(void *drv, const struct store_audit *a, struct err *e)
{
	struct sqlite_store *s = drv;
	return run(s, e,
		   "INSERT INTO audit (at, token, action, request, service, env, result, client) "
		   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		   "isssssss", a->at, a->token, a->action, a->request, a->service, a->env, a->result,
		   a->client);
}

static int sq_list_audit(void *drv, const char *service, int64_t since, int64_t limit, json_t **out,
			 struct err *e)
{
	struct sqlite_store *s = drv;
	return query(s, out, 0, 0, e,
		     "SELECT * FROM (SELECT id, at, token, action, request, service, env, result, client "
		     "FROM audit WHERE (?1 IS NULL OR service = ?1) AND at >= ?2 ORDER BY id DESC LIMIT ?3) "
		     "ORDER BY id",
		     "sii", service, since, limit);
}

/* ---- feature flags ---- */

static int sq_put_flags(void *drv, const char *env, const json_t *doc, const char *by, const char *why,
			int64_t *version, struct err *e)
{
	struct sqlite_store *s = drv;
	json_t *cur = NULL;
	int rc = query(s, &cur, 1, 1, e, "SELECT COALESCE(MAX(version), 0) FROM flag_versions WHERE env = ?",
		       "s", env);
	if (rc)
		return -1;
	*version = json_integer_value(cur) + 1;
	json_decref(cur);
	return run(s, e, "INSERT INTO flag_versions (env, version, doc, at, by, why) VALUES (?, ?, ?, ?, ?, ?)",
		   "sijiss", env, *version, doc, store_now_ms(), by, why);
}

static int sq_get_flags(void *drv, const char *env, json_t **out, struct err *e)
{
	struct sqlite_store *s = drv;
	return query(s, out, 1, 0, e,
		     "SELECT env, version, doc, at, by, why FROM flag_versions WHERE env = ? "
		     "ORDER BY version DESC LIMIT 1",
		     "s", env);
}

static int sq_list_flag_versions(void *drv, const char *env, json_t **out, struct err *e)
{
	struct sqlite_store *s = drv;
	return query(s, out, 0, 0, e,
		     "SELECT version, at, by, why FROM flag_versions WHERE env = ? ORDER BY version DESC", "s",
		     env);
}

/* ---- guarded flag rollouts ---- */

#define ROLLOUT_COLUMNS "id, env, flag, service, phase, state, by, why, created_at, updated_at"

static int sq_create_rollout(void *drv, const char *env, const char *flag, const char *service,
			     const json_t *state, const char *by, const char *why, int64_t *id, struct err *e)
{
	struct sqlite_store *s = drv;
	int64_t now = store_now_ms();
	if (run(s, e,
		"INSERT INTO flag_rollouts (env, flag, service, phase, state, by, why, created_at, updated_at) "
		"VALUES (?, ?, ?, 'active', ?, ?, ?, ?, ?)",
		"sssjssii", env, flag, service, state, by, why, now, now))
		/* the partial unique index: one active rollout per flag */
		return s->last_rc == SQLITE_CONSTRAINT_UNIQUE ? (e->msg[0] = '\0', STORE_CONFLICT) : -1;
	*id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

static int sq_update_rollout(void *drv, int64_t id, const json_t *state, const char *phase, struct err *e)
{
	struct sqlite_store *s = drv;
	if (run(s, e, "UPDATE flag_rollouts SET state = ?, phase = ?, updated_at = ? WHERE id = ?", "jsii",
		state, phase, store_now_ms(), id))
		return -1;
	return sqlite3_changes(s->db) == 0 ? STORE_NOTFOUND : 0;
}

static int sq_get_rollout(void *drv, int64_t id, json_t **out, struct err *e)
{
	struct sqlite_store *s = drv;
	return query(s, out, 1, 0, e, "SELECT " ROLLOUT_COLUMNS " FROM flag_rollouts WHERE id = ?", "i", id);
}

static int sq_list_rollouts(void *drv, const char *env, int active_only, json_t **out, struct err *e)
{
	struct sqlite_store *s = drv;
	if (active_only)
		return query(s, out, 0, 0, e,
			     "SELECT " ROLLOUT_COLUMNS " FROM flag_rollouts WHERE (?1 IS NULL OR env = ?1) "
			     "AND phase = 'active' ORDER BY id",
			     "s", env);
	return query(s, out, 0, 0, e,
		     "SELECT " ROLLOUT_COLUMNS " FROM flag_rollouts WHERE (?1 IS NULL OR env = ?1) ORDER BY id DESC",
		     "s", env);
}

static int sq_add_rollout_event(void *drv, int64_t rollout, const char *type, const char *message,
				const json_t *evidence, struct err *e)
{
	struct sqlite_store *s = drv;
	if (run(s, e, "INSERT INTO flag_rollout_events (rollout, at, type, message, evidence) VALUES (?, ?, ?, ?, ?)",
		"iissj", rollout, store_now_ms(), type, message, evidence))
		return s->last_rc == SQLITE_CONSTRAINT_FOREIGNKEY ? STORE_NOTFOUND : -1;
	return 0;
}

static int sq_list_rollout_events(void *drv, int64_t rollout, json_t **out, struct err *e)
{
	struct sqlite_store *s = drv;
	return query(s, out, 0, 0, e,
		     "SELECT id, at, type, message, evidence FROM flag_rollout_events WHERE rollout = ? ORDER BY id",
		     "i", rollout);
}

/* ---- leases (store.h): the same rules as store_pg.c, by this machine's clock ---- */

static int sq_lease_acquire(void *drv, const char *name, const char *holder, int64_t ttl_ms,
			    int64_t *epoch, struct err *e)
{
	struct sqlite_store *s = drv;
	json_t *v = NULL;
	int rc = query(s, &v, 1, 1, e,
		       "INSERT INTO leases (name, holder, epoch, since, expires_at) VALUES (?1, ?2, 1, ?3, ?3 + ?4) "
		       "ON CONFLICT (name) DO UPDATE SET "
		       "epoch = CASE WHEN holder = excluded.holder AND epoch = ?5 AND expires_at > excluded.since "
		       "  THEN epoch ELSE epoch + 1 END, "
		       "since = CASE WHEN holder = excluded.holder AND epoch = ?5 AND expires_at > excluded.since "
		       "  THEN since ELSE excluded.since END, "
		       "holder = excluded.holder, expires_at = excluded.expires_at "
		       "WHERE expires_at <= excluded.since OR holder = excluded.holder "
		       "RETURNING epoch",
		       "ssiii", name, holder, store_now_ms(), ttl_ms, *epoch);
	if (rc < 0)
		return -1;
	s->lease_rows += (uint64_t)sqlite3_changes(s->db);
	if (rc == 0) {
		*epoch = json_integer_value(v);
		json_decref(v);
		return 0;
	}
	json_t *row = NULL;
	rc = query(s, &row, 1, 0, e, "SELECT holder, expires_at - ?2 AS remaining_ms FROM leases WHERE name = ?1",
		   "si", name, store_now_ms());
	if (rc)
		return rc == STORE_NOTFOUND ? err_set(e, "store: lease %s vanished", name) : -1;
	err_set(e, "lease %s is held by %s for %lld ms more", name,
		json_string_value(json_object_get(row, "holder")),
		(long long)json_integer_value(json_object_get(row, "remaining_ms")));
	json_decref(row);
	return STORE_CONFLICT;
}

static int sq_lease_release(void *drv, const char *name, const char *holder, int64_t epoch, struct err *e)
{
	struct sqlite_store *s = drv;
	int64_t now = store_now_ms();
	if (run(s, e, "UPDATE leases SET expires_at = ?4 WHERE name = ?1 AND holder = ?2 AND epoch = ?3 "
		      "AND expires_at > ?4",
		"ssii", name, holder, epoch, now))
		return -1;
	s->lease_rows += (uint64_t)sqlite3_changes(s->db);
	return 0;
}

static int sq_lease_check(void *drv, const char *name, const char *holder, int64_t epoch, struct err *e)
{
	struct sqlite_store *s = drv;
	if (!s->in_tx)
		return err_set(e, "store: check lease %s outside a transaction", name);
	json_t *row = NULL;
	/* BEGIN IMMEDIATE holds the write lock: no one changes the row before the commit */
	int rc = query(s, &row, 1, 0, e,
		       "SELECT holder, epoch, expires_at > ?2 AS live FROM leases WHERE name = ?1", "si", name,
		       store_now_ms());
	if (rc)
		return rc;
	const char *h = json_string_value(json_object_get(row, "holder"));
	int64_t ep = json_integer_value(json_object_get(row, "epoch"));
	int live = json_integer_value(json_object_get(row, "live")) == 1;
	if (h && !strcmp(h, holder) && ep == epoch && live) {
		json_decref(row);
		return 0;
	}
	err_set(e, "lease %s: %s (epoch %lld) no longer holds it: %s holds epoch %lld%s", name, holder,
		(long long)epoch, h ? h : "?", (long long)ep, live ? "" : " (expired)");
	json_decref(row);
	return STORE_FENCED;
}

static int sq_list_leases(void *drv, json_t **out, struct err *e)
{
	return query(drv, out, 0, 0, e,
		     "SELECT name, holder, epoch, since, expires_at, expires_at - ?1 AS remaining_ms "
		     "FROM leases ORDER BY name",
		     "i", store_now_ms());
}

/* ---- artifacts (store.h) ---- */

static int sq_put_artifact_chunk(void *drv, const char *digest, int64_t n, const void *data, size_t len,
				 struct err *e)
{
	return run(drv, e, "INSERT INTO artifact_chunks (digest, n, bytes) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
		   "sib", digest, n, data, len);
}

static int sq_put_artifact(void *drv, const char *digest, int64_t size, int64_t chunks, int *created,
			   struct err *e)
{
	struct sqlite_store *s = drv;
	if (run(s, e,
		"INSERT INTO artifacts (digest, size, chunks, created_at) VALUES (?, ?, ?, ?) "
		"ON CONFLICT DO NOTHING",
		"siii", digest, size, chunks, store_now_ms()))
		return -1;
	*created = sqlite3_changes(s->db) == 1;
	return 0;
}

static int sq_secret(void *drv, const char *name, const char *fresh, json_t **value, struct err *e)
{
	struct sqlite_store *s = drv;
	if (run(s, e, "INSERT INTO secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
		"ssi", name, fresh, store_now_ms()))
		return -1;
	json_t *row = NULL;
	int rc = query(drv, &row, 1, 0, e, "SELECT value FROM secrets WHERE name = ?", "s", name);
	if (rc)
		return rc == STORE_NOTFOUND ? err_set(e, "store: secret '%s' vanished", name) : rc;
	*value = json_incref(json_object_get(row, "value"));
	json_decref(row);
	return 0;
}

static int sq_get_artifact(void *drv, const char *digest, int64_t *size, int64_t *chunks, struct err *e)
{
	json_t *row = NULL;
	int rc = query(drv, &row, 1, 0, e, "SELECT size, chunks FROM artifacts WHERE digest = ?", "s", digest);
	if (rc)
		return rc;
	*size = json_integer_value(json_object_get(row, "size"));
	*chunks = json_integer_value(json_object_get(row, "chunks"));
	json_decref(row);
	return 0;
}

static int sq_get_artifact_chunk(void *drv, const char *digest, int64_t n, void *buf, size_t cap,
				 size_t *len, struct err *e)
{
	struct sqlite_store *s = drv;
	sqlite3_stmt *st;
	if (sqlite_prepare(s, &st, "SELECT bytes FROM artifact_chunks WHERE digest = ? AND n = ?", e, "si",
			   digest, n))
		return -1;
	int rc = sqlite3_step(st);
	int r = 0;
	if (rc == SQLITE_DONE) {
		r = STORE_NOTFOUND;
	} else if (rc != SQLITE_ROW) {
		r = db_error(s, e, "read");
	} else {
		size_t got = (size_t)sqlite3_column_bytes(st, 0);
		if (got > cap)
			r = err_set(e, "store: artifact %s chunk %lld has %zu bytes, more than %zu", digest,
				    (long long)n, got, cap);
		else if (got)
			memcpy(buf, sqlite3_column_blob(st, 0), got);
		*len = got;
	}
	release(s, st);
	return r;
}

/* ---- notifications (store.h) ---- */

static int sq_put_subscription(void *drv, const struct store_subscription *sub, int64_t *id,
			       struct err *e)
{
	struct sqlite_store *s = drv;
	if (run(s, e,
		"INSERT INTO notify_subscriptions (env, service, types, url, format, secret, created_at, "
		"created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		"ssssssis", sub->env, sub->service, sub->types, sub->url, sub->format, sub->secret,
		store_now_ms(), sub->created_by))
		return -1;
	*id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

static int sq_list_subscriptions(void *drv, json_t **out, struct err *e)
{
	return query(drv, out, 0, 0, e,
		     "SELECT id, env, service, types, url, format, secret <> '' AS signed, created_at, "
		     "created_by FROM notify_subscriptions WHERE deleted_at IS NULL ORDER BY id",
		     "");
}

static int sq_delete_subscription(void *drv, int64_t id, struct err *e)
{
	struct sqlite_store *s = drv;
	if (run(s, e, "UPDATE notify_subscriptions SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
		"ii", store_now_ms(), id))
		return -1;
	return sqlite3_changes(s->db) ? 0 : STORE_NOTFOUND;
}

static int sq_notify_enqueue(void *drv, const char *env, const char *service, const char *type,
			     const json_t *payload, int64_t *rows, struct err *e)
{
	struct sqlite_store *s = drv;
	int64_t now = store_now_ms();
	if (run(s, e,
		"INSERT INTO notify_outbox (subscription, type, payload, created_at, next_at) "
		"SELECT id, ?1, ?2, ?3, ?3 FROM notify_subscriptions WHERE deleted_at IS NULL "
		"AND (env = '' OR env = ?4) AND (service = '' OR service = ?5) "
		"AND instr(types, ',' || ?1 || ',') > 0 ORDER BY id",
		"sjiss", type, payload, now, env, service))
		return -1;
	*rows = sqlite3_changes(s->db);
	return 0;
}

static int sq_notify_pending(void *drv, int64_t now_ms, int64_t limit, json_t **out, struct err *e)
{
	/* the head of each live subscription's queue, if it is due */
	return query(drv, out, 0, 0, e,
		     "SELECT o.id, o.subscription, o.type, o.payload, o.created_at, o.attempts, s.url, "
		     "s.format, s.secret FROM notify_subscriptions s JOIN notify_outbox o ON o.id = "
		     "(SELECT MIN(id) FROM notify_outbox WHERE subscription = s.id AND delivered_at IS NULL) "
		     "WHERE s.deleted_at IS NULL AND o.next_at <= ?1 ORDER BY o.id LIMIT ?2",
		     "ii", now_ms, limit);
}

static int sq_notify_mark(void *drv, int64_t id, int delivered, int64_t next_at, const char *error,
			  struct err *e)
{
	struct sqlite_store *s = drv;
	int rc = delivered ? run(s, e,
				 "UPDATE notify_outbox SET delivered_at = ?, attempts = attempts + 1, "
				 "last_error = NULL WHERE id = ?",
				 "ii", store_now_ms(), id)
			   : run(s, e,
				 "UPDATE notify_outbox SET next_at = ?, attempts = attempts + 1, last_error = ? "
				 "WHERE id = ?",
				 "isi", next_at, error, id);
	if (rc)
		return -1;
	int n = sqlite3_changes(s->db);
	s->lease_rows += (uint64_t)n; /* bookkeeping of delivery, not a change of state */
	return n ? 0 : STORE_NOTFOUND;
}

static int sq_notify_backlog(void *drv, int64_t *rows, int64_t *oldest, struct err *e)
{
	json_t *r = NULL;
	if (query(drv, &r, 1, 0, e,
		  "SELECT COUNT(*) AS n, COALESCE(MIN(o.created_at), 0) AS oldest FROM notify_outbox o "
		  "JOIN notify_subscriptions s ON s.id = o.subscription "
		  "WHERE o.delivered_at IS NULL AND s.deleted_at IS NULL",
		  ""))
		return -1;
	*rows = json_integer_value(json_object_get(r, "n"));
	*oldest = json_integer_value(json_object_get(r, "oldest"));
	json_decref(r);
	return 0;
}

const struct store_ops store_sqlite_ops = {
	.scheme = "sqlite",
	.shared = 0,
	.open = sq_open,
	.close = sq_close,
	.schema_version = sq_schema_version,
	.sole_writer = 1, /* the server that opens it is the only writer (docs/store.md) */
	.changes = sq_changes,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.put_manifest = sq_put_manifest,
	.get_manifest = sq_get_manifest,
	.list_manifests = sq_list_manifests,
	.put_release = sq_put_release,
	.get_release = sq_get_release,
	.list_releases = sq_list_releases,
	.create_deployment = sq_create_deployment,
	.update_deployment = sq_update_deployment,
	.update_deployment_if = sq_update_deployment_if,
	.get_deployment = sq_get_deployment,
	.list_deployments = sq_list_deployments,
	.active_deployments = sq_active_deployments,
	.add_event = sq_add_event,
	.list_events = sq_list_events,
	.events_after = sq_events_after,
	.set_stable = sq_set_stable,
	.get_stable = sq_get_stable,
	.previous_stable = sq_previous_stable,
	.list_stable = sq_list_stable,
	.put_token = sq_put_token,
	.get_token = sq_get_token,
	.list_tokens = sq_list_tokens,
	.revoke_token = sq_revoke_token,
	.add_audit = sq_add_audit,
	.list_audit = sq_list_audit,
	.put_flags = sq_put_flags,
	.get_flags = sq_get_flags,
	.list_flag_versions = sq_list_flag_versions,
	.create_rollout = sq_create_rollout,
	.update_rollout = sq_update_rollout,
	.get_rollout = sq_get_rollout,
	.list_rollouts = sq_list_rollouts,
	.add_rollout_event = sq_add_rollout_event,
	.list_rollout_events = sq_list_rollout_events,
	.lease_acquire = sq_lease_acquire,
	.lease_release = sq_lease_release,
	.lease_check = sq_lease_check,
	.list_leases = sq_list_leases,
	.put_artifact_chunk = sq_put_artifact_chunk,
	.put_artifact = sq_put_artifact,
	.get_artifact = sq_get_artifact,
	.get_artifact_chunk = sq_get_artifact_chunk,
	.secret = sq_secret,
	.put_subscription = sq_put_subscription,
	.list_subscriptions = sq_list_subscriptions,
	.delete_subscription = sq_delete_subscription,
	.notify_enqueue = sq_notify_enqueue,
	.notify_pending = sq_notify_pending,
	.notify_mark = sq_notify_mark,
	.notify_backlog = sq_notify_backlog,
};
