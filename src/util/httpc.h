/*
 * httpc: a small blocking HTTP client over libcurl, for the CLI and for the control plane's
 * calls to the proxy's admin API on loopback. One handle keeps its connection alive between
 * requests. Response bodies are capped (limit given at init): a larger body is an error.
 * Extra request header fields (a token) are set once per handle (httpc_set_headers).
 *
 * https:// URLs: the server's certificate is always verified (chain and name), against the
 * system's CAs or the file given to httpc_set_cacert; nothing turns verification off. Only
 * http:// and https:// URLs are followed.
 */
#ifndef SLUICE_HTTPC_H
#define SLUICE_HTTPC_H

#include <jansson.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/log.h"

typedef struct httpc httpc;

httpc *httpc_new(long timeout_ms, size_t max_response);
void httpc_free(httpc *c);

/* Verifies https servers against the PEM CA certificates in `path` (not NULL) instead of the
 * system's, from the next request on. The path is copied; the file is read when a request
 * needs it (a missing file is then HTTPC_E_VERIFY). Returns 0, or -1 when out of memory. */
__attribute__((warn_unused_result)) int httpc_set_cacert(httpc *c, const char *path);

/* The failure of a request whose https server could not be verified (its certificate is not
 * signed by a trusted CA or does not name the host), or whose CA file could not be used. */
#define HTTPC_E_VERIFY (-2)

/*
 * Extra request header fields (for example "Authorization: Bearer ..."), shared with fetch.h.
 *
 * A list is NULL-terminated; each entry is one field "Name: value" without CRLF. Limits: at most
 * HTTPC_MAX_HEADERS fields of at most HTTPC_MAX_HEADER_LEN bytes each. The name is an HTTP
 * token; the value (spaces around it are not significant) holds no CR, LF or other control
 * character but HTAB, and may be empty. Fields the client owns are refused: Host,
 * Content-Length, Transfer-Encoding, Connection, Expect and Content-Type (it has its own
 * argument). Nothing is sent when a list is refused.
 */
#define HTTPC_MAX_HEADERS 32
#define HTTPC_MAX_HEADER_LEN 8192

/* Checks a list against the rules above: 0, or -1 with e naming the field and the rule. */
__attribute__((warn_unused_result)) int httpc_headers_check(const char *const *headers,
							    struct err *e);
/*
 * Appends the fields of a checked list to *list in libcurl's CURLOPT_HTTPHEADER form ("Name;"
 * for an empty value, which "Name:" would remove). For httpc and fetch. Returns 0, or -1 when
 * out of memory (*list then holds what it held before, plus possibly some of the fields).
 */
struct curl_slist;
__attribute__((warn_unused_result)) int httpc_headers_append(struct curl_slist **list,
							     const char *const *headers);
/*
 * Sends these fields with every later request of c, until the next call; NULL or an empty list
 * sends none. The strings are copied: the caller's may go away once this returns. On -1 (a
 * refused list, e says why, or out of memory) c keeps the fields it had.
 */
__attribute__((warn_unused_result)) int httpc_set_headers(httpc *c, const char *const *headers,
							  struct err *e);

/*
 * Sends method url with body (may be NULL; content type application/json unless ctype given).
 * On a response of any status returns 0 with *status and the body appended to resp. Returns
 * HTTPC_E_VERIFY with e when the server's certificate could not be verified, -1 with e when
 * the server could not be reached otherwise or the response was too large.
 */
__attribute__((warn_unused_result)) int httpc_request(httpc *c, const char *method, const char *url,
						      const char *body, size_t body_len,
						      const char *ctype, long *status, struct buf *resp,
						      struct err *e);

/* Same (and the same returns), with JSON in and out: body may be NULL; *out receives the
 * decoded response (or NULL when it is not JSON). */
__attribute__((warn_unused_result)) int httpc_json(httpc *c, const char *method, const char *url,
						   const json_t *body, long *status, json_t **out,
						   struct err *e);

/* Streams a file as the request body (PUT/POST); returns as httpc_request. */
__attribute__((warn_unused_result)) int httpc_upload(httpc *c, const char *method, const char *url,
						     const char *path, long *status, struct buf *resp,
						     struct err *e);

/*
 * A GET whose answer is a stream (server-sent events). While the status is 2xx, every piece of
 * the body is passed to fn(arg, data, len) as it arrives (pieces of any size); fn returns 0 to
 * go on, nonzero to stop. Another status's body goes to err_body instead (within the handle's
 * max_response). There is no overall timeout: the call fails when nothing at all arrived for
 * idle_ms (a live stream's heartbeats keep it going). headers: extra fields for this call only
 * (checked as httpc_headers_check does), may be NULL. Returns 0 with *status when the server
 * ended the stream or fn stopped it; otherwise as httpc_request.
 */
__attribute__((warn_unused_result)) int httpc_stream(httpc *c, const char *url,
						     const char *const *headers, long idle_ms,
						     int (*fn)(void *arg, const char *data, size_t len),
						     void *arg, long *status, struct buf *err_body,
						     struct err *e);

/* Percent-encodes s for use in a URL path segment or query value. Caller frees. */
char *httpc_escape(const char *s);

#endif
