/*
 * server: a small HTTP/1.1 request/response server on the event loop, for APIs (the control
 * plane's /v1 API and the proxy's admin endpoint), not for the proxied traffic.
 *
 * Each request is read whole (head and body, within the limits) and handed to the handler,
 * which fills in a response synchronously. Keep-alive and pipelining are supported; requests
 * on one connection are answered in order. Bad requests get a 400 with the parser's reason and
 * the connection is closed. Connections idle longer than idle_timeout_ms are closed.
 */
#ifndef SLUICE_HTTP_SERVER_H
#define SLUICE_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "http/parse.h"
#include "loop/loop.h"
#include "util/buf.h"
#include "util/log.h"

typedef struct httpd httpd;

struct httpd_req {
	const struct http_head *head;
	const char *method; /* NUL-terminated copies, valid during the handler call */
	const char *path;   /* target without the query, percent-decoding NOT applied */
	const char *query;  /* after '?', "" when none */
	const char *body;   /* decoded (chunked), NUL-terminated: body[body_len] == 0 */
	size_t body_len;
	const char *peer;   /* "ip:port" */
};

struct httpd_resp {
	int status;               /* default 200 */
	const char *content_type; /* default "application/json" */
	struct buf headers;       /* extra "Name: value\r\n" lines */
	struct buf body;
};

typedef void httpd_handler(void *ctx, const struct httpd_req *req, struct httpd_resp *resp);

struct httpd_opts {
	size_t max_head;             /* default 16 KiB */
	size_t max_headers;          /* default 64 */
	uint64_t max_body;           /* default 1 MiB */
	unsigned max_conns;          /* default 256 */
	unsigned idle_timeout_ms;    /* default 30000 */
};

/*
 * Listens on `addr` ("host:port"; port 0 picks one, see httpd_port) and serves on loop l.
 * opts may be NULL for the defaults. Returns 0, or -1 with the reason in e.
 */
__attribute__((warn_unused_result)) int httpd_start(httpd **out, loop *l, const char *addr,
						    const struct httpd_opts *opts, httpd_handler *fn,
						    void *ctx, struct err *e);
int httpd_port(const httpd *h);
/* Closes the listener and every connection. */
void httpd_free(httpd *h);

/* Helpers for handlers. */
/* Value of the first header `name` as a NUL-terminated copy in dst (truncated); NULL if absent. */
const char *httpd_header(const struct httpd_req *req, const char *name, char *dst, size_t dstlen);
/* Value of query parameter `key`, percent-decoded into dst; NULL if absent. */
const char *httpd_query(const struct httpd_req *req, const char *key, char *dst, size_t dstlen);
/* Sets status and a JSON body {"error": msg}. */
__attribute__((format(printf, 3, 4))) void httpd_error(struct httpd_resp *resp, int status, const char *fmt, ...);

#endif
