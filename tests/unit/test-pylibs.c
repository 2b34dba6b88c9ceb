/* Unit tests of src/pylibs.c: the pip name -> module / Debian package table, the folding of case
 * and '_'/'-', the fallback for unknown names, the name check, buffer sizes, and the tokenizer
 * used on PREINSTALL_LIBS. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pylibs.h"
#include "util/macro.h"

typedef struct Mapping {
        const char *package, *module, *debian;
} Mapping;

static const Mapping mappings[] = {
        {"pandas", "pandas", "python3-pandas"},
        {"numpy", "numpy", "python3-numpy"},
        {"matplotlib", "matplotlib", "python3-matplotlib"},
        {"scikit-learn", "sklearn", "python3-sklearn"},
        {"sklearn", "sklearn", "python3-sklearn"},
        {"scipy", "scipy", "python3-scipy"},
        {"seaborn", "seaborn", "python3-seaborn"},
        {"statsmodels", "statsmodels", "python3-statsmodels"},
        {"sympy", "sympy", "python3-sympy"},
        {"pillow", "PIL", "python3-pil"},
        {"beautifulsoup4", "bs4", "python3-bs4"},
        {"python-dateutil", "dateutil", "python3-dateutil"},
        {"pyyaml", "yaml", "python3-yaml"},
        {"opencv-python", "cv2", "python3-opencv"},
        {"opencv-python-headless", "cv2", "python3-opencv"},
        {"scikit-image", "skimage", "python3-skimage"},
        {"networkx", "networkx", "python3-networkx"},
        {"requests", "requests", "python3-requests"},
        {"lxml", "lxml", "python3-lxml"},
        {"openpyxl", "openpyxl", "python3-openpyxl"},
        {"xlrd", "xlrd", "python3-xlrd"},
        {"tabulate", "tabulate", "python3-tabulate"},
        {"pytz", "pytz", "python3-tz"},
        {"plotly", "plotly", "python3-plotly"},
        {"bokeh", "bokeh", "python3-bokeh"},
        {"nltk", "nltk", "python3-nltk"},
        {"numexpr", "numexpr", "python3-numexpr"},
        {"tables", "tables", "python3-tables"},
        {"pyarrow", "pyarrow", "python3-pyarrow"},
        {"protobuf", "google.protobuf", "python3-protobuf"},
        {"attrs", "attr", "python3-attr"},
};

static void check_mapping(const char *package, const char *module, const char *debian) {
        char buf[256];

        memset(buf, 'x', sizeof(buf));
        if (pylibs_module(package, buf, sizeof(buf)) != 0 || strcmp(buf, module) != 0)
                fail_msg("pylibs_module(\"%s\") = \"%s\", expected \"%s\"", package, buf, module);
        memset(buf, 'x', sizeof(buf));
        if (pylibs_debian(package, buf, sizeof(buf)) != 0 || strcmp(buf, debian) != 0)
                fail_msg("pylibs_debian(\"%s\") = \"%s\", expected \"%s\"", package, buf, debian);
}

static void test_known_mappings(void **state) {
        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(mappings); i++)
                check_mapping(mappings[i].package, mappings[i].module, mappings[i].debian);
}

static void test_case_and_separator_folding(void **state) {
        (void)state;
        check_mapping("Scikit-Learn", "sklearn", "python3-sklearn");
        check_mapping("scikit_learn", "sklearn", "python3-sklearn");
        check_mapping("SCIKIT_LEARN", "sklearn", "python3-sklearn");
        check_mapping("PyYAML", "yaml", "python3-yaml");
        check_mapping("Pillow", "PIL", "python3-pil");
        check_mapping("python_dateutil", "dateutil", "python3-dateutil");
        check_mapping("OpenCV_Python", "cv2", "python3-opencv");
        check_mapping("scikit_image", "skimage", "python3-skimage");
        check_mapping("BeautifulSoup4", "bs4", "python3-bs4");
        check_mapping("PyTZ", "pytz", "python3-tz");
        /* '.' is not a separator: it does not match the "scikit-learn" entry. */
        check_mapping("scikit.learn", "scikit.learn", "python3-scikit.learn");
}

static void test_unknown_names(void **state) {
        (void)state;
        check_mapping("foo", "foo", "python3-foo");
        check_mapping("Foo-Bar", "foo_bar", "python3-foo-bar");
        /* Debian package names cannot hold '_'. */
        check_mapping("typing_extensions", "typing_extensions", "python3-typing-extensions");
        check_mapping("zope.interface", "zope.interface", "python3-zope.interface");
        check_mapping("X2", "x2", "python3-x2");
}

static void test_long_unknown_name(void **state) {
        (void)state;
        char name[301], expected[301], buf[400];

        /* Longer than the lookup key: must still take the fallback, not fail. */
        for (size_t i = 0; i < 300; i++)
                name[i] = i % 2 ? 'A' : '-';
        name[300] = '\0';
        for (size_t i = 0; i < 300; i++)
                expected[i] = i % 2 ? 'a' : '_';
        expected[300] = '\0';
        assert_int_equal(pylibs_module(name, buf, sizeof(buf)), 0);
        assert_string_equal(buf, expected);
        assert_int_equal(pylibs_debian(name, buf, sizeof(buf)), 0);
        assert_int_equal(strncmp(buf, "python3-", 8), 0);
        assert_int_equal(strlen(buf), 308);
}

static void test_invalid_names(void **state) {
        (void)state;
        static const char *const bad[] = {
                "",
                "pan das",
                "pandas;rm",
                "numpy==1.26",
                "numpy>=1",
                "a/b",
                "../x",
                "$(id)",
                "p\303\244ckage", /* UTF-8 */
                "tab\tbed",
                "new\nline",
                "comma,sep",
                "numpy[extra]",
        };
        char buf[64];

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                if (pylibs_module(bad[i], buf, sizeof(buf)) != -EINVAL)
                        fail_msg("pylibs_module accepted \"%s\"", bad[i]);
                if (pylibs_debian(bad[i], buf, sizeof(buf)) != -EINVAL)
                        fail_msg("pylibs_debian accepted \"%s\"", bad[i]);
        }
        assert_int_equal(pylibs_module(NULL, buf, sizeof(buf)), -EINVAL);
        assert_int_equal(pylibs_debian(NULL, buf, sizeof(buf)), -EINVAL);
        /* The name is checked before the buffer. */
        assert_int_equal(pylibs_module("a b", buf, 0), -EINVAL);
}

static void test_buffer_too_small(void **state) {
        (void)state;
        char buf[32];

        /* "sklearn" needs 8 bytes with its NUL. */
        assert_int_equal(pylibs_module("scikit-learn", buf, 7), -ENAMETOOLONG);
        assert_int_equal(pylibs_module("scikit-learn", buf, 8), 0);
        assert_string_equal(buf, "sklearn");
        /* "python3-pandas" needs 15. */
        assert_int_equal(pylibs_debian("pandas", buf, 14), -ENAMETOOLONG);
        assert_int_equal(pylibs_debian("pandas", buf, 15), 0);
        assert_string_equal(buf, "python3-pandas");
        /* Unknown names: "foo" needs 4, "python3-foo" needs 12. */
        assert_int_equal(pylibs_module("foo", buf, 3), -ENAMETOOLONG);
        assert_int_equal(pylibs_module("foo", buf, 4), 0);
        assert_string_equal(buf, "foo");
        assert_int_equal(pylibs_debian("foo", buf, 11), -ENAMETOOLONG);
        assert_int_equal(pylibs_debian("foo", buf, 12), 0);
        assert_string_equal(buf, "python3-foo");
        assert_int_equal(pylibs_debian("foo", buf, 8), -ENAMETOOLONG);
        assert_int_equal(pylibs_module("foo", NULL, 0), -ENAMETOOLONG);
        assert_int_equal(pylibs_debian("foo", NULL, 0), -ENAMETOOLONG);
}

#define MAX_TOKENS 16

typedef struct Tokens {
        char tokens[MAX_TOKENS][200];
        size_t n;
        size_t fail_at; /* return -EIO on this 1-based call; 0 = never */
} Tokens;

static int collect(const char *token, void *userdata) {
        Tokens *t = userdata;

        assert_true(t->n < MAX_TOKENS);
        assert_true(strlen(token) < sizeof(t->tokens[0]));
        strcpy(t->tokens[t->n++], token);
        if (t->fail_at == t->n)
                return -EIO;
        return 0;
}

static void test_foreach_separators(void **state) {
        (void)state;
        Tokens t = {0};

        assert_int_equal(pylibs_foreach("  pandas,numpy\tscipy , ,\t,sympy  ", collect, &t), 0);
        assert_int_equal(t.n, 4);
        assert_string_equal(t.tokens[0], "pandas");
        assert_string_equal(t.tokens[1], "numpy");
        assert_string_equal(t.tokens[2], "scipy");
        assert_string_equal(t.tokens[3], "sympy");

        /* The tokenizer does not judge names; that is pylibs_module's job. */
        memset(&t, 0, sizeof(t));
        assert_int_equal(pylibs_foreach("a==1;b", collect, &t), 0);
        assert_int_equal(t.n, 1);
        assert_string_equal(t.tokens[0], "a==1;b");
}

static void test_foreach_empty(void **state) {
        (void)state;
        Tokens t = {0};

        assert_int_equal(pylibs_foreach("", collect, &t), 0);
        assert_int_equal(pylibs_foreach(" \t, ,", collect, &t), 0);
        assert_int_equal(pylibs_foreach(NULL, collect, &t), 0);
        assert_int_equal(t.n, 0);
}

static void test_foreach_long_token(void **state) {
        (void)state;
        char list[300];
        Tokens t = {0};

        /* 127 bytes is the longest token allowed. */
        memset(list, 'a', 127);
        list[127] = '\0';
        assert_int_equal(pylibs_foreach(list, collect, &t), 0);
        assert_int_equal(t.n, 1);
        assert_int_equal(strlen(t.tokens[0]), 127);

        memset(&t, 0, sizeof(t));
        memset(list, 'a', 128);
        list[128] = '\0';
        assert_int_equal(pylibs_foreach(list, collect, &t), -ENAMETOOLONG);
        assert_int_equal(t.n, 0);

        /* A long token after good ones still fails the whole list. */
        memset(&t, 0, sizeof(t));
        strcpy(list, "numpy ");
        memset(list + 6, 'b', 200);
        list[206] = '\0';
        assert_int_equal(pylibs_foreach(list, collect, &t), -ENAMETOOLONG);
}

static void test_foreach_stops_on_error(void **state) {
        (void)state;
        Tokens t = {.fail_at = 2};

        assert_int_equal(pylibs_foreach("a b c d", collect, &t), -EIO);
        assert_int_equal(t.n, 2);
        assert_string_equal(t.tokens[1], "b");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_known_mappings),
                cmocka_unit_test(test_case_and_separator_folding),
                cmocka_unit_test(test_unknown_names),
                cmocka_unit_test(test_long_unknown_name),
                cmocka_unit_test(test_invalid_names),
                cmocka_unit_test(test_buffer_too_small),
                cmocka_unit_test(test_foreach_separators),
                cmocka_unit_test(test_foreach_empty),
                cmocka_unit_test(test_foreach_long_token),
                cmocka_unit_test(test_foreach_stops_on_error),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
