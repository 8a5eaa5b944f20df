/*
 * sluice: one binary for the control plane (`sluice server`), the data plane (`sluice proxy`)
 * and the command-line client of the control plane's HTTP API.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{"server", cmd_server, "run the control plane (HTTP API, pipelines, reconciler)"},
	{"proxy", cmd_proxy, "run the traffic-splitting proxy (data plane)"},
	{"apply", cmd_apply, "validate and store Environment and Service manifests"},
	{"release", cmd_release, "push or list releases (immutable artifact + version + contract)"},
	{"deploy", cmd_deploy, "start a deployment of a release"},
	{"retry", cmd_retry, "retry one failed region of a deployment alone"},
	{"promote", cmd_promote, "promote a deployment now, skipping its remaining steps"},
	{"rollback", cmd_rollback, "return a service to its last known good release"},
	{"status", cmd_status, "show versions, traffic split and checks per region"},
	{"history", cmd_history, "list a service's deployments"},
	{"events", cmd_events, "show the events of one deployment"},
	{"logs", cmd_logs, "show instance logs of a service"},
	{"can-i-deploy", cmd_can_i_deploy, "check a release against every live version"},
	{"plan", cmd_plan, "order single-service deploys that reach a multi-service target"},
	{"flags", cmd_flags, "apply a flag set to an environment, or list its versions"},
	{"flag", cmd_flag, "list, read, enable, disable, kill a feature flag or set its default"},
	{"token", cmd_token, "create, list or revoke API tokens (admin)"},
	{"notify", cmd_notify, "add, list or remove webhook subscriptions to notifications (admin)"},
	{"audit", cmd_audit, "show the audit log of changes made through the API (admin)"},
	{"shutdown", cmd_shutdown, "stop the server (and with --data-plane its instances and proxy)"},
	{"contract", cmd_contract, "diff OpenAPI documents, check a consumer against a provider"},
	{"judge", cmd_judge, "judge canary against baseline samples, offline"},
	{"load", cmd_load, "send bounded, rate-limited HTTP load and summarize failures and latency"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: sluice COMMAND [ARGS...]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-13s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\n'sluice COMMAND --help' describes a command. The server is found with --server URL\n"
		   "or $SLUICE_SERVER (default http://127.0.0.1:7070). Exit codes: docs/cli.md.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("sluice %s\n", SLUICE_VERSION);
		return EXIT_OK;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "sluice: '%s' is not a command; see 'sluice --help'\n", argv[1]);
	return EXIT_USAGE;
}
