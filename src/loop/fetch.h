/*
 * fetch: asynchronous HTTP requests over libcurl's multi interface, driven by a loop (loop.h),
 * so that a slow or silent remote (a smoke check, a Prometheus query) never blocks the thread
 * that runs the loop. Transfers run in parallel; curl's sockets and its one timer are mapped
 * onto loop_add/loop_mod/loop_del and loop_timer (level-triggered).
 *
 * Invariants:
 *   - Every started request ends exactly once: either its callback runs, or it is cancelled
 *     (fetch_cancel, fetcher_free) and its callback never runs.
 *   - Callbacks run only from the loop (loop_run), never from inside fetch_start, fetch_cancel
 *     or fetcher_free. A request that fails before reaching the network (malformed URL, bad
 *     method, timeout_ms <= 0) is delivered from a 0 ms loop timer.
 *   - A response body never grows past max_response bytes; a larger one ends the request with
 *     an error (the transfer is aborted, the body is not delivered).
 *   - Only http and https; redirects are not followed (a 3xx is a response like any other).
 *     Proxy settings from the environment are honoured, as everywhere else in libcurl.
 *
 * Ownership: fetch_start copies everything it needs from the request (URL, method, body,
 * content type, header fields), so the caller's strings may go away once it returns. The result handed to a
 * callback, including body and error, belongs to fetch and is valid only during the callback.
 *
 * Re-entrancy: a callback may call fetch_start, fetch_cancel (for any request) and
 * fetcher_free. Nothing here is thread-safe: a fetcher belongs to its loop's thread.
 *
 * Errors: fetcher_new and fetch_start return NULL/0 only when memory (or curl) is unavailable;
 * everything else that can go wrong with a request, including invalid arguments, reaches its
 * callback as ok=0 with a message for people to read.
 */
#ifndef SLUICE_FETCH_H
#define SLUICE_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "loop/loop.h"

typedef struct fetcher fetcher;

struct fetch_req {
	const char *method;   /* NULL = "GET"; also "HEAD", "POST", "PUT", "DELETE" */
	const char *url;      /* http:// or https:// */
	const char *body;     /* may be NULL; copied by fetch_start */
	size_t body_len;
	const char *ctype;    /* Content-Type of body; NULL = application/json when a body is given */
	long timeout_ms;      /* whole exchange including connect; must be > 0 */
	size_t max_response;  /* response body bytes; a larger body ends the request with an error */
	const char *const *headers; /* NULL, or extra request fields: a NULL-terminated list of
				     * "Name: value" (e.g. "Authorization: Bearer ..."), copied by
				     * fetch_start; the rules and limits of httpc_headers_check
				     * (util/httpc.h): at most 32 fields of 8 KiB, no CR/LF, not
				     * Host/Content-Type/Content-Length/... A refused list ends the
				     * request with an error (nothing is sent). */
	const char *cacert;   /* NULL: an https server is verified against the system's CAs;
			       * else against the PEM CA certificates in this file (the
			       * certificate must still name the URL's host) */
};

struct fetch_result {
	int ok;               /* 1: a complete response came (any status); 0: see error */
	long status;          /* when ok */
	const char *body;     /* when ok: NUL-terminated, valid only during the callback */
	size_t body_len;
	const char *error;    /* when !ok: what went wrong, for people to read (e.g. "timed out
			       * after 1000 ms", "connection refused", "response larger than
			       * 65536 bytes") */
	uint64_t elapsed_ms;  /* from fetch_start to the callback */
};

typedef void fetch_done_fn(void *arg, const struct fetch_result *r);

/* Returns NULL when curl or memory is unavailable. One fetcher per loop; the loop must outlive
 * it. */
fetcher *fetcher_new(loop *l);
/* Cancels every pending request WITHOUT calling its callback, and frees everything, leaving no
 * descriptor or timer of its own in the loop. May be called from inside a fetch callback (the
 * memory is then released when that callback returns). NULL is ignored. */
void fetcher_free(fetcher *f);
/* The loop f runs on, for callers that arm their own timers next to their requests. */
loop *fetcher_loop(const fetcher *f);

/*
 * Starts a request. Returns its id (never 0), or 0 when out of memory (fn will then never run).
 * fn (may be NULL: nobody is told) runs exactly once, always from the loop, unless the request
 * is cancelled first. Errors of the request itself, even immediate ones, go to fn.
 */
uint64_t fetch_start(fetcher *f, const struct fetch_req *req, fetch_done_fn *fn, void *arg);
/* Cancels a pending request: its callback will not run. Unknown or finished ids are ignored
 * (a request whose callback is running counts as finished). Safe from inside any callback. */
void fetch_cancel(fetcher *f, uint64_t id);
/* Requests started and not yet finished or cancelled (whose callback has not begun). */
size_t fetch_pending(const fetcher *f);

#endif
