/*
 * notifier: the outbox written by the store's event hook, delivered on a real loop with fetch
 * to a receiver (the project's httpd on an ephemeral loopback port) that fails its first
 * answers: every row arrives, in order, each once it was answered 2xx, signed; the failures
 * are retried after the backoff and nothing overtakes them; a rolled-back event is never sent.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/notify.h"
#include "http/server.h"
#include "loop/fetch.h"
#include "loop/loop.h"
#include "server/notifier.h"
#include "store/store.h"

#define SECRET "a-secret-of-some-length"

static struct {
	int calls, fail_first;
	char ids[16][32];   /* the ids of the deliveries answered 200, in order */
	char events[16][32];
	int ok, bad_sig;
} R;

static void receive(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	(void)ctx;
	R.calls++;
	char id[32] = "", sig[128] = "";
	httpd_header(req, "X-Sluice-Delivery", id, sizeof(id));
	httpd_header(req, "X-Sluice-Signature", sig, sizeof(sig));
	char want[NOTIFY_SIGNATURE_LEN + 1];
	notify_sign(SECRET, req->body, req->body_len, want);
	R.bad_sig += strcmp(want, sig) != 0;
	if (R.calls <= R.fail_first) {
		resp->status = 503;
		return;
	}
	json_t *b = json_loads(req->body, 0, NULL);
	if (R.ok < 16) {
		snprintf(R.ids[R.ok], sizeof(R.ids[0]), "%s", id);
		snprintf(R.events[R.ok], sizeof(R.events[0]), "%s", json_string_value(json_object_get(b, "message")));
		R.ok++;
	}
	json_decref(b);
}

static notifier *N;
static int want_ok;

static void tick(loop *l, void *arg)
{
	(void)arg;
	notifier_tick(N, loop_clock_ms());
	if (R.ok >= want_ok)
		loop_stop(l);
	else
		loop_timer(l, 20, tick, NULL);
}

static void give_up(loop *l, void *arg)
{
	(void)arg;
	loop_stop(l);
}

Test(notifier, delivers_in_order_through_failures, .timeout = 30)
{
	char dir[] = "/tmp/sluice-notifier-XXXXXX", path[128];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/s.db", dir);
	struct err e = {""};
	store *s;
	cr_assert_eq(store_open(&s, path, &e), 0, "%s", e.msg);
	loop *l = loop_new();
	fetcher *f = fetcher_new(l);
	httpd *h;
	cr_assert_eq(httpd_start(&h, l, "127.0.0.1:0", NULL, receive, NULL, &e), 0, "%s", e.msg);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", httpd_port(h));
	struct notifier_config cfg = {.holder = "t", .lease_ttl_ms = 5000, .timeout_ms = 2000,
				      .backoff_ms = 30, .backoff_max_ms = 60};
	N = notifier_new(s, f, &cfg);
	cr_assert_not_null(N);

	struct store_subscription sub = {.env = "production", .service = "", .types = ",step.passed,",
					 .url = url, .format = "json", .secret = SECRET, .created_by = "t"};
	int64_t id;
	cr_assert_eq(store_put_subscription(s, &sub, &id, &e), 0, "%s", e.msg);
	json_t *st = json_object();
	int64_t dep;
	cr_assert_eq(store_create_deployment(s, "checkout", "production", "1.0.0", "deploy", st, &dep, &e), 0);
	json_decref(st);
	/* three events announce step.passed; one in a transaction rolled back; one announces nothing */
	cr_assert_eq(store_add_event(s, dep, "passed", "eu", "first", NULL, &e), 0, "%s", e.msg);
	cr_assert_eq(store_begin(s, &e), 0);
	cr_assert_eq(store_add_event(s, dep, "passed", "eu", "rolled back", NULL, &e), 0);
	store_rollback(s);
	cr_assert_eq(store_add_event(s, dep, "step", "eu", "not announced", NULL, &e), 0);
	cr_assert_eq(store_add_event(s, dep, "passed", "eu", "second", NULL, &e), 0);
	cr_assert_eq(store_add_event(s, dep, "passed", "us", "third", NULL, &e), 0);
	int64_t backlog, oldest;
	cr_assert_eq(store_notify_backlog(s, &backlog, &oldest, &e), 0);
	cr_assert_eq(backlog, 3);

	memset(&R, 0, sizeof(R));
	R.fail_first = 3; /* the first row is refused three times */
	want_ok = 3;
	loop_timer(l, 0, tick, NULL);
	loop_timer(l, 20000, give_up, NULL);
	cr_assert_eq(loop_run(l), 0);

	cr_assert_eq(R.ok, 3, "delivered %d of 3 (%d calls)", R.ok, R.calls);
	cr_assert_eq(R.calls, 6, "three refusals, then one answer each: %d", R.calls);
	cr_assert_str_eq(R.events[0], "first");
	cr_assert_str_eq(R.events[1], "second");
	cr_assert_str_eq(R.events[2], "third");
	cr_assert_lt(atoll(R.ids[0]), atoll(R.ids[1]));
	cr_assert_lt(atoll(R.ids[1]), atoll(R.ids[2]));
	cr_assert_eq(R.bad_sig, 0, "every delivery signed with the subscription's secret");
	cr_assert_eq(store_notify_backlog(s, &backlog, &oldest, &e), 0);
	cr_assert_eq(backlog, 0);
	struct notifier_counts nc;
	notifier_counts(N, &nc);
	cr_assert_eq(nc.delivered, 3);
	cr_assert_eq(nc.failed, 3);
	cr_assert_eq(nc.owner, 1, "it holds the delivery lease");

	notifier_free(N);
	httpd_free(h);
	fetcher_free(f);
	loop_free(l);
	store_close(s);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}
