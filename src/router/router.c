/* router: the dispatchers of the traffic-router interface (router.h) and what every driver
 * shares. */
#include "router/router.h"

#include <stdio.h>
#include <string.h>

void router_route_name(char *buf, size_t len, const char *service, const char *env,
		       const char *region)
{
	snprintf(buf, len, "%s.%s.%s", service, env, region);
}

const char *router_kind(const router *r)
{
	return r->ops->kind;
}

void router_free(router *r)
{
	if (r)
		r->ops->free(r);
}

void router_use_fetcher(router *r, fetcher *f)
{
	r->ops->use_fetcher(r, f);
}

int router_ensure(router *r, struct err *e)
{
	return r->ops->ensure(r, e);
}

uint64_t router_generation(const router *r)
{
	return r->ops->generation(r);
}

void router_stop(router *r)
{
	r->ops->stop(r);
}

int router_route_endpoint(router *r, const char *name, int port, char *buf, size_t len)
{
	if (len)
		buf[0] = '\0';
	if (port < 1 || port > 65535)
		return -1;
	return r->ops->route_endpoint(r, name, port, buf, len);
}

int router_put_route(router *r, const struct router_route *route, struct err *e)
{
	return r->ops->put_route(r, route, e);
}

int router_delete_route(router *r, const char *name, struct err *e)
{
	return r->ops->delete_route(r, name, e);
}

int router_route_state(router *r, const char *name, struct router_backend **out, size_t *n,
		       struct err *e)
{
	*out = NULL;
	*n = 0;
	return r->ops->route_state(r, name, out, n, e);
}

int router_backend_busy(const struct router_backend *b, size_t n, const char *addr)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(b[i].addr, addr) && (b[i].phase == ROUTER_BACKEND_ACTIVE || b[i].in_flight > 0))
			return 1;
	return 0;
}

const json_t *router_latest_metrics(router *r, uint64_t *at)
{
	return r->ops->latest_metrics(r, at);
}
