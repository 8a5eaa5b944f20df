/*
 * The API server over TLS: httpd runs on 127.0.0.1:0 with a certificate made here (OpenSSL,
 * EC P-256, self-signed for 127.0.0.1 and localhost, in a temporary directory: no key is
 * committed), in a thread with its own loop. Clients: libcurl verifying the certificate, raw
 * sockets for plain HTTP, and an OpenSSL client that stops in the middle of its handshake.
 * Also: loading errors (each names its file) and the listening policy's table.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "http/server.h"
#include "http/tls.h"

/* ---- the listening policy ---- */

Test(policy, loopback_table)
{
	static const struct {
		const char *addr;
		int loopback;
	} rows[] = {
		{"127.0.0.1:7070", 1},
		{"127.0.0.2:80", 1},
		{"127.255.255.254:1", 1},
		{"localhost:7070", 1},
		{"LocalHost:7070", 1},
		{"[::1]:7070", 1},
		{"::1:7070", 1},          /* host "::1", port 7070, as httpd_start splits it */
		{"0.0.0.0:7070", 0},      /* every interface */
		{"[::]:7070", 0},
		{"*:7070", 0},
		{":7070", 0},             /* empty host: the wildcard */
		{"128.0.0.1:7070", 0},
		{"126.255.255.255:7070", 0},
		{"10.0.0.5:7070", 0},
		{"192.168.1.10:7070", 0},
		{"[::ffff:127.0.0.1]:7070", 0}, /* not in the list: refused, which is the safe side */
		{"[fe80::1]:7070", 0},
		{"127.1:7070", 0},        /* not dotted-quad: the resolver's reading is not ours */
		{"0x7f.0.0.1:7070", 0},
		{"localhost.:7070", 0},
		{"localhost.example.com:7070", 0},
		{"127.0.0.1.nip.io:7070", 0},
		{"myhost:7070", 0},
		{"127.0.0.1", 0},         /* no port: host "127.0.0" is not an address */
		{"", 0},
		{"[::1]", 0},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		cr_expect_eq(tls_addr_is_loopback(rows[i].addr), rows[i].loopback, "'%s': expected %s",
			     rows[i].addr, rows[i].loopback ? "loopback" : "not loopback");
	cr_expect_eq(tls_addr_is_loopback(NULL), 0);
}

/* ---- a certificate made for the test ---- */

static char DIR_[64], CERT[128], KEY[128], OTHER_KEY[128];

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	cr_assert_not_null(k);
	return k;
}

static void write_key(const char *path, EVP_PKEY *k)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert_eq(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
}

static void make_cert(void)
{
	strcpy(DIR_, "/tmp/sluice-tls-XXXXXX");
	cr_assert_not_null(mkdtemp(DIR_));
	snprintf(CERT, sizeof CERT, "%s/cert.pem", DIR_);
	snprintf(KEY, sizeof KEY, "%s/key.pem", DIR_);
	snprintf(OTHER_KEY, sizeof OTHER_KEY, "%s/other.pem", DIR_);
	EVP_PKEY *k = new_key(), *other = new_key();
	X509 *x = X509_new();
	cr_assert_not_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_CTX v3;
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	const char *exts[][2] = {{"subjectAltName", "IP:127.0.0.1,DNS:localhost"},
				 {"basicConstraints", "critical,CA:TRUE"},
				 {"keyUsage", "critical,digitalSignature,keyCertSign"},
				 {"subjectKeyIdentifier", "hash"}};
	for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
		X509_EXTENSION *ex = X509V3_EXT_conf(NULL, &v3, exts[i][0], exts[i][1]);
		cr_assert_not_null(ex, "%s", exts[i][0]);
		X509_add_ext(x, ex, -1);
		X509_EXTENSION_free(ex);
	}
	cr_assert_gt(X509_sign(x, k, EVP_sha256()), 0);
	FILE *f = fopen(CERT, "w");
	cr_assert_not_null(f);
	cr_assert_eq(PEM_write_X509(f, x), 1);
	fclose(f);
	write_key(KEY, k);
	write_key(OTHER_KEY, other);
	X509_free(x);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

static void remove_cert(void)
{
	const char *files[] = {CERT, KEY, OTHER_KEY};
	for (size_t i = 0; i < 3; i++)
		unlink(files[i]);
	char junk[160];
	snprintf(junk, sizeof junk, "%s/junk.pem", DIR_);
	unlink(junk);
	rmdir(DIR_);
}

/* ---- loading ---- */

Test(load, good_pair, .init = make_cert, .fini = remove_cert)
{
	tls_ctx *t;
	struct err e = {""};
	cr_assert_eq(tls_ctx_new(&t, CERT, KEY, &e), 0, "%s", e.msg);
	tls_ctx_free(t);
}

Test(load, errors_name_the_file, .init = make_cert, .fini = remove_cert)
{
	char junk[160];
	snprintf(junk, sizeof junk, "%s/junk.pem", DIR_);
	FILE *f = fopen(junk, "w");
	cr_assert_not_null(f);
	fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", f);
	fclose(f);
	struct {
		const char *cert, *key, *want1, *want2;
	} rows[] = {
		{"/nonexistent/cert.pem", KEY, "--tls-cert '/nonexistent/cert.pem'", "No such file"},
		{CERT, "/nonexistent/key.pem", "--tls-key '/nonexistent/key.pem'", "No such file"},
		{junk, KEY, "--tls-cert", junk},
		{KEY, KEY, "--tls-cert", KEY},     /* a key where the certificate should be */
		{CERT, junk, "--tls-key", junk},
		{CERT, CERT, "--tls-key", CERT},   /* a certificate where the key should be */
		{CERT, OTHER_KEY, "does not match", OTHER_KEY},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		tls_ctx *t = (tls_ctx *)1;
		struct err e = {""};
		cr_expect_eq(tls_ctx_new(&t, rows[i].cert, rows[i].key, &e), -1, "row %zu", i);
		cr_expect_null(t, "row %zu", i);
		cr_expect_not_null(strstr(e.msg, rows[i].want1), "row %zu: %s", i, e.msg);
		cr_expect_not_null(strstr(e.msg, rows[i].want2), "row %zu: %s", i, e.msg);
	}
}

/* ---- the server over TLS ---- */

static loop *L;
static httpd *H;
static tls_ctx *CTX;
static pthread_t T;

static void handler(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	if (!strcmp(req->path, "/big")) { /* 3 MiB: many records, partial writes */
		size_t len = 3u << 20;
		char *p = buf_reserve(&resp->body, len);
		cr_assert_not_null(p);
		for (size_t i = 0; i < len; i++)
			p[i] = (char)('a' + i % 26);
		buf_commit(&resp->body, len);
		resp->content_type = "text/plain";
		return;
	}
	unsigned sum = 0;
	for (size_t i = 0; i < req->body_len; i++)
		sum = sum * 31 + (unsigned char)req->body[i];
	if (buf_addf(&resp->body, "%s %s len=%zu sum=%u", req->method, req->path, req->body_len, sum))
		cr_assert_fail();
	resp->content_type = "text/plain";
}

static void *run(void *arg)
{
	loop_run(L);
	return NULL;
}

static void start(unsigned head_timeout_ms)
{
	make_cert();
	struct err e = {""};
	cr_assert_eq(tls_ctx_new(&CTX, CERT, KEY, &e), 0, "%s", e.msg);
	struct httpd_opts o = {.tls = CTX, .head_timeout_ms = head_timeout_ms, .max_body = 8u << 20};
	L = loop_new();
	cr_assert_not_null(L);
	cr_assert_eq(httpd_start(&H, L, "127.0.0.1:0", &o, handler, NULL, &e), 0, "%s", e.msg);
	cr_assert_eq(pthread_create(&T, NULL, run, NULL), 0);
}

static void setup(void) { start(0); }

static void stop(void)
{
	loop_stop(L);
	loop_wake(L);
	pthread_join(T, NULL);
	httpd_free(H);
	loop_free(L);
	tls_ctx_free(CTX);
	remove_cert();
}

struct body {
	char *p;
	size_t n;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct body *b = arg;
	char *q = realloc(b->p, b->n + size * n + 1);
	cr_assert_not_null(q);
	memcpy(q + b->n, p, size * n);
	b->p = q;
	b->n += size * n;
	b->p[b->n] = 0;
	return size * n;
}

/* One request with libcurl, verifying the server against CERT. Returns the curl code; the
 * status and body (caller frees) when it is CURLE_OK. */
static CURLcode fetch(CURL *h, const char *host, const char *path, const char *post, size_t post_len,
		      long *status, struct body *b)
{
	char url[256];
	snprintf(url, sizeof url, "https://%s:%d%s", host, httpd_port(H), path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CAINFO, CERT);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	if (post) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)post_len);
	} else {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	}
	b->p = NULL;
	b->n = 0;
	CURLcode rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	return rc;
}

/* A request through a fresh handle succeeds with the expected body. */
static void expect_served(const char *what)
{
	CURL *h = curl_easy_init();
	long st = 0;
	struct body b;
	CURLcode rc = fetch(h, "127.0.0.1", "/ok", NULL, 0, &st, &b);
	cr_expect_eq(rc, CURLE_OK, "%s: %s", what, curl_easy_strerror(rc));
	cr_expect_eq(st, 200, "%s", what);
	cr_expect(b.p && !strcmp(b.p, "GET /ok len=0 sum=0"), "%s: %s", what, b.p ? b.p : "(none)");
	free(b.p);
	curl_easy_cleanup(h);
}

Test(tls, request_over_verified_tls, .init = setup, .fini = stop)
{
	CURL *h = curl_easy_init();
	long st = 0;
	struct body b;
	/* the name and the address in the certificate both verify; a second request to the
	 * same host reuses the session's connection (keep-alive over TLS) */
	const char *hosts[] = {"127.0.0.1", "127.0.0.1", "localhost"};
	for (int i = 0; i < 3; i++) {
		CURLcode rc = fetch(h, hosts[i], "/a", NULL, 0, &st, &b);
		cr_assert_eq(rc, CURLE_OK, "%s: %s", hosts[i], curl_easy_strerror(rc));
		cr_expect_eq(st, 200);
		cr_expect_str_eq(b.p, "GET /a len=0 sum=0");
		free(b.p);
		long conns = -1;
		curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &conns);
		cr_expect_eq(conns, i == 1 ? 0 : 1, "request %d: %ld new connections", i, conns);
	}
	curl_easy_cleanup(h);
}

Test(tls, large_bodies_both_ways, .init = setup, .fini = stop)
{
	CURL *h = curl_easy_init();
	long st = 0;
	struct body b;
	CURLcode rc = fetch(h, "127.0.0.1", "/big", NULL, 0, &st, &b);
	cr_assert_eq(rc, CURLE_OK, "%s", curl_easy_strerror(rc));
	cr_assert_eq(b.n, 3u << 20);
	for (size_t i = 0; i < b.n; i++)
		if (b.p[i] != (char)('a' + i % 26))
			cr_assert_fail("byte %zu differs", i);
	free(b.p);
	size_t n = 5u << 20;
	char *up = malloc(n);
	unsigned sum = 0;
	for (size_t i = 0; i < n; i++) {
		up[i] = (char)(i * 7 + (i >> 12));
		sum = sum * 31 + (unsigned char)up[i];
	}
	rc = fetch(h, "127.0.0.1", "/up", up, n, &st, &b);
	cr_assert_eq(rc, CURLE_OK, "%s", curl_easy_strerror(rc));
	char want[128];
	snprintf(want, sizeof want, "POST /up len=%zu sum=%u", n, sum);
	cr_expect_str_eq(b.p, want);
	free(b.p);
	free(up);
	curl_easy_cleanup(h);
}

Test(tls, unverified_server_is_refused_by_the_client, .init = setup, .fini = stop)
{
	CURL *h = curl_easy_init();
	char url[128];
	snprintf(url, sizeof url, "https://127.0.0.1:%d/a", httpd_port(H));
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_CAINFO, "/etc/ssl/certs/ca-certificates.crt");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	CURLcode rc = curl_easy_perform(h);
	cr_expect_eq(rc, CURLE_PEER_FAILED_VERIFICATION, "%s", curl_easy_strerror(rc));
	curl_easy_cleanup(h);
	expect_served("after a client gave up on verification");
}

static int dial(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)httpd_port(H))};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = {5, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
	return fd;
}

/* Reads until EOF or error: the bytes received (at most cap - 1, NUL-terminated). */
static size_t read_to_end(int fd, char *out, size_t cap, int *closed)
{
	size_t n = 0;
	*closed = 0;
	for (;;) {
		ssize_t r = recv(fd, out + n, cap - 1 - n, 0);
		if (r > 0 && n + (size_t)r < cap - 1) {
			n += (size_t)r;
			continue;
		}
		*closed = r == 0 || (r < 0 && errno == ECONNRESET);
		break;
	}
	out[n] = 0;
	return n;
}

Test(tls, plain_http_gets_no_http_answer, .init = setup, .fini = stop)
{
	static const char *reqs[] = {
		"GET /a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello",
		"hello, this is not TLS\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
		int fd = dial();
		cr_assert_eq(send(fd, reqs[i], strlen(reqs[i]), MSG_NOSIGNAL), (ssize_t)strlen(reqs[i]));
		char got[4096];
		int closed;
		size_t n = read_to_end(fd, got, sizeof got, &closed);
		cr_expect(closed, "request %zu: the server closes the connection", i);
		cr_expect(n < 5 || memcmp(got, "HTTP/", 5), "request %zu: no HTTP answer, got %s", i, got);
		close(fd);
		expect_served("after plain HTTP on the TLS port");
	}
}

/* A whole ClientHello from an OpenSSL client, sent on a socket whose answers nobody reads:
 * the server sends its flight and waits for the client's, which never comes. (The client
 * runs on memory buffers: on the socket itself it could finish the handshake in one call
 * when the server is quick.) */
static int stalled_client(void)
{
	SSL_CTX *cx = SSL_CTX_new(TLS_client_method());
	cr_assert_not_null(cx);
	SSL *s = SSL_new(cx);
	BIO *rd = BIO_new(BIO_s_mem()), *wr = BIO_new(BIO_s_mem());
	SSL_set_bio(s, rd, wr);
	SSL_set_connect_state(s);
	int r = SSL_do_handshake(s);
	cr_assert_eq(SSL_get_error(s, r), SSL_ERROR_WANT_READ, "the client waits for the server");
	char hello[4096];
	int n = BIO_read(wr, hello, sizeof hello);
	cr_assert_gt(n, 0, "a ClientHello");
	int fd = dial();
	cr_assert_eq(send(fd, hello, (size_t)n, MSG_NOSIGNAL), n);
	SSL_free(s);
	SSL_CTX_free(cx);
	return fd;
}

/* Waits up to ms for the server to close fd; returns the ms it took, or -1. */
static long wait_closed(int fd, long ms)
{
	uint64_t t0 = loop_clock_ms();
	while ((long)(loop_clock_ms() - t0) < ms) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 20) == 1) {
			char buf[4096];
			ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
			if (r == 0 || (r < 0 && errno == ECONNRESET))
				return (long)(loop_clock_ms() - t0);
			/* the server's flight of the handshake: not read, as a stalled client would */
		}
	}
	return -1;
}

Test(tls, stalled_handshake_is_cut_by_the_head_timeout, .fini = stop)
{
	start(800);
	uint64_t t0 = loop_clock_ms();
	/* three stalls: mid-handshake (the ClientHello sent, the rest never), half a ClientHello,
	 * and nothing at all */
	int mid = stalled_client();
	int half = dial();
	const char partial[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
	cr_assert_eq(send(half, partial, sizeof partial - 1, MSG_NOSIGNAL), (ssize_t)sizeof partial - 1);
	int silent = dial();
	/* others are served meanwhile */
	for (int i = 0; i < 5; i++)
		expect_served("while handshakes stall");
	int fds[] = {mid, half, silent};
	const char *names[] = {"mid-handshake", "half a ClientHello", "silent"};
	for (int i = 0; i < 3; i++) {
		long waited = wait_closed(fds[i], 5000);
		long since = (long)(loop_clock_ms() - t0);
		cr_expect(waited >= 0, "%s: still open after 5 s", names[i]);
		cr_expect(since >= 700 && since < 2500, "%s: closed %ld ms after connecting (head "
			  "timeout 800 ms)", names[i], since);
		close(fds[i]);
	}
	expect_served("after the stalls were cut");
}

Test(tls, pipelined_requests_over_one_session, .init = setup, .fini = stop)
{
	/* forty requests in one TLS record: all are answered, in order, on one session */
	int fd = dial();
	SSL_CTX *cx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_load_verify_locations(cx, CERT, NULL);
	SSL_CTX_set_verify(cx, SSL_VERIFY_PEER, NULL);
	SSL *s = SSL_new(cx);
	SSL_set_fd(s, fd);
	SSL_set1_host(s, "127.0.0.1");
	cr_assert_eq(SSL_connect(s), 1, "handshake");
	char reqs[8192] = "";
	size_t n = 0;
	for (int i = 0; i < 40; i++)
		n += (size_t)snprintf(reqs + n, sizeof reqs - n, "GET /p%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
	cr_assert_eq(SSL_write(s, reqs, (int)n), (int)n);
	char got[65536];
	size_t have = 0;
	int answers = 0;
	while (answers < 40) {
		int r = SSL_read(s, got + have, (int)(sizeof got - 1 - have));
		cr_assert_gt(r, 0, "read after %d answers", answers);
		have += (size_t)r;
		got[have] = 0;
		answers = 0;
		for (const char *p = got; (p = strstr(p, "HTTP/1.1 200 OK")); p++)
			answers++;
	}
	char want[32];
	snprintf(want, sizeof want, "GET /p39 len=0");
	cr_expect_not_null(strstr(got, want));
	SSL_free(s);
	SSL_CTX_free(cx);
	close(fd);
}
