/*
 * parse: the strict HTTP/1.1 message parser (RFC 9112), shared by the proxy and the API server.
 *
 * It parses a complete message head (start line + header fields + empty line) from a buffer the
 * caller owns, without copying: every pointer in struct http_head points into that buffer and
 * stays valid while the buffer does. It never allocates. It is strict on purpose, because the
 * proxy sits in front of servers that may read a message differently (request smuggling): it
 * refuses, with a distinct code, a bare CR, obsolete line folding, whitespace before a colon,
 * Content-Length together with Transfer-Encoding, conflicting or repeated Content-Length, a
 * transfer coding other than a final "chunked", invalid tokens, and heads over the limits.
 *
 * Lines end in CRLF only: a bare LF is refused like a bare CR (HTTP_E_BARE_CR), although RFC
 * 9112 lets a recipient accept it, because some servers do and some do not. Other choices:
 * empty lines (CRLF) before a request line are skipped (RFC 9112 2.2); a repeated Host, or one
 * with characters outside an authority, is HTTP_E_BAD_HEADER_VALUE; Transfer-Encoding in an
 * HTTP/1.0 message is HTTP_E_BAD_TRANSFER_ENCODING (RFC 9112 6.1). Errors are final and
 * depend only on the bytes seen: a prefix of a message gives HTTP_E_INCOMPLETE or the same
 * error as the whole, and bytes after the head never change the result. docs/http.md lists
 * everything that is accepted and refused.
 *
 * Bodies are framed, not parsed: the head says how (none, length, chunked, until close); the
 * chunked decoder below walks chunked bodies incrementally, decoding or just validating.
 */
#ifndef SLUICE_HTTP_PARSE_H
#define SLUICE_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_MAX_HEADERS_HARD 128 /* capacity of struct http_head; limits may be lower */

enum http_error {
	HTTP_OK = 0,
	HTTP_E_INCOMPLETE = 1, /* not an error: more bytes are needed */
	HTTP_E_HEAD_TOO_LARGE = -1,
	HTTP_E_TOO_MANY_HEADERS = -2,
	HTTP_E_BAD_METHOD = -3,
	HTTP_E_BAD_TARGET = -4,
	HTTP_E_BAD_VERSION = -5,
	HTTP_E_BARE_CR = -6,
	HTTP_E_OBS_FOLD = -7,
	HTTP_E_SPACE_BEFORE_COLON = -8,
	HTTP_E_BAD_HEADER_NAME = -9,
	HTTP_E_BAD_HEADER_VALUE = -10,
	HTTP_E_CL_AND_TE = -11,
	HTTP_E_BAD_CONTENT_LENGTH = -12, /* not digits, overflow, repeated or conflicting */
	HTTP_E_BAD_TRANSFER_ENCODING = -13, /* unknown coding, or chunked not last */
	HTTP_E_BODY_TOO_LARGE = -14,
	HTTP_E_BAD_STATUS = -15,
	HTTP_E_BAD_CHUNK = -16, /* invalid chunk size, extension or framing */
	HTTP_E_MISSING_HOST = -17,
};

struct http_limits {
	size_t max_head;     /* bytes of start line + headers, including the final CRLF CRLF */
	size_t max_headers;  /* number of header fields, at most HTTP_MAX_HEADERS_HARD */
	uint64_t max_body;   /* declared Content-Length or decoded chunked size; 0 = no limit */
};

struct http_header {
	const char *name;
	size_t name_len;
	const char *value; /* leading and trailing whitespace removed */
	size_t value_len;
};

enum http_body_kind {
	HTTP_BODY_NONE,
	HTTP_BODY_LENGTH,
	HTTP_BODY_CHUNKED,
	HTTP_BODY_UNTIL_CLOSE, /* responses only: no length, read until the server closes */
};

struct http_head {
	/* request line */
	const char *method;
	size_t method_len;
	const char *target;
	size_t target_len;
	/* status line */
	int status;
	const char *reason;
	size_t reason_len;
	int version_minor; /* HTTP/1.<minor>: 0 or 1 */

	struct http_header headers[HTTP_MAX_HEADERS_HARD];
	size_t nheaders;

	/* derived from the fields */
	enum http_body_kind body;
	uint64_t content_length;  /* when body == HTTP_BODY_LENGTH */
	unsigned keep_alive : 1;  /* version default adjusted by Connection: close/keep-alive */
	unsigned expect_continue : 1;
	unsigned upgrade : 1;     /* Connection: upgrade with an Upgrade field */
};

/*
 * Parses a request head from buf[0..len). Returns the number of bytes the head used (> 0), or
 * HTTP_E_INCOMPLETE (1 is never a valid head length) when more bytes are needed and the limit
 * is not yet reached, or a negative enum http_error. A request without Host is refused
 * (HTTP_E_MISSING_HOST) for HTTP/1.1.
 */
ssize_t http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
			   struct http_head *h /* OUT */);

/*
 * Parses a response head. `request_method` decides framing (a response to HEAD has no body,
 * nor 1xx, 204 and 304). Same return contract as http_parse_request.
 */
ssize_t http_parse_response(const char *buf, size_t len, const struct http_limits *lim,
			    const char *request_method, size_t request_method_len,
			    struct http_head *h /* OUT */);

/* Case-insensitive lookup of the first field named `name`; NULL when absent. */
const struct http_header *http_head_get(const struct http_head *h, const char *name);

/* A short English description of an enum http_error, for logs and 400 bodies. */
const char *http_strerror(int code);

/*
 * The chunked decoder: feed it the body bytes as they arrive.
 *
 * http_chunked_feed consumes from in[0..n) and returns the number of bytes consumed (all of
 * them unless the message ends inside the input: the rest belongs to the next message), or a
 * negative enum http_error. When `out` is not NULL the chunk data is copied there (it needs
 * room for n bytes; decoded data is never longer than its encoding) and *out_len is set;
 * with out == NULL it only validates and finds the end, which is what a proxy that forwards
 * the encoding untouched needs. `done` becomes 1 after the last chunk and its trailers.
 */
struct http_chunked {
	int state;
	uint64_t remaining; /* bytes left in the current chunk */
	uint64_t total;     /* decoded bytes so far, checked against max_body */
	uint64_t max_body;  /* 0 = no limit */
	size_t line_len;    /* bytes of the current size/trailer line, bounded */
	int done;
};

void http_chunked_init(struct http_chunked *c, uint64_t max_body);
ssize_t http_chunked_feed(struct http_chunked *c, const char *in, size_t n, char *out,
			  size_t *out_len /* OUT, may be NULL */);

#endif
