/* Routing runs between the full zygote (PREINSTALL_LIBS imported) and the lean one (standard
 * library only). Forking the full zygote costs this VM ~8 ms and every page a run touches a
 * copy-on-write fault; forking the lean one costs a fraction of that. The full zygote reports the
 * top-level modules it loaded beyond the standard library (pandas, numpy, scipy, dateutil, ...);
 * code that names none of them as an identifier cannot be using what only the full zygote has,
 * except through dynamic imports (__import__(name)), which still work in the lean zygote, at the
 * cost of the import. Either way the answer is the same; only the time differs. */
#include "route.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/macro.h"

#define ROUTE_NAMES_MAX 4096
#define ROUTE_NAME_LEN_MAX 64

struct Route {
        char **names; /* sorted */
        size_t n;
};

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

void route_free(Route *r) {
        if (!r)
                return;
        for (size_t i = 0; i < r->n; i++)
                free(r->names[i]);
        free(r->names);
        free(r);
}

int route_new(const char *modules, Route **ret) {
        Route *r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        for (const char *p = modules; *p;) {
                while (*p == ' ')
                        p++;
                size_t len = strcspn(p, " ");
                if (len == 0)
                        break;
                if (len > ROUTE_NAME_LEN_MAX || r->n >= ROUTE_NAMES_MAX) {
                        route_free(r);
                        return -EINVAL;
                }
                char **nn = realloc(r->names, (r->n + 1) * sizeof *nn);
                if (!nn) {
                        route_free(r);
                        return -ENOMEM;
                }
                r->names = nn;
                r->names[r->n] = strndup(p, len);
                if (!r->names[r->n]) {
                        route_free(r);
                        return -ENOMEM;
                }
                r->n++;
                p += len;
        }
        if (r->n)
                qsort(r->names, r->n, sizeof *r->names, cmp_str);
        *ret = r;
        return 0;
}

static bool ident_start(unsigned char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool ident_char(unsigned char c) {
        return ident_start(c) || (c >= '0' && c <= '9');
}

bool route_needs_full(const Route *r, const char *text, size_t n) {
        char word[ROUTE_NAME_LEN_MAX + 1];
        const char *key = word;

        if (r->n == 0)
                return false;
        for (size_t i = 0; i < n;) {
                unsigned char c = (unsigned char)text[i];
                if (c == '\\') {
                        /* A JSON escape: \n, \", \uXXXX ... is a separator, not part of a word. */
                        i += (i + 1 < n && text[i + 1] == 'u') ? 6 : 2;
                        continue;
                }
                if (!ident_start(c)) {
                        i++;
                        continue;
                }
                size_t start = i;
                while (i < n && ident_char((unsigned char)text[i]))
                        i++;
                size_t len = i - start;
                if (len > ROUTE_NAME_LEN_MAX)
                        continue;
                memcpy(word, text + start, len);
                word[len] = 0;
                if (bsearch(&key, r->names, r->n, sizeof *r->names, cmp_str))
                        return true;
        }
        return false;
}
