/*
 * shape: one table-driven walker that checks the shape of a JSON value (keys, types, limits,
 * defaults) and normalizes it, for every input sluice reads as a tree: YAML manifests, stored
 * manifests, contracts and the API's JSON bodies.
 *
 * (Not to be confused with contract/schema.h, which evaluates OpenAPI Schema Objects.)
 *
 * A mapping is described by a table of struct shape_field, ended by an entry whose key is NULL.
 * The walker checks the keys present in input order (so the first error is the first one in
 * the file), refuses unknown keys (with a "did you mean" hint for typos), then fills absent
 * keys from their defaults and emits the keys in table order, so that the normalized JSON of
 * two equal inputs is byte-for-byte equal.
 *
 * Modes (struct shape_ctx.mode):
 *   SHAPE_SOURCE  text people write (YAML): durations as "1m30s" or integer milliseconds,
 *                 scalars coerced to strings where a field says so (`PORT: 8080`), absent
 *                 optional keys take their default, an explicit null is an error.
 *   SHAPE_STORED  the normalized form as stored: durations are integers under "KEY_ms", every
 *                 key is present, null only where a field is nullable, no coercion.
 *   SHAPE_STRICT  JSON received over the API: strict types (a string where a boolean is
 *                 expected is an error), absent optional keys take their default, null only
 *                 where nullable; durations as text or integer milliseconds.
 * Whatever the mode, the output is the normalized form (durations as integers under "KEY_ms").
 *
 * Errors: every check returns 0 or -1 with one message in ctx->e:
 *   "FILE:LINE:COL: PATH: what"     when ctx->d is set (the input is a doc's tree, util/doc.h)
 *   "LABEL: PATH: what"             otherwise
 *   "LABEL: field 'PATH': what"     otherwise with ctx->fields set (API bodies)
 * PATH is dotted with indexes (`strategy.steps[2]`, `run.env.PORT`); at the top level it is
 * ctx->top, or left out when that is NULL. Positions are looked up by place (container + key
 * or index, struct shape_at) because jansson shares its scalar singletons.
 *
 * Ownership: inputs are borrowed and never changed; *out receives a new reference, and is
 * untouched on failure. Pure: no I/O, no global state.
 */
#ifndef SLUICE_SHAPE_H
#define SLUICE_SHAPE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/doc.h"
#include "util/log.h"
#include "util/name.h"

/* Hard limits that apply unless a field sets its own. */
#define SHAPE_MAX_STRING 4096 /* bytes of one string */
#define SHAPE_MAX_ITEMS 1024  /* entries of one list or mapping */
#define SHAPE_PATH_MAX 256    /* bytes of a field path in messages (longer ones are cut) */

enum shape_mode {
	SHAPE_SOURCE,
	SHAPE_STORED,
	SHAPE_STRICT,
};

struct shape_ctx {
	const doc *d;         /* positions of the input's nodes, or NULL */
	enum shape_mode mode;
	const char *label;    /* names the input when there is no doc: "Service 'web'" */
	const char *top;      /* the path of the top level in messages, NULL to leave it out */
	const char *stored;   /* what a stored value is, for "(a normalized X has every key)" */
	int fields;           /* say "field 'PATH'" and "unknown field" (API bodies) */
	struct err *e;
};

enum shape_type {
	SHAPE_STRING,   /* 1..max bytes (max 0: SHAPE_MAX_STRING; .empty_ok allows ""), no NUL,
			 * then .check; .coerce: scalars become strings in SHAPE_SOURCE */
	SHAPE_NAME,     /* a name of kind .name (util/name.h) */
	SHAPE_ENUM,     /* one of .choices (NULL-terminated) */
	SHAPE_BOOL,
	SHAPE_INT,      /* integer in [min, max] */
	SHAPE_NUMBER,   /* integer or real in [dmin, dmax], normalized to a real */
	SHAPE_DURATION, /* milliseconds in [min, max]; normalized key gets "_ms" */
	SHAPE_OBJECT,   /* a mapping described by .sub */
	SHAPE_LIST,     /* min..max elements (max 0: SHAPE_MAX_ITEMS), each checked by .elem */
	SHAPE_MAP,      /* at most max entries; keys follow name rule .name, values .elem */
	SHAPE_CUSTOM,   /* checked by .custom */
};

struct shape_at;
struct shape_field;

typedef int (*shape_custom_fn)(const struct shape_ctx *c, struct shape_at a, const char *path,
			       const struct shape_field *f, const json_t *v, json_t **out);

struct shape_field {
	const char *key; /* as written in the input; NULL ends a table */
	enum shape_type type;
	unsigned required : 1;
	unsigned nullable : 1; /* null accepted outside SHAPE_SOURCE (then the default is "null") */
	unsigned coerce : 1;   /* SHAPE_STRING: numbers and booleans become strings in SOURCE */
	unsigned empty_ok : 1; /* SHAPE_STRING: "" accepted */
	unsigned unique : 1;   /* SHAPE_LIST of strings or names: no value twice */
	const char *def;       /* default as JSON text (durations in ms); NULL: none */
	long long min, max;
	double dmin, dmax;
	const char *const *choices;
	enum name_kind name;
	const struct shape_field *sub;  /* SHAPE_OBJECT */
	const struct shape_field *elem; /* SHAPE_LIST, SHAPE_MAP */
	const char *unique_key;         /* SHAPE_LIST of objects: this key's values are distinct */
	const char *item;               /* ... and an element is called this ("region") */
	const char *noun;               /* SHAPE_LIST, SHAPE_MAP: "at most 32 checks" */
	int (*check)(const char *s);
	shape_custom_fn custom;
	const char *what; /* what is expected, for messages ("an integer port 1..65535") */
};

/* Where a value sits: the value of `key` in `parent`, element `index` of `parent`, or (parent
 * NULL) the node itself. */
struct shape_at {
	const json_t *parent;
	const char *key;
	size_t index;
	const json_t *node;
};

struct shape_at shape_at_key(const json_t *parent, const char *key);
struct shape_at shape_at_index(const json_t *parent, size_t i);
struct shape_at shape_at_node(const json_t *node);

/* ---- checking ---- */

/* Checks v against field f (its key is ignored: v is the value); *out is normalized. */
__attribute__((warn_unused_result)) int shape_check(const struct shape_ctx *c, struct shape_at a,
						    const char *path, const struct shape_field *f,
						    const json_t *v, json_t **out /* OUT */);

/* Checks the mapping obj against the table `fields`; *out is a new normalized object. */
__attribute__((warn_unused_result)) int shape_check_object(const struct shape_ctx *c, struct shape_at a,
							   const char *path,
							   const struct shape_field *fields,
							   const json_t *obj, json_t **out /* OUT */);

/*
 * An API request body: SHAPE_STRICT, no positions, messages "request body: field 'PATH': ...".
 * body may be NULL (then it reads as "expected a JSON object, got nothing").
 */
__attribute__((warn_unused_result)) int shape_check_body(const json_t *body,
							 const struct shape_field *fields,
							 json_t **out /* OUT */, struct err *e);

/* ---- reporting, for custom checks and hand-written validators ---- */

/* Formats the message (see the header comment) into c->e and returns -1. */
__attribute__((format(printf, 4, 5))) int shape_fail(const struct shape_ctx *c, struct doc_pos pos,
						     const char *path, const char *fmt, ...);

/* The position of a place (value of a key, element, node), of a key itself; {0,0} when unknown
 * or when c->d is NULL. */
struct doc_pos shape_pos(const struct shape_ctx *c, struct shape_at a);
struct doc_pos shape_key_pos(const struct shape_ctx *c, const json_t *obj, const char *key);

/* path + "." + key, path + "[i]" into out (SHAPE_PATH_MAX bytes; cut when longer). */
void shape_join_key(char *out, const char *path, const char *key);
void shape_join_index(char *out, const char *path, size_t i);

/* A short description of a value for "got ...": strings quoted and cut at 40 bytes, "a list",
 * "null (nothing)", "nothing" for NULL. Returns buf or a static string. */
const char *shape_describe(const json_t *v, char *buf, size_t n);

/* The candidate closest to s when it is close enough to be a typo, else NULL. */
const char *shape_closest(const char *s, const char *const *cands, size_t n);

/* ---- durations ---- */

/*
 * Parses "250ms", "2s", "1m", "1h", "30d", "1m30s" (units d, h, m, s, ms, each at most once and in that
 * order) or a bare integer of milliseconds. 0 on success, -1 on bad syntax or overflow.
 */
__attribute__((warn_unused_result)) int shape_duration_ms(const char *s, uint64_t *ms /* OUT */);

/* The shortest way to write ms in that syntax without days ("1m30s", "250ms", "48h", "0s") into
 * buf; returns buf. */
const char *shape_duration_fmt(uint64_t ms, char *buf, size_t n);

#endif
