/*
 * can-i-deploy and plans on the Metadata example (the article's two-step deploy), with the
 * live state in memory: profile v1 reads the `metadata` object; metadata v3 drops it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract/plan.h"
#include "contract/report.h"

#ifndef EXAMPLES
#error "EXAMPLES must name examples/contracts"
#endif

static contract *m1, *m2, *m3, *p1, *p2, *p3strict, *w1;

/* profile v3 reads only the new array, without a fallback */
static const char *const strict =
	"service: profile\nversion: v3\nconsumes:\n  metadata:\n    - method: GET\n      path: /items/{id}\n"
	"      reads:\n        - {path: /metadata_v2, type: array}\n";

static contract *load(const char *name)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s.yaml", EXAMPLES, name);
	contract *c = NULL;
	struct err e;
	cr_assert_eq(contract_load(path, &c, &e), 0, "%s", e.msg);
	return c;
}

static void setup(void)
{
	m1 = load("metadata-v1");
	m2 = load("metadata-v2");
	m3 = load("metadata-v3");
	p1 = load("profile-v1");
	p2 = load("profile-v2");
	w1 = load("web-v1");
	struct err e;
	cr_assert_eq(contract_parse("strict.yaml", strict, strlen(strict), NULL, &p3strict, &e), 0, "%s", e.msg);
}

static void teardown(void)
{
	contract *all[] = {m1, m2, m3, p1, p2, p3strict, w1};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		contract_free(all[i]);
}

TestSuite(gate, .init = setup, .fini = teardown);

static const json_t *find_pair(const json_t *pairs, const char *prov, const char *cons)
{
	size_t i;
	json_t *p;
	json_array_foreach(pairs, i, p)
		if (!strcmp(json_string_value(json_object_get(p, "provider")), prov) &&
		    !strcmp(json_string_value(json_object_get(p, "consumer")), cons))
			return p;
	return NULL;
}

static const char *verdict(const json_t *r)
{
	return json_string_value(json_object_get(r, "verdict"));
}

Test(gate, metadata_v3_refused_while_profile_v1_is_live)
{
	struct plan_live live[] = {
		{"eu", "metadata", "v1", m1, "stable"}, {"eu", "profile", "v1", p1, "stable"},
		{"us", "metadata", "v1", m1, "stable"}, {"us", "profile", "v1", p1, "stable"},
		{"eu", "web", "v1", w1, "stable"},
	};
	struct plan_unit cand = {"metadata", "v3", m3};
	struct plan_policy pol = {0};
	struct err e;
	json_t *r = plan_can_i_deploy(live, 5, NULL, 0, &cand, &pol, &e);
	cr_assert(r, "%s", e.msg);
	char *d = json_dumps(r, JSON_COMPACT);
	cr_expect_str_eq(verdict(r), "refused", "%s", d);
	const json_t *p = find_pair(json_object_get(r, "pairs"), "metadata@v3", "profile@v1");
	cr_assert(p, "%s", d);
	cr_expect_str_eq(verdict(p), "refused");
	cr_expect(strstr(json_string_value(json_array_get(json_object_get(p, "reasons"), 0)),
			 "/metadata is not in the provider's schema"), "%s", d);
	cr_expect_eq(json_array_size(json_object_get(p, "regions")), 2, "%s", d);
	/* web does not call metadata: no pair */
	cr_expect_null(find_pair(json_object_get(r, "pairs"), "metadata@v3", "web@v1"));
	cr_expect_str_eq(json_string_value(json_object_get(json_object_get(r, "rollback"), "target")), "metadata@v1");
	free(d);
	json_decref(r);
}

Test(gate, metadata_v2_is_fine_and_rollback_safe)
{
	struct plan_live live[] = {{"eu", "metadata", "v1", m1, "stable"}, {"eu", "profile", "v1", p1, "stable"}};
	struct plan_unit rel[] = {{"metadata", "v1", m1}, {"metadata", "v2", m2}, {"profile", "v1", p1},
				  {"profile", "v2", p2}};
	struct plan_unit cand = {"metadata", "v2", m2};
	struct err e;
	json_t *r = plan_can_i_deploy(live, 2, rel, 4, &cand, NULL, &e);
	cr_assert(r, "%s", e.msg);
	char *d = json_dumps(r, JSON_COMPACT);
	cr_expect_str_eq(verdict(r), "ok", "%s", d);
	cr_expect(json_is_true(json_object_get(json_object_get(r, "rollback"), "safe")), "%s", d);
	free(d);
	json_decref(r);
}

Test(gate, rollback_unsafe_once_a_strict_consumer_may_follow)
{
	struct plan_live live[] = {{"eu", "metadata", "v1", m1, "stable"}, {"eu", "profile", "v1", p1, "stable"}};
	struct plan_unit rel[] = {{"profile", "v3", p3strict}};
	struct plan_unit cand = {"metadata", "v2", m2};
	struct err e;
	json_t *r = plan_can_i_deploy(live, 2, rel, 1, &cand, NULL, &e);
	cr_assert(r, "%s", e.msg);
	char *d = json_dumps(r, JSON_COMPACT);
	cr_expect_str_eq(verdict(r), "ok", "%s", d);
	const json_t *rb = json_object_get(r, "rollback");
	cr_expect(json_is_false(json_object_get(rb, "safe")), "%s", d);
	cr_expect(strstr(json_string_value(json_array_get(json_object_get(rb, "reasons"), 0)),
			 "once profile@v3 is deployed"), "%s", d);
	free(d);
	json_decref(r);
}

Test(gate, candidate_as_consumer_against_every_live_provider_version)
{
	/* metadata mid-rollout: v3 canary next to v2 stable; profile v1 must fit both */
	struct plan_live live[] = {{"eu", "metadata", "v2", m2, "stable"}, {"eu", "metadata", "v3", m3, "canary"}};
	struct plan_unit cand = {"profile", "v1", p1};
	struct err e;
	json_t *r = plan_can_i_deploy(live, 2, NULL, 0, &cand, NULL, &e);
	cr_assert(r, "%s", e.msg);
	cr_expect_str_eq(verdict(r), "refused");
	cr_expect_str_eq(verdict(find_pair(json_object_get(r, "pairs"), "metadata@v2", "profile@v1")), "ok");
	cr_expect_str_eq(verdict(find_pair(json_object_get(r, "pairs"), "metadata@v3", "profile@v1")), "refused");
	json_decref(r);
	cand.contract = p2;
	cand.version = "v2";
	r = plan_can_i_deploy(live, 2, NULL, 0, &cand, NULL, &e);
	cr_expect_str_eq(verdict(r), "ok");
	json_decref(r);
}

Test(gate, unknown_consumer_fails_closed_unless_allowed)
{
	struct plan_live live[] = {{"eu", "metadata", "v1", m1, "stable"}, {"eu", "legacy", "v9", NULL, "serving"}};
	struct plan_unit cand = {"metadata", "v2", m2};
	struct plan_policy pol = {0};
	struct err e;
	json_t *r = plan_can_i_deploy(live, 2, NULL, 0, &cand, &pol, &e);
	cr_assert(r, "%s", e.msg);
	cr_expect_str_eq(verdict(r), "refused");
	cr_expect_str_eq(verdict(find_pair(json_object_get(r, "pairs"), "metadata@v2", "legacy@v9")), "unknown");
	json_decref(r);
	pol.allow_unknown = 1;
	r = plan_can_i_deploy(live, 2, NULL, 0, &cand, &pol, &e);
	cr_expect_str_eq(verdict(r), "ok");
	json_decref(r);
}

Test(gate, invalid_input_is_an_error)
{
	struct plan_live live[] = {{"eu", "metadata", "v1", m1, "leader"}};
	struct plan_unit cand = {"metadata", "v2", m2};
	struct err e;
	cr_expect_null(plan_can_i_deploy(live, 1, NULL, 0, &cand, NULL, &e));
	cr_expect(strstr(e.msg, "unknown role 'leader'"), "%s", e.msg);
}

static void expect_steps(const json_t *steps, const char *const *want, size_t n, const char *what)
{
	char *d = json_dumps(steps, JSON_COMPACT);
	cr_assert_eq(json_array_size(steps), n, "%s: %s", what, d);
	for (size_t i = 0; i < n; i++) {
		const json_t *s = json_array_get(steps, i);
		char got[128];
		snprintf(got, sizeof(got), "%s %s", json_string_value(json_object_get(s, "service")),
			 json_string_value(json_object_get(s, "to")));
		cr_expect_str_eq(got, want[i], "%s step %zu: %s", what, i + 1, d);
	}
	free(d);
}

static struct plan_unit all_releases[] = {{"metadata", "v1", NULL}, {"metadata", "v2", NULL}, {"metadata", "v3", NULL},
					  {"profile", "v1", NULL},  {"profile", "v2", NULL},  {"web", "v1", NULL}};

static void fill_releases(void)
{
	contract *c[] = {m1, m2, m3, p1, p2, w1};
	for (size_t i = 0; i < 6; i++)
		all_releases[i].contract = c[i];
}

Test(gate, plan_two_step_deploy_and_its_reverse)
{
	fill_releases();
	struct plan_live live[] = {{"eu", "metadata", "v1", m1, "stable"}, {"eu", "profile", "v1", p1, "stable"},
				   {"eu", "web", "v1", w1, "stable"}};
	struct plan_target tg[] = {{"metadata", "v3"}, {"profile", "v2"}};
	struct err e;
	json_t *r = plan_make(live, 3, all_releases, 6, tg, 2, NULL, &e);
	cr_assert(r, "%s", e.msg);
	cr_assert_str_eq(verdict(r), "ok");
	static const char *const fwd[] = {"metadata v2", "profile v2", "metadata v3"};
	static const char *const back[] = {"metadata v2", "profile v1", "metadata v1"};
	expect_steps(json_object_get(r, "steps"), fwd, 3, "forward");
	expect_steps(json_object_get(r, "reverse"), back, 3, "reverse");
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(r, "steps"), 0), "from")), "v1");
	/* no step relies on a fallback */
	size_t i;
	json_t *s;
	json_array_foreach(json_object_get(r, "steps"), i, s)
		cr_expect(json_is_false(json_object_get(s, "fallback")));

	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	contract_report_print(f, r);
	fclose(f);
	cr_expect(strstr(text, "1. deploy metadata v2 (from v1)"), "%s", text);
	cr_expect(strstr(text, "3. deploy metadata v3 (from v2)"), "%s", text);
	cr_expect(strstr(text, "reverse"), "%s", text);
	free(text);
	json_decref(r);
}

Test(gate, plan_uses_a_fallback_only_when_nothing_else_exists)
{
	/* without metadata v2 in the registry, the only safe order is profile v2 first, which
	 * holds against metadata v1 through its fallback */
	struct plan_unit rel[] = {{"metadata", "v1", m1}, {"metadata", "v3", m3}, {"profile", "v1", p1}, {"profile", "v2", p2}};
	struct plan_live live[] = {{"eu", "metadata", "v1", m1, "stable"}, {"eu", "profile", "v1", p1, "stable"}};
	struct plan_target tg[] = {{"metadata", "v3"}, {"profile", "v2"}};
	struct err e;
	json_t *r = plan_make(live, 2, rel, 4, tg, 2, NULL, &e);
	cr_assert(r, "%s", e.msg);
	cr_assert_str_eq(verdict(r), "ok");
	static const char *const fwd[] = {"profile v2", "metadata v3"};
	expect_steps(json_object_get(r, "steps"), fwd, 2, "forward");
	cr_expect(json_is_true(json_object_get(json_array_get(json_object_get(r, "steps"), 0), "fallback")));
	json_decref(r);
}

Test(gate, plan_impossible_names_conflicts_and_the_intermediate_release)
{
	struct plan_unit rel[] = {{"metadata", "v1", m1}, {"metadata", "v3", m3}, {"profile", "v1", p1},
				  {"profile", "v3", p3strict}};
	struct plan_live live[] = {{"eu", "metadata", "v1", m1, "stable"}, {"eu", "profile", "v1", p1, "stable"}};
	struct plan_target tg[] = {{"metadata", "v3"}, {"profile", "v3"}};
	struct err e;
	json_t *r = plan_make(live, 2, rel, 4, tg, 2, NULL, &e);
	cr_assert(r, "%s", e.msg);
	char *d = json_dumps(r, JSON_COMPACT);
	cr_expect_str_eq(verdict(r), "impossible", "%s", d);
	const json_t *conf = json_object_get(r, "conflicts");
	cr_expect(find_pair(conf, "metadata@v3", "profile@v1"), "%s", d);
	cr_expect(find_pair(conf, "metadata@v1", "profile@v3"), "%s", d);
	cr_expect(strstr(d, "release a metadata that serves at once what profile@v1 reads (GET /items/{id} reads /id, /metadata) "
			    "and what profile@v3 reads (GET /items/{id} reads /metadata_v2)"),
		  "%s", d);
	cr_expect(strstr(d, "release a profile that reads the new form with a fallback"), "%s", d);
	free(d);
	json_decref(r);
}

Test(gate, plan_first_deploy_of_a_new_service)
{
	fill_releases();
	struct plan_live live[] = {{"eu", "metadata", "v2", m2, "stable"}, {"eu", "profile", "v2", p2, "stable"}};
	struct plan_target tg[] = {{"web", "v1"}};
	struct err e;
	json_t *r = plan_make(live, 2, all_releases, 6, tg, 1, NULL, &e);
	cr_assert(r, "%s", e.msg);
	cr_expect_str_eq(verdict(r), "ok");
	static const char *const fwd[] = {"web v1"};
	expect_steps(json_object_get(r, "steps"), fwd, 1, "forward");
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(r, "steps"), 0), "from")), "(none)");
	cr_expect_eq(json_array_size(json_object_get(r, "reverse")), 0);
	json_decref(r);
}

Test(gate, plan_rejects_unknown_release)
{
	fill_releases();
	struct plan_live live[] = {{"eu", "metadata", "v1", m1, "stable"}};
	struct plan_target tg[] = {{"metadata", "v9"}};
	struct err e;
	cr_expect_null(plan_make(live, 1, all_releases, 6, tg, 1, NULL, &e));
	cr_expect(strstr(e.msg, "no release metadata@v9"), "%s", e.msg);
}

Test(gate, candidate_without_contract_is_unknown)
{
	struct plan_live live[] = {{"eu", "metadata", "v1", m1, "stable"}, {"eu", "profile", "v1", p1, "stable"}};
	struct plan_unit cand = {"metadata", "v4", NULL};
	struct plan_policy pol = {0};
	struct err e;
	json_t *r = plan_can_i_deploy(live, 2, NULL, 0, &cand, &pol, &e);
	cr_assert(r, "%s", e.msg);
	char *d = json_dumps(r, JSON_COMPACT);
	cr_expect_str_eq(verdict(r), "refused", "%s", d);
	cr_expect_str_eq(verdict(find_pair(json_object_get(r, "pairs"), "metadata@v4", "profile@v1")), "unknown", "%s", d);
	free(d);
	json_decref(r);
	pol.allow_unknown = 1;
	r = plan_can_i_deploy(live, 2, NULL, 0, &cand, &pol, &e);
	cr_expect_str_eq(verdict(r), "ok");
	json_decref(r);
}

/* ---- issue 17: a new required parameter, through can-i-deploy and plans ------------------
 * metadata v4 requires a `lang` query parameter; profile v1/v2 list no parameters, profile v3
 * lists `lang`. */

Test(gate, new_required_parameter_refused_with_how_to_declare)
{
	contract *m4 = load("metadata-v4");
	struct plan_live live[] = {{"eu", "metadata", "v3", m3, "stable"}, {"eu", "profile", "v2", p2, "stable"},
				   {"eu", "web", "v1", w1, "stable"}};
	struct plan_unit cand = {"metadata", "v4", m4};
	struct err e;
	json_t *r = plan_can_i_deploy(live, 3, NULL, 0, &cand, NULL, &e);
	cr_assert(r, "%s", e.msg);
	char *d = json_dumps(r, JSON_COMPACT);
	cr_expect_str_eq(verdict(r), "refused", "%s", d);
	const json_t *p = find_pair(json_object_get(r, "pairs"), "metadata@v4", "profile@v2");
	cr_assert(p, "%s", d);
	cr_expect_str_eq(verdict(p), "refused", "%s", d);
	const char *why = json_string_value(json_array_get(json_object_get(p, "reasons"), 0));
	cr_expect(why && strstr(why, "requires query parameter 'lang' (new since metadata@v3)"), "%s", d);
	cr_expect(why && strstr(why, "parameters: [{name: lang, in: query, schema: {\"type\":\"string\",\"minLength\":2,\"maxLength\":8}}]"), "%s", d);
	free(d);
	json_decref(r);
	contract_free(m4);
}

Test(gate, declared_parameter_lets_the_provider_move)
{
	contract *m4 = load("metadata-v4"), *p3 = load("profile-v3");
	/* profile v3 live: metadata v4 is fine */
	struct plan_live live[] = {{"eu", "metadata", "v3", m3, "stable"}, {"eu", "profile", "v3", p3, "stable"}};
	struct plan_unit cand = {"metadata", "v4", m4};
	struct err e;
	json_t *r = plan_can_i_deploy(live, 2, NULL, 0, &cand, NULL, &e);
	cr_assert(r, "%s", e.msg);
	char *d = json_dumps(r, JSON_COMPACT);
	cr_expect_str_eq(verdict(r), "ok", "%s", d);
	free(d);
	json_decref(r);

	/* the plan: profile v3 first (it sends lang, which v3 ignores), then metadata v4; back:
	 * metadata v3 first, since profile v2 lists no parameters while v3 listed them (it is
	 * not known to send lang) */
	struct plan_unit rel[] = {{"metadata", "v3", m3}, {"metadata", "v4", m4}, {"profile", "v2", p2}, {"profile", "v3", p3}};
	struct plan_live now[] = {{"eu", "metadata", "v3", m3, "stable"}, {"eu", "profile", "v2", p2, "stable"}};
	struct plan_target tg[] = {{"metadata", "v4"}, {"profile", "v3"}};
	r = plan_make(now, 2, rel, 4, tg, 2, NULL, &e);
	cr_assert(r, "%s", e.msg);
	d = json_dumps(r, JSON_COMPACT);
	cr_expect_str_eq(verdict(r), "ok", "%s", d);
	static const char *const fwd[] = {"profile v3", "metadata v4"};
	static const char *const back[] = {"metadata v3", "profile v2"};
	expect_steps(json_object_get(r, "steps"), fwd, 2, "forward");
	expect_steps(json_object_get(r, "reverse"), back, 2, "reverse");
	free(d);
	json_decref(r);

	/* without profile v3, no order exists: every consumer release lists no parameters */
	struct plan_target tg2[] = {{"metadata", "v4"}};
	r = plan_make(now, 2, rel, 3, tg2, 1, NULL, &e);
	cr_assert(r, "%s", e.msg);
	d = json_dumps(r, JSON_COMPACT);
	cr_expect_str_eq(verdict(r), "impossible", "%s", d);
	cr_expect(strstr(d, "new since metadata@v3"), "%s", d);
	free(d);
	json_decref(r);
	contract_free(m4);
	contract_free(p3);
}

/* A required parameter the live provider already requires is not new: a consumer release of
 * a service that calls it today without listing parameters passes without listing them; the
 * first release of a service, or one after a release that listed them, must list them. */
Test(gate, parameter_required_before_is_not_new)
{
	contract *m4 = load("metadata-v4"), *p3 = load("profile-v3");
	static const char *const p25 =
		"service: profile\nversion: v2.5\nconsumes:\n  metadata:\n    - method: GET\n      path: /items/{id}\n"
		"      reads: [{path: /id, type: string}]\n";
	contract *c25 = NULL;
	struct err e0;
	cr_assert_eq(contract_parse("p25.yaml", p25, strlen(p25), NULL, &c25, &e0), 0, "%s", e0.msg);
	struct plan_live live[] = {{"eu", "metadata", "v4", m4, "stable"}, {"eu", "profile", "v2.5", c25, "stable"}};
	struct plan_unit cand = {"profile", "v2", p2};
	struct err e;
	json_t *r = plan_can_i_deploy(live, 2, NULL, 0, &cand, NULL, &e);
	cr_assert(r, "%s", e.msg);
	char *d = json_dumps(r, JSON_COMPACT);
	cr_expect_str_eq(verdict(find_pair(json_object_get(r, "pairs"), "metadata@v4", "profile@v2")), "ok", "%s", d);
	free(d);
	json_decref(r);

	struct plan_live only_metadata[] = {{"eu", "metadata", "v4", m4, "stable"}};
	r = plan_can_i_deploy(only_metadata, 1, NULL, 0, &cand, NULL, &e);
	cr_assert(r, "%s", e.msg);
	d = json_dumps(r, JSON_COMPACT);
	cr_expect_str_eq(verdict(r), "refused", "%s", d);
	cr_expect(strstr(d, "the consumer declares no parameters"), "%s", d);
	free(d);
	json_decref(r);

	struct plan_live after_v3[] = {{"eu", "metadata", "v4", m4, "stable"}, {"eu", "profile", "v3", p3, "stable"}};
	r = plan_can_i_deploy(after_v3, 2, NULL, 0, &cand, NULL, &e);
	cr_assert(r, "%s", e.msg);
	d = json_dumps(r, JSON_COMPACT);
	cr_expect_str_eq(verdict(r), "refused", "%s", d);
	free(d);
	json_decref(r);
	contract_free(m4);
	contract_free(p3);
	contract_free(c25);
}

/* writeOnly: a required field the provider marks writeOnly is not in its responses */
Test(gate, write_only_field_is_not_read)
{
	static const char *const m5 =
		"service: metadata\nversion: v5\nprovides:\n  openapi: 3.1.0\n  paths:\n    /items/{id}:\n      get:\n"
		"        responses:\n          '200':\n            description: ok\n            content:\n"
		"              application/json:\n                schema:\n                  type: object\n"
		"                  required: [id, metadata]\n                  properties:\n"
		"                    id: {type: string}\n                    metadata: {type: object, writeOnly: true}\n";
	contract *c5 = NULL;
	struct err e;
	cr_assert_eq(contract_parse("m5.yaml", m5, strlen(m5), NULL, &c5, &e), 0, "%s", e.msg);
	struct plan_live live[] = {{"eu", "metadata", "v1", m1, "stable"}, {"eu", "profile", "v1", p1, "stable"}};
	struct plan_unit cand = {"metadata", "v5", c5};
	json_t *r = plan_can_i_deploy(live, 2, NULL, 0, &cand, NULL, &e);
	cr_assert(r, "%s", e.msg);
	char *d = json_dumps(r, JSON_COMPACT);
	cr_expect_str_eq(verdict(r), "refused", "%s", d);
	cr_expect(strstr(d, "/metadata is writeOnly in the provider's schema"), "%s", d);
	free(d);
	json_decref(r);
	contract_free(c5);
}
