/* Live answers (Accept: application/x-ndjson or text/event-stream): the choice of framing, the
 * queue of program output between the pool thread and the HTTP thread, and the events' text.
 * No locking and no HTTP library here: http.c holds the lock and drives the connection. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/buf.h"

#define STREAM_TEXT_MAX 4096 /* bytes of program output in one stdout/stderr event */

typedef enum StreamFraming {
        STREAM_NONE, /* the buffered JSON answer */
        STREAM_NDJSON, /* application/x-ndjson: one JSON event per line */
        STREAM_SSE, /* text/event-stream: "event: <type>\ndata: <json>\n\n" */
} StreamFraming;

/* The framing an Accept header asks for: absent, "*" + "/" + "*", application/json or anything
 * else is STREAM_NONE; of application/x-ndjson and text/event-stream the one of higher q wins
 * (the first listed on a tie); q=0 refuses a type. */
StreamFraming stream_negotiate(const char *accept);

const char *stream_content_type(StreamFraming f);

/* Program output not yet sent, in write order: consecutive bytes of one stream are merged; a
 * figure is a segment of its own. Its size is bounded by what the pool lets through
 * (MAX_OUTPUT_BYTES of text, MAX_IMAGES figures of at most MAX_IMAGE_BYTES). */
#define STREAM_IMAGE 3 /* StreamSeg.stream of a figure */
typedef struct StreamSeg {
        struct StreamSeg *next;
        int stream; /* 1 stdout, 2 stderr, STREAM_IMAGE */
        char image_format; /* a figure's: 'p' PNG, 's' SVG */
        uint32_t width, height; /* a figure's */
        uint64_t t_ms; /* when its first unsent byte arrived, since the run started */
        size_t len, off, alloc;
        char *data;
} StreamSeg;

typedef struct StreamQueue {
        StreamSeg *head, *tail;
        size_t bytes;
} StreamQueue;

/* Appends n bytes of stream (1 or 2) that arrived at t_ms. Returns 0 or -ENOMEM. */
int stream_queue_add(StreamQueue *q, int stream, const char *data, size_t n, uint64_t t_ms);

/* Appends a figure of n bytes (format 'p' or 's') shown at t_ms. Returns 0 or -ENOMEM. */
int stream_queue_add_image(StreamQueue *q, char format, uint32_t width, uint32_t height, const char *data,
        size_t n, uint64_t t_ms);
/* The next figure, when it is what comes next: unlinked from q, for the caller to free with
 * stream_seg_free. NULL when text comes first or the queue is empty. */
StreamSeg *stream_queue_take_image(StreamQueue *q);
void stream_seg_free(StreamSeg *s);
/* A figure's image event: format, width, height, and its bytes in base64. NULL: no memory. */
json_t *stream_image_event(const StreamSeg *s);
/* Takes the next event's bytes: at most STREAM_TEXT_MAX, from one stream, cut at a UTF-8
 * boundary. Unless final, an incomplete UTF-8 sequence at the very end of the queue is kept for
 * the bytes that complete it. Returns the number of bytes copied to out (0: nothing to send
 * now, or a figure comes next), with their stream and time. */
size_t stream_queue_take(
        StreamQueue *q, bool final, char out[static STREAM_TEXT_MAX], int *ret_stream, uint64_t *ret_t_ms);

void stream_queue_free(StreamQueue *q);

/* Appends one event to wire in framing f: ev (an object, which gets "type", "seq" and "t" when
 * t_ms is not UINT64_MAX, in front of its members). Returns 0 or -ENOMEM. */
int stream_event(Buf *wire, StreamFraming f, const char *type, uint64_t seq, uint64_t t_ms, json_t *ev);
/* Appends one SSE message, "event: <type>\ndata: <data>\n\n", to wire; data (n bytes) must be one
 * line (compact JSON is). Also how /mcp frames its messages. Returns 0 or -ENOMEM. */
int stream_sse(Buf *wire, const char *type, const char *data, size_t n);
