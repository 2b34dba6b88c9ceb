/* pool-sched: the pool's decisions (which zygote, which queue, how many sandboxes, what has
 * waited too long, how long a crash-looping zygote pauses), from counts alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pool-sched.h"

/* Both zygotes configured and up, nothing made, nothing queued. */
static void kinds_up(SchedKind k[_POOL_KINDS]) {
        k[POOL_FULL] = (SchedKind){.enabled = true, .up = true, .pool_size = 4};
        k[POOL_LEAN] = (SchedKind){.enabled = true, .up = true, .pool_size = 2};
}

static void test_choose_kind_follows_the_code(void **state) {
        SchedKind k[_POOL_KINDS];
        (void)state;
        kinds_up(k);
        assert_int_equal(sched_choose_kind(k, POOL_FULL), POOL_FULL);
        assert_int_equal(sched_choose_kind(k, POOL_LEAN), POOL_LEAN);
}

static void test_choose_kind_lean_disabled(void **state) {
        SchedKind k[_POOL_KINDS];
        (void)state;
        kinds_up(k);
        k[POOL_LEAN].enabled = false;
        assert_int_equal(sched_choose_kind(k, POOL_LEAN), POOL_FULL);
        /* Even with the full zygote down and nothing ready: the request waits for it. */
        k[POOL_FULL].up = false;
        assert_int_equal(sched_choose_kind(k, POOL_FULL), POOL_FULL);
        assert_int_equal(sched_choose_kind(k, POOL_LEAN), POOL_FULL);
}

static void test_choose_kind_full_zygote_down(void **state) {
        SchedKind k[_POOL_KINDS];
        (void)state;
        kinds_up(k);
        k[POOL_FULL].up = false;
        /* Its sandboxes still ready serve first. */
        k[POOL_FULL].ready = 2;
        assert_int_equal(sched_choose_kind(k, POOL_FULL), POOL_FULL);
        /* None left: the lean one serves while the full one re-imports... */
        k[POOL_FULL].ready = 0;
        assert_int_equal(sched_choose_kind(k, POOL_FULL), POOL_LEAN);
        /* ...unless it is down too: then the request waits for the full one. */
        k[POOL_LEAN].up = false;
        assert_int_equal(sched_choose_kind(k, POOL_FULL), POOL_FULL);
        /* A request for the lean one waits for the lean one. */
        assert_int_equal(sched_choose_kind(k, POOL_LEAN), POOL_LEAN);
}

static void test_next_queue_oldest_head_with_a_ready_sandbox(void **state) {
        SchedKind k[_POOL_KINDS];
        (void)state;
        kinds_up(k);
        assert_int_equal(sched_next_queue(k, 0, 8), -1); /* nothing queued */
        k[POOL_FULL].queued = 1;
        k[POOL_FULL].oldest_ms = 200;
        k[POOL_LEAN].queued = 3;
        k[POOL_LEAN].oldest_ms = 100;
        assert_int_equal(sched_next_queue(k, 0, 8), -1); /* nothing ready */
        k[POOL_FULL].ready = 1;
        assert_int_equal(sched_next_queue(k, 0, 8), POOL_FULL);
        k[POOL_LEAN].ready = 1;
        assert_int_equal(sched_next_queue(k, 0, 8), POOL_LEAN); /* older */
        k[POOL_FULL].oldest_ms = 50;
        assert_int_equal(sched_next_queue(k, 0, 8), POOL_FULL);
        /* No slot free: nobody starts. */
        assert_int_equal(sched_next_queue(k, 8, 8), -1);
        assert_int_equal(sched_next_queue(k, 9, 8), -1);
}

static void test_want_pool_plus_startable_waiters(void **state) {
        SchedKind k = {.enabled = true, .up = true, .pool_size = 4};
        (void)state;
        assert_int_equal(sched_want(&k, true, 0, 8), 4);
        k.queued = 3;
        assert_int_equal(sched_want(&k, true, 0, 8), 7);
        /* Only as many waiters as free slots could start. */
        assert_int_equal(sched_want(&k, true, 6, 8), 6);
        assert_int_equal(sched_want(&k, true, 8, 8), 4);
        assert_int_equal(sched_want(&k, true, 10, 8), 4);
        /* A pool of 0 still makes one until start-up is proven. */
        k = (SchedKind){.enabled = true, .up = true, .pool_size = 0};
        assert_int_equal(sched_want(&k, false, 0, 8), 1);
        assert_int_equal(sched_want(&k, true, 0, 8), 0);
}

static void test_spawn_count_refills(void **state) {
        SchedKind k = {.enabled = true, .up = true, .pool_size = 8};
        (void)state;
        /* At most 4 in flight at once. */
        assert_int_equal(sched_spawn_count(&k, 8, 0), 4);
        k.spawning = 3;
        assert_int_equal(sched_spawn_count(&k, 8, 0), 1);
        k.spawning = 4;
        assert_int_equal(sched_spawn_count(&k, 8, 0), 0);
        /* Made, sealing and ready count as had. */
        k = (SchedKind){.enabled = true, .up = true, .spawning = 1, .sealing = 2, .ready = 4};
        assert_int_equal(sched_spawn_count(&k, 8, 0), 1);
        assert_int_equal(sched_spawn_count(&k, 7, 0), 0);
        assert_int_equal(sched_spawn_count(&k, 3, 0), 0);
        /* Those of a replaced zygote do not. */
        k.stale = 3;
        assert_int_equal(sched_spawn_count(&k, 7, 0), 3);
        k.stale = 100; /* more than made: never wraps */
        assert_int_equal(sched_spawn_count(&k, 7, 0), 3);
}

static void test_spawn_count_after_sealing_failures(void **state) {
        SchedKind k = {.enabled = true, .up = true};
        (void)state;
        assert_int_equal(sched_spawn_count(&k, 8, SCHED_SEAL_FAILURES_FATAL - 1), 4);
        assert_int_equal(sched_spawn_count(&k, 8, SCHED_SEAL_FAILURES_FATAL), 1);
        k.spawning = 1;
        assert_int_equal(sched_spawn_count(&k, 8, SCHED_SEAL_FAILURES_FATAL), 0);
}

static void test_spawn_count_zygote_down_or_disabled(void **state) {
        SchedKind k = {.enabled = true, .up = false};
        (void)state;
        assert_int_equal(sched_spawn_count(&k, 8, 0), 0);
        k = (SchedKind){.enabled = false, .up = true};
        assert_int_equal(sched_spawn_count(&k, 8, 0), 0);
}

static void test_expired(void **state) {
        (void)state;
        assert_false(sched_expired(1000, 500, 600));
        assert_true(sched_expired(1100, 500, 600));
        assert_true(sched_expired(1200, 500, 600));
        /* A start in the future (a clock read after now) has not waited at all. */
        assert_false(sched_expired(100, 500, 0));
        assert_true(sched_expired(500, 500, 0));
}

static void test_restart_backoff(void **state) {
        (void)state;
        /* Died long after starting: restart at once, and the pause starts over. */
        assert_int_equal(sched_restart_backoff(100000, 100000 - SCHED_CRASH_WINDOW_MS, 4000), 0);
        /* A crash loop: 250, 500, 1000, ... up to the maximum. */
        uint64_t b = 0;
        uint64_t seen[8];
        for (int i = 0; i < 8; i++)
                seen[i] = b = sched_restart_backoff(10000, 9000, b);
        assert_int_equal(seen[0], SCHED_BACKOFF_MIN_MS);
        assert_int_equal(seen[1], 2 * SCHED_BACKOFF_MIN_MS);
        assert_int_equal(seen[2], 4 * SCHED_BACKOFF_MIN_MS);
        assert_int_equal(seen[7], SCHED_BACKOFF_MAX_MS);
        assert_int_equal(sched_restart_backoff(5, 10, 1000), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_choose_kind_follows_the_code),
                cmocka_unit_test(test_choose_kind_lean_disabled),
                cmocka_unit_test(test_choose_kind_full_zygote_down),
                cmocka_unit_test(test_next_queue_oldest_head_with_a_ready_sandbox),
                cmocka_unit_test(test_want_pool_plus_startable_waiters),
                cmocka_unit_test(test_spawn_count_refills),
                cmocka_unit_test(test_spawn_count_after_sealing_failures),
                cmocka_unit_test(test_spawn_count_zygote_down_or_disabled),
                cmocka_unit_test(test_expired),
                cmocka_unit_test(test_restart_backoff),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
