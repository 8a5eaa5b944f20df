/*
 * evstream: the server-sent events stream of deployment events (GET /v1/events/stream, see
 * docs/api.md), for `sluice events --follow` and the dashboard.
 *
 * Every event the store records is sent to every open stream whose token may read the event's
 * service in its environment (the decision of GET /v1/deployments/{id}/events), narrowed when
 * the stream asked for one service or one deployment, as one message:
 *     id: 42
 *     data: {"id":42,"at":...,"deployment":7,"service":"pay","env":"production","type":...}
 *     (blank line)
 * A stream starts at the newest event, or after the client's Last-Event-ID: the events it
 * missed come first, at most EVSTREAM_REPLAY_MAX of them; a client further behind gets those,
 * then the stream ends, and it resumes with its new Last-Event-ID.
 *
 * How it follows the store: one timer, running while a stream is open, every poll_ms looks at
 * store_changes(); when it moved, the events after the stream set's cursor are read once
 * (store_events_after) and fanned out. So the loop's other work is untouched while nobody
 * follows, and a burst of events costs one query per EVSTREAM_PAGE of them. Every heartbeat_ms
 * each stream gets a comment line (": keep-alive") and its token is checked again: a revoked or
 * expired token's streams end then.
 *
 * Limits: at most max_streams open at once (the next is answered 503 with Retry-After); at
 * most max_pending bytes waiting for one client, beyond which it is dropped (http/server.h's
 * httpd_stream_write): a slow client never blocks the loop nor grows the server's memory.
 *
 * Ownership: an evstream borrows its loop and store, which must outlive it. evstream_free
 * ends every open stream (so free it before the store, and before or after the httpd: both
 * orders are safe, the first one to go ends the streams).
 */
#ifndef SLUICE_EVSTREAM_H
#define SLUICE_EVSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "http/server.h"
#include "loop/loop.h"
#include "server/auth.h"
#include "store/store.h"

#define EVSTREAM_REPLAY_MAX 5000 /* events replayed after a Last-Event-ID, per connection */
#define EVSTREAM_PAGE 500        /* events read per query */

typedef struct evstream evstream;

/* A zero field takes its default. */
struct evstream_opts {
	unsigned max_streams;  /* default 64 */
	size_t max_pending;    /* bytes per client; default 4 MiB */
	unsigned poll_ms;      /* default 200 */
	unsigned heartbeat_ms; /* default 15000 (below the API server's 30 s idle timeout) */
};

/* NULL when out of memory. */
evstream *evstream_new(loop *l, store *s, const struct evstream_opts *o /* may be NULL */);
void evstream_free(evstream *es);

/* What one stream asks for. */
struct evstream_filter {
	const char *service;  /* NULL: every service the token may read */
	int64_t deployment;   /* 0: every deployment */
	int64_t after;        /* resume after this event id; -1: from now on */
};

/*
 * Answers one request for a stream: 200 text/event-stream (resp->stream set: the server calls
 * back when it starts and ends), 503 when max_streams are open, 500 when the store failed.
 * who is the caller (its scopes are copied); authorization is the request's Authorization
 * value, kept to check the token again at each heartbeat.
 */
void evstream_open(evstream *es, const struct auth_principal *who, const char *authorization,
		   const struct evstream_filter *f, struct httpd_resp *resp);

/* Streams open now. */
unsigned evstream_count(const evstream *es);

#endif
