/*
 * logic: JsonLogic compiled to a tree of operation nodes (see logic.h for the semantics).
 */
#include "flags/logic.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flags/murmur3.h"

/* ---- the arena ---- */

struct extra_block {
	struct extra_block *next;
	size_t len;
	max_align_t data[];
};

/* Beyond this, an evaluation fails instead of taking more memory (a rule that merges and
 * concatenates in loops over a large context). */
#define ARENA_LIMIT (16u << 20)

void logic_arena_init(struct logic_arena *a, void *buf, size_t len)
{
	memset(a, 0, sizeof(*a));
	a->base = buf;
	a->cap = buf ? len : 0;
}

void logic_arena_reset(struct logic_arena *a)
{
	struct extra_block *b = a->extra;
	while (b) {
		struct extra_block *n = b->next;
		free(b);
		b = n;
	}
	a->extra = NULL;
	a->extra_bytes = 0;
	a->used = 0;
}

void logic_arena_release(struct logic_arena *a)
{
	logic_arena_reset(a);
}

static void *arena_alloc(struct logic_arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (a->base && a->cap - a->used >= n) {
		void *p = a->base + a->used;
		a->used += n;
		return p;
	}
	if (a->extra_bytes + n > ARENA_LIMIT)
		return NULL;
	struct extra_block *b = malloc(sizeof(*b) + n);
	if (!b)
		return NULL;
	b->next = a->extra;
	b->len = n;
	a->extra = b;
	a->extra_bytes += n;
	return b->data;
}

/* ---- compiled rules ---- */

enum op {
	OP_LIT, OP_ARRAY, OP_VAR, OP_MISSING, OP_MISSING_SOME, OP_IF, OP_EQ, OP_SEQ, OP_NE, OP_SNE,
	OP_NOT, OP_NOTNOT, OP_OR, OP_AND, OP_GT, OP_GE, OP_LT, OP_LE, OP_MAX, OP_MIN, OP_ADD, OP_SUB,
	OP_MUL, OP_DIV, OP_MOD, OP_IN, OP_CAT, OP_SUBSTR, OP_MERGE, OP_MAP, OP_FILTER, OP_REDUCE,
	OP_ALL, OP_NONE, OP_SOME, OP_FRACTIONAL, OP_SEMVER, OP_STARTS, OP_ENDS, OP_INVALID,
};

static const struct {
	const char *name;
	enum op op;
} op_names[] = {
	{"var", OP_VAR}, {"missing", OP_MISSING}, {"missing_some", OP_MISSING_SOME}, {"if", OP_IF},
	{"?:", OP_IF}, {"==", OP_EQ}, {"===", OP_SEQ}, {"!=", OP_NE}, {"!==", OP_SNE}, {"!", OP_NOT},
	{"!!", OP_NOTNOT}, {"or", OP_OR}, {"and", OP_AND}, {">", OP_GT}, {">=", OP_GE}, {"<", OP_LT},
	{"<=", OP_LE}, {"max", OP_MAX}, {"min", OP_MIN}, {"+", OP_ADD}, {"-", OP_SUB}, {"*", OP_MUL},
	{"/", OP_DIV}, {"%", OP_MOD}, {"in", OP_IN}, {"cat", OP_CAT}, {"substr", OP_SUBSTR},
	{"merge", OP_MERGE}, {"map", OP_MAP}, {"filter", OP_FILTER}, {"reduce", OP_REDUCE},
	{"all", OP_ALL}, {"none", OP_NONE}, {"some", OP_SOME}, {"fractional", OP_FRACTIONAL},
	{"sem_ver", OP_SEMVER}, {"starts_with", OP_STARTS}, {"ends_with", OP_ENDS},
};

struct node {
	enum op op;
	size_t n;
	struct node **args;
	struct logic_value lit; /* OP_LIT */
};

struct logic {
	struct node *root;
	void **allocs; /* every node and argument array, to free */
	size_t nallocs, cap;
	size_t nodes;
	char warning[300];
};

static void *keep(logic *l, size_t size)
{
	if (l->nallocs == l->cap) {
		size_t c = l->cap ? l->cap * 2 : 32;
		void **na = realloc(l->allocs, c * sizeof(*na));
		if (!na)
			return NULL;
		l->allocs = na;
		l->cap = c;
	}
	void *p = calloc(1, size);
	if (p)
		l->allocs[l->nallocs++] = p;
	return p;
}

__attribute__((format(printf, 2, 0))) static void warn(logic *l, const char *fmt, va_list ap)
{
	if (!l->warning[0])
		vsnprintf(l->warning, sizeof(l->warning), fmt, ap);
}

static int lit_of(const json_t *j, struct logic_value *v)
{
	switch (json_typeof(j)) {
	case JSON_NULL:
		v->t = LOGIC_NULL;
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		v->t = LOGIC_BOOL;
		v->b = json_is_true(j);
		break;
	case JSON_INTEGER:
		v->t = LOGIC_NUM;
		v->n = (double)json_integer_value(j);
		break;
	case JSON_REAL:
		v->t = LOGIC_NUM;
		v->n = json_real_value(j);
		break;
	case JSON_STRING:
		v->t = LOGIC_STR;
		v->s.p = json_string_value(j);
		v->s.len = json_string_length(j);
		break;
	default:
		v->t = LOGIC_JSON;
		v->j = j;
	}
	return 0;
}

/* The refs being expanded, to refuse cycles. */
struct refs {
	const char *name[LOGIC_MAX_DEPTH];
	int n;
};

static struct node *compile(logic *l, const json_t *j, const json_t *evals, struct refs *refs, int depth);

__attribute__((format(printf, 2, 3))) static struct node *invalid(logic *l, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	warn(l, fmt, ap);
	va_end(ap);
	struct node *n = keep(l, sizeof(*n));
	if (n)
		n->op = OP_INVALID;
	return n;
}

static struct node *compile_op(logic *l, const char *key, const json_t *val, const json_t *evals,
			       struct refs *refs, int depth)
{
	if (!strcmp(key, "$ref")) {
		const char *name = json_string_value(val);
		const json_t *target = name ? json_object_get(evals, name) : NULL;
		if (!target)
			return invalid(l, "$ref '%s' names no evaluator under $evaluators", name ? name : "?");
		for (int i = 0; i < refs->n; i++)
			if (!strcmp(refs->name[i], name))
				return invalid(l, "$ref '%s' refers to itself (a cycle)", name);
		if (refs->n >= LOGIC_MAX_DEPTH)
			return invalid(l, "%s: $ref nested too deep", name);
		refs->name[refs->n++] = name;
		struct node *n = compile(l, target, evals, refs, depth + 1);
		refs->n--;
		return n;
	}
	enum op op = OP_INVALID;
	for (size_t i = 0; i < sizeof(op_names) / sizeof(op_names[0]); i++)
		if (!strcmp(op_names[i].name, key)) {
			op = op_names[i].op;
			break;
		}
	if (op == OP_INVALID)
		return invalid(l, "unknown operation '%.64s'", key);
	struct node *n = keep(l, sizeof(*n));
	if (!n)
		return NULL;
	n->op = op;
	n->n = json_is_array(val) ? json_array_size(val) : 1;
	n->args = n->n ? keep(l, n->n * sizeof(*n->args)) : NULL;
	if (n->n && !n->args)
		return NULL;
	for (size_t i = 0; i < n->n; i++) {
		n->args[i] = compile(l, json_is_array(val) ? json_array_get(val, i) : val, evals, refs, depth + 1);
		if (!n->args[i])
			return NULL;
	}
	return n;
}

static struct node *compile(logic *l, const json_t *j, const json_t *evals, struct refs *refs, int depth)
{
	if (depth > LOGIC_MAX_DEPTH)
		return invalid(l, "%s: the rule nests deeper than 64 levels", "targeting");
	if (++l->nodes > LOGIC_MAX_NODES)
		return invalid(l, "%s: the rule has more than 100000 parts", "targeting");
	if (json_is_object(j) && json_object_size(j) == 1) {
		const char *key = json_object_iter_key(json_object_iter((json_t *)j));
		return compile_op(l, key, json_object_iter_value(json_object_iter((json_t *)j)), evals, refs, depth);
	}
	struct node *n = keep(l, sizeof(*n));
	if (!n)
		return NULL;
	n->op = OP_LIT;
	lit_of(j, &n->lit);
	if (json_is_array(j)) {
		/* an array's elements are rules; one made only of literals is a literal */
		size_t k = json_array_size(j);
		struct node **args = k ? keep(l, k * sizeof(*args)) : NULL;
		if (k && !args)
			return NULL;
		int all_lit = 1;
		for (size_t i = 0; i < k; i++) {
			if (!(args[i] = compile(l, json_array_get(j, i), evals, refs, depth + 1)))
				return NULL;
			all_lit &= args[i]->op == OP_LIT;
		}
		if (!all_lit) {
			n->op = OP_ARRAY;
			n->n = k;
			n->args = args;
		}
	}
	return n;
}

logic *logic_compile(const json_t *rule, const json_t *evaluators)
{
	logic *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	struct refs refs = {.n = 0};
	l->root = compile(l, rule, evaluators, &refs, 0);
	if (!l->root) {
		logic_free(l);
		return NULL;
	}
	return l;
}

void logic_free(logic *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->nallocs; i++)
		free(l->allocs[i]);
	free(l->allocs);
	free(l);
}

const char *logic_warning(const logic *l)
{
	return l->warning[0] ? l->warning : NULL;
}

/* ---- JavaScript's conversions ---- */

static const struct logic_value v_null = {.t = LOGIC_NULL};

static struct logic_value v_bool(int b)
{
	struct logic_value v = {.t = LOGIC_BOOL};
	v.b = b != 0;
	return v;
}

static struct logic_value v_num(double n)
{
	struct logic_value v = {.t = LOGIC_NUM};
	v.n = n;
	return v;
}

static struct logic_value v_str(const char *p, size_t len)
{
	struct logic_value v = {.t = LOGIC_STR};
	v.s.p = p;
	v.s.len = len;
	return v;
}

static int is_array(const struct logic_value *v)
{
	return v->t == LOGIC_LIST || (v->t == LOGIC_JSON && json_is_array(v->j));
}

static size_t arr_len(const struct logic_value *v)
{
	return v->t == LOGIC_LIST ? v->l.n : json_array_size(v->j);
}

static struct logic_value arr_get(const struct logic_value *v, size_t i)
{
	if (v->t == LOGIC_LIST)
		return v->l.items[i];
	struct logic_value r;
	lit_of(json_array_get(v->j, i), &r);
	return r;
}

int logic_truthy(const struct logic_value *v)
{
	switch (v->t) {
	case LOGIC_NULL:
		return 0;
	case LOGIC_BOOL:
		return v->b;
	case LOGIC_NUM:
		return v->n != 0 && !isnan(v->n);
	case LOGIC_STR:
		return v->s.len > 0;
	case LOGIC_JSON:
		return json_is_array(v->j) ? json_array_size(v->j) > 0 : 1;
	case LOGIC_LIST:
		return v->l.n > 0;
	}
	return 0;
}

/* JavaScript's Number(string): blanks around, "" is 0, hex, Infinity; otherwise all of it. */
static double str_to_num(const char *p, size_t len)
{
	while (len && isspace((unsigned char)*p))
		p++, len--;
	while (len && isspace((unsigned char)p[len - 1]))
		len--;
	if (!len)
		return 0;
	char buf[64];
	if (len >= sizeof(buf))
		return NAN;
	memcpy(buf, p, len);
	buf[len] = '\0';
	const char *s = buf;
	int neg = 0;
	if (len > 2 && buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X')) {
		char *end;
		unsigned long long v = strtoull(buf + 2, &end, 16);
		return *end || !isxdigit((unsigned char)buf[2]) ? NAN : (double)v;
	}
	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	if (!strcmp(s, "Infinity"))
		return neg ? -INFINITY : INFINITY;
	/* strtod also takes "inf", "nan" and hex floats, which Number does not */
	if (!isdigit((unsigned char)*s) && *s != '.')
		return NAN;
	for (const char *c = s; *c; c++)
		if (*c == 'x' || *c == 'X' || *c == 'p' || *c == 'P')
			return NAN;
	char *end;
	double d = strtod(buf, &end);
	return *end ? NAN : d;
}

/* JavaScript's parseFloat: the longest decimal prefix after blanks, else NaN. */
static double parse_float(const struct logic_value *v)
{
	if (v->t == LOGIC_NUM)
		return v->n;
	if (v->t != LOGIC_STR)
		return NAN; /* parseFloat(null), of true, of an object */
	char buf[64];
	size_t len = v->s.len < sizeof(buf) - 1 ? v->s.len : sizeof(buf) - 1;
	memcpy(buf, v->s.p, len);
	buf[len] = '\0';
	const char *s = buf;
	while (isspace((unsigned char)*s))
		s++;
	const char *d = s + (*s == '+' || *s == '-');
	if (!strncmp(d, "Infinity", 8))
		return *s == '-' ? -INFINITY : INFINITY;
	if (!isdigit((unsigned char)*d) && !(*d == '.' && isdigit((unsigned char)d[1])))
		return NAN;
	/* cut at the first character a decimal literal cannot have, so no hex or inf reading */
	size_t k = (size_t)(d - buf);
	while (buf[k] && (isdigit((unsigned char)buf[k]) || buf[k] == '.' || buf[k] == 'e' || buf[k] == 'E' ||
			  ((buf[k] == '+' || buf[k] == '-') && (buf[k - 1] == 'e' || buf[k - 1] == 'E'))))
		k++;
	buf[k] = '\0';
	return strtod(s, NULL);
}

/* The text of a number as JavaScript writes it (integers without a point). */
static int num_text(double n, char *buf, size_t len)
{
	if (isnan(n))
		return snprintf(buf, len, "NaN");
	if (isinf(n))
		return snprintf(buf, len, n < 0 ? "-Infinity" : "Infinity");
	if (n == 0)
		return snprintf(buf, len, "0");
	if (fabs(n) < 1e21 && n == floor(n))
		return snprintf(buf, len, "%.0f", n);
	for (int prec = 1; prec <= 17; prec++) {
		int w = snprintf(buf, len, "%.*g", prec, n);
		if (strtod(buf, NULL) == n)
			return w;
	}
	return snprintf(buf, len, "%.17g", n);
}

struct sb {
	struct logic_arena *a;
	char *p;
	size_t len, cap;
	int fail;
};

static void sb_add(struct sb *b, const char *s, size_t n)
{
	if (b->fail)
		return;
	if (b->len + n > b->cap) {
		size_t cap = (b->len + n) * 2 + 32;
		char *np = arena_alloc(b->a, cap);
		if (!np) {
			b->fail = 1;
			return;
		}
		if (b->len)
			memcpy(np, b->p, b->len);
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* The string form as Array.prototype.join writes an element (null -> ""); `plain` gives
 * String()'s ("null"). Arrays join with ','. */
static void add_text(struct sb *b, const struct logic_value *v, int plain, int depth)
{
	char num[40];
	switch (v->t) {
	case LOGIC_NULL:
		if (plain)
			sb_add(b, "null", 4);
		break;
	case LOGIC_BOOL:
		sb_add(b, v->b ? "true" : "false", v->b ? 4 : 5);
		break;
	case LOGIC_NUM: {
		int w = num_text(v->n, num, sizeof(num));
		sb_add(b, num, (size_t)w);
		break;
	}
	case LOGIC_STR:
		sb_add(b, v->s.p, v->s.len);
		break;
	case LOGIC_JSON:
	case LOGIC_LIST:
		if (!is_array(v)) {
			sb_add(b, "[object Object]", 15);
			break;
		}
		if (depth > 16) {
			b->fail = 1;
			break;
		}
		for (size_t i = 0; i < arr_len(v); i++) {
			if (i)
				sb_add(b, ",", 1);
			struct logic_value e = arr_get(v, i);
			add_text(b, &e, 0, depth + 1);
		}
		break;
	}
}

/* ToPrimitive: an array becomes its joined text, an object "[object Object]". 0 or -1. */
static int primitive(struct logic_arena *a, struct logic_value *v)
{
	if (v->t != LOGIC_JSON && v->t != LOGIC_LIST)
		return 0;
	struct sb b = {.a = a};
	add_text(&b, v, 0, 0);
	if (b.fail)
		return -1;
	*v = v_str(b.p ? b.p : "", b.len);
	return 0;
}

static double to_num(struct logic_arena *a, struct logic_value v)
{
	if (primitive(a, &v))
		return NAN;
	switch (v.t) {
	case LOGIC_NULL:
		return 0;
	case LOGIC_BOOL:
		return v.b;
	case LOGIC_NUM:
		return v.n;
	case LOGIC_STR:
		return str_to_num(v.s.p, v.s.len);
	default:
		return NAN;
	}
}

static int same_str(const struct logic_value *x, const struct logic_value *y)
{
	return x->s.len == y->s.len && !memcmp(x->s.p, y->s.p, x->s.len);
}

static int strict_eq(const struct logic_value *x, const struct logic_value *y)
{
	int xo = x->t == LOGIC_JSON || x->t == LOGIC_LIST, yo = y->t == LOGIC_JSON || y->t == LOGIC_LIST;
	if (xo || yo) /* objects are equal only to themselves */
		return xo && yo && x->t == y->t && (x->t == LOGIC_JSON ? x->j == y->j : x->l.items == y->l.items);
	if (x->t != y->t)
		return 0;
	switch (x->t) {
	case LOGIC_NULL:
		return 1;
	case LOGIC_BOOL:
		return x->b == y->b;
	case LOGIC_NUM:
		return x->n == y->n;
	case LOGIC_STR:
		return same_str(x, y);
	default:
		return 0;
	}
}

/* JavaScript's ==. */
static int loose_eq(struct logic_arena *a, struct logic_value x, struct logic_value y, int depth)
{
	int xo = x.t == LOGIC_JSON || x.t == LOGIC_LIST, yo = y.t == LOGIC_JSON || y.t == LOGIC_LIST;
	if ((xo && yo) || x.t == y.t)
		return strict_eq(&x, &y);
	if (x.t == LOGIC_NULL || y.t == LOGIC_NULL || depth > 4)
		return 0;
	if (x.t == LOGIC_BOOL)
		return loose_eq(a, v_num(x.b), y, depth + 1);
	if (y.t == LOGIC_BOOL)
		return loose_eq(a, x, v_num(y.b), depth + 1);
	if (xo) {
		if (primitive(a, &x))
			return 0;
		return loose_eq(a, x, y, depth + 1);
	}
	if (yo) {
		if (primitive(a, &y))
			return 0;
		return loose_eq(a, x, y, depth + 1);
	}
	/* a number and a string */
	return to_num(a, x) == to_num(a, y);
}

/* JavaScript's <: strings as strings, anything else as numbers (NaN compares false). Returns
 * -1, 0, 1, or 2 for "not comparable". */
static int compare(struct logic_arena *a, struct logic_value x, struct logic_value y)
{
	if (primitive(a, &x) || primitive(a, &y))
		return 2;
	if (x.t == LOGIC_STR && y.t == LOGIC_STR) {
		size_t n = x.s.len < y.s.len ? x.s.len : y.s.len;
		int c = memcmp(x.s.p, y.s.p, n);
		if (c)
			return c < 0 ? -1 : 1;
		return x.s.len < y.s.len ? -1 : x.s.len > y.s.len;
	}
	double nx = to_num(a, x), ny = to_num(a, y);
	if (isnan(nx) || isnan(ny))
		return 2;
	return nx < ny ? -1 : nx > ny;
}

/* ---- evaluation ---- */

struct state {
	const struct logic_env *env;
	struct logic_arena *a;
	struct logic_value data;          /* what var reads */
	const struct logic_value *cur, *acc; /* inside reduce */
	struct err *e;
	int depth;
};

static int eval(struct state *s, const struct node *n, struct logic_value *out);

static int oom(struct state *s)
{
	return err_set(s->e, "the rule needs more than %u MiB to evaluate", ARENA_LIMIT >> 20);
}

/* args[i] evaluated, or null when there is no such argument. */
static int arg(struct state *s, const struct node *n, size_t i, struct logic_value *out)
{
	if (i >= n->n) {
		*out = v_null;
		return 0;
	}
	return eval(s, n->args[i], out);
}

/* One step of a var path into v: the member of an object, the element of an array. */
static int step(const struct logic_value *v, const char *seg, size_t len, struct logic_value *out)
{
	if (v->t == LOGIC_JSON && json_is_object(v->j)) {
		const json_t *m = json_object_getn(v->j, seg, len);
		if (!m)
			return -1;
		lit_of(m, out);
		return 0;
	}
	if (is_array(v)) {
		if (!len || len > 9)
			return -1;
		size_t i = 0;
		for (size_t k = 0; k < len; k++) {
			if (seg[k] < '0' || seg[k] > '9')
				return -1;
			i = i * 10 + (size_t)(seg[k] - '0');
		}
		if (i >= arr_len(v))
			return -1;
		*out = arr_get(v, i);
		return 0;
	}
	return -1;
}

/* The value at a dotted path in the data; -1 when something on the way is missing. */
static int lookup(struct state *s, const char *path, size_t len, struct logic_value *out)
{
	if (len > 7 && !memcmp(path, "$flagd.", 7)) {
		const char *k = path + 7;
		size_t kl = len - 7;
		if (kl == 7 && !memcmp(k, "flagKey", 7) && s->env->flag_key) {
			*out = v_str(s->env->flag_key, strlen(s->env->flag_key));
			return 0;
		}
		if (kl == 9 && !memcmp(k, "timestamp", 9)) {
			*out = v_num((double)s->env->timestamp);
			return 0;
		}
	}
	struct logic_value cur = s->data;
	size_t start = 0;
	int first = 1;
	while (start <= len) {
		const char *dot = memchr(path + start, '.', len - start);
		size_t end = dot ? (size_t)(dot - path) : len;
		const char *seg = path + start;
		size_t sl = end - start;
		if (first && s->cur && sl == 7 && !memcmp(seg, "current", 7))
			cur = *s->cur;
		else if (first && s->acc && sl == 11 && !memcmp(seg, "accumulator", 11))
			cur = *s->acc;
		else if (cur.t == LOGIC_NULL || step(&cur, seg, sl, &cur))
			return -1;
		first = 0;
		start = end + 1;
		if (!dot)
			break;
	}
	*out = cur;
	return 0;
}

static int op_var(struct state *s, const struct node *n, struct logic_value *out)
{
	struct logic_value p, def;
	if (arg(s, n, 0, &p) || arg(s, n, 1, &def))
		return -1;
	if (p.t == LOGIC_NULL || (p.t == LOGIC_STR && !p.s.len)) {
		*out = s->cur && !s->acc ? *s->cur : s->data;
		return 0;
	}
	char num[40];
	const char *path;
	size_t len;
	if (p.t == LOGIC_NUM) {
		len = (size_t)num_text(p.n, num, sizeof(num));
		path = num;
	} else if (p.t == LOGIC_STR) {
		path = p.s.p;
		len = p.s.len;
	} else {
		*out = def;
		return 0;
	}
	if (lookup(s, path, len, out))
		*out = def;
	return 0;
}

static struct logic_value *list_alloc(struct state *s, size_t n)
{
	return arena_alloc(s->a, (n ? n : 1) * sizeof(struct logic_value));
}

static int make_list(struct state *s, struct logic_value *items, size_t n, struct logic_value *out)
{
	out->t = LOGIC_LIST;
	out->l.items = items;
	out->l.n = n;
	return 0;
}

/* The keys (values of `keys`, an array) whose var is null or "". */
static int missing_of(struct state *s, const struct logic_value *keys, struct logic_value *out)
{
	size_t k = arr_len(keys);
	struct logic_value *items = list_alloc(s, k);
	if (!items)
		return oom(s);
	size_t m = 0;
	for (size_t i = 0; i < k; i++) {
		struct logic_value key = arr_get(keys, i), v;
		char num[40];
		const char *p = key.s.p;
		size_t len = key.s.len;
		if (key.t == LOGIC_NUM) {
			len = (size_t)num_text(key.n, num, sizeof(num));
			p = num;
		} else if (key.t != LOGIC_STR) {
			continue;
		}
		if (lookup(s, p, len, &v) || v.t == LOGIC_NULL || (v.t == LOGIC_STR && !v.s.len))
			items[m++] = key;
	}
	return make_list(s, items, m, out);
}

/* All arguments evaluated into a list. */
static int eval_all(struct state *s, const struct node *n, struct logic_value *out)
{
	struct logic_value *items = list_alloc(s, n->n);
	if (!items)
		return oom(s);
	for (size_t i = 0; i < n->n; i++)
		if (eval(s, n->args[i], &items[i]))
			return -1;
	return make_list(s, items, n->n, out);
}

/* ---- flagd's operations ---- */

static int op_affix(struct state *s, const struct node *n, int starts, struct logic_value *out)
{
	struct logic_value a, b;
	if (arg(s, n, 0, &a) || arg(s, n, 1, &b))
		return -1;
	if (a.t != LOGIC_STR || b.t != LOGIC_STR) {
		*out = v_null;
		return 0;
	}
	int ok = b.s.len <= a.s.len &&
		 !memcmp(starts ? a.s.p : a.s.p + a.s.len - b.s.len, b.s.p, b.s.len);
	*out = v_bool(ok);
	return 0;
}

struct semver {
	long long num[3];
	const char *pre;
	size_t prelen;
};

/* "v1.2.3-rc.1+build", "1.2" (missing parts are 0). -1 when it is not a version. */
static int semver_parse(const struct logic_value *v, struct semver *out)
{
	if (v->t != LOGIC_STR)
		return -1;
	const char *p = v->s.p, *end = v->s.p + v->s.len;
	if (p < end && (*p == 'v' || *p == 'V'))
		p++;
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < 3; i++) {
		if (p >= end || !isdigit((unsigned char)*p))
			return -1;
		if (*p == '0' && p + 1 < end && isdigit((unsigned char)p[1]))
			return -1; /* no leading zeros */
		long long x = 0;
		while (p < end && isdigit((unsigned char)*p)) {
			if (x > 1000000000000LL)
				return -1;
			x = x * 10 + (*p++ - '0');
		}
		out->num[i] = x;
		if (p < end && *p == '.' && i < 2) {
			p++;
			continue;
		}
		break;
	}
	if (p < end && *p == '-') {
		const char *q = ++p;
		while (p < end && *p != '+') {
			if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
				return -1;
			p++;
		}
		if (p == q)
			return -1;
		out->pre = q;
		out->prelen = (size_t)(p - q);
	}
	if (p < end && *p == '+') {
		if (++p == end)
			return -1;
		while (p < end && (isalnum((unsigned char)*p) || *p == '-' || *p == '.'))
			p++;
	}
	return p == end ? 0 : -1;
}

/* Pre-release precedence (semver.org 11): identifiers compared dot by dot, numbers as numbers
 * and below letters, a longer list above its prefix; no pre-release above any. */
static int pre_cmp(const struct semver *a, const struct semver *b)
{
	if (!a->pre || !b->pre)
		return a->pre ? -1 : b->pre ? 1 : 0;
	const char *x = a->pre, *xe = a->pre + a->prelen, *y = b->pre, *ye = b->pre + b->prelen;
	while (x < xe && y < ye) {
		const char *xd = memchr(x, '.', (size_t)(xe - x)), *yd = memchr(y, '.', (size_t)(ye - y));
		size_t xl = (size_t)((xd ? xd : xe) - x), yl = (size_t)((yd ? yd : ye) - y);
		int xn = 1, yn = 1;
		for (size_t i = 0; i < xl; i++)
			xn &= isdigit((unsigned char)x[i]) != 0;
		for (size_t i = 0; i < yl; i++)
			yn &= isdigit((unsigned char)y[i]) != 0;
		int c;
		if (xn && yn)
			c = xl != yl ? (xl < yl ? -1 : 1) : memcmp(x, y, xl);
		else if (xn != yn)
			c = xn ? -1 : 1;
		else {
			c = memcmp(x, y, xl < yl ? xl : yl);
			if (!c && xl != yl)
				c = xl < yl ? -1 : 1;
		}
		if (c)
			return c < 0 ? -1 : 1;
		x += xl + (xd != NULL);
		y += yl + (yd != NULL);
		if (!xd || !yd)
			return xd ? 1 : yd ? -1 : 0;
	}
	return 0;
}

static int semver_cmp(const struct semver *a, const struct semver *b)
{
	for (int i = 0; i < 3; i++)
		if (a->num[i] != b->num[i])
			return a->num[i] < b->num[i] ? -1 : 1;
	return pre_cmp(a, b);
}

static int op_semver(struct state *s, const struct node *n, struct logic_value *out)
{
	struct logic_value a, o, b;
	struct semver x, y;
	if (arg(s, n, 0, &a) || arg(s, n, 1, &o) || arg(s, n, 2, &b))
		return -1;
	*out = v_null;
	if (n->n != 3 || o.t != LOGIC_STR || semver_parse(&a, &x) || semver_parse(&b, &y))
		return 0;
	int c = semver_cmp(&x, &y);
	static const char *const ops[] = {"=", "!=", "<", "<=", ">", ">=", "^", "~"};
	int k = -1;
	for (int i = 0; i < 8; i++)
		if (o.s.len == strlen(ops[i]) && !memcmp(o.s.p, ops[i], o.s.len))
			k = i;
	switch (k) {
	case 0: *out = v_bool(c == 0); break;
	case 1: *out = v_bool(c != 0); break;
	case 2: *out = v_bool(c < 0); break;
	case 3: *out = v_bool(c <= 0); break;
	case 4: *out = v_bool(c > 0); break;
	case 5: *out = v_bool(c >= 0); break;
	case 6: *out = v_bool(x.num[0] == y.num[0]); break;
	case 7: *out = v_bool(x.num[0] == y.num[0] && x.num[1] == y.num[1]); break;
	default: break;
	}
	return 0;
}

/*
 * fractional: [bucketing value?, [variant, weight?]...]. The hash is MurmurHash3 (x86, 32-bit,
 * seed 0) of the bucketing value (default: the flag key followed by the targeting key), the
 * bucket (hash * sum of weights) >> 32, and the answer the first variant whose running sum of
 * weights exceeds the bucket. Null when the input cannot be used.
 */
static int op_fractional(struct state *s, const struct node *n, struct logic_value *out)
{
	*out = v_null;
	if (!n->n)
		return 0;
	struct logic_value first;
	if (eval(s, n->args[0], &first))
		return -1;
	size_t from = 0;
	char keybuf[512];
	const char *key;
	size_t klen;
	struct sb b = {.a = s->a};
	if (first.t == LOGIC_STR) {
		key = first.s.p;
		klen = first.s.len;
		from = 1;
	} else {
		struct logic_value tk;
		if (!s->env->flag_key || lookup(s, "targetingKey", 12, &tk) || tk.t != LOGIC_STR) {
			if (s->env->no_targeting_key)
				*s->env->no_targeting_key = 1;
			return 0;
		}
		size_t fl = strlen(s->env->flag_key);
		if (fl + tk.s.len <= sizeof(keybuf)) {
			memcpy(keybuf, s->env->flag_key, fl);
			memcpy(keybuf + fl, tk.s.p, tk.s.len);
			key = keybuf;
		} else {
			sb_add(&b, s->env->flag_key, fl);
			sb_add(&b, tk.s.p, tk.s.len);
			if (b.fail)
				return oom(s);
			key = b.p;
		}
		klen = fl + tk.s.len;
	}
	if (n->n - from < 1)
		return 0;
	/* the distributions: evaluated, checked, summed */
	uint64_t total = 0;
	size_t nd = n->n - from;
	struct logic_value names[64];
	uint64_t weights[64];
	if (nd > 64)
		return 0;
	for (size_t i = 0; i < nd; i++) {
		struct logic_value d;
		if (eval(s, n->args[from + i], &d))
			return -1;
		if (!is_array(&d) || arr_len(&d) < 1 || arr_len(&d) > 2)
			return 0;
		names[i] = arr_get(&d, 0);
		if (names[i].t != LOGIC_STR)
			return 0;
		weights[i] = 1;
		if (arr_len(&d) == 2) {
			struct logic_value w = arr_get(&d, 1);
			if (w.t != LOGIC_NUM || !(w.n >= 0) || w.n != floor(w.n) || w.n > 2147483647.0)
				return 0;
			weights[i] = (uint64_t)w.n;
		}
		total += weights[i];
	}
	if (!total)
		return 0;
	uint64_t bucket = ((uint64_t)murmur3_32(key, klen, 0) * total) >> 32;
	uint64_t sum = 0;
	for (size_t i = 0; i < nd; i++) {
		sum += weights[i];
		if (sum > bucket) {
			*out = names[i];
			return 0;
		}
	}
	return 0;
}

/* ---- the rest of JsonLogic ---- */

static int op_arith(struct state *s, const struct node *n, struct logic_value *out)
{
	struct logic_value x, y;
	switch (n->op) {
	case OP_ADD:
	case OP_MUL: {
		double acc = n->op == OP_ADD ? 0 : 1;
		for (size_t i = 0; i < n->n; i++) {
			if (eval(s, n->args[i], &x))
				return -1;
			double v = parse_float(&x);
			acc = n->op == OP_ADD ? acc + v : acc * v;
		}
		if (n->op == OP_MUL && !n->n)
			acc = NAN; /* json-logic-js reduces without an initial value */
		*out = v_num(acc);
		return 0;
	}
	case OP_SUB:
		if (arg(s, n, 0, &x) || arg(s, n, 1, &y))
			return -1;
		*out = v_num(n->n < 2 ? -to_num(s->a, x) : to_num(s->a, x) - to_num(s->a, y));
		return 0;
	case OP_DIV:
	case OP_MOD:
		if (arg(s, n, 0, &x) || arg(s, n, 1, &y))
			return -1;
		*out = v_num(n->op == OP_DIV ? to_num(s->a, x) / to_num(s->a, y) : fmod(to_num(s->a, x), to_num(s->a, y)));
		return 0;
	case OP_MAX:
	case OP_MIN: {
		double acc = n->op == OP_MAX ? -INFINITY : INFINITY;
		for (size_t i = 0; i < n->n; i++) {
			if (eval(s, n->args[i], &x))
				return -1;
			double v = to_num(s->a, x);
			if (isnan(v) || isnan(acc))
				acc = NAN;
			else
				acc = n->op == OP_MAX ? fmax(acc, v) : fmin(acc, v);
		}
		*out = v_num(acc);
		return 0;
	}
	default:
		return -1;
	}
}

static int op_compare(struct state *s, const struct node *n, struct logic_value *out)
{
	struct logic_value a, b, c;
	if (arg(s, n, 0, &a) || arg(s, n, 1, &b))
		return -1;
	int r = compare(s->a, a, b), ok;
	switch (n->op) {
	case OP_GT: ok = r == 1; break;
	case OP_GE: ok = r == 1 || r == 0; break;
	case OP_LT: ok = r == -1; break;
	default: ok = r == -1 || r == 0; break;
	}
	if ((n->op == OP_LT || n->op == OP_LE) && n->n == 3) {
		/* between: a < b < c */
		if (arg(s, n, 2, &c))
			return -1;
		int r2 = compare(s->a, b, c);
		ok = ok && (n->op == OP_LT ? r2 == -1 : (r2 == -1 || r2 == 0));
	}
	*out = v_bool(ok);
	return 0;
}

static int op_in(struct state *s, const struct node *n, struct logic_value *out)
{
	struct logic_value a, b;
	if (arg(s, n, 0, &a) || arg(s, n, 1, &b))
		return -1;
	if (b.t == LOGIC_STR) {
		struct sb t = {.a = s->a};
		add_text(&t, &a, 1, 0);
		if (t.fail)
			return oom(s);
		int found = 0;
		if (t.len == 0)
			found = 1;
		else if (t.len <= b.s.len)
			found = memmem(b.s.p, b.s.len, t.p, t.len) != NULL;
		*out = v_bool(found);
		return 0;
	}
	int found = 0;
	if (is_array(&b))
		for (size_t i = 0; i < arr_len(&b) && !found; i++) {
			struct logic_value e = arr_get(&b, i);
			found = strict_eq(&a, &e);
		}
	*out = v_bool(found);
	return 0;
}

static int op_cat(struct state *s, const struct node *n, struct logic_value *out)
{
	struct sb b = {.a = s->a};
	for (size_t i = 0; i < n->n; i++) {
		struct logic_value v;
		if (eval(s, n->args[i], &v))
			return -1;
		add_text(&b, &v, 0, 0);
	}
	if (b.fail)
		return oom(s);
	*out = v_str(b.p ? b.p : "", b.len);
	return 0;
}

static int op_substr(struct state *s, const struct node *n, struct logic_value *out)
{
	struct logic_value src, st, ln;
	if (arg(s, n, 0, &src) || arg(s, n, 1, &st) || arg(s, n, 2, &ln))
		return -1;
	struct sb b = {.a = s->a};
	add_text(&b, &src, 1, 0);
	if (b.fail)
		return oom(s);
	long long len = (long long)b.len;
	double sd = to_num(s->a, st);
	long long start = isnan(sd) ? 0 : (long long)sd;
	if (start < 0)
		start = len + start < 0 ? 0 : len + start;
	if (start > len)
		start = len;
	long long count = len - start;
	if (n->n > 2) {
		double ld = to_num(s->a, ln);
		long long l = isnan(ld) ? 0 : (long long)ld;
		count = l < 0 ? (count + l < 0 ? 0 : count + l) : (l < count ? l : count);
	}
	*out = v_str(b.p ? b.p + start : "", (size_t)count);
	return 0;
}

static int op_merge(struct state *s, const struct node *n, struct logic_value *out)
{
	struct logic_value all;
	if (eval_all(s, n, &all))
		return -1;
	size_t total = 0;
	for (size_t i = 0; i < all.l.n; i++)
		total += is_array(&all.l.items[i]) ? arr_len(&all.l.items[i]) : 1;
	struct logic_value *items = list_alloc(s, total);
	if (!items)
		return oom(s);
	size_t k = 0;
	for (size_t i = 0; i < all.l.n; i++) {
		const struct logic_value *v = &all.l.items[i];
		if (is_array(v))
			for (size_t j = 0; j < arr_len(v); j++)
				items[k++] = arr_get(v, j);
		else
			items[k++] = *v;
	}
	return make_list(s, items, k, out);
}

/* map, filter, all, none, some, reduce: the second argument evaluated with each element as
 * the data. */
static int op_iter(struct state *s, const struct node *n, struct logic_value *out)
{
	struct logic_value arr;
	if (arg(s, n, 0, &arr))
		return -1;
	size_t len = is_array(&arr) ? arr_len(&arr) : 0;
	struct state inner = *s;
	if (n->op == OP_REDUCE) {
		struct logic_value acc;
		if (arg(s, n, 2, &acc))
			return -1;
		for (size_t i = 0; i < len; i++) {
			struct logic_value cur = arr_get(&arr, i), next;
			inner.cur = &cur;
			inner.acc = &acc;
			inner.data = v_null;
			if (n->n < 2)
				next = v_null;
			else if (eval(&inner, n->args[1], &next))
				return -1;
			acc = next;
		}
		*out = acc;
		return 0;
	}
	struct logic_value *items = NULL;
	if (n->op == OP_MAP || n->op == OP_FILTER) {
		items = list_alloc(s, len);
		if (!items)
			return oom(s);
	}
	size_t k = 0;
	int any = 0, every = 1;
	for (size_t i = 0; i < len; i++) {
		struct logic_value el = arr_get(&arr, i), r;
		inner.data = el;
		inner.cur = NULL;
		inner.acc = NULL;
		if (n->n < 2)
			r = v_null;
		else if (eval(&inner, n->args[1], &r))
			return -1;
		int t = logic_truthy(&r);
		if (n->op == OP_MAP)
			items[k++] = r;
		else if (n->op == OP_FILTER && t)
			items[k++] = el;
		any |= t;
		every &= t;
	}
	switch (n->op) {
	case OP_MAP:
	case OP_FILTER:
		return make_list(s, items, k, out);
	case OP_ALL:
		*out = v_bool(len && every);
		return 0;
	case OP_NONE:
		*out = v_bool(!any);
		return 0;
	default:
		*out = v_bool(any);
		return 0;
	}
}

static int eval(struct state *s, const struct node *n, struct logic_value *out)
{
	if (++s->depth > LOGIC_MAX_DEPTH * 4) {
		s->depth--;
		return err_set(s->e, "the rule nests too deep to evaluate");
	}
	int rc = 0;
	struct logic_value a, b;
	switch (n->op) {
	case OP_LIT:
		*out = n->lit;
		break;
	case OP_ARRAY:
		rc = eval_all(s, n, out);
		break;
	case OP_VAR:
		rc = op_var(s, n, out);
		break;
	case OP_MISSING:
		if (n->n == 1) {
			rc = arg(s, n, 0, &a);
			if (!rc && !is_array(&a)) {
				struct logic_value one[1] = {a};
				make_list(s, one, 1, &b);
				rc = missing_of(s, &b, out);
			} else if (!rc) {
				rc = missing_of(s, &a, out);
			}
		} else {
			rc = eval_all(s, n, &a);
			if (!rc)
				rc = missing_of(s, &a, out);
		}
		break;
	case OP_MISSING_SOME: {
		struct logic_value need, keys;
		rc = arg(s, n, 0, &need) || arg(s, n, 1, &keys);
		if (rc)
			break;
		if (!is_array(&keys)) {
			*out = v_null;
			break;
		}
		rc = missing_of(s, &keys, out);
		if (!rc && (double)(arr_len(&keys) - out->l.n) >= to_num(s->a, need))
			make_list(s, NULL, 0, out);
		break;
	}
	case OP_IF: {
		size_t i = 0;
		*out = v_null;
		for (; i + 1 < n->n; i += 2) {
			if ((rc = eval(s, n->args[i], &a)))
				break;
			if (logic_truthy(&a)) {
				rc = eval(s, n->args[i + 1], out);
				goto done;
			}
		}
		if (!rc && i + 1 == n->n)
			rc = eval(s, n->args[i], out);
		break;
	}
	case OP_EQ:
	case OP_NE:
	case OP_SEQ:
	case OP_SNE:
		rc = arg(s, n, 0, &a) || arg(s, n, 1, &b);
		if (!rc) {
			int eq = n->op == OP_EQ || n->op == OP_NE ? loose_eq(s->a, a, b, 0) : strict_eq(&a, &b);
			*out = v_bool(n->op == OP_EQ || n->op == OP_SEQ ? eq : !eq);
		}
		break;
	case OP_NOT:
	case OP_NOTNOT:
		rc = arg(s, n, 0, &a);
		if (!rc)
			*out = v_bool(n->op == OP_NOT ? !logic_truthy(&a) : logic_truthy(&a));
		break;
	case OP_OR:
	case OP_AND:
		*out = v_null;
		for (size_t i = 0; i < n->n; i++) {
			if ((rc = eval(s, n->args[i], out)))
				break;
			if (logic_truthy(out) == (n->op == OP_OR))
				break;
		}
		break;
	case OP_GT:
	case OP_GE:
	case OP_LT:
	case OP_LE:
		rc = op_compare(s, n, out);
		break;
	case OP_MAX:
	case OP_MIN:
	case OP_ADD:
	case OP_SUB:
	case OP_MUL:
	case OP_DIV:
	case OP_MOD:
		rc = op_arith(s, n, out);
		break;
	case OP_IN:
		rc = op_in(s, n, out);
		break;
	case OP_CAT:
		rc = op_cat(s, n, out);
		break;
	case OP_SUBSTR:
		rc = op_substr(s, n, out);
		break;
	case OP_MERGE:
		rc = op_merge(s, n, out);
		break;
	case OP_MAP:
	case OP_FILTER:
	case OP_REDUCE:
	case OP_ALL:
	case OP_NONE:
	case OP_SOME:
		rc = op_iter(s, n, out);
		break;
	case OP_FRACTIONAL:
		rc = op_fractional(s, n, out);
		break;
	case OP_SEMVER:
		rc = op_semver(s, n, out);
		break;
	case OP_STARTS:
	case OP_ENDS:
		rc = op_affix(s, n, n->op == OP_STARTS, out);
		break;
	case OP_INVALID:
		rc = err_set(s->e, "the rule cannot be evaluated");
		break;
	}
done:
	s->depth--;
	return rc ? -1 : 0;
}

int logic_eval(const logic *l, const struct logic_env *env, struct logic_arena *a,
	       struct logic_value *out, struct err *e)
{
	struct state s = {.env = env, .a = a, .e = e};
	if (env->context)
		lit_of(env->context, &s.data);
	else
		s.data = v_null;
	if (eval(&s, l->root, out)) {
		if (l->warning[0] && !strcmp(e->msg, "the rule cannot be evaluated"))
			err_set(e, "the rule cannot be evaluated: %s", l->warning);
		return -1;
	}
	return 0;
}

json_t *logic_to_json(const struct logic_value *v)
{
	switch (v->t) {
	case LOGIC_NULL:
		return json_null();
	case LOGIC_BOOL:
		return json_boolean(v->b);
	case LOGIC_NUM:
		if (!isfinite(v->n))
			return json_null();
		if (v->n == floor(v->n) && fabs(v->n) < 9007199254740992.0)
			return json_integer((json_int_t)v->n);
		return json_real(v->n);
	case LOGIC_STR:
		return json_stringn(v->s.p, v->s.len);
	case LOGIC_JSON:
		return json_deep_copy(v->j);
	case LOGIC_LIST: {
		json_t *a = json_array();
		for (size_t i = 0; a && i < v->l.n; i++)
			json_array_append_new(a, logic_to_json(&v->l.items[i]));
		return a;
	}
	}
	return NULL;
}
