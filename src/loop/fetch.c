#include "loop/fetch.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/httpc.h"

/*
 * A request lives on exactly one list of its fetcher: `live` while it waits for its 0 ms
 * failure timer (no easy handle) or runs in the multi handle, then `done` once curl has
 * finished it and it waits for its callback. Callbacks are delivered from `done` one at a time,
 * each request unlinked before its callback runs, so a callback may start or cancel anything
 * (even requests already on `done`) without invalidating what the delivery loop holds.
 */
struct req {
	struct req *prev, *next;
	fetcher *f;
	uint64_t id;
	CURL *easy;                /* NULL for a request that failed before reaching curl */
	struct curl_slist *hdrs;   /* must outlive the easy handle's transfer */
	struct buf resp;           /* limit: max_response */
	size_t max_response;
	long timeout_ms;
	uint64_t started;          /* loop_clock_ms at fetch_start */
	uint64_t timer;            /* the 0 ms timer that delivers an early failure, or 0 */
	CURLcode rc;               /* when finished by curl */
	int too_big;               /* the write callback refused a body over max_response */
	int no_mem;                /* the write callback could not grow the buffer */
	fetch_done_fn *fn;
	void *arg;
	char errbuf[CURL_ERROR_SIZE];
	char error[CURL_ERROR_SIZE + 64]; /* what fetch_result.error points at */
};

struct list {
	struct req *head, *tail;
};

struct fetcher {
	loop *l;
	CURLM *multi;
	uint64_t timer;            /* curl's one timeout, as a loop timer; 0 when unarmed */
	struct list live, done;
	size_t pending;            /* on live or done */
	uint64_t next_id;
	unsigned char *socks;      /* socks[fd] != 0: we registered fd in the loop for curl */
	int nsocks;
	int delivering;            /* inside deliver(): a callback may be running */
	int closing;               /* fetcher_free is tearing curl down: ignore its callbacks */
	int dying;                 /* fetcher_free ran inside a callback: free f after it */
};

static int curl_ready;

static void list_push(struct list *q, struct req *r)
{
	r->next = NULL;
	r->prev = q->tail;
	if (q->tail)
		q->tail->next = r;
	else
		q->head = r;
	q->tail = r;
}

static void list_unlink(struct list *q, struct req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		q->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		q->tail = r->prev;
	r->prev = r->next = NULL;
}

static struct req *list_find(const struct list *q, uint64_t id)
{
	for (struct req *r = q->head; r; r = r->next)
		if (r->id == id)
			return r;
	return NULL;
}

/* Frees a request that is on no list and no longer in the multi handle. */
static void req_free(struct req *r)
{
	if (r->easy)
		curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->hdrs);
	buf_release(&r->resp);
	free(r);
}

/* ---- delivery ---------------------------------------------------------------------------- */

static void describe(struct req *r)
{
	char *e = r->error;
	size_t n = sizeof(r->error);
	const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->rc);
	long os_errno = 0;

	switch (r->rc) {
	case CURLE_OPERATION_TIMEDOUT:
		snprintf(e, n, "timed out after %ld ms", r->timeout_ms);
		return;
	case CURLE_FILESIZE_EXCEEDED: /* Content-Length said so before the body came */
		snprintf(e, n, "response larger than %zu bytes", r->max_response);
		return;
	case CURLE_WRITE_ERROR:
		if (r->too_big)
			snprintf(e, n, "response larger than %zu bytes", r->max_response);
		else if (r->no_mem)
			snprintf(e, n, "out of memory for the response");
		else
			snprintf(e, n, "%s", detail);
		return;
	case CURLE_COULDNT_CONNECT:
		curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &os_errno);
		if (os_errno == ECONNREFUSED)
			snprintf(e, n, "connection refused");
		else
			snprintf(e, n, "could not connect: %s", detail);
		return;
	default:
		snprintf(e, n, "%s", detail);
		return;
	}
}

/* Runs the callbacks of finished requests, oldest first. The caller must not touch f after
 * this returns: fetcher_free may have been called by a callback, and then f is gone. */
static void deliver(fetcher *f)
{
	f->delivering++;
	while (!f->dying && f->done.head) {
		struct req *r = f->done.head;
		list_unlink(&f->done, r);
		f->pending--;

		struct fetch_result res = {0};
		res.elapsed_ms = loop_clock_ms() - r->started;
		if (r->easy && r->rc == CURLE_OK) {
			res.ok = 1;
			curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
			res.body = r->resp.data;
			res.body_len = r->resp.len;
		} else {
			if (r->easy)
				describe(r);
			res.error = r->error;
		}
		if (r->fn)
			r->fn(r->arg, &res);
		req_free(r);
	}
	f->delivering--;
	if (f->dying && !f->delivering)
		free(f);
}

/* Moves what curl has finished from live to done, then delivers. Called from the loop only,
 * never from inside a curl callback. Every finished handle leaves the multi handle here, before
 * any callback runs, so a callback never sees (or cancels) a message curl still holds. */
static void drain(fetcher *f)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(f->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		char *priv = NULL;
		CURL *easy = m->easy_handle;
		CURLcode rc = m->data.result; /* m is invalid once the handle is removed */
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
		curl_multi_remove_handle(f->multi, easy);
		struct req *r = (struct req *)priv;
		r->rc = rc;
		list_unlink(&f->live, r);
		list_push(&f->done, r);
	}
	deliver(f);
}

static void act(fetcher *f, curl_socket_t s, int events)
{
	int running;
	curl_multi_socket_action(f->multi, s, events, &running);
	drain(f);
}

/* ---- curl's sockets and timer on the loop ------------------------------------------------ */

static void on_io(loop *l, int fd, unsigned events, void *arg)
{
	int ev = 0;
	if (events & LOOP_READ)
		ev |= CURL_CSELECT_IN;
	if (events & LOOP_WRITE)
		ev |= CURL_CSELECT_OUT;
	act(arg, fd, ev);
}

static void on_timeout(loop *l, void *arg)
{
	fetcher *f = arg;
	f->timer = 0;
	act(f, CURL_SOCKET_TIMEOUT, 0);
}

static int socks_room(fetcher *f, int fd)
{
	if (fd < f->nsocks)
		return 0;
	int n = f->nsocks ? f->nsocks : 64;
	while (n <= fd)
		n *= 2;
	unsigned char *p = realloc(f->socks, (size_t)n);
	if (!p)
		return -1;
	memset(p + f->nsocks, 0, (size_t)(n - f->nsocks));
	f->socks = p;
	f->nsocks = n;
	return 0;
}

/* CURLMOPT_SOCKETFUNCTION. Touches the loop only (no curl_multi_* call from in here). */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	fetcher *f = userp;
	if (f->closing || s < 0)
		return 0;
	if (what == CURL_POLL_REMOVE) {
		if (s < f->nsocks && f->socks[s]) {
			loop_del(f->l, s);
			f->socks[s] = 0;
		}
		return 0;
	}
	unsigned ev = 0;
	if (what & CURL_POLL_IN)
		ev |= LOOP_READ;
	if (what & CURL_POLL_OUT)
		ev |= LOOP_WRITE;
	if (socks_room(f, s))
		return -1;
	if (f->socks[s]) {
		if (loop_mod(f->l, s, ev) == 0)
			return 0;
		/* The loop lost the descriptor (closed and reopened behind our back): start over. */
		loop_del(f->l, s);
		f->socks[s] = 0;
	}
	if (loop_add(f->l, s, ev, on_io, f))
		return -1;
	f->socks[s] = 1;
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: one timer for the whole multi handle; -1 removes it. Like
 * on_socket, it only touches the loop: curl is called back from on_timeout, later. */
static int on_timer(CURLM *multi, long ms, void *userp)
{
	fetcher *f = userp;
	if (f->closing)
		return 0;
	if (f->timer) {
		loop_timer_cancel(f->l, f->timer);
		f->timer = 0;
	}
	if (ms < 0)
		return 0;
	f->timer = loop_timer(f->l, (uint64_t)ms, on_timeout, f);
	return f->timer ? 0 : -1;
}

/* ---- starting and cancelling ------------------------------------------------------------- */

static void on_early(loop *l, void *arg)
{
	struct req *r = arg;
	fetcher *f = r->f;
	r->timer = 0;
	list_unlink(&f->live, r);
	list_push(&f->done, r);
	deliver(f);
}

/* Checks what curl would accept but we do not, or what it would only reject later. Writes the
 * reason to r->error and returns -1, or returns 0. */
static int check(const struct fetch_req *req, const char *method, struct req *r)
{
	char *e = r->error;
	size_t n = sizeof(r->error);
	size_t mlen = strlen(method);
	if (mlen == 0 || mlen > 16 || strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != mlen) {
		snprintf(e, n, "invalid method '%.32s' (expected GET, HEAD, POST, PUT or DELETE)",
			 method);
		return -1;
	}
	if (req->timeout_ms <= 0) {
		snprintf(e, n, "timeout must be more than 0 ms (got %ld)", req->timeout_ms);
		return -1;
	}
	if (req->ctype && (strlen(req->ctype) > 200 || strpbrk(req->ctype, "\r\n"))) {
		snprintf(e, n, "invalid content type (a line break, or longer than 200 bytes)");
		return -1;
	}
	if (!req->url) {
		snprintf(e, n, "no URL");
		return -1;
	}
	struct err he;
	if (httpc_headers_check(req->headers, &he)) {
		snprintf(e, n, "%.300s", he.msg);
		return -1;
	}

	CURLU *u = curl_url();
	if (!u) {
		snprintf(e, n, "out of memory");
		return -1;
	}
	char *scheme = NULL;
	CURLUcode uc = curl_url_set(u, CURLUPART_URL, req->url, 0);
	if (uc == CURLUE_OK)
		uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	int rc = 0;
	if (uc != CURLUE_OK) {
		snprintf(e, n, "malformed URL '%.120s': %s", req->url, curl_url_strerror(uc));
		rc = -1;
	} else if (strcmp(scheme, "http") && strcmp(scheme, "https")) {
		snprintf(e, n, "unsupported URL scheme '%.32s' (expected http or https)", scheme);
		rc = -1;
	}
	curl_free(scheme);
	curl_url_cleanup(u);
	return rc;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct req *r = arg;
	size_t n = size * nmemb;
	if (buf_add(&r->resp, p, n)) {
		if (n > r->max_response - r->resp.len)
			r->too_big = 1;
		else
			r->no_mem = 1;
		return 0; /* != n: curl aborts the transfer with CURLE_WRITE_ERROR */
	}
	return n;
}

/* Builds the easy handle. Returns CURLE_OK or the first error. */
static CURLcode setup(struct req *r, const struct fetch_req *req, const char *method)
{
	CURLcode rc = CURLE_OK;
	CURL *e = r->easy = curl_easy_init();
	if (!e)
		return CURLE_OUT_OF_MEMORY;

	int has_body = req->body != NULL;
	int empty_body = !has_body && (!strcmp(method, "POST") || !strcmp(method, "PUT"));
	int head = !strcmp(method, "HEAD");
	char ct[256];
	const char *extra = NULL;
	if (has_body) {
		snprintf(ct, sizeof(ct), "Content-Type: %s", req->ctype ? req->ctype : "application/json");
		extra = ct;
	} else if (empty_body) {
		extra = "Content-Type:"; /* curl would otherwise label the empty body as a form */
	}
	/* No "Expect: 100-continue": it would stall a larger body for a second. */
	r->hdrs = curl_slist_append(NULL, "Expect:");
	if (!r->hdrs)
		return CURLE_OUT_OF_MEMORY;
	if (extra) {
		struct curl_slist *h = curl_slist_append(r->hdrs, extra);
		if (!h)
			return CURLE_OUT_OF_MEMORY;
		r->hdrs = h;
	}
	if (httpc_headers_append(&r->hdrs, req->headers))
		return CURLE_OUT_OF_MEMORY;

#define SET(opt, val)                                          \
	do {                                                   \
		if (rc == CURLE_OK)                            \
			rc = curl_easy_setopt(e, opt, val);    \
	} while (0)

	SET(CURLOPT_PRIVATE, (void *)r);
	SET(CURLOPT_URL, req->url);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TIMEOUT_MS, req->timeout_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, req->timeout_ms);
	SET(CURLOPT_ERRORBUFFER, r->errbuf);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, (void *)r);
	SET(CURLOPT_HTTPHEADER, r->hdrs);
	SET(CURLOPT_CUSTOMREQUEST, method);
	if (req->cacert)
		SET(CURLOPT_CAINFO, req->cacert);
	if (has_body || empty_body) {
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(has_body ? req->body_len : 0));
		SET(CURLOPT_COPYPOSTFIELDS, has_body ? req->body : "");
	}
	/* A HEAD answer has no body whatever its Content-Length says: without NOBODY curl would
	 * wait for one until the timeout. Nor may that Content-Length count against the limit. */
	if (head)
		SET(CURLOPT_NOBODY, 1L);
	else if (req->max_response < (size_t)INT64_MAX)
		SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_response + (req->max_response == 0));
#undef SET
	return rc;
}

fetcher *fetcher_new(loop *l)
{
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return NULL;
		curl_ready = 1;
	}
	fetcher *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->l = l;
	f->next_id = 1;
	f->multi = curl_multi_init();
	if (!f->multi) {
		free(f);
		return NULL;
	}
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
	return f;
}

void fetcher_free(fetcher *f)
{
	if (!f || f->dying)
		return;
	/* Requests first, while curl may still tell us which sockets it closes. */
	while (f->live.head) {
		struct req *r = f->live.head;
		list_unlink(&f->live, r);
		if (r->timer)
			loop_timer_cancel(f->l, r->timer);
		else if (r->easy)
			curl_multi_remove_handle(f->multi, r->easy);
		req_free(r);
	}
	while (f->done.head) {
		struct req *r = f->done.head;
		list_unlink(&f->done, r);
		req_free(r);
	}
	f->pending = 0;

	/* Then curl itself: unregister what is left (idle connections) before curl closes it. */
	f->closing = 1;
	for (int fd = 0; fd < f->nsocks; fd++)
		if (f->socks[fd])
			loop_del(f->l, fd);
	if (f->timer)
		loop_timer_cancel(f->l, f->timer);
	curl_multi_cleanup(f->multi);
	free(f->socks);
	f->multi = NULL;
	f->socks = NULL;
	f->nsocks = 0;
	f->timer = 0;
	if (f->delivering)
		f->dying = 1; /* deliver() frees f once the running callback returns */
	else
		free(f);
}

loop *fetcher_loop(const fetcher *f)
{
	return f->l;
}

uint64_t fetch_start(fetcher *f, const struct fetch_req *req, fetch_done_fn *fn, void *arg)
{
	struct req *r = calloc(1, sizeof(*r));
	if (!r)
		return 0;
	const char *method = req->method ? req->method : "GET";
	r->f = f;
	r->fn = fn;
	r->arg = arg;
	r->started = loop_clock_ms();
	r->timeout_ms = req->timeout_ms;
	r->max_response = req->max_response;
	buf_init(&r->resp, req->max_response);

	int early = check(req, method, r) != 0;
	if (!early) {
		CURLcode rc = setup(r, req, method);
		CURLMcode mc = rc == CURLE_OK ? curl_multi_add_handle(f->multi, r->easy) : CURLM_OK;
		if (rc == CURLE_OUT_OF_MEMORY || mc == CURLM_OUT_OF_MEMORY) {
			req_free(r);
			return 0;
		}
		if (rc != CURLE_OK || mc != CURLM_OK) {
			snprintf(r->error, sizeof(r->error), "could not set up the request: %s",
				 rc != CURLE_OK ? curl_easy_strerror(rc) : curl_multi_strerror(mc));
			early = 1;
		}
	}
	if (early) {
		if (r->easy) {
			curl_easy_cleanup(r->easy);
			r->easy = NULL;
		}
		r->timer = loop_timer(f->l, 0, on_early, r);
		if (!r->timer) {
			req_free(r);
			return 0;
		}
	}
	r->id = f->next_id++;
	list_push(&f->live, r);
	f->pending++;
	return r->id;
}

void fetch_cancel(fetcher *f, uint64_t id)
{
	struct list *q = &f->live;
	struct req *r = list_find(q, id);
	if (!r) {
		q = &f->done;
		r = list_find(q, id);
	}
	if (!r)
		return;
	list_unlink(q, r);
	f->pending--;
	if (r->timer)
		loop_timer_cancel(f->l, r->timer);
	else if (r->easy && q == &f->live)
		curl_multi_remove_handle(f->multi, r->easy);
	req_free(r);
}

size_t fetch_pending(const fetcher *f)
{
	return f->pending;
}
