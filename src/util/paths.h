/*
 * paths: where sluice keeps its files by default, shared by the server and the CLI (which
 * reads a local server's admin token from the same place).
 */
#ifndef SLUICE_PATHS_H
#define SLUICE_PATHS_H

#include <stddef.h>

/* The state directory: $SLUICE_DATA, else $XDG_STATE_HOME/sluice, else
 * ~/.local/state/sluice (/tmp/.local/state/sluice without a HOME). */
void paths_data_dir(char *buf /* OUT */, size_t len);

/* The CLI's config file: $SLUICE_CONFIG, else $XDG_CONFIG_HOME/sluice/config, else
 * ~/.config/sluice/config. */
void paths_config_file(char *buf /* OUT */, size_t len);

#endif
