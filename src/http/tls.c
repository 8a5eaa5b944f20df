/*
 * tls: OpenSSL under the API server's connections. See tls.h for the contract.
 *
 * Every OpenSSL call that can fail is preceded by ERR_clear_error(): SSL_get_error reads the
 * thread's error queue, and a stale entry from an earlier connection would turn a plain
 * "would block" into a failure.
 */
#include "http/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

struct tls_ctx {
	SSL_CTX *ssl;
};

struct tls_conn {
	SSL *ssl;
};

/* The most specific reason OpenSSL has queued, for messages. */
static const char *ssl_reason(void)
{
	unsigned long code = ERR_peek_last_error();
	const char *r = code ? ERR_reason_error_string(code) : NULL;
	return r ? r : "unknown OpenSSL error";
}

/* An encrypted key would make OpenSSL ask for a passphrase on the terminal: refuse instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	return 0;
}

/* Opens path to tell "missing or unreadable" apart from "not a certificate" in messages. */
static int readable(const char *what, const char *path, struct err *e)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return err_set(e, "%s '%s': %s", what, path, strerror(errno));
	fclose(f);
	return 0;
}

/* A server context with the policy of tls.h and no certificate yet, or NULL with e. */
static SSL_CTX *server_ctx(struct err *e)
{
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		err_set(e, "TLS: cannot create a context: %s", ssl_reason());
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
				 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* ENABLE_PARTIAL_WRITE and ACCEPT_MOVING_WRITE_BUFFER: the server writes from an output
	 * buffer that grows (and may move) while a write waits; RELEASE_BUFFERS: an idle
	 * connection holds no record buffers (hundreds of idle clients stay cheap). */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
			      SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	return ctx;
}

/* Checks that the key matches, wraps ctx into *out; frees ctx on failure. */
static int finish_ctx(tls_ctx **out, SSL_CTX *ctx, const char *cert_name, const char *key_name,
		      struct err *e)
{
	if (SSL_CTX_check_private_key(ctx) != 1) {
		err_set(e, "%s does not match the certificate in %s", key_name, cert_name);
		SSL_CTX_free(ctx);
		return -1;
	}
	tls_ctx *t = calloc(1, sizeof *t);
	if (!t) {
		SSL_CTX_free(ctx);
		return err_set(e, "out of memory");
	}
	t->ssl = ctx;
	*out = t;
	return 0;
}

/* The message for a private key OpenSSL refused. */
static void key_error(struct err *e, const char *key_name, const char *cert_name)
{
	/* a key that does not match the certificate fails here already */
	unsigned long code = ERR_peek_last_error();
	if (ERR_GET_REASON(code) == X509_R_KEY_VALUES_MISMATCH ||
	    ERR_GET_REASON(code) == X509_R_KEY_TYPE_MISMATCH)
		err_set(e, "%s does not match the certificate in %s", key_name, cert_name);
	else
		err_set(e, "%s: not an unencrypted PEM private key OpenSSL accepts (%s)", key_name,
			ssl_reason());
}

int tls_ctx_new(tls_ctx **out, const char *cert_file, const char *key_file, struct err *e)
{
	*out = NULL;
	if (readable("--tls-cert", cert_file, e) || readable("--tls-key", key_file, e))
		return -1;
	SSL_CTX *ctx = server_ctx(e);
	if (!ctx)
		return -1;
	char cert_name[4200], key_name[4200];
	snprintf(cert_name, sizeof cert_name, "--tls-cert '%s'", cert_file);
	snprintf(key_name, sizeof key_name, "--tls-key '%s'", key_file);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		err_set(e, "%s: not a PEM certificate chain OpenSSL accepts (%s)", cert_name, ssl_reason());
		SSL_CTX_free(ctx);
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		key_error(e, key_name, cert_name);
		SSL_CTX_free(ctx);
		return -1;
	}
	return finish_ctx(out, ctx, cert_name, key_name, e);
}

int tls_ctx_new_pem(tls_ctx **out, const char *cert_pem, const char *key_pem, const char *cert_name,
		    const char *key_name, struct err *e)
{
	*out = NULL;
	SSL_CTX *ctx = server_ctx(e);
	if (!ctx)
		return -1;
	BIO *b = BIO_new_mem_buf(cert_pem, -1);
	X509 *x = b ? PEM_read_bio_X509_AUX(b, NULL, NULL, NULL) : NULL;
	int ok = x && SSL_CTX_use_certificate(ctx, x) == 1;
	X509_free(x);
	/* the rest of the chain, in order */
	while (ok) {
		X509 *ca = PEM_read_bio_X509(b, NULL, NULL, NULL);
		if (!ca) {
			ERR_clear_error(); /* the end of the text */
			break;
		}
		if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
			X509_free(ca);
			ok = 0;
		}
	}
	BIO_free(b);
	if (!ok) {
		err_set(e, "%s: not a PEM certificate chain OpenSSL accepts (%s)", cert_name, ssl_reason());
		SSL_CTX_free(ctx);
		return -1;
	}
	b = BIO_new_mem_buf(key_pem, -1);
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL) : NULL;
	BIO_free(b);
	ok = k && SSL_CTX_use_PrivateKey(ctx, k) == 1;
	EVP_PKEY_free(k);
	if (!ok) {
		key_error(e, key_name, cert_name);
		SSL_CTX_free(ctx);
		return -1;
	}
	return finish_ctx(out, ctx, cert_name, key_name, e);
}

void tls_ctx_free(tls_ctx *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ssl);
	free(t);
}

tls_conn *tls_conn_new(tls_ctx *t, int fd)
{
	tls_conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	ERR_clear_error();
	c->ssl = SSL_new(t->ssl);
	if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
		SSL_free(c->ssl);
		free(c);
		return NULL;
	}
	SSL_set_accept_state(c->ssl);
	return c;
}

void tls_conn_free(tls_conn *c)
{
	if (!c)
		return;
	SSL_free(c->ssl);
	free(c);
}

/* Maps the outcome r of an SSL call to a TLS_ code (r <= 0), or to 0 for a clean close. */
static int outcome(tls_conn *c, int r)
{
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return TLS_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return TLS_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	default:
		return TLS_FAIL;
	}
}

int tls_handshake(tls_conn *c)
{
	ERR_clear_error();
	int r = SSL_do_handshake(c->ssl);
	if (r == 1)
		return 0;
	r = outcome(c, r);
	return r ? r : TLS_FAIL; /* closed during the handshake */
}

ssize_t tls_read(tls_conn *c, void *p, size_t n)
{
	ERR_clear_error();
	int r = SSL_read(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
	return r > 0 ? r : outcome(c, r);
}

ssize_t tls_write(tls_conn *c, const void *p, size_t n)
{
	if (!n)
		return 0;
	ERR_clear_error();
	int r = SSL_write(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
	if (r > 0)
		return r;
	r = outcome(c, r);
	return r ? r : TLS_FAIL; /* nothing can be written after the peer's close_notify */
}

int tls_pending(const tls_conn *c)
{
	return SSL_pending(c->ssl) > 0;
}

void tls_close_notify(tls_conn *c)
{
	ERR_clear_error();
	if (SSL_is_init_finished(c->ssl))
		SSL_shutdown(c->ssl);
	ERR_clear_error();
}

int tls_addr_is_loopback(const char *addr)
{
	const char *colon = addr ? strrchr(addr, ':') : NULL;
	if (!colon)
		return 0;
	const char *h = addr;
	size_t n = (size_t)(colon - addr);
	if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
		h++;
		n -= 2;
	}
	char host[INET6_ADDRSTRLEN + 1];
	if (n == 0 || n >= sizeof host)
		return 0;
	memcpy(host, h, n);
	host[n] = 0;
	if (!strcasecmp(host, "localhost"))
		return 1;
	struct in_addr a4;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	struct in6_addr a6;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}
