#include "util/doc.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util/buf.h"

/* One remembered place: either a container itself (key NULL, index SIZE_MAX), a key of an
 * object, or an element of an array. */
struct place {
	const json_t *parent;
	char *key;
	size_t index;
	struct doc_pos kpos;
	struct doc_pos vpos;
};

struct doc {
	char *name;
	json_t **roots;
	size_t nroots;
	struct place *places;
	size_t nplaces, capplaces;
};

static struct doc_pos mark_pos(yaml_mark_t m)
{
	struct doc_pos p = {(int)m.line + 1, (int)m.column + 1};
	return p;
}

static int add_place(doc *d, const json_t *parent, const char *key, size_t index,
		     struct doc_pos kpos, struct doc_pos vpos)
{
	if (d->nplaces == d->capplaces) {
		size_t cap = d->capplaces ? d->capplaces * 2 : 64;
		struct place *p = realloc(d->places, cap * sizeof(*p));
		if (!p)
			return -1;
		d->places = p;
		d->capplaces = cap;
	}
	struct place *pl = &d->places[d->nplaces];
	pl->parent = parent;
	pl->key = key ? strdup(key) : NULL;
	if (key && !pl->key)
		return -1;
	pl->index = index;
	pl->kpos = kpos;
	pl->vpos = vpos;
	d->nplaces++;
	return 0;
}

int doc_error(const doc *d, struct doc_pos pos, struct err *e, const char *fmt, ...)
{
	if (!e)
		return -1;
	char msg[ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (pos.line > 0)
		return err_set(e, "%s:%d:%d: %s", d->name, pos.line, pos.col, msg);
	return err_set(e, "%s: %s", d->name, msg);
}

struct parser {
	doc *d;
	yaml_parser_t yp;
	size_t nodes;
	struct err *e;
};

static int next_event(struct parser *p, yaml_event_t *ev)
{
	if (!yaml_parser_parse(&p->yp, ev)) {
		struct doc_pos pos = mark_pos(p->yp.problem_mark);
		return doc_error(p->d, pos, p->e, "invalid YAML: %s%s%s",
				 p->yp.problem ? p->yp.problem : "syntax error",
				 p->yp.context ? " " : "", p->yp.context ? p->yp.context : "");
	}
	return 0;
}

static int is_one_of(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(s, *list))
			return 1;
	return 0;
}

/* Resolves a plain scalar by the YAML 1.2 core schema. */
static json_t *plain_scalar(const char *s, size_t len)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
	static const char *const trues[] = {"true", "True", "TRUE", NULL};
	static const char *const falses[] = {"false", "False", "FALSE", NULL};
	if (strlen(s) != len)
		return json_stringn(s, len);
	if (is_one_of(s, nulls))
		return json_null();
	if (is_one_of(s, trues))
		return json_true();
	if (is_one_of(s, falses))
		return json_false();
	const char *q = s;
	if (*q == '-' || *q == '+')
		q++;
	if (*q >= '0' && *q <= '9') {
		char *end;
		errno = 0;
		if (q[0] == '0' && (q[1] == 'x' || q[1] == 'o') && s == q) {
			long long v = strtoll(q + 2, &end, q[1] == 'x' ? 16 : 8);
			if (*end == '\0' && end != q + 2 && errno == 0)
				return json_integer(v);
		}
		int digits_only = 1;
		for (const char *c = q; *c; c++)
			if (*c < '0' || *c > '9')
				digits_only = 0;
		if (digits_only) {
			long long v = strtoll(s, &end, 10);
			if (*end == '\0' && errno == 0)
				return json_integer(v);
			return json_string(s);
		}
		double dv = strtod(s, &end);
		if (*end == '\0' && errno == 0 && strspn(q, "0123456789.eE+-") == strlen(q))
			return json_real(dv);
		return json_string(s);
	}
	if (*q == '.' && q[1] >= '0' && q[1] <= '9') {
		char *end;
		double dv = strtod(s, &end);
		if (*end == '\0')
			return json_real(dv);
	}
	static const char *const infs[] = {".inf", ".Inf", ".INF", NULL};
	static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
	if (is_one_of(q, infs))
		return json_real(*s == '-' ? -INFINITY : INFINITY);
	if (is_one_of(s, nans))
		return json_real(NAN);
	return json_string(s);
}

static int parse_node(struct parser *p, yaml_event_t *ev, int depth, json_t **out);

static int check_node(struct parser *p, yaml_event_t *ev, int depth)
{
	if (depth > DOC_MAX_DEPTH)
		return doc_error(p->d, mark_pos(ev->start_mark), p->e,
				 "nesting deeper than %d levels", DOC_MAX_DEPTH);
	if (++p->nodes > DOC_MAX_NODES)
		return doc_error(p->d, mark_pos(ev->start_mark), p->e, "more than %d values",
				 DOC_MAX_NODES);
	return 0;
}

static json_t *scalar_value(yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	const char *tag = (const char *)ev->data.scalar.tag;
	if (tag && !strcmp(tag, "tag:yaml.org,2002:str"))
		return json_stringn(s, len);
	if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
		return plain_scalar(s, len);
	return json_stringn(s, len);
}

static int parse_mapping(struct parser *p, int depth, json_t *obj)
{
	for (;;) {
		yaml_event_t kev;
		if (next_event(p, &kev))
			return -1;
		if (kev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&kev);
			return 0;
		}
		struct doc_pos kpos = mark_pos(kev.start_mark);
		if (kev.type != YAML_SCALAR_EVENT) {
			yaml_event_delete(&kev);
			return doc_error(p->d, kpos, p->e, "mapping keys must be plain strings");
		}
		char *key = strndup((const char *)kev.data.scalar.value, kev.data.scalar.length);
		yaml_event_delete(&kev);
		if (!key)
			return doc_error(p->d, kpos, p->e, "out of memory");
		if (!strcmp(key, "<<")) {
			free(key);
			return doc_error(p->d, kpos, p->e, "merge keys ('<<') are not supported");
		}
		if (json_object_get(obj, key)) {
			int rc = doc_error(p->d, kpos, p->e, "duplicate key '%s'", key);
			free(key);
			return rc;
		}
		yaml_event_t vev;
		json_t *val = NULL;
		if (next_event(p, &vev)) {
			free(key);
			return -1;
		}
		struct doc_pos vpos = mark_pos(vev.start_mark);
		int rc = parse_node(p, &vev, depth + 1, &val);
		if (rc == 0 && (json_object_set_new(obj, key, val) ||
				add_place(p->d, obj, key, SIZE_MAX, kpos, vpos)))
			rc = doc_error(p->d, kpos, p->e, "out of memory");
		free(key);
		if (rc)
			return rc;
	}
}

static int parse_sequence(struct parser *p, int depth, json_t *arr)
{
	for (;;) {
		yaml_event_t ev;
		if (next_event(p, &ev))
			return -1;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			return 0;
		}
		struct doc_pos vpos = mark_pos(ev.start_mark);
		json_t *val = NULL;
		if (parse_node(p, &ev, depth + 1, &val))
			return -1;
		size_t idx = json_array_size(arr);
		if (json_array_append_new(arr, val) || add_place(p->d, arr, NULL, idx, vpos, vpos))
			return doc_error(p->d, vpos, p->e, "out of memory");
	}
}

/* Consumes ev (and, for containers, every event up to the matching end). */
static int parse_node(struct parser *p, yaml_event_t *ev, int depth, json_t **out)
{
	struct doc_pos pos = mark_pos(ev->start_mark);
	int rc = check_node(p, ev, depth);
	json_t *v = NULL;
	if (rc == 0) {
		switch (ev->type) {
		case YAML_ALIAS_EVENT:
			rc = doc_error(p->d, pos, p->e, "aliases ('*name') are not supported");
			break;
		case YAML_SCALAR_EVENT:
			v = scalar_value(ev);
			if (!v)
				rc = doc_error(p->d, pos, p->e, "invalid scalar");
			break;
		case YAML_MAPPING_START_EVENT:
			v = json_object();
			rc = add_place(p->d, v, NULL, SIZE_MAX, pos, pos);
			break;
		case YAML_SEQUENCE_START_EVENT:
			v = json_array();
			rc = add_place(p->d, v, NULL, SIZE_MAX, pos, pos);
			break;
		default:
			rc = doc_error(p->d, pos, p->e, "unexpected YAML event");
		}
	}
	yaml_event_type_t type = ev->type;
	yaml_event_delete(ev);
	if (rc == 0 && type == YAML_MAPPING_START_EVENT)
		rc = parse_mapping(p, depth, v);
	else if (rc == 0 && type == YAML_SEQUENCE_START_EVENT)
		rc = parse_sequence(p, depth, v);
	if (rc) {
		json_decref(v);
		return -1;
	}
	*out = v;
	return 0;
}

static void doc_clear_places(doc *d)
{
	for (size_t i = 0; i < d->nplaces; i++)
		free(d->places[i].key);
	free(d->places);
	d->places = NULL;
	d->nplaces = d->capplaces = 0;
}

void doc_free(doc *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->nroots; i++)
		json_decref(d->roots[i]);
	free(d->roots);
	doc_clear_places(d);
	free(d->name);
	free(d);
}

int doc_parse(const char *name, const char *text, size_t len, doc **out, struct err *e)
{
	doc *d = calloc(1, sizeof(*d));
	if (!d || !(d->name = strdup(name))) {
		free(d);
		return err_set(e, "%s: out of memory", name);
	}
	if (len > DOC_MAX_BYTES) {
		int rc = doc_error(d, (struct doc_pos){0, 0}, e, "larger than %u bytes", DOC_MAX_BYTES);
		doc_free(d);
		return rc;
	}
	struct parser p = {.d = d, .e = e};
	yaml_parser_initialize(&p.yp);
	yaml_parser_set_input_string(&p.yp, (const unsigned char *)text, len);
	int rc = 0;
	for (;;) {
		yaml_event_t ev;
		if ((rc = next_event(&p, &ev)))
			break;
		if (ev.type == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		if (ev.type != YAML_DOCUMENT_START_EVENT) {
			yaml_event_delete(&ev);
			continue;
		}
		yaml_event_delete(&ev);
		if ((rc = next_event(&p, &ev)))
			break;
		json_t *root = NULL;
		if ((rc = parse_node(&p, &ev, 0, &root)))
			break;
		json_t **roots = realloc(d->roots, (d->nroots + 1) * sizeof(*roots));
		if (!roots) {
			json_decref(root);
			rc = err_set(e, "%s: out of memory", name);
			break;
		}
		d->roots = roots;
		d->roots[d->nroots++] = root;
		if ((rc = next_event(&p, &ev))) /* DOCUMENT-END */
			break;
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p.yp);
	if (rc) {
		doc_free(d);
		return -1;
	}
	*out = d;
	return 0;
}

int doc_load(const char *path, doc **out, struct err *e)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	if (!f)
		return err_set(e, "could not open '%s': %s", path, strerror(errno));
	struct buf b;
	buf_init(&b, DOC_MAX_BYTES);
	char chunk[65536];
	size_t n;
	int rc = 0;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_add(&b, chunk, n)) {
			rc = err_set(e, "%s: larger than %u bytes", path, DOC_MAX_BYTES);
			break;
		}
	if (!rc && ferror(f))
		rc = err_set(e, "could not read '%s': %s", path, strerror(errno));
	if (f != stdin)
		fclose(f);
	if (!rc)
		rc = doc_parse(path, b.data, b.len, out, e);
	buf_release(&b);
	return rc;
}

const char *doc_name(const doc *d)
{
	return d->name;
}

size_t doc_count(const doc *d)
{
	return d->nroots;
}

json_t *doc_root(const doc *d, size_t i)
{
	return i < d->nroots ? d->roots[i] : NULL;
}

static const struct place *find_place(const doc *d, const json_t *parent, const char *key,
				      size_t index)
{
	for (size_t i = 0; i < d->nplaces; i++) {
		const struct place *pl = &d->places[i];
		if (pl->parent != parent)
			continue;
		if (key ? (pl->key && !strcmp(pl->key, key)) : (!pl->key && pl->index == index))
			return pl;
	}
	return NULL;
}

struct doc_pos doc_node_pos(const doc *d, const json_t *container)
{
	const struct place *pl = find_place(d, container, NULL, SIZE_MAX);
	return pl ? pl->vpos : (struct doc_pos){0, 0};
}

struct doc_pos doc_key_pos(const doc *d, const json_t *obj, const char *key)
{
	const struct place *pl = find_place(d, obj, key, SIZE_MAX);
	return pl ? pl->kpos : doc_node_pos(d, obj);
}

struct doc_pos doc_value_pos(const doc *d, const json_t *obj, const char *key)
{
	const struct place *pl = find_place(d, obj, key, SIZE_MAX);
	return pl ? pl->vpos : doc_node_pos(d, obj);
}

struct doc_pos doc_index_pos(const doc *d, const json_t *arr, size_t i)
{
	const struct place *pl = find_place(d, arr, NULL, i);
	return pl ? pl->vpos : doc_node_pos(d, arr);
}
