/*
 * runtimes: the server's runtimes, one per region, opened from each Environment's regions.
 *
 * A region's manifest names its runtime: `runtime: local` (a kind; drivers take settings, the
 * manifest has none yet). runtimes_resolve finds an open runtime of that kind with the
 * same settings, or opens one (runtime_open), and remembers which one serves that env/region.
 * Regions share runtime objects: every local region uses the one local driver, opened at
 * start (so that the instances in DATA/instances are adopted and kept alive before any
 * manifest is read); a local region with settings other than the local driver's is refused,
 * since one object owns DATA/instances.
 *
 * Ownership: the set owns its runtimes; a runtime pointer handed out stays valid until
 * runtimes_close. Errors: 0, or -1 with e. Not thread-safe: the server's loop thread.
 */
#ifndef SLUICE_RUNTIMES_H
#define SLUICE_RUNTIMES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/manifest.h"
#include "runtime/runtime.h"
#include "util/buf.h"
#include "util/log.h"

typedef struct runtimes runtimes;

/* Opens the set with its local runtime (DATA/instances, default settings). */
__attribute__((warn_unused_result)) int runtimes_open(runtimes **out, const char *data_dir, struct err *e);
/* The same for a replica among several on one machine (docs/store.md): when another server
 * holds DATA/instances (the local runtime's lock), the set starts without its local runtime and
 * runtimes_tick tries to take it again every second; once taken, its instances are adopted as
 * after a restart. Until then a local region does not resolve. */
__attribute__((warn_unused_result)) int runtimes_open_shared(runtimes **out, const char *data_dir,
							     struct err *e);
/* 1 when the local runtime is open (always, but for a shared set still waiting for it). */
int runtimes_local_ready(const runtimes *rs);
/* The same with rt (taken) in place of the local driver: it serves every region of its kind
 * (tests: a fake runtime of kind "local"). On failure rt is closed. */
__attribute__((warn_unused_result)) int runtimes_open_with(runtimes **out, const char *data_dir,
							   runtime *rt, struct err *e);
/* Closes every runtime; instances keep running. NULL is ignored. */
void runtimes_close(runtimes *rs);

/* The runtime of region `region` (of the typed Environment manifest env) opened when none
 * serves that kind and settings yet. */
__attribute__((warn_unused_result)) int runtimes_resolve(runtimes *rs, const char *env,
							 const struct manifest_region *region,
							 runtime **out /* OUT */, struct err *e);
/* The runtime last resolved for env/region, or NULL when it never was. */
runtime *runtimes_get(const runtimes *rs, const char *env, const char *region);

/* Over every open runtime: */
void runtimes_tick(runtimes *rs, uint64_t now_ms);
/* Changes whenever one of theirs changes (the sum of their generations). */
uint64_t runtimes_generation(const runtimes *rs);
void runtimes_stop_all(runtimes *rs);
/* Instances not yet stopped, over every runtime (0 once a stop_all has finished). */
size_t runtimes_running(runtimes *rs);
/* runtime_logs over every runtime that may hold matching instances (env and region may be
 * NULL), each given max_bytes / (number of runtimes). */
int runtimes_logs(runtimes *rs, const char *service, const char *env, const char *region, size_t max_bytes,
		  struct buf *out);

#endif
