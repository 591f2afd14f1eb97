/* test_api_error.c - the error table and OpenAI's error body shape. */
#include <string.h>

#include "api_error.h"
#include "tu_util.h"

static void test_statuses(void **st) {
    (void)st;
    struct { api_error_code c; unsigned status; const char *type, *code; } want[] = {
        {API_ERR_BAD_JSON, 400, "invalid_request_error", "invalid_json"},
        {API_ERR_UNAUTHORIZED, 401, "authentication_error", "invalid_api_key"},
        {API_ERR_NOT_FOUND, 404, "not_found_error", "not_found"},
        {API_ERR_ADAPTER_NOT_FOUND, 404, "not_found_error", "adapter_not_found"},
        {API_ERR_METHOD_NOT_ALLOWED, 405, "invalid_request_error", "method_not_allowed"},
        {API_ERR_BODY_TOO_LARGE, 413, "invalid_request_error", "request_too_large"},
        {API_ERR_UNSUPPORTED_MEDIA_TYPE, 415, "invalid_request_error", "unsupported_media_type"},
        {API_ERR_INVALID_VALUE, 422, "invalid_request_error", "invalid_value"},
        {API_ERR_QUEUE_FULL, 429, "rate_limit_error", "queue_full"},
        {API_ERR_NOT_READY, 503, "server_error", "not_ready"},
        {API_ERR_SHUTTING_DOWN, 503, "server_error", "shutting_down"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_int_equal(api_error_status(want[i].c), want[i].status);
        assert_string_equal(api_error_type(want[i].c), want[i].type);
        assert_string_equal(api_error_code_str(want[i].c), want[i].code);
    }
    for (int c = 0; c < API_ERR__COUNT; c++) {
        unsigned s = api_error_status((api_error_code)c);
        assert_true(s >= 400 && s < 600);
    }
}

static void test_body_shape(void **st) {
    (void)st;
    json_t *b = api_error_body(API_ERR_INVALID_VALUE, "temperature", "temperature must be >= 0");
    json_t *e = json_object_get(b, "error");
    assert_true(json_is_object(e));
    assert_int_equal(json_object_size(e), 4);
    assert_string_equal(json_string_value(json_object_get(e, "message")), "temperature must be >= 0");
    assert_string_equal(json_string_value(json_object_get(e, "type")), "invalid_request_error");
    assert_string_equal(json_string_value(json_object_get(e, "param")), "temperature");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "invalid_value");
    json_decref(b);
    b = api_error_body(API_ERR_NOT_FOUND, NULL, "nothing here");
    assert_true(json_is_null(json_object_get(json_object_get(b, "error"), "param")));
    json_decref(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_statuses), cmocka_unit_test(test_body_shape)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
