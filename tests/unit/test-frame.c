/* frame: what a sandbox's frames mean in each phase, and the caps on what they add. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"

static FrameVerdict verdict(FramePhase ph, const char *m, size_t n) {
        Frame f;
        frame_parse(ph, m, n, &f);
        return f.verdict;
}

static void test_sealing(void **state) {
        (void)state;
        assert_int_equal(verdict(FRAME_PHASE_SEALING, "Y", 1), FRAME_IS_READY);
        assert_int_equal(verdict(FRAME_PHASE_SEALING, "Yx", 2), FRAME_IS_HOSTILE);
        assert_int_equal(verdict(FRAME_PHASE_SEALING, "Ohi", 3), FRAME_IS_HOSTILE);
        assert_int_equal(verdict(FRAME_PHASE_SEALING, "", 0), FRAME_IGNORE);
        char m[1 + sizeof(SealFailure)] = {FRAME_FAIL};
        SealFailure sf = {.step = 4, .error = 13};
        memcpy(m + 1, &sf, sizeof sf);
        Frame f;
        frame_parse(FRAME_PHASE_SEALING, m, sizeof m, &f);
        assert_int_equal(f.verdict, FRAME_IS_FAIL);
        assert_int_equal(f.failure.step, 4);
        assert_int_equal(f.failure.error, 13);
        /* A failure of the wrong size is not believed. */
        assert_int_equal(verdict(FRAME_PHASE_SEALING, m, sizeof m - 1), FRAME_IS_HOSTILE);
}

static void test_running(void **state) {
        Frame f;
        (void)state;
        frame_parse(FRAME_PHASE_RUNNING, "Eoops", 5, &f);
        assert_int_equal(f.verdict, FRAME_IS_OUTPUT);
        assert_int_equal(f.stream, 2);
        assert_int_equal(f.len, 4);
        assert_memory_equal(f.data, "oops", 4);
        frame_parse(FRAME_PHASE_RUNNING, "O", 1, &f);
        assert_int_equal(f.verdict, FRAME_IS_OUTPUT);
        assert_int_equal(f.len, 0);
        assert_int_equal(verdict(FRAME_PHASE_RUNNING, "R{}", 3), FRAME_IS_REPORT);
        assert_int_equal(verdict(FRAME_PHASE_RUNNING, "Z", 1), FRAME_IS_REPORT_END);
        /* Anything else from a running program (which can write to the socket) is ignored. */
        assert_int_equal(verdict(FRAME_PHASE_RUNNING, "Zz", 2), FRAME_IGNORE);
        assert_int_equal(verdict(FRAME_PHASE_RUNNING, "Y", 1), FRAME_IGNORE);
        assert_int_equal(verdict(FRAME_PHASE_RUNNING, "\0", 1), FRAME_IGNORE);
}

static void test_quiet(void **state) {
        (void)state;
        assert_int_equal(verdict(FRAME_PHASE_QUIET, "Y", 1), FRAME_IS_HOSTILE);
        assert_int_equal(verdict(FRAME_PHASE_QUIET, "Ohi", 3), FRAME_IS_HOSTILE);
        assert_int_equal(verdict(FRAME_PHASE_QUIET, "", 0), FRAME_IGNORE);
}

static void result_init(RunResult *r) {
        *r = (RunResult){0};
        buf_init(&r->out, 10);
        buf_init(&r->err, 10);
        buf_init(&r->merged, 10);
        buf_init(&r->report, 32);
}

static void test_output_cap_counts_both_streams(void **state) {
        RunResult r;
        (void)state;
        result_init(&r);
        assert_int_equal(frame_add_output(&r, 10, 1, "abcdef", 6), 6);
        assert_int_equal(frame_add_output(&r, 10, 2, "123456", 6), 4);
        assert_true(r.truncated);
        assert_int_equal(r.out.len, 6);
        assert_int_equal(r.err.len, 4);
        assert_int_equal(r.merged.len, 10);
        assert_memory_equal(r.merged.data, "abcdef1234", 10);
        assert_int_equal(frame_add_output(&r, 10, 1, "x", 1), 0);
        run_result_free(&r);
}

static void test_report(void **state) {
        RunResult r;
        int code = -1;
        uint64_t rss = 7;
        (void)state;
        result_init(&r);
        frame_add_report(&r, "{\"exit_code\":", 13);
        /* Not complete yet. */
        assert_false(frame_report_exit(&r, &code, &rss));
        frame_add_report(&r, " 3, \"maxrss_kb\": 2}", 19);
        r.report_done = true;
        frame_add_report(&r, "junk", 4); /* after the end: ignored */
        assert_true(frame_report_exit(&r, &code, &rss));
        assert_int_equal(code, 3);
        assert_int_equal(rss, 2048);
        run_result_free(&r);

        const char *bad[] = {"{\"exit_code\": 256}", "{\"exit_code\": -1}", "{\"exit_code\": \"0\"}", "[0]",
                "{\"exit_code\": 1.0}", "not json"};
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                result_init(&r);
                frame_add_report(&r, bad[i], strlen(bad[i]));
                r.report_done = true;
                assert_false(frame_report_exit(&r, &code, &rss));
                run_result_free(&r);
        }
        /* Over the report's cap: dropped, so not believed even if the kept part parses. */
        result_init(&r);
        frame_add_report(&r, "{\"exit_code\": 0}", 16);
        frame_add_report(&r, "                                ", 32);
        r.report_done = true;
        assert_false(frame_report_exit(&r, &code, &rss));
        run_result_free(&r);
        /* A huge maxrss is not multiplied into a wrapped value. */
        result_init(&r);
        const char *big = "{\"exit_code\":0,\"maxrss_kb\":9223372036854775807}";
        buf_init(&r.report, 128);
        frame_add_report(&r, big, strlen(big));
        r.report_done = true;
        assert_true(frame_report_exit(&r, &code, &rss));
        assert_int_equal(rss, 0);
        run_result_free(&r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sealing),
                cmocka_unit_test(test_running),
                cmocka_unit_test(test_quiet),
                cmocka_unit_test(test_output_cap_counts_both_streams),
                cmocka_unit_test(test_report),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
