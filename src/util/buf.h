/* A growable byte buffer with a hard cap: appends beyond the cap are dropped and counted. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef struct Buf {
        char *data;
        size_t len;
        size_t alloc;
        size_t cap; /* the most bytes ever kept */
        size_t dropped; /* bytes refused because of the cap */
} Buf;

void buf_init(Buf *b, size_t cap);
/* Appends what fits under the cap. Returns 0, or -ENOMEM (nothing appended). */
int buf_append(Buf *b, const void *p, size_t n);
/* Keeps data NUL-terminated past len for callers that need a C string. */
void buf_free(Buf *b);
