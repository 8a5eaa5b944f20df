/*
 * profile: a consumer of metadata. GET /profiles/{id} calls metadata's GET /items/{id} (at
 * $SLUICE_UPSTREAM_METADATA) and answers {"id", "color", "version"}.
 *   v1  reads only the old "metadata" object: 502 when it is absent (metadata v3)
 *   v2  reads "metadata_v2" and falls back to "metadata": works with metadata v1, v2 and v3
 */
#include <string.h>

#include "svc.h"

#ifndef VERSION
#error "build with -DVERSION=1 or 2"
#endif

static const char *color_from_old(const json_t *item)
{
	return json_string_value(json_object_get(json_object_get(item, "metadata"), "color"));
}

static const char *color_from_new(const json_t *item)
{
	const json_t *arr = json_object_get(item, "metadata_v2");
	for (size_t i = 0; i < json_array_size(arr); i++) {
		const json_t *kv = json_array_get(arr, i);
		const char *k = json_string_value(json_object_get(kv, "key"));
		if (k && !strcmp(k, "color"))
			return json_string_value(json_object_get(kv, "value"));
	}
	return NULL;
}

static void handle(const struct svc_request *req, struct svc_response *res)
{
	if (strncmp(req->path, "/profiles/", 10) || !req->path[10] || strchr(req->path + 10, '/')) {
		svc_error(res, 404, "no such path: %s (try /profiles/{id})", req->path);
		return;
	}
	const char *id = req->path + 10;
	char path[256], err[256];
	static _Thread_local char body[SVC_BODY_MAX];
	int status;
	if (strlen(id) > 64) {
		svc_error(res, 400, "profile id longer than 64 bytes");
		return;
	}
	snprintf(path, sizeof(path), "/items/%s", id);
	if (svc_upstream_get("SLUICE_UPSTREAM_METADATA", path, &status, body, sizeof(body), err,
			     sizeof(err))) {
		svc_error(res, 502, "metadata: %s", err);
		return;
	}
	if (status != 200) {
		svc_error(res, 502, "metadata answered %d", status);
		return;
	}
	json_t *item = json_loads(body, 0, NULL);
	if (!item) {
		svc_error(res, 502, "metadata answered invalid JSON");
		return;
	}
	const char *color = NULL;
	if (VERSION >= 2)
		color = color_from_new(item);
	if (!color)
		color = color_from_old(item); /* v2: the fallback the two-step deploy relies on */
	if (!color) {
		json_decref(item);
		if (VERSION == 1)
			svc_error(res, 502, "metadata response has no \"metadata\" object (profile v1 "
					    "reads only the old field)");
		else
			svc_error(res, 502, "metadata response has neither \"metadata_v2\" nor "
					    "\"metadata\" color");
		return;
	}
	json_t *out = json_pack("{s:s, s:s, s:s}", "id", id, "color", color, "version",
				VERSION == 1 ? "v1" : "v2");
	json_decref(item);
	svc_json(res, 200, out);
}

int main(int argc, char **argv)
{
	static const struct svc_config cfg = {"profile", VERSION, handle};
	return svc_main(argc, argv, &cfg);
}
