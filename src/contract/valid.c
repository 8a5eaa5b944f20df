#include "contract/valid.h"

#include <stdarg.h>
#include <stdio.h>

static int report(const struct valid *v, struct doc_pos pos, const char *field, const char *fmt, va_list ap)
{
	char msg[ERR_MSG_MAX];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	const char *f = field && *field ? field : "(top level)";
	if (v->d && pos.line)
		return doc_error(v->d, pos, v->e, "%s: %s", f, msg);
	return err_set(v->e, "%s: %s: %s", v->d ? doc_name(v->d) : v->name ? v->name : "contract", f, msg);
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
