/*
 * libFuzzer target for the proxy's route configuration (src/proxy/route.c), as it arrives:
 * the JSON body of PUT /v1/routes/NAME on the admin API, or the --state file
 * ({"routes": [route, ...]}, also the shape of the config file's routes). The text is loaded
 * with the proxy's flags (JSON_REJECT_DUPLICATES); an object with a "routes" key is read as a
 * state file, anything else as one route. The same bytes are also read as a Cookie header
 * (route_cookie_find), the other piece of outside input route.c parses.
 *
 * Checks, besides "no crash, leak or undefined behaviour":
 *  - a refusal leaves a message; route_cfg_release is safe after it;
 *  - an accepted route has 1..16 versions of 1..256 backends, a positive total weight that
 *    is the sum of the weights;
 *  - route_cfg_json gives a route that parses again to the same JSON;
 *  - weighted and sticky picks land on a version with a positive weight, and each version is
 *    found by its name;
 *  - a cookie value found lies inside the header.
 *
 * Names in "host:port" would make getaddrinfo ask DNS: the target is linked with
 * --wrap=getaddrinfo and resolves numeric hosts only (a name is refused like an unknown one).
 */
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		       struct addrinfo **res);
int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		       struct addrinfo **res);

#include "fuzz_check.h"

int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		       struct addrinfo **res)
{
	struct addrinfo h = hints ? *hints : (struct addrinfo){0};
	h.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
	return __real_getaddrinfo(node, service, &h, res);
}

static void check_cookie(const uint8_t *data, size_t size, const char *name)
{
	const char *v = NULL;
	size_t n = 0;
	/* an exact-size copy: the sanitizer sees any read past the header */
	char *hdr = malloc(size ? size : 1);
	CHECK(hdr);
	memcpy(hdr, data, size);
	if (route_cookie_find(hdr, size, name, &v, &n))
		CHECK(v >= hdr && v + n <= hdr + size);
	free(hdr);
}

static void check_route(const struct route_cfg *c, const uint8_t *data, size_t size)
{
	CHECK(c->nversions >= 1 && c->nversions <= ROUTE_MAX_VERSIONS);
	uint64_t sum = 0;
	for (size_t i = 0; i < c->nversions; i++) {
		const struct route_version_cfg *v = &c->versions[i];
		CHECK(v->nbackends >= 1 && v->nbackends <= ROUTE_MAX_BACKENDS && v->backends);
		CHECK(v->name[0] && strlen(v->name) < ROUTE_VERSION_MAX);
		CHECK(route_find_version(c, v->name, strlen(v->name)) == (int)i);
		sum += v->weight;
	}
	CHECK(sum == c->total_weight && sum > 0);
	uint64_t xs[] = {0, c->total_weight - 1, c->total_weight / 2, route_hash((const char *)data, size) % sum};
	for (size_t k = 0; k < sizeof(xs) / sizeof(xs[0]); k++) {
		size_t i = route_pick_weighted(c, xs[k]);
		CHECK(i < c->nversions && c->versions[i].weight > 0);
	}
	size_t i = route_pick_sticky(c, (const char *)data, size);
	CHECK(i < c->nversions && c->versions[i].weight > 0);
	if (c->sticky == ROUTE_STICKY_COOKIE)
		check_cookie(data, size, c->sticky_name);

	/* the config's JSON form reads back to itself */
	json_t *j = route_cfg_json(c);
	CHECK(j);
	if (!c->name[0])
		json_object_del(j, "name"); /* a route named by the URL: the body need not name it */
	struct route_cfg again;
	struct err e = {""};
	if (route_cfg_parse(j, "", &again, &e)) {
		char *txt = json_dumps(j, JSON_COMPACT);
		fprintf(stderr, "route_cfg_json gave a route that does not parse: %s\n  %s\n", e.msg, txt);
		abort();
	}
	json_t *j2 = route_cfg_json(&again);
	if (!c->name[0])
		json_object_del(j2, "name");
	CHECK(json_equal(j, j2));
	json_decref(j2);
	json_decref(j);
	route_cfg_release(&again);
}

static void one(const json_t *j, const char *path, const uint8_t *data, size_t size)
{
	struct route_cfg c;
	struct err e = {""};
	if (route_cfg_parse(j, path, &c, &e)) {
		CHECK(e.msg[0]);
		say(e.msg);
	} else {
		check_route(&c, data, size);
	}
	route_cfg_release(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_cookie(data, size, "uid");
	json_error_t je;
	json_t *j = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		say(je.text);
		return 0;
	}
	json_t *routes = json_object_get(j, "routes");
	if (routes) {
		for (size_t i = 0; json_is_array(routes) && i < json_array_size(routes); i++) {
			char path[32];
			snprintf(path, sizeof(path), "routes[%zu]", i);
			one(json_array_get(routes, i), path, data, size);
		}
	} else {
		one(j, "", data, size);
	}
	json_decref(j);
	return 0;
}
