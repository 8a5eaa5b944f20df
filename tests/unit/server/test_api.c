/* Unit tests of the API's route table: every route is well-formed, declares its permission,
 * and nothing but liveness is public. */
#include <criterion/criterion.h>
#include <string.h>

#include "server/api.h"

Test(api_routes, every_route_declares_a_permission)
{
	size_t n;
	const struct route *r = api_routes(&n);
	cr_assert_gt(n, 10);
	int public = 0;
	for (size_t i = 0; i < n; i++) {
		cr_expect(routes_pattern_ok(r[i].pattern), "%s %s", r[i].method, r[i].pattern);
		cr_expect(r[i].fn, "%s %s has a handler", r[i].method, r[i].pattern);
		cr_expect(r[i].summary && r[i].summary[0], "%s %s has a summary", r[i].method, r[i].pattern);
		cr_expect_neq(strcmp(auth_action_name(r[i].permission), "?"), 0, "%s %s: permission %d",
			      r[i].method, r[i].pattern, r[i].permission);
		if (r[i].permission == AUTH_PUBLIC) {
			public++;
			cr_expect(!strcmp(r[i].pattern, "/v1/health") || !strncmp(r[i].pattern, "/ui", 3),
				  "only liveness and the dashboard's files are public: %s", r[i].pattern);
			cr_expect_str_eq(r[i].method, "GET");
		}
		/* a route that may change something never needs only read, except plan (a
		 * computation over what is live) */
		if (strcmp(r[i].method, "GET") && strcmp(r[i].pattern, "/v1/plan"))
			cr_expect_neq(r[i].permission, AUTH_READ, "%s %s changes something", r[i].method,
				      r[i].pattern);
		for (size_t k = 0; k < i; k++)
			cr_expect(strcmp(r[i].method, r[k].method) || strcmp(r[i].pattern, r[k].pattern),
				  "%s %s twice", r[i].method, r[i].pattern);
	}
	cr_expect_eq(public, 3);
}
