/* Replaces invalid UTF-8 with U+FFFD, one replacement per maximal invalid subpart, the way
 * Python's errors="replace" does, so users see what Python itself would have shown. */
#include "util/utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid sequence at p (at most n bytes), or 0 if it is invalid. */
static size_t utf8_valid_len(const unsigned char *p, size_t n) {
        unsigned char c = p[0];
        if (c < 0x80)
                return 1;
        size_t len;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
                len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
                len = 3;
                if (c == 0xE0)
                        lo = 0xA0;
                if (c == 0xED)
                        hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
                len = 4;
                if (c == 0xF0)
                        lo = 0x90;
                if (c == 0xF4)
                        hi = 0x8F;
        } else
                return 0;
        if (n < len)
                return 0;
        if (p[1] < lo || p[1] > hi)
                return 0;
        for (size_t i = 2; i < len; i++)
                if ((p[i] & 0xC0) != 0x80)
                        return 0;
        return len;
}

/* How many bytes of an invalid sequence at p form one maximal subpart (at least 1). */
static size_t utf8_invalid_len(const unsigned char *p, size_t n) {
        unsigned char c = p[0];
        size_t want;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
                want = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
                want = 3;
                lo = c == 0xE0 ? 0xA0 : 0x80;
                hi = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
                want = 4;
                lo = c == 0xF0 ? 0x90 : 0x80;
                hi = c == 0xF4 ? 0x8F : 0xBF;
        } else
                return 1;
        size_t i = 1;
        if (i < n && i < want && p[i] >= lo && p[i] <= hi) {
                i++;
                while (i < n && i < want && (p[i] & 0xC0) == 0x80)
                        i++;
        }
        return i;
}

char *utf8_sanitize(const char *s, size_t n, size_t *ret_len) {
        const unsigned char *p = (const unsigned char *)s;
        /* Worst case: every byte becomes 3 bytes of U+FFFD. */
        if (n > (SIZE_MAX - 1) / 3)
                return NULL;
        char *out = malloc(n * 3 + 1);
        if (!out)
                return NULL;
        size_t o = 0;
        for (size_t i = 0; i < n;) {
                size_t v = utf8_valid_len(p + i, n - i);
                if (v > 0) {
                        memcpy(out + o, p + i, v);
                        o += v;
                        i += v;
                } else {
                        memcpy(out + o, "\xEF\xBF\xBD", 3);
                        o += 3;
                        i += utf8_invalid_len(p + i, n - i);
                }
        }
        out[o] = 0;
        *ret_len = o;
        return out;
}
