/*
 * loop: a small event loop over epoll, one per thread.
 *
 * File descriptors get a callback for readiness; timers are one-shot and kept in a binary
 * heap, so the wait timeout is the nearest deadline (no timerfd per timer). Time is the
 * monotonic clock in milliseconds, cached once per iteration (loop_now) so hot paths do not
 * make a system call to read it. Nothing here is thread-safe: a loop belongs to the thread
 * that runs it; loop_wake is the one call another thread may make.
 */
#ifndef SLUICE_LOOP_H
#define SLUICE_LOOP_H

#include <stdint.h>

typedef struct loop loop;

enum {
	LOOP_READ = 1,
	LOOP_WRITE = 2,
	LOOP_EDGE = 4, /* edge-triggered: the callback must drain until EAGAIN */
	/* Opt-in: also report LOOP_RDHUP when the peer has shut down its side (EPOLLRDHUP/HUP),
	 * so that an edge-triggered reader may stop after a short read unless EOF is pending. */
	LOOP_RDHUP = 8,
};

/* `events` is the subset of LOOP_READ|LOOP_WRITE that is ready; errors and hang-ups are
 * reported as both, so the callback's next read or write sees them. */
typedef void loop_io_fn(loop *l, int fd, unsigned events, void *arg);
typedef void loop_timer_fn(loop *l, void *arg);

/* Returns NULL when epoll or memory is unavailable. */
loop *loop_new(void);
/* Closes nothing but the loop's own descriptors; callers close theirs. */
void loop_free(loop *l);

/* Registers fd (non-blocking is the caller's job). Returns 0 or -1 with errno. */
__attribute__((warn_unused_result)) int loop_add(loop *l, int fd, unsigned events, loop_io_fn *fn, void *arg);
/* Changes the events of a registered fd. Returns 0 or -1 with errno. */
int loop_mod(loop *l, int fd, unsigned events);
/* Unregisters fd; call before close(fd). Safe from inside the fd's own callback. */
void loop_del(loop *l, int fd);
/* Unregisters and closes fd with one system call instead of two: the kernel drops a closed
 * descriptor from the epoll set. Only for an fd never duplicated (dup, fork) while registered. */
void loop_close(loop *l, int fd);

/* Arms a one-shot timer `ms` from now. Returns its id (never 0), or 0 when out of memory. */
uint64_t loop_timer(loop *l, uint64_t ms, loop_timer_fn *fn, void *arg);
/* Cancels a timer that has not fired; unknown or fired ids are ignored. */
void loop_timer_cancel(loop *l, uint64_t id);

/* Monotonic milliseconds, as of the start of this iteration. */
uint64_t loop_now(const loop *l);
/* Reads the clock now (monotonic ms); usable without a loop. */
uint64_t loop_clock_ms(void);

/* Runs until loop_stop. Returns 0, or -1 when epoll_wait fails for a reason other than EINTR. */
int loop_run(loop *l);
void loop_stop(loop *l);
/* Wakes a loop blocked in epoll_wait; safe from another thread or a signal handler. */
void loop_wake(loop *l);

#endif
