/* cli_file.h - reading a whole input file for a subcommand (a corpus, a
 * text to score). Main thread. */
#ifndef CLI_FILE_H
#define CLI_FILE_H

#include <stddef.h>

/* The file at path, NUL-terminated (*len bytes without the NUL); NULL after
 * printing "alignd CMD: PATH: why" (cannot open, read error, out of
 * memory). Free with free(). */
char *cli_read_file(const char *cmd, const char *path, size_t *len);

#endif
