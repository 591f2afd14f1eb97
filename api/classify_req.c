/* classify_req.c - validation of the /v1/classify body. */
#include "classify_req.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((format(printf, 4, 5)))
static int api__bad(api_req_error *e, api_error_code code, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->code = code;
    e->param = param;
    return -1;
}

int api_classify_parse(json_t *body, api_classify_req *out, api_req_error *e) {
    memset(out, 0, sizeof *out);
    if (!json_is_object(body)) return api__bad(e, API_ERR_BAD_REQUEST, NULL, "request body must be a JSON object");
    json_t *image = json_object_get(body, "image");
    if (!image || json_is_null(image)) return api__bad(e, API_ERR_BAD_REQUEST, "image", "image is required");
    if (!json_is_string(image)) return api__bad(e, API_ERR_BAD_REQUEST, "image", "image must be a string (base64 or a data URL)");
    out->image = json_string_value(image);
    out->image_len = json_string_length(image);
    json_t *labels = json_object_get(body, "labels");
    if (!json_is_array(labels) || json_array_size(labels) == 0)
        return api__bad(e, API_ERR_BAD_REQUEST, "labels", "labels must be a non-empty array of strings");
    out->n_labels = json_array_size(labels);
    if (out->n_labels > API_CLIP_MAX_LABELS)
        return api__bad(e, API_ERR_INVALID_VALUE, "labels", "at most %d labels, got %zu", API_CLIP_MAX_LABELS, out->n_labels);
    for (size_t i = 0; i < out->n_labels; i++) {
        json_t *l = json_array_get(labels, i);
        if (!json_is_string(l) || json_string_length(l) == 0)
            return api__bad(e, API_ERR_BAD_REQUEST, "labels", "labels[%zu] must be a non-empty string", i);
        if (strlen(json_string_value(l)) != json_string_length(l))
            return api__bad(e, API_ERR_BAD_REQUEST, "labels", "labels[%zu] contains a NUL character", i);
        out->labels[i] = json_string_value(l);
    }
    /* template (one) or templates (several, averaged) */
    out->templates[0] = API_CLIP_DEFAULT_TEMPLATE;
    out->n_templates = 1;
    json_t *t1 = json_object_get(body, "template"), *tn = json_object_get(body, "templates");
    bool has1 = t1 && !json_is_null(t1), hasn = tn && !json_is_null(tn);
    if (has1 && hasn) return api__bad(e, API_ERR_BAD_REQUEST, "templates", "send template or templates, not both");
    if (has1) {
        if (!json_is_string(t1)) return api__bad(e, API_ERR_BAD_REQUEST, "template", "template must be a string");
        out->templates[0] = json_string_value(t1);
    } else if (hasn) {
        if (!json_is_array(tn) || json_array_size(tn) == 0 || json_array_size(tn) > API_CLIP_MAX_TEMPLATES)
            return api__bad(e, API_ERR_INVALID_VALUE, "templates", "templates must hold 1 to %d strings", API_CLIP_MAX_TEMPLATES);
        out->n_templates = (int)json_array_size(tn);
        for (int i = 0; i < out->n_templates; i++)
            if (!(out->templates[i] = json_string_value(json_array_get(tn, (size_t)i))))
                return api__bad(e, API_ERR_BAD_REQUEST, "templates", "templates[%d] must be a string", i);
    }
    for (int i = 0; i < out->n_templates; i++)
        if (!strstr(out->templates[i], "{label}"))
            return api__bad(e, API_ERR_INVALID_VALUE, has1 ? "template" : "templates",
                            "template '%.200s' has no {label} placeholder", out->templates[i]);
    out->top_k = (int)out->n_labels;
    json_t *k = json_object_get(body, "top_k");
    if (k && !json_is_null(k)) {
        if (!json_is_integer(k)) return api__bad(e, API_ERR_BAD_REQUEST, "top_k", "top_k must be an integer");
        json_int_t v = json_integer_value(k);
        if (v < 1 || v > (json_int_t)out->n_labels)
            return api__bad(e, API_ERR_INVALID_VALUE, "top_k", "top_k must be in [1, %zu], got %lld", out->n_labels, (long long)v);
        out->top_k = (int)v;
    }
    return 0;
}

char *api_classify_prompt(const char *tmpl, const char *label) {
    size_t need = strlen(tmpl) + 1, ll = strlen(label);
    for (const char *q = strstr(tmpl, "{label}"); q; q = strstr(q + 7, "{label}")) need += ll;
    char *text = malloc(need), *w = text;
    if (!text) return NULL;
    for (const char *q = tmpl; *q;) {
        if (!strncmp(q, "{label}", 7)) {
            memcpy(w, label, ll);
            w += ll;
            q += 7;
        } else {
            *w++ = *q++;
        }
    }
    *w = '\0';
    return text;
}
