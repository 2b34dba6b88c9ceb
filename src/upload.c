/* Checks of uploaded files (a request's "files"). A name is joined to the sandbox's working
 * directory by the runner, so what matters is that no name can point outside it: every
 * component is checked, not a prefix or a normalised form. The checks run in the server,
 * before anything reaches a sandbox, so a bad name is a 400 naming the file. */
#include "upload.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int upload_check_name(const char *name, size_t len, char *why, size_t whyn) {
        if (len == 0) {
                snprintf(why, whyn, "the name is empty");
                return -EINVAL;
        }
        if (len > UPLOAD_NAME_MAX) {
                snprintf(why, whyn, "the name is longer than %d bytes", UPLOAD_NAME_MAX);
                return -EINVAL;
        }
        if (memchr(name, 0, len)) {
                snprintf(why, whyn, "the name contains a NUL character");
                return -EINVAL;
        }
        if (name[0] == '/') {
                snprintf(why, whyn,
                        "the name is an absolute path; names are relative to the working directory");
                return -EINVAL;
        }
        for (size_t i = 0; i <= len;) {
                size_t j = i;
                while (j < len && name[j] != '/')
                        j++;
                size_t c = j - i;
                if (c == 0) {
                        snprintf(why, whyn, "the name has an empty path component");
                        return -EINVAL;
                }
                if ((c == 1 && name[i] == '.') || (c == 2 && name[i] == '.' && name[i + 1] == '.')) {
                        snprintf(why, whyn, "the name has a \"%.*s\" component", (int)c, name + i);
                        return -EINVAL;
                }
                if (c > UPLOAD_COMPONENT_MAX) {
                        snprintf(why, whyn, "a component of the name is longer than %d bytes",
                                UPLOAD_COMPONENT_MAX);
                        return -EINVAL;
                }
                i = j + 1;
        }
        return 0;
}

static int b64_value(unsigned char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

int upload_base64_size(const char *s, size_t n, size_t *ret) {
        if (n % 4 != 0)
                return -EINVAL;
        size_t pad = 0;
        if (n > 0 && s[n - 1] == '=')
                pad++;
        if (n > 1 && s[n - 2] == '=')
                pad++;
        for (size_t i = 0; i < n - pad; i++)
                if (b64_value((unsigned char)s[i]) < 0)
                        return -EINVAL;
        *ret = n / 4 * 3 - pad;
        return 0;
}

int upload_base64_decode(const char *s, size_t n, char **ret, size_t *ret_len) {
        size_t size;
        if (upload_base64_size(s, n, &size) < 0)
                return -EINVAL;
        char *out = malloc(size + 1);
        if (!out)
                return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i + 4 <= n; i += 4) {
                int v[4];
                for (int j = 0; j < 4; j++)
                        v[j] = s[i + j] == '=' ? 0 : b64_value((unsigned char)s[i + j]);
                uint32_t w =
                        (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
                char b[3] = {(char)(w >> 16), (char)(w >> 8), (char)w};
                for (int j = 0; j < 3 && k < size; j++)
                        out[k++] = b[j];
        }
        out[size] = 0;
        *ret = out;
        *ret_len = size;
        return 0;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int upload_find_conflict(const char *const *names, size_t n, const char **ret) {
        if (n == 0)
                return 0;
        const char **sorted = malloc(n * sizeof *sorted);
        if (!sorted)
                return -ENOMEM;
        memcpy(sorted, names, n * sizeof *sorted);
        qsort(sorted, n, sizeof *sorted, cmp_str);
        int found = 0;
        for (size_t i = 1; i < n && !found; i++)
                if (strcmp(sorted[i], sorted[i - 1]) == 0) {
                        *ret = sorted[i];
                        found = 1;
                }
        /* A name whose directory part is also uploaded as a file: "a" and "a/b". */
        for (size_t i = 0; i < n && !found; i++) {
                char prefix[UPLOAD_NAME_MAX + 1];
                const char *key = prefix;
                for (size_t j = 0; names[i][j] && j <= UPLOAD_NAME_MAX && !found; j++) {
                        if (names[i][j] != '/')
                                continue;
                        memcpy(prefix, names[i], j);
                        prefix[j] = 0;
                        if (bsearch(&key, sorted, n, sizeof *sorted, cmp_str)) {
                                *ret = names[i];
                                found = 1;
                        }
                }
        }
        free(sorted);
        return found;
}
