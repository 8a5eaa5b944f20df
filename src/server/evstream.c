/*
 * evstream: see evstream.h. The open streams form a list; each remembers the last event id it
 * was shown (or skipped), so an event read twice (by its replay and by the next poll) is sent
 * once. An event is formatted once per poll and written to each stream that may see it.
 *
 * A stream's record lives from evstream_open to the server's end() call; the server calls end
 * from inside httpd_stream_write and httpd_stream_close too, so every walk over the list keeps
 * the next element before writing.
 */
#include "server/evstream.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/tokens.h"
#include "util/buf.h"
#include "util/log.h"

struct sub {
	evstream *es;
	struct sub *prev, *next;
	httpd_stream *st;  /* NULL until the server started the stream */
	struct auth_principal who;
	char authz[256];
	char service[64];  /* "" : every one */
	int64_t deployment; /* 0: every one */
	int64_t last;      /* the last event id shown or skipped */
	int64_t after;     /* the client's Last-Event-ID; -1: none */
};

struct evstream {
	loop *l;
	store *s;
	struct evstream_opts o;
	struct sub *subs;
	unsigned n;
	int64_t cursor;       /* the last event id read by the poll */
	uint64_t changes;     /* store_changes() at that read */
	uint64_t poll_timer, beat_timer;
	struct tokens_cache tokens;
};

static void poll_tick(loop *l, void *arg);
static void beat_tick(loop *l, void *arg);

evstream *evstream_new(loop *l, store *s, const struct evstream_opts *o)
{
	evstream *es = calloc(1, sizeof(*es));
	if (!es)
		return NULL;
	es->l = l;
	es->s = s;
	if (o)
		es->o = *o;
	if (!es->o.max_streams)
		es->o.max_streams = 64;
	if (!es->o.max_pending)
		es->o.max_pending = 4u << 20;
	if (!es->o.poll_ms)
		es->o.poll_ms = 200;
	if (!es->o.heartbeat_ms)
		es->o.heartbeat_ms = 15000;
	return es;
}

static void timers_stop(evstream *es)
{
	if (es->poll_timer)
		loop_timer_cancel(es->l, es->poll_timer);
	if (es->beat_timer)
		loop_timer_cancel(es->l, es->beat_timer);
	es->poll_timer = es->beat_timer = 0;
}

void evstream_free(evstream *es)
{
	if (!es)
		return;
	while (es->subs) {
		struct sub *u = es->subs;
		if (u->st) {
			httpd_stream_close(u->st); /* end() unlinks and frees it */
		} else { /* opened, never started: the server still holds its hooks */
			es->subs = u->next;
			u->es = NULL;
		}
	}
	timers_stop(es);
	tokens_cache_release(&es->tokens);
	free(es);
}

unsigned evstream_count(const evstream *es)
{
	return es->n;
}

static void sub_unlink(struct sub *u)
{
	evstream *es = u->es;
	if (!es)
		return;
	if (u->prev)
		u->prev->next = u->next;
	else
		es->subs = u->next;
	if (u->next)
		u->next->prev = u->prev;
	es->n--;
	if (!es->subs)
		timers_stop(es);
}

/* Whether stream u is to be shown event ev (and it was not shown it yet). */
static int wants(struct sub *u, const json_t *ev, int64_t id)
{
	if (id <= u->last)
		return 0;
	u->last = id;
	const char *svc = json_string_value(json_object_get(ev, "service"));
	const char *env = json_string_value(json_object_get(ev, "env"));
	if (!svc || !env)
		return 0;
	if (u->service[0] && strcmp(u->service, svc))
		return 0;
	if (u->deployment && json_integer_value(json_object_get(ev, "deployment")) != u->deployment)
		return 0;
	return auth_allows(&u->who, AUTH_READ, svc, env);
}

/* "id: N\ndata: JSON\n\n" into b; -1 when out of memory. */
static int format(struct buf *b, const json_t *ev, int64_t id)
{
	buf_reset(b);
	char *txt = json_dumps(ev, JSON_COMPACT);
	if (!txt)
		return -1;
	int rc = buf_addf(b, "id: %lld\ndata: %s\n\n", (long long)id, txt);
	free(txt);
	return rc;
}

/* Sends u the events after its cursor, up to EVSTREAM_REPLAY_MAX; ends it when it is further
 * behind than that. Returns -1 when the stream ended. */
static int replay(struct sub *u)
{
	struct buf b;
	buf_init(&b, BUF_NOLIMIT);
	int64_t sent = 0;
	for (;;) {
		json_t *list = NULL;
		struct err e = {""};
		if (store_events_after(u->es->s, u->last, EVSTREAM_PAGE, &list, &e)) {
			log_warn("evstream: cannot read the events to replay: %s", e.msg);
			buf_release(&b);
			httpd_stream_close(u->st);
			return -1;
		}
		size_t n = json_array_size(list), i;
		json_t *ev;
		json_array_foreach(list, i, ev) {
			int64_t id = json_integer_value(json_object_get(ev, "id"));
			if (!wants(u, ev, id))
				continue;
			if (format(&b, ev, id) || httpd_stream_write(u->st, b.data, b.len)) {
				json_decref(list);
				buf_release(&b);
				return -1; /* dropped: end() has run */
			}
			sent++;
		}
		json_decref(list);
		if (n < EVSTREAM_PAGE)
			break;
		if (sent >= EVSTREAM_REPLAY_MAX || u->last - u->after >= 4 * EVSTREAM_REPLAY_MAX) {
			/* too far behind for one connection: it resumes from its new Last-Event-ID.
			 * The id line moves that past what was scanned, even when nothing was sent
			 * (a narrowed stream skipping other deployments' events), so the next
			 * connection goes on from there instead of scanning the same events again. */
			char note[128];
			int nl = snprintf(note, sizeof(note), "id: %lld\n: more events follow: reconnect "
					 "with Last-Event-ID\n\n", (long long)u->last);
			if (httpd_stream_write(u->st, note, (size_t)nl) == 0)
				httpd_stream_close(u->st);
			buf_release(&b);
			return -1;
		}
	}
	buf_release(&b);
	return 0;
}

static void on_start(void *arg, httpd_stream *st)
{
	struct sub *u = arg;
	u->st = st;
	if (u->after >= 0 && u->last < u->es->cursor)
		(void)replay(u);
}

static void on_end(void *arg)
{
	struct sub *u = arg;
	sub_unlink(u);
	auth_principal_release(&u->who);
	free(u);
}

/* Reads the events after the cursor (once the store changed) and fans them out. */
static void poll_tick(loop *l, void *arg)
{
	evstream *es = arg;
	es->poll_timer = 0;
	uint64_t ch = store_changes(es->s);
	struct buf b;
	buf_init(&b, BUF_NOLIMIT);
	while (ch != es->changes && es->subs) {
		json_t *list = NULL;
		struct err e = {""};
		if (store_events_after(es->s, es->cursor, EVSTREAM_PAGE, &list, &e)) {
			log_warn("evstream: cannot read new events: %s", e.msg);
			break; /* the next tick tries again */
		}
		size_t n = json_array_size(list), i;
		json_t *ev;
		json_array_foreach(list, i, ev) {
			int64_t id = json_integer_value(json_object_get(ev, "id"));
			es->cursor = id;
			int formatted = 0;
			for (struct sub *u = es->subs, *next; u; u = next) {
				next = u->next;
				if (!u->st || !wants(u, ev, id))
					continue;
				if (!formatted && format(&b, ev, id)) {
					log_warn("evstream: out of memory");
					break;
				}
				formatted = 1;
				if (httpd_stream_write(u->st, b.data, b.len))
					log_info("evstream: a client that does not read its stream was dropped");
			}
		}
		json_decref(list);
		if (n < EVSTREAM_PAGE)
			es->changes = ch;
	}
	buf_release(&b);
	if (es->subs)
		es->poll_timer = loop_timer(l, es->o.poll_ms, poll_tick, es);
}

/* Keeps every stream's connection alive, and ends those whose token no longer holds. */
static void beat_tick(loop *l, void *arg)
{
	evstream *es = arg;
	es->beat_timer = 0;
	static const char beat[] = ": keep-alive\n\n";
	for (struct sub *u = es->subs, *next; u; u = next) {
		next = u->next;
		if (!u->st)
			continue;
		struct auth_principal p = {0};
		struct err e = {""};
		int rc = tokens_authenticate(es->s, &es->tokens, u->authz, store_now_ms(), &p, &e);
		auth_principal_release(&p);
		if (rc > 0) {
			httpd_stream_close(u->st); /* revoked or expired */
			continue;
		}
		if (httpd_stream_write(u->st, beat, sizeof(beat) - 1))
			log_info("evstream: a client that does not read its stream was dropped");
	}
	if (es->subs)
		es->beat_timer = loop_timer(l, es->o.heartbeat_ms, beat_tick, es);
}

void evstream_open(evstream *es, const struct auth_principal *who, const char *authorization,
		   const struct evstream_filter *f, struct httpd_resp *resp)
{
	if (es->n >= es->o.max_streams) {
		if (buf_adds(&resp->headers, "Retry-After: 5\r\n"))
			log_warn("evstream: could not add Retry-After");
		httpd_error(resp, 503, "too many event streams are open (%u): try again later",
			    es->o.max_streams);
		return;
	}
	struct err e = {""};
	if (!es->subs) { /* the first stream: the cursor starts at the newest event */
		json_t *last = NULL;
		if (store_events_after(es->s, -1, 1, &last, &e)) {
			httpd_error(resp, 500, "%s", e.msg);
			return;
		}
		es->cursor = json_integer_value(json_object_get(json_array_get(last, 0), "id"));
		es->changes = store_changes(es->s);
		json_decref(last);
	}
	struct sub *u = calloc(1, sizeof(*u));
	if (!u) {
		httpd_error(resp, 500, "out of memory");
		return;
	}
	u->es = es;
	auth_principal_set(&u->who, who->name, who->scopes);
	snprintf(u->authz, sizeof(u->authz), "%s", authorization ? authorization : "");
	snprintf(u->service, sizeof(u->service), "%s", f->service ? f->service : "");
	u->deployment = f->deployment;
	u->after = f->after;
	u->last = f->after >= 0 ? f->after : es->cursor;
	u->next = es->subs;
	if (es->subs)
		es->subs->prev = u;
	es->subs = u;
	es->n++;
	if (!es->poll_timer)
		es->poll_timer = loop_timer(es->l, es->o.poll_ms, poll_tick, es);
	if (!es->beat_timer)
		es->beat_timer = loop_timer(es->l, es->o.heartbeat_ms, beat_tick, es);
	resp->status = 200;
	resp->content_type = "text/event-stream";
	if (buf_adds(&resp->headers, "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\n") ||
	    buf_adds(&resp->body, "retry: 2000\n: sluice events\n\n"))
		log_warn("evstream: could not write the stream's head");
	resp->stream.start = on_start;
	resp->stream.end = on_end;
	resp->stream.arg = u;
	resp->stream.max_pending = es->o.max_pending;
}
