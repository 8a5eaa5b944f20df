/*
 * smoke: the smoke checks of a service (its typed manifest's `smoke` list) run against one
 * new instance before it gets traffic: in the pre-production stage and before a blue-green
 * switch. Each check is one HTTP request whose status must equal the expected one and whose
 * body, when the check has `body_contains`, must contain that substring.
 *
 * Asynchronous: the checks of one run go one after the other (a check may depend on the one
 * before it) over a fetcher (loop/fetch.h), each bounded by its own timeout (at most 1 minute,
 * at most 32 checks, as the manifest validator enforces), so the server's event loop never
 * waits on a slow instance. Runs against several instances go on in parallel. Response bodies
 * are limited to SMOKE_MAX_BODY bytes: a larger one fails the check.
 */
#ifndef SLUICE_SMOKE_H
#define SLUICE_SMOKE_H

#include <jansson.h>

#include "core/manifest.h"
#include "loop/fetch.h"

#define SMOKE_MAX_BODY (64 * 1024)

typedef struct smoke_run smoke_run;

/*
 * Called once, from the loop, when every check has run. `evidence` (borrowed: valid during the
 * call) has one entry per check in order:
 *   {"path", "method", "want_status", "status" (integer, or null when no response came),
 *    "body_contains" (string or null), "matched" (boolean, or null without body_contains or
 *    response), "ok" (boolean), "error" (null, or what went wrong for people to read)}
 * ok is 1 when all passed. The run frees itself after the call.
 */
typedef void smoke_done_fn(void *arg, const json_t *evidence, int ok);

/*
 * Starts the n checks of `checks` (a typed manifest's smoke list, core/manifest.h; copied, so
 * the run may outlive the manifest) against the instance at `endpoint`, its "host:port" as the
 * runtime lists it. A malformed check (a path that does not begin with '/') fails with an
 * error entry rather than being skipped. Returns 0 with *out set (the callback will run), 1
 * when there is no check at all (nothing runs: that passes), or -1 when out of memory.
 */
__attribute__((warn_unused_result)) int smoke_start(fetcher *f, const struct manifest_smoke *checks,
						    size_t n, const char *endpoint, smoke_done_fn *fn,
						    void *arg, smoke_run **out /* OUT */);

/* Stops a run before its callback: the callback will not run, the run is freed. */
void smoke_cancel(smoke_run *r);

#endif
