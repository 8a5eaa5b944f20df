/*
 * histo: in-memory Prometheus histograms (see histo.h).
 */
#include "util/histo.h"

const double histo_seconds[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
				1,     2.5,   5,    10,    30,   60};
const int histo_seconds_n = sizeof(histo_seconds) / sizeof(histo_seconds[0]);

void histo_init(struct histo *h, const double *bounds, int n)
{
	*h = (struct histo){.bounds = bounds, .n = n > HISTO_MAX ? HISTO_MAX : n};
}

void histo_observe(struct histo *h, double v)
{
	if (!h->bounds)
		return;
	int i = 0;
	while (i < h->n && v > h->bounds[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum += v;
}

int histo_write(const struct histo *h, struct buf *b, const char *name, const char *labels)
{
	int bad = 0;
	const char *sep = labels && *labels ? "," : "";
	labels = labels ? labels : "";
	uint64_t cum = 0;
	for (int i = 0; i < h->n; i++) {
		cum += h->counts[i];
		bad |= buf_addf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, h->bounds[i],
				(unsigned long long)cum);
	}
	bad |= buf_addf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)h->count);
	bad |= buf_addf(b, "%s_sum%s%s%s %.6f\n", name, *labels ? "{" : "", labels, *labels ? "}" : "", h->sum);
	bad |= buf_addf(b, "%s_count%s%s%s %llu\n", name, *labels ? "{" : "", labels, *labels ? "}" : "",
			(unsigned long long)h->count);
	return bad;
}
