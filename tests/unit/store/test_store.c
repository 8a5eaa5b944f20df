#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "store/store.h"

static char path[256];

static store *open_fresh(void)
{
	snprintf(path, sizeof(path), "/tmp/sluice-store-test-%d.db", getpid());
	unlink(path);
	store *s;
	struct err e;
	cr_assert_eq(store_open(&s, path, &e), 0, "%s", e.msg);
	return s;
}

static void cleanup(void)
{
	char p[300];
	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
}

Test(store, migrates_to_current_version_and_reopens, .fini = cleanup)
{
	store *s = open_fresh();
	cr_assert_eq(store_schema_version(s), STORE_SCHEMA_VERSION);
	store_close(s);
	struct err e;
	cr_assert_eq(store_open(&s, path, &e), 0, "%s", e.msg);
	cr_assert_eq(store_schema_version(s), STORE_SCHEMA_VERSION);
	store_close(s);
}

Test(store, refuses_a_newer_schema, .fini = cleanup)
{
	store *s = open_fresh();
	struct err e;
	cr_assert_eq(store_begin(s, &e), 0);
	store_rollback(s);
	store_close(s);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "sqlite3 %s 'PRAGMA user_version = 99' 2>/dev/null", path);
	if (system(cmd) != 0)
		cr_skip_test("sqlite3 shell not installed");
	cr_assert_eq(store_open(&s, path, &e), -1);
	cr_assert(strstr(e.msg, "newer"), "%s", e.msg);
}

Test(store, release_versions_are_immutable, .fini = cleanup)
{
	store *s = open_fresh();
	struct err e;
	int created;
	cr_assert_eq(store_put_release(s, "svc", "v1", "sha256:aa", 10, NULL, &created, &e), 0);
	cr_assert_eq(created, 1);
	cr_assert_eq(store_put_release(s, "svc", "v1", "sha256:aa", 10, NULL, &created, &e), 0);
	cr_assert_eq(created, 0);
	cr_assert_eq(store_put_release(s, "svc", "v1", "sha256:bb", 10, NULL, &created, &e), -1);
	cr_assert(strstr(e.msg, "immutable"), "%s", e.msg);
	json_t *list;
	cr_assert_eq(store_list_releases(s, "svc", &list, &e), 0);
	cr_assert_eq(json_array_size(list), 1);
	json_decref(list);
	store_close(s);
}

Test(store, rollback_discards_everything_in_the_transaction, .fini = cleanup)
{
	store *s = open_fresh();
	struct err e;
	json_t *spec = json_pack("{s:s}", "name", "a");
	cr_assert_eq(store_begin(s, &e), 0);
	cr_assert_eq(store_put_manifest(s, "Service", "a", spec, NULL, &e), 0);
	int64_t id;
	cr_assert_eq(store_create_deployment(s, "a", "production", "v1", "deploy", spec, &id, &e), 0);
	store_rollback(s);
	json_t *out = NULL;
	cr_assert_eq(store_get_manifest(s, "Service", "a", &out, &e), STORE_NOTFOUND);
	cr_assert_eq(store_get_deployment(s, id, &out, &e), STORE_NOTFOUND);
	cr_assert_eq(store_begin(s, &e), 0);
	int changed;
	cr_assert_eq(store_put_manifest(s, "Service", "a", spec, &changed, &e), 0);
	cr_assert_eq(changed, 1);
	cr_assert_eq(store_commit(s, &e), 0);
	cr_assert_eq(store_put_manifest(s, "Service", "a", spec, &changed, &e), 0);
	cr_assert_eq(changed, 0);
	json_decref(spec);
	store_close(s);
}

Test(store, stable_history_gives_the_previous_release, .fini = cleanup)
{
	store *s = open_fresh();
	struct err e;
	char v[64];
	cr_assert_eq(store_get_stable(s, "a", "prod", "r1", v, sizeof(v), &e), STORE_NOTFOUND);
	cr_assert_eq(store_set_stable(s, "a", "prod", "r1", "v1", 1, &e), 0);
	cr_assert_eq(store_set_stable(s, "a", "prod", "r1", "v2", 2, &e), 0);
	cr_assert_eq(store_get_stable(s, "a", "prod", "r1", v, sizeof(v), &e), 0);
	cr_assert_str_eq(v, "v2");
	cr_assert_eq(store_previous_stable(s, "a", "prod", "r1", "v2", v, sizeof(v), &e), 0);
	cr_assert_str_eq(v, "v1");
	store_close(s);
}

Test(store, events_are_kept_in_order, .fini = cleanup)
{
	store *s = open_fresh();
	struct err e;
	int64_t id;
	json_t *st = json_object();
	cr_assert_eq(store_create_deployment(s, "a", "prod", "v1", "deploy", st, &id, &e), 0);
	json_t *ev = json_pack("{s:s,s:f}", "metric", "error_rate", "value", 0.5);
	cr_assert_eq(store_add_event(s, id, "check", "r1", "first", NULL, &e), 0);
	cr_assert_eq(store_add_event(s, id, "abort", "r1", "second", ev, &e), 0);
	json_t *list;
	cr_assert_eq(store_list_events(s, id, &list, &e), 0);
	cr_assert_eq(json_array_size(list), 2);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 1), "message")), "second");
	cr_assert(json_equal(json_object_get(json_array_get(list, 1), "evidence"), ev));
	json_decref(list);
	json_decref(ev);
	json_decref(st);
	store_close(s);
}
