/* main.c - alignd's entry point: configuration, then the daemon (or a
 * subcommand). Exit status: 0 ok, 1 runtime failure, 2 bad usage/config. */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "cli.h"
#include "cfg_args.h"
#include "cfg_pack.h"
#include "engine_version.h"
#include "log.h"

extern char **environ;

static void main__usage(FILE *out) {
    fprintf(out,
            "alignd %s - model-serving daemon with a built-in RLHF loop\n\n"
            "Usage: alignd [OPTIONS]                              run the daemon\n"
            "       alignd generate -m MODEL -p PROMPT [-n N]     continue a prompt (see generate --help)\n"
            "       alignd tokenize -m MODEL [--pieces] TEXT      print a model's token ids\n"
            "       alignd perplexity -m MODEL -f FILE            score a text file (see\n"
            "                                                    perplexity --help)\n"
            "       alignd quantize IN.gguf OUT.gguf q8_0|q4_0     quantize a model's weight matrices\n"
            "       alignd pretrain --corpus FILE -o OUT.gguf     train a small model from text\n"
            "                                                    (see pretrain --help)\n"
            "       alignd pretrain clip --data DIR -o OUT_DIR    train a small CLIP model from\n"
            "                                                    images (see pretrain clip --help)\n"
            "       alignd pretrain embed -m LM.gguf --data ITEMS.jsonl -o OUT.gguf\n"
            "                                                    a sentence-embedding model from an\n"
            "                                                    LM (see pretrain embed --help)\n"
            "       alignd train dpo -m MODEL --data PAIRS.jsonl -o ADAPTER\n"
            "                                                    DPO on a LoRA adapter\n"
            "       alignd train reward -m MODEL --data PAIRS.jsonl -o DIR\n"
            "                                                    a reward model (see train --help)\n\n"
            "Options:\n"
            "  -c, --config FILE                 read an INI configuration file\n"
            "  --print-config                    print the effective configuration and where\n"
            "                                    each value came from, then exit\n"
            "  --print-example-config            print a documented example INI file, then exit\n"
            "  --version                         print the version, then exit\n"
            "  -h, --help                        this help\n\n"
            "Configuration flags (precedence: defaults < --config file < environment\n"
            "ALIGND_SECTION_KEY < flags):\n",
            ALIGND_VERSION);
    cfg_print_flags(out);
}

int main(int argc, char **argv) {
    cfg c;
    cfg_cli cli;
    char err[1024], pack[1024] = "";
    int rc = 2;
    if (cfg_load_all(&c, &cli, argc, argv, environ, err, sizeof err) != 0 ||
        cfg_apply_pack(&c, ALIGND_PACK_DIR, pack, sizeof pack, err, sizeof err) != 0 ||
        cfg_validate(&c, err, sizeof err) != 0) {
        fprintf(stderr, "alignd: configuration error: %s\n", err);
        goto out;
    }
    if (cli.help) {
        main__usage(stdout);
        rc = 0;
        goto out;
    }
    if (cli.version) {
        printf("alignd %s (OpenBLAS %s)\n", ALIGND_VERSION, engine_blas_config());
        rc = 0;
        goto out;
    }
    if (cli.print_example) {
        cfg_print_example(stdout);
        rc = 0;
        goto out;
    }
    if (cli.print_config) {
        cfg_print(&c, stdout);
        rc = 0;
        goto out;
    }
    if (cli.n_args > 0) {
        if (strcmp(cli.args[0], "tokenize") == 0) rc = cli_tokenize(cli.n_args, cli.args);
        else if (strcmp(cli.args[0], "generate") == 0) rc = cli_generate(cli.n_args, cli.args);
        else if (strcmp(cli.args[0], "perplexity") == 0) rc = cli_perplexity(cli.n_args, cli.args);
        else if (strcmp(cli.args[0], "quantize") == 0) rc = cli_quantize(cli.n_args, cli.args);
        else if (strcmp(cli.args[0], "pretrain") == 0)
            rc = cli.n_args > 1 && strcmp(cli.args[1], "clip") == 0
                     ? cli_pretrain_clip(cli.n_args - 1, cli.args + 1)
                 : cli.n_args > 1 && strcmp(cli.args[1], "embed") == 0
                     ? cli_pretrain_embed(cli.n_args - 1, cli.args + 1)
                     : cli_pretrain(cli.n_args, cli.args);
        else if (strcmp(cli.args[0], "train") == 0) rc = cli_train(cli.n_args, cli.args);
        else fprintf(stderr, "alignd: unknown command '%s' (see alignd --help)\n", cli.args[0]);
        goto out;
    }
    if (log_init(c.log_file, (log_level)log_level_parse(c.log_level), err, sizeof err) != 0) {
        fprintf(stderr, "alignd: %s\n", err);
        rc = 1;
        goto out;
    }
    if (pack[0])
        LOG_INF("app", "no model configured: serving the default model pack %s", pack);
    rc = app_run(&c);
    log_close();
out:
    cfg_cli_free(&cli);
    cfg_free(&c);
    return rc;
}
