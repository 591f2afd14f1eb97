/* fields.c - typed JSON request fields with OpenAI-style errors. */
#include "fields.h"

#include <math.h>

static json_t *api__field(json_t *obj, const char *name) {
    json_t *v = json_object_get(obj, name);
    return json_is_null(v) ? NULL : v;
}

int api_field_number(http_req *req, json_t *obj, const char *name, double lo, double hi, double *out) {
    json_t *v = api__field(obj, name);
    if (!v) return 0;
    if (!json_is_number(v)) {
        http_reply_error(req, API_ERR_BAD_REQUEST, name, "%s must be a number", name);
        return -1;
    }
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi) {
        http_reply_error(req, API_ERR_INVALID_VALUE, name, "%s must be in [%g, %g], got %g", name, lo, hi, d);
        return -1;
    }
    *out = d;
    return 0;
}

int api_field_int(http_req *req, json_t *obj, const char *name, long long lo, long long hi, long long *out) {
    json_t *v = api__field(obj, name);
    if (!v) return 0;
    long long i;
    if (json_is_integer(v)) i = json_integer_value(v);
    else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
             fabs(json_real_value(v)) < 9e15)
        i = (long long)json_real_value(v); /* 16.0 is an integer to JavaScript clients */
    else {
        http_reply_error(req, API_ERR_BAD_REQUEST, name, "%s must be an integer", name);
        return -1;
    }
    if (i < lo || i > hi) {
        http_reply_error(req, API_ERR_INVALID_VALUE, name, "%s must be in [%lld, %lld], got %lld", name, lo, hi, i);
        return -1;
    }
    *out = i;
    return 0;
}

int api_field_bool(http_req *req, json_t *obj, const char *name, bool *out) {
    json_t *v = api__field(obj, name);
    if (!v) return 0;
    if (!json_is_boolean(v)) {
        http_reply_error(req, API_ERR_BAD_REQUEST, name, "%s must be true or false", name);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

int api_field_string(http_req *req, json_t *obj, const char *name, const char **out) {
    json_t *v = api__field(obj, name);
    if (!v) return 0;
    if (!json_is_string(v)) {
        http_reply_error(req, API_ERR_BAD_REQUEST, name, "%s must be a string", name);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

int api_field_required_string(http_req *req, json_t *obj, const char *name, const char **out) {
    if (!api__field(obj, name)) {
        http_reply_error(req, API_ERR_BAD_REQUEST, name, "%s is required", name);
        return -1;
    }
    return api_field_string(req, obj, name, out);
}
