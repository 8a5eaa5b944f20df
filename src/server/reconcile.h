/*
 * reconcile: converges instances and routes of every service/env/region to the desired state
 * (the active deployment's pipeline_desired, or the stable release), level-triggered. Traffic
 * moves before instances: a version leaves its route, its backends are reported drained for
 * a second, then its instances stop. docs/architecture.md describes a pass.
 *
 * The reconciler reads the store (manifests, deployments, stable releases), drives each
 * region's runtime and the router, and never writes the store. A read the store fails is not
 * an answer: that service/region keeps its routes and instances for the pass, and the pass is
 * left pending. One per server, on its loop's thread; it keeps what it saw (instances seen
 * drained, start refusals) in memory only.
 */
#ifndef SLUICE_RECONCILE_H
#define SLUICE_RECONCILE_H

#include <stdint.h>

#include "loop/loop.h"
#include "router/router.h"
#include "server/catalog.h"
#include "server/replica.h"
#include "server/runtimes.h"
#include "store/store.h"

typedef struct reconciler reconciler;

/* The drivers are borrowed and must outlive the reconciler; artifacts_dir (copied) holds the
 * releases' artifacts (store/artifacts.h). NULL when out of memory. */
reconciler *reconcile_new(loop *l, store *s, runtimes *rts, router *r, const char *artifacts_dir);
void reconcile_free(reconciler *rec);
/* Reads the manifests through c (borrowed; it must outlive the reconciler) rather than the
 * reconciler's own catalog over the store (NULL: back to its own). One catalog shared by the
 * server's objects parses each manifest once. */
void reconcile_use_catalog(reconciler *rec, catalog *c);

/* Converges only the services this replica owns (replica.h); NULL (the default): every one.
 * Another replica's services are left alone: their instances and routes are its owner's. */
void reconcile_use_replica(reconciler *rec, replica *r);

/* A pass over every service/env/region, now. */
void reconcile_all(reconciler *rec);
/* The tick's reconcile: a pass when deployments are active (busy), when the store, a runtime
 * or the router changed since the last pass or that pass left something to do, and at least
 * every RECONCILE_IDLE_PASS_MS; otherwise nothing, which keeps an idle server idle. */
void reconcile_tick(reconciler *rec, int busy);
/* Why the runtime refused to start a version's instances on the last pass (a bad spec, an
 * unknown release, a runtime that cannot be reached), or NULL. A store read that failed on the
 * way is no such reason: the previous pass's answer stands. Valid until the next pass. */
const char *reconcile_start_error(reconciler *rec, const char *service, const char *env,
				  const char *region, const char *version);
/* Ticks that ran a pass and ticks that had nothing to look at (GET /v1/health). */
void reconcile_counts(const reconciler *rec, uint64_t *passes, uint64_t *skipped);
/* How long each pass of reconcile_tick took (util/histo.h; for /metrics). */
struct histo;
const struct histo *reconcile_pass_seconds(const reconciler *rec);

#endif
