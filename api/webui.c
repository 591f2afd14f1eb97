/* webui.c - GET /: the preference-feedback web form (one self-contained
 * page, embedded at build time; see api/webui_asset.h). Open route: the page
 * itself holds no data, and asks for the API key to call /v1. */
#include "http.h"
#include "routes.h"
#include "webui_asset.h"

void api_webui(http_req *req) {
    http_reply_header(req, "Cache-Control", "no-cache");
    http_reply_header(req, "X-Content-Type-Options", "nosniff");
    http_reply_data(req, 200, "text/html; charset=utf-8", (const char *)alignd_webui_html,
                    alignd_webui_html_len);
}
