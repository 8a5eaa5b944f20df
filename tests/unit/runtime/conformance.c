/*
 * conformance: the properties every runtime driver must have (see conformance.h), checked
 * through runtime.h alone.
 */
#include "conformance.h"

#include <criterion/criterion.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Generous: tests run beside others on two shared cores, sometimes under ASan. What a test
 * proves never rests on something happening quickly. */
enum { START_MS = 20000, STOP_MS = 15000, MAX_SEEN = 16 };

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static runtime *open_rt(const struct conformance_driver *d)
{
	runtime *rt = NULL;
	struct err e = {""};
	cr_assert_eq(d->open(&rt, &e), 0, "the driver did not open: %s", e.msg);
	return rt;
}

static void ensure(runtime *rt, const struct instance_spec *s, unsigned n)
{
	struct err e = {""};
	cr_assert_eq(runtime_ensure(rt, s, n, &e), 0, "ensure %s %s x%u: %s", s->service, s->version, n, e.msg);
}

/* A snapshot; the caller frees it. */
static struct instance_info *snap(runtime *rt, const char *svc, const char *region, const char *version, size_t *n)
{
	struct instance_info *v = NULL;
	cr_assert_eq(runtime_list(rt, svc, NULL, region, version, &v, n), 0);
	cr_assert(*n == 0 || v, "list gave a count without instances");
	return v;
}

static size_t count_state(runtime *rt, const char *svc, const char *region, const char *version,
			  enum instance_state st)
{
	size_t n, k = 0;
	struct instance_info *v = snap(rt, svc, region, version, &n);
	for (size_t i = 0; i < n; i++)
		k += v[i].state == st;
	free(v);
	return k;
}

/* Ticks like the server (every 10 ms) until n matching instances are in state st. */
static bool wait_state(runtime *rt, const char *svc, const char *region, const char *version,
		       enum instance_state st, size_t n, unsigned ms)
{
	uint64_t end = now_ms() + ms;
	for (;;) {
		runtime_tick(rt, now_ms());
		if (count_state(rt, svc, region, version, st) == n)
			return true;
		if (now_ms() >= end)
			return false;
		usleep(10000);
	}
}

static void tick_for(runtime *rt, unsigned ms)
{
	for (uint64_t end = now_ms() + ms; now_ms() < end; usleep(10000))
		runtime_tick(rt, now_ms());
}

/* Ticks until `n` matching instances have each been listed as STOPPED, exactly once, and
 * none of them is listed any more. Fails on a second STOPPED listing of one id. */
static void wait_stopped(runtime *rt, const char *svc, const char *region, const char *version, size_t n)
{
	char seen[MAX_SEEN][RUNTIME_ID_MAX];
	size_t k = 0;
	uint64_t end = now_ms() + STOP_MS;
	while (k < n && now_ms() < end) {
		runtime_tick(rt, now_ms());
		size_t m;
		struct instance_info *v = snap(rt, svc, region, version, &m);
		for (size_t i = 0; i < m; i++) {
			if (v[i].state != INSTANCE_STOPPED)
				continue;
			for (size_t j = 0; j < k; j++)
				cr_assert_str_neq(seen[j], v[i].id, "%s was listed as stopped twice", v[i].id);
			cr_assert_lt(k, MAX_SEEN);
			snprintf(seen[k++], sizeof seen[0], "%s", v[i].id);
		}
		free(v);
		usleep(10000);
	}
	cr_assert_eq(k, n, "%zu of %zu instances were seen stopped", k, n);
	size_t m;
	struct instance_info *v = snap(rt, svc, region, version, &m);
	for (size_t i = 0; i < m; i++)
		for (size_t j = 0; j < k; j++)
			cr_assert_str_neq(seen[j], v[i].id, "%s is listed again after its STOPPED entry", v[i].id);
	free(v);
}

/* GET path at "host:port": the status, or -1 when nothing answers. */
static int http_status(const char *endpoint, const char *path)
{
	char host[RUNTIME_ENDPOINT_MAX];
	snprintf(host, sizeof host, "%s", endpoint);
	char *colon = strrchr(host, ':');
	cr_assert(colon && colon > host && colon[1], "endpoint '%s' is not host:port", endpoint);
	*colon = 0;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	cr_assert_eq(getaddrinfo(host, colon + 1, &hints, &ai), 0, "endpoint '%s' does not resolve", endpoint);
	int fd = socket(ai->ai_family, SOCK_STREAM, 0), code = -1;
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
		char req[256], resp[256] = "";
		int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path,
				 endpoint);
		if (write(fd, req, (size_t)n) == n && read(fd, resp, sizeof resp - 1) > 0 &&
		    sscanf(resp, "HTTP/1.%*d %d", &code) != 1)
			code = 0; /* an answer, not HTTP */
	}
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return code;
}

/* Starts n instances of conf/r1/version and waits until they are healthy; the snapshot. */
static struct instance_info *start_healthy(const struct conformance_driver *d, runtime *rt, const char *version,
					   unsigned n)
{
	struct instance_spec s = d->spec("conf", "r1", version);
	ensure(rt, &s, n);
	cr_assert(wait_state(rt, "conf", "r1", version, INSTANCE_HEALTHY, n, START_MS),
		  "%u instances of %s did not become healthy", n, version);
	size_t m;
	struct instance_info *v = snap(rt, "conf", "r1", version, &m);
	cr_assert_eq(m, n);
	return v;
}

void conformance_ensure_starts_healthy_instances_that_answer(const struct conformance_driver *d)
{
	runtime *rt = open_rt(d);
	struct instance_info *v = start_healthy(d, rt, "v1", 2);
	for (int i = 0; i < 2; i++) {
		char id[64];
		snprintf(id, sizeof id, "conf.test.r1.v1.%d", i);
		cr_assert_str_eq(v[i].id, id, "listed in index order with ids service.env.region.version.index");
		cr_assert_eq(v[i].index, i);
		cr_assert(!strcmp(v[i].service, "conf") && !strcmp(v[i].env, "test") && !strcmp(v[i].region, "r1") &&
			  !strcmp(v[i].version, "v1"));
		cr_assert_eq(v[i].restarts, 0);
		cr_assert_neq(v[i].endpoint[0], 0, "a healthy instance has an endpoint");
		cr_assert_eq(http_status(v[i].endpoint, "/"), 200, "%s does not answer at %s", id, v[i].endpoint);
	}
	cr_assert_str_neq(v[0].endpoint, v[1].endpoint, "two instances share an endpoint");
	free(v);
	runtime_stop_all(rt);
	wait_stopped(rt, "conf", NULL, NULL, 2);
	runtime_close(rt);
}

void conformance_ensure_again_changes_nothing(const struct conformance_driver *d)
{
	runtime *rt = open_rt(d);
	struct instance_info *a = start_healthy(d, rt, "v1", 2);
	struct instance_spec s = d->spec("conf", "r1", "v1");
	uint64_t g = runtime_generation(rt);
	ensure(rt, &s, 2);
	cr_assert_eq(runtime_generation(rt), g, "a second identical ensure changed something");
	tick_for(rt, 300);
	size_t n;
	struct instance_info *b = snap(rt, "conf", "r1", "v1", &n);
	cr_assert_eq(n, 2, "ensure again started a duplicate");
	for (int i = 0; i < 2; i++) {
		cr_assert_str_eq(b[i].id, a[i].id);
		cr_assert_str_eq(b[i].endpoint, a[i].endpoint);
		cr_assert_str_eq(b[i].detail, a[i].detail, "instance %d was started again", i);
		cr_assert_eq(b[i].restarts, 0);
		cr_assert_eq(b[i].state, INSTANCE_HEALTHY);
	}
	free(a);
	free(b);
	runtime_stop_all(rt);
	wait_stopped(rt, "conf", NULL, NULL, 2);
	runtime_close(rt);
}

void conformance_scale_up_and_down(const struct conformance_driver *d)
{
	runtime *rt = open_rt(d);
	struct instance_info *a = start_healthy(d, rt, "v1", 1);
	struct instance_spec s = d->spec("conf", "r1", "v1");
	ensure(rt, &s, 3);
	cr_assert(wait_state(rt, "conf", "r1", "v1", INSTANCE_HEALTHY, 3, START_MS), "scaling up to 3 failed");
	size_t n;
	struct instance_info *b = snap(rt, "conf", "r1", "v1", &n);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(b[0].detail, a[0].detail, "scaling up restarted instance 0");
	char gone[2][RUNTIME_ENDPOINT_MAX];
	snprintf(gone[0], sizeof gone[0], "%s", b[1].endpoint);
	snprintf(gone[1], sizeof gone[1], "%s", b[2].endpoint);
	free(b);

	/* Down to 1: the highest indexes stop (listed once as STOPPED), index 0 stays. */
	ensure(rt, &s, 1);
	wait_stopped(rt, "conf", "r1", "v1", 2);
	b = snap(rt, "conf", "r1", "v1", &n);
	cr_assert_eq(n, 1);
	cr_assert_eq(b[0].index, 0);
	cr_assert_eq(b[0].state, INSTANCE_HEALTHY);
	cr_assert_str_eq(b[0].detail, a[0].detail, "scaling down touched instance 0");
	cr_assert_eq(http_status(b[0].endpoint, "/"), 200);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(http_status(gone[i], "/"), -1, "a stopped instance still answers at %s", gone[i]);
	free(a);
	free(b);
	runtime_stop_all(rt);
	wait_stopped(rt, "conf", NULL, NULL, 1);
	runtime_close(rt);
}

void conformance_stop_is_graceful_and_listed_once(const struct conformance_driver *d)
{
	runtime *rt = open_rt(d);
	struct instance_info *a = start_healthy(d, rt, "v1", 1);
	cr_assert_eq(runtime_stop(rt, "conf", "test", "r1", "v1"), 0);
	cr_assert_eq(runtime_stop(rt, "conf", "test", "r1", "v1"), 0, "stop is idempotent");
	size_t n;
	struct instance_info *b = snap(rt, "conf", "r1", "v1", &n);
	cr_assert(n == 1 && (b[0].state == INSTANCE_STOPPING || b[0].state == INSTANCE_STOPPED),
		  "a stopped instance is stopping or stopped");
	bool listed_stopped = b[0].state == INSTANCE_STOPPED;
	free(b);
	if (!listed_stopped)
		wait_stopped(rt, "conf", "r1", "v1", 1);
	cr_assert_eq(http_status(a[0].endpoint, "/"), -1, "the stopped instance still answers");
	/* Graceful: it was asked to stop (SIGTERM) and finished by itself; the logs of a stopped
	 * instance are still there. */
	struct buf out;
	buf_init(&out, 1 << 20);
	cr_assert_eq(runtime_logs(rt, "conf", NULL, NULL, 1 << 16, &out), 0);
	char want[RUNTIME_ID_MAX + 64];
	snprintf(want, sizeof want, "[%s stopped] terminating on SIGTERM\n", a[0].id);
	cr_assert(out.data && strstr(out.data, want), "no graceful stop in the logs:\n%s", out.data ? out.data : "");
	buf_release(&out);
	free(a);
	runtime_close(rt);
}

void conformance_list_filters_and_sorts(const struct conformance_driver *d)
{
	runtime *rt = open_rt(d);
	/* ensured in an order the listing must not keep */
	struct instance_spec s1 = d->spec("other", "r1", "v1"), s2 = d->spec("conf", "r2", "v2"),
			     s3 = d->spec("conf", "r1", "v1");
	ensure(rt, &s1, 1);
	ensure(rt, &s2, 1);
	ensure(rt, &s3, 1);
	size_t n;
	struct instance_info *v = snap(rt, NULL, NULL, NULL, &n);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(v[0].id, "conf.test.r1.v1.0");
	cr_assert_str_eq(v[1].id, "conf.test.r2.v2.0");
	cr_assert_str_eq(v[2].id, "other.test.r1.v1.0");
	free(v);
	static const struct {
		const char *service, *env, *region, *version;
		size_t n;
	} cases[] = {
		{"conf", NULL, NULL, NULL, 2}, {NULL, NULL, "r1", NULL, 2}, {NULL, NULL, NULL, "v2", 1},
		{"conf", "test", "r1", "v1", 1}, {NULL, "test", NULL, NULL, 3}, {NULL, "prod", NULL, NULL, 0},
		{"conf", NULL, "r2", "v1", 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		cr_assert_eq(runtime_list(rt, cases[i].service, cases[i].env, cases[i].region, cases[i].version, &v, &n),
			     0);
		cr_assert_eq(n, cases[i].n, "filter %zu: %zu instances, expected %zu", i, n, cases[i].n);
		for (size_t k = 0; k < n; k++)
			cr_assert((!cases[i].service || !strcmp(v[k].service, cases[i].service)) &&
				  (!cases[i].region || !strcmp(v[k].region, cases[i].region)) &&
				  (!cases[i].version || !strcmp(v[k].version, cases[i].version)));
		if (!n)
			cr_assert_null(v);
		free(v);
	}
	runtime_stop_all(rt);
	wait_stopped(rt, NULL, NULL, NULL, 3);
	runtime_close(rt);
}

void conformance_generation_changes_with_state(const struct conformance_driver *d)
{
	runtime *rt = open_rt(d);
	uint64_t g0 = runtime_generation(rt);
	struct instance_spec s = d->spec("conf", "r1", "v1");
	ensure(rt, &s, 1);
	uint64_t g1 = runtime_generation(rt);
	cr_assert_gt(g1, g0, "adding an instance did not change the generation");
	/* Healthy is a change of state: the generation must have moved when it is first seen. */
	uint64_t end = now_ms() + START_MS;
	bool healthy = false;
	while (!healthy && now_ms() < end) {
		uint64_t before = runtime_generation(rt);
		runtime_tick(rt, now_ms());
		healthy = count_state(rt, "conf", "r1", "v1", INSTANCE_HEALTHY) == 1;
		if (healthy)
			cr_assert_gt(runtime_generation(rt), g1, "turning healthy did not change the generation");
		else if (runtime_generation(rt) == before)
			usleep(10000);
	}
	cr_assert(healthy);
	/* Nothing happening: nothing new (an idle server stays idle). */
	uint64_t g2 = runtime_generation(rt);
	tick_for(rt, 300);
	cr_assert_eq(runtime_generation(rt), g2, "the generation moved while nothing changed");
	cr_assert_eq(runtime_stop(rt, "conf", NULL, NULL, NULL), 0);
	cr_assert_gt(runtime_generation(rt), g2, "a stop did not change the generation");
	uint64_t g3 = runtime_generation(rt);
	wait_stopped(rt, "conf", NULL, NULL, 1);
	cr_assert_gt(runtime_generation(rt), g3, "an instance's end did not change the generation");
	runtime_close(rt);
}

void conformance_logs_are_prefixed_and_bounded(const struct conformance_driver *d)
{
	runtime *rt = open_rt(d);
	struct instance_info *v = start_healthy(d, rt, "v1", 2);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(http_status(v[i].endpoint, "/hello-from-the-test"), 200);
	tick_for(rt, 200);
	struct buf out;
	buf_init(&out, 1 << 20);
	cr_assert_eq(runtime_logs(rt, "conf", NULL, NULL, 1 << 16, &out), 0);
	cr_assert_gt(out.len, 0);
	for (int i = 0; i < 2; i++) {
		char want[RUNTIME_ID_MAX + 64];
		snprintf(want, sizeof want, "[%s] request GET /hello-from-the-test\n", v[i].id);
		cr_assert(strstr(out.data, want), "no '%s' in:\n%s", want, out.data);
	}
	for (char *p = out.data; *p; p = strchr(p, '\n') + 1) {
		cr_assert(!strncmp(p, "[conf.test.r1.v1.", 17), "a line without its instance: %.60s", p);
		cr_assert_not_null(strchr(p, '\n'), "the last line is not complete");
	}
	buf_reset(&out);
	cr_assert_eq(runtime_logs(rt, "conf", NULL, NULL, 300, &out), 0);
	cr_assert(out.len > 0 && out.len <= 300, "%zu bytes for a budget of 300", out.len);
	buf_reset(&out);
	cr_assert_eq(runtime_logs(rt, "nobody", NULL, NULL, 300, &out), 0);
	cr_assert_eq(out.len, 0);
	buf_release(&out);
	free(v);
	runtime_stop_all(rt);
	wait_stopped(rt, "conf", NULL, NULL, 2);
	runtime_close(rt);
}

void conformance_reopen_adopts_without_duplicate_or_orphan(const struct conformance_driver *d)
{
	runtime *rt = open_rt(d);
	struct instance_info *a = start_healthy(d, rt, "v1", 2);
	runtime_close(rt); /* forgets; the instances keep serving */
	for (int i = 0; i < 2; i++)
		cr_assert_eq(http_status(a[i].endpoint, "/"), 200, "closing the runtime stopped %s", a[i].id);
	rt = open_rt(d);
	size_t n;
	struct instance_info *b = snap(rt, "conf", "r1", "v1", &n);
	cr_assert_eq(n, 2, "the reopened runtime lists %zu instances, expected the 2 running", n);
	for (int i = 0; i < 2; i++) {
		cr_assert_str_eq(b[i].id, a[i].id);
		cr_assert_str_eq(b[i].endpoint, a[i].endpoint);
		cr_assert_str_eq(b[i].detail, a[i].detail, "%s is another instance after reopening", a[i].id);
		cr_assert_neq(b[i].state, INSTANCE_STOPPED);
	}
	free(b);
	cr_assert(wait_state(rt, "conf", "r1", "v1", INSTANCE_HEALTHY, 2, START_MS));
	struct instance_spec s = d->spec("conf", "r1", "v1");
	uint64_t g = runtime_generation(rt);
	ensure(rt, &s, 2);
	cr_assert_eq(runtime_generation(rt), g, "ensure after reopening changed something");
	tick_for(rt, 300);
	b = snap(rt, "conf", "r1", "v1", &n);
	cr_assert_eq(n, 2, "a duplicate was started");
	for (int i = 0; i < 2; i++) {
		cr_assert_str_eq(b[i].detail, a[i].detail, "%s was started again", a[i].id);
		cr_assert_eq(b[i].restarts, 0);
	}
	free(b);
	/* No orphan: what was adopted is stopped by the new object. */
	runtime_stop_all(rt);
	wait_stopped(rt, "conf", NULL, NULL, 2);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(http_status(a[i].endpoint, "/"), -1, "%s survived stop_all after reopening", a[i].id);
	free(a);
	runtime_close(rt);
}

void conformance_unrunnable_spec_is_refused(const struct conformance_driver *d)
{
	runtime *rt = open_rt(d);
	struct instance_spec s = d->unrunnable("conf", "r1", "v1");
	struct err e = {""};
	uint64_t g = runtime_generation(rt);
	cr_assert_eq(runtime_ensure(rt, &s, 1, &e), -1, "a spec the driver cannot run was accepted");
	cr_assert_neq(e.msg[0], 0, "the refusal says nothing");
	size_t n;
	struct instance_info *v = snap(rt, NULL, NULL, NULL, &n);
	cr_assert_eq(n, 0, "a refused spec left an instance");
	free(v);
	cr_assert_eq(runtime_generation(rt), g);
	/* and the driver still works */
	free(start_healthy(d, rt, "v1", 1));
	runtime_stop_all(rt);
	wait_stopped(rt, NULL, NULL, NULL, 1);
	runtime_close(rt);
}

void conformance_stop_all_stops_everything(const struct conformance_driver *d)
{
	runtime *rt = open_rt(d);
	struct instance_spec s1 = d->spec("conf", "r1", "v1"), s2 = d->spec("conf", "r2", "v2");
	ensure(rt, &s1, 1);
	ensure(rt, &s2, 2);
	cr_assert(wait_state(rt, "conf", NULL, NULL, INSTANCE_HEALTHY, 3, START_MS));
	size_t n;
	struct instance_info *v = snap(rt, NULL, NULL, NULL, &n);
	cr_assert_eq(n, 3);
	runtime_stop_all(rt);
	wait_stopped(rt, NULL, NULL, NULL, 3);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(http_status(v[i].endpoint, "/"), -1, "%s still answers", v[i].id);
	free(v);
	struct instance_info *after = snap(rt, NULL, NULL, NULL, &n);
	cr_assert_eq(n, 0);
	free(after);
	runtime_close(rt);
}
