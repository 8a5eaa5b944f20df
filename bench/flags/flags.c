/*
 * bench/flags: evaluations per second of flag targeting on one core (a benchmark, not a
 * test). The rule is the one issue 14 names: a `fractional` split inside an `if`, with an
 * `in` over the context in front of it, evaluated for rotating targeting keys.
 *
 * Usage: flags [SECONDS]   (default 3; prints evaluations/s for each rule)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flags/flagset.h"

static const char *const set =
	"{\"flags\": {"
	" \"checkout\": {\"state\": \"ENABLED\", \"variants\": {\"on\": true, \"off\": false},"
	"  \"defaultVariant\": \"off\", \"targeting\": {\"if\": ["
	"   {\"in\": [{\"var\": \"email\"}, [\"a@x.io\", \"b@x.io\", \"c@x.io\"]]}, \"on\","
	"   {\"fractional\": [[\"on\", 10], [\"off\", 90]]}]}},"
	" \"static\": {\"state\": \"ENABLED\", \"variants\": {\"a\": \"A\", \"b\": \"B\"}, \"defaultVariant\": \"a\"},"
	" \"semver\": {\"state\": \"ENABLED\", \"variants\": {\"new\": 1, \"old\": 0}, \"defaultVariant\": \"old\","
	"  \"targeting\": {\"if\": [{\"sem_ver\": [{\"var\": \"version\"}, \">=\", \"2.1.0\"]}, \"new\", \"old\"]}}"
	"}}";

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 3;
	if (!(secs > 0 && secs <= 60)) {
		fprintf(stderr, "usage: flags [SECONDS 0..60]\n");
		return 2;
	}
	flagset *fs = NULL;
	struct err e;
	if (flagset_parse("bench.json", set, strlen(set), &fs, &e)) {
		fprintf(stderr, "%s\n", e.msg);
		return 1;
	}
	enum { NCTX = 1024 };
	json_t *ctx[NCTX];
	for (int i = 0; i < NCTX; i++) {
		char key[32], ver[16];
		snprintf(key, sizeof(key), "user-%d", i * 7919);
		snprintf(ver, sizeof(ver), "%d.%d.%d", i % 3, i % 5, i % 7);
		ctx[i] = json_pack("{s:s, s:s, s:s}", "targetingKey", key, "email", i % 50 ? "z@y.io" : "b@x.io",
				   "version", ver);
	}
	const char *keys[] = {"checkout", "static", "semver"};
	char buf[4096];
	struct logic_arena a;
	logic_arena_init(&a, buf, sizeof(buf));
	printf("%-10s %14s %12s\n", "flag", "evaluations/s", "ns/eval");
	for (int k = 0; k < 3; k++) {
		long n = 0, matched = 0;
		double t0 = now_s(), t;
		do {
			for (int i = 0; i < 4096; i++) {
				struct flag_result r;
				flagset_eval(fs, keys[k], ctx[(n + i) & (NCTX - 1)], 1700000000, &a, &r);
				matched += r.reason[0] == 'T';
				logic_arena_reset(&a);
			}
			n += 4096;
			t = now_s() - t0;
		} while (t < secs);
		printf("%-10s %14.0f %12.1f   (%ld targeting matches)\n", keys[k], n / t, t * 1e9 / n, matched);
	}
	for (int i = 0; i < NCTX; i++)
		json_decref(ctx[i]);
	logic_arena_release(&a);
	flagset_free(fs);
	return 0;
}
