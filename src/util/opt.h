/*
 * opt: the one strict reader of command-line option values, shared by every command (the
 * CLI, `sluice server`, `sluice proxy`), so that a value is refused the same way everywhere.
 *
 * Each reader takes the option's name as the user wrote it ("--timeout"), the text, the
 * limits, and writes the value to *out only on success. A value is read entirely: no leading
 * or trailing space, no trailing garbage, no overflow, within [min, max]. On failure it
 * returns -1 with one message in e that names the option, says what was expected and quotes
 * (at most 64 bytes of) what was given:
 *     --timeout: expected a duration like 30s, 1m30s or 250ms (a number alone is seconds) from 1s to 1d, got '5x'
 * Callers print it and exit with EXIT_USAGE (commands.h) before doing anything.
 *
 * Pure: no I/O, no global state (opt_getopt_error reads getopt's optopt, given as an argument).
 */
#ifndef SLUICE_OPT_H
#define SLUICE_OPT_H

#include <stdint.h>

#include "util/log.h"
#include "util/name.h"

/* An integer in [min, max], decimal digits with an optional leading '-'. */
__attribute__((warn_unused_result)) int opt_int(const char *name, const char *arg, long long min,
						long long max, long long *out /* OUT */, struct err *e);

/* A finite decimal number in [min, max] ("0.5", "2", "1e3"; not "nan", "inf" or hex). */
__attribute__((warn_unused_result)) int opt_double(const char *name, const char *arg, double min,
						   double max, double *out /* OUT */, struct err *e);

/*
 * A duration in [min_ms, max_ms] milliseconds: "250ms", "30s", "1m30s", "2h" (units h, m,
 * s, ms in that order, as in manifests), or a number alone, which is seconds and may have a
 * fraction ("20", "0.5"): what the commands always took.
 */
__attribute__((warn_unused_result)) int opt_duration_ms(const char *name, const char *arg, uint64_t min_ms,
							uint64_t max_ms, uint64_t *out /* OUT */,
							struct err *e);

/* A rate in events per second in [min, max]: "50" or "50/s" ("0.5/s"). */
__attribute__((warn_unused_result)) int opt_rate(const char *name, const char *arg, double min, double max,
						 double *out /* OUT */, struct err *e);

/* One of choices (NULL-terminated); *out is its index. */
__attribute__((warn_unused_result)) int opt_enum(const char *name, const char *arg,
						 const char *const *choices, int *out /* OUT */,
						 struct err *e);

/* A name of the given kind (util/name.h): what names a service, an environment, a version. */
__attribute__((warn_unused_result)) int opt_name(const char *name, const char *arg, enum name_kind kind,
						 struct err *e);

/* "HOST:PORT" with a non-empty host ("[v6]" in brackets) and a port 0..65535 (0: any). */
__attribute__((warn_unused_result)) int opt_hostport(const char *name, const char *arg, struct err *e);

/* An http:// or https:// URL with a host and no space or control character. */
__attribute__((warn_unused_result)) int opt_url(const char *name, const char *arg, struct err *e);

/*
 * The positional arguments of command `cmd`: between min and max of them (max -1: no limit),
 * described by `what` ("SERVICE VERSION"). Messages: "deploy: expected SERVICE VERSION, got 1
 * argument" and "deploy: unexpected argument 'x' (expected SERVICE VERSION)".
 */
__attribute__((warn_unused_result)) int opt_positional(const char *cmd, int n, char *const *args, int min,
						       int max, const char *what, struct err *e);

/*
 * The message for what getopt_long returned when the option string starts with ':' and
 * opterr is 0: ret ':' (a value is missing) or '?' (unknown or ambiguous option); `optopt` is
 * getopt's and `word` the argument it stopped at (argv[optind - 1]). Always returns -1.
 */
int opt_getopt_error(const char *cmd, int ret, int optopt, const char *word, struct err *e);

#endif
