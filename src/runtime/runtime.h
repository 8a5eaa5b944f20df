/*
 * runtime: the driver that runs instances of releases in one region.
 *
 * The control plane says what it wants (level-triggered): "N instances of this release of this
 * service in this env/region, started like this". The driver converges to it, keeps instances
 * alive (restart with backoff after a crash), checks their health over HTTP, and stops them
 * gracefully. The local driver (runtime_local.c) runs processes on this machine; a Kubernetes
 * driver would implement the same calls with Deployments.
 *
 * Instances outlive the control plane: the local driver keeps each instance's state in its own
 * directory under the runtime's dir, so a restarted server re-adopts running processes (matched
 * by pid and process start time), never starting duplicates and never leaving orphans.
 *
 * Nothing here blocks for longer than a few milliseconds: starting, health checks and stopping
 * progress in runtime_tick, which the server calls every 100 ms or so.
 */
#ifndef SLUICE_RUNTIME_H
#define SLUICE_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/log.h"

/* The longest instance id, "service.env.region.version.index", plus one: it names a directory
 * and a log file ("ID.log"), which must fit in a file name (255 bytes). Four names of 63 bytes
 * do not; the executor refuses such a deployment before it starts. */
#define RUNTIME_ID_MAX 240
/* A service, env, region or version name is 1 to RUNTIME_NAME_MAX - 1 bytes: manifests allow
 * 63, and a version may carry a label (the control plane's "~baseline"). */
#define RUNTIME_NAME_MAX 80

typedef struct runtime runtime;

/* What to run. Strings are copied by the driver. The placeholders {port}, {artifact},
 * {service}, {version}, {env}, {region} and {index} in argv and env values are substituted by
 * the driver when it starts a process. */
struct instance_spec {
	const char *service, *env, *region, *version;
	const char *artifact;          /* absolute path of the release's artifact file */
	const char *command;           /* program to exec (after substitution), e.g. "{artifact}" */
	const char *const *args;       /* NULL-terminated, without argv[0] */
	const char *const *env_vars;   /* NULL-terminated "KEY=value" */
	const char *health_path;       /* e.g. "/healthz" */
	unsigned health_interval_ms;
	unsigned health_timeout_ms;
	unsigned drain_timeout_ms;     /* SIGTERM -> SIGKILL deadline when stopping */
};

enum instance_state {
	INSTANCE_STARTING,   /* process started, not yet healthy */
	INSTANCE_HEALTHY,
	INSTANCE_UNHEALTHY,  /* was healthy, health checks now failing */
	INSTANCE_BACKOFF,    /* exited or crashed; will be restarted at next_start */
	INSTANCE_STOPPING,   /* SIGTERM sent, waiting for exit */
	INSTANCE_STOPPED,    /* gone; listed once more so callers see it, then forgotten */
};

struct instance_info {
	char id[RUNTIME_ID_MAX]; /* "service.env.region.version.index" */
	char service[RUNTIME_NAME_MAX], env[RUNTIME_NAME_MAX], region[RUNTIME_NAME_MAX], version[RUNTIME_NAME_MAX];
	int index;
	int pid;              /* 0 when not running */
	int port;
	char addr[64];        /* "127.0.0.1:port" */
	enum instance_state state;
	unsigned restarts;
	int last_exit;        /* wait status of the last exit, -1 if none */
	char reason[128];     /* why unhealthy / why it exited, for events */
};

/* Opens (creating when missing) the runtime's directory and adopts the instances recorded
 * there that are still running. Returns 0 or -1 with e. */
__attribute__((warn_unused_result)) int runtime_open(runtime **out, const char *dir, struct err *e);
/* Forgets the driver's memory; running instances keep running. */
void runtime_close(runtime *rt);

/* Converge (spec->service, env, region, version) to `count` instances. Idempotent: calling it
 * again with the same arguments changes nothing. count 0 stops them all (gracefully). */
__attribute__((warn_unused_result)) int runtime_ensure(runtime *rt, const struct instance_spec *spec,
						       unsigned count, struct err *e);
/* Gracefully stops every instance of that release in that env/region. Idempotent. */
int runtime_stop(runtime *rt, const char *service, const char *env, const char *region,
		 const char *version);
/* Gracefully stops everything this runtime knows (used by `sluice server --stop-instances`). */
void runtime_stop_all(runtime *rt);

/* Does the work: reaps exits, restarts with backoff, health checks, escalates SIGTERM to
 * SIGKILL after drain_timeout_ms. Call often (every ~100 ms). now_ms is CLOCK_MONOTONIC in
 * milliseconds (loop_now). The local driver reaps its children with waitid on their pids: the
 * server must not reap with waitpid(-1) nor ignore SIGCHLD (exits would still be seen, but
 * without their status). */
void runtime_tick(runtime *rt, uint64_t now_ms);
/* A number that changes whenever an instance is added or forgotten or changes state (a start,
 * health going either way, an exit, a stop): a caller that saw the same number before has
 * nothing new to look at. */
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
/* Ports given to new instances (and to restarted ones whose port was taken), default
 * 20000-26999. Returns 0 or -1 with e when the range is not within 1024-65535. */
__attribute__((warn_unused_result)) int runtime_set_ports(runtime *rt, int lo, int hi, struct err *e);
/* Size past which an instance's log is cut to its newest half (default 10 MiB, min 1 KiB). */
void runtime_set_log_cap(runtime *rt, size_t bytes);

#endif
