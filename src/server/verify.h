/*
 * verify: the verdict of a region's current verification window, from the proxy's live
 * per-version counters.
 *
 * A window opens when a canary step (or a bake) begins: the cumulative counters of the new and
 * the old version are snapshotted, and every later verdict judges only the differences since.
 * Windows live in memory: after a restart of the server a fresh window opens, so no verdict
 * ever mixes data from before a step with data after it. Each verdict keeps its evidence for
 * the event that records it and for `sluice status`.
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
/* Forgets every window of a deployment (it ended). */
void verify_forget(struct server *srv, int64_t dep);

#endif
