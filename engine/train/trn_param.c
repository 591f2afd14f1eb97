/* trn_param.c - the flat list of trainable parameters (trn_param.h). */
#include "trn_param.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int trn_params_add(trn_params *ps, const char *name, float *value, float *grad, size_t n,
                   bool decay)
{
    if (ps->n == ps->cap) {
        int cap = ps->cap ? 2 * ps->cap : 16;
        trn_param *p = realloc(ps->p, (size_t)cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        ps->p = p;
        ps->cap = cap;
    }
    trn_param *p = &ps->p[ps->n++];
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->value = value;
    p->grad = grad;
    p->n = n;
    p->decay = decay;
    return 0;
}

void trn_params_free(trn_params *ps)
{
    if (!ps)
        return;
    free(ps->p);
    ps->p = NULL;
    ps->n = ps->cap = 0;
}

size_t trn_params_count(const trn_params *ps)
{
    size_t n = 0;
    for (int i = 0; i < ps->n; i++)
        n += ps->p[i].n;
    return n;
}

void trn_params_zero_grad(trn_params *ps)
{
    for (int i = 0; i < ps->n; i++)
        memset(ps->p[i].grad, 0, ps->p[i].n * sizeof(float));
}

double trn_params_grad_norm(const trn_params *ps)
{
    double s = 0.0;
    for (int i = 0; i < ps->n; i++) {
        const float *g = ps->p[i].grad;
        for (size_t j = 0; j < ps->p[i].n; j++)
            s += (double)g[j] * g[j];
    }
    return sqrt(s);
}
