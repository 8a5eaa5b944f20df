#include "proxy/vhost.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct pref {
	char *s; /* "/" or "/a/b" */
	size_t len;
	void *val;
};

struct ent {
	struct ent *next;
	uint64_t h;
	int wild;
	size_t hlen;
	char *host; /* lowercased, without "*." for a wildcard */
	size_t n;
	struct pref *p; /* longest prefix first */
};

struct vhost {
	struct ent **b;
	size_t nb; /* power of two */
	size_t nent, npairs;
};

static uint64_t hash(const char *s, size_t n, int wild)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)wild;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return h;
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

vhost *vhost_new(void)
{
	vhost *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->nb = 16;
	t->b = calloc(t->nb, sizeof(*t->b));
	if (!t->b) {
		free(t);
		return NULL;
	}
	return t;
}

static void ent_free(struct ent *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->p[i].s);
	free(e->p);
	free(e->host);
	free(e);
}

void vhost_free(vhost *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nb; i++)
		while (t->b[i]) {
			struct ent *e = t->b[i];
			t->b[i] = e->next;
			ent_free(e);
		}
	free(t->b);
	free(t);
}

size_t vhost_count(const vhost *t)
{
	return t->npairs;
}

static struct ent *lookup(const vhost *t, const char *host, size_t n, int wild, uint64_t h)
{
	for (struct ent *e = t->b[h & (t->nb - 1)]; e; e = e->next)
		if (e->h == h && e->wild == wild && e->hlen == n && !memcmp(e->host, host, n))
			return e;
	return NULL;
}

static void grow(vhost *t)
{
	size_t nb = t->nb * 2;
	struct ent **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < t->nb; i++)
		while (t->b[i]) {
			struct ent *e = t->b[i];
			t->b[i] = e->next;
			e->next = b[e->h & (nb - 1)];
			b[e->h & (nb - 1)] = e;
		}
	free(t->b);
	t->b = b;
	t->nb = nb;
}

/* Splits a pattern into its lowercased name (into buf) and whether it is a wildcard. */
static size_t pattern_key(const char *pattern, char *buf, int *wild)
{
	*wild = pattern[0] == '*' && pattern[1] == '.';
	const char *s = *wild ? pattern + 2 : pattern;
	size_t n = strnlen(s, VHOST_NAME_MAX - 1);
	for (size_t i = 0; i < n; i++)
		buf[i] = lower(s[i]);
	buf[n] = 0;
	return n;
}

int vhost_add(vhost *t, const char *pattern, const char *prefix, void *val, void **other)
{
	char key[VHOST_NAME_MAX];
	int wild;
	size_t n = pattern_key(pattern, key, &wild);
	if (!prefix)
		prefix = "/";
	size_t plen = strlen(prefix);
	uint64_t h = hash(key, n, wild);
	struct ent *e = lookup(t, key, n, wild, h);
	if (e)
		for (size_t i = 0; i < e->n; i++)
			if (e->p[i].len == plen && !memcmp(e->p[i].s, prefix, plen)) {
				if (other)
					*other = e->p[i].val;
				return -2;
			}
	char *ps = strdup(prefix);
	if (!ps)
		return -1;
	int fresh = !e;
	if (fresh) {
		e = calloc(1, sizeof(*e));
		if (!e || !(e->host = strdup(key))) {
			free(e);
			free(ps);
			return -1;
		}
		e->h = h;
		e->wild = wild;
		e->hlen = n;
	}
	struct pref *np = realloc(e->p, (e->n + 1) * sizeof(*np));
	if (!np) {
		free(ps);
		if (fresh)
			ent_free(e);
		return -1;
	}
	e->p = np;
	size_t at = 0;
	while (at < e->n && e->p[at].len >= plen)
		at++;
	memmove(&e->p[at + 1], &e->p[at], (e->n - at) * sizeof(*np));
	e->p[at] = (struct pref){ps, plen, val};
	e->n++;
	t->npairs++;
	if (fresh) {
		e->next = t->b[h & (t->nb - 1)];
		t->b[h & (t->nb - 1)] = e;
		if (++t->nent > t->nb)
			grow(t);
	}
	return 0;
}

void vhost_del(vhost *t, const char *pattern, const char *prefix, const void *val)
{
	char key[VHOST_NAME_MAX];
	int wild;
	size_t n = pattern_key(pattern, key, &wild);
	if (!prefix)
		prefix = "/";
	size_t plen = strlen(prefix);
	uint64_t h = hash(key, n, wild);
	struct ent **link = &t->b[h & (t->nb - 1)];
	for (; *link; link = &(*link)->next)
		if ((*link)->h == h && (*link)->wild == wild && (*link)->hlen == n &&
		    !memcmp((*link)->host, key, n))
			break;
	struct ent *e = *link;
	if (!e)
		return;
	for (size_t i = 0; i < e->n; i++)
		if (e->p[i].len == plen && !memcmp(e->p[i].s, prefix, plen) && e->p[i].val == val) {
			free(e->p[i].s);
			memmove(&e->p[i], &e->p[i + 1], (e->n - i - 1) * sizeof(*e->p));
			e->n--;
			t->npairs--;
			break;
		}
	if (e->n == 0) {
		*link = e->next;
		ent_free(e);
		t->nent--;
	}
}

/* Whether target path[0..plen) lies under prefix p (whole segments). */
static int under(const struct pref *p, const char *path, size_t plen)
{
	if (p->len == 1)
		return 1;
	if (plen < p->len || memcmp(path, p->s, p->len))
		return 0;
	return plen == p->len || path[p->len] == '/' || path[p->len] == '?';
}

enum vhost_result vhost_find(const vhost *t, const char *host, size_t hlen, const char *path, size_t plen,
			     void **val)
{
	char name[VHOST_NAME_MAX];
	size_t n;
	if (!host || hlen == 0)
		return VHOST_BAD_HOST;
	if (host[0] == '[') {
		/* an IPv6 literal: matched as written, brackets included, without the port */
		const char *close = memchr(host, ']', hlen);
		if (!close)
			return VHOST_BAD_HOST;
		n = (size_t)(close - host) + 1;
	} else {
		const char *colon = memchr(host, ':', hlen);
		n = colon ? (size_t)(colon - host) : hlen;
	}
	if (n && host[n - 1] == '.')
		n--; /* "example.com." names "example.com" */
	if (n == 0 || n >= VHOST_NAME_MAX)
		return VHOST_BAD_HOST;
	for (size_t i = 0; i < n; i++)
		name[i] = lower(host[i]);
	const struct ent *e = lookup(t, name, n, 0, hash(name, n, 0));
	/* else the longest wildcard suffix: "a.b.c" tries "*.b.c", then "*.c" */
	for (size_t i = 0; !e && i < n; i++)
		if (name[i] == '.' && i + 1 < n)
			e = lookup(t, name + i + 1, n - i - 1, 1, hash(name + i + 1, n - i - 1, 1));
	if (!e)
		return VHOST_NO_HOST;
	for (size_t i = 0; i < e->n; i++)
		if (under(&e->p[i], path, plen)) {
			*val = e->p[i].val;
			return VHOST_FOUND;
		}
	return VHOST_NO_PATH;
}
