/* Unit tests of src/util/opt: each reader on a table of good values and of wrong ones, with
 * the exact message of the wrong ones (they name the option, what is expected and the input). */
#include <criterion/criterion.h>
#include <string.h>

#include "util/opt.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

Test(opt, integers)
{
	struct {
		const char *in;
		long long min, max;
		int rc;
		long long v;
	} cases[] = {
		{"0", 0, 10, 0, 0},        {"10", 0, 10, 0, 10},      {"-5", -10, 10, 0, -5},
		{"007", 0, 10, 0, 7},      {"11", 0, 10, -1, 0},      {"-1", 0, 10, -1, 0},
		{"", 0, 10, -1, 0},        {"-", 0, 10, -1, 0},       {" 1", 0, 10, -1, 0},
		{"1 ", 0, 10, -1, 0},      {"+1", 0, 10, -1, 0},      {"0x10", 0, 100, -1, 0},
		{"1e3", 0, 10000, -1, 0},  {"1.0", 0, 10, -1, 0},     {"5abc", 0, 10, -1, 0},
		{"99999999999999999999", 0, 9223372036854775807LL, -1, 0},
		{"9223372036854775807", 0, 9223372036854775807LL, 0, 9223372036854775807LL},
	};
	for (size_t i = 0; i < N(cases); i++) {
		long long v = 4242;
		struct err e = {""};
		int rc = opt_int("--n", cases[i].in, cases[i].min, cases[i].max, &v, &e);
		cr_expect_eq(rc, cases[i].rc, "'%s': rc %d (%s)", cases[i].in, rc, e.msg);
		cr_expect_eq(v, rc ? 4242 : cases[i].v, "'%s': %lld (untouched on failure)", cases[i].in, v);
	}
	long long v;
	struct err e;
	cr_expect_eq(opt_int("--workers", "5x", 1, 256, &v, &e), -1);
	cr_expect_str_eq(e.msg, "--workers: expected an integer from 1 to 256, got '5x'");
}

Test(opt, numbers_and_rates)
{
	struct {
		const char *in;
		int rc;
		double v;
	} num[] = {
		{"0.5", 0, 0.5}, {"1", 0, 1},     {".5", 0, 0.5},  {"5.", 0, 5},   {"1e1", 0, 10},
		{"nan", -1, 0},  {"inf", -1, 0},  {"0x1", -1, 0},  {" 1", -1, 0},  {"1 ", -1, 0},
		{"", -1, 0},     {"1e", -1, 0},   {"1..2", -1, 0}, {"11", -1, 0},  {"-0.1", -1, 0},
		{"1e999", -1, 0}, {"+1", -1, 0},
	};
	for (size_t i = 0; i < N(num); i++) {
		double v = -7;
		struct err e = {""};
		int rc = opt_double("--x", num[i].in, 0, 10, &v, &e);
		cr_expect_eq(rc, num[i].rc, "'%s': rc %d (%s)", num[i].in, rc, e.msg);
		cr_expect_eq(v, rc ? -7 : num[i].v, "'%s': %g", num[i].in, v);
	}
	struct {
		const char *in;
		int rc;
		double v;
	} rate[] = {
		{"50", 0, 50}, {"50/s", 0, 50}, {"0.5/s", 0, 0.5}, {"/s", -1, 0}, {"50/m", -1, 0},
		{"50 /s", -1, 0}, {"0", -1, 0}, {"20001", -1, 0},
	};
	for (size_t i = 0; i < N(rate); i++) {
		double v = -7;
		struct err e = {""};
		int rc = opt_rate("--rate", rate[i].in, 0.001, 20000, &v, &e);
		cr_expect_eq(rc, rate[i].rc, "'%s': rc %d (%s)", rate[i].in, rc, e.msg);
		cr_expect_eq(v, rc ? -7 : rate[i].v, "'%s': %g", rate[i].in, v);
	}
	double v;
	struct err e;
	cr_expect_eq(opt_double("--confidence", "high", 0.5, 0.999999, &v, &e), -1);
	cr_expect_str_eq(e.msg, "--confidence: expected a number from 0.5 to 0.999999, got 'high'");
	cr_expect_eq(opt_rate("--rate", "fast", 0.001, 20000, &v, &e), -1);
	cr_expect_str_eq(e.msg, "--rate: expected a rate per second from 0.001 to 20000 (like 50 or 50/s), got 'fast'");
}

Test(opt, durations)
{
	struct {
		const char *in;
		int rc;
		uint64_t ms;
	} cases[] = {
		{"30", 0, 30000},    {"0.5", 0, 500},     {"20.000", 0, 20000}, {"30s", 0, 30000},
		{"1m30s", 0, 90000}, {"250ms", 0, 250},   {"2h", 0, 7200000},   {"1h2m", 0, 3720000},
		{"0", -1, 0},        {"-1", -1, 0},       {"30x", -1, 0},       {"s", -1, 0},
		{"30s1m", -1, 0},    {"1.5s", -1, 0},     {"", -1, 0},          {" 30", -1, 0},
		{"25h", -1, 0},      {"1e30", -1, 0},     {"nan", -1, 0},
	};
	for (size_t i = 0; i < N(cases); i++) {
		uint64_t ms = 4242;
		struct err e = {""};
		int rc = opt_duration_ms("--timeout", cases[i].in, 1, 24 * 3600 * 1000, &ms, &e);
		cr_expect_eq(rc, cases[i].rc, "'%s': rc %d (%s)", cases[i].in, rc, e.msg);
		cr_expect_eq(ms, rc ? 4242 : cases[i].ms, "'%s': %llu ms", cases[i].in, (unsigned long long)ms);
	}
	uint64_t ms;
	struct err e;
	cr_expect_eq(opt_duration_ms("--timeout", "5x", 1000, 86400000, &ms, &e), -1);
	cr_expect_str_eq(e.msg, "--timeout: expected a duration like 30s, 1m30s or 250ms (a number alone is "
				"seconds) from 1s to 24h, got '5x'");
}

Test(opt, enums_names_addresses_urls)
{
	static const char *const formats[] = {"text", "json", NULL};
	static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
	int k = -1;
	struct err e;
	cr_expect_eq(opt_enum("-o", "json", formats, &k, &e), 0);
	cr_expect_eq(k, 1);
	cr_expect_eq(opt_enum("-o", "yaml", formats, &k, &e), -1);
	cr_expect_str_eq(e.msg, "-o: expected text or json, got 'yaml'");
	cr_expect_eq(k, 1, "untouched");
	cr_expect_eq(opt_enum("--log-level", "JSON", levels, &k, &e), -1);
	cr_expect_str_eq(e.msg, "--log-level: expected debug, info, warn or error, got 'JSON'");

	cr_expect_eq(opt_name("SERVICE", "metadata", NAME_OBJECT, &e), 0);
	cr_expect_eq(opt_name("SERVICE", "../x", NAME_OBJECT, &e), -1);
	cr_expect(strstr(e.msg, "SERVICE: expected a name of lowercase letters") && strstr(e.msg, "got '../x'"),
		  "%s", e.msg);
	cr_expect_eq(opt_name("VERSION", "v1.2.3+b", NAME_VERSION, &e), 0);
	cr_expect_eq(opt_name("VERSION", "v1/2", NAME_VERSION, &e), -1);

	const char *good[] = {"127.0.0.1:7070", "localhost:0", "[::1]:7070", "0.0.0.0:65535"};
	const char *bad[] = {"127.0.0.1", ":7070", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:70x",
			     "::1:7070", "[::1:7070", "[]:1", "a b:1", "host/x:1", "127.0.0.1:-1"};
	for (size_t i = 0; i < N(good); i++)
		cr_expect_eq(opt_hostport("--listen", good[i], &e), 0, "%s: %s", good[i], e.msg);
	for (size_t i = 0; i < N(bad); i++)
		cr_expect_eq(opt_hostport("--listen", bad[i], &e), -1, "%s", bad[i]);
	cr_expect_str_eq(e.msg, "--listen: expected HOST:PORT (a port 0..65535, an IPv6 address in brackets), got "
				"'127.0.0.1:-1'");

	cr_expect_eq(opt_url("--server", "http://127.0.0.1:7070", &e), 0);
	cr_expect_eq(opt_url("--server", "https://sluice.example/", &e), 0);
	const char *badurl[] = {"127.0.0.1:7070", "http://", "ftp://x", "http:// x", "http:///x"};
	for (size_t i = 0; i < N(badurl); i++)
		cr_expect_eq(opt_url("--server", badurl[i], &e), -1, "%s", badurl[i]);
	cr_expect_str_eq(e.msg, "--server: expected an http:// or https:// URL with a host, got 'http:///x'");

	/* a long input is cut in the message */
	char big[200];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_expect_eq(opt_enum("-o", big, formats, &k, &e), -1);
	cr_expect_lt(strlen(e.msg), 120, "%s", e.msg);
	cr_expect(strstr(e.msg, "...'"), "%s", e.msg);
}

Test(opt, positionals_and_getopt_errors)
{
	char *args[] = {"metadata", "v2", "extra"};
	struct err e;
	cr_expect_eq(opt_positional("deploy", 2, args, 2, 2, "SERVICE VERSION", &e), 0);
	cr_expect_eq(opt_positional("deploy", 3, args, 2, 2, "SERVICE VERSION", &e), -1);
	cr_expect_str_eq(e.msg, "deploy: unexpected argument 'extra' (expected SERVICE VERSION)");
	cr_expect_eq(opt_positional("deploy", 1, args, 2, 2, "SERVICE VERSION", &e), -1);
	cr_expect_str_eq(e.msg, "deploy: expected SERVICE VERSION, got 1 argument");
	cr_expect_eq(opt_positional("plan", 3, args, 1, -1, "SERVICE=VERSION...", &e), 0);
	cr_expect_eq(opt_positional("shutdown", 1, args, 0, 0, "no argument", &e), -1);
	cr_expect_str_eq(e.msg, "shutdown: unexpected argument 'metadata' (expected no argument)");

	cr_expect_eq(opt_getopt_error("deploy", '?', 0, "--frobnicate=1", &e), -1);
	cr_expect_str_eq(e.msg, "deploy: unknown option '--frobnicate'; see 'sluice deploy --help'");
	cr_expect_eq(opt_getopt_error("deploy", ':', 'e', "--env", &e), -1);
	cr_expect_str_eq(e.msg, "deploy: option '--env' needs a value; see 'sluice deploy --help'");
	cr_expect_eq(opt_getopt_error("status", '?', 'z', "-wz", &e), -1);
	cr_expect_str_eq(e.msg, "status: unknown option '-z'; see 'sluice status --help'");
	cr_expect_eq(opt_getopt_error("apply", ':', 'f', "-f", &e), -1);
	cr_expect_str_eq(e.msg, "apply: option '-f' needs a value; see 'sluice apply --help'");
}
