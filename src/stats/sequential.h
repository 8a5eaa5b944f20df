/*
 * sequential: anytime-valid tests that compare a canary with its baseline while data arrives,
 * safe to evaluate after every observation (the false alarm rate stays at alpha however often
 * one looks, and whenever one stops). docs/verification.md gives the formulas and papers.
 *
 * Counts (errors among requests, or slow requests among requests). Let rho be the ratio of the
 * canary's event rate to the baseline's (per request). Given that an event happens while the
 * canary receives a share s of the traffic, it comes from the canary with probability
 *     p(rho, s) = rho s / (rho s + 1 - s)
 * whatever the baseline's rate is (Lindon & Malek 2022, conditional binomial of a multinomial
 * count / Poisson process). The test keeps the log-likelihood of every rho on a fixed
 * geometric grid (1/64 .. 64, 16 points per doubling) and mixes likelihood ratios over the
 * grid into e-processes:
 *   - fail: H0 "rho <= 1" rejected (e-value >= 1/alpha): the canary has more events.
 *   - pass: H0 "rho >= 1 + tolerance" rejected: the confidence sequence for rho lies below
 *     1 + tolerance.
 *   - continue otherwise. The first decision sticks.
 * The share may change at every observation (weights of a traffic step). When it is unknown
 * (share < 0) the test uses an anytime confidence sequence for the share, estimated from the
 * canary/baseline split of the requests themselves (a Bernoulli stream), and takes the least
 * favourable share in it; alpha is then split in two halves (share, test). The unknown-share
 * mode assumes the split is constant while unknown. Once a share has been given, a later
 * negative share reuses the last one given.
 *
 * Latency: an observation is an event when it exceeds the running estimate of the baseline's
 * `quantile` (P-square estimator over the baseline values seen BEFORE it, so the threshold is
 * predictable). Under H0 (same latency distribution) events are equally likely on both sides,
 * so the counts test above applies; rho is then the ratio of exceedance probabilities.
 *
 * Cost: O(grid) = a few hundred floating-point operations per observation, no allocation;
 * the structs are plain values (init, feed, read; nothing to release) without pointers, so
 * a caller may copy them or store their bytes to resume a test later (same build).
 *
 * With no events at all (both rates 0) the test never passes: zero events say nothing about
 * the ratio. The caller's maximum duration decides then.
 */
#ifndef SLUICE_SEQUENTIAL_H
#define SLUICE_SEQUENTIAL_H

#include <stdint.h>

#define SEQ_STEPS_PER_DOUBLING 16
#define SEQ_HALF (6 * SEQ_STEPS_PER_DOUBLING) /* grid reaches 2^6 = 64 each way */
#define SEQ_GRID (2 * SEQ_HALF + 1)

enum seq_decision { SEQ_CONTINUE = 0, SEQ_PASS = 1, SEQ_FAIL = 2 };

const char *seq_decision_name(enum seq_decision d); /* "continue", "pass", "fail" */

struct seq_counts {
	double alpha, tolerance;
	double lw[SEQ_GRID];      /* log mixing weight by distance on the grid */
	uint64_t next_eval;       /* unknown share: re-evaluate at this many requests */
	int mode;                 /* 0 nothing yet, 1 known share, 2 unknown share */
	double ll[SEQ_GRID];      /* log-likelihood of each grid ratio (known-share events) */
	double share;             /* last known share (for the cache below) */
	double lp[SEQ_GRID], lq[SEQ_GRID]; /* log p(rho_j, share), log(1 - p(rho_j, share)) */
	uint64_t u_canary_events, u_baseline_events, u_canary_trials, u_baseline_trials;
	uint64_t canary_events, baseline_events, canary_trials, baseline_trials;
	int pass_index;           /* largest grid index with rho <= 1 + tolerance (-1: none) */
	double log_e_fail, log_e_pass; /* natural logs of the current e-values */
	enum seq_decision decision;
	uint64_t decided_at;      /* observation count when the decision was reached (0: none) */
	uint64_t observations;    /* calls to _observe and _update */
};

/* Evidence for a verdict: what was tested, the statistic and the confidence sequence. */
struct seq_evidence {
	enum seq_decision decision;
	double e_fail, e_pass;    /* e-values (may be +inf); decisions at >= threshold */
	double threshold;         /* 1/alpha, or 2/alpha in unknown-share mode */
	double ratio_estimate;    /* maximum-likelihood rho on the grid */
	double ratio_lo, ratio_hi;/* anytime confidence bounds on rho (0 / +inf when open) */
	double share_lo, share_hi;/* share used: confidence bounds (unknown) or the known share */
	uint64_t canary_events, canary_trials, baseline_events, baseline_trials;
	uint64_t observations, decided_at;
};

/* alpha in (0, 0.5], tolerance >= 0 (pass when rho < 1 + tolerance is proven). */
void seq_counts_init(struct seq_counts *s, double alpha, double tolerance);
/* One request: from the canary or the baseline, an event or not, with the canary's share of
 * traffic when it was routed (0..1), or a negative value when unknown. */
void seq_counts_observe(struct seq_counts *s, int is_canary, int is_event, double canary_share);
/* Polled counters: what happened since the last call, with the share during that interval. */
void seq_counts_update(struct seq_counts *s, uint64_t canary_events, uint64_t canary_trials,
		       uint64_t baseline_events, uint64_t baseline_trials, double canary_share);
enum seq_decision seq_counts_decision(const struct seq_counts *s);
/* Computes the evidence (O(grid^2), call it when reporting, not per observation). */
void seq_counts_evidence(const struct seq_counts *s, struct seq_evidence *ev /* OUT */);

/* P-square running quantile estimate (Jain & Chlamtac 1985): 5 markers, O(1) per value. */
struct seq_p2 {
	double p, q[5], n[5], np[5], dn[5];
	uint64_t count;
};

struct seq_latency {
	struct seq_counts counts; /* events: observations above the threshold */
	struct seq_p2 p2;         /* baseline quantile */
	uint64_t warmup;          /* baseline values needed before testing starts */
	double threshold;         /* threshold used for the last observation (NaN before warm-up) */
};

/* quantile in (0, 1), e.g. 0.9: events are values above the baseline's 90th percentile. */
void seq_latency_init(struct seq_latency *s, double alpha, double tolerance, double quantile);
void seq_latency_observe(struct seq_latency *s, int is_canary, double value, double canary_share);
enum seq_decision seq_latency_decision(const struct seq_latency *s);
void seq_latency_evidence(const struct seq_latency *s, struct seq_evidence *ev /* OUT */);

#endif
