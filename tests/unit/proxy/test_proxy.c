#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "http/parse.h"
#include "proxy/fwd.h"
#include "proxy/hist.h"
#include "proxy/metrics.h"
#include "proxy/route.h"

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void load(const char *text, struct route_cfg *c)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	cr_assert(j, "bad test JSON: %s", je.text);
	struct err e = {{0}};
	int rc = route_cfg_parse(j, "", c, &e);
	cr_assert_eq(rc, 0, "unexpected error: %s", e.msg);
	json_decref(j);
}

static const char *ROUTE3 =
	"{\"name\":\"svc.prod.eu\",\"listen\":\"127.0.0.1:0\",\"versions\":["
	"{\"version\":\"v1\",\"weight\":90,\"backends\":[\"127.0.0.1:1\"]},"
	"{\"version\":\"v2\",\"weight\":9,\"backends\":[\"127.0.0.1:2\"]},"
	"{\"version\":\"v3\",\"weight\":1,\"backends\":[\"127.0.0.1:3\"]}]}";

Test(weights, distribution_within_tolerance)
{
	struct route_cfg c;
	load(ROUTE3, &c);
	size_t n[3] = {0}, draws = 100000;
	for (size_t i = 0; i < draws; i++) {
		uint64_t x = (uint64_t)(((unsigned __int128)next() * c.total_weight) >> 64);
		n[route_pick_weighted(&c, x)]++;
	}
	/* 5 standard deviations of a binomial: a correct picker fails this ~never */
	double w[3] = {0.90, 0.09, 0.01};
	for (int i = 0; i < 3; i++) {
		double sd = sqrt(draws * w[i] * (1 - w[i]));
		cr_assert(fabs((double)n[i] - draws * w[i]) < 5 * sd, "version %d: %zu of %zu", i, n[i], draws);
	}
	route_cfg_release(&c);
}

Test(weights, zero_weight_never_chosen)
{
	struct route_cfg c;
	load("{\"listen\":\"127.0.0.1:0\",\"versions\":[{\"version\":\"a\",\"weight\":0,\"backends\":[\"127.0.0.1:1\"]},"
	     "{\"version\":\"b\",\"weight\":7,\"backends\":[\"127.0.0.1:2\"]}]}", &c);
	for (uint64_t x = 0; x < 7; x++)
		cr_assert_eq(route_pick_weighted(&c, x), 1);
	char key[16];
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "u%d", i);
		cr_assert_eq(route_pick_sticky(&c, key, strlen(key)), 1);
	}
	route_cfg_release(&c);
}

Test(sticky, consistent_and_weighted)
{
	struct route_cfg c;
	load(ROUTE3, &c);
	char key[32];
	size_t n[3] = {0}, users = 100000;
	for (size_t i = 0; i < users; i++) {
		snprintf(key, sizeof(key), "user-%zu", i);
		size_t v = route_pick_sticky(&c, key, strlen(key));
		cr_assert_eq(route_pick_sticky(&c, key, strlen(key)), v, "same key, same version");
		n[v]++;
	}
	double w[3] = {0.90, 0.09, 0.01};
	for (int i = 0; i < 3; i++) {
		double sd = sqrt(users * w[i] * (1 - w[i]));
		cr_assert(fabs((double)n[i] - users * w[i]) < 5 * sd, "version %d: %zu", i, n[i]);
	}
	route_cfg_release(&c);
}

Test(sticky, canary_users_stay_when_canary_grows)
{
	struct route_cfg a, b;
	load("{\"listen\":\"127.0.0.1:0\",\"versions\":[{\"version\":\"stable\",\"weight\":95,\"backends\":[\"127.0.0.1:1\"]},"
	     "{\"version\":\"canary\",\"weight\":5,\"backends\":[\"127.0.0.1:2\"]}]}", &a);
	load("{\"listen\":\"127.0.0.1:0\",\"versions\":[{\"version\":\"stable\",\"weight\":75,\"backends\":[\"127.0.0.1:1\"]},"
	     "{\"version\":\"canary\",\"weight\":25,\"backends\":[\"127.0.0.1:2\"]}]}", &b);
	char key[32];
	int seen = 0;
	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "%d", i);
		if (route_pick_sticky(&a, key, strlen(key)) == 1) {
			seen++;
			cr_assert_eq(route_pick_sticky(&b, key, strlen(key)), 1, "user %s left the canary", key);
		}
	}
	cr_assert_gt(seen, 500);
	route_cfg_release(&a);
	route_cfg_release(&b);
}

Test(sticky, cookie_parsing)
{
	const char *v;
	size_t n;
	const char *h = "a=1; uid=\"abc\";uidx=2; b=";
	cr_assert(route_cookie_find(h, strlen(h), "uid", &v, &n));
	cr_assert_eq(n, 3);
	cr_assert(!memcmp(v, "abc", 3));
	cr_assert(route_cookie_find(h, strlen(h), "uidx", &v, &n));
	cr_assert(!memcmp(v, "2", 1));
	cr_assert(!route_cookie_find(h, strlen(h), "ui", &v, &n));
	cr_assert(route_cookie_find(h, strlen(h), "b", &v, &n));
	cr_assert_eq(n, 0);
}

Test(pin, finds_version_by_exact_name)
{
	struct route_cfg c;
	load(ROUTE3, &c);
	cr_assert_eq(route_find_version(&c, "v2", 2), 1);
	cr_assert_eq(route_find_version(&c, "v3", 2), 2);
	cr_assert_eq(route_find_version(&c, "v", 1), -1);
	cr_assert_eq(route_find_version(&c, "v22", 3), -1);
	route_cfg_release(&c);
}

struct bad {
	const char *json;
	const char *msg;
};

Test(config, errors_name_the_field)
{
	static const struct bad cases[] = {
		{"[]", "must be an object"},
		{"{\"versions\":[]}", "listen: is required"},
		{"{\"listen\":\"nope\",\"versions\":[]}", "listen: must be \"host:port\""},
		{"{\"listen\":\"127.0.0.1:99999\",\"versions\":[]}", "listen: port must be 0..65535"},
		{"{\"listen\":\"127.0.0.1:1\"}", "versions: is required"},
		{"{\"listen\":\"127.0.0.1:1\",\"versions\":[]}", "versions: must be an array of 1 to 16"},
		{"{\"listen\":\"127.0.0.1:1\",\"versions\":[{\"version\":\"a\",\"weight\":-1,\"backends\":[\"127.0.0.1:2\"]}]}",
		 "versions[0].weight: must be an integer"},
		{"{\"listen\":\"127.0.0.1:1\",\"versions\":[{\"version\":\"a\",\"weight\":1,\"backends\":[]}]}",
		 "versions[0].backends: must be an array"},
		{"{\"listen\":\"127.0.0.1:1\",\"versions\":[{\"version\":\"a\",\"weight\":1,\"backends\":[\"127.0.0.1:2\",\"x\"]}]}",
		 "versions[0].backends[1]: must be \"host:port\""},
		{"{\"listen\":\"127.0.0.1:1\",\"versions\":[{\"version\":\"a\",\"weight\":1,\"backends\":[\"127.0.0.1:2\"]},"
		 "{\"version\":\"a\",\"weight\":1,\"backends\":[\"127.0.0.1:3\"]}]}",
		 "versions[1].version: duplicate version 'a'"},
		{"{\"listen\":\"127.0.0.1:1\",\"versions\":[{\"version\":\"a b\",\"weight\":1,\"backends\":[\"127.0.0.1:2\"]}]}",
		 "versions[0].version: must match"},
		{"{\"listen\":\"127.0.0.1:1\",\"versions\":[{\"version\":\"a\",\"weight\":0,\"backends\":[\"127.0.0.1:2\"]}]}",
		 "versions: at least one weight must be positive"},
		{"{\"listen\":\"127.0.0.1:1\",\"sticky\":{\"cookie\":\"a\",\"header\":\"b\"},\"versions\":[]}",
		 "sticky: must be {\"cookie\": NAME}"},
		{"{\"listen\":\"127.0.0.1:1\",\"sticky\":{\"header\":\"a b\"},\"versions\":[]}", "sticky.header: must be"},
		{"{\"listen\":\"127.0.0.1:1\",\"pin_header\":\"\",\"versions\":[]}", "pin_header: must be 1 to 63 bytes"},
		{"{\"name\":\"a/b\",\"listen\":\"127.0.0.1:1\",\"versions\":[]}", "name: must match"},
		{"{\"listen\":\"127.0.0.1:1\",\"weights\":1,\"versions\":[]}", "weights: unknown field"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = json_loads(cases[i].json, 0, NULL);
		cr_assert(j, "case %zu: bad JSON", i);
		struct route_cfg c;
		struct err e = {{0}};
		cr_assert_eq(route_cfg_parse(j, "", &c, &e), -1, "case %zu accepted", i);
		cr_assert(strstr(e.msg, cases[i].msg), "case %zu: got '%s', want '%s'", i, e.msg, cases[i].msg);
		route_cfg_release(&c);
		json_decref(j);
	}
	/* the prefix shows where in the config file */
	json_t *j = json_loads("{\"listen\":\"127.0.0.1:1\",\"versions\":[{\"version\":\"a\",\"weight\":\"9\",\"backends\":[\"127.0.0.1:2\"]}]}", 0, NULL);
	struct route_cfg c;
	struct err e;
	cr_assert_eq(route_cfg_parse(j, "routes[3]", &c, &e), -1);
	cr_assert_str_eq(e.msg, "routes[3].versions[0].weight: must be an integer from 0 to 1000000000");
	route_cfg_release(&c);
	json_decref(j);
}

Test(config, round_trip)
{
	struct route_cfg c;
	load("{\"name\":\"a.b\",\"listen\":\"127.0.0.1:18001\",\"sticky\":{\"header\":\"X-User\"},\"pin_header\":\"X-V\","
	     "\"versions\":[{\"version\":\"v1\",\"weight\":3,\"backends\":[\"127.0.0.1:1\",\"127.0.0.1:2\"]}]}", &c);
	json_t *j = route_cfg_json(&c);
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	cr_assert_str_eq(s, "{\"listen\":\"127.0.0.1:18001\",\"name\":\"a.b\",\"pin_header\":\"X-V\",\"sticky\":"
			    "{\"header\":\"X-User\"},\"versions\":[{\"backends\":[\"127.0.0.1:1\",\"127.0.0.1:2\"],"
			    "\"version\":\"v1\",\"weight\":3}]}");
	free(s);
	json_decref(j);
	route_cfg_release(&c);
}

Test(hist, bounds_and_index_agree)
{
	cr_assert_eq(hist_bound(0), 1);
	cr_assert_eq(hist_bound(15), 16);
	cr_assert_eq(hist_bound(16), 17);
	cr_assert_eq(hist_bound(HIST_FINITE - 1), (uint64_t)1 << 26);
	cr_assert_eq(hist_bound(HIST_FINITE), UINT64_MAX);
	for (size_t i = 1; i < HIST_FINITE; i++)
		cr_assert_gt(hist_bound(i), hist_bound(i - 1));
	/* every value lands in the bucket whose bounds enclose it: (bound[i-1], bound[i]] */
	for (uint64_t v = 0; v < 200000; v += (v < 5000 ? 1 : 97)) {
		size_t i = hist_index(v);
		cr_assert_leq(v, hist_bound(i), "v=%lu i=%zu", (unsigned long)v, i);
		if (i > 0)
			cr_assert_gt(v, hist_bound(i - 1), "v=%lu i=%zu", (unsigned long)v, i);
	}
	for (size_t i = 0; i < HIST_FINITE; i++) {
		cr_assert_eq(hist_index(hist_bound(i)), i);
		cr_assert_eq(hist_index(hist_bound(i) + 1), i + 1);
	}
	cr_assert_eq(hist_index(UINT64_MAX), HIST_FINITE);
	/* buckets are at most 1/16 of their lower bound wide above 16 us */
	for (size_t i = 17; i < HIST_FINITE; i++)
		cr_assert_leq((hist_bound(i) - hist_bound(i - 1)) * 16, hist_bound(i - 1));
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

Test(hist, quantiles_within_five_percent)
{
	static uint64_t counts[HIST_BUCKETS];
	/* a lognormal-ish spread of latencies from 50 us to ~1 s */
	static uint64_t vals[100000];
	for (size_t i = 0; i < 100000; i++) {
		double u = (double)(next() >> 11) / 9007199254740992.0;
		vals[i] = (uint64_t)(50 * exp(u * 10));
		counts[hist_index(vals[i])]++;
	}
	/* exact quantiles by sorting */
	qsort(vals, 100000, sizeof(vals[0]), cmp_u64);
	double qs[] = {0.5, 0.9, 0.99, 0.999};
	for (size_t k = 0; k < 4; k++) {
		double exact = (double)vals[(size_t)(qs[k] * 100000) - 1];
		double est = hist_quantile(counts, qs[k]);
		cr_assert(fabs(est - exact) <= 0.05 * exact, "q%.3f: est %.0f exact %.0f", qs[k], est, exact);
	}
	uint64_t slow = 0;
	for (size_t i = 0; i < 100000; i++)
		slow += vals[i] > 10000;
	/* 10000 is not a bound: the count above the next bound is a close lower estimate */
	uint64_t est = hist_count_above(counts, 10000);
	cr_assert_leq(est, slow);
	cr_assert_geq(est, slow - slow / 20);
	uint64_t empty[HIST_BUCKETS] = {0};
	cr_assert_eq(hist_quantile(empty, 0.5), 0);
}

Test(metrics, merged_over_workers_and_json_shape)
{
	metrics *m = metrics_new(3);
	struct metrics_series *s = metrics_series(m, "r.a", "v1");
	cr_assert(s);
	cr_assert_eq(metrics_series(m, "r.a", "v1"), s, "a series is found again, not duplicated");
	for (unsigned w = 0; w < 3; w++) {
		metrics_begin(s, w);
		metrics_end(s, w, 200 + (int)w * 150, w == 2, 1000);
	}
	metrics_begin(s, 1); /* still in flight */
	struct buf b;
	buf_init(&b, BUF_NOLIMIT);
	cr_assert_eq(metrics_json(m, 42, &b), 0);
	json_error_t je;
	json_t *j = json_loads(b.data, 0, &je);
	cr_assert(j, "invalid JSON: %s", je.text);
	json_t *v = json_object_get(json_object_get(json_object_get(json_object_get(j, "routes"), "r.a"), "versions"), "v1");
	cr_assert_eq(json_integer_value(json_object_get(v, "requests")), 4);
	cr_assert_eq(json_integer_value(json_object_get(v, "in_flight")), 1);
	cr_assert_eq(json_integer_value(json_object_get(v, "upstream_errors")), 1);
	json_t *r = json_object_get(v, "responses");
	cr_assert_eq(json_integer_value(json_object_get(r, "2xx")), 1);
	cr_assert_eq(json_integer_value(json_object_get(r, "3xx")), 1);
	cr_assert_eq(json_integer_value(json_object_get(r, "5xx")), 1);
	json_t *lat = json_object_get(v, "latency_us");
	json_t *bounds = json_object_get(lat, "bounds"), *counts = json_object_get(lat, "counts");
	/* the buckets end at the last that is not empty: 1000 us */
	cr_assert_eq(json_array_size(bounds), hist_index(1000) + 1);
	cr_assert_eq(json_array_size(counts), hist_index(1000) + 1);
	cr_assert_eq(json_integer_value(json_array_get(bounds, hist_index(1000))), (json_int_t)hist_bound(hist_index(1000)));
	cr_assert_eq(json_integer_value(json_array_get(counts, hist_index(1000))), 3);
	cr_assert_eq(json_integer_value(json_array_get(counts, 0)), 0);
	cr_assert_eq(json_integer_value(json_object_get(v, "latency_sum_us")), 3000);
	cr_assert_eq(json_integer_value(json_object_get(j, "time_ms")), 42);
	json_decref(j);

	/* a series that served nothing: empty arrays; one request slower than the last finite
	 * bound: every bound, the last one -1 (+Inf) */
	cr_assert(metrics_series(m, "r.b", "idle"));
	struct metrics_series *slow = metrics_series(m, "r.c", "slow");
	cr_assert(slow);
	metrics_begin(slow, 0);
	metrics_end(slow, 0, 200, 0, (uint64_t)hist_bound(HIST_FINITE - 1) + 1);
	buf_reset(&b);
	cr_assert_eq(metrics_json(m, 43, &b), 0);
	j = json_loads(b.data, 0, &je);
	cr_assert(j, "invalid JSON: %s", je.text);
	json_t *routes = json_object_get(j, "routes");
	lat = json_object_get(json_object_get(json_object_get(json_object_get(json_object_get(routes, "r.b"), "versions"),
							 "idle"), "latency_us"), "bounds");
	cr_assert(json_is_array(lat) && json_array_size(lat) == 0, "an idle series has no buckets");
	lat = json_object_get(json_object_get(json_object_get(json_object_get(routes, "r.c"), "versions"), "slow"),
			      "latency_us");
	cr_assert_eq(json_array_size(json_object_get(lat, "bounds")), HIST_BUCKETS);
	cr_assert_eq(json_integer_value(json_array_get(json_object_get(lat, "bounds"), HIST_FINITE)), -1);
	cr_assert_eq(json_integer_value(json_array_get(json_object_get(lat, "counts"), HIST_FINITE)), 1);
	json_decref(j);
	buf_reset(&b);
	cr_assert_eq(metrics_prometheus(m, &b), 0);
	cr_assert(strstr(b.data, "sluice_proxy_requests_total{route=\"r.a\",version=\"v1\"} 4\n"));
	cr_assert(strstr(b.data, "sluice_proxy_request_duration_seconds_bucket{route=\"r.a\",version=\"v1\",le=\"+Inf\"} 3\n"));
	cr_assert(strstr(b.data, "sluice_proxy_request_duration_seconds_count{route=\"r.a\",version=\"v1\"} 3\n"));
	buf_release(&b);
	metrics_free(m);
}

static void parse(const char *req, struct http_head *h)
{
	struct http_limits lim = {16384, 100, 0};
	ssize_t n = http_parse_request(req, strlen(req), &lim, h);
	cr_assert_eq(n, (ssize_t)strlen(req), "parse: %zd", n);
}

Test(fwd, request_hop_by_hop_removed_and_forwarding_added)
{
	static struct http_head h;
	parse("POST /x?y=1 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n"
	      "Keep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\nProxy-Authorization: b\r\n"
	      "Proxy-Connection: keep-alive\r\nX-Forwarded-For: 10.0.0.1\r\nForwarded: for=10.0.0.1\r\n"
	      "X-Forwarded-Proto: https\r\nX-Keep: yes\r\nContent-Length: 5\r\n\r\n", &h);
	char out[2048];
	long n = fwd_request_head(&h, "127.0.0.9", 0, out, sizeof(out));
	cr_assert_gt(n, 0);
	out[n] = 0;
	cr_assert_str_eq(out, "POST /x?y=1 HTTP/1.1\r\nHost: a\r\nX-Keep: yes\r\n"
			      "X-Forwarded-For: 10.0.0.1, 127.0.0.9\r\nX-Forwarded-Proto: http\r\n"
			      "Forwarded: for=10.0.0.1, for=127.0.0.9;proto=http\r\nContent-Length: 5\r\n\r\n");
	cr_assert_eq(fwd_request_head(&h, "127.0.0.9", 0, out, 40), -1, "too small a buffer is an error");
}

Test(fwd, chunked_request_and_ipv6_forwarded)
{
	static struct http_head h;
	parse("PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", &h);
	char out[1024];
	long n = fwd_request_head(&h, "::1", 1, out, sizeof(out));
	cr_assert_gt(n, 0);
	out[n] = 0;
	cr_assert_str_eq(out, "PUT / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: ::1\r\nX-Forwarded-Proto: http\r\n"
			      "Forwarded: for=\"[::1]\";proto=http\r\nTransfer-Encoding: chunked\r\n\r\n");
}

Test(fwd, response_rewrite)
{
	static struct http_head h;
	const char *r = "HTTP/1.1 200 OK\r\nConnection: close, X-Internal\r\nX-Internal: 1\r\nKeep-Alive: x\r\n"
			"Set-Cookie: a=1\r\nContent-Length: 2\r\n\r\n";
	struct http_limits lim = {16384, 100, 0};
	cr_assert_gt(http_parse_response(r, strlen(r), &lim, "GET", 3, &h), 0);
	char out[1024];
	long n = fwd_response_head(&h, 1, 0, out, sizeof(out));
	out[n] = 0;
	cr_assert_str_eq(out, "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nContent-Length: 2\r\n\r\n");
	n = fwd_response_head(&h, 0, 0, out, sizeof(out));
	out[n] = 0;
	cr_assert(strstr(out, "Connection: keep-alive\r\n"), "an HTTP/1.0 client is told the connection stays");
	n = fwd_response_head(&h, 1, 1, out, sizeof(out));
	out[n] = 0;
	cr_assert(strstr(out, "Connection: close\r\n"));
	/* a HEAD response keeps the upstream's Content-Length, it has no body */
	r = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
	cr_assert_gt(http_parse_response(r, strlen(r), &lim, "HEAD", 4, &h), 0);
	n = fwd_response_head(&h, 1, 0, out, sizeof(out));
	out[n] = 0;
	cr_assert_str_eq(out, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
}

Test(fwd, idempotent_methods)
{
	/* RFC 9110 9.2.2; methods are case-sensitive */
	static const struct {
		const char *m;
		int idem;
	} t[] = {{"GET", 1},    {"HEAD", 1},    {"OPTIONS", 1}, {"TRACE", 1}, {"PUT", 1},
		 {"DELETE", 1}, {"POST", 0},    {"PATCH", 0},   {"LOCK", 0},  {"get", 0},
		 {"PUTS", 0},   {"DELETES", 0}, {"PROPFIND", 0}, {"", 0}};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		cr_assert_eq(fwd_method_idempotent(t[i].m, strlen(t[i].m)), t[i].idem, "%s", t[i].m);
}

Test(fwd, connection_cannot_nominate_host_framing_or_forwarding)
{
	static struct http_head h;
	parse("POST / HTTP/1.1\r\nHost: a\r\nConnection: host, X-Forwarded-For,Forwarded , "
	      "x-forwarded-proto, Content-Length, X-Hop\r\nX-Hop: 1\r\nX-Forwarded-For: 10.0.0.1\r\n"
	      "Content-Length: 2\r\n\r\n", &h);
	cr_assert_not(fwd_is_hop_by_hop(&h, "Host", 4));
	cr_assert_not(fwd_is_hop_by_hop(&h, "forwarded", 9));
	cr_assert(fwd_is_hop_by_hop(&h, "X-Hop", 5));
	cr_assert(fwd_is_hop_by_hop(&h, "Content-Length", 14), "framing is regenerated, never copied");
	char out[1024];
	long n = fwd_request_head(&h, "127.0.0.9", 0, out, sizeof(out));
	cr_assert_gt(n, 0);
	out[n] = 0;
	cr_assert_str_eq(out, "POST / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 10.0.0.1, 127.0.0.9\r\n"
			      "X-Forwarded-Proto: http\r\nForwarded: for=127.0.0.9;proto=http\r\n"
			      "Content-Length: 2\r\n\r\n");
}

Test(fwd, absolute_form_targets)
{
	/* request -> the forwarded request line, or the error */
	static const struct {
		const char *req;
		const char *line;
		long err;
	} t[] = {
		{"GET /x HTTP/1.1\r\nHost: a\r\n\r\n", "GET /x HTTP/1.1\r\n", 0},
		{"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "OPTIONS * HTTP/1.1\r\n", 0},
		{"GET http://a/x?y HTTP/1.1\r\nHost: a\r\n\r\n", "GET /x?y HTTP/1.1\r\n", 0},
		{"GET hTTpS://A:8443/ HTTP/1.1\r\nHost: a:8443\r\n\r\n", "GET / HTTP/1.1\r\n", 0},
		{"GET http://a HTTP/1.1\r\nHost: a\r\n\r\n", "GET / HTTP/1.1\r\n", 0},
		{"GET http://a?q=1 HTTP/1.1\r\nHost: a\r\n\r\n", "GET /?q=1 HTTP/1.1\r\n", 0},
		{"OPTIONS http://a HTTP/1.1\r\nHost: a\r\n\r\n", "OPTIONS * HTTP/1.1\r\n", 0},
		{"OPTIONS http://a?x HTTP/1.1\r\nHost: a\r\n\r\n", "OPTIONS /?x HTTP/1.1\r\n", 0},
		{"GET http://[::1]:80/ HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", "GET / HTTP/1.1\r\n", 0},
		{"GET http://b/x HTTP/1.1\r\nHost: a\r\n\r\n", NULL, FWD_E_TARGET_HOST},
		{"GET http://a:80/x HTTP/1.1\r\nHost: a\r\n\r\n", NULL, FWD_E_TARGET_HOST},
		{"GET http://ab/ HTTP/1.1\r\nHost: a\r\n\r\n", NULL, FWD_E_TARGET_HOST},
		{"GET http://a/ HTTP/1.0\r\n\r\n", NULL, FWD_E_TARGET_HOST},
		{"GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", NULL, FWD_E_TARGET},
		{"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", NULL, FWD_E_TARGET},
		{"GET http:a/x HTTP/1.1\r\nHost: a\r\n\r\n", NULL, FWD_E_TARGET},
		{"GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n", NULL, FWD_E_TARGET},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		static struct http_head h;
		parse(t[i].req, &h);
		char out[1024];
		long n = fwd_request_head(&h, "127.0.0.9", 0, out, sizeof(out));
		if (!t[i].line) {
			cr_assert_eq(n, t[i].err, "%s: %ld", t[i].req, n);
			continue;
		}
		cr_assert_gt(n, 0, "%s: %ld", t[i].req, n);
		cr_assert_eq(strncmp(out, t[i].line, strlen(t[i].line)), 0, "%s: %.*s", t[i].req, (int)n, out);
	}
}

#include "proxy/proxy.h"

static json_t *js(const char *s)
{
	json_t *j = json_loads(s, 0, NULL);
	cr_assert(j, "bad test JSON");
	return j;
}

Test(table, put_replace_drain_delete)
{
	struct proxy_limits lim;
	proxy_limits_default(&lim);
	proxy *p;
	struct err e;
	cr_assert_eq(proxy_new(&p, 2, &lim, &e), 0, "%s", e.msg);
	cr_assert_eq(proxy_start(p, &e), 0, "%s", e.msg);
	json_t *r1 = js("{\"listen\":\"127.0.0.1:0\",\"versions\":[{\"version\":\"v1\",\"weight\":9,"
			"\"backends\":[\"127.0.0.1:1\",\"127.0.0.1:2\"]}]}");
	cr_assert_eq(proxy_route_put(p, r1, "a.b", "", &e), 0, "%s", e.msg);
	json_t *g = proxy_route_json(p, "a.b");
	const char *listen = json_string_value(json_object_get(g, "listen"));
	cr_assert(strncmp(listen, "127.0.0.1:", 10) == 0 && strcmp(listen, "127.0.0.1:0") != 0,
		  "port 0 is replaced by the bound port: %s", listen);
	cr_assert_eq(json_array_size(json_object_get(g, "backends_state")), 2);
	/* another route cannot take the same address */
	char body[256];
	snprintf(body, sizeof(body), "{\"listen\":\"%s\",\"versions\":[{\"version\":\"v1\",\"weight\":1,"
		 "\"backends\":[\"127.0.0.1:3\"]}]}", listen);
	json_t *clash = js(body);
	cr_assert_eq(proxy_route_put(p, clash, "c.d", "", &e), -1);
	cr_assert(strstr(e.msg, "listen: ") && strstr(e.msg, "already used by route a.b"), "%s", e.msg);
	json_decref(g);
	/* the name in the body must match the URL's */
	json_t *named = js("{\"name\":\"x\",\"listen\":\"127.0.0.1:0\",\"versions\":[{\"version\":\"v1\","
			   "\"weight\":1,\"backends\":[\"127.0.0.1:3\"]}]}");
	cr_assert_eq(proxy_route_put(p, named, "a.b", "", &e), -1);
	cr_assert(strstr(e.msg, "name: 'x' does not match"), "%s", e.msg);
	/* the config file form needs a name */
	cr_assert_eq(proxy_route_put(p, r1, NULL, "routes[4]", &e), -1);
	cr_assert_str_eq(e.msg, "routes[4].name: is required");
	/* replacing drops backend 2: reported drained (nothing in flight) until the next PUT */
	g = proxy_route_json(p, "a.b");
	json_t *r2 = js(body);
	json_object_set_new(r2, "versions", json_pack("[{sssis[s]}]", "version", "v2", "weight", 1,
						      "backends", "127.0.0.1:1"));
	cr_assert_eq(proxy_route_put(p, r2, "a.b", "", &e), 0, "%s", e.msg);
	json_decref(g);
	/* 127.0.0.1:1 moved to v2 and stays the same backend; 127.0.0.1:2 left: "draining" until
	 * both workers have applied the new route, then "drained" (nothing was in flight) */
	int drained = 0;
	for (int tries = 0; tries < 200 && !drained; tries++) {
		g = proxy_route_json(p, "a.b");
		json_t *st = json_object_get(g, "backends_state");
		cr_assert_eq(json_array_size(st), 2);
		for (size_t i = 0; i < json_array_size(st); i++) {
			json_t *b = json_array_get(st, i);
			const char *state = json_string_value(json_object_get(b, "state"));
			if (!strcmp(json_string_value(json_object_get(b, "addr")), "127.0.0.1:2")) {
				cr_assert(!strcmp(state, "draining") || !strcmp(state, "drained"), "%s", state);
				drained = !strcmp(state, "drained");
			} else {
				cr_assert_str_eq(state, "active");
			}
		}
		json_decref(g);
		if (!drained)
			usleep(5000);
	}
	cr_assert(drained);
	cr_assert_eq(proxy_route_put(p, r2, "a.b", "", &e), 0, "%s", e.msg);
	g = proxy_route_json(p, "a.b");
	cr_assert_eq(json_array_size(json_object_get(g, "backends_state")), 1, "drained ones forgotten");
	json_decref(g);
	cr_assert_eq(proxy_route_delete(p, "a.b"), 0);
	cr_assert_eq(proxy_route_delete(p, "a.b"), -1);
	cr_assert_null(proxy_route_json(p, "a.b"));
	json_decref(r1);
	json_decref(r2);
	json_decref(clash);
	json_decref(named);
	proxy_free(p);
}

Test(table, limits_errors)
{
	struct proxy_limits lim;
	proxy_limits_default(&lim);
	struct err e;
	json_t *j = js("{\"max_head\":512}");
	cr_assert_eq(proxy_limits_parse(j, "limits", &lim, &e), -1);
	cr_assert_str_eq(e.msg, "limits.max_head: must be an integer from 1024 to 1048576");
	json_decref(j);
	j = js("{\"max_conn\":5}");
	cr_assert_eq(proxy_limits_parse(j, "limits", &lim, &e), -1);
	cr_assert_str_eq(e.msg, "limits.max_conn: unknown field");
	json_decref(j);
	j = js("{\"max_headers\":20,\"client_timeout_ms\":500}");
	cr_assert_eq(proxy_limits_parse(j, "limits", &lim, &e), 0);
	cr_assert_eq(lim.max_headers, 20);
	cr_assert_eq(lim.client_timeout_ms, 500);
	cr_assert_eq(lim.max_head, 16384, "absent fields keep their value");
	json_decref(j);
}
