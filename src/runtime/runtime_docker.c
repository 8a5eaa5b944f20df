/*
 * runtime_docker: instances as containers on Docker hosts, through the Engine API (see
 * runtime_docker.h for the model and docs/runtime.md for the behaviour in prose).
 *
 * Each instance moves through the engine with at most one request of its own in flight
 * (in->op): create, start, rename, stop, logs, remove, inspect. What to do next is decided by
 * step() from the instance's flags alone (has a container, is running, is wanted), so a lost
 * or failed request is simply decided again on a later tick. Health checks are a second
 * request per instance (in->hc), and each host has one poll request that lists its containers
 * to see exits.
 */
#include "runtime/runtime_docker.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/name.h"

#define PORT_LO 20000
#define PORT_HI 26999
#define MAX_INSTANCES 4096
#define MAX_COUNT 1000
#define MAX_ARGS 256
#define MAX_STR 4096
#define RESP_MAX (4u << 20)          /* any engine answer we read */
#define LOG_KEEP_MAX (64u << 10)     /* the output kept of a stopped instance */
#define KEPT_LOGS 64
#define LOG_TAIL_LINES 2000
#define SYNC_TIMEOUT_MS 5000
#define LOAD_TIMEOUT_MS 120000
#define CONNECT_TIMEOUT_MS 2000
#define POLL_MS 500                  /* each host's container list: how exits are seen */
#define HOST_LOST_POLLS 3            /* polls without an answer before its instances count as lost */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define BACKOFF_RESET_MS 60000
#define HEALTH_FAILS 3
#define STARTING_RETRY_MS 100
#define OWNER_LABEL "io.sluice.owner"

enum op { OP_NONE, OP_CREATE, OP_START, OP_INSPECT, OP_RENAME, OP_STOP, OP_LOGS, OP_REMOVE, OP_HEALTH, OP_POLL };

struct req {
	CURL *h;
	enum op kind;
	struct inst *in;      /* NULL for a host's poll */
	int host;
	struct curl_slist *hdrs;
	struct buf resp;
	char errbuf[CURL_ERROR_SIZE];
	uint64_t started;
};

struct spec_copy {
	char *image, *command, *health_path;
	char *health_ca; /* NULL: plain HTTP */
	char **args, **env;
	unsigned health_interval_ms, health_timeout_ms, drain_timeout_ms;
};

struct inst {
	struct inst *next;
	char id[RUNTIME_ID_MAX], service[RUNTIME_NAME_MAX], env[RUNTIME_NAME_MAX], region[RUNTIME_NAME_MAX],
		version[RUNTIME_NAME_MAX];
	char name[RUNTIME_ID_MAX + 64]; /* the container's name */
	int index, host, port;
	struct spec_copy spec;
	char run_image[512];             /* the image its container is made from (an archive's loaded ref) */

	char cid[65];
	bool running;                    /* its container was started and no exit has been seen */
	bool want_running, renamed, log_taken, restart_after_stop, gone;
	uint64_t created_at, started_at; /* when create / start answered (poll races) */
	enum instance_state state;
	unsigned restarts;
	unsigned failed_starts; /* see struct instance_info */
	char reason[128];
	uint64_t next_start, backoff_ms, healthy_since;

	struct req op, hc;
	uint64_t hc_next;
	unsigned hc_fails;
};

struct host {
	char *url;       /* as configured */
	char *sock;      /* unix socket path, or NULL */
	char *base;      /* "http://docker" or "https://HOST:PORT" */
	char *addr;      /* endpoint host of its containers */
	struct req poll;
	uint64_t next_poll;
	unsigned fails;  /* polls in a row that got no answer */
	bool down;
	char down_why[128];
};

struct kept {
	char id[RUNTIME_ID_MAX], service[RUNTIME_NAME_MAX], env[RUNTIME_NAME_MAX], region[RUNTIME_NAME_MAX];
	char *text;
	size_t len;
	uint64_t seq;
};

struct loaded { /* an image archive loaded on a host */
	char *path;
	long long size, mtime;
	int host;
	char ref[512];
};

struct docker {
	json_t *settings;
	struct host hosts[RUNTIME_DOCKER_HOSTS_MAX];
	int nhosts;
	char *tls_ca, *tls_cert, *tls_key;
	int port_lo, port_hi;
	char *proxy_image; /* the `proxy_image` setting: the region's router */
	char *proxy_tls[3]; /* the `proxy_tls` setting: cert, key, ca paths (NULL: none) */
	unsigned port_cursor;
	char owner[17];
	CURLM *multi;
	struct inst *list;
	size_t count;
	uint64_t generation, now;
	struct kept kept[KEPT_LOGS];
	uint64_t kept_seq;
	struct loaded *loaded;
	size_t nloaded;
};

/* ---- small helpers ---- */

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void set_reason(struct inst *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_reason(struct inst *in, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(in->reason, sizeof in->reason, fmt, ap);
	va_end(ap);
}

static bool match(const char *filter, const char *v)
{
	return !filter || strcmp(filter, v) == 0;
}

static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static bool valid_names(const char *service, const char *env, const char *region, const char *version)
{
	return service && env && region && version && name_object_ok(service) && name_object_ok(env) &&
	       name_object_ok(region) && name_label_ok(version) && strlen(version) < RUNTIME_NAME_MAX;
}

/* An image reference as the Engine API takes it in a path: no spaces, no query characters. */
static bool image_ref_ok(const char *s)
{
	size_t n = strlen(s);
	if (!n || n >= 256 || s[0] == '/' || s[0] == '-')
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      strchr("._-/:@", *s)))
			return false;
	return true;
}

/* The container's name: Docker allows [a-zA-Z0-9][a-zA-Z0-9_.-]*. An id with any other
 * character (a version label's '~' or '+') gets them as '_' and a hash of the real id, so two
 * ids never share a name. */
static void container_name(const struct docker *d, const char *id, char *out, size_t n)
{
	size_t k = (size_t)snprintf(out, n, "sluice-%s-", d->owner);
	bool changed = false;
	for (const char *p = id; *p && k + 1 < n; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '.' || c == '-')) {
			c = '_';
			changed = true;
		}
		out[k++] = c;
	}
	out[k] = 0;
	if (changed && k + 10 < n)
		snprintf(out + k, n - k, "-%08x", (unsigned)fnv(id));
}

/* ---- spec copies ---- */

static void strv_free(char **v)
{
	if (v)
		for (char **p = v; *p; p++)
			free(*p);
	free(v);
}

static void spec_free(struct spec_copy *s)
{
	free(s->image);
	free(s->command);
	free(s->health_path);
	free(s->health_ca);
	strv_free(s->args);
	strv_free(s->env);
	memset(s, 0, sizeof *s);
}

static char **strv_dup(const char *const *v, struct err *e, const char *what)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	if (n > MAX_ARGS) {
		err_set(e, "more than %d %s", MAX_ARGS, what);
		return NULL;
	}
	char **o = calloc(n + 1, sizeof *o);
	for (size_t i = 0; o && i < n; i++)
		if (strlen(v[i]) >= MAX_STR || !(o[i] = strdup(v[i]))) {
			strv_free(o);
			err_set(e, "%s: a value is too long or memory is exhausted", what);
			return NULL;
		}
	if (!o)
		err_set(e, "out of memory");
	return o;
}

static int spec_copy_from(struct spec_copy *s, const struct instance_spec *in, struct err *e)
{
	memset(s, 0, sizeof *s);
	const char *hp = in->health_path && *in->health_path ? in->health_path : "/healthz";
	s->health_interval_ms = in->health_interval_ms ? in->health_interval_ms : 1000;
	s->health_timeout_ms = in->health_timeout_ms ? in->health_timeout_ms : 1000;
	s->drain_timeout_ms = in->drain_timeout_ms ? in->drain_timeout_ms : 10000;
	if (!(s->image = strdup(in->artifact ? in->artifact : "")) ||
	    !(s->command = strdup(in->command ? in->command : "")) || !(s->health_path = strdup(hp)) ||
	    !(s->args = strv_dup(in->args, e, "args")) || !(s->env = strv_dup(in->env_vars, e, "env vars")) ||
	    (in->health_ca && *in->health_ca && !(s->health_ca = strdup(in->health_ca)))) {
		spec_free(s);
		return e && e->msg[0] ? -1 : err_set(e, "out of memory");
	}
	return 0;
}

static json_t *strv_json(char **v)
{
	json_t *a = json_array();
	for (char **p = v; a && *p; p++)
		json_array_append_new(a, json_string(*p));
	return a;
}

static json_t *spec_json(const struct spec_copy *s)
{
	json_t *j = json_pack("{s:s, s:s, s:s, s:o, s:o, s:I, s:I, s:I}", "image", s->image, "command", s->command,
			 "health_path", s->health_path, "args", strv_json(s->args), "env", strv_json(s->env),
			 "health_interval_ms", (json_int_t)s->health_interval_ms, "health_timeout_ms",
			 (json_int_t)s->health_timeout_ms, "drain_timeout_ms", (json_int_t)s->drain_timeout_ms);
	if (j && s->health_ca && json_object_set_new(j, "health_ca", json_string(s->health_ca))) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static const char **json_strv(const json_t *a)
{
	size_t n = json_array_size(a);
	const char **v = calloc(n + 1, sizeof *v);
	for (size_t i = 0; v && i < n; i++)
		if (!(v[i] = json_string_value(json_array_get(a, i)))) {
			free(v);
			return NULL;
		}
	return v;
}

/* The spec a container was made from, from its label. */
static int spec_from_label(struct spec_copy *s, const char *label, struct err *e)
{
	json_error_t je;
	json_t *j = label ? json_loads(label, 0, &je) : NULL;
	if (!j)
		return err_set(e, "its spec label does not parse");
	const char **args = json_strv(json_object_get(j, "args")), **env = json_strv(json_object_get(j, "env"));
	struct instance_spec in = {
		.artifact = json_string_value(json_object_get(j, "image")),
		.command = json_string_value(json_object_get(j, "command")),
		.health_path = json_string_value(json_object_get(j, "health_path")),
		.health_ca = json_string_value(json_object_get(j, "health_ca")),
		.args = args, .env_vars = env,
		.health_interval_ms = (unsigned)json_integer_value(json_object_get(j, "health_interval_ms")),
		.health_timeout_ms = (unsigned)json_integer_value(json_object_get(j, "health_timeout_ms")),
		.drain_timeout_ms = (unsigned)json_integer_value(json_object_get(j, "drain_timeout_ms")),
	};
	int rc = args && env && in.artifact ? spec_copy_from(s, &in, e) : err_set(e, "its spec label is incomplete");
	free(args);
	free(env);
	json_decref(j);
	return rc;
}

static bool spec_equal(const struct spec_copy *a, const struct spec_copy *b)
{
	json_t *x = spec_json(a), *y = spec_json(b);
	bool eq = x && y && json_equal(x, y);
	json_decref(x);
	json_decref(y);
	return eq;
}

/* ---- requests ---- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct buf *b = ud;
	return buf_add(b, p, size * n) ? 0 : size * n;
}

/* A configured easy handle for METHOD PATH on host h (an engine call), or for a plain URL
 * (a health check) when h is NULL. */
static CURL *easy_new(struct docker *d, struct req *r, const struct host *h, const char *method, const char *path,
		      const char *body, long timeout_ms)
{
	CURL *c = curl_easy_init();
	if (!c)
		return NULL;
	char url[MAX_STR + 512];
	if (h)
		snprintf(url, sizeof url, "%s/" RUNTIME_DOCKER_API "%s", h->base, path);
	else
		snprintf(url, sizeof url, "%s", path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->resp);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(c, CURLOPT_PRIVATE, r);
	r->errbuf[0] = 0;
	if (h && h->sock)
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, h->sock);
	if (!h && r->in && r->in->spec.health_ca) /* a health check over TLS */
		curl_easy_setopt(c, CURLOPT_CAINFO, r->in->spec.health_ca);
	if (h && !h->sock) {
		curl_easy_setopt(c, CURLOPT_CAINFO, d->tls_ca);
		curl_easy_setopt(c, CURLOPT_SSLCERT, d->tls_cert);
		curl_easy_setopt(c, CURLOPT_SSLKEY, d->tls_key);
	}
	if (!strcmp(method, "POST")) {
		r->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->hdrs);
		curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS, body ? body : "");
	} else if (strcmp(method, "GET")) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	}
	return c;
}

static void req_end(struct docker *d, struct req *r)
{
	if (r->h) {
		curl_multi_remove_handle(d->multi, r->h);
		curl_easy_cleanup(r->h);
	}
	curl_slist_free_all(r->hdrs);
	buf_release(&r->resp);
	r->h = NULL;
	r->hdrs = NULL;
	r->kind = OP_NONE;
}

static void req_start(struct docker *d, struct req *r, enum op kind, struct inst *in, int host, const char *method,
		      const char *path, const char *body, long timeout_ms)
{
	buf_init(&r->resp, RESP_MAX);
	r->kind = kind;
	r->in = in;
	r->host = host;
	r->started = d->now;
	r->h = easy_new(d, r, host >= 0 ? &d->hosts[host] : NULL, method, path, body, timeout_ms);
	if (r->h && curl_multi_add_handle(d->multi, r->h) == CURLM_OK)
		return;
	if (r->h)
		curl_easy_cleanup(r->h);
	r->h = NULL; /* done_* sees "could not start the request" */
	snprintf(r->errbuf, sizeof r->errbuf, "could not start a request");
}

/* The engine's {"message": "..."} of an error answer, or curl's error. */
static void req_why(const struct req *r, CURLcode cc, long code, char *out, size_t n)
{
	if (cc != CURLE_OK || !r->h) {
		snprintf(out, n, "%.150s", r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc));
		return;
	}
	json_t *j = json_loadb(r->resp.data, r->resp.len, 0, NULL);
	const char *m = json_string_value(json_object_get(j, "message"));
	if (m)
		snprintf(out, n, "%s", m);
	else
		snprintf(out, n, "status %ld", code);
	json_decref(j);
}

/* A blocking request (open, ensure's checks, logs). Returns the HTTP status, or -1 with e. */
static long sync_req(struct docker *d, int host, const char *method, const char *path, const char *body,
		     struct buf *resp, long timeout_ms, struct err *e)
{
	struct req r = {0};
	r.resp = *resp;
	CURL *c = easy_new(d, &r, &d->hosts[host], method, path, body, timeout_ms);
	if (!c)
		return err_set(e, "out of memory");
	CURLcode cc = curl_easy_perform(c);
	long code = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	*resp = r.resp;
	curl_easy_cleanup(c);
	curl_slist_free_all(r.hdrs);
	if (cc != CURLE_OK)
		return err_set(e, "docker host %s: %s", d->hosts[host].url, r.errbuf[0] ? r.errbuf : curl_easy_strerror(cc));
	return code;
}

/* ---- ports ---- */

static bool port_free_here(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
	close(fd);
	return ok;
}

static bool port_known(const struct docker *d, int host, int port, const struct inst *except)
{
	for (const struct inst *i = d->list; i; i = i->next)
		if (i != except && !i->gone && i->port == port &&
		    (i->host == host || !strcmp(d->hosts[i->host].addr, d->hosts[host].addr)))
			return true;
	return false;
}

/* A port no instance of ours on that host uses; on a unix:// host (this machine) also one that
 * nothing else listens on now. Hosts reached over TCP cannot be probed from here: a port taken
 * there shows as an instance that exits before it is healthy, and is then given another. */
static int port_alloc(struct docker *d, const struct inst *in)
{
	unsigned span = (unsigned)(d->port_hi - d->port_lo + 1);
	for (unsigned k = 0; k < span; k++) {
		int port = d->port_lo + (int)(d->port_cursor++ % span);
		if (!port_known(d, in->host, port, in) && (!d->hosts[in->host].sock || port_free_here(port)))
			return port;
	}
	return -1;
}

/* ---- instances ---- */

static struct inst *inst_new(struct docker *d)
{
	if (d->count >= MAX_INSTANCES)
		return NULL;
	struct inst *in = calloc(1, sizeof *in);
	if (!in)
		return NULL;
	in->backoff_ms = BACKOFF_MIN_MS;
	in->next = d->list;
	d->list = in;
	d->count++;
	return in;
}

static void inst_free(struct docker *d, struct inst *in)
{
	req_end(d, &in->op);
	req_end(d, &in->hc);
	spec_free(&in->spec);
	free(in);
}

static void set_names(struct docker *d, struct inst *in, const char *service, const char *env, const char *region,
		      const char *version, int index)
{
	snprintf(in->service, sizeof in->service, "%s", service);
	snprintf(in->env, sizeof in->env, "%s", env);
	snprintf(in->region, sizeof in->region, "%s", region);
	snprintf(in->version, sizeof in->version, "%s", version);
	in->index = index;
	snprintf(in->id, sizeof in->id, "%s.%s.%s.%s.%d", service, env, region, version, index);
	container_name(d, in->id, in->name, sizeof in->name);
}

static void backoff_schedule(struct docker *d, struct inst *in)
{
	d->generation++;
	in->state = INSTANCE_BACKOFF;
	in->running = false;
	in->next_start = d->now + in->backoff_ms;
	in->backoff_ms = in->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : in->backoff_ms * 2;
}

static void fail_start(struct docker *d, struct inst *in, const char *what, const char *why)
{
	set_reason(in, "%s on %s: %s; retrying in %llu ms", what, d->hosts[in->host].url, why,
		   (unsigned long long)in->backoff_ms);
	backoff_schedule(d, in);
}

/* Substitutes {port}, {host} (the address of the instance's host, where it serves), {artifact},
 * {service}, {version}, {env}, {region}, {index}. */
static int subst(const struct inst *in, const char *host, const char *t, struct buf *b)
{
	char port[16], index[16];
	snprintf(port, sizeof port, "%d", in->port);
	snprintf(index, sizeof index, "%d", in->index);
	const struct {
		const char *name, *value;
	} vars[] = {{"{port}", port},		 {"{host}", host},	      {"{artifact}", in->run_image},
		    {"{service}", in->service}, {"{version}", in->version}, {"{env}", in->env},
		    {"{region}", in->region},   {"{index}", index}};
	while (*t) {
		size_t k, n = sizeof vars / sizeof *vars;
		for (k = 0; k < n; k++)
			if (!strncmp(t, vars[k].name, strlen(vars[k].name)))
				break;
		if (k < n ? buf_adds(b, vars[k].value) : buf_add(b, t, 1))
			return -1;
		t += k < n ? strlen(vars[k].name) : 1;
	}
	return 0;
}

static json_t *subst_json(const struct docker *d, const struct inst *in, const char *t)
{
	struct buf b;
	buf_init(&b, MAX_STR);
	json_t *s = subst(in, d->hosts[in->host].addr, t, &b) ? NULL : json_stringn(b.data, b.len);
	buf_release(&b);
	return s;
}

/* o as a JSON string of its text; takes o. */
static json_t *dumped(json_t *o)
{
	char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_t *s = t ? json_string(t) : NULL;
	free(t);
	json_decref(o);
	return s;
}

/* The body of POST /containers/create. The command "{artifact}" (or none) runs the image's
 * own entrypoint with args; any other command becomes the entrypoint. */
static char *create_body(struct docker *d, struct inst *in)
{
	json_t *env = json_array(), *cmd = json_array(), *labels = json_object();
	char v[64];
	snprintf(v, sizeof v, "PORT=%d", in->port);
	json_array_append_new(env, json_string(v));
	json_t *si = json_sprintf("SLUICE_INSTANCE=%s", in->id);
	json_array_append_new(env, si);
	for (char **p = in->spec.env; *p; p++)
		json_array_append_new(env, subst_json(d, in, *p));
	for (char **p = in->spec.args; *p; p++)
		json_array_append_new(cmd, subst_json(d, in, *p));
	char idx[16], port[16];
	snprintf(idx, sizeof idx, "%d", in->index);
	snprintf(port, sizeof port, "%d", in->port);
	json_object_set_new(labels, OWNER_LABEL, json_string(d->owner));
	json_object_set_new(labels, "io.sluice.id", json_string(in->id));
	json_object_set_new(labels, "io.sluice.service", json_string(in->service));
	json_object_set_new(labels, "io.sluice.env", json_string(in->env));
	json_object_set_new(labels, "io.sluice.region", json_string(in->region));
	json_object_set_new(labels, "io.sluice.version", json_string(in->version));
	json_object_set_new(labels, "io.sluice.index", json_string(idx));
	json_object_set_new(labels, "io.sluice.port", json_string(port));
	json_object_set_new(labels, "io.sluice.spec", dumped(spec_json(&in->spec)));
	json_t *body = json_pack("{s:s, s:o, s:o, s:s, s:i, s:{s:s, s:b}}", "Image", in->run_image, "Env", env,
				 "Labels", labels, "StopSignal", "SIGTERM", "StopTimeout",
				 (int)((in->spec.drain_timeout_ms + 999) / 1000), "HostConfig", "NetworkMode", "host",
				 "Init", 1);
	if (body && json_array_size(cmd))
		json_object_set(body, "Cmd", cmd);
	if (body && *in->spec.command && strcmp(in->spec.command, "{artifact}")) {
		json_t *ep = json_array();
		json_array_append_new(ep, subst_json(d, in, in->spec.command));
		json_object_set_new(body, "Entrypoint", ep);
	}
	json_decref(cmd);
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	return s;
}

/* ---- logs: the engine's stream format ---- */

/* The logs of a container without a TTY come in frames: 1 byte stream (0 stdin, 1 stdout,
 * 2 stderr), 3 zero bytes, a big-endian 32-bit length, then that many bytes. Appends the
 * payloads to out (keeping its newest `keep` bytes when keep > 0). Anything that is not a
 * frame is taken as raw text (a container with a TTY). */
static void demux(const unsigned char *p, size_t n, struct buf *out)
{
	while (n >= 8 && p[0] <= 2 && !p[1] && !p[2] && !p[3]) {
		size_t len = (size_t)p[4] << 24 | (size_t)p[5] << 16 | (size_t)p[6] << 8 | p[7];
		if (len > n - 8)
			len = n - 8;
		if (buf_add(out, p + 8, len))
			return;
		p += 8 + len;
		n -= 8 + len;
	}
	if (n && buf_add(out, p, n))
		return;
}

/* Appends the newest complete lines of b[0..len) that fit in budget, each prefixed. When
 * `cut` the text may start mid-line: its first line is dropped. */
static int emit_tail(const char *b, size_t len, bool cut, const char *prefix, size_t budget, struct buf *out)
{
	size_t start = 0;
	if (cut) {
		const char *nl = memchr(b, '\n', len);
		start = nl ? (size_t)(nl - b) + 1 : len;
	}
	size_t pre = strlen(prefix), used = 0, first = len, end = len;
	while (end > start) {
		size_t ls = end - 1;
		while (ls > start && b[ls - 1] != '\n')
			ls--;
		size_t cost = pre + (end - ls) + (b[end - 1] == '\n' ? 0 : 1);
		if (used + cost > budget)
			break;
		used += cost;
		first = ls;
		end = ls;
	}
	int rc = 0;
	for (size_t p = first; p < len && rc == 0;) {
		const char *nl = memchr(b + p, '\n', len - p);
		size_t l = nl ? (size_t)(nl - (b + p)) : len - p;
		rc = buf_addf(out, "%s%.*s\n", prefix, (int)l, b + p);
		p += l + 1;
	}
	return rc;
}

static void keep_log(struct docker *d, const struct inst *in, const struct buf *raw)
{
	struct buf text;
	buf_init(&text, BUF_NOLIMIT);
	demux((const unsigned char *)raw->data, raw->len, &text);
	struct kept *k = &d->kept[0];
	for (size_t i = 1; i < KEPT_LOGS; i++) /* a free slot, else the oldest */
		if (d->kept[i].seq < k->seq)
			k = &d->kept[i];
	free(k->text);
	size_t from = text.len > LOG_KEEP_MAX ? text.len - LOG_KEEP_MAX : 0;
	k->len = text.len - from;
	k->text = malloc(k->len + 1);
	if (k->text) {
		memcpy(k->text, text.data + from, k->len);
		k->text[k->len] = 0;
	} else {
		k->len = 0;
	}
	k->seq = ++d->kept_seq;
	snprintf(k->id, sizeof k->id, "%s", in->id);
	snprintf(k->service, sizeof k->service, "%s", in->service);
	snprintf(k->env, sizeof k->env, "%s", in->env);
	snprintf(k->region, sizeof k->region, "%s", in->region);
	buf_release(&text);
}

/* ---- the life of a container ---- */

static void hc_cancel(struct docker *d, struct inst *in)
{
	req_end(d, &in->hc);
}

static void finish_stopped(struct docker *d, struct inst *in)
{
	in->cid[0] = 0;
	in->running = false;
	in->renamed = in->log_taken = false;
	d->generation++;
	if (in->restart_after_stop) { /* ensure asked for it again while it stopped */
		in->restart_after_stop = false;
		in->want_running = true;
		in->state = INSTANCE_STARTING;
		in->reason[0] = 0;
		return;
	}
	in->gone = true;
	in->state = INSTANCE_STOPPED;
}

static void hc_done(struct docker *d, struct inst *in, bool ok, const char *why)
{
	uint64_t period = in->spec.health_interval_ms;
	if (in->state == INSTANCE_STARTING && period > STARTING_RETRY_MS)
		period = STARTING_RETRY_MS;
	in->hc_next = d->now + period;
	if (ok) {
		in->hc_fails = 0;
		if (in->state != INSTANCE_HEALTHY) {
			in->state = INSTANCE_HEALTHY;
			in->failed_starts = 0;
			in->healthy_since = d->now;
			in->reason[0] = 0;
			d->generation++;
		} else if (d->now - in->healthy_since >= BACKOFF_RESET_MS) {
			in->backoff_ms = BACKOFF_MIN_MS;
		}
		return;
	}
	in->hc_fails++;
	set_reason(in, "health check %s: %s", in->spec.health_path, why);
	if (in->state == INSTANCE_HEALTHY && in->hc_fails >= HEALTH_FAILS) {
		in->state = INSTANCE_UNHEALTHY;
		d->generation++;
	}
}

static void health_step(struct docker *d, struct inst *in)
{
	if (in->hc.kind != OP_NONE || d->now < in->hc_next)
		return;
	char url[MAX_STR + 512];
	snprintf(url, sizeof url, "%s://%s:%d%s", in->spec.health_ca ? "https" : "http", d->hosts[in->host].addr,
		 in->port, in->spec.health_path);
	req_start(d, &in->hc, OP_HEALTH, in, -1, "GET", url, NULL, (long)in->spec.health_timeout_ms);
	if (!in->hc.h) {
		req_end(d, &in->hc);
		hc_done(d, in, false, "could not start a request");
	}
}

/* What the instance needs next from the engine; at most one request at a time. */
static void step(struct docker *d, struct inst *in)
{
	if (in->gone || in->op.kind != OP_NONE || d->now < in->next_start)
		return;
	char path[1024];
	struct req *r = &in->op;
	if (!in->want_running) {
		hc_cancel(d, in);
		if (!in->cid[0])
			return finish_stopped(d, in);
		if (!in->renamed) {
			/* The name says "stopping" in the engine, so that a server restarted now
			 * finishes the stop instead of adopting the container as wanted. */
			snprintf(path, sizeof path, "/containers/%s/rename?name=%s-stopping", in->cid, in->name);
			req_start(d, r, OP_RENAME, in, in->host, "POST", path, NULL, SYNC_TIMEOUT_MS);
		} else if (in->running) {
			snprintf(path, sizeof path, "/containers/%s/stop?t=%u", in->cid,
				 (in->spec.drain_timeout_ms + 999) / 1000);
			req_start(d, r, OP_STOP, in, in->host, "POST", path, NULL,
				  (long)in->spec.drain_timeout_ms + 30000);
		} else if (!in->log_taken) {
			snprintf(path, sizeof path, "/containers/%s/logs?stdout=1&stderr=1&tail=%d", in->cid,
				 LOG_TAIL_LINES);
			req_start(d, r, OP_LOGS, in, in->host, "GET", path, NULL, SYNC_TIMEOUT_MS);
		} else {
			snprintf(path, sizeof path, "/containers/%s?force=1", in->cid);
			req_start(d, r, OP_REMOVE, in, in->host, "DELETE", path, NULL, SYNC_TIMEOUT_MS);
		}
	} else if (in->state == INSTANCE_BACKOFF) {
		in->state = INSTANCE_STARTING; /* its backoff is over */
		in->restarts++;
		in->failed_starts++;
		d->generation++;
		return;
	} else if (in->cid[0] && in->state == INSTANCE_STARTING && !in->running && in->started_at) {
		/* it ran and exited: a new container (with its port checked again) */
		snprintf(path, sizeof path, "/containers/%s?force=1", in->cid);
		req_start(d, r, OP_REMOVE, in, in->host, "DELETE", path, NULL, SYNC_TIMEOUT_MS);
	} else if (!in->cid[0]) {
		if (in->port <= 0 || port_known(d, in->host, in->port, in) ||
		    (d->hosts[in->host].sock && !port_free_here(in->port)))
			in->port = port_alloc(d, in);
		if (in->port < 0) {
			in->port = 0;
			return fail_start(d, in, "no free port", "every port of the range is in use");
		}
		char *body = create_body(d, in);
		if (!body)
			return fail_start(d, in, "create", "out of memory");
		snprintf(path, sizeof path, "/containers/create?name=%s", in->name);
		req_start(d, r, OP_CREATE, in, in->host, "POST", path, body, SYNC_TIMEOUT_MS);
		free(body);
	} else if (!in->running) {
		snprintf(path, sizeof path, "/containers/%s/start", in->cid);
		req_start(d, r, OP_START, in, in->host, "POST", path, NULL, SYNC_TIMEOUT_MS);
	} else {
		health_step(d, in);
		return;
	}
	if (r->kind != OP_NONE && !r->h) { /* could not even start it: later */
		req_end(d, r);
		in->next_start = d->now + 1000;
	}
}

/* The engine answered one of an instance's requests. */
static void op_done(struct docker *d, struct inst *in, enum op kind, CURLcode cc, long code, const struct buf *resp,
		    const char *why)
{
	bool ok = cc == CURLE_OK && code >= 200 && code < 300;
	bool transport = cc != CURLE_OK;
	switch (kind) {
	case OP_CREATE: {
		if (ok) {
			json_t *j = json_loadb(resp->data, resp->len, 0, NULL);
			const char *id = json_string_value(json_object_get(j, "Id"));
			if (id && strlen(id) < sizeof in->cid) {
				snprintf(in->cid, sizeof in->cid, "%s", id);
				in->created_at = d->now;
				in->started_at = 0;
			} else {
				fail_start(d, in, "create", "the engine's answer has no container id");
			}
			json_decref(j);
		} else if (code == 409 && !transport) {
			/* a container of that name exists (created by a server that died before
			 * it knew): adopt it rather than make a twin */
			char path[1024];
			snprintf(path, sizeof path, "/containers/%s/json", in->name);
			req_start(d, &in->op, OP_INSPECT, in, in->host, "GET", path, NULL, SYNC_TIMEOUT_MS);
			if (!in->op.h)
				req_end(d, &in->op);
		} else if (code == 404 && !transport) {
			char w[256];
			snprintf(w, sizeof w, "image '%.80s' is missing (%.100s)", in->run_image, why);
			fail_start(d, in, "create", w);
		} else {
			fail_start(d, in, "create", why);
		}
		break;
	}
	case OP_INSPECT: {
		if (ok) {
			json_t *j = json_loadb(resp->data, resp->len, 0, NULL);
			const char *id = json_string_value(json_object_get(j, "Id"));
			const char *port = json_string_value(
				json_object_get(json_object_get(json_object_get(j, "Config"), "Labels"), "io.sluice.port"));
			if (id && strlen(id) < sizeof in->cid) {
				snprintf(in->cid, sizeof in->cid, "%s", id);
				in->running = json_is_true(json_object_get(json_object_get(j, "State"), "Running"));
				in->created_at = in->started_at = d->now;
				if (port)
					in->port = atoi(port);
				in->hc_next = d->now;
				log_info("runtime docker: adopted container %.12s of %s on %s", id, in->id,
					 d->hosts[in->host].url);
			}
			json_decref(j);
		} else if (code != 404) {
			fail_start(d, in, "inspect", why);
		}
		break;
	}
	case OP_START:
		if (ok || code == 304) {
			in->running = true;
			in->started_at = d->now;
			in->hc_next = d->now;
			in->hc_fails = 0;
		} else {
			if (code == 404)
				in->cid[0] = 0;
			else
				in->started_at = d->now; /* removed and made again after the backoff */
			fail_start(d, in, "start", why);
		}
		break;
	case OP_RENAME:
		if (ok || code == 409)
			in->renamed = true;
		else if (code == 404)
			in->cid[0] = 0;
		else
			in->next_start = d->now + 1000;
		break;
	case OP_STOP:
		if (ok || code == 304)
			in->running = false;
		else if (code == 404)
			in->cid[0] = 0;
		else
			in->next_start = d->now + 1000;
		break;
	case OP_LOGS:
		if (ok)
			keep_log(d, in, resp);
		if (code == 404)
			in->cid[0] = 0;
		in->log_taken = true; /* the logs never hold up a stop */
		break;
	case OP_REMOVE:
		if (ok || code == 404) {
			in->cid[0] = 0;
			in->running = false;
			in->started_at = 0;
		} else {
			in->next_start = d->now + 1000;
		}
		break;
	default:
		break;
	}
}

/* A host's list of our containers: exits and vanished containers are seen here. */
static void poll_done(struct docker *d, int h, CURLcode cc, long code, const struct buf *resp, uint64_t asked,
		      const char *why)
{
	struct host *host = &d->hosts[h];
	json_t *list = cc == CURLE_OK && code == 200 ? json_loadb(resp->data, resp->len, 0, NULL) : NULL;
	if (!json_is_array(list)) {
		if (!host->down)
			log_warn("runtime docker: host %s: %s", host->url, why);
		host->down = true;
		snprintf(host->down_why, sizeof host->down_why, "%.120s", why);
		/* A host that stays silent has lost its instances as far as anyone can tell: they go
		 * to backoff like a crash (the region's control plane sees them fail and restart
		 * without success, and fails the region), and are made again once it answers (a
		 * create that meets the old container adopts it: never a duplicate). */
		bool lost = ++host->fails >= HOST_LOST_POLLS;
		for (struct inst *in = d->list; in; in = in->next) {
			if (in->host != h || !in->want_running || !in->running)
				continue;
			if (!lost || in->op.kind != OP_NONE) {
				set_reason(in, "docker host %s: %s", host->url, why);
				continue;
			}
			hc_cancel(d, in);
			set_reason(in, "docker host %s does not answer (%.60s); restarting in %llu ms", host->url, why,
				   (unsigned long long)in->backoff_ms);
			backoff_schedule(d, in);
		}
		json_decref(list);
		return;
	}
	host->fails = 0;
	host->down = false;
	for (struct inst *in = d->list; in; in = in->next) {
		if (in->host != h || in->gone || !in->cid[0] || !in->running || in->op.kind != OP_NONE ||
		    in->started_at >= asked)
			continue;
		json_t *c = NULL, *v;
		size_t i;
		json_array_foreach(list, i, v)
			if (!strcmp(json_string_value(json_object_get(v, "Id")) ?: "", in->cid))
				c = v;
		const char *st = json_string_value(json_object_get(c, "State"));
		if (c && st && !strcmp(st, "running"))
			continue;
		in->running = false;
		hc_cancel(d, in);
		if (!in->want_running) {
			d->generation++;
			continue;
		}
		bool never = in->state == INSTANCE_STARTING;
		int status = -1;
		const char *s = json_string_value(json_object_get(c, "Status"));
		if (s)
			sscanf(s, "Exited (%d)", &status);
		if (!c)
			in->cid[0] = 0;
		else
			in->started_at = in->started_at ? in->started_at : 1;
		char w[96];
		if (!c)
			snprintf(w, sizeof w, "container %.12s vanished", in->cid[0] ? in->cid : "");
		else if (status >= 0)
			snprintf(w, sizeof w, "exited with status %d%s", status, never ? " before becoming healthy" : "");
		else
			snprintf(w, sizeof w, "container is %s", st ? st : "gone");
		set_reason(in, "%s; restarting in %llu ms", w, (unsigned long long)in->backoff_ms);
		backoff_schedule(d, in);
	}
	json_decref(list);
}

static void poll_start(struct docker *d, int h)
{
	struct host *host = &d->hosts[h];
	char path[256];
	/* filters={"label":["io.sluice.owner=OWNER"]}, URL-encoded */
	snprintf(path, sizeof path,
		 "/containers/json?all=1&filters=%%7B%%22label%%22%%3A%%5B%%22" OWNER_LABEL "%%3D%s%%22%%5D%%7D",
		 d->owner);
	req_start(d, &host->poll, OP_POLL, NULL, h, "GET", path, NULL, SYNC_TIMEOUT_MS);
	if (!host->poll.h)
		req_end(d, &host->poll);
	host->next_poll = d->now + POLL_MS;
}

static void drain_done(struct docker *d)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(d->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct req *r = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		if (!r)
			continue;
		CURLcode cc = m->data.result;
		long code = 0;
		curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &code);
		char why[160];
		req_why(r, cc, code, why, sizeof why);
		/* take the answer, then free the request: the handlers may start the next one */
		struct buf resp = r->resp;
		buf_init(&r->resp, RESP_MAX);
		enum op kind = r->kind;
		struct inst *in = r->in;
		int h = r->host;
		uint64_t asked = r->started;
		req_end(d, r);
		if (kind == OP_POLL)
			poll_done(d, h, cc, code, &resp, asked, why);
		else if (kind == OP_HEALTH) {
			char w[96];
			if (cc != CURLE_OK)
				snprintf(w, sizeof w, "%.90s", why);
			else
				snprintf(w, sizeof w, "status %ld", code);
			if (in->want_running && in->running)
				hc_done(d, in, cc == CURLE_OK && code >= 200 && code < 300, w);
		} else
			op_done(d, in, kind, cc, code, &resp, why);
		buf_release(&resp);
	}
}

/* ---- adoption ---- */

static struct inst *find_id(struct docker *d, const char *id)
{
	for (struct inst *in = d->list; in; in = in->next)
		if (!in->gone && !strcmp(in->id, id))
			return in;
	return NULL;
}

/* One container from a host's list (GET /containers/json), at open. */
static void adopt(struct docker *d, int h, const json_t *c)
{
	const json_t *l = json_object_get(c, "Labels");
	const char *service = json_string_value(json_object_get(l, "io.sluice.service")),
		   *env = json_string_value(json_object_get(l, "io.sluice.env")),
		   *region = json_string_value(json_object_get(l, "io.sluice.region")),
		   *version = json_string_value(json_object_get(l, "io.sluice.version")),
		   *index = json_string_value(json_object_get(l, "io.sluice.index")),
		   *port = json_string_value(json_object_get(l, "io.sluice.port")),
		   *cid = json_string_value(json_object_get(c, "Id")),
		   *state = json_string_value(json_object_get(c, "State")),
		   *name = json_string_value(json_array_get(json_object_get(c, "Names"), 0));
	struct err e = {""};
	if (!valid_names(service, env, region, version) || !index || !port || !cid || strlen(cid) >= 65 || !name) {
		log_warn("runtime docker: host %s: container %.12s has sluice's labels but not all of them; left alone",
			 d->hosts[h].url, cid ? cid : "?");
		return;
	}
	bool stopping = strlen(name) > 9 && !strcmp(name + strlen(name) - 9, "-stopping");
	char id[RUNTIME_ID_MAX];
	snprintf(id, sizeof id, "%s.%s.%s.%s.%d", service, env, region, version, atoi(index));
	struct inst *twin = find_id(d, id);
	if (twin || !(twin = inst_new(d))) {
		/* a second container for one instance (its old self, caught mid-stop): remove it */
		char path[256];
		struct buf b;
		buf_init(&b, RESP_MAX);
		snprintf(path, sizeof path, "/containers/%s?force=1", cid);
		long code = sync_req(d, h, "DELETE", path, NULL, &b, SYNC_TIMEOUT_MS, &e);
		log_warn("runtime docker: host %s: removed container %.12s, a twin of %s (%ld)", d->hosts[h].url, cid,
			 id, code);
		buf_release(&b);
		return;
	}
	struct inst *in = twin;
	set_names(d, in, service, env, region, version, atoi(index));
	if (spec_from_label(&in->spec, json_string_value(json_object_get(l, "io.sluice.spec")), &e)) {
		log_warn("runtime docker: container %.12s of %s: %s; it is stopped", cid, id, e.msg);
		struct instance_spec none = {.artifact = ""};
		(void)spec_copy_from(&in->spec, &none, &e);
		stopping = true;
	}
	snprintf(in->run_image, sizeof in->run_image, "%s",
		 json_string_value(json_object_get(c, "Image")) ?: in->spec.image);
	snprintf(in->cid, sizeof in->cid, "%s", cid);
	in->host = h;
	in->port = atoi(port);
	in->running = state && !strcmp(state, "running");
	in->created_at = in->started_at = d->now ? d->now : 1;
	in->hc_next = 0;
	d->generation++;
	if (stopping) {
		in->want_running = false;
		in->renamed = true;
		in->state = INSTANCE_STOPPING;
	} else if (in->running) {
		in->want_running = true;
		in->state = INSTANCE_STARTING;
	} else {
		in->want_running = true;
		in->state = INSTANCE_BACKOFF;
		in->next_start = 0;
		set_reason(in, "container %.12s had exited when the runtime opened (%s); restarting", cid,
			   json_string_value(json_object_get(c, "Status")) ?: "?");
	}
}

/* ---- settings ---- */

static int host_parse(struct host *h, const char *url, struct err *e)
{
	h->url = strdup(url);
	if (!strncmp(url, "unix://", 7) && url[7] == '/' && strlen(url + 7) < 108) {
		h->sock = strdup(url + 7);
		h->base = strdup("http://docker");
		h->addr = strdup("127.0.0.1");
	} else if (!strncmp(url, "tcp://", 6) && url[6] && strlen(url) < 256) {
		const char *hp = url + 6, *colon = strrchr(hp, ':');
		if (!colon || colon == hp || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
		    atoi(colon + 1) < 1 || atoi(colon + 1) > 65535 || strpbrk(hp, "/?#@ "))
			return err_set(e, "runtime docker: host '%s': expected tcp://HOST:PORT", url);
		char b[300];
		snprintf(b, sizeof b, "https://%s", hp);
		h->base = strdup(b);
		h->addr = strndup(hp, (size_t)(colon - hp));
	} else {
		return err_set(e, "runtime docker: host '%s': expected unix:///path/to/docker.sock or tcp://HOST:PORT", url);
	}
	return h->url && h->base && h->addr ? 0 : err_set(e, "out of memory");
}

static int settings_parse(struct docker *d, const json_t *j, struct err *e)
{
	d->port_lo = PORT_LO;
	d->port_hi = PORT_HI;
	if (!j)
		return err_set(e, "runtime docker: its settings need `hosts`, the Docker hosts of the region");
	const char *key;
	json_t *v;
	bool any_tcp = false;
	json_object_foreach((json_t *)j, key, v) {
		if (!strcmp(key, "kind"))
			continue;
		if (!strcmp(key, "hosts")) {
			size_t n = json_array_size(v);
			if (!json_is_array(v) || n < 1 || n > RUNTIME_DOCKER_HOSTS_MAX)
				return err_set(e, "runtime docker: hosts must be a list of 1 to %d host URLs",
					       RUNTIME_DOCKER_HOSTS_MAX);
			for (size_t i = 0; i < n; i++) {
				const char *u = json_string_value(json_array_get(v, i));
				if (!u)
					return err_set(e, "runtime docker: hosts[%zu] must be a string", i);
				for (size_t k = 0; k < i; k++)
					if (!strcmp(d->hosts[k].url, u))
						return err_set(e, "runtime docker: host '%s' is listed twice", u);
				if (host_parse(&d->hosts[i], u, e))
					return -1;
				d->nhosts = (int)i + 1;
				any_tcp |= !d->hosts[i].sock;
			}
		} else if (!strcmp(key, "ports")) {
			json_int_t lo = json_integer_value(json_array_get(v, 0)), hi = json_integer_value(json_array_get(v, 1));
			if (json_array_size(v) != 2 || !json_is_integer(json_array_get(v, 0)) ||
			    !json_is_integer(json_array_get(v, 1)) || lo < 1024 || hi > 65535 || lo > hi)
				return err_set(e, "runtime docker: ports must be [LOW, HIGH] within 1024-65535, low end first");
			d->port_lo = (int)lo;
			d->port_hi = (int)hi;
		} else if (!strcmp(key, "tls")) {
			const char *ca = json_string_value(json_object_get(v, "ca")),
				   *cert = json_string_value(json_object_get(v, "cert")),
				   *k = json_string_value(json_object_get(v, "key"));
			if (!json_is_object(v) || json_object_size(v) != 3 || !ca || !cert || !k)
				return err_set(e, "runtime docker: tls must be {ca: PATH, cert: PATH, key: PATH}");
			if (!(d->tls_ca = strdup(ca)) || !(d->tls_cert = strdup(cert)) || !(d->tls_key = strdup(k)))
				return err_set(e, "out of memory");
		} else if (!strcmp(key, "proxy_image")) {
			const char *img = json_string_value(v);
			if (!img || !(img[0] == '/' || image_ref_ok(img)))
				return err_set(e, "runtime docker: proxy_image must be an image reference "
						  "(name:tag, name@sha256:...) or the absolute path of an image archive");
			free(d->proxy_image);
			if (!(d->proxy_image = strdup(img)))
				return err_set(e, "out of memory");
		} else if (!strcmp(key, "proxy_tls")) {
			static const char *const names[] = {"cert", "key", "ca"};
			if (!json_is_object(v) || json_object_size(v) != 3)
				return err_set(e, "runtime docker: proxy_tls must be {cert: PATH, key: PATH, ca: PATH}");
			for (int i = 0; i < 3; i++) {
				const char *p = json_string_value(json_object_get(v, names[i]));
				if (!p || p[0] != '/' || strlen(p) >= MAX_STR)
					return err_set(e, "runtime docker: proxy_tls.%s must be an absolute path", names[i]);
				free(d->proxy_tls[i]);
				if (!(d->proxy_tls[i] = strdup(p)))
					return err_set(e, "out of memory");
			}
		} else {
			return err_set(e, "runtime docker: unknown setting '%s' (known: hosts, tls, ports, "
					  "proxy_image, proxy_tls)", key);
		}
	}
	if (!d->nhosts)
		return err_set(e, "runtime docker: its settings need `hosts`, the Docker hosts of the region");
	if (any_tcp && !d->tls_ca)
		return err_set(e, "runtime docker: a tcp:// host needs `tls` (client certificates): the Engine "
				  "API without TLS gives root on that host to anyone who reaches it");
	return 0;
}

/* ---- the operation table ---- */

static void docker_close(void *drv)
{
	struct docker *d = drv;
	if (!d)
		return;
	while (d->list) {
		struct inst *in = d->list;
		d->list = in->next;
		inst_free(d, in);
	}
	for (int i = 0; i < RUNTIME_DOCKER_HOSTS_MAX; i++) {
		req_end(d, &d->hosts[i].poll);
		free(d->hosts[i].url);
		free(d->hosts[i].sock);
		free(d->hosts[i].base);
		free(d->hosts[i].addr);
	}
	for (size_t i = 0; i < KEPT_LOGS; i++)
		free(d->kept[i].text);
	for (size_t i = 0; i < d->nloaded; i++)
		free(d->loaded[i].path);
	free(d->loaded);
	if (d->multi)
		curl_multi_cleanup(d->multi);
	free(d->tls_ca);
	free(d->tls_cert);
	free(d->tls_key);
	free(d->proxy_image);
	for (int i = 0; i < 3; i++)
		free(d->proxy_tls[i]);
	json_decref(d->settings);
	free(d);
}

static int docker_open(void **out, const json_t *settings, const struct runtime_host *host, struct err *e)
{
	static bool curl_ready;
	if (!curl_ready && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return err_set(e, "runtime docker: libcurl did not initialise");
	curl_ready = true;
	struct docker *d = calloc(1, sizeof *d);
	if (!d)
		return err_set(e, "out of memory");
	if (settings_parse(d, settings, e) || !(d->multi = curl_multi_init())) {
		if (!e->msg[0])
			err_set(e, "out of memory");
		docker_close(d);
		return -1;
	}
	d->settings = settings ? json_deep_copy(settings) : NULL;
	/* The owner marker: containers of this server's data directory, and no other's. */
	char real[4096];
	const char *dd = host && host->data_dir ? host->data_dir : ".";
	if (!realpath(dd, real))
		snprintf(real, sizeof real, "%s", dd);
	snprintf(d->owner, sizeof d->owner, "%012llx", (unsigned long long)(fnv(real) & 0xffffffffffffull));
	d->now = mono_ms();
	d->port_cursor = (unsigned)(fnv(real) ^ (uint64_t)getpid() ^ d->now);
	for (int h = 0; h < d->nhosts; h++) {
		struct buf b;
		buf_init(&b, RESP_MAX);
		char path[256];
		snprintf(path, sizeof path,
			 "/containers/json?all=1&filters=%%7B%%22label%%22%%3A%%5B%%22" OWNER_LABEL "%%3D%s%%22%%5D%%7D",
			 d->owner);
		struct err he = {""};
		long code = sync_req(d, h, "GET", path, NULL, &b, SYNC_TIMEOUT_MS, &he);
		json_t *list = code == 200 ? json_loadb(b.data, b.len, 0, NULL) : NULL;
		if (!json_is_array(list)) {
			/* Not an error: the region opens, ensure refuses to place instances there, and
			 * what runs there is adopted by name (409 on create) once it answers again. */
			log_warn("runtime docker: host %s: %s", d->hosts[h].url, he.msg[0] ? he.msg : "bad container list");
			d->hosts[h].down = true;
		}
		size_t i;
		json_t *c;
		json_array_foreach(list, i, c)
			adopt(d, h, c);
		json_decref(list);
		buf_release(&b);
	}
	*out = d;
	return 0;
}

static int docker_same_settings(void *drv, const json_t *settings)
{
	struct docker *d = drv;
	return settings && d->settings && json_equal(d->settings, (json_t *)settings);
}

static int docker_check_names(void *drv, const char *service, const char *env, const char *region,
			      const char *version, struct err *e)
{
	(void)drv;
	if (!valid_names(service, env, region, version))
		return err_set(e, "runtime docker: invalid service, env, region or version name");
	return 0;
}

static struct inst *find(struct docker *d, const struct instance_spec *s, int index)
{
	for (struct inst *in = d->list; in; in = in->next)
		if (!in->gone && in->index == index && !strcmp(in->service, s->service) && !strcmp(in->env, s->env) &&
		    !strcmp(in->region, s->region) && !strcmp(in->version, s->version))
			return in;
	return NULL;
}

/* Streams the archive at `path` into POST /images/load on host h; the loaded image's id. */
static int load_archive(struct docker *d, int h, const char *path, char *ref, size_t refn, struct err *e)
{
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return err_set(e, "image archive '%s' is missing: %s", path, strerror(errno ? errno : EINVAL));
	for (size_t i = 0; i < d->nloaded; i++)
		if (d->loaded[i].host == h && !strcmp(d->loaded[i].path, path) && d->loaded[i].size == st.st_size &&
		    d->loaded[i].mtime == st.st_mtime) {
			snprintf(ref, refn, "%s", d->loaded[i].ref);
			return 0;
		}
	FILE *f = fopen(path, "rb");
	if (!f)
		return err_set(e, "image archive '%s': %s", path, strerror(errno));
	struct req r = {0};
	buf_init(&r.resp, RESP_MAX);
	CURL *c = easy_new(d, &r, &d->hosts[h], "POST", "/images/load?quiet=1", NULL, LOAD_TIMEOUT_MS);
	if (!c) {
		fclose(f);
		return err_set(e, "out of memory");
	}
	curl_slist_free_all(r.hdrs);
	r.hdrs = curl_slist_append(NULL, "Content-Type: application/x-tar");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, r.hdrs);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_READDATA, f);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)st.st_size);
	CURLcode cc = curl_easy_perform(c);
	long code = 0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	curl_slist_free_all(r.hdrs);
	fclose(f);
	int rc = 0;
	char loaded[512] = "";
	if (cc != CURLE_OK) {
		rc = err_set(e, "docker host %s: %s", d->hosts[h].url, r.errbuf[0] ? r.errbuf : curl_easy_strerror(cc));
		goto out;
	}
	/* JSON lines: {"stream":"Loaded image: REF\n"} or {"error": "..."} */
	for (char *line = r.resp.data; line && *line;) {
		char *nl = strchr(line, '\n');
		json_t *j = json_loadb(line, nl ? (size_t)(nl - line) : strlen(line), 0, NULL);
		const char *err = json_string_value(json_object_get(j, "error")),
			   *s = json_string_value(json_object_get(j, "stream"));
		if (err && !rc)
			rc = err_set(e, "docker host %s: loading '%s': %s", d->hosts[h].url, path, err);
		const char *p = NULL;
		if (s && (!strncmp(s, "Loaded image: ", 14) || !strncmp(s, "Loaded image ID: ", 17)))
			p = strchr(s, ':') + 2;
		if (p)
			snprintf(loaded, sizeof loaded, "%.*s", (int)strcspn(p, "\n"), p);
		json_decref(j);
		line = nl ? nl + 1 : NULL;
	}
	if (!rc && (code != 200 || !loaded[0]))
		rc = err_set(e, "docker host %s: loading '%s' gave no image (status %ld)", d->hosts[h].url, path, code);
	if (!rc) {
		/* Containers are made from the image's id, which no later load can move. */
		struct buf b;
		buf_init(&b, RESP_MAX);
		char ip[700];
		snprintf(ip, sizeof ip, "/images/%s/json", loaded);
		long c2 = sync_req(d, h, "GET", ip, NULL, &b, SYNC_TIMEOUT_MS, e);
		json_t *j = c2 == 200 ? json_loadb(b.data, b.len, 0, NULL) : NULL;
		const char *id = json_string_value(json_object_get(j, "Id"));
		if (id)
			snprintf(ref, refn, "%s", id);
		else if (c2 >= 0)
			rc = err_set(e, "docker host %s: the loaded image '%s' is not there", d->hosts[h].url, loaded);
		else
			rc = -1;
		json_decref(j);
		buf_release(&b);
	}
	if (!rc) {
		struct loaded *n = realloc(d->loaded, (d->nloaded + 1) * sizeof *n);
		if (n) {
			d->loaded = n;
			n[d->nloaded] = (struct loaded){.path = strdup(path), .size = st.st_size, .mtime = st.st_mtime,
							 .host = h};
			snprintf(n[d->nloaded].ref, sizeof n->ref, "%s", ref);
			if (n[d->nloaded].path)
				d->nloaded++;
		}
	}
out:
	buf_release(&r.resp);
	return rc;
}

/* The image instances on host h run for this artifact: checked to be there (a reference) or
 * loaded (an archive). A host that does not answer, or lacks the image, is ensure's refusal. */
static int image_on_host(struct docker *d, int h, const char *artifact, char *ref, size_t refn, struct err *e)
{
	if (artifact[0] == '/')
		return load_archive(d, h, artifact, ref, refn, e);
	struct buf b;
	buf_init(&b, RESP_MAX);
	char path[600];
	snprintf(path, sizeof path, "/images/%s/json", artifact);
	long code = sync_req(d, h, "GET", path, NULL, &b, SYNC_TIMEOUT_MS, e);
	buf_release(&b);
	if (code < 0)
		return -1;
	if (code == 404)
		return err_set(e, "image '%s' is missing on docker host %s (load its archive there, or give the "
				  "archive as the release's artifact)", artifact, d->hosts[h].url);
	if (code != 200)
		return err_set(e, "docker host %s: looking up image '%s': status %ld", d->hosts[h].url, artifact, code);
	snprintf(ref, refn, "%s", artifact);
	return 0;
}

static int docker_ensure(void *drv, const struct instance_spec *spec, unsigned count, struct err *e)
{
	struct docker *d = drv;
	d->now = mono_ms();
	if (!valid_names(spec->service, spec->env, spec->region, spec->version))
		return err_set(e, "runtime docker: invalid service, env, region or version name");
	if (count > MAX_COUNT)
		return err_set(e, "runtime docker: at most %d instances per release", MAX_COUNT);
	const char *art = spec->artifact ? spec->artifact : "";
	if (!(art[0] == '/' ? strlen(art) < MAX_STR : image_ref_ok(art)))
		return err_set(e, "runtime docker: the artifact '%s' is neither an image reference (name:tag, "
				  "name@sha256:...) nor the absolute path of an image archive", art);
	if (spec->health_ca && strlen(spec->health_ca) >= MAX_STR)
		return err_set(e, "runtime docker: health CA path longer than %d bytes", MAX_STR);
	if (spec->health_path && *spec->health_path && spec->health_path[0] != '/')
		return err_set(e, "runtime docker: health path '%s' must start with '/'", spec->health_path);
	for (const char *const *p = spec->env_vars; p && *p; p++)
		if (!strchr(*p, '='))
			return err_set(e, "runtime docker: env var '%s' has no '='", *p);
	struct spec_copy sc;
	if (spec_copy_from(&sc, spec, e))
		return -1;

	/* First every check that can refuse, so that a refusal starts nothing. */
	char resolved[RUNTIME_DOCKER_HOSTS_MAX][512];
	bool have[RUNTIME_DOCKER_HOSTS_MAX] = {0};
	int base = (int)(fnv(spec->service) % (uint64_t)d->nhosts);
	size_t adding = 0;
	for (unsigned i = 0; i < count; i++) {
		struct inst *in = find(d, spec, (int)i);
		bool changed = in && !spec_equal(&in->spec, &sc);
		if (in && !changed && in->want_running)
			continue;
		int h = in ? in->host : (int)((i + (unsigned)base) % (unsigned)d->nhosts);
		adding += !in;
		if (!have[h] && image_on_host(d, h, sc.image, resolved[h], sizeof resolved[h], e)) {
			if (!in || !in->want_running) {
				spec_free(&sc);
				return -1;
			}
			snprintf(resolved[h], sizeof resolved[h], "%s", sc.image); /* a running one: next start */
		}
		have[h] = true;
	}
	if (d->count + adding > MAX_INSTANCES) {
		spec_free(&sc);
		return err_set(e, "runtime docker: more than %d instances", MAX_INSTANCES);
	}
	for (unsigned i = 0; i < count; i++) {
		struct inst *in = find(d, spec, (int)i);
		if (in && spec_equal(&in->spec, &sc)) {
			if (!in->want_running)
				in->restart_after_stop = true;
			continue;
		}
		struct spec_copy mine;
		if (spec_copy_from(&mine, spec, e)) {
			spec_free(&sc);
			return -1;
		}
		if (in) { /* a new spec, used at its next start */
			spec_free(&in->spec);
			in->spec = mine;
			snprintf(in->run_image, sizeof in->run_image, "%s", resolved[in->host]);
			if (!in->want_running)
				in->restart_after_stop = true;
			continue;
		}
		in = inst_new(d);
		if (!in) {
			spec_free(&mine);
			spec_free(&sc);
			return err_set(e, "out of memory");
		}
		set_names(d, in, spec->service, spec->env, spec->region, spec->version, (int)i);
		in->spec = mine;
		in->host = (int)((i + (unsigned)base) % (unsigned)d->nhosts);
		snprintf(in->run_image, sizeof in->run_image, "%s", resolved[in->host]);
		in->want_running = true;
		in->state = INSTANCE_STARTING;
		d->generation++;
	}
	spec_free(&sc);
	/* Scale down: the highest indexes. */
	for (struct inst *in = d->list; in; in = in->next)
		if (!in->gone && in->want_running && in->index >= (int)count && !strcmp(in->service, spec->service) &&
		    !strcmp(in->env, spec->env) && !strcmp(in->region, spec->region) &&
		    !strcmp(in->version, spec->version)) {
			in->want_running = false;
			in->state = INSTANCE_STOPPING;
			hc_cancel(d, in);
			d->generation++;
		}
	return 0;
}

static int docker_stop(void *drv, const char *service, const char *env, const char *region, const char *version)
{
	struct docker *d = drv;
	for (struct inst *in = d->list; in; in = in->next) {
		if (in->gone || !match(service, in->service) || !match(env, in->env) || !match(region, in->region) ||
		    !match(version, in->version))
			continue;
		in->restart_after_stop = false;
		if (!in->want_running)
			continue;
		in->want_running = false;
		in->state = INSTANCE_STOPPING;
		in->next_start = 0;
		hc_cancel(d, in);
		d->generation++;
	}
	return 0;
}

static void docker_stop_all(void *drv)
{
	docker_stop(drv, NULL, NULL, NULL, NULL);
}

static uint64_t docker_generation(const void *drv)
{
	return ((const struct docker *)drv)->generation;
}

static void docker_tick(void *drv, uint64_t now_ms)
{
	struct docker *d = drv;
	d->now = now_ms;
	int running;
	curl_multi_perform(d->multi, &running);
	drain_done(d);
	for (int h = 0; h < d->nhosts; h++)
		if (d->hosts[h].poll.kind == OP_NONE && d->now >= d->hosts[h].next_poll) {
			bool any = false;
			for (struct inst *in = d->list; in && !any; in = in->next)
				any = in->host == h && !in->gone;
			if (any)
				poll_start(d, h);
		}
	for (struct inst *in = d->list; in; in = in->next)
		step(d, in);
	curl_multi_perform(d->multi, &running);
	drain_done(d);
}

static void fill_info(const struct docker *d, struct instance_info *o, const struct inst *in)
{
	memset(o, 0, sizeof *o);
	memcpy(o->id, in->id, sizeof o->id);
	memcpy(o->service, in->service, sizeof o->service);
	memcpy(o->env, in->env, sizeof o->env);
	memcpy(o->region, in->region, sizeof o->region);
	memcpy(o->version, in->version, sizeof o->version);
	o->index = in->index;
	if (in->cid[0] && in->running && in->port > 0)
		snprintf(o->endpoint, sizeof o->endpoint, "%s:%d", d->hosts[in->host].addr, in->port);
	if (in->cid[0])
		snprintf(o->detail, sizeof o->detail, "container %.12s on host %d", in->cid, in->host);
	o->state = in->state;
	o->restarts = in->restarts;
	o->failed_starts = in->failed_starts;
	memcpy(o->reason, in->reason, sizeof o->reason);
}

static int cmp_info(const void *pa, const void *pb)
{
	const struct instance_info *a = pa, *b = pb;
	int c = strcmp(a->service, b->service);
	if (!c)
		c = strcmp(a->env, b->env);
	if (!c)
		c = strcmp(a->region, b->region);
	if (!c)
		c = strcmp(a->version, b->version);
	return c ? c : (a->index > b->index) - (a->index < b->index);
}

static int docker_list(void *drv, const char *service, const char *env, const char *region, const char *version,
		       struct instance_info **out, size_t *n)
{
	struct docker *d = drv;
	size_t k = 0;
	*out = NULL;
	*n = 0;
	for (struct inst *in = d->list; in; in = in->next)
		k += match(service, in->service) && match(env, in->env) && match(region, in->region) &&
		     match(version, in->version);
	if (!k)
		return 0;
	struct instance_info *v = calloc(k, sizeof *v);
	if (!v)
		return -1;
	size_t i = 0;
	for (struct inst **p = &d->list; *p;) {
		struct inst *in = *p;
		if (match(service, in->service) && match(env, in->env) && match(region, in->region) &&
		    match(version, in->version)) {
			fill_info(d, &v[i++], in);
			if (in->gone) {
				*p = in->next;
				d->count--;
				inst_free(d, in);
				continue;
			}
		}
		p = &in->next;
	}
	qsort(v, i, sizeof *v, cmp_info);
	*out = v;
	*n = i;
	return 0;
}

static int cmp_inst(const void *a, const void *b)
{
	return strcmp((*(struct inst *const *)a)->id, (*(struct inst *const *)b)->id);
}

static int cmp_kept(const void *a, const void *b)
{
	uint64_t x = (*(struct kept *const *)a)->seq, y = (*(struct kept *const *)b)->seq;
	return (x > y) - (x < y);
}

static int docker_logs(void *drv, const char *service, const char *env, const char *region, size_t max_bytes,
		       struct buf *out)
{
	struct docker *d = drv;
	struct kept *kept[KEPT_LOGS];
	size_t nk = 0, nl = 0;
	for (size_t i = 0; i < KEPT_LOGS; i++)
		if (d->kept[i].seq && d->kept[i].text && match(service, d->kept[i].service) &&
		    match(env, d->kept[i].env) && match(region, d->kept[i].region))
			kept[nk++] = &d->kept[i];
	qsort(kept, nk, sizeof *kept, cmp_kept);
	size_t skip = nk > 8 ? nk - 8 : 0; /* the newest 8, oldest first */
	for (struct inst *in = d->list; in; in = in->next)
		nl += !in->gone && in->cid[0] && match(service, in->service) && match(env, in->env) &&
		      match(region, in->region);
	struct inst **live = nl ? calloc(nl, sizeof *live) : NULL;
	if (nl && !live)
		return -1;
	size_t j = 0;
	for (struct inst *in = d->list; in; in = in->next)
		if (!in->gone && in->cid[0] && match(service, in->service) && match(env, in->env) &&
		    match(region, in->region))
			live[j++] = in;
	if (nl)
		qsort(live, nl, sizeof *live, cmp_inst);
	size_t n = nk - skip + nl, rc = 0;
	if (!n) {
		free(live);
		return 0;
	}
	size_t budget = max_bytes / n;
	char prefix[RUNTIME_ID_MAX + 16];
	for (size_t i = skip; i < nk && !rc; i++) {
		snprintf(prefix, sizeof prefix, "[%s stopped] ", kept[i]->id);
		rc = emit_tail(kept[i]->text, kept[i]->len, kept[i]->len >= LOG_KEEP_MAX, prefix, budget, out);
	}
	for (size_t i = 0; i < nl && !rc; i++) {
		char path[256];
		struct buf raw, text;
		buf_init(&raw, RESP_MAX);
		buf_init(&text, RESP_MAX);
		snprintf(path, sizeof path, "/containers/%s/logs?stdout=1&stderr=1&tail=%d", live[i]->cid, LOG_TAIL_LINES);
		struct err e = {""};
		long code = sync_req(d, live[i]->host, "GET", path, NULL, &raw, SYNC_TIMEOUT_MS, &e);
		snprintf(prefix, sizeof prefix, "[%s] ", live[i]->id);
		if (code == 200) {
			demux((const unsigned char *)raw.data, raw.len, &text);
			rc = emit_tail(text.data, text.len, false, prefix, budget, out);
		} else {
			char line[300];
			snprintf(line, sizeof line, "--- sluice: no logs from the engine: %.200s\n",
				 code < 0 ? e.msg : "container not found");
			rc = emit_tail(line, strlen(line), false, prefix, budget, out);
		}
		buf_release(&raw);
		buf_release(&text);
	}
	free(live);
	return rc ? -1 : 0;
}

int runtime_docker_container(runtime *rt, const char *id, struct runtime_docker_container *out)
{
	if (strcmp(runtime_kind(rt), "docker"))
		return -1;
	struct docker *d = runtime_driver(rt);
	for (struct inst *in = d->list; in; in = in->next)
		if (!in->gone && !strcmp(in->id, id)) {
			snprintf(out->id, sizeof out->id, "%s", in->cid);
			out->host = in->host;
			out->port = in->port;
			return 0;
		}
	return -1;
}

int runtime_docker_hosts(runtime *rt)
{
	if (strcmp(runtime_kind(rt), "docker"))
		return 0;
	return ((struct docker *)runtime_driver(rt))->nhosts;
}

const char *runtime_docker_proxy_image(runtime *rt)
{
	if (strcmp(runtime_kind(rt), "docker"))
		return NULL;
	const struct docker *d = runtime_driver(rt);
	return d->proxy_image ? d->proxy_image : RUNTIME_DOCKER_PROXY_IMAGE;
}

int runtime_docker_proxy_tls(runtime *rt, const char **cert, const char **key, const char **ca)
{
	if (strcmp(runtime_kind(rt), "docker"))
		return 0;
	const struct docker *d = runtime_driver(rt);
	if (!d->proxy_tls[0])
		return 0;
	*cert = d->proxy_tls[0];
	*key = d->proxy_tls[1];
	*ca = d->proxy_tls[2];
	return 1;
}

const struct runtime_ops runtime_docker_ops = {
	.kind = "docker",
	.open = docker_open,
	.close = docker_close,
	.same_settings = docker_same_settings,
	.check_names = docker_check_names,
	.ensure = docker_ensure,
	.stop = docker_stop,
	.stop_all = docker_stop_all,
	.tick = docker_tick,
	.generation = docker_generation,
	.list = docker_list,
	.logs = docker_logs,
};
