/*
 * notify: notification types, payloads and wire formats (see notify.h).
 */
#include "core/notify.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const notify_types[] = {
	"deployment.started", "step.passed",  "deployment.aborted", "deployment.rolled_back",
	"deployment.promoted", "region.failed", "bake.failed",       "gate.refused",
	"flag.killed",        "flag.reverted", NULL,
};

const char *const notify_formats[] = {"json", "slack", "cloudevents", NULL};

static int in_list(const char *const *list, const char *s)
{
	for (int i = 0; s && list[i]; i++)
		if (!strcmp(list[i], s))
			return 1;
	return 0;
}

int notify_type_ok(const char *type)
{
	return in_list(notify_types, type);
}

int notify_format_ok(const char *format)
{
	return in_list(notify_formats, format);
}

/* Store events (core/pipeline.c's records) that announce something. A deployment's end is
 * announced once, by its closing record (region NULL), which carries the reason. */
static const struct {
	const char *event;
	int whole; /* 1: only the deployment's own record (region NULL) */
	const char *type;
} classes[] = {
	{"started", 1, "deployment.started"},
	{"passed", 0, "step.passed"},
	{"stage_passed", 0, "step.passed"},
	{"smoke_passed", 0, "step.passed"},
	{"done", 1, "deployment.promoted"},
	{"rolled_back", 1, "deployment.rolled_back"},
	{"failed", 1, "deployment.aborted"},
	{"preempted", 1, "deployment.aborted"},
	{"region_failed", 0, "region.failed"},
	{"reverted", 0, "bake.failed"},
};

const char *notify_classify(const char *event_type, const char *region)
{
	for (size_t i = 0; event_type && i < sizeof(classes) / sizeof(classes[0]); i++)
		if (!strcmp(classes[i].event, event_type) && (!classes[i].whole || !region))
			return classes[i].type;
	return NULL;
}

/* CDEvents has subjects for what a deployment does to a service (deployed, rolledback), for
 * pipeline and task runs, for test suites (the gate is one) and for incidents; flags have no
 * CDEvents subject, so theirs are named the same way under dev.sluice. */
const char *notify_cloudevents_type(const char *type, const char *kind)
{
	int rollback = kind && !strcmp(kind, "rollback");
	if (!type)
		return NULL;
	if (!strcmp(type, "deployment.started"))
		return "dev.cdevents.pipelinerun.started.0.1.1";
	if (!strcmp(type, "step.passed"))
		return "dev.cdevents.taskrun.finished.0.1.1";
	if (!strcmp(type, "deployment.promoted"))
		return rollback ? "dev.cdevents.service.rolledback.0.1.1" : "dev.cdevents.service.deployed.0.1.1";
	if (!strcmp(type, "deployment.rolled_back"))
		return "dev.cdevents.service.rolledback.0.1.1";
	if (!strcmp(type, "deployment.aborted"))
		return "dev.cdevents.pipelinerun.finished.0.1.1";
	if (!strcmp(type, "region.failed") || !strcmp(type, "bake.failed"))
		return "dev.cdevents.incident.detected.0.1.0";
	if (!strcmp(type, "gate.refused"))
		return "dev.cdevents.testsuiterun.finished.0.1.0";
	if (!strcmp(type, "flag.killed"))
		return "dev.sluice.flag.killed.0.1.0";
	if (!strcmp(type, "flag.reverted"))
		return "dev.sluice.flag.reverted.0.1.0";
	return NULL;
}

int notify_types_csv(const json_t *types, char out[NOTIFY_TYPES_CSV_MAX], struct err *e)
{
	out[0] = '\0';
	int want[32] = {0};
	int n = 0;
	while (notify_types[n])
		n++;
	if (json_is_string(types) && !strcmp(json_string_value(types), "all")) {
		for (int i = 0; i < n; i++)
			want[i] = 1;
	} else if (json_is_array(types) && json_array_size(types) > 0) {
		size_t i;
		json_t *t;
		json_array_foreach(types, i, t) {
			const char *s = json_string_value(t);
			int k = 0;
			while (k < n && (!s || strcmp(notify_types[k], s)))
				k++;
			if (k == n)
				return err_set(e, "types[%zu]: '%s' is not a notification type (known: %s, ... "
						  "see docs/observability.md, or \"all\")",
					       i, s ? s : "(not a string)", notify_types[0]);
			want[k] = 1;
		}
	} else {
		return err_set(e, "types: an array of notification types, or \"all\"");
	}
	size_t len = 0;
	out[len++] = ',';
	for (int i = 0; i < n; i++)
		if (want[i])
			len += (size_t)snprintf(out + len, NOTIFY_TYPES_CSV_MAX - len, "%s,", notify_types[i]);
	out[len] = '\0';
	return 0;
}

static int is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int notify_url_check(const char *url, struct err *e)
{
	if (!url || !*url)
		return err_set(e, "url: required");
	size_t len = strlen(url);
	if (len > NOTIFY_URL_MAX)
		return err_set(e, "url: longer than %d bytes", NOTIFY_URL_MAX);
	const char *p;
	if (!strncmp(url, "http://", 7))
		p = url + 7;
	else if (!strncmp(url, "https://", 8))
		p = url + 8;
	else
		return err_set(e, "url: only http:// and https:// webhooks (lowercase scheme)");
	/* authority: host [":" port], ends at '/', '?' or the end */
	size_t alen = strcspn(p, "/?#");
	if (alen == 0)
		return err_set(e, "url: no host");
	if (memchr(p, '@', alen))
		return err_set(e, "url: user information (user@host) is not allowed; put a secret in --secret");
	const char *port = NULL;
	if (p[0] == '[') {
		const char *close = memchr(p, ']', alen);
		if (!close || close == p + 1)
			return err_set(e, "url: an IPv6 host is [ADDRESS]");
		for (const char *q = p + 1; q < close; q++)
			if (!is_hex(*q) && *q != ':' && *q != '.')
				return err_set(e, "url: '%c' in an IPv6 address", *q);
		if (close + 1 < p + alen) {
			if (close[1] != ':')
				return err_set(e, "url: after [ADDRESS] only :PORT");
			port = close + 2;
		}
	} else {
		const char *colon = memchr(p, ':', alen);
		size_t hlen = colon ? (size_t)(colon - p) : alen;
		if (hlen == 0 || hlen > 253)
			return err_set(e, "url: the host must have 1 to 253 characters");
		for (size_t i = 0; i < hlen; i++) {
			char c = p[i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			      c == '-' || c == '.'))
				return err_set(e, "url: '%c' is not allowed in a host name", c);
		}
		if (p[0] == '.' || p[0] == '-' || p[hlen - 1] == '-' || memmem(p, hlen, "..", 2))
			return err_set(e, "url: '%.*s' is not a host name", (int)hlen, p);
		if (colon)
			port = colon + 1;
	}
	if (port) {
		size_t plen = (size_t)(p + alen - port);
		long v = 0;
		if (plen == 0 || plen > 5)
			return err_set(e, "url: the port must be 1 to 65535");
		for (size_t i = 0; i < plen; i++) {
			if (port[i] < '0' || port[i] > '9')
				return err_set(e, "url: the port must be 1 to 65535");
			v = v * 10 + (port[i] - '0');
		}
		if (v < 1 || v > 65535)
			return err_set(e, "url: the port must be 1 to 65535");
	}
	/* path and query: RFC 3986 pchar, '/' and '?', percent escapes well formed; no fragment */
	for (const char *q = p + alen; *q; q++) {
		unsigned char c = (unsigned char)*q;
		if (c == '#')
			return err_set(e, "url: a fragment (#...) is never sent; remove it");
		if (c == '%') {
			if (!is_hex(q[1]) || !is_hex(q[2]))
				return err_set(e, "url: '%%' must start an escape like %%2F");
			q += 2;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("-._~!$&'()*+,;=:@/?", c)))
			return err_set(e, "url: character 0x%02x at offset %zu is not allowed (escape it)", c,
				       (size_t)(q - url));
	}
	return 0;
}

void notify_time(int64_t ms, char out[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

static void set_str(json_t *o, const char *k, const char *v)
{
	json_object_set_new(o, k, v ? json_string(v) : json_null());
}

json_t *notify_payload(const char *type, const json_t *deployment, int64_t at_ms, const char *event,
		       const char *region, const char *message, const json_t *evidence)
{
	char when[32];
	notify_time(at_ms, when);
	json_t *p = json_object();
	set_str(p, "type", type);
	set_str(p, "time", when);
	set_str(p, "service", json_string_value(json_object_get(deployment, "service")));
	set_str(p, "env", json_string_value(json_object_get(deployment, "env")));
	set_str(p, "version", json_string_value(json_object_get(deployment, "version")));
	json_object_set_new(p, "deployment",
			    json_integer(json_integer_value(json_object_get(deployment, "id"))));
	set_str(p, "kind", json_string_value(json_object_get(deployment, "kind")));
	set_str(p, "region", region);
	set_str(p, "event", event);
	set_str(p, "message", message ? message : "");
	if (evidence)
		json_object_set_new(p, "evidence", json_deep_copy(evidence));
	return p;
}

static const char *str(const json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : "";
}

/* One line a person reads in a chat channel. */
static json_t *slack_body(const json_t *p)
{
	static const struct {
		const char *type, *icon, *what;
	} lines[] = {
		{"deployment.started", ":rocket:", "started"},
		{"step.passed", ":white_check_mark:", "passed a step"},
		{"deployment.aborted", ":octagonal_sign:", "aborted"},
		{"deployment.rolled_back", ":rotating_light:", "rolled back"},
		{"deployment.promoted", ":tada:", "promoted"},
		{"region.failed", ":x:", "failed in a region"},
		{"bake.failed", ":rotating_light:", "failed its bake"},
		{"gate.refused", ":no_entry:", "refused by the compatibility gate"},
		{"flag.killed", ":red_circle:", "flag killed"},
		{"flag.reverted", ":leftwards_arrow_with_hook:", "flag set reverted"},
	};
	const char *type = str(p, "type"), *icon = ":information_source:", *what = type;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		if (!strcmp(lines[i].type, type)) {
			icon = lines[i].icon;
			what = lines[i].what;
		}
	char buf[2048];
	const char *svc = str(p, "service"), *region = str(p, "region");
	int n;
	if (!strncmp(type, "flag.", 5))
		n = snprintf(buf, sizeof(buf), "%s %s: %s in %s", icon, what, str(p, "flag"), str(p, "env"));
	else
		n = snprintf(buf, sizeof(buf), "%s *%s* %s %s in %s%s%s", icon, svc, str(p, "version"), what,
			     str(p, "env"), *region ? "/" : "", region);
	const char *msg = str(p, "message");
	if (n > 0 && (size_t)n < sizeof(buf) && *msg)
		snprintf(buf + n, sizeof(buf) - (size_t)n, ": %s", msg);
	json_int_t dep = json_integer_value(json_object_get(p, "deployment"));
	json_t *body = json_pack("{s:s}", "text", buf);
	if (dep)
		json_object_set_new(body, "deployment", json_integer(dep));
	return body;
}

int notify_render(const char *format, const char *id, const json_t *payload, char **body, size_t *len,
		  const char **ctype, struct err *e)
{
	*body = NULL;
	*len = 0;
	*ctype = NULL;
	const char *type = json_string_value(json_object_get(payload, "type"));
	if (!type || !id || !*id)
		return err_set(e, "notify: a payload needs its type and a delivery id");
	json_t *out;
	if (!strcmp(format, "json")) {
		out = json_deep_copy(payload);
		json_object_set_new(out, "id", json_string(id));
		*ctype = "application/json";
	} else if (!strcmp(format, "slack")) {
		out = slack_body(payload);
		*ctype = "application/json";
	} else if (!strcmp(format, "cloudevents")) {
		const char *ce = notify_cloudevents_type(type, str(payload, "kind"));
		if (!ce)
			return err_set(e, "notify: no CloudEvents type for '%s'", type);
		char source[512], subject[512];
		const char *svc = str(payload, "service"), *env = str(payload, "env");
		snprintf(source, sizeof(source), "/sluice/%s%s%s", *env ? env : "-", *svc ? "/" : "", svc);
		json_int_t dep = json_integer_value(json_object_get(payload, "deployment"));
		if (dep)
			snprintf(subject, sizeof(subject), "deployments/%lld", (long long)dep);
		else
			snprintf(subject, sizeof(subject), "%s", type);
		out = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:O}", "specversion", "1.0", "id", id, "source",
				source, "type", ce, "subject", subject, "time", str(payload, "time"),
				"datacontenttype", "application/json", "data", payload);
		*ctype = "application/cloudevents+json";
	} else {
		return err_set(e, "notify: unknown format '%s'", format);
	}
	if (!out)
		return err_set(e, "notify: out of memory");
	*body = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(out);
	if (!*body)
		return err_set(e, "notify: out of memory");
	*len = strlen(*body);
	return 0;
}

void notify_sign(const char *secret, const char *body, size_t len, char sig[NOTIFY_SIGNATURE_LEN + 1])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, len, mac, &n);
	memcpy(sig, "sha256=", 7);
	for (unsigned i = 0; i < n && i < 32; i++)
		snprintf(sig + 7 + 2 * i, 3, "%02x", mac[i]);
	sig[NOTIFY_SIGNATURE_LEN] = '\0';
}
