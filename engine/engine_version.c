/* engine_version.c - the engine library's identity, so that the library is
 * never empty and callers can report what they run on. */
#include "engine_version.h"

#include <cblas.h>

const char *engine_version(void) { return ALIGND_VERSION; }

const char *engine_blas_config(void) { return openblas_get_config(); }
