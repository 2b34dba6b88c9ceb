#include "util/str.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int str_copy(char *buf, size_t size, const char *s) {
        size_t n = strlen(s);
        if (n >= size)
                return -ENAMETOOLONG;
        memcpy(buf, s, n + 1);
        return 0;
}

char *base64_encode(const char *p, size_t n) {
        static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char *out = malloc((n + 2) / 3 * 4 + 1);
        if (!out)
                return NULL;
        size_t k = 0;
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t)(uint8_t)p[i] << 16;
                if (i + 1 < n)
                        v |= (uint32_t)(uint8_t)p[i + 1] << 8;
                if (i + 2 < n)
                        v |= (uint8_t)p[i + 2];
                out[k++] = tab[v >> 18 & 63];
                out[k++] = tab[v >> 12 & 63];
                out[k++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
                out[k++] = i + 2 < n ? tab[v & 63] : '=';
        }
        out[k] = 0;
        return out;
}

unsigned str_ct_differs(const char *a, size_t an, const char *b, size_t bn, size_t span) {
        unsigned d = an != bn;
        for (size_t i = 0; i < span; i++) {
                unsigned char x = i < an ? (unsigned char)a[i] : 0;
                unsigned char y = i < bn ? (unsigned char)b[i] : 0;
                d |= x ^ y;
        }
        return d;
}
