/*
 * doc: YAML (and therefore JSON) documents parsed into jansson values that remember where
 * every value came from, so that validators can report file:line:column.
 *
 * A doc owns its roots: one per YAML document in the stream ("---" separates them). Scalars
 * follow the YAML 1.2 core schema: plain `null`/`~`/empty -> null, `true`/`false` -> booleans,
 * decimal/0x/0o integers -> integers, decimals with a point or exponent and .inf/.nan -> reals,
 * anything quoted or otherwise -> strings. Aliases, merge keys, duplicate keys, non-scalar keys
 * and tags other than the core ones are rejected: manifests and contracts do not need them and
 * they make the meaning of a file depend on more than its text.
 *
 * Positions are 1-based. Because jansson shares its null/true/false singletons, positions are
 * looked up by place (container + key or index), never by scalar pointer.
 */
#ifndef SLUICE_DOC_H
#define SLUICE_DOC_H

#include <jansson.h>
#include <stddef.h>

#include "util/log.h"

typedef struct doc doc;

struct doc_pos {
	int line;
	int col;
};

/* Limits that protect the parser from hostile input. */
#define DOC_MAX_BYTES (16u << 20)
#define DOC_MAX_DEPTH 128
#define DOC_MAX_NODES 2000000

/*
 * Parses text (len bytes, need not be NUL-terminated). `name` is used in messages and kept.
 * On failure returns -1 and writes "NAME:LINE:COL: message" into e; *out is untouched.
 */
__attribute__((warn_unused_result)) int doc_parse(const char *name, const char *text, size_t len,
						  doc **out, struct err *e);
/* Reads and parses a file ("-" is stdin). */
__attribute__((warn_unused_result)) int doc_load(const char *path, doc **out, struct err *e);
void doc_free(doc *d);

const char *doc_name(const doc *d);
size_t doc_count(const doc *d);
json_t *doc_root(const doc *d, size_t i); /* borrowed */

/* Where a container starts; where key `key` of object `obj` is; where its value is; where
 * element `i` of array `arr` is. Unknown places give {0, 0}. */
struct doc_pos doc_node_pos(const doc *d, const json_t *container);
struct doc_pos doc_key_pos(const doc *d, const json_t *obj, const char *key);
struct doc_pos doc_value_pos(const doc *d, const json_t *obj, const char *key);
struct doc_pos doc_index_pos(const doc *d, const json_t *arr, size_t i);

/* Formats "NAME:LINE:COL: message" into e and returns -1. */
__attribute__((format(printf, 4, 5))) int doc_error(const doc *d, struct doc_pos pos, struct err *e,
						    const char *fmt, ...);

#endif
