/*
 * libFuzzer target for the control plane API's JSON request bodies.
 *
 * src/server/api.c loads a body with jansson (duplicate keys refused) and checks it against
 * its type (server/api_body.h), then hands two parts to real parsers: the `files[].content` of
 * POST /v1/apply (doc_parse + manifest_validate) and the `contract` of a release push
 * (contract_from_json). This target runs each input through:
 *  1. jansson, then every body type and both parsers;
 *  2. util/doc.h's parser (a JSON body is also YAML), walking every place of the result and
 *     checking that its position is known and inside the text.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract/contract.h"
#include "core/manifest.h"
#include "server/api_body.h"
#include "util/doc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

/* Every typed body of the API (server/api_body.h): 0 with a normalized object, or -1 with a
 * message and nothing; and the normalized form checks again to itself (defaults filled once,
 * no field lost or renamed). */
static void run_typed_bodies(const json_t *body)
{
	for (int k = 0; k < API_BODY_COUNT; k++) {
		json_t *out = NULL, *again = NULL;
		struct err e = {""};
		if (api_body_check((enum api_body)k, body, &out, &e)) {
			CHECK(!out && e.msg[0]);
			say(e.msg);
			continue;
		}
		CHECK(json_is_object(out));
		CHECK(api_body_check((enum api_body)k, out, &again, &e) == 0);
		CHECK(json_equal(out, again));
		json_decref(again);
		json_decref(out);
	}
}

/* POST /v1/apply: every {name, content} file is parsed and validated as api.c does. */
static void run_apply_files(const json_t *body)
{
	size_t i;
	json_t *f;
	json_array_foreach(json_object_get(body, "files"), i, f) {
		const char *name = json_string_value(json_object_get(f, "name"));
		const json_t *content = json_object_get(f, "content");
		if (!name || !json_is_string(content))
			continue;
		doc *d = NULL;
		json_t *ms = NULL;
		struct err e = {""};
		if (doc_parse(name, json_string_value(content), json_string_length(content), &d, &e) ||
		    manifest_validate(d, &ms, &e)) {
			CHECK(e.msg[0] && !ms);
			say(e.msg);
		} else {
			size_t k;
			json_t *m;
			json_array_foreach(ms, k, m)
				CHECK(manifest_check_normalized(m, &e) == 0);
		}
		json_decref(ms);
		doc_free(d);
	}
}

/* POST /v1/services/NAME/releases: the optional inline contract. */
static void run_release_contract(const json_t *body)
{
	const json_t *cj = json_object_get(body, "contract");
	if (!cj || json_is_null(cj))
		return;
	contract *c = NULL;
	struct err e = {""};
	if (contract_from_json(cj, "contract", &c, &e)) {
		CHECK(!c && e.msg[0]);
		say(e.msg);
	}
	contract_free(c);
}

static const struct {
	const char *name;
	void (*run)(const json_t *body);
} decoders[] = {
	{"apply files", run_apply_files},
	{"release contract", run_release_contract},
	{"typed bodies", run_typed_bodies},
};

static void check_pos(struct doc_pos p, size_t size)
{
	CHECK(p.line >= 1 && p.col >= 1);
	CHECK((size_t)p.line <= size + 1 && (size_t)p.col <= size + 1);
}

static void walk(const doc *d, const json_t *v, size_t size)
{
	if (json_is_object(v)) {
		check_pos(doc_node_pos(d, v), size);
		const char *k;
		json_t *x;
		json_object_foreach((json_t *)v, k, x) {
			check_pos(doc_key_pos(d, v, k), size);
			check_pos(doc_value_pos(d, v, k), size);
			walk(d, x, size);
		}
	} else if (json_is_array(v)) {
		check_pos(doc_node_pos(d, v), size);
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x) {
			check_pos(doc_index_pos(d, v, i), size);
			walk(d, x, size);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t je;
	json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
	if (body) {
		if (json_is_object(body))
			for (size_t i = 0; i < sizeof(decoders) / sizeof(decoders[0]); i++)
				decoders[i].run(body);
		json_decref(body);
	}

	doc *d = NULL;
	struct err e = {""};
	if (doc_parse("body.json", (const char *)data, size, &d, &e)) {
		CHECK(!d && e.msg[0]);
		return 0;
	}
	CHECK(doc_count(d) <= size + 1);
	for (size_t i = 0; i < doc_count(d); i++)
		walk(d, doc_root(d, i), size);
	doc_free(d);
	return 0;
}
