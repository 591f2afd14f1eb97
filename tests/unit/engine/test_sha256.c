/* test_sha256.c - SHA-256 against the NIST FIPS 180-4 example vectors
 * (and the million-'a' vector), fed whole and in odd-sized pieces, and
 * the file digest. */
#include "tu_util.h"

#include "sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct { const char *msg, *hex; } vectors[] = {
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
     "lmnopqrsmnopqrstnopqrstu",
     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
};

static void test_vectors(void **st)
{
    (void)st;
    char hex[SHA256_HEX_LEN + 1];
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        sha256_hex(vectors[i].msg, strlen(vectors[i].msg), hex);
        assert_string_equal(hex, vectors[i].hex);
    }
}

/* Pieces of 1..7 bytes cross every block boundary. */
static void test_pieces(void **st)
{
    (void)st;
    const char *m = vectors[3].msg;
    size_t n = strlen(m), off = 0;
    sha256_ctx c;
    uint8_t d[SHA256_DIGEST_LEN];
    sha256_init(&c);
    for (size_t k = 1; off < n; k = k % 7 + 1) {
        size_t take = n - off < k ? n - off : k;
        sha256_update(&c, m + off, take);
        off += take;
    }
    sha256_final(&c, d);
    char hex[SHA256_HEX_LEN + 1];
    for (int i = 0; i < SHA256_DIGEST_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    assert_string_equal(hex, vectors[3].hex);
}

static void test_million_a_file(void **st)
{
    (void)st;
    char path[] = "/tmp/alignd_sha_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char *buf = malloc(1000000);
    assert_non_null(buf);
    memset(buf, 'a', 1000000);
    assert_int_equal(write(fd, buf, 1000000), 1000000);
    close(fd);
    char hex[SHA256_HEX_LEN + 1];
    sha256_hex(buf, 1000000, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    memset(hex, 0, sizeof hex);
    assert_int_equal(sha256_file_hex(path, hex), 0);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    unlink(path);
    assert_true(sha256_file_hex(path, hex) < 0);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_pieces),
        cmocka_unit_test(test_million_a_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
