#include "server/api_body.h"
#include "server/auth.h"
#include "store/artifacts.h"
#include "util/shape.h"

/* A contract travels as a JSON object (contract_from_json checks it) or null. */
static int any_object(const struct shape_ctx *sc, struct shape_at at, const char *path,
		      const struct shape_field *f, const json_t *v, json_t **out)
{
	char got[64];
	if (!json_is_object(v) && !json_is_null(v))
		return shape_fail(sc, shape_pos(sc, at), path, "expected a contract (an object) or null, got %s",
				  shape_describe(v, got, sizeof(got)));
	*out = json_incref((json_t *)v);
	return 0;
}

static const struct shape_field file_fields[] = {
	{.key = "name", .type = SHAPE_STRING, .required = 1, .max = 1024},
	{.key = "content", .type = SHAPE_STRING, .required = 1, .empty_ok = 1, .max = API_BODY_MAX},
	{0},
};
static const struct shape_field file_elem = {.type = SHAPE_OBJECT, .sub = file_fields};
static const struct shape_field apply_body[] = {
	{.key = "files", .type = SHAPE_LIST, .required = 1, .min = 1, .max = 1000, .elem = &file_elem,
	 .noun = "files"},
	{0},
};
static const struct shape_field release_body[] = {
	{.key = "version", .type = SHAPE_NAME, .name = NAME_VERSION, .required = 1},
	{.key = "digest", .type = SHAPE_STRING, .required = 1, .max = 71, .check = artifacts_valid_id,
	 .what = "sha256: and 64 lowercase hex digits"},
	{.key = "contract", .type = SHAPE_CUSTOM, .custom = any_object, .def = "null"},
	{0},
};
static const struct shape_field deploy_body[] = {
	{.key = "service", .type = SHAPE_NAME, .name = NAME_OBJECT, .required = 1},
	{.key = "version", .type = SHAPE_NAME, .name = NAME_VERSION, .required = 1},
	{.key = "env", .type = SHAPE_NAME, .name = NAME_OBJECT, .def = "\"production\""},
	{.key = "force", .type = SHAPE_BOOL, .def = "false"},
	{.key = "hotfix", .type = SHAPE_BOOL, .def = "false"},
	{0},
};
static const struct shape_field rollback_body[] = {
	{.key = "env", .type = SHAPE_NAME, .name = NAME_OBJECT, .def = "\"production\""},
	{.key = "to", .type = SHAPE_NAME, .name = NAME_VERSION, .nullable = 1},
	{0},
};
static const struct shape_field retry_body[] = {
	{.key = "region", .type = SHAPE_NAME, .name = NAME_OBJECT, .required = 1},
	{0},
};
static const struct shape_field target_elem = {.type = SHAPE_NAME, .name = NAME_VERSION};
static const struct shape_field plan_body[] = {
	{.key = "targets", .type = SHAPE_MAP, .name = NAME_OBJECT, .elem = &target_elem, .required = 1,
	 .max = 256, .noun = "targets", .what = "an object {service: version}"},
	{.key = "env", .type = SHAPE_NAME, .name = NAME_OBJECT, .def = "\"production\""},
	{0},
};
static const struct shape_field shutdown_body[] = {
	{.key = "data_plane", .type = SHAPE_BOOL, .def = "false"},
	{0},
};

/* A token's scopes (server/auth.h): actions, and the services and environments they reach. */
static const char *const action_choices[] = {"read", "apply", "release", "deploy", "rollback",
					     "retry", "flags", "admin", "evaluate", NULL};
static const struct shape_field action_elem = {.type = SHAPE_ENUM, .choices = action_choices};
static const struct shape_field pattern_elem = {
	.type = SHAPE_STRING, .max = AUTH_PATTERN_MAX - 1, .check = auth_pattern_ok,
	.what = "a name pattern: lowercase letters, digits, '-' and '*'"};
static const struct shape_field scope_fields[] = {
	{.key = "actions", .type = SHAPE_LIST, .required = 1, .min = 1, .max = 9, .unique = 1,
	 .elem = &action_elem, .noun = "actions"},
	{.key = "services", .type = SHAPE_LIST, .min = 1, .max = 64, .unique = 1, .elem = &pattern_elem,
	 .def = "[\"*\"]", .noun = "service patterns"},
	{.key = "envs", .type = SHAPE_LIST, .min = 1, .max = 64, .unique = 1, .elem = &pattern_elem,
	 .def = "[\"*\"]", .noun = "environment patterns"},
	{0},
};
static const struct shape_field scope_elem = {.type = SHAPE_OBJECT, .sub = scope_fields};
static const struct shape_field token_body[] = {
	{.key = "name", .type = SHAPE_NAME, .name = NAME_OBJECT, .required = 1},
	{.key = "scopes", .type = SHAPE_LIST, .required = 1, .min = 1, .max = AUTH_MAX_SCOPES,
	 .elem = &scope_elem, .noun = "scopes"},
	{.key = "expires_in", .type = SHAPE_DURATION, .min = 60000, .max = 10LL * 366 * 86400000,
	 .nullable = 1},
	{0},
};
static const struct shape_field empty_body[] = {{0}};
static const struct shape_field flags_apply_body[] = {
	{.key = "name", .type = SHAPE_STRING, .max = 1024, .def = "\"flags.yaml\""},
	{.key = "content", .type = SHAPE_STRING, .required = 1, .empty_ok = 1, .max = API_BODY_MAX},
	{.key = "strict", .type = SHAPE_BOOL, .def = "false"},
	{.key = "reason", .type = SHAPE_STRING, .max = 512, .empty_ok = 1, .def = "\"\""},
	{0},
};
static const char *const flag_actions[] = {"enable", "disable", "kill", "set", NULL};
static const struct shape_field flag_change_body[] = {
	{.key = "action", .type = SHAPE_ENUM, .choices = flag_actions, .required = 1},
	{.key = "variant", .type = SHAPE_STRING, .max = 127, .nullable = 1},
	{.key = "reason", .type = SHAPE_STRING, .max = 512, .empty_ok = 1, .def = "\"\""},
	{0},
};

/* The types are checked against the notification types by the handler (core/notify.h). */
static int any_types(const struct shape_ctx *sc, struct shape_at at, const char *path,
		     const struct shape_field *f, const json_t *v, json_t **out)
{
	char got[64];
	(void)f;
	if (!json_is_array(v) && !json_is_string(v))
		return shape_fail(sc, shape_pos(sc, at), path,
				  "expected an array of notification types or \"all\", got %s",
				  shape_describe(v, got, sizeof(got)));
	*out = json_incref((json_t *)v);
	return 0;
}

static const char *const notify_format_choices[] = {"json", "slack", "cloudevents", NULL};
static const struct shape_field notify_body[] = {
	{.key = "env", .type = SHAPE_NAME, .name = NAME_OBJECT, .nullable = 1, .def = "null"},
	{.key = "service", .type = SHAPE_NAME, .name = NAME_OBJECT, .nullable = 1, .def = "null"},
	{.key = "types", .type = SHAPE_CUSTOM, .custom = any_types, .def = "\"all\""},
	{.key = "url", .type = SHAPE_STRING, .required = 1, .max = 2048},
	{.key = "format", .type = SHAPE_ENUM, .choices = notify_format_choices, .def = "\"json\""},
	{.key = "secret", .type = SHAPE_STRING, .max = 256, .nullable = 1, .def = "null"},
	{0},
};
static const struct shape_field step_elem = {.type = SHAPE_INT, .min = 1, .max = 100,
					      .what = "a percentage 1..100"};
static const struct shape_field flag_rollout_body[] = {
	{.key = "variant", .type = SHAPE_STRING, .required = 1, .max = 127},
	{.key = "steps", .type = SHAPE_LIST, .required = 1, .min = 1, .max = 16, .unique = 1, .elem = &step_elem,
	 .noun = "steps"},
	{.key = "service", .type = SHAPE_NAME, .name = NAME_OBJECT, .required = 1},
	{.key = "step_duration", .type = SHAPE_DURATION, .min = 0, .max = 86400000, .nullable = 1},
	{.key = "baseline", .type = SHAPE_DURATION, .min = 0, .max = 86400000, .nullable = 1},
	{.key = "reason", .type = SHAPE_STRING, .max = 512, .empty_ok = 1, .def = "\"\""},
	{0},
};
static const struct shape_field flag_rollout_abort_body[] = {
	{.key = "reason", .type = SHAPE_STRING, .max = 512, .empty_ok = 1, .def = "\"\""},
	{0},
};

static const struct {
	const char *name;
	const struct shape_field *fields;
} kinds[API_BODY_COUNT] = {
	[API_BODY_APPLY] = {"apply", apply_body},
	[API_BODY_RELEASE] = {"release", release_body},
	[API_BODY_DEPLOY] = {"deploy", deploy_body},
	[API_BODY_ROLLBACK] = {"rollback", rollback_body},
	[API_BODY_RETRY] = {"retry", retry_body},
	[API_BODY_PLAN] = {"plan", plan_body},
	[API_BODY_SHUTDOWN] = {"shutdown", shutdown_body},
	[API_BODY_TOKEN] = {"token", token_body},
	[API_BODY_EMPTY] = {"empty", empty_body},
	[API_BODY_FLAGS_APPLY] = {"flags apply", flags_apply_body},
	[API_BODY_FLAG_CHANGE] = {"flag change", flag_change_body},
	[API_BODY_NOTIFY] = {"notify", notify_body},
	[API_BODY_FLAG_ROLLOUT] = {"flag rollout", flag_rollout_body},
	[API_BODY_FLAG_ROLLOUT_ABORT] = {"flag rollout abort", flag_rollout_abort_body},
};

int api_body_check(enum api_body kind, const json_t *body, json_t **out, struct err *e)
{
	if ((unsigned)kind >= API_BODY_COUNT)
		return err_set(e, "request body: unknown kind %d", (int)kind);
	return shape_check_body(body, kinds[kind].fields, out, e);
}

const char *api_body_name(enum api_body kind)
{
	return (unsigned)kind < API_BODY_COUNT ? kinds[kind].name : "?";
}
