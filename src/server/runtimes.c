/*
 * runtimes: which runtime serves which region (see runtimes.h).
 */
#include "server/runtimes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUNTIMES_MAX 16 /* distinct kinds and settings in use at once */

struct runtimes {
	char *data_dir;
	runtime *open[RUNTIMES_MAX]; /* open[0] is the local runtime; NULL while a shared set waits */
	size_t nopen;
	uint64_t local_retry_at;      /* a shared set without open[0]: when to try again */
	json_t *regions;             /* "env/region" -> index into open */
};

int runtimes_open_with(runtimes **out, const char *data_dir, runtime *rt, struct err *e)
{
	runtimes *rs = calloc(1, sizeof *rs);
	if (!rs || !(rs->data_dir = strdup(data_dir)) || !(rs->regions = json_object())) {
		if (rs)
			free(rs->data_dir);
		free(rs);
		runtime_close(rt);
		return err_set(e, "out of memory");
	}
	rs->open[0] = rt;
	rs->nopen = 1;
	*out = rs;
	return 0;
}

int runtimes_open(runtimes **out, const char *data_dir, struct err *e)
{
	struct runtime_host host = {.data_dir = data_dir};
	runtime *local = NULL;
	if (runtime_open(&local, "local", NULL, &host, e))
		return -1;
	return runtimes_open_with(out, data_dir, local, e);
}

int runtimes_open_shared(runtimes **out, const char *data_dir, struct err *e)
{
	struct runtime_host host = {.data_dir = data_dir};
	runtime *local = NULL;
	struct err why = {""};
	if (runtime_open(&local, "local", NULL, &host, &why)) {
		log_info("%s: waiting for it (another replica drives the local instances)", why.msg);
		local = NULL;
	}
	runtimes *rs = calloc(1, sizeof *rs);
	if (!rs || !(rs->data_dir = strdup(data_dir)) || !(rs->regions = json_object())) {
		if (rs)
			free(rs->data_dir);
		free(rs);
		runtime_close(local);
		return err_set(e, "out of memory");
	}
	rs->open[0] = local;
	rs->nopen = 1;
	*out = rs;
	return 0;
}

int runtimes_local_ready(const runtimes *rs)
{
	return rs->open[0] != NULL;
}

/* A shared set takes the local runtime once the replica that held it is gone. */
static void retry_local(runtimes *rs, uint64_t now_ms)
{
	if (rs->open[0] || now_ms < rs->local_retry_at)
		return;
	rs->local_retry_at = now_ms + 1000;
	struct runtime_host host = {.data_dir = rs->data_dir};
	struct err e = {""};
	if (runtime_open(&rs->open[0], "local", NULL, &host, &e) == 0) {
		log_info("took the local runtime (DATA/instances): its instances are adopted");
		return;
	}
	rs->open[0] = NULL;
}

void runtimes_close(runtimes *rs)
{
	if (!rs)
		return;
	for (size_t i = 0; i < rs->nopen; i++)
		runtime_close(rs->open[i]);
	json_decref(rs->regions);
	free(rs->data_dir);
	free(rs);
}

static void region_key(char *key, size_t len, const char *env, const char *region)
{
	snprintf(key, len, "%s/%s", env, region);
}

int runtimes_resolve(runtimes *rs, const char *env, const struct manifest_region *region, runtime **out,
		     struct err *e)
{
	const char *rname = region->name, *kind = region->runtime_kind;
	const json_t *settings = region->runtime_settings; /* NULL: the kind's defaults */
	if (!kind || !*kind)
		kind = "local"; /* the manifest's default */
	size_t i = 0;
	while (i < rs->nopen && (!rs->open[i] || !runtime_serves(rs->open[i], kind, settings)))
		i++;
	if (i == rs->nopen) {
		if (!strcmp(kind, "local") && !rs->open[0])
			return err_set(e, "region %s/%s: the local runtime (DATA/instances) is held by another "
					  "replica on this machine", env, rname);
		if (!strcmp(kind, "local"))
			return err_set(e, "region %s/%s: every local region shares one local runtime "
					  "(DATA/instances), opened with the default settings: remove its settings",
				       env, rname);
		if (rs->nopen == RUNTIMES_MAX)
			return err_set(e, "region %s/%s: more than %d different runtimes", env, rname, RUNTIMES_MAX);
		struct runtime_host host = {.data_dir = rs->data_dir};
		if (runtime_open(&rs->open[i], kind, settings, &host, e))
			return -1;
		rs->nopen++;
	}
	char key[2 * RUNTIME_NAME_MAX + 2];
	region_key(key, sizeof key, env, rname);
	json_object_set_new(rs->regions, key, json_integer((json_int_t)i));
	*out = rs->open[i];
	return 0;
}

runtime *runtimes_get(const runtimes *rs, const char *env, const char *region)
{
	char key[2 * RUNTIME_NAME_MAX + 2];
	region_key(key, sizeof key, env, region);
	json_t *v = json_object_get(rs->regions, key);
	return v ? rs->open[json_integer_value(v)] : NULL;
}

void runtimes_tick(runtimes *rs, uint64_t now_ms)
{
	retry_local(rs, now_ms);
	for (size_t i = 0; i < rs->nopen; i++)
		if (rs->open[i])
			runtime_tick(rs->open[i], now_ms);
}

uint64_t runtimes_generation(const runtimes *rs)
{
	uint64_t g = 0;
	for (size_t i = 0; i < rs->nopen; i++)
		g += rs->open[i] ? runtime_generation(rs->open[i]) : 0;
	return g;
}

void runtimes_stop_all(runtimes *rs)
{
	for (size_t i = 0; i < rs->nopen; i++)
		if (rs->open[i])
			runtime_stop_all(rs->open[i]);
}

size_t runtimes_running(runtimes *rs)
{
	size_t live = 0;
	for (size_t i = 0; i < rs->nopen; i++) {
		struct instance_info *in = NULL;
		size_t n = 0;
		if (!rs->open[i])
			continue;
		if (runtime_list(rs->open[i], NULL, NULL, NULL, NULL, &in, &n) != 0) {
			live++; /* out of memory: assume something still runs */
			continue;
		}
		for (size_t k = 0; k < n; k++)
			live += in[k].state != INSTANCE_STOPPED;
		free(in);
	}
	return live;
}

int runtimes_logs(runtimes *rs, const char *service, const char *env, const char *region, size_t max_bytes,
		  struct buf *out)
{
	runtime *one = env && region ? runtimes_get(rs, env, region) : NULL;
	if (one)
		return runtime_logs(one, service, env, region, max_bytes, out);
	for (size_t i = 0; i < rs->nopen; i++)
		if (rs->open[i] && runtime_logs(rs->open[i], service, env, region, max_bytes / rs->nopen, out))
			return -1;
	return 0;
}
