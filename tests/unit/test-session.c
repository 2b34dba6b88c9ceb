/* session: ids (node, boot, random), their classification, tombstones, the eviction choice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "session.h"

static void test_ids(void **state) {
        char boot[SESSION_BOOT_LEN + 1], other[SESSION_BOOT_LEN + 1], a[SESSION_ID_MAX + 1],
                b[SESSION_ID_MAX + 1];
        (void)state;
        assert_int_equal(session_boot_new(boot), 0);
        assert_int_equal(strlen(boot), SESSION_BOOT_LEN);
        assert_int_equal(session_id_new(65535, boot, a, sizeof a), 0);
        assert_int_equal(strlen(a), SESSION_ID_MAX);
        assert_int_equal(session_id_new(0, boot, a, sizeof a), 0);
        assert_int_equal(session_id_new(0, boot, b, sizeof b), 0);
        assert_string_not_equal(a, b);
        /* 0-<8 hex>-<32 hex>: URL-safe, 128 random bits. */
        assert_int_equal(strlen(a), 1 + 1 + SESSION_BOOT_LEN + 1 + SESSION_RANDOM_LEN);
        assert_int_equal(strspn(a, "0123456789abcdef-"), strlen(a));
        assert_int_equal(session_id_classify(a, strlen(a), 0, boot), SESSION_ID_THIS_BOOT);
        assert_int_equal(session_id_classify(a, strlen(a), 1, boot), SESSION_ID_OTHER_NODE);
        memcpy(other, boot, sizeof other);
        other[0] = other[0] == 'a' ? 'b' : 'a';
        assert_int_equal(session_id_classify(a, strlen(a), 0, other), SESSION_ID_OLD_BOOT);
        /* Too short, too long, upper case, a leading zero, node too big, separators. */
        assert_int_equal(session_id_classify(a, strlen(a) - 1, 0, boot), SESSION_ID_MALFORMED);
        char longer[SESSION_ID_MAX + 3];
        snprintf(longer, sizeof longer, "%sa", a);
        assert_int_equal(session_id_classify(longer, strlen(longer), 0, boot), SESSION_ID_MALFORMED);
        char upper[SESSION_ID_MAX + 1];
        memcpy(upper, a, sizeof upper);
        upper[strlen(upper) - 1] = 'A';
        assert_int_equal(session_id_classify(upper, strlen(upper), 0, boot), SESSION_ID_MALFORMED);
        char lead[SESSION_ID_MAX + 3];
        snprintf(lead, sizeof lead, "0%s", a);
        assert_int_equal(session_id_classify(lead, strlen(lead), 0, boot), SESSION_ID_MALFORMED);
        assert_int_equal(session_id_new(65535, boot, b, sizeof b), 0);
        b[4] = '6'; /* 65536 */
        assert_int_equal(session_id_classify(b, strlen(b), 65535, boot), SESSION_ID_MALFORMED);
        assert_int_equal(session_id_classify("", 0, 0, boot), SESSION_ID_MALFORMED);
        assert_int_equal(session_id_classify("0--", 3, 0, boot), SESSION_ID_MALFORMED);
        /* A NUL inside is not a shorter id. */
        char nul[SESSION_ID_MAX + 1];
        memcpy(nul, a, sizeof nul);
        nul[5] = 0;
        assert_int_equal(session_id_classify(nul, strlen(a), 0, boot), SESSION_ID_MALFORMED);
}

static void test_tombstones(void **state) {
        Tombstones t;
        (void)state;
        assert_int_equal(tombstones_init(&t, 3), 0);
        assert_null(tombstones_find(&t, "a", 0));
        tombstones_add(&t, "a", 1, SESSION_END_DELETED, 1000);
        tombstones_add(&t, "b", 2, SESSION_END_IDLE_TIMEOUT, 2000);
        const Tombstone *s = tombstones_find(&t, "a", 5000);
        assert_non_null(s);
        assert_int_equal(s->owner, 1);
        assert_int_equal(s->reason, SESSION_END_DELETED);
        assert_string_equal(session_end_name(tombstones_find(&t, "b", 5000)->reason), "idle_timeout");
        /* An hour later it is forgotten. */
        assert_null(tombstones_find(&t, "a", 1000 + TOMBSTONE_TTL_MS));
        assert_non_null(tombstones_find(&t, "b", 1000 + TOMBSTONE_TTL_MS));
        /* Bounded: the oldest goes first. */
        tombstones_add(&t, "c", 3, SESSION_END_EVICTED, 3000);
        tombstones_add(&t, "d", 4, SESSION_END_MEMORY, 4000);
        assert_null(tombstones_find(&t, "a", 5000));
        assert_non_null(tombstones_find(&t, "b", 5000));
        assert_non_null(tombstones_find(&t, "d", 5000));
        assert_string_equal(session_end_name(SESSION_END_MAX_LIFETIME), "max_lifetime");
        assert_string_equal(session_end_name(SESSION_END_SERVER_RESTARTED), "server_restarted");
        tombstones_free(&t);
        /* MAX_SESSIONS=0: none kept, nothing found. */
        assert_int_equal(tombstones_init(&t, 0), 0);
        tombstones_add(&t, "a", 1, SESSION_END_DELETED, 1);
        assert_null(tombstones_find(&t, "a", 2));
        tombstones_free(&t);
}

static void test_victim(void **state) {
        (void)state;
        uint64_t now = 1000000;
        SessionView v[] = {
                {.idle = true, .last_active_ms = now - 30000}, /* idle, but not a minute */
                {.idle = false, .last_active_ms = now - 500000}, /* busy: never */
                {.idle = true, .last_active_ms = now - 90000},
                {.idle = true, .last_active_ms = now - 120000}, /* the least recently active */
        };
        assert_int_equal(session_pick_victim(v, 4, now, SESSION_EVICT_IDLE_MS), 3);
        assert_int_equal(session_pick_victim(v, 3, now, SESSION_EVICT_IDLE_MS), 2);
        assert_int_equal(session_pick_victim(v, 2, now, SESSION_EVICT_IDLE_MS), -1);
        assert_int_equal(session_pick_victim(v, 0, now, SESSION_EVICT_IDLE_MS), -1);
        /* Exactly a minute counts; a clock before last_active does not underflow. */
        SessionView w[] = {{.idle = true, .last_active_ms = now - SESSION_EVICT_IDLE_MS}};
        assert_int_equal(session_pick_victim(w, 1, now, SESSION_EVICT_IDLE_MS), 0);
        assert_int_equal(session_pick_victim(w, 1, 5, SESSION_EVICT_IDLE_MS), -1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ids),
                cmocka_unit_test(test_tombstones),
                cmocka_unit_test(test_victim),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
