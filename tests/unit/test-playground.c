/* playground: the page's files, found by exact path only, whole, with the headers that keep a
 * run's output from acting in the page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#include "playground.h"

static void test_files_by_exact_path(void **state) {
        PlaygroundFile f;
        (void)state;
        assert_int_equal(playground_find("/playground", &f), 0);
        assert_string_equal(f.content_type, "text/html; charset=utf-8");
        assert_true(f.len > 100);
        assert_memory_equal(f.data, "<!doctype html>", strlen("<!doctype html>"));
        /* The whole file, up to its last line (the blob adds no terminator to count). */
        assert_memory_equal(f.data + f.len - strlen("</html>\n"), "</html>\n", strlen("</html>\n"));
        assert_int_equal(playground_find("/playground/app.js", &f), 0);
        assert_string_equal(f.content_type, "text/javascript; charset=utf-8");
        assert_null(memchr(f.data, 0, f.len));
        assert_int_equal(playground_find("/playground/style.css", &f), 0);
        assert_string_equal(f.content_type, "text/css; charset=utf-8");
}

static void test_nothing_else(void **state) {
        PlaygroundFile f = {0};
        (void)state;
        const char *const others[] = {"/", "", "/playground/", "/playground/app.js/", "/playgroundx",
                "/playground/../playground", "/Playground", "/playground/index.html", "/openapi.json"};
        for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
                assert_int_equal(playground_find(others[i], &f), -ENOENT);
        assert_int_equal(playground_find(NULL, &f), -ENOENT);
        assert_null(f.path); /* untouched on failure */
}

static void test_headers(void **state) {
        const char *csp = NULL;
        bool nosniff = false, deny = false;
        (void)state;
        for (size_t i = 0; playground_headers[i][0]; i++) {
                if (strcmp(playground_headers[i][0], "Content-Security-Policy") == 0)
                        csp = playground_headers[i][1];
                nosniff |= strcmp(playground_headers[i][0], "X-Content-Type-Options") == 0 &&
                           strcmp(playground_headers[i][1], "nosniff") == 0;
                deny |= strcmp(playground_headers[i][0], "X-Frame-Options") == 0 &&
                        strcmp(playground_headers[i][1], "DENY") == 0;
        }
        assert_non_null(csp);
        assert_non_null(strstr(csp, "default-src 'none'"));
        assert_non_null(strstr(csp, "script-src 'self';"));
        assert_non_null(strstr(csp, "connect-src 'self';"));
        assert_non_null(strstr(csp, "frame-ancestors 'none'"));
        assert_null(strstr(csp, "unsafe"));
        assert_true(nosniff);
        assert_true(deny);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_files_by_exact_path),
                cmocka_unit_test(test_nothing_else),
                cmocka_unit_test(test_headers),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
