/* cli_opts.h - table-driven option parsing for the subcommands (pretrain,
 * train dpo, train reward): each option names a field of the command's
 * options struct, its kind and, for numbers, its range. Messages name the
 * command and the option ("alignd train dpo: --beta must be a number in
 * (0, 100], not 'x'"). */
#ifndef CLI_OPTS_H
#define CLI_OPTS_H

#include <stdbool.h>
#include <stddef.h>

#include "trn_optim.h"

typedef enum cli_opt_kind {
    CLI_OPT_NUM,   /* double, in [lo, hi] */
    CLI_OPT_STR,   /* const char * (borrowed from argv) */
    CLI_OPT_FLAG,  /* bool, no value */
} cli_opt_kind;

typedef struct cli_opt {
    const char *name;   /* "--beta"; a second spelling gets its own row */
    cli_opt_kind kind;
    size_t off;         /* offsetof the field */
    double lo, hi;
} cli_opt;

/* Parses argv[1..argc) into the struct at base. Returns 0; 1 when -h or
 * --help was given; 2 after printing why (unknown option, missing value,
 * bad number) to stderr. */
int cli_opts_parse(const char *cmd, const cli_opt *opts, size_t n_opts, void *base, int argc,
                   char **argv);

/* A --schedule name (cosine, linear, constant) into *kind; 0, or 2 after
 * printing why. */
int cli_opts_schedule(const char *cmd, const char *name, trn_sched_kind *kind);

/* The optimizer options the training commands share, applied to c: the
 * schedule and its length, lr and min_lr (capped at lr), warm-up steps,
 * AdamW weight decay and the gradient-norm clip. */
void cli_opts_optim(trn_optim_cfg *c, trn_sched_kind kind, double lr, double min_lr,
                    double warmup, double steps, double wd, double clip);

#endif
