/* placeholder until the module lands; keeps the static library non-empty */
int core_placeholder(void);
int core_placeholder(void) { return 0; }
