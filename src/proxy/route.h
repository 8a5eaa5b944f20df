/*
 * route: what one proxy route is (config form), how it is read from JSON with precise field
 * paths in errors, and the pure choices made per request (version by weight, by sticky hash,
 * by pin header). No I/O, no threads: the runtime (proxy.c) builds its shared objects from a
 * validated struct route_cfg.
 *
 * A route serves one service x environment x region: either on a listener of its own, or, when
 * it names hosts (exact names and "*.suffix" wildcards, optionally one path prefix), on a
 * listener it shares with the other routes that name hosts on the same address (see vhost.h
 * for how a request finds its route there). Its backends are grouped by
 * version; each version has an integer weight (any scale, 0 allowed as long as the sum is
 * positive). Stickiness hashes a cookie or header value onto the cumulative weight ranges, so a
 * given user stays on one version while weights are unchanged, and only users in the range
 * that moves change version when they do.
 */
#ifndef SLUICE_PROXY_ROUTE_H
#define SLUICE_PROXY_ROUTE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "util/log.h"

#define ROUTE_NAME_MAX 192     /* [A-Za-z0-9._-]+: fits "service.env.region" of 63-byte names */
#define ROUTE_FIELD_MAX 64     /* header and cookie names */
#define ROUTE_VERSION_MAX 80   /* version names: a release's (63) and a label like "~baseline" */
#define ROUTE_ADDR_MAX 128
#define ROUTE_MAX_VERSIONS 16
#define ROUTE_MAX_BACKENDS 256 /* per version */
#define ROUTE_MAX_HOSTS 32

enum route_sticky { ROUTE_STICKY_NONE, ROUTE_STICKY_COOKIE, ROUTE_STICKY_HEADER };

struct route_addr {
	char text[ROUTE_ADDR_MAX]; /* as written: "host:port" or "[v6]:port" */
	struct sockaddr_storage sa;
	socklen_t salen;
};

struct route_version_cfg {
	char name[ROUTE_VERSION_MAX];
	uint64_t weight;
	size_t nbackends;
	struct route_addr *backends; /* owned */
};

struct route_cfg {
	char name[ROUTE_NAME_MAX];
	struct route_addr listen;
	size_t nhosts;       /* 0: the listener is the route's own */
	char **hosts;        /* owned: nhosts patterns, lowercased, distinct */
	char *path_prefix;   /* owned, or NULL ("/"); only with hosts */
	enum route_sticky sticky;
	char sticky_name[ROUTE_FIELD_MAX];
	char pin_header[ROUTE_FIELD_MAX]; /* "" = pinning off */
	size_t nversions;
	struct route_version_cfg versions[ROUTE_MAX_VERSIONS];
	uint64_t total_weight;
};

/*
 * Validates route object j and fills *out (which the caller releases with route_cfg_release,
 * also after a failure). `path` prefixes field paths in messages ("routes[2]" gives
 * "routes[2].versions[0].weight: ..."; "" gives "versions[0].weight: ..."). Returns 0 or -1.
 */
__attribute__((warn_unused_result)) int route_cfg_parse(const json_t *j, const char *path,
							struct route_cfg *out, struct err *e);
void route_cfg_release(struct route_cfg *c);
/* The route as a JSON object in the config's shape (new reference). */
json_t *route_cfg_json(const struct route_cfg *c);
/* Whether s is a valid route name ([A-Za-z0-9._-]+, at most ROUTE_NAME_MAX-1 bytes). */
int route_name_valid(const char *s);
/* Parses "host:port" / "[v6]:port" (numeric hosts or names). Returns 0 or -1 with a message. */
int route_addr_parse(const char *s, struct route_addr *out, struct err *e);

/* Index of the version whose cumulative range holds x (0 <= x < total of weights). */
size_t route_pick_weighted(const struct route_cfg *c, uint64_t x);
/* Version for a sticky key: the hash of the key mapped onto [0, total_weight). */
size_t route_pick_sticky(const struct route_cfg *c, const char *key, size_t len);
/* Index of the version named name[0..len), or -1. */
int route_find_version(const struct route_cfg *c, const char *name, size_t len);
/* 64-bit hash of a key (FNV-1a with a final mix), stable across runs and builds. */
uint64_t route_hash(const char *key, size_t len);
/*
 * Finds cookie `name` in one Cookie header value (RFC 6265 "a=1; b=2"). Returns 1 and sets
 * val and vlen (pointing into `hdr`), or 0.
 */
int route_cookie_find(const char *hdr, size_t len, const char *name, const char **val, size_t *vlen);

#endif
