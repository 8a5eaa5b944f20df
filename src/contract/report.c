#include "contract/report.h"

#include <stdarg.h>
#include <string.h>

void report_add(json_t *findings, const char *severity, const struct report_loc *loc, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct report_loc l = {0};
	if (loc)
		l = *loc;
	json_array_append_new(findings, json_pack("{s:s, s:s?, s:s?, s:s?, s:s?, s:s}", "severity", severity,
						  "operation", l.operation, "status", l.status, "in", l.in, "path",
						  l.path, "message", msg));
}

size_t report_count(const json_t *findings, const char *severity)
{
	size_t n = 0, i;
	json_t *f;
	json_array_foreach(findings, i, f)
		if (!strcmp(json_string_value(json_object_get(f, "severity")) ?: "", severity))
			n++;
	return n;
}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

static void print_findings(FILE *f, const json_t *findings, const char *indent)
{
	size_t i;
	json_t *x;
	json_array_foreach(findings, i, x) {
		fprintf(f, "%s%-8s ", indent, str(x, "severity"));
		const char *parts[] = {str(x, "operation"), str(x, "status"), str(x, "in"), str(x, "path")};
		int any = 0;
		for (size_t k = 0; k < 4; k++)
			if (*parts[k]) {
				fprintf(f, "%s%s", any ? " " : "", parts[k]);
				any = 1;
			}
		fprintf(f, "%s%s\n", any ? ": " : "", str(x, "message"));
	}
}

static void print_diff(FILE *f, const json_t *r)
{
	fprintf(f, "diff: %s (%lld breaking, %lld warnings)\n", str(r, "verdict"),
		(long long)json_integer_value(json_object_get(r, "breaking")),
		(long long)json_integer_value(json_object_get(r, "warnings")));
	print_findings(f, json_object_get(r, "findings"), "  ");
}

static void print_check(FILE *f, const json_t *r)
{
	const char *consumer = str(r, "consumer"), *cver = str(r, "consumer_version"), *pver = str(r, "provider_version");
	fprintf(f, "check: %s%s%s against provider %s%s%s: %s", *consumer ? consumer : "consumer", *cver ? "@" : "", cver,
		str(r, "provider"), *pver ? "@" : "", pver, str(r, "verdict"));
	if (!json_is_true(json_object_get(r, "uses")))
		fprintf(f, " (it does not call %s)", str(r, "provider"));
	fprintf(f, "\n");
	print_findings(f, json_object_get(r, "findings"), "  ");
}

static void print_strings(FILE *f, const json_t *arr, const char *indent)
{
	size_t i;
	json_t *x;
	json_array_foreach(arr, i, x)
		fprintf(f, "%s%s\n", indent, json_string_value(x) ? json_string_value(x) : "");
}

static void print_pairs(FILE *f, const json_t *pairs, const char *indent)
{
	size_t i;
	json_t *p;
	if (!json_array_size(pairs)) {
		fprintf(f, "%s(no pair meets: nothing live calls it and it calls nothing live)\n", indent);
		return;
	}
	fprintf(f, "%s%-24s %-24s %s\n", indent, "PROVIDER", "CONSUMER", "VERDICT");
	json_array_foreach(pairs, i, p) {
		fprintf(f, "%s%-24s %-24s %s%s\n", indent, str(p, "provider"), str(p, "consumer"), str(p, "verdict"),
			json_is_true(json_object_get(p, "fallback")) ? " (through a fallback)" : "");
		char sub[64];
		snprintf(sub, sizeof(sub), "%s    - ", indent);
		print_strings(f, json_object_get(p, "reasons"), sub);
	}
}

static void print_can_i_deploy(FILE *f, const json_t *r)
{
	fprintf(f, "can-i-deploy %s: %s\n", str(r, "candidate"), str(r, "verdict"));
	print_pairs(f, json_object_get(r, "pairs"), "  ");
	const json_t *rb = json_object_get(r, "rollback");
	if (rb) {
		if (json_is_string(json_object_get(rb, "target")))
			fprintf(f, "rollback to %s: %s\n", str(rb, "target"),
				json_is_true(json_object_get(rb, "safe")) ? "safe" : "unsafe");
		else
			fprintf(f, "rollback: no earlier release to return to\n");
		print_strings(f, json_object_get(rb, "reasons"), "  - ");
	}
	print_strings(f, json_object_get(r, "notes"), "note: ");
}

static void print_steps(FILE *f, const json_t *steps)
{
	size_t i;
	json_t *s;
	json_array_foreach(steps, i, s) {
		fprintf(f, "  %zu. deploy %s %s (from %s)%s\n", i + 1, str(s, "service"), str(s, "to"), str(s, "from"),
			json_is_true(json_object_get(s, "fallback")) ? "  [a consumer relies on its fallback]" : "");
		size_t k;
		json_t *p;
		json_array_foreach(json_object_get(s, "pairs"), k, p)
			fprintf(f, "       %s -> %s: %s%s\n", str(p, "provider"), str(p, "consumer"), str(p, "verdict"),
				json_is_true(json_object_get(p, "fallback")) ? " (through a fallback)" : "");
	}
}

static void print_plan(FILE *f, const json_t *r)
{
	const char *verdict = str(r, "verdict");
	fprintf(f, "plan: %s\n", verdict);
	if (!strcmp(verdict, "ok")) {
		fprintf(f, "forward (one service at a time, each step checked with old and new serving):\n");
		if (!json_array_size(json_object_get(r, "steps")))
			fprintf(f, "  nothing to do: the targets are live\n");
		print_steps(f, json_object_get(r, "steps"));
		const json_t *rev = json_object_get(r, "reverse");
		if (json_is_array(rev)) {
			fprintf(f, "reverse (to go back):\n");
			print_steps(f, rev);
		} else {
			fprintf(f, "reverse: no safe order back to what is live now\n");
		}
	} else {
		const json_t *conf = json_object_get(r, "conflicts");
		if (json_array_size(conf)) {
			fprintf(f, "conflicting pairs:\n");
			print_pairs(f, conf, "  ");
		}
		const json_t *sug = json_object_get(r, "suggestions");
		if (json_array_size(sug)) {
			fprintf(f, "what an intermediate release would have to do:\n");
			print_strings(f, sug, "  - ");
		}
	}
	print_strings(f, json_object_get(r, "notes"), "note: ");
}

void contract_report_print(FILE *f, const json_t *report)
{
	const char *kind = str(report, "kind");
	if (!strcmp(kind, "diff"))
		print_diff(f, report);
	else if (!strcmp(kind, "check"))
		print_check(f, report);
	else if (!strcmp(kind, "can-i-deploy"))
		print_can_i_deploy(f, report);
	else if (!strcmp(kind, "plan"))
		print_plan(f, report);
	else {
		json_dumpf(report, f, JSON_INDENT(2));
		fputc('\n', f);
	}
}
