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
 *         reads:                      # response fields read in the 2xx body
 *           - {path: /id, type: string}
 *           - any_of:                 # a tolerant reader: the first that holds is used
 *               - {path: /metadata_v2, type: array}
 *               - {path: /metadata, type: object}
 *         sends: {type: object}       # optional: JSON Schema of the request body sent
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

/* A one-line summary of what `c` reads from `provider`, per operation, e.g.
 * "GET /items/{id} reads /id, any of (/metadata_v2 + 2 more | /metadata)", written into out.
 * Empty when it does not call the provider. */
void contract_reads_summary(const contract *c, const char *provider, char *out, size_t size);

/* Reads a file that is either an OpenAPI document or a contract with `provides`, and returns
 * the validated OpenAPI document (new reference), for `contract diff`. */
__attribute__((warn_unused_result)) int contract_load_openapi(const char *path, json_t **out, struct err *e);

/* ---- the check ---- */

/*
 * Does `consumer`'s declared use of `provider_service` hold against `provider`? Every
 * operation it calls must exist; every field it reads must be guaranteed in every 2xx response
 * of that operation (declared, required at every level, of a compatible type, not nullable
 * unless the type allows null), or for an `any_of`, at least one alternative must be; every
 * request body it sends must be accepted by the provider's request schema.
 *
 * Returns a new report:
 *   {"kind": "check", "provider": SERVICE, "consumer": NAME|null, "verdict": "ok"|"refused",
 *    "uses": true|false, "fallbacks": N, "findings": [...]}
 * `fallbacks` counts reads that only hold through a later `any_of` alternative (a warning:
 * safe, but the tolerant reader is doing work). A consumer that does not call the provider
 * gets "ok" with "uses": false.
 */
json_t *contract_check(const char *provider_service, const contract *provider, const contract *consumer);

#endif
