/*
 * store: the dispatchers of the store interface (see store.h). Each checks the error contract
 * once, for every driver: e is required, OUT values start empty, a failure carries a message
 * and a missing row says which row it was.
 */
#include "store/store.h"

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
};

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

int store_begin(store *s, struct err *e)
{
	ENTER(s, e);
	return leave(s->ops->begin(s->drv, e), e, "begin");
}

int store_commit(store *s, struct err *e)
{
	ENTER(s, e);
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

void store_rollback(store *s)
{
	assert(s);
	s->ops->rollback(s->drv);
}

int store_put_manifest(store *s, const char *kind, const char *name, const json_t *spec,
		       int *changed, struct err *e)
{
	ENTER(s, e);
	int dummy;
	return leave(s->ops->put_manifest(s->drv, kind, name, spec, changed ? changed : &dummy, e), e,
		     "put manifest");
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
	int rc = s->ops->add_event(s->drv, deployment, type, region, message, evidence, e);
	if (rc == STORE_NOTFOUND)
		err_set(e, "deployment %lld does not exist", (long long)deployment);
	return leave(rc, e, "add event");
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
