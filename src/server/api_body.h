/*
 * api_body: the types of the API's request bodies, one table each (util/shape.h), checked
 * strictly: a field of the wrong type, an unknown or missing one, a name that breaks its rule
 * (util/name.h) or a digest that is not "sha256:" and 64 lowercase hex digits is refused with
 * "request body: field 'PATH': what was expected". Pure: no I/O, no state (the fuzz target
 * tests/fuzz/fuzz_json_body.c runs every kind on every input).
 */
#ifndef SLUICE_API_BODY_H
#define SLUICE_API_BODY_H

#include <jansson.h>

#include "util/log.h"

/* The largest JSON body (and manifest text in it) the API reads. */
#define API_BODY_MAX (4 << 20)

enum api_body {
	API_BODY_APPLY,    /* {files: [{name, content}]} */
	API_BODY_RELEASE,  /* {version, digest, contract?} */
	API_BODY_DEPLOY,   /* {service, version, env = production, force = false, hotfix = false} */
	API_BODY_ROLLBACK, /* {env = production, to?} */
	API_BODY_RETRY,    /* {region} */
	API_BODY_PLAN,     /* {targets: {service: version}, env = production} */
	API_BODY_SHUTDOWN, /* {data_plane = false} */
	API_BODY_TOKEN,    /* {name, scopes: [{actions, services = ["*"], envs = ["*"]}], expires_in?} */
	API_BODY_EMPTY,    /* {} */
	API_BODY_FLAGS_APPLY, /* {name = "flags.yaml", content, strict = false, reason = ""} */
	API_BODY_FLAG_CHANGE, /* {action: enable|disable|kill|set, variant?, reason = ""} */
	API_BODY_NOTIFY,      /* {env?, service?, types = "all", url, format = json, secret?} */
	API_BODY_FLAG_ROLLOUT, /* {variant, steps: [1..100, increasing], service, step_duration?,
				* baseline?, reason = ""} */
	API_BODY_FLAG_ROLLOUT_ABORT, /* {reason = ""} */
	API_BODY_COUNT,
};

/* Checks body (borrowed; NULL reads as "nothing") as a body of `kind`: 0 with *out a new
 * normalized object (defaults filled, keys in table order), or -1 with e and *out untouched. */
__attribute__((warn_unused_result)) int api_body_check(enum api_body kind, const json_t *body,
						       json_t **out /* OUT */, struct err *e);
/* "apply", "deploy", ... */
const char *api_body_name(enum api_body kind);

#endif
