/* The playground: a notebook page served by the server itself (GET /playground, three files
 * linked in by src/playground-blob.S), so that `make run` and a browser are all a newcomer
 * needs. The page shows what untrusted code printed, returned and drew; app.js puts it in the
 * page only as text, as <img> data: URLs and in sandboxed iframes, and the headers here are the
 * second wall should that ever slip: the Content-Security-Policy runs no script but the page's
 * own file (no inline script, no eval), lets it connect only to this origin, shows images only
 * from data: and blob: URLs, and lets no other site frame it. */
#include "playground.h"

#include <errno.h>
#include <string.h>

#include "util/macro.h"

extern const char playground_html[], playground_html_end[];
extern const char playground_js[], playground_js_end[];
extern const char playground_css[], playground_css_end[];

/* No frame-src: default-src 'none' refuses every framed URL, and the sandboxed srcdoc iframes of
 * text/html results (a DataFrame) are not URLs (Chromium shows them under this policy, as the
 * browser tests check); they inherit this policy, so even without their sandbox attribute they
 * could run no script. frame-ancestors 'none' and X-Frame-Options: DENY keep the page out of other sites' frames
 * (clickjacking the Run button). */
#define PLAYGROUND_CSP                                                                   \
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src data: blob:; " \
        "connect-src 'self'; base-uri 'none'; form-action 'none'; "                      \
        "frame-ancestors 'none'"

const char *const playground_headers[][2] = {
        {"Content-Security-Policy", PLAYGROUND_CSP},
        {"X-Content-Type-Options", "nosniff"},
        {"Referrer-Policy", "no-referrer"},
        {"X-Frame-Options", "DENY"},
        {"Cross-Origin-Opener-Policy", "same-origin"},
        {"Cross-Origin-Resource-Policy", "same-origin"},
        {"Cache-Control", "no-cache"},
        {NULL, NULL},
};

int playground_find(const char *url, PlaygroundFile *ret) {
        /* The lengths are differences of linker symbols, not constant expressions in C: they
         * are worked out here, per call, into the caller's struct. */
        const PlaygroundFile files[] = {
                {"/playground", "text/html; charset=utf-8", playground_html,
                        (size_t)(playground_html_end - playground_html)},
                {"/playground/app.js", "text/javascript; charset=utf-8", playground_js,
                        (size_t)(playground_js_end - playground_js)},
                {"/playground/style.css", "text/css; charset=utf-8", playground_css,
                        (size_t)(playground_css_end - playground_css)},
        };

        if (!url)
                return -ENOENT;
        for (size_t i = 0; i < ELEMENTSOF(files); i++)
                if (strcmp(url, files[i].path) == 0) {
                        *ret = files[i];
                        return 0;
                }
        return -ENOENT;
}
