/*
 * logic: JsonLogic rules, compiled once and evaluated many times, with flagd's custom
 * operations (fractional, sem_ver, starts_with, ends_with). The targeting of a feature flag
 * (flags/flagset.h) is one such rule.
 *
 * Semantics follow JsonLogic's reference (jsonlogic.com, json-logic-js) as flagd uses it:
 * JavaScript truthiness (0, "", null, false, NaN and [] are false), `var` with dotted paths and
 * defaults, loose `==` with JavaScript's conversions, `<` and friends comparing strings as
 * strings and anything else as numbers (with the three-argument "between" forms), `in` on
 * strings and arrays, `cat` joining JavaScript string forms; `and`/`or`/`if` are lazy and
 * answer a value, not a boolean. flagd's custom operations answer null, not false, on input
 * they cannot use (a non-string to starts_with, an invalid version to sem_ver).
 *
 * Compiling never fails on meaning, only on memory: an unknown operation, a `$ref` that names
 * no evaluator (or makes a cycle) compiles to a node that fails every evaluation that reaches
 * it, and logic_warning() says what it is (flagd accepts such a rule the same way).
 *
 * Evaluation does not allocate when it can help it: values point into the rule or the
 * context, and what an evaluation makes (a `cat`'s string, a `merge`'s array) lives in a
 * caller's arena (struct logic_arena) that is reset, not freed, between evaluations. A
 * compiled rule is read-only during evaluation: one may be evaluated from several threads,
 * each with its own arena.
 */
#ifndef SLUICE_LOGIC_H
#define SLUICE_LOGIC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/log.h"

typedef struct logic logic;

/* How deep a rule may nest (deeper ones compile to a failing node); how large one may be. */
#define LOGIC_MAX_DEPTH 64
#define LOGIC_MAX_NODES 100000

/* The value of an evaluation. Strings are not NUL-terminated; arrays and objects from the
 * rule or the context are jansson values (LOGIC_JSON), arrays an operation built are lists. */
enum logic_type { LOGIC_NULL, LOGIC_BOOL, LOGIC_NUM, LOGIC_STR, LOGIC_JSON, LOGIC_LIST };
struct logic_value {
	enum logic_type t;
	union {
		int b;
		double n;
		struct {
			const char *p;
			size_t len;
		} s;
		const json_t *j; /* an array or an object */
		struct {
			const struct logic_value *items;
			size_t n;
		} l;
	};
};

/* Scratch memory for evaluations: a fixed buffer, then heap blocks (freed by release). */
struct logic_arena {
	char *base;
	size_t used, cap;
	void *extra; /* heap blocks beyond the buffer, a list */
	size_t extra_bytes;
};
void logic_arena_init(struct logic_arena *a, void *buf, size_t len);
/* Forgets every value made in it (they are invalid after this). */
void logic_arena_reset(struct logic_arena *a);
void logic_arena_release(struct logic_arena *a);

/* What an evaluation sees: the evaluation context (a JSON object, may be NULL) and flagd's
 * own properties, readable as {"var": "$flagd.flagKey"} and {"var": "$flagd.timestamp"}. */
struct logic_env {
	const json_t *context;
	const char *flag_key;
	int64_t timestamp; /* seconds since the epoch */
	/* OUT, may be NULL: set to 1 when a `fractional` without a bucketing value found no
	 * string targetingKey in the context (it then answered null) */
	int *no_targeting_key;
};

/* Compiles rule (borrowed for the compiled rule's lifetime: literals point into it) with the
 * shared rules `evaluators` (an object of name -> rule, may be NULL) for `$ref`. NULL only
 * when out of memory. */
logic *logic_compile(const json_t *rule, const json_t *evaluators);
void logic_free(logic *l);
/* Why some evaluations of this rule will fail ("unknown operation 'foo' at ..."), or NULL. */
const char *logic_warning(const logic *l);

/* Evaluates: 0 with *out, or -1 with e saying why (an unknown operation reached, a value too
 * large for the arena's limit). */
int logic_eval(const logic *l, const struct logic_env *env, struct logic_arena *a,
	       struct logic_value *out /* OUT */, struct err *e);

/* JavaScript truthiness of a value. */
int logic_truthy(const struct logic_value *v);
/* The value as a new JSON value (lists become arrays). NULL when out of memory. */
json_t *logic_to_json(const struct logic_value *v);

#endif
