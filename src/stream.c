/* Live answers: Accept negotiation, the output queue between the pool thread and the HTTP
 * thread, and the text of events in both framings (see stream.h). The queue holds raw program
 * bytes, not formatted events: formatting happens when the client can take more, so a slow
 * client gets fewer, larger events and the memory stays bounded by MAX_OUTPUT_BYTES (what the
 * pool lets through) plus one event's framing. */
#include "stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/macro.h"
#include "util/str.h"
#include "util/utf8.h"

/* q of one media range's parameters ("; q=0.5"), 1 when absent. */
static double range_q(const char *params, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (params[i] != ';')
                        continue;
                size_t j = i + 1;
                while (j < n && params[j] == ' ')
                        j++;
                if (j + 1 < n && (params[j] == 'q' || params[j] == 'Q') && params[j + 1] == '=')
                        return strtod(params + j + 2, NULL);
        }
        return 1;
}

StreamFraming stream_negotiate(const char *accept) {
        double best = 0;
        StreamFraming f = STREAM_NONE;
        if (!accept)
                return STREAM_NONE;
        for (const char *p = accept; *p;) {
                while (*p == ' ' || *p == ',')
                        p++;
                size_t n = strcspn(p, ",");
                size_t type_len = strcspn(p, ";, ");
                type_len = MIN(type_len, n);
                StreamFraming this = STREAM_NONE;
                if (type_len == strlen("application/x-ndjson") &&
                        strncasecmp(p, "application/x-ndjson", type_len) == 0)
                        this = STREAM_NDJSON;
                else if (type_len == strlen("text/event-stream") &&
                         strncasecmp(p, "text/event-stream", type_len) == 0)
                        this = STREAM_SSE;
                if (this != STREAM_NONE) {
                        double q = range_q(p + type_len, n - type_len);
                        if (q > best) {
                                best = q;
                                f = this;
                        }
                }
                p += n;
        }
        return f;
}

const char *stream_content_type(StreamFraming f) {
        return f == STREAM_SSE ? "text/event-stream; charset=utf-8" : "application/x-ndjson; charset=utf-8";
}

void stream_seg_free(StreamSeg *s) {
        if (s) {
                free(s->data);
                free(s);
        }
}

static void queue_link(StreamQueue *q, StreamSeg *s) {
        *(q->tail ? &q->tail->next : &q->head) = s;
        q->tail = s;
}

/* Drops the segments at the head that are all sent. */
static void queue_prune(StreamQueue *q) {
        while (q->head && q->head->off == q->head->len) {
                StreamSeg *s = q->head;
                q->head = s->next;
                if (!q->head)
                        q->tail = NULL;
                stream_seg_free(s);
        }
}

int stream_queue_add_image(StreamQueue *q, char format, uint32_t width, uint32_t height, const char *data,
        size_t n, uint64_t t_ms) {
        if (n == 0)
                return 0;
        StreamSeg *s = calloc(1, sizeof *s);
        char *d = malloc(n);
        if (!s || !d) {
                free(s);
                free(d);
                return -ENOMEM;
        }
        memcpy(d, data, n);
        *s = (StreamSeg){.stream = STREAM_IMAGE,
                .image_format = format,
                .width = width,
                .height = height,
                .t_ms = t_ms,
                .len = n,
                .alloc = n,
                .data = d};
        queue_link(q, s);
        q->bytes += n;
        return 0;
}

StreamSeg *stream_queue_take_image(StreamQueue *q) {
        queue_prune(q);
        StreamSeg *s = q->head;
        if (!s || s->stream != STREAM_IMAGE)
                return NULL;
        q->head = s->next;
        if (!q->head)
                q->tail = NULL;
        s->next = NULL;
        q->bytes -= s->len - s->off;
        return s;
}

json_t *stream_image_event(const StreamSeg *s) {
        _cleanup_free_ char *b64 = base64_encode(s->data, s->len);
        if (!b64)
                return NULL;
        return json_pack("{sssIsIss}", "format", s->image_format == 's' ? "svg" : "png", "width",
                (json_int_t)s->width, "height", (json_int_t)s->height, "data", b64);
}

int stream_queue_add(StreamQueue *q, int stream, const char *data, size_t n, uint64_t t_ms) {
        if (n == 0)
                return 0;
        StreamSeg *s = q->tail;
        if (!s || s->stream != stream) {
                s = calloc(1, sizeof *s);
                if (!s)
                        return -ENOMEM;
                s->stream = stream;
                s->t_ms = t_ms;
                queue_link(q, s);
        }
        if (s->len + n > s->alloc) {
                size_t want = MAX(s->alloc * 2, s->len + n);
                char *d = realloc(s->data, want);
                if (!d)
                        return -ENOMEM;
                s->data = d;
                s->alloc = want;
        }
        if (s->off == s->len)
                s->t_ms = t_ms; /* everything before was sent: the time is this byte's */
        memcpy(s->data + s->len, data, n);
        s->len += n;
        q->bytes += n;
        return 0;
}

/* The length of the UTF-8 sequence a lead byte starts (1 for anything that is not a lead). */
static size_t seq_len(unsigned char c) {
        return c >= 0xf0 && c < 0xf8 ? 4 : c >= 0xe0 && c < 0xf0 ? 3 : c >= 0xc0 && c < 0xe0 ? 2 : 1;
}

/* Where to end a piece p[0..n) so that no UTF-8 sequence is split: n itself, or the start of
 * the last sequence when it is incomplete (0 when that is all there is). Invalid bytes are not
 * held back: they go out and are repaired. */
static size_t utf8_cut(const unsigned char *p, size_t n) {
        for (size_t back = 1; back <= 4 && back <= n; back++) {
                unsigned char c = p[n - back];
                if ((c & 0xc0) == 0x80)
                        continue; /* a continuation byte: look further back */
                return seq_len(c) > back ? n - back : n;
        }
        return n;
}

size_t stream_queue_take(
        StreamQueue *q, bool final, char out[static STREAM_TEXT_MAX], int *ret_stream, uint64_t *ret_t_ms) {
        queue_prune(q);
        StreamSeg *s = q->head;
        if (!s || s->stream == STREAM_IMAGE)
                return 0;
        size_t avail = s->len - s->off;
        size_t n = MIN(avail, (size_t)STREAM_TEXT_MAX);
        const unsigned char *p = (const unsigned char *)s->data + s->off;
        /* Cut before an incomplete sequence inside a segment, and at the end of the queue while
         * more bytes may come to complete it. */
        if (n < avail || (s == q->tail && !final)) {
                size_t cut = utf8_cut(p, n);
                if (cut > 0)
                        n = cut;
                else if (n == avail)
                        return 0;
        }
        memcpy(out, p, n);
        s->off += n;
        q->bytes -= n;
        *ret_stream = s->stream;
        *ret_t_ms = s->t_ms;
        return n;
}

void stream_queue_free(StreamQueue *q) {
        while (q->head) {
                StreamSeg *s = q->head;
                q->head = s->next;
                stream_seg_free(s);
        }
        *q = (StreamQueue){0};
}

int stream_event(Buf *wire, StreamFraming f, const char *type, uint64_t seq, uint64_t t_ms, json_t *ev) {
        json_t *o = json_pack("{sssI}", "type", type, "seq", (json_int_t)seq);
        if (!o)
                return -ENOMEM;
        if ((t_ms != UINT64_MAX && json_object_set_new(o, "t", json_integer((json_int_t)t_ms)) < 0) ||
                (ev && json_object_update_missing(o, ev) < 0)) {
                json_decref(o);
                return -ENOMEM;
        }
        /* Compact JSON has no raw newline (strings escape theirs), so one line frames it. */
        char *s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!s)
                return -ENOMEM;
        int r = 0;
        if (f == STREAM_SSE)
                r = stream_sse(wire, type, s, strlen(s));
        else
                r = buf_append(wire, s, strlen(s)) < 0 || buf_append(wire, "\n", 1) < 0 ? -ENOMEM : 0;
        free(s);
        return r;
}

int stream_sse(Buf *wire, const char *type, const char *data, size_t n) {
        return buf_append(wire, "event: ", 7) < 0 || buf_append(wire, type, strlen(type)) < 0 ||
                               buf_append(wire, "\ndata: ", 7) < 0 || buf_append(wire, data, n) < 0 ||
                               buf_append(wire, "\n\n", 2) < 0
                       ? -ENOMEM
                       : 0;
}
