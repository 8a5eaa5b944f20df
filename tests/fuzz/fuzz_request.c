/*
 * libFuzzer target for the head parser (requests and responses).
 *
 * The first input byte picks the limits; the rest is the message. Besides "no crash, no
 * out-of-bounds read" (ASan), it checks the parser's contract:
 *  - the return is INCOMPLETE, a known negative code, or a head length in [2, min(len, max_head)];
 *  - every pointer in the head lies inside the head;
 *  - the head alone, and the head followed by other bytes, parse to the same result;
 *  - a prefix never gives an answer other than INCOMPLETE or the full input's error.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

static int known(ssize_t r)
{
	return r == HTTP_E_INCOMPLETE || (r <= HTTP_E_HEAD_TOO_LARGE && r >= HTTP_E_MISSING_HOST);
}

static void inside(const char *p, size_t n, const char *buf, size_t len)
{
	if (n == 0)
		return;
	CHECK(p >= buf && p + n <= buf + len);
}

static ssize_t parse(int resp, const char *b, size_t n, const struct http_limits *lim,
		     struct http_head *h)
{
	return resp ? http_parse_response(b, n, lim, "GET", 3, h) : http_parse_request(b, n, lim, h);
}

static void check(int resp, const char *buf, size_t len, const struct http_limits *lim)
{
	static struct http_head h, h2;
	ssize_t r = parse(resp, buf, len, lim, &h);
	CHECK(known(r) || r > 1);
	/* prefixes: every one for short inputs, a few for long ones */
	size_t upto = r > 1 ? (size_t)r : len;
	size_t stride = upto <= 256 ? 1 : upto / 16;
	for (size_t k = 0; k < upto; k += stride) {
		ssize_t rp = parse(resp, buf, k, lim, &h2);
		CHECK(rp == HTTP_E_INCOMPLETE || (r < 0 && rp == r));
	}
	if (r <= 0 || r == HTTP_E_INCOMPLETE)
		return;
	size_t n = (size_t)r;
	CHECK(n <= len && n <= lim->max_head);
	CHECK(h.nheaders <= lim->max_headers && h.nheaders <= HTTP_MAX_HEADERS_HARD);
	for (size_t i = 0; i < h.nheaders; i++) {
		CHECK(h.headers[i].name_len > 0);
		inside(h.headers[i].name, h.headers[i].name_len, buf, n);
		inside(h.headers[i].value, h.headers[i].value_len, buf, n);
	}
	if (!resp) {
		inside(h.method, h.method_len, buf, n);
		inside(h.target, h.target_len, buf, n);
		CHECK(h.body != HTTP_BODY_UNTIL_CLOSE);
	} else {
		CHECK(h.status >= 100 && h.status <= 599);
	}
	CHECK(h.version_minor == 0 || h.version_minor == 1);
	if (lim->max_body && h.body == HTTP_BODY_LENGTH)
		CHECK(h.content_length <= lim->max_body);
	/* exactly the head, in a buffer of its own size (ASan catches any read past it) */
	char *copy = malloc(n + 32);
	memcpy(copy, buf, n);
	CHECK(parse(resp, copy, n, lim, &h2) == r);
	CHECK(h2.nheaders == h.nheaders && h2.body == h.body && h2.keep_alive == h.keep_alive);
	/* what follows the head does not matter */
	memset(copy + n, '\r', 32);
	CHECK(parse(resp, copy, n + 32, lim, &h2) == r);
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct http_limits lim;
	uint8_t sel = data[0];
	lim.max_head = (sel & 1) ? 8192 : 64 + (sel >> 2);
	lim.max_headers = (sel & 2) ? 128 : 4;
	lim.max_body = (sel & 4) ? 0 : 1000;
	/* an exact-size copy so the sanitizer sees any overread */
	char *buf = malloc(size - 1 ? size - 1 : 1);
	memcpy(buf, data + 1, size - 1);
	check(0, buf, size - 1, &lim);
	check(1, buf, size - 1, &lim);
	free(buf);
	return 0;
}
