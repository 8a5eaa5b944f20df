#include "cli/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"

void client_init(struct client *c)
{
	const char *env = getenv("SLUICE_SERVER");
	c->server = env && *env ? env : "http://127.0.0.1:7070";
	c->json = 0;
	c->http = httpc_new(30000, 64u << 20);
	env = getenv("SLUICE_CACERT");
	c->cacert = NULL;
	if (env && *env && c->http && httpc_set_cacert(c->http, env) == 0)
		c->cacert = env;
}

void client_release(struct client *c)
{
	httpc_free(c->http);
	c->http = NULL;
}

int client_set_authorization(struct client *c, const char *value)
{
	char field[HTTPC_MAX_HEADER_LEN + 1];
	struct err e;
	if (value && (size_t)snprintf(field, sizeof(field), "Authorization: %s", value) >= sizeof(field))
		return error("the authorization is longer than %d bytes", HTTPC_MAX_HEADER_LEN);
	const char *const list[] = {value ? field : NULL, NULL};
	if (!c->http)
		return error("the HTTP client could not be created");
	if (httpc_set_headers(c->http, list, &e))
		return error("authorization: %s", e.msg);
	return 0;
}

int client_option(struct client *c, int opt, const char *arg)
{
	if (opt == CLIENT_OPT_SERVER) {
		c->server = arg;
		return 0;
	}
	if (opt == CLIENT_OPT_CACERT) {
		if (access(arg, R_OK))
			return error("--cacert '%s': %s", arg, strerror(errno));
		if (!c->http || httpc_set_cacert(c->http, arg))
			return error("out of memory");
		c->cacert = arg;
		return 0;
	}
	if (opt == 'o') {
		if (!strcmp(arg, "json"))
			c->json = 1;
		else if (!strcmp(arg, "text"))
			c->json = 0;
		else
			return error("-o: expected 'text' or 'json', got '%s'", arg);
		return 0;
	}
	return -1;
}

int client_call(struct client *c, const char *method, const char *path, const json_t *body,
		json_t **out, long *out_status)
{
	char url[4096];
	size_t n = strlen(c->server);
	snprintf(url, sizeof(url), "%.*s%s", (int)(n && c->server[n - 1] == '/' ? n - 1 : n), c->server, path);
	long status = 0;
	json_t *resp = NULL;
	struct err e = {""};
	if (out)
		*out = NULL;
	int rc = httpc_json(c->http, method, url, body, &status, &resp, &e);
	if (rc)
		return client_unreachable(c, rc, &e);
	if (out_status)
		*out_status = status;
	if (status >= 200 && status < 300) {
		if (out)
			*out = resp;
		else
			json_decref(resp);
		return EXIT_OK;
	}
	if (out_status && out) {
		*out = resp;
	} else {
		json_t *errs = json_object_get(resp, "errors");
		if (json_array_size(errs) > 1) {
			size_t i;
			json_t *m;
			json_array_foreach(errs, i, m)
				error("%s", json_string_value(m));
		} else {
			const char *msg = json_string_value(json_object_get(resp, "error"));
			error("%s", msg ? msg : "the server answered without an explanation");
		}
		json_decref(resp);
	}
	return status == 404 ? EXIT_NOTFOUND : status == 409 ? EXIT_NO
	       : status >= 400 && status < 500 ? EXIT_USAGE : EXIT_UNREACHABLE;
}

int client_unreachable(const struct client *c, int rc, const struct err *e)
{
	if (rc == HTTPC_E_VERIFY && c->cacert)
		error("cannot verify the sluice server at %s: %s (the --cacert/SLUICE_CACERT file "
		      "'%s' must hold the certificate of the CA that signed the server's "
		      "certificate, and that certificate must name the URL's host)",
		      c->server, e->msg, c->cacert);
	else if (rc == HTTPC_E_VERIFY)
		error("cannot verify the sluice server at %s: %s (its certificate is not signed by a "
		      "CA this system trusts: give --cacert FILE, or set SLUICE_CACERT, with the CA "
		      "certificate that signed it)",
		      c->server, e->msg);
	else
		error("cannot reach the sluice server at %s: %s (start it with 'sluice server', or "
		      "set --server / SLUICE_SERVER)", c->server, e->msg);
	return EXIT_UNREACHABLE;
}

void client_print_json(const json_t *j)
{
	char *txt = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (txt) {
		puts(txt);
		free(txt);
	}
}
