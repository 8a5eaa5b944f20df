/* Unit tests of src/core/manifest: good files, exact error texts with positions, normalized
 * output, and the normalized re-check. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/manifest.h"

/* Parses and validates text as file `name`; returns the rc, fills *out or e. */
static int validate(const char *name, const char *text, json_t **out, struct err *e)
{
	doc *d = NULL;
	e->msg[0] = '\0';
	if (doc_parse(name, text, strlen(text), &d, e))
		return -1;
	int rc = manifest_validate(d, out, e);
	doc_free(d);
	return rc;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	cr_assert(f, "cannot open %s", path);
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strdup(buf);
}

/* ---- durations and names ---- */

Test(manifest, durations)
{
	struct {
		const char *s;
		int rc;
		uint64_t ms;
	} cases[] = {
		{"250ms", 0, 250},   {"2s", 0, 2000},      {"1m", 0, 60000},     {"1h", 0, 3600000},
		{"1m30s", 0, 90000}, {"1h2m3s4ms", 0, 3723004}, {"1500", 0, 1500}, {"0", 0, 0},
		{"0s", 0, 0},        {"", -1, 0},          {"s", -1, 0},         {"10x", -1, 0},
		{"30s1m", -1, 0},    {"1s1s", -1, 0},      {"1.5s", -1, 0},      {"-1s", -1, 0},
		{" 1s", -1, 0},      {"1s ", -1, 0},       {"1ms5", -1, 0},      {"99999999999999999999", -1, 0},
		{"9999999999999999h", -1, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t ms = 12345;
		int rc = manifest_duration_ms(cases[i].s, &ms);
		cr_expect_eq(rc, cases[i].rc, "'%s': rc %d", cases[i].s, rc);
		if (rc == 0)
			cr_expect_eq(ms, cases[i].ms, "'%s': %llu ms", cases[i].s, (unsigned long long)ms);
	}
}

Test(manifest, names)
{
	cr_expect(manifest_name_ok("metadata"));
	cr_expect(manifest_name_ok("a"));
	cr_expect(manifest_name_ok("us-east-1"));
	cr_expect(manifest_name_ok("0abc9"));
	cr_expect(!manifest_name_ok(""));
	cr_expect(!manifest_name_ok("-a"));
	cr_expect(!manifest_name_ok("a-"));
	cr_expect(!manifest_name_ok("Meta"));
	cr_expect(!manifest_name_ok("a_b"));
	cr_expect(!manifest_name_ok("a.b"));
	char n63[64], n64[65];
	memset(n63, 'a', 63);
	n63[63] = '\0';
	memset(n64, 'a', 64);
	n64[64] = '\0';
	cr_expect(manifest_name_ok(n63));
	cr_expect(!manifest_name_ok(n64));
}

/* ---- good files ---- */

static void expect_valid_file(const char *path, size_t want)
{
	char *text = read_file(path);
	json_t *out = NULL;
	struct err e;
	cr_assert_eq(validate(path, text, &out, &e), 0, "%s", e.msg);
	cr_expect_eq(json_array_size(out), want, "%s: %zu manifests", path, json_array_size(out));
	for (size_t i = 0; i < json_array_size(out); i++)
		cr_expect_eq(manifest_check_normalized(json_array_get(out, i), &e), 0, "%s", e.msg);
	json_decref(out);
	free(text);
}

Test(manifest, example_files_are_valid)
{
	expect_valid_file(SRC_DIR "/examples/manifests/environments.yaml", 2);
	expect_valid_file(SRC_DIR "/examples/manifests/services.yaml", 3);
}

/* Every ```yaml block of docs/manifests.md must validate (bad examples use ```text). */
Test(manifest, documentation_examples_are_valid)
{
	char *md = read_file(SRC_DIR "/docs/manifests.md");
	size_t blocks = 0;
	for (char *p = strstr(md, "```yaml\n"); p; p = strstr(p, "```yaml\n")) {
		p += 8;
		char *end = strstr(p, "```");
		cr_assert(end);
		*end = '\0';
		json_t *out = NULL;
		struct err e;
		cr_expect_eq(validate("manifests.md", p, &out, &e), 0, "block %zu: %s", blocks, e.msg);
		json_decref(out);
		blocks++;
		p = end + 3;
	}
	cr_expect_geq(blocks, 3);
	free(md);
}

Test(manifest, multi_document_file_keeps_order)
{
	const char *y = "kind: Service\nname: b\nlisten_port: 2\n---\n"
			"kind: Environment\nname: prod\nregions: [{name: r1}, {name: r2}]\n---\n"
			"kind: Service\nname: a\nlisten_port: 1\n---\n";
	json_t *out = NULL;
	struct err e;
	cr_assert_eq(validate("m.yaml", y, &out, &e), 0, "%s", e.msg);
	cr_assert_eq(json_array_size(out), 3);
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(out, 0), "name")), "b");
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(out, 1), "kind")),
			 "Environment");
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(out, 2), "name")), "a");
	json_decref(out);
}

/* ---- normalized output ---- */

static char *normalize_one(const char *y)
{
	json_t *out = NULL;
	struct err e;
	cr_assert_eq(validate("n.yaml", y, &out, &e), 0, "%s", e.msg);
	cr_assert_eq(json_array_size(out), 1);
	char *s = json_dumps(json_array_get(out, 0), JSON_COMPACT | JSON_REAL_PRECISION(6));
	json_decref(out);
	return s;
}

Test(manifest, service_defaults_are_filled)
{
	char *s = normalize_one("kind: Service\nname: metadata\nlisten_port: 18001\n");
	cr_expect_str_eq(
		s,
		"{\"kind\":\"Service\",\"name\":\"metadata\",\"listen_port\":18001,\"route\":null,"
		"\"run\":{\"command\":\"{artifact}\",\"args\":[\"--port\",\"{port}\"],\"env\":{}},"
		"\"depends_on\":[],"
		"\"health\":{\"path\":\"/healthz\",\"interval_ms\":1000,\"timeout_ms\":1000},"
		"\"instances\":1,\"drain_timeout_ms\":10000,"
		"\"strategy\":{\"type\":\"canary\",\"steps\":[10,50,100],\"step_duration_ms\":10000,"
		"\"max_step_duration_ms\":300000,\"max_surge\":1,\"max_unavailable\":0,\"keep_old_ms\":30000," "\"max_unobserved_ms\":300000,\"crash_loop_restarts\":5,\"crash_loop_window_ms\":300000},"
		"\"analysis\":{\"min_requests\":50,\"max_error_rate\":0.05,"
		"\"max_error_rate_increase\":0.02,\"max_p99_latency_ms\":1000,\"interval_ms\":1000,"
		"\"method\":\"sequential\",\"alpha\":0.05,\"tolerance\":0.2,\"baseline\":false,"
		"\"metrics\":[],\"prometheus\":\"http://127.0.0.1:9090\",\"pass_score\":95.0,\"marginal_score\":75.0},"
		"\"bake_ms\":0,\"policy\":{\"concurrency\":\"queue\"},\"smoke\":[]}");
	free(s);
}

Test(manifest, service_values_are_normalized)
{
	char *s = normalize_one("kind: Service\nname: web\nlisten_port: 80\n"
				"run:\n  command: ./web\n  args: [--workers, 4, --verbose, true]\n"
				"  env: {A: 1, B: 0.1, C: false, D: text}\n"
				"depends_on: [profile, metadata]\n"
				"health: {path: /ready, interval: 1m30s, timeout: 250}\n"
				"instances: 3\ndrain_timeout: 0s\n"
				"strategy: {type: blue-green, step_duration: 1h, max_step_duration: 2h,\n"
				"  keep_old: 1m}\n"
				"analysis: {max_error_rate: 0, method: sequential, alpha: 0.01, tolerance: 1}\n"
				"bake: 1m\npolicy: {concurrency: supersede}\n"
				"smoke:\n  - path: /items/1\n    body_contains: id\n"
				"  - {path: /healthz, method: HEAD, status: 204, timeout: 250ms}\n");
	cr_expect_str_eq(
		s,
		"{\"kind\":\"Service\",\"name\":\"web\",\"listen_port\":80,\"route\":null,"
		"\"run\":{\"command\":\"./web\",\"args\":[\"--workers\",\"4\",\"--verbose\",\"true\"],"
		"\"env\":{\"A\":\"1\",\"B\":\"0.1\",\"C\":\"false\",\"D\":\"text\"}},"
		"\"depends_on\":[\"profile\",\"metadata\"],"
		"\"health\":{\"path\":\"/ready\",\"interval_ms\":90000,\"timeout_ms\":250},"
		"\"instances\":3,\"drain_timeout_ms\":0,"
		"\"strategy\":{\"type\":\"blue-green\",\"steps\":[10,50,100],\"step_duration_ms\":3600000,"
		"\"max_step_duration_ms\":7200000,\"max_surge\":1,\"max_unavailable\":0,\"keep_old_ms\":60000," "\"max_unobserved_ms\":300000,\"crash_loop_restarts\":5,\"crash_loop_window_ms\":300000},"
		"\"analysis\":{\"min_requests\":50,\"max_error_rate\":0.0,"
		"\"max_error_rate_increase\":0.02,\"max_p99_latency_ms\":1000,\"interval_ms\":1000,"
		"\"method\":\"sequential\",\"alpha\":0.01,\"tolerance\":1.0,\"baseline\":false,"
		"\"metrics\":[],\"prometheus\":\"http://127.0.0.1:9090\",\"pass_score\":95.0,\"marginal_score\":75.0},"
		"\"bake_ms\":60000,\"policy\":{\"concurrency\":\"supersede\"},"
		"\"smoke\":[{\"path\":\"/items/1\",\"method\":\"GET\",\"status\":200,"
		"\"body_contains\":\"id\",\"timeout_ms\":1000},"
		"{\"path\":\"/healthz\",\"method\":\"HEAD\",\"status\":204,\"body_contains\":null,"
		"\"timeout_ms\":250}]}");
	free(s);
}

Test(manifest, service_metrics_are_normalized)
{
	char *s = normalize_one("kind: Service\nname: web\nlisten_port: 80\n"
				"analysis:\n  prometheus: http://127.0.0.1:31090/\n  pass_score: 90\n"
				"  metrics:\n"
				"    - name: p95_latency\n"
				"      query: 'histogram_quantile(0.95, x{version=\"{version}\"})'\n"
				"      direction: increase\n      allowed_increase: 1.2\n      critical_increase: 2\n"
				"    - {name: errors, query: up, critical: true, weight: 2}\n");
	json_t *j = json_loads(s, 0, NULL);
	cr_assert(j);
	const json_t *an = json_object_get(j, "analysis"), *m = json_object_get(an, "metrics");
	cr_expect_str_eq(json_string_value(json_object_get(an, "prometheus")), "http://127.0.0.1:31090/");
	cr_expect_eq(json_real_value(json_object_get(an, "pass_score")), 90.0);
	cr_assert_eq(json_array_size(m), 2);
	char *m0 = json_dumps(json_array_get(m, 0), JSON_COMPACT | JSON_REAL_PRECISION(6));
	cr_expect_str_eq(m0, "{\"name\":\"p95_latency\",\"query\":\"histogram_quantile(0.95, "
			     "x{version=\\\"{version}\\\"})\",\"direction\":\"increase\",\"critical\":false,"
			     "\"weight\":1.0,\"allowed_increase\":1.2,\"allowed_decrease\":1.0,"
			     "\"critical_increase\":2.0,\"critical_decrease\":1.0}");
	const json_t *m1 = json_array_get(m, 1);
	cr_expect_str_eq(json_string_value(json_object_get(m1, "direction")), "either");
	cr_expect(json_is_true(json_object_get(m1, "critical")));
	cr_expect_eq(json_real_value(json_object_get(m1, "weight")), 2.0);
	/* the stored form is accepted as it is */
	struct err e;
	cr_expect_eq(manifest_check_normalized(j, &e), 0, "%s", e.msg);
	free(m0);
	json_decref(j);
	free(s);
}

Test(manifest, environment_ports_are_resolved)
{
	char *s = normalize_one("kind: Environment\nname: production\nregions:\n"
				"  - name: us-east\n  - name: eu-west\n  - name: ap-south\n    port_offset: 7\n"
				"policy: {wave_bake: 30s}\n");
	cr_expect_str_eq(
		s,
		"{\"kind\":\"Environment\",\"name\":\"production\",\"regions\":["
		"{\"name\":\"us-east\",\"runtime\":\"local\",\"port_offset\":0},"
		"{\"name\":\"eu-west\",\"runtime\":\"local\",\"port_offset\":100},"
		"{\"name\":\"ap-south\",\"runtime\":\"local\",\"port_offset\":7}],"
		"\"waves\":[[\"us-east\"],[\"eu-west\"],[\"ap-south\"]],"
		"\"policy\":{\"allow_unknown_consumers\":false,\"wave_bake_ms\":30000,"
		"\"on_region_failure\":\"halt\",\"region_retries\":2,\"retry_backoff_ms\":2000},"
		"\"promotion\":{\"from\":null},"
		"\"stage\":{\"side_by_side_ms\":20000,\"traffic_rate\":50}}");
	free(s);
}

/* ---- waves, promotion, stage (issue 6) ---- */

Test(manifest, environment_waves_promotion_stage)
{
	char *s = normalize_one("kind: Environment\nname: production\n"
				"regions: [{name: us-east}, {name: eu-west}, {name: ap-south}]\n"
				"waves:\n  - [us-east]\n  - [eu-west, ap-south]\n"
				"promotion: {from: preprod}\n"
				"policy: {on_region_failure: continue, region_retries: 0, retry_backoff: 500ms}\n"
				"stage: {side_by_side: 4s, traffic_rate: 200}\n");
	cr_expect_str_eq(
		s,
		"{\"kind\":\"Environment\",\"name\":\"production\",\"regions\":["
		"{\"name\":\"us-east\",\"runtime\":\"local\",\"port_offset\":0},"
		"{\"name\":\"eu-west\",\"runtime\":\"local\",\"port_offset\":100},"
		"{\"name\":\"ap-south\",\"runtime\":\"local\",\"port_offset\":200}],"
		"\"waves\":[[\"us-east\"],[\"eu-west\",\"ap-south\"]],"
		"\"policy\":{\"allow_unknown_consumers\":false,\"wave_bake_ms\":0,"
		"\"on_region_failure\":\"continue\",\"region_retries\":0,\"retry_backoff_ms\":500},"
		"\"promotion\":{\"from\":\"preprod\"},"
		"\"stage\":{\"side_by_side_ms\":4000,\"traffic_rate\":200}}");
	free(s);
}

/* The stored form: null is accepted where it is the default (promotion.from, body_contains),
 * nowhere else; waves are re-checked against the regions. */
Test(manifest, normalized_waves_and_nulls)
{
	const char *y = "kind: Environment\nname: prod\nregions: [{name: a}, {name: b}]\n---\n"
			"kind: Service\nname: web\nlisten_port: 80\nsmoke: [{path: /}]\n";
	json_t *out = NULL;
	struct err e;
	cr_assert_eq(validate("n.yaml", y, &out, &e), 0, "%s", e.msg);
	json_t *env = json_array_get(out, 0), *svc = json_array_get(out, 1);
	cr_expect(json_is_null(json_object_get(json_object_get(env, "promotion"), "from")));
	cr_expect(json_is_null(json_object_get(json_array_get(json_object_get(svc, "smoke"), 0),
					       "body_contains")));
	cr_expect_eq(manifest_check_normalized(env, &e), 0, "%s", e.msg);
	cr_expect_eq(manifest_check_normalized(svc, &e), 0, "%s", e.msg);

	json_t *c = json_deep_copy(env);
	json_object_set_new(c, "waves", json_null());
	cr_expect_eq(manifest_check_normalized(c, &e), -1);
	cr_expect_str_eq(e.msg, "Environment 'prod': waves: expected a list of waves, each a list of "
				"region names, got null (nothing)");
	json_decref(c);

	c = json_deep_copy(env);
	json_object_set_new(c, "waves", json_pack("[[s]]", "a"));
	cr_expect_eq(manifest_check_normalized(c, &e), -1);
	cr_expect_str_eq(e.msg, "Environment 'prod': waves: region \"b\" is in no wave (every region "
				"must be in exactly one)");
	json_decref(c);

	c = json_deep_copy(env);
	json_object_del(c, "waves");
	cr_expect_eq(manifest_check_normalized(c, &e), -1);
	cr_expect_str_eq(e.msg, "Environment 'prod': missing key \"waves\" (a normalized manifest has "
				"every key)");
	json_decref(c);

	c = json_deep_copy(env);
	json_object_set_new(json_object_get(c, "promotion"), "from", json_string("prod"));
	cr_expect_eq(manifest_check_normalized(c, &e), -1);
	cr_expect_str_eq(e.msg, "Environment 'prod': promotion.from: an environment cannot be "
				"promoted from itself (name the environment before this one)");
	json_decref(c);

	c = json_deep_copy(svc);
	json_object_set_new(json_object_get(c, "policy"), "concurrency", json_null());
	cr_expect_eq(manifest_check_normalized(c, &e), -1);
	cr_expect_str_eq(e.msg, "Service 'web': policy.concurrency: expected one of queue, supersede, "
				"got null (nothing)");
	json_decref(c);

	c = json_deep_copy(svc);
	json_t *ck = json_array_get(json_object_get(c, "smoke"), 0);
	json_object_set_new(ck, "method", json_string("HEAD"));
	json_object_set_new(ck, "body_contains", json_string("x"));
	cr_expect_eq(manifest_check_normalized(c, &e), -1);
	cr_expect_str_eq(e.msg, "Service 'web': smoke[0].body_contains: a HEAD response has no body "
				"(use method: GET)");
	json_decref(c);

	json_decref(out);
}

Test(manifest, normalized_is_a_fixed_point)
{
	/* Validating the normalized JSON again (as stored) accepts it and changes nothing. */
	const char *y = "kind: Service\nname: metadata\nlisten_port: 18001\nstrategy: {steps: [5, 100]}\n";
	json_t *out = NULL;
	struct err e;
	cr_assert_eq(validate("n.yaml", y, &out, &e), 0, "%s", e.msg);
	json_t *m = json_array_get(out, 0);
	cr_assert_eq(manifest_check_normalized(m, &e), 0, "%s", e.msg);
	/* Round trip through text, as the store does. */
	char *text = json_dumps(m, JSON_COMPACT);
	json_t *back = json_loads(text, 0, NULL);
	cr_assert(back);
	cr_expect_eq(manifest_check_normalized(back, &e), 0, "%s", e.msg);
	json_decref(back);
	free(text);
	json_decref(out);
}

Test(manifest, normalized_errors)
{
	const char *y = "kind: Service\nname: metadata\nlisten_port: 18001\n";
	json_t *out = NULL;
	struct err e;
	cr_assert_eq(validate("n.yaml", y, &out, &e), 0, "%s", e.msg);
	json_t *m = json_array_get(out, 0);

	json_t *c = json_deep_copy(m);
	json_object_del(json_object_get(c, "health"), "interval_ms");
	cr_expect_eq(manifest_check_normalized(c, &e), -1);
	cr_expect_str_eq(e.msg, "Service 'metadata': health: missing key \"interval_ms\" (a normalized "
				"manifest has every key)");
	json_decref(c);

	c = json_deep_copy(m);
	json_object_set_new(json_object_get(c, "strategy"), "step_duration_ms", json_string("10s"));
	cr_expect_eq(manifest_check_normalized(c, &e), -1);
	cr_expect_str_eq(e.msg, "Service 'metadata': strategy.step_duration_ms: expected an integer of "
				"milliseconds, got \"10s\"");
	json_decref(c);

	c = json_deep_copy(m);
	json_array_append_new(json_object_get(json_object_get(c, "strategy"), "steps"), json_integer(100));
	cr_expect_eq(manifest_check_normalized(c, &e), -1);
	cr_expect_str_eq(e.msg, "Service 'metadata': strategy.steps[3]: steps must be strictly "
				"increasing, got 100 after 100");
	json_decref(c);

	c = json_deep_copy(m);
	json_object_set_new(c, "bake", json_integer(5));
	cr_expect_eq(manifest_check_normalized(c, &e), -1);
	cr_expect_str_eq(e.msg, "Service 'metadata': bake: unknown key, expected one of: kind, name, "
				"listen_port, route, run, depends_on, health, instances, drain_timeout, "
				"strategy, analysis, bake, policy, smoke");
	json_decref(c);

	c = json_deep_copy(m);
	json_object_set_new(json_object_get(json_object_get(c, "run"), "env"), "N", json_integer(1));
	cr_expect_eq(manifest_check_normalized(c, &e), -1);
	cr_expect_str_eq(e.msg, "Service 'metadata': run.env.N: expected a string, number or boolean "
				"(at most 4096 bytes), got 1");
	json_decref(c);

	c = json_pack("{s:s, s:s, s:[{s:s, s:s}], s:{s:b, s:i}}", "kind", "Environment", "name",
		      "prod", "regions", "name", "r", "runtime", "local", "policy",
		      "allow_unknown_consumers", 0, "wave_bake_ms", 0);
	cr_expect_eq(manifest_check_normalized(c, &e), -1);
	cr_expect_str_eq(e.msg, "Environment 'prod': regions[0]: missing key \"port_offset\" (a "
				"normalized manifest has every key)");
	json_decref(c);

	cr_expect_eq(manifest_check_normalized(NULL, &e), -1);
	cr_expect_str_eq(e.msg, "manifest '?': expected a mapping with kind: Environment, Service or FlagSet, "
				"got nothing");

	json_decref(out);
}

/* ---- bad files: the exact message, position included ---- */

#define SVC "kind: Service\nname: metadata\nlisten_port: 18001\n"
#define ENV "kind: Environment\nname: production\n"

static const struct {
	const char *text, *want;
} bad[] = {
	{SVC "instancse: 2\n", "s.yaml:4:1: instancse: unknown key (did you mean \"instances\"?)"},
	{SVC "colour: red\n",
	 "s.yaml:4:1: colour: unknown key, expected one of: kind, name, listen_port, route, run, depends_on, "
	 "health, instances, drain_timeout, strategy, analysis, bake, policy, smoke"},
	{SVC "strategy:\n  stpes: [10, 100]\n",
	 "s.yaml:5:3: strategy.stpes: unknown key (did you mean \"steps\"?)"},
	{SVC "strategy:\n  step_duration_ms: 100\n",
	 "s.yaml:5:3: strategy.step_duration_ms: unknown key (did you mean \"step_duration\"?)"},
	{SVC "strategy:\n  steps: [5, 25, fifty, 100]\n",
	 "s.yaml:5:18: strategy.steps[2]: expected an integer percentage 1..100, got \"fifty\""},
	{SVC "strategy:\n  steps: [10, 50, 50, 100]\n",
	 "s.yaml:5:19: strategy.steps[2]: steps must be strictly increasing, got 50 after 50"},
	{SVC "strategy:\n  steps: [10, 50]\n",
	 "s.yaml:5:15: strategy.steps: the last step must be 100 (all traffic), got 50"},
	{SVC "strategy:\n  steps: [10, 150]\n",
	 "s.yaml:5:15: strategy.steps[1]: expected an integer percentage 1..100, got 150"},
	{SVC "strategy:\n  steps: []\n",
	 "s.yaml:5:10: strategy.steps: expected a list of traffic percentages ending at 100, got an "
	 "empty list"},
	{SVC "strategy:\n  steps: [0.5, 100]\n",
	 "s.yaml:5:11: strategy.steps[0]: expected an integer percentage 1..100, got 0.5"},
	{SVC "drain_timeout: 10x\n",
	 "s.yaml:4:16: drain_timeout: expected a duration like 250ms, 2s or 1m30s (or an integer of "
	 "milliseconds), got \"10x\""},
	{SVC "bake: 30s1m\n",
	 "s.yaml:4:7: bake: expected a duration like 250ms, 2s or 1m30s (or an integer of "
	 "milliseconds), got \"30s1m\""},
	{SVC "bake: -5\n",
	 "s.yaml:4:7: bake: expected a duration like 250ms, 2s or 1m30s (or an integer of "
	 "milliseconds), got -5"},
	{SVC "health:\n  interval: 10ms\n",
	 "s.yaml:5:13: health.interval: expected a duration of at least 100ms, got 10ms"},
	{SVC "drain_timeout: 2h\n",
	 "s.yaml:4:16: drain_timeout: expected a duration of at most 1h, got 2h"},
	{"kind: Service\nname: Metadata\nlisten_port: 1\n",
	 "s.yaml:2:7: name: expected a name of lowercase letters, digits and '-' (1..63 characters, "
	 "starting and ending with a letter or digit), got \"Metadata\""},
	{"kind: Service\nname: meta-\nlisten_port: 1\n",
	 "s.yaml:2:7: name: expected a name of lowercase letters, digits and '-' (1..63 characters, "
	 "starting and ending with a letter or digit), got \"meta-\""},
	{"kind: Service\nname: 42\nlisten_port: 1\n",
	 "s.yaml:2:7: name: expected a name of lowercase letters, digits and '-' (1..63 characters, "
	 "starting and ending with a letter or digit), got 42"},
	{"kind: Service\nname: metadata\n",
	 "s.yaml:1:1: listen_port: is required unless route is given (a port of the service's own, or "
	 "hosts on a shared listener)"},
	{"kind: Service\nname: metadata\nroute:\n  hosts: [api.example.com, \"api:80\"]\n  port: 8080\n",
	 "s.yaml:4:28: route.hosts[1]: expected a host name (api.example.com) or a wildcard "
	 "(*.example.com), without a port; {env} and {region} stand for the environment's and the "
	 "region's names, got \"api:80\""},
	{"kind: Service\nname: metadata\nroute:\n  hosts: [\"*.example.com\"]\n  port: 8080\n",
	 "s.yaml:4:11: route.hosts[0]: the first host must be a name, not a wildcard: the stage's "
	 "traffic and dependent services use it"},
	{"kind: Service\nname: metadata\nroute:\n  hosts: [a.example.com]\n  path_prefix: /v1/\n  port: 8080\n",
	 "s.yaml:5:16: route.path_prefix: expected \"/\" or \"/segment[/segment...]\" without a "
	 "trailing slash, query or fragment, got \"/v1/\""},
	{"kind: Service\nname: metadata\nroute:\n  hosts: [a.example.com]\n",
	 "s.yaml:4:3: route: missing required key \"port\" (expected an integer port 1..65535 (the "
	 "shared listener's; the region's port_offset is added))"},
	{"kind: Service\nname: metadata\nroute:\n  hosts: [a.example.com, a.example.com]\n  port: 1\n",
	 "s.yaml:4:26: route.hosts[1]: \"a.example.com\" is listed twice"},
	{SVC "route: {hosts: [a.test], port: 8080}\n",
	 "s.yaml:4:1: route: give listen_port (a listener of the service's own) or route (hosts on a "
	 "shared listener), not both"},
	{"kind: Service\nlisten_port: 1\n",
	 "s.yaml:1:1: missing required key \"name\" (expected a name of lowercase letters, digits and "
	 "'-' (1..63 characters, starting and ending with a letter or digit))"},
	{"kind: Service\nname: metadata\nlisten_port: 70000\n",
	 "s.yaml:3:14: listen_port: expected an integer port 1..65535, got 70000"},
	{"kind: Service\nname: metadata\nlisten_port: \"80\"\n",
	 "s.yaml:3:14: listen_port: expected an integer port 1..65535, got \"80\""},
	{"kind: Service\nname: metadata\nlisten_port: 0\n",
	 "s.yaml:3:14: listen_port: expected an integer port 1..65535, got 0"},
	{"name: x\n", "s.yaml:1:1: missing required key \"kind\" (expected Environment, Service or FlagSet)"},
	{"kind: Servce\nname: x\n",
	 "s.yaml:1:7: kind: expected one of Environment, Service, FlagSet, got \"Servce\" (did you mean "
	 "\"Service\"?)"},
	{SVC "strategy:\n  type: linear\n",
	 "s.yaml:5:9: strategy.type: expected one of canary, rolling, blue-green, got \"linear\""},
	{SVC "strategy:\n  type: rolling\n  steps: [50, 100]\n",
	 "s.yaml:6:3: strategy.steps: only used with type: canary (type is rolling)"},
	{SVC "analysis:\n  method: threshold\n  alpha: 0.1\n",
	 "s.yaml:6:3: analysis.alpha: only used with method: sequential (method is threshold)"},
	{SVC "strategy:\n  type: blue-green\nanalysis:\n  baseline: true\n",
	 "s.yaml:7:3: analysis.baseline: only used with strategy type: canary (type is blue-green)"},
	{SVC "analysis:\n  baseline: 1\n",
	 "s.yaml:5:13: analysis.baseline: expected true or false, got 1"},
	{SVC "analysis:\n  method: sequental\n",
	 "s.yaml:5:11: analysis.method: expected one of threshold, sequential, got \"sequental\" (did "
	 "you mean \"sequential\"?)"},
	{SVC "analysis:\n  max_error_rate: 1.5\n",
	 "s.yaml:5:19: analysis.max_error_rate: expected a number 0..1, got 1.5"},
	{SVC "analysis:\n  method: sequential\n  alpha: 0.9\n",
	 "s.yaml:6:10: analysis.alpha: expected a number 0.0001..0.5, got 0.9"},
	{SVC "instances: 0\n", "s.yaml:4:12: instances: expected an integer 1..64, got 0"},
	{SVC "instances: two\n", "s.yaml:4:12: instances: expected an integer 1..64, got \"two\""},
	{SVC "run:\n  env: {1BAD: x}\n",
	 "s.yaml:5:9: run.env.1BAD: expected an environment variable name (letters, digits and '_', "
	 "not starting with a digit)"},
	{SVC "run:\n  env:\n    A: [1]\n",
	 "s.yaml:6:8: run.env.A: expected a string, number or boolean (at most 4096 bytes), got a "
	 "list"},
	{SVC "run:\n  args: [{a: 1}]\n", "s.yaml:5:10: run.args[0]: expected a string, got a mapping"},
	{SVC "run:\n  args: --port\n", "s.yaml:5:9: run.args: expected a list, got \"--port\""},
	{SVC "run:\n  command: \"\"\n",
	 "s.yaml:5:12: run.command: expected a command (a non-empty string without control "
	 "characters), got \"\""},
	{SVC "depends_on: [metadata]\n",
	 "s.yaml:4:14: depends_on[0]: a service cannot depend on itself"},
	{SVC "depends_on: [profile, profile]\n",
	 "s.yaml:4:23: depends_on[1]: \"profile\" is listed twice"},
	{SVC "depends_on: [Profile]\n",
	 "s.yaml:4:14: depends_on[0]: expected a name of lowercase letters, digits and '-' (1..63 "
	 "characters, starting and ending with a letter or digit), got \"Profile\""},
	{SVC "health: /healthz\n", "s.yaml:4:9: health: expected a mapping, got \"/healthz\""},
	{SVC "health:\n", "s.yaml:4:8: health: expected a mapping, got null (nothing)"},
	{SVC "health:\n  path: healthz\n",
	 "s.yaml:5:9: health.path: expected an HTTP path starting with '/' (no spaces), got "
	 "\"healthz\""},
	{SVC "strategy:\n  step_duration: 1m\n  max_step_duration: 30s\n",
	 "s.yaml:6:22: strategy.max_step_duration: max_step_duration (30s) must be at least "
	 "step_duration (1m)"},
	{SVC "strategy:\n  step_duration: 6m\n",
	 "s.yaml:5:18: strategy.step_duration: max_step_duration (5m) must be at least step_duration "
	 "(6m)"},
	{ENV "regions:\n  - name: us-east\npolicy:\n  allow_unknown_consumers: no\n",
	 "s.yaml:6:28: policy.allow_unknown_consumers: expected true or false, got \"no\""},
	{ENV, "s.yaml:1:1: missing required key \"regions\" (expected a list of regions (at least one))"},
	{ENV "regions: []\n",
	 "s.yaml:3:10: regions: expected a list of regions (at least one), got an empty list"},
	{ENV "regions:\n  - name: us-east\n  - name: us-east\n",
	 "s.yaml:5:11: regions[1].name: region \"us-east\" is listed twice (first as regions[0])"},
	{ENV "regions:\n  - name: us-east\n  - name: eu-west\n    port_offset: 0\n",
	 "s.yaml:6:18: regions[1].port_offset: port offset 0 is already used by region \"us-east\" "
	 "(each region needs its own listeners)"},
	{ENV "regions:\n  - name: us-east\n    runtime: k8s\n",
	 "s.yaml:5:14: regions[0].runtime: expected one of local, docker, got \"k8s\""},
	{ENV "regions:\n  - name: us-east\n    runtime: docker\n",
	 "s.yaml:5:14: regions[0].runtime: runtime docker needs its hosts: {kind: docker, hosts: [unix:///path/docker.sock]}"},
	{ENV "regions:\n  - name: us-east\n    runtime: {kind: docker, hosts: []}\n",
	 "s.yaml:5:36: regions[0].runtime.hosts: expected 1 to 16 host URLs (unix:///path, tcp://HOST:PORT), got an empty list"},
	{ENV "regions:\n  - name: us-east\n    runtime: {kind: docker, hosts: [unix:///a], bogus: 1}\n",
	 "s.yaml:5:56: regions[0].runtime.bogus: unknown key, expected one of: kind, hosts, tls, ports, proxy_image, proxy_tls"},
	{ENV "regions:\n  - name: us-east\n    runtime: {kind: docker, hosts: [unix:///a], proxy_tls: {cert: c.pem, key: /k, ca: /ca}}\n",
	 "s.yaml:5:60: regions[0].runtime.proxy_tls: expected {cert: PATH, key: PATH, ca: PATH} (absolute paths), got a mapping"},
	{ENV "regions:\n  - name: us-east\n    port_ofset: 5\n",
	 "s.yaml:5:5: regions[0].port_ofset: unknown key (did you mean \"port_offset\"?)"},
	{ENV "regions:\n  - us-east\n",
	 "s.yaml:4:5: regions[0]: expected a mapping, got \"us-east\""},
	{ENV "regions:\n  - port_offset: 5\n",
	 "s.yaml:4:5: regions[0]: missing required key \"name\" (expected a name of lowercase letters, "
	 "digits and '-' (1..63 characters, starting and ending with a letter or digit))"},
	/* waves, promotion, stage, region retry policy (issue 6) */
	{ENV "regions: [{name: us-east}, {name: eu-west}]\nwaves: [[us-east], [eu-west, ap-south]]\n",
	 "s.yaml:4:30: waves[1][1]: unknown region \"ap-south\" (the regions are us-east, eu-west)"},
	{ENV "regions: [{name: us-east}, {name: eu-west}]\nwaves: [[us-east]]\n",
	 "s.yaml:4:8: waves: region \"eu-west\" is in no wave (every region must be in exactly one)"},
	{ENV "regions: [{name: us-east}, {name: eu-west}]\nwaves: [[us-east], [eu-west, us-east]]\n",
	 "s.yaml:4:30: waves[1][1]: region \"us-east\" is already in waves[0] (each region belongs to exactly one wave)"},
	{ENV "regions: [{name: us-east}]\nwaves: [[us-east, us-east]]\n",
	 "s.yaml:4:19: waves[0][1]: \"us-east\" is listed twice"},
	{ENV "regions: [{name: us-east}]\nwaves: [us-east]\n",
	 "s.yaml:4:9: waves[0]: expected a list of 1..64 region names, got \"us-east\""},
	{ENV "regions: [{name: us-east}]\nwaves: [[us-east], []]\n",
	 "s.yaml:4:20: waves[1]: expected a list of 1..64 region names, got an empty list"},
	{ENV "regions: [{name: us-east}]\nwaves: []\n",
	 "s.yaml:4:8: waves: expected a list of waves, each a list of region names, got an empty list"},
	{ENV "regions: [{name: us-east}]\nwaves:\n",
	 "s.yaml:4:7: waves: expected a list of waves, each a list of region names, got null (nothing)"},
	{ENV "regions: [{name: us-east}]\nwaves: [[US-East]]\n",
	 "s.yaml:4:10: waves[0][0]: expected a name of lowercase letters, digits and '-' (1..63 characters, starting and ending with a letter or digit), got \"US-East\""},
	{ENV "regions: [{name: us-east}]\npromotion:\n  from: production\n",
	 "s.yaml:5:9: promotion.from: an environment cannot be promoted from itself (name the environment before this one)"},
	{ENV "regions: [{name: us-east}]\npromotion:\n  from:\n",
	 "s.yaml:5:8: promotion.from: expected a name of lowercase letters, digits and '-' (1..63 characters, starting and ending with a letter or digit), got null (nothing)"},
	{ENV "regions: [{name: us-east}]\npromotion:\n  form: preprod\n",
	 "s.yaml:5:3: promotion.form: unknown key (did you mean \"from\"?)"},
	{ENV "regions: [{name: us-east}]\npolicy:\n  on_region_failure: stop\n",
	 "s.yaml:5:22: policy.on_region_failure: expected one of halt, continue, got \"stop\""},
	{ENV "regions: [{name: us-east}]\npolicy:\n  on_region_failure: continu\n",
	 "s.yaml:5:22: policy.on_region_failure: expected one of halt, continue, got \"continu\" (did you mean \"continue\"?)"},
	{ENV "regions: [{name: us-east}]\npolicy:\n  region_retries: 11\n",
	 "s.yaml:5:19: policy.region_retries: expected an integer 0..10, got 11"},
	{ENV "regions: [{name: us-east}]\npolicy:\n  retry_backoff: 10m\n",
	 "s.yaml:5:18: policy.retry_backoff: expected a duration of at most 5m, got 10m"},
	{ENV "regions: [{name: us-east}]\nstage:\n  side_by_side: 500ms\n",
	 "s.yaml:5:17: stage.side_by_side: expected a duration of at least 1s, got 500ms"},
	{ENV "regions: [{name: us-east}]\nstage:\n  traffic_rate: 0\n",
	 "s.yaml:5:17: stage.traffic_rate: expected an integer 1..10000, got 0"},
	{ENV "regions: [{name: us-east}]\nstage:\n  trafic_rate: 5\n",
	 "s.yaml:5:3: stage.trafic_rate: unknown key (did you mean \"traffic_rate\"?)"},
	/* service concurrency, smoke checks, rolling and blue-green keys (issue 6) */
	{SVC "policy:\n  concurrency: parallel\n",
	 "s.yaml:5:16: policy.concurrency: expected one of queue, supersede, got \"parallel\""},
	{SVC "smoke: /items/1\n",
	 "s.yaml:4:8: smoke: expected a list of checks (mappings with at least a path), got \"/items/1\""},
	{SVC "smoke:\n  - method: GET\n",
	 "s.yaml:5:5: smoke[0]: missing required key \"path\" (expected an HTTP path starting with '/' (no spaces))"},
	{SVC "smoke:\n  - path: items/1\n",
	 "s.yaml:5:11: smoke[0].path: expected an HTTP path starting with '/' (no spaces), got \"items/1\""},
	{SVC "smoke:\n  - path: /items/1\n    method: PUT\n",
	 "s.yaml:6:13: smoke[0].method: expected one of GET, HEAD, POST, got \"PUT\""},
	{SVC "smoke:\n  - path: /items/1\n    method: get\n",
	 "s.yaml:6:13: smoke[0].method: expected one of GET, HEAD, POST, got \"get\""},
	{SVC "smoke:\n  - path: /items/1\n    status: 700\n",
	 "s.yaml:6:13: smoke[0].status: expected an HTTP status 100..599, got 700"},
	{SVC "smoke:\n  - path: /items/1\n    body_contains: \"\"\n",
	 "s.yaml:6:20: smoke[0].body_contains: expected a non-empty string, got \"\""},
	{SVC "smoke:\n  - path: /items/1\n    body_contains:\n",
	 "s.yaml:6:19: smoke[0].body_contains: expected a non-empty string, got null (nothing)"},
	{SVC "smoke:\n  - path: /items/1\n    timeout: 5ms\n",
	 "s.yaml:6:14: smoke[0].timeout: expected a duration of at least 10ms, got 5ms"},
	{SVC "smoke:\n  - path: /\n  - path: /x\n    method: HEAD\n    body_contains: ok\n",
	 "s.yaml:8:20: smoke[1].body_contains: a HEAD response has no body (use method: GET)"},
	{SVC "smoke:\n  - path: /\n    bodycontains: ok\n",
	 "s.yaml:6:5: smoke[0].bodycontains: unknown key (did you mean \"body_contains\"?)"},
	{SVC "strategy:\n  max_surge: 2\n",
	 "s.yaml:5:3: strategy.max_surge: only used with type: rolling (type is canary)"},
	{SVC "strategy:\n  type: blue-green\n  max_unavailable: 1\n",
	 "s.yaml:6:3: strategy.max_unavailable: only used with type: rolling (type is blue-green)"},
	{SVC "strategy:\n  type: rolling\n  keep_old: 1m\n",
	 "s.yaml:6:3: strategy.keep_old: only used with type: blue-green (type is rolling)"},
	{SVC "strategy:\n  type: rolling\n  max_surge: 0\n",
	 "s.yaml:6:14: strategy.max_surge: max_surge and max_unavailable are both 0: no instance could "
	 "ever be replaced; set one of them to 1 or more"},
	{SVC "strategy:\n  type: rolling\n  max_surge: -1\n",
	 "s.yaml:6:14: strategy.max_surge: expected an integer 0..64, got -1"},
	{SVC "strategy:\n  type: rolling\n  max_unavailable: 65\n",
	 "s.yaml:6:20: strategy.max_unavailable: expected an integer 0..64, got 65"},
	{SVC "strategy:\n  type: blue-green\n  keep_old: 25h\n",
	 "s.yaml:6:13: strategy.keep_old: expected a duration of at most 24h, got 25h"},
	/* custom Prometheus metrics (issue 5) */
	{SVC "analysis:\n  metrics: {name: x}\n",
	 "s.yaml:5:12: analysis.metrics: expected a list of metrics, got a mapping"},
	{SVC "analysis:\n  metrics:\n    - name: err\n",
	 "s.yaml:6:7: analysis.metrics[0]: missing required key \"query\" (expected a PromQL query (a non-empty string without control characters))"},
	{SVC "analysis:\n  metrics:\n    - {name: 'a b', query: up}\n",
	 "s.yaml:6:14: analysis.metrics[0].name: expected a metric name of letters, digits, '_', '-' and '.' (1..63 characters), got \"a b\""},
	{SVC "analysis:\n  metrics:\n    - {name: e, query: up, direction: up}\n",
	 "s.yaml:6:39: analysis.metrics[0].direction: expected one of increase, decrease, either, got \"up\""},
	{SVC "analysis:\n  metrics:\n    - {name: e, query: up, allowed_increase: 0.5}\n",
	 "s.yaml:6:46: analysis.metrics[0].allowed_increase: expected a number 1..1000, got 0.5"},
	{SVC "analysis:\n  metrics:\n    - {name: e, query: up}\n    - {name: e, query: down}\n",
	 "s.yaml:7:14: analysis.metrics[1].name: metric \"e\" is listed twice (first as analysis.metrics[0])"},
	{SVC "analysis:\n  metrics:\n    - {name: e, query: up, critcal: true}\n",
	 "s.yaml:6:28: analysis.metrics[0].critcal: unknown key (did you mean \"critical\"?)"},
	{SVC "analysis:\n  prometheus: 127.0.0.1:9090\n",
	 "s.yaml:5:15: analysis.prometheus: expected an http:// or https:// URL of a Prometheus server, got \"127.0.0.1:9090\""},
	{SVC "analysis:\n  pass_score: 101\n",
	 "s.yaml:5:15: analysis.pass_score: expected a number 0..100, got 101"},
	{SVC "---\n" SVC,
	 "s.yaml:6:7: name: Service \"metadata\" is defined twice in this file (first at line 2)"},
	{SVC "---\nkind: Service\nname: profile\nlisten_port: 18002\nbake: soon\n",
	 "s.yaml:8:7: bake: expected a duration like 250ms, 2s or 1m30s (or an integer of "
	 "milliseconds), got \"soon\""},
	{"- kind: Service\n",
	 "s.yaml:1:1: document 1: expected a mapping with kind: Environment, Service or FlagSet, got a list"},
	{"", "s.yaml: no manifest in this file (expected documents with kind: Environment or Service)"},
	{"kind: Service\nname: [x\n", "s.yaml:3:1: invalid YAML"},
};

Test(manifest, bad_files_name_file_line_column)
{
	cr_assert_geq(sizeof(bad) / sizeof(bad[0]), 25);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *out = (json_t *)0x1; /* must stay untouched on failure */
		struct err e;
		int rc = validate("s.yaml", bad[i].text, &out, &e);
		cr_expect_eq(rc, -1, "case %zu: accepted", i);
		cr_expect_eq(out, (json_t *)0x1, "case %zu: *out changed", i);
		if (!strcmp(bad[i].want, "s.yaml:3:1: invalid YAML"))
			cr_expect(!strncmp(e.msg, bad[i].want, strlen(bad[i].want)), "case %zu: got '%s'",
				  i, e.msg);
		else
			cr_expect_str_eq(e.msg, bad[i].want, "case %zu: got '%s'", i, e.msg);
	}
}

/* ---- secret env values ---- */

#define SECRET_SVC "kind: Service\nname: metadata\nlisten_port: 18001\n"

Test(manifest, secret_env_values_are_kept_and_typed)
{
	json_t *out = NULL;
	struct err e;
	int rc = validate("s.yaml",
			  SECRET_SVC "run:\n  env:\n"
				     "    LOG_LEVEL: info\n"
				     "    DB_PASSWORD: {value: \"hunter2-real\", secret: true}\n"
				     "    PIN: {secret: true, value: 1234}\n"
				     "    PLAIN: {value: 42}\n"
				     "    OPEN: {value: x, secret: false}\n",
			  &out, &e);
	cr_assert_eq(rc, 0, "%s", e.msg);
	json_t *m = json_array_get(out, 0);
	char *env = json_dumps(json_object_get(json_object_get(m, "run"), "env"), JSON_COMPACT);
	/* a secret is stored with its real value; {value: x} alone is the plain form */
	cr_expect_str_eq(env, "{\"LOG_LEVEL\":\"info\",\"DB_PASSWORD\":{\"value\":\"hunter2-real\",\"secret\":true},"
			      "\"PIN\":{\"value\":\"1234\",\"secret\":true},\"PLAIN\":\"42\",\"OPEN\":\"x\"}");
	free(env);
	/* the normalized form checks again to itself (what the store compares) */
	cr_expect_eq(manifest_check_normalized(m, &e), 0, "%s", e.msg);

	struct service_manifest *s = NULL;
	cr_assert_eq(manifest_service_parse(m, &s, &e), 0, "%s", e.msg);
	cr_assert_eq(s->run.nenv, 5);
	const char *names[] = {"LOG_LEVEL", "DB_PASSWORD", "PIN", "PLAIN", "OPEN"};
	const char *values[] = {"info", "hunter2-real", "1234", "42", "x"};
	bool secret[] = {false, true, true, false, false};
	for (size_t i = 0; i < 5; i++) {
		cr_expect_str_eq(s->run.env[i].name, names[i]);
		cr_expect_str_eq(s->run.env[i].value, values[i], "the instances get the real value");
		cr_expect_eq(s->run.env[i].secret, secret[i], "%s", names[i]);
	}
	manifest_service_free(s);
	json_decref(out);
}

Test(manifest, masking_hides_secrets_and_nothing_else)
{
	json_t *out = NULL;
	struct err e;
	cr_assert_eq(validate("s.yaml",
			      SECRET_SVC "run:\n  env:\n    A: plain-a\n"
					 "    S: {value: \"hunter2-real\", secret: true}\n"
					 "    T: {value: \"x\", secret: true}\n"
					 "---\nkind: Service\nname: other\nlisten_port: 18002\n",
			      &out, &e),
		     0, "%s", e.msg);
	char *before = json_dumps(out, JSON_COMPACT);

	/* one manifest, and an array of them */
	json_t *one = manifest_mask_secrets(json_array_get(out, 0)), *all = manifest_mask_secrets(out);
	cr_assert(one && all);
	char *t1 = json_dumps(one, JSON_COMPACT), *t2 = json_dumps(all, JSON_COMPACT);
	for (char *t = t1; t; t = t == t1 ? t2 : NULL) {
		cr_expect_null(strstr(t, "hunter2"), "the secret is shown: %s", t);
		cr_expect_null(strstr(t, "\"x\""), "a short secret is shown: %s", t);
		cr_expect(strstr(t, "\"S\":{\"value\":\"" MANIFEST_SECRET_MASK "\",\"secret\":true}"), "%s", t);
		cr_expect(strstr(t, "\"T\":{\"value\":\"" MANIFEST_SECRET_MASK "\",\"secret\":true}"),
			  "the mask does not tell the length: %s", t);
		cr_expect(strstr(t, "\"A\":\"plain-a\""), "a plain value is not masked: %s", t);
	}
	cr_expect(strstr(t2, "\"name\":\"other\""));
	/* the other direction: the input keeps the real values (the store's copy) */
	char *after = json_dumps(out, JSON_COMPACT);
	cr_expect_str_eq(after, before);
	cr_expect(strstr(after, "hunter2-real"));
	/* a masked manifest is still a valid one (the CLI and scripts read it as such) */
	cr_expect_eq(manifest_check_normalized(one, &e), 0, "%s", e.msg);
	free(t1);
	free(t2);
	free(before);
	free(after);
	json_decref(one);
	json_decref(all);
	json_decref(out);
}

/* Every error about a value written {value: ..., secret: true} names the place, never the value. */
Test(manifest, secret_errors_do_not_quote_the_value)
{
	static char big[6000];
	memset(big, 0, sizeof(big));
	strcpy(big, SECRET_SVC "run:\n  env:\n    DB: {secret: true, value: \"");
	size_t n = strlen(big);
	for (size_t i = 0; i < 4200; i++)
		big[n + i] = "TOPSECRET"[i % 9];
	strcat(big, "\"}\n");
	struct {
		const char *in, *msg;
	} cases[] = {
		{big, "s.yaml:6:31: run.env.DB.value: expected a string of at most 4096 bytes without NUL"},
		{SECRET_SVC "run:\n  env:\n    DB: {value: \"TOPSECRET\\0x\", secret: true}\n",
		 "s.yaml:6:17: run.env.DB.value: expected a string of at most 4096 bytes without NUL"},
		{SECRET_SVC "run:\n  env:\n    DB: {value: [TOPSECRET], secret: true}\n",
		 "s.yaml:6:17: run.env.DB.value: expected a string, number or boolean (at most 4096 bytes), "
		 "got a list"},
		{SECRET_SVC "run:\n  env:\n    DB: {value: TOPSECRET, secret: yes}\n",
		 "s.yaml:6:36: run.env.DB.secret: expected true or false, got \"yes\""},
		{SECRET_SVC "run:\n  env:\n    DB: {valeu: TOPSECRET, secret: true}\n",
		 "s.yaml:6:10: run.env.DB.valeu: unknown key (did you mean \"value\"?)"},
		{SECRET_SVC "run:\n  env:\n    DB: {secret: true}\n",
		 "s.yaml:6:9: run.env.DB: missing required key \"value\""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *out = NULL;
		struct err e;
		cr_expect_eq(validate("s.yaml", cases[i].in, &out, &e), -1, "case %zu", i);
		cr_expect_str_eq(e.msg, cases[i].msg, "case %zu: %s", i, e.msg);
		cr_expect_null(strstr(e.msg, "TOPSECRET"), "case %zu quotes the secret: %s", i, e.msg);
	}

	/* a stored manifest whose secret is not a string: refused without showing it */
	json_t *out = NULL;
	struct err e;
	cr_assert_eq(validate("s.yaml", SECRET_SVC "run:\n  env:\n    DB: {value: v, secret: true}\n", &out, &e), 0,
		     "%s", e.msg);
	json_t *m = json_deep_copy(json_array_get(out, 0));
	json_t *db = json_object_get(json_object_get(json_object_get(m, "run"), "env"), "DB");
	json_object_set_new(db, "value", json_integer(987654321));
	cr_expect_eq(manifest_check_normalized(m, &e), -1);
	cr_expect_str_eq(e.msg, "Service 'metadata': run.env.DB.value: expected a string (the value is not shown)");
	cr_expect_null(strstr(e.msg, "987654321"));
	json_decref(m);
	json_decref(out);
}
