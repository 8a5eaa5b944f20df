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
	json_t *checks;   /* one reference */
	json_t *evidence; /* one entry per check, filled as they run */
	size_t next;      /* the check to start next */
	uint64_t fetch;   /* the request in flight, or 0 */
	uint64_t timer;   /* the 0 ms timer that finishes a run with nothing to fetch, or 0 */
	int all_ok;
	smoke_done_fn *fn;
	void *arg;
	char addr[SMOKE_MAX_ADDR + 1];
};

static void run_free(smoke_run *r)
{
	json_decref(r->checks);
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
	const json_t *ck = json_array_get(r->checks, i);
	json_t *ev = json_array_get(r->evidence, i);
	const char *path = json_string_value(json_object_get(ck, "path"));
	const char *method = json_string_value(json_object_get(ck, "method"));
	const char *needle = json_string_value(json_object_get(ck, "body_contains"));
	json_int_t want = json_integer_value(json_object_get(ck, "status"));
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
			snprintf(msg, sizeof(msg), "%s %s answered %ld, expected %lld", method, path,
				 res->status, (long long)want);
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
	while (r->next < json_array_size(r->checks)) {
		size_t i = r->next++;
		const json_t *ck = json_array_get(r->checks, i);
		const char *path = json_string_value(json_object_get(ck, "path"));
		const char *method = json_string_value(json_object_get(ck, "method"));
		json_int_t timeout = json_integer_value(json_object_get(ck, "timeout_ms"));
		if (!r->addr[0]) {
			settle(r, i, 0, "bad instance address");
			continue;
		}
		if (!path || path[0] != '/' || strlen(path) > SMOKE_MAX_PATH || !method ||
		    !json_is_integer(json_object_get(ck, "status"))) {
			settle(r, i, 0, "malformed check (expected a normalized smoke entry with path, "
					"method, status)");
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

int smoke_start(fetcher *f, const json_t *checks, const char *addr, smoke_done_fn *fn, void *arg,
		smoke_run **out)
{
	*out = NULL;
	if (!json_array_size(checks))
		return 1;
	smoke_run *r = calloc(1, sizeof(*r));
	if (!r)
		return -1;
	r->f = f;
	r->checks = json_incref((json_t *)checks);
	r->evidence = json_array();
	r->all_ok = 1;
	r->fn = fn;
	r->arg = arg;
	if (addr && strlen(addr) <= SMOKE_MAX_ADDR)
		snprintf(r->addr, sizeof(r->addr), "%s", addr);
	size_t i;
	json_t *ck;
	json_array_foreach(checks, i, ck) {
		const json_t *want = json_object_get(ck, "status");
		json_t *ev = json_pack("{s:s?, s:s?, s:O?, s:n, s:s?, s:n, s:b, s:n}", "path",
				       json_string_value(json_object_get(ck, "path")), "method",
				       json_string_value(json_object_get(ck, "method")), "want_status",
				       json_is_integer(want) ? want : NULL, "status", "body_contains",
				       json_string_value(json_object_get(ck, "body_contains")), "matched",
				       "ok", 0, "error");
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
