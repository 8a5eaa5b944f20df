/*
 * Runs the declarative parser cases in tests/unit/http/cases/ (*.txt, format in
 * cases/README). Besides the stated expectation, every case checks two invariants: each prefix
 * of a request gives INCOMPLETE or the same error (never a different answer), and bytes after
 * a complete head do not change the result. Chunked cases are also fed one byte at a time.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/parse.h"

#ifndef CASES_DIR
#error CASES_DIR must be defined
#endif

struct tcase {
	char name[160];
	int line;
	char kind[64];
	char *input;
	size_t input_len;
	char expect[64][4096];
	int nexpect;
	struct http_limits lim;
	char req_method[64];
};

static int unescape(const char *s, char *out)
{
	int n = 0;
	while (*s) {
		if (*s != '\\') {
			out[n++] = *s++;
			continue;
		}
		s++;
		switch (*s) {
		case 'r': out[n++] = '\r'; s++; break;
		case 'n': out[n++] = '\n'; s++; break;
		case 't': out[n++] = '\t'; s++; break;
		case '0': out[n++] = 0; s++; break;
		case '\\': out[n++] = '\\'; s++; break;
		case 'x': {
			char hx[3] = { s[1], s[2], 0 };
			out[n++] = (char)strtol(hx, NULL, 16);
			s += 3;
			break;
		}
		default: cr_assert_fail("bad escape \\%c", *s);
		}
	}
	return n;
}

static const struct {
	const char *name;
	int code;
} codes[] = {
	{ "HEAD_TOO_LARGE", HTTP_E_HEAD_TOO_LARGE }, { "TOO_MANY_HEADERS", HTTP_E_TOO_MANY_HEADERS },
	{ "BAD_METHOD", HTTP_E_BAD_METHOD }, { "BAD_TARGET", HTTP_E_BAD_TARGET },
	{ "BAD_VERSION", HTTP_E_BAD_VERSION }, { "BARE_CR", HTTP_E_BARE_CR },
	{ "OBS_FOLD", HTTP_E_OBS_FOLD }, { "SPACE_BEFORE_COLON", HTTP_E_SPACE_BEFORE_COLON },
	{ "BAD_HEADER_NAME", HTTP_E_BAD_HEADER_NAME }, { "BAD_HEADER_VALUE", HTTP_E_BAD_HEADER_VALUE },
	{ "CL_AND_TE", HTTP_E_CL_AND_TE }, { "BAD_CONTENT_LENGTH", HTTP_E_BAD_CONTENT_LENGTH },
	{ "BAD_TRANSFER_ENCODING", HTTP_E_BAD_TRANSFER_ENCODING },
	{ "BODY_TOO_LARGE", HTTP_E_BODY_TOO_LARGE }, { "BAD_STATUS", HTTP_E_BAD_STATUS },
	{ "BAD_CHUNK", HTTP_E_BAD_CHUNK }, { "MISSING_HOST", HTTP_E_MISSING_HOST },
};

static int code_of(const char *name)
{
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
		if (!strcmp(codes[i].name, name))
			return codes[i].code;
	cr_assert_fail("unknown error code %s", name);
	return 0;
}

static const char *body_name(enum http_body_kind k)
{
	switch (k) {
	case HTTP_BODY_NONE: return "none";
	case HTTP_BODY_LENGTH: return "length";
	case HTTP_BODY_CHUNKED: return "chunked";
	case HTTP_BODY_UNTIL_CLOSE: return "close";
	}
	return "?";
}

static ssize_t parse(const struct tcase *t, const char *b, size_t n, struct http_head *h)
{
	if (!strcmp(t->kind, "response"))
		return http_parse_response(b, n, &t->lim, t->req_method[0] ? t->req_method : NULL,
					   strlen(t->req_method), h);
	return http_parse_request(b, n, &t->lim, h);
}

static char *mem2str(const char *p, size_t n)
{
	static char s[4][4096];
	static int k;
	k = (k + 1) % 4;
	if (n >= sizeof s[0])
		n = sizeof s[0] - 1;
	memcpy(s[k], p, n);
	s[k][n] = 0;
	return s[k];
}

static int check_head_case(const struct tcase *t)
{
	static struct http_head h;
	int fails = 0;
	ssize_t r = parse(t, t->input, t->input_len, &h);
	const char *first = t->expect[0];
	if (!strncmp(first, "error ", 6)) {
		int want = code_of(first + 6);
		cr_expect_eq(r, want, "%s (line %d): got %zd (%s), want %s", t->name, t->line, r,
			     http_strerror((int)r), first + 6);
		fails += r != want;
	} else if (!strcmp(first, "incomplete")) {
		cr_expect_eq(r, HTTP_E_INCOMPLETE, "%s (line %d): got %zd (%s), want incomplete",
			     t->name, t->line, r, http_strerror((int)r));
		fails += r != HTTP_E_INCOMPLETE;
	} else {
		cr_assert_str_eq(first, "ok", "%s: first expectation must be ok/error/incomplete", t->name);
		if (r <= 1) {
			cr_expect(0, "%s (line %d): got %zd (%s), want ok", t->name, t->line, r,
				  http_strerror((int)r));
			return 1;
		}
		size_t consumed = t->input_len;
		size_t nh = 0;
		int check_headers = 0;
		for (int i = 1; i < t->nexpect; i++) {
			char key[32], val[256] = "";
			if (sscanf(t->expect[i], "%31s %255[^\n]", key, val) < 1)
				continue;
			char got[4096];
			got[0] = 0;
			if (!strcmp(key, "method"))
				snprintf(got, sizeof got, "%s", mem2str(h.method, h.method_len));
			else if (!strcmp(key, "target"))
				snprintf(got, sizeof got, "%s", mem2str(h.target, h.target_len));
			else if (!strcmp(key, "version"))
				snprintf(got, sizeof got, "%d", h.version_minor);
			else if (!strcmp(key, "status"))
				snprintf(got, sizeof got, "%d", h.status);
			else if (!strcmp(key, "reason"))
				snprintf(got, sizeof got, "%s", mem2str(h.reason, h.reason_len));
			else if (!strcmp(key, "body")) {
				if (h.body == HTTP_BODY_LENGTH)
					snprintf(got, sizeof got, "length %llu",
						 (unsigned long long)h.content_length);
				else
					snprintf(got, sizeof got, "%s", body_name(h.body));
			} else if (!strcmp(key, "keep_alive"))
				snprintf(got, sizeof got, "%d", h.keep_alive);
			else if (!strcmp(key, "expect_continue"))
				snprintf(got, sizeof got, "%d", h.expect_continue);
			else if (!strcmp(key, "upgrade"))
				snprintf(got, sizeof got, "%d", h.upgrade);
			else if (!strcmp(key, "consumed")) {
				consumed = strtoul(val, NULL, 10);
				snprintf(got, sizeof got, "%zd", r);
			} else if (!strcmp(key, "headers")) {
				check_headers = 1;
				snprintf(got, sizeof got, "%zu", h.nheaders);
			} else if (!strcmp(key, "header")) {
				char want[512];
				int wl = unescape(val, want);
				want[wl] = 0;
				if (nh < h.nheaders)
					snprintf(got, sizeof got, "%s: %s",
						 mem2str(h.headers[nh].name, h.headers[nh].name_len),
						 mem2str(h.headers[nh].value, h.headers[nh].value_len));
				nh++;
				cr_expect_str_eq(got, want, "%s: header %zu", t->name, nh);
				fails += strcmp(got, want) != 0;
				continue;
			} else {
				cr_assert_fail("%s: unknown expectation '%s'", t->name, key);
			}
			cr_expect_str_eq(got, val, "%s (line %d): %s", t->name, t->line, key);
			fails += strcmp(got, val) != 0;
		}
		(void)check_headers;
		cr_expect_eq((size_t)r, consumed, "%s: consumed %zd, want %zu", t->name, r, consumed);
		fails += (size_t)r != consumed;
		/* bytes after the head never change the answer */
		char *more = malloc((size_t)r + 64);
		memcpy(more, t->input, (size_t)r);
		memset(more + r, 'X', 64);
		more[r] = '\r';
		static struct http_head h2;
		ssize_t r2 = parse(t, more, (size_t)r + 64, &h2);
		cr_expect_eq(r2, r, "%s: trailing bytes changed the result", t->name);
		free(more);
	}
	/* every strict prefix is INCOMPLETE or the final error */
	size_t upto = r > 1 ? (size_t)r : t->input_len;
	for (size_t n = 0; n < upto; n++) {
		static struct http_head hp;
		ssize_t rp = parse(t, t->input, n, &hp);
		int ok = rp == HTTP_E_INCOMPLETE || (r < 0 && rp == r);
		cr_expect(ok, "%s: prefix of %zu bytes gave %zd (%s), full gave %zd", t->name, n, rp,
			  http_strerror((int)rp), r);
		if (!ok) {
			fails++;
			break;
		}
	}
	return fails;
}

static int check_chunked_case(const struct tcase *t)
{
	int fails = 0;
	struct http_chunked c;
	char *out = malloc(t->input_len + 1);
	size_t out_len = 0;
	http_chunked_init(&c, t->lim.max_body);
	ssize_t r = http_chunked_feed(&c, t->input, t->input_len, out, &out_len);
	/* byte by byte must agree */
	struct http_chunked c1;
	char *out1 = malloc(t->input_len + 1);
	size_t o1 = 0, used1 = 0;
	ssize_t r1 = 0;
	http_chunked_init(&c1, t->lim.max_body);
	for (size_t i = 0; i < t->input_len && !c1.done; i++) {
		size_t got = 0;
		r1 = http_chunked_feed(&c1, t->input + i, 1, out1 + o1, &got);
		if (r1 < 0)
			break;
		o1 += got;
		used1 += (size_t)r1;
	}
	const char *first = t->expect[0];
	if (!strncmp(first, "error ", 6)) {
		int want = code_of(first + 6);
		cr_expect_eq(r, want, "%s (line %d): got %zd (%s), want %s", t->name, t->line, r,
			     http_strerror((int)r), first + 6);
		cr_expect_eq(r1, want, "%s: byte by byte got %zd", t->name, r1);
		fails += r != want || r1 != want;
	} else {
		int want_done = strcmp(first, "incomplete") != 0;
		cr_expect(r >= 0, "%s (line %d): got %zd (%s)", t->name, t->line, r, http_strerror((int)r));
		cr_expect_eq(c.done, want_done, "%s: done=%d", t->name, c.done);
		cr_expect_eq(c1.done, c.done, "%s: byte by byte done differs", t->name);
		cr_expect(r1 >= 0, "%s: byte by byte failed %zd", t->name, r1);
		if (r >= 0) {
			cr_expect_eq((size_t)r, used1, "%s: consumed %zd vs byte by byte %zu", t->name, r, used1);
			cr_expect_eq(out_len, o1, "%s: decoded length differs byte by byte", t->name);
			cr_expect(memcmp(out, out1, o1 < out_len ? o1 : out_len) == 0, "%s: decoded bytes differ", t->name);
		}
		for (int i = 1; i < t->nexpect; i++) {
			char key[32], val[256] = "";
			if (sscanf(t->expect[i], "%31s %255[^\n]", key, val) < 1)
				continue;
			if (!strcmp(key, "decoded")) {
				char want[512];
				int wl = unescape(val, want);
				cr_expect(out_len == (size_t)wl && memcmp(out, want, (size_t)wl) == 0,
					  "%s: decoded '%s', want '%s'", t->name, mem2str(out, out_len), val);
				fails += !(out_len == (size_t)wl && memcmp(out, want, (size_t)wl) == 0);
			} else if (!strcmp(key, "consumed")) {
				cr_expect_eq(r, (ssize_t)strtol(val, NULL, 10), "%s: consumed %zd, want %s",
					     t->name, r, val);
				fails += r != (ssize_t)strtol(val, NULL, 10);
			} else {
				cr_assert_fail("%s: unknown expectation '%s'", t->name, key);
			}
		}
		/* decoding without output finds the same end */
		struct http_chunked c2;
		http_chunked_init(&c2, t->lim.max_body);
		ssize_t r2 = http_chunked_feed(&c2, t->input, t->input_len, NULL, NULL);
		cr_expect_eq(r2, r, "%s: validate-only result differs", t->name);
	}
	free(out);
	free(out1);
	return fails;
}

/* Reads a case file and runs every case; returns the number of cases. */
static int run_file(const char *file)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", CASES_DIR, file);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "cannot open %s", path);
	char line[4000];
	static struct tcase t;
	int ncases = 0, lineno = 0, state = 0; /* 0: header, 1: input, 2: expect */
	char *inbuf = malloc(1 << 20);
	for (;;) {
		char *got = fgets(line, sizeof line, f);
		lineno++;
		if (got)
			line[strcspn(line, "\n")] = 0;
		if (!got || !strncmp(line, "=== ", 4)) {
			if (state == 2) {
				t.input = inbuf;
				if (!strcmp(t.kind, "chunked"))
					check_chunked_case(&t);
				else
					check_head_case(&t);
				ncases++;
			}
			if (!got)
				break;
			memset(&t, 0, sizeof t);
			snprintf(t.name, sizeof t.name, "%.40s:%.100s", file, line + 4);
			t.line = lineno;
			strcpy(t.kind, "request");
			t.lim.max_head = 8192;
			t.lim.max_headers = 64;
			t.lim.max_body = 0;
			state = 0;
			continue;
		}
		if (state == 0) {
			if (!strcmp(line, "<<<")) {
				state = 1;
				continue;
			}
			char key[32], val[64];
			if (line[0] == '#' || sscanf(line, "%31s %63s", key, val) != 2)
				continue;
			if (!strcmp(key, "kind"))
				snprintf(t.kind, sizeof t.kind, "%s", val);
			else if (!strcmp(key, "max_head"))
				t.lim.max_head = strtoul(val, NULL, 10);
			else if (!strcmp(key, "max_headers"))
				t.lim.max_headers = strtoul(val, NULL, 10);
			else if (!strcmp(key, "max_body"))
				t.lim.max_body = strtoull(val, NULL, 10);
			else if (!strcmp(key, "req_method"))
				snprintf(t.req_method, sizeof t.req_method, "%s", val);
			else if (!strcmp(key, "repeat")) {
				/* "repeat N TEXT": not an option, handled in the input block */
			} else
				cr_assert_fail("%s line %d: unknown option %s", file, lineno, key);
		} else if (state == 1) {
			if (!strcmp(line, ">>>")) {
				state = 2;
				continue;
			}
			/* "@repeat N text" expands to N copies of text: for the limits cases */
			if (!strncmp(line, "@repeat ", 8)) {
				int nrep = atoi(line + 8);
				char *txt = strchr(line + 8, ' ');
				cr_assert_not_null(txt);
				char one[4096];
				int ol = unescape(txt + 1, one);
				for (int k = 0; k < nrep; k++) {
					cr_assert(t.input_len + (size_t)ol < (1 << 20));
					memcpy(inbuf + t.input_len, one, (size_t)ol);
					t.input_len += (size_t)ol;
				}
				continue;
			}
			cr_assert(t.input_len + strlen(line) < (1 << 20));
			t.input_len += (size_t)unescape(line, inbuf + t.input_len);
		} else {
			if (line[0] == '#' || line[0] == 0)
				continue;
			cr_assert(t.nexpect < 64);
			snprintf(t.expect[t.nexpect++], sizeof t.expect[0], "%s", line);
		}
	}
	free(inbuf);
	fclose(f);
	return ncases;
}

Test(cases, valid_requests) { cr_expect_gt(run_file("valid.txt"), 30); }
Test(cases, rejected_requests) { cr_expect_gt(run_file("reject.txt"), 30); }
Test(cases, responses) { cr_expect_gt(run_file("response.txt"), 5); }
Test(cases, chunked) { cr_expect_gt(run_file("chunked.txt"), 10); }

Test(strerror, every_code_has_its_own_message)
{
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		const char *m = http_strerror(codes[i].code);
		cr_expect_str_neq(m, "unknown parser error", "%s", codes[i].name);
		for (size_t j = 0; j < i; j++)
			cr_expect_str_neq(m, http_strerror(codes[j].code), "%s and %s share a message",
					  codes[i].name, codes[j].name);
	}
	cr_expect_str_eq(http_strerror(-99), "unknown parser error");
}

Test(head_get, case_insensitive_first_match)
{
	static struct http_head h;
	struct http_limits lim = { 4096, 16, 0 };
	const char *raw = "GET / HTTP/1.1\r\nHost: a\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n";
	cr_assert_gt(http_parse_request(raw, strlen(raw), &lim, &h), 1);
	const struct http_header *f = http_head_get(&h, "X-DUP");
	cr_assert_not_null(f);
	cr_expect_eq(f->value_len, 1);
	cr_expect_eq(f->value[0], '1');
	cr_expect_null(http_head_get(&h, "X-Du"));
	cr_expect_null(http_head_get(&h, "X-Dupe"));
}
