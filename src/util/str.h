/* Copying a C string into a fixed buffer, refusing to cut it; bytes as base64 text. */
#pragma once

#include <stddef.h>

/* Writes s, with its NUL, into buf of size bytes. Returns 0, or -ENAMETOOLONG (buf untouched)
 * when it does not fit. */
int str_copy(char *buf, size_t size, const char *s);

/* n bytes of p in base64 (RFC 4648, with padding), NUL-terminated, of length (n + 2) / 3 * 4.
 * NULL: no memory. */
char *base64_encode(const char *p, size_t n);
