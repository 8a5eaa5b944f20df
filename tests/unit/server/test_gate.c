/*
 * Unit tests of the gate (src/server/gate.c): can-i-deploy and plans over what the server
 * records as live, on a real SQLite store (wrapped so that its operations can fail) and the
 * fake runtime (whose list can fail). The contracts are the Metadata example's
 * (examples/contracts): profile v1 reads the `metadata` object, which metadata v3 drops;
 * profile v2 falls back to it and works with every metadata.
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract/contract.h"
#include "core/manifest.h"
#include "server/gate.h"
#include "server/runtimes.h"
#include "support/fake_runtime.h"
#include "support/faulty_store.h"
#include "util/doc.h"

#ifndef EXAMPLES
#error "EXAMPLES must name examples/contracts"
#endif

static struct {
	char dir[PATH_MAX];
	store *store;
	struct faulty_store *fault;
	runtimes *rts;
	runtime *rt;
} G;

/* The fake runtime, whose list fails while list_fails is set (a runtime that cannot be
 * reached). */
static int list_fails;
static struct runtime_ops failing_ops;

static int failing_list(void *drv, const char *service, const char *env, const char *region,
			const char *version, struct instance_info **out, size_t *n)
{
	if (list_fails)
		return -1;
	return fake_runtime_ops.list(drv, service, env, region, version, out, n);
}

static const char *const environment =
	"kind: Environment\n"
	"name: production\n"
	"regions:\n"
	"  - name: us-east\n"
	"  - name: eu-west\n"
	"    port_offset: 100\n";

static const char *const services =
	"kind: Service\n"
	"name: metadata\n"
	"listen_port: 18001\n"
	"---\n"
	"kind: Service\n"
	"name: profile\n"
	"listen_port: 18002\n"
	"depends_on: [metadata]\n"
	"---\n"
	"kind: Service\n"
	"name: web\n"
	"listen_port: 18003\n"
	"depends_on: [profile]\n";

static void apply(const char *name, const char *text)
{
	doc *d = NULL;
	json_t *ms = NULL;
	struct err e = {""};
	cr_assert_eq(doc_parse(name, text, strlen(text), &d, &e), 0, "%s", e.msg);
	cr_assert_eq(manifest_validate(d, &ms, &e), 0, "%s", e.msg);
	doc_free(d);
	size_t i;
	json_t *m;
	json_array_foreach(ms, i, m)
		cr_assert_eq(store_put_manifest(G.store, json_string_value(json_object_get(m, "kind")),
						json_string_value(json_object_get(m, "name")), m, NULL, &e),
			     0, "%s", e.msg);
	json_decref(ms);
}

/* Registers service@version with the example contract NAME (NULL: none). The gate reads no
 * artifact: the digest is made up. */
static void release(const char *service, const char *version, const char *contract_name)
{
	json_t *cj = NULL;
	struct err e = {""};
	if (contract_name) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s.yaml", EXAMPLES, contract_name);
		contract *c = NULL;
		cr_assert_eq(contract_load(path, &c, &e), 0, "%s", e.msg);
		cj = contract_to_json(c);
		contract_free(c);
	}
	char digest[80];
	snprintf(digest, sizeof(digest), "sha256:%064zx", strlen(service) * 1000 + strlen(version) + (size_t)version[1]);
	int created = 0;
	cr_assert_eq(store_put_release(G.store, service, version, digest, 1, cj, &created, &e), 0, "%s", e.msg);
	json_decref(cj);
}

static void set_stable(const char *service, const char *version)
{
	struct err e;
	cr_assert_eq(store_set_stable(G.store, service, "production", "us-east", version, 0, &e), 0, "%s", e.msg);
	cr_assert_eq(store_set_stable(G.store, service, "production", "eu-west", version, 0, &e), 0, "%s", e.msg);
}

/* Starts n instances of service@version in region, as a rollout or a draining version would
 * leave them. */
static void run_instances(const char *service, const char *version, const char *region, unsigned n)
{
	struct instance_spec spec = {.service = service, .env = "production", .region = region,
				     .version = version, .artifact = "/nonexistent", .command = "{artifact}"};
	struct err e = {""};
	cr_assert_eq(runtime_ensure(G.rt, &spec, n, &e), 0, "%s", e.msg);
}

static void setup(void)
{
	struct err e = {""};
	snprintf(G.dir, sizeof(G.dir), "/tmp/sluice-test-gate-XXXXXX");
	cr_assert(mkdtemp(G.dir));
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/sluice.db", G.dir);
	store *inner = NULL;
	cr_assert_eq(store_open(&inner, path, &e), 0, "%s", e.msg);
	cr_assert_eq(faulty_store_open(&G.store, &G.fault, inner, &e), 0, "%s", e.msg);
	failing_ops = fake_runtime_ops;
	failing_ops.list = failing_list;
	list_fails = 0;
	cr_assert_eq(runtime_open_ops(&G.rt, &failing_ops, NULL, &(struct runtime_host){G.dir}, &e), 0, "%s", e.msg);
	cr_assert_eq(runtimes_open_with(&G.rts, G.dir, G.rt, &e), 0, "%s", e.msg);
	apply("environments.yaml", environment);
	apply("services.yaml", services);
	release("metadata", "v1", "metadata-v1");
	release("metadata", "v2", "metadata-v2");
	release("metadata", "v3", "metadata-v3");
	release("profile", "v1", "profile-v1");
	release("profile", "v2", "profile-v2");
	set_stable("metadata", "v1");
	set_stable("profile", "v1");
}

static void teardown(void)
{
	runtimes_close(G.rts);
	store_close(G.store);
	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", G.dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", G.dir);
}

TestSuite(gate, .init = setup, .fini = teardown);

static const json_t *find_pair(const json_t *report, const char *prov, const char *cons)
{
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(report, "pairs"), i, p)
		if (!strcmp(json_string_value(json_object_get(p, "provider")), prov) &&
		    !strcmp(json_string_value(json_object_get(p, "consumer")), cons))
			return p;
	return NULL;
}

static const char *verdict(const json_t *j)
{
	const char *v = json_string_value(json_object_get(j, "verdict"));
	return v ? v : "(none)";
}

/* Whether array a holds the string s. */
static int has(const json_t *a, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), s))
			return 1;
	return 0;
}

static json_t *can_i_deploy(const char *service, const char *version, struct err *e)
{
	return gate_can_i_deploy(G.store, G.rts, NULL, service, version, "production", e);
}

Test(gate, a_compatible_release_is_ok)
{
	struct err e = {""};
	json_t *r = can_i_deploy("metadata", "v2", &e);
	cr_assert(r, "%s", e.msg);
	char *txt = json_dumps(r, 0);
	cr_expect_str_eq(verdict(r), "ok", "%s", txt);
	cr_expect_str_eq(json_string_value(json_object_get(r, "candidate")), "metadata@v2");
	const json_t *p = find_pair(r, "metadata@v2", "profile@v1");
	cr_assert(p, "the live consumer is checked: %s", txt);
	cr_expect_str_eq(verdict(p), "ok", "%s", txt);
	cr_expect(has(json_object_get(p, "regions"), "us-east") && has(json_object_get(p, "regions"), "eu-west"),
		  "they meet in both regions: %s", txt);
	free(txt);
	json_decref(r);
}

Test(gate, an_incompatible_release_is_refused_naming_the_consumer_and_the_field)
{
	struct err e = {""};
	json_t *r = can_i_deploy("metadata", "v3", &e);
	cr_assert(r, "%s", e.msg);
	char *txt = json_dumps(r, 0);
	cr_expect_str_eq(verdict(r), "refused", "%s", txt);
	const json_t *p = find_pair(r, "metadata@v3", "profile@v1");
	cr_assert(p, "%s", txt);
	cr_expect_str_eq(verdict(p), "refused", "%s", txt);
	char *reasons = json_dumps(json_object_get(p, "reasons"), 0);
	cr_expect(reasons && strstr(reasons, "/metadata") && strstr(reasons, "/items/{id}"),
		  "the reasons name the operation and the field: %s", reasons);
	free(reasons);
	/* the way back is known */
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(r, "rollback"), "target")), "metadata@v1",
			 "%s", txt);
	free(txt);
	json_decref(r);
	/* with profile v2 stable instead, metadata v3 is fine */
	set_stable("profile", "v2");
	r = can_i_deploy("metadata", "v3", &e);
	cr_assert(r, "%s", e.msg);
	cr_expect_str_eq(verdict(r), "ok");
	cr_expect_null(find_pair(r, "metadata@v3", "profile@v1"), "profile v1 is no longer live");
	json_decref(r);
}

Test(gate, a_version_running_only_as_instances_counts_as_live)
{
	set_stable("profile", "v2");
	struct err e = {""};
	/* profile v1 still runs in eu-west (draining, or a rollout that the store forgot) */
	run_instances("profile", "v1", "eu-west", 2);
	json_t *r = can_i_deploy("metadata", "v3", &e);
	cr_assert(r, "%s", e.msg);
	char *txt = json_dumps(r, 0);
	cr_expect_str_eq(verdict(r), "refused", "instances starting count: %s", txt);
	const json_t *p = find_pair(r, "metadata@v3", "profile@v1");
	cr_assert(p, "%s", txt);
	cr_expect(has(json_object_get(p, "regions"), "eu-west"), "%s", txt);
	cr_expect(!has(json_object_get(p, "regions"), "us-east"), "%s", txt);
	free(txt);
	json_decref(r);
	/* healthy ones too */
	runtimes_tick(G.rts, 1);
	r = can_i_deploy("metadata", "v3", &e);
	cr_assert(r, "%s", e.msg);
	cr_expect_str_eq(verdict(r), "refused", "healthy instances count");
	json_decref(r);
	/* once stopped, they are no longer live */
	runtime_stop(G.rt, "profile", "production", "eu-west", "v1");
	runtimes_tick(G.rts, 2);
	r = can_i_deploy("metadata", "v3", &e);
	cr_assert(r, "%s", e.msg);
	cr_expect_str_eq(verdict(r), "ok", "stopped instances do not count");
	json_decref(r);
}

Test(gate, unknown_service_release_or_environment)
{
	static const struct {
		const char *service, *version, *env, *says;
	} cases[] = {
		{"nosuch", "v1", "production", "nosuch"},
		{"metadata", "v404", "production", "v404"},
		{"metadata", "v2", "staging", "environment 'staging' is not known"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct err e = {""};
		json_t *r = gate_can_i_deploy(G.store, G.rts, NULL, cases[i].service, cases[i].version, cases[i].env, &e);
		cr_expect_null(r, "%s %s in %s", cases[i].service, cases[i].version, cases[i].env);
		json_decref(r);
		cr_expect(strstr(e.msg, cases[i].says) && strstr(e.msg, "not known"), "'%s' should say '%s'", e.msg,
			  cases[i].says);
		cr_expect(!store_failed(&e), "%s", e.msg);
	}
	struct err e = {""};
	json_t *t = json_pack("{s:s}", "metadata", "v2");
	cr_expect_null(gate_plan(G.store, G.rts, NULL, t, "staging", &e));
	cr_expect(strstr(e.msg, "environment 'staging' is not known"), "%s", e.msg);
	json_decref(t);
}

Test(gate, fails_when_the_runtime_cannot_list_instances)
{
	list_fails = 1;
	struct err e = {""};
	json_t *r = can_i_deploy("metadata", "v2", &e);
	cr_expect_null(r, "a version that may run unseen is never left out");
	json_decref(r);
	cr_expect(strstr(e.msg, "could not list the instances"), "%s", e.msg);
	json_t *t = json_pack("{s:s}", "metadata", "v2");
	r = gate_plan(G.store, G.rts, NULL, t, "production", &e);
	cr_expect_null(r);
	json_decref(r);
	cr_expect(strstr(e.msg, "could not list the instances"), "%s", e.msg);
	list_fails = 0;
	r = gate_plan(G.store, G.rts, NULL, t, "production", &e);
	cr_expect(r, "%s", e.msg);
	json_decref(r);
	json_decref(t);
}

Test(gate, fails_when_the_store_fails)
{
	static const char *const ops[] = {"*",           "get_manifest",       "list_manifests", "list_releases",
					  "get_release", "active_deployments", "list_stable"};
	json_t *t = json_pack("{s:s, s:s}", "metadata", "v3", "profile", "v2");
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		struct err e = {""};
		faulty_store_fail(G.fault, ops[i]);
		json_t *r = can_i_deploy("metadata", "v2", &e);
		cr_expect_null(r, "%s fails: can-i-deploy answered %s", ops[i], r ? verdict(r) : "");
		json_decref(r);
		cr_expect(store_failed(&e), "%s fails: '%s'", ops[i], e.msg);
		r = gate_plan(G.store, G.rts, NULL, t, "production", &e);
		cr_expect_null(r, "%s fails: plan answered %s", ops[i], r ? verdict(r) : "");
		json_decref(r);
		cr_expect(store_failed(&e), "%s fails: '%s'", ops[i], e.msg);
		faulty_store_fail(G.fault, NULL);
	}
	json_decref(t);
}

Test(gate, a_consumer_without_contract_fails_closed_unless_the_policy_allows_it)
{
	release("web", "v1", NULL);
	set_stable("web", "v1");
	struct err e = {""};
	json_t *r = can_i_deploy("profile", "v2", &e);
	cr_assert(r, "%s", e.msg);
	char *txt = json_dumps(r, 0);
	cr_expect_str_eq(verdict(r), "refused", "%s", txt);
	const json_t *p = find_pair(r, "profile@v2", "web@v1");
	cr_assert(p, "%s", txt);
	cr_expect_str_eq(verdict(p), "unknown", "%s", txt);
	free(txt);
	json_decref(r);
	char allow[512];
	snprintf(allow, sizeof(allow), "%spolicy:\n  allow_unknown_consumers: true\n", environment);
	apply("environments.yaml", allow);
	r = can_i_deploy("profile", "v2", &e);
	cr_assert(r, "%s", e.msg);
	cr_expect_str_eq(verdict(r), "ok");
	cr_expect(json_is_true(json_object_get(r, "allow_unknown")));
	json_decref(r);
}

Test(gate, plans)
{
	struct err e = {""};
	json_t *t = json_pack("{s:s, s:s}", "metadata", "v3", "profile", "v2");
	json_t *r = gate_plan(G.store, G.rts, NULL, t, "production", &e);
	cr_assert(r, "%s", e.msg);
	char *txt = json_dumps(r, 0);
	cr_expect_str_eq(verdict(r), "ok", "%s", txt);
	json_t *steps = json_object_get(r, "steps");
	cr_assert_eq(json_array_size(steps), 3, "metadata v2, profile v2, metadata v3: %s", txt);
	static const char *const want[][3] = {{"metadata", "v1", "v2"}, {"profile", "v1", "v2"}, {"metadata", "v2", "v3"}};
	for (size_t i = 0; i < 3; i++) {
		json_t *s = json_array_get(steps, i);
		cr_expect_str_eq(json_string_value(json_object_get(s, "service")), want[i][0], "%s", txt);
		cr_expect_str_eq(json_string_value(json_object_get(s, "from")), want[i][1], "%s", txt);
		cr_expect_str_eq(json_string_value(json_object_get(s, "to")), want[i][2], "%s", txt);
	}
	free(txt);
	json_decref(r);
	json_decref(t);
	/* bad targets */
	static const char *const bad[][2] = {
		{"{}", "at least one"},
		{"{\"metadata\": 3}", "targets.metadata"},
		{"{\"metadata\": \"v404\"}", "v404"},
		{"{\"nosuch\": \"v1\"}", "nosuch"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t = json_loads(bad[i][0], 0, NULL);
		cr_assert(t);
		r = gate_plan(G.store, G.rts, NULL, t, "production", &e);
		cr_expect_null(r, "%s", bad[i][0]);
		json_decref(r);
		cr_expect(strstr(e.msg, bad[i][1]), "%s: '%s' should say '%s'", bad[i][0], e.msg, bad[i][1]);
		cr_expect(!store_failed(&e), "%s", e.msg);
		json_decref(t);
	}
}
