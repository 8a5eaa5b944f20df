/*
 * notifier: the outbox's writer (a store event hook) and its deliverer (see notifier.h).
 */
#include "server/notifier.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/notify.h"
#include "loop/loop.h"
#include "server/evmetrics.h"
#include "util/log.h"

#define LEASE_NAME "notify/deliver"
#define MAX_FLIGHT 64          /* subscriptions served at once */
#define MAX_RESPONSE 65536
#define LEASE_MARGIN_MS 250

struct flight {
	notifier *n;
	int64_t row, subscription, attempts;
	uint64_t req; /* 0: slot free */
};

struct notifier {
	store *store;
	fetcher *fetch;
	char holder[128];
	int64_t ttl_ms, backoff_ms, backoff_max_ms;
	long timeout_ms;
	int64_t epoch;
	uint64_t owned_until; /* monotonic ms: the lease counts as held until then */
	uint64_t next_renew;
	struct flight flights[MAX_FLIGHT];
	struct notifier_counts counts;
	evmetrics *metrics;
};

/* ---- writing: the store's event hook ---- */

static int on_event(void *ctx, store *s, int64_t deployment, const char *type, const char *region,
		    const char *message, const json_t *evidence, struct err *e)
{
	notifier *n = ctx;
	evmetrics_event(n->metrics, deployment, type, region, evidence, loop_clock_ms());
	const char *ntype = notify_classify(type, region);
	if (!ntype)
		return 0;
	json_t *d = NULL;
	int rc = store_get_deployment(s, deployment, &d, e);
	if (rc)
		return -1;
	json_t *p = notify_payload(ntype, d, store_now_ms(), type, region, message, evidence);
	rc = store_notify_enqueue(s, json_string_value(json_object_get(d, "env")),
				  json_string_value(json_object_get(d, "service")), ntype, p, NULL, e);
	json_decref(p);
	json_decref(d);
	return rc ? -1 : 0;
}

int notifier_raise(store *s, const char *env, const char *service, const json_t *payload,
		   struct err *e)
{
	const char *type = json_string_value(json_object_get(payload, "type"));
	if (!type || !notify_type_ok(type))
		return err_set(e, "notify: '%s' is not a notification type", type ? type : "(none)");
	return store_notify_enqueue(s, env ? env : "", service ? service : "", type, payload, NULL, e) ? -1 : 0;
}

notifier *notifier_new(store *s, fetcher *f, const struct notifier_config *cfg)
{
	notifier *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->store = s;
	n->fetch = f;
	snprintf(n->holder, sizeof(n->holder), "%s", cfg && cfg->holder ? cfg->holder : "sluice");
	n->ttl_ms = cfg && cfg->lease_ttl_ms > 0 ? cfg->lease_ttl_ms : 10000;
	n->timeout_ms = cfg && cfg->timeout_ms > 0 ? cfg->timeout_ms : 5000;
	n->backoff_ms = cfg && cfg->backoff_ms > 0 ? cfg->backoff_ms : 1000;
	n->backoff_max_ms = cfg && cfg->backoff_max_ms > 0 ? cfg->backoff_max_ms : 60000;
	if (n->backoff_ms > n->backoff_max_ms)
		n->backoff_ms = n->backoff_max_ms;
	for (int i = 0; i < MAX_FLIGHT; i++)
		n->flights[i].n = n;
	n->metrics = evmetrics_new();
	if (!n->metrics) {
		free(n);
		return NULL;
	}
	store_set_event_hook(s, on_event, n);
	return n;
}

void notifier_free(notifier *n)
{
	if (!n)
		return;
	store_set_event_hook(n->store, NULL, NULL);
	for (int i = 0; i < MAX_FLIGHT; i++)
		if (n->flights[i].req && n->fetch)
			fetch_cancel(n->fetch, n->flights[i].req);
	if (n->epoch) {
		struct err e = {""};
		if (store_lease_release(n->store, LEASE_NAME, n->holder, n->epoch, &e))
			log_warn("notifications: releasing the delivery lease: %s", e.msg);
	}
	evmetrics_free(n->metrics);
	free(n);
}

void notifier_counts(const notifier *n, struct notifier_counts *out)
{
	memset(out, 0, sizeof(*out));
	if (!n)
		return;
	*out = n->counts;
	out->in_flight = 0;
	for (int i = 0; i < MAX_FLIGHT; i++)
		out->in_flight += n->flights[i].req != 0;
}

int notifier_write_metrics(const notifier *n, struct buf *b)
{
	return n ? evmetrics_write(n->metrics, b) : 0;
}

/* ---- delivering ---- */

static int64_t backoff(const notifier *n, int64_t attempts)
{
	int64_t d = n->backoff_ms;
	for (int64_t i = 0; i < attempts && d < n->backoff_max_ms; i++)
		d *= 2;
	return d < n->backoff_max_ms ? d : n->backoff_max_ms;
}

static void on_done(void *arg, const struct fetch_result *r)
{
	struct flight *fl = arg;
	notifier *n = fl->n;
	fl->req = 0;
	int ok = r->ok && r->status >= 200 && r->status < 300;
	char why[256] = "";
	if (!ok) {
		if (r->ok)
			snprintf(why, sizeof(why), "answered %ld", r->status);
		else
			snprintf(why, sizeof(why), "%s", r->error ? r->error : "failed");
	}
	int64_t wait = ok ? 0 : backoff(n, fl->attempts);
	struct err e = {""};
	if (store_notify_mark(n->store, fl->row, ok, store_now_ms() + wait, why, &e))
		log_warn("notifications: recording delivery %lld: %s (it will be sent again)",
			 (long long)fl->row, e.msg);
	if (ok) {
		n->counts.delivered++;
		log_debug("notifications: delivered %lld to subscription %lld", (long long)fl->row,
			  (long long)fl->subscription);
	} else {
		n->counts.failed++;
		log_info("notifications: delivery %lld to subscription %lld: %s; next attempt in %lld ms",
			 (long long)fl->row, (long long)fl->subscription, why, (long long)wait);
	}
}

static int busy(const notifier *n, int64_t subscription)
{
	for (int i = 0; i < MAX_FLIGHT; i++)
		if (n->flights[i].req && n->flights[i].subscription == subscription)
			return 1;
	return 0;
}

static struct flight *free_slot(notifier *n)
{
	for (int i = 0; i < MAX_FLIGHT; i++)
		if (!n->flights[i].req)
			return &n->flights[i];
	return NULL;
}

static void send_row(notifier *n, const json_t *row)
{
	int64_t id = json_integer_value(json_object_get(row, "id"));
	int64_t sub = json_integer_value(json_object_get(row, "subscription"));
	const char *url = json_string_value(json_object_get(row, "url"));
	const char *format = json_string_value(json_object_get(row, "format"));
	const char *secret = json_string_value(json_object_get(row, "secret"));
	struct flight *fl = free_slot(n);
	if (!fl || !url || !format)
		return;
	char did[32];
	snprintf(did, sizeof(did), "%lld", (long long)id);
	char *body = NULL;
	size_t len = 0;
	const char *ctype = NULL;
	struct err e = {""};
	if (notify_render(format, did, json_object_get(row, "payload"), &body, &len, &ctype, &e)) {
		/* cannot happen for rows this build wrote; keep it from blocking its queue for ever */
		log_warn("notifications: row %lld cannot be rendered (%s); skipped", (long long)id, e.msg);
		if (store_notify_mark(n->store, id, 1, 0, e.msg, &e))
			log_warn("notifications: %s", e.msg);
		return;
	}
	char h_id[64], h_sig[32 + NOTIFY_SIGNATURE_LEN], h_type[96];
	snprintf(h_id, sizeof(h_id), "X-Sluice-Delivery: %s", did);
	snprintf(h_type, sizeof(h_type), "X-Sluice-Event: %s",
		 json_string_value(json_object_get(row, "type")));
	const char *headers[4] = {h_id, h_type, NULL, NULL};
	if (secret && *secret) {
		char sig[NOTIFY_SIGNATURE_LEN + 1];
		notify_sign(secret, body, len, sig);
		snprintf(h_sig, sizeof(h_sig), "X-Sluice-Signature: %s", sig);
		headers[2] = h_sig;
	}
	struct fetch_req req = {.method = "POST", .url = url, .body = body, .body_len = len,
				.ctype = ctype, .timeout_ms = n->timeout_ms,
				.max_response = MAX_RESPONSE, .headers = headers};
	fl->row = id;
	fl->subscription = sub;
	fl->attempts = json_integer_value(json_object_get(row, "attempts"));
	fl->req = fetch_start(n->fetch, &req, on_done, fl);
	free(body);
}

static void keep_lease(notifier *n, uint64_t now)
{
	if (now < n->next_renew)
		return;
	struct err e = {""};
	uint64_t sent = now;
	int rc = store_lease_acquire(n->store, LEASE_NAME, n->holder, n->ttl_ms, &n->epoch, &e);
	if (rc == 0) {
		n->owned_until = sent + (uint64_t)n->ttl_ms - LEASE_MARGIN_MS;
		n->next_renew = now + (uint64_t)n->ttl_ms / 3;
	} else {
		if (rc != STORE_CONFLICT)
			log_warn("notifications: the delivery lease: %s", e.msg);
		n->owned_until = 0;
		n->next_renew = now + 1000;
	}
}

void notifier_tick(notifier *n, uint64_t now_ms)
{
	if (!n || !n->fetch)
		return;
	keep_lease(n, now_ms);
	n->counts.owner = now_ms < n->owned_until;
	if (!n->counts.owner || !free_slot(n))
		return;
	json_t *rows = NULL;
	struct err e = {""};
	if (store_notify_pending(n->store, store_now_ms(), MAX_FLIGHT, &rows, &e)) {
		log_warn("notifications: reading the outbox: %s", e.msg);
		return;
	}
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row) {
		if (!busy(n, json_integer_value(json_object_get(row, "subscription"))))
			send_row(n, row);
	}
	json_decref(rows);
}
