/* cli_train.c - `alignd train KIND ...`: dispatches to the trainers on
 * preference pairs (cli_train.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_train.h"

int cli_train(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "dpo"))
        return cli_train_dpo(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "reward"))
        return cli_train_reward(argc - 1, argv + 1);
    fprintf(stderr, "usage: alignd train dpo|reward -m MODEL (--data FILE.jsonl | --store DB) "
                    "-o DIR [options]\n"
                    "  dpo     DPO on a LoRA adapter, written in PEFT's format\n"
                    "  reward  a Bradley-Terry reward model (scalar head, optional LoRA)\n"
                    "  alignd train KIND --help lists the options\n");
    return 2;
}
