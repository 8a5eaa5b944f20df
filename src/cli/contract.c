/*
 * `sluice contract`: the offline compatibility tools.
 *
 *   sluice contract diff OLD NEW [-o json]            breaking changes between two OpenAPI
 *                                                     documents (or contracts' `provides`)
 *   sluice contract check PROVIDER CONSUMER [--service NAME] [-o json]
 *                                                     does the consumer's declared use hold?
 *   sluice contract validate FILE...                  validate contract files
 *
 * Exit: 0 nothing breaking, 1 something breaks (or a check refuses), 2 invalid input.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "contract/contract.h"
#include "contract/openapi.h"
#include "contract/report.h"
#include "util/log.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: sluice contract diff OLD NEW [-o json]\n"
		   "       sluice contract check PROVIDER_CONTRACT CONSUMER_CONTRACT [--service NAME] [-o json]\n"
		   "       sluice contract validate CONTRACT...\n"
		   "\n"
		   "diff     compares two OpenAPI documents of one provider (a contract file stands for its\n"
		   "         'provides'): responses may only narrow, requests may only widen\n"
		   "check    checks what CONSUMER reads from and sends to the provider against PROVIDER's\n"
		   "         API; NAME is the provider's service (default: its contract's 'service', or\n"
		   "         the only service the consumer calls)\n"
		   "validate reports the first mistake in each contract as FILE:LINE:COL\n"
		   "\n"
		   "exit: 0 nothing breaking, 1 something breaks, 2 invalid input. Format: docs/contracts.md\n");
}

/* Removes "-o FMT"/"--output FMT" and "--service NAME" from argv; returns the new argc or -1. */
static int parse_opts(int argc, char **argv, int *json, const char **service)
{
	int n = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--service")) {
			if (i + 1 >= argc)
				return error("%s needs a value", a);
			const char *val = argv[++i];
			if (!strcmp(a, "--service")) {
				*service = val;
			} else if (!strcmp(val, "json")) {
				*json = 1;
			} else if (!strcmp(val, "text")) {
				*json = 0;
			} else {
				return error("unknown output format '%s' (text or json)", val);
			}
		} else if (!strncmp(a, "-o", 2) && a[2]) {
			if (strcmp(a + 2, "json") && strcmp(a + 2, "text"))
				return error("unknown output format '%s' (text or json)", a + 2);
			*json = !strcmp(a + 2, "json");
		} else if (a[0] == '-' && a[1]) {
			return error("unknown option '%s'; see 'sluice contract --help'", a);
		} else {
			argv[n++] = argv[i];
		}
	}
	return n;
}

static int emit(json_t *report, int json, int breaking)
{
	if (json) {
		json_dumpf(report, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
	} else {
		contract_report_print(stdout, report);
	}
	json_decref(report);
	return breaking ? EXIT_NO : EXIT_OK;
}

static int cmd_diff(int argc, char **argv, int json)
{
	if (argc != 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	json_t *old_api, *new_api;
	struct err e;
	if (contract_load_openapi(argv[0], &old_api, &e)) {
		error("%s", e.msg);
		return EXIT_USAGE;
	}
	if (contract_load_openapi(argv[1], &new_api, &e)) {
		json_decref(old_api);
		error("%s", e.msg);
		return EXIT_USAGE;
	}
	json_t *report = openapi_diff(old_api, new_api);
	json_decref(old_api);
	json_decref(new_api);
	if (!report) {
		error("out of memory");
		return EXIT_USAGE;
	}
	return emit(report, json, json_integer_value(json_object_get(report, "breaking")) > 0);
}

static int cmd_check(int argc, char **argv, int json, const char *service)
{
	if (argc != 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	contract *prov, *cons;
	struct err e;
	if (contract_load(argv[0], &prov, &e)) {
		error("%s", e.msg);
		return EXIT_USAGE;
	}
	if (contract_load(argv[1], &cons, &e)) {
		contract_free(prov);
		error("%s", e.msg);
		return EXIT_USAGE;
	}
	if (!service)
		service = contract_service(prov);
	if (!service && contract_consumes_count(cons) == 1)
		service = contract_consumes_name(cons, 0);
	int rc;
	if (!service) {
		rc = EXIT_USAGE;
		error("which service does %s provide? give --service NAME or 'service:' in its contract", argv[0]);
	} else if (!contract_provides(prov)) {
		rc = EXIT_USAGE;
		error("%s: the provider's contract has no 'provides' (no API to check against)", argv[0]);
	} else {
		json_t *report = contract_check(service, prov, cons);
		rc = report ? emit(report, json, strcmp(json_string_value(json_object_get(report, "verdict")), "ok"))
			    : (error("out of memory"), EXIT_USAGE);
	}
	contract_free(prov);
	contract_free(cons);
	return rc;
}

static int cmd_validate(int argc, char **argv)
{
	if (argc < 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	int rc = EXIT_OK;
	for (int i = 0; i < argc; i++) {
		contract *c;
		struct err e;
		if (contract_load(argv[i], &c, &e)) {
			error("%s", e.msg);
			rc = EXIT_USAGE;
			continue;
		}
		printf("%s: valid\n", argv[i]);
		contract_free(c);
	}
	return rc;
}

int cmd_contract(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *sub = argv[1];
	if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return EXIT_OK;
		}
	int json = 0;
	const char *service = NULL;
	int n = parse_opts(argc - 2, argv + 2, &json, &service);
	if (n < 0)
		return EXIT_USAGE;
	if (!strcmp(sub, "diff"))
		return cmd_diff(n, argv + 2, json);
	if (!strcmp(sub, "check"))
		return cmd_check(n, argv + 2, json, service);
	if (!strcmp(sub, "validate"))
		return cmd_validate(n, argv + 2);
	error("'%s' is not a contract command (diff, check, validate)", sub);
	return EXIT_USAGE;
}
