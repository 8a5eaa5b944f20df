#include <string.h>

#include "server/catalog.h"

int catalog_environment(store *s, const char *env, json_t **out, struct err *e)
{
	return store_get_manifest(s, "Environment", env, out, e);
}

int catalog_service(store *s, const char *service, json_t **out, struct err *e)
{
	return store_get_manifest(s, "Service", service, out, e);
}

int catalog_listen_port(store *s, const char *env, const char *region, const char *svc,
			struct err *e)
{
	json_t *em = NULL, *sm = NULL;
	int rc = catalog_environment(s, env, &em, e);
	if (rc == 0)
		rc = catalog_service(s, svc, &sm, e);
	if (rc < 0)
		return -1;
	int port = 0;
	if (rc == 0) {
		size_t i;
		json_t *r;
		json_array_foreach(json_object_get(em, "regions"), i, r)
			if (!strcmp(json_string_value(json_object_get(r, "name")), region))
				port = (int)(json_integer_value(json_object_get(sm, "listen_port")) +
					     json_integer_value(json_object_get(r, "port_offset")));
	}
	json_decref(em);
	json_decref(sm);
	return port;
}

int catalog_runtime(store *s, runtimes *rts, const char *env, const char *region, runtime **out,
		    struct err *e)
{
	*out = runtimes_get(rts, env, region);
	if (*out)
		return 0;
	json_t *envm = NULL;
	int rc = catalog_environment(s, env, &envm, e);
	if (rc)
		return rc;
	size_t i;
	json_t *r;
	rc = STORE_NOTFOUND;
	json_array_foreach(json_object_get(envm, "regions"), i, r) {
		const char *name = json_string_value(json_object_get(r, "name"));
		if (name && !strcmp(name, region))
			rc = runtimes_resolve(rts, env, r, out, e) ? -1 : 0;
	}
	json_decref(envm);
	if (rc == STORE_NOTFOUND)
		err_set(e, "region '%s' is not in environment '%s'", region, env);
	return rc;
}
