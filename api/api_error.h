/* api_error.h - the error table: every error the API returns, with its HTTP
 * status and OpenAI-style `type` and `code`. Bodies have OpenAI's shape:
 *   {"error": {"message": ..., "type": ..., "param": ... | null, "code": ...}}
 * Any thread.
 */
#ifndef API_ERROR_H
#define API_ERROR_H

#include <jansson.h>

/* X(name, http status, type, code) */
#define API_ERROR_TABLE(X)                                                        \
    X(BAD_JSON, 400, "invalid_request_error", "invalid_json")                     \
    X(BAD_REQUEST, 400, "invalid_request_error", "invalid_request")               \
    X(UNAUTHORIZED, 401, "authentication_error", "invalid_api_key")               \
    X(FORBIDDEN, 403, "permission_error", "insufficient_role")                    \
    X(NOT_FOUND, 404, "not_found_error", "not_found")                             \
    X(MODEL_NOT_FOUND, 404, "not_found_error", "model_not_found")                 \
    X(ADAPTER_NOT_FOUND, 404, "not_found_error", "adapter_not_found")             \
    X(CONTEXT_LENGTH, 400, "invalid_request_error", "context_length_exceeded")    \
    X(METHOD_NOT_ALLOWED, 405, "invalid_request_error", "method_not_allowed")     \
    X(BODY_TOO_LARGE, 413, "invalid_request_error", "request_too_large")          \
    X(UNSUPPORTED_MEDIA_TYPE, 415, "invalid_request_error", "unsupported_media_type") \
    X(INVALID_VALUE, 422, "invalid_request_error", "invalid_value")               \
    X(REWARD_MODEL_UNAVAILABLE, 409, "invalid_request_error", "reward_model_unavailable") \
    X(TRAINING_BUSY, 409, "invalid_request_error", "training_busy")               \
    X(TRAINING_DISABLED, 409, "invalid_request_error", "training_disabled")       \
    X(RUN_NOT_FOUND, 404, "not_found_error", "run_not_found")                     \
    X(RUN_FINISHED, 409, "invalid_request_error", "run_finished")                 \
    X(QUEUE_FULL, 429, "rate_limit_error", "queue_full")                          \
    X(INTERNAL, 500, "server_error", "internal_error")                            \
    X(NOT_READY, 503, "server_error", "not_ready")                                \
    X(SHUTTING_DOWN, 503, "server_error", "shutting_down")

typedef enum {
#define X(name, status, type, code) API_ERR_##name,
    API_ERROR_TABLE(X)
#undef X
    API_ERR__COUNT
} api_error_code;

unsigned api_error_status(api_error_code code);
const char *api_error_type(api_error_code code);
const char *api_error_code_str(api_error_code code);

/* Returns a new reference: the error body. `param` may be NULL (JSON null). */
json_t *api_error_body(api_error_code code, const char *param, const char *message);

#endif
