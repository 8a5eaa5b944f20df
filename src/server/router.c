#include "server/router.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loop/fetch.h"
#include "loop/loop.h"
#include "util/httpc.h"

/* With a fetcher, the proxy's health is checked this often in the background. */
#define ROUTER_HEALTH_MS 1000

struct router {
	char admin[128];
	char exe[4096];
	char dir[4096];
	httpc *http;
	json_t *sent; /* route name -> last body PUT successfully */
	uint64_t last_start_ms;
	char identity[64];   /* "pid/started_ms" of the proxy process that answered last */
	uint64_t generation; /* router_generation */
	fetcher *fetch;      /* background reads (health, metrics); NULL: none */
	uint64_t health_id, health_at;
	int health_ok;       /* the last answer of the proxy's health, in the background */
	uint64_t metrics_id, metrics_asked; /* in flight, and the loop time it was requested */
	json_t *metrics;     /* the latest snapshot, or NULL */
	uint64_t metrics_at; /* the loop time its request went out: it holds at least that */
	uint64_t metrics_err_log;
};

router *router_new(const char *admin, const char *exe, const char *dir)
{
	router *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	snprintf(r->admin, sizeof(r->admin), "%s", admin);
	snprintf(r->exe, sizeof(r->exe), "%s", exe);
	snprintf(r->dir, sizeof(r->dir), "%s", dir);
	r->http = httpc_new(2000, 64u << 20);
	r->sent = json_object();
	return r;
}

void router_use_fetcher(router *r, fetcher *f)
{
	if (r->fetch) {
		fetch_cancel(r->fetch, r->health_id);
		fetch_cancel(r->fetch, r->metrics_id);
	}
	r->health_id = r->metrics_id = 0;
	r->fetch = f;
}

void router_free(router *r)
{
	if (!r)
		return;
	router_use_fetcher(r, NULL);
	httpc_free(r->http);
	json_decref(r->sent);
	json_decref(r->metrics);
	free(r);
}

uint64_t router_generation(const router *r)
{
	return r->generation;
}

static uint64_t now_ms(const router *r)
{
	return r->fetch ? loop_now(fetcher_loop(r->fetch)) : loop_clock_ms();
}

/* A health answer names the proxy process ({"pid", "started_ms"}). Another process than the
 * one that answered before has none of the routes this router sent: send them again. */
static void saw_proxy(router *r, const char *body)
{
	json_t *j = json_loads(body ? body : "", 0, NULL);
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
	router *r = arg;
	r->health_id = 0;
	r->health_at = now_ms(r);
	int ok = res->ok && res->status == 200;
	if (ok)
		saw_proxy(r, res->body);
	if (ok != r->health_ok)
		r->generation++; /* a pass will look (and restart the proxy when it is gone) */
	r->health_ok = ok;
}

static int alive(router *r)
{
	char url[256];
	snprintf(url, sizeof(url), "http://%s/healthz", r->admin);
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

static int spawn_proxy(router *r, struct err *e)
{
	char conf[4200], logp[4200], pidp[4200];
	snprintf(conf, sizeof(conf), "%s/proxy.json", r->dir);
	snprintf(logp, sizeof(logp), "%s/proxy.log", r->dir);
	snprintf(pidp, sizeof(pidp), "%s/proxy.pid", r->dir);
	FILE *f = fopen(conf, "w");
	if (!f)
		return err_set(e, "could not write '%s': %s", conf, strerror(errno));
	fprintf(f, "{\"admin\": \"%s\", \"routes\": []}\n", r->admin);
	fclose(f);
	pid_t pid = fork();
	if (pid < 0)
		return err_set(e, "fork: %s", strerror(errno));
	if (pid == 0) {
		/* double fork: the proxy is not our child, and lives in its own session */
		if (fork() != 0)
			_exit(0);
		setsid();
		int null = open("/dev/null", O_RDONLY);
		int log = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (null >= 0)
			dup2(null, 0);
		if (log >= 0) {
			dup2(log, 1);
			dup2(log, 2);
		}
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
		FILE *p = fopen(pidp, "w");
		if (p) {
			fprintf(p, "%d\n", getpid());
			fclose(p);
		}
		execl(r->exe, r->exe, "proxy", "--config", conf, "--admin", r->admin, (char *)NULL);
		_exit(127);
	}
	waitpid(pid, NULL, 0);
	return 0;
}

int router_ensure(router *r, struct err *e)
{
	if (r->fetch) {
		uint64_t now = now_ms(r);
		if (!r->health_id && now - r->health_at >= ROUTER_HEALTH_MS) {
			char url[256];
			snprintf(url, sizeof(url), "http://%s/healthz", r->admin);
			struct fetch_req q = {.url = url, .timeout_ms = 2000, .max_response = 4096};
			r->health_id = fetch_start(r->fetch, &q, on_health, r);
		}
		if (r->health_ok)
			return 0;
	}
	if (alive(r)) {
		r->health_ok = 1;
		r->health_at = now_ms(r);
		return 0;
	}
	r->health_ok = 0;
	uint64_t now = loop_clock_ms();
	if (now - r->last_start_ms > 2000 || !r->last_start_ms) {
		r->last_start_ms = now;
		json_object_clear(r->sent);
		if (spawn_proxy(r, e))
			return -1;
		for (int i = 0; i < 50; i++) {
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

int router_put_route(router *r, const char *name, const json_t *route, struct err *e)
{
	json_t *last = json_object_get(r->sent, name);
	if (last && json_equal(last, (json_t *)route))
		return 0;
	char url[512];
	snprintf(url, sizeof(url), "http://%s/v1/routes/%s", r->admin, name);
	long status = 0;
	json_t *out = NULL;
	if (httpc_json(r->http, "PUT", url, route, &status, &out, e))
		return -1;
	if (status != 200) {
		const char *msg = json_string_value(json_object_get(out, "error"));
		int rc = err_set(e, "proxy refused route %s (%ld): %s", name, status, msg ? msg : "?");
		json_decref(out);
		return rc;
	}
	json_decref(out);
	json_object_set_new(r->sent, name, json_deep_copy(route));
	return 0;
}

int router_delete_route(router *r, const char *name, struct err *e)
{
	json_t *last = json_object_get(r->sent, name);
	if (last && json_is_null(last))
		return 0; /* already deleted by us */
	char url[512];
	snprintf(url, sizeof(url), "http://%s/v1/routes/%s", r->admin, name);
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

int router_get_route(router *r, const char *name, json_t **out, struct err *e)
{
	char url[512];
	snprintf(url, sizeof(url), "http://%s/v1/routes/%s", r->admin, name);
	long status = 0;
	*out = NULL;
	if (httpc_json(r->http, "GET", url, NULL, &status, out, e))
		return -1;
	if (status != 200 || !*out) {
		json_decref(*out);
		*out = NULL;
		return err_set(e, "proxy: GET route %s answered %ld", name, status);
	}
	return 0;
}

static void on_metrics(void *arg, const struct fetch_result *res)
{
	router *r = arg;
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

const json_t *router_latest_metrics(router *r, uint64_t *at)
{
	if (r->fetch && !r->metrics_id) {
		char url[256];
		snprintf(url, sizeof(url), "http://%s/v1/metrics", r->admin);
		struct fetch_req q = {.url = url, .timeout_ms = 5000, .max_response = 256u << 20};
		r->metrics_asked = now_ms(r);
		r->metrics_id = fetch_start(r->fetch, &q, on_metrics, r);
	}
	*at = r->metrics_at;
	return r->metrics;
}

void router_stop(router *r)
{
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
