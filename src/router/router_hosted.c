/*
 * router_hosted: the "hosted" driver of the router interface (router.h): a region's proxies
 * run by the region's own runtime, one `sluice proxy` per host (a container of the sluice
 * binary on each Docker host), each driven through its admin API by a router_proxy_remote.
 *
 * The runtime does what it does for any instance: it places them (instance i on host
 * (i + hash) mod nhosts: count = nhosts puts one on each), restarts them with backoff, checks
 * their health (the admin API's /healthz) and adopts them after a restart of the server. This
 * driver only fans the router calls out over the proxies that answer and folds their answers
 * into one (see router_hosted_new in router.h).
 */
#include "router/router.h"
#include "util/secret.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOSTED_MAX 64      /* proxies of one region (a region has at most 16 Docker hosts) */
#define HOSTED_HEALTH_MS 1000
#define HOSTED_DRAIN_MS 10000

struct member {
	char endpoint[RUNTIME_ENDPOINT_MAX]; /* its admin API, where the runtime says it answers */
	router *proxy;                       /* router_proxy_remote(endpoint) */
	int ok;                              /* it answered at the last ensure */
};

struct hosted_router {
	struct router base; /* first: a router * is a hosted_router * */
	runtime *rt;
	char env[RUNTIME_NAME_MAX], region[RUNTIME_NAME_MAX];
	char *image;
	unsigned count;
	char token[SECRET_MAX + 1];                 /* the proxies' admin token, or "" */
	char env_token[SECRET_MAX + 32];            /* "SLUICE_PROXY_TOKEN=..." */
	char *tls_cert, *tls_key, *tls_ca;          /* the admin API's TLS (paths), or NULLs */
	char *env_cert, *env_key;                   /* "SLUICE_PROXY_TLS_CERT=PEM", read once */
	fetcher *fetch;
	struct member m[HOSTED_MAX];
	size_t n;
	uint64_t changes;  /* the set of proxies changed: part of the generation */
	char host[RUNTIME_ENDPOINT_MAX]; /* host part of a proxy's endpoint: where routes listen */
	char why[512];     /* why the runtime runs no proxy (its refusal, or an instance's reason) */
	json_t *sum;       /* the latest summed snapshot (several proxies) */
	int none_runs;     /* the runtime's last list had no proxy that could be running */
};

static void member_free(struct member *m)
{
	if (m->proxy) {
		router_use_fetcher(m->proxy, NULL);
		router_free(m->proxy);
	}
	memset(m, 0, sizeof(*m));
}

static void hosted_use_fetcher(router *base, fetcher *f)
{
	struct hosted_router *r = (struct hosted_router *)base;
	r->fetch = f;
	for (size_t i = 0; i < r->n; i++)
		router_use_fetcher(r->m[i].proxy, f);
}

static void hosted_free(router *base)
{
	struct hosted_router *r = (struct hosted_router *)base;
	for (size_t i = 0; i < r->n; i++)
		member_free(&r->m[i]);
	json_decref(r->sum);
	free(r->image);
	free(r->tls_cert);
	free(r->tls_key);
	free(r->tls_ca);
	if (r->env_key)
		memset(r->env_key, 0, strlen(r->env_key));
	free(r->env_cert);
	free(r->env_key);
	free(r);
}

static uint64_t hosted_generation(const router *base)
{
	const struct hosted_router *r = (const struct hosted_router *)base;
	uint64_t g = r->changes << 32;
	for (size_t i = 0; i < r->n; i++)
		g += router_generation(r->m[i].proxy);
	return g;
}

/* The proxies the runtime reports as running (healthy, or unhealthy: its health check may
 * just have been slow; the proxy driver checks them itself): one member each. */
static void sync_members(struct hosted_router *r)
{
	struct instance_info *in = NULL;
	size_t n = 0;
	if (runtime_list(r->rt, ROUTER_HOSTED_SERVICE, r->env, r->region, ROUTER_HOSTED_VERSION, &in, &n))
		return; /* out of memory: keep what we know */
	char keep[HOSTED_MAX] = {0};
	r->none_runs = 1;
	for (size_t k = 0; k < n; k++) {
		/* only BACKOFF (exited, or its engine refuses to start it) and STOPPED run nothing */
		if (in[k].state != INSTANCE_BACKOFF && in[k].state != INSTANCE_STOPPED)
			r->none_runs = 0;
		if ((in[k].state != INSTANCE_HEALTHY && in[k].state != INSTANCE_UNHEALTHY) || !in[k].endpoint[0]) {
			if (in[k].reason[0])
				snprintf(r->why, sizeof(r->why), "%.200s: %.127s", in[k].id, in[k].reason);
			continue;
		}
		size_t i = 0;
		while (i < r->n && strcmp(r->m[i].endpoint, in[k].endpoint))
			i++;
		if (i == r->n) {
			if (r->n == HOSTED_MAX)
				continue;
			router *p = router_proxy_remote(in[k].endpoint, r->token, r->tls_ca);
			if (!p)
				continue;
			if (r->fetch)
				router_use_fetcher(p, r->fetch);
			snprintf(r->m[i].endpoint, sizeof(r->m[i].endpoint), "%s", in[k].endpoint);
			r->m[i].proxy = p;
			r->n++;
			r->changes++;
			log_info("router: region %s/%s: a proxy answers at %s (%s)", r->env, r->region,
				 in[k].endpoint, in[k].detail);
		}
		keep[i] = 1;
		const char *colon = strrchr(in[k].endpoint, ':');
		snprintf(r->host, sizeof(r->host), "%.*s", (int)(colon - in[k].endpoint), in[k].endpoint);
	}
	free(in);
	for (size_t i = r->n; i-- > 0;) {
		if (keep[i])
			continue;
		log_info("router: region %s/%s: the proxy at %s is gone", r->env, r->region, r->m[i].endpoint);
		member_free(&r->m[i]);
		memmove(&r->m[i], &r->m[i + 1], (r->n - i - 1) * sizeof(r->m[0]));
		memset(&r->m[r->n - 1], 0, sizeof(r->m[0]));
		r->n--;
		r->changes++;
	}
}

/* "NAME=" followed by the PEM text of path (at most 64 KiB), or NULL with e. */
static char *pem_var(const char *name, const char *path, struct err *e)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		err_set(e, "proxy_tls: cannot read %s", path);
		return NULL;
	}
	size_t cap = strlen(name) + 1 + (64u << 10) + 1;
	char *v = malloc(cap);
	size_t n = v ? (size_t)snprintf(v, cap, "%s=", name) : 0;
	size_t got = v ? fread(v + n, 1, cap - n - 1, f) : 0;
	int too_big = v && n + got == cap - 1 && fgetc(f) != EOF;
	fclose(f);
	if (!v || too_big || !got || memchr(v + n, 0, got)) {
		free(v);
		err_set(e, "proxy_tls: %s is %s", path, !v ? "too much for memory" : too_big ? "larger than 64 KiB" : "not PEM text");
		return NULL;
	}
	v[n + got] = 0;
	return v;
}

static int hosted_ensure(router *base, struct err *e)
{
	struct hosted_router *r = (struct hosted_router *)base;
	/* the admin API listens on the host's address, where the server reaches it: loopback
	 * for a unix:// host; a tcp:// host's address needs TLS (proxy_tls) and the token, or
	 * the proxy refuses to start (and says so). --state in the container's own file system:
	 * its keeper starts a crashed serving process again at once on the same listeners, with
	 * its routes, without the engine or the server (docs/proxy.md, "The keeper") */
	static const char *const args[] = {"proxy", "--admin", "{host}:{port}", "--state",
					   "/sluice-proxy-routes.json", NULL};
	if (r->tls_cert && !r->env_cert) {
		if (!(r->env_cert = pem_var("SLUICE_PROXY_TLS_CERT", r->tls_cert, e)))
			return -1;
		if (!(r->env_key = pem_var("SLUICE_PROXY_TLS_KEY", r->tls_key, e))) {
			free(r->env_cert);
			r->env_cert = NULL;
			return -1;
		}
	}
	const char *env[4] = {NULL};
	size_t ne = 0;
	if (r->env_token[0])
		env[ne++] = r->env_token;
	if (r->env_cert) {
		env[ne++] = r->env_cert;
		env[ne++] = r->env_key;
	}
	struct instance_spec spec = {
		.service = ROUTER_HOSTED_SERVICE, .env = r->env, .region = r->region,
		.version = ROUTER_HOSTED_VERSION, .artifact = r->image, .command = "{artifact}",
		.args = args, .env_vars = env, .health_path = "/healthz",
		.health_ca = r->tls_ca,
		.health_interval_ms = HOSTED_HEALTH_MS, .health_timeout_ms = HOSTED_HEALTH_MS,
		.drain_timeout_ms = HOSTED_DRAIN_MS,
	};
	struct err re = {""};
	if (runtime_ensure(r->rt, &spec, r->count, &re))
		snprintf(r->why, sizeof(r->why), "%.300s", re.msg);
	sync_members(r);
	size_t up = 0;
	for (size_t i = 0; i < r->n; i++) {
		struct err pe = {""};
		r->m[i].ok = router_ensure(r->m[i].proxy, &pe) == 0;
		up += r->m[i].ok;
	}
	if (up)
		return 0;
	return err_set(e, "region %s/%s: no proxy of the region answers yet%s%s", r->env, r->region,
		       r->why[0] ? ": " : "", r->why);
}

/* The calls that need the proxies: at least one, found by an ensure when none is known.
 * 1 when no proxy of the region runs at all (every one exited, or its host is down and the
 * engine cannot start it): then nothing can route a request of the region to an instance, a
 * route is put as soon as a proxy answers again (a new proxy gets every route on the next
 * pass), and every backend is as drained as it can be. */
static int need_members(struct hosted_router *r, struct err *e)
{
	if (r->n)
		return 0;
	if (hosted_ensure(&r->base, e) == 0)
		return 0;
	return r->none_runs && !r->n ? 1 : -1;
}

static int hosted_route_endpoint(router *base, const char *name, int port, char *buf, size_t len)
{
	struct hosted_router *r = (struct hosted_router *)base;
	(void)name;
	int n = snprintf(buf, len, "%s:%d", r->host, port);
	return n > 0 && (size_t)n < len ? 0 : -1;
}

static int hosted_put_route(router *base, const struct router_route *route, struct err *e)
{
	struct hosted_router *r = (struct hosted_router *)base;
	int need = need_members(r, e);
	if (need)
		return need > 0 ? 0 : -1;
	int rc = 0;
	for (size_t i = 0; i < r->n; i++) {
		struct err pe = {""};
		if (router_put_route(r->m[i].proxy, route, &pe) && !rc)
			rc = err_set(e, "%s (proxy at %s)", pe.msg, r->m[i].endpoint);
	}
	return rc;
}

static int hosted_delete_route(router *base, const char *name, struct err *e)
{
	struct hosted_router *r = (struct hosted_router *)base;
	int need = need_members(r, e);
	if (need)
		return need > 0 ? 0 : -1;
	int rc = 0;
	for (size_t i = 0; i < r->n; i++) {
		struct err pe = {""};
		if (router_delete_route(r->m[i].proxy, name, &pe) && !rc)
			rc = err_set(e, "%s (proxy at %s)", pe.msg, r->m[i].endpoint);
	}
	return rc;
}

/* A backend's state over several proxies: the busiest phase (the enum is ordered from active
 * to drained) and the sum of the requests in flight. */
static int hosted_route_state(router *base, const char *name, struct router_backend **out, size_t *n,
			      struct err *e)
{
	struct hosted_router *r = (struct hosted_router *)base;
	int need = need_members(r, e);
	if (need)
		return need > 0 ? 0 : -1; /* no proxy runs: no backend is busy */
	struct router_backend *all = NULL;
	size_t nall = 0;
	for (size_t i = 0; i < r->n; i++) {
		struct router_backend *b = NULL;
		size_t nb = 0;
		if (router_route_state(r->m[i].proxy, name, &b, &nb, e)) {
			free(all);
			return -1;
		}
		struct router_backend *grown = nb ? realloc(all, (nall + nb) * sizeof(*all)) : all;
		if (nb && !grown) {
			free(b);
			free(all);
			return err_set(e, "out of memory");
		}
		all = grown;
		for (size_t k = 0; k < nb; k++) {
			size_t j = 0;
			while (j < nall && (strcmp(all[j].addr, b[k].addr) || strcmp(all[j].version, b[k].version)))
				j++;
			if (j == nall) {
				all[nall++] = b[k];
				continue;
			}
			if (b[k].phase < all[j].phase)
				all[j].phase = b[k].phase;
			all[j].in_flight += b[k].in_flight;
		}
		free(b);
	}
	*out = all;
	*n = nall;
	return 0;
}

/* dst += src, for the proxy's snapshot: counters add up (per route, version, class and
 * latency bucket); the bucket bounds and the clock are not counters. */
static void sum_into(json_t *dst, const json_t *src)
{
	const char *key;
	json_t *sv;
	json_object_foreach((json_t *)src, key, sv) {
		json_t *dv = json_object_get(dst, key);
		if (!dv) {
			json_object_set_new(dst, key, json_deep_copy(sv));
		} else if (json_is_object(dv) && json_is_object(sv)) {
			sum_into(dv, sv);
		} else if (json_is_integer(dv) && json_is_integer(sv) && strcmp(key, "time_ms")) {
			json_integer_set(dv, json_integer_value(dv) + json_integer_value(sv));
		} else if (!strcmp(key, "bounds") && json_is_array(dv) && json_is_array(sv)) {
			/* a proxy lists the buckets up to its last non-empty one: the bounds are
			 * prefixes of the same list, so the longer one holds the other */
			if (json_array_size(sv) > json_array_size(dv))
				json_object_set_new(dst, key, json_deep_copy(sv));
		} else if (!strcmp(key, "counts") && json_is_array(dv) && json_is_array(sv)) {
			while (json_array_size(dv) < json_array_size(sv))
				json_array_append_new(dv, json_integer(0));
			for (size_t i = 0; i < json_array_size(sv); i++) {
				json_t *a = json_array_get(dv, i), *b = json_array_get(sv, i);
				if (json_is_integer(a) && json_is_integer(b))
					json_integer_set(a, json_integer_value(a) + json_integer_value(b));
			}
		}
	}
}

static const json_t *hosted_latest_metrics(router *base, uint64_t *at)
{
	struct hosted_router *r = (struct hosted_router *)base;
	*at = 0;
	if (!r->n)
		return NULL;
	/* the proxies that answer: one that does not (its host is down) would hold the
	 * snapshot's time back forever; what it counted is lost with it anyway */
	const json_t *snap[HOSTED_MAX];
	size_t ns = 0;
	uint64_t oldest = UINT64_MAX;
	for (size_t i = 0; i < r->n; i++) {
		uint64_t t = 0;
		const json_t *m = router_latest_metrics(r->m[i].proxy, &t);
		if (!r->m[i].ok)
			continue;
		if (!m)
			return NULL; /* nothing holds the whole region yet */
		snap[ns++] = m;
		if (t < oldest)
			oldest = t;
	}
	if (!ns)
		return NULL;
	*at = oldest;
	if (ns == 1)
		return snap[0];
	json_t *sum = json_deep_copy(snap[0]);
	for (size_t i = 1; sum && i < ns; i++)
		sum_into(sum, snap[i]);
	json_decref(r->sum);
	r->sum = sum;
	if (!sum)
		*at = 0;
	return sum;
}

static void hosted_stop(router *base)
{
	struct hosted_router *r = (struct hosted_router *)base;
	for (size_t i = 0; i < r->n; i++)
		router_stop(r->m[i].proxy);
	runtime_stop(r->rt, ROUTER_HOSTED_SERVICE, r->env, r->region, NULL);
}

static const struct router_ops hosted_ops = {
	.kind = "hosted",
	.free = hosted_free,
	.use_fetcher = hosted_use_fetcher,
	.generation = hosted_generation,
	.ensure = hosted_ensure,
	.route_endpoint = hosted_route_endpoint,
	.put_route = hosted_put_route,
	.delete_route = hosted_delete_route,
	.route_state = hosted_route_state,
	.latest_metrics = hosted_latest_metrics,
	.stop = hosted_stop,
};

router *router_hosted_new(runtime *rt, const char *env, const char *region, const char *image,
			  unsigned count, const char *token, const struct router_hosted_tls *tls)
{
	if (token && strlen(token) > SECRET_MAX)
		return NULL;
	if (!rt || !env || !region || !image || strlen(env) >= RUNTIME_NAME_MAX ||
	    strlen(region) >= RUNTIME_NAME_MAX || count < 1 || count > HOSTED_MAX)
		return NULL;
	struct hosted_router *r = calloc(1, sizeof(*r));
	if (!r || !(r->image = strdup(image))) {
		free(r);
		return NULL;
	}
	r->base.ops = &hosted_ops;
	r->rt = rt;
	r->count = count;
	snprintf(r->env, sizeof(r->env), "%s", env);
	snprintf(r->region, sizeof(r->region), "%s", region);
	snprintf(r->host, sizeof(r->host), "127.0.0.1");
	if (token && *token) {
		snprintf(r->token, sizeof(r->token), "%s", token);
		snprintf(r->env_token, sizeof(r->env_token), "SLUICE_PROXY_TOKEN=%s", token);
	}
	if (tls && tls->cert && tls->key && tls->ca &&
	    (!(r->tls_cert = strdup(tls->cert)) || !(r->tls_key = strdup(tls->key)) ||
	     !(r->tls_ca = strdup(tls->ca)))) {
		hosted_free(&r->base);
		return NULL;
	}
	return &r->base;
}
