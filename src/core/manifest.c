#include "core/manifest.h"
#include "flags/flagset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/name.h"
#include "util/shape.h"

/*
 * Every mapping of the format is described by a table of fields (util/shape.h walks them).
 * What is particular to manifests lives here: the tables, three list shapes whose rules need
 * the whole list (steps, regions, waves) and the rules that involve more than one key.
 */

#define GOT(v) shape_describe((v), got, sizeof(got))

int manifest_name_ok(const char *s)
{
	return name_object_ok(s);
}

int manifest_duration_ms(const char *s, uint64_t *ms)
{
	return shape_duration_ms(s, ms);
}

/* An absolute HTTP path without spaces or control characters (it goes on a request line). */
static int http_path_ok(const char *s)
{
	if (*s != '/' || strlen(s) > 1024)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

/* A Prometheus server's base URL: scheme, then a host, no spaces or control characters. */
static int http_url_ok(const char *s)
{
	const char *rest = !strncmp(s, "http://", 7) ? s + 7 : !strncmp(s, "https://", 8) ? s + 8 : NULL;
	if (!rest || !*rest || *rest == '/')
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

static int command_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20)
			return 0;
	return 1;
}

static int check_steps(const struct shape_ctx *c, struct shape_at a, const char *path,
		       const struct shape_field *f, const json_t *v, json_t **out);
static int check_regions(const struct shape_ctx *c, struct shape_at a, const char *path,
			 const struct shape_field *f, const json_t *v, json_t **out);
static int check_waves(const struct shape_ctx *c, struct shape_at a, const char *path,
		       const struct shape_field *f, const json_t *v, json_t **out);
static int check_runtime(const struct shape_ctx *c, struct shape_at a, const char *path,
			 const struct shape_field *f, const json_t *v, json_t **out);

/* ---- the tables ---- */

static const char *const kinds[] = {"Environment", "Service", "FlagSet", NULL};
static const char *const runtimes[] = {"local", "docker", NULL};
static const char *const strategies[] = {"canary", "rolling", "blue-green", NULL};
static const char *const methods[] = {"threshold", "sequential", NULL};
static const char *const directions[] = {"increase", "decrease", "either", NULL};
static const char *const kind_env[] = {"Environment", NULL};
static const char *const kind_svc[] = {"Service", NULL};
static const char *const region_failures[] = {"halt", "continue", NULL};
static const char *const concurrencies[] = {"queue", "supersede", NULL};
static const char *const smoke_methods[] = {"GET", "HEAD", "POST", NULL};

/* A host of route.hosts: a host name (util/name.h) once "{env}" and "{region}" are
 * replaced by a name (each region's proxy gets the host with its own names). */
static int route_host_ok(const char *s)
{
	char buf[NAME_HOST_MAX + 2];
	size_t n = 0;
	for (const char *p = s; *p; p++) {
		const char *ph = !strncmp(p, "{env}", 5) ? "{env}" : !strncmp(p, "{region}", 8) ? "{region}" : NULL;
		const char *add = ph ? "x" : NULL;
		if (n + 2 > sizeof(buf))
			return 0;
		if (add) {
			buf[n++] = 'x';
			p += strlen(ph) - 1;
		} else {
			buf[n++] = *p;
		}
	}
	buf[n] = 0;
	return name_host_ok(buf);
}

static int route_prefix_ok(const char *s)
{
	return name_path_prefix_ok(s);
}

/* Smoke checks run one after the other before traffic moves: a few are plenty. */
#define SMOKE_MAX 32
#define METRICS_MAX 16

static const struct shape_field name_elem = {.type = SHAPE_NAME, .name = NAME_OBJECT};

static const struct shape_field region_fields[] = {
	{.key = "name", .type = SHAPE_NAME, .required = 1, .name = NAME_OBJECT},
	{.key = "runtime", .type = SHAPE_CUSTOM, .def = "\"local\"", .custom = check_runtime},
	/* Default (100 * index) is filled by check_regions, which knows the index. */
	{.key = "port_offset", .type = SHAPE_INT, .min = 0, .max = 60000,
	 .what = "an integer port offset 0..60000"},
	{0},
};

static const struct shape_field runtime_name = {.type = SHAPE_ENUM, .choices = runtimes};

static const struct shape_field policy_fields[] = {
	{.key = "allow_unknown_consumers", .type = SHAPE_BOOL, .def = "false"},
	{.key = "wave_bake", .type = SHAPE_DURATION, .def = "0", .min = 0,
	 .max = (long long)MANIFEST_MAX_DURATION_MS},
	{.key = "on_region_failure", .type = SHAPE_ENUM, .def = "\"halt\"", .choices = region_failures},
	{.key = "region_retries", .type = SHAPE_INT, .def = "2", .min = 0, .max = 10},
	/* Doubling from at most 5m over at most 10 retries still ends within days, not years. */
	{.key = "retry_backoff", .type = SHAPE_DURATION, .def = "2000", .min = 0, .max = 300000},
	{0},
};

static const struct shape_field promotion_fields[] = {
	/* Whether that environment exists is for the server, which sees every manifest. */
	{.key = "from", .type = SHAPE_NAME, .nullable = 1, .def = "null", .name = NAME_OBJECT},
	{0},
};

static const struct shape_field stage_fields[] = {
	{.key = "side_by_side", .type = SHAPE_DURATION, .def = "20000", .min = 1000, .max = 3600000},
	{.key = "traffic_rate", .type = SHAPE_INT, .def = "50", .min = 1, .max = 10000},
	{0},
};

static const struct shape_field env_fields[] = {
	{.key = "kind", .type = SHAPE_ENUM, .required = 1, .choices = kind_env},
	{.key = "name", .type = SHAPE_NAME, .required = 1, .name = NAME_OBJECT},
	{.key = "regions", .type = SHAPE_CUSTOM, .required = 1, .custom = check_regions,
	 .what = "a list of regions (at least one)"},
	/* Default (one wave per region, in order) is filled by check_env_rules, which sees regions;
	 * "null" only holds the key's place so that keys stay in table order. */
	{.key = "waves", .type = SHAPE_CUSTOM, .def = "null", .custom = check_waves},
	{.key = "policy", .type = SHAPE_OBJECT, .sub = policy_fields},
	{.key = "promotion", .type = SHAPE_OBJECT, .sub = promotion_fields},
	{.key = "stage", .type = SHAPE_OBJECT, .sub = stage_fields},
	{0},
};

static const struct shape_field arg_elem = {.type = SHAPE_STRING, .coerce = 1, .empty_ok = 1};
static const struct shape_field env_plain = {
	.type = SHAPE_STRING, .coerce = 1, .empty_ok = 1,
	.what = "a string, number or boolean (at most 4096 bytes)"};

/* A value that may be a secret: no message about it quotes it (no .what, so a string that is
 * too long or holds a NUL is not shown; check_hidden refuses other kinds without showing them). */
static const struct shape_field hidden_string = {.type = SHAPE_STRING, .coerce = 1, .empty_ok = 1};

static int check_hidden(const struct shape_ctx *c, struct shape_at a, const char *path,
			const struct shape_field *f, const json_t *v, json_t **out)
{
	(void)f;
	char got[64];
	int scalar = json_is_string(v) || json_is_number(v) || json_is_boolean(v);
	if (!scalar)
		return shape_fail(c, shape_pos(c, a), path,
				  "expected a string, number or boolean (at most 4096 bytes), got %s", GOT(v));
	if (!json_is_string(v) && c->mode != SHAPE_SOURCE)
		return shape_fail(c, shape_pos(c, a), path, "expected a string (the value is not shown)");
	return shape_check(c, a, path, &hidden_string, v, out);
}

static const struct shape_field env_entry_fields[] = {
	{.key = "value", .type = SHAPE_CUSTOM, .required = 1, .custom = check_hidden},
	{.key = "secret", .type = SHAPE_BOOL, .def = "false"},
	{0},
};

/* An env value: a scalar (a string once normalized), or {value, secret}. A secret one is
 * normalized to {"value": "...", "secret": true}, any other to its plain string, so that the
 * plain form and {value: x} store the same thing. */
static int check_env_value(const struct shape_ctx *c, struct shape_at a, const char *path,
			   const struct shape_field *f, const json_t *v, json_t **out)
{
	(void)f;
	if (!json_is_object(v))
		return shape_check(c, a, path, &env_plain, v, out);
	json_t *res = NULL;
	if (shape_check_object(c, a, path, env_entry_fields, v, &res))
		return -1;
	if (json_is_true(json_object_get(res, "secret"))) {
		*out = res;
		return 0;
	}
	*out = json_incref(json_object_get(res, "value"));
	json_decref(res);
	return 0;
}

static const struct shape_field env_value = {
	.type = SHAPE_CUSTOM, .custom = check_env_value,
	.what = "a string, number, boolean or {value: ..., secret: true}"};

static const struct shape_field run_fields[] = {
	{.key = "command", .type = SHAPE_STRING, .def = "\"{artifact}\"", .check = command_ok,
	 .what = "a command (a non-empty string without control characters)"},
	{.key = "args", .type = SHAPE_LIST, .def = "[\"--port\", \"{port}\"]", .max = MANIFEST_MAX_ARGS,
	 .elem = &arg_elem},
	{.key = "env", .type = SHAPE_MAP, .def = "{}", .max = MANIFEST_MAX_ENV, .name = NAME_ENV_VAR,
	 .elem = &env_value, .what = "a mapping of NAME: value", .noun = "variables"},
	{0},
};

static const struct shape_field health_fields[] = {
	{.key = "path", .type = SHAPE_STRING, .def = "\"/healthz\"", .check = http_path_ok,
	 .what = "an HTTP path starting with '/' (no spaces)"},
	{.key = "interval", .type = SHAPE_DURATION, .def = "1000", .min = 100, .max = 3600000},
	{.key = "timeout", .type = SHAPE_DURATION, .def = "1000", .min = 10, .max = 3600000},
	{0},
};

static const struct shape_field strategy_fields[] = {
	{.key = "type", .type = SHAPE_ENUM, .def = "\"canary\"", .choices = strategies},
	{.key = "steps", .type = SHAPE_CUSTOM, .def = "[10, 50, 100]", .custom = check_steps},
	{.key = "step_duration", .type = SHAPE_DURATION, .def = "10000", .min = 0, .max = 86400000},
	{.key = "max_step_duration", .type = SHAPE_DURATION, .def = "300000", .min = 1,
	 .max = (long long)MANIFEST_MAX_DURATION_MS},
	/* max_surge + max_unavailable >= 1 (a rollout must make progress): checked below */
	{.key = "max_surge", .type = SHAPE_INT, .def = "1", .min = 0, .max = 64},
	{.key = "max_unavailable", .type = SHAPE_INT, .def = "0", .min = 0, .max = 64},
	{.key = "keep_old", .type = SHAPE_DURATION, .def = "30000", .min = 0, .max = 86400000},
	{.key = "max_unobserved", .type = SHAPE_DURATION, .def = "300000", .min = 0,
	 .max = (long long)MANIFEST_MAX_DURATION_MS},
	{.key = "crash_loop_restarts", .type = SHAPE_INT, .def = "5", .min = 1, .max = 1000},
	{.key = "crash_loop_window", .type = SHAPE_DURATION, .def = "300000", .min = 1000, .max = 86400000},
	{0},
};

static const struct shape_field smoke_fields[] = {
	{.key = "path", .type = SHAPE_STRING, .required = 1, .check = http_path_ok,
	 .what = "an HTTP path starting with '/' (no spaces)"},
	{.key = "method", .type = SHAPE_ENUM, .def = "\"GET\"", .choices = smoke_methods},
	{.key = "status", .type = SHAPE_INT, .def = "200", .min = 100, .max = 599,
	 .what = "an HTTP status 100..599"},
	{.key = "body_contains", .type = SHAPE_STRING, .nullable = 1, .def = "null",
	 .what = "a non-empty string"},
	{.key = "timeout", .type = SHAPE_DURATION, .def = "1000", .min = 10, .max = 60000},
	{0},
};
static const struct shape_field smoke_elem = {.type = SHAPE_OBJECT, .sub = smoke_fields};

static const struct shape_field svc_policy_fields[] = {
	{.key = "concurrency", .type = SHAPE_ENUM, .def = "\"queue\"", .choices = concurrencies},
	{0},
};

static const struct shape_field metric_fields[] = {
	{.key = "name", .type = SHAPE_NAME, .required = 1, .name = NAME_METRIC},
	{.key = "query", .type = SHAPE_STRING, .required = 1, .check = command_ok,
	 .what = "a PromQL query (a non-empty string without control characters)"},
	{.key = "direction", .type = SHAPE_ENUM, .def = "\"either\"", .choices = directions},
	{.key = "critical", .type = SHAPE_BOOL, .def = "false"},
	{.key = "weight", .type = SHAPE_NUMBER, .def = "1.0", .dmin = 0, .dmax = 1000},
	{.key = "allowed_increase", .type = SHAPE_NUMBER, .def = "1.0", .dmin = 1, .dmax = 1000},
	{.key = "allowed_decrease", .type = SHAPE_NUMBER, .def = "1.0", .dmin = 0, .dmax = 1},
	{.key = "critical_increase", .type = SHAPE_NUMBER, .def = "1.0", .dmin = 1, .dmax = 1000},
	{.key = "critical_decrease", .type = SHAPE_NUMBER, .def = "1.0", .dmin = 0, .dmax = 1},
	{0},
};
static const struct shape_field metric_elem = {.type = SHAPE_OBJECT, .sub = metric_fields};

static const struct shape_field analysis_fields[] = {
	{.key = "min_requests", .type = SHAPE_INT, .def = "50", .min = 1, .max = 1000000},
	{.key = "max_error_rate", .type = SHAPE_NUMBER, .def = "0.05", .dmin = 0, .dmax = 1},
	{.key = "max_error_rate_increase", .type = SHAPE_NUMBER, .def = "0.02", .dmin = 0, .dmax = 1},
	{.key = "max_p99_latency", .type = SHAPE_DURATION, .def = "1000", .min = 1, .max = 3600000},
	{.key = "interval", .type = SHAPE_DURATION, .def = "1000", .min = 10, .max = 3600000},
	{.key = "method", .type = SHAPE_ENUM, .def = "\"sequential\"", .choices = methods},
	{.key = "alpha", .type = SHAPE_NUMBER, .def = "0.05", .dmin = 0.0001, .dmax = 0.5},
	{.key = "tolerance", .type = SHAPE_NUMBER, .def = "0.2", .dmin = 0, .dmax = 1},
	/* canary steps compare with a fresh baseline of the stable release (pipeline_baseline) */
	{.key = "baseline", .type = SHAPE_BOOL, .def = "false"},
	/* custom metrics from Prometheus, judged Kayenta-style (src/server/prometheus.h) */
	{.key = "metrics", .type = SHAPE_LIST, .def = "[]", .max = METRICS_MAX, .elem = &metric_elem,
	 .unique_key = "name", .item = "metric", .noun = "metrics", .what = "a list of metrics"},
	{.key = "prometheus", .type = SHAPE_STRING, .def = "\"http://127.0.0.1:9090\"",
	 .check = http_url_ok, .what = "an http:// or https:// URL of a Prometheus server"},
	{.key = "pass_score", .type = SHAPE_NUMBER, .def = "95.0", .dmin = 0, .dmax = 100},
	{.key = "marginal_score", .type = SHAPE_NUMBER, .def = "75.0", .dmin = 0, .dmax = 100},
	{0},
};

#define ROUTE_HOSTS_MAX 32
static const struct shape_field route_host_elem = {
	.type = SHAPE_STRING, .max = NAME_HOST_MAX, .check = route_host_ok,
	.what = "a host name (api.example.com) or a wildcard (*.example.com), without a port; "
		"{env} and {region} stand for the environment's and the region's names"};
static const struct shape_field route_fields[] = {
	{.key = "hosts", .type = SHAPE_LIST, .required = 1, .min = 1, .max = ROUTE_HOSTS_MAX,
	 .elem = &route_host_elem, .unique = 1, .noun = "hosts",
	 .what = "a list of 1 to 32 host names"},
	{.key = "path_prefix", .type = SHAPE_STRING, .def = "\"/\"", .max = NAME_PATH_PREFIX_MAX,
	 .check = route_prefix_ok,
	 .what = "\"/\" or \"/segment[/segment...]\" without a trailing slash, query or fragment"},
	{.key = "port", .type = SHAPE_INT, .required = 1, .min = 1, .max = 65535,
	 .what = "an integer port 1..65535 (the shared listener's; the region's port_offset is added)"},
	{0},
};

static const struct shape_field svc_fields[] = {
	{.key = "kind", .type = SHAPE_ENUM, .required = 1, .choices = kind_svc},
	{.key = "name", .type = SHAPE_NAME, .required = 1, .name = NAME_OBJECT},
	/* Required unless route is given (check_service_rules). */
	{.key = "listen_port", .type = SHAPE_INT, .nullable = 1, .def = "null", .min = 1, .max = 65535,
	 .what = "an integer port 1..65535"},
	{.key = "route", .type = SHAPE_OBJECT, .nullable = 1, .def = "null", .sub = route_fields},
	{.key = "run", .type = SHAPE_OBJECT, .sub = run_fields},
	{.key = "depends_on", .type = SHAPE_LIST, .def = "[]", .max = MANIFEST_MAX_DEPENDS,
	 .elem = &name_elem, .unique = 1},
	{.key = "health", .type = SHAPE_OBJECT, .sub = health_fields},
	{.key = "instances", .type = SHAPE_INT, .def = "1", .min = 1, .max = 64},
	{.key = "drain_timeout", .type = SHAPE_DURATION, .def = "10000", .min = 0, .max = 3600000},
	{.key = "strategy", .type = SHAPE_OBJECT, .sub = strategy_fields},
	{.key = "analysis", .type = SHAPE_OBJECT, .sub = analysis_fields},
	{.key = "bake", .type = SHAPE_DURATION, .def = "0", .min = 0,
	 .max = (long long)MANIFEST_MAX_DURATION_MS},
	{.key = "policy", .type = SHAPE_OBJECT, .sub = svc_policy_fields},
	{.key = "smoke", .type = SHAPE_LIST, .def = "[]", .max = SMOKE_MAX, .elem = &smoke_elem,
	 .noun = "checks", .what = "a list of checks (mappings with at least a path)"},
	{0},
};

/* ---- list shapes that need the whole list ---- */

static int check_steps(const struct shape_ctx *c, struct shape_at a, const char *path,
		       const struct shape_field *f, const json_t *v, json_t **out)
{
	(void)f;
	char got[64], ep[SHAPE_PATH_MAX];
	if (!json_is_array(v) || json_array_size(v) == 0)
		return shape_fail(c, shape_pos(c, a), path,
				  "expected a list of traffic percentages ending at 100, got %s", GOT(v));
	size_t n = json_array_size(v);
	if (n > 100)
		return shape_fail(c, shape_pos(c, a), path, "at most 100 steps, got %zu", n);
	json_int_t prev = 0;
	for (size_t i = 0; i < n; i++) {
		const json_t *el = json_array_get(v, i);
		struct doc_pos p = shape_pos(c, shape_at_index(v, i));
		shape_join_index(ep, path, i);
		if (!json_is_integer(el) || json_integer_value(el) < 1 || json_integer_value(el) > 100)
			return shape_fail(c, p, ep, "expected an integer percentage 1..100, got %s", GOT(el));
		json_int_t x = json_integer_value(el);
		if (x <= prev)
			return shape_fail(c, p, ep, "steps must be strictly increasing, got %lld after %lld",
					  (long long)x, (long long)prev);
		prev = x;
	}
	if (prev != 100)
		return shape_fail(c, shape_pos(c, shape_at_index(v, n - 1)), path,
				  "the last step must be 100 (all traffic), got %lld", (long long)prev);
	*out = json_deep_copy(v);
	return 0;
}

static const struct shape_field region_elem = {.type = SHAPE_OBJECT, .sub = region_fields};
static const struct shape_field region_list = {
	.type = SHAPE_LIST, .min = 1, .max = MANIFEST_MAX_REGIONS, .elem = &region_elem,
	.unique_key = "name", .item = "region", .noun = "regions",
	.what = "a list of regions (at least one)"};

/* The regions' shape, then each one's port offset: by default 100 * index, so that one
 * machine can host every region, and never the same twice. */
static int check_regions(const struct shape_ctx *c, struct shape_at a, const char *path,
			 const struct shape_field *f, const json_t *v, json_t **out)
{
	(void)f;
	char ep[SHAPE_PATH_MAX], fp[SHAPE_PATH_MAX];
	json_t *res = NULL;
	if (shape_check(c, a, path, &region_list, v, &res))
		return -1;
	for (size_t i = 0; i < json_array_size(res); i++) {
		json_t *r = json_array_get(res, i);
		if (!json_object_get(r, "port_offset"))
			json_object_set_new(r, "port_offset", json_integer((json_int_t)(100 * i)));
		json_int_t off = json_integer_value(json_object_get(r, "port_offset"));
		for (size_t j = 0; j < i; j++) {
			const json_t *o = json_array_get(res, j);
			if (json_integer_value(json_object_get(o, "port_offset")) != off)
				continue;
			const json_t *el = json_array_get(v, i);
			shape_join_index(ep, path, i);
			shape_join_key(fp, ep, "port_offset");
			struct shape_at pa = json_object_get(el, "port_offset") ? shape_at_key(el, "port_offset")
										: shape_at_index(v, i);
			int rc = shape_fail(c, shape_pos(c, pa), fp,
					    "port offset %lld is already used by region \"%s\" (each region "
					    "needs its own listeners)",
					    (long long)off, json_string_value(json_object_get(o, "name")));
			json_decref(res);
			return rc;
		}
	}
	*out = res;
	return 0;
}

/* "docker" alone names no hosts. */
static int check_runtime_name(const struct shape_ctx *c, struct shape_at a, const char *path, const json_t *v)
{
	if (json_is_string(v) && !strcmp(json_string_value(v), "docker"))
		return shape_fail(c, shape_pos(c, a), path,
				  "runtime docker needs its hosts: {kind: docker, hosts: [unix:///path/docker.sock]}");
	return 0;
}

/* A runtime kind ("local"), or a mapping: {kind: KIND, hosts: [URL...], tls: {ca, cert, key},
 * ports: [LOW, HIGH], proxy_image: IMAGE, proxy_tls: {cert, key, ca}}, keys other than kind optional and kept as written (no defaults, so the
 * normalized form is the same in every mode). Only the shape is checked here; the driver checks
 * the URLs, the paths and what its kind needs when it opens (runtime_docker.h). */
static int check_runtime(const struct shape_ctx *c, struct shape_at a, const char *path,
			 const struct shape_field *f, const json_t *v, json_t **out)
{
	(void)f;
	char kp[SHAPE_PATH_MAX], got[64];
	if (!json_is_object(v))
		return check_runtime_name(c, a, path, v) ? -1 : shape_check(c, a, path, &runtime_name, v, out);
	const char *key;
	json_t *x;
	json_object_foreach((json_t *)v, key, x) {
		shape_join_key(kp, path, key);
		struct doc_pos p = shape_pos(c, shape_at_key(v, key));
		bool ok;
		if (!strcmp(key, "kind")) {
			json_t *k = NULL;
			if (shape_check(c, shape_at_key(v, key), kp, &runtime_name, x, &k))
				return -1;
			json_decref(k);
			ok = true;
		} else if (!strcmp(key, "hosts")) {
			ok = json_is_array(x) && json_array_size(x) >= 1 && json_array_size(x) <= 16;
			for (size_t i = 0; ok && i < json_array_size(x); i++) {
				const char *h = json_string_value(json_array_get(x, i));
				ok = h && *h && strlen(h) < 256;
			}
			if (!ok)
				return shape_fail(c, p, kp, "expected 1 to 16 host URLs (unix:///path, tcp://HOST:PORT), got %s",
						  GOT(x));
		} else if (!strcmp(key, "tls")) {
			const char *ca = json_string_value(json_object_get(x, "ca")),
				   *cert = json_string_value(json_object_get(x, "cert")),
				   *k = json_string_value(json_object_get(x, "key"));
			ok = json_object_size(x) == 3 && ca && cert && k && strlen(ca) < 1024 && strlen(cert) < 1024 &&
			     strlen(k) < 1024;
			if (!ok)
				return shape_fail(c, p, kp, "expected {ca: PATH, cert: PATH, key: PATH}, got %s", GOT(x));
		} else if (!strcmp(key, "ports")) {
			json_int_t lo = json_integer_value(json_array_get(x, 0)), hi = json_integer_value(json_array_get(x, 1));
			ok = json_array_size(x) == 2 && json_is_integer(json_array_get(x, 0)) &&
			     json_is_integer(json_array_get(x, 1)) && lo >= 1024 && hi <= 65535 && lo <= hi;
			if (!ok)
				return shape_fail(c, p, kp, "expected [LOW, HIGH] within 1024..65535, got %s", GOT(x));
		} else if (!strcmp(key, "proxy_tls")) {
			const char *ca = json_string_value(json_object_get(x, "ca")),
				   *cert = json_string_value(json_object_get(x, "cert")),
				   *k = json_string_value(json_object_get(x, "key"));
			ok = json_object_size(x) == 3 && ca && cert && k && ca[0] == '/' && cert[0] == '/' &&
			     k[0] == '/' && strlen(ca) < 1024 && strlen(cert) < 1024 && strlen(k) < 1024;
			if (!ok)
				return shape_fail(c, p, kp, "expected {cert: PATH, key: PATH, ca: PATH} (absolute paths), got %s",
						  GOT(x));
		} else if (!strcmp(key, "proxy_image")) {
			const char *img = json_string_value(x);
			if (!img || !*img || strlen(img) >= 1024)
				return shape_fail(c, p, kp, "expected an image reference or an image archive's path, got %s",
						  GOT(x));
		} else {
			return shape_fail(c, p, kp, "unknown key, expected one of: kind, hosts, tls, ports, proxy_image, proxy_tls");
		}
	}
	const char *kind = json_string_value(json_object_get(v, "kind"));
	if (!kind)
		return shape_fail(c, shape_pos(c, a), path, "missing required key \"kind\"");
	if (!strcmp(kind, "docker") && !json_object_get(v, "hosts"))
		return shape_fail(c, shape_pos(c, a), path,
				  "runtime docker needs its hosts: {kind: docker, hosts: [unix:///path/docker.sock]}");
	*out = json_deep_copy(v);
	return *out ? 0 : shape_fail(c, shape_pos(c, a), path, "out of memory");
}

static const struct shape_field wave_list = {.type = SHAPE_LIST, .max = MANIFEST_MAX_REGIONS,
					     .elem = &name_elem, .unique = 1};

/* Shape only: a non-empty list of non-empty lists of names, no name twice. That the names are
 * exactly the environment's regions is for check_env_rules, which sees both keys. */
static int check_waves(const struct shape_ctx *c, struct shape_at a, const char *path,
		       const struct shape_field *f, const json_t *v, json_t **out)
{
	(void)f;
	char got[64], ep[SHAPE_PATH_MAX], np[SHAPE_PATH_MAX];
	if (!json_is_array(v) || json_array_size(v) == 0)
		return shape_fail(c, shape_pos(c, a), path,
				  "expected a list of waves, each a list of region names, got %s", GOT(v));
	if (json_array_size(v) > MANIFEST_MAX_REGIONS)
		return shape_fail(c, shape_pos(c, a), path, "at most %d waves, got %zu",
				  MANIFEST_MAX_REGIONS, json_array_size(v));
	json_t *res = json_array();
	size_t i;
	json_t *w;
	json_array_foreach(v, i, w) {
		shape_join_index(ep, path, i);
		json_t *names = NULL;
		if (!json_is_array(w) || json_array_size(w) == 0 || json_array_size(w) > MANIFEST_MAX_REGIONS) {
			json_decref(res);
			return shape_fail(c, shape_pos(c, shape_at_index(v, i)), ep,
					  "expected a list of 1..%d region names, got %s", MANIFEST_MAX_REGIONS,
					  GOT(w));
		}
		if (shape_check(c, shape_at_index(v, i), ep, &wave_list, w, &names)) {
			json_decref(res);
			return -1;
		}
		for (size_t j = 0; j < json_array_size(names); j++) {
			const char *name = json_string_value(json_array_get(names, j));
			for (size_t k = 0; k < i; k++) {
				const json_t *ow = json_array_get(res, k);
				for (size_t l = 0; l < json_array_size(ow); l++) {
					if (strcmp(json_string_value(json_array_get(ow, l)), name))
						continue;
					shape_join_index(np, ep, j);
					int rc = shape_fail(c, shape_pos(c, shape_at_index(w, j)), np,
							    "region \"%s\" is already in %s[%zu] (each "
							    "region belongs to exactly one wave)",
							    name, path, k);
					json_decref(names);
					json_decref(res);
					return rc;
				}
			}
		}
		json_array_append_new(res, names);
	}
	*out = res;
	return 0;
}

/* ---- rules that involve more than one key ---- */

/* Position of src.section.key when written, else of the section, else of the manifest. */
static struct doc_pos pos_of(const struct shape_ctx *c, const json_t *src, const char *section,
			     const char *key)
{
	if (!c->d)
		return (struct doc_pos){0, 0};
	const json_t *sec = json_object_get(src, section);
	if (json_is_object(sec) && json_object_get(sec, key))
		return doc_value_pos(c->d, sec, key);
	if (sec)
		return doc_value_pos(c->d, src, section);
	return doc_node_pos(c->d, src);
}

static int check_service_rules(const struct shape_ctx *c, const json_t *src, const json_t *m)
{
	char b1[48], b2[48];
	const json_t *st = json_object_get(m, "strategy"), *an = json_object_get(m, "analysis");
	const char *type = json_string_value(json_object_get(st, "type"));
	const char *method = json_string_value(json_object_get(an, "method"));
	const char *sfx = c->d ? "" : "_ms";
	char path[SHAPE_PATH_MAX];
	if (c->d) {
		/* Keys that would silently do nothing are mistakes: say so. */
		const json_t *sst = json_object_get(src, "strategy");
		if (strcmp(type, "canary") && json_object_get(sst, "steps"))
			return shape_fail(c, doc_key_pos(c->d, sst, "steps"), "strategy.steps",
				    "only used with type: canary (type is %s)", type);
		static const struct {
			const char *key, *type;
		} only[] = {{"max_surge", "rolling"},
			    {"max_unavailable", "rolling"},
			    {"keep_old", "blue-green"}};
		for (size_t i = 0; i < sizeof(only) / sizeof(only[0]); i++)
			if (strcmp(type, only[i].type) && json_object_get(sst, only[i].key)) {
				snprintf(path, sizeof(path), "strategy.%s", only[i].key);
				return shape_fail(c, doc_key_pos(c->d, sst, only[i].key), path,
					    "only used with type: %s (type is %s)", only[i].type, type);
			}
		const json_t *san = json_object_get(src, "analysis");
		if (strcmp(type, "canary") && json_is_true(json_object_get(san, "baseline")))
			return shape_fail(c, doc_key_pos(c->d, san, "baseline"), "analysis.baseline",
				    "only used with strategy type: canary (type is %s)", type);
		static const char *const seq_only[] = {"alpha", "tolerance"};
		for (size_t i = 0; i < 2; i++)
			if (strcmp(method, "sequential") && json_object_get(san, seq_only[i])) {
				snprintf(path, sizeof(path), "analysis.%s", seq_only[i]);
				return shape_fail(c, doc_key_pos(c->d, san, seq_only[i]), path,
					    "only used with method: sequential (method is %s)", method);
			}
	}
	if (!strcmp(type, "rolling") &&
	    json_integer_value(json_object_get(st, "max_surge")) +
			    json_integer_value(json_object_get(st, "max_unavailable")) < 1) {
		const json_t *sst = json_object_get(src, "strategy");
		const char *at = json_object_get(sst, "max_surge") ? "max_surge" : "max_unavailable";
		snprintf(path, sizeof(path), "strategy.%s", at);
		return shape_fail(c, pos_of(c, src, "strategy", at), path,
			    "max_surge and max_unavailable are both 0: no instance could ever be replaced; "
			    "set one of them to 1 or more");
	}
	json_int_t sd = json_integer_value(json_object_get(st, "step_duration_ms"));
	json_int_t msd = json_integer_value(json_object_get(st, "max_step_duration_ms"));
	if (msd < sd) {
		const json_t *sst = json_object_get(src, "strategy");
		const char *at = json_object_get(sst, "max_step_duration") ? "max_step_duration"
									     : "step_duration";
		snprintf(path, sizeof(path), "strategy.%s%s", at, sfx);
		return shape_fail(c, pos_of(c, src, "strategy", at), path,
			    "max_step_duration (%s) must be at least step_duration (%s)",
			    shape_duration_fmt((uint64_t)msd, b1, sizeof(b1)),
			    shape_duration_fmt((uint64_t)sd, b2, sizeof(b2)));
	}
	const json_t *smoke = json_object_get(m, "smoke");
	for (size_t i = 0; i < json_array_size(smoke); i++) {
		const json_t *ck = json_array_get(smoke, i);
		/* A HEAD answer has no body: the matcher could never pass. */
		if (!strcmp(json_string_value(json_object_get(ck, "method")), "HEAD") &&
		    json_is_string(json_object_get(ck, "body_contains"))) {
			snprintf(path, sizeof(path), "smoke[%zu].body_contains", i);
			const json_t *sck = c->d ? json_array_get(json_object_get(src, "smoke"), i) : NULL;
			return shape_fail(c, c->d ? doc_value_pos(c->d, sck, "body_contains")
					    : (struct doc_pos){0, 0},
				    path, "a HEAD response has no body (use method: GET)");
		}
	}
	const json_t *route = json_object_get(m, "route");
	if (!json_is_integer(json_object_get(m, "listen_port")) && !json_is_object(route))
		return shape_fail(c, c->d ? doc_node_pos(c->d, src) : (struct doc_pos){0, 0}, "listen_port",
			    "is required unless route is given (a port of the service's own, or hosts "
			    "on a shared listener)");
	if (json_is_object(route) && json_is_integer(json_object_get(m, "listen_port")))
		return shape_fail(c, c->d ? doc_key_pos(c->d, src, "route") : (struct doc_pos){0, 0}, "route",
			    "give listen_port (a listener of the service's own) or route (hosts on a "
			    "shared listener), not both");
	if (json_is_object(route)) {
		/* sluice itself reaches the service by its first host (stage traffic, dependents) */
		const char *h0 = json_string_value(json_array_get(json_object_get(route, "hosts"), 0));
		if (h0 && h0[0] == '*') {
			const json_t *sr = json_object_get(src, "route");
			return shape_fail(c, c->d ? doc_index_pos(c->d, json_object_get(sr, "hosts"), 0)
					    : (struct doc_pos){0, 0},
				    "route.hosts[0]", "the first host must be a name, not a wildcard: the "
				    "stage's traffic and dependent services use it");
		}
	}
	const char *name = json_string_value(json_object_get(m, "name"));
	const json_t *deps = json_object_get(m, "depends_on");
	for (size_t i = 0; i < json_array_size(deps); i++)
		if (!strcmp(json_string_value(json_array_get(deps, i)), name)) {
			snprintf(path, sizeof(path), "depends_on[%zu]", i);
			return shape_fail(c,
				    c->d ? doc_index_pos(c->d, json_object_get(src, "depends_on"), i)
					 : (struct doc_pos){0, 0},
				    path, "a service cannot depend on itself");
		}
	return 0;
}

/* Waves against regions, the default waves, and promotion.from; m is the normalized result
 * (its placeholder waves replaced here), src the input. */
static int check_env_rules(const struct shape_ctx *c, const json_t *src, json_t *m)
{
	char path[SHAPE_PATH_MAX], list[256];
	const json_t *regions = json_object_get(m, "regions");
	const json_t *waves = json_object_get(m, "waves");
	const char *name = json_string_value(json_object_get(m, "name"));
	size_t nr = json_array_size(regions), o = 0;
	list[0] = '\0';
	for (size_t r = 0; r < nr && o < sizeof(list); r++)
		o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", r ? ", " : "",
				      json_string_value(json_object_get(json_array_get(regions, r),
									"name")));
	if (json_is_null(waves)) {
		/* Default: one wave per region, in region order. */
		json_t *def = json_array();
		for (size_t r = 0; r < nr; r++)
			json_array_append_new(def, json_pack("[O]", json_object_get(
									 json_array_get(regions, r), "name")));
		json_object_set_new(m, "waves", def);
	} else {
		const json_t *swaves = c->d ? json_object_get(src, "waves") : NULL;
		for (size_t i = 0; i < json_array_size(waves); i++) {
			const json_t *w = json_array_get(waves, i);
			for (size_t j = 0; j < json_array_size(w); j++) {
				const char *rn = json_string_value(json_array_get(w, j));
				size_t r = 0;
				while (r < nr && strcmp(rn, json_string_value(json_object_get(
								   json_array_get(regions, r), "name"))))
					r++;
				if (r < nr)
					continue;
				snprintf(path, sizeof(path), "waves[%zu][%zu]", i, j);
				return shape_fail(c, c->d ? doc_index_pos(c->d, json_array_get(swaves, i), j)
						    : (struct doc_pos){0, 0},
					    path, "unknown region \"%s\" (the regions are %s)", rn, list);
			}
		}
		for (size_t r = 0; r < nr; r++) {
			const char *rn = json_string_value(json_object_get(json_array_get(regions, r),
									    "name"));
			int found = 0;
			for (size_t i = 0; i < json_array_size(waves) && !found; i++) {
				const json_t *w = json_array_get(waves, i);
				for (size_t j = 0; j < json_array_size(w) && !found; j++)
					found = !strcmp(rn, json_string_value(json_array_get(w, j)));
			}
			if (!found)
				return shape_fail(c, c->d ? doc_value_pos(c->d, src, "waves")
						    : (struct doc_pos){0, 0},
					    "waves", "region \"%s\" is in no wave (every region must be in "
					    "exactly one)", rn);
		}
	}
	const char *from = json_string_value(json_object_get(json_object_get(m, "promotion"), "from"));
	if (from && !strcmp(from, name))
		return shape_fail(c, pos_of(c, src, "promotion", "from"), "promotion.from",
			    "an environment cannot be promoted from itself (name the environment "
			    "before this one)");
	return 0;
}

/* Validates one manifest (source or stored, depending on c->mode); *out is normalized. */
static int check_manifest(const struct shape_ctx *c, const json_t *m, struct shape_at a, json_t **out)
{
	char got[64];
	if (!json_is_object(m))
		return shape_fail(c, shape_pos(c, a), "",
			    "expected a mapping with kind: Environment, Service or FlagSet, got %s", GOT(m));
	const json_t *kind = json_object_get(m, "kind");
	if (!kind) {
		struct doc_pos p = c->d ? doc_node_pos(c->d, m) : (struct doc_pos){0, 0};
		return shape_fail(c, p, "", "missing required key \"kind\" (expected Environment, Service or FlagSet)");
	}
	json_t *k = NULL;
	static const struct shape_field kind_field = {.key = "kind", .type = SHAPE_ENUM, .choices = kinds};
	if (shape_check(c, shape_at_key(m, "kind"), "kind", &kind_field, kind, &k))
		return -1;
	int svc = !strcmp(json_string_value(k), "Service");
	int is_flagset = !strcmp(json_string_value(k), "FlagSet");
	json_decref(k);
	if (is_flagset) /* an environment's feature flags (flags/flagset.h) */
		return flagset_check_manifest(c, m, a, out);
	json_t *res = NULL;
	if (shape_check_object(c, a, "", svc ? svc_fields : env_fields, m, &res))
		return -1;
	if (svc && check_service_rules(c, m, res)) {
		json_decref(res);
		return -1;
	}
	if (!svc && check_env_rules(c, m, res)) {
		json_decref(res);
		return -1;
	}
	*out = res;
	return 0;
}

int manifest_validate(const doc *d, json_t **out, struct err *e)
{
	struct shape_ctx c = {.d = d, .mode = SHAPE_SOURCE, .e = e};
	json_t *all = json_array();
	/* "Kind/name" -> line of its first definition, to refuse duplicates in one file. */
	json_t *seen = json_object();
	int rc = 0;
	for (size_t i = 0; i < doc_count(d) && !rc; i++) {
		json_t *root = doc_root(d, i);
		if (json_is_null(root)) /* an empty document, e.g. after a trailing "---" */
			continue;
		if (json_array_size(all) >= MANIFEST_MAX_PER_FILE) {
			rc = doc_error(d, doc_node_pos(d, root), e, "more than %d manifests in one file",
				       MANIFEST_MAX_PER_FILE);
			break;
		}
		json_t *m = NULL;
		if (!json_is_object(root)) {
			char got[64];
			rc = doc_error(d, doc_node_pos(d, root), e,
				       "document %zu: expected a mapping with kind: Environment, "
				       "Service or FlagSet, got %s",
				       i + 1, GOT(root));
			break;
		}
		if ((rc = check_manifest(&c, root, shape_at_node(root), &m)))
			break;
		char id[128];
		snprintf(id, sizeof(id), "%s/%s", json_string_value(json_object_get(m, "kind")),
			 json_string_value(json_object_get(m, "name")));
		struct doc_pos np = doc_value_pos(d, root, "name");
		const json_t *first = json_object_get(seen, id);
		if (first) {
			rc = doc_error(d, np, e, "name: %s \"%s\" is defined twice in this file (first at line %lld)",
				       json_string_value(json_object_get(m, "kind")),
				       json_string_value(json_object_get(m, "name")),
				       (long long)json_integer_value(first));
			json_decref(m);
			break;
		}
		json_object_set_new(seen, id, json_integer(np.line));
		json_array_append_new(all, m);
	}
	if (!rc && json_array_size(all) == 0)
		rc = doc_error(d, (struct doc_pos){0, 0}, e,
			       "no manifest in this file (expected documents with kind: Environment "
			       "or Service)");
	json_decref(seen);
	if (rc) {
		json_decref(all);
		return -1;
	}
	*out = all;
	return 0;
}

/* The stored form, checked; *out is its normalized copy (equal to it when it is valid). */
static int check_stored(const json_t *m, json_t **out, struct err *e)
{
	char label[128];
	const char *kind = json_string_value(json_object_get(m, "kind"));
	const char *name = json_string_value(json_object_get(m, "name"));
	snprintf(label, sizeof(label), "%s '%.63s'", kind ? kind : "manifest", name ? name : "?");
	struct shape_ctx c = {.mode = SHAPE_STORED, .label = label, .stored = "manifest", .e = e};
	return check_manifest(&c, m, shape_at_node(m), out);
}

int manifest_check_normalized(const json_t *m, struct err *e)
{
	json_t *out = NULL;
	if (check_stored(m, &out, e))
		return -1;
	json_decref(out);
	return 0;
}

/* ---- secrets ---- */

static void mask_one(json_t *m)
{
	json_t *env = json_object_get(json_object_get(m, "run"), "env");
	const char *k;
	json_t *v;
	json_object_foreach(env, k, v)
		if (json_is_object(v) && json_is_true(json_object_get(v, "secret")))
			json_object_set_new(v, "value", json_string(MANIFEST_SECRET_MASK));
}

json_t *manifest_mask_secrets(const json_t *m)
{
	json_t *copy = json_deep_copy(m);
	if (!copy)
		return NULL;
	if (json_is_array(copy)) {
		size_t i;
		json_t *el;
		json_array_foreach(copy, i, el)
			mask_one(el);
	} else {
		mask_one(copy);
	}
	return copy;
}

/* ---- typed manifests ---- */

/* The parsed struct and the JSON its strings point into, freed together. The public struct is
 * the first member, so a pointer to it is a pointer to the box. */
struct svc_box {
	struct service_manifest pub;
	json_t *json;
};

struct env_box {
	struct env_manifest pub;
	json_t *json;
};

static const char *gs(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int gi(const json_t *o, const char *k)
{
	return (int)json_integer_value(json_object_get(o, k));
}

static uint64_t gms(const json_t *o, const char *k)
{
	return (uint64_t)json_integer_value(json_object_get(o, k));
}

static double gd(const json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

static bool gb(const json_t *o, const char *k)
{
	return json_is_true(json_object_get(o, k));
}

/* The index of a checked enum value in its choices (the C enums follow the same order). */
static int pick(const char *s, const char *const *choices)
{
	for (int i = 0; s && choices[i]; i++)
		if (!strcmp(s, choices[i]))
			return i;
	return 0;
}

/* p = n zeroed elements (NULL when n is 0); true when the allocation failed. */
#define ALLOC_N(p, n) (((p) = (n) ? calloc((n), sizeof(*(p))) : NULL), (n) && !(p))

/* The checked, normalized, private copy of a stored manifest of the wanted kind. */
static int stored_copy(const json_t *m, const char *kind, json_t **out, struct err *e)
{
	json_t *norm = NULL;
	if (check_stored(m, &norm, e))
		return -1;
	if (strcmp(gs(norm, "kind"), kind)) {
		int rc = err_set(e, "%s '%s': kind: expected %s, got \"%s\"", gs(norm, "kind"),
				 gs(norm, "name"), kind, gs(norm, "kind"));
		json_decref(norm);
		return rc;
	}
	/* The walker shares leaves with its input: copy, so that nothing is shared with m. */
	*out = json_deep_copy(norm);
	json_decref(norm);
	return *out ? 0 : err_set(e, "out of memory parsing a manifest");
}

void manifest_service_free(struct service_manifest *s)
{
	if (!s)
		return;
	struct svc_box *b = (struct svc_box *)s;
	free(s->run.args);
	free(s->run.env);
	free(s->depends_on);
	free(s->strategy.steps);
	free(s->analysis.metrics);
	free(s->smoke);
	free(s->route.hosts);
	json_decref(b->json);
	free(b);
}

int manifest_service_parse(const json_t *m, struct service_manifest **out, struct err *e)
{
	json_t *j = NULL;
	if (stored_copy(m, "Service", &j, e))
		return -1;
	struct svc_box *b = calloc(1, sizeof(*b));
	if (!b) {
		json_decref(j);
		return err_set(e, "out of memory parsing a manifest");
	}
	b->json = j;
	struct service_manifest *s = &b->pub;
	s->name = gs(j, "name");
	s->listen_port = gi(j, "listen_port"); /* 0 when null */
	const json_t *route = json_object_get(j, "route"), *hosts = json_object_get(route, "hosts");
	s->route.nhosts = json_array_size(hosts);
	s->route.path_prefix = json_is_object(route) ? gs(route, "path_prefix") : NULL;
	s->route.port = json_is_object(route) ? gi(route, "port") : 0;

	const json_t *run = json_object_get(j, "run"), *args = json_object_get(run, "args");
	const json_t *env = json_object_get(run, "env"), *deps = json_object_get(j, "depends_on");
	const json_t *st = json_object_get(j, "strategy"), *steps = json_object_get(st, "steps");
	const json_t *an = json_object_get(j, "analysis"), *metrics = json_object_get(an, "metrics");
	const json_t *smoke = json_object_get(j, "smoke"), *health = json_object_get(j, "health");
	s->run.nargs = json_array_size(args);
	s->run.nenv = json_object_size(env);
	s->ndepends = json_array_size(deps);
	s->strategy.nsteps = json_array_size(steps);
	s->analysis.nmetrics = json_array_size(metrics);
	s->nsmoke = json_array_size(smoke);
	if (ALLOC_N(s->run.args, s->run.nargs) ||
	    ALLOC_N(s->run.env, s->run.nenv) ||
	    ALLOC_N(s->depends_on, s->ndepends) ||
	    ALLOC_N(s->strategy.steps, s->strategy.nsteps) ||
	    ALLOC_N(s->analysis.metrics, s->analysis.nmetrics) ||
	    ALLOC_N(s->smoke, s->nsmoke) ||
	    ALLOC_N(s->route.hosts, s->route.nhosts)) {
		manifest_service_free(s);
		return err_set(e, "out of memory parsing a manifest");
	}

	s->run.command = gs(run, "command");
	for (size_t i = 0; i < s->route.nhosts; i++)
		s->route.hosts[i] = json_string_value(json_array_get(hosts, i));
	for (size_t i = 0; i < s->run.nargs; i++)
		s->run.args[i] = json_string_value(json_array_get(args, i));
	const char *k;
	json_t *v;
	size_t n = 0;
	json_object_foreach((json_t *)env, k, v) {
		/* The key lives as long as the object holds it: the private copy, until free. */
		s->run.env[n].name = k;
		s->run.env[n].secret = json_is_object(v);
		s->run.env[n++].value = json_string_value(json_is_object(v) ? json_object_get(v, "value") : v);
	}
	for (size_t i = 0; i < s->ndepends; i++)
		s->depends_on[i] = json_string_value(json_array_get(deps, i));

	s->health.path = gs(health, "path");
	s->health.interval_ms = gms(health, "interval_ms");
	s->health.timeout_ms = gms(health, "timeout_ms");
	s->instances = gi(j, "instances");
	s->drain_timeout_ms = gms(j, "drain_timeout_ms");

	s->strategy.type = (enum manifest_strategy)pick(gs(st, "type"), strategies);
	for (size_t i = 0; i < s->strategy.nsteps; i++)
		s->strategy.steps[i] = (int)json_integer_value(json_array_get(steps, i));
	s->strategy.step_duration_ms = gms(st, "step_duration_ms");
	s->strategy.max_step_duration_ms = gms(st, "max_step_duration_ms");
	s->strategy.max_surge = gi(st, "max_surge");
	s->strategy.max_unavailable = gi(st, "max_unavailable");
	s->strategy.keep_old_ms = gms(st, "keep_old_ms");
	s->strategy.max_unobserved_ms = gms(st, "max_unobserved_ms");
	s->strategy.crash_loop_restarts = gi(st, "crash_loop_restarts");
	s->strategy.crash_loop_window_ms = gms(st, "crash_loop_window_ms");

	s->analysis.min_requests = gi(an, "min_requests");
	s->analysis.max_error_rate = gd(an, "max_error_rate");
	s->analysis.max_error_rate_increase = gd(an, "max_error_rate_increase");
	s->analysis.max_p99_latency_ms = gms(an, "max_p99_latency_ms");
	s->analysis.interval_ms = gms(an, "interval_ms");
	s->analysis.method = (enum manifest_method)pick(gs(an, "method"), methods);
	s->analysis.alpha = gd(an, "alpha");
	s->analysis.tolerance = gd(an, "tolerance");
	s->analysis.baseline = gb(an, "baseline");
	for (size_t i = 0; i < s->analysis.nmetrics; i++) {
		const json_t *mt = json_array_get(metrics, i);
		struct manifest_metric *x = &s->analysis.metrics[i];
		x->name = gs(mt, "name");
		x->query = gs(mt, "query");
		x->direction = (enum manifest_direction)pick(gs(mt, "direction"), directions);
		x->critical = gb(mt, "critical");
		x->weight = gd(mt, "weight");
		x->allowed_increase = gd(mt, "allowed_increase");
		x->allowed_decrease = gd(mt, "allowed_decrease");
		x->critical_increase = gd(mt, "critical_increase");
		x->critical_decrease = gd(mt, "critical_decrease");
	}
	s->analysis.prometheus = gs(an, "prometheus");
	s->analysis.pass_score = gd(an, "pass_score");
	s->analysis.marginal_score = gd(an, "marginal_score");

	s->bake_ms = gms(j, "bake_ms");
	s->policy.concurrency =
		(enum manifest_concurrency)pick(gs(json_object_get(j, "policy"), "concurrency"), concurrencies);
	for (size_t i = 0; i < s->nsmoke; i++) {
		const json_t *ck = json_array_get(smoke, i);
		struct manifest_smoke *x = &s->smoke[i];
		x->path = gs(ck, "path");
		x->method = (enum manifest_http_method)pick(gs(ck, "method"), smoke_methods);
		x->status = gi(ck, "status");
		x->body_contains = gs(ck, "body_contains"); /* NULL when null */
		x->timeout_ms = gms(ck, "timeout_ms");
	}
	*out = s;
	return 0;
}

void manifest_env_free(struct env_manifest *env)
{
	if (!env)
		return;
	struct env_box *b = (struct env_box *)env;
	for (size_t i = 0; env->waves && i < env->nwaves; i++)
		free(env->waves[i].regions);
	free(env->waves);
	free(env->regions);
	json_decref(b->json);
	free(b);
}

int manifest_env_parse(const json_t *m, struct env_manifest **out, struct err *e)
{
	json_t *j = NULL;
	if (stored_copy(m, "Environment", &j, e))
		return -1;
	struct env_box *b = calloc(1, sizeof(*b));
	if (!b) {
		json_decref(j);
		return err_set(e, "out of memory parsing a manifest");
	}
	b->json = j;
	struct env_manifest *env = &b->pub;
	const json_t *regions = json_object_get(j, "regions"), *waves = json_object_get(j, "waves");
	env->name = gs(j, "name");
	env->nregions = json_array_size(regions);
	env->nwaves = json_array_size(waves);
	if (ALLOC_N(env->regions, env->nregions) ||
	    ALLOC_N(env->waves, env->nwaves))
		goto oom;
	for (size_t i = 0; i < env->nregions; i++) {
		const json_t *r = json_array_get(regions, i);
		env->regions[i].name = gs(r, "name");
		const json_t *rt = json_object_get(r, "runtime");
		env->regions[i].runtime_settings = json_object_size(rt) > 1 ? rt : NULL; /* more than its kind */
		env->regions[i].runtime_kind = json_is_object(rt) ? gs(rt, "kind") : gs(r, "runtime");
		env->regions[i].runtime = (enum manifest_runtime)pick(env->regions[i].runtime_kind, runtimes);
		env->regions[i].port_offset = gi(r, "port_offset");
	}
	for (size_t i = 0; i < env->nwaves; i++) {
		const json_t *w = json_array_get(waves, i);
		struct manifest_wave *x = &env->waves[i];
		x->nregions = json_array_size(w);
		if (ALLOC_N(x->regions, x->nregions))
			goto oom;
		/* check_env_rules made every name one of the regions. */
		for (size_t k = 0; k < x->nregions; k++)
			for (size_t r = 0; r < env->nregions; r++)
				if (!strcmp(json_string_value(json_array_get(w, k)), env->regions[r].name))
					x->regions[k] = r;
	}
	const json_t *pol = json_object_get(j, "policy"), *stage = json_object_get(j, "stage");
	env->policy.allow_unknown_consumers = gb(pol, "allow_unknown_consumers");
	env->policy.wave_bake_ms = gms(pol, "wave_bake_ms");
	env->policy.on_region_failure = (enum manifest_on_failure)pick(gs(pol, "on_region_failure"), region_failures);
	env->policy.region_retries = gi(pol, "region_retries");
	env->policy.retry_backoff_ms = gms(pol, "retry_backoff_ms");
	env->promotion.from = gs(json_object_get(j, "promotion"), "from"); /* NULL when null */
	env->stage.side_by_side_ms = gms(stage, "side_by_side_ms");
	env->stage.traffic_rate = gi(stage, "traffic_rate");
	*out = env;
	return 0;
oom:
	manifest_env_free(env);
	return err_set(e, "out of memory parsing a manifest");
}

int manifest_route_host(const char *pattern, const char *env, const char *region, char *buf, size_t len)
{
	size_t n = 0;
	for (const char *p = pattern; *p; p++) {
		const char *add = NULL;
		if (!strncmp(p, "{env}", 5)) {
			add = env;
			p += 4;
		} else if (!strncmp(p, "{region}", 8)) {
			add = region;
			p += 7;
		}
		size_t k = add ? strlen(add) : 1;
		if (n + k + 1 > len)
			return -1;
		memcpy(buf + n, add ? add : p, k);
		n += k;
	}
	if (n + 1 > len)
		return -1;
	buf[n] = 0;
	return 0;
}
