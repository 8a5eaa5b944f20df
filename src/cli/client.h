/*
 * client: what every command that talks to the control plane shares: the server's address
 * (--server URL, $SLUICE_SERVER, default http://127.0.0.1:7070), the output format
 * (-o text|json), calls with uniform error handling and exit codes (commands.h).
 */
#ifndef SLUICE_CLIENT_H
#define SLUICE_CLIENT_H

#include <jansson.h>

#include "util/httpc.h"

struct client {
	const char *server; /* base URL without a trailing slash */
	int json;           /* -o json */
	httpc *http;
};

/* Options every client command accepts, for getopt_long tables. */
#define CLIENT_OPT_SERVER 1000
#define CLIENT_OPTIONS {"server", required_argument, NULL, CLIENT_OPT_SERVER}, \
		       {"output", required_argument, NULL, 'o'},              \
		       {"help", no_argument, NULL, 'h'}

void client_init(struct client *c);
/*
 * Sends "Authorization: VALUE" (e.g. "Bearer <token>") with every later call; NULL stops
 * sending it. The value is copied. Returns 0, or -1 after printing why (a CR, LF or other
 * control character, longer than 8 KiB).
 */
int client_set_authorization(struct client *c, const char *value);
void client_release(struct client *c);
/* Handles --server and -o; returns 0 when the option was one of them, -1 on a bad value. */
int client_option(struct client *c, int opt, const char *arg);

/*
 * Calls the API. path starts with "/v1/". On a 2xx answer returns EXIT_OK with *out the
 * decoded body (may be NULL). Otherwise prints the server's error and returns the exit code:
 * EXIT_UNREACHABLE (no answer, 5xx), EXIT_NOTFOUND (404), EXIT_NO (409), EXIT_USAGE (400).
 * When out_status is given, non-2xx answers are not printed and *out gets their body.
 */
int client_call(struct client *c, const char *method, const char *path, const json_t *body,
		json_t **out, long *out_status);

/* Prints j as indented JSON on stdout. */
void client_print_json(const json_t *j);

#endif
