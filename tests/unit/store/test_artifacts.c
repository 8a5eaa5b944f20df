/*
 * artifacts: ids, the streaming writer (digest and size checks, atomic placement, cleanup),
 * and lookups that tell a missing artifact from a failure.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/artifacts.h"
#include "util/sha256.h"

static char dir[128];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/sluice-artifacts-test-%d", getpid());
	mkdir(dir, 0755);
}

static void teardown(void)
{
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

static void id_of(const char *content, char id[ARTIFACTS_ID_LEN + 1])
{
	struct sha256 h;
	unsigned char dg[32];
	char hex[65];
	sha256_init(&h);
	sha256_update(&h, content, strlen(content));
	sha256_final(&h, dg);
	sha256_hex(dg, hex);
	snprintf(id, ARTIFACTS_ID_LEN + 1, "sha256:%s", hex);
}

/* Files in dir (the temporary ones included). */
static int entries(void)
{
	DIR *d = opendir(dir);
	cr_assert_not_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.' || !strncmp(de->d_name, ".tmp-", 5);
	closedir(d);
	return n;
}

static int put(const char *id, const char *content, uint64_t limit, int *created, struct err *e)
{
	struct artifact_writer *w;
	int rc = artifacts_begin(&w, dir, id, limit, e);
	if (rc)
		return rc;
	/* in two chunks, as a streamed upload would come */
	size_t half = strlen(content) / 2;
	rc = artifacts_write(w, content, half, e);
	if (!rc)
		rc = artifacts_write(w, content + half, strlen(content) - half, e);
	if (rc) {
		artifacts_abort(w);
		return rc;
	}
	return artifacts_commit(w, created, e);
}

Test(artifacts, ids_are_sha256_and_64_lowercase_hex)
{
	char good[ARTIFACTS_ID_LEN + 1];
	id_of("x", good);
	cr_assert(artifacts_valid_id(good));
	const char *bad[] = {
		"", "sha256:", "sha256:abc", "md5:d41d8cd98f00b204e9800998ecf8427e",
		"sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
		"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
		"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
		"sha256:../../../../../../../../../../../../../../../../../../../etc/pass",
		NULL,
	};
	for (int i = 0; i < (int)(sizeof(bad) / sizeof(bad[0])); i++)
		cr_assert(!artifacts_valid_id(bad[i]), "accepted '%s'", bad[i] ? bad[i] : "(null)");
	char buf[256];
	struct err e;
	cr_assert_eq(artifacts_path("/d", bad[7], buf, sizeof(buf), &e), -1);
	cr_assert_eq(artifacts_path("/d", good, buf, sizeof(buf), &e), 0);
	cr_assert_eq(strncmp(buf, "/d/", 3), 0);
	cr_assert_str_eq(buf + 3, good + 7);
	cr_assert_eq(artifacts_path("/d", good, buf, 10, &e), -1, "a short buffer is an error");
}

Test(artifacts, a_written_artifact_is_in_place_once, .init = setup, .fini = teardown)
{
	char id[ARTIFACTS_ID_LEN + 1];
	id_of("#!/bin/sh\necho hello\n", id);
	struct err e;
	int64_t size = -1;
	cr_assert_eq(artifacts_stat(dir, id, &size, &e), ARTIFACTS_NOTFOUND);
	int created = -1;
	cr_assert_eq(put(id, "#!/bin/sh\necho hello\n", 1 << 20, &created, &e), 0, "%s", e.msg);
	cr_assert_eq(created, 1);
	cr_assert_eq(artifacts_stat(dir, id, &size, &e), 0, "%s", e.msg);
	cr_assert_eq(size, 21);
	char path[256];
	cr_assert_eq(artifacts_path(dir, id, path, sizeof(path), &e), 0);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert(st.st_mode & S_IXUSR, "artifacts are programs");
	cr_assert_eq(put(id, "#!/bin/sh\necho hello\n", 1 << 20, &created, &e), 0, "%s", e.msg);
	cr_assert_eq(created, 0, "the same content again is not written twice");
	cr_assert_eq(entries(), 1, "no temporary file is left");
}

Test(artifacts, a_wrong_digest_or_size_leaves_nothing, .init = setup, .fini = teardown)
{
	char id[ARTIFACTS_ID_LEN + 1];
	id_of("expected", id);
	struct err e;
	int created = -1;
	cr_assert_eq(put(id, "something else", 1 << 20, &created, &e), ARTIFACTS_MISMATCH);
	cr_assert(strstr(e.msg, "has digest sha256:"), "%s", e.msg);
	cr_assert_eq(created, 0);
	cr_assert_eq(put(id, "expected", 4, &created, &e), ARTIFACTS_TOOBIG);
	cr_assert(strstr(e.msg, "larger than 4 bytes"), "%s", e.msg);
	cr_assert_eq(entries(), 0);
	cr_assert_eq(artifacts_stat(dir, id, NULL, &e), ARTIFACTS_NOTFOUND);
	cr_assert_eq(put(id, "expected", 8, &created, &e), 0, "exactly the limit is allowed: %s", e.msg);
}

Test(artifacts, abort_removes_the_upload, .init = setup, .fini = teardown)
{
	char id[ARTIFACTS_ID_LEN + 1];
	id_of("abc", id);
	struct err e;
	struct artifact_writer *w;
	cr_assert_eq(artifacts_begin(&w, dir, id, 100, &e), 0, "%s", e.msg);
	cr_assert_eq(artifacts_write(w, "ab", 2, &e), 0);
	cr_assert_eq(entries(), 1);
	artifacts_abort(w);
	cr_assert_eq(entries(), 0);
	artifacts_abort(NULL);
}

Test(artifacts, a_lookup_that_fails_is_not_a_missing_artifact, .init = setup, .fini = teardown)
{
	char id[ARTIFACTS_ID_LEN + 1];
	id_of("abc", id);
	struct err e;
	/* a directory where the file should be: it cannot be told to exist */
	char path[256];
	cr_assert_eq(artifacts_path(dir, id, path, sizeof(path), &e), 0);
	cr_assert_eq(mkdir(path, 0755), 0);
	cr_assert_eq(artifacts_stat(dir, id, NULL, &e), -1);
	cr_assert(strstr(e.msg, "not a regular file"), "%s", e.msg);
	/* a directory that cannot be written: begin fails, with the reason */
	struct artifact_writer *w = NULL;
	char missing[200];
	snprintf(missing, sizeof(missing), "%s/no/such/dir", dir);
	cr_assert_eq(artifacts_begin(&w, missing, id, 100, &e), -1);
	cr_assert_null(w);
	cr_assert(strstr(e.msg, "could not store artifact"), "%s", e.msg);
	cr_assert_eq(artifacts_stat(dir, "sha256:nothex", NULL, &e), -1, "an invalid id is refused");
}

/* ---- a store's copy (artifacts_share / artifacts_fetch), on SQLite (same contract as a shared
 * store's) ---- */

static store *scratch_store(void)
{
	char path[200];
	snprintf(path, sizeof(path), "%s/store.db", dir);
	store *s;
	struct err e;
	cr_assert_eq(store_open(&s, path, &e), 0, "%s", e.msg);
	return s;
}

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = malloc(1 << 20);
	*len = fread(buf, 1, 1 << 20, f);
	fclose(f);
	return buf;
}

Test(artifacts, shared_through_a_store_and_fetched_elsewhere, .init = setup, .fini = teardown)
{
	/* larger than a chunk, not a multiple of it */
	size_t n = ARTIFACTS_CHUNK * 2 + 12345;
	char *content = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		content[i] = (char)('a' + i % 26);
	content[n] = '\0';
	char id[ARTIFACTS_ID_LEN + 1];
	id_of(content, id);
	struct err e;
	int created;
	cr_assert_eq(put(id, content, n, &created, &e), 0, "%s", e.msg);
	store *s = scratch_store();
	cr_assert_eq(artifacts_share(s, dir, id, &e), 0, "%s", e.msg);
	int64_t size, chunks;
	cr_assert_eq(store_get_artifact(s, id, &size, &chunks, &e), 0, "%s", e.msg);
	cr_assert_eq(size, (int64_t)n);
	cr_assert_eq(chunks, 3);
	cr_assert_eq(artifacts_share(s, dir, id, &e), 0, "sharing again is a no-op: %s", e.msg);

	/* another replica's directory */
	char other[200];
	snprintf(other, sizeof(other), "%s/other", dir);
	mkdir(other, 0755);
	cr_assert_eq(artifacts_stat(other, id, NULL, &e), ARTIFACTS_NOTFOUND);
	cr_assert_eq(artifacts_fetch(s, other, id, ARTIFACTS_FETCH_MAX, &e), 0, "%s", e.msg);
	char path[400];
	cr_assert_eq(artifacts_path(other, id, path, sizeof(path), &e), 0);
	size_t len;
	char *got = read_all(path, &len);
	cr_assert_not_null(got);
	cr_assert_eq(len, n);
	cr_assert(!memcmp(got, content, n), "the fetched file is the upload, byte for byte");
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert(st.st_mode & S_IXUSR, "executable, as an upload");
	free(got);
	cr_assert_eq(artifacts_fetch(s, other, id, ARTIFACTS_FETCH_MAX, &e), 0, "present: nothing to do");

	/* what neither has */
	char missing[ARTIFACTS_ID_LEN + 1];
	id_of("never uploaded", missing);
	cr_assert_eq(artifacts_fetch(s, other, missing, ARTIFACTS_FETCH_MAX, &e), ARTIFACTS_NOTFOUND);
	cr_assert_eq(artifacts_share(s, other, missing, &e), ARTIFACTS_NOTFOUND);
	/* artifacts_find: the store counts only when it is shared (SQLite is not) */
	unlink(path);
	cr_assert_eq(artifacts_find(s, other, id, NULL, &e), ARTIFACTS_NOTFOUND);
	store_close(s);
	free(content);
}

Test(artifacts, a_corrupt_store_copy_is_refused_and_writes_nothing, .init = setup, .fini = teardown)
{
	const char *content = "#!/bin/sh\necho hello\n";
	char id[ARTIFACTS_ID_LEN + 1];
	id_of(content, id);
	store *s = scratch_store();
	struct err e;
	int created;
	/* a copy whose bytes are not the digest's (a damaged row, a bad restore) */
	cr_assert_eq(store_begin(s, &e), 0);
	cr_assert_eq(store_put_artifact_chunk(s, id, 0, "#!/bin/sh\necho HELLO\n", strlen(content), &e), 0);
	cr_assert_eq(store_put_artifact(s, id, (int64_t)strlen(content), 1, &created, &e), 0);
	cr_assert_eq(store_commit(s, &e), 0, "%s", e.msg);
	int before = entries();
	cr_assert_eq(artifacts_fetch(s, dir, id, ARTIFACTS_FETCH_MAX, &e), ARTIFACTS_MISMATCH);
	cr_assert(strstr(e.msg, "corrupt"), "%s", e.msg);
	cr_assert_eq(entries(), before, "no file, no temporary file");
	cr_assert_eq(artifacts_stat(dir, id, NULL, &e), ARTIFACTS_NOTFOUND);
	/* a size that disagrees with the chunks */
	char id2[ARTIFACTS_ID_LEN + 1];
	id_of("abc", id2);
	cr_assert_eq(store_begin(s, &e), 0);
	cr_assert_eq(store_put_artifact_chunk(s, id2, 0, "abc", 3, &e), 0);
	cr_assert_eq(store_put_artifact(s, id2, 2, 1, &created, &e), 0);
	cr_assert_eq(store_commit(s, &e), 0, "%s", e.msg);
	cr_assert_eq(artifacts_fetch(s, dir, id2, ARTIFACTS_FETCH_MAX, &e), ARTIFACTS_MISMATCH, "%s", e.msg);
	cr_assert_eq(entries(), before);
	/* larger than the caller's limit */
	cr_assert_eq(artifacts_fetch(s, dir, id, 3, &e), -1);
	store_close(s);
}
