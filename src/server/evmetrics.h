/*
 * evmetrics: the control plane's metrics that come from deployment events, observed as the
 * events are written (the notifier's store event hook calls evmetrics_event): how long a canary
 * stays at one step, how long a verification window takes to reach its verdict, the verdicts
 * by method and decision. Counts since the server started; times by the caller's monotonic
 * clock. Events of a transaction later rolled back are counted too (rare: a fenced write).
 *
 * Memory is fixed: the open steps of at most EVMETRICS_OPEN regions are remembered (the oldest
 * forgotten beyond that). Not thread-safe: the server's loop.
 */
#ifndef SLUICE_EVMETRICS_H
#define SLUICE_EVMETRICS_H

#include <jansson.h>
#include <stdint.h>

#include "util/buf.h"

typedef struct evmetrics evmetrics;

#define EVMETRICS_OPEN 256

evmetrics *evmetrics_new(void);
void evmetrics_free(evmetrics *m);
/* One store event (store_add_event's arguments) at now_ms. */
void evmetrics_event(evmetrics *m, int64_t deployment, const char *type, const char *region,
		     const json_t *evidence, uint64_t now_ms);
/* Appends the metrics in Prometheus text (HELP, TYPE and series). Non-zero: b is full. */
int evmetrics_write(const evmetrics *m, struct buf *b);

#endif
