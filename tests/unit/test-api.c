/* Unit tests of src/api.c: request decoding (every way a body can be bad gets a 400 that says
 * why; a good one becomes the runner's JSON), the runner request and error body writers, and the
 * answer built from a hand-made RunResult for each outcome: the program's failures are 200 with
 * status "Error" and a typed error, ours are 5xx with the error shape. Every JSON text produced
 * is parsed back with jansson, which also rejects invalid UTF-8. */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"
#include "report.h"
#include "config.h"
#include "pool.h"

#define WHY_SIZE 512

/* ---- ownership: everything a test allocates is released by the teardown ---- */

/* cmocka runs the teardown even when an assertion ends a test early, so a failing test reports
 * its failure, not a leak. */
typedef enum { OWN_FREE, OWN_JSON, OWN_RESULT } OwnKind;
typedef struct Owned {
        void *p;
        OwnKind kind;
} Owned;
static Owned *owned;
static size_t n_owned;

static void *own(void *p, OwnKind kind) {
        Owned *o = realloc(owned, (n_owned + 1) * sizeof *o);
        assert_non_null(o);
        owned = o;
        owned[n_owned++] = (Owned){p, kind};
        return p;
}

static int release_all(void **state) {
        (void)state;
        while (n_owned > 0) {
                Owned *o = &owned[--n_owned];
                if (o->kind == OWN_JSON)
                        json_decref(o->p);
                else {
                        if (o->kind == OWN_RESULT)
                                run_result_free(o->p);
                        free(o->p);
                }
        }
        free(owned);
        owned = NULL;
        return 0;
}

static void *xmalloc(size_t n) {
        void *p = malloc(n ? n : 1);
        assert_non_null(p);
        return own(p, OWN_FREE);
}

/* An exact-size heap copy with no NUL after it, so that AddressSanitizer sees any over-read. */
static char *exact_copy(const char *s, size_t n) {
        char *p = xmalloc(n);
        memcpy(p, s, n);
        return p;
}

/* Parses a JSON text we produced: must be valid, UTF-8 included, NULs allowed in strings. */
static json_t *parse(const char *s, size_t n) {
        json_error_t e;
        json_t *j = json_loadb(s, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &e);
        if (!j)
                fail_msg("not valid JSON (%s): %.*s", e.text, (int)(n > 300 ? 300 : n), s);
        return own(j, OWN_JSON);
}

/* ---- api_decode_request ---- */

/* The decoder with the default configuration, returning only the runner JSON. */
static HttpStatus decode_default(
        const char *body, size_t len, char **ret, size_t *ret_len, char *why, size_t whyn) {
        Config c;
        ApiRequest ar;
        config_init(&c);
        HttpStatus r = api_decode_request(body, len, &c, &ar, why, whyn);
        *ret = r == 0 ? ar.runner : NULL;
        *ret_len = r == 0 ? ar.runner_len : 0;
        return r;
}

/* Decodes body (n bytes, from an exact-size copy). On 0 sets *ret_json to the parsed runner
 * JSON; otherwise the reason is in why. */
static HttpStatus decode_n(const char *body, size_t n, json_t **ret_json, char *why) {
        char *ret = NULL;
        size_t ret_len = 0;
        why[0] = 0;

        HttpStatus r = decode_default(exact_copy(body, n), n, &ret, &ret_len, why, WHY_SIZE);
        if (ret)
                own(ret, OWN_FREE);
        if (r == 0) {
                assert_non_null(ret);
                assert_int_equal(ret_len, strlen(ret));
                json_t *j = parse(ret, ret_len);
                if (ret_json)
                        *ret_json = j;
        } else {
                assert_null(ret);
                assert_true(strlen(why) > 0);
        }
        return r;
}

static HttpStatus decode(const char *body, json_t **ret_json, char *why) {
        return decode_n(body, strlen(body), ret_json, why);
}

/* Expects a 400 whose reason contains every one of the given words. */
static void expect_400(const char *body, size_t n, const char *const *words) {
        char why[WHY_SIZE];
        HttpStatus r = decode_n(body, n, NULL, why);
        int shown = n > 80 ? 80 : (int)n;
        if (r != 400)
                fail_msg("body %.*s: status %d, want 400", shown, body, r);
        for (; *words; words++)
                if (!strstr(why, *words))
                        fail_msg("body %.*s: reason \"%s\" does not mention \"%s\"", shown, body, why,
                                *words);
}

#define EXPECT_400(body, ...) expect_400(body, strlen(body), (const char *const[]){__VA_ARGS__, NULL})
static const char *const any_reason[] = {NULL};

/* Expects the runner JSON to be exactly {"code": <code, n bytes>, "mode": "plain"}, or
 * "mode": "report" and "limits" when it came from a client's request (runner.py _run). */
static void expect_runner_code(json_t *j, const char *code, size_t n) {
        assert_true(json_is_object(j));
        json_t *limits = json_object_get(j, "limits");
        assert_int_equal(json_object_size(j), limits ? 3 : 2);
        if (limits)
                assert_true(json_is_object(limits));
        assert_string_equal(json_string_value(json_object_get(j, "mode")), limits ? "report" : "plain");
        json_t *c = json_object_get(j, "code");
        assert_true(json_is_string(c));
        assert_int_equal(json_string_length(c), n);
        assert_memory_equal(json_string_value(c), code, n);
}

static void test_decode_valid(void **state) {
        (void)state;
        char why[WHY_SIZE], *ret = NULL;
        size_t len = 0;
        const char body[] = "{\"code\": \"print(1)\"}";

        assert_int_equal(decode_default(body, strlen(body), &ret, &len, why, sizeof why), 0);
        assert_non_null(own(ret, OWN_FREE));
        assert_int_equal(len, strlen(ret));
        expect_runner_code(parse(ret, len), "print(1)", 8);

        /* whitespace around the document and around the code is fine */
        json_t *j = NULL;
        assert_int_equal(decode(" \n{ \"code\" :\t\"  x = 1\\n\" }\n ", &j, why), 0);
        expect_runner_code(j, "  x = 1\n", 8);
}

static void test_decode_invalid_json(void **state) {
        (void)state;
        static const char *const bodies[] = {
                "",
                "{",
                "{\"code\": \"print(1)\"",
                "{code: \"x\"}",
                "{\"code\": 'x'}",
                "{\"code\": \"x\",}",
                "{\"code\": \"x\"} trailing",
                "{\"code\": \"unterminated}",
                "{\"code\": \"bad \\q escape\"}",
                "{\"code\": \"lone \\ud800 surrogate\"}",
        };
        for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
                EXPECT_400(bodies[i], "line", "column", "position");
}

/* The position in the reason points at the mistake. */
static void test_decode_invalid_json_says_where(void **state) {
        (void)state;
        char why[WHY_SIZE];
        assert_int_equal(decode("{\n  \"code\": \"x\",\n  oops\n}", NULL, why), 400);
        assert_non_null(strstr(why, "line 3"));
}

static void test_decode_invalid_utf8(void **state) {
        (void)state;
        EXPECT_400("{\"code\": \"print('\xff')\"}", "line");
        EXPECT_400("{\"code\": \"\xed\xa0\x80\"}", "line");
}

/* Valid JSON that is not an object: the reason must say an object is wanted. */
static void test_decode_array_is_not_an_object(void **state) {
        (void)state;
        EXPECT_400("[]", "object");
        EXPECT_400("[{\"code\": \"x\"}]", "object");
}

/* A scalar document is valid JSON too (RFC 8259): the reason must not call it invalid JSON. */
static void test_decode_scalar_is_not_an_object(void **state) {
        (void)state;
        static const char *const bodies[] = {"\"x\"", "1", "null", "true", "1.5"};
        for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
                EXPECT_400(bodies[i], "object");
}

static void test_decode_missing_code(void **state) {
        (void)state;
        EXPECT_400("{}", "\"code\"");
}

static void test_decode_code_not_a_string(void **state) {
        (void)state;
        static const char *const bodies[] = {
                "{\"code\": 1}",
                "{\"code\": null}",
                "{\"code\": []}",
                "{\"code\": {}}",
                "{\"code\": true}",
                "{\"code\": 1.5}",
                "{\"code\": [\"print(1)\"]}",
        };
        for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
                EXPECT_400(bodies[i], "\"code\"", "string");
}

static void test_decode_empty_code(void **state) {
        (void)state;
        static const char *const bodies[] = {
                "{\"code\": \"\"}",
                "{\"code\": \" \"}",
                "{\"code\": \"\\n\"}",
                "{\"code\": \" \\t\\r\\n \"}",
                "{\"code\": \"\\f\\u000b\"}",
        };
        for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
                EXPECT_400(bodies[i], "\"code\"", "empty");

        /* code that merely starts or ends with whitespace is not empty */
        char why[WHY_SIZE];
        assert_int_equal(decode("{\"code\": \" \\n pass \"}", NULL, why), 0);
}

static void test_decode_unknown_field(void **state) {
        (void)state;
        EXPECT_400("{\"code\": \"x\", \"timeouts\": 5}", "\"timeouts\"");
        EXPECT_400("{\"zzz\": 1, \"code\": \"x\"}", "\"zzz\"");
        EXPECT_400("{\"Code\": \"x\"}", "\"Code\"");
        EXPECT_400("{\"code\": \"x\", \"\": 1}", "\"\"");
}

/* A long unknown name is cut in the reason, which must stay within why (ASan watches). */
static void test_decode_unknown_field_long_name(void **state) {
        (void)state;
        size_t n = 5000;
        char *body = xmalloc(n + 64), *why = xmalloc(WHY_SIZE), *ret = NULL;
        size_t len;
        int k = sprintf(body, "{\"code\": \"x\", \"");
        memset(body + k, 'f', n);
        strcpy(body + k + n, "\": 1}");

        assert_int_equal(decode_default(body, strlen(body), &ret, &len, why, WHY_SIZE), 400);
        assert_null(ret);
        assert_true(strlen(why) < WHY_SIZE);
        assert_non_null(strstr(why, "ffff"));
}

/* A reason longer than the caller's buffer is cut and stays NUL-terminated. */
static void test_decode_small_why_buffer(void **state) {
        (void)state;
        static const char *const bodies[] = {
                "{", "[]", "{}", "{\"code\": 1}", "{\"code\": \"\"}", "{\"x\": 1}"};
        char *why = xmalloc(8), *ret = NULL;
        size_t len;
        for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
                memset(why, 'Z', 8);
                assert_int_equal(decode_default(bodies[i], strlen(bodies[i]), &ret, &len, why, 8), 400);
                assert_null(ret);
                assert_int_equal(strlen(why), 7);
        }
}

static void test_decode_duplicate_keys(void **state) {
        (void)state;
        const char *a = "{\"code\": \"print(1)\", \"code\": \"print(2)\"}";
        const char *b = "{\"code\": \"print(1)\", \"code\": \"print(1)\"}";
        expect_400(a, strlen(a), any_reason);
        expect_400(b, strlen(b), any_reason);
}

static void test_decode_nul_in_code(void **state) {
        (void)state;
        EXPECT_400("{\"code\": \"a\\u0000b\"}", "NUL");
        EXPECT_400("{\"code\": \"\\u0000\"}", "NUL");
        EXPECT_400("{\"code\": \"print(1)\\u0000\"}", "NUL");
}

/* A raw NUL byte in the body (not an escape) is never taken as the end of the body. */
static void test_decode_raw_nul_in_body(void **state) {
        (void)state;
        const char body[] = "{\"code\": \"x\"}\0garbage";
        expect_400(body, sizeof body - 1, any_reason);
}

static void test_decode_unicode_round_trips(void **state) {
        (void)state;
        char why[WHY_SIZE], body[256];
        json_t *j = NULL;
        const char *text = "print('h\xc3\xa9llo \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x90\x8d')";

        /* raw UTF-8 */
        snprintf(body, sizeof body, "{\"code\": \"%s\"}", text);
        assert_int_equal(decode(body, &j, why), 0);
        expect_runner_code(j, text, strlen(text));

        /* the same text written with \u escapes, a surrogate pair for the snake */
        assert_int_equal(decode("{\"code\": \"print('h\\u00e9llo \\u2713 \\u65e5\\u672c \\ud83d\\udc0d')\"}",
                                 &j, why),
                0);
        expect_runner_code(j, text, strlen(text));
}

static void test_decode_escapes_round_trip(void **state) {
        (void)state;
        char why[WHY_SIZE];
        json_t *j = NULL;
        const char *code = "s = \"a\\\\b\"\n\tprint(s, '\\'', \"</script>\")\r\n";
        assert_int_equal(decode("{\"code\": \"s = \\\"a\\\\\\\\b\\\"\\n\\tprint(s, '\\\\'', "
                                "\\\"<\\/script>\\\")\\r\\n\"}",
                                 &j, why),
                0);
        expect_runner_code(j, code, strlen(code));
}

static void test_decode_large_code(void **state) {
        (void)state;
        size_t n = 500 * 1024;
        char why[WHY_SIZE], *code = xmalloc(n + 1), *body = xmalloc(2 * n + 64);
        for (size_t i = 0; i < n; i++)
                code[i] = i % 64 == 63 ? '\n' : (char)('a' + i % 26);
        code[n] = 0;
        /* the body carries the newlines as \n escapes */
        char *w = body + sprintf(body, "{\"code\": \"");
        for (size_t i = 0; i < n; i++) {
                if (code[i] == '\n') {
                        *w++ = '\\';
                        *w++ = 'n';
                } else
                        *w++ = code[i];
        }
        strcpy(w, "\"}");

        json_t *j = NULL;
        assert_int_equal(decode(body, &j, why), 0);
        expect_runner_code(j, code, n);
}

static void test_decode_deep_nesting(void **state) {
        (void)state;
        size_t depth = 100000;
        char *body = xmalloc(2 * depth + 16);

        memset(body, '[', depth);
        expect_400(body, depth, any_reason);

        memset(body + depth, ']', depth); /* well-formed, just deep */
        expect_400(body, 2 * depth, any_reason);

        /* {"code": [[[[... */
        size_t k = (size_t)sprintf(body, "{\"code\": ");
        memset(body + k, '[', depth - k);
        expect_400(body, depth, any_reason);
}

/* ---- api_runner_request ---- */

static void test_runner_request_round_trip(void **state) {
        (void)state;
        static const struct {
                const char *code;
                size_t n;
        } cases[] = {
#define C(s) {s, sizeof s - 1}
                C("print(1)"),
                C("print(\"double\") and print('single')"),
                C("path = 'C:\\\\dir\\\\file'\nprint(r'\\n')"),
                C("line1\nline2\r\n\ttabbed\n"),
                C("print('h\xc3\xa9llo \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x90\x8d')"),
                C("\x01\x02\x1f\x7f controls"),
                C("</script><!-- \"}{\" -->"),
                C("a\0b"),
                C(""),
#undef C
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                char *ret = NULL;
                size_t len = 0;
                assert_int_equal(
                        api_runner_request(exact_copy(cases[i].code, cases[i].n), cases[i].n, &ret, &len),
                        0);
                assert_non_null(own(ret, OWN_FREE));
                assert_int_equal(len, strlen(ret));
                expect_runner_code(parse(ret, len), cases[i].code, cases[i].n);
        }
}

/* Only n bytes are read. */
static void test_runner_request_uses_length(void **state) {
        (void)state;
        char *ret = NULL;
        size_t len;
        assert_int_equal(api_runner_request(exact_copy("x = 1", 5), 3, &ret, &len), 0);
        assert_non_null(own(ret, OWN_FREE));
        expect_runner_code(parse(ret, len), "x =", 3);
}

/* ---- api_error_body ---- */

/* Expects exactly {"status": "Error", "output": <output, n bytes>} (any output if NULL). */
static void expect_error_shape(json_t *j, const char *output, size_t n) {
        assert_true(json_is_object(j));
        assert_int_equal(json_object_size(j), 2);
        assert_true(json_is_string(json_object_get(j, "status")));
        assert_string_equal(json_string_value(json_object_get(j, "status")), "Error");
        json_t *o = json_object_get(j, "output");
        assert_true(json_is_string(o));
        if (output) {
                assert_int_equal(json_string_length(o), n);
                assert_memory_equal(json_string_value(o), output, n);
        }
}

static json_t *error_body(const char *msg) {
        size_t len = 0;
        char *s = own(api_error_body(msg, &len), OWN_FREE);
        assert_non_null(s);
        assert_int_equal(len, strlen(s));
        return parse(s, len);
}

static void test_error_body(void **state) {
        (void)state;
        expect_error_shape(error_body("boom"), "boom", 4);

        const char *tricky = "say \"hi\"\\\n\ttab \xc3\xa9 </script>";
        expect_error_shape(error_body(tricky), tricky, strlen(tricky));

        /* ret_len may be NULL */
        char *s = own(api_error_body("", NULL), OWN_FREE);
        assert_non_null(s);
        expect_error_shape(parse(s, strlen(s)), "", 0);
}

static void test_error_body_invalid_utf8(void **state) {
        (void)state;
        const char *want = "bad \xef\xbf\xbd byte, cut \xef\xbf\xbd and \xef\xbf\xbd";
        expect_error_shape(error_body("bad \xff byte, cut \xe2\x82 and \xc3"), want, strlen(want));
}

/* ---- api_build_answer ---- */

static RunResult *new_result(void) {
        RunResult *r = calloc(1, sizeof *r);
        assert_non_null(r);
        own(r, OWN_RESULT);
        r->outcome = RUN_EXITED;
        buf_init(&r->out, 1 << 20);
        buf_init(&r->err, 1 << 20);
        buf_init(&r->merged, 1 << 20);
        r->timeout_ms = 30000;
        return r;
}

static void put(Buf *b, const char *s, size_t n) {
        assert_int_equal(buf_append(b, s, n), 0);
}

/* Writes to the program's stdout (or stderr) and to the merged stream, as the pool does. */
static void out(RunResult *r, const char *s) {
        put(&r->out, s, strlen(s));
        put(&r->merged, s, strlen(s));
}

static void err(RunResult *r, const char *s) {
        put(&r->err, s, strlen(s));
        put(&r->merged, s, strlen(s));
}

/* The report as the pool collects it: a complete Buf. Freed by run_result_free. */
static void set_report(RunResult *r, const char *json) {
        buf_init(&r->report, 1 << 20);
        put(&r->report, json, strlen(json));
        r->report_done = true;
}

/* Fills the stack below the caller with non-zero bytes (a NUL every 8), so that reading an
 * uninitialised local in the next call shows up as garbage instead of passing by luck. */
static __attribute__((noinline)) void dirty_stack(void) {
        volatile char junk[16384];
        for (size_t i = 0; i < sizeof junk; i++)
                junk[i] = "GARBAGE"[i % 8];
}

/* Builds the answer, checks the status and that the text is valid JSON of the stated length.
 * Sets *ret_text to the text if asked. */
static json_t *answer_text(const RunResult *r, const Config *c, int want_status, const char **ret_text) {
        char *s = NULL;
        size_t len = 0;
        dirty_stack();
        HttpStatus status = api_build_answer(r, c, &s, &len);
        own(s, OWN_FREE);
        assert_int_equal(status, want_status);
        assert_non_null(s);
        assert_int_equal(len, strlen(s));
        if (ret_text)
                *ret_text = s;
        return parse(s, len);
}

static json_t *answer(const RunResult *r, const Config *c, int want_status) {
        return answer_text(r, c, want_status, NULL);
}

static const char *str(json_t *j, const char *key) {
        json_t *v = json_object_get(j, key);
        if (!json_is_string(v))
                fail_msg("\"%s\" is not a string", key);
        return json_string_value(v);
}

static json_t *error_of(json_t *j) {
        json_t *e = json_object_get(j, "error");
        if (!json_is_object(e))
                fail_msg("\"error\" is not an object");
        return e;
}

static const char *error_field(json_t *j, const char *key) {
        return str(error_of(j), key);
}

static bool ends_with(const char *s, const char *suffix) {
        size_t n = strlen(s), m = strlen(suffix);
        return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Every 200 answer has exactly these fields with these types. */
static void expect_answer_shape(json_t *j) {
        assert_true(json_is_object(j));
        assert_int_equal(json_object_size(j), 15);
        assert_true(json_is_array(json_object_get(j, "images")));
        assert_true(json_is_integer(json_object_get(j, "images_dropped")));
        json_t *res = json_object_get(j, "result");
        assert_true(json_is_null(res) || json_is_object(res));
        assert_true(json_is_string(json_object_get(j, "status")));
        assert_true(json_is_string(json_object_get(j, "output")));
        assert_true(json_is_string(json_object_get(j, "stdout")));
        assert_true(json_is_string(json_object_get(j, "stderr")));
        json_t *ec = json_object_get(j, "exit_code"), *sig = json_object_get(j, "signal"),
               *e = json_object_get(j, "error");
        assert_true(json_is_integer(ec) || json_is_null(ec));
        assert_true(json_is_string(sig) || json_is_null(sig));
        assert_true(json_is_object(e) || json_is_null(e));
        if (json_is_object(e)) {
                assert_int_equal(json_object_size(e), 3);
                assert_true(json_is_string(json_object_get(e, "type")));
                assert_true(json_is_string(json_object_get(e, "message")));
                json_t *tb = json_object_get(e, "traceback");
                assert_true(json_is_string(tb) || json_is_null(tb));
        }
        assert_true(json_is_boolean(json_object_get(j, "truncated")));
        assert_true(json_is_integer(json_object_get(j, "duration_ms")));
        assert_true(json_is_integer(json_object_get(j, "cpu_ms")));
        assert_true(json_is_integer(json_object_get(j, "memory_peak_bytes")));
}

static void test_answer_success(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        RunResult *r = new_result();
        out(r, "one\n");
        err(r, "two\n");
        out(r, "three\n");
        r->duration_ms = 12;
        r->duration_us = 12345;
        r->cpu_ms = 5;
        r->memory_peak_bytes = UINT64_C(9000000000); /* beyond 32 bits */

        json_t *j = answer(r, &c, 200);
        expect_answer_shape(j);
        assert_string_equal(str(j, "status"), "Success");
        assert_string_equal(str(j, "output"), "one\ntwo\nthree\n");
        assert_string_equal(str(j, "stdout"), "one\nthree\n");
        assert_string_equal(str(j, "stderr"), "two\n");
        assert_true(json_is_integer(json_object_get(j, "exit_code")));
        assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), 0);
        assert_true(json_is_null(json_object_get(j, "signal")));
        assert_true(json_is_null(json_object_get(j, "error")));
        assert_true(json_is_false(json_object_get(j, "truncated")));
        assert_int_equal(json_integer_value(json_object_get(j, "duration_ms")), 12);
        assert_int_equal(json_integer_value(json_object_get(j, "duration_us")), 12345);
        assert_int_equal(json_integer_value(json_object_get(j, "cpu_ms")), 5);
        assert_int_equal(json_integer_value(json_object_get(j, "memory_peak_bytes")), 9000000000);
}

/* No output at all (the bufs never allocated): empty strings, not nulls. */
static void test_answer_success_without_output(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        RunResult *r = new_result();

        json_t *j = answer(r, &c, 200);
        expect_answer_shape(j);
        assert_string_equal(str(j, "status"), "Success");
        assert_string_equal(str(j, "output"), "");
        assert_string_equal(str(j, "stdout"), "");
        assert_string_equal(str(j, "stderr"), "");
}

static void test_answer_nonzero_exit_without_report(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        RunResult *r = new_result();
        out(r, "partial");
        r->exit_code = 3;

        json_t *j = answer(r, &c, 200);
        expect_answer_shape(j);
        assert_string_equal(str(j, "status"), "Error");
        assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), 3);
        assert_true(json_is_null(json_object_get(j, "signal")));
        assert_string_equal(error_field(j, "type"), "SystemExit");
        assert_non_null(strstr(error_field(j, "message"), "3"));
        assert_true(json_is_null(json_object_get(error_of(j), "traceback")));
        assert_string_equal(str(j, "output"), "partial");
}

static void test_answer_with_report(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        RunResult *r = new_result();
        err(r, "Traceback...\n");
        r->exit_code = 1;
        set_report(r, "{\"error\":{\"type\":\"ValueError\",\"message\":\"bad\","
                      "\"traceback\":\"Traceback...\\n\"}}");

        json_t *j = answer(r, &c, 200);
        expect_answer_shape(j);
        assert_string_equal(str(j, "status"), "Error");
        assert_int_equal(json_integer_value(json_object_get(j, "exit_code")), 1);
        assert_string_equal(error_field(j, "type"), "ValueError");
        assert_string_equal(error_field(j, "message"), "bad");
        assert_string_equal(error_field(j, "traceback"), "Traceback...\n");
        assert_string_equal(str(j, "output"), "Traceback...\n");
        assert_string_equal(str(j, "stderr"), "Traceback...\n");
}

/* An empty traceback is reported as null; a non-ASCII message survives. */
static void test_answer_report_empty_traceback(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        RunResult *r = new_result();
        r->exit_code = 1;
        set_report(r, "{\"error\":{\"type\":\"KeyError\",\"message\":\"'\xc3\xa9'\",\"traceback\":\"\"}}");

        json_t *j = answer(r, &c, 200);
        expect_answer_shape(j);
        assert_string_equal(error_field(j, "type"), "KeyError");
        assert_string_equal(error_field(j, "message"), "'\xc3\xa9'");
        assert_true(json_is_null(json_object_get(error_of(j), "traceback")));
}

static void expect_no_results(json_t *j);

/* A report the runner cannot have written is the program's forgery: the answer says so, even
 * when the program exited 0. */
static void test_answer_malformed_report_is_named(void **state) {
        (void)state;
        static const char *const reports[] = {
                "",
                "not json",
                "{\"error\":{\"type\":\"ValueError\"",
                "[]",
                "{\"exit_code\":1}",
                "{\"error\": \"ValueError\"}",
                "{\"error\": {\"type\": 1, \"message\": \"m\"}}",
                "{\"error\": {\"type\": \"T\"}}",
                "{\"error\": {\"message\": \"m\"}}",
                "{\"error\": {\"type\": \"T\", \"message\": null}}",
                "{\"error\": {\"type\": \"T\", \"message\": \"\xff\"}}",
                "{\"error\": {\"type\": \"T\", \"message\": \"m\", \"x\": 1}}",
                "{\"error\": null, \"error\": null}",
        };
        Config c;
        config_init(&c);
        for (int exit_code = 0; exit_code <= 1; exit_code++)
                for (size_t i = 0; i < sizeof reports / sizeof reports[0]; i++) {
                        RunResult *r = new_result();
                        r->exit_code = exit_code;
                        set_report(r, reports[i]);

                        json_t *j = answer(r, &c, 200);
                        expect_answer_shape(j);
                        assert_string_equal(str(j, "status"), "Error");
                        if (strcmp(error_field(j, "type"), "MalformedReport") != 0)
                                fail_msg("report %s: error.type %s", reports[i], error_field(j, "type"));
                        assert_non_null(strstr(error_field(j, "message"), "report is malformed"));
                        assert_non_null(strstr(str(j, "output"), "report is malformed"));
                        expect_no_results(j);
                }
        /* well-formed reports without an error: the exit code speaks */
        static const char *const fine[] = {"{}", "{\"error\": null}"};
        for (size_t i = 0; i < sizeof fine / sizeof fine[0]; i++) {
                RunResult *r = new_result();
                r->exit_code = 1;
                set_report(r, fine[i]);
                json_t *j = answer(r, &c, 200);
                assert_string_equal(error_field(j, "type"), "SystemExit");
        }
        /* a forged end frame: the report is not believed */
        RunResult *r = new_result();
        set_report(r, "{}");
        r->report_end_bad = true;
        json_t *j = answer(r, &c, 200);
        assert_string_equal(str(j, "status"), "Error");
        assert_string_equal(error_field(j, "type"), "MalformedReport");
        assert_non_null(strstr(error_field(j, "message"), "end frame"));
}

/* A report only describes a failure: with exit 0 the run is a success whatever it says. */
static void test_answer_report_with_exit_zero(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        RunResult *r = new_result();
        set_report(r, "{\"error\":{\"type\":\"ValueError\",\"message\":\"bad\"}}");

        json_t *j = answer(r, &c, 200);
        assert_string_equal(str(j, "status"), "Success");
        assert_true(json_is_null(json_object_get(j, "error")));
}

static void test_answer_killed_by_signal(void **state) {
        (void)state;
        static const struct {
                const char *out, *want;
        } cases[] = {
                {"before", "before\nKilled by SIGSEGV"},
                {"before\n", "before\nKilled by SIGSEGV"},
                {"", "Killed by SIGSEGV"},
        };
        Config c;
        config_init(&c);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                RunResult *r = new_result();
                out(r, cases[i].out);
                r->exit_code = -1;
                r->signal = SIGSEGV;

                json_t *j = answer(r, &c, 200);
                expect_answer_shape(j);
                assert_string_equal(str(j, "status"), "Error");
                assert_true(json_is_null(json_object_get(j, "exit_code")));
                assert_string_equal(str(j, "signal"), "SIGSEGV");
                assert_string_equal(str(j, "output"), cases[i].want);
                assert_string_equal(str(j, "stdout"), cases[i].out); /* the note is not in stdout */
                assert_string_equal(error_field(j, "type"), "Signal");
                assert_non_null(strstr(error_field(j, "message"), "SIGSEGV"));
        }
}

/* A signal with a report (the runner saw the exception, then the process was killed). */
static void test_answer_signal_with_report(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        RunResult *r = new_result();
        r->exit_code = -1;
        r->signal = SIGABRT;
        set_report(r, "{\"error\":{\"type\":\"RuntimeError\",\"message\":\"m\",\"traceback\":\"tb\"}}");

        json_t *j = answer(r, &c, 200);
        expect_answer_shape(j);
        assert_string_equal(str(j, "signal"), "SIGABRT");
        assert_true(ends_with(str(j, "output"), "Killed by SIGABRT"));
        assert_string_equal(error_field(j, "type"), "RuntimeError");
}

static void test_answer_timeout(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        RunResult *r = new_result();
        out(r, "working");
        r->exit_code = -1;
        r->signal = SIGKILL;
        r->outcome = RUN_TIMEOUT;
        r->timeout_ms = 7000;

        json_t *j = answer(r, &c, 200);
        expect_answer_shape(j);
        assert_string_equal(str(j, "status"), "Error");
        assert_string_equal(str(j, "output"), "working\nTimeout Error: Code execution exceeded 7 seconds");
        assert_string_equal(str(j, "stdout"), "working");
        assert_string_equal(error_field(j, "type"), "Timeout");
        assert_non_null(strstr(error_field(j, "message"), "7 seconds"));
        assert_true(json_is_null(json_object_get(error_of(j), "traceback")));

        /* output that ends its line gets no second newline; no output gets none at all */
        r = new_result();
        out(r, "line\n");
        r->outcome = RUN_TIMEOUT;
        r->timeout_ms = 7000;
        j = answer(r, &c, 200);
        assert_string_equal(str(j, "output"), "line\nTimeout Error: Code execution exceeded 7 seconds");

        r = new_result();
        r->outcome = RUN_TIMEOUT;
        r->timeout_ms = 3600000;
        j = answer(r, &c, 200);
        assert_string_equal(str(j, "output"), "Timeout Error: Code execution exceeded 3600 seconds");
}

static void test_answer_memory_limit(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        c.memory_limit_bytes = UINT64_C(256) << 20;
        RunResult *r = new_result();
        out(r, "allocating\n");
        r->exit_code = -1;
        r->signal = SIGKILL;
        r->outcome = RUN_MEMORY_LIMIT;

        json_t *j = answer(r, &c, 200);
        expect_answer_shape(j);
        assert_string_equal(str(j, "status"), "Error");
        assert_string_equal(error_field(j, "type"), "MemoryLimit");
        assert_non_null(strstr(error_field(j, "message"), "MEMORY_LIMIT_MB"));
        assert_non_null(strstr(error_field(j, "message"), "256"));
        const char *o = str(j, "output");
        assert_true(strncmp(o, "allocating\n", 11) == 0);
        assert_non_null(strstr(o + 11, "MEMORY_LIMIT_MB"));
}

static void test_answer_output_limit(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        c.max_output_bytes = 2048;
        RunResult *r = new_result();
        out(r, "xxxxxxxx");
        r->exit_code = -1;
        r->signal = SIGKILL;
        r->outcome = RUN_OUTPUT_LIMIT;
        r->truncated = true;

        json_t *j = answer(r, &c, 200);
        expect_answer_shape(j);
        assert_string_equal(str(j, "status"), "Error");
        assert_string_equal(error_field(j, "type"), "OutputLimit");
        assert_non_null(strstr(error_field(j, "message"), "MAX_OUTPUT_BYTES"));
        assert_non_null(strstr(error_field(j, "message"), "2048"));
        assert_true(json_is_true(json_object_get(j, "truncated")));
        assert_true(strncmp(str(j, "output"), "xxxxxxxx\n", 9) == 0);
        assert_non_null(strstr(str(j, "output"), "MAX_OUTPUT_BYTES"));
}

/* The process-limit note is the last line of output, on a line of its own after the program's
 * output and any other note. */
static void expect_process_limit_note(json_t *j, const char *program_output) {
        const char *o = str(j, "output");
        if (strncmp(o, program_output, strlen(program_output)) != 0)
                fail_msg("output \"%s\" does not start with the program's \"%s\"", o, program_output);
        const char *last = strrchr(o, '\n');
        last = last ? last + 1 : o;
        if (strncmp(last, "Process Limit", 13) != 0 || !strstr(last, "MAX_PROCESSES (17 "))
                fail_msg("output \"%s\": the last line is not the process-limit note", o);
}

static void test_answer_process_limit_with_signal(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        c.max_processes = 17;
        RunResult *r = new_result();
        out(r, "forking\n");
        r->exit_code = -1;
        r->signal = SIGKILL;
        r->process_limit_hit = true;

        json_t *j = answer(r, &c, 200);
        expect_answer_shape(j);
        assert_string_equal(str(j, "status"), "Error");
        assert_non_null(strstr(str(j, "output"), "forking\nKilled by SIGKILL\n"));
        expect_process_limit_note(j, "forking\n");
}

/* Exit 1 without a runner report (e.g. os._exit(1) after fork failed). */
static void test_answer_process_limit_with_exit_code(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        c.max_processes = 17;
        RunResult *r = new_result();
        out(r, "boom");
        r->exit_code = 1;
        r->process_limit_hit = true;

        json_t *j = answer(r, &c, 200);
        expect_answer_shape(j);
        assert_string_equal(str(j, "status"), "Error");
        assert_string_equal(error_field(j, "type"), "SystemExit");
        expect_process_limit_note(j, "boom\n");
}

/* The usual case: fork() raised BlockingIOError, uncaught, so the runner reported it. */
static void test_answer_process_limit_with_report(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        c.max_processes = 17;
        RunResult *r = new_result();
        err(r, "Traceback\n");
        r->exit_code = 1;
        r->process_limit_hit = true;
        set_report(r,
                "{\"error\":{\"type\":\"BlockingIOError\",\"message\":\"[Errno 11] Resource temporarily "
                "unavailable\",\"traceback\":\"Traceback\\n\"}}");

        json_t *j = answer(r, &c, 200);
        expect_answer_shape(j);
        assert_string_equal(error_field(j, "type"), "BlockingIOError");
        expect_process_limit_note(j, "Traceback\n");
}

/* The last line of output; fails unless it starts with prefix and names key and value. */
static void expect_note(json_t *j, const char *prefix, const char *key_and_value) {
        const char *o = str(j, "output");
        const char *last = strrchr(o, '\n');
        last = last ? last + 1 : o;
        if (strncmp(last, prefix, strlen(prefix)) != 0 || !strstr(last, key_and_value))
                fail_msg("output \"%s\": the last line is not \"%s ... %s ...\"", o, prefix, key_and_value);
}

/* A limit that shows only as an OSError inside the program: the errno says which, and the
 * note names its key and value; the exception itself is left as it was. */
static void test_answer_errno_notes(void **state) {
        (void)state;
        static const struct {
                const char *message, *prefix, *key;
        } cases[] = {
                {"[Errno 27] File too large", "File Size Limit", "MAX_FILE_SIZE_MB (3 MB)"},
                {"[Errno 28] No space left on device: 'big.bin'", "Disk Limit", "TMP_SIZE_MB (5 MB)"},
                {"[Errno 24] Too many open files", "Open Files Limit", "MAX_OPEN_FILES (19 "},
                {"[Errno 11] Resource temporarily unavailable", "Process Limit", "MAX_PROCESSES (17 "},
        };
        Config c;
        config_init(&c);
        c.max_processes = 17;
        c.max_open_files = 19;
        c.max_file_size_bytes = UINT64_C(3) << 20;
        c.tmp_size_bytes = UINT64_C(5) << 20;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                char rep[256];
                RunResult *r = new_result();
                err(r, "Traceback\n");
                r->exit_code = 1;
                snprintf(rep, sizeof rep,
                        "{\"error\":{\"type\":\"OSError\",\"message\":\"%s\",\"traceback\":\"Traceback\\n\"}"
                        "}",
                        cases[i].message);
                set_report(r, rep);
                json_t *j = answer(r, &c, 200);
                expect_answer_shape(j);
                assert_string_equal(error_field(j, "type"), "OSError");
                assert_string_equal(error_field(j, "message"), cases[i].message);
                expect_note(j, cases[i].prefix, cases[i].key);
        }

        /* Another errno, or none: no note. */
        RunResult *r = new_result();
        err(r, "Traceback\n");
        r->exit_code = 1;
        set_report(r, "{\"error\":{\"type\":\"OSError\",\"message\":\"[Errno 2] No such "
                      "file\",\"traceback\":\"t\"}}");
        json_t *j = answer(r, &c, 200);
        assert_string_equal(str(j, "output"), "Traceback\n");

        /* A subprocess killed by SIGXFSZ (Python ignores it, a shell tool does not). */
        r = new_result();
        r->exit_code = -1;
        r->signal = SIGXFSZ;
        j = answer(r, &c, 200);
        expect_note(j, "File Size Limit", "MAX_FILE_SIZE_MB (3 MB)");

        /* An allocation refused (RLIMIT_AS without a memory cgroup), numpy's subclass too. */
        r = new_result();
        r->exit_code = 1;
        set_report(r,
                "{\"error\":{\"type\":\"_ArrayMemoryError\",\"message\":\"Unable to allocate 900. MiB\","
                "\"traceback\":\"t\"}}");
        j = answer(r, &c, 200);
        expect_note(j, "Memory Limit", "MEMORY_LIMIT_MB (1024 MB;");
        r = new_result();
        r->exit_code = 1;
        r->memory_bytes = UINT64_C(64) << 20;
        set_report(r, "{\"error\":{\"type\":\"MemoryError\",\"message\":\"\",\"traceback\":\"t\"}}");
        j = answer(r, &c, 200);
        expect_note(j, "Memory Limit", "the request's memory_mb (64 MB;");

        /* A thread that could not start, with no pids cgroup to say why. */
        r = new_result();
        r->exit_code = 1;
        set_report(r, "{\"error\":{\"type\":\"RuntimeError\",\"message\":\"can't start new "
                      "thread\",\"traceback\":\"t\"}}");
        j = answer(r, &c, 200);
        expect_note(j, "Process Limit", "MAX_PROCESSES (17 ");
}

/* The timeout's output line is the old project's; its message names EXECUTION_TIMEOUT, and a
 * process-limit hit that made the program hang is noted after it. */
static void test_answer_timeout_names_key(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        c.timeout_sec = 30;
        c.max_processes = 17;
        RunResult *r = new_result();
        r->exit_code = -1;
        r->signal = SIGKILL;
        r->outcome = RUN_TIMEOUT;
        r->timeout_ms = 30000;
        json_t *j = answer(r, &c, 200);
        assert_string_equal(str(j, "output"), "Timeout Error: Code execution exceeded 30 seconds");
        assert_string_equal(error_field(j, "message"),
                "Code execution exceeded 30 seconds (the server's limit, EXECUTION_TIMEOUT=30)");

        r = new_result();
        r->exit_code = -1;
        r->signal = SIGKILL;
        r->outcome = RUN_TIMEOUT;
        r->timeout_ms = 2000;
        r->process_limit_hit = true;
        j = answer(r, &c, 200);
        assert_non_null(strstr(error_field(j, "message"), "the request's timeout, EXECUTION_TIMEOUT=30"));
        expect_process_limit_note(j, "Timeout Error: Code execution exceeded 2 seconds\n");
}

/* Program bytes that are not UTF-8 are repaired; NUL bytes are kept (as \u0000 in the text). */
static void test_answer_invalid_utf8_and_nul(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        RunResult *r = new_result();
        put(&r->out,
                "a\xff\xfe"
                "b\n\0c",
                7);
        put(&r->err, "\xc3", 1);
        put(&r->merged,
                "a\xff\xfe"
                "b\n\0c\xc3",
                8);

        const char *text;
        json_t *j = answer_text(r, &c, 200, &text);
        assert_non_null(strstr(text, "\\u0000"));
        assert_string_equal(str(j, "status"), "Success");

        const char want_out[] = "a\xef\xbf\xbd\xef\xbf\xbd"
                                "b\n\0c";
        json_t *v = json_object_get(j, "stdout");
        assert_int_equal(json_string_length(v), sizeof want_out - 1);
        assert_memory_equal(json_string_value(v), want_out, sizeof want_out - 1);

        assert_string_equal(str(j, "stderr"), "\xef\xbf\xbd");

        const char want_merged[] = "a\xef\xbf\xbd\xef\xbf\xbd"
                                   "b\n\0c\xef\xbf\xbd";
        v = json_object_get(j, "output");
        assert_int_equal(json_string_length(v), sizeof want_merged - 1);
        assert_memory_equal(json_string_value(v), want_merged, sizeof want_merged - 1);
}

static void test_answer_queue_timeout_and_shutdown(void **state) {
        (void)state;
        static const RunOutcome outcomes[] = {RUN_QUEUE_TIMEOUT, RUN_SHUTDOWN};
        Config c;
        config_init(&c);
        for (size_t i = 0; i < 2; i++) {
                RunResult *r = new_result();
                r->outcome = outcomes[i];
                out(r, "never shown");

                json_t *j = answer(r, &c, 503);
                expect_error_shape(j, NULL, 0);
                assert_true(strlen(str(j, "output")) > 0);
                assert_null(strstr(str(j, "output"), "never shown"));
        }
}

static void test_answer_internal(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        RunResult *r = new_result();
        r->outcome = RUN_INTERNAL;
        snprintf(r->internal_error, sizeof r->internal_error,
                "cannot fork: Resource temporarily unavailable");

        json_t *j = answer(r, &c, 500);
        expect_error_shape(j, NULL, 0);
        assert_non_null(strstr(str(j, "output"), "cannot fork: Resource temporarily unavailable"));

        /* a full-length message of bytes that are not UTF-8 still makes valid JSON */
        r = new_result();
        r->outcome = RUN_INTERNAL;
        memset(r->internal_error, 0xff, sizeof r->internal_error - 1);
        r->internal_error[sizeof r->internal_error - 1] = 0;
        j = answer(r, &c, 500);
        expect_error_shape(j, NULL, 0);
        assert_non_null(strstr(str(j, "output"), "\xef\xbf\xbd"));
}

/* ---- api_decode_request: the data fields (stdin, files, return_files, timeout, memory_mb,
 * image_format) and the limits given to the runner ---- */

/* Decodes body (from an exact-size copy) against the limits of c. On 0 sets *ret_req (its
 * runner is owned) and *ret_json to the parsed runner JSON; otherwise the reason is in why. */
static HttpStatus decode_cfg(
        const Config *c, const char *body, ApiRequest *ret_req, json_t **ret_json, char *why) {
        size_t n = strlen(body);
        ApiRequest ar;
        why[0] = 0;
        memset(&ar, 0x5a, sizeof ar);
        HttpStatus r = api_decode_request(exact_copy(body, n), n, c, &ar, why, WHY_SIZE);
        if (r == 0) {
                assert_non_null(own(ar.runner, OWN_FREE));
                assert_int_equal(ar.runner_len, strlen(ar.runner));
                json_t *j = parse(ar.runner, ar.runner_len);
                if (ret_json)
                        *ret_json = j;
        } else {
                assert_null(ar.runner);
                assert_true(strlen(why) > 0);
        }
        if (ret_req)
                *ret_req = ar;
        return r;
}

/* Expects a 0 and returns the runner JSON; the request in *ret_req if asked. */
static json_t *accept_cfg(const Config *c, const char *body, ApiRequest *ret_req) {
        char why[WHY_SIZE];
        json_t *j = NULL;
        HttpStatus r = decode_cfg(c, body, ret_req, &j, why);
        if (r != 0)
                fail_msg("body %.200s: status %d (%s), want 0", body, r, why);
        return j;
}

/* Expects a 400 whose reason contains every one of the given words. */
static void expect_400_cfg(const Config *c, const char *body, const char *const *words) {
        char why[WHY_SIZE];
        HttpStatus r = decode_cfg(c, body, NULL, NULL, why);
        if (r != 400)
                fail_msg("body %.200s: status %d, want 400", body, r);
        for (; *words; words++)
                if (!strstr(why, *words))
                        fail_msg("body %.200s: reason \"%s\" does not mention \"%s\"", body, why, *words);
}

#define EXPECT_400_CFG(c, body, ...) expect_400_cfg(c, body, (const char *const[]){__VA_ARGS__, NULL})

/* {"code": "pass", <field>: <json>} */
static const char *with_field(const char *field, const char *json) {
        size_t n = strlen(field) + strlen(json) + 64;
        char *s = xmalloc(n);
        snprintf(s, n, "{\"code\": \"pass\", \"%s\": %s}", field, json);
        return s;
}

/* Parses a JSON text of the test itself, scalars included. */
static json_t *json_of(const char *text) {
        json_error_t e;
        json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
        if (!j)
                fail_msg("test JSON %s: %s", text, e.text);
        return own(j, OWN_JSON);
}

/* Expects key in the runner JSON to equal the JSON text want. */
static void expect_runner_field(json_t *j, const char *key, const char *want) {
        json_t *v = json_object_get(j, key);
        if (!v)
                fail_msg("the runner JSON has no \"%s\"", key);
        if (!json_equal(v, json_of(want))) {
                char *got = own(json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT), OWN_FREE);
                fail_msg("runner \"%s\" is %s, want %s", key, got, want);
        }
}

static void test_decode_stdin(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        static const char *const values[] = {
                "\"hello\\n\"",
                "\"\"",
                "\"1 2 3\\n4 5 6\\n\"",
                "\"h\\u00e9llo \\ud83d\\udc0d\"",
        };
        for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
                json_t *j = accept_cfg(&c, with_field("stdin", values[i]), NULL);
                expect_runner_field(j, "stdin", values[i]);
                expect_runner_field(j, "code", "\"pass\"");
        }
        /* without "stdin", the runner gets none (and so no EOF-only stdin either) */
        assert_null(json_object_get(accept_cfg(&c, "{\"code\": \"pass\"}", NULL), "stdin"));

        static const char *const bad[] = {"1", "null", "true", "[]", "{}", "[\"x\"]"};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                EXPECT_400_CFG(&c, with_field("stdin", bad[i]), "\"stdin\"", "string");
}

static void test_decode_files_valid(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        const char *files =
                "[{\"name\": \"data.csv\", \"content\": \"a,b\\n1,2\\n\"},"
                " {\"name\": \"dir/sub/img.bin\", \"content\": \"AAEC/w==\", \"encoding\": \"base64\"},"
                " {\"name\": \"t\\u00e9.txt\", \"content\": \"\\u00e9\", \"encoding\": \"utf-8\"},"
                " {\"name\": \".hidden\", \"content\": \"\"}]";
        json_t *j = accept_cfg(&c, with_field("files", files), NULL);
        expect_runner_field(j, "files", files);
        expect_runner_field(j, "code", "\"pass\"");

        /* an empty list is fine */
        j = accept_cfg(&c, with_field("files", "[]"), NULL);
        assert_true(json_is_array(json_object_get(j, "files")));
        assert_int_equal(json_array_size(json_object_get(j, "files")), 0);

        /* without "files", the runner gets none */
        assert_null(json_object_get(accept_cfg(&c, "{\"code\": \"pass\"}", NULL), "files"));
}

/* Every bad entry is a 400 that names the file (or, without a usable name, the entry). */
static void test_decode_files_invalid(void **state) {
        (void)state;
        static const struct {
                const char *files;
                const char *words[4]; /* NULL-terminated */
        } cases[] = {
                {"[{\"name\": \"a//b\", \"content\": \"x\"}]", {"\"a//b\"", "empty"}},
                {"[{\"name\": \"..\", \"content\": \"x\"}]", {"file \"..\"", "\"..\""}},
                {"[{\"name\": \"../escape.txt\", \"content\": \"x\"}]", {"\"../escape.txt\""}},
                {"[{\"name\": \"a/../../b\", \"content\": \"x\"}]", {"\"a/../../b\""}},
                {"[{\"name\": \"./x\", \"content\": \"x\"}]", {"\"./x\""}},
                {"[{\"name\": \"/etc/passwd\", \"content\": \"x\"}]", {"\"/etc/passwd\"", "absolute"}},
                {"[{\"name\": \"\", \"content\": \"x\"}]", {"file \"\"", "empty"}},
                {"[{\"name\": \"dir/\", \"content\": \"x\"}]", {"\"dir/\""}},
                {"[{\"name\": \"nul\\u0000.txt\", \"content\": \"x\"}]", {"NUL"}},
                {"[{\"name\": \"x.csv\", \"content\": \"1\"}, {\"name\": \"y\", \"content\": \"2\"},"
                 " {\"name\": \"x.csv\", \"content\": \"3\"}]",
                        {"\"x.csv\""}},
                {"[{\"name\": \"d\", \"content\": \"1\"}, {\"name\": \"d/e.txt\", \"content\": \"2\"}]",
                        {"\"d/e.txt\"", "directory"}},
                {"[{\"name\": \"d/e/f\", \"content\": \"1\"}, {\"name\": \"d/e\", \"content\": \"2\"}]",
                        {"\"d/e/f\"", "directory"}},
                {"[{\"name\": \"ok\", \"content\": \"1\"}, 5]", {"\"files\"", "entry 1", "object"}},
                {"[\"data.csv\"]", {"\"files\"", "entry 0", "object"}},
                {"[null]", {"entry 0", "object"}},
                {"[[\"a\", \"b\"]]", {"entry 0", "object"}},
                {"[{\"content\": \"x\"}]", {"entry 0", "\"name\""}},
                {"[{\"name\": 5, \"content\": \"x\"}]", {"entry 0", "\"name\""}},
                {"[{\"name\": null, \"content\": \"x\"}]", {"entry 0", "\"name\""}},
                {"[{\"name\": \"c.txt\"}]", {"\"c.txt\"", "\"content\""}},
                {"[{\"name\": \"c.txt\", \"content\": 5}]", {"\"c.txt\"", "\"content\""}},
                {"[{\"name\": \"c.txt\", \"content\": null}]", {"\"c.txt\"", "\"content\""}},
                {"[{\"name\": \"c.txt\", \"content\": [\"x\"]}]", {"\"c.txt\"", "\"content\""}},
                {"[{\"name\": \"e.txt\", \"content\": \"x\", \"encoding\": \"latin-1\"}]",
                        {"\"e.txt\"", "\"encoding\""}},
                {"[{\"name\": \"e.txt\", \"content\": \"x\", \"encoding\": \"UTF-8\"}]",
                        {"\"e.txt\"", "\"encoding\""}},
                {"[{\"name\": \"e.txt\", \"content\": \"x\", \"encoding\": \"\"}]",
                        {"\"e.txt\"", "\"encoding\""}},
                {"[{\"name\": \"e.txt\", \"content\": \"x\", \"encoding\": null}]",
                        {"\"e.txt\"", "\"encoding\""}},
                {"[{\"name\": \"e.txt\", \"content\": \"x\", \"encoding\": 64}]",
                        {"\"e.txt\"", "\"encoding\""}},
                {"[{\"name\": \"e.txt\", \"content\": \"QUJD\", \"encoding\": \"utf8\"}]",
                        {"\"e.txt\"", "\"encoding\""}},
                {"[{\"name\": \"e.txt\", \"content\": \"QUJD\", \"encoding\": \"BASE64\"}]",
                        {"\"e.txt\"", "\"encoding\""}},
                {"[{\"name\": \"e.txt\", \"content\": \"QUJD\", \"encoding\": \"base64url\"}]",
                        {"\"e.txt\"", "\"encoding\""}},
                {"[{\"name\": \"e.txt\", \"content\": \"QUJD\", \"encoding\": \"b64\"}]",
                        {"\"e.txt\"", "\"encoding\""}},
                {"[{\"name\": \"b.bin\", \"content\": \"QQ=\", \"encoding\": \"base64\"}]",
                        {"\"b.bin\"", "base64"}},
                {"[{\"name\": \"b.bin\", \"content\": \"QU JD\", \"encoding\": \"base64\"}]",
                        {"\"b.bin\"", "base64"}},
                {"[{\"name\": \"b.bin\", \"content\": \"-_-_\", \"encoding\": \"base64\"}]",
                        {"\"b.bin\"", "base64"}},
                {"[{\"name\": \"b.bin\", \"content\": \"QUJD\\n\", \"encoding\": \"base64\"}]",
                        {"\"b.bin\"", "base64"}},
                {"[{\"name\": \"k.txt\", \"content\": \"x\", \"mode\": 420}]", {"\"k.txt\"", "\"mode\""}},
                {"[{\"name\": \"k.txt\", \"content\": \"x\", \"Name\": \"y\"}]", {"\"k.txt\"", "\"Name\""}},
        };
        Config c;
        config_init(&c);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
                expect_400_cfg(&c, with_field("files", cases[i].files), cases[i].words);

        /* "files" itself must be a list */
        static const char *const not_lists[] = {
                "{}", "\"a.csv\"", "null", "1", "true", "{\"name\": \"a\", \"content\": \"x\"}"};
        for (size_t i = 0; i < sizeof not_lists / sizeof not_lists[0]; i++)
                EXPECT_400_CFG(&c, with_field("files", not_lists[i]), "\"files\"");
}

/* An over-long name is quoted cut, inside the reason buffer (ASan watches). */
static void test_decode_files_long_name(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        size_t n = 5000;
        char *body = xmalloc(n + 128);
        int k = sprintf(body, "{\"code\": \"pass\", \"files\": [{\"name\": \"");
        memset(body + k, 'n', n);
        strcpy(body + k + n, "\", \"content\": \"x\"}]}");
        char why[WHY_SIZE];
        assert_int_equal(decode_cfg(&c, body, NULL, NULL, why), 400);
        assert_non_null(strstr(why, "file \"nnnnnnnnnn"));
        assert_non_null(strstr(why, "1024"));
}

static void test_decode_max_files(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        c.max_files = 3;
        const char *three = "[{\"name\": \"1\", \"content\": \"\"}, {\"name\": \"2\", \"content\": \"\"},"
                            " {\"name\": \"3\", \"content\": \"\"}]";
        const char *four = "[{\"name\": \"1\", \"content\": \"\"}, {\"name\": \"2\", \"content\": \"\"},"
                           " {\"name\": \"3\", \"content\": \"\"}, {\"name\": \"4\", \"content\": \"\"}]";
        expect_runner_field(accept_cfg(&c, with_field("files", three), NULL), "files", three);
        EXPECT_400_CFG(&c, with_field("files", four), "MAX_FILES (3)");

        c.max_files = 0;
        accept_cfg(&c, with_field("files", "[]"), NULL);
        EXPECT_400_CFG(&c, with_field("files", "[{\"name\": \"1\", \"content\": \"\"}]"), "MAX_FILES (0)");
}

/* The cap counts decoded bytes: base64 text is 4/3 of what it carries, UTF-8 text is its bytes. */
static void test_decode_max_files_bytes(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        c.max_files_bytes = 10;
        static const char *const fit[] = {
                /* "ABCDEFGHIJ": 10 bytes in 16 characters */
                "[{\"name\": \"b\", \"content\": \"QUJDREVGR0hJSg==\", \"encoding\": \"base64\"}]",
                "[{\"name\": \"u\", \"content\": \"0123456789\"}]",
                "[{\"name\": \"u\", \"content\": \"0123456789\", \"encoding\": \"utf-8\"}]",
                "[{\"name\": \"e\", \"content\": \"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"}]", /* 10 bytes */
                "[{\"name\": \"1\", \"content\": \"abcde\"}, {\"name\": \"2\", \"content\": \"fghij\"}]",
                "[{\"name\": \"1\", \"content\": \"abcde\"}, {\"name\": \"2\", \"content\": \"QUJDREU=\","
                " \"encoding\": \"base64\"}]",
        };
        for (size_t i = 0; i < sizeof fit / sizeof fit[0]; i++)
                accept_cfg(&c, with_field("files", fit[i]), NULL);

        static const char *const over[] = {
                /* "ABCDEFGHIJK": 11 bytes */
                "[{\"name\": \"b\", \"content\": \"QUJDREVGR0hJSks=\", \"encoding\": \"base64\"}]",
                "[{\"name\": \"u\", \"content\": \"0123456789A\"}]",
                "[{\"name\": \"e\", \"content\": \"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9a\"}]", /* 11 bytes */
                "[{\"name\": \"1\", \"content\": \"abcde\"}, {\"name\": \"2\", \"content\": \"fghijk\"}]",
                "[{\"name\": \"1\", \"content\": \"abcdef\"}, {\"name\": \"2\", \"content\": \"QUJDREU=\","
                " \"encoding\": \"base64\"}]",
        };
        for (size_t i = 0; i < sizeof over / sizeof over[0]; i++)
                EXPECT_400_CFG(&c, with_field("files", over[i]), "MAX_FILES_BYTES", "10");
}

/* "encoding" is exactly "utf-8" or "base64": a value that only starts with one of them (a NUL
 * after it) is not either. The runner compares the whole string, so "base64\u0000x" would be
 * sized as base64 here and written as text there. */
static void test_decode_files_encoding_with_nul(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        EXPECT_400_CFG(&c,
                with_field("files",
                        "[{\"name\": \"b.bin\", \"content\": \"QUJD\", \"encoding\": \"base64\\u0000x\"}]"),
                "\"b.bin\"", "\"encoding\"");
        EXPECT_400_CFG(&c,
                with_field("files",
                        "[{\"name\": \"u.txt\", \"content\": \"x\", \"encoding\": \"utf-8\\u0000\"}]"),
                "\"u.txt\"", "\"encoding\"");
}

static void test_decode_return_files(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        ApiRequest ar;
        json_t *j;

        j = accept_cfg(&c, with_field("return_files", "true"), &ar);
        assert_true(ar.want_files);
        expect_runner_field(j, "return_files", "true");

        j = accept_cfg(&c, with_field("return_files", "false"), &ar);
        assert_false(ar.want_files);
        assert_null(json_object_get(j, "return_files"));

        /* no pattern matches nothing: "files": [] in the answer, nothing for the runner to do */
        j = accept_cfg(&c, with_field("return_files", "[]"), &ar);
        assert_true(ar.want_files);
        assert_null(json_object_get(j, "return_files"));

        j = accept_cfg(&c, with_field("return_files", "[\"*.csv\"]"), &ar);
        assert_true(ar.want_files);
        expect_runner_field(j, "return_files", "[\"*.csv\"]");

        j = accept_cfg(&c, with_field("return_files", "[\"out/*.png\", \"report.txt\", \"**\"]"), &ar);
        assert_true(ar.want_files);
        expect_runner_field(j, "return_files", "[\"out/*.png\", \"report.txt\", \"**\"]");

        j = accept_cfg(&c, "{\"code\": \"pass\"}", &ar);
        assert_false(ar.want_files);
        assert_null(json_object_get(j, "return_files"));
}

/* A list of n patterns "p0", "p1", ... */
static const char *patterns(size_t n) {
        char *s = xmalloc(n * 8 + 3), *w = s;
        *w++ = '[';
        for (size_t i = 0; i < n; i++)
                w += sprintf(w, "%s\"p%zu\"", i ? "," : "", i);
        strcpy(w, "]");
        return s;
}

static void test_decode_return_files_invalid(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        ApiRequest ar;

        accept_cfg(&c, with_field("return_files", patterns(64)), &ar);
        assert_true(ar.want_files);
        EXPECT_400_CFG(&c, with_field("return_files", patterns(65)), "\"return_files\"", "64");

        /* a pattern of 256 bytes is fine, 257 is not */
        char *p = xmalloc(300);
        p[0] = '[';
        p[1] = '"';
        memset(p + 2, '*', 256);
        strcpy(p + 258, "\"]");
        accept_cfg(&c, with_field("return_files", p), NULL);
        p[258] = '*';
        strcpy(p + 259, "\"]");
        EXPECT_400_CFG(&c, with_field("return_files", p), "\"return_files\"");

        static const char *const bad[] = {
                "[1]",
                "[\"*.csv\", 2]",
                "[\"\"]",
                "[\"ok\", \"\"]",
                "[null]",
                "[[\"*\"]]",
                "[\"a\\u0000b\"]",
                "\"*.csv\"",
                "null",
                "1",
                "0",
                "{}",
                "{\"pattern\": \"*\"}",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                EXPECT_400_CFG(&c, with_field("return_files", bad[i]), "\"return_files\"");
}

static void test_decode_timeout(void **state) {
        (void)state;
        static const struct {
                const char *value;
                uint32_t ms;
                double sec;
        } cases[] = {
                {"1", 1000, 1}, {"0.5", 500, 0.5}, {"2.25", 2250, 2.25},
                {"123", 123000, 123}, /* the maximum itself */
                {"1e1", 10000, 10}, {"0.0001", 1, 0.0001}, /* never 0 ms, which would mean "no timeout" */
        };
        Config c;
        config_init(&c);
        c.timeout_sec = 123;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                ApiRequest ar;
                json_t *j = accept_cfg(&c, with_field("timeout", cases[i].value), &ar);
                if (ar.timeout_ms != cases[i].ms)
                        fail_msg("timeout %s: timeout_ms %u, want %u", cases[i].value, ar.timeout_ms,
                                cases[i].ms);
                json_t *t = json_object_get(j, "timeout_sec");
                if (!json_is_number(t) || json_number_value(t) != cases[i].sec)
                        fail_msg("timeout %s: the runner's timeout_sec is not %g", cases[i].value,
                                cases[i].sec);
                assert_null(json_object_get(j, "timeout"));
                assert_int_equal(ar.memory_bytes, 0);
        }
        ApiRequest ar;
        json_t *j = accept_cfg(&c, "{\"code\": \"pass\"}", &ar);
        assert_int_equal(ar.timeout_ms, 0);
        assert_null(json_object_get(j, "timeout_sec"));
}

static void test_decode_timeout_invalid(void **state) {
        (void)state;
        static const char *const bad[] = {
                "0",
                "0.0",
                "-0",
                "-1",
                "-0.5",
                "123.001",
                "124",
                "1e9",
                "\"5\"",
                "\"1\"",
                "true",
                "false",
                "null",
                "[5]",
                "{}",
        };
        Config c;
        config_init(&c);
        c.timeout_sec = 123;
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                EXPECT_400_CFG(&c, with_field("timeout", bad[i]), "\"timeout\"", "123");
}

static void test_decode_memory_mb(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        c.memory_limit_bytes = UINT64_C(300) << 20;
        static const int64_t ok[] = {16, 17, 64, 299, 300};
        for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
                char v[32];
                snprintf(v, sizeof v, "%lld", (long long)ok[i]);
                ApiRequest ar;
                json_t *j = accept_cfg(&c, with_field("memory_mb", v), &ar);
                assert_int_equal(ar.memory_bytes, (uint64_t)ok[i] << 20);
                json_t *m = json_object_get(j, "memory_bytes");
                assert_true(json_is_integer(m));
                assert_int_equal(json_integer_value(m), ok[i] << 20);
                assert_null(json_object_get(j, "memory_mb"));
                assert_int_equal(ar.timeout_ms, 0);
        }
        ApiRequest ar;
        json_t *j = accept_cfg(&c, "{\"code\": \"pass\"}", &ar);
        assert_int_equal(ar.memory_bytes, 0);
        assert_null(json_object_get(j, "memory_bytes"));

        static const char *const bad[] = {
                "15",
                "0",
                "-1",
                "301",
                "1048576",
                "9223372036854775807",
                "-9223372036854775808",
                "64.5",
                "\"64\"",
                "true",
                "null",
                "[64]",
                "{}",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                EXPECT_400_CFG(&c, with_field("memory_mb", bad[i]), "\"memory_mb\"", "300");
}

static void test_decode_image_format(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        expect_runner_field(
                accept_cfg(&c, with_field("image_format", "\"png\""), NULL), "image_format", "\"png\"");
        expect_runner_field(
                accept_cfg(&c, with_field("image_format", "\"svg\""), NULL), "image_format", "\"svg\"");
        assert_null(json_object_get(accept_cfg(&c, "{\"code\": \"pass\"}", NULL), "image_format"));

        static const char *const bad[] = {
                "\"jpg\"",
                "\"PNG\"",
                "\"\"",
                "\"png \"",
                "\"svgz\"",
                "1",
                "null",
                "true",
                "[\"png\"]",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                EXPECT_400_CFG(&c, with_field("image_format", bad[i]), "\"image_format\"", "png", "svg");
}

/* A value that only starts with "png" or "svg" (a NUL after it) is neither; the runner would
 * pass the whole string to savefig as the format. */
static void test_decode_image_format_with_nul(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        EXPECT_400_CFG(&c, with_field("image_format", "\"png\\u0000x\""), "\"image_format\"");
        EXPECT_400_CFG(&c, with_field("image_format", "\"svg\\u0000\""), "\"image_format\"");
}

/* The runner always learns the caps of what it sends back, from the configuration. */
static void test_decode_limits(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        char want[256];
        snprintf(want, sizeof want,
                "{\"images\": %u, \"image_bytes\": %llu, \"return_file_bytes\": %llu, \"return_bytes\": "
                "%llu, \"return_files\": %u, \"result_bytes\": %llu, \"error_bytes\": %d}",
                c.max_images, (unsigned long long)c.max_image_bytes,
                (unsigned long long)c.max_return_file_bytes, (unsigned long long)c.max_return_bytes,
                c.max_return_files, (unsigned long long)c.max_result_bytes, REPORT_ERROR_BYTES);
        expect_runner_field(accept_cfg(&c, "{\"code\": \"pass\"}", NULL), "limits", want);

        c.max_images = 7;
        c.max_image_bytes = 7777;
        c.max_return_file_bytes = 8888;
        c.max_return_bytes = UINT64_C(5000000000); /* beyond 32 bits */
        c.max_result_bytes = 5555;
        c.max_return_files = 9;
        const char *mine = "{\"images\": 7, \"image_bytes\": 7777, \"return_file_bytes\": 8888, "
                           "\"return_bytes\": 5000000000, \"return_files\": 9, \"result_bytes\": 5555, "
                           "\"error_bytes\": 65536}";
        expect_runner_field(accept_cfg(&c, "{\"code\": \"pass\"}", NULL), "limits", mine);
        expect_runner_field(accept_cfg(&c, with_field("stdin", "\"x\""), NULL), "limits", mine);

        c.max_images = 0;
        expect_runner_field(accept_cfg(&c, "{\"code\": \"pass\"}", NULL), "limits",
                "{\"images\": 0, \"image_bytes\": 7777, \"return_file_bytes\": 8888, "
                "\"return_bytes\": 5000000000, \"return_files\": 9, \"result_bytes\": 5555, "
                "\"error_bytes\": 65536}");
}

/* Every field at once: the runner gets exactly its own names for them. */
static void test_decode_every_field(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        c.timeout_sec = 60;
        c.memory_limit_bytes = UINT64_C(1024) << 20;
        ApiRequest ar;
        json_t *j = accept_cfg(&c,
                "{\"code\": \"print(input())\", \"stdin\": \"42\\n\", \"files\": [{\"name\": \"a.csv\", "
                "\"content\": \"x\"}], \"return_files\": [\"*.csv\"], \"timeout\": 2, \"memory_mb\": 128, "
                "\"image_format\": \"svg\"}",
                &ar);
        assert_int_equal(json_object_size(j), 10);
        expect_runner_field(j, "mode", "\"report\"");
        expect_runner_field(j, "code", "\"print(input())\"");
        expect_runner_field(j, "stdin", "\"42\\n\"");
        expect_runner_field(j, "files", "[{\"name\": \"a.csv\", \"content\": \"x\"}]");
        expect_runner_field(j, "return_files", "[\"*.csv\"]");
        assert_true(json_number_value(json_object_get(j, "timeout_sec")) == 2.0);
        expect_runner_field(j, "memory_bytes", "134217728");
        expect_runner_field(j, "address_space_bytes", "2281701376"); /* + ADDRESS_SPACE_HEADROOM_BYTES */
        expect_runner_field(j, "image_format", "\"svg\"");
        assert_true(json_is_object(json_object_get(j, "limits")));
        assert_int_equal(ar.timeout_ms, 2000);
        assert_int_equal(ar.memory_bytes, UINT64_C(128) << 20);
        assert_true(ar.want_files);
}

/* ---- api_build_answer: images, images_dropped, result, files ---- */

static const char *const full_report =
        "{\"error\":null,"
        "\"result\":{\"text/plain\":\"   a\\n0  1\",\"text/html\":\"<table><tr><td>1</td></tr></table>\"},"
        "\"images\":[{\"format\":\"png\",\"width\":640,\"height\":480,\"data\":\"iVBORw0KGgo=\"},"
        "{\"format\":\"svg\",\"width\":100,\"height\":50,\"data\":\"PHN2Zz4=\"}],"
        "\"images_dropped\":2,"
        "\"files\":[{\"name\":\"out.csv\",\"size\":4,\"encoding\":\"utf-8\",\"content\":\"a,b\\n\"},"
        "{\"name\":\"big.bin\",\"size\":99999999,\"truncated\":true}],\"files_dropped\":1}";

/* The 15 fields of every answer plus "files" and "files_dropped": the shape is checked on a
 * copy without them. */
static void expect_answer_shape_with_files(json_t *j) {
        assert_int_equal(json_object_size(j), 17);
        assert_true(json_is_array(json_object_get(j, "files")));
        assert_true(json_is_integer(json_object_get(j, "files_dropped")));
        json_t *copy = own(json_deep_copy(j), OWN_JSON);
        assert_non_null(copy);
        assert_int_equal(json_object_del(copy, "files"), 0);
        assert_int_equal(json_object_del(copy, "files_dropped"), 0);
        expect_answer_shape(copy);
}

static void expect_field(json_t *j, const char *key, const char *want) {
        json_t *v = json_object_get(j, key);
        if (!v)
                fail_msg("the answer has no \"%s\"", key);
        if (!json_equal(v, json_of(want))) {
                char *got = own(json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT), OWN_FREE);
                fail_msg("answer \"%s\" is %s, want %s", key, got, want);
        }
}

/* No data results: no images, none dropped, no result. */
static void expect_no_results(json_t *j) {
        expect_field(j, "images", "[]");
        expect_field(j, "images_dropped", "0");
        expect_field(j, "result", "null");
}

static void test_answer_data_results(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        RunResult *r = new_result();
        out(r, "done\n");
        r->want_files = true;
        set_report(r, full_report);

        json_t *j = answer(r, &c, 200);
        expect_answer_shape_with_files(j);
        assert_string_equal(str(j, "status"), "Success");
        assert_string_equal(str(j, "output"), "done\n"); /* the result is not in output */
        json_t *rep = json_of(full_report);
        assert_true(json_equal(json_object_get(j, "images"), json_object_get(rep, "images")));
        assert_true(json_equal(json_object_get(j, "result"), json_object_get(rep, "result")));
        assert_true(json_equal(json_object_get(j, "files"), json_object_get(rep, "files")));
        expect_field(j, "images_dropped", "2");
        expect_field(j, "files_dropped", "1");
}

/* The answer's verdict on one report: "" when it was used, else the error type. */
static const char *report_verdict(const Config *c, const char *report, json_t **ret) {
        RunResult *r = new_result();
        r->want_files = true;
        set_report(r, report);
        json_t *j = answer(r, c, 200);
        expect_answer_shape_with_files(j);
        *ret = j;
        json_t *e = json_object_get(j, "error");
        return json_is_object(e) ? json_string_value(json_object_get(e, "type")) : "";
}

#define EXPECT_MALFORMED(c, rep)                                                              \
        do {                                                                                  \
                json_t *j_;                                                                   \
                const char *v_ = report_verdict(c, rep, &j_);                                 \
                if (strcmp(v_, "MalformedReport") != 0)                                       \
                        fail_msg("report %s: verdict \"%s\", want MalformedReport", rep, v_); \
                expect_no_results(j_);                                                        \
                expect_field(j_, "files", "[]");                                              \
        } while (0)

/* Anything of the wrong type in the data results makes the whole report malformed: nothing of a
 * forged report reaches an answer. */
static void test_answer_malformed_data_results(void **state) {
        (void)state;
        static const char *const images[] = {"5", "\"x\"", "null", "[]", "{}", "true",
                "{\"width\":1,\"height\":2,\"data\":\"AA==\"}",
                "{\"format\":1,\"width\":1,\"height\":2,\"data\":\"AA==\"}",
                "{\"format\":\"gif\",\"width\":1,\"height\":2,\"data\":\"AA==\"}",
                "{\"format\":\"png\",\"height\":2,\"data\":\"AA==\"}",
                "{\"format\":\"png\",\"width\":\"1\",\"height\":2,\"data\":\"AA==\"}",
                "{\"format\":\"png\",\"width\":1.5,\"height\":2,\"data\":\"AA==\"}",
                "{\"format\":\"png\",\"width\":-1,\"height\":2,\"data\":\"AA==\"}",
                "{\"format\":\"png\",\"width\":1,\"height\":null,\"data\":\"AA==\"}",
                "{\"format\":\"png\",\"width\":1,\"height\":2}",
                "{\"format\":\"png\",\"width\":1,\"height\":2,\"data\":[\"AA==\"]}",
                "{\"format\":\"png\",\"width\":1,\"height\":2,\"data\":\"not base64\"}",
                "{\"format\":\"png\",\"width\":1,\"height\":2,\"data\":\"AA==\",\"x\":1}"};
        static const char *const others[] = {"{\"images\":{}}", "{\"images\":\"AA==\"}", "{\"images\":null}",
                "{\"images_dropped\":\"5\"}", "{\"images_dropped\":1.5}", "{\"images_dropped\":-1}",
                "{\"images_dropped\":null}", "{\"result\":\"x\"}", "{\"result\":5}", "{\"result\":[]}",
                "{\"result\":{}}", "{\"result\":{\"text/plain\":1}}",
                "{\"result\":{\"text/plain\":\"1\",\"text/x\":\"2\"}}", "{\"files\":\"x\"}",
                "{\"files\":{}}", "{\"files\":null}", "{\"files\":[{\"name\":\"a\"}]}",
                "{\"files\":[{\"name\":\"\",\"size\":0,\"truncated\":true}]}",
                "{\"files\":[{\"name\":\"a\",\"size\":0,\"truncated\":false}]}",
                "{\"files\":[{\"name\":\"a\",\"size\":0,\"truncated\":true,\"content\":\"x\"}]}",
                "{\"files\":[{\"name\":\"a\",\"size\":0,\"content\":\"x\"}]}",
                "{\"files\":[{\"name\":\"a\",\"size\":0,\"encoding\":\"latin-1\",\"content\":\"x\"}]}",
                "{\"files\":[{\"name\":\"a\",\"size\":0,\"encoding\":\"base64\",\"content\":\"x\"}]}",
                "{\"files\":[{\"name\":\"a\\u0000b\",\"size\":0,\"truncated\":true}]}",
                "{\"files_dropped\":\"1\"}"};
        Config c;
        config_init(&c);
        char rep[512];
        for (size_t i = 0; i < sizeof images / sizeof images[0]; i++) {
                snprintf(rep, sizeof rep,
                        "{\"images\":[{\"format\":\"png\",\"width\":1,\"height\":2,\"data\":\"AA==\"},%s]}",
                        images[i]);
                EXPECT_MALFORMED(&c, rep);
        }
        for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
                EXPECT_MALFORMED(&c, others[i]);

        /* the same shapes, well-formed, are used: the cases above are not failing by accident */
        json_t *j;
        assert_string_equal(
                report_verdict(&c,
                        "{\"images\":[{\"format\":\"png\",\"width\":1,\"height\":2,\"data\":"
                        "\"AA==\"},{\"format\":\"svg\",\"width\":3,\"height\":4,\"data\":\"BB==\"}],"
                        "\"images_dropped\":5,\"result\":{\"text/plain\":\"42\"},\"files\":[{"
                        "\"name\":\"a\",\"size\":1,\"encoding\":\"base64\",\"content\":\"eA==\"}],"
                        "\"files_dropped\":0}",
                        &j),
                "");
        expect_field(j, "images",
                "[{\"format\":\"png\",\"width\":1,\"height\":2,\"data\":\"AA==\"},"
                "{\"format\":\"svg\",\"width\":3,\"height\":4,\"data\":\"BB==\"}]");
        expect_field(j, "images_dropped", "5");
        expect_field(j, "result", "{\"text/plain\":\"42\"}");
        expect_field(
                j, "files", "[{\"name\":\"a\",\"size\":1,\"encoding\":\"base64\",\"content\":\"eA==\"}]");
        assert_string_equal(report_verdict(&c, "{\"result\":null,\"images\":[]}", &j), "");
        expect_no_results(j);
}

/* The caps of the configuration hold for what a report carries, one past each is malformed. */
static void test_answer_report_caps(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        c.max_images = 1;
        c.max_image_bytes = 1024;
        c.max_result_bytes = 1024;
        c.max_return_files = 2;
        c.max_return_file_bytes = 3;
        c.max_return_bytes = 5;
        json_t *j;
        char *rep = own(malloc(8192), OWN_FREE);
        char *text = own(malloc(2048), OWN_FREE);
        assert_non_null(rep);
        assert_non_null(text);
        const char *img = "{\"format\":\"png\",\"width\":1,\"height\":1,\"data\":\"AA==\"}";
        snprintf(rep, 8192, "{\"images\":[%s]}", img);
        assert_string_equal(report_verdict(&c, rep, &j), "");
        snprintf(rep, 8192, "{\"images\":[%s,%s]}", img, img);
        EXPECT_MALFORMED(&c, rep);
        /* an image of 1023 decoded bytes, then one of 1026 (MAX_IMAGE_BYTES is 1024) */
        memset(text, 'A', 1364);
        text[1364] = 0;
        snprintf(rep, 8192, "{\"images\":[{\"format\":\"png\",\"width\":1,\"height\":1,\"data\":\"%s\"}]}",
                text);
        assert_string_equal(report_verdict(&c, rep, &j), "");
        memset(text, 'A', 1368);
        text[1368] = 0;
        snprintf(rep, 8192, "{\"images\":[{\"format\":\"png\",\"width\":1,\"height\":1,\"data\":\"%s\"}]}",
                text);
        EXPECT_MALFORMED(&c, rep);
        /* result text of MAX_RESULT_BYTES, then one more */
        memset(text, 'x', 1025);
        text[1024] = 0;
        snprintf(rep, 8192, "{\"result\":{\"text/plain\":\"%s\"}}", text);
        assert_string_equal(report_verdict(&c, rep, &j), "");
        text[1024] = 'x';
        text[1025] = 0;
        snprintf(rep, 8192, "{\"result\":{\"text/plain\":\"x\",\"text/html\":\"%s\"}}", text);
        EXPECT_MALFORMED(&c, rep);
        /* files: MAX_RETURN_FILES entries, MAX_RETURN_FILE_BYTES each, MAX_RETURN_BYTES in all */
        const char *f3 = "{\"name\":\"a\",\"size\":3,\"encoding\":\"utf-8\",\"content\":\"abc\"}";
        const char *f2 = "{\"name\":\"b\",\"size\":2,\"encoding\":\"base64\",\"content\":\"YWI=\"}";
        const char *ft = "{\"name\":\"c\",\"size\":9,\"truncated\":true}";
        snprintf(rep, 8192, "{\"files\":[%s,%s]}", f3, f2);
        assert_string_equal(report_verdict(&c, rep, &j), "");
        snprintf(rep, 8192, "{\"files\":[%s,%s,%s]}", f3, f2, ft);
        EXPECT_MALFORMED(&c, rep);
        snprintf(rep, 8192, "{\"files\":[%s,%s]}", f3, f3); /* 6 bytes in all */
        EXPECT_MALFORMED(&c, rep);
        EXPECT_MALFORMED(
                &c, "{\"files\":[{\"name\":\"a\",\"size\":4,\"encoding\":\"utf-8\",\"content\":\"abcd\"}]}");
        EXPECT_MALFORMED(&c, "{\"files\":[{\"name\":\"a\",\"size\":4,\"encoding\":\"base64\",\"content\":"
                             "\"YWJjZA==\"}]}");
        /* error texts within REPORT_ERROR_BYTES */
        char *big = own(malloc(REPORT_ERROR_BYTES + 128), OWN_FREE);
        assert_non_null(big);
        int n = snprintf(big, REPORT_ERROR_BYTES + 128, "{\"error\":{\"type\":\"T\",\"message\":\"");
        memset(big + n, 'm', REPORT_ERROR_BYTES + 1);
        strcpy(big + n + REPORT_ERROR_BYTES + 1, "\"}}");
        EXPECT_MALFORMED(&c, big);
        strcpy(big + n + REPORT_ERROR_BYTES, "\"}}");
        assert_string_equal(report_verdict(&c, big, &j), "");
}

/* "files" is in the answer exactly when the request asked for files. */
static void test_answer_files_only_when_asked(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        RunResult *r = new_result();
        set_report(r, full_report);
        json_t *j = answer(r, &c, 200);
        expect_answer_shape(j); /* 14 fields */
        assert_null(json_object_get(j, "files"));

        /* asked, but the run timed out before any report */
        r = new_result();
        r->want_files = true;
        r->outcome = RUN_TIMEOUT;
        r->signal = SIGKILL;
        r->exit_code = -1;
        r->timeout_ms = 2000;
        j = answer(r, &c, 200);
        expect_answer_shape_with_files(j);
        expect_field(j, "files", "[]");
        expect_no_results(j);
        assert_string_equal(error_field(j, "type"), "Timeout");

        /* asked, and a report without files */
        r = new_result();
        r->want_files = true;
        set_report(r, "{}");
        j = answer(r, &c, 200);
        expect_answer_shape_with_files(j);
        expect_field(j, "files", "[]");
        expect_field(j, "files_dropped", "0");
}

/* A report without its end frame is not used, whatever it says. */
static void test_answer_incomplete_report_ignored(void **state) {
        (void)state;
        Config c;
        config_init(&c);
        RunResult *r = new_result();
        r->exit_code = 1;
        r->want_files = true;
        set_report(r, "{\"error\":{\"type\":\"ValueError\",\"message\":\"bad\","
                      "\"traceback\":\"tb\"},"
                      "\"result\":{\"text/plain\":\"1\"},"
                      "\"images\":[{\"format\":\"png\",\"width\":1,\"height\":2,\"data\":\"AA==\"}],"
                      "\"images_dropped\":3,\"files\":[{\"name\":\"a\",\"size\":0,\"encoding\":\"utf-8\","
                      "\"content\":\"\"}]}");
        r->report_done = false;

        json_t *j = answer(r, &c, 200);
        expect_answer_shape_with_files(j);
        assert_string_equal(str(j, "status"), "Error");
        assert_string_equal(error_field(j, "type"), "SystemExit");
        expect_no_results(j);
        expect_field(j, "files", "[]");

        /* the same report, complete, is used: the test above is not passing by accident */
        r->report_done = true;
        j = answer(r, &c, 200);
        assert_string_equal(error_field(j, "type"), "ValueError");
        expect_field(j, "images_dropped", "3");
        assert_int_equal(json_array_size(json_object_get(j, "files")), 1);
}

/* A report that went over its cap is malformed, even when what was kept parses. */
static void test_answer_report_over_cap_is_malformed(void **state) {
        (void)state;
        const char *rep = "{\"error\":{\"type\":\"ValueError\",\"message\":\"bad\","
                          "\"traceback\":\"tb\"},\"result\":{\"text/plain\":\"1\"},\"images_dropped\":3,"
                          "\"files\":[]}";
        Config c;
        config_init(&c);
        RunResult *r = new_result();
        r->exit_code = 1;
        r->want_files = true;
        buf_init(&r->report, strlen(rep));
        put(&r->report, rep, strlen(rep));
        put(&r->report, "  ", 2); /* over the cap: dropped and counted */
        r->report_done = true;
        assert_int_equal(r->report.len, strlen(rep));
        assert_int_equal(r->report.dropped, 2);

        json_t *j = answer(r, &c, 200);
        expect_answer_shape_with_files(j);
        assert_string_equal(error_field(j, "type"), "MalformedReport");
        assert_non_null(strstr(error_field(j, "message"), "cap"));
        expect_no_results(j);

        /* the kept text alone would have been used */
        r->report.dropped = 0;
        j = answer(r, &c, 200);
        assert_string_equal(error_field(j, "type"), "ValueError");
}

#define T(f) cmocka_unit_test_teardown(f, release_all)

/* The live flag goes in front of the members, the rest unchanged; not into what is not a
 * non-empty object. */
static void test_request_live(void **state) {
        (void)state;
        char *s = strdup("{\"code\":\"print(1)\",\"mode\":\"report\"}");
        size_t n = strlen(s);
        assert_int_equal(api_request_live(&s, &n), 0);
        assert_string_equal(s, "{\"live\":true,\"code\":\"print(1)\",\"mode\":\"report\"}");
        assert_int_equal(n, strlen(s));
        json_t *o = json_loads(s, 0, NULL);
        assert_non_null(o);
        assert_true(json_is_true(json_object_get(o, "live")));
        json_decref(o);
        free(s);
        s = strdup("{}");
        n = 2;
        assert_int_equal(api_request_live(&s, &n), -EINVAL);
        assert_string_equal(s, "{}");
        free(s);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                T(test_decode_valid),
                T(test_decode_invalid_json),
                T(test_decode_invalid_json_says_where),
                T(test_decode_invalid_utf8),
                T(test_decode_array_is_not_an_object),
                T(test_decode_scalar_is_not_an_object),
                T(test_decode_missing_code),
                T(test_decode_code_not_a_string),
                T(test_decode_empty_code),
                T(test_decode_unknown_field),
                T(test_decode_unknown_field_long_name),
                T(test_decode_small_why_buffer),
                T(test_decode_duplicate_keys),
                T(test_decode_nul_in_code),
                T(test_decode_raw_nul_in_body),
                T(test_decode_unicode_round_trips),
                T(test_decode_escapes_round_trip),
                T(test_decode_large_code),
                T(test_decode_deep_nesting),
                T(test_runner_request_round_trip),
                T(test_runner_request_uses_length),
                T(test_error_body),
                T(test_request_live),
                T(test_error_body_invalid_utf8),
                T(test_answer_success),
                T(test_answer_success_without_output),
                T(test_answer_nonzero_exit_without_report),
                T(test_answer_with_report),
                T(test_answer_report_empty_traceback),
                T(test_answer_malformed_report_is_named),
                T(test_answer_report_with_exit_zero),
                T(test_answer_killed_by_signal),
                T(test_answer_signal_with_report),
                T(test_answer_timeout),
                T(test_answer_memory_limit),
                T(test_answer_output_limit),
                T(test_answer_process_limit_with_signal),
                T(test_answer_process_limit_with_exit_code),
                T(test_answer_process_limit_with_report),
                T(test_answer_errno_notes),
                T(test_answer_timeout_names_key),
                T(test_answer_invalid_utf8_and_nul),
                T(test_answer_queue_timeout_and_shutdown),
                T(test_answer_internal),
                T(test_decode_stdin),
                T(test_decode_files_valid),
                T(test_decode_files_invalid),
                T(test_decode_files_long_name),
                T(test_decode_max_files),
                T(test_decode_max_files_bytes),
                T(test_decode_files_encoding_with_nul),
                T(test_decode_return_files),
                T(test_decode_return_files_invalid),
                T(test_decode_timeout),
                T(test_decode_timeout_invalid),
                T(test_decode_memory_mb),
                T(test_decode_image_format),
                T(test_decode_image_format_with_nul),
                T(test_decode_limits),
                T(test_decode_every_field),
                T(test_answer_data_results),
                T(test_answer_malformed_data_results),
                T(test_answer_report_caps),
                T(test_answer_files_only_when_asked),
                T(test_answer_incomplete_report_ignored),
                T(test_answer_report_over_cap_is_malformed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
