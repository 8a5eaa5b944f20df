/*
 * client: what every command that talks to the control plane shares: the server's address
 * (--server URL, $SLUICE_SERVER, default http://127.0.0.1:7070), the CA that verifies an
 * https server (--cacert FILE, $SLUICE_CACERT, default the system's; verification is never
 * off), the output format (-o text|json), calls with uniform error handling and exit codes
 * (commands.h).
 */
#ifndef SLUICE_CLIENT_H
#define SLUICE_CLIENT_H

#include <jansson.h>

#include "util/httpc.h"

struct client {
	const char *server; /* base URL without a trailing slash */
	const char *cacert; /* --cacert or $SLUICE_CACERT; NULL: the system's CAs */
	int json;           /* -o json */
	httpc *http;
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
