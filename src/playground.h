/* The playground page (src/playground/): its files, compiled into the binary, and the headers
 * they are served with. A pure lookup; http.c serves them. */
#pragma once

#include <stddef.h>

typedef struct PlaygroundFile {
        const char *path; /* the URL path it is served at */
        const char *content_type;
        const char *data; /* not NUL-terminated */
        size_t len;
} PlaygroundFile;

/* The page's file served at exactly url (no prefix; libmicrohttpd strips the query): returns 0
 * and sets *ret, or -ENOENT. "/", which redirects to the page, is not a file. */
int playground_find(const char *url, PlaygroundFile *ret);

/* The page's response headers, name and value, ended by {NULL, NULL}: the Content-Security-
 * Policy and the rest of what keeps the code's output from acting in the page. */
extern const char *const playground_headers[][2];
