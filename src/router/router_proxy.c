/*
 * router_proxy: the "proxy" driver of the router interface (router.h), i.e. the control
 * plane's side of the built-in `sluice proxy`.
 *
 * It makes sure one `sluice proxy` process runs (started in its own session so it outlives the
 * server; a restarted server finds it again through its admin address), and talks to the
 * proxy's admin API (docs/proxy.md): a typed route becomes the route JSON the admin API takes
 * (listening on 127.0.0.1:port) and replaces the route atomically; the route's backends_state
 * becomes the drain state; GET /v1/metrics is the counters snapshot. A route is only sent
 * when it differs from what this router last sent successfully.
 */
#include "router/router.h"
#include "util/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loop/fetch.h"
#include "loop/loop.h"
#include "util/httpc.h"
#include "util/secret.h"

/* With a fetcher, the proxy's health is checked this often in the background. */
#define ROUTER_HEALTH_MS 1000

/* Routes listen on loopback: their clients (the services' dependencies, the stage's
 * traffic, users of this machine) are local. */
#define PROXY_LISTEN_HOST "127.0.0.1"

struct proxy_router {
	struct router base; /* first: a router * is a proxy_router * */
	char admin[128];
	char exe[4096];
	char dir[4096];
	char auth[SECRET_MAX + 32]; /* "Authorization: Bearer TOKEN", or "" without a token */
	char env_token[SECRET_MAX + 32]; /* "SLUICE_PROXY_TOKEN=TOKEN" for a proxy it starts */
	const char *scheme;         /* "http", or "https" with ca */
	char ca[4096];              /* the CA file that signed the admin API's certificate, or "" */
	httpc *http;
	json_t *sent; /* route name -> last body PUT successfully */
	uint64_t last_start_ms;
	char identity[64];   /* "pid/started_ms" of the proxy process that answered last */
	uint64_t generation; /* router_generation */
	fetcher *fetch;      /* background reads (health, metrics); NULL: none */
	uint64_t health_id, health_at;
	int health_ok;       /* the last answer of the proxy's health, in the background */
	int health_hung;     /* ... and it timed out: something listens there and does not answer */
	uint64_t metrics_id, metrics_asked; /* in flight, and the loop time it was requested */
	json_t *metrics;     /* the latest snapshot, or NULL */
	uint64_t metrics_at; /* the loop time its request went out: it holds at least that */
	uint64_t metrics_err_log;
	int pidfd;           /* the proxy process we started, watched on the fetcher's loop; -1 */
	long watched;        /* its pid */
};

/* ---- the proxy's exit, seen at once: its pidfd on the loop ---- */

static void watch_stop(struct proxy_router *r)
{
	if (r->pidfd >= 0)
		loop_close(fetcher_loop(r->fetch), r->pidfd);
	r->pidfd = -1;
	r->watched = 0;
}

/* The proxy died: the next reconcile pass (the next tick, within 200 ms) restarts it from its
 * state file, instead of the next health check (up to 2 s later on an idle server). */
static void on_proxy_exit(loop *l, int fd, unsigned events, void *arg)
{
	struct proxy_router *r = arg;
	log_warn("proxy: process %ld on %s exited; starting it again", r->watched, r->admin);
	watch_stop(r);
	r->health_ok = 0;
	r->generation++;
}

/* Watches the proxy process `pid` when this router starts its proxy on this machine (a remote
 * one's pid means nothing here). Best effort: without pidfd_open the health checks remain. */
static void watch(struct proxy_router *r, long pid)
{
	if (!r->exe[0] || !r->fetch || pid <= 0 || pid == r->watched)
		return;
	watch_stop(r);
	int fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (fd < 0)
		return;
	if (loop_add(fetcher_loop(r->fetch), fd, LOOP_READ, on_proxy_exit, r)) {
		close(fd);
		return;
	}
	r->pidfd = fd;
	r->watched = pid;
}

static void proxy_use_fetcher(router *base, fetcher *f)
{
	struct proxy_router *r = (struct proxy_router *)base;
	if (r->fetch)
		watch_stop(r);
	if (r->fetch) {
		fetch_cancel(r->fetch, r->health_id);
		fetch_cancel(r->fetch, r->metrics_id);
	}
	r->health_id = r->metrics_id = 0;
	r->fetch = f;
}

static void proxy_free(router *base)
{
	struct proxy_router *r = (struct proxy_router *)base;
	proxy_use_fetcher(base, NULL);
	httpc_free(r->http);
	json_decref(r->sent);
	json_decref(r->metrics);
	free(r);
}

static uint64_t proxy_generation(const router *base)
{
	return ((const struct proxy_router *)base)->generation;
}

static uint64_t now_ms(const struct proxy_router *r)
{
	return r->fetch ? loop_now(fetcher_loop(r->fetch)) : loop_clock_ms();
}

/* A health answer names the proxy process ({"pid", "started_ms"}). Another process than the
 * one that answered before has none of the routes this router sent: send them again. */
static void saw_proxy(struct proxy_router *r, const char *body)
{
	json_t *j = json_loads(body ? body : "", 0, NULL);
	watch(r, (long)json_integer_value(json_object_get(j, "pid")));
	char id[64];
	snprintf(id, sizeof(id), "%lld/%lld", (long long)json_integer_value(json_object_get(j, "pid")),
		 (long long)json_integer_value(json_object_get(j, "started_ms")));
	json_decref(j);
	if (r->identity[0] && strcmp(r->identity, id)) {
		log_info("proxy: another process answers on %s (%s, was %s): its routes are sent again", r->admin,
			 id, r->identity);
		json_object_clear(r->sent);
		r->generation++;
	}
	snprintf(r->identity, sizeof(r->identity), "%s", id);
}

static void on_health(void *arg, const struct fetch_result *res)
{
	struct proxy_router *r = arg;
	r->health_id = 0;
	r->health_at = now_ms(r);
	int ok = res->ok && res->status == 200;
	if (ok)
		saw_proxy(r, res->body);
	r->health_hung = !res->ok && res->error && strstr(res->error, "timed out");
	if (ok != r->health_ok)
		r->generation++; /* a pass will look (and restart the proxy when it is gone) */
	r->health_ok = ok;
}

static int alive(struct proxy_router *r)
{
	char url[256];
	snprintf(url, sizeof(url), "%s://%s/healthz", r->scheme, r->admin);
	long status = 0;
	struct buf b;
	buf_init(&b, 4096);
	int rc = httpc_request(r->http, "GET", url, NULL, 0, NULL, &status, &b, NULL);
	int ok = rc == 0 && status == 200;
	if (ok && buf_add(&b, "", 1) == 0)
		saw_proxy(r, b.data);
	buf_release(&b);
	return ok;
}

static int spawn_proxy(struct proxy_router *r, struct err *e)
{
	char conf[4200], logp[4200], pidp[4200], statep[4200];
	snprintf(conf, sizeof(conf), "%s/proxy.json", r->dir);
	snprintf(statep, sizeof(statep), "%s/proxy-routes.json", r->dir);
	snprintf(logp, sizeof(logp), "%s/proxy.log", r->dir);
	snprintf(pidp, sizeof(pidp), "%s/proxy.pid", r->dir);
	FILE *f = fopen(conf, "w");
	if (!f)
		return err_set(e, "could not write '%s': %s", conf, strerror(errno));
	fprintf(f, "{\"admin\": \"%s\", \"routes\": []}\n", r->admin);
	fclose(f);
	/* detached: the proxy is not our child and lives in its own session, so it outlives us;
	 * --state: it keeps its routes in a file and a restarted proxy serves them at once, before
	 * the server (which may be down too) sends them again */
	char *argv[] = {r->exe, "proxy", "--config", conf, "--admin", r->admin, "--state", statep, NULL};
	/* the admin token goes by the environment: not on a command line every user can read */
	extern char **environ;
	size_t n = 0;
	while (environ[n])
		n++;
	char **envp = calloc(n + 2, sizeof(*envp));
	if (!envp)
		return err_set(e, "out of memory");
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "SLUICE_PROXY_TOKEN=", 19))
			envp[k++] = environ[i];
	if (r->env_token[0])
		envp[k++] = r->env_token;
	struct spawn_opts so = {.argv = argv, .envp = envp, .out_fd = -1, .out_path = logp,
				.detach = 1, .pid_file = pidp};
	int rc = spawn_start(&so, NULL, e);
	free(envp);
	return rc;
}

static int proxy_ensure(router *base, struct err *e)
{
	struct proxy_router *r = (struct proxy_router *)base;
	if (r->fetch) {
		uint64_t now = now_ms(r);
		if (!r->health_id && now - r->health_at >= ROUTER_HEALTH_MS) {
			char url[256];
			snprintf(url, sizeof(url), "%s://%s/healthz", r->scheme, r->admin);
			struct fetch_req q = {.url = url, .timeout_ms = 2000, .max_response = 4096,
					      .cacert = r->ca[0] ? r->ca : NULL};
			r->health_id = fetch_start(r->fetch, &q, on_health, r);
		}
		if (r->health_ok)
			return 0;
		/* A proxy that accepts connections and does not answer (stopped, or stuck) holds
		 * its addresses: another could not start, and every blocking call to it would stall
		 * this thread for its timeout. Wait for the background check to see it answer. */
		if (r->health_hung)
			return err_set(e, "the proxy on %s accepts connections but does not answer its "
				       "health check (stopped or stuck?)", r->admin);
	}
	if (alive(r)) {
		r->health_ok = 1;
		r->health_at = now_ms(r);
		return 0;
	}
	r->health_ok = 0;
	if (!r->exe[0]) /* router_proxy_remote: something else runs it */
		return err_set(e, "the proxy does not answer on %s", r->admin);
	uint64_t now = loop_clock_ms();
	if (now - r->last_start_ms > 2000 || !r->last_start_ms) {
		r->last_start_ms = now;
		json_object_clear(r->sent);
		if (spawn_proxy(r, e))
			return -1;
		/* at most about a second (alive() may wait for its timeout on a slow start) */
		for (uint64_t t0 = loop_clock_ms(); loop_clock_ms() - t0 < 1000;) {
			usleep(20000);
			if (alive(r)) {
				r->health_ok = 1;
				r->health_at = now_ms(r);
				return 0;
			}
		}
	}
	return err_set(e, "the proxy does not answer on %s (see %s/proxy.log)", r->admin, r->dir);
}

static int proxy_route_endpoint(router *base, const char *name, int port, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s:%d", PROXY_LISTEN_HOST, port);
	return n > 0 && (size_t)n < len ? 0 : -1;
}

/* The admin API's route object (docs/proxy.md) of a typed route, or NULL with e. */
static json_t *route_json(const struct router_route *rt, struct err *e)
{
	if (!rt->name || !rt->name[0] || strlen(rt->name) >= ROUTER_NAME_MAX)
		return err_set(e, "route name missing or longer than %d bytes", ROUTER_NAME_MAX - 1), NULL;
	if (rt->nversions < 1 || rt->nversions > ROUTER_MAX_VERSIONS)
		return err_set(e, "route %s: %zu versions (1..%d)", rt->name, rt->nversions, ROUTER_MAX_VERSIONS),
		       NULL;
	char listen[ROUTER_ENDPOINT_MAX];
	if (rt->port < 1 || rt->port > 65535 ||
	    proxy_route_endpoint(NULL, rt->name, rt->port, listen, sizeof(listen)))
		return err_set(e, "route %s: port %d out of range", rt->name, rt->port), NULL;
	json_t *versions = json_array();
	for (size_t i = 0; i < rt->nversions; i++) {
		const struct router_version *v = &rt->versions[i];
		if (!v->name || v->nbackends < 1 || v->nbackends > ROUTER_MAX_BACKENDS) {
			json_decref(versions);
			return err_set(e, "route %s: version %zu: %zu backends (1..%d)", rt->name, i,
				       v->nbackends, ROUTER_MAX_BACKENDS), NULL;
		}
		json_t *b = json_array();
		for (size_t k = 0; k < v->nbackends; k++)
			json_array_append_new(b, json_string(v->backends[k] ? v->backends[k] : ""));
		json_array_append_new(versions, json_pack("{s:s, s:I, s:o}", "version", v->name, "weight",
							  (json_int_t)v->weight, "backends", b));
	}
	json_t *j = json_pack("{s:s, s:s, s:o}", "name", rt->name, "listen", listen, "versions", versions);
	if (j && rt->nhosts) {
		json_t *hs = json_array();
		for (size_t i = 0; i < rt->nhosts; i++)
			json_array_append_new(hs, json_string(rt->hosts[i] ? rt->hosts[i] : ""));
		json_object_set_new(j, "hosts", hs);
		if (rt->path_prefix && strcmp(rt->path_prefix, "/"))
			json_object_set_new(j, "path_prefix", json_string(rt->path_prefix));
	}
	return j;
}

static int proxy_put_route(router *base, const struct router_route *rt, struct err *e)
{
	struct proxy_router *r = (struct proxy_router *)base;
	json_t *route = route_json(rt, e);
	if (!route)
		return -1;
	json_t *last = json_object_get(r->sent, rt->name);
	if (last && json_equal(last, route)) {
		json_decref(route);
		return 0;
	}
	char url[512];
	snprintf(url, sizeof(url), "%s://%s/v1/routes/%s", r->scheme, r->admin, rt->name);
	long status = 0;
	json_t *out = NULL;
	if (httpc_json(r->http, "PUT", url, route, &status, &out, e)) {
		json_decref(route);
		return -1;
	}
	if (status != 200) {
		const char *msg = json_string_value(json_object_get(out, "error"));
		int rc = err_set(e, "proxy refused route %s (%ld): %s", rt->name, status, msg ? msg : "?");
		json_decref(out);
		json_decref(route);
		return rc;
	}
	json_decref(out);
	json_object_set_new(r->sent, rt->name, route);
	return 0;
}

static int proxy_delete_route(router *base, const char *name, struct err *e)
{
	struct proxy_router *r = (struct proxy_router *)base;
	json_t *last = json_object_get(r->sent, name);
	if (last && json_is_null(last))
		return 0; /* already deleted by us */
	char url[512];
	snprintf(url, sizeof(url), "%s://%s/v1/routes/%s", r->scheme, r->admin, name);
	long status = 0;
	json_t *out = NULL;
	/* Only delete what exists: a route about to be created must not race its own deletion. */
	if (!last) {
		if (httpc_json(r->http, "GET", url, NULL, &status, &out, e))
			return -1;
		json_decref(out);
		out = NULL;
		if (status == 404) {
			json_object_set_new(r->sent, name, json_null());
			return 0;
		}
	}
	if (httpc_json(r->http, "DELETE", url, NULL, &status, &out, e))
		return -1;
	json_decref(out);
	if (status != 200 && status != 204 && status != 404)
		return err_set(e, "proxy: DELETE route %s answered %ld", name, status);
	json_object_set_new(r->sent, name, json_null());
	return 0;
}

static int backend_phase(const char *state, enum router_backend_phase *out)
{
	static const struct {
		const char *name;
		enum router_backend_phase phase;
	} names[] = {{"active", ROUTER_BACKEND_ACTIVE},
		     {"ejected", ROUTER_BACKEND_EJECTED},
		     {"draining", ROUTER_BACKEND_DRAINING},
		     {"drained", ROUTER_BACKEND_DRAINED}};
	for (size_t i = 0; state && i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(state, names[i].name)) {
			*out = names[i].phase;
			return 0;
		}
	return -1;
}

/* GET /v1/routes/NAME: its backends_state, each entry checked (the proxy is a peer). */
static int proxy_route_state(router *base, const char *name, struct router_backend **out, size_t *n,
			     struct err *e)
{
	struct proxy_router *r = (struct proxy_router *)base;
	char url[512];
	snprintf(url, sizeof(url), "%s://%s/v1/routes/%s", r->scheme, r->admin, name);
	long status = 0;
	json_t *j = NULL;
	if (httpc_json(r->http, "GET", url, NULL, &status, &j, e))
		return -1;
	if (status != 200 || !j) {
		json_decref(j);
		return err_set(e, "proxy: GET route %s answered %ld", name, status);
	}
	json_t *st = json_object_get(j, "backends_state");
	size_t cnt = json_array_size(st);
	if (!json_is_array(st) || cnt > (size_t)ROUTER_MAX_VERSIONS * ROUTER_MAX_BACKENDS * 4) {
		json_decref(j);
		return err_set(e, "proxy: route %s: no usable backends_state", name);
	}
	struct router_backend *b = cnt ? calloc(cnt, sizeof(*b)) : NULL;
	if (cnt && !b) {
		json_decref(j);
		return err_set(e, "out of memory");
	}
	for (size_t i = 0; i < cnt; i++) {
		json_t *x = json_array_get(st, i);
		const char *v = json_string_value(json_object_get(x, "version"));
		const char *a = json_string_value(json_object_get(x, "addr"));
		json_t *fl = json_object_get(x, "in_flight");
		if (!v || !a || strlen(v) >= sizeof(b[i].version) || strlen(a) >= sizeof(b[i].addr) ||
		    !json_is_integer(fl) || json_integer_value(fl) < 0 ||
		    backend_phase(json_string_value(json_object_get(x, "state")), &b[i].phase)) {
			free(b);
			json_decref(j);
			return err_set(e, "proxy: route %s: backends_state[%zu] malformed", name, i);
		}
		memcpy(b[i].version, v, strlen(v) + 1);
		memcpy(b[i].addr, a, strlen(a) + 1);
		b[i].in_flight = (uint64_t)json_integer_value(fl);
	}
	json_decref(j);
	*out = b;
	*n = cnt;
	return 0;
}

static void on_metrics(void *arg, const struct fetch_result *res)
{
	struct proxy_router *r = arg;
	r->metrics_id = 0;
	json_t *m = res->ok && res->status == 200 ? json_loadb(res->body, res->body_len, 0, NULL) : NULL;
	if (!m) {
		uint64_t now = now_ms(r);
		if (now - r->metrics_err_log > 5000) {
			log_warn("metrics: %s", res->ok ? "the proxy answered no JSON snapshot" : res->error);
			r->metrics_err_log = now;
		}
		return;
	}
	json_decref(r->metrics);
	r->metrics = m;
	r->metrics_at = r->metrics_asked;
}


static const json_t *proxy_latest_metrics(router *base, uint64_t *at)
{
	struct proxy_router *r = (struct proxy_router *)base;
	if (r->fetch && !r->metrics_id) {
		char url[256];
		snprintf(url, sizeof(url), "%s://%s/v1/metrics", r->scheme, r->admin);
		const char *hdrs[] = {r->auth[0] ? r->auth : NULL, NULL};
		struct fetch_req q = {.url = url, .timeout_ms = 5000, .max_response = 256u << 20,
				      .headers = hdrs, .cacert = r->ca[0] ? r->ca : NULL};
		r->metrics_asked = now_ms(r);
		r->metrics_id = fetch_start(r->fetch, &q, on_metrics, r);
	}
	*at = r->metrics_at;
	return r->metrics;
}

static void proxy_stop(router *base)
{
	struct proxy_router *r = (struct proxy_router *)base;
	if (r->fetch)
		watch_stop(r); /* its exit is wanted now */
	if (!r->exe[0]) { /* router_proxy_remote: its runner stops it */
		json_object_clear(r->sent);
		return;
	}
	char pidp[4200];
	snprintf(pidp, sizeof(pidp), "%s/proxy.pid", r->dir);
	FILE *f = fopen(pidp, "r");
	int pid = 0;
	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	if (pid > 1 && alive(r)) {
		kill(pid, SIGTERM);
		for (int i = 0; i < 100 && kill(pid, 0) == 0; i++)
			usleep(50000);
		if (kill(pid, 0) == 0)
			kill(pid, SIGKILL);
	}
	unlink(pidp);
	json_object_clear(r->sent);
}

static const struct router_ops proxy_ops = {
	.kind = "proxy",
	.free = proxy_free,
	.use_fetcher = proxy_use_fetcher,
	.generation = proxy_generation,
	.ensure = proxy_ensure,
	.route_endpoint = proxy_route_endpoint,
	.put_route = proxy_put_route,
	.delete_route = proxy_delete_route,
	.route_state = proxy_route_state,
	.latest_metrics = proxy_latest_metrics,
	.stop = proxy_stop,
};

router *router_proxy_remote(const char *admin, const char *token, const char *ca)
{
	router *base = router_proxy_new(admin, "", "", token);
	struct proxy_router *r = (struct proxy_router *)base;
	if (!r || !ca || !*ca)
		return base;
	if ((size_t)snprintf(r->ca, sizeof(r->ca), "%s", ca) >= sizeof(r->ca) || httpc_set_cacert(r->http, ca)) {
		router_free(base);
		return NULL;
	}
	r->scheme = "https";
	return base;
}

router *router_proxy_new(const char *admin, const char *exe, const char *dir, const char *token)
{
	if (token && (strlen(token) > SECRET_MAX || strcspn(token, " \t\r\n") != strlen(token)))
		return NULL;
	struct proxy_router *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->base.ops = &proxy_ops;
	r->scheme = "http";
	if ((size_t)snprintf(r->admin, sizeof(r->admin), "%s", admin) >= sizeof(r->admin) ||
	    (size_t)snprintf(r->exe, sizeof(r->exe), "%s", exe) >= sizeof(r->exe) ||
	    (size_t)snprintf(r->dir, sizeof(r->dir), "%s", dir) >= sizeof(r->dir)) {
		free(r);
		return NULL;
	}
	if (token && *token) {
		snprintf(r->auth, sizeof(r->auth), "Authorization: Bearer %s", token);
		snprintf(r->env_token, sizeof(r->env_token), "SLUICE_PROXY_TOKEN=%s", token);
	}
	r->pidfd = -1;
	r->http = httpc_new(2000, 64u << 20);
	r->sent = json_object();
	const char *hdrs[] = {r->auth, NULL};
	struct err he;
	if (r->http && r->auth[0] && httpc_set_headers(r->http, hdrs, &he)) {
		httpc_free(r->http);
		r->http = NULL;
	}
	if (!r->http || !r->sent) {
		httpc_free(r->http);
		json_decref(r->sent);
		free(r);
		return NULL;
	}
	return &r->base;
}
