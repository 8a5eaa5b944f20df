/*
 * evmetrics: metrics from deployment events (see evmetrics.h).
 */
#include "server/evmetrics.h"

#include <stdlib.h>
#include <string.h>

#include "util/histo.h"

#define METHODS 3   /* sequential, threshold, other */
#define DECISIONS 3 /* pass, fail, other */

struct open_step {
	int64_t deployment; /* 0: free */
	char region[64];
	uint64_t since;     /* when its step began */
	int judged;         /* its verdict was observed */
	uint64_t used;
};

struct evmetrics {
	struct histo step, verdict;
	uint64_t verdicts[METHODS][DECISIONS];
	uint64_t events_by_kind[4]; /* started, promoted, rolled back, aborted */
	struct open_step open[EVMETRICS_OPEN];
	uint64_t clock;
};

static const char *const method_names[METHODS] = {"sequential", "threshold", "other"};
static const char *const decision_names[DECISIONS] = {"pass", "fail", "other"};

evmetrics *evmetrics_new(void)
{
	evmetrics *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	histo_init(&m->step, histo_seconds, histo_seconds_n);
	histo_init(&m->verdict, histo_seconds, histo_seconds_n);
	return m;
}

void evmetrics_free(evmetrics *m)
{
	free(m);
}

static struct open_step *find(evmetrics *m, int64_t deployment, const char *region, int make)
{
	struct open_step *lru = &m->open[0];
	for (int i = 0; i < EVMETRICS_OPEN; i++) {
		struct open_step *o = &m->open[i];
		if (o->deployment == deployment && !strcmp(o->region, region)) {
			o->used = ++m->clock;
			return o;
		}
		if (o->used < lru->used)
			lru = o;
	}
	if (!make)
		return NULL;
	memset(lru, 0, sizeof(*lru));
	lru->deployment = deployment;
	strncpy(lru->region, region, sizeof(lru->region) - 1);
	lru->used = ++m->clock;
	return lru;
}

static int index_of(const char *const *names, int n, const char *v)
{
	for (int i = 0; v && i < n - 1; i++)
		if (!strcmp(names[i], v))
			return i;
	return n - 1;
}

void evmetrics_event(evmetrics *m, int64_t deployment, const char *type, const char *region,
		     const json_t *evidence, uint64_t now_ms)
{
	if (!m || !type)
		return;
	if (!region) {
		int k = !strcmp(type, "started") ? 0 : !strcmp(type, "done") ? 1 : !strcmp(type, "rolled_back") ? 2
			: !strcmp(type, "failed") || !strcmp(type, "preempted") ? 3 : -1;
		if (k >= 0)
			m->events_by_kind[k]++;
		return;
	}
	const char *method = json_string_value(json_object_get(evidence, "method"));
	const char *verdict = json_string_value(json_object_get(evidence, "verdict"));
	if (method && verdict) {
		m->verdicts[index_of(method_names, METHODS, method)][index_of(decision_names, DECISIONS, verdict)]++;
		struct open_step *o = find(m, deployment, region, 0);
		if (o && !o->judged) {
			histo_observe(&m->verdict, (double)(now_ms - o->since) / 1000.0);
			o->judged = 1;
		}
	}
	int begins = !strcmp(type, "step") || !strcmp(type, "starting");
	int ends = !strcmp(type, "step") || !strcmp(type, "promoted") || !strcmp(type, "aborted") ||
		   !strcmp(type, "region_done") || !strcmp(type, "baking");
	if (ends) {
		struct open_step *o = find(m, deployment, region, 0);
		if (o && o->deployment) {
			histo_observe(&m->step, (double)(now_ms - o->since) / 1000.0);
			o->deployment = 0;
			o->region[0] = '\0';
		}
	}
	if (begins) {
		struct open_step *o = find(m, deployment, region, 1);
		o->since = now_ms;
		o->judged = 0;
	}
}

int evmetrics_write(const evmetrics *m, struct buf *b)
{
	if (!m)
		return 0;
	int bad = 0;
	bad |= buf_adds(b, "# HELP sluice_step_duration_seconds How long a region stayed at one step "
			   "(from the step's start to the next step, promotion or abort).\n"
			   "# TYPE sluice_step_duration_seconds histogram\n");
	bad |= histo_write(&m->step, b, "sluice_step_duration_seconds", "");
	bad |= buf_adds(b, "# HELP sluice_time_to_verdict_seconds From a step's start to the first verdict "
			   "of its verification window.\n# TYPE sluice_time_to_verdict_seconds histogram\n");
	bad |= histo_write(&m->verdict, b, "sluice_time_to_verdict_seconds", "");
	bad |= buf_adds(b, "# HELP sluice_verdicts_total Verdicts recorded, by analysis method and decision.\n"
			   "# TYPE sluice_verdicts_total counter\n");
	for (int i = 0; i < METHODS; i++)
		for (int k = 0; k < DECISIONS; k++)
			bad |= buf_addf(b, "sluice_verdicts_total{method=\"%s\",decision=\"%s\"} %llu\n",
					method_names[i], decision_names[k], (unsigned long long)m->verdicts[i][k]);
	static const char *const outcomes[] = {"started", "promoted", "rolled_back", "aborted"};
	bad |= buf_adds(b, "# HELP sluice_deployment_events_total Deployments started and ended since the server "
			   "started, by outcome.\n# TYPE sluice_deployment_events_total counter\n");
	for (int k = 0; k < 4; k++)
		bad |= buf_addf(b, "sluice_deployment_events_total{outcome=\"%s\"} %llu\n", outcomes[k],
				(unsigned long long)m->events_by_kind[k]);
	return bad;
}
