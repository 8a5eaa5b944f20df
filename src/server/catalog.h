/*
 * catalog: what the control plane looks up about services and environments: their manifests,
 * typed (core/manifest.h), the proxy port a service listens on in a region, the runtime that
 * serves a region.
 *
 * Parsed once: a catalog keeps every manifest it parsed, keyed by kind and name, and hands the
 * same parsed manifest out again while store_manifest_changes(store) is unchanged (writes of
 * deployments, events and the rest leave it as it is); after a manifest changes, or any write to
 * the store the next lookup reads (and parses) again. An idle server's reconcile passes hence
 * read and parse nothing. A list loads every manifest of its kind in one store read.
 *
 * Ownership: refcounted. Every manifest handed out (alone or in a list) is a reference the
 * caller gives back with catalog_release_* (which accept NULL); until then it stays valid and
 * unchanged, even when the store changes or the catalog re-reads that manifest (the old
 * version is freed at its last release). Nothing handed out may be written to. Every
 * reference must be released before catalog_free.
 *
 * Errors: every lookup follows the store's contract: 0 with the answer, STORE_NOTFOUND when
 * the service, environment or region is unknown (e says which), -1 when the store (or opening
 * a runtime) failed or a stored manifest does not parse (e). A failure is never an "unknown":
 * callers that act on an answer (stop instances, delete routes) must tell them apart.
 *
 * One catalog per server (main.c shares it), on its loop's thread; objects given none make a
 * private one over their store.
 */
#ifndef SLUICE_CATALOG_H
#define SLUICE_CATALOG_H

#include <stddef.h>

#include "core/manifest.h"
#include "runtime/runtime.h"
#include "server/runtimes.h"
#include "store/store.h"
#include "util/log.h"

typedef struct catalog catalog;

/* Over store s and the runtimes rts (both borrowed, they must outlive the catalog). NULL
 * when out of memory. */
catalog *catalog_new(store *s, runtimes *rts);
/* Frees the cache; every reference must have been released. NULL is a no-op. */
void catalog_free(catalog *c);

/* ---- One manifest ---- */

__attribute__((warn_unused_result)) int catalog_environment(catalog *c, const char *env,
							    const struct env_manifest **out /* OUT */,
							    struct err *e);
__attribute__((warn_unused_result)) int catalog_service(catalog *c, const char *service,
							const struct service_manifest **out /* OUT */,
							struct err *e);
void catalog_release_environment(catalog *c, const struct env_manifest *m);
void catalog_release_service(catalog *c, const struct service_manifest *m);

/* ---- Every manifest of a kind, ordered by name ----
 * *out is a new array (free with the matching release, which releases every item too); it is
 * NULL with *n 0 when there is none. */
__attribute__((warn_unused_result)) int catalog_environments(catalog *c,
							     const struct env_manifest ***out /* OUT */,
							     size_t *n /* OUT */, struct err *e);
__attribute__((warn_unused_result)) int catalog_services(catalog *c,
							 const struct service_manifest ***out /* OUT */,
							 size_t *n /* OUT */, struct err *e);
void catalog_release_environments(catalog *c, const struct env_manifest **list, size_t n);
void catalog_release_services(catalog *c, const struct service_manifest **list, size_t n);

/* ---- Derived answers ---- */

/* The region called `region` of env, or NULL. */
const struct manifest_region *catalog_region(const struct env_manifest *env, const char *region);
/* The proxy port of service svc in env/region: listen_port + the region's port_offset, or, for
 * a service routed by Host without a port of its own, its shared listener's (route.port +
 * port_offset). Returns the port, 0 when the service, environment or region is unknown, -1
 * when the store failed (e). */
/* The Host by which sluice reaches svc in env/region on a shared listener (its route's first
 * host, {env} and {region} expanded) into buf. Returns 1 (buf set), 0 when the service has no
 * route by Host (or is unknown), -1 when the store failed (e). */
int catalog_route_host(catalog *c, const char *env, const char *region, const char *svc,
		       char *buf /* OUT */, size_t len, struct err *e);
int catalog_listen_port(catalog *c, const char *env, const char *region, const char *svc,
			struct err *e);
/* The runtime of env/region, resolved from the Environment manifest the first time. 0 with
 * *out NULL on a standby replica for a local region (another replica on this machine holds the
 * local runtime: runtimes_open_shared): what runs there is seen only by that replica. */
__attribute__((warn_unused_result)) int catalog_runtime(catalog *c, const char *env,
							const char *region, runtime **out /* OUT */,
							struct err *e);

#endif
