/* placeholder until the module lands; keeps the static library non-empty */
int http_placeholder(void);
int http_placeholder(void) { return 0; }
