/* Unit tests of src/loop/fetch: asynchronous requests on one loop against tiny HTTP servers
 * started here on 127.0.0.1:0 (an accept thread plus one thread per connection, bounded in
 * connections and time). Every test runs the loop under a guard timer, and Criterion's timeout
 * bounds the whole test. */
#include <criterion/criterion.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loop/fetch.h"
#include "util/httpc.h"
#include "support/loopback.h"
#include "loop/loop.h"

/* ---- test servers ------------------------------------------------------------------------ */

enum mode {
	M_OK,       /* 200 "hello, world" */
	M_ECHO,     /* 200 "METHOD|content-type|body" */
	M_STATUS,   /* 404 "nope" */
	M_REDIRECT, /* 302 to /elsewhere */
	M_SILENT,   /* reads the request, never answers */
	M_BIG,      /* 200 with BIG_LEN bytes, no Content-Length (ends at close) */
	M_BIG_CL,   /* 200 with BIG_LEN bytes and their Content-Length */
	M_SLOW,     /* 200 "slow" after SLOW_MS */
	M_HEADERS,  /* 200 with the request head as the body */
};

#define BIG_LEN 100000
#define SLOW_MS 100
#define MAX_CONNS 128
#define MAX_SRVS 4

struct srv {
	int lfd;
	int port;
	enum mode mode;
	atomic_int stop;
	pthread_t th;
	pthread_t conns[MAX_CONNS];
	int nconns; /* accept thread only; read after it is joined */
};

struct conn {
	struct srv *s;
	int fd;
};

static struct srv srvs[MAX_SRVS];
static int nsrvs;

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void reply(int fd, const char *status, const char *extra, const char *body, size_t blen,
		  int with_length, int with_body)
{
	char head[512];
	int n;
	if (with_length)
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 %s\r\nContent-Length: %zu\r\nContent-Type: text/plain\r\n%s"
			     "Connection: close\r\n\r\n",
			     status, blen, extra);
	else
		n = snprintf(head, sizeof(head),
			     "HTTP/1.1 %s\r\nContent-Type: text/plain\r\n%sConnection: close\r\n\r\n",
			     status, extra);
	if (loopback_send_all(fd, head, (size_t)n) == 0 && with_body)
		loopback_send_all(fd, body, blen);
}

/* Waits for fd to be readable; 1 ready, 0 when the server stops or 5 s pass, -1 error. */
static int wait_readable(struct srv *s, int fd)
{
	for (int waited = 0; waited < 5000 && !atomic_load(&s->stop); waited += 20) {
		struct pollfd p = {fd, POLLIN, 0};
		int n = poll(&p, 1, 20);
		if (n != 0)
			return n > 0 ? 1 : -1;
	}
	return 0;
}

static void answer(struct srv *s, int fd)
{
	char req[8192];
	size_t have = 0;
	char *end;
	while (!(end = memmem(req, have, "\r\n\r\n", 4))) {
		if (have == sizeof(req) - 1 || wait_readable(s, fd) <= 0)
			return;
		ssize_t n = read(fd, req + have, sizeof(req) - 1 - have);
		if (n <= 0)
			return;
		have += (size_t)n;
	}
	req[have] = '\0';
	char method[16] = "", ctype[128] = "";
	size_t clen = 0;
	if (sscanf(req, "%15s", method) != 1)
		return;
	const char *h = strcasestr(req, "\r\nContent-Length:");
	if (h)
		clen = strtoul(h + 17, NULL, 10);
	h = strcasestr(req, "\r\nContent-Type:");
	if (h)
		sscanf(h + 15, " %127[^\r\n]", ctype);
	size_t head_len = (size_t)(end + 4 - req);
	if (clen > sizeof(req) - 1 - head_len)
		return;
	while (have < head_len + clen) {
		if (wait_readable(s, fd) <= 0)
			return;
		ssize_t n = read(fd, req + have, head_len + clen - have);
		if (n <= 0)
			return;
		have += (size_t)n;
	}
	int with_body = strcmp(method, "HEAD") != 0;
	static const char hello[] = "hello, world";
	char out[8400];
	int n;
	static char big[BIG_LEN];

	switch (s->mode) {
	case M_OK:
		reply(fd, "200 OK", "", hello, strlen(hello), 1, with_body);
		break;
	case M_ECHO:
		n = snprintf(out, sizeof(out), "%s|%s|%.*s", method, ctype, (int)clen, req + head_len);
		reply(fd, "200 OK", "", out, (size_t)n, 1, with_body);
		break;
	case M_STATUS:
		reply(fd, "404 Not Found", "", "nope", 4, 1, with_body);
		break;
	case M_REDIRECT:
		reply(fd, "302 Found", "Location: /elsewhere\r\n", "moved", 5, 1, with_body);
		break;
	case M_SILENT:
		/* until the client goes away or the test ends */
		while (wait_readable(s, fd) > 0 && read(fd, req, sizeof(req)) > 0)
			;
		break;
	case M_BIG:
	case M_BIG_CL:
		memset(big, 'x', sizeof(big));
		reply(fd, "200 OK", "", big, sizeof(big), s->mode == M_BIG_CL, with_body);
		break;
	case M_SLOW:
		sleep_ms(SLOW_MS);
		reply(fd, "200 OK", "", "slow", 4, 1, with_body);
		break;
	case M_HEADERS:
		reply(fd, "200 OK", "", req, head_len, 1, with_body);
		break;
	}
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	answer(c->s, c->fd);
	close(c->fd);
	free(c);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct srv *s = arg;
	while (!atomic_load(&s->stop)) {
		struct pollfd p = {s->lfd, POLLIN, 0};
		if (poll(&p, 1, 20) <= 0)
			continue;
		int fd = accept(s->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		struct conn *c = s->nconns < MAX_CONNS ? malloc(sizeof(*c)) : NULL;
		if (!c) {
			close(fd);
			continue;
		}
		c->s = s;
		c->fd = fd;
		if (pthread_create(&s->conns[s->nconns], NULL, conn_main, c)) {
			free(c);
			close(fd);
			continue;
		}
		s->nconns++;
	}
	return NULL;
}

static struct srv *srv_start(enum mode m)
{
	cr_assert(nsrvs < MAX_SRVS);
	struct srv *s = &srvs[nsrvs++];
	memset(s, 0, sizeof(*s));
	s->mode = m;
	s->lfd = loopback_listen(128, NULL, 0, &s->port);
	cr_assert_eq(pthread_create(&s->th, NULL, accept_main, s), 0);
	return s;
}

static void srv_stop_all(void)
{
	for (int i = 0; i < nsrvs; i++) {
		struct srv *s = &srvs[i];
		atomic_store(&s->stop, 1);
		pthread_join(s->th, NULL);
		for (int j = 0; j < s->nconns; j++)
			pthread_join(s->conns[j], NULL);
		close(s->lfd);
	}
	nsrvs = 0;
}

/* A port nobody listens on: bound, then closed. */
static int dead_port(void)
{
	int port;
	int fd = loopback_bind(&port);
	close(fd);
	return port;
}

static char *url_of(char *out, size_t n, int port, const char *path)
{
	snprintf(out, n, "http://127.0.0.1:%d%s", port, path);
	return out;
}

/* ---- the loop and the fetcher ------------------------------------------------------------ */

static loop *l;
static fetcher *f;
static int guard_fired;
static int in_start; /* set around fetch_start: a callback must never see it */

struct got {
	int calls;
	int ok;
	long status;
	char body[1024];
	size_t body_len;
	char error[256];
	uint64_t elapsed;
	int order;     /* 1 + how many callbacks had run before this one */
	int cancel_all; /* cancel_others: cancel every id in ids[] but our own */
};

static int ncallbacks;
static uint64_t ids[64];
static int nids;

static void setup(void)
{
	/* The tests talk to loopback only: keep a proxy from the environment out of it. */
	const char *vars[] = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
			      "ALL_PROXY"};
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	l = loop_new();
	cr_assert(l);
	f = fetcher_new(l);
	cr_assert(f);
	guard_fired = 0;
	ncallbacks = 0;
	nids = 0;
}

static void teardown(void)
{
	fetcher_free(f);
	f = NULL;
	loop_free(l);
	l = NULL;
	srv_stop_all();
}

TestSuite(fetch, .init = setup, .fini = teardown, .timeout = 30);

static void on_guard(loop *lp, void *arg)
{
	guard_fired = 1;
	loop_stop(lp);
}

/* Runs the loop until a callback stops it, or guard_ms pass. */
static void run(uint64_t guard_ms)
{
	uint64_t t = loop_timer(l, guard_ms, on_guard, NULL);
	cr_assert(t);
	cr_assert_eq(loop_run(l), 0);
	loop_timer_cancel(l, t);
}

static void record(struct got *g, const struct fetch_result *r)
{
	cr_assert(!in_start, "a callback ran inside fetch_start");
	g->calls++;
	g->order = ++ncallbacks;
	g->ok = r->ok;
	g->elapsed = r->elapsed_ms;
	if (r->ok) {
		cr_assert_not_null(r->body);
		cr_assert_eq(r->body[r->body_len], '\0', "body not NUL-terminated");
		g->status = r->status;
		g->body_len = r->body_len;
		snprintf(g->body, sizeof(g->body), "%s", r->body);
	} else {
		cr_assert_not_null(r->error);
		snprintf(g->error, sizeof(g->error), "%s", r->error);
	}
}

/* Records the result; stops the loop when nothing is pending any more. */
static void on_done(void *arg, const struct fetch_result *r)
{
	record(arg, r);
	if (f && fetch_pending(f) == 0)
		loop_stop(l);
}

static uint64_t start(const char *method, const char *url, long timeout_ms, size_t max,
		      struct got *g)
{
	struct fetch_req req = {.method = method, .url = url, .timeout_ms = timeout_ms,
				.max_response = max};
	in_start = 1;
	uint64_t id = fetch_start(f, &req, on_done, g);
	in_start = 0;
	cr_assert_neq(id, 0);
	return id;
}

/* ---- tests ------------------------------------------------------------------------------- */

Test(fetch, get_200_with_body)
{
	struct srv *s = srv_start(M_OK);
	char url[128];
	struct got g = {0};
	start(NULL, url_of(url, sizeof(url), s->port, "/x"), 2000, 1024, &g);
	cr_assert_eq(fetch_pending(f), 1);
	run(5000);
	cr_assert(!guard_fired);
	cr_assert_eq(g.calls, 1);
	cr_assert_eq(g.ok, 1, "error: %s", g.error);
	cr_assert_eq(g.status, 200);
	cr_assert_str_eq(g.body, "hello, world");
	cr_assert_eq(g.body_len, 12);
	cr_assert_lt(g.elapsed, 2000);
	cr_assert_eq(fetch_pending(f), 0);
}

Test(fetch, post_and_put_bodies_are_sent_and_copied)
{
	struct srv *s = srv_start(M_ECHO);
	char url[128];
	url_of(url, sizeof(url), s->port, "/echo");
	struct got a = {0}, b = {0}, c = {0};
	char body[32];
	snprintf(body, sizeof(body), "{\"a\":1}");
	struct fetch_req post = {.method = "POST", .url = url, .body = body, .body_len = strlen(body),
				 .timeout_ms = 2000, .max_response = 1024};
	cr_assert_neq(fetch_start(f, &post, on_done, &a), 0);
	memset(body, 'Z', sizeof(body)); /* fetch_start copied it */
	struct fetch_req put = {.method = "PUT", .url = url, .body = "abc", .body_len = 3,
				.ctype = "text/plain", .timeout_ms = 2000, .max_response = 1024};
	cr_assert_neq(fetch_start(f, &put, on_done, &b), 0);
	struct fetch_req empty = {.method = "POST", .url = url, .timeout_ms = 2000,
				  .max_response = 1024};
	cr_assert_neq(fetch_start(f, &empty, on_done, &c), 0);
	run(5000);
	cr_assert(!guard_fired);
	cr_assert(a.ok && b.ok && c.ok, "%s / %s / %s", a.error, b.error, c.error);
	cr_assert_str_eq(a.body, "POST|application/json|{\"a\":1}");
	cr_assert_str_eq(b.body, "PUT|text/plain|abc");
	cr_assert_str_eq(c.body, "POST||");
}

Test(fetch, other_statuses_are_responses)
{
	struct srv *nf = srv_start(M_STATUS), *rd = srv_start(M_REDIRECT);
	char u1[128], u2[128];
	struct got a = {0}, b = {0};
	start("GET", url_of(u1, sizeof(u1), nf->port, "/missing"), 2000, 1024, &a);
	start("DELETE", url_of(u2, sizeof(u2), rd->port, "/old"), 2000, 1024, &b);
	run(5000);
	cr_assert(!guard_fired);
	cr_assert_eq(a.ok, 1, "error: %s", a.error);
	cr_assert_eq(a.status, 404);
	cr_assert_str_eq(a.body, "nope");
	/* the redirect is not followed */
	cr_assert_eq(b.ok, 1, "error: %s", b.error);
	cr_assert_eq(b.status, 302);
	cr_assert_str_eq(b.body, "moved");
}

Test(fetch, head_does_not_wait_for_a_body)
{
	struct srv *s = srv_start(M_OK);
	char url[128];
	struct got g = {0};
	/* Content-Length 12 and a 5-byte limit: for HEAD neither matters */
	start("HEAD", url_of(url, sizeof(url), s->port, "/"), 10000, 5, &g);
	run(15000);
	cr_assert(!guard_fired);
	cr_assert_eq(g.ok, 1, "error: %s", g.error);
	cr_assert_eq(g.status, 200);
	cr_assert_eq(g.body_len, 0);
	cr_assert_lt(g.elapsed, 5000, "HEAD waited %llu ms", (unsigned long long)g.elapsed);
}

Test(fetch, connection_refused)
{
	char url[128];
	struct got g = {0};
	start(NULL, url_of(url, sizeof(url), dead_port(), "/"), 2000, 1024, &g);
	run(5000);
	cr_assert(!guard_fired);
	cr_assert_eq(g.calls, 1);
	cr_assert_eq(g.ok, 0);
	cr_assert(strstr(g.error, "connection refused"), "error: %s", g.error);
}

Test(fetch, silent_server_times_out)
{
	struct srv *s = srv_start(M_SILENT);
	char url[128];
	struct got g = {0};
	start(NULL, url_of(url, sizeof(url), s->port, "/"), 300, 1024, &g);
	run(5000);
	cr_assert(!guard_fired);
	cr_assert_eq(g.calls, 1);
	cr_assert_eq(g.ok, 0);
	cr_assert_str_eq(g.error, "timed out after 300 ms");
	cr_assert_geq(g.elapsed, 300);
	cr_assert_lt(g.elapsed, 3000, "took %llu ms", (unsigned long long)g.elapsed);
}

Test(fetch, response_over_max_is_an_error)
{
	struct srv *big = srv_start(M_BIG), *bigcl = srv_start(M_BIG_CL), *ok = srv_start(M_OK);
	char u1[128], u2[128], u3[128];
	url_of(u1, sizeof(u1), big->port, "/");
	url_of(u2, sizeof(u2), bigcl->port, "/");
	url_of(u3, sizeof(u3), ok->port, "/");
	struct got streamed = {0}, streamed_fits = {0}, declared = {0}, declared_fits = {0},
		   small = {0}, small_fits = {0};
	start(NULL, u1, 3000, BIG_LEN - 1, &streamed); /* no Content-Length: the write callback */
	start(NULL, u1, 3000, BIG_LEN, &streamed_fits);
	start(NULL, u2, 3000, BIG_LEN - 1, &declared); /* Content-Length */
	start(NULL, u2, 3000, BIG_LEN, &declared_fits);
	start(NULL, u3, 3000, 11, &small);
	start(NULL, u3, 3000, 12, &small_fits);
	run(8000);
	cr_assert(!guard_fired);

	char want[64];
	snprintf(want, sizeof(want), "response larger than %d bytes", BIG_LEN - 1);
	cr_assert_eq(streamed.ok, 0);
	cr_assert_str_eq(streamed.error, want);
	cr_assert_eq(declared.ok, 0);
	cr_assert_str_eq(declared.error, want);
	cr_assert_eq(small.ok, 0);
	cr_assert_str_eq(small.error, "response larger than 11 bytes");

	cr_assert_eq(streamed_fits.ok, 1, "error: %s", streamed_fits.error);
	cr_assert_eq(streamed_fits.body_len, BIG_LEN);
	cr_assert_eq(declared_fits.ok, 1, "error: %s", declared_fits.error);
	cr_assert_eq(declared_fits.body_len, BIG_LEN);
	cr_assert_eq(small_fits.ok, 1, "error: %s", small_fits.error);
	cr_assert_str_eq(small_fits.body, "hello, world");
}

Test(fetch, many_requests_run_in_parallel)
{
	enum { N = 50 };
	struct srv *s = srv_start(M_SLOW);
	char url[128];
	url_of(url, sizeof(url), s->port, "/slow");
	static struct got g[N];
	memset(g, 0, sizeof(g));
	uint64_t t0 = loop_clock_ms();
	for (int i = 0; i < N; i++)
		start(NULL, url, 10000, 1024, &g[i]);
	cr_assert_eq(fetch_pending(f), N);
	run(15000);
	uint64_t took = loop_clock_ms() - t0;
	cr_assert(!guard_fired);
	for (int i = 0; i < N; i++) {
		cr_assert_eq(g[i].calls, 1);
		cr_assert_eq(g[i].ok, 1, "request %d: %s", i, g[i].error);
		cr_assert_str_eq(g[i].body, "slow");
	}
	/* one after another this would take N * SLOW_MS = 5000 ms */
	cr_assert_geq(took, SLOW_MS);
	cr_assert_lt(took, N * SLOW_MS / 2, "took %llu ms", (unsigned long long)took);
	cr_assert_eq(fetch_pending(f), 0);
}

/* Cancels every request in ids[] but its own (whichever finishes first wins). */
static void on_done_cancel_others(void *arg, const struct fetch_result *r)
{
	struct got *g = arg;
	record(g, r);
	for (int i = 0; i < nids; i++)
		fetch_cancel(f, ids[i]); /* our own id is finished: ignored */
	if (fetch_pending(f) == 0)
		loop_stop(l);
}

Test(fetch, cancel_from_a_callback)
{
	/* Several finish at about the same time: some of those cancelled may already be done,
	 * waiting for their callback; none of them may run. */
	struct srv *s = srv_start(M_SLOW);
	char url[128];
	url_of(url, sizeof(url), s->port, "/");
	static struct got g[8];
	memset(g, 0, sizeof(g));
	for (int i = 0; i < 8; i++) {
		struct fetch_req req = {.url = url, .timeout_ms = 3000, .max_response = 64};
		ids[nids++] = fetch_start(f, &req, on_done_cancel_others, &g[i]);
		cr_assert_neq(ids[nids - 1], 0);
	}
	run(5000);
	cr_assert(!guard_fired);
	int calls = 0;
	for (int i = 0; i < 8; i++)
		calls += g[i].calls;
	cr_assert_eq(calls, 1);
	cr_assert_eq(fetch_pending(f), 0);
}

Test(fetch, cancel_an_in_flight_request_from_another_callback)
{
	struct srv *ok = srv_start(M_OK), *silent = srv_start(M_SILENT);
	char u1[128], u2[128];
	static struct got fast, stuck;
	memset(&fast, 0, sizeof(fast));
	memset(&stuck, 0, sizeof(stuck));
	struct fetch_req req = {.url = url_of(u2, sizeof(u2), silent->port, "/"), .timeout_ms = 3000,
				.max_response = 64};
	ids[nids++] = fetch_start(f, &req, on_done, &stuck);
	req.url = url_of(u1, sizeof(u1), ok->port, "/");
	uint64_t fast_id = fetch_start(f, &req, on_done_cancel_others, &fast);
	cr_assert_neq(fast_id, 0);
	cr_assert_neq(fast_id, ids[0]);
	run(5000);
	cr_assert(!guard_fired);
	cr_assert_eq(fast.calls, 1);
	cr_assert_eq(fast.ok, 1, "error: %s", fast.error);
	cr_assert_eq(stuck.calls, 0);
	cr_assert_eq(fetch_pending(f), 0);
	/* the cancelled transfer left nothing behind that could still call back */
	run(200);
	cr_assert(guard_fired);
	cr_assert_eq(stuck.calls, 0);
	/* unknown and finished ids are ignored */
	fetch_cancel(f, 0);
	fetch_cancel(f, fast_id);
	fetch_cancel(f, ids[0]);
	fetch_cancel(f, 999999);
	cr_assert_eq(fetch_pending(f), 0);
}

static char chain_url[128];
static struct got first, second;
static uint64_t second_id;

static void on_first(void *arg, const struct fetch_result *r)
{
	record(arg, r);
	struct fetch_req req = {.url = chain_url, .timeout_ms = 2000, .max_response = 64};
	second_id = fetch_start(f, &req, on_done, &second);
	cr_assert_neq(second_id, 0);
	cr_assert_eq(second.calls, 0, "the second callback ran inside fetch_start");
}

Test(fetch, start_from_a_callback)
{
	struct srv *s = srv_start(M_OK);
	url_of(chain_url, sizeof(chain_url), s->port, "/chained");
	memset(&first, 0, sizeof(first));
	memset(&second, 0, sizeof(second));
	struct fetch_req req = {.url = chain_url, .timeout_ms = 2000, .max_response = 64};
	uint64_t id = fetch_start(f, &req, on_first, &first);
	cr_assert_neq(id, 0);
	run(5000);
	cr_assert(!guard_fired);
	cr_assert_eq(first.calls, 1);
	cr_assert_eq(second.calls, 1);
	cr_assert(first.ok && second.ok, "%s / %s", first.error, second.error);
	cr_assert_eq(first.order, 1);
	cr_assert_eq(second.order, 2);
	cr_assert_neq(second_id, id);
	cr_assert_str_eq(second.body, "hello, world");
}

Test(fetch, free_with_requests_pending_calls_nothing)
{
	struct srv *silent = srv_start(M_SILENT), *ok = srv_start(M_OK);
	char u1[128], u2[128];
	static struct got g[6];
	memset(g, 0, sizeof(g));
	url_of(u1, sizeof(u1), silent->port, "/");
	url_of(u2, sizeof(u2), ok->port, "/");
	for (int i = 0; i < 3; i++)
		start(NULL, u1, 5000, 64, &g[i]);
	run(150); /* connected, sockets and curl's timer on the loop */
	cr_assert(guard_fired);
	start(NULL, "http://[::1", 5000, 64, &g[3]); /* its 0 ms timer is armed */
	start(NULL, u2, 5000, 64, &g[4]);            /* added, not yet started */
	start("HEAD", u2, 5000, 64, &g[5]);
	cr_assert_eq(fetch_pending(f), 6);
	fetcher_free(f);
	f = NULL;
	/* nothing of the fetcher's may be left on the loop */
	guard_fired = 0;
	run(300);
	cr_assert(guard_fired);
	for (int i = 0; i < 6; i++)
		cr_assert_eq(g[i].calls, 0, "request %d called back", i);
}

static void on_done_free(void *arg, const struct fetch_result *r)
{
	record(arg, r);
	fetcher_free(f);
	f = NULL;
	loop_stop(l);
}

Test(fetch, free_from_a_callback)
{
	struct srv *silent = srv_start(M_SILENT), *ok = srv_start(M_OK);
	char u1[128], u2[128];
	static struct got g[4];
	memset(g, 0, sizeof(g));
	for (int i = 0; i < 3; i++)
		start(NULL, url_of(u1, sizeof(u1), silent->port, "/"), 5000, 64, &g[i]);
	struct fetch_req req = {.url = url_of(u2, sizeof(u2), ok->port, "/"), .timeout_ms = 2000,
				.max_response = 64};
	cr_assert_neq(fetch_start(f, &req, on_done_free, &g[3]), 0);
	run(5000);
	cr_assert(!guard_fired);
	cr_assert_eq(g[3].calls, 1);
	cr_assert_eq(g[3].ok, 1, "error: %s", g[3].error);
	run(300);
	cr_assert(guard_fired);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(g[i].calls, 0);
}

Test(fetch, immediate_failures_come_from_the_loop)
{
	static struct got bad_url, no_scheme, ftp, zero_timeout, bad_method, cancelled;
	struct got *all[] = {&bad_url, &no_scheme, &ftp, &zero_timeout, &bad_method, &cancelled};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		memset(all[i], 0, sizeof(*all[i]));
	start(NULL, "http://[::1", 10000, 64, &bad_url);
	start(NULL, "not a url", 10000, 64, &no_scheme);
	start(NULL, "ftp://127.0.0.1/x", 10000, 64, &ftp);
	start(NULL, "http://127.0.0.1/", 0, 64, &zero_timeout);
	start("GE T", "http://127.0.0.1/", 10000, 64, &bad_method);
	uint64_t id = start(NULL, "http://[::1", 10000, 64, &cancelled);
	fetch_cancel(f, id);
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		cr_assert_eq(all[i]->calls, 0, "called from inside fetch_start");
	cr_assert_eq(fetch_pending(f), 5);
	run(8000);
	cr_assert(!guard_fired);
	for (size_t i = 0; i + 1 < sizeof(all) / sizeof(all[0]); i++) {
		cr_assert_eq(all[i]->calls, 1);
		cr_assert_eq(all[i]->ok, 0);
		cr_assert_lt(all[i]->elapsed, 5000, "did not fail at once");
	}
	cr_assert_eq(cancelled.calls, 0);
	cr_assert(strstr(bad_url.error, "malformed URL 'http://[::1'"), "%s", bad_url.error);
	cr_assert(strstr(no_scheme.error, "malformed URL"), "%s", no_scheme.error);
	cr_assert(strstr(ftp.error, "unsupported URL scheme 'ftp'"), "%s", ftp.error);
	cr_assert(strstr(zero_timeout.error, "timeout"), "%s", zero_timeout.error);
	cr_assert(strstr(bad_method.error, "invalid method"), "%s", bad_method.error);
	/* delivered in the order started */
	cr_assert_lt(bad_url.order, no_scheme.order);
	cr_assert_lt(no_scheme.order, bad_method.order);
}

Test(fetch, extra_header_fields_arrive_and_are_copied)
{
	struct srv *s = srv_start(M_HEADERS);
	char url[128], auth[64];
	url_of(url, sizeof(url), s->port, "/h");
	snprintf(auth, sizeof(auth), "Authorization: Bearer abc.def");
	const char *list[] = {auth, "X-Empty:", "X-Spaced:   two words  ", NULL};
	struct got g = {0}, p = {0};
	struct fetch_req req = {.url = url, .timeout_ms = 2000, .max_response = 4096, .headers = list};
	cr_assert_neq(fetch_start(f, &req, on_done, &g), 0);
	struct fetch_req post = {.method = "POST", .url = url, .body = "{}", .body_len = 2,
				 .timeout_ms = 2000, .max_response = 4096, .headers = list};
	cr_assert_neq(fetch_start(f, &post, on_done, &p), 0);
	memset(auth, 'Z', sizeof(auth) - 1); /* fetch_start copied the fields */
	list[0] = NULL;
	run(5000);
	cr_assert(!guard_fired);
	cr_assert(g.ok && p.ok, "%s / %s", g.error, p.error);
	cr_assert(strstr(g.body, "\r\nAuthorization: Bearer abc.def\r\n"), "%s", g.body);
	cr_assert(strstr(g.body, "\r\nX-Empty:\r\n") || strstr(g.body, "\r\nX-Empty: \r\n"), "%s",
		  g.body);
	cr_assert(strstr(g.body, "\r\nX-Spaced: two words\r\n"), "%s", g.body);
	cr_assert(strstr(p.body, "\r\nAuthorization: Bearer abc.def\r\n"), "%s", p.body);
	cr_assert(strcasestr(p.body, "\r\nContent-Type: application/json\r\n"), "%s", p.body);
}

Test(fetch, refused_header_fields_end_the_request_unsent)
{
	struct srv *s = srv_start(M_HEADERS);
	char url[128];
	url_of(url, sizeof(url), s->port, "/h");
	static const char *const bad[][2] = {
		{"X-Inject: a\r\nX-Other: b", "control character"},
		{"NoColon", "expected 'Name: value'"},
		{"Bad Name: x", "not a valid field name"},
		{"host: elsewhere", "Host is the client's own"},
		{"Content-Type: text/plain", "Content-Type is the client's own"},
	};
	struct got g[5] = {{0}};
	for (int i = 0; i < 5; i++) {
		const char *list[] = {bad[i][0], NULL};
		struct fetch_req req = {.url = url, .timeout_ms = 2000, .max_response = 4096,
					.headers = list};
		cr_assert_neq(fetch_start(f, &req, on_done, &g[i]), 0);
	}
	run(5000);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(g[i].ok, 0, "%s was sent", bad[i][0]);
		cr_assert(strstr(g[i].error, bad[i][1]), "%s: %s", bad[i][0], g[i].error);
	}
	/* 33 fields: one too many */
	const char *many[HTTPC_MAX_HEADERS + 2];
	for (int i = 0; i <= HTTPC_MAX_HEADERS; i++)
		many[i] = "X-A: 1";
	many[HTTPC_MAX_HEADERS + 1] = NULL;
	struct got m = {0};
	struct fetch_req req = {.url = url, .timeout_ms = 2000, .max_response = 4096, .headers = many};
	cr_assert_neq(fetch_start(f, &req, on_done, &m), 0);
	run(5000);
	cr_assert_eq(m.ok, 0);
	cr_assert(strstr(m.error, "more than 32"), "%s", m.error);
}
