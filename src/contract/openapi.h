/*
 * openapi: OpenAPI 3.0 and 3.1 documents as a provider's API: validation with precise errors,
 * finding an operation by method and path template, and the breaking-change diff between two
 * versions of one provider's API (`sluice contract diff`).
 *
 * The diff follows the rule "responses may only narrow, requests may only widen" (see schema.h)
 * at every place a value crosses the wire: removing an operation, a success status or a media
 * type breaks; a parameter that becomes required breaks; a request body that becomes required
 * breaks; a required response header removed or made optional breaks; and each schema (bodies,
 * parameters, response headers) is compared in its direction. Error responses (4xx, 5xx,
 * default) are compared like success ones, but one that disappears is only a warning.
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

/* The parameters of the operation METHOD PATH as they appear on the wire (new reference, NULL
 * when there is no such operation): path-level ones overridden by operation-level ones, keyed
 * by openapi_param_key, each value {"p": the parameter object, "label": "/in/name"}. */
json_t *openapi_operation_parameters(const json_t *api, const char *method, const char *path);

/* What identifies a parameter on the wire, written into out: "/path/{N}" for a path parameter
 * named in `tmpl` (its position: renaming `{id}` to `{itemId}` changes nothing for callers),
 * "/header/NAME" with the name in lowercase, else "/IN/NAME". */
void openapi_param_key(const char *in, const char *name, const char *tmpl, char *out, size_t size);

/* The schema of a parameter or header object: its `schema`, else the JSON schema of its
 * `content`; NULL when it has neither (any value). Borrowed. */
const json_t *openapi_param_schema(const json_t *p);

/* The header object NAME (any case) of a response object, $ref followed; borrowed, or NULL. */
const json_t *openapi_response_header(const json_t *api, const json_t *response, const char *name);

/* Whether a response status key ("200", "2XX") means success. */
int openapi_is_success(const char *status);

/* The diff report (new reference):
 *   {"kind": "diff", "verdict": "breaking"|"compatible", "breaking": N, "warnings": N,
 *    "findings": [...]}   (findings as in report.h) */
json_t *openapi_diff(const json_t *old_api, const json_t *new_api);

#endif
