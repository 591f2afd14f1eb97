/* trn_embed_items.c - sentence-embedding items from JSONL (trn_embed_items.h). */
#include "trn_embed_items.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int trn_embed_items__blank(const char *line, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!strchr(" \t\r\n", line[i]) || !line[i])
            return 0;
    return 1;
}

/* ids of text (n bytes) with the model's special tokens, cut to max_len;
 * NULL when the tokenizer fails or yields nothing. */
static int32_t *trn_embed_items__tokenize(const tok *t, const char *text, size_t n, int max_len,
                                          int32_t *n_out)
{
    size_t cap = n + 8, got = 0;
    int32_t *ids = malloc(cap * sizeof(*ids));
    tok_err e;
    int rc = ids ? tok_encode(t, text, n, TOK_ENC_ADD_SPECIAL, ids, cap, &got, &e) : TOK_ENOMEM;
    if (rc == TOK_ESPACE) {
        int32_t *more = realloc(ids, got * sizeof(*ids));
        rc = more ? tok_encode(t, text, n, TOK_ENC_ADD_SPECIAL, more, got, &got, &e)
                  : TOK_ENOMEM;
        ids = more ? more : ids;
    }
    if (rc || got == 0) {
        free(ids);
        return NULL;
    }
    *n_out = (int32_t)(got < (size_t)max_len ? got : (size_t)max_len);
    return ids;
}

/* The k-th sentence of the item: 0 query, 1 positive, 2.. negatives. */
static json_t *trn_embed_items__sentence(json_t *j, int k)
{
    if (k == 0)
        return json_object_get(j, "query");
    if (k == 1)
        return json_object_get(j, "positive");
    return json_array_get(json_object_get(j, "negatives"), (size_t)k - 2);
}

static int trn_embed_items__add(trn_embed_set *set, const tok *t, int max_len, json_t *j,
                                char *err, size_t errlen)
{
    json_t *neg = json_object_get(j, "negatives");
    if (!json_is_object(j) || !json_is_string(json_object_get(j, "query")) ||
        !json_is_string(json_object_get(j, "positive")) || !json_is_array(neg)) {
        snprintf(err, errlen, "need \"query\" and \"positive\" strings and a \"negatives\" "
                 "array");
        return -EINVAL;
    }
    if (json_array_size(neg) < (size_t)set->n_neg)
        return 1;
    int per = 2 + set->n_neg, rc = 0;
    int32_t **seqs = calloc((size_t)per, sizeof(*seqs));
    int32_t *lens = calloc((size_t)per, sizeof(*lens));
    if (!seqs || !lens)
        rc = -ENOMEM;
    for (int k = 0; k < per && !rc; k++) {
        json_t *s = trn_embed_items__sentence(j, k);
        if (!json_is_string(s) || !(seqs[k] = trn_embed_items__tokenize(
                                        t, json_string_value(s), json_string_length(s),
                                        max_len, &lens[k]))) {
            if (k < 2)
                snprintf(err, errlen, "\"%s\" is not a string the tokenizer makes tokens of",
                         k ? "positive" : "query");
            else
                snprintf(err, errlen, "negatives[%d] is not a string the tokenizer makes "
                         "tokens of", k - 2);
            rc = -EINVAL;
        }
    }
    if (!rc && (rc = trn_embed_set_add(set, (const int32_t *const *)seqs, lens)) == -EINVAL)
        snprintf(err, errlen, "max_len %d leaves a sentence empty", max_len);
    for (int k = 0; seqs && k < per; k++)
        free(seqs[k]);
    free(seqs);
    free(lens);
    if (rc == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    return rc;
}

int trn_embed_items_add_line(trn_embed_set *set, const tok *t, int max_len, const char *line,
                             size_t len, char *err, size_t errlen)
{
    if (trn_embed_items__blank(line, len))
        return 2;
    json_error_t je;
    json_t *j = json_loadb(line, len, 0, &je);
    if (!j) {
        snprintf(err, errlen, "not JSON: %s", je.text);
        return -EINVAL;
    }
    int rc = trn_embed_items__add(set, t, max_len, j, err, errlen);
    json_decref(j);
    return rc;
}

int trn_embed_items_count_negatives(const char *line, size_t len)
{
    json_t *j = json_loadb(line, len, 0, NULL);
    json_t *neg = json_object_get(j, "negatives");
    int n = json_is_array(neg) && json_array_size(neg) < 1000000 ? (int)json_array_size(neg)
                                                                 : -EINVAL;
    json_decref(j);
    return n;
}
