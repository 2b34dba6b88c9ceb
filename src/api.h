/* /api/execute: request decoding and validation, answer assembly. No I/O, no HTTP library:
 * the HTTP layer calls these and sends what they return. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "run.h"

/* What the request checks and the answer return: an HTTP status, its own type so that it cannot
 * be mistaken for the negative errno the rest of the code returns. */
typedef enum HttpStatus {
        HTTP_STATUS_NONE = 0, /* not a status: the request was accepted, the run goes on */
        HTTP_OK = 200,
        HTTP_BAD_REQUEST = 400,
        HTTP_INTERNAL_ERROR = 500,
        HTTP_SERVICE_UNAVAILABLE = 503,
} HttpStatus;

typedef struct ApiRequest {
        char *runner; /* malloc'ed JSON for the runner (runner.py main) */
        size_t runner_len;
        uint32_t timeout_ms; /* the request's "timeout", or 0 */
        uint64_t memory_bytes; /* the request's "memory_mb", or 0 */
        bool want_files; /* "return_files" was given (and not false) */
} ApiRequest;

/* Decodes and validates a request body against the limits of c. On success returns
 * HTTP_STATUS_NONE (0) and fills *ret (the caller frees ret->runner). On a bad request returns
 * HTTP_BAD_REQUEST and writes the reason, meant for the client, into why;
 * HTTP_SERVICE_UNAVAILABLE on out-of-memory. Does not log. */
HttpStatus api_decode_request(
        const char *body, size_t len, const Config *c, ApiRequest *ret, char *why, size_t whyn);

/* Builds the runner's request for code (n bytes). Returns 0 and a malloc'ed JSON text, or
 * -ENOMEM. */
int api_runner_request(const char *code, size_t n, char **ret, size_t *ret_len);
/* Marks a runner request (api_decode_request's ApiRequest.runner, of *len bytes) as one for a
 * live answer: the runner then sends each figure when it is shown (proto.h FRAME_IMAGE).
 * Returns 0, -EINVAL (not a non-empty object) or -ENOMEM (unchanged). */
int api_request_live(char **runner, size_t *len);

/* Builds the answer to a finished run. Returns the HTTP status and sets *ret to a malloc'ed
 * JSON body (NULL on out-of-memory, which the caller answers with a fixed 503). */
HttpStatus api_build_answer(const RunResult *r, const Config *c, char **ret, size_t *ret_len);

/* Builds {"status": "Error", "output": msg}: the shape of every error body. Malloc'ed, or NULL
 * on out-of-memory. */
char *api_error_body(const char *msg, size_t *ret_len);

/* Sessions. An error of a session endpoint: api_error_body's shape plus
 * "error": {"type", "message", "reason"?}. Malloc'ed, or NULL on out-of-memory. */
char *api_session_error(const char *type, const char *reason, const char *msg, size_t *ret_len);

/* POST /api/sessions: what the body (may be empty) asks. 0 in a field: the server's default. */
typedef struct ApiSessionCreate {
        uint32_t idle_timeout_sec, max_lifetime_sec;
        uint64_t memory_bytes;
        bool full; /* profile "full" (the default) or "lean" */
        char *init; /* the runner's init request, with the initial files; malloc'ed */
        size_t init_len;
} ApiSessionCreate;

/* Returns as api_decode_request does. */
HttpStatus api_decode_session_create(
        const char *body, size_t len, const Config *c, ApiSessionCreate *ret, char *why, size_t whyn);

/* POST /api/sessions/{id}/restart: {"keep_files"?: bool}, or no body. */
HttpStatus api_decode_session_restart(
        const char *body, size_t len, bool *ret_keep_files, char *why, size_t whyn);

/* The runner's request for a file operation of a session (op: SessionOp, pool.h): list, get,
 * put (body, len: the file), delete name (checked by upload_check_name). Returns as
 * api_decode_request does. */
HttpStatus api_file_request(int op, const char *name, const char *body, size_t len, uint32_t max_files,
        char **ret, size_t *ret_len);

typedef struct ApiFileAnswer {
        char *body; /* a listing's JSON, malloc'ed */
        bool created; /* a put made a new file */
} ApiFileAnswer;

/* Judges the runner's report of a file operation: 0 and *ret; an HTTP status (404 no such file,
 * 413 no room, 400) with msg; or -errno with msg when the runner gave no usable answer. */
int api_file_answer(const RunResult *r, int op, const Config *c, ApiFileAnswer *ret, char *msg, size_t msgn);

/* Adds the members of the JSON object extra to the JSON object *answer (len bytes), replacing
 * *answer. Returns 0 or -ENOMEM (also when either is not an object). */
int api_merge_object(char **answer, size_t *len, const char *extra);
