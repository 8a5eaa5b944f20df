/* faulty_store: see faulty_store.h. Each operation checks the switch, then forwards. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faulty_store.h"

struct faulty_store {
	store *inner;
	char fail[256];
	unsigned failures;
	char before_op[64]; /* faulty_store_before: run once before this operation */
	void (*before)(void *arg);
	void *before_arg;
};

static int failing(struct faulty_store *f, const char *op)
{
	if (f->before && !strcmp(f->before_op, op)) {
		void (*fn)(void *) = f->before;
		f->before = NULL; /* once */
		fn(f->before_arg);
	}
	if (!f->fail[0])
		return 0;
	if (strcmp(f->fail, "*")) {
		size_t n = strlen(op);
		const char *p = f->fail;
		for (;;) {
			const char *comma = strchr(p, ',');
			size_t len = comma ? (size_t)(comma - p) : strlen(p);
			if (len == n && !strncmp(p, op, n))
				break;
			if (!comma)
				return 0;
			p = comma + 1;
		}
	}
	f->failures++;
	return 1;
}

#define FAULT(op, e)                                                                   \
	do {                                                                           \
		if (failing(drv, op))                                                  \
			return err_set(e, "store: connection lost (injected: %s)", op); \
	} while (0)
#define IN(drv) (((struct faulty_store *)(drv))->inner)

static void f_close(void *drv)
{
	store_close(IN(drv));
	free(drv);
}
static uint64_t f_changes(void *drv) { return store_changes(IN(drv)); }
static void f_rollback(void *drv) { store_rollback(IN(drv)); }
static int f_schema_version(void *drv, int *v, struct err *e)
{
	FAULT("schema_version", e);
	return store_schema_version(IN(drv), v, e);
}
static int f_begin(void *drv, struct err *e)
{
	FAULT("begin", e);
	return store_begin(IN(drv), e);
}
static int f_commit(void *drv, struct err *e)
{
	if (failing(drv, "commit")) {
		store_rollback(IN(drv)); /* the contract: a failed commit rolls back */
		return err_set(e, "store: connection lost (injected: commit)");
	}
	return store_commit(IN(drv), e);
}
static int f_put_manifest(void *drv, const char *k, const char *n, const json_t *spec, int *ch, struct err *e)
{
	FAULT("put_manifest", e);
	return store_put_manifest(IN(drv), k, n, spec, ch, e);
}
static int f_get_manifest(void *drv, const char *k, const char *n, json_t **out, struct err *e)
{
	FAULT("get_manifest", e);
	return store_get_manifest(IN(drv), k, n, out, e);
}
static int f_list_manifests(void *drv, const char *k, json_t **out, struct err *e)
{
	FAULT("list_manifests", e);
	return store_list_manifests(IN(drv), k, out, e);
}
static int f_put_release(void *drv, const char *s, const char *v, const char *d, int64_t size,
			 const json_t *c, int *created, struct err *e)
{
	FAULT("put_release", e);
	return store_put_release(IN(drv), s, v, d, size, c, created, e);
}
static int f_get_release(void *drv, const char *s, const char *v, json_t **out, struct err *e)
{
	FAULT("get_release", e);
	return store_get_release(IN(drv), s, v, out, e);
}
static int f_list_releases(void *drv, const char *s, json_t **out, struct err *e)
{
	FAULT("list_releases", e);
	return store_list_releases(IN(drv), s, out, e);
}
static int f_create_deployment(void *drv, const char *s, const char *env, const char *v, const char *k,
			       const json_t *st, int64_t *id, struct err *e)
{
	FAULT("create_deployment", e);
	return store_create_deployment(IN(drv), s, env, v, k, st, id, e);
}
static int f_update_deployment(void *drv, int64_t id, const json_t *st, const char *ph, const char *r,
			       struct err *e)
{
	FAULT("update_deployment", e);
	return store_update_deployment(IN(drv), id, st, ph, r, e);
}
static int f_get_deployment(void *drv, int64_t id, json_t **out, struct err *e)
{
	FAULT("get_deployment", e);
	return store_get_deployment(IN(drv), id, out, e);
}
static int f_list_deployments(void *drv, const char *s, json_t **out, struct err *e)
{
	FAULT("list_deployments", e);
	return store_list_deployments(IN(drv), s, out, e);
}
static int f_active_deployments(void *drv, json_t **out, struct err *e)
{
	FAULT("active_deployments", e);
	return store_active_deployments(IN(drv), out, e);
}
static int f_add_event(void *drv, int64_t d, const char *t, const char *r, const char *m,
		       const json_t *ev, struct err *e)
{
	FAULT("add_event", e);
	return store_add_event(IN(drv), d, t, r, m, ev, e);
}
static int f_events_after(void *drv, int64_t a, int64_t n, json_t **out, struct err *e)
{
	FAULT("events_after", e);
	return store_events_after(IN(drv), a, n, out, e);
}
static int f_list_events(void *drv, int64_t d, json_t **out, struct err *e)
{
	FAULT("list_events", e);
	return store_list_events(IN(drv), d, out, e);
}
static int f_set_stable(void *drv, const char *s, const char *env, const char *r, const char *v,
			int64_t d, struct err *e)
{
	FAULT("set_stable", e);
	return store_set_stable(IN(drv), s, env, r, v, d, e);
}
static int f_get_stable(void *drv, const char *s, const char *env, const char *r, char *buf, size_t len,
			struct err *e)
{
	FAULT("get_stable", e);
	return store_get_stable(IN(drv), s, env, r, buf, len, e);
}
static int f_previous_stable(void *drv, const char *s, const char *env, const char *r, const char *cur,
			     char *buf, size_t len, struct err *e)
{
	FAULT("previous_stable", e);
	return store_previous_stable(IN(drv), s, env, r, cur, buf, len, e);
}
static int f_list_stable(void *drv, const char *s, json_t **out, struct err *e)
{
	FAULT("list_stable", e);
	return store_list_stable(IN(drv), s, out, e);
}
static int f_put_token(void *drv, const struct store_token *t, struct err *e)
{
	FAULT("put_token", e);
	return store_put_token(IN(drv), t, e);
}
static int f_get_token(void *drv, const char *h, json_t **out, struct err *e)
{
	FAULT("get_token", e);
	return store_get_token(IN(drv), h, out, e);
}
static int f_list_tokens(void *drv, json_t **out, struct err *e)
{
	FAULT("list_tokens", e);
	return store_list_tokens(IN(drv), out, e);
}
static int f_revoke_token(void *drv, const char *n, int64_t at, struct err *e)
{
	FAULT("revoke_token", e);
	return store_revoke_token(IN(drv), n, at, e);
}
static int f_add_audit(void *drv, const struct store_audit *a, struct err *e)
{
	FAULT("add_audit", e);
	return store_add_audit(IN(drv), a, e);
}
static int f_list_audit(void *drv, const char *s, int64_t since, int64_t limit, json_t **out,
			struct err *e)
{
	FAULT("list_audit", e);
	return store_list_audit(IN(drv), s, since, limit, out, e);
}
static int f_put_flags(void *drv, const char *env, const json_t *doc, const char *by, const char *why,
		       int64_t *v, struct err *e)
{
	FAULT("put_flags", e);
	return store_put_flags(IN(drv), env, doc, by, why, v, e);
}
static int f_get_flags(void *drv, const char *env, json_t **out, struct err *e)
{
	FAULT("get_flags", e);
	return store_get_flags(IN(drv), env, out, e);
}
static int f_list_flag_versions(void *drv, const char *env, json_t **out, struct err *e)
{
	FAULT("list_flag_versions", e);
	return store_list_flag_versions(IN(drv), env, out, e);
}
static int f_lease_acquire(void *drv, const char *n, const char *h, int64_t ttl, int64_t *ep, struct err *e)
{
	FAULT("lease_acquire", e);
	return store_lease_acquire(IN(drv), n, h, ttl, ep, e);
}
static int f_lease_release(void *drv, const char *n, const char *h, int64_t ep, struct err *e)
{
	FAULT("lease_release", e);
	return store_lease_release(IN(drv), n, h, ep, e);
}
static int f_lease_check(void *drv, const char *n, const char *h, int64_t ep, struct err *e)
{
	FAULT("lease_check", e);
	return store_lease_check(IN(drv), n, h, ep, e);
}
static int f_list_leases(void *drv, json_t **out, struct err *e)
{
	FAULT("list_leases", e);
	return store_list_leases(IN(drv), out, e);
}

static int f_put_artifact_chunk(void *drv, const char *d, int64_t n, const void *p, size_t len,
				struct err *e)
{
	FAULT("put_artifact_chunk", e);
	return store_put_artifact_chunk(IN(drv), d, n, p, len, e);
}
static int f_put_artifact(void *drv, const char *d, int64_t size, int64_t chunks, int *created,
			  struct err *e)
{
	FAULT("put_artifact", e);
	return store_put_artifact(IN(drv), d, size, chunks, created, e);
}
static int f_get_artifact(void *drv, const char *d, int64_t *size, int64_t *chunks, struct err *e)
{
	FAULT("get_artifact", e);
	return store_get_artifact(IN(drv), d, size, chunks, e);
}
static int f_get_artifact_chunk(void *drv, const char *d, int64_t n, void *buf, size_t cap,
				size_t *len, struct err *e)
{
	FAULT("get_artifact_chunk", e);
	return store_get_artifact_chunk(IN(drv), d, n, buf, cap, len, e);
}
static int f_update_deployment_if(void *drv, int64_t id, const json_t *x, const json_t *st,
				  const char *ph, const char *r, struct err *e)
{
	FAULT("update_deployment_if", e);
	return store_update_deployment_if(IN(drv), id, x, st, ph, r, e);
}
static int f_secret(void *drv, const char *name, const char *fresh, json_t **v, struct err *e)
{
	FAULT("secret", e);
	char out[STORE_SECRET_MAX + 1];
	int rc = store_secret(IN(drv), name, fresh, out, sizeof(out), e);
	if (!rc)
		*v = json_string(out);
	return rc;
}
static int f_put_subscription(void *drv, const struct store_subscription *sub, int64_t *id, struct err *e)
{
	FAULT("put_subscription", e);
	return store_put_subscription(IN(drv), sub, id, e);
}
static int f_list_subscriptions(void *drv, json_t **out, struct err *e)
{
	FAULT("list_subscriptions", e);
	return store_list_subscriptions(IN(drv), out, e);
}
static int f_delete_subscription(void *drv, int64_t id, struct err *e)
{
	FAULT("delete_subscription", e);
	return store_delete_subscription(IN(drv), id, e);
}
static int f_notify_enqueue(void *drv, const char *env, const char *svc, const char *type,
			    const json_t *payload, int64_t *rows, struct err *e)
{
	FAULT("notify_enqueue", e);
	return store_notify_enqueue(IN(drv), env, svc, type, payload, rows, e);
}
static int f_notify_pending(void *drv, int64_t now, int64_t limit, json_t **out, struct err *e)
{
	FAULT("notify_pending", e);
	return store_notify_pending(IN(drv), now, limit, out, e);
}
static int f_notify_mark(void *drv, int64_t id, int delivered, int64_t next_at, const char *error,
			 struct err *e)
{
	FAULT("notify_mark", e);
	return store_notify_mark(IN(drv), id, delivered, next_at, error, e);
}
static int f_notify_backlog(void *drv, int64_t *rows, int64_t *oldest, struct err *e)
{
	FAULT("notify_backlog", e);
	return store_notify_backlog(IN(drv), rows, oldest, e);
}
static int f_create_rollout(void *drv, const char *env, const char *flag, const char *svc, const json_t *st,
			    const char *by, const char *why, int64_t *id, struct err *e)
{
	FAULT("create_rollout", e);
	return store_create_rollout(IN(drv), env, flag, svc, st, by, why, id, e);
}
static int f_update_rollout(void *drv, int64_t id, const json_t *st, const char *phase, struct err *e)
{
	FAULT("update_rollout", e);
	return store_update_rollout(IN(drv), id, st, phase, e);
}
static int f_get_rollout(void *drv, int64_t id, json_t **out, struct err *e)
{
	FAULT("get_rollout", e);
	return store_get_rollout(IN(drv), id, out, e);
}
static int f_list_rollouts(void *drv, const char *env, int active, json_t **out, struct err *e)
{
	FAULT("list_rollouts", e);
	return store_list_rollouts(IN(drv), env, active, out, e);
}
static int f_add_rollout_event(void *drv, int64_t id, const char *t, const char *m, const json_t *ev,
			       struct err *e)
{
	FAULT("add_rollout_event", e);
	return store_add_rollout_event(IN(drv), id, t, m, ev, e);
}
static int f_list_rollout_events(void *drv, int64_t id, json_t **out, struct err *e)
{
	FAULT("list_rollout_events", e);
	return store_list_rollout_events(IN(drv), id, out, e);
}

static const struct store_ops faulty_store_ops = {
	.scheme = "faulty",
	.close = f_close,
	.schema_version = f_schema_version,
	.changes = f_changes,
	.begin = f_begin,
	.commit = f_commit,
	.rollback = f_rollback,
	.put_manifest = f_put_manifest,
	.get_manifest = f_get_manifest,
	.list_manifests = f_list_manifests,
	.put_release = f_put_release,
	.get_release = f_get_release,
	.list_releases = f_list_releases,
	.create_deployment = f_create_deployment,
	.update_deployment = f_update_deployment,
	.get_deployment = f_get_deployment,
	.list_deployments = f_list_deployments,
	.active_deployments = f_active_deployments,
	.add_event = f_add_event,
	.list_events = f_list_events,
	.events_after = f_events_after,
	.set_stable = f_set_stable,
	.get_stable = f_get_stable,
	.previous_stable = f_previous_stable,
	.list_stable = f_list_stable,
	.put_token = f_put_token,
	.get_token = f_get_token,
	.list_tokens = f_list_tokens,
	.revoke_token = f_revoke_token,
	.add_audit = f_add_audit,
	.list_audit = f_list_audit,
	.put_flags = f_put_flags,
	.get_flags = f_get_flags,
	.list_flag_versions = f_list_flag_versions,
	.lease_acquire = f_lease_acquire,
	.lease_release = f_lease_release,
	.lease_check = f_lease_check,
	.list_leases = f_list_leases,
	.put_artifact_chunk = f_put_artifact_chunk,
	.put_artifact = f_put_artifact,
	.get_artifact = f_get_artifact,
	.get_artifact_chunk = f_get_artifact_chunk,
	.update_deployment_if = f_update_deployment_if,
	.secret = f_secret,
	.put_subscription = f_put_subscription,
	.list_subscriptions = f_list_subscriptions,
	.delete_subscription = f_delete_subscription,
	.notify_enqueue = f_notify_enqueue,
	.notify_pending = f_notify_pending,
	.notify_mark = f_notify_mark,
	.notify_backlog = f_notify_backlog,
	.create_rollout = f_create_rollout,
	.update_rollout = f_update_rollout,
	.get_rollout = f_get_rollout,
	.list_rollouts = f_list_rollouts,
	.add_rollout_event = f_add_rollout_event,
	.list_rollout_events = f_list_rollout_events,
};

int faulty_store_open(store **out, struct faulty_store **f, store *inner, struct err *e)
{
	struct faulty_store *fs = calloc(1, sizeof(*fs));
	if (!fs) {
		store_close(inner);
		return err_set(e, "out of memory");
	}
	fs->inner = inner;
	if (store_attach(out, &faulty_store_ops, fs, e)) {
		f_close(fs);
		return -1;
	}
	*f = fs;
	return 0;
}

void faulty_store_fail(struct faulty_store *f, const char *ops)
{
	snprintf(f->fail, sizeof(f->fail), "%s", ops ? ops : "");
}

unsigned faulty_store_failures(const struct faulty_store *f)
{
	return f->failures;
}

void faulty_store_before(struct faulty_store *f, const char *op, void (*fn)(void *arg), void *arg)
{
	snprintf(f->before_op, sizeof(f->before_op), "%s", op);
	f->before = fn;
	f->before_arg = arg;
}
