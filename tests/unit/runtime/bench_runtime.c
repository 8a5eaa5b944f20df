/*
 * bench_runtime: measures the local runtime driver with N real instances of testsrv.
 * usage: bench-runtime DIR TESTSRV N   (DIR is a data directory: instances go to DIR/instances;
 * every instance is stopped at the end)
 * Prints the time ensure takes to start them, when all are healthy, the tick's mean and
 * maximum over 3 s of ticks every 20 ms, and the time stop_all takes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "runtime/runtime.h"

static uint64_t us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static size_t count(runtime *rt, int only_healthy)
{
	struct instance_info *v;
	size_t n, k = 0;
	if (runtime_list(rt, NULL, NULL, NULL, NULL, &v, &n))
		return 0;
	for (size_t i = 0; i < n; i++)
		k += !only_healthy || v[i].state == INSTANCE_HEALTHY;
	free(v);
	return k;
}

int main(int argc, char **argv)
{
	if (argc != 4 || atoi(argv[3]) <= 0 || atoi(argv[3]) > 1000) {
		fprintf(stderr, "usage: bench-runtime DIR TESTSRV N (1..1000)\n");
		return 2;
	}
	unsigned n = (unsigned)atoi(argv[3]);
	runtime *rt;
	struct err e;
	struct runtime_host host = {.data_dir = argv[1]};
	if (runtime_open(&rt, "local", NULL, &host, &e)) {
		fprintf(stderr, "%s\n", e.msg);
		return 1;
	}
	static const char *none[] = {NULL};
	struct instance_spec s = {.service = "bench", .env = "e", .region = "r", .version = "v1",
				  .artifact = argv[2], .command = "{artifact}", .args = none, .env_vars = none,
				  .health_interval_ms = 100, .health_timeout_ms = 500, .drain_timeout_ms = 1000};
	uint64_t t0 = us();
	if (runtime_ensure(rt, &s, n, &e)) {
		fprintf(stderr, "%s\n", e.msg);
		runtime_close(rt);
		return 1;
	}
	uint64_t t1 = us();
	printf("ensure %u instances: %.1f ms (%.2f ms each)\n", n, (t1 - t0) / 1000.0, (t1 - t0) / 1000.0 / n);
	uint64_t max = 0, sum = 0;
	int ticks = 0, healthy_ms = -1;
	while (us() - t1 < 3000000) {
		uint64_t a = us();
		runtime_tick(rt, a / 1000);
		uint64_t d = us() - a;
		max = d > max ? d : max;
		sum += d;
		ticks++;
		if (healthy_ms < 0 && count(rt, 1) == n)
			healthy_ms = (int)((us() - t1) / 1000);
		usleep(20000);
	}
	printf("all healthy after %d ms; tick mean %.2f ms, max %.2f ms over %d ticks\n", healthy_ms,
	       sum / 1000.0 / ticks, max / 1000.0, ticks);
	t0 = us();
	runtime_stop_all(rt);
	printf("stop_all: %.1f ms\n", (us() - t0) / 1000.0);
	for (int i = 0; i < 200 && count(rt, 0); i++) {
		runtime_tick(rt, us() / 1000);
		usleep(20000);
	}
	runtime_close(rt);
	return healthy_ms < 0;
}
