#include "util/str.h"

#include <errno.h>
#include <string.h>

int str_copy(char *buf, size_t size, const char *s) {
        size_t n = strlen(s);
        if (n >= size)
                return -ENAMETOOLONG;
        memcpy(buf, s, n + 1);
        return 0;
}
