#include "proxy/proxy.h"
#include "proxy/keeper.h"

#include <errno.h>
#include <pthread.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http/server.h"
#include "proxy/metrics.h"
#include "util/secret.h"
#include "proxy/vhost.h"
#include "util/strmap.h"

#define LD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define ST(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

#define MAX_ROUTES 16384

/* A backend that left its route: reported as draining, then drained, until the next PUT. */
struct gone {
	struct backend *b;
	char version[ROUTE_VERSION_MAX];
};

/* A listener shared by the routes that name hosts on its address. */
struct lentry {
	struct lentry *next;
	unsigned id; /* 1.. : the workers' name for it */
	struct route_addr addr;
	size_t nroutes;
	vhost *t; /* (host, prefix) -> rentry: refuses a pair two routes would serve */
};

struct rentry {
	struct rentry *next;
	struct lentry *shared; /* the route's shared listener, or NULL (a listener of its own) */
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
	struct lentry *listeners;
	unsigned next_lid;
	/* indexes, so that a PUT costs the same at 3,000 routes as at 3 */
	strmap *byname; /* route name -> rentry */
	strmap *own;    /* address key -> rentry that has its own listener there */
	strmap *shared; /* address key -> lentry */
	httpd *admin;
	char admin_token[SECRET_MAX + 1]; /* "": the admin API asks for none */
	tls_ctx *admin_tls;                /* the admin API's TLS, or NULL: plain HTTP */
	int started;
	long long started_ms; /* wall clock at proxy_start: with the pid, names this process */
	char *state; /* --state FILE, or NULL */
	int loading; /* proxy_state_load: the file already says it, no save per route */
	loop *l;     /* the admin loop, once proxy_admin_start ran: saves are coalesced on it */
	int save_due;          /* a change waits for the save timer */
	pthread_t saver;       /* writes one snapshot of the routes */
	int saver_running;     /* saver was started and not joined */
	int saver_done;        /* atomic: the saver finished */
	uint64_t save_cost_ms; /* atomic: how long the last write took */
};

/* Saves of --state are coalesced: at most one snapshot written per STATE_SAVE_MS, or per 10
 * times the last write's duration when that is longer (so that the writer thread takes at most
 * ~10% of a core under constant changes), by a thread, so that a PUT never waits for the file
 * (3,000 routes take tens of ms to write). */
#define STATE_SAVE_MS 50

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
	p->byname = strmap_new();
	p->own = strmap_new();
	p->shared = strmap_new();
	if (!p->m || !p->w || !p->byname || !p->own || !p->shared) {
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
	if (!link)
		return strmap_get(p->byname, name);
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

/* The indexes' key of an address: its socket address bytes in hex (what same_addr compares). */
static void addr_key(const struct route_addr *a, char *buf /* [2 * sizeof(sa) + 1] */)
{
	const unsigned char *b = (const unsigned char *)&a->sa;
	for (socklen_t i = 0; i < a->salen; i++) {
		buf[2 * i] = "0123456789abcdef"[b[i] >> 4];
		buf[2 * i + 1] = "0123456789abcdef"[b[i] & 15];
	}
	buf[2 * a->salen] = 0;
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
	/* the sockets a crashed predecessor listened on, kept open by the keeper meanwhile */
	char key[2 * sizeof(struct sockaddr_storage) + 1];
	addr_key(a, key);
	unsigned got = 0;
	for (unsigned i = 0; i < p->nw; i++)
		got += (fds[i] = keeper_take(key, i)) >= 0;
	if (got == p->nw)
		return 0;
	for (unsigned i = 0; i < p->nw; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
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

/* Withdraws a shared listener no route uses any more (after the route messages that left it). */
static void listener_drop(proxy *p, struct lentry *L)
{
	char key[2 * sizeof(struct sockaddr_storage) + 1];
	addr_key(&L->addr, key);
	if (strmap_get(p->shared, key) == L)
		strmap_del(p->shared, key);
	if (!strmap_get(p->own, key)) /* else a route's own listener took the address over */
		keeper_drop(key);
	for (struct lentry **q = &p->listeners; *q; q = &(*q)->next)
		if (*q == L) {
			*q = L->next;
			break;
		}
	for (unsigned i = 0; i < p->nw; i++) {
		struct wmsg *m = calloc(1, sizeof(*m));
		if (!m)
			continue;
		m->kind = WMSG_UNLISTEN;
		m->lid = L->id;
		m->lfd = -1;
		worker_send(p->w[i], m);
	}
	vhost_free(L->t);
	free(L);
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
	struct lentry *L = NULL; /* the shared listener the route goes to */
	char key[2 * sizeof(struct sockaddr_storage) + 1];
	if (addr_port(&cfg.listen) != 0) {
		addr_key(&cfg.listen, key);
		struct rentry *o = strmap_get(p->own, key);
		struct lentry *sl = strmap_get(p->shared, key);
		/* a shared listener whose only route is the one being replaced does not count */
		int sl_others = sl && sl->nroutes > (size_t)(old && old->shared == sl ? 1 : 0);
		if (o && o != old) {
			route_cfg_release(&cfg);
			return err_set(e, "%s%slisten: %s is already used by route %s (its own listener: routes "
				       "share one only when all of them name hosts)", path, dot, cfg.listen.text,
				       o->name);
		}
		if (!cfg.nhosts && sl_others) {
			const char *other = "another route";
			for (struct rentry *r2 = p->routes; r2; r2 = r2->next)
				if (r2->shared == sl && r2 != old) {
					other = r2->name;
					break;
				}
			err_set(e, "%s%slisten: %s is already used by route %s (a listener shared by routes "
				"with hosts: give this route hosts too)", path, dot, cfg.listen.text, other);
			route_cfg_release(&cfg);
			return -1;
		}
		if (cfg.nhosts)
			L = sl;
	}
	for (size_t i = 0; L && i < cfg.nhosts; i++) {
		void *other = NULL;
		if (vhost_add(L->t, cfg.hosts[i], cfg.path_prefix, NULL, &other) == -2 && other != old) {
			struct rentry *o = other;
			err_set(e, "%s%shosts[%zu]: %s with path prefix %s on %s is already served by route %s",
				path, dot, i, cfg.hosts[i], cfg.path_prefix ? cfg.path_prefix : "/", L->addr.text,
				o->name);
			route_cfg_release(&cfg);
			return -1;
		} else if (!other) {
			vhost_del(L->t, cfg.hosts[i], cfg.path_prefix, NULL); /* only a probe */
		}
	}

	/* listeners first: the only step that can fail for reasons outside the document */
	int reopen = !cfg.nhosts && (!old || old->shared || !same_addr(&old->cur->cfg.listen, &cfg.listen));
	int newshared = cfg.nhosts && !L;
	int *fds = calloc(p->nw, sizeof(int));
	if (!fds) {
		route_cfg_release(&cfg);
		return err_set(e, "out of memory");
	}
	if (reopen || newshared) {
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
	if (newshared) {
		L = calloc(1, sizeof(*L));
		if (!L || !(L->t = vhost_new())) {
			free(L);
			for (unsigned i = 0; i < p->nw; i++)
				close(fds[i]);
			free(fds);
			route_cfg_release(&cfg);
			return err_set(e, "out of memory");
		}
		L->addr = cfg.listen;
	}
	struct route *r = route_build(p, &cfg, old, e);
	if (!r) {
		for (unsigned i = 0; i < p->nw; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		free(fds);
		if (newshared) {
			vhost_free(L->t);
			free(L);
		}
		route_cfg_release(&cfg);
		return -1;
	}
	struct rentry *en = old;
	if (!en) {
		en = calloc(1, sizeof(*en));
		if (en && !(en->seq = calloc(p->nw, sizeof(*en->seq)))) {
			free(en);
			en = NULL;
		}
		if (!en) {
			for (unsigned i = 0; i < p->nw; i++)
				if (fds[i] >= 0)
					close(fds[i]);
			free(fds);
			if (newshared) {
				vhost_free(L->t);
				free(L);
			}
			route_unref(r);
			return err_set(e, "out of memory");
		}
		snprintf(en->name, sizeof(en->name), "%s", r->cfg.name);
		if (strmap_put(p->byname, en->name, en)) {
			free(en->seq);
			free(en);
			for (unsigned i = 0; i < p->nw; i++)
				if (fds[i] >= 0)
					close(fds[i]);
			free(fds);
			if (newshared) {
				vhost_free(L->t);
				free(L);
			}
			route_unref(r);
			return err_set(e, "out of memory");
		}
		en->next = p->routes;
		p->routes = en;
		p->nroutes++;
	}
	if (newshared) {
		L->id = ++p->next_lid;
		L->next = p->listeners;
		p->listeners = L;
		addr_key(&L->addr, key);
		if (strmap_put(p->shared, key, L))
			log_error("proxy: out of memory indexing a shared listener");
		for (unsigned i = 0; i < p->nw; i++)
			keeper_keep(key, i, fds[i]);
		for (unsigned i = 0; i < p->nw; i++) {
			struct wmsg *m = calloc(1, sizeof(*m));
			if (!m) {
				close(fds[i]);
				continue;
			}
			m->kind = WMSG_LISTEN;
			m->lid = L->id;
			m->lfd = fds[i];
			worker_send(p->w[i], m);
			fds[i] = -1;
		}
	}
	/* the admin's host table: the old pairs go, the new ones come */
	struct lentry *left = NULL; /* a shared listener the route leaves */
	if (old && old->shared) {
		for (size_t i = 0; i < old->cur->cfg.nhosts; i++)
			vhost_del(old->shared->t, old->cur->cfg.hosts[i], old->cur->cfg.path_prefix, old);
		if (old->shared != L) {
			left = old->shared;
			left->nroutes--;
		}
	}
	if (L) {
		for (size_t i = 0; i < r->cfg.nhosts; i++)
			if (vhost_add(L->t, r->cfg.hosts[i], r->cfg.path_prefix, en, NULL))
				log_error("proxy: out of memory indexing host %s of route %s", r->cfg.hosts[i],
					  r->cfg.name);
		if (!old || old->shared != L)
			L->nroutes++;
	}
	int was_own = old && !old->shared;
	en->shared = L;
	/* the address indexes: the old own listener out, the new one in */
	if (was_own && old->cur) {
		char ok[sizeof(key)];
		addr_key(&old->cur->cfg.listen, ok);
		if (strmap_get(p->own, ok) == old)
			strmap_del(p->own, ok);
		addr_key(&r->cfg.listen, key);
		if (strcmp(ok, key))
			keeper_drop(ok);
	}
	if (!L) {
		addr_key(&r->cfg.listen, key);
		if (strmap_put(p->own, key, en))
			log_error("proxy: out of memory indexing route %s", r->cfg.name);
		for (unsigned i = 0; reopen && i < p->nw; i++)
			keeper_keep(key, i, fds[i]);
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
		m->lid = L ? L->id : 0;
		en->seq[i] = worker_send(p->w[i], m);
	}
	if (left && left->nroutes == 0)
		listener_drop(p, left);
	free(fds);
	if (en->cur)
		route_unref(en->cur);
	en->cur = r;
	log_info("proxy: route %s %s (listen %s%s, %zu versions)", r->cfg.name, old ? "replaced" : "added",
		 r->cfg.listen.text, L ? " shared" : "", r->cfg.nversions);
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
	strmap_del(p->byname, name);
	if (!en->shared) {
		char key[2 * sizeof(struct sockaddr_storage) + 1];
		addr_key(&en->cur->cfg.listen, key);
		if (strmap_get(p->own, key) == en) {
			strmap_del(p->own, key);
			keeper_drop(key);
		}
	}
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
	if (en->shared) {
		for (size_t i = 0; i < en->cur->cfg.nhosts; i++)
			vhost_del(en->shared->t, en->cur->cfg.hosts[i], en->cur->cfg.path_prefix, en);
		if (--en->shared->nroutes == 0)
			listener_drop(p, en->shared);
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

/* The routes (references, one each) written by the saver thread. */
struct snapshot {
	char *path;
	struct route **r;
	size_t n;
	int *done;
	uint64_t *cost_ms;
};

static void snapshot_write(struct snapshot *sn)
{
	uint64_t t0 = loop_clock_ms();
	json_t *a = json_array();
	for (size_t i = 0; i < sn->n; i++)
		json_array_append_new(a, route_cfg_json(&sn->r[i]->cfg));
	json_t *doc = json_pack("{so}", "routes", a);
	size_t n = strlen(sn->path) + 8;
	char *tmp = malloc(n);
	if (tmp) {
		snprintf(tmp, n, "%s.tmp", sn->path);
		if (json_dump_file(doc, tmp, JSON_COMPACT) || rename(tmp, sn->path))
			log_warn("proxy: could not save the routes to '%s': %s", sn->path, strerror(errno));
		free(tmp);
	}
	json_decref(doc);
	for (size_t i = 0; i < sn->n; i++)
		route_unref(sn->r[i]);
	free(sn->r);
	free(sn->path);
	if (sn->cost_ms)
		__atomic_store_n(sn->cost_ms, loop_clock_ms() - t0, __ATOMIC_RELAXED);
	if (sn->done)
		__atomic_store_n(sn->done, 1, __ATOMIC_RELEASE);
	free(sn);
}

static void *saver_main(void *arg)
{
	snapshot_write(arg);
	return NULL;
}

static struct snapshot *snapshot_take(proxy *p)
{
	struct snapshot *sn = calloc(1, sizeof(*sn));
	if (!sn || !(sn->path = strdup(p->state)) || !(sn->r = calloc(p->nroutes + 1, sizeof(*sn->r)))) {
		if (sn)
			free(sn->path);
		free(sn);
		return NULL;
	}
	for (struct rentry *en = p->routes; en; en = en->next) {
		route_ref(en->cur);
		sn->r[sn->n++] = en->cur;
	}
	return sn;
}

static void save_timer(loop *l, void *arg)
{
	proxy *p = arg;
	if (p->saver_running) {
		if (!__atomic_load_n(&p->saver_done, __ATOMIC_ACQUIRE)) {
			loop_timer(l, STATE_SAVE_MS, save_timer, p); /* the previous save is still writing */
			return;
		}
		pthread_join(p->saver, NULL);
		p->saver_running = 0;
	}
	p->save_due = 0;
	struct snapshot *sn = snapshot_take(p);
	if (!sn) {
		log_warn("proxy: could not save the routes to '%s': out of memory", p->state);
		return;
	}
	sn->done = &p->saver_done;
	sn->cost_ms = &p->save_cost_ms;
	__atomic_store_n(&p->saver_done, 0, __ATOMIC_RELAXED);
	if (pthread_create(&p->saver, NULL, saver_main, sn)) {
		sn->done = NULL;
		snapshot_write(sn); /* no thread: write it here */
		return;
	}
	p->saver_running = 1;
}

/* After a change: the routes reach the state file within STATE_SAVE_MS (plus one write). */
static void state_save(proxy *p)
{
	if (!p->state || p->loading)
		return;
	if (!p->l) {
		/* at start, before the admin loop: write at once */
		struct snapshot *sn = snapshot_take(p);
		if (sn)
			snapshot_write(sn);
		return;
	}
	if (!p->save_due) {
		p->save_due = 1;
		uint64_t cost = __atomic_load_n(&p->save_cost_ms, __ATOMIC_RELAXED);
		loop_timer(p->l, cost * 10 > STATE_SAVE_MS ? cost * 10 : STATE_SAVE_MS, save_timer, p);
	}
}

/* Waits for a save in progress and writes a pending one (at exit). */
static void state_flush(proxy *p)
{
	if (p->saver_running) {
		pthread_join(p->saver, NULL);
		p->saver_running = 0;
	}
	if (p->save_due && p->state) {
		struct snapshot *sn = snapshot_take(p);
		if (sn)
			snapshot_write(sn);
		p->save_due = 0;
	}
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
	p->loading = 1;
	for (size_t i = 0; json_is_array(a) && i < json_array_size(a) && !rc; i++) {
		char path[32];
		struct err re;
		snprintf(path, sizeof(path), "routes[%zu]", i);
		if (proxy_route_put(p, json_array_get(a, i), NULL, path, &re))
			rc = err_set(e, "%s: %s", p->state, re.msg);
	}
	p->loading = 0;
	json_decref(doc);
	if (!rc)
		state_save(p); /* once: the config file's routes and the saved ones together */
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

/* Whether the request carries the admin token ("Authorization: Bearer TOKEN"); any request
 * does when the proxy has none. */
static int admin_authorized(const proxy *p, const struct httpd_req *req)
{
	if (!p->admin_token[0])
		return 1;
	const struct http_header *h = http_head_get(req->head, "authorization");
	if (!h || h->value_len < 7 || strncasecmp(h->value, "Bearer ", 7))
		return 0;
	const char *v = h->value + 7;
	size_t n = h->value_len - 7;
	while (n && *v == ' ') {
		v++;
		n--;
	}
	return secret_equal(v, n, p->admin_token);
}

static void admin(void *ctx, const struct httpd_req *req, struct httpd_resp *resp)
{
	proxy *p = ctx;
	const char *path = req->path;
	int get = !strcmp(req->method, "GET");
	/* open without the token: /healthz tells only that a proxy runs (its pid and start time),
	 * and /metrics is read by a Prometheus that must not get the power to change routes; both
	 * only read. Everything under /v1/ (the routes, their backends, the JSON counters) needs it */
	int open = get && (!strcmp(path, "/healthz") || !strcmp(path, "/metrics"));
	if (!open && !admin_authorized(p, req)) {
		if (buf_adds(&resp->headers, "WWW-Authenticate: Bearer\r\n"))
			buf_reset(&resp->headers);
		httpd_error(resp, 401, "the admin API needs 'Authorization: Bearer TOKEN' with the proxy's admin token");
		return;
	}
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

int proxy_admin_start(proxy *p, loop *l, const char *addr, const char *token, tls_ctx *tls,
		      struct err *e)
{
	p->admin_tls = tls;
	if (token && strlen(token) >= sizeof(p->admin_token))
		return err_set(e, "the admin token is longer than %d bytes", SECRET_MAX);
	snprintf(p->admin_token, sizeof(p->admin_token), "%s", token ? token : "");
	struct httpd_opts o = {.max_body = 1u << 20, .max_conns = 256, .tls = tls};
	p->l = l;
	int fd = keeper_take("admin", 0);
	if (fd < 0 && (fd = httpd_listen(addr, e)) < 0)
		return -1;
	keeper_keep("admin", 0, fd);
	return httpd_start_fd(&p->admin, l, fd, &o, admin, p, e);
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
	tls_ctx_free(p->admin_tls);
	state_flush(p);
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
	while (p->listeners) {
		struct lentry *L = p->listeners;
		p->listeners = L->next;
		vhost_free(L->t);
		free(L);
	}
	free(p->w);
	strmap_free(p->byname);
	strmap_free(p->own);
	strmap_free(p->shared);
	metrics_free(p->m);
	free(p->state);
	free(p);
}
