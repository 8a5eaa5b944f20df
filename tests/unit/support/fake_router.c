#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_router.h"

struct fake {
	struct router base;
	json_t *routes;   /* as put */
	json_t *left;     /* "NAME" -> {"ADDR": "VERSION"}: backends that left a route */
	json_t *metrics;
	uint64_t at, gen;
	unsigned puts, deletes;
	int hold, fail;
};

static void f_free(router *r)
{
	struct fake *f = (struct fake *)r;
	json_decref(f->routes);
	json_decref(f->left);
	json_decref(f->metrics);
	free(f);
}

static void f_use_fetcher(router *r, fetcher *fe)
{
}

static uint64_t f_generation(const router *r)
{
	return ((const struct fake *)r)->gen;
}

static int f_ensure(router *r, struct err *e)
{
	return ((struct fake *)r)->fail ? err_set(e, "fake router: down") : 0;
}

static int f_endpoint(router *r, const char *name, int port, char *buf, size_t len)
{
	if (port < 1 || port > 65535)
		return -1;
	int n = snprintf(buf, len, "127.0.0.1:%d", port);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Every backend of the old route that the new one no longer has has left it. */
static void note_left(struct fake *f, const char *name, const json_t *old, const json_t *now)
{
	json_t *left = json_object_get(f->left, name);
	if (!left) {
		left = json_object();
		json_object_set_new(f->left, name, left);
	}
	const char *ver;
	json_t *v;
	json_object_foreach(json_object_get(old, "versions"), ver, v) {
		size_t i;
		json_t *b;
		json_array_foreach(json_object_get(v, "backends"), i, b) {
			int kept = 0;
			const char *nv;
			json_t *n;
			json_object_foreach(json_object_get(now, "versions"), nv, n) {
				size_t k;
				json_t *nb;
				json_array_foreach(json_object_get(n, "backends"), k, nb)
					kept |= json_equal(nb, b);
			}
			if (!kept)
				json_object_set_new(left, json_string_value(b), json_string(ver));
		}
	}
}

static int f_put(router *r, const struct router_route *rt, struct err *e)
{
	struct fake *f = (struct fake *)r;
	if (f->fail)
		return err_set(e, "fake router: down");
	json_t *versions = json_object();
	for (size_t i = 0; i < rt->nversions; i++) {
		json_t *b = json_array();
		for (size_t k = 0; k < rt->versions[i].nbackends; k++)
			json_array_append_new(b, json_string(rt->versions[i].backends[k]));
		json_object_set_new(versions, rt->versions[i].name,
				    json_pack("{s:I, s:o}", "weight", (json_int_t)rt->versions[i].weight,
					      "backends", b));
	}
	json_t *now = json_pack("{s:i, s:o}", "port", rt->port, "versions", versions);
	json_t *old = json_object_get(f->routes, rt->name);
	if (old)
		note_left(f, rt->name, old, now);
	json_object_set_new(f->routes, rt->name, now);
	f->puts++;
	return 0;
}

static int f_delete(router *r, const char *name, struct err *e)
{
	struct fake *f = (struct fake *)r;
	if (f->fail)
		return err_set(e, "fake router: down");
	json_t *old = json_object_get(f->routes, name);
	if (old) {
		json_t *empty = json_object();
		note_left(f, name, old, empty);
		json_decref(empty);
		json_object_del(f->routes, name);
	}
	f->deletes++;
	return 0;
}

static int f_state(router *r, const char *name, struct router_backend **out, size_t *n,
		   struct err *e)
{
	struct fake *f = (struct fake *)r;
	json_t *rt = json_object_get(f->routes, name), *left = json_object_get(f->left, name);
	if (!rt && !left)
		return err_set(e, "fake router: no route '%s'", name);
	size_t cap = 0, cnt = 0;
	const char *ver, *addr;
	json_t *v, *b;
	json_object_foreach(json_object_get(rt, "versions"), ver, v)
		cap += json_array_size(json_object_get(v, "backends"));
	cap += json_object_size(left);
	struct router_backend *all = cap ? calloc(cap, sizeof(*all)) : NULL;
	json_object_foreach(json_object_get(rt, "versions"), ver, v) {
		size_t i;
		json_array_foreach(json_object_get(v, "backends"), i, b) {
			snprintf(all[cnt].version, sizeof(all[cnt].version), "%s", ver);
			snprintf(all[cnt].addr, sizeof(all[cnt].addr), "%s", json_string_value(b));
			all[cnt++].phase = ROUTER_BACKEND_ACTIVE;
		}
	}
	json_object_foreach(left, addr, b) {
		snprintf(all[cnt].version, sizeof(all[cnt].version), "%s", json_string_value(b));
		snprintf(all[cnt].addr, sizeof(all[cnt].addr), "%s", addr);
		all[cnt].phase = f->hold ? ROUTER_BACKEND_DRAINING : ROUTER_BACKEND_DRAINED;
		all[cnt++].in_flight = f->hold ? 1 : 0;
	}
	*out = all;
	*n = cnt;
	return 0;
}

static const json_t *f_metrics(router *r, uint64_t *at)
{
	struct fake *f = (struct fake *)r;
	*at = f->metrics ? f->at : 0;
	return f->metrics;
}

static void f_stop(router *r)
{
	struct fake *f = (struct fake *)r;
	json_object_clear(f->routes);
	f->gen++;
}

static const struct router_ops fake_ops = {
	.kind = "fake",
	.free = f_free,
	.use_fetcher = f_use_fetcher,
	.generation = f_generation,
	.ensure = f_ensure,
	.route_endpoint = f_endpoint,
	.put_route = f_put,
	.delete_route = f_delete,
	.route_state = f_state,
	.latest_metrics = f_metrics,
	.stop = f_stop,
};

router *fake_router_new(void)
{
	struct fake *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->base.ops = &fake_ops;
	f->routes = json_object();
	f->left = json_object();
	return &f->base;
}

void fake_router_set_metrics(router *r, json_t *snapshot, uint64_t at)
{
	struct fake *f = (struct fake *)r;
	json_decref(f->metrics);
	f->metrics = snapshot;
	f->at = at;
}

const json_t *fake_router_routes(router *r)
{
	return ((struct fake *)r)->routes;
}

unsigned fake_router_puts(router *r)
{
	return ((struct fake *)r)->puts;
}

unsigned fake_router_deletes(router *r)
{
	return ((struct fake *)r)->deletes;
}

void fake_router_hold_drains(router *r, int hold)
{
	((struct fake *)r)->hold = hold;
}

void fake_router_fail(router *r, int fail)
{
	((struct fake *)r)->fail = fail;
}
