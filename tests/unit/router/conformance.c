/* conformance: the checks every traffic-router driver must pass (see conformance.h). */
#include "conformance.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop/fetch.h"
#include "loop/loop.h"
#include "support/loopback.h"

#define MAX_BACKENDS 4

/* A backend: answers every request with its name, one connection at a time, and closes the
 * connection. While hold is set, a request waits (held counts those waiting). */
struct backend {
	char name[8];
	char addr[32];
	int fd;
	pthread_t th;
	atomic_int stop, hold, held, requests;
};

/* What the running check started; one check per process (Criterion), so statics do. */
static struct {
	const struct router_factory *f;
	int base;
	router *r;
	char dir[64];
	struct backend bk[MAX_BACKENDS];
	int nbk;
	loop *l;
	fetcher *fe;
	pthread_t client;
	int client_started;
	int client_status;
	char client_body[64];
} s;

/* ---- backends ---- */

static void backend_reply(int fd, const char *body)
{
	char msg[256];
	int n = snprintf(msg, sizeof(msg),
			 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nContent-Type: text/plain\r\n"
			 "Connection: close\r\n\r\n%s",
			 strlen(body), body);
	loopback_send_all(fd, msg, (size_t)n);
}

static void *backend_serve(void *arg)
{
	struct backend *b = arg;
	while (!b->stop) {
		struct pollfd p = {b->fd, POLLIN, 0};
		if (poll(&p, 1, 50) <= 0)
			continue;
		int c = accept(b->fd, NULL, NULL);
		if (c < 0)
			continue;
		char req[8192];
		if (loopback_read_head(c, req, sizeof(req), 2000) > 0) {
			b->requests++;
			if (b->hold) {
				b->held++;
				for (int i = 0; i < 1000 && b->hold && !b->stop; i++)
					usleep(10000);
				b->held--;
			}
			backend_reply(c, b->name);
		}
		close(c);
	}
	return NULL;
}

static struct backend *backend_start(const char *name)
{
	cr_assert_lt(s.nbk, MAX_BACKENDS);
	struct backend *b = &s.bk[s.nbk];
	snprintf(b->name, sizeof(b->name), "%s", name);
	b->fd = loopback_listen(64, b->addr, sizeof(b->addr), NULL);
	cr_assert_eq(pthread_create(&b->th, NULL, backend_serve, b), 0);
	s.nbk++;
	return b;
}

/* ---- a client ---- */

/* GET / on endpoint "127.0.0.1:PORT" (Connection: close). Returns the status with the body
 * in body, or -1 when nothing answered (refused, reset, timeout). */
/* GET / through endpoint with Host: host (NULL: the endpoint itself); the status, -1 when none. */
static int get_as(const char *endpoint, const char *hostf, char *body, size_t len)
{
	char host[64];
	int port = 0;
	body[0] = '\0';
	const char *colon = strrchr(endpoint, ':');
	cr_assert_not_null(colon, "endpoint '%s' has no port", endpoint);
	snprintf(host, sizeof(host), "%.*s", (int)(colon - endpoint), endpoint);
	port = atoi(colon + 1);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	cr_assert_eq(inet_pton(AF_INET, host, &a.sin_addr), 1, "endpoint '%s' is not IPv4", endpoint);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	char req[256], resp[4096];
	int n = snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
			 hostf ? hostf : endpoint);
	size_t have = 0;
	if (loopback_send_all(fd, req, (size_t)n) == 0) {
		for (;;) {
			struct pollfd p = {fd, POLLIN, 0};
			if (have + 1 >= sizeof(resp) || poll(&p, 1, 15000) <= 0)
				break;
			ssize_t got = read(fd, resp + have, sizeof(resp) - 1 - have);
			if (got <= 0)
				break;
			have += (size_t)got;
		}
	}
	close(fd);
	resp[have] = '\0';
	int status = -1;
	const char *end = strstr(resp, "\r\n\r\n");
	if (!end || sscanf(resp, "HTTP/1.1 %d", &status) != 1)
		return -1;
	snprintf(body, len, "%s", end + 4);
	return status;
}

static int get(const char *endpoint, char *body, size_t len)
{
	return get_as(endpoint, NULL, body, len);
}

/* Polls get until it answers `want` (a status, or -1 for "nothing answers"), at most ms. */
static int wait_for(const char *endpoint, int want, unsigned ms)
{
	char body[64];
	int st = -2;
	for (unsigned t = 0; t <= ms; t += 20) {
		st = get(endpoint, body, sizeof(body));
		if (st == want)
			return st;
		usleep(20000);
	}
	return st;
}

/* ---- the router ---- */

static void open_router(const struct router_factory *f, int base)
{
	s.f = f;
	s.base = base;
	snprintf(s.dir, sizeof(s.dir), "/tmp/sluice-router-conf-XXXXXX");
	cr_assert_not_null(mkdtemp(s.dir));
	s.r = f->open(f, s.dir, base);
	cr_assert_not_null(s.r, "the %s factory opened no router", f->kind);
	cr_assert_str_eq(router_kind(s.r), f->kind);
}

/* router_ensure until it answers (a driver may wait before it starts its router again). */
static void ensure(unsigned ms)
{
	struct err e = {""};
	for (unsigned t = 0;; t += 100) {
		if (router_ensure(s.r, &e) == 0)
			return;
		cr_assert_lt(t, ms, "router_ensure: %s", e.msg);
		usleep(100000);
	}
}

static void endpoint(const char *name, int port, char *buf, size_t len)
{
	cr_assert_eq(router_route_endpoint(s.r, name, port, buf, len), 0, "no endpoint for %s", name);
}

/* Puts route name on port base+k: versions {name, weight, backends...} given as arrays. */
struct ver {
	const char *name;
	long long weight;
	const struct backend *b[MAX_BACKENDS];
};

static int put(const char *name, int k, const struct ver *v, size_t nv, struct err *e)
{
	struct router_version rv[4];
	const char *addrs[4][MAX_BACKENDS];
	cr_assert_leq(nv, 4);
	for (size_t i = 0; i < nv; i++) {
		size_t n = 0;
		while (n < MAX_BACKENDS && v[i].b[n]) {
			addrs[i][n] = v[i].b[n]->addr;
			n++;
		}
		rv[i] = (struct router_version){.name = v[i].name, .weight = v[i].weight,
						.backends = addrs[i], .nbackends = n};
	}
	struct router_route rt = {.name = name, .port = s.base + k, .versions = rv, .nversions = nv};
	return router_put_route(s.r, &rt, e);
}

static void put_ok(const char *name, int k, const struct ver *v, size_t nv)
{
	struct err e = {""};
	cr_assert_eq(put(name, k, v, nv, &e), 0, "put %s: %s", name, e.msg);
}

/* Sends n requests; counts[i] gets those backend s.bk[i] answered. */
static void send_n(const char *ep, int n, int counts[MAX_BACKENDS])
{
	memset(counts, 0, sizeof(int) * MAX_BACKENDS);
	for (int i = 0; i < n; i++) {
		char body[64];
		int st = get(ep, body, sizeof(body));
		cr_assert_eq(st, 200, "request %d through %s answered %d", i, ep, st);
		int found = 0;
		for (int k = 0; k < s.nbk; k++)
			if (!strcmp(body, s.bk[k].name)) {
				counts[k]++;
				found = 1;
			}
		cr_assert(found, "an answer from no backend of this test: '%s'", body);
	}
}

static const struct router_backend *find_backend(const struct router_backend *b, size_t n, const char *addr)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(b[i].addr, addr))
			return &b[i];
	return NULL;
}

/* ---- the checks ---- */

void router_conformance_ensure(const struct router_factory *f, int base)
{
	open_router(f, base);
	struct backend *a = backend_start("a");
	char ep[ROUTER_ENDPOINT_MAX];
	endpoint("conf.ensure", base + 1, ep, sizeof(ep));
	ensure(5000);
	uint64_t t = loop_clock_ms();
	ensure(0);
	cr_assert_lt(loop_clock_ms() - t, 1000, "a second ensure of a running router took long");
	put_ok("conf.ensure", 1, (struct ver[]){{"v1", 100, {a}}}, 1);
	char body[64];
	cr_assert_eq(get(ep, body, sizeof(body)), 200);
	cr_assert_str_eq(body, "a");
	cr_assert_eq(a->requests, 1);
}

void router_conformance_weighted(const struct router_factory *f, int base)
{
	open_router(f, base);
	struct backend *a1 = backend_start("a1"), *a2 = backend_start("a2"), *b = backend_start("b");
	ensure(5000);
	put_ok("conf.weighted", 1, (struct ver[]){{"v1", 1, {a1, a2}}, {"v2", 3, {b}}}, 2);
	char ep[ROUTER_ENDPOINT_MAX];
	endpoint("conf.weighted", base + 1, ep, sizeof(ep));
	int c[MAX_BACKENDS];
	send_n(ep, 400, c);
	/* v2 has 3/4: 300 expected, 5 sigma (8.7 each) either side */
	cr_assert(c[2] >= 257 && c[2] <= 343, "v2 (weight 3 of 4) answered %d of 400", c[2]);
	cr_assert(c[0] > 0 && c[1] > 0, "v1's backends answered %d and %d: one was left out", c[0], c[1]);
}

void router_conformance_reweight(const struct router_factory *f, int base)
{
	open_router(f, base);
	struct backend *a = backend_start("a"), *b = backend_start("b"), *c = backend_start("c");
	ensure(5000);
	char ep[ROUTER_ENDPOINT_MAX];
	endpoint("conf.reweight", base + 1, ep, sizeof(ep));
	int n[MAX_BACKENDS];
	put_ok("conf.reweight", 1, (struct ver[]){{"v1", 100, {a}}, {"v2", 0, {b}}}, 2);
	send_n(ep, 20, n);
	cr_assert_eq(n[0], 20, "weights 100/0: v1 answered %d of 20", n[0]);
	put_ok("conf.reweight", 1, (struct ver[]){{"v1", 0, {a}}, {"v2", 100, {b}}}, 2);
	send_n(ep, 20, n);
	cr_assert_eq(n[1], 20, "weights 0/100: v2 answered %d of 20", n[1]);
	put_ok("conf.reweight", 1, (struct ver[]){{"v1", 0, {a}}, {"v2", 100, {c}}}, 2);
	send_n(ep, 20, n);
	cr_assert_eq(n[2], 20, "v2's backend replaced: the new one answered %d of 20", n[2]);
}

void router_conformance_idempotent(const struct router_factory *f, int base)
{
	open_router(f, base);
	struct backend *a = backend_start("a");
	ensure(5000);
	char ep[ROUTER_ENDPOINT_MAX];
	endpoint("conf.same", base + 1, ep, sizeof(ep));
	struct ver v[] = {{"v1", 100, {a}}};
	put_ok("conf.same", 1, v, 1);
	cr_assert_eq(wait_for(ep, 200, 0), 200);
	/* the route disappears behind the driver's back: an identical put does not see it */
	cr_assert_eq(f->drop_route(f, s.dir, base, "conf.same"), 0);
	cr_assert_eq(wait_for(ep, -1, 3000), -1, "the dropped route still answers");
	put_ok("conf.same", 1, v, 1);
	struct router_backend *st = NULL;
	size_t n = 0;
	struct err e = {""};
	cr_assert_neq(router_route_state(s.r, "conf.same", &st, &n, &e), 0,
		      "an identical put was sent again");
	cr_assert_eq(get(ep, (char[64]){0}, 64), -1);
	/* a changed one is sent */
	put_ok("conf.same", 1, (struct ver[]){{"v1", 50, {a}}}, 1);
	cr_assert_eq(wait_for(ep, 200, 2000), 200, "a changed route was not sent");
	cr_assert_eq(router_route_state(s.r, "conf.same", &st, &n, &e), 0, "%s", e.msg);
	free(st);
}

void router_conformance_delete(const struct router_factory *f, int base)
{
	open_router(f, base);
	struct backend *a = backend_start("a");
	ensure(5000);
	char ep[ROUTER_ENDPOINT_MAX];
	endpoint("conf.delete", base + 1, ep, sizeof(ep));
	struct err e = {""};
	cr_assert_eq(router_delete_route(s.r, "conf.never", &e), 0, "a missing route: %s", e.msg);
	put_ok("conf.delete", 1, (struct ver[]){{"v1", 100, {a}}}, 1);
	cr_assert_eq(wait_for(ep, 200, 0), 200);
	cr_assert_eq(router_delete_route(s.r, "conf.delete", &e), 0, "%s", e.msg);
	cr_assert_eq(wait_for(ep, -1, 3000), -1, "a deleted route still answers");
	struct router_backend *st = NULL;
	size_t n = 0;
	cr_assert_neq(router_route_state(s.r, "conf.delete", &st, &n, &e), 0, "a deleted route has a state");
	cr_assert_eq(router_delete_route(s.r, "conf.delete", &e), 0, "deleted twice: %s", e.msg);
	/* and it comes back with the next put */
	put_ok("conf.delete", 1, (struct ver[]){{"v1", 100, {a}}}, 1);
	cr_assert_eq(wait_for(ep, 200, 2000), 200, "a route put after its delete does not answer");
}

static void *client_get(void *arg)
{
	const char *ep = arg;
	s.client_status = get(ep, s.client_body, sizeof(s.client_body));
	return NULL;
}

void router_conformance_drain(const struct router_factory *f, int base)
{
	open_router(f, base);
	struct backend *a = backend_start("a"), *b = backend_start("b");
	ensure(5000);
	static char ep[ROUTER_ENDPOINT_MAX];
	endpoint("conf.drain", base + 1, ep, sizeof(ep));
	put_ok("conf.drain", 1, (struct ver[]){{"v1", 100, {a}}}, 1);
	struct err e = {""};
	struct router_backend *st = NULL;
	size_t n = 0;
	cr_assert_eq(router_route_state(s.r, "conf.drain", &st, &n, &e), 0, "%s", e.msg);
	const struct router_backend *x = find_backend(st, n, a->addr);
	cr_assert_not_null(x, "backend %s not in the route's state", a->addr);
	cr_assert_eq(x->phase, ROUTER_BACKEND_ACTIVE);
	cr_assert_str_eq(x->version, "v1");
	cr_assert(router_backend_busy(st, n, a->addr));
	free(st);

	/* a request held by a, then a leaves the route */
	a->hold = 1;
	cr_assert_eq(pthread_create(&s.client, NULL, client_get, ep), 0);
	s.client_started = 1;
	for (int i = 0; i < 300 && !a->held; i++)
		usleep(10000);
	cr_assert_eq(a->held, 1, "the request did not reach the backend");
	put_ok("conf.drain", 1, (struct ver[]){{"v1", 100, {b}}}, 1);
	cr_assert_eq(router_route_state(s.r, "conf.drain", &st, &n, &e), 0, "%s", e.msg);
	x = find_backend(st, n, a->addr);
	cr_assert_not_null(x, "a removed backend with a request in flight is not reported");
	cr_assert_eq(x->phase, ROUTER_BACKEND_DRAINING, "phase %d", x->phase);
	cr_assert_eq(x->in_flight, 1);
	cr_assert(router_backend_busy(st, n, a->addr), "a backend finishing a request is not busy");
	x = find_backend(st, n, b->addr);
	cr_assert(x && x->phase == ROUTER_BACKEND_ACTIVE, "the new backend is not active");
	free(st);

	/* the request finishes (not dropped), then a is drained */
	a->hold = 0;
	pthread_join(s.client, NULL);
	s.client_started = 0;
	cr_assert_eq(s.client_status, 200);
	cr_assert_str_eq(s.client_body, "a");
	int drained = 0;
	for (int i = 0; i < 150 && !drained; i++) {
		cr_assert_eq(router_route_state(s.r, "conf.drain", &st, &n, &e), 0, "%s", e.msg);
		x = find_backend(st, n, a->addr);
		drained = !router_backend_busy(st, n, a->addr) &&
			  (!x || (x->phase == ROUTER_BACKEND_DRAINED && x->in_flight == 0));
		free(st);
		if (!drained)
			usleep(20000);
	}
	cr_assert(drained, "the removed backend never drained");
}

static void on_stop(loop *l, void *arg)
{
	(void)arg;
	loop_stop(l);
}

static void run_for(unsigned ms)
{
	loop_timer(s.l, ms, on_stop, NULL);
	cr_assert_eq(loop_run(s.l), 0);
}

static long long version_requests(const json_t *m, const char *route, const char *version)
{
	const json_t *v = json_object_get(
		json_object_get(json_object_get(json_object_get(m, "routes"), route), "versions"), version);
	return v ? (long long)json_integer_value(json_object_get(v, "requests")) : -1;
}

void router_conformance_counters(const struct router_factory *f, int base)
{
	open_router(f, base);
	cr_assert_not_null(s.l = loop_new());
	cr_assert_not_null(s.fe = fetcher_new(s.l));
	router_use_fetcher(s.r, s.fe);
	struct backend *a = backend_start("a"), *b = backend_start("b");
	ensure(5000);
	char ep[ROUTER_ENDPOINT_MAX];
	endpoint("conf.count", base + 1, ep, sizeof(ep));
	int c[MAX_BACKENDS];
	put_ok("conf.count", 1, (struct ver[]){{"v1", 100, {a}}, {"v2", 0, {b}}}, 2);
	send_n(ep, 5, c);
	put_ok("conf.count", 1, (struct ver[]){{"v1", 0, {a}}, {"v2", 100, {b}}}, 2);
	send_n(ep, 3, c);
	run_for(1);
	uint64_t sent = loop_now(s.l), at = 0;
	const json_t *m = NULL;
	for (int i = 0; i < 500; i++) {
		m = router_latest_metrics(s.r, &at);
		if (m && at >= sent)
			break;
		run_for(10);
	}
	cr_assert_not_null(m, "no counters snapshot");
	cr_assert_geq(at, sent, "no snapshot requested after the requests");
	cr_assert_eq(version_requests(m, "conf.count", "v1"), 5);
	cr_assert_eq(version_requests(m, "conf.count", "v2"), 3);
	cr_assert_eq(version_requests(m, "conf.other", "v1"), -1);
}

void router_conformance_generation(const struct router_factory *f, int base)
{
	open_router(f, base);
	struct backend *a = backend_start("a");
	ensure(5000);
	char ep[ROUTER_ENDPOINT_MAX];
	endpoint("conf.gen", base + 1, ep, sizeof(ep));
	struct ver v[] = {{"v1", 100, {a}}};
	put_ok("conf.gen", 1, v, 1);
	cr_assert_eq(wait_for(ep, 200, 0), 200);
	uint64_t g = router_generation(s.r);
	ensure(0);
	cr_assert_eq(router_generation(s.r), g, "the generation changed with nothing new");
	cr_assert_eq(f->crash(f, s.r, s.dir, base), 0);
	cr_assert_eq(wait_for(ep, -1, 3000), -1, "the route still answers after the crash");
	ensure(8000);
	cr_assert_neq(router_generation(s.r), g, "another router process went unnoticed");
	/* the identical route goes out again to the new process */
	put_ok("conf.gen", 1, v, 1);
	cr_assert_eq(wait_for(ep, 200, 2000), 200, "the route was not sent to the new process");
}

void router_conformance_stop(const struct router_factory *f, int base)
{
	open_router(f, base);
	struct backend *a = backend_start("a");
	ensure(5000);
	char ep[ROUTER_ENDPOINT_MAX];
	endpoint("conf.stop", base + 1, ep, sizeof(ep));
	put_ok("conf.stop", 1, (struct ver[]){{"v1", 100, {a}}}, 1);
	cr_assert_eq(wait_for(ep, 200, 0), 200);
	router_stop(s.r);
	cr_assert_eq(wait_for(ep, -1, 3000), -1, "a stopped router still serves its route");
	struct router_backend *st = NULL;
	size_t n = 0;
	struct err e = {""};
	cr_assert_neq(router_route_state(s.r, "conf.stop", &st, &n, &e), 0, "a stopped router answers");
}

void router_conformance_fini(void)
{
	for (int i = 0; i < s.nbk; i++) {
		s.bk[i].hold = 0;
		s.bk[i].stop = 1;
	}
	if (s.client_started)
		pthread_join(s.client, NULL);
	if (s.r) {
		router_use_fetcher(s.r, NULL);
		router_stop(s.r);
		router_free(s.r);
		s.r = NULL;
	}
	for (int i = 0; i < s.nbk; i++) {
		pthread_join(s.bk[i].th, NULL);
		close(s.bk[i].fd);
	}
	s.nbk = 0;
	fetcher_free(s.fe);
	loop_free(s.l);
	if (s.dir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", s.dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", s.dir);
	}
}

void router_conformance_hosts(const struct router_factory *f, int base)
{
	open_router(f, base);
	struct backend *a = backend_start("a"), *b = backend_start("b");
	ensure(5000);
	struct err e = {""};
	const char *ha[] = {"a.test"}, *hb[] = {"b.test", "*.w.test"};
	const char *aa[] = {a->addr}, *ab[] = {b->addr};
	struct router_version va = {.name = "v1", .weight = 1, .backends = aa, .nbackends = 1};
	struct router_version vb = {.name = "v1", .weight = 1, .backends = ab, .nbackends = 1};
	struct router_route ra = {.name = "conf.host.a", .port = base + 1, .versions = &va, .nversions = 1,
				  .hosts = ha, .nhosts = 1};
	struct router_route rb = {.name = "conf.host.b", .port = base + 1, .versions = &vb, .nversions = 1,
				  .hosts = hb, .nhosts = 1};
	cr_assert_eq(router_put_route(s.r, &ra, &e), 0, "put a: %s", e.msg);
	cr_assert_eq(router_put_route(s.r, &rb, &e), 0, "put b on the same port: %s", e.msg);
	char ep[ROUTER_ENDPOINT_MAX], body[64];
	endpoint("conf.host.a", base + 1, ep, sizeof(ep));
	cr_assert_eq(get_as(ep, "a.test", body, sizeof(body)), 200);
	cr_assert_str_eq(body, "a");
	cr_assert_eq(get_as(ep, "B.test:80", body, sizeof(body)), 200);
	cr_assert_str_eq(body, "b");
	cr_assert_eq(get_as(ep, "x.w.test", body, sizeof(body)), 421, "the wildcard is not sent yet");
	rb.nhosts = 2;
	cr_assert_eq(router_put_route(s.r, &rb, &e), 0, "put b with a wildcard: %s", e.msg);
	cr_assert_eq(get_as(ep, "x.w.test", body, sizeof(body)), 200);
	cr_assert_str_eq(body, "b");
	cr_assert_eq(router_delete_route(s.r, "conf.host.a", &e), 0, "%s", e.msg);
	cr_assert_eq(get_as(ep, "a.test", body, sizeof(body)), 421, "a deleted: its host is unknown");
	cr_assert_eq(get_as(ep, "b.test", body, sizeof(body)), 200, "b still served on the shared port");
}
