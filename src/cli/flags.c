/*
 * `sluice flags apply|history` and `sluice flag list|get|enable|disable|kill|set|rollout`: the feature
 * flag set of an environment, for operators (docs/flags.md). Applications evaluate flags
 * through OFREP with an OpenFeature SDK, not through these commands.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/client.h"
#include "commands.h"
#include "util/buf.h"
#include "util/opt.h"

struct flag_opts {
	const char *env;
	const char *reason;
	const char *variant;
	int strict;
};

static int flag_opt(int opt, const char *arg, void *ctx)
{
	struct flag_opts *o = ctx;
	struct err e;
	switch (opt) {
	case 'e':
		if (opt_name("--env", arg, NAME_OBJECT, &e))
			return error("%s", e.msg);
		o->env = arg;
		return 0;
	case 'r':
		if (strlen(arg) > 512)
			return error("--reason: at most 512 bytes");
		o->reason = arg;
		return 0;
	case 'v':
		o->variant = arg;
		return 0;
	case 's':
		o->strict = 1;
		return 0;
	}
	return -1;
}

static const struct option flag_options[] = {{"env", required_argument, NULL, 'e'},
					     {"reason", required_argument, NULL, 'r'},
					     {"variant", required_argument, NULL, 'v'},
					     {"strict", no_argument, NULL, 's'},
					     {NULL, 0, NULL, 0}};

#define FLAG_HELP                                                                            \
	"  -e, --env ENV      the environment (default production)\n"                        \
	"  -r, --reason TEXT  why, kept in the flag set's history and the audit log\n"

/* Reads a whole file ("-": stdin) into b. */
static int read_all(const char *path, struct buf *b)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	if (!f)
		return error("cannot open '%s': %s", path, strerror(errno));
	char chunk[65536];
	size_t n;
	int rc = 0;
	while (!rc && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_add(b, chunk, n))
			rc = error("'%s' is larger than %zu bytes", path, (size_t)(4u << 20));
	if (!rc && ferror(f))
		rc = error("cannot read '%s': %s", path, strerror(errno));
	if (f != stdin)
		fclose(f);
	return rc;
}

static void print_warnings(const json_t *w)
{
	size_t i;
	json_t *m;
	json_array_foreach(w, i, m)
		fprintf(stderr, "warning: %s\n", json_string_value(m));
}

static int flags_apply(struct client *c, int argc, char **argv, int *rc)
{
	static const char usage[] =
		"usage: sluice flags apply FILE [--env ENV] [--strict] [--reason TEXT]\n\n"
		"Stores FILE (flagd's flag definitions, JSON or YAML; - for stdin) as the environment's\n"
		"next flag set. A file that breaks the format is refused whole with FILE:LINE:COL; a\n"
		"rule that can only fail some evaluations is a warning (--strict refuses it).\n\n"
		"  -s, --strict       refuse a file with warnings\n" FLAG_HELP CLIENT_HELP;
	struct flag_opts o = {"production", "", NULL, 0};
	int i = client_parse(c, argc, argv, "e:r:s", flag_options, flag_opt, &o, usage, rc);
	if (i < 0)
		return *rc;
	struct err e;
	if (opt_positional("flags apply", argc - i, argv + i, 1, 1, "FILE", &e))
		return error("%s", e.msg), *rc = EXIT_USAGE;
	struct buf text;
	buf_init(&text, 4u << 20);
	if (read_all(argv[i], &text)) {
		buf_release(&text);
		return *rc = EXIT_USAGE;
	}
	const char *base = strrchr(argv[i], '/');
	json_t *body = json_pack("{s:s, s:s%, s:b, s:s}", "name", base ? base + 1 : argv[i], "content",
				 text.data ? text.data : "", text.len, "strict", o.strict, "reason", o.reason);
	buf_release(&text);
	char path[160];
	snprintf(path, sizeof(path), "/v1/flags/%s", o.env);
	json_t *out = NULL;
	long status = 0;
	*rc = client_call(c, "POST", path, body, &out, &status);
	json_decref(body);
	if (*rc == EXIT_OK && c->json) {
		client_print_json(out);
	} else if (*rc == EXIT_OK) {
		print_warnings(json_object_get(out, "warnings"));
		printf("flags of %s: version %lld\n", o.env, (long long)json_integer_value(json_object_get(out, "version")));
	} else if (out) {
		error("%s", json_string_value(json_object_get(out, "error")));
		print_warnings(json_object_get(out, "warnings"));
		*rc = status == 404 ? EXIT_NOTFOUND : status >= 500 ? EXIT_UNREACHABLE : EXIT_USAGE;
	}
	json_decref(out);
	return *rc;
}

static void print_time(int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	char ts[32];
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", localtime(&t));
	printf("%-20s", ts);
}

static int flags_history(struct client *c, int argc, char **argv, int *rc)
{
	static const char usage[] = "usage: sluice flags history [--env ENV]\n\n"
				    "Lists the versions of the environment's flag set: when, who, why.\n\n"
				    "  -e, --env ENV      the environment (default production)\n" CLIENT_HELP;
	struct flag_opts o = {"production", "", NULL, 0};
	int i = client_parse(c, argc, argv, "e:", flag_options, flag_opt, &o, usage, rc);
	if (i < 0)
		return *rc;
	struct err e;
	if (opt_positional("flags history", argc - i, argv + i, 0, 0, "", &e))
		return error("%s", e.msg), *rc = EXIT_USAGE;
	char path[160];
	snprintf(path, sizeof(path), "/v1/flags/%s/history", o.env);
	json_t *out = NULL;
	*rc = client_call(c, "GET", path, NULL, &out, NULL);
	if (*rc == EXIT_OK && c->json) {
		client_print_json(out);
	} else if (*rc == EXIT_OK) {
		printf("%-8s %-20s %-16s %s\n", "VERSION", "AT", "BY", "WHY");
		size_t k;
		json_t *v;
		json_array_foreach(json_object_get(out, "versions"), k, v) {
			printf("%-8lld ", (long long)json_integer_value(json_object_get(v, "version")));
			print_time(json_integer_value(json_object_get(v, "at")));
			printf(" %-16s %s\n", json_string_value(json_object_get(v, "by")),
			       json_string_value(json_object_get(v, "why")));
		}
	}
	json_decref(out);
	return *rc;
}

int cmd_flags(int argc, char **argv)
{
	static const char usage[] = "usage: sluice flags apply|history ...\n\n"
				    "The feature flag set of an environment; see 'sluice flag' for one flag\n"
				    "and docs/flags.md.\n";
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	struct client c;
	int rc = EXIT_USAGE;
	client_init(&c);
	c.cmd = "flags";
	if (!strcmp(argv[1], "apply"))
		flags_apply(&c, argc - 1, argv + 1, &rc);
	else if (!strcmp(argv[1], "history"))
		flags_history(&c, argc - 1, argv + 1, &rc);
	else
		error("flags: unknown subcommand '%s' (apply, history)", argv[1]);
	client_release(&c);
	return rc;
}

/* ---- one flag ---- */

static void print_flag_row(const char *key, const json_t *f)
{
	const json_t *t = json_object_get(f, "targeting");
	const char *dv = json_string_value(json_object_get(f, "defaultVariant"));
	printf("%-28s %-9s %-14s %s\n", key, json_string_value(json_object_get(f, "state")), dv ? dv : "(none)",
	       json_object_size(t) ? "targeting" : "static");
}

static int flag_list(struct client *c, const struct flag_opts *o, int *rc)
{
	char path[160];
	snprintf(path, sizeof(path), "/v1/flags/%s", o->env);
	json_t *out = NULL;
	*rc = client_call(c, "GET", path, NULL, &out, NULL);
	if (*rc == EXIT_OK && c->json) {
		client_print_json(out);
	} else if (*rc == EXIT_OK) {
		printf("flags of %s, version %lld\n", o->env, (long long)json_integer_value(json_object_get(out, "version")));
		printf("%-28s %-9s %-14s %s\n", "FLAG", "STATE", "DEFAULT", "RULE");
		const char *k;
		json_t *f;
		json_object_foreach(json_object_get(json_object_get(out, "doc"), "flags"), k, f)
			print_flag_row(k, f);
		print_warnings(json_object_get(out, "warnings"));
	}
	json_decref(out);
	return *rc;
}

static int flag_one(struct client *c, const char *sub, const char *key, const struct flag_opts *o, int *rc)
{
	char *esc = httpc_escape(key);
	char path[512];
	snprintf(path, sizeof(path), "/v1/flags/%s/flag/%s", o->env, esc ? esc : "");
	free(esc);
	json_t *out = NULL, *body = NULL;
	if (strcmp(sub, "get")) {
		body = json_pack("{s:s, s:s}", "action", sub, "reason", o->reason);
		if (o->variant)
			json_object_set_new(body, "variant", json_string(o->variant));
	}
	*rc = client_call(c, body ? "POST" : "GET", path, body, &out, NULL);
	json_decref(body);
	if (*rc == EXIT_OK && c->json) {
		client_print_json(out);
	} else if (*rc == EXIT_OK) {
		const json_t *f = json_object_get(out, "flag");
		if (strcmp(sub, "get"))
			printf("%s %s in %s: version %lld\n", key, !strcmp(sub, "set") ? "default set" : !strcmp(sub, "kill") ? "killed" : !strcmp(sub, "enable") ? "enabled" : "disabled",
			       o->env, (long long)json_integer_value(json_object_get(out, "version")));
		printf("%-28s %-9s %-14s %s\n", "FLAG", "STATE", "DEFAULT", "RULE");
		print_flag_row(key, f);
		char *vars = json_dumps(json_object_get(f, "variants"), JSON_COMPACT);
		printf("variants: %s\n", vars ? vars : "?");
		free(vars);
		if (json_object_size(json_object_get(f, "targeting"))) {
			char *t = json_dumps(json_object_get(f, "targeting"), JSON_COMPACT);
			printf("targeting: %s\n", t ? t : "?");
			free(t);
		}
		print_warnings(json_object_get(out, "warnings"));
	}
	json_decref(out);
	return *rc;
}

/* ---- guarded rollouts ---- */

struct rollout_opts {
	struct flag_opts f;
	const char *service, *steps, *step_duration, *baseline;
	int abort, wait;
	long timeout_s;
};

static int rollout_opt(int opt, const char *arg, void *ctx)
{
	struct rollout_opts *o = ctx;
	struct err e;
	switch (opt) {
	case 'S':
		if (opt_name("--service", arg, NAME_OBJECT, &e))
			return error("%s", e.msg);
		o->service = arg;
		return 0;
	case 'p':
		o->steps = arg;
		return 0;
	case 'd':
		o->step_duration = arg;
		return 0;
	case 'b':
		o->baseline = arg;
		return 0;
	case 'A':
		o->abort = 1;
		return 0;
	case 'w':
		o->wait = 1;
		return 0;
	case 't': {
		long long v;
		if (opt_int("--timeout", arg, 1, 86400, &v, &e))
			return error("%s", e.msg);
		o->timeout_s = (long)v;
		o->wait = 1;
		return 0;
	}
	}
	return flag_opt(opt, arg, &o->f);
}

static const struct option rollout_options[] = {{"env", required_argument, NULL, 'e'},
						{"reason", required_argument, NULL, 'r'},
						{"variant", required_argument, NULL, 'v'},
						{"service", required_argument, NULL, 'S'},
						{"steps", required_argument, NULL, 'p'},
						{"step-duration", required_argument, NULL, 'd'},
						{"baseline", required_argument, NULL, 'b'},
						{"abort", no_argument, NULL, 'A'},
						{"wait", no_argument, NULL, 'w'},
						{"timeout", required_argument, NULL, 't'},
						{NULL, 0, NULL, 0}};

/* "1,10,50,100" as a JSON array of integers; NULL after an error message. */
static json_t *parse_steps(const char *s)
{
	json_t *a = json_array();
	const char *p = s;
	while (*p) {
		char *end;
		errno = 0;
		long v = strtol(p, &end, 10);
		if (end == p || errno || (*end && *end != ',') || v < 1 || v > 100) {
			error("--steps: expected percentages 1..100 separated by commas, like 1,10,50,100 (got '%s')", s);
			json_decref(a);
			return NULL;
		}
		json_array_append_new(a, json_integer(v));
		p = *end ? end + 1 : end;
		if (*end && !*p) {
			error("--steps: a comma at the end of '%s'", s);
			json_decref(a);
			return NULL;
		}
	}
	if (!json_array_size(a)) {
		error("--steps: at least one percentage");
		json_decref(a);
		return NULL;
	}
	return a;
}

static void print_rollout_event(const json_t *ev)
{
	time_t t = (time_t)(json_integer_value(json_object_get(ev, "at")) / 1000);
	char ts[32];
	strftime(ts, sizeof(ts), "%H:%M:%S", localtime(&t));
	printf("%s  %-11s %s\n", ts, json_string_value(json_object_get(ev, "type")),
	       json_string_value(json_object_get(ev, "message")));
}

/* Follows rollout id until it ends (or timeout_s), printing its events. EXIT_OK when it
 * completed, EXIT_NO otherwise. */
static int follow_rollout(struct client *c, long long id, size_t shown, long timeout_s)
{
	char path[64];
	snprintf(path, sizeof(path), "/v1/flag-rollouts/%lld", id);
	time_t start = time(NULL);
	for (;;) {
		json_t *out = NULL;
		int rc = client_call(c, "GET", path, NULL, &out, NULL);
		if (rc != EXIT_OK)
			return rc;
		const json_t *evs = json_object_get(out, "events");
		for (; shown < json_array_size(evs); shown++)
			print_rollout_event(json_array_get(evs, shown));
		const char *phase = json_string_value(json_object_get(out, "phase"));
		int done = phase && strcmp(phase, "active");
		rc = phase && !strcmp(phase, "completed") ? EXIT_OK : EXIT_NO;
		json_decref(out);
		if (done)
			return rc;
		if (timeout_s && time(NULL) - start >= timeout_s) {
			printf("still in progress after %ld s: 'sluice events --rollout %lld' follows it\n", timeout_s, id);
			return EXIT_NO;
		}
		fflush(stdout);
		struct timespec ts = {0, 250 * 1000000};
		nanosleep(&ts, NULL);
	}
}

static int flag_rollout(int argc, char **argv)
{
	static const char usage[] =
		"usage: sluice flag rollout NAME --variant V --steps 1,10,50,100 --service S [--env ENV]\n"
		"                          [--step-duration D] [--baseline D] [--reason TEXT] [--wait]\n"
		"       sluice flag rollout NAME --abort [--env ENV] [--reason TEXT]\n\n"
		"Raises the variant's share of targeting keys step by step. Before the first step the\n"
		"service's error rate and latency in ENV are recorded (the baseline); during each step\n"
		"they are judged against it by anytime-valid tests, and a proven regression puts the\n"
		"flag back by itself, with the evidence in 'sluice events --rollout ID'. A step passes\n"
		"after its duration and the service's analysis.min_requests requests. The server drives\n"
		"the rollout (it survives a restart); --abort stops it and puts the flag back.\n\n"
		"  -v, --variant V        the variant to roll out\n"
		"      --steps LIST       percentages of targeting keys, increasing (e.g. 1,10,50,100)\n"
		"      --service S        the service whose counters judge the flag\n"
		"      --step-duration D  least duration of a step (default: the service's step_duration)\n"
		"      --baseline D       the baseline window (default: the step duration)\n"
		"      --abort            stop the flag's rollout in progress and put the flag back\n"
		"      --wait             follow the rollout to its end (exit 0 when it completed)\n"
		"      --timeout SECONDS  with --wait: give up waiting after this long\n" FLAG_HELP CLIENT_HELP;
	struct client c;
	int rc = EXIT_USAGE;
	client_init(&c);
	c.cmd = "flag rollout";
	struct rollout_opts o = {.f = {"production", "", NULL, 0}};
	int i = client_parse(&c, argc, argv, "e:r:v:", rollout_options, rollout_opt, &o, usage, &rc);
	struct err e;
	json_t *body = NULL, *out = NULL;
	if (i < 0)
		goto done;
	if (opt_positional("flag rollout", argc - i, argv + i, 1, 1, "NAME", &e)) {
		error("%s", e.msg);
		goto done;
	}
	if (o.abort && (o.f.variant || o.steps || o.service || o.step_duration || o.baseline)) {
		error("flag rollout: --abort takes only NAME, --env and --reason");
		goto done;
	}
	if (!o.abort && (!o.f.variant || !o.steps || !o.service)) {
		error("flag rollout: --variant, --steps and --service are required (or --abort)");
		goto done;
	}
	char *esc = httpc_escape(argv[i]);
	char path[512];
	snprintf(path, sizeof(path), "/v1/flags/%s/flag/%s/rollout%s", o.f.env, esc ? esc : "", o.abort ? "/abort" : "");
	free(esc);
	if (o.abort) {
		body = json_pack("{s:s}", "reason", o.f.reason);
	} else {
		json_t *steps = parse_steps(o.steps);
		if (!steps)
			goto done;
		body = json_pack("{s:s, s:o, s:s, s:s}", "variant", o.f.variant, "steps", steps, "service", o.service,
				 "reason", o.f.reason);
		if (o.step_duration)
			json_object_set_new(body, "step_duration", json_string(o.step_duration));
		if (o.baseline)
			json_object_set_new(body, "baseline", json_string(o.baseline));
	}
	rc = client_call(&c, "POST", path, body, &out, NULL);
	if (rc != EXIT_OK)
		goto done;
	long long id = (long long)json_integer_value(json_object_get(out, "id"));
	if (c.json) {
		client_print_json(out);
	} else {
		printf("flag %s in %s: rollout %lld %s\n", argv[i], o.f.env, id,
		       o.abort ? json_string_value(json_object_get(out, "phase")) : "started");
		size_t k;
		json_t *ev;
		json_array_foreach(json_object_get(out, "events"), k, ev)
			print_rollout_event(ev);
	}
	if (o.wait && !o.abort && !c.json)
		rc = follow_rollout(&c, id, json_array_size(json_object_get(out, "events")), o.timeout_s);
done:
	json_decref(body);
	json_decref(out);
	client_release(&c);
	return rc;
}

int cmd_flag(int argc, char **argv)
{
	static const char usage[] =
		"usage: sluice flag list [--env ENV]\n"
		"       sluice flag get NAME [--env ENV]\n"
		"       sluice flag enable|disable|kill NAME [--env ENV] [--reason TEXT]\n"
		"       sluice flag set NAME --variant V [--env ENV] [--reason TEXT]\n"
		"       sluice flag rollout NAME --variant V --steps 1,10,50,100 --service S [--env ENV]\n"
		"       sluice flag rollout NAME --abort [--env ENV]   (see 'sluice flag rollout --help')\n\n"
		"One flag of an environment's set. kill gives everyone the flag's off variant (its false\n"
		"value, or the variant named off) and drops its targeting; disable leaves clients to\n"
		"their own default; set chooses the default variant. Each change is a new version of the\n"
		"set, with who and why, and is seen by polling clients within one poll.\n\n"
		"  -v, --variant V    with set: the new default variant\n" FLAG_HELP CLIENT_HELP;
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	if (!strcmp(argv[1], "rollout"))
		return flag_rollout(argc - 1, argv + 1);
	static const char *const subs[] = {"list", "get", "enable", "disable", "kill", "set", NULL};
	int which = -1;
	for (int k = 0; subs[k]; k++)
		if (!strcmp(argv[1], subs[k]))
			which = k;
	if (which < 0)
		return error("flag: unknown subcommand '%s' (list, get, enable, disable, kill, set, rollout)", argv[1]),
		       EXIT_USAGE;
	struct client c;
	int rc = EXIT_USAGE;
	client_init(&c);
	c.cmd = "flag";
	struct flag_opts o = {"production", "", NULL, 0};
	int i = client_parse(&c, argc - 1, argv + 1, "e:r:v:", flag_options, flag_opt, &o, usage, &rc);
	struct err e;
	if (i < 0) {
		/* usage printed */
	} else if (opt_positional(argv[1], argc - 1 - i, argv + 1 + i, which ? 1 : 0, which ? 1 : 0,
				  which ? "NAME" : "", &e)) {
		error("flag %s", e.msg);
	} else if (which == 5 && !o.variant) {
		error("flag set: --variant V is required");
	} else if (which != 5 && o.variant) {
		error("flag %s: --variant is only used with set", argv[1]);
	} else if (which == 0) {
		flag_list(&c, &o, &rc);
	} else {
		flag_one(&c, argv[1], argv[1 + i], &o, &rc);
	}
	client_release(&c);
	return rc;
}
