/* cli.h - alignd's subcommands (alignd COMMAND ...). Each takes the command
 * word and its arguments and returns the process exit status (0 ok, 1
 * failure, 2 bad usage). Main thread. */
#ifndef CLI_H
#define CLI_H

/* alignd tokenize -m MODEL [--no-special] [--pieces] TEXT */
int cli_tokenize(int argc, char **argv);

/* alignd generate -m MODEL -p PROMPT [-n N] [--temp X ...] */
int cli_generate(int argc, char **argv);

/* alignd perplexity -m MODEL -f FILE [--ctx N] [--stride N] [--batch N]
 * [--no-bos] [--json] [--dump FILE] [-t N] (server/cli_perplexity.c) */
int cli_perplexity(int argc, char **argv);

/* alignd quantize IN.gguf OUT.gguf q8_0|q4_0 (server/cli_quantize.c) */
int cli_quantize(int argc, char **argv);

/* alignd pretrain --corpus FILE -o OUT.gguf [shape and training options] */
int cli_pretrain(int argc, char **argv);

/* alignd pretrain clip --data DIR -o OUT_DIR [shape and training options]
 * (server/cli_pretrain_clip.c; argv[0] is "clip") */
int cli_pretrain_clip(int argc, char **argv);

/* alignd pretrain embed -m LM.gguf --data ITEMS.jsonl -o OUT.gguf [options]
 * (server/cli_pretrain_embed.c; argv[0] is "embed") */
int cli_pretrain_embed(int argc, char **argv);

/* alignd train dpo|reward ... (server/cli_train.c; see cli_train.h) */
int cli_train(int argc, char **argv);

#endif
