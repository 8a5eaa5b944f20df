/*
 * artifacts: content-addressed release files (see artifacts.h).
 */
#include "store/artifacts.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/sha256.h"

struct artifact_writer {
	int fd;
	uint64_t limit, written;
	struct sha256 hash;
	char id[ARTIFACTS_ID_LEN + 1];
	char path[PATH_MAX];
	char tmp[PATH_MAX];
	char dir[PATH_MAX];
};

static int check_id(const char *id, struct err *e)
{
	if (!artifacts_valid_id(id))
		return err_set(e, "artifact id must be sha256: and 64 lowercase hex digits");
	return 0;
}

int artifacts_path(const char *dir, const char *id, char *buf, size_t len, struct err *e)
{
	assert(e);
	if (check_id(id, e))
		return -1;
	int n = snprintf(buf, len, "%s/%s", dir, id + 7);
	if (n < 0 || (size_t)n >= len)
		return err_set(e, "artifact directory '%s' is too long", dir);
	return 0;
}

int artifacts_stat(const char *dir, const char *id, int64_t *size, struct err *e)
{
	char path[PATH_MAX];
	if (artifacts_path(dir, id, path, sizeof(path), e))
		return -1;
	struct stat st;
	if (stat(path, &st) != 0) {
		if (errno == ENOENT)
			return ARTIFACTS_NOTFOUND;
		return err_set(e, "artifact %s: %s", id, strerror(errno));
	}
	if (!S_ISREG(st.st_mode))
		return err_set(e, "artifact %s: '%s' is not a regular file", id, path);
	if (size)
		*size = (int64_t)st.st_size;
	return 0;
}

int artifacts_begin(struct artifact_writer **out, const char *dir, const char *id, uint64_t limit,
		    struct err *e)
{
	assert(e && out);
	*out = NULL;
	struct artifact_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return err_set(e, "artifact: out of memory");
	w->fd = -1;
	if (artifacts_path(dir, id, w->path, sizeof(w->path), e))
		goto fail;
	int n = snprintf(w->tmp, sizeof(w->tmp), "%s/.tmp-%s-XXXXXX", dir, id + 7);
	if (n < 0 || (size_t)n >= sizeof(w->tmp)) {
		err_set(e, "artifact directory '%s' is too long", dir);
		goto fail;
	}
	snprintf(w->dir, sizeof(w->dir), "%s", dir);
	snprintf(w->id, sizeof(w->id), "%s", id);
	w->fd = mkostemp(w->tmp, O_CLOEXEC);
	/* artifacts are started as programs by the local runtime */
	if (w->fd < 0 || fchmod(w->fd, 0755)) {
		err_set(e, "could not store artifact: %s", strerror(errno));
		goto fail;
	}
	w->limit = limit;
	sha256_init(&w->hash);
	*out = w;
	return 0;
fail:
	artifacts_abort(w);
	return -1;
}

int artifacts_write(struct artifact_writer *w, const void *p, size_t n, struct err *e)
{
	assert(e && w && w->fd >= 0);
	if (n > w->limit - w->written) {
		err_set(e, "artifact %s is larger than %llu bytes", w->id, (unsigned long long)w->limit);
		return ARTIFACTS_TOOBIG;
	}
	sha256_update(&w->hash, p, n);
	const char *c = p;
	size_t off = 0;
	while (off < n) {
		ssize_t k = write(w->fd, c + off, n - off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return err_set(e, "could not store artifact: %s", k < 0 ? strerror(errno) : "short write");
		off += (size_t)k;
	}
	w->written += n;
	return 0;
}

/* A renamed file survives a crash only once its directory entry is on disk too. */
static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

int artifacts_commit(struct artifact_writer *w, int *created, struct err *e)
{
	assert(e && w && created);
	*created = 0;
	unsigned char dg[32];
	char hex[65];
	sha256_final(&w->hash, dg);
	sha256_hex(dg, hex);
	int rc = 0;
	struct stat st;
	if (strcmp(hex, w->id + 7)) {
		err_set(e, "artifact body has digest sha256:%s, not %s", hex, w->id);
		rc = ARTIFACTS_MISMATCH;
	} else if (stat(w->path, &st) == 0 && S_ISREG(st.st_mode)) {
		/* already there: same name, same content */
	} else if (fsync(w->fd) || rename(w->tmp, w->path) || sync_dir(w->dir)) {
		rc = err_set(e, "could not store artifact: %s", strerror(errno));
	} else {
		w->tmp[0] = '\0'; /* it is the artifact now */
		*created = 1;
	}
	artifacts_abort(w);
	return rc;
}

void artifacts_abort(struct artifact_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp[0] && w->fd >= 0)
		unlink(w->tmp);
	free(w);
}

/* ---- the shared store's copy ---- */

int artifacts_share(store *s, const char *dir, const char *id, struct err *e)
{
	assert(s && e);
	char path[PATH_MAX];
	if (artifacts_path(dir, id, path, sizeof(path), e))
		return -1;
	int64_t size, chunks;
	int rc = store_get_artifact(s, id, &size, &chunks, e);
	if (rc != STORE_NOTFOUND)
		return rc ? -1 : 0; /* stored already, or the store failed */
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return ARTIFACTS_NOTFOUND;
		return err_set(e, "artifact %s: %s", id, strerror(errno));
	}
	unsigned char *buf = malloc(ARTIFACTS_CHUNK);
	if (!buf) {
		close(fd);
		return err_set(e, "artifact: out of memory");
	}
	rc = store_begin(s, e);
	int64_t n = 0, total = 0;
	while (!rc) {
		size_t got = 0;
		while (got < ARTIFACTS_CHUNK) { /* whole chunks: only the last is shorter */
			ssize_t k = read(fd, buf + got, ARTIFACTS_CHUNK - got);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				rc = err_set(e, "artifact %s: %s", id, strerror(errno));
				break;
			}
			if (k == 0)
				break;
			got += (size_t)k;
		}
		if (rc || got == 0)
			break;
		rc = store_put_artifact_chunk(s, id, n++, buf, got, e);
		total += (int64_t)got;
		if (got < ARTIFACTS_CHUNK)
			break;
	}
	int created;
	if (!rc)
		rc = store_put_artifact(s, id, total, n, &created, e);
	if (!rc)
		rc = store_commit(s, e);
	else
		store_rollback(s);
	free(buf);
	close(fd);
	return rc ? -1 : 0;
}

int artifacts_fetch(store *s, const char *dir, const char *id, uint64_t limit, struct err *e)
{
	assert(s && e);
	int rc = artifacts_stat(dir, id, NULL, e);
	if (rc != ARTIFACTS_NOTFOUND)
		return rc;
	int64_t size, chunks;
	rc = store_get_artifact(s, id, &size, &chunks, e);
	if (rc)
		return rc == STORE_NOTFOUND ? ARTIFACTS_NOTFOUND : -1;
	if ((uint64_t)size > limit)
		return err_set(e, "artifact %s in the store has %lld bytes, more than %llu", id, (long long)size,
			       (unsigned long long)limit);
	unsigned char *buf = malloc(ARTIFACTS_CHUNK);
	struct artifact_writer *w = NULL;
	if (!buf)
		return err_set(e, "artifact: out of memory");
	rc = artifacts_begin(&w, dir, id, (uint64_t)size, e);
	for (int64_t n = 0; !rc && n < chunks; n++) {
		size_t len = 0;
		rc = store_get_artifact_chunk(s, id, n, buf, ARTIFACTS_CHUNK, &len, e);
		if (rc == STORE_NOTFOUND) /* a row exists only with all its chunks */
			rc = err_set(e, "store: artifact %s lacks chunk %lld", id, (long long)n);
		if (!rc)
			rc = artifacts_write(w, buf, len, e);
		if (rc == ARTIFACTS_TOOBIG)
			err_set(e, "artifact %s in the store is larger than its size %lld", id, (long long)size);
	}
	free(buf);
	if (!rc && w->written != (uint64_t)size)
		rc = err_set(e, "artifact %s in the store has %llu bytes, not its size %lld", id,
			     (unsigned long long)w->written, (long long)size);
	if (rc) {
		artifacts_abort(w);
		return rc == ARTIFACTS_TOOBIG ? ARTIFACTS_MISMATCH : rc < 0 ? rc : -1;
	}
	int created;
	rc = artifacts_commit(w, &created, e);
	if (rc == ARTIFACTS_MISMATCH) {
		struct err inner = *e;
		err_set(e, "the store's copy of artifact %s is corrupt: %s", id, inner.msg);
	}
	return rc;
}

int artifacts_find(store *s, const char *dir, const char *id, int64_t *size, struct err *e)
{
	int rc = artifacts_stat(dir, id, size, e);
	if (rc != ARTIFACTS_NOTFOUND || !s || !store_shared(s))
		return rc;
	int64_t sz, chunks;
	rc = store_get_artifact(s, id, &sz, &chunks, e);
	if (rc == STORE_NOTFOUND)
		return ARTIFACTS_NOTFOUND;
	if (rc)
		return -1;
	if (size)
		*size = sz;
	return 0;
}
