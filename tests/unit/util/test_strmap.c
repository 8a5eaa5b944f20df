#include <criterion/criterion.h>
#include <stdio.h>

#include "util/strmap.h"

Test(strmap, put_get_replace_delete_grow)
{
	strmap *m = strmap_new();
	cr_assert(m);
	static int v[10000];
	char k[32];
	for (int i = 0; i < 10000; i++) {
		snprintf(k, sizeof(k), "route-%d", i);
		cr_assert_eq(strmap_put(m, k, &v[i]), 0);
	}
	cr_assert_eq(strmap_count(m), 10000);
	for (int i = 0; i < 10000; i++) {
		snprintf(k, sizeof(k), "route-%d", i);
		cr_assert_eq(strmap_get(m, k), &v[i], "%s", k);
	}
	cr_assert_null(strmap_get(m, "route-10000"));
	cr_assert_null(strmap_get(m, ""));
	cr_assert_eq(strmap_put(m, "route-5", &v[6]), 0, "replace");
	cr_assert_eq(strmap_get(m, "route-5"), &v[6]);
	cr_assert_eq(strmap_count(m), 10000);
	for (int i = 0; i < 10000; i += 2) {
		snprintf(k, sizeof(k), "route-%d", i);
		strmap_del(m, k);
	}
	strmap_del(m, "absent");
	cr_assert_eq(strmap_count(m), 5000);
	cr_assert_null(strmap_get(m, "route-4"));
	cr_assert_eq(strmap_get(m, "route-7"), &v[7]);
	cr_assert_eq(strmap_put(m, "", &v[0]), 0, "the empty key is a key");
	cr_assert_eq(strmap_get(m, ""), &v[0]);
	strmap_free(m);
	strmap_free(NULL);
}
