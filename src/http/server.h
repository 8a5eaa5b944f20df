/*
 * server: a small HTTP/1.1 request/response server on the event loop, for APIs (the control
 * plane's /v1 API and the proxy's admin endpoint), not for the proxied traffic.
 *
 * Each request is read whole (head and body, within the limits) and handed to the handler,
 * which fills in a response synchronously. Keep-alive and pipelining are supported; requests
 * on one connection are answered in order. Bad requests get a 400 with the parser's reason and
 * the connection is closed.
 *
 * Limits against slow or greedy peers (each in httpd_opts, with its default):
 * - time: a request head must be complete within head_timeout_ms of its first byte; a body
 *   within body_timeout_ms of the end of its head, plus one second per body_min_rate bytes
 *   received (a large upload at a fair pace is never cut; a trickle is); a connection with no
 *   socket activity for idle_timeout_ms is closed at any point (between requests, mid-request,
 *   or while its answers wait to be read).
 * - connections: at max_conns, a new connection is not refused: the server closes the
 *   connection that has been idle longest between requests (nothing received of a next
 *   request, every answer written) to make room; failing that, the one whose incomplete head
 *   started first. Only when every connection is inside a request (a body being read,
 *   answers waiting) is the newcomer closed.
 * - bodies: max_body for every request, unless on_head says otherwise for one request (a
 *   route that takes large uploads); a declared Content-Length above the request's limit is
 *   answered 413 before any body byte is read. on_head may also stream the body to a sink
 *   instead of memory (struct httpd_body).
 *
 * TLS: with httpd_opts.tls every connection is TLS (see http/tls.h); the handshake counts as
 * part of the first request's head (head_timeout_ms from the connection's start to the end of
 * its first head), and a client that fails it (plain HTTP on the TLS port, say) is closed
 * without an answer. Nothing else changes: handlers see the same requests.
 */
#ifndef SLUICE_HTTP_SERVER_H
#define SLUICE_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "http/parse.h"
#include "http/tls.h"
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
	/* When on_head set up a sink for this request: its httpd_body.arg, and the number of body
	 * bytes it was given (body is then "" and body_len 0). NULL and 0 otherwise. */
	void *body_sink;
	uint64_t body_streamed;
};

typedef struct httpd_stream httpd_stream;

/*
 * Streaming responses (server-sent events). A handler that sets resp->stream.start turns a 200
 * answer into a stream: the head goes out without Content-Length and with Connection: close,
 * then resp->body (may be empty), then whatever the owner writes with httpd_stream_write, for
 * as long as the stream lasts; the body ends when the connection closes (HTTP/1.1 allows a
 * response delimited by the close). The connection reads no further request: what the client
 * sends is read and dropped, and its end (EOF or reset) ends the stream.
 *
 * Life cycle, with arg the owner's: start(arg, st) is called once the head is queued (the
 * owner keeps st and may write at once); end(arg) is called exactly once afterwards, whatever
 * ends the stream: the client closed or reset, the connection was idle for idle_timeout_ms (a
 * client that stops reading its stream has no socket activity: heartbeats shorter than the
 * idle timeout keep a reading client alive), a write passed max_pending, httpd_stream_close,
 * httpd_free. After end, neither st nor arg is used by the server, and the owner must not use
 * st. end may run inside httpd_stream_write or httpd_stream_close (the owner must be ready
 * for it there). When the answer is not streamed after all (a status other than 200, a HEAD
 * request), start is not called and end(arg) is, before the handler's answer is written.
 *
 * A stream connection is never closed to make room at max_conns: the owner bounds how many it
 * accepts.
 */
struct httpd_stream_hooks {
	void (*start)(void *arg, httpd_stream *st); /* NULL: an ordinary response */
	void (*end)(void *arg);                     /* required with start */
	void *arg;
	size_t max_pending; /* written but not yet sent, in bytes, beyond which the client is
			     * dropped; 0: 1 MiB */
};

struct httpd_resp {
	int status;               /* default 200 */
	const char *content_type; /* default "application/json" */
	struct buf headers;       /* extra "Name: value\r\n" lines */
	struct buf body;
	struct httpd_stream_hooks stream; /* all zero: not a stream */
};

/* Queues len bytes on the stream, sent as the socket allows (never blocks). Returns 0, or -1
 * when they would put more than max_pending bytes in waiting (a client that does not read) or
 * memory ran out: the connection is then closed and end() has run. */
__attribute__((warn_unused_result)) int httpd_stream_write(httpd_stream *st, const char *data,
							   size_t len);
/* Ends the stream once what is queued has been sent; end() runs before it returns. */
void httpd_stream_close(httpd_stream *st);

typedef void httpd_handler(void *ctx, const struct httpd_req *req, struct httpd_resp *resp);

/*
 * What the server does with one request's body, decided by httpd_opts.on_head.
 *
 * max_body: the largest body this request may have (decoded size when chunked); it starts at
 * httpd_opts.max_body and on_head may lower or raise it (0 puts it back). A buffered body needs
 * that much memory at most; a streamed one does not. A Content-Length above it is answered
 * 413 at once; a chunked body is cut with a 413 as soon as a chunk size passes it.
 *
 * Streaming: when on_head sets `write`, the body is not buffered: its bytes (decoded when
 * chunked) are passed to write(arg, ...) as they arrive, in order, in pieces of any size, and
 * the handler then runs with req->body_sink == arg and req->body_streamed == the byte count.
 * write returns 0, or an HTTP status (400-599) to refuse the body with the message in e: the
 * server answers that status and closes the connection without reading further, and the
 * handler is not called. `done(arg)` (may be NULL) is called exactly once for every request
 * whose on_head set `write`: after the handler returned, or when the request ends without it
 * (refused, bad framing, the connection closed or timed out, httpd_free). So the handler
 * commits what it was given and `done` releases what is left (e.g. removes an uncommitted
 * file). Neither callback may call httpd_free.
 */
struct httpd_body {
	uint64_t max_body;
	int (*write)(void *arg, const char *data, size_t len, struct err *e);
	void (*done)(void *arg);
	void *arg;
};

/*
 * Called once per request when its head has been parsed, before any body byte is read; req is
 * as for the handler except that body is "" (body_len 0). It may change `body` (see above).
 * Return 0 to go on; anything else answers the request with resp as it is now (set it with
 * httpd_error, e.g. 413 or 401), without reading the body or calling the handler, and closes
 * the connection after the answer (the unread body cannot be told from a next request).
 * ctx is the handler's ctx.
 */
typedef int httpd_head_fn(void *ctx, const struct httpd_req *req, struct httpd_body *body,
			  struct httpd_resp *resp);

/* Limits and hooks; a zero field takes its default. */
struct httpd_opts {
	size_t max_head;             /* bytes of a request head; default 16 KiB */
	size_t max_headers;          /* fields of a request head; default 64 */
	uint64_t max_body;           /* bytes of a body unless on_head says otherwise; default 4 MiB */
	unsigned max_conns;          /* open connections; default 256 (see "connections" above) */
	unsigned idle_timeout_ms;    /* no socket activity at all; default 30000 */
	unsigned head_timeout_ms;    /* from a head's first byte to its end; default 10000 */
	unsigned body_timeout_ms;    /* from the end of the head to the end of the body, ... */
	unsigned body_min_rate;      /* ... plus 1 s per this many bytes received; defaults 60000
				      * ms and 65536 bytes/s */
	httpd_head_fn *on_head;      /* NULL: every request takes max_body, buffered */
	tls_ctx *tls;                /* NULL: plain HTTP; else serve TLS with it (borrowed: it
				      * must outlive the server) */
};

/*
 * Listens on `addr` ("host:port"; port 0 picks one, see httpd_port) and serves on loop l.
 * opts may be NULL for the defaults. Returns 0, or -1 with the reason in e.
 */
__attribute__((warn_unused_result)) int httpd_start(httpd **out, loop *l, const char *addr,
						    const struct httpd_opts *opts, httpd_handler *fn,
						    void *ctx, struct err *e);
/*
 * The two halves of httpd_start, for a process that keeps its listener across a restart
 * (proxy/keeper.h): httpd_listen returns a listening socket (non-blocking, close-on-exec) on
 * addr, or -1 with e set; httpd_start_fd serves one (taken: closed on failure too).
 */
int httpd_listen(const char *addr, struct err *e);
__attribute__((warn_unused_result)) int httpd_start_fd(httpd **out, loop *l, int fd,
						       const struct httpd_opts *opts,
						       httpd_handler *fn, void *ctx, struct err *e);
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
