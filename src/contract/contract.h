/*
 * contract: what one release of a service provides and what it consumes from other services,
 * and the check of a consumer's declared use against a provider (`sluice contract check`).
 *
 * A contract file (YAML or JSON; docs/contracts.md):
 *
 *   service: profile                  # optional: the service this contract belongs to
 *   provides: openapi.yaml            # optional: an OpenAPI 3.0/3.1 document, a path
 *                                     # relative to this file, or the document inline
 *   consumes:                         # optional: per provider service, the operations called
 *     metadata:
 *       - method: GET
 *         path: /items/{id}
 *         parameters:                 # optional: every parameter sent (path ones may be
 *           - {name: id, in: path, type: string}   # left out: they are in the path)
 *           - {name: lang, in: query, type: string}
 *         reads:                      # response fields read in the 2xx body
 *           - {path: /id, type: string}
 *           - any_of:                 # a tolerant reader: the first that holds is used
 *               - {path: /metadata_v2, type: array}
 *               - {path: /metadata, type: object}
 *         response_headers:           # optional: 2xx response headers read
 *           - {name: ETag, type: string}
 *         sends: {type: object}       # optional: JSON Schema of the request body sent
 *         errors:                     # optional: error responses handled, read like 2xx ones
 *           - {status: 404, reads: [{path: /code, type: string}]}
 *
 * A top-level `$defs` mapping holds schemas that several `sends` share ("#/$defs/Name").
 * A read path is JSON-pointer-like: property names separated by '/', with '*' standing for
 * every element of an array; an `any_of` alternative is one read or `all_of: [reads]`.
 *
 * Loading validates everything and reports the first mistake as FILE:LINE:COL (or as a field
 * path for contracts that arrive as JSON). A `provides` given as a path is read and inlined at
 * load time, so contract_to_json gives a self-contained value the server can store; and
 * contract_from_json re-validates such a value.
 *
 * A contract is immutable once loaded; it may be shared between threads for reading.
 */
#ifndef SLUICE_CONTRACT_CONTRACT_H
#define SLUICE_CONTRACT_CONTRACT_H

#include <jansson.h>
#include <stddef.h>

#include "util/log.h"

typedef struct contract contract;

/* Limits on what a contract may hold. */
#define CONTRACT_MAX_SERVICES 64
#define CONTRACT_MAX_OPERATIONS 256
#define CONTRACT_MAX_READS 256
#define CONTRACT_MAX_ALTERNATIVES 16
#define CONTRACT_MAX_PATH 512
#define CONTRACT_MAX_SEGMENTS 32
#define CONTRACT_MAX_NAME 63
#define CONTRACT_MAX_PARAMETERS 64 /* parameters sent, per operation */
#define CONTRACT_MAX_HEADERS 64    /* response headers read, per operation or error response */
#define CONTRACT_MAX_ERRORS 32     /* error responses handled, per operation */
#define CONTRACT_MAX_FIELD_NAME 128 /* a parameter's or a header's name */

/* ---- life cycle ---- */

/* Reads and validates a contract file; a `provides` path is resolved next to it. */
__attribute__((warn_unused_result)) int contract_load(const char *path, contract **out, struct err *e);
/* The same from text. `name` names it in messages; `basedir` (may be NULL) resolves a
 * `provides` path, and without it such a path is an error. */
__attribute__((warn_unused_result)) int contract_parse(const char *name, const char *text, size_t len,
						       const char *basedir, contract **out, struct err *e);
/* From a JSON value (as stored by the server): validated again, `provides` must be inline.
 * Errors name the field path. The value is copied. */
__attribute__((warn_unused_result)) int contract_from_json(const json_t *v, const char *name, contract **out,
							   struct err *e);
/* The self-contained JSON form (new reference; NULL only when out of memory). */
json_t *contract_to_json(const contract *c);
void contract_free(contract *c);

/* ---- reading ---- */

const char *contract_service(const contract *c);    /* the `service` field, or NULL */
const json_t *contract_provides(const contract *c); /* the OpenAPI document (borrowed), or NULL */
int contract_consumes(const contract *c, const char *service); /* 1 when it calls that service */
/* The services it consumes, in file order: i from 0 to contract_consumes_count - 1. */
size_t contract_consumes_count(const contract *c);
const char *contract_consumes_name(const contract *c, size_t i);

/* 1 when some operation `c` calls on `service` lists its `parameters`. */
int contract_lists_parameters(const contract *c, const char *service);

/* A one-line summary of what `c` reads from `provider`, per operation, e.g.
 * "GET /items/{id} reads /id, any of (/metadata_v2 + 2 more | /metadata)", written into out.
 * Empty when it does not call the provider. */
void contract_reads_summary(const contract *c, const char *provider, char *out, size_t size);

/* Reads a file that is either an OpenAPI document or a contract with `provides`, and returns
 * the validated OpenAPI document (new reference), for `contract diff`. */
__attribute__((warn_unused_result)) int contract_load_openapi(const char *path, json_t **out, struct err *e);

/* ---- the check ---- */

/*
 * Does `consumer`'s declared use of `provider_service` hold against `provider`? For each
 * operation it calls:
 *  - the operation must exist;
 *  - every field it `reads` must be guaranteed in every 2xx response (declared, required at
 *    every level, of a compatible type, not nullable unless the type allows null, not
 *    writeOnly), or for an `any_of`, at least one alternative must be;
 *  - every `response_headers` read must be declared, required (unless the read is optional)
 *    and of a compatible type in every 2xx response;
 *  - every error response it handles (`errors`) is checked the same way against the
 *    provider's response for that status (its code, else its range, else `default`);
 *  - the request body it `sends` must be accepted by the provider's request schema (readOnly
 *    properties count as absent);
 *  - every parameter it sends must be accepted by the provider's schema for it; a required
 *    parameter it does not list is refused; and when it lists no parameters at all, a
 *    required one is refused too (fail closed: nothing says it sends it) with a message that
 *    says how to declare them, unless `since` requires it as well.
 *
 * `since` (may be NULL) is a release of the same provider that the consumer is known to work
 * with (what is live next to it): a required parameter that `since` requires too is not new,
 * so a consumer that declares no parameters evidently sends it. contract_check is
 * contract_check_since with NULL, the strict answer for when nothing is known.
 *
 * Returns a new report:
 *   {"kind": "check", "provider": SERVICE, "consumer": NAME|null, "verdict": "ok"|"refused",
 *    "uses": true|false, "fallbacks": N, "findings": [...]}
 * `fallbacks` counts reads that only hold through a later `any_of` alternative (a warning:
 * safe, but the tolerant reader is doing work). A consumer that does not call the provider
 * gets "ok" with "uses": false.
 */
json_t *contract_check(const char *provider_service, const contract *provider, const contract *consumer);
json_t *contract_check_since(const char *provider_service, const contract *provider, const contract *consumer,
			     const contract *since);

#endif
