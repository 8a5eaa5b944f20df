#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_runtime.h"

#define FAKE_MAX 512

struct fake_rt {
	struct instance_info in[FAKE_MAX];
	int used[FAKE_MAX];
	int crashed[FAKE_MAX]; /* killed by fake_runtime_crash: restarts through STARTING */
	char broken[8][RUNTIME_NAME_MAX];
	char unhealthy[8][RUNTIME_NAME_MAX];
	char refuse[256];
	uint64_t gen;
	unsigned ensures, starts, next_port;
};

static int f_open(void **drv, const json_t *settings, const struct runtime_host *host, struct err *e)
{
	struct fake_rt *f = calloc(1, sizeof(*f));
	if (!f)
		return err_set(e, "out of memory");
	f->next_port = 30000;
	*drv = f;
	return 0;
}

static void f_close(void *drv)
{
	free(drv);
}

static int f_same(void *drv, const json_t *settings)
{
	return settings == NULL;
}

static int f_check_names(void *drv, const char *service, const char *env, const char *region,
			 const char *version, struct err *e)
{
	return 0;
}

static int matches(const struct instance_info *in, const char *service, const char *env,
		   const char *region, const char *version)
{
	return (!service || !strcmp(in->service, service)) && (!env || !strcmp(in->env, env)) &&
	       (!region || !strcmp(in->region, region)) && (!version || !strcmp(in->version, version));
}

static int in_set(char set[8][RUNTIME_NAME_MAX], const char *version)
{
	for (int i = 0; i < 8; i++)
		if (set[i][0] && !strcmp(set[i], version))
			return 1;
	return 0;
}

static int is_broken(struct fake_rt *f, const char *version)
{
	return in_set(f->broken, version);
}

/* Adds version to set, or takes it out. */
static void set_mark(char set[8][RUNTIME_NAME_MAX], const char *version, int on)
{
	for (int i = 0; i < 8; i++) {
		if (on && !set[i][0]) {
			snprintf(set[i], RUNTIME_NAME_MAX, "%s", version);
			return;
		}
		if (!on && !strcmp(set[i], version))
			set[i][0] = '\0';
	}
}

static int f_ensure(void *drv, const struct instance_spec *s, unsigned count, struct err *e)
{
	struct fake_rt *f = drv;
	f->ensures++;
	if (f->refuse[0])
		return err_set(e, "%s", f->refuse);
	for (unsigned idx = 0; idx < count; idx++) {
		int have = 0, free_slot = -1;
		for (int i = 0; i < FAKE_MAX; i++) {
			if (!f->used[i]) {
				if (free_slot < 0)
					free_slot = i;
				continue;
			}
			if (matches(&f->in[i], s->service, s->env, s->region, s->version) &&
			    f->in[i].index == (int)idx && f->in[i].state != INSTANCE_STOPPED &&
			    f->in[i].state != INSTANCE_STOPPING)
				have = 1;
		}
		if (have)
			continue;
		if (free_slot < 0)
			return err_set(e, "fake runtime: full");
		struct instance_info *in = &f->in[free_slot];
		memset(in, 0, sizeof(*in));
		f->used[free_slot] = 1;
		snprintf(in->service, sizeof(in->service), "%s", s->service);
		snprintf(in->env, sizeof(in->env), "%s", s->env);
		snprintf(in->region, sizeof(in->region), "%s", s->region);
		snprintf(in->version, sizeof(in->version), "%s", s->version);
		snprintf(in->id, sizeof(in->id), "%s.%s.%s.%s.%u", s->service, s->env, s->region, s->version, idx);
		in->index = (int)idx;
		snprintf(in->endpoint, sizeof(in->endpoint), "127.0.0.1:%u", f->next_port++);
		snprintf(in->detail, sizeof(in->detail), "fake %u", f->starts);
		in->state = INSTANCE_STARTING;
		f->starts++;
		f->gen++;
	}
	/* scale down: the instances past count stop */
	for (int i = 0; i < FAKE_MAX; i++)
		if (f->used[i] && matches(&f->in[i], s->service, s->env, s->region, s->version) &&
		    f->in[i].index >= (int)count && f->in[i].state != INSTANCE_STOPPED &&
		    f->in[i].state != INSTANCE_STOPPING) {
			f->in[i].state = INSTANCE_STOPPING;
			f->gen++;
		}
	return 0;
}

static int f_stop(void *drv, const char *service, const char *env, const char *region, const char *version)
{
	struct fake_rt *f = drv;
	for (int i = 0; i < FAKE_MAX; i++)
		if (f->used[i] && matches(&f->in[i], service, env, region, version) &&
		    f->in[i].state != INSTANCE_STOPPED && f->in[i].state != INSTANCE_STOPPING) {
			f->in[i].state = INSTANCE_STOPPING;
			f->gen++;
		}
	return 0;
}

static void f_stop_all(void *drv)
{
	f_stop(drv, NULL, NULL, NULL, NULL);
}

static void f_tick(void *drv, uint64_t now_ms)
{
	struct fake_rt *f = drv;
	for (int i = 0; i < FAKE_MAX; i++) {
		if (!f->used[i])
			continue;
		struct instance_info *in = &f->in[i];
		enum instance_state was = in->state;
		if (in->state == INSTANCE_STOPPING) {
			in->state = INSTANCE_STOPPED;
		} else if (in->state == INSTANCE_STARTING || in->state == INSTANCE_BACKOFF) {
			if (is_broken(f, in->version)) {
				if (in->state == INSTANCE_STARTING) {
					in->state = INSTANCE_BACKOFF;
					snprintf(in->reason, sizeof(in->reason), "exited with status 1");
				} else {
					in->state = INSTANCE_STARTING;
					in->restarts++;
					in->failed_starts++;
				}
			} else if (in->state == INSTANCE_BACKOFF && f->crashed[i]) {
				/* a crash of a working release: started again (it serves at the next tick) */
				f->crashed[i] = 0;
				in->state = INSTANCE_STARTING;
				in->restarts++;
				in->failed_starts++;
			} else {
				in->state = INSTANCE_HEALTHY;
				in->failed_starts = 0;
			}
		} else if (in->state == INSTANCE_HEALTHY && is_broken(f, in->version)) {
			in->state = INSTANCE_BACKOFF;
			snprintf(in->reason, sizeof(in->reason), "exited with status 1");
		} else if (in->state == INSTANCE_HEALTHY && in_set(f->unhealthy, in->version)) {
			in->state = INSTANCE_UNHEALTHY;
		} else if (in->state == INSTANCE_UNHEALTHY && !in_set(f->unhealthy, in->version)) {
			in->state = INSTANCE_HEALTHY;
		}
		if (in->state != was)
			f->gen++;
	}
}

static uint64_t f_generation(const void *drv)
{
	return ((const struct fake_rt *)drv)->gen;
}

static int cmp_id(const void *a, const void *b)
{
	const struct instance_info *x = a, *y = b;
	int c = strcmp(x->service, y->service);
	if (!c)
		c = strcmp(x->env, y->env);
	if (!c)
		c = strcmp(x->region, y->region);
	if (!c)
		c = strcmp(x->version, y->version);
	return c ? c : x->index - y->index;
}

static int f_list(void *drv, const char *service, const char *env, const char *region, const char *version,
		  struct instance_info **out, size_t *n)
{
	struct fake_rt *f = drv;
	size_t cnt = 0;
	struct instance_info *all = calloc(FAKE_MAX, sizeof(*all));
	if (!all)
		return -1;
	for (int i = 0; i < FAKE_MAX; i++) {
		if (!f->used[i] || !matches(&f->in[i], service, env, region, version))
			continue;
		all[cnt++] = f->in[i];
		if (f->in[i].state == INSTANCE_STOPPED)
			f->used[i] = 0; /* listed once, then forgotten */
	}
	qsort(all, cnt, sizeof(*all), cmp_id);
	if (!cnt) {
		free(all);
		all = NULL;
	}
	*out = all;
	*n = cnt;
	return 0;
}

static int f_logs(void *drv, const char *service, const char *env, const char *region, size_t max_bytes,
		  struct buf *out)
{
	return 0;
}

const struct runtime_ops fake_runtime_ops = {
	.kind = "local",
	.open = f_open,
	.close = f_close,
	.same_settings = f_same,
	.check_names = f_check_names,
	.ensure = f_ensure,
	.stop = f_stop,
	.stop_all = f_stop_all,
	.tick = f_tick,
	.generation = f_generation,
	.list = f_list,
	.logs = f_logs,
};

static struct fake_rt *fake(runtime *rt)
{
	return runtime_driver(rt);
}

void fake_runtime_set_broken(runtime *rt, const char *version, int broken)
{
	set_mark(fake(rt)->broken, version, broken);
}

void fake_runtime_set_unhealthy(runtime *rt, const char *version, int unhealthy)
{
	set_mark(fake(rt)->unhealthy, version, unhealthy);
}

void fake_runtime_refuse(runtime *rt, const char *msg)
{
	snprintf(fake(rt)->refuse, sizeof(fake(rt)->refuse), "%s", msg ? msg : "");
}

unsigned fake_runtime_ensures(runtime *rt)
{
	return fake(rt)->ensures;
}

unsigned fake_runtime_starts(runtime *rt)
{
	return fake(rt)->starts;
}

unsigned fake_runtime_count(runtime *rt, const char *service, const char *env, const char *region,
			    const char *version)
{
	struct fake_rt *f = fake(rt);
	unsigned n = 0;
	for (int i = 0; i < FAKE_MAX; i++)
		n += f->used[i] && matches(&f->in[i], service, env, region, version) &&
		     f->in[i].state != INSTANCE_STOPPED;
	return n;
}

void fake_runtime_crash(runtime *rt, const char *version)
{
	struct fake_rt *f = fake(rt);
	for (int i = 0; i < FAKE_MAX; i++)
		if (f->used[i] && !strcmp(f->in[i].version, version) && f->in[i].state == INSTANCE_HEALTHY) {
			f->in[i].state = INSTANCE_BACKOFF;
			f->crashed[i] = 1;
			snprintf(f->in[i].reason, sizeof(f->in[i].reason), "killed by signal 9");
			f->gen++;
		}
}
