/*
 * client: what every command that talks to the control plane shares: the server's address,
 * the token, the output format (-o text|json), calls with uniform error handling and exit
 * codes (commands.h).
 *
 * The CA that verifies an https server: --cacert FILE, $SLUICE_CACERT, else the system's;
 * verification is never off.
 *
 * The server: --server URL, else $SLUICE_SERVER, else `server` in the config file, else
 * http://127.0.0.1:7070. The token, sent as "Authorization: Bearer TOKEN": $SLUICE_TOKEN, else
 * `token` or `token-file` in the config file, else, when the server is on this machine
 * (loopback), the admin token the server wrote in its data directory (util/paths.h), so that
 * a local server needs no setup. The config file (util/paths.h: ~/.config/sluice/config) has
 * lines "key = value" and '#' comments; an unknown key or a malformed line is an error naming
 * FILE:LINE. A token never appears in an error message.
 */
#ifndef SLUICE_CLIENT_H
#define SLUICE_CLIENT_H

#include <getopt.h>
#include <jansson.h>

#include "util/httpc.h"

#define CLIENT_VALUE_MAX 1024

struct client {
	const char *server; /* base URL without a trailing slash */
	const char *cmd;    /* the command's name in usage errors; NULL: argv[0] of client_parse */
	const char *cacert; /* --cacert or $SLUICE_CACERT; NULL: the system's CAs */
	int json;           /* -o json */
	httpc *http;
	/* the config file's values ("" when absent), and whether the token is settled */
	char cfg_server[CLIENT_VALUE_MAX], cfg_token[CLIENT_VALUE_MAX], cfg_token_file[CLIENT_VALUE_MAX];
	char cfg_error[CLIENT_VALUE_MAX + 256];
	int token_done;
	const char *token_from; /* "$SLUICE_TOKEN", "the config file", "PATH" or NULL */
	char token_path[CLIENT_VALUE_MAX];
};

/* Options every client command accepts, for getopt_long tables. */
#define CLIENT_OPT_SERVER 1000
#define CLIENT_OPT_CACERT 1001
#define CLIENT_OPTIONS {"server", required_argument, NULL, CLIENT_OPT_SERVER}, \
		       {"cacert", required_argument, NULL, CLIENT_OPT_CACERT}, \
		       {"output", required_argument, NULL, 'o'},              \
		       {"help", no_argument, NULL, 'h'}
#define CLIENT_NOPTIONS 4 /* entries in CLIENT_OPTIONS */
/* Their help lines, for usage texts. */
#define CLIENT_HELP_SERVER                                                                        \
	"  --server URL   the control plane (default $SLUICE_SERVER or http://127.0.0.1:7070)\n"  \
	"  --cacert FILE  the CA certificate(s) that verify an https server (PEM; default\n"        \
	"                 $SLUICE_CACERT, else the system's)\n"

/* The help lines of the options every client command takes. */
#define CLIENT_HELP                                                                               \
	CLIENT_HELP_SERVER                                                                        \
	"  -o FORMAT      text (default) or json\n"                                               \
	"  -h, --help     this help\n"

/* A command's own option: 0 when taken, nonzero after printing why it is wrong. */
typedef int client_option_fn(int opt, const char *arg, void *ctx);

/*
 * Parses argv with getopt_long: the common options (--server, --cacert, -o, -h) plus `extra`
 * (at most 19, handled by fn with ctx) and `shortopts`. Returns the index of the first operand, or -1
 * after printing the usage (-h: to stdout, *rc EXIT_OK) or an error (*rc EXIT_USAGE).
 */
int client_parse(struct client *c, int argc, char **argv, const char *shortopts,
		 const struct option *extra, client_option_fn *fn, void *ctx, const char *usage,
		 int *rc /* OUT */);

void client_init(struct client *c);
/*
 * Sends "Authorization: VALUE" (e.g. "Bearer <token>") with every later call; NULL stops
 * sending it. The value is copied. Returns 0, or -1 after printing why (a CR, LF or other
 * control character, longer than 8 KiB).
 */
int client_set_authorization(struct client *c, const char *value);
void client_release(struct client *c);
/* Handles --server, --cacert and -o; returns 0 when the option was one of them, -1 when it was
 * not, or after printing why its value is bad (a --cacert file that cannot be read). */
int client_option(struct client *c, int opt, const char *arg);

/* Whether a server URL names this machine (its host is 127.x.x.x, ::1 or localhost; no user
 * information): only then does the CLI send a local server's admin token by itself. */
int client_server_is_local(const char *url);

/* Settles the token (once; client_call does it): returns 0, or an exit code after printing
 * why (a bad config file, an unreadable token file). For calls made with c->http directly. */
int client_token(struct client *c);

/*
 * Calls the API. path starts with "/v1/". On a 2xx answer returns EXIT_OK with *out the
 * decoded body (may be NULL). Otherwise prints the server's error and returns the exit code:
 * EXIT_UNREACHABLE (no answer, 5xx), EXIT_NOTFOUND (404), EXIT_NO (409), EXIT_USAGE (400).
 * When out_status is given, non-2xx answers are not printed and *out gets their body.
 */
int client_call(struct client *c, const char *method, const char *path, const json_t *body,
		json_t **out, long *out_status);

/*
 * For a failed httpc call (rc and e from httpc): prints why the server could not be reached,
 * with what to do (a certificate that did not verify: give --cacert), and returns
 * EXIT_UNREACHABLE.
 */
int client_unreachable(const struct client *c, int rc, const struct err *e);

/* Prints j as indented JSON on stdout. */
void client_print_json(const json_t *j);

#endif
