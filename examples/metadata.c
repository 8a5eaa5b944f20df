/*
 * metadata: the provider of the two-step (expand/contract) example. One source, three releases:
 *   v1  {"id": ID, "metadata": {"color": "red", "size": "L"}}            the old shape
 *   v2  both "metadata" (object) and "metadata_v2" ([{"key", "value"}])   expand: old and new
 *   v3  only "metadata_v2"                                                contract: old removed
 * Deploying v3 while a consumer still reads only "metadata" (profile v1) breaks it: that is the
 * mistake sluice's compatibility gate must catch, and the demo shows.
 */
#include <string.h>

#include "svc.h"

#ifndef VERSION
#error "build with -DVERSION=1, 2 or 3"
#endif

static const char *const keys[] = {"color", "size"};
static const char *const values[] = {"red", "L"};

/* Ids are short tokens: anything else is a client error, not a lookup. */
static int id_ok(const char *id)
{
	size_t n = strlen(id);
	if (n < 1 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

static void handle(const struct svc_request *req, struct svc_response *res)
{
	if (strncmp(req->path, "/items/", 7)) {
		svc_error(res, 404, "no such path: %s (try /items/{id})", req->path);
		return;
	}
	const char *id = req->path + 7;
	if (!id_ok(id)) {
		svc_error(res, 400, "item id must be 1..64 letters, digits, '-' or '_'");
		return;
	}
	json_t *item = json_pack("{s:s}", "id", id);
	if (VERSION <= 2) {
		json_t *m = json_object();
		for (size_t i = 0; i < 2; i++)
			json_object_set_new(m, keys[i], json_string(values[i]));
		json_object_set_new(item, "metadata", m);
	}
	if (VERSION >= 2) {
		json_t *a = json_array();
		for (size_t i = 0; i < 2; i++)
			json_array_append_new(a, json_pack("{s:s, s:s}", "key", keys[i], "value", values[i]));
		json_object_set_new(item, "metadata_v2", a);
	}
	svc_json(res, 200, item);
}

int main(int argc, char **argv)
{
	static const struct svc_config cfg = {"metadata", VERSION, handle};
	return svc_main(argc, argv, &cfg);
}
