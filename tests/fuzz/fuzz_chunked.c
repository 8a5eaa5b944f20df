/*
 * libFuzzer target for the chunked decoder.
 *
 * The first byte picks max_body and a split pattern; the rest is the body. The decoder must
 * give the same result however the input is split: all at once, one byte at a time, and in
 * pieces of a fuzzer-chosen size; with output and validating only (out == NULL). consumed never
 * exceeds the input and the decoded data never exceeds what was consumed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

struct result {
	ssize_t rc;     /* first error, or total consumed */
	int done;
	size_t out_len;
};

static struct result run(const char *in, size_t n, size_t step, uint64_t max_body, char *out)
{
	struct http_chunked c;
	struct result res = { 0, 0, 0 };
	http_chunked_init(&c, max_body);
	size_t pos = 0;
	while (pos < n && !c.done) {
		size_t k = n - pos < step ? n - pos : step;
		size_t got = 0;
		ssize_t r = http_chunked_feed(&c, in + pos, k, out ? out + res.out_len : NULL, &got);
		if (r < 0) {
			res.rc = r;
			return res;
		}
		CHECK((size_t)r <= k);
		CHECK(got <= (size_t)r);
		CHECK(out || got == 0);
		if ((size_t)r < k)
			CHECK(c.done); /* input is left over only after the end */
		res.out_len += got;
		pos += (size_t)r;
	}
	res.rc = (ssize_t)pos;
	res.done = c.done;
	if (out && c.done)
		CHECK(c.total == res.out_len); /* total counts declared sizes as they start */
	return res;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	uint64_t max_body = (sel & 1) ? 0 : (uint64_t)(sel >> 1) * 4;
	size_t step = 2 + (sel >> 4);
	size_t n = size - 1;
	char *in = malloc(n ? n : 1);
	memcpy(in, data + 1, n);
	char *o1 = malloc(n + 1), *o2 = malloc(n + 1), *o3 = malloc(n + 1);
	struct result a = run(in, n, n ? n : 1, max_body, o1);
	struct result b = run(in, n, 1, max_body, o2);
	struct result c = run(in, n, step, max_body, o3);
	struct result d = run(in, n, n ? n : 1, max_body, NULL);
	CHECK(a.rc == b.rc && a.rc == c.rc && a.rc == d.rc);
	CHECK(a.done == b.done && a.done == c.done && a.done == d.done);
	if (a.rc >= 0) {
		CHECK((size_t)a.rc <= n);
		CHECK(a.out_len == b.out_len && a.out_len == c.out_len);
		CHECK(memcmp(o1, o2, a.out_len) == 0 && memcmp(o1, o3, a.out_len) == 0);
		CHECK(a.out_len <= (size_t)a.rc);
		if (max_body)
			CHECK(a.out_len <= max_body);
	}
	free(in);
	free(o1);
	free(o2);
	free(o3);
	return 0;
}
