/* cfg_pack.h - the default model pack: the models alignd serves when none
 * is configured (server.model_pack), so a fresh checkout or install answers
 * completions, embeddings and classification without any setting.
 *
 * A pack is a folder with a pack.ini holding only [model.NAME] sections
 * (the same keys as any configuration); relative paths in it are relative
 * to the pack's folder. "auto" looks for models/pack.ini in the working
 * directory (a checkout: `make run`), then in the installed folder
 * (ALIGND_PACK_DIR, share/alignd/models); "none" turns it off; anything else
 * names a pack.ini, which must then load. Main thread only. */
#ifndef CFG_PACK_H
#define CFG_PACK_H

#include <stddef.h>

#include "cfg.h"

/* Adds the pack's models to c when c has none and server.model_pack allows
 * it. installed_dir: the installed pack's folder (may be NULL). *used (may
 * be NULL) gets the pack.ini loaded, "" when none. 0, or a negative code
 * with err naming the file and the problem. */
int cfg_apply_pack(cfg *c, const char *installed_dir, char *used, size_t usedlen, char *err,
                   size_t errlen);

#endif
