/*
 * secret: see secret.h.
 */
#include "util/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Writes secret and a newline to a new file tmp (created 0600, never through a link), synced. */
static int write_tmp(const char *tmp, const char *secret, struct err *e)
{
	size_t n = strlen(secret);
	if (n == 0 || n > SECRET_MAX)
		return err_set(e, "%s: a secret of %zu bytes (1 to %d)", tmp, n, SECRET_MAX);
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return err_set(e, "could not create %s: %s", tmp, strerror(errno));
	char line[SECRET_MAX + 1];
	memcpy(line, secret, n);
	line[n] = '\n';
	int ok = write(fd, line, n + 1) == (ssize_t)(n + 1) && fsync(fd) == 0;
	int err = errno;
	ok &= close(fd) == 0;
	memset(line, 0, sizeof(line));
	if (!ok) {
		unlink(tmp);
		return err_set(e, "could not write %s: %s", tmp, strerror(err));
	}
	return 0;
}

int secret_write(const char *path, const char *secret, struct err *e)
{
	char tmp[4200];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return err_set(e, "secret file path too long: %s", path);
	if (write_tmp(tmp, secret, e))
		return -1;
	if (rename(tmp, path)) {
		int err = errno;
		unlink(tmp);
		return err_set(e, "could not write %s: %s", path, strerror(err));
	}
	return 0;
}

int secret_read(const char *path, char *out, size_t cap, struct err *e)
{
	out[0] = 0;
	if (cap < SECRET_MAX + 1)
		return err_set(e, "%s: buffer too small for a secret", path);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		return err_set(e, "cannot open %s: %s", path, strerror(errno));
	}
	struct stat st;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(e, "%s: not a regular file", path);
	}
	if (st.st_mode & 077) {
		close(fd);
		return err_set(e, "%s can be read or written by other users (mode %03o): chmod 600 it",
			       path, (unsigned)(st.st_mode & 0777));
	}
	char b[SECRET_MAX + 3];
	ssize_t n = read(fd, b, sizeof(b) - 1);
	int err = errno;
	close(fd);
	if (n < 0)
		return err_set(e, "cannot read %s: %s", path, strerror(err));
	b[n] = 0;
	size_t len = strcspn(b, "\n");
	if (len == (size_t)n && n > SECRET_MAX) {
		memset(b, 0, sizeof(b));
		return err_set(e, "%s: the secret is longer than %d bytes", path, SECRET_MAX);
	}
	size_t s = 0;
	while (s < len && (b[s] == ' ' || b[s] == '\t'))
		s++;
	while (len > s && (b[len - 1] == ' ' || b[len - 1] == '\t' || b[len - 1] == '\r'))
		len--;
	for (size_t i = s; i < len; i++) {
		if ((unsigned char)b[i] < 0x21 || b[i] == 0x7f) {
			memset(b, 0, sizeof(b));
			return err_set(e, "%s: the secret holds a blank or control character", path);
		}
	}
	if (len == s)
		return err_set(e, "%s: the first line is empty", path);
	memcpy(out, b + s, len - s);
	out[len - s] = 0;
	memset(b, 0, sizeof(b));
	return 0;
}

int secret_equal(const char *presented, size_t len, const char *expected)
{
	size_t n = strlen(expected);
	unsigned char diff = len != n;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(expected[i] ^ (i < len ? presented[i] : 0));
	return diff == 0;
}
