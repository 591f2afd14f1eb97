/* routes.c - the one table of routes. The dispatcher checks method, auth,
 * readiness, content type and body size from it before any handler runs;
 * tests/unit/test_openapi.c keeps openapi.yaml equal to it.
 *
 * Auth classes (router.h, server/auth.h): INFER routes need any key, FEEDBACK
 * a feedback or admin key, ADMIN an admin key (training, adapters, feedback
 * deletion and export, debug); a bare key in server.api_keys is admin. */
#include "routes.h"

const route api_routes[] = {
    /* method  pattern               handler          auth                body             limit  flags                summary */
    {"GET",    "/",                  api_webui,       ROUTE_AUTH_OPEN,    ROUTE_BODY_NONE, 0,     0,                   "Preference-feedback web form (HTML)"},
    {"GET",    "/health",            api_health,      ROUTE_AUTH_HEALTH,  ROUTE_BODY_NONE, 0,     0,                   "Liveness: the process answers"},
    {"GET",    "/ready",             api_ready,       ROUTE_AUTH_HEALTH,  ROUTE_BODY_NONE, 0,     0,                   "Readiness: every model loaded, not shutting down"},
    {"GET",    "/metrics",           api_metrics,     ROUTE_AUTH_METRICS, ROUTE_BODY_NONE, 0,     0,                   "Prometheus metrics"},
    {"GET",    "/v1/models",         api_models_list, ROUTE_AUTH_INFER,     ROUTE_BODY_NONE, 0,     0,                   "List served models (OpenAI shape)"},
    {"GET",    "/v1/models/{model}", api_models_get,  ROUTE_AUTH_INFER,     ROUTE_BODY_NONE, 0,     0,                   "One served model"},
    {"POST",   "/v1/completions",    api_completions, ROUTE_AUTH_INFER,     ROUTE_BODY_JSON, 0,     ROUTE_F_NEEDS_READY, "Text completion (OpenAI), streaming with SSE"},
    {"POST",   "/v1/chat/completions", api_chat_completions, ROUTE_AUTH_INFER, ROUTE_BODY_JSON, 0,   ROUTE_F_NEEDS_READY, "Chat completion over the model's chat template (OpenAI)"},
    {"POST",   "/v1/embeddings",     api_embeddings,  ROUTE_AUTH_INFER,     ROUTE_BODY_JSON, 16 << 20, ROUTE_F_NEEDS_READY, "Embeddings (OpenAI), dynamically batched"},
    {"POST",   "/v1/classify",       api_classify,    ROUTE_AUTH_INFER,     ROUTE_BODY_JSON, 32 << 20, ROUTE_F_NEEDS_READY, "CLIP zero-shot image classification"},
    {"POST",   "/v1/images/embeddings", api_image_embeddings, ROUTE_AUTH_INFER, ROUTE_BODY_JSON, 32 << 20, ROUTE_F_NEEDS_READY, "CLIP image embedding"},
    {"POST",   "/v1/rewards",        api_rewards,     ROUTE_AUTH_INFER,     ROUTE_BODY_JSON, 16 << 20, ROUTE_F_NEEDS_READY, "Reward-model scores of prompt + response pairs (and OpenRLHF's query shape)"},
    {"POST",   "/v1/feedback",       api_feedback_create, ROUTE_AUTH_FEEDBACK, ROUTE_BODY_JSON, 16 << 20, 0, "Store preference feedback (one or a batch)"},
    {"GET",    "/v1/feedback",       api_feedback_list, ROUTE_AUTH_FEEDBACK,   ROUTE_BODY_NONE, 0,     0,                   "List feedback, newest first"},
    {"GET",    "/v1/feedback/export", api_feedback_export, ROUTE_AUTH_ADMIN, ROUTE_BODY_NONE, 0,    0,                   "Feedback as JSONL (TRL prompt/chosen/rejected)"},
    {"GET",    "/v1/feedback/stats", api_feedback_stats, ROUTE_AUTH_FEEDBACK,  ROUTE_BODY_NONE, 0,     0,                   "Feedback counts by kind, annotator, day"},
    {"GET",    "/v1/feedback/prompts", api_feedback_prompts, ROUTE_AUTH_FEEDBACK, ROUTE_BODY_NONE, 0,   0,                   "Prompts the web form draws from"},
    {"GET",    "/v1/feedback/{id}",  api_feedback_get, ROUTE_AUTH_FEEDBACK,    ROUTE_BODY_NONE, 0,     0,                   "One feedback item"},
    {"DELETE", "/v1/feedback/{id}",  api_feedback_delete, ROUTE_AUTH_ADMIN, ROUTE_BODY_NONE, 0,     0,                   "Delete a feedback item"},
    {"POST",   "/v1/training/runs",  api_training_create, ROUTE_AUTH_ADMIN, ROUTE_BODY_JSON, 0,     ROUTE_F_NEEDS_READY, "Start a training run (DPO and/or reward model) on stored feedback"},
    {"GET",    "/v1/training/runs",  api_training_list, ROUTE_AUTH_ADMIN,   ROUTE_BODY_NONE, 0,     0,                   "Training runs, newest first"},
    {"GET",    "/v1/training/runs/{id}", api_training_get, ROUTE_AUTH_ADMIN, ROUTE_BODY_NONE, 0,    0,                   "One training run with its per-step history"},
    {"DELETE", "/v1/training/runs/{id}", api_training_cancel, ROUTE_AUTH_ADMIN, ROUTE_BODY_NONE, 0, 0,                   "Cancel a queued or running training run"},
    {"GET",    "/v1/adapters",       api_adapters_list, ROUTE_AUTH_ADMIN,   ROUTE_BODY_NONE, 0,     0,                   "The adapter registry, newest first, with metrics"},
    {"POST",   "/v1/adapters/{id}/activate", api_adapters_activate, ROUTE_AUTH_ADMIN, ROUTE_BODY_JSON, 0, ROUTE_F_NEEDS_READY, "Serve an adapter (or id base: the base model); also a rollback"},
    {"POST",   "/tokenize",          api_tokenize,    ROUTE_AUTH_INFER,     ROUTE_BODY_JSON, 0,     ROUTE_F_NEEDS_READY, "Text to token ids (llama.cpp shape)"},
    {"POST",   "/detokenize",        api_detokenize,  ROUTE_AUTH_INFER,     ROUTE_BODY_JSON, 0,     ROUTE_F_NEEDS_READY, "Token ids to text (llama.cpp shape)"},
    {"POST",   "/debug/echo",        api_debug_echo,  ROUTE_AUTH_ADMIN,     ROUTE_BODY_JSON, 65536, ROUTE_F_DEBUG | ROUTE_F_NEEDS_READY, "Echo answered late by a worker thread"},
    {"GET",    "/debug/sse",         api_debug_sse,   ROUTE_AUTH_ADMIN,     ROUTE_BODY_NONE, 0,     ROUTE_F_DEBUG | ROUTE_F_NEEDS_READY, "Server-Sent Events ticker"},
};

const size_t api_routes_count = sizeof api_routes / sizeof api_routes[0];
