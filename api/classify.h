/* classify.h - CLIP endpoints' shared entry for text embeddings (used by
 * /v1/embeddings when the model is a CLIP model). Loop thread. */
#ifndef API_CLASSIFY_H
#define API_CLASSIFY_H

#include "http.h"
#include "models.h"

/* Embeds texts[0..n) with sm's text tower (normalised) and answers req in
 * /v1/embeddings' shape. Borrows texts. */
void api_clip_text_embeddings(http_req *req, served_model *sm, char **texts, int n);

#endif
