/*
 * `sluice notify add|list|remove`: webhook subscriptions to notifications
 * (docs/observability.md). They need an admin token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/client.h"
#include "commands.h"
#include "util/name.h"
#include "util/opt.h"

struct add_opts {
	const char *env, *service, *format, *secret;
	json_t *types;
};

static int add_opt(int opt, const char *arg, void *ctx)
{
	struct add_opts *o = ctx;
	static const char *const formats[] = {"json", "slack", "cloudevents", NULL};
	struct err e;
	int k;
	switch (opt) {
	case 'e':
		if (opt_name("--env", arg, NAME_OBJECT, &e))
			return error("notify add: %s", e.msg);
		o->env = arg;
		return 0;
	case 's':
		if (opt_name("--service", arg, NAME_OBJECT, &e))
			return error("notify add: %s", e.msg);
		o->service = arg;
		return 0;
	case 'f':
		if (opt_enum("--format", arg, formats, &k, &e))
			return error("notify add: %s", e.msg);
		o->format = arg;
		return 0;
	case 'k':
		if (strlen(arg) < 16 || strlen(arg) > 256)
			return error("notify add: --secret: 16 to 256 characters (or leave it out: the server "
				     "makes one)");
		o->secret = arg;
		return 0;
	case 't':
		/* a comma-separated list, or repeated; the server checks each name */
		for (const char *p = arg; *p;) {
			size_t n = strcspn(p, ",");
			if (n)
				json_array_append_new(o->types, json_stringn(p, n));
			p += n + (p[n] == ',');
		}
		return 0;
	}
	return -1;
}

static int notify_add(struct client *c, int argc, char **argv, int *rc)
{
	static const char usage[] =
		"usage: sluice notify add URL [--env ENV] [--service NAME] [--type TYPE]...\n"
		"                         [--format json|slack|cloudevents] [--secret SECRET]\n\n"
		"Subscribes a webhook to notifications. Without --env or --service it hears about every\n"
		"environment or service; without --type, every type: deployment.started, step.passed,\n"
		"deployment.aborted, deployment.rolled_back, deployment.promoted, region.failed,\n"
		"bake.failed, gate.refused, flag.killed, flag.reverted. Each delivery is signed\n"
		"(X-Sluice-Signature: sha256=HMAC of the body); without --secret the server makes a\n"
		"secret and it is printed here, once.\n\n"
		"  -e, --env ENV        only this environment\n"
		"  -s, --service NAME   only this service\n"
		"  -t, --type TYPE      a notification type (repeat, or comma-separate)\n"
		"  -f, --format F       json (default), slack (an incoming webhook), cloudevents\n"
		"                       (CloudEvents 1.0, structured mode)\n"
		"  -k, --secret SECRET  the HMAC key (16 characters or more)\n" CLIENT_HELP;
	static const struct option extra[] = {{"env", required_argument, NULL, 'e'},
					      {"service", required_argument, NULL, 's'},
					      {"type", required_argument, NULL, 't'},
					      {"format", required_argument, NULL, 'f'},
					      {"secret", required_argument, NULL, 'k'},
					      {NULL, 0, NULL, 0}};
	struct add_opts o = {.types = json_array()};
	int i = client_parse(c, argc, argv, "e:s:t:f:k:", extra, add_opt, &o, usage, rc);
	if (i < 0)
		goto out;
	struct err e;
	if (opt_positional("notify add", argc - i, argv + i, 1, 1, "URL", &e) || opt_url("URL", argv[i], &e)) {
		error("%s%s", strncmp(e.msg, "notify", 6) ? "notify add: " : "", e.msg);
		*rc = EXIT_USAGE;
		goto out;
	}
	json_t *body = json_pack("{s:s}", "url", argv[i]);
	if (o.env)
		json_object_set_new(body, "env", json_string(o.env));
	if (o.service)
		json_object_set_new(body, "service", json_string(o.service));
	if (o.format)
		json_object_set_new(body, "format", json_string(o.format));
	if (o.secret)
		json_object_set_new(body, "secret", json_string(o.secret));
	if (json_array_size(o.types))
		json_object_set(body, "types", o.types);
	json_t *out = NULL;
	*rc = client_call(c, "POST", "/v1/notifications", body, &out, NULL);
	json_decref(body);
	if (*rc == EXIT_OK && c->json) {
		client_print_json(out);
	} else if (*rc == EXIT_OK) {
		printf("subscription %lld: %s (%s)\n", (long long)json_integer_value(json_object_get(out, "id")),
		       json_string_value(json_object_get(out, "url")),
		       json_string_value(json_object_get(out, "format")));
		if (!o.secret)
			printf("secret (shown only this once): %s\n",
			       json_string_value(json_object_get(out, "secret")));
	}
	json_decref(out);
out:
	json_decref(o.types);
	return *rc;
}

static int notify_list(struct client *c, int argc, char **argv, int *rc)
{
	static const char usage[] = "usage: sluice notify list [-o json]\n\n"
				    "Lists the subscriptions (never their secrets) and the deliveries still\n"
				    "pending.\n\n" CLIENT_HELP;
	int i = client_parse(c, argc, argv, "", NULL, NULL, NULL, usage, rc);
	if (i < 0)
		return *rc;
	struct err e;
	if (opt_positional("notify list", argc - i, argv + i, 0, 0, "no argument", &e))
		return error("%s", e.msg), *rc = EXIT_USAGE;
	json_t *out = NULL;
	*rc = client_call(c, "GET", "/v1/notifications", NULL, &out, NULL);
	if (*rc == EXIT_OK && c->json) {
		client_print_json(out);
	} else if (*rc == EXIT_OK) {
		printf("%-5s %-14s %-14s %-12s %-40s %s\n", "ID", "ENV", "SERVICE", "FORMAT", "URL", "TYPES");
		size_t k, j;
		json_t *s, *t;
		json_array_foreach(json_object_get(out, "subscriptions"), k, s) {
			const char *env = json_string_value(json_object_get(s, "env"));
			const char *svc = json_string_value(json_object_get(s, "service"));
			printf("%-5lld %-14s %-14s %-12s %-40s ", (long long)json_integer_value(json_object_get(s, "id")),
			       env ? env : "*", svc ? svc : "*", json_string_value(json_object_get(s, "format")),
			       json_string_value(json_object_get(s, "url")));
			json_array_foreach(json_object_get(s, "types"), j, t)
				printf("%s%s", j ? "," : "", json_string_value(t));
			printf("\n");
		}
		printf("%lld deliveries pending\n", (long long)json_integer_value(json_object_get(out, "backlog")));
	}
	json_decref(out);
	return *rc;
}

static int notify_remove(struct client *c, int argc, char **argv, int *rc)
{
	static const char usage[] = "usage: sluice notify remove ID\n\n"
				    "Removes a subscription: nothing more is sent to it, pending deliveries\n"
				    "included.\n\n" CLIENT_HELP;
	int i = client_parse(c, argc, argv, "", NULL, NULL, NULL, usage, rc);
	if (i < 0)
		return *rc;
	struct err e;
	if (opt_positional("notify remove", argc - i, argv + i, 1, 1, "ID", &e))
		return error("%s", e.msg), *rc = EXIT_USAGE;
	if (strspn(argv[i], "0123456789") != strlen(argv[i]) || strlen(argv[i]) > 18 || !*argv[i])
		return error("notify remove: ID: expected a subscription's id (a number, see 'sluice notify list'), "
			     "got '%s'", argv[i]),
		       *rc = EXIT_USAGE;
	char path[64];
	snprintf(path, sizeof(path), "/v1/notifications/%s", argv[i]);
	json_t *body = json_object(), *out = NULL;
	*rc = client_call(c, "DELETE", path, body, &out, NULL);
	json_decref(body);
	if (*rc == EXIT_OK && c->json)
		client_print_json(out);
	else if (*rc == EXIT_OK)
		printf("subscription %s removed\n", argv[i]);
	json_decref(out);
	return *rc;
}

int cmd_notify(int argc, char **argv)
{
	static const char usage[] = "usage: sluice notify add|list|remove ...\n\n"
				    "Manages webhook subscriptions to notifications (an admin token is\n"
				    "needed); see 'sluice notify add --help' and docs/observability.md.\n";
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	struct client c;
	int rc = EXIT_USAGE;
	client_init(&c);
	c.cmd = "notify";
	if (!strcmp(argv[1], "add"))
		notify_add(&c, argc - 1, argv + 1, &rc);
	else if (!strcmp(argv[1], "list"))
		notify_list(&c, argc - 1, argv + 1, &rc);
	else if (!strcmp(argv[1], "remove"))
		notify_remove(&c, argc - 1, argv + 1, &rc);
	else
		error("notify: unknown subcommand '%s' (add, list, remove)", argv[1]);
	client_release(&c);
	return rc;
}
