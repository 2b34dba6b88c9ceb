/* Terminal-safe output: a program's bytes made harmless to write to a terminal. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Room that ttysafe_feed may need for n input bytes (3 held back from an earlier call, each
 * shown as \xHH, plus 4 per new byte) and that ttysafe_flush needs (n = 0). */
#define TTYSAFE_MAX(n) (4 * ((size_t)(n) + 3))

/* One stream's decoder state: the start of a UTF-8 sequence cut by a chunk boundary. */
typedef struct TtySafe {
        unsigned char have[4];
        uint8_t nhave, need, lo, hi;
} TtySafe;

void ttysafe_init(TtySafe *t);

/* Writes to out (room for TTYSAFE_MAX(n)) p[0..n) with every control character other than
 * newline, tab and carriage return shown escaped: C0 and DEL as "\x1b", C1 (U+0080..U+009F,
 * valid UTF-8) as "\u009b", and every byte that is not part of valid UTF-8 as "\xHH". Valid
 * UTF-8 text passes unchanged, also when a sequence is split across calls (its start is held
 * in t until the rest arrives). Returns the number of bytes written. Pure; does not log. */
size_t ttysafe_feed(TtySafe *t, const char *p, size_t n, char *out);

/* At the end of the stream: writes what t still holds (an incomplete sequence) as \xHH to out
 * (room for TTYSAFE_MAX(0)) and returns its length. */
size_t ttysafe_flush(TtySafe *t, char *out);
