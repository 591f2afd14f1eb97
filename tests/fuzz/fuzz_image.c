/* fuzz_image.c - libFuzzer target for image decoding (image_decode, and
 * image_decode_base64 when the input starts with "data:" or is printable
 * base64), with small limits. Whatever the input, decoding must either fail
 * with -EINVAL/-ENOMEM and a message, or yield an image within the limits
 * whose every byte can be read; a decoded image is also run through a small
 * resize. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const image_limits lim = {1u << 20, 1 << 18};
    image_u8 img;
    eng_err err = {0};
    int rc;
    bool text = size >= 5 && memcmp(data, "data:", 5) == 0;
    if (text || (size > 0 && data[0] == 'i')) /* "iVBOR..." is base64 PNG */
        rc = image_decode_base64((const char *)data, size, &lim, &img, &err);
    else
        rc = image_decode(data, size, &lim, &img, &err);
    if (rc != 0) {
        if (rc != -EINVAL && rc != -ENOMEM) abort();
        if (err.code != rc || memchr(err.msg, '\0', sizeof err.msg) == NULL || !err.msg[0]) abort();
        if (img.rgb || img.w || img.h) abort();
        return 0;
    }
    if (img.w < 1 || img.h < 1 || (int64_t)img.w * img.h > lim.max_pixels) abort();
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < (size_t)img.w * img.h * 3; i++) sink ^= img.rgb[i];
    image_u8 small;
    if (image_resize(&img, 1 + img.w % 7, 1 + img.h % 5, &small, &err) != 0) abort();
    sink ^= small.rgb[0];
    (void)sink;
    image_free(&small);
    image_free(&img);
    return 0;
}
