/*
 * keeper: keeps the proxy's listening sockets open across a crash of the process that serves
 * them, and starts that process again at once, from the routes saved in --state.
 *
 * `sluice proxy --state FILE` runs as two processes. The keeper (the pid its parent sees) does
 * no network I/O and parses nothing from a peer: it forks the serving process, holds a
 * duplicate of every listening socket that process opens (handed over with SCM_RIGHTS on a
 * socketpair), and waits. When the serving process dies of anything but a requested stop, the
 * keeper forks a new one that finds those sockets already listening: connections that arrive
 * meanwhile wait in the kernel's accept queue instead of being refused, so only the requests
 * the dead process held are lost, and nothing needs the control plane to be up.
 *
 * The keeper stops when the serving process exits by itself (status 0 after SIGTERM/SIGINT,
 * which the keeper forwards), and passes on a failure to start (the process never said it was
 * ready), so a bad configuration is reported once instead of restarted for ever. A process
 * that dies within a second of starting is started again after 0.1 s, doubling up to 5 s.
 * If the keeper itself is killed, so is the serving process (PR_SET_PDEATHSIG), so that a new
 * proxy can take the addresses at once: the whole proxy died.
 *
 * Invariants: the keeper holds exactly one duplicate per (listener key, worker index) that the
 * serving process last reported with keeper_keep and has not withdrawn with keeper_drop. The
 * keys are opaque strings (at most KEEPER_KEY_MAX bytes). Every function below but
 * keeper_start is for the serving process; without a keeper (no --state, or keeper_start not
 * called) they do nothing, and keeper_take finds nothing. Not thread-safe: the proxy's admin
 * thread calls them.
 */
#ifndef SLUICE_PROXY_KEEPER_H
#define SLUICE_PROXY_KEEPER_H

#include "util/log.h"

#define KEEPER_KEY_MAX 300

/*
 * Forks the serving process and supervises it. Call it before any thread is created, with
 * SIGTERM and SIGINT blocked. Returns 0 in the serving process (go on and serve), 1 in the
 * keeper once it is done, with the status to exit with in *status (OUT), or -1 with e set when
 * the keeper could not start (nothing forked).
 */
__attribute__((warn_unused_result)) int keeper_start(int *status, struct err *e);
/* A listening socket inherited from the previous serving process for (key, idx), taken (the
 * caller owns it now), or -1. */
int keeper_take(const char *key, unsigned idx);
/* Hands the keeper a duplicate of fd (still the caller's) as (key, idx); replaces the one it
 * had. Best effort: a failure is logged, and the listener just does not outlive a crash. */
void keeper_keep(const char *key, unsigned idx, int fd);
/* Withdraws every index of key: the keeper closes its duplicates. */
void keeper_drop(const char *key);
/* Startup is over: closes the inherited sockets nobody took (routes no longer in the state),
 * withdraws them, and tells the keeper the process serves (a later death is restarted). */
void keeper_ready(void);

#endif
