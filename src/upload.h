/* Checks of what a request uploads: file names and base64 content. Pure functions over
 * untrusted bytes, with no I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define UPLOAD_NAME_MAX 1024 /* bytes of a whole relative path */
#define UPLOAD_COMPONENT_MAX 255 /* bytes of one path component (NAME_MAX) */

/* 0 when name (len bytes) is a relative path that stays inside the working directory: not
 * empty, not absolute, no empty, "." or ".." component, no NUL, within the length caps.
 * Otherwise -EINVAL and a reason (without the name) in why. */
int upload_check_name(const char *name, size_t len, char *why, size_t whyn);

/* 0 and the decoded size in *ret when s (n bytes) is strict base64 (the standard alphabet,
 * padded to a multiple of 4, no whitespace), else -EINVAL. */
int upload_base64_size(const char *s, size_t n, size_t *ret);
/* Decodes strict base64 (as upload_base64_size checks it) into a new buffer, NUL-terminated
 * past *ret_len. Returns 0, -EINVAL or -ENOMEM. */
int upload_base64_decode(const char *s, size_t n, char **ret, size_t *ret_len);

/* Looks for a name (among n checked names) that repeats another or has a directory part that
 * is also a name ("a" and "a/b"). Returns 1 and sets *ret to it, 0 when there is none, or
 * -ENOMEM. */
int upload_find_conflict(const char *const *names, size_t n, const char **ret);
