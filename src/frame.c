/* The frames between the server and a sandbox, judged and built without I/O: what each frame a
 * sandbox sends means in its phase (frame_parse), what it adds to the run's result within the
 * caps, and the header of the request the server sends (frame_request_header). Fuzzed by
 * fuzz/fuzz-frames.c; the contract is in frame.h. */
#include "frame.h"

#include <string.h>

#include "util/macro.h"

static uint64_t le(const char *p, size_t n) {
        uint64_t v = 0;
        for (size_t i = n; i-- > 0;)
                v = v << 8 | (uint8_t)p[i];
        return v;
}

/* A 'Z' frame: exactly FRAME_END_SIZE bytes, an exit code the runner can have (it masks with
 * 0xFF), a peak RSS that fits in bytes. Anything else ends the report too, unbelieved: it is
 * the program's forgery, and the exit status then comes from the kernel. */
static void parse_end(const char *m, size_t n, Frame *ret) {
        ret->verdict = FRAME_IS_REPORT_BAD_END;
        if (n != FRAME_END_SIZE)
                return;
        int32_t code = (int32_t)(uint32_t)le(m + 1, 4);
        uint64_t rss = le(m + 5, 8);
        if (code < 0 || code > 255)
                return;
        ret->verdict = FRAME_IS_REPORT_END;
        ret->exit_code = code;
        ret->maxrss_bytes = rss;
}

/* A 'K' frame: exactly FRAME_KILLED_SIZE bytes naming a signal that exists. The program can
 * forge one as well as the init can send it; the server believes it only when the init's exit
 * status agrees (pool.c), so a forgery can at most relabel the run's own exit status 128+n. */
static void parse_killed(const char *m, size_t n, Frame *ret) {
        if (n != FRAME_KILLED_SIZE)
                return;
        int32_t sig = (int32_t)(uint32_t)le(m + 1, 4);
        if (sig < 1 || sig > 64)
                return;
        ret->verdict = FRAME_IS_RUNNER_KILLED;
        ret->signal = sig;
}

/* An 'I' frame: its header whole, a format the runner renders, and data no longer than the
 * size it announces. Anything else is ignored, as an unknown frame is. */
static void parse_image(const char *m, size_t n, Frame *ret) {
        if (n < FRAME_IMAGE_HEADER || (m[1] != 'p' && m[1] != 's'))
                return;
        uint32_t size = (uint32_t)le(m + 10, 4);
        if (size == 0 || n - FRAME_IMAGE_HEADER > size)
                return;
        ret->verdict = FRAME_IS_IMAGE;
        ret->image_format = m[1];
        ret->image_width = (uint32_t)le(m + 2, 4);
        ret->image_height = (uint32_t)le(m + 6, 4);
        ret->image_size = size;
        ret->data = m + FRAME_IMAGE_HEADER;
        ret->len = n - FRAME_IMAGE_HEADER;
}

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
                } else if (m[0] == FRAME_REPORT)
                        ret->verdict = FRAME_IS_REPORT;
                else if (m[0] == FRAME_REPORT_END)
                        parse_end(m, n, ret);
                else if (m[0] == FRAME_RUNNER_KILLED)
                        parse_killed(m, n, ret);
                else if (m[0] == FRAME_IMAGE)
                        parse_image(m, n, ret);
                else if (m[0] == FRAME_IMAGE_MORE)
                        ret->verdict = FRAME_IS_IMAGE_MORE;
                if (ret->verdict == FRAME_IS_OUTPUT || ret->verdict == FRAME_IS_REPORT ||
                        ret->verdict == FRAME_IS_IMAGE_MORE) {
                        ret->data = m + 1;
                        ret->len = n - 1;
                }
                return;
        case FRAME_PHASE_REPORTED:
                /* The verdict on the report is taken: more of it is not read (each piece would
                 * cost us and say nothing), but the program may still be running and writing,
                 * so its output is kept and nothing else is punished. */
                ret->verdict = FRAME_IGNORE;
                if (m[0] == FRAME_STDOUT || m[0] == FRAME_STDERR) {
                        ret->verdict = FRAME_IS_OUTPUT;
                        ret->stream = m[0] == FRAME_STDOUT ? 1 : 2;
                        ret->data = m + 1;
                        ret->len = n - 1;
                }
                return;
        case FRAME_PHASE_IDLE:
                ret->verdict = FRAME_IGNORE;
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

void frame_image_reset(FrameImage *img) {
        img->data.len = 0;
        img->size = 0;
}

FrameImageStep frame_add_image(FrameImage *img, const Frame *f, unsigned max_images, size_t max_bytes) {
        if (f->verdict == FRAME_IS_IMAGE) {
                frame_image_reset(img);
                if (img->count >= max_images || f->image_size > max_bytes)
                        return FRAME_IMAGE_DROPPED;
                img->count++;
                img->size = f->image_size;
                img->format = f->image_format;
                img->width = f->image_width;
                img->height = f->image_height;
        } else if (f->verdict != FRAME_IS_IMAGE_MORE || img->size == 0)
                return FRAME_IMAGE_DROPPED;
        if (f->len > img->size - img->data.len || buf_append(&img->data, f->data, f->len) < 0) {
                frame_image_reset(img); /* more than announced, or no memory */
                return FRAME_IMAGE_DROPPED;
        }
        return img->data.len == img->size ? FRAME_IMAGE_COMPLETE : FRAME_IMAGE_PARTIAL;
}

void frame_add_report(RunResult *r, const char *data, size_t n) {
        if (!r->report_done)
                buf_append(&r->report, data, n);
}

size_t frame_request_header(char hdr[FRAME_REQUEST_HEADER], uint64_t total) {
        hdr[0] = FRAME_REQUEST;
        for (int i = 0; i < 8; i++)
                hdr[1 + i] = (char)(total >> (8 * i));
        return FRAME_REQUEST_HEADER;
}
