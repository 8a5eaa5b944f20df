#include "contract/plan.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract/report.h"
#include "util/buf.h"

#define ROLE_SERVING 1u
#define ROLE_CANARY 2u
#define ROLE_STABLE 4u

/* A step where a consumer holds only through its fallback costs more than any number of
 * plain steps a plan can have. */
#define FALLBACK_COST (1L << 20)

enum verdict { V_NONE, V_OK, V_FALLBACK, V_REFUSED, V_UNKNOWN };

struct unit {
	const char *service;
	const char *version;
	const contract *c;
	int live;
	unsigned roles;
	json_t *regions; /* array of region names where live */
	int release;     /* position in the releases list, or -1 */
};

struct world {
	struct unit u[PLAN_MAX_UNITS];
	size_t n;
	json_t *index; /* "service\nversion" -> position in u: found without a scan of u */
	json_t *cache; /* "p:c" -> pair object (or null when they do not meet) */
	const struct plan_policy *pol;
};

static void world_release(struct world *w)
{
	for (size_t i = 0; i < w->n; i++)
		json_decref(w->u[i].regions);
	json_decref(w->cache);
	json_decref(w->index);
}

static int world_find(const struct world *w, const char *svc, const char *ver)
{
	char key[512];
	snprintf(key, sizeof(key), "%s\n%s", svc, ver);
	json_t *i = json_object_get(w->index, key);
	return i ? (int)json_integer_value(i) : -1;
}

static int world_add(struct world *w, const char *svc, const char *ver, const contract *c, struct err *e)
{
	if (!svc || !ver || !*svc || !*ver)
		return err_set(e, "a service and a version are needed for every live entry and release");
	int i = world_find(w, svc, ver);
	if (i >= 0) {
		if (!w->u[i].c)
			w->u[i].c = c;
		return i;
	}
	if (w->n == PLAN_MAX_UNITS)
		return err_set(e, "more than %d service versions to compare", PLAN_MAX_UNITS);
	struct unit *u = &w->u[w->n];
	memset(u, 0, sizeof(*u));
	u->service = svc;
	u->version = ver;
	u->c = c;
	u->regions = json_array();
	u->release = -1;
	char key[512];
	snprintf(key, sizeof(key), "%s\n%s", svc, ver);
	if (json_object_set_new(w->index, key, json_integer((json_int_t)w->n)))
		return err_set(e, "out of memory");
	return (int)w->n++;
}

static unsigned role_bit(const char *role)
{
	if (!role || !strcmp(role, "serving"))
		return ROLE_SERVING;
	if (!strcmp(role, "canary"))
		return ROLE_CANARY;
	if (!strcmp(role, "stable"))
		return ROLE_STABLE;
	return 0;
}

static int world_init(struct world *w, const struct plan_live *live, size_t nlive, const struct plan_unit *rel,
		      size_t nrel, const struct plan_policy *pol, struct err *e)
{
	w->n = 0;
	w->cache = json_object();
	w->index = json_object();
	w->pol = pol;
	for (size_t i = 0; i < nrel; i++) {
		int k = world_add(w, rel[i].service, rel[i].version, rel[i].contract, e);
		if (k < 0)
			return -1;
		if (w->u[k].release < 0)
			w->u[k].release = (int)i;
	}
	for (size_t i = 0; i < nlive; i++) {
		unsigned bit = role_bit(live[i].role);
		if (!bit)
			return err_set(e, "live entry %s@%s: unknown role '%s' (serving, canary or stable)",
				       live[i].service, live[i].version, live[i].role);
		int k = world_add(w, live[i].service, live[i].version, live[i].contract, e);
		if (k < 0)
			return -1;
		struct unit *u = &w->u[k];
		u->live = 1;
		u->roles |= bit;
		const char *r = live[i].region ? live[i].region : "default";
		int seen = 0;
		size_t j;
		json_t *x;
		json_array_foreach(u->regions, j, x)
			seen |= !strcmp(json_string_value(x), r);
		if (!seen)
			json_array_append_new(u->regions, json_string(r));
	}
	return 0;
}

static void label(const struct unit *u, char *out, size_t size)
{
	snprintf(out, size, "%s@%s", u->service, u->version);
}

/* The pair (provider p, consumer c), computed once; NULL when they do not meet (the consumer
 * does not call the provider's service, or they are versions of one service). `base` is a
 * version of p's service that c is known to work with (it serves next to c), or -1: a
 * required parameter that `base` requires too is not new to a consumer that declares none
 * (contract_check_since). Borrowed. */
static json_t *pair(struct world *w, int p, int c, int base)
{
	char key[48], pl[160], cl[160];
	snprintf(key, sizeof(key), "%d:%d:%d", p, c, base);
	json_t *hit = json_object_get(w->cache, key);
	if (hit)
		return json_is_null(hit) ? NULL : hit;
	const struct unit *up = &w->u[p], *uc = &w->u[c];
	label(up, pl, sizeof(pl));
	label(uc, cl, sizeof(cl));
	json_t *res = NULL;
	json_t *reasons = json_array();
	const char *verdict = "ok";
	int fallback = 0;
	if (!strcmp(up->service, uc->service)) {
		/* versions of one service do not call each other */
	} else if (!uc->c) {
		verdict = "unknown";
		json_array_append_new(reasons, json_sprintf("%s declares no contract: whether it calls %s, and how, is unknown",
							    cl, up->service));
		res = json_true();
	} else if (contract_consumes(uc->c, up->service)) {
		res = json_true();
		if (!up->c) {
			verdict = "unknown";
			json_array_append_new(reasons, json_sprintf("%s declares no contract: what it provides is unknown", pl));
		} else {
			json_t *r = contract_check_since(up->service, up->c, uc->c, base >= 0 ? w->u[base].c : NULL);
			verdict = json_string_value(json_object_get(r, "verdict"));
			verdict = verdict && !strcmp(verdict, "ok") ? "ok" : "refused";
			fallback = json_integer_value(json_object_get(r, "fallbacks")) > 0;
			size_t i;
			json_t *f;
			json_array_foreach(json_object_get(r, "findings"), i, f) {
				const char *sev = json_string_value(json_object_get(f, "severity"));
				if (strcmp(sev, REPORT_BREAKING) && strcmp(sev, REPORT_WARNING))
					continue;
				const char *op = json_string_value(json_object_get(f, "operation"));
				json_array_append_new(reasons, json_sprintf("%s%s%s", op ? op : "", op ? ": " : "",
									    json_string_value(json_object_get(f, "message"))));
			}
			json_decref(r);
		}
	}
	if (res) {
		json_decref(res);
		res = json_pack("{s:s, s:s, s:s, s:b, s:o}", "provider", pl, "consumer", cl, "verdict", verdict,
				"fallback", fallback, "reasons", reasons);
	} else {
		json_decref(reasons);
	}
	json_object_set_new(w->cache, key, res ? res : json_null());
	return res;
}

/* The baseline of a moving consumer's pair with live provider p, when `prev` (or -1) is the
 * version of the consumer's service that serves now: p itself when prev calls p's service
 * without listing any parameters (the service evidently sends what p requires, undeclared),
 * else none, so a new release that stops listing parameters its predecessor listed (a
 * rollback to older code, say) is checked strictly. */
static int consumer_base(const struct world *w, int p, int prev)
{
	if (prev < 0 || !w->u[prev].c || contract_lists_parameters(w->u[prev].c, w->u[p].service))
		return -1;
	return p;
}

static enum verdict pair_verdict(const json_t *p)
{
	if (!p)
		return V_NONE;
	const char *v = json_string_value(json_object_get(p, "verdict"));
	if (!strcmp(v, "refused"))
		return V_REFUSED;
	if (!strcmp(v, "unknown"))
		return V_UNKNOWN;
	return json_is_true(json_object_get(p, "fallback")) ? V_FALLBACK : V_OK;
}

static int blocks(const struct world *w, enum verdict v)
{
	return v == V_REFUSED || (v == V_UNKNOWN && !(w->pol && w->pol->allow_unknown));
}

/* ---- can-i-deploy ----------------------------------------------------------------------- */

static void add_pair(json_t *pairs, const json_t *p, const json_t *regions)
{
	json_t *copy = json_deep_copy(p);
	json_object_set(copy, "regions", (json_t *)regions);
	json_array_append_new(pairs, copy);
}

json_t *plan_can_i_deploy(const struct plan_live *live, size_t nlive, const struct plan_unit *releases,
			  size_t nreleases, const struct plan_unit *cand, const struct plan_policy *policy,
			  struct err *e)
{
	struct world *w = calloc(1, sizeof(*w));
	if (!w) {
		err_set(e, "out of memory");
		return NULL;
	}
	json_t *report = NULL;
	if (world_init(w, live, nlive, releases, nreleases, policy, e))
		goto out;
	if (!cand) {
		err_set(e, "no candidate release to check");
		goto out;
	}
	int ci = world_add(w, cand->service, cand->version, cand->contract, e);
	if (ci < 0)
		goto out;
	w->u[ci].c = cand->contract; /* the candidate's own contract is the one to check */
	const char *S = cand->service;
	char cl[160], tl[160], ul[160];
	label(&w->u[ci], cl, sizeof(cl));
	json_t *pairs = json_array(), *notes = json_array();
	int refused = 0;
	/* the rollback target: the stable version of the candidate's service, else what serves
	 * now; live consumers work with it, so it is the baseline of the candidate's pairs */
	int t = -1;
	for (size_t i = 0; i < w->n && t < 0; i++)
		if (w->u[i].live && (w->u[i].roles & ROLE_STABLE) && !strcmp(w->u[i].service, S) && (int)i != ci)
			t = (int)i;
	for (size_t i = 0; i < w->n && t < 0; i++)
		if (w->u[i].live && !strcmp(w->u[i].service, S) && (int)i != ci)
			t = (int)i;
	for (size_t i = 0; i < w->n; i++) {
		const struct unit *u = &w->u[i];
		if (!u->live || !strcmp(u->service, S))
			continue;
		json_t *p = pair(w, ci, (int)i, t);
		if (p) {
			add_pair(pairs, p, u->regions);
			refused |= blocks(w, pair_verdict(p));
		}
		p = pair(w, (int)i, ci, consumer_base(w, (int)i, t));
		if (p && (u->c || cand->contract)) { /* both unknown: reported once above */
			add_pair(pairs, p, u->regions);
			refused |= blocks(w, pair_verdict(p));
		}
	}
	if (!cand->contract)
		json_array_append_new(notes, json_sprintf("%s declares no contract: every pair it is part of is unknown", cl));
	for (size_t k = 0; cand->contract && k < contract_consumes_count(cand->contract); k++) {
		const char *svc = contract_consumes_name(cand->contract, k);
		int any = 0;
		for (size_t i = 0; i < w->n && !any; i++)
			any = w->u[i].live && !strcmp(w->u[i].service, svc);
		if (!any)
			json_array_append_new(notes, json_sprintf("%s calls %s, and no version of %s is live: nothing to check against",
								  cl, svc, svc));
	}

	/* rollback to t: live consumers work with t, the others would have worked with the
	 * candidate */
	json_t *rb_reasons = json_array();
	json_t *target = json_null();
	if (t >= 0) {
		label(&w->u[t], tl, sizeof(tl));
		json_decref(target);
		target = json_string(tl);
		for (size_t i = 0; i < w->n; i++) {
			const struct unit *u = &w->u[i];
			if (!strcmp(u->service, S) || !u->c || !contract_consumes(u->c, S))
				continue;
			json_t *pt = pair(w, t, (int)i, u->live ? t : ci);
			if (!blocks(w, pair_verdict(pt)))
				continue;
			label(u, ul, sizeof(ul));
			json_t *why = json_array_get(json_object_get(pt, "reasons"), 0);
			const char *r = why ? json_string_value(why) : "incompatible";
			if (u->live)
				json_array_append_new(rb_reasons, json_sprintf("rolling back to %s would break live consumer %s: %s",
									       tl, ul, r));
			else if (!blocks(w, pair_verdict(pair(w, ci, (int)i, t))))
				json_array_append_new(rb_reasons,
						      json_sprintf("once %s is deployed (it works with %s), rolling back to %s breaks it: %s",
								   ul, cl, tl, r));
		}
	} else {
		json_array_append_new(notes, json_sprintf("%s is the first release of %s here: a rollback removes it", cl, S));
	}
	report = json_pack("{s:s, s:s, s:s, s:b, s:o, s:{s:o, s:b, s:o}, s:o}", "kind", "can-i-deploy", "candidate", cl,
			   "verdict", refused ? "refused" : "ok", "allow_unknown", policy && policy->allow_unknown,
			   "pairs", pairs, "rollback", "target", target, "safe", json_array_size(rb_reasons) == 0,
			   "reasons", rb_reasons, "notes", notes);
	if (!report)
		err_set(e, "out of memory");
out:
	world_release(w);
	free(w);
	return report;
}

/* ---- plan ------------------------------------------------------------------------------- */

struct tsvc {
	const char *service;
	int range[PLAN_MAX_UNITS]; /* unit indices this service may pass through, in order */
	int nrange;
	int start, goal;           /* positions in range */
	int live_set[16];          /* every live version at the start (a rollout may be in flight) */
	int nlive;
	int absent;                /* not live at all at the start */
};

struct search {
	struct world *w;
	struct tsvc t[PLAN_MAX_TARGETS];
	int nt;
	int others[PLAN_MAX_UNITS]; /* live units of services the plan does not change */
	int nothers;
	json_t *conflicts;          /* "p|c" -> pair, every blocking pair met */
};

static void decode(const struct search *s, long code, int *pos)
{
	for (int i = 0; i < s->nt; i++) {
		pos[i] = (int)(code % s->t[i].nrange);
		code /= s->t[i].nrange;
	}
}

static long encode(const struct search *s, const int *pos)
{
	long code = 0;
	for (int i = s->nt - 1; i >= 0; i--)
		code = code * s->t[i].nrange + pos[i];
	return code;
}

/* The units of target service i that serve in a state: one version, or, while it is still
 * at its starting version, every version live at the start (a rollout may be in flight). A
 * state does not record whether a service went away and came back: counting the whole start
 * set then only adds checks. */
static int serving(const struct search *s, int i, const int *pos, int *out)
{
	const struct tsvc *t = &s->t[i];
	int u = t->range[pos[i]];
	if (u < 0)
		return 0;
	if (pos[i] == t->start && t->nlive > 1) {
		memcpy(out, t->live_set, (size_t)t->nlive * sizeof(int));
		return t->nlive;
	}
	out[0] = u;
	return 1;
}

/* Checks deploying unit `nu` of target service i in state pos. Returns the step's cost, or -1
 * when a pair blocks; `pairs` (may be NULL) receives the pairs checked. */
static long check_step(struct search *s, const int *pos, int nu, json_t *pairs)
{
	int window[PLAN_MAX_UNITS + 32];
	int n = 0, buf[16];
	for (int j = 0; j < s->nt; j++) {
		int k = serving(s, j, pos, buf);
		for (int m = 0; m < k && n < PLAN_MAX_UNITS; m++)
			window[n++] = buf[m];
	}
	for (int j = 0; j < s->nothers && n < PLAN_MAX_UNITS; j++)
		window[n++] = s->others[j];
	int blocked = 0, fallback = 0;
	const char *svc = s->w->u[nu].service;
	int base = -1; /* the version of the deployed service that serves now (-1: none) */
	for (int j = 0; j < s->nt; j++)
		if (!strcmp(s->t[j].service, svc))
			base = s->t[j].range[pos[j]];
	for (int m = 0; m < n; m++) {
		int o = window[m];
		if (!strcmp(s->w->u[o].service, svc))
			continue; /* the old version of the deployed service: it serves, but calls no peer of itself */
		json_t *ps[2] = {pair(s->w, nu, o, base), pair(s->w, o, nu, consumer_base(s->w, o, base))};
		for (int k = 0; k < 2; k++) {
			if (!ps[k] || (k == 1 && !s->w->u[o].c))
				continue;
			enum verdict v = pair_verdict(ps[k]);
			if (pairs)
				json_array_append(pairs, ps[k]);
			if (v == V_FALLBACK)
				fallback = 1;
			if (blocks(s->w, v)) {
				blocked = 1;
				char key[400];
				snprintf(key, sizeof(key), "%s|%s", json_string_value(json_object_get(ps[k], "provider")),
					 json_string_value(json_object_get(ps[k], "consumer")));
				json_object_set(s->conflicts, key, ps[k]);
			}
		}
	}
	if (blocked)
		return -1;
	return 1 + (fallback ? FALLBACK_COST : 0);
}

/* Dijkstra over version combinations; fills `steps` and returns 0, or -1 when the goal is
 * unreachable. Small: PLAN_MAX_STATES states, O(n^2) selection is fine. */
static int search_path(struct search *s, long from, long to, json_t *steps)
{
	long nstates = 1;
	for (int i = 0; i < s->nt; i++)
		nstates *= s->t[i].nrange;
	long *dist = malloc((size_t)nstates * sizeof(long));
	long *prev = malloc((size_t)nstates * sizeof(long));
	char *done = calloc((size_t)nstates, 1);
	int rc = -1;
	if (!dist || !prev || !done)
		goto out;
	for (long k = 0; k < nstates; k++)
		dist[k] = -1, prev[k] = -1;
	dist[from] = 0;
	for (;;) {
		long best = -1;
		for (long k = 0; k < nstates; k++)
			if (!done[k] && dist[k] >= 0 && (best < 0 || dist[k] < dist[best]))
				best = k;
		if (best < 0)
			break;
		done[best] = 1;
		if (best == to)
			break;
		int pos[PLAN_MAX_TARGETS], np[PLAN_MAX_TARGETS];
		decode(s, best, pos);
		for (int i = 0; i < s->nt; i++)
			for (int q = 0; q < s->t[i].nrange; q++) {
				if (q == pos[i] || s->t[i].range[q] < 0)
					continue;
				memcpy(np, pos, sizeof(pos));
				np[i] = q;
				long nc = encode(s, np);
				if (done[nc])
					continue;
				long cost = check_step(s, pos, s->t[i].range[q], NULL);
				if (cost < 0)
					continue;
				if (dist[nc] < 0 || dist[best] + cost < dist[nc]) {
					dist[nc] = dist[best] + cost;
					prev[nc] = best;
				}
			}
	}
	if (dist[to] < 0)
		goto out;
	/* walk back from the goal, then emit the steps in order */
	long chain[PLAN_MAX_STATES];
	int len = 0;
	for (long k = to; k != from && len < PLAN_MAX_STATES; k = prev[k])
		chain[len++] = k;
	long cur = from;
	for (int m = len - 1; m >= 0; m--) {
		int pos[PLAN_MAX_TARGETS] = {0}, np[PLAN_MAX_TARGETS] = {0};
		decode(s, cur, pos);
		decode(s, chain[m], np);
		int i = 0;
		while (i < s->nt - 1 && pos[i] == np[i])
			i++;
		int nu = s->t[i].range[np[i]];
		json_t *pairs = json_array();
		long cost = check_step(s, pos, nu, pairs);
		int from_unit = s->t[i].range[pos[i]];
		const struct unit *fu = from_unit < 0 ? NULL : &s->w->u[from_unit];
		json_array_append_new(steps, json_pack("{s:s, s:s, s:s, s:b, s:o}", "service", s->t[i].service, "from",
						       fu ? fu->version : "(none)", "to", s->w->u[nu].version, "fallback",
						       cost >= FALLBACK_COST, "pairs", pairs));
		cur = chain[m];
	}
	rc = 0;
out:
	free(dist);
	free(prev);
	free(done);
	return rc;
}

static int plan_setup(struct search *s, const struct plan_target *targets, size_t ntargets, json_t *notes,
		      struct err *e)
{
	struct world *w = s->w;
	if (!ntargets)
		return err_set(e, "a plan needs at least one SERVICE=VERSION target");
	if (ntargets > PLAN_MAX_TARGETS)
		return err_set(e, "a plan changes at most %d services at a time", PLAN_MAX_TARGETS);
	s->nt = (int)ntargets;
	long nstates = 1;
	for (size_t i = 0; i < ntargets; i++) {
		struct tsvc *t = &s->t[i];
		memset(t, 0, sizeof(*t));
		t->service = targets[i].service;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(targets[j].service, t->service))
				return err_set(e, "%s is named twice in the targets", t->service);
		int goal = world_find(w, t->service, targets[i].version);
		if (goal < 0)
			return err_set(e, "no release %s@%s: push it first", t->service, targets[i].version);
		/* the service's versions in release order; live-only versions first (older) */
		int order[PLAN_MAX_UNITS], n = 0;
		for (size_t k = 0; k < w->n; k++)
			if (!strcmp(w->u[k].service, t->service) && w->u[k].release < 0)
				order[n++] = (int)k;
		int first_release = n;
		for (size_t k = 0; k < w->n; k++) {
			if (strcmp(w->u[k].service, t->service) || w->u[k].release < 0)
				continue;
			int m = n++;
			while (m > first_release && w->u[order[m - 1]].release > w->u[k].release) {
				order[m] = order[m - 1];
				m--;
			}
			order[m] = (int)k;
		}
		int cur = -1;
		for (int k = 0; k < n; k++) {
			const struct unit *u = &w->u[order[k]];
			if (!u->live)
				continue;
			if (t->nlive < 16)
				t->live_set[t->nlive++] = order[k];
			if (cur < 0 || (u->roles & ROLE_STABLE))
				cur = order[k];
		}
		int pc = -1, pg = -1;
		for (int k = 0; k < n; k++) {
			if (order[k] == cur)
				pc = k;
			if (order[k] == goal)
				pg = k;
		}
		if (cur < 0) {
			t->absent = 1;
			t->range[t->nrange++] = -1; /* not deployed; no step leads back there */
			t->range[t->nrange++] = goal;
			t->start = 0;
			t->goal = 1;
			json_array_append_new(notes, json_sprintf("%s is not live: its first deploy goes to %s, and going back means removing it",
								  t->service, targets[i].version));
		} else {
			int lo = pc < pg ? pc : pg, hi = pc < pg ? pg : pc;
			for (int k = lo; k <= hi; k++)
				t->range[t->nrange++] = order[k];
			t->start = pc - lo;
			t->goal = pg - lo;
		}
		nstates *= t->nrange;
		if (nstates > PLAN_MAX_STATES)
			return err_set(e, "too many version combinations to search (more than %d): plan fewer services at once",
				       PLAN_MAX_STATES);
	}
	s->nothers = 0;
	for (size_t k = 0; k < w->n; k++) {
		if (!w->u[k].live)
			continue;
		int is_target = 0;
		for (int i = 0; i < s->nt; i++)
			is_target |= !strcmp(s->t[i].service, w->u[k].service);
		if (!is_target)
			s->others[s->nothers++] = (int)k;
	}
	return 0;
}

static const struct unit *unit_of(const struct world *w, const char *label)
{
	for (size_t i = 0; i < w->n; i++) {
		size_t ls = strlen(w->u[i].service);
		if (!strncmp(label, w->u[i].service, ls) && label[ls] == '@' && !strcmp(label + ls + 1, w->u[i].version))
			return &w->u[i];
	}
	return NULL;
}

/* What an intermediate release would have to do, per pair of conflicting services: the
 * expand step (one provider release that serves at once what every conflicting consumer
 * version reads) or the tolerant reader (one consumer release that reads the new form and
 * falls back to the old one). */
static json_t *suggestions(const struct world *w, const json_t *conflicts)
{
	json_t *out = json_array(), *groups = json_object();
	size_t i;
	json_t *p;
	char reads[1024], key[300];
	json_array_foreach(conflicts, i, p) {
		const char *prov = json_string_value(json_object_get(p, "provider"));
		const char *cons = json_string_value(json_object_get(p, "consumer"));
		const struct unit *up = unit_of(w, prov), *uc = unit_of(w, cons);
		if (!up || !uc)
			continue;
		if (!strcmp(json_string_value(json_object_get(p, "verdict")), "unknown")) {
			json_array_append_new(out, json_sprintf("declare the contracts of %s and %s (or allow unknown pairs in the environment's policy)",
								prov, cons));
			continue;
		}
		snprintf(key, sizeof(key), "%s|%s", up->service, uc->service);
		json_t *g = json_object_get(groups, key);
		if (!g) {
			g = json_pack("{s:s, s:s, s:o}", "provider", up->service, "consumer", uc->service, "reads", json_object());
			json_object_set_new(groups, key, g);
		}
		reads[0] = 0;
		if (uc->c)
			contract_reads_summary(uc->c, up->service, reads, sizeof(reads));
		json_object_set_new(json_object_get(g, "reads"), cons, json_string(reads));
	}
	const char *k;
	json_t *g;
	json_object_foreach(groups, k, g) {
		const char *ps = json_string_value(json_object_get(g, "provider"));
		const char *cs = json_string_value(json_object_get(g, "consumer"));
		struct buf b;
		buf_init(&b, 4096);
		const char *label;
		json_t *r;
		int n = 0;
		json_object_foreach(json_object_get(g, "reads"), label, r)
			if (buf_addf(&b, "%swhat %s reads (%s)", n++ ? " and " : "", label, json_string_value(r))) {
				/* long enough to act on */
			}
		json_array_append_new(out,
				      json_sprintf("expand: release a %s that serves at once %s, and deploy it before %s moves; "
						   "or a tolerant reader: release a %s that reads the new form with a fallback (any_of) "
						   "to the old one, and deploy it before %s moves",
						   ps, b.data, cs, cs, ps));
		buf_release(&b);
	}
	json_decref(groups);
	return out;
}

json_t *plan_make(const struct plan_live *live, size_t nlive, const struct plan_unit *releases, size_t nreleases,
		  const struct plan_target *targets, size_t ntargets, const struct plan_policy *policy, struct err *e)
{
	struct world *w = calloc(1, sizeof(*w));
	struct search *s = calloc(1, sizeof(*s));
	json_t *report = NULL, *notes = json_array();
	if (!w || !s) {
		err_set(e, "out of memory");
		goto out;
	}
	s->w = w;
	s->conflicts = json_object();
	if (world_init(w, live, nlive, releases, nreleases, policy, e) || plan_setup(s, targets, ntargets, notes, e))
		goto out;
	int pos[PLAN_MAX_TARGETS];
	for (int i = 0; i < s->nt; i++)
		pos[i] = s->t[i].start;
	long start = encode(s, pos);
	for (int i = 0; i < s->nt; i++) /* going back never removes a service the plan added */
		pos[i] = s->t[i].absent ? s->t[i].goal : s->t[i].start;
	long back = encode(s, pos);
	for (int i = 0; i < s->nt; i++)
		pos[i] = s->t[i].goal;
	long goal = encode(s, pos);
	json_t *tg = json_object();
	for (size_t i = 0; i < ntargets; i++)
		json_object_set_new(tg, targets[i].service, json_string(targets[i].version));
	json_t *steps = json_array();
	if (search_path(s, start, goal, steps)) {
		json_t *conf = json_array();
		const char *k;
		json_t *p;
		json_object_foreach(s->conflicts, k, p)
			json_array_append(conf, p);
		report = json_pack("{s:s, s:s, s:o, s:o, s:n, s:o, s:o, s:o}", "kind", "plan", "verdict", "impossible",
				   "targets", tg, "steps", steps, "reverse", "conflicts", conf, "suggestions",
				   suggestions(w, conf), "notes", notes);
	} else {
		/* the way back starts from the targets as the only versions serving */
		json_t *rev = json_array();
		json_object_clear(s->conflicts);
		for (int i = 0; i < s->nt; i++) {
			s->t[i].nlive = 1;
			s->t[i].live_set[0] = s->t[i].range[s->t[i].goal];
			s->t[i].start = s->t[i].goal;
		}
		if (search_path(s, goal, back, rev)) {
			json_decref(rev);
			rev = json_null();
			json_array_append_new(notes, json_string("no safe order back: once the targets are live, returning to "
								 "what is live now breaks a pair on every order"));
		}
		report = json_pack("{s:s, s:s, s:o, s:o, s:o, s:[], s:[], s:o}", "kind", "plan", "verdict", "ok", "targets",
				   tg, "steps", steps, "reverse", rev, "conflicts", "suggestions", "notes", notes);
	}
	notes = NULL;
	if (!report)
		err_set(e, "out of memory");
out:
	json_decref(notes);
	if (s)
		json_decref(s->conflicts);
	if (w)
		world_release(w);
	free(w);
	free(s);
	return report;
}
