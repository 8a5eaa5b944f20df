/*
 * pipeline: the pure state machine of one deployment.
 *
 * (state, event) -> (new state, actions). No I/O, no clock, no allocation: the executor
 * (src/server/executor.c) feeds it events that carry the time and what it observed, persists
 * the new state and the actions' records in one transaction, and only then acts. Desired state
 * is level-triggered: pipeline_desired() says, for each region, which versions should run, how
 * many instances of each, and how traffic is split; the reconciler converges the runtime and
 * the proxy to it, so repeating any action after a crash is harmless.
 *
 * Regions are grouped in waves. Wave 0 may be the pre-production stage (regions of another
 * environment, flagged `stage`): there the release runs beside the old one at 50/50 under
 * generated traffic after its smoke checks, and a failure ends the deployment before
 * production is touched. Then the production waves run one after the other, the regions of a
 * wave in parallel; a wave starts when the previous one has finished and baked for
 * wave_bake_ms. The first production wave is the pilot.
 *
 * In a region, by strategy:
 *   canary      STARTING (new instances beside the stable ones, no traffic) -> [SMOKE] ->
 *               STEP k (the new version gets steps[k] percent, each step verified and at least
 *               step_duration long) -> PROMOTING
 *   blue-green  STARTING (the whole new set) -> [SMOKE] -> HOLD (all traffic switched at once,
 *               the old set kept keep_old_ms for an instant rollback, verified) -> PROMOTING
 *   rolling     STARTING (the first batch) -> STEP s: alternately start a batch of new
 *               instances (surge) and retire as many old ones, each gated on health -> PROMOTING
 * PROMOTING records the new stable release, moves all traffic to it, drains and stops the old
 * instances; then BAKING (post-deployment verification against the previous release for
 * bake_ms: a regression REVERTS, i.e. ends the deployment rolled back and creates a rollback in
 * the same transaction) and DONE.
 *
 * Failures: a region whose new instances never get healthy (or keep crashing) is transient: it
 * is stopped (ABORTING) and retried after retry_backoff_ms, doubling, region_retries times;
 * then it is FAILED. Other regions are not touched; later waves stop (halt, the default) or go
 * on (continue); a retry request (PL_EV_RETRY) restarts a failed region alone. A verification
 * that proves a regression is not transient: every active region aborts (traffic back to
 * stable first, then the new instances stop) and the deployment ends rolled back. Regions that
 * were DONE stay done: when others went back, the deployment ends PL_SPLIT, not rolled back.
 * A release rolled back in every production region (none kept it) is rolled back in the
 * pre-production stage too (PL_ACT_RESTORE_STABLE; the stage region ends R_ROLLED_BACK), so
 * the next stage compares against the release production runs, never a known-bad one. An
 * abort request (a rollback or hotfix pre-empting) does the same.
 * A region that already runs the version is done at once.
 *
 * Deadlines count observed time (a verdict judges the release, not the control plane). Every
 * state's deadline (start timeout, step duration and max_step_duration, side_by_side, keep_old,
 * bake) is measured from `since`. The executor observes each controlled region every tick; the
 * state records the last observation (`seen`, written at least every PL_HEARTBEAT_MS). An
 * observation more than cfg.observe_gap_ms (PL_GAP_MS) after the previous one means nobody was watching (the server
 * was down or stalled): `since` moves forward by the gap, so the outage is not charged to the
 * release, and an "unobserved" event says so. An observation whose verdict is unreachable for
 * want of the proxy's metrics (obs.blind) waits the same way, without counting and without
 * any deadline firing; blind for cfg.max_unobserved_ms, the region is paused (traffic stays at
 * its weights) until an operator resumes it (PL_EV_RETRY) or aborts the deployment. A first release (nothing stable in
 * the region) has nothing to compare with or fall back to: it is promoted once healthy (after
 * its smoke checks). A rollback runs every region at once with no steps.
 */
#ifndef SLUICE_PIPELINE_H
#define SLUICE_PIPELINE_H

#include <jansson.h>
#include <stdint.h>

#define PL_NAME_MAX 64
#define PL_MAX_REGIONS 16
#define PL_MAX_STEPS 16
#define PL_MAX_ACTIONS 12
#define PL_MSG_MAX 384
/* Observed time: the last observation is written at least this often; a longer silence than
 * PL_GAP_MS between two observations was nobody watching. */
#define PL_HEARTBEAT_MS 1000
#define PL_GAP_MS 3000

enum pl_kind { PL_DEPLOY, PL_ROLLBACK, PL_HOTFIX };

enum pl_strategy { PL_CANARY, PL_ROLLING, PL_BLUE_GREEN };

/* PL_SPLIT: ended with production regions on different versions (some done with the new
 * release, others back on or still on their stable one); the "split" event names each
 * region's version. */
enum pl_phase { PL_ACTIVE, PL_PROMOTED, PL_ROLLED_BACK, PL_FAILED, PL_PREEMPTED, PL_SPLIT };

enum pl_rstate {
	R_PENDING,
	R_STARTING,
	R_STEP,
	R_PROMOTING,
	R_DONE,
	R_ABORTING,
	R_ROLLED_BACK,
	R_BAKING,     /* promoted; post-deployment verification against the previous release */
	R_REVERTED,   /* the bake found a regression: a rollback to the previous release follows */
	R_SMOKE,      /* smoke checks against the new instances, before any traffic */
	R_SIDE_BY_SIDE, /* pre-production stage: old and new at 50/50 under generated traffic */
	R_HOLD,       /* blue-green: all traffic on the new set, the old one kept for a while */
	R_RETRY_WAIT, /* failed transiently; restarts at retry_at */
	R_FAILED,     /* failed after every retry; `sluice retry` restarts it */
};

struct pl_config {
	enum pl_strategy strategy;
	int steps[PL_MAX_STEPS]; /* canary: strictly increasing percentages ending at 100 */
	int nsteps;
	int instances;       /* per region */
	int max_surge;       /* rolling */
	int max_unavailable; /* rolling */
	int smoke;           /* the service has smoke checks */
	int64_t step_duration_ms;     /* minimum time at a step */
	int64_t max_step_duration_ms; /* no verdict by then: abort as inconclusive */
	int64_t start_timeout_ms;     /* instances not healthy by then: a transient failure */
	int64_t bake_ms;              /* post-deployment verification after promotion, 0 = none */
	int64_t keep_old_ms;          /* blue-green */
	int64_t wave_bake_ms;         /* a wave starts this long after the previous one ended */
	int64_t side_by_side_ms;      /* pre-production stage */
	int region_retries;
	int64_t retry_backoff_ms;
	int continue_on_failure; /* policy continue: later waves go on after a region failed */
	int baseline; /* canary steps compare with a fresh baseline of the stable release (see
		       * pipeline_baseline), not with the production instances */
	int64_t observe_gap_ms;    /* observed time: a silence longer than this between two
				    * observations was nobody watching (PL_GAP_MS); 0 = off, every
				    * observation follows the previous one (tables that jump in time) */
	int64_t max_unobserved_ms; /* a verdict that cannot be reached (no metrics from the proxy)
				    * this long pauses the region for an operator; 0 = never */
};

struct pl_region {
	char name[PL_NAME_MAX];
	char env[PL_NAME_MAX];
	char stable[PL_NAME_MAX]; /* stable version when the region began ("" = none) */
	int wave;
	int stage;     /* a pre-production stage region */
	enum pl_rstate state;
	int step;      /* index into cfg.steps (canary) or the rolling step */
	int64_t since; /* when the current state or step began, ms */
	int attempts;  /* transient failures so far */
	int64_t retry_at;
	int64_t ended_at; /* when it reached DONE (for wave_bake) */
	/* Observed time (see "Deadlines count observed time" above): */
	int64_t seen;     /* the last observation recorded, ms (0 = none yet) */
	int64_t blind_ms; /* how long the verdict has been unreachable (no metrics), ms */
	int paused;       /* blind for cfg.max_unobserved_ms: it waits for an operator */
};

struct pl_state {
	enum pl_kind kind;
	enum pl_phase phase;
	char version[PL_NAME_MAX]; /* the version being deployed, or the rollback target */
	struct pl_config cfg;
	struct pl_region regions[PL_MAX_REGIONS];
	int nregions;
	char reason[PL_MSG_MAX]; /* why it ended, when it did not promote */
	int aborted;   /* a regression or an abort was asked: start no further region */
	int preempted; /* the abort came from a rollback or fix that takes over */
};

/* What the executor observed about one region. The verdict means, by state: SMOKE the smoke
 * checks, STEP and HOLD the verification window, SIDE_BY_SIDE the stage's traffic and
 * verification, BAKING the bake window. */
enum pl_verdict { PL_VERDICT_NONE, PL_VERDICT_PASS, PL_VERDICT_FAIL, PL_VERDICT_INCONCLUSIVE };

struct pl_obs {
	int new_healthy;  /* instances of the new version that are healthy */
	int new_wanted;   /* instances of the new version that should run now */
	int new_broken;   /* they crash or fail health checks beyond a restart or two */
	char broken_reason[256];
	int old_running;  /* instances of the previous version still running */
	int base_healthy; /* instances of the baseline (pipeline_baseline) that are healthy */
	int base_wanted;  /* instances of the baseline that should run now */
	enum pl_verdict verdict;
	char verdict_msg[256];
	int blind;       /* the verdict cannot be reached for want of the proxy's metrics (none
			  * yet, or stale): the control plane or the proxy is away, not the release */
	int old_stopped; /* after PROMOTING: the previous version's instances are gone */
	int new_stopped; /* after ABORTING: the new version's instances are gone */
};

enum pl_event_type {
	PL_EV_START,   /* begin the deployment */
	PL_EV_OBSERVE, /* region `region` was observed (obs) */
	PL_EV_TICK,    /* time passed: start waves and retries that are due */
	PL_EV_ABORT,   /* stop now (a rollback or hotfix pre-empts, or a user asked): reason */
	PL_EV_RETRY,   /* restart failed region `region` alone, or resume it when paused */
	PL_EV_PROMOTE, /* an operator promotes now: region `region` (-1: every region) that is in
			* a canary step (or holding the old set after a blue-green switch) skips its remaining steps and
			* checks and is promoted; later waves keep their own steps. reason: who */
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
	PL_ACT_RECORD,       /* append an event to the deployment's history */
	PL_ACT_SET_STABLE,   /* record `version` as the region's stable release */
	PL_ACT_RESET_WINDOW, /* a new verification window begins in the region */
	PL_ACT_REVERT,       /* create a rollback to the previous stable (message = version) */
	PL_ACT_SMOKE,        /* run the smoke checks against the region's new instances */
	PL_ACT_TRAFFIC,      /* generate the stage's traffic in the region for side_by_side_ms */
	PL_ACT_RESTORE_STABLE, /* record `message` (the region's previous stable) as its stable
				* again: the release was rolled back in production */
};

struct pl_action {
	enum pl_action_type type;
	int region; /* -1 for the whole deployment */
	char kind[32]; /* PL_ACT_RECORD: "started", "step", "promoted", "aborted", ... */
	int verdict;   /* PL_ACT_RECORD of a verification's outcome: record its evidence with it */
	char message[PL_MSG_MAX];
};

struct pl_actions {
	struct pl_action a[PL_MAX_ACTIONS];
	int n;
};

/* Desired state of one region: versions that run (how many instances) and the split. */
#define PL_MAX_ROUTE 3 /* stable, baseline, canary */
/* The baseline's label: the stable release's version and this suffix. '~' is in no release's
 * version, so the label names its own instances and its own share of a route. */
#define PL_BASELINE_SUFFIX "~baseline"
#define PL_LABEL_MAX (PL_NAME_MAX + sizeof(PL_BASELINE_SUFFIX) - 1)

struct pl_desired {
	char baseline[PL_LABEL_MAX]; /* storage for a baseline label in run/route */
	struct {
		const char *version;
		int count;
	} run[PL_MAX_ROUTE];
	int nrun;
	struct {
		const char *version;
		int weight; /* relative weight */
	} route[PL_MAX_ROUTE];
	int nroute;
};

/* One region of a new deployment. */
struct pl_region_init {
	const char *name, *env, *stable; /* stable: "" when none */
	int wave;
	int stage;
};

/* Initialises a deployment (or rollback, or hotfix) of `version`. Returns 0, or -1 when the
 * arguments do not fit (too many regions, steps not ending at 100, names too long). */
int pipeline_init(struct pl_state *s, enum pl_kind kind, const char *version,
		  const struct pl_config *cfg, const struct pl_region_init *regions, int nregions);

/* Applies one event. Returns 1 when the state changed (persist it and the actions), 0 when
 * nothing happened. Never fails: an event that does not apply is ignored. */
int pipeline_step(struct pl_state *s, const struct pl_event *ev, struct pl_actions *out);

/* Whether the deployment has ended. */
int pipeline_done(const struct pl_state *s);
/* Whether it has started: some region left R_PENDING. A deployment that has not started is
 * queued; one that has is the service's running pipeline (the executor runs it first, status
 * shows it, a rollback pre-empts it). */
int pipeline_started(const struct pl_state *s);
/* Whether the pipeline controls region i now (otherwise its stable release is what runs). */
int pipeline_controls(const struct pl_state *s, int i);

/* Desired state of region i (pointers into s). */
void pipeline_desired(const struct pl_state *s, int i, struct pl_desired *d);
/* With cfg.baseline, a canary step of region i whose stable release is known runs a baseline:
 * the stable release again, as many instances as the canary, started with the canary and
 * given the canary's weight (at most what the stable leaves: min(w, 100 - w)), so that the
 * canary is compared with instances of the same age, size and share of the load. Returns the
 * baseline's weight now (0: none routed) and writes its label; -1 when the region runs none. */
int pipeline_baseline(const struct pl_state *s, int i, char *label, size_t len);
/* The release behind a label: the label itself, or the stable version of a baseline label.
 * Returns buf or label. */
const char *pipeline_release_of(const char *label, char *buf, size_t len);

/* Names for logs and the API. */
const char *pipeline_phase_name(enum pl_phase p);
const char *pipeline_rstate_name(enum pl_rstate r);
const char *pipeline_kind_name(enum pl_kind k);
const char *pipeline_strategy_name(enum pl_strategy k);
/* -1 when unknown */
int pipeline_strategy_from_name(const char *name);

/* Serialization as stored in the deployments table. from_json returns -1 on malformed input. */
json_t *pipeline_to_json(const struct pl_state *s);
int pipeline_from_json(const json_t *j, struct pl_state *s);

#endif
