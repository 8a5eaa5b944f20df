#include "contract/schema.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

/* Bounds on what a hostile or broken document can make us do. */
#define MAX_APPLY_DEPTH 32 /* $ref chains and nested allOf */
#define MAX_DEPTH 64       /* nesting of compared schemas */
#define MAX_ALTS 64        /* anyOf/oneOf alternatives compared pairwise */
#define PATH_MAX_LEN 1024
/* Work budgets: nesting is bounded above, but breadth multiplies (allOf of $refs to allOfs,
 * anyOf inside anyOf compared pairwise), so a hostile document could still ask for
 * exponential work. Past a budget the answer is a warning, never a hang. */
#define APPLY_BUDGET 20000   /* schema nodes merged into one normalised schema */
#define COMPARE_BUDGET 20000 /* schema pairs compared in one schema_compare */
#define GUARANTEE_BUDGET 50000
#define MARK_BUDGET 256 /* schemas visited to tell whether a property is readOnly/writeOnly */

#define T_NUM (SCHEMA_T_INTEGER | SCHEMA_T_NUMBER)

static const char *const type_names[] = {"null", "boolean", "integer", "number", "string", "array", "object"};

unsigned schema_type_bit(const char *name)
{
	for (unsigned i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
		if (!strcmp(name, type_names[i]))
			return 1u << i;
	return 0;
}

void schema_types_str(unsigned types, char *out, size_t size)
{
	size_t len = 0;
	out[0] = 0;
	if ((types & SCHEMA_T_ANY) == SCHEMA_T_ANY) {
		snprintf(out, size, "any");
		return;
	}
	if (!types) {
		snprintf(out, size, "nothing");
		return;
	}
	for (unsigned i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++) {
		unsigned bit = 1u << i;
		/* number includes integer: print "number" alone */
		if (!(types & bit) || (bit == SCHEMA_T_INTEGER && (types & SCHEMA_T_NUMBER)))
			continue;
		int n = snprintf(out + len, size - len, "%s%s", len ? "|" : "", type_names[i]);
		if (n < 0 || (size_t)n >= size - len)
			return;
		len += (size_t)n;
	}
}

const json_t *schema_resolve_ref(const json_t *root, const char *ref)
{
	if (!root || ref[0] != '#')
		return NULL;
	const json_t *cur = root;
	const char *p = ref + 1;
	if (!*p)
		return cur;
	if (*p != '/')
		return NULL;
	char seg[256];
	while (*p == '/') {
		p++;
		size_t n = 0;
		while (*p && *p != '/') {
			char ch = *p++;
			if (ch == '~' && (*p == '0' || *p == '1'))
				ch = *p++ == '0' ? '~' : '/';
			if (n + 1 >= sizeof(seg))
				return NULL;
			seg[n++] = ch;
		}
		seg[n] = 0;
		if (json_is_object(cur)) {
			cur = json_object_get(cur, seg);
		} else if (json_is_array(cur)) {
			char *end;
			unsigned long i = strtoul(seg, &end, 10);
			cur = (*seg && !*end) ? json_array_get(cur, i) : NULL;
		} else {
			return NULL;
		}
		if (!cur)
			return NULL;
	}
	return cur;
}

/* Whether a schema is marked readOnly or writeOnly (`which`), itself or through its $ref and
 * allOf members (bounded: a hostile chain stops counting as marked, and is reported where it
 * is normalised). */
static int rw_marked_at(const json_t *root, const json_t *s, const char *which, int depth, int *work)
{
	if (!json_is_object(s) || depth > MAX_APPLY_DEPTH || ++*work > MARK_BUDGET)
		return 0;
	if (json_is_true(json_object_get(s, which)))
		return 1;
	json_t *ref = json_object_get(s, "$ref");
	if (json_is_string(ref) && rw_marked_at(root, schema_resolve_ref(root, json_string_value(ref)), which, depth + 1, work))
		return 1;
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(s, "allOf"), i, m)
		if (rw_marked_at(root, m, which, depth + 1, work))
			return 1;
	return 0;
}

static int rw_marked(const json_t *root, const json_t *s, const char *which)
{
	int work = 0;
	return rw_marked_at(root, s, which, 0, &work);
}

/* ---- normalisation ---------------------------------------------------------------------- */

/* A schema reduced to what comparisons need. `kw` holds merged keywords with the same names
 * as JSON Schema (properties, required, additionalProperties, items, enum, bounds...). */
struct norm {
	unsigned types;
	int never;       /* the `false` schema, or an allOf whose types do not meet */
	const char *ref; /* first $ref followed: identifies recursive schemas */
	json_t *kw;
	json_t *alts;    /* anyOf/oneOf alternatives (borrowed raw schemas), or NULL */
	char problem[200];
	int work;
};

static const char *const lower_bounds[] = {"minLength", "minItems", "minProperties", "minimum", "exclusiveMinimum"};
static const char *const upper_bounds[] = {"maxLength", "maxItems", "maxProperties", "maximum", "exclusiveMaximum"};

static json_t *all_of2(json_t *a, const json_t *b)
{
	return json_pack("{s:[OO]}", "allOf", a, b);
}

static int in_array_str(const json_t *arr, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), s))
			return 1;
	return 0;
}

static int in_array_value(const json_t *arr, const json_t *x)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v)
		if (json_equal(v, x))
			return 1;
	return 0;
}

static unsigned own_types(const json_t *s)
{
	const json_t *t = json_object_get(s, "type");
	unsigned bits = 0;
	if (json_is_string(t)) {
		bits = schema_type_bit(json_string_value(t));
	} else if (json_is_array(t)) {
		size_t i;
		json_t *v;
		json_array_foreach(t, i, v)
			if (json_is_string(v))
				bits |= schema_type_bit(json_string_value(v));
	} else {
		return SCHEMA_T_ANY;
	}
	if (!bits)
		return SCHEMA_T_ANY; /* unknown type names are rejected by validation */
	if (json_is_true(json_object_get(s, "nullable")))
		bits |= SCHEMA_T_NULL; /* OpenAPI 3.0 */
	if (bits & SCHEMA_T_NUMBER)
		bits |= SCHEMA_T_INTEGER; /* every integer is a number */
	return bits;
}

static void merge_sub(json_t *kw, const char *key, const json_t *v)
{
	json_t *old = json_object_get(kw, key);
	if (old)
		json_object_set_new(kw, key, all_of2(old, v));
	else
		json_object_set(kw, key, (json_t *)v);
}

static void merge_bound(json_t *kw, const char *key, double v, int upper)
{
	json_t *old = json_object_get(kw, key);
	if (old && (upper ? json_number_value(old) <= v : json_number_value(old) >= v))
		return;
	json_object_set_new(kw, key, json_real(v));
}

static void apply(const json_t *root, const json_t *s, struct norm *n, int depth);

static void apply_keywords(const json_t *s, struct norm *n)
{
	n->types &= own_types(s);

	/* enum and const intersect */
	json_t *en = json_object_get(s, "enum");
	json_t *cst = json_object_get(s, "const");
	json_t *vals = NULL;
	if (json_is_array(en))
		vals = json_incref(en);
	else if (cst)
		vals = json_pack("[O]", cst);
	if (vals) {
		json_t *old = json_object_get(n->kw, "enum");
		if (old) {
			json_t *both = json_array();
			size_t i;
			json_t *v;
			json_array_foreach(vals, i, v)
				if (in_array_value(old, v))
					json_array_append(both, v);
			json_object_set_new(n->kw, "enum", both);
		} else {
			json_object_set(n->kw, "enum", vals);
		}
		json_decref(vals);
	}

	json_t *props = json_object_get(s, "properties");
	if (json_is_object(props)) {
		json_t *np = json_object_get(n->kw, "properties");
		if (!np) {
			np = json_object();
			json_object_set_new(n->kw, "properties", np);
		}
		const char *k;
		json_t *v;
		json_object_foreach(props, k, v)
			merge_sub(np, k, v);
	}
	json_t *req = json_object_get(s, "required");
	if (json_is_array(req)) {
		json_t *nr = json_object_get(n->kw, "required");
		if (!nr) {
			nr = json_array();
			json_object_set_new(n->kw, "required", nr);
		}
		size_t i;
		json_t *v;
		json_array_foreach(req, i, v)
			if (json_is_string(v) && !in_array_str(nr, json_string_value(v)))
				json_array_append(nr, v);
	}
	json_t *ap = json_object_get(s, "additionalProperties");
	if (json_is_false(ap)) {
		json_object_set(n->kw, "additionalProperties", ap);
	} else if (json_is_object(ap)) {
		json_t *old = json_object_get(n->kw, "additionalProperties");
		if (!json_is_false(old))
			merge_sub(n->kw, "additionalProperties", ap);
	}
	json_t *items = json_object_get(s, "items");
	if (json_is_object(items) || json_is_boolean(items))
		merge_sub(n->kw, "items", items);

	/* OpenAPI 3.0 spells exclusive bounds as booleans next to minimum/maximum */
	json_t *emin = json_object_get(s, "exclusiveMinimum");
	json_t *emax = json_object_get(s, "exclusiveMaximum");
	for (size_t i = 0; i < sizeof(lower_bounds) / sizeof(lower_bounds[0]); i++) {
		const char *kl = lower_bounds[i], *ku = upper_bounds[i];
		json_t *lv = json_object_get(s, kl), *uv = json_object_get(s, ku);
		if (json_is_number(lv)) {
			if (!strcmp(kl, "minimum") && json_is_true(emin))
				kl = "exclusiveMinimum";
			merge_bound(n->kw, kl, json_number_value(lv), 0);
		}
		if (json_is_number(uv)) {
			if (!strcmp(ku, "maximum") && json_is_true(emax))
				ku = "exclusiveMaximum";
			merge_bound(n->kw, ku, json_number_value(uv), 1);
		}
	}
	static const char *const firsts[] = {"pattern", "format", "multipleOf"};
	for (size_t i = 0; i < sizeof(firsts) / sizeof(firsts[0]); i++) {
		json_t *v = json_object_get(s, firsts[i]);
		if (v && !json_object_get(n->kw, firsts[i]))
			json_object_set(n->kw, firsts[i], v);
	}
	if (json_is_true(json_object_get(s, "uniqueItems")))
		json_object_set_new(n->kw, "uniqueItems", json_true());
	static const char *const unions[] = {"anyOf", "oneOf"};
	for (size_t i = 0; i < 2; i++) {
		json_t *v = json_object_get(s, unions[i]);
		if (json_is_array(v) && json_array_size(v) && !n->alts)
			n->alts = json_incref(v);
	}
}

static void apply(const json_t *root, const json_t *s, struct norm *n, int depth)
{
	if (!s || json_is_true(s))
		return;
	if (json_is_false(s)) {
		n->never = 1;
		return;
	}
	if (!json_is_object(s))
		return;
	if (++n->work > APPLY_BUDGET) {
		if (!n->problem[0])
			snprintf(n->problem, sizeof(n->problem), "schema too large to normalise (more than %d merged nodes)",
				 APPLY_BUDGET);
		return;
	}
	if (depth > MAX_APPLY_DEPTH) {
		if (!n->problem[0])
			snprintf(n->problem, sizeof(n->problem),
				 "$ref/allOf chain deeper than %d (a reference loop?)", MAX_APPLY_DEPTH);
		return;
	}
	json_t *ref = json_object_get(s, "$ref");
	if (json_is_string(ref)) {
		const char *r = json_string_value(ref);
		if (!n->ref)
			n->ref = r;
		const json_t *t = schema_resolve_ref(root, r);
		if (!t) {
			if (!n->problem[0])
				snprintf(n->problem, sizeof(n->problem), "unresolved reference '%s'", r);
		} else {
			apply(root, t, n, depth + 1);
		}
	}
	json_t *all = json_object_get(s, "allOf");
	if (json_is_array(all)) {
		size_t i;
		json_t *m;
		json_array_foreach(all, i, m)
			apply(root, m, n, depth + 1);
	}
	apply_keywords(s, n);
}

static void norm_init(struct norm *n, const json_t *root, const json_t *s)
{
	memset(n, 0, sizeof(*n));
	n->types = SCHEMA_T_ANY;
	n->kw = json_object();
	apply(root, s, n, 0);
	/* OpenAPI 3.0 writes a nullable reference as {nullable: true, allOf: [{$ref}]}: no `type`
	 * of its own, so the intersection above cannot add null. Taking it as nullable reports
	 * more in responses, which is the safe side for the gate. */
	if (json_is_object(s) && json_is_true(json_object_get(s, "nullable")) && !json_object_get(s, "type") &&
	    n->types)
		n->types |= SCHEMA_T_NULL;
	/* an enum admits only its values: their types bound the schema's ({enum: [a, b]} is a
	 * string schema even without `type`) */
	json_t *en = json_object_get(n->kw, "enum");
	if (json_is_array(en)) {
		unsigned vt = 0;
		size_t i;
		json_t *v;
		json_array_foreach(en, i, v)
			vt |= json_is_null(v) ? SCHEMA_T_NULL
			      : json_is_boolean(v) ? SCHEMA_T_BOOLEAN
			      : json_is_integer(v) ? SCHEMA_T_INTEGER | SCHEMA_T_NUMBER
			      : json_is_real(v) ? SCHEMA_T_NUMBER
			      : json_is_string(v) ? SCHEMA_T_STRING
			      : json_is_array(v) ? SCHEMA_T_ARRAY
						 : SCHEMA_T_OBJECT;
		n->types &= vt;
	}
	if (!n->types)
		n->never = 1;
}

static void norm_release(struct norm *n)
{
	json_decref(n->kw);
	json_decref(n->alts);
}

/* ---- comparison ------------------------------------------------------------------------- */

struct cmp {
	const json_t *root_a, *root_b;
	enum schema_dir dir;
	const struct report_loc *loc;
	json_t *findings;
	int breaking;
	int depth;
	long *budget; /* shared with quiet sub-comparisons */
	const char *stack_a[MAX_DEPTH], *stack_b[MAX_DEPTH];
	char path[PATH_MAX_LEN];
	size_t plen;
};

#define RESP(c) ((c)->dir == SCHEMA_RESPONSE)
/* The old and the new side of a comparison: responses compare new <= old, requests old <= new. */
#define OLDV(c, a, b) (RESP(c) ? (b) : (a))
#define NEWV(c, a, b) (RESP(c) ? (a) : (b))

__attribute__((format(printf, 3, 4))) static void emit(struct cmp *c, const char *sev, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct report_loc l = {0};
	if (c->loc)
		l = *c->loc;
	l.path = c->plen ? c->path : "/";
	report_add(c->findings, sev, &l, "%s", msg);
	if (!strcmp(sev, REPORT_BREAKING))
		c->breaking++;
}

/* Appends "/seg" (JSON pointer escaped) to the path; returns the old length to restore. */
static size_t path_push(struct cmp *c, const char *seg)
{
	size_t old = c->plen;
	if (c->plen + 1 < sizeof(c->path))
		c->path[c->plen++] = '/';
	for (const char *p = seg; *p && c->plen + 2 < sizeof(c->path); p++) {
		if (*p == '~' || *p == '/') {
			c->path[c->plen++] = '~';
			c->path[c->plen++] = *p == '~' ? '0' : '1';
		} else {
			c->path[c->plen++] = *p;
		}
	}
	c->path[c->plen] = 0;
	return old;
}

static void path_pop(struct cmp *c, size_t old)
{
	c->plen = old;
	c->path[old] = 0;
}

static void compare(struct cmp *c, const json_t *a, const json_t *b);

/* Runs a comparison into a scratch list; returns its breaking count. */
static int compare_quiet(const struct cmp *c, const json_t *a, const json_t *b)
{
	struct cmp *q = malloc(sizeof(*q));
	if (!q)
		return 1;
	*q = *c;
	q->findings = json_array();
	q->breaking = 0;
	compare(q, a, b);
	int n = q->breaking;
	json_decref(q->findings);
	free(q);
	return n;
}

static void compare_union(struct cmp *c, const struct norm *na, const json_t *a, const struct norm *nb,
			  const json_t *b)
{
	size_t nalt_a = na->alts ? json_array_size(na->alts) : 1;
	size_t nalt_b = nb->alts ? json_array_size(nb->alts) : 1;
	if (nalt_a > MAX_ALTS || nalt_b > MAX_ALTS) {
		emit(c, REPORT_WARNING, "more than %d anyOf/oneOf alternatives: not compared", MAX_ALTS);
		return;
	}
	for (size_t i = 0; i < nalt_a; i++) {
		const json_t *ai = na->alts ? json_array_get(na->alts, i) : a;
		int fits = 0;
		for (size_t j = 0; j < nalt_b && !fits; j++) {
			const json_t *bj = nb->alts ? json_array_get(nb->alts, j) : b;
			fits = compare_quiet(c, ai, bj) == 0;
		}
		if (fits)
			continue;
		if (nalt_a == 1 && nalt_b == 1)
			/* one alternative on each side: show the detailed reasons */
			compare(c, ai, nb->alts ? json_array_get(nb->alts, 0) : b);
		else if (na->alts)
			emit(c, REPORT_BREAKING,
			     RESP(c) ? "response alternative %zu (anyOf/oneOf) matches none of the old schema's alternatives"
				     : "request alternative %zu (anyOf/oneOf) that was accepted matches none of the new alternatives",
			     i + 1);
		else
			emit(c, REPORT_BREAKING,
			     RESP(c) ? "the new response schema fits none of the old anyOf/oneOf alternatives"
				     : "requests valid before fit none of the new anyOf/oneOf alternatives");
	}
}

static int rw_skipped(const struct cmp *c, const json_t *root, const json_t *prop)
{
	/* readOnly properties never appear in requests, writeOnly ones never in responses */
	return rw_marked(root, prop, RESP(c) ? "writeOnly" : "readOnly");
}

/* A property of one side as the direction sees it: NULL when absent or when marked so that
 * it never crosses the wire this way. */
static const json_t *eff_prop(const struct cmp *c, const json_t *root, const json_t *props, const char *name)
{
	const json_t *s = json_object_get(props, name);
	return s && rw_skipped(c, root, s) ? NULL : s;
}

/* Whether `name` is required on one side: listed in `required` and not marked away. */
static int eff_required(const struct cmp *c, const json_t *root, const json_t *props, const json_t *req,
			const char *name)
{
	const json_t *s = json_object_get(props, name);
	return in_array_str(req, name) && !(s && rw_skipped(c, root, s));
}

static char *dump(const json_t *v)
{
	return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

static void compare_enum(struct cmp *c, const struct norm *na, const struct norm *nb)
{
	json_t *ea = json_object_get(na->kw, "enum"), *eb = json_object_get(nb->kw, "enum");
	size_t i;
	json_t *v;
	if (eb && !ea) {
		emit(c, REPORT_BREAKING,
		     RESP(c) ? "enum restriction removed: any value of the type may now be returned"
			     : "enum restriction added: values outside it that were accepted are refused");
		return;
	}
	if (!eb) {
		if (ea)
			emit(c, REPORT_INFO, RESP(c) ? "enum restriction added" : "enum restriction removed");
		return;
	}
	json_array_foreach(ea, i, v) {
		if (in_array_value(eb, v))
			continue;
		char *s = dump(v);
		emit(c, REPORT_BREAKING,
		     RESP(c) ? "enum value %s added: consumers may receive a value they do not handle"
			     : "enum value %s removed: callers sending it are refused",
		     s ? s : "?");
		free(s);
	}
	json_array_foreach(eb, i, v) {
		if (in_array_value(ea, v))
			continue;
		char *s = dump(v);
		emit(c, REPORT_INFO, RESP(c) ? "enum value %s removed" : "enum value %s added", s ? s : "?");
		free(s);
	}
}

/* Whether every value of the enum `en` that the bound `kw` constrains keeps to it (an enum is
 * a finite set: its values can be checked one by one instead of comparing bounds). */
static int enum_within(const json_t *en, const char *kw, int upper, double b)
{
	size_t i;
	json_t *v;
	json_array_foreach(en, i, v) {
		double x;
		if (strstr(kw, "Length")) {
			if (!json_is_string(v))
				continue;
			x = 0;
			for (const char *q = json_string_value(v); *q; q++)
				x += ((unsigned char)*q & 0xc0) != 0x80; /* code points, as JSON Schema counts */
		} else if (strstr(kw, "Items")) {
			if (!json_is_array(v))
				continue;
			x = (double)json_array_size(v);
		} else if (strstr(kw, "Properties")) {
			if (!json_is_object(v))
				continue;
			x = (double)json_object_size(v);
		} else {
			if (!json_is_number(v))
				continue;
			x = json_number_value(v);
		}
		int excl = !strncmp(kw, "exclusive", 9);
		if (upper ? (excl ? x >= b : x > b) : (excl ? x <= b : x < b))
			return 0;
	}
	return 1;
}

static void compare_bounds(struct cmp *c, const struct norm *na, const struct norm *nb, unsigned common)
{
	static const struct {
		const char *kw;
		int upper;
		unsigned types;
	} bounds[] = {
		{"minLength", 0, SCHEMA_T_STRING},     {"maxLength", 1, SCHEMA_T_STRING},
		{"minimum", 0, T_NUM},                 {"exclusiveMinimum", 0, T_NUM},
		{"maximum", 1, T_NUM},                 {"exclusiveMaximum", 1, T_NUM},
		{"minItems", 0, SCHEMA_T_ARRAY},       {"maxItems", 1, SCHEMA_T_ARRAY},
		{"minProperties", 0, SCHEMA_T_OBJECT}, {"maxProperties", 1, SCHEMA_T_OBJECT},
	};
	for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
		if (!(common & bounds[i].types))
			continue;
		json_t *av = json_object_get(na->kw, bounds[i].kw), *bv = json_object_get(nb->kw, bounds[i].kw);
		if (!bv)
			continue;
		double b = json_number_value(bv);
		const json_t *ea = json_object_get(na->kw, "enum");
		if (ea && enum_within(ea, bounds[i].kw, bounds[i].upper, b))
			continue; /* every value A admits keeps to B's bound */
		if (!av) {
			emit(c, REPORT_BREAKING,
			     RESP(c) ? "%s %g removed: consumers may receive values the old schema excluded"
				     : "%s %g added: requests that were valid may be refused",
			     bounds[i].kw, b);
			continue;
		}
		double a = json_number_value(av);
		if (bounds[i].upper ? b < a : b > a)
			emit(c, REPORT_BREAKING,
			     RESP(c) ? "%s relaxed from %g to %g: consumers may receive values the old schema excluded"
				     : "%s tightened from %g to %g: requests that were valid may be refused",
			     bounds[i].kw, OLDV(c, a, b), NEWV(c, a, b));
	}
	if (common & T_NUM) {
		json_t *ma = json_object_get(na->kw, "multipleOf"), *mb = json_object_get(nb->kw, "multipleOf");
		if (json_is_number(mb)) {
			double b = json_number_value(mb);
			double a = json_is_number(ma) ? json_number_value(ma) : 0;
			if (!json_is_number(ma))
				emit(c, REPORT_BREAKING, RESP(c) ? "multipleOf %g removed" : "multipleOf %g added", b);
			else if (b == 0 || fabs(remainder(a, b)) > 1e-9 * fabs(a))
				emit(c, REPORT_BREAKING, "multipleOf changed from %g to %g", OLDV(c, a, b), NEWV(c, a, b));
		}
	}
	if (common & SCHEMA_T_STRING) {
		json_t *pa = json_object_get(na->kw, "pattern"), *pb = json_object_get(nb->kw, "pattern");
		if (json_is_string(pb)) {
			if (!json_is_string(pa))
				emit(c, REPORT_BREAKING,
				     RESP(c) ? "pattern '%s' removed: consumers may receive strings it excluded"
					     : "pattern '%s' added: strings that were accepted may be refused",
				     json_string_value(pb));
			else if (strcmp(json_string_value(pa), json_string_value(pb)))
				emit(c, REPORT_BREAKING,
				     "pattern changed from '%s' to '%s' (sluice cannot prove one accepts all the other does)",
				     json_string_value(OLDV(c, pa, pb)), json_string_value(NEWV(c, pa, pb)));
		}
		json_t *fa = json_object_get(na->kw, "format"), *fb = json_object_get(nb->kw, "format");
		if (json_is_string(fb) && (!json_is_string(fa) || strcmp(json_string_value(fa), json_string_value(fb))))
			emit(c, REPORT_WARNING, "format changed from '%s' to '%s'",
			     json_is_string(OLDV(c, fa, fb)) ? json_string_value(OLDV(c, fa, fb)) : "(none)",
			     json_is_string(NEWV(c, fa, fb)) ? json_string_value(NEWV(c, fa, fb)) : "(none)");
	}
	if ((common & SCHEMA_T_ARRAY) && json_is_true(json_object_get(nb->kw, "uniqueItems")) &&
	    !json_is_true(json_object_get(na->kw, "uniqueItems")))
		emit(c, REPORT_BREAKING,
		     RESP(c) ? "uniqueItems removed: arrays may now hold duplicates"
			     : "uniqueItems added: arrays with duplicates that were accepted are refused");
}

static void compare_object(struct cmp *c, const struct norm *na, const struct norm *nb)
{
	json_t *pa = json_object_get(na->kw, "properties"), *pb = json_object_get(nb->kw, "properties");
	json_t *ra = json_object_get(na->kw, "required"), *rb = json_object_get(nb->kw, "required");
	json_t *apa = json_object_get(na->kw, "additionalProperties");
	json_t *apb = json_object_get(nb->kw, "additionalProperties");
	const json_t *A = c->root_a, *B = c->root_b;
	size_t i;
	json_t *v;
	const char *name;
	/* a readOnly property counts as absent in a request, a writeOnly one in a response, on
	 * either side: "marked" below is a property the schema declares but the direction drops */
	json_array_foreach(rb, i, v) {
		name = json_string_value(v);
		if (!eff_required(c, B, pb, rb, name) || eff_required(c, A, pa, ra, name))
			continue;
		const json_t *sa = eff_prop(c, A, pa, name), *sb = eff_prop(c, B, pb, name);
		int marked_a = !sa && json_object_get(pa, name);
		size_t old = path_push(c, name);
		if (RESP(c))
			emit(c, REPORT_BREAKING,
			     sa ? "property '%s' is no longer required: it may be absent"
			     : marked_a ? "property '%s' is now writeOnly: responses no longer carry it"
					: "required property '%s' removed",
			     name);
		else
			emit(c, REPORT_BREAKING,
			     sb && sa ? "property '%s' became required"
			     : marked_a ? "property '%s' is required but readOnly on the sending side: callers do not send it"
					: "new required property '%s': callers do not send it",
			     name);
		path_pop(c, old);
	}
	json_object_foreach(pa, name, v) {
		if (!eff_prop(c, A, pa, name))
			continue;
		const json_t *sb = eff_prop(c, B, pb, name);
		int marked_b = !sb && json_object_get(pb, name);
		size_t old = path_push(c, name);
		if (sb)
			compare(c, v, sb);
		else if (json_is_false(apb))
			emit(c, REPORT_BREAKING,
			     RESP(c) ? "new property '%s' in an object the old schema closed (additionalProperties: false)"
			     : marked_b ? "property '%s' is readOnly in the new schema, whose object is closed: requests that send it may be refused"
					: "property '%s' is no longer accepted: the object is closed",
			     name);
		else if (json_is_object(apb) && !marked_b)
			compare(c, v, apb);
		else if (RESP(c))
			emit(c, REPORT_INFO, "property '%s' added", name);
		else
			emit(c, REPORT_WARNING,
			     marked_b ? "property '%s' is readOnly in the new request schema: still accepted because the object is open, but may be ignored"
				      : "property '%s' removed from the request schema: still accepted because the object is open, but may be ignored",
			     name);
		path_pop(c, old);
	}
	json_object_foreach(pb, name, v) {
		if (!eff_prop(c, B, pb, name) || eff_prop(c, A, pa, name) || eff_required(c, B, pb, rb, name))
			continue;
		size_t old = path_push(c, name);
		if (RESP(c))
			emit(c, REPORT_WARNING,
			     json_object_get(pa, name)
				     ? "optional property '%s' is now writeOnly: consumers that read it get nothing"
				     : "optional property '%s' removed: consumers that read it get nothing ('contract check' tells whether any does)",
			     name);
		else
			emit(c, REPORT_INFO, "new optional property '%s' accepted", name);
		path_pop(c, old);
	}
	if (json_is_false(apb) && !json_is_false(apa)) {
		emit(c, REPORT_BREAKING,
		     RESP(c) ? "object opened (additionalProperties no longer false): it may hold properties consumers do not expect"
			     : "object closed (additionalProperties: false): requests with other properties are refused");
	} else if (json_is_object(apb)) {
		if (!apa) {
			emit(c, REPORT_BREAKING,
			     RESP(c) ? "additionalProperties no longer constrained: consumers may receive any extra value"
				     : "additionalProperties now constrained: extra values that were accepted may be refused");
		} else if (json_is_object(apa)) {
			size_t old = path_push(c, "*");
			compare(c, apa, apb);
			path_pop(c, old);
		}
	}
}

static void compare_norm(struct cmp *c, const struct norm *na, const json_t *a, const struct norm *nb,
			 const json_t *b)
{
	char ta[64], tb[64];
	if (na->never)
		return; /* A admits nothing: nothing to break */
	if (nb->never) {
		emit(c, REPORT_BREAKING,
		     RESP(c) ? "the old schema admitted no value here, the new one does"
			     : "the new schema admits no value here");
		return;
	}
	if (na->alts || nb->alts) {
		compare_union(c, na, a, nb, b);
		return;
	}
	unsigned extra = na->types & ~nb->types;
	if (extra & SCHEMA_T_NULL)
		emit(c, REPORT_BREAKING,
		     RESP(c) ? "may now be null (nullable or type null added)" : "null is no longer accepted");
	if (extra & ~SCHEMA_T_NULL) {
		schema_types_str(OLDV(c, na->types, nb->types), ta, sizeof(ta));
		schema_types_str(NEWV(c, na->types, nb->types), tb, sizeof(tb));
		emit(c, REPORT_BREAKING,
		     RESP(c) ? "type widened from %s to %s: consumers may receive a type they do not expect"
			     : "type narrowed from %s to %s: values callers send may be refused",
		     ta, tb);
	}
	unsigned common = na->types & nb->types;
	compare_enum(c, na, nb);
	compare_bounds(c, na, nb, common);
	if (common & SCHEMA_T_OBJECT)
		compare_object(c, na, nb);
	if (common & SCHEMA_T_ARRAY) {
		json_t *ib = json_object_get(nb->kw, "items");
		if (ib) {
			size_t old = path_push(c, "*");
			compare(c, json_object_get(na->kw, "items"), ib);
			path_pop(c, old);
		}
	}
}

static void compare(struct cmp *c, const json_t *a, const json_t *b)
{
	if (--*c->budget < 0) {
		c->breaking++; /* unproven is not compatible: the gate fails closed (reported once, at the top) */
		return;
	}
	if (c->depth >= MAX_DEPTH) {
		emit(c, REPORT_WARNING, "schemas nested deeper than %d levels: not compared further", MAX_DEPTH);
		return;
	}
	struct norm na, nb;
	norm_init(&na, c->root_a, a);
	norm_init(&nb, c->root_b, b);
	if (na.problem[0] || nb.problem[0])
		emit(c, REPORT_WARNING, "%s", na.problem[0] ? na.problem : nb.problem);
	/* the same pair of named schemas already being compared above: a recursive schema,
	 * compatible here if it is compatible there */
	int seen = 0;
	if (na.ref && nb.ref)
		for (int i = 0; i < c->depth && !seen; i++)
			seen = c->stack_a[i] && c->stack_b[i] && !strcmp(c->stack_a[i], na.ref) &&
			       !strcmp(c->stack_b[i], nb.ref);
	if (!seen) {
		c->stack_a[c->depth] = na.ref;
		c->stack_b[c->depth] = nb.ref;
		c->depth++;
		compare_norm(c, &na, a, &nb, b);
		c->depth--;
	}
	norm_release(&na);
	norm_release(&nb);
}

int schema_compare(const json_t *root_a, const json_t *a, const json_t *root_b, const json_t *b,
		   enum schema_dir dir, const struct report_loc *loc, json_t *findings)
{
	struct cmp *c = calloc(1, sizeof(*c));
	if (!c) {
		report_add(findings, REPORT_BREAKING, loc, "out of memory comparing schemas");
		return 1;
	}
	long budget = COMPARE_BUDGET;
	c->budget = &budget;
	c->root_a = root_a;
	c->root_b = root_b;
	c->dir = dir;
	c->loc = loc;
	c->findings = findings;
	if (loc && loc->path && strcmp(loc->path, "/")) {
		snprintf(c->path, sizeof(c->path), "%s", loc->path);
		c->plen = strlen(c->path);
	}
	compare(c, a, b);
	if (budget < 0) {
		c->plen = 0;
		c->path[0] = 0;
		emit(c, REPORT_BREAKING,
		     "schemas too complex to compare (more than %d comparisons): sluice cannot prove them compatible",
		     COMPARE_BUDGET);
	}
	int n = c->breaking;
	free(c);
	return n;
}

/* ---- guarantees ------------------------------------------------------------------------- */

static int guarantee(const json_t *root, const json_t *schema, const char *const *segs, size_t nsegs,
		     unsigned types, int optional, struct buf *at, char *why, size_t whysize, int depth, long *budget)
{
	char have[64], want[64];
	const char *where = at->len ? at->data : "/";
	if (--*budget < 0) {
		snprintf(why, whysize, "%s: the provider's schema is too complex to follow (more than %d steps)", where,
			 GUARANTEE_BUDGET);
		return 0;
	}
	if (depth > MAX_DEPTH) {
		snprintf(why, whysize, "%s: schema nested too deep to follow", where);
		return 0;
	}
	struct norm n;
	norm_init(&n, root, schema);
	int ok = 0;
	if (n.problem[0]) {
		snprintf(why, whysize, "%s: %s", where, n.problem);
		goto out;
	}
	if (n.never) {
		snprintf(why, whysize, "%s: the provider's schema admits no value", where);
		goto out;
	}
	if (n.alts) {
		/* a value matches at least one alternative, so each must give the guarantee */
		size_t i;
		json_t *alt;
		ok = 1;
		json_array_foreach(n.alts, i, alt)
			if (!guarantee(root, alt, segs, nsegs, types, optional, at, why, whysize, depth + 1, budget)) {
				ok = 0;
				break;
			}
		goto out;
	}
	if (!nsegs) {
		unsigned extra = n.types & ~types;
		if (extra) {
			schema_types_str(n.types, have, sizeof(have));
			schema_types_str(types, want, sizeof(want));
			if (extra == SCHEMA_T_NULL)
				snprintf(why, whysize, "%s may be null, the consumer expects %s", where, want);
			else
				snprintf(why, whysize, "%s is %s in the provider's schema, the consumer expects %s",
					 where, have, want);
			goto out;
		}
		ok = 1;
		goto out;
	}
	const char *seg = segs[0];
	int is_items = !strcmp(seg, "*");
	unsigned need = is_items ? SCHEMA_T_ARRAY : SCHEMA_T_OBJECT;
	if (n.types != need) {
		schema_types_str(n.types, have, sizeof(have));
		if ((n.types & ~SCHEMA_T_NULL) == need)
			snprintf(why, whysize, "%s may be null in the provider's schema", where);
		else
			snprintf(why, whysize, "%s is %s in the provider's schema, not guaranteed to be an %s", where,
				 have, is_items ? "array" : "object");
		goto out;
	}
	size_t old = at->len;
	const json_t *next;
	if (is_items) {
		next = json_object_get(n.kw, "items");
		if (buf_adds(at, "/*"))
			goto toolong;
	} else {
		next = json_object_get(json_object_get(n.kw, "properties"), seg);
		int last_optional = optional && nsegs == 1;
		if (buf_addf(at, "/%s", seg))
			goto toolong;
		if (next && rw_marked(root, next, "writeOnly")) {
			/* OpenAPI: a writeOnly value is never sent in a response, required or not */
			ok = last_optional;
			if (!ok)
				snprintf(why, whysize, "%s is writeOnly in the provider's schema: responses never carry it", at->data);
			goto restore;
		}
		if (!next) {
			ok = last_optional;
			if (!ok)
				snprintf(why, whysize, "%s is not in the provider's schema", at->data);
			goto restore;
		}
		if (!last_optional && !in_array_str(json_object_get(n.kw, "required"), seg)) {
			snprintf(why, whysize, "%s is optional in the provider's schema (not in required)", at->data);
			goto restore;
		}
	}
	ok = guarantee(root, next, segs + 1, nsegs - 1, types, optional, at, why, whysize, depth + 1, budget);
restore:
	at->len = old;
	at->data[old] = 0;
	goto out;
toolong:
	snprintf(why, whysize, "%s: path too long", where);
out:
	norm_release(&n);
	return ok;
}

int schema_guarantees(const json_t *root, const json_t *schema, const char *const *segs, size_t nsegs,
		      unsigned types, int optional, char *why, size_t whysize)
{
	struct buf at;
	buf_init(&at, PATH_MAX_LEN);
	why[0] = 0;
	long budget = GUARANTEE_BUDGET;
	int ok = guarantee(root, schema, segs, nsegs, types, optional, &at, why, whysize, 0, &budget);
	buf_release(&at);
	return ok;
}
