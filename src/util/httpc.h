/*
 * httpc: a small blocking HTTP client over libcurl, for the CLI and for the control plane's
 * calls to the proxy's admin API on loopback. One handle keeps its connection alive between
 * requests. Response bodies are capped (limit given at init): a larger body is an error.
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

/*
 * Sends method url with body (may be NULL; content type application/json unless ctype given).
 * On a response of any status returns 0 with *status and the body appended to resp. Returns
 * -1 with e when the server could not be reached or the response was too large.
 */
__attribute__((warn_unused_result)) int httpc_request(httpc *c, const char *method, const char *url,
						      const char *body, size_t body_len,
						      const char *ctype, long *status, struct buf *resp,
						      struct err *e);

/* Same, with JSON in and out: body may be NULL; *out receives the decoded response (or NULL
 * when it is not JSON). */
__attribute__((warn_unused_result)) int httpc_json(httpc *c, const char *method, const char *url,
						   const json_t *body, long *status, json_t **out,
						   struct err *e);

/* Streams a file as the request body (PUT/POST). */
__attribute__((warn_unused_result)) int httpc_upload(httpc *c, const char *method, const char *url,
						     const char *path, long *status, struct buf *resp,
						     struct err *e);

/* Percent-encodes s for use in a URL path segment or query value. Caller frees. */
char *httpc_escape(const char *s);

#endif
