/*
 * notifier: delivers the notification outbox (store.h, "Notifications") to webhooks, on the
 * server's loop, and writes the outbox rows in the transaction of each event (the store's event
 * hook).
 *
 * Writing: notifier_new installs a store event hook (which also feeds server/evmetrics.h). For every store event that announces a
 * notification (notify_classify), it reads the deployment and writes one outbox row per
 * matching subscription, in the event's transaction: a committed event is delivered, a rolled
 * back one never is, and a server killed in between delivers it after its restart.
 *
 * Delivering: on every tick (notifier_tick), the oldest pending row of each subscription that
 * is due is sent with fetch (libcurl multi on the loop, so a slow or dead receiver never blocks
 * anything else), at most one request per subscription at a time: rows go out in order, each
 * once it was answered 2xx. Any other answer, a timeout or a refused connection marks the row
 * for another attempt after a backoff (base * 2^attempts, capped), and nothing after it goes
 * first. Each delivery carries the row's id as its unique id (CloudEvents "id", header
 * X-Sluice-Delivery) and, for a subscription with a secret, X-Sluice-Signature: sha256=HEX, the
 * HMAC-SHA256 of the body. At least once: a receiver may see an id again (an answer lost, a
 * server killed after the receiver took it, a lease handed over mid-request) and de-duplicates.
 *
 * Replicas: only the holder of the store lease "notify/deliver" delivers (taken and renewed on
 * the ticks like the services' leases, judged by the same conservative clock rule), so two
 * replicas do not send the same rows side by side; another replica takes over within a ttl of
 * the holder's death.
 *
 * Not thread-safe: the server's loop thread. Everything given is borrowed and must outlive it.
 */
#ifndef SLUICE_NOTIFIER_H
#define SLUICE_NOTIFIER_H

#include <stdint.h>

#include "loop/fetch.h"
#include "store/store.h"

typedef struct notifier notifier;

struct notifier_config {
	const char *holder;    /* this replica's id (for the lease) */
	int64_t lease_ttl_ms;  /* REPLICA_TTL_* limits */
	long timeout_ms;       /* one delivery, connect included (default 5000) */
	int64_t backoff_ms;    /* first retry after this (default 1000) */
	int64_t backoff_max_ms; /* cap (default 60000) */
};

/* NULL when out of memory. Installs the store's event hook (removed by notifier_free). */
notifier *notifier_new(store *s, fetcher *f, const struct notifier_config *cfg);
/* Cancels the requests in flight (their rows stay pending) and frees. NULL is a no-op. */
void notifier_free(notifier *n);
/* Renews the lease, sends what is due. now_ms: monotonic (loop_clock_ms). */
void notifier_tick(notifier *n, uint64_t now_ms);

struct notifier_counts {
	uint64_t delivered, failed; /* attempts since start: answered 2xx / not */
	uint64_t in_flight;
	int owner;                  /* holds the delivery lease */
};
void notifier_counts(const notifier *n, struct notifier_counts *out /* OUT */);
/* The hook also feeds the metrics of deployment events (server/evmetrics.h): appends them in
 * Prometheus text. Non-zero when b is full. */
struct buf;
int notifier_write_metrics(const notifier *n, struct buf *b);

/* Writes the outbox rows of a notification that is not a store event (the gate's refusal, a
 * flag killed): payload must have "type". In the open transaction if there is one. */
__attribute__((warn_unused_result)) int notifier_raise(store *s, const char *env, const char *service,
						       const json_t *payload, struct err *e);

#endif
