#include "svc.h"

#include "http/response.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX (8 * 1024)          /* request line + headers */
#define REQ_BODY_MAX (1024 * 1024)   /* bodies are read and ignored, up to this */
#define MAX_CONNS 1024               /* one thread each */
#define IDLE_TICK_MS 100             /* how often an idle connection looks at `stopping` */
#define IDLE_TIMEOUT_MS 60000        /* idle keep-alive connections are closed after this */
#define DRAIN_MAX_MS 30000           /* SIGTERM: longest wait for in-flight requests */
#define UPSTREAM_TIMEOUT_MS 5000
#define POOL_MAX 64

static const struct svc_config *cfg;
static double error_rate;
static unsigned latency_ms;
static unsigned fail_after;    /* 0: off; else requests after the first N answer 500 */
static atomic_uint served;     /* requests answered (health checks aside), for fail_after */
/* A feature flag evaluated for every request over OFREP (SLUICE_FLAG): the requests that get
 * its "on" value take the flag's code path, whose faults are flag_error_rate/flag_latency_ms. */
static const char *flag_key;
static char ofrep_hostport[256], ofrep_path[512], ofrep_auth[320];
static double flag_error_rate;
static unsigned flag_latency_ms;
static atomic_uint flag_requests, flag_on, flag_failures;
static atomic_int stopping;
static atomic_int active_conns;
static int stop_pipe[2] = {-1, -1};

/* ---- small helpers ---- */

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Per-thread xorshift: fault injection needs speed and independence, not cryptography. Each
 * thread's seed goes through splitmix64 from a shared counter: threads started in the same
 * second (often on the same recycled stack) must not replay the same sequence. */
static double rand01(void)
{
	static atomic_uint_fast64_t seeds;
	static _Thread_local uint64_t s;
	if (!s) {
		uint64_t z = ((uint64_t)time(NULL) << 32) ^ (uint64_t)getpid() ^
			     (atomic_fetch_add(&seeds, 1) + 1) * 0x9e3779b97f4a7c15ull;
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		s = (z ^ (z >> 31)) | 1;
	}
	s ^= s << 13;
	s ^= s >> 7;
	s ^= s << 17;
	return (double)(s >> 11) / (double)(1ull << 53);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One write per line so that lines of concurrent threads never interleave. */
__attribute__((format(printf, 1, 2))) static void logline(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(STDOUT_FILENO, line, (size_t)n);
	(void)w; /* a lost log line must not stop a service */
}

void svc_json(struct svc_response *res, int status, json_t *v)
{
	res->status = status;
	char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
	json_decref(v);
	if (!s || strlen(s) >= sizeof(res->body)) {
		res->status = 500;
		res->len = (size_t)snprintf(res->body, sizeof(res->body),
					    "{\"error\":\"response too large\"}");
	} else {
		res->len = strlen(s);
		memcpy(res->body, s, res->len + 1);
	}
	free(s);
}

void svc_error(struct svc_response *res, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	svc_json(res, status, json_pack("{s:s}", "error", msg));
}

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

/* Case-insensitive search for a token in a comma-separated header value. */
static int has_token(const char *v, size_t n, const char *tok)
{
	size_t tl = strlen(tok);
	for (size_t i = 0; i + tl <= n; i++)
		if (!strncasecmp(v + i, tok, tl) && (i == 0 || v[i - 1] == ',' || v[i - 1] == ' ') &&
		    (i + tl == n || v[i + tl] == ',' || v[i + tl] == ' ' || v[i + tl] == '\r'))
			return 1;
	return 0;
}

/* ---- the server side ---- */

struct head {
	char method[16];
	char target[2048];
	int minor;              /* HTTP/1.minor */
	long long content_length;
	int conn_close, conn_keep, chunked;
	char user[128];         /* X-User: the targeting key of flag evaluations ("" when none) */
};

/* Parses the request head (NUL-terminated, ends with CRLF CRLF). 0 or an HTTP status. */
static int parse_head(char *h, struct head *out)
{
	memset(out, 0, sizeof(*out));
	char *eol = strstr(h, "\r\n");
	if (!eol)
		return 400;
	*eol = '\0';
	char *sp1 = strchr(h, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || (size_t)(sp1 - h) >= sizeof(out->method) ||
	    (size_t)(sp2 - sp1 - 1) >= sizeof(out->target) || sp2 == sp1 + 1)
		return 400;
	memcpy(out->method, h, (size_t)(sp1 - h));
	memcpy(out->target, sp1 + 1, (size_t)(sp2 - sp1 - 1));
	if (!strcmp(sp2 + 1, "HTTP/1.1"))
		out->minor = 1;
	else if (!strcmp(sp2 + 1, "HTTP/1.0"))
		out->minor = 0;
	else
		return 400;
	for (char *line = eol + 2; *line && strncmp(line, "\r\n", 2); ) {
		char *end = strstr(line, "\r\n");
		if (!end)
			return 400;
		char *colon = memchr(line, ':', (size_t)(end - line));
		if (!colon)
			return 400;
		char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		size_t name_len = (size_t)(colon - line), vlen = (size_t)(end - v);
		if (name_len == 14 && !strncasecmp(line, "Content-Length", 14)) {
			char *stop;
			errno = 0;
			long long cl = strtoll(v, &stop, 10);
			if (errno || stop == v || cl < 0 || out->content_length)
				return 400;
			out->content_length = cl;
		} else if (name_len == 10 && !strncasecmp(line, "Connection", 10)) {
			out->conn_close |= has_token(v, vlen, "close");
			out->conn_keep |= has_token(v, vlen, "keep-alive");
		} else if (name_len == 17 && !strncasecmp(line, "Transfer-Encoding", 17)) {
			out->chunked = 1;
		} else if (name_len == 6 && !strncasecmp(line, "X-User", 6) && vlen < sizeof(out->user)) {
			memcpy(out->user, v, vlen);
			out->user[vlen] = '\0';
		}
		line = end + 2;
	}
	return 0;
}

static int flag_evaluate(const char *user);
static int flag_setup(const char **why);

static void handle(const struct head *h, struct svc_response *res, int *faulted)
{
	char target[sizeof(h->target)];
	memcpy(target, h->target, sizeof(target));
	char *q = strchr(target, '?');
	if (q)
		*q++ = '\0';
	struct svc_request req = {h->method, target, q ? q : ""};
	*faulted = 0;
	if (strcmp(h->method, "GET") && strcmp(h->method, "HEAD")) {
		svc_error(res, 405, "only GET and HEAD are served");
		return;
	}
	if (!strcmp(target, "/healthz")) {
		res->status = 200;
		res->len = (size_t)snprintf(res->body, sizeof(res->body), "ok");
		return;
	}
	if (latency_ms) {
		struct timespec ts = {latency_ms / 1000, (long)(latency_ms % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	if (error_rate > 0 && rand01() < error_rate) {
		*faulted = 1;
		svc_error(res, 500, "injected fault (error rate %g)", error_rate);
		return;
	}
	if (fail_after && atomic_fetch_add(&served, 1) >= fail_after) {
		*faulted = 1;
		svc_error(res, 500, "injected fault (every request after the first %u)", fail_after);
		return;
	}
	if (flag_key && flag_evaluate(h->user)) {
		/* the flag's code path: its own faults */
		if (flag_latency_ms) {
			struct timespec ts = {flag_latency_ms / 1000, (long)(flag_latency_ms % 1000) * 1000000L};
			while (nanosleep(&ts, &ts) && errno == EINTR)
				;
		}
		if (flag_error_rate > 0 && rand01() < flag_error_rate) {
			*faulted = 1;
			svc_error(res, 500, "injected fault on flag %s's code path (error rate %g)", flag_key,
				  flag_error_rate);
			return;
		}
	}
	cfg->handler(&req, res);
}

static int send_response(int fd, const struct svc_response *res, int head_only, int keep,
			 int minor)
{
	char hdr[512];
	int n = snprintf(hdr, sizeof(hdr),
			 "HTTP/1.%d %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "X-Version: v%d\r\nConnection: %s\r\n\r\n",
			 minor, res->status, reason(res->status),
			 res->body[0] == '{' ? "application/json" : "text/plain", res->len,
			 cfg->version, keep ? "keep-alive" : "close");
	if (n < 0 || (size_t)n >= sizeof(hdr))
		return -1;
	if (write_all(fd, hdr, (size_t)n))
		return -1;
	return head_only ? 0 : write_all(fd, res->body, res->len);
}

/* Waits until fd is readable; returns 1 readable, 0 stop or idle timeout, -1 error. While a
 * request is half read (`partial`), a shutdown waits for it instead of dropping it. */
static int wait_readable(int fd, int partial)
{
	double start = now_ms();
	for (;;) {
		if (!partial && atomic_load(&stopping))
			return 0;
		struct pollfd p = {fd, POLLIN, 0};
		int r = poll(&p, 1, IDLE_TICK_MS);
		if (r < 0 && errno != EINTR)
			return -1;
		if (r > 0)
			return 1;
		if (now_ms() - start > IDLE_TIMEOUT_MS)
			return 0;
	}
}

struct conn {
	int fd;
	char peer[64];
};

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	static _Thread_local char in[HEAD_MAX + 1];
	static _Thread_local struct svc_response res;
	size_t have = 0;
	for (;;) {
		/* Read until a complete head is buffered (pipelined leftovers may already be). */
		char *end = NULL;
		while (!(end = (have >= 4 ? memmem(in, have, "\r\n\r\n", 4) : NULL))) {
			if (have >= HEAD_MAX) {
				svc_error(&res, 431, "request head larger than %d bytes", HEAD_MAX);
				send_response(c->fd, &res, 0, 0, 1);
				goto out;
			}
			int w = wait_readable(c->fd, have > 0);
			if (w <= 0)
				goto out;
			ssize_t r = recv(c->fd, in + have, HEAD_MAX - have, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				goto out;
			have += (size_t)r;
		}
		double t0 = now_ms();
		size_t head_len = (size_t)(end - in) + 4;
		char saved = in[head_len];
		in[head_len] = '\0';
		struct head h;
		int bad = parse_head(in, &h);
		in[head_len] = saved;
		if (!bad && h.chunked)
			bad = 501;
		if (!bad && h.content_length > REQ_BODY_MAX)
			bad = 413;
		if (bad) {
			svc_error(&res, bad, "malformed or unsupported request");
			send_response(c->fd, &res, 0, 0, 1);
			logline("%s v%d %s - - %d (bad request)", cfg->name, cfg->version, c->peer, bad);
			goto out;
		}
		/* Drop the head, then read past the body (the examples take none). */
		memmove(in, in + head_len, have - head_len);
		have -= head_len;
		long long body = h.content_length;
		while (body > 0) {
			if (have) {
				size_t take = (size_t)body < have ? (size_t)body : have;
				memmove(in, in + take, have - take);
				have -= take;
				body -= (long long)take;
				continue;
			}
			if (wait_readable(c->fd, 1) <= 0)
				goto out;
			ssize_t r = recv(c->fd, in, HEAD_MAX, 0);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				goto out;
			have = (size_t)r;
		}
		int keep = h.minor == 1 ? !h.conn_close : (h.conn_keep && !h.conn_close);
		int faulted;
		handle(&h, &res, &faulted);
		if (atomic_load(&stopping))
			keep = 0; /* finish this one, then let the client reconnect elsewhere */
		int rc = send_response(c->fd, &res, !strcmp(h.method, "HEAD"), keep, h.minor);
		logline("%s v%d %s %s %s %d %.3fms%s", cfg->name, cfg->version, c->peer, h.method,
			h.target, res.status, now_ms() - t0, faulted ? " fault" : "");
		if (rc || !keep)
			goto out;
	}
out:
	close(c->fd);
	free(c);
	atomic_fetch_sub(&active_conns, 1);
	return NULL;
}

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&stopping, 1);
	char b = 1;
	ssize_t w = write(stop_pipe[1], &b, 1);
	(void)w;
}

static int usage(const char *argv0, const char *why)
{
	fprintf(stderr,
		"%s: %s\nusage: %s --port N [--error-rate F] [--latency-ms N] [--fail-after N] [--crash-at-start]\n",
		argv0, why, argv0);
	return 2;
}

static int parse_rate(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= 0 && v <= 1))
		return -1;
	*out = v;
	return 0;
}

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

int svc_main(int argc, char **argv, const struct svc_config *config)
{
	cfg = config;
	int port = -1, crash = 0;
	const char *env;
	/* Environment first, flags override. */
	if ((env = getenv("SLUICE_FAULT_ERROR_RATE")) && *env && parse_rate(env, &error_rate))
		return usage(argv[0], "SLUICE_FAULT_ERROR_RATE must be a number 0..1");
	if ((env = getenv("SLUICE_FAULT_LATENCY_MS")) && *env && parse_uint(env, 60000, &latency_ms))
		return usage(argv[0], "SLUICE_FAULT_LATENCY_MS must be an integer 0..60000");
	if ((env = getenv("SLUICE_FAULT_CRASH")) && *env && strcmp(env, "0"))
		crash = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		unsigned u;
		if (!strcmp(a, "--crash-at-start")) {
			crash = 1;
		} else if (!strcmp(a, "--port") && v) {
			if (parse_uint(v, 65535, &u))
				return usage(argv[0], "--port must be an integer 0..65535");
			port = (int)u;
			i++;
		} else if (!strcmp(a, "--error-rate") && v) {
			if (parse_rate(v, &error_rate))
				return usage(argv[0], "--error-rate must be a number 0..1");
			i++;
		} else if (!strcmp(a, "--fail-after") && v) {
			if (parse_uint(v, 1000000000, &fail_after) || !fail_after)
				return usage(argv[0], "--fail-after must be an integer 1..1000000000");
			i++;
		} else if (!strcmp(a, "--latency-ms") && v) {
			if (parse_uint(v, 60000, &latency_ms))
				return usage(argv[0], "--latency-ms must be an integer 0..60000");
			i++;
		} else {
			return usage(argv[0], "unknown or incomplete option");
		}
	}
	const char *why = NULL;
	if (flag_setup(&why))
		return usage(argv[0], why);
	if (crash) {
		fprintf(stderr, "%s v%d: crashing at start as asked (fault injection)\n", cfg->name,
			cfg->version);
		return 1;
	}
	if (port < 0)
		return usage(argv[0], "--port is required");

	signal(SIGPIPE, SIG_IGN);
	if (pipe2(stop_pipe, O_CLOEXEC)) {
		perror("pipe2");
		return 1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 1024)) {
		fprintf(stderr, "%s v%d: cannot listen on 127.0.0.1:%d: %s\n", cfg->name, cfg->version,
			port, strerror(errno));
		return 1;
	}
	socklen_t alen = sizeof(addr);
	getsockname(lfd, (struct sockaddr *)&addr, &alen);
	logline("%s v%d listening on 127.0.0.1:%d pid %d error-rate %g latency-ms %u", cfg->name,
		cfg->version, ntohs(addr.sin_port), (int)getpid(), error_rate, latency_ms);

	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	while (!atomic_load(&stopping)) {
		struct pollfd p[2] = {{lfd, POLLIN, 0}, {stop_pipe[0], POLLIN, 0}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (!(p[0].revents & POLLIN))
			continue;
		struct sockaddr_in peer;
		socklen_t plen = sizeof(peer);
		int fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (atomic_load(&active_conns) >= MAX_CONNS) {
			close(fd); /* a hard limit beats running out of threads */
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct conn *c = malloc(sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		snprintf(c->peer, sizeof(c->peer), "%s:%d", inet_ntoa(peer.sin_addr),
			 ntohs(peer.sin_port));
		atomic_fetch_add(&active_conns, 1);
		pthread_t t;
		if (pthread_create(&t, &attr, conn_main, c)) {
			atomic_fetch_sub(&active_conns, 1);
			close(fd);
			free(c);
		}
	}
	/* Stop accepting first, so that new connections go to other instances at once. */
	close(lfd);
	int open_conns = atomic_load(&active_conns);
	logline("%s v%d: stopping, finishing %d open connection(s)", cfg->name, cfg->version,
		open_conns);
	double deadline = now_ms() + DRAIN_MAX_MS;
	while (atomic_load(&active_conns) > 0 && now_ms() < deadline) {
		struct timespec ts = {0, 10 * 1000000L};
		nanosleep(&ts, NULL);
	}
	int left = atomic_load(&active_conns);
	logline("%s v%d: stopped%s", cfg->name, cfg->version,
		left ? " (drain timeout, connections dropped)" : "");
	return left ? 1 : 0;
}

/* ---- the client side: GET from an upstream over pooled keep-alive connections ---- */

struct pool {
	char env[64];
	int fds[POOL_MAX];
	int n;
};

static struct pool pools[4];
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;

static int pool_take(const char *env)
{
	int fd = -1;
	pthread_mutex_lock(&pool_lock);
	for (size_t i = 0; i < sizeof(pools) / sizeof(pools[0]); i++)
		if (!strcmp(pools[i].env, env) && pools[i].n > 0) {
			fd = pools[i].fds[--pools[i].n];
			break;
		}
	pthread_mutex_unlock(&pool_lock);
	return fd;
}

static void pool_give(const char *env, int fd)
{
	pthread_mutex_lock(&pool_lock);
	struct pool *p = NULL;
	for (size_t i = 0; i < sizeof(pools) / sizeof(pools[0]) && !p; i++)
		if (!strcmp(pools[i].env, env) || !pools[i].env[0])
			p = &pools[i];
	if (p && !p->env[0])
		snprintf(p->env, sizeof(p->env), "%s", env);
	if (p && p->n < POOL_MAX) {
		p->fds[p->n++] = fd;
		fd = -1;
	}
	pthread_mutex_unlock(&pool_lock);
	if (fd >= 0)
		close(fd);
}

static int dial(const char *hostport, char *err, size_t errn)
{
	char host[256];
	const char *colon = strrchr(hostport, ':');
	if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof(host) || !colon[1]) {
		snprintf(err, errn, "upstream address '%s' is not host:port", hostport);
		return -1;
	}
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = '\0';
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
	int g = getaddrinfo(host, colon + 1, &hints, &ai);
	if (g) {
		snprintf(err, errn, "cannot resolve '%s': %s", hostport, gai_strerror(g));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int rc = fd < 0 ? -1 : connect(fd, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (rc && errno == EINPROGRESS) {
		struct pollfd p = {fd, POLLOUT, 0};
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (poll(&p, 1, UPSTREAM_TIMEOUT_MS) == 1 &&
		    !getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) && !soerr)
			rc = 0;
		else
			errno = soerr ? soerr : ETIMEDOUT;
	}
	if (rc) {
		snprintf(err, errn, "cannot connect to %s: %s", hostport, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* One exchange on fd, the response read by sluice's own parser (src/http/response.h). Returns
 * 0 ok, -1 failed (err set), -2 failed before any byte came back (a stale pooled connection:
 * safe to retry a GET on a new one). *reuse says whether fd may go back to the pool. */
static int exchange(int fd, const char *hostport, const char *path, const char *post, int *status,
		    char *body, size_t cap, int *reuse, char *err, size_t errn)
{
	*reuse = 0;
	char req[4096];
	int n = post ? snprintf(req, sizeof(req),
				"POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-example/%s-v%d\r\n%s"
				"Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
				path, hostport, cfg->name, cfg->version, ofrep_auth, strlen(post), post)
		     : snprintf(req, sizeof(req),
				"GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-example/%s-v%d\r\n\r\n", path,
				hostport, cfg->name, cfg->version);
	if (n < 0 || (size_t)n >= sizeof(req)) {
		snprintf(err, errn, "upstream path too long");
		return -1;
	}
	if (write_all(fd, req, (size_t)n))
		return -2;
	static _Thread_local char buf[HEAD_MAX * 2 + SVC_BODY_MAX];
	static _Thread_local struct http_response resp;
	struct http_reader rd;
	http_reader_init(&rd, buf, sizeof(buf), UPSTREAM_TIMEOUT_MS);
	struct err e;
	int rc = http_reader_read(&rd, fd, post ? "POST" : "GET", &resp, &e);
	if (rc == HTTP_READ_IDLE_CLOSED)
		return -2;
	if (rc) {
		snprintf(err, errn, "upstream %s: %s", hostport, e.msg);
		return -1;
	}
	if (resp.body_len >= cap) {
		snprintf(err, errn, "upstream %s: response body too large", hostport);
		return -1;
	}
	memcpy(body, resp.body, resp.body_len);
	body[resp.body_len] = '\0';
	*status = resp.status;
	/* Bytes after the response would be read as the next one's: such a connection is dropped. */
	*reuse = resp.keep_alive && rd.len == rd.used;
	return 0;
}

/* One request over the pool named `pool` to hostport, Host: host (post: a JSON body, POSTed with the
 * OFREP token; NULL: GET). */
static int pooled_call(const char *pool, const char *hostport, const char *host, const char *path,
		       const char *post, int *status, char *body, size_t cap, char *err, size_t errn);

int svc_upstream_get(const char *env, const char *path, int *status, char *body, size_t cap,
		     char *err, size_t errn)
{
	const char *hostport = getenv(env);
	if (!hostport || !*hostport) {
		snprintf(err, errn, "%s is not set (the runtime sets it from depends_on)", env);
		return -1;
	}
	/* an upstream routed by Host on a shared listener comes with ${env}_HOST: the Host to send */
	char hv[128];
	snprintf(hv, sizeof(hv), "%s_HOST", env);
	const char *host = getenv(hv);
	if (!host || !*host || strlen(host) > 253)
		host = hostport;
	return pooled_call(env, hostport, host, path, NULL, status, body, cap, err, errn);
}

/* ---- the flag, evaluated over OFREP for each request ---- */

/* Whether the request of targeting key `user` ("" : anonymous, bucketed one request at a
 * time) gets the flag's "on" value: true, or a variant named "on". Any failure is "off", the
 * caller's default, as an OpenFeature client answers when the flag service is away. */
static int flag_evaluate(const char *user)
{
	static atomic_uint_fast64_t anon;
	char key[160];
	if (user && *user)
		snprintf(key, sizeof(key), "%s", user);
	else
		snprintf(key, sizeof(key), "req-%d-%llu", (int)getpid(),
			 (unsigned long long)atomic_fetch_add(&anon, 1));
	json_t *ctx = json_pack("{s:{s:s}}", "context", "targetingKey", key);
	char *txt = ctx ? json_dumps(ctx, JSON_COMPACT) : NULL;
	json_decref(ctx);
	if (!txt)
		return 0;
	static _Thread_local char body[4096];
	char err[256];
	int status = 0;
	int rc = pooled_call("SLUICE_OFREP_URL", ofrep_hostport, ofrep_hostport, ofrep_path, txt, &status, body, sizeof(body), err,
			     sizeof(err));
	free(txt);
	atomic_fetch_add(&flag_requests, 1);
	if (rc || status != 200) {
		if (atomic_fetch_add(&flag_failures, 1) % 1000 == 0)
			fprintf(stderr, "%s v%d: flag %s: %s (the default, off, is used)\n", cfg->name, cfg->version,
				flag_key, rc ? err : "the flag service did not answer 200");
		return 0;
	}
	json_t *j = json_loads(body, 0, NULL);
	const json_t *v = json_object_get(j, "value");
	const char *variant = json_string_value(json_object_get(j, "variant"));
	int on = json_is_true(v) || (variant && !strcmp(variant, "on"));
	json_decref(j);
	if (on)
		atomic_fetch_add(&flag_on, 1);
	return on;
}

/* SLUICE_OFREP_URL (the base URL an OpenFeature client is given, http://HOST:PORT/v1/envs/ENV),
 * SLUICE_OFREP_TOKEN, and SLUICE_FLAG the flag's key. 0, or -1 with why. */
static int flag_setup(const char **why)
{
	flag_key = getenv("SLUICE_FLAG");
	if (!flag_key || !*flag_key) {
		flag_key = NULL;
		return 0;
	}
	const char *url = getenv("SLUICE_OFREP_URL"), *token = getenv("SLUICE_OFREP_TOKEN");
	if (!url || strncmp(url, "http://", 7)) {
		*why = "SLUICE_FLAG needs SLUICE_OFREP_URL=http://HOST:PORT/v1/envs/ENV";
		return -1;
	}
	const char *hp = url + 7, *slash = strchr(hp, '/');
	size_t hl = slash ? (size_t)(slash - hp) : strlen(hp);
	if (!hl || hl >= sizeof(ofrep_hostport) || strlen(flag_key) > 127 || strpbrk(flag_key, "/?#% \r\n")) {
		*why = "SLUICE_OFREP_URL has no HOST:PORT, or SLUICE_FLAG is not a flag key";
		return -1;
	}
	memcpy(ofrep_hostport, hp, hl);
	ofrep_hostport[hl] = '\0';
	const char *base = slash ? slash : "";
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	if (snprintf(ofrep_path, sizeof(ofrep_path), "%.*s/ofrep/v1/evaluate/flags/%s", (int)bl, base, flag_key) >=
	    (int)sizeof(ofrep_path)) {
		*why = "SLUICE_OFREP_URL is too long";
		return -1;
	}
	if (token && *token &&
	    snprintf(ofrep_auth, sizeof(ofrep_auth), "Authorization: Bearer %s\r\n", token) >= (int)sizeof(ofrep_auth)) {
		*why = "SLUICE_OFREP_TOKEN is too long";
		return -1;
	}
	const char *env;
	if ((env = getenv("SLUICE_FAULT_FLAG_ERROR_RATE")) && *env && parse_rate(env, &flag_error_rate)) {
		*why = "SLUICE_FAULT_FLAG_ERROR_RATE must be a number 0..1";
		return -1;
	}
	if ((env = getenv("SLUICE_FAULT_FLAG_LATENCY_MS")) && *env && parse_uint(env, 60000, &flag_latency_ms)) {
		*why = "SLUICE_FAULT_FLAG_LATENCY_MS must be an integer 0..60000";
		return -1;
	}
	return 0;
}

static int pooled_call(const char *env, const char *hostport, const char *host, const char *path,
		       const char *post, int *status, char *body, size_t cap, char *err, size_t errn)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		int pooled = 0, fd = attempt == 0 ? pool_take(env) : -1;
		if (fd >= 0)
			pooled = 1;
		else if ((fd = dial(hostport, err, errn)) < 0)
			return -1;
		int reuse;
		int rc = exchange(fd, host, path, post, status, body, cap, &reuse, err, errn);
		if (rc == 0 && reuse)
			pool_give(env, fd);
		else
			close(fd);
		if (rc == 0)
			return 0;
		if (rc == -2 && pooled)
			continue; /* the upstream closed an idle connection: retry on a fresh one */
		if (rc == -2)
			snprintf(err, errn, "upstream %s closed the connection without answering",
				 hostport);
		return -1;
	}
	return -1;
}
