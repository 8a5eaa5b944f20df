/*
 * conformance: what every runtime driver must do, as tests any driver can run.
 *
 * Each function below is one property of the interface in runtime.h, checked through the
 * interface alone (ids, endpoints, states, generations, logs; never a pid or a file), against
 * instances of the test server (testsrv.c): it answers HTTP at the endpoint the driver gives
 * it (GET / and GET /healthz: 200), prints every request line to its output, and on SIGTERM
 * prints "terminating on SIGTERM" and exits 0.
 *
 * A driver is described by a conformance_driver (a factory) and registered with
 * CONFORMANCE_TESTS(suite, &driver, init, fini), which declares one Criterion test per
 * property; init gives each test a fresh, empty state, fini removes whatever a failed test
 * left running. test_conformance_local.c does it for the local driver; a Docker driver would
 * do the same in its own file.
 */
#ifndef SLUICE_TEST_CONFORMANCE_H
#define SLUICE_TEST_CONFORMANCE_H

#include "runtime/runtime.h"

struct conformance_driver {
	/* Opens the driver on this test's state: the same state every time, so that a second
	 * open sees (and must adopt) what the first one started. 0, or -1 with e. */
	int (*open)(runtime **out, struct err *e);
	/* A spec that runs the test server as release `version` of `service` in env "test",
	 * region `region`, with short health intervals and a drain timeout of a few seconds. */
	struct instance_spec (*spec)(const char *service, const char *region, const char *version);
	/* The same, but with an artifact the driver cannot find: ensure must refuse it. */
	struct instance_spec (*unrunnable)(const char *service, const char *region, const char *version);
};

void conformance_ensure_starts_healthy_instances_that_answer(const struct conformance_driver *d);
void conformance_ensure_again_changes_nothing(const struct conformance_driver *d);
void conformance_scale_up_and_down(const struct conformance_driver *d);
void conformance_stop_is_graceful_and_listed_once(const struct conformance_driver *d);
void conformance_list_filters_and_sorts(const struct conformance_driver *d);
void conformance_generation_changes_with_state(const struct conformance_driver *d);
void conformance_logs_are_prefixed_and_bounded(const struct conformance_driver *d);
void conformance_reopen_adopts_without_duplicate_or_orphan(const struct conformance_driver *d);
void conformance_unrunnable_spec_is_refused(const struct conformance_driver *d);
void conformance_stop_all_stops_everything(const struct conformance_driver *d);

#define CONFORMANCE_TEST_(suite, drv, fn, init_, fini_) \
	Test(suite, fn, .init = init_, .fini = fini_) { conformance_##fn(drv); }

#define CONFORMANCE_TESTS(suite, drv, init_, fini_)                                                   \
	CONFORMANCE_TEST_(suite, drv, ensure_starts_healthy_instances_that_answer, init_, fini_)      \
	CONFORMANCE_TEST_(suite, drv, ensure_again_changes_nothing, init_, fini_)                     \
	CONFORMANCE_TEST_(suite, drv, scale_up_and_down, init_, fini_)                                \
	CONFORMANCE_TEST_(suite, drv, stop_is_graceful_and_listed_once, init_, fini_)                 \
	CONFORMANCE_TEST_(suite, drv, list_filters_and_sorts, init_, fini_)                           \
	CONFORMANCE_TEST_(suite, drv, generation_changes_with_state, init_, fini_)                    \
	CONFORMANCE_TEST_(suite, drv, logs_are_prefixed_and_bounded, init_, fini_)                    \
	CONFORMANCE_TEST_(suite, drv, reopen_adopts_without_duplicate_or_orphan, init_, fini_)        \
	CONFORMANCE_TEST_(suite, drv, unrunnable_spec_is_refused, init_, fini_)                       \
	CONFORMANCE_TEST_(suite, drv, stop_all_stops_everything, init_, fini_)

#endif
