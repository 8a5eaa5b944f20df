/*
 * `sluice judge`: the offline canary judge, for CI and for looking at recorded data.
 *
 *   sluice judge --baseline FILE --canary FILE [--direction D] [--confidence C]
 *                [--allowed-increase X] [--allowed-decrease Y] [--tolerance T] [-o json]
 *       Kayenta-style classification of two samples (one number per line) with a Mann-Whitney
 *       test: prints U, the p-value, the Hodges-Lehmann estimate and interval, the effect
 *       (mean ratio) and the classification.
 *
 *   sluice judge --sequential --kind errors|latency [--alpha A] [--tolerance T]
 *                [--quantile Q] [-o json]
 *       Reads `baseline VALUE`, `canary VALUE` and `weight W` lines from stdin, evaluates the
 *       anytime-valid test after every line and stops at the first decision.
 *
 * Exit: 0 pass or continue, 1 fail, 2 usage error or invalid input (FILE:LINE: what is wrong).
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "stats/judge.h"
#include "stats/sequential.h"
#include "util/log.h"
#include "util/opt.h"

#define LINE_MAX_LEN 256
#define SAMPLE_MAX 1000000 /* values per file */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sluice judge --baseline FILE --canary FILE [--direction increase|decrease|either]\n"
		"                    [--confidence C] [--allowed-increase X] [--allowed-decrease Y]\n"
		"                    [--tolerance T] [-o json]\n"
		"       sluice judge --sequential --kind errors|latency [--alpha A] [--tolerance T]\n"
		"                    [--quantile Q] [-o json] < OBSERVATIONS\n"
		"\n"
		"Fixed samples: FILEs hold one number per line (blank lines and '#' comments are\n"
		"skipped, 'nan' is a missing value, replaced by 0 as Kayenta does). Mann-Whitney test of\n"
		"canary against baseline at confidence C (default 0.98), tolerance T (default 0.25: the\n"
		"interval must clear 25%% of the estimate), effect = mean(canary) / mean(baseline) that\n"
		"must reach X (default 1) to be high or Y (default 1) to be low.\n"
		"\n"
		"Sequential: one observation per line, 'baseline VALUE' or 'canary VALUE' (VALUE is 0 or 1\n"
		"for errors, milliseconds for latency), and 'weight W': the canary's share of traffic in\n"
		"percent (0-100, '10' or '10%%') from that line on; without weight lines the share is\n"
		"estimated from the observations. Stops at the first decision: fail (regression proven\n"
		"at level A, default 0.05), pass (ratios above 1 + T excluded, default T 0.25) or\n"
		"continue (input ended).\n"
		"Latency events are values above the baseline's running Q quantile (default 0.9).\n"
		"\n"
		"exit: 0 pass or continue, 1 fail, 2 usage error or invalid input. Method:\n"
		"docs/verification.md\n");
}

struct opts {
	const char *baseline, *canary, *kind;
	int sequential, json;
	struct judge_metric_config cfg;
	double alpha, tolerance, quantile;
	int tolerance_set;
};

static int parse_double(const char *opt, const char *s, double lo, double hi, double *out)
{
	struct err e;
	return opt_double(opt, s, lo, hi, out, &e) ? error("%s", e.msg) : 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--sequential")) {
			o->sequential = 1;
			continue;
		}
		if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strncmp(a, "-o", 2)) {
			const char *v = a[1] == 'o' && a[2] ? a + 2 : NULL;
			if (!v) {
				if (i + 1 >= argc)
					return error("%s needs a value (text or json)", a);
				v = argv[++i];
			}
			if (strcmp(v, "json") && strcmp(v, "text"))
				return error("unknown output format '%s' (text or json)", v);
			o->json = !strcmp(v, "json");
			continue;
		}
		static const char *const with_value[] = { "--baseline",	      "--canary",	   "--direction",
							  "--confidence",     "--allowed-increase", "--allowed-decrease",
							  "--tolerance",      "--kind",		   "--alpha",
							  "--quantile",	      NULL };
		int known = 0;
		for (int k = 0; with_value[k]; k++)
			known |= !strcmp(a, with_value[k]);
		if (!known && a[0] != '-')
			return error("judge: unexpected argument '%s' (files are given with --baseline and --canary)", a);
		if (!known)
			return error("judge: unknown option '%s'; see 'sluice judge --help'", a);
		if (i + 1 >= argc)
			return error("%s needs a value", a);
		const char *v = argv[++i];
		int rc = 0;
		if (!strcmp(a, "--baseline")) {
			o->baseline = v;
		} else if (!strcmp(a, "--canary")) {
			o->canary = v;
		} else if (!strcmp(a, "--kind")) {
			if (strcmp(v, "errors") && strcmp(v, "latency"))
				return error("--kind: '%s' is not errors or latency", v);
			o->kind = v;
		} else if (!strcmp(a, "--direction")) {
			if (!strcmp(v, "increase"))
				o->cfg.direction = JUDGE_INCREASE;
			else if (!strcmp(v, "decrease"))
				o->cfg.direction = JUDGE_DECREASE;
			else if (!strcmp(v, "either"))
				o->cfg.direction = JUDGE_EITHER;
			else
				return error("--direction: '%s' is not increase, decrease or either", v);
		} else if (!strcmp(a, "--confidence")) {
			rc = parse_double(a, v, 0.5, 0.999999, &o->cfg.confidence);
		} else if (!strcmp(a, "--allowed-increase")) {
			rc = parse_double(a, v, 1e-9, 1e9, &o->cfg.allowed_increase);
		} else if (!strcmp(a, "--allowed-decrease")) {
			rc = parse_double(a, v, 1e-9, 1e9, &o->cfg.allowed_decrease);
		} else if (!strcmp(a, "--tolerance")) {
			rc = parse_double(a, v, 0, 1e6, &o->tolerance);
			o->tolerance_set = 1;
		} else if (!strcmp(a, "--alpha")) {
			rc = parse_double(a, v, 1e-9, 0.5, &o->alpha);
		} else if (!strcmp(a, "--quantile")) {
			rc = parse_double(a, v, 0.01, 0.99, &o->quantile);
		}
		if (rc)
			return -1;
	}
	return 0;
}

/* Cuts trailing whitespace (and a CR) in place; returns the start of the text after leading
 * whitespace. */
static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = 0;
	return s;
}

/* Reads one line into buf; returns 1, 0 at end of input, -1 when the line is too long. */
static int read_line(FILE *f, char *buf, size_t size)
{
	if (!fgets(buf, (int)size, f))
		return 0;
	size_t n = strlen(buf);
	if (n == size - 1 && buf[n - 1] != '\n' && !feof(f))
		return -1;
	return 1;
}

static int read_sample(const char *path, double **out, size_t *n)
{
	FILE *f = !strcmp(path, "-") ? stdin : fopen(path, "r");
	if (!f)
		return error("could not open '%s': %s", path, strerror(errno));
	char buf[LINE_MAX_LEN + 2];
	size_t cap = 0, len = 0;
	double *v = NULL;
	int rc = 0, r;
	for (long line = 1; (r = read_line(f, buf, sizeof(buf))) != 0; line++) {
		if (r < 0) {
			rc = error("%s:%ld: line longer than %d characters", path, line, LINE_MAX_LEN);
			break;
		}
		char *s = trim(buf), *end;
		if (!*s || *s == '#')
			continue;
		errno = 0;
		double x = strtod(s, &end);
		if (end == s || *end || errno == ERANGE || isinf(x)) {
			rc = error("%s:%ld: '%s' is not a finite number", path, line, s);
			break;
		}
		if (len == SAMPLE_MAX) {
			rc = error("%s:%ld: more than %d values", path, line, SAMPLE_MAX);
			break;
		}
		if (len == cap) {
			cap = cap ? 2 * cap : 256;
			double *nv = realloc(v, cap * sizeof(double));
			if (!nv) {
				rc = error("out of memory reading '%s'", path);
				break;
			}
			v = nv;
		}
		v[len++] = x;
	}
	if (!rc && ferror(f))
		rc = error("could not read '%s': %s", path, strerror(errno));
	if (!rc && len == 0)
		rc = error("%s: no values (one number per line expected)", path);
	if (f != stdin)
		fclose(f);
	if (rc) {
		free(v);
		return -1;
	}
	*out = v;
	*n = len;
	return 0;
}

/* JSON has no infinities: open interval ends become null. */
static json_t *num(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

static int run_fixed(struct opts *o)
{
	double *x = NULL, *y = NULL;
	size_t nx = 0, ny = 0;
	if (read_sample(o->canary, &x, &nx) || read_sample(o->baseline, &y, &ny)) {
		free(x);
		return EXIT_USAGE;
	}
	if (o->tolerance_set)
		o->cfg.tolerance = o->tolerance;
	struct judge_metric_result r;
	struct err e;
	int rc = judge_metric(&o->cfg, x, nx, y, ny, &r, &e);
	free(x);
	free(y);
	if (rc) {
		error("%s", e.msg);
		return EXIT_USAGE;
	}
	int fail = r.classification == JUDGE_HIGH || r.classification == JUDGE_LOW;
	if (o->json) {
		json_t *j = json_object();
		json_object_set_new(j, "classification", json_string(judge_class_name(r.classification)));
		json_object_set_new(j, "reason", json_string(r.reason));
		json_object_set_new(j, "tested", json_boolean(r.tested));
		if (r.tested) {
			json_object_set_new(j, "u", json_real(r.mw.u));
			json_object_set_new(j, "p_value", json_real(r.mw.p));
			json_object_set_new(j, "method", json_string(r.mw.exact ? "exact" : "asymptotic"));
			json_object_set_new(j, "estimate", num(r.mw.estimate));
			json_object_set_new(j, "interval", json_pack("[o,o]", num(r.mw.ci_lo), num(r.mw.ci_hi)));
			json_object_set_new(j, "bound", num(r.bound));
		}
		json_object_set_new(j, "confidence", json_real(o->cfg.confidence));
		json_object_set_new(j, "effect", num(r.effect));
		json_object_set_new(j, "canary_n", json_integer((json_int_t)r.n_canary));
		json_object_set_new(j, "baseline_n", json_integer((json_int_t)r.n_baseline));
		char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
		json_decref(j);
		if (!s)
			return error("out of memory"), EXIT_USAGE;
		puts(s);
		free(s);
	} else {
		printf("canary:         %zu values\nbaseline:       %zu values\n", r.n_canary, r.n_baseline);
		if (r.tested) {
			printf("U:              %.10g\n", r.mw.u);
			printf("p-value:        %.6g (%s, two-sided)\n", r.mw.p, r.mw.exact ? "exact" : "asymptotic");
			printf("estimate:       %.6g (canary - baseline, Hodges-Lehmann)\n", r.mw.estimate);
			printf("interval:       [%.6g, %.6g] at %g%%\n", r.mw.ci_lo, r.mw.ci_hi, 100 * o->cfg.confidence);
		}
		printf("effect:         %.6g (mean ratio canary / baseline)\n", r.effect);
		printf("classification: %s\n", judge_class_name(r.classification));
		printf("reason:         %s\n", r.reason);
	}
	return fail ? EXIT_NO : EXIT_OK;
}

static void print_sequential(const struct opts *o, const struct seq_evidence *ev, long line, double threshold)
{
	if (o->json) {
		json_t *j = json_object();
		json_object_set_new(j, "decision", json_string(seq_decision_name(ev->decision)));
		json_object_set_new(j, "line", json_integer(line));
		json_object_set_new(j, "kind", json_string(o->kind));
		json_t *st = json_object();
		json_object_set_new(st, "e_value_fail", num(ev->e_fail));
		json_object_set_new(st, "e_value_pass", num(ev->e_pass));
		json_object_set_new(st, "threshold", num(ev->threshold));
		json_object_set_new(st, "ratio_estimate", num(ev->ratio_estimate));
		json_object_set_new(st, "ratio_lower", num(ev->ratio_lo));
		json_object_set_new(st, "ratio_upper", num(ev->ratio_hi));
		json_object_set_new(j, "statistic", st);
		json_object_set_new(j, "canary", json_pack("{s:I,s:I}", "events", (json_int_t)ev->canary_events,
							   "observations", (json_int_t)ev->canary_trials));
		json_object_set_new(j, "baseline", json_pack("{s:I,s:I}", "events", (json_int_t)ev->baseline_events,
							     "observations", (json_int_t)ev->baseline_trials));
		json_object_set_new(j, "share", json_pack("{s:o,s:o}", "lower", num(ev->share_lo), "upper",
							  num(ev->share_hi)));
		if (!isnan(threshold))
			json_object_set_new(j, "latency_threshold_ms", json_real(threshold));
		json_object_set_new(j, "alpha", json_real(o->alpha));
		json_object_set_new(j, "tolerance", json_real(o->tolerance));
		char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
		json_decref(j);
		if (s)
			puts(s);
		free(s);
		return;
	}
	printf("decision:  %s\n", seq_decision_name(ev->decision));
	printf("line:      %ld\n", line);
	printf("e-value:   fail %.4g, pass %.4g (decide at %.4g)\n", ev->e_fail, ev->e_pass, ev->threshold);
	printf("ratio:     %.4g, anytime interval [%.4g, %.4g] (canary / baseline %s rate)\n", ev->ratio_estimate,
	       ev->ratio_lo, ev->ratio_hi, !strcmp(o->kind, "errors") ? "error" : "exceedance");
	printf("canary:    %llu events in %llu observations\n", (unsigned long long)ev->canary_events,
	       (unsigned long long)ev->canary_trials);
	printf("baseline:  %llu events in %llu observations\n", (unsigned long long)ev->baseline_events,
	       (unsigned long long)ev->baseline_trials);
	if (ev->share_lo == ev->share_hi)
		printf("share:     %.4g%% (given)\n", 100 * ev->share_lo);
	else
		printf("share:     %.4g%% .. %.4g%% (estimated)\n", 100 * ev->share_lo, 100 * ev->share_hi);
	if (!isnan(threshold))
		printf("threshold: %.4g ms (baseline quantile %g)\n", threshold, o->quantile);
}

static int run_sequential(struct opts *o)
{
	int latency = !strcmp(o->kind, "latency");
	struct seq_latency lat;
	struct seq_counts cnt;
	seq_latency_init(&lat, o->alpha, o->tolerance, o->quantile);
	seq_counts_init(&cnt, o->alpha, o->tolerance);
	double share = -1;
	char buf[LINE_MAX_LEN + 2];
	long line = 0;
	int r;
	enum seq_decision d = SEQ_CONTINUE;
	while ((r = read_line(stdin, buf, sizeof(buf))) != 0) {
		line++;
		if (r < 0)
			return error("stdin:%ld: line longer than %d characters", line, LINE_MAX_LEN), EXIT_USAGE;
		char *s = trim(buf);
		if (!*s || *s == '#')
			continue;
		char *sp = s + strcspn(s, " \t");
		if (!*sp)
			return error("stdin:%ld: expected 'baseline VALUE', 'canary VALUE' or 'weight W', got '%s'",
				     line, s), EXIT_USAGE;
		*sp++ = 0;
		while (*sp == ' ' || *sp == '\t')
			sp++;
		char *end;
		errno = 0;
		double v = strtod(sp, &end);
		if (!strcmp(s, "weight") && end != sp && !strcmp(end, "%"))
			end++; /* "weight 10%" reads as "weight 10" */
		if (end == sp || *end || errno == ERANGE || !isfinite(v))
			return error("stdin:%ld: '%s' is not a finite number", line, sp), EXIT_USAGE;
		if (!strcmp(s, "weight")) {
			if (!(v >= 0 && v <= 100))
				return error("stdin:%ld: weight %s is not a percentage between 0 and 100", line, sp),
				       EXIT_USAGE;
			share = v / 100;
			continue;
		}
		int is_canary = !strcmp(s, "canary");
		if (!is_canary && strcmp(s, "baseline"))
			return error("stdin:%ld: unknown observation '%s' (baseline, canary or weight)", line, s),
			       EXIT_USAGE;
		if (latency) {
			if (v < 0)
				return error("stdin:%ld: latency %s ms is negative", line, sp), EXIT_USAGE;
			seq_latency_observe(&lat, is_canary, v, share);
			d = seq_latency_decision(&lat);
		} else {
			if (v != 0 && v != 1)
				return error("stdin:%ld: an error observation is 0 or 1, not %s", line, sp), EXIT_USAGE;
			seq_counts_observe(&cnt, is_canary, v == 1, share);
			d = seq_counts_decision(&cnt);
		}
		if (d != SEQ_CONTINUE)
			break;
	}
	if (r == 0 && ferror(stdin))
		return error("could not read stdin: %s", strerror(errno)), EXIT_USAGE;
	struct seq_evidence ev;
	if (latency)
		seq_latency_evidence(&lat, &ev);
	else
		seq_counts_evidence(&cnt, &ev);
	print_sequential(o, &ev, line, latency ? lat.threshold : NAN);
	return d == SEQ_FAIL ? EXIT_NO : EXIT_OK;
}

int cmd_judge(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return EXIT_OK;
		}
	struct opts o;
	memset(&o, 0, sizeof(o));
	judge_metric_config_default(&o.cfg);
	o.alpha = 0.05;
	o.tolerance = 0.25;
	o.quantile = 0.9;
	if (parse_args(argc, argv, &o)) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (o.sequential) {
		if (o.baseline || o.canary)
			return error("--sequential reads stdin: drop --baseline and --canary"), EXIT_USAGE;
		if (!o.kind)
			return error("--sequential needs --kind errors or --kind latency"), EXIT_USAGE;
		return run_sequential(&o);
	}
	if (!o.baseline || !o.canary) {
		error("give --baseline FILE and --canary FILE, or --sequential (see --help)");
		return EXIT_USAGE;
	}
	if (o.kind)
		return error("--kind needs --sequential"), EXIT_USAGE;
	return run_fixed(&o);
}
