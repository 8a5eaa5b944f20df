/*
 * openapi: OpenAPI 3.0 and 3.1 documents as a provider's API: validation with precise errors,
 * finding an operation by method and path template, and the breaking-change diff between two
 * versions of one provider's API (`sluice contract diff`).
 *
 * The diff follows the rule "responses may only narrow, requests may only widen" (see schema.h)
 * at every place a value crosses the wire: removing an operation, a success status or a media
 * type breaks; a parameter that becomes required breaks; a request body that becomes required
 * breaks; and each schema is compared in its direction.
 */
#ifndef SLUICE_CONTRACT_OPENAPI_H
#define SLUICE_CONTRACT_OPENAPI_H

#include <jansson.h>

#include "contract/valid.h"

/* Limits on what a document may hold. */
#define OPENAPI_MAX_PATHS 4096
#define OPENAPI_MAX_SCHEMA_DEPTH 64

/* Checks that `api` is an OpenAPI 3.0.x or 3.1.x document sluice can reason about: paths,
 * operations, responses, media types, and every schema's keywords (types, $refs that resolve
 * inside the document, properties, required, items, enum...). `field` is the prefix of field
 * paths in messages ("" at the top of a file, "provides" inside a contract). */
__attribute__((warn_unused_result)) int openapi_validate(const struct valid *v, const json_t *api,
							  const char *field);

/* Checks one JSON Schema (a consumer's request body) the way openapi_validate checks the
 * schemas of a document; `root` is where its `#/...` references resolve. */
__attribute__((warn_unused_result)) int openapi_validate_schema(const struct valid *v, const json_t *root,
								 const json_t *schema, const char *field);

/* The operation object for METHOD (case-insensitive) and a path template; parameter names do
 * not matter (`/items/{id}` matches `/items/{itemId}`). Borrowed, or NULL. `*item` (may be
 * NULL) receives the path item, for path-level parameters. */
const json_t *openapi_operation(const json_t *api, const char *method, const char *path, const json_t **item);

/* Follows a `$ref` of a response, request body or parameter object (bounded). Borrowed. */
const json_t *openapi_deref(const json_t *api, const json_t *obj);

/* The JSON schema of a content map: application/json, else any +json type, else the first.
 * NULL when there is no content or no schema; `*media` (may be NULL) receives the type. */
const json_t *openapi_json_schema(const json_t *content, const char **media);

/* Whether a response status key ("200", "2XX") means success. */
int openapi_is_success(const char *status);

/* The diff report (new reference):
 *   {"kind": "diff", "verdict": "breaking"|"compatible", "breaking": N, "warnings": N,
 *    "findings": [...]}   (findings as in report.h) */
json_t *openapi_diff(const json_t *old_api, const json_t *new_api);

#endif
