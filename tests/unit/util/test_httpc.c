/*
 * Unit tests of the request header fields of src/util/httpc (and the CLI's setter in
 * src/cli/client.c that uses them), against a server on 127.0.0.1:0 that answers every request
 * with its own head as the body.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/client.h"
#include "support/loopback.h"
#include "util/httpc.h"

static int lfd, port;
static pthread_t th;

static void *serve(void *arg)
{
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		char head[16384], out[17000];
		ssize_t n = loopback_read_head(fd, head, sizeof(head), 2000);
		if (n > 0) {
			size_t hl = (size_t)(strstr(head, "\r\n\r\n") + 4 - head);
			int k = snprintf(out, sizeof(out),
					 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%.*s",
					 hl, (int)hl, head);
			(void)loopback_send_all(fd, out, (size_t)k);
		}
		close(fd);
	}
}

static void setup(void)
{
	lfd = loopback_listen(16, NULL, 0, &port);
	cr_assert_eq(pthread_create(&th, NULL, serve, NULL), 0);
}

static void teardown(void)
{
	shutdown(lfd, SHUT_RDWR);
	close(lfd);
	pthread_join(th, NULL);
}

static void get(httpc *c, struct buf *b)
{
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", port);
	long status = 0;
	struct err e = {""};
	buf_reset(b);
	cr_assert_eq(httpc_request(c, "GET", url, NULL, 0, NULL, &status, b, &e), 0, "%s", e.msg);
	cr_assert_eq(status, 200);
	cr_assert_eq(buf_add(b, "", 1), 0);
}

Test(httpc, header_fields_are_sent_until_replaced, .init = setup, .fini = teardown)
{
	httpc *c = httpc_new(2000, 1 << 16);
	struct buf b;
	buf_init(&b, BUF_NOLIMIT);
	char tok[64];
	snprintf(tok, sizeof(tok), "Authorization: Bearer t0k3n");
	const char *list[] = {tok, "X-Empty:", NULL};
	struct err e = {""};
	cr_assert_eq(httpc_set_headers(c, list, &e), 0, "%s", e.msg);
	memset(tok, 'Z', sizeof(tok) - 1); /* copied */
	get(c, &b);
	cr_assert(strstr(b.data, "\r\nAuthorization: Bearer t0k3n\r\n"), "%s", b.data);
	cr_assert(strstr(b.data, "\r\nX-Empty:"), "%s", b.data);
	get(c, &b); /* every request, not only the next */
	cr_assert(strstr(b.data, "\r\nAuthorization: Bearer t0k3n\r\n"), "%s", b.data);

	/* a refused list changes nothing */
	const char *bad[] = {"Authorization: a\r\nX-Smuggled: 1", NULL};
	cr_assert_eq(httpc_set_headers(c, bad, &e), -1);
	cr_assert(strstr(e.msg, "control character"), "%s", e.msg);
	get(c, &b);
	cr_assert(strstr(b.data, "\r\nAuthorization: Bearer t0k3n\r\n"), "%s", b.data);
	cr_assert_null(strstr(b.data, "X-Smuggled"));

	cr_assert_eq(httpc_set_headers(c, NULL, &e), 0);
	get(c, &b);
	cr_assert_null(strstr(b.data, "Authorization"), "%s", b.data);
	buf_release(&b);
	httpc_free(c);
}

Test(httpc, header_list_rules)
{
	struct err e;
	const char *ok[] = {"Authorization: Bearer x", "X-Tab:\tv", "x-empty:", NULL};
	cr_assert_eq(httpc_headers_check(ok, &e), 0, "%s", e.msg);
	cr_assert_eq(httpc_headers_check(NULL, &e), 0);
	static const char *const bad[][2] = {
		{"X: a\nb", "control character"},
		{": v", "expected 'Name: value'"},
		{"X Y: v", "not a valid field name"},
		{"content-length: 5", "Content-Length is the client's own"},
		{"Transfer-Encoding: chunked", "Transfer-Encoding is the client's own"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *l[] = {bad[i][0], NULL};
		cr_assert_eq(httpc_headers_check(l, &e), -1, "%s accepted", bad[i][0]);
		cr_assert(strstr(e.msg, bad[i][1]), "%s: %s", bad[i][0], e.msg);
	}
	static char big[HTTPC_MAX_HEADER_LEN + 2];
	memset(big, 'v', sizeof(big) - 1);
	memcpy(big, "X-Big: ", 7);
	const char *l[] = {big, NULL};
	cr_assert_eq(httpc_headers_check(l, &e), -1);
	cr_assert(strstr(e.msg, "longer than 8192 bytes"), "%s", e.msg);
}

Test(httpc, the_cli_client_sends_its_authorization, .init = setup, .fini = teardown)
{
	struct client c;
	client_init(&c);
	char server[64];
	snprintf(server, sizeof(server), "http://127.0.0.1:%d", port);
	c.server = server;
	cr_assert_eq(client_set_authorization(&c, "Bearer abc"), 0);
	struct buf b;
	buf_init(&b, BUF_NOLIMIT);
	get(c.http, &b);
	cr_assert(strstr(b.data, "\r\nAuthorization: Bearer abc\r\n"), "%s", b.data);
	cr_assert_eq(client_set_authorization(&c, "Bearer a\r\nX: 1"), -1);
	cr_assert_eq(client_set_authorization(&c, NULL), 0);
	get(c.http, &b);
	cr_assert_null(strstr(b.data, "Authorization"), "%s", b.data);
	buf_release(&b);
	client_release(&c);
}
