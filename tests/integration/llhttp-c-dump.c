/*
 * llhttp-c-dump: the same job as http-parse-dump, done by Debian's node-llhttp package (its
 * generated C in /usr/share/llhttp, built with this program when present), so llhttp-diff.js
 * can compare our parser with that llhttp version as well as with the one inside node.
 *
 * Input: records "<length>\n<bytes>". Output: one JSON line per record, in http-parse-dump's
 * shape. Strict defaults: no lenient flags. The message end is found by pausing in
 * on_message_complete.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llhttp.h"

#define MAX_RECORD (1 << 20)
#define MAX_FIELDS 256
#define MAX_TEXT 8192

struct text {
	char s[MAX_TEXT];
	size_t n;
};

struct msg {
	struct text url, body;
	struct text names[MAX_FIELDS], values[MAX_FIELDS];
	int nfields;
	int in_value;      /* the last span was a value: a new name starts a new field */
	int headers_done;  /* fields after this are trailers */
	int ntrailers_from;
	int complete;
	int keep_alive;
};

static struct msg M;

static void add(struct text *t, const char *p, size_t n)
{
	if (t->n + n > MAX_TEXT)
		n = MAX_TEXT - t->n;
	memcpy(t->s + t->n, p, n);
	t->n += n;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
	add(&M.url, at, n);
	return 0;
}

static int on_field(llhttp_t *p, const char *at, size_t n)
{
	if (M.nfields == 0 || M.in_value) {
		if (M.nfields == MAX_FIELDS)
			return -1;
		M.nfields++;
		M.in_value = 0;
	}
	add(&M.names[M.nfields - 1], at, n);
	return 0;
}

static int on_value(llhttp_t *p, const char *at, size_t n)
{
	M.in_value = 1;
	add(&M.values[M.nfields - 1], at, n);
	return 0;
}

static int on_value_complete(llhttp_t *p)
{
	M.in_value = 1; /* an empty value has no span */
	return 0;
}

static int on_headers_complete(llhttp_t *p)
{
	M.headers_done = 1;
	M.ntrailers_from = M.nfields;
	M.in_value = 1;
	M.keep_alive = llhttp_should_keep_alive(p);
	return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
	add(&M.body, at, n);
	return 0;
}

static int on_message_complete(llhttp_t *p)
{
	M.complete = 1;
	return HPE_PAUSED; /* stop here: what follows is the next message */
}

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

static void fields(int from, int to)
{
	putchar('[');
	for (int i = from; i < to; i++) {
		printf("%s[", i > from ? "," : "");
		jstr(M.names[i].s, M.names[i].n);
		putchar(',');
		jstr(M.values[i].s, M.values[i].n);
		putchar(']');
	}
	putchar(']');
}

static void dump(const char *buf, size_t len)
{
	static llhttp_settings_t st;
	llhttp_t p;
	memset(&M, 0, sizeof M);
	llhttp_settings_init(&st);
	st.on_url = on_url;
	st.on_header_field = on_field;
	st.on_header_value = on_value;
	st.on_header_value_complete = on_value_complete;
	st.on_headers_complete = on_headers_complete;
	st.on_body = on_body;
	st.on_message_complete = on_message_complete;
	llhttp_init(&p, HTTP_REQUEST, &st);
	llhttp_errno_t e = llhttp_execute(&p, buf, len);
	if (e != HPE_PAUSED || !M.complete) {
		const char *why = e == HPE_OK ? "incomplete" : llhttp_get_error_reason(&p);
		printf("{\"ok\":false,\"error\":");
		jstr(llhttp_errno_name(e), strlen(llhttp_errno_name(e)));
		printf(",\"reason\":");
		jstr(why ? why : "", why ? strlen(why) : 0);
		printf("}\n");
		return;
	}
	size_t consumed = (size_t)(llhttp_get_error_pos(&p) - buf);
	printf("{\"ok\":true,\"method\":");
	const char *m = llhttp_method_name((llhttp_method_t)p.method);
	jstr(m, strlen(m));
	printf(",\"target\":");
	jstr(M.url.s, M.url.n);
	printf(",\"version\":\"%d.%d\",\"headers\":", p.http_major, p.http_minor);
	fields(0, M.ntrailers_from);
	printf(",\"trailers\":");
	fields(M.ntrailers_from, M.nfields);
	printf(",\"body\":");
	jstr(M.body.s, M.body.n);
	printf(",\"consumed\":%zu,\"keep_alive\":%s}\n", consumed, M.keep_alive ? "true" : "false");
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--version")) {
		printf("%d.%d.%d\n", LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH);
		return 0;
	}
	char *buf = malloc(MAX_RECORD);
	size_t n;
	while (scanf("%zu", &n) == 1) {
		if (getchar() != '\n' || n > MAX_RECORD || fread(buf, 1, n, stdin) != n) {
			fprintf(stderr, "llhttp-c-dump: bad record\n");
			return 2;
		}
		dump(buf, n);
	}
	free(buf);
	return 0;
}
