/*
 * Unit tests of src/http/response.c: one row per case, the exact bytes a server sends and the
 * responses (or the error) the reader must return. Each row runs twice over a socketpair: the
 * bytes written at once, and written one byte at a time by a thread (every split point).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/response.h"

#define MAXRESP 4

struct want {
	int status;
	const char *body;
	int keep_alive;
};

struct row {
	const char *name;
	const char *method;
	const char *wire;
	int close;          /* the server closes after the bytes */
	size_t cap;         /* reader buffer; 0 = 4096 */
	struct want resp[MAXRESP];
	int nresp;
	int last_rc;        /* what the read after the expected responses returns; 0 = not read */
	const char *last_err;
};

#define CL_OK(b) "HTTP/1.1 200 OK\r\nContent-Length: " #b "\r\n\r\n"
#define CHUNKED_HELLO "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" \
		      "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"

static const struct row rows[] = {
	{"content-length", "GET", CL_OK(5) "hello", 0, 0, {{200, "hello", 1}}, 1, 0, NULL},
	{"chunked with an extension and a trailer", "GET",
	 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n"
	 "0\r\nX-Trailer: 1\r\n\r\n",
	 0, 0, {{200, "hello world", 1}}, 1, 0, NULL},
	{"three chunked answers in a row on one connection", "GET",
	 CHUNKED_HELLO CHUNKED_HELLO CHUNKED_HELLO, 1, 0,
	 {{200, "hello world", 1}, {200, "hello world", 1}, {200, "hello world", 1}}, 3,
	 HTTP_READ_IDLE_CLOSED, NULL},
	{"chunked then content-length then chunked", "GET",
	 CHUNKED_HELLO CL_OK(2) "ok" CHUNKED_HELLO, 0, 0,
	 {{200, "hello world", 1}, {200, "ok", 1}, {200, "hello world", 1}}, 3, 0, NULL},
	{"body until close", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbye bye", 1, 0,
	 {{200, "bye bye", 0}}, 1, 0, NULL},
	{"HTTP/1.0 without length", "GET", "HTTP/1.0 200 OK\r\n\r\nold", 1, 0, {{200, "old", 0}}, 1, 0,
	 NULL},
	{"interim 100 and 103 are skipped", "GET",
	 "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" CL_OK(2) "ok",
	 0, 0, {{200, "ok", 1}}, 1, 0, NULL},
	{"HEAD: no body whatever Content-Length says", "HEAD",
	 "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: "
	 "chunked\r\n\r\n",
	 0, 0, {{200, "", 1}, {200, "", 1}}, 2, 0, NULL},
	{"204 and 304 have no body", "GET",
	 "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"
	 CL_OK(3) "abc",
	 0, 0, {{204, "", 1}, {304, "", 1}, {200, "abc", 1}}, 3, 0, NULL},
	{"Connection: close on a length-delimited answer", "GET",
	 "HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbusy", 0, 0,
	 {{503, "busy", 0}}, 1, 0, NULL},
	{"chunked larger than the buffer once encoded, not once decoded", "GET",
	 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	 "1\r\na\r\n1\r\nb\r\n1\r\nc\r\n1\r\nd\r\n1\r\ne\r\n1\r\nf\r\n1\r\ng\r\n1\r\nh\r\n"
	 "1\r\ni\r\n1\r\nj\r\n1\r\nk\r\n1\r\nl\r\n1\r\nm\r\n1\r\nn\r\n1\r\no\r\n1\r\np\r\n"
	 "0\r\n\r\n",
	 0, 80, {{200, "abcdefghijklmnop", 1}}, 1, 0, NULL},
	{"closed before any byte", "GET", "", 1, 0, {{0}}, 0, HTTP_READ_IDLE_CLOSED, NULL},
	{"closed inside the head", "GET", "HTTP/1.1 200 OK\r\nContent-", 1, 0, {{0}}, 0,
	 HTTP_READ_FAILED, "inside the response head"},
	{"closed inside a length-delimited body", "GET", CL_OK(10) "abc", 1, 0, {{0}}, 0,
	 HTTP_READ_FAILED, "closed after 3 of 10 body bytes"},
	{"closed inside a chunked body", "GET",
	 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", 1, 0, {{0}}, 0,
	 HTTP_READ_FAILED, "inside the chunked body"},
	{"bare LF is refused", "GET", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", 0, 0, {{0}}, 0,
	 HTTP_READ_FAILED, "invalid response: line not ending in CRLF"},
	{"Content-Length with Transfer-Encoding is refused", "GET",
	 "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 0, {{0}},
	 0, HTTP_READ_FAILED, "both Content-Length and Transfer-Encoding"},
	{"an invalid chunk size is refused", "GET",
	 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, 0, {{0}}, 0,
	 HTTP_READ_FAILED, "invalid chunked encoding"},
	{"a body larger than the buffer", "GET", CL_OK(100000), 0, 0, {{0}}, 0, HTTP_READ_FAILED,
	 "response larger than 4096 bytes"},
	{"a body until close larger than the buffer", "GET",
	 "HTTP/1.1 200 OK\r\n\r\n0123456789012345678901234567890123456789012345678901234567890123456789",
	 1, 64, {{0}}, 0, HTTP_READ_FAILED, "response larger than 64 bytes"},
	{"a head larger than the buffer", "GET",
	 "HTTP/1.1 200 OK\r\nX-Long: 0123456789012345678901234567890123456789012345678901234567890123\r\n\r\n",
	 0, 64, {{0}}, 0, HTTP_READ_FAILED, "larger than 64 bytes"},
	{"silence is a timeout", "GET", "", 0, 0, {{0}}, 0, HTTP_READ_FAILED, "no response within 200 ms"},
};

struct feeder {
	int fd;
	const char *wire;
	int close;
};

static void *feed_bytes(void *arg)
{
	struct feeder *f = arg;
	for (const char *p = f->wire; *p; p++) {
		if (send(f->fd, p, 1, MSG_NOSIGNAL) != 1)
			break;
		usleep(200);
	}
	if (f->close)
		shutdown(f->fd, SHUT_WR);
	return NULL;
}

static void run(const struct row *r, int bytewise)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct feeder fd = {sv[1], r->wire, r->close};
	pthread_t th;
	if (bytewise) {
		cr_assert_eq(pthread_create(&th, NULL, feed_bytes, &fd), 0);
	} else {
		size_t n = strlen(r->wire);
		cr_assert_eq(send(sv[1], r->wire, n, MSG_NOSIGNAL), (ssize_t)n);
		if (r->close)
			shutdown(sv[1], SHUT_WR);
	}
	static char buf[4096];
	struct http_reader rd;
	/* a generous wait (a loaded machine may pause the feeder), except where the timeout itself
	 * is the subject */
	int silence = !strcmp(r->name, "silence is a timeout");
	http_reader_init(&rd, buf, r->cap ? r->cap : sizeof(buf), silence ? 200 : 10000);
	static struct http_response out;
	const char *how = bytewise ? "byte by byte" : "at once";
	for (int i = 0; i < r->nresp; i++) {
		struct err e = {""};
		int rc = http_reader_read(&rd, sv[0], r->method, &out, &e);
		cr_assert_eq(rc, 0, "%s (%s): response %d: rc %d: %s", r->name, how, i, rc, e.msg);
		cr_expect_eq(out.status, r->resp[i].status, "%s (%s): response %d status %d", r->name,
			     how, i, out.status);
		cr_expect_eq(out.body_len, strlen(r->resp[i].body), "%s (%s): response %d body '%.*s'",
			     r->name, how, i, (int)out.body_len, out.body);
		cr_expect(out.body_len == strlen(r->resp[i].body) &&
				  !memcmp(out.body, r->resp[i].body, out.body_len),
			  "%s (%s): response %d body '%.*s'", r->name, how, i, (int)out.body_len, out.body);
		cr_expect_eq(out.keep_alive, r->resp[i].keep_alive, "%s (%s): response %d keep_alive",
			     r->name, how, i);
	}
	if (r->last_rc) {
		struct err e = {""};
		int rc = http_reader_read(&rd, sv[0], r->method, &out, &e);
		cr_expect_eq(rc, r->last_rc, "%s (%s): last read rc %d (%s)", r->name, how, rc, e.msg);
		if (r->last_err)
			cr_expect(strstr(e.msg, r->last_err), "%s (%s): message '%s', expected '%s'",
				  r->name, how, e.msg, r->last_err);
	}
	if (bytewise)
		pthread_join(th, NULL);
	close(sv[0]);
	close(sv[1]);
}

Test(response, table)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		run(&rows[i], 0);
		run(&rows[i], 1);
	}
}

/* Bytes after a response stay for the next read, even when they arrive with it. */
Test(response, reset_forgets_what_followed)
{
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	const char *w = CL_OK(1) "a" CL_OK(1) "b";
	cr_assert_eq(send(sv[1], w, strlen(w), 0), (ssize_t)strlen(w));
	char buf[512];
	struct http_reader rd;
	http_reader_init(&rd, buf, sizeof(buf), 200);
	struct http_response out;
	struct err e = {""};
	cr_assert_eq(http_reader_read(&rd, sv[0], "GET", &out, &e), 0, "%s", e.msg);
	cr_assert_eq(out.body[0], 'a');
	http_reader_reset(&rd);
	cr_assert_eq(http_reader_read(&rd, sv[0], "GET", &out, &e), HTTP_READ_FAILED,
		     "the second response was dropped with the reset");
	close(sv[0]);
	close(sv[1]);
}
