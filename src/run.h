/* What a run produced, as the pool hands it to the HTTP layer: its outcome, exit status, output,
 * the runner's raw report and the figures measured from outside. A leaf: the answer's builder
 * (api.c), the frame judge (frame.c) and the metrics need this and nothing else of the pool. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "util/buf.h"

typedef enum RunOutcome {
        RUN_EXITED, /* the program ended by itself (exit code or signal) */
        RUN_TIMEOUT, /* killed at the deadline */
        RUN_OUTPUT_LIMIT, /* killed at MAX_OUTPUT_BYTES */
        RUN_MEMORY_LIMIT, /* killed by the memory cgroup's OOM killer */
        RUN_ABORTED, /* the client went away; nobody reads the answer */
        RUN_QUEUE_TIMEOUT, /* waited QUEUE_TIMEOUT for a sandbox: 503 */
        RUN_SHUTDOWN, /* the server is stopping: 503 */
        RUN_INTERNAL, /* our fault: message in internal_error, 500 */
} RunOutcome;

typedef struct RunResult {
        RunOutcome outcome;
        int exit_code; /* valid when signal == 0 and outcome is not QUEUE/SHUTDOWN/INTERNAL */
        int signal; /* the signal that ended the main process, or 0 */
        Buf out, err, merged;
        bool truncated;
        bool process_limit_hit;
        Buf report; /* the runner's report (JSON), from its 'R' frames */
        bool report_done; /* its 'Z' frame came: the report is complete, no more is read */
        bool report_end_bad; /* that 'Z' was malformed (forged): the report is not believed */
        uint64_t duration_ms, cpu_ms, memory_peak_bytes;
        uint64_t duration_us; /* duration_ms finer: a session cell takes well under a millisecond */
        uint64_t queue_ms; /* waited for a sandbox */
        uint32_t timeout_ms; /* the deadline this run had */
        uint64_t memory_bytes; /* the memory limit this run had */
        bool want_files; /* the request asked for return_files */
        char internal_error[256];
} RunResult;

/* Frees the buffers of r (not r itself). */
void run_result_free(RunResult *r);
