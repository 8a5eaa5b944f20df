/*
 * The breaking-change rules of `contract diff`, table-driven: every rule in both directions
 * (a response may only narrow, a request may only widen). Each case builds two OpenAPI
 * documents around the schemas, validates them, diffs them, and checks the count of breaking
 * findings and, when it breaks, a phrase of the sentence and the JSON path.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "contract/openapi.h"
#include "contract/report.h"
#include "contract/schema.h"
#include "util/doc.h"

enum kind { RESP = 'R', REQ = 'Q', ITEM = 'I' };

struct dcase {
	const char *name;
	char kind;            /* R: response schema, Q: request body schema, I: whole path item */
	const char *old_s, *old_c; /* schema (or path item) and components.schemas, JSON */
	const char *new_s, *new_c;
	int breaks;           /* 1 when at least one breaking finding is expected */
	const char *phrase;   /* expected in a breaking message (or in a finding when breaks=0) */
	const char *path;     /* expected JSON path of that finding, or NULL */
};

#define OBJ_AB "{\"type\":\"object\",\"required\":[\"a\"],\"properties\":{\"a\":{\"type\":\"string\"},\"b\":{\"type\":\"integer\"}}}"
#define NODE_C "{\"Node\":{\"type\":\"object\",\"required\":[\"v\"],\"properties\":{\"v\":{\"type\":\"string\"},\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/Node\"}}}}}"
#define NODE_C2 "{\"Node\":{\"type\":\"object\",\"required\":[\"v\"],\"properties\":{\"v\":{\"type\":[\"string\",\"integer\"]},\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/Node\"}}}}}"
#define REF_NODE "{\"$ref\":\"#/components/schemas/Node\"}"

/* a GET whose 200 response declares the headers H (JSON members) */
#define HDR(h) "{\"get\":{\"responses\":{\"200\":{\"description\":\"ok\",\"headers\":{" h "}}}}}"
/* a GET whose 404 response has the JSON body S */
#define ERR(s) "{\"get\":{\"responses\":{\"200\":{\"description\":\"ok\"},\"404\":{\"description\":\"e\",\"content\":{\"application/json\":{\"schema\":" s "}}}}}}"

static const struct dcase cases[] = {
	/* ---- responses: may only narrow ---- */
	{"resp: identical", RESP, OBJ_AB, NULL, OBJ_AB, NULL, 0, NULL, NULL},
	{"resp: required property removed", RESP, OBJ_AB, NULL,
	 "{\"type\":\"object\",\"properties\":{\"b\":{\"type\":\"integer\"}}}", NULL, 1, "required property 'a' removed", "/a"},
	{"resp: property became optional", RESP, OBJ_AB, NULL,
	 "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"},\"b\":{\"type\":\"integer\"}}}", NULL, 1,
	 "no longer required", "/a"},
	{"resp: optional property added to an open object", RESP, OBJ_AB, NULL,
	 "{\"type\":\"object\",\"required\":[\"a\"],\"properties\":{\"a\":{\"type\":\"string\"},\"b\":{\"type\":\"integer\"},\"c\":{\"type\":\"string\"}}}",
	 NULL, 0, "property 'c' added", "/c"},
	{"resp: property added to a closed object", RESP,
	 "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"a\":{\"type\":\"string\"}}}", NULL,
	 "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"a\":{\"type\":\"string\"},\"c\":{\"type\":\"string\"}}}",
	 NULL, 1, "closed", "/c"},
	{"resp: closed object opened", RESP,
	 "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"a\":{\"type\":\"string\"}}}", NULL,
	 "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}", NULL, 1, "object opened", "/"},
	{"resp: open object closed", RESP, "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}", NULL,
	 "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"a\":{\"type\":\"string\"}}}", NULL, 0, NULL, NULL},
	{"resp: nullable added (3.0)", RESP, "{\"type\":\"string\"}", NULL, "{\"type\":\"string\",\"nullable\":true}", NULL, 1,
	 "may now be null", "/"},
	{"resp: null added to a type array (3.1)", RESP, "{\"type\":\"string\"}", NULL, "{\"type\":[\"string\",\"null\"]}", NULL,
	 1, "may now be null", "/"},
	{"resp: nullable $ref (3.0 allOf form)", RESP, "{\"allOf\":[{\"$ref\":\"#/components/schemas/T\"}]}", "{\"T\":{\"type\":\"object\"}}",
	 "{\"nullable\":true,\"allOf\":[{\"$ref\":\"#/components/schemas/T\"}]}", "{\"T\":{\"type\":\"object\"}}", 1,
	 "may now be null", "/"},
	{"resp: nullable removed", RESP, "{\"type\":\"string\",\"nullable\":true}", NULL, "{\"type\":\"string\"}", NULL, 0, NULL, NULL},
	{"resp: integer widened to number", RESP, "{\"type\":\"integer\"}", NULL, "{\"type\":\"number\"}", NULL, 1,
	 "type widened from integer to number", "/"},
	{"resp: number narrowed to integer", RESP, "{\"type\":\"number\"}", NULL, "{\"type\":\"integer\"}", NULL, 0, NULL, NULL},
	{"resp: string changed to integer", RESP, "{\"type\":\"string\"}", NULL, "{\"type\":\"integer\"}", NULL, 1,
	 "type widened from string to integer", "/"},
	{"resp: enum value added", RESP, "{\"type\":\"string\",\"enum\":[\"a\",\"b\"]}", NULL,
	 "{\"type\":\"string\",\"enum\":[\"a\",\"b\",\"c\"]}", NULL, 1, "enum value \"c\" added", "/"},
	{"resp: enum value removed", RESP, "{\"type\":\"string\",\"enum\":[\"a\",\"b\"]}", NULL,
	 "{\"type\":\"string\",\"enum\":[\"a\"]}", NULL, 0, "enum value \"b\" removed", "/"},
	{"resp: enum restriction removed", RESP, "{\"type\":\"string\",\"enum\":[\"a\"]}", NULL, "{\"type\":\"string\"}", NULL, 1,
	 "enum restriction removed", "/"},
	{"resp: const became an enum with more values", RESP, "{\"const\":\"a\"}", NULL, "{\"enum\":[\"a\",\"b\"]}", NULL, 1,
	 "enum value \"b\" added", "/"},
	{"resp: maxLength relaxed", RESP, "{\"type\":\"string\",\"maxLength\":10}", NULL, "{\"type\":\"string\",\"maxLength\":20}",
	 NULL, 1, "maxLength relaxed from 10 to 20", "/"},
	{"resp: maxLength tightened", RESP, "{\"type\":\"string\",\"maxLength\":20}", NULL, "{\"type\":\"string\",\"maxLength\":10}",
	 NULL, 0, NULL, NULL},
	{"resp: minimum relaxed", RESP, "{\"type\":\"integer\",\"minimum\":5}", NULL, "{\"type\":\"integer\",\"minimum\":0}", NULL, 1,
	 "minimum relaxed from 5 to 0", "/"},
	{"resp: maximum removed", RESP, "{\"type\":\"integer\",\"maximum\":10}", NULL, "{\"type\":\"integer\"}", NULL, 1,
	 "maximum 10 removed", "/"},
	{"resp: pattern changed", RESP, "{\"type\":\"string\",\"pattern\":\"^[a-z]+$\"}", NULL,
	 "{\"type\":\"string\",\"pattern\":\"^[a-z0-9]+$\"}", NULL, 1, "pattern changed", "/"},
	{"resp: nested required property removed", RESP,
	 "{\"type\":\"object\",\"required\":[\"a\"],\"properties\":{\"a\":{\"type\":\"object\",\"required\":[\"b\"],\"properties\":{\"b\":{\"type\":\"string\"}}}}}",
	 NULL, "{\"type\":\"object\",\"required\":[\"a\"],\"properties\":{\"a\":{\"type\":\"object\",\"properties\":{\"b\":{\"type\":\"string\"}}}}}",
	 NULL, 1, "no longer required", "/a/b"},
	{"resp: array item type widened", RESP,
	 "{\"type\":\"object\",\"required\":[\"l\"],\"properties\":{\"l\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}}}", NULL,
	 "{\"type\":\"object\",\"required\":[\"l\"],\"properties\":{\"l\":{\"type\":\"array\",\"items\":{\"type\":[\"integer\",\"string\"]}}}}",
	 NULL, 1, "type widened", "/l/*"},
	{"resp: maxItems relaxed", RESP, "{\"type\":\"array\",\"maxItems\":3}", NULL, "{\"type\":\"array\",\"maxItems\":5}", NULL, 1,
	 "maxItems relaxed", "/"},
	{"resp: uniqueItems removed", RESP, "{\"type\":\"array\",\"uniqueItems\":true}", NULL, "{\"type\":\"array\"}", NULL, 1,
	 "uniqueItems removed", "/"},
	{"resp: $ref target changed", RESP, "{\"$ref\":\"#/components/schemas/T\"}",
	 "{\"T\":{\"type\":\"object\",\"required\":[\"x\"],\"properties\":{\"x\":{\"type\":\"string\"}}}}",
	 "{\"$ref\":\"#/components/schemas/T\"}", "{\"T\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"string\"}}}}", 1,
	 "no longer required", "/x"},
	{"resp: $ref replaced by the same schema inline", RESP, "{\"$ref\":\"#/components/schemas/T\"}",
	 "{\"T\":{\"type\":\"string\",\"maxLength\":3}}", "{\"type\":\"string\",\"maxLength\":3}", NULL, 0, NULL, NULL},
	{"resp: recursive schema unchanged terminates", RESP, REF_NODE, NODE_C, REF_NODE, NODE_C, 0, NULL, NULL},
	{"resp: change inside a recursive schema", RESP, REF_NODE, NODE_C, REF_NODE, NODE_C2, 1, "type widened", "/v"},
	{"resp: allOf member's required property removed", RESP,
	 "{\"allOf\":[{\"type\":\"object\",\"required\":[\"a\"],\"properties\":{\"a\":{\"type\":\"string\"}}},{\"required\":[\"b\"],\"properties\":{\"b\":{\"type\":\"string\"}}}]}",
	 NULL, "{\"allOf\":[{\"type\":\"object\",\"required\":[\"a\"],\"properties\":{\"a\":{\"type\":\"string\"}}},{\"properties\":{\"b\":{\"type\":\"string\"}}}]}",
	 NULL, 1, "'b' is no longer required", "/b"},
	{"resp: allOf equals its flattened form", RESP,
	 "{\"allOf\":[{\"type\":\"object\",\"required\":[\"a\"],\"properties\":{\"a\":{\"type\":\"string\"}}},{\"properties\":{\"b\":{\"type\":\"integer\"}}}]}",
	 NULL, OBJ_AB, NULL, 0, NULL, NULL},
	{"resp: optional property removed is a warning", RESP, OBJ_AB, NULL,
	 "{\"type\":\"object\",\"required\":[\"a\"],\"properties\":{\"a\":{\"type\":\"string\"}}}", NULL, 0,
	 "optional property 'b' removed", "/b"},
	{"resp: oneOf alternative added", RESP, "{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", NULL,
	 "{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"integer\"},{\"type\":\"boolean\"}]}", NULL, 1, "alternative 3", "/"},
	{"resp: anyOf alternative removed", RESP, "{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", NULL,
	 "{\"anyOf\":[{\"type\":\"string\"}]}", NULL, 0, NULL, NULL},
	{"resp: additionalProperties schema widened", RESP, "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"}}", NULL,
	 "{\"type\":\"object\",\"additionalProperties\":{\"type\":[\"string\",\"integer\"]}}", NULL, 1, "type widened", "/*"},
	{"resp: writeOnly property no longer required", RESP,
	 "{\"type\":\"object\",\"required\":[\"p\"],\"properties\":{\"p\":{\"type\":\"string\",\"writeOnly\":true}}}", NULL,
	 "{\"type\":\"object\",\"properties\":{\"p\":{\"type\":\"string\",\"writeOnly\":true}}}", NULL, 0, NULL, NULL},
	{"resp: success status removed", ITEM,
	 "{\"get\":{\"responses\":{\"200\":{\"description\":\"ok\"}}}}", NULL,
	 "{\"get\":{\"responses\":{\"201\":{\"description\":\"ok\"}}}}", NULL, 1, "success status 200 removed", NULL},
	{"resp: status 200 answered by a 2XX range", ITEM,
	 "{\"get\":{\"responses\":{\"200\":{\"description\":\"ok\"}}}}", NULL,
	 "{\"get\":{\"responses\":{\"2XX\":{\"description\":\"ok\"}}}}", NULL, 0, NULL, NULL},
	{"resp: operation removed", ITEM, "{\"get\":{\"responses\":{\"200\":{\"description\":\"ok\"}}}}", NULL,
	 "{\"put\":{\"responses\":{\"200\":{\"description\":\"ok\"}}}}", NULL, 1, "operation removed", NULL},

	/* ---- requests: may only widen ---- */
	{"req: identical", REQ, OBJ_AB, NULL, OBJ_AB, NULL, 0, NULL, NULL},
	{"req: new required property", REQ, OBJ_AB, NULL,
	 "{\"type\":\"object\",\"required\":[\"a\",\"c\"],\"properties\":{\"a\":{\"type\":\"string\"},\"b\":{\"type\":\"integer\"},\"c\":{\"type\":\"string\"}}}",
	 NULL, 1, "new required property 'c'", "/c"},
	{"req: optional property became required", REQ, OBJ_AB, NULL,
	 "{\"type\":\"object\",\"required\":[\"a\",\"b\"],\"properties\":{\"a\":{\"type\":\"string\"},\"b\":{\"type\":\"integer\"}}}", NULL,
	 1, "'b' became required", "/b"},
	{"req: required property made optional", REQ, OBJ_AB, NULL,
	 "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"},\"b\":{\"type\":\"integer\"}}}", NULL, 0, NULL, NULL},
	{"req: enum value removed", REQ, "{\"type\":\"string\",\"enum\":[\"a\",\"b\"]}", NULL, "{\"type\":\"string\",\"enum\":[\"a\"]}",
	 NULL, 1, "enum value \"b\" removed", "/"},
	{"req: enum value added", REQ, "{\"type\":\"string\",\"enum\":[\"a\"]}", NULL, "{\"type\":\"string\",\"enum\":[\"a\",\"b\"]}",
	 NULL, 0, "enum value \"b\" added", "/"},
	{"req: enum restriction added", REQ, "{\"type\":\"string\"}", NULL, "{\"type\":\"string\",\"enum\":[\"a\"]}", NULL, 1,
	 "enum restriction added", "/"},
	{"req: number narrowed to integer", REQ, "{\"type\":\"number\"}", NULL, "{\"type\":\"integer\"}", NULL, 1,
	 "type narrowed from number to integer", "/"},
	{"req: integer widened to number", REQ, "{\"type\":\"integer\"}", NULL, "{\"type\":\"number\"}", NULL, 0, NULL, NULL},
	{"req: maxLength tightened", REQ, "{\"type\":\"string\",\"maxLength\":20}", NULL, "{\"type\":\"string\",\"maxLength\":10}", NULL,
	 1, "maxLength tightened from 20 to 10", "/"},
	{"req: maxLength relaxed", REQ, "{\"type\":\"string\",\"maxLength\":10}", NULL, "{\"type\":\"string\",\"maxLength\":20}", NULL,
	 0, NULL, NULL},
	{"req: minLength added", REQ, "{\"type\":\"string\"}", NULL, "{\"type\":\"string\",\"minLength\":3}", NULL, 1,
	 "minLength 3 added", "/"},
	{"req: open object closed", REQ, "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}", NULL,
	 "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"a\":{\"type\":\"string\"}}}", NULL, 1, "object closed", "/"},
	{"req: closed object opened", REQ,
	 "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"a\":{\"type\":\"string\"}}}", NULL,
	 "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}", NULL, 0, NULL, NULL},
	{"req: property dropped from a closed object", REQ,
	 "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"a\":{\"type\":\"string\"},\"b\":{\"type\":\"string\"}}}", NULL,
	 "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"a\":{\"type\":\"string\"}}}", NULL, 1,
	 "'b' is no longer accepted", "/b"},
	{"req: null no longer accepted", REQ, "{\"type\":[\"string\",\"null\"]}", NULL, "{\"type\":\"string\"}", NULL, 1,
	 "null is no longer accepted", "/"},
	{"req: nullable added (3.0)", REQ, "{\"type\":\"string\"}", NULL, "{\"type\":\"string\",\"nullable\":true}", NULL, 0, NULL, NULL},
	{"req: nested property type narrowed", REQ,
	 "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"object\",\"properties\":{\"b\":{\"type\":[\"string\",\"integer\"]}}}}}", NULL,
	 "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"object\",\"properties\":{\"b\":{\"type\":\"string\"}}}}}", NULL, 1,
	 "type narrowed", "/a/b"},
	{"req: array item enum value removed", REQ,
	 "{\"type\":\"object\",\"properties\":{\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"x\",\"y\"]}}}}", NULL,
	 "{\"type\":\"object\",\"properties\":{\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"x\"]}}}}", NULL, 1,
	 "enum value \"y\" removed", "/tags/*"},
	{"req: minItems added", REQ, "{\"type\":\"array\"}", NULL, "{\"type\":\"array\",\"minItems\":1}", NULL, 1, "minItems 1 added",
	 "/"},
	{"req: $ref target tightened", REQ, "{\"$ref\":\"#/components/schemas/T\"}", "{\"T\":{\"type\":\"integer\",\"maximum\":100}}",
	 "{\"$ref\":\"#/components/schemas/T\"}", "{\"T\":{\"type\":\"integer\",\"maximum\":50}}", 1, "maximum tightened from 100 to 50",
	 "/"},
	{"req: allOf member adds a required property", REQ, "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}", NULL,
	 "{\"allOf\":[{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}},{\"required\":[\"a\"]}]}", NULL, 1,
	 "'a' became required", "/a"},
	{"req: readOnly property became required", REQ,
	 "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\",\"readOnly\":true}}}", NULL,
	 "{\"type\":\"object\",\"required\":[\"id\"],\"properties\":{\"id\":{\"type\":\"string\",\"readOnly\":true}}}", NULL, 0, NULL, NULL},
	{"req: exclusiveMinimum (3.0 boolean) added", REQ, "{\"type\":\"number\",\"minimum\":0}", NULL,
	 "{\"type\":\"number\",\"minimum\":0,\"exclusiveMinimum\":true}", NULL, 1, "exclusiveMinimum 0 added", "/"},
	{"req: multipleOf added", REQ, "{\"type\":\"integer\"}", NULL, "{\"type\":\"integer\",\"multipleOf\":5}", NULL, 1,
	 "multipleOf 5 added", "/"},
	{"req: anyOf alternative removed", REQ, "{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", NULL,
	 "{\"anyOf\":[{\"type\":\"string\"}]}", NULL, 1, "alternative 2", "/"},
	{"req: request body became required", ITEM,
	 "{\"post\":{\"requestBody\":{\"content\":{\"application/json\":{\"schema\":{\"type\":\"object\"}}}},\"responses\":{\"200\":{\"description\":\"ok\"}}}}",
	 NULL,
	 "{\"post\":{\"requestBody\":{\"required\":true,\"content\":{\"application/json\":{\"schema\":{\"type\":\"object\"}}}},\"responses\":{\"200\":{\"description\":\"ok\"}}}}",
	 NULL, 1, "request body became required", NULL},
	{"req: new required query parameter", ITEM, "{\"get\":{\"responses\":{\"200\":{\"description\":\"ok\"}}}}", NULL,
	 "{\"get\":{\"parameters\":[{\"name\":\"q\",\"in\":\"query\",\"required\":true,\"schema\":{\"type\":\"string\"}}],\"responses\":{\"200\":{\"description\":\"ok\"}}}}",
	 NULL, 1, "new required parameter", "/query/q"},
	{"req: path parameter renamed", ITEM,
	 "{\"get\":{\"parameters\":[{\"name\":\"id\",\"in\":\"path\",\"required\":true,\"schema\":{\"type\":\"string\"}}],\"responses\":{\"200\":{\"description\":\"ok\"}}}}",
	 NULL,
	 "{\"get\":{\"parameters\":[{\"name\":\"itemId\",\"in\":\"path\",\"required\":true,\"schema\":{\"type\":\"string\"}}],\"responses\":{\"200\":{\"description\":\"ok\"}}}}",
	 NULL, 0, NULL, NULL},
	{"req: header parameter name changes case", ITEM,
	 "{\"get\":{\"parameters\":[{\"name\":\"X-Trace\",\"in\":\"header\",\"required\":true,\"schema\":{\"type\":\"string\"}}],\"responses\":{\"200\":{\"description\":\"ok\"}}}}",
	 NULL,
	 "{\"get\":{\"parameters\":[{\"name\":\"x-trace\",\"in\":\"header\",\"required\":true,\"schema\":{\"type\":\"string\"}}],\"responses\":{\"200\":{\"description\":\"ok\"}}}}",
	 NULL, 0, NULL, NULL},
	{"req: query parameter enum narrowed", ITEM,
	 "{\"get\":{\"parameters\":[{\"name\":\"o\",\"in\":\"query\",\"schema\":{\"enum\":[\"asc\",\"desc\"]}}],\"responses\":{\"200\":{\"description\":\"ok\"}}}}",
	 NULL,
	 "{\"get\":{\"parameters\":[{\"name\":\"o\",\"in\":\"query\",\"schema\":{\"enum\":[\"asc\"]}}],\"responses\":{\"200\":{\"description\":\"ok\"}}}}",
	 NULL, 1, "enum value \"desc\" removed", "/query/o"},

	/* ---- issue 17: readOnly/writeOnly count as absent in their direction, on either side ---- */
	{"resp: required property became writeOnly", RESP, OBJ_AB, NULL,
	 "{\"type\":\"object\",\"required\":[\"a\"],\"properties\":{\"a\":{\"type\":\"string\",\"writeOnly\":true},\"b\":{\"type\":\"integer\"}}}",
	 NULL, 1, "property 'a' is now writeOnly", "/a"},
	{"resp: required property became writeOnly through $ref", RESP,
	 "{\"type\":\"object\",\"required\":[\"a\"],\"properties\":{\"a\":{\"$ref\":\"#/components/schemas/S\"}}}", "{\"S\":{\"type\":\"string\"}}",
	 "{\"type\":\"object\",\"required\":[\"a\"],\"properties\":{\"a\":{\"$ref\":\"#/components/schemas/S\"}}}",
	 "{\"S\":{\"type\":\"string\",\"writeOnly\":true}}", 1, "property 'a' is now writeOnly", "/a"},
	{"resp: writeOnly property added to a closed object", RESP,
	 "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"a\":{\"type\":\"string\"}}}", NULL,
	 "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"a\":{\"type\":\"string\"},\"pw\":{\"type\":\"string\",\"writeOnly\":true}}}",
	 NULL, 0, NULL, NULL},
	{"resp: writeOnly property no longer writeOnly in a closed object", RESP,
	 "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"pw\":{\"type\":\"string\",\"writeOnly\":true}}}", NULL,
	 "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"pw\":{\"type\":\"string\"}}}", NULL, 1,
	 "new property 'pw' in an object the old schema closed", "/pw"},
	{"req: property became readOnly in a closed object", REQ,
	 "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"a\":{\"type\":\"string\"},\"b\":{\"type\":\"string\"}}}", NULL,
	 "{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{\"a\":{\"type\":\"string\"},\"b\":{\"type\":\"string\",\"readOnly\":true}}}",
	 NULL, 1, "property 'b' is readOnly in the new schema, whose object is closed", "/b"},
	{"req: property became readOnly in an open object", REQ, OBJ_AB, NULL,
	 "{\"type\":\"object\",\"required\":[\"a\"],\"properties\":{\"a\":{\"type\":\"string\"},\"b\":{\"type\":\"integer\",\"readOnly\":true}}}",
	 NULL, 0, "property 'b' is readOnly in the new request schema", "/b"},
	{"req: new required readOnly property", REQ, OBJ_AB, NULL,
	 "{\"type\":\"object\",\"required\":[\"a\",\"id\"],\"properties\":{\"a\":{\"type\":\"string\"},\"b\":{\"type\":\"integer\"},\"id\":{\"type\":\"string\",\"readOnly\":true}}}",
	 NULL, 0, NULL, NULL},
	{"req: readOnly property became writable and required", REQ,
	 "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\",\"readOnly\":true}}}", NULL,
	 "{\"type\":\"object\",\"required\":[\"id\"],\"properties\":{\"id\":{\"type\":\"string\"}}}", NULL, 1,
	 "'id' is required but readOnly on the sending side", "/id"},

	/* ---- response headers, compared like bodies ---- */
	{"resp: required response header removed", ITEM, HDR("\"ETag\":{\"required\":true,\"schema\":{\"type\":\"string\"}}"), NULL,
	 HDR(""), NULL, 1, "required response header 'ETag' removed", "ETag"},
	{"resp: optional response header removed", ITEM, HDR("\"ETag\":{\"schema\":{\"type\":\"string\"}}"), NULL, HDR(""), NULL, 0,
	 "optional response header 'ETag' removed", "ETag"},
	{"resp: response header became optional", ITEM, HDR("\"ETag\":{\"required\":true,\"schema\":{\"type\":\"string\"}}"), NULL,
	 HDR("\"etag\":{\"schema\":{\"type\":\"string\"}}"), NULL, 1, "'ETag' is no longer required", "ETag"},
	{"resp: response header became required", ITEM, HDR("\"ETag\":{\"schema\":{\"type\":\"string\"}}"), NULL,
	 HDR("\"ETag\":{\"required\":true,\"schema\":{\"type\":\"string\"}}"), NULL, 0, NULL, NULL},
	{"resp: response header type widened", ITEM, HDR("\"X-N\":{\"required\":true,\"schema\":{\"type\":\"integer\"}}"), NULL,
	 HDR("\"X-N\":{\"required\":true,\"schema\":{\"type\":[\"integer\",\"string\"]}}"), NULL, 1, "type widened", "X-N"},
	{"resp: response header type narrowed", ITEM, HDR("\"X-N\":{\"required\":true,\"schema\":{\"type\":\"number\"}}"), NULL,
	 HDR("\"X-N\":{\"required\":true,\"schema\":{\"type\":\"integer\"}}"), NULL, 0, NULL, NULL},
	{"resp: response header added", ITEM, HDR(""), NULL, HDR("\"X-N\":{\"required\":true,\"schema\":{\"type\":\"integer\"}}"), NULL,
	 0, "response header 'X-N' added", "X-N"},

	/* ---- error responses, compared like bodies ---- */
	{"resp: error body's required property removed", ITEM, ERR("{\"type\":\"object\",\"required\":[\"code\"],\"properties\":{\"code\":{\"type\":\"string\"}}}"),
	 NULL, ERR("{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\"}}}"), NULL, 1, "'code' is no longer required", "/code"},
	{"resp: error body gains a property", ITEM, ERR("{\"type\":\"object\",\"required\":[\"code\"],\"properties\":{\"code\":{\"type\":\"string\"}}}"),
	 NULL, ERR("{\"type\":\"object\",\"required\":[\"code\"],\"properties\":{\"code\":{\"type\":\"string\"},\"hint\":{\"type\":\"string\"}}}"), NULL,
	 0, "property 'hint' added", "/hint"},
	{"resp: error status no longer declared", ITEM, ERR("{\"type\":\"object\"}"), NULL,
	 "{\"get\":{\"responses\":{\"200\":{\"description\":\"ok\"}}}}", NULL, 0, "status 404 no longer declared", NULL},
	{"resp: error status answered by its range", ITEM, ERR("{\"type\":\"string\"}"), NULL,
	 "{\"get\":{\"responses\":{\"200\":{\"description\":\"ok\"},\"4XX\":{\"description\":\"e\",\"content\":{\"application/json\":{\"schema\":{\"type\":\"integer\"}}}}}}}",
	 NULL, 1, "type widened from string to integer", "/"},
	{"resp: new error status", ITEM, "{\"get\":{\"responses\":{\"200\":{\"description\":\"ok\"}}}}", NULL, ERR("{\"type\":\"object\"}"), NULL,
	 0, "new status 404 declared", NULL},
};

static json_t *load(const char *text)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
	cr_assert(v, "bad JSON in a test case: %s: %s", je.text, text);
	return v;
}

static json_t *make_api(char kind, const char *s, const char *comps)
{
	json_t *schema = load(s), *item;
	if (kind == ITEM)
		item = schema;
	else if (kind == RESP)
		item = json_pack("{s:{s:{s:{s:s, s:{s:{s:o}}}}}}", "get", "responses", "200", "description", "ok", "content",
				 "application/json", "schema", schema);
	else
		item = json_pack("{s:{s:{s:{s:{s:o}}}, s:{s:{s:s}}}}", "post", "requestBody", "content", "application/json",
				 "schema", schema, "responses", "200", "description", "ok");
	/* a path parameter lives in the template: "/x/{id}" or "/x/{itemId}" */
	const char *tmpl = strstr(s, "\"name\":\"itemId\"") ? "/x/{itemId}" : strstr(s, "\"in\":\"path\"") ? "/x/{id}" : "/x";
	json_t *api = json_pack("{s:s, s:{s:s, s:s}, s:{s:o}}", "openapi", "3.1.0", "info", "title", "t", "version", "1",
				"paths", tmpl, item);
	if (comps)
		json_object_set_new(api, "components", json_pack("{s:o}", "schemas", load(comps)));
	return api;
}

static const json_t *find(const json_t *findings, const char *phrase, const char *severity)
{
	size_t i;
	json_t *f;
	json_array_foreach(findings, i, f) {
		if (severity && strcmp(json_string_value(json_object_get(f, "severity")), severity))
			continue;
		if (strstr(json_string_value(json_object_get(f, "message")), phrase))
			return f;
	}
	return NULL;
}

Test(diff, table_of_rules)
{
	size_t n = sizeof(cases) / sizeof(cases[0]);
	cr_assert_geq(n, 40);
	for (size_t i = 0; i < n; i++) {
		const struct dcase *c = &cases[i];
		json_t *o = make_api(c->kind, c->old_s, c->old_c), *nw = make_api(c->kind, c->new_s, c->new_c);
		struct err e = {{0}};
		struct valid v = {NULL, "old", &e};
		cr_assert_eq(openapi_validate(&v, o, ""), 0, "%s: old document invalid: %s", c->name, e.msg);
		v.name = "new";
		cr_assert_eq(openapi_validate(&v, nw, ""), 0, "%s: new document invalid: %s", c->name, e.msg);
		json_t *r = openapi_diff(o, nw);
		json_t *findings = json_object_get(r, "findings");
		char *dumped = json_dumps(findings, JSON_COMPACT);
		json_int_t nb = json_integer_value(json_object_get(r, "breaking"));
		cr_expect_eq(nb > 0, c->breaks, "%s: expected %s, got %lld breaking: %s", c->name,
			     c->breaks ? "breaking" : "nothing breaking", (long long)nb, dumped);
		cr_expect_str_eq(json_string_value(json_object_get(r, "verdict")), c->breaks ? "breaking" : "compatible",
				 "%s", c->name);
		if (c->phrase) {
			const json_t *f = find(findings, c->phrase, c->breaks ? REPORT_BREAKING : NULL);
			cr_expect(f, "%s: no finding says '%s': %s", c->name, c->phrase, dumped);
			if (f && c->path)
				cr_expect_str_eq(json_string_value(json_object_get(f, "path")), c->path, "%s: path", c->name);
			if (f)
				cr_expect_str_eq(json_string_value(json_object_get(f, "operation")),
						 c->kind == REQ || strstr(c->old_s, "\"post\"") ? "POST /x" : "GET /x",
						 "%s: operation", c->name);
		}
		free(dumped);
		json_decref(r);
		json_decref(o);
		json_decref(nw);
	}
}

/* The reverse of every case: swapping old and new turns most breaking changes into safe ones
 * and the other way round, so the rules are not accidentally symmetric. */
Test(diff, directions_are_not_symmetric)
{
	json_t *a = make_api(RESP, OBJ_AB, NULL);
	json_t *b = make_api(RESP, "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}", NULL);
	json_t *r1 = openapi_diff(a, b), *r2 = openapi_diff(b, a);
	cr_expect_gt(json_integer_value(json_object_get(r1, "breaking")), 0);
	cr_expect_eq(json_integer_value(json_object_get(r2, "breaking")), 0);
	json_decref(r1);
	json_decref(r2);
	json_decref(a);
	json_decref(b);
	a = make_api(REQ, OBJ_AB, NULL);
	b = make_api(REQ, "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}", NULL);
	r1 = openapi_diff(a, b);
	r2 = openapi_diff(b, a);
	cr_expect_eq(json_integer_value(json_object_get(r1, "breaking")), 0); /* a was required, no longer */
	cr_expect_gt(json_integer_value(json_object_get(r2, "breaking")), 0); /* a became required */
	json_decref(r1);
	json_decref(r2);
	json_decref(a);
	json_decref(b);
}

Test(diff, reference_loop_is_reported_not_followed)
{
	const char *loop = "{\"A\":{\"$ref\":\"#/components/schemas/B\"},\"B\":{\"$ref\":\"#/components/schemas/A\"}}";
	json_t *a = make_api(RESP, "{\"$ref\":\"#/components/schemas/A\"}", loop);
	json_t *r = openapi_diff(a, a);
	cr_assert(r);
	cr_expect(find(json_object_get(r, "findings"), "reference loop", REPORT_WARNING));
	json_decref(r);
	json_decref(a);
}

Test(schema, guarantees_follow_required_and_types)
{
	json_t *s = load("{\"type\":\"object\",\"required\":[\"a\"],\"properties\":{\"a\":{\"type\":\"array\",\"items\":"
			 "{\"type\":\"object\",\"required\":[\"k\"],\"properties\":{\"k\":{\"type\":\"integer\"},\"o\":{\"type\":\"string\"}}}}}}");
	char why[400];
	const char *p1[] = {"a", "*", "k"};
	cr_expect(schema_guarantees(NULL, s, p1, 3, SCHEMA_T_NUMBER | SCHEMA_T_INTEGER, 0, why, sizeof(why)), "%s", why);
	cr_expect(!schema_guarantees(NULL, s, p1, 3, SCHEMA_T_STRING, 0, why, sizeof(why)));
	cr_expect(strstr(why, "/a/*/k is integer"), "%s", why);
	const char *p2[] = {"a", "*", "o"};
	cr_expect(!schema_guarantees(NULL, s, p2, 3, SCHEMA_T_STRING, 0, why, sizeof(why)));
	cr_expect(strstr(why, "optional"), "%s", why);
	cr_expect(schema_guarantees(NULL, s, p2, 3, SCHEMA_T_STRING, 1, why, sizeof(why)), "%s", why);
	const char *p3[] = {"b"};
	cr_expect(!schema_guarantees(NULL, s, p3, 1, SCHEMA_T_ANY, 0, why, sizeof(why)));
	cr_expect(strstr(why, "/b is not in the provider's schema"), "%s", why);
	json_decref(s);
}

/* anyOf of anyOf of ... compared pairwise is exponential: the budget turns it into a warning */
Test(diff, hostile_breadth_is_bounded, .timeout = 20)
{
	json_t *comps = json_object();
	for (int i = 0; i < 12; i++) {
		char name[8], next[40];
		snprintf(name, sizeof(name), "S%d", i);
		snprintf(next, sizeof(next), "#/components/schemas/S%d", i + 1);
		json_t *alts = json_array();
		for (int k = 0; k < 8; k++)
			json_array_append_new(alts, json_pack("{s:s}", "$ref", next));
		json_object_set_new(comps, name, json_pack("{s:o}", "anyOf", alts));
	}
	json_object_set_new(comps, "S12", json_pack("{s:s}", "type", "string"));
	char *c = json_dumps(comps, JSON_COMPACT);
	json_t *a = make_api(RESP, "{\"$ref\":\"#/components/schemas/S0\"}", c);
	json_t *b = make_api(RESP, "{\"type\":\"integer\"}", NULL);
	/* new (integer) <= old (a tower of strings): 8^12 paths to explore, it is not compatible, and
	 * running out of budget must not pass for compatible */
	json_t *r = openapi_diff(a, b);
	cr_assert(r);
	cr_expect(find(json_object_get(r, "findings"), "too complex to compare", REPORT_BREAKING));
	json_decref(r);
	r = openapi_diff(b, a);
	cr_assert(r);
	cr_expect_gt(json_integer_value(json_object_get(r, "breaking")), 0);
	json_decref(r);
	json_decref(a);
	json_decref(b);
	json_decref(comps);
	free(c);
}

/* Mutated OpenAPI documents: either rejected by validation, or diffed both ways without
 * crashing (under ASan: without reading out of bounds or leaking). */

static unsigned long long mut_state = 0x2545f4914f6cdd1dull;

static unsigned mut_rnd(unsigned n)
{
	mut_state ^= mut_state << 13;
	mut_state ^= mut_state >> 7;
	mut_state ^= mut_state << 17;
	return (unsigned)(mut_state % n);
}

Test(diff, mutated_documents_diff_cleanly, .timeout = 120)
{
	static const char alphabet[] = "{}[]:,-'\"#&* \n/~az01$";
	char path[1024];
	snprintf(path, sizeof(path), "%s/openapi/metadata-v2.yaml", EXAMPLES);
	doc *od;
	struct err e;
	cr_assert_eq(doc_load(path, &od, &e), 0, "%s", e.msg);
	FILE *in = fopen(path, "rb");
	cr_assert(in);
	char orig[8192];
	size_t len = fread(orig, 1, sizeof(orig), in);
	fclose(in);
	int valid = 0;
	for (int it = 0; it < 3000; it++) {
		char buf[8192];
		memcpy(buf, orig, len);
		size_t n = len;
		for (int m = 1 + (int)mut_rnd(3); m > 0; m--) {
			size_t at = mut_rnd((unsigned)n);
			if (mut_rnd(2))
				buf[at] = alphabet[mut_rnd(sizeof(alphabet) - 1)];
			else {
				memmove(buf + at, buf + at + 1, n - at - 1);
				n--;
			}
		}
		doc *d;
		if (doc_parse("m.yaml", buf, n, &d, &e))
			continue;
		struct valid v = {d, "m.yaml", &e};
		if (doc_count(d) == 1 && !openapi_validate(&v, doc_root(d, 0), "")) {
			valid++;
			json_t *r1 = openapi_diff(doc_root(od, 0), doc_root(d, 0));
			json_t *r2 = openapi_diff(doc_root(d, 0), doc_root(od, 0));
			cr_assert(r1 && r2);
			json_decref(r1);
			json_decref(r2);
		}
		doc_free(d);
	}
	cr_expect_gt(valid, 100);
	doc_free(od);
}
