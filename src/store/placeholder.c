/* placeholder until the module lands; keeps the static library non-empty */
int store_placeholder(void);
int store_placeholder(void) { return 0; }
