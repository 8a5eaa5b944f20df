/*
 * flags: flag sets per environment, versioned in the store, compiled once per version.
 */
#include "server/flags.h"
#include "server/notifier.h"
#include "core/notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FLAGS_CACHE 64

struct cached {
	char env[64];
	int64_t version;
	uint64_t changes; /* store_changes() when it was read */
	flagset *set;
	unsigned used;    /* for eviction: the least recently used goes */
};

struct flags {
	store *store;
	struct cached cache[FLAGS_CACHE];
	unsigned clock;
};

flags *flags_new(store *s)
{
	flags *f = calloc(1, sizeof(*f));
	if (f)
		f->store = s;
	return f;
}

void flags_free(flags *f)
{
	if (!f)
		return;
	for (int i = 0; i < FLAGS_CACHE; i++)
		flagset_free(f->cache[i].set);
	free(f);
}

static struct cached *slot_for(flags *f, const char *env)
{
	struct cached *lru = &f->cache[0];
	for (int i = 0; i < FLAGS_CACHE; i++) {
		if (f->cache[i].set && !strcmp(f->cache[i].env, env))
			return &f->cache[i];
		if (f->cache[i].used < lru->used)
			lru = &f->cache[i];
	}
	flagset_free(lru->set);
	memset(lru, 0, sizeof(*lru));
	return lru;
}

int flags_current(flags *f, const char *env, const flagset **out, int64_t *version, struct err *e)
{
	*out = NULL;
	*version = 0;
	if (strlen(env) >= sizeof(f->cache[0].env))
		return err_set(e, "environment name too long"), STORE_NOTFOUND;
	struct cached *c = slot_for(f, env);
	uint64_t now = store_changes(f->store);
	if (!c->set || c->changes != now) {
		json_t *row = NULL;
		int rc = store_get_flags(f->store, env, &row, e);
		if (rc)
			return rc;
		int64_t v = json_integer_value(json_object_get(row, "version"));
		if (!c->set || v != c->version) {
			flagset *fs = NULL;
			char label[96];
			snprintf(label, sizeof(label), "flags of %s (stored)", env);
			if (flagset_from_json(json_object_get(row, "doc"), label, &fs, e)) {
				json_decref(row);
				return -1;
			}
			flagset_free(c->set);
			c->set = fs;
			c->version = v;
			snprintf(c->env, sizeof(c->env), "%s", env);
		}
		json_decref(row);
		c->changes = now;
	}
	c->used = ++f->clock;
	*out = c->set;
	*version = c->version;
	return 0;
}

static json_t *warnings_of(const flagset *fs)
{
	json_t *w = json_array();
	for (size_t i = 0; i < flagset_warning_count(fs); i++)
		json_array_append_new(w, json_string(flagset_warning(fs, i)));
	return w;
}

/* Stores set_doc as env's next version, in one transaction, with the outbox rows of `notice`
 * (a notification payload without "version": may be NULL). */
static int store_doc(flags *f, const char *env, const json_t *set_doc, const char *by, const char *why,
		     json_t *notice, int64_t *version, struct err *e)
{
	int rc = store_begin(f->store, e);
	if (!rc)
		rc = store_put_flags(f->store, env, set_doc, by, why, version, e);
	if (!rc && notice) {
		json_object_set_new(notice, "flag_set_version", json_integer(*version));
		rc = notifier_raise(f->store, env, "", notice, e);
	}
	if (!rc)
		rc = store_commit(f->store, e);
	else
		store_rollback(f->store);
	return rc ? -1 : 0;
}

int flags_apply(flags *f, const char *env, const char *name, const char *text, size_t len, int strict,
		const char *by, const char *why, int64_t *version, json_t **warnings, struct err *e)
{
	*warnings = NULL;
	flagset *fs = NULL;
	if (flagset_parse(name, text, len, &fs, e))
		return FLAGS_INVALID;
	*warnings = warnings_of(fs);
	if (strict && flagset_warning_count(fs)) {
		err_set(e, "%s (--strict refuses a set with warnings; %zu in all)", flagset_warning(fs, 0),
			flagset_warning_count(fs));
		flagset_free(fs);
		return FLAGS_INVALID;
	}
	int rc = store_doc(f, env, flagset_json(fs), by, why, NULL, version, e);
	flagset_free(fs);
	return rc;
}

/* The name of the variant a kill switches to: the one whose value is false, else "off". */
static const char *off_variant(const json_t *variants)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)variants, k, v)
		if (json_is_false(v))
			return k;
	return json_object_get(variants, "off") ? "off" : NULL;
}

int flags_change(flags *f, const char *env, const char *key, enum flags_change what, const char *variant,
		 const char *by, const char *why, int64_t *version, struct err *e)
{
	const flagset *cur = NULL;
	int64_t v0;
	int rc = flags_current(f, env, &cur, &v0, e);
	if (rc)
		return rc;
	json_t *set_doc = json_deep_copy(flagset_json(cur));
	json_t *flag = json_object_get(json_object_get(set_doc, "flags"), key);
	if (!set_doc || !flag) {
		json_decref(set_doc);
		return set_doc ? (err_set(e, "flag '%s' is not defined in %s", key, env), STORE_NOTFOUND)
			   : err_set(e, "out of memory");
	}
	json_t *variants = json_object_get(flag, "variants");
	switch (what) {
	case FLAGS_ENABLE:
	case FLAGS_DISABLE:
		json_object_set_new(flag, "state", json_string(what == FLAGS_ENABLE ? "ENABLED" : "DISABLED"));
		break;
	case FLAGS_KILL: {
		const char *off = off_variant(variants);
		if (!off) {
			json_decref(set_doc);
			err_set(e, "flag '%s' has no off variant (one whose value is false, or one named "
				   "\"off\"): choose one with 'sluice flag set %s --variant V'", key, key);
			return FLAGS_INVALID;
		}
		json_object_set_new(flag, "state", json_string("ENABLED"));
		json_object_set_new(flag, "defaultVariant", json_string(off));
		json_object_set_new(flag, "targeting", json_object());
		break;
	}
	case FLAGS_SET_DEFAULT:
		if (!variant || !json_object_get(variants, variant)) {
			json_decref(set_doc);
			err_set(e, "flag '%s' has no variant '%s'", key, variant ? variant : "");
			return FLAGS_INVALID;
		}
		json_object_set_new(flag, "defaultVariant", json_string(variant));
		break;
	}
	/* the changed document is checked like any other before it is stored */
	flagset *fs = NULL;
	if (flagset_from_json(set_doc, "the changed flag set", &fs, e)) {
		json_decref(set_doc);
		return FLAGS_INVALID;
	}
	/* a kill, or a flag switched off (evaluations revert to the code's default), is announced */
	json_t *notice = NULL;
	if (what == FLAGS_KILL || what == FLAGS_DISABLE) {
		char when[32];
		notify_time(store_now_ms(), when);
		notice = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type",
				   what == FLAGS_KILL ? "flag.killed" : "flag.reverted", "time", when, "env", env,
				   "flag", key, "by", by ? by : "", "message", why ? why : "");
	}
	rc = store_doc(f, env, flagset_json(fs), by, why, notice, version, e);
	json_decref(notice);
	flagset_free(fs);
	json_decref(set_doc);
	return rc;
}

int flags_get_flag(flags *f, const char *env, const char *key, json_t **out, struct err *e)
{
	*out = NULL;
	const flagset *cur = NULL;
	int64_t v;
	int rc = flags_current(f, env, &cur, &v, e);
	if (rc)
		return rc;
	json_t *flag = json_object_get(json_object_get(flagset_json(cur), "flags"), key);
	if (!flag)
		return err_set(e, "flag '%s' is not defined in %s", key, env), STORE_NOTFOUND;
	*out = json_deep_copy(flag);
	return *out ? 0 : err_set(e, "out of memory");
}

int flags_replace(flags *f, const char *env, const char *key, const json_t *def, const json_t *expect,
		  const char *by, const char *why, int64_t *version, json_t **written, struct err *e)
{
	if (written)
		*written = NULL;
	/* read from the store, not the cache: the caller's transaction may have written since */
	json_t *row = NULL;
	int rc = store_get_flags(f->store, env, &row, e);
	if (rc)
		return rc;
	json_t *set_doc = json_deep_copy(json_object_get(row, "doc"));
	json_decref(row);
	json_t *flags_obj = json_object_get(set_doc, "flags");
	json_t *cur = json_object_get(flags_obj, key);
	if (!set_doc || !cur) {
		json_decref(set_doc);
		return set_doc ? (err_set(e, "flag '%s' is not defined in %s", key, env), STORE_NOTFOUND)
			       : err_set(e, "out of memory");
	}
	if (expect && !json_equal(cur, (json_t *)expect)) {
		json_decref(set_doc);
		err_set(e, "flag '%s' in %s was changed by someone else", key, env);
		return FLAGS_CONFLICT;
	}
	json_object_set(flags_obj, key, (json_t *)def);
	flagset *fs = NULL;
	if (flagset_from_json(set_doc, "the changed flag set", &fs, e)) {
		json_decref(set_doc);
		return FLAGS_INVALID;
	}
	rc = store_put_flags(f->store, env, flagset_json(fs), by, why, version, e);
	if (!rc && written)
		*written = json_deep_copy(json_object_get(json_object_get(flagset_json(fs), "flags"), key));
	flagset_free(fs);
	json_decref(set_doc);
	return rc ? -1 : 0;
}
