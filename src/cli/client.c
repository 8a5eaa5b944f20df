#include <stdio.h>

#include "cli/commands.h"

#define STUB(fn) \
	int fn(int argc, char **argv) \
	{ \
		fprintf(stderr, "sluice: '%s' is not built yet\n", argv[0]); \
		return EXIT_USAGE; \
	}
STUB(cmd_apply)
STUB(cmd_release)
STUB(cmd_deploy)
STUB(cmd_rollback)
STUB(cmd_status)
STUB(cmd_history)
STUB(cmd_events)
STUB(cmd_logs)
STUB(cmd_can_i_deploy)
STUB(cmd_plan)
