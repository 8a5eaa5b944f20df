/*
 * fake_runtime: a runtime in memory, for unit tests of the control plane's shell (reconciler,
 * executor, API). It implements runtime.h's operation table under the kind "local" (so the
 * manifests' default `runtime: local` resolves to it through runtimes_open_with): ensure
 * creates instances that start at once and turn healthy at the next tick, unless the test
 * says the version is broken (then they crash-loop: backoff, restarts counting) or unhealthy
 * (running, health checks failing); stop makes them stopping, then stopped at the next tick,
 * listed once, forgotten. Endpoints are "127.0.0.1:PORT" with made-up ports; nothing listens
 * there.
 */
#ifndef SLUICE_FAKE_RUNTIME_H
#define SLUICE_FAKE_RUNTIME_H

#include "runtime/runtime.h"

/* The driver table; open it with runtime_open_ops. */
extern const struct runtime_ops fake_runtime_ops;

/* Instances of `version` (any service) crash-loop from the next tick on while broken. */
void fake_runtime_set_broken(runtime *rt, const char *version, int broken);
/* Healthy instances of `version` turn unhealthy (health checks failing, still running) at the
 * next tick while set, and healthy again at the next tick once cleared. */
void fake_runtime_set_unhealthy(runtime *rt, const char *version, int unhealthy);
/* While msg is non-NULL, ensure refuses with it (copied). */
void fake_runtime_refuse(runtime *rt, const char *msg);
/* Kills the healthy instances of version: they back off, start again and (unless the version
 * is broken) serve again, as a crash of a working release does. */
void fake_runtime_crash(runtime *rt, const char *version);
/* How many ensure calls reached the fake; how many instances it started in all. */
unsigned fake_runtime_ensures(runtime *rt);
unsigned fake_runtime_starts(runtime *rt);
/* Instances that are not stopped, of one version (NULL: any) of a service/env/region. */
unsigned fake_runtime_count(runtime *rt, const char *service, const char *env, const char *region,
			    const char *version);

#endif
