/* The guarded flag rollouts as the server composes them (server/rollouts.h): started through
 * the API, ticked over the fake router's counters and a real SQLite store. */
#include <criterion/criterion.h>
#include <string.h>

#include "server/rollouts.h"
#include "support/fake_router.h"
#include "support/shell.h"

static struct shell sh;
static struct shell_answer ans;

static const char *const manifests = "kind: Environment\nname: production\nregions:\n  - name: eu\n---\n"
				     "kind: Service\nname: pay\nlisten_port: 18101\nanalysis: {min_requests: 20}\n";
#define FLAGSET                                                                              \
	"{\"flags\": {\"f\": {\"state\": \"ENABLED\", \"variants\": {\"on\": true, \"off\": false}, " \
	"\"defaultVariant\": \"off\"}}}"

static int call(const char *method, const char *target, json_t *body)
{
	char *txt = body ? json_dumps(body, 0) : NULL;
	json_decref(body);
	int st = shell_call(&sh, NULL, method, target, txt, txt ? strlen(txt) : 0, &ans);
	free(txt);
	return st;
}

static void setup(void)
{
	shell_open(&sh, NULL);
	cr_assert_eq(call("POST", "/v1/apply", json_pack("{s:[{s:s, s:s}]}", "files", "name", "m.yaml", "content", manifests)),
		     200, "%s", ans.text);
	cr_assert_eq(call("POST", "/v1/flags/production", json_pack("{s:s}", "content", FLAGSET)), 200, "%s", ans.text);
}

static rollouts *retired; /* a rollouts object a test replaced, freed after the shell */

static void teardown(void)
{
	shell_answer_free(&ans);
	shell_close(&sh);
	rollouts_free(retired);
	retired = NULL;
}

/* The proxy's cumulative counters of pay in production/eu: n requests, e errors (all 2 ms). */
static void counters(uint64_t n, uint64_t e)
{
	json_t *v = json_pack("{s:I, s:{s:I}, s:{s:[i,i,i], s:[I,I,I]}}", "requests", (json_int_t)n, "responses", "5xx",
			      (json_int_t)e, "latency_us", "bounds", 1000, 5000, -1, "counts", (json_int_t)0,
			      (json_int_t)n, (json_int_t)0);
	fake_router_set_metrics(sh.router, json_pack("{s:{s:{s:{s:o}}}}", "routes", "pay.production.eu", "versions", "v1", v),
				1);
}

static void tick(void)
{
	rollouts_tick(sh.rollouts, store_now_ms());
}

static json_t *rollout(int64_t id)
{
	char path[64];
	snprintf(path, sizeof(path), "/v1/flag-rollouts/%lld", (long long)id);
	cr_assert_eq(call("GET", path, NULL), 200, "%s", ans.text);
	return ans.json;
}

static const char *phase(int64_t id)
{
	return json_string_value(json_object_get(rollout(id), "phase"));
}

static json_t *flag_now(void)
{
	cr_assert_eq(call("GET", "/v1/flags/production/flag/f", NULL), 200, "%s", ans.text);
	return json_object_get(json_object_get(ans.json, "flag"), "targeting");
}

static int untargeted(const json_t *t)
{
	return !t || json_is_null(t) || (json_is_object(t) && json_object_size(t) == 0);
}

static int has_event(int64_t id, const char *type)
{
	size_t i;
	json_t *ev;
	json_array_foreach(json_object_get(rollout(id), "events"), i, ev)
		if (!strcmp(json_string_value(json_object_get(ev, "type")), type))
			return 1;
	return 0;
}

static int64_t start(void)
{
	int st = call("POST", "/v1/flags/production/flag/f/rollout",
		      json_pack("{s:s, s:[i,i], s:s, s:s, s:s, s:s}", "variant", "on", "steps", 50, 100, "service", "pay",
				"step_duration", "0s", "baseline", "0s", "reason", "unit"));
	cr_assert_eq(st, 201, "%s", ans.text);
	return json_integer_value(json_object_get(ans.json, "id"));
}

TestSuite(rollouts, .init = setup, .fini = teardown, .timeout = 60);

Test(rollouts, a_regression_reverts_the_flag_with_evidence)
{
	/* a webhook subscribed to flag reverts gets one, with the evidence */
	cr_assert_eq(call("POST", "/v1/notifications",
			  json_pack("{s:s, s:[s]}", "url", "http://127.0.0.1:9/hook", "types", "flag.reverted")),
		     201, "%s", ans.text);
	int64_t id = start();
	cr_assert_str_eq(phase(id), "active");
	counters(1000, 0);
	tick(); /* the first snapshot: nothing counted yet */
	cr_assert(untargeted(flag_now()), "the baseline does not touch the flag");
	counters(1100, 0);
	tick(); /* 100 requests of baseline: step 1 writes the flag */
	json_t *want = json_pack("{s:[[s,i],[s,i]]}", "fractional", "on", 50, "off", 50);
	cr_assert(json_equal(flag_now(), want), "the flag at 50%%");
	json_decref(want);
	cr_assert(has_event(id, "baseline") && has_event(id, "step"));
	counters(1140, 30);
	tick(); /* 40 requests, 30 errors: proven */
	cr_assert_str_eq(phase(id), "reverted");
	cr_assert(untargeted(flag_now()), "the flag is back as before");
	json_t *r = rollout(id), *ev = json_array_get(json_object_get(r, "events"), json_array_size(json_object_get(r, "events")) - 1);
	cr_assert_str_eq(json_string_value(json_object_get(ev, "type")), "reverted");
	json_t *t = json_array_get(json_object_get(json_object_get(ev, "evidence"), "tests"), 0);
	cr_assert_eq(json_integer_value(json_object_get(t, "events")), 30);
	cr_assert_eq(json_integer_value(json_object_get(t, "requests")), 40);
	cr_assert_eq(json_integer_value(json_object_get(t, "baseline_requests")), 100);
	cr_assert_str_eq(json_string_value(json_object_get(t, "decision")), "fail");
	cr_assert_geq(json_number_value(json_object_get(t, "e_value")), json_number_value(json_object_get(t, "e_threshold")));
	json_t *out = NULL;
	struct err e = {""};
	cr_assert_eq(store_notify_pending(sh.store, store_now_ms() + 1, 10, &out, &e), 0, "%s", e.msg);
	cr_assert_eq(json_array_size(out), 1, "one notification is pending");
	json_t *row = json_array_get(out, 0);
	cr_assert_str_eq(json_string_value(json_object_get(row, "type")), "flag.reverted");
	json_t *payload = json_loads(json_string_value(json_object_get(row, "payload")), 0, NULL);
	if (!payload)
		payload = json_incref(json_object_get(row, "payload"));
	cr_assert_eq(json_integer_value(json_object_get(payload, "rollout")), id);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(json_object_get(json_object_get(payload, "evidence"), "tests"), 0), "events")), 30);
	json_decref(payload);
	json_decref(out);
	/* the flag versions say who wrote them */
	cr_assert_eq(call("GET", "/v1/flags/production/history", NULL), 200);
	char by[32];
	snprintf(by, sizeof(by), "rollout %lld", (long long)id);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(ans.json, "versions"), 0), "by")), by);
}

Test(rollouts, a_harmless_variant_completes)
{
	int64_t id = start();
	counters(0, 0);
	tick();
	counters(100, 0);
	tick();
	counters(200, 0);
	tick(); /* step 1 passes (duration 0, 100 requests): step 2 */
	counters(300, 0);
	tick();
	cr_assert_str_eq(phase(id), "completed");
	json_t *want = json_pack("{s:[[s,i],[s,i]]}", "fractional", "on", 100, "off", 0);
	cr_assert(json_equal(flag_now(), want));
	json_decref(want);
}

Test(rollouts, an_operator_change_interrupts_and_stands)
{
	int64_t id = start();
	counters(0, 0);
	tick();
	counters(100, 0);
	tick();
	cr_assert_eq(call("POST", "/v1/flags/production/flag/f", json_pack("{s:s}", "action", "kill")), 200, "%s", ans.text);
	tick();
	cr_assert_str_eq(phase(id), "interrupted");
	json_t *t = flag_now();
	cr_assert(json_is_object(t) && json_object_size(t) == 0, "the kill stands");
}

Test(rollouts, abort_puts_the_flag_back_and_a_second_rollout_is_refused_meanwhile)
{
	int64_t id = start();
	counters(0, 0);
	tick();
	counters(100, 0);
	tick();
	int st = call("POST", "/v1/flags/production/flag/f/rollout",
		      json_pack("{s:s, s:[i], s:s}", "variant", "on", "steps", 100, "service", "pay"));
	cr_assert_eq(st, 409, "%s", ans.text);
	cr_assert_eq(call("POST", "/v1/flags/production/flag/f/rollout/abort", json_pack("{s:s}", "reason", "enough")), 200,
		     "%s", ans.text);
	cr_assert_str_eq(phase(id), "aborted");
	cr_assert(untargeted(flag_now()), "the flag is back as before");
	cr_assert_eq(call("POST", "/v1/flags/production/flag/f/rollout/abort", json_object()), 404);
}

Test(rollouts, refusals_are_precise)
{
	cr_assert_eq(call("POST", "/v1/flags/production/flag/f/rollout",
			  json_pack("{s:s, s:[i], s:s}", "variant", "off", "steps", 10, "service", "pay")),
		     400);
	cr_assert(strstr(ans.text, "already the flag's default"), "%s", ans.text);
	cr_assert_eq(call("POST", "/v1/flags/production/flag/f/rollout",
			  json_pack("{s:s, s:[i,i], s:s}", "variant", "on", "steps", 50, 20, "service", "pay")),
		     400);
	cr_assert(strstr(ans.text, "increase"), "%s", ans.text);
	cr_assert_eq(call("POST", "/v1/flags/production/flag/f/rollout",
			  json_pack("{s:s, s:[i], s:s}", "variant", "on", "steps", 101, "service", "pay")),
		     400);
	cr_assert(strstr(ans.text, "steps[0]"), "%s", ans.text);
	cr_assert_eq(call("POST", "/v1/flags/production/flag/nope/rollout",
			  json_pack("{s:s, s:[i], s:s}", "variant", "on", "steps", 10, "service", "pay")),
		     404);
	cr_assert_eq(call("POST", "/v1/flags/production/flag/f/rollout",
			  json_pack("{s:s, s:[i], s:s}", "variant", "on", "steps", 10, "service", "nope")),
		     404);
	cr_assert_eq(call("POST", "/v1/flags/production/flag/f/rollout",
			  json_pack("{s:s, s:[i], s:s, s:b}", "variant", "on", "steps", 10, "service", "pay", "extra", 1)),
		     400);
	cr_assert(strstr(ans.text, "extra"), "%s", ans.text);
	cr_assert_eq(call("GET", "/v1/flags/production/rollouts", NULL), 200);
	cr_assert_eq(json_array_size(json_object_get(ans.json, "rollouts")), 0, "nothing was started");
}

Test(rollouts, a_restarted_server_resumes_at_its_step)
{
	int64_t id = start();
	counters(0, 0);
	tick();
	counters(100, 0);
	tick(); /* at step 1 (50%) */
	/* a new rollouts object over the same store: what a restarted server has (the old one
	 * stays alive until the shell closes: its API still holds it) */
	retired = sh.rollouts;
	sh.rollouts = rollouts_new(&(struct rollouts_deps){sh.store, sh.flags, sh.router, sh.cat, NULL});
	cr_assert(sh.rollouts);
	counters(150, 0);
	tick(); /* resumed: a new window */
	cr_assert(has_event(id, "resumed"));
	cr_assert_str_eq(phase(id), "active");
	json_t *st = json_object_get(rollout(id), "state");
	cr_assert_eq(json_integer_value(json_object_get(st, "weight")), 50, "still at its step");
	counters(250, 0);
	tick();
	counters(350, 0);
	tick();
	counters(450, 0);
	tick();
	cr_assert_str_eq(phase(id), "completed");
}
