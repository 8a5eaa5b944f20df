/*
 * worker: the data path. See worker.h for the threading model and docs/proxy.md for the
 * behaviour on the wire.
 *
 * A client connection carries one exchange at a time: the request head is parsed from the
 * connection's input buffer, rewritten into its own small buffer (kept for a retry), and the
 * body is streamed from the input buffer straight to the upstream socket; the response head is
 * rewritten into the output buffer and its body streamed from the upstream connection's input
 * buffer straight to the client. Pipelined requests wait in the input buffer and are served in
 * order. Every buffer is allocated once per connection with a fixed size, so a request costs no
 * allocation and a connection never holds more than its buffers, whatever the body size.
 *
 * Sockets are registered once, edge-triggered for reading and writing; rd_ready/wr_ready
 * remember whether the last read or write stopped at EAGAIN, and pump() moves bytes in every
 * direction until nothing moves.
 */
#include "proxy/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "http/parse.h"
#include "loop/loop.h"
#include "proxy/fwd.h"
#include "proxy/vhost.h"
#include "util/log.h"

#define LD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define ST(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

#define IO_BUF_MIN 32768      /* client input: heads and request bodies */
/* Upstream input: a response head with up to 64 KiB of body comes in one read and goes out in
 * one write (with 32 KiB, a 32 KiB answer took two of each); longer bodies are spliced. */
#define UP_BUF_MIN 65536
#define UH_EXTRA 1024         /* room for the X-Forwarded-For / Forwarded we add */
#define POOL_MAX 1024         /* idle upstream connections per backend per worker: above the
                               * concurrency a worker sees, or a busy moment reconnects (256
                               * made 1 request in 5 open a connection at 1,000 clients) */
#define POOL_IDLE_MS 20000    /* close idle upstream connections before servers do (nginx: 60 s) */
#define SWEEP_MS 250
#define ACCEPT_BURST 64
/* Response bodies with a Content-Length go from the upstream socket to the client socket
 * through a pipe (splice: no copy through user space) once the bytes read with the head are
 * out and at least SPLICE_MIN remain. A worker keeps up to PIPE_POOL idle pipes of PIPE_SIZE. */
#define SPLICE_MIN 32768
#define PIPE_SIZE 262144
#define PIPE_POOL 64

/* ---- shared objects ---- */

void route_ref(struct route *r)
{
	__atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED);
}

void backend_unref(struct backend *b)
{
	if (__atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		free(b->w);
		free(b);
	}
}

void route_unref(struct route *r)
{
	if (__atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (size_t i = 0; i < r->cfg.nversions; i++) {
		for (size_t k = 0; k < r->v[i].nb; k++)
			backend_unref(r->v[i].b[k]);
		free(r->v[i].b);
	}
	route_cfg_release(&r->cfg);
	free(r);
}

/* ---- worker-local structures ---- */

/* A worker's reference to one published route, with its own count of requests using it. */
struct wroute {
	struct route *r;
	unsigned users;
	int retired; /* replaced: released when users drops to 0 */
};

/* A listener shared by routes with hosts: its table maps (host, prefix) to their slots. */
struct wshared {
	struct wshared *next;
	worker *w;
	unsigned id;
	int lfd;
	int paused;
	int closed; /* withdrawn: freed with its last connection */
	vhost *t;
	unsigned nconns;
};

struct wslot {
	struct wslot *next;
	worker *w;
	char name[ROUTE_NAME_MAX];
	int lfd;
	int paused; /* accept failed for lack of resources: re-armed by the sweep */
	struct wroute *cur;
	int deleted;
	unsigned nconns;
	struct wshared *sh; /* the shared listener holding cur's hosts, or NULL */
};

enum { RESP_HEAD, RESP_BODY, RESP_DONE };

struct uconn {
	struct uconn *next_idle;
	struct uconn *prev, *next; /* all upstream connections of the worker */
	worker *w;
	struct backend *b;
	struct cconn *c; /* NULL while idle in the pool */
	int fd;
	int connecting, rd_ready, wr_ready, eof, reused, hup;
	uint64_t idle_since;
	char *in;
	size_t start, end, cap;
};

struct cconn {
	struct cconn *prev, *next;
	worker *w;
	struct wslot *slot;  /* accepted on a route's own listener, or NULL */
	struct wshared *sh;  /* accepted on a shared listener (each request finds its route) */
	int fd;
	char ip[INET6_ADDRSTRLEN];
	int v6;
	int rd_ready, wr_ready, eof, hup, closing, busy, dead;
	uint64_t cdl, udl; /* client and upstream deadlines (loop ms), 0 = none */
	char *in;          /* client bytes: [start, end) */
	size_t start, end, cap;
	char *uh;          /* the rewritten request head */
	size_t uh_off, uh_len, uh_cap;
	char *out;         /* response heads and the proxy's own responses */
	size_t out_off, out_len, out_cap;

	/* the exchange in progress (busy) */
	struct wroute *wr;
	struct rversion *ver;
	struct backend *b;
	struct uconn *u;
	int minor, keepalive, close_after, attempts, status, sent_any, resp_any, upstream_keepalive;
	int idempotent; /* RFC 9110 9.2.2: may be re-sent after it (maybe) reached the upstream */
	char method[24];
	size_t method_len;
	enum http_body_kind req_kind;
	uint64_t req_left;
	struct http_chunked req_ch;
	size_t req_scan; /* chunked: bytes up to here are validated body */
	int req_done;
	int resp_state;
	enum http_body_kind resp_kind;
	uint64_t resp_left;
	struct http_chunked resp_ch;
	size_t resp_scan;
	uint64_t t0_us;
	int pipe[2]; /* splicing the response body: [0] read end, [1] write end; -1 when not */
	size_t plen; /* bytes in the pipe */
};

struct worker {
	unsigned id, n;
	struct proxy_limits lim;
	struct http_limits hl;
	unsigned conn_cap;
	loop *l;
	pthread_t th;
	int started;
	int evfd;
	pthread_mutex_t mu;
	struct wmsg *q;
	struct wslot *slots;
	struct wshared *shared;
	struct cconn *conns;
	struct uconn *uconns;
	unsigned nconns;
	int stopping;
	uint64_t sent;    /* messages queued (the admin thread's counter) */
	uint64_t applied; /* messages handled (atomic: written here, read by the admin thread) */
	uint64_t rng;
	unsigned rr;
	struct http_head head; /* scratch: heads are rewritten as soon as they are parsed */
	int pipes[PIPE_POOL][2]; /* idle, empty pipes */
	unsigned npipes;
	int no_splice; /* pipe() or splice() failed once with something else than a shortage */
};

static void pump(struct cconn *c);
static void uconn_free(struct uconn *u);

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t rng_next(worker *w)
{
	/* xorshift64*: per worker, no shared state */
	uint64_t x = w->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	w->rng = x;
	return x * 0x2545F4914F6CDD1Dull;
}

/* ---- routes as seen by this worker ---- */

static void wroute_put(worker *w, struct wroute *wr)
{
	if (--wr->users > 0 || !wr->retired)
		return;
	/* Nothing of this worker uses the old route any more: idle connections to backends that
	 * left the route can go (in-flight ones were closed instead of pooled). */
	struct route *r = wr->r;
	for (size_t i = 0; i < r->cfg.nversions; i++)
		for (size_t k = 0; k < r->v[i].nb; k++) {
			struct backend *b = r->v[i].b[k];
			if (!LD(&b->removed))
				continue;
			struct backend_w *bw = &b->w[w->id];
			while (bw->idle) {
				struct uconn *u = bw->idle;
				bw->idle = u->next_idle;
				bw->nidle--;
				uconn_free(u);
			}
		}
	route_unref(r);
	free(wr);
}

static void wroute_retire(worker *w, struct wroute *wr)
{
	if (!wr)
		return;
	wr->retired = 1;
	wr->users++;
	wroute_put(w, wr);
}

/* ---- upstream connections ---- */

static void uconn_free(struct uconn *u)
{
	worker *w = u->w;
	if (u->fd >= 0) {
		loop_close(w->l, u->fd);
	}
	if (u->prev)
		u->prev->next = u->next;
	else
		w->uconns = u->next;
	if (u->next)
		u->next->prev = u->prev;
	free(u);
}

static void pool_remove(struct uconn *u)
{
	struct backend_w *bw = &u->b->w[u->w->id];
	for (struct uconn **p = &bw->idle; *p; p = &(*p)->next_idle)
		if (*p == u) {
			*p = u->next_idle;
			bw->nidle--;
			return;
		}
}

static void upstream_io(loop *l, int fd, unsigned events, void *arg)
{
	struct uconn *u = arg;
	if (events & LOOP_RDHUP)
		u->hup = 1;
	if (events & LOOP_READ)
		u->rd_ready = 1;
	if (events & LOOP_WRITE)
		u->wr_ready = 1;
	if (u->c) {
		pump(u->c);
		return;
	}
	if (!(events & LOOP_READ))
		return;
	/* Idle in the pool: the server closed it, or sent bytes nobody asked for. Either way it
	 * cannot carry another request. */
	char ch;
	ssize_t n = recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (u->b)
		pool_remove(u);
	uconn_free(u);
}

static struct uconn *uconn_new(worker *w, struct backend *b)
{
	size_t cap = w->lim.max_head + 1 > UP_BUF_MIN ? w->lim.max_head + 1 : UP_BUF_MIN;
	struct uconn *u = malloc(sizeof(*u) + cap);
	if (!u) {
		errno = ENOMEM;
		return NULL;
	}
	memset(u, 0, sizeof(*u));
	u->in = (char *)(u + 1);
	u->cap = cap;
	u->w = w;
	u->b = b;
	u->fd = socket(b->addr.sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (u->fd < 0) {
		int err = errno;
		free(u);
		errno = err; /* the caller tells our shortage (EMFILE...) from the backend's failure */
		return NULL;
	}
	int one = 1;
	setsockopt(u->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	u->next = w->uconns;
	if (w->uconns)
		w->uconns->prev = u;
	w->uconns = u;
	if (connect(u->fd, (struct sockaddr *)&b->addr.sa, b->addr.salen) < 0) {
		if (errno != EINPROGRESS) {
			int err = errno;
			uconn_free(u);
			errno = err;
			return NULL;
		}
		u->connecting = 1;
	} else {
		u->wr_ready = 1;
	}
	if (loop_add(w->l, u->fd, LOOP_READ | LOOP_WRITE | LOOP_EDGE | LOOP_RDHUP, upstream_io, u)) {
		uconn_free(u);
		errno = ENOMEM;
		return NULL;
	}
	return u;
}

/* Takes an idle pooled connection or opens one. NULL: the connect failed at once. */
static struct uconn *uconn_get(worker *w, struct backend *b)
{
	struct backend_w *bw = &b->w[w->id];
	while (bw->idle) {
		struct uconn *u = bw->idle;
		bw->idle = u->next_idle;
		bw->nidle--;
		u->next_idle = NULL;
		u->reused = 1;
		return u;
	}
	return uconn_new(w, b);
}

/* Returns a connection whose exchange ended cleanly to its pool, or closes it. */
static void uconn_release(struct uconn *u, int reusable)
{
	worker *w = u->w;
	u->c = NULL;
	if (!reusable || u->eof || u->start != u->end || !u->b || LD(&u->b->removed) || w->stopping ||
	    u->b->w[w->id].nidle >= POOL_MAX) {
		uconn_free(u);
		return;
	}
	struct backend_w *bw = &u->b->w[w->id];
	u->start = u->end = 0;
	u->idle_since = loop_now(w->l);
	u->next_idle = bw->idle;
	bw->idle = u;
	bw->nidle++;
}

/* ---- backends: choice and passive health ---- */

static int backend_usable(const struct backend *b, uint64_t now)
{
	return LD(&b->ejected_until) <= now;
}

static struct backend *pick_backend(worker *w, const struct rversion *v, const struct backend *avoid)
{
	uint64_t now = loop_now(w->l);
	struct backend *best = NULL, *any = NULL;
	size_t start = v->nb > 1 ? w->rr++ % v->nb : 0;
	for (size_t k = 0; k < v->nb; k++) {
		struct backend *b = v->b[(start + k) % v->nb];
		if (b == avoid)
			continue;
		if (!any)
			any = b;
		if (!backend_usable(b, now))
			continue;
		/* least in flight (this worker's view), round robin among equals */
		if (!best || b->w[w->id].in_flight < best->w[w->id].in_flight)
			best = b;
	}
	return best ? best : any; /* all ejected: ejection never empties a version */
}

static void backend_failed(worker *w, const struct rversion *v, struct backend *b)
{
	unsigned f = __atomic_add_fetch(&b->fails, 1, __ATOMIC_RELAXED);
	if (f < PROXY_EJECT_FAILS)
		return;
	uint64_t now = loop_now(w->l);
	size_t others = 0;
	for (size_t k = 0; k < v->nb; k++)
		if (v->b[k] != b && backend_usable(v->b[k], now))
			others++;
	if (!others)
		return;
	ST(&b->ejected_until, now + PROXY_EJECT_MS);
	ST(&b->fails, 0);
	log_warn("proxy: backend %s ejected for %d ms after %u consecutive upstream errors",
		 b->addr.text, PROXY_EJECT_MS, f);
}

static void backend_ok(struct backend *b)
{
	if (LD(&b->fails))
		ST(&b->fails, 0);
}

static void inflight_add(worker *w, struct backend *b, int d)
{
	struct backend_w *bw = &b->w[w->id];
	ST(&bw->in_flight, bw->in_flight + d);
}

/* ---- client connections ---- */

static void conn_list_remove(struct cconn *c)
{
	worker *w = c->w;
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
}

/* Whether the connection's listener went away (its route deleted, its shared listener
 * withdrawn): the connection closes after its exchange. */
static int conn_gone(const struct cconn *c)
{
	return c->slot ? c->slot->deleted : c->sh->closed;
}

static void shared_free(struct wshared *sh)
{
	vhost_free(sh->t);
	free(sh);
}

/* ---- pipes for splice ---- */

/* Gives c an empty pipe (from the pool or new). Returns 0, or -1 (copy the body instead). */
static int pipe_take(struct cconn *c)
{
	worker *w = c->w;
	if (w->no_splice)
		return -1;
	if (w->npipes) {
		w->npipes--;
		c->pipe[0] = w->pipes[w->npipes][0];
		c->pipe[1] = w->pipes[w->npipes][1];
		return 0;
	}
	if (pipe2(c->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
		c->pipe[0] = c->pipe[1] = -1;
		return -1;
	}
	/* a larger pipe moves a large body in fewer calls; the default (64 KiB) still works */
	(void)fcntl(c->pipe[1], F_SETPIPE_SZ, PIPE_SIZE);
	return 0;
}

/* Returns c's pipe to the pool when it is empty, else closes it (its bytes are lost anyway). */
static void pipe_put(struct cconn *c)
{
	worker *w = c->w;
	if (c->pipe[0] < 0)
		return;
	if (c->plen == 0 && w->npipes < PIPE_POOL && !w->stopping) {
		w->pipes[w->npipes][0] = c->pipe[0];
		w->pipes[w->npipes][1] = c->pipe[1];
		w->npipes++;
	} else {
		close(c->pipe[0]);
		close(c->pipe[1]);
	}
	c->pipe[0] = c->pipe[1] = -1;
	c->plen = 0;
}

/* Ends the exchange: metrics, backend and route bookkeeping, the upstream connection. */
static void exchange_end(struct cconn *c, int status, int upstream_error, int upstream_reusable)
{
	worker *w = c->w;
	if (!c->busy)
		return;
	metrics_end(c->ver->m, w->id, status, upstream_error, now_us() - c->t0_us);
	if (c->b)
		inflight_add(w, c->b, -1);
	if (c->u)
		uconn_release(c->u, upstream_reusable);
	pipe_put(c);
	c->u = NULL;
	c->b = NULL;
	c->busy = 0;
	c->udl = 0;
	wroute_put(w, c->wr);
	c->wr = NULL;
	c->ver = NULL;
	if (c->close_after || conn_gone(c) || w->stopping)
		c->closing = 1;
	c->cdl = loop_now(w->l) + w->lim.client_timeout_ms;
}

static void cconn_close(struct cconn *c)
{
	worker *w = c->w;
	if (c->dead)
		return;
	if (c->busy)
		exchange_end(c, 0, 0, 0);
	loop_close(w->l, c->fd);
	c->dead = 1;
	conn_list_remove(c);
	w->nconns--;
	if (c->slot && --c->slot->nconns == 0 && c->slot->deleted) {
		/* the slot was unlinked when deleted; the last connection frees it */
		free(c->slot);
	}
	if (c->sh && --c->sh->nconns == 0 && c->sh->closed)
		shared_free(c->sh); /* likewise, unlinked when withdrawn */
	if (w->stopping && w->nconns == 0)
		loop_stop(w->l);
}

/* Queues a response of the proxy's own; the connection closes after it when `close`. */
static void send_simple(struct cconn *c, int status, const char *reason, const char *body, int close)
{
	long n = fwd_simple_response(status, reason, body, close, c->out + c->out_len,
				     c->out_cap - c->out_len);
	if (n > 0)
		c->out_len += (size_t)n;
	if (close) {
		c->close_after = 1;
		if (!c->busy)
			c->closing = 1;
	}
}

static int parse_status(int code, const char **reason)
{
	switch (code) {
	case HTTP_E_HEAD_TOO_LARGE:
	case HTTP_E_TOO_MANY_HEADERS:
		*reason = "Request Header Fields Too Large";
		return 431;
	case HTTP_E_BODY_TOO_LARGE:
		*reason = "Content Too Large";
		return 413;
	default:
		*reason = "Bad Request";
		return 400;
	}
}

static size_t choose_version(worker *w, const struct route *r, const struct http_head *h)
{
	const struct route_cfg *cfg = &r->cfg;
	if (cfg->pin_header[0]) {
		const struct http_header *p = http_head_get(h, cfg->pin_header);
		if (p) {
			int i = route_find_version(cfg, p->value, p->value_len);
			if (i >= 0)
				return (size_t)i;
		}
	}
	if (cfg->sticky == ROUTE_STICKY_HEADER) {
		const struct http_header *p = http_head_get(h, cfg->sticky_name);
		if (p && p->value_len)
			return route_pick_sticky(cfg, p->value, p->value_len);
	} else if (cfg->sticky == ROUTE_STICKY_COOKIE) {
		for (size_t i = 0; i < h->nheaders; i++) {
			const struct http_header *f = &h->headers[i];
			const char *v;
			size_t vl;
			if (f->name_len == 6 && !strncasecmp(f->name, "cookie", 6) &&
			    route_cookie_find(f->value, f->value_len, cfg->sticky_name, &v, &vl) && vl)
				return route_pick_sticky(cfg, v, vl);
		}
	}
	uint64_t x = (uint64_t)(((unsigned __int128)rng_next(w) * cfg->total_weight) >> 64);
	return route_pick_weighted(cfg, x);
}

/* Connects the exchange to backend c->b (or another when the connect fails at once). */
static int exchange_connect(struct cconn *c)
{
	worker *w = c->w;
	for (;;) {
		c->attempts++;
		c->u = uconn_get(w, c->b);
		if (c->u) {
			c->u->c = c;
			c->udl = loop_now(w->l) + w->lim.upstream_timeout_ms;
			return 0;
		}
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			return -2; /* the proxy's own shortage: not the backend's fault */
		backend_failed(w, c->ver, c->b);
		struct backend *nb = c->attempts < 2 ? pick_backend(w, c->ver, c->b) : NULL;
		if (!nb || nb == c->b)
			return -1;
		inflight_add(w, c->b, -1);
		c->b = nb;
		inflight_add(w, c->b, 1);
	}
}

/* Answers a failed exchange with 502/504, or cuts the connection when the response started. */
static void answer_failure(struct cconn *c, int timeout)
{
	if (c->resp_any) {
		/* part of the response is already out: the client can only see a cut connection */
		c->close_after = 1;
		exchange_end(c, 502, 1, 0);
		c->closing = 1;
		return;
	}
	int st = timeout ? 504 : 502;
	if (!c->req_done)
		c->close_after = 1; /* the rest of the body is still coming: no way to resync */
	exchange_end(c, st, 1, 0);
	send_simple(c, st, timeout ? "Gateway Timeout" : "Bad Gateway",
		    timeout ? "upstream timed out\n" : "upstream connection failed\n", c->close_after);
}

/* The upstream connection failed before the exchange could finish: retry, or answer. */
static void upstream_failed(struct cconn *c, int timeout)
{
	worker *w = c->w;
	struct uconn *u = c->u;
	int reused = u ? u->reused : 0, connect_failed = u ? u->connecting : 1;
	if (u) {
		u->c = NULL;
		uconn_free(u);
		c->u = NULL;
	}
	int intact = !c->sent_any || c->req_kind == HTTP_BODY_NONE; /* all of it can be resent */
	if (!c->resp_any && !timeout && intact) {
		/* A pooled connection that failed before any response byte: most likely the server
		 * closed it while idle, not the backend's fault. But once bytes of the request went
		 * out, the server may have received and acted on it, so only an idempotent request
		 * may go again (RFC 9110 9.2.2); the others get the 502 below, as nginx does. */
		if (reused && !connect_failed && c->attempts < 3 && (c->idempotent || !c->sent_any)) {
			c->uh_off = 0;
			c->sent_any = 0;
			c->attempts++;
			c->u = uconn_new(w, c->b);
			if (c->u) {
				c->u->c = c;
				c->udl = loop_now(w->l) + w->lim.upstream_timeout_ms;
				return;
			}
		}
		if (connect_failed || !c->sent_any) {
			/* nothing of the request reached a server: once more on another backend */
			backend_failed(w, c->ver, c->b);
			struct backend *nb = c->attempts < 2 ? pick_backend(w, c->ver, c->b) : NULL;
			if (nb && nb != c->b) {
				inflight_add(w, c->b, -1);
				c->b = nb;
				inflight_add(w, c->b, 1);
				c->uh_off = 0;
				c->sent_any = 0;
				if (exchange_connect(c) == 0)
					return;
			}
			answer_failure(c, 0);
			return;
		}
	}
	backend_failed(w, c->ver, c->b);
	answer_failure(c, timeout);
}

/*
 * The route of a request on a shared listener: by its Host and the path of its origin-form
 * target, read back from the rewritten head in c->uh[0..uhlen) ("METHOD SP target SP ...").
 * No route: 421 when no route serves the host (RFC 9110 15.5.20: the request was directed at a
 * server that cannot answer authoritatively for that origin, and a client may retry it on
 * another connection), 404 when the host is served but not that path, 400 without a usable
 * Host; the connection stays open after 421 and 404 (the next request may name another host).
 */
static struct wroute *route_by_host(struct cconn *c, const struct http_head *h, size_t uhlen)
{
	const struct http_header *hf = http_head_get(h, "host");
	const char *t = c->uh + h->method_len + 1, *end = c->uh + uhlen;
	const char *sp = memchr(t, ' ', (size_t)(end - t));
	void *slot = NULL;
	enum vhost_result r = vhost_find(c->sh->t, hf ? hf->value : NULL, hf ? hf->value_len : 0, t,
					 sp ? (size_t)(sp - t) : 0, &slot);
	if (r == VHOST_FOUND && ((struct wslot *)slot)->cur)
		return ((struct wslot *)slot)->cur;
	/* the connection goes on only when nothing of this request is left to skip */
	int close = !h->keep_alive || h->version_minor == 0 ||
		    !(h->body == HTTP_BODY_NONE || (h->body == HTTP_BODY_LENGTH && h->content_length == 0));
	if (r == VHOST_BAD_HOST)
		send_simple(c, 400, "Bad Request", "a shared listener routes by Host: a host name is required\n", 1);
	else if (r == VHOST_NO_PATH)
		send_simple(c, 404, "Not Found", "no route for this path on this host\n", close);
	else
		send_simple(c, 421, "Misdirected Request", "no route for this host\n", close);
	return NULL;
}

/* Parses the next request head in c->in and starts its exchange. Returns 1 on progress. */
static int exchange_start(struct cconn *c)
{
	worker *w = c->w;
	struct http_head *h = &w->head;
	ssize_t n = http_parse_request(c->in + c->start, c->end - c->start, &w->hl, h);
	if (n == HTTP_E_INCOMPLETE)
		return 0;
	if (n < 0) {
		const char *reason;
		int st = parse_status((int)n, &reason);
		char body[128];
		snprintf(body, sizeof(body), "%s\n", http_strerror((int)n));
		send_simple(c, st, reason, body, 1);
		return 1;
	}
	if (h->method_len == 7 && !memcmp(h->method, "CONNECT", 7)) {
		send_simple(c, 405, "Method Not Allowed", "CONNECT is not supported\n", 1);
		return 1;
	}
	struct wroute *wr = c->slot ? c->slot->cur : NULL;
	if (c->slot && !wr) {
		send_simple(c, 503, "Service Unavailable", "route is being removed\n", 1);
		return 1;
	}
	long hl = fwd_request_head(h, c->ip, c->v6, c->uh, c->uh_cap);
	if (hl == FWD_E_TARGET_HOST) {
		send_simple(c, 400, "Bad Request", "the absolute-form target's authority differs from Host\n", 1);
		return 1;
	}
	if (hl == FWD_E_TARGET) {
		send_simple(c, 400, "Bad Request",
			    "an absolute-form target must be http(s)://host[:port] without userinfo\n", 1);
		return 1;
	}
	if (hl < 0) {
		send_simple(c, 431, "Request Header Fields Too Large", "head too large once forwarded\n", 1);
		return 1;
	}
	if (!wr && !(wr = route_by_host(c, h, (size_t)hl))) {
		if (!c->close_after)
			c->start += (size_t)n; /* answered; the next request may follow */
		return 1;
	}
	c->busy = 1;
	c->t0_us = now_us();
	c->wr = wr;
	wr->users++;
	c->ver = &wr->r->v[choose_version(w, wr->r, h)];
	metrics_begin(c->ver->m, w->id);
	c->uh_len = (size_t)hl;
	c->uh_off = 0;
	c->minor = h->version_minor;
	c->keepalive = h->keep_alive;
	c->close_after = !h->keep_alive;
	c->method_len = h->method_len < sizeof(c->method) ? h->method_len : sizeof(c->method) - 1;
	memcpy(c->method, h->method, c->method_len);
	c->idempotent = fwd_method_idempotent(h->method, h->method_len);
	c->req_kind = h->body;
	c->req_left = h->content_length;
	c->req_done = h->body == HTTP_BODY_NONE || (h->body == HTTP_BODY_LENGTH && h->content_length == 0);
	if (h->body == HTTP_BODY_CHUNKED)
		http_chunked_init(&c->req_ch, w->lim.max_body);
	c->start += (size_t)n;
	c->req_scan = c->start;
	c->attempts = 0;
	c->sent_any = c->resp_any = 0;
	c->status = 0;
	c->resp_state = RESP_HEAD;
	c->cdl = loop_now(w->l) + w->lim.client_timeout_ms;
	c->b = pick_backend(w, c->ver, NULL);
	inflight_add(w, c->b, 1);
	int rc = exchange_connect(c);
	if (rc == -2) {
		c->close_after = !c->req_done;
		exchange_end(c, 503, 0, 0);
		send_simple(c, 503, "Service Unavailable", "proxy out of file descriptors or memory\n",
			    c->close_after);
	} else if (rc) {
		answer_failure(c, 0);
	}
	return 1;
}

/* Body bytes of the request at c->in + c->start that may be sent now. -1: bad chunked body. */
static ssize_t req_ready(struct cconn *c)
{
	size_t avail = c->end - c->start;
	switch (c->req_kind) {
	case HTTP_BODY_LENGTH:
		return (ssize_t)(avail < c->req_left ? avail : c->req_left);
	case HTTP_BODY_CHUNKED:
		if (!c->req_ch.done && c->req_scan < c->end) {
			ssize_t k = http_chunked_feed(&c->req_ch, c->in + c->req_scan, c->end - c->req_scan,
						      NULL, NULL);
			if (k < 0)
				return k;
			c->req_scan += (size_t)k;
		}
		return (ssize_t)(c->req_scan - c->start);
	default:
		return 0;
	}
}

static void req_sent(struct cconn *c, size_t k)
{
	c->start += k;
	if (c->req_kind == HTTP_BODY_LENGTH) {
		c->req_left -= k;
		c->req_done = c->req_left == 0;
	} else if (c->req_kind == HTTP_BODY_CHUNKED) {
		c->req_done = c->req_ch.done && c->start == c->req_scan;
	}
}

static ssize_t resp_ready(struct cconn *c)
{
	struct uconn *u = c->u;
	size_t avail = u->end - u->start;
	switch (c->resp_kind) {
	case HTTP_BODY_LENGTH:
		return (ssize_t)(avail < c->resp_left ? avail : c->resp_left);
	case HTTP_BODY_CHUNKED:
		if (!c->resp_ch.done && c->resp_scan < u->end) {
			ssize_t k = http_chunked_feed(&c->resp_ch, u->in + c->resp_scan, u->end - c->resp_scan,
						      NULL, NULL);
			if (k < 0)
				return k;
			c->resp_scan += (size_t)k;
		}
		return (ssize_t)(c->resp_scan - u->start);
	case HTTP_BODY_UNTIL_CLOSE:
		return (ssize_t)avail;
	default:
		return 0;
	}
}

static int resp_complete(const struct cconn *c)
{
	const struct uconn *u = c->u;
	switch (c->resp_kind) {
	case HTTP_BODY_LENGTH:
		return c->resp_left == 0;
	case HTTP_BODY_CHUNKED:
		return c->resp_ch.done && u->start == c->resp_scan;
	case HTTP_BODY_UNTIL_CLOSE:
		return u->eof && u->start == u->end;
	default:
		return 1;
	}
}

/* Reads into buf[*end..cap). Returns bytes read (0: nothing now), or -1 on a socket error. */
static ssize_t read_some(int fd, char *buf, size_t *end, size_t cap, int *ready, int *eof, int hup)
{
	ssize_t total = 0;
	while (*ready && *end < cap) {
		size_t want = cap - *end;
		ssize_t n = read(fd, buf + *end, want);
		if (n > 0) {
			*end += (size_t)n;
			total += n;
			/* A short read emptied the socket: the next arrival raises a new edge, so no
			 * read-until-EAGAIN, unless the peer's FIN is already queued (RDHUP): then
			 * read on to see the end of file now. */
			if ((size_t)n < want && !hup) {
				*ready = 0;
				break;
			}
			continue;
		}
		if (n == 0) {
			*eof = 1;
			*ready = 0;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN)
			*ready = 0;
		else
			return -1;
	}
	return total;
}

/* Writes iov; returns bytes written (0: would block), or -1 on a socket error. */
static ssize_t write_some(int fd, struct iovec *iov, int n, int *ready)
{
	size_t want = 0;
	for (int i = 0; i < n; i++)
		want += iov[i].iov_len;
	if (!want)
		return 0;
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
	ssize_t k = sendmsg(fd, &mh, MSG_NOSIGNAL);
	if (k < 0) {
		if (errno == EAGAIN || errno == EINTR) {
			if (errno == EAGAIN)
				*ready = 0;
			return 0;
		}
		return -1;
	}
	if ((size_t)k < want)
		*ready = 0; /* the socket buffer is full: wait for the next EPOLLOUT edge */
	return k;
}

/* Compacts an input buffer so that a read has room. */
static void compact(char *buf, size_t *start, size_t *end, size_t *scan)
{
	if (*start == 0)
		return;
	memmove(buf, buf + *start, *end - *start);
	if (scan)
		*scan -= *start;
	*end -= *start;
	*start = 0;
}

/* Upstream side of the exchange: send the request, read and rewrite the response head. */
static int pump_upstream(struct cconn *c)
{
	worker *w = c->w;
	struct uconn *u = c->u;
	int progress = 0;
	if (u->connecting) {
		if (!u->wr_ready)
			return 0;
		int err = 0;
		socklen_t el = sizeof(err);
		getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err) {
			upstream_failed(c, 0);
			return 1;
		}
		u->connecting = 0;
		progress = 1;
	}
	/* request: head, then the body bytes available */
	if (u->wr_ready && (c->uh_off < c->uh_len || !c->req_done)) {
		ssize_t ready = req_ready(c);
		if (ready < 0) {
			/* the client's chunked body is invalid or too large: answer, close both sides */
			int big = ready == HTTP_E_BODY_TOO_LARGE;
			c->close_after = 1;
			exchange_end(c, big ? 413 : 400, 0, 0);
			if (c->resp_any)
				c->closing = 1;
			else
				send_simple(c, big ? 413 : 400, big ? "Content Too Large" : "Bad Request",
					    big ? "body too large\n" : "invalid chunked body\n", 1);
			return 1;
		}
		struct iovec iov[2] = {{c->uh + c->uh_off, c->uh_len - c->uh_off},
				       {c->in + c->start, (size_t)ready}};
		ssize_t k = write_some(u->fd, iov, 2, &u->wr_ready);
		if (k < 0) {
			upstream_failed(c, 0);
			return 1;
		}
		if (k > 0) {
			progress = 1;
			c->sent_any = 1;
			size_t kh = (size_t)k < c->uh_len - c->uh_off ? (size_t)k : c->uh_len - c->uh_off;
			c->uh_off += kh;
			if ((size_t)k > kh)
				req_sent(c, (size_t)k - kh);
			c->udl = loop_now(w->l) + w->lim.upstream_timeout_ms;
		}
	}
	/* response bytes */
	if (u->end == u->cap && u->start > 0)
		compact(u->in, &u->start, &u->end, &c->resp_scan);
	if (c->resp_state == RESP_BODY && c->resp_kind == HTTP_BODY_LENGTH && c->pipe[0] < 0 &&
	    u->start == u->end && c->resp_left >= SPLICE_MIN)
		(void)pipe_take(c); /* the rest of a long body goes through a pipe, when one is free */
	if (u->rd_ready && u->end < u->cap && c->pipe[0] < 0) {
		ssize_t k = read_some(u->fd, u->in, &u->end, u->cap, &u->rd_ready, &u->eof,
				      u->hup || c->resp_kind == HTTP_BODY_UNTIL_CLOSE);
		if (k < 0) {
			upstream_failed(c, 0);
			return 1;
		}
		if (k > 0) {
			progress = 1;
			c->udl = loop_now(w->l) + w->lim.upstream_timeout_ms;
		}
	}
	while (c->resp_state == RESP_HEAD && c->busy) {
		struct http_head *h = &w->head;
		ssize_t n = http_parse_response(u->in + u->start, u->end - u->start, &w->hl, c->method,
						c->method_len, h);
		if (n == HTTP_E_INCOMPLETE) {
			if (u->eof || u->end == u->cap) {
				upstream_failed(c, 0);
				return 1;
			}
			break;
		}
		if (n < 0 || h->status == 101) {
			log_warn("proxy: invalid response from %s: %s", c->b->addr.text,
				 n < 0 ? http_strerror((int)n) : "unexpected 101");
			backend_failed(w, c->ver, c->b);
			struct uconn *uu = c->u;
			uu->c = NULL;
			uconn_free(uu);
			c->u = NULL;
			answer_failure(c, 0);
			return 1;
		}
		int close = c->close_after || !c->keepalive || h->body == HTTP_BODY_UNTIL_CLOSE ||
			    conn_gone(c) || w->stopping;
		if (h->status >= 200)
			c->close_after = close;
		long hl = fwd_response_head(h, c->minor, close, c->out + c->out_len, c->out_cap - c->out_len);
		if (hl < 0) {
			upstream_failed(c, 0);
			return 1;
		}
		c->out_len += (size_t)hl;
		c->resp_any = 1;
		u->start += (size_t)n;
		progress = 1;
		if (h->status < 200)
			continue; /* 1xx: forwarded, the final response follows */
		c->status = h->status;
		c->resp_kind = h->body;
		c->resp_left = h->content_length;
		c->resp_scan = u->start;
		c->resp_state = RESP_BODY;
		c->upstream_keepalive = h->keep_alive && c->minor == 1;
		if (h->body == HTTP_BODY_CHUNKED)
			http_chunked_init(&c->resp_ch, 0);
	}
	return progress;
}

/*
 * The response body through c's pipe: fill it from the upstream when it is empty, drain it to
 * the client. Only a call that fails with EAGAIN says a socket is exhausted or full (a short
 * splice can also mean the pipe ran out of slots). Returns 1 on progress, -1 when c was closed.
 */
static int pump_splice(struct cconn *c)
{
	worker *w = c->w;
	struct uconn *u = c->u;
	int progress = 0;
	if (c->plen == 0 && u->rd_ready && c->resp_left > 0) {
		size_t want = c->resp_left < PIPE_SIZE ? (size_t)c->resp_left : PIPE_SIZE;
		ssize_t n = splice(u->fd, NULL, c->pipe[1], NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0) {
			c->plen = (size_t)n;
			progress = 1;
			c->udl = loop_now(w->l) + w->lim.upstream_timeout_ms;
		} else if (n == 0) {
			u->eof = 1; /* cut in the middle of the body: pump() sees it */
			u->rd_ready = 0;
			progress = 1;
		} else if (errno == EAGAIN) {
			u->rd_ready = 0;
		} else if (errno != EINTR) {
			upstream_failed(c, 0);
			return 1;
		}
	}
	if (c->plen > 0 && c->wr_ready) {
		ssize_t n = splice(c->pipe[0], NULL, c->fd, NULL, c->plen,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK | (c->resp_left > c->plen ? SPLICE_F_MORE : 0));
		if (n > 0) {
			c->plen -= (size_t)n;
			c->resp_left -= (uint64_t)n;
			progress = 1;
			c->cdl = loop_now(w->l) + w->lim.client_timeout_ms;
			c->udl = loop_now(w->l) + w->lim.upstream_timeout_ms;
		} else if (n < 0 && errno == EAGAIN) {
			c->wr_ready = 0;
		} else if (n < 0 && errno != EINTR) {
			cconn_close(c);
			return -1;
		}
	}
	return progress;
}

/* Moves bytes in every direction until nothing moves; frees c when it was closed. */
static void pump(struct cconn *c)
{
	worker *w = c->w;
	while (!c->dead) {
		int progress = 0;
		/* client bytes: the current body, or heads of the next (pipelined) requests */
		if (c->rd_ready && !c->eof && !c->closing) {
			if (c->end == c->cap && c->start > 0)
				compact(c->in, &c->start, &c->end, c->busy ? &c->req_scan : NULL);
			size_t before = c->end;
			ssize_t k = read_some(c->fd, c->in, &c->end, c->cap, &c->rd_ready, &c->eof, c->hup);
			if (k < 0) {
				cconn_close(c);
				break;
			}
			if (k > 0) {
				progress = 1;
				if (c->busy || before != c->start) {
					if (c->busy)
						c->cdl = loop_now(w->l) + w->lim.client_timeout_ms;
				} else {
					/* the first byte of a head: the whole head must come in time */
					c->cdl = loop_now(w->l) + w->lim.client_timeout_ms;
				}
			}
		}
		if (!c->busy && !c->closing && c->out_off == c->out_len) {
			if (c->start < c->end) {
				progress |= exchange_start(c);
			} else {
				c->start = c->end = 0;
				if (c->eof) {
					cconn_close(c);
					break;
				}
			}
		}
		if (c->busy && c->u)
			progress |= pump_upstream(c);
		if (c->busy && c->eof && !c->req_done && c->start == c->end) {
			/* the client left in the middle of its request body */
			cconn_close(c);
			break;
		}
		if (c->busy && c->u && c->u->eof && c->resp_state == RESP_BODY &&
		    c->resp_kind != HTTP_BODY_UNTIL_CLOSE && c->u->start == c->u->end && !resp_complete(c)) {
			upstream_failed(c, 0); /* cut in the middle of the body */
			progress = 1;
		}
		/* to the client: heads and own responses first, then response body bytes (from the
		 * buffer, or through the pipe once the head is out) */
		if (c->wr_ready) {
			ssize_t rr = 0;
			if (c->busy && c->u && c->resp_state == RESP_BODY && c->pipe[0] < 0) {
				rr = resp_ready(c);
				if (rr < 0) {
					log_warn("proxy: invalid chunked body from %s", c->b->addr.text);
					upstream_failed(c, 0);
					rr = 0;
					progress = 1;
				}
			}
			struct iovec iov[2] = {{c->out + c->out_off, c->out_len - c->out_off},
					       {rr ? c->u->in + c->u->start : NULL, (size_t)rr}};
			ssize_t k = write_some(c->fd, iov, 2, &c->wr_ready);
			if (k < 0) {
				cconn_close(c);
				break;
			}
			if (k > 0) {
				progress = 1;
				size_t ko = (size_t)k < c->out_len - c->out_off ? (size_t)k : c->out_len - c->out_off;
				c->out_off += ko;
				size_t kb = (size_t)k - ko;
				if (kb) {
					c->u->start += kb;
					if (c->resp_kind == HTTP_BODY_LENGTH)
						c->resp_left -= kb;
				}
				c->cdl = loop_now(w->l) + w->lim.client_timeout_ms;
				if (c->busy)
					c->udl = loop_now(w->l) + w->lim.upstream_timeout_ms;
			}
		}
		if (c->busy && c->u && c->pipe[0] >= 0 && c->out_off == c->out_len) {
			int r = pump_splice(c);
			if (r < 0)
				break;
			progress |= r;
		}
		if (c->busy && c->u && c->resp_state == RESP_BODY && c->out_off == c->out_len &&
		    resp_complete(c)) {
			backend_ok(c->b);
			if (!c->req_done)
				c->close_after = 1; /* answered early: the rest of the body cannot be framed */
			int reusable = c->upstream_keepalive && c->req_done &&
				       c->resp_kind != HTTP_BODY_UNTIL_CLOSE;
			exchange_end(c, c->status, 0, reusable);
			progress = 1;
		}
		if (c->out_off == c->out_len) {
			c->out_off = c->out_len = 0;
			if (c->closing && !c->busy) {
				cconn_close(c);
				break;
			}
		}
		if (!progress)
			break;
	}
	if (c->dead)
		free(c);
}

static void client_io(loop *l, int fd, unsigned events, void *arg)
{
	struct cconn *c = arg;
	if (events & LOOP_RDHUP)
		c->hup = 1;
	if (events & LOOP_READ)
		c->rd_ready = 1;
	if (events & LOOP_WRITE)
		c->wr_ready = 1;
	pump(c);
}

/* Accepts a burst on a route's own listener (s) or a shared one (sh). */
static void accept_burst(worker *w, int fd, struct wslot *s, struct wshared *sh)
{
	for (int i = 0; i < ACCEPT_BURST; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int cfd = accept4(fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN) {
				/* out of descriptors or memory: the listener stays readable, so stop
				 * watching it until the next sweep instead of spinning on it */
				log_warn("proxy: accept on %s %s: %s (pausing accepts)", s ? "route" : "shared listener",
					 s ? s->name : "", strerror(errno));
				loop_del(w->l, fd);
				if (s)
					s->paused = 1;
				else
					sh->paused = 1;
			}
			return;
		}
		if (w->nconns >= w->conn_cap || w->stopping) {
			close(cfd); /* over the connection cap: refuse early and cheaply */
			continue;
		}
		size_t incap = w->lim.max_head + 1 > IO_BUF_MIN ? w->lim.max_head + 1 : IO_BUF_MIN;
		size_t uhcap = w->lim.max_head + UH_EXTRA, outcap = 2 * w->lim.max_head + 512;
		struct cconn *c = malloc(sizeof(*c) + incap + uhcap + outcap);
		if (!c) {
			close(cfd);
			continue;
		}
		memset(c, 0, sizeof(*c));
		c->w = w;
		c->slot = s;
		c->sh = sh;
		c->fd = cfd;
		c->in = (char *)(c + 1);
		c->cap = incap;
		c->uh = c->in + incap;
		c->uh_cap = uhcap;
		c->out = c->uh + uhcap;
		c->out_cap = outcap;
		c->pipe[0] = c->pipe[1] = -1;
		c->wr_ready = 1;
		c->cdl = loop_now(w->l) + w->lim.client_timeout_ms;
		if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &a6->sin6_addr, c->ip, sizeof(c->ip));
			c->v6 = 1;
		} else {
			const struct sockaddr_in *a4 = (const struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &a4->sin_addr, c->ip, sizeof(c->ip));
		}
		int one = 1;
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (loop_add(w->l, cfd, LOOP_READ | LOOP_WRITE | LOOP_EDGE | LOOP_RDHUP, client_io, c)) {
			close(cfd);
			free(c);
			continue;
		}
		c->next = w->conns;
		if (w->conns)
			w->conns->prev = c;
		w->conns = c;
		w->nconns++;
		if (s)
			s->nconns++;
		else
			sh->nconns++;
	}
}

static void on_accept(loop *l, int fd, unsigned events, void *arg)
{
	struct wslot *s = arg;
	accept_burst(s->w, fd, s, NULL);
}

static void on_accept_shared(loop *l, int fd, unsigned events, void *arg)
{
	struct wshared *sh = arg;
	accept_burst(sh->w, fd, NULL, sh);
}

/* ---- timeouts ---- */

static void sweep(loop *l, void *arg)
{
	worker *w = arg;
	uint64_t now = loop_now(l);
	for (struct cconn *c = w->conns, *next; c; c = next) {
		next = c->next;
		if (!c->busy) {
			if (c->cdl && now >= c->cdl) {
				if (c->end > c->start && !c->closing && c->out_off == c->out_len)
					send_simple(c, 408, "Request Timeout", "request head too slow\n", 1);
				else
					cconn_close(c);
				pump(c);
			}
			continue;
		}
		int client_blocked = !c->wr_ready && (c->out_off < c->out_len || c->resp_state == RESP_BODY);
		/* whose turn is it: a body that stalls because the upstream does not read it is the
		 * upstream's fault, one that stalls with the upstream writable is the client's */
		int upstream_blocked = c->u && (c->u->connecting || !c->u->wr_ready);
		if (!c->req_done && now >= c->cdl && !upstream_blocked) {
			if (!c->resp_any && c->out_off == c->out_len) {
				c->close_after = 1;
				exchange_end(c, 408, 0, 0);
				send_simple(c, 408, "Request Timeout", "request body too slow\n", 1);
			} else {
				cconn_close(c);
			}
			pump(c);
		} else if (c->udl && now >= c->udl && (c->req_done || upstream_blocked || !c->u)) {
			if (client_blocked && now >= c->cdl)
				cconn_close(c); /* the client stopped reading its response */
			else if (!client_blocked)
				upstream_failed(c, 1);
			pump(c);
		}
	}
	for (struct wslot *s = w->slots; s; s = s->next)
		if (s->paused && s->lfd >= 0 && !w->stopping) {
			s->paused = 0;
			if (loop_add(l, s->lfd, LOOP_READ, on_accept, s))
				s->paused = 1;
		}
	for (struct wshared *sh = w->shared; sh; sh = sh->next)
		if (sh->paused && sh->lfd >= 0 && !w->stopping) {
			sh->paused = 0;
			if (loop_add(l, sh->lfd, LOOP_READ, on_accept_shared, sh))
				sh->paused = 1;
		}
	for (struct uconn *u = w->uconns, *next; u; u = next) {
		next = u->next;
		if (!u->c && u->b && now - u->idle_since > POOL_IDLE_MS) {
			pool_remove(u);
			uconn_free(u);
		}
	}
	if (w->stopping && w->nconns == 0)
		loop_stop(l);
	else
		loop_timer(l, SWEEP_MS, sweep, w);
}

/* ---- messages from the admin thread ---- */

static struct wslot *slot_find(worker *w, const char *name, struct wslot ***link)
{
	for (struct wslot **p = &w->slots; *p; p = &(*p)->next)
		if (!strcmp((*p)->name, name)) {
			if (link)
				*link = p;
			return *p;
		}
	return NULL;
}

static void close_listener(worker *w, struct wslot *s)
{
	if (s->lfd >= 0) {
		loop_del(w->l, s->lfd);
		close(s->lfd);
		s->lfd = -1;
	}
}

/* Closes the connections of slot s or shared listener sh (or every one when both are NULL)
 * that wait for a request. */
static void close_idle_conns(worker *w, struct wslot *s, struct wshared *sh)
{
	for (struct cconn *c = w->conns, *next; c; c = next) {
		next = c->next;
		if (((!s && !sh) || (s && c->slot == s) || (sh && c->sh == sh)) && !c->busy && c->start == c->end && c->out_off == c->out_len) {
			cconn_close(c);
			free(c);
		}
	}
}

static void close_shared_listener(worker *w, struct wshared *sh)
{
	if (sh->lfd >= 0) {
		loop_del(w->l, sh->lfd);
		close(sh->lfd);
		sh->lfd = -1;
	}
}

static struct wshared *shared_find(worker *w, unsigned id, struct wshared ***link)
{
	for (struct wshared **p = &w->shared; *p; p = &(*p)->next)
		if ((*p)->id == id) {
			if (link)
				*link = p;
			return *p;
		}
	return NULL;
}

/* Takes slot s's hosts out of its shared listener's table (before s->cur is retired). */
static void slot_unhost(struct wslot *s)
{
	if (!s->sh || !s->cur)
		return;
	const struct route_cfg *cfg = &s->cur->r->cfg;
	for (size_t i = 0; i < cfg->nhosts; i++)
		vhost_del(s->sh->t, cfg->hosts[i], cfg->path_prefix, s);
	s->sh = NULL;
}

static void handle(worker *w, struct wmsg *m)
{
	struct wslot **link, *s;
	switch (m->kind) {
	case WMSG_ROUTE: {
		s = slot_find(w, m->name, NULL);
		if (!s) {
			s = calloc(1, sizeof(*s));
			if (!s) {
				route_unref(m->r);
				if (m->lfd >= 0)
					close(m->lfd);
				log_error("proxy: out of memory adding route %s", m->name);
				return;
			}
			s->w = w;
			s->lfd = -1;
			snprintf(s->name, sizeof(s->name), "%s", m->name);
			s->next = w->slots;
			w->slots = s;
		}
		struct wroute *wr = calloc(1, sizeof(*wr));
		if (!wr) {
			route_unref(m->r);
			if (m->lfd >= 0)
				close(m->lfd);
			return;
		}
		wr->r = m->r;
		slot_unhost(s);
		if (m->lid) {
			/* on a shared listener: no listener of its own any more; its hosts lead to it */
			close_listener(w, s);
			s->sh = shared_find(w, m->lid, NULL);
			const struct route_cfg *cfg = &m->r->cfg;
			for (size_t i = 0; s->sh && i < cfg->nhosts; i++)
				if (vhost_add(s->sh->t, cfg->hosts[i], cfg->path_prefix, s, NULL))
					log_error("proxy: worker %u: cannot index host %s of route %s", w->id,
						  cfg->hosts[i], m->name);
		} else if (m->lfd >= 0) {
			close_listener(w, s);
			s->lfd = m->lfd;
			s->paused = 0;
			if (w->stopping || loop_add(w->l, s->lfd, LOOP_READ, on_accept, s))
				close_listener(w, s);
		}
		wroute_retire(w, s->cur);
		s->cur = wr;
		break;
	}
	case WMSG_DELETE:
		s = slot_find(w, m->name, &link);
		if (!s)
			return;
		*link = s->next;
		close_listener(w, s);
		slot_unhost(s);
		wroute_retire(w, s->cur);
		s->cur = NULL;
		s->deleted = 1;
		if (s->nconns == 0)
			free(s);
		else
			close_idle_conns(w, s, NULL); /* the last one frees s */
		break;
	case WMSG_LISTEN: {
		struct wshared *sh = calloc(1, sizeof(*sh));
		if (!sh || !(sh->t = vhost_new())) {
			free(sh);
			close(m->lfd);
			log_error("proxy: worker %u: out of memory adding a shared listener", w->id);
			return;
		}
		sh->w = w;
		sh->id = m->lid;
		sh->lfd = m->lfd;
		sh->next = w->shared;
		w->shared = sh;
		if (w->stopping || loop_add(w->l, sh->lfd, LOOP_READ, on_accept_shared, sh))
			close_shared_listener(w, sh);
		break;
	}
	case WMSG_UNLISTEN: {
		struct wshared **shl, *sh = shared_find(w, m->lid, &shl);
		if (!sh)
			return;
		*shl = sh->next;
		close_shared_listener(w, sh);
		sh->closed = 1;
		if (sh->nconns == 0)
			shared_free(sh);
		else
			close_idle_conns(w, NULL, sh); /* the last one frees sh */
		break;
	}
	case WMSG_STOP:
		w->stopping = 1;
		for (s = w->slots; s; s = s->next)
			close_listener(w, s);
		for (struct wshared *sh = w->shared; sh; sh = sh->next)
			close_shared_listener(w, sh);
		close_idle_conns(w, NULL, NULL);
		if (w->nconns == 0)
			loop_stop(w->l);
		break;
	}
}

static void on_msg(loop *l, int fd, unsigned events, void *arg)
{
	worker *w = arg;
	uint64_t v;
	while (read(fd, &v, sizeof(v)) > 0)
		;
	pthread_mutex_lock(&w->mu);
	struct wmsg *q = w->q;
	w->q = NULL;
	pthread_mutex_unlock(&w->mu);
	while (q) {
		struct wmsg *next = q->next;
		handle(w, q);
		free(q);
		__atomic_add_fetch(&w->applied, 1, __ATOMIC_RELEASE);
		q = next;
	}
}

uint64_t worker_applied(const worker *w)
{
	return __atomic_load_n(&w->applied, __ATOMIC_ACQUIRE);
}

uint64_t worker_send(worker *w, struct wmsg *m)
{
	uint64_t seq = ++w->sent;
	m->next = NULL;
	pthread_mutex_lock(&w->mu);
	struct wmsg **p = &w->q;
	while (*p)
		p = &(*p)->next;
	*p = m;
	pthread_mutex_unlock(&w->mu);
	uint64_t one = 1;
	ssize_t n = write(w->evfd, &one, sizeof(one));
	(void)n;
	return seq;
}

/* ---- life cycle ---- */

worker *worker_new(unsigned id, unsigned n, const struct proxy_limits *lim)
{
	worker *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->id = id;
	w->n = n;
	w->lim = *lim;
	w->hl.max_head = lim->max_head;
	w->hl.max_headers = lim->max_headers;
	w->hl.max_body = lim->max_body;
	w->conn_cap = lim->max_conns / n ? lim->max_conns / n : 1;
	w->rng = (now_us() ^ ((uint64_t)id << 32) ^ (uint64_t)(uintptr_t)w) | 1;
	pthread_mutex_init(&w->mu, NULL);
	w->l = loop_new();
	w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!w->l || w->evfd < 0 || loop_add(w->l, w->evfd, LOOP_READ, on_msg, w)) {
		if (w->evfd >= 0)
			close(w->evfd);
		loop_free(w->l);
		pthread_mutex_destroy(&w->mu);
		free(w);
		return NULL;
	}
	return w;
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	loop_timer(w->l, SWEEP_MS, sweep, w);
	if (loop_run(w->l))
		log_error("proxy: worker %u: event loop failed: %s", w->id, strerror(errno));
	return NULL;
}

int worker_start(worker *w)
{
	if (pthread_create(&w->th, NULL, worker_main, w))
		return -1;
	w->started = 1;
	return 0;
}

void worker_join_free(worker *w)
{
	if (!w)
		return;
	if (w->started)
		pthread_join(w->th, NULL);
	/* messages that arrived too late still hold references */
	on_msg(w->l, w->evfd, LOOP_READ, w);
	while (w->conns) {
		struct cconn *c = w->conns;
		cconn_close(c);
		free(c);
	}
	while (w->uconns) {
		struct uconn *u = w->uconns;
		if (!u->c && u->b)
			pool_remove(u);
		uconn_free(u);
	}
	while (w->slots) {
		struct wslot *s = w->slots;
		w->slots = s->next;
		close_listener(w, s);
		slot_unhost(s);
		wroute_retire(w, s->cur);
		free(s);
	}
	while (w->shared) {
		struct wshared *sh = w->shared;
		w->shared = sh->next;
		close_shared_listener(w, sh);
		shared_free(sh);
	}
	while (w->npipes) {
		w->npipes--;
		close(w->pipes[w->npipes][0]);
		close(w->pipes[w->npipes][1]);
	}
	loop_del(w->l, w->evfd);
	close(w->evfd);
	loop_free(w->l);
	pthread_mutex_destroy(&w->mu);
	free(w);
}
