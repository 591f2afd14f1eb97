/* webui_asset.h - the web form (server/webui/index.html), compiled in.
 * The bytes are generated at configure time by CMakeLists.txt into
 * build/generated/webui_asset.c; alignd_webui_html[alignd_webui_html_len]
 * is additionally NUL-terminated. Read-only, any thread. */
#ifndef ALIGND_WEBUI_ASSET_H
#define ALIGND_WEBUI_ASSET_H

#include <stddef.h>

extern const unsigned char alignd_webui_html[];
extern const size_t alignd_webui_html_len;

#endif
