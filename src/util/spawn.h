/*
 * spawn: starts a program in its own session, cleanly detached from the process that starts it.
 *
 * Every program sluice starts (an instance, the stage's `sluice load`) goes through here, so
 * that each gets the same clean start:
 *   - its own session and process group (setsid): a Ctrl-C or kill of the starter does not
 *     reach it, and the group can be signalled as a whole;
 *   - stdin from /dev/null; stdout and stderr to the given descriptor, or appended to the given
 *     file, or /dev/null;
 *   - NO other descriptor: every inherited one is closed, whatever its number (close_range,
 *     else a walk over /proc/self/fd, else up to RLIMIT_NOFILE), so a listening socket or a
 *     database of the starter never leaks into it;
 *   - an empty signal mask and every signal at its default disposition (the starter may block
 *     signals for a signalfd or ignore SIGPIPE, and both would survive exec);
 *   - an optional working directory and environment.
 *
 * Between fork and exec the child makes only async-signal-safe calls (the starter may have
 * threads, such as libcurl's resolver).
 *
 * Errors: spawn_start returns 0 once the program has been exec'd (a close-on-exec pipe tells
 * the parent; it waits only for the exec, a few ms at most), or -1 with e when the fork, the
 * output file, the working directory or the exec failed ("could not run 'PROG': No such file
 * or directory"). A program that starts and then fails is not an error here.
 *
 * Ownership: spawn_start copies nothing and keeps nothing; the caller's strings may go away
 * once it returns. Without `detach` the child is the caller's to reap (waitpid/waitid).
 */
#ifndef SLUICE_SPAWN_H
#define SLUICE_SPAWN_H

#include <sys/types.h>

#include "util/log.h"

struct spawn_opts {
	char *const *argv;     /* NULL-terminated; argv[0] with a '/' is a path, else found in PATH */
	char *const *envp;     /* NULL: the starter's environment */
	const char *cwd;       /* NULL: the starter's working directory */
	int out_fd;            /* >= 0: stdout and stderr go to this descriptor ... */
	const char *out_path;  /* ... else, when set, appended to this file (created 0644) ... */
			       /* ... else to /dev/null */
	int detach;            /* 1: double fork, the program is not the caller's child (nobody
				* needs to reap it); *pid is then 0 */
	const char *pid_file;  /* when set, the program's pid is written there before exec (a
				* detached program's pid, for whoever stops it later) */
	int no_close_range;    /* tests only: close descriptors by the /proc walk */
};

/* Starts o->argv. Returns 0 with *pid (may be NULL) set, or -1 with e. */
__attribute__((warn_unused_result)) int spawn_start(const struct spawn_opts *o, pid_t *pid /* OUT */,
						    struct err *e);

#endif
