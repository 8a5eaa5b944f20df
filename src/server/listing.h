/*
 * listing: the instances of many regions, read with one runtime_list per runtime rather than
 * one per region. A local runtime's list scans every instance it has, so asking it region by
 * region is quadratic in the regions (3,000 of them: 9 million comparisons); a listing asks
 * each runtime once, at its first lookup, and finds a region's instances by bisection in the
 * driver's order (runtime.h: sorted by service, env, region, version, index).
 *
 * A listing is a snapshot: what a runtime did after its first lookup is not in it. A caller
 * that changes a region (starts or stops instances) lists that region again itself.
 * Ownership: the listing owns its copies; what a lookup hands out is valid until
 * listing_free. One listing per pass or answer, on the server's loop thread.
 */
#ifndef SLUICE_LISTING_H
#define SLUICE_LISTING_H

#include <stddef.h>

#include "runtime/runtime.h"

typedef struct listing listing;

/* Of one service (copied), or of every service when service is NULL. NULL when out of
 * memory. */
listing *listing_new(const char *service);
/* NULL is a no-op. */
void listing_free(listing *l);

/* The instances of service/env/region in rt (service must be the listing's, when it has one):
 * 0 with *in (NULL when *n is 0) pointing into the listing; -1 when rt could not list its
 * instances (out of memory), *n then 0. An INSTANCE_STOPPED entry is in the snapshot of the
 * listing that listed it first (runtime_list forgets it then). */
__attribute__((warn_unused_result)) int listing_region(listing *l, runtime *rt, const char *service,
						       const char *env, const char *region,
						       const struct instance_info **in /* OUT */,
						       size_t *n /* OUT */);

#endif
