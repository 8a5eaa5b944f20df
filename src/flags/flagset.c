/*
 * flagset: flagd's flag definitions, checked, compiled and evaluated (see flagset.h).
 */
#include "flags/flagset.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flags/murmur3.h"
#include "util/doc.h"
#include "util/shape.h"

struct flag {
	const char *key;          /* points into doc */
	int enabled;
	const json_t *variants;   /* an object, in doc */
	const char *default_variant; /* NULL: none */
	logic *targeting;         /* NULL: none */
	json_t *metadata;         /* owned: the set's overlaid with the flag's */
	enum flag_type type;
	int warned;
};

struct flagset {
	json_t *doc; /* the normalized document, owned; everything points into it */
	struct flag *flags;
	size_t n;
	uint32_t *slots; /* open addressing: index + 1 of a flag, 0 empty */
	size_t nslots;
	char **warnings;
	size_t nwarnings;
};

/* ---- structure ---- */

static int key_ok(const char *k, size_t len)
{
	if (!len || len >= FLAGSET_KEY_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)k[i];
		if (ch < 0x20 || ch == 0x7f || ch == '/' || ch == '\\' || ch == '%' || ch == '?' || ch == '#')
			return 0;
	}
	return 1;
}

static const char *type_name(enum flag_type t)
{
	static const char *const n[] = {"a boolean", "a string", "a number", "an object"};
	return n[t];
}

static int type_of(const json_t *v, enum flag_type *t)
{
	if (json_is_boolean(v))
		*t = FLAG_BOOL;
	else if (json_is_string(v))
		*t = FLAG_STRING;
	else if (json_is_number(v))
		*t = FLAG_NUMBER;
	else if (json_is_object(v) || json_is_array(v))
		*t = FLAG_OBJECT;
	else
		return -1;
	return 0;
}

static int any_object(const struct shape_ctx *c, struct shape_at a, const char *path,
		      const struct shape_field *f, const json_t *v, json_t **out)
{
	char got[64];
	if (!json_is_object(v))
		return shape_fail(c, shape_pos(c, a), path, "expected %s, got %s", f->what,
				  shape_describe(v, got, sizeof(got)));
	*out = json_deep_copy(v);
	return *out ? 0 : shape_fail(c, shape_pos(c, a), path, "out of memory");
}

/* metadata: an object of strings, numbers and booleans. */
static int metadata_check(const struct shape_ctx *c, struct shape_at a, const char *path,
			  const struct shape_field *f, const json_t *v, json_t **out)
{
	char got[64], sub[SHAPE_PATH_MAX];
	if (!json_is_object(v))
		return shape_fail(c, shape_pos(c, a), path, "expected an object of strings, numbers and "
							    "booleans, got %s", shape_describe(v, got, sizeof(got)));
	const char *k;
	json_t *m;
	json_object_foreach((json_t *)v, k, m)
		if (!json_is_string(m) && !json_is_number(m) && !json_is_boolean(m)) {
			shape_join_key(sub, path, k);
			return shape_fail(c, shape_pos(c, shape_at_key(v, k)), sub,
					  "expected a string, a number or a boolean, got %s",
					  shape_describe(m, got, sizeof(got)));
		}
	*out = json_deep_copy(v);
	return 0;
}

/* variants: at least one, all of one type. */
static int variants_check(const struct shape_ctx *c, struct shape_at a, const char *path,
			  const struct shape_field *f, const json_t *v, json_t **out)
{
	char got[64], sub[SHAPE_PATH_MAX];
	if (!json_is_object(v) || !json_object_size(v))
		return shape_fail(c, shape_pos(c, a), path, "expected an object of at least one variant "
							    "(NAME: value), got %s", shape_describe(v, got, sizeof(got)));
	const char *k, *first = NULL;
	json_t *m;
	enum flag_type t0 = FLAG_BOOL, t;
	json_object_foreach((json_t *)v, k, m) {
		shape_join_key(sub, path, k);
		if (!key_ok(k, strlen(k)))
			return shape_fail(c, shape_key_pos(c, v, k), sub, "a variant name has 1 to %d bytes and "
									  "no control characters", FLAGSET_KEY_MAX - 1);
		if (type_of(m, &t))
			return shape_fail(c, shape_pos(c, shape_at_key(v, k)), sub,
					  "expected a boolean, string, number or object, got %s",
					  shape_describe(m, got, sizeof(got)));
		if (!first) {
			first = k;
			t0 = t;
		} else if (t != t0) {
			return shape_fail(c, shape_pos(c, shape_at_key(v, k)), sub,
					  "expected %s like variant '%s' (a flag's variants have one type), got %s",
					  type_name(t0), first, shape_describe(m, got, sizeof(got)));
		}
	}
	*out = json_deep_copy(v);
	return 0;
}

static int default_check(const struct shape_ctx *c, struct shape_at a, const char *path,
			 const struct shape_field *f, const json_t *v, json_t **out)
{
	char got[64];
	if (!json_is_null(v) && !json_is_string(v))
		return shape_fail(c, shape_pos(c, a), path, "expected a variant name or null, got %s",
				  shape_describe(v, got, sizeof(got)));
	*out = json_incref((json_t *)v);
	return 0;
}

static const char *const states[] = {"ENABLED", "DISABLED", NULL};

static const struct shape_field flag_fields[] = {
	{.key = "state", .type = SHAPE_ENUM, .choices = states, .required = 1},
	{.key = "variants", .type = SHAPE_CUSTOM, .custom = variants_check, .required = 1},
	{.key = "defaultVariant", .type = SHAPE_CUSTOM, .custom = default_check, .def = "null"},
	{.key = "targeting", .type = SHAPE_CUSTOM, .custom = any_object, .def = "{}",
	 .what = "a JsonLogic rule (an object)"},
	{.key = "metadata", .type = SHAPE_CUSTOM, .custom = metadata_check, .def = "{}"},
	{0},
};

static int flags_check(const struct shape_ctx *c, struct shape_at a, const char *path,
		       const struct shape_field *f, const json_t *v, json_t **out)
{
	char got[64], sub[SHAPE_PATH_MAX];
	if (!json_is_object(v))
		return shape_fail(c, shape_pos(c, a), path, "expected an object of flags (KEY: {state, "
							    "variants, ...}), got %s", shape_describe(v, got, sizeof(got)));
	if (json_object_size(v) > FLAGSET_MAX_FLAGS)
		return shape_fail(c, shape_pos(c, a), path, "at most %d flags", FLAGSET_MAX_FLAGS);
	json_t *res = json_object();
	const char *k;
	json_t *m;
	json_object_foreach((json_t *)v, k, m) {
		shape_join_key(sub, path, k);
		if (!key_ok(k, strlen(k))) {
			json_decref(res);
			return shape_fail(c, shape_key_pos(c, v, k), sub,
					  "a flag key has 1 to %d bytes and no control characters, '/', '\\', "
					  "'%%', '?' or '#'", FLAGSET_KEY_MAX - 1);
		}
		json_t *nf = NULL;
		if (shape_check_object(c, shape_at_key(v, k), sub, flag_fields, m, &nf)) {
			json_decref(res);
			return -1;
		}
		json_object_set_new(res, k, nf);
	}
	*out = res;
	return 0;
}

static const struct shape_field set_fields[] = {
	{.key = "$schema", .type = SHAPE_STRING, .max = 1024},
	{.key = "flags", .type = SHAPE_CUSTOM, .custom = flags_check, .required = 1},
	{.key = "$evaluators", .type = SHAPE_CUSTOM, .custom = any_object, .def = "{}",
	 .what = "an object of named JsonLogic rules"},
	{.key = "metadata", .type = SHAPE_CUSTOM, .custom = metadata_check, .def = "{}"},
	{0},
};

static const char *const flagset_kind[] = {"FlagSet", NULL};

static const struct shape_field manifest_fields[] = {
	{.key = "kind", .type = SHAPE_ENUM, .choices = flagset_kind, .required = 1},
	{.key = "name", .type = SHAPE_NAME, .name = NAME_OBJECT, .required = 1,
	 .what = "the environment's name"},
	{.key = "$schema", .type = SHAPE_STRING, .max = 1024},
	{.key = "flags", .type = SHAPE_CUSTOM, .custom = flags_check, .required = 1},
	{.key = "$evaluators", .type = SHAPE_CUSTOM, .custom = any_object, .def = "{}",
	 .what = "an object of named JsonLogic rules"},
	{.key = "metadata", .type = SHAPE_CUSTOM, .custom = metadata_check, .def = "{}"},
	{0},
};

int flagset_check_manifest(const struct shape_ctx *c, const json_t *m, struct shape_at a, json_t **out)
{
	return shape_check_object(c, a, "", manifest_fields, m, out);
}

json_t *flagset_manifest_doc(const json_t *manifest)
{
	json_t *d = json_deep_copy(manifest);
	if (d) {
		json_object_del(d, "kind");
		json_object_del(d, "name");
	}
	return d;
}

/* ---- building ---- */

static uint32_t slot_hash(const char *k)
{
	return murmur3_32(k, strlen(k), 0x5bd1e995u);
}

static void add_warning(flagset *fs, const char *key, const char *what)
{
	char **nw = realloc(fs->warnings, (fs->nwarnings + 1) * sizeof(*nw));
	if (!nw)
		return;
	fs->warnings = nw;
	size_t len = strlen(key) + strlen(what) + 32;
	char *w = malloc(len);
	if (!w)
		return;
	snprintf(w, len, "flags.%s: %s", key, what);
	fs->warnings[fs->nwarnings++] = w;
}

static int build(flagset *fs, struct err *e)
{
	const json_t *flags = json_object_get(fs->doc, "flags");
	const json_t *evals = json_object_get(fs->doc, "$evaluators");
	const json_t *setmeta = json_object_get(fs->doc, "metadata");
	fs->n = json_object_size(flags);
	fs->flags = calloc(fs->n ? fs->n : 1, sizeof(*fs->flags));
	fs->nslots = 16;
	while (fs->nslots < fs->n * 2)
		fs->nslots *= 2;
	fs->slots = calloc(fs->nslots, sizeof(*fs->slots));
	if (!fs->flags || !fs->slots)
		return err_set(e, "out of memory");
	size_t i = 0;
	const char *k;
	json_t *m;
	json_object_foreach((json_t *)flags, k, m) {
		struct flag *f = &fs->flags[i];
		f->key = k;
		f->enabled = !strcmp(json_string_value(json_object_get(m, "state")), "ENABLED");
		f->variants = json_object_get(m, "variants");
		f->default_variant = json_string_value(json_object_get(m, "defaultVariant"));
		const char *first = json_object_iter_key(json_object_iter((json_t *)f->variants));
		(void)type_of(json_object_get(f->variants, first), &f->type);
		const json_t *t = json_object_get(m, "targeting");
		if (json_object_size(t)) {
			if (!(f->targeting = logic_compile(t, evals)))
				return err_set(e, "out of memory");
			const char *w = logic_warning(f->targeting);
			if (w) {
				char what[400];
				snprintf(what, sizeof(what), "targeting: %s", w);
				add_warning(fs, k, what);
			}
		}
		if (f->default_variant && !json_object_get(f->variants, f->default_variant)) {
			char what[300];
			snprintf(what, sizeof(what), "defaultVariant '%.128s' is not one of its variants",
				 f->default_variant);
			add_warning(fs, k, what);
		}
		f->metadata = json_deep_copy(setmeta);
		if (!f->metadata || json_object_update(f->metadata, json_object_get(m, "metadata")))
			return err_set(e, "out of memory");
		uint32_t h = slot_hash(k) & (uint32_t)(fs->nslots - 1);
		while (fs->slots[h])
			h = (h + 1) & (uint32_t)(fs->nslots - 1);
		fs->slots[h] = (uint32_t)(i + 1);
		i++;
	}
	return 0;
}

static int from_checked(json_t *norm, flagset **out, struct err *e)
{
	flagset *fs = calloc(1, sizeof(*fs));
	if (!fs) {
		json_decref(norm);
		return err_set(e, "out of memory");
	}
	fs->doc = norm;
	if (build(fs, e)) {
		flagset_free(fs);
		return -1;
	}
	*out = fs;
	return 0;
}

int flagset_parse(const char *name, const char *text, size_t len, flagset **out, struct err *e)
{
	doc *d = NULL;
	if (doc_parse(name, text, len, &d, e))
		return -1;
	if (doc_count(d) != 1) {
		int rc = doc_error(d, (struct doc_pos){1, 1}, e, "expected one document, got %zu", doc_count(d));
		doc_free(d);
		return rc;
	}
	struct shape_ctx c = {.d = d, .mode = SHAPE_SOURCE, .label = name, .e = e};
	json_t *norm = NULL;
	int rc = shape_check_object(&c, shape_at_node(doc_root(d, 0)), "", set_fields, doc_root(d, 0), &norm);
	doc_free(d);
	if (rc)
		return -1;
	return from_checked(norm, out, e);
}

int flagset_from_json(const json_t *j, const char *label, flagset **out, struct err *e)
{
	struct shape_ctx c = {.mode = SHAPE_SOURCE, .label = label, .e = e};
	json_t *norm = NULL;
	if (shape_check_object(&c, shape_at_node(j), "", set_fields, j, &norm))
		return -1;
	return from_checked(norm, out, e);
}

void flagset_free(flagset *fs)
{
	if (!fs)
		return;
	for (size_t i = 0; i < fs->n; i++) {
		logic_free(fs->flags[i].targeting);
		json_decref(fs->flags[i].metadata);
	}
	for (size_t i = 0; i < fs->nwarnings; i++)
		free(fs->warnings[i]);
	free(fs->warnings);
	free(fs->flags);
	free(fs->slots);
	json_decref(fs->doc);
	free(fs);
}

const json_t *flagset_json(const flagset *fs)
{
	return fs->doc;
}

size_t flagset_warning_count(const flagset *fs)
{
	return fs->nwarnings;
}

const char *flagset_warning(const flagset *fs, size_t i)
{
	return i < fs->nwarnings ? fs->warnings[i] : NULL;
}

size_t flagset_count(const flagset *fs)
{
	return fs->n;
}

const char *flagset_key(const flagset *fs, size_t i)
{
	return i < fs->n ? fs->flags[i].key : NULL;
}

static const struct flag *find(const flagset *fs, const char *key)
{
	uint32_t h = slot_hash(key) & (uint32_t)(fs->nslots - 1);
	while (fs->slots[h]) {
		const struct flag *f = &fs->flags[fs->slots[h] - 1];
		if (!strcmp(f->key, key))
			return f;
		h = (h + 1) & (uint32_t)(fs->nslots - 1);
	}
	return NULL;
}

int flagset_describe(const flagset *fs, const char *key, json_t **out)
{
	*out = NULL;
	if (!find(fs, key))
		return -1;
	*out = json_incref(json_object_get(json_object_get(fs->doc, "flags"), key));
	return 0;
}

/* ---- evaluation ---- */

__attribute__((format(printf, 3, 4))) static void fail(struct flag_result *r, const char *code, const char *fmt,
						     ...)
{
	r->reason = "ERROR";
	r->error_code = code;
	r->value = NULL;
	r->variant = NULL;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
}

/* The default variant's value, reason DEFAULT (or STATIC); no value when the flag has none. */
static void take_default(const struct flag *f, const char *reason, struct flag_result *r)
{
	r->reason = reason;
	if (!f->default_variant)
		return;
	r->value = json_object_get(f->variants, f->default_variant);
	if (!r->value) {
		fail(r, "GENERAL", "defaultVariant '%.128s' is not one of the flag's variants", f->default_variant);
		return;
	}
	r->variant = f->default_variant;
}

void flagset_eval(const flagset *fs, const char *key, const json_t *context, int64_t now,
		  struct logic_arena *a, struct flag_result *r)
{
	memset(r, 0, sizeof(*r));
	r->key = key;
	const struct flag *f = find(fs, key);
	if (!f) {
		fail(r, "FLAG_NOT_FOUND", "flag '%.128s' is not defined", key);
		return;
	}
	r->type = f->type;
	r->metadata = f->metadata;
	if (!f->enabled) {
		r->reason = "DISABLED";
		return;
	}
	if (!f->targeting) {
		take_default(f, "STATIC", r);
		return;
	}
	int no_key = 0;
	struct logic_env env = {.context = context, .flag_key = f->key, .timestamp = now, .no_targeting_key = &no_key};
	struct logic_value v;
	struct err e = {""};
	if (logic_eval(f->targeting, &env, a, &v, &e)) {
		fail(r, "GENERAL", "targeting: %s", e.msg);
		return;
	}
	if (no_key && v.t == LOGIC_NULL) {
		fail(r, "TARGETING_KEY_MISSING", "%s", "the flag splits by targetingKey: give one in the context");
		return;
	}
	const char *name = NULL;
	size_t len = 0;
	if (v.t == LOGIC_STR) {
		name = v.s.p;
		len = v.s.len;
	} else if (v.t == LOGIC_BOOL) {
		/* flagd reads a boolean answer as the variant of that name */
		name = v.b ? "true" : "false";
		len = strlen(name);
	} else if (v.t != LOGIC_NULL) {
		fail(r, "GENERAL", "targeting answered %s, not a variant name",
		     v.t == LOGIC_NUM ? "a number" : "a list or an object");
		return;
	}
	if (!name || !len) {
		take_default(f, "DEFAULT", r);
		return;
	}
	/* the variant's own key: the one in the set, which outlives the arena */
	const char *k;
	json_t *val;
	json_object_foreach((json_t *)f->variants, k, val)
		if (strlen(k) == len && !memcmp(k, name, len)) {
			r->reason = "TARGETING_MATCH";
			r->variant = k;
			r->value = val;
			return;
		}
	char nb[FLAGSET_KEY_MAX + 1];
	snprintf(nb, sizeof(nb), "%.*s", (int)(len < FLAGSET_KEY_MAX ? len : FLAGSET_KEY_MAX), name);
	fail(r, "GENERAL", "targeting chose variant '%s', which the flag does not have", nb);
}
