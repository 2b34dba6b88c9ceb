/* Unit tests of src/util/utf8.c: utf8_sanitize must keep valid UTF-8 (and NULs) byte for byte and
 * replace each maximal invalid subpart by exactly one U+FFFD, as Python's
 * bytes.decode("utf-8", "replace") does. The expected outputs below were computed with
 * /usr/bin/python3 and are written out here: they are the specification. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/utf8.h"

typedef struct Case {
        const char *name;
        const char *in;
        size_t in_len;
        const char *out;
        size_t out_len;
} Case;

/* Generated with: r = b.decode("utf-8", "replace").encode("utf-8") for each input b. */
static const Case cases[] = {
        {"empty", "", 0, "", 0},
        {"ascii", "hello, world", 12, "hello, world", 12},
        {"nul kept",
                "a\x00"
                "b\x00",
                4,
                "a\x00"
                "b\x00",
                4},
        {"2-byte e acute", "\xc3\xa9", 2, "\xc3\xa9", 2},
        {"2-byte min U+0080", "\xc2\x80", 2, "\xc2\x80", 2},
        {"2-byte max U+07FF", "\xdf\xbf", 2, "\xdf\xbf", 2},
        {"3-byte min U+0800", "\xe0\xa0\x80", 3, "\xe0\xa0\x80", 3},
        {"3-byte check mark", "\xe2\x9c\x93", 3, "\xe2\x9c\x93", 3},
        {"3-byte U+D7FF", "\xed\x9f\xbf", 3, "\xed\x9f\xbf", 3},
        {"3-byte U+E000", "\xee\x80\x80", 3, "\xee\x80\x80", 3},
        {"3-byte U+FFFD", "\xef\xbf\xbd", 3, "\xef\xbf\xbd", 3},
        {"3-byte U+FFFF", "\xef\xbf\xbf", 3, "\xef\xbf\xbf", 3},
        {"4-byte min U+10000", "\xf0\x90\x80\x80", 4, "\xf0\x90\x80\x80", 4},
        {"4-byte snake", "\xf0\x9f\x90\x8d", 4, "\xf0\x9f\x90\x8d", 4},
        {"4-byte max U+10FFFF", "\xf4\x8f\xbf\xbf", 4, "\xf4\x8f\xbf\xbf", 4},
        {"mixed valid", "h\xc3\xa9llo \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x90\x8d",
                25, "h\xc3\xa9llo \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x90\x8d", 25},
        {"lone continuation 80", "\x80", 1, "\xef\xbf\xbd", 3},
        {"lone continuation BF in text",
                "a\xbf"
                "b",
                3,
                "a\xef\xbf\xbd"
                "b",
                5},
        {"two continuations", "\x80\x80", 2, "\xef\xbf\xbd\xef\xbf\xbd", 6},
        {"overlong C0 80", "\xc0\x80", 2, "\xef\xbf\xbd\xef\xbf\xbd", 6},
        {"overlong C1 BF", "\xc1\xbf", 2, "\xef\xbf\xbd\xef\xbf\xbd", 6},
        {"overlong E0 80 80", "\xe0\x80\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9},
        {"overlong E0 9F BF", "\xe0\x9f\xbf", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9},
        {"overlong F0 80 80 80", "\xf0\x80\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
                12},
        {"overlong F0 8F BF BF", "\xf0\x8f\xbf\xbf", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
                12},
        {"surrogate ED A0 80", "\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9},
        {"surrogate ED BF BF", "\xed\xbf\xbf", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9},
        {"surrogate pair CESU", "\xed\xa0\xbd\xed\xb0\x8d", 6,
                "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 18},
        {"above max F4 90 80 80", "\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
                12},
        {"F5 80 80 80", "\xf5\x80\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 12},
        {"F7 BF BF BF", "\xf7\xbf\xbf\xbf", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 12},
        {"F5..FF each alone", "\xf5\xf6\xf7\xf8\xf9\xfa\xfb\xfc\xfd\xfe\xff", 11,
                "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef"
                "\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
                33},
        {"FE FF", "\xfe\xff", 2, "\xef\xbf\xbd\xef\xbf\xbd", 6},
        {"truncated C3 at end", "a\xc3", 2, "a\xef\xbf\xbd", 4},
        {"truncated E2 at end", "a\xe2", 2, "a\xef\xbf\xbd", 4},
        {"truncated E2 82 at end", "a\xe2\x82", 3, "a\xef\xbf\xbd", 4},
        {"truncated F0 at end", "a\xf0", 2, "a\xef\xbf\xbd", 4},
        {"truncated F0 9F at end", "a\xf0\x9f", 3, "a\xef\xbf\xbd", 4},
        {"truncated F0 9F 90 at end", "a\xf0\x9f\x90", 4, "a\xef\xbf\xbd", 4},
        {"truncated C3 before ASCII",
                "\xc3"
                "A",
                2,
                "\xef\xbf\xbd"
                "A",
                4},
        {"truncated E2 82 before ASCII",
                "\xe2\x82"
                "A",
                3,
                "\xef\xbf\xbd"
                "A",
                4},
        {"truncated F0 9F 90 before ASCII",
                "\xf0\x9f\x90"
                "A",
                4,
                "\xef\xbf\xbd"
                "A",
                4},
        {"truncated E2 82 before valid E2 82 AC", "\xe2\x82\xe2\x82\xac", 5, "\xef\xbf\xbd\xe2\x82\xac", 6},
        {"truncated F0 9F before NUL", "\xf0\x9f\x00", 3, "\xef\xbf\xbd\x00", 4},
        {"invalid second byte after E0",
                "\xe0"
                "A",
                2,
                "\xef\xbf\xbd"
                "A",
                4},
        {"Unicode 3.9 table 3-8 example",
                "a\xf1\x80\x80\xe1\x80\xc2"
                "b\x80"
                "c\x80\xbf"
                "d",
                13,
                "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                "b\xef\xbf\xbd"
                "c\xef\xbf\xbd\xef\xbf\xbd"
                "d",
                22},
        {"mixed",
                "a\xff"
                "b\xc3\xa9"
                "c\xed\xa0\x80"
                "d\xf0\x9f\x90\x8d"
                "e\xc0",
                16,
                "a\xef\xbf\xbd"
                "b\xc3\xa9"
                "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                "d\xf0\x9f\x90\x8d"
                "e\xef\xbf\xbd",
                26},
};

/* Sanitizes from an exact-size heap copy, so that AddressSanitizer sees any read past n. */
static char *sanitize(const char *in, size_t n, size_t *ret_len) {
        char *copy = malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, in, n);
        char *out = utf8_sanitize(copy, n, ret_len);
        free(copy);
        return out;
}

static void test_table(void **state) {
        (void)state;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                const Case *c = &cases[i];
                size_t len = (size_t)-1;
                char *out = sanitize(c->in, c->in_len, &len);

                assert_non_null(out);
                bool same = len == c->out_len && memcmp(out, c->out, len) == 0;
                bool terminated = same && out[len] == 0; /* NUL-terminated past the length */
                free(out);
                if (!same)
                        fail_msg("case \"%s\": got %zu bytes, want %zu", c->name, len, c->out_len);
                if (!terminated)
                        fail_msg("case \"%s\": not NUL-terminated", c->name);
        }
}

/* Valid input comes back as the same bytes, whatever its length, not just equal text. */
static void test_valid_input_is_copied(void **state) {
        (void)state;
        const char text[] = "print('h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x90\x8d')\n";
        size_t len;
        char *out = sanitize(text, sizeof text - 1, &len);

        assert_non_null(out);
        bool same = len == sizeof text - 1 && memcmp(out, text, len) == 0;
        free(out);
        assert_true(same);
}

static void test_every_ascii_byte_including_nul(void **state) {
        (void)state;
        char in[128];
        for (int i = 0; i < 128; i++)
                in[i] = (char)i;
        size_t len;
        char *out = sanitize(in, sizeof in, &len);

        assert_non_null(out);
        bool same = len == sizeof in && memcmp(out, in, len) == 0;
        free(out);
        assert_true(same);
}

/* A long mostly-invalid input: every byte may triple; the buffer must hold it (ASan checks). */
static void test_worst_case_growth(void **state) {
        (void)state;
        static char in[100000];
        size_t n = sizeof in, len, bad = SIZE_MAX;
        memset(in, 0xff, n);
        char *out = sanitize(in, n, &len);

        assert_non_null(out);
        for (size_t i = 0; i < n && len == 3 * n && bad == SIZE_MAX; i++)
                if (memcmp(out + 3 * i, "\xef\xbf\xbd", 3) != 0)
                        bad = i;
        bool terminated = len == 3 * n && out[len] == 0;
        free(out);
        assert_int_equal(len, 3 * n);
        if (bad != SIZE_MAX)
                fail_msg("byte %zu not replaced", bad);
        assert_true(terminated);
}

/* FNV-1a over the outputs of many inputs, each followed by 0xFF (which valid UTF-8 never holds,
 * so the concatenation is unambiguous), and the outputs' total length. */
typedef struct Digest {
        uint64_t hash;
        size_t total;
} Digest;

static void digest_add(Digest *d, const unsigned char *in, size_t n) {
        size_t len;
        char *out = utf8_sanitize((const char *)in, n, &len);

        assert_non_null(out);
        d->total += len;
        for (size_t i = 0; i <= len; i++) {
                d->hash ^= i < len ? (unsigned char)out[i] : 0xff;
                d->hash *= UINT64_C(0x100000001b3);
        }
        free(out);
}

/* Bytes that sit on a boundary of some rule: ASCII, continuation ranges, lead bytes and the
 * special second-byte ranges of E0, ED, F0, F4, and never-valid bytes. */
static const unsigned char edges[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2,
        0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
#define NEDGES (sizeof edges / sizeof edges[0])

/* The reference digests were computed in Python:
 *     h = 0xcbf29ce484222325; total = 0
 *     for b in inputs:
 *         r = b.decode("utf-8", "replace").encode("utf-8"); total += len(r)
 *         for x in r + b"\xff": h = ((h ^ x) * 0x100000001b3) % 2**64
 * with inputs: every 1-byte string; every 2-byte string; itertools.product(edges, repeat=3)
 * and repeat=4 (first byte varying slowest). */
static void test_all_one_and_two_byte_inputs_match_python(void **state) {
        (void)state;
        Digest d1 = {UINT64_C(0xcbf29ce484222325), 0}, d2 = {UINT64_C(0xcbf29ce484222325), 0};
        unsigned char in[2];

        for (int a = 0; a < 256; a++) {
                in[0] = (unsigned char)a;
                digest_add(&d1, in, 1);
        }
        for (int a = 0; a < 256; a++)
                for (int b = 0; b < 256; b++) {
                        in[0] = (unsigned char)a;
                        in[1] = (unsigned char)b;
                        digest_add(&d2, in, 2);
                }
        assert_int_equal(d1.total, 512);
        assert_int_equal(d1.hash, UINT64_C(0x21e45c5f9c1e4e25));
        assert_int_equal(d2.total, 250816);
        assert_int_equal(d2.hash, UINT64_C(0xe7abc117fcf74de5));
}

static void test_edge_byte_triples_and_quads_match_python(void **state) {
        (void)state;
        Digest d3 = {UINT64_C(0xcbf29ce484222325), 0}, d4 = {UINT64_C(0xcbf29ce484222325), 0};
        unsigned char in[4];

        for (size_t a = 0; a < NEDGES; a++)
                for (size_t b = 0; b < NEDGES; b++)
                        for (size_t c = 0; c < NEDGES; c++) {
                                in[0] = edges[a];
                                in[1] = edges[b];
                                in[2] = edges[c];
                                digest_add(&d3, in, 3);
                                for (size_t e = 0; e < NEDGES; e++) {
                                        in[3] = edges[e];
                                        digest_add(&d4, in, 4);
                                }
                        }
        assert_int_equal(d3.total, 118911);
        assert_int_equal(d3.hash, UINT64_C(0xe22490b117332aa4));
        assert_int_equal(d4.total, 3908004);
        assert_int_equal(d4.hash, UINT64_C(0xa76a8a105560cbe2));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_table),
                cmocka_unit_test(test_valid_input_is_copied),
                cmocka_unit_test(test_every_ascii_byte_including_nul),
                cmocka_unit_test(test_worst_case_growth),
                cmocka_unit_test(test_all_one_and_two_byte_inputs_match_python),
                cmocka_unit_test(test_edge_byte_triples_and_quads_match_python),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
