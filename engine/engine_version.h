/* engine_version.h - version and BLAS build of the engine (any thread). */
#ifndef ENGINE_VERSION_H
#define ENGINE_VERSION_H

/* Returns a static string: the alignd version the engine was built as. */
const char *engine_version(void);
/* Returns a static string from OpenBLAS describing its build (core, threads). */
const char *engine_blas_config(void);

#endif
