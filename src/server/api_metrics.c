/*
 * api_metrics: GET /metrics, the control plane's own metrics in Prometheus's text format
 * (docs/observability.md): deployments by phase, rollbacks, gate refusals, reconcile passes,
 * the API's answers per route and status class, OFREP evaluations, and how long the store took
 * to answer this scrape's questions. Counters count since the server started.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "server/api_internal.h"
#include "server/notifier.h"
#include "store/store.h"
#include "util/histo.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A label value with '\' and '"' escaped (newlines cannot occur: routes and phases are ours). */
static void label(struct buf *b, const char *v)
{
	for (const char *p = v; *p; p++) {
		char ch[3] = {'\\', *p, 0};
		if (buf_adds(b, *p == '\\' || *p == '"' ? ch : ch + 1))
			return;
	}
}

/* One more store question; its failure leaves the series out (the scrape's other series stay). */
static int write_by_kind(store *s, struct buf *b)
{
	json_t *list = NULL;
	struct err e = {""};
	if (store_list_deployments(s, NULL, &list, &e))
		return 0;
	static const char *const kinds[] = {"deploy", "rollback", "hotfix"};
	static const char *const phases[] = {"active", "promoted", "rolled_back", "failed", "preempted", "superseded"};
	long n[3][6] = {{0}};
	size_t i;
	json_t *d;
	json_array_foreach(list, i, d) {
		const char *k = json_string_value(json_object_get(d, "kind"));
		const char *p = json_string_value(json_object_get(d, "phase"));
		for (int x = 0; k && p && x < 3; x++)
			for (int y = 0; y < 6; y++)
				n[x][y] += !strcmp(k, kinds[x]) && !strcmp(p, phases[y]);
	}
	json_decref(list);
	int bad = buf_adds(b, "# HELP sluice_deployments_by_kind Deployments in the store by kind and state "
			      "(active, or the outcome of one that ended).\n# TYPE sluice_deployments_by_kind gauge\n");
	for (int x = 0; x < 3; x++)
		for (int y = 0; y < 6; y++)
			bad |= buf_addf(b, "sluice_deployments_by_kind{kind=\"%s\",state=\"%s\"} %ld\n", kinds[x],
					phases[y], n[x][y]);
	return bad;
}

void api_use_notifier(api *a, struct notifier *n)
{
	a->notifier = n;
}

void api_h_metrics(struct route_ctx *c)
{
	api *a = c->srv;
	struct buf *b = &c->resp->body;
	c->resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
	int bad = 0;
	bad |= buf_addf(b, "# HELP sluice_build_info The sluice version this server runs.\n"
			   "# TYPE sluice_build_info gauge\nsluice_build_info{version=\"%s\"} 1\n", SLUICE_VERSION);

	/* deployments by phase: one store question, timed */
	json_t *list = NULL;
	struct err e = {""};
	double t0 = now_s();
	int rc = store_list_deployments(a->store, NULL, &list, &e);
	double store_s = now_s() - t0;
	if (rc) {
		buf_reset(b);
		httpd_error(c->resp, 500, "%s", e.msg);
		return;
	}
	static const char *const phases[] = {"active", "promoted", "rolled_back", "failed", "preempted", "superseded",
					     "split"};
	long counts[7] = {0}, kinds_rollback = 0;
	size_t i;
	json_t *d;
	json_array_foreach(list, i, d) {
		const char *ph = json_string_value(json_object_get(d, "phase"));
		for (int k = 0; ph && k < 7; k++)
			counts[k] += !strcmp(ph, phases[k]);
		const char *kind = json_string_value(json_object_get(d, "kind"));
		kinds_rollback += kind && !strcmp(kind, "rollback");
	}
	json_decref(list);
	bad |= buf_adds(b, "# HELP sluice_deployments Deployments in the store, by phase.\n"
			   "# TYPE sluice_deployments gauge\n");
	for (int k = 0; k < 7; k++)
		bad |= buf_addf(b, "sluice_deployments{phase=\"%s\"} %ld\n", phases[k], counts[k]);
	bad |= buf_addf(b, "# HELP sluice_rollbacks_total Deployments rolled back by a failed verification.\n"
			   "# TYPE sluice_rollbacks_total counter\nsluice_rollbacks_total %ld\n", counts[2]);
	bad |= buf_addf(b, "# HELP sluice_rollback_deployments_total Rollbacks asked for (deployments of kind rollback).\n"
			   "# TYPE sluice_rollback_deployments_total counter\nsluice_rollback_deployments_total %ld\n",
			kinds_rollback);
	bad |= buf_addf(b, "# HELP sluice_gate_refusals_total Deploy requests the compatibility gate refused.\n"
			   "# TYPE sluice_gate_refusals_total counter\nsluice_gate_refusals_total %llu\n",
			(unsigned long long)a->gate_refusals);

	uint64_t passes = 0, skipped = 0;
	reconcile_counts(a->reconciler, &passes, &skipped);
	bad |= buf_addf(b, "# HELP sluice_reconcile_passes_total Ticks that ran a reconcile pass.\n"
			   "# TYPE sluice_reconcile_passes_total counter\nsluice_reconcile_passes_total %llu\n"
			   "# HELP sluice_reconcile_skipped_total Ticks with nothing to look at.\n"
			   "# TYPE sluice_reconcile_skipped_total counter\nsluice_reconcile_skipped_total %llu\n",
			(unsigned long long)passes, (unsigned long long)skipped);
	bad |= buf_addf(b, "# HELP sluice_flag_evaluations_total OFREP flag evaluations answered.\n"
			   "# TYPE sluice_flag_evaluations_total counter\nsluice_flag_evaluations_total %llu\n",
			(unsigned long long)a->evaluations);

	/* answers per route and status class */
	size_t n;
	const struct route *rt = api_route_table(&n);
	bad |= buf_adds(b, "# HELP sluice_api_requests_total API answers by route and status class.\n"
			   "# TYPE sluice_api_requests_total counter\n");
	for (size_t r = 0; r <= n && r <= API_MAX_ROUTES; r++)
		for (int k = 1; k < 6; k++) {
			if (!a->answers[r][k])
				continue;
			bad |= buf_adds(b, "sluice_api_requests_total{route=\"");
			if (r) {
				label(b, rt[r - 1].method);
				bad |= buf_adds(b, " ");
				label(b, rt[r - 1].pattern);
			} else {
				bad |= buf_adds(b, "none");
			}
			bad |= buf_addf(b, "\",code=\"%dxx\"} %llu\n", k, (unsigned long long)a->answers[r][k]);
		}
	bad |= buf_addf(b, "# HELP sluice_store_scrape_seconds How long the store took to list the deployments for this scrape.\n"
			   "# TYPE sluice_store_scrape_seconds gauge\nsluice_store_scrape_seconds %.6f\n",
			store_s);
	/* histograms: reconcile passes, store commits; the deployment events' metrics */
	bad |= buf_adds(b, "# HELP sluice_reconcile_pass_seconds How long one reconcile pass took.\n"
			   "# TYPE sluice_reconcile_pass_seconds histogram\n");
	bad |= histo_write(reconcile_pass_seconds(a->reconciler), b, "sluice_reconcile_pass_seconds", "");
	bad |= buf_adds(b, "# HELP sluice_store_commit_seconds How long a store transaction took to commit.\n"
			   "# TYPE sluice_store_commit_seconds histogram\n");
	bad |= histo_write(store_commit_latency(a->store), b, "sluice_store_commit_seconds", "");
	bad |= notifier_write_metrics(a->notifier, b);
	/* deployments by kind and phase (the outcome of those that ended) */
	bad |= write_by_kind(a->store, b);

	/* notifications: the outbox's backlog and the deliverer's attempts */
	int64_t backlog = 0, oldest = 0;
	if (store_notify_backlog(a->store, &backlog, &oldest, &e) == 0) {
		double age = oldest ? (double)(store_now_ms() - oldest) / 1000.0 : 0;
		bad |= buf_addf(b, "# HELP sluice_notification_backlog Notifications written and not yet delivered.\n"
				   "# TYPE sluice_notification_backlog gauge\nsluice_notification_backlog %lld\n"
				   "# HELP sluice_notification_oldest_pending_seconds Age of the oldest undelivered notification (0: none).\n"
				   "# TYPE sluice_notification_oldest_pending_seconds gauge\n"
				   "sluice_notification_oldest_pending_seconds %.3f\n",
				(long long)backlog, age < 0 ? 0 : age);
	}
	struct notifier_counts nc;
	notifier_counts(a->notifier, &nc);
	bad |= buf_addf(b, "# HELP sluice_notification_deliveries_total Delivery attempts since the server started, by result.\n"
			   "# TYPE sluice_notification_deliveries_total counter\n"
			   "sluice_notification_deliveries_total{result=\"delivered\"} %llu\n"
			   "sluice_notification_deliveries_total{result=\"failed\"} %llu\n"
			   "# HELP sluice_notification_in_flight Deliveries waiting for their receiver's answer.\n"
			   "# TYPE sluice_notification_in_flight gauge\nsluice_notification_in_flight %llu\n",
			(unsigned long long)nc.delivered, (unsigned long long)nc.failed,
			(unsigned long long)nc.in_flight);
	if (bad) {
		buf_reset(b);
		httpd_error(c->resp, 500, "the metrics do not fit the answer's limit");
	}
}
