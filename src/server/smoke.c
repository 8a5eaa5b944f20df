#include "server/smoke.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop/loop.h"
#include "util/log.h"

/* Bounds for a check taken from a stored manifest, in case it did not come through the
 * validator: a stalled instance must not hold the caller for long. */
#define SMOKE_MIN_TIMEOUT_MS 10
#define SMOKE_MAX_TIMEOUT_MS 60000
#define SMOKE_MAX_ADDR 263 /* an instance endpoint, "host:port" (RUNTIME_ENDPOINT_MAX - 1) */
#define SMOKE_MAX_PATH 1024

struct smoke_run {
	fetcher *f;
	struct manifest_smoke *checks; /* copies: a run may outlive the manifest */
	size_t nchecks;
	json_t *evidence; /* one entry per check, filled as they run */
	size_t next;      /* the check to start next */
	uint64_t fetch;   /* the request in flight, or 0 */
	uint64_t timer;   /* the 0 ms timer that finishes a run with nothing to fetch, or 0 */
	int all_ok;
	smoke_done_fn *fn;
	void *arg;
	char addr[SMOKE_MAX_ADDR + 1];
};

static const char *method_name(enum manifest_http_method m)
{
	return m == MANIFEST_HEAD ? "HEAD" : m == MANIFEST_POST ? "POST" : "GET";
}

static void run_free(smoke_run *r)
{
	for (size_t i = 0; i < r->nchecks; i++) {
		free((char *)r->checks[i].path);
		free((char *)r->checks[i].body_contains);
	}
	free(r->checks);
	json_decref(r->evidence);
	free(r);
}

static void finish(smoke_run *r)
{
	r->fn(r->arg, r->evidence, r->all_ok);
	run_free(r);
}

/* Records the outcome of check i; its evidence entry already has what came back. */
static void settle(smoke_run *r, size_t i, int pass, const char *error)
{
	json_t *ev = json_array_get(r->evidence, i);
	if (error)
		json_object_set_new(ev, "error", json_string(error));
	json_object_set_new(ev, "ok", json_boolean(pass));
	r->all_ok &= pass;
}

static void next_check(smoke_run *r);

static void on_response(void *arg, const struct fetch_result *res)
{
	smoke_run *r = arg;
	size_t i = r->next - 1;
	const struct manifest_smoke *ck = &r->checks[i];
	json_t *ev = json_array_get(r->evidence, i);
	const char *path = ck->path, *method = method_name(ck->method), *needle = ck->body_contains;
	long want = ck->status;
	char msg[ERR_MSG_MAX + 64];
	r->fetch = 0;
	if (!res->ok) {
		snprintf(msg, sizeof(msg), "%s %s: %s", method, path, res->error);
		settle(r, i, 0, msg);
	} else {
		json_object_set_new(ev, "status", json_integer(res->status));
		int matched = 1;
		if (needle) {
			matched = res->body_len >= strlen(needle) &&
				  memmem(res->body, res->body_len, needle, strlen(needle)) != NULL;
			json_object_set_new(ev, "matched", json_boolean(matched));
		}
		if (res->status != want) {
			snprintf(msg, sizeof(msg), "%s %s answered %ld, expected %ld", method, path,
				 res->status, want);
			settle(r, i, 0, msg);
		} else if (!matched) {
			snprintf(msg, sizeof(msg),
				 "%s %s: the response body (%zu bytes) does not contain \"%.100s\"", method,
				 path, res->body_len, needle);
			settle(r, i, 0, msg);
		} else {
			settle(r, i, 1, NULL);
		}
	}
	next_check(r);
	if (!r->fetch)
		finish(r);
}

/* Starts the next well-formed check (settling malformed ones on the way); r->fetch stays 0
 * when none is left. */
static void next_check(smoke_run *r)
{
	while (r->next < r->nchecks) {
		size_t i = r->next++;
		const struct manifest_smoke *ck = &r->checks[i];
		const char *path = ck->path, *method = method_name(ck->method);
		uint64_t timeout = ck->timeout_ms;
		if (!r->addr[0]) {
			settle(r, i, 0, "bad instance address");
			continue;
		}
		if (!path || path[0] != '/' || strlen(path) > SMOKE_MAX_PATH) {
			settle(r, i, 0, "malformed check (its path must begin with '/')");
			continue;
		}
		if (timeout < SMOKE_MIN_TIMEOUT_MS)
			timeout = SMOKE_MIN_TIMEOUT_MS;
		if (timeout > SMOKE_MAX_TIMEOUT_MS)
			timeout = SMOKE_MAX_TIMEOUT_MS;
		char url[16 + SMOKE_MAX_ADDR + SMOKE_MAX_PATH];
		snprintf(url, sizeof(url), "http://%s%s", r->addr, path);
		/* POST with an empty body, so that the request carries Content-Length: 0 */
		struct fetch_req req = {
			.method = method, .url = url, .body = strcmp(method, "POST") ? NULL : "",
			.timeout_ms = (long)timeout, .max_response = SMOKE_MAX_BODY,
		};
		r->fetch = fetch_start(r->f, &req, on_response, r);
		if (r->fetch)
			return;
		settle(r, i, 0, "out of memory");
	}
}

static void on_timer(loop *l, void *arg)
{
	(void)l;
	smoke_run *r = arg;
	r->timer = 0;
	finish(r);
}

int smoke_start(fetcher *f, const struct manifest_smoke *checks, size_t n, const char *addr,
		smoke_done_fn *fn, void *arg, smoke_run **out)
{
	*out = NULL;
	if (!n)
		return 1;
	smoke_run *r = calloc(1, sizeof(*r));
	if (!r)
		return -1;
	r->f = f;
	r->evidence = json_array();
	r->checks = calloc(n, sizeof(*r->checks));
	if (!r->evidence || !r->checks) {
		run_free(r);
		return -1;
	}
	for (; r->nchecks < n; r->nchecks++) {
		struct manifest_smoke *ck = &r->checks[r->nchecks];
		*ck = checks[r->nchecks];
		ck->path = ck->path ? strdup(ck->path) : NULL;
		ck->body_contains = ck->body_contains ? strdup(ck->body_contains) : NULL;
		if ((checks[r->nchecks].path && !ck->path) ||
		    (checks[r->nchecks].body_contains && !ck->body_contains)) {
			r->nchecks++;
			run_free(r);
			return -1;
		}
	}
	r->all_ok = 1;
	r->fn = fn;
	r->arg = arg;
	if (addr && strlen(addr) <= SMOKE_MAX_ADDR)
		snprintf(r->addr, sizeof(r->addr), "%s", addr);
	for (size_t i = 0; i < n; i++) {
		const struct manifest_smoke *ck = &r->checks[i];
		json_t *ev = json_pack("{s:s?, s:s, s:i, s:n, s:s?, s:n, s:b, s:n}", "path", ck->path,
				       "method", method_name(ck->method), "want_status", ck->status,
				       "status", "body_contains", ck->body_contains, "matched", "ok", 0,
				       "error");
		if (!ev || json_array_append_new(r->evidence, ev)) {
			run_free(r);
			return -1;
		}
	}
	next_check(r);
	if (!r->fetch) {
		/* nothing to fetch (every check malformed): the answer still comes from the loop */
		r->timer = loop_timer(fetcher_loop(f), 0, on_timer, r);
		if (!r->timer) {
			run_free(r);
			return -1;
		}
	}
	*out = r;
	return 0;
}

void smoke_cancel(smoke_run *r)
{
	if (!r)
		return;
	if (r->fetch)
		fetch_cancel(r->f, r->fetch);
	if (r->timer)
		loop_timer_cancel(fetcher_loop(r->f), r->timer);
	run_free(r);
}
