/*
 * conformance: the store contract, driver by driver (see conformance.h).
 */
#include "conformance.h"

#include <criterion/criterion.h>
#include <stdlib.h>
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
	uint64_t c0 = store_changes(s), m0 = store_manifest_changes(s);
	OK(store_put_manifest(s, "Service", "a", spec, NULL, &e));
	uint64_t c1 = store_changes(s), m1 = store_manifest_changes(s);
	cr_assert_gt(c1, c0);
	cr_assert_gt(m1, m0, "a new manifest is a manifest change");
	json_t *out;
	OK(store_get_manifest(s, "Service", "a", &out, &e));
	json_decref(out);
	cr_assert_eq(store_changes(s), c1, "a read changes nothing");
	cr_assert_eq(store_manifest_changes(s), m1, "a read changes no manifest");
	OK(store_put_manifest(s, "Service", "a", spec, NULL, &e));
	cr_assert_eq(store_changes(s), c1, "an unchanged manifest is not written");
	cr_assert_eq(store_manifest_changes(s), m1, "an unchanged manifest is no change");
	OK(store_set_stable(s, "a", "prod", "r1", "v1", 1, &e));
	cr_assert_gt(store_changes(s), c1);
	/* another write leaves the manifests' number alone where the driver sees every writer */
	uint64_t m2 = store_manifest_changes(s);
	cr_assert_geq(m2, m1);
	json_t *spec2 = json_pack("{s:s, s:i}", "name", "a", "listen_port", 2);
	OK(store_put_manifest(s, "Service", "a", spec2, NULL, &e));
	cr_assert_gt(store_manifest_changes(s), m2, "a changed manifest is a manifest change");
	/* a rolled back write may have been seen: the number moves on */
	uint64_t m3 = store_manifest_changes(s);
	OK(store_begin(s, &e));
	OK(store_put_manifest(s, "Service", "a", spec, NULL, &e));
	store_rollback(s);
	cr_assert_gt(store_manifest_changes(s), m3, "a rollback may undo a manifest");
	json_decref(spec2);
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

void conformance_rollouts(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	json_t *out = NULL;
	json_t *st = json_pack("{s:s, s:[i,i]}", "variant", "on", "steps", 10, 100);
	int64_t id = 0, id2 = 0;
	OK(store_begin(s, &e));
	OK(store_create_rollout(s, "production", "new-checkout", "web", st, "admin", "launch", &id, &e));
	cr_assert_gt(id, 0);
	OK(store_add_rollout_event(s, id, "started", "rollout of on", NULL, &e));
	OK(store_commit(s, &e));
	/* one active rollout per flag and environment; the refusal leaves the transaction usable */
	OK(store_begin(s, &e));
	cr_assert_eq(store_create_rollout(s, "production", "new-checkout", "web", st, "ci", "", &id2, &e),
		     STORE_CONFLICT);
	cr_assert(!store_failed(&e));
	cr_assert(strstr(e.msg, "new-checkout"), "%s", e.msg);
	OK(store_create_rollout(s, "staging", "new-checkout", "web", st, "ci", "", &id2, &e));
	cr_assert_gt(id2, id);
	OK(store_commit(s, &e));
	cr_assert_eq(store_update_rollout(s, 9999, st, "aborted", &e), STORE_NOTFOUND);
	cr_assert_eq(store_add_rollout_event(s, 9999, "x", "y", NULL, &e), STORE_NOTFOUND);
	cr_assert_eq(store_get_rollout(s, 9999, &out, &e), STORE_NOTFOUND);
	cr_assert(!store_failed(&e));
	json_t *ev = json_pack("{s:I, s:f}", "errors", (json_int_t)12, "e_value", 41.5);
	OK(store_add_rollout_event(s, id, "reverted", "error rate above the baseline", ev, &e));
	json_object_set_new(st, "step", json_integer(1));
	OK(store_update_rollout(s, id, st, "reverted", &e));
	store_close(s);
	s = f->reopen();
	OK(store_get_rollout(s, id, &out, &e));
	cr_assert_str_eq(json_string_value(json_object_get(out, "phase")), "reverted");
	cr_assert_str_eq(json_string_value(json_object_get(out, "flag")), "new-checkout");
	cr_assert_str_eq(json_string_value(json_object_get(out, "service")), "web");
	cr_assert_str_eq(json_string_value(json_object_get(out, "by")), "admin");
	cr_assert_str_eq(json_string_value(json_object_get(out, "why")), "launch");
	cr_assert(json_equal(json_object_get(out, "state"), st), "the state comes back as written");
	json_decref(out);
	OK(store_list_rollouts(s, NULL, 1, &out, &e));
	cr_assert_eq(json_array_size(out), 1, "only the active one");
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(out, 0), "id")), id2);
	json_decref(out);
	OK(store_list_rollouts(s, "production", 0, &out, &e));
	cr_assert_eq(json_array_size(out), 1);
	json_decref(out);
	OK(store_list_rollouts(s, NULL, 0, &out, &e));
	cr_assert_eq(json_array_size(out), 2);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(out, 0), "id")), id2, "newest first");
	json_decref(out);
	/* the flag's rollout ended: a new one may start */
	OK(store_create_rollout(s, "production", "new-checkout", "web", st, "admin", "", &id2, &e));
	OK(store_list_rollout_events(s, id, &out, &e));
	cr_assert_eq(json_array_size(out), 2);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(out, 1), "type")), "reverted");
	cr_assert(json_equal(json_object_get(json_array_get(out, 1), "evidence"), ev));
	cr_assert(json_is_null(json_object_get(json_array_get(out, 0), "evidence")));
	json_decref(out);
	OK(store_list_rollout_events(s, 424242, &out, &e));
	cr_assert_eq(json_array_size(out), 0);
	json_decref(out);
	json_decref(ev);
	json_decref(st);
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

void conformance_deployment_compare_and_set(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	json_t *st0 = json_pack("{s:i, s:s, s:f}", "step", 0, "note", "é", "weight", 0.1);
	json_t *st1 = json_pack("{s:i}", "step", 1), *st2 = json_pack("{s:i}", "step", 2);
	int64_t id;
	OK(store_create_deployment(s, "x", "production", "v1", "deploy", st0, &id, &e));
	/* the state as read back is what the next write compares with */
	json_t *read;
	OK(store_get_deployment(s, id, &read, &e));
	OK(store_update_deployment_if(s, id, json_object_get(read, "state"), st1, "active", NULL, &e));
	/* a second writer that read the same state is refused and writes nothing */
	cr_assert_eq(store_update_deployment_if(s, id, json_object_get(read, "state"), st2, "failed", "late",
						&e),
		     STORE_CONFLICT, "%s", e.msg);
	cr_assert(!store_failed(&e), "%s", e.msg);
	json_decref(read);
	OK(store_get_deployment(s, id, &read, &e));
	cr_assert(json_equal(json_object_get(read, "state"), st1));
	cr_assert_str_eq(str(read, "phase"), "active");
	/* read again, it succeeds */
	OK(store_update_deployment_if(s, id, json_object_get(read, "state"), st2, "promoted", "done", &e));
	json_decref(read);
	OK(store_get_deployment(s, id, &read, &e));
	cr_assert(json_equal(json_object_get(read, "state"), st2));
	cr_assert_str_eq(str(read, "phase"), "promoted");
	json_decref(read);
	cr_assert_eq(store_update_deployment_if(s, id + 100, st2, st1, "active", NULL, &e), STORE_NOTFOUND);
	/* inside a transaction as well */
	OK(store_begin(s, &e));
	OK(store_update_deployment_if(s, id, st2, st1, "active", NULL, &e));
	store_rollback(s);
	OK(store_get_deployment(s, id, &read, &e));
	cr_assert(json_equal(json_object_get(read, "state"), st2), "rolled back");
	json_decref(read);
	json_decref(st0);
	json_decref(st1);
	json_decref(st2);
	store_close(s);
}

void conformance_artifacts(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	const char *d = "sha256:0000000000000000000000000000000000000000000000000000000000000001";
	size_t big = 300000;
	unsigned char *a = malloc(big), *b = malloc(STORE_ARTIFACT_CHUNK_MAX);
	cr_assert(a && b);
	for (size_t i = 0; i < big; i++)
		a[i] = (unsigned char)(i * 7 + (i >> 8)); /* every byte value, NULs included */
	int64_t size = -1, chunks = -1;
	cr_assert_eq(store_get_artifact(s, d, &size, &chunks, &e), STORE_NOTFOUND);
	cr_assert(!store_failed(&e), "%s", e.msg);
	size_t len = 1;
	cr_assert_eq(store_get_artifact_chunk(s, d, 0, b, STORE_ARTIFACT_CHUNK_MAX, &len, &e), STORE_NOTFOUND);
	cr_assert_eq(len, 0);
	/* chunks without the artifact's row (a rolled-back writer) leave nothing */
	OK(store_begin(s, &e));
	OK(store_put_artifact_chunk(s, d, 0, a, 200000, &e));
	store_rollback(s);
	cr_assert_eq(store_get_artifact_chunk(s, d, 0, b, STORE_ARTIFACT_CHUNK_MAX, &len, &e), STORE_NOTFOUND);
	/* written: two chunks and the row, in one transaction */
	int created = 0;
	OK(store_begin(s, &e));
	OK(store_put_artifact_chunk(s, d, 0, a, 200000, &e));
	OK(store_put_artifact_chunk(s, d, 1, a + 200000, big - 200000, &e));
	OK(store_put_artifact(s, d, (int64_t)big, 2, &created, &e));
	OK(store_commit(s, &e));
	cr_assert_eq(created, 1);
	OK(store_get_artifact(s, d, &size, &chunks, &e));
	cr_assert_eq(size, (int64_t)big);
	cr_assert_eq(chunks, 2);
	OK(store_get_artifact_chunk(s, d, 0, b, STORE_ARTIFACT_CHUNK_MAX, &len, &e));
	cr_assert_eq(len, 200000);
	cr_assert(!memcmp(a, b, len), "chunk 0 comes back byte for byte");
	OK(store_get_artifact_chunk(s, d, 1, b, STORE_ARTIFACT_CHUNK_MAX, &len, &e));
	cr_assert_eq(len, big - 200000);
	cr_assert(!memcmp(a + 200000, b, len), "chunk 1 comes back byte for byte");
	cr_assert_eq(store_get_artifact_chunk(s, d, 2, b, STORE_ARTIFACT_CHUNK_MAX, &len, &e), STORE_NOTFOUND);
	/* a buffer too small is a failure, not a truncated chunk */
	cr_assert_eq(store_get_artifact_chunk(s, d, 0, b, 100, &len, &e), -1);
	cr_assert(store_failed(&e), "%s", e.msg);
	cr_assert_eq(len, 0);
	/* stored again (another replica, the same upload twice): a no-op */
	OK(store_begin(s, &e));
	OK(store_put_artifact_chunk(s, d, 0, a, 200000, &e));
	OK(store_put_artifact(s, d, (int64_t)big, 2, &created, &e));
	OK(store_commit(s, &e));
	cr_assert_eq(created, 0);
	/* bounds */
	cr_assert_eq(store_put_artifact_chunk(s, d, 0, a, 0, &e), -1);
	cr_assert_eq(store_put_artifact_chunk(s, d, 0, a, STORE_ARTIFACT_CHUNK_MAX + 1, &e), -1);
	store_close(s);
	/* durable */
	s = f->reopen();
	OK(store_get_artifact(s, d, &size, &chunks, &e));
	cr_assert_eq(size, (int64_t)big);
	OK(store_get_artifact_chunk(s, d, 1, b, STORE_ARTIFACT_CHUNK_MAX, &len, &e));
	cr_assert(!memcmp(a + 200000, b, len));
	store_close(s);
	free(a);
	free(b);
}

/* A shared value is stored by whoever asks first and then only read: a second caller with
 * another fresh value gets the first one, also after a reopen; names are separate. */
void conformance_secrets(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	char out[STORE_SECRET_MAX + 1];
	OK(store_secret(s, "proxy-token", "first-value", out, sizeof(out), &e));
	cr_assert_str_eq(out, "first-value");
	OK(store_secret(s, "proxy-token", "second-value", out, sizeof(out), &e));
	cr_assert_str_eq(out, "first-value", "a second caller replaced the value");
	OK(store_secret(s, "other", "other-value", out, sizeof(out), &e));
	cr_assert_str_eq(out, "other-value");
	cr_assert_neq(store_secret(s, "", "x", out, sizeof(out), &e), 0, "an empty name was taken");
	cr_assert_neq(store_secret(s, "n", "", out, sizeof(out), &e), 0, "an empty value was taken");
	store_close(s);
	s = f->reopen();
	OK(store_secret(s, "proxy-token", "third-value", out, sizeof(out), &e));
	cr_assert_str_eq(out, "first-value", "the value did not survive a reopen");
	store_close(s);
}

/* ---- notifications ---- */

static int64_t subscribe(store *s, const char *env, const char *service, const char *types,
			 const char *secret)
{
	struct err e;
	struct store_subscription sub = {.env = env, .service = service, .types = types,
					 .url = "http://127.0.0.1:9/hook", .format = "json",
					 .secret = secret, .created_by = "admin"};
	int64_t id = 0;
	OK(store_put_subscription(s, &sub, &id, &e));
	cr_assert_gt(id, 0);
	return id;
}

void conformance_subscriptions(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	json_t *out = NULL;
	int64_t a = subscribe(s, "production", "", ",deployment.started,", "k3y");
	int64_t b = subscribe(s, "", "checkout", ",step.passed,deployment.promoted,", "");
	cr_assert_gt(b, a);
	OK(store_list_subscriptions(s, &out, &e));
	cr_assert_eq(json_array_size(out), 2);
	json_t *first = json_array_get(out, 0);
	cr_assert_eq(json_integer_value(json_object_get(first, "id")), a);
	cr_assert_str_eq(str(first, "env"), "production");
	cr_assert_str_eq(str(first, "types"), ",deployment.started,");
	cr_assert_null(json_object_get(first, "secret"), "a list never shows the secret");
	cr_assert_eq(json_integer_value(json_object_get(first, "signed")), 1);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(out, 1), "signed")), 0);
	json_decref(out);
	/* malformed types are refused before the driver sees them */
	struct store_subscription bad = {.env = "", .service = "", .types = "deployment.started",
					 .url = "http://x/", .format = "json", .secret = "",
					 .created_by = "admin"};
	int64_t id = 7;
	cr_assert_eq(store_put_subscription(s, &bad, &id, &e), -1);
	cr_assert_eq(id, 0);
	OK(store_delete_subscription(s, a, &e));
	cr_assert_eq(store_delete_subscription(s, a, &e), STORE_NOTFOUND, "removed once");
	cr_assert_eq(store_delete_subscription(s, 999, &e), STORE_NOTFOUND);
	OK(store_list_subscriptions(s, &out, &e));
	cr_assert_eq(json_array_size(out), 1);
	json_decref(out);
	store_close(s);
	/* kept across a reopen */
	s = f->reopen();
	OK(store_list_subscriptions(s, &out, &e));
	cr_assert_eq(json_array_size(out), 1);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(out, 0), "id")), b);
	json_decref(out);
	store_close(s);
}

void conformance_outbox(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	json_t *out = NULL;
	int64_t a = subscribe(s, "production", "", ",deployment.started,step.passed,", "k3y");
	int64_t b = subscribe(s, "", "checkout", ",step.passed,", "");
	(void)subscribe(s, "preprod", "", ",step.passed,", "");
	int64_t rows = -1;
	json_t *p1 = json_pack("{s:i}", "n", 1), *p2 = json_pack("{s:i}", "n", 2);
	OK(store_notify_enqueue(s, "production", "checkout", "step.passed", p1, &rows, &e));
	cr_assert_eq(rows, 2, "a and b match; the preprod one does not");
	OK(store_notify_enqueue(s, "production", "search", "step.passed", p2, &rows, &e));
	cr_assert_eq(rows, 1, "only a");
	OK(store_notify_enqueue(s, "production", "checkout", "region.failed", p2, &rows, &e));
	cr_assert_eq(rows, 0, "nobody asked for it");
	OK(store_notify_enqueue(s, "production", "checkout", "step", p2, &rows, &e));
	cr_assert_eq(rows, 0, "a type matches whole, not as a prefix");
	int64_t n = 0, oldest = 0;
	OK(store_notify_backlog(s, &n, &oldest, &e));
	cr_assert_eq(n, 3);
	cr_assert_gt(oldest, 0);

	/* only the head of each subscription's queue */
	int64_t now = store_now_ms() + 1000;
	OK(store_notify_pending(s, now, 10, &out, &e));
	cr_assert_eq(json_array_size(out), 2);
	json_t *h = json_array_get(out, 0);
	cr_assert_eq(json_integer_value(json_object_get(h, "subscription")), a);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(h, "payload"), "n")), 1);
	cr_assert_str_eq(str(h, "secret"), "k3y", "the deliverer gets the secret");
	cr_assert_str_eq(str(h, "type"), "step.passed");
	cr_assert_str_eq(str(h, "format"), "json");
	int64_t head_a = json_integer_value(json_object_get(h, "id"));
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(out, 1), "subscription")), b);
	json_decref(out);

	/* a failed attempt postpones the head; the next row of a waits behind it */
	OK(store_notify_mark(s, head_a, 0, now + 60000, "connection refused", &e));
	OK(store_notify_pending(s, now, 10, &out, &e));
	cr_assert_eq(json_array_size(out), 1, "a's head is not due, and nothing overtakes it");
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(out, 0), "subscription")), b);
	json_decref(out);
	OK(store_notify_pending(s, now + 60000, 10, &out, &e));
	cr_assert_eq(json_array_size(out), 2);
	h = json_array_get(out, 0);
	cr_assert_eq(json_integer_value(json_object_get(h, "id")), head_a);
	cr_assert_eq(json_integer_value(json_object_get(h, "attempts")), 1);
	json_decref(out);
	/* delivered: the next row is the head */
	OK(store_notify_mark(s, head_a, 1, 0, NULL, &e));
	OK(store_notify_pending(s, now, 1, &out, &e));
	cr_assert_eq(json_array_size(out), 1, "limit");
	json_decref(out);
	OK(store_notify_pending(s, now, 10, &out, &e));
	cr_assert_eq(json_array_size(out), 2);
	h = json_array_get(out, 1);
	cr_assert_eq(json_integer_value(json_object_get(h, "subscription")), a);
	cr_assert_eq(json_integer_value(json_object_get(json_object_get(h, "payload"), "n")), 2);
	json_decref(out);
	OK(store_notify_backlog(s, &n, &oldest, &e));
	cr_assert_eq(n, 2);
	cr_assert_eq(store_notify_mark(s, 999999, 1, 0, NULL, &e), STORE_NOTFOUND);
	/* a removed subscription's rows are no longer pending */
	OK(store_delete_subscription(s, b, &e));
	OK(store_notify_backlog(s, &n, &oldest, &e));
	cr_assert_eq(n, 1);
	json_decref(p1);
	json_decref(p2);
	store_close(s);
}

/* The event hook writes in the event's transaction: both or neither. */
static int hook_calls;
static int test_hook(void *ctx, store *s, int64_t deployment, const char *type, const char *region,
		     const char *message, const json_t *evidence, struct err *e)
{
	(void)ctx;
	(void)region;
	(void)evidence;
	hook_calls++;
	if (!strcmp(message, "fail"))
		return err_set(e, "the hook refuses");
	json_t *p = json_pack("{s:I,s:s}", "deployment", (json_int_t)deployment, "type", type);
	int rc = store_notify_enqueue(s, "production", "checkout", "step.passed", p, NULL, e);
	json_decref(p);
	return rc;
}

void conformance_outbox_with_its_event(const struct store_factory *f)
{
	store *s = f->open_fresh();
	struct err e;
	json_t *st = json_object(), *out = NULL;
	int64_t id = 0, n = 0, oldest = 0;
	(void)subscribe(s, "", "", ",step.passed,", "");
	OK(store_create_deployment(s, "checkout", "production", "1.0.0", "deploy", st, &id, &e));
	store_set_event_hook(s, test_hook, NULL);
	hook_calls = 0;
	/* outside a transaction: the store opens one */
	OK(store_add_event(s, id, "passed", "eu", "ok", NULL, &e));
	OK(store_notify_backlog(s, &n, &oldest, &e));
	cr_assert_eq(n, 1);
	/* a hook that fails fails the event, and neither is written */
	cr_assert_eq(store_add_event(s, id, "passed", "eu", "fail", NULL, &e), -1);
	/* inside the caller's transaction, rolled back: neither */
	OK(store_begin(s, &e));
	OK(store_add_event(s, id, "passed", "eu", "ok", NULL, &e));
	store_rollback(s);
	OK(store_list_events(s, id, &out, &e));
	cr_assert_eq(json_array_size(out), 1, "only the first event");
	json_decref(out);
	OK(store_notify_backlog(s, &n, &oldest, &e));
	cr_assert_eq(n, 1, "only the first event's row");
	/* committed: both */
	OK(store_begin(s, &e));
	OK(store_add_event(s, id, "passed", "eu", "ok", NULL, &e));
	OK(store_commit(s, &e));
	OK(store_notify_backlog(s, &n, &oldest, &e));
	cr_assert_eq(n, 2);
	cr_assert_eq(hook_calls, 4);
	/* no hook, no rows */
	store_set_event_hook(s, NULL, NULL);
	OK(store_add_event(s, id, "passed", "eu", "ok", NULL, &e));
	OK(store_notify_backlog(s, &n, &oldest, &e));
	cr_assert_eq(n, 2);
	json_decref(st);
	store_close(s);
}
