/* test_auth.c - API keys from a list and a file; bearer checks. */
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

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_open_when_no_keys), cmocka_unit_test(test_keys)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
