/* atomic_file.h - writing a file so that a reader finds either the previous
 * version or the whole new one, never a part: the bytes go to "<path>.tmp",
 * which is flushed, fsynced and renamed over path, then the folder is
 * synced so the rename survives a crash. On any failure the temporary file
 * is removed. Used by every writer of model and training files (GGUF,
 * safetensors, checkpoints).
 *
 * Errors: 0 or a negative errno with a message naming the file in err.
 * Threads: one atomic_file per writer; no shared state.
 */
#ifndef ATOMIC_FILE_H
#define ATOMIC_FILE_H

#include <stdio.h>

#include "eng_err.h"

typedef struct atomic_file {
    FILE *f;          /* write here between open and commit */
    char *tmp;        /* "<path>.tmp" */
    const char *path; /* borrowed until commit or abort */
} atomic_file;

/* Creates "<path>.tmp" (truncating a stale one) for writing. */
int atomic_file_open(atomic_file *af, const char *path, eng_err *err);
/* Flushes, fsyncs and closes the temporary file, renames it over path and
 * syncs the folder (best effort: some file systems cannot); on failure the
 * temporary file is removed. Releases af either way. */
int atomic_file_commit(atomic_file *af, eng_err *err);
/* Closes and removes the temporary file (a write failed). Releases af. */
void atomic_file_abort(atomic_file *af);

#endif
