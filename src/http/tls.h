/*
 * tls: the server side of TLS (OpenSSL) for the API server (http/server.c), as a layer under
 * its non-blocking connection I/O, and the listening policy that says when TLS is needed.
 *
 * A tls_ctx holds one certificate chain and its private key, loaded and checked once at
 * startup; a tls_conn is one connection's TLS state on a non-blocking socket the caller owns.
 * Policy fixed here, not configurable: TLS 1.2 at least, no renegotiation, no compression,
 * no encrypted private keys (a key behind a passphrase is a startup error, never a prompt).
 *
 * I/O contract (tls_handshake, tls_read, tls_write): each call either makes progress or
 * returns TLS_WANT_READ / TLS_WANT_WRITE, meaning "call again with the same arguments once the
 * socket is readable / writable". Either want can come from any call: a read may need to
 * write (a handshake message) and a write may need to read. TLS_FAIL means the connection is
 * unusable (a bad handshake, a protocol error, a reset): close it. A peer that closes its side
 * (close_notify, or a plain TCP EOF: the HTTP framing, not TLS, says where a request ends) is
 * a read of 0 bytes.
 *
 * Buffering: OpenSSL decrypts a whole record at once, so after a read the record's rest may
 * wait inside the tls_conn (tls_pending) while the socket is no longer readable: a caller that
 * stops reading with bytes pending must come back without waiting for the socket.
 *
 * Threads: a tls_ctx may serve connections on any thread; a tls_conn belongs to one thread.
 */
#ifndef SLUICE_HTTP_TLS_H
#define SLUICE_HTTP_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "util/log.h"

typedef struct tls_ctx tls_ctx;
typedef struct tls_conn tls_conn;

enum {
	TLS_WANT_READ = -1,
	TLS_WANT_WRITE = -2,
	TLS_FAIL = -3,
};

/*
 * Loads the PEM certificate chain in cert_file (the server's certificate first) and the PEM
 * private key in key_file, and checks that they belong together. Returns 0 with *out, or -1
 * with e naming the file at fault and why (missing, unreadable, not PEM, encrypted, the key
 * does not match the certificate). *out is released with tls_ctx_free, after every
 * connection that uses it.
 */
__attribute__((warn_unused_result)) int tls_ctx_new(tls_ctx **out, const char *cert_file,
						    const char *key_file, struct err *e);
/* The same from PEM text in memory (NUL-terminated); cert_name and key_name say in messages
 * where the text came from (e.g. "$SLUICE_PROXY_TLS_CERT"). */
__attribute__((warn_unused_result)) int tls_ctx_new_pem(tls_ctx **out, const char *cert_pem,
							const char *key_pem, const char *cert_name,
							const char *key_name, struct err *e);
void tls_ctx_free(tls_ctx *t);

/* A connection's TLS state on fd (non-blocking, owned by the caller: tls_conn_free does not
 * close it), as the server's side. NULL when out of memory. */
tls_conn *tls_conn_new(tls_ctx *t, int fd);
void tls_conn_free(tls_conn *c);

/* Runs the handshake: 0 when it is complete, TLS_WANT_READ, TLS_WANT_WRITE or TLS_FAIL. */
__attribute__((warn_unused_result)) int tls_handshake(tls_conn *c);
/* Reads up to n bytes: the count (> 0), 0 when the peer has closed, or a TLS_ code. */
__attribute__((warn_unused_result)) ssize_t tls_read(tls_conn *c, void *p, size_t n);
/* Writes up to n bytes (partial writes happen): the count (> 0) or a TLS_ code. After a want,
 * the call is repeated with the same bytes at the same offset; the buffer may have moved and
 * grown at its end meanwhile. */
__attribute__((warn_unused_result)) ssize_t tls_write(tls_conn *c, const void *p, size_t n);
/* Nonzero when decrypted bytes wait inside c (see "Buffering"). */
int tls_pending(const tls_conn *c);
/* Sends close_notify if it can right away (best effort; the caller then shuts the socket). */
void tls_close_notify(tls_conn *c);

/*
 * The listening policy: nonzero when the host of addr ("host:port", "[v6]:port") can only
 * be reached from this machine: an IPv4 address in 127.0.0.0/8 in dotted-quad form, ::1, or
 * the name "localhost" (any case). Anything else, a wildcard or an empty host included, is 0,
 * as is an address it cannot parse. Pure: no name is resolved.
 */
int tls_addr_is_loopback(const char *addr);

#endif
