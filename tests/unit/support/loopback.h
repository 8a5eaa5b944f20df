/*
 * loopback: fixtures for unit tests that serve or call HTTP on 127.0.0.1 (never another
 * address). The socket helpers fail the running Criterion test instead of returning errors.
 */
#ifndef SLUICE_TEST_LOOPBACK_H
#define SLUICE_TEST_LOOPBACK_H

#include <stddef.h>
#include <sys/types.h>

/* A TCP socket bound to 127.0.0.1 on a port the kernel picks, not listening; *port gets it. */
int loopback_bind(int *port /* OUT */);
/* A listening socket on 127.0.0.1; addr (may be NULL) gets "127.0.0.1:PORT". */
int loopback_listen(int backlog, char *addr /* OUT */, size_t addrlen, int *port /* OUT, may be NULL */);
/*
 * Reads up to the end of a request head ("\r\n\r\n") into buf: at most cap - 1 bytes, always
 * NUL-terminated, each wait for data at most timeout_ms. Returns the bytes read (the head and
 * whatever followed it), or -1 when the head did not end (timeout, EOF, error, too large).
 */
ssize_t loopback_read_head(int fd, char *buf, size_t cap, int timeout_ms);
/* Sends all n bytes (no SIGPIPE). Returns 0, or -1 when the peer went away. */
int loopback_send_all(int fd, const void *p, size_t n);

#endif
