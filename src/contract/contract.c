#include "contract/contract.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "contract/openapi.h"
#include "contract/report.h"
#include "contract/schema.h"
#include "contract/valid.h"
#include "util/buf.h"
#include "util/doc.h"
#include "util/name.h"
#include "util/shape.h"

#define FIELD_MAX 512

struct contract {
	json_t *json; /* canonical form: validated, `provides` inline */
};

/* ---- validation ------------------------------------------------------------------------- */

static int only_keys(const struct valid *v, const json_t *obj, const char *field, const char *const *keys,
		     const char *hint)
{
	const char *k;
	json_t *x;
	json_object_foreach((json_t *)obj, k, x) {
		int ok = 0;
		for (size_t i = 0; keys[i] && !ok; i++)
			ok = !strcmp(k, keys[i]);
		if (ok)
			continue;
		size_t n = 0;
		while (keys[n])
			n++;
		const char *near = shape_closest(k, keys, n);
		if (near)
			return valid_key(v, obj, k, field, "unknown key '%s' (did you mean '%s'? %s)", k, near, hint);
		return valid_key(v, obj, k, field, "unknown key '%s' (%s)", k, hint);
	}
	return 0;
}

static const char *const http_methods[] = {"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE", NULL};

/* `type` of a read, a response header or a parameter: a type name or a non-empty list. */
static int validate_type_key(const struct valid *v, const json_t *obj, const char *field)
{
	json_t *t = json_object_get(obj, "type");
	if (!t)
		return 0;
	int bad = 0;
	if (json_is_string(t))
		bad = !schema_type_bit(json_string_value(t));
	else if (json_is_array(t) && json_array_size(t)) {
		size_t i;
		json_t *x;
		json_array_foreach(t, i, x)
			bad |= !json_is_string(x) || !schema_type_bit(json_string_value(x));
	} else
		bad = 1;
	if (bad)
		return valid_value(v, obj, "type", field,
				   "'type' must be a type name or a list of them (null, boolean, integer, number, string, array, object)");
	return 0;
}

/* An HTTP field name (RFC 9110 token). */
static int token_ok(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
			return 0;
	return 1;
}

/* A parameter or header name: 1 to CONTRACT_MAX_FIELD_NAME bytes, a token for headers,
 * printable for the others. */
static int field_name_ok(const json_t *name, int header)
{
	const char *s = json_string_value(name);
	if (!s || !*s || json_string_length(name) > CONTRACT_MAX_FIELD_NAME || strlen(s) != json_string_length(name))
		return 0;
	if (header)
		return token_ok(s);
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return 0;
	return 1;
}

static int validate_read_path(const struct valid *v, const json_t *rd, const char *field)
{
	json_t *p = json_object_get(rd, "path");
	if (!json_is_string(p))
		return p ? valid_value(v, rd, "path", field, "'path' must be a string such as /metadata")
			 : valid_node(v, rd, field, "a read needs a 'path' (such as /metadata) or 'any_of'");
	const char *s = json_string_value(p);
	size_t len = strlen(s);
	if (s[0] != '/')
		return valid_value(v, rd, "path", field, "a read path starts with '/' (JSON-pointer-like: /a/b, '*' for array elements)");
	if (len > CONTRACT_MAX_PATH)
		return valid_value(v, rd, "path", field, "path longer than %d bytes", CONTRACT_MAX_PATH);
	size_t segs = 0;
	if (len > 1)
		for (const char *q = s; *q; q++)
			if (*q == '/') {
				if (q[1] == '/' || q[1] == 0)
					return valid_value(v, rd, "path", field, "empty segment in path '%s'", s);
				segs++;
			}
	if (segs > CONTRACT_MAX_SEGMENTS)
		return valid_value(v, rd, "path", field, "more than %d segments in path", CONTRACT_MAX_SEGMENTS);
	if (validate_type_key(v, rd, field))
		return -1;
	json_t *o = json_object_get(rd, "optional");
	if (o && !json_is_boolean(o))
		return valid_value(v, rd, "optional", field, "'optional' must be true or false");
	static const char *const keys[] = {"path", "type", "optional", "description", NULL};
	return only_keys(v, rd, field, keys, "a read has path, type, optional");
}

static int validate_alternative(const struct valid *v, const json_t *alt, const char *field)
{
	char f[FIELD_MAX];
	if (!json_is_object(alt))
		return valid_node(v, alt, field, "an alternative must be a read ({path, type}) or {all_of: [reads]}");
	json_t *all = json_object_get(alt, "all_of");
	if (!all)
		return validate_read_path(v, alt, field);
	if (json_object_size(alt) != 1)
		return valid_key(v, alt, "all_of", field, "'all_of' stands alone in its alternative");
	if (!json_is_array(all) || !json_array_size(all) || json_array_size(all) > CONTRACT_MAX_READS)
		return valid_value(v, alt, "all_of", field, "'all_of' must be a non-empty list of reads");
	size_t i;
	json_t *rd;
	json_array_foreach(all, i, rd) {
		snprintf(f, sizeof(f), "%s.all_of[%zu]", field, i);
		if (!json_is_object(rd))
			return valid_index(v, all, i, f, "a read must be a mapping with 'path' and 'type'");
		if (validate_read_path(v, rd, f))
			return -1;
	}
	return 0;
}

static int validate_read(const struct valid *v, const json_t *rd, const char *field)
{
	char f[FIELD_MAX];
	json_t *any = json_object_get(rd, "any_of");
	if (!any)
		return validate_read_path(v, rd, field);
	if (json_object_size(rd) != 1)
		return valid_key(v, rd, "any_of", field, "'any_of' stands alone in its read");
	if (!json_is_array(any) || json_array_size(any) < 1 || json_array_size(any) > CONTRACT_MAX_ALTERNATIVES)
		return valid_value(v, rd, "any_of", field, "'any_of' must list 1 to %d alternatives", CONTRACT_MAX_ALTERNATIVES);
	size_t i;
	json_t *alt;
	json_array_foreach(any, i, alt) {
		snprintf(f, sizeof(f), "%s.any_of[%zu]", field, i);
		if (validate_alternative(v, alt, f))
			return -1;
	}
	return 0;
}

static int validate_reads(const struct valid *v, const json_t *owner, const char *field)
{
	char f[FIELD_MAX];
	json_t *reads = json_object_get(owner, "reads");
	if (!reads)
		return 0;
	if (!json_is_array(reads) || json_array_size(reads) > CONTRACT_MAX_READS)
		return valid_value(v, owner, "reads", field, "'reads' must be a list of at most %d reads", CONTRACT_MAX_READS);
	size_t i;
	json_t *rd;
	json_array_foreach(reads, i, rd) {
		snprintf(f, sizeof(f), "%s.reads[%zu]", field, i);
		if (!json_is_object(rd))
			return valid_index(v, reads, i, f, "a read must be a mapping ({path, type} or {any_of: [...]})");
		if (validate_read(v, rd, f))
			return -1;
	}
	return 0;
}

/* `response_headers`: the headers a consumer reads, {name, type, optional}. */
static int validate_response_headers(const struct valid *v, const json_t *owner, const char *field)
{
	char f[FIELD_MAX];
	json_t *hs = json_object_get(owner, "response_headers");
	if (!hs)
		return 0;
	if (!json_is_array(hs) || json_array_size(hs) > CONTRACT_MAX_HEADERS)
		return valid_value(v, owner, "response_headers", field,
				   "'response_headers' must be a list of at most %d headers read ({name, type})", CONTRACT_MAX_HEADERS);
	size_t i, j;
	json_t *h, *o;
	json_array_foreach(hs, i, h) {
		snprintf(f, sizeof(f), "%s.response_headers[%zu]", field, i);
		if (!json_is_object(h))
			return valid_index(v, hs, i, f, "a header read must be a mapping {name, type}");
		static const char *const keys[] = {"name", "type", "optional", "description", NULL};
		if (only_keys(v, h, f, keys, "a header read has name, type, optional"))
			return -1;
		json_t *name = json_object_get(h, "name");
		if (!name)
			return valid_node(v, h, f, "a header read needs a 'name' (such as ETag)");
		if (!field_name_ok(name, 1))
			return valid_value(v, h, "name", f, "'name' must be a header name (letters, digits, -, at most %d bytes)",
					   CONTRACT_MAX_FIELD_NAME);
		if (validate_type_key(v, h, f))
			return -1;
		json_t *opt = json_object_get(h, "optional");
		if (opt && !json_is_boolean(opt))
			return valid_value(v, h, "optional", f, "'optional' must be true or false");
		for (j = 0; j < i && (o = json_array_get(hs, j)); j++)
			if (!strcasecmp(json_string_value(json_object_get(o, "name")), json_string_value(name)))
				return valid_value(v, h, "name", f, "header '%s' is listed twice (names are case-insensitive)",
						   json_string_value(name));
	}
	return 0;
}

static const char *const param_ins[] = {"path", "query", "header", "cookie", NULL};

/* `parameters`: what the consumer sends, {name, in, type | schema}. A path parameter must be a
 * `{name}` of the operation's path template. */
static int validate_parameters(const struct valid *v, const json_t *root, const json_t *op, const char *path,
			       const char *field)
{
	char f[FIELD_MAX], fs[FIELD_MAX];
	json_t *ps = json_object_get(op, "parameters");
	if (!ps)
		return 0;
	if (!json_is_array(ps) || json_array_size(ps) > CONTRACT_MAX_PARAMETERS)
		return valid_value(v, op, "parameters", field,
				   "'parameters' must be a list of at most %d parameters sent ({name, in, type})",
				   CONTRACT_MAX_PARAMETERS);
	size_t i, j;
	json_t *p, *o;
	json_array_foreach(ps, i, p) {
		snprintf(f, sizeof(f), "%s.parameters[%zu]", field, i);
		if (!json_is_object(p))
			return valid_index(v, ps, i, f, "a parameter must be a mapping {name, in, type}");
		static const char *const keys[] = {"name", "in", "type", "schema", "description", NULL};
		if (only_keys(v, p, f, keys, "a parameter has name, in, type or schema, description"))
			return -1;
		json_t *in = json_object_get(p, "in"), *name = json_object_get(p, "name");
		int known = 0;
		for (size_t k = 0; param_ins[k] && json_is_string(in); k++)
			known |= !strcmp(json_string_value(in), param_ins[k]);
		if (!known)
			return in ? valid_value(v, p, "in", f, "'in' must be path, query, header or cookie")
				  : valid_node(v, p, f, "a parameter needs 'in': path, query, header or cookie");
		const char *ins = json_string_value(in);
		if (!name)
			return valid_node(v, p, f, "a parameter needs a 'name'");
		if (!field_name_ok(name, !strcmp(ins, "header")))
			return valid_value(v, p, "name", f, "'name' must be a %s name (at most %d bytes%s)",
					   !strcmp(ins, "header") ? "header" : "parameter", CONTRACT_MAX_FIELD_NAME,
					   !strcmp(ins, "header") ? ", letters, digits, -" : ", no spaces");
		const char *ns = json_string_value(name);
		if (!strcmp(ins, "path")) {
			char want[CONTRACT_MAX_FIELD_NAME + 3];
			snprintf(want, sizeof(want), "{%s}", ns);
			if (!strstr(path, want))
				return valid_value(v, p, "name", f, "the path template '%s' has no '%s'", path, want);
		}
		json_t *t = json_object_get(p, "type"), *sch = json_object_get(p, "schema");
		if (t && sch)
			return valid_key(v, p, "schema", f, "give the value's 'type' or a 'schema', not both");
		if (!t && !sch)
			return valid_node(v, p, f, "a parameter needs the 'type' of the value sent (or a 'schema')");
		if (validate_type_key(v, p, f))
			return -1;
		if (sch) {
			snprintf(fs, sizeof(fs), "%s.schema", f);
			if (!json_is_object(sch) && !json_is_boolean(sch))
				return valid_value(v, p, "schema", f, "'schema' must be a JSON Schema of the value sent");
			if (openapi_validate_schema(v, root, sch, fs))
				return -1;
		}
		for (j = 0; j < i && (o = json_array_get(ps, j)); j++) {
			const char *oin = json_string_value(json_object_get(o, "in"));
			const char *on = json_string_value(json_object_get(o, "name"));
			if (!strcmp(oin, ins) && (!strcmp(ins, "header") ? !strcasecmp(on, ns) : !strcmp(on, ns)))
				return valid_value(v, p, "name", f, "%s parameter '%s' is listed twice", ins, ns);
		}
	}
	return 0;
}

/* An error status a consumer handles: 400-599 (a number or a string) or a range 4XX/5XX.
 * Writes the canonical key ("404", "4XX") into out; 0 when valid. */
static int error_status(const json_t *st, char out[4])
{
	char buf[8];
	if (json_is_integer(st)) {
		json_int_t n = json_integer_value(st);
		if (n < 400 || n > 599)
			return -1;
		snprintf(out, 4, "%d", (int)n);
		return 0;
	}
	if (!json_is_string(st) || json_string_length(st) != 3)
		return -1;
	snprintf(buf, sizeof(buf), "%s", json_string_value(st));
	if (buf[0] != '4' && buf[0] != '5')
		return -1;
	if (toupper((unsigned char)buf[1]) == 'X' && toupper((unsigned char)buf[2]) == 'X')
		buf[1] = buf[2] = 'X';
	else if (!isdigit((unsigned char)buf[1]) || !isdigit((unsigned char)buf[2]))
		return -1;
	memcpy(out, buf, 4);
	return 0;
}

/* `errors`: the error responses a consumer handles, {status, reads, response_headers}. */
static int validate_errors(const struct valid *v, const json_t *op, const char *field)
{
	char f[FIELD_MAX], st[4], other[4];
	json_t *es = json_object_get(op, "errors");
	if (!es)
		return 0;
	if (!json_is_array(es) || json_array_size(es) > CONTRACT_MAX_ERRORS)
		return valid_value(v, op, "errors", field,
				   "'errors' must be a list of at most %d error responses handled ({status, reads})",
				   CONTRACT_MAX_ERRORS);
	size_t i, j;
	json_t *x, *o;
	json_array_foreach(es, i, x) {
		snprintf(f, sizeof(f), "%s.errors[%zu]", field, i);
		if (!json_is_object(x))
			return valid_index(v, es, i, f, "an error response must be a mapping {status, reads}");
		static const char *const keys[] = {"status", "reads", "response_headers", "description", NULL};
		if (only_keys(v, x, f, keys, "an error response has status, reads, response_headers"))
			return -1;
		json_t *s = json_object_get(x, "status");
		if (!s)
			return valid_node(v, x, f, "an error response needs a 'status' (such as 404 or 5XX)");
		if (error_status(s, st))
			return valid_value(v, x, "status", f, "'status' must be an error status: 400 to 599, 4XX or 5XX");
		for (j = 0; j < i && (o = json_array_get(es, j)); j++)
			if (!error_status(json_object_get(o, "status"), other) && !strcmp(st, other))
				return valid_value(v, x, "status", f, "status %s is listed twice", st);
		if (validate_reads(v, x, f) || validate_response_headers(v, x, f))
			return -1;
	}
	return 0;
}

static int validate_operation(const struct valid *v, const json_t *root, const json_t *op, const char *field)
{
	char f[FIELD_MAX];
	static const char *const keys[] = {"method", "path", "parameters", "reads", "response_headers", "sends",
					   "errors", "description", NULL};
	if (only_keys(v, op, field, keys,
		      "an operation has method, path, parameters, reads, response_headers, sends, errors"))
		return -1;
	json_t *m = json_object_get(op, "method");
	if (!json_is_string(m))
		return m ? valid_value(v, op, "method", field, "'method' must be a string such as GET")
			 : valid_node(v, op, field, "an operation needs a 'method' (GET, POST, ...)");
	int known = 0;
	for (size_t i = 0; http_methods[i]; i++)
		known |= !strcasecmp(json_string_value(m), http_methods[i]);
	if (!known)
		return valid_value(v, op, "method", field, "unknown method '%s' (GET, PUT, POST, DELETE, PATCH, ...)",
				   json_string_value(m));
	json_t *p = json_object_get(op, "path");
	if (!json_is_string(p))
		return p ? valid_value(v, op, "path", field, "'path' must be a path template such as /items/{id}")
			 : valid_node(v, op, field, "an operation needs a 'path' template such as /items/{id}");
	if (json_string_value(p)[0] != '/' || strlen(json_string_value(p)) > CONTRACT_MAX_PATH)
		return valid_value(v, op, "path", field, "a path template starts with '/' (at most %d bytes)",
				   CONTRACT_MAX_PATH);
	if (validate_parameters(v, root, op, json_string_value(p), field) || validate_reads(v, op, field) ||
	    validate_response_headers(v, op, field) || validate_errors(v, op, field))
		return -1;
	json_t *sends = json_object_get(op, "sends");
	if (sends) {
		snprintf(f, sizeof(f), "%s.sends", field);
		if (!json_is_object(sends) && !json_is_boolean(sends))
			return valid_value(v, op, "sends", field, "'sends' must be a JSON Schema of the request body");
		if (openapi_validate_schema(v, root, sends, f))
			return -1;
	}
	return 0;
}

static int validate_consumes(const struct valid *v, const json_t *root, const json_t *cons)
{
	char f[FIELD_MAX];
	if (!json_is_object(cons))
		return valid_value(v, root, "consumes", "consumes", "'consumes' must map provider services to the operations called");
	if (json_object_size(cons) > CONTRACT_MAX_SERVICES)
		return valid_value(v, root, "consumes", "consumes", "more than %d services", CONTRACT_MAX_SERVICES);
	const char *svc;
	json_t *ops;
	json_object_foreach((json_t *)cons, svc, ops) {
		snprintf(f, sizeof(f), "consumes.%s", svc);
		if (!name_object_ok(svc))
			return valid_key(v, cons, svc, f, "'%s' is not a service name (expected %s)", svc,
					 name_rule(NAME_OBJECT));
		if (!json_is_array(ops) || !json_array_size(ops) || json_array_size(ops) > CONTRACT_MAX_OPERATIONS)
			return valid_value(v, cons, svc, f, "list the operations called (1 to %d)", CONTRACT_MAX_OPERATIONS);
		size_t i;
		json_t *op;
		json_array_foreach(ops, i, op) {
			snprintf(f, sizeof(f), "consumes.%s[%zu]", svc, i);
			if (!json_is_object(op))
				return valid_index(v, ops, i, f, "an operation must be a mapping with method and path");
			if (validate_operation(v, root, op, f))
				return -1;
		}
	}
	return 0;
}

/* Validates the root. When `provides` was a file path, `api` is that file's document, checked
 * with its own positions (vapi); otherwise `provides` must be inline. */
static int validate_root(const struct valid *v, const json_t *root, const json_t *api, const struct valid *vapi)
{
	if (!json_is_object(root))
		return valid_node(v, root, "", "a contract must be a mapping (service, provides, consumes)");
	static const char *const keys[] = {"service", "version", "description", "provides", "consumes", "$defs", NULL};
	if (only_keys(v, root, "", keys, "a contract has service, version, description, provides, consumes, $defs"))
		return -1;
	/* $defs: schemas the `sends` of several operations share, as "#/$defs/Name" */
	json_t *defs = json_object_get(root, "$defs");
	if (defs) {
		if (!json_is_object(defs))
			return valid_value(v, root, "$defs", "$defs", "'$defs' must map names to JSON Schemas");
		const char *k;
		json_t *d;
		json_object_foreach(defs, k, d) {
			char f[FIELD_MAX];
			snprintf(f, sizeof(f), "$defs.%s", k);
			if (openapi_validate_schema(v, root, d, f))
				return -1;
		}
	}
	json_t *svc = json_object_get(root, "service");
	if (svc && (!json_is_string(svc) || !name_ok_n(NAME_OBJECT, json_string_value(svc), json_string_length(svc))))
		return valid_value(v, root, "service", "service", "'service' must be a service name (%s)",
				   name_rule(NAME_OBJECT));
	static const char *const strs[] = {"version", "description"};
	for (size_t i = 0; i < 2; i++) {
		json_t *x = json_object_get(root, strs[i]);
		if (x && !json_is_string(x))
			return valid_value(v, root, strs[i], strs[i], "'%s' must be a string", strs[i]);
	}
	json_t *prov = json_object_get(root, "provides");
	if (api ? openapi_validate(vapi, api, "") : prov ? openapi_validate(v, prov, "provides") : 0)
		return -1;
	json_t *cons = json_object_get(root, "consumes");
	if (cons && validate_consumes(v, root, cons))
		return -1;
	if (!prov && !cons)
		return valid_node(v, root, "", "a contract needs 'provides', 'consumes' or both");
	return 0;
}

static contract *wrap(json_t *json)
{
	contract *c = calloc(1, sizeof(*c));
	if (!c) {
		json_decref(json);
		return NULL;
	}
	c->json = json;
	return c;
}

static int load_from_doc(const doc *d, const char *basedir, contract **out, struct err *e)
{
	struct valid v = {d, doc_name(d), e};
	if (doc_count(d) != 1)
		return err_set(e, "%s: a contract file holds exactly one document", doc_name(d));
	const json_t *root = doc_root(d, 0);
	if (!json_is_object(root))
		return valid_node(&v, root, "", "a contract must be a mapping (service, provides, consumes)");
	json_t *prov = json_object_get(root, "provides");
	doc *api = NULL;
	struct valid vapi = {0};
	json_t *copy = NULL;
	if (json_is_string(prov)) {
		const char *p = json_string_value(prov);
		if (!basedir)
			return valid_value(&v, root, "provides", "provides",
					   "'provides' is a file path but there is no directory to resolve it in: inline the OpenAPI document");
		char full[4096];
		if (p[0] == '/')
			snprintf(full, sizeof(full), "%s", p);
		else
			snprintf(full, sizeof(full), "%s/%s", basedir, p);
		struct err le;
		if (doc_load(full, &api, &le))
			return valid_value(&v, root, "provides", "provides", "%s", le.msg);
		if (doc_count(api) != 1) {
			doc_free(api);
			return valid_value(&v, root, "provides", "provides", "'%s' must hold exactly one document", full);
		}
		vapi = (struct valid){api, doc_name(api), e};
		copy = json_deep_copy(root);
		if (copy)
			json_object_set_new(copy, "provides", json_deep_copy(doc_root(api, 0)));
	} else if (prov && !json_is_object(prov)) {
		return valid_value(&v, root, "provides", "provides",
				   "'provides' must be an OpenAPI document or the path of one");
	}
	int rc = validate_root(&v, root, api ? doc_root(api, 0) : NULL, &vapi);
	doc_free(api);
	if (rc) {
		json_decref(copy);
		return -1;
	}
	if (!copy)
		copy = json_deep_copy(root);
	if (!copy || !(*out = wrap(copy)))
		return err_set(e, "out of memory loading a contract");
	return 0;
}

int contract_parse(const char *name, const char *text, size_t len, const char *basedir, contract **out,
		   struct err *e)
{
	doc *d;
	if (doc_parse(name, text, len, &d, e))
		return -1;
	int rc = load_from_doc(d, basedir, out, e);
	doc_free(d);
	return rc;
}

static void dir_of(const char *path, char *out, size_t size)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(out, size, ".");
	else if (slash == path)
		snprintf(out, size, "/");
	else
		snprintf(out, size, "%.*s", (int)(slash - path), path);
}

int contract_load(const char *path, contract **out, struct err *e)
{
	doc *d;
	char dir[4096];
	if (doc_load(path, &d, e))
		return -1;
	dir_of(path, dir, sizeof(dir));
	int rc = load_from_doc(d, dir, out, e);
	doc_free(d);
	return rc;
}

int contract_from_json(const json_t *value, const char *name, contract **out, struct err *e)
{
	struct valid v = {NULL, name ? name : "contract", e};
	json_t *prov = json_object_get(value, "provides");
	if (json_is_string(prov))
		return valid_value(&v, value, "provides", "provides",
				   "'provides' must be inline in a stored contract (the file '%s' cannot be read here)",
				   json_string_value(prov));
	if (prov && !json_is_object(prov))
		return valid_value(&v, value, "provides", "provides", "'provides' must be an OpenAPI document");
	if (validate_root(&v, value, NULL, NULL))
		return -1;
	json_t *copy = json_deep_copy(value);
	if (!copy || !(*out = wrap(copy)))
		return err_set(e, "out of memory loading a contract");
	return 0;
}

json_t *contract_to_json(const contract *c)
{
	return json_incref(c->json);
}

void contract_free(contract *c)
{
	if (!c)
		return;
	json_decref(c->json);
	free(c);
}

const char *contract_service(const contract *c)
{
	return json_string_value(json_object_get(c->json, "service"));
}

const json_t *contract_provides(const contract *c)
{
	return json_object_get(c->json, "provides");
}

int contract_consumes(const contract *c, const char *service)
{
	return json_object_get(json_object_get(c->json, "consumes"), service) != NULL;
}

size_t contract_consumes_count(const contract *c)
{
	return json_object_size(json_object_get(c->json, "consumes"));
}

const char *contract_consumes_name(const contract *c, size_t i)
{
	const char *k;
	json_t *x;
	size_t n = 0;
	json_object_foreach(json_object_get(c->json, "consumes"), k, x)
		if (n++ == i)
			return k;
	return NULL;
}

int contract_load_openapi(const char *path, json_t **out, struct err *e)
{
	doc *d;
	if (doc_load(path, &d, e))
		return -1;
	const json_t *root = doc_root(d, 0);
	int rc;
	if (doc_count(d) == 1 && json_is_object(root) && json_object_get(root, "openapi")) {
		struct valid v = {d, doc_name(d), e};
		rc = openapi_validate(&v, root, "");
		if (!rc)
			*out = json_deep_copy(root);
		doc_free(d);
		return rc;
	}
	doc_free(d);
	contract *c;
	if (contract_load(path, &c, e))
		return -1;
	const json_t *api = contract_provides(c);
	rc = api ? 0 : err_set(e, "%s: neither an OpenAPI document nor a contract with 'provides'", path);
	if (!rc)
		*out = json_incref((json_t *)api);
	contract_free(c);
	return rc;
}

int contract_lists_parameters(const contract *c, const char *service)
{
	size_t i;
	json_t *op;
	json_array_foreach(json_object_get(json_object_get(c->json, "consumes"), service), i, op)
		if (json_object_get(op, "parameters"))
			return 1;
	return 0;
}

/* Appends a then b (either may be NULL) to out, cutting at size. */
static void append(char *out, size_t size, size_t *len, const char *a, const char *b)
{
	const char *parts[2] = {a, b};
	for (int i = 0; i < 2; i++)
		for (const char *q = parts[i] ? parts[i] : ""; *q && *len + 1 < size; q++)
			out[(*len)++] = *q;
	out[*len] = 0;
}

static void alt_label(const json_t *alt, char *out, size_t size);

void contract_reads_summary(const contract *c, const char *provider, char *out, size_t size)
{
	size_t len = 0, i, j, k;
	json_t *op, *rd, *alt;
	char lab[CONTRACT_MAX_PATH + 64];
	out[0] = 0;
	json_array_foreach(json_object_get(json_object_get(c->json, "consumes"), provider), i, op) {
		append(out, size, &len, len ? "; " : "", json_string_value(json_object_get(op, "method")));
		append(out, size, &len, " ", json_string_value(json_object_get(op, "path")));
		append(out, size, &len, " reads ", NULL);
		json_t *reads = json_object_get(op, "reads");
		if (!json_array_size(reads))
			append(out, size, &len, "nothing", NULL);
		json_array_foreach(reads, j, rd) {
			json_t *any = json_object_get(rd, "any_of");
			if (!any) {
				append(out, size, &len, j ? ", " : "", json_string_value(json_object_get(rd, "path")));
				continue;
			}
			append(out, size, &len, j ? ", " : "", "any of (");
			json_array_foreach(any, k, alt) {
				alt_label(alt, lab, sizeof(lab));
				append(out, size, &len, k ? " | " : "", lab);
			}
			append(out, size, &len, ")", NULL);
		}
	}
}

/* ---- the check -------------------------------------------------------------------------- */

#define WHY_MAX 400

/* Where reads are checked: the provider operation's responses that answer for what the
 * consumer handles (every 2xx, or the one error status or range). */
struct read_ctx {
	const json_t *api;
	const json_t *responses; /* the provider operation's responses */
	json_t *statuses;        /* keys of `responses` every read must hold in */
	char none[160];          /* why nothing holds when statuses is empty */
};

/* The provider's responses that answer for `status` (NULL: success): every 2xx status; for an
 * error status its own code, else its range (4XX), else `default`; for a range every status
 * in it, else `default`. */
static void read_ctx_init(struct read_ctx *rc, const json_t *api, const json_t *responses, const char *status)
{
	const char *st;
	json_t *r;
	rc->api = api;
	rc->responses = responses;
	rc->statuses = json_array();
	if (!status) {
		json_object_foreach((json_t *)responses, st, r)
			if (openapi_is_success(st))
				json_array_append_new(rc->statuses, json_string(st));
		snprintf(rc->none, sizeof(rc->none), "the operation declares no success (2xx) response");
		return;
	}
	snprintf(rc->none, sizeof(rc->none), "the provider declares no %s response for this operation (nor a range or default)",
		 status);
	char range[4] = {status[0], 'X', 'X', 0};
	if (status[1] != 'X') {
		const char *pick = json_object_get(responses, status) ? status
				   : json_object_get(responses, range) ? range
				   : json_object_get(responses, "default") ? "default"
									    : NULL;
		if (pick)
			json_array_append_new(rc->statuses, json_string(pick));
		return;
	}
	json_object_foreach((json_t *)responses, st, r)
		if (st[0] == status[0] && strcmp(st, "default"))
			json_array_append_new(rc->statuses, json_string(st));
	if (!json_array_size(rc->statuses) && json_object_get(responses, "default"))
		json_array_append_new(rc->statuses, json_string("default"));
}

static void read_ctx_release(struct read_ctx *rc)
{
	json_decref(rc->statuses);
}

/* Splits "/a/b/~1c" into unescaped segments; returns the count (at most CONTRACT_MAX_SEGMENTS). */
static size_t split_path(const char *path, char segs[][CONTRACT_MAX_PATH + 1], const char **ptrs)
{
	size_t n = 0;
	const char *p = path;
	while (*p == '/' && p[1] && n < CONTRACT_MAX_SEGMENTS) {
		p++;
		size_t len = 0;
		while (*p && *p != '/' && len < CONTRACT_MAX_PATH) {
			char ch = *p++;
			if (ch == '~' && (*p == '0' || *p == '1'))
				ch = *p++ == '0' ? '~' : '/';
			segs[n][len++] = ch;
		}
		segs[n][len] = 0;
		ptrs[n] = segs[n];
		n++;
	}
	return n;
}

static unsigned read_types(const json_t *rd)
{
	json_t *t = json_object_get(rd, "type");
	unsigned bits = 0;
	if (json_is_string(t))
		bits = schema_type_bit(json_string_value(t));
	else if (json_is_array(t)) {
		size_t i;
		json_t *x;
		json_array_foreach(t, i, x)
			bits |= schema_type_bit(json_string_value(x));
	}
	if (!bits)
		return SCHEMA_T_ANY;
	if (bits & SCHEMA_T_NUMBER)
		bits |= SCHEMA_T_INTEGER;
	return bits;
}

/* One read against every response of the context. */
static int check_one(const struct read_ctx *rc, const json_t *rd, char *why, size_t whysize)
{
	char (*segs)[CONTRACT_MAX_PATH + 1] = malloc(CONTRACT_MAX_SEGMENTS * sizeof(*segs));
	const char *ptrs[CONTRACT_MAX_SEGMENTS];
	if (!segs) {
		snprintf(why, whysize, "out of memory");
		return 0;
	}
	size_t n = split_path(json_string_value(json_object_get(rd, "path")), segs, ptrs);
	unsigned types = read_types(rd);
	int optional = json_is_true(json_object_get(rd, "optional"));
	int ok = 1;
	size_t i;
	json_t *stv;
	json_array_foreach(rc->statuses, i, stv) {
		const char *st = json_string_value(stv);
		const json_t *resp = openapi_deref(rc->api, json_object_get(rc->responses, st));
		const json_t *schema = openapi_json_schema(json_object_get(resp, "content"), NULL);
		char w[WHY_MAX];
		if (!schema) {
			snprintf(why, whysize, "status %s declares no JSON body", st);
			ok = 0;
			break;
		}
		if (!schema_guarantees(rc->api, schema, ptrs, n, types, optional, w, sizeof(w))) {
			snprintf(why, whysize, "%s (status %s)", w, st);
			ok = 0;
			break;
		}
	}
	if (ok && !json_array_size(rc->statuses)) {
		snprintf(why, whysize, "%s", rc->none);
		ok = 0;
	}
	free(segs);
	return ok;
}

static int check_alternative(const struct read_ctx *rc, const json_t *alt, char *why, size_t whysize)
{
	json_t *all = json_object_get(alt, "all_of");
	if (!all)
		return check_one(rc, alt, why, whysize);
	size_t i;
	json_t *rd;
	json_array_foreach(all, i, rd)
		if (!check_one(rc, rd, why, whysize))
			return 0;
	return 1;
}

static void alt_label(const json_t *alt, char *out, size_t size)
{
	json_t *all = json_object_get(alt, "all_of");
	const json_t *first = all ? json_array_get(all, 0) : alt;
	const char *p = json_string_value(json_object_get(first, "path"));
	if (all && json_array_size(all) > 1)
		snprintf(out, size, "%s and %zu more", p ? p : "?", json_array_size(all) - 1);
	else
		snprintf(out, size, "%s", p ? p : "?");
}

static void check_reads(const struct read_ctx *rc, const json_t *reads, const char *oplabel, const char *status,
			json_t *findings, int *fallbacks)
{
	size_t i;
	json_t *rd;
	char why[WHY_MAX], label[CONTRACT_MAX_PATH + 64];
	json_array_foreach(reads, i, rd) {
		json_t *any = json_object_get(rd, "any_of");
		if (!any) {
			const char *p = json_string_value(json_object_get(rd, "path"));
			struct report_loc loc = {oplabel, status, "response", p};
			if (!check_one(rc, rd, why, sizeof(why)))
				report_add(findings, REPORT_BREAKING, &loc, "reads %s, not guaranteed: %s", p, why);
			continue;
		}
		struct buf reasons;
		buf_init(&reasons, 4096);
		size_t j, hit = (size_t)-1;
		json_t *alt;
		json_array_foreach(any, j, alt) {
			if (check_alternative(rc, alt, why, sizeof(why))) {
				hit = j;
				break;
			}
			alt_label(alt, label, sizeof(label));
			if (buf_addf(&reasons, "%s%zu) %s: %s", reasons.len ? "; " : "", j + 1, label, why)) {
				/* the reasons are long enough to act on; drop the rest */
			}
		}
		alt_label(json_array_get(any, 0), label, sizeof(label));
		struct report_loc loc = {oplabel, status, "response", label};
		if (hit == (size_t)-1) {
			report_add(findings, REPORT_BREAKING, &loc, "reads one of %zu alternatives, none is guaranteed: %s",
				   json_array_size(any), reasons.data);
		} else if (hit > 0) {
			char used[CONTRACT_MAX_PATH + 64];
			alt_label(alt, used, sizeof(used));
			report_add(findings, REPORT_WARNING, &loc, "holds only through fallback alternative %zu (%s): %s",
				   hit + 1, used, reasons.data);
			(*fallbacks)++;
		}
		buf_release(&reasons);
	}
}

static void check_sends(const json_t *api, const json_t *op, const contract *consumer, const json_t *sends,
			const char *oplabel, json_t *findings)
{
	const json_t *rb = openapi_deref(api, json_object_get(op, "requestBody"));
	struct report_loc loc = {oplabel, NULL, "request", NULL};
	if (!sends) {
		if (rb && json_is_true(json_object_get(rb, "required")))
			report_add(findings, REPORT_WARNING, &loc,
				   "the provider requires a request body and the consumer does not declare what it sends");
		return;
	}
	if (!rb) {
		report_add(findings, REPORT_BREAKING, &loc, "sends a request body but the provider's operation accepts none");
		return;
	}
	const char *media = NULL;
	const json_t *schema = openapi_json_schema(json_object_get(rb, "content"), &media);
	if (!schema) {
		report_add(findings, REPORT_BREAKING, &loc, "sends a JSON body but the provider declares no JSON request schema");
		return;
	}
	schema_compare(consumer->json, sends, api, schema, SCHEMA_REQUEST, &loc, findings);
}

/* One response header read against every response of the context: declared, required (or
 * the read optional), and of a type within the read's. */
static int check_header(const struct read_ctx *rc, const json_t *h, char *why, size_t whysize)
{
	const char *name = json_string_value(json_object_get(h, "name"));
	int optional = json_is_true(json_object_get(h, "optional"));
	unsigned types = read_types(h);
	size_t i;
	json_t *stv;
	if (!json_array_size(rc->statuses)) {
		snprintf(why, whysize, "%s", rc->none);
		return 0;
	}
	json_array_foreach(rc->statuses, i, stv) {
		const char *st = json_string_value(stv);
		const json_t *resp = openapi_deref(rc->api, json_object_get(rc->responses, st));
		if (!strcasecmp(name, "Content-Type")) {
			/* OpenAPI describes it by the media types, not as a header */
			if (!json_object_size(json_object_get(resp, "content")) && !optional) {
				snprintf(why, whysize, "status %s declares no content, so no Content-Type", st);
				return 0;
			}
			continue;
		}
		const json_t *hobj = openapi_response_header(rc->api, resp, name);
		if (!hobj) {
			if (optional)
				continue;
			snprintf(why, whysize, "status %s does not declare it", st);
			return 0;
		}
		if (!optional && !json_is_true(json_object_get(hobj, "required"))) {
			snprintf(why, whysize, "it is optional in the provider's status %s response (no 'required: true')", st);
			return 0;
		}
		char w[WHY_MAX];
		if (!schema_guarantees(rc->api, openapi_param_schema(hobj), NULL, 0, types, 0, w, sizeof(w))) {
			snprintf(why, whysize, "status %s: the value %s", st, !strncmp(w, "/ ", 2) ? w + 2 : w);
			return 0;
		}
	}
	return 1;
}

static void check_headers(const struct read_ctx *rc, const json_t *hs, const char *oplabel, const char *status,
			  json_t *findings)
{
	size_t i;
	json_t *h;
	char why[WHY_MAX];
	json_array_foreach(hs, i, h) {
		const char *name = json_string_value(json_object_get(h, "name"));
		struct report_loc loc = {oplabel, status, "header", name};
		if (!check_header(rc, h, why, sizeof(why)))
			report_add(findings, REPORT_BREAKING, &loc, "reads response header '%s', not guaranteed: %s", name, why);
	}
}

/* The error responses a consumer handles: each one's reads and headers, like the 2xx ones. */
static void check_errors(const json_t *api, const json_t *responses, const json_t *errors, const char *oplabel,
			 json_t *findings, int *fallbacks)
{
	size_t i;
	json_t *x;
	json_array_foreach(errors, i, x) {
		char st[4];
		if (error_status(json_object_get(x, "status"), st))
			continue; /* validated on load */
		struct read_ctx rc;
		read_ctx_init(&rc, api, responses, st);
		json_t *reads = json_object_get(x, "reads"), *hs = json_object_get(x, "response_headers");
		if (!json_array_size(rc.statuses) && !json_array_size(reads) && !json_array_size(hs)) {
			struct report_loc loc = {oplabel, st, "response", NULL};
			report_add(findings, REPORT_WARNING, &loc,
				   "handles status %s, which the provider does not declare for this operation", st);
		}
		check_reads(&rc, reads, oplabel, st, findings, fallbacks);
		check_headers(&rc, hs, oplabel, st, findings);
		read_ctx_release(&rc);
	}
}

/* OpenAPI: header parameters named so are described elsewhere and ignored. */
static int ignored_header(const char *in, const char *name)
{
	return !strcmp(in, "header") &&
	       (!strcasecmp(name, "Accept") || !strcasecmp(name, "Content-Type") || !strcasecmp(name, "Authorization"));
}

/* The schema of what a consumer sends for a parameter: its `schema`, or {type: ...} (new
 * reference). */
static json_t *sent_schema(const json_t *p)
{
	json_t *s = json_object_get(p, "schema");
	if (s)
		return json_incref(s);
	return json_pack("{s:O}", "type", json_object_get(p, "type"));
}

/* The parameters a consumer sends against those the provider's operation declares. A
 * consumer that lists its parameters is held to the list; one that lists none (contracts
 * written before parameters could be declared) cannot be checked, so a required parameter is
 * refused unless `since` (a provider release the consumer is known to work with) requires it
 * too: only a new one is unknown. */
static void check_params(const json_t *api, const char *method, const json_t *op, const contract *consumer,
			 const contract *since, const char *oplabel, json_t *findings)
{
	const char *path = json_string_value(json_object_get(op, "path"));
	json_t *theirs = openapi_operation_parameters(api, method, path);
	const json_t *sp = since ? contract_provides(since) : NULL;
	json_t *before = sp ? openapi_operation_parameters(sp, method, path) : NULL;
	const json_t *listed = json_object_get(op, "parameters");
	json_t *mine = json_object();
	char key[CONTRACT_MAX_PATH + CONTRACT_MAX_FIELD_NAME + 16];
	size_t i;
	json_t *x;
	json_array_foreach(listed, i, x) {
		openapi_param_key(json_string_value(json_object_get(x, "in")), json_string_value(json_object_get(x, "name")),
				  path, key, sizeof(key));
		json_object_set(mine, key, x);
	}
	const char *k;
	json_object_foreach(theirs, k, x) {
		const json_t *p = json_object_get(x, "p");
		const char *in = json_string_value(json_object_get(p, "in"));
		const char *name = json_string_value(json_object_get(p, "name"));
		if (ignored_header(in, name))
			continue;
		struct report_loc loc = {oplabel, NULL, "parameter", json_string_value(json_object_get(x, "label"))};
		json_t *sent = json_object_get(mine, k);
		if (sent) {
			json_t *s = sent_schema(sent);
			schema_compare(consumer->json, s, api, openapi_param_schema(p), SCHEMA_REQUEST, &loc, findings);
			json_decref(s);
			json_object_del(mine, k);
			continue;
		}
		if (!strcmp(in, "path") || !json_is_true(json_object_get(p, "required")))
			continue; /* a path parameter is in the path the consumer calls */
		if (listed) {
			report_add(findings, REPORT_BREAKING, &loc,
				   "the provider requires %s parameter '%s', and the consumer's parameters do not list it: it does not send it",
				   in, name);
			continue;
		}
		const json_t *was = json_object_get(json_object_get(before, k), "p");
		const char *sver = since ? json_string_value(json_object_get(since->json, "version")) : NULL;
		const char *ssvc = since ? contract_service(since) : NULL;
		if (was && json_is_true(json_object_get(was, "required"))) {
			report_add(findings, REPORT_INFO, &loc,
				   "required %s parameter '%s' assumed sent: the consumer declares no parameters, and works with %s%s%s, which requires it too",
				   in, name, ssvc ? ssvc : "the provider", sver ? "@" : "", sver ? sver : "");
			continue;
		}
		const json_t *ps = openapi_param_schema(p);
		const char *type = json_string_value(json_object_get(ps, "type"));
		/* the example to declare: the provider's schema itself when it says more than a type
		 * (and stands alone), so that following the advice passes */
		char value[240];
		char *dumped = json_is_object(ps) && json_object_size(ps) > (type ? 1u : 0u) ? json_dumps(ps, JSON_COMPACT) : NULL;
		if (dumped && !strstr(dumped, "$ref") && strlen(dumped) < 200)
			snprintf(value, sizeof(value), "schema: %s", dumped);
		else
			snprintf(value, sizeof(value), "type: %s", type ? type : "string");
		free(dumped);
		char news[200] = "";
		if (since)
			snprintf(news, sizeof(news), " (new since %s%s%s)", ssvc ? ssvc : "the provider", sver ? "@" : "",
				 sver ? sver : "");
		report_add(findings, REPORT_BREAKING, &loc,
			   "the provider requires %s parameter '%s'%s, and the consumer declares no parameters for this operation, "
			   "so the gate cannot tell whether it sends it: list what it sends in its contract, e.g. "
			   "parameters: [{name: %s, in: %s, %s}]",
			   in, name, news, name, in, value);
	}
	json_object_foreach(mine, k, x) {
		const char *in = json_string_value(json_object_get(x, "in"));
		if (!strcmp(in, "path"))
			continue;
		char label[CONTRACT_MAX_FIELD_NAME + 16];
		snprintf(label, sizeof(label), "/%s/%s", in, json_string_value(json_object_get(x, "name")));
		struct report_loc loc = {oplabel, NULL, "parameter", label};
		report_add(findings, REPORT_WARNING, &loc, "sends %s parameter '%s', which the provider does not declare: it may be ignored",
			   in, json_string_value(json_object_get(x, "name")));
	}
	json_decref(mine);
	json_decref(theirs);
	json_decref(before);
}

json_t *contract_check(const char *provider_service, const contract *provider, const contract *consumer)
{
	return contract_check_since(provider_service, provider, consumer, NULL);
}

json_t *contract_check_since(const char *provider_service, const contract *provider, const contract *consumer,
			     const contract *since)
{
	json_t *findings = json_array();
	int fallbacks = 0;
	const json_t *ops = json_object_get(json_object_get(consumer->json, "consumes"), provider_service);
	const json_t *api = provider ? contract_provides(provider) : NULL;
	size_t i;
	json_t *op;
	json_array_foreach(ops, i, op) {
		char m[16], label[CONTRACT_MAX_PATH + 32];
		const char *meth = json_string_value(json_object_get(op, "method"));
		const char *path = json_string_value(json_object_get(op, "path"));
		size_t k;
		for (k = 0; meth[k] && k + 1 < sizeof(m); k++)
			m[k] = (char)toupper((unsigned char)meth[k]);
		m[k] = 0;
		snprintf(label, sizeof(label), "%s %s", m, path);
		struct report_loc loc = {label, NULL, "operation", NULL};
		const json_t *pop = api ? openapi_operation(api, m, path, NULL) : NULL;
		if (!pop) {
			report_add(findings, REPORT_BREAKING, &loc, "%s is not provided by %s%s", label, provider_service,
				   api ? "" : " (its contract declares no API)");
			continue;
		}
		const json_t *responses = json_object_get(pop, "responses");
		struct read_ctx rc;
		read_ctx_init(&rc, api, responses, NULL);
		check_params(api, m, op, consumer, since, label, findings);
		check_reads(&rc, json_object_get(op, "reads"), label, NULL, findings, &fallbacks);
		check_headers(&rc, json_object_get(op, "response_headers"), label, NULL, findings);
		read_ctx_release(&rc);
		check_sends(api, pop, consumer, json_object_get(op, "sends"), label, findings);
		check_errors(api, responses, json_object_get(op, "errors"), label, findings, &fallbacks);
	}
	size_t nb = report_count(findings, REPORT_BREAKING);
	const char *cname = contract_service(consumer);
	const char *pver = provider ? json_string_value(json_object_get(provider->json, "version")) : NULL;
	const char *cver = json_string_value(json_object_get(consumer->json, "version"));
	return json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s, s:b, s:i, s:o}", "kind", "check", "provider",
			 provider_service, "provider_version", pver, "consumer", cname, "consumer_version", cver,
			 "verdict", nb ? "refused" : "ok", "uses", ops != NULL, "fallbacks", fallbacks, "findings",
			 findings);
}
