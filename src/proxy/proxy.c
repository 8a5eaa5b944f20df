#include "proxy/proxy.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/server.h"
#include "proxy/metrics.h"

#define LD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define ST(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

#define MAX_ROUTES 4096 /* 1,000 services in 3 regions, each a listener (bench/footprint) */

/* A backend that left its route: reported as draining, then drained, until the next PUT. */
struct gone {
	struct backend *b;
	char version[ROUTE_VERSION_MAX];
};

struct rentry {
	struct rentry *next;
	char name[ROUTE_NAME_MAX];
	struct route *cur; /* the admin thread's reference */
	uint64_t *seq;     /* per worker: the message that published cur */
	struct gone *gone;
	size_t ngone;
};

struct proxy {
	unsigned nw;
	worker **w;
	struct proxy_limits lim;
	metrics *m;
	struct rentry *routes;
	size_t nroutes;
	httpd *admin;
	int started;
	long long started_ms; /* wall clock at proxy_start: with the pid, names this process */
	char *state; /* --state FILE, or NULL */
};

static void state_save(proxy *p);
static int entry_switched(const proxy *p, const struct rentry *en);

void proxy_limits_default(struct proxy_limits *lim)
{
	lim->max_head = 16384;
	lim->max_headers = 100;
	lim->max_body = 100u << 20;
	lim->max_conns = 10000;
	lim->client_timeout_ms = 30000;
	lim->upstream_timeout_ms = 30000;
}

static int limit_field(const json_t *j, const char *key, const char *path, long long lo, long long hi,
		       long long *out, struct err *e)
{
	json_t *v = json_object_get(j, key);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return err_set(e, "%s.%s: must be an integer from %lld to %lld", path, key, lo, hi);
	*out = json_integer_value(v);
	return 1;
}

int proxy_limits_parse(const json_t *j, const char *path, struct proxy_limits *lim, struct err *e)
{
	static const char *const keys[] = {"max_head", "max_headers", "max_body", "max_conns",
					   "client_timeout_ms", "upstream_timeout_ms", NULL};
	if (!json_is_object(j))
		return err_set(e, "%s: must be an object", path);
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)j, k, v) {
		int ok = 0;
		for (size_t i = 0; keys[i]; i++)
			ok |= !strcmp(k, keys[i]);
		if (!ok)
			return err_set(e, "%s.%s: unknown field", path, k);
	}
	long long x;
	int r;
	if ((r = limit_field(j, "max_head", path, 1024, 1 << 20, &x, e)) < 0)
		return -1;
	if (r)
		lim->max_head = (size_t)x;
	if ((r = limit_field(j, "max_headers", path, 1, HTTP_MAX_HEADERS_HARD, &x, e)) < 0)
		return -1;
	if (r)
		lim->max_headers = (size_t)x;
	if ((r = limit_field(j, "max_body", path, 0, (long long)1 << 50, &x, e)) < 0)
		return -1;
	if (r)
		lim->max_body = (uint64_t)x;
	if ((r = limit_field(j, "max_conns", path, 1, 1000000, &x, e)) < 0)
		return -1;
	if (r)
		lim->max_conns = (unsigned)x;
	if ((r = limit_field(j, "client_timeout_ms", path, 10, 3600000, &x, e)) < 0)
		return -1;
	if (r)
		lim->client_timeout_ms = (unsigned)x;
	if ((r = limit_field(j, "upstream_timeout_ms", path, 10, 3600000, &x, e)) < 0)
		return -1;
	if (r)
		lim->upstream_timeout_ms = (unsigned)x;
	return 0;
}

int proxy_new(proxy **out, unsigned workers, const struct proxy_limits *lim, struct err *e)
{
	proxy *p = calloc(1, sizeof(*p));
	if (!p)
		return err_set(e, "out of memory");
	p->nw = workers ? workers : 1;
	p->lim = *lim;
	p->m = metrics_new(p->nw);
	p->w = calloc(p->nw, sizeof(*p->w));
	if (!p->m || !p->w) {
		proxy_free(p);
		return err_set(e, "out of memory");
	}
	for (unsigned i = 0; i < p->nw; i++) {
		p->w[i] = worker_new(i, p->nw, lim);
		if (!p->w[i]) {
			proxy_free(p);
			return err_set(e, "cannot create worker %u: %s", i, strerror(errno));
		}
	}
	*out = p;
	return 0;
}

int proxy_start(proxy *p, struct err *e)
{
	for (unsigned i = 0; i < p->nw; i++)
		if (worker_start(p->w[i]))
			return err_set(e, "cannot start worker thread %u", i);
	p->started = 1;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	p->started_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	return 0;
}

static struct rentry *entry_find(proxy *p, const char *name, struct rentry ***link)
{
	for (struct rentry **q = &p->routes; *q; q = &(*q)->next)
		if (!strcmp((*q)->name, name)) {
			if (link)
				*link = q;
			return *q;
		}
	return NULL;
}

static int same_addr(const struct route_addr *a, const struct route_addr *b)
{
	return a->salen == b->salen && !memcmp(&a->sa, &b->sa, a->salen);
}

static uint16_t addr_port(const struct route_addr *a)
{
	if (a->sa.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
	return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
}

static void addr_set_port(struct route_addr *a, uint16_t port)
{
	if (a->sa.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&a->sa)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)&a->sa)->sin_port = htons(port);
	/* rewrite "host:0" with the port the kernel chose, so GET shows where to connect */
	char *colon = strrchr(a->text, ':');
	if (colon)
		snprintf(colon + 1, sizeof(a->text) - (size_t)(colon + 1 - a->text), "%u", port);
}

/* One listener per worker on the same address (SO_REUSEPORT spreads connections). */
static int open_listeners(proxy *p, struct route_addr *a, int *fds, struct err *e)
{
	for (unsigned i = 0; i < p->nw; i++)
		fds[i] = -1;
	for (unsigned i = 0; i < p->nw; i++) {
		int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int one = 1;
		if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
		    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
		    bind(fd, (struct sockaddr *)&a->sa, a->salen) || listen(fd, 1024)) {
			int err = errno;
			if (fd >= 0)
				close(fd);
			for (unsigned k = 0; k < i; k++)
				close(fds[k]);
			return err_set(e, "cannot listen on %s: %s", a->text, strerror(err));
		}
		fds[i] = fd;
		if (i == 0 && addr_port(a) == 0) {
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);
			if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
				addr_set_port(a, ss.ss_family == AF_INET6 ?
						     ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) :
						     ntohs(((struct sockaddr_in *)&ss)->sin_port));
		}
	}
	return 0;
}

static struct backend *backend_lookup(struct route *r, size_t upto_version, size_t upto_backend,
				      struct rentry *old, const char *addr)
{
	/* already in the route being built (the same address in two versions) */
	for (size_t i = 0; i <= upto_version && i < r->cfg.nversions; i++)
		for (size_t k = 0; k < r->v[i].nb && (i < upto_version || k < upto_backend); k++)
			if (!strcmp(r->v[i].b[k]->addr.text, addr))
				return r->v[i].b[k];
	if (!old)
		return NULL;
	if (old->cur)
		for (size_t i = 0; i < old->cur->cfg.nversions; i++)
			for (size_t k = 0; k < old->cur->v[i].nb; k++)
				if (!strcmp(old->cur->v[i].b[k]->addr.text, addr))
					return old->cur->v[i].b[k];
	for (size_t i = 0; i < old->ngone; i++)
		if (!strcmp(old->gone[i].b->addr.text, addr))
			return old->gone[i].b;
	return NULL;
}

static int64_t backend_in_flight(const proxy *p, const struct backend *b)
{
	int64_t n = 0;
	for (unsigned i = 0; i < p->nw; i++)
		n += LD(&b->w[i].in_flight);
	return n < 0 ? 0 : n;
}

static int route_has(const struct route *r, const struct backend *b)
{
	for (size_t i = 0; i < r->cfg.nversions; i++)
		for (size_t k = 0; k < r->v[i].nb; k++)
			if (r->v[i].b[k] == b)
				return 1;
	return 0;
}

/* Builds the shared route object from a validated config (which it takes over). */
static struct route *route_build(proxy *p, struct route_cfg *cfg, struct rentry *old, struct err *e)
{
	struct route *r = calloc(1, sizeof(*r));
	if (!r) {
		err_set(e, "out of memory");
		return NULL;
	}
	r->refs = 1;
	r->cfg = *cfg;
	memset(cfg, 0, sizeof(*cfg)); /* the backend arrays now belong to r */
	for (size_t i = 0; i < r->cfg.nversions; i++) {
		struct route_version_cfg *vc = &r->cfg.versions[i];
		struct rversion *v = &r->v[i];
		v->m = metrics_series(p->m, r->cfg.name, vc->name);
		v->b = calloc(vc->nbackends, sizeof(*v->b));
		if (!v->m || !v->b) {
			err_set(e, "versions[%zu]: %s", i, v->m ? "out of memory" : "too many metric series");
			route_unref(r);
			return NULL;
		}
		for (size_t k = 0; k < vc->nbackends; k++) {
			struct backend *b = backend_lookup(r, i, k, old, vc->backends[k].text);
			if (b) {
				__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
			} else {
				b = calloc(1, sizeof(*b));
				if (b)
					b->w = aligned_alloc(64, sizeof(*b->w) * p->nw);
				if (!b || !b->w) {
					free(b);
					err_set(e, "out of memory");
					route_unref(r);
					return NULL;
				}
				memset(b->w, 0, sizeof(*b->w) * p->nw);
				b->refs = 1;
				b->addr = vc->backends[k];
			}
			v->b[k] = b;
			v->nb = k + 1;
		}
	}
	return r;
}

int proxy_route_put(proxy *p, const json_t *j, const char *name, const char *path, struct err *e)
{
	struct route_cfg cfg;
	const char *dot = *path ? "." : "";
	if (route_cfg_parse(j, path, &cfg, e)) {
		route_cfg_release(&cfg);
		return -1;
	}
	if (name) {
		if (cfg.name[0] && strcmp(cfg.name, name)) {
			route_cfg_release(&cfg);
			return err_set(e, "%s%sname: '%s' does not match the route in the URL ('%s')", path,
				       dot, cfg.name, name);
		}
		snprintf(cfg.name, sizeof(cfg.name), "%s", name);
	} else if (!cfg.name[0]) {
		route_cfg_release(&cfg);
		return err_set(e, "%s%sname: is required", path, dot);
	}
	struct rentry *old = entry_find(p, cfg.name, NULL);
	if (!old && p->nroutes >= MAX_ROUTES) {
		route_cfg_release(&cfg);
		return err_set(e, "%s%sname: too many routes (at most %d)", path, dot, MAX_ROUTES);
	}
	for (struct rentry *o = p->routes; o; o = o->next)
		if (o != old && addr_port(&cfg.listen) != 0 && same_addr(&o->cur->cfg.listen, &cfg.listen)) {
			route_cfg_release(&cfg);
			return err_set(e, "%s%slisten: %s is already used by route %s", path, dot,
				       cfg.listen.text, o->name);
		}

	/* listeners first: the only step that can fail for reasons outside the document */
	int reopen = !old || !same_addr(&old->cur->cfg.listen, &cfg.listen);
	int *fds = calloc(p->nw, sizeof(int));
	if (!fds) {
		route_cfg_release(&cfg);
		return err_set(e, "out of memory");
	}
	if (reopen) {
		struct err le;
		if (open_listeners(p, &cfg.listen, fds, &le)) {
			free(fds);
			route_cfg_release(&cfg);
			return err_set(e, "%s%slisten: %s", path, dot, le.msg);
		}
	} else {
		for (unsigned i = 0; i < p->nw; i++)
			fds[i] = -1;
	}
	struct route *r = route_build(p, &cfg, old, e);
	if (!r) {
		for (unsigned i = 0; i < p->nw; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		free(fds);
		route_cfg_release(&cfg);
		return -1;
	}
	struct rentry *en = old;
	if (!en) {
		en = calloc(1, sizeof(*en));
		if (!en) {
			for (unsigned i = 0; i < p->nw; i++)
				if (fds[i] >= 0)
					close(fds[i]);
			free(fds);
			route_unref(r);
			return err_set(e, "out of memory");
		}
		en->seq = calloc(p->nw, sizeof(*en->seq));
		if (!en->seq) {
			free(en);
			for (unsigned i = 0; i < p->nw; i++)
				if (fds[i] >= 0)
					close(fds[i]);
			free(fds);
			route_unref(r);
			return err_set(e, "out of memory");
		}
		snprintf(en->name, sizeof(en->name), "%s", r->cfg.name);
		en->next = p->routes;
		p->routes = en;
		p->nroutes++;
	}

	/* the draining list: forget drained backends and those that came back, add those leaving */
	size_t keep = 0;
	int switched = entry_switched(p, en);
	for (size_t i = 0; i < en->ngone; i++) {
		struct backend *b = en->gone[i].b;
		if (route_has(r, b) || (switched && backend_in_flight(p, b) == 0)) {
			backend_unref(b);
			continue;
		}
		en->gone[keep++] = en->gone[i];
	}
	en->ngone = keep;
	if (en->cur) {
		struct route *o = en->cur;
		for (size_t i = 0; i < o->cfg.nversions; i++)
			for (size_t k = 0; k < o->v[i].nb; k++) {
				struct backend *b = o->v[i].b[k];
				if (route_has(r, b))
					continue;
				int dup = 0;
				for (size_t g = 0; g < en->ngone; g++)
					dup |= en->gone[g].b == b;
				if (dup)
					continue;
				struct gone *ng = realloc(en->gone, (en->ngone + 1) * sizeof(*ng));
				if (!ng)
					continue; /* only the report loses it */
				en->gone = ng;
				__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
				ng[en->ngone].b = b;
				snprintf(ng[en->ngone].version, sizeof(ng->version), "%s", o->cfg.versions[i].name);
				en->ngone++;
				ST(&b->removed, 1);
			}
	}
	for (size_t i = 0; i < r->cfg.nversions; i++)
		for (size_t k = 0; k < r->v[i].nb; k++)
			ST(&r->v[i].b[k]->removed, 0);

	for (unsigned i = 0; i < p->nw; i++) {
		struct wmsg *m = calloc(1, sizeof(*m));
		if (!m) {
			/* cannot happen in practice; the worker keeps the previous route */
			if (fds[i] >= 0)
				close(fds[i]);
			continue;
		}
		m->kind = WMSG_ROUTE;
		snprintf(m->name, sizeof(m->name), "%s", r->cfg.name);
		route_ref(r);
		m->r = r;
		m->lfd = fds[i];
		en->seq[i] = worker_send(p->w[i], m);
	}
	free(fds);
	if (en->cur)
		route_unref(en->cur);
	en->cur = r;
	log_info("proxy: route %s %s (listen %s, %zu versions)", r->cfg.name, old ? "replaced" : "added",
		 r->cfg.listen.text, r->cfg.nversions);
	state_save(p);
	return 0;
}

static void entry_free(struct rentry *en)
{
	for (size_t i = 0; i < en->ngone; i++)
		backend_unref(en->gone[i].b);
	free(en->gone);
	if (en->cur)
		route_unref(en->cur);
	free(en->seq);
	free(en);
}

int proxy_route_delete(proxy *p, const char *name)
{
	struct rentry **link, *en = entry_find(p, name, &link);
	if (!en)
		return -1;
	*link = en->next;
	p->nroutes--;
	/* before the messages: a worker closes its idle connections to removed backends when it
	 * lets the route go, and the backends may be freed right after */
	for (size_t i = 0; i < en->cur->cfg.nversions; i++)
		for (size_t k = 0; k < en->cur->v[i].nb; k++)
			ST(&en->cur->v[i].b[k]->removed, 1);
	for (unsigned i = 0; i < p->nw; i++) {
		struct wmsg *m = calloc(1, sizeof(*m));
		if (!m)
			continue;
		m->kind = WMSG_DELETE;
		snprintf(m->name, sizeof(m->name), "%s", name);
		m->lfd = -1;
		worker_send(p->w[i], m);
	}
	log_info("proxy: route %s deleted", name);
	entry_free(en);
	state_save(p);
	return 0;
}

/* Whether every worker has applied the entry's current route (so none can pick a backend
 * that left it): "drained" needs this as well as nothing in flight. */
static int entry_switched(const proxy *p, const struct rentry *en)
{
	for (unsigned i = 0; i < p->nw; i++)
		if (worker_applied(p->w[i]) < en->seq[i])
			return 0;
	return 1;
}

static json_t *entry_json(proxy *p, struct rentry *en)
{
	json_t *r = route_cfg_json(&en->cur->cfg);
	json_t *st = json_array();
	uint64_t now = loop_clock_ms();
	for (size_t i = 0; i < en->cur->cfg.nversions; i++)
		for (size_t k = 0; k < en->cur->v[i].nb; k++) {
			struct backend *b = en->cur->v[i].b[k];
			json_array_append_new(st, json_pack("{sssssssI}", "version", en->cur->cfg.versions[i].name,
							    "addr", b->addr.text, "state",
							    LD(&b->ejected_until) > now ? "ejected" : "active",
							    "in_flight", (json_int_t)backend_in_flight(p, b)));
		}
	int switched = entry_switched(p, en);
	for (size_t i = 0; i < en->ngone; i++) {
		int64_t n = backend_in_flight(p, en->gone[i].b);
		json_array_append_new(st, json_pack("{sssssssI}", "version", en->gone[i].version, "addr",
						    en->gone[i].b->addr.text, "state",
						    n || !switched ? "draining" : "drained", "in_flight", (json_int_t)n));
	}
	json_object_set_new(r, "backends_state", st);
	return r;
}

json_t *proxy_route_json(proxy *p, const char *name)
{
	struct rentry *en = entry_find(p, name, NULL);
	return en ? entry_json(p, en) : NULL;
}

json_t *proxy_routes_json(proxy *p)
{
	json_t *a = json_array();
	for (struct rentry *en = p->routes; en; en = en->next)
		json_array_append_new(a, entry_json(p, en));
	return json_pack("{so}", "routes", a);
}

/* ---- optional persistence ---- */

void proxy_state_file(proxy *p, const char *path)
{
	free(p->state);
	p->state = path ? strdup(path) : NULL;
}

static void state_save(proxy *p)
{
	if (!p->state)
		return;
	json_t *a = json_array();
	for (struct rentry *en = p->routes; en; en = en->next)
		json_array_append_new(a, route_cfg_json(&en->cur->cfg));
	json_t *doc = json_pack("{so}", "routes", a);
	size_t n = strlen(p->state) + 8;
	char *tmp = malloc(n);
	if (tmp) {
		snprintf(tmp, n, "%s.tmp", p->state);
		if (json_dump_file(doc, tmp, JSON_INDENT(1)) || rename(tmp, p->state))
			log_warn("proxy: could not save the routes to '%s': %s", p->state, strerror(errno));
		free(tmp);
	}
	json_decref(doc);
}

int proxy_state_load(proxy *p, struct err *e)
{
	if (!p->state || access(p->state, F_OK) != 0)
		return 0;
	json_error_t je;
	json_t *doc = json_load_file(p->state, JSON_REJECT_DUPLICATES, &je);
	if (!doc)
		return err_set(e, "%s:%d:%d: %s", p->state, je.line, je.column, je.text);
	json_t *a = json_object_get(doc, "routes");
	int rc = 0;
	for (size_t i = 0; json_is_array(a) && i < json_array_size(a) && !rc; i++) {
		char path[32];
		struct err re;
		snprintf(path, sizeof(path), "routes[%zu]", i);
		if (proxy_route_put(p, json_array_get(a, i), NULL, path, &re))
			rc = err_set(e, "%s: %s", p->state, re.msg);
	}
	json_decref(doc);
	return rc;
}

/* ---- admin API ---- */

static void reply_json(struct httpd_resp *resp, int status, json_t *j)
{
	resp->status = status;
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!s || buf_adds(&resp->body, s)) {
		buf_reset(&resp->body);
		httpd_error(resp, 500, "out of memory");
	}
	free(s);
}

static void admin_route(proxy *p, const struct httpd_req *req, struct httpd_resp *resp, const char *name)
{
	if (!route_name_valid(name)) {
		httpd_error(resp, 404, "no route named '%.128s' (names match [A-Za-z0-9._-]+)", name);
		return;
	}
	if (!strcmp(req->method, "GET")) {
		json_t *j = proxy_route_json(p, name);
		if (!j)
			httpd_error(resp, 404, "no route named '%s'", name);
		else
			reply_json(resp, 200, j);
	} else if (!strcmp(req->method, "PUT")) {
		json_error_t je;
		json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
		if (!j) {
			httpd_error(resp, 400, "body: invalid JSON at line %d column %d: %s", je.line, je.column,
				    je.text);
			return;
		}
		struct err e;
		int rc = proxy_route_put(p, j, name, "", &e);
		json_decref(j);
		if (rc)
			httpd_error(resp, 400, "%s", e.msg);
		else
			reply_json(resp, 200, proxy_route_json(p, name));
	} else if (!strcmp(req->method, "DELETE")) {
		if (proxy_route_delete(p, name))
			httpd_error(resp, 404, "no route named '%s'", name);
		else
			reply_json(resp, 200, json_pack("{ss}", "deleted", name));
	} else {
		httpd_error(resp, 405, "use GET, PUT or DELETE on /v1/routes/NAME");
	}
}

static void admin(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	proxy *p = ctx;
	const char *path = req->path;
	int get = !strcmp(req->method, "GET");
	if (!strncmp(path, "/v1/routes/", 11)) {
		admin_route(p, req, resp, path + 11);
		return;
	}
	if (!strcmp(path, "/healthz") && get) {
		if (buf_addf(&resp->body, "{\"ok\":true,\"pid\":%d,\"started_ms\":%lld}", (int)getpid(),
			     p->started_ms))
			httpd_error(resp, 500, "out of memory");
	} else if (!strcmp(path, "/v1/routes") && get) {
		reply_json(resp, 200, proxy_routes_json(p));
	} else if (!strcmp(path, "/v1/metrics") && get) {
		if (metrics_json(p->m, loop_clock_ms(), &resp->body)) {
			buf_reset(&resp->body);
			httpd_error(resp, 500, "out of memory");
		}
	} else if (!strcmp(path, "/metrics") && get) {
		resp->content_type = "text/plain; version=0.0.4";
		if (metrics_prometheus(p->m, &resp->body)) {
			buf_reset(&resp->body);
			httpd_error(resp, 500, "out of memory");
		}
	} else if (!strcmp(path, "/healthz") || !strcmp(path, "/v1/routes") ||
		   !strcmp(path, "/v1/metrics") || !strcmp(path, "/metrics")) {
		httpd_error(resp, 405, "use GET on %s", path);
	} else {
		httpd_error(resp, 404, "no such endpoint: %.200s", path);
	}
}

int proxy_admin_start(proxy *p, loop *l, const char *addr, struct err *e)
{
	struct httpd_opts o = {.max_body = 1u << 20, .max_conns = 256};
	return httpd_start(&p->admin, l, addr, &o, admin, p, e);
}

int proxy_admin_port(const proxy *p)
{
	return p->admin ? httpd_port(p->admin) : 0;
}

void proxy_free(proxy *p)
{
	if (!p)
		return;
	if (p->admin)
		httpd_free(p->admin);
	for (unsigned i = 0; p->w && i < p->nw; i++) {
		if (!p->w[i])
			continue;
		struct wmsg *m = calloc(1, sizeof(*m));
		if (m) {
			m->kind = WMSG_STOP;
			m->lfd = -1;
			worker_send(p->w[i], m);
		}
	}
	for (unsigned i = 0; p->w && i < p->nw; i++)
		worker_join_free(p->w[i]);
	while (p->routes) {
		struct rentry *en = p->routes;
		p->routes = en->next;
		entry_free(en);
	}
	free(p->w);
	metrics_free(p->m);
	free(p->state);
	free(p);
}
