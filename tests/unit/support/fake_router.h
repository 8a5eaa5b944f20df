/*
 * fake_router: a traffic router in memory, for unit tests of the control plane's shell
 * (verifier, reconciler, executor, API). It implements router.h's operation table: puts are
 * recorded (and counted), a backend that left its route reads drained unless the test holds
 * it, the counters snapshot is whatever the test sets, and a failure can be injected.
 */
#ifndef SLUICE_FAKE_ROUTER_H
#define SLUICE_FAKE_ROUTER_H

#include <jansson.h>
#include <stdint.h>

#include "router/router.h"

router *fake_router_new(void);
/* The snapshot router_latest_metrics hands out (stolen; NULL: none yet) and its request time. */
void fake_router_set_metrics(router *r, json_t *snapshot, uint64_t at);
/* The routes as last put: {"NAME": {"port", "versions": {"V": {"weight", "backends": [..]}}}}
 * (borrowed). */
const json_t *fake_router_routes(router *r);
/* How many puts and deletes reached the fake (identical puts included). */
unsigned fake_router_puts(router *r);
unsigned fake_router_deletes(router *r);
/* While set, a backend that left its route reads DRAINING with one request in flight. */
void fake_router_hold_drains(router *r, int hold);
/* While set, ensure, put and delete fail with "fake router: down". */
void fake_router_fail(router *r, int fail);

#endif
