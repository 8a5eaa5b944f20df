/*
 * listing: one runtime_list per runtime, regions found by bisection (listing.h).
 */
#include "server/listing.h"

#include <stdlib.h>
#include <string.h>

struct snapshot {
	runtime *rt;
	struct instance_info *in; /* sorted as runtime_list sorts */
	size_t n;
	int failed;
};

struct listing {
	char *service; /* NULL: every service */
	struct snapshot *snaps;
	size_t nsnaps;
};

listing *listing_new(const char *service)
{
	listing *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	if (service && !(l->service = strdup(service))) {
		free(l);
		return NULL;
	}
	return l;
}

void listing_free(listing *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->nsnaps; i++)
		free(l->snaps[i].in);
	free(l->snaps);
	free(l->service);
	free(l);
}

static struct snapshot *snapshot_of(listing *l, runtime *rt)
{
	for (size_t i = 0; i < l->nsnaps; i++)
		if (l->snaps[i].rt == rt)
			return &l->snaps[i];
	struct snapshot *more = realloc(l->snaps, (l->nsnaps + 1) * sizeof(*more));
	if (!more)
		return NULL;
	l->snaps = more;
	struct snapshot *s = &l->snaps[l->nsnaps++];
	*s = (struct snapshot){.rt = rt};
	s->failed = runtime_list(rt, l->service, NULL, NULL, NULL, &s->in, &s->n) != 0;
	return s;
}

static int cmp_region(const struct instance_info *in, const char *service, const char *env,
		      const char *region)
{
	int c = strcmp(in->service, service);
	if (!c)
		c = strcmp(in->env, env);
	return c ? c : strcmp(in->region, region);
}

int listing_region(listing *l, runtime *rt, const char *service, const char *env, const char *region,
		   const struct instance_info **in, size_t *n)
{
	*in = NULL;
	*n = 0;
	struct snapshot *s = snapshot_of(l, rt);
	if (!s || s->failed)
		return -1;
	size_t lo = 0, hi = s->n;
	while (lo < hi) { /* the first entry not before the region */
		size_t mid = lo + (hi - lo) / 2;
		if (cmp_region(&s->in[mid], service, env, region) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t end = lo;
	while (end < s->n && cmp_region(&s->in[end], service, env, region) == 0)
		end++;
	*in = end > lo ? s->in + lo : NULL;
	*n = end - lo;
	return 0;
}
