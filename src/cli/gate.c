/*
 * `sluice can-i-deploy` and `sluice plan`: the compatibility gate against what the server
 * knows is live. Exit 0 when safe, 1 when refused (or no safe order exists), 2 on bad input.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/client.h"
#include "commands.h"
#include "contract/report.h"
#include "util/opt.h"

static int gate_options(struct client *c, int argc, char **argv, const char **env,
			const char *usage, int *rc)
{
	struct option opts[] = {CLIENT_OPTIONS, {"env", required_argument, NULL, 'e'}, {0}};
	optind = 1;
	opterr = 0;
	int opt;
	struct err e;
	while ((opt = getopt_long(argc, argv, ":ho:e:", opts, NULL)) != -1) {
		if (opt == 'h') {
			fputs(usage, stdout);
			*rc = EXIT_OK;
			return -1;
		} else if (opt == '?' || opt == ':') {
			opt_getopt_error(argv[0], opt, optopt, argv[optind - 1], &e);
			*rc = EXIT_USAGE;
			return error("%s", e.msg);
		} else if (opt == 'e') {
			*env = optarg;
			if (opt_name("--env", optarg, NAME_OBJECT, &e)) {
				*rc = EXIT_USAGE;
				return error("%s", e.msg);
			}
		} else if (client_option(c, opt, optarg)) {
			*rc = EXIT_USAGE;
			return -1;
		}
	}
	return optind;
}

static int show(struct client *c, json_t *report, const char *ok_verdict)
{
	if (c->json)
		client_print_json(report);
	else
		contract_report_print(stdout, report);
	const char *v = json_string_value(json_object_get(report, "verdict"));
	return v && !strcmp(v, ok_verdict) ? EXIT_OK : EXIT_NO;
}

int cmd_can_i_deploy(int argc, char **argv)
{
	static const char usage[] =
		"usage: sluice can-i-deploy SERVICE VERSION [--env ENV] [-o json]\n\n"
		"Checks a release against every version the server knows is live in the environment\n"
		"(serving, canaries in flight, stable rollback targets): as a provider against every\n"
		"live consumer, as a consumer against every live provider, while old and new serve\n"
		"side by side; and whether rolling back to the current stable would stay safe.\n"
		"Exit 0 when safe, 1 when refused.\n\n"
		"  --env ENV      environment (default production)\n"
		CLIENT_HELP_SERVER
		"  -o FORMAT      text (default) or json\n";
	struct client c;
	const char *env = "production";
	int rc = EXIT_USAGE;
	client_init(&c);
	int i = gate_options(&c, argc, argv, &env, usage, &rc);
	if (i < 0)
		goto out;
	struct err e;
	if (opt_positional("can-i-deploy", argc - i, argv + i, 2, 2, "SERVICE VERSION", &e)) {
		error("%s", e.msg);
		goto out;
	}
	if (opt_name("SERVICE", argv[i], NAME_OBJECT, &e) || opt_name("VERSION", argv[i + 1], NAME_VERSION, &e)) {
		error("can-i-deploy: %s", e.msg);
		goto out;
	}
	char *s = httpc_escape(argv[i]), *v = httpc_escape(argv[i + 1]), *en = httpc_escape(env);
	char path[1024];
	snprintf(path, sizeof(path), "/v1/can-i-deploy?service=%s&version=%s&env=%s", s, v, en);
	free(s);
	free(v);
	free(en);
	json_t *report = NULL;
	rc = client_call(&c, "GET", path, NULL, &report, NULL);
	if (rc == EXIT_OK)
		rc = show(&c, report, "ok");
	json_decref(report);
out:
	client_release(&c);
	return rc;
}

int cmd_plan(int argc, char **argv)
{
	static const char usage[] =
		"usage: sluice plan SERVICE=VERSION... [--env ENV] [-o json]\n\n"
		"Orders single-service deploys from what is live to the target so that every step,\n"
		"including the window where old and new serve together, passes the compatibility\n"
		"checks; and gives the reverse order for going back. When no order exists it names\n"
		"the conflicting pairs and what an intermediate (expand/contract) release would have\n"
		"to provide. Exit 0 when a plan exists, 1 when none does.\n\n"
		"  --env ENV      environment (default production)\n"
		CLIENT_HELP_SERVER
		"  -o FORMAT      text (default) or json\n";
	struct client c;
	const char *env = "production";
	int rc = EXIT_USAGE;
	client_init(&c);
	int i = gate_options(&c, argc, argv, &env, usage, &rc);
	if (i < 0)
		goto out;
	struct err e;
	if (opt_positional("plan", argc - i, argv + i, 1, -1, "SERVICE=VERSION...", &e)) {
		error("%s", e.msg);
		goto out;
	}
	json_t *targets = json_object();
	for (; i < argc; i++) {
		const char *eq = strchr(argv[i], '=');
		if (!eq || eq == argv[i] || !eq[1]) {
			error("'%s': expected SERVICE=VERSION", argv[i]);
			json_decref(targets);
			goto out;
		}
		char svc[128];
		snprintf(svc, sizeof(svc), "%.*s", (int)(eq - argv[i]), argv[i]);
		if (opt_name("SERVICE", svc, NAME_OBJECT, &e) || opt_name("VERSION", eq + 1, NAME_VERSION, &e)) {
			error("plan: '%s': %s", argv[i], e.msg);
			json_decref(targets);
			goto out;
		}
		if (json_object_get(targets, svc)) {
			error("'%s' is named twice", svc);
			json_decref(targets);
			goto out;
		}
		json_object_set_new(targets, svc, json_string(eq + 1));
	}
	json_t *body = json_pack("{s:o, s:s}", "targets", targets, "env", env), *report = NULL;
	rc = client_call(&c, "POST", "/v1/plan", body, &report, NULL);
	json_decref(body);
	if (rc == EXIT_OK)
		rc = show(&c, report, "ok");
	json_decref(report);
out:
	client_release(&c);
	return rc;
}
