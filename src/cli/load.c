/*
 * `sluice load`: continuous, rate-limited HTTP/1.1 load, for the demo, the integration tests and
 * the control plane's pre-production stage (which spawns it as a child with --json).
 *
 *   sluice load --url http://127.0.0.1:18003/ [--url ...] [--rate N] [--duration S] [--conns C]
 *               [--json FILE] [--header 'Name: value'] [--host NAME]
 *
 * Each of the C connections is a thread with one keep-alive connection that sends GETs to the
 * URLs in turn, paced so that the total is about N requests per second. A request fails when
 * the connection cannot be made, breaks before a full response, the response is not valid
 * HTTP/1.1, or the status is 5xx. It stops
 * after S seconds or at SIGTERM/SIGINT, and prints one summary line (and writes JSON to FILE,
 * atomically): requests, failed, statuses, versions seen (X-Version), p50/p99 latency.
 *
 * Bounded in time and count: it never runs longer than --duration (at most 1 hour) plus one
 * response timeout (5 s), at most 100000 requests/s, 64 connections, 1 MiB per response.
 * Responses are read by the project's strict parser (http/response.h), so every framing a
 * service may use works: Content-Length, chunked, a body until the server closes (the next
 * request then opens a new connection), interim 1xx, 204 and 304 without a body.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "util/opt.h"
#include "http/response.h"
#include "util/httpc.h"
#include "util/log.h"
#include "util/name.h"

#define LOAD_MAX_URLS 16
#define LOAD_MAX_CONNS 64
#define LOAD_MAX_RATE 100000.0
#define LOAD_MAX_DURATION 3600.0
#define LOAD_MAX_RESPONSE (1 << 20)
#define LOAD_IO_TIMEOUT_S 5
#define LOAD_MAX_VERSIONS 16
#define LOAD_VERSION_LEN 32
/* Latency histogram: 0.1 ms buckets up to 200 ms, then 10 ms buckets up to 5 s, then "more". */
#define FINE_BUCKETS 2000
#define COARSE_BUCKETS 480
#define LAT_BUCKETS (FINE_BUCKETS + COARSE_BUCKETS)
/* Longest sleep between two looks at the stop flag, so that SIGTERM is answered at once. */
#define SLICE_US 20000

struct target {
	char host[INET_ADDRSTRLEN];
	struct sockaddr_in addr;
	int port;
	char path[256];
};

struct load {
	struct target targets[LOAD_MAX_URLS];
	int ntargets;
	double rate, duration;
	int nconns;
	const char *json, *header;
	const char *host; /* --host: the Host field's value, else the URL's host:port */
	double end; /* monotonic time at which workers stop starting requests */

	atomic_ulong req, failed, s2xx, s4xx, s5xx, conn_err;
	atomic_ulong lat[LAT_BUCKETS + 1];
	pthread_mutex_t ver_mu;
	char versions[LOAD_MAX_VERSIONS][LOAD_VERSION_LEN];
	unsigned long version_count[LOAD_MAX_VERSIONS];
	int nversions;
	atomic_int fds[LOAD_MAX_CONNS]; /* each worker's socket or -1, so a stop can cut them */
};

struct worker_arg {
	struct load *l;
	int id;
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sluice load --url URL [--url URL...] [--rate N] [--duration S] [--conns C]\n"
		"                   [--json FILE] [--header 'Name: value'] [--host NAME]\n"
		"\n"
		"Sends GET requests to the URLs (http://IPV4:PORT/path, at most %d) at about N requests\n"
		"per second in total (default 50, at most %.0f) over C keep-alive connections (default 4,\n"
		"1..%d, at least one per URL; connection i serves URL i mod the number of URLs, so a\n"
		"multiple of the URL count spreads the load evenly) for S seconds (default 10, at most\n"
		"%.0f), then prints one line:\n"
		"  requests R failed F (5xx X, connection E) 2xx A 4xx B p50 Pms p99 Qms versions V=n,...\n"
		"A request fails when the connection cannot be made, breaks before a full response,\n"
		"the response is not valid HTTP/1.1 or it answers 5xx. SIGTERM or SIGINT stops early and still prints the line (a request cut by\n"
		"the stop is not counted). --json FILE also writes {requests, failed, 5xx,\n"
		"connection_errors, 2xx, 4xx, p50_ms, p99_ms, versions} to FILE, atomically.\n"
		"--header adds one request header to every request. --host NAME sends Host: NAME\n"
		"instead of the URL's host:port (a proxy's shared listener routes by Host).\n"
		"\n"
		"exit: 0 the load ran (whatever the failures), 1 FILE could not be written, 2 usage error\n",
		LOAD_MAX_URLS, LOAD_MAX_RATE, LOAD_MAX_CONNS, LOAD_MAX_DURATION);
}

static int parse_url(const char *url, struct target *t)
{
	if (strncmp(url, "http://", 7))
		return error("--url %s: expected http://IPV4:PORT/path", url);
	const char *h = url + 7, *colon = strchr(h, ':');
	const char *slash = strchr(h, '/');
	if (!colon || (slash && slash < colon) || (size_t)(colon - h) >= sizeof(t->host))
		return error("--url %s: expected http://IPV4:PORT/path (the port is required)", url);
	snprintf(t->host, sizeof(t->host), "%.*s", (int)(colon - h), h);
	memset(&t->addr, 0, sizeof(t->addr));
	t->addr.sin_family = AF_INET;
	if (inet_pton(AF_INET, t->host, &t->addr.sin_addr) != 1)
		return error("--url %s: '%s' is not an IPv4 address (names are not resolved)", url,
			     t->host);
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || (*end && *end != '/') || port < 1 || port > 65535)
		return error("--url %s: expected a port 1..65535 after the address", url);
	t->port = (int)port;
	t->addr.sin_port = htons((uint16_t)port);
	const char *path = *end ? end : "/";
	if (strlen(path) >= sizeof(t->path))
		return error("--url %s: the path is longer than %zu bytes", url, sizeof(t->path) - 1);
	for (const char *p = path; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return error("--url %s: the path has a space or a control character", url);
	snprintf(t->path, sizeof(t->path), "%s", path);
	return 0;
}

/* The rules of every client's extra fields (util/httpc.h), and a length that fits the request. */
static int header_ok(const char *h, struct err *e)
{
	const char *const list[] = {h, NULL};
	if (strlen(h) > 512)
		return err_set(e, "longer than 512 bytes");
	return httpc_headers_check(list, e);
}

/* 0, or EXIT_USAGE after a message; *help set for --help. */
static int parse_args(int argc, char **argv, struct load *l, int *help)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			*help = 1;
			return 0;
		}
		static const char *const with_value[] = {"--url",  "--rate", "--duration", "--conns",
							 "--json", "--header", "--host"};
		int known = 0;
		for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++)
			known |= !strcmp(a, with_value[k]);
		if (!known && a[0] != '-')
			return error("load: unexpected argument '%s' (URLs are given with --url)", a), EXIT_USAGE;
		if (!known)
			return error("load: unknown option '%s'; see 'sluice load --help'", a), EXIT_USAGE;
		if (i + 1 >= argc)
			return error("load: %s needs a value; see 'sluice load --help'", a), EXIT_USAGE;
		const char *v = argv[++i];
		struct err oe;
		uint64_t ms;
		long long n;
		if (!strcmp(a, "--url")) {
			if (l->ntargets == LOAD_MAX_URLS)
				return error("--url: at most %d URLs", LOAD_MAX_URLS), EXIT_USAGE;
			if (parse_url(v, &l->targets[l->ntargets]))
				return EXIT_USAGE;
			l->ntargets++;
		} else if (!strcmp(a, "--rate")) {
			if (opt_rate(a, v, 0.001, LOAD_MAX_RATE, &l->rate, &oe))
				return error("%s", oe.msg), EXIT_USAGE;
		} else if (!strcmp(a, "--duration")) {
			if (opt_duration_ms(a, v, 1, (uint64_t)(LOAD_MAX_DURATION * 1000), &ms, &oe))
				return error("%s", oe.msg), EXIT_USAGE;
			l->duration = (double)ms / 1000.0;
		} else if (!strcmp(a, "--conns")) {
			if (opt_int(a, v, 1, LOAD_MAX_CONNS, &n, &oe))
				return error("%s", oe.msg), EXIT_USAGE;
			l->nconns = (int)n;
		} else if (!strcmp(a, "--host")) {
			if (!name_host_ok(v) || v[0] == '*')
				return error("--host: expected a host name without a port (api.example.com), "
					     "got '%.64s'", v), EXIT_USAGE;
			l->host = v;
		} else if (!strcmp(a, "--json")) {
			if (!*v)
				return error("--json: expected a file name"), EXIT_USAGE;
			l->json = v;
		} else {
			struct err e;
			if (header_ok(v, &e))
				return error("--header: expected 'Name: value' (at most 512 bytes, no "
					     "control characters, not Host, Connection, ...), got "
					     "'%.64s': %s",
					     v, e.msg),
				       EXIT_USAGE;
			l->header = v;
		}
	}
	if (!l->ntargets)
		return error("load: at least one --url is required; see 'sluice load --help'"),
		       EXIT_USAGE;
	return 0;
}

static int dial(const struct target *t)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* On Linux SO_SNDTIMEO also bounds connect(); the reader bounds each wait for a response. */
	struct timeval tv = {LOAD_IO_TIMEOUT_S, 0};
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) ||
	    connect(fd, (const struct sockaddr *)&t->addr, sizeof(t->addr))) {
		close(fd);
		return -1;
	}
	return fd;
}

static void note_version(struct load *l, const char *v, size_t n)
{
	if (n >= LOAD_VERSION_LEN)
		n = LOAD_VERSION_LEN - 1;
	pthread_mutex_lock(&l->ver_mu);
	int i;
	for (i = 0; i < l->nversions; i++)
		if (strlen(l->versions[i]) == n && !strncmp(l->versions[i], v, n))
			break;
	if (i == l->nversions && l->nversions < LOAD_MAX_VERSIONS) {
		/* Only printable bytes: the name goes to a terminal and into JSON. */
		for (size_t k = 0; k < n; k++)
			l->versions[i][k] = (v[k] > 0x20 && v[k] < 0x7f) ? v[k] : '?';
		l->versions[i][n] = '\0';
		l->nversions++;
	}
	if (i < LOAD_MAX_VERSIONS)
		l->version_count[i]++;
	pthread_mutex_unlock(&l->ver_mu);
}

/* Reads one response; returns its status, -2 when the connection was closed before any byte
 * of it (a keep-alive connection the server had closed), or -1 when it broke or was not valid
 * HTTP/1.1. *again says whether the connection may carry the next request. */
static int read_response(struct load *l, int fd, struct http_reader *rd, int *again)
{
	static _Thread_local struct http_response resp;
	struct err e;
	*again = 0;
	int rc = http_reader_read(rd, fd, "GET", &resp, &e);
	if (rc)
		return rc == HTTP_READ_IDLE_CLOSED ? -2 : -1;
	/* Counted only for a whole response, so that versions add up to requests. */
	const struct http_header *xv = http_head_get(&resp.head, "x-version");
	if (xv && xv->value_len)
		note_version(l, xv->value, xv->value_len);
	*again = resp.keep_alive;
	return resp.status;
}

static void set_fd(struct load *l, int id, int *fd, int v)
{
	if (*fd >= 0 && v != *fd)
		close(*fd);
	*fd = v;
	atomic_store(&l->fds[id], v);
}

static void record(struct load *l, int status, double ms)
{
	atomic_fetch_add(&l->req, 1);
	size_t b = ms < 200 ? (size_t)(ms * 10) : FINE_BUCKETS + (size_t)((ms - 200) / 10);
	atomic_fetch_add(&l->lat[b > LAT_BUCKETS ? LAT_BUCKETS : b], 1);
	if (status < 0) {
		atomic_fetch_add(&l->failed, 1);
		atomic_fetch_add(&l->conn_err, 1);
	} else if (status >= 500) {
		atomic_fetch_add(&l->failed, 1);
		atomic_fetch_add(&l->s5xx, 1);
	} else if (status >= 400) {
		atomic_fetch_add(&l->s4xx, 1);
	} else {
		atomic_fetch_add(&l->s2xx, 1);
	}
}

static void *worker(void *arg)
{
	struct worker_arg *wa = arg;
	struct load *l = wa->l;
	int id = wa->id;
	double interval = (double)l->nconns / l->rate;
	double next = now_s() + interval * (double)id / l->nconns;
	char *buf = malloc(LOAD_MAX_RESPONSE);
	struct http_reader rd;
	http_reader_init(&rd, buf, LOAD_MAX_RESPONSE, LOAD_IO_TIMEOUT_S * 1000);
	int fd = -1, again = 0;
	char req[1024];
	while (buf && !stopping && now_s() < l->end) {
		double t = now_s();
		if (t < next) {
			double wait = next - t;
			usleep(wait * 1e6 < SLICE_US ? (useconds_t)(wait * 1e6) : SLICE_US);
			continue;
		}
		next += interval;
		/* connection `id` serves target id % ntargets: a keep-alive connection stays on the
		 * listener it was opened to */
		const struct target *tg = &l->targets[(unsigned long)id % (unsigned long)l->ntargets];
		char hostf[300];
		if (l->host)
			snprintf(hostf, sizeof(hostf), "%s", l->host);
		else
			snprintf(hostf, sizeof(hostf), "%s:%d", tg->host, tg->port);
		int len = snprintf(req, sizeof(req),
				   "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-load\r\n%s%s\r\n",
				   tg->path, hostf, l->header ? l->header : "",
				   l->header ? "\r\n" : "");
		double t0 = now_s();
		int status = -2;
		if (fd < 0) {
			http_reader_reset(&rd);
			set_fd(l, id, &fd, dial(tg));
			status = fd < 0 ? -1 : -2;
		}
		if (fd >= 0) {
			status = -1;
			if (write(fd, req, (size_t)len) == len)
				status = read_response(l, fd, &rd, &again);
			if (status == -2 && !stopping) {
				/* A keep-alive connection the server closed between requests is not a
				 * failed request when nothing came back: retry once on a new one. */
				http_reader_reset(&rd);
				set_fd(l, id, &fd, dial(tg));
				status = -1;
				if (fd >= 0 && write(fd, req, (size_t)len) == len)
					status = read_response(l, fd, &rd, &again);
			}
		}
		if (status >= 0 && !again)
			set_fd(l, id, &fd, -1); /* the server closes it (or said it would) */
		if (status < 0) {
			set_fd(l, id, &fd, -1);
			/* A request cut by our own stop (SIGTERM shuts the sockets down) is not the
			 * server's failure. */
			if (stopping)
				break;
		}
		record(l, status < -1 ? -1 : status, (now_s() - t0) * 1000);
	}
	set_fd(l, id, &fd, -1);
	free(buf);
	return NULL;
}

/* Upper bound of the bucket holding quantile q, in ms (0 without data). */
static double quantile(struct load *l, double q)
{
	unsigned long total = 0, seen = 0;
	for (int i = 0; i <= LAT_BUCKETS; i++)
		total += atomic_load(&l->lat[i]);
	for (int i = 0; i <= LAT_BUCKETS; i++) {
		seen += atomic_load(&l->lat[i]);
		if (total && (double)seen >= q * (double)total)
			return i < FINE_BUCKETS ? (i + 1) / 10.0
					       : 200.0 + (double)(i - FINE_BUCKETS + 1) * 10.0;
	}
	return 0;
}

/* Written to FILE.tmp.PID and renamed, so a reader (the control plane) never sees half. */
static int write_json(struct load *l, const char *path)
{
	json_t *vs = json_object();
	for (int i = 0; i < l->nversions; i++)
		json_object_set_new(vs, l->versions[i], json_integer((json_int_t)l->version_count[i]));
	json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:o}",
			      "requests", (json_int_t)atomic_load(&l->req),
			      "failed", (json_int_t)atomic_load(&l->failed),
			      "5xx", (json_int_t)atomic_load(&l->s5xx),
			      "connection_errors", (json_int_t)atomic_load(&l->conn_err),
			      "2xx", (json_int_t)atomic_load(&l->s2xx),
			      "4xx", (json_int_t)atomic_load(&l->s4xx),
			      "p50_ms", quantile(l, 0.5), "p99_ms", quantile(l, 0.99), "versions", vs);
	char tmp[4096];
	if (!o || snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
		json_decref(o);
		return error("--json %s: the file name is too long", path);
	}
	FILE *f = fopen(tmp, "w");
	int rc = -1;
	if (f) {
		int w = json_dumpf(o, f, JSON_COMPACT | JSON_REAL_PRECISION(6)) == 0 && fputc('\n', f) != EOF;
		w = (fflush(f) == 0) && w && fsync(fileno(f)) == 0;
		if (fclose(f) == 0 && w && rename(tmp, path) == 0)
			rc = 0;
	}
	if (rc) {
		error("--json %s: cannot write it: %s", path, strerror(errno));
		unlink(tmp);
	}
	json_decref(o);
	return rc;
}

int cmd_load(int argc, char **argv)
{
	static struct load l;
	memset(&l, 0, sizeof(l));
	l.rate = 50;
	l.duration = 10;
	l.nconns = 4;
	int help = 0, rc = parse_args(argc, argv, &l, &help);
	if (help) {
		usage(stdout);
		return EXIT_OK;
	}
	if (rc)
		return rc;
	/* A keep-alive connection talks to one target: every target needs its own connections. */
	if (l.nconns < l.ntargets)
		l.nconns = l.ntargets;
	pthread_mutex_init(&l.ver_mu, NULL);
	for (int i = 0; i < LOAD_MAX_CONNS; i++)
		atomic_init(&l.fds[i], -1);

	/* No SA_RESTART: nothing here needs it, and the flag is what every thread looks at. */
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	l.end = now_s() + l.duration;
	pthread_t th[LOAD_MAX_CONNS];
	struct worker_arg args[LOAD_MAX_CONNS];
	int started = 0;
	for (int i = 0; i < l.nconns; i++) {
		args[i] = (struct worker_arg){&l, i};
		if (pthread_create(&th[i], NULL, worker, &args[i])) {
			warning("load: could not start connection %d of %d", i + 1, l.nconns);
			break;
		}
		started++;
	}
	/* Wait for the end or a signal; on a signal cut the requests in flight so that the summary
	 * comes at once rather than after a slow response. */
	while (!stopping && now_s() < l.end)
		usleep(SLICE_US);
	if (stopping)
		for (int i = 0; i < started; i++) {
			int fd = atomic_load(&l.fds[i]);
			if (fd >= 0)
				shutdown(fd, SHUT_RDWR);
		}
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);

	char vs[LOAD_MAX_VERSIONS * (LOAD_VERSION_LEN + 24)] = "";
	size_t o = 0;
	for (int i = 0; i < l.nversions && o < sizeof(vs); i++)
		o += (size_t)snprintf(vs + o, sizeof(vs) - o, "%s%s=%lu", i ? "," : "", l.versions[i],
				      l.version_count[i]);
	printf("requests %lu failed %lu (5xx %lu, connection %lu) 2xx %lu 4xx %lu p50 %.1fms p99 "
	       "%.1fms versions %s\n",
	       atomic_load(&l.req), atomic_load(&l.failed), atomic_load(&l.s5xx),
	       atomic_load(&l.conn_err), atomic_load(&l.s2xx), atomic_load(&l.s4xx),
	       quantile(&l, 0.5), quantile(&l, 0.99), vs);
	fflush(stdout);
	rc = EXIT_OK;
	if (l.json && write_json(&l, l.json))
		rc = EXIT_NO;
	pthread_mutex_destroy(&l.ver_mu);
	return rc;
}
