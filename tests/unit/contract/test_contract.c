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

/* ---- issue 17: parameters, response headers, error responses, readOnly/writeOnly ---------
 * Every rule in both directions: a case that holds and a case that is refused. */

#define PROVIDER2                                                                                       \
	"service: p\nversion: v2\nprovides:\n"                                                              \
	"  openapi: 3.1.0\n"                                                                                \
	"  paths:\n"                                                                                        \
	"    /items/{itemId}:\n"                                                                            \
	"      parameters:\n"                                                                               \
	"        - {name: itemId, in: path, required: true, schema: {type: integer}}\n"                     \
	"      get:\n"                                                                                      \
	"        parameters:\n"                                                                             \
	"          - {name: q, in: query, required: true, schema: {type: string}}\n"                        \
	"          - {name: tag, in: query, schema: {type: string, maxLength: 10}}\n"                      \
	"          - {name: limit, in: query, schema: {type: integer, maximum: 100}}\n"                     \
	"          - {name: X-Tenant, in: header, required: true, schema: {type: string}}\n"                \
	"          - {name: Authorization, in: header, required: true, schema: {type: string}}\n"           \
	"        responses:\n"                                                                              \
	"          '200':\n"                                                                                \
	"            description: ok\n"                                                                     \
	"            headers:\n"                                                                            \
	"              ETag: {required: true, schema: {type: string}}\n"                                    \
	"              X-Rate: {schema: {type: integer}}\n"                                                 \
	"              X-Count: {$ref: '#/components/headers/Count'}\n"                                     \
	"            content:\n"                                                                            \
	"              application/json:\n"                                                                 \
	"                schema:\n"                                                                         \
	"                  type: object\n"                                                                  \
	"                  required: [id, secret, created, token]\n"                                        \
	"                  properties:\n"                                                                   \
	"                    id: {type: string}\n"                                                          \
	"                    secret: {type: string, writeOnly: true}\n"                                     \
	"                    created: {type: string, readOnly: true}\n"                                     \
	"                    token: {$ref: '#/components/schemas/Token'}\n"                                 \
	"          '404':\n"                                                                                \
	"            description: none\n"                                                                   \
	"            content:\n"                                                                            \
	"              application/json:\n"                                                                 \
	"                schema: {type: object, required: [code], properties: {code: {type: string}, detail: {type: string}}}\n" \
	"          '5XX':\n"                                                                                \
	"            description: down\n"                                                                   \
	"            headers:\n"                                                                            \
	"              Retry-After: {required: true, schema: {type: integer}}\n"                            \
	"            content:\n"                                                                            \
	"              application/json:\n"                                                                 \
	"                schema: {type: object, required: [retry], properties: {retry: {type: integer}}}\n" \
	"      post:\n"                                                                                     \
	"        requestBody:\n"                                                                            \
	"          content:\n"                                                                              \
	"            application/json:\n"                                                                   \
	"              schema:\n"                                                                           \
	"                type: object\n"                                                                    \
	"                additionalProperties: false\n"                                                     \
	"                required: [name, id]\n"                                                            \
	"                properties:\n"                                                                     \
	"                  name: {type: string}\n"                                                          \
	"                  id: {type: string, readOnly: true}\n"                                            \
	"        responses:\n"                                                                              \
	"          '201': {description: created}\n"                                                         \
	"      put:\n"                                                                                      \
	"        requestBody:\n"                                                                            \
	"          content:\n"                                                                              \
	"            application/json:\n"                                                                   \
	"              schema: {type: object, properties: {name: {type: string}, id: {type: string, readOnly: true}}}\n" \
	"        responses:\n"                                                                              \
	"          '204': {description: done}\n"                                                            \
	"  components:\n"                                                                                   \
	"    headers:\n"                                                                                    \
	"      Count: {required: true, schema: {type: integer}}\n"                                          \
	"    schemas:\n"                                                                                    \
	"      Token: {type: string, writeOnly: true}\n"

/* the parameters a well-behaved consumer of GET /items/{id} sends */
#define SENDS "parameters: [{name: q, in: query, type: string}, {name: x-tenant, in: header, type: string}]"
#define GET "{method: GET, path: '/items/{id}', "

static const struct rcase cases2[] = {
	/* parameters: a required one listed / not listed */
	{"- " GET SENDS "}", "ok", NULL},
	{"- " GET "parameters: [{name: x-tenant, in: header, type: string}]}", "refused",
	 "the provider requires query parameter 'q', and the consumer's parameters do not list it"},
	/* a consumer that lists none: fail closed, with how to declare them */
	{"- " GET "reads: [{path: /id, type: string}]}", "refused",
	 "declares no parameters for this operation, so the gate cannot tell whether it sends it: list what it sends in its "
	 "contract, e.g. parameters: [{name: q, in: query, type: string}]"},
	/* what it sends must be accepted by the provider's schema */
	{"- " GET "parameters: [{name: q, in: query, type: string}, {name: tag, in: query, schema: {type: string, maxLength: 5}}, {name: X-Tenant, in: header, type: string}]}",
	 "ok", NULL},
	{"- " GET "parameters: [{name: q, in: query, type: string}, {name: tag, in: query, schema: {type: string}}, {name: X-Tenant, in: header, type: string}]}",
	 "refused", "maxLength 10 added"},
	{"- " GET "parameters: [{name: q, in: query, type: string}, {name: X-Tenant, in: header, type: string}, {name: limit, in: query, type: integer}]}",
	 "refused", "maximum 100 added"},
	{"- " GET "parameters: [{name: q, in: query, type: string}, {name: X-Tenant, in: header, type: string}, {name: limit, in: query, schema: {type: integer, maximum: 50}}]}",
	 "ok", NULL},
	{"- " GET "parameters: [{name: q, in: query, type: integer}, {name: X-Tenant, in: header, type: string}]}", "refused",
	 "type narrowed from integer to string"},
	{"- " GET "parameters: [{name: q, in: query, type: string}, {name: tag, in: query, schema: {enum: [ab, abcdefghij]}}, {name: X-Tenant, in: header, type: string}]}",
	 "ok", NULL},
	{"- " GET "parameters: [{name: q, in: query, type: string}, {name: tag, in: query, schema: {enum: [ab, abcdefghijk]}}, {name: X-Tenant, in: header, type: string}]}",
	 "refused", "maxLength 10 added"},
	/* a path parameter is matched by position, whatever its name */
	{"- " GET "parameters: [{name: id, in: path, type: integer}, {name: q, in: query, type: string}, {name: X-Tenant, in: header, type: string}]}",
	 "ok", NULL},
	{"- " GET "parameters: [{name: id, in: path, type: string}, {name: q, in: query, type: string}, {name: X-Tenant, in: header, type: string}]}",
	 "refused", "type narrowed from string to integer"},
	/* a parameter the provider does not declare is a warning, not a refusal */
	{"- " GET "parameters: [{name: q, in: query, type: string}, {name: X-Tenant, in: header, type: string}, {name: debug, in: cookie, type: boolean}]}",
	 "ok", "sends cookie parameter 'debug', which the provider does not declare"},

	/* response headers read from the 2xx response */
	{"- " GET SENDS ", response_headers: [{name: etag, type: string}, {name: X-Count, type: integer}]}", "ok", NULL},
	{"- " GET SENDS ", response_headers: [{name: ETag, type: integer}]}", "refused",
	 "reads response header 'ETag', not guaranteed: status 200: the value is string in the provider's schema"},
	{"- " GET SENDS ", response_headers: [{name: X-Rate, type: integer}]}", "refused",
	 "it is optional in the provider's status 200 response"},
	{"- " GET SENDS ", response_headers: [{name: X-Rate, type: integer, optional: true}]}", "ok", NULL},
	{"- " GET SENDS ", response_headers: [{name: X-Rate, type: string, optional: true}]}", "refused",
	 "the value is integer in the provider's schema, the consumer expects string"},
	{"- " GET SENDS ", response_headers: [{name: X-Gone, type: string}]}", "refused", "status 200 does not declare it"},
	{"- " GET SENDS ", response_headers: [{name: X-Gone, type: string, optional: true}]}", "ok", NULL},

	/* error responses handled, read like 2xx ones */
	{"- " GET SENDS ", errors: [{status: 404, reads: [{path: /code, type: string}]}]}", "ok", NULL},
	{"- " GET SENDS ", errors: [{status: 404, reads: [{path: /detail, type: string}]}]}", "refused",
	 "/detail is optional in the provider's schema (not in required) (status 404)"},
	{"- " GET SENDS ", errors: [{status: 404, reads: [{path: /detail, type: string, optional: true}]}]}", "ok", NULL},
	{"- " GET SENDS ", errors: [{status: 503, reads: [{path: /retry, type: integer}], response_headers: [{name: Retry-After, type: integer}]}]}",
	 "ok", NULL},
	{"- " GET SENDS ", errors: [{status: 503, response_headers: [{name: Retry-After, type: string}]}]}", "refused",
	 "reads response header 'Retry-After', not guaranteed: status 5XX: the value is integer"},
	{"- " GET SENDS ", errors: [{status: 5XX, reads: [{path: /retry, type: integer}]}]}", "ok", NULL},
	{"- " GET SENDS ", errors: [{status: '409', reads: [{path: /code, type: string}]}]}", "refused",
	 "the provider declares no 409 response for this operation"},
	{"- " GET SENDS ", errors: [{status: 409}]}", "ok", "handles status 409, which the provider does not declare"},
	{"- " GET SENDS ", errors: [{status: 4XX, reads: [{path: /code, type: string}]}]}", "ok", NULL},
	{"- " GET SENDS ", errors: [{status: 4xx, reads: [{path: /retry, type: integer}]}]}", "refused",
	 "/retry is not in the provider's schema (status 404)"},

	/* writeOnly counts as absent in responses, readOnly as absent in requests */
	{"- " GET SENDS ", reads: [{path: /created, type: string}]}", "ok", NULL},
	{"- " GET SENDS ", reads: [{path: /secret, type: string}]}", "refused",
	 "/secret is writeOnly in the provider's schema: responses never carry it"},
	{"- " GET SENDS ", reads: [{path: /token, type: string}]}", "refused", "/token is writeOnly"}, /* through $ref */
	{"- " GET SENDS ", reads: [{path: /secret, type: string, optional: true}]}", "ok", NULL},
	{"- {method: POST, path: '/items/{id}', sends: {type: object, additionalProperties: false, required: [name], properties: {name: {type: string}}}}",
	 "ok", NULL},
	{"- {method: POST, path: '/items/{id}', sends: {type: object, required: [name, id], properties: {name: {type: string}, id: {type: string}}}}",
	 "refused", "property 'id' is readOnly in the new schema, whose object is closed"},
	{"- {method: PUT, path: '/items/{id}', sends: {type: object, required: [name, id], properties: {name: {type: string}, id: {type: string}}}}",
	 "ok", "property 'id' is readOnly in the new request schema: still accepted because the object is open"},
};

static void run_cases(const contract *p, const struct rcase *cs, size_t n, const contract *since)
{
	for (size_t i = 0; i < n; i++) {
		char text[4096];
		snprintf(text, sizeof(text), "service: c\nconsumes:\n  p:\n    %s\n", cs[i].consumes);
		contract *c = parse(text);
		json_t *r = contract_check_since("p", p, c, since);
		char *d = json_dumps(r, JSON_COMPACT);
		cr_expect_str_eq(json_string_value(json_object_get(r, "verdict")), cs[i].verdict, "case %zu: %s", i, d);
		if (cs[i].phrase)
			cr_expect(strstr(d, cs[i].phrase), "case %zu: no '%s' in %s", i, cs[i].phrase, d);
		free(d);
		json_decref(r);
		contract_free(c);
	}
}

Test(check, parameters_headers_errors_and_read_write_only)
{
	contract *p = parse(PROVIDER2);
	run_cases(p, cases2, sizeof(cases2) / sizeof(cases2[0]), NULL);
	contract_free(p);
}

/* A consumer that declares no parameters: a required one the provider release it works with
 * requires too is not new (it evidently sends it); a new one fails closed. */
Test(check, undeclared_parameters_against_a_baseline)
{
	static const char *const v1 =
		"service: p\nversion: v1\nprovides:\n  openapi: 3.1.0\n  paths:\n    /s:\n      get:\n"
		"        parameters: [{name: q, in: query, required: true, schema: {type: string}}]\n"
		"        responses: {'200': {description: ok}}\n";
	static const char *const v2 =
		"service: p\nversion: v2\nprovides:\n  openapi: 3.1.0\n  paths:\n    /s:\n      get:\n"
		"        parameters: [{name: q, in: query, required: true, schema: {type: string}},\n"
		"                     {name: page, in: query, required: true, schema: {type: integer}}]\n"
		"        responses: {'200': {description: ok}}\n";
	contract *p1 = parse(v1), *p2 = parse(v2);
	static const struct rcase old_q[] = {{"- {method: GET, path: /s}", "ok", "assumed sent"}};
	static const struct rcase new_page[] = {{"- {method: GET, path: /s}", "refused",
						 "the provider requires query parameter 'page' (new since p@v1), and the consumer declares no parameters"}};
	static const struct rcase no_base[] = {{"- {method: GET, path: /s}", "refused", "parameter 'q', and the consumer declares no parameters"}};
	static const struct rcase listed[] = {{"- {method: GET, path: /s, parameters: [{name: page, in: query, type: integer}]}", "refused",
					       "'q', and the consumer's parameters do not list it"}};
	static const struct rcase listed_all[] = {
		{"- {method: GET, path: /s, parameters: [{name: page, in: query, type: integer}, {name: q, in: query, type: string}]}", "ok", NULL}};
	run_cases(p1, old_q, 1, p1);       /* what it works with: nothing is new */
	run_cases(p2, new_page, 1, p1);    /* page is new since v1 */
	run_cases(p1, no_base, 1, NULL);   /* nothing known: every required one is unknown */
	run_cases(p2, listed, 1, p1);      /* a list is held to, whatever the baseline */
	run_cases(p2, listed_all, 1, NULL);
	contract_free(p1);
	contract_free(p2);
}

static const struct vcase vcases2[] = {
	{"consumes:\n  p:\n    - method: GET\n      path: /x\n      parameters: [{name: q, in: body, type: string}]\n",
	 "c.yaml:5:34: consumes.p[0].parameters[0]: 'in' must be path, query, header or cookie"},
	{"consumes:\n  p:\n    - method: GET\n      path: /x\n      parameters: [{name: q, in: query}]\n",
	 "c.yaml:5:20: consumes.p[0].parameters[0]: a parameter needs the 'type' of the value sent (or a 'schema')"},
	{"consumes:\n  p:\n    - method: GET\n      path: /x\n      parameters: [{name: q, in: query, type: string, schema: {}}]\n",
	 "c.yaml:5:55: consumes.p[0].parameters[0]: give the value's 'type' or a 'schema', not both"},
	{"consumes:\n  p:\n    - method: GET\n      path: /x/{id}\n      parameters: [{name: ident, in: path, type: string}]\n",
	 "c.yaml:5:27: consumes.p[0].parameters[0]: the path template '/x/{id}' has no '{ident}'"},
	{"consumes:\n  p:\n    - method: GET\n      path: /x\n      parameters: [{name: 'X Bad', in: header, type: string}]\n",
	 "c.yaml:5:27: consumes.p[0].parameters[0]: 'name' must be a header name"},
	{"consumes:\n  p:\n    - method: GET\n      path: /x\n      parameters:\n        - {name: X-A, in: header, type: string}\n"
	 "        - {name: x-a, in: header, type: string}\n",
	 "c.yaml:7:18: consumes.p[0].parameters[1]: header parameter 'x-a' is listed twice"},
	{"consumes:\n  p:\n    - method: GET\n      path: /x\n      parameters: [{name: q, in: query, schema: {type: strin}}]\n",
	 "c.yaml:5:56: consumes.p[0].parameters[0].schema: unknown type 'strin'"},
	{"consumes:\n  p:\n    - method: GET\n      path: /x\n      parameters: [{nam: q, in: query, type: string}]\n",
	 "c.yaml:5:21: consumes.p[0].parameters[0]: unknown key 'nam' (did you mean 'name'?"},
	{"consumes:\n  p:\n    - method: GET\n      path: /x\n      response_headers: [{name: ETag, type: text}]\n",
	 "c.yaml:5:45: consumes.p[0].response_headers[0]: 'type' must be a type name"},
	{"consumes:\n  p:\n    - method: GET\n      path: /x\n      response_headers: [{type: string}]\n",
	 "c.yaml:5:26: consumes.p[0].response_headers[0]: a header read needs a 'name'"},
	{"consumes:\n  p:\n    - method: GET\n      path: /x\n      errors: [{status: 200}]\n",
	 "c.yaml:5:25: consumes.p[0].errors[0]: 'status' must be an error status: 400 to 599, 4XX or 5XX"},
	{"consumes:\n  p:\n    - method: GET\n      path: /x\n      errors: [{status: 404}, {status: '404'}]\n",
	 "c.yaml:5:40: consumes.p[0].errors[1]: status 404 is listed twice"},
	{"consumes:\n  p:\n    - method: GET\n      path: /x\n      errors: [{status: 404, reads: [{path: code}]}]\n",
	 "c.yaml:5:45: consumes.p[0].errors[0].reads[0]: a read path starts with '/'"},
	{"consumes:\n  p:\n    - method: GET\n      path: /x\n      headers: []\n",
	 "c.yaml:5:7: consumes.p[0]: unknown key 'headers'"},
	{"provides:\n  openapi: 3.1.0\n  paths:\n    /x:\n      get:\n        responses:\n          '200':\n"
	 "            description: ok\n            headers: {ETag: {schema: {type: txt}}}\n",
	 "c.yaml:9:45: provides.paths./x.get.responses.200.headers.ETag.schema: unknown type 'txt'"},
};

Test(contract, new_declarations_are_validated_with_positions)
{
	for (size_t i = 0; i < sizeof(vcases2) / sizeof(vcases2[0]); i++)
		expect_error(vcases2[i].text, NULL, vcases2[i].want);
}

/* The examples: metadata v4 adds a required query parameter; the consumers that list none are
 * refused with how to declare it, profile v3 (which lists it) is not. */
Test(check, metadata_v4_and_profile_v3)
{
	static const struct ccase cases[] = {
		{"metadata-v4", "profile-v2", "refused", 0, "e.g. parameters: [{name: lang, in: query, schema: {"},
		{"metadata-v4", "profile-v1", "refused", 0, "the consumer declares no parameters"},
		{"metadata-v4", "profile-v3", "ok", 0, NULL},
		{"metadata-v3", "profile-v3", "ok", 0, "sends query parameter 'lang', which the provider does not declare"},
		{"metadata-v2", "profile-v3", "ok", 0, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		contract *p = load_example(cases[i].provider), *c = load_example(cases[i].consumer);
		json_t *r = contract_check(contract_service(p), p, c);
		char *d = json_dumps(r, JSON_COMPACT);
		cr_expect_str_eq(json_string_value(json_object_get(r, "verdict")), cases[i].verdict, "%s <- %s: %s",
				 cases[i].provider, cases[i].consumer, d);
		if (cases[i].phrase)
			cr_expect(strstr(d, cases[i].phrase), "%s <- %s: no '%s' in %s", cases[i].provider, cases[i].consumer,
				  cases[i].phrase, d);
		free(d);
		json_decref(r);
		contract_free(p);
		contract_free(c);
	}
}
