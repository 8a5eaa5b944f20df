#include <stdio.h>

#include "cli/commands.h"

int cmd_judge(int argc, char **argv)
{
	fprintf(stderr, "sluice: '%s' is not built yet\n", argv[0]);
	return EXIT_USAGE;
}
