/*
 * The SQLite store: the conformance suite, what is SQLite's own (schema migrations, the
 * location string), and that a failed read never reads as "not found".
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conformance.h"
#include "store/store.h"

#include <sqlite3.h>

static char path[256];

static void cleanup(void)
{
	char p[300];
	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
}

static store *sqlite_reopen(void)
{
	store *s;
	struct err e;
	char loc[300];
	snprintf(loc, sizeof(loc), "sqlite:%s", path);
	cr_assert_eq(store_open(&s, loc, &e), 0, "%s", e.msg);
	return s;
}

static store *sqlite_fresh(void)
{
	snprintf(path, sizeof(path), "/tmp/sluice-store-test-%d.db", getpid());
	cleanup();
	return sqlite_reopen();
}

static const struct store_factory sqlite_factory = {sqlite_fresh, sqlite_reopen};

CONFORMANCE_TESTS(store_sqlite, &sqlite_factory, .fini = cleanup)

Test(store_sqlite, a_plain_path_is_sqlite_and_an_unknown_scheme_is_refused, .fini = cleanup)
{
	store_close(sqlite_fresh());
	store *s;
	struct err e;
	cr_assert_eq(store_open(&s, path, &e), 0, "%s", e.msg);
	int version;
	cr_assert_eq(store_schema_version(s, &version, &e), 0, "%s", e.msg);
	cr_assert_eq(version, STORE_SCHEMA_VERSION);
	store_close(s);
	cr_assert_eq(store_open(&s, "mysql://db.example/sluice", &e), -1);
	cr_assert(strstr(e.msg, "'mysql:'"), "%s", e.msg);
	cr_assert_eq(store_open(&s, "sqlite:/nonexistent-dir/x.db", &e), -1);
	cr_assert(strstr(e.msg, "/nonexistent-dir/x.db"), "%s", e.msg);
}

/* The audit log is append-only below the API too: SQL typed into the file cannot edit it. */
Test(store_sqlite, the_audit_log_refuses_updates_and_deletes, .fini = cleanup)
{
	store *s = sqlite_fresh();
	struct err e;
	struct store_audit a = {.token = "ci", .action = "deploy", .request = "POST /v1/deployments",
				.result = "ok", .client = "127.0.0.1:1"};
	cr_assert_eq(store_add_audit(s, &a, &e), 0, "%s", e.msg);
	store_close(s);
	sqlite3 *db;
	cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
	char *msg = NULL;
	cr_expect_neq(sqlite3_exec(db, "UPDATE audit SET token = 'someone'", NULL, NULL, &msg), SQLITE_OK);
	cr_expect(msg && strstr(msg, "append-only"), "%s", msg ? msg : "");
	sqlite3_free(msg);
	msg = NULL;
	cr_expect_neq(sqlite3_exec(db, "DELETE FROM audit", NULL, NULL, &msg), SQLITE_OK);
	sqlite3_free(msg);
	sqlite3_close(db);
	s = sqlite_reopen();
	json_t *out = NULL;
	cr_assert_eq(store_list_audit(s, NULL, 0, 10, &out, &e), 0, "%s", e.msg);
	cr_expect_eq(json_array_size(out), 1);
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(out, 0), "token")), "ci");
	json_decref(out);
	store_close(s);
}

Test(store_sqlite, refuses_a_newer_schema, .fini = cleanup)
{
	store_close(sqlite_fresh());
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "sqlite3 %s 'PRAGMA user_version = 99' 2>/dev/null", path);
	if (system(cmd) != 0)
		cr_skip_test("sqlite3 shell not installed");
	store *s;
	struct err e;
	cr_assert_eq(store_open(&s, path, &e), -1);
	cr_assert(strstr(e.msg, "newer"), "%s", e.msg);
}

/* ---- a failed read is not "not found" ----
 *
 * A fault-injecting driver built from the ops table: it forwards every operation to a real
 * store, except the one named in `fail`, which fails as a broken connection would. */

static store *inner;
static const char *fail_op;

#define FAIL_IF(op, e)                                                      \
	do {                                                                \
		if (fail_op && !strcmp(fail_op, op))                        \
			return err_set(e, "store: connection lost (injected)"); \
	} while (0)

static void f_close(void *drv) { store_close(inner); inner = NULL; }
static uint64_t f_changes(void *drv) { return store_changes(inner); }
static void f_rollback(void *drv) { store_rollback(inner); }
static int f_schema_version(void *drv, int *v, struct err *e)
{
	FAIL_IF("schema_version", e);
	return store_schema_version(inner, v, e);
}
static int f_begin(void *drv, struct err *e) { FAIL_IF("begin", e); return store_begin(inner, e); }
static int f_commit(void *drv, struct err *e) { FAIL_IF("commit", e); return store_commit(inner, e); }
static int f_put_manifest(void *drv, const char *k, const char *n, const json_t *spec, int *ch, struct err *e)
{
	FAIL_IF("put_manifest", e);
	return store_put_manifest(inner, k, n, spec, ch, e);
}
static int f_get_manifest(void *drv, const char *k, const char *n, json_t **out, struct err *e)
{
	FAIL_IF("get_manifest", e);
	return store_get_manifest(inner, k, n, out, e);
}
static int f_list_manifests(void *drv, const char *k, json_t **out, struct err *e)
{
	FAIL_IF("list_manifests", e);
	return store_list_manifests(inner, k, out, e);
}
static int f_put_release(void *drv, const char *s, const char *v, const char *d, int64_t size,
			 const json_t *c, int *created, struct err *e)
{
	FAIL_IF("put_release", e);
	return store_put_release(inner, s, v, d, size, c, created, e);
}
static int f_get_release(void *drv, const char *s, const char *v, json_t **out, struct err *e)
{
	FAIL_IF("get_release", e);
	return store_get_release(inner, s, v, out, e);
}
static int f_list_releases(void *drv, const char *s, json_t **out, struct err *e)
{
	FAIL_IF("list_releases", e);
	return store_list_releases(inner, s, out, e);
}
static int f_create_deployment(void *drv, const char *s, const char *env, const char *v, const char *k,
			       const json_t *st, int64_t *id, struct err *e)
{
	FAIL_IF("create_deployment", e);
	return store_create_deployment(inner, s, env, v, k, st, id, e);
}
static int f_update_deployment(void *drv, int64_t id, const json_t *st, const char *ph, const char *r,
			       struct err *e)
{
	FAIL_IF("update_deployment", e);
	return store_update_deployment(inner, id, st, ph, r, e);
}
static int f_get_deployment(void *drv, int64_t id, json_t **out, struct err *e)
{
	FAIL_IF("get_deployment", e);
	return store_get_deployment(inner, id, out, e);
}
static int f_list_deployments(void *drv, const char *s, json_t **out, struct err *e)
{
	FAIL_IF("list_deployments", e);
	return store_list_deployments(inner, s, out, e);
}
static int f_active_deployments(void *drv, json_t **out, struct err *e)
{
	FAIL_IF("active_deployments", e);
	return store_active_deployments(inner, out, e);
}
static int f_add_event(void *drv, int64_t d, const char *t, const char *r, const char *m,
		       const json_t *ev, struct err *e)
{
	FAIL_IF("add_event", e);
	return store_add_event(inner, d, t, r, m, ev, e);
}
static int f_events_after(void *drv, int64_t a, int64_t n, json_t **out, struct err *e)
{
	FAIL_IF("events_after", e);
	return store_events_after(inner, a, n, out, e);
}
static int f_list_events(void *drv, int64_t d, json_t **out, struct err *e)
{
	FAIL_IF("list_events", e);
	return store_list_events(inner, d, out, e);
}
static int f_set_stable(void *drv, const char *s, const char *env, const char *r, const char *v,
			int64_t d, struct err *e)
{
	FAIL_IF("set_stable", e);
	return store_set_stable(inner, s, env, r, v, d, e);
}
static int f_get_stable(void *drv, const char *s, const char *env, const char *r, char *buf, size_t len,
			struct err *e)
{
	FAIL_IF("get_stable", e);
	return store_get_stable(inner, s, env, r, buf, len, e);
}
static int f_previous_stable(void *drv, const char *s, const char *env, const char *r, const char *cur,
			     char *buf, size_t len, struct err *e)
{
	FAIL_IF("previous_stable", e);
	return store_previous_stable(inner, s, env, r, cur, buf, len, e);
}
static int f_list_stable(void *drv, const char *s, json_t **out, struct err *e)
{
	FAIL_IF("list_stable", e);
	return store_list_stable(inner, s, out, e);
}
static int f_put_token(void *drv, const struct store_token *t, struct err *e)
{
	FAIL_IF("put_token", e);
	return store_put_token(inner, t, e);
}
static int f_get_token(void *drv, const char *h, json_t **out, struct err *e)
{
	FAIL_IF("get_token", e);
	return store_get_token(inner, h, out, e);
}
static int f_list_tokens(void *drv, json_t **out, struct err *e)
{
	FAIL_IF("list_tokens", e);
	return store_list_tokens(inner, out, e);
}
static int f_revoke_token(void *drv, const char *n, int64_t at, struct err *e)
{
	FAIL_IF("revoke_token", e);
	return store_revoke_token(inner, n, at, e);
}
static int f_add_audit(void *drv, const struct store_audit *a, struct err *e)
{
	FAIL_IF("add_audit", e);
	return store_add_audit(inner, a, e);
}
static int f_list_audit(void *drv, const char *s, int64_t since, int64_t limit, json_t **out,
			struct err *e)
{
	FAIL_IF("list_audit", e);
	return store_list_audit(inner, s, since, limit, out, e);
}
static int f_put_flags(void *drv, const char *env, const json_t *doc, const char *by, const char *why,
		       int64_t *v, struct err *e)
{
	FAIL_IF("put_flags", e);
	return store_put_flags(inner, env, doc, by, why, v, e);
}
static int f_get_flags(void *drv, const char *env, json_t **out, struct err *e)
{
	FAIL_IF("get_flags", e);
	return store_get_flags(inner, env, out, e);
}
static int f_list_flag_versions(void *drv, const char *env, json_t **out, struct err *e)
{
	FAIL_IF("list_flag_versions", e);
	return store_list_flag_versions(inner, env, out, e);
}
static int f_lease_acquire(void *drv, const char *n, const char *h, int64_t ttl, int64_t *ep, struct err *e)
{
	FAIL_IF("lease_acquire", e);
	return store_lease_acquire(inner, n, h, ttl, ep, e);
}
static int f_lease_release(void *drv, const char *n, const char *h, int64_t ep, struct err *e)
{
	FAIL_IF("lease_release", e);
	return store_lease_release(inner, n, h, ep, e);
}
static int f_lease_check(void *drv, const char *n, const char *h, int64_t ep, struct err *e)
{
	FAIL_IF("lease_check", e);
	return store_lease_check(inner, n, h, ep, e);
}
static int f_list_leases(void *drv, json_t **out, struct err *e)
{
	FAIL_IF("list_leases", e);
	return store_list_leases(inner, out, e);
}
static int f_put_artifact_chunk(void *drv, const char *d, int64_t n, const void *p, size_t len,
				struct err *e)
{
	FAIL_IF("put_artifact_chunk", e);
	return store_put_artifact_chunk(inner, d, n, p, len, e);
}
static int f_put_artifact(void *drv, const char *d, int64_t size, int64_t chunks, int *created,
			  struct err *e)
{
	FAIL_IF("put_artifact", e);
	return store_put_artifact(inner, d, size, chunks, created, e);
}
static int f_get_artifact(void *drv, const char *d, int64_t *size, int64_t *chunks, struct err *e)
{
	FAIL_IF("get_artifact", e);
	return store_get_artifact(inner, d, size, chunks, e);
}
static int f_get_artifact_chunk(void *drv, const char *d, int64_t n, void *buf, size_t cap,
				size_t *len, struct err *e)
{
	FAIL_IF("get_artifact_chunk", e);
	return store_get_artifact_chunk(inner, d, n, buf, cap, len, e);
}
static int f_update_deployment_if(void *drv, int64_t id, const json_t *x, const json_t *st,
				  const char *ph, const char *r, struct err *e)
{
	FAIL_IF("update_deployment_if", e);
	return store_update_deployment_if(inner, id, x, st, ph, r, e);
}
static int f_secret(void *drv, const char *name, const char *fresh, json_t **v, struct err *e)
{
	FAIL_IF("secret", e);
	char out[STORE_SECRET_MAX + 1];
	int rc = store_secret(inner, name, fresh, out, sizeof(out), e);
	if (!rc)
		*v = json_string(out);
	return rc;
}
static int f_put_subscription(void *drv, const struct store_subscription *sub, int64_t *id, struct err *e)
{
	FAIL_IF("put_subscription", e);
	return store_put_subscription(inner, sub, id, e);
}
static int f_list_subscriptions(void *drv, json_t **out, struct err *e)
{
	FAIL_IF("list_subscriptions", e);
	return store_list_subscriptions(inner, out, e);
}
static int f_delete_subscription(void *drv, int64_t id, struct err *e)
{
	FAIL_IF("delete_subscription", e);
	return store_delete_subscription(inner, id, e);
}
static int f_notify_enqueue(void *drv, const char *env, const char *svc, const char *type,
			    const json_t *payload, int64_t *rows, struct err *e)
{
	FAIL_IF("notify_enqueue", e);
	return store_notify_enqueue(inner, env, svc, type, payload, rows, e);
}
static int f_notify_pending(void *drv, int64_t now, int64_t limit, json_t **out, struct err *e)
{
	FAIL_IF("notify_pending", e);
	return store_notify_pending(inner, now, limit, out, e);
}
static int f_notify_mark(void *drv, int64_t id, int delivered, int64_t next_at, const char *error,
			 struct err *e)
{
	FAIL_IF("notify_mark", e);
	return store_notify_mark(inner, id, delivered, next_at, error, e);
}
static int f_notify_backlog(void *drv, int64_t *rows, int64_t *oldest, struct err *e)
{
	FAIL_IF("notify_backlog", e);
	return store_notify_backlog(inner, rows, oldest, e);
}
static int f_create_rollout(void *drv, const char *env, const char *flag, const char *svc, const json_t *st,
			    const char *by, const char *why, int64_t *id, struct err *e)
{
	FAIL_IF("create_rollout", e);
	return store_create_rollout(inner, env, flag, svc, st, by, why, id, e);
}
static int f_update_rollout(void *drv, int64_t id, const json_t *st, const char *phase, struct err *e)
{
	FAIL_IF("update_rollout", e);
	return store_update_rollout(inner, id, st, phase, e);
}
static int f_get_rollout(void *drv, int64_t id, json_t **out, struct err *e)
{
	FAIL_IF("get_rollout", e);
	return store_get_rollout(inner, id, out, e);
}
static int f_list_rollouts(void *drv, const char *env, int active, json_t **out, struct err *e)
{
	FAIL_IF("list_rollouts", e);
	return store_list_rollouts(inner, env, active, out, e);
}
static int f_add_rollout_event(void *drv, int64_t id, const char *t, const char *m, const json_t *ev,
			       struct err *e)
{
	FAIL_IF("add_rollout_event", e);
	return store_add_rollout_event(inner, id, t, m, ev, e);
}
static int f_list_rollout_events(void *drv, int64_t id, json_t **out, struct err *e)
{
	FAIL_IF("list_rollout_events", e);
	return store_list_rollout_events(inner, id, out, e);
}
/* A driver that forgets the message: the dispatcher supplies one. */
static int f_silent(void *drv, json_t **out, struct err *e) { return -1; }

static const struct store_ops faulty_ops = {
	"faulty", NULL, f_close, f_schema_version, f_changes, f_begin, f_commit, f_rollback,
	f_put_manifest, f_get_manifest, f_list_manifests, f_put_release, f_get_release,
	f_list_releases, f_create_deployment, f_update_deployment, f_get_deployment,
	f_list_deployments, f_active_deployments, f_add_event, f_list_events, f_events_after, f_set_stable,
	f_get_stable, f_previous_stable, f_list_stable, f_put_token, f_get_token,
	f_list_tokens, f_revoke_token, f_add_audit, f_list_audit, f_put_flags, f_get_flags,
	f_list_flag_versions, f_lease_acquire, f_lease_release, f_lease_check, f_list_leases,
	f_put_artifact_chunk, f_put_artifact, f_get_artifact, f_get_artifact_chunk,
	f_update_deployment_if, f_secret,
	f_put_subscription, f_list_subscriptions, f_delete_subscription, f_notify_enqueue,
	f_notify_pending, f_notify_mark, f_notify_backlog,
	f_create_rollout, f_update_rollout, f_get_rollout, f_list_rollouts, f_add_rollout_event,
	f_list_rollout_events,
	0, /* shared */
	0, /* not sole_writer: manifest changes follow store_changes */
};

static store *faulty_fresh(void)
{
	inner = sqlite_fresh();
	store *s;
	struct err e;
	cr_assert_eq(store_attach(&s, &faulty_ops, NULL, &e), 0);
	return s;
}

static store *faulty_reopen(void)
{
	inner = sqlite_reopen();
	store *s;
	struct err e;
	cr_assert_eq(store_attach(&s, &faulty_ops, NULL, &e), 0);
	return s;
}

/* Without a fault, the wrapper is a driver like any other (and the suite checks it). */
static const struct store_factory faulty_factory = {faulty_fresh, faulty_reopen};
CONFORMANCE_TESTS(store_wrapped, &faulty_factory, .fini = cleanup)

Test(store_faults, a_failed_read_is_a_failure_not_a_missing_row, .fini = cleanup)
{
	store *s = faulty_fresh();
	struct err e;
	char v[32] = "junk";
	cr_assert_eq(store_set_stable(s, "a", "prod", "r1", "v1", 1, &e), 0, "%s", e.msg);
	fail_op = "get_stable";
	int rc = store_get_stable(s, "a", "prod", "r1", v, sizeof(v), &e);
	cr_assert_eq(rc, -1, "a failed read returned %d", rc);
	cr_assert_neq(rc, STORE_NOTFOUND);
	cr_assert(store_failed(&e), "%s", e.msg);
	cr_assert_str_eq(v, "", "no stale value");
	fail_op = "get_manifest";
	json_t *out = json_null();
	cr_assert_eq(store_get_manifest(s, "Service", "a", &out, &e), -1);
	cr_assert_null(out);
	cr_assert(store_failed(&e), "%s", e.msg);
	fail_op = NULL;
	cr_assert_eq(store_get_stable(s, "a", "prod", "r1", v, sizeof(v), &e), 0, "%s", e.msg);
	cr_assert_str_eq(v, "v1");
	cr_assert_eq(store_get_stable(s, "a", "prod", "r2", v, sizeof(v), &e), STORE_NOTFOUND);
	cr_assert(!store_failed(&e), "%s", e.msg);
	store_close(s);
}

Test(store_faults, a_driver_failure_always_carries_a_store_message, .fini = cleanup)
{
	struct store_ops ops = faulty_ops;
	ops.active_deployments = f_silent;
	inner = sqlite_fresh();
	store *s;
	struct err e;
	cr_assert_eq(store_attach(&s, &ops, NULL, &e), 0);
	json_t *out = NULL;
	cr_assert_eq(store_active_deployments(s, &out, &e), -1);
	cr_assert(store_failed(&e), "'%s'", e.msg);
	fail_op = "list_events";
	cr_assert_eq(store_list_events(s, 1, &out, &e), -1);
	cr_assert(strstr(e.msg, "injected"), "%s", e.msg);
	store_close(s);
}
