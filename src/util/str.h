/* Copying a C string into a fixed buffer, refusing to cut it. */
#pragma once

#include <stddef.h>

/* Writes s, with its NUL, into buf of size bytes. Returns 0, or -ENAMETOOLONG (buf untouched)
 * when it does not fit. */
int str_copy(char *buf, size_t size, const char *s);
