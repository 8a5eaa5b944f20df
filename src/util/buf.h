/*
 * buf: a growable byte buffer with a hard size limit.
 *
 * Invariants: `data` is never NULL after buf_init (it points at a static empty string until
 * the first append) and is always NUL-terminated, so it can be used as a C string when the
 * content is text. `len` never exceeds `limit`: an append that would pass it fails with -1
 * and leaves the buffer unchanged. Every buffer that holds peer input gets a real limit.
 *
 * Life cycle: buf_init -> appends -> buf_reset (empty, keeps memory) -> buf_release (frees)
 * or buf_detach (hands the memory to the caller, who frees it).
 */
#ifndef SLUICE_BUF_H
#define SLUICE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t limit;
};

#define BUF_NOLIMIT ((size_t)-1)

void buf_init(struct buf *b, size_t limit);
void buf_release(struct buf *b);
void buf_reset(struct buf *b);
/* Returns the data (caller frees) and re-initialises the buffer with the same limit. */
char *buf_detach(struct buf *b, size_t *len /* OUT, may be NULL */);

/* Appends. Return 0, or -1 when the limit would be passed or memory is exhausted. */
__attribute__((warn_unused_result)) int buf_add(struct buf *b, const void *p, size_t n);
__attribute__((warn_unused_result)) int buf_adds(struct buf *b, const char *s);
__attribute__((warn_unused_result, format(printf, 2, 3))) int buf_addf(struct buf *b, const char *fmt, ...);
__attribute__((warn_unused_result)) int buf_vaddf(struct buf *b, const char *fmt, va_list ap);
/* Makes room for n more bytes; returns a pointer to them (commit with buf_commit) or NULL. */
char *buf_reserve(struct buf *b, size_t n);
void buf_commit(struct buf *b, size_t n);
/* Removes the first n bytes. */
void buf_consume(struct buf *b, size_t n);

#endif
