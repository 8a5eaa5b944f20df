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
