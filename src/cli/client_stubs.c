/* Commands whose server side is not built yet. */
#include <stdio.h>

#include "cli/commands.h"

int cmd_can_i_deploy(int argc, char **argv)
{
	fprintf(stderr, "sluice: 'can-i-deploy' is not built yet\n");
	return EXIT_USAGE;
}

int cmd_plan(int argc, char **argv)
{
	fprintf(stderr, "sluice: 'plan' is not built yet\n");
	return EXIT_USAGE;
}
