/* What every parser fuzz target shares: CHECK aborts on a broken invariant (libFuzzer keeps
 * the input), say() tells why an input was refused when FUZZ_VERBOSE is set (to see what a
 * seed exercises). */
#ifndef SLUICE_FUZZ_CHECK_H
#define SLUICE_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(x) do { if (!(x)) { fprintf(stderr, "check failed: %s\n", #x); abort(); } } while (0)

static inline void say(const char *msg)
{
	static int verbose = -1;
	if (verbose < 0)
		verbose = getenv("FUZZ_VERBOSE") != NULL;
	if (verbose)
		fprintf(stderr, "refused: %s\n", msg);
}

#endif
