/* mcp: JSON-RPC parsing and dispatch edges (what the HTTP status and the error code are for each
 * kind of bad message, batches per revision, notifications, cancellation ids), tool calls
 * translated to /api bodies, and /api answers translated to tool results. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "config.h"
#include "mcp.h"
#include "pool.h"

static Config cfg;

static int setup(void **state) {
        (void)state;
        config_init(&cfg);
        return 0;
}

/* Handles text under rev; returns the answer's JSON (NULL for none) and fills *a. */
static json_t *handle(const char *text, McpRevision rev, McpAnswer *a) {
        assert_int_equal(mcp_handle(text, strlen(text), rev, true, &cfg, a), 0);
        json_t *j = a->body ? json_loads(a->body, JSON_DECODE_ANY, NULL) : NULL;
        free(a->body);
        a->body = NULL;
        return j;
}

static long long error_code(json_t *j) {
        return json_integer_value(json_object_get(json_object_get(j, "error"), "code"));
}

static void test_revisions(void **state) {
        (void)state;
        McpRevision r;
        assert_int_equal(mcp_revision_parse("2025-03-26", &r), 0);
        assert_int_equal(r, MCP_REV_2025_03_26);
        assert_int_equal(mcp_revision_parse("2025-11-25", &r), 0);
        assert_int_equal(r, MCP_REV_2025_11_25);
        assert_int_equal(mcp_revision_parse("2024-11-05", &r), -EINVAL);
        assert_int_equal(mcp_revision_parse("", &r), -EINVAL);
        assert_int_equal(mcp_revision_parse(NULL, &r), -EINVAL);
        assert_string_equal(mcp_revision_name(MCP_REV_2025_06_18), "2025-06-18");
}

static void test_bad_messages(void **state) {
        (void)state;
        static const struct {
                const char *text;
                unsigned status;
                long long code;
        } cases[] = {
                {"", 400, -32700},
                {"{", 400, -32700},
                {"{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":1,\"method\":\"ping\"}", 400, -32700},
                {"42", 400, -32600},
                {"null", 400, -32600},
                {"{\"id\":1,\"method\":\"ping\"}", 400, -32600},
                {"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}", 400, -32600},
                {"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", 400, -32600},
                {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":[]}", 400, -32600},
                {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"nope\"}", 200, -32601},
                {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":7}", 200, -32602},
                {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{}}", 200, -32602},
                {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}", 200,
                        -32602},
                {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}", 200, -32602},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                McpAnswer a;
                json_t *j = handle(cases[i].text, MCP_REV_2025_06_18, &a);
                assert_non_null(j);
                assert_int_equal(a.http_status, cases[i].status);
                assert_int_equal(error_code(j), cases[i].code);
                assert_null(a.call);
                json_decref(j);
        }
}

static void test_notifications_and_cancel(void **state) {
        (void)state;
        McpAnswer a;
        assert_null(handle(
                "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", MCP_REV_2025_06_18, &a));
        assert_int_equal(a.http_status, 202);
        assert_string_equal(a.cancel, "");
        assert_null(handle("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":"
                           "{\"requestId\":\"abc\",\"reason\":\"x\"}}",
                MCP_REV_2025_06_18, &a));
        assert_int_equal(a.http_status, 202);
        assert_string_equal(a.cancel, "\"abc\"");
        assert_null(handle("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":"
                           "{\"requestId\":7}}",
                MCP_REV_2025_06_18, &a));
        assert_string_equal(a.cancel, "7");
        /* A response from the client (this server asks nothing): dropped, 202. */
        assert_null(handle("{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}", MCP_REV_2025_06_18, &a));
        assert_int_equal(a.http_status, 202);
}

static void test_batches(void **state) {
        (void)state;
        const char *batch = "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"},"
                            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
                            "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":"
                            "{\"name\":\"run_python\",\"arguments\":{\"code\":\"1\"}}}]";
        McpAnswer a;
        json_t *j = handle(batch, MCP_REV_2025_03_26, &a);
        assert_int_equal(a.http_status, 200);
        assert_true(json_is_array(j));
        assert_int_equal(json_array_size(j), 2);
        assert_true(json_is_object(json_object_get(json_array_get(j, 0), "result")));
        assert_int_equal(error_code(json_array_get(j, 1)), -32600); /* tools/call runs alone */
        assert_null(a.call);
        json_decref(j);
        j = handle(batch, MCP_REV_2025_06_18, &a);
        assert_int_equal(a.http_status, 400);
        assert_int_equal(error_code(j), -32600);
        json_decref(j);
        assert_null(
                handle("[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"}]", MCP_REV_2025_03_26, &a));
        assert_int_equal(a.http_status, 202);
        j = handle("[]", MCP_REV_2025_03_26, &a);
        assert_int_equal(a.http_status, 400);
        json_decref(j);
}

static void test_initialize_and_tools_list(void **state) {
        (void)state;
        McpAnswer a;
        json_t *j = handle("{\"jsonrpc\":\"2.0\",\"id\":\"i\",\"method\":\"initialize\",\"params\":"
                           "{\"protocolVersion\":\"2025-03-26\"}}",
                MCP_REV_2025_03_26, &a);
        assert_string_equal(
                json_string_value(json_object_get(json_object_get(j, "result"), "protocolVersion")),
                "2025-03-26");
        json_decref(j);
        j = handle("{\"jsonrpc\":\"2.0\",\"id\":\"i\",\"method\":\"initialize\",\"params\":"
                   "{\"protocolVersion\":\"1999-01-01\"}}",
                MCP_REV_2025_03_26, &a);
        assert_string_equal(
                json_string_value(json_object_get(json_object_get(j, "result"), "protocolVersion")),
                "2025-11-25");
        json_decref(j);
        for (int rev = 0; rev < _MCP_REV_MAX; rev++) {
                j = handle("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", (McpRevision)rev, &a);
                json_t *tools = json_object_get(json_object_get(j, "result"), "tools");
                assert_int_equal(json_array_size(tools), 6);
                json_t *run = json_array_get(tools, 0);
                assert_string_equal(json_string_value(json_object_get(run, "name")), "run_python");
                assert_int_equal(json_object_get(run, "outputSchema") != NULL, rev >= MCP_REV_2025_06_18);
                assert_false(
                        json_is_true(json_object_get(json_object_get(run, "annotations"), "openWorldHint")));
                json_decref(j);
        }
}

static McpCall *call_of(const char *args, const char *meta) {
        char text[1024];
        snprintf(text, sizeof text,
                "{\"jsonrpc\":\"2.0\",\"id\":\"c1\",\"method\":\"tools/call\",\"params\":{%s\"name\":%s}}",
                meta, args);
        McpAnswer a;
        json_t *j = handle(text, MCP_REV_2025_11_25, &a);
        json_decref(j);
        return a.call;
}

static void test_calls_become_api_bodies(void **state) {
        (void)state;
        McpCall *c = call_of("\"run_python\",\"arguments\":{\"code\":\"print(1)\"}", "");
        assert_non_null(c);
        assert_false(c->session);
        assert_string_equal(c->id_text, "\"c1\"");
        assert_null(c->progress_token);
        /* No progress: the default timeout keeps the call under a client's 60 s. */
        json_t *b = json_loads(c->body, 0, NULL);
        assert_int_equal(json_integer_value(json_object_get(b, "timeout")),
                MCP_DEFAULT_TIMEOUT_SEC < cfg.timeout_sec ? MCP_DEFAULT_TIMEOUT_SEC : cfg.timeout_sec);
        json_decref(b);
        mcp_call_free(c);

        c = call_of("\"run_python\",\"arguments\":{\"code\":\"1\",\"session_id\":\"s-1\"}",
                "\"_meta\":{\"progressToken\":5},");
        assert_true(c->session);
        assert_int_equal(c->op, SOP_EXECUTE);
        assert_string_equal(c->session_id, "s-1");
        assert_int_equal(json_integer_value(c->progress_token), 5);
        b = json_loads(c->body, 0, NULL);
        assert_null(json_object_get(b, "session_id"));
        assert_null(json_object_get(b, "timeout")); /* progress: the server's own limit */
        json_decref(b);
        mcp_call_free(c);

        /* A progress token from a client that takes no SSE streams nothing: the default stays. */
        const char *no_sse =
                "{\"jsonrpc\":\"2.0\",\"id\":\"c1\",\"method\":\"tools/call\",\"params\":{\"_meta\":"
                "{\"progressToken\":5},\"name\":\"run_python\",\"arguments\":{\"code\":\"1\"}}}";
        McpAnswer a;
        assert_int_equal(mcp_handle(no_sse, strlen(no_sse), MCP_REV_2025_06_18, false, &cfg, &a), 0);
        b = json_loads(a.call->body, 0, NULL);
        assert_true(json_is_integer(json_object_get(b, "timeout")));
        json_decref(b);
        mcp_call_free(a.call);

        c = call_of("\"write_file\",\"arguments\":{\"session_id\":\"s\",\"path\":\"d/x.bin\",\"content\":"
                    "\"AAEC/w==\",\"encoding\":\"base64\"}",
                "");
        assert_int_equal(c->op, SOP_FILE_PUT);
        assert_string_equal(c->path, "d/x.bin");
        assert_int_equal(c->body_len, 4);
        assert_memory_equal(c->body, "\x00\x01\x02\xff", 4);
        mcp_call_free(c);

        c = call_of("\"close_session\",\"arguments\":{\"session_id\":\"s\"}", "");
        assert_int_equal(c->op, SOP_DELETE);
        mcp_call_free(c);
}

static void test_bad_arguments_are_tool_errors(void **state) {
        (void)state;
        static const char *const cases[] = {
                "\"run_python\",\"arguments\":{}",
                "\"run_python\",\"arguments\":{\"code\":1}",
                "\"run_python\",\"arguments\":{\"code\":\"1\",\"x\":1}",
                "\"read_file\",\"arguments\":{\"session_id\":\"s\",\"path\":\"/etc/passwd\"}",
                "\"read_file\",\"arguments\":{\"session_id\":\"s\",\"path\":\"a/../../b\"}",
                "\"list_files\",\"arguments\":{}",
                "\"write_file\",\"arguments\":{\"session_id\":\"s\",\"path\":\"a\",\"content\":\"x\","
                "\"encoding\":\"base64\"}",
                "\"write_file\",\"arguments\":{\"session_id\":\"s\",\"path\":\"a\",\"content\":\"x\","
                "\"encoding\":\"latin1\"}",
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                char text[512];
                snprintf(text, sizeof text,
                        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":%s}}",
                        cases[i]);
                McpAnswer a;
                json_t *j = handle(text, MCP_REV_2025_11_25, &a);
                assert_null(a.call);
                assert_int_equal(a.http_status, 200);
                assert_true(json_is_true(json_object_get(json_object_get(j, "result"), "isError")));
                json_decref(j);
        }
}

static json_t *result_of(McpCall *c, unsigned status, const char *body) {
        size_t n;
        char *s = mcp_call_result(c, status, body, body ? strlen(body) : 0, NULL, 0, false, &n);
        assert_non_null(s);
        json_t *j = json_loads(s, 0, NULL);
        free(s);
        assert_string_equal(json_string_value(json_object_get(j, "id")), "c1");
        json_t *r = json_incref(json_object_get(j, "result"));
        json_decref(j);
        return r;
}

static void test_answers_become_results(void **state) {
        (void)state;
        McpCall *c = call_of("\"run_python\",\"arguments\":{\"code\":\"1\",\"session_id\":\"s-9\"}", "");
        json_t *r = result_of(c, 410,
                "{\"status\":\"Error\",\"output\":\"gone\",\"error\":{\"type\":\"SessionGone\",\"message\":"
                "\"gone\",\"reason\":\"idle_timeout\"}}");
        assert_true(json_is_true(json_object_get(r, "isError")));
        const char *t =
                json_string_value(json_object_get(json_array_get(json_object_get(r, "content"), 0), "text"));
        assert_non_null(strstr(t, "s-9 is gone (idle_timeout)"));
        assert_non_null(strstr(t, "create_session"));
        json_decref(r);

        /* Long output is cut at MCP_TEXT_MAX with a note; images are capped at MCP_IMAGES_MAX. */
        size_t big = MCP_TEXT_MAX + 1000;
        char *out = malloc(big + 1);
        memset(out, 'x', big);
        out[big] = 0;
        json_t *ans = json_pack("{ss ss si s[{ss ss}{ss ss}{ss ss}{ss ss}{ss ss}{ss ss}]}", "status",
                "Success", "output", out, "exit_code", 0, "images", "format", "png", "data",
                "AA==", "format", "svg", "data", "AA==", "format", "png", "data", "AA==", "format", "png",
                "data", "AA==", "format", "png", "data", "AA==", "format", "png", "data", "AA==");
        char *body = json_dumps(ans, 0);
        r = result_of(c, 200, body);
        json_t *content = json_object_get(r, "content");
        assert_int_equal(json_array_size(content), 1 + MCP_IMAGES_MAX);
        t = json_string_value(json_object_get(json_array_get(content, 0), "text"));
        assert_non_null(strstr(t, "[... 1000 more bytes cut"));
        assert_string_equal(
                json_string_value(json_object_get(json_array_get(content, 2), "mimeType")), "image/svg+xml");
        assert_int_equal(json_integer_value(
                                 json_object_get(json_object_get(r, "structuredContent"), "images_dropped")),
                2);
        assert_false(json_is_true(json_object_get(r, "isError")));
        json_decref(r);
        free(body);
        json_decref(ans);
        free(out);
        mcp_call_free(c);
}

static void test_progress_event(void **state) {
        (void)state;
        McpCall *c = call_of(
                "\"run_python\",\"arguments\":{\"code\":\"1\"}", "\"_meta\":{\"progressToken\":\"p\"},");
        size_t n;
        char *ev = mcp_progress_event(c, "ab", 2, &n);
        assert_string_equal(ev, "event: message\ndata: "
                                "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":"
                                "{\"progressToken\":\"p\",\"progress\":2,\"message\":\"ab\"}}\n\n");
        assert_int_equal(n, strlen(ev));
        free(ev);
        ev = mcp_progress_event(c, "c", 1, &n);
        assert_non_null(strstr(ev, "\"progress\":3"));
        free(ev);
        mcp_call_free(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_revisions),
                cmocka_unit_test(test_bad_messages),
                cmocka_unit_test(test_notifications_and_cancel),
                cmocka_unit_test(test_batches),
                cmocka_unit_test(test_initialize_and_tools_list),
                cmocka_unit_test(test_calls_become_api_bodies),
                cmocka_unit_test(test_bad_arguments_are_tool_errors),
                cmocka_unit_test(test_answers_become_results),
                cmocka_unit_test(test_progress_event),
        };
        return cmocka_run_group_tests(tests, setup, NULL);
}
