/*
 * rollouts: drives the guarded flag rollouts (core/rollout.h, the pure state machine) from the
 * server's tick, like the executor drives deployments (docs/flags.md, "Guarded rollouts").
 *
 * Each tick, for every active rollout in the store (of a service this replica owns): the
 * service's counters in the rollout's environment (every region's route, every version: the
 * proxy's per-version counters, the same snapshot the verifier reads) are added to the current
 * window as differences since the previous snapshot (a restarted proxy adds nothing for that
 * poll, never a negative count); the window is fed to the state machine. A transition is
 * written in ONE store transaction: the rollout's state, its events (with the evidence), and
 * the flag's next version when the step changes the flag or a regression puts it back. So a
 * kill -9 loses nothing: after a restart the rollout resumes at its step, its window beginning
 * again (an event says so).
 *
 * The flag is changed only from the definition the rollout itself wrote last: when someone
 * changed the flag meanwhile (a kill, an apply), the rollout stops as "interrupted" and leaves
 * the flag as they made it. The flag versions the rollout writes are by "rollout N" with the
 * event's message as their reason, and a revert is logged as a warning (the announcement).
 *
 * Ownership: the deps are borrowed and outlive the object; one per server, on its loop's
 * thread. Errors: 0; STORE_NOTFOUND (no such environment, service, flag or active rollout);
 * STORE_CONFLICT (the flag has a rollout in progress); ROLLOUTS_INVALID (a request that cannot
 * run: e says why); -1 (the store failed, e begins with "store: ").
 */
#ifndef SLUICE_SERVER_ROLLOUTS_H
#define SLUICE_SERVER_ROLLOUTS_H

#include <jansson.h>
#include <stdint.h>

#include "core/rollout.h"
#include "router/router.h"
#include "server/catalog.h"
#include "server/flags.h"
#include "server/replica.h"
#include "store/store.h"

typedef struct rollouts rollouts;

#define ROLLOUTS_INVALID 5

struct rollouts_deps {
	store *store;
	flags *flags;
	router *router;   /* its latest counters snapshot (router_latest_metrics) */
	catalog *catalog; /* environments (their regions) and services (their analysis settings) */
	replica *replica; /* NULL: every rollout is this server's */
};

/* NULL when out of memory. */
rollouts *rollouts_new(const struct rollouts_deps *d);
void rollouts_free(rollouts *r);

/* One pass over the active rollouts at wall-clock time now_ms. */
void rollouts_tick(rollouts *r, int64_t now_ms);

struct rollouts_request {
	const char *env, *flag, *service, *variant;
	int steps[ROLLOUT_MAX_STEPS];
	int nsteps;
	int64_t step_ms;     /* < 0: the service's strategy.step_duration */
	int64_t baseline_ms; /* < 0: the same as step_ms */
	const char *by, *why;
};

/* Starts a rollout (its baseline window first; the flag is not changed yet). *id is its id. */
__attribute__((warn_unused_result)) int rollouts_start(rollouts *r, const struct rollouts_request *q,
						       int64_t *id /* OUT */, struct err *e);
/* Aborts the active rollout of flag in env: the flag is put back (when a step changed it).
 * *id is the rollout's id. */
__attribute__((warn_unused_result)) int rollouts_abort(rollouts *r, const char *env, const char *flag,
						       const char *by, const char *why, int64_t *id /* OUT */,
						       struct err *e);
/* What this server saw of an active rollout since its window began: {"window": {...},
 * "judgement": {...}} (a new reference), or NULL when it has nothing (ended, not yet polled). */
json_t *rollouts_live(rollouts *r, int64_t id);

/* The evidence of a judgement, as events record it (a new reference). */
json_t *rollouts_evidence(const struct rollout_state *s, const struct rollout_test *t);

#endif
