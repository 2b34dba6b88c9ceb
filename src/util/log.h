/* Logging to stderr with a fixed prefix. Errors are logged once, where they are handled. */
#pragma once

#include "util/macro.h"

void log_error(const char *fmt, ...) _printf_(1, 2);
void log_info(const char *fmt, ...) _printf_(1, 2);
/* Logs and returns r (a negative errno), for one-line error returns at boundaries. */
int log_errno(int r, const char *fmt, ...) _printf_(2, 3);
