/* route: which zygote a runner request needs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#include "route.h"

static bool full(const Route *r, const char *text) {
        return route_needs_full(r, text, strlen(text));
}

static void test_names_as_identifiers(void **state) {
        Route *r = NULL;
        (void)state;
        assert_int_equal(route_new("pandas numpy  sklearn scipy", &r), 0);
        assert_true(full(r, "{\"code\":\"import pandas as pd\"}"));
        assert_true(full(r, "{\"code\":\"from sklearn.linear_model import X\"}"));
        assert_true(full(r, "{\"code\":\"import os,numpy\"}"));
        /* A JSON escape separates words: "\npandas" is the word pandas. */
        assert_true(full(r, "{\"code\":\"x = 1\\nnumpy.zeros(3)\"}"));
        assert_true(full(r, "{\"code\":\"x = 1\\u0009scipy\"}"));
        /* Parts of longer identifiers do not count. */
        assert_false(full(r, "{\"code\":\"pandas_like = 1; mynumpy = 2; numpy2 = 3\"}"));
        assert_false(full(r, "{\"code\":\"print('Hello, World!')\"}"));
        assert_false(full(r, "{\"code\":\"import json, math\"}"));
        assert_false(full(r, ""));
        route_free(r);
}

static void test_empty_table_routes_nothing(void **state) {
        Route *r = NULL;
        (void)state;
        assert_int_equal(route_new("", &r), 0);
        assert_false(full(r, "import pandas"));
        route_free(r);
}

static void test_bad_tables(void **state) {
        Route *r = NULL;
        char big[200];
        (void)state;
        memset(big, 'a', sizeof big - 1);
        big[sizeof big - 1] = 0;
        assert_int_equal(route_new(big, &r), -EINVAL);
        route_free(NULL);
}

static void test_long_words_and_truncated_escapes(void **state) {
        Route *r = NULL;
        char text[300];
        (void)state;
        assert_int_equal(route_new("numpy", &r), 0);
        memset(text, 'x', sizeof text);
        assert_false(route_needs_full(r, text, sizeof text));
        assert_false(route_needs_full(r, "abc\\", 4));
        assert_false(route_needs_full(r, "abc\\u00", 7));
        assert_true(route_needs_full(r, "numpy", 5));
        route_free(r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_names_as_identifiers),
                cmocka_unit_test(test_empty_table_routes_nothing),
                cmocka_unit_test(test_bad_tables),
                cmocka_unit_test(test_long_words_and_truncated_escapes),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
