/* Unit tests of src/server/smoke: every check kind against a tiny HTTP server started here on
 * 127.0.0.1:0 (a thread per connection, one request each, bounded in connections and time). */
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop/loop.h"
#include "server/smoke.h"
#include "support/loopback.h"

#define MAX_CONNS 64 /* the server answers at most this many connections per test */

static int lfd = -1;
static pthread_t th;
static volatile int stop;
static char addr[32];
static char last_method[16];
static int last_had_clen0;

static void reply(int fd, const char *status, const char *body, size_t blen, int send_body)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %s\r\nContent-Length: %zu\r\nContent-Type: text/plain\r\n"
			 "Connection: close\r\n\r\n",
			 status, blen);
	if (loopback_send_all(fd, head, (size_t)n) == 0 && send_body)
		loopback_send_all(fd, body, blen);
}

static void answer(int fd)
{
	char req[4096];
	if (loopback_read_head(fd, req, sizeof(req), 2000) < 0) /* bounded: 4 KiB, 2 s a read */
		return;
	char method[16] = "", path[256] = "";
	if (sscanf(req, "%15s %255s", method, path) != 2)
		return;
	snprintf(last_method, sizeof(last_method), "%s", method);
	last_had_clen0 = strcasestr(req, "\r\nContent-Length: 0\r\n") != NULL;
	int head = !strcmp(method, "HEAD");
	static char big[70 * 1024];
	if (!strcmp(path, "/items/1")) {
		const char *b = "{\"id\": \"1\", \"metadata\": {\"color\": \"blue\"}}";
		reply(fd, "200 OK", b, strlen(b), !head);
	} else if (!strcmp(path, "/slow")) {
		usleep(400 * 1000);
		reply(fd, "200 OK", "late", 4, 1);
	} else if (!strcmp(path, "/slow300")) {
		usleep(300 * 1000);
		reply(fd, "200 OK", "late", 4, 1);
	} else if (!strcmp(path, "/big")) {
		memset(big, 'x', sizeof(big));
		memcpy(big + sizeof(big) - 6, "needle", 6);
		reply(fd, "200 OK", big, sizeof(big), 1);
	} else if (!strcmp(path, "/post") && !strcmp(method, "POST")) {
		reply(fd, "201 Created", "made", 4, 1);
	} else if (!strcmp(path, "/fail")) {
		reply(fd, "503 Service Unavailable", "down", 4, 1);
	} else {
		reply(fd, "404 Not Found", "no such path", 12, !head);
	}
}

static void *answer_thread(void *arg)
{
	int fd = (int)(intptr_t)arg;
	answer(fd);
	close(fd);
	return NULL;
}

static void *serve(void *arg)
{
	(void)arg;
	for (int i = 0; i < MAX_CONNS && !stop; i++) {
		struct pollfd p = {lfd, POLLIN, 0};
		int r = poll(&p, 1, 100);
		if (r <= 0) {
			i--; /* an idle wait is not a connection; stop bounds the loop */
			continue;
		}
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		/* a thread per connection: checks against several instances overlap */
		pthread_t t;
		if (pthread_create(&t, NULL, answer_thread, (void *)(intptr_t)fd) == 0)
			pthread_detach(t);
		else
			close(fd);
	}
	return NULL;
}

static void start(void)
{
	lfd = loopback_listen(16, addr, sizeof(addr), NULL);
	stop = 0;
	cr_assert_eq(pthread_create(&th, NULL, serve, NULL), 0);
}

static void finish(void)
{
	stop = 1;
	pthread_join(th, NULL);
	close(lfd);
}

TestSuite(smoke, .init = start, .fini = finish, .timeout = 20);

/* A normalized check, as the manifest validator produces it. */
static json_t *check(const char *path, const char *method, int status, const char *contains,
		     int timeout_ms)
{
	return json_pack("{s:s, s:s, s:i, s:s?, s:i}", "path", path, "method", method, "status",
			 status, "body_contains", contains, "timeout_ms", timeout_ms);
}

/* The typed checks (core/manifest.h) of a list written as JSON above; strings borrowed. */
static size_t typed(const json_t *checks, struct manifest_smoke *out, size_t max)
{
	size_t i;
	json_t *c;
	json_array_foreach(checks, i, c) {
		cr_assert_lt(i, max);
		const char *m = json_string_value(json_object_get(c, "method"));
		out[i] = (struct manifest_smoke){
			.path = json_string_value(json_object_get(c, "path")),
			.method = !m || !strcmp(m, "GET") ? MANIFEST_GET
				  : !strcmp(m, "HEAD")    ? MANIFEST_HEAD
							  : MANIFEST_POST,
			.status = (int)json_integer_value(json_object_get(c, "status")),
			.body_contains = json_string_value(json_object_get(c, "body_contains")),
			.timeout_ms = (uint64_t)json_integer_value(json_object_get(c, "timeout_ms")),
		};
	}
	return json_array_size(checks);
}

static const char *str(const json_t *ev, const char *k)
{
	return json_string_value(json_object_get(ev, k));
}

/* ---- running checks on a loop of our own, bounded in time ---- */

struct outcome {
	int calls, ok;
	json_t *ev;
	loop *l;
	int stop_after; /* stop the loop after this many callbacks */
};

static void on_done(void *arg, const json_t *ev, int ok)
{
	struct outcome *o = arg;
	o->calls++;
	o->ok = ok;
	json_decref(o->ev);
	o->ev = json_deep_copy(ev);
	if (o->calls >= o->stop_after)
		loop_stop(o->l);
}

static void on_guard(loop *l, void *arg)
{
	(void)arg;
	loop_stop(l);
}

/* Starts the checks, runs the loop until they end (10 s at most); returns the evidence. */
static json_t *run_checks(const json_t *checks, const char *at, int *ok)
{
	loop *l = loop_new();
	fetcher *f = fetcher_new(l);
	cr_assert(l && f);
	struct outcome o = {.l = l, .stop_after = 1};
	smoke_run *r = NULL;
	struct manifest_smoke ck[8];
	int rc = smoke_start(f, ck, typed(checks, ck, 8), at, on_done, &o, &r);
	cr_assert(rc >= 0);
	if (rc == 1) {
		*ok = 1;
		fetcher_free(f);
		loop_free(l);
		return json_array();
	}
	cr_assert_eq(o.calls, 0, "the callback never runs inside smoke_start");
	uint64_t guard = loop_timer(l, 10000, on_guard, NULL);
	loop_run(l);
	loop_timer_cancel(l, guard);
	cr_assert_eq(o.calls, 1, "the callback runs once");
	fetcher_free(f);
	loop_free(l);
	*ok = o.ok;
	return o.ev;
}

Test(smoke, passing_checks_and_their_evidence)
{
	json_t *checks = json_pack("[o, o, o]", check("/items/1", "GET", 200, "\"id\"", 1000),
				   check("/nope", "GET", 404, NULL, 1000),
				   check("/items/1", "HEAD", 200, NULL, 1000));
	int ok = -1;
	json_t *ev = run_checks(checks, addr, &ok);
	cr_assert(ev);
	cr_expect_eq(ok, 1);
	cr_assert_eq(json_array_size(ev), 3);
	char *txt = json_dumps(json_array_get(ev, 0), JSON_COMPACT);
	cr_expect_str_eq(txt, "{\"path\":\"/items/1\",\"method\":\"GET\",\"want_status\":200,"
			      "\"status\":200,\"body_contains\":\"\\\"id\\\"\",\"matched\":true,"
			      "\"ok\":true,\"error\":null}");
	free(txt);
	txt = json_dumps(json_array_get(ev, 1), JSON_COMPACT);
	cr_expect_str_eq(txt, "{\"path\":\"/nope\",\"method\":\"GET\",\"want_status\":404,"
			      "\"status\":404,\"body_contains\":null,\"matched\":null,\"ok\":true,"
			      "\"error\":null}");
	free(txt);
	/* HEAD finishes without waiting for the body its Content-Length announces. */
	cr_expect_eq(json_integer_value(json_object_get(json_array_get(ev, 2), "status")), 200);
	cr_expect(json_is_true(json_object_get(json_array_get(ev, 2), "ok")));
	cr_expect_str_eq(last_method, "HEAD");
	json_decref(ev);
	json_decref(checks);
}

Test(smoke, wrong_status_and_missing_substring_fail)
{
	json_t *checks = json_pack("[o, o, o]", check("/items/1", "GET", 200, "metadata_v2", 1000),
				   check("/fail", "GET", 200, NULL, 1000),
				   check("/items/1", "GET", 200, "color", 1000));
	int ok = -1;
	json_t *ev = run_checks(checks, addr, &ok);
	cr_assert(ev);
	cr_expect_eq(ok, 0);
	json_t *e0 = json_array_get(ev, 0), *e1 = json_array_get(ev, 1), *e2 = json_array_get(ev, 2);
	cr_expect(json_is_false(json_object_get(e0, "matched")));
	cr_expect(json_is_false(json_object_get(e0, "ok")));
	cr_expect_str_eq(str(e0, "error"),
			 "GET /items/1: the response body (42 bytes) does not contain \"metadata_v2\"");
	cr_expect_eq(json_integer_value(json_object_get(e1, "status")), 503);
	cr_expect_str_eq(str(e1, "error"), "GET /fail answered 503, expected 200");
	/* Every check runs even after a failure: the evidence is complete. */
	cr_expect(json_is_true(json_object_get(e2, "ok")));
	json_decref(ev);
	json_decref(checks);
}

Test(smoke, timeout_is_the_checks_own)
{
	json_t *checks = json_pack("[o]", check("/slow", "GET", 200, NULL, 100));
	int ok = -1;
	json_t *ev = run_checks(checks, addr, &ok);
	cr_assert(ev);
	cr_expect_eq(ok, 0);
	json_t *e0 = json_array_get(ev, 0);
	cr_expect(json_is_null(json_object_get(e0, "status")));
	cr_expect(strstr(str(e0, "error"), "GET /slow: ") == str(e0, "error"), "%s", str(e0, "error"));
	cr_expect(strstr(str(e0, "error"), "imeout") != NULL || strstr(str(e0, "error"), "timed out"),
		  "%s", str(e0, "error"));
	json_decref(ev);
	json_decref(checks);
}

Test(smoke, body_over_64k_fails)
{
	json_t *checks = json_pack("[o]", check("/big", "GET", 200, "needle", 1000));
	int ok = -1;
	json_t *ev = run_checks(checks, addr, &ok);
	cr_assert(ev);
	cr_expect_eq(ok, 0);
	cr_expect(strstr(str(json_array_get(ev, 0), "error"), "response larger than 65536 bytes"),
		  "%s", str(json_array_get(ev, 0), "error"));
	json_decref(ev);
	json_decref(checks);
}

Test(smoke, post_sends_an_empty_body)
{
	json_t *checks = json_pack("[o]", check("/post", "POST", 201, "made", 1000));
	int ok = -1;
	json_t *ev = run_checks(checks, addr, &ok);
	cr_assert(ev);
	cr_expect_eq(ok, 1, "%s", str(json_array_get(ev, 0), "error"));
	cr_expect_str_eq(last_method, "POST");
	cr_expect(last_had_clen0);
	json_decref(ev);
	json_decref(checks);
}

Test(smoke, unreachable_instance_and_no_checks)
{
	/* A port nobody listens on: bind one, note it, close it. */
	int port;
	close(loopback_bind(&port));
	char dead[32];
	snprintf(dead, sizeof(dead), "127.0.0.1:%d", port);

	json_t *checks = json_pack("[o]", check("/items/1", "GET", 200, NULL, 500));
	int ok = -1;
	json_t *ev = run_checks(checks, dead, &ok);
	cr_assert(ev);
	cr_expect_eq(ok, 0);
	cr_expect(json_is_null(json_object_get(json_array_get(ev, 0), "status")));
	cr_expect(str(json_array_get(ev, 0), "error") != NULL);
	json_decref(ev);

	ok = -1;
	ev = run_checks(NULL, addr, &ok);
	cr_expect_eq(ok, 1);
	cr_expect_eq(json_array_size(ev), 0);
	json_decref(ev);

	/* A malformed entry fails rather than being skipped. */
	json_t *bad = json_pack("[{s:s}]", "method", "GET");
	ok = -1;
	ev = run_checks(bad, addr, &ok);
	cr_expect_eq(ok, 0);
	cr_expect(strstr(str(json_array_get(ev, 0), "error"), "malformed check"));
	json_decref(ev);
	json_decref(bad);
	json_decref(checks);
}

Test(smoke, instances_are_checked_in_parallel_and_a_run_can_be_cancelled)
{
	/* two runs of a 300 ms check on one loop end in well under 2 x 300 ms; a third is
	 * cancelled at once and never calls back */
	json_t *checks = json_pack("[o]", check("/slow300", "GET", 200, NULL, 2000));
	loop *l = loop_new();
	fetcher *f = fetcher_new(l);
	struct outcome o = {.l = l, .stop_after = 2};
	smoke_run *r1, *r2, *r3;
	struct manifest_smoke ck[1];
	size_t n = typed(checks, ck, 1);
	cr_assert_eq(smoke_start(f, ck, n, addr, on_done, &o, &r1), 0);
	cr_assert_eq(smoke_start(f, ck, n, addr, on_done, &o, &r2), 0);
	cr_assert_eq(smoke_start(f, ck, n, addr, on_done, &o, &r3), 0);
	smoke_cancel(r3);
	uint64_t t0 = loop_clock_ms();
	uint64_t guard = loop_timer(l, 10000, on_guard, NULL);
	loop_run(l);
	uint64_t took = loop_clock_ms() - t0;
	loop_timer_cancel(l, guard);
	cr_expect_eq(o.calls, 2);
	cr_expect_eq(o.ok, 1);
	cr_expect_lt(took, 550, "took %llu ms: the runs did not overlap", (unsigned long long)took);
	json_decref(o.ev);
	fetcher_free(f);
	loop_free(l);
	json_decref(checks);
}
