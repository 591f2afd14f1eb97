/* prefix_cache.c - reusable KV prefixes of finished prompts (prefix_cache.h). */
#include "prefix_cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct pfx__entry {
    int32_t *tokens; /* [n] */
    int n;           /* 0: free */
    uint64_t used;   /* last retain or attach, for LRU */
} pfx__entry;

struct pfx_cache {
    kv_cache *kv;
    int first_slot, n_entries;
    uint64_t clock;
    pfx__entry *e;
};

int pfx_create(pfx_cache **out, kv_cache *kv, int first_slot, int n_entries)
{
    *out = NULL;
    if (n_entries < 0 || first_slot < 0 || first_slot + n_entries > kv_n_seq(kv))
        return -EINVAL;
    pfx_cache *pc = calloc(1, sizeof *pc);
    if (!pc || (n_entries && !(pc->e = calloc((size_t)n_entries, sizeof *pc->e)))) {
        free(pc);
        return -ENOMEM;
    }
    pc->kv = kv;
    pc->first_slot = first_slot;
    pc->n_entries = n_entries;
    *out = pc;
    return 0;
}

static void pfx__drop(pfx_cache *pc, int i)
{
    kv_seq_clear(pc->kv, pc->first_slot + i);
    free(pc->e[i].tokens);
    pc->e[i].tokens = NULL;
    pc->e[i].n = 0;
}

void pfx_free(pfx_cache *pc)
{
    if (!pc)
        return;
    for (int i = 0; i < pc->n_entries; i++)
        if (pc->e[i].n)
            pfx__drop(pc, i);
    free(pc->e);
    free(pc);
}

/* Positions entry i shares with tokens[0, n). */
static int pfx__common(const pfx__entry *e, const int32_t *tokens, int n)
{
    int m = e->n < n ? e->n : n, k = 0;
    while (k < m && e->tokens[k] == tokens[k])
        k++;
    return k;
}

void pfx_retain(pfx_cache *pc, int src, const int32_t *tokens, int n)
{
    int bs = kv_block_size(pc->kv);
    n = n / bs * bs;
    if (n <= 0 || pc->n_entries == 0)
        return;
    int slot = -1;
    for (int i = 0; i < pc->n_entries; i++) {
        pfx__entry *e = &pc->e[i];
        if (!e->n)
            continue;
        int common = pfx__common(e, tokens, n);
        if (common == n) { /* already kept (as this or a longer prefix) */
            e->used = ++pc->clock;
            return;
        }
        if (common == e->n) /* the new one extends it: take its place */
            slot = i;
    }
    for (int i = 0; i < pc->n_entries && slot < 0; i++)
        if (!pc->e[i].n)
            slot = i;
    if (slot < 0) { /* the least recently used goes */
        slot = 0;
        for (int i = 1; i < pc->n_entries; i++)
            if (pc->e[i].used < pc->e[slot].used)
                slot = i;
    }
    int32_t *copy = malloc((size_t)n * sizeof *copy);
    if (!copy)
        return; /* nothing kept: a later prompt is computed in full */
    if (pc->e[slot].n)
        pfx__drop(pc, slot);
    /* whole blocks: shared, so the fork needs no free block and cannot fail */
    if (kv_seq_fork(pc->kv, pc->first_slot + slot, src, n) != 0) {
        free(copy);
        return;
    }
    memcpy(copy, tokens, (size_t)n * sizeof *copy);
    pc->e[slot] = (pfx__entry){.tokens = copy, .n = n, .used = ++pc->clock};
}

int pfx_attach(pfx_cache *pc, int dst, const int32_t *tokens, int n)
{
    int bs = kv_block_size(pc->kv), best = -1, best_len = 0;
    for (int i = 0; i < pc->n_entries; i++) {
        if (!pc->e[i].n)
            continue;
        int len = pfx__common(&pc->e[i], tokens, n - 1) / bs * bs; /* leave the last */
        if (len > best_len) {
            best = i;
            best_len = len;
        }
    }
    if (best < 0 || kv_seq_fork(pc->kv, dst, pc->first_slot + best, best_len) != 0)
        return 0;
    pc->e[best].used = ++pc->clock;
    return best_len;
}

bool pfx_evict(pfx_cache *pc)
{
    int victim = -1;
    for (int i = 0; i < pc->n_entries; i++)
        if (pc->e[i].n && (victim < 0 || pc->e[i].used < pc->e[victim].used))
            victim = i;
    if (victim < 0)
        return false;
    pfx__drop(pc, victim);
    return true;
}

int pfx_entries(const pfx_cache *pc)
{
    int k = 0;
    for (int i = 0; pc && i < pc->n_entries; i++)
        k += pc->e[i].n > 0;
    return k;
}
