/*
 * store benchmark: operations per second of the store drivers, through the store interface
 * as the server uses it. For each location on the command line:
 *   write  transactions of store_begin, store_create_deployment, store_add_event, store_commit
 *          (a new deployment and its first event: what starting a pipeline writes)
 *   update transactions of store_begin, store_update_deployment, store_add_event, store_commit
 *          (one pipeline step)
 *   read   store_get_stable of one of 100 service/region rows (the reconciler's question)
 * each for a fixed time, one handle, one thread; then an artifact of 64 MiB copied into the
 * store (artifacts_share: what an upload adds with a shared store) and made again from it in
 * another directory (artifacts_fetch: what a replica that never saw the upload does before
 * starting it), in MB/s. One line per driver.
 *
 * usage: store-bench [--seconds S] LOCATION...   (bench/store/run.sh runs both drivers)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/artifacts.h"
#include "store/store.h"
#include "util/sha256.h"

#define ARTIFACT_MB 64

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, const struct err *e)
{
	fprintf(stderr, "store-bench: %s: %s\n", what, e->msg);
	return 1;
}

/* Runs op until `seconds` pass; *rate gets operations per second. */
#define TIMED(seconds, rate, body)                                        \
	do {                                                              \
		double t0_ = now_s(), t_ = t0_;                           \
		long n_ = 0;                                              \
		while (t_ - t0_ < (seconds)) {                            \
			for (int k_ = 0; k_ < 16; k_++, n_++) {           \
				body                                      \
			}                                                 \
			t_ = now_s();                                     \
		}                                                         \
		*(rate) = (double)n_ / (t_ - t0_);                        \
	} while (0)

/* MB/s of artifacts_share and artifacts_fetch of one ARTIFACT_MB artifact (distinct content
 * per call, so nothing is found stored already). */
static int bench_artifacts(store *s, double *share, double *fetch, struct err *e)
{
	char dir[] = "/tmp/sluice-bench-art.XXXXXX", other[64], id[ARTIFACTS_ID_LEN + 1], hex[65];
	if (!mkdtemp(dir))
		return err_set(e, "mkdtemp failed");
	snprintf(other, sizeof(other), "%s/other", dir);
	mkdir(other, 0755);
	size_t n = (size_t)ARTIFACT_MB << 20;
	unsigned char *buf = malloc(n), dg[32];
	if (!buf)
		return err_set(e, "out of memory");
	unsigned x = (unsigned)time(NULL) | 1u;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5; /* incompressible, like a binary */
		buf[i] = (unsigned char)x;
	}
	struct sha256 h;
	sha256_init(&h);
	sha256_update(&h, buf, n);
	sha256_final(&h, dg);
	sha256_hex(dg, hex);
	snprintf(id, sizeof(id), "sha256:%s", hex);
	struct artifact_writer *w;
	int created, rc = artifacts_begin(&w, dir, id, n, e);
	if (!rc && (rc = artifacts_write(w, buf, n, e)))
		artifacts_abort(w);
	if (!rc)
		rc = artifacts_commit(w, &created, e);
	free(buf);
	double t0 = now_s();
	if (!rc)
		rc = artifacts_share(s, dir, id, e);
	double t1 = now_s();
	if (!rc)
		rc = artifacts_fetch(s, other, id, n, e);
	double t2 = now_s();
	*share = ARTIFACT_MB * 1.048576 / (t1 - t0);
	*fetch = ARTIFACT_MB * 1.048576 / (t2 - t1);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "store-bench: could not remove %s\n", dir);
	return rc ? -1 : 0;
}

static int bench(const char *location, double seconds)
{
	store *s;
	struct err e;
	if (store_open(&s, location, &e))
		return fail("open", &e);
	json_t *state = json_pack("{s:s,s:i,s:[i,i,i]}", "phase", "pilot", "step", 2, "weights", 5, 25, 50);
	char svc[32], region[32], v[64];
	for (int i = 0; i < 100; i++) {
		snprintf(svc, sizeof(svc), "svc-%d", i % 20);
		snprintf(region, sizeof(region), "r%d", i / 20);
		if (store_set_stable(s, svc, "production", region, "v1.0.0", 1, &e))
			return fail("set stable", &e);
	}
	double writes, updates, reads;
	int64_t id = 0;
	TIMED(seconds, &writes, {
		if (store_begin(s, &e) ||
		    store_create_deployment(s, "svc-1", "production", "v2.0.0", "deploy", state, &id, &e) ||
		    store_add_event(s, id, "start", NULL, "pipeline started", NULL, &e) ||
		    store_commit(s, &e))
			return fail("write transaction", &e);
	});
	TIMED(seconds, &updates, {
		if (store_begin(s, &e) || store_update_deployment(s, id, state, "active", NULL, &e) ||
		    store_add_event(s, id, "step", "r1", "traffic 25%", state, &e) || store_commit(s, &e))
			return fail("update transaction", &e);
	});
	unsigned i = 0;
	TIMED(seconds, &reads, {
		snprintf(svc, sizeof(svc), "svc-%u", i % 20);
		snprintf(region, sizeof(region), "r%u", (i++ / 20) % 5);
		if (store_get_stable(s, svc, "production", region, v, sizeof(v), &e))
			return fail("get stable", &e);
	});
	double share = 0, fetch = 0;
	if (bench_artifacts(s, &share, &fetch, &e))
		return fail("artifact", &e);
	const char *driver = strncmp(location, "postgres", 8) ? "sqlite" : "postgres";
	printf("%-9s %12.0f %12.0f %12.0f %12.0f %12.0f\n", driver, writes, updates, reads, share, fetch);
	json_decref(state);
	store_close(s);
	return 0;
}

int main(int argc, char **argv)
{
	double seconds = 3;
	int i = 1;
	if (argc > 2 && !strcmp(argv[1], "--seconds")) {
		seconds = atof(argv[2]);
		i = 3;
	}
	if (i >= argc || seconds <= 0) {
		fprintf(stderr, "usage: store-bench [--seconds S] LOCATION...\n");
		return 2;
	}
	printf("%-9s %12s %12s %12s %12s %12s   (operations per second, one handle, %.0f s each; "
	       "artifact of %d MiB in MB/s)\n",
	       "driver", "write tx/s", "update tx/s", "reads/s", "art. in MB/s", "art. out MB/s", seconds,
	       ARTIFACT_MB);
	for (; i < argc; i++)
		if (bench(argv[i], seconds))
			return 1;
	return 0;
}
