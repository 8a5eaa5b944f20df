/*
 * plan: the compatibility gate over what is live, as pure functions the control plane feeds
 * with its own records: can-i-deploy (is one release safe next to every live version, and
 * could it still be rolled back?) and deploy plans (an order of single-service deploys that
 * reaches a multi-service target with every step safe, and the order back).
 *
 * The unit of reasoning is a pair (provider service@version, consumer service@version) that
 * can meet: both serve at the same time somewhere in the environment, including the window of
 * a rollout when old and new versions of one service serve side by side. A pair is
 *   ok       the consumer's declared use holds (contract_check)
 *   refused  it does not; the reasons say which operation and field
 *   unknown  one side has no contract, so whether they meet or agree cannot be told;
 *            unknown fails closed unless the policy allows it
 * and "fallback" marks an ok pair that holds only through a later `any_of` alternative.
 *
 * A pair is checked with a baseline (contract_check_since): the version of the provider's
 * service that the consumer works with now (the stable or serving one; in a plan, the one
 * the step moves from). When the consumer is the one that moves, the baseline is the live
 * provider itself if the consumer's live version calls it without listing any parameters
 * (the service evidently sends what it requires), else none: the first release of a service,
 * or one whose predecessor listed its parameters, is checked strictly. A required parameter
 * the baseline requires too is not new, so a consumer whose contract lists no parameters is
 * assumed to send it; a new one fails closed.
 *
 * Inputs are borrowed for the duration of the call; results are new jansson references the
 * server can return as they are, and contract_report_print (report.h) prints them.
 */
#ifndef SLUICE_CONTRACT_PLAN_H
#define SLUICE_CONTRACT_PLAN_H

#include <jansson.h>
#include <stddef.h>

#include "contract/contract.h"
#include "util/log.h"

#define PLAN_MAX_UNITS 4096  /* distinct service@version in one call (1,000 services, each a
                               * stable release and a rollout in flight, with room) */
#define PLAN_MAX_TARGETS 8   /* services changed by one plan */
#define PLAN_MAX_STATES 4096 /* combinations of versions a plan search visits */

/* One release: a version of a service and its contract (NULL: none declared). */
struct plan_unit {
	const char *service;
	const char *version;
	const contract *contract;
};

/* One version live in one region. role: "serving" (takes traffic), "canary" (a rollout in
 * flight) or "stable" (the last known good release, the rollback target; usually serving
 * too). The same service@version in several regions or roles may appear several times. */
struct plan_live {
	const char *region;
	const char *service;
	const char *version;
	const contract *contract;
	const char *role;
};

struct plan_policy {
	int allow_unknown; /* unknown pairs pass instead of refusing */
};

struct plan_target {
	const char *service;
	const char *version;
};

/*
 * Can `candidate` be deployed next to what is live? It is checked as a provider against
 * every live consumer version and as a consumer against every live provider version (its own
 * service's other versions keep serving during the rollout, so every version of the others
 * that is live anywhere meets it). Rollback safety: would returning to the current stable
 * version break a live consumer, or a released consumer that works with the candidate (one
 * that may be deployed once the candidate is out)? `releases` (may be empty) are the known
 * releases of every service, used for that forecast.
 *
 * Returns NULL with e set on invalid input, else
 *   {"kind": "can-i-deploy", "candidate": "svc@ver", "verdict": "ok"|"refused",
 *    "allow_unknown": bool,
 *    "pairs": [{"provider": "svc@ver", "consumer": "svc@ver", "verdict": "ok"|"refused"|"unknown",
 *               "fallback": bool, "regions": [...], "reasons": [...]}],
 *    "rollback": {"target": "svc@ver"|null, "safe": bool, "reasons": [...]},
 *    "notes": [...]}
 */
json_t *plan_can_i_deploy(const struct plan_live *live, size_t nlive, const struct plan_unit *releases,
			  size_t nreleases, const struct plan_unit *candidate, const struct plan_policy *policy,
			  struct err *e);

/*
 * An ordered list of single-service deploys from what is live to `targets`, each step safe
 * while the old and the new version of the deployed service both serve, and the reverse
 * list back to what is live now. Intermediate releases that exist (versions registered
 * between the live one and the target, in `releases` order) are used when needed.
 *
 * Among safe orders the search prefers, in this order: fewest steps during which a consumer
 * holds only through its fallback `any_of` alternative (a fallback is the safety net for
 * rolling back, not a plan), then fewest steps. This is why, in the Metadata example, the
 * plan deploys metadata v2 (serves both forms) before profile v2 rather than relying on
 * profile v2's fallback to metadata v1.
 *
 * Returns NULL with e set on invalid input (unknown release, too many targets), else
 *   {"kind": "plan", "verdict": "ok"|"impossible", "targets": {svc: ver},
 *    "steps": [{"service", "from", "to", "fallback": bool, "pairs": [...]}],
 *    "reverse": [...] or null when there is no safe way back,
 *    "conflicts": [pairs], "suggestions": ["..."], "notes": ["..."]}
 * On "impossible", conflicts name the pairs that block every order and suggestions say what
 * an intermediate release would have to do (expand/contract).
 */
json_t *plan_make(const struct plan_live *live, size_t nlive, const struct plan_unit *releases, size_t nreleases,
		  const struct plan_target *targets, size_t ntargets, const struct plan_policy *policy,
		  struct err *e);

#endif
