/*
 * verdicts: how fast and how safely canary verdicts are reached on simulated traffic.
 *
 * Compares sluice's anytime-valid sequential tests (src/stats/sequential.h), evaluated after
 * every request, with a Flagger-style fixed threshold checked once per interval. Reports the
 * false alarm rate over A/A runs and the median / 90th percentile number of canary requests
 * before a regression is caught. A benchmark, not a test: see docs/verification.md.
 *
 * Usage: verdicts [--runs N] [--seed S]
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats/sequential.h"

#define AA_LENGTH 20000        /* observations per A/A run */
#define AB_CAP 2000000         /* give up on an A/B run after this many observations */
#define INTERVAL 6000          /* Flagger-style check: 60 s at 100 requests/s */
#define BASE_ERR 0.01
#define SHARE 0.10
#define LAT_MU 4.605170185988091 /* log(100 ms) */
#define LAT_SIGMA 0.5

static uint64_t rng_state[4];

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256** (Blackman & Vigna) */
static uint64_t rng_next(void)
{
	uint64_t *s = rng_state;
	uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

static void rng_seed(uint64_t seed)
{
	for (int i = 0; i < 4; i++) {
		/* splitmix64 */
		uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		rng_state[i] = z ^ (z >> 31);
	}
}

static double uniform(void)
{
	return (double)(rng_next() >> 11) * 0x1.0p-53;
}

static double normal(void)
{
	double u = uniform(), v = uniform();
	return sqrt(-2 * log(u > 0 ? u : 1e-300)) * cos(2 * M_PI * v);
}

static double latency(double factor)
{
	return factor * exp(LAT_MU + LAT_SIGMA * normal());
}

enum kind { ERRORS, LATENCY };

struct scenario {
	const char *name;
	enum kind kind;
	double canary_err;   /* errors: canary error probability */
	double canary_lat;   /* latency: multiplier of the canary's latency */
	int share_change;    /* A/A: odd runs move the share from 10% to 50% halfway */
	int unknown_share;   /* sluice is not told the share */
};

static double share_at(const struct scenario *sc, int run, long i)
{
	if (sc->share_change && (run & 1) && i >= AA_LENGTH / 2)
		return 0.5;
	return SHARE;
}

/* One run of sluice's test; returns canary requests at the failure, or -1 (no failure). */
static long run_sluice(const struct scenario *sc, int run, long length, enum seq_decision *out)
{
	struct seq_counts c;
	struct seq_latency l;
	seq_counts_init(&c, 0.05, 0.25);
	seq_latency_init(&l, 0.05, 0.25, 0.9);
	long canary = 0;
	for (long i = 0; i < length; i++) {
		double share = share_at(sc, run, i);
		int is_canary = uniform() < share;
		canary += is_canary;
		double told = sc->unknown_share ? -1 : share;
		enum seq_decision d;
		if (sc->kind == ERRORS) {
			int err = uniform() < (is_canary ? sc->canary_err : BASE_ERR);
			seq_counts_observe(&c, is_canary, err, told);
			d = seq_counts_decision(&c);
		} else {
			seq_latency_observe(&l, is_canary, latency(is_canary ? sc->canary_lat : 1), told);
			d = seq_latency_decision(&l);
		}
		if (d != SEQ_CONTINUE) {
			*out = d;
			return canary;
		}
	}
	*out = SEQ_CONTINUE;
	return -1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Flagger-style: at the end of each interval, fail when the canary's error rate over the
 * interval is above the threshold (errors) or its p99 is above the threshold (latency). */
static long run_flagger(const struct scenario *sc, int run, long length, double threshold)
{
	static double lat[INTERVAL];
	long canary = 0, n_c = 0, e_c = 0;
	for (long i = 0; i < length; i++) {
		int is_canary = uniform() < share_at(sc, run, i);
		double v;
		if (sc->kind == ERRORS)
			v = uniform() < (is_canary ? sc->canary_err : BASE_ERR);
		else
			v = latency(is_canary ? sc->canary_lat : 1);
		if (is_canary) {
			canary++;
			if (sc->kind == ERRORS)
				e_c += v > 0;
			else
				lat[n_c] = v;
			n_c++;
		}
		if ((i + 1) % INTERVAL == 0) {
			int failed = 0;
			if (n_c > 0 && sc->kind == ERRORS)
				failed = (double)e_c / (double)n_c > threshold;
			if (n_c > 0 && sc->kind == LATENCY) {
				qsort(lat, (size_t)n_c, sizeof(double), cmp_double);
				failed = lat[(size_t)ceil(0.99 * (double)n_c) - 1] > threshold;
			}
			if (failed)
				return canary;
			n_c = e_c = 0;
		}
	}
	return -1;
}

static void quantiles(double *v, int n, double *med, double *p90)
{
	qsort(v, (size_t)n, sizeof(double), cmp_double);
	*med = n ? v[(n - 1) / 2] : NAN;
	*p90 = n ? v[(int)ceil(0.9 * n) - 1] : NAN;
}

int main(int argc, char **argv)
{
	int runs = 1000;
	uint64_t seed = 20261122;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoull(argv[++i], NULL, 10);
		else {
			fprintf(stderr, "usage: verdicts [--runs N] [--seed S]\n");
			return 2;
		}
	}
	if (runs < 1 || runs > 100000) {
		fprintf(stderr, "verdicts: --runs must be between 1 and 100000\n");
		return 2;
	}
	/* the p99 of the baseline latency, plus 10%: a well-tuned static threshold */
	double lat_threshold = 1.1 * exp(LAT_MU + LAT_SIGMA * 2.3263478740408408);
	double *v = malloc(sizeof(double) * (size_t)runs);
	if (!v)
		return 1;

	const struct scenario aa[] = {
		{ "A/A errors 1%, share 10% (half the runs move to 50%)", ERRORS, BASE_ERR, 1, 1, 0 },
		{ "A/A errors 1%, share 10%, share not given", ERRORS, BASE_ERR, 1, 0, 1 },
		{ "A/A latency, share 10% (half the runs move to 50%)", LATENCY, 0, 1.0, 1, 0 },
	};
	printf("runs: %d, seed: %llu, alpha 0.05, tolerance 0.25, %d observations per A/A run\n\n", runs,
	       (unsigned long long)seed, AA_LENGTH);
	/* two Flagger-style thresholds: a tight one and a looser one */
	const double err_thr[2] = { 0.01, 0.015 };
	const double lat_thr[2] = { lat_threshold, lat_threshold * 1.25 / 1.1 };
	printf("| A/A scenario | sluice false alarms | sluice passes | Flagger-style false alarms (tight) | "
	       "Flagger-style false alarms (loose) |\n");
	printf("|---|---|---|---|---|\n");
	for (size_t k = 0; k < sizeof(aa) / sizeof(aa[0]); k++) {
		int fails = 0, passes = 0, ffails[2] = { 0, 0 };
		rng_seed(seed + k * 1000003);
		for (int r = 0; r < runs; r++) {
			enum seq_decision d;
			run_sluice(&aa[k], r, AA_LENGTH, &d);
			fails += d == SEQ_FAIL;
			passes += d == SEQ_PASS;
			for (int t = 0; t < 2; t++)
				ffails[t] += run_flagger(&aa[k], r, AA_LENGTH,
							 aa[k].kind == ERRORS ? err_thr[t] : lat_thr[t]) >= 0;
		}
		printf("| %s | %.1f%% (%d/%d) | %.1f%% | %.1f%% | %.1f%% |\n", aa[k].name, 100.0 * fails / runs, fails,
		       runs, 100.0 * passes / runs, 100.0 * ffails[0] / runs, 100.0 * ffails[1] / runs);
	}

	const struct scenario ab[] = {
		{ "errors 1% -> 2%, share 10%", ERRORS, 0.02, 1, 0, 0 },
		{ "errors 1% -> 50%, share 10%", ERRORS, 0.50, 1, 0, 0 },
		{ "latency +20%, share 10%", LATENCY, 0, 1.2, 0, 0 },
		{ "errors 1% -> 2%, share 10%, share not given", ERRORS, 0.02, 1, 0, 1 },
	};
	printf("\ncanary requests before the regression is caught: median / p90 (share of runs caught)\n\n");
	printf("| A/B scenario | sluice | Flagger-style (tight) | Flagger-style (loose) |\n");
	printf("|---|---|---|---|\n");
	for (size_t k = 0; k < sizeof(ab) / sizeof(ab[0]); k++) {
		int n = 0, wrong = 0;
		double med, p90;
		rng_seed(seed + 7777 + k * 1000003);
		for (int r = 0; r < runs; r++) {
			enum seq_decision d;
			long c = run_sluice(&ab[k], r, AB_CAP, &d);
			if (d == SEQ_FAIL)
				v[n++] = (double)c;
			wrong += d == SEQ_PASS;
		}
		quantiles(v, n, &med, &p90);
		printf("| %s | %.0f / %.0f (%.1f%%, %d passed) |", ab[k].name, med, p90, 100.0 * n / runs, wrong);
		for (int t = 0; t < 2; t++) {
			if (ab[k].unknown_share) {
				printf(" - |");
				continue;
			}
			int fn = 0;
			for (int r = 0; r < runs; r++) {
				long c = run_flagger(&ab[k], r, AB_CAP / 10, ab[k].kind == ERRORS ? err_thr[t] : lat_thr[t]);
				if (c >= 0)
					v[fn++] = (double)c;
			}
			quantiles(v, fn, &med, &p90);
			printf(" %.0f / %.0f (%.1f%%) |", med, p90, 100.0 * fn / runs);
		}
		printf("\n");
	}
	printf("\nFlagger-style: checked every %d requests (60 s at 100 req/s): canary error rate over the "
	       "interval > %g%% (tight) or > %g%% (loose); canary p99 > %.0f ms (tight) or > %.0f ms (loose; "
	       "baseline p99 is %.0f ms)\n",
	       INTERVAL, 100 * err_thr[0], 100 * err_thr[1], lat_thr[0], lat_thr[1], lat_threshold / 1.1);
	free(v);
	return 0;
}
