/*
 * libFuzzer target for release contracts (docs/contracts.md): the parser and validator
 * (contract_parse, contract_from_json, the OpenAPI validation inside) and the comparisons
 * (openapi_diff, contract_check).
 *
 * The input is one contract, or two separated by a NUL byte (the first NUL splits; neither
 * YAML nor JSON text holds a raw NUL, so nothing is lost). Each part is parsed with no base
 * directory, so a `provides` path is refused and nothing is read from disk. It checks:
 *  - a failure leaves a message and no contract;
 *  - what contract_parse accepts, contract_from_json accepts too (its stored form), both as a
 *    value and after a trip through JSON text;
 *  - a provider's API diffed against itself is "compatible" with no breaking finding;
 *  - every report is an object with a known verdict;
 * and with two contracts, diffs their APIs both ways and checks each one's use of the other,
 * alone and against a baseline release (contract_check_since).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract/contract.h"
#include "contract/openapi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static void check_report(json_t *r, const char *kind)
{
	CHECK(json_is_object(r));
	CHECK(!strcmp(json_string_value(json_object_get(r, "kind")), kind));
	const char *verdict = json_string_value(json_object_get(r, "verdict"));
	CHECK(verdict);
	CHECK(json_is_array(json_object_get(r, "findings")));
	if (!strcmp(kind, "diff"))
		CHECK(!strcmp(verdict, "breaking") || !strcmp(verdict, "compatible"));
	else
		CHECK(!strcmp(verdict, "ok") || !strcmp(verdict, "refused"));
	json_decref(r);
}

static void check_stored_form(const contract *c)
{
	struct err e = {""};
	contract *again = NULL;
	json_t *j = contract_to_json(c);
	CHECK(j);
	if (contract_from_json(j, "stored", &again, &e)) {
		char *txt = json_dumps(j, JSON_COMPACT);
		fprintf(stderr, "contract_from_json refused what contract_parse accepted:\n  %s\n  %s\n", e.msg,
			txt ? txt : "");
		abort();
	}
	contract_free(again);
	char *txt = json_dumps(j, JSON_COMPACT);
	CHECK(txt);
	json_t *back = json_loads(txt, 0, NULL); /* a string with a NUL does not reload: jansson's rule */
	if (back) {
		again = NULL;
		if (contract_from_json(back, "stored", &again, &e)) {
			fprintf(stderr, "contract_from_json refused the stored text:\n  %s\n  %s\n", e.msg, txt);
			abort();
		}
		contract_free(again);
		json_decref(back);
	}
	free(txt);
	json_decref(j);
}

static contract *parse(const char *text, size_t len)
{
	contract *c = NULL;
	struct err e = {""};
	if (contract_parse("fuzz.yaml", text, len, NULL, &c, &e)) {
		CHECK(c == NULL && e.msg[0]);
		say(e.msg);
		return NULL;
	}
	CHECK(c != NULL);
	check_stored_form(c);
	const json_t *api = contract_provides(c);
	if (api) {
		json_t *r = openapi_diff(api, api);
		CHECK(json_integer_value(json_object_get(r, "breaking")) == 0);
		check_report(r, "diff");
	}
	char summary[1024];
	for (size_t i = 0; i < contract_consumes_count(c); i++) {
		const char *svc = contract_consumes_name(c, i);
		CHECK(svc && contract_consumes(c, svc));
		contract_reads_summary(c, svc, summary, sizeof(summary));
		CHECK(strlen(summary) < sizeof(summary));
		check_report(contract_check(svc, NULL, c), "check");
	}
	return c;
}

/* b's use of a, for every service b consumes (a's own name may be absent or different): on
 * its own, and since `since` (a baseline release of the provider, or NULL). A baseline only
 * ever lets through parameters the check alone refuses, never refuses more. */
static void check_use(const contract *a, const contract *b, const contract *since)
{
	for (size_t i = 0; i < contract_consumes_count(b); i++) {
		const char *svc = contract_consumes_name(b, i);
		json_t *alone = contract_check(svc, a, b);
		json_t *with = contract_check_since(svc, a, b, since);
		CHECK(alone && with);
		CHECK(json_array_size(json_object_get(with, "findings")) == json_array_size(json_object_get(alone, "findings")));
		if (!strcmp(json_string_value(json_object_get(alone, "verdict")) ?: "", "ok"))
			CHECK(!strcmp(json_string_value(json_object_get(with, "verdict")) ?: "", "ok"));
		(void)contract_lists_parameters(b, svc);
		check_report(alone, "check");
		check_report(with, "check");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	const char *nul = memchr(text, 0, size);
	size_t n1 = nul ? (size_t)(nul - text) : size;
	contract *a = parse(text, n1);
	contract *b = nul ? parse(nul + 1, size - n1 - 1) : NULL;
	if (a && b) {
		const json_t *pa = contract_provides(a), *pb = contract_provides(b);
		if (pa && pb) {
			check_report(openapi_diff(pa, pb), "diff");
			check_report(openapi_diff(pb, pa), "diff");
		}
		check_use(a, b, a);
		check_use(b, a, b);
		check_use(a, b, b);
	}
	if (a)
		check_use(a, a, a);
	contract_free(a);
	contract_free(b);
	return 0;
}
