/*
 * Unit tests of the typed manifests (manifest_service_parse, manifest_env_parse): the example
 * manifests parse into the fields their YAML says, defaults included, and bad stored input is
 * refused with the field path.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/manifest.h"

/* The normalized manifests of a file, as the server stores them. */
static json_t *load(const char *path)
{
	doc *d = NULL;
	struct err e;
	cr_assert_eq(doc_load(path, &d, &e), 0, "%s", e.msg);
	json_t *out = NULL;
	cr_assert_eq(manifest_validate(d, &out, &e), 0, "%s", e.msg);
	doc_free(d);
	/* Through text, as the store does. */
	char *text = json_dumps(out, JSON_COMPACT);
	json_decref(out);
	json_t *back = json_loads(text, 0, NULL);
	free(text);
	cr_assert(back);
	return back;
}

static const json_t *find(const json_t *all, const char *name)
{
	for (size_t i = 0; i < json_array_size(all); i++)
		if (!strcmp(json_string_value(json_object_get(json_array_get(all, i), "name")), name))
			return json_array_get(all, i);
	cr_assert_fail("no manifest named %s", name);
	return NULL;
}

Test(manifest_typed, example_services)
{
	static const struct {
		const char *name;
		int listen_port, instances;
		uint64_t drain_ms, health_interval_ms, step_ms, max_step_ms, bake_ms, p99_ms, interval_ms;
		int min_requests;
		double max_error_rate_increase;
		size_t ndepends;
		const char *depends0, *smoke_path, *body_contains;
		uint64_t smoke_timeout_ms;
		size_t nenv;
	} rows[] = {
		{"metadata", 18001, 2, 2000, 500, 2000, 30000, 2000, 500, 250, 20, 0.05, 0, NULL, "/items/1",
		 "\"id\"", 1000, 2},
		{"profile", 18002, 2, 2000, 500, 2000, 30000, 2000, 500, 250, 20, 0.02, 1, "metadata",
		 "/profiles/1", "\"color\"", 1000, 0},
		{"web", 18003, 1, 2000, 500, 2000, 30000, 2000, 500, 250, 20, 0.02, 1, "profile", "/?user=1",
		 "\"page\"", 2000, 0},
	};
	json_t *all = load(SRC_DIR "/examples/manifests/services.yaml");
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct service_manifest *s = NULL;
		struct err e;
		cr_assert_eq(manifest_service_parse(find(all, rows[i].name), &s, &e), 0, "%s", e.msg);
		cr_expect_str_eq(s->name, rows[i].name);
		cr_expect_eq(s->listen_port, rows[i].listen_port, "%s", rows[i].name);
		cr_expect_eq(s->instances, rows[i].instances, "%s", rows[i].name);
		cr_expect_eq(s->drain_timeout_ms, rows[i].drain_ms, "%s", rows[i].name);
		cr_expect_eq(s->health.interval_ms, rows[i].health_interval_ms);
		cr_expect_eq(s->health.timeout_ms, 500);
		cr_expect_str_eq(s->health.path, "/healthz");
		cr_expect_eq(s->strategy.type, MANIFEST_CANARY);
		cr_assert_eq(s->strategy.nsteps, 3);
		cr_expect_eq(s->strategy.steps[0], 10);
		cr_expect_eq(s->strategy.steps[2], 100);
		cr_expect_eq(s->strategy.step_duration_ms, rows[i].step_ms);
		cr_expect_eq(s->strategy.max_step_duration_ms, rows[i].max_step_ms);
		cr_expect_eq(s->strategy.max_surge, 1);
		cr_expect_eq(s->strategy.keep_old_ms, 30000);
		cr_expect_eq(s->bake_ms, rows[i].bake_ms);
		cr_expect_eq(s->analysis.min_requests, rows[i].min_requests);
		cr_expect_eq(s->analysis.max_p99_latency_ms, rows[i].p99_ms);
		cr_expect_eq(s->analysis.interval_ms, rows[i].interval_ms);
		cr_expect_float_eq(s->analysis.max_error_rate_increase, rows[i].max_error_rate_increase, 1e-9);
		cr_expect_eq(s->analysis.method, MANIFEST_SEQUENTIAL);
		cr_expect_float_eq(s->analysis.alpha, 0.05, 1e-9);
		cr_expect_float_eq(s->analysis.pass_score, 95.0, 1e-9);
		cr_expect(!s->analysis.baseline);
		cr_expect_eq(s->analysis.nmetrics, 0);
		cr_expect_str_eq(s->analysis.prometheus, "http://127.0.0.1:9090");
		cr_expect_eq(s->policy.concurrency, MANIFEST_QUEUE);
		cr_assert_eq(s->ndepends, rows[i].ndepends);
		if (rows[i].depends0)
			cr_expect_str_eq(s->depends_on[0], rows[i].depends0);
		cr_assert_eq(s->nsmoke, 1);
		cr_expect_str_eq(s->smoke[0].path, rows[i].smoke_path);
		cr_expect_str_eq(s->smoke[0].body_contains, rows[i].body_contains);
		cr_expect_eq(s->smoke[0].method, MANIFEST_GET);
		cr_expect_eq(s->smoke[0].status, 200);
		cr_expect_eq(s->smoke[0].timeout_ms, rows[i].smoke_timeout_ms);
		cr_expect_str_eq(s->run.command, "{artifact}");
		cr_assert_eq(s->run.nargs, 2);
		cr_expect_str_eq(s->run.args[0], "--port");
		cr_expect_str_eq(s->run.args[1], "{port}");
		cr_expect_eq(s->run.nenv, rows[i].nenv);
		manifest_service_free(s);
	}
	/* env of metadata, in file order */
	struct service_manifest *s = NULL;
	struct err e;
	cr_assert_eq(manifest_service_parse(find(all, "metadata"), &s, &e), 0, "%s", e.msg);
	cr_expect_str_eq(s->run.env[0].name, "LOG_LEVEL");
	cr_expect_str_eq(s->run.env[0].value, "info");
	cr_expect_str_eq(s->run.env[1].name, "SLUICE_ENV");
	cr_expect_str_eq(s->run.env[1].value, "{env}");
	json_decref(all); /* the parsed manifest shares nothing with its input */
	cr_expect_str_eq(s->run.env[1].value, "{env}");
	cr_expect_str_eq(s->name, "metadata");
	manifest_service_free(s);
	manifest_service_free(NULL);
}

Test(manifest_typed, example_environments)
{
	json_t *all = load(SRC_DIR "/examples/manifests/environments.yaml");
	struct env_manifest *pre = NULL, *prod = NULL;
	struct err e;
	cr_assert_eq(manifest_env_parse(find(all, "preprod"), &pre, &e), 0, "%s", e.msg);
	cr_assert_eq(manifest_env_parse(find(all, "production"), &prod, &e), 0, "%s", e.msg);
	json_decref(all);

	cr_expect_str_eq(pre->name, "preprod");
	cr_assert_eq(pre->nregions, 1);
	cr_expect_str_eq(pre->regions[0].name, "local");
	cr_expect_eq(pre->regions[0].port_offset, 1000);
	cr_expect_eq(pre->regions[0].runtime, MANIFEST_RUNTIME_LOCAL);
	cr_assert_eq(pre->nwaves, 1);
	cr_expect_eq(pre->waves[0].nregions, 1);
	cr_expect_eq(pre->waves[0].regions[0], 0);
	cr_expect_eq(pre->stage.side_by_side_ms, 4000);
	cr_expect_eq(pre->stage.traffic_rate, 50);
	cr_expect_null(pre->promotion.from);
	cr_expect_eq(pre->policy.region_retries, 2);
	cr_expect_eq(pre->policy.retry_backoff_ms, 2000);

	static const struct {
		const char *name;
		int port_offset;
		size_t wave;
	} regions[] = {{"us-east", 0, 0}, {"eu-west", 100, 1}};
	cr_assert_eq(prod->nregions, 2);
	cr_assert_eq(prod->nwaves, 2);
	for (size_t i = 0; i < 2; i++) {
		cr_expect_str_eq(prod->regions[i].name, regions[i].name);
		cr_expect_str_eq(prod->regions[i].runtime_kind, "local");
		cr_expect_eq(prod->regions[i].port_offset, regions[i].port_offset);
		cr_expect_eq(prod->waves[regions[i].wave].regions[0], i);
	}
	cr_expect_str_eq(prod->promotion.from, "preprod");
	cr_expect(!prod->policy.allow_unknown_consumers);
	cr_expect_eq(prod->policy.wave_bake_ms, 2000);
	cr_expect_eq(prod->policy.on_region_failure, MANIFEST_HALT);
	cr_expect_eq(prod->policy.retry_backoff_ms, 1000);
	cr_expect_eq(prod->stage.side_by_side_ms, 20000);
	manifest_env_free(pre);
	manifest_env_free(prod);
	manifest_env_free(NULL);
}

Test(manifest_typed, every_value_of_a_full_service)
{
	const char *y = "kind: Service\nname: web\nlisten_port: 80\n"
			"run: {command: ./web, args: [-v], env: {A: 1}}\n"
			"strategy: {type: rolling, max_surge: 0, max_unavailable: 2, step_duration: 1s, "
			"max_step_duration: 1m}\n"
			"analysis: {method: threshold, baseline: false, prometheus: 'http://p:9090',\n"
			"  metrics: [{name: p95, query: up, direction: increase, critical: true, weight: 2,\n"
			"             allowed_increase: 1.5, critical_increase: 3}]}\n"
			"policy: {concurrency: supersede}\n"
			"smoke: [{path: /h, method: HEAD, status: 204, timeout: 50ms}]\n";
	doc *d = NULL;
	struct err e;
	cr_assert_eq(doc_parse("w.yaml", y, strlen(y), &d, &e), 0, "%s", e.msg);
	json_t *out = NULL;
	cr_assert_eq(manifest_validate(d, &out, &e), 0, "%s", e.msg);
	doc_free(d);
	struct service_manifest *s = NULL;
	cr_assert_eq(manifest_service_parse(json_array_get(out, 0), &s, &e), 0, "%s", e.msg);
	json_decref(out);
	cr_expect_str_eq(s->run.command, "./web");
	cr_expect_str_eq(s->run.env[0].value, "1");
	cr_expect_eq(s->strategy.type, MANIFEST_ROLLING);
	cr_expect_eq(s->strategy.max_surge, 0);
	cr_expect_eq(s->strategy.max_unavailable, 2);
	cr_expect_eq(s->analysis.method, MANIFEST_THRESHOLD);
	cr_expect_str_eq(s->analysis.prometheus, "http://p:9090");
	cr_assert_eq(s->analysis.nmetrics, 1);
	const struct manifest_metric *m = &s->analysis.metrics[0];
	cr_expect_str_eq(m->name, "p95");
	cr_expect_str_eq(m->query, "up");
	cr_expect_eq(m->direction, MANIFEST_INCREASE);
	cr_expect(m->critical);
	cr_expect_float_eq(m->weight, 2.0, 1e-9);
	cr_expect_float_eq(m->allowed_increase, 1.5, 1e-9);
	cr_expect_float_eq(m->allowed_decrease, 1.0, 1e-9);
	cr_expect_float_eq(m->critical_increase, 3.0, 1e-9);
	cr_expect_eq(s->policy.concurrency, MANIFEST_SUPERSEDE);
	cr_expect_eq(s->smoke[0].method, MANIFEST_HEAD);
	cr_expect_eq(s->smoke[0].status, 204);
	cr_expect_null(s->smoke[0].body_contains);
	cr_expect_eq(s->smoke[0].timeout_ms, 50);
	manifest_service_free(s);
}

/* Bad stored input: one mutation of a good manifest per row, refused with its field path. */
static void set_path(json_t *root, const char *path, json_t *v)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	json_t *o = root;
	char *save = NULL, *tok = strtok_r(buf, ".", &save), *next;
	for (; (next = strtok_r(NULL, ".", &save)); tok = next) {
		char *end;
		long i = strtol(tok, &end, 10);
		o = *end ? json_object_get(o, tok) : json_array_get(o, (size_t)i);
	}
	if (v)
		json_object_set_new(o, tok, v);
	else
		json_object_del(o, tok);
}

Test(manifest_typed, bad_stored_input_names_the_field)
{
	static const struct {
		int env;
		const char *path, *value; /* value as JSON text, NULL to delete the key */
		const char *want;
	} rows[] = {
		{0, "listen_port", "\"80\"", "Service 'metadata': listen_port: expected an integer port 1..65535, got \"80\""},
		{0, "strategy.step_duration_ms", "\"2s\"",
		 "Service 'metadata': strategy.step_duration_ms: expected an integer of milliseconds, got \"2s\""},
		{0, "analysis.baseline", "\"false\"", "Service 'metadata': analysis.baseline: expected true or false, got \"false\""},
		{0, "smoke.0.status", "700", "Service 'metadata': smoke[0].status: expected an HTTP status 100..599, got 700"},
		{0, "health.interval_ms", NULL,
		 "Service 'metadata': health: missing key \"interval_ms\" (a normalized manifest has every key)"},
		{0, "run.env.PORT", "8080",
		 "Service 'metadata': run.env.PORT: expected a string, number or boolean (at most 4096 bytes), got 8080"},
		{0, "kind", "\"Environment\"", "Environment 'metadata': listen_port: unknown key, expected one of: kind, name, regions"},
		{1, "regions.0.port_offset", "\"0\"",
		 "Environment 'production': regions[0].port_offset: expected an integer port offset 0..60000, got \"0\""},
		{1, "waves", "[[\"us-east\"]]",
		 "Environment 'production': waves: region \"eu-west\" is in no wave (every region must be in exactly one)"},
		{1, "policy.wave_bake", "5", "Environment 'production': policy.wave_bake: unknown key, expected one of: "},
		{1, "kind", "\"Service\"", "Service 'production': regions: unknown key, expected one of: kind, name, listen_port"},
	};
	json_t *svcs = load(SRC_DIR "/examples/manifests/services.yaml");
	json_t *envs = load(SRC_DIR "/examples/manifests/environments.yaml");
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		json_t *m = json_deep_copy(rows[i].env ? find(envs, "production") : find(svcs, "metadata"));
		json_t *v = rows[i].value ? json_loads(rows[i].value, JSON_DECODE_ANY, NULL) : NULL;
		set_path(m, rows[i].path, v);
		struct err e = {{0}};
		int rc;
		if (rows[i].env) {
			struct env_manifest *env = (struct env_manifest *)0x1;
			rc = manifest_env_parse(m, &env, &e);
			cr_expect_eq(env, (struct env_manifest *)0x1, "row %zu: *out changed", i);
		} else {
			struct service_manifest *s = (struct service_manifest *)0x1;
			rc = manifest_service_parse(m, &s, &e);
			cr_expect_eq(s, (struct service_manifest *)0x1, "row %zu: *out changed", i);
		}
		cr_expect_eq(rc, -1, "row %zu accepted", i);
		cr_expect(!strncmp(e.msg, rows[i].want, strlen(rows[i].want)), "row %zu: got '%s'", i, e.msg);
		json_decref(m);
	}
	/* The right shape of the wrong kind. */
	struct service_manifest *s = NULL;
	struct err e;
	cr_expect_eq(manifest_service_parse(find(envs, "production"), &s, &e), -1);
	cr_expect_str_eq(e.msg, "Environment 'production': kind: expected Service, got \"Environment\"");
	struct env_manifest *env = NULL;
	cr_expect_eq(manifest_env_parse(NULL, &env, &e), -1);
	cr_expect_str_eq(e.msg, "manifest '?': expected a mapping with kind: Environment, Service or FlagSet, got nothing");
	json_decref(svcs);
	json_decref(envs);
}

Test(manifest_typed, a_docker_region_carries_its_settings)
{
	const char *y = "kind: Environment\nname: prod\nregions:\n"
			"  - {name: a, runtime: {kind: docker, hosts: [unix:///run/d1.sock, tcp://n2:2376],\n"
			"     tls: {ca: /c, cert: /e, key: /k}, ports: [21000, 21999]}}\n"
			"  - {name: b, runtime: {kind: local}}\n"
			"  - {name: c}\n";
	doc *d = NULL;
	struct err e;
	cr_assert_eq(doc_parse("e.yaml", y, strlen(y), &d, &e), 0, "%s", e.msg);
	json_t *out = NULL;
	cr_assert_eq(manifest_validate(d, &out, &e), 0, "%s", e.msg);
	struct env_manifest *env = NULL;
	cr_assert_eq(manifest_env_parse(json_array_get(out, 0), &env, &e), 0, "%s", e.msg);
	json_decref(out);
	doc_free(d);
	cr_assert_eq(env->nregions, 3);
	cr_expect_eq(env->regions[0].runtime, MANIFEST_RUNTIME_DOCKER);
	cr_expect_str_eq(env->regions[0].runtime_kind, "docker");
	const json_t *st = env->regions[0].runtime_settings;
	cr_assert_not_null(st, "the docker region's settings are its runtime mapping");
	cr_expect_str_eq(json_string_value(json_array_get(json_object_get(st, "hosts"), 1)), "tcp://n2:2376");
	cr_expect_eq(json_integer_value(json_array_get(json_object_get(st, "ports"), 0)), 21000);
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(st, "tls"), "key")), "/k");
	for (size_t i = 1; i < 3; i++) {
		cr_expect_str_eq(env->regions[i].runtime_kind, "local");
		cr_expect_null(env->regions[i].runtime_settings, "a local region has the defaults");
	}
	manifest_env_free(env);
}

/* route: hosts on a shared listener, without a port of the service's own */
Test(manifest_typed, a_route_by_host)
{
	const char *y = "kind: Service\nname: api\n"
			"route: {hosts: ['api.{region}.{env}.example.com', '*.api.example.com'], "
			"path_prefix: /v1, port: 8080}\n";
	doc *d = NULL;
	struct err e;
	cr_assert_eq(doc_parse("a.yaml", y, strlen(y), &d, &e), 0, "%s", e.msg);
	json_t *out = NULL;
	cr_assert_eq(manifest_validate(d, &out, &e), 0, "%s", e.msg);
	doc_free(d);
	struct service_manifest *s = NULL;
	cr_assert_eq(manifest_service_parse(json_array_get(out, 0), &s, &e), 0, "%s", e.msg);
	json_decref(out);
	cr_expect_eq(s->listen_port, 0);
	cr_assert_eq(s->route.nhosts, 2);
	cr_expect_str_eq(s->route.hosts[1], "*.api.example.com");
	cr_expect_str_eq(s->route.path_prefix, "/v1");
	cr_expect_eq(s->route.port, 8080);
	char h[64];
	cr_assert_eq(manifest_route_host(s->route.hosts[0], "production", "eu", h, sizeof(h)), 0);
	cr_expect_str_eq(h, "api.eu.production.example.com");
	cr_expect_eq(manifest_route_host(s->route.hosts[0], "production", "eu", h, 20), -1);
	manifest_service_free(s);
	/* without route: no hosts, no prefix */
	y = "kind: Service\nname: web\nlisten_port: 80\n";
	cr_assert_eq(doc_parse("w.yaml", y, strlen(y), &d, &e), 0, "%s", e.msg);
	cr_assert_eq(manifest_validate(d, &out, &e), 0, "%s", e.msg);
	doc_free(d);
	cr_assert_eq(manifest_service_parse(json_array_get(out, 0), &s, &e), 0, "%s", e.msg);
	json_decref(out);
	cr_expect_eq(s->route.nhosts, 0);
	cr_expect_null(s->route.path_prefix);
	cr_expect_eq(s->route.port, 0);
	manifest_service_free(s);
}
