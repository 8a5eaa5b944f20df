/*
 * response: reads HTTP/1.1 responses from a blocking socket with the strict parser (parse.h).
 *
 * This is the one hand-written HTTP response reader of the tree, for the clients that speak
 * HTTP over their own sockets instead of libcurl: `sluice load` and the example services'
 * upstream calls. Everything the parser frames is read: Content-Length, chunked (decoded in
 * place), bodies delimited by the server's close, interim 1xx responses (skipped), and the
 * responses that have no body whatever their fields say (to HEAD; 1xx, 204, 304).
 *
 * Invariants:
 *   - The reader never allocates: it works in a buffer the caller owns (buf[0..cap)), and a
 *     response whose head and body (chunked: decoded body plus the part being decoded) do not
 *     fit in it is an error, not a larger allocation.
 *   - Bytes that came after a response (the start of the next one on a keep-alive connection)
 *     stay in the buffer and are the first bytes of the next http_reader_read. A reader follows
 *     one connection: after a new connect, http_reader_reset.
 *   - Every wait for data lasts at most timeout_ms; EINTR is retried.
 *
 * Ownership: the result's head fields and body point into the caller's buffer and stay valid
 * until the next http_reader_read or http_reader_reset on that reader.
 *
 * Errors: 0 for a complete final response (any status). HTTP_READ_IDLE_CLOSED when the peer
 * closed (EOF or reset) before sending any byte of this response: on a keep-alive connection
 * that is the server closing an idle connection, and the request may be retried on a new one.
 * HTTP_READ_FAILED otherwise (timeout, connection cut inside the response, invalid or too
 * large response) with a message in e. After any error the connection must not be reused.
 */
#ifndef SLUICE_HTTP_RESPONSE_H
#define SLUICE_HTTP_RESPONSE_H

#include <stddef.h>

#include "http/parse.h"
#include "util/log.h"

enum {
	HTTP_READ_FAILED = -1,
	HTTP_READ_IDLE_CLOSED = -2,
};

struct http_reader {
	char *buf;      /* caller's memory, cap bytes */
	size_t cap;
	size_t len;     /* bytes held: the last response, then whatever followed it */
	size_t used;    /* bytes of the last response, dropped by the next read */
	int timeout_ms; /* each wait for data */
};

struct http_response {
	struct http_head head; /* status, version, fields; framing already applied */
	int status;            /* head.status, for convenience */
	const char *body;      /* decoded body (no chunk framing); not NUL-terminated */
	size_t body_len;
	int keep_alive;        /* the connection may carry the next request */
};

/* buf must hold at least 64 bytes; timeout_ms > 0. */
void http_reader_init(struct http_reader *r, char *buf, size_t cap, int timeout_ms);
/* Forgets every byte held (a new connection). */
void http_reader_reset(struct http_reader *r);

/*
 * Reads the final response to a request sent with `method` ("GET", "HEAD", ...: it decides
 * whether a body follows) from fd. See the error contract above.
 */
__attribute__((warn_unused_result)) int http_reader_read(struct http_reader *r, int fd,
							 const char *method,
							 struct http_response *out /* OUT */,
							 struct err *e);

#endif
