/*
 * flags: the feature flag set of each environment (flags/flagset.h), as operators apply and
 * change it: kept in the store with every version and who made it, compiled once per
 * version for evaluation (OFREP answers from the compiled set, not from the store).
 *
 * Error contract: 0 on success; STORE_NOTFOUND when the environment has no flag set (or the
 * flag does not exist), e saying which; FLAGS_INVALID when a document or a change is refused
 * (e: FILE:LINE:COL and the field path, or what to do instead); -1 when the store failed.
 * Changes are one store transaction each (an audit record attached to the store is written
 * with them).
 */
#ifndef SLUICE_SERVER_FLAGS_H
#define SLUICE_SERVER_FLAGS_H

#include <jansson.h>
#include <stdint.h>

#include "flags/flagset.h"
#include "store/store.h"

typedef struct flags flags;

#define FLAGS_INVALID 3

/* NULL when out of memory. The store is borrowed. */
flags *flags_new(store *s);
void flags_free(flags *f);

/* The current set of env, compiled: valid until the next call on f (the loop's thread only).
 * *version is its version. */
__attribute__((warn_unused_result)) int flags_current(flags *f, const char *env, const flagset **out /* OUT */,
						      int64_t *version /* OUT */, struct err *e);

/* Applies a whole document (JSON or YAML text named `name`) as env's next version. With
 * strict, a document with warnings is refused too. *warnings: a new array of the document's
 * warnings (also on success). */
__attribute__((warn_unused_result)) int flags_apply(flags *f, const char *env, const char *name,
						    const char *text, size_t len, int strict, const char *by,
						    const char *why, int64_t *version /* OUT */,
						    json_t **warnings /* OUT */, struct err *e);

enum flags_change {
	FLAGS_ENABLE,       /* state ENABLED */
	FLAGS_DISABLE,      /* state DISABLED: no value, clients use their own default */
	FLAGS_KILL,         /* everyone gets the off variant (false, or the one named "off"):
			     * targeting removed, default set, enabled */
	FLAGS_SET_DEFAULT,  /* defaultVariant = variant */
};

/* One operator change on flag `key` of env, as its next version. */
__attribute__((warn_unused_result)) int flags_change(flags *f, const char *env, const char *key,
						     enum flags_change what, const char *variant,
						     const char *by, const char *why,
						     int64_t *version /* OUT */, struct err *e);

/* The definition of flag `key` in env (a new reference to its normalized JSON), from the
 * current set. STORE_NOTFOUND when the environment has no set or the set no such flag. */
__attribute__((warn_unused_result)) int flags_get_flag(flags *f, const char *env, const char *key,
						       json_t **out /* OUT */, struct err *e);

/* Replaces the definition of flag `key` with def (borrowed) as env's next version, INSIDE the
 * caller's open transaction (store_begin: the change commits with whatever else the caller
 * writes, or not at all). With expect non-NULL, the flag's current definition must equal it:
 * FLAGS_CONFLICT otherwise (someone changed the flag meanwhile; nothing written). The changed
 * set is checked like any other (FLAGS_INVALID). */
#define FLAGS_CONFLICT 4
__attribute__((warn_unused_result)) int flags_replace(flags *f, const char *env, const char *key, const json_t *def,
						      const json_t *expect, const char *by, const char *why,
						      int64_t *version /* OUT */, json_t **written /* OUT: the flag
						      as stored, normalized; may be NULL */, struct err *e);

#endif
