/* API keys. A request's key is compared with every configured key, each comparison reading
 * every byte of both, so timing tells an attacker nothing about how close a guess was or which
 * key it resembled. Keys live only here; nothing logs them, and errors never quote them.
 *
 * Loading fails closed: a source that is set (API_KEYS non-empty, or API_KEYS_FILE) but yields
 * no key is an error, not "no authentication". The usual way to get there is a secret that is
 * not mounted yet (a keys file of comments only) or a templated API_KEYS that expanded to
 * blanks; serving openly then would be the opposite of what the operator asked for. */
#include "auth.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/fd.h"
#include "util/macro.h"
#include "util/str.h"

#define KEYS_MAX 1024
#define KEY_LEN_MAX 512
#define KEYS_FILE_MAX (1 << 20)

struct Auth {
        char **keys;
        size_t n;
};

void auth_free(Auth *a) {
        if (!a)
                return;
        for (size_t i = 0; i < a->n; i++) {
                explicit_bzero(a->keys[i], strlen(a->keys[i]));
                free(a->keys[i]);
        }
        free(a->keys);
        free(a);
}

static int add_key(Auth *a, const char *p, size_t n) {
        while (n > 0 && (*p == ' ' || *p == '\t' || *p == '\r'))
                p++, n--;
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
                n--;
        if (n == 0)
                return 0;
        if (n > KEY_LEN_MAX || a->n >= KEYS_MAX)
                return -E2BIG;
        char **k = realloc(a->keys, (a->n + 1) * sizeof *k);
        if (!k)
                return -ENOMEM;
        a->keys = k;
        a->keys[a->n] = strndup(p, n);
        if (!a->keys[a->n])
                return -ENOMEM;
        a->n++;
        return 0;
}

int auth_new(const Config *c, Auth **ret, char *why, size_t whyn) {
        Auth *a = calloc(1, sizeof *a);
        int r = 0;
        if (!a)
                return -ENOMEM;
        for (const char *p = c->api_keys; *p && r == 0;) {
                size_t n = strcspn(p, ",");
                r = add_key(a, p, n);
                p += n + (p[n] == ',');
        }
        if (r < 0) {
                snprintf(why, whyn,
                        "API_KEYS: a key is longer than %d bytes, or there are more than %d keys",
                        KEY_LEN_MAX, KEYS_MAX);
                auth_free(a);
                return r;
        }
        if (c->api_keys[0] && a->n == 0) {
                snprintf(why, whyn,
                        "API_KEYS is set but holds no key (only commas and blanks); refusing to start "
                        "without authentication");
                auth_free(a);
                return -ENOKEY;
        }
        size_t from_list = a->n;
        if (c->api_keys_file[0]) {
                _cleanup_free_ char *text = NULL;
                size_t len;
                r = fd_read_file(c->api_keys_file, KEYS_FILE_MAX, &text, &len);
                if (r < 0) {
                        snprintf(why, whyn, "API_KEYS_FILE=%s: %s", c->api_keys_file, strerror(-r));
                        auth_free(a);
                        return r;
                }
                for (char *p = text; *p && r == 0;) {
                        size_t n = strcspn(p, "\n");
                        /* A comment may be indented: "  # key of the old client" is not a key. */
                        size_t blank = strspn(p, " \t");
                        if (blank >= n || p[blank] != '#')
                                r = add_key(a, p, n);
                        p += n + (p[n] == '\n');
                }
                explicit_bzero(text, len);
                if (r == 0 && a->n == from_list) {
                        snprintf(why, whyn,
                                "API_KEYS_FILE %s: no key in it (only comments or blank lines); refusing "
                                "to start without authentication",
                                c->api_keys_file);
                        auth_free(a);
                        return -ENOKEY;
                }
                if (r < 0) {
                        snprintf(why, whyn,
                                "API_KEYS_FILE=%s: a key is longer than %d bytes, or there are more than %d "
                                "keys",
                                c->api_keys_file, KEY_LEN_MAX, KEYS_MAX);
                        auth_free(a);
                        return r;
                }
        }
        *ret = a;
        return 0;
}

bool auth_enabled(const Auth *a) {
        return a && a->n > 0;
}

/* 0 when equal. Reads all of both (up to KEY_LEN_MAX), whatever they hold. */
static unsigned ct_differs(const char *a, size_t an, const char *b, size_t bn) {
        return str_ct_differs(a, an, b, bn, KEY_LEN_MAX);
}

int auth_owner(const Auth *a, const char *authorization) {
        if (!auth_enabled(a))
                return 0;
        if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
                return -1;
        const char *key = authorization + 7;
        while (*key == ' ')
                key++;
        size_t n = strlen(key);
        if (n > KEY_LEN_MAX)
                return -1;
        size_t owner = 0;
        unsigned match = 0;
        for (size_t i = 0; i < a->n; i++) {
                unsigned m = !ct_differs(key, n, a->keys[i], strlen(a->keys[i]));
                /* Branch-free: the index of the (last) matching key, whatever matched. */
                owner |= (size_t)(0 - (size_t)m) & i;
                match |= m;
        }
        return match ? (int)owner : -1;
}

bool auth_check(const Auth *a, const char *authorization) {
        if (!auth_enabled(a))
                return true;
        if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
                return false;
        const char *key = authorization + 7;
        while (*key == ' ')
                key++;
        size_t n = strlen(key);
        if (n > KEY_LEN_MAX)
                return false;
        unsigned match = 0;
        for (size_t i = 0; i < a->n; i++)
                match |= !ct_differs(key, n, a->keys[i], strlen(a->keys[i]));
        return match != 0;
}
