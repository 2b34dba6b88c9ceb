/* Fuzz target: what a sandbox sends back (its report and its output bytes), through answer
 * assembly. The sandbox side is user code, so these bytes are as untrusted as a request. The
 * input is split at the first NUL: report before, program output after. The report goes through
 * the scan and the schema check of report.c; `make fuzz` runs this under -rss_limit_mb. Each
 * fourth input is taken with small caps, so the limits are reached by short inputs. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "config.h"
#include "pool.h"
#include "report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static Config big, small;
        static int init;
        RunResult r = {0};
        char *body = NULL;
        size_t len;
        if (!init) {
                config_init(&big);
                config_init(&small);
                small.max_images = 2;
                small.max_image_bytes = 1024;
                small.max_result_bytes = 1024;
                small.max_return_files = 3;
                small.max_return_file_bytes = 8;
                small.max_return_bytes = 12;
                init = 1;
        }
        const Config *cp = size % 4 == 0 ? &small : &big;
        Config c = *cp;
        const uint8_t *nul = memchr(data, 0, size);
        size_t rep = nul ? (size_t)(nul - data) : size;
        buf_init(&r.report, report_cap(&c));
        buf_init(&r.out, 1 << 20);
        buf_init(&r.err, 1 << 20);
        buf_init(&r.merged, 1 << 20);
        buf_append(&r.report, data, rep);
        r.report_done = true;
        r.report_end_bad = size % 7 == 0;
        if (nul) {
                buf_append(&r.out, nul + 1, size - rep - 1);
                buf_append(&r.merged, nul + 1, size - rep - 1);
        }
        r.exit_code = size % 3;
        r.want_files = size % 2;
        r.outcome = (RunOutcome)(size % 5);
        r.timeout_ms = 1500;
        /* The report's own reader against jansson: what it accepts is JSON, read the same. */
        char why[200];
        json_t *mine = NULL;
        if (report_parse((const char *)data, rep, &c, &mine, why, sizeof why) == 0) {
                json_t *theirs =
                        json_loadb((const char *)data, rep, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
                if (!theirs || !json_equal(mine, theirs))
                        abort();
                json_decref(theirs);
        }
        json_decref(mine);
        api_build_answer(&r, &c, &body, &len);
        free(body);
        run_result_free(&r);
        return 0;
}
