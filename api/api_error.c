/* api_error.c - the error table expanded. */
#include "api_error.h"

static const struct {
    unsigned status;
    const char *type, *code;
} api__errors[API_ERR__COUNT] = {
#define X(name, status, type, code) {status, type, code},
    API_ERROR_TABLE(X)
#undef X
};

unsigned api_error_status(api_error_code c) { return api__errors[c].status; }
const char *api_error_type(api_error_code c) { return api__errors[c].type; }
const char *api_error_code_str(api_error_code c) { return api__errors[c].code; }

json_t *api_error_body(api_error_code c, const char *param, const char *message) {
    return json_pack("{s:{s:s, s:s, s:o, s:s}}", "error",
                     "message", message ? message : api__errors[c].code,
                     "type", api__errors[c].type,
                     "param", param ? json_string(param) : json_null(),
                     "code", api__errors[c].code);
}
