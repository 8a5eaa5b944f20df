#include "util/paths.h"

#include <stdio.h>
#include <stdlib.h>

/* $VAR, else $XDG/sub, else $HOME/fallback/sub. */
static void resolve(char *buf, size_t len, const char *var, const char *xdg, const char *fallback,
		    const char *sub)
{
	const char *d = getenv(var);
	if (d && *d) {
		snprintf(buf, len, "%s", d);
		return;
	}
	d = getenv(xdg);
	if (d && *d) {
		snprintf(buf, len, "%s/%s", d, sub);
		return;
	}
	d = getenv("HOME");
	snprintf(buf, len, "%s/%s/%s", d && *d ? d : "/tmp", fallback, sub);
}

void paths_data_dir(char *buf, size_t len)
{
	resolve(buf, len, "SLUICE_DATA", "XDG_STATE_HOME", ".local/state", "sluice");
}

void paths_config_file(char *buf, size_t len)
{
	resolve(buf, len, "SLUICE_CONFIG", "XDG_CONFIG_HOME", ".config", "sluice/config");
}
