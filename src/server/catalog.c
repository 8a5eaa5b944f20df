#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/catalog.h"

#define BUCKETS 256

enum kind { SERVICE, ENVIRONMENT, NKINDS };
static const char *const kind_names[NKINDS] = {"Service", "Environment"};

/* One parsed manifest. refs counts the table's own reference (while current) and every one
 * handed out; a stale entry (parsed before the store changed) leaves the table's lookups but
 * stays in its chain until its last reference goes, so that a release finds it. */
struct entry {
	struct entry *next;
	enum kind kind;
	int current;
	long refs;
	const char *name; /* the manifest's own */
	union {
		struct service_manifest *svc;
		struct env_manifest *env;
		const void *any;
	} m;
};

struct catalog {
	store *store;
	runtimes *rts;
	int valid;                  /* the table was read at `changes` */
	uint64_t changes;
	int listed[NKINDS];         /* every manifest of the kind is in the table */
	struct entry *table[BUCKETS];
};

static size_t bucket(enum kind k, const char *name)
{
	uint32_t h = 2166136261u ^ (uint32_t)k;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h % BUCKETS;
}

catalog *catalog_new(store *s, runtimes *rts)
{
	catalog *c = calloc(1, sizeof *c);
	if (c) {
		c->store = s;
		c->rts = rts;
	}
	return c;
}

static void entry_free(struct entry *en)
{
	if (en->kind == SERVICE)
		manifest_service_free(en->m.svc);
	else
		manifest_env_free(en->m.env);
	free(en);
}

/* Drops one reference of the entry at *link; unlinks and frees it at the last. */
static void unref_at(struct entry **link)
{
	struct entry *en = *link;
	if (--en->refs > 0)
		return;
	*link = en->next;
	entry_free(en);
}

void catalog_free(catalog *c)
{
	if (!c)
		return;
	for (size_t b = 0; b < BUCKETS; b++)
		while (c->table[b]) {
			struct entry *en = c->table[b];
			c->table[b] = en->next;
			entry_free(en);
		}
	free(c);
}

/* Retires every entry when the store changed since the table was read. */
static void refresh(catalog *c)
{
	uint64_t now = store_manifest_changes(c->store);
	if (c->valid && now == c->changes)
		return;
	for (size_t b = 0; b < BUCKETS; b++) {
		struct entry **link = &c->table[b];
		while (*link) {
			struct entry *en = *link;
			if (en->current) {
				en->current = 0;
				if (--en->refs == 0) {
					*link = en->next;
					entry_free(en);
					continue;
				}
			}
			link = &en->next;
		}
	}
	memset(c->listed, 0, sizeof c->listed);
	c->changes = now;
	c->valid = 1;
}

static struct entry *find(catalog *c, enum kind k, const char *name)
{
	for (struct entry *en = c->table[bucket(k, name)]; en; en = en->next)
		if (en->current && en->kind == k && !strcmp(en->name, name))
			return en;
	return NULL;
}

/* Parses spec into a current entry of the table (holding the table's reference). */
static int insert(catalog *c, enum kind k, const json_t *spec, struct entry **out, struct err *e)
{
	struct entry *en = calloc(1, sizeof *en);
	if (!en)
		return err_set(e, "out of memory");
	en->kind = k;
	int rc = k == SERVICE ? manifest_service_parse(spec, &en->m.svc, e)
			      : manifest_env_parse(spec, &en->m.env, e);
	if (rc) {
		free(en);
		return -1;
	}
	en->name = k == SERVICE ? en->m.svc->name : en->m.env->name;
	en->current = 1;
	en->refs = 1;
	size_t b = bucket(k, en->name);
	en->next = c->table[b];
	c->table[b] = en;
	*out = en;
	return 0;
}

static int lookup(catalog *c, enum kind k, const char *name, const void **out, struct err *e)
{
	*out = NULL;
	refresh(c);
	struct entry *en = find(c, k, name);
	if (!en) {
		if (c->listed[k]) {
			err_set(e, "%s '%s' is not known", k == SERVICE ? "service" : "environment", name);
			return STORE_NOTFOUND;
		}
		json_t *spec = NULL;
		int rc = store_get_manifest(c->store, kind_names[k], name, &spec, e);
		if (rc)
			return rc;
		rc = insert(c, k, spec, &en, e);
		json_decref(spec);
		if (rc)
			return -1;
	}
	en->refs++;
	*out = en->m.any;
	return 0;
}

static void release(catalog *c, enum kind k, const void *m, const char *name)
{
	if (!m)
		return;
	for (struct entry **link = &c->table[bucket(k, name)]; *link; link = &(*link)->next)
		if ((*link)->m.any == m) {
			unref_at(link);
			return;
		}
}

static int by_name(const void *a, const void *b)
{
	return strcmp((*(struct entry *const *)a)->name, (*(struct entry *const *)b)->name);
}

static int list(catalog *c, enum kind k, const void ***out, size_t *n, struct err *e)
{
	*out = NULL;
	*n = 0;
	refresh(c);
	if (!c->listed[k]) {
		json_t *specs = NULL;
		int rc = store_list_manifests(c->store, kind_names[k], &specs, e);
		if (rc)
			return rc < 0 ? -1 : rc;
		size_t i;
		json_t *spec;
		json_array_foreach(specs, i, spec) {
			struct entry *en;
			const char *name = json_string_value(json_object_get(spec, "name"));
			if (name && find(c, k, name))
				continue;
			if (insert(c, k, spec, &en, e)) {
				json_decref(specs);
				return -1;
			}
		}
		json_decref(specs);
		c->listed[k] = 1;
	}
	size_t count = 0;
	for (size_t b = 0; b < BUCKETS; b++)
		for (struct entry *en = c->table[b]; en; en = en->next)
			count += en->current && en->kind == k;
	if (!count)
		return 0;
	struct entry **all = malloc(count * sizeof *all);
	const void **items = malloc(count * sizeof *items);
	if (!all || !items) {
		free(all);
		free(items);
		return err_set(e, "out of memory");
	}
	size_t j = 0;
	for (size_t b = 0; b < BUCKETS; b++)
		for (struct entry *en = c->table[b]; en; en = en->next)
			if (en->current && en->kind == k)
				all[j++] = en;
	qsort(all, count, sizeof *all, by_name);
	for (j = 0; j < count; j++) {
		all[j]->refs++;
		items[j] = all[j]->m.any;
	}
	free(all);
	*out = items;
	*n = count;
	return 0;
}

int catalog_environment(catalog *c, const char *env, const struct env_manifest **out, struct err *e)
{
	return lookup(c, ENVIRONMENT, env, (const void **)out, e);
}

int catalog_service(catalog *c, const char *service, const struct service_manifest **out,
		    struct err *e)
{
	return lookup(c, SERVICE, service, (const void **)out, e);
}

void catalog_release_environment(catalog *c, const struct env_manifest *m)
{
	if (m)
		release(c, ENVIRONMENT, m, m->name);
}

void catalog_release_service(catalog *c, const struct service_manifest *m)
{
	if (m)
		release(c, SERVICE, m, m->name);
}

int catalog_environments(catalog *c, const struct env_manifest ***out, size_t *n, struct err *e)
{
	return list(c, ENVIRONMENT, (const void ***)out, n, e);
}

int catalog_services(catalog *c, const struct service_manifest ***out, size_t *n, struct err *e)
{
	return list(c, SERVICE, (const void ***)out, n, e);
}

void catalog_release_environments(catalog *c, const struct env_manifest **l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		catalog_release_environment(c, l[i]);
	free(l);
}

void catalog_release_services(catalog *c, const struct service_manifest **l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		catalog_release_service(c, l[i]);
	free(l);
}

const struct manifest_region *catalog_region(const struct env_manifest *env, const char *region)
{
	for (size_t i = 0; env && i < env->nregions; i++)
		if (!strcmp(env->regions[i].name, region))
			return &env->regions[i];
	return NULL;
}

int catalog_listen_port(catalog *c, const char *env, const char *region, const char *svc,
			struct err *e)
{
	const struct env_manifest *em = NULL;
	const struct service_manifest *sm = NULL;
	int rc = catalog_environment(c, env, &em, e);
	if (rc == 0)
		rc = catalog_service(c, svc, &sm, e);
	int port = rc < 0 ? -1 : 0;
	const struct manifest_region *r = rc == 0 ? catalog_region(em, region) : NULL;
	if (r)
		port = (sm->listen_port ? sm->listen_port : sm->route.port) + r->port_offset;
	catalog_release_service(c, sm);
	catalog_release_environment(c, em);
	return port;
}

int catalog_route_host(catalog *c, const char *env, const char *region, const char *svc, char *buf,
		       size_t len, struct err *e)
{
	const struct service_manifest *sm = NULL;
	int rc = catalog_service(c, svc, &sm, e);
	if (rc < 0 && rc != STORE_NOTFOUND)
		return -1;
	int found = rc == 0 && sm->route.nhosts && !sm->listen_port &&
		    manifest_route_host(sm->route.hosts[0], env, region, buf, len) == 0;
	catalog_release_service(c, sm);
	return found;
}

int catalog_runtime(catalog *c, const char *env, const char *region, runtime **out, struct err *e)
{
	*out = runtimes_get(c->rts, env, region);
	if (*out)
		return 0;
	const struct env_manifest *envm = NULL;
	int rc = catalog_environment(c, env, &envm, e);
	if (rc)
		return rc;
	const struct manifest_region *r = catalog_region(envm, region);
	if (r) {
		rc = runtimes_resolve(c->rts, env, r, out, e) ? -1 : 0;
		const char *kind = r->runtime_kind;
		if (rc && !runtimes_local_ready(c->rts) && (!kind || !*kind || !strcmp(kind, "local"))) {
			*out = NULL; /* a standby replica's: the local instances are another's */
			rc = 0;
		}
	} else {
		err_set(e, "region '%s' is not in environment '%s'", region, env);
		rc = STORE_NOTFOUND;
	}
	catalog_release_environment(c, envm);
	return rc;
}
