/* Fuzz target: the frames a sandbox sends the server on its socket (src/frame.c), through the
 * phases the pool drives a sandbox through (sealing, then running), and the answer built from
 * what they left. The input is a sequence of messages, each a 2-byte little-endian length and
 * that many bytes (a short last one takes what is left); one datagram per message, as the
 * SEQPACKET socket delivers them. The report, once ended, goes through the one parse the server
 * does (report.c, from api_build_answer); `make fuzz` runs this under -rss_limit_mb, so a shape
 * that costs the parser far more than its size is caught as a crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "config.h"
#include "frame.h"
#include "pool.h"
#include "report.h"
#include "seal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static Config c;
        static int init;
        if (!init) {
                config_init(&c);
                c.max_output_bytes = 4096; /* small, so the cap is reached often */
                init = 1;
        }
        RunResult r = {.timeout_ms = 1000};
        buf_init(&r.out, c.max_output_bytes);
        buf_init(&r.err, c.max_output_bytes);
        buf_init(&r.merged, c.max_output_bytes);
        buf_init(&r.report, report_cap(&c)); /* the pool's cap: the parser sees all of it */

        FrameImage img = {0};
        buf_init(&img.data, SIZE_MAX); /* as the pool does: frame_add_image bounds it */
        FramePhase ph = FRAME_PHASE_SEALING;
        bool ended = false, ran = false;
        size_t i = 0;
        while (i < size && !ended) {
                size_t n = data[i];
                if (i + 1 < size)
                        n |= (size_t)data[i + 1] << 8;
                i += 2;
                if (i > size)
                        break;
                if (n > size - i)
                        n = size - i;
                /* A private copy, so reading past the message is caught. */
                char *m = malloc(n ? n : 1);
                memcpy(m, data + i, n);
                i += n;

                Frame f;
                frame_parse(ph, m, n, &f);
                switch (f.verdict) {
                case FRAME_IGNORE:
                        break;
                case FRAME_IS_READY:
                        ph = FRAME_PHASE_RUNNING; /* the pool hands it a request at once */
                        ran = true;
                        break;
                case FRAME_IS_FAIL: {
                        char why[512];
                        snprintf(why, sizeof why, "%s: %s. %s", seal_step_name(f.failure.step),
                                strerror(f.failure.error), seal_step_hint(f.failure.step, f.failure.error));
                        break;
                }
                case FRAME_IS_OUTPUT:
                        if (frame_add_output(&r, c.max_output_bytes, f.stream, f.data, f.len) < f.len)
                                ended = true; /* killed at the output cap */
                        break;
                case FRAME_IS_REPORT:
                        frame_add_report(&r, f.data, f.len);
                        break;
                case FRAME_IS_REPORT_END:
                        /* answered at once, as the pool does; it must say no more */
                        r.report_done = true;
                        r.exit_code = f.exit_code;
                        ph = FRAME_PHASE_QUIET;
                        break;
                case FRAME_IS_REPORT_BAD_END:
                        /* not believed; the program runs on, its output still counts */
                        r.report_done = true;
                        r.report_end_bad = true;
                        ph = FRAME_PHASE_REPORTED;
                        break;
                case FRAME_IS_RUNNER_KILLED:
                        /* the init exits right after it: the run ends killed by that signal */
                        r.signal = f.signal;
                        r.exit_code = -1;
                        ended = true;
                        break;
                case FRAME_IS_HOSTILE:
                        ended = true;
                        break;
                case FRAME_IS_IMAGE:
                case FRAME_IS_IMAGE_MORE:
                        /* small limits, so that both are reached often */
                        if (frame_add_image(&img, &f, 3, 64) == FRAME_IMAGE_COMPLETE) {
                                if (img.data.len != img.size || img.size > 64)
                                        abort();
                                frame_image_reset(&img);
                        }
                        break;
                }
                free(m);
        }
        if (ran) {
                char *body = NULL;
                size_t len;
                r.outcome = r.truncated ? RUN_OUTPUT_LIMIT : RUN_EXITED;
                r.want_files = size % 2;
                api_build_answer(&r, &c, &body, &len);
                free(body);
        }
        run_result_free(&r);
        buf_free(&img.data);
        return 0;
}
