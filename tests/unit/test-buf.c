/* Unit tests of src/util/buf.c: the cap is a hard limit on what is kept, what is refused is
 * counted, the data stays NUL-terminated past len, a zero cap keeps nothing, growth over many
 * appends keeps every byte in order, and buf_free returns the buffer to its zero state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/buf.h"

/* Each test's buffer lives in the fixture, so the teardown frees it even after a failed
 * assertion; a failing test then reports its failure, not a leak. */
static int setup(void **state) {
        Buf *b = calloc(1, sizeof *b);
        *state = b;
        return b ? 0 : -1;
}

static int teardown(void **state) {
        buf_free(*state);
        free(*state);
        return 0;
}

static void test_init(void **state) {
        Buf *b = *state;
        memset(b, 0x5a, sizeof *b);
        buf_init(b, 123);

        assert_null(b->data);
        assert_int_equal(b->len, 0);
        assert_int_equal(b->alloc, 0);
        assert_int_equal(b->cap, 123);
        assert_int_equal(b->dropped, 0);
}

static void test_append_under_cap(void **state) {
        Buf *b = *state;
        buf_init(b, 100);

        assert_int_equal(buf_append(b, "hello", 5), 0);
        assert_int_equal(buf_append(b, ", ", 2), 0);
        assert_int_equal(buf_append(b, "world", 5), 0);
        assert_non_null(b->data);
        assert_int_equal(b->len, 12);
        assert_true(b->alloc >= b->len + 1);
        assert_string_equal(b->data, "hello, world"); /* NUL right after len */
        assert_int_equal(b->dropped, 0);
        buf_free(b);
}

static void test_binary_bytes_and_nul(void **state) {
        Buf *b = *state;
        buf_init(b, 100);

        assert_int_equal(buf_append(b, "a\0b\xff", 4), 0);
        assert_int_equal(b->len, 4);
        assert_memory_equal(b->data, "a\0b\xff", 5);
        buf_free(b);
}

static void test_cap_enforced_and_dropped_counted(void **state) {
        Buf *b = *state;
        buf_init(b, 10);

        assert_int_equal(buf_append(b, "abcdef", 6), 0);
        assert_int_equal(buf_append(b, "ghijkl", 6), 0); /* 4 fit, 2 dropped */
        assert_int_equal(b->len, 10);
        assert_int_equal(b->dropped, 2);
        assert_memory_equal(b->data, "abcdefghij", 10);
        assert_int_equal(b->data[10], 0);

        assert_int_equal(buf_append(b, "mnopq", 5), 0); /* full: all dropped */
        assert_int_equal(b->len, 10);
        assert_int_equal(b->dropped, 7);
        assert_string_equal(b->data, "abcdefghij");
        buf_free(b);
}

static void test_exact_fill_drops_nothing(void **state) {
        Buf *b = *state;
        buf_init(b, 5);

        assert_int_equal(buf_append(b, "12345", 5), 0);
        assert_int_equal(b->len, 5);
        assert_int_equal(b->dropped, 0);
        assert_string_equal(b->data, "12345");
        assert_int_equal(buf_append(b, "6", 1), 0);
        assert_int_equal(b->len, 5);
        assert_int_equal(b->dropped, 1);
        buf_free(b);
}

/* A single append much larger than the cap keeps exactly cap bytes. */
static void test_one_big_append_is_cut_at_cap(void **state) {
        Buf *b = *state;
        static char big[100000];
        size_t n = sizeof big;
        for (size_t i = 0; i < n; i++)
                big[i] = (char)('a' + i % 26);
        buf_init(b, 777);

        assert_int_equal(buf_append(b, big, n), 0);
        assert_int_equal(b->len, 777);
        assert_int_equal(b->dropped, n - 777);
        assert_memory_equal(b->data, big, 777);
        assert_int_equal(b->data[777], 0);
        buf_free(b);
}

static void test_zero_cap_keeps_nothing(void **state) {
        Buf *b = *state;
        buf_init(b, 0);

        assert_int_equal(buf_append(b, "abc", 3), 0);
        assert_int_equal(buf_append(b, "defgh", 5), 0);
        assert_int_equal(b->len, 0);
        assert_int_equal(b->dropped, 8);
        assert_true(b->data == NULL || b->data[0] == 0);
        buf_free(b);
}

static void test_empty_append_changes_nothing(void **state) {
        Buf *b = *state;
        buf_init(b, 10);

        assert_int_equal(buf_append(b, "", 0), 0);
        assert_int_equal(b->len, 0);
        assert_int_equal(b->dropped, 0);
        assert_int_equal(buf_append(b, "xy", 2), 0);
        assert_int_equal(buf_append(b, "", 0), 0);
        assert_int_equal(b->len, 2);
        assert_int_equal(b->dropped, 0);
        assert_string_equal(b->data, "xy");
        buf_free(b);
}

/* Many small appends of varying size: every reallocation must keep what came before. */
static void test_growth_across_many_appends(void **state) {
        Buf *b = *state;
        const size_t cap = 1 << 20;
        char chunk[13];
        size_t expect = 0, i = 0;
        buf_init(b, cap);

        while (expect < cap + 1000) {
                size_t n = 1 + i % sizeof chunk;
                for (size_t j = 0; j < n; j++)
                        chunk[j] = (char)((expect + j) % 251);
                assert_int_equal(buf_append(b, chunk, n), 0);
                expect += n;
                i++;
                if (b->len != (expect < cap ? expect : cap))
                        fail_msg("after %zu appends: len %zu, want %zu", i, b->len,
                                expect < cap ? expect : cap);
                assert_true(b->alloc >= b->len + 1);
                assert_int_equal(b->data[b->len], 0);
        }
        assert_int_equal(b->len, cap);
        assert_int_equal(b->dropped, expect - cap);
        for (size_t k = 0; k < cap; k++)
                if ((unsigned char)b->data[k] != k % 251)
                        fail_msg("byte %zu is %u, want %zu", k, (unsigned char)b->data[k], k % 251);
        buf_free(b);
}

static void test_free_resets(void **state) {
        Buf *b = *state;
        buf_init(b, 50);
        assert_int_equal(buf_append(b, "some text that is more than fifty bytes long, surely it is", 58), 0);
        assert_int_equal(b->dropped, 8);

        buf_free(b);
        assert_null(b->data);
        assert_int_equal(b->len, 0);
        assert_int_equal(b->alloc, 0);
        assert_int_equal(b->cap, 0);
        assert_int_equal(b->dropped, 0);

        buf_free(b); /* a freed buffer may be freed again */
        assert_null(b->data);

        /* and reused after buf_init */
        buf_init(b, 4);
        assert_int_equal(buf_append(b, "reuse", 5), 0);
        assert_string_equal(b->data, "reus");
        assert_int_equal(b->dropped, 1);
        buf_free(b);
}

static void test_free_of_unused_buffer(void **state) {
        Buf *b = *state;
        buf_init(b, 10);
        buf_free(b);
        assert_null(b->data);
        assert_int_equal(b->cap, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_init, setup, teardown),
                cmocka_unit_test_setup_teardown(test_append_under_cap, setup, teardown),
                cmocka_unit_test_setup_teardown(test_binary_bytes_and_nul, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cap_enforced_and_dropped_counted, setup, teardown),
                cmocka_unit_test_setup_teardown(test_exact_fill_drops_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_one_big_append_is_cut_at_cap, setup, teardown),
                cmocka_unit_test_setup_teardown(test_zero_cap_keeps_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_empty_append_changes_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_growth_across_many_appends, setup, teardown),
                cmocka_unit_test_setup_teardown(test_free_resets, setup, teardown),
                cmocka_unit_test_setup_teardown(test_free_of_unused_buffer, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
