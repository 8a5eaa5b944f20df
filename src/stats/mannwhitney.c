/*
 * mannwhitney: see mannwhitney.h. The arithmetic deliberately follows R's definitions step by
 * step (same order of operations, same root finder) so that values agree to the last digits.
 */
#include "stats/mannwhitney.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void mw_options_default(struct mw_options *o)
{
	o->alternative = MW_TWO_SIDED;
	o->method = MW_AUTO;
	o->conf_level = 0.95;
	o->correct = 1;
	o->conf_int = 1;
}

double mw_pnorm(double z)
{
	return 0.5 * erfc(-z / M_SQRT2);
}

/* Lower-tail quantile for p in (0, 0.5]: a rational first guess (Abramowitz & Stegun 26.2.23,
 * error < 5e-4) polished by Halley steps on erfc, which converge to full precision. */
static double qnorm_lower(double p)
{
	double t = sqrt(-2.0 * log(p));
	double x = -(t - (2.515517 + 0.802853 * t + 0.010328 * t * t) /
			     (1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t * t * t));
	for (int i = 0; i < 4; i++) {
		double f = mw_pnorm(x) - p;
		double phi = exp(-0.5 * x * x) / sqrt(2.0 * M_PI);
		if (phi == 0)
			break;
		double step = f / phi;
		x -= step / (1.0 + 0.5 * x * step);
	}
	return x;
}

double mw_qnorm(double p)
{
	if (!(p > 0))
		return -INFINITY;
	if (!(p < 1))
		return INFINITY;
	if (p == 0.5)
		return 0;
	return p < 0.5 ? qnorm_lower(p) : -qnorm_lower(1.0 - p);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/*
 * Ranks the pooled sample (xs - d, ys), both sorted ascending, with average ranks for ties.
 * Returns the rank sum of the x values and the tie term sum(t^3 - t). Subtraction is monotone
 * in floating point, so xs - d stays sorted; ties are exact equalities as in R's rank().
 */
static void pooled_ranks(const double *xs, size_t nx, const double *ys, size_t ny, double d,
			 double *xsum, double *tiesum)
{
	size_t i = 0, j = 0;
	double pos = 0, sx = 0, st = 0;
	while (i < nx || j < ny) {
		double v;
		if (j >= ny || (i < nx && xs[i] - d <= ys[j]))
			v = xs[i] - d;
		else
			v = ys[j];
		double cx = 0, cy = 0;
		while (i < nx && xs[i] - d == v) {
			cx++;
			i++;
		}
		while (j < ny && ys[j] == v) {
			cy++;
			j++;
		}
		double t = cx + cy;
		sx += cx * (pos + (t + 1) / 2);
		st += t * t * t - t;
		pos += t;
	}
	*xsum = sx;
	*tiesum = st;
}

struct wctx {
	const double *xs, *ys;
	size_t nx, ny;
	enum mw_alternative alt;
	int correct;
};

/* The standardized statistic of the sample shifted by d (R's W(d) in wilcox.test). */
static double w_of_shift(const struct wctx *c, double d)
{
	double xsum, tiesum;
	pooled_ranks(c->xs, c->nx, c->ys, c->ny, d, &xsum, &tiesum);
	double nx = (double)c->nx, ny = (double)c->ny;
	double dz = xsum - nx * (nx + 1) / 2 - nx * ny / 2;
	double corr = 0;
	if (c->correct) {
		if (c->alt == MW_TWO_SIDED)
			corr = (dz > 0 ? 0.5 : dz < 0 ? -0.5 : 0);
		else
			corr = c->alt == MW_GREATER ? 0.5 : -0.5;
	}
	double sigma = sqrt((nx * ny / 12) * ((nx + ny + 1) - tiesum / ((nx + ny) * (nx + ny - 1))));
	return (dz - corr) / sigma;
}

/*
 * Brent's root finder (Brent 1973, "Algorithms for minimization without derivatives", ch. 4):
 * keeps a bracket [b, c] with f(b) and f(c) of opposite signs, tries inverse quadratic or
 * linear interpolation, falls back to bisection when the step is not convincing. The
 * tolerance and step rules are Brent's, as used by R's uniroot, because where the function is
 * flat at zero the returned point depends on the exact sequence of steps.
 */
static double brent_root(const struct wctx *c, double zq, double lo, double hi, double flo, double fhi,
			 double tol, int maxit)
{
	double a = lo, b = hi, fa = flo, fb = fhi;
	double cc = a, fc = fa;
	if (fa == 0)
		return a;
	if (fb == 0)
		return b;
	for (int it = 0; it <= maxit; it++) {
		double prev = b - a;
		if (fabs(fc) < fabs(fb)) {
			/* b is the best approximation so far */
			a = b;
			b = cc;
			cc = a;
			fa = fb;
			fb = fc;
			fc = fa;
		}
		double tol_act = 2 * DBL_EPSILON * fabs(b) + tol / 2;
		double step = (cc - b) / 2;
		if (fabs(step) <= tol_act || fb == 0)
			return b;
		if (fabs(prev) >= tol_act && fabs(fa) > fabs(fb)) {
			double p, q, cb = cc - b;
			if (a == cc) {
				double t1 = fb / fa;
				p = cb * t1;
				q = 1.0 - t1;
			} else {
				double qq = fa / fc, t1 = fb / fc, t2 = fb / fa;
				p = t2 * (cb * qq * (qq - t1) - (b - a) * (t1 - 1.0));
				q = (qq - 1.0) * (t1 - 1.0) * (t2 - 1.0);
			}
			if (p > 0)
				q = -q;
			else
				p = -p;
			if (p < (0.75 * cb * q - fabs(tol_act * q) / 2) && p < fabs(prev * q / 2))
				step = p / q;
		}
		if (fabs(step) < tol_act)
			step = step > 0 ? tol_act : -tol_act;
		a = b;
		fa = fb;
		b += step;
		fb = w_of_shift(c, b) - zq;
		if ((fb > 0 && fc > 0) || (fb < 0 && fc < 0)) {
			cc = a;
			fc = fa;
		}
	}
	return b;
}

/* Number of arrangements giving each U = 0..m*n under the null (f[u]); returns the total. */
static double *exact_counts(size_t m, size_t n, double *total)
{
	size_t a = m < n ? m : n, bb = m < n ? n : m; /* the distribution is symmetric in m, n */
	size_t mn = m * n, w = mn + 1;
	double *prev = calloc((a + 1) * w, sizeof(double));
	double *cur = calloc((a + 1) * w, sizeof(double));
	if (!prev || !cur) {
		free(prev);
		free(cur);
		return NULL;
	}
	/* layer i = 0: only U = 0 is possible */
	for (size_t j = 0; j <= a; j++)
		prev[j * w] = 1;
	for (size_t i = 1; i <= bb; i++) {
		/* f(i, j, u) = f(i-1, j, u-j) [largest is one of the i] + f(i, j-1, u) */
		cur[0] = 1;
		for (size_t j = 1; j <= a; j++) {
			size_t top = i * j;
			for (size_t u = 0; u <= top; u++) {
				double v = 0;
				if (u >= j && u - j <= (i - 1) * j)
					v += prev[j * w + (u - j)];
				if (u <= i * (j - 1))
					v += cur[(j - 1) * w + u];
				cur[j * w + u] = v;
			}
		}
		double *t = prev;
		prev = cur;
		cur = t;
	}
	double *f = malloc(w * sizeof(double));
	if (f) {
		memcpy(f, prev + a * w, w * sizeof(double));
		double s = 0;
		for (size_t u = 0; u < w; u++)
			s += f[u];
		*total = s;
	}
	free(prev);
	free(cur);
	return f;
}

/* P(U <= q) (lower) or P(U > q), summing the smaller tail as R's pwilcox does. */
static double exact_cdf(const double *f, size_t mn, double total, double q, int lower)
{
	q = floor(q + 1e-7);
	if (q < 0)
		return lower ? 0 : 1;
	if (q >= (double)mn)
		return lower ? 1 : 0;
	double p = 0;
	if (q <= (double)mn / 2) {
		for (size_t i = 0; i <= (size_t)q; i++)
			p += f[i] / total;
		return lower ? p : 0.5 - p + 0.5;
	}
	size_t q2 = mn - (size_t)q;
	for (size_t i = 0; i < q2; i++)
		p += f[i] / total;
	return lower ? 0.5 - p + 0.5 : p;
}

/* Smallest q with P(U <= q) >= x (R's qwilcox, with its 10 epsilon slack). */
static size_t exact_quantile(const double *f, size_t mn, double total, double x)
{
	double p = 0;
	size_t q = 0;
	if (x <= 0.5) {
		x = x - 10 * DBL_EPSILON;
		for (;;) {
			p += f[q] / total;
			if (p >= x || q >= mn)
				return q;
			q++;
		}
	}
	x = 1 - x + 10 * DBL_EPSILON;
	for (;;) {
		p += f[q] / total;
		if (p > x || q >= mn)
			return mn - q;
		q++;
	}
}

/* R's median(): the middle value, or the mean of the two middle ones in extended precision. */
static double median_sorted(const double *v, size_t n)
{
	if (n % 2)
		return v[n / 2];
	return (double)(((long double)v[n / 2 - 1] + (long double)v[n / 2]) / 2);
}

static int check_sample(const double *v, size_t n, const char *name, struct err *e)
{
	if (n == 0)
		return err_set(e, "the %s sample is empty: give at least one value", name);
	if (n > MW_MAX_N)
		return err_set(e, "the %s sample has %zu values: at most %d are accepted", name, n, MW_MAX_N);
	for (size_t i = 0; i < n; i++)
		if (!isfinite(v[i]))
			return err_set(e, "the %s sample has a value that is not a finite number (index %zu): "
					  "remove NaN and infinities first", name, i);
	return 0;
}

static int exact_part(const double *x, size_t nx, const double *y, size_t ny, const struct mw_options *o,
		      struct mw_result *r, struct err *e)
{
	size_t mn = nx * ny;
	double total = 0;
	double *f = exact_counts(nx, ny, &total);
	if (!f)
		return err_set(e, "out of memory computing the exact distribution");
	double w = r->u;
	switch (o->alternative) {
	case MW_TWO_SIDED: {
		double p = w > (double)mn / 2 ? exact_cdf(f, mn, total, w - 1, 0) : exact_cdf(f, mn, total, w, 1);
		r->p = fmin(2 * p, 1);
		break;
	}
	case MW_GREATER:
		r->p = exact_cdf(f, mn, total, w - 1, 0);
		break;
	case MW_LESS:
		r->p = exact_cdf(f, mn, total, w, 1);
		break;
	}
	if (o->conf_int) {
		double *diffs = malloc(mn * sizeof(double));
		if (!diffs) {
			free(f);
			return err_set(e, "out of memory computing pairwise differences");
		}
		for (size_t i = 0; i < nx; i++)
			for (size_t j = 0; j < ny; j++)
				diffs[j * nx + i] = x[i] - y[j];
		qsort(diffs, mn, sizeof(double), cmp_double);
		double alpha = 1 - o->conf_level;
		size_t qu = exact_quantile(f, mn, total, o->alternative == MW_TWO_SIDED ? alpha / 2 : alpha);
		if (qu == 0)
			qu = 1;
		size_t ql = mn - qu;
		r->ci_lo = -INFINITY;
		r->ci_hi = INFINITY;
		if (o->alternative != MW_LESS)
			r->ci_lo = diffs[qu - 1];
		if (o->alternative != MW_GREATER)
			r->ci_hi = diffs[ql];
		r->estimate = median_sorted(diffs, mn);
		free(diffs);
	}
	free(f);
	return 0;
}

static void asymptotic_part(const double *xs, size_t nx, const double *ys, size_t ny, double tiesum,
			    const struct mw_options *o, struct mw_result *r)
{
	double fnx = (double)nx, fny = (double)ny;
	double z = r->u - fnx * fny / 2;
	double sigma = sqrt((fnx * fny / 12) * ((fnx + fny + 1) - tiesum / ((fnx + fny) * (fnx + fny - 1))));
	if (sigma == 0) {
		/* every value is the same: no evidence of any shift */
		r->z = 0;
		r->p = 1;
		if (o->conf_int)
			r->estimate = r->ci_lo = r->ci_hi = xs[0] - ys[0];
		return;
	}
	double corr = 0;
	if (o->correct) {
		if (o->alternative == MW_TWO_SIDED)
			corr = z > 0 ? 0.5 : z < 0 ? -0.5 : 0;
		else
			corr = o->alternative == MW_GREATER ? 0.5 : -0.5;
	}
	z = (z - corr) / sigma;
	r->z = z;
	switch (o->alternative) {
	case MW_LESS:
		r->p = mw_pnorm(z);
		break;
	case MW_GREATER:
		r->p = mw_pnorm(-z);
		break;
	case MW_TWO_SIDED:
		r->p = 2 * fmin(mw_pnorm(z), mw_pnorm(-z));
		break;
	}
	if (!o->conf_int)
		return;

	struct wctx c = { xs, ys, nx, ny, o->alternative, o->correct };
	double mumin = xs[0] - ys[ny - 1], mumax = xs[nx - 1] - ys[0];
	double wmin = w_of_shift(&c, mumin), wmax = w_of_shift(&c, mumax);
	double alpha = 1 - o->conf_level;
	const double tol = 1e-4;
	const int maxit = 1000;
#define ROOT(zq)                                                                                                \
	((wmin - (zq)) <= 0 ? mumin                                                                             \
	 : (wmax - (zq)) >= 0 ? mumax                                                                           \
			      : brent_root(&c, (zq), mumin, mumax, wmin - (zq), wmax - (zq), tol, maxit))
	r->ci_lo = -INFINITY;
	r->ci_hi = INFINITY;
	if (o->alternative == MW_TWO_SIDED) {
		double q = mw_qnorm(alpha / 2);
		r->ci_lo = ROOT(-q);
		r->ci_hi = ROOT(q);
	} else if (o->alternative == MW_GREATER) {
		r->ci_lo = ROOT(-mw_qnorm(alpha));
	} else {
		r->ci_hi = ROOT(mw_qnorm(alpha));
	}
#undef ROOT
	/* the point estimate uses no continuity correction (R sets correct <- FALSE first) */
	c.correct = 0;
	double f0 = w_of_shift(&c, mumin), f1 = w_of_shift(&c, mumax);
	r->estimate = brent_root(&c, 0, mumin, mumax, f0, f1, tol, maxit);
}

int mw_test(const double *x, size_t nx, const double *y, size_t ny, const struct mw_options *o,
	    struct mw_result *r, struct err *e)
{
	if (check_sample(x, nx, "canary", e) || check_sample(y, ny, "baseline", e))
		return -1;
	if (o->conf_int && !(o->conf_level > 0 && o->conf_level < 1))
		return err_set(e, "confidence level %g is not between 0 and 1", o->conf_level);

	double *xs = malloc(nx * sizeof(double)), *ys = malloc(ny * sizeof(double));
	if (!xs || !ys) {
		free(xs);
		free(ys);
		return err_set(e, "out of memory sorting %zu + %zu values", nx, ny);
	}
	memcpy(xs, x, nx * sizeof(double));
	memcpy(ys, y, ny * sizeof(double));
	qsort(xs, nx, sizeof(double), cmp_double);
	qsort(ys, ny, sizeof(double), cmp_double);

	double xsum, tiesum;
	pooled_ranks(xs, nx, ys, ny, 0, &xsum, &tiesum);
	memset(r, 0, sizeof(*r));
	r->u = xsum - (double)nx * ((double)nx + 1) / 2;
	r->ties = tiesum > 0;
	r->z = NAN;
	r->estimate = r->ci_lo = r->ci_hi = NAN;

	int exact = o->method == MW_EXACT || (o->method == MW_AUTO && nx < 50 && ny < 50 && !r->ties);
	int rc = 0;
	if (exact) {
		if (nx * ny > MW_EXACT_MAX_PAIRS) {
			rc = err_set(e, "the exact method is limited to %d pairs (%zu x %zu given): use the "
					"asymptotic method", MW_EXACT_MAX_PAIRS, nx, ny);
		} else {
			r->exact = 1;
			rc = exact_part(x, nx, y, ny, o, r, e);
		}
	} else {
		asymptotic_part(xs, nx, ys, ny, tiesum, o, r);
	}
	free(xs);
	free(ys);
	return rc;
}
