/* Frames a sandbox sends to the server: what each one means in the sandbox's current phase, and
 * what it adds to the run's result. Every byte here comes from a process that user code controls,
 * so nothing is assumed: sizes are checked, unknown frames are named as such, and what a run
 * writes is kept only up to its caps. The event loop (pool.c) acts on the verdicts; this module
 * does no I/O, so it can be fuzzed (fuzz/fuzz-frames.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "run.h"
#include "proto.h"

typedef enum FramePhase {
        FRAME_PHASE_SEALING, /* cloned, sealing itself: may say READY or FAIL, nothing else */
        FRAME_PHASE_RUNNING, /* has its request: output and the report */
        FRAME_PHASE_REPORTED, /* running, its 'Z' came: output only, no more of the report */
        FRAME_PHASE_QUIET, /* ready and waiting, or already answered: must say nothing */
        /* A session between cells: its background threads and processes may still write to the
         * socket (output, or anything else); nothing is believed, nothing punished, all of it
         * is dropped, so that nothing reaches the next cell's answer. */
        FRAME_PHASE_IDLE,
} FramePhase;

typedef enum FrameVerdict {
        FRAME_IGNORE, /* harmless and meaningless (empty, or late report pieces) */
        FRAME_IS_READY,
        FRAME_IS_FAIL, /* Frame.failure holds the sandbox's account of it */
        FRAME_IS_OUTPUT, /* Frame.stream (1 or 2), data, len */
        FRAME_IS_REPORT, /* a piece of the report: data, len */
        FRAME_IS_REPORT_END, /* a well-formed 'Z': Frame.exit_code, maxrss_bytes */
        FRAME_IS_REPORT_BAD_END, /* a 'Z' of the wrong size or exit code: not believed */
        FRAME_IS_RUNNER_KILLED, /* the init's 'K': Frame.signal ended the runner */
        FRAME_IS_HOSTILE, /* not a frame this phase can send: kill the sandbox */
        FRAME_IS_IMAGE, /* an 'I': a figure's format, width, height, size, and its first data */
        FRAME_IS_IMAGE_MORE, /* a 'J': more of the figure: data, len */
} FrameVerdict;

typedef struct Frame {
        FrameVerdict verdict;
        int stream;
        const char *data; /* points into the message */
        size_t len;
        SealFailure failure;
        int exit_code; /* FRAME_IS_REPORT_END: 0..255 */
        uint64_t maxrss_bytes; /* FRAME_IS_REPORT_END: the runner's peak RSS, or 0 */
        int signal; /* FRAME_IS_RUNNER_KILLED: 1..64 */
        char image_format; /* FRAME_IS_IMAGE: 'p' or 's' */
        uint32_t image_width, image_height, image_size; /* FRAME_IS_IMAGE */
} Frame;

/* A figure being received for a live answer ('I' then 'J' frames). Every field comes from the
 * program, which can forge these frames as well as the runner sends them: what it can gain is a
 * figure in its own answer, so the only checks are the run's limits (MAX_IMAGES figures of at
 * most MAX_IMAGE_BYTES each), which bound what the server holds for it. */
typedef struct FrameImage {
        Buf data; /* the figure so far (capacity: MAX_IMAGE_BYTES) */
        uint32_t size; /* what the 'I' announced; 0: none being received */
        char format;
        uint32_t width, height;
        unsigned count; /* figures begun in this run (or cell) */
} FrameImage;

typedef enum FrameImageStep {
        FRAME_IMAGE_PARTIAL, /* taken; more to come */
        FRAME_IMAGE_COMPLETE, /* img->data holds a whole figure: hand it on, then frame_image_reset */
        FRAME_IMAGE_DROPPED, /* over a limit, malformed, or a 'J' without an 'I': nothing kept */
} FrameImageStep;

/* Classifies one message (one SEQPACKET datagram) received in phase ph. */
void frame_parse(FramePhase ph, const char *m, size_t n, Frame *ret);

/* Adds output of stream 1 or 2 to r, as long as out + err stay within max_output bytes.
 * Returns how many bytes were kept; fewer than n means the cap was hit (r->truncated is set and
 * the run must end). */
size_t frame_add_output(RunResult *r, size_t max_output, int stream, const char *data, size_t n);

/* Adds an 'I' or 'J' frame (f, as frame_parse classified it) to img, within max_images figures
 * of at most max_bytes each. An 'I' abandons a figure still incomplete. */
FrameImageStep frame_add_image(FrameImage *img, const Frame *f, unsigned max_images, size_t max_bytes);
/* Forgets the figure being received (kept: the count and the buffer's memory). */
void frame_image_reset(FrameImage *img);

/* Adds a piece of the runner's report unless the report is already complete. */
void frame_add_report(RunResult *r, const char *data, size_t n);

/* The other direction: writes the header of a request of total bytes ('Q' + uint64 length,
 * little-endian; runner.py _read_request decodes it) into hdr. Returns its size,
 * FRAME_REQUEST_HEADER. */
size_t frame_request_header(char hdr[FRAME_REQUEST_HEADER], uint64_t total);
