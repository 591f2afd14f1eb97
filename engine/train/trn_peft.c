/* trn_peft.c - LoRA adapters to and from Hugging Face PEFT folders
 * (trn_peft.h): the module table, adapter_config.json both ways, the GGUF
 * row permutation of q/k, and the safetensors tensors. */
#include "trn_peft.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"
#include "safetensors_writer.h"

/* ---- the module table ---------------------------------------------------- */

/* Each target alignd can express as a PEFT module: its module path below
 * the layer and the entry written to target_modules (the shortest suffix
 * that names it alone; gpt2's two c_proj need their parent). */
typedef struct trn_peft__module {
    model_arch_id arch;
    trn_lora_target target;
    const char *path;
    const char *entry;
} trn_peft__module;

static const trn_peft__module trn_peft__modules[] = {
    {MODEL_ARCH_LLAMA, TRN_LORA_Q, "self_attn.q_proj", "q_proj"},
    {MODEL_ARCH_LLAMA, TRN_LORA_K, "self_attn.k_proj", "k_proj"},
    {MODEL_ARCH_LLAMA, TRN_LORA_V, "self_attn.v_proj", "v_proj"},
    {MODEL_ARCH_LLAMA, TRN_LORA_O, "self_attn.o_proj", "o_proj"},
    {MODEL_ARCH_LLAMA, TRN_LORA_GATE, "mlp.gate_proj", "gate_proj"},
    {MODEL_ARCH_LLAMA, TRN_LORA_UP, "mlp.up_proj", "up_proj"},
    {MODEL_ARCH_LLAMA, TRN_LORA_DOWN, "mlp.down_proj", "down_proj"},
    {MODEL_ARCH_GPT2, TRN_LORA_QKV, "attn.c_attn", "c_attn"},
    {MODEL_ARCH_GPT2, TRN_LORA_O, "attn.c_proj", "attn.c_proj"},
    {MODEL_ARCH_GPT2, TRN_LORA_UP, "mlp.c_fc", "c_fc"},
    {MODEL_ARCH_GPT2, TRN_LORA_DOWN, "mlp.c_proj", "mlp.c_proj"},
};
#define TRN_PEFT__N_MODULES (sizeof trn_peft__modules / sizeof trn_peft__modules[0])

/* Where the layers sit in the transformers model, and what PEFT wraps it in. */
#define TRN_PEFT__WRAP "base_model.model."

static const char *trn_peft__layers(model_arch_id arch)
{
    return arch == MODEL_ARCH_GPT2 ? "transformer.h." : "model.layers.";
}

/* Tensor name variants accepted on load, canonical first. */
static const char *const trn_peft__prefixes[] = {TRN_PEFT__WRAP, ""};
static const char *const trn_peft__suffixes[] = {".weight", "", ".default.weight"};

static const trn_peft__module *trn_peft__module_of(model_arch_id arch, trn_lora_target t)
{
    for (size_t i = 0; i < TRN_PEFT__N_MODULES; i++)
        if (trn_peft__modules[i].arch == arch && trn_peft__modules[i].target == t)
            return &trn_peft__modules[i];
    return NULL;
}

const char *trn_peft_module_name(model_arch_id arch, trn_lora_target t)
{
    const trn_peft__module *m = trn_peft__module_of(arch, t);
    return m ? m->entry : NULL;
}

/* ---- small helpers ------------------------------------------------------- */

__attribute__((format(printf, 4, 5)))
static int trn_peft__fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* "<dir>/<file>" into buf[PATH_MAX]. */
static int trn_peft__path(char *buf, const char *dir, const char *file, char *err,
                          size_t errlen)
{
    int n = snprintf(buf, PATH_MAX, "%s/%s", dir, file);
    if (n < 0 || n >= PATH_MAX)
        return trn_peft__fail(err, errlen, -ENAMETOOLONG, "%s: path too long", dir);
    return 0;
}

/* The name of (layer, module) matrix ab ('A' or 'B') with prefix and suffix. */
static void trn_peft__name(char *buf, size_t n, model_arch_id arch, int layer,
                           const trn_peft__module *m, char ab, const char *prefix,
                           const char *suffix)
{
    snprintf(buf, n, "%s%s%d.%s.lora_%c%s", prefix, trn_peft__layers(arch), layer, m->path, ab,
             suffix);
}

/* GGUF's llama converter interleaves the two halves of every q and k head:
 * GGUF row h*hd + 2i + j holds HF row h*hd + j*hd/2 + i. Copies the rows of
 * B [n_head*hd, r] from one order to the other. */
static void trn_peft__permute(float *dst, const float *src, int n_head, int hd, int r,
                              bool to_hf)
{
    int half = hd / 2;
    for (int h = 0; h < n_head; h++)
        for (int i = 0; i < half; i++)
            for (int j = 0; j < 2; j++) {
                size_t g = (size_t)h * hd + 2 * i + j, f = (size_t)h * hd + j * half + i;
                memcpy(dst + (to_hf ? f : g) * r, src + (to_hf ? g : f) * r,
                       (size_t)r * sizeof(float));
            }
}

/* Heads whose B rows are permuted on this model (0: none), or -EINVAL when
 * the head size cannot be split in two halves. */
static int trn_peft__perm_heads(model_arch_id arch, const model_hparams *hp, trn_lora_target t)
{
    if (arch != MODEL_ARCH_LLAMA || hp->rope_layout != OPS_ROPE_ADJACENT)
        return 0;
    if (t != TRN_LORA_Q && t != TRN_LORA_K)
        return 0;
    if (hp->head_dim % 2)
        return -EINVAL;
    return t == TRN_LORA_Q ? hp->n_head : hp->n_head_kv;
}

/* ---- adapter_config.json: reading ----------------------------------------- */

/* Keys whose non-default values change the adapter's structure in ways a
 * trn_lora cannot hold; refused rather than ignored. */
static const struct { const char *key, *what; } trn_peft__refused[] = {
    {"rank_pattern", "per-module ranks"},
    {"alpha_pattern", "per-module alphas"},
    {"layers_to_transform", "an adapter on some layers only"},
    {"modules_to_save", "fully trained modules saved beside the adapter"},
    {"exclude_modules", "excluded modules"},
    {"use_dora", "DoRA"},
    {"lora_bias", "LoRA biases"},
    {"layer_replication", "replicated layers"},
    {"target_parameters", "LoRA on parameters"},
    {"trainable_token_indices", "trainable tokens"},
    {"alora_invocation_tokens", "activated LoRA"},
    {"use_qalora", "QA-LoRA"},
    {"use_bdlora", "block-diagonal LoRA"},
    {"arrow_config", "Arrow routing"},
};

/* False for what PEFT writes when an option is off: null, false, "", [] or
 * {} (an absent key too). */
static bool trn_peft__is_set(const json_t *v)
{
    if (!v || json_is_null(v) || json_is_false(v))
        return false;
    if (json_is_string(v))
        return json_string_length(v) > 0;
    if (json_is_array(v))
        return json_array_size(v) > 0;
    if (json_is_object(v))
        return json_object_size(v) > 0;
    return true;
}

static int trn_peft__check_refused(json_t *root, const char *L, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof trn_peft__refused / sizeof trn_peft__refused[0]; i++)
        if (trn_peft__is_set(json_object_get(root, trn_peft__refused[i].key)))
            return trn_peft__fail(err, errlen, -ENOTSUP, "%s: '%s' is set: alignd cannot "
                                  "load %s", L, trn_peft__refused[i].key,
                                  trn_peft__refused[i].what);
    return 0;
}

/* A string key: *out NULL when absent or null; another type is an error. */
static int trn_peft__str(json_t *root, const char *key, const char **out, const char *L,
                         char *err, size_t errlen)
{
    json_t *v = json_object_get(root, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return trn_peft__fail(err, errlen, -EINVAL, "%s: '%s' must be a string", L, key);
    *out = json_string_value(v);
    return 0;
}

/* A number key (def when absent or null). */
static int trn_peft__num(json_t *root, const char *key, double def, double *out, const char *L,
                         char *err, size_t errlen)
{
    json_t *v = json_object_get(root, key);
    *out = def;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return trn_peft__fail(err, errlen, -EINVAL, "%s: '%s' must be a number", L, key);
    *out = json_number_value(v);
    if (!isfinite(*out))
        return trn_peft__fail(err, errlen, -EINVAL, "%s: '%s' is not finite", L, key);
    return 0;
}

static int trn_peft__bool(json_t *root, const char *key, bool *out, const char *L, char *err,
                          size_t errlen)
{
    json_t *v = json_object_get(root, key);
    *out = false;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return trn_peft__fail(err, errlen, -EINVAL, "%s: '%s' must be true or false", L, key);
    *out = json_is_true(v);
    return 0;
}

/* PEFT's rule: module path m is targeted by entry e when m is e or ends
 * with "." e. */
static bool trn_peft__matches(const char *m, const char *e)
{
    size_t lm = strlen(m), le = strlen(e);
    if (lm == le)
        return strcmp(m, e) == 0;
    return lm > le && m[lm - le - 1] == '.' && strcmp(m + lm - le, e) == 0;
}

/* The bits of every module of arch that entry e names (0: none). */
static unsigned trn_peft__entry_mask(model_arch_id arch, const char *e)
{
    unsigned mask = 0;
    for (size_t i = 0; i < TRN_PEFT__N_MODULES; i++)
        if (trn_peft__modules[i].arch == arch && trn_peft__matches(trn_peft__modules[i].path, e))
            mask |= 1u << trn_peft__modules[i].target;
    return mask;
}

/* The module entries of arch, comma-separated, for messages. */
static void trn_peft__known(model_arch_id arch, char *buf, size_t n)
{
    buf[0] = '\0';
    for (size_t i = 0, k = 0; i < TRN_PEFT__N_MODULES; i++)
        if (trn_peft__modules[i].arch == arch && k < n)
            k += (size_t)snprintf(buf + k, n - k, "%s%s", k ? ", " : "",
                                  trn_peft__modules[i].entry);
}

static int trn_peft__unknown_module(model_arch_id arch, const char *e, const char *L, char *err,
                                    size_t errlen)
{
    char known[160];
    trn_peft__known(arch, known, sizeof known);
    return trn_peft__fail(err, errlen, -ENOTSUP, "%s: target module '%s' is not one alignd "
                          "can adapt on %s (%s)", L, e, model_arch_name(arch), known);
}

static int trn_peft__targets(json_t *root, model_arch_id arch, unsigned *mask, const char *L,
                             char *err, size_t errlen)
{
    json_t *tm = json_object_get(root, "target_modules");
    *mask = 0;
    if (!tm || json_is_null(tm)) { /* PEFT fills in its per-model defaults */
        *mask = arch == MODEL_ARCH_GPT2 ? 1u << TRN_LORA_QKV : 1u << TRN_LORA_Q | 1u << TRN_LORA_V;
        return 0;
    }
    if (json_is_string(tm))
        return trn_peft__fail(err, errlen, -ENOTSUP, "%s: target_modules is a regular "
                              "expression ('%.100s'); alignd needs a list of module names", L,
                              json_string_value(tm));
    if (!json_is_array(tm) || !json_array_size(tm))
        return trn_peft__fail(err, errlen, -EINVAL, "%s: target_modules must be a non-empty "
                              "list of module names", L);
    size_t i;
    json_t *v;
    json_array_foreach(tm, i, v) {
        if (!json_is_string(v))
            return trn_peft__fail(err, errlen, -EINVAL, "%s: target_modules[%zu] is not a "
                                  "string", L, i);
        unsigned m = trn_peft__entry_mask(arch, json_string_value(v));
        if (!m)
            return trn_peft__unknown_module(arch, json_string_value(v), L, err, errlen);
        *mask |= m;
    }
    return 0;
}

/* peft_type must say LoRA, bias must be "none" (PEFT's other choices add
 * bias tensors). */
static int trn_peft__check_kind(json_t *root, const char *L, char *err, size_t errlen)
{
    const char *type, *bias;
    int rc = trn_peft__str(root, "peft_type", &type, L, err, errlen);
    if (rc || (rc = trn_peft__str(root, "bias", &bias, L, err, errlen)))
        return rc;
    if (!type)
        return trn_peft__fail(err, errlen, -EINVAL, "%s: 'peft_type' is missing", L);
    if (strcmp(type, "LORA") != 0)
        return trn_peft__fail(err, errlen, -ENOTSUP, "%s: peft_type '%.64s' is not LORA", L,
                              type);
    if (bias && strcmp(bias, "none") != 0)
        return trn_peft__fail(err, errlen, -ENOTSUP, "%s: bias '%.32s': alignd loads only "
                              "bias \"none\" (no bias tensors)", L, bias);
    return 0;
}

/* r, lora_alpha, lora_dropout, use_rslora, with PEFT's defaults. */
static int trn_peft__numbers(json_t *root, trn_peft_config *c, const char *L, char *err,
                             size_t errlen)
{
    double r, alpha, drop;
    int rc = trn_peft__num(root, "r", 8, &r, L, err, errlen);
    if (rc || (rc = trn_peft__num(root, "lora_alpha", 8, &alpha, L, err, errlen)) ||
        (rc = trn_peft__num(root, "lora_dropout", 0, &drop, L, err, errlen)) ||
        (rc = trn_peft__bool(root, "use_rslora", &c->use_rslora, L, err, errlen)))
        return rc;
    if (!(r >= 1 && r <= 4096 && r == floor(r)))
        return trn_peft__fail(err, errlen, -EINVAL, "%s: r = %g: need an integer in [1, 4096]",
                              L, r);
    if (!(alpha > 0 && alpha < 1e30))
        return trn_peft__fail(err, errlen, -EINVAL, "%s: lora_alpha = %g: need alpha > 0", L,
                              alpha);
    if (!(drop >= 0 && drop < 1))
        return trn_peft__fail(err, errlen, -EINVAL, "%s: lora_dropout = %g: need [0, 1)", L,
                              drop);
    c->rank = (int)r;
    c->alpha = (float)alpha;
    c->dropout = (float)drop;
    return 0;
}

static int trn_peft__parse_root(json_t *root, trn_peft_config *c, model_arch_id arch,
                                const char *L, char *err, size_t errlen)
{
    const char *base;
    int rc = trn_peft__check_kind(root, L, err, errlen);
    if (rc || (rc = trn_peft__check_refused(root, L, err, errlen)) ||
        (rc = trn_peft__numbers(root, c, L, err, errlen)) ||
        (rc = trn_peft__targets(root, arch, &c->targets, L, err, errlen)) ||
        (rc = trn_peft__str(root, "base_model_name_or_path", &base, L, err, errlen)))
        return rc;
    snprintf(c->base_model, sizeof c->base_model, "%s", base ? base : "");
    return 0;
}

int trn_peft_config_parse(trn_peft_config *out, const char *json, size_t len,
                          model_arch_id arch, const char *label, char *err, size_t errlen)
{
    const char *L = label ? label : TRN_PEFT_CONFIG_FILE;
    memset(out, 0, sizeof *out);
    if (arch != MODEL_ARCH_LLAMA && arch != MODEL_ARCH_GPT2)
        return trn_peft__fail(err, errlen, -ENOTSUP, "%s: PEFT adapters need a llama or gpt2 "
                              "model", L);
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return trn_peft__fail(err, errlen, -EINVAL, "%s: not valid JSON: %s (line %d, column "
                              "%d)", L, je.text, je.line, je.column);
    int rc = json_is_object(root)
                 ? trn_peft__parse_root(root, out, arch, L, err, errlen)
                 : trn_peft__fail(err, errlen, -EINVAL, "%s: not a JSON object", L);
    json_decref(root);
    return rc;
}

/* ---- adapter_config.json: writing ----------------------------------------- */

/* f as the shortest decimal that reads back as the same float, so 0.05f is
 * written 0.05 and not 0.05000000074505806; integral values as integers when
 * int_ok (lora_alpha is an int field in PEFT). */
static json_t *trn_peft__float(float f, bool int_ok)
{
    if (int_ok && f == floorf(f) && fabsf(f) < 1e9f)
        return json_integer((json_int_t)f);
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if (strtof(buf, NULL) == f)
            break;
    }
    return json_real(strtod(buf, NULL));
}

static json_t *trn_peft__target_list(const trn_lora *lo, model_arch_id arch)
{
    json_t *a = json_array();
    for (int t = 0; a && t < TRN_LORA_N_TARGETS; t++)
        if (lo->cfg.targets & (1u << t))
            json_array_append_new(a, json_string(trn_peft_module_name(arch, t)));
    return a;
}

/* Exactly the keys PEFT 0.4 knew (every version that reads safetensors
 * adapters; before 0.14 PEFT refuses unknown keys), plus use_rslora only
 * when it is on, as an older PEFT must not silently misscale. */
static json_t *trn_peft__config_json(const trn_lora *lo, model_arch_id arch,
                                     const char *base_model, bool rslora)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "base_model_name_or_path",
                        base_model ? json_string(base_model) : json_null());
    json_object_set_new(o, "bias", json_string("none"));
    json_object_set_new(o, "fan_in_fan_out", json_boolean(arch == MODEL_ARCH_GPT2));
    json_object_set_new(o, "inference_mode", json_true());
    json_object_set_new(o, "init_lora_weights", json_true());
    json_object_set_new(o, "layers_pattern", json_null());
    json_object_set_new(o, "layers_to_transform", json_null());
    json_object_set_new(o, "lora_alpha", trn_peft__float(lo->cfg.alpha, true));
    json_object_set_new(o, "lora_dropout", trn_peft__float(lo->cfg.dropout, false));
    json_object_set_new(o, "modules_to_save", json_null());
    json_object_set_new(o, "peft_type", json_string("LORA"));
    json_object_set_new(o, "r", json_integer(lo->cfg.rank));
    json_object_set_new(o, "revision", json_null());
    json_object_set_new(o, "target_modules", trn_peft__target_list(lo, arch));
    json_object_set_new(o, "task_type", json_string("CAUSAL_LM"));
    if (rslora)
        json_object_set_new(o, "use_rslora", json_true());
    if (json_object_size(o) != 15u + rslora) { /* a value failed: OOM or bad UTF-8 */
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- files ----------------------------------------------------------------- */

/* mkdir -p. */
static int trn_peft__mkdirs(const char *dir, char *err, size_t errlen)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p || !*dir)
        return trn_peft__fail(err, errlen, -ENAMETOOLONG, "%s: empty or too long", dir);
    for (char *s = strchr(p + 1, '/');; s = strchr(s + 1, '/')) {
        if (s)
            *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return trn_peft__fail(err, errlen, -errno, "%s: cannot create folder: %s", p,
                                  strerror(errno));
        if (!s)
            break;
        *s = '/';
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return trn_peft__fail(err, errlen, -ENOTDIR, "%s: not a folder", dir);
    return 0;
}

/* Writes len bytes to path through "<path>.tmp": fsync, rename, and a
 * best-effort fsync of the folder, so path is either old or complete. */
static int trn_peft__write_atomic(const char *path, const char *dir, const char *data,
                                  size_t len, char *err, size_t errlen)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return trn_peft__fail(err, errlen, -errno, "%s: cannot create: %s", tmp,
                              strerror(errno));
    size_t done = 0;
    errno = 0;
    while (done < len) {
        ssize_t k = write(fd, data + done, len - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        done += (size_t)k;
    }
    int rc = done == len && fsync(fd) == 0 ? 0 : -(errno ? errno : EIO);
    if (close(fd) != 0 && !rc)
        rc = -(errno ? errno : EIO);
    if (!rc && rename(tmp, path) != 0)
        rc = -errno;
    if (rc) {
        unlink(tmp); /* nothing half-written stays behind */
        return trn_peft__fail(err, errlen, rc, "%s: cannot write: %s", path, strerror(-rc));
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* Reads the whole file at path (at most cap bytes) into a new buffer. */
static int trn_peft__slurp(const char *path, size_t cap, char **buf, size_t *len, char *err,
                           size_t errlen)
{
    *buf = NULL;
    FILE *f = fopen(path, "rbe"); /* e: O_CLOEXEC */
    if (!f)
        return trn_peft__fail(err, errlen, -errno, "%s: cannot open: %s", path,
                              strerror(errno));
    char *b = malloc(cap + 1);
    size_t n = b ? fread(b, 1, cap + 1, f) : 0;
    int rc = !b ? -ENOMEM : ferror(f) ? -EIO : n > cap ? -EFBIG : 0;
    fclose(f);
    if (rc) {
        free(b);
        return trn_peft__fail(err, errlen, rc, "%s: cannot read%s", path,
                              rc == -EFBIG ? ": larger than the 1 MiB cap" : "");
    }
    *buf = b;
    *len = n;
    return 0;
}

/* ---- save ------------------------------------------------------------------ */

/* Whether lo's scale is alpha/sqrt(r) (rsLoRA) rather than alpha/r; any
 * other scale has no PEFT spelling. */
static int trn_peft__scale_kind(const trn_lora *lo, bool *rslora, char *err, size_t errlen)
{
    float plain = lo->cfg.alpha / (float)lo->cfg.rank;
    float rs = lo->cfg.alpha / sqrtf((float)lo->cfg.rank);
    *rslora = false;
    if (fabsf(lo->scale - plain) <= 1e-6f * plain)
        return 0;
    if (fabsf(lo->scale - rs) <= 1e-6f * rs) {
        *rslora = true;
        return 0;
    }
    return trn_peft__fail(err, errlen, -ENOTSUP, "LoRA scale %g is neither alpha/r (%g) nor "
                          "alpha/sqrt(r) (%g): PEFT cannot express it", (double)lo->scale,
                          (double)plain, (double)rs);
}

static int trn_peft__check_save(const trn_lora *lo, model_arch_id arch, const model_hparams *hp,
                                char *err, size_t errlen)
{
    if (arch != MODEL_ARCH_LLAMA && arch != MODEL_ARCH_GPT2)
        return trn_peft__fail(err, errlen, -ENOTSUP, "PEFT adapters need a llama or gpt2 model");
    if (lo->n_layer != hp->n_layer)
        return trn_peft__fail(err, errlen, -EINVAL, "adapter has %d layers, the model %d",
                              lo->n_layer, hp->n_layer);
    for (int t = 0; t < TRN_LORA_N_TARGETS; t++) {
        if (!(lo->cfg.targets & (1u << t)) || trn_peft_module_name(arch, t))
            continue;
        return trn_peft__fail(err, errlen, -ENOTSUP, "LoRA target '%s' on %s has no PEFT "
                              "module: %s", trn_lora_target_name(t), model_arch_name(arch),
                              arch == MODEL_ARCH_GPT2 ? "q, k and v are slices of c_attn; "
                              "train with the 'qkv' target (c_attn)"
                              : "llama has separate q_proj, k_proj and v_proj; use q,k,v");
    }
    for (int i = 0; i < lo->n_sites; i++) {
        const trn_lora_site *s = &lo->sites[i];
        int heads = trn_peft__perm_heads(arch, hp, s->target);
        if (heads < 0 || (heads > 0 && heads * hp->head_dim != s->out))
            return trn_peft__fail(err, errlen, -EINVAL, "LoRA target '%s' has %d rows: cannot "
                                  "undo GGUF's q/k row order for heads of %d",
                                  trn_lora_target_name(s->target), s->out, hp->head_dim);
    }
    return 0;
}

/* B in Hugging Face's row order: s->B itself, or a copy un-permuted into
 * *scratch (advanced past it). */
static const float *trn_peft__hf_rows(const trn_lora *lo, const trn_lora_site *s,
                                      model_arch_id arch, const model_hparams *hp,
                                      float **scratch)
{
    int heads = trn_peft__perm_heads(arch, hp, s->target);
    if (heads <= 0) /* (trn_peft__check_save made sure the rows are heads) */
        return s->B;
    float *dst = *scratch;
    trn_peft__permute(dst, s->B, heads, hp->head_dim, lo->cfg.rank, true);
    *scratch += (size_t)s->out * lo->cfg.rank;
    return dst;
}

static int trn_peft__add_site(st_writer *w, const trn_lora *lo, const trn_lora_site *s,
                              model_arch_id arch, const float *B)
{
    char name[256];
    const trn_peft__module *m = trn_peft__module_of(arch, s->target);
    int64_t sa[2] = {lo->cfg.rank, s->in}, sb[2] = {s->out, lo->cfg.rank};
    trn_peft__name(name, sizeof name, arch, s->layer, m, 'A', TRN_PEFT__WRAP, ".weight");
    int rc = st_writer_add(w, name, ST_F32, 2, sa, s->A);
    trn_peft__name(name, sizeof name, arch, s->layer, m, 'B', TRN_PEFT__WRAP, ".weight");
    return rc ? rc : st_writer_add(w, name, ST_F32, 2, sb, B);
}

static int trn_peft__write_weights(const trn_lora *lo, model_arch_id arch,
                                   const model_hparams *hp, const char *path, char *err,
                                   size_t errlen)
{
    size_t perm = 0;
    for (int i = 0; i < lo->n_sites; i++)
        if (trn_peft__perm_heads(arch, hp, lo->sites[i].target) > 0)
            perm += (size_t)lo->sites[i].out * lo->cfg.rank;
    float *scratch = perm ? malloc(perm * sizeof(float)) : NULL, *next = scratch;
    st_writer *w = NULL;
    if ((perm && !scratch) || st_writer_new(&w)) {
        free(scratch);
        return trn_peft__fail(err, errlen, -ENOMEM, "%s: out of memory", path);
    }
    /* what safetensors' torch helpers write; transformers checks it */
    st_writer_set_metadata(w, "format", "pt");
    for (int i = 0; i < lo->n_sites; i++)
        trn_peft__add_site(w, lo, &lo->sites[i], arch,
                           trn_peft__hf_rows(lo, &lo->sites[i], arch, hp, &next));
    st_error se = {0};
    int rc = st_writer_write(w, path, &se); /* refuses with the first add error, if any */
    if (rc)
        trn_peft__fail(err, errlen, rc, "%s", se.msg);
    st_writer_free(w);
    free(scratch);
    return rc;
}

/* The config file's text (a new string), encoded before anything is
 * written so that a failure here leaves the folder as it was. */
static int trn_peft__config_text(const trn_lora *lo, model_arch_id arch, const char *base_model,
                                 bool rslora, char **out, char *err, size_t errlen)
{
    json_t *o = trn_peft__config_json(lo, arch, base_model, rslora);
    char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9))
                   : NULL;
    json_decref(o);
    size_t n = text ? strlen(text) : 0;
    *out = text ? realloc(text, n + 2) : NULL;
    if (!*out) {
        free(text);
        return trn_peft__fail(err, errlen, -EINVAL, "%s: cannot encode (out of memory, or the "
                              "base model name is not UTF-8)", TRN_PEFT_CONFIG_FILE);
    }
    memcpy(*out + n, "\n", 2);
    return 0;
}

int trn_peft_save(const trn_lora *lo, model_arch_id arch, const model_hparams *hp,
                  const char *base_model, const char *dir, char *err, size_t errlen)
{
    bool rslora;
    char wpath[PATH_MAX], cpath[PATH_MAX], *text = NULL;
    int rc = trn_peft__check_save(lo, arch, hp, err, errlen);
    if (rc || (rc = trn_peft__scale_kind(lo, &rslora, err, errlen)) ||
        (rc = trn_peft__path(wpath, dir, TRN_PEFT_WEIGHTS_FILE, err, errlen)) ||
        (rc = trn_peft__path(cpath, dir, TRN_PEFT_CONFIG_FILE, err, errlen)) ||
        (rc = trn_peft__config_text(lo, arch, base_model, rslora, &text, err, errlen)) ||
        (rc = trn_peft__mkdirs(dir, err, errlen)))
        goto done;
    /* weights first: once a config is there, so are the weights it describes */
    rc = trn_peft__write_weights(lo, arch, hp, wpath, err, errlen);
    if (!rc)
        rc = trn_peft__write_atomic(cpath, dir, text, strlen(text), err, errlen);
done:
    free(text);
    return rc;
}

/* ---- load ------------------------------------------------------------------ */

static int trn_peft__read_config(const char *dir, model_arch_id arch, trn_peft_config *c,
                                 char *err, size_t errlen)
{
    char path[PATH_MAX], *text = NULL;
    size_t len = 0;
    int rc = trn_peft__path(path, dir, TRN_PEFT_CONFIG_FILE, err, errlen);
    if (rc || (rc = trn_peft__slurp(path, TRN_PEFT_MAX_CONFIG_BYTES, &text, &len, err, errlen)))
        return rc;
    rc = trn_peft_config_parse(c, text, len, arch, path, err, errlen);
    free(text);
    return rc;
}

/* Opens the weights; names the pickle file when that is all there is. */
static int trn_peft__open_weights(const char *dir, st_file **f, char *err, size_t errlen)
{
    char path[PATH_MAX], bin[PATH_MAX];
    int rc = trn_peft__path(path, dir, TRN_PEFT_WEIGHTS_FILE, err, errlen);
    if (rc || (rc = trn_peft__path(bin, dir, "adapter_model.bin", err, errlen)))
        return rc;
    if (access(path, F_OK) != 0 && access(bin, F_OK) == 0)
        return trn_peft__fail(err, errlen, -ENOTSUP, "%s: PyTorch pickle adapters are not "
                              "supported; save it with safe_serialization=True to get %s",
                              bin, TRN_PEFT_WEIGHTS_FILE);
    st_error se = {0};
    rc = st_open(f, path, &se);
    return rc ? trn_peft__fail(err, errlen, rc, "%s", se.msg) : 0;
}

/* Looks up matrix ab of (layer, module) under every accepted spelling;
 * exactly one must exist. */
static int trn_peft__find(const st_file *f, model_arch_id arch, int layer,
                          const trn_peft__module *m, char ab, const st_tensor **out, char *err,
                          size_t errlen)
{
    char name[256];
    *out = NULL;
    for (size_t p = 0; p < 2; p++)
        for (size_t s = 0; s < sizeof trn_peft__suffixes / sizeof *trn_peft__suffixes; s++) {
            trn_peft__name(name, sizeof name, arch, layer, m, ab, trn_peft__prefixes[p],
                           trn_peft__suffixes[s]);
            const st_tensor *t = st_find(f, name);
            if (t && *out)
                return trn_peft__fail(err, errlen, -EINVAL, "%s: tensors '%s' and '%s' are "
                                      "the same matrix", st_file_label(f), (*out)->name, name);
            *out = t ? t : *out;
        }
    if (*out)
        return 0;
    trn_peft__name(name, sizeof name, arch, layer, m, ab, TRN_PEFT__WRAP, ".weight");
    return trn_peft__fail(err, errlen, -ENOENT, "%s: tensor '%s' is missing (target module "
                          "'%s' in %s)", st_file_label(f), name, m->entry,
                          TRN_PEFT_CONFIG_FILE);
}

/* The values of t, checked to be a finite [rows, cols] matrix; a new array. */
static int trn_peft__values(const st_file *f, const st_tensor *t, int64_t rows, int64_t cols,
                            int rank, float **out, char *err, size_t errlen)
{
    *out = NULL;
    if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols) {
        char got[64], want[64];
        int64_t w[2] = {rows, cols};
        st_format_shape(got, sizeof got, t->n_dims, t->shape);
        st_format_shape(want, sizeof want, 2, w);
        return trn_peft__fail(err, errlen, -EINVAL, "%s: tensor '%s': shape %s, expected %s "
                              "(r = %d in %s and this model's shape)", st_file_label(f),
                              t->name, got, want, rank, TRN_PEFT_CONFIG_FILE);
    }
    st_error se = {0};
    int rc = st_tensor_to_f32(t, out, &se);
    if (rc)
        return trn_peft__fail(err, errlen, rc, "%s: %s", st_file_label(f), se.msg);
    for (uint64_t i = 0; i < t->n_elements; i++)
        if (!isfinite((*out)[i])) {
            free(*out);
            *out = NULL;
            return trn_peft__fail(err, errlen, -EINVAL, "%s: tensor '%s': element %llu is "
                                  "not finite", st_file_label(f), t->name,
                                  (unsigned long long)i);
        }
    return 0;
}

/* Fills one site's A and B from f; B's q/k rows go to this model's order. */
static int trn_peft__fill_site(trn_lora *lo, trn_lora_site *s, const st_file *f,
                               model_arch_id arch, const model_hparams *hp,
                               const st_tensor **used, char *err, size_t errlen)
{
    const trn_peft__module *m = trn_peft__module_of(arch, s->target);
    int r = lo->cfg.rank;
    float *A = NULL, *B = NULL;
    int rc = trn_peft__find(f, arch, s->layer, m, 'A', &used[0], err, errlen);
    if (rc || (rc = trn_peft__find(f, arch, s->layer, m, 'B', &used[1], err, errlen)) ||
        (rc = trn_peft__values(f, used[0], r, s->in, r, &A, err, errlen)) ||
        (rc = trn_peft__values(f, used[1], s->out, r, r, &B, err, errlen)))
        goto done;
    memcpy(s->A, A, (size_t)r * s->in * sizeof(float));
    int heads = trn_peft__perm_heads(arch, hp, s->target);
    if (heads < 0) {
        rc = trn_peft__fail(err, errlen, -EINVAL, "head size %d is odd: cannot apply GGUF's "
                            "q/k row order", hp->head_dim);
    } else if (heads > 0 && heads * hp->head_dim == s->out) {
        trn_peft__permute(s->B, B, heads, hp->head_dim, r, false);
    } else {
        memcpy(s->B, B, (size_t)s->out * r * sizeof(float));
    }
done:
    free(A);
    free(B);
    return rc;
}

/* Names the first tensor of f that no site used. */
static int trn_peft__stray(const st_file *f, const st_tensor **used, size_t n_used, char *err,
                           size_t errlen)
{
    for (size_t i = 0; i < st_n_tensors(f); i++) {
        const st_tensor *t = st_tensor_at(f, i);
        size_t j = 0;
        while (j < n_used && used[j] != t)
            j++;
        if (j == n_used)
            return trn_peft__fail(err, errlen, -EINVAL, "%s: tensor '%s' is not a LoRA matrix "
                                  "of the target_modules in %s", st_file_label(f), t->name,
                                  TRN_PEFT_CONFIG_FILE);
    }
    return 0;
}

static int trn_peft__fill(trn_lora *lo, const st_file *f, model_arch_id arch,
                          const model_hparams *hp, char *err, size_t errlen)
{
    size_t n_used = 2 * (size_t)lo->n_sites;
    const st_tensor **used = calloc(n_used ? n_used : 1, sizeof *used);
    if (!used)
        return trn_peft__fail(err, errlen, -ENOMEM, "%s: out of memory", st_file_label(f));
    int rc = 0;
    for (int i = 0; i < lo->n_sites && !rc; i++)
        rc = trn_peft__fill_site(lo, &lo->sites[i], f, arch, hp, used + 2 * i, err, errlen);
    if (!rc && st_n_tensors(f) != n_used)
        rc = trn_peft__stray(f, used, n_used, err, errlen);
    free(used);
    return rc;
}

/* A new adapter of c's shape for the model; its errors name the config. */
static int trn_peft__new(trn_lora **lo, const trn_peft_config *c, const char *dir,
                         model_arch_id arch, const model_hparams *hp, char *err, size_t errlen)
{
    trn_lora_cfg lc = {.rank = c->rank, .alpha = c->alpha, .dropout = c->dropout,
                       .targets = c->targets};
    char sub[256];
    int rc = trn_lora_new(lo, arch, hp, &lc, sub, sizeof sub);
    if (rc)
        return trn_peft__fail(err, errlen, rc, "%s/%s: %s", dir, TRN_PEFT_CONFIG_FILE, sub);
    if (c->use_rslora)
        (*lo)->scale = c->alpha / sqrtf((float)c->rank);
    return 0;
}

int trn_peft_load(trn_lora **out, const char *dir, model_arch_id arch, const model_hparams *hp,
                  char *err, size_t errlen)
{
    *out = NULL;
    trn_peft_config c;
    st_file *f = NULL;
    trn_lora *lo = NULL;
    int rc = trn_peft__read_config(dir, arch, &c, err, errlen);
    if (rc || (rc = trn_peft__open_weights(dir, &f, err, errlen)) ||
        (rc = trn_peft__new(&lo, &c, dir, arch, hp, err, errlen)) ||
        (rc = trn_peft__fill(lo, f, arch, hp, err, errlen))) {
        trn_lora_free(lo);
        st_close(f);
        return rc;
    }
    st_close(f);
    *out = lo;
    return 0;
}
