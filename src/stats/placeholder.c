/* placeholder until the module lands; keeps the static library non-empty */
int stats_placeholder(void);
int stats_placeholder(void) { return 0; }
