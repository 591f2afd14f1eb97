/* test_config.c - configuration: defaults, precedence file < env < flags,
 * error messages naming key and source, the example file kept in sync. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "cfg_args.h"
#include "cfg_pack.h"
#include "tu_util.h"

static char *write_tmp(const char *text) {
    char *path = strdup("/tmp/alignd_cfg_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_defaults_match_table(void **st) {
    (void)st;
    cfg c;
    assert_int_equal(cfg_init(&c), 0);
    assert_string_equal(c.server_host, "127.0.0.1");
    assert_int_equal(c.server_port, 8080);
    assert_int_equal(c.server_max_body_size, 1u << 20);
    assert_true(c.server_public_health);
    assert_false(c.server_debug_routes);
    assert_string_equal(c.log_level, "info");
    for (int i = 0; i < CFG_KEY_COUNT; i++) {
        assert_int_equal(c.origin[i].source, CFG_SRC_DEFAULT);
        assert_non_null(cfg_descs[i].help);
        assert_true(strlen(cfg_descs[i].help) > 10); /* every key documented */
    }
    cfg_free(&c);
}

static void test_precedence(void **st) {
    (void)st;
    char *path = write_tmp("[server]\nport = 9001\nhost = 0.0.0.0\nshutdown_grace = 7\n"
                           "[log]\nlevel = warn\n");
    char *env[] = {"ALIGND_SERVER_PORT=9002", "ALIGND_LOG_LEVEL=error", "PATH=/bin",
                   "ALIGND_UNRELATED_THING=1", NULL};
    char *argv[] = {"alignd", "--config", path, "--server.port=9003", "--log.access=false",
                    "--server.max_body_size", "64K", NULL};
    cfg c;
    cfg_cli cli;
    char err[512] = "";
    assert_int_equal(cfg_load_all(&c, &cli, 7, argv, env, err, sizeof err), 0);
    assert_int_equal(c.server_port, 9003);                   /* flag wins over env and file */
    assert_string_equal(c.log_level, "error");               /* env wins over file */
    assert_string_equal(c.server_host, "0.0.0.0");           /* file wins over default */
    assert_int_equal(c.server_shutdown_grace, 7);
    assert_int_equal(c.server_max_body_size, 64 * 1024);     /* "--key value" form, K suffix */
    assert_false(c.log_access);
    assert_int_equal(c.server_connection_timeout, 30);       /* default */
    assert_int_equal(c.origin[CFG_KEY_server_port].source, CFG_SRC_FLAG);
    assert_int_equal(c.origin[CFG_KEY_log_level].source, CFG_SRC_ENV);
    assert_int_equal(c.origin[CFG_KEY_server_host].source, CFG_SRC_FILE);
    assert_non_null(strstr(c.origin[CFG_KEY_log_level].where, "ALIGND_LOG_LEVEL"));
    assert_non_null(strstr(c.origin[CFG_KEY_server_host].where, path));

    /* --print-config shows each value's source */
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    cfg_print(&c, f);
    fclose(f);
    assert_non_null(strstr(buf, "port = 9003 ; flag --server.port"));
    assert_non_null(strstr(buf, "level = error ; env ALIGND_LOG_LEVEL"));
    assert_non_null(strstr(buf, "connection_timeout = 30 ; default"));
    free(buf);
    cfg_free(&c);
    cfg_cli_free(&cli);
    unlink(path);
    free(path);
}

static void test_secret_masked(void **st) {
    (void)st;
    char *argv[] = {"alignd", "--server.api_keys=sk-very-secret", NULL};
    char *env[] = {NULL};
    cfg c;
    cfg_cli cli;
    char err[512];
    assert_int_equal(cfg_load_all(&c, &cli, 2, argv, env, err, sizeof err), 0);
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    cfg_print(&c, f);
    fclose(f);
    assert_null(strstr(buf, "sk-very-secret"));
    assert_non_null(strstr(buf, "api_keys = (secret, hidden)"));
    free(buf);
    cfg_free(&c);
    cfg_cli_free(&cli);
}

/* One row per bad input: the source, and what the message must name. */
typedef struct bad_case {
    const char *file;  /* INI text or NULL */
    const char *env;   /* one VAR=value or NULL */
    const char *flag;  /* one argv word or NULL */
    const char *want1, *want2;
} bad_case;

static const bad_case bad_cases[] = {
    {"[server]\nport = 70000\n", NULL, NULL, "server.port", "out of range"},
    {"[server]\nport = eighty\n", NULL, NULL, "server.port", "not an integer"},
    {"[server]\nport = 80\nnosuch = 1\n", NULL, NULL, "unknown configuration key [server] nosuch", "line 3"},
    {"[nosection]\nport = 1\n", NULL, NULL, "unknown configuration key [nosection] port", ""},
    {"[server\nport=1\n", NULL, NULL, "outside any [section]", "line 1"},
    {"[server]\nport 80\n", NULL, NULL, "syntax error", ":2"},
    {"[server]\npublic_health = maybe\n", NULL, NULL, "server.public_health", "not a boolean"},
    {"[log]\nlevel = loud\n", NULL, NULL, "log.level", "debug|info|warn|error"},
    {NULL, "ALIGND_SERVER_PORT=abc", NULL, "server.port = 'abc' (from env ALIGND_SERVER_PORT)", "not an integer"},
    {NULL, "ALIGND_SERVER_PROT=80", NULL, "unknown configuration key", "ALIGND_SERVER_PROT"},
    {NULL, "ALIGND_SERVER_MAX_BODY_SIZE=12Q", NULL, "server.max_body_size", "not a size"},
    {NULL, "ALIGND_SERVER_MAX_BODY_SIZE=10", NULL, "server.max_body_size", "out of range"},
    {NULL, NULL, "--server.port=0", "server.port = '0' (from flag --server.port)", "out of range"},
    {NULL, NULL, "--server.nope=1", "unknown option --server.nope", ""},
    {NULL, NULL, "--verbose", "unknown option --verbose", ""},
    {NULL, NULL, "--server.port", "needs a value", "--server.port"},
};

static void test_bad_values(void **st) {
    (void)st;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *bc = &bad_cases[i];
        char *path = bc->file ? write_tmp(bc->file) : NULL;
        char *argv[6] = {"alignd"};
        int argc = 1;
        if (path) argv[argc++] = "--config", argv[argc++] = path;
        if (bc->flag) argv[argc++] = (char *)bc->flag;
        char *env[2] = {(char *)bc->env, NULL};
        cfg c;
        cfg_cli cli;
        char err[512] = "";
        int rc = cfg_load_all(&c, &cli, argc, argv, env, err, sizeof err);
        if (rc == 0 || !strstr(err, bc->want1) || !strstr(err, bc->want2))
            fail_msg("case %zu: rc %d, message '%s' should name '%s' and '%s'", i, rc, err,
                     bc->want1, bc->want2);
        if (path && bc->file && strstr(bc->want1, "server.") == bc->want1)
            assert_non_null(strstr(err, path)); /* file errors name the file */
        cfg_free(&c);
        cfg_cli_free(&cli);
        if (path) unlink(path);
        free(path);
    }
}

static void test_missing_file(void **st) {
    (void)st;
    char *argv[] = {"alignd", "--config=/nonexistent/alignd.ini", NULL};
    char *env[] = {NULL};
    cfg c;
    cfg_cli cli;
    char err[512] = "";
    assert_int_not_equal(cfg_load_all(&c, &cli, 2, argv, env, err, sizeof err), 0);
    assert_non_null(strstr(err, "/nonexistent/alignd.ini"));
    cfg_free(&c);
    cfg_cli_free(&cli);
}

static void test_cli_words(void **st) {
    (void)st;
    char *argv[] = {"alignd", "--print-config", "--server.debug_routes", "generate", "-m",
                    "x.gguf", "--temp", "0.5", NULL};
    char *env[] = {NULL};
    cfg c;
    cfg_cli cli;
    char err[512] = "";
    assert_int_equal(cfg_load_all(&c, &cli, 8, argv, env, err, sizeof err), 0);
    assert_true(cli.print_config);
    assert_true(c.server_debug_routes); /* bare boolean flag */
    assert_int_equal(cli.n_args, 5);    /* the subcommand owns every later word */
    assert_string_equal(cli.args[0], "generate");
    assert_string_equal(cli.args[3], "--temp");
    cfg_free(&c);
    cfg_cli_free(&cli);
}

static void test_model_sections(void **st) {
    (void)st;
    char *path = write_tmp("[model.tiny]\npath = /models/tiny.gguf\nmax_seqs = 8\n"
                           "[model.big-1]\npath = /models/big\ntemperature = 0.5\n");
    char *argv[] = {"alignd", "--config", path, "--model.tiny.max_seqs=4", "--model", "extra=/m/x.gguf",
                    "--model.extra.n_ctx", "128", "--model.big-1.adapters=a=/x/a.d,b=/y", NULL};
    char *env[] = {NULL};
    cfg c;
    cfg_cli cli;
    char err[512] = "";
    if (cfg_load_all(&c, &cli, 9, argv, env, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(c.n_models, 3);
    assert_string_equal(c.models[0].name, "tiny");
    assert_string_equal(c.models[0].path, "/models/tiny.gguf");
    assert_int_equal(c.models[0].max_seqs, 4); /* flag over file */
    assert_int_equal(c.models[0].origin[CFG_MKEY_max_seqs].source, CFG_SRC_FLAG);
    assert_string_equal(c.models[1].name, "big-1");
    assert_true(c.models[1].temperature == 0.5);
    assert_int_equal(c.models[1].max_batch_tokens, 512); /* default */
    assert_string_equal(c.models[1].adapters, "a=/x/a.d,b=/y"); /* '=' and '.' in a value */
    assert_string_equal(c.models[2].path, "/m/x.gguf");
    assert_int_equal(c.models[2].n_ctx, 128);
    cfg_free(&c);
    cfg_cli_free(&cli);
    unlink(path);
    free(path);

    struct { const char *a, *b, *want; } bad[] = {
        {"--model.tiny.max_seqs=4", NULL, "model 'tiny' has no path"},
        {"--model", "noequals", "--model needs NAME=PATH"},
        {"--model", "bad name=/x", "model name 'bad name'"},
        {"--model.x.nosuch=1", NULL, "no per-model key 'nosuch'"},
        {"--model.x.max_seqs=0", NULL, "model.x.max_seqs = '0' (from flag --model.x.max_seqs): out of range"},
        {"--model.x.temperature=hot", NULL, "not a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *av[4] = {"alignd", (char *)bad[i].a, (char *)bad[i].b, NULL};
        int ac = bad[i].b ? 3 : 2;
        cfg c2;
        cfg_cli cli2;
        err[0] = '\0';
        int rc = cfg_load_all(&c2, &cli2, ac, av, env, err, sizeof err);
        if (rc == 0 || !strstr(err, bad[i].want)) fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].want);
        cfg_free(&c2);
        cfg_cli_free(&cli2);
    }
    char *p2 = write_tmp("[model.m]\npath = /x\nbogus = 1\n");
    char *av[] = {"alignd", "--config", p2, NULL};
    cfg c3;
    cfg_cli cli3;
    assert_int_not_equal(cfg_load_all(&c3, &cli3, 3, av, env, err, sizeof err), 0);
    assert_non_null(strstr(err, "unknown configuration key [model.m] bogus"));
    cfg_free(&c3);
    cfg_cli_free(&cli3);
    unlink(p2);
    free(p2);
}

/* config/alignd.ini documents every key: it must equal the generated text. */
static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Loads argv (NULL-terminated) and applies the pack; the error or "". */
static int load_with_pack(cfg *c, char **argv, const char *installed, char *used, char *err,
                          size_t errlen) {
    int argc = 0;
    while (argv[argc]) argc++;
    char *env[] = {NULL};
    cfg_cli cli;
    int rc = cfg_load_all(c, &cli, argc, argv, env, err, errlen);
    cfg_cli_free(&cli);
    if (!rc) rc = cfg_apply_pack(c, installed, used, 512, err, errlen);
    return rc;
}

/* The default model pack: served only when no model is configured, paths
 * relative to the pack's folder, only [model.*] sections, "none" and a
 * named pack, the working directory's models/pack.ini before the
 * installed one. */
static void test_model_pack(void **st) {
    (void)st;
    char *dir = tu_tmpdir("pack");
    char pack[512], bad[512], cwd_models[512], used[512], err[512];
    tu_join(pack, sizeof pack, dir, "pack.ini");
    write_file(pack, "[model.lm]\npath = lm.gguf\nembed_pooling = mean\n"
                     "[model.abs]\npath = /elsewhere/clip\n");
    cfg c;
    char flag[600];
    snprintf(flag, sizeof flag, "--server.model_pack=%s", pack);
    char *named[] = {"alignd", flag, NULL};
    assert_int_equal(load_with_pack(&c, named, NULL, used, err, sizeof err), 0);
    assert_int_equal(c.n_models, 2);
    char want[600];
    snprintf(want, sizeof want, "%s/lm.gguf", dir);
    assert_string_equal(c.models[0].path, want);
    assert_string_equal(c.models[0].embed_pooling, "mean");
    assert_string_equal(c.models[1].path, "/elsewhere/clip");
    assert_string_equal(used, pack);
    cfg_free(&c);

    /* a configured model wins: no pack */
    char *configured[] = {"alignd", flag, "--model", "mine=/m/x.gguf", NULL};
    assert_int_equal(load_with_pack(&c, configured, NULL, used, err, sizeof err), 0);
    assert_int_equal(c.n_models, 1);
    assert_string_equal(used, "");
    cfg_free(&c);

    char *none[] = {"alignd", "--server.model_pack=none", NULL};
    assert_int_equal(load_with_pack(&c, none, dir, used, err, sizeof err), 0);
    assert_int_equal(c.n_models, 0);
    cfg_free(&c);

    /* auto: the installed pack when the working directory has none ... */
    char *autoargv[] = {"alignd", NULL};
    char old[512];
    assert_non_null(getcwd(old, sizeof old));
    assert_int_equal(chdir(dir), 0);
    assert_int_equal(load_with_pack(&c, autoargv, dir, used, err, sizeof err), 0);
    assert_int_equal(c.n_models, 2);
    cfg_free(&c);
    /* ... and the working directory's models/pack.ini before it */
    tu_join(cwd_models, sizeof cwd_models, dir, "models");
    assert_int_equal(mkdir(cwd_models, 0700), 0);
    write_file("models/pack.ini", "[model.here]\npath = here.gguf\n");
    assert_int_equal(load_with_pack(&c, autoargv, dir, used, err, sizeof err), 0);
    assert_int_equal(c.n_models, 1);
    assert_string_equal(c.models[0].path, "models/here.gguf");
    assert_string_equal(used, "models/pack.ini");
    cfg_free(&c);
    unlink("models/pack.ini");
    rmdir("models");
    assert_int_equal(chdir(old), 0);

    /* a pack may not set other keys; a named pack must exist */
    tu_join(bad, sizeof bad, dir, "bad.ini");
    write_file(bad, "[server]\nport = 1\n[model.x]\npath = x\n");
    snprintf(flag, sizeof flag, "--server.model_pack=%s", bad);
    assert_int_not_equal(load_with_pack(&c, named, NULL, used, err, sizeof err), 0);
    assert_non_null(strstr(err, "sets server.port"));
    cfg_free(&c);
    snprintf(flag, sizeof flag, "--server.model_pack=%s/missing.ini", dir);
    assert_int_not_equal(load_with_pack(&c, named, NULL, used, err, sizeof err), 0);
    assert_non_null(strstr(err, "missing.ini"));
    cfg_free(&c);
    unlink(pack);
    unlink(bad);
    rmdir(dir);
    free(dir);
}

static void test_example_file_in_sync(void **st) {
    (void)st;
    char *path = tu_source_path("config/alignd.ini");
    size_t len;
    char *text = tu_read_file(path, &len);
    assert_non_null(text);
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    cfg_print_example(f);
    fclose(f);
    if (strcmp(text, buf) != 0)
        fail_msg("config/alignd.ini is stale: regenerate it with "
                 "`alignd --print-example-config > config/alignd.ini`");
    /* inih cuts lines at INI_MAX_LINE - 1 bytes and parses the rest as a
     * line of its own: a long help text would break the file */
    for (const char *l = buf; *l;) {
        size_t ll = strcspn(l, "\n");
        if (ll >= INI_MAX_LINE - 1) fail_msg("config/alignd.ini: a line of %zu bytes: %.60s...", ll, l);
        l += ll + (l[ll] == '\n');
    }
    /* and it loads cleanly, giving the defaults */
    char *argv[] = {"alignd", "--config", path, NULL};
    char *env[] = {NULL};
    cfg c;
    cfg_cli cli;
    char err[512] = "";
    assert_int_equal(cfg_load_all(&c, &cli, 3, argv, env, err, sizeof err), 0);
    assert_int_equal(c.server_port, 8080);
    cfg_free(&c);
    cfg_cli_free(&cli);
    free(buf);
    free(text);
    free(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_match_table), cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_secret_masked),        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_missing_file),         cmocka_unit_test(test_cli_words),
        cmocka_unit_test(test_example_file_in_sync), cmocka_unit_test(test_model_sections),
        cmocka_unit_test(test_model_pack),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
