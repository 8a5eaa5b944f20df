/*
 * api: the control plane's HTTP/JSON API (/v1/...), documented in docs/api.md.
 *
 * Every endpoint is a row of one route table (http/routes.h): method, path pattern, the
 * permission it needs, handler. The middleware chain runs before every handler (the place of
 * authentication, authorization and limits) and a hook after it logs every request that may
 * change something. Handlers validate everything they are given and answer 400 with a precise
 * message before changing anything; each change is one store transaction.
 */
#ifndef SLUICE_API_H
#define SLUICE_API_H

#include <stddef.h>

#include "http/routes.h"
#include "http/server.h"
#include "loop/loop.h"
#include "server/auth.h"
#include "server/catalog.h"
#include "server/executor.h"
#include "server/flags.h"
#include "server/reconcile.h"
#include "server/rollouts.h"
#include "server/runtimes.h"
#include "server/verify.h"
#include "store/store.h"


typedef struct api api;

#define API_MAX_HOSTS 16
#define API_HOST_MAX 256

/* Every request's Host must name this server: the loopback names (localhost, 127.0.0.1, ::1)
 * and the names in api_deps.hosts. Every request that may change something must carry
 * Content-Type: application/json (application/octet-stream for an artifact); otherwise 421
 * or 415, before any handler. */

/* What the handlers use; everything is borrowed and must outlive the api. */
struct api_deps {
	loop *loop;              /* POST /v1/shutdown stops it */
	store *store;
	runtimes *runtimes;      /* instances in status, logs */
	executor *executor;      /* deploy, rollback, retry */
	reconciler *reconciler;  /* its counters in /v1/health */
	verifier *verifier;      /* the latest check of each region */
	const char *artifacts_dir; /* copied */
	const char *const *hosts;  /* NULL-terminated names (a port is ignored), copied; may be NULL */
	catalog *catalog;        /* the manifests; NULL: the api's own over store */
	flags *flags;            /* the flag sets; NULL: the api's own over store */
	rollouts *rollouts;      /* guarded flag rollouts; NULL: their endpoints answer 503 */
	double ofrep_rate;       /* OFREP evaluations per second per token; 0: 100000 */
};

/* NULL when out of memory. */
api *api_new(const struct api_deps *d);
void api_free(api *a);
/* The handler for httpd_start; ctx is the api. */
void api_handle(void *ctx, const struct httpd_req *req, struct httpd_resp *resp);
/* The httpd_opts.on_head hook that must go with api_handle: each request's body limit is its
 * route's (http/routes.h: 4 MiB for JSON, 256 MiB for an artifact), and an artifact upload is
 * streamed to a temporary file in the artifacts directory as it arrives (the middleware's
 * checks and the digest's form are answered on the head, before any byte is written). Without
 * it an upload is answered 500. */
int api_on_head(void *ctx, const struct httpd_req *req, struct httpd_body *b, struct httpd_resp *resp);
/* The notifier whose counters /metrics shows (borrowed; NULL: none). */
struct notifier;
void api_use_notifier(api *a, struct notifier *n);
/* Whether a shutdown asked for the data plane (instances, proxy) to stop too. */
int api_stop_data_plane(const api *a);

/* The route table (for tests and docs: every route declares its permission). */
const struct route *api_routes(size_t *n /* OUT */);

#endif
