/*
 * report: the findings every contract check produces, and how they are printed.
 *
 * A finding is a jansson object
 *   {"severity": "breaking"|"warning"|"info", "operation": "GET /items/{id}" or null,
 *    "status": "200" or null, "in": "response"|"request"|"parameter"|"operation"|..., 
 *    "path": a JSON path such as "/metadata" or null, "message": "one sentence"}
 * and findings are collected in a json array. Reports (diff, check, can-i-deploy, plan) are
 * json objects with a "kind" member; the server returns them as they are and the CLI prints
 * them with contract_report_print, so every command shows a report the same way.
 */
#ifndef SLUICE_CONTRACT_REPORT_H
#define SLUICE_CONTRACT_REPORT_H

#include <jansson.h>
#include <stdio.h>

#define REPORT_BREAKING "breaking"
#define REPORT_WARNING "warning"
#define REPORT_INFO "info"

/* Where a finding is. Every member may be NULL. */
struct report_loc {
	const char *operation;
	const char *status;
	const char *in;
	const char *path;
};

/* Appends a finding to `findings` (an array). Allocation failures are ignored on purpose: a
 * report that misses a line is still better than none, and jansson leaves the array valid. */
__attribute__((format(printf, 4, 5))) void report_add(json_t *findings, const char *severity,
						      const struct report_loc *loc, const char *fmt,
						      ...);

/* Number of findings of one severity in an array of findings. */
size_t report_count(const json_t *findings, const char *severity);

/* Prints any report (diff, check, can-i-deploy, plan) for people. Unknown kinds are printed
 * as indented JSON, so a newer server never leaves an older CLI silent. */
void contract_report_print(FILE *f, const json_t *report);

#endif
