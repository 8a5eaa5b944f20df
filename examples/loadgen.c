/*
 * loadgen: continuous, rate-limited HTTP/1.1 load for the demo and the integration tests.
 *
 *   loadgen --url http://127.0.0.1:18003/ [--url ...] --rate N --duration S [--conns C]
 *           [--json FILE] [--header 'Name: value']
 *
 * Each connection is a thread with one keep-alive connection that sends GETs in turn to the
 * URLs, paced so the total is about N requests per second. A request fails when the connection
 * cannot be made, breaks before a full response, or the status is 5xx. It stops after S
 * seconds, or at SIGTERM/SIGINT, and prints one summary line (and JSON to FILE): requests,
 * failed, statuses, versions seen (X-Version), p50/p99 latency. Bounded in time and count:
 * it never runs longer than --duration (default 10 s, at most 1 hour).
 */
#include <arpa/inet.h>
#include <errno.h>
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

#define MAX_URLS 16
#define MAX_CONNS 64
#define LAT_BUCKETS 2000 /* 0.1 ms buckets up to 200 ms, the last one is "more" */

struct target {
	char host[64];
	int port;
	char path[256];
};

static struct target targets[MAX_URLS];
static int ntargets;
static double rate = 50;
static double duration = 10;
static int nconns = 4;
static const char *extra_header = "";
static volatile sig_atomic_t stopping;

static atomic_ulong n_req, n_fail, n_2xx, n_4xx, n_5xx, n_conn_err;
static atomic_ulong lat[LAT_BUCKETS + 1];
static pthread_mutex_t ver_mu = PTHREAD_MUTEX_INITIALIZER;
static char versions[16][32];
static unsigned long version_count[16];
static int nversions;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_url(const char *url, struct target *t)
{
	if (strncmp(url, "http://", 7))
		return -1;
	const char *h = url + 7, *colon = strchr(h, ':'), *slash = strchr(h, '/');
	if (!colon || (slash && slash < colon))
		return -1;
	snprintf(t->host, sizeof(t->host), "%.*s", (int)(colon - h), h);
	t->port = atoi(colon + 1);
	snprintf(t->path, sizeof(t->path), "%s", slash ? slash : "/");
	return t->port > 0 ? 0 : -1;
}

static int dial(const struct target *t)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->port)};
	inet_pton(AF_INET, t->host, &a.sin_addr);
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

static void note_version(const char *v, size_t n)
{
	if (n >= 32)
		n = 31;
	pthread_mutex_lock(&ver_mu);
	int i;
	for (i = 0; i < nversions; i++)
		if (strlen(versions[i]) == n && !strncmp(versions[i], v, n))
			break;
	if (i == nversions && nversions < 16)
		snprintf(versions[nversions++], 32, "%.*s", (int)n, v);
	if (i < 16)
		version_count[i]++;
	pthread_mutex_unlock(&ver_mu);
}

/* Reads one response; returns its status, -2 when the connection was closed before any byte
 * of it (a keep-alive connection the server had closed), or -1 when it broke. */
static int read_response(int fd, char *buf, size_t cap, size_t *have)
{
	for (;;) {
		char *end = memmem(buf, *have, "\r\n\r\n", 4);
		if (end) {
			size_t head = (size_t)(end - buf) + 4;
			int status = 0;
			if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
				return -1;
			size_t clen = 0;
			const char *cl = memmem(buf, head, "\r\nContent-Length:", 17);
			if (!cl)
				cl = memmem(buf, head, "\r\ncontent-length:", 17);
			if (cl)
				clen = strtoul(cl + 17, NULL, 10);
			const char *xv = memmem(buf, head, "\r\nX-Version: ", 13);
			if (xv) {
				const char *e = memchr(xv + 13, '\r', head - (size_t)(xv + 13 - buf));
				if (e)
					note_version(xv + 13, (size_t)(e - xv - 13));
			}
			while (*have < head + clen) {
				if (head + clen > cap)
					return -1;
				ssize_t n = read(fd, buf + *have, cap - *have);
				if (n <= 0)
					return -1;
				*have += (size_t)n;
			}
			memmove(buf, buf + head + clen, *have - head - clen);
			*have -= head + clen;
			return status;
		}
		if (*have == cap)
			return -1;
		ssize_t n = read(fd, buf + *have, cap - *have);
		if (n <= 0)
			return *have == 0 && n == 0 ? -2 : -1; /* -2: closed before any byte */
		*have += (size_t)n;
	}
}

static void *worker(void *arg)
{
	long id = (long)arg;
	double interval = (double)nconns / rate, next = now_s() + interval * (double)id / nconns;
	double end = now_s() + duration;
	char *buf = malloc(1 << 20);
	size_t have = 0;
	int fd = -1;
	unsigned long k = (unsigned long)id;
	while (!stopping && now_s() < end) {
		double t = now_s();
		if (t < next) {
			usleep((useconds_t)((next - t) * 1e6));
			continue;
		}
		next += interval;
		const struct target *tg = &targets[k++ % (unsigned long)ntargets];
		if (fd < 0 && (fd = dial(tg)) < 0) {
			atomic_fetch_add(&n_req, 1);
			atomic_fetch_add(&n_fail, 1);
			atomic_fetch_add(&n_conn_err, 1);
			continue;
		}
		char req[1024];
		int len = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: loadgen\r\n%s%s\r\n",
				   tg->path, tg->host, tg->port, extra_header, *extra_header ? "\r\n" : "");
		double t0 = now_s();
		int status = -2;
		if (write(fd, req, (size_t)len) == len)
			status = read_response(fd, buf, 1 << 20, &have);
		double ms = (now_s() - t0) * 1000;
		atomic_fetch_add(&n_req, 1);
		if (status == -2) {
			/* A keep-alive connection the server closed between requests is not a failed
			 * request when nothing came back: retry once on a fresh connection. */
			close(fd);
			have = 0;
			fd = dial(tg);
			status = -1;
			if (fd >= 0 && write(fd, req, (size_t)len) == len)
				status = read_response(fd, buf, 1 << 20, &have);
			ms = (now_s() - t0) * 1000;
		}
		size_t b = (size_t)(ms * 10);
		atomic_fetch_add(&lat[b > LAT_BUCKETS ? LAT_BUCKETS : b], 1);
		if (status < 0) {
			atomic_fetch_add(&n_fail, 1);
			atomic_fetch_add(&n_conn_err, 1);
			if (fd >= 0)
				close(fd);
			fd = -1;
			have = 0;
		} else if (status >= 500) {
			atomic_fetch_add(&n_fail, 1);
			atomic_fetch_add(&n_5xx, 1);
		} else if (status >= 400) {
			atomic_fetch_add(&n_4xx, 1);
		} else {
			atomic_fetch_add(&n_2xx, 1);
		}
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	return NULL;
}

static double quantile(double q)
{
	unsigned long total = 0, seen = 0;
	for (int i = 0; i <= LAT_BUCKETS; i++)
		total += lat[i];
	for (int i = 0; i <= LAT_BUCKETS; i++) {
		seen += lat[i];
		if (total && (double)seen >= q * (double)total)
			return (i + 1) / 10.0;
	}
	return 0;
}

static void on_signal(int sig)
{
	stopping = 1;
}

int main(int argc, char **argv)
{
	const char *json = NULL;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--url") && v && ntargets < MAX_URLS) {
			if (parse_url(v, &targets[ntargets++])) {
				fprintf(stderr, "loadgen: --url %s: expected http://IP:PORT/path\n", v);
				return 2;
			}
			i++;
		} else if (!strcmp(a, "--rate") && v) {
			rate = atof(argv[++i]);
		} else if (!strcmp(a, "--duration") && v) {
			duration = atof(argv[++i]);
		} else if (!strcmp(a, "--conns") && v) {
			nconns = atoi(argv[++i]);
		} else if (!strcmp(a, "--json") && v) {
			json = argv[++i];
		} else if (!strcmp(a, "--header") && v) {
			extra_header = argv[++i];
		} else {
			fprintf(stderr, "usage: loadgen --url URL [--url URL...] [--rate N] [--duration S] "
					"[--conns C] [--json FILE] [--header 'Name: value']\n");
			return !strcmp(a, "--help") ? 0 : 2;
		}
	}
	if (!ntargets || rate <= 0 || duration <= 0 || duration > 3600 || nconns < 1 || nconns > MAX_CONNS) {
		fprintf(stderr, "loadgen: need --url, 0 < rate, 0 < duration <= 3600, 1 <= conns <= %d\n", MAX_CONNS);
		return 2;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	pthread_t th[MAX_CONNS];
	for (long i = 0; i < nconns; i++)
		pthread_create(&th[i], NULL, worker, (void *)i);
	for (int i = 0; i < nconns; i++)
		pthread_join(th[i], NULL);
	char vs[512] = "";
	for (int i = 0; i < nversions; i++)
		snprintf(vs + strlen(vs), sizeof(vs) - strlen(vs), "%s%s=%lu", i ? "," : "", versions[i], version_count[i]);
	printf("requests %lu failed %lu (5xx %lu, connection %lu) 2xx %lu 4xx %lu p50 %.1fms p99 %.1fms versions %s\n",
	       (unsigned long)n_req, (unsigned long)n_fail, (unsigned long)n_5xx, (unsigned long)n_conn_err,
	       (unsigned long)n_2xx, (unsigned long)n_4xx, quantile(0.5), quantile(0.99), vs);
	if (json) {
		FILE *f = fopen(json, "w");
		if (f) {
			fprintf(f, "{\"requests\": %lu, \"failed\": %lu, \"5xx\": %lu, \"connection_errors\": %lu, "
				   "\"2xx\": %lu, \"4xx\": %lu, \"p50_ms\": %.1f, \"p99_ms\": %.1f}\n",
				(unsigned long)n_req, (unsigned long)n_fail, (unsigned long)n_5xx,
				(unsigned long)n_conn_err, (unsigned long)n_2xx, (unsigned long)n_4xx,
				quantile(0.5), quantile(0.99));
			fclose(f);
		}
	}
	return 0;
}
