/* placeholder until the module lands; keeps the static library non-empty */
int runtime_placeholder(void);
int runtime_placeholder(void) { return 0; }
