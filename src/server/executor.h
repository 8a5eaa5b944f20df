/*
 * executor: drives every active deployment's pipeline (core/pipeline.h, the pure state
 * machine): one pipeline per service at a time, the rest queued in the store.
 *
 * Each tick, for the deployment each service runs: observe every region its pipeline controls
 * (instances from the region's runtime; by state, the smoke checks, the verifier's verdict,
 * the pre-production stage's traffic result), feed the observation to the state machine, and
 * when the state changes persist the new state with its records in ONE store transaction.
 * Acting is the reconciler's: it reads what was persisted. A crash between the two repeats
 * only idempotent work.
 *
 * The executor is handed every driver it uses (struct executor_deps) and owns only what it has
 * in flight: smoke checks and the stage's traffic generators (child processes found again by
 * their result files after a restart). One per server, on its loop's thread.
 *
 * Errors: creating, aborting and retrying return -1 (or a negative id) with e: the message
 * says what to fix; a store failure's message starts with "store: " (store_failed).
 */
#ifndef SLUICE_EXECUTOR_H
#define SLUICE_EXECUTOR_H

#include <jansson.h>
#include <stdint.h>

#include "core/pipeline.h"
#include "loop/fetch.h"
#include "loop/loop.h"
#include "router/router.h"
#include "server/catalog.h"
#include "server/reconcile.h"
#include "server/replica.h"
#include "server/runtimes.h"
#include "server/verify.h"
#include "store/store.h"

typedef struct executor executor;

/* Everything is borrowed and must outlive the executor. */
struct executor_deps {
	loop *loop;
	store *store;
	runtimes *runtimes;
	router *router;          /* where a route is reached (the stage's traffic) */
	verifier *verifier;
	reconciler *reconciler;  /* run after each tick, and before the stage's traffic starts */
	fetcher *fetch;          /* smoke checks */
	const char *data_dir;    /* copied: DATA/traffic holds the stage's results */
	catalog *catalog;        /* the manifests; NULL: the executor's own over store */
	replica *replica;        /* the services this replica owns; NULL: every one, unfenced */
};

/* NULL when out of memory. */
executor *executor_new(const struct executor_deps *d);
/* Cancels the smoke checks in flight and frees; before fetcher_free. */
void executor_free(executor *ex);

/* One pass over every active deployment of a service this replica owns (all of them without a
 * replica), then the reconciler's tick. Each transition is written with the replica's fence
 * (replica_fence) in its transaction: a replica that lost the service's lease writes nothing
 * and stops driving it. */
void executor_tick(executor *ex);
/* Creates a deployment (kind deploy, hotfix or rollback) of service@version in env, queued or
 * pre-empting as the kind says, in one transaction. Returns the id, or -1 with e (an unknown
 * service, environment or release; a version whose instances could not run; another
 * deployment is active and the policy refuses). gate_report (borrowed, may be NULL) is
 * recorded with a forced deployment. */
int64_t executor_create(executor *ex, const char *service, const char *env, const char *version,
			enum pl_kind kind, int force, json_t *gate_report, struct err *e);
/* Restarts a failed region of a deployment alone. */
int executor_retry(executor *ex, int64_t id, const char *region, struct err *e);
/* Asks an active deployment to stop (traffic back to stable, new instances drained and
 * stopped); preempt records it as pre-empted rather than aborted. Creating, retrying and
 * aborting come from the API, which every replica answers: on the owner they are fenced like
 * its ticks. On any replica they are the pipeline's event applied to the state as read and
 * written as a compare-and-set (store_update_deployment_if), read and applied again when
 * another writer (the owner's tick, another replica's request) changed the deployment in
 * between; the owner's own writes are compared the same way. So each request is recorded
 * exactly once and never undone by a write made from an older state; the owner acts on what
 * is recorded (the reconciler reads it), as it does after a restart. A retry that finds its
 * region already retried is refused ("not failed"). */
int executor_abort(executor *ex, int64_t id, const char *reason, int preempt, struct err *e);
/* An operator's "promote now" (PL_EV_PROMOTE): the regions of deployment id (or the one named
 * region, NULL: every one) that are in a canary step, or hold the old set after a blue-green
 * switch, skip their remaining steps and checks and are promoted; reason (who) is recorded.
 * Later waves keep their own steps. Written like executor_abort (compare-and-set). -1 with e
 * when nothing could be promoted now (say why) or the store failed (store_failed(e)). */
int executor_promote(executor *ex, int64_t id, const char *region, const char *reason, struct err *e);

#endif
