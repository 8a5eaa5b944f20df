#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/verify.h"

/* ---- verification windows (in memory; a restart opens a fresh window) ---- */

static struct window *window_get(struct server *srv, int64_t dep, int region, int create)
{
	for (size_t i = 0; i < srv->nwindows; i++)
		if (srv->windows[i].deployment == dep && srv->windows[i].region == region)
			return &srv->windows[i];
	if (!create)
		return NULL;
	struct window *w = realloc(srv->windows, (srv->nwindows + 1) * sizeof(*w));
	if (!w)
		return NULL;
	srv->windows = w;
	w = &srv->windows[srv->nwindows++];
	memset(w, 0, sizeof(*w));
	w->deployment = dep;
	w->region = region;
	w->step = -1;
	return w;
}

void verify_forget(struct server *srv, int64_t dep)
{
	for (size_t i = 0; i < srv->nwindows;) {
		if (srv->windows[i].deployment == dep) {
			json_decref(srv->windows[i].evidence);
			srv->windows[i] = srv->windows[--srv->nwindows];
		} else {
			i++;
		}
	}
}

const struct window *verify_window(struct server *srv, int64_t deployment, int region)
{
	return window_get(srv, deployment, region, 0);
}

void verify_reset(struct server *srv, int64_t dep, int region)
{
	struct window *w = window_get(srv, dep, region, 0);
	if (w)
		w->has_base = 0;
}

/* Reads one version's cumulative counters from the proxy snapshot. Returns 0 if absent. */
static int read_counts(const json_t *metrics, const char *route, const char *version,
		       struct version_window *w)
{
	memset(w, 0, sizeof(*w));
	const json_t *rt = json_object_get(json_object_get(metrics, "routes"), route);
	const json_t *v = json_object_get(json_object_get(rt, "versions"), version);
	if (!v)
		return 0;
	const json_t *resp = json_object_get(v, "responses");
	w->requests = (uint64_t)json_integer_value(json_object_get(v, "requests"));
	w->errors = (uint64_t)(json_integer_value(json_object_get(resp, "5xx")) +
			       json_integer_value(json_object_get(v, "upstream_errors")));
	const json_t *lat = json_object_get(v, "latency_us");
	const json_t *bounds = json_object_get(lat, "bounds"), *counts = json_object_get(lat, "counts");
	size_t n = json_array_size(bounds);
	if (n > ANALYSIS_MAX_BUCKETS)
		n = ANALYSIS_MAX_BUCKETS;
	w->nbuckets = (int)n;
	for (size_t i = 0; i < n; i++) {
		double b = json_number_value(json_array_get(bounds, i));
		w->bounds_ms[i] = b < 0 ? INFINITY : b / 1000.0;
		w->counts[i] = (uint64_t)json_integer_value(json_array_get(counts, i));
	}
	return 1;
}

static void window_diff(struct version_window *now, const struct version_window *base)
{
	now->requests = now->requests >= base->requests ? now->requests - base->requests : 0;
	now->errors = now->errors >= base->errors ? now->errors - base->errors : 0;
	for (int i = 0; i < now->nbuckets && i < base->nbuckets; i++)
		now->counts[i] = now->counts[i] >= base->counts[i] ? now->counts[i] - base->counts[i] : 0;
}

static void refresh_metrics(struct server *srv)
{
	uint64_t now = loop_now(srv->loop);
	if (srv->metrics && now - srv->metrics_at < SERVER_TICK_MS / 2)
		return;
	json_t *m = NULL;
	struct err e = {""};
	if (router_metrics(srv->router, &m, &e)) {
		log_warn("metrics: %s", e.msg);
		return;
	}
	json_decref(srv->metrics);
	srv->metrics = m;
	srv->metrics_at = now;
}

enum pl_verdict verify_region(struct server *srv, int64_t dep, const json_t *svc, const char *env,
			      const struct pl_state *st, int ri, char *msg, size_t msglen)
{
	const struct pl_region *r = &st->regions[ri];
	struct window *w = window_get(srv, dep, ri, 1);
	if (!w)
		return PL_VERDICT_NONE;
	refresh_metrics(srv);
	if (!srv->metrics) {
		snprintf(msg, msglen, "no metrics from the proxy yet");
		return PL_VERDICT_NONE;
	}
	char route[256];
	reconcile_route_name(route, sizeof(route), json_string_value(json_object_get(svc, "name")),
			     env, r->name);
	struct version_window cur_new, cur_old;
	read_counts(srv->metrics, route, st->version, &cur_new);
	int has_old = r->stable[0] && read_counts(srv->metrics, route, r->stable, &cur_old);
	if (!has_old)
		memset(&cur_old, 0, sizeof(cur_old));
	/* a bake is its own window, compared with the old version's last recorded window */
	int baking = r->state == R_BAKING;
	int wstep = baking ? -2 : r->step;
	if (w->step != wstep || !w->has_base) {
		/* a new window: everything before this moment belongs to another step */
		w->step = wstep;
		w->has_base = 1;
		w->base_new = cur_new;
		w->base_old = cur_old;
		snprintf(w->verdict, sizeof(w->verdict), "window opened");
		snprintf(msg, msglen, "window opened");
		return PL_VERDICT_NONE;
	}
	window_diff(&cur_new, &w->base_new);
	window_diff(&cur_old, &w->base_old);
	const json_t *an = json_object_get(svc, "analysis");
	struct analysis_limits lim = {
		.min_requests = (uint64_t)json_integer_value(json_object_get(an, "min_requests")),
		.max_error_rate = json_number_value(json_object_get(an, "max_error_rate")),
		.max_error_rate_increase = json_number_value(json_object_get(an, "max_error_rate_increase")),
		.max_p99_ms = (double)json_integer_value(json_object_get(an, "max_p99_latency_ms")),
	};
	json_t *evidence = NULL;
	const struct version_window *base = NULL;
	if (baking)
		base = w->has_recorded ? &w->recorded_old : NULL;
	else if (has_old)
		base = &cur_old;
	enum pl_verdict v = analysis_threshold(&lim, &cur_new, base, msg, msglen, &evidence);
	if (!baking && has_old && cur_old.requests > 0) {
		/* the old version's behaviour, recorded for the bake that follows the promotion */
		w->recorded_old = cur_old;
		w->has_recorded = 1;
	}
	snprintf(w->verdict, sizeof(w->verdict), "%s", msg);
	if (evidence) {
		json_object_set_new(evidence, "region", json_string(r->name));
		if (baking)
			json_object_set_new(evidence, "phase", json_string("bake"));
		else
			json_object_set_new(evidence, "step_percent",
					    json_integer(r->stable[0] ? st->cfg.steps[r->step] : 100));
		json_decref(w->evidence);
		w->evidence = evidence;
	}
	return v;
}

