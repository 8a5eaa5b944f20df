#include "cli/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "http/tls.h"
#include "util/opt.h"
#include "util/paths.h"

/* Strips blanks at both ends, in place. */
static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

/* Reads the config file when there is one; a problem is kept in cfg_error for the first call. */
static void read_config(struct client *c)
{
	char path[CLIENT_VALUE_MAX];
	paths_config_file(path, sizeof(path));
	FILE *f = fopen(path, "r");
	if (!f) {
		if (errno != ENOENT)
			snprintf(c->cfg_error, sizeof(c->cfg_error), "%s: %s", path, strerror(errno));
		return;
	}
	char line[CLIENT_VALUE_MAX + 64];
	int no = 0;
	while (fgets(line, sizeof(line), f)) {
		no++;
		size_t n = strlen(line);
		if (n && line[n - 1] != '\n' && !feof(f)) {
			snprintf(c->cfg_error, sizeof(c->cfg_error), "%s:%d: line longer than %d bytes", path,
				 no, CLIENT_VALUE_MAX);
			break;
		}
		char *l = trim(line);
		if (!*l || *l == '#')
			continue;
		char *eq = strchr(l, '=');
		if (!eq) {
			snprintf(c->cfg_error, sizeof(c->cfg_error), "%s:%d: expected 'key = value'", path, no);
			break;
		}
		*eq = '\0';
		char *key = trim(l), *val = trim(eq + 1);
		char *dst = !strcmp(key, "server")       ? c->cfg_server
			    : !strcmp(key, "token")      ? c->cfg_token
			    : !strcmp(key, "token-file") ? c->cfg_token_file
							 : NULL;
		if (!dst) {
			snprintf(c->cfg_error, sizeof(c->cfg_error),
				 "%s:%d: unknown key '%.64s' (known: server, token, token-file)", path, no, key);
			break;
		}
		snprintf(dst, CLIENT_VALUE_MAX, "%s", val);
	}
	fclose(f);
}

void client_init(struct client *c)
{
	memset(c, 0, sizeof(*c));
	read_config(c);
	const char *env = getenv("SLUICE_SERVER");
	c->server = env && *env ? env : c->cfg_server[0] ? c->cfg_server : "http://127.0.0.1:7070";
	c->json = 0;
	c->http = httpc_new(30000, 64u << 20);
	env = getenv("SLUICE_CACERT");
	c->cacert = NULL;
	if (env && *env && c->http && httpc_set_cacert(c->http, env) == 0)
		c->cacert = env;
}

/* Whether the server URL names this machine by a loopback address. */
int client_server_is_local(const char *url)
{
	/* the authority alone: "https://127.attacker.example/" is not loopback, nor is a URL
	 * with user information ("http://127.0.0.1@evil.example/") */
	const char *h = strstr(url, "://");
	h = h ? h + 3 : url;
	size_t n = strcspn(h, "/?#");
	char auth[300];
	if (!n || n >= sizeof(auth) - 3 || memchr(h, '@', n))
		return 0;
	memcpy(auth, h, n);
	auth[n] = '\0';
	/* without a port, the policy's parser wants one */
	const char *close = strrchr(auth, ']');
	const char *colon = strrchr(auth, ':');
	if (!colon || (close && colon < close) || (auth[0] != '[' && strchr(auth, ':') != colon))
		strcat(auth, ":0");
	return tls_addr_is_loopback(auth);
}

/* The first line of a token file into dst; -1 after printing why. */
static int read_token_file(const char *path, char *dst, size_t len)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
		fprintf(stderr, "sluice: warning: %s can be read by other users (chmod 600 it)\n", path);
	int ok = fgets(dst, (int)len, f) != NULL;
	fclose(f);
	if (!ok)
		return -1;
	char *t = trim(dst);
	memmove(dst, t, strlen(t) + 1);
	return *dst ? 0 : -1;
}

int client_token(struct client *c)
{
	if (c->token_done)
		return 0;
	c->token_done = 1;
	if (c->cfg_error[0])
		return error("%s", c->cfg_error), EXIT_USAGE;
	char token[CLIENT_VALUE_MAX] = "";
	const char *env = getenv("SLUICE_TOKEN");
	if (env && *env) {
		snprintf(token, sizeof(token), "%s", env);
		c->token_from = "$SLUICE_TOKEN";
	} else if (c->cfg_token[0]) {
		snprintf(token, sizeof(token), "%s", c->cfg_token);
		c->token_from = "the config file";
	} else if (c->cfg_token_file[0]) {
		snprintf(c->token_path, sizeof(c->token_path), "%s", c->cfg_token_file);
		if (read_token_file(c->token_path, token, sizeof(token)))
			return error("cannot read the token file %s (token-file in the config file)",
				     c->token_path), EXIT_USAGE;
		c->token_from = c->token_path;
	} else if (client_server_is_local(c->server)) {
		char dir[CLIENT_VALUE_MAX - 16];
		paths_data_dir(dir, sizeof(dir));
		snprintf(c->token_path, sizeof(c->token_path), "%s/admin.token", dir);
		if (read_token_file(c->token_path, token, sizeof(token)) == 0)
			c->token_from = c->token_path;
	}
	if (!token[0])
		return 0;
	char value[CLIENT_VALUE_MAX + 16];
	snprintf(value, sizeof(value), "Bearer %s", token);
	memset(token, 0, sizeof(token));
	int rc = client_set_authorization(c, value);
	memset(value, 0, sizeof(value));
	return rc ? EXIT_USAGE : 0;
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

int client_parse(struct client *c, int argc, char **argv, const char *shortopts,
		 const struct option *extra, client_option_fn *fn, void *ctx, const char *usage,
		 int *rc)
{
	struct option opts[24] = {CLIENT_OPTIONS};
	int n = CLIENT_NOPTIONS;
	for (int i = 0; extra && extra[i].name && n < 23; i++)
		opts[n++] = extra[i];
	memset(&opts[n], 0, sizeof(opts[n]));
	char so[64];
	snprintf(so, sizeof(so), ":ho:%s", shortopts ? shortopts : "");
	optind = 1;
	opterr = 0;
	int opt;
	while ((opt = getopt_long(argc, argv, so, opts, NULL)) != -1) {
		if (opt == 'h') {
			fputs(usage, stdout);
			*rc = EXIT_OK;
			return -1;
		}
		if (opt == '?' || opt == ':') {
			struct err e;
			opt_getopt_error(c->cmd ? c->cmd : argv[0], opt, optopt, argv[optind - 1], &e);
			error("%s", e.msg);
			*rc = EXIT_USAGE;
			return -1;
		}
		if (client_option(c, opt, optarg) == 0)
			continue;
		if (opt == 'o' || opt == CLIENT_OPT_SERVER || opt == CLIENT_OPT_CACERT || !fn ||
		    fn(opt, optarg, ctx)) {
			*rc = EXIT_USAGE;
			return -1;
		}
	}
	return optind;
}

int client_option(struct client *c, int opt, const char *arg)
{
	struct err e;
	if (opt == CLIENT_OPT_SERVER) {
		if (opt_url("--server", arg, &e))
			return error("%s", e.msg);
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
		static const char *const formats[] = {"text", "json", NULL};
		if (opt_enum("-o", arg, formats, &c->json, &e))
			return error("%s", e.msg);
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
	int trc = client_token(c);
	if (trc)
		return trc;
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
		if (status == 401 && c->token_from)
			error("the token came from %s", c->token_from);
		else if (status == 401)
			error("no token was sent: set SLUICE_TOKEN, or 'token' in the config file");
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
