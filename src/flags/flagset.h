/*
 * flagset: feature flag definitions in flagd's documented format, and their evaluation.
 *
 * A flag set is a JSON or YAML document:
 *     {"flags": {KEY: {"state": "ENABLED"|"DISABLED", "variants": {NAME: value, ...},
 *                      "defaultVariant": NAME|null, "targeting": RULE, "metadata": {...}}},
 *      "$evaluators": {NAME: RULE, ...}, "metadata": {...}}
 * A RULE is JsonLogic with flagd's operations (flags/logic.h); {"$ref": NAME} inside one stands
 * for the evaluator of that name. A flag's variants all have one type: boolean, string,
 * number or object.
 *
 * Parsing refuses a document that breaks the structure, whole, with FILE:LINE:COL and the field
 * path. What only makes some evaluations fail (an unknown operation, a `$ref` to nothing, a
 * default variant the flag does not have) is accepted, as flagd accepts it, and listed by
 * flagset_warnings(); such a flag's evaluations that reach the problem answer ERROR.
 *
 * Evaluation answers what OFREP and flagd answer: the value and variant, a reason (STATIC when
 * the flag has no targeting, TARGETING_MATCH when targeting picked a variant, DEFAULT when it
 * picked none, DISABLED, ERROR) and for errors a code (FLAG_NOT_FOUND, GENERAL, and
 * TARGETING_KEY_MISSING when a `fractional` split by the targeting key found none and the rule
 * yielded nothing else). A flag
 * set is immutable once parsed; evaluations may run from several threads, each with its arena.
 */
#ifndef SLUICE_FLAGSET_H
#define SLUICE_FLAGSET_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "flags/logic.h"
#include "util/log.h"
#include "util/shape.h"

typedef struct flagset flagset;

#define FLAGSET_MAX_FLAGS 10000
#define FLAGSET_KEY_MAX 128   /* bytes of a flag key */

/* Parses text (JSON or YAML; `name` is the file's name in messages). -1 with e on a
 * structural error; nothing is returned then. */
int flagset_parse(const char *name, const char *text, size_t len, flagset **out /* OUT */,
		  struct err *e);
/* The same from a JSON value (a stored set); `label` names it in messages. The value is
 * copied. */
int flagset_from_json(const json_t *doc, const char *label, flagset **out /* OUT */, struct err *e);
void flagset_free(flagset *fs);

/* A flag set written as a manifest for `sluice apply`: the same document with `kind: FlagSet`
 * and `name: ENV` (the environment it is for). Checks it in c's document (positions, paths) and
 * writes its normalized form, kind and name included, to *out. For core/manifest.c. */
int flagset_check_manifest(const struct shape_ctx *c, const json_t *m, struct shape_at a,
			   json_t **out /* OUT */);
/* The flag set of a normalized FlagSet manifest (kind and name left out): a new reference. */
json_t *flagset_manifest_doc(const json_t *manifest);

/* The normalized document (borrowed, valid while fs lives): what a store keeps. */
const json_t *flagset_json(const flagset *fs);
/* The warnings: "flags.KEY.targeting: unknown operation 'x'", one per flag at most. */
size_t flagset_warning_count(const flagset *fs);
const char *flagset_warning(const flagset *fs, size_t i);
/* The keys, in the document's order. */
size_t flagset_count(const flagset *fs);
const char *flagset_key(const flagset *fs, size_t i);

enum flag_type { FLAG_BOOL, FLAG_STRING, FLAG_NUMBER, FLAG_OBJECT };

/* The outcome of one evaluation. Pointers are borrowed from the set (valid while it lives). */
struct flag_result {
	const char *key;
	const json_t *value;   /* NULL: no value (disabled, no default, an error) */
	const char *variant;   /* NULL with value */
	const char *reason;    /* "STATIC", "TARGETING_MATCH", "DEFAULT", "DISABLED", "ERROR" */
	const char *error_code; /* NULL, or "FLAG_NOT_FOUND", "GENERAL", ... */
	char error[256];       /* what went wrong, for people */
	enum flag_type type;
	const json_t *metadata; /* the set's metadata overlaid with the flag's (an object) */
};

/*
 * Evaluates flag `key` for `context` (a JSON object, or NULL for none) at `now` (seconds since
 * the epoch, $flagd.timestamp). Never fails: the result says FLAG_NOT_FOUND or ERROR. The
 * arena is the caller's (reset between evaluations).
 */
void flagset_eval(const flagset *fs, const char *key, const json_t *context, int64_t now,
		  struct logic_arena *a, struct flag_result *r /* OUT */);

/* A flag's state and its variants, for operators: -1 when there is no such flag. */
int flagset_describe(const flagset *fs, const char *key, json_t **out /* OUT: the flag's JSON */);

#endif
