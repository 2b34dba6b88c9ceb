/* UTF-8 repair: program output is bytes, JSON strings must be valid UTF-8. */
#pragma once

#include <stddef.h>

/* Returns a malloc'ed copy of p[0..n) where every invalid sequence is replaced by U+FFFD, and
 * its length in *ret_len; NULs are kept. Returns NULL on out-of-memory. */
char *utf8_sanitize(const char *p, size_t n, size_t *ret_len);
