/* test_openapi.c - openapi.yaml and the route table (api/routes.c) must
 * describe the same routes: every (method, path) in one is in the other;
 * and its error table (a row "| `code` | status | type | ...") and the
 * Error schema's type/code enums must list exactly api/api_error.h's errors.
 * The reader understands the layout of our own file: path keys indented two
 * spaces under `paths:`, method keys four spaces under a path. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_error.h"
#include "routes.h"
#include "tu_util.h"

typedef struct op { char method[8]; char path[128]; } op;

static size_t read_ops(const char *text, op *ops, size_t max) {
    size_t n = 0;
    int in_paths = 0;
    char cur[128] = "";
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len && line[0] != ' ' && line[0] != '#') in_paths = strncmp(line, "paths:", 6) == 0;
        else if (in_paths && len >= 4 && !strncmp(line, "  /", 3) && line[len - 1] == ':') {
            snprintf(cur, sizeof cur, "%.*s", (int)(len - 3), line + 2);
        } else if (in_paths && cur[0] && len > 5 && !strncmp(line, "    ", 4) && line[4] != ' ') {
            const char *methods[] = {"get:", "post:", "put:", "patch:", "delete:"};
            for (size_t i = 0; i < 5; i++) {
                size_t ml = strlen(methods[i]);
                if (len == 4 + ml && !strncmp(line + 4, methods[i], ml) && n < max) {
                    for (size_t k = 0; k < ml - 1; k++) ops[n].method[k] = (char)toupper(methods[i][k]);
                    ops[n].method[ml - 1] = '\0';
                    snprintf(ops[n].path, sizeof ops[n].path, "%s", cur);
                    n++;
                }
            }
        }
        line += len + (nl ? 1 : 0);
    }
    return n;
}

static void test_spec_equals_table(void **st) {
    (void)st;
    char *path = tu_source_path("openapi.yaml");
    char *text = tu_read_file(path, NULL);
    assert_non_null(text);
    op ops[256];
    size_t n = read_ops(text, ops, 256);
    assert_true(n > 0);
    int bad = 0;
    for (size_t i = 0; i < api_routes_count; i++) {
        int found = 0;
        for (size_t j = 0; j < n; j++)
            found |= !strcmp(ops[j].method, api_routes[i].method) && !strcmp(ops[j].path, api_routes[i].pattern);
        if (!found) {
            print_error("route %s %s is missing from openapi.yaml\n", api_routes[i].method, api_routes[i].pattern);
            bad++;
        }
    }
    for (size_t j = 0; j < n; j++) {
        int found = 0;
        for (size_t i = 0; i < api_routes_count; i++)
            found |= !strcmp(ops[j].method, api_routes[i].method) && !strcmp(ops[j].path, api_routes[i].pattern);
        if (!found) {
            print_error("openapi.yaml has %s %s, which the route table lacks\n", ops[j].method, ops[j].path);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
    free(text);
    free(path);
}

/* The error table row of code in text: its status and type, 0 when absent. */
static int table_row(const char *text, const char *code, unsigned *status, char *type, size_t tl) {
    char key[64];
    snprintf(key, sizeof key, "| `%s` | ", code);
    const char *p = strstr(text, key);
    if (!p) return 0;
    char t[64];
    if (sscanf(p + strlen(key), "%u | %63[a-z_] |", status, t) != 2) return 0;
    snprintf(type, tl, "%s", t);
    return 1;
}

/* Whether the enum list after `marker` (one line "enum: [a, b, ...]")
 * holds exactly the n words. */
static int enum_equals(const char *text, const char *marker, const char *const *words, size_t n) {
    const char *p = strstr(text, marker);
    if (!p || !(p = strstr(p, "enum: ["))) return 0;
    const char *end = strchr(p, ']');
    size_t count = 0;
    for (const char *q = p + 7; q < end;) {
        while (q < end && (*q == ' ' || *q == ',')) q++;
        const char *w = q;
        while (q < end && *q != ',' && *q != ' ') q++;
        if (q == w) break;
        int found = 0;
        for (size_t i = 0; i < n; i++)
            found |= strlen(words[i]) == (size_t)(q - w) && !strncmp(words[i], w, (size_t)(q - w));
        if (!found) { print_error("%s enum has %.*s, which api_error.h lacks\n", marker, (int)(q - w), w); return 0; }
        count++;
    }
    if (count != n) print_error("%s enum lists %zu values, api_error.h has %zu\n", marker, count, n);
    return count == n;
}

static void test_error_table(void **st) {
    (void)st;
    char *path = tu_source_path("openapi.yaml");
    char *text = tu_read_file(path, NULL);
    assert_non_null(text);
    const char *codes[API_ERR__COUNT], *types[API_ERR__COUNT];
    size_t n_types = 0;
    int bad = 0;
    for (int c = 0; c < API_ERR__COUNT; c++) {
        codes[c] = api_error_code_str((api_error_code)c);
        int seen = 0;
        for (size_t k = 0; k < n_types; k++) seen |= !strcmp(types[k], api_error_type((api_error_code)c));
        if (!seen) types[n_types++] = api_error_type((api_error_code)c);
        unsigned status = 0;
        char type[64];
        if (!table_row(text, codes[c], &status, type, sizeof type)) {
            print_error("openapi.yaml's error table has no row for `%s`\n", codes[c]);
            bad++;
        } else if (status != api_error_status((api_error_code)c) ||
                   strcmp(type, api_error_type((api_error_code)c))) {
            print_error("`%s`: table says %u %s, api_error.h %u %s\n", codes[c], status, type,
                        api_error_status((api_error_code)c), api_error_type((api_error_code)c));
            bad++;
        }
    }
    /* no row for a code the daemon does not have */
    for (const char *p = text; (p = strstr(p, "\n    | `")); p++) {
        char code[64];
        if (sscanf(p + 8, "%63[a-z_]`", code) != 1) continue;
        int known = 0;
        for (int c = 0; c < API_ERR__COUNT; c++) known |= !strcmp(code, codes[c]);
        if (!known) { print_error("the error table has `%s`, which api_error.h lacks\n", code); bad++; }
    }
    bad += !enum_equals(text, "description: What is wrong", types, n_types);
    bad += !enum_equals(text, "description: The request field at fault", codes, API_ERR__COUNT);
    assert_int_equal(bad, 0);
    free(text);
    free(path);
}

/* The reader itself must notice a difference (so the test can fail). */
static void test_reader(void **st) {
    (void)st;
    const char *y = "openapi: 3.1.0\npaths:\n  /a/{id}:\n    get:\n      x: 1\n    delete:\n"
                    "  /b:\n    post:\ncomponents:\n  /c:\n    get:\n";
    op ops[8];
    size_t n = read_ops(y, ops, 8);
    assert_int_equal(n, 3);
    assert_string_equal(ops[0].method, "GET");
    assert_string_equal(ops[0].path, "/a/{id}");
    assert_string_equal(ops[1].method, "DELETE");
    assert_string_equal(ops[2].method, "POST");
    assert_string_equal(ops[2].path, "/b");
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_reader), cmocka_unit_test(test_spec_equals_table),
                                       cmocka_unit_test(test_error_table)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
