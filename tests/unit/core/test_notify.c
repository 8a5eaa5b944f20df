/*
 * notify: classification of store events, the three wire formats, URL checks, signatures.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "core/notify.h"

static json_t *deployment(const char *kind)
{
	return json_pack("{s:I,s:s,s:s,s:s,s:s}", "id", (json_int_t)7, "service", "checkout", "env",
			 "production", "version", "1.2.0", "kind", kind);
}

Test(notify, classify)
{
	static const struct {
		const char *event, *region, *want;
	} rows[] = {
		{"started", NULL, "deployment.started"},
		{"started", "eu", NULL}, /* a region starting is not the deployment starting */
		{"passed", "eu", "step.passed"},
		{"stage_passed", "pre", "step.passed"},
		{"smoke_passed", "eu", "step.passed"},
		{"done", NULL, "deployment.promoted"},
		{"promoted", "eu", NULL}, /* one region promoted: the deployment's "done" says it once */
		{"rolled_back", NULL, "deployment.rolled_back"},
		{"failed", NULL, "deployment.aborted"},
		{"preempted", NULL, "deployment.aborted"},
		{"aborted", "eu", NULL},
		{"region_failed", "eu", "region.failed"},
		{"reverted", "eu", "bake.failed"},
		{"step", "eu", NULL},
		{"healthy", "eu", NULL},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const char *got = notify_classify(rows[i].event, rows[i].region);
		if (rows[i].want)
			cr_assert(got && !strcmp(got, rows[i].want), "%s/%s: %s", rows[i].event,
				  rows[i].region ? rows[i].region : "-", got ? got : "NULL");
		else
			cr_assert_null(got, "%s/%s: %s", rows[i].event, rows[i].region ? rows[i].region : "-", got);
	}
	for (int i = 0; notify_types[i]; i++)
		cr_assert_not_null(notify_cloudevents_type(notify_types[i], "deploy"), "%s", notify_types[i]);
	cr_assert_str_eq(notify_cloudevents_type("deployment.promoted", "rollback"),
			 "dev.cdevents.service.rolledback.0.1.1");
	cr_assert_str_eq(notify_cloudevents_type("deployment.promoted", "deploy"),
			 "dev.cdevents.service.deployed.0.1.1");
}

Test(notify, types_csv)
{
	char csv[NOTIFY_TYPES_CSV_MAX];
	struct err e;
	json_t *t = json_pack("[s,s,s]", "step.passed", "deployment.started", "step.passed");
	cr_assert_eq(notify_types_csv(t, csv, &e), 0, "%s", e.msg);
	cr_assert_str_eq(csv, ",deployment.started,step.passed,", "each once, in the table's order");
	json_decref(t);
	t = json_string("all");
	cr_assert_eq(notify_types_csv(t, csv, &e), 0);
	for (int i = 0; notify_types[i]; i++)
		cr_assert_not_null(strstr(csv, notify_types[i]));
	cr_assert_lt(strlen(csv), sizeof(csv));
	json_decref(t);
	const char *bad[] = {"[\"deployment.exploded\"]", "[]", "\"some\"", "[1]", "{}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t = json_loads(bad[i], JSON_DECODE_ANY, NULL);
		cr_assert_eq(notify_types_csv(t, csv, &e), -1, "%s", bad[i]);
		json_decref(t);
	}
}

Test(notify, url_check)
{
	struct err e;
	const char *good[] = {"http://127.0.0.1:8080/hook", "https://hooks.slack.com/services/T0/B0/xyz",
			      "http://[::1]:9000/a?b=c&d=%2F", "https://example.com", "http://a-b.example:1/"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		cr_assert_eq(notify_url_check(good[i], &e), 0, "%s: %s", good[i], e.msg);
	static const struct {
		const char *url, *says;
	} bad[] = {
		{"", "required"},
		{"ftp://example.com/", "http"},
		{"HTTP://example.com/", "http"},
		{"file:///etc/passwd", "http"},
		{"http://user:pw@example.com/", "user information"},
		{"http:///path", "no host"},
		{"http://example.com:0/", "port"},
		{"http://example.com:65536/", "port"},
		{"http://example.com:80a/", "port"},
		{"http://exa mple.com/", "host"},
		{"http://example.com/a b", "0x20"},
		{"http://example.com/a\r\nX: y", "0x0d"},
		{"http://example.com/#frag", "fragment"},
		{"http://example.com/%zz", "escape"},
		{"http://-example.com/", "host name"},
		{"http://[zz]/", "IPv6"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(notify_url_check(bad[i].url, &e), -1, "%s", bad[i].url);
		cr_assert_not_null(strstr(e.msg, bad[i].says), "%s: %s", bad[i].url, e.msg);
	}
	static char big[NOTIFY_URL_MAX + 64];
	memset(big, 'a', sizeof(big) - 1);
	memcpy(big, "http://example.com/", 19);
	big[NOTIFY_URL_MAX + 1] = '\0';
	cr_assert_eq(notify_url_check(big, &e), -1);
}

static json_t *render(const char *format, const json_t *payload, const char **ctype)
{
	char *body = NULL;
	size_t len = 0;
	struct err e;
	cr_assert_eq(notify_render(format, "42", payload, &body, &len, ctype, &e), 0, "%s", e.msg);
	cr_assert_eq(strlen(body), len);
	json_error_t je;
	json_t *j = json_loads(body, 0, &je);
	cr_assert_not_null(j, "%s: %s", body, je.text);
	free(body);
	return j;
}

Test(notify, formats)
{
	json_t *d = deployment("deploy"), *ev = json_pack("{s:s}", "decision", "fail");
	json_t *p = notify_payload("deployment.rolled_back", d, 1764780675123LL, "rolled_back", NULL,
				   "5xx rate 12% > 1%", ev);
	cr_assert_str_eq(json_string_value(json_object_get(p, "time")), "2025-12-03T16:51:15.123Z");
	cr_assert_eq(json_integer_value(json_object_get(p, "deployment")), 7);
	cr_assert(json_is_null(json_object_get(p, "region")));

	const char *ct;
	json_t *j = render("json", p, &ct);
	cr_assert_str_eq(ct, "application/json");
	cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "42");
	cr_assert_str_eq(json_string_value(json_object_get(j, "type")), "deployment.rolled_back");
	cr_assert_str_eq(json_string_value(json_object_get(j, "message")), "5xx rate 12% > 1%");
	cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "evidence"), "decision")), "fail");
	json_decref(j);

	j = render("slack", p, &ct);
	const char *text = json_string_value(json_object_get(j, "text"));
	cr_assert_not_null(text);
	cr_assert_not_null(strstr(text, "*checkout* 1.2.0 rolled back in production: 5xx rate 12% > 1%"), "%s", text);
	json_decref(j);

	j = render("cloudevents", p, &ct);
	cr_assert_str_eq(ct, "application/cloudevents+json");
	cr_assert_str_eq(json_string_value(json_object_get(j, "specversion")), "1.0");
	cr_assert_str_eq(json_string_value(json_object_get(j, "id")), "42");
	cr_assert_str_eq(json_string_value(json_object_get(j, "source")), "/sluice/production/checkout");
	cr_assert_str_eq(json_string_value(json_object_get(j, "type")), "dev.cdevents.service.rolledback.0.1.1");
	cr_assert_str_eq(json_string_value(json_object_get(j, "subject")), "deployments/7");
	cr_assert_str_eq(json_string_value(json_object_get(j, "time")), "2025-12-03T16:51:15.123Z");
	cr_assert_str_eq(json_string_value(json_object_get(j, "datacontenttype")), "application/json");
	cr_assert(json_equal(json_object_get(j, "data"), p), "the payload is the data");
	json_decref(j);

	char *body;
	size_t len;
	struct err e;
	cr_assert_eq(notify_render("xml", "1", p, &body, &len, &ct, &e), -1);
	cr_assert_eq(notify_render("json", "", p, &body, &len, &ct, &e), -1, "an id is required");
	json_decref(p);
	json_decref(ev);
	json_decref(d);

	/* a flag's notification: no service, no deployment */
	p = json_pack("{s:s,s:s,s:s,s:s,s:s}", "type", "flag.killed", "time", "2026-01-01T00:00:00.000Z",
		      "env", "production", "flag", "dark-mode", "message", "it broke");
	j = render("cloudevents", p, &ct);
	cr_assert_str_eq(json_string_value(json_object_get(j, "source")), "/sluice/production");
	cr_assert_str_eq(json_string_value(json_object_get(j, "type")), "dev.sluice.flag.killed.0.1.0");
	json_decref(j);
	j = render("slack", p, &ct);
	cr_assert_not_null(strstr(json_string_value(json_object_get(j, "text")), "dark-mode in production: it broke"));
	json_decref(j);
	json_decref(p);
}

Test(notify, signature)
{
	/* RFC 4231, test case 2 */
	char sig[NOTIFY_SIGNATURE_LEN + 1];
	const char *data = "what do ya want for nothing?";
	notify_sign("Jefe", data, strlen(data), sig);
	cr_assert_str_eq(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	notify_sign("Jefe", data, strlen(data) - 1, sig);
	cr_assert_str_neq(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}
