/*
 * schema: compares JSON Schemas (the OpenAPI 3.0 and 3.1 dialects) by the sets of values they
 * admit, which is what compatibility is about.
 *
 * The one question asked is "is every value valid against A also valid against B?" (A <= B).
 * A response may only narrow, so a new response schema must satisfy new <= old; a request may
 * only widen, so old <= new. Where the answer is no, a finding says where and why, phrased for
 * the direction (a relaxed response constraint and a tightened request constraint are the same
 * test but different news).
 *
 * Before comparing, each schema is normalised: local `$ref`s are followed (chains bounded,
 * loops reported), `allOf` members are merged (types intersected, properties and required
 * lists united, bounds tightened), OpenAPI 3.0 `nullable: true` and 3.1 type arrays both become
 * a set of types, `const` becomes a one-value enum, 3.0 boolean exclusiveMinimum/Maximum become
 * 3.1 numbers, an `enum` bounds the types to those of its values. A property marked readOnly
 * counts as absent in requests and one marked writeOnly as absent in responses, on either
 * side, marked directly or through its $ref/allOf. `anyOf`/`oneOf` are compared as unions (each alternative of A must fit some
 * alternative of B). Recursive schemas are compared co-inductively: a pair of $refs already
 * being compared higher up is assumed compatible, so cycles terminate.
 *
 * Limitations, stated in findings rather than hidden: `not`, `if/then/else`, `patternProperties`,
 * `prefixItems` and regular expressions are not reasoned about (a changed `pattern` is reported
 * as breaking because sluice cannot prove one regex contains another).
 */
#ifndef SLUICE_CONTRACT_SCHEMA_H
#define SLUICE_CONTRACT_SCHEMA_H

#include <jansson.h>

#include "contract/report.h"

enum schema_dir {
	SCHEMA_RESPONSE, /* A is the new response schema, B the old (or what a consumer expects) */
	SCHEMA_REQUEST,  /* A is the old request schema (or what a consumer sends), B the new */
};

/* Type bits. INTEGER values are also NUMBER values. */
enum {
	SCHEMA_T_NULL = 1,
	SCHEMA_T_BOOLEAN = 2,
	SCHEMA_T_INTEGER = 4,
	SCHEMA_T_NUMBER = 8,
	SCHEMA_T_STRING = 16,
	SCHEMA_T_ARRAY = 32,
	SCHEMA_T_OBJECT = 64,
	SCHEMA_T_ANY = 127,
};

/* Parses a JSON Schema type name ("string", ...) into its bit; 0 when unknown. */
unsigned schema_type_bit(const char *name);
/* Writes the names of the bits in `types` ("string|null") into out. */
void schema_types_str(unsigned types, char *out, size_t size);

/*
 * Compares a <= b. root_a and root_b are the documents that `#/...` references resolve in
 * (may be NULL when the schemas contain no $ref). Findings are appended to `findings` with
 * the operation/status/in of `loc` and JSON paths under loc->path (NULL means the root).
 * Returns the number of breaking findings added.
 */
int schema_compare(const json_t *root_a, const json_t *a, const json_t *root_b, const json_t *b,
		   enum schema_dir dir, const struct report_loc *loc, json_t *findings);

/*
 * Follows `path` (segments: property names, "*" for every element of an array) into `schema`
 * and asks whether every valid value is guaranteed to have a value there whose type is one of
 * `types` (a bit set). `optional` allows the last segment to be absent. The schema is a
 * response's: a writeOnly property is never there. With no segments it checks the type of the
 * value itself (a response header's, say). Returns 1 when
 * guaranteed, 0 when not, with the reason written into why.
 */
int schema_guarantees(const json_t *root, const json_t *schema, const char *const *segs,
		      size_t nsegs, unsigned types, int optional, char *why, size_t whysize);

/* Resolves a local reference "#/a/b" in root (JSON pointer, ~0 ~1 escapes). NULL if absent. */
const json_t *schema_resolve_ref(const json_t *root, const char *ref);

#endif
