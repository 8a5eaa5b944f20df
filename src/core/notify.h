/*
 * notify: what a notification is and how it is written on the wire. Pure: no I/O, no clock.
 *
 * A notification announces one thing that happened to a deployment, a release or a flag set.
 * Its type is one of NOTIFY_TYPES ("deployment.started", "step.passed", ...); the store's
 * events map onto them (notify_classify), and the gate and the flag API raise the others. Its
 * payload is one JSON object (notify_payload), the same whatever the format; a delivery wraps
 * it in one of three formats (notify_render):
 *   "json"        the payload itself, with "id" (the delivery's) added;
 *   "slack"       a Slack incoming-webhook body: {"text": one line a person reads};
 *   "cloudevents" a CloudEvents 1.0 event in structured mode (application/cloudevents+json):
 *                 specversion, id, source "/sluice/ENV/SERVICE", a type named after the CDEvents
 *                 vocabulary (notify_cloudevents_type), subject, time, and the payload as data.
 * Every delivery may be signed: X-Sluice-Signature: sha256=HEX, the HMAC-SHA256 of the exact
 * body bytes under the subscription's secret (notify_sign).
 *
 * Errors: functions that can fail return 0 or -1 with a message in e. Ownership: returned JSON
 * and strings are the caller's (json_decref, free).
 */
#ifndef SLUICE_NOTIFY_H
#define SLUICE_NOTIFY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util/log.h"

/* Every notification type, NULL-terminated. */
extern const char *const notify_types[];
/* The formats, NULL-terminated: "json", "slack", "cloudevents". */
extern const char *const notify_formats[];

#define NOTIFY_URL_MAX 2048
#define NOTIFY_SECRET_MAX 256
#define NOTIFY_SIGNATURE_LEN 71 /* "sha256=" and 64 hex digits */
/* ",a,b," of every type fits in this */
#define NOTIFY_TYPES_CSV_MAX 256

int notify_type_ok(const char *type);
int notify_format_ok(const char *format);

/* The notification a store event of this type announces (region NULL for events about the whole
 * deployment), or NULL when it announces none. */
const char *notify_classify(const char *event_type, const char *region);

/* The CloudEvents type of a notification of type `type` about a deployment of `kind` (may be
 * NULL): "dev.cdevents.service.deployed.0.1.1", ...; flags have "dev.sluice.flag.*". */
const char *notify_cloudevents_type(const char *type, const char *kind);

/* `types`: an array of notification type names, or the string "all"; writes ",a,b," (each
 * once, in notify_types order) into out. -1 (e names the culprit) for an unknown type, an empty
 * list or anything else. */
int notify_types_csv(const json_t *types, char out[NOTIFY_TYPES_CSV_MAX] /* OUT */, struct err *e);

/* A webhook URL as a subscription may name it: http:// or https://, a host (a DNS name, an
 * IPv4 address or [IPv6]), an optional port 1..65535, a path and query of RFC 3986 characters
 * (percent escapes well formed); no user information, no fragment, no spaces or control
 * characters, at most NOTIFY_URL_MAX bytes. -1 with e saying what is wrong. */
int notify_url_check(const char *url, struct err *e);

/* The payload of a notification about a deployment: deployment is a store row
 * ({"id","service","env","version","kind",...}); the event's time (ms), region (may be NULL),
 * message and evidence (may be NULL). The store event's type is kept as "event". */
json_t *notify_payload(const char *type, const json_t *deployment, int64_t at_ms,
		       const char *event, const char *region, const char *message,
		       const json_t *evidence);

/* Writes the body of one delivery: *body (malloc'd, NUL-terminated, *len bytes) and *ctype (a
 * static string). id is the delivery's unique id. -1 for an unknown format or a payload without
 * its "type". */
int notify_render(const char *format, const char *id, const json_t *payload, char **body /* OUT */,
		  size_t *len /* OUT */, const char **ctype /* OUT */, struct err *e);

/* sig = "sha256=" and the lowercase hex HMAC-SHA256 of body under secret. */
void notify_sign(const char *secret, const char *body, size_t len,
		 char sig[NOTIFY_SIGNATURE_LEN + 1] /* OUT */);

/* RFC 3339 UTC with milliseconds ("2026-12-03T16:51:15.123Z") of a wall-clock ms time. */
void notify_time(int64_t ms, char out[32] /* OUT */);

#endif
