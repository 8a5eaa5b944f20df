/*
 * replica: which services this control-plane replica drives, through leases in the store
 * (store_lease_*: one lease per service, "service/NAME", with an epoch, by the store's clock).
 *
 * Several replicas share one store (PostgreSQL). Each one, on its ticks, renews the leases it
 * holds and takes the ones that are free (never held, released, expired) when it can drive
 * them; it drives (executor) and converges (reconciler) only the services it owns, while every
 * replica answers the whole API. When a replica dies, its leases expire and another replica
 * takes them, re-adopting the service's instances and routes from what is stored and what runs.
 *
 * Ownership is judged by this process's monotonic clock conservatively: a lease counts as
 * owned until (the moment its last renewal was *sent*) + ttl - a margin, which is never later
 * than the expiry the store computed. That is what keeps a replica from driving what it may
 * have lost; what keeps a paused replica from *writing* what it lost is the fence:
 * replica_fence in the transaction of every state write (the executor's persist), refused
 * (STORE_FENCED) once another tenure began.
 *
 * A replica that cannot drive a service's regions (the local runtime's instance directory held
 * by another replica on this machine: runtimes_local_ready) takes no lease; it keeps answering.
 *
 * With SQLite (one server per file) the same code runs with one replica: it takes every lease
 * at once, and a restarted server with the same id takes them back at once.
 *
 * Errors: replica_fence returns 0, STORE_FENCED or -1 with e (store failure). Not thread-safe:
 * the server's loop thread. Everything given is borrowed and must outlive the replica.
 */
#ifndef SLUICE_REPLICA_H
#define SLUICE_REPLICA_H

#include <jansson.h>
#include <stdint.h>

#include "server/catalog.h"
#include "server/runtimes.h"
#include "store/store.h"

typedef struct replica replica;

#define REPLICA_ID_MAX 128
#define REPLICA_TTL_DEFAULT_MS 10000
#define REPLICA_TTL_MIN_MS 500
#define REPLICA_TTL_MAX_MS 600000

/* id: 1..REPLICA_ID_MAX-1 bytes, unique among the replicas (copied); ttl_ms within the limits
 * above. rts may be NULL (every service can be driven). NULL when out of memory. */
replica *replica_new(store *s, catalog *c, runtimes *rts, const char *id, int64_t ttl_ms);
/* Releases every lease held (the others take them at once) and frees. NULL is a no-op. */
void replica_free(replica *r);

/* Renews what is held (every ttl/3), takes what is free (every pass: at most once a second,
 * sooner when the store changed, e.g. another replica released a lease). now_ms: monotonic. */
void replica_tick(replica *r, uint64_t now_ms);
/* 1 when this replica owns the service now (see the clock rule above), else 0. */
int replica_owns(replica *r, const char *service);
/* In the caller's open transaction: the store's check that this replica still holds the
 * service's tenure it believes it holds. 0, STORE_FENCED (roll back; the lease is then dropped
 * here too) or -1 with e. */
__attribute__((warn_unused_result)) int replica_fence(replica *r, const char *service, struct err *e);
const char *replica_id(const replica *r);
/* Services owned now (for logs and tests). */
size_t replica_owned_count(const replica *r);

#endif
