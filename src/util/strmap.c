#include "util/strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct node {
	struct node *next;
	uint64_t h;
	void *val;
	char key[];
};

struct strmap {
	struct node **b;
	size_t nb, n; /* nb: a power of two */
};

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 32);
}

strmap *strmap_new(void)
{
	strmap *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->nb = 64;
	if (!(m->b = calloc(m->nb, sizeof(*m->b)))) {
		free(m);
		return NULL;
	}
	return m;
}

void strmap_free(strmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nb; i++)
		while (m->b[i]) {
			struct node *x = m->b[i];
			m->b[i] = x->next;
			free(x);
		}
	free(m->b);
	free(m);
}

static struct node **find(const strmap *m, const char *key, uint64_t h)
{
	struct node **p = &m->b[h & (m->nb - 1)];
	for (; *p; p = &(*p)->next)
		if ((*p)->h == h && !strcmp((*p)->key, key))
			break;
	return p;
}

void *strmap_get(const strmap *m, const char *key)
{
	struct node *x = *find(m, key, hash(key));
	return x ? x->val : NULL;
}

static void grow(strmap *m)
{
	size_t nb = m->nb * 2;
	struct node **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < m->nb; i++)
		while (m->b[i]) {
			struct node *x = m->b[i];
			m->b[i] = x->next;
			x->next = b[x->h & (nb - 1)];
			b[x->h & (nb - 1)] = x;
		}
	free(m->b);
	m->b = b;
	m->nb = nb;
}

int strmap_put(strmap *m, const char *key, void *val)
{
	uint64_t h = hash(key);
	struct node **p = find(m, key, h);
	if (*p) {
		(*p)->val = val;
		return 0;
	}
	size_t kl = strlen(key) + 1;
	struct node *x = malloc(sizeof(*x) + kl);
	if (!x)
		return -1;
	x->h = h;
	x->val = val;
	memcpy(x->key, key, kl);
	x->next = m->b[h & (m->nb - 1)];
	m->b[h & (m->nb - 1)] = x;
	if (++m->n > m->nb)
		grow(m);
	return 0;
}

void strmap_del(strmap *m, const char *key)
{
	struct node **p = find(m, key, hash(key)), *x = *p;
	if (!x)
		return;
	*p = x->next;
	free(x);
	m->n--;
}

size_t strmap_count(const strmap *m)
{
	return m->n;
}
