/*
 * replica: this replica's leases (see replica.h).
 */
#include "server/replica.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PASS_MIN_MS 1000 /* a pass looking for free leases, at most this often without a change */

struct held {
	char service[128];
	int64_t epoch;
	uint64_t deadline; /* monotonic ms: owned while now < deadline */
	uint64_t renew_at;
	int seen;          /* the service still exists (this pass) */
};

struct replica {
	store *store;
	catalog *cat;
	runtimes *rts;
	char id[REPLICA_ID_MAX];
	int64_t ttl;
	struct held *held;
	size_t nheld, cap;
	json_t *index; /* service -> its position in held: replica_owns is asked for every
			* service of every pass */
	uint64_t next_pass, seen_changes;
	uint64_t last_log;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

replica *replica_new(store *s, catalog *c, runtimes *rts, const char *id, int64_t ttl_ms)
{
	replica *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->store = s;
	r->cat = c;
	r->rts = rts;
	snprintf(r->id, sizeof(r->id), "%s", id);
	if (!(r->index = json_object())) {
		free(r);
		return NULL;
	}
	r->ttl = ttl_ms < REPLICA_TTL_MIN_MS ? REPLICA_TTL_MIN_MS : ttl_ms > REPLICA_TTL_MAX_MS ? REPLICA_TTL_MAX_MS : ttl_ms;
	return r;
}

static void lease_name(char *buf, size_t len, const char *service)
{
	snprintf(buf, len, "service/%s", service);
}

void replica_free(replica *r)
{
	if (!r)
		return;
	uint64_t now = mono_ms();
	for (size_t i = 0; i < r->nheld; i++) {
		if (now >= r->held[i].deadline)
			continue;
		char name[160];
		struct err e = {""};
		lease_name(name, sizeof(name), r->held[i].service);
		if (store_lease_release(r->store, name, r->id, r->held[i].epoch, &e))
			log_warn("replica %s: could not release %s: %s", r->id, name, e.msg);
	}
	free(r->held);
	json_decref(r->index);
	free(r);
}

const char *replica_id(const replica *r)
{
	return r->id;
}

static struct held *find(replica *r, const char *service)
{
	json_t *i = json_object_get(r->index, service);
	return i ? &r->held[json_integer_value(i)] : NULL;
}

static void drop(replica *r, struct held *h, const char *why)
{
	log_warn("replica %s: no longer owns %s (epoch %lld): %s", r->id, h->service, (long long)h->epoch, why);
	json_object_del(r->index, h->service);
	*h = r->held[--r->nheld];
	if (h != &r->held[r->nheld]) /* the last one moved into its place */
		json_object_set_new(r->index, h->service, json_integer(h - r->held));
}

int replica_owns(replica *r, const char *service)
{
	struct held *h = find(r, service);
	return h && mono_ms() < h->deadline;
}

size_t replica_owned_count(const replica *r)
{
	size_t n = 0;
	uint64_t now = mono_ms();
	for (size_t i = 0; i < r->nheld; i++)
		n += now < r->held[i].deadline;
	return n;
}

int replica_fence(replica *r, const char *service, struct err *e)
{
	struct held *h = find(r, service);
	char name[160];
	lease_name(name, sizeof(name), service);
	if (!h) {
		err_set(e, "replica %s does not hold %s", r->id, name);
		return STORE_FENCED;
	}
	int rc = store_lease_check(r->store, name, r->id, h->epoch, e);
	if (rc == STORE_FENCED)
		drop(r, h, e->msg);
	return rc;
}

/* Takes or renews one lease; the margin keeps the local deadline before the store's expiry
 * (the store computed it after the request was sent). */
static void acquire(replica *r, const char *service, struct held *h, uint64_t now)
{
	char name[160];
	lease_name(name, sizeof(name), service);
	int64_t epoch = h ? h->epoch : 0;
	struct err e = {""};
	uint64_t sent = mono_ms();
	int rc = store_lease_acquire(r->store, name, r->id, r->ttl, &epoch, &e);
	if (rc == 0) {
		uint64_t margin = (uint64_t)r->ttl / 10;
		if (!h) {
			if (r->nheld == r->cap) {
				size_t cap = r->cap ? r->cap * 2 : 16;
				struct held *n = realloc(r->held, cap * sizeof(*n));
				if (!n) {
					/* taken but not recorded: it expires, and is taken again */
					return;
				}
				r->held = n;
				r->cap = cap;
			}
			h = &r->held[r->nheld++];
			memset(h, 0, sizeof(*h));
			snprintf(h->service, sizeof(h->service), "%s", service);
			if (json_object_set_new(r->index, h->service, json_integer(h - r->held))) {
				r->nheld--; /* taken but not recorded: it expires, and is taken again */
				return;
			}
			log_info("replica %s: owns %s (epoch %lld)", r->id, service, (long long)epoch);
		} else if (epoch != h->epoch) {
			log_warn("replica %s: %s held again in a new tenure (epoch %lld, was %lld)", r->id,
				 service, (long long)epoch, (long long)h->epoch);
		}
		h->epoch = epoch;
		h->deadline = sent + (uint64_t)r->ttl - margin;
		h->renew_at = now + (uint64_t)r->ttl / 3;
		h->seen = 1;
		return;
	}
	if (h) /* lost (another holds it) or unknown (the store failed): not ours to drive */
		drop(r, h, e.msg);
	if (rc < 0 && now - r->last_log > 5000) {
		r->last_log = now;
		log_error("replica %s: %s", r->id, e.msg);
	}
}

/* Whether this replica can drive services now: the local runtime, when a region uses it. */
static int able(replica *r, const struct env_manifest **envs, size_t nenvs)
{
	if (!r->rts || runtimes_local_ready(r->rts))
		return 1;
	for (size_t i = 0; i < nenvs; i++)
		for (size_t k = 0; k < envs[i]->nregions; k++) {
			const char *kind = envs[i]->regions[k].runtime_kind;
			if (!kind || !*kind || !strcmp(kind, "local"))
				return 0;
		}
	return 1;
}

/* What a renewal in a batch replaced, to put back if the batch does not commit: the store then
 * still holds the previous expiry, and the local deadline must not claim more. */
struct renewed {
	char service[128];
	int64_t epoch;
	uint64_t deadline, renew_at;
};

/* Renews every lease that is due in one transaction: one commit (one fsync with SQLite) for
 * all, rather than one each (1,000 services renewed every ttl/3 were 300 commits a second).
 * Renewed together, they stay due together. */
static void renew_due(replica *r, uint64_t now)
{
	size_t due = 0;
	for (size_t i = 0; i < r->nheld; i++)
		due += now >= r->held[i].renew_at;
	if (!due)
		return;
	struct err e = {""};
	struct renewed *was = due > 1 ? calloc(due, sizeof(*was)) : NULL;
	int tx = was && store_begin(r->store, &e) == 0;
	size_t n = 0;
	for (size_t i = 0; i < r->nheld;) {
		size_t before = r->nheld;
		struct held *h = &r->held[i];
		if (now >= h->renew_at) {
			if (tx && n < due) {
				memcpy(was[n].service, h->service, sizeof(was[n].service));
				was[n].epoch = h->epoch;
				was[n].deadline = h->deadline;
				was[n++].renew_at = h->renew_at;
			}
			acquire(r, h->service, h, now);
		}
		if (r->nheld == before)
			i++;
	}
	if (tx && store_commit(r->store, &e)) {
		store_rollback(r->store);
		if (now - r->last_log > 5000) {
			r->last_log = now;
			log_error("replica %s: renewals not committed: %s", r->id, e.msg);
		}
		for (size_t k = 0; k < n; k++) {
			struct held *h = find(r, was[k].service);
			if (h) {
				h->epoch = was[k].epoch;
				h->deadline = was[k].deadline;
				h->renew_at = was[k].renew_at;
			}
		}
	}
	free(was);
}

void replica_tick(replica *r, uint64_t now_ms)
{
	(void)now_ms; /* the lease deadlines use this module's own monotonic reading */
	uint64_t now = mono_ms();
	/* renewals first: they are due whatever else happens */
	renew_due(r, now);
	uint64_t changes = store_changes(r->store);
	if (now < r->next_pass && changes == r->seen_changes)
		return;
	r->next_pass = now + PASS_MIN_MS;
	r->seen_changes = changes;
	const struct service_manifest **svcs = NULL;
	const struct env_manifest **envs = NULL;
	size_t nsvcs = 0, nenvs = 0;
	json_t *leases = NULL;
	struct err e = {""};
	if (catalog_services(r->cat, &svcs, &nsvcs, &e) || catalog_environments(r->cat, &envs, &nenvs, &e) ||
	    store_list_leases(r->store, &leases, &e)) {
		if (now - r->last_log > 5000) {
			r->last_log = now;
			log_error("replica %s: %s", r->id, e.msg);
		}
		goto out;
	}
	int can = able(r, envs, nenvs);
	/* the leases by name: one lookup per service, not a scan of them all */
	json_t *by_name = json_object();
	size_t k;
	json_t *l;
	json_array_foreach(leases, k, l) {
		const char *name = json_string_value(json_object_get(l, "name"));
		if (name)
			json_object_set(by_name, name, l);
	}
	for (size_t i = 0; i < nsvcs; i++) {
		const char *service = svcs[i]->name;
		if (find(r, service) || !can)
			continue;
		/* only what the store shows free (or never held): one list, not a statement each */
		char name[160];
		lease_name(name, sizeof(name), service);
		l = json_object_get(by_name, name);
		int taken = l && json_integer_value(json_object_get(l, "remaining_ms")) > 0 &&
			    strcmp(json_string_value(json_object_get(l, "holder")), r->id);
		if (!taken)
			acquire(r, service, NULL, now);
	}
	json_decref(by_name);
out:
	json_decref(leases);
	catalog_release_services(r->cat, svcs, nsvcs);
	catalog_release_environments(r->cat, envs, nenvs);
}
