/*
 * ui_files: the dashboard's static files (src/server/ui/), embedded in the binary at build time
 * by scripts/embed-files.py (a meson custom_target). Nothing here reads a file at run time.
 */
#ifndef SLUICE_UI_FILES_H
#define SLUICE_UI_FILES_H

#include <stddef.h>

struct ui_file {
	const char *name;         /* "index.html", "vendor/uPlot.iife.min.js": relative to ui/ */
	const char *content_type;
	const unsigned char *data; /* NUL-terminated after len bytes */
	size_t len;
	const char *etag;         /* "\"<20 hex digits of its SHA-256>\"" */
};

/* Ends with a row whose name is NULL. */
extern const struct ui_file ui_files[];

#endif
