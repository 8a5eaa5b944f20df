/*
 * faulty_store: a store driver for tests that forwards every operation to a real store and
 * fails the ones the test names, as a lost connection would (-1, "store: connection lost
 * (injected)"). For checking that a store failure is answered as a failure (HTTP 500, a gate
 * that refuses to say ok), never as "not found" or "nothing there".
 *
 * Ownership: the wrapper owns inner (store_close of the wrapper closes it). The fault switch
 * is the wrapper's and lives until store_close. Not thread-safe (tests).
 */
#ifndef SLUICE_FAULTY_STORE_H
#define SLUICE_FAULTY_STORE_H

#include "store/store.h"

struct faulty_store;

/* Wraps inner (taken, also on failure) into a new handle *out; *f is its fault switch. */
__attribute__((warn_unused_result)) int faulty_store_open(store **out, struct faulty_store **f,
							  store *inner, struct err *e);
/* ops: NULL (no fault), "*" (every operation but close, changes and rollback), or a
 * comma-separated list of store_ops member names ("get_stable,list_releases"). Copied. */
void faulty_store_fail(struct faulty_store *f, const char *ops);
/* Runs fn(arg) once, just before the next call of the operation `op` is forwarded (another
 * writer acting between a read and a write, deterministically). fn may use other handles. */
void faulty_store_before(struct faulty_store *f, const char *op, void (*fn)(void *arg), void *arg);
/* How many operations failed because of the switch since the wrapper was opened. */
unsigned faulty_store_failures(const struct faulty_store *f);

#endif
