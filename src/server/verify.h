/*
 * verify: the verdict of a region's current verification window, from the proxy's live
 * per-version counters.
 *
 * A window opens when a canary step (or a bake) begins: the cumulative counters of the new and
 * the old version are snapshotted, and every later verdict judges only the differences since.
 * Windows live in memory: after a restart of the server a fresh window opens, so no verdict
 * ever mixes data from before a step with data after it. Each verdict keeps its evidence for
 * the event that records it and for `sluice status`.
 *
 * Methods (analysis.method): `threshold` (core/analysis.h: fixed limits, re-checked each poll)
 * or `sequential`: anytime-valid tests (stats/sequential.h) fed at each poll (every tick, 200
 * ms) with the counter differences since the previous poll and the canary's known share (the
 * step's weight): the error rate ratio canary/stable and the ratio of requests slower than
 * the stable's 90th percentile (fixed when the window opens, at least 1 ms). A step FAILS the
 * moment either ratio is proven above 1, and PASSES once both are proven harmless: the ratio
 * below 1 + tolerance, or the canary's rate proven below an absolute floor (errors:
 * min(max_error_rate, max_error_rate_increase); slow requests: 10% * (1 + tolerance), where
 * the slow requests' tolerance is at least 0.5). A bake
 * compares the new stable with the old version's rates recorded over the last step
 * (one-sample tests). Custom Prometheus metrics (analysis.metrics, server/prometheus.h) are
 * judged once per step by the Kayenta-style judge, their queries running in the background; a
 * step passes only when they pass too.
 * docs/verification.md has the details.
 */
#ifndef SLUICE_VERIFY_H
#define SLUICE_VERIFY_H

#include <jansson.h>
#include <stdint.h>

#include "core/analysis.h"
#include "core/manifest.h"
#include "core/pipeline.h"
#include "loop/fetch.h"
#include "loop/loop.h"
#include "router/router.h"
#include "stats/sequential.h"

/* The verifier: every open window, and the latest counters snapshot of the router. One per
 * server, on its loop's thread. */
typedef struct verifier verifier;

/* Counters of one version as the sequential method reads them. */
struct window_counts {
	uint64_t requests, errors; /* errors: 5xx + upstream errors */
	uint64_t done, slow;       /* completed requests; those slower than the window's slow_us */
};

/* The verification window of one region of one deployment at one step. */
struct window {
	int64_t deployment;
	int region;
	int step;
	int has_base;
	int opening, opening_step;                /* a window for opening_step waits for counters */
	uint64_t opening_after;                   /* ...read at or after this loop time */
	struct version_window base_new, base_old; /* cumulative counters at the window's start */
	struct version_window recorded_old;       /* the old version's last window, for the bake */
	int has_recorded;
	char verdict[256];                        /* latest check, for status */
	json_t *evidence;                         /* latest check's evidence */
	/* analysis.method sequential (verify.c): anytime-valid tests over the window, fed at
	 * each poll with the differences of the counters since the previous poll */
	struct seq_counts seq_err, seq_slow;      /* errors; requests slower than slow_us */
	uint64_t slow_us;                         /* latency threshold of the window, 0 = unset */
	struct window_counts last_new, last_old;  /* cumulative counters at the previous poll */
	struct window_counts rec_old;             /* the old version over the last step (bake) */
	int has_rec;
	int decided;                              /* sticky verdict of the window (PL_VERDICT_*) */
	int64_t opened_ms;                        /* wall clock of the opening (Prometheus) */
	struct prom_run *prom;                    /* the Prometheus judgement in flight, or NULL */
	int prom_done;                            /* the Prometheus metrics were judged */
	int prom_verdict;                         /* their verdict (PL_VERDICT_*) */
	char prom_msg[256];
	json_t *prom_evidence;
};

/* Reads counters through r (router_latest_metrics, at every verdict) and
 * runs Prometheus queries through f (may be NULL: custom metrics then pass unjudged). Returns
 * NULL when out of memory. */
verifier *verify_new(loop *l, router *r, fetcher *f);
/* Forgets every window, cancelling what is in flight; before fetcher_free. */
void verify_free(verifier *vr);

/* The verdict for region ri of deployment dep (in state st) of service svc (its analysis
 * settings; borrowed for the call); msg gets a one-line summary. */
enum pl_verdict verify_region(verifier *vr, int64_t dep, const struct service_manifest *svc, const char *env,
			      const struct pl_state *st, int ri, char *msg, size_t msglen);
/* Whether verdicts are unreachable for want of the proxy's counters: none has arrived since the
 * server started, or the latest is older than VERIFY_STALE_MS and the verifier has been asking
 * (calls at most VERIFY_ASK_GAP_MS apart) for VERIFY_STALE_MS since it was taken or since the
 * asking began (the proxy is away: stopped, stuck or unreachable). The executor then tells the
 * pipeline that the region is blind (pl_obs.blind): it waits, uncharged. */
#define VERIFY_STALE_MS 5000
#define VERIFY_ASK_GAP_MS 1000
int verify_blind(verifier *vr);
/* A new window begins at the next verdict (a step or bake started). */
void verify_reset(verifier *vr, int64_t dep, int region);
/* The window of a region (read-only: its latest check and evidence), or NULL. */
const struct window *verify_window(verifier *vr, int64_t dep, int region);
/* Forgets every window of a deployment (it ended), cancelling what is in flight. */
void verify_forget(verifier *vr, int64_t dep);
/* Forgets the windows of every deployment not among ids[0..n) (those that ended). */
void verify_keep_only(verifier *vr, const int64_t *ids, size_t n);

#endif
