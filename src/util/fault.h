/*
 * fault: test hooks that inject a fault at a named point, compiled into every build and
 * active only when the environment variable SLUICE_FAULT names that point.
 *
 * SLUICE_FAULT is a comma-separated list of points:
 *   after-commit:KIND  the server _exit(137)s (as a kill -9 would end it) right after it commits
 *                      a pipeline transition that records an event of kind KIND ("side_by_side",
 *                      "step", "promoted", "baking", "smoke", ...; `sluice events` shows
 *                      them), before any action that follows the commit
 *   store-write        every store transaction fails at its start, as on a full disk or a
 *                      read-only file ("store: begin: injected fault (SLUICE_FAULT=store-write)")
 *   store-write:FILE   the same, while FILE exists (the server starts, then a test breaks and
 *                      repairs the store by creating and removing FILE)
 * An unset or empty variable injects nothing; an unknown point is ignored. The variable is read
 * once, at the first check. tests/integration/faults.sh uses both; docs/architecture.md lists
 * them. Never set it in production.
 */
#ifndef SLUICE_FAULT_H
#define SLUICE_FAULT_H

/* Whether SLUICE_FAULT names `point` ("store-write"), or names it as POINT:FILE and FILE
 * exists now (checked at every call: an access(2)). */
int fault_active(const char *point);

/* Called right after a transition was committed with an event of kind `kind`: exits the
 * process with status 137 when SLUICE_FAULT names after-commit:KIND. */
void fault_after_commit(const char *kind);

#endif
