/* The Model Context Protocol over Streamable HTTP, the message half: JSON-RPC 2.0 parsing and
 * checks, the lifecycle methods (initialize, ping, notifications), tools/list and the
 * translation of tools/call to and from the /api endpoints.
 *
 * A tool call is not run here: it becomes the body the /api endpoint would have received
 * (run_python: /api/execute's or a cell's; create_session: POST /api/sessions'; write_file: the
 * file's bytes), which http.c decodes, checks and runs with that endpoint's own code, so every
 * limit and check of the REST API applies unchanged. The REST answer (status and JSON) comes
 * back to mcp_call_result, which turns it into a CallToolResult: a program's failure or a
 * session's error is a result with isError and a sentence the model can act on; only a message
 * that is not a valid call (unknown tool, params not an object) is a JSON-RPC error.
 *
 * The server keeps no protocol state between requests: no Mcp-Session-Id, so any instance
 * behind a balancer can answer any request; the revision of a request is its
 * MCP-Protocol-Version header (2025-03-26 when absent, as the transport spec says). */
#include "mcp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "stream.h"
#include "upload.h"
#include "util/buf.h"
#include "util/macro.h"
#include "util/str.h"
#include "util/utf8.h"

#define JSONRPC_PARSE_ERROR (-32700)
#define JSONRPC_INVALID_REQUEST (-32600)
#define JSONRPC_METHOD_NOT_FOUND (-32601)
#define JSONRPC_INVALID_PARAMS (-32602)

static const char *const revision_names[_MCP_REV_MAX] = {
        [MCP_REV_2025_03_26] = "2025-03-26",
        [MCP_REV_2025_06_18] = "2025-06-18",
        [MCP_REV_2025_11_25] = "2025-11-25",
};

static const char *const tool_names[_MCP_TOOL_MAX] = {
        [MCP_TOOL_RUN_PYTHON] = "run_python",
        [MCP_TOOL_CREATE_SESSION] = "create_session",
        [MCP_TOOL_CLOSE_SESSION] = "close_session",
        [MCP_TOOL_LIST_FILES] = "list_files",
        [MCP_TOOL_READ_FILE] = "read_file",
        [MCP_TOOL_WRITE_FILE] = "write_file",
};

const char *mcp_revision_name(McpRevision r) {
        return r < _MCP_REV_MAX ? revision_names[r] : "?";
}

int mcp_revision_parse(const char *s, McpRevision *ret) {
        for (int r = 0; s && r < _MCP_REV_MAX; r++)
                if (strcmp(s, revision_names[r]) == 0) {
                        *ret = (McpRevision)r;
                        return 0;
                }
        return -EINVAL;
}

McpCall *mcp_call_free(McpCall *call) {
        if (!call)
                return NULL;
        json_decref(call->id);
        json_decref(call->progress_token);
        free(call->body);
        free(call);
        return NULL;
}

static char *dump(json_t *o, size_t *ret_len) {
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (s && ret_len)
                *ret_len = strlen(s);
        return s;
}

static json_t *error_object(json_t *id, int code, const char *msg) {
        return json_pack("{ss sO s{si ss}}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error", "code",
                code, "message", msg);
}

char *mcp_error(json_t *id, int code, const char *msg, size_t *ret_len) {
        return dump(error_object(id, code, msg), ret_len);
}

static json_t *result_object(json_t *id, json_t *result) {
        return result ? json_pack("{ss sO so}", "jsonrpc", "2.0", "id", id, "result", result) : NULL;
}

/* ---- tools/list ---- */

static json_t *prop(const char *type, const char *description) {
        return json_pack("{ss ss}", "type", type, "description", description);
}

/* Annotations: nothing a tool does reaches outside the sandbox (openWorldHint false); running
 * code or writing a file changes state; run_python is not idempotent. */
static json_t *annotations(const char *title, bool read_only, bool destructive, bool idempotent) {
        return json_pack("{ss sb sb sb sb}", "title", title, "readOnlyHint", read_only, "destructiveHint",
                destructive, "idempotentHint", idempotent, "openWorldHint", 0);
}

static json_t *session_prop(void) {
        return prop("string", "A session's id from create_session.");
}

static json_t *tool(McpRevision rev, const char *name, const char *title, const char *description,
        json_t *props, const char *required[], json_t *output, json_t *annot) {
        json_t *req = json_array();
        for (size_t i = 0; required && required[i]; i++)
                json_array_append_new(req, json_string(required[i]));
        json_t *t = json_pack("{ss ss s{ss so so sb} so}", "name", name, "description", description,
                "inputSchema", "type", "object", "properties", props, "required", req,
                "additionalProperties", 0, "annotations", annot);
        if (t && rev >= MCP_REV_2025_06_18) {
                json_object_set_new(t, "title", json_string(title));
                if (output)
                        json_object_set_new(t, "outputSchema", output);
                output = NULL;
        }
        json_decref(output);
        return t;
}

/* The structured result of run_python: loose on purpose (types only, no required members but
 * status), so that what a newer server adds does not break a client that validates. */
static json_t *run_output_schema(void) {
        return json_pack(
                "{ss s{s{ss} s{s[ss]} s{s[ss]} s{s[ss]} s{ss} s{ss} s{ss} s{ss} s{s[ss]} s{s[ss]} s{ss}} "
                "s[s]}",
                "type", "object", "properties", "status", "type", "string", "exit_code", "type", "integer",
                "null", "error", "type", "object", "null", "result", "type", "string", "null", "truncated",
                "type", "boolean", "files", "type", "array", "images", "type", "integer", "images_dropped",
                "type", "integer", "session_id", "type", "string", "null", "execution_count", "type",
                "integer", "null", "duration_ms", "type", "integer", "required", "status");
}

static json_t *tools_list(McpRevision rev, const Config *c) {
        char run_desc[1024];
        snprintf(run_desc, sizeof run_desc,
                "Runs Python 3 code in a sealed sandbox and returns what it printed (stdout and stderr), "
                "the value of a last expression, the traceback of an exception and each matplotlib figure "
                "as an image. Preinstalled: the standard library and %s. There is no network: pip install "
                "and downloads fail. Time limit: %u seconds per call (argument timeout, default %u). "
                "Without session_id every call starts fresh: no variable, import or file survives it; "
                "pass the session_id of create_session to keep state between calls. Files are under "
                "/work (the working directory).",
                c->preinstall_libs, c->timeout_sec, MIN(c->timeout_sec, (unsigned)MCP_DEFAULT_TIMEOUT_SEC));
        json_t *files_item = json_pack("{ss s{s{ss} s{ss} s{ss s[ss]}} s[ss]}", "type", "object",
                "properties", "name", "type", "string", "content", "type", "string", "encoding", "type",
                "string", "enum", "utf-8", "base64", "required", "name", "content");
        json_t *run_props = json_pack("{so so so so s{ss ss so} s{s[ss] ss s{ss}}}", "code",
                prop("string", "The Python code to run."), "session_id",
                prop("string", "Run in this session (create_session): its variables and files stay."),
                "timeout", prop("number", "Seconds the code may run."), "stdin",
                prop("string", "Text the program reads from standard input."), "files", "type", "array",
                "description", "Files to write into /work before the code runs.", "items", files_item,
                "return_files", "type", "boolean", "array", "description",
                "true, or glob patterns: files of /work to return (names and sizes).", "items", "type",
                "string");
        static const char *run_req[] = {"code", NULL};
        static const char *sid_req[] = {"session_id", NULL};
        static const char *read_req[] = {"session_id", "path", NULL};
        static const char *write_req[] = {"session_id", "path", "content", NULL};
        char create_desc[512];
        snprintf(create_desc, sizeof create_desc,
                "Starts a session: a sandbox that keeps Python variables, imports and files in /work "
                "between run_python calls that pass its session_id. It ends after idle_timeout seconds "
                "without a call (default and largest %u), at the latest after %u seconds, or at "
                "close_session.",
                c->session_idle_timeout_sec, c->session_max_lifetime_sec);
        json_t *tools = json_pack("[ooooo o]",
                tool(rev, "run_python", "Run Python", run_desc, run_props, run_req, run_output_schema(),
                        annotations("Run Python", false, false, false)),
                tool(rev, "create_session", "Create a session", create_desc,
                        json_pack("{so}", "idle_timeout",
                                prop("integer", "Seconds the session may stay idle before it ends.")),
                        NULL,
                        json_pack("{ss s{s{ss}} s[s]}", "type", "object", "properties", "session_id", "type",
                                "string", "required", "session_id"),
                        annotations("Create a session", false, false, false)),
                tool(rev, "close_session", "Close a session",
                        "Ends a session and frees its sandbox; its variables and files are lost.",
                        json_pack("{so}", "session_id", session_prop()), sid_req, NULL,
                        annotations("Close a session", false, true, true)),
                tool(rev, "list_files", "List a session's files",
                        "Lists the files under /work of a session, with their sizes.",
                        json_pack("{so}", "session_id", session_prop()), sid_req, NULL,
                        annotations("List files", true, false, true)),
                tool(rev, "read_file", "Read a session's file",
                        "Returns a file of a session's /work: text as text, a PNG, JPEG or GIF as an image, "
                        "anything else as a base64 resource.",
                        json_pack("{so so}", "session_id", session_prop(), "path",
                                prop("string", "The file's path, relative to /work.")),
                        read_req, NULL, annotations("Read a file", true, false, true)),
                tool(rev, "write_file", "Write a session's file",
                        "Writes a file into a session's /work (replacing one of the same path).",
                        json_pack("{so so so s{ss s[ss] ss}}", "session_id", session_prop(), "path",
                                prop("string", "The file's path, relative to /work."), "content",
                                prop("string", "The file's content."), "encoding", "type", "string", "enum",
                                "utf-8", "base64", "description", "How content is encoded (default utf-8)."),
                        write_req, NULL, annotations("Write a file", false, true, true)));
        return tools ? json_pack("{so}", "tools", tools) : NULL;
}

/* ---- tools/call ---- */

/* A CallToolResult that is a tool error (isError), for arguments the tool cannot use: the
 * 2025-11-25 revision asks for this rather than a protocol error, so that the model sees it. */
static json_t *tool_error(const char *msg) {
        return json_pack("{s[{ssss}] sb}", "content", "type", "text", "text", msg, "isError", 1);
}

/* A string argument: NULL when absent; when present and not a string, *bad is set. */
static const char *str_arg(json_t *args, const char *name, bool *bad) {
        json_t *v = json_object_get(args, name);
        if (v && !json_is_string(v))
                *bad = true;
        return json_string_value(v);
}

/* Checks args against the tool's fields; fills call. Returns NULL (call ready) or a tool error
 * result to answer at once. */
static json_t *prepare_call(McpCall *call, json_t *args, const Config *c, bool progress) {
        char msg[512];
        bool bad = false;
        const char *sid = str_arg(args, "session_id", &bad);
        const char *path = str_arg(args, "path", &bad);
        if (bad)
                return tool_error("arguments session_id and path must be strings");
        if (sid) {
                if (strlen(sid) == 0 || strlen(sid) >= sizeof call->session_id)
                        return tool_error("session_id is not a session's id: call create_session for one");
                snprintf(call->session_id, sizeof call->session_id, "%s", sid);
        }
        const char *key;
        json_t *v;
        json_object_foreach(args, key, v) {
                static const char *const allowed[_MCP_TOOL_MAX][8] = {
                        [MCP_TOOL_RUN_PYTHON] = {"code", "session_id", "timeout", "stdin", "files",
                                "return_files", NULL},
                        [MCP_TOOL_CREATE_SESSION] = {"idle_timeout", NULL},
                        [MCP_TOOL_CLOSE_SESSION] = {"session_id", NULL},
                        [MCP_TOOL_LIST_FILES] = {"session_id", NULL},
                        [MCP_TOOL_READ_FILE] = {"session_id", "path", NULL},
                        [MCP_TOOL_WRITE_FILE] = {"session_id", "path", "content", "encoding", NULL},
                };
                bool ok = false;
                for (size_t i = 0; allowed[call->tool][i] && !ok; i++)
                        ok = strcmp(key, allowed[call->tool][i]) == 0;
                if (!ok) {
                        snprintf(msg, sizeof msg, "unknown argument \"%.100s\" of %s", key,
                                tool_names[call->tool]);
                        return tool_error(msg);
                }
        }
        bool needs_session = call->tool != MCP_TOOL_RUN_PYTHON && call->tool != MCP_TOOL_CREATE_SESSION;
        if (needs_session && !sid) {
                snprintf(msg, sizeof msg, "%s needs session_id (from create_session)",
                        tool_names[call->tool]);
                return tool_error(msg);
        }
        if ((call->tool == MCP_TOOL_READ_FILE || call->tool == MCP_TOOL_WRITE_FILE)) {
                char why[160];
                if (!path || upload_check_name(path, strlen(path), why, sizeof why) < 0 ||
                        strlen(path) >= sizeof call->path) {
                        snprintf(msg, sizeof msg, "path must be a relative path under /work: %s",
                                path ? why : "missing");
                        return tool_error(msg);
                }
                snprintf(call->path, sizeof call->path, "%s", path);
        }
        call->session = call->tool != MCP_TOOL_RUN_PYTHON || sid;
        switch (call->tool) {
        case MCP_TOOL_RUN_PYTHON: {
                if (!json_is_string(json_object_get(args, "code")))
                        return tool_error("run_python needs code, a string of Python");
                /* The arguments are /api/execute's fields: its decoder judges them. */
                _cleanup_json_ json_t *b = json_deep_copy(args);
                if (!b)
                        return NULL;
                json_object_del(b, "session_id");
                if (!json_object_get(b, "timeout") && !progress)
                        json_object_set_new(b, "timeout",
                                json_integer(MIN(c->timeout_sec, (unsigned)MCP_DEFAULT_TIMEOUT_SEC)));
                call->op = SOP_EXECUTE;
                call->body = json_dumps(b, JSON_COMPACT);
                break;
        }
        case MCP_TOOL_CREATE_SESSION:
                call->op = SOP_CREATE;
                call->body = json_dumps(args, JSON_COMPACT);
                break;
        case MCP_TOOL_CLOSE_SESSION:
                call->op = SOP_DELETE;
                call->body = strdup("");
                break;
        case MCP_TOOL_LIST_FILES:
                call->op = SOP_FILES_LIST;
                call->body = strdup("");
                break;
        case MCP_TOOL_READ_FILE:
                call->op = SOP_FILE_GET;
                call->body = strdup("");
                break;
        case MCP_TOOL_WRITE_FILE: {
                const char *content = str_arg(args, "content", &bad);
                const char *enc = str_arg(args, "encoding", &bad);
                if (!content || bad)
                        return tool_error("write_file needs content, a string");
                size_t n = json_string_length(json_object_get(args, "content"));
                if (enc && strcmp(enc, "base64") == 0) {
                        int r = upload_base64_decode(content, n, &call->body, &call->body_len);
                        if (r == -EINVAL)
                                return tool_error("content is not strict base64 (padded, no whitespace)");
                        if (r < 0)
                                return NULL;
                        call->op = SOP_FILE_PUT;
                        return NULL;
                }
                if (enc && strcmp(enc, "utf-8") != 0)
                        return tool_error("encoding must be utf-8 or base64");
                call->op = SOP_FILE_PUT;
                call->body = malloc(n + 1);
                if (call->body) {
                        memcpy(call->body, content, n + 1);
                        call->body_len = n;
                }
                return NULL;
        }
        default:
                break;
        }
        if (call->body && !call->body_len)
                call->body_len = strlen(call->body);
        return NULL;
}

/* tools/call: a call to run (*ret_call), or a result or error to answer at once. */
static json_t *tools_call(
        json_t *id, json_t *params, McpRevision rev, bool sse, const Config *c, McpCall **ret_call) {
        json_t *name = json_object_get(params, "name");
        json_t *args = json_object_get(params, "arguments");
        if (!json_is_string(name))
                return error_object(
                        id, JSONRPC_INVALID_PARAMS, "tools/call needs params.name, a tool's name");
        if (args && !json_is_object(args))
                return error_object(id, JSONRPC_INVALID_PARAMS, "params.arguments must be an object");
        int t = 0;
        while (t < _MCP_TOOL_MAX && strcmp(json_string_value(name), tool_names[t]) != 0)
                t++;
        if (t == _MCP_TOOL_MAX) {
                char msg[200];
                snprintf(msg, sizeof msg, "Unknown tool: %.100s (see tools/list)", json_string_value(name));
                return error_object(id, JSONRPC_INVALID_PARAMS, msg);
        }
        _cleanup_json_ json_t *empty = json_object();
        McpCall *call = calloc(1, sizeof *call);
        if (!call || !empty) {
                free(call);
                return NULL;
        }
        call->rev = rev;
        call->tool = (McpTool)t;
        call->id = json_incref(id);
        char *idt = json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(call->id_text, sizeof call->id_text, "%s", idt ? idt : "");
        free(idt);
        json_t *tok = json_object_get(json_object_get(params, "_meta"), "progressToken");
        if (json_is_string(tok) || json_is_integer(tok))
                call->progress_token = json_incref(tok);
        json_t *err = prepare_call(call, args ? args : empty, c, sse && call->progress_token);
        if (err) {
                mcp_call_free(call);
                return result_object(id, err);
        }
        if (!call->body) {
                mcp_call_free(call);
                return NULL;
        }
        *ret_call = call;
        return NULL;
}

/* ---- messages ---- */

static json_t *initialize(json_t *id, json_t *params) {
        json_t *v = json_object_get(params, "protocolVersion");
        if (!json_is_string(v))
                return error_object(id, JSONRPC_INVALID_PARAMS, "initialize needs params.protocolVersion");
        /* The client's revision when answered here, else the newest (the client then decides). */
        McpRevision r;
        if (mcp_revision_parse(json_string_value(v), &r) < 0)
                r = MCP_REV_NEWEST;
        return result_object(
                id, json_pack("{ss s{s{sb}} s{ss ss} ss}", "protocolVersion", revision_names[r],
                            "capabilities", "tools", "listChanged", 0, "serverInfo", "name", "snakebox",
                            "version", "1.0.0", "instructions",
                            "snakebox runs Python in sealed sandboxes. run_python runs code (fresh each "
                            "call, or "
                            "in a session from create_session, which keeps variables and files until "
                            "close_session or its idle timeout)."));
}

/* One message. Returns the response (a new reference), NULL for none (a notification or a
 * response), or NULL with *oom on out-of-memory. */
static json_t *one_message(
        json_t *m, McpRevision rev, bool in_batch, bool sse, const Config *c, McpAnswer *ret, bool *oom) {
        if (!json_is_object(m))
                return error_object(NULL, JSONRPC_INVALID_REQUEST, "a JSON-RPC message must be an object");
        json_t *id = json_object_get(m, "id");
        json_t *method = json_object_get(m, "method");
        json_t *params = json_object_get(m, "params");
        if (!json_is_string(json_object_get(m, "jsonrpc")) ||
                strcmp(json_string_value(json_object_get(m, "jsonrpc")), "2.0") != 0)
                return error_object(json_is_string(id) || json_is_integer(id) ? id : NULL,
                        JSONRPC_INVALID_REQUEST, "jsonrpc must be \"2.0\"");
        if (!method && (json_object_get(m, "result") || json_object_get(m, "error")))
                return NULL; /* a response: this server asks the client nothing, so it is dropped */
        if (!json_is_string(method))
                return error_object(json_is_string(id) || json_is_integer(id) ? id : NULL,
                        JSONRPC_INVALID_REQUEST, "method must be a string");
        if (id && !json_is_string(id) && !json_is_integer(id))
                return error_object(NULL, JSONRPC_INVALID_REQUEST, "id must be a string or an integer");
        if (params && !json_is_object(params))
                return id ? error_object(id, JSONRPC_INVALID_PARAMS, "params must be an object") : NULL;
        const char *meth = json_string_value(method);
        if (!id) {
                /* Notifications get no answer; the one that matters here is a cancellation. */
                if (strcmp(meth, "notifications/cancelled") == 0) {
                        json_t *rid = json_object_get(params, "requestId");
                        char *t = rid && (json_is_string(rid) || json_is_integer(rid))
                                          ? json_dumps(rid, JSON_COMPACT | JSON_ENCODE_ANY)
                                          : NULL;
                        if (t)
                                snprintf(ret->cancel, sizeof ret->cancel, "%s", t);
                        free(t);
                }
                return NULL;
        }
        json_t *r;
        if (strcmp(meth, "initialize") == 0) {
                if (in_batch)
                        return error_object(
                                id, JSONRPC_INVALID_REQUEST, "initialize must not be in a batch");
                r = initialize(id, params);
        } else if (strcmp(meth, "ping") == 0)
                r = result_object(id, json_object());
        else if (strcmp(meth, "tools/list") == 0)
                r = result_object(id, tools_list(rev, c));
        else if (strcmp(meth, "tools/call") == 0) {
                if (in_batch)
                        return error_object(id, JSONRPC_INVALID_REQUEST,
                                "tools/call must be sent alone, not in a batch, on this server");
                json_t *empty = json_object();
                r = tools_call(id, params ? params : empty, rev, sse, c, &ret->call);
                json_decref(empty);
                if (!r && ret->call)
                        return NULL;
        } else {
                char msg[160];
                snprintf(msg, sizeof msg, "Method not found: %.100s", meth);
                r = error_object(id, JSONRPC_METHOD_NOT_FOUND, msg);
        }
        if (!r)
                *oom = true;
        return r;
}

int mcp_handle(const char *body, size_t len, McpRevision rev, bool sse, const Config *c, McpAnswer *ret) {
        *ret = (McpAnswer){.http_status = 200};
        json_error_t jerr;
        /* Bounded: the body is at most MAX_REQUEST_BYTES, and jansson's depth limit applies. */
        _cleanup_json_ json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        json_t *out = NULL;
        bool oom = false;
        if (!root) {
                char msg[256];
                snprintf(msg, sizeof msg, "Parse error: %s", jerr.text);
                ret->http_status = 400;
                out = error_object(NULL, JSONRPC_PARSE_ERROR, msg);
        } else if (json_is_array(root)) {
                /* JSON-RPC batches were part of the 2025-03-26 revision only. */
                if (rev != MCP_REV_2025_03_26) {
                        ret->http_status = 400;
                        out = error_object(NULL, JSONRPC_INVALID_REQUEST,
                                "batches are not part of this protocol revision: send one message per "
                                "request");
                } else if (json_array_size(root) == 0 || json_array_size(root) > MCP_BATCH_MAX) {
                        ret->http_status = 400;
                        out = error_object(
                                NULL, JSONRPC_INVALID_REQUEST, "a batch must hold 1 to 32 messages");
                } else {
                        out = json_array();
                        size_t i;
                        json_t *m;
                        json_array_foreach(root, i, m) {
                                json_t *r = one_message(m, rev, true, sse, c, ret, &oom);
                                if (r)
                                        json_array_append_new(out, r);
                        }
                        if (out && json_array_size(out) == 0) {
                                json_decref(out);
                                out = NULL;
                                ret->http_status = 202;
                        }
                }
        } else {
                out = one_message(root, rev, false, sse, c, ret, &oom);
                /* A message that is not valid JSON-RPC is a bad HTTP request too; an error of a
                 * valid request (unknown method, bad params) is an answer like any other. */
                json_t *code = json_object_get(json_object_get(out, "error"), "code");
                if (json_integer_value(code) == JSONRPC_INVALID_REQUEST)
                        ret->http_status = 400;
                else if (!out && !ret->call && !oom)
                        ret->http_status = 202;
        }
        if (oom) {
                json_decref(out);
                ret->call = mcp_call_free(ret->call);
                return -ENOMEM;
        }
        if (out) {
                ret->body = dump(out, &ret->body_len);
                if (!ret->body)
                        return -ENOMEM;
        }
        return 0;
}

/* ---- results ---- */

/* text (n bytes) into a text block, cut at MCP_TEXT_MAX with a note of what was cut. */
static json_t *text_block(const char *text, size_t n) {
        char note[160] = "";
        if (n > MCP_TEXT_MAX) {
                size_t keep = MCP_TEXT_MAX;
                while (keep > 0 && ((unsigned char)text[keep] & 0xc0) == 0x80)
                        keep--;
                snprintf(note, sizeof note,
                        "\n[... %zu more bytes cut: write long output to a file and read what you need]",
                        n - keep);
                n = keep;
        }
        _cleanup_free_ char *s = malloc(n + strlen(note) + 1);
        if (!s)
                return NULL;
        memcpy(s, text, n);
        memcpy(s + n, note, strlen(note) + 1);
        return json_pack("{ss ss%}", "type", "text", "text", s, n + strlen(note));
}

static json_t *call_result(const McpCall *call, json_t *content, json_t *structured, bool is_error) {
        json_t *r = json_pack("{so sb}", "content", content, "isError", is_error);
        if (r && structured && call->rev >= MCP_REV_2025_06_18)
                json_object_set(r, "structuredContent", structured);
        json_decref(structured);
        return r;
}

/* What the model is told about a session error of the REST API (a 4xx or 5xx body). */
static json_t *session_error_result(const McpCall *call, unsigned status, json_t *ans) {
        json_t *err = json_object_get(ans, "error");
        const char *type = json_string_value(json_object_get(err, "type"));
        const char *reason = json_string_value(json_object_get(err, "reason"));
        const char *m = json_string_value(json_object_get(err, "message"));
        if (!m)
                m = json_string_value(json_object_get(ans, "output"));
        char msg[1024];
        const char *sid = call->session_id;
        if (type && strcmp(type, "SessionGone") == 0)
                snprintf(msg, sizeof msg,
                        "Session %s is gone (%s): its variables and files are lost. Call create_session and "
                        "re-run your setup code.",
                        sid, reason ? reason : "ended");
        else if (type && strcmp(type, "SessionNotFound") == 0)
                snprintf(msg, sizeof msg,
                        "Session %s is unknown to this server. Call create_session for a new one and "
                        "re-run your setup code.",
                        sid);
        else if (type && strcmp(type, "SessionBusy") == 0)
                snprintf(msg, sizeof msg,
                        "Session %s is busy with another call. Wait for that call to finish, then retry.",
                        sid);
        else
                snprintf(msg, sizeof msg, "%s%s(HTTP %u)", m ? m : "error", m ? " " : "", status);
        json_t *structured = json_pack("{ss s{ss* ss* ss} s[] ss* si}", "status", "Error", "error", "type",
                type, "reason", reason, "message", msg, "files", "session_id", sid[0] ? sid : NULL,
                "http_status", (int)status);
        size_t n = strlen(msg);
        return call_result(call, json_pack("[o]", text_block(msg, n)), structured, true);
}

static json_t *run_result(const McpCall *call, json_t *ans) {
        const char *status = json_string_value(json_object_get(ans, "status"));
        bool ok = status && strcmp(status, "Success") == 0;
        json_t *out = json_object_get(ans, "output");
        json_t *result = json_object_get(ans, "result");
        const char *res_text = json_string_value(json_object_get(result, "text/plain"));
        json_t *error = json_object_get(ans, "error");
        /* The text block: output (stdout and stderr in order, with the traceback and why the run
         * stopped), then the value of the last expression. */
        _cleanup_free_ char *text = NULL;
        size_t olen = json_string_length(out), rlen = res_text ? strlen(res_text) : 0;
        text = malloc(olen + rlen + 64);
        if (!text)
                return NULL;
        size_t k = 0;
        if (olen) {
                memcpy(text, json_string_value(out), olen);
                k = olen;
        }
        if (res_text) {
                if (k && text[k - 1] != '\n')
                        text[k++] = '\n';
                memcpy(text + k, res_text, rlen + 1);
                k += rlen;
        }
        if (!k) {
                snprintf(text, olen + rlen + 64, "%s",
                        ok ? "(no output)" : "(the program failed without output)");
                k = strlen(text);
        }
        json_t *content = json_array();
        json_array_append_new(content, text_block(text, k));
        json_t *images = json_object_get(ans, "images"), *img;
        size_t i, nimg = 0;
        json_array_foreach(images, i, img) {
                const char *fmt = json_string_value(json_object_get(img, "format"));
                json_t *data = json_object_get(img, "data");
                if (nimg >= MCP_IMAGES_MAX || !fmt || !json_is_string(data))
                        continue;
                json_array_append_new(
                        content, json_pack("{ss sO ss}", "type", "image", "data", data, "mimeType",
                                         strcmp(fmt, "svg") == 0 ? "image/svg+xml" : "image/png"));
                nimg++;
        }
        json_t *files = json_array(), *f;
        json_array_foreach(json_object_get(ans, "files"), i, f) {
                json_t *name = json_object_get(f, "name"), *size = json_object_get(f, "size");
                if (json_is_string(name))
                        json_array_append_new(files, json_pack("{sO sO}", "name", name, "size",
                                                             json_is_integer(size) ? size : json_null()));
        }
        json_t *session = json_object_get(ans, "session");
        json_t *count = json_object_get(ans, "execution_count");
        json_t *structured = json_pack("{ss sO sO so sO so si sI so sO sI}", "status",
                ok ? "Success" : "Error", "exit_code",
                json_object_get(ans, "exit_code") ? json_object_get(ans, "exit_code") : json_null(), "error",
                json_is_object(error) ? error : json_null(), "result",
                res_text ? json_string(res_text) : json_null(), "truncated",
                json_is_true(json_object_get(ans, "truncated")) ? json_true() : json_false(), "files", files,
                "images", (int)nimg, "images_dropped",
                (json_int_t)(json_array_size(images) - nimg +
                             (json_int_t)json_integer_value(json_object_get(ans, "images_dropped"))),
                "session_id", call->session_id[0] ? json_string(call->session_id) : json_null(),
                "execution_count", json_is_integer(count) ? count : json_null(), "duration_ms",
                (json_int_t)json_integer_value(json_object_get(ans, "duration_ms")));
        if (structured && json_is_object(session))
                json_object_set(structured, "session", session);
        return call_result(call, content, structured, !ok);
}

static bool is_text(const char *p, size_t n) {
        if (memchr(p, 0, n))
                return false;
        size_t m;
        char *clean = utf8_sanitize(p, n, &m);
        bool same = clean && m == n && memcmp(clean, p, n) == 0;
        free(clean);
        return same;
}

static json_t *file_result(const McpCall *call, const char *file, size_t n, bool truncated) {
        static const struct {
                const char *magic;
                size_t len;
                const char *mime;
        } images[] = {
                {"\x89PNG\r\n\x1a\n", 8, "image/png"},
                {"\xff\xd8\xff", 3, "image/jpeg"},
                {"GIF8", 4, "image/gif"},
        };
        json_t *content = json_array();
        if (!content)
                return NULL;
        const char *mime = NULL;
        for (size_t i = 0; i < ELEMENTSOF(images) && !truncated; i++)
                if (n >= images[i].len && memcmp(file, images[i].magic, images[i].len) == 0)
                        mime = images[i].mime;
        if (!mime && is_text(file, n))
                json_array_append_new(content, text_block(file, n));
        else {
                _cleanup_free_ char *b64 = base64_encode(file, n);
                if (!b64) {
                        json_decref(content);
                        return NULL;
                }
                if (mime)
                        json_array_append_new(content,
                                json_pack("{ss ss ss}", "type", "image", "data", b64, "mimeType", mime));
                else {
                        char uri[700];
                        snprintf(uri, sizeof uri, "snakebox://sessions/%s/files/%s", call->session_id,
                                call->path);
                        json_array_append_new(
                                content, json_pack("{ss s{ss ss ss}}", "type", "resource", "resource", "uri",
                                                 uri, "mimeType", "application/octet-stream", "blob", b64));
                }
        }
        if (truncated) {
                char note[200];
                snprintf(note, sizeof note,
                        "[%s: only the first %zu bytes are shown; read the rest with run_python]",
                        call->path, n);
                json_array_append_new(content, json_pack("{ss ss}", "type", "text", "text", note));
        }
        return call_result(call, content, NULL, false);
}

char *mcp_call_result(const McpCall *call, unsigned status, const char *body, size_t len, const char *file,
        size_t file_len, bool truncated, size_t *ret_len) {
        _cleanup_json_ json_t *ans = body && len ? json_loadb(body, len, 0, NULL) : NULL;
        json_t *res = NULL;
        char msg[800];
        if (status >= 400 || (status == 200 && call->tool == MCP_TOOL_RUN_PYTHON && !ans))
                res = session_error_result(call, status, ans);
        else
                switch (call->tool) {
                case MCP_TOOL_RUN_PYTHON:
                        res = run_result(call, ans);
                        break;
                case MCP_TOOL_CREATE_SESSION: {
                        const char *sid = json_string_value(json_object_get(ans, "session_id"));
                        snprintf(msg, sizeof msg,
                                "Session %s created. Pass session_id \"%s\" to run_python to keep state. It "
                                "ends after %lld seconds without a call (now: at %s), at the latest at %s, "
                                "or at close_session.",
                                sid ? sid : "?", sid ? sid : "?",
                                (long long)json_integer_value(json_object_get(ans, "idle_timeout")),
                                json_string_value(json_object_get(ans, "idle_expires_at")) ?: "?",
                                json_string_value(json_object_get(ans, "expires_at")) ?: "?");
                        res = call_result(call, json_pack("[o]", text_block(msg, strlen(msg))),
                                ans ? json_incref(ans) : json_object(), false);
                        break;
                }
                case MCP_TOOL_CLOSE_SESSION:
                        snprintf(msg, sizeof msg, "Session %s closed.", call->session_id);
                        res = call_result(call, json_pack("[o]", text_block(msg, strlen(msg))), NULL, false);
                        break;
                case MCP_TOOL_LIST_FILES: {
                        Buf b;
                        buf_init(&b, MCP_TEXT_MAX * 2);
                        json_t *f;
                        size_t i;
                        json_array_foreach(json_object_get(ans, "files"), i, f) {
                                char line[1200];
                                int n = snprintf(line, sizeof line, "%s\t%lld bytes\n",
                                        json_string_value(json_object_get(f, "name")) ?: "?",
                                        (long long)json_integer_value(json_object_get(f, "size")));
                                (void)buf_append(&b, line, (size_t)MIN(n, (int)sizeof line - 1));
                        }
                        if (b.len == 0)
                                (void)buf_append(&b, "(no files)", strlen("(no files)"));
                        res = call_result(call, json_pack("[o]", text_block(b.data ? b.data : "", b.len)),
                                NULL, false);
                        buf_free(&b);
                        break;
                }
                case MCP_TOOL_READ_FILE:
                        res = file_result(call, file ? file : "", file_len, truncated);
                        break;
                case MCP_TOOL_WRITE_FILE:
                        snprintf(msg, sizeof msg, "Wrote %s (%zu bytes).", call->path, call->body_len);
                        res = call_result(call, json_pack("[o]", text_block(msg, strlen(msg))), NULL, false);
                        break;
                default:
                        break;
                }
        return res ? dump(result_object(call->id, res), ret_len) : NULL;
}

char *mcp_progress_event(McpCall *call, const char *text, size_t n, size_t *ret_len) {
        call->progress += n;
        json_t *o = json_pack("{ss ss s{sO sI ss%}}", "jsonrpc", "2.0", "method", "notifications/progress",
                "params", "progressToken", call->progress_token, "progress", (json_int_t)call->progress,
                "message", text, n);
        _cleanup_free_ char *s = dump(o, NULL);
        if (!s)
                return NULL;
        Buf ev;
        buf_init(&ev, SIZE_MAX / 2);
        if (stream_sse(&ev, "message", s, strlen(s)) < 0) {
                buf_free(&ev);
                return NULL;
        }
        *ret_len = ev.len;
        return ev.data; /* NUL-terminated, as a Buf keeps it */
}
