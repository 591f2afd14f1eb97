/* fields.h - typed access to fields of a JSON request body. Each getter
 * leaves *out alone when the field is absent or null (so the caller's
 * default stays), and otherwise checks the type (400 invalid_request) and
 * the range (422 invalid_value), answering the request itself with an error
 * naming the field. Return 0 when the caller may go on, -1 when an error was
 * sent. Loop thread. */
#ifndef API_FIELDS_H
#define API_FIELDS_H

#include <jansson.h>
#include <stdbool.h>

#include "http.h"

int api_field_number(http_req *req, json_t *obj, const char *name, double lo, double hi, double *out);
int api_field_int(http_req *req, json_t *obj, const char *name, long long lo, long long hi, long long *out);
int api_field_bool(http_req *req, json_t *obj, const char *name, bool *out);
/* *out borrows the JSON string. */
int api_field_string(http_req *req, json_t *obj, const char *name, const char **out);
/* Like api_field_string but absent is an error (400 "NAME is required"). */
int api_field_required_string(http_req *req, json_t *obj, const char *name, const char **out);

#endif
