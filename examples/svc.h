/*
 * svc: the small HTTP/1.1 server and client shared by the example services (metadata, profile,
 * web). It is what a real service of the demo needs and no more: keep-alive (HTTP/1.0 too),
 * one thread per connection, injected faults, a log line per request, graceful SIGTERM (stop
 * accepting, finish in-flight requests, exit 0), and a keep-alive pool to call an upstream.
 *
 * Flags every service takes (and their environment equivalents; flags win):
 *   --port N          required; 0 asks the kernel for a free port (printed on the startup line)
 *   --error-rate F    fraction 0..1 of requests answered 500      SLUICE_FAULT_ERROR_RATE
 *   --latency-ms N    added to every request, 0..60000            SLUICE_FAULT_LATENCY_MS
 *   --crash-at-start  exit 1 at once                              SLUICE_FAULT_CRASH (not "0")
 * A feature flag's code path (docs/flags.md, "Guarded rollouts"): with SLUICE_FLAG=KEY, every
 * request evaluates flag KEY over OFREP at SLUICE_OFREP_URL (the base URL an OpenFeature
 * client is given: http://HOST:PORT/v1/envs/ENV) with the token SLUICE_OFREP_TOKEN, its
 * targeting key the request's X-User header (or, without one, a key of its own: anonymous
 * requests are split one by one). A request that gets the flag's on value (true, or the
 * variant "on") takes the flag's code path, whose faults are
 *   SLUICE_FAULT_FLAG_ERROR_RATE F  fraction 0..1 of those requests answered 500
 *   SLUICE_FAULT_FLAG_LATENCY_MS N  added to those requests
 * An evaluation that fails (the server away, an error answer) is off: the client's default.
 * GET /healthz is answered "ok" by svc itself and is exempt from faults, so that a faulty
 * version still starts and takes traffic: catching it is the analysis's job, not the probe's.
 * Every response carries X-Version: vN. Listens on 127.0.0.1 only.
 */
#ifndef SLUICE_EXAMPLES_SVC_H
#define SLUICE_EXAMPLES_SVC_H

#include <jansson.h>
#include <stddef.h>

#define SVC_BODY_MAX (64 * 1024) /* response bodies, ours and upstream's */

struct svc_request {
	const char *method; /* "GET" or "HEAD" (others are refused before the handler) */
	const char *path;   /* without the query */
	const char *query;  /* after '?', "" when none */
};

struct svc_response {
	int status;
	char body[SVC_BODY_MAX];
	size_t len;
};

typedef void (*svc_handler)(const struct svc_request *req, struct svc_response *res);

struct svc_config {
	const char *name; /* "metadata" */
	int version;      /* 1 -> "v1" */
	svc_handler handler;
};

/* Parses flags, serves until SIGTERM/SIGINT, returns the process exit status. */
int svc_main(int argc, char **argv, const struct svc_config *cfg);

/* Sets res to status + the compact JSON of v (takes the reference). */
void svc_json(struct svc_response *res, int status, json_t *v);
/* Sets res to status + {"error": msg}. */
__attribute__((format(printf, 3, 4))) void svc_error(struct svc_response *res, int status,
						     const char *fmt, ...);

/*
 * GET `path` from the upstream whose "host:port" is in environment variable `env` (e.g.
 * SLUICE_UPSTREAM_METADATA), over a pooled keep-alive connection. On success returns 0 with the
 * HTTP status and a NUL-terminated body (at most SVC_BODY_MAX bytes); on failure -1 with a
 * message in err.
 */
int svc_upstream_get(const char *env, const char *path, int *status, char *body, size_t cap,
		     char *err, size_t errn);

#endif
