/* tok_spm.c - llama SentencePiece-BPE, as llama.cpp's llm_tokenizer_spm
 * runs it on a GGUF vocabulary (tokens, scores, token types).
 *
 * Encoding one fragment of text (special tokens already split off by tok.c):
 *  1. Every ASCII space becomes U+2581 "▁"; with add_space_prefix a "▁" is
 *     put in front of the fragment when it starts the text or follows a
 *     special token (llama.cpp's rule; Hugging Face's legacy=False adds it at
 *     the start only). No other normalization (SentencePiece's NFKC is not
 *     applied, as in llama.cpp).
 *  2. The fragment is split into UTF-8 characters. A byte that does not
 *     start a valid character is a symbol of its own (maximal subpart rule;
 *     llama.cpp instead takes the length its lead byte announces).
 *  3. Repeatedly the adjacent pair whose concatenation is a vocabulary
 *     string with the highest score is merged (ties: leftmost), with a heap
 *     of candidates over a linked list of symbols.
 *  4. Each final symbol becomes its token; a symbol without one becomes its
 *     bytes' <0xNN> tokens (byte fallback) when the vocabulary has all of
 *     them, otherwise one unk token (or nothing when there is no unk).
 *
 * Decoding (tok.c): "▁" -> " ", <0xNN> BYTE tokens -> byte NN, and
 * tok_decode strips the dummy-prefix space of the first piece after BOS.
 */
#include "tok_impl.h"

#include <stdlib.h>
#include <string.h>

#include "tok_utf8.h"

static const char tok__spm_space[] = "\xE2\x96\x81"; /* U+2581 */

/* Parses "<0xNN>" (exactly, upper- or lower-case hex); returns the byte or -1. */
static int tok__spm_byte_token(const char *s, size_t len) {
    if (len != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    int v = 0;
    for (int k = 3; k < 5; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
                : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

int tok_create_spm(tok **out, const char *const *tokens, const float *scores,
                   const int32_t *types, size_t n_tokens, const tok_options *opt, tok_err *err) {
    if (!out) return tok__err(err, TOK_EINVAL, "tok_create_spm: out is NULL");
    *out = NULL;
    if (!scores) return tok__err(err, TOK_EINVAL, "tok_create_spm: scores is NULL");
    tok *t;
    int rc = tok__create_base(&t, TOK_KIND_SPM, tokens, n_tokens, opt, err);
    if (rc) return rc;

    for (size_t i = 0; i < t->n; i++) {
        if (scores[i] != scores[i]) {
            rc = tok__err(err, TOK_EINVAL, "token %zu (\"%.40s\"): score is NaN", i, t->text[i]);
            goto fail;
        }
        t->score[i] = scores[i];
    }
    if (types) {
        for (size_t i = 0; i < t->n; i++) {
            if (types[i] < 0 || types[i] > TOK_TYPE_BYTE) {
                rc = tok__err(err, TOK_EINVAL, "token %zu (\"%.40s\"): type %ld is not a token type (0..6)",
                              i, t->text[i], (long)types[i]);
                goto fail;
            }
            t->type[i] = (int8_t)(types[i] == TOK_TYPE_UNDEFINED ? TOK_TYPE_NORMAL : types[i]);
        }
        /* unk AUTO: the first UNKNOWN token, if any, wins over "<unk>". */
        if (!opt || opt->unk_id == TOK_ID_AUTO)
            for (size_t i = 0; i < t->n; i++)
                if (t->type[i] == TOK_TYPE_UNKNOWN) {
                    t->unk = (int32_t)i;
                    break;
                }
    } else {
        for (size_t i = 0; i < t->n; i++)
            if (tok__spm_byte_token(t->text[i], t->text_len[i]) >= 0) t->type[i] = TOK_TYPE_BYTE;
        if (t->unk >= 0) t->type[t->unk] = TOK_TYPE_UNKNOWN;
        int32_t sp[3] = {t->bos, t->eos, t->pad};
        for (int k = 0; k < 3; k++)
            if (sp[k] >= 0) t->type[sp[k]] = TOK_TYPE_CONTROL;
    }

    /* Pieces: "▁" -> " " for NORMAL/UNUSED, the byte for BYTE tokens;
     * USER_DEFINED, CONTROL and UNKNOWN keep their text. */
    for (size_t i = 0; i < t->n; i++) {
        int ty = t->type[i];
        const char *s = t->text[i];
        size_t len = t->text_len[i];
        if (ty == TOK_TYPE_BYTE) {
            int b = tok__spm_byte_token(s, len);
            if (b >= 0) {
                char *p = tok__piece_space(t, 1);
                p[0] = (char)b;
                t->piece[i] = p;
                t->piece_len[i] = 1;
            }
            continue;
        }
        if (ty != TOK_TYPE_NORMAL && ty != TOK_TYPE_UNUSED) continue;
        if (!memmem(s, len, tok__spm_space, 3)) continue;
        char *p = tok__piece_space(t, len), *w = p;
        for (size_t k = 0; k < len;) {
            if (k + 3 <= len && memcmp(s + k, tok__spm_space, 3) == 0) {
                *w++ = ' ';
                k += 3;
            } else {
                *w++ = s[k++];
            }
        }
        t->piece[i] = p;
        t->piece_len[i] = (uint32_t)(w - p);
    }
    /* Byte fallback tokens, looked up by text like llama.cpp does. */
    for (int b = 0; b < 256; b++) {
        static const char hex[] = "0123456789ABCDEF";
        char name[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        t->byte_id[b] = tok__map_find(t, name, 6);
    }
    if ((rc = tok__finish(t, err))) goto fail;
    *out = t;
    return TOK_OK;
fail:
    tok_free(t);
    return rc;
}

int tok_create_spm_from_model(tok **out, const tok_spm_model *m, const tok_options *opt,
                              tok_err *err) {
    if (!out || !m) return tok__err(err, TOK_EINVAL, "tok_create_spm_from_model: NULL argument");
    *out = NULL;
    if (m->model_type != 2)
        return tok__err(err, TOK_EINVAL, "SentencePiece model: model_type %d is not BPE (2); "
                        "only SentencePiece-BPE is supported", m->model_type);
    tok_options o;
    if (opt) o = *opt;
    else tok_options_init(&o, TOK_KIND_SPM);
    int32_t ids[4] = {m->unk_id, m->bos_id, m->eos_id, m->pad_id};
    int32_t *dst[4] = {&o.unk_id, &o.bos_id, &o.eos_id, &o.pad_id};
    for (int k = 0; k < 4; k++) {
        if (*dst[k] != TOK_ID_AUTO && !(k == 3 && !opt)) continue;
        *dst[k] = ids[k] >= 0 && (size_t)ids[k] < m->n ? ids[k] : TOK_ID_NONE;
    }
    if (!opt) o.add_space_prefix = m->add_dummy_prefix;
    return tok_create_spm(out, (const char *const *)m->pieces, m->scores, m->types, m->n, &o, err);
}

/* ---- encoding --------------------------------------------------------------- */

static int tok__spm_try_pair(const tok *t, tok__scratch *sc, int32_t l, int32_t r, const uint32_t *off) {
    if (l < 0 || r < 0) return TOK_OK;
    const tok__sym *a = &sc->sym[l], *b = &sc->sym[r];
    int32_t id = tok__map_find(t, sc->buf + off[l], a->len + b->len);
    if (id < 0) return TOK_OK;
    tok__cand c = {-(double)t->score[id], (uint32_t)l, (uint32_t)r, a->len + b->len, id};
    return tok__heap_push(&sc->heap, c);
}

int tok__spm_encode(const tok *t, const char *s, size_t len, bool prefix_space, tok__sink *sink,
                    tok__scratch *sc, tok_err *err) {
    /* Escaped text: at most 3 bytes per input byte, plus the prefix. */
    if (len > (SIZE_MAX - 3) / 3) return tok__err(err, TOK_EINVAL, "tok_encode: text too long");
    size_t cap = 3 * len + 3;
    int rc = tok__scratch_buf(sc, cap);
    if (rc) goto nomem;
    char *buf = sc->buf;
    size_t bl = 0;
    if (prefix_space) {
        memcpy(buf, tok__spm_space, 3);
        bl = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ') {
            memcpy(buf + bl, tok__spm_space, 3);
            bl += 3;
        } else {
            buf[bl++] = s[i];
        }
    }
    if (bl == 0) return TOK_OK;
    if (bl > INT32_MAX) return tok__err(err, TOK_EINVAL, "tok_encode: text too long");

    /* Symbols: one per character (or invalid byte run of one subpart);
     * off[] (kept after the symbols in the same allocation) is where each
     * starts in buf. */
    size_t need = bl + (bl * sizeof(uint32_t) + sizeof(tok__sym) - 1) / sizeof(tok__sym);
    if ((rc = tok__scratch_syms(sc, need))) goto nomem;
    tok__sym *sym = sc->sym;
    uint32_t *off = (uint32_t *)(sym + bl);
    int32_t ns = 0;
    for (size_t i = 0; i < bl;) {
        size_t l = tok_utf8_decode(buf + i, bl - i, NULL);
        if (l == 0) l = tok_utf8_invalid_len(buf + i, bl - i);
        off[ns] = (uint32_t)i;
        sym[ns] = (tok__sym){tok__map_find(t, buf + i, l), (uint32_t)l, ns - 1, -1};
        if (ns > 0) sym[ns - 1].next = ns;
        ns++;
        i += l;
    }
    sc->heap.n = 0;
    for (int32_t k = 0; k + 1 < ns; k++)
        if ((rc = tok__spm_try_pair(t, sc, k, k + 1, off))) goto nomem;
    tok__cand c;
    while (tok__heap_pop(&sc->heap, &c)) {
        tok__sym *a = &sym[c.left], *b = &sym[c.right];
        if (a->len == 0 || b->len == 0 || a->next != (int32_t)c.right || a->len + b->len != c.len)
            continue; /* stale */
        a->id = c.id;
        a->len += b->len;
        a->next = b->next;
        if (b->next >= 0) sym[b->next].prev = (int32_t)c.left;
        b->len = 0;
        if ((rc = tok__spm_try_pair(t, sc, a->prev, (int32_t)c.left, off)) ||
            (rc = tok__spm_try_pair(t, sc, (int32_t)c.left, a->next, off)))
            goto nomem;
    }
    for (int32_t k = 0; k >= 0; k = sym[k].next) {
        if (sym[k].id >= 0) {
            tok__emit(sink, sym[k].id);
            continue;
        }
        const unsigned char *p = (const unsigned char *)buf + off[k];
        bool all = true;
        for (uint32_t j = 0; j < sym[k].len; j++) all = all && t->byte_id[p[j]] >= 0;
        if (all)
            for (uint32_t j = 0; j < sym[k].len; j++) tok__emit(sink, t->byte_id[p[j]]);
        else if (t->unk >= 0)
            tok__emit(sink, t->unk);
    }
    return TOK_OK;
nomem:
    return tok__err(err, TOK_ENOMEM, "tok_encode: out of memory for %zu bytes of text", len);
}
