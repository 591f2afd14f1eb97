/* gguf_quantize.c - a GGUF with quantized weight matrices (gguf_quantize.h). */
#include "gguf_quantize.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "gguf_writer.h"
#include "weights.h"

/* ggml's llama_ftype numbers */
#define GGUF_QUANTIZE__FTYPE_Q4_0 2
#define GGUF_QUANTIZE__FTYPE_Q8_0 7

static int gguf_quantize__meta(gguf_writer *w, const gguf_file *f, qm_type type)
{
    for (size_t i = 0; i < gguf_n_kv(f); i++) {
        const char *k = gguf_kv_key(f, i);
        /* the writer sets the alignment itself; the file type is new */
        if (!strcmp(k, "general.alignment") || !strcmp(k, "general.file_type"))
            continue;
        int rc = gguf_writer_copy_kv(w, f, k);
        if (rc)
            return rc;
    }
    return gguf_writer_set_u32(w, "general.file_type", type == QM_Q8_0
                                                           ? GGUF_QUANTIZE__FTYPE_Q8_0
                                                           : GGUF_QUANTIZE__FTYPE_Q4_0);
}

/* Adds tensor t, converted to F32 into *buf (kept until the write). */
static int gguf_quantize__tensor(gguf_writer *w, const gguf_tensor *t, qm_type type,
                                 float **buf, gguf_quantize_stats *st, char *err, size_t errlen)
{
    wt_view v;
    int rc = wt_view_gguf(&v, t, err, errlen);
    if (rc)
        return rc;
    if ((size_t)v.n_elements > SIZE_MAX / sizeof(float) ||
        !(*buf = malloc((size_t)v.n_elements * sizeof(float)))) {
        snprintf(err, errlen, "tensor %s: out of memory", t->name);
        return -ENOMEM;
    }
    wt_convert(*buf, &v, 0);
    bool q = v.n_dims == 2 && v.shape[1] % QM_BLOCK == 0;
    gguf_writer_type wt = q ? (type == QM_Q8_0 ? GGUF_WRITER_Q8_0 : GGUF_WRITER_Q4_0)
                            : (v.type == WT_F16 ? GGUF_WRITER_F16 : GGUF_WRITER_F32);
    st->quantized += q;
    size_t rows = (size_t)(v.n_elements / v.shape[v.n_dims - 1]);
    st->bytes_out += q ? rows * qm_row_bytes(type, (int)v.shape[1])
                       : (size_t)v.n_elements * (wt == GGUF_WRITER_F16 ? 2 : 4);
    return gguf_writer_add_tensor(w, t->name, v.n_dims, v.shape, wt, *buf);
}

int gguf_quantize(const char *in_path, const char *out_path, qm_type type,
                  void (*progress)(void *ctx, int done, int total, const char *name), void *ctx,
                  gguf_quantize_stats *st, char *err, size_t errlen)
{
    memset(st, 0, sizeof(*st));
    if (type != QM_Q8_0 && type != QM_Q4_0) {
        snprintf(err, errlen, "quantize: the type must be q8_0 or q4_0");
        return -EINVAL;
    }
    gguf_file *f = NULL;
    gguf_writer *w = NULL;
    int rc = gguf_open(&f, in_path, err, errlen);
    if (rc)
        return rc;
    size_t n = gguf_n_tensors(f);
    float **bufs = calloc(n ? n : 1, sizeof(*bufs));
    if (!bufs || (rc = gguf_writer_new(&w))) {
        snprintf(err, errlen, "quantize: out of memory");
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = gguf_quantize__meta(w, f, type))) {
        snprintf(err, errlen, "%s: %s", in_path, gguf_writer_error(w));
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        char msg[512] = "";
        if ((rc = gguf_quantize__tensor(w, t, type, &bufs[i], st, msg, sizeof msg))) {
            snprintf(err, errlen, "%s: %s", in_path, msg[0] ? msg : gguf_writer_error(w));
            goto out;
        }
        st->bytes_in += t->nbytes;
        if (progress)
            progress(ctx, (int)i + 1, (int)n, t->name);
    }
    st->tensors = (int)n;
    if ((rc = gguf_writer_write(w, out_path, err, errlen)))
        goto out;
out:
    for (size_t i = 0; bufs && i < n; i++)
        free(bufs[i]);
    free(bufs);
    gguf_writer_free(w);
    gguf_close(f);
    return rc;
}
