/* stream: Accept negotiation, the output queue's cuts (4 KiB, UTF-8 boundaries, streams kept
 * apart) and the two framings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "stream.h"

static void test_negotiate(void **state) {
        (void)state;
        assert_int_equal(stream_negotiate(NULL), STREAM_NONE);
        assert_int_equal(stream_negotiate("*/*"), STREAM_NONE);
        assert_int_equal(stream_negotiate("application/json"), STREAM_NONE);
        assert_int_equal(stream_negotiate("application/x-ndjson"), STREAM_NDJSON);
        assert_int_equal(stream_negotiate("Text/Event-Stream; charset=utf-8"), STREAM_SSE);
        assert_int_equal(stream_negotiate("application/json, text/event-stream"), STREAM_SSE);
        assert_int_equal(stream_negotiate("application/x-ndjson;q=0"), STREAM_NONE);
        assert_int_equal(
                stream_negotiate("application/x-ndjson;q=0.2, text/event-stream;q=0.5"), STREAM_SSE);
        assert_int_equal(stream_negotiate("application/x-ndjson, text/event-stream"), STREAM_NDJSON);
        assert_int_equal(stream_negotiate("application/x-ndjsonx"), STREAM_NONE);
}

static size_t take(StreamQueue *q, bool final, char *out, int *stream) {
        uint64_t t;
        return stream_queue_take(q, final, out, stream, &t);
}

static void test_queue_merges_and_keeps_streams_apart(void **state) {
        (void)state;
        StreamQueue q = {0};
        char out[STREAM_TEXT_MAX];
        int stream;
        assert_int_equal(stream_queue_add(&q, 1, "ab", 2, 5), 0);
        assert_int_equal(stream_queue_add(&q, 1, "c", 1, 9), 0);
        assert_int_equal(stream_queue_add(&q, 2, "E", 1, 10), 0);
        assert_int_equal(stream_queue_add(&q, 1, "d", 1, 11), 0);
        uint64_t t;
        assert_int_equal(stream_queue_take(&q, false, out, &stream, &t), 3);
        assert_memory_equal(out, "abc", 3);
        assert_int_equal(stream, 1);
        assert_int_equal(t, 5);
        assert_int_equal(take(&q, false, out, &stream), 1);
        assert_int_equal(stream, 2);
        assert_int_equal(take(&q, false, out, &stream), 1);
        assert_int_equal(out[0], 'd');
        assert_int_equal(take(&q, false, out, &stream), 0);
        assert_int_equal(q.bytes, 0);
        stream_queue_free(&q);
}

/* A figure is its own segment, in its place: text before it is taken first, then the figure,
 * never merged with text of either side; its event carries the bytes in base64. */
static void test_queue_figures_keep_their_place(void **state) {
        (void)state;
        StreamQueue q = {0};
        char out[STREAM_TEXT_MAX];
        int stream;
        assert_int_equal(stream_queue_add(&q, 1, "a", 1, 1), 0);
        assert_int_equal(stream_queue_add_image(&q, 'p', 640, 480, "\x89PNG", 4, 2), 0);
        assert_int_equal(stream_queue_add(&q, 1, "b", 1, 3), 0);
        assert_int_equal(q.bytes, 6);
        assert_null(stream_queue_take_image(&q)); /* "a" comes first */
        assert_int_equal(take(&q, false, out, &stream), 1);
        assert_int_equal(out[0], 'a');
        assert_int_equal(take(&q, false, out, &stream), 0); /* the figure comes next */
        StreamSeg *img = stream_queue_take_image(&q);
        assert_non_null(img);
        assert_int_equal(img->t_ms, 2);
        json_t *ev = stream_image_event(img);
        assert_non_null(ev);
        assert_string_equal(json_string_value(json_object_get(ev, "format")), "png");
        assert_int_equal(json_integer_value(json_object_get(ev, "width")), 640);
        assert_int_equal(json_integer_value(json_object_get(ev, "height")), 480);
        assert_string_equal(json_string_value(json_object_get(ev, "data")), "iVBORw==");
        json_decref(ev);
        stream_seg_free(img);
        assert_int_equal(take(&q, true, out, &stream), 1);
        assert_int_equal(out[0], 'b');
        assert_int_equal(q.bytes, 0);
        /* A figure left in the queue is freed with it. */
        assert_int_equal(stream_queue_add_image(&q, 's', 1, 1, "<svg", 4, 4), 0);
        stream_queue_free(&q);
}

static void test_queue_cuts_at_4k_and_utf8(void **state) {
        (void)state;
        StreamQueue q = {0};
        char out[STREAM_TEXT_MAX];
        int stream;
        /* 4095 ASCII bytes then "é" (2 bytes): the first event stops before the é. */
        char *big = malloc(5000);
        assert_non_null(big);
        memset(big, 'x', 4095);
        memcpy(big + 4095, "\xc3\xa9", 2);
        assert_int_equal(stream_queue_add(&q, 1, big, 4097, 0), 0);
        assert_int_equal(take(&q, false, out, &stream), 4095);
        assert_int_equal(take(&q, false, out, &stream), 2);
        assert_memory_equal(out, "\xc3\xa9", 2);
        /* An incomplete sequence at the end waits for the rest, unless the run is over. */
        assert_int_equal(stream_queue_add(&q, 1, "a\xe4\xb8", 3, 0), 0);
        assert_int_equal(take(&q, false, out, &stream), 1);
        assert_int_equal(take(&q, false, out, &stream), 0);
        assert_int_equal(stream_queue_add(&q, 1, "\xad", 1, 0), 0);
        assert_int_equal(take(&q, false, out, &stream), 3);
        assert_memory_equal(out, "\xe4\xb8\xad", 3);
        assert_int_equal(stream_queue_add(&q, 1, "\xe4", 1, 0), 0);
        assert_int_equal(take(&q, false, out, &stream), 0);
        assert_int_equal(take(&q, true, out, &stream), 1);
        /* Another stream's bytes after an incomplete sequence: it goes out as it is. */
        assert_int_equal(stream_queue_add(&q, 1, "\xe4", 1, 0), 0);
        assert_int_equal(stream_queue_add(&q, 2, "z", 1, 0), 0);
        assert_int_equal(take(&q, false, out, &stream), 1);
        assert_int_equal(stream, 1);
        free(big);
        stream_queue_free(&q);
}

static void test_framing(void **state) {
        (void)state;
        Buf w;
        buf_init(&w, 1 << 20);
        json_t *ev = json_pack("{ss}", "text", "a\nb");
        assert_int_equal(stream_event(&w, STREAM_NDJSON, "stdout", 3, 7, ev), 0);
        assert_string_equal(w.data, "{\"type\":\"stdout\",\"seq\":3,\"t\":7,\"text\":\"a\\nb\"}\n");
        w.len = 0;
        assert_int_equal(stream_event(&w, STREAM_SSE, "start", 0, UINT64_MAX, NULL), 0);
        w.data[w.len] = 0;
        assert_string_equal(w.data, "event: start\ndata: {\"type\":\"start\",\"seq\":0}\n\n");
        json_decref(ev);
        buf_free(&w);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_negotiate),
                cmocka_unit_test(test_queue_merges_and_keeps_streams_apart),
                cmocka_unit_test(test_queue_cuts_at_4k_and_utf8),
                cmocka_unit_test(test_queue_figures_keep_their_place),
                cmocka_unit_test(test_framing),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
