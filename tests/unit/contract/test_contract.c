/*
 * Contract files: validation errors with exact positions (and field paths for JSON values),
 * the JSON round trip the server relies on, and the consumer check on the Metadata example.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "contract/contract.h"
#include "contract/openapi.h"

#ifndef EXAMPLES
#error "EXAMPLES must name examples/contracts"
#endif

static contract *load_example(const char *name)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s.yaml", EXAMPLES, name);
	contract *c = NULL;
	struct err e;
	cr_assert_eq(contract_load(path, &c, &e), 0, "%s", e.msg);
	return c;
}

static void expect_error(const char *text, const char *basedir, const char *want)
{
	contract *c = NULL;
	struct err e = {{0}};
	int rc = contract_parse("c.yaml", text, strlen(text), basedir, &c, &e);
	cr_expect_eq(rc, -1, "accepted: %s", text);
	if (!rc)
		contract_free(c);
	cr_expect(strstr(e.msg, want) == e.msg || strstr(e.msg, want), "expected '%s' in '%s'", want, e.msg);
}

struct vcase {
	const char *text;
	const char *want; /* the beginning of the message: FILE:LINE:COL: FIELD: ... */
};

static const struct vcase vcases[] = {
	{"servic: x\nconsumes: {}\n", "c.yaml:1:1: (top level): unknown key 'servic' (did you mean 'service'? a contract has"},
	{"$defs: {A: {type: nope}}\nconsumes: {}\n", "c.yaml:1:19: $defs.A: unknown type 'nope'"},
	{"service: Profile\nconsumes: {}\n", "c.yaml:1:10: service: 'service' must be a service name"},
	{"service: a\n", "c.yaml:1:1: (top level): a contract needs 'provides', 'consumes' or both"},
	{"consumes:\n  metadata:\n    - method: FETCH\n      path: /x\n",
	 "c.yaml:3:15: consumes.metadata[0]: unknown method 'FETCH'"},
	{"consumes:\n  metadata:\n    - method: GET\n      path: x\n",
	 "c.yaml:4:13: consumes.metadata[0]: a path template starts with '/'"},
	{"consumes:\n  metadata:\n    - method: GET\n      path: /x\n      reads:\n        - {path: metadata}\n",
	 "c.yaml:6:18: consumes.metadata[0].reads[0]: a read path starts with '/'"},
	{"consumes:\n  metadata:\n    - method: GET\n      path: /x\n      reads:\n        - {path: /a, type: text}\n",
	 "c.yaml:6:28: consumes.metadata[0].reads[0]: 'type' must be a type name"},
	{"consumes:\n  metadata:\n    - method: GET\n      path: /x\n      reads:\n        - {path: /a//b}\n",
	 "c.yaml:6:18: consumes.metadata[0].reads[0]: empty segment"},
	{"consumes:\n  metadata:\n    - method: GET\n      path: /x\n      reads:\n        - any_of: /a\n",
	 "c.yaml:6:19: consumes.metadata[0].reads[0]: 'any_of' must list 1 to 16 alternatives"},
	{"consumes:\n  metadata:\n    - method: GET\n      path: /x\n      reads:\n        - any_of:\n            - {pth: /a}\n",
	 "c.yaml:7:15: consumes.metadata[0].reads[0].any_of[0]: a read needs a 'path'"},
	{"consumes:\n  metadata:\n    - method: GET\n      path: /x\n      colour: red\n",
	 "c.yaml:5:7: consumes.metadata[0]: unknown key 'colour'"},
	{"consumes:\n  metadata: []\n", "c.yaml:2:13: consumes.metadata: list the operations called"},
	{"consumes:\n  metadata:\n    - method: GET\n      path: /x\n      sends: {type: strng}\n",
	 "c.yaml:5:21: consumes.metadata[0].sends: unknown type 'strng'"},
	{"provides:\n  openapi: 2.0\n", "c.yaml:2:12: provides.openapi: 'openapi' must be a string"},
	{"provides:\n  openapi: \"2.0\"\n", "c.yaml:2:12: provides.openapi: OpenAPI version '2.0' is not supported"},
	{"provides:\n  openapi: 3.1.0\n  paths:\n    /x:\n      get:\n        responses:\n          \"200\":\n"
	 "            description: ok\n            content:\n              application/json:\n"
	 "                schema: {$ref: '#/components/schemas/Nope'}\n",
	 "c.yaml:11:32: provides.paths./x.get.responses.200.content.application/json.schema: reference "
	 "'#/components/schemas/Nope' does not resolve"},
	{"provides:\n  openapi: 3.1.0\n  paths:\n    /x:\n      get:\n        responses:\n          \"299x\": {description: ok}\n",
	 "c.yaml:7:11: provides.paths./x.get.responses.299x: '299x' is not a status code"},
	{"provides:\n  openapi: 3.1.0\n  paths:\n    /x:\n      GET:\n        responses: {}\n",
	 "c.yaml:5:7: provides.paths./x: unknown key 'GET'"},
	{"provides:\n  openapi: 3.1.0\n  paths:\n    /x:\n      get: {}\n",
	 "c.yaml:5:7: provides.paths./x.get: an operation needs 'responses'"},
	{"provides:\n  openapi: 3.1.0\n  paths:\n    x: {}\n", "c.yaml:4:5: provides.paths.x: a path must start with '/'"},
	{"- not a mapping\n", "c.yaml:1:1: (top level): a contract must be a mapping"},
	{"consumes: {a: [{method: GET, path: /x}]}\n---\nconsumes: {}\n", "c.yaml: a contract file holds exactly one document"},
	{"provides: openapi.yaml\n", "c.yaml:1:11: provides: 'provides' is a file path but there is no directory"},
};

Test(contract, validation_errors_have_exact_positions)
{
	for (size_t i = 0; i < sizeof(vcases) / sizeof(vcases[0]); i++)
		expect_error(vcases[i].text, NULL, vcases[i].want);
}

Test(contract, provides_file_errors_point_into_that_file)
{
	char dir[] = "/tmp/sluice-contract-XXXXXX";
	cr_assert(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof(path), "%s/api.yaml", dir);
	FILE *f = fopen(path, "w");
	cr_assert(f);
	fputs("openapi: 3.0.3\npaths:\n  /x:\n    get:\n      responses:\n        \"200\":\n          description: ok\n"
	      "          content:\n            application/json:\n              schema: {type: [string, bogus]}\n",
	      f);
	fclose(f);
	expect_error("provides: api.yaml\n", dir, "api.yaml:10:39: paths./x.get.responses.200.content.application/json.schema: unknown type");
	expect_error("provides: missing.yaml\n", dir, "c.yaml:1:11: provides: could not open");
	remove(path);
	rmdir(dir);
}

Test(contract, json_round_trip_inlines_provides)
{
	contract *c = load_example("metadata-v2");
	json_t *j = contract_to_json(c);
	cr_assert(json_is_object(json_object_get(j, "provides")), "provides must be inlined");
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(j, "provides"), "openapi")), "3.1.0");
	char *text = json_dumps(j, 0);
	json_t *back = json_loads(text, 0, NULL);
	contract *c2 = NULL;
	struct err e;
	cr_assert_eq(contract_from_json(back, "stored", &c2, &e), 0, "%s", e.msg);
	json_t *j2 = contract_to_json(c2);
	cr_expect(json_equal(j2, j));
	json_decref(j2);
	cr_expect_str_eq(contract_service(c2), "metadata");
	free(text);
	json_decref(back);
	json_decref(j);
	contract_free(c2);
	contract_free(c);
}

Test(contract, from_json_errors_name_the_field)
{
	contract *c = NULL;
	struct err e;
	json_t *v = json_pack("{s:s}", "provides", "api.yaml");
	cr_expect_eq(contract_from_json(v, "profile@v1", &c, &e), -1);
	cr_expect(strstr(e.msg, "profile@v1: provides: 'provides' must be inline"), "%s", e.msg);
	json_decref(v);
	v = json_pack("{s:{s:[{s:s, s:i}]}}", "consumes", "metadata", "method", "GET", "path", 7);
	cr_expect_eq(contract_from_json(v, "x", &c, &e), -1);
	cr_expect(strstr(e.msg, "x: consumes.metadata[0]: 'path' must be a path template"), "%s", e.msg);
	json_decref(v);
}

struct ccase {
	const char *provider, *consumer;
	const char *verdict;
	int fallbacks;
	const char *phrase; /* in some finding, or NULL */
};

Test(check, metadata_matrix)
{
	static const struct ccase cases[] = {
		{"metadata-v1", "profile-v1", "ok", 0, NULL},
		{"metadata-v2", "profile-v1", "ok", 0, NULL},
		{"metadata-v3", "profile-v1", "refused", 0, "/metadata is not in the provider's schema"},
		{"metadata-v1", "profile-v2", "ok", 1, "holds only through fallback alternative 2 (/metadata)"},
		{"metadata-v2", "profile-v2", "ok", 0, NULL},
		{"metadata-v3", "profile-v2", "ok", 0, NULL},
		{"profile-v1", "web-v1", "ok", 0, NULL},
		{"profile-v2", "web-v1", "ok", 0, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		contract *p = load_example(cases[i].provider), *c = load_example(cases[i].consumer);
		json_t *r = contract_check(contract_service(p), p, c);
		char *d = json_dumps(r, JSON_COMPACT);
		cr_expect_str_eq(json_string_value(json_object_get(r, "verdict")), cases[i].verdict, "%s <- %s: %s",
				 cases[i].provider, cases[i].consumer, d);
		cr_expect_eq(json_integer_value(json_object_get(r, "fallbacks")), cases[i].fallbacks, "%s <- %s: %s",
			     cases[i].provider, cases[i].consumer, d);
		cr_expect(json_is_true(json_object_get(r, "uses")));
		if (cases[i].phrase)
			cr_expect(strstr(d, cases[i].phrase), "%s <- %s: no '%s' in %s", cases[i].provider, cases[i].consumer,
				  cases[i].phrase, d);
		free(d);
		json_decref(r);
		contract_free(p);
		contract_free(c);
	}
}

static contract *parse(const char *text)
{
	contract *c = NULL;
	struct err e;
	cr_assert_eq(contract_parse("inline.yaml", text, strlen(text), NULL, &c, &e), 0, "%s", e.msg);
	return c;
}

#define PROVIDER                                                                                                   \
	"service: p\nprovides:\n  openapi: 3.0.3\n  paths:\n    /things/{thingId}:\n      get:\n        responses:\n" \
	"          \"200\":\n            description: ok\n            content:\n              application/json:\n"    \
	"                schema:\n                  type: object\n                  required: [n, tags, maybe]\n"     \
	"                  properties:\n                    n: {type: integer}\n                    opt: {type: string}\n" \
	"                    maybe: {type: string, nullable: true}\n                    tags:\n"                     \
	"                      type: array\n                      items: {type: string}\n"                           \
	"      post:\n        requestBody:\n          required: true\n          content:\n"                          \
	"            application/json:\n              schema:\n                type: object\n"                       \
	"                additionalProperties: false\n                required: [name]\n                properties:\n" \
	"                  name: {type: string, maxLength: 20}\n                  size: {type: integer}\n"          \
	"        responses:\n          \"201\": {description: created}\n"

struct rcase {
	const char *consumes; /* the operation list under consumes.p */
	const char *verdict;
	const char *phrase;
};

Test(check, reads_sends_and_operations)
{
	static const struct rcase cases[] = {
		{"- {method: get, path: '/things/{id}', reads: [{path: /n, type: number}]}", "ok", NULL},
		{"- {method: GET, path: '/things/{id}', reads: [{path: /n, type: string}]}", "refused",
		 "/n is integer in the provider's schema, the consumer expects string"},
		{"- {method: GET, path: '/things/{id}', reads: [{path: /opt, type: string}]}", "refused", "/opt is optional"},
		{"- {method: GET, path: '/things/{id}', reads: [{path: /opt, type: string, optional: true}]}", "ok", NULL},
		{"- {method: GET, path: '/things/{id}', reads: [{path: /maybe, type: string}]}", "refused", "/maybe may be null"},
		{"- {method: GET, path: '/things/{id}', reads: [{path: /maybe, type: [string, 'null']}]}", "ok", NULL},
		{"- {method: GET, path: '/things/{id}', reads: [{path: /tags/*, type: string}]}", "ok", NULL},
		{"- {method: GET, path: '/things/{id}', reads: [{path: /n/*, type: string}]}", "refused", "not guaranteed to be an array"},
		{"- {method: GET, path: '/things/{id}', reads: [{any_of: [{path: /gone}, {path: /opt}]}]}", "refused",
		 "none is guaranteed"},
		{"- {method: DELETE, path: '/things/{id}'}", "refused", "DELETE /things/{id} is not provided by p"},
		{"- {method: POST, path: '/things/{id}', sends: {type: object, required: [name], properties: {name: {type: string, maxLength: 10}}, additionalProperties: false}}",
		 "ok", NULL},
		{"- {method: POST, path: '/things/{id}', sends: {type: object, required: [name], properties: {name: {type: string}, colour: {type: string}}}}",
		 "refused", "maxLength 20 added"},
		{"- {method: POST, path: '/things/{id}', sends: {type: object, properties: {name: {type: string, maxLength: 5}}}}",
		 "refused", "became required"},
		{"- {method: GET, path: '/things/{id}', sends: {type: object}}", "refused", "accepts none"},
		{"- {method: POST, path: '/things/{id}', sends: {$ref: '#/$defs/Thing'}}", "ok", NULL},
		{"- {method: POST, path: '/things/{id}', sends: {$ref: '#/$defs/Loose'}}", "refused", "new required property 'name'"},
	};
	contract *p = parse(PROVIDER);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[2048];
		snprintf(text, sizeof(text),
			 "service: c\n$defs:\n  Thing: {type: object, additionalProperties: false, required: [name], properties: "
			 "{name: {type: string, maxLength: 3}}}\n  Loose: {type: object, additionalProperties: false, properties: "
			 "{size: {type: integer}}}\nconsumes:\n  p:\n    %s\n",
			 cases[i].consumes);
		contract *c = parse(text);
		json_t *r = contract_check("p", p, c);
		char *d = json_dumps(r, JSON_COMPACT);
		cr_expect_str_eq(json_string_value(json_object_get(r, "verdict")), cases[i].verdict, "case %zu: %s", i, d);
		if (cases[i].phrase)
			cr_expect(strstr(d, cases[i].phrase), "case %zu: no '%s' in %s", i, cases[i].phrase, d);
		free(d);
		json_decref(r);
		contract_free(c);
	}
	contract_free(p);
}

Test(check, consumer_of_another_service_is_not_concerned)
{
	contract *p = load_example("metadata-v3"), *c = load_example("web-v1");
	json_t *r = contract_check("metadata", p, c);
	cr_expect_str_eq(json_string_value(json_object_get(r, "verdict")), "ok");
	cr_expect(json_is_false(json_object_get(r, "uses")));
	json_decref(r);
	contract_free(p);
	contract_free(c);
}

/* A cheap, deterministic stand-in for a fuzzer: mutated example contracts must be either
 * rejected with a message or accepted and usable (checked, serialised, re-validated). Under
 * ASan this also proves the validator reads nothing it should not. */
static unsigned long long rng_state = 0x9e3779b97f4a7c15ull;

static unsigned rnd(unsigned n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (unsigned)(rng_state % n);
}

Test(contract, mutated_contracts_fail_cleanly, .timeout = 120)
{
	static const char *const names[] = {"profile-v2", "web-v1", "profile-v1"};
	static const char alphabet[] = "{}[]:,-'\"#&*!|>%@ \n\t/~abz019.$";
	contract *prov = load_example("metadata-v2");
	int accepted = 0, rejected = 0;
	for (size_t f = 0; f < sizeof(names) / sizeof(names[0]); f++) {
		char path[1024];
		snprintf(path, sizeof(path), "%s/%s.yaml", EXAMPLES, names[f]);
		FILE *in = fopen(path, "rb");
		cr_assert(in);
		char orig[8192];
		size_t len = fread(orig, 1, sizeof(orig), in);
		fclose(in);
		for (int it = 0; it < 1500; it++) {
			char buf[8192 + 64];
			size_t n = len;
			memcpy(buf, orig, len);
			int muts = 1 + (int)rnd(4);
			for (int m = 0; m < muts && n > 1; m++) {
				size_t at = rnd((unsigned)n);
				switch (rnd(3)) {
				case 0:
					buf[at] = alphabet[rnd(sizeof(alphabet) - 1)];
					break;
				case 1:
					memmove(buf + at, buf + at + 1, n - at - 1);
					n--;
					break;
				default:
					if (n + 16 < sizeof(buf)) {
						size_t k = 1 + rnd(16);
						memmove(buf + at + k, buf + at, n - at);
						for (size_t q = 0; q < k; q++)
							buf[at + q] = alphabet[rnd(sizeof(alphabet) - 1)];
						n += k;
					}
				}
			}
			contract *c = NULL;
			struct err e = {{0}};
			if (contract_parse("mutant.yaml", buf, n, EXAMPLES, &c, &e)) {
				cr_assert(e.msg[0], "a rejection without a message");
				rejected++;
				continue;
			}
			accepted++;
			json_t *r = contract_check("metadata", prov, c);
			cr_assert(r);
			json_decref(r);
			json_t *j = contract_to_json(c);
			contract *c2 = NULL;
			cr_assert_eq(contract_from_json(j, "again", &c2, &e), 0, "accepted once, refused from JSON: %s", e.msg);
			contract_free(c2);
			json_decref(j);
			contract_free(c);
		}
	}
	cr_expect_gt(accepted, 50);
	cr_expect_gt(rejected, 1000);
	contract_free(prov);
}

/* Found by tests/fuzz/fuzz_contract: an API diffed against itself must be compatible. A path
 * "/{" never matched itself, and two paths equal but for parameter names matched each other's
 * operations; both are now refused when the document is validated. */
Test(contract, path_templates_that_could_not_match_themselves_are_refused)
{
	expect_error("provides:\n  openapi: 3.1$\n  paths:\n   /{:\n    get:\n     responses:\n      '200':\n       t: ",
		     NULL, "c.yaml:4:4: provides.paths./{: a path parameter is '{name}' within one segment");
	expect_error("provides: {openapi: 3.1.0, paths: {'/a}/b': {}}}\n", NULL, "a path parameter is '{name}'");
	expect_error("provides: {openapi: 3.1.0, paths: {'/a/{}': {}}}\n", NULL, "a path parameter is '{name}'");
	expect_error("provides: {openapi: 3.1.0, paths: {'/a/{x/y}': {}}}\n", NULL, "a path parameter is '{name}'");
	expect_error("provides:\n  openapi: 3.1.0\n  paths:\n    /a/{x}: {}\n    /b: {}\n    /a/{y}: {}\n", NULL,
		     "c.yaml:6:5: provides.paths./a/{y}: the same path as '/a/{x}' but for parameter names");

	const char *ok = "provides:\n  openapi: 3.1.0\n  paths:\n"
			 "    /a/{id}.json/{b}:\n      get:\n        responses:\n"
			 "          '200': {description: a, content: {application/json: {schema: {type: string}}}}\n"
			 "    /a/{id}:\n      get:\n        responses:\n"
			 "          '200': {description: a, content: {application/json: {schema: {type: integer}}}}\n";
	contract *c = NULL;
	struct err e = {{0}};
	cr_assert_eq(contract_parse("c.yaml", ok, strlen(ok), NULL, &c, &e), 0, "%s", e.msg);
	json_t *r = openapi_diff(contract_provides(c), contract_provides(c));
	cr_expect_eq(json_integer_value(json_object_get(r, "breaking")), 0, "%s",
		     json_string_value(json_object_get(json_array_get(json_object_get(r, "findings"), 0), "message")));
	json_decref(r);
	contract_free(c);
}
