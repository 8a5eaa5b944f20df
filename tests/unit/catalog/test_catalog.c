/*
 * Unit tests of the server's catalog (src/server/catalog.h): manifests parsed once and handed
 * out again while the store is unchanged, re-read after a write, references that outlive a
 * change, the store's contract (not found is not failed), lists ordered by name, and the
 * derived answers (listen port, a region's runtime).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/catalog.h"
#include "support/fake_runtime.h"
#include "util/doc.h"

static char dir[] = "/tmp/sluice-catalog-XXXXXX";
static store *st;
static runtimes *rts;

static void setup(void)
{
	struct err e = {""};
	cr_assert(mkdtemp(dir));
	char loc[64];
	snprintf(loc, sizeof(loc), "sqlite:%s/db", dir);
	cr_assert_eq(store_open(&st, loc, &e), 0, "%s", e.msg);
	runtime *fake = NULL;
	struct runtime_host host = {.data_dir = dir};
	cr_assert_eq(runtime_open_ops(&fake, &fake_runtime_ops, NULL, &host, &e), 0, "%s", e.msg);
	cr_assert_eq(runtimes_open_with(&rts, dir, fake, &e), 0, "%s", e.msg);
}

static void teardown(void)
{
	runtimes_close(rts);
	store_close(st);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(catalog, .init = setup, .fini = teardown);

/* Validates YAML and stores each manifest as `sluice apply` does. */
static void apply(const char *yaml)
{
	doc *d = NULL;
	struct err e = {""};
	cr_assert_eq(doc_parse("t.yaml", yaml, strlen(yaml), &d, &e), 0, "%s", e.msg);
	json_t *all = NULL;
	cr_assert_eq(manifest_validate(d, &all, &e), 0, "%s", e.msg);
	doc_free(d);
	size_t i;
	json_t *m;
	json_array_foreach(all, i, m)
		cr_assert_eq(store_put_manifest(st, json_string_value(json_object_get(m, "kind")),
						json_string_value(json_object_get(m, "name")), m, NULL, &e),
			     0, "%s", e.msg);
	json_decref(all);
}

static const char *env_yaml = "kind: Environment\nname: production\n"
			      "regions: [{name: east}, {name: west, port_offset: 100}]\n";

Test(catalog, parses_once_while_the_store_is_unchanged)
{
	apply("kind: Service\nname: web\nlisten_port: 8080\nrun: {command: ./web}\n");
	catalog *c = catalog_new(st, rts);
	cr_assert(c);
	const struct service_manifest *a = NULL, *b = NULL;
	struct err e = {""};
	cr_assert_eq(catalog_service(c, "web", &a, &e), 0, "%s", e.msg);
	cr_assert_eq(catalog_service(c, "web", &b, &e), 0, "%s", e.msg);
	cr_expect_eq(a, b, "the same parse is handed out again");
	cr_expect_eq(a->listen_port, 8080);
	cr_expect_eq(a->health.interval_ms, 1000, "defaults are filled: %llu",
		     (unsigned long long)a->health.interval_ms);
	catalog_release_service(c, b);
	catalog_release_service(c, a);
	catalog_free(c);
}

/* Deployments, events, stable releases and releases are written all the time while pipelines
 * run: none of them is a manifest, so none makes the catalog read and parse every manifest
 * again (with 1,000 services that was every tick). */
Test(catalog, writes_that_are_no_manifest_keep_the_parse)
{
	apply("kind: Service\nname: web\nlisten_port: 8080\nrun: {command: ./web}\n");
	catalog *c = catalog_new(st, rts);
	cr_assert(c);
	const struct service_manifest *a = NULL, *b = NULL, *d = NULL;
	struct err e = {""};
	cr_assert_eq(catalog_service(c, "web", &a, &e), 0, "%s", e.msg);
	int created;
	cr_assert_eq(store_put_release(st, "web", "v1", "sha256:" "00000000000000000000000000000000"
				       "000000000000000000000000000000ff", 3, NULL, &created, &e),
		     0, "%s", e.msg);
	cr_assert_eq(store_set_stable(st, "web", "production", "local", "v1", 0, &e), 0, "%s", e.msg);
	cr_assert_eq(catalog_service(c, "web", &b, &e), 0, "%s", e.msg);
	cr_expect_eq(a, b, "the same parse after writes of other kinds");
	apply("kind: Service\nname: web\nlisten_port: 8081\nrun: {command: ./web}\n");
	cr_assert_eq(catalog_service(c, "web", &d, &e), 0, "%s", e.msg);
	cr_expect_neq(a, d, "a changed manifest is parsed again");
	cr_expect_eq(d->listen_port, 8081);
	cr_expect_eq(a->listen_port, 8080, "the old reference is unchanged");
	catalog_release_service(c, d);
	catalog_release_service(c, b);
	catalog_release_service(c, a);
	catalog_free(c);
}

Test(catalog, a_reference_outlives_a_change)
{
	apply("kind: Service\nname: web\nlisten_port: 8080\nrun: {command: ./web}\n");
	catalog *c = catalog_new(st, rts);
	const struct service_manifest *old = NULL, *cur = NULL;
	struct err e = {""};
	cr_assert_eq(catalog_service(c, "web", &old, &e), 0, "%s", e.msg);
	apply("kind: Service\nname: web\nlisten_port: 9090\nrun: {command: ./web}\n");
	cr_assert_eq(catalog_service(c, "web", &cur, &e), 0, "%s", e.msg);
	cr_expect_neq(old, cur, "a write to the store means a new parse");
	cr_expect_eq(cur->listen_port, 9090);
	cr_expect_eq(old->listen_port, 8080, "the old version stays valid until released");
	cr_expect_str_eq(old->name, "web");
	catalog_release_service(c, old);
	catalog_release_service(c, cur);
	catalog_release_service(c, NULL);
	catalog_free(c);
}

Test(catalog, not_found_and_lists)
{
	apply("kind: Service\nname: web\nlisten_port: 8080\nrun: {command: ./web}\n---\n"
	      "kind: Service\nname: api\nlisten_port: 8081\nrun: {command: ./api}\n");
	catalog *c = catalog_new(st, rts);
	const struct service_manifest *s = NULL;
	const struct env_manifest *en = NULL;
	struct err e = {""};
	cr_expect_eq(catalog_service(c, "nope", &s, &e), STORE_NOTFOUND);
	cr_expect_null(s);
	cr_expect_eq(catalog_environment(c, "production", &en, &e), STORE_NOTFOUND);
	const struct service_manifest **all = NULL;
	size_t n = 0;
	cr_assert_eq(catalog_services(c, &all, &n, &e), 0, "%s", e.msg);
	cr_assert_eq(n, 2);
	cr_expect_str_eq(all[0]->name, "api", "ordered by name");
	cr_expect_str_eq(all[1]->name, "web");
	/* once listed, a lookup is served from the list */
	cr_assert_eq(catalog_service(c, "web", &s, &e), 0, "%s", e.msg);
	cr_expect_eq(s, all[1]);
	e.msg[0] = '\0';
	const struct service_manifest *none = NULL;
	cr_expect_eq(catalog_service(c, "nope", &none, &e), STORE_NOTFOUND);
	cr_expect(strstr(e.msg, "nope"), "%s", e.msg);
	catalog_release_service(c, s);
	catalog_release_services(c, all, n);
	const struct env_manifest **envs = NULL;
	cr_assert_eq(catalog_environments(c, &envs, &n, &e), 0, "%s", e.msg);
	cr_expect_eq(n, 0);
	cr_expect_null(envs);
	catalog_free(c);
}

Test(catalog, listen_port_and_runtime)
{
	apply(env_yaml);
	apply("kind: Service\nname: web\nlisten_port: 8080\nrun: {command: ./web}\n");
	catalog *c = catalog_new(st, rts);
	struct err e = {""};
	cr_expect_eq(catalog_listen_port(c, "production", "east", "web", &e), 8080);
	cr_expect_eq(catalog_listen_port(c, "production", "west", "web", &e), 8180);
	cr_expect_eq(catalog_listen_port(c, "production", "north", "web", &e), 0);
	cr_expect_eq(catalog_listen_port(c, "production", "east", "nope", &e), 0);
	cr_expect_eq(catalog_listen_port(c, "staging", "east", "web", &e), 0);
	runtime *rt = NULL;
	cr_expect_eq(catalog_runtime(c, "production", "west", &rt, &e), 0, "%s", e.msg);
	cr_expect_not_null(rt);
	cr_expect_eq(runtimes_get(rts, "production", "west"), rt);
	cr_expect_eq(catalog_runtime(c, "production", "north", &rt, &e), STORE_NOTFOUND);
	cr_expect(strstr(e.msg, "north"), "%s", e.msg);
	const struct env_manifest *en = NULL;
	cr_assert_eq(catalog_environment(c, "production", &en, &e), 0, "%s", e.msg);
	cr_expect_eq(catalog_region(en, "west")->port_offset, 100);
	cr_expect_null(catalog_region(en, "north"));
	catalog_release_environment(c, en);
	catalog_free(c);
}
