/* Growable, capped byte buffers for run output and request bodies. The cap is what makes the
 * memory of a request bounded whatever the program or the client sends. */
#include "util/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/macro.h"

void buf_init(Buf *b, size_t cap) {
        *b = (Buf){.cap = cap};
}

int buf_append(Buf *b, const void *p, size_t n) {
        size_t room = b->cap - b->len;
        size_t take = MIN(n, room);
        b->dropped += n - take;
        if (take == 0)
                return 0;
        if (b->len + take + 1 > b->alloc) {
                size_t want = MAX(b->alloc * 2, b->len + take + 1);
                want = MAX(want, (size_t)256);
                char *d = realloc(b->data, want);
                if (!d)
                        return -ENOMEM;
                b->data = d;
                b->alloc = want;
        }
        memcpy(b->data + b->len, p, take);
        b->len += take;
        b->data[b->len] = 0;
        return 0;
}

void buf_free(Buf *b) {
        free(b->data);
        *b = (Buf){0};
}
