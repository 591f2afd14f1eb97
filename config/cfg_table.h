/* cfg_table.h - the one table of every configuration key.
 *
 * Each row: X(section, key, type, default, min, max, choices, flags, help)
 *   type     INT (long long), BOOL, STR, SIZE (bytes; K/M/G suffixes),
 *            DOUBLE, ENUM (one of `choices`, '|'-separated)
 *   min/max  inclusive bounds for INT, SIZE and DOUBLE (ignored otherwise)
 *   flags    CFG_F_SECRET: never printed by --print-config
 *
 * The table drives the struct cfg fields (cfg.section_key), INI parsing,
 * environment variables (ALIGND_SECTION_KEY), flags (--section.key=value),
 * `alignd --help`, `alignd --print-config` and config/alignd.ini (a test
 * keeps that file equal to `alignd --print-example-config`).
 */
#ifndef CFG_TABLE_H
#define CFG_TABLE_H

#define CFG_F_SECRET 1u

#define CFG_TABLE(X) \
    X(server, host, STR, "127.0.0.1", 0, 0, NULL, 0, \
      "Address to listen on: an IPv4 or IPv6 literal (0.0.0.0 or :: for all interfaces)") \
    X(server, port, INT, "8080", 1, 65535, NULL, 0, \
      "TCP port to listen on") \
    X(server, max_connections, INT, "512", 1, 100000, NULL, 0, \
      "Most client connections open at once; further connections wait until one closes") \
    X(server, connection_timeout, INT, "30", 1, 3600, NULL, 0, \
      "Seconds a connection may stay idle, or take to send a request's headers and body (+1 s per 64 KiB), before it is dropped") \
    X(server, max_body_size, SIZE, "1M", 1024, 1073741824, NULL, 0, \
      "Largest request body accepted by default (routes may set their own limit); larger gets 413") \
    X(server, shutdown_grace, INT, "30", 0, 3600, NULL, 0, \
      "Seconds in-flight requests may take to finish after SIGTERM/SIGINT before the daemon exits") \
    X(server, api_keys, STR, "", 0, 0, NULL, CFG_F_SECRET, \
      "Comma-separated API keys for 'Authorization: Bearer KEY': KEY (role admin) or role:KEY, role infer, feedback or admin; empty (and no api_key_file) = no authentication, every route open") \
    X(server, api_key_file, STR, "", 0, 0, NULL, 0, \
      "File with one API key per line, KEY or role:KEY as in api_keys ('#' comments; added to api_keys); empty for none") \
    X(server, cors_origins, STR, "", 0, 0, NULL, 0, \
      "Origins whose pages may call the API from a browser (CORS): a comma-separated list (https://app.example) or *; empty = no CORS headers, OPTIONS answers 405") \
    X(server, public_health, BOOL, "true", 0, 0, NULL, 0, \
      "Serve /health and /ready without an API key") \
    X(server, public_metrics, BOOL, "true", 0, 0, NULL, 0, \
      "Serve /metrics without an API key") \
    X(server, model_pack, STR, "auto", 0, 0, NULL, 0, \
      "Models served when none is configured: auto (models/pack.ini here, else the installed pack), none, or a pack.ini") \
    X(server, debug_routes, BOOL, "false", 0, 0, NULL, 0, \
      "Enable the /debug/* routes (asynchronous echo and SSE ticker used by tests)") \
    X(server, debug_queue_size, INT, "64", 1, 100000, NULL, 0, \
      "Jobs the debug worker queues before it answers 429") \
    X(store, path, STR, "alignd.db", 0, 0, NULL, 0, \
      "SQLite database of the preference feedback (created when missing; WAL mode, full sync)") \
    X(store, url, STR, "", 0, 0, NULL, CFG_F_SECRET, \
      "PostgreSQL store several daemons share (postgresql://user:pass@host:port/db); empty: store.path") \
    X(store, sync_interval_ms, INT, "2000", 100, 3600000, NULL, 0, \
      "How often to check the store for adapters other daemons activated (PostgreSQL also notifies)") \
    X(feedback, max_text_bytes, SIZE, "64K", 1, 16777216, NULL, 0, \
      "Longest prompt, response or comment accepted in feedback, in bytes") \
    X(feedback, max_batch, INT, "100", 1, 10000, NULL, 0, \
      "Most feedback items in one POST /v1/feedback") \
    X(feedback, prompts_file, STR, "", 0, 0, NULL, 0, \
      "File of prompts (one per line) the web form draws from; empty = its built-in list") \
    X(training, enabled, BOOL, "true", 0, 0, NULL, 0, \
      "Run the closed loop: a worker thread trains on stored feedback and hot-swaps better adapters") \
    X(training, dir, STR, "alignd-training", 0, 0, NULL, 0, \
      "Folder for trained adapters (MODEL/ad-VERSION) and reward models (MODEL/rm-RUN)") \
    X(training, min_new_pairs, INT, "0", 0, 100000000, NULL, 0, \
      "Start a run when this many new preference pairs arrived since the model's last run; 0 = off") \
    X(training, interval_minutes, INT, "0", 0, 525600, NULL, 0, \
      "Start a run every this many minutes when new pairs arrived; 0 = off") \
    X(training, epochs, INT, "3", 1, 1000, NULL, 0, \
      "Passes over the training split per DPO / reward-model run") \
    X(training, batch, INT, "8", 1, 4096, NULL, 0, \
      "Preference pairs per optimizer step") \
    X(training, lr, DOUBLE, "5e-4", 0, 10, NULL, 0, \
      "Peak learning rate (linear decay, 10% warm-up)") \
    X(training, beta, DOUBLE, "0.1", 0.000001, 100, NULL, 0, \
      "DPO beta: strength of the pull towards the base model") \
    X(training, rpo_alpha, DOUBLE, "1", 0, 1000000, NULL, 0, \
      "Weight of the chosen responses' NLL added to DPO (TRL rpo_alpha; 0 = plain DPO): keeps them likely") \
    X(training, lora_r, INT, "8", 1, 4096, NULL, 0, \
      "LoRA rank of trained adapters") \
    X(training, lora_alpha, DOUBLE, "16", 0.000001, 1000000, NULL, 0, \
      "LoRA alpha (scale alpha / r)") \
    X(training, lora_targets, STR, "", 0, 0, NULL, 0, \
      "LoRA sites (q,k,v,o,gate,up,down; qkv on gpt2); empty = q,v on llama, qkv on gpt2") \
    X(training, kl_max, DOUBLE, "0.5", 0, 1000, NULL, 0, \
      "Gate: most mean per-token KL(policy || base) in nats on the eval responses for promotion") \
    X(training, gate_rm_min_accuracy, DOUBLE, "0.8", 0, 2, NULL, 0, \
      "Reward-score gate binds only if this run's reward model reached this held-out accuracy (else recorded only); above 1: never") \
    X(training, onpolicy, BOOL, "false", 0, 0, NULL, 0, \
      "Iterative DPO: before each DPO run, add pairs of the current policy's own samples labelled by the reward model") \
    X(training, onpolicy_k, INT, "4", 2, 64, NULL, 0, \
      "On-policy samples per prompt (temperature 1); the best and the worst by reward make a pair") \
    X(training, onpolicy_ratio, DOUBLE, "0.5", 0, 1, NULL, 0, \
      "Most share of on-policy pairs in the DPO training split (human pairs are all kept; 1 = no limit)") \
    X(training, onpolicy_min_gap, DOUBLE, "0.5", 0, 1000000, NULL, 0, \
      "Least reward gap between the best and the worst sample for an on-policy pair") \
    X(training, onpolicy_prompts, INT, "64", 1, 100000, NULL, 0, \
      "Most distinct training prompts sampled for on-policy pairs per run") \
    X(log, file, STR, "", 0, 0, NULL, 0, \
      "Log file (reopened on SIGHUP); empty logs to standard error") \
    X(log, level, ENUM, "info", 0, 0, "debug|info|warn|error", 0, \
      "Least severe level written to the log") \
    X(log, access, BOOL, "true", 0, 0, NULL, 0, \
      "Write one JSON access-log line per request")

/* Per-model keys: one [model.NAME] section per served model, or
 * --model NAME=PATH and --model.NAME.key=value on the command line.
 * Same row shape as CFG_TABLE; the section column is always "model". */
#define CFG_MODEL_TABLE(X) \
    X(model, path, STR, "", 0, 0, NULL, 0, \
      "GGUF file or Hugging Face model folder (required)") \
    X(model, n_ctx, INT, "0", 0, 1048576, NULL, 0, \
      "Context length per sequence in tokens; 0 = the model's training context") \
    X(model, max_seqs, INT, "16", 1, 1024, NULL, 0, \
      "Sequences decoded together in one engine step (continuous batching)") \
    X(model, max_batch_tokens, INT, "512", 16, 65536, NULL, 0, \
      "Token budget of one engine step: running sequences' next tokens plus prompt chunks") \
    X(model, kv_budget, INT, "0", 0, 16777216, NULL, 0, \
      "KV-cache pool size in tokens (all sequences together); 0 = max_seqs * n_ctx") \
    X(model, kv_block_size, INT, "16", 1, 1024, NULL, 0, \
      "Tokens per KV-cache block") \
    X(model, prefix_cache, INT, "16", 0, 1024, NULL, 0, \
      "Finished prompts whose KV-cache blocks are kept so that later prompts starting with the same tokens skip that prefill (LRU; evicted before anything waits for blocks); 0 = off") \
    X(model, queue_size, INT, "64", 1, 100000, NULL, 0, \
      "Requests waiting for a sequence slot before new ones get 429") \
    X(model, request_timeout, INT, "600", 1, 86400, NULL, 0, \
      "Seconds a request may wait and run before it is ended") \
    X(model, kv_type, ENUM, "f32", 0, 0, "f32|f16", 0, \
      "KV-cache element type: f16 halves the cache's memory and the bytes attention reads (llama.cpp's default; logits move by half-float rounding)") \
    X(model, weights, ENUM, "auto", 0, 0, "auto|f32", 0, \
      "Weight storage: auto = a llama GGUF's Q8_0 / Q4_0 matrices stay quantized (int8 kernels); f32 = convert every weight to F32 at load (merge_adapter implies it)") \
    X(model, threads, INT, "0", 0, 1024, NULL, 0, \
      "Threads for the model's matrix products; 0 = one per core") \
    X(model, chat_template, STR, "", 0, 0, NULL, 0, \
      "Chat template: chatml, llama2, llama3, zephyr, gemma, phi3; empty = from the model file") \
    X(model, reward_model, STR, "", 0, 0, NULL, 0, \
      "Reward-model folder written by 'alignd train reward' for this model, served at POST /v1/rewards; empty = none") \
    X(model, adapters, STR, "", 0, 0, NULL, 0, \
      "LoRA adapters on this decoder, chosen per request: NAME=DIR,... (DIR: a PEFT adapter folder); a request runs one with \"model\": \"MODEL:NAME\" or \"adapter\": \"NAME\"") \
    X(model, merge_adapter, STR, "", 0, 0, NULL, 0, \
      "A PEFT adapter folder merged into the weights at load (no per-token cost); empty = none") \
    X(model, embed_pooling, ENUM, "auto", 0, 0, "auto|mean|cls|last", 0, \
      "Embedding pooling; auto = the model's sentence-transformers / GGUF setting (mean for encoders, last token for decoders)") \
    X(model, embed_normalize, ENUM, "auto", 0, 0, "auto|true|false", 0, \
      "L2-normalise embeddings; auto = yes unless the sentence-transformers config has no Normalize module") \
    X(model, embed_batch_tokens, INT, "2048", 16, 1048576, NULL, 0, \
      "Token budget of one embedding forward pass (inputs of concurrent requests together)") \
    X(model, embed_max_wait_ms, INT, "5", 0, 1000, NULL, 0, \
      "Milliseconds an embedding request waits for others to share its forward pass") \
    X(model, max_tokens, INT, "16", 1, 1048576, NULL, 0, \
      "Default max_tokens of a completion request") \
    X(model, temperature, DOUBLE, "1", 0, 2, NULL, 0, \
      "Default sampling temperature (0 = greedy)") \
    X(model, top_p, DOUBLE, "1", 0, 1, NULL, 0, \
      "Default nucleus sampling threshold (1 = off)") \
    X(model, top_k, INT, "0", 0, 1000000, NULL, 0, \
      "Default top-k (0 = off)") \
    X(model, min_p, DOUBLE, "0", 0, 1, NULL, 0, \
      "Default min-p (0 = off)") \
    X(model, repetition_penalty, DOUBLE, "1", 0.01, 10, NULL, 0, \
      "Default repetition penalty (1 = off)")

#endif
