#include "store/store.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Prepared statements are kept and reused: the reconciler asks the same few questions several
 * times per service on every tick, and compiling the SQL was a quarter of its time. */
#define STMT_CACHE 64

struct store {
	sqlite3 *db;
	int in_tx;
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
};

int64_t store_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int db_error(store *s, struct err *e, const char *what)
{
	return err_set(e, "store: %s: %s", what, sqlite3_errmsg(s->db));
}

static int exec_sql(store *s, const char *sql, struct err *e)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int rc = err_set(e, "store: %s", msg ? msg : "error");
		sqlite3_free(msg);
		return rc;
	}
	return 0;
}

static int migrate(store *s, struct err *e)
{
	int version = store_schema_version(s);
	int target = (int)(sizeof(migrations) / sizeof(migrations[0]));
	if (version > target)
		return err_set(e, "store: schema version %d is newer than this sluice (%d): upgrade sluice",
			       version, target);
	for (; version < target; version++) {
		char bump[64];
		snprintf(bump, sizeof(bump), "PRAGMA user_version = %d;", version + 1);
		if (store_begin(s, e))
			return -1;
		if (exec_sql(s, migrations[version], e) || exec_sql(s, bump, e)) {
			store_rollback(s);
			return -1;
		}
		if (store_commit(s, e))
			return -1;
	}
	return 0;
}

int store_open(store **out, const char *path, struct err *e)
{
	store *s = calloc(1, sizeof(*s));
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
		store_close(s);
		return -1;
	}
	*out = s;
	return 0;
}

void store_close(store *s)
{
	if (!s)
		return;
	for (int i = 0; i < s->nstmts; i++)
		sqlite3_finalize(s->stmts[i].st);
	sqlite3_close(s->db);
	free(s);
}

uint64_t store_changes(store *s)
{
	return (uint64_t)sqlite3_total_changes64(s->db);
}

int store_schema_version(store *s)
{
	sqlite3_stmt *st;
	int v = -1;
	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	return v;
}

int store_begin(store *s, struct err *e)
{
	if (s->in_tx)
		return err_set(e, "store: nested transaction");
	if (exec_sql(s, "BEGIN IMMEDIATE", e))
		return -1;
	s->in_tx = 1;
	return 0;
}

int store_commit(store *s, struct err *e)
{
	int rc = exec_sql(s, "COMMIT", e);
	if (rc)
		store_rollback(s);
	s->in_tx = 0;
	return rc;
}

void store_rollback(store *s)
{
	if (s->in_tx)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	s->in_tx = 0;
}

/* --- statement helpers: bind "s" text, "i" int64, "j" json (NULL -> SQL NULL) --- */

/* Hands back a statement after use: a kept one is reset for the next caller. */
static void release(store *s, sqlite3_stmt *st)
{
	for (int i = 0; i < s->nstmts; i++)
		if (s->stmts[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			return;
		}
	sqlite3_finalize(st);
}

static int prepare(store *s, sqlite3_stmt **st, const char *sql, const char *types, va_list ap,
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

/* Runs a statement that returns no rows. */
static int run(store *s, struct err *e, const char *sql, const char *types, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	va_start(ap, types);
	int rc = prepare(s, &st, sql, types, ap, e);
	va_end(ap);
	if (rc)
		return -1;
	rc = sqlite3_step(st);
	int r = rc != SQLITE_DONE ? db_error(s, e, "write") : 0;
	release(s, st);
	return r;
	return 0;
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
		    !strcmp(name, "evidence")) {
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
static int query(store *s, json_t **out, int single, int column0, struct err *e, const char *sql,
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

int store_put_manifest(store *s, const char *kind, const char *name, const json_t *spec,
		       int *changed, struct err *e)
{
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

int store_get_manifest(store *s, const char *kind, const char *name, json_t **out, struct err *e)
{
	return query(s, out, 1, 1, e, "SELECT spec FROM manifests WHERE kind = ? AND name = ?", "ss",
		     kind, name);
}

int store_list_manifests(store *s, const char *kind, json_t **out, struct err *e)
{
	return query(s, out, 0, 1, e, "SELECT spec FROM manifests WHERE kind = ? ORDER BY name", "s",
		     kind);
}

int store_put_release(store *s, const char *service, const char *version, const char *digest,
		      int64_t size, const json_t *contract, int *created, struct err *e)
{
	json_t *old = NULL;
	int rc = store_get_release(s, service, version, &old, e);
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
			return -1;
		*created = 0;
		return 0;
	}
	*created = 1;
	return run(s, e,
		   "INSERT INTO releases (service, version, digest, size, contract, created_at) "
		   "VALUES (?, ?, ?, ?, ?, ?)",
		   "sssiji", service, version, digest, size, contract, store_now_ms());
}

int store_get_release(store *s, const char *service, const char *version, json_t **out,
		      struct err *e)
{
	return query(s, out, 1, 0, e,
		     "SELECT service, version, digest, size, contract, created_at FROM releases "
		     "WHERE service = ? AND version = ?",
		     "ss", service, version);
}

int store_list_releases(store *s, const char *service, json_t **out, struct err *e)
{
	return query(s, out, 0, 0, e,
		     "SELECT service, version, digest, size, contract IS NOT NULL AS has_contract, "
		     "created_at FROM releases WHERE service = ? ORDER BY created_at, version",
		     "s", service);
}

int store_create_deployment(store *s, const char *service, const char *env, const char *version,
			    const char *kind, const json_t *state, int64_t *id, struct err *e)
{
	int64_t now = store_now_ms();
	if (run(s, e,
		"INSERT INTO deployments (service, env, version, kind, phase, state, created_at, updated_at) "
		"VALUES (?, ?, ?, ?, 'active', ?, ?, ?)",
		"ssssjii", service, env, version, kind, state, now, now))
		return -1;
	*id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

int store_update_deployment(store *s, int64_t id, const json_t *state, const char *phase,
			    const char *reason, struct err *e)
{
	return run(s, e,
		   "UPDATE deployments SET state = ?, phase = ?, reason = ?, updated_at = ? WHERE id = ?",
		   "jssii", state, phase, reason, store_now_ms(), id);
}

#define DEPLOYMENT_COLUMNS "id, service, env, version, kind, phase, reason, state, created_at, updated_at"

int store_get_deployment(store *s, int64_t id, json_t **out, struct err *e)
{
	return query(s, out, 1, 0, e, "SELECT " DEPLOYMENT_COLUMNS " FROM deployments WHERE id = ?",
		     "i", id);
}

int store_list_deployments(store *s, const char *service, json_t **out, struct err *e)
{
	if (service)
		return query(s, out, 0, 0, e,
			     "SELECT " DEPLOYMENT_COLUMNS " FROM deployments WHERE service = ? ORDER BY id DESC",
			     "s", service);
	return query(s, out, 0, 0, e, "SELECT " DEPLOYMENT_COLUMNS " FROM deployments ORDER BY id DESC", "");
}

int store_active_deployments(store *s, json_t **out, struct err *e)
{
	return query(s, out, 0, 0, e,
		     "SELECT " DEPLOYMENT_COLUMNS " FROM deployments WHERE phase = 'active' ORDER BY id", "");
}

int store_add_event(store *s, int64_t deployment, const char *type, const char *region,
		    const char *message, const json_t *evidence, struct err *e)
{
	return run(s, e,
		   "INSERT INTO events (deployment, at, type, region, message, evidence) VALUES (?, ?, ?, ?, ?, ?)",
		   "iisssj", deployment, store_now_ms(), type, region, message, evidence);
}

int store_list_events(store *s, int64_t deployment, json_t **out, struct err *e)
{
	return query(s, out, 0, 0, e,
		     "SELECT id, at, type, region, message, evidence FROM events WHERE deployment = ? ORDER BY id",
		     "i", deployment);
}

int store_set_stable(store *s, const char *service, const char *env, const char *region,
		     const char *version, int64_t deployment, struct err *e)
{
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

int store_get_stable(store *s, const char *service, const char *env, const char *region,
		     char *buf, size_t len, struct err *e)
{
	json_t *v;
	int rc = query(s, &v, 1, 1, e,
		       "SELECT version FROM stable WHERE service = ? AND env = ? AND region = ?", "sss",
		       service, env, region);
	return rc ? rc : copy_string(v, buf, len);
}

int store_previous_stable(store *s, const char *service, const char *env, const char *region,
			  const char *current, char *buf, size_t len, struct err *e)
{
	json_t *v;
	int rc = query(s, &v, 1, 1, e,
		       "SELECT version FROM stable_history WHERE service = ? AND env = ? AND region = ? "
		       "AND version <> ? ORDER BY id DESC",
		       "ssss", service, env, region, current);
	return rc ? rc : copy_string(v, buf, len);
}

int store_list_stable(store *s, const char *service, json_t **out, struct err *e)
{
	if (service)
		return query(s, out, 0, 0, e,
			     "SELECT service, env, region, version, deployment, since FROM stable "
			     "WHERE service = ? ORDER BY service, env, region",
			     "s", service);
	return query(s, out, 0, 0, e,
		     "SELECT service, env, region, version, deployment, since FROM stable ORDER BY service, env, region",
		     "");
}
