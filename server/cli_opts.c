/* cli_opts.c - table-driven option parsing (cli_opts.h). */
#include "cli_opts.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cli_opt *cli_opts__find(const cli_opt *opts, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(opts[i].name, name))
            return &opts[i];
    return NULL;
}

static int cli_opts__num(const char *cmd, const cli_opt *o, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= o->lo && v <= o->hi)) {
        fprintf(stderr, "alignd %s: %s must be a number in [%g, %g], not '%s'\n", cmd, o->name,
                o->lo, o->hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_opts_parse(const char *cmd, const cli_opt *opts, size_t n_opts, void *base, int argc,
                   char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return 1;
        const cli_opt *o = cli_opts__find(opts, n_opts, a);
        if (!o) {
            fprintf(stderr, "alignd %s: unknown option %s (see --help)\n", cmd, a);
            return 2;
        }
        char *field = (char *)base + o->off;
        if (o->kind == CLI_OPT_FLAG) {
            *(bool *)field = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "alignd %s: %s needs a value\n", cmd, a);
            return 2;
        }
        const char *val = argv[++i];
        if (o->kind == CLI_OPT_STR)
            *(const char **)field = val;
        else if (cli_opts__num(cmd, o, val, (double *)field))
            return 2;
    }
    return 0;
}

int cli_opts_schedule(const char *cmd, const char *name, trn_sched_kind *kind)
{
    if (!strcmp(name, "cosine"))
        *kind = TRN_SCHED_COSINE;
    else if (!strcmp(name, "linear"))
        *kind = TRN_SCHED_LINEAR;
    else if (!strcmp(name, "constant"))
        *kind = TRN_SCHED_CONSTANT;
    else {
        fprintf(stderr, "alignd %s: --schedule must be cosine, linear or constant, not '%s'\n",
                cmd, name);
        return 2;
    }
    return 0;
}

void cli_opts_optim(trn_optim_cfg *c, trn_sched_kind kind, double lr, double min_lr,
                    double warmup, double steps, double wd, double clip)
{
    c->sched.kind = kind;
    c->sched.lr = lr;
    c->sched.min_lr = fmin(min_lr, lr);
    c->sched.warmup_steps = (int64_t)warmup;
    c->sched.total_steps = (int64_t)steps;
    c->weight_decay = wd;
    c->max_grad_norm = clip;
}
