/*
 * The API's browser safety (the first middleware): a Host that is not one of the server's
 * names is refused (DNS rebinding), and a request that may change something must carry the
 * JSON content type (or octet-stream for an artifact), which a web page cannot send across
 * origins without a CORS preflight. Requests are parsed from their bytes, as the server does.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/parse.h"
#include "server/api.h"
#include "support/shell.h"

static struct shell sh;
static struct shell_answer ans;

static void setup(void)
{
	static const char *const hosts[] = {"sluice.internal:7070", "[fd00::1]", NULL};
	shell_open(&sh, &(struct shell_opts){.hosts = hosts});
}

static void teardown(void)
{
	shell_answer_free(&ans);
	shell_close(&sh);
}

/* Sends the request bytes `raw` (head and body) to the API with the admin token added after
 * the request line (the middleware before authentication refuses first); returns the status. */
static int call(const char *raw, char *body_out, size_t len)
{
	char with[8192];
	const char *eol = strstr(raw, "\r\n");
	cr_assert(eol);
	int n = snprintf(with, sizeof(with), "%.*sAuthorization: Bearer %s\r\n%s", (int)(eol - raw + 2), raw,
			 sh.admin, eol + 2);
	cr_assert_lt(n, (int)sizeof(with));
	int status = shell_raw(&sh, with, (size_t)n, &ans);
	if (body_out)
		snprintf(body_out, len, "%s", ans.text);
	return status;
}

TestSuite(api_browser, .init = setup, .fini = teardown);

Test(api_browser, host_and_content_type)
{
	static const struct {
		const char *raw;
		int status;
		const char *says;
	} cases[] = {
		/* the server's own names, with or without a port, any case */
		{"GET /v1/services HTTP/1.1\r\nHost: 127.0.0.1:7070\r\n\r\n", 200, NULL},
		{"GET /v1/services HTTP/1.1\r\nHost: LocalHost\r\n\r\n", 200, NULL},
		{"GET /v1/services HTTP/1.1\r\nHost: [::1]:7070\r\n\r\n", 200, NULL},
		{"GET /v1/services HTTP/1.1\r\nHost: sluice.internal\r\n\r\n", 200, NULL},
		{"GET /v1/services HTTP/1.1\r\nHost: [fd00::1]:80\r\n\r\n", 200, NULL},
		/* DNS rebinding: a foreign name that resolves to loopback */
		{"GET /v1/services HTTP/1.1\r\nHost: attacker.example:7070\r\n\r\n", 421, "attacker.example"},
		{"GET /v1/services HTTP/1.1\r\nHost: 127.0.0.1.attacker.example\r\n\r\n", 421, "--allow-host"},
		{"GET /v1/services HTTP/1.1\r\nHost: localhost:70x\r\n\r\n", 421, NULL},
		{"GET /v1/services HTTP/1.0\r\n\r\n", 400, "Host header is required"},
		/* a form or text/plain POST from a web page: refused before the handler */
		{"POST /v1/shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}", 415, "application/json"},
		{"POST /v1/shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\n\r\n", 415, NULL},
		{"POST /v1/shutdown HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n", 415, NULL},
		{"POST /v1/deployments HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/jsonx\r\nContent-Length: 2\r\n\r\n{}", 415, NULL},
		{"PUT /v1/artifacts/sha256:0000000000000000000000000000000000000000000000000000000000000000 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\nx", 415, "application/octet-stream"},
		/* the JSON type (with parameters) reaches the handler: here its own 400 */
		{"POST /v1/deployments HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 2\r\n\r\n{}", 400, "service"},
		{"POST /v1/deployments HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: Application/JSON\r\nContent-Length: 2\r\n\r\n{}", 400, "service"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char body[4096];
		int status = call(cases[i].raw, body, sizeof(body));
		cr_expect_eq(status, cases[i].status, "case %zu: %d %s", i, status, body);
		if (cases[i].says)
			cr_expect(strstr(body, cases[i].says), "case %zu: '%s' not in %s", i, cases[i].says, body);
	}
}

/* Every body is typed strictly: a wrong type, an unknown or duplicate field is a 400 that
 * names the field, and nothing happens (the type confusion `"force": "yes", "env": 5` was
 * once accepted and deployed to production). */
Test(api_browser, bodies_are_typed_strictly)
{
	static const struct {
		const char *method, *path, *body, *says;
	} cases[] = {
		{"POST", "/v1/deployments", "{\"service\":\"svc\",\"version\":\"v1\",\"force\":\"yes\"}", "field 'force'"},
		{"POST", "/v1/deployments", "{\"service\":\"svc\",\"version\":\"v1\",\"env\":5}", "field 'env'"},
		{"POST", "/v1/deployments", "{\"service\":\"svc\",\"version\":\"v1\",\"forse\":true}", "force"},
		{"POST", "/v1/deployments", "{\"service\":\"svc\",\"version\":\"v1\",\"hotfix\":1}", "field 'hotfix'"},
		{"POST", "/v1/deployments", "{\"service\":\"Svc\",\"version\":\"v1\"}", "field 'service'"},
		{"POST", "/v1/deployments", "{\"service\":\"svc\",\"version\":\"../x\"}", "field 'version'"},
		{"POST", "/v1/deployments", "{\"service\":\"svc\"}", "version"},
		{"POST", "/v1/deployments", "[1]", "object"},
		{"POST", "/v1/deployments", "{\"service\":\"a\",\"service\":\"b\",\"version\":\"v1\"}", "duplicate"},
		{"POST", "/v1/deployments", "{\"service\":", "line 1 column"},
		{"POST", "/v1/services/svc/releases", "{\"version\":\"v1\",\"digest\":\"sha256:../../../../bin/sh\"}", "field 'digest'"},
		{"POST", "/v1/services/svc/releases", "{\"version\":\"v1\",\"digest\":\"sha256:0000\",\"contract\":[]}", "field 'digest'"},
		{"POST", "/v1/services/svc/rollback", "{\"to\":7}", "field 'to'"},
		{"POST", "/v1/deployments/1/retry", "{}", "region"},
		{"POST", "/v1/plan", "{\"targets\":{\"Bad_Name\":\"v1\"}}", "targets.Bad_Name"},
		{"POST", "/v1/plan", "{\"targets\":[]}", "field 'targets'"},
		{"POST", "/v1/apply", "{\"files\":[]}", "field 'files'"},
		{"POST", "/v1/apply", "{\"files\":[{\"name\":\"a.yaml\"}]}", "content"},
		{"POST", "/v1/shutdown", "{\"data_plane\":\"yes\"}", "field 'data_plane'"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char raw[1024], body[4096];
		snprintf(raw, sizeof(raw), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\n\r\n%s", cases[i].method, cases[i].path, strlen(cases[i].body),
			 cases[i].body);
		int status = call(raw, body, sizeof(body));
		cr_expect_eq(status, 400, "case %zu (%s): %d %s", i, cases[i].body, status, body);
		cr_expect(strstr(body, cases[i].says), "case %zu: '%s' not in %s", i, cases[i].says, body);
	}
	json_t *deps = NULL;
	struct err e;
	cr_assert_eq(store_list_deployments(sh.store, NULL, &deps, &e), 0, "%s", e.msg);
	cr_expect_eq(json_array_size(deps), 0, "nothing was created");
	json_decref(deps);
}
