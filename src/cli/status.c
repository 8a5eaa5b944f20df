/*
 * `sluice status [SERVICE] [--watch]`: versions per region, the traffic split, the deployment
 * in flight with its current step, and its latest check. --watch redraws every second.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/client.h"
#include "commands.h"
#include "util/opt.h"

static void print_region(const json_t *r)
{
	const char *stable = json_string_value(json_object_get(r, "stable"));
	printf("    %-10s stable %-8s traffic", json_string_value(json_object_get(r, "region")),
	       stable ? stable : "-");
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(r, "traffic"), i, t)
		printf(" %s=%lld%%", json_string_value(json_object_get(t, "version")),
		       (long long)json_integer_value(json_object_get(t, "weight")));
	if (!json_array_size(json_object_get(r, "traffic")))
		printf(" none");
	putchar('\n');
	json_t *d = json_object_get(r, "deployment");
	if (d) {
		printf("      deployment %lld: %s %s, %s", (long long)json_integer_value(json_object_get(d, "id")),
		       json_string_value(json_object_get(d, "kind")),
		       json_string_value(json_object_get(d, "version")),
		       json_string_value(json_object_get(d, "state")));
		if (json_object_get(d, "step"))
			printf(" %lld/%lld", (long long)json_integer_value(json_object_get(d, "step")),
			       (long long)json_integer_value(json_object_get(d, "steps")));
		putchar('\n');
		const char *check = json_string_value(json_object_get(d, "check"));
		if (check)
			printf("      check: %s\n", check);
	}
	json_t *in;
	json_array_foreach(json_object_get(r, "instances"), i, in) {
		const char *reason = json_string_value(json_object_get(in, "reason"));
		const char *endpoint = json_string_value(json_object_get(in, "endpoint"));
		printf("      %-8s %-21s %-10s %-11s restarts %lld%s%s\n",
		       json_string_value(json_object_get(in, "version")), endpoint && *endpoint ? endpoint : "-",
		       json_string_value(json_object_get(in, "state")),
		       json_string_value(json_object_get(in, "detail")),
		       (long long)json_integer_value(json_object_get(in, "restarts")),
		       reason && *reason ? "  " : "", reason ? reason : "");
	}
}

static void print_status(const json_t *st)
{
	size_t i, j, k;
	json_t *s, *e, *r;
	json_array_foreach(json_object_get(st, "services"), i, s) {
		printf("%s", json_string_value(json_object_get(s, "service")));
		json_t *o = json_object_get(s, "owner");
		if (json_is_object(o)) {
			/* since: the store's clock, ms since the epoch */
			time_t since = (time_t)(json_integer_value(json_object_get(o, "since")) / 1000);
			struct tm tm;
			char when[32] = "?";
			if (gmtime_r(&since, &tm))
				strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%SZ", &tm);
			printf("  (driven by replica %s since %s, epoch %lld)",
			       json_string_value(json_object_get(o, "replica")), when,
			       (long long)json_integer_value(json_object_get(o, "epoch")));
		} else if (json_object_get(s, "owner")) {
			printf("  (no replica drives it now: its lease expired)");
		}
		putchar('\n');
		json_array_foreach(json_object_get(s, "envs"), j, e) {
			printf("  %s\n", json_string_value(json_object_get(e, "env")));
			json_array_foreach(json_object_get(e, "regions"), k, r)
				print_region(r);
		}
	}
}

int cmd_status(int argc, char **argv)
{
	static const char usage[] =
		"usage: sluice status [SERVICE] [--watch] [-o json]\n\n"
		"Shows, per service, environment and region: the stable version, the traffic split,\n"
		"the deployment in flight and its current step, its latest check, and the instances.\n\n"
		"  -w, --watch    redraw every second until interrupted\n"
		CLIENT_HELP_SERVER
		"  -o FORMAT      text (default) or json\n"
		"  -h, --help     this help\n";
	struct option opts[] = {CLIENT_OPTIONS, {"watch", no_argument, NULL, 'w'}, {0}};
	struct client c;
	int watch = 0, rc = EXIT_USAGE, opt;
	client_init(&c);
	struct err e;
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":ho:w", opts, NULL)) != -1) {
		if (opt == 'h') {
			fputs(usage, stdout);
			rc = EXIT_OK;
			goto out;
		} else if (opt == 'w') {
			watch = 1;
		} else if (opt == '?' || opt == ':') {
			opt_getopt_error("status", opt, optopt, argv[optind - 1], &e);
			error("%s", e.msg);
			goto out;
		} else if (client_option(&c, opt, optarg)) {
			goto out;
		}
	}
	if (opt_positional("status", argc - optind, argv + optind, 0, 1, "at most one SERVICE", &e) ||
	    (optind < argc && opt_name("SERVICE", argv[optind], NAME_OBJECT, &e))) {
		error("%s", e.msg);
		goto out;
	}
	char path[512] = "/v1/status";
	if (optind < argc) {
		char *esc = httpc_escape(argv[optind]);
		snprintf(path, sizeof(path), "/v1/status?service=%s", esc);
		free(esc);
	}
	do {
		json_t *st = NULL;
		rc = client_call(&c, "GET", path, NULL, &st, NULL);
		if (rc != EXIT_OK)
			break;
		if (watch && !c.json)
			fputs("\033[H\033[2J", stdout);
		if (c.json)
			client_print_json(st);
		else
			print_status(st);
		fflush(stdout);
		json_decref(st);
		if (watch)
			sleep(1);
	} while (watch);
out:
	client_release(&c);
	return rc;
}
