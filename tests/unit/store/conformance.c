/*
 * conformance: the store contract, driver by driver (see conformance.h).
 */
#include "conformance.h"

#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#define OK(call) cr_assert_eq((call), 0, "%s: %s", #call, e.msg)

static const char *str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

void conformance_manifests(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	json_t *b = json_pack("{s:s, s:i}", "name", "b", "instances", 2);
	json_t *a = json_pack("{s:s}", "name", "a");
	int changed = -1;
	OK(store_put_manifest(s, "Service", "b", b, &changed, &e));
	cr_assert_eq(changed, 1);
	OK(store_put_manifest(s, "Service", "b", b, &changed, &e));
	cr_assert_eq(changed, 0, "the same spec again is no change");
	OK(store_put_manifest(s, "Service", "a", a, NULL, &e));
	OK(store_put_manifest(s, "Environment", "production", a, NULL, &e));
	json_t *b2 = json_pack("{s:s, s:i}", "name", "b", "instances", 3);
	OK(store_put_manifest(s, "Service", "b", b2, &changed, &e));
	cr_assert_eq(changed, 1);
	json_t *out;
	OK(store_get_manifest(s, "Service", "b", &out, &e));
	cr_assert(json_equal(out, b2));
	json_decref(out);
	OK(store_list_manifests(s, "Service", &out, &e));
	cr_assert_eq(json_array_size(out), 2, "kinds are apart");
	cr_assert_str_eq(str(json_array_get(out, 0), "name"), "a", "ordered by name");
	cr_assert_str_eq(str(json_array_get(out, 1), "name"), "b");
	json_decref(out);
	OK(store_list_manifests(s, "Nothing", &out, &e));
	cr_assert_eq(json_array_size(out), 0);
	json_decref(out);
	json_decref(a);
	json_decref(b);
	json_decref(b2);
	store_close(s);
}

void conformance_releases(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	int created = -1;
	json_t *contract = json_pack("{s:s}", "openapi", "3.0.0");
	OK(store_put_release(s, "svc", "v1", "sha256:aa", 10, contract, &created, &e));
	cr_assert_eq(created, 1);
	OK(store_put_release(s, "svc", "v1", "sha256:aa", 10, contract, &created, &e));
	cr_assert_eq(created, 0, "the same digest again is a no-op");
	cr_assert_eq(store_put_release(s, "svc", "v1", "sha256:bb", 10, NULL, &created, &e), STORE_CONFLICT);
	cr_assert(strstr(e.msg, "immutable"), "%s", e.msg);
	cr_assert(!store_failed(&e), "a refusal is not a failure");
	OK(store_put_release(s, "svc", "v2", "sha256:bb", 20, NULL, &created, &e));
	OK(store_put_release(s, "other", "v1", "sha256:cc", 30, NULL, &created, &e));
	json_t *out;
	OK(store_get_release(s, "svc", "v1", &out, &e));
	cr_assert_str_eq(str(out, "digest"), "sha256:aa");
	cr_assert_eq(json_integer_value(json_object_get(out, "size")), 10);
	cr_assert(json_equal(json_object_get(out, "contract"), contract));
	json_decref(out);
	OK(store_get_release(s, "svc", "v2", &out, &e));
	cr_assert(json_is_null(json_object_get(out, "contract")));
	json_decref(out);
	OK(store_list_releases(s, "svc", &out, &e));
	cr_assert_eq(json_array_size(out), 2);
	cr_assert_str_eq(str(json_array_get(out, 0), "version"), "v1", "oldest first");
	json_decref(out);
	json_decref(contract);
	store_close(s);
}

void conformance_deployments(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	json_t *st = json_pack("{s:i}", "step", 0);
	int64_t a, b, c;
	OK(store_create_deployment(s, "x", "production", "v1", "deploy", st, &a, &e));
	OK(store_create_deployment(s, "y", "production", "v1", "deploy", st, &b, &e));
	OK(store_create_deployment(s, "x", "production", "v2", "rollback", st, &c, &e));
	cr_assert(a > 0 && b > a && c > b, "ids grow: %lld %lld %lld", (long long)a, (long long)b, (long long)c);
	json_t *out;
	OK(store_get_deployment(s, a, &out, &e));
	cr_assert_str_eq(str(out, "phase"), "active");
	cr_assert_str_eq(str(out, "service"), "x");
	cr_assert_str_eq(str(out, "kind"), "deploy");
	cr_assert(json_equal(json_object_get(out, "state"), st));
	json_decref(out);
	json_t *st2 = json_pack("{s:i}", "step", 3);
	OK(store_update_deployment(s, a, st2, "promoted", "done", &e));
	OK(store_get_deployment(s, a, &out, &e));
	cr_assert_str_eq(str(out, "phase"), "promoted");
	cr_assert_str_eq(str(out, "reason"), "done");
	cr_assert(json_equal(json_object_get(out, "state"), st2));
	json_decref(out);
	OK(store_list_deployments(s, "x", &out, &e));
	cr_assert_eq(json_array_size(out), 2);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(out, 0), "id")), c, "newest first");
	json_decref(out);
	OK(store_list_deployments(s, NULL, &out, &e));
	cr_assert_eq(json_array_size(out), 3);
	json_decref(out);
	OK(store_active_deployments(s, &out, &e));
	cr_assert_eq(json_array_size(out), 2);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(out, 0), "id")), b, "oldest first");
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(out, 1), "id")), c);
	json_decref(out);
	json_decref(st);
	json_decref(st2);
	store_close(s);
}

void conformance_events(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	int64_t id, other;
	json_t *st = json_object();
	OK(store_create_deployment(s, "a", "prod", "v1", "deploy", st, &id, &e));
	OK(store_create_deployment(s, "b", "prod", "v1", "deploy", st, &other, &e));
	json_t *ev = json_pack("{s:s,s:f}", "metric", "error_rate", "value", 0.5);
	OK(store_add_event(s, id, "check", "r1", "first", NULL, &e));
	OK(store_add_event(s, other, "check", NULL, "elsewhere", NULL, &e));
	OK(store_add_event(s, id, "abort", "r1", "second", ev, &e));
	OK(store_add_event(s, id, "done", NULL, "third", NULL, &e));
	json_t *list;
	OK(store_list_events(s, id, &list, &e));
	cr_assert_eq(json_array_size(list), 3);
	cr_assert_str_eq(str(json_array_get(list, 0), "message"), "first");
	cr_assert_str_eq(str(json_array_get(list, 1), "message"), "second");
	cr_assert_str_eq(str(json_array_get(list, 2), "message"), "third");
	cr_assert_str_eq(str(json_array_get(list, 1), "type"), "abort");
	cr_assert_str_eq(str(json_array_get(list, 1), "region"), "r1");
	cr_assert(json_is_null(json_object_get(json_array_get(list, 2), "region")));
	cr_assert(json_equal(json_object_get(json_array_get(list, 1), "evidence"), ev));
	/* every deployment's events after a cursor, with their service and environment */
	json_int_t first = json_integer_value(json_object_get(json_array_get(list, 0), "id"));
	json_decref(list);
	OK(store_events_after(s, 0, 100, &list, &e));
	cr_assert_eq(json_array_size(list), 4);
	cr_assert_str_eq(str(json_array_get(list, 1), "message"), "elsewhere");
	cr_assert_str_eq(str(json_array_get(list, 1), "service"), "b");
	cr_assert_str_eq(str(json_array_get(list, 1), "env"), "prod");
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(list, 1), "deployment")), other);
	json_decref(list);
	OK(store_events_after(s, first, 2, &list, &e));
	cr_assert_eq(json_array_size(list), 2);
	cr_assert_str_eq(str(json_array_get(list, 0), "message"), "elsewhere");
	cr_assert_str_eq(str(json_array_get(list, 1), "message"), "second");
	cr_assert(json_equal(json_object_get(json_array_get(list, 1), "evidence"), ev));
	json_decref(list);
	OK(store_events_after(s, -1, 2, &list, &e));
	cr_assert_eq(json_array_size(list), 2);
	cr_assert_str_eq(str(json_array_get(list, 0), "message"), "second");
	cr_assert_str_eq(str(json_array_get(list, 1), "message"), "third");
	json_decref(list);
	OK(store_events_after(s, 1000000, 10, &list, &e));
	cr_assert_eq(json_array_size(list), 0);
	json_decref(list);
	json_decref(ev);
	json_decref(st);
	store_close(s);
}

void conformance_stable(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	char v[64];
	OK(store_set_stable(s, "a", "prod", "r1", "v1", 1, &e));
	OK(store_set_stable(s, "a", "prod", "r1", "v2", 2, &e));
	OK(store_set_stable(s, "a", "prod", "r2", "v1", 1, &e));
	OK(store_set_stable(s, "b", "prod", "r1", "v9", 3, &e));
	OK(store_get_stable(s, "a", "prod", "r1", v, sizeof(v), &e));
	cr_assert_str_eq(v, "v2");
	OK(store_previous_stable(s, "a", "prod", "r1", "v2", v, sizeof(v), &e));
	cr_assert_str_eq(v, "v1");
	OK(store_set_stable(s, "a", "prod", "r1", "v3", 4, &e));
	OK(store_previous_stable(s, "a", "prod", "r1", "v3", v, sizeof(v), &e));
	cr_assert_str_eq(v, "v2", "the latest before the current one");
	json_t *list;
	OK(store_list_stable(s, "a", &list, &e));
	cr_assert_eq(json_array_size(list), 2);
	cr_assert_str_eq(str(json_array_get(list, 0), "region"), "r1");
	cr_assert_str_eq(str(json_array_get(list, 0), "version"), "v3");
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(list, 0), "deployment")), 4);
	json_decref(list);
	OK(store_list_stable(s, NULL, &list, &e));
	cr_assert_eq(json_array_size(list), 3);
	json_decref(list);
	store_close(s);
}

void conformance_transactions(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	json_t *spec = json_pack("{s:s}", "name", "a");
	OK(store_begin(s, &e));
	cr_assert_eq(store_begin(s, &e), -1, "a nested begin is an error");
	cr_assert(store_failed(&e), "%s", e.msg);
	OK(store_put_manifest(s, "Service", "a", spec, NULL, &e));
	int64_t id;
	OK(store_create_deployment(s, "a", "production", "v1", "deploy", spec, &id, &e));
	OK(store_set_stable(s, "a", "production", "r1", "v1", id, &e));
	store_rollback(s);
	json_t *out = NULL;
	char v[64];
	cr_assert_eq(store_get_manifest(s, "Service", "a", &out, &e), STORE_NOTFOUND);
	cr_assert_eq(store_get_deployment(s, id, &out, &e), STORE_NOTFOUND);
	cr_assert_eq(store_get_stable(s, "a", "production", "r1", v, sizeof(v), &e), STORE_NOTFOUND);
	OK(store_list_deployments(s, NULL, &out, &e));
	cr_assert_eq(json_array_size(out), 0, "rollback leaves nothing");
	json_decref(out);
	store_rollback(s); /* without a transaction: a no-op */
	OK(store_begin(s, &e));
	int changed;
	OK(store_put_manifest(s, "Service", "a", spec, &changed, &e));
	cr_assert_eq(changed, 1);
	OK(store_commit(s, &e));
	OK(store_get_manifest(s, "Service", "a", &out, &e));
	json_decref(out);
	OK(store_begin(s, &e)); /* the commit ended the transaction */
	store_rollback(s);
	json_decref(spec);
	store_close(s);
}

void conformance_not_found(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	json_t *out = json_null(), *st = json_object();
	char v[16] = "junk";
	cr_assert_eq(store_get_manifest(s, "Service", "none", &out, &e), STORE_NOTFOUND);
	cr_assert_null(out);
	cr_assert(e.msg[0] && !store_failed(&e), "not found says what, and is no failure: %s", e.msg);
	cr_assert_eq(store_get_release(s, "none", "v1", &out, &e), STORE_NOTFOUND);
	cr_assert_eq(store_get_deployment(s, 42, &out, &e), STORE_NOTFOUND);
	cr_assert_eq(store_update_deployment(s, 42, st, "failed", NULL, &e), STORE_NOTFOUND);
	cr_assert_eq(store_add_event(s, 42, "check", NULL, "m", NULL, &e), STORE_NOTFOUND);
	cr_assert_eq(store_get_stable(s, "none", "prod", "r1", v, sizeof(v), &e), STORE_NOTFOUND);
	cr_assert_str_eq(v, "");
	cr_assert_eq(store_previous_stable(s, "none", "prod", "r1", "v1", v, sizeof(v), &e), STORE_NOTFOUND);
	OK(store_set_stable(s, "a", "prod", "r1", "v1", 1, &e));
	cr_assert_eq(store_previous_stable(s, "a", "prod", "r1", "v1", v, sizeof(v), &e), STORE_NOTFOUND,
		     "a first stable release has none before it");
	OK(store_list_events(s, 42, &out, &e));
	cr_assert_eq(json_array_size(out), 0);
	json_decref(out);
	json_decref(st);
	store_close(s);
}

void conformance_reopen_keeps_everything(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	json_t *spec = json_pack("{s:s}", "name", "a");
	int created;
	int64_t id;
	OK(store_put_manifest(s, "Service", "a", spec, NULL, &e));
	OK(store_put_release(s, "a", "v1", "sha256:aa", 1, NULL, &created, &e));
	OK(store_create_deployment(s, "a", "prod", "v1", "deploy", spec, &id, &e));
	OK(store_add_event(s, id, "check", NULL, "kept", NULL, &e));
	OK(store_set_stable(s, "a", "prod", "r1", "v1", id, &e));
	OK(store_begin(s, &e));
	OK(store_set_stable(s, "a", "prod", "r1", "v2", id, &e));
	OK(store_commit(s, &e));
	store_close(s);
	s = f->reopen();
	json_t *out;
	OK(store_get_manifest(s, "Service", "a", &out, &e));
	cr_assert(json_equal(out, spec));
	json_decref(out);
	OK(store_get_release(s, "a", "v1", &out, &e));
	json_decref(out);
	OK(store_get_deployment(s, id, &out, &e));
	json_decref(out);
	OK(store_list_events(s, id, &out, &e));
	cr_assert_eq(json_array_size(out), 1);
	json_decref(out);
	char v[16];
	OK(store_get_stable(s, "a", "prod", "r1", v, sizeof(v), &e));
	cr_assert_str_eq(v, "v2");
	OK(store_previous_stable(s, "a", "prod", "r1", "v2", v, sizeof(v), &e));
	cr_assert_str_eq(v, "v1");
	int version;
	OK(store_schema_version(s, &version, &e));
	cr_assert_eq(version, STORE_SCHEMA_VERSION);
	int64_t id2;
	OK(store_create_deployment(s, "a", "prod", "v2", "deploy", spec, &id2, &e));
	cr_assert(id2 > id, "ids are not reused");
	json_decref(spec);
	store_close(s);
}

void conformance_changes_grow(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	json_t *spec = json_pack("{s:s}", "name", "a");
	uint64_t c0 = store_changes(s);
	OK(store_put_manifest(s, "Service", "a", spec, NULL, &e));
	uint64_t c1 = store_changes(s);
	cr_assert_gt(c1, c0);
	json_t *out;
	OK(store_get_manifest(s, "Service", "a", &out, &e));
	json_decref(out);
	cr_assert_eq(store_changes(s), c1, "a read changes nothing");
	OK(store_put_manifest(s, "Service", "a", spec, NULL, &e));
	cr_assert_eq(store_changes(s), c1, "an unchanged manifest is not written");
	OK(store_set_stable(s, "a", "prod", "r1", "v1", 1, &e));
	cr_assert_gt(store_changes(s), c1);
	json_decref(spec);
	store_close(s);
}

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HASH_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

void conformance_tokens(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	json_t *scopes = json_pack("[{s:[s], s:[s], s:[s]}]", "actions", "deploy", "services", "pay-*",
				   "envs", "*");
	struct store_token t = {"ci", HASH_A, scopes, 0, "admin"};
	OK(store_put_token(s, &t, &e));
	json_t *out = NULL;
	OK(store_get_token(s, HASH_A, &out, &e));
	cr_assert_str_eq(json_string_value(json_object_get(out, "name")), "ci");
	cr_assert(json_equal(json_object_get(out, "scopes"), scopes), "scopes come back as written");
	cr_assert(json_is_null(json_object_get(out, "expires_at")), "0 is never");
	cr_assert(json_is_null(json_object_get(out, "revoked_at")));
	cr_assert_str_eq(json_string_value(json_object_get(out, "created_by")), "admin");
	cr_assert_null(json_object_get(out, "hash"), "the hash is not handed out");
	json_decref(out);
	cr_assert_eq(store_get_token(s, HASH_B, &out, &e), STORE_NOTFOUND);
	cr_assert(!store_failed(&e));
	/* names are unique, and so are hashes */
	struct store_token same_name = {"ci", HASH_B, scopes, 0, "admin"};
	cr_assert_eq(store_put_token(s, &same_name, &e), STORE_CONFLICT);
	struct store_token same_hash = {"other", HASH_A, scopes, 0, "admin"};
	cr_assert_eq(store_put_token(s, &same_hash, &e), STORE_CONFLICT);
	struct store_token exp = {"temp", HASH_B, scopes, 1234, ""};
	OK(store_put_token(s, &exp, &e));
	OK(store_revoke_token(s, "ci", 1000, &e));
	OK(store_revoke_token(s, "ci", 2000, &e)); /* the first time stays */
	cr_assert_eq(store_revoke_token(s, "nobody", 1000, &e), STORE_NOTFOUND);
	cr_assert(!store_failed(&e));
	store_close(s);
	s = f->reopen();
	OK(store_list_tokens(s, &out, &e));
	cr_assert_eq(json_array_size(out), 2);
	json_t *ci = json_array_get(out, 0), *temp = json_array_get(out, 1);
	cr_assert_str_eq(json_string_value(json_object_get(ci, "name")), "ci");
	cr_assert_eq(json_integer_value(json_object_get(ci, "revoked_at")), 1000);
	cr_assert_eq(json_integer_value(json_object_get(temp, "expires_at")), 1234);
	cr_assert_null(json_object_get(ci, "hash"));
	json_decref(out);
	/* a revoked name stays taken */
	struct store_token again = {"ci", "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
				    scopes, 0, "admin"};
	cr_assert_eq(store_put_token(s, &again, &e), STORE_CONFLICT);
	json_decref(scopes);
	store_close(s);
}

void conformance_audit(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	for (int i = 0; i < 5; i++) {
		char res[16];
		snprintf(res, sizeof(res), "r%d", i);
		struct store_audit a = {.at = 1000 + i, .token = "ci", .action = "deploy",
					.request = "POST /v1/deployments", .service = i % 2 ? "b" : "a",
					.env = i == 4 ? NULL : "production", .result = res, .client = "127.0.0.1"};
		OK(store_add_audit(s, &a, &e));
	}
	json_t *out = NULL;
	OK(store_list_audit(s, NULL, 0, 100, &out, &e));
	cr_assert_eq(json_array_size(out), 5);
	json_t *first = json_array_get(out, 0);
	cr_assert_str_eq(json_string_value(json_object_get(first, "result")), "r0", "oldest first");
	cr_assert_str_eq(json_string_value(json_object_get(first, "token")), "ci");
	cr_assert_str_eq(json_string_value(json_object_get(first, "request")), "POST /v1/deployments");
	cr_assert_str_eq(json_string_value(json_object_get(first, "client")), "127.0.0.1");
	cr_assert_eq(json_integer_value(json_object_get(first, "at")), 1000);
	cr_assert(json_is_null(json_object_get(json_array_get(out, 4), "env")));
	json_decref(out);
	OK(store_list_audit(s, "a", 0, 100, &out, &e));
	cr_assert_eq(json_array_size(out), 3, "only service a");
	json_decref(out);
	OK(store_list_audit(s, NULL, 1003, 100, &out, &e));
	cr_assert_eq(json_array_size(out), 2, "since");
	json_decref(out);
	OK(store_list_audit(s, NULL, 0, 2, &out, &e));
	cr_assert_eq(json_array_size(out), 2);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(out, 0), "result")), "r3",
			 "the limit keeps the newest, still oldest first");
	json_decref(out);
	store_close(s);
	s = f->reopen();
	OK(store_list_audit(s, NULL, 0, 100, &out, &e));
	cr_assert_eq(json_array_size(out), 5, "the log survives a reopen");
	json_decref(out);
	store_close(s);
}

void conformance_audit_with_its_effect(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	json_t *spec = json_pack("{s:s}", "name", "a"), *out = NULL;
	struct store_audit a = {.token = "ci", .action = "apply", .request = "POST /v1/apply",
				.service = "a", .result = "ok", .client = "::1"};
	/* rolled back: neither the change nor its record */
	OK(store_audit_attach(s, &a, &e));
	OK(store_begin(s, &e));
	OK(store_put_manifest(s, "Service", "a", spec, NULL, &e));
	store_rollback(s);
	cr_assert_eq(store_audit_detach(s), 0, "no commit wrote it");
	OK(store_list_audit(s, NULL, 0, 10, &out, &e));
	cr_assert_eq(json_array_size(out), 0);
	json_decref(out);
	/* committed: both, and only on the first commit */
	OK(store_audit_attach(s, &a, &e));
	OK(store_begin(s, &e));
	OK(store_put_manifest(s, "Service", "a", spec, NULL, &e));
	OK(store_commit(s, &e));
	OK(store_begin(s, &e));
	OK(store_put_manifest(s, "Service", "b", spec, NULL, &e));
	OK(store_commit(s, &e));
	cr_assert_eq(store_audit_detach(s), 1, "the commit wrote it");
	cr_assert_eq(store_audit_detach(s), 0, "detached once");
	OK(store_list_audit(s, NULL, 0, 10, &out, &e));
	cr_assert_eq(json_array_size(out), 1, "one record for the request, not one per commit");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(out, 0), "client")), "::1");
	cr_assert_gt(json_integer_value(json_object_get(json_array_get(out, 0), "at")), 0);
	json_decref(out);
	json_decref(spec);
	store_close(s);
}

void conformance_flags(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	json_t *out = NULL;
	cr_assert_eq(store_get_flags(s, "production", &out, &e), STORE_NOTFOUND);
	cr_assert(!store_failed(&e));
	json_t *d1 = json_pack("{s:{}}", "flags"), *d2 = json_pack("{s:{s:{s:s}}}", "flags", "f", "state", "ENABLED");
	int64_t v = 0;
	OK(store_begin(s, &e));
	OK(store_put_flags(s, "production", d1, "admin", "", &v, &e));
	cr_assert_eq(v, 1);
	OK(store_put_flags(s, "production", d2, "ci", "kill f", &v, &e));
	cr_assert_eq(v, 2);
	OK(store_put_flags(s, "staging", d1, "ci", "", &v, &e));
	cr_assert_eq(v, 1, "versions count per environment");
	OK(store_commit(s, &e));
	store_close(s);
	s = f->reopen();
	OK(store_get_flags(s, "production", &out, &e));
	cr_assert_eq(json_integer_value(json_object_get(out, "version")), 2);
	cr_assert(json_equal(json_object_get(out, "doc"), d2), "the document comes back as written");
	cr_assert_str_eq(json_string_value(json_object_get(out, "by")), "ci");
	cr_assert_str_eq(json_string_value(json_object_get(out, "why")), "kill f");
	cr_assert_str_eq(json_string_value(json_object_get(out, "env")), "production");
	json_decref(out);
	OK(store_list_flag_versions(s, "production", &out, &e));
	cr_assert_eq(json_array_size(out), 2);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(out, 0), "version")), 2, "newest first");
	cr_assert_null(json_object_get(json_array_get(out, 0), "doc"));
	json_decref(out);
	OK(store_list_flag_versions(s, "nowhere", &out, &e));
	cr_assert_eq(json_array_size(out), 0);
	json_decref(out);
	json_decref(d1);
	json_decref(d2);
	store_close(s);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts))
		;
}

void conformance_leases(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	uint64_t changes = store_changes(s);
	int64_t a = 0, b = 0;
	OK(store_lease_acquire(s, "service/a", "replica-a", 60000, &a, &e));
	cr_assert_gt(a, 0);
	cr_assert_eq(store_lease_acquire(s, "service/a", "replica-b", 60000, &b, &e), STORE_CONFLICT);
	cr_assert(!store_failed(&e), "%s", e.msg);
	cr_assert(strstr(e.msg, "replica-a"), "the message names the holder: %s", e.msg);
	cr_assert_eq(b, 0);
	int64_t renewed = a;
	OK(store_lease_acquire(s, "service/a", "replica-a", 60000, &renewed, &e));
	cr_assert_eq(renewed, a, "a renewal keeps the tenure");
	json_t *list = NULL;
	OK(store_list_leases(s, &list, &e));
	cr_assert_eq(json_array_size(list), 1);
	json_t *l = json_array_get(list, 0);
	cr_assert_str_eq(str(l, "name"), "service/a");
	cr_assert_str_eq(str(l, "holder"), "replica-a");
	cr_assert_eq(json_integer_value(json_object_get(l, "epoch")), a);
	json_int_t left = json_integer_value(json_object_get(l, "remaining_ms"));
	cr_assert(left > 50000 && left <= 60000, "remaining %lld", (long long)left);
	cr_assert_gt(json_integer_value(json_object_get(l, "since")), 0);
	json_decref(list);
	cr_assert_eq(store_changes(s), changes, "leases are not changes of state");

	/* released: another holder takes it at once, in a later tenure */
	OK(store_lease_release(s, "service/a", "replica-a", a, &e));
	OK(store_lease_acquire(s, "service/a", "replica-b", 60000, &b, &e));
	cr_assert_gt(b, a);
	/* a stale release changes nothing */
	OK(store_lease_release(s, "service/a", "replica-a", a, &e));
	int64_t again = 0;
	cr_assert_eq(store_lease_acquire(s, "service/a", "replica-a", 60000, &again, &e), STORE_CONFLICT);
	/* the same holder restarted (it knows no epoch): a new tenure */
	int64_t restarted = 0;
	OK(store_lease_acquire(s, "service/a", "replica-b", 60000, &restarted, &e));
	cr_assert_gt(restarted, b);
	/* renewing a tenure that is not the current one starts another */
	int64_t stale = b;
	OK(store_lease_acquire(s, "service/a", "replica-b", 60000, &stale, &e));
	cr_assert_gt(stale, restarted);

	/* leases are apart */
	int64_t other = 0;
	OK(store_lease_acquire(s, "service/b", "replica-a", 60000, &other, &e));
	OK(store_list_leases(s, &list, &e));
	cr_assert_eq(json_array_size(list), 2);
	cr_assert_str_eq(str(json_array_get(list, 1), "holder"), "replica-a", "ordered by name");
	json_decref(list);
	int64_t bad = 0;
	cr_assert_eq(store_lease_acquire(s, "service/c", "replica-a", 0, &bad, &e), -1);
	cr_assert(store_failed(&e), "%s", e.msg);
	store_close(s);

	/* leases are durable */
	s = f->reopen();
	OK(store_list_leases(s, &list, &e));
	cr_assert_eq(json_array_size(list), 2);
	json_decref(list);
	store_close(s);
}

void conformance_lease_expiry(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	int64_t c = 0, d = 0;
	/* a loaded machine may take a while between two statements: half a second */
	OK(store_lease_acquire(s, "service/x", "replica-c", 500, &c, &e));
	cr_assert_eq(store_lease_acquire(s, "service/x", "replica-d", 500, &d, &e), STORE_CONFLICT);
	sleep_ms(700);
	json_t *list = NULL;
	OK(store_list_leases(s, &list, &e));
	cr_assert_leq(json_integer_value(json_object_get(json_array_get(list, 0), "remaining_ms")), 0);
	json_decref(list);
	OK(store_lease_acquire(s, "service/x", "replica-d", 60000, &d, &e));
	cr_assert_gt(d, c, "an expired lease is taken in a new tenure");
	int64_t late = c;
	cr_assert_eq(store_lease_acquire(s, "service/x", "replica-c", 100, &late, &e), STORE_CONFLICT,
		     "the late holder cannot renew");
	cr_assert_eq(late, 0);

	/* expired and not taken: renewing it is a new tenure all the same */
	int64_t y = 0;
	OK(store_lease_acquire(s, "service/y", "replica-c", 100, &y, &e));
	sleep_ms(250);
	int64_t y2 = y;
	OK(store_lease_acquire(s, "service/y", "replica-c", 60000, &y2, &e));
	cr_assert_gt(y2, y);
	store_close(s);
}

void conformance_lease_fencing(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	json_t *state = json_pack("{s:s}", "phase", "x"), *out = NULL;
	int64_t a = 0, id = 0;
	OK(store_lease_acquire(s, "service/a", "replica-a", 60000, &a, &e));
	cr_assert_eq(store_lease_check(s, "service/a", "replica-a", a, &e), -1, "outside a transaction");
	cr_assert(store_failed(&e), "%s", e.msg);
	/* the holder writes */
	OK(store_begin(s, &e));
	OK(store_lease_check(s, "service/a", "replica-a", a, &e));
	OK(store_create_deployment(s, "a", "production", "v1", "deploy", state, &id, &e));
	OK(store_commit(s, &e));
	OK(store_get_deployment(s, id, &out, &e));
	json_decref(out);

	/* paused past its lease, which another replica took: refused, nothing written */
	int64_t b = 0, late = 0, bid = 0;
	OK(store_lease_acquire(s, "service/b", "replica-a", 100, &late, &e));
	sleep_ms(250);
	OK(store_lease_acquire(s, "service/b", "replica-b", 60000, &b, &e));
	OK(store_begin(s, &e));
	OK(store_create_deployment(s, "b", "production", "v1", "deploy", state, &bid, &e));
	int rc = store_lease_check(s, "service/b", "replica-a", late, &e);
	cr_assert_eq(rc, STORE_FENCED, "late write: %d %s", rc, e.msg);
	cr_assert(!store_failed(&e), "fenced is an answer, not a failure: %s", e.msg);
	cr_assert(strstr(e.msg, "replica-b"), "names the holder: %s", e.msg);
	store_rollback(s);
	cr_assert_eq(store_get_deployment(s, bid, &out, &e), STORE_NOTFOUND, "nothing was written");
	/* the new holder's epoch passes; the old holder with the new epoch does not */
	OK(store_begin(s, &e));
	OK(store_lease_check(s, "service/b", "replica-b", b, &e));
	cr_assert_eq(store_lease_check(s, "service/b", "replica-a", b, &e), STORE_FENCED);
	store_rollback(s);

	/* expired, even if nobody took it; and a lease never taken */
	int64_t c = 0;
	OK(store_lease_acquire(s, "service/c", "replica-a", 100, &c, &e));
	sleep_ms(250);
	OK(store_begin(s, &e));
	cr_assert_eq(store_lease_check(s, "service/c", "replica-a", c, &e), STORE_FENCED);
	cr_assert(strstr(e.msg, "expired"), "%s", e.msg);
	cr_assert_eq(store_lease_check(s, "service/none", "replica-a", 1, &e), STORE_FENCED);
	store_rollback(s);
	/* released: fenced at once */
	OK(store_lease_release(s, "service/a", "replica-a", a, &e));
	OK(store_begin(s, &e));
	cr_assert_eq(store_lease_check(s, "service/a", "replica-a", a, &e), STORE_FENCED);
	store_rollback(s);
	json_decref(state);
	store_close(s);
}
