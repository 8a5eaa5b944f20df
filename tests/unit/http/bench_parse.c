/*
 * Parser throughput, for `meson test --benchmark unit-http-bench` (or run the program): a
 * typical 500-byte browser request head, a 20-field API request, and a 1 MiB chunked body in
 * 4 KiB chunks. Prints ns per head and MB/s; fails only if a parse fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/parse.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts); /* CPU time: less noise on a shared machine */
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench_head(const char *name, const char *req, int iters)
{
	static struct http_head h;
	struct http_limits lim = { 16384, 64, 1 << 20 };
	size_t len = strlen(req);
	ssize_t want = http_parse_request(req, len, &lim, &h);
	if (want <= 1) {
		fprintf(stderr, "%s: parse failed: %s\n", name, http_strerror((int)want));
		return 1;
	}
	double t0 = now();
	size_t sum = 0;
	for (int i = 0; i < iters; i++) {
		ssize_t r = http_parse_request(req, len, &lim, &h);
		sum += (size_t)r + h.nheaders;
	}
	double dt = now() - t0;
	printf("%-22s %4zu bytes %3zu fields: %7.1f ns/head  %7.0f MB/s  (%zu)\n", name, len, h.nheaders,
	       dt / iters * 1e9, (double)len * iters / dt / 1e6, sum % 7);
	return 0;
}

int main(void)
{
	const char *browser =
		"GET /static/app/v3/main.4f2a9c.js?cache=1700000000 HTTP/1.1\r\n"
		"Host: www.example.com\r\n"
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
		"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n"
		"Accept-Language: en-US,en;q=0.5\r\n"
		"Accept-Encoding: gzip, deflate, br\r\n"
		"Referer: https://www.example.com/products/list?page=2\r\n"
		"Connection: keep-alive\r\n"
		"Cookie: session=4f2a9c1b7e3d5a6f8c0b; theme=dark; consent=yes\r\n"
		"Upgrade-Insecure-Requests: 1\r\n"
		"Sec-Fetch-Dest: document\r\n"
		"\r\n";
	char api[4096];
	int n = snprintf(api, sizeof api, "POST /v1/services/web/deployments HTTP/1.1\r\nHost: sluice.local:7070\r\n"
			 "Content-Type: application/json\r\nContent-Length: 1234\r\n");
	for (int i = 0; i < 16; i++)
		n += snprintf(api + n, sizeof api - (size_t)n, "X-Trace-Field-%02d: %08x-%04x-value\r\n", i, i * 2654435761u, i);
	snprintf(api + n, sizeof api - (size_t)n, "\r\n");
	int rc = bench_head("browser GET", browser, 2000000);
	rc |= bench_head("API POST, 20 fields", api, 1000000);

	/* chunked: 1 MiB body in 4 KiB chunks, decoded in place */
	size_t body = 1 << 20, chunk = 4096;
	size_t enc_cap = body + (body / chunk) * 16 + 16;
	char *enc = malloc(enc_cap), *work = malloc(enc_cap);
	size_t el = 0;
	for (size_t off = 0; off < body; off += chunk) {
		el += (size_t)sprintf(enc + el, "%zx\r\n", chunk);
		memset(enc + el, 'x', chunk);
		el += chunk;
		memcpy(enc + el, "\r\n", 2);
		el += 2;
	}
	memcpy(enc + el, "0\r\n\r\n", 5);
	el += 5;
	int reps = 200;
	double t0 = now();
	for (int i = 0; i < reps; i++) {
		struct http_chunked c;
		size_t out = 0;
		memcpy(work, enc, el);
		http_chunked_init(&c, 0);
		ssize_t r = http_chunked_feed(&c, work, el, work, &out);
		if (r != (ssize_t)el || out != body || !c.done) {
			fprintf(stderr, "chunked: decode failed %zd\n", r);
			return 1;
		}
	}
	double dt = now() - t0;
	printf("%-22s %zu KiB in %zu B chunks: %7.0f MB/s decoded in place (incl. a memcpy)\n",
	       "chunked decode", body >> 10, chunk, (double)body * reps / dt / 1e6);
	free(enc);
	free(work);
	return rc;
}
