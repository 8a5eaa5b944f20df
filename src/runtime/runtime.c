/*
 * runtime: the registry of drivers and the dispatchers over their operation tables (see
 * runtime.h).
 */
#include "runtime/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime_docker.h"
#include "runtime/runtime_local.h"

struct runtime {
	const struct runtime_ops *ops;
	void *drv;
};

/* Every driver sluice knows, by kind. */
static const struct runtime_ops *const drivers[] = {&runtime_local_ops, &runtime_docker_ops};

int runtime_open_ops(runtime **out, const struct runtime_ops *ops, const json_t *settings,
		     const struct runtime_host *host, struct err *e)
{
	if (settings && !json_is_object(settings))
		return err_set(e, "runtime '%s': settings must be a mapping", ops->kind);
	runtime *rt = calloc(1, sizeof *rt);
	if (!rt)
		return err_set(e, "out of memory");
	rt->ops = ops;
	if (ops->open(&rt->drv, settings, host, e)) {
		free(rt);
		return -1;
	}
	*out = rt;
	return 0;
}

int runtime_open(runtime **out, const char *kind, const json_t *settings, const struct runtime_host *host,
		 struct err *e)
{
	char known[128] = "";
	for (size_t i = 0; i < sizeof drivers / sizeof *drivers; i++) {
		if (kind && !strcmp(kind, drivers[i]->kind))
			return runtime_open_ops(out, drivers[i], settings, host, e);
		size_t l = strlen(known);
		snprintf(known + l, sizeof known - l, "%s%s", l ? ", " : "", drivers[i]->kind);
	}
	return err_set(e, "unknown runtime '%s': known kinds are %s", kind ? kind : "", known);
}

void runtime_close(runtime *rt)
{
	if (!rt)
		return;
	rt->ops->close(rt->drv);
	free(rt);
}

const char *runtime_kind(const runtime *rt)
{
	return rt->ops->kind;
}

int runtime_serves(const runtime *rt, const char *kind, const json_t *settings)
{
	return kind && !strcmp(kind, rt->ops->kind) && rt->ops->same_settings(rt->drv, settings);
}

void *runtime_driver(const runtime *rt)
{
	return rt->drv;
}

int runtime_check_names(runtime *rt, const char *service, const char *env, const char *region,
			const char *version, struct err *e)
{
	return rt->ops->check_names(rt->drv, service, env, region, version, e);
}

int runtime_ensure(runtime *rt, const struct instance_spec *spec, unsigned count, struct err *e)
{
	return rt->ops->ensure(rt->drv, spec, count, e);
}

int runtime_stop(runtime *rt, const char *service, const char *env, const char *region, const char *version)
{
	return rt->ops->stop(rt->drv, service, env, region, version);
}

void runtime_stop_all(runtime *rt)
{
	rt->ops->stop_all(rt->drv);
}

void runtime_tick(runtime *rt, uint64_t now_ms)
{
	rt->ops->tick(rt->drv, now_ms);
}

uint64_t runtime_generation(const runtime *rt)
{
	return rt->ops->generation(rt->drv);
}

int runtime_list(runtime *rt, const char *service, const char *env, const char *region, const char *version,
		 struct instance_info **out, size_t *n)
{
	return rt->ops->list(rt->drv, service, env, region, version, out, n);
}

int runtime_logs(runtime *rt, const char *service, const char *env, const char *region, size_t max_bytes,
		 struct buf *out)
{
	return rt->ops->logs(rt->drv, service, env, region, max_bytes, out);
}

static const char *state_names[] = {"starting", "healthy", "unhealthy", "backoff", "stopping", "stopped"};

const char *runtime_state_name(enum instance_state s)
{
	return (unsigned)s < sizeof state_names / sizeof *state_names ? state_names[s] : "unknown";
}
