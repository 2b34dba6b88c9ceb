/* The skeleton every run's root is built on, prepared once by the server at start-up. */
#pragma once

#include <stddef.h>

/* Creates a private runtime directory (removing those of dead servers) with the skeleton in
 * <dir>/root. Writes the runtime dir to rt (size n) and returns 0, or -errno and a reason in
 * why (size whyn). Does not log. */
int rootfs_create(char *rt, size_t n, char *why, size_t whyn);

/* Removes the runtime directory and everything in it. */
void rootfs_remove(const char *rt);
