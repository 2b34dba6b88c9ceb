/* Fuzz target: uploaded file names, base64 content and the routing scan. The first byte picks
 * the parser; the rest is its input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "upload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static Route *route;
        char why[160];
        size_t n;
        if (!route && route_new("pandas numpy scipy sklearn matplotlib", &route) < 0)
                return 0;
        if (size == 0)
                return 0;
        const char *s = (const char *)data + 1;
        size_t len = size - 1;
        switch (data[0] % 4) {
        case 0:
                upload_check_name(s, len, why, sizeof why);
                break;
        case 1:
                upload_base64_size(s, len, &n);
                break;
        case 2:
                route_needs_full(route, s, len);
                break;
        default: {
                /* Names split on newlines, then checked for clashes, as the API does. */
                char *copy = malloc(len + 1);
                const char *names[64];
                size_t k = 0;
                if (!copy)
                        return 0;
                memcpy(copy, s, len);
                copy[len] = 0;
                for (char *p = copy; *p && k < 64;) {
                        size_t m = strcspn(p, "\n");
                        names[k++] = p;
                        if (!p[m])
                                break;
                        p[m] = 0;
                        p += m + 1;
                }
                const char *clash;
                upload_find_conflict(names, k, &clash);
                free(copy);
        }
        }
        return 0;
}
