/*
 * evmetrics and util/histo: deployment events into step durations, times to verdict and
 * verdict counts, written as Prometheus histograms (cumulative buckets, +Inf, _sum, _count).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "server/evmetrics.h"
#include "util/histo.h"

Test(histo, cumulative_buckets)
{
	static const double bounds[] = {0.1, 1, 10};
	struct histo h;
	histo_init(&h, bounds, 3);
	histo_observe(&h, 0.05);
	histo_observe(&h, 0.1); /* on a bound: counted in that bucket (le) */
	histo_observe(&h, 5);
	histo_observe(&h, 100);
	struct buf b;
	buf_init(&b, 1 << 16);
	cr_assert_eq(histo_write(&h, &b, "x_seconds", "a=\"b\""), 0);
	cr_assert_str_eq(b.data, "x_seconds_bucket{a=\"b\",le=\"0.1\"} 2\n"
				 "x_seconds_bucket{a=\"b\",le=\"1\"} 2\n"
				 "x_seconds_bucket{a=\"b\",le=\"10\"} 3\n"
				 "x_seconds_bucket{a=\"b\",le=\"+Inf\"} 4\n"
				 "x_seconds_sum{a=\"b\"} 105.150000\n"
				 "x_seconds_count{a=\"b\"} 4\n");
	buf_reset(&b);
	cr_assert_eq(histo_write(&h, &b, "y", ""), 0);
	cr_assert_not_null(strstr(b.data, "y_bucket{le=\"+Inf\"} 4\ny_sum 105.150000\ny_count 4\n"), "%s", b.data);
	buf_release(&b);
}

static const char *series(struct buf *b, const char *prefix)
{
	const char *p = strstr(b->data, prefix);
	return p ? p + strlen(prefix) : "";
}

Test(evmetrics, steps_and_verdicts)
{
	evmetrics *m = evmetrics_new();
	json_t *pass = json_pack("{s:s,s:s}", "method", "sequential", "verdict", "pass");
	json_t *fail = json_pack("{s:s,s:s}", "method", "threshold", "verdict", "fail");
	evmetrics_event(m, 1, "started", NULL, NULL, 0);
	evmetrics_event(m, 1, "step", "eu", NULL, 1000);
	evmetrics_event(m, 1, "passed", "eu", pass, 1400);   /* verdict after 0.4 s */
	evmetrics_event(m, 1, "step", "eu", NULL, 3000);     /* the first step lasted 2 s */
	evmetrics_event(m, 1, "step", "us", NULL, 3000);
	evmetrics_event(m, 1, "aborted", "us", fail, 3020);  /* verdict 0.02 s; step 0.02 s */
	evmetrics_event(m, 1, "promoted", "eu", NULL, 4000); /* the second step lasted 1 s */
	evmetrics_event(m, 1, "rolled_back", NULL, NULL, 4000);
	evmetrics_event(m, 2, "passed", "eu", pass, 5000);   /* no step seen: counted, not timed */
	struct buf b;
	buf_init(&b, 1 << 16);
	cr_assert_eq(evmetrics_write(m, &b), 0);
	cr_assert(!strncmp(series(&b, "sluice_verdicts_total{method=\"sequential\",decision=\"pass\"} "), "2\n", 2), "%s", b.data);
	cr_assert(!strncmp(series(&b, "sluice_verdicts_total{method=\"threshold\",decision=\"fail\"} "), "1\n", 2));
	cr_assert(!strncmp(series(&b, "sluice_step_duration_seconds_count "), "3\n", 2), "%s", b.data);
	cr_assert(!strncmp(series(&b, "sluice_step_duration_seconds_sum "), "3.020000\n", 9), "%s", b.data);
	cr_assert(!strncmp(series(&b, "sluice_time_to_verdict_seconds_count "), "2\n", 2), "%s", b.data);
	cr_assert(!strncmp(series(&b, "sluice_time_to_verdict_seconds_sum "), "0.420000\n", 9), "%s", b.data);
	cr_assert(!strncmp(series(&b, "sluice_step_duration_seconds_bucket{le=\"0.025\"} "), "1\n", 2), "%s", b.data);
	cr_assert(!strncmp(series(&b, "sluice_deployment_events_total{outcome=\"rolled_back\"} "), "1\n", 2));
	cr_assert(!strncmp(series(&b, "sluice_deployment_events_total{outcome=\"started\"} "), "1\n", 2));
	buf_release(&b);
	json_decref(pass);
	json_decref(fail);
	evmetrics_free(m);
}

Test(evmetrics, bounded_memory)
{
	evmetrics *m = evmetrics_new();
	/* more open steps than it remembers: the oldest are forgotten, nothing breaks */
	for (int i = 1; i <= 3 * EVMETRICS_OPEN; i++)
		evmetrics_event(m, i, "step", "eu", NULL, (uint64_t)i);
	for (int i = 1; i <= 3 * EVMETRICS_OPEN; i++)
		evmetrics_event(m, i, "promoted", "eu", NULL, (uint64_t)i + 10);
	struct buf b;
	buf_init(&b, 1 << 16);
	cr_assert_eq(evmetrics_write(m, &b), 0);
	char want[64];
	snprintf(want, sizeof(want), "%d\n", EVMETRICS_OPEN);
	cr_assert(!strncmp(series(&b, "sluice_step_duration_seconds_count "), want, strlen(want)), "%s", b.data);
	buf_release(&b);
	evmetrics_free(m);
}
