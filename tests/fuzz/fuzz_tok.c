/* fuzz_tok.c - libFuzzer target for the tokenizers (engine/tok*.c).
 *
 * The first input byte picks what the rest is:
 *   0: text for a built-in byte-level BPE; decode must give the bytes back
 *      exactly, and streaming the pieces must give valid UTF-8 equal to the
 *      one-shot replacement of the input.
 *   1: text for a built-in SentencePiece-BPE with byte fallback; decode
 *      gives the bytes back unless the text holds U+2581 or "<user>"
 *      (a user-defined token, after which a dummy prefix is added).
 *   2: a SentencePiece .model file: parse, and when it parses build a
 *      tokenizer and encode some text and the input itself.
 *   3: a vocabulary for tok_create_bpe: lines with a space are merges, the
 *      others tokens; when it builds, encode and decode the input.
 *   4: text for a built-in uncased WordPiece (BERT); ids in range, [CLS] and
 *      [SEP] around with TOK_ENC_ADD_SPECIAL, no special ids from plain text,
 *      decode is valid UTF-8, and re-encoding the decoded text gives the same
 *      ids when no [UNK] came out.
 *   5: a vocabulary for tok_create_wordpiece (one token per line, "[UNK]"
 *      appended); when it builds, encode and decode the input, cased and
 *      uncased.
 *   6: text for a built-in CLIP BPE (issue "CLIP"); ids in range,
 *      <|startoftext|> ... <|endoftext|> with TOK_ENC_ADD_SPECIAL, no special
 *      ids from plain text, decode is valid UTF-8 with no leading/trailing
 *      space, and for ASCII input re-encoding the decoded text gives the
 *      same ids.
 * The second byte holds encode flags. Any crash, sanitizer report, leak or
 * failed check (abort) is a finding.
 *
 * Build by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iengine \
 *     engine/tok*.c engine/gguf*.c engine/eng_err.c tests/fuzz/fuzz_tok.c -o /tmp/fuzz_tok \
 *     -lpcre2-8 -lutf8proc -ljansson -lm
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"
#include "tok_utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "fuzz_tok: check failed: %s (line %d)\n", #c, __LINE__); \
            abort();                                                          \
        }                                                                     \
    } while (0)

static tok *g_bpe, *g_spm, *g_wp, *g_clip;

#define SP "\xE2\x96\x81"

static tok *make_bpe(void) {
    static char bytes[256][5];
    const char *v[256 + 16];
    uint32_t extra = 0;
    for (uint32_t b = 0; b < 256; b++) {
        int self = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        size_t l = tok_utf8_encode(self ? b : 256 + extra++, bytes[b]);
        bytes[b][l] = '\0';
        v[b] = bytes[b];
    }
    const char *more[] = {"\xC4\xA0t", "he", "\xC4\xA0the", "in", "er", "an", ("\xC4\xA0" "a"),
                          "\xC4\xA0\xC4\xA0", "<|endoftext|>", "<|u|>", "\xC3\xA4\xC2\xB8", "aa"};
    const char *merges[] = {"\xC4\xA0 t", "h e", "\xC4\xA0t he", "i n", "e r", "a n", "\xC4\xA0 a",
                            "\xC4\xA0 \xC4\xA0", "\xC3\xA4 \xC2\xB8", "a a"};
    size_t n = 256 + sizeof more / sizeof *more;
    int32_t types[256 + 16];
    for (size_t i = 0; i < n; i++) {
        if (i >= 256) v[i] = more[i - 256];
        types[i] = TOK_TYPE_NORMAL;
    }
    types[256 + 8] = TOK_TYPE_CONTROL;
    types[256 + 9] = TOK_TYPE_USER_DEFINED;
    tok_options o;
    tok_options_init(&o, TOK_KIND_BPE);
    tok *t = NULL;
    tok_err err;
    if (tok_create_bpe(&t, v, n, merges, sizeof merges / sizeof *merges, types, &o, &err)) {
        fprintf(stderr, "fuzz_tok: built-in BPE: %s\n", err.msg);
        abort();
    }
    return t;
}

static tok *make_spm(void) {
    static char bytes[256][7];
    const char *v[3 + 256 + 40];
    float sc[3 + 256 + 40];
    int32_t ty[3 + 256 + 40];
    size_t n = 0;
    v[n] = "<unk>", ty[n] = TOK_TYPE_UNKNOWN, sc[n++] = 0;
    v[n] = "<s>", ty[n] = TOK_TYPE_CONTROL, sc[n++] = 0;
    v[n] = "</s>", ty[n] = TOK_TYPE_CONTROL, sc[n++] = 0;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        v[n] = bytes[b], ty[n] = TOK_TYPE_BYTE, sc[n++] = 0;
    }
    const char *more[] = {SP, "a", "e", "h", "t", "n", "i", "r", SP "t", "he", SP "the", "in", "er", "an",
                          SP "a", "aa", "\xE4\xB8\xAD", "\xE6\x96\x87", "\xE4\xB8\xAD\xE6\x96\x87", SP SP,
                          "<user>", "x"};
    for (size_t i = 0; i < sizeof more / sizeof *more; i++) {
        v[n] = more[i];
        ty[n] = strcmp(more[i], "<user>") == 0 ? TOK_TYPE_USER_DEFINED : TOK_TYPE_NORMAL;
        sc[n++] = -(float)i;
    }
    tok *t = NULL;
    tok_err err;
    if (tok_create_spm(&t, v, sc, ty, n, NULL, &err)) {
        fprintf(stderr, "fuzz_tok: built-in SPM: %s\n", err.msg);
        abort();
    }
    return t;
}

static tok *make_wp(void) {
    const char *v[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "##s", "##e", "a", "##a",
                       "un", "##aff", "##able", ",", ".", "!", "[", "]", "#", "##", "###",
                       "\xE4\xB8\xAD", "##\xE4\xB8\xAD", "\xCF\x82", "\xCF\x83", "##\xCF\x82",
                       "e", "i", "##i", "\xE1\x84\x92", "##\xE1\x85\xA1", "##\xE1\x86\xAB"};
    tok *t = NULL;
    tok_err err;
    if (tok_create_wordpiece(&t, v, sizeof v / sizeof *v, NULL, NULL, NULL, &err)) {
        fprintf(stderr, "fuzz_tok: built-in WordPiece: %s\n", err.msg);
        abort();
    }
    return t;
}

/* Every byte token and its "</w>" form, a few merges, the two specials. */
static tok *make_clip(void) {
    static char bytes[512][12];
    const char *v[512 + 16];
    uint32_t extra = 0;
    for (uint32_t b = 0; b < 256; b++) {
        int self = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        size_t l = tok_utf8_encode(self ? b : 256 + extra++, bytes[b]);
        bytes[b][l] = '\0';
        memcpy(bytes[256 + b], bytes[b], l);
        memcpy(bytes[256 + b] + l, "</w>", 5);
        v[b] = bytes[b];
        v[256 + b] = bytes[256 + b];
    }
    const char *more[] = {"th", "the</w>", "in", "ing</w>", "er</w>", "an", "a</w>", "'s</w>",
                          "<|startoftext|>", "<|endoftext|>"};
    const char *merges[] = {"t h", "th e</w>", "i n", "in g</w>", "e r</w>", "a n", "' s</w>"};
    size_t n = 512;
    for (size_t i = 0; i < sizeof more / sizeof *more; i++) v[n++] = more[i];
    tok *t = NULL;
    tok_err err;
    if (tok_create_clip(&t, v, n, merges, sizeof merges / sizeof *merges, NULL, NULL, &err)) {
        fprintf(stderr, "fuzz_tok: built-in CLIP: %s\n", err.msg);
        abort();
    }
    return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_bpe = make_bpe();
    g_spm = make_spm();
    g_wp = make_wp();
    g_clip = make_clip();
    return 0;
}

/* Encodes s (flags), returning malloc'd ids, or NULL on allocation failure. */
static int32_t *encode(const tok *t, const char *s, size_t len, unsigned flags, size_t *n) {
    size_t need = 0;
    int rc = tok_encode(t, s, len, flags, NULL, 0, &need, NULL);
    CHECK(rc == TOK_OK || rc == TOK_ESPACE);
    int32_t *ids = malloc((need + 1) * sizeof *ids);
    if (!ids) return NULL;
    rc = tok_encode(t, s, len, flags, ids, need, n, NULL);
    CHECK(rc == TOK_OK && *n == need);
    return ids;
}

static char *decode(const tok *t, const int32_t *ids, size_t n, unsigned flags, size_t *len) {
    size_t need = 0;
    int rc = tok_decode(t, ids, n, flags, NULL, 0, &need, NULL);
    CHECK(rc == TOK_OK || rc == TOK_ESPACE);
    char *buf = malloc(need + 1);
    if (!buf) return NULL;
    CHECK(tok_decode(t, ids, n, flags, buf, need, len, NULL) == TOK_OK && *len == need);
    return buf;
}

/* Streams the pieces of ids and checks the output against the one-shot
 * replacement of `want` (the bytes the pieces add up to). */
static void check_stream(const tok *t, const int32_t *ids, size_t n, const char *want, size_t wlen) {
    tok_stream st;
    tok_stream_init(&st);
    size_t cap = TOK_STREAM_OUT_MAX(wlen) + 64, w = 0;
    char *out = malloc(cap), piece[256];
    if (!out) return;
    for (size_t i = 0; i < n; i++) {
        size_t pl;
        int rc = tok_decode_piece(t, ids[i], TOK_DEC_SPECIAL, piece, sizeof piece, &pl, NULL);
        CHECK(rc == TOK_OK);
        long k = tok_stream_feed(&st, piece, pl, out + w, cap - w);
        CHECK(k >= 0 && tok_utf8_is_valid(out + w, (size_t)k));
        w += (size_t)k;
    }
    long k = tok_stream_flush(&st, out + w, cap - w);
    CHECK(k >= 0);
    w += (size_t)k;
    /* one shot */
    tok_stream_init(&st);
    char *one = malloc(TOK_STREAM_OUT_MAX(wlen) + 3);
    if (one) {
        long a = tok_stream_feed(&st, want, wlen, one, TOK_STREAM_OUT_MAX(wlen));
        CHECK(a >= 0);
        long b = tok_stream_flush(&st, one + a, 3);
        CHECK(b >= 0);
        CHECK((size_t)(a + b) == w && memcmp(one, out, w) == 0);
        free(one);
    }
    free(out);
}

static void fuzz_bpe_text(const char *s, size_t len, unsigned flags) {
    size_t n, dl;
    int32_t *ids = encode(g_bpe, s, len, flags, &n);
    if (!ids) return;
    char *back = decode(g_bpe, ids, n, TOK_DEC_SPECIAL, &dl);
    if (back) {
        CHECK(dl == len && (len == 0 || memcmp(back, s, len) == 0));
        free(back);
    }
    check_stream(g_bpe, ids, n, s, len);
    free(ids);
}

static void fuzz_spm_text(const char *s, size_t len, unsigned flags) {
    size_t n, dl;
    int32_t *ids = encode(g_spm, s, len, flags, &n);
    if (!ids) return;
    for (size_t i = 0; i < n; i++) CHECK(ids[i] >= 0 && (size_t)ids[i] < tok_n_vocab(g_spm));
    char *back = decode(g_spm, ids, n, 0, &dl);
    if (back) {
        int exact = !(flags & TOK_ENC_PARSE_SPECIAL) && !memmem(s, len, SP, 3) && !memmem(s, len, "<user>", 6);
        if (exact) CHECK(dl == len && (len == 0 || memcmp(back, s, len) == 0));
        free(back);
    }
    free(ids);
}

static void fuzz_model(const uint8_t *d, size_t len, unsigned flags) {
    tok_spm_model m;
    tok_err err;
    int rc = tok_spm_model_parse(&m, d, len, &err);
    CHECK(rc == TOK_OK || rc == TOK_EFORMAT || rc == TOK_ENOMEM);
    if (rc) return;
    tok *t = NULL;
    if (tok_create_spm_from_model(&t, &m, NULL, &err) == TOK_OK) {
        size_t n;
        int32_t *ids = encode(t, "Hello wor\xC3\xA9ld <s> \xF0\x9F\x98\x80", 22, flags, &n);
        free(ids);
        ids = encode(t, (const char *)d, len, flags, &n);
        if (ids) {
            size_t dl;
            free(decode(t, ids, n, TOK_DEC_SPECIAL, &dl));
            free(ids);
        }
        tok_free(t);
    }
    tok_spm_model_free(&m);
}

static void fuzz_vocab(const uint8_t *d, size_t len, unsigned flags) {
    char *buf = malloc(len + 1);
    if (!buf) return;
    memcpy(buf, d, len);
    buf[len] = '\0';
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += buf[i] == '\n';
    const char **toks = calloc(lines, sizeof *toks), **merges = calloc(lines, sizeof *merges);
    size_t nt = 0, nm = 0;
    if (!toks || !merges) goto out;
    char *p = buf;
    for (;;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        if (strchr(p, ' ')) merges[nm++] = p;
        else toks[nt++] = p;
        if (!nl) break;
        p = nl + 1;
    }
    tok *t = NULL;
    tok_err err;
    int rc = tok_create_bpe(&t, toks, nt, merges, nm, NULL, NULL, &err);
    if (rc == TOK_OK) {
        size_t n, dl;
        int32_t *ids = encode(t, (const char *)d, len, flags, &n);
        if (ids) {
            free(decode(t, ids, n, TOK_DEC_SPECIAL, &dl));
            free(ids);
        }
        tok_free(t);
    }
out:
    free(toks);
    free(merges);
    free(buf);
}

static void fuzz_wp_text(const char *s, size_t len, unsigned flags) {
    size_t n, dl;
    int32_t *ids = encode(g_wp, s, len, flags, &n);
    if (!ids) return;
    bool unk = false;
    size_t from = 0, to = n;
    if (flags & TOK_ENC_ADD_SPECIAL) {
        CHECK(n >= 2 && ids[0] == tok_bos(g_wp) && ids[n - 1] == tok_eos(g_wp));
        from = 1, to = n - 1;
    }
    for (size_t i = 0; i < n; i++) {
        CHECK(ids[i] >= 0 && (size_t)ids[i] < tok_n_vocab(g_wp));
        unk |= ids[i] == tok_unk(g_wp);
        if (!(flags & TOK_ENC_PARSE_SPECIAL) && i >= from && i < to)
            CHECK(tok_token_type(g_wp, ids[i]) == TOK_TYPE_NORMAL || ids[i] == tok_unk(g_wp));
    }
    char *back = decode(g_wp, ids + from, to - from, 0, &dl);
    if (back) {
        CHECK(tok_utf8_is_valid(back, dl));
        if (!unk && !(flags & TOK_ENC_PARSE_SPECIAL) && (dl < 2 || memcmp(back, "##", 2) != 0)) {
            size_t n2;
            int32_t *again = encode(g_wp, back, dl, 0, &n2);
            if (again) {
                CHECK(n2 == to - from && (n2 == 0 || memcmp(again, ids + from, n2 * sizeof *ids) == 0));
                free(again);
            }
        }
        free(back);
    }
    free(ids);
}

static void fuzz_wp_vocab(const uint8_t *d, size_t len, unsigned flags) {
    char *buf = malloc(len + 1);
    if (!buf) return;
    memcpy(buf, d, len);
    buf[len] = '\0';
    size_t lines = 2;
    for (size_t i = 0; i < len; i++) lines += buf[i] == '\n';
    const char **toks = calloc(lines, sizeof *toks);
    size_t nt = 0;
    if (!toks) goto out;
    for (char *p = buf;;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        toks[nt++] = p;
        if (!nl) break;
        p = nl + 1;
    }
    toks[nt++] = "[UNK]";
    for (int cased = 0; cased < 2; cased++) {
        tok_wordpiece_options wo;
        tok_wordpiece_options_init(&wo);
        wo.lowercase = !cased;
        tok *t = NULL;
        tok_err err;
        if (tok_create_wordpiece(&t, toks, nt, NULL, NULL, &wo, &err) != TOK_OK) continue;
        size_t n, dl;
        int32_t *ids = encode(t, (const char *)d, len, flags, &n);
        if (ids) {
            free(decode(t, ids, n, TOK_DEC_SPECIAL, &dl));
            free(ids);
        }
        tok_free(t);
    }
out:
    free(toks);
    free(buf);
}

static void fuzz_clip_text(const char *s, size_t len, unsigned flags) {
    size_t n, dl;
    int32_t *ids = encode(g_clip, s, len, flags, &n);
    if (!ids) return;
    size_t from = 0, to = n;
    if (flags & TOK_ENC_ADD_SPECIAL) {
        CHECK(n >= 2 && ids[0] == tok_bos(g_clip) && ids[n - 1] == tok_eos(g_clip));
        from = 1, to = n - 1;
    }
    for (size_t i = 0; i < n; i++) {
        CHECK(ids[i] >= 0 && (size_t)ids[i] < tok_n_vocab(g_clip));
        if (!(flags & TOK_ENC_PARSE_SPECIAL) && i >= from && i < to)
            CHECK(tok_token_type(g_clip, ids[i]) == TOK_TYPE_NORMAL);
    }
    char *back = decode(g_clip, ids + from, to - from, 0, &dl);
    if (back) {
        CHECK(tok_utf8_is_valid(back, dl));
        CHECK(dl == 0 || (back[0] != ' ' && back[dl - 1] != ' '));
        bool ascii = !(flags & TOK_ENC_PARSE_SPECIAL);
        for (size_t i = 0; i < len && ascii; i++) ascii = (unsigned char)s[i] < 0x80;
        if (ascii) {
            size_t n2;
            int32_t *again = encode(g_clip, back, dl, 0, &n2);
            if (again) {
                CHECK(n2 == to - from && (n2 == 0 || memcmp(again, ids + from, n2 * sizeof *ids) == 0));
                free(again);
            }
        }
        free(back);
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_bpe) LLVMFuzzerInitialize(NULL, NULL);
    if (size < 2) return 0;
    unsigned mode = data[0] % 7, flags = data[1] & 3u;
    const uint8_t *d = data + 2;
    size_t len = size - 2;
    switch (mode) {
    case 0: fuzz_bpe_text((const char *)d, len, flags); break;
    case 1: fuzz_spm_text((const char *)d, len, flags); break;
    case 2: fuzz_model(d, len, flags); break;
    case 3: fuzz_vocab(d, len, flags); break;
    case 4: fuzz_wp_text((const char *)d, len, flags); break;
    case 5: fuzz_wp_vocab(d, len, flags); break;
    default: fuzz_clip_text((const char *)d, len, flags); break;
    }
    return 0;
}
