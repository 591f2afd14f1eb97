/* test_router.c - path matching, parameters, 404/405 with Allow, and the
 * well-formedness of the real route table. */
#include <string.h>

#include "routes.h"
#include "tu_util.h"

static void h(http_req *req) { (void)req; }

static const route table[] = {
    {"GET", "/v1/feedback", h, ROUTE_AUTH_INFER, ROUTE_BODY_NONE, 0, 0, "list"},
    {"POST", "/v1/feedback", h, ROUTE_AUTH_INFER, ROUTE_BODY_JSON, 0, 0, "create"},
    {"GET", "/v1/feedback/{id}", h, ROUTE_AUTH_INFER, ROUTE_BODY_NONE, 0, 0, "get"},
    {"DELETE", "/v1/feedback/{id}", h, ROUTE_AUTH_INFER, ROUTE_BODY_NONE, 0, 0, "delete"},
    {"GET", "/v1/feedback/export", h, ROUTE_AUTH_INFER, ROUTE_BODY_NONE, 0, 0, "export"},
    {"POST", "/v1/adapters/{id}/activate", h, ROUTE_AUTH_INFER, ROUTE_BODY_NONE, 0, 0, "act"},
    {"GET", "/debug/x", h, ROUTE_AUTH_INFER, ROUTE_BODY_NONE, 0, ROUTE_F_DEBUG, "dbg"},
};
#define N (sizeof table / sizeof table[0])

static router_result m(const char *method, const char *path, router_match *mm, char *allow) {
    return router_match_path(table, N, ROUTE_F_DEBUG, method, path, mm, allow, 128);
}

static void test_literal_and_params(void **st) {
    (void)st;
    router_match mm;
    char allow[128];
    assert_int_equal(m("GET", "/v1/feedback", &mm, allow), ROUTER_FOUND);
    assert_string_equal(mm.route->summary, "list");
    assert_int_equal(m("POST", "/v1/feedback", &mm, allow), ROUTER_FOUND);
    assert_string_equal(mm.route->summary, "create");
    assert_int_equal(m("GET", "/v1/feedback/abc-123", &mm, allow), ROUTER_FOUND);
    assert_string_equal(mm.route->summary, "get");
    assert_int_equal(mm.n_params, 1);
    assert_int_equal(mm.params[0].name_len, 2);
    assert_memory_equal(mm.params[0].name, "id", 2);
    assert_int_equal(mm.params[0].value_len, 7);
    assert_memory_equal(mm.params[0].value, "abc-123", 7);
    /* a literal segment beats a parameter, whatever the table order */
    assert_int_equal(m("GET", "/v1/feedback/export", &mm, allow), ROUTER_FOUND);
    assert_string_equal(mm.route->summary, "export");
    assert_int_equal(m("POST", "/v1/adapters/7/activate", &mm, allow), ROUTER_FOUND);
    assert_memory_equal(mm.params[0].value, "7", 1);
    assert_int_equal(m("HEAD", "/v1/feedback", &mm, allow), ROUTER_FOUND); /* HEAD = GET */
}

static void test_not_found(void **st) {
    (void)st;
    router_match mm;
    char allow[128];
    const char *paths[] = {"/", "/v1", "/v1/feedback/", "/v1/feedback//", "/v1/feedback/a/b",
                           "/v1/feedbackx", "/v1/adapters/7", "/v1/adapters//activate",
                           "v1/feedback", "", "/debug/x" /* hidden by flag */};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (m("GET", paths[i], &mm, allow) != ROUTER_NOT_FOUND) fail_msg("path '%s' matched", paths[i]);
    assert_int_equal(router_match_path(table, N, 0, "GET", "/debug/x", &mm, allow, 128), ROUTER_FOUND);
}

static void test_method_not_allowed(void **st) {
    (void)st;
    router_match mm;
    char allow[128];
    assert_int_equal(m("PUT", "/v1/feedback", &mm, allow), ROUTER_BAD_METHOD);
    assert_string_equal(allow, "GET, HEAD, POST");
    assert_int_equal(m("POST", "/v1/feedback/9", &mm, allow), ROUTER_BAD_METHOD);
    assert_string_equal(allow, "GET, HEAD, DELETE");
    /* the literal route has no DELETE, so the parameter route takes it */
    assert_int_equal(m("DELETE", "/v1/feedback/export", &mm, allow), ROUTER_FOUND);
    assert_string_equal(mm.route->summary, "delete");
    assert_int_equal(m("GET", "/v1/adapters/7/activate", &mm, allow), ROUTER_BAD_METHOD);
    assert_string_equal(allow, "POST");
}

static void test_pattern_validation(void **st) {
    (void)st;
    assert_true(router_pattern_valid("/v1/x/{id}"));
    assert_true(router_pattern_valid("/v1/{a}/b/{c}"));
    assert_false(router_pattern_valid("v1/x"));
    assert_false(router_pattern_valid("/v1/{id"));
    assert_false(router_pattern_valid("/v1/{}"));
    assert_false(router_pattern_valid("/v1/x{id}"));
    assert_false(router_pattern_valid("/v1/{a}b"));
    assert_false(router_pattern_valid("/v1/}"));
    assert_false(router_pattern_valid("/{a}/{b}/{c}/{d}/{e}"));
}

/* The daemon's own table: valid patterns, no duplicate method+pattern,
 * handlers present, every route reachable by its own pattern. */
static void test_real_table(void **st) {
    (void)st;
    for (size_t i = 0; i < api_routes_count; i++) {
        const route *r = &api_routes[i];
        if (!router_pattern_valid(r->pattern)) fail_msg("bad pattern %s", r->pattern);
        assert_non_null(r->handler);
        assert_non_null(r->summary);
        for (size_t j = i + 1; j < api_routes_count; j++)
            if (!strcmp(r->method, api_routes[j].method) && !strcmp(r->pattern, api_routes[j].pattern))
                fail_msg("duplicate route %s %s", r->method, r->pattern);
        if (strchr(r->pattern, '{')) continue;
        router_match mm;
        char allow[128];
        assert_int_equal(router_match_path(api_routes, api_routes_count, 0, r->method, r->pattern,
                                           &mm, allow, sizeof allow), ROUTER_FOUND);
        assert_ptr_equal(mm.route, r);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_and_params), cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_method_not_allowed), cmocka_unit_test(test_pattern_validation),
        cmocka_unit_test(test_real_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
