/* trn_clip_io.c - a training CLIP from and to a transformers CLIPModel
 * folder (trn_clip_load, trn_clip_save in trn_clip.h). The config keys and
 * defaults are those clip_load reads (transformers' CLIPConfig), so a saved
 * folder loads there and a folder clip_load accepts loads here. */
#include "trn_clip.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "atomic_file.h"
#include "hf_dir.h"
#include "safetensors_writer.h"
#include "trn_clip_impl.h"

/* A tokenizer file copied by trn_clip_save is at most this big. */
#define TRN_CLIP__MAX_TOK_FILE (256u << 20)

/* The configuration of the folder d: clip.c's reading (clip_folder_cfg_read),
 * the activations checked against the trainer's list. */
static int trn_clip__read_cfg(const hf_dir *d, trn_clip_cfg *cfg, char *err, size_t errlen)
{
    clip_folder_cfg fc;
    int rc = clip_folder_cfg_read(d, &fc, err, errlen);
    if (rc)
        return rc;
    memset(cfg, 0, sizeof *cfg);
    cfg->hp = fc.hp;
    cfg->eps_text = fc.eps_text;
    cfg->eps_vision = fc.eps_vision;
    const char *key = "text_config.hidden_act", *val = fc.act_text;
    if (!trn_clip_act_parse(fc.act_text, &cfg->act_text)) {
        key = "vision_config.hidden_act", val = fc.act_vision;
        if (!trn_clip_act_parse(fc.act_vision, &cfg->act_vision))
            return 0;
    }
    snprintf(err, errlen, "%s/config.json: %s '%s' is not supported (quick_gelu, gelu, "
             "gelu_new)", hf_dir_path(d), key, val);
    return -ENOTSUP;
}

/* Every tensor of m's table from d, shapes checked. */
static int trn_clip__read_weights(trn_clip *m, const hf_dir *d, char *err, size_t errlen)
{
    const char *dir = hf_dir_path(d);
    for (int i = 0; i < m->n_tensors; i++) {
        const trn_clip__tensor *t = &m->tensors[i];
        const st_tensor *st = hf_dir_find(d, t->name);
        if (!st) {
            snprintf(err, errlen, "%s: tensor '%s' not found", dir, t->name);
            return -ENOENT;
        }
        bool ok = st->n_dims == t->nd;
        for (int k = 0; ok && k < t->nd; k++)
            ok = st->shape[k] == t->shape[k];
        if (!ok) {
            char got[96], want[96];
            st_format_shape(got, sizeof got, st->n_dims, st->shape);
            st_format_shape(want, sizeof want, t->nd, t->shape);
            snprintf(err, errlen, "%s: tensor '%s': shape %s, expected %s", dir, t->name, got,
                     want);
            return -EINVAL;
        }
        float *v = NULL;
        st_error se = {0};
        int rc = st_tensor_to_f32(st, &v, &se);
        if (rc) {
            snprintf(err, errlen, "%s: %s", dir, se.msg);
            return rc;
        }
        memcpy(m->w + t->off, v, t->n * sizeof(float));
        free(v);
    }
    if (!isfinite(expf(m->w[m->logit_scale]))) {
        snprintf(err, errlen, "%s: logit_scale %g is not finite after exp", dir,
                 m->w[m->logit_scale]);
        return -EINVAL;
    }
    return 0;
}

int trn_clip_load(trn_clip **out, const char *dir, char *err, size_t errlen)
{
    *out = NULL;
    hf_dir *d = NULL;
    st_error se = {0};
    int rc = hf_dir_open(&d, dir, &se);
    if (rc) {
        snprintf(err, errlen, "%s", se.msg);
        return rc;
    }
    trn_clip_cfg cfg;
    trn_clip *m = NULL;
    if (!(rc = trn_clip__read_cfg(d, &cfg, err, errlen)) &&
        !(rc = trn_clip_new(&m, &cfg, 0, err, errlen)) &&
        !(rc = trn_clip__read_weights(m, d, err, errlen))) {
        m->cfg.logit_scale_init = m->w[m->logit_scale];
        *out = m;
        m = NULL;
    }
    trn_clip_free(m);
    hf_dir_close(d);
    return rc;
}

/* ---- save ------------------------------------------------------------------------ */

/* mkdir -p. */
static int trn_clip__mkdirs(const char *dir, char *err, size_t errlen)
{
    char p[PATH_MAX];
    if (!dir[0] || strlen(dir) >= sizeof p) {
        snprintf(err, errlen, "clip save: an empty or too long folder path");
        return -EINVAL;
    }
    snprintf(p, sizeof p, "%s", dir);
    for (char *c = p + 1;; c++) {
        bool end = *c == '\0';
        if (*c != '/' && !end)
            continue;
        *c = '\0';
        if (mkdir(p, 0755) && errno != EEXIST) {
            int e = errno;
            snprintf(err, errlen, "%s: %s", p, strerror(e));
            return -e;
        }
        if (end)
            return 0;
        *c = '/';
    }
}

static int trn_clip__path(char *out, const char *dir, const char *name, char *err,
                          size_t errlen)
{
    if ((size_t)snprintf(out, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX) {
        snprintf(err, errlen, "clip save: path too long in %s", dir);
        return -ENAMETOOLONG;
    }
    return 0;
}

/* Writes len bytes to dir/name atomically. */
static int trn_clip__write(const char *dir, const char *name, const void *data, size_t len,
                           char *err, size_t errlen)
{
    char path[PATH_MAX];
    int rc = trn_clip__path(path, dir, name, err, errlen);
    if (rc)
        return rc;
    atomic_file af;
    eng_err e = {0};
    if ((rc = atomic_file_open(&af, path, &e))) {
        snprintf(err, errlen, "%s", e.msg);
        return rc;
    }
    if (len && fwrite(data, 1, len, af.f) != len) {
        atomic_file_abort(&af);
        snprintf(err, errlen, "%s: write failed", path);
        return -EIO;
    }
    if ((rc = atomic_file_commit(&af, &e)))
        snprintf(err, errlen, "%s", e.msg);
    return rc;
}

/* Dumps j (stolen) to dir/name with a final newline. */
static int trn_clip__write_json(const char *dir, const char *name, json_t *j, char *err,
                                size_t errlen)
{
    char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9))
                   : NULL;
    json_decref(j);
    size_t n = text ? strlen(text) : 0;
    char *t2 = text ? realloc(text, n + 2) : NULL;
    if (!t2) {
        free(text);
        snprintf(err, errlen, "clip save: %s: out of memory", name);
        return -ENOMEM;
    }
    memcpy(t2 + n, "\n", 2);
    int rc = trn_clip__write(dir, name, t2, n + 1, err, errlen);
    free(t2);
    return rc;
}

static int trn_clip__write_weights(const trn_clip *m, const char *dir, char *err,
                                   size_t errlen)
{
    char path[PATH_MAX];
    int rc = trn_clip__path(path, dir, "model.safetensors", err, errlen);
    if (rc)
        return rc;
    st_writer *w = NULL;
    if ((rc = st_writer_new(&w))) {
        snprintf(err, errlen, "%s: out of memory", path);
        return rc;
    }
    st_writer_set_metadata(w, "format", "pt"); /* what transformers checks */
    for (int i = 0; i < m->n_tensors; i++) {
        const trn_clip__tensor *t = &m->tensors[i];
        st_writer_add(w, t->name, ST_F32, t->nd, t->shape, m->w + t->off);
    }
    st_error se = {0};
    if ((rc = st_writer_write(w, path, &se))) /* refuses with the first add error, if any */
        snprintf(err, errlen, "%s", se.msg);
    st_writer_free(w);
    return rc;
}

static json_t *trn_clip__floats(const float *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        json_array_append_new(a, json_real(v[i]));
    return a;
}

static int trn_clip__write_preproc(const trn_clip *m, const image_preproc *pp, const char *dir,
                                   char *err, size_t errlen)
{
    image_preproc def;
    if (!pp) {
        image_preproc_default(&def);
        def.shortest_edge = def.crop_h = def.crop_w = m->cfg.hp.image_size;
        pp = &def;
    }
    json_t *j = json_pack("{s:{s:i, s:i}, s:b, s:b, s:b, s:b, s:b, s:o, s:s, s:o, s:i, s:f, "
                          "s:{s:i}}",
                          "crop_size", "height", pp->crop_h, "width", pp->crop_w,
                          "do_center_crop", pp->do_crop, "do_convert_rgb", 1, "do_normalize",
                          pp->do_normalize, "do_rescale", pp->rescale != 1.0f, "do_resize",
                          pp->do_resize, "image_mean", trn_clip__floats(pp->mean, 3),
                          "image_processor_type", "CLIPImageProcessor", "image_std",
                          trn_clip__floats(pp->std, 3), "resample", 3, "rescale_factor",
                          (double)pp->rescale, "size", "shortest_edge", pp->shortest_edge);
    return trn_clip__write_json(dir, "preprocessor_config.json", j, err, errlen);
}

/* Copies the tokenizer files present in src into dir. */
static int trn_clip__copy_tok(const char *src, const char *dir, char *err, size_t errlen)
{
    for (int f = 0; f < HF_TOK_FILE_COUNT; f++) {
        const char *name = hf_tok_file_name((hf_tok_file)f);
        char path[PATH_MAX];
        int rc = trn_clip__path(path, src, name, err, errlen);
        if (rc)
            return rc;
        FILE *in = fopen(path, "rb");
        if (!in) {
            if (errno == ENOENT)
                continue;
            int e = errno;
            snprintf(err, errlen, "%s: %s", path, strerror(e));
            return -e;
        }
        char *buf = NULL;
        long len = -1;
        if (fseek(in, 0, SEEK_END) == 0 && (len = ftell(in)) >= 0 &&
            (unsigned long)len <= TRN_CLIP__MAX_TOK_FILE && fseek(in, 0, SEEK_SET) == 0)
            buf = malloc((size_t)len + 1);
        bool ok = buf && fread(buf, 1, (size_t)len, in) == (size_t)len;
        fclose(in);
        if (!ok) {
            free(buf);
            snprintf(err, errlen, "%s: cannot be read (or larger than %u MiB)", path,
                     TRN_CLIP__MAX_TOK_FILE >> 20);
            return -EIO;
        }
        rc = trn_clip__write(dir, name, buf, (size_t)len, err, errlen);
        free(buf);
        if (rc)
            return rc;
    }
    return 0;
}

static json_t *trn_clip__config_json(const trn_clip *m)
{
    const trn_clip_cfg *c = &m->cfg;
    const clip_hparams *hp = &c->hp;
    json_t *text = json_pack(
        "{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:s, s:f, s:i, s:i}", "model_type",
        "clip_text_model", "hidden_size", hp->text_width, "intermediate_size", hp->text_ff,
        "num_attention_heads", hp->text_heads, "num_hidden_layers", hp->text_layers,
        "max_position_embeddings", hp->text_ctx, "vocab_size", hp->text_vocab, "hidden_act",
        trn_clip_act_name(c->act_text), "layer_norm_eps", (double)c->eps_text, "eos_token_id",
        (int)hp->eot_id, "projection_dim", hp->proj_dim);
    json_t *vision = json_pack(
        "{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:s, s:f, s:i}", "model_type",
        "clip_vision_model", "hidden_size", hp->vision_width, "intermediate_size", hp->vision_ff,
        "num_attention_heads", hp->vision_heads, "num_hidden_layers", hp->vision_layers,
        "image_size", hp->image_size, "patch_size", hp->patch_size, "num_channels", 3,
        "hidden_act", trn_clip_act_name(c->act_vision), "layer_norm_eps", (double)c->eps_vision,
        "projection_dim", hp->proj_dim);
    return json_pack("{s:[s], s:s, s:f, s:f, s:i, s:s, s:o, s:o}", "architectures", "CLIPModel",
                     "model_type", "clip", "initializer_factor", 1.0,
                     "logit_scale_init_value", (double)c->logit_scale_init, "projection_dim",
                     hp->proj_dim, "torch_dtype", "float32", "text_config", text,
                     "vision_config", vision);
}

int trn_clip_save(const trn_clip *m, const char *dir, const trn_clip_save_opts *opts,
                  char *err, size_t errlen)
{
    int rc = trn_clip__mkdirs(dir, err, errlen);
    if (rc || (rc = trn_clip__write_weights(m, dir, err, errlen)) ||
        (rc = trn_clip__write_preproc(m, opts ? opts->preproc : NULL, dir, err, errlen)) ||
        (opts && opts->tok_dir && (rc = trn_clip__copy_tok(opts->tok_dir, dir, err, errlen))))
        return rc;
    /* the config last: a folder with a config is complete */
    return trn_clip__write_json(dir, "config.json", trn_clip__config_json(m), err, errlen);
}
