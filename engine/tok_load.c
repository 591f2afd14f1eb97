/* tok_load.c - finding and building a model's tokenizer. */
#include "tok_load.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int tok__fail_gguf(tok_err *err, const char *msg) {
    return eng_fail(err, TOK_EFORMAT, "%s", msg);
}

/* Reads an optional integer id key into *id (left alone when absent). */
static int tok__gguf_id(const gguf_file *f, const char *key, int32_t *id, tok_err *err) {
    char msg[256];
    int64_t v;
    int rc = gguf_get_int(f, key, -1, UINT32_MAX, &v, msg, sizeof msg);
    if (rc == GGUF_ENOTFOUND) return 0;
    if (rc != 0) return tok__fail_gguf(err, msg);
    /* converters write "none" as -1 or as uint32 0xFFFFFFFF */
    *id = (v < 0 || v > INT32_MAX) ? TOK_ID_NONE : (int32_t)v;
    return 0;
}

/* Reads an optional boolean key into *b (left alone when absent). */
static int tok__gguf_bool(const gguf_file *f, const char *key, bool *b, tok_err *err) {
    char msg[256];
    int rc = gguf_get_bool(f, key, b, msg, sizeof msg);
    if (rc == GGUF_ENOTFOUND) return 0;
    return rc ? tok__fail_gguf(err, msg) : 0;
}

/* The string array of a key as a C array of pointers (malloc'd; the strings
 * stay the file's). */
static int tok__gguf_strings(const gguf_file *f, const char *key, const char ***out, size_t *n,
                             tok_err *err) {
    char msg[256];
    const void *data;
    if (gguf_get_arr(f, key, GGUF_TYPE_STRING, &data, n, msg, sizeof msg) != 0)
        return tok__fail_gguf(err, msg);
    const gguf_str *s = data;
    const char **ptrs = malloc((*n ? *n : 1) * sizeof *ptrs);
    if (!ptrs) return eng_fail(err, TOK_ENOMEM, "%s: out of memory", key);
    for (size_t i = 0; i < *n; i++) {
        if (strlen(s[i].s) != s[i].len)
            return free(ptrs), eng_fail(err, TOK_EFORMAT, "%s[%zu]: embedded NUL byte", key, i);
        ptrs[i] = s[i].s;
    }
    *out = ptrs;
    return 0;
}

/* ---- WordPiece from GGUF (added with issue "Embeddings") ------------------ */

#define TOK__PHANTOM "\xE2\x96\x81" /* U+2581 */

/* An AUTO id: the token `name` (the highest id holding it), else llama.cpp's
 * BERT default `dflt` when the vocabulary is that large, else none. */
static int32_t tok__wp_default_id(int32_t id, const char *const *tokens, size_t n, const char *name,
                                  int32_t dflt) {
    if (id != TOK_ID_AUTO) return id;
    for (size_t i = n; i-- > 0;)
        if (strcmp(tokens[i], name) == 0) return (int32_t)i;
    return (size_t)dflt < n ? dflt : TOK_ID_NONE;
}

/* tokenizer.ggml.model "bert": llama.cpp's converter stores the vocabulary
 * in "phantom space" form ("U+2581 word" for a word-initial piece, "x" for the
 * continuation "##x", "[CLS]"-style and CONTROL tokens as they are); this
 * maps it back to vocab.txt form. Special ids come from cls_token_id /
 * seperator_token_id (llama.cpp's spelling) / unknown / padding / mask keys,
 * else the tokens "[CLS]" ... by name, else 101/102/100/0/103. */
static int tok__load_gguf_bert(tok **out, const gguf_file *f, tok_err *err) {
    char msg[256];
    tok_options o;
    tok_options_init(&o, TOK_KIND_WORDPIECE);
    tok_wordpiece_options wo;
    tok_wordpiece_options_init(&wo);
    int rc;
    if ((rc = tok__gguf_id(f, "tokenizer.ggml.bos_token_id", &o.bos_id, err)) ||
        (rc = tok__gguf_id(f, "tokenizer.ggml.cls_token_id", &o.bos_id, err)) ||
        (rc = tok__gguf_id(f, "tokenizer.ggml.seperator_token_id", &o.eos_id, err)) ||
        (rc = tok__gguf_id(f, "tokenizer.ggml.unknown_token_id", &o.unk_id, err)) ||
        (rc = tok__gguf_id(f, "tokenizer.ggml.padding_token_id", &o.pad_id, err)) ||
        (rc = tok__gguf_id(f, "tokenizer.ggml.mask_token_id", &wo.mask_id, err)) ||
        (rc = tok__gguf_bool(f, "tokenizer.ggml.add_bos_token", &o.add_bos, err)) ||
        (rc = tok__gguf_bool(f, "tokenizer.ggml.add_sep_token", &o.add_eos, err)))
        return rc;
    const char **tokens = NULL;
    char **conv = NULL;
    size_t n = 0;
    if ((rc = tok__gguf_strings(f, "tokenizer.ggml.tokens", &tokens, &n, err))) return rc;
    const int32_t *types = NULL;
    size_t n_types = 0;
    const void *data;
    if (gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, &data, &n_types, msg,
                     sizeof msg) == 0) {
        types = data;
        if (n_types != n) {
            rc = eng_fail(err, TOK_EFORMAT, "tokenizer.ggml.token_type has %zu entries for %zu tokens",
                          n_types, n);
            goto out;
        }
    }
    conv = calloc(n ? n : 1, sizeof *conv);
    if (!conv) goto nomem;
    for (size_t i = 0; i < n; i++) {
        const char *s = tokens[i];
        size_t l = strlen(s);
        bool special = types && (types[i] == TOK_TYPE_CONTROL || types[i] == TOK_TYPE_UNKNOWN ||
                                 types[i] == TOK_TYPE_USER_DEFINED);
        if (strncmp(s, TOK__PHANTOM, 3) == 0) {
            tokens[i] = s + 3; /* a word-initial piece */
        } else if (!special && !(l >= 2 && s[0] == '[' && s[l - 1] == ']')) {
            if (!(conv[i] = malloc(l + 3))) goto nomem;
            memcpy(conv[i], "##", 2);
            memcpy(conv[i] + 2, s, l + 1);
            tokens[i] = conv[i];
        }
    }
    o.bos_id = tok__wp_default_id(o.bos_id, tokens, n, "[CLS]", 101);
    o.eos_id = tok__wp_default_id(o.eos_id, tokens, n, "[SEP]", 102);
    o.unk_id = tok__wp_default_id(o.unk_id, tokens, n, "[UNK]", 100);
    o.pad_id = tok__wp_default_id(o.pad_id, tokens, n, "[PAD]", 0);
    wo.mask_id = tok__wp_default_id(wo.mask_id, tokens, n, "[MASK]", 103);
    rc = tok_create_wordpiece(out, tokens, n, types, &o, &wo, err);
    goto out;
nomem:
    rc = eng_fail(err, TOK_ENOMEM, "tokenizer.ggml.tokens: out of memory for %zu tokens", n);
out:
    if (conv)
        for (size_t i = 0; i < n; i++) free(conv[i]);
    free(conv);
    free(tokens);
    return rc;
}

int tok_load_gguf(tok **out, const gguf_file *f, tok_err *err) {
    char msg[256];
    const char *model;
    *out = NULL;
    if (gguf_get_str(f, "tokenizer.ggml.model", &model, NULL, msg, sizeof msg) != 0)
        return eng_fail(err, TOK_EFORMAT, "no tokenizer in this GGUF file: %s", msg);
    tok_kind kind;
    if (strcmp(model, "llama") == 0) kind = TOK_KIND_SPM;
    else if (strcmp(model, "gpt2") == 0) kind = TOK_KIND_BPE;
    else if (strcmp(model, "bert") == 0) return tok__load_gguf_bert(out, f, err);
    else
        return eng_fail(err, TOK_EINVAL,
                        "tokenizer.ggml.model '%s' is not supported (llama, gpt2 or bert)", model);
    tok_options o;
    tok_options_init(&o, kind);
    int rc;
    if ((rc = tok__gguf_id(f, "tokenizer.ggml.bos_token_id", &o.bos_id, err)) ||
        (rc = tok__gguf_id(f, "tokenizer.ggml.eos_token_id", &o.eos_id, err)) ||
        (rc = tok__gguf_id(f, "tokenizer.ggml.unknown_token_id", &o.unk_id, err)) ||
        (rc = tok__gguf_id(f, "tokenizer.ggml.padding_token_id", &o.pad_id, err)) ||
        (rc = tok__gguf_bool(f, "tokenizer.ggml.add_bos_token", &o.add_bos, err)) ||
        (rc = tok__gguf_bool(f, "tokenizer.ggml.add_eos_token", &o.add_eos, err)) ||
        (rc = tok__gguf_bool(f, "tokenizer.ggml.add_space_prefix", &o.add_space_prefix, err)))
        return rc;

    const char **tokens = NULL, **merges = NULL;
    size_t n_tokens = 0, n_merges = 0;
    if ((rc = tok__gguf_strings(f, "tokenizer.ggml.tokens", &tokens, &n_tokens, err))) return rc;
    const int32_t *types = NULL;
    size_t n_types = 0;
    const void *data;
    if (gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, &data, &n_types, msg,
                     sizeof msg) == 0) {
        types = data;
        if (n_types != n_tokens) {
            rc = eng_fail(err, TOK_EFORMAT, "tokenizer.ggml.token_type has %zu entries for %zu tokens",
                          n_types, n_tokens);
            goto out;
        }
    }
    if (kind == TOK_KIND_SPM) {
        size_t n_scores = 0;
        if (gguf_get_arr(f, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, &data, &n_scores, msg,
                         sizeof msg) != 0) {
            rc = tok__fail_gguf(err, msg);
            goto out;
        }
        if (n_scores != n_tokens) {
            rc = eng_fail(err, TOK_EFORMAT, "tokenizer.ggml.scores has %zu entries for %zu tokens",
                          n_scores, n_tokens);
            goto out;
        }
        rc = tok_create_spm(out, tokens, data, types, n_tokens, &o, err);
    } else {
        if ((rc = tok__gguf_strings(f, "tokenizer.ggml.merges", &merges, &n_merges, err))) goto out;
        rc = tok_create_bpe(out, tokens, n_tokens, merges, n_merges, types, &o, err);
    }
out:
    free(tokens);
    free(merges);
    return rc;
}

static bool tok__exists(const char *dir, const char *name, char *path, size_t len) {
    snprintf(path, len, "%s/%s", dir, name);
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- WordPiece from Hugging Face files (added with issue "Embeddings") ---- */

/* A special token named in a tokenizer config: a string or {"content": s}. */
static const char *tok__json_token_name(const json_t *v) {
    if (json_is_object(v)) v = json_object_get(v, "content");
    return json_string_value(v);
}

/* Reads a BertNormalizer-like json object (or the normalizers of a
 * Sequence) into *wo. */
static void tok__wp_normalizer(const json_t *nz, tok_wordpiece_options *wo) {
    const char *type = json_string_value(json_object_get(nz, "type"));
    if (!type) return;
    if (strcmp(type, "Sequence") == 0) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(nz, "normalizers"), i, v) tok__wp_normalizer(v, wo);
    } else if (strcmp(type, "BertNormalizer") == 0) {
        json_t *v;
        wo->clean_text = !json_is_false(json_object_get(nz, "clean_text"));
        wo->tokenize_chinese_chars = !json_is_false(json_object_get(nz, "handle_chinese_chars"));
        wo->lowercase = !json_is_false(json_object_get(nz, "lowercase"));
        v = json_object_get(nz, "strip_accents");
        wo->strip_accents = json_is_boolean(v) ? json_is_true(v) : -1;
    } else if (strcmp(type, "Lowercase") == 0) {
        wo->lowercase = true;
    } else if (strcmp(type, "StripAccents") == 0) {
        wo->strip_accents = 1;
    } else if (strcmp(type, "NFC") == 0) {
        wo->nfc = true;
    }
}

/* The id of a post-processor special token: special_tokens[name].ids[0],
 * else the vocabulary's id of name; TOK_ID_AUTO when unknown. */
static int32_t tok__wp_template_id(const json_t *pp, const json_t *vocab, const char *name) {
    json_t *ids = json_object_get(json_object_get(json_object_get(pp, "special_tokens"), name), "ids");
    json_t *v = json_array_get(ids, 0);
    if (!v) v = json_object_get(vocab, name);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
        return TOK_ID_AUTO;
    return (int32_t)json_integer_value(v);
}

/* Reads the post-processor: [CLS]/[SEP] ids, or no specials at all. */
static void tok__wp_post(const json_t *pp, const json_t *vocab, tok_options *o) {
    const char *type = json_string_value(json_object_get(pp, "type"));
    if (!type) { /* none: encode adds nothing */
        o->add_bos = o->add_eos = false;
        return;
    }
    if (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0) {
        json_t *cls = json_array_get(json_object_get(pp, "cls"), 1);
        json_t *sep = json_array_get(json_object_get(pp, "sep"), 1);
        if (json_is_integer(cls)) o->bos_id = (int32_t)json_integer_value(cls);
        if (json_is_integer(sep)) o->eos_id = (int32_t)json_integer_value(sep);
    } else if (strcmp(type, "TemplateProcessing") == 0) {
        bool seen_seq = false;
        o->add_bos = o->add_eos = false;
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(pp, "single"), i, v) {
            if (json_object_get(v, "Sequence")) {
                seen_seq = true;
                continue;
            }
            const char *name = json_string_value(json_object_get(json_object_get(v, "SpecialToken"), "id"));
            if (!name) continue;
            int32_t id = tok__wp_template_id(pp, vocab, name);
            if (!seen_seq && !o->add_bos) o->bos_id = id, o->add_bos = true;
            else if (seen_seq && !o->add_eos) o->eos_id = id, o->add_eos = true;
        }
    } else if (strcmp(type, "Sequence") == 0) {
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(pp, "processors"), i, v) {
            const char *t = json_string_value(json_object_get(v, "type"));
            if (t && (strcmp(t, "BertProcessing") == 0 || strcmp(t, "TemplateProcessing") == 0 ||
                      strcmp(t, "RobertaProcessing") == 0))
                tok__wp_post(v, vocab, o);
        }
    }
}

/* Builds a WordPiece tokenizer from a parsed tokenizer.json (borrowed). */
static int tok__wordpiece_from_json(tok **out, const json_t *root, const char *path, tok_err *err) {
    json_t *model = json_object_get(root, "model");
    json_t *vocab = json_object_get(model, "vocab"), *added = json_object_get(root, "added_tokens");
    if (!json_is_object(vocab))
        return eng_fail(err, TOK_EFORMAT, "%s: model.vocab must be an object", path);
    tok_options o;
    tok_options_init(&o, TOK_KIND_WORDPIECE);
    tok_wordpiece_options wo;
    tok_wordpiece_options_init(&wo);
    /* no normalizer: none of BERT's steps; the tokenizers library has no NFC */
    wo.clean_text = wo.tokenize_chinese_chars = wo.lowercase = wo.nfc = false;
    wo.strip_accents = 0;
    tok__wp_normalizer(json_object_get(root, "normalizer"), &wo);
    json_t *v;
    if ((v = json_object_get(model, "unk_token")) && json_is_string(v)) wo.unk_token = json_string_value(v);
    if ((v = json_object_get(model, "continuing_subword_prefix")) && json_is_string(v))
        wo.prefix = json_string_value(v);
    if ((v = json_object_get(model, "max_input_chars_per_word")) && json_is_integer(v)) {
        json_int_t m = json_integer_value(v);
        wo.max_input_chars_per_word = m < 1 ? 1 : m > 1000000 ? 1000000 : (uint32_t)m;
    }
    tok__wp_post(json_object_get(root, "post_processor"), vocab, &o);

    /* ids: vocab plus added_tokens, dense from 0 */
    size_t n = 0;
    const char *key;
    json_object_foreach(vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 10000000)
            return eng_fail(err, TOK_EFORMAT, "%s: model.vocab['%s'] is not a token id", path, key);
        if ((size_t)json_integer_value(v) + 1 > n) n = (size_t)json_integer_value(v) + 1;
    }
    size_t i;
    json_array_foreach(added, i, v) {
        json_int_t id = json_integer_value(json_object_get(v, "id"));
        if (!json_is_string(json_object_get(v, "content")) || id < 0 || id > 10000000)
            return eng_fail(err, TOK_EFORMAT, "%s: added_tokens[%zu] needs content and an id", path, i);
        if ((size_t)id + 1 > n) n = (size_t)id + 1;
    }
    const char **tokens = calloc(n ? n : 1, sizeof *tokens);
    int32_t *types = calloc(n ? n : 1, sizeof *types);
    int rc;
    if (!tokens || !types) {
        rc = eng_fail(err, TOK_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    json_object_foreach(vocab, key, v) {
        tokens[json_integer_value(v)] = key;
        types[json_integer_value(v)] = TOK_TYPE_NORMAL;
    }
    json_array_foreach(added, i, v) {
        json_int_t id = json_integer_value(json_object_get(v, "id"));
        tokens[id] = json_string_value(json_object_get(v, "content"));
        types[id] = json_is_true(json_object_get(v, "special")) ? TOK_TYPE_CONTROL : TOK_TYPE_USER_DEFINED;
    }
    for (size_t k = 0; k < n; k++)
        if (!tokens[k]) {
            rc = eng_fail(err, TOK_EFORMAT, "%s: token id %zu is missing (ids must be dense)", path, k);
            goto out;
        }
    rc = tok_create_wordpiece(out, tokens, n, types, &o, &wo, err);
    if (rc && err) {
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "%s", err->msg);
        eng_fail(err, rc, "%s: %s", path, m);
    }
out:
    free(tokens);
    free(types);
    return rc;
}

int tok_create_wordpiece_from_hf_json(tok **out, const char *path, tok_err *err) {
    *out = NULL;
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) return eng_fail(err, TOK_EFORMAT, "%s: line %d: %s", path, je.line, je.text);
    const char *type = json_string_value(json_object_get(json_object_get(root, "model"), "type"));
    int rc;
    if (!type || strcmp(type, "WordPiece") != 0)
        rc = eng_fail(err, TOK_EINVAL, "%s: model.type '%s' is not WordPiece", path,
                      type ? type : "(missing)");
    else
        rc = tok__wordpiece_from_json(out, root, path, err);
    json_decref(root);
    return rc;
}

/* The model.type of a tokenizer.json, as a static string ("WordPiece",
 * "other"), or NULL when it does not parse (the BPE reader reports that). */
static const char *tok__hf_json_kind(const char *path) {
    json_t *root = json_load_file(path, 0, NULL);
    if (!root) return NULL;
    const char *type = json_string_value(json_object_get(json_object_get(root, "model"), "type"));
    const char *kind = type && strcmp(type, "WordPiece") == 0 ? "WordPiece" : "other";
    json_decref(root);
    return kind;
}

/* A folder's vocab.txt, with do_lower_case / strip_accents /
 * tokenize_chinese_chars and the special token names from
 * tokenizer_config.json when it is there (BertTokenizer's defaults
 * otherwise). */
static int tok__load_vocab_txt(tok **out, const char *dir, const char *vocab_path, tok_err *err) {
    char cfg_path[4096];
    tok_wordpiece_options wo;
    tok_wordpiece_options_init(&wo);
    json_t *cfg = NULL;
    if (tok__exists(dir, "tokenizer_config.json", cfg_path, sizeof cfg_path)) {
        json_error_t je;
        cfg = json_load_file(cfg_path, 0, &je);
        if (!cfg) return eng_fail(err, TOK_EFORMAT, "%s: line %d: %s", cfg_path, je.line, je.text);
        json_t *v;
        if (json_is_boolean(v = json_object_get(cfg, "do_lower_case"))) wo.lowercase = json_is_true(v);
        if (json_is_boolean(v = json_object_get(cfg, "strip_accents"))) wo.strip_accents = json_is_true(v);
        if (json_is_boolean(v = json_object_get(cfg, "tokenize_chinese_chars")))
            wo.tokenize_chinese_chars = json_is_true(v);
        wo.cls_token = tok__json_token_name(json_object_get(cfg, "cls_token"));
        wo.sep_token = tok__json_token_name(json_object_get(cfg, "sep_token"));
        wo.unk_token = tok__json_token_name(json_object_get(cfg, "unk_token"));
        wo.pad_token = tok__json_token_name(json_object_get(cfg, "pad_token"));
        wo.mask_token = tok__json_token_name(json_object_get(cfg, "mask_token"));
    }
    int rc = tok_create_wordpiece_from_file(out, vocab_path, NULL, &wo, err);
    json_decref(cfg);
    return rc;
}

/* Whether a folder holds a CLIP model (issue "CLIP"): config.json's
 * model_type is "clip" or "clip_text_model", or tokenizer_config.json's
 * tokenizer_class is CLIPTokenizer(Fast). Unreadable files count as no. */
static bool tok__is_clip_dir(const char *dir) {
    static const struct { const char *file, *key; } probe[] = {
        {"config.json", "model_type"}, {"tokenizer_config.json", "tokenizer_class"}};
    char path[4096];
    for (size_t i = 0; i < sizeof probe / sizeof *probe; i++) {
        if (!tok__exists(dir, probe[i].file, path, sizeof path)) continue;
        json_t *root = json_load_file(path, 0, NULL);
        const char *v = json_string_value(json_object_get(root, probe[i].key));
        bool yes = v && (strcmp(v, "clip") == 0 || strcmp(v, "clip_text_model") == 0 ||
                         strcmp(v, "CLIPTokenizer") == 0 || strcmp(v, "CLIPTokenizerFast") == 0);
        json_decref(root);
        if (yes) return true;
    }
    return false;
}

int tok_load_hf_dir(tok **out, const char *dir, tok_err *err) {
    char a[4096], b[4096];
    *out = NULL;
    if (tok__exists(dir, "tokenizer.model", a, sizeof a)) {
        tok_spm_model m;
        int rc = tok_spm_model_load(&m, a, err);
        if (rc) return rc;
        rc = tok_create_spm_from_model(out, &m, NULL, err);
        tok_spm_model_free(&m);
        return rc;
    }
    if (tok__exists(dir, "vocab.json", a, sizeof a) && tok__exists(dir, "merges.txt", b, sizeof b)) {
        if (tok__is_clip_dir(dir)) return tok_create_clip_from_files(out, a, b, NULL, err);
        return tok_create_bpe_from_files(out, a, b, NULL, err);
    }
    if (tok__exists(dir, "vocab.txt", a, sizeof a)) return tok__load_vocab_txt(out, dir, a, err);
    if (tok__exists(dir, "tokenizer.json", a, sizeof a)) {
        const char *kind = tok__hf_json_kind(a);
        if (kind && strcmp(kind, "WordPiece") == 0) return tok_create_wordpiece_from_hf_json(out, a, err);
        return tok_create_bpe_from_hf_json(out, a, err);
    }
    return eng_fail(err, TOK_EINVAL,
                    "%s: no tokenizer files (tokenizer.model, vocab.json + merges.txt, vocab.txt, or "
                    "tokenizer.json)", dir);
}

int tok_load(tok **out, const char *path, tok_err *err) {
    struct stat st;
    *out = NULL;
    if (stat(path, &st) != 0)
        return eng_fail(err, TOK_EINVAL, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return tok_load_hf_dir(out, path, err);
    char msg[512];
    gguf_file *f;
    if (gguf_open(&f, path, msg, sizeof msg) != 0) return eng_fail(err, TOK_EFORMAT, "%s", msg);
    int rc = tok_load_gguf(out, f, err);
    gguf_close(f);
    return rc;
}

char *tok_load_chat_template(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return NULL;
    if (S_ISDIR(st.st_mode)) {
        char p[4096];
        snprintf(p, sizeof p, "%s/tokenizer_config.json", path);
        json_t *j = json_load_file(p, 0, NULL);
        const char *t = json_string_value(json_object_get(j, "chat_template"));
        char *out = t ? strdup(t) : NULL;
        json_decref(j);
        return out;
    }
    gguf_file *f;
    char msg[256];
    if (gguf_open(&f, path, msg, sizeof msg) != 0) return NULL;
    const char *t = NULL;
    char *out = NULL;
    if (gguf_get_str(f, "tokenizer.chat_template", &t, NULL, msg, sizeof msg) == 0) out = strdup(t);
    gguf_close(f);
    return out;
}

void tok_special_text(const tok *t, int32_t id, char *buf, size_t len) {
    buf[0] = '\0';
    if (id < 0) return;
    size_t n = 0;
    tok_err e;
    if (tok_decode_piece(t, id, TOK_DEC_SPECIAL, buf, len - 1, &n, &e) == 0) buf[n] = '\0';
    else buf[0] = '\0';
}
