/*
 * routers: one router over the router of each region (see routers.h).
 */
#include "server/routers.h"
#include "util/secret.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime_docker.h"

#define ROUTERS_MAX 64 /* docker regions with a router at once */
#define ROUTERS_LOG_MS 10000

struct hosted {
	char key[2 * RUNTIME_NAME_MAX + 2]; /* "env/region" */
	runtime *rt;                         /* the runtime it was made for */
	router *r;
	uint64_t logged;                     /* last time its failure was logged */
	int ok;                              /* its last ensure succeeded */
};

struct routers {
	struct router base; /* first */
	runtimes *rs;
	router *local;
	fetcher *fetch;
	struct hosted h[ROUTERS_MAX];
	size_t n;
	uint64_t changes;
	json_t *merged; /* the last union of the snapshots */
	char token[SECRET_MAX + 1]; /* the proxies' admin token, given to each hosted router */
};

static void rs_use_fetcher(router *base, fetcher *f)
{
	struct routers *r = (struct routers *)base;
	r->fetch = f;
	router_use_fetcher(r->local, f);
	for (size_t i = 0; i < r->n; i++)
		router_use_fetcher(r->h[i].r, f);
}

static void rs_free(router *base)
{
	struct routers *r = (struct routers *)base;
	for (size_t i = 0; i < r->n; i++) {
		router_use_fetcher(r->h[i].r, NULL);
		router_free(r->h[i].r);
	}
	router_free(r->local);
	json_decref(r->merged);
	free(r);
}

static uint64_t rs_generation(const router *base)
{
	const struct routers *r = (const struct routers *)base;
	uint64_t g = router_generation(r->local) + (r->changes << 48);
	for (size_t i = 0; i < r->n; i++)
		g += router_generation(r->h[i].r);
	return g;
}

/* The router of route "service.env.region" (names without dots: util/name.h). */
static router *pick(struct routers *r, const char *name)
{
	const char *a = strchr(name, '.'), *b = a ? strchr(a + 1, '.') : NULL;
	if (!b || b - a - 1 >= RUNTIME_NAME_MAX || strlen(b + 1) >= RUNTIME_NAME_MAX)
		return r->local;
	char env[RUNTIME_NAME_MAX], region[RUNTIME_NAME_MAX], key[sizeof(r->h[0].key)];
	snprintf(env, sizeof(env), "%.*s", (int)(b - a - 1), a + 1);
	snprintf(region, sizeof(region), "%s", b + 1);
	runtime *rt = runtimes_get(r->rs, env, region);
	if (!rt || strcmp(runtime_kind(rt), "docker"))
		return r->local;
	snprintf(key, sizeof(key), "%s/%s", env, region);
	size_t i = 0;
	while (i < r->n && strcmp(r->h[i].key, key))
		i++;
	if (i < r->n && r->h[i].rt == rt)
		return r->h[i].r;
	/* a new docker region, or its settings changed (another runtime object serves it) */
	struct router_hosted_tls tls = {0};
	int with_tls = runtime_docker_proxy_tls(rt, &tls.cert, &tls.key, &tls.ca);
	router *h = router_hosted_new(rt, env, region, runtime_docker_proxy_image(rt),
				      (unsigned)runtime_docker_hosts(rt), r->token, with_tls ? &tls : NULL);
	if (!h || (i == r->n && r->n == ROUTERS_MAX)) {
		router_free(h);
		return r->local; /* its puts go to the local proxy's loopback: better than none */
	}
	if (i < r->n) {
		router_use_fetcher(r->h[i].r, NULL);
		router_free(r->h[i].r);
	} else {
		r->n++;
	}
	if (r->fetch)
		router_use_fetcher(h, r->fetch);
	snprintf(r->h[i].key, sizeof(r->h[i].key), "%s", key);
	r->h[i].rt = rt;
	r->h[i].r = h;
	r->h[i].logged = 0;
	r->changes++;
	return h;
}

static int rs_ensure(router *base, struct err *e)
{
	struct routers *r = (struct routers *)base;
	if (router_ensure(r->local, e))
		return -1;
	uint64_t now = loop_clock_ms();
	for (size_t i = 0; i < r->n; i++) {
		struct err he = {""};
		r->h[i].ok = router_ensure(r->h[i].r, &he) == 0;
		if (r->h[i].ok) {
			r->h[i].logged = 0;
		} else if (!r->h[i].logged || now - r->h[i].logged > ROUTERS_LOG_MS) {
			log_warn("router: %s", he.msg);
			r->h[i].logged = now;
		}
	}
	return 0;
}

static int rs_route_endpoint(router *base, const char *name, int port, char *buf, size_t len)
{
	return router_route_endpoint(pick((struct routers *)base, name), name, port, buf, len);
}

static int rs_put_route(router *base, const struct router_route *route, struct err *e)
{
	return router_put_route(pick((struct routers *)base, route->name), route, e);
}

static int rs_delete_route(router *base, const char *name, struct err *e)
{
	return router_delete_route(pick((struct routers *)base, name), name, e);
}

static int rs_route_state(router *base, const char *name, struct router_backend **out, size_t *n,
			  struct err *e)
{
	return router_route_state(pick((struct routers *)base, name), name, out, n, e);
}

static const json_t *rs_latest_metrics(router *base, uint64_t *at)
{
	struct routers *r = (struct routers *)base;
	uint64_t t = 0;
	const json_t *local = router_latest_metrics(r->local, &t);
	if (!r->n)
		return *at = t, local;
	uint64_t oldest = local ? t : 0;
	json_t *routes = json_object(), *merged = json_pack("{s:o}", "routes", routes);
	if (!merged)
		return *at = 0, NULL;
	json_object_update(routes, json_object_get(local, "routes"));
	for (size_t i = 0; i < r->n; i++) {
		uint64_t ht = 0;
		const json_t *m = router_latest_metrics(r->h[i].r, &ht);
		if (m)
			json_object_update(routes, json_object_get(m, "routes"));
		/* A region whose proxies are down does not hold back the others: its own routes'
		 * counters simply stay where they were. One that answers but has no snapshot yet
		 * does (0: nothing is known to hold everything). */
		if (r->h[i].ok && ht < oldest)
			oldest = ht;
	}
	json_decref(r->merged);
	r->merged = merged;
	*at = oldest;
	return merged;
}

static void rs_stop(router *base)
{
	struct routers *r = (struct routers *)base;
	for (size_t i = 0; i < r->n; i++)
		router_stop(r->h[i].r);
	router_stop(r->local);
}

static const struct router_ops routers_ops = {
	.kind = "regions",
	.free = rs_free,
	.use_fetcher = rs_use_fetcher,
	.generation = rs_generation,
	.ensure = rs_ensure,
	.route_endpoint = rs_route_endpoint,
	.put_route = rs_put_route,
	.delete_route = rs_delete_route,
	.route_state = rs_route_state,
	.latest_metrics = rs_latest_metrics,
	.stop = rs_stop,
};

router *routers_new(runtimes *rs, router *local, const char *token)
{
	struct routers *r = local && (!token || strlen(token) <= SECRET_MAX) ? calloc(1, sizeof(*r)) : NULL;
	if (!r) {
		router_free(local);
		return NULL;
	}
	r->base.ops = &routers_ops;
	r->rs = rs;
	r->local = local;
	snprintf(r->token, sizeof(r->token), "%s", token ? token : "");
	return &r->base;
}
