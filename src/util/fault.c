#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/fault.h"
#include "util/log.h"

#define FAULT_SPEC_MAX 512

static char spec[FAULT_SPEC_MAX];
static int loaded;

static const char *faults(void)
{
	if (!loaded) {
		const char *v = getenv("SLUICE_FAULT");
		snprintf(spec, sizeof(spec), "%s", v ? v : "");
		loaded = 1;
	}
	return spec;
}

int fault_active(const char *point)
{
	const char *s = faults();
	size_t n = strlen(point);
	while (*s) {
		const char *end = strchr(s, ',');
		size_t len = end ? (size_t)(end - s) : strlen(s);
		if (len == n && !strncmp(s, point, n))
			return 1;
		if (len > n + 1 && !strncmp(s, point, n) && s[n] == ':' && !strchr(point, ':')) {
			/* POINT:FILE: active while FILE exists (a test breaks and repairs at will) */
			char path[FAULT_SPEC_MAX];
			snprintf(path, sizeof(path), "%.*s", (int)(len - n - 1), s + n + 1);
			if (access(path, F_OK) == 0)
				return 1;
		}
		s += len + (end != NULL);
	}
	return 0;
}

void fault_after_commit(const char *kind)
{
	char point[96];
	if (!faults()[0])
		return;
	snprintf(point, sizeof(point), "after-commit:%s", kind);
	if (!fault_active(point))
		return;
	log_warn("fault injected: %s (SLUICE_FAULT); exiting with status 137", point);
	_exit(137);
}
