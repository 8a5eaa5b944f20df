/*
 * valid: errors of validators that read documents from files (doc, with positions) and from
 * JSON values received over the API (no positions, only a field path).
 *
 * Every message reads "FILE:LINE:COL: FIELD: what is wrong" when a doc is known and
 * "NAME: FIELD: what is wrong" otherwise. FIELD is a dotted path such as
 * `consumes.metadata[0].reads[1].path`, so the same mistake reads the same from both sources.
 * The formatting is util/shape's (shape_fail), the one every validator of sluice shares; this
 * is its face for the hand-written OpenAPI and contract checks, which name the root
 * "(top level)".
 */
#ifndef SLUICE_CONTRACT_VALID_H
#define SLUICE_CONTRACT_VALID_H

#include <jansson.h>
#include <stddef.h>

#include "util/doc.h"
#include "util/log.h"

struct valid {
	const doc *d;     /* may be NULL */
	const char *name; /* file or source name, used when d is NULL */
	struct err *e;
};

/* Each formats the error into v->e and returns -1. The position is that of the key `key` of
 * `obj` (valid_key), of its value (valid_value), of element i of `arr` (valid_index), or of
 * the container itself (valid_node). */
__attribute__((format(printf, 5, 6))) int valid_key(const struct valid *v, const json_t *obj, const char *key,
						    const char *field, const char *fmt, ...);
__attribute__((format(printf, 5, 6))) int valid_value(const struct valid *v, const json_t *obj, const char *key,
						      const char *field, const char *fmt, ...);
__attribute__((format(printf, 5, 6))) int valid_index(const struct valid *v, const json_t *arr, size_t i,
						      const char *field, const char *fmt, ...);
__attribute__((format(printf, 4, 5))) int valid_node(const struct valid *v, const json_t *node, const char *field,
						     const char *fmt, ...);

#endif
