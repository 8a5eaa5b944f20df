/*
 * `sluice token create|list|revoke` and `sluice audit`: the API's tokens and its audit log
 * (docs/security.md). Both need an admin token.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/client.h"
#include "commands.h"
#include "util/opt.h"
#include "util/shape.h"

/* ---- token create ---- */

struct create_opts {
	json_t *scopes;
	const char *expires;
};

/* "ACTIONS[:SERVICES[:ENVS]]", each a comma-separated list, into a scope object. The server
 * checks every name; here only the shape. */
static json_t *scope_of(const char *spec)
{
	char buf[1024];
	if (snprintf(buf, sizeof(buf), "%s", spec) >= (int)sizeof(buf))
		return NULL;
	const char *keys[] = {"actions", "services", "envs"};
	json_t *scope = json_object();
	char *rest = buf;
	for (int k = 0; k < 3 && rest; k++) {
		char *colon = strchr(rest, ':');
		if (colon)
			*colon = '\0';
		json_t *list = json_array();
		for (char *save = NULL, *item = strtok_r(rest, ",", &save); item; item = strtok_r(NULL, ",", &save))
			json_array_append_new(list, json_string(item));
		if (!json_array_size(list)) {
			json_decref(list);
			json_decref(scope);
			return NULL;
		}
		json_object_set_new(scope, keys[k], list);
		rest = colon ? colon + 1 : NULL;
	}
	if (rest) {
		json_decref(scope);
		return NULL;
	}
	return scope;
}

static int create_opt(int opt, const char *arg, void *ctx)
{
	struct create_opts *o = ctx;
	if (opt == 's') {
		json_t *sc = scope_of(arg);
		if (!sc)
			return error("--scope '%s': expected ACTIONS[:SERVICES[:ENVS]], each a comma-separated "
				     "list (deploy,read:pay-*:production)", arg);
		json_array_append_new(o->scopes, sc);
		return 0;
	}
	if (opt == 'e') {
		uint64_t ms;
		if (shape_duration_ms(arg, &ms) || ms < 60000)
			return error("--expires '%s': expected a duration of at least 1m, like 90d, 12h or 30m",
				     arg);
		o->expires = arg;
		return 0;
	}
	return -1;
}

static void print_time(int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	char ts[32];
	strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", localtime(&t));
	printf("%-20s", ts);
}

/* "deploy,read on pay-* in production; read" */
static void print_scopes(const json_t *scopes)
{
	size_t i, k;
	json_t *sc, *v;
	json_array_foreach(scopes, i, sc) {
		printf("%s", i ? "; " : "");
		const char *keys[] = {"actions", "services", "envs"}, *sep[] = {"", " on ", " in "};
		for (int f = 0; f < 3; f++) {
			json_t *list = json_object_get(sc, keys[f]);
			if (f && json_array_size(list) == 1 && !strcmp(json_string_value(json_array_get(list, 0)), "*"))
				continue;
			printf("%s", sep[f]);
			json_array_foreach(list, k, v)
				printf("%s%s", k ? "," : "", json_string_value(v));
		}
	}
}

static int token_create(struct client *c, int argc, char **argv, int *rc)
{
	static const char usage[] =
		"usage: sluice token create NAME --scope SPEC [--scope SPEC]... [--expires DURATION]\n\n"
		"Creates a token and prints its secret, once: store it now (a CI secret, a password\n"
		"manager). The server keeps only its hash.\n\n"
		"  -s, --scope SPEC      ACTIONS[:SERVICES[:ENVS]], comma-separated lists; actions are\n"
		"                        read, apply, release, deploy, rollback, retry, flags, admin;\n"
		"                        services and envs are names or patterns with '*' (default *).\n"
		"                        Example: --scope release,deploy,read:pay-*:preprod,production\n"
		"  -e, --expires DURATION  e.g. 90d, 12h (default: never)\n" CLIENT_HELP;
	static const struct option extra[] = {{"scope", required_argument, NULL, 's'},
					      {"expires", required_argument, NULL, 'e'},
					      {NULL, 0, NULL, 0}};
	struct create_opts o = {json_array(), NULL};
	int i = client_parse(c, argc, argv, "s:e:", extra, create_opt, &o, usage, rc);
	if (i < 0)
		goto out;
	if (argc - i != 1 || !json_array_size(o.scopes)) {
		fputs(usage, stderr);
		*rc = EXIT_USAGE;
		goto out;
	}
	json_t *body = json_pack("{s:s, s:O}", "name", argv[i], "scopes", o.scopes);
	if (o.expires)
		json_object_set_new(body, "expires_in", json_string(o.expires));
	json_t *out = NULL;
	*rc = client_call(c, "POST", "/v1/tokens", body, &out, NULL);
	json_decref(body);
	if (*rc == EXIT_OK && c->json) {
		client_print_json(out);
	} else if (*rc == EXIT_OK) {
		printf("%s\n", json_string_value(json_object_get(out, "token")));
		fflush(stdout);
		fprintf(stderr, "token '%s' created (", json_string_value(json_object_get(out, "name")));
		json_t *exp = json_object_get(out, "expires_at");
		if (json_is_integer(exp)) {
			time_t t = (time_t)(json_integer_value(exp) / 1000);
			char ts[32];
			strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M", localtime(&t));
			fprintf(stderr, "expires %s", ts);
		} else {
			fprintf(stderr, "never expires");
		}
		fprintf(stderr, "); it is shown only this once\n");
	}
	json_decref(out);
out:
	json_decref(o.scopes);
	return *rc;
}

static int token_list(struct client *c, int argc, char **argv, int *rc)
{
	static const char usage[] = "usage: sluice token list [-o json]\n\n"
				    "Lists the tokens (never their secrets), revoked ones included.\n\n" CLIENT_HELP;
	int i = client_parse(c, argc, argv, "", NULL, NULL, NULL, usage, rc);
	if (i < 0)
		return *rc;
	if (argc != i) {
		fputs(usage, stderr);
		return *rc = EXIT_USAGE;
	}
	json_t *out = NULL;
	*rc = client_call(c, "GET", "/v1/tokens", NULL, &out, NULL);
	if (*rc == EXIT_OK && c->json) {
		client_print_json(out);
	} else if (*rc == EXIT_OK) {
		printf("%-20s %-20s %-12s %-20s %s\n", "NAME", "CREATED", "BY", "STATE", "SCOPES");
		size_t k;
		json_t *t;
		int64_t now = (int64_t)time(NULL) * 1000;
		json_array_foreach(json_object_get(out, "tokens"), k, t) {
			json_t *rev = json_object_get(t, "revoked_at"), *exp = json_object_get(t, "expires_at");
			const char *by = json_string_value(json_object_get(t, "created_by"));
			printf("%-20s ", json_string_value(json_object_get(t, "name")));
			print_time(json_integer_value(json_object_get(t, "created_at")));
			printf(" %-12s %-20s ", by && *by ? by : "(server)",
			       json_is_integer(rev)                                   ? "revoked"
			       : json_is_integer(exp) && json_integer_value(exp) <= now ? "expired"
			       : json_is_integer(exp)                                 ? "active, expires"
										: "active");
			print_scopes(json_object_get(t, "scopes"));
			printf("\n");
		}
	}
	json_decref(out);
	return *rc;
}

static int token_revoke(struct client *c, int argc, char **argv, int *rc)
{
	static const char usage[] = "usage: sluice token revoke NAME\n\n"
				    "Revokes a token at once; its name stays taken (the audit log names it).\n\n" CLIENT_HELP;
	int i = client_parse(c, argc, argv, "", NULL, NULL, NULL, usage, rc);
	if (i < 0)
		return *rc;
	if (argc - i != 1) {
		fputs(usage, stderr);
		return *rc = EXIT_USAGE;
	}
	char *esc = httpc_escape(argv[i]);
	char path[512];
	snprintf(path, sizeof(path), "/v1/tokens/%s/revoke", esc ? esc : "");
	free(esc);
	json_t *body = json_object(), *out = NULL;
	*rc = client_call(c, "POST", path, body, &out, NULL);
	json_decref(body);
	if (*rc == EXIT_OK && c->json)
		client_print_json(out);
	else if (*rc == EXIT_OK)
		printf("token '%s' revoked\n", argv[i]);
	json_decref(out);
	return *rc;
}

int cmd_token(int argc, char **argv)
{
	static const char usage[] = "usage: sluice token create|list|revoke ...\n\n"
				    "Manages the API's bearer tokens (an admin token is needed); see\n"
				    "'sluice token create --help' and docs/security.md.\n";
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	struct client c;
	int rc = EXIT_USAGE;
	client_init(&c);
	c.cmd = "token";
	if (!strcmp(argv[1], "create"))
		token_create(&c, argc - 1, argv + 1, &rc);
	else if (!strcmp(argv[1], "list"))
		token_list(&c, argc - 1, argv + 1, &rc);
	else if (!strcmp(argv[1], "revoke"))
		token_revoke(&c, argc - 1, argv + 1, &rc);
	else
		error("token: unknown subcommand '%s' (create, list, revoke)", argv[1]);
	client_release(&c);
	return rc;
}

/* ---- audit ---- */

struct audit_opts {
	const char *service;
	int64_t since;
	long limit;
};

/* "2h" (ago), "2026-12-03", "2026-12-03T10:00:00Z" into ms since the epoch; -1 if neither. */
static int64_t since_of(const char *s)
{
	uint64_t ms;
	if (shape_duration_ms(s, &ms) == 0)
		return (int64_t)time(NULL) * 1000 - (int64_t)ms;
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end) {
		memset(&tm, 0, sizeof(tm));
		end = strptime(s, "%Y-%m-%d", &tm);
	}
	if (!end || *end)
		return -1;
	return (int64_t)timegm(&tm) * 1000;
}

static int audit_opt(int opt, const char *arg, void *ctx)
{
	struct audit_opts *o = ctx;
	if (opt == 's') {
		o->service = arg;
		return 0;
	}
	if (opt == 't') {
		o->since = since_of(arg);
		if (o->since < 0)
			return error("--since '%s': expected a duration ago (2h, 7d) or a UTC time "
				     "(2026-12-03 or 2026-12-03T10:00:00Z)", arg);
		return 0;
	}
	if (opt == 'n') {
		long long v;
		struct err e;
		if (opt_int("--limit", arg, 1, 100000, &v, &e))
			return error("audit: %s", e.msg);
		o->limit = (long)v;
		return 0;
	}
	return -1;
}

int cmd_audit(int argc, char **argv)
{
	static const char usage[] =
		"usage: sluice audit [--service S] [--since T] [--limit N] [-o json]\n\n"
		"Shows the audit log: every call that changed something or was refused, with its\n"
		"token, action, target, result and client address, oldest first (an admin token is\n"
		"needed). Nothing edits or deletes it.\n\n"
		"  -s, --service S  only what concerns service S\n"
		"  -t, --since T    a duration ago (2h, 7d) or a UTC time (2026-12-03T10:00:00Z)\n"
		"  -n, --limit N    at most the N latest entries (default 1000)\n" CLIENT_HELP;
	static const struct option extra[] = {{"service", required_argument, NULL, 's'},
					      {"since", required_argument, NULL, 't'},
					      {"limit", required_argument, NULL, 'n'},
					      {NULL, 0, NULL, 0}};
	struct audit_opts o = {NULL, 0, 1000};
	struct client c;
	int rc = EXIT_USAGE;
	client_init(&c);
	int i = client_parse(&c, argc, argv, "s:t:n:", extra, audit_opt, &o, usage, &rc);
	if (i < 0)
		goto out;
	if (argc != i) {
		fputs(usage, stderr);
		goto out;
	}
	char path[512];
	char *esc = o.service ? httpc_escape(o.service) : NULL;
	snprintf(path, sizeof(path), "/v1/audit?since=%lld&limit=%ld%s%s", (long long)o.since, o.limit,
		 esc ? "&service=" : "", esc ? esc : "");
	free(esc);
	json_t *out = NULL;
	rc = client_call(&c, "GET", path, NULL, &out, NULL);
	if (rc == EXIT_OK && c.json) {
		client_print_json(out);
	} else if (rc == EXIT_OK) {
		printf("%-20s %-14s %-9s %-16s %-12s %-22s %s\n", "TIME", "TOKEN", "ACTION", "SERVICE", "ENV",
		       "CLIENT", "REQUEST -> RESULT");
		size_t k;
		json_t *a;
		json_array_foreach(json_object_get(out, "audit"), k, a) {
			const char *svc = json_string_value(json_object_get(a, "service"));
			const char *env = json_string_value(json_object_get(a, "env"));
			print_time(json_integer_value(json_object_get(a, "at")));
			printf(" %-14s %-9s %-16s %-12s %-22s %s -> %s\n",
			       json_string_value(json_object_get(a, "token")),
			       json_string_value(json_object_get(a, "action")), svc && *svc ? svc : "-",
			       env && *env ? env : "-", json_string_value(json_object_get(a, "client")),
			       json_string_value(json_object_get(a, "request")),
			       json_string_value(json_object_get(a, "result")));
		}
	}
	json_decref(out);
out:
	client_release(&c);
	return rc;
}
