/* cli_train.h - `alignd train KIND ...`: training on preference pairs
 * (server/cli_train.c dispatches on KIND). Like cli.h's commands, each
 * takes its command word (argv[0], e.g. "reward") and its arguments, and
 * returns the process exit status (0 ok, 1 failure, 2 bad usage). Main
 * thread. */
#ifndef CLI_TRAIN_H
#define CLI_TRAIN_H

/* alignd train dpo -m MODEL (--data FILE.jsonl | --store DB) -o ADAPTER_DIR
 * [options]: DPO on a LoRA adapter (server/cli_train_dpo.c). */
int cli_train_dpo(int argc, char **argv);

/* alignd train reward -m MODEL (--data FILE.jsonl | --store DB) -o OUTDIR
 * [options]: a Bradley-Terry reward model (server/cli_train_reward.c). */
int cli_train_reward(int argc, char **argv);

#endif
