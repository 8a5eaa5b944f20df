/*
 * http-parse-dump: prints how src/http/parse.c reads requests, as one JSON line each, for the
 * differential test against llhttp (llhttp-diff.sh).
 *
 * Input on stdin: records "<length>\n<length bytes>", one request message per record (head
 * and body). Output: per record either
 *   {"ok":true,"method":..,"target":..,"version":"1.1","headers":[[name,value],..],
 *    "trailers":[..],"framing":"none|length|chunked","body":..,"consumed":N,"keep_alive":b}
 * or {"ok":false,"error":"<http_strerror>","code":N}. Strings are bytes read as Latin-1, the
 * way node hands header values to JavaScript.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/parse.h"

#define MAX_RECORD (1 << 20)

static void jstr(const char *p, size_t n)
{
	putchar('"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* Trailer fields of a chunked body are not parsed by the decoder (it only validates them);
 * they are split here from the raw bytes, for the comparison only. */
static void dump_trailers(const char *body, size_t n)
{
	/* the last-chunk line "0...\r\n" then trailer lines, then "\r\n" */
	const char *end = body + n;
	const char *p = body;
	/* find the start of the last chunk line: walk chunks again with sizes */
	putchar('[');
	int first = 1;
	for (;;) {
		char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (!eol)
			break;
		unsigned long long sz = strtoull(p, NULL, 16);
		p = eol + 2;
		if (sz) {
			p += sz + 2;
			continue;
		}
		while (p < end) {
			char *le = memmem(p, (size_t)(end - p), "\r\n", 2);
			if (!le || le == p)
				break;
			const char *colon = memchr(p, ':', (size_t)(le - p));
			const char *v = colon + 1, *ve = le;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			printf("%s[", first ? "" : ",");
			jstr(p, (size_t)(colon - p));
			putchar(',');
			jstr(v, (size_t)(ve - v));
			putchar(']');
			first = 0;
			p = le + 2;
		}
		break;
	}
	putchar(']');
}

static void dump(const char *buf, size_t len)
{
	static struct http_head h;
	struct http_limits lim = { 65536, HTTP_MAX_HEADERS_HARD, 0 };
	ssize_t r = http_parse_request(buf, len, &lim, &h);
	if (r == HTTP_E_INCOMPLETE || r < 0) {
		printf("{\"ok\":false,\"error\":");
		jstr(http_strerror((int)r), strlen(http_strerror((int)r)));
		printf(",\"code\":%zd}\n", r);
		return;
	}
	size_t head = (size_t)r, consumed = head;
	const char *framing = "none";
	char *body = malloc(len + 1);
	size_t body_len = 0;
	int trailers = 0;
	if (h.body == HTTP_BODY_LENGTH) {
		framing = "length";
		if (len - head < h.content_length) {
			printf("{\"ok\":false,\"error\":\"incomplete body\",\"code\":1}\n");
			free(body);
			return;
		}
		body_len = (size_t)h.content_length;
		memcpy(body, buf + head, body_len);
		consumed += body_len;
	} else if (h.body == HTTP_BODY_CHUNKED) {
		framing = "chunked";
		struct http_chunked c;
		http_chunked_init(&c, 0);
		ssize_t n = http_chunked_feed(&c, buf + head, len - head, body, &body_len);
		if (n < 0 || !c.done) {
			const char *m = n < 0 ? http_strerror((int)n) : "incomplete body";
			printf("{\"ok\":false,\"error\":");
			jstr(m, strlen(m));
			printf(",\"code\":%zd}\n", n < 0 ? n : 1);
			free(body);
			return;
		}
		consumed += (size_t)n;
		trailers = 1;
	}
	printf("{\"ok\":true,\"method\":");
	jstr(h.method, h.method_len);
	printf(",\"target\":");
	jstr(h.target, h.target_len);
	printf(",\"version\":\"1.%d\",\"headers\":[", h.version_minor);
	for (size_t i = 0; i < h.nheaders; i++) {
		printf("%s[", i ? "," : "");
		jstr(h.headers[i].name, h.headers[i].name_len);
		putchar(',');
		jstr(h.headers[i].value, h.headers[i].value_len);
		putchar(']');
	}
	printf("],\"trailers\":");
	if (trailers)
		dump_trailers(buf + head, consumed - head);
	else
		printf("[]");
	printf(",\"framing\":\"%s\",\"body\":", framing);
	jstr(body, body_len);
	printf(",\"consumed\":%zu,\"keep_alive\":%s}\n", consumed, h.keep_alive ? "true" : "false");
	free(body);
}

int main(void)
{
	char *buf = malloc(MAX_RECORD);
	size_t n;
	while (scanf("%zu", &n) == 1) {
		if (getchar() != '\n' || n > MAX_RECORD) {
			fprintf(stderr, "http-parse-dump: bad record header\n");
			return 2;
		}
		if (fread(buf, 1, n, stdin) != n) {
			fprintf(stderr, "http-parse-dump: short record\n");
			return 2;
		}
		dump(buf, n);
	}
	free(buf);
	return 0;
}
