#include "frame.h"

#include <string.h>

#include <jansson.h>

#include "util/macro.h"

void frame_parse(FramePhase ph, const char *m, size_t n, Frame *ret) {
        *ret = (Frame){.verdict = FRAME_IS_HOSTILE};
        if (n == 0) {
                ret->verdict = FRAME_IGNORE;
                return;
        }
        switch (ph) {
        case FRAME_PHASE_SEALING:
                if (m[0] == FRAME_READY && n == 1)
                        ret->verdict = FRAME_IS_READY;
                else if (m[0] == FRAME_FAIL && n == 1 + sizeof(SealFailure)) {
                        ret->verdict = FRAME_IS_FAIL;
                        memcpy(&ret->failure, m + 1, sizeof ret->failure);
                }
                return;
        case FRAME_PHASE_RUNNING:
                /* Unknown frames from a running program are ignored, not punished: user code can
                 * write to the socket, and killing the run would only hide its output. */
                ret->verdict = FRAME_IGNORE;
                if (m[0] == FRAME_STDOUT || m[0] == FRAME_STDERR) {
                        ret->verdict = FRAME_IS_OUTPUT;
                        ret->stream = m[0] == FRAME_STDOUT ? 1 : 2;
                } else if (m[0] == FRAME_RESULT)
                        ret->verdict = FRAME_IS_REPORT;
                else if (m[0] == FRAME_RESULT_END && n == 1)
                        ret->verdict = FRAME_IS_REPORT_END;
                if (ret->verdict == FRAME_IS_OUTPUT || ret->verdict == FRAME_IS_REPORT) {
                        ret->data = m + 1;
                        ret->len = n - 1;
                }
                return;
        case FRAME_PHASE_QUIET:
                /* A waiting sandbox has nothing to say; one that talks is not ours to trust. */
                return;
        }
}

size_t frame_add_output(RunResult *r, size_t max_output, int stream, const char *data, size_t n) {
        size_t used = r->out.len + r->err.len;
        size_t room = max_output > used ? max_output - used : 0;
        size_t take = MIN(n, room);
        if (take > 0) {
                Buf *b = stream == 1 ? &r->out : &r->err;
                size_t before = b->len;
                buf_append(b, data, take);
                take = b->len - before; /* an allocation failure keeps nothing */
                buf_append(&r->merged, data, take);
        }
        if (take < n)
                r->truncated = true;
        return take;
}

void frame_add_report(RunResult *r, const char *data, size_t n) {
        if (!r->report_done)
                buf_append(&r->report, data, n);
}

bool frame_report_exit(const RunResult *r, int *ret_code, uint64_t *ret_maxrss) {
        *ret_maxrss = 0;
        if (!r->report_done || r->report.dropped || !r->report.len)
                return false;
        json_t *j = json_loadb(r->report.data, r->report.len, JSON_ALLOW_NUL, NULL);
        json_t *e = j ? json_object_get(j, "exit_code") : NULL;
        bool ok = json_is_integer(e) && json_integer_value(e) >= 0 && json_integer_value(e) <= 255;
        if (ok)
                *ret_code = (int)json_integer_value(e);
        json_t *m = j ? json_object_get(j, "maxrss_kb") : NULL;
        /* Checked against overflow: the value is the program's to choose. */
        if (json_is_integer(m) && json_integer_value(m) > 0 &&
                json_integer_value(m) < (json_int_t)(UINT64_MAX / 1024))
                *ret_maxrss = (uint64_t)json_integer_value(m) * 1024;
        json_decref(j);
        return ok;
}
