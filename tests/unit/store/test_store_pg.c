/*
 * The PostgreSQL store on a real server: the conformance suite, and what is the driver's own
 * (migrations, the append-only audit log in SQL, reconnecting after a restart, never retrying
 * a write whose outcome is unknown, other sessions' commits moving store_changes).
 *
 * Runs under tests/support/pg-cluster.sh (meson does it), which starts a throwaway cluster and
 * exports SLUICE_PG_URL, SLUICE_PG_DIR and SLUICE_PG_FIXTURE. Each test gets a fresh schema of
 * its own (the location's search_path names it). Some tests restart the server, so the
 * binary runs its tests one at a time (--jobs=1, in meson.build).
 */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conformance.h"
#include "store/store.h"

#define OK(call) cr_assert_eq((call), 0, "%s: %s", #call, e.msg)

static char schema[64], location[512];

static const char *url(void)
{
	const char *u = getenv("SLUICE_PG_URL");
	if (!u)
		cr_skip_test("SLUICE_PG_URL is not set: run under tests/support/pg-cluster.sh run -- ...");
	return u;
}

static void quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* A connection of the test's own, as an operator with psql would have. */
static PGconn *admin(void)
{
	PGconn *c = PQconnectdb(url());
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
	PQsetNoticeProcessor(c, quiet, NULL);
	return c;
}

/* Runs SQL on c; returns the first cell of its result ("" when none), or NULL on an error
 * (then err, when not NULL, gets the message). */
static const char *sql(PGconn *c, const char *q, char *err, size_t errlen)
{
	static char cell[256];
	PGresult *r = PQexec(c, q);
	ExecStatusType st = PQresultStatus(r);
	const char *out = NULL;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		snprintf(cell, sizeof(cell), "%s", PQntuples(r) && PQnfields(r) ? PQgetvalue(r, 0, 0) : "");
		out = cell;
	} else if (err) {
		snprintf(err, errlen, "%s", PQresultErrorMessage(r));
	}
	PQclear(r);
	return out;
}

static void must(PGconn *c, const char *q)
{
	char err[512] = "";
	cr_assert_not_null(sql(c, q, err, sizeof(err)), "%s: %s", q, err);
}

static void drop_schema(void)
{
	if (!schema[0] || !getenv("SLUICE_PG_URL"))
		return;
	PGconn *c = PQconnectdb(getenv("SLUICE_PG_URL"));
	PQsetNoticeProcessor(c, quiet, NULL);
	char q[128];
	snprintf(q, sizeof(q), "DROP SCHEMA IF EXISTS %s CASCADE", schema);
	PQclear(PQexec(c, q));
	PQfinish(c);
}

static store *pg_reopen(void)
{
	store *s;
	struct err e;
	cr_assert_eq(store_open(&s, location, &e), 0, "%s", e.msg);
	return s;
}

static store *pg_fresh(void)
{
	static int n;
	const char *u = url();
	drop_schema();
	snprintf(schema, sizeof(schema), "t%d_%d", (int)getpid(), n++);
	PGconn *c = admin();
	char q[128];
	snprintf(q, sizeof(q), "CREATE SCHEMA %s", schema);
	must(c, q);
	PQfinish(c);
	snprintf(location, sizeof(location), "%s%coptions=-csearch_path%%3D%s", u,
		 strchr(u, '?') ? '&' : '?', schema);
	return pg_reopen();
}

static const struct store_factory pg_factory = {pg_fresh, pg_reopen};

CONFORMANCE_TESTS(store_pg, &pg_factory, .fini = drop_schema, .timeout = 60)

/* An admin connection whose search_path is the test's schema. */
static PGconn *admin_in_schema(void)
{
	PGconn *c = admin();
	char q[128];
	snprintf(q, sizeof(q), "SET search_path = %s", schema);
	must(c, q);
	return c;
}

static void restart_server(void)
{
	const char *fixture = getenv("SLUICE_PG_FIXTURE"), *dir = getenv("SLUICE_PG_DIR");
	cr_assert(fixture && dir, "SLUICE_PG_FIXTURE and SLUICE_PG_DIR (pg-cluster.sh run sets them)");
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "'%s' restart '%s'", fixture, dir);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* ---- the driver's own ---- */

Test(store_pg, both_uri_schemes_and_a_failed_connection_that_keeps_the_password, .fini = drop_schema)
{
	store_close(pg_fresh());
	store *s;
	struct err e;
	/* "postgres://" and "postgresql://" name the same driver */
	char alt[600];
	snprintf(alt, sizeof(alt), "postgres%s", strchr(location, ':'));
	OK(store_open(&s, alt, &e));
	int version;
	OK(store_schema_version(s, &version, &e));
	cr_assert_eq(version, STORE_SCHEMA_VERSION);
	store_close(s);
	cr_assert_eq(store_open(&s, "postgresql://sluice:hunter2@127.0.0.1:1/none?connect_timeout=2", &e), -1);
	cr_assert(store_failed(&e), "%s", e.msg);
	cr_assert(strstr(e.msg, "could not connect"), "%s", e.msg);
	cr_assert(strstr(e.msg, "127.0.0.1:1"), "%s", e.msg);
	cr_assert_null(strstr(e.msg, "hunter2"), "no password in messages: %s", e.msg);
}

Test(store_pg, migrating_an_empty_database_and_a_current_one, .fini = drop_schema)
{
	store *s = pg_fresh(); /* an empty schema: every migration ran */
	store_close(s);
	PGconn *c = admin_in_schema();
	char before[64], xmin[64];
	cr_assert_str_eq(sql(c, "SELECT count(*) FROM sluice_schema", NULL, 0), "1");
	char want[16];
	snprintf(want, sizeof(want), "%d", STORE_SCHEMA_VERSION);
	cr_assert_str_eq(sql(c, "SELECT version FROM sluice_schema", NULL, 0), want);
	snprintf(xmin, sizeof(xmin), "%s", sql(c, "SELECT xmin FROM sluice_schema", NULL, 0));
	snprintf(before, sizeof(before), "%s",
		 sql(c, "SELECT md5(string_agg(oid::text || relname, ',' ORDER BY relname)) FROM pg_class WHERE "
			"relnamespace = current_schema()::regnamespace", NULL, 0));
	cr_assert_eq(strlen(before), 32, "%s", before);
	/* opening at the current version writes nothing and recreates nothing */
	s = pg_reopen();
	struct err e;
	int version;
	OK(store_schema_version(s, &version, &e));
	cr_assert_eq(version, STORE_SCHEMA_VERSION);
	store_close(s);
	cr_assert_str_eq(sql(c, "SELECT xmin FROM sluice_schema", NULL, 0), xmin, "the version row was not rewritten");
	cr_assert_str_eq(sql(c, "SELECT md5(string_agg(oid::text || relname, ',' ORDER BY relname)) FROM pg_class WHERE "
				"relnamespace = current_schema()::regnamespace", NULL, 0),
			 before, "the same tables and indexes");
	/* a newer schema is refused, not downgraded */
	must(c, "UPDATE sluice_schema SET version = 99");
	cr_assert_eq(store_open(&s, location, &e), -1);
	cr_assert(strstr(e.msg, "newer"), "%s", e.msg);
	PQfinish(c);
}

/* The audit log is append-only below the API too: SQL typed into psql cannot edit it. */
Test(store_pg, the_audit_log_refuses_updates_deletes_and_truncate, .fini = drop_schema)
{
	store *s = pg_fresh();
	struct err e;
	struct store_audit a = {.token = "ci", .action = "deploy", .request = "POST /v1/deployments",
				.result = "ok", .client = "127.0.0.1:1"};
	OK(store_add_audit(s, &a, &e));
	PGconn *c = admin_in_schema();
	const char *edits[] = {"UPDATE audit SET token = 'someone'", "DELETE FROM audit",
			       "TRUNCATE audit"};
	for (size_t i = 0; i < 3; i++) {
		char err[512] = "";
		cr_expect_null(sql(c, edits[i], err, sizeof(err)), "%s was allowed", edits[i]);
		cr_expect(strstr(err, "append-only"), "%s: %s", edits[i], err);
	}
	PQfinish(c);
	json_t *out = NULL;
	OK(store_list_audit(s, NULL, 0, 10, &out, &e));
	cr_expect_eq(json_array_size(out), 1);
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(out, 0), "token")), "ci");
	json_decref(out);
	store_close(s);
}

Test(store_pg, reconnects_after_a_restart_between_operations, .fini = drop_schema, .timeout = 90)
{
	store *s = pg_fresh();
	struct err e;
	json_t *spec = json_pack("{s:s}", "name", "a"), *out = NULL;
	OK(store_put_manifest(s, "Service", "a", spec, NULL, &e));
	uint64_t c0 = store_changes(s);
	restart_server();
	/* the session the restart ended is noticed before anything is sent: a read works ... */
	OK(store_get_manifest(s, "Service", "a", &out, &e));
	cr_assert(json_equal(out, spec));
	json_decref(out);
	cr_assert_gt(store_changes(s), c0, "a new session may have missed notifications");
	restart_server();
	/* ... and so does a write, and a transaction */
	OK(store_set_stable(s, "a", "prod", "r1", "v1", 1, &e));
	restart_server();
	OK(store_begin(s, &e));
	int64_t id;
	OK(store_create_deployment(s, "a", "prod", "v1", "deploy", spec, &id, &e));
	OK(store_add_event(s, id, "check", NULL, "m", NULL, &e));
	OK(store_commit(s, &e));
	OK(store_list_events(s, id, &out, &e));
	cr_assert_eq(json_array_size(out), 1);
	json_decref(out);
	json_decref(spec);
	store_close(s);
}

Test(store_pg, a_transaction_cut_by_a_restart_fails_and_is_not_retried, .fini = drop_schema,
     .timeout = 90)
{
	store *s = pg_fresh();
	struct err e;
	json_t *spec = json_pack("{s:s}", "name", "a"), *out = NULL;
	OK(store_begin(s, &e));
	int64_t id;
	OK(store_create_deployment(s, "a", "prod", "v1", "deploy", spec, &id, &e));
	restart_server();
	cr_assert_eq(store_add_event(s, id, "check", NULL, "m", NULL, &e), -1);
	cr_assert(store_failed(&e), "%s", e.msg);
	cr_assert(strstr(e.msg, "connection lost during a transaction"), "%s", e.msg);
	cr_assert_eq(store_set_stable(s, "a", "prod", "r1", "v1", id, &e), -1, "still the lost transaction");
	cr_assert_eq(store_commit(s, &e), -1, "the commit reports the loss");
	cr_assert(store_failed(&e), "%s", e.msg);
	/* the transaction ended with the commit; the handle reconnects and nothing was written */
	OK(store_list_deployments(s, NULL, &out, &e));
	cr_assert_eq(json_array_size(out), 0, "no half of the transaction was replayed");
	json_decref(out);
	char v[16];
	cr_assert_eq(store_get_stable(s, "a", "prod", "r1", v, sizeof(v), &e), STORE_NOTFOUND);
	/* the same with a rollback instead of the commit */
	OK(store_begin(s, &e));
	OK(store_put_manifest(s, "Service", "a", spec, NULL, &e));
	restart_server();
	cr_assert_eq(store_put_manifest(s, "Service", "b", spec, NULL, &e), -1);
	store_rollback(s);
	cr_assert_eq(store_get_manifest(s, "Service", "a", &out, &e), STORE_NOTFOUND, "%s", e.msg);
	json_decref(spec);
	store_close(s);
}

/* ---- a session cut while its statement runs ----
 *
 * The test holds a lock on the manifests table so that the store's statement waits; a helper
 * thread terminates the waiting backend (as a failover or an administrator would), then
 * releases the lock. A read is repeated on a new connection; a write is not. */

struct cutter {
	PGconn *locker;
	int terminated;
};

static void *cut(void *arg)
{
	struct cutter *ct = arg;
	PGconn *c = admin();
	for (int i = 0; i < 500 && !ct->terminated; i++) {
		const char *n = sql(c, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
				       "WHERE application_name = 'sluice' AND wait_event_type = 'Lock'",
				    NULL, 0);
		ct->terminated = n && atoi(n) > 0;
		if (!ct->terminated)
			usleep(10000);
	}
	PQfinish(c);
	PQclear(PQexec(ct->locker, "ROLLBACK"));
	return NULL;
}

static void with_statement_cut(store *s, const char *table, int (*op)(store *, struct err *),
			       int want, const char *want_msg)
{
	struct cutter ct = {admin_in_schema(), 0};
	char q[128];
	snprintf(q, sizeof(q), "LOCK TABLE %s IN ACCESS EXCLUSIVE MODE", table);
	must(ct.locker, "BEGIN");
	must(ct.locker, q);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, cut, &ct), 0);
	struct err e = {""};
	int rc = op(s, &e);
	pthread_join(t, NULL);
	PQfinish(ct.locker);
	cr_assert(ct.terminated, "the helper found the waiting statement");
	cr_assert_eq(rc, want, "rc %d: %s", rc, e.msg);
	if (want_msg) {
		cr_assert(store_failed(&e), "%s", e.msg);
		cr_assert(strstr(e.msg, want_msg), "%s", e.msg);
	}
}

static int read_manifest(store *s, struct err *e)
{
	json_t *out = NULL;
	int rc = store_get_manifest(s, "Service", "a", &out, e);
	json_decref(out);
	return rc;
}

static int write_stable(store *s, struct err *e)
{
	return store_set_stable(s, "a", "prod", "r1", "v1", 1, e);
}

Test(store_pg, a_cut_read_is_repeated_and_a_cut_write_is_reported, .fini = drop_schema, .timeout = 60)
{
	store *s = pg_fresh();
	struct err e;
	json_t *spec = json_pack("{s:s}", "name", "a");
	OK(store_put_manifest(s, "Service", "a", spec, NULL, &e));
	json_decref(spec);
	with_statement_cut(s, "manifests", read_manifest, 0, NULL);
	/* the write's statement is prepared already, so that the cut hits its execution (a
	 * prepare that is cut was never run: it is repeated, and that is right) */
	OK(store_set_stable(s, "a", "prod", "r0", "v0", 1, &e));
	with_statement_cut(s, "stable", write_stable, -1, "outcome is unknown");
	/* the write was not repeated behind the caller's back (the server rolled it back) */
	char v[16];
	cr_assert_eq(store_get_stable(s, "a", "prod", "r1", v, sizeof(v), &e), STORE_NOTFOUND, "%s", e.msg);
	OK(write_stable(s, &e));
	store_close(s);
}

/* Another session's commit moves this handle's number (the catalog's cache key). */
Test(store_pg, another_writers_commit_moves_changes, .fini = drop_schema, .timeout = 30)
{
	store *a = pg_fresh(), *b = pg_reopen();
	struct err e;
	uint64_t c0 = store_changes(a);
	json_t *spec = json_pack("{s:s}", "name", "x");
	OK(store_put_manifest(b, "Service", "x", spec, NULL, &e));
	json_decref(spec);
	int moved = 0;
	for (int i = 0; i < 200 && !moved; i++) {
		moved = store_changes(a) > c0;
		if (!moved)
			usleep(10000);
	}
	cr_assert(moved, "a commit by another session reached this handle within 2 s");
	/* and an audit row, which nothing caches, does not */
	uint64_t c1 = store_changes(a);
	struct store_audit au = {.token = "ci", .action = "deploy", .request = "GET /", .result = "ok",
				 .client = "::1"};
	OK(store_add_audit(b, &au, &e));
	usleep(200000);
	cr_assert_eq(store_changes(a), c1);
	store_close(a);
	store_close(b);
}
