/* webui.c - GET /: the preference-feedback web form (one self-contained
 * page, embedded at build time; see api/webui_asset.h). Open route: the page
 * itself holds no data, and asks for the API key to call /v1.
 *
 * Security headers: the page may not be framed (X-Frame-Options and CSP
 * frame-ancestors), sends no Referer, and runs under a Content-Security-Policy
 * that allows exactly its own inline <script> and <style> blocks by their
 * sha256 hashes (computed from the embedded page on the first request, so
 * editing index.html needs no hash bookkeeping), fetches only from this
 * origin, and loads nothing else. Its two style="..." attributes need
 * style-src-attr 'unsafe-inline' (attribute styles cannot run script). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "routes.h"
#include "sha256.h"
#include "webui_asset.h"

static void webui__base64(const uint8_t *in, size_t n, char *out) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

/* Appends " 'sha256-B64'" for each inline <tag>...</tag> block of the page
 * (blocks with a src attribute are skipped: they are not inline). */
static void webui__hashes(const char *page, size_t len, const char *tag, char *out, size_t cap) {
    char open[16], close[16];
    snprintf(open, sizeof open, "<%s", tag);
    snprintf(close, sizeof close, "</%s>", tag);
    size_t olen = strlen(open), clen = strlen(close);
    const char *end = page + len;
    for (const char *p = page; (size_t)(end - p) > olen;) {
        const char *s = strstr(p, open); /* the page is NUL-terminated (webui_asset.h) */
        if (!s || s >= end) break;
        char after = s[olen];
        const char *gt = strchr(s, '>');
        if (!gt || (after != '>' && after != ' ' && after != '\t' && after != '\n')) {
            p = s + olen;
            continue;
        }
        const char *body = gt + 1;
        const char *stop = strstr(body, close);
        if (!stop) break;
        bool has_src = false;
        for (const char *q = s; q + 4 < gt; q++)
            if (strncasecmp(q, " src=", 5) == 0) has_src = true;
        if (!has_src) {
            sha256_ctx c;
            uint8_t d[SHA256_DIGEST_LEN];
            char b64[48];
            sha256_init(&c);
            sha256_update(&c, body, (size_t)(stop - body));
            sha256_final(&c, d);
            webui__base64(d, sizeof d, b64);
            size_t used = strlen(out);
            snprintf(out + used, cap - used, " 'sha256-%s'", b64);
        }
        p = stop + clen;
    }
}

/* Built once, on the loop thread (the only thread that runs handlers). */
static const char *webui__csp(void) {
    static char csp[2048];
    if (csp[0]) return csp;
    const char *page = (const char *)alignd_webui_html;
    char scripts[768] = "", styles[768] = "";
    webui__hashes(page, alignd_webui_html_len, "script", scripts, sizeof scripts);
    webui__hashes(page, alignd_webui_html_len, "style", styles, sizeof styles);
    snprintf(csp, sizeof csp,
             "default-src 'none'; script-src%s; style-src%s; style-src-attr 'unsafe-inline'; "
             "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
             "frame-ancestors 'none'",
             scripts[0] ? scripts : " 'none'", styles[0] ? styles : " 'none'");
    return csp;
}

void api_webui(http_req *req) {
    http_reply_header(req, "Cache-Control", "no-cache");
    /* X-Content-Type-Options: nosniff comes with every answer (http_req.c) */
    http_reply_header(req, "Content-Security-Policy", webui__csp());
    http_reply_header(req, "X-Frame-Options", "DENY");
    http_reply_header(req, "Referrer-Policy", "no-referrer");
    http_reply_data(req, 200, "text/html; charset=utf-8", (const char *)alignd_webui_html,
                    alignd_webui_html_len);
}
