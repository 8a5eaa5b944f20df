#include "server/smoke.h"

#include <stdio.h>
#include <string.h>

#include "util/buf.h"
#include "util/httpc.h"
#include "util/log.h"

/* Bounds for a check taken from a stored manifest, in case it did not come through the
 * validator: a stalled instance must not hold the caller for long. */
#define SMOKE_MIN_TIMEOUT_MS 10
#define SMOKE_MAX_TIMEOUT_MS 60000
#define SMOKE_MAX_ADDR 64
#define SMOKE_MAX_PATH 1024

/* One check; fills ev's status/matched/ok/error. Returns 1 when it passed. */
static int run_one(const json_t *ck, const char *addr, json_t *ev)
{
	const char *path = json_string_value(json_object_get(ck, "path"));
	const char *method = json_string_value(json_object_get(ck, "method"));
	const json_t *want = json_object_get(ck, "status");
	const char *needle = json_string_value(json_object_get(ck, "body_contains"));
	json_int_t timeout = json_integer_value(json_object_get(ck, "timeout_ms"));
	char msg[ERR_MSG_MAX + 64];

	if (!path || path[0] != '/' || strlen(path) > SMOKE_MAX_PATH || !method ||
	    !json_is_integer(want)) {
		json_object_set_new(ev, "error", json_string("malformed check (expected a normalized "
							     "smoke entry with path, method, status)"));
		return 0;
	}
	if (timeout < SMOKE_MIN_TIMEOUT_MS)
		timeout = SMOKE_MIN_TIMEOUT_MS;
	if (timeout > SMOKE_MAX_TIMEOUT_MS)
		timeout = SMOKE_MAX_TIMEOUT_MS;

	char url[16 + SMOKE_MAX_ADDR + SMOKE_MAX_PATH];
	snprintf(url, sizeof(url), "http://%s%s", addr, path);
	httpc *c = httpc_new((long)timeout, SMOKE_MAX_BODY);
	if (!c) {
		json_object_set_new(ev, "error", json_string("out of memory"));
		return 0;
	}
	struct buf body;
	buf_init(&body, SMOKE_MAX_BODY);
	struct err e = {0};
	long status = 0;
	/* POST with an empty body, so that the request carries Content-Length: 0. */
	int is_post = !strcmp(method, "POST");
	int rc = httpc_request(c, method, url, is_post ? "" : NULL, 0, NULL, &status, &body, &e);
	httpc_free(c);
	int pass = 0;
	if (rc) {
		json_object_set_new(ev, "error", json_string(e.msg));
	} else {
		json_object_set_new(ev, "status", json_integer(status));
		int matched = 1;
		if (needle) {
			matched = body.len >= strlen(needle) &&
				  memmem(body.data, body.len, needle, strlen(needle)) != NULL;
			json_object_set_new(ev, "matched", json_boolean(matched));
		}
		if (status != json_integer_value(want)) {
			snprintf(msg, sizeof(msg), "%s %s answered %ld, expected %lld", method, path,
				 status, (long long)json_integer_value(want));
			json_object_set_new(ev, "error", json_string(msg));
		} else if (!matched) {
			snprintf(msg, sizeof(msg),
				 "%s %s: the response body (%zu bytes) does not contain \"%.100s\"",
				 method, path, body.len, needle);
			json_object_set_new(ev, "error", json_string(msg));
		} else {
			pass = 1;
		}
	}
	buf_release(&body);
	return pass;
}

json_t *smoke_run(const json_t *checks, const char *addr, int *ok)
{
	*ok = 0;
	json_t *all = json_array();
	if (!all)
		return NULL;
	int all_ok = 1;
	size_t i;
	json_t *ck;
	json_array_foreach(checks, i, ck) {
		const char *path = json_string_value(json_object_get(ck, "path"));
		const char *method = json_string_value(json_object_get(ck, "method"));
		const char *needle = json_string_value(json_object_get(ck, "body_contains"));
		json_t *ev = json_pack("{s:s?, s:s?, s:O?, s:n, s:s?, s:n, s:b, s:n}", "path", path,
				       "method", method, "want_status", json_object_get(ck, "status"),
				       "status", "body_contains", needle, "matched", "ok", 0,
				       "error");
		if (!ev) {
			json_decref(all);
			return NULL;
		}
		int pass;
		if (!addr || strlen(addr) > SMOKE_MAX_ADDR) {
			json_object_set_new(ev, "error", json_string("bad instance address"));
			pass = 0;
		} else {
			pass = run_one(ck, addr, ev);
		}
		json_object_set_new(ev, "ok", json_boolean(pass));
		all_ok &= pass;
		json_array_append_new(all, ev);
	}
	*ok = all_ok;
	return all;
}
