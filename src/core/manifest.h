/*
 * manifest: validation and normalization of the YAML manifests that `sluice apply` sends
 * (kind: Environment and kind: Service; the format is described in docs/manifests.md).
 *
 * The validator is table-driven (util/shape.h): one table per mapping lists its keys, their
 * types, limits and defaults. The same tables check a source document (YAML, errors "FILE:LINE:COL: path: what was
 * expected") and an already normalized manifest (JSON as stored, errors "Kind 'name': path: ...").
 *
 * Normalized form: every key present, defaults filled, durations as integers of milliseconds
 * under the key name with the suffix "_ms" (step_duration -> step_duration_ms), env values as
 * strings, each region's port_offset resolved. Pure: no I/O.
 */
#ifndef SLUICE_MANIFEST_H
#define SLUICE_MANIFEST_H

#include <jansson.h>
#include <stdint.h>

#include "util/doc.h"
#include "util/log.h"
#include "util/name.h"

/* Hard limits on what a manifest may hold. */
#define MANIFEST_MAX_PER_FILE 1000
#define MANIFEST_NAME_MAX NAME_OBJECT_MAX
#define MANIFEST_MAX_REGIONS 64
#define MANIFEST_MAX_DEPENDS 64
#define MANIFEST_MAX_ARGS 64
#define MANIFEST_MAX_ENV 256
#define MANIFEST_MAX_STRING 4096
#define MANIFEST_MAX_DURATION_MS (7ull * 24 * 3600 * 1000) /* one week */

/*
 * Validates every document of d (empty documents are skipped). On success *out is a new
 * reference to a JSON array of normalized manifests in document order (each {"kind": ...,
 * "name": ..., ...all defaults filled...}); on the first error returns -1 with
 * "FILE:LINE:COL: message" in e and leaves *out untouched. Nothing is returned from a file with
 * an error.
 */
__attribute__((warn_unused_result)) int manifest_validate(const doc *d, json_t **out /* OUT */,
							  struct err *e);

/* Re-validates one normalized manifest (as stored), for the server's own checks. 0 or -1. */
__attribute__((warn_unused_result)) int manifest_check_normalized(const json_t *m, struct err *e);

/*
 * Parses "250ms", "2s", "1m", "1h", "1m30s" (units h, m, s, ms, each at most once and in that
 * order) or a bare integer of milliseconds. 0 on success, -1 on bad syntax or overflow.
 */
__attribute__((warn_unused_result)) int manifest_duration_ms(const char *s, uint64_t *ms /* OUT */);

/* Whether s is a valid object name (name_object_ok in util/name.h; kept for old callers). */
int manifest_name_ok(const char *s);

#endif
