#include "contract/valid.h"

#include <stdarg.h>
#include <stdio.h>

#include "util/shape.h"

/* The messages are util/shape's, with "(top level)" naming the root. */
static int report(const struct valid *v, struct doc_pos pos, const char *field, const char *fmt, va_list ap)
{
	char msg[ERR_MSG_MAX];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	struct shape_ctx c = {
		.d = v->d,
		.label = v->name ? v->name : "contract",
		.top = "(top level)",
		.e = v->e,
	};
	return shape_fail(&c, pos, field, "%s", msg);
}

int valid_key(const struct valid *v, const json_t *obj, const char *key, const char *field, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	struct doc_pos pos = v->d ? doc_key_pos(v->d, obj, key) : (struct doc_pos){0, 0};
	int rc = report(v, pos, field, fmt, ap);
	va_end(ap);
	return rc;
}

int valid_value(const struct valid *v, const json_t *obj, const char *key, const char *field, const char *fmt,
		...)
{
	va_list ap;
	va_start(ap, fmt);
	struct doc_pos pos = v->d ? doc_value_pos(v->d, obj, key) : (struct doc_pos){0, 0};
	int rc = report(v, pos, field, fmt, ap);
	va_end(ap);
	return rc;
}

int valid_index(const struct valid *v, const json_t *arr, size_t i, const char *field, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	struct doc_pos pos = v->d ? doc_index_pos(v->d, arr, i) : (struct doc_pos){0, 0};
	int rc = report(v, pos, field, fmt, ap);
	va_end(ap);
	return rc;
}

int valid_node(const struct valid *v, const json_t *node, const char *field, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	struct doc_pos pos = v->d ? doc_node_pos(v->d, node) : (struct doc_pos){0, 0};
	int rc = report(v, pos, field, fmt, ap);
	va_end(ap);
	return rc;
}
