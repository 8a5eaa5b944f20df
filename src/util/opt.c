#include "util/opt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/shape.h"

/* The text as given, cut at 64 bytes, for "got '...'". */
#define GIVEN "%.64s%s"
#define GIVEN_ARGS(s) (s), strlen(s) > 64 ? "..." : ""

/* Whether s is only [-]digits (what strtoll would take in full, without its leniencies:
 * leading space, '+', "0x"). */
static int plain_integer(const char *s)
{
	if (*s == '-')
		s++;
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

int opt_int(const char *name, const char *arg, long long min, long long max, long long *out, struct err *e)
{
	if (plain_integer(arg)) {
		errno = 0;
		char *end;
		long long v = strtoll(arg, &end, 10);
		if (!errno && !*end && v >= min && v <= max) {
			*out = v;
			return 0;
		}
	}
	return err_set(e, "%s: expected an integer from %lld to %lld, got '" GIVEN "'", name, min, max,
		       GIVEN_ARGS(arg));
}

/* A decimal number: digits with at most one '.', an optional exponent; no sign but a leading
 * '-', nothing strtod accepts beyond that (spaces, "nan", "inf", hex). */
static int plain_number(const char *s)
{
	if (*s == '-')
		s++;
	int digits = 0, dot = 0;
	for (; *s && *s != 'e' && *s != 'E'; s++) {
		if (*s >= '0' && *s <= '9')
			digits++;
		else if (*s == '.' && !dot)
			dot = 1;
		else
			return 0;
	}
	if (!digits)
		return 0;
	if (*s) {
		s++;
		if (*s == '-' || *s == '+')
			s++;
		if (!*s)
			return 0;
		for (; *s; s++)
			if (*s < '0' || *s > '9')
				return 0;
	}
	return 1;
}

static int read_number(const char *s, double *out)
{
	if (!plain_number(s))
		return -1;
	errno = 0;
	char *end;
	double v = strtod(s, &end);
	if (errno || *end || !isfinite(v))
		return -1;
	*out = v;
	return 0;
}

int opt_double(const char *name, const char *arg, double min, double max, double *out, struct err *e)
{
	double v;
	if (read_number(arg, &v) == 0 && v >= min && v <= max) {
		*out = v;
		return 0;
	}
	return err_set(e, "%s: expected a number from %g to %g, got '" GIVEN "'", name, min, max, GIVEN_ARGS(arg));
}

int opt_duration_ms(const char *name, const char *arg, uint64_t min_ms, uint64_t max_ms, uint64_t *out,
		    struct err *e)
{
	uint64_t ms = 0;
	double secs;
	int ok;
	if (read_number(arg, &secs) == 0)
		ok = secs >= 0 && secs * 1000.0 <= (double)UINT64_MAX / 2 && (ms = (uint64_t)llround(secs * 1000.0), 1);
	else
		ok = plain_integer(arg) ? 0 : shape_duration_ms(arg, &ms) == 0;
	if (ok && ms >= min_ms && ms <= max_ms) {
		*out = ms;
		return 0;
	}
	char lo[48], hi[48];
	return err_set(e,
		       "%s: expected a duration like 30s, 1m30s or 250ms (a number alone is seconds) from %s "
		       "to %s, got '" GIVEN "'",
		       name, shape_duration_fmt(min_ms, lo, sizeof(lo)), shape_duration_fmt(max_ms, hi, sizeof(hi)),
		       GIVEN_ARGS(arg));
}

int opt_rate(const char *name, const char *arg, double min, double max, double *out, struct err *e)
{
	char num[64];
	size_t n = strlen(arg);
	if (n >= 2 && !strcmp(arg + n - 2, "/s"))
		n -= 2;
	double v;
	if (n < sizeof(num)) {
		memcpy(num, arg, n);
		num[n] = '\0';
		if (read_number(num, &v) == 0 && v >= min && v <= max) {
			*out = v;
			return 0;
		}
	}
	return err_set(e, "%s: expected a rate per second from %g to %g (like 50 or 50/s), got '" GIVEN "'", name,
		       min, max, GIVEN_ARGS(arg));
}

int opt_enum(const char *name, const char *arg, const char *const *choices, int *out, struct err *e)
{
	char list[256] = "";
	size_t len = 0;
	for (int i = 0; choices[i]; i++) {
		if (!strcmp(arg, choices[i])) {
			*out = i;
			return 0;
		}
		int w = snprintf(list + len, sizeof(list) - len, "%s%s", i ? (choices[i + 1] ? ", " : " or ") : "",
				 choices[i]);
		if (w > 0 && (size_t)w < sizeof(list) - len)
			len += (size_t)w;
	}
	return err_set(e, "%s: expected %s, got '" GIVEN "'", name, list, GIVEN_ARGS(arg));
}

int opt_name(const char *name, const char *arg, enum name_kind kind, struct err *e)
{
	if (name_ok(kind, arg))
		return 0;
	return err_set(e, "%s: expected %s, got '" GIVEN "'", name, name_rule(kind), GIVEN_ARGS(arg));
}

static int no_space_or_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

int opt_hostport(const char *name, const char *arg, struct err *e)
{
	const char *colon = strrchr(arg, ':');
	int ok = colon && colon > arg && no_space_or_control(arg);
	if (ok && arg[0] == '[')
		ok = colon[-1] == ']' && colon - arg > 2 && !memchr(arg + 1, ']', (size_t)(colon - arg - 2));
	else if (ok)
		ok = !memchr(arg, ':', (size_t)(colon - arg)) && !strpbrk(arg, "[]/");
	long long port;
	struct err ignored;
	if (ok && opt_int(name, colon + 1, 0, 65535, &port, &ignored) == 0)
		return 0;
	return err_set(e, "%s: expected HOST:PORT (a port 0..65535, an IPv6 address in brackets), got '" GIVEN "'",
		       name, GIVEN_ARGS(arg));
}

int opt_url(const char *name, const char *arg, struct err *e)
{
	const char *rest = !strncmp(arg, "http://", 7) ? arg + 7 : !strncmp(arg, "https://", 8) ? arg + 8 : NULL;
	if (rest && *rest && *rest != '/' && *rest != ':' && no_space_or_control(arg) && strlen(arg) < 2048)
		return 0;
	return err_set(e, "%s: expected an http:// or https:// URL with a host, got '" GIVEN "'", name,
		       GIVEN_ARGS(arg));
}

int opt_positional(const char *cmd, int n, char *const *args, int min, int max, const char *what, struct err *e)
{
	if (max >= 0 && n > max)
		return err_set(e, "%s: unexpected argument '" GIVEN "' (expected %s)", cmd, GIVEN_ARGS(args[max]),
			       what);
	if (n < min)
		return err_set(e, "%s: expected %s, got %d argument%s", cmd, what, n, n == 1 ? "" : "s");
	return 0;
}

int opt_getopt_error(const char *cmd, int ret, int optopt, const char *word, struct err *e)
{
	char shown[80];
	/* a long option as written (without "=value"); a short one alone, even inside a group
	 * such as "-wx" (then optind has not moved past it and word is not it) */
	if (word && !strncmp(word, "--", 2))
		snprintf(shown, sizeof(shown), "%.*s", (int)strcspn(word, "="), word);
	else if (optopt > 32 && optopt < 127)
		snprintf(shown, sizeof(shown), "-%c", optopt);
	else
		snprintf(shown, sizeof(shown), "%.64s", word ? word : "?");
	if (ret == ':')
		return err_set(e, "%s: option '%.64s' needs a value; see 'sluice %s --help'", cmd, shown, cmd);
	return err_set(e, "%s: unknown option '%.64s'; see 'sluice %s --help'", cmd, shown, cmd);
}
