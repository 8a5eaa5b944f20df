/*
 * libFuzzer target for manifests: bytes -> doc_parse (YAML; JSON is read by the same parser,
 * as `sluice apply` and POST /v1/apply do) -> manifest_validate.
 *
 * Besides "no crash, leak or undefined behaviour", it checks the validator's contract:
 *  - a failure leaves a message ("FILE:LINE:COL: ...") and no output;
 *  - a success gives an array of objects, each with a kind and a valid name;
 *  - every normalized manifest passes manifest_check_normalized, both as returned and after a
 *    trip through JSON text (the store keeps it as text). A refusal there means the server
 *    would reject, later, a manifest it accepted: abort with both messages.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/manifest.h"
#include "util/doc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static void check_normalized(const json_t *m, const char *what)
{
	struct err e = {""};
	if (manifest_check_normalized(m, &e)) {
		char *txt = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
		fprintf(stderr, "manifest_check_normalized refused what manifest_validate produced (%s):\n"
			"  %s\n  %s\n", what, e.msg, txt ? txt : "(out of memory)");
		free(txt);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	doc *d = NULL;
	struct err e = {""};
	if (doc_parse("fuzz.yaml", (const char *)data, size, &d, &e)) {
		CHECK(d == NULL && e.msg[0]);
		say(e.msg);
		return 0;
	}
	CHECK(d != NULL);
	json_t *out = NULL;
	if (manifest_validate(d, &out, &e)) {
		CHECK(out == NULL && e.msg[0]);
		say(e.msg);
		doc_free(d);
		return 0;
	}
	CHECK(json_is_array(out));
	CHECK(json_array_size(out) <= MANIFEST_MAX_PER_FILE);
	size_t i;
	json_t *m;
	json_array_foreach(out, i, m) {
		CHECK(json_is_object(m));
		const char *kind = json_string_value(json_object_get(m, "kind"));
		const char *name = json_string_value(json_object_get(m, "name"));
		CHECK(kind && name && manifest_name_ok(name));
		check_normalized(m, "as returned");
		char *txt = json_dumps(m, JSON_COMPACT);
		CHECK(txt);
		json_error_t je;
		json_t *back = json_loads(txt, 0, &je);
		if (!back) {
			fprintf(stderr, "a normalized manifest does not reload: %s\n  %s\n", je.text, txt);
			abort();
		}
		check_normalized(back, "after JSON text");
		json_decref(back);
		free(txt);
	}
	json_decref(out);
	doc_free(d);
	return 0;
}
