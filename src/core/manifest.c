#include "core/manifest.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Every mapping of the format is described by a table of fields. The walker checks the keys
 * that are present (in document order, so the first error is the first one in the file), then
 * fills the absent ones from their defaults and emits the keys in table order, so that the
 * normalized JSON of two equal manifests is byte-for-byte equal.
 */
enum ftype {
	F_NAME,     /* an object name, see manifest_name_ok */
	F_STRING,   /* a non-empty string, optionally checked by `check` */
	F_ENUM,     /* one of `choices` */
	F_BOOL,
	F_INT,      /* integer in [min, max] */
	F_NUMBER,   /* integer or real in [dmin, dmax], normalized to a real */
	F_DURATION, /* "1m30s" or integer milliseconds in [min, max]; key gets "_ms" when normalized */
	F_OBJECT,   /* a mapping described by `sub` */
	F_ARGS,     /* list of scalars, normalized to strings */
	F_ENV,      /* mapping of variable name -> scalar, normalized to strings */
	F_NAMES,    /* list of distinct names */
	F_STEPS,    /* strictly increasing percentages ending at 100 */
	F_REGIONS,  /* list of region mappings with distinct names and listener offsets */
	F_WAVES,    /* list of non-empty lists of region names, each name once */
	F_SMOKE,    /* list of smoke-check mappings (smoke_fields) */
	F_METRICS,  /* list of custom metric mappings (`sub`) with distinct names, at most `max` */
};

struct field {
	const char *key; /* as written in YAML; NULL ends a table */
	enum ftype type;
	int required;
	int nullable; /* the normalized form may hold null (then the default is "null") */
	const char *def; /* default as JSON text (durations in ms); NULL: required, object or special */
	long long min, max;
	double dmin, dmax;
	const char *const *choices;
	const struct field *sub;
	int (*check)(const char *s);
	const char *what; /* what is expected, for messages */
};

struct vctx {
	const doc *d; /* NULL when checking a normalized manifest */
	struct err *e;
	char label[128]; /* normalized mode: "Service 'metadata'" */
};

/* Where a value sits: the value of `key` in `parent`, element `index` of `parent`, or (parent
 * NULL) the container `node` itself. Positions are looked up by place because jansson shares
 * its scalar singletons. */
struct at {
	const json_t *parent;
	const char *key;
	size_t index;
	const json_t *node;
};

#define PATH_MAX_LEN 256

static struct doc_pos at_pos(const struct vctx *c, struct at a)
{
	if (!c->d)
		return (struct doc_pos){0, 0};
	if (!a.parent)
		return a.node ? doc_node_pos(c->d, a.node) : (struct doc_pos){0, 0};
	if (a.key)
		return doc_value_pos(c->d, a.parent, a.key);
	return doc_index_pos(c->d, a.parent, a.index);
}

static struct at at_key(const json_t *parent, const char *key)
{
	return (struct at){parent, key, 0, NULL};
}

static struct at at_index(const json_t *parent, size_t i)
{
	return (struct at){parent, NULL, i, NULL};
}

__attribute__((format(printf, 4, 5))) static int fail(const struct vctx *c, struct doc_pos pos,
						       const char *path, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	const char *sep = *path ? ": " : "";
	if (c->d)
		return doc_error(c->d, pos, c->e, "%s%s%s", path, sep, msg);
	return err_set(c->e, "%s: %s%s%s", c->label, path, sep, msg);
}

static void join_key(char *out, const char *path, const char *key)
{
	/* Paths are for messages: a cut one is still useful, so truncation is fine. */
	if (snprintf(out, PATH_MAX_LEN, "%s%s%s", path, *path ? "." : "", key) < 0)
		out[0] = '\0';
}

static void join_index(char *out, const char *path, size_t i)
{
	if (snprintf(out, PATH_MAX_LEN, "%s[%zu]", path, i) < 0)
		out[0] = '\0';
}

/* A short description of a value for "got ..." (strings quoted and cut at 40 bytes). */
static const char *describe(const json_t *v, char *buf, size_t n)
{
	if (!v)
		return "nothing";
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "a mapping";
	case JSON_ARRAY:
		return json_array_size(v) ? "a list" : "an empty list";
	case JSON_INTEGER:
		snprintf(buf, n, "%lld", (long long)json_integer_value(v));
		return buf;
	case JSON_REAL:
		snprintf(buf, n, "%g", json_real_value(v));
		return buf;
	case JSON_TRUE:
		return "true";
	case JSON_FALSE:
		return "false";
	case JSON_NULL:
		return "null (nothing)";
	case JSON_STRING:
		break;
	}
	const char *s = json_string_value(v);
	size_t len = json_string_length(v), o = 0;
	buf[o++] = '"';
	for (size_t i = 0; i < len && i < 40 && o + 6 < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		buf[o++] = (ch >= 0x20 && ch != 0x7f && ch != '"') ? (char)ch : '?';
	}
	if (len > 40 && o + 5 < n) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

#define GOT(v) describe((v), got, sizeof(got))

/* Edit distance counting a swap of two neighbours as one edit (optimal string alignment), so
 * that "stpes" is one typo away from "steps"; a large number for long strings. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return SIZE_MAX;
	size_t m[65][65];
	for (size_t i = 0; i <= la; i++)
		m[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		m[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t best = m[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (m[i - 1][j] + 1 < best)
				best = m[i - 1][j] + 1;
			if (m[i][j - 1] + 1 < best)
				best = m[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    m[i - 2][j - 2] + 1 < best)
				best = m[i - 2][j - 2] + 1;
			m[i][j] = best;
		}
	return m[la][lb];
}

/* The closest candidate when it is close enough to be a typo, else NULL. */
static const char *closest(const char *s, const char *const *cands, size_t n)
{
	size_t limit = strlen(s) / 3;
	if (limit < 1)
		limit = 1;
	if (limit > 3)
		limit = 3;
	const char *best = NULL;
	size_t bestd = SIZE_MAX;
	for (size_t i = 0; i < n; i++) {
		size_t dist = edit_distance(s, cands[i]);
		if (dist <= limit && dist < bestd) {
			best = cands[i];
			bestd = dist;
		}
	}
	return best;
}

int manifest_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > MANIFEST_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		int alnum = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
		if (!alnum && !(ch == '-' && i > 0 && i + 1 < n))
			return 0;
	}
	return 1;
}

int manifest_duration_ms(const char *s, uint64_t *ms)
{
	static const struct {
		const char *suffix;
		uint64_t mul;
	} units[] = {{"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
	if (!s || !*s || strlen(s) > 64)
		return -1;
	uint64_t total = 0;
	int last = -1;
	const char *p = s;
	while (*p) {
		if (*p < '0' || *p > '9')
			return -1;
		uint64_t v = 0;
		for (; *p >= '0' && *p <= '9'; p++) {
			unsigned dgt = (unsigned)(*p - '0');
			if (v > (UINT64_MAX - dgt) / 10)
				return -1;
			v = v * 10 + dgt;
		}
		int u;
		if (!*p && last < 0) /* a bare integer: milliseconds */
			u = 3;
		else if (p[0] == 'm' && p[1] == 's')
			u = 3, p += 2;
		else if (*p == 'h' || *p == 'm' || *p == 's')
			u = (*p == 'h') ? 0 : (*p == 'm') ? 1 : 2, p++;
		else
			return -1;
		/* Units strictly in order h, m, s, ms: "30s1m" is more likely a mistake than intent. */
		if (u <= last)
			return -1;
		last = u;
		if (v > UINT64_MAX / units[u].mul)
			return -1;
		v *= units[u].mul;
		if (total > UINT64_MAX - v)
			return -1;
		total += v;
	}
	*ms = total;
	return 0;
}

/* "1m30s", "250ms", "0s": the shortest way to write ms back in the manifest's syntax. */
static const char *fmt_duration(uint64_t ms, char *buf, size_t n)
{
	if (ms == 0) {
		snprintf(buf, n, "0s");
		return buf;
	}
	uint64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, r = ms % 1000;
	size_t o = 0;
	buf[0] = '\0';
	if (h)
		o += (size_t)snprintf(buf + o, n - o, "%lluh", (unsigned long long)h);
	if (m && o < n)
		o += (size_t)snprintf(buf + o, n - o, "%llum", (unsigned long long)m);
	if (s && o < n)
		o += (size_t)snprintf(buf + o, n - o, "%llus", (unsigned long long)s);
	if (r && o < n)
		snprintf(buf + o, n - o, "%llums", (unsigned long long)r);
	return buf;
}

/* Scalars of env and args become strings, so that `PORT: 8080` and `DEBUG: true` work. */
static json_t *scalar_to_string(const json_t *v)
{
	char buf[64];
	switch (json_typeof(v)) {
	case JSON_STRING:
		return json_stringn(json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
		return json_string(buf);
	case JSON_REAL: {
		double x = json_real_value(v);
		/* The shortest text that reads back as the same double: 0.1 stays "0.1". */
		for (int prec = 1; prec <= 17; prec++) {
			snprintf(buf, sizeof(buf), "%.*g", prec, x);
			if (strtod(buf, NULL) == x)
				break;
		}
		return json_string(buf);
	}
	case JSON_TRUE:
		return json_string("true");
	case JSON_FALSE:
		return json_string("false");
	default:
		return NULL;
	}
}

static int env_name_ok(const char *s)
{
	if (!*s || strlen(s) > 128 || (*s >= '0' && *s <= '9'))
		return 0;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		      *s == '_'))
			return 0;
	return 1;
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

static int metric_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 63)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '_' || *s == '-' || *s == '.'))
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

/* ---- the tables ---- */

static const char *const kinds[] = {"Environment", "Service", NULL};
static const char *const runtimes[] = {"local", NULL};
static const char *const strategies[] = {"canary", "rolling", "blue-green", NULL};
static const char *const methods[] = {"threshold", "sequential", NULL};
static const char *const directions[] = {"increase", "decrease", "either", NULL};
static const char *const kind_env[] = {"Environment", NULL};
static const char *const kind_svc[] = {"Service", NULL};
static const char *const region_failures[] = {"halt", "continue", NULL};
static const char *const concurrencies[] = {"queue", "supersede", NULL};
static const char *const smoke_methods[] = {"GET", "HEAD", "POST", NULL};

/* Smoke checks run one after the other before traffic moves: a few are plenty. */
#define SMOKE_MAX 32

#define NAME_WHAT                                                                                  \
	"a name of lowercase letters, digits and '-' (1..63 characters, starting and ending with "  \
	"a letter or digit)"

static const struct field region_fields[] = {
	{.key = "name", .type = F_NAME, .required = 1, .what = NAME_WHAT},
	{.key = "runtime", .type = F_ENUM, .def = "\"local\"", .choices = runtimes},
	/* Default (100 * index) is filled by the F_REGIONS walker, which knows the index. */
	{.key = "port_offset", .type = F_INT, .min = 0, .max = 60000,
	 .what = "an integer port offset 0..60000"},
	{0},
};

static const struct field policy_fields[] = {
	{.key = "allow_unknown_consumers", .type = F_BOOL, .def = "false"},
	{.key = "wave_bake", .type = F_DURATION, .def = "0", .min = 0,
	 .max = (long long)MANIFEST_MAX_DURATION_MS},
	{.key = "on_region_failure", .type = F_ENUM, .def = "\"halt\"", .choices = region_failures},
	{.key = "region_retries", .type = F_INT, .def = "2", .min = 0, .max = 10},
	/* Doubling from at most 5m over at most 10 retries still ends within days, not years. */
	{.key = "retry_backoff", .type = F_DURATION, .def = "2000", .min = 0, .max = 300000},
	{0},
};

static const struct field promotion_fields[] = {
	/* Whether that environment exists is for the server, which sees every manifest. */
	{.key = "from", .type = F_NAME, .nullable = 1, .def = "null", .what = NAME_WHAT},
	{0},
};

static const struct field stage_fields[] = {
	{.key = "side_by_side", .type = F_DURATION, .def = "20000", .min = 1000, .max = 3600000},
	{.key = "traffic_rate", .type = F_INT, .def = "50", .min = 1, .max = 10000},
	{0},
};

static const struct field env_fields[] = {
	{.key = "kind", .type = F_ENUM, .required = 1, .choices = kind_env},
	{.key = "name", .type = F_NAME, .required = 1, .what = NAME_WHAT},
	{.key = "regions", .type = F_REGIONS, .required = 1,
	 .what = "a list of regions (at least one)"},
	/* Default (one wave per region, in order) is filled by check_env_rules, which sees regions;
	 * "null" only holds the key's place so that keys stay in table order. */
	{.key = "waves", .type = F_WAVES, .def = "null"},
	{.key = "policy", .type = F_OBJECT, .sub = policy_fields},
	{.key = "promotion", .type = F_OBJECT, .sub = promotion_fields},
	{.key = "stage", .type = F_OBJECT, .sub = stage_fields},
	{0},
};

static const struct field run_fields[] = {
	{.key = "command", .type = F_STRING, .def = "\"{artifact}\"", .check = command_ok,
	 .what = "a command (a non-empty string without control characters)"},
	{.key = "args", .type = F_ARGS, .def = "[\"--port\", \"{port}\"]"},
	{.key = "env", .type = F_ENV, .def = "{}"},
	{0},
};

static const struct field health_fields[] = {
	{.key = "path", .type = F_STRING, .def = "\"/healthz\"", .check = http_path_ok,
	 .what = "an HTTP path starting with '/' (no spaces)"},
	{.key = "interval", .type = F_DURATION, .def = "1000", .min = 100, .max = 3600000},
	{.key = "timeout", .type = F_DURATION, .def = "1000", .min = 10, .max = 3600000},
	{0},
};

static const struct field strategy_fields[] = {
	{.key = "type", .type = F_ENUM, .def = "\"canary\"", .choices = strategies},
	{.key = "steps", .type = F_STEPS, .def = "[10, 50, 100]"},
	{.key = "step_duration", .type = F_DURATION, .def = "10000", .min = 0, .max = 86400000},
	{.key = "max_step_duration", .type = F_DURATION, .def = "300000", .min = 1,
	 .max = (long long)MANIFEST_MAX_DURATION_MS},
	/* max_surge + max_unavailable >= 1 (a rollout must make progress): checked below */
	{.key = "max_surge", .type = F_INT, .def = "1", .min = 0, .max = 64},
	{.key = "max_unavailable", .type = F_INT, .def = "0", .min = 0, .max = 64},
	{.key = "keep_old", .type = F_DURATION, .def = "30000", .min = 0, .max = 86400000},
	{0},
};

static const struct field smoke_fields[] = {
	{.key = "path", .type = F_STRING, .required = 1, .check = http_path_ok,
	 .what = "an HTTP path starting with '/' (no spaces)"},
	{.key = "method", .type = F_ENUM, .def = "\"GET\"", .choices = smoke_methods},
	{.key = "status", .type = F_INT, .def = "200", .min = 100, .max = 599,
	 .what = "an HTTP status 100..599"},
	{.key = "body_contains", .type = F_STRING, .nullable = 1, .def = "null",
	 .what = "a non-empty string"},
	{.key = "timeout", .type = F_DURATION, .def = "1000", .min = 10, .max = 60000},
	{0},
};

static const struct field svc_policy_fields[] = {
	{.key = "concurrency", .type = F_ENUM, .def = "\"queue\"", .choices = concurrencies},
	{0},
};

static const struct field metric_fields[] = {
	{.key = "name", .type = F_STRING, .required = 1, .check = metric_name_ok,
	 .what = "a metric name of letters, digits, '_', '-' and '.' (1..63 characters)"},
	{.key = "query", .type = F_STRING, .required = 1, .check = command_ok,
	 .what = "a PromQL query (a non-empty string without control characters)"},
	{.key = "direction", .type = F_ENUM, .def = "\"either\"", .choices = directions},
	{.key = "critical", .type = F_BOOL, .def = "false"},
	{.key = "weight", .type = F_NUMBER, .def = "1.0", .dmin = 0, .dmax = 1000},
	{.key = "allowed_increase", .type = F_NUMBER, .def = "1.0", .dmin = 1, .dmax = 1000},
	{.key = "allowed_decrease", .type = F_NUMBER, .def = "1.0", .dmin = 0, .dmax = 1},
	{.key = "critical_increase", .type = F_NUMBER, .def = "1.0", .dmin = 1, .dmax = 1000},
	{.key = "critical_decrease", .type = F_NUMBER, .def = "1.0", .dmin = 0, .dmax = 1},
	{0},
};

static const struct field analysis_fields[] = {
	{.key = "min_requests", .type = F_INT, .def = "50", .min = 1, .max = 1000000},
	{.key = "max_error_rate", .type = F_NUMBER, .def = "0.05", .dmin = 0, .dmax = 1},
	{.key = "max_error_rate_increase", .type = F_NUMBER, .def = "0.02", .dmin = 0, .dmax = 1},
	{.key = "max_p99_latency", .type = F_DURATION, .def = "1000", .min = 1, .max = 3600000},
	{.key = "interval", .type = F_DURATION, .def = "1000", .min = 10, .max = 3600000},
	{.key = "method", .type = F_ENUM, .def = "\"sequential\"", .choices = methods},
	{.key = "alpha", .type = F_NUMBER, .def = "0.05", .dmin = 0.0001, .dmax = 0.5},
	{.key = "tolerance", .type = F_NUMBER, .def = "0.2", .dmin = 0, .dmax = 1},
	/* canary steps compare with a fresh baseline of the stable release (pipeline_baseline) */
	{.key = "baseline", .type = F_BOOL, .def = "false"},
	/* custom metrics from Prometheus, judged Kayenta-style (src/server/prometheus.h) */
	{.key = "metrics", .type = F_METRICS, .def = "[]", .max = 16, .sub = metric_fields},
	{.key = "prometheus", .type = F_STRING, .def = "\"http://127.0.0.1:9090\"", .check = http_url_ok,
	 .what = "an http:// or https:// URL of a Prometheus server"},
	{.key = "pass_score", .type = F_NUMBER, .def = "95.0", .dmin = 0, .dmax = 100},
	{.key = "marginal_score", .type = F_NUMBER, .def = "75.0", .dmin = 0, .dmax = 100},
	{0},
};

static const struct field svc_fields[] = {
	{.key = "kind", .type = F_ENUM, .required = 1, .choices = kind_svc},
	{.key = "name", .type = F_NAME, .required = 1, .what = NAME_WHAT},
	{.key = "listen_port", .type = F_INT, .required = 1, .min = 1, .max = 65535,
	 .what = "an integer port 1..65535"},
	{.key = "run", .type = F_OBJECT, .sub = run_fields},
	{.key = "depends_on", .type = F_NAMES, .def = "[]"},
	{.key = "health", .type = F_OBJECT, .sub = health_fields},
	{.key = "instances", .type = F_INT, .def = "1", .min = 1, .max = 64},
	{.key = "drain_timeout", .type = F_DURATION, .def = "10000", .min = 0, .max = 3600000},
	{.key = "strategy", .type = F_OBJECT, .sub = strategy_fields},
	{.key = "analysis", .type = F_OBJECT, .sub = analysis_fields},
	{.key = "bake", .type = F_DURATION, .def = "0", .min = 0,
	 .max = (long long)MANIFEST_MAX_DURATION_MS},
	{.key = "policy", .type = F_OBJECT, .sub = svc_policy_fields},
	{.key = "smoke", .type = F_SMOKE, .def = "[]"},
	{0},
};

/* ---- the walker ---- */

/* The key of a field once normalized: durations carry "_ms". */
static const char *out_key(const struct field *f, char *buf, size_t n)
{
	if (f->type != F_DURATION)
		return f->key;
	if (snprintf(buf, n, "%s_ms", f->key) < 0)
		buf[0] = '\0';
	return buf;
}

/* The key of a field in the input: YAML source, or normalized JSON. */
static const char *field_key(const struct vctx *c, const struct field *f, char *buf, size_t n)
{
	return c->d ? f->key : out_key(f, buf, n);
}

static int check_value(const struct vctx *c, struct at a, const char *path, const struct field *f,
		       const json_t *v, json_t **out);

static int check_object(const struct vctx *c, struct at a, const char *path,
			const struct field *fields, const json_t *obj, json_t **out)
{
	char got[64];
	if (!json_is_object(obj))
		return fail(c, at_pos(c, a), path, "expected a mapping, got %s", GOT(obj));
	json_t *seen = json_object();
	if (!seen)
		return fail(c, at_pos(c, a), path, "out of memory");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v) {
		const struct field *f = NULL;
		char kb[64], fk[PATH_MAX_LEN];
		for (const struct field *g = fields; g->key && !f; g++)
			if (!strcmp(field_key(c, g, kb, sizeof(kb)), k))
				f = g;
		join_key(fk, path, k);
		if (!f) {
			json_decref(seen);
			struct doc_pos p = c->d ? doc_key_pos(c->d, obj, k) : (struct doc_pos){0, 0};
			const char *names[32];
			size_t nn = 0;
			for (const struct field *g = fields; g->key && nn < 32; g++)
				names[nn++] = g->key;
			/* Hints are for people typing YAML; a stored manifest has no typos. */
			const char *hint = c->d ? closest(k, names, nn) : NULL;
			if (hint)
				return fail(c, p, fk, "unknown key (did you mean \"%s\"?)", hint);
			char list[ERR_MSG_MAX / 2];
			size_t o = 0;
			list[0] = '\0';
			for (const struct field *g = fields; g->key && o < sizeof(list); g++)
				o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", o ? ", " : "",
						      g->key);
			return fail(c, p, fk, "unknown key, expected one of: %s", list);
		}
		json_t *nv = NULL;
		if (check_value(c, at_key(obj, k), fk, f, v, &nv)) {
			json_decref(seen);
			return -1;
		}
		json_object_set_new(seen, out_key(f, kb, sizeof(kb)), nv);
	}
	/* Emit in table order, filling defaults. */
	json_t *res = json_object();
	int rc = 0;
	for (const struct field *f = fields; f->key && !rc; f++) {
		char kb[64], ob[64], fk[PATH_MAX_LEN];
		const char *key = field_key(c, f, kb, sizeof(kb)), *okey = out_key(f, ob, sizeof(ob));
		json_t *have = json_object_get(seen, okey);
		if (have) {
			json_object_set(res, okey, have);
			continue;
		}
		struct doc_pos p = c->d ? doc_node_pos(c->d, obj) : (struct doc_pos){0, 0};
		if (p.line == 0)
			p = at_pos(c, a);
		if (f->required) {
			if (f->what)
				rc = fail(c, p, path, "missing required key \"%s\" (expected %s)", key,
					  f->what);
			else
				rc = fail(c, p, path, "missing required key \"%s\"", key);
		} else if (!c->d && f->type != F_OBJECT) {
			rc = fail(c, p, path, "missing key \"%s\" (a normalized manifest has every key)",
				  key);
		} else if (f->type == F_OBJECT) {
			json_t *empty = json_object(), *sub = NULL;
			join_key(fk, path, key);
			if (!c->d)
				rc = fail(c, p, path, "missing key \"%s\" (a normalized manifest has every "
						      "key)", key);
			else if (!(rc = check_object(c, a, fk, f->sub, empty, &sub)))
				json_object_set_new(res, key, sub);
			json_decref(empty);
		} else if (f->def) {
			json_t *dv = json_loads(f->def, JSON_DECODE_ANY, NULL);
			if (!dv)
				rc = fail(c, p, path, "internal error: bad default for %s", key);
			else
				json_object_set_new(res, okey, dv);
		}
	}
	json_decref(seen);
	if (rc) {
		json_decref(res);
		return -1;
	}
	*out = res;
	return 0;
}

static int check_duration(const struct vctx *c, struct at a, const char *path,
			  const struct field *f, const json_t *v, json_t **out)
{
	char got[64], b1[48], b2[48];
	uint64_t ms = 0;
	int ok = 0;
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		ms = (uint64_t)json_integer_value(v);
		ok = 1;
	} else if (json_is_string(v) && c->d) {
		ok = manifest_duration_ms(json_string_value(v), &ms) == 0;
	}
	if (!ok && c->d)
		return fail(c, at_pos(c, a), path,
			    "expected a duration like 250ms, 2s or 1m30s (or an integer of "
			    "milliseconds), got %s",
			    GOT(v));
	if (!ok)
		return fail(c, at_pos(c, a), path, "expected an integer of milliseconds, got %s",
			    GOT(v));
	if (ms < (uint64_t)f->min)
		return fail(c, at_pos(c, a), path, "expected a duration of at least %s, got %s",
			    fmt_duration((uint64_t)f->min, b1, sizeof(b1)),
			    fmt_duration(ms, b2, sizeof(b2)));
	if (ms > (uint64_t)f->max)
		return fail(c, at_pos(c, a), path, "expected a duration of at most %s, got %s",
			    fmt_duration((uint64_t)f->max, b1, sizeof(b1)),
			    fmt_duration(ms, b2, sizeof(b2)));
	*out = json_integer((json_int_t)ms);
	return 0;
}

static int check_enum(const struct vctx *c, struct at a, const char *path, const struct field *f,
		      const json_t *v, json_t **out)
{
	char got[64], list[256];
	size_t n = 0, o = 0;
	list[0] = '\0';
	for (; f->choices[n]; n++)
		o += (size_t)snprintf(list + o, o < sizeof(list) ? sizeof(list) - o : 0, "%s%s",
				      n ? ", " : "", f->choices[n]);
	if (json_is_string(v))
		for (size_t i = 0; i < n; i++)
			if (!strcmp(json_string_value(v), f->choices[i])) {
				*out = json_string(f->choices[i]);
				return 0;
			}
	const char *hint = json_is_string(v) ? closest(json_string_value(v), f->choices, n) : NULL;
	if (hint)
		return fail(c, at_pos(c, a), path, "expected one of %s, got %s (did you mean \"%s\"?)",
			    list, GOT(v), hint);
	return fail(c, at_pos(c, a), path, "expected one of %s, got %s", list, GOT(v));
}

static int check_string_list(const struct vctx *c, const char *path, const json_t *v,
			     size_t max, int names, json_t **out)
{
	char got[64], ep[PATH_MAX_LEN];
	if (!json_is_array(v))
		return fail(c, (struct doc_pos){0, 0}, path, "expected a list, got %s", GOT(v));
	if (json_array_size(v) > max)
		return fail(c, (struct doc_pos){0, 0}, path, "at most %zu entries, got %zu", max,
			    json_array_size(v));
	json_t *res = json_array();
	size_t i;
	json_t *el;
	json_array_foreach(v, i, el) {
		struct doc_pos p = at_pos(c, at_index(v, i));
		join_index(ep, path, i);
		json_t *s = names ? (json_is_string(el) ? json_incref(el) : NULL)
				  : (c->d ? scalar_to_string(el) : (json_is_string(el) ? json_incref(el) : NULL));
		if (!s) {
			json_decref(res);
			return fail(c, p, ep, "expected %s, got %s", names ? NAME_WHAT : "a string",
				    GOT(el));
		}
		const char *str = json_string_value(s);
		if (names && !manifest_name_ok(str)) {
			json_decref(s);
			json_decref(res);
			return fail(c, p, ep, "expected %s, got %s", NAME_WHAT, GOT(el));
		}
		if (json_string_length(s) > MANIFEST_MAX_STRING || strlen(str) != json_string_length(s)) {
			json_decref(s);
			json_decref(res);
			return fail(c, p, ep, "expected a string of at most %d bytes without NUL",
				    MANIFEST_MAX_STRING);
		}
		for (size_t j = 0; names && j < i; j++)
			if (!strcmp(json_string_value(json_array_get(res, j)), str)) {
				json_decref(s);
				json_decref(res);
				return fail(c, p, ep, "\"%s\" is listed twice", str);
			}
		json_array_append_new(res, s);
	}
	*out = res;
	return 0;
}

static int check_env(const struct vctx *c, struct at a, const char *path, const json_t *v,
		     json_t **out)
{
	char got[64], ep[PATH_MAX_LEN];
	if (!json_is_object(v))
		return fail(c, at_pos(c, a), path, "expected a mapping of NAME: value, got %s",
			    GOT(v));
	if (json_object_size(v) > MANIFEST_MAX_ENV)
		return fail(c, at_pos(c, a), path, "at most %d variables, got %zu", MANIFEST_MAX_ENV,
			    json_object_size(v));
	json_t *res = json_object();
	const char *k;
	json_t *el;
	json_object_foreach((json_t *)v, k, el) {
		join_key(ep, path, k);
		if (!env_name_ok(k)) {
			json_decref(res);
			return fail(c, c->d ? doc_key_pos(c->d, v, k) : (struct doc_pos){0, 0}, ep,
				    "expected an environment variable name (letters, digits and '_', "
				    "not starting with a digit)");
		}
		json_t *s = c->d ? scalar_to_string(el) : (json_is_string(el) ? json_incref(el) : NULL);
		if (!s || json_string_length(s) > MANIFEST_MAX_STRING ||
		    strlen(json_string_value(s)) != json_string_length(s)) {
			json_decref(s);
			json_decref(res);
			return fail(c, at_pos(c, at_key(v, k)), ep,
				    "expected a string, number or boolean (at most %d bytes), got %s",
				    MANIFEST_MAX_STRING, GOT(el));
		}
		json_object_set_new(res, k, s);
	}
	*out = res;
	return 0;
}

static int check_steps(const struct vctx *c, struct at a, const char *path, const json_t *v,
		       json_t **out)
{
	char got[64], ep[PATH_MAX_LEN];
	if (!json_is_array(v) || json_array_size(v) == 0)
		return fail(c, at_pos(c, a), path,
			    "expected a list of traffic percentages ending at 100, got %s", GOT(v));
	size_t n = json_array_size(v);
	json_int_t prev = 0;
	for (size_t i = 0; i < n; i++) {
		const json_t *el = json_array_get(v, i);
		struct doc_pos p = at_pos(c, at_index(v, i));
		join_index(ep, path, i);
		if (!json_is_integer(el) || json_integer_value(el) < 1 ||
		    json_integer_value(el) > 100)
			return fail(c, p, ep, "expected an integer percentage 1..100, got %s", GOT(el));
		json_int_t x = json_integer_value(el);
		if (x <= prev)
			return fail(c, p, ep, "steps must be strictly increasing, got %lld after %lld",
				    (long long)x, (long long)prev);
		prev = x;
	}
	if (prev != 100)
		return fail(c, at_pos(c, at_index(v, n - 1)), path,
			    "the last step must be 100 (all traffic), got %lld", (long long)prev);
	*out = json_deep_copy(v);
	return 0;
}

/* analysis.metrics: mappings of metric_fields, names distinct (they name the evidence). */
static int check_metrics(const struct vctx *c, struct at a, const char *path, const struct field *f,
			 const json_t *v, json_t **out)
{
	char got[64], ep[PATH_MAX_LEN], fp[PATH_MAX_LEN];
	if (!json_is_array(v))
		return fail(c, at_pos(c, a), path, "expected a list of metrics, got %s", GOT(v));
	if (json_array_size(v) > (size_t)f->max)
		return fail(c, at_pos(c, a), path, "at most %lld metrics, got %zu", f->max,
			    json_array_size(v));
	json_t *res = json_array();
	size_t i;
	json_t *el;
	json_array_foreach(v, i, el) {
		join_index(ep, path, i);
		json_t *m = NULL;
		if (check_object(c, at_index(v, i), ep, f->sub, el, &m)) {
			json_decref(res);
			return -1;
		}
		const char *name = json_string_value(json_object_get(m, "name"));
		for (size_t j = 0; j < i; j++)
			if (!strcmp(json_string_value(json_object_get(json_array_get(res, j), "name")), name)) {
				json_decref(m);
				json_decref(res);
				join_key(fp, ep, "name");
				return fail(c, at_pos(c, at_key(el, "name")), fp,
					    "metric \"%s\" is listed twice (first as %s[%zu])", name, path, j);
			}
		json_array_append_new(res, m);
	}
	*out = res;
	return 0;
}

static int check_regions(const struct vctx *c, struct at a, const char *path, const json_t *v,
			 json_t **out)
{
	char got[64], ep[PATH_MAX_LEN], fp[PATH_MAX_LEN];
	if (!json_is_array(v) || json_array_size(v) == 0)
		return fail(c, at_pos(c, a), path, "expected a list of regions (at least one), got %s",
			    GOT(v));
	if (json_array_size(v) > MANIFEST_MAX_REGIONS)
		return fail(c, at_pos(c, a), path, "at most %d regions, got %zu",
			    MANIFEST_MAX_REGIONS, json_array_size(v));
	json_t *res = json_array();
	size_t i;
	json_t *el;
	json_array_foreach(v, i, el) {
		join_index(ep, path, i);
		json_t *r = NULL;
		if (check_object(c, at_index(v, i), ep, region_fields, el, &r)) {
			json_decref(res);
			return -1;
		}
		if (!json_object_get(r, "port_offset")) {
			/* Default: regions 100 ports apart, so that one machine can host them all. */
			json_object_set_new(r, "port_offset", json_integer((json_int_t)(100 * i)));
		}
		const char *name = json_string_value(json_object_get(r, "name"));
		json_int_t off = json_integer_value(json_object_get(r, "port_offset"));
		for (size_t j = 0; j < i; j++) {
			const json_t *o = json_array_get(res, j);
			const char *oname = json_string_value(json_object_get(o, "name"));
			if (!strcmp(oname, name)) {
				json_decref(r);
				json_decref(res);
				join_key(fp, ep, "name");
				return fail(c, at_pos(c, at_key(el, "name")), fp,
					    "region \"%s\" is listed twice (first as regions[%zu])", name,
					    j);
			}
			if (json_integer_value(json_object_get(o, "port_offset")) == off) {
				json_decref(r);
				json_decref(res);
				join_key(fp, ep, "port_offset");
				struct at pa = json_object_get(el, "port_offset")
						       ? at_key(el, "port_offset")
						       : at_index(v, i);
				return fail(c, at_pos(c, pa), fp,
					    "port offset %lld is already used by region \"%s\" (each "
					    "region needs its own listeners)",
					    (long long)off, oname);
			}
		}
		json_array_append_new(res, r);
	}
	*out = res;
	return 0;
}

/* Shape only: a non-empty list of non-empty lists of names, no name twice. That the names are
 * exactly the environment's regions is for check_env_rules, which sees both keys. */
static int check_waves(const struct vctx *c, struct at a, const char *path, const json_t *v,
		       json_t **out)
{
	char got[64], ep[PATH_MAX_LEN], np[PATH_MAX_LEN];
	if (!json_is_array(v) || json_array_size(v) == 0)
		return fail(c, at_pos(c, a), path,
			    "expected a list of waves, each a list of region names, got %s", GOT(v));
	if (json_array_size(v) > MANIFEST_MAX_REGIONS)
		return fail(c, at_pos(c, a), path, "at most %d waves, got %zu", MANIFEST_MAX_REGIONS,
			    json_array_size(v));
	json_t *res = json_array();
	size_t i;
	json_t *w;
	json_array_foreach(v, i, w) {
		join_index(ep, path, i);
		json_t *names = NULL;
		if (!json_is_array(w) || json_array_size(w) == 0 ||
		    json_array_size(w) > MANIFEST_MAX_REGIONS) {
			json_decref(res);
			return fail(c, at_pos(c, at_index(v, i)), ep,
				    "expected a list of 1..%d region names, got %s",
				    MANIFEST_MAX_REGIONS, GOT(w));
		}
		if (check_string_list(c, ep, w, MANIFEST_MAX_REGIONS, 1, &names)) {
			json_decref(res);
			return -1;
		}
		for (size_t j = 0; j < json_array_size(names); j++) {
			const char *name = json_string_value(json_array_get(names, j));
			for (size_t k = 0; k < i; k++) {
				const json_t *ow = json_array_get(res, k);
				for (size_t l = 0; l < json_array_size(ow); l++)
					if (!strcmp(json_string_value(json_array_get(ow, l)), name)) {
						json_decref(names);
						json_decref(res);
						join_index(np, ep, j);
						return fail(c, at_pos(c, at_index(w, j)), np,
							    "region \"%s\" is already in %s[%zu] (each "
							    "region belongs to exactly one wave)",
							    name, path, k);
					}
			}
		}
		json_array_append_new(res, names);
	}
	*out = res;
	return 0;
}

static int check_smoke(const struct vctx *c, struct at a, const char *path, const json_t *v,
		       json_t **out)
{
	char got[64], ep[PATH_MAX_LEN];
	if (!json_is_array(v))
		return fail(c, at_pos(c, a), path,
			    "expected a list of checks (mappings with at least a path), got %s",
			    GOT(v));
	if (json_array_size(v) > SMOKE_MAX)
		return fail(c, at_pos(c, a), path, "at most %d checks, got %zu", SMOKE_MAX,
			    json_array_size(v));
	json_t *res = json_array();
	size_t i;
	json_t *el;
	json_array_foreach(v, i, el) {
		join_index(ep, path, i);
		json_t *r = NULL;
		if (check_object(c, at_index(v, i), ep, smoke_fields, el, &r)) {
			json_decref(res);
			return -1;
		}
		json_array_append_new(res, r);
	}
	*out = res;
	return 0;
}

static int check_value(const struct vctx *c, struct at a, const char *path, const struct field *f,
		       const json_t *v, json_t **out)
{
	char got[64];
	struct doc_pos p = at_pos(c, a);
	/* Only the stored form spells a nullable default out: in YAML an explicit null is an error
	 * as everywhere else (leave the key out instead). */
	if (f->nullable && !c->d && json_is_null(v)) {
		*out = json_null();
		return 0;
	}
	switch (f->type) {
	case F_NAME:
		if (!json_is_string(v) || !manifest_name_ok(json_string_value(v)) ||
		    strlen(json_string_value(v)) != json_string_length(v))
			return fail(c, p, path, "expected %s, got %s", NAME_WHAT, GOT(v));
		*out = json_incref((json_t *)v);
		return 0;
	case F_STRING:
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) > MANIFEST_MAX_STRING ||
		    strlen(json_string_value(v)) != json_string_length(v) ||
		    (f->check && !f->check(json_string_value(v))))
			return fail(c, p, path, "expected %s, got %s", f->what ? f->what : "a string",
				    GOT(v));
		*out = json_incref((json_t *)v);
		return 0;
	case F_ENUM:
		return check_enum(c, a, path, f, v, out);
	case F_BOOL:
		if (!json_is_boolean(v))
			return fail(c, p, path, "expected true or false, got %s", GOT(v));
		*out = json_incref((json_t *)v);
		return 0;
	case F_INT:
		if (!json_is_integer(v) || json_integer_value(v) < f->min ||
		    json_integer_value(v) > f->max) {
			if (f->what)
				return fail(c, p, path, "expected %s, got %s", f->what, GOT(v));
			return fail(c, p, path, "expected an integer %lld..%lld, got %s", f->min, f->max,
				    GOT(v));
		}
		*out = json_incref((json_t *)v);
		return 0;
	case F_NUMBER: {
		double x = json_is_number(v) ? json_number_value(v) : NAN;
		if (!isfinite(x) || x < f->dmin || x > f->dmax)
			return fail(c, p, path, "expected a number %g..%g, got %s", f->dmin, f->dmax,
				    GOT(v));
		*out = json_real(x);
		return 0;
	}
	case F_DURATION:
		return check_duration(c, a, path, f, v, out);
	case F_OBJECT:
		return check_object(c, a, path, f->sub, v, out);
	case F_ARGS:
	case F_NAMES:
		if (!json_is_array(v))
			return fail(c, p, path, "expected a list, got %s", GOT(v));
		if (json_array_size(v) > (f->type == F_ARGS ? MANIFEST_MAX_ARGS : MANIFEST_MAX_DEPENDS))
			return fail(c, p, path, "expected at most %d entries, got %zu",
				    f->type == F_ARGS ? MANIFEST_MAX_ARGS : MANIFEST_MAX_DEPENDS,
				    json_array_size(v));
		return check_string_list(c, path, v, SIZE_MAX, f->type == F_NAMES, out);
	case F_ENV:
		return check_env(c, a, path, v, out);
	case F_STEPS:
		return check_steps(c, a, path, v, out);
	case F_REGIONS:
		return check_regions(c, a, path, v, out);
	case F_WAVES:
		return check_waves(c, a, path, v, out);
	case F_SMOKE:
		return check_smoke(c, a, path, v, out);
	case F_METRICS:
		return check_metrics(c, a, path, f, v, out);
	}
	return fail(c, p, path, "internal error: unknown field type");
}

/* ---- rules that involve more than one key ---- */

/* Position of src.section.key when written, else of the section, else of the manifest. */
static struct doc_pos pos_of(const struct vctx *c, const json_t *src, const char *section,
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

static int check_service_rules(const struct vctx *c, const json_t *src, const json_t *m)
{
	char b1[48], b2[48];
	const json_t *st = json_object_get(m, "strategy"), *an = json_object_get(m, "analysis");
	const char *type = json_string_value(json_object_get(st, "type"));
	const char *method = json_string_value(json_object_get(an, "method"));
	const char *sfx = c->d ? "" : "_ms";
	char path[PATH_MAX_LEN];
	if (c->d) {
		/* Keys that would silently do nothing are mistakes: say so. */
		const json_t *sst = json_object_get(src, "strategy");
		if (strcmp(type, "canary") && json_object_get(sst, "steps"))
			return fail(c, doc_key_pos(c->d, sst, "steps"), "strategy.steps",
				    "only used with type: canary (type is %s)", type);
		static const struct {
			const char *key, *type;
		} only[] = {{"max_surge", "rolling"},
			    {"max_unavailable", "rolling"},
			    {"keep_old", "blue-green"}};
		for (size_t i = 0; i < sizeof(only) / sizeof(only[0]); i++)
			if (strcmp(type, only[i].type) && json_object_get(sst, only[i].key)) {
				snprintf(path, sizeof(path), "strategy.%s", only[i].key);
				return fail(c, doc_key_pos(c->d, sst, only[i].key), path,
					    "only used with type: %s (type is %s)", only[i].type, type);
			}
		const json_t *san = json_object_get(src, "analysis");
		if (strcmp(type, "canary") && json_is_true(json_object_get(san, "baseline")))
			return fail(c, doc_key_pos(c->d, san, "baseline"), "analysis.baseline",
				    "only used with strategy type: canary (type is %s)", type);
		static const char *const seq_only[] = {"alpha", "tolerance"};
		for (size_t i = 0; i < 2; i++)
			if (strcmp(method, "sequential") && json_object_get(san, seq_only[i])) {
				snprintf(path, sizeof(path), "analysis.%s", seq_only[i]);
				return fail(c, doc_key_pos(c->d, san, seq_only[i]), path,
					    "only used with method: sequential (method is %s)", method);
			}
	}
	if (!strcmp(type, "rolling") &&
	    json_integer_value(json_object_get(st, "max_surge")) +
			    json_integer_value(json_object_get(st, "max_unavailable")) < 1) {
		const json_t *sst = json_object_get(src, "strategy");
		const char *at = json_object_get(sst, "max_surge") ? "max_surge" : "max_unavailable";
		snprintf(path, sizeof(path), "strategy.%s", at);
		return fail(c, pos_of(c, src, "strategy", at), path,
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
		return fail(c, pos_of(c, src, "strategy", at), path,
			    "max_step_duration (%s) must be at least step_duration (%s)",
			    fmt_duration((uint64_t)msd, b1, sizeof(b1)),
			    fmt_duration((uint64_t)sd, b2, sizeof(b2)));
	}
	const json_t *smoke = json_object_get(m, "smoke");
	for (size_t i = 0; i < json_array_size(smoke); i++) {
		const json_t *ck = json_array_get(smoke, i);
		/* A HEAD answer has no body: the matcher could never pass. */
		if (!strcmp(json_string_value(json_object_get(ck, "method")), "HEAD") &&
		    json_is_string(json_object_get(ck, "body_contains"))) {
			snprintf(path, sizeof(path), "smoke[%zu].body_contains", i);
			const json_t *sck = c->d ? json_array_get(json_object_get(src, "smoke"), i) : NULL;
			return fail(c, c->d ? doc_value_pos(c->d, sck, "body_contains")
					    : (struct doc_pos){0, 0},
				    path, "a HEAD response has no body (use method: GET)");
		}
	}
	const char *name = json_string_value(json_object_get(m, "name"));
	const json_t *deps = json_object_get(m, "depends_on");
	for (size_t i = 0; i < json_array_size(deps); i++)
		if (!strcmp(json_string_value(json_array_get(deps, i)), name)) {
			snprintf(path, sizeof(path), "depends_on[%zu]", i);
			return fail(c,
				    c->d ? doc_index_pos(c->d, json_object_get(src, "depends_on"), i)
					 : (struct doc_pos){0, 0},
				    path, "a service cannot depend on itself");
		}
	return 0;
}

/* Waves against regions, the default waves, and promotion.from; m is the normalized result
 * (its placeholder waves replaced here), src the input. */
static int check_env_rules(const struct vctx *c, const json_t *src, json_t *m)
{
	char path[PATH_MAX_LEN], list[256];
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
				return fail(c, c->d ? doc_index_pos(c->d, json_array_get(swaves, i), j)
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
				return fail(c, c->d ? doc_value_pos(c->d, src, "waves")
						    : (struct doc_pos){0, 0},
					    "waves", "region \"%s\" is in no wave (every region must be in "
					    "exactly one)", rn);
		}
	}
	const char *from = json_string_value(json_object_get(json_object_get(m, "promotion"), "from"));
	if (from && !strcmp(from, name))
		return fail(c, pos_of(c, src, "promotion", "from"), "promotion.from",
			    "an environment cannot be promoted from itself (name the environment "
			    "before this one)");
	return 0;
}

/* Validates one manifest (source or normalized, depending on c->d); *out is normalized. */
static int check_manifest(const struct vctx *c, const json_t *m, struct at a, json_t **out)
{
	char got[64];
	if (!json_is_object(m))
		return fail(c, at_pos(c, a), "",
			    "expected a mapping with kind: Environment or Service, got %s", GOT(m));
	const json_t *kind = json_object_get(m, "kind");
	if (!kind) {
		struct doc_pos p = c->d ? doc_node_pos(c->d, m) : (struct doc_pos){0, 0};
		return fail(c, p, "", "missing required key \"kind\" (expected Environment or Service)");
	}
	json_t *k = NULL;
	static const struct field kind_field = {.key = "kind", .type = F_ENUM, .choices = kinds};
	if (check_enum(c, at_key(m, "kind"), "kind", &kind_field, kind, &k))
		return -1;
	int svc = !strcmp(json_string_value(k), "Service");
	json_decref(k);
	json_t *res = NULL;
	if (check_object(c, a, "", svc ? svc_fields : env_fields, m, &res))
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
	struct vctx c = {.d = d, .e = e};
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
				       "document %zu: expected a mapping with kind: Environment or "
				       "Service, got %s",
				       i + 1, GOT(root));
			break;
		}
		if ((rc = check_manifest(&c, root, (struct at){NULL, NULL, 0, root}, &m)))
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

int manifest_check_normalized(const json_t *m, struct err *e)
{
	struct vctx c = {.d = NULL, .e = e};
	const char *kind = json_string_value(json_object_get(m, "kind"));
	const char *name = json_string_value(json_object_get(m, "name"));
	snprintf(c.label, sizeof(c.label), "%s '%.63s'", kind ? kind : "manifest",
		 name ? name : "?");
	json_t *out = NULL;
	if (check_manifest(&c, m, (struct at){NULL, NULL, 0, m}, &out))
		return -1;
	json_decref(out);
	return 0;
}
