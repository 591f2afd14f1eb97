/* cfg_args.h - command line: the whole configuration load in precedence
 * order (defaults < --config file < environment < --section.key flags) plus
 * the daemon's own options. Main thread only. */
#ifndef CFG_ARGS_H
#define CFG_ARGS_H

#include "cfg.h"

typedef struct cfg_cli {
    const char *config_path; /* borrowed from argv; NULL when none */
    bool help, version, print_config, print_example;
    int n_args;              /* the subcommand and every word after it (or after "--") */
    char **args;             /* borrowed from argv; array owned by cfg_cli */
} cfg_cli;

/* Fills c from every source and cli from argv. On error returns a negative
 * code and a message in err naming the key and its source; the caller exits
 * with status 2. c must be freed with cfg_free and cli with cfg_cli_free in
 * every case. */
int cfg_load_all(cfg *c, cfg_cli *cli, int argc, char **argv, char *const *envp,
                 char *err, size_t errlen);
void cfg_cli_free(cfg_cli *cli);

#endif
