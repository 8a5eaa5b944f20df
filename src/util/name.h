/*
 * name: the one place where each kind of name sluice accepts has its rule.
 *
 * Names come from manifests, contracts, API paths and bodies, and end up in URLs, store keys,
 * directory names, process environments and metric labels. Each kind has one rule here, stated
 * once; validators elsewhere call these instead of keeping their own copy.
 *
 *   object   services, environments, regions (and every name a manifest or contract gives to
 *            one of them): [a-z0-9]([a-z0-9-]*[a-z0-9])?, 1..NAME_OBJECT_MAX bytes. Safe in a
 *            URL path segment, a file name and a DNS label.
 *   version  a release's version as CI gives it: [A-Za-z0-9._+-], 1..NAME_VERSION_MAX bytes
 *            ("1.4.2", "2024-05-01_3", "1.0.0+build.7").
 *   env var  a process environment variable: [A-Za-z_][A-Za-z0-9_]*, 1..NAME_ENV_VAR_MAX bytes.
 *   metric   a custom metric's name (it names evidence in verdicts): [A-Za-z0-9_.-],
 *            1..NAME_METRIC_MAX bytes.
 *   host     a host a route serves (proxy routes, a manifest's route.hosts): a DNS name, labels
 *            of [A-Za-z0-9-] (1..63 bytes, no '-' first or last) joined by dots, at most
 *            NAME_HOST_MAX bytes, optionally "*." + such a name (a wildcard); no port.
 *   path prefix  where a route's paths start: "/" or "/seg[/seg...]" of URI path characters
 *            (RFC 3986 pchar: no '?', '#', space, "//"), no trailing slash, at most
 *            NAME_PATH_PREFIX_MAX bytes.
 *
 * Every function takes a NUL-terminated string (NULL is refused) and returns 1 when it follows
 * the rule, else 0. Pure, no allocation. A caller holding a length-counted string (jansson)
 * must also refuse embedded NULs: name_ok_n does both.
 */
#ifndef SLUICE_NAME_H
#define SLUICE_NAME_H

#include <stddef.h>

#define NAME_OBJECT_MAX 63
#define NAME_VERSION_MAX 63 /* fits the pipeline's fixed buffers (PL_NAME_MAX - 1) */
#define NAME_ENV_VAR_MAX 128
#define NAME_METRIC_MAX 63
#define NAME_HOST_MAX 253
#define NAME_PATH_PREFIX_MAX 255

enum name_kind {
	NAME_OBJECT,
	NAME_VERSION,
	NAME_ENV_VAR,
	NAME_METRIC,
};

int name_object_ok(const char *s);
int name_version_ok(const char *s);
int name_env_var_ok(const char *s);
int name_metric_ok(const char *s);
int name_host_ok(const char *s);
int name_path_prefix_ok(const char *s);
/* A version as the control plane labels the instances it runs: a version, optionally followed
 * by '~' and an object name ("1.4.2~baseline", the stable started again beside a canary). */
int name_label_ok(const char *s);

/* The rule of `kind`; for a string of `len` bytes that may hold a NUL (then it is refused). */
int name_ok(enum name_kind kind, const char *s);
int name_ok_n(enum name_kind kind, const char *s, size_t len);

/* What a name of `kind` looks like, for messages ("a name of lowercase letters, ..."). */
const char *name_rule(enum name_kind kind);

#endif
