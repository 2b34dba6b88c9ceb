/* Small string helpers: copying a C string into a fixed buffer, refusing to cut it; bytes as
 * base64 text; comparing secrets in constant time. */
#pragma once

#include <stddef.h>

/* Writes s, with its NUL, into buf of size bytes. Returns 0, or -ENAMETOOLONG (buf untouched)
 * when it does not fit. */
int str_copy(char *buf, size_t size, const char *s);

/* Nonzero when a (an bytes) and b (bn bytes) differ, comparing span bytes whatever they hold
 * (bytes past an or bn count as 0), so that the time depends on span only: for secrets. */
unsigned str_ct_differs(const char *a, size_t an, const char *b, size_t bn, size_t span);

/* n bytes of p in base64 (RFC 4648, with padding), NUL-terminated, of length (n + 2) / 3 * 4.
 * NULL: no memory. */
char *base64_encode(const char *p, size_t n);
