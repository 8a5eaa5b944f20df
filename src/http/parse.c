/*
 * parse: the strict HTTP/1.1 message parser. See parse.h for the contract and docs/http.md for
 * what is accepted and refused and why.
 *
 * The head is walked one line at a time: memchr finds the LF, the byte before it must be CR,
 * and the line content is checked with table lookups. Only the first lim->max_head bytes are
 * ever looked at, so the outcome for a given prefix never depends on bytes past the head (the
 * fuzz target checks this): an error found in a complete line is final, INCOMPLETE means
 * "more bytes could still make this valid".
 */
#include "http/parse.h"

#include <string.h>

/* Character classes, one bit each, for the hot loops. */
enum {
	C_TCHAR = 1,  /* token: field names and methods (RFC 9110 5.6.2) */
	C_VALUE = 2,  /* field-value bytes: VCHAR, SP, HTAB, obs-text */
	C_TARGET = 4, /* request-target bytes: VCHAR except '#' (a fragment is never sent) */
	C_HEX = 8,
	C_HOST = 16,  /* Host value: reg-name, IP literal, port (RFC 3986 authority without user) */
	C_REASON = 32,
};

static unsigned char cls[256];

/* Filled once at program load, before main and any thread, so the parsers (called from the
 * proxy's worker threads) only ever read it. */
__attribute__((constructor)) static void cls_init(void)
{
	for (int c = 0; c < 256; c++) {
		unsigned char v = 0;
		int alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		if (alnum || (c && strchr("!#$%&'*+-.^_`|~", c)))
			v |= C_TCHAR;
		if ((c >= 0x21 && c <= 0x7e) || c == ' ' || c == '\t' || c >= 0x80)
			v |= C_VALUE | C_REASON;
		if (c >= 0x21 && c <= 0x7e && c != '#')
			v |= C_TARGET;
		if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
			v |= C_HEX;
		if (alnum || (c && strchr("-._~!$&'()*+,;=:%[]", c)))
			v |= C_HOST;
		cls[c] = v;
	}
}

#define IS(c, k) (cls[(unsigned char)(c)] & (k))

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int ieq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	if (alen != blen)
		return 0;
	for (size_t i = 0; i < alen; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return 1;
}

/*
 * Finds the next line in buf[pos..end). Returns the index of its LF, -1 when there is none
 * yet (INCOMPLETE), or -2 when the line ends in a bare LF. A CR inside the line is left to the
 * caller's character checks.
 */
static ssize_t next_lf(const char *buf, size_t pos, size_t end)
{
	const char *lf = memchr(buf + pos, '\n', end - pos);
	if (!lf)
		return -1;
	size_t i = (size_t)(lf - buf);
	if (i == pos || buf[i - 1] != '\r')
		return -2;
	return (ssize_t)i;
}

/*
 * Index of the first byte of p[0..n) that may not appear in a field value (controls other than
 * HTAB, DEL; CR included), or n. Eight bytes at a time: a word with no byte below 0x20 and
 * none equal to 0x7f is valid as a whole (bytes >= 0x80 are obs-text, allowed); a word that
 * may hold one (the test can report false positives, never misses) is checked byte by byte.
 */
static size_t value_scan(const char *p, size_t n)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	size_t i = 0;
	while (i + 8 <= n) {
		uint64_t x, y;
		memcpy(&x, p + i, 8);
		y = x ^ (ones * 0x7f);
		if (((x - ones * 0x20) & ~x & highs) | ((y - ones) & ~y & highs)) {
			for (size_t k = 0; k < 8; k++)
				if (!IS(p[i + k], C_VALUE))
					return i + k;
		}
		i += 8;
	}
	for (; i < n; i++)
		if (!IS(p[i], C_VALUE))
			return i;
	return n;
}

/* A CR inside a line (not the one before LF) is always a bare CR. */
static int has_cr(const char *p, size_t n)
{
	return memchr(p, '\r', n) != NULL;
}

/* Calls fn for each comma-separated element of a list value, trimmed. Empty elements are an
 * error (strict: "a,,b" and a trailing comma are refused). Returns 0 or the fn's error. */
typedef int list_fn(const char *el, size_t n, void *arg);
static int each_element(const char *v, size_t n, list_fn *fn, void *arg, int err_empty)
{
	size_t i = 0;
	for (;;) {
		size_t s = i;
		while (i < n && v[i] != ',')
			i++;
		size_t e = i;
		while (s < e && (v[s] == ' ' || v[s] == '\t'))
			s++;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e == s) {
			if (err_empty)
				return err_empty;
		} else {
			int rc = fn(v + s, e - s, arg);
			if (rc)
				return rc;
		}
		if (i >= n)
			return 0;
		i++; /* the comma */
	}
}

/* State gathered while walking the fields, checked once the head is complete. */
struct fields {
	int cl_count;
	int cl_bad;
	uint64_t cl;
	int te_count;     /* Transfer-Encoding fields */
	int te_chunked;   /* elements seen so far: only one "chunked" and nothing else is valid */
	int te_bad;
	int host_count;
	int host_bad;
	int conn_close, conn_keep, conn_upgrade;
	int has_upgrade;
	int expect_continue;
	int expect_bad;
};

static int te_element(const char *el, size_t n, void *arg)
{
	struct fields *f = arg;
	/* Only a single, final "chunked" is understood; anything after it, or any other coding
	 * (gzip, a parameter, a repeat), makes the framing ambiguous for some recipient. */
	if (f->te_chunked || !ieq(el, n, "chunked")) {
		f->te_bad = 1;
		return 0;
	}
	f->te_chunked = 1;
	return 0;
}

static int conn_element(const char *el, size_t n, void *arg)
{
	struct fields *f = arg;
	if (ieq(el, n, "close"))
		f->conn_close = 1;
	else if (ieq(el, n, "keep-alive"))
		f->conn_keep = 1;
	else if (ieq(el, n, "upgrade"))
		f->conn_upgrade = 1;
	return 0;
}

static void field_semantics(struct fields *f, const struct http_header *hd)
{
	const char *n = hd->name, *v = hd->value;
	size_t nl = hd->name_len, vl = hd->value_len;
	/* Dispatch on length first: most fields are none of these. */
	switch (nl) {
	case 4:
		if (ieq(n, nl, "host")) {
			f->host_count++;
			for (size_t i = 0; i < vl; i++)
				if (!IS(v[i], C_HOST))
					f->host_bad = 1;
		}
		break;
	case 6:
		if (ieq(n, nl, "expect")) {
			if (ieq(v, vl, "100-continue"))
				f->expect_continue = 1;
		}
		break;
	case 7:
		if (ieq(n, nl, "upgrade"))
			f->has_upgrade = 1;
		break;
	case 10:
		if (ieq(n, nl, "connection"))
			each_element(v, vl, conn_element, f, 0);
		break;
	case 14:
		if (ieq(n, nl, "content-length")) {
			/* Even an equal repeat is refused: a proxy that keeps the first and a server
			 * that keeps the last must never be able to disagree. */
			if (++f->cl_count > 1 || vl == 0) {
				f->cl_bad = 1;
				break;
			}
			uint64_t x = 0;
			for (size_t i = 0; i < vl; i++) {
				unsigned d = (unsigned)(unsigned char)v[i] - '0';
				if (d > 9 || x > (UINT64_MAX - d) / 10) {
					f->cl_bad = 1;
					break;
				}
				x = x * 10 + d;
			}
			f->cl = x;
		}
		break;
	case 17:
		if (ieq(n, nl, "transfer-encoding")) {
			f->te_count++;
			if (each_element(v, vl, te_element, f, 1))
				f->te_bad = 1;
		}
		break;
	}
}

/*
 * Parses the header fields starting at `pos` up to and including the empty line. Returns the
 * head length, HTTP_E_INCOMPLETE, or an error.
 */
static ssize_t parse_fields(const char *buf, size_t pos, size_t end, int limit_hit,
			    const struct http_limits *lim, struct http_head *h, struct fields *f)
{
	size_t maxh = lim->max_headers;
	if (maxh > HTTP_MAX_HEADERS_HARD)
		maxh = HTTP_MAX_HEADERS_HARD;
	memset(f, 0, sizeof *f);
	h->nheaders = 0;
	for (;;) {
		ssize_t lf = next_lf(buf, pos, end);
		if (lf == -1)
			return limit_hit ? HTTP_E_HEAD_TOO_LARGE : HTTP_E_INCOMPLETE;
		if (lf == -2)
			return HTTP_E_BARE_CR; /* bare LF: lines end in CRLF only */
		size_t le = (size_t)lf - 1; /* index of the CR */
		if (le == pos)
			return (ssize_t)lf + 1; /* the empty line ends the head */
		const char *p = buf + pos;
		size_t n = le - pos;
		/* No separate scan for CR: neither the name nor the value classes hold it, so the
		 * loops below stop on it and report it as a bare CR. */
		if (p[0] == ' ' || p[0] == '\t')
			return HTTP_E_OBS_FOLD; /* also a first field line starting with whitespace */
		/* p[n] is the CR before LF, in no class: it stops every loop below (a sentinel,
		 * so the loops need no bounds test) */
		size_t i = 0;
		while (IS(p[i], C_TCHAR))
			i++;
		if (i < n && p[i] == '\r')
			return HTTP_E_BARE_CR;
		if (i == n || i == 0)
			return HTTP_E_BAD_HEADER_NAME;
		if (p[i] != ':') {
			if (p[i] != ' ' && p[i] != '\t')
				return HTTP_E_BAD_HEADER_NAME;
			size_t j = i;
			while (j < n && (p[j] == ' ' || p[j] == '\t'))
				j++;
			if (j < n && p[j] == ':')
				return HTTP_E_SPACE_BEFORE_COLON;
			return has_cr(p + j, n - j) ? HTTP_E_BARE_CR : HTTP_E_BAD_HEADER_NAME;
		}
		size_t vs = i + 1;
		size_t bad = vs + value_scan(p + vs, n - vs);
		if (bad < n)
			return p[bad] == '\r' ? HTTP_E_BARE_CR : HTTP_E_BAD_HEADER_VALUE;
		while (vs < n && (p[vs] == ' ' || p[vs] == '\t'))
			vs++;
		size_t ve = n;
		while (ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'))
			ve--;
		if (h->nheaders >= maxh)
			return HTTP_E_TOO_MANY_HEADERS;
		struct http_header *hd = &h->headers[h->nheaders++];
		hd->name = p;
		hd->name_len = i;
		hd->value = p + vs;
		hd->value_len = ve - vs;
		field_semantics(f, hd);
		pos = (size_t)lf + 1;
	}
}

/* "HTTP/1.0" or "HTTP/1.1" exactly; returns the minor version or -1. */
static int parse_version(const char *p, size_t n)
{
	if (n != 8 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1'))
		return -1;
	return p[7] - '0';
}

/* Limits the scan to max_head bytes: the head can never be longer. */
static size_t scan_end(size_t len, const struct http_limits *lim, int *limit_hit)
{
	*limit_hit = len >= lim->max_head;
	return *limit_hit ? lim->max_head : len;
}

/* Common end-of-head checks; `is_request` selects the rules. */
static ssize_t framing(struct http_head *h, const struct fields *f, const struct http_limits *lim,
		       int is_request, int no_body)
{
	if (f->te_count && f->cl_count)
		return HTTP_E_CL_AND_TE;
	if (f->cl_bad)
		return HTTP_E_BAD_CONTENT_LENGTH;
	/* RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing. */
	if (f->te_count && (f->te_bad || !f->te_chunked || h->version_minor == 0))
		return HTTP_E_BAD_TRANSFER_ENCODING;
	if (is_request) {
		if (f->host_count > 1 || f->host_bad)
			return HTTP_E_BAD_HEADER_VALUE;
		if (h->version_minor == 1 && f->host_count == 0)
			return HTTP_E_MISSING_HOST;
	}
	h->content_length = 0;
	if (no_body)
		h->body = HTTP_BODY_NONE;
	else if (f->te_count)
		h->body = HTTP_BODY_CHUNKED;
	else if (f->cl_count) {
		h->body = HTTP_BODY_LENGTH;
		h->content_length = f->cl;
		if (lim->max_body && f->cl > lim->max_body)
			return HTTP_E_BODY_TOO_LARGE;
	} else
		h->body = is_request ? HTTP_BODY_NONE : HTTP_BODY_UNTIL_CLOSE;
	h->keep_alive = h->version_minor == 1 ? !f->conn_close : (f->conn_keep && !f->conn_close);
	if (h->body == HTTP_BODY_UNTIL_CLOSE)
		h->keep_alive = 0; /* the close is what ends the body */
	h->expect_continue = is_request && h->version_minor == 1 && f->expect_continue;
	h->upgrade = f->conn_upgrade && f->has_upgrade;
	return 0;
}

static int target_ok(const char *m, size_t ml, const char *t, size_t tl)
{
	if (ml == 7 && memcmp(m, "CONNECT", 7) == 0) {
		/* authority-form: host:port, nothing else */
		for (size_t i = 0; i < tl; i++)
			if (!IS(t[i], C_HOST) || t[i] == '/')
				return 0;
		return memchr(t, ':', tl) != NULL;
	}
	if (t[0] == '/')
		return 1; /* origin-form */
	if (tl == 1 && t[0] == '*')
		return ml == 7 && memcmp(m, "OPTIONS", 7) == 0; /* asterisk-form */
	/* absolute-form: scheme ":" ... ; a scheme starts with a letter */
	size_t i = 0;
	if (!((t[0] | 32) >= 'a' && (t[0] | 32) <= 'z'))
		return 0;
	while (i < tl && (((t[i] | 32) >= 'a' && (t[i] | 32) <= 'z') || (t[i] >= '0' && t[i] <= '9') ||
			  t[i] == '+' || t[i] == '-' || t[i] == '.'))
		i++;
	return i < tl && t[i] == ':' && i + 1 < tl;
}

ssize_t http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
			   struct http_head *h)
{
	int limit_hit;
	size_t end = scan_end(len, lim, &limit_hit);
	size_t pos = 0;
	/* RFC 9112 2.2: a server SHOULD ignore empty lines (CRLF only) before the request line;
	 * clients send one after a POST body now and then. */
	while (end - pos >= 2 && buf[pos] == '\r' && buf[pos + 1] == '\n')
		pos += 2;
	if (pos < end && buf[pos] == '\n')
		return HTTP_E_BARE_CR;
	const char *lfp = memchr(buf + pos, '\n', end - pos);
	if (!lfp) {
		/* Fail early on a method that can never become valid, so garbage is refused at once
		 * instead of after max_head bytes (and before the size check, which a shorter
		 * prefix would not see). */
		for (size_t i = pos; i < end && buf[i] != ' '; i++)
			if (!IS(buf[i], C_TCHAR))
				return buf[i] == '\r' && i + 1 == end ? (limit_hit ? HTTP_E_HEAD_TOO_LARGE : HTTP_E_INCOMPLETE) :
				       buf[i] == '\r' ? HTTP_E_BARE_CR : HTTP_E_BAD_METHOD;
		return limit_hit ? HTTP_E_HEAD_TOO_LARGE : HTTP_E_INCOMPLETE;
	}
	ssize_t lf = lfp - buf;
	int bare_lf = (size_t)lf == pos || buf[lf - 1] != '\r';
	const char *p = buf + pos;
	size_t n = (size_t)lf - pos - (bare_lf ? 0 : 1);
	/* The method is checked first, in the same order as the early check above, so that a
	 * prefix and its completion always give the same answer. */
	size_t i = 0;
	while (IS(p[i], C_TCHAR)) /* p[n] is CR or LF: a sentinel */
		i++;
	if (i < n && p[i] == '\r')
		return HTTP_E_BARE_CR;
	if (i < n && p[i] != ' ')
		return HTTP_E_BAD_METHOD;
	if (bare_lf)
		return HTTP_E_BARE_CR; /* lines end in CRLF only */
	if (i == 0 || i == n)
		return HTTP_E_BAD_METHOD;
	if (has_cr(p + i, n - i))
		return HTTP_E_BARE_CR;
	h->method = p;
	h->method_len = i;
	size_t ts = ++i;
	while (IS(p[i], C_TARGET)) /* stops at the CR at p[n] */
		i++;
	if (i == ts || i == n || p[i] != ' ')
		return HTTP_E_BAD_TARGET;
	h->target = p + ts;
	h->target_len = i - ts;
	if (!target_ok(h->method, h->method_len, h->target, h->target_len))
		return HTTP_E_BAD_TARGET;
	i++;
	int minor = parse_version(p + i, n - i);
	if (minor < 0)
		return HTTP_E_BAD_VERSION;
	h->version_minor = minor;
	h->status = 0;
	h->reason = NULL;
	h->reason_len = 0;

	struct fields f;
	ssize_t r = parse_fields(buf, (size_t)lf + 1, end, limit_hit, lim, h, &f);
	if (r < 0 || r == HTTP_E_INCOMPLETE)
		return r;
	ssize_t e = framing(h, &f, lim, 1, 0);
	return e ? e : r;
}

ssize_t http_parse_response(const char *buf, size_t len, const struct http_limits *lim,
			    const char *request_method, size_t request_method_len,
			    struct http_head *h)
{
	int limit_hit;
	size_t end = scan_end(len, lim, &limit_hit);
	const char *lfp = memchr(buf, '\n', end);
	if (!lfp) {
		size_t k = end < 5 ? end : 5;
		if (memcmp(buf, "HTTP/", k) != 0)
			return HTTP_E_BAD_VERSION;
		return limit_hit ? HTTP_E_HEAD_TOO_LARGE : HTTP_E_INCOMPLETE;
	}
	ssize_t lf = lfp - buf;
	/* same order as the early check above */
	if (memcmp(buf, "HTTP/", lf < 5 ? (size_t)lf : 5) != 0)
		return HTTP_E_BAD_VERSION;
	if (lf == 0 || buf[lf - 1] != '\r')
		return HTTP_E_BARE_CR;
	size_t n = (size_t)lf - 1;
	if (n < 5)
		return HTTP_E_BAD_VERSION;
	if (has_cr(buf, n))
		return HTTP_E_BARE_CR;
	if (n < 12 || buf[8] != ' ')
		return n < 8 || parse_version(buf, 8) < 0 ? HTTP_E_BAD_VERSION : HTTP_E_BAD_STATUS;
	int minor = parse_version(buf, 8);
	if (minor < 0)
		return HTTP_E_BAD_VERSION;
	int st = 0;
	for (int k = 9; k < 12; k++) {
		if (buf[k] < '0' || buf[k] > '9')
			return HTTP_E_BAD_STATUS;
		st = st * 10 + (buf[k] - '0');
	}
	if (st < 100 || st > 599)
		return HTTP_E_BAD_STATUS;
	/* "HTTP/1.1 200\r\n" (no reason, no SP) is accepted: servers send it and it is not
	 * ambiguous. */
	size_t rs = 12;
	if (n > 12) {
		if (buf[12] != ' ')
			return HTTP_E_BAD_STATUS;
		rs = 13;
		for (size_t k = rs; k < n; k++)
			if (!IS(buf[k], C_REASON))
				return HTTP_E_BAD_STATUS;
	}
	h->method = NULL;
	h->method_len = 0;
	h->target = NULL;
	h->target_len = 0;
	h->version_minor = minor;
	h->status = st;
	h->reason = buf + rs;
	h->reason_len = n - rs;

	struct fields f;
	ssize_t r = parse_fields(buf, (size_t)lf + 1, end, limit_hit, lim, h, &f);
	if (r < 0 || r == HTTP_E_INCOMPLETE)
		return r;
	int is_head = request_method && ieq(request_method, request_method_len, "HEAD");
	int is_connect = request_method && ieq(request_method, request_method_len, "CONNECT");
	int no_body = is_head || st < 200 || st == 204 || st == 304 || (is_connect && st < 300);
	ssize_t e = framing(h, &f, lim, 0, no_body);
	return e ? e : r;
}

const struct http_header *http_head_get(const struct http_head *h, const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < h->nheaders; i++)
		if (h->headers[i].name_len == nl && ieq(h->headers[i].name, nl, name))
			return &h->headers[i];
	return NULL;
}

const char *http_strerror(int code)
{
	switch (code) {
	case HTTP_OK: return "ok";
	case HTTP_E_INCOMPLETE: return "incomplete message";
	case HTTP_E_HEAD_TOO_LARGE: return "request line or header block too large";
	case HTTP_E_TOO_MANY_HEADERS: return "too many header fields";
	case HTTP_E_BAD_METHOD: return "invalid method";
	case HTTP_E_BAD_TARGET: return "invalid request target";
	case HTTP_E_BAD_VERSION: return "invalid or unsupported HTTP version (use HTTP/1.0 or HTTP/1.1)";
	case HTTP_E_BARE_CR: return "line not ending in CRLF (bare CR or bare LF)";
	case HTTP_E_OBS_FOLD: return "obsolete line folding is not accepted";
	case HTTP_E_SPACE_BEFORE_COLON: return "whitespace between field name and colon";
	case HTTP_E_BAD_HEADER_NAME: return "invalid header field name";
	case HTTP_E_BAD_HEADER_VALUE: return "invalid header field value";
	case HTTP_E_CL_AND_TE: return "both Content-Length and Transfer-Encoding";
	case HTTP_E_BAD_CONTENT_LENGTH: return "invalid, repeated or conflicting Content-Length";
	case HTTP_E_BAD_TRANSFER_ENCODING: return "unsupported Transfer-Encoding (only a single final chunked is accepted)";
	case HTTP_E_BODY_TOO_LARGE: return "body too large";
	case HTTP_E_BAD_STATUS: return "invalid status line";
	case HTTP_E_BAD_CHUNK: return "invalid chunked encoding";
	case HTTP_E_MISSING_HOST: return "missing Host header in an HTTP/1.1 request";
	}
	return "unknown parser error";
}

/* ---- chunked decoder ---- */

/* Bounds: a size line with extensions, and all trailer fields together. */
#define CHUNK_LINE_MAX 4096
#define TRAILER_MAX 8192

enum {
	CK_SIZE0,     /* first hex digit expected */
	CK_SIZE,      /* more hex digits, or ext / CRLF */
	CK_SIZE_WS,   /* whitespace after the size: only ';' may follow */
	CK_EXT,       /* chunk extension bytes until CR */
	CK_SIZE_LF,   /* CR seen, LF expected */
	CK_DATA,
	CK_DATA_CR,
	CK_DATA_LF,
	CK_TRAILER0,  /* start of a trailer line, or CR of the final empty line */
	CK_TNAME,
	CK_TVALUE,
	CK_TLF,       /* CR of a trailer line seen */
	CK_LAST_LF,   /* CR of the final empty line seen */
	CK_DONE,
};

void http_chunked_init(struct http_chunked *c, uint64_t max_body)
{
	memset(c, 0, sizeof *c);
	c->state = CK_SIZE0;
	c->max_body = max_body;
}

ssize_t http_chunked_feed(struct http_chunked *c, const char *in, size_t n, char *out,
			  size_t *out_len)
{
	size_t i = 0, o = 0;
	if (out_len)
		*out_len = 0;
	while (i < n && c->state != CK_DONE) {
		unsigned char ch = (unsigned char)in[i];
		switch (c->state) {
		case CK_DATA: {
			size_t take = n - i;
			if (take > c->remaining)
				take = (size_t)c->remaining;
			if (out) {
				memmove(out + o, in + i, take); /* in place is allowed: out <= in */
				o += take;
			}
			i += take;
			c->remaining -= take;
			if (c->remaining == 0)
				c->state = CK_DATA_CR;
			continue;
		}
		case CK_SIZE0:
		case CK_SIZE:
			if (IS(ch, C_HEX)) {
				unsigned d = ch <= '9' ? ch - '0' : (ch | 32) - 'a' + 10;
				if (c->remaining > (UINT64_MAX >> 4))
					return HTTP_E_BAD_CHUNK; /* overflow */
				c->remaining = (c->remaining << 4) | d;
				c->state = CK_SIZE;
			} else if (c->state == CK_SIZE0) {
				return HTTP_E_BAD_CHUNK; /* empty or non-hex size */
			} else if (ch == ';') {
				c->state = CK_EXT;
			} else if (ch == ' ' || ch == '\t') {
				c->state = CK_SIZE_WS;
			} else if (ch == '\r') {
				c->state = CK_SIZE_LF;
			} else {
				return HTTP_E_BAD_CHUNK;
			}
			break;
		case CK_SIZE_WS:
			if (ch == ';')
				c->state = CK_EXT;
			else if (ch != ' ' && ch != '\t')
				return HTTP_E_BAD_CHUNK;
			break;
		case CK_EXT:
			/* Extensions are skipped, not interpreted; their bytes must still be ones a
			 * field value may hold, and the line is bounded below. */
			if (ch == '\r')
				c->state = CK_SIZE_LF;
			else if (!IS(ch, C_VALUE))
				return HTTP_E_BAD_CHUNK;
			break;
		case CK_SIZE_LF:
			if (ch != '\n')
				return HTTP_E_BAD_CHUNK;
			c->line_len = 0;
			if (c->remaining == 0) {
				c->state = CK_TRAILER0;
			} else {
				if (c->max_body && (c->remaining > c->max_body ||
						    c->total > c->max_body - c->remaining))
					return HTTP_E_BODY_TOO_LARGE;
				c->total += c->remaining;
				c->state = CK_DATA;
			}
			i++;
			continue;
		case CK_DATA_CR:
			if (ch != '\r')
				return HTTP_E_BAD_CHUNK;
			c->state = CK_DATA_LF;
			break;
		case CK_DATA_LF:
			if (ch != '\n')
				return HTTP_E_BAD_CHUNK;
			c->state = CK_SIZE0;
			c->line_len = 0;
			i++;
			continue;
		case CK_TRAILER0:
			if (ch == '\r')
				c->state = CK_LAST_LF;
			else if (IS(ch, C_TCHAR))
				c->state = CK_TNAME;
			else
				return HTTP_E_BAD_CHUNK; /* folding or garbage */
			break;
		case CK_TNAME:
			if (ch == ':')
				c->state = CK_TVALUE;
			else if (!IS(ch, C_TCHAR))
				return HTTP_E_BAD_CHUNK;
			break;
		case CK_TVALUE:
			if (ch == '\r')
				c->state = CK_TLF;
			else if (!IS(ch, C_VALUE))
				return HTTP_E_BAD_CHUNK;
			break;
		case CK_TLF:
			if (ch != '\n')
				return HTTP_E_BAD_CHUNK;
			c->state = CK_TRAILER0;
			break;
		case CK_LAST_LF:
			if (ch != '\n')
				return HTTP_E_BAD_CHUNK;
			c->state = CK_DONE;
			c->done = 1;
			i++;
			continue;
		default:
			return HTTP_E_BAD_CHUNK;
		}
		/* Every byte outside chunk data belongs to a bounded line. */
		c->line_len++;
		if (c->state >= CK_TRAILER0 ? c->line_len > TRAILER_MAX : c->line_len > CHUNK_LINE_MAX)
			return HTTP_E_BAD_CHUNK;
		i++;
	}
	if (out_len)
		*out_len = o;
	return (ssize_t)i;
}
