/*
 * server: the control plane, `sluice server`.
 *
 * One thread runs one event loop: the /v1 HTTP API (api.c), and a periodic tick that drives
 * the runtime driver, advances every active deployment's pipeline (executor.c: observe, feed
 * the pure state machine, persist the new state and its records in one transaction, then let
 * the reconciler act) and converges instances and proxy routes to the desired state
 * (reconcile.c). Everything durable is in the store; what is in memory here (verification
 * windows, latest checks, the last metrics snapshot) is rebuilt after a restart.
 */
#ifndef SLUICE_SERVER_H
#define SLUICE_SERVER_H

#include <jansson.h>
#include <limits.h>
#include <stdint.h>

#include "core/analysis.h"
#include "core/pipeline.h"
#include "http/server.h"
#include "loop/fetch.h"
#include "loop/loop.h"
#include "router/router.h"
#include "runtime/runtime.h"
#include "server/runtimes.h"
#include "stats/sequential.h"
#include "store/store.h"

#define SERVER_DEFAULT_LISTEN "127.0.0.1:7070"
#define SERVER_DEFAULT_PROXY_ADMIN "127.0.0.1:7071"
#define SERVER_TICK_MS 200

/* Counters of one version as the sequential method reads them. */
struct window_counts {
	uint64_t requests, errors; /* errors: 5xx + upstream errors */
	uint64_t done, slow;       /* completed requests; those slower than the window's slow_us */
};

/* The verification window of one region of one deployment at one step. */
struct window {
	int64_t deployment;
	int region;
	int step;
	int has_base;
	int opening, opening_step;                /* a window for opening_step waits for counters */
	uint64_t opening_after;                   /* ...read at or after this loop time */
	struct version_window base_new, base_old; /* cumulative counters at the window's start */
	struct version_window recorded_old;       /* the old version's last window, for the bake */
	int has_recorded;
	char verdict[256];                        /* latest check, for status */
	json_t *evidence;                         /* latest check's evidence */
	/* analysis.method sequential (verify.c): anytime-valid tests over the window, fed at
	 * each poll with the differences of the counters since the previous poll */
	struct seq_counts seq_err, seq_slow;      /* errors; requests slower than slow_us */
	uint64_t slow_us;                         /* latency threshold of the window, 0 = unset */
	struct window_counts last_new, last_old;  /* cumulative counters at the previous poll */
	struct window_counts rec_old;             /* the old version over the last step (bake) */
	int has_rec;
	int decided;                              /* sticky verdict of the window (PL_VERDICT_*) */
	int64_t opened_ms;                        /* wall clock of the opening (Prometheus) */
	struct prom_run *prom;                    /* the Prometheus judgement in flight, or NULL */
	int prom_done;                            /* the Prometheus metrics were judged */
	int prom_verdict;                         /* their verdict (PL_VERDICT_*) */
	char prom_msg[256];
	json_t *prom_evidence;
};

struct server {
	loop *loop;
	httpd *api;
	store *store;
	runtimes *runtimes;       /* one runtime per region (runtimes.h) */
	router *router;
	char data_dir[PATH_MAX];
	char artifacts_dir[PATH_MAX + 32];
	json_t *metrics;          /* latest proxy metrics snapshot, or NULL */
	uint64_t metrics_at;      /* loop time its request was sent */
	struct window **windows;  /* verify.c; each one allocated alone (callbacks point at it) */
	size_t nwindows;
	int stop_data_plane;      /* on exit, stop instances and the proxy too */
	json_t *idle;             /* instance id -> loop time it was first seen drained */
	json_t *start_errors;     /* "service/env/region/version" -> why its instances cannot start */
	json_t *start_errors_prev; /* reconcile.c: the previous pass's, during a pass */
	int reconcile_pending;    /* the last pass left something to do: a drain, a failed route */
	uint64_t reconciled_store, reconciled_runtime, reconciled_router, reconciled_at; /* what the last pass saw */
	uint64_t reconcile_passes, reconcile_skipped; /* ticks with and without a pass (GET /v1/health) */
	fetcher *fetch;           /* asynchronous HTTP: smoke checks, Prometheus queries */
	struct smoke_job *smoke_jobs; /* executor.c: smoke checks in flight */
	uint64_t last_error_log;
};

/* executor.c: one pass over every active deployment, then reconcile. */
void executor_tick(struct server *srv);
/* Cancels what the executor has in flight (smoke checks) and frees it; before fetcher_free. */
void executor_release(struct server *srv);
/* Creates a deployment (kind deploy or rollback) for service@version in env. Returns the id,
 * or -1 with e (e.g. another deployment is active and this is not a rollback). */
int64_t executor_create(struct server *srv, const char *service, const char *env,
			const char *version, enum pl_kind kind, int force, json_t *gate_report,
			struct err *e);
/* Restarts a failed region of a deployment alone. */
int executor_retry(struct server *srv, int64_t id, const char *region, struct err *e);
/* Asks an active deployment to stop (traffic back to stable, canary drained and stopped). */
int executor_abort(struct server *srv, int64_t id, const char *reason, int preempt, struct err *e);

/* reconcile.c: converge instances and routes of every service/env/region, now. */
void reconcile_all(struct server *srv);
/* The tick's reconcile: a pass when deployments are active (busy), when the store or the
 * runtime changed since the last pass or that pass left something to do, and at least every
 * RECONCILE_IDLE_PASS_MS; otherwise nothing, which keeps an idle server idle. */
void reconcile_tick(struct server *srv, int busy);
/* Route name of a service in an env/region: "service.env.region". */
void reconcile_route_name(char *buf, size_t len, const char *service, const char *env,
			  const char *region);
/* The proxy port of service svc in env/region: listen_port + the region's port_offset; 0
 * when the service or region is unknown; -1 when the store failed (e). */
int reconcile_listen_port(struct server *srv, const char *env, const char *region, const char *svc,
			  struct err *e);
/* Why the runtime refused to start a version's instances on the last reconcile pass (a bad
 * spec, an unknown release, a runtime that cannot be reached), or NULL. */
const char *reconcile_start_error(struct server *srv, const char *service, const char *env,
				  const char *region, const char *version);
/* The stored manifest of an environment or a service (*out: new reference). The store's
 * contract: 0, STORE_NOTFOUND (e says which is unknown) or -1 when the store failed (e). */
__attribute__((warn_unused_result)) int server_environment(struct server *srv, const char *env,
							   json_t **out, struct err *e);
__attribute__((warn_unused_result)) int server_service(struct server *srv, const char *service,
						       json_t **out, struct err *e);
/* The runtime of env/region, resolved from the Environment manifest the first time: 0 with
 * *out, STORE_NOTFOUND when the environment or region is unknown, -1 when the store failed or
 * the runtime cannot be opened (e says which). */
__attribute__((warn_unused_result)) int server_runtime(struct server *srv, const char *env,
						       const char *region, runtime **out, struct err *e);

#endif
