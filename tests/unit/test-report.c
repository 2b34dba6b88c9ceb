/* report: the scan that bounds the parser, the schema check, and the cap's formula. */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "report.h"

static int parse(const Config *c, const char *s, size_t n, char *why) {
        json_t *rep = NULL;
        int r = report_parse(s, n, c, &rep, why, 200);
        if (r == 0)
                assert_non_null(rep);
        else
                assert_null(rep);
        json_decref(rep);
        return r;
}

/* n copies of piece between head and tail, malloc'ed. */
static char *repeat(const char *head, const char *piece, size_t n, const char *tail, size_t *ret_len) {
        size_t h = strlen(head), p = strlen(piece), t = strlen(tail);
        char *s = malloc(h + p * n + t + 1);
        assert_non_null(s);
        memcpy(s, head, h);
        for (size_t i = 0; i < n; i++)
                memcpy(s + h + i * p, piece, p);
        memcpy(s + h + p * n, tail, t + 1);
        *ret_len = h + p * n + t;
        return s;
}

static void test_valid(void **state) {
        Config c;
        char why[200];
        (void)state;
        config_init(&c);
        const char *ok[] = {
                "{}",
                "{\"error\":null,\"result\":null,\"images\":[],\"images_dropped\":0}",
                "{\"error\":{\"type\":\"E\",\"message\":\"m\",\"traceback\":\"t\"},\"files\":[{\"name\":"
                "\"a/b\",\"size\":3,\"encoding\":\"utf-8\",\"content\":\"x\\\"]\"}],\"files_dropped\":2}",
                /* brackets and commas inside strings are not structure */
                "{\"result\":{\"text/plain\":\"[[[[[[,,,,{{{{\\\\\",\"text/html\":\"\\u0000\"}}",
        };
        for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
                if (parse(&c, ok[i], strlen(ok[i]), why) != 0)
                        fail_msg("%s: %s", ok[i], why);
}

/* The reader takes what json.dumps writes, escapes included, and nothing else. */
static void test_json_syntax(void **state) {
        Config c;
        char why[200];
        (void)state;
        config_init(&c);
        const char *ok[] = {
                "  {\"error\" : {\"type\": \"E\", \"message\": \"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"}} \n",
                "{\"error\":{\"type\":\"\\u00e9\\ud83d\\ude00\\u0000\",\"message\":\"\xc3\xa9\"}}",
                "{\"images_dropped\":0,\"files_dropped\":9223372036854775807}",
        };
        for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
                if (parse(&c, ok[i], strlen(ok[i]), why) != 0)
                        fail_msg("%s: %s", ok[i], why);
        json_t *rep = NULL;
        assert_int_equal(report_parse(ok[1], strlen(ok[1]), &c, &rep, why, sizeof why), 0);
        json_t *type = json_object_get(json_object_get(rep, "error"), "type");
        assert_int_equal(json_string_length(type), 2 + 4 + 1);
        assert_memory_equal(json_string_value(type), "\xc3\xa9\xf0\x9f\x98\x80\0", 7);
        json_decref(rep);
        const char *bad[] = {
                "",
                " ",
                "{",
                "{\"error\":null",
                "{\"error\":null}x",
                "{\"error\":null,}",
                "{,}",
                "{\"error\" null}",
                "{error:null}",
                "{\"images_dropped\":01}",
                "{\"images_dropped\":1.0}",
                "{\"images_dropped\":1e3}",
                "{\"images_dropped\":-}",
                "{\"images_dropped\":9223372036854775808}",
                "{\"images_dropped\":tru}",
                "{\"error\":{\"type\":\"\\x\",\"message\":\"m\"}}",
                "{\"error\":{\"type\":\"\\u12\",\"message\":\"m\"}}",
                "{\"error\":{\"type\":\"\\ud83d\",\"message\":\"m\"}}",
                "{\"error\":{\"type\":\"\\ude00\",\"message\":\"m\"}}",
                "{\"error\":{\"type\":\"\\ud83d\\u0041\",\"message\":\"m\"}}",
                "{\"error\":{\"type\":\"\xff\",\"message\":\"m\"}}",
                "{\"error\":{\"type\":\"\xed\xa0\x80\",\"message\":\"m\"}}",
                "{\"error\":{\"type\":\"a\nb\",\"message\":\"m\"}}",
                "{\"error\":{\"type\":\"T\",\"message\":\"m\\",
                "{\"\xff\":1}",
                "{\"error\":null,\"error\":null}",
                "{\"a\\u0000b\":1}",
                "{\"error\":nul}",
        };
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
                if (parse(&c, bad[i], strlen(bad[i]), why) != -EBADMSG)
                        fail_msg("accepted: %s", bad[i]);
        /* raw NUL bytes in the text */
        assert_int_equal(parse(&c, "{\"error\":\0null}", 15, why), -EBADMSG);
}

/* Shapes that cost a parser far more than their size are refused before it runs: the scan
 * counts what the schema can hold under the caps. Each is well within the report's cap. */
static void test_pathological_shapes(void **state) {
        static const struct {
                const char *head, *piece, *tail, *why;
                size_t n;
        } cases[] = {
                {"{\"images\":[", "{},", "{}]}", "values", 1000000},
                {"{\"files\":[", "[],", "[]]}", "values", 1000000},
                {"{\"images_dropped\":[", "0,", "0]}", "values", 1000000},
                {"", "[", "", "deeper", 100000},
                {"{\"files\":[{\"name\":", "[", "", "deeper", 10},
                {"{\"files\":[", "{\"name\":\"a\",\"size\":0,\"truncated\":true},", "{}]}", "values",
                        100000},
        };
        Config c;
        char why[200];
        (void)state;
        config_init(&c);
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
                size_t n;
                char *s = repeat(cases[i].head, cases[i].piece, cases[i].n, cases[i].tail, &n);
                assert_true(n < report_cap(&c));
                assert_int_equal(parse(&c, s, n, why), -EBADMSG);
                if (!strstr(why, cases[i].why))
                        fail_msg("case %zu: %s", i, why);
                free(s);
        }
        /* one huge string passes the scan and is refused by the schema */
        size_t n;
        char *s = repeat("{\"result\":{\"text/plain\":\"", "x", 6 << 20, "\"}}", &n);
        assert_int_equal(parse(&c, s, n, why), -EBADMSG);
        assert_non_null(strstr(why, "string longer"));
        free(s);
        /* over the cap: refused before anything else */
        Config tiny = c;
        tiny.max_images = 0;
        tiny.max_return_files = 0;
        tiny.max_return_bytes = 0;
        tiny.max_result_bytes = 1024;
        s = repeat("{\"error\":null,\"pad\":\"", " ", report_cap(&tiny), "\"}", &n);
        assert_int_equal(parse(&tiny, s, n, why), -EBADMSG);
        assert_non_null(strstr(why, "cap"));
        free(s);
}

/* As many images and files as the caps allow pass the scan; one more does not. */
static void test_counts_at_the_caps(void **state) {
        Config c;
        char why[200];
        size_t n;
        (void)state;
        config_init(&c);
        c.max_images = 50;
        c.max_return_files = 300;
        char *s = repeat("{\"images\":[", "{\"format\":\"png\",\"width\":1,\"height\":1,\"data\":\"AA==\"},",
                49, "{\"format\":\"svg\",\"width\":1,\"height\":1,\"data\":\"AA==\"}],\"files\":[", &n);
        char *t = repeat(s, "{\"name\":\"a\",\"size\":1,\"encoding\":\"utf-8\",\"content\":\"x\"},", 299,
                "{\"name\":\"b\",\"size\":1,\"truncated\":true}],\"error\":{\"type\":\"E\",\"message\":"
                "\"m\","
                "\"traceback\":\"t\"},\"result\":{\"text/plain\":\"1\",\"text/html\":\"1\"},"
                "\"images_dropped\":0,\"files_dropped\":0}",
                &n);
        if (parse(&c, t, n, why) != 0)
                fail_msg("%s", why);
        c.max_images = 49;
        assert_int_equal(parse(&c, t, n, why), -EBADMSG);
        c.max_images = 50;
        c.max_return_files = 299;
        assert_int_equal(parse(&c, t, n, why), -EBADMSG);
        free(s);
        free(t);
        /* Images alone, with no file budget to hide in: the commas between the array's
         * objects count too (the scan's budget once missed them, and refused this report). */
        c.max_images = 64;
        c.max_return_files = 0;
        s = repeat("{\"images\":[", "{\"format\":\"png\",\"width\":1,\"height\":1,\"data\":\"AA==\"},", 63,
                "{\"format\":\"svg\",\"width\":1,\"height\":1,\"data\":\"AA==\"}],\"error\":null}", &n);
        if (parse(&c, s, n, why) != 0)
                fail_msg("%s", why);
        free(s);
}

/* The cap follows the formula in report.c, and grows with each limit. */
static void test_cap(void **state) {
        Config c;
        (void)state;
        config_init(&c);
        uint64_t base = report_cap(&c);
        assert_true(base == 64 * 1024 + 18 * (uint64_t)REPORT_ERROR_BYTES + 12 * c.max_result_bytes +
                                    c.max_images * ((c.max_image_bytes + 2) / 3 * 4 + 128) +
                                    (c.max_return_bytes + 2) / 3 * 4 +
                                    c.max_return_files * (6 * REPORT_NAME_MAX + 128));
        c.max_images++;
        assert_true(report_cap(&c) > base);
        c.max_images--;
        c.max_return_bytes += 3; /* one more base64 quantum */
        assert_true(report_cap(&c) > base);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_valid),
                cmocka_unit_test(test_json_syntax),
                cmocka_unit_test(test_pathological_shapes),
                cmocka_unit_test(test_counts_at_the_caps),
                cmocka_unit_test(test_cap),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
