/*
 * vhost: the table of a shared listener, from a request's Host (and path) to the route that
 * serves it. Pure data structure: no I/O, no threads; each owner (the admin thread, each
 * worker) keeps its own table and is the only one to touch it.
 *
 * A table holds (host pattern, path prefix) -> value pairs. A pattern is an exact name
 * ("api.example.com") or a wildcard ("*.example.com", any name with at least one more label in
 * front of "example.com", not "example.com" itself). A prefix is "/" (everything) or
 * "/segment[/segment...]" without a trailing slash, matched by whole path segments: "/api"
 * serves "/api", "/api/x" and "/api?q", not "/apix".
 *
 * Lookup (vhost_find), per request: the Host value loses its port and a trailing dot and is
 * lowercased into a stack buffer; its hash finds the exact entry in one probe, else each
 * suffix after a dot is tried as a wildcard, longest first (a lookup costs a few hashes of the
 * name, whatever the number of routes). The most specific host entry that exists wins; then,
 * among its prefixes (kept longest first), the longest that matches. It allocates nothing.
 *
 * Invariants: patterns are stored lowercased; a (pattern, prefix) pair appears at most once;
 * an entry with no prefix left is removed. Values are opaque pointers the table never frees.
 */
#ifndef SLUICE_PROXY_VHOST_H
#define SLUICE_PROXY_VHOST_H

#include <stddef.h>

#define VHOST_NAME_MAX 254 /* a DNS name (253) + NUL */

typedef struct vhost vhost;

enum vhost_result {
	VHOST_FOUND = 0,
	VHOST_NO_HOST = -1, /* no entry serves this host: 421 (RFC 9110 15.5.20) */
	VHOST_NO_PATH = -2, /* the host is served, none of its prefixes matches: 404 */
	VHOST_BAD_HOST = -3 /* no Host, or one that cannot be a name (too long, empty) */
};

/* An empty table, or NULL when out of memory. */
vhost *vhost_new(void);
void vhost_free(vhost *t);
/*
 * Adds pattern/prefix -> val (pattern and prefix as name_host_ok and name_path_prefix_ok
 * of util/name.h accept them; prefix NULL means "/"). Returns 0; -1 when out of memory;
 * -2 when the pair is already there (*other, if not NULL, is set to its value). The table is
 * unchanged on failure.
 */
__attribute__((warn_unused_result)) int vhost_add(vhost *t, const char *pattern, const char *prefix,
						  void *val, void **other /* OUT */);
/* Removes pattern/prefix when it maps to val; anything else is left alone. */
void vhost_del(vhost *t, const char *pattern, const char *prefix, const void *val);
/*
 * The value for Host field value host[0..hlen) (may carry ":port") and request target
 * path[0..plen) (origin-form: "/x?y"; "*" matches only the prefix "/"). Returns VHOST_FOUND
 * with *val set, or one of the other results.
 */
enum vhost_result vhost_find(const vhost *t, const char *host, size_t hlen, const char *path, size_t plen,
			     void **val /* OUT */);
/* Pairs in the table. */
size_t vhost_count(const vhost *t);

#endif
