/*
 * store: the dispatchers of the store interface (see store.h). Each checks the error contract
 * once, for every driver: e is required, OUT values start empty, a failure carries a message
 * and a missing row says which row it was.
 */
#include "store/store.h"
#include "util/histo.h"
#include "util/fault.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The audit record attached for the next commit (store_audit_attach): its strings are owned
 * copies, in one allocation. */
struct attached_audit {
	int on;      /* a record is attached */
	int written; /* a commit wrote it */
	struct store_audit rec;
	char *strings;
};

struct store {
	const struct store_ops *ops;
	void *drv;
	struct attached_audit audit;
	int in_tx; /* a transaction opened through store_begin is open */
	store_event_hook *hook;
	void *hook_ctx;
	struct histo commits; /* seconds per commit, failed ones included */
	uint64_t manifest_writes; /* store_manifest_changes */
};

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

const struct histo *store_commit_latency(store *s)
{
	return &s->commits;
}

static const struct store_ops *const drivers[] = {&store_sqlite_ops, &store_pg_ops};

/* Other names of a driver's scheme: libpq accepts both spellings of its URIs. */
static const struct {
	const char *alias, *scheme;
} aliases[] = {{"postgresql", "postgres"}};

int64_t store_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Splits "SCHEME:REST". A location without a scheme (no ':' before the first '/', or
 * characters a scheme cannot have) is a plain SQLite path. */
static const struct store_ops *driver_of(const char *location, const char **rest, struct err *e)
{
	size_t n = strspn(location, "abcdefghijklmnopqrstuvwxyz0123456789+.-");
	if (n == 0 || location[n] != ':') {
		*rest = location;
		return &store_sqlite_ops;
	}
	const char *scheme = location;
	size_t len = n;
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (strlen(aliases[i].alias) == n && !strncmp(location, aliases[i].alias, n)) {
			scheme = aliases[i].scheme;
			len = strlen(scheme);
		}
	for (size_t i = 0; i < sizeof(drivers) / sizeof(drivers[0]); i++)
		if (strlen(drivers[i]->scheme) == len && !strncmp(scheme, drivers[i]->scheme, len)) {
			*rest = location + n + 1;
			return drivers[i];
		}
	err_set(e, "store: no driver for '%.*s:' in this build (known: sqlite:PATH or a plain path, "
		   "postgres://... or postgresql://...)",
		(int)n, location);
	return NULL;
}

int store_attach(store **out, const struct store_ops *ops, void *drv, struct err *e)
{
	assert(e && ops && out);
	store *s = calloc(1, sizeof(*s));
	if (!s)
		return err_set(e, "store: out of memory");
	s->ops = ops;
	s->drv = drv;
	histo_init(&s->commits, histo_seconds, histo_seconds_n);
	*out = s;
	return 0;
}

int store_open(store **out, const char *location, struct err *e)
{
	assert(e && out && location);
	*out = NULL;
	e->msg[0] = '\0';
	const char *rest;
	const struct store_ops *ops = driver_of(location, &rest, e);
	if (!ops)
		return -1;
	void *drv = NULL;
	if (ops->open(&drv, rest, e)) {
		if (!e->msg[0])
			err_set(e, "store: could not open '%s'", location);
		return -1;
	}
	if (store_attach(out, ops, drv, e)) {
		ops->close(drv);
		return -1;
	}
	return 0;
}

void store_close(store *s)
{
	if (!s)
		return;
	(void)store_audit_detach(s);
	s->ops->close(s->drv);
	free(s);
}

int store_failed(const struct err *e)
{
	return e && !strncmp(e->msg, "store: ", 7);
}

/* Every dispatcher starts with this: the contract's preconditions. */
#define ENTER(s, e)                       \
	do {                              \
		assert((s) != NULL);      \
		assert((e) != NULL);      \
		(e)->msg[0] = '\0';       \
	} while (0)

/* ... and ends with this: a failure or a missing row always carries a message. */
static int leave(int rc, struct err *e, const char *op)
{
	if (rc < 0) {
		if (!e->msg[0])
			err_set(e, "store: %s failed", op);
		else if (strncmp(e->msg, "store: ", 7)) {
			struct err inner = *e;
			err_set(e, "store: %s", inner.msg);
		}
		return -1;
	}
	if (rc == STORE_NOTFOUND && !e->msg[0])
		err_set(e, "store: %s: not found", op);
	else if (rc == STORE_CONFLICT && !e->msg[0])
		err_set(e, "store: %s: conflicts with a stored row", op);
	else if (rc == STORE_FENCED && !e->msg[0])
		err_set(e, "store: %s: the lease was lost (fenced)", op);
	else if (rc != 0 && rc != STORE_NOTFOUND && rc != STORE_CONFLICT && rc != STORE_FENCED)
		return err_set(e, "store: %s: driver returned %d", op, rc);
	return rc;
}

static int leave_json(int rc, json_t **out, struct err *e, const char *op)
{
	rc = leave(rc, e, op);
	if (rc) {
		json_decref(*out);
		*out = NULL;
	} else if (!*out) {
		return err_set(e, "store: %s: driver returned no value", op);
	}
	return rc;
}

static int leave_buf(int rc, char *buf, size_t len, struct err *e, const char *op)
{
	rc = leave(rc, e, op);
	if (rc && len)
		buf[0] = '\0';
	return rc;
}

int store_schema_version(store *s, int *version, struct err *e)
{
	ENTER(s, e);
	*version = -1;
	return leave(s->ops->schema_version(s->drv, version, e), e, "schema version");
}

uint64_t store_changes(store *s)
{
	assert(s);
	return s->ops->changes(s->drv);
}

uint64_t store_manifest_changes(store *s)
{
	assert(s);
	return s->ops->sole_writer ? s->manifest_writes : s->manifest_writes + s->ops->changes(s->drv);
}

int store_begin(store *s, struct err *e)
{
	ENTER(s, e);
	/* a test hook (util/fault.h): every write fails as on a full disk or a read-only file */
	if (fault_active("store-write"))
		return err_set(e, "store: begin: injected fault (SLUICE_FAULT=store-write)");
	int rc = leave(s->ops->begin(s->drv, e), e, "begin");
	s->in_tx = rc == 0;
	return rc;
}

static int commit(store *s, struct err *e)
{
	ENTER(s, e);
	s->in_tx = 0;
	struct attached_audit *au = &s->audit;
	if (au->on && !au->written) {
		if (s->ops->add_audit(s->drv, &au->rec, e)) {
			s->ops->rollback(s->drv);
			return leave(-1, e, "commit (writing the audit record)");
		}
		int rc = leave(s->ops->commit(s->drv, e), e, "commit");
		au->written = rc == 0;
		return rc;
	}
	return leave(s->ops->commit(s->drv, e), e, "commit");
}

int store_commit(store *s, struct err *e)
{
	double t0 = mono_s();
	int rc = commit(s, e);
	histo_observe(&s->commits, mono_s() - t0);
	return rc;
}

void store_rollback(store *s)
{
	assert(s);
	s->in_tx = 0;
	s->manifest_writes++; /* it may undo a manifest written in the transaction */
	s->ops->rollback(s->drv);
}

int store_put_manifest(store *s, const char *kind, const char *name, const json_t *spec,
		       int *changed, struct err *e)
{
	ENTER(s, e);
	int dummy, *ch = changed ? changed : &dummy;
	*ch = 0;
	int rc = leave(s->ops->put_manifest(s->drv, kind, name, spec, ch, e), e, "put manifest");
	if (rc || *ch)
		s->manifest_writes++; /* a failed write may have changed it all the same */
	return rc;
}

int store_get_manifest(store *s, const char *kind, const char *name, json_t **out, struct err *e)
{
	ENTER(s, e);
	*out = NULL;
	int rc = s->ops->get_manifest(s->drv, kind, name, out, e);
	if (rc == STORE_NOTFOUND)
		err_set(e, "%s '%s' is not known", kind, name);
	return leave_json(rc, out, e, "get manifest");
}

int store_list_manifests(store *s, const char *kind, json_t **out, struct err *e)
{
	ENTER(s, e);
	*out = NULL;
	return leave_json(s->ops->list_manifests(s->drv, kind, out, e), out, e, "list manifests");
}

int store_put_release(store *s, const char *service, const char *version, const char *digest,
		      int64_t size, const json_t *contract, int *created, struct err *e)
{
	ENTER(s, e);
	*created = 0;
	return leave(s->ops->put_release(s->drv, service, version, digest, size, contract, created, e),
		     e, "put release");
}

int store_get_release(store *s, const char *service, const char *version, json_t **out,
		      struct err *e)
{
	ENTER(s, e);
	*out = NULL;
	int rc = s->ops->get_release(s->drv, service, version, out, e);
	if (rc == STORE_NOTFOUND)
		err_set(e, "release %s %s is not registered", service, version);
	return leave_json(rc, out, e, "get release");
}

int store_list_releases(store *s, const char *service, json_t **out, struct err *e)
{
	ENTER(s, e);
	*out = NULL;
	return leave_json(s->ops->list_releases(s->drv, service, out, e), out, e, "list releases");
}

int store_create_deployment(store *s, const char *service, const char *env, const char *version,
			    const char *kind, const json_t *state, int64_t *id, struct err *e)
{
	ENTER(s, e);
	*id = 0;
	return leave(s->ops->create_deployment(s->drv, service, env, version, kind, state, id, e), e,
		     "create deployment");
}

int store_update_deployment(store *s, int64_t id, const json_t *state, const char *phase,
			    const char *reason, struct err *e)
{
	ENTER(s, e);
	int rc = s->ops->update_deployment(s->drv, id, state, phase, reason, e);
	if (rc == STORE_NOTFOUND)
		err_set(e, "deployment %lld does not exist", (long long)id);
	return leave(rc, e, "update deployment");
}

int store_update_deployment_if(store *s, int64_t id, const json_t *expected, const json_t *state,
			       const char *phase, const char *reason, struct err *e)
{
	ENTER(s, e);
	assert(expected && state && phase);
	int rc = s->ops->update_deployment_if(s->drv, id, expected, state, phase, reason, e);
	if (rc == STORE_NOTFOUND)
		err_set(e, "deployment %lld does not exist", (long long)id);
	else if (rc == STORE_CONFLICT && !e->msg[0])
		err_set(e, "deployment %lld was changed by another writer since it was read", (long long)id);
	return leave(rc, e, "update deployment");
}

int store_get_deployment(store *s, int64_t id, json_t **out, struct err *e)
{
	ENTER(s, e);
	*out = NULL;
	int rc = s->ops->get_deployment(s->drv, id, out, e);
	if (rc == STORE_NOTFOUND)
		err_set(e, "deployment %lld does not exist", (long long)id);
	return leave_json(rc, out, e, "get deployment");
}

int store_list_deployments(store *s, const char *service, json_t **out, struct err *e)
{
	ENTER(s, e);
	*out = NULL;
	return leave_json(s->ops->list_deployments(s->drv, service, out, e), out, e, "list deployments");
}

int store_active_deployments(store *s, json_t **out, struct err *e)
{
	ENTER(s, e);
	*out = NULL;
	return leave_json(s->ops->active_deployments(s->drv, out, e), out, e, "active deployments");
}

int store_add_event(store *s, int64_t deployment, const char *type, const char *region,
		    const char *message, const json_t *evidence, struct err *e)
{
	ENTER(s, e);
	/* with a hook, the event and what the hook writes commit together */
	int own = s->hook && !s->in_tx;
	if (own && store_begin(s, e))
		return -1;
	int rc = s->ops->add_event(s->drv, deployment, type, region, message, evidence, e);
	if (rc == STORE_NOTFOUND)
		err_set(e, "deployment %lld does not exist", (long long)deployment);
	if (rc == 0 && s->hook && s->hook(s->hook_ctx, s, deployment, type, region, message, evidence, e))
		rc = -1;
	if (own) {
		if (rc)
			store_rollback(s);
		else if (store_commit(s, e))
			rc = -1;
	}
	return leave(rc, e, "add event");
}

void store_set_event_hook(store *s, store_event_hook *fn, void *ctx)
{
	assert(s);
	s->hook = fn;
	s->hook_ctx = ctx;
}

int store_list_events(store *s, int64_t deployment, json_t **out, struct err *e)
{
	ENTER(s, e);
	*out = NULL;
	return leave_json(s->ops->list_events(s->drv, deployment, out, e), out, e, "list events");
}

int store_events_after(store *s, int64_t after, int64_t limit, json_t **out, struct err *e)
{
	ENTER(s, e);
	*out = NULL;
	assert(limit > 0);
	return leave_json(s->ops->events_after(s->drv, after, limit, out, e), out, e, "events after");
}

int store_set_stable(store *s, const char *service, const char *env, const char *region,
		     const char *version, int64_t deployment, struct err *e)
{
	ENTER(s, e);
	return leave(s->ops->set_stable(s->drv, service, env, region, version, deployment, e), e,
		     "set stable");
}

int store_get_stable(store *s, const char *service, const char *env, const char *region,
		     char *buf, size_t len, struct err *e)
{
	ENTER(s, e);
	if (len)
		buf[0] = '\0';
	int rc = s->ops->get_stable(s->drv, service, env, region, buf, len, e);
	if (rc == STORE_NOTFOUND)
		err_set(e, "%s has no stable release in %s/%s", service, env, region);
	return leave_buf(rc, buf, len, e, "get stable");
}

int store_previous_stable(store *s, const char *service, const char *env, const char *region,
			  const char *current, char *buf, size_t len, struct err *e)
{
	ENTER(s, e);
	if (len)
		buf[0] = '\0';
	int rc = s->ops->previous_stable(s->drv, service, env, region, current, buf, len, e);
	if (rc == STORE_NOTFOUND)
		err_set(e, "%s has no stable release before %s in %s/%s", service, current, env, region);
	return leave_buf(rc, buf, len, e, "previous stable");
}

int store_list_stable(store *s, const char *service, json_t **out, struct err *e)
{
	ENTER(s, e);
	*out = NULL;
	return leave_json(s->ops->list_stable(s->drv, service, out, e), out, e, "list stable");
}

/* ---- tokens ---- */

int store_put_token(store *s, const struct store_token *t, struct err *e)
{
	ENTER(s, e);
	assert(t && t->name && t->hash && t->scopes && t->created_by);
	return leave(s->ops->put_token(s->drv, t, e), e, "put token");
}

int store_get_token(store *s, const char *hash, json_t **out, struct err *e)
{
	ENTER(s, e);
	*out = NULL;
	int rc = s->ops->get_token(s->drv, hash, out, e);
	if (rc == STORE_NOTFOUND)
		err_set(e, "no such token");
	return leave_json(rc, out, e, "get token");
}

int store_list_tokens(store *s, json_t **out, struct err *e)
{
	ENTER(s, e);
	*out = NULL;
	return leave_json(s->ops->list_tokens(s->drv, out, e), out, e, "list tokens");
}

int store_revoke_token(store *s, const char *name, int64_t at, struct err *e)
{
	ENTER(s, e);
	int rc = s->ops->revoke_token(s->drv, name, at, e);
	if (rc == STORE_NOTFOUND)
		err_set(e, "no token is named '%s'", name);
	return leave(rc, e, "revoke token");
}

/* ---- audit ---- */

/* The record with `at` filled and NULL text fields (but service and env) made "". */
static struct store_audit audit_normal(const struct store_audit *a)
{
	struct store_audit r = *a;
	if (!r.at)
		r.at = store_now_ms();
	r.token = r.token ? r.token : "";
	r.action = r.action ? r.action : "";
	r.request = r.request ? r.request : "";
	r.result = r.result ? r.result : "";
	r.client = r.client ? r.client : "";
	return r;
}

int store_add_audit(store *s, const struct store_audit *a, struct err *e)
{
	ENTER(s, e);
	struct store_audit r = audit_normal(a);
	return leave(s->ops->add_audit(s->drv, &r, e), e, "add audit");
}

int store_list_audit(store *s, const char *service, int64_t since, int64_t limit, json_t **out,
		     struct err *e)
{
	ENTER(s, e);
	*out = NULL;
	assert(limit > 0);
	return leave_json(s->ops->list_audit(s->drv, service, since, limit, out, e), out, e, "list audit");
}

/* Copies src into the arena at *p and returns the copy (NULL stays NULL). */
static const char *arena_copy(char **p, const char *src)
{
	if (!src)
		return NULL;
	size_t n = strlen(src) + 1;
	memcpy(*p, src, n);
	const char *out = *p;
	*p += n;
	return out;
}

int store_audit_attach(store *s, const struct store_audit *a, struct err *e)
{
	ENTER(s, e);
	(void)store_audit_detach(s);
	struct store_audit r = audit_normal(a);
	const char *f[] = {r.token, r.action, r.request, r.service, r.env, r.result, r.client};
	size_t total = 0;
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		total += f[i] ? strlen(f[i]) + 1 : 0;
	char *arena = malloc(total ? total : 1), *p = arena;
	if (!arena)
		return err_set(e, "store: out of memory");
	struct attached_audit *au = &s->audit;
	au->rec = r;
	au->rec.token = arena_copy(&p, r.token);
	au->rec.action = arena_copy(&p, r.action);
	au->rec.request = arena_copy(&p, r.request);
	au->rec.service = arena_copy(&p, r.service);
	au->rec.env = arena_copy(&p, r.env);
	au->rec.result = arena_copy(&p, r.result);
	au->rec.client = arena_copy(&p, r.client);
	au->strings = arena;
	au->on = 1;
	au->written = 0;
	return 0;
}

int store_audit_detach(store *s)
{
	assert(s);
	struct attached_audit *au = &s->audit;
	int written = au->on && au->written;
	free(au->strings);
	memset(au, 0, sizeof(*au));
	return written;
}

/* ---- feature flags ---- */

int store_put_flags(store *s, const char *env, const json_t *doc, const char *by, const char *why,
		    int64_t *version, struct err *e)
{
	ENTER(s, e);
	assert(env && doc && by);
	*version = 0;
	return leave(s->ops->put_flags(s->drv, env, doc, by, why ? why : "", version, e), e, "put flags");
}

int store_get_flags(store *s, const char *env, json_t **out, struct err *e)
{
	ENTER(s, e);
	*out = NULL;
	int rc = s->ops->get_flags(s->drv, env, out, e);
	if (rc == STORE_NOTFOUND)
		err_set(e, "environment '%s' has no flags yet", env);
	return leave_json(rc, out, e, "get flags");
}

int store_list_flag_versions(store *s, const char *env, json_t **out, struct err *e)
{
	ENTER(s, e);
	*out = NULL;
	return leave_json(s->ops->list_flag_versions(s->drv, env, out, e), out, e, "list flag versions");
}

/* ---- leases ---- */

#define LEASE_TTL_MAX 3600000

int store_lease_acquire(store *s, const char *name, const char *holder, int64_t ttl_ms, int64_t *epoch,
			struct err *e)
{
	ENTER(s, e);
	assert(name && *name && holder && *holder && epoch);
	if (ttl_ms < 1 || ttl_ms > LEASE_TTL_MAX)
		return err_set(e, "store: lease %s: a ttl of %lld ms is out of 1..%d", name, (long long)ttl_ms,
			       LEASE_TTL_MAX);
	int64_t held = *epoch;
	int rc = s->ops->lease_acquire(s->drv, name, holder, ttl_ms, epoch, e);
	if (rc == 0 && (*epoch <= 0 || (held && *epoch < held)))
		rc = err_set(e, "store: lease %s: the driver returned epoch %lld", name, (long long)*epoch);
	if (rc)
		*epoch = 0;
	return leave(rc, e, "acquire lease");
}

int store_lease_release(store *s, const char *name, const char *holder, int64_t epoch, struct err *e)
{
	ENTER(s, e);
	assert(name && holder);
	return leave(s->ops->lease_release(s->drv, name, holder, epoch, e), e, "release lease");
}

int store_lease_check(store *s, const char *name, const char *holder, int64_t epoch, struct err *e)
{
	ENTER(s, e);
	assert(name && holder);
	int rc = s->ops->lease_check(s->drv, name, holder, epoch, e);
	if (rc == STORE_NOTFOUND) { /* a lease never taken is held by nobody */
		err_set(e, "lease %s is held by no one: %s (epoch %lld) may not write", name, holder,
			(long long)epoch);
		rc = STORE_FENCED;
	}
	return leave(rc, e, "check lease");
}

int store_list_leases(store *s, json_t **out, struct err *e)
{
	ENTER(s, e);
	*out = NULL;
	return leave_json(s->ops->list_leases(s->drv, out, e), out, e, "list leases");
}

/* ---- artifacts ---- */

int store_put_artifact_chunk(store *s, const char *digest, int64_t n, const void *data, size_t len,
			     struct err *e)
{
	ENTER(s, e);
	assert(digest && data);
	if (n < 0 || len == 0 || len > STORE_ARTIFACT_CHUNK_MAX)
		return err_set(e, "store: artifact chunk %lld of %zu bytes is out of range", (long long)n, len);
	return leave(s->ops->put_artifact_chunk(s->drv, digest, n, data, len, e), e, "put artifact chunk");
}

int store_put_artifact(store *s, const char *digest, int64_t size, int64_t chunks, int *created,
		       struct err *e)
{
	ENTER(s, e);
	assert(digest && created);
	*created = 0;
	if (size < 0 || chunks < 0)
		return err_set(e, "store: artifact %s: negative size", digest);
	return leave(s->ops->put_artifact(s->drv, digest, size, chunks, created, e), e, "put artifact");
}

int store_secret(store *s, const char *name, const char *fresh, char *out, size_t cap, struct err *e)
{
	ENTER(s, e);
	assert(name && fresh && out);
	out[0] = 0;
	size_t nl = strlen(name), fl = strlen(fresh);
	if (nl == 0 || nl > 64 || fl == 0 || fl > STORE_SECRET_MAX || cap < STORE_SECRET_MAX + 1)
		return err_set(e, "store: secret '%.64s': a name of 1..64 and a value of 1..%d bytes", name,
			       STORE_SECRET_MAX);
	json_t *v = NULL;
	int rc = s->ops->secret(s->drv, name, fresh, &v, e);
	if (!rc && (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) >= cap))
		rc = err_set(e, "store: secret '%s' holds no value of 1..%d bytes", name, STORE_SECRET_MAX);
	if (!rc)
		snprintf(out, cap, "%s", json_string_value(v));
	json_decref(v);
	return leave(rc, e, "secret");
}

int store_get_artifact(store *s, const char *digest, int64_t *size, int64_t *chunks, struct err *e)
{
	ENTER(s, e);
	assert(digest && size && chunks);
	*size = *chunks = 0;
	int rc = s->ops->get_artifact(s->drv, digest, size, chunks, e);
	if (rc == STORE_NOTFOUND)
		err_set(e, "artifact %s is not in the store", digest);
	return leave(rc, e, "get artifact");
}

int store_get_artifact_chunk(store *s, const char *digest, int64_t n, void *buf, size_t cap,
			     size_t *len, struct err *e)
{
	ENTER(s, e);
	assert(digest && buf && len);
	*len = 0;
	int rc = s->ops->get_artifact_chunk(s->drv, digest, n, buf, cap, len, e);
	if (rc == STORE_NOTFOUND)
		err_set(e, "artifact %s has no chunk %lld", digest, (long long)n);
	if (rc)
		*len = 0;
	return leave(rc, e, "get artifact chunk");
}

int store_shared(store *s)
{
	return s && s->ops->shared;
}

/* ---- notifications ---- */

/* ",a,b,": at least one type, each non-empty, no spaces or quotes */
static int types_ok(const char *t)
{
	size_t n = strlen(t);
	if (n < 3 || t[0] != ',' || t[n - 1] != ',' || strstr(t, ",,"))
		return 0;
	return strspn(t, "abcdefghijklmnopqrstuvwxyz0123456789._-,") == n;
}

int store_put_subscription(store *s, const struct store_subscription *sub, int64_t *id, struct err *e)
{
	ENTER(s, e);
	assert(sub && id && sub->env && sub->service && sub->types && sub->url && sub->format &&
	       sub->secret && sub->created_by);
	*id = 0;
	if (!types_ok(sub->types))
		return err_set(e, "store: put subscription: types '%s' are not ',type,...,'", sub->types);
	int rc = s->ops->put_subscription(s->drv, sub, id, e);
	if (rc == 0 && *id <= 0)
		rc = err_set(e, "store: put subscription: the driver returned id %lld", (long long)*id);
	if (rc)
		*id = 0;
	return leave(rc, e, "put subscription");
}

int store_list_subscriptions(store *s, json_t **out, struct err *e)
{
	ENTER(s, e);
	*out = NULL;
	return leave_json(s->ops->list_subscriptions(s->drv, out, e), out, e, "list subscriptions");
}

int store_delete_subscription(store *s, int64_t id, struct err *e)
{
	ENTER(s, e);
	int rc = s->ops->delete_subscription(s->drv, id, e);
	if (rc == STORE_NOTFOUND)
		err_set(e, "no subscription has id %lld", (long long)id);
	return leave(rc, e, "delete subscription");
}

int store_notify_enqueue(store *s, const char *env, const char *service, const char *type,
			 const json_t *payload, int64_t *rows, struct err *e)
{
	ENTER(s, e);
	assert(env && service && type && payload);
	int64_t dummy;
	if (!rows)
		rows = &dummy;
	*rows = 0;
	return leave(s->ops->notify_enqueue(s->drv, env, service, type, payload, rows, e), e,
		     "enqueue notification");
}

int store_notify_pending(store *s, int64_t now_ms, int64_t limit, json_t **out, struct err *e)
{
	ENTER(s, e);
	*out = NULL;
	assert(limit > 0);
	return leave_json(s->ops->notify_pending(s->drv, now_ms, limit, out, e), out, e,
			  "pending notifications");
}

int store_notify_mark(store *s, int64_t id, int delivered, int64_t next_at, const char *error,
		      struct err *e)
{
	ENTER(s, e);
	int rc = s->ops->notify_mark(s->drv, id, delivered, next_at, error ? error : "", e);
	if (rc == STORE_NOTFOUND)
		err_set(e, "no outbox row has id %lld", (long long)id);
	return leave(rc, e, "mark notification");
}

int store_notify_backlog(store *s, int64_t *rows, int64_t *oldest, struct err *e)
{
	ENTER(s, e);
	*rows = 0;
	*oldest = 0;
	return leave(s->ops->notify_backlog(s->drv, rows, oldest, e), e, "notification backlog");
}

/* ---- guarded flag rollouts ---- */

int store_create_rollout(store *s, const char *env, const char *flag, const char *service, const json_t *state,
			 const char *by, const char *why, int64_t *id, struct err *e)
{
	ENTER(s, e);
	assert(env && flag && service && state && by && id);
	*id = 0;
	int rc = s->ops->create_rollout(s->drv, env, flag, service, state, by, why ? why : "", id, e);
	if (rc == STORE_CONFLICT && !e->msg[0])
		err_set(e, "flag '%s' already has a rollout in progress in %s", flag, env);
	return leave(rc, e, "create rollout");
}

int store_update_rollout(store *s, int64_t id, const json_t *state, const char *phase, struct err *e)
{
	ENTER(s, e);
	assert(state && phase);
	int rc = s->ops->update_rollout(s->drv, id, state, phase, e);
	if (rc == STORE_NOTFOUND)
		err_set(e, "rollout %lld does not exist", (long long)id);
	return leave(rc, e, "update rollout");
}

int store_get_rollout(store *s, int64_t id, json_t **out, struct err *e)
{
	ENTER(s, e);
	*out = NULL;
	int rc = s->ops->get_rollout(s->drv, id, out, e);
	if (rc == STORE_NOTFOUND)
		err_set(e, "rollout %lld does not exist", (long long)id);
	return leave_json(rc, out, e, "get rollout");
}

int store_list_rollouts(store *s, const char *env, int active_only, json_t **out, struct err *e)
{
	ENTER(s, e);
	*out = NULL;
	return leave_json(s->ops->list_rollouts(s->drv, env, active_only, out, e), out, e, "list rollouts");
}

int store_add_rollout_event(store *s, int64_t rollout, const char *type, const char *message,
			    const json_t *evidence, struct err *e)
{
	ENTER(s, e);
	assert(type && message);
	int rc = s->ops->add_rollout_event(s->drv, rollout, type, message, evidence, e);
	if (rc == STORE_NOTFOUND)
		err_set(e, "rollout %lld does not exist", (long long)rollout);
	return leave(rc, e, "add rollout event");
}

int store_list_rollout_events(store *s, int64_t rollout, json_t **out, struct err *e)
{
	ENTER(s, e);
	*out = NULL;
	return leave_json(s->ops->list_rollout_events(s->drv, rollout, out, e), out, e, "list rollout events");
}
