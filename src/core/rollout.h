/*
 * rollout: a guarded flag rollout as a pure state machine, (state, event) -> (new state,
 * actions), and the flag definition each of its steps writes. No I/O: the server's shell
 * (server/rollouts.h) reads the service's counters, feeds them here, persists the new state
 * with its events in one transaction, then writes the flag (docs/flags.md, "Guarded
 * rollouts").
 *
 * The life of a rollout:
 *   baseline  the flag is untouched; the service's error rate and latency are recorded over a
 *             window of at least baseline_ms and min_requests requests. Its 90th percentile
 *             (at least ROLLOUT_SLOW_FLOOR_US) becomes the latency threshold `slow_us`.
 *   step k    the variant gets steps[k] percent (action: set the weight). Each tick judges the
 *             counts since the step began against the baseline with two one-sample anytime-valid
 *             tests (stats/rate.h), each at alpha/2: the error rate above the baseline's upper
 *             bound times 1 + tolerance, the share of requests slower than slow_us above the
 *             baseline's times 1 + max(tolerance, 1). Either proven: REVERTED (action:
 *             restore the flag), with the evidence. Neither proven once the step has lasted
 *             step_ms and seen min_requests: the next step, or COMPLETED after the last.
 *   aborted   an operator's --abort: the flag is restored.
 *   interrupted  someone changed the flag meanwhile (a kill, an apply): the rollout stops and
 *             leaves the flag as they made it.
 * After a server restart the current window begins again (ROLLOUT_EV_RESUME): counts kept in
 * memory are lost, and a window never mixes data from before and after the gap. The baseline
 * and the step reached are in the persisted state.
 *
 * Invariants: 0 <= step < nsteps in ROLLOUT_STEP; steps strictly increasing in 1..100;
 * `weight` is what the flag holds now (0 before the first step). The structs are plain values.
 */
#ifndef SLUICE_ROLLOUT_H
#define SLUICE_ROLLOUT_H

#include <jansson.h>
#include <stdint.h>

#include "util/log.h"

#define ROLLOUT_MAX_STEPS 16
#define ROLLOUT_VARIANT_MAX 128
#define ROLLOUT_BUCKETS 512 /* the proxy has 369 */
#define ROLLOUT_SLOW_FLOOR_US 10000 /* latency below 10 ms is the host's, not the variant's */
#define ROLLOUT_SLOW_QUANTILE 0.9
#define ROLLOUT_SLOW_MIN_TOLERANCE 1.0 /* host noise moves latency between two windows */

enum rollout_phase {
	ROLLOUT_BASELINE,
	ROLLOUT_STEP,
	ROLLOUT_COMPLETED,
	ROLLOUT_REVERTED,
	ROLLOUT_ABORTED,
	ROLLOUT_INTERRUPTED,
};

struct rollout_config {
	char variant[ROLLOUT_VARIANT_MAX];
	int steps[ROLLOUT_MAX_STEPS]; /* percent of targeting keys, strictly increasing, 1..100 */
	int nsteps;
	int64_t step_ms, baseline_ms; /* least duration of a step, of the baseline window */
	uint64_t min_requests;        /* least requests of a step (and of the baseline) */
	double alpha, tolerance;      /* as the service's analysis */
};

/* What the service did in one window: requests, errors (5xx), and its latency histogram
 * (bucket i holds (bound_us[i-1], bound_us[i]]; bound_us < 0 is +inf). */
struct rollout_window {
	uint64_t requests, errors;
	int nbuckets;
	double bound_us[ROLLOUT_BUCKETS];
	uint64_t counts[ROLLOUT_BUCKETS];
};

struct rollout_counts {
	uint64_t requests, errors, done, slow;
};

struct rollout_state {
	struct rollout_config cfg;
	enum rollout_phase phase;
	int step;                        /* ROLLOUT_STEP: index in cfg.steps */
	int weight;                      /* percent the flag gives the variant now */
	int64_t since_ms;                /* when the current window began */
	struct rollout_counts baseline;  /* recorded at the end of the baseline window */
	uint64_t slow_us;                /* latency threshold, 0 before the baseline ends */
};

enum rollout_event_type {
	ROLLOUT_EV_TICK,        /* now_ms, window: the counts since the window began */
	ROLLOUT_EV_RESUME,      /* the server (re)started: the window begins again at now_ms */
	ROLLOUT_EV_ABORT,       /* an operator's abort (reason) */
	ROLLOUT_EV_INTERRUPTED, /* the flag was changed by someone else (reason says how) */
};

struct rollout_event {
	enum rollout_event_type type;
	int64_t now_ms;
	const struct rollout_window *window; /* ROLLOUT_EV_TICK */
	const char *reason;                  /* ABORT, INTERRUPTED (may be NULL) */
};

/* The judgement of a step: the counts, both tests' limits, e-values and the decision. */
struct rollout_test {
	int weight;
	struct rollout_counts now, baseline;
	double err_limit, err_e;   /* error rate limit (baseline's upper bound x (1 + tolerance)) */
	double slow_limit, slow_e; /* share of requests slower than slow_us */
	double threshold;          /* e-values at or above it prove a regression (2 / alpha) */
	uint64_t slow_us;
	const char *decision;      /* "revert", "pass", "continue" */
};

struct rollout_record {
	char type[32];      /* "baseline", "step", "passed", "completed", "reverted", "aborted", ... */
	char message[512];
	int has_test;
	struct rollout_test test;
};

struct rollout_actions {
	int changed;     /* the state changed: persist it */
	int set_weight;  /* -1, or the weight to write to the flag (after persisting) */
	int restore;     /* put the flag back as it was before the rollout (after persisting) */
	int nrecords;
	struct rollout_record records[2];
	struct rollout_test last; /* the latest judgement (also when nothing changed), for status */
	int has_last;
};

/* Checks cfg (steps, variant, durations, alpha); 0, or -1 with e saying what is wrong. The
 * rollout starts in its baseline window at now_ms. */
__attribute__((warn_unused_result)) int rollout_init(struct rollout_state *s, const struct rollout_config *cfg,
						     int64_t now_ms, struct err *e);
/* One event. Pure: out says what to persist and do. Always returns 0 (an event that does not
 * apply, such as a tick of a finished rollout, changes nothing). */
int rollout_step(struct rollout_state *s, const struct rollout_event *ev, struct rollout_actions *out /* OUT */);

/* 1 once the rollout ended (completed, reverted, aborted, interrupted). */
int rollout_done(const struct rollout_state *s);
/* "baseline", "step", "completed", "reverted", "aborted", "interrupted"; the store's phase is
 * "active" for the first two and this name afterwards. */
const char *rollout_phase_name(enum rollout_phase p);

/* Counts of a window with the latency threshold slow_us (0: none slow). */
void rollout_counts_of(const struct rollout_window *w, uint64_t slow_us, struct rollout_counts *c /* OUT */);

/* Serialization as stored (the flag_rollouts table's state). from_json: -1 when malformed. */
json_t *rollout_to_json(const struct rollout_state *s);
__attribute__((warn_unused_result)) int rollout_from_json(const json_t *j, struct rollout_state *s /* OUT */);

/*
 * The flag definition at `weight` percent for `variant`, from the flag's definition before
 * the rollout (`orig`, a normalized flagd flag, borrowed):
 *   - without targeting (absent, null or {}): targeting becomes
 *       {"fractional": [[variant, weight], [defaultVariant, 100 - weight]]}
 *     which needs a default variant other than `variant`;
 *   - with targeting T: the variant goes in front of it for weight percent of the keys,
 *       {"if": [{"==": [{"fractional": [[variant, weight], ["", 100 - weight]]}, variant]},
 *               variant, T]}
 *     and T decides for the others as before.
 * Both split by flagd's default bucketing (the flag key followed by the targeting key), so
 * the keys that get the variant at one step keep it at every larger step. Everything else of
 * the flag is kept. Returns a new flag object, or NULL with e (no such variant, the flag is
 * disabled, no usable default variant).
 */
json_t *rollout_flag_at(const json_t *orig, const char *variant, int weight, struct err *e);

#endif
