/* atomic_file.c - tmp + fsync + rename writes (atomic_file.h). */
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int atomic_file_open(atomic_file *af, const char *path, eng_err *err)
{
    memset(af, 0, sizeof(*af));
    size_t n = strlen(path);
    af->tmp = malloc(n + 5);
    if (!af->tmp)
        return eng_fail(err, -ENOMEM, "%s: out of memory", path);
    memcpy(af->tmp, path, n);
    memcpy(af->tmp + n, ".tmp", 5);
    af->path = path;
    int fd = open(af->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    af->f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (af->f)
        return 0;
    int e = errno ? errno : EIO;
    if (fd >= 0) {
        close(fd);
        unlink(af->tmp);
    }
    eng_fail(err, -e, "%s: cannot create: %s", af->tmp, strerror(e));
    free(af->tmp);
    af->tmp = NULL;
    return -e;
}

/* Makes the rename durable. Best effort: not every file system can sync a
 * folder, and the file itself is complete either way. */
static void atomic_file__sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

int atomic_file_commit(atomic_file *af, eng_err *err)
{
    int e = 0;
    /* fflush: buffered bytes fail here, e.g. on a full disk */
    if (fflush(af->f) != 0 || fsync(fileno(af->f)) != 0)
        e = errno ? errno : EIO;
    if (fclose(af->f) != 0 && !e)
        e = errno ? errno : EIO;
    af->f = NULL;
    int rc = 0;
    if (e)
        rc = eng_fail(err, -e, "%s: writing to disk: %s", af->tmp, strerror(e));
    else if (rename(af->tmp, af->path) != 0)
        rc = eng_fail(err, -errno, "cannot rename %s to %s: %s", af->tmp, af->path,
                      strerror(errno));
    if (rc)
        unlink(af->tmp); /* nothing half-written stays behind */
    else
        atomic_file__sync_dir(af->path);
    free(af->tmp);
    af->tmp = NULL;
    return rc;
}

void atomic_file_abort(atomic_file *af)
{
    if (af->f)
        fclose(af->f);
    if (af->tmp)
        unlink(af->tmp);
    free(af->tmp);
    memset(af, 0, sizeof(*af));
}
