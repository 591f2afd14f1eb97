/* routes.h - the route table (api/routes.c) and the handlers it names.
 * Handlers run on the loop thread, after the dispatcher's checks. */
#ifndef ROUTES_H
#define ROUTES_H

#include <stddef.h>

#include "router.h"

extern const route api_routes[];
extern const size_t api_routes_count;

/* api/webui.c */
void api_webui(http_req *req);

/* api/health.c */
void api_health(http_req *req);
void api_ready(http_req *req);
void api_metrics(http_req *req);
/* api/models.c */
void api_models_list(http_req *req);
void api_models_get(http_req *req);
/* api/completions.c, api/chat.c, api/tokenize.c */
void api_completions(http_req *req);
void api_chat_completions(http_req *req);
void api_tokenize(http_req *req);
void api_detokenize(http_req *req);
/* api/embeddings.c, api/classify.c */
void api_embeddings(http_req *req);
void api_classify(http_req *req);
void api_image_embeddings(http_req *req);
/* api/rewards.c */
void api_rewards(http_req *req);
void api_training_create(http_req *req);
void api_training_list(http_req *req);
void api_training_get(http_req *req);
void api_training_cancel(http_req *req);
void api_adapters_list(http_req *req);
void api_adapters_activate(http_req *req);
/* api/feedback.c */
void api_feedback_create(http_req *req);
void api_feedback_list(http_req *req);
void api_feedback_get(http_req *req);
void api_feedback_delete(http_req *req);
void api_feedback_export(http_req *req);
void api_feedback_stats(http_req *req);
void api_feedback_prompts(http_req *req);
/* api/debug.c */
void api_debug_echo(http_req *req);
void api_debug_sse(http_req *req);

#endif
