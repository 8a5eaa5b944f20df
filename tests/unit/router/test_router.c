/* Unit tests of the proxy driver (src/router/router_proxy.c) against a fake proxy admin API started here on 127.0.0.1:0
 * (one thread, one request per connection, bounded in connections and time): the background
 * reads (metrics, health) never block the caller, and a router that sees another proxy
 * process answer sends its routes again. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop/fetch.h"
#include "loop/loop.h"
#include "router/router.h"
#include "support/loopback.h"

#define MAX_CONNS 200

static int lfd = -1;
static pthread_t th;
static char addr[32];
static atomic_int stop, identity = 1, healthy = 1, release_metrics, puts_seen, metrics_seen;
static loop *l;
static fetcher *f;
static router *r;
static char dir[64];

static void reply(int fd, const char *status, const char *body)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %s\r\nContent-Length: %zu\r\nContent-Type: application/json\r\n"
			 "Connection: close\r\n\r\n",
			 status, strlen(body));
	if (loopback_send_all(fd, head, (size_t)n) == 0)
		loopback_send_all(fd, body, strlen(body));
}

static void answer(int fd)
{
	char req[8192];
	if (loopback_read_head(fd, req, sizeof(req), 2000) < 0)
		return;
	char method[16] = "", path[256] = "", body[128];
	if (sscanf(req, "%15s %255s", method, path) != 2)
		return;
	if (!strcmp(path, "/healthz")) {
		snprintf(body, sizeof(body), "{\"ok\":true,\"pid\":%d,\"started_ms\":1000}", identity);
		reply(fd, healthy ? "200 OK" : "503 Service Unavailable", body);
	} else if (!strcmp(path, "/v1/metrics")) {
		metrics_seen++;
		for (int i = 0; i < 500 && !release_metrics && !stop; i++) /* held until the test says */
			usleep(10000);
		reply(fd, "200 OK", "{\"time_ms\": 1, \"routes\": {}}");
	} else if (!strncmp(path, "/v1/routes/", 11) && !strcmp(method, "PUT")) {
		puts_seen++;
		reply(fd, "200 OK", "{}");
	} else {
		reply(fd, "404 Not Found", "{\"error\": \"no\"}");
	}
}

static void *serve(void *arg)
{
	(void)arg;
	for (int n = 0; n < MAX_CONNS && !stop; n++) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			break;
		answer(fd);
		close(fd);
	}
	return NULL;
}

static void setup(void)
{
	lfd = loopback_listen(64, addr, sizeof(addr), NULL);
	cr_assert_eq(pthread_create(&th, NULL, serve, NULL), 0);
	snprintf(dir, sizeof(dir), "/tmp/sluice-router-test-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	cr_assert_not_null(l = loop_new());
	cr_assert_not_null(f = fetcher_new(l));
	/* /bin/false as the sluice binary: a proxy this router starts would exit at once */
	cr_assert_not_null(r = router_proxy_new(addr, "/bin/false", dir, NULL));
	router_use_fetcher(r, f);
}

static void teardown(void)
{
	router_free(r);
	fetcher_free(f);
	loop_free(l);
	stop = 1;
	shutdown(lfd, SHUT_RDWR);
	close(lfd);
	pthread_join(th, NULL);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(router, .init = setup, .fini = teardown, .timeout = 30);

static void on_stop(loop *lp, void *arg)
{
	(void)arg;
	loop_stop(lp);
}

/* Runs the loop for ms. */
static void run_for(unsigned ms)
{
	loop_timer(l, ms, on_stop, NULL);
	cr_assert_eq(loop_run(l), 0);
}

Test(router, the_metrics_snapshot_is_read_in_the_background)
{
	uint64_t at = 1;
	cr_assert_null(router_latest_metrics(r, &at), "a snapshot before any was read");
	cr_assert_eq(at, 0);
	/* the fake proxy holds its answer: the call above returned without it */
	for (int i = 0; i < 200 && !metrics_seen; i++)
		run_for(10);
	cr_assert_eq(metrics_seen, 1);
	cr_assert_null(router_latest_metrics(r, &at), "a second fetch while one is on its way");
	release_metrics = 1;
	const json_t *m = NULL;
	for (int i = 0; i < 300 && !m; i++) {
		run_for(10);
		m = router_latest_metrics(r, &at);
	}
	cr_assert_not_null(m);
	cr_assert_gt(at, 0);
	cr_assert_eq(json_integer_value(json_object_get(m, "time_ms")), 1);
	cr_assert_eq(metrics_seen, 1, "only one fetch at a time");
}

static const char *const backends[] = {"127.0.0.1:2"};
static const struct router_version versions[] = {{.name = "v1", .weight = 100, .backends = backends, .nbackends = 1}};
static const struct router_route rt = {.name = "a.b.c", .port = 1, .versions = versions, .nversions = 1};

Test(router, another_proxy_process_gets_the_routes_again)
{
	struct err e;
	cr_assert_eq(router_ensure(r, &e), 0, "%s", e.msg);
	cr_assert_eq(router_put_route(r, &rt, &e), 0, "%s", e.msg);
	cr_assert_eq(router_put_route(r, &rt, &e), 0, "%s", e.msg);
	cr_assert_eq(puts_seen, 1, "an unchanged route was sent again");
	uint64_t g = router_generation(r);
	/* the same process answers the background check: nothing changes */
	run_for(1100);
	cr_assert_eq(router_ensure(r, &e), 0);
	run_for(300);
	cr_assert_eq(router_generation(r), g);
	cr_assert_eq(router_put_route(r, &rt, &e), 0);
	cr_assert_eq(puts_seen, 1);
	/* another process: the next check sees it, and the route goes out again */
	identity = 2;
	run_for(1100);
	cr_assert_eq(router_ensure(r, &e), 0);
	for (int i = 0; i < 100 && router_generation(r) == g; i++)
		run_for(10);
	cr_assert_neq(router_generation(r), g, "the new process went unnoticed");
	cr_assert_eq(router_put_route(r, &rt, &e), 0, "%s", e.msg);
	cr_assert_eq(puts_seen, 2);
}

Test(router, a_proxy_that_stops_answering_is_noticed_and_started_again)
{
	struct err e;
	cr_assert_eq(router_ensure(r, &e), 0, "%s", e.msg);
	run_for(300); /* the first background check (started by that call) answers: healthy */
	uint64_t g = router_generation(r);
	healthy = 0;
	run_for(1100);
	cr_assert_eq(router_ensure(r, &e), 0, "the last answer was good: trusted until a check says otherwise");
	for (int i = 0; i < 100 && router_generation(r) == g; i++)
		run_for(10);
	cr_assert_neq(router_generation(r), g, "a failed health check changes nothing a reconciler sees");
	/* now the router tries to start the proxy (here /bin/false, which exits) and says so */
	cr_assert_eq(router_ensure(r, &e), -1);
	cr_assert(strstr(e.msg, "does not answer"), "%s", e.msg);
	healthy = 1;
	cr_assert_eq(router_ensure(r, &e), 0, "%s", e.msg);
}
