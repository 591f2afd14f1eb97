/* tok_spm_model.c - reads a SentencePiece .model file (a protobuf
 * ModelProto) into the arrays tok_create_spm takes.
 *
 * Wire format, as far as it is needed here (sentencepiece_model.proto):
 *   ModelProto      1: repeated SentencePiece pieces, 2: TrainerSpec,
 *                   3: NormalizerSpec (4, 5: ignored)
 *   SentencePiece   1: string piece, 2: float score, 3: enum type
 *   TrainerSpec     3: model_type, 35: byte_fallback, 40..43: unk/bos/eos/pad id
 *   NormalizerSpec  3: add_dummy_prefix, 4: remove_extra_whitespaces
 * Unknown fields are skipped by wire type; groups (wire types 3, 4) and
 * wire types 6, 7 are rejected. Every read is checked against a cursor of
 * remaining bytes; a length never exceeds what remains, so allocation is
 * bounded by the input size. For a repeated scalar field the last value
 * wins (protobuf's rule).
 */
#include "tok_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tok__pb {
    const unsigned char *p, *end, *base; /* cursor, end of this message, start of the file */
} tok__pb;

static int tok__pb_fail(tok_err *err, const tok__pb *c, const char *what) {
    return tok__err(err, TOK_EFORMAT, "SentencePiece model: offset %zu: %s", (size_t)(c->p - c->base), what);
}

static int tok__pb_varint(tok__pb *c, uint64_t *v, tok_err *err) {
    uint64_t x = 0;
    *v = 0; /* defined on failure too (callers return at once, but -O3 cannot see it) */
    for (int shift = 0; shift < 64; shift += 7) {
        if (c->p >= c->end) return tok__pb_fail(err, c, "truncated varint");
        unsigned char b = *c->p++;
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return TOK_OK;
        }
    }
    return tok__pb_fail(err, c, "varint longer than 10 bytes");
}

/* Reads a tag; *field and *wire out. */
static int tok__pb_tag(tok__pb *c, uint32_t *field, int *wire, tok_err *err) {
    uint64_t k;
    int rc = tok__pb_varint(c, &k, err);
    if (rc) return rc;
    *field = (uint32_t)(k >> 3);
    *wire = (int)(k & 7);
    if (*field == 0 || k >> 3 > 0x1FFFFFFF) return tok__pb_fail(err, c, "invalid field number");
    return TOK_OK;
}

/* Reads a length-delimited payload into *sub (a cursor over it). */
static int tok__pb_bytes(tok__pb *c, tok__pb *sub, tok_err *err) {
    uint64_t len;
    int rc = tok__pb_varint(c, &len, err);
    if (rc) return rc;
    if (len > (uint64_t)(c->end - c->p)) return tok__pb_fail(err, c, "length beyond end of message");
    sub->p = c->p;
    sub->end = c->p + len;
    sub->base = c->base;
    c->p += len;
    return TOK_OK;
}

static int tok__pb_skip(tok__pb *c, int wire, tok_err *err) {
    uint64_t v;
    tok__pb sub;
    switch (wire) {
    case 0: return tok__pb_varint(c, &v, err);
    case 1:
    case 5: {
        size_t n = wire == 1 ? 8 : 4;
        if ((size_t)(c->end - c->p) < n) return tok__pb_fail(err, c, "truncated fixed-size field");
        c->p += n;
        return TOK_OK;
    }
    case 2: return tok__pb_bytes(c, &sub, err);
    default: return tok__pb_fail(err, c, "unsupported wire type (group or reserved)");
    }
}

/* Reads a varint field's value, checking the wire type. */
static int tok__pb_int(tok__pb *c, int wire, const char *name, int64_t *out, tok_err *err) {
    if (wire != 0) {
        char m[96];
        snprintf(m, sizeof m, "field %s has wire type %d, expected varint", name, wire);
        return tok__pb_fail(err, c, m);
    }
    uint64_t v;
    int rc = tok__pb_varint(c, &v, err);
    if (rc) return rc;
    *out = (int64_t)v; /* int32 fields store negatives as 64-bit two's complement */
    return TOK_OK;
}

static int tok__pb_piece(tok_spm_model *m, tok__pb *c, size_t idx, tok_err *err) {
    tok__pb s = {0};
    int have_piece = 0, rc;
    float score = 0.0f;
    int64_t type = TOK_TYPE_NORMAL;
    while (c->p < c->end) {
        uint32_t f;
        int w;
        if ((rc = tok__pb_tag(c, &f, &w, err))) return rc;
        if (f == 1 && w == 2) {
            if ((rc = tok__pb_bytes(c, &s, err))) return rc;
            have_piece = 1;
        } else if (f == 2 && w == 5) {
            if (c->end - c->p < 4) return tok__pb_fail(err, c, "truncated score");
            uint32_t u = (uint32_t)c->p[0] | (uint32_t)c->p[1] << 8 | (uint32_t)c->p[2] << 16 |
                         (uint32_t)c->p[3] << 24;
            memcpy(&score, &u, 4);
            c->p += 4;
        } else if (f == 3) {
            if ((rc = tok__pb_int(c, w, "SentencePiece.type", &type, err))) return rc;
        } else if (f <= 3) {
            char msg[80];
            snprintf(msg, sizeof msg, "piece %zu: field %u has wire type %d", idx, f, w);
            return tok__pb_fail(err, c, msg);
        } else if ((rc = tok__pb_skip(c, w, err))) {
            return rc;
        }
    }
    char msg[96];
    if (type < TOK_TYPE_NORMAL || type > TOK_TYPE_BYTE) {
        snprintf(msg, sizeof msg, "piece %zu: type %lld is not a SentencePiece type (1..6)", idx, (long long)type);
        return tok__pb_fail(err, c, msg);
    }
    if (score != score) {
        snprintf(msg, sizeof msg, "piece %zu: score is NaN", idx);
        return tok__pb_fail(err, c, msg);
    }
    size_t len = have_piece ? (size_t)(s.end - s.p) : 0;
    if (len && memchr(s.p, '\0', len)) {
        snprintf(msg, sizeof msg, "piece %zu: NUL byte in piece string", idx);
        return tok__pb_fail(err, c, msg);
    }
    char *str = malloc(len + 1);
    if (!str) return tok__err(err, TOK_ENOMEM, "SentencePiece model: out of memory for piece %zu", idx);
    if (len) memcpy(str, s.p, len);
    str[len] = '\0';
    m->pieces[idx] = str;
    m->scores[idx] = score;
    m->types[idx] = (int32_t)type;
    return TOK_OK;
}

static int tok__pb_trainer(tok_spm_model *m, tok__pb *c, tok_err *err) {
    int rc;
    while (c->p < c->end) {
        uint32_t f;
        int w;
        int64_t v = 0;
        if ((rc = tok__pb_tag(c, &f, &w, err))) return rc;
        if (f == 3 || f == 35 || (f >= 40 && f <= 43)) {
            if ((rc = tok__pb_int(c, w, "TrainerSpec", &v, err))) return rc;
            int32_t iv = (int32_t)(uint32_t)(uint64_t)v; /* int32 semantics */
            switch (f) {
            case 3: m->model_type = iv; break;
            case 35: m->byte_fallback = v != 0; break;
            case 40: m->unk_id = iv; break;
            case 41: m->bos_id = iv; break;
            case 42: m->eos_id = iv; break;
            default: m->pad_id = iv; break;
            }
        } else if ((rc = tok__pb_skip(c, w, err))) {
            return rc;
        }
    }
    return TOK_OK;
}

static int tok__pb_normalizer(tok_spm_model *m, tok__pb *c, tok_err *err) {
    int rc;
    while (c->p < c->end) {
        uint32_t f;
        int w;
        int64_t v = 0;
        if ((rc = tok__pb_tag(c, &f, &w, err))) return rc;
        if (f == 3 || f == 4) {
            if ((rc = tok__pb_int(c, w, "NormalizerSpec", &v, err))) return rc;
            if (f == 3) m->add_dummy_prefix = v != 0;
            else m->remove_extra_whitespaces = v != 0;
        } else if ((rc = tok__pb_skip(c, w, err))) {
            return rc;
        }
    }
    return TOK_OK;
}

int tok_spm_model_parse(tok_spm_model *m, const void *buf, size_t len, tok_err *err) {
    if (!m) return tok__err(err, TOK_EINVAL, "tok_spm_model_parse: model is NULL");
    memset(m, 0, sizeof *m);
    if (!buf && len) return tok__err(err, TOK_EINVAL, "tok_spm_model_parse: buffer is NULL");
    m->model_type = 1;
    m->unk_id = 0;
    m->bos_id = 1;
    m->eos_id = 2;
    m->pad_id = -1;
    m->add_dummy_prefix = true;
    m->remove_extra_whitespaces = true;

    const unsigned char *b = buf;
    tok__pb c = {b, b + len, b}, sub;
    int rc;
    /* Pass 1: count pieces (each is >= 2 bytes, so count <= len / 2). */
    size_t n = 0;
    while (c.p < c.end) {
        uint32_t f;
        int w;
        if ((rc = tok__pb_tag(&c, &f, &w, err))) goto fail;
        if (f == 1 && w == 2) {
            if ((rc = tok__pb_bytes(&c, &sub, err))) goto fail;
            n++;
        } else if ((rc = tok__pb_skip(&c, w, err))) {
            goto fail;
        }
    }
    if (n == 0) {
        c.p = c.base;
        rc = tok__pb_fail(err, &c, "no pieces");
        goto fail;
    }
    m->pieces = calloc(n, sizeof *m->pieces);
    m->scores = calloc(n, sizeof *m->scores);
    m->types = calloc(n, sizeof *m->types);
    if (!m->pieces || !m->scores || !m->types) {
        rc = tok__err(err, TOK_ENOMEM, "SentencePiece model: out of memory for %zu pieces", n);
        goto fail;
    }
    m->n = n;
    /* Pass 2: fill. */
    c.p = b;
    size_t k = 0;
    while (c.p < c.end) {
        uint32_t f;
        int w;
        if ((rc = tok__pb_tag(&c, &f, &w, err))) goto fail;
        if (f == 1 && w == 2) {
            if ((rc = tok__pb_bytes(&c, &sub, err)) || (rc = tok__pb_piece(m, &sub, k, err))) goto fail;
            k++;
        } else if (f == 2 && w == 2) {
            if ((rc = tok__pb_bytes(&c, &sub, err)) || (rc = tok__pb_trainer(m, &sub, err))) goto fail;
        } else if (f == 3 && w == 2) {
            if ((rc = tok__pb_bytes(&c, &sub, err)) || (rc = tok__pb_normalizer(m, &sub, err))) goto fail;
        } else if (f <= 3) {
            rc = tok__pb_fail(err, &c, "ModelProto field 1..3 is not length-delimited");
            goto fail;
        } else if ((rc = tok__pb_skip(&c, w, err))) {
            goto fail;
        }
    }
    return TOK_OK;
fail:
    tok_spm_model_free(m);
    return rc;
}

int tok_spm_model_load(tok_spm_model *m, const char *path, tok_err *err) {
    if (!m || !path) return tok__err(err, TOK_EINVAL, "tok_spm_model_load: NULL argument");
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "rb");
    if (!f) return tok__err(err, TOK_EIO, "%s: cannot open", path);
    unsigned char *buf = NULL;
    long n;
    int rc;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        rc = tok__err(err, TOK_EIO, "%s: cannot determine size", path);
        goto done;
    }
    buf = malloc(n ? (size_t)n : 1);
    if (!buf) {
        rc = tok__err(err, TOK_ENOMEM, "%s: out of memory for %ld bytes", path, n);
        goto done;
    }
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        rc = tok__err(err, TOK_EIO, "%s: read failed", path);
        goto done;
    }
    rc = tok_spm_model_parse(m, buf, (size_t)n, err);
    if (rc && err) {
        char tmp[sizeof err->msg];
        snprintf(tmp, sizeof tmp, "%.100s: %.150s", path, err->msg);
        memcpy(err->msg, tmp, sizeof tmp);
    }
done:
    free(buf);
    fclose(f);
    return rc;
}

void tok_spm_model_free(tok_spm_model *m) {
    if (!m) return;
    if (m->pieces)
        for (size_t i = 0; i < m->n; i++) free(m->pieces[i]);
    free(m->pieces);
    free(m->scores);
    free(m->types);
    memset(m, 0, sizeof *m);
}
