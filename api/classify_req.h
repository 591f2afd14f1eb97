/* classify_req.h - the /v1/classify request body, parsed and validated
 * without HTTP (so the fuzz target can drive it): everything but the model
 * lookup. Any thread; borrows the JSON. */
#ifndef API_CLASSIFY_REQ_H
#define API_CLASSIFY_REQ_H

#include <jansson.h>
#include <stddef.h>

#include "api_error.h"

#define API_CLIP_MAX_LABELS 256
#define API_CLIP_MAX_TEMPLATES 16
#define API_CLIP_DEFAULT_TEMPLATE "a photo of a {label}."

typedef struct api_classify_req {
    const char *image;                               /* base64 or data URL */
    size_t image_len;
    const char *labels[API_CLIP_MAX_LABELS];         /* non-empty strings */
    size_t n_labels;
    const char *templates[API_CLIP_MAX_TEMPLATES];   /* each holds {label} */
    int n_templates;
    int top_k;                                       /* 1..n_labels */
} api_classify_req;

typedef struct api_req_error {
    api_error_code code;
    const char *param;  /* static string */
    char msg[512];
} api_req_error;

/* Returns 0 with *out filled, or -1 with *e naming the field at fault. */
int api_classify_parse(json_t *body, api_classify_req *out, api_req_error *e);

/* The template with every "{label}" replaced by label: a new string, or NULL
 * when memory runs out. */
char *api_classify_prompt(const char *tmpl, const char *label);

#endif
