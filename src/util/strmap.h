/*
 * strmap: a hash table from NUL-terminated strings to pointers, for tables that are looked up
 * by name often enough that a linear scan shows (the proxy's routes and metric series at
 * thousands of entries).
 *
 * Invariants: a key appears at most once; keys are copied on insertion and owned by the map;
 * values are the caller's (never freed here). Lookups cost one hash of the key and, on
 * average, one comparison. Not thread-safe: one owner.
 */
#ifndef SLUICE_STRMAP_H
#define SLUICE_STRMAP_H

#include <stddef.h>

typedef struct strmap strmap;

/* An empty map, or NULL when out of memory. */
strmap *strmap_new(void);
/* Frees the map and its keys (not the values). Accepts NULL. */
void strmap_free(strmap *m);
/* The value of key, or NULL. */
void *strmap_get(const strmap *m, const char *key);
/* Sets key to val (replacing a previous value). Returns 0, or -1 when out of memory (the map
 * is then unchanged). */
__attribute__((warn_unused_result)) int strmap_put(strmap *m, const char *key, void *val);
/* Removes key; nothing when absent. */
void strmap_del(strmap *m, const char *key);
size_t strmap_count(const strmap *m);

#endif
