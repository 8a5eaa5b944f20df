/*
 * runtime_local: the runtime driver of kind "local": instances are processes on this machine,
 * each listening on its own port of 127.0.0.1, its endpoint "127.0.0.1:PORT".
 *
 * State lives in DATA/instances (DATA from struct runtime_host): one directory per instance
 * (state.json: what to run, pid and process start time, port, desired state; log: its output),
 * so processes outlive the server and are re-adopted by the next open (a pid whose /proc start
 * time still matches is the same process). One open driver owns that directory (a flock on
 * DATA/instances/.lock): every local region of a server shares that one object, and a second
 * server on the same DATA is refused.
 *
 * Everything about processes stays in here: pids, process groups and signals, local ports, ids
 * that name files (at most RUNTIME_LOCAL_ID_MAX - 1 bytes), log files. See docs/runtime.md.
 *
 * Settings (the region's `runtime` mapping, all optional):
 *   ports: [LOW, HIGH]   instance ports, default [20000, 26999], within 1024-65535
 *   log_cap: BYTES       a log past this size is cut to its newest half (default 10 MiB,
 *                        at least 1024)
 * The local driver's processes are reaped with waitid on their pids: its server must not reap
 * with waitpid(-1) nor ignore SIGCHLD (exits would still be seen, without their status).
 */
#ifndef SLUICE_RUNTIME_LOCAL_H
#define SLUICE_RUNTIME_LOCAL_H

#include "runtime/runtime.h"

/* An instance id names a directory and a log file ("ID.log"), which must fit in a file name
 * (255 bytes): ids are shorter than this. Four names of 63 bytes do not fit. */
#define RUNTIME_LOCAL_ID_MAX 240

/* The settings above, typed. */
struct runtime_local_settings {
	int port_lo, port_hi;
	size_t log_cap;
};

extern const struct runtime_ops runtime_local_ops;

/* What the local driver alone knows of one instance: for its own tests and tools. */
struct runtime_local_proc {
	int pid;        /* 0 when not running */
	int port;
	int last_exit;  /* wait status of the last exit, -1 if none or unknown */
};

/* Fills *out for the instance `id` of a local runtime. Returns 0, or -1 when rt is not local
 * or has no such instance. */
int runtime_local_proc(runtime *rt, const char *id, struct runtime_local_proc *out /* OUT */);

#endif
