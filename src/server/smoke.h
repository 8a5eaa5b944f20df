/*
 * smoke: the smoke checks of a service (its normalized manifest's `smoke` list) run against one
 * new instance before it gets traffic: in the pre-production stage and before a blue-green
 * switch. Each check is one HTTP request whose status must equal the expected one and whose
 * body, when the check has `body_contains`, must contain that substring.
 *
 * Blocking: the checks run one after the other in the calling thread, each bounded by its own
 * timeout (at most 1 minute each, at most 32 checks, as the manifest validator enforces; the
 * examples use 1 s), so a caller on the event loop stalls for at most the sum of the timeouts.
 * Response bodies are limited to SMOKE_MAX_BODY bytes: a larger one fails the check.
 */
#ifndef SLUICE_SMOKE_H
#define SLUICE_SMOKE_H

#include <jansson.h>

#define SMOKE_MAX_BODY (64 * 1024)

/*
 * Runs every check of `checks` (a normalized `smoke` array: {path, method, status,
 * body_contains (string or null), timeout_ms}; NULL or empty means no check) against the
 * instance at addr ("127.0.0.1:PORT"). Sets *ok to 1 when all passed (also when there is none),
 * else 0. Returns a new reference to the evidence, one entry per check in order:
 *   {"path", "method", "want_status", "status" (integer, or null when no response came),
 *    "body_contains" (string or null), "matched" (boolean, or null without body_contains or
 *    response), "ok" (boolean), "error" (null, or what went wrong for people to read)}
 * Returns NULL (and *ok 0) only when out of memory. A malformed check fails with an error
 * entry rather than being skipped.
 */
json_t *smoke_run(const json_t *checks, const char *addr, int *ok /* OUT */);

#endif
