/*
 * manifest: validation and normalization of the YAML manifests that `sluice apply` sends
 * (kind: Environment and kind: Service; the format is described in docs/manifests.md).
 *
 * The validator is table-driven (util/shape.h): one table per mapping lists its keys, their
 * types, limits and defaults. The same tables check a source document (YAML, errors "FILE:LINE:COL: path: what was
 * expected") and an already normalized manifest (JSON as stored, errors "Kind 'name': path: ...").
 *
 * Normalized form: every key present, defaults filled, durations as integers of milliseconds
 * under the key name with the suffix "_ms" (step_duration -> step_duration_ms), env values as
 * strings (a secret one as {"value": STRING, "secret": true}), each region's port_offset
 * resolved. Pure: no I/O.
 */
#ifndef SLUICE_MANIFEST_H
#define SLUICE_MANIFEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/doc.h"
#include "util/log.h"
#include "util/name.h"

/* Hard limits on what a manifest may hold. */
#define MANIFEST_MAX_PER_FILE 1000
#define MANIFEST_NAME_MAX NAME_OBJECT_MAX
#define MANIFEST_MAX_REGIONS 64
#define MANIFEST_MAX_DEPENDS 64
#define MANIFEST_MAX_ARGS 64
#define MANIFEST_MAX_ENV 256
#define MANIFEST_MAX_STRING 4096
#define MANIFEST_MAX_DURATION_MS (7ull * 24 * 3600 * 1000) /* one week */

/*
 * Validates every document of d (empty documents are skipped). On success *out is a new
 * reference to a JSON array of normalized manifests in document order (each {"kind": ...,
 * "name": ..., ...all defaults filled...}); on the first error returns -1 with
 * "FILE:LINE:COL: message" in e and leaves *out untouched. Nothing is returned from a file with
 * an error.
 */
__attribute__((warn_unused_result)) int manifest_validate(const doc *d, json_t **out /* OUT */,
							  struct err *e);

/* ---- secrets ----
 *
 * An env value written {value: ..., secret: true} is stored as {"value": "...", "secret":
 * true} (the store keeps the real value, so applying the same file twice changes nothing) and
 * shown everywhere else as MANIFEST_SECRET_MASK: a fixed text that tells neither the value nor
 * its length. No validation message quotes a value written in the {value: ...} form.
 */
#define MANIFEST_SECRET_MASK "********"

/*
 * A deep copy of m (one normalized manifest, or a JSON array of them) in which the value of
 * every secret env entry is MANIFEST_SECRET_MASK; everything else is unchanged. For every output
 * (API answers, the CLI). A new reference, or NULL when out of memory; m is only borrowed.
 */
__attribute__((warn_unused_result)) json_t *manifest_mask_secrets(const json_t *m);

/* Re-validates one normalized manifest (as stored), for the server's own checks. 0 or -1. */
__attribute__((warn_unused_result)) int manifest_check_normalized(const json_t *m, struct err *e);

/*
 * Parses "250ms", "2s", "1m", "1h", "1m30s" (units h, m, s, ms, each at most once and in that
 * order) or a bare integer of milliseconds. 0 on success, -1 on bad syntax or overflow.
 */
__attribute__((warn_unused_result)) int manifest_duration_ms(const char *s, uint64_t *ms /* OUT */);

/* Whether s is a valid object name (name_object_ok in util/name.h; kept for old callers). */
int manifest_name_ok(const char *s);

/* ---- typed manifests ----
 *
 * A stored (normalized) manifest parsed once into C structs, so that readers use fields rather
 * than dotted JSON paths. Every key of the normalized form has a field; durations are uint64
 * milliseconds; enums follow the order of the manifest's choices.
 *
 * Ownership: a parsed manifest owns everything it points to. Strings (const char *) point into
 * its own private copy of the normalized JSON and arrays are its own allocations; all stay valid
 * until manifest_service_free / manifest_env_free, which accept NULL. Nothing is shared with the
 * json_t passed to the parser, which is only borrowed.
 */

enum manifest_runtime { MANIFEST_RUNTIME_LOCAL, MANIFEST_RUNTIME_DOCKER };
enum manifest_strategy { MANIFEST_CANARY, MANIFEST_ROLLING, MANIFEST_BLUE_GREEN };
enum manifest_method { MANIFEST_THRESHOLD, MANIFEST_SEQUENTIAL };
enum manifest_direction { MANIFEST_INCREASE, MANIFEST_DECREASE, MANIFEST_EITHER };
enum manifest_on_failure { MANIFEST_HALT, MANIFEST_CONTINUE };
enum manifest_concurrency { MANIFEST_QUEUE, MANIFEST_SUPERSEDE };
enum manifest_http_method { MANIFEST_GET, MANIFEST_HEAD, MANIFEST_POST };

struct manifest_region {
	const char *name;
	enum manifest_runtime runtime;
	const char *runtime_kind; /* "local": the driver's name as written */
	const json_t *runtime_settings; /* `runtime: {kind: ..., ...}` as a mapping, else NULL */
	int port_offset;          /* added to every listen_port in this region */
};

struct manifest_wave {
	size_t *regions; /* indexes into env_manifest.regions, in rollout order */
	size_t nregions;
};

struct env_manifest {
	const char *name;
	struct manifest_region *regions; /* at least one */
	size_t nregions;
	struct manifest_wave *waves; /* every region in exactly one wave */
	size_t nwaves;
	struct {
		bool allow_unknown_consumers;
		uint64_t wave_bake_ms;
		enum manifest_on_failure on_region_failure;
		int region_retries;
		uint64_t retry_backoff_ms;
	} policy;
	struct {
		const char *from; /* the environment before this one, or NULL */
	} promotion;
	struct {
		uint64_t side_by_side_ms;
		int traffic_rate; /* requests per second of synthetic traffic */
	} stage;
};

struct manifest_env_var {
	const char *name;
	const char *value; /* the real value, secret or not: what the instances receive */
	bool secret;       /* written {value: ..., secret: true}: masked in every output */
};

struct manifest_metric {
	const char *name;
	const char *query; /* PromQL; "{version}" is replaced by the version label */
	enum manifest_direction direction;
	bool critical;
	double weight;
	double allowed_increase, allowed_decrease;
	double critical_increase, critical_decrease;
};

struct manifest_smoke {
	const char *path;
	enum manifest_http_method method;
	int status;
	const char *body_contains; /* NULL: the body is not checked */
	uint64_t timeout_ms;
};

struct service_manifest {
	const char *name;
	int listen_port; /* the port of its own proxy listener (+ port_offset); 0: none (route) */
	/* Hosts on a shared listener of each region's proxy (route.nhosts 0: none). Hosts may hold
	 * "{env}" and "{region}" (manifest_route_host expands them); hosts[0] is a name, never a
	 * wildcard: sluice reaches the service by it. */
	struct {
		const char **hosts;
		size_t nhosts;
		const char *path_prefix; /* "/" by default; NULL when there is no route */
		int port;                /* the shared listener's port (+ port_offset); 0: none */
	} route;
	struct {
		const char *command; /* may hold {artifact}, {port}, ... placeholders */
		const char **args;
		size_t nargs;
		struct manifest_env_var *env;
		size_t nenv;
	} run;
	const char **depends_on;
	size_t ndepends;
	struct {
		const char *path;
		uint64_t interval_ms, timeout_ms;
	} health;
	int instances;
	uint64_t drain_timeout_ms;
	struct {
		enum manifest_strategy type;
		int *steps; /* traffic percentages, strictly increasing, the last 100 */
		size_t nsteps;
		uint64_t step_duration_ms, max_step_duration_ms;
		int max_surge, max_unavailable;
		uint64_t keep_old_ms;
		uint64_t max_unobserved_ms; /* no metrics this long: the region pauses (0 = never) */
		int crash_loop_restarts;    /* an instance restarted this many times... */
		uint64_t crash_loop_window_ms; /* ...within this window crash-loops: the region fails */
	} strategy;
	struct {
		int min_requests;
		double max_error_rate, max_error_rate_increase;
		uint64_t max_p99_latency_ms, interval_ms;
		enum manifest_method method;
		double alpha, tolerance;
		bool baseline;
		struct manifest_metric *metrics;
		size_t nmetrics;
		const char *prometheus; /* base URL */
		double pass_score, marginal_score;
	} analysis;
	uint64_t bake_ms;
	struct {
		enum manifest_concurrency concurrency;
	} policy;
	struct manifest_smoke *smoke;
	size_t nsmoke;
};

/*
 * Host `pattern` of a service's route.hosts for environment env and region region: "{env}" and
 * "{region}" replaced, into buf. Returns 0, or -1 when it does not fit in len.
 */
int manifest_route_host(const char *pattern, const char *env, const char *region, char *buf /* OUT */,
			size_t len);

/*
 * Parses a stored manifest of kind Service (Environment). The input is re-checked as
 * manifest_check_normalized does, so a bad one is refused with "Service 'web': FIELD: what"
 * (a manifest of the other kind with "kind: expected Service, got ..."). On success *out is
 * a new manifest for the caller to free; on failure -1, *out untouched.
 */
__attribute__((warn_unused_result)) int manifest_service_parse(const json_t *m,
							       struct service_manifest **out /* OUT */,
							       struct err *e);
void manifest_service_free(struct service_manifest *s);

__attribute__((warn_unused_result)) int manifest_env_parse(const json_t *m, struct env_manifest **out /* OUT */,
							   struct err *e);
void manifest_env_free(struct env_manifest *env);

#endif
