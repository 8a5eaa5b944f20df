/*
 * runtime: the driver interface that runs instances of releases, one runtime per region.
 *
 * The control plane says what it wants (level-triggered): "N instances of this release of this
 * service in this env/region, started like this". A driver converges to it, keeps instances
 * alive (restarting crashes with backoff), checks their health over HTTP, and stops them
 * gracefully. The control plane reaches an instance at its ENDPOINT, "host:port"; how and
 * where the instance runs (a process, a container, a pod) is the driver's business alone.
 *
 * Drivers: an operation table (struct runtime_ops) per kind. runtime_open picks it by the kind
 * an Environment's region names (`runtime: local`); the runtime_* functions below are thin
 * dispatchers over it. Known kinds:
 *   - "local" (runtime_local.h): processes on this machine, state under DATA/instances.
 *   - "docker" (runtime_docker.h): containers on Docker hosts, through the Engine API.
 * A new driver (Docker, Kubernetes) implements the table, adds itself to the registry in
 * runtime.c, and must pass the conformance suite (tests/unit/runtime/conformance.h).
 *
 * Invariants every driver keeps (the conformance suite checks them):
 *   - ensure is idempotent: the same call again starts nothing, stops nothing, and leaves the
 *     generation unchanged. Instances are numbered 0..count-1 per release and region, with
 *     ids "service.env.region.version.index".
 *   - Instances outlive the runtime object and the server: runtime_close forgets, it does not
 *     stop; opening the runtime again adopts what runs (no duplicate start, no orphan).
 *   - An instance that is gone is listed exactly once as INSTANCE_STOPPED, then forgotten.
 *   - A HEALTHY instance answers HTTP at its endpoint.
 *   - Nothing blocks for more than a few milliseconds: starting, health checks and stopping
 *     progress in runtime_tick, which the server calls every 50-100 ms.
 *
 * Sharing: several regions may use one runtime object. Every local region does: they all keep
 * their instances in DATA/instances, which one object owns (it holds a lock on it). So a
 * driver must never assume it serves one region; every call names its env and region.
 *
 * Threads: a runtime belongs to the thread that opened it (the server's loop thread).
 *
 * Ownership: specs are copied by ensure; results of list are the caller's to free; a runtime
 * is freed by runtime_close. Errors: int calls return 0, or -1 with a message in e for people
 * to read (what to fix, e.g. "artifact '/x' is missing: No such file or directory").
 */
#ifndef SLUICE_RUNTIME_H
#define SLUICE_RUNTIME_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/log.h"

/* A service, env, region or version name is 1 to RUNTIME_NAME_MAX - 1 bytes: manifests allow
 * 63, and a version may carry a label (the control plane's "~baseline"). */
#define RUNTIME_NAME_MAX 80
/* Room for any id made of valid names: "service.env.region.version.index". A driver may
 * accept fewer (runtime_check_names says so before a deployment starts). */
#define RUNTIME_ID_MAX (4 * RUNTIME_NAME_MAX + 16)
/* "host:port": a DNS name of 253 bytes, ':', 5 digits, NUL. */
#define RUNTIME_ENDPOINT_MAX 264
#define RUNTIME_DETAIL_MAX 64

typedef struct runtime runtime;

/* What to run. Strings are copied by the driver. The placeholders {port}, {host}, {artifact},
 * {service}, {version}, {env}, {region} and {index} in args and env values are substituted by
 * the driver when it starts an instance ({port}: the port the instance must listen on, also
 * given as $PORT; {host}: the address of the host it runs on, where its endpoint is). */
struct instance_spec {
	const char *service, *env, *region, *version;
	const char *artifact;          /* the release's artifact: an absolute path in DATA/artifacts */
	const char *command;           /* program to exec (after substitution), e.g. "{artifact}" */
	const char *const *args;       /* NULL-terminated, without argv[0] */
	const char *const *env_vars;   /* NULL-terminated "KEY=value" */
	const char *health_path;       /* e.g. "/healthz" */
	const char *health_ca;         /* NULL: the health check speaks plain HTTP; else HTTPS,
					* the instance's certificate verified against the PEM CA
					* certificates in this file (the docker driver; the local
					* one refuses it) */
	unsigned health_interval_ms;
	unsigned health_timeout_ms;
	unsigned drain_timeout_ms;     /* graceful stop (SIGTERM) -> forced stop deadline */
};

enum instance_state {
	INSTANCE_STARTING,   /* started, not yet healthy */
	INSTANCE_HEALTHY,
	INSTANCE_UNHEALTHY,  /* was healthy, health checks now failing */
	INSTANCE_BACKOFF,    /* exited or crashed, or could not start; will be started again */
	INSTANCE_STOPPING,   /* asked to stop, waiting for it to exit */
	INSTANCE_STOPPED,    /* gone; listed once more so callers see it, then forgotten */
};

/* What the control plane sees of an instance. */
struct instance_info {
	char id[RUNTIME_ID_MAX]; /* "service.env.region.version.index" */
	char service[RUNTIME_NAME_MAX], env[RUNTIME_NAME_MAX], region[RUNTIME_NAME_MAX], version[RUNTIME_NAME_MAX];
	int index;
	char endpoint[RUNTIME_ENDPOINT_MAX]; /* "host:port" where it serves; "" while it has no
					      * running process/container to reach */
	enum instance_state state;
	unsigned restarts;    /* starts after the first one */
	unsigned failed_starts; /* restarts since it last was healthy: an instance that served and
				 * crashed is unlucky, one that never serves is broken */
	char reason[128];     /* why unhealthy / why it exited / why it cannot start */
	char detail[RUNTIME_DETAIL_MAX]; /* for people, opaque: "pid 1234", a container id */
};

/* What the server gives every driver it opens. */
struct runtime_host {
	const char *data_dir; /* the server's DATA; the local driver keeps DATA/instances */
};

/* A driver. `drv` is the driver's own object, made by open. Every function but open and close
 * has the contract of the runtime_* dispatcher of the same name below. */
struct runtime_ops {
	const char *kind;
	/* settings: the region's runtime settings (NULL = defaults); unknown keys are an error. */
	int (*open)(void **drv, const json_t *settings, const struct runtime_host *host, struct err *e);
	void (*close)(void *drv);
	/* Whether it has the same settings as an open driver of this kind could be shared with. */
	int (*same_settings)(void *drv, const json_t *settings);
	int (*check_names)(void *drv, const char *service, const char *env, const char *region,
			   const char *version, struct err *e);
	int (*ensure)(void *drv, const struct instance_spec *spec, unsigned count, struct err *e);
	int (*stop)(void *drv, const char *service, const char *env, const char *region, const char *version);
	void (*stop_all)(void *drv);
	void (*tick)(void *drv, uint64_t now_ms);
	uint64_t (*generation)(const void *drv);
	int (*list)(void *drv, const char *service, const char *env, const char *region, const char *version,
		    struct instance_info **out, size_t *n);
	int (*logs)(void *drv, const char *service, const char *env, const char *region, size_t max_bytes,
		    struct buf *out);
};

/* ---- life cycle ---- */

/* Opens a runtime of `kind` ("local") with its settings (a JSON object, or NULL for the
 * defaults). Adopts the instances that already run. Returns 0, or -1 with e: an unknown kind
 * ("unknown runtime 'x': known kinds are local"), bad settings, or a driver that cannot
 * start (its state is in use by another server). */
__attribute__((warn_unused_result)) int runtime_open(runtime **out, const char *kind, const json_t *settings,
						     const struct runtime_host *host, struct err *e);
/* The same with a given driver table, for drivers outside the registry (tests' fakes). */
__attribute__((warn_unused_result)) int runtime_open_ops(runtime **out, const struct runtime_ops *ops,
							 const json_t *settings,
							 const struct runtime_host *host, struct err *e);
/* Forgets the driver's memory; running instances keep running. NULL is ignored. */
void runtime_close(runtime *rt);
/* The kind it was opened with ("local"). */
const char *runtime_kind(const runtime *rt);
/* Whether a region with this kind and these settings can use rt (the same driver, the same
 * settings). */
int runtime_serves(const runtime *rt, const char *kind, const json_t *settings);
/* The driver's own object, for a driver's own extra calls (runtime_local.h). */
void *runtime_driver(const runtime *rt);

/* ---- what the control plane asks ---- */

/* Whether instances of this release could run here at all, by the driver's own rules for
 * names and ids (a driver may name files or containers after them). Starts nothing. The
 * executor asks before it creates a deployment, so that a release that can never run is
 * refused at once. Returns 0, or -1 with e. */
__attribute__((warn_unused_result)) int runtime_check_names(runtime *rt, const char *service, const char *env,
							    const char *region, const char *version,
							    struct err *e);
/* Converge (spec->service, env, region, version) to `count` instances: indexes 0..count-1
 * are started when missing, indexes >= count stopped gracefully, highest first. Idempotent.
 * count 0 stops them all. A changed spec applies at an instance's next start. Fails (and
 * starts nothing new) on a spec the driver cannot run: a bad name, a missing artifact, too
 * many instances. A program that starts and then fails is NOT an error here: the instance
 * goes to INSTANCE_BACKOFF with a reason, like any crash. */
__attribute__((warn_unused_result)) int runtime_ensure(runtime *rt, const struct instance_spec *spec,
						       unsigned count, struct err *e);
/* Gracefully stops every matching instance (NULL matches all). Idempotent: asking again does
 * not move the deadline. Returns 0. */
int runtime_stop(runtime *rt, const char *service, const char *env, const char *region,
		 const char *version);
/* Gracefully stops everything this runtime runs (`sluice shutdown --data-plane`). */
void runtime_stop_all(runtime *rt);

/* Does the work: sees exits, restarts after backoff, checks health, forces a stop at its
 * deadline. now_ms is CLOCK_MONOTONIC in milliseconds (loop_now). */
void runtime_tick(runtime *rt, uint64_t now_ms);
/* A number that changes whenever an instance is added or forgotten or changes state (a start,
 * health going either way, an exit, a stop): a caller that saw the same number before has
 * nothing new to look at. It only grows. */
uint64_t runtime_generation(const runtime *rt);

/* Snapshot of instances matching the filters (NULL matches all), sorted by service, env,
 * region, version, index. *out is malloc'd (NULL when *n is 0); free it. An INSTANCE_STOPPED
 * entry is returned by the first call that matches it, then forgotten. Returns 0 or -1 (out of
 * memory). */
int runtime_list(runtime *rt, const char *service, const char *env, const char *region,
		 const char *version, struct instance_info **out, size_t *n);

/* Appends up to max_bytes of the end of the logs of the matching instances (each line
 * prefixed with "[id] ", instances in id order, each given max_bytes / n) to out, after those
 * of up to 8 recently stopped matching instances (prefixed "[id stopped] "). Returns 0, or -1
 * when out's limit is reached or memory is exhausted. */
int runtime_logs(runtime *rt, const char *service, const char *env, const char *region,
		 size_t max_bytes, struct buf *out);

/* Lowercase name of a state ("healthy"), for events, JSON and the CLI. */
const char *runtime_state_name(enum instance_state s);

#endif
