/*
 * server: the small API server. See server.h for the contract and docs/http.md for the
 * behaviour on the wire.
 *
 * One connection = one input buffer and one output buffer. Requests are parsed from the
 * input buffer in place (the parser never copies); a chunked body is decoded in place right
 * after its head, so the buffer never holds more than max_head + max_body + one read. Every
 * response is appended to the output buffer, which keeps pipelined answers in order; reading
 * pauses while too much output is waiting (the client does not read its answers).
 *
 * A body streamed to a sink (httpd_body.write) is handed over and dropped from the input
 * buffer after every read, so the buffer holds the head and at most a few reads of body.
 *
 * The connection list is kept in order of last activity, idlest first, so that making room
 * at max_conns finds the idlest connection between requests by walking from the front.
 * Each connection has one timer, armed for the nearest of its deadlines (conn_arm).
 *
 * A streamed response (httpd_resp.stream) leaves its connection in a mode of its own: `stream`
 * is set, `closing` too (no further request is parsed), input is read only to see the client's
 * end and dropped, and the owner appends to `out` through httpd_stream_write, which refuses to
 * let the unsent part pass the stream's max_pending and compacts what was sent. The shutdown
 * that follows a closing connection's last answer waits until the stream has ended.
 *
 * TLS (httpd_opts.tls) is a layer under conn_recv/conn_send and nothing above them knows of
 * it; a plain connection takes the same path as before, with one branch. A TLS connection
 * starts in its handshake, which counts as part of its first request's head (head_start is
 * set at accept). Two things differ from a socket: a TLS read may need the socket writable
 * and a TLS write may need it readable (rd_wants_write, wr_wants_read widen the events), and
 * decrypted bytes may wait inside OpenSSL where epoll cannot see them (tls_pending makes the
 * connection come back at once while it still wants to read).
 */
#include "http/server.h"
#include "http/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 65536
#define OUT_PAUSE (4u << 20)    /* stop reading requests while this much output waits */
#define RESP_HEADERS_MAX 16384
#define RESP_BODY_MAX (64u << 20)
#define ACCEPT_BURST 64
#define LINGER_MS 2000          /* after the last answer, drain the client for at most this */
#define LINGER_BYTES (1u << 20) /* ... or this many bytes, before closing */

struct conn {
	struct httpd *srv;
	struct conn *prev, *next;
	int fd;
	char peer[64];
	struct buf in, out;
	size_t out_off;       /* bytes of `out` already written */
	unsigned events;      /* registered with the loop */
	uint64_t last_active; /* loop ms */
	uint64_t timer;
	uint64_t timer_at;    /* loop ms when `timer` fires */
	int closing;          /* no more requests: close once `out` is written */
	int paused;           /* requests wait in `in` until `out` drains below OUT_PAUSE */
	int rd_eof;           /* the client closed its side: serve what is queued, then close */
	uint64_t head_start;  /* loop ms when the pending head's first byte was seen, 0: none */
	uint64_t linger_until; /* != 0: answered and half-closed; reading and dropping input */
	size_t lingered;      /* bytes dropped while lingering */
	/* the request being read (its head is at in.data[0..head_len)) */
	size_t head_len;      /* 0 while the head is incomplete */
	int continue_sent;
	struct http_chunked ck;
	size_t raw_pos;       /* chunked: next raw byte to decode */
	size_t dec_len;       /* chunked: decoded bytes at in.data + head_len */
	struct httpd_body plan; /* this request's body limit and sink (on_head) */
	uint64_t body_start;  /* loop ms when the head ended, while its body is awaited; 0: none */
	uint64_t body_got;    /* body bytes received since body_start */
	uint64_t streamed;    /* body bytes given to plan.write */
	tls_conn *tls;        /* NULL: plain TCP */
	int handshaking;      /* TLS: the handshake is not complete yet */
	int rd_wants_write;   /* TLS: the last read waits for the socket to be writable */
	int wr_wants_read;    /* TLS: the last write waits for the socket to be readable */
	struct httpd_stream *stream; /* a streamed response in progress; NULL: none */
};

struct httpd_stream {
	struct conn *c;
	struct httpd_stream_hooks h;
};

#define STREAM_PENDING_DEFAULT (1u << 20)

struct httpd {
	loop *l;
	int fd;
	struct httpd_opts o;
	httpd_handler *fn;
	void *ctx;
	struct conn *conns;   /* idlest first (least recent activity) */
	struct conn *tail;    /* most recent activity */
	unsigned nconns;
	int port;
	uint64_t accept_timer; /* set while accepting is paused (out of descriptors) */
};

static void conn_close(struct conn *c);
static void conn_timer(loop *l, void *arg);
static void conn_arm(struct conn *c);

static const char *reason(int st)
{
	switch (st) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	}
	return "Unknown";
}

/* Appends s as the inside of a JSON string. */
static int json_escape(struct buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		int rc;
		if (ch == '"' || ch == '\\')
			rc = buf_addf(b, "\\%c", ch);
		else if (ch < 0x20)
			rc = buf_addf(b, "\\u%04x", ch);
		else
			rc = buf_add(b, s, 1);
		if (rc)
			return -1;
	}
	return 0;
}

void httpd_error(struct httpd_resp *resp, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	resp->status = status;
	resp->content_type = "application/json";
	buf_reset(&resp->body);
	if (buf_adds(&resp->body, "{\"error\": \"") || json_escape(&resp->body, msg) ||
	    buf_adds(&resp->body, "\"}\n"))
		buf_reset(&resp->body); /* cannot happen within RESP_BODY_MAX; keep it valid */
}

const char *httpd_header(const struct httpd_req *req, const char *name, char *dst, size_t dstlen)
{
	const struct http_header *hd = http_head_get(req->head, name);
	if (!hd || dstlen == 0)
		return NULL;
	size_t n = hd->value_len < dstlen - 1 ? hd->value_len : dstlen - 1;
	memcpy(dst, hd->value, n);
	dst[n] = 0;
	return dst;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 32;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

const char *httpd_query(const struct httpd_req *req, const char *key, char *dst, size_t dstlen)
{
	const char *q = req->query;
	size_t kl = strlen(key);
	if (dstlen == 0)
		return NULL;
	while (*q) {
		const char *amp = strchr(q, '&');
		size_t n = amp ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', n);
		size_t nl = eq ? (size_t)(eq - q) : n;
		if (nl == kl && memcmp(q, key, kl) == 0) {
			/* decode the value: %XX and '+' as space (form encoding) */
			const char *v = eq ? eq + 1 : q + n;
			const char *ve = q + n;
			size_t o = 0;
			while (v < ve && o + 1 < dstlen) {
				int h1, h2;
				if (*v == '%' && ve - v >= 3 && (h1 = hexval(v[1])) >= 0 &&
				    (h2 = hexval(v[2])) >= 0) {
					dst[o++] = (char)(h1 * 16 + h2);
					v += 3;
				} else {
					dst[o++] = *v == '+' ? ' ' : *v;
					v++;
				}
			}
			dst[o] = 0;
			return dst;
		}
		if (!amp)
			break;
		q = amp + 1;
	}
	return NULL;
}

/* ---- output ---- */

static int out_response(struct conn *c, const struct http_head *h, struct httpd_resp *r,
			int head_only)
{
	struct buf *o = &c->out;
	int st = r->status ? r->status : 200;
	int nobody = st == 204 || st == 304 || st < 200;
	if (buf_addf(o, "HTTP/1.1 %d %s\r\n", st, reason(st)))
		return -1;
	const char *ct = r->content_type ? r->content_type : "application/json";
	if (!nobody && r->stream.start) { /* a stream: the body ends with the connection */
		if (buf_addf(o, "Content-Type: %s\r\n", ct))
			return -1;
	} else if (!nobody && buf_addf(o, "Content-Type: %s\r\nContent-Length: %zu\r\n", ct,
				       r->body.len)) {
		return -1;
	}
	if (c->closing) {
		if (buf_adds(o, "Connection: close\r\n"))
			return -1;
	} else if (h && h->version_minor == 0) {
		if (buf_adds(o, "Connection: keep-alive\r\n"))
			return -1;
	}
	if (buf_add(o, r->headers.data, r->headers.len) || buf_adds(o, "\r\n"))
		return -1;
	if (!nobody && !head_only && buf_add(o, r->body.data, r->body.len))
		return -1;
	return 0;
}

static void resp_init(struct httpd_resp *r)
{
	r->status = 200;
	r->content_type = "application/json";
	buf_init(&r->headers, RESP_HEADERS_MAX);
	buf_init(&r->body, RESP_BODY_MAX);
	memset(&r->stream, 0, sizeof r->stream);
}

static void resp_release(struct httpd_resp *r)
{
	buf_release(&r->headers);
	buf_release(&r->body);
}

/* Answers a framing error and stops reading: after a bad request the byte stream can no
 * longer be trusted to be split into messages the same way as the client meant. */
static int reply_status(struct conn *c, int st, const char *msg)
{
	struct httpd_resp r;
	resp_init(&r);
	httpd_error(&r, st, "%s", msg);
	c->closing = 1;
	int rc = out_response(c, NULL, &r, 0);
	resp_release(&r);
	return rc;
}

/* Ends the sink of the request being read, if it has one (done is called exactly once). */
static void plan_end(struct conn *c)
{
	struct httpd_body p = c->plan;
	memset(&c->plan, 0, sizeof c->plan);
	if (p.write && p.done)
		p.done(p.arg);
}

static int reply_error(struct conn *c, int code)
{
	plan_end(c);
	return reply_status(c, code == HTTP_E_BODY_TOO_LARGE ? 413 : 400, http_strerror(code));
}

/* ---- requests ---- */

/* The body limit is not the parser's: it is checked per request, after on_head. */
static struct http_limits limits(const struct httpd *s)
{
	struct http_limits lim = { s->o.max_head, s->o.max_headers, 0 };
	return lim;
}

/* The input buffer's limit between requests: a head, a default body, one read. */
static size_t in_limit(const struct httpd *s)
{
	return s->o.max_head + (size_t)s->o.max_body + READ_CHUNK;
}

/* Fills req from the head: NUL-terminated method, path and query in one scratch buffer
 * (*scratch, the caller frees it); the body is "". Returns -1 when out of memory. */
static int req_init(struct conn *c, const struct http_head *h, struct httpd_req *req,
		    char **scratch)
{
	const char *t = h->target;
	size_t tl = h->target_len;
	const char *root = NULL; /* "/" when an absolute-form target has an empty path */
	/* absolute-form: drop scheme://authority, keep the path and query */
	if (tl && t[0] != '/' && !(tl == 1 && t[0] == '*')) {
		const char *ss = memchr(t, ':', tl);
		if (ss && (size_t)(t + tl - ss) >= 3 && ss[1] == '/' && ss[2] == '/') {
			const char *p = ss + 3, *end = t + tl;
			while (p < end && *p != '/' && *p != '?')
				p++;
			tl = (size_t)(end - p);
			t = p;
			if (!tl || *p == '?')
				root = "/";
		}
	}
	const char *qm = memchr(t, '?', tl);
	size_t pl = qm ? (size_t)(qm - t) : tl;
	size_t ql = qm ? tl - pl - 1 : 0;
	if (root) {
		t = root;
		pl = 1;
	}
	char *m = malloc(h->method_len + pl + ql + 3);
	*scratch = m;
	if (!m)
		return -1;
	char *path = m + h->method_len + 1, *query = path + pl + 1;
	memcpy(m, h->method, h->method_len);
	m[h->method_len] = 0;
	memcpy(path, t, pl);
	path[pl] = 0;
	if (ql)
		memcpy(query, qm + 1, ql);
	query[ql] = 0;
	struct httpd_req r = { h, m, path, query, "", 0, c->peer, NULL, 0 };
	*req = r;
	return 0;
}

/* Answers a request whose handler asked for a stream: the head and the first bytes, then the
 * owner's start(); or, when it cannot be a stream after all, end() and an ordinary answer. */
static int stream_begin(struct conn *c, const struct http_head *h, struct httpd_resp *r,
			int head_only)
{
	struct httpd_stream_hooks hk = r->stream;
	struct httpd_stream *st = NULL;
	if (r->status == 200 && !head_only && !(st = calloc(1, sizeof *st)))
		httpd_error(r, 500, "out of memory");
	if (!st) {
		memset(&r->stream, 0, sizeof r->stream);
		hk.end(hk.arg);
		return out_response(c, h, r, head_only);
	}
	c->closing = 1; /* no request after this one; "Connection: close" */
	if (out_response(c, h, r, 0)) {
		free(st);
		hk.end(hk.arg);
		return -1;
	}
	st->c = c;
	st->h = hk;
	if (!st->h.max_pending)
		st->h.max_pending = STREAM_PENDING_DEFAULT;
	c->stream = st;
	hk.start(hk.arg, st);
	return 0;
}

static int dispatch(struct conn *c, const struct http_head *h, const char *body, size_t body_len)
{
	struct httpd *s = c->srv;
	struct httpd_req req;
	char *scratch;
	if (req_init(c, h, &req, &scratch))
		return -1;
	req.body = body;
	req.body_len = body_len;
	if (c->plan.write) {
		req.body_sink = c->plan.arg;
		req.body_streamed = c->streamed;
	}
	struct httpd_resp r;
	resp_init(&r);
	if (!h->keep_alive)
		c->closing = 1;
	s->fn(s->ctx, &req, &r);
	int head_only = h->method_len == 4 && memcmp(h->method, "HEAD", 4) == 0;
	int rc;
	if (r.stream.start)
		rc = stream_begin(c, h, &r, head_only);
	else
		rc = out_response(c, h, &r, head_only);
	resp_release(&r);
	free(scratch);
	return rc;
}

/*
 * A new head: asks on_head for the body's limit and sink. Returns 0 to read the body, 1 when
 * the request has been answered without it (the connection is closing), -1 to close now.
 */
static int begin_request(struct conn *c, const struct http_head *h)
{
	struct httpd *s = c->srv;
	memset(&c->plan, 0, sizeof c->plan);
	c->plan.max_body = s->o.max_body;
	c->streamed = 0;
	if (s->o.on_head) {
		struct httpd_req req;
		char *scratch;
		if (req_init(c, h, &req, &scratch))
			return -1;
		struct httpd_body plan = c->plan;
		struct httpd_resp r;
		resp_init(&r);
		int refused = s->o.on_head(s->ctx, &req, &plan, &r);
		free(scratch);
		if (refused) {
			if (plan.write && plan.done)
				plan.done(plan.arg);
			c->closing = 1;
			int rc = out_response(c, h, &r, 0);
			resp_release(&r);
			return rc ? -1 : 1;
		}
		resp_release(&r);
		c->plan = plan;
		if (!c->plan.max_body)
			c->plan.max_body = s->o.max_body;
	}
	if (h->body == HTTP_BODY_LENGTH && h->content_length > c->plan.max_body)
		return reply_error(c, HTTP_E_BODY_TOO_LARGE) ? -1 : 1;
	if (h->body == HTTP_BODY_CHUNKED) {
		http_chunked_init(&c->ck, c->plan.max_body);
		c->raw_pos = c->head_len;
		c->dec_len = 0;
	}
	/* a buffered body may be larger than the default: let this request's fit */
	if (!c->plan.write && h->body != HTTP_BODY_NONE) {
		size_t room = SIZE_MAX - c->head_len - READ_CHUNK;
		size_t want = c->plan.max_body < room ? c->head_len + (size_t)c->plan.max_body + READ_CHUNK
						      : SIZE_MAX;
		if (want > c->in.limit)
			c->in.limit = want;
	}
	c->body_start = h->body != HTTP_BODY_NONE ? loop_now(s->l) : 0;
	c->body_got = 0;
	c->continue_sent = 0;
	return 0;
}

/* Drops the finished request's bytes [0, used) from the input. */
static void request_done(struct conn *c, size_t used)
{
	buf_consume(&c->in, used);
	c->head_len = 0;
	c->continue_sent = 0;
	c->raw_pos = 0;
	c->dec_len = 0;
	c->body_start = 0;
	plan_end(c);
	/* back to the default limit, but never below what is already buffered (pipelined) */
	size_t lim = in_limit(c->srv);
	c->in.limit = c->in.len > lim ? c->in.len : lim;
	/* after a large buffered body, give its memory back instead of keeping it for the
	 * connection's lifetime */
	if (c->in.cap > 2 * lim) {
		struct buf nb;
		buf_init(&nb, c->in.limit);
		if (buf_add(&nb, c->in.data, c->in.len) == 0) {
			buf_release(&c->in);
			c->in = nb;
		} else {
			buf_release(&nb);
		}
	}
}

/* Passes n buffered body bytes at in.data + head_len to the sink and drops them. Returns 0,
 * or 1 when the sink refused them (answered, closing), or -1 to close now. */
static int sink_feed(struct conn *c, size_t n)
{
	if (!n)
		return 0;
	struct err e = { "" };
	char *p = c->in.data + c->head_len;
	int st = c->plan.write(c->plan.arg, p, n, &e);
	if (st) {
		if (st < 400 || st > 599)
			st = 500;
		plan_end(c);
		return reply_status(c, st, e.msg[0] ? e.msg : "request body refused") ? -1 : 1;
	}
	c->streamed += n;
	memmove(p, p + n, c->in.len - c->head_len - n);
	c->in.len -= n;
	c->in.data[c->in.len] = 0;
	return 0;
}

/* Handles as many complete requests as the input holds. Returns -1 when the connection must
 * be closed at once (the caller closes it). */
static int process(struct conn *c)
{
	struct httpd *s = c->srv;
	struct http_limits lim = limits(s);
	struct http_head h;
	c->paused = 0;
	while (!c->closing) {
		if (c->out.len - c->out_off >= OUT_PAUSE) {
			c->paused = c->in.len > 0;
			return 0;
		}
		if (c->head_len == 0) {
			ssize_t r = http_parse_request(c->in.data, c->in.len, &lim, &h);
			if (r == HTTP_E_INCOMPLETE) {
				/* the head must be complete within head_timeout_ms of its first byte,
				 * however slowly it trickles in (slowloris) */
				if (c->in.len && !c->head_start)
					c->head_start = loop_now(s->l);
				return 0;
			}
			c->head_start = 0;
			if (r < 0)
				return reply_error(c, (int)r);
			c->head_len = (size_t)r;
			int rc = begin_request(c, &h);
			if (rc)
				return rc < 0 ? -1 : 0;
		} else {
			/* the buffer may have moved: re-point the head (same bytes, same result) */
			ssize_t r = http_parse_request(c->in.data, c->in.len, &lim, &h);
			if (r != (ssize_t)c->head_len)
				return -1; /* cannot happen: the parser is deterministic */
		}
		int complete;
		size_t used = 0;
		const char *body = c->in.data + c->head_len;
		size_t body_len = 0;
		if (h.body == HTTP_BODY_LENGTH && c->plan.write) {
			uint64_t need = h.content_length - c->streamed;
			size_t have = c->in.len - c->head_len;
			int rc = sink_feed(c, have < need ? have : (size_t)need);
			if (rc)
				return rc < 0 ? -1 : 0;
			complete = c->streamed == h.content_length;
			used = c->head_len;
		} else if (h.body == HTTP_BODY_LENGTH) {
			complete = c->in.len - c->head_len >= h.content_length;
			body_len = (size_t)h.content_length;
			used = c->head_len + body_len;
		} else if (h.body == HTTP_BODY_CHUNKED) {
			char *dst = c->in.data + c->head_len + c->dec_len;
			size_t got = 0;
			ssize_t r = http_chunked_feed(&c->ck, c->in.data + c->raw_pos,
						      c->in.len - c->raw_pos, dst, &got);
			if (r < 0)
				return reply_error(c, (int)r);
			size_t after = c->raw_pos + (size_t)r;
			c->dec_len += got;
			/* close the gap between decoded data and the unread rest */
			size_t keep = c->head_len + c->dec_len;
			memmove(c->in.data + keep, c->in.data + after, c->in.len - after);
			c->in.len -= after - keep;
			c->in.data[c->in.len] = 0;
			c->raw_pos = keep;
			if (c->plan.write) {
				size_t n = c->dec_len;
				c->dec_len = 0;
				c->raw_pos = c->head_len;
				int rc = sink_feed(c, n);
				if (rc)
					return rc < 0 ? -1 : 0;
				keep = c->head_len;
			}
			complete = c->ck.done;
			body_len = c->dec_len;
			used = keep;
		} else {
			complete = 1;
			used = c->head_len;
		}
		if (!complete) {
			int have_body = c->in.len > c->head_len || c->streamed;
			if (h.expect_continue && !c->continue_sent && !have_body) {
				c->continue_sent = 1;
				if (buf_adds(&c->out, "HTTP/1.1 100 Continue\r\n\r\n"))
					return -1;
			}
			return 0;
		}
		/* the body is NUL-terminated for the handler (a convenience for text parsers):
		 * the byte after it belongs to the next request, so it is put back afterwards */
		char saved = c->in.data[used];
		c->in.data[used] = 0;
		int rc = dispatch(c, &h, body, body_len);
		c->in.data[used] = saved;
		if (rc)
			return -1;
		request_done(c, used);
	}
	return 0;
}

/* ---- connection I/O ---- */

static void set_events(struct conn *c, unsigned ev)
{
	if (ev != c->events && loop_mod(c->srv->l, c->fd, ev) == 0)
		c->events = ev;
}

static void list_unlink(struct conn *c)
{
	struct httpd *s = c->srv;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		s->tail = c->prev;
	c->prev = c->next = NULL;
}

static void list_append(struct conn *c)
{
	struct httpd *s = c->srv;
	c->prev = s->tail;
	c->next = NULL;
	if (s->tail)
		s->tail->next = c;
	else
		s->conns = c;
	s->tail = c;
}

static void conn_close(struct conn *c)
{
	struct httpd *s = c->srv;
	if (c->fd < 0)
		return;
	loop_del(s->l, c->fd);
	tls_conn_free(c->tls);
	close(c->fd);
	c->fd = -1;
	if (c->timer)
		loop_timer_cancel(s->l, c->timer);
	plan_end(c); /* a request abandoned in its body: its sink is released */
	if (c->stream) {
		struct httpd_stream *st = c->stream;
		c->stream = NULL;
		st->h.end(st->h.arg);
		free(st);
	}
	list_unlink(c);
	s->nconns--;
	buf_release(&c->in);
	buf_release(&c->out);
	free(c);
}

/* recv(2) and send(2) for plain and TLS connections alike: a count, 0 at the peer's end
 * (reads), or -1 with errno (EAGAIN: wait for the events conn_service chooses). */
static ssize_t conn_recv(struct conn *c, char *p, size_t n)
{
	if (!c->tls)
		return recv(c->fd, p, n, 0);
	ssize_t r = tls_read(c->tls, p, n);
	c->rd_wants_write = r == TLS_WANT_WRITE;
	if (r >= 0)
		return r;
	errno = r == TLS_FAIL ? ECONNRESET : EAGAIN;
	return -1;
}

static ssize_t conn_send(struct conn *c, const char *p, size_t n)
{
	if (!c->tls)
		return send(c->fd, p, n, MSG_NOSIGNAL);
	ssize_t w = tls_write(c->tls, p, n);
	c->wr_wants_read = w == TLS_WANT_READ;
	if (w > 0)
		return w;
	errno = w == TLS_FAIL ? EPIPE : EAGAIN;
	return -1;
}

/* Writes what it can. Frees c when it closes it; returns -1 then. */
static int conn_write(struct conn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t w = conn_send(c, c->out.data + c->out_off, c->out.len - c->out_off);
		if (w > 0) {
			c->out_off += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		conn_close(c);
		return -1;
	}
	if (c->out_off == c->out.len) {
		buf_reset(&c->out);
		c->out_off = 0;
		if (c->closing && !c->stream && !c->linger_until) {
			/* FIN after the answer. Closing now while the client is still sending (a
			 * body we refused) would make the kernel send a reset, which can destroy the
			 * answer before the client reads it: drain for a while first ("lingering
			 * close"), unless the client has already finished. */
			if (c->tls)
				tls_close_notify(c->tls);
			shutdown(c->fd, SHUT_WR);
			if (c->rd_eof) {
				conn_close(c);
				return -1;
			}
			c->linger_until = loop_now(c->srv->l) + LINGER_MS;
			conn_arm(c);
		}
	}
	return 0;
}

/*
 * Runs queued requests and writes their answers until neither makes progress, then chooses
 * the events to wait for. Requests are not read while too much output waits (a client that
 * pipelines without reading its answers must not grow `out` without bound).
 */
static void conn_service(struct conn *c)
{
	for (int round = 0; round < 16; round++) {
		if (!c->closing && process(c)) {
			conn_close(c);
			return;
		}
		int paused = c->paused;
		if (conn_write(c))
			return; /* closed */
		/* the write made room for requests that were waiting: go again */
		if (!paused || c->closing || c->out.len - c->out_off >= OUT_PAUSE)
			break;
	}
	if (c->linger_until) {
		set_events(c, LOOP_READ);
		return;
	}
	conn_arm(c);
	int pending = c->out_off < c->out.len;
	if (c->rd_eof && !c->paused && !pending) {
		conn_close(c); /* nothing more can arrive and nothing is left to answer */
		return;
	}
	if (!c->closing && !c->paused && !c->rd_eof && c->in.len == c->in.limit) {
		conn_close(c); /* cannot happen: a full buffer always holds a whole request */
		return;
	}
	unsigned ev = 0;
	if ((!c->closing || c->stream) && !c->paused && !c->rd_eof)
		ev |= LOOP_READ;
	if (pending || c->paused)
		ev |= LOOP_WRITE; /* paused with nothing pending: come back at once */
	if (c->tls) {
		if (pending && c->wr_wants_read)
			ev |= LOOP_READ;
		/* a read waiting for room to write, or decrypted bytes epoll cannot see: writable
		 * wakes it (at once in the second case, the socket being writable) */
		if ((ev & LOOP_READ) && (c->rd_wants_write || tls_pending(c->tls)))
			ev |= LOOP_WRITE;
	}
	if (!ev)
		ev = LOOP_READ; /* cannot happen; never leave a connection without events */
	set_events(c, ev);
}

/* A stream's client sends nothing we want: read and drop it, and close at its end. Returns -1
 * when the connection was closed. */
static int stream_drain(struct conn *c)
{
	char sink[4096];
	for (int rounds = 0; rounds < 4; rounds++) {
		ssize_t r = conn_recv(c, sink, sizeof sink);
		if (r > 0)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return 0;
		conn_close(c); /* the client's end (or a reset) ends the stream */
		return -1;
	}
	return 0;
}

static void conn_io(loop *l, int fd, unsigned events, void *arg)
{
	struct conn *c = arg;
	c->last_active = loop_now(l);
	if (c->srv->tail != c) { /* the most recently active goes last */
		list_unlink(c);
		list_append(c);
	}
	if (c->linger_until) {
		char sink[16384];
		for (int rounds = 0; rounds < 4; rounds++) {
			ssize_t r = recv(fd, sink, sizeof sink, 0);
			if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
				return;
			c->lingered += r > 0 ? (size_t)r : 0;
			if (r <= 0 || c->lingered > LINGER_BYTES) {
				conn_close(c);
				return;
			}
		}
		return;
	}
	if (c->handshaking) {
		int r = tls_handshake(c->tls);
		if (r == TLS_FAIL) {
			conn_close(c); /* not a TLS client (plain HTTP, a scanner): no answer */
			return;
		}
		if (r) {
			set_events(c, r == TLS_WANT_READ ? LOOP_READ : LOOP_WRITE);
			return;
		}
		c->handshaking = 0;
		events |= LOOP_READ; /* the first request may have come with the handshake's end */
	}
	int can_read = (events & LOOP_READ) || (c->tls && (c->rd_wants_write || tls_pending(c->tls)));
	if (can_read && c->stream && stream_drain(c))
		return; /* closed */
	if (can_read && !c->closing && !c->rd_eof && !c->paused) {
		/* bounded reads per wake-up keep one client from starving the others */
		for (int rounds = 0; rounds < 4; rounds++) {
			size_t room = c->in.limit - c->in.len;
			if (room == 0)
				break;
			size_t want = room < READ_CHUNK ? room : READ_CHUNK;
			char *p = buf_reserve(&c->in, want);
			if (!p) {
				conn_close(c);
				return;
			}
			ssize_t r = conn_recv(c, p, want);
			if (r > 0) {
				buf_commit(&c->in, (size_t)r);
				if (c->body_start)
					c->body_got += (uint64_t)r;
				/* a short socket read means it is empty; TLS reads one record at a time */
				if ((size_t)r < want && !c->tls)
					break;
				continue;
			}
			if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
				break;
			if (r < 0) {
				conn_close(c);
				return;
			}
			c->rd_eof = 1; /* half-close: requests already received are still answered */
			break;
		}
	}
	conn_service(c);
}

/* The nearest moment the connection must be closed at, as things stand. */
static uint64_t conn_deadline(const struct conn *c)
{
	const struct httpd_opts *o = &c->srv->o;
	uint64_t d = c->last_active + o->idle_timeout_ms;
	if (c->head_start && c->head_start + o->head_timeout_ms < d)
		d = c->head_start + o->head_timeout_ms;
	if (c->body_start && c->head_len) {
		/* a fair pace earns time: one second per body_min_rate bytes received */
		uint64_t b = c->body_start + o->body_timeout_ms + c->body_got * 1000 / o->body_min_rate;
		if (b < d)
			d = b;
	}
	if (c->linger_until && c->linger_until < d)
		d = c->linger_until;
	return d;
}

/* Makes sure the timer fires no later than the deadline (deadlines only move later, except
 * when a head or body starts, so a timer due earlier is kept: it re-arms when it fires). */
static void conn_arm(struct conn *c)
{
	loop *l = c->srv->l;
	uint64_t d = conn_deadline(c), now = loop_now(l);
	if (c->timer && c->timer_at <= d)
		return;
	if (c->timer)
		loop_timer_cancel(l, c->timer);
	c->timer_at = d > now ? d : now;
	c->timer = loop_timer(l, c->timer_at - now, conn_timer, c);
}

static void conn_timer(loop *l, void *arg)
{
	struct conn *c = arg;
	c->timer = 0;
	if (loop_now(l) >= conn_deadline(c)) {
		conn_close(c);
		return;
	}
	conn_arm(c);
}

/*
 * At max_conns: closes a connection to make room for a new one. The idlest connection between
 * requests (nothing of a next request received, every answer written, or lingering after its
 * last answer); failing that, the connection whose incomplete head started first. Connections
 * inside a request (a body being read, answers waiting) are never chosen. Returns 0 when one
 * was closed, -1 when every connection is busy.
 */
static int make_room(struct httpd *s)
{
	struct conn *slow = NULL;
	for (struct conn *c = s->conns; c; c = c->next) {
		if (c->linger_until) {
			conn_close(c);
			return 0;
		}
		if (c->stream || c->head_len || c->paused || c->closing || c->out_off < c->out.len)
			continue;
		if (c->in.len == 0 && !c->handshaking) { /* the list is idlest first: this is the one */
			conn_close(c);
			return 0;
		}
		if (c->head_start && (!slow || c->head_start < slow->head_start))
			slow = c;
	}
	if (!slow)
		return -1;
	conn_close(slow);
	return 0;
}

static void accept_resume(loop *l, void *arg)
{
	struct httpd *s = arg;
	s->accept_timer = 0;
	if (loop_mod(l, s->fd, LOOP_READ))
		s->accept_timer = loop_timer(l, 100, accept_resume, s);
}

static void on_accept(loop *l, int fd, unsigned events, void *arg)
{
	struct httpd *s = arg;
	for (int i = 0; i < ACCEPT_BURST; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* the pending connection stays readable: without a pause the loop
				 * would spin on it; try again a little later */
				if (loop_mod(l, fd, 0) == 0)
					s->accept_timer = loop_timer(l, 100, accept_resume, s);
			}
			return; /* EAGAIN, EINTR, ECONNABORTED...: next wake */
		}
		if (s->nconns >= s->o.max_conns && make_room(s)) {
			close(cfd); /* every connection is inside a request: refused */
			continue;
		}
		struct conn *c = calloc(1, sizeof *c);
		if (!c) {
			close(cfd);
			continue;
		}
		c->srv = s;
		c->fd = cfd;
		if (s->o.tls) {
			c->tls = tls_conn_new(s->o.tls, cfd);
			if (!c->tls) {
				close(cfd);
				free(c);
				continue;
			}
			c->handshaking = 1;
			c->head_start = loop_now(l); /* the handshake is part of the first head */
		}
		int one = 1;
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";
		getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, port, sizeof port,
			    NI_NUMERICHOST | NI_NUMERICSERV);
		snprintf(c->peer, sizeof c->peer, "%s:%s", host, port);
		buf_init(&c->in, in_limit(s));
		buf_init(&c->out, BUF_NOLIMIT);
		c->events = LOOP_READ;
		if (loop_add(l, cfd, LOOP_READ, conn_io, c)) {
			tls_conn_free(c->tls);
			close(cfd);
			free(c);
			continue;
		}
		c->last_active = loop_now(l);
		conn_arm(c);
		list_append(c);
		s->nconns++;
	}
}

static int split_addr(const char *addr, char *host, size_t hl, char *port, size_t pl)
{
	const char *colon = strrchr(addr, ':');
	if (!colon)
		return -1;
	const char *h = addr;
	size_t n = (size_t)(colon - addr);
	if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
		h++;
		n -= 2;
	}
	if (n >= hl || strlen(colon + 1) >= pl || !colon[1])
		return -1;
	memcpy(host, h, n);
	host[n] = 0;
	strcpy(port, colon + 1);
	return 0;
}

int httpd_listen(const char *addr, struct err *e)
{
	char host[256], port[16];
	if (split_addr(addr, host, sizeof host, port, sizeof port))
		return err_set(e, "invalid listen address '%s': use host:port", addr);
	struct addrinfo hints = { 0 }, *ai;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
	if (rc)
		return err_set(e, "cannot resolve listen address '%s': %s", addr, gai_strerror(rc));
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		freeaddrinfo(ai);
		return err_set(e, "socket: %s", strerror(errno));
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 128)) {
		int en = errno;
		freeaddrinfo(ai);
		close(fd);
		return err_set(e, "cannot listen on '%s': %s", addr, strerror(en));
	}
	freeaddrinfo(ai);
	return fd;
}

int httpd_start(httpd **out, loop *l, const char *addr, const struct httpd_opts *opts,
		httpd_handler *fn, void *ctx, struct err *e)
{
	*out = NULL;
	int fd = httpd_listen(addr, e);
	if (fd < 0)
		return -1;
	return httpd_start_fd(out, l, fd, opts, fn, ctx, e);
}

int httpd_start_fd(httpd **out, loop *l, int fd, const struct httpd_opts *opts, httpd_handler *fn,
		   void *ctx, struct err *e)
{
	*out = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl)) {
		int en = errno;
		close(fd);
		return err_set(e, "not a listening socket: %s", strerror(en));
	}
	httpd *s = calloc(1, sizeof *s);
	if (!s) {
		close(fd);
		return err_set(e, "out of memory");
	}
	s->l = l;
	s->fd = fd;
	s->fn = fn;
	s->ctx = ctx;
	s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
			((struct sockaddr_in *)&ss)->sin_port);
	struct httpd_opts d = { .max_head = 16384, .max_headers = 64, .max_body = 4u << 20,
				.max_conns = 256, .idle_timeout_ms = 30000, .head_timeout_ms = 10000,
				.body_timeout_ms = 60000, .body_min_rate = 65536 };
	if (opts) {
		if (opts->max_head)
			d.max_head = opts->max_head;
		if (opts->max_headers)
			d.max_headers = opts->max_headers;
		if (opts->max_body)
			d.max_body = opts->max_body;
		if (opts->max_conns)
			d.max_conns = opts->max_conns;
		if (opts->idle_timeout_ms)
			d.idle_timeout_ms = opts->idle_timeout_ms;
		if (opts->head_timeout_ms)
			d.head_timeout_ms = opts->head_timeout_ms;
		if (opts->body_timeout_ms)
			d.body_timeout_ms = opts->body_timeout_ms;
		if (opts->body_min_rate)
			d.body_min_rate = opts->body_min_rate;
		d.on_head = opts->on_head;
		d.tls = opts->tls;
	}
	if (d.max_headers > HTTP_MAX_HEADERS_HARD)
		d.max_headers = HTTP_MAX_HEADERS_HARD;
	s->o = d;
	if (loop_add(l, fd, LOOP_READ, on_accept, s)) {
		int en = errno;
		close(fd);
		free(s);
		return err_set(e, "cannot watch the listener: %s", strerror(en));
	}
	*out = s;
	return 0;
}

int httpd_stream_write(httpd_stream *st, const char *data, size_t len)
{
	struct conn *c = st->c;
	/* what was sent is dropped first, so a stream never holds more than max_pending */
	if (c->out_off) {
		buf_consume(&c->out, c->out_off);
		c->out_off = 0;
	}
	if (c->out.len + len > st->h.max_pending || buf_add(&c->out, data, len)) {
		conn_close(c); /* a client that does not read: dropped, never waited for */
		return -1;
	}
	set_events(c, c->events | LOOP_WRITE);
	return 0;
}

void httpd_stream_close(httpd_stream *st)
{
	struct conn *c = st->c;
	c->stream = NULL;
	st->h.end(st->h.arg);
	free(st);
	set_events(c, c->events | LOOP_WRITE); /* conn_write ends it once `out` is sent */
}

int httpd_port(const httpd *h)
{
	return h->port;
}

void httpd_free(httpd *h)
{
	if (!h)
		return;
	while (h->conns)
		conn_close(h->conns);
	if (h->accept_timer)
		loop_timer_cancel(h->l, h->accept_timer);
	loop_del(h->l, h->fd);
	close(h->fd);
	free(h);
}
