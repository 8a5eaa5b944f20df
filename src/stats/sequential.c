/*
 * sequential: see sequential.h and docs/verification.md for the method.
 */
#include "stats/sequential.h"

#include <math.h>
#include <string.h>

/* Grid: rho_j = 2^((j - SEQ_HALF) / SEQ_STEPS_PER_DOUBLING). */
#define STEP (M_LN2 / SEQ_STEPS_PER_DOUBLING)
/* Mixing weights over the distance d (in grid steps) between the null and an alternative:
 * a half-normal on log(rho) with this standard deviation. It puts most weight on ratios up to
 * about e^2 (which need the most data), and still enough on large ratios, which need little. */
#define PRIOR_SD 1.0
/* Mixture scale for the share confidence sequence (in units of n/4, the Bernoulli variance
 * bound): tuned so the bound is tight for a few hundred to a few thousand requests. */
#define SHARE_RHO 100.0

const char *seq_decision_name(enum seq_decision d)
{
	return d == SEQ_PASS ? "pass" : d == SEQ_FAIL ? "fail" : "continue";
}

static double grid_log_rho(int j)
{
	return (j - SEQ_HALF) * STEP;
}

/* log of the mixing weight at distance d (normalized over d = 1 .. SEQ_GRID - 1 at init) */
static double log_weight(const struct seq_counts *s, int d)
{
	return s->lw[d];
}

void seq_counts_init(struct seq_counts *s, double alpha, double tolerance)
{
	memset(s, 0, sizeof(*s));
	s->alpha = alpha > 0 && alpha < 1 ? alpha : 0.05;
	s->tolerance = tolerance >= 0 ? tolerance : 0;
	s->share = -1;
	s->log_e_fail = s->log_e_pass = -INFINITY;
	double lim = log1p(s->tolerance);
	s->pass_index = -1;
	for (int j = 0; j < SEQ_GRID; j++)
		if (grid_log_rho(j) <= lim + 1e-12)
			s->pass_index = j;
	double z = 0;
	for (int k = 1; k < SEQ_GRID; k++)
		z += exp(-(k * STEP) * (k * STEP) / (2 * PRIOR_SD * PRIOR_SD));
	s->lw[0] = -INFINITY;
	for (int k = 1; k < SEQ_GRID; k++)
		s->lw[k] = -(k * STEP) * (k * STEP) / (2 * PRIOR_SD * PRIOR_SD) - log(z);
}

static void set_share(struct seq_counts *s, double share)
{
	if (share == s->share)
		return;
	s->share = share;
	for (int j = 0; j < SEQ_GRID; j++) {
		double rs = exp(grid_log_rho(j)) * share;
		double den = log(rs + 1 - share);
		s->lp[j] = log(rs) - den;
		s->lq[j] = log1p(-share) - den;
	}
}

/* Anytime confidence bounds for the share from the unknown-share requests: a normal-mixture
 * boundary for the sum of centred Bernoulli variables (sub-Gaussian with variance 1/4),
 * at level alpha/2 (Robbins 1970; Howard et al. 2021). */
static void share_bounds(const struct seq_counts *s, double *lo, double *hi)
{
	double n = (double)(s->u_canary_trials + s->u_baseline_trials);
	if (n == 0) {
		*lo = 0;
		*hi = 1;
		return;
	}
	double a = s->alpha / 2;
	double v = n / 4 + SHARE_RHO;
	double b = sqrt(v * log(v / (SHARE_RHO * a * a))) / n;
	double m = (double)s->u_canary_trials / n;
	*lo = fmax(0, m - b);
	*hi = fmin(1, m + b);
}

/* Log-likelihood of grid point j, the unknown-share part evaluated at share u. */
static double loglik(const struct seq_counts *s, int j, double u)
{
	double l = s->ll[j];
	if (s->u_canary_events || s->u_baseline_events) {
		u = fmin(fmax(u, 1e-12), 1 - 1e-12);
		double lr = grid_log_rho(j);
		double den = log(exp(lr) * u + 1 - u);
		l += (double)s->u_canary_events * (lr + log(u) - den) + (double)s->u_baseline_events * (log1p(-u) - den);
	}
	return l;
}

/* log of the e-value against "rho <= rho_i" (up = 1) or "rho >= rho_i" (up = 0), the
 * alternatives being the grid points on the other side, from precomputed log-likelihoods. */
static double log_e(const struct seq_counts *s, const double *l, int i, int up)
{
	double mx = -INFINITY;
	int n = up ? SEQ_GRID - 1 - i : i;
	for (int d = 1; d <= n; d++) {
		double t = log_weight(s, d) + l[up ? i + d : i - d] - l[i];
		if (t > mx)
			mx = t;
	}
	if (mx == -INFINITY)
		return -INFINITY;
	double sum = 0;
	for (int d = 1; d <= n; d++) {
		double t = log_weight(s, d) + l[up ? i + d : i - d] - l[i] - mx;
		if (t > -40) /* smaller terms do not change the sum in double precision */
			sum += exp(t);
	}
	return mx + log(sum);
}

static double log_threshold(const struct seq_counts *s)
{
	return log((s->mode == 2 ? 2 : 1) / s->alpha);
}

static void fill_loglik(const struct seq_counts *s, double u, double *l)
{
	for (int j = 0; j < SEQ_GRID; j++)
		l[j] = loglik(s, j, u);
}

static void evaluate(struct seq_counts *s)
{
	double lo, hi, b_up[SEQ_GRID], b_lo[SEQ_GRID];
	const double *l_up = s->ll, *l_lo = s->ll;
	if (s->u_canary_events || s->u_baseline_events) {
		/* the fail e-value decreases with the share and the pass e-value increases with
		 * it, so the least favourable shares are the upper and the lower bound */
		share_bounds(s, &lo, &hi);
		fill_loglik(s, hi, b_up);
		fill_loglik(s, lo, b_lo);
		l_up = b_up;
		l_lo = b_lo;
	}
	s->log_e_fail = log_e(s, l_up, SEQ_HALF, 1);
	s->log_e_pass = s->pass_index >= 0 ? log_e(s, l_lo, s->pass_index, 0) : -INFINITY;
	if (s->decision != SEQ_CONTINUE)
		return;
	double thr = log_threshold(s);
	if (s->log_e_fail >= thr) {
		s->decision = SEQ_FAIL;
		s->decided_at = s->observations;
		return;
	}
	if (s->log_e_pass >= thr) {
		/* every ratio above 1 + tolerance must be excluded, not only the nearest grid point */
		for (int i = s->pass_index + 1; i < SEQ_GRID; i++)
			if (log_e(s, l_lo, i, 0) < thr)
				return;
		s->decision = SEQ_PASS;
		s->decided_at = s->observations;
	}
}

static int use_known(struct seq_counts *s, double share)
{
	if (share >= 0) {
		if (s->mode == 0)
			s->mode = 1;
		set_share(s, share);
		return 1;
	}
	if (s->share >= 0)
		return 1; /* reuse the last known share */
	s->mode = 2;
	return 0;
}

static void add_events(struct seq_counts *s, int known, uint64_t ce, uint64_t be)
{
	if (known) {
		if (s->share <= 0 || s->share >= 1)
			return; /* all traffic on one side: the origin of an event says nothing */
		for (int j = 0; j < SEQ_GRID; j++)
			s->ll[j] += (double)ce * s->lp[j] + (double)be * s->lq[j];
	} else {
		s->u_canary_events += ce;
		s->u_baseline_events += be;
	}
}

void seq_counts_observe(struct seq_counts *s, int is_canary, int is_event, double canary_share)
{
	int known = use_known(s, canary_share);
	s->observations++;
	if (is_canary) {
		s->canary_trials++;
		s->canary_events += is_event != 0;
		if (!known)
			s->u_canary_trials++;
	} else {
		s->baseline_trials++;
		s->baseline_events += is_event != 0;
		if (!known)
			s->u_baseline_trials++;
	}
	if (is_event)
		add_events(s, known, is_canary != 0, is_canary == 0);
	/* Known share: only events move the statistic. Unknown: every request moves the share
	 * bounds a little; re-evaluating at events and whenever the number of requests grew by
	 * 1% keeps the cost bounded (testing at fewer times is still valid). */
	uint64_t n = s->u_canary_trials + s->u_baseline_trials;
	if (is_event || (s->mode == 2 && n >= s->next_eval)) {
		evaluate(s);
		s->next_eval = n + n / 100 + 1;
	}
}

void seq_counts_update(struct seq_counts *s, uint64_t canary_events, uint64_t canary_trials,
		       uint64_t baseline_events, uint64_t baseline_trials, double canary_share)
{
	int known = use_known(s, canary_share);
	s->observations++;
	s->canary_trials += canary_trials;
	s->baseline_trials += baseline_trials;
	s->canary_events += canary_events;
	s->baseline_events += baseline_events;
	if (!known) {
		s->u_canary_trials += canary_trials;
		s->u_baseline_trials += baseline_trials;
	}
	add_events(s, known, canary_events, baseline_events);
	evaluate(s);
}

enum seq_decision seq_counts_decision(const struct seq_counts *s)
{
	return s->decision;
}

void seq_counts_evidence(const struct seq_counts *s, struct seq_evidence *ev)
{
	double lo, hi, l_up[SEQ_GRID], l_lo[SEQ_GRID], l_mid[SEQ_GRID];
	memset(ev, 0, sizeof(*ev));
	share_bounds(s, &lo, &hi);
	fill_loglik(s, hi, l_up);
	fill_loglik(s, lo, l_lo);
	double thr = log_threshold(s);
	ev->decision = s->decision;
	ev->e_fail = exp(s->log_e_fail);
	ev->e_pass = exp(s->log_e_pass);
	ev->threshold = exp(thr);
	ev->canary_events = s->canary_events;
	ev->canary_trials = s->canary_trials;
	ev->baseline_events = s->baseline_events;
	ev->baseline_trials = s->baseline_trials;
	ev->observations = s->observations;
	ev->decided_at = s->decided_at;
	if (s->mode == 2) {
		ev->share_lo = lo;
		ev->share_hi = hi;
	} else {
		ev->share_lo = ev->share_hi = s->share;
	}
	double n = (double)(s->u_canary_trials + s->u_baseline_trials);
	fill_loglik(s, n > 0 ? (double)s->u_canary_trials / n : 0.5, l_mid);
	int best = SEQ_HALF;
	for (int j = 0; j < SEQ_GRID; j++)
		if (l_mid[j] > l_mid[best] + 1e-12)
			best = j;
	ev->ratio_estimate = exp(grid_log_rho(best));
	/* lower bound: every rho up to rho_i excluded by the test of "rho <= rho_i" */
	ev->ratio_lo = 0;
	for (int i = 0; i < SEQ_GRID - 1 && log_e(s, l_up, i, 1) >= thr; i++)
		ev->ratio_lo = exp(grid_log_rho(i));
	ev->ratio_hi = INFINITY;
	for (int i = SEQ_GRID - 1; i > 0 && log_e(s, l_lo, i, 0) >= thr; i--)
		ev->ratio_hi = exp(grid_log_rho(i));
}

/* ---- latency ---- */

static void p2_init(struct seq_p2 *p, double quantile)
{
	memset(p, 0, sizeof(*p));
	p->p = quantile;
}

static double p2_parabolic(const struct seq_p2 *p, int i, double d)
{
	const double *q = p->q, *n = p->n;
	return q[i] + d / (n[i + 1] - n[i - 1]) *
			      ((n[i] - n[i - 1] + d) * (q[i + 1] - q[i]) / (n[i + 1] - n[i]) +
			       (n[i + 1] - n[i] - d) * (q[i] - q[i - 1]) / (n[i] - n[i - 1]));
}

static void p2_add(struct seq_p2 *p, double x)
{
	if (p->count < 5) {
		/* insertion sort of the first five values */
		int i = (int)p->count;
		while (i > 0 && p->q[i - 1] > x) {
			p->q[i] = p->q[i - 1];
			i--;
		}
		p->q[i] = x;
		if (++p->count == 5) {
			double q = p->p;
			for (int k = 0; k < 5; k++)
				p->n[k] = k + 1;
			p->np[0] = 1;
			p->np[1] = 1 + 2 * q;
			p->np[2] = 1 + 4 * q;
			p->np[3] = 3 + 2 * q;
			p->np[4] = 5;
			p->dn[0] = 0;
			p->dn[1] = q / 2;
			p->dn[2] = q;
			p->dn[3] = (1 + q) / 2;
			p->dn[4] = 1;
		}
		return;
	}
	p->count++;
	int k;
	if (x < p->q[0]) {
		p->q[0] = x;
		k = 0;
	} else if (x < p->q[1]) {
		k = 0;
	} else if (x < p->q[2]) {
		k = 1;
	} else if (x < p->q[3]) {
		k = 2;
	} else if (x <= p->q[4]) {
		k = 3;
	} else {
		p->q[4] = x;
		k = 3;
	}
	for (int i = k + 1; i < 5; i++)
		p->n[i] += 1;
	for (int i = 0; i < 5; i++)
		p->np[i] += p->dn[i];
	for (int i = 1; i <= 3; i++) {
		double d = p->np[i] - p->n[i];
		if ((d >= 1 && p->n[i + 1] - p->n[i] > 1) || (d <= -1 && p->n[i - 1] - p->n[i] < -1)) {
			double sg = d > 0 ? 1 : -1;
			double qp = p2_parabolic(p, i, sg);
			if (p->q[i - 1] < qp && qp < p->q[i + 1]) {
				p->q[i] = qp;
			} else {
				int o = i + (int)sg;
				p->q[i] = p->q[i] + sg * (p->q[o] - p->q[i]) / (p->n[o] - p->n[i]);
			}
			p->n[i] += sg;
		}
	}
}

void seq_latency_init(struct seq_latency *s, double alpha, double tolerance, double quantile)
{
	memset(s, 0, sizeof(*s));
	seq_counts_init(&s->counts, alpha, tolerance);
	p2_init(&s->p2, quantile > 0 && quantile < 1 ? quantile : 0.9);
	s->warmup = 20;
	s->threshold = NAN;
}

void seq_latency_observe(struct seq_latency *s, int is_canary, double value, double canary_share)
{
	/* the threshold comes from the baseline values before this one (predictable) */
	int ready = s->p2.count >= s->warmup && s->p2.count >= 5;
	s->threshold = ready ? s->p2.q[2] : NAN;
	seq_counts_observe(&s->counts, is_canary, ready && value > s->threshold, canary_share);
	if (!is_canary)
		p2_add(&s->p2, value);
}

enum seq_decision seq_latency_decision(const struct seq_latency *s)
{
	return s->counts.decision;
}

void seq_latency_evidence(const struct seq_latency *s, struct seq_evidence *ev)
{
	seq_counts_evidence(&s->counts, ev);
}
