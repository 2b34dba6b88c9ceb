/* The Model Context Protocol at /mcp: JSON-RPC 2.0 messages in, the tools snakebox offers, and
 * each tool call translated to the /api request that does the work and back from its answer.
 * No I/O and no HTTP library: http.c reads the body, calls mcp_handle, runs what it returns
 * through the same paths as /api/execute and /api/sessions, and hands their answer to
 * mcp_call_result. Stateless by design: no Mcp-Session-Id, state travels as session_id. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"

/* The protocol revisions answered, oldest first. */
typedef enum McpRevision {
        MCP_REV_2025_03_26,
        MCP_REV_2025_06_18,
        MCP_REV_2025_11_25,
        _MCP_REV_MAX,
} McpRevision;

/* Without an MCP-Protocol-Version header the transport spec says to assume 2025-03-26. */
#define MCP_REV_DEFAULT MCP_REV_2025_03_26
#define MCP_REV_NEWEST MCP_REV_2025_11_25

/* The largest JSON-RPC batch (2025-03-26 only) and the text and images of one tool result. */
#define MCP_BATCH_MAX 32
#define MCP_TEXT_MAX (64 * 1024)
#define MCP_IMAGES_MAX 4
/* A run_python without its own timeout and without progress gets at most this, so that it ends
 * before the 60 s a typical client waits for an answer. */
#define MCP_DEFAULT_TIMEOUT_SEC 50

const char *mcp_revision_name(McpRevision r);

/* 0 and *ret when s names a revision answered here, else -EINVAL. */
int mcp_revision_parse(const char *s, McpRevision *ret);

typedef enum McpTool {
        MCP_TOOL_RUN_PYTHON,
        MCP_TOOL_CREATE_SESSION,
        MCP_TOOL_CLOSE_SESSION,
        MCP_TOOL_LIST_FILES,
        MCP_TOOL_READ_FILE,
        MCP_TOOL_WRITE_FILE,
        _MCP_TOOL_MAX,
} McpTool;

/* A tools/call to run: what the /api endpoint would have been asked. */
typedef struct McpCall {
        McpRevision rev;
        McpTool tool;
        json_t *id; /* the request's id, owned */
        char id_text[96]; /* its compact JSON: what a notifications/cancelled names */
        json_t *progress_token; /* _meta.progressToken, owned, or NULL */
        bool session; /* a session operation (op), else a stateless run */
        int op; /* SessionOp (pool.h) */
        char session_id[64];
        char path[512]; /* read_file, write_file: as http.c's file endpoints take it */
        char *body; /* the /api request's body (JSON, or a file's bytes), malloc'ed */
        size_t body_len;
        uint64_t progress; /* output bytes reported so far */
} McpCall;

McpCall *mcp_call_free(McpCall *call);

typedef struct McpAnswer {
        unsigned http_status; /* 200, 202 (no body) or 400 */
        char *body; /* JSON, malloc'ed; NULL with 202, or when call is set */
        size_t body_len;
        McpCall *call; /* a tools/call the caller runs and answers with mcp_call_result; owned */
        char cancel[96]; /* a notifications/cancelled: the id_text of the call to cancel, or "" */
} McpAnswer;

/* Judges one POST body (len bytes) under revision rev (from the MCP-Protocol-Version header, or
 * MCP_REV_DEFAULT); sse: the client accepts text/event-stream, so a call with a progress token
 * will stream (and needs no short default timeout). Fills *ret: an answer to send, a call to
 * run, or a call to cancel. Returns 0, or -ENOMEM. Does not log. */
int mcp_handle(const char *body, size_t len, McpRevision rev, bool sse, const Config *c, McpAnswer *ret);

/* The JSON-RPC response to call from what the /api endpoint answered: status and its body (JSON,
 * may be NULL), and for read_file the file's bytes (file, file_len; truncated: more existed).
 * Malloc'ed, or NULL on out-of-memory. */
char *mcp_call_result(const McpCall *call, unsigned status, const char *body, size_t len, const char *file,
        size_t file_len, bool truncated, size_t *ret_len);

/* A JSON-RPC error response for id (NULL: null). Malloc'ed, or NULL on out-of-memory. */
char *mcp_error(json_t *id, int code, const char *msg, size_t *ret_len);

/* The notifications/progress of call carrying n bytes of output (text, valid UTF-8), as one SSE
 * event. Malloc'ed, or NULL on out-of-memory. */
char *mcp_progress_event(McpCall *call, const char *text, size_t n, size_t *ret_len);
