/*
 * The conformance suite (conformance.h) run for the docker driver against real Docker daemons
 * (started by docker_test.sh: hosts h1 and h2 form the region, h3 is one a test may stop),
 * and what only the docker driver does: containers spread over the hosts, adoption that never
 * duplicates, engine failures as refusals, image archives, crashes restarted.
 *
 * Each test gets its own data directory, so its own owner marker: the driver sees none of
 * another test's containers. The fixture force-removes every sluice container on the hosts
 * after each test (Criterion runs these tests one at a time: -j1 in meson.build).
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conformance.h"
#include "runtime/runtime_docker.h"

static char root[128];

static const char *env_or_fail(const char *k)
{
	const char *v = getenv(k);
	cr_assert(v && *v, "%s is not set: run this test through docker_test.sh", k);
	return v;
}

static json_t *settings_of(const char *h1, const char *h2)
{
	json_t *s = json_pack("{s:[s]}", "hosts", h1);
	if (h2)
		json_array_append_new(json_object_get(s, "hosts"), json_string(h2));
	return s;
}

static int open_hosts(runtime **out, const char *h1, const char *h2, struct err *e)
{
	struct runtime_host host = {.data_dir = root};
	json_t *s = settings_of(h1, h2);
	int rc = runtime_open(out, "docker", s, &host, e);
	json_decref(s);
	return rc;
}

static int open_docker(runtime **out, struct err *e)
{
	return open_hosts(out, env_or_fail("SLUICE_DOCKER_H1"), env_or_fail("SLUICE_DOCKER_H2"), e);
}

static const char *no_args[] = {NULL};

static struct instance_spec spec(const char *service, const char *region, const char *version)
{
	return (struct instance_spec){.service = service, .env = "test", .region = region, .version = version,
				      .artifact = "sluice-testsrv:test", .command = "{artifact}", .args = no_args,
				      .env_vars = no_args, .health_path = "/healthz", .health_interval_ms = 100,
				      .health_timeout_ms = 500, .drain_timeout_ms = 5000};
}

static struct instance_spec unrunnable(const char *service, const char *region, const char *version)
{
	struct instance_spec s = spec(service, region, version);
	s.artifact = "sluice-no-such-image:none";
	return s;
}

static const struct conformance_driver docker = {.open = open_docker, .spec = spec, .unrunnable = unrunnable};

/* ---- the engine, seen by the test directly ---- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct buf *b = ud;
	return buf_add(b, p, size * n) ? 0 : size * n;
}

/* METHOD path on the daemon at unix://SOCK; the status, the body in *out (may be NULL). */
static long engine(const char *host, const char *method, const char *path, json_t **out)
{
	cr_assert(!strncmp(host, "unix://", 7));
	CURL *c = curl_easy_init();
	struct buf b;
	buf_init(&b, 16 << 20);
	char url[1024];
	snprintf(url, sizeof url, "http://docker/v1.41%s", path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, host + 7);
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (!strcmp(method, "POST"))
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	else if (strcmp(method, "GET"))
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	long code = -1;
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(c);
	if (out)
		*out = json_loadb(b.data, b.len, 0, NULL);
	buf_release(&b);
	return code;
}

#define SLUICE_FILTER "/containers/json?all=1&filters=%7B%22label%22%3A%5B%22io.sluice.owner%22%5D%7D"

/* The containers of sluice on a host (any owner). */
static json_t *containers(const char *host)
{
	json_t *l = NULL;
	cr_assert_eq(engine(host, "GET", SLUICE_FILTER, &l), 200, "cannot list the containers of %s", host);
	return l;
}

static void remove_all(const char *host)
{
	json_t *l = NULL;
	if (engine(host, "GET", SLUICE_FILTER, &l) != 200) {
		json_decref(l);
		return;
	}
	size_t i;
	json_t *c;
	json_array_foreach(l, i, c) {
		char p[256];
		snprintf(p, sizeof p, "/containers/%s?force=1", json_string_value(json_object_get(c, "Id")));
		engine(host, "DELETE", p, NULL);
	}
	json_decref(l);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb, (void)flag, (void)f;
	remove(p);
	return 0;
}

static void setup(void)
{
	snprintf(root, sizeof root, "/tmp/sluice-rtd-test-XXXXXX");
	cr_assert_not_null(mkdtemp(root));
}

static void teardown(void)
{
	const char *hs[] = {"SLUICE_DOCKER_H1", "SLUICE_DOCKER_H2", "SLUICE_DOCKER_H3"};
	for (int i = 0; i < 3; i++)
		if (getenv(hs[i]))
			remove_all(getenv(hs[i]));
	nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(conformance_docker, .timeout = 180);

CONFORMANCE_TESTS(conformance_docker, &docker, setup, teardown)

/* ---- what only the docker driver does ---- */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static size_t count_state(runtime *rt, const char *svc, enum instance_state st)
{
	struct instance_info *v = NULL;
	size_t n, k = 0;
	cr_assert_eq(runtime_list(rt, svc, NULL, NULL, NULL, &v, &n), 0);
	for (size_t i = 0; i < n; i++)
		k += v[i].state == st;
	free(v);
	return k;
}

static bool wait_state(runtime *rt, const char *svc, enum instance_state st, size_t n, unsigned ms)
{
	for (uint64_t end = now_ms() + ms;; usleep(10000)) {
		runtime_tick(rt, now_ms());
		if (count_state(rt, svc, st) == n)
			return true;
		if (now_ms() >= end)
			return false;
	}
}

static void stop_and_wait(runtime *rt)
{
	runtime_stop_all(rt);
	for (uint64_t end = now_ms() + 20000; now_ms() < end; usleep(10000)) {
		runtime_tick(rt, now_ms());
		struct instance_info *v = NULL;
		size_t n;
		cr_assert_eq(runtime_list(rt, NULL, NULL, NULL, NULL, &v, &n), 0);
		free(v);
		if (!n)
			return;
	}
	cr_assert_fail("the instances did not stop");
}

static runtime *open_ok(void)
{
	runtime *rt = NULL;
	struct err e = {""};
	cr_assert_eq(open_docker(&rt, &e), 0, "%s", e.msg);
	return rt;
}

static size_t on_host(const char *host, const char *service)
{
	json_t *l = containers(host), *c;
	size_t i, k = 0;
	json_array_foreach(l, i, c) {
		const char *s = json_string_value(json_object_get(json_object_get(c, "Labels"), "io.sluice.service"));
		k += s && !strcmp(s, service);
	}
	json_decref(l);
	return k;
}

Test(docker, instances_spread_over_the_hosts, .init = setup, .fini = teardown, .timeout = 120)
{
	runtime *rt = open_ok();
	struct instance_spec s = spec("spread", "r1", "v1");
	struct err e = {""};
	cr_assert_eq(runtime_ensure(rt, &s, 4, &e), 0, "%s", e.msg);
	cr_assert(wait_state(rt, "spread", INSTANCE_HEALTHY, 4, 30000), "4 instances did not become healthy");
	int per_host[2] = {0, 0};
	for (int i = 0; i < 4; i++) {
		char id[64];
		struct runtime_docker_container c;
		snprintf(id, sizeof id, "spread.test.r1.v1.%d", i);
		cr_assert_eq(runtime_docker_container(rt, id, &c), 0);
		cr_assert(c.host == 0 || c.host == 1);
		cr_assert_eq(strlen(c.id), 64, "a container id of 64 hex digits");
		per_host[c.host]++;
	}
	cr_assert(per_host[0] == 2 && per_host[1] == 2, "4 instances over 2 hosts: %d and %d", per_host[0], per_host[1]);
	cr_assert_eq(on_host(getenv("SLUICE_DOCKER_H1"), "spread"), 2, "the engine of host 1 disagrees");
	cr_assert_eq(on_host(getenv("SLUICE_DOCKER_H2"), "spread"), 2, "the engine of host 2 disagrees");
	stop_and_wait(rt);
	cr_assert_eq(on_host(getenv("SLUICE_DOCKER_H1"), "spread") + on_host(getenv("SLUICE_DOCKER_H2"), "spread"), 0,
		     "stopped instances left containers");
	runtime_close(rt);
}

Test(docker, reopen_adopts_and_never_duplicates, .init = setup, .fini = teardown, .timeout = 120)
{
	runtime *rt = open_ok();
	struct instance_spec s = spec("adopt", "r1", "v1");
	struct err e = {""};
	cr_assert_eq(runtime_ensure(rt, &s, 2, &e), 0, "%s", e.msg);
	/* closed before the containers are even healthy: some may only be created */
	for (uint64_t end = now_ms() + 400; now_ms() < end; usleep(10000))
		runtime_tick(rt, now_ms());
	runtime_close(rt);
	for (int round = 0; round < 3; round++) {
		rt = open_ok();
		cr_assert_eq(runtime_ensure(rt, &s, 2, &e), 0, "%s", e.msg);
		cr_assert(wait_state(rt, "adopt", INSTANCE_HEALTHY, 2, 30000), "round %d: not healthy", round);
		runtime_close(rt);
		size_t n = on_host(getenv("SLUICE_DOCKER_H1"), "adopt") + on_host(getenv("SLUICE_DOCKER_H2"), "adopt");
		cr_assert_eq(n, 2, "round %d: %zu containers for 2 instances", round, n);
	}
	rt = open_ok();
	stop_and_wait(rt);
	runtime_close(rt);
	cr_assert_eq(on_host(getenv("SLUICE_DOCKER_H1"), "adopt") + on_host(getenv("SLUICE_DOCKER_H2"), "adopt"), 0,
		     "an orphan container is left");
}

Test(docker, a_stopped_daemon_is_a_refusal, .init = setup, .fini = teardown, .timeout = 120)
{
	const char *h3 = env_or_fail("SLUICE_DOCKER_H3");
	char cmd[512];
	snprintf(cmd, sizeof cmd, "%s stop %s/h3", env_or_fail("SLUICE_DOCKER_HOST_SH"), env_or_fail("SLUICE_DOCKER_DIR"));
	cr_assert_eq(system(cmd), 0, "could not stop the daemon of h3");
	runtime *rt = NULL;
	struct err e = {""};
	cr_assert_eq(open_hosts(&rt, h3, NULL, &e), 0, "a host that is down does not keep a region from opening: %s",
		     e.msg);
	struct instance_spec s = spec("down", "r1", "v1");
	uint64_t g = runtime_generation(rt);
	cr_assert_eq(runtime_ensure(rt, &s, 1, &e), -1, "an instance was placed on a stopped daemon");
	cr_assert(strstr(e.msg, h3), "the refusal does not name the host: %s", e.msg);
	cr_assert_eq(runtime_generation(rt), g);
	struct instance_info *v = NULL;
	size_t n;
	cr_assert_eq(runtime_list(rt, NULL, NULL, NULL, NULL, &v, &n), 0);
	cr_assert_eq(n, 0);
	runtime_close(rt);
}

/* A tcp:// host is reached over TLS with the client certificate of the `tls` setting (h2's
 * daemon also listens on tcp://127.0.0.1:19990 with --tlsverify): the instance runs there, and
 * an engine whose certificate the given CA did not sign is refused, naming the host. */
static int open_tcp(runtime **out, const char *ca, struct err *e)
{
	const char *tls = env_or_fail("SLUICE_DOCKER_H2_TLS");
	char cert[256], key[256];
	snprintf(cert, sizeof cert, "%s/cert.pem", tls);
	snprintf(key, sizeof key, "%s/key.pem", tls);
	struct runtime_host host = {.data_dir = root};
	json_t *s = json_pack("{s:[s], s:{s:s, s:s, s:s}}", "hosts", env_or_fail("SLUICE_DOCKER_H2_TCP"), "tls",
			      "ca", ca, "cert", cert, "key", key);
	int rc = runtime_open(out, "docker", s, &host, e);
	json_decref(s);
	return rc;
}

Test(docker, a_tcp_host_with_client_certificates, .init = setup, .fini = teardown, .timeout = 120)
{
	char ca[256];
	snprintf(ca, sizeof ca, "%s/ca.pem", env_or_fail("SLUICE_DOCKER_H2_TLS"));
	runtime *rt = NULL;
	struct err e = {""};
	cr_assert_eq(open_tcp(&rt, ca, &e), 0, "%s", e.msg);
	struct instance_spec s = spec("overtls", "r1", "v1");
	cr_assert_eq(runtime_ensure(rt, &s, 1, &e), 0, "%s", e.msg);
	cr_assert(wait_state(rt, "overtls", INSTANCE_HEALTHY, 1, 30000), "the instance did not become healthy");
	cr_assert_eq(on_host(getenv("SLUICE_DOCKER_H2"), "overtls"), 1, "the engine of h2 does not run it");
	struct instance_info *v = NULL;
	size_t n = 0;
	cr_assert_eq(runtime_list(rt, "overtls", NULL, NULL, NULL, &v, &n), 0);
	cr_assert_eq(n, 1);
	cr_expect(!strncmp(v[0].endpoint, "127.0.0.1:", 10), "endpoint %s is not on the host's address", v[0].endpoint);
	free(v);
	stop_and_wait(rt);
	cr_assert_eq(on_host(getenv("SLUICE_DOCKER_H2"), "overtls"), 0, "the stopped instance left its container");
	runtime_close(rt);

	/* the client certificate as the CA: the engine's certificate cannot be verified */
	char wrong[256];
	snprintf(wrong, sizeof wrong, "%s/cert.pem", env_or_fail("SLUICE_DOCKER_H2_TLS"));
	cr_assert_eq(open_tcp(&rt, wrong, &e), 0, "a host that cannot be verified does not keep a region from opening: %s",
		     e.msg);
	struct instance_spec s2 = spec("unverified", "r1", "v1");
	cr_assert_eq(runtime_ensure(rt, &s2, 1, &e), -1, "an instance was placed on an engine that was not verified");
	cr_assert(strstr(e.msg, "tcp://127.0.0.1:19990"), "the refusal does not name the host: %s", e.msg);
	cr_assert_eq(on_host(getenv("SLUICE_DOCKER_H2"), "unverified"), 0);
	runtime_close(rt);
}

Test(docker, a_missing_image_is_a_refusal, .init = setup, .fini = teardown, .timeout = 60)
{
	runtime *rt = open_ok();
	struct instance_spec s = unrunnable("missing", "r1", "v1");
	struct err e = {""};
	cr_assert_eq(runtime_ensure(rt, &s, 2, &e), -1);
	cr_assert(strstr(e.msg, "sluice-no-such-image:none") && strstr(e.msg, "missing"), "%s", e.msg);
	s.artifact = "not an image";
	cr_assert_eq(runtime_ensure(rt, &s, 1, &e), -1);
	cr_assert(strstr(e.msg, "neither an image reference"), "%s", e.msg);
	runtime_close(rt);
}

Test(docker, bad_settings_are_refused, .init = setup, .fini = teardown)
{
	static const struct {
		const char *json, *want;
	} cases[] = {
		{"{}", "need `hosts`"},
		{"{\"hosts\": []}", "1 to 16"},
		{"{\"hosts\": [\"http://x\"]}", "expected unix:///"},
		{"{\"hosts\": [\"tcp://h:2376\"]}", "needs `tls`"},
		{"{\"hosts\": [\"tcp://h\"], \"tls\": {\"ca\": \"a\", \"cert\": \"b\", \"key\": \"c\"}}", "tcp://HOST:PORT"},
		{"{\"hosts\": [\"unix:///a\", \"unix:///a\"]}", "listed twice"},
		{"{\"hosts\": [\"unix:///a\"], \"ports\": [2000, 1000]}", "ports"},
		{"{\"hosts\": [\"unix:///a\"], \"nope\": 1}", "unknown setting 'nope'"},
	};
	struct runtime_host host = {.data_dir = root};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		json_t *j = json_loads(cases[i].json, 0, NULL);
		runtime *rt = NULL;
		struct err e = {""};
		cr_assert_eq(runtime_open(&rt, "docker", j, &host, &e), -1, "%s was accepted", cases[i].json);
		cr_assert(strstr(e.msg, cases[i].want), "%s: '%s' has no '%s'", cases[i].json, e.msg, cases[i].want);
		json_decref(j);
	}
}

Test(docker, an_image_archive_is_loaded_and_run, .init = setup, .fini = teardown, .timeout = 120)
{
	runtime *rt = open_ok();
	struct instance_spec s = spec("archive", "r1", "v1");
	s.artifact = env_or_fail("SLUICE_DOCKER_ARCHIVE");
	struct err e = {""};
	cr_assert_eq(runtime_ensure(rt, &s, 2, &e), 0, "%s", e.msg);
	cr_assert(wait_state(rt, "archive", INSTANCE_HEALTHY, 2, 30000));
	json_t *l = containers(getenv("SLUICE_DOCKER_H1")), *c;
	size_t i;
	bool by_id = false;
	json_array_foreach(l, i, c)
		by_id |= !strncmp(json_string_value(json_object_get(c, "Image")) ?: "", "sha256:", 7);
	json_decref(l);
	cr_assert(by_id, "a container of a loaded archive is not made from the image's id");
	s.artifact = "/nonexistent/image.tar";
	s.version = "v2";
	cr_assert_eq(runtime_ensure(rt, &s, 1, &e), -1);
	cr_assert(strstr(e.msg, "is missing"), "%s", e.msg);
	stop_and_wait(rt);
	runtime_close(rt);
}

Test(docker, a_killed_container_is_restarted_with_backoff, .init = setup, .fini = teardown, .timeout = 120)
{
	runtime *rt = open_ok();
	struct instance_spec s = spec("crash", "r1", "v1");
	struct err e = {""};
	cr_assert_eq(runtime_ensure(rt, &s, 1, &e), 0, "%s", e.msg);
	cr_assert(wait_state(rt, "crash", INSTANCE_HEALTHY, 1, 30000));
	struct runtime_docker_container c;
	cr_assert_eq(runtime_docker_container(rt, "crash.test.r1.v1.0", &c), 0);
	char p[256];
	snprintf(p, sizeof p, "/containers/%s/kill?signal=KILL", c.id);
	const char *host = c.host ? getenv("SLUICE_DOCKER_H2") : getenv("SLUICE_DOCKER_H1");
	cr_assert_eq(engine(host, "POST", p, NULL), 204);
	cr_assert(wait_state(rt, "crash", INSTANCE_BACKOFF, 1, 10000), "the exit was not seen");
	struct instance_info *v = NULL;
	size_t n;
	cr_assert_eq(runtime_list(rt, "crash", NULL, NULL, NULL, &v, &n), 0);
	cr_assert(n == 1 && strstr(v[0].reason, "exited with status 137") && strstr(v[0].reason, "restarting in"),
		  "reason: %s", n ? v[0].reason : "");
	free(v);
	cr_assert(wait_state(rt, "crash", INSTANCE_HEALTHY, 1, 30000), "not restarted");
	cr_assert_eq(runtime_list(rt, "crash", NULL, NULL, NULL, &v, &n), 0);
	cr_assert_eq(v[0].restarts, 1);
	free(v);
	cr_assert_eq(on_host(host, "crash"), 1, "the old container is left beside the new one");
	stop_and_wait(rt);
	runtime_close(rt);
}
