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

#include "loop/loop.h"
#include "util/httpc.h"

struct router {
	char admin[128];
	char exe[4096];
	char dir[4096];
	httpc *http;
	json_t *sent; /* route name -> last body PUT successfully */
	uint64_t last_start_ms;
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

void router_free(router *r)
{
	if (!r)
		return;
	httpc_free(r->http);
	json_decref(r->sent);
	free(r);
}

static int alive(router *r)
{
	char url[256];
	snprintf(url, sizeof(url), "http://%s/healthz", r->admin);
	long status = 0;
	struct buf b;
	buf_init(&b, 4096);
	int rc = httpc_request(r->http, "GET", url, NULL, 0, NULL, &status, &b, NULL);
	buf_release(&b);
	return rc == 0 && status == 200;
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
	if (alive(r))
		return 0;
	uint64_t now = loop_clock_ms();
	if (now - r->last_start_ms > 2000 || !r->last_start_ms) {
		r->last_start_ms = now;
		json_object_clear(r->sent);
		if (spawn_proxy(r, e))
			return -1;
		for (int i = 0; i < 50; i++) {
			usleep(20000);
			if (alive(r))
				return 0;
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

int router_metrics(router *r, json_t **out, struct err *e)
{
	char url[256];
	snprintf(url, sizeof(url), "http://%s/v1/metrics", r->admin);
	long status = 0;
	*out = NULL;
	if (httpc_json(r->http, "GET", url, NULL, &status, out, e))
		return -1;
	if (status != 200 || !*out) {
		json_decref(*out);
		*out = NULL;
		return err_set(e, "proxy: GET metrics answered %ld", status);
	}
	return 0;
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
