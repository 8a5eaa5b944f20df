/* placeholder until the module lands; keeps the static library non-empty */
int contract_placeholder(void);
int contract_placeholder(void) { return 0; }
