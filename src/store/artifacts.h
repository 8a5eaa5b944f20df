/*
 * artifacts: release artifacts as content-addressed files, DIR/HEX for the id "sha256:HEX".
 *
 * CI uploads an artifact before it registers the release that names it; the runtime starts the
 * file. A file under DIR is complete and its content has the digest of its name: it is written
 * under a temporary name in DIR, checked, synced, and renamed into place (atomic on one file
 * system), so a crash leaves at most a ".tmp-*" file and never a partial artifact.
 *
 * Ids: exactly "sha256:" followed by 64 lowercase hex digits (ARTIFACTS_ID_LEN characters).
 * Nothing else ever names a file here: every function refuses an invalid id.
 *
 * Errors: functions return 0 on success, ARTIFACTS_NOTFOUND (1) when the artifact does not
 * exist (lookups only), or a negative code with the reason in e (never NULL): -1 for an
 * invalid id or an I/O failure, ARTIFACTS_TOOBIG and ARTIFACTS_MISMATCH for a body the writer
 * refuses (the caller answers those as the uploader's mistake, -1 as its own).
 */
#ifndef SLUICE_ARTIFACTS_H
#define SLUICE_ARTIFACTS_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/log.h"

#define ARTIFACTS_ID_LEN 71 /* "sha256:" + 64 */
#define ARTIFACTS_NOTFOUND 1
#define ARTIFACTS_TOOBIG (-2)
#define ARTIFACTS_MISMATCH (-3)

/* 1 when id is a valid artifact id, else 0. */
int artifacts_valid_id(const char *id);

/* Writes DIR/HEX into buf. -1 (with e) for an invalid id or a buf too small. */
__attribute__((warn_unused_result)) int artifacts_path(const char *dir, const char *id, char *buf,
						       size_t len, struct err *e);

/* Whether the artifact exists: 0 with its size (*size, may be NULL), ARTIFACTS_NOTFOUND, or -1
 * when it cannot be told (an invalid id, a permission error, a non-regular file). */
__attribute__((warn_unused_result)) int artifacts_stat(const char *dir, const char *id,
						       int64_t *size /* OUT, may be NULL */,
						       struct err *e);

/* ---- Streaming writer ----
 *
 * artifacts_begin -> artifacts_write (any number of chunks) -> artifacts_commit or
 * artifacts_abort. Commit and abort both free the writer and remove the temporary file unless
 * it became the artifact; a writer is never used after either. A failed write leaves the writer
 * to be aborted. */
struct artifact_writer;

/* Starts writing the artifact `id` into dir; the content may be at most `limit` bytes. */
__attribute__((warn_unused_result)) int artifacts_begin(struct artifact_writer **out /* OUT */,
							const char *dir, const char *id,
							uint64_t limit, struct err *e);
/* Appends a chunk. ARTIFACTS_TOOBIG once the content passes the limit; -1 on I/O failure. */
__attribute__((warn_unused_result)) int artifacts_write(struct artifact_writer *w, const void *p,
							size_t n, struct err *e);
/* Checks the digest (ARTIFACTS_MISMATCH, naming the digest the content has), syncs and renames
 * the file into place. *created is 0 when the artifact already existed (its file is kept and
 * the new copy dropped: the content is the same by its name). Always frees w. */
__attribute__((warn_unused_result)) int artifacts_commit(struct artifact_writer *w,
							 int *created /* OUT */, struct err *e);
/* Drops the upload. NULL is a no-op. */
void artifacts_abort(struct artifact_writer *w);

/* ---- A shared store's copy (store_shared: replicas that do not share DIR) ----
 *
 * The file stays the artifact the runtime starts; a shared store holds a copy in chunks of
 * ARTIFACTS_CHUNK bytes (store_put_artifact_chunk), so a replica whose DIR lacks a file makes
 * it from the store, checked against its digest like an upload. Both calls block the caller
 * for the copy (the store's round trips: about a second per 100 MB on a LAN). */
#define ARTIFACTS_CHUNK (256u << 10)
/* The largest artifact fetched from a store (the API accepts 256 MiB uploads) */
#define ARTIFACTS_FETCH_MAX (1ull << 30)

/* Copies DIR's artifact `id` into the store in one transaction (its chunks, then its row),
 * unless the store has it already. The caller holds no transaction (an attached audit record,
 * store_audit_attach, is written with it). 0, ARTIFACTS_NOTFOUND (no such file) or -1. */
__attribute__((warn_unused_result)) int artifacts_share(store *s, const char *dir, const char *id,
							struct err *e);
/* Makes sure DIR has the artifact `id`: when its file is missing, writes it from the store's
 * chunks through the writer above (the digest checked, synced, renamed into place), limit
 * bytes at most. 0 (the file is there), ARTIFACTS_NOTFOUND (neither DIR nor the store has it),
 * ARTIFACTS_MISMATCH (the store's copy does not have its digest: nothing is written), or -1
 * (a store failure: its message starts with "store: "). */
__attribute__((warn_unused_result)) int artifacts_fetch(store *s, const char *dir, const char *id,
							uint64_t limit, struct err *e);
/* Whether the artifact exists in DIR or, failing that, in the store (s may be NULL: DIR only);
 * the same answers as artifacts_stat. */
__attribute__((warn_unused_result)) int artifacts_find(store *s, const char *dir, const char *id,
						       int64_t *size /* OUT, may be NULL */,
						       struct err *e);

#endif
