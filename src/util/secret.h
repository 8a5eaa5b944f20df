/*
 * secret: files that hold one secret line (a token), readable by their owner only.
 *
 * The server keeps its bootstrap admin token and a copy of the proxy admin API's token in such
 * files under its data directory; `sluice proxy --admin-token-file` reads one. A file is written
 * whole or not at all (a temporary file, fsync, rename), created 0600 and never followed
 * through a symbolic link.
 */
#ifndef SLUICE_SECRET_H
#define SLUICE_SECRET_H

#include <stddef.h>

#include "util/log.h"

/* The longest secret these files hold (a line of at most this many bytes). */
#define SECRET_MAX 256

/*
 * Writes `secret` and a newline to path, replacing the file atomically. Returns 0, or -1 with
 * e naming the path and the system's reason (the old file, if any, is left as it was).
 */
__attribute__((warn_unused_result)) int secret_write(const char *path, const char *secret,
						    struct err *e);

/*
 * Reads the first line of path into out (cap bytes, at least SECRET_MAX + 1), without its
 * newline and surrounding blanks. Returns 0; 1 when the file does not exist (out is ""); -1
 * with e when it cannot be read, is empty, holds a longer line or a control character, or can
 * be read or written by other users than its owner (a secret that leaked is not one).
 */
__attribute__((warn_unused_result)) int secret_read(const char *path, char *out /* OUT */,
						   size_t cap, struct err *e);

/* Compares a presented secret with the expected one in time independent of where they differ
 * (the length of `expected` may show). 1 when equal. */
int secret_equal(const char *presented, size_t len, const char *expected);

#endif
