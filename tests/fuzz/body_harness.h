/* body_harness.h - what the request-body fuzz targets (fuzz_body_*.c) share:
 * an in-process daemon without a server, a network or model files, and one
 * call that runs a request body through the real dispatcher steps and the
 * route's real handler (tests/fuzz/body_harness.c says how).
 *
 * The served models (built in memory on the first call):
 *   "gpt"    decoder, byte-level BPE, ChatML, adapter "a1", a reward model
 *            (truncation 96 / 64, EOS added), n_ctx 128
 *   "llama"  decoder, SentencePiece (BOS added), llama2 chat template (turns
 *            must alternate), a reward model (no EOS added), n_ctx 64
 *   "plain"  decoder without a chat template, n_ctx 32
 *   "bert"   encoder, WordPiece, n_ctx 16 (embeddings truncate)
 *   "clip"   CLIP, its BPE, text context 16
 * Model names in seeds and dictionaries use these. */
#ifndef FUZZ_BODY_HARNESS_H
#define FUZZ_BODY_HARNESS_H

#include <stddef.h>
#include <stdint.h>

/* Runs METHOD PATH (matched in the real route table, api/routes.c) with
 * data[0..size) as its body, as the dispatcher would: the body limit, the
 * JSON parse (JSON_REJECT_DUPLICATES), then the handler. Every answer is
 * built in full and then dropped; a handler stops where it would hand work
 * to the engine. Aborts on a harness fault (an unknown route). */
void fuzz_body_request(const char *method, const char *path, const uint8_t *data, size_t size);

#endif
