/* Unit tests of src/util/ttysafe.c: control characters other than \n \t \r come out escaped,
 * C1 controls too (as UTF-8 and as raw bytes), valid UTF-8 passes byte for byte, and the result
 * does not depend on where the input is cut into writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/macro.h"
#include "util/ttysafe.h"

typedef struct Case {
        const char *name;
        const char *in;
        size_t in_len;
        const char *out;
} Case;

#define C(name, in, out) \
        { name, in, sizeof(in) - 1, out }

static const Case cases[] = {
        C("empty", "", ""),
        C("plain text", "hello, world", "hello, world"),
        C("newline tab cr kept", "a\nb\tc\r\n", "a\nb\tc\r\n"),
        C("esc", "\x1b[31mred", "\\x1b[31mred"),
        C("osc title", "\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
        C("osc 52 clipboard", "\x1b]52;c;ZWNobyBwd25lZA==\x1b\\", "\\x1b]52;c;ZWNobyBwd25lZA==\\x1b\\"),
        C("nul", "a\0b", "a\\x00b"),
        C("backspace bell formfeed vt", "\b\a\f\v", "\\x08\\x07\\x0c\\x0b"),
        C("del", "\x7f", "\\x7f"),
        C("c1 csi as utf-8",
                "\xc2\x9b"
                "31m",
                "\\u009b31m"),
        C("c1 first and last", "\xc2\x80\xc2\x9f", "\\u0080\\u009f"),
        C("nbsp is text", "\xc2\xa0", "\xc2\xa0"),
        C("e acute", "caf\xc3\xa9", "caf\xc3\xa9"),
        C("euro", "\xe2\x82\xac", "\xe2\x82\xac"),
        C("snake emoji", "\xf0\x9f\x90\x8d", "\xf0\x9f\x90\x8d"),
        C("raw c1 byte",
                "\x9b"
                "31m",
                "\\x9b31m"),
        C("raw 0x80", "\x80", "\\x80"),
        C("latin-1 byte", "caf\xe9!", "caf\\xe9!"),
        C("overlong slash", "\xc0\xaf", "\\xc0\\xaf"),
        C("overlong 3-byte", "\xe0\x80\xaf", "\\xe0\\x80\\xaf"),
        C("surrogate", "\xed\xa0\x80", "\\xed\\xa0\\x80"),
        C("above U+10FFFF", "\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"),
        C("f5", "\xf5", "\\xf5"),
        C("cut sequence then esc", "\xe2\x82\x1b", "\\xe2\\x82\\x1b"),
        C("cut sequence then text",
                "\xe2\x82"
                "a",
                "\\xe2\\x82a"),
        C("lead then lead", "\xc3\xc3\xa9", "\\xc3\xc3\xa9"),
        C("incomplete at the end", "ok\xf0\x9f\x90", "ok\\xf0\\x9f\\x90"),
};

/* Feeds in[0..n) in pieces cut at the given offsets (ascending), then flushes. */
static size_t filter_cut(const char *in, size_t n, const size_t *cuts, size_t ncuts, char *out) {
        TtySafe t;
        size_t k = 0, at = 0;
        ttysafe_init(&t);
        for (size_t i = 0; i <= ncuts; i++) {
                size_t end = i < ncuts ? cuts[i] : n;
                size_t wrote = ttysafe_feed(&t, in + at, end - at, out + k);
                assert_true(wrote <= TTYSAFE_MAX(end - at));
                k += wrote;
                at = end;
        }
        size_t tail = ttysafe_flush(&t, out + k);
        assert_true(tail <= TTYSAFE_MAX(0));
        return k + tail;
}

static void check(const Case *c, const size_t *cuts, size_t ncuts) {
        char out[512];
        assert_true(TTYSAFE_MAX(c->in_len) < sizeof out);
        size_t k = filter_cut(c->in, c->in_len, cuts, ncuts, out);
        if (k != strlen(c->out) || memcmp(out, c->out, k) != 0)
                fail_msg("%s (cuts %zu): got \"%.*s\", want \"%s\"", c->name, ncuts, (int)k, out, c->out);
}

static void test_table(void **state) {
        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                check(&cases[i], NULL, 0);
}

/* Every case cut once at every position, and cut into single bytes: the same output. */
static void test_any_cut_gives_the_same_output(void **state) {
        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const Case *c = &cases[i];
                for (size_t at = 0; at <= c->in_len; at++)
                        check(c, &at, 1);
                size_t bytes[64];
                assert_true(c->in_len < ELEMENTSOF(bytes));
                for (size_t j = 0; j < c->in_len; j++)
                        bytes[j] = j + 1;
                check(c, bytes, c->in_len ? c->in_len - 1 : 0);
        }
}

/* A UTF-8 sequence split across two writes (as a program's print may be) is kept whole. */
static void test_split_sequence_is_kept_across_writes(void **state) {
        TtySafe t;
        char out[64];
        (void)state;
        ttysafe_init(&t);
        size_t k = ttysafe_feed(&t, "x\xf0\x9f", 3, out);
        assert_int_equal(k, 1);
        assert_memory_equal(out, "x", 1);
        k = ttysafe_feed(&t, "\x90\x8dy", 3, out);
        assert_int_equal(k, 5);
        assert_memory_equal(out, "\xf0\x9f\x90\x8dy", 5);
        assert_int_equal(ttysafe_flush(&t, out), 0);
}

/* Whatever the bytes, no control character reaches the output except \n \t \r, and nothing
 * decodes to a C1 control: all inputs of one, two and three bytes. */
static void test_output_never_holds_a_control(void **state) {
        char out[TTYSAFE_MAX(3)];
        unsigned char in[3];
        (void)state;
        for (unsigned len = 1; len <= 3; len++) {
                unsigned total = 1u << (8 * len);
                for (unsigned v = 0; v < total; v++) {
                        for (unsigned j = 0; j < len; j++)
                                in[j] = (unsigned char)(v >> (8 * j));
                        TtySafe t;
                        ttysafe_init(&t);
                        size_t k = ttysafe_feed(&t, (const char *)in, len, out);
                        k += ttysafe_flush(&t, out + k);
                        for (size_t j = 0; j < k; j++) {
                                unsigned char b = (unsigned char)out[j];
                                if ((b < 0x20 && b != '\n' && b != '\t' && b != '\r') || b == 0x7f)
                                        fail_msg("control 0x%02x in the output", b);
                                if (b == 0xc2 && j + 1 < k && (unsigned char)out[j + 1] <= 0x9f)
                                        fail_msg("a C1 control in the output");
                                if (b >= 0x80 && b <= 0x9f && (j == 0 || (unsigned char)out[j - 1] < 0x80))
                                        fail_msg("a raw C1 byte 0x%02x in the output", b);
                        }
                }
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_table),
                cmocka_unit_test(test_any_cut_gives_the_same_output),
                cmocka_unit_test(test_split_sequence_is_kept_across_writes),
                cmocka_unit_test(test_output_never_holds_a_control),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
