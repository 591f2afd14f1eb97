/* test_auth.c - API keys from a list and a file; roles; bearer checks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "tu_util.h"

static void test_open_when_no_keys(void **st) {
    (void)st;
    auth a;
    char err[256];
    assert_int_equal(auth_init(&a, "", NULL, err, sizeof err), 0);
    assert_true(auth_disabled(&a));
    assert_true(auth_check(&a, NULL));
    auth_free(&a);
}

static void test_keys(void **st) {
    (void)st;
    char path[] = "/tmp/alignd_keys_XXXXXX";
    int fd = mkstemp(path);
    const char *text = "# comment\nfile-key-1\n\n  file-key-2  \n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    auth a;
    char err[256];
    assert_int_equal(auth_init(&a, "alpha, beta,,", path, err, sizeof err), 0);
    assert_int_equal(a.n_keys, 4);
    assert_false(auth_disabled(&a));
    assert_true(auth_check(&a, "Bearer alpha"));
    assert_true(auth_check(&a, "bearer beta"));
    assert_true(auth_check(&a, "Bearer file-key-2"));
    const char *bad[] = {NULL, "", "alpha", "Bearer ", "Bearer alph", "Bearer alphaa",
                         "Bearer Alpha", "Basic alpha", "Bearer # comment", "Bearer file-key-"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (auth_check(&a, bad[i])) fail_msg("accepted '%s'", bad[i] ? bad[i] : "(null)");
    auth_free(&a);
    unlink(path);
    assert_int_not_equal(auth_init(&a, "", "/nonexistent/keys", err, sizeof err), 0);
    assert_non_null(strstr(err, "/nonexistent/keys"));
}

static void test_roles(void **st) {
    (void)st;
    char path[] = "/tmp/alignd_keys_XXXXXX";
    int fd = mkstemp(path);
    const char *text = "# infer:commented-out\n  # indented comment\nfeedback:ff-1\nADMIN: aa-2\n"
                       "infer:ii-2\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    auth a;
    char err[256];
    /* bare keys are admin (what every key could do before roles); a ':' after
     * something that is not only letters is part of the key */
    assert_int_equal(auth_init(&a, "infer:ii-1, feedback:ff-0,bare,sk-1:x:y", path, err, sizeof err), 0);
    assert_int_equal(a.n_keys, 7);
    assert_int_equal(auth_role_of(&a, "Bearer ii-1"), AUTH_ROLE_INFER);
    assert_int_equal(auth_role_of(&a, "Bearer ii-2"), AUTH_ROLE_INFER);
    assert_int_equal(auth_role_of(&a, "Bearer ff-0"), AUTH_ROLE_FEEDBACK);
    assert_int_equal(auth_role_of(&a, "Bearer ff-1"), AUTH_ROLE_FEEDBACK);
    assert_int_equal(auth_role_of(&a, "Bearer bare"), AUTH_ROLE_ADMIN);
    assert_int_equal(auth_role_of(&a, "Bearer aa-2"), AUTH_ROLE_ADMIN);
    assert_int_equal(auth_role_of(&a, "Bearer sk-1:x:y"), AUTH_ROLE_ADMIN);
    const char *none[] = {NULL, "Bearer infer:ii-1", "Bearer ii-", "Bearer commented-out",
                          "Bearer feedback", "Basic bare", "Bearer "};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
        if (auth_role_of(&a, none[i]) != AUTH_ROLE_NONE) fail_msg("accepted '%s'", none[i] ? none[i] : "(null)");

    /* the role order: infer < feedback < admin */
    assert_int_equal(auth_authorize(&a, AUTH_ROLE_INFER, "Bearer ii-1"), AUTH_OK);
    assert_int_equal(auth_authorize(&a, AUTH_ROLE_FEEDBACK, "Bearer ii-1"), AUTH_FORBIDDEN);
    assert_int_equal(auth_authorize(&a, AUTH_ROLE_ADMIN, "Bearer ii-1"), AUTH_FORBIDDEN);
    assert_int_equal(auth_authorize(&a, AUTH_ROLE_INFER, "Bearer ff-1"), AUTH_OK);
    assert_int_equal(auth_authorize(&a, AUTH_ROLE_FEEDBACK, "Bearer ff-1"), AUTH_OK);
    assert_int_equal(auth_authorize(&a, AUTH_ROLE_ADMIN, "Bearer ff-1"), AUTH_FORBIDDEN);
    assert_int_equal(auth_authorize(&a, AUTH_ROLE_ADMIN, "Bearer bare"), AUTH_OK);
    assert_int_equal(auth_authorize(&a, AUTH_ROLE_INFER, "Bearer wrong"), AUTH_UNAUTHORIZED);
    assert_int_equal(auth_authorize(&a, AUTH_ROLE_INFER, NULL), AUTH_UNAUTHORIZED);
    assert_true(auth_check(&a, "Bearer ii-1"));
    auth_free(&a);
    unlink(path);

    assert_string_equal(auth_role_name(AUTH_ROLE_FEEDBACK), "feedback");
    assert_int_equal(auth_role_parse("Infer", 5), AUTH_ROLE_INFER);
    assert_int_equal(auth_role_parse("inferx", 6), AUTH_ROLE_NONE);

    /* no keys: open, every role */
    assert_int_equal(auth_init(&a, " , ", NULL, err, sizeof err), 0);
    assert_int_equal(auth_authorize(&a, AUTH_ROLE_ADMIN, NULL), AUTH_OK);
    auth_free(&a);

    /* errors name the source and the role, never the key */
    assert_int_not_equal(auth_init(&a, "ok-key,reader:sekrit", NULL, err, sizeof err), 0);
    assert_non_null(strstr(err, "server.api_keys"));
    assert_non_null(strstr(err, "'reader'"));
    assert_null(strstr(err, "sekrit"));
    assert_int_equal(a.n_keys, 0);
    assert_int_not_equal(auth_init(&a, "admin:", NULL, err, sizeof err), 0);
    assert_non_null(strstr(err, "empty"));
    assert_int_not_equal(auth_init(&a, "infer:two words", NULL, err, sizeof err), 0);
    assert_null(strstr(err, "words"));
}

/* The comparison must stay constant-time: auth.c compares every key in full
 * (no memcmp/strcmp that stop at the first difference) and selects the role
 * without a branch on the match. Checked on the source, as timing tests are
 * flaky. */
static void test_constant_time_compare_used(void **st) {
    (void)st;
    FILE *f = fopen(ALIGND_SOURCE_DIR "/server/auth.c", "r");
    assert_non_null(f);
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *fn = strstr(buf, "auth_role auth_role_of(");
    assert_non_null(fn);
    const char *end = strstr(fn, "\n}\n");
    assert_non_null(end);
    char body[4096];
    size_t bl = (size_t)(end - fn) < sizeof body - 1 ? (size_t)(end - fn) : sizeof body - 1;
    memcpy(body, fn, bl);
    body[bl] = '\0';
    assert_non_null(strstr(body, "auth__differs("));
    assert_null(strstr(body, "memcmp"));
    assert_null(strstr(body, "strcmp"));
    assert_null(strstr(body, "break"));
    assert_null(strstr(body, "return a->roles"));
    const char *differs = strstr(buf, "static unsigned auth__differs(");
    assert_non_null(differs);
    assert_null(strstr(differs, "memcmp("));
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_open_when_no_keys), cmocka_unit_test(test_keys),
                                       cmocka_unit_test(test_roles),
                                       cmocka_unit_test(test_constant_time_compare_used)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
