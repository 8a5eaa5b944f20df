/* The router conformance suite (conformance.h) for the built-in proxy driver, against the real
 * `sluice proxy` (the built binary, $SLUICE_BIN). Each check has its own loopback ports,
 * 24100..24199 (admin API at the base, routes above it), used by no other test. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "conformance.h"
#include "util/httpc.h"

static router *proxy_open(const struct router_factory *f, const char *dir, int port)
{
	const char *exe = getenv("SLUICE_BIN");
	cr_assert_not_null(exe, "SLUICE_BIN (the sluice binary) is not set");
	char admin[32];
	snprintf(admin, sizeof(admin), "127.0.0.1:%d", port);
	return router_proxy_new(admin, exe, dir);
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
	int rc = httpc_json(h, "DELETE", url, NULL, &status, &out, &e);
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
