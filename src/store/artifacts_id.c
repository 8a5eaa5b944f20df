/*
 * artifacts_id: the artifact id check of artifacts.h, alone in its file so that the fuzz
 * targets (tests/fuzz) that check API bodies compile it without the store.
 */
#include "store/artifacts.h"

#include <string.h>

int artifacts_valid_id(const char *id)
{
	return id && !strncmp(id, "sha256:", 7) && strlen(id) == ARTIFACTS_ID_LEN &&
	       strspn(id + 7, "0123456789abcdef") == 64;
}
