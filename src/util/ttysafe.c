/* Terminal-safe output for `snakebox run`. A script's output is untrusted: written to a terminal
 * unchanged, an escape sequence can set the window title, write the clipboard (OSC 52), or with
 * some terminals report or rewrite what is on the screen. So when the destination is a terminal,
 * every control character except newline, tab and carriage return is shown as text ("\x1b"),
 * C1 controls in their UTF-8 form (U+0080..U+009F, which 8-bit terminals take as CSI, OSC, ...)
 * as "\u009b", and bytes that are not valid UTF-8 as "\xHH", so a terminal in a legacy 8-bit mode
 * cannot take a lone 0x9b as CSI either. Valid UTF-8 passes byte for byte.
 *
 * The decoder works one byte at a time with the state of one stream (the bytes of a sequence
 * begun and the range the next byte must fall in, as in the Unicode standard's table 3-7 of
 * well-formed sequences), so a sequence cut between two writes of the program comes out whole. */
#include "util/ttysafe.h"

#include <stdbool.h>

static const char hex[] = "0123456789abcdef";

static size_t put_x(char *out, unsigned char b) {
        out[0] = '\\';
        out[1] = 'x';
        out[2] = hex[b >> 4];
        out[3] = hex[b & 15];
        return 4;
}

void ttysafe_init(TtySafe *t) {
        *t = (TtySafe){0};
}

size_t ttysafe_flush(TtySafe *t, char *out) {
        size_t k = 0;
        for (size_t i = 0; i < t->nhave; i++)
                k += put_x(out + k, t->have[i]);
        ttysafe_init(t);
        return k;
}

/* A first byte: 0 for ASCII and for bytes that cannot start a sequence; else sets how many
 * continuation bytes follow and the range of the first of them. */
static bool lead(TtySafe *t, unsigned char b) {
        uint8_t need = 0, lo = 0x80, hi = 0xbf;
        if (b >= 0xc2 && b <= 0xdf)
                need = 1;
        else if (b >= 0xe0 && b <= 0xef) {
                need = 2;
                if (b == 0xe0)
                        lo = 0xa0; /* no overlong forms */
                else if (b == 0xed)
                        hi = 0x9f; /* no surrogates */
        } else if (b >= 0xf0 && b <= 0xf4) {
                need = 3;
                if (b == 0xf0)
                        lo = 0x90;
                else if (b == 0xf4)
                        hi = 0x8f; /* nothing above U+10FFFF */
        }
        if (!need)
                return false;
        t->have[0] = b;
        t->nhave = 1;
        t->need = need;
        t->lo = lo;
        t->hi = hi;
        return true;
}

size_t ttysafe_feed(TtySafe *t, const char *p, size_t n, char *out) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                unsigned char b = (unsigned char)p[i];
                if (t->need) {
                        if (b >= t->lo && b <= t->hi) {
                                t->have[t->nhave++] = b;
                                t->lo = 0x80;
                                t->hi = 0xbf;
                                if (--t->need)
                                        continue;
                                if (t->nhave == 2 && t->have[0] == 0xc2 && t->have[1] <= 0x9f) {
                                        /* U+0080..U+009F: a C1 control. */
                                        const char u[] = {'\\', 'u', '0', '0', hex[t->have[1] >> 4],
                                                hex[t->have[1] & 15]};
                                        for (size_t j = 0; j < sizeof u; j++)
                                                out[k++] = u[j];
                                } else
                                        for (size_t j = 0; j < t->nhave; j++)
                                                out[k++] = (char)t->have[j];
                                ttysafe_init(t);
                                continue;
                        }
                        /* Cut short: what was begun is not text; b starts afresh. */
                        k += ttysafe_flush(t, out + k);
                }
                if (b < 0x80) {
                        if ((b < 0x20 && b != '\n' && b != '\t' && b != '\r') || b == 0x7f)
                                k += put_x(out + k, b);
                        else
                                out[k++] = (char)b;
                } else if (!lead(t, b))
                        k += put_x(out + k, b);
        }
        return k;
}
