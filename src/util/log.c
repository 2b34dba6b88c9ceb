/* One line per message on stderr, prefixed "snakebox: ", written with a single write(2) so that
 * lines of the server, the zygote and the pool thread never interleave mid-line. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

_printf_(3, 0) static void log_v(const char *level, int r, const char *fmt, va_list ap) {
        char line[2048];
        int n = snprintf(line, sizeof line, "snakebox: %s", level);
        if (n < 0)
                return;
        int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        if (m < 0)
                return;
        n = (int)MIN((size_t)n + (size_t)m, sizeof line - 1);
        if (r < 0)
                n += snprintf(line + n, sizeof line - (size_t)n, ": %s", strerror(-r));
        n = (int)MIN((size_t)n, sizeof line - 2);
        line[n++] = '\n';
        ssize_t w _unused_ = write(STDERR_FILENO, line, (size_t)n);
}

void log_error(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        log_v("error: ", 0, fmt, ap);
        va_end(ap);
}

void log_info(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        log_v("", 0, fmt, ap);
        va_end(ap);
}

int log_errno(int r, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        log_v("error: ", r, fmt, ap);
        va_end(ap);
        return r;
}
