#include <math.h>

#include "stats/mannwhitney.h"
#include "stats/rate.h"

#define RATE_ALTS 8

double rate_log_e(uint64_t events, uint64_t trials, double p0, int below)
{
	if (!(p0 > 0 && p0 < 1) || events > trials)
		return -INFINITY;
	double k = (double)events, f = (double)(trials - events), sum = 0;
	for (int a = 1; a <= RATE_ALTS; a++) {
		/* alternatives 2^(-a/2) p0 (below) or 2^(a/2) p0 (above, kept under 1) */
		double m = pow(2.0, (below ? -a : a) / 2.0);
		double p1 = p0 * m;
		if (p1 >= 1)
			p1 = (p0 + 1) / 2;
		double l = k * log(p1 / p0) + f * (log1p(-p1) - log1p(-p0));
		sum += exp(l) / RATE_ALTS;
	}
	return log(sum);
}

double rate_upper(uint64_t events, uint64_t trials, double alpha)
{
	if (!trials)
		return 1;
	/* Wilson score bound; the recorded sample is looked at once, so a fixed-sample bound */
	double n = (double)trials, ph = (double)events / n, z = mw_qnorm(1 - alpha);
	double c = ph + z * z / (2 * n), r = z * sqrt(ph * (1 - ph) / n + z * z / (4 * n * n));
	double u = (c + r) / (1 + z * z / n);
	return u > 1 ? 1 : u;
}

