#include "util/shape.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOT(v) shape_describe((v), got, sizeof(got))

struct shape_at shape_at_key(const json_t *parent, const char *key)
{
	return (struct shape_at){parent, key, 0, NULL};
}

struct shape_at shape_at_index(const json_t *parent, size_t i)
{
	return (struct shape_at){parent, NULL, i, NULL};
}

struct shape_at shape_at_node(const json_t *node)
{
	return (struct shape_at){NULL, NULL, 0, node};
}

struct doc_pos shape_pos(const struct shape_ctx *c, struct shape_at a)
{
	if (!c->d)
		return (struct doc_pos){0, 0};
	if (!a.parent)
		return a.node ? doc_node_pos(c->d, a.node) : (struct doc_pos){0, 0};
	if (a.key)
		return doc_value_pos(c->d, a.parent, a.key);
	return doc_index_pos(c->d, a.parent, a.index);
}

struct doc_pos shape_key_pos(const struct shape_ctx *c, const json_t *obj, const char *key)
{
	return c->d ? doc_key_pos(c->d, obj, key) : (struct doc_pos){0, 0};
}

int shape_fail(const struct shape_ctx *c, struct doc_pos pos, const char *path, const char *fmt, ...)
{
	char msg[ERR_MSG_MAX], where[SHAPE_PATH_MAX + 16];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	const char *p = path && *path ? path : c->top;
	if (!p)
		where[0] = '\0';
	else if (c->fields)
		snprintf(where, sizeof(where), "field '%s': ", p);
	else
		snprintf(where, sizeof(where), "%s: ", p);
	if (c->d)
		return doc_error(c->d, pos, c->e, "%s%s", where, msg);
	return err_set(c->e, "%s: %s%s", c->label ? c->label : "input", where, msg);
}

void shape_join_key(char *out, const char *path, const char *key)
{
	/* Paths are for messages: a cut one is still useful, so truncation is fine. */
	int n = snprintf(out, SHAPE_PATH_MAX, "%s%s%s", path, *path ? "." : "", key);
	if (n < 0)
		out[0] = '\0';
}

void shape_join_index(char *out, const char *path, size_t i)
{
	if (snprintf(out, SHAPE_PATH_MAX, "%s[%zu]", path, i) < 0)
		out[0] = '\0';
}

const char *shape_describe(const json_t *v, char *buf, size_t n)
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
	if (n < 8)
		return "a string";
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

const char *shape_closest(const char *s, const char *const *cands, size_t n)
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

int shape_duration_ms(const char *s, uint64_t *ms)
{
	static const uint64_t mul[] = {86400000, 3600000, 60000, 1000, 1}; /* d, h, m, s, ms */
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
			u = 4;
		else if (p[0] == 'm' && p[1] == 's')
			u = 4, p += 2;
		else if (*p == 'd' || *p == 'h' || *p == 'm' || *p == 's')
			u = (*p == 'd') ? 0 : (*p == 'h') ? 1 : (*p == 'm') ? 2 : 3, p++;
		else
			return -1;
		/* Units strictly in order d, h, m, s, ms: "30s1m" is more likely a mistake than intent. */
		if (u <= last)
			return -1;
		last = u;
		if (v > UINT64_MAX / mul[u])
			return -1;
		v *= mul[u];
		if (total > UINT64_MAX - v)
			return -1;
		total += v;
	}
	*ms = total;
	return 0;
}

const char *shape_duration_fmt(uint64_t ms, char *buf, size_t n)
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

/* Scalars become strings where a field coerces them, so that `PORT: 8080` works. */
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

/* ---- the walker ---- */

/* The key of a field once normalized: durations carry "_ms". */
static const char *out_key(const struct shape_field *f, char *buf, size_t n)
{
	if (f->type != SHAPE_DURATION)
		return f->key;
	if (snprintf(buf, n, "%s_ms", f->key) < 0)
		buf[0] = '\0';
	return buf;
}

/* The key of a field in the input: as written, or normalized when stored. */
static const char *in_key(const struct shape_ctx *c, const struct shape_field *f, char *buf, size_t n)
{
	return c->mode == SHAPE_STORED ? out_key(f, buf, n) : f->key;
}

/* What a field expects, for messages, or NULL when its type says it all. */
static const char *field_what(const struct shape_field *f)
{
	return f->what ? f->what : f->type == SHAPE_NAME ? name_rule(f->name) : NULL;
}

static const char *word(const struct shape_ctx *c)
{
	return c->fields ? "field" : "key";
}

static int unknown_key(const struct shape_ctx *c, const json_t *obj, const char *k, const char *path,
		       const struct shape_field *fields)
{
	struct doc_pos p = shape_key_pos(c, obj, k);
	const char *names[64];
	size_t nn = 0;
	for (const struct shape_field *g = fields; g->key && nn < 64; g++)
		names[nn++] = g->key;
	/* Hints are for people typing; a stored value has no typos. */
	const char *hint = c->mode != SHAPE_STORED ? shape_closest(k, names, nn) : NULL;
	if (hint)
		return shape_fail(c, p, path, "unknown %s (did you mean \"%s\"?)", word(c), hint);
	char list[ERR_MSG_MAX / 2];
	size_t o = 0;
	list[0] = '\0';
	for (size_t i = 0; i < nn && o < sizeof(list); i++)
		o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", o ? ", " : "", names[i]);
	if (!nn)
		return shape_fail(c, p, path, "unknown %s (none is expected here)", word(c));
	return shape_fail(c, p, path, "unknown %s, expected one of: %s", word(c), list);
}

int shape_check_object(const struct shape_ctx *c, struct shape_at a, const char *path,
		       const struct shape_field *fields, const json_t *obj, json_t **out)
{
	char got[64];
	if (!json_is_object(obj))
		return shape_fail(c, shape_pos(c, a), path, "expected %s, got %s",
				  c->fields ? "a JSON object" : "a mapping", GOT(obj));
	json_t *seen = json_object();
	if (!seen)
		return shape_fail(c, shape_pos(c, a), path, "out of memory");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)obj, k, v) {
		const struct shape_field *f = NULL;
		char kb[80], fk[SHAPE_PATH_MAX];
		for (const struct shape_field *g = fields; g->key && !f; g++)
			if (!strcmp(in_key(c, g, kb, sizeof(kb)), k))
				f = g;
		shape_join_key(fk, path, k);
		if (!f) {
			json_decref(seen);
			return unknown_key(c, obj, k, fk, fields);
		}
		json_t *nv = NULL;
		if (shape_check(c, shape_at_key(obj, k), fk, f, v, &nv)) {
			json_decref(seen);
			return -1;
		}
		json_object_set_new(seen, out_key(f, kb, sizeof(kb)), nv);
	}
	/* Emit in table order, filling defaults. */
	json_t *res = json_object();
	int rc = res ? 0 : shape_fail(c, shape_pos(c, a), path, "out of memory");
	for (const struct shape_field *f = fields; f->key && !rc; f++) {
		char kb[80], ob[80], fk[SHAPE_PATH_MAX];
		const char *key = in_key(c, f, kb, sizeof(kb)), *okey = out_key(f, ob, sizeof(ob));
		json_t *have = json_object_get(seen, okey);
		if (have) {
			json_object_set(res, okey, have);
			continue;
		}
		struct doc_pos p = c->d ? doc_node_pos(c->d, obj) : (struct doc_pos){0, 0};
		if (p.line == 0)
			p = shape_pos(c, a);
		if (f->required) {
			if (field_what(f))
				rc = shape_fail(c, p, path, "missing required %s \"%s\" (expected %s)",
						word(c), key, field_what(f));
			else
				rc = shape_fail(c, p, path, "missing required %s \"%s\"", word(c), key);
		} else if (c->mode == SHAPE_STORED) {
			rc = shape_fail(c, p, path, "missing %s \"%s\" (a normalized %s has every %s)",
					word(c), key, c->stored ? c->stored : "value", word(c));
		} else if (f->type == SHAPE_OBJECT && !f->def) {
			/* an absent section gets its defaults; one with a default (null) takes it */
			json_t *empty = json_object(), *sub = NULL;
			shape_join_key(fk, path, key);
			if (!(rc = shape_check_object(c, a, fk, f->sub, empty, &sub)))
				json_object_set_new(res, okey, sub);
			json_decref(empty);
		} else if (f->def) {
			json_t *dv = json_loads(f->def, JSON_DECODE_ANY, NULL);
			if (!dv)
				rc = shape_fail(c, p, path, "internal error: bad default for %s", key);
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

static int check_string(const struct shape_ctx *c, struct doc_pos p, const char *path,
			const struct shape_field *f, const json_t *v, json_t **out)
{
	char got[64];
	json_t *s = (f->coerce && c->mode == SHAPE_SOURCE) ? scalar_to_string(v)
		    : json_is_string(v)			   ? json_incref((json_t *)v)
							   : NULL;
	if (!s)
		return shape_fail(c, p, path, "expected %s, got %s", f->what ? f->what : "a string",
				  GOT(v));
	size_t max = f->max > 0 ? (size_t)f->max : SHAPE_MAX_STRING, len = json_string_length(s);
	const char *str = json_string_value(s);
	if ((len == 0 && !f->empty_ok) || len > max || strlen(str) != len || (f->check && !f->check(str))) {
		json_decref(s);
		if (f->what)
			return shape_fail(c, p, path, "expected %s, got %s", f->what, GOT(v));
		if (len == 0)
			return shape_fail(c, p, path, "expected a non-empty string");
		return shape_fail(c, p, path, "expected a string of at most %zu bytes without NUL", max);
	}
	*out = s;
	return 0;
}

static int check_duration(const struct shape_ctx *c, struct doc_pos p, const char *path,
			  const struct shape_field *f, const json_t *v, json_t **out)
{
	char got[64], b1[48], b2[48];
	uint64_t ms = 0;
	int ok = 0;
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		ms = (uint64_t)json_integer_value(v);
		ok = 1;
	} else if (json_is_string(v) && c->mode != SHAPE_STORED &&
		   strlen(json_string_value(v)) == json_string_length(v)) {
		ok = shape_duration_ms(json_string_value(v), &ms) == 0;
	}
	if (!ok && c->mode != SHAPE_STORED)
		return shape_fail(c, p, path,
				  "expected a duration like 250ms, 2s or 1m30s (or an integer of "
				  "milliseconds), got %s",
				  GOT(v));
	if (!ok)
		return shape_fail(c, p, path, "expected an integer of milliseconds, got %s", GOT(v));
	if (ms < (uint64_t)f->min)
		return shape_fail(c, p, path, "expected a duration of at least %s, got %s",
				  shape_duration_fmt((uint64_t)f->min, b1, sizeof(b1)),
				  shape_duration_fmt(ms, b2, sizeof(b2)));
	if (ms > (uint64_t)f->max)
		return shape_fail(c, p, path, "expected a duration of at most %s, got %s",
				  shape_duration_fmt((uint64_t)f->max, b1, sizeof(b1)),
				  shape_duration_fmt(ms, b2, sizeof(b2)));
	*out = json_integer((json_int_t)ms);
	return 0;
}

static int check_enum(const struct shape_ctx *c, struct doc_pos p, const char *path,
		      const struct shape_field *f, const json_t *v, json_t **out)
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
	const char *hint = json_is_string(v) ? shape_closest(json_string_value(v), f->choices, n) : NULL;
	if (hint)
		return shape_fail(c, p, path, "expected one of %s, got %s (did you mean \"%s\"?)", list,
				  GOT(v), hint);
	return shape_fail(c, p, path, "expected one of %s, got %s", list, GOT(v));
}

static int check_list(const struct shape_ctx *c, struct doc_pos p, const char *path,
		      const struct shape_field *f, const json_t *v, json_t **out)
{
	char got[64], ep[SHAPE_PATH_MAX], fp[SHAPE_PATH_MAX];
	size_t max = f->max > 0 ? (size_t)f->max : SHAPE_MAX_ITEMS;
	if (!json_is_array(v) || json_array_size(v) < (size_t)f->min)
		return shape_fail(c, p, path, "expected %s, got %s", f->what ? f->what : "a list", GOT(v));
	if (json_array_size(v) > max)
		return shape_fail(c, p, path, "at most %zu %s, got %zu", max, f->noun ? f->noun : "entries",
				  json_array_size(v));
	json_t *res = json_array();
	if (!res)
		return shape_fail(c, p, path, "out of memory");
	size_t i;
	json_t *el;
	json_array_foreach(v, i, el) {
		shape_join_index(ep, path, i);
		json_t *r = NULL;
		if (shape_check(c, shape_at_index(v, i), ep, f->elem, el, &r)) {
			json_decref(res);
			return -1;
		}
		/* Distinct values: strings themselves, or one key of objects. */
		const char *s = f->unique_key ? json_string_value(json_object_get(r, f->unique_key))
			      : f->unique     ? json_string_value(r)
					      : NULL;
		for (size_t j = 0; s && j < i; j++) {
			const json_t *o = json_array_get(res, j);
			const char *os = f->unique_key ? json_string_value(json_object_get(o, f->unique_key))
						       : json_string_value(o);
			if (!os || strcmp(os, s))
				continue;
			int rc;
			if (f->unique_key) {
				shape_join_key(fp, ep, f->unique_key);
				rc = shape_fail(c, shape_pos(c, shape_at_key(el, f->unique_key)), fp,
						"%s \"%s\" is listed twice (first as %s[%zu])",
						f->item ? f->item : "value", s, path, j);
			} else {
				rc = shape_fail(c, shape_pos(c, shape_at_index(v, i)), ep,
						"\"%s\" is listed twice", s);
			}
			json_decref(r);
			json_decref(res);
			return rc;
		}
		json_array_append_new(res, r);
	}
	*out = res;
	return 0;
}

static int check_map(const struct shape_ctx *c, struct doc_pos p, const char *path,
		     const struct shape_field *f, const json_t *v, json_t **out)
{
	char got[64], ep[SHAPE_PATH_MAX];
	size_t max = f->max > 0 ? (size_t)f->max : SHAPE_MAX_ITEMS;
	if (!json_is_object(v))
		return shape_fail(c, p, path, "expected %s, got %s", f->what ? f->what : "a mapping",
				  GOT(v));
	if (json_object_size(v) > max)
		return shape_fail(c, p, path, "at most %zu %s, got %zu", max, f->noun ? f->noun : "entries",
				  json_object_size(v));
	json_t *res = json_object();
	if (!res)
		return shape_fail(c, p, path, "out of memory");
	const char *k;
	json_t *el;
	json_object_foreach((json_t *)v, k, el) {
		shape_join_key(ep, path, k);
		if (!name_ok(f->name, k)) {
			json_decref(res);
			return shape_fail(c, shape_key_pos(c, v, k), ep, "expected %s", name_rule(f->name));
		}
		json_t *r = NULL;
		if (shape_check(c, shape_at_key(v, k), ep, f->elem, el, &r)) {
			json_decref(res);
			return -1;
		}
		json_object_set_new(res, k, r);
	}
	*out = res;
	return 0;
}

int shape_check(const struct shape_ctx *c, struct shape_at a, const char *path, const struct shape_field *f,
		const json_t *v, json_t **out)
{
	char got[64];
	struct doc_pos p = shape_pos(c, a);
	/* Only machine-written forms spell a nullable default out: in a source an explicit null
	 * is an error as everywhere else (leave the key out instead). */
	if (f->nullable && c->mode != SHAPE_SOURCE && json_is_null(v)) {
		*out = json_null();
		return 0;
	}
	switch (f->type) {
	case SHAPE_STRING:
		return check_string(c, p, path, f, v, out);
	case SHAPE_NAME:
		if (!json_is_string(v) || !name_ok_n(f->name, json_string_value(v), json_string_length(v)))
			return shape_fail(c, p, path, "expected %s, got %s",
					  f->what ? f->what : name_rule(f->name), GOT(v));
		*out = json_incref((json_t *)v);
		return 0;
	case SHAPE_ENUM:
		return check_enum(c, p, path, f, v, out);
	case SHAPE_BOOL:
		if (!json_is_boolean(v))
			return shape_fail(c, p, path, "expected true or false, got %s", GOT(v));
		*out = json_incref((json_t *)v);
		return 0;
	case SHAPE_INT:
		if (!json_is_integer(v) || json_integer_value(v) < f->min || json_integer_value(v) > f->max) {
			if (f->what)
				return shape_fail(c, p, path, "expected %s, got %s", f->what, GOT(v));
			return shape_fail(c, p, path, "expected an integer %lld..%lld, got %s", f->min,
					  f->max, GOT(v));
		}
		*out = json_incref((json_t *)v);
		return 0;
	case SHAPE_NUMBER: {
		double x = json_is_number(v) ? json_number_value(v) : NAN;
		if (!isfinite(x) || x < f->dmin || x > f->dmax)
			return shape_fail(c, p, path, "expected a number %g..%g, got %s", f->dmin, f->dmax,
					  GOT(v));
		*out = json_real(x);
		return 0;
	}
	case SHAPE_DURATION:
		return check_duration(c, p, path, f, v, out);
	case SHAPE_OBJECT:
		return shape_check_object(c, a, path, f->sub, v, out);
	case SHAPE_LIST:
		return check_list(c, p, path, f, v, out);
	case SHAPE_MAP:
		return check_map(c, p, path, f, v, out);
	case SHAPE_CUSTOM:
		return f->custom(c, a, path, f, v, out);
	}
	return shape_fail(c, p, path, "internal error: unknown field type");
}

int shape_check_body(const json_t *body, const struct shape_field *fields, json_t **out, struct err *e)
{
	struct shape_ctx c = {.mode = SHAPE_STRICT, .label = "request body", .fields = 1, .e = e};
	return shape_check_object(&c, shape_at_node(body), "", fields, body, out);
}
