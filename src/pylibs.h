/* Python package names as users write them (PREINSTALL_LIBS) mapped to the module to import
 * and to the Debian package that provides it. */
#pragma once

#include <stddef.h>

/* Writes the module name for `package` ("scikit-learn" -> "sklearn"; unknown names: lower-case,
 * '-' -> '_'). Returns 0, or -EINVAL for a name that is not [A-Za-z0-9._-]+, -ENAMETOOLONG if
 * it does not fit in `size`. */
int pylibs_module(const char *package, char *buf, size_t size);

/* Writes the Debian package for `package` ("scikit-learn" -> "python3-sklearn"; unknown names:
 * "python3-" + lower-case name). Same returns as pylibs_module. */
int pylibs_debian(const char *package, char *buf, size_t size);

/* Calls fn(token, userdata) for each token of `list` separated by spaces, tabs or commas.
 * Returns -ENAMETOOLONG for a token over 127 bytes, else stops at and returns the first
 * negative value fn returns, else 0. */
int pylibs_foreach(const char *list, int (*fn)(const char *token, void *userdata), void *userdata);
