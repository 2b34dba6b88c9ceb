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
        /* Anything else from a running program (which can write to the socket) is ignored. */
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

/* A session between cells: its background work may write anything; all of it is dropped,
 * nothing of it is hostile (the session must not be killed for it). */
static void test_idle(void **state) {
        (void)state;
        char z[FRAME_END_SIZE] = {FRAME_REPORT_END};
        assert_int_equal(verdict(FRAME_PHASE_IDLE, z, sizeof z), FRAME_IGNORE);
        assert_int_equal(verdict(FRAME_PHASE_IDLE, "Ohi", 3), FRAME_IGNORE);
        assert_int_equal(verdict(FRAME_PHASE_IDLE, "R{}", 3), FRAME_IGNORE);
        assert_int_equal(verdict(FRAME_PHASE_IDLE, "Y", 1), FRAME_IGNORE);
        assert_int_equal(verdict(FRAME_PHASE_IDLE, "\x01junk", 5), FRAME_IGNORE);
        assert_int_equal(verdict(FRAME_PHASE_IDLE, "", 0), FRAME_IGNORE);
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

/* 'Z' + int32 exit code + uint64 peak RSS, little-endian. */
static size_t end_frame(char *m, uint32_t code, uint64_t rss) {
        m[0] = FRAME_REPORT_END;
        for (int i = 0; i < 4; i++)
                m[1 + i] = (char)(code >> (8 * i));
        for (int i = 0; i < 8; i++)
                m[5 + i] = (char)(rss >> (8 * i));
        return FRAME_END_SIZE;
}

static void test_end_frame(void **state) {
        char m[FRAME_END_SIZE + 1];
        Frame f;
        (void)state;
        size_t n = end_frame(m, 3, UINT64_C(0x0102030405060708));
        frame_parse(FRAME_PHASE_RUNNING, m, n, &f);
        assert_int_equal(f.verdict, FRAME_IS_REPORT_END);
        assert_int_equal(f.exit_code, 3);
        assert_true(f.maxrss_bytes == UINT64_C(0x0102030405060708));
        frame_parse(FRAME_PHASE_RUNNING, m, end_frame(m, 255, 0), &f);
        assert_int_equal(f.verdict, FRAME_IS_REPORT_END);
        assert_int_equal(f.exit_code, 255);
        /* An exit code the runner cannot send, or a size other than exactly FRAME_END_SIZE:
         * the report ends, unbelieved. */
        static const uint32_t bad_codes[] = {256, 0xffffffffu, 0x80000000u, 1000};
        for (size_t i = 0; i < sizeof bad_codes / sizeof *bad_codes; i++) {
                frame_parse(FRAME_PHASE_RUNNING, m, end_frame(m, bad_codes[i], 0), &f);
                assert_int_equal(f.verdict, FRAME_IS_REPORT_BAD_END);
        }
        end_frame(m, 0, 0);
        for (size_t k = 1; k <= sizeof m; k++)
                if (k != FRAME_END_SIZE)
                        assert_int_equal(verdict(FRAME_PHASE_RUNNING, m, k), FRAME_IS_REPORT_BAD_END);
}

/* The init's 'K': a signal that exists, in exactly FRAME_KILLED_SIZE bytes, while running;
 * anything else is ignored (a running program can write it) or, sealing, hostile. */
static void test_killed_frame(void **state) {
        char m[FRAME_KILLED_SIZE + 1] = {FRAME_RUNNER_KILLED, 6, 0, 0, 0, 0};
        Frame f;
        (void)state;
        frame_parse(FRAME_PHASE_RUNNING, m, FRAME_KILLED_SIZE, &f);
        assert_int_equal(f.verdict, FRAME_IS_RUNNER_KILLED);
        assert_int_equal(f.signal, 6);
        assert_int_equal(verdict(FRAME_PHASE_RUNNING, m, FRAME_KILLED_SIZE - 1), FRAME_IGNORE);
        assert_int_equal(verdict(FRAME_PHASE_RUNNING, m, FRAME_KILLED_SIZE + 1), FRAME_IGNORE);
        static const uint8_t bad[][4] = {
                {0, 0, 0, 0}, {65, 0, 0, 0}, {0xff, 0xff, 0xff, 0xff}, {6, 0, 0, 1}};
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
                memcpy(m + 1, bad[i], 4);
                assert_int_equal(verdict(FRAME_PHASE_RUNNING, m, FRAME_KILLED_SIZE), FRAME_IGNORE);
        }
        m[1] = 9;
        memset(m + 2, 0, 3);
        assert_int_equal(verdict(FRAME_PHASE_RUNNING, m, FRAME_KILLED_SIZE), FRAME_IS_RUNNER_KILLED);
        assert_int_equal(verdict(FRAME_PHASE_REPORTED, m, FRAME_KILLED_SIZE), FRAME_IGNORE);
        assert_int_equal(verdict(FRAME_PHASE_SEALING, m, FRAME_KILLED_SIZE), FRAME_IS_HOSTILE);
        assert_int_equal(verdict(FRAME_PHASE_QUIET, m, FRAME_KILLED_SIZE), FRAME_IS_HOSTILE);
}

/* The request header the runner's _read_request decodes: 'Q' + uint64 length, little-endian. */
static void test_request_header(void **state) {
        char hdr[FRAME_REQUEST_HEADER];
        (void)state;
        assert_int_equal(frame_request_header(hdr, UINT64_C(0x0102030405060708)), FRAME_REQUEST_HEADER);
        static const char want[] = {FRAME_REQUEST, 8, 7, 6, 5, 4, 3, 2, 1};
        assert_memory_equal(hdr, want, sizeof want);
}

/* After 'Z' the verdict is taken: no more report, and no second end, but output still counts
 * (the program may run on after a forged end). */
static void test_reported(void **state) {
        char m[FRAME_END_SIZE];
        Frame f;
        (void)state;
        assert_int_equal(verdict(FRAME_PHASE_REPORTED, "R{}", 3), FRAME_IGNORE);
        assert_int_equal(verdict(FRAME_PHASE_REPORTED, m, end_frame(m, 0, 0)), FRAME_IGNORE);
        assert_int_equal(verdict(FRAME_PHASE_REPORTED, "Z", 1), FRAME_IGNORE);
        assert_int_equal(verdict(FRAME_PHASE_REPORTED, "Y", 1), FRAME_IGNORE);
        assert_int_equal(verdict(FRAME_PHASE_REPORTED, "", 0), FRAME_IGNORE);
        frame_parse(FRAME_PHASE_REPORTED, "Ohi", 3, &f);
        assert_int_equal(f.verdict, FRAME_IS_OUTPUT);
        assert_int_equal(f.stream, 1);
        assert_int_equal(f.len, 2);
        /* and before 'Z', report pieces are taken */
        assert_int_equal(verdict(FRAME_PHASE_RUNNING, "R{}", 3), FRAME_IS_REPORT);
}

/* 'I' + format + width + height + size (little-endian) + data. */
static size_t image_frame(
        char *m, char fmt, uint32_t w, uint32_t h, uint32_t size, const char *data, size_t n) {
        m[0] = FRAME_IMAGE;
        m[1] = fmt;
        for (int i = 0; i < 4; i++) {
                m[2 + i] = (char)(w >> (8 * i));
                m[6 + i] = (char)(h >> (8 * i));
                m[10 + i] = (char)(size >> (8 * i));
        }
        memcpy(m + FRAME_IMAGE_HEADER, data, n);
        return FRAME_IMAGE_HEADER + n;
}

static void test_image_frames(void **state) {
        (void)state;
        char m[64];
        Frame f;
        FrameImage img = {0};
        buf_init(&img.data, SIZE_MAX);

        /* A figure in two frames. */
        frame_parse(FRAME_PHASE_RUNNING, m, image_frame(m, 'p', 640, 480, 6, "abc", 3), &f);
        assert_int_equal(f.verdict, FRAME_IS_IMAGE);
        assert_int_equal(f.image_width, 640);
        assert_int_equal(f.image_height, 480);
        assert_int_equal(frame_add_image(&img, &f, 2, 100), FRAME_IMAGE_PARTIAL);
        frame_parse(FRAME_PHASE_RUNNING, "Jdef", 4, &f);
        assert_int_equal(f.verdict, FRAME_IS_IMAGE_MORE);
        assert_int_equal(frame_add_image(&img, &f, 2, 100), FRAME_IMAGE_COMPLETE);
        assert_memory_equal(img.data.data, "abcdef", 6);
        assert_int_equal(img.format, 'p');
        frame_image_reset(&img);

        /* More than announced, a 'J' with no figure begun: dropped. */
        frame_parse(FRAME_PHASE_RUNNING, m, image_frame(m, 's', 1, 1, 4, "ab", 2), &f);
        assert_int_equal(frame_add_image(&img, &f, 2, 100), FRAME_IMAGE_PARTIAL);
        frame_parse(FRAME_PHASE_RUNNING, "Jxyz", 4, &f);
        assert_int_equal(frame_add_image(&img, &f, 2, 100), FRAME_IMAGE_DROPPED);
        assert_int_equal(frame_add_image(&img, &f, 2, 100), FRAME_IMAGE_DROPPED);

        /* Over the limits: the count (two begun above), then the size. */
        frame_parse(FRAME_PHASE_RUNNING, m, image_frame(m, 'p', 1, 1, 1, "a", 1), &f);
        assert_int_equal(frame_add_image(&img, &f, 2, 100), FRAME_IMAGE_DROPPED);
        img.count = 0;
        frame_parse(FRAME_PHASE_RUNNING, m, image_frame(m, 'p', 1, 1, 101, "a", 1), &f);
        assert_int_equal(frame_add_image(&img, &f, 2, 100), FRAME_IMAGE_DROPPED);
        assert_int_equal(frame_add_image(&img, &f, 2, 101), FRAME_IMAGE_PARTIAL);

        /* Malformed 'I' frames are ignored like unknown ones; outside a run, hostile. */
        assert_int_equal(
                verdict(FRAME_PHASE_RUNNING, m, image_frame(m, 'x', 1, 1, 1, "a", 1)), FRAME_IGNORE);
        assert_int_equal(verdict(FRAME_PHASE_RUNNING, m, image_frame(m, 'p', 1, 1, 0, "", 0)), FRAME_IGNORE);
        assert_int_equal(
                verdict(FRAME_PHASE_RUNNING, m, image_frame(m, 'p', 1, 1, 1, "ab", 2)), FRAME_IGNORE);
        assert_int_equal(verdict(FRAME_PHASE_RUNNING, m, FRAME_IMAGE_HEADER - 1), FRAME_IGNORE);
        assert_int_equal(
                verdict(FRAME_PHASE_REPORTED, m, image_frame(m, 'p', 1, 1, 1, "a", 1)), FRAME_IGNORE);
        assert_int_equal(
                verdict(FRAME_PHASE_QUIET, m, image_frame(m, 'p', 1, 1, 1, "a", 1)), FRAME_IS_HOSTILE);
        buf_free(&img.data);
}

static void test_report(void **state) {
        RunResult r;
        (void)state;
        result_init(&r);
        frame_add_report(&r, "{\"error\":", 9);
        frame_add_report(&r, " null}", 6);
        r.report_done = true;
        frame_add_report(&r, "junk", 4); /* after the end: ignored */
        assert_int_equal(r.report.len, 15);
        assert_memory_equal(r.report.data, "{\"error\": null}", 15);
        /* over the report's cap: dropped and counted, so the answer can say so */
        r.report_done = false;
        frame_add_report(&r, "                                ", 32);
        assert_true(r.report.dropped > 0);
        run_result_free(&r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sealing),
                cmocka_unit_test(test_running),
                cmocka_unit_test(test_quiet),
                cmocka_unit_test(test_idle),
                cmocka_unit_test(test_output_cap_counts_both_streams),
                cmocka_unit_test(test_end_frame),
                cmocka_unit_test(test_killed_frame),
                cmocka_unit_test(test_request_header),
                cmocka_unit_test(test_reported),
                cmocka_unit_test(test_report),
                cmocka_unit_test(test_image_frames),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
