/* The router conformance suite (conformance.h) for the built-in proxy driver, against the real
 * `sluice proxy` (the built binary, $SLUICE_BIN). Each check has its own loopback ports,
 * 24100..24209 (admin API at the base, routes above it), used by no other test. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "conformance.h"
#include "util/httpc.h"

/* The admin token every proxy of these checks is started with (docs/proxy.md). */
#define TOKEN "conformance-admin-token-0123456789"

static router *proxy_open(const struct router_factory *f, const char *dir, int port)
{
	const char *exe = getenv("SLUICE_BIN");
	cr_assert_not_null(exe, "SLUICE_BIN (the sluice binary) is not set");
	char admin[32];
	snprintf(admin, sizeof(admin), "127.0.0.1:%d", port);
	return router_proxy_new(admin, exe, dir, TOKEN);
}

/* SIGKILL to the pid the driver recorded; the proxy is not our child (it runs in its own
 * session), so its end is seen on its admin port. */
static int proxy_crash(const struct router_factory *f, router *r, const char *dir, int port)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/proxy.pid", dir);
	FILE *p = fopen(path, "r");
	int pid = 0;
	if (!p)
		return -1;
	if (fscanf(p, "%d", &pid) != 1)
		pid = 0;
	fclose(p);
	return pid > 1 ? kill(pid, SIGKILL) : -1;
}

static int proxy_drop_route(const struct router_factory *f, const char *dir, int port, const char *name)
{
	char url[256];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/routes/%s", port, name);
	httpc *h = httpc_new(2000, 1 << 20);
	long status = 0;
	json_t *out = NULL;
	struct err e = {""};
	const char *hdrs[] = {"Authorization: Bearer " TOKEN, NULL};
	int rc = httpc_set_headers(h, hdrs, &e);
	if (!rc)
		rc = httpc_json(h, "DELETE", url, NULL, &status, &out, &e);
	json_decref(out);
	httpc_free(h);
	return rc == 0 && status == 200 ? 0 : -1;
}

static const struct router_factory proxy = {
	.kind = "proxy",
	.open = proxy_open,
	.crash = proxy_crash,
	.drop_route = proxy_drop_route,
};

TestSuite(router_proxy, .fini = router_conformance_fini, .timeout = 60);

Test(router_proxy, ensure_starts_it_and_it_answers) { router_conformance_ensure(&proxy, 24100); }
Test(router_proxy, two_weighted_versions_carry_traffic) { router_conformance_weighted(&proxy, 24110); }
Test(router_proxy, a_changed_weight_is_applied) { router_conformance_reweight(&proxy, 24120); }
Test(router_proxy, an_identical_put_is_not_sent_again) { router_conformance_idempotent(&proxy, 24130); }
Test(router_proxy, delete) { router_conformance_delete(&proxy, 24140); }
Test(router_proxy, a_removed_backend_drains) { router_conformance_drain(&proxy, 24150); }
Test(router_proxy, counters_per_version) { router_conformance_counters(&proxy, 24160); }
Test(router_proxy, a_replaced_proxy_changes_the_generation) { router_conformance_generation(&proxy, 24170); }
Test(router_proxy, stop) { router_conformance_stop(&proxy, 24180); }
Test(router_proxy, routes_by_host_share_a_port) { router_conformance_hosts(&proxy, 24190); }

/* The status of `method url` sent with the header field auth (NULL: none). */
static long admin_status(const char *method, const char *url, const char *auth)
{
	httpc *h = httpc_new(2000, 1 << 20);
	cr_assert_not_null(h);
	struct err e = {""};
	const char *hdrs[] = {auth, NULL};
	cr_assert_eq(httpc_set_headers(h, hdrs, &e), 0, "%s", e.msg);
	long status = 0;
	json_t *out = NULL;
	int rc = httpc_json(h, method, url, NULL, &status, &out, &e);
	json_decref(out);
	httpc_free(h);
	cr_assert_eq(rc, 0, "%s %s: %s", method, url, e.msg);
	return status;
}

/* Another user of this machine who reaches the admin port cannot change or read the routes:
 * every call but GET /healthz and GET /metrics needs the token the router started the proxy with, and a
 * router that has another token is refused too. */
Test(router_proxy, the_admin_api_needs_the_token)
{
	char dir[] = "/tmp/sluice-router-token-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	router *r = proxy_open(&proxy, dir, 24200);
	cr_assert_not_null(r);
	struct err e = {""};
	cr_assert_eq(router_ensure(r, &e), 0, "%s", e.msg);
	const char *base = "http://127.0.0.1:24200";
	char url[128];
	snprintf(url, sizeof(url), "%s/healthz", base);
	cr_expect_eq(admin_status("GET", url, NULL), 200);
	snprintf(url, sizeof(url), "%s/v1/routes", base);
	cr_expect_eq(admin_status("GET", url, NULL), 401);
	cr_expect_eq(admin_status("GET", url, "Authorization: Bearer wrong-token-0123456789"), 401);
	cr_expect_eq(admin_status("GET", url, "Authorization: Bearer " TOKEN "x"), 401);
	cr_expect_eq(admin_status("GET", url, "Authorization: Basic " TOKEN), 401);
	cr_expect_eq(admin_status("GET", url, "Authorization: Bearer " TOKEN), 200);
	snprintf(url, sizeof(url), "%s/v1/routes/x.prod.east", base);
	cr_expect_eq(admin_status("DELETE", url, NULL), 401);
	snprintf(url, sizeof(url), "%s/v1/metrics", base);
	cr_expect_eq(admin_status("GET", url, NULL), 401);
	/* the Prometheus text stays open: a scraper needs no token that changes routes */
	snprintf(url, sizeof(url), "%s/metrics", base);
	cr_expect_eq(admin_status("GET", url, NULL), 200);

	router *other = router_proxy_remote("127.0.0.1:24200", "another-token-0123456789abcdef", NULL);
	cr_assert_not_null(other);
	const char *const be[] = {"127.0.0.1:24209"};
	struct router_version v = {.name = "v1", .weight = 100, .backends = be, .nbackends = 1};
	struct router_route rt = {.name = "svc.prod.east", .port = 24201, .versions = &v,
				  .nversions = 1};
	cr_expect_neq(router_put_route(other, &rt, &e), 0, "a router with another token put a route");
	cr_expect_eq(router_put_route(r, &rt, &e), 0, "%s", e.msg);
	router_free(other);
	router_stop(r);
	router_free(r);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_expect_eq(system(cmd), 0);
}
