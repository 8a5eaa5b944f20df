/*
 * pipeline: the pure state machine of one deployment.
 *
 * (state, event) -> (new state, actions). No I/O, no clock, no allocation: the executor
 * (src/server/executor.c) feeds it events that carry the time and what it observed, persists
 * the new state and the actions' records in one transaction, and only then acts. Desired state
 * is level-triggered: pipeline_desired() says, for each region, which versions should run and
 * how traffic should be split; the reconciler converges the runtime and the proxy to it, so
 * repeating any action after a crash is harmless.
 *
 * A deploy walks the regions in order. In each region: STARTING (new instances beside the
 * stable ones, no traffic) -> STEP k (canary gets steps[k] percent; each step passes its
 * verification and lasts at least step_duration) -> PROMOTING (new version recorded stable,
 * all traffic to it, old instances drained then stopped) -> DONE, then the next region. A
 * failed check or broken instances turn the region to ABORTING (traffic back to stable first,
 * then the canary instances stop) -> ROLLED_BACK, and the deployment ends. Regions that were
 * already DONE stay done. A rollback runs every region at once: start the target, switch all
 * traffic when healthy, drain and stop the rest. A first release (no stable version in the
 * region) has nothing to compare with or fall back to: it is promoted once healthy. After a
 * promotion with a bake window, the region BAKES: the new stable is compared with the previous
 * release's recorded behaviour for bake_ms; a regression REVERTS it (the deployment ends
 * rolled back and a rollback to the previous release is created in the same transaction).
 */
#ifndef SLUICE_PIPELINE_H
#define SLUICE_PIPELINE_H

#include <jansson.h>
#include <stdint.h>

#define PL_NAME_MAX 64
#define PL_MAX_REGIONS 16
#define PL_MAX_STEPS 16
#define PL_MAX_ACTIONS 8
#define PL_MSG_MAX 384

enum pl_kind { PL_DEPLOY, PL_ROLLBACK };

enum pl_phase { PL_ACTIVE, PL_PROMOTED, PL_ROLLED_BACK, PL_FAILED, PL_PREEMPTED };

enum pl_rstate {
	R_PENDING,
	R_STARTING,
	R_STEP,
	R_PROMOTING,
	R_DONE,
	R_ABORTING,
	R_ROLLED_BACK,
	R_BAKING,   /* promoted; post-deployment verification against the previous release */
	R_REVERTED, /* the bake found a regression: a rollback to the previous release follows */
};

struct pl_config {
	int steps[PL_MAX_STEPS]; /* strictly increasing percentages ending at 100 */
	int nsteps;
	int64_t step_duration_ms;     /* minimum time at a step */
	int64_t max_step_duration_ms; /* no verdict by then: abort as inconclusive */
	int64_t start_timeout_ms;     /* instances not healthy by then: abort */
	int64_t bake_ms;              /* post-deployment verification after promotion, 0 = none */
};

struct pl_region {
	char name[PL_NAME_MAX];
	char stable[PL_NAME_MAX]; /* stable version when the region began ("" = none) */
	enum pl_rstate state;
	int step;      /* index into cfg.steps while in R_STEP */
	int64_t since; /* when the current state or step began, ms */
};

struct pl_state {
	enum pl_kind kind;
	enum pl_phase phase;
	char version[PL_NAME_MAX]; /* the version being deployed, or the rollback target */
	struct pl_config cfg;
	struct pl_region regions[PL_MAX_REGIONS];
	int nregions;
	char reason[PL_MSG_MAX]; /* why it ended, when it did not promote */
	int aborted;   /* a region failed or an abort was asked: start no further region */
	int preempted; /* the abort came from a rollback or fix that takes over */
};

/* What the executor observed about one region. */
enum pl_verdict { PL_VERDICT_NONE, PL_VERDICT_PASS, PL_VERDICT_FAIL, PL_VERDICT_INCONCLUSIVE };

struct pl_obs {
	int new_healthy;        /* instances of the new version that are healthy */
	int new_wanted;         /* instances of the new version that should run */
	int new_broken;         /* they crash or fail health checks beyond a restart or two */
	char broken_reason[256];
	enum pl_verdict verdict; /* verification of the current step, PL_VERDICT_NONE = not yet */
	char verdict_msg[256];
	int old_stopped; /* after PROMOTING: the previous version's instances are gone */
	int new_stopped; /* after ABORTING: the new version's instances are gone */
};

enum pl_event_type {
	PL_EV_START,   /* begin the deployment */
	PL_EV_OBSERVE, /* region `region` was observed (obs) */
	PL_EV_ABORT,   /* stop now (a user rollback pre-empts, or the server gave up): reason */
};

struct pl_event {
	enum pl_event_type type;
	int64_t now; /* ms */
	int region;
	int preempt; /* PL_EV_ABORT: ends as PL_PREEMPTED instead of PL_ROLLED_BACK */
	struct pl_obs obs;
	char reason[PL_MSG_MAX];
};

enum pl_action_type {
	PL_ACT_RECORD,        /* append an event to the deployment's history */
	PL_ACT_SET_STABLE,    /* record `version` as the region's stable release */
	PL_ACT_RESET_WINDOW,  /* a new verification window begins in the region (new step) */
	PL_ACT_REVERT,        /* create a rollback of the region's env to the previous stable */
};

struct pl_action {
	enum pl_action_type type;
	int region; /* -1 for the whole deployment */
	char kind[32]; /* PL_ACT_RECORD: "started", "step", "promoted", "aborted", ... */
	char message[PL_MSG_MAX];
};

struct pl_actions {
	struct pl_action a[PL_MAX_ACTIONS];
	int n;
};

/* Desired state of one region: versions that run, and the traffic split. */
struct pl_desired {
	const char *run[2];
	int nrun;
	struct {
		const char *version;
		int weight; /* percent */
	} route[2];
	int nroute;
};

/* Initialises a deployment (or rollback) of `version` over the given regions, each with its
 * current stable version ("" when none). Returns 0, or -1 when the arguments do not fit. */
int pipeline_init(struct pl_state *s, enum pl_kind kind, const char *version,
		  const struct pl_config *cfg, const char *const *regions,
		  const char *const *stables, int nregions);

/* Applies one event. Returns 1 when the state changed (persist it and the actions), 0 when
 * nothing happened. Never fails: an event that does not apply is ignored. */
int pipeline_step(struct pl_state *s, const struct pl_event *ev, struct pl_actions *out);

/* Whether the deployment has ended. */
int pipeline_done(const struct pl_state *s);

/* Desired state of region i (pointers into s). For a region the deployment does not control
 * (pending, or finished) the caller uses the store's stable version instead. */
void pipeline_desired(const struct pl_state *s, int i, struct pl_desired *d);

/* Names for logs and the API. */
const char *pipeline_phase_name(enum pl_phase p);
const char *pipeline_rstate_name(enum pl_rstate r);
const char *pipeline_kind_name(enum pl_kind k);

/* Serialization as stored in the deployments table. from_json returns -1 on malformed input. */
json_t *pipeline_to_json(const struct pl_state *s);
int pipeline_from_json(const json_t *j, struct pl_state *s);

#endif
