/*
 * web: the front of the example system. GET / (optionally ?user=ID, default 1) calls profile's
 * GET /profiles/{id} at $SLUICE_UPSTREAM_PROFILE and answers a small JSON page.
 */
#include <string.h>

#include "svc.h"

#ifndef VERSION
#error "build with -DVERSION=1"
#endif

static void handle(const struct svc_request *req, struct svc_response *res)
{
	if (strcmp(req->path, "/")) {
		svc_error(res, 404, "no such path: %s (try /)", req->path);
		return;
	}
	char user[65] = "1";
	if (!strncmp(req->query, "user=", 5)) {
		size_t n = strcspn(req->query + 5, "&");
		if (n == 0 || n >= sizeof(user)) {
			svc_error(res, 400, "user must be 1..64 bytes");
			return;
		}
		memcpy(user, req->query + 5, n);
		user[n] = '\0';
	}
	char path[128], err[256];
	static _Thread_local char body[SVC_BODY_MAX];
	int status;
	snprintf(path, sizeof(path), "/profiles/%s", user);
	if (svc_upstream_get("SLUICE_UPSTREAM_PROFILE", path, &status, body, sizeof(body), err,
			     sizeof(err))) {
		svc_error(res, 502, "profile: %s", err);
		return;
	}
	json_t *profile = json_loads(body, 0, NULL);
	if (status != 200 || !profile) {
		json_decref(profile);
		svc_error(res, 502, "profile answered %d", status);
		return;
	}
	svc_json(res, 200,
		 json_pack("{s:s, s:s, s:o, s:s}", "page", "home", "title", "Welcome back",
			   "profile", profile, "version", "v1"));
}

int main(int argc, char **argv)
{
	static const struct svc_config cfg = {"web", VERSION, handle};
	return svc_main(argc, argv, &cfg);
}
