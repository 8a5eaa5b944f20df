/*
 * prometheus: the Prometheus metric provider of the control plane (a driver).
 *
 * A service's manifest may list custom metrics as PromQL templates (analysis.metrics, with the
 * server in analysis.prometheus). For a verification window, each template is expanded twice,
 * for the canary and for the baseline (stable) version, with {service}, {version}, {region}
 * and {env} substituted; both are asked of GET /api/v1/query_range over the window, and the
 * two series of samples are judged by the Kayenta-style classifier (stats/judge.h). The
 * weighted score then decides: pass, marginal (inconclusive) or fail.
 *
 * Being a fixed-sample test, the judgement is only valid when made once: the caller asks for
 * it once per window, after the step's minimum duration (see docs/verification.md).
 *
 * The pure parts (template expansion, parsing of an answer, the verdict of a score) are
 * exported for tests. Queries are asynchronous (loop/fetch.h: the server's loop never waits on
 * Prometheus), bounded in time, and answers have hard limits.
 */
#ifndef SLUICE_PROMETHEUS_H
#define SLUICE_PROMETHEUS_H

#include <jansson.h>
#include <stddef.h>

#include "core/manifest.h"
#include "core/pipeline.h"
#include "stats/judge.h"
#include "loop/fetch.h"
#include "util/log.h"

#define PROM_MAX_RESPONSE (4u << 20) /* bytes of one query_range answer */
#define PROM_MAX_SAMPLES 11000       /* values kept from one answer (Prometheus' own cap) */
#define PROM_MAX_QUERY 4096          /* bytes of an expanded query */
#define PROM_MAX_METRICS 16          /* metrics per service (the manifest says so too) */
#define PROM_MIN_SAMPLES 5           /* per side, before a judgement is made */
#define PROM_TIMEOUT_MS 2000

/* What a template is expanded for. Every field must be set. */
struct prom_target {
	const char *service, *version, *region, *env;
};

/*
 * Expands {service}, {version}, {region} and {env} in tmpl into out (NUL-terminated). The
 * values are escaped for a double-quoted PromQL string (backslash, quote). A placeholder is a
 * brace around letters and '_' only, so PromQL's own braces ({job="x"}) stay as they are.
 * Returns 0, or -1 with e on an unknown placeholder or when the result does not fit outlen.
 */
__attribute__((warn_unused_result)) int prom_expand(const char *tmpl, const struct prom_target *t,
						    char *out, size_t outlen, struct err *e);

/*
 * Parses a /api/v1/query_range answer (len bytes, at most PROM_MAX_RESPONSE): appends the
 * values of every series of the matrix to values (at most max), in order. "NaN" and infinite
 * values are kept as NaN (the judge's NaN strategy decides). Returns 0 with *n set, or -1 with
 * e (not JSON, status error with Prometheus' message, not a matrix, too many values).
 */
__attribute__((warn_unused_result)) int prom_parse_range(const char *body, size_t len, double *values,
							 size_t max, size_t *n /* OUT */, struct err *e);

/* The classifier's configuration of one metric of a manifest's analysis.metrics (c->name
 * points into m). */
void prom_metric_config(const struct manifest_metric *m, struct judge_metric_config *c /* OUT */);

/* The pipeline's verdict for a score: pass -> PASS, fail (or a critical failure) -> FAIL,
 * marginal -> INCONCLUSIVE (the step's maximum duration then decides). */
enum pl_verdict prom_verdict(const struct judge_summary *s);

typedef struct prom_run prom_run;

/*
 * Called once, from the loop, with the verdict: NONE when a side has fewer than
 * PROM_MIN_SAMPLES samples of a metric or Prometheus could not be asked (msg says why; the
 * caller asks again later), else PASS / FAIL / INCONCLUSIVE. evidence (a new reference the
 * callee owns, or NULL): per metric the queries, samples, classification, p-value, interval,
 * effect, and the score. The run frees itself after the call.
 */
typedef void prom_done_fn(void *arg, enum pl_verdict v, const char *msg, json_t *evidence);

/*
 * Starts judging every metric of svc's analysis (analysis.metrics with analysis.prometheus,
 * interval_ms, pass_score and marginal_score; copied, so the run may outlive svc) for
 * canary against baseline over [start_s, end_s] (Unix seconds): both queries of every metric
 * go out at once over f, each bounded by PROM_TIMEOUT_MS. A baseline with too few samples in
 * the window (it gets no traffic at the last step) is read over as long a time just before
 * start_s. Without metrics or server the verdict is PASS. The targets are copied. Returns
 * NULL only when out of memory (then the callback will not run).
 */
prom_run *prom_start(fetcher *f, const struct service_manifest *svc, const struct prom_target *canary,
		     const struct prom_target *baseline, double start_s, double end_s,
		     prom_done_fn *fn, void *arg);
/* Stops a run before its callback: the callback will not run, the run is freed. */
void prom_cancel(prom_run *r);

#endif
