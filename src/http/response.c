#include "http/response.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

void http_reader_init(struct http_reader *r, char *buf, size_t cap, int timeout_ms)
{
	r->buf = buf;
	r->cap = cap;
	r->len = 0;
	r->used = 0;
	r->timeout_ms = timeout_ms;
}

void http_reader_reset(struct http_reader *r)
{
	r->len = 0;
	r->used = 0;
}

/* Drops the bytes of the previous response; what followed it moves to the front. */
static void drop_used(struct http_reader *r)
{
	if (r->used) {
		memmove(r->buf, r->buf + r->used, r->len - r->used);
		r->len -= r->used;
		r->used = 0;
	}
}

/* Appends what the socket has (the caller checked there is room). Returns 1 when bytes came,
 * 0 when the peer closed or reset the connection, -1 on a timeout or another error (e set). */
static int fill(struct http_reader *r, int fd, struct err *e)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int pr = poll(&p, 1, r->timeout_ms);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr == 0)
			return err_set(e, "no response within %d ms", r->timeout_ms);
		if (pr < 0)
			return err_set(e, "cannot wait for the response: %s", strerror(errno));
		ssize_t n = read(fd, r->buf + r->len, r->cap - r->len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (n < 0 && errno == ECONNRESET)
			return 0;
		if (n < 0)
			return err_set(e, "cannot read the response: %s", strerror(errno));
		r->len += (size_t)n;
		return n > 0;
	}
}

static int too_large(struct http_reader *r, struct err *e)
{
	return err_set(e, "response larger than %zu bytes", r->cap);
}

/* Reads until a final (non-1xx, or 101) head is parsed; returns its length or an error. */
static ssize_t read_head(struct http_reader *r, int fd, const char *method, struct http_head *h,
			 struct err *e)
{
	struct http_limits lim = {.max_head = r->cap, .max_headers = HTTP_MAX_HEADERS_HARD};
	size_t mlen = strlen(method);
	int any = r->len > 0;
	for (;;) {
		ssize_t hl = r->len ? http_parse_response(r->buf, r->len, &lim, method, mlen, h)
				    : HTTP_E_INCOMPLETE;
		if (hl == HTTP_E_HEAD_TOO_LARGE)
			return err_set(e, "response head larger than %zu bytes", r->cap);
		if (hl < 0)
			return err_set(e, "invalid response: %s", http_strerror((int)hl));
		if (hl != HTTP_E_INCOMPLETE) {
			if (h->status >= 200 || h->status == 101)
				return hl;
			r->used = (size_t)hl; /* an interim response (100 Continue, 103): skip it */
			drop_used(r);
			continue;
		}
		if (r->len == r->cap)
			return err_set(e, "response head larger than %zu bytes", r->cap);
		int n = fill(r, fd, e);
		if (n < 0)
			return HTTP_READ_FAILED;
		if (n == 0)
			return any ? err_set(e, "connection closed inside the response head")
				   : HTTP_READ_IDLE_CLOSED;
		any = 1;
	}
}

static int read_chunked(struct http_reader *r, int fd, size_t head_len, struct http_response *out,
			struct err *e)
{
	struct http_chunked c;
	http_chunked_init(&c, 0);
	size_t dec = head_len; /* decoded data ends here */
	size_t raw = head_len; /* first byte not yet fed to the decoder */
	for (;;) {
		if (raw < r->len) {
			size_t outn = 0;
			ssize_t k = http_chunked_feed(&c, r->buf + raw, r->len - raw, r->buf + dec, &outn);
			if (k < 0)
				return err_set(e, "invalid response: %s", http_strerror((int)k));
			dec += outn;
			raw += (size_t)k;
			if (c.done)
				break;
			/* Everything fed was consumed (only the end of the body stops the decoder
			 * early): the encoding is no longer needed, the next bytes go after the data. */
			r->len = raw = dec;
		}
		if (r->len == r->cap)
			return too_large(r, e);
		int n = fill(r, fd, e);
		if (n < 0)
			return HTTP_READ_FAILED;
		if (n == 0)
			return err_set(e, "connection closed inside the chunked body");
	}
	out->body_len = dec - head_len;
	r->used = raw;
	return 0;
}

int http_reader_read(struct http_reader *r, int fd, const char *method, struct http_response *out,
		     struct err *e)
{
	drop_used(r);
	struct http_head *h = &out->head;
	ssize_t hl = read_head(r, fd, method, h, e);
	if (hl < 0)
		return (int)hl;
	size_t head_len = (size_t)hl;
	out->status = h->status;
	out->body = r->buf + head_len;
	out->body_len = 0;
	out->keep_alive = h->keep_alive && h->status != 101 && h->body != HTTP_BODY_UNTIL_CLOSE;

	switch (h->body) {
	case HTTP_BODY_NONE:
		r->used = head_len;
		return 0;
	case HTTP_BODY_LENGTH: {
		if (h->content_length > r->cap - head_len)
			return too_large(r, e);
		size_t end = head_len + (size_t)h->content_length;
		while (r->len < end) {
			int n = fill(r, fd, e);
			if (n < 0)
				return HTTP_READ_FAILED;
			if (n == 0)
				return err_set(e, "connection closed after %zu of %zu body bytes",
					       r->len - head_len, end - head_len);
		}
		out->body_len = end - head_len;
		r->used = end;
		return 0;
	}
	case HTTP_BODY_CHUNKED:
		return read_chunked(r, fd, head_len, out, e);
	case HTTP_BODY_UNTIL_CLOSE:
		for (;;) {
			if (r->len == r->cap)
				return too_large(r, e);
			int n = fill(r, fd, e);
			if (n < 0)
				return HTTP_READ_FAILED;
			if (n == 0)
				break;
		}
		out->body_len = r->len - head_len;
		r->used = r->len;
		return 0;
	}
	return err_set(e, "invalid response framing");
}
