/*
 * log: messages for people, and the project's one error convention.
 *
 * Functions return int: 0 on success, negative on failure. A function that fails writes what
 * went wrong either to a caller's `struct err` (library code, so the caller decides how to show
 * it) or to stderr through error() (commands). Messages are lowercase without a full stop and
 * say what to fix: `could not open '%s': %s`.
 */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stddef.h>

#define ERR_MSG_MAX 512

/* A caller-owned error message. `msg` is empty until err_set. */
struct err {
	char msg[ERR_MSG_MAX];
};

/* Formats into e (when e is not NULL) and returns -1, so `return err_set(e, ...);` reads well. */
__attribute__((format(printf, 2, 3))) int err_set(struct err *e, const char *fmt, ...);

/* Writes "sluice: error: ..." to stderr and returns -1. */
__attribute__((format(printf, 1, 2))) int error(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void warning(const char *fmt, ...);
/* Startup-only: prints and exits with status 2. */
__attribute__((format(printf, 1, 2), noreturn)) void die(const char *fmt, ...);

/* Timestamped log lines for long-running modes (server, proxy). */
enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
void log_set_level(enum log_level lvl);
void log_set_prefix(const char *prefix);
__attribute__((format(printf, 2, 3))) void log_msg(enum log_level lvl, const char *fmt, ...);
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
