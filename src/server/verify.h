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

#include "server/server.h"

/* The verdict for region ri of deployment dep (in state st); msg gets a one-line summary. */
enum pl_verdict verify_region(struct server *srv, int64_t dep, const json_t *svc, const char *env,
			      const struct pl_state *st, int ri, char *msg, size_t msglen);
/* A new window begins at the next verdict (a step or bake started). */
void verify_reset(struct server *srv, int64_t dep, int region);
/* The window of a region, or NULL. */
const struct window *verify_window(struct server *srv, int64_t dep, int region);
/* Forgets every window of a deployment (it ended), cancelling what is in flight. */
void verify_forget(struct server *srv, int64_t dep);
/* Forgets every window (the server stops); before fetcher_free. */
void verify_release(struct server *srv);

#endif
