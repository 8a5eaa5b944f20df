#include "proxy/hist.h"

uint64_t hist_bound(size_t i)
{
	if (i < 16)
		return i + 1;
	if (i >= HIST_FINITE)
		return UINT64_MAX;
	size_t k = 4 + (i - 16) / HIST_SUB, j = (i - 16) % HIST_SUB;
	return ((uint64_t)1 << k) + (uint64_t)(j + 1) * ((uint64_t)1 << (k - 4));
}

size_t hist_index(uint64_t v)
{
	if (v <= 16)
		return v == 0 ? 0 : (size_t)(v - 1);
	uint64_t w = v - 1; /* bounds are inclusive: v = 2^k belongs below 2^k */
	unsigned k = 63u - (unsigned)__builtin_clzll(w);
	if (k > 25)
		return HIST_FINITE;
	size_t j = (size_t)(w >> (k - 4)) - HIST_SUB;
	return 16 + (size_t)(k - 4) * HIST_SUB + j;
}

double hist_quantile(const uint64_t *counts, double q)
{
	uint64_t total = 0;
	for (size_t i = 0; i < HIST_BUCKETS; i++)
		total += counts[i];
	if (total == 0)
		return 0;
	if (q < 0)
		q = 0;
	if (q > 1)
		q = 1;
	double rank = q * (double)total;
	uint64_t seen = 0;
	for (size_t i = 0; i < HIST_BUCKETS; i++) {
		if (counts[i] == 0)
			continue;
		if ((double)(seen + counts[i]) >= rank) {
			if (i == HIST_FINITE)
				return (double)hist_bound(HIST_FINITE - 1);
			double lo = i == 0 ? 0 : (double)hist_bound(i - 1), hi = (double)hist_bound(i);
			double frac = (rank - (double)seen) / (double)counts[i];
			return lo + (hi - lo) * frac;
		}
		seen += counts[i];
	}
	return (double)hist_bound(HIST_FINITE - 1);
}

uint64_t hist_count_above(const uint64_t *counts, uint64_t threshold_us)
{
	/* Buckets wholly above the threshold: exact when the threshold is a bound. */
	uint64_t n = 0;
	for (size_t i = 0; i < HIST_BUCKETS; i++)
		if (i > 0 && hist_bound(i - 1) >= threshold_us)
			n += counts[i];
	return n;
}
