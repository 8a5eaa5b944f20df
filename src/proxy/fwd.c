#include "proxy/fwd.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

struct wr {
	char *p;
	size_t len, cap;
	int overflow;
};

static void put(struct wr *w, const char *s, size_t n)
{
	if (w->overflow || n > w->cap - w->len) {
		w->overflow = 1;
		return;
	}
	memcpy(w->p + w->len, s, n);
	w->len += n;
}

static void puts_(struct wr *w, const char *s)
{
	put(w, s, strlen(s));
}

static void putu(struct wr *w, unsigned long long v)
{
	char tmp[24];
	size_t i = sizeof(tmp);
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(w, tmp + i, sizeof(tmp) - i);
}

static int name_is(const char *name, size_t len, const char *lit)
{
	return strlen(lit) == len && !strncasecmp(name, lit, len);
}

/* Does comma-separated list v[0..n) contain token t[0..tn) (case-insensitive)? */
static int list_has(const char *v, size_t n, const char *t, size_t tn)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t s = i;
		while (i < n && v[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tn && !strncasecmp(v + s, t, tn))
			return 1;
	}
	return 0;
}

int fwd_method_idempotent(const char *m, size_t len)
{
	switch (len) {
	case 3:
		return !memcmp(m, "GET", 3) || !memcmp(m, "PUT", 3);
	case 4:
		return !memcmp(m, "HEAD", 4);
	case 5:
		return !memcmp(m, "TRACE", 5);
	case 6:
		return !memcmp(m, "DELETE", 6);
	case 7:
		return !memcmp(m, "OPTIONS", 7);
	default:
		return 0;
	}
}

/* Fields a Connection token cannot remove: they say where the message goes, how it is framed
 * (Content-Length and Transfer-Encoding are in the fixed list and regenerated anyway) or
 * through whom it came, and the proxy decides about them. Only checked once a token matched. */
static int never_nominated(const char *name, size_t len)
{
	static const char *const keep[] = {"host", "x-forwarded-for", "x-forwarded-proto", "forwarded",
					   NULL};
	for (size_t i = 0; keep[i]; i++)
		if (name_is(name, len, keep[i]))
			return 1;
	return 0;
}

int fwd_is_hop_by_hop(const struct http_head *h, const char *name, size_t len)
{
	static const char *const fixed[] = {"connection", "keep-alive", "te", "trailer",
					    "transfer-encoding", "upgrade", "content-length", NULL};
	for (size_t i = 0; fixed[i]; i++)
		if (name_is(name, len, fixed[i]))
			return 1;
	if (len >= 6 && !strncasecmp(name, "proxy-", 6))
		return 1;
	for (size_t i = 0; i < h->nheaders; i++) {
		const struct http_header *f = &h->headers[i];
		if (name_is(f->name, f->name_len, "connection") && list_has(f->value, f->value_len, name, len))
			return !never_nominated(name, len);
	}
	return 0;
}

/* Copies every end-to-end field except those in `skip` (NULL-terminated). */
static void copy_fields(struct wr *w, const struct http_head *h, const char *const *skip)
{
	for (size_t i = 0; i < h->nheaders; i++) {
		const struct http_header *f = &h->headers[i];
		int drop = fwd_is_hop_by_hop(h, f->name, f->name_len);
		for (size_t k = 0; !drop && skip && skip[k]; k++)
			drop = name_is(f->name, f->name_len, skip[k]);
		if (drop)
			continue;
		put(w, f->name, f->name_len);
		put(w, ": ", 2);
		put(w, f->value, f->value_len);
		put(w, "\r\n", 2);
	}
}

/* Writes one combined field: the values of every `name` field, then extra1 extra2 extra3. */
static void append_list(struct wr *w, const struct http_head *h, const char *name, const char *extra1,
			const char *extra2, const char *extra3)
{
	puts_(w, name);
	put(w, ": ", 2);
	for (size_t i = 0; i < h->nheaders; i++) {
		const struct http_header *f = &h->headers[i];
		if (name_is(f->name, f->name_len, name) && f->value_len) {
			put(w, f->value, f->value_len);
			put(w, ", ", 2);
		}
	}
	puts_(w, extra1);
	puts_(w, extra2);
	puts_(w, extra3);
	put(w, "\r\n", 2);
}

static void put_framing(struct wr *w, const struct http_head *h)
{
	if (h->body == HTTP_BODY_LENGTH) {
		puts_(w, "Content-Length: ");
		putu(w, h->content_length);
		put(w, "\r\n", 2);
	} else if (h->body == HTTP_BODY_CHUNKED) {
		puts_(w, "Transfer-Encoding: chunked\r\n");
	}
}

/*
 * The target to send upstream, in origin-form (or "*"). An absolute-form target must be
 * http(s)://AUTHORITY[/path][?query] without userinfo, AUTHORITY equal to Host ignoring case;
 * the parser admits only origin-form, "*" (OPTIONS), authority-form (CONNECT, refused before)
 * and scheme ":" ..., so a target not starting with '/' or "*" is absolute-form or refused.
 */
static long origin_target(const struct http_head *h, const char **t, size_t *tl)
{
	const char *p = h->target;
	size_t n = h->target_len;
	*t = p;
	*tl = n;
	if (n && (p[0] == '/' || (n == 1 && p[0] == '*')))
		return 0;
	size_t s;
	if (n >= 7 && !strncasecmp(p, "http://", 7))
		s = 7;
	else if (n >= 8 && !strncasecmp(p, "https://", 8))
		s = 8;
	else
		return FWD_E_TARGET;
	size_t e = s;
	while (e < n && p[e] != '/' && p[e] != '?')
		e++;
	if (e == s || memchr(p + s, '@', e - s))
		return FWD_E_TARGET;
	const struct http_header *host = http_head_get(h, "host");
	if (!host || host->value_len != e - s || strncasecmp(host->value, p + s, e - s))
		return FWD_E_TARGET_HOST;
	if (e < n && p[e] == '/') {
		*t = p + e;
		*tl = n - e;
	} else if (e == n && h->method_len == 7 && !memcmp(h->method, "OPTIONS", 7)) {
		*t = "*";
		*tl = 1;
	} else {
		*t = NULL; /* empty path: "/" then the query, if any */
		*tl = 0;
	}
	return 0;
}

long fwd_request_head(const struct http_head *h, const char *client_ip, int client_v6, char *out,
		      size_t cap)
{
	static const char *const skip[] = {"x-forwarded-for", "x-forwarded-proto", "forwarded", NULL};
	const char *target;
	size_t target_len;
	long rc = origin_target(h, &target, &target_len);
	if (rc < 0)
		return rc;
	struct wr w = {out, 0, cap, 0};
	put(&w, h->method, h->method_len);
	put(&w, " ", 1);
	if (target) {
		put(&w, target, target_len);
	} else {
		const char *q = memchr(h->target, '?', h->target_len);
		put(&w, "/", 1);
		if (q)
			put(&w, q, h->target_len - (size_t)(q - h->target));
	}
	/* An HTTP/1.0 client's request goes up as 1.0 so that the answer is not chunked. */
	puts_(&w, h->version_minor == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
	copy_fields(&w, h, skip);
	append_list(&w, h, "X-Forwarded-For", client_ip, "", "");
	puts_(&w, "X-Forwarded-Proto: http\r\n");
	/* RFC 7239: an IPv6 node is quoted and bracketed */
	if (client_v6)
		append_list(&w, h, "Forwarded", "for=\"[", client_ip, "]\";proto=http");
	else
		append_list(&w, h, "Forwarded", "for=", client_ip, ";proto=http");
	put_framing(&w, h);
	put(&w, "\r\n", 2);
	return w.overflow ? FWD_E_SPACE : (long)w.len;
}

long fwd_response_head(const struct http_head *h, int client_minor, int close, char *out, size_t cap)
{
	struct wr w = {out, 0, cap, 0};
	puts_(&w, "HTTP/1.1 ");
	putu(&w, (unsigned)h->status);
	put(&w, " ", 1);
	put(&w, h->reason, h->reason_len);
	put(&w, "\r\n", 2);
	copy_fields(&w, h, NULL);
	if (h->body == HTTP_BODY_NONE) {
		/* HEAD, 204, 304: the upstream's Content-Length describes the representation. */
		for (size_t i = 0; i < h->nheaders; i++) {
			const struct http_header *f = &h->headers[i];
			if (name_is(f->name, f->name_len, "content-length")) {
				puts_(&w, "Content-Length: ");
				put(&w, f->value, f->value_len);
				put(&w, "\r\n", 2);
				break;
			}
		}
	} else {
		put_framing(&w, h);
	}
	if (h->status >= 200) {
		if (close)
			puts_(&w, "Connection: close\r\n");
		else if (client_minor == 0)
			puts_(&w, "Connection: keep-alive\r\n");
	}
	put(&w, "\r\n", 2);
	return w.overflow ? -1 : (long)w.len;
}

long fwd_simple_response(int status, const char *reason, const char *body, int close, char *out,
			 size_t cap)
{
	int n = snprintf(out, cap,
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n%s",
			 status, reason, strlen(body), close ? "Connection: close\r\n" : "", body);
	return n < 0 || (size_t)n >= cap ? -1 : n;
}
