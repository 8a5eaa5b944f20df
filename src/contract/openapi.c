#include "contract/openapi.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "contract/report.h"
#include "contract/schema.h"

#define FIELD_MAX 512
#define MAX_DEREF 16

static const char *const methods[] = {"get", "put", "post", "delete", "options", "head", "patch", "trace"};

static int is_method(const char *k)
{
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (!strcmp(k, methods[i]))
			return 1;
	return 0;
}

static void upper(char *dst, const char *src, size_t size)
{
	size_t i = 0;
	for (; src[i] && i + 1 < size; i++)
		dst[i] = (char)toupper((unsigned char)src[i]);
	dst[i] = 0;
}

/* ---- validation ------------------------------------------------------------------------- */

static int validate_schema(const struct valid *v, const json_t *api, const json_t *s, const char *field,
			   int depth);

static int validate_schema_list(const struct valid *v, const json_t *api, const json_t *s, const char *key,
				const char *field, int depth)
{
	json_t *arr = json_object_get(s, key);
	char f[FIELD_MAX];
	if (!arr)
		return 0;
	if (!json_is_array(arr) || !json_array_size(arr))
		return valid_value(v, s, key, field, "'%s' must be a non-empty list of schemas", key);
	size_t i;
	json_t *m;
	json_array_foreach(arr, i, m) {
		snprintf(f, sizeof(f), "%s.%s[%zu]", field, key, i);
		if (validate_schema(v, api, m, f, depth + 1))
			return -1;
	}
	return 0;
}

static int validate_type(const struct valid *v, const json_t *s, const char *field)
{
	json_t *t = json_object_get(s, "type");
	if (!t)
		return 0;
	if (json_is_string(t)) {
		if (!schema_type_bit(json_string_value(t)))
			return valid_value(v, s, "type", field,
					   "unknown type '%s' (null, boolean, integer, number, string, array, object)",
					   json_string_value(t));
		return 0;
	}
	if (!json_is_array(t) || !json_array_size(t))
		return valid_value(v, s, "type", field, "'type' must be a type name or a list of them");
	size_t i;
	json_t *x;
	json_array_foreach(t, i, x)
		if (!json_is_string(x) || !schema_type_bit(json_string_value(x)))
			return valid_index(v, t, i, field, "unknown type in 'type' (null, boolean, integer, number, string, array, object)");
	return 0;
}

static int validate_schema(const struct valid *v, const json_t *api, const json_t *s, const char *field, int depth)
{
	char f[FIELD_MAX];
	if (json_is_boolean(s))
		return 0;
	if (!json_is_object(s))
		return valid_node(v, s, field, "a schema must be an object or a boolean");
	if (depth > OPENAPI_MAX_SCHEMA_DEPTH)
		return valid_node(v, s, field, "schemas nested deeper than %d levels", OPENAPI_MAX_SCHEMA_DEPTH);
	json_t *ref = json_object_get(s, "$ref");
	if (ref) {
		if (!json_is_string(ref))
			return valid_value(v, s, "$ref", field, "'$ref' must be a string");
		if (!schema_resolve_ref(api, json_string_value(ref)))
			return valid_value(v, s, "$ref", field,
					   "reference '%s' does not resolve in this document (only local '#/...' references are supported)",
					   json_string_value(ref));
	}
	if (validate_type(v, s, field))
		return -1;
	json_t *props = json_object_get(s, "properties");
	if (props) {
		if (!json_is_object(props))
			return valid_value(v, s, "properties", field, "'properties' must be a mapping of names to schemas");
		const char *k;
		json_t *p;
		json_object_foreach(props, k, p) {
			snprintf(f, sizeof(f), "%s.properties.%s", field, k);
			if (validate_schema(v, api, p, f, depth + 1))
				return -1;
		}
	}
	json_t *req = json_object_get(s, "required");
	if (req) {
		if (!json_is_array(req))
			return valid_value(v, s, "required", field, "'required' must be a list of property names");
		size_t i;
		json_t *x;
		json_array_foreach(req, i, x)
			if (!json_is_string(x))
				return valid_index(v, req, i, field, "'required' must list property names (strings)");
	}
	static const char *const subs[] = {"items", "additionalProperties", "not"};
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		json_t *x = json_object_get(s, subs[i]);
		if (!x)
			continue;
		if (!json_is_object(x) && !json_is_boolean(x))
			return valid_value(v, s, subs[i], field, "'%s' must be a schema (an object or a boolean)", subs[i]);
		snprintf(f, sizeof(f), "%s.%s", field, subs[i]);
		if (validate_schema(v, api, x, f, depth + 1))
			return -1;
	}
	static const char *const lists[] = {"allOf", "anyOf", "oneOf"};
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
		if (validate_schema_list(v, api, s, lists[i], field, depth))
			return -1;
	json_t *en = json_object_get(s, "enum");
	if (en && (!json_is_array(en) || !json_array_size(en)))
		return valid_value(v, s, "enum", field, "'enum' must be a non-empty list of values");
	static const char *const nums[] = {"minLength", "maxLength", "minItems", "maxItems", "minProperties",
					   "maxProperties", "minimum", "maximum", "multipleOf"};
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		json_t *x = json_object_get(s, nums[i]);
		if (x && !json_is_number(x))
			return valid_value(v, s, nums[i], field, "'%s' must be a number", nums[i]);
	}
	static const char *const emms[] = {"exclusiveMinimum", "exclusiveMaximum"};
	for (size_t i = 0; i < 2; i++) {
		json_t *x = json_object_get(s, emms[i]);
		if (x && !json_is_number(x) && !json_is_boolean(x))
			return valid_value(v, s, emms[i], field, "'%s' must be a number (3.1) or a boolean (3.0)", emms[i]);
	}
	static const char *const bools[] = {"nullable", "uniqueItems", "readOnly", "writeOnly"};
	for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
		json_t *x = json_object_get(s, bools[i]);
		if (x && !json_is_boolean(x))
			return valid_value(v, s, bools[i], field, "'%s' must be true or false", bools[i]);
	}
	json_t *pat = json_object_get(s, "pattern");
	if (pat && !json_is_string(pat))
		return valid_value(v, s, "pattern", field, "'pattern' must be a string");
	return 0;
}

static int valid_status(const char *k)
{
	if (!strcmp(k, "default"))
		return 1;
	if (strlen(k) != 3 || k[0] < '1' || k[0] > '5')
		return 0;
	if (k[1] == 'X' && k[2] == 'X')
		return 1;
	return isdigit((unsigned char)k[1]) && isdigit((unsigned char)k[2]);
}

/* A response, request body or parameter: follows $ref and reports one that does not resolve. */
static const json_t *deref_checked(const struct valid *v, const json_t *api, const json_t *parent, const char *key,
				   size_t idx, const char *field, int *rc)
{
	const json_t *o = key ? json_object_get(parent, key) : json_array_get(parent, idx);
	*rc = 0;
	const json_t *r = openapi_deref(api, o);
	if (!r || !json_is_object(r)) {
		*rc = key ? valid_value(v, parent, key, field, "must be an object (or a $ref to one in this document)")
			  : valid_index(v, parent, idx, field, "must be an object (or a $ref to one in this document)");
		return NULL;
	}
	return r;
}

static int validate_content(const struct valid *v, const json_t *api, const json_t *owner, const char *field)
{
	json_t *content = json_object_get(owner, "content");
	char f[FIELD_MAX];
	if (!content)
		return 0;
	if (!json_is_object(content))
		return valid_value(v, owner, "content", field, "'content' must be a mapping of media types");
	const char *mt;
	json_t *m;
	json_object_foreach(content, mt, m) {
		snprintf(f, sizeof(f), "%s.content.%s", field, mt);
		if (!json_is_object(m))
			return valid_value(v, content, mt, f, "a media type must be an object (with 'schema')");
		json_t *s = json_object_get(m, "schema");
		if (s) {
			snprintf(f, sizeof(f), "%s.content.%s.schema", field, mt);
			if (validate_schema(v, api, s, f, 0))
				return -1;
		}
	}
	return 0;
}

static int validate_parameters(const struct valid *v, const json_t *api, const json_t *owner, const char *field)
{
	json_t *params = json_object_get(owner, "parameters");
	char f[FIELD_MAX];
	int rc;
	if (!params)
		return 0;
	if (!json_is_array(params))
		return valid_value(v, owner, "parameters", field, "'parameters' must be a list");
	size_t i;
	json_t *x;
	json_array_foreach(params, i, x) {
		snprintf(f, sizeof(f), "%s.parameters[%zu]", field, i);
		const json_t *p = deref_checked(v, api, params, NULL, i, f, &rc);
		if (!p)
			return rc;
		json_t *name = json_object_get(p, "name"), *in = json_object_get(p, "in");
		if (!json_is_string(name))
			return valid_index(v, params, i, f, "a parameter needs a 'name'");
		const char *ins = json_string_value(in);
		if (!ins || (strcmp(ins, "query") && strcmp(ins, "header") && strcmp(ins, "path") && strcmp(ins, "cookie")))
			return valid_index(v, params, i, f, "a parameter needs 'in': query, header, path or cookie");
		json_t *s = json_object_get(p, "schema");
		snprintf(f, sizeof(f), "%s.parameters[%zu].schema", field, i);
		if (s && validate_schema(v, api, s, f, 0))
			return -1;
		snprintf(f, sizeof(f), "%s.parameters[%zu]", field, i);
		if (!s && validate_content(v, api, p, f))
			return -1;
	}
	return 0;
}

/* A response's `headers`: a mapping of names to header objects (or $refs to them) whose
 * `schema` or `content` is checked like any other. */
static int validate_headers(const struct valid *v, const json_t *api, const json_t *resp, const char *field)
{
	json_t *hs = json_object_get(resp, "headers");
	char f[FIELD_MAX];
	int rc;
	if (!hs)
		return 0;
	if (!json_is_object(hs))
		return valid_value(v, resp, "headers", field, "'headers' must map header names to header objects");
	const char *k;
	json_t *x;
	json_object_foreach(hs, k, x) {
		snprintf(f, sizeof(f), "%s.headers.%s", field, k);
		const json_t *h = deref_checked(v, api, hs, k, 0, f, &rc);
		if (!h)
			return rc;
		json_t *req = json_object_get(h, "required");
		if (req && !json_is_boolean(req))
			return valid_value(v, hs, k, f, "'required' must be true or false");
		json_t *s = json_object_get(h, "schema");
		if (s) {
			snprintf(f, sizeof(f), "%s.headers.%s.schema", field, k);
			if (validate_schema(v, api, s, f, 0))
				return -1;
		} else if (validate_content(v, api, h, f)) {
			return -1;
		}
	}
	return 0;
}

static int validate_operation(const struct valid *v, const json_t *api, const json_t *item, const char *method,
			      const char *field)
{
	char f[FIELD_MAX];
	int rc;
	json_t *op = json_object_get(item, method);
	if (!json_is_object(op))
		return valid_value(v, item, method, field, "an operation must be an object");
	if (validate_parameters(v, api, op, field))
		return -1;
	if (json_object_get(op, "requestBody")) {
		snprintf(f, sizeof(f), "%s.requestBody", field);
		const json_t *rb = deref_checked(v, api, op, "requestBody", 0, f, &rc);
		if (!rb || validate_content(v, api, rb, f))
			return -1;
	}
	json_t *resps = json_object_get(op, "responses");
	if (!json_is_object(resps) || !json_object_size(resps))
		return resps ? valid_value(v, op, "responses", field, "'responses' must map status codes to responses")
			     : valid_key(v, item, method, field, "an operation needs 'responses'");
	const char *st;
	json_t *r;
	json_object_foreach(resps, st, r) {
		snprintf(f, sizeof(f), "%s.responses.%s", field, st);
		if (!valid_status(st))
			return valid_key(v, resps, st, f, "'%s' is not a status code (200, 2XX or default)", st);
		const json_t *resp = deref_checked(v, api, resps, st, 0, f, &rc);
		if (!resp || validate_content(v, api, resp, f) || validate_headers(v, api, resp, f))
			return -1;
	}
	return 0;
}

static int template_eq(const char *a, const char *b);

/* Whether every '{' of a path template closes with '}' in its segment around a non-empty name
 * (found by fuzzing: "/{" never matched itself, so an API diffed against itself broke). */
static int template_ok(const char *p)
{
	for (; *p; p++) {
		if (*p == '}')
			return 0;
		if (*p != '{')
			continue;
		size_t n = strcspn(p + 1, "{}/");
		if (n == 0 || p[1 + n] != '}')
			return 0;
		p += n + 1;
	}
	return 1;
}

int openapi_validate(const struct valid *v, const json_t *api, const char *field)
{
	char f[FIELD_MAX];
	const char *pre = field && *field ? field : NULL;
#define FLD(...) (snprintf(f, sizeof(f), __VA_ARGS__), f)
	if (!json_is_object(api))
		return valid_node(v, api, pre ? pre : "", "an OpenAPI document must be a mapping");
	json_t *ver = json_object_get(api, "openapi");
	const char *vs = json_string_value(ver);
	if (!vs)
		return ver ? valid_value(v, api, "openapi", FLD("%s%sopenapi", pre ? pre : "", pre ? "." : ""),
					 "'openapi' must be a string such as \"3.1.0\"")
			   : valid_node(v, api, pre ? pre : "", "not an OpenAPI document: 'openapi: 3.0.x' or '3.1.x' is missing");
	if (strncmp(vs, "3.0", 3) && strncmp(vs, "3.1", 3))
		return valid_value(v, api, "openapi", FLD("%s%sopenapi", pre ? pre : "", pre ? "." : ""),
				   "OpenAPI version '%s' is not supported (3.0.x or 3.1.x)", vs);
	json_t *paths = json_object_get(api, "paths");
	/* 3.1 allows a document with components or webhooks only: no paths is an empty API */
	if (paths && !json_is_object(paths))
		return valid_value(v, api, "paths", FLD("%s%spaths", pre ? pre : "", pre ? "." : ""),
				   "'paths' must map path templates to path items");
	if (paths && json_object_size(paths) > OPENAPI_MAX_PATHS)
		return valid_value(v, api, "paths", FLD("%s%spaths", pre ? pre : "", pre ? "." : ""),
				   "more than %d paths", OPENAPI_MAX_PATHS);
	const char *p;
	json_t *item;
	json_object_foreach(paths, p, item) {
		char pf[FIELD_MAX];
		snprintf(pf, sizeof(pf), "%s%spaths.%s", pre ? pre : "", pre ? "." : "", p);
		if (p[0] != '/')
			return valid_key(v, paths, p, pf, "a path must start with '/'");
		if (!template_ok(p))
			return valid_key(v, paths, p, pf, "a path parameter is '{name}' within one segment");
		/* A path equal to an earlier one but for parameter names makes the diff compare an
		 * operation with the other path's, so an API differs from itself (OpenAPI forbids it). */
		const char *q;
		json_t *other;
		json_object_foreach(paths, q, other) {
			if (q == p)
				break;
			if (template_eq(q, p))
				return valid_key(v, paths, p, pf, "the same path as '%s' but for parameter names", q);
		}
		if (!json_is_object(item))
			return valid_value(v, paths, p, pf, "a path item must be a mapping of methods to operations");
		if (validate_parameters(v, api, item, pf))
			return -1;
		const char *k;
		json_t *x;
		json_object_foreach(item, k, x) {
			if (is_method(k)) {
				char of[FIELD_MAX];
				snprintf(of, sizeof(of), "%s.%s", pf, k);
				if (validate_operation(v, api, item, k, of))
					return -1;
			} else if (strcmp(k, "summary") && strcmp(k, "description") && strcmp(k, "servers") &&
				   strcmp(k, "parameters") && strncmp(k, "x-", 2)) {
				return valid_key(v, item, k, pf,
						 "unknown key '%s' (methods are lowercase: get, put, post, delete, patch, ...)", k);
			}
		}
	}
	json_t *schemas = json_object_get(json_object_get(api, "components"), "schemas");
	if (schemas) {
		if (!json_is_object(schemas))
			return valid_value(v, json_object_get(api, "components"), "schemas",
					   FLD("%s%scomponents.schemas", pre ? pre : "", pre ? "." : ""),
					   "'schemas' must map names to schemas");
		const char *k;
		json_t *s;
		json_object_foreach(schemas, k, s)
			if (validate_schema(v, api, s, FLD("%s%scomponents.schemas.%s", pre ? pre : "", pre ? "." : "", k), 0))
				return -1;
	}
#undef FLD
	return 0;
}

int openapi_validate_schema(const struct valid *v, const json_t *root, const json_t *schema, const char *field)
{
	return validate_schema(v, root, schema, field, 0);
}

/* ---- lookups ---------------------------------------------------------------------------- */

/* Compares path templates with parameter names ignored. */
static int template_eq(const char *a, const char *b)
{
	while (*a && *b) {
		if (*a == '{' && *b == '{') {
			while (*a && *a != '}')
				a++;
			while (*b && *b != '}')
				b++;
			if (!*a || !*b)
				return 0;
			a++;
			b++;
			continue;
		}
		if (*a++ != *b++)
			return 0;
	}
	return !*a && !*b;
}

const json_t *openapi_operation(const json_t *api, const char *method, const char *path, const json_t **itemp)
{
	json_t *paths = json_object_get(api, "paths");
	const char *p;
	json_t *item;
	json_object_foreach(paths, p, item) {
		if (!template_eq(p, path))
			continue;
		const char *k;
		json_t *op;
		json_object_foreach(item, k, op)
			if (is_method(k) && !strcasecmp(k, method)) {
				if (itemp)
					*itemp = item;
				return op;
			}
	}
	return NULL;
}

const json_t *openapi_deref(const json_t *api, const json_t *obj)
{
	for (int i = 0; i < MAX_DEREF && json_is_object(obj); i++) {
		json_t *ref = json_object_get(obj, "$ref");
		if (!json_is_string(ref))
			return obj;
		obj = schema_resolve_ref(api, json_string_value(ref));
	}
	return json_is_object(obj) && !json_object_get(obj, "$ref") ? obj : NULL;
}

const json_t *openapi_json_schema(const json_t *content, const char **media)
{
	const char *mt, *pick = NULL;
	json_t *m;
	if (!json_is_object(content) || !json_object_size(content))
		return NULL;
	if (json_object_get(content, "application/json"))
		pick = "application/json";
	json_object_foreach((json_t *)content, mt, m)
		if (!pick && (strstr(mt, "+json") || strstr(mt, "/json")))
			pick = mt;
	json_object_foreach((json_t *)content, mt, m)
		if (!pick)
			pick = mt;
	if (media)
		*media = pick;
	return json_object_get(json_object_get(content, pick), "schema");
}

int openapi_is_success(const char *status)
{
	return status[0] == '2' && strlen(status) == 3;
}

/* ---- diff ------------------------------------------------------------------------------- */

struct diffctx {
	const json_t *old_api, *new_api;
	json_t *findings;
	char op[300];
};

void openapi_param_key(const char *in, const char *name, const char *tmpl, char *out, size_t size)
{
	if (!strcmp(in, "path") && tmpl) {
		char want[300];
		snprintf(want, sizeof(want), "{%s}", name);
		const char *at = strstr(tmpl, want);
		if (at) {
			int idx = 0;
			for (const char *q = tmpl; q < at; q++)
				idx += *q == '{';
			snprintf(out, size, "/path/{%d}", idx);
			return;
		}
	}
	int n = snprintf(out, size, "/%s/%s", in, name);
	if (!strcmp(in, "header"))
		for (int i = 8; i < n && (size_t)i < size; i++)
			out[i] = (char)tolower((unsigned char)out[i]);
}

/* Parameters of an operation, path-level ones overridden by operation-level ones, keyed by
 * openapi_param_key; each value is {"p": parameter, "label": "/in/name"}. */
static json_t *collect_params(const json_t *api, const json_t *item, const json_t *op, const char *tmpl)
{
	json_t *all = json_object();
	const json_t *owners[2] = {item, op};
	char key[300], label[300];
	for (int o = 0; o < 2; o++) {
		size_t i;
		json_t *x;
		json_array_foreach(json_object_get(owners[o], "parameters"), i, x) {
			const json_t *p = openapi_deref(api, x);
			if (!p || !json_is_string(json_object_get(p, "name")) || !json_is_string(json_object_get(p, "in")))
				continue;
			const char *in = json_string_value(json_object_get(p, "in"));
			const char *name = json_string_value(json_object_get(p, "name"));
			openapi_param_key(in, name, tmpl, key, sizeof(key));
			snprintf(label, sizeof(label), "/%s/%s", in, name);
			json_object_set_new(all, key, json_pack("{s:O, s:s}", "p", p, "label", label));
		}
	}
	return all;
}

/* The key of `paths` whose template matches (parameter names aside). */
static const char *template_of(const json_t *api, const char *path)
{
	const char *p;
	json_t *item;
	json_object_foreach(json_object_get(api, "paths"), p, item)
		if (template_eq(p, path))
			return p;
	return NULL;
}

json_t *openapi_operation_parameters(const json_t *api, const char *method, const char *path)
{
	const json_t *item = NULL;
	const json_t *op = openapi_operation(api, method, path, &item);
	return op ? collect_params(api, item, op, template_of(api, path)) : NULL;
}

const json_t *openapi_param_schema(const json_t *p)
{
	const json_t *s = json_object_get(p, "schema");
	return s ? s : openapi_json_schema(json_object_get(p, "content"), NULL);
}

const json_t *openapi_response_header(const json_t *api, const json_t *response, const char *name)
{
	const char *k;
	json_t *h;
	json_object_foreach(json_object_get(response, "headers"), k, h)
		if (!strcasecmp(k, name))
			return openapi_deref(api, h);
	return NULL;
}

static void diff_params(struct diffctx *c, const char *tmpl, const json_t *oitem, const json_t *oop,
			const json_t *nitem, const json_t *nop)
{
	json_t *po = collect_params(c->old_api, oitem, oop, tmpl);
	json_t *pn = collect_params(c->new_api, nitem, nop, template_of(c->new_api, tmpl));
	const char *k;
	json_t *x;
	json_object_foreach(pn, k, x) {
		json_t *p = json_object_get(x, "p"), *ox = json_object_get(po, k), *old = json_object_get(ox, "p");
		struct report_loc loc = {c->op, NULL, "parameter", json_string_value(json_object_get(x, "label"))};
		int req = json_is_true(json_object_get(p, "required"));
		if (!old) {
			if (req)
				report_add(c->findings, REPORT_BREAKING, &loc, "new required parameter: callers do not send it");
			else
				report_add(c->findings, REPORT_INFO, &loc, "new optional parameter");
			continue;
		}
		if (req && !json_is_true(json_object_get(old, "required")))
			report_add(c->findings, REPORT_BREAKING, &loc, "parameter became required");
		schema_compare(c->old_api, openapi_param_schema(old), c->new_api, openapi_param_schema(p), SCHEMA_REQUEST,
			       &loc, c->findings);
	}
	json_object_foreach(po, k, x) {
		if (json_object_get(pn, k))
			continue;
		struct report_loc loc = {c->op, NULL, "parameter", json_string_value(json_object_get(x, "label"))};
		report_add(c->findings, REPORT_WARNING, &loc, "parameter removed: callers that send it may see it ignored");
	}
	json_decref(po);
	json_decref(pn);
}

static void diff_body(struct diffctx *c, const json_t *oop, const json_t *nop)
{
	const json_t *ob = openapi_deref(c->old_api, json_object_get(oop, "requestBody"));
	const json_t *nb = openapi_deref(c->new_api, json_object_get(nop, "requestBody"));
	struct report_loc loc = {c->op, NULL, "request", NULL};
	if (nb && json_is_true(json_object_get(nb, "required")) && !(ob && json_is_true(json_object_get(ob, "required"))))
		report_add(c->findings, REPORT_BREAKING, &loc, "request body became required");
	if (!ob)
		return;
	if (!nb) {
		report_add(c->findings, REPORT_WARNING, &loc, "request body no longer described: callers still send one");
		return;
	}
	json_t *oc = json_object_get(ob, "content"), *nc = json_object_get(nb, "content");
	const char *mt;
	json_t *om;
	json_object_foreach(oc, mt, om) {
		json_t *nm = json_object_get(nc, mt);
		struct report_loc l = {c->op, NULL, "request", NULL};
		if (!nm) {
			report_add(c->findings, REPORT_BREAKING, &l, "request media type '%s' no longer accepted", mt);
			continue;
		}
		schema_compare(c->old_api, json_object_get(om, "schema"), c->new_api, json_object_get(nm, "schema"),
			       SCHEMA_REQUEST, &l, c->findings);
	}
}

/* The new response that answers for an old status: the same code, else its range (2XX). */
static const json_t *match_status(const json_t *resps, const char *st, char range[4])
{
	json_t *r = json_object_get(resps, st);
	if (r)
		return r;
	if (strlen(st) == 3 && isdigit((unsigned char)st[1])) {
		snprintf(range, 4, "%cXX", st[0]);
		return json_object_get(resps, range);
	}
	return NULL;
}

/* Response headers, compared like bodies (a response may only narrow): a required header
 * removed or made optional breaks the consumers that read it; its schema may only narrow. */
static void diff_headers(struct diffctx *c, const char *st, const json_t *o, const json_t *n)
{
	const char *name;
	json_t *x;
	json_object_foreach(json_object_get(o, "headers"), name, x) {
		if (!strcasecmp(name, "Content-Type"))
			continue; /* OpenAPI: described by the media type, a header entry is ignored */
		const json_t *oh = openapi_deref(c->old_api, x), *nh = openapi_response_header(c->new_api, n, name);
		struct report_loc loc = {c->op, st, "header", name};
		int oreq = json_is_true(json_object_get(oh, "required"));
		if (!nh) {
			report_add(c->findings, oreq ? REPORT_BREAKING : REPORT_WARNING, &loc,
				   oreq ? "required response header '%s' removed"
					: "optional response header '%s' removed: consumers that read it get nothing",
				   name);
			continue;
		}
		if (oreq && !json_is_true(json_object_get(nh, "required")))
			report_add(c->findings, REPORT_BREAKING, &loc, "response header '%s' is no longer required: it may be absent",
				   name);
		schema_compare(c->new_api, openapi_param_schema(nh), c->old_api, openapi_param_schema(oh), SCHEMA_RESPONSE,
			       &loc, c->findings);
	}
	json_object_foreach(json_object_get(n, "headers"), name, x) {
		if (strcasecmp(name, "Content-Type") && !openapi_response_header(c->old_api, o, name)) {
			struct report_loc loc = {c->op, st, "header", name};
			report_add(c->findings, REPORT_INFO, &loc, "response header '%s' added", name);
		}
	}
}

/* Every status of the old API is compared with the one that answers for it in the new: the
 * same code, else its range. A success status that disappears breaks every caller; an error
 * status (4xx, 5xx, default) that disappears is a warning, since only consumers that handle it
 * care and `contract check` knows which do. Bodies and headers are compared alike. */
static void diff_responses(struct diffctx *c, const json_t *oop, const json_t *nop)
{
	json_t *ors = json_object_get(oop, "responses"), *nrs = json_object_get(nop, "responses");
	const char *st;
	json_t *x;
	json_object_foreach(ors, st, x) {
		int success = openapi_is_success(st);
		struct report_loc loc = {c->op, st, "response", NULL};
		char range[4];
		const json_t *nx = match_status(nrs, st, range);
		if (!nx) {
			if (success)
				report_add(c->findings, REPORT_BREAKING, &loc, "success status %s removed", st);
			else
				report_add(c->findings, REPORT_WARNING, &loc,
					   "status %s no longer declared: consumers that handle it may get an undescribed body", st);
			continue;
		}
		const json_t *o = openapi_deref(c->old_api, x), *n = openapi_deref(c->new_api, nx);
		json_t *oc = json_object_get(o, "content"), *nc = json_object_get(n, "content");
		const char *mt;
		json_t *om;
		json_object_foreach(oc, mt, om) {
			json_t *nm = json_object_get(nc, mt);
			if (!nm) {
				report_add(c->findings, REPORT_BREAKING, &loc, "response media type '%s' no longer returned", mt);
				continue;
			}
			schema_compare(c->new_api, json_object_get(nm, "schema"), c->old_api, json_object_get(om, "schema"),
				       SCHEMA_RESPONSE, &loc, c->findings);
		}
		diff_headers(c, st, o, n);
	}
	json_object_foreach(nrs, st, x) {
		char range[4];
		if (match_status(ors, st, range))
			continue;
		struct report_loc loc = {c->op, st, "response", NULL};
		if (openapi_is_success(st))
			report_add(c->findings, REPORT_WARNING, &loc, "new success status %s: consumers may not expect it", st);
		else
			report_add(c->findings, REPORT_INFO, &loc, "new status %s declared", st);
	}
}

json_t *openapi_diff(const json_t *old_api, const json_t *new_api)
{
	struct diffctx c = {old_api, new_api, json_array(), {0}};
	char m[16];
	const char *p;
	json_t *item;
	json_object_foreach(json_object_get(old_api, "paths"), p, item) {
		const char *k;
		json_t *op;
		json_object_foreach(item, k, op) {
			if (!is_method(k))
				continue;
			upper(m, k, sizeof(m));
			snprintf(c.op, sizeof(c.op), "%s %s", m, p);
			const json_t *nitem = NULL;
			const json_t *nop = openapi_operation(new_api, k, p, &nitem);
			struct report_loc loc = {c.op, NULL, "operation", NULL};
			if (!nop) {
				report_add(c.findings, REPORT_BREAKING, &loc, "operation removed");
				continue;
			}
			diff_params(&c, p, item, op, nitem, nop);
			diff_body(&c, op, nop);
			diff_responses(&c, op, nop);
		}
	}
	json_object_foreach(json_object_get(new_api, "paths"), p, item) {
		const char *k;
		json_t *op;
		json_object_foreach(item, k, op) {
			if (!is_method(k) || openapi_operation(old_api, k, p, NULL))
				continue;
			upper(m, k, sizeof(m));
			snprintf(c.op, sizeof(c.op), "%s %s", m, p);
			struct report_loc loc = {c.op, NULL, "operation", NULL};
			report_add(c.findings, REPORT_INFO, &loc, "operation added");
		}
	}
	size_t nb = report_count(c.findings, REPORT_BREAKING);
	return json_pack("{s:s, s:s, s:I, s:I, s:o}", "kind", "diff", "verdict", nb ? "breaking" : "compatible",
			 "breaking", (json_int_t)nb, "warnings", (json_int_t)report_count(c.findings, REPORT_WARNING),
			 "findings", c.findings);
}
