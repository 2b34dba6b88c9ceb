/* Prometheus metrics: counters and histograms updated from any thread, rendered on demand. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "pool.h"

typedef enum MetricsEndpoint {
        EP_EXECUTE,
        EP_HEALTH,
        EP_METRICS,
        EP_OPENAPI,
        EP_OTHER,
        EP_SESSIONS, /* /api/sessions and everything under it */
        EP_MCP,
        _EP_MAX,
} MetricsEndpoint;

/* One answered HTTP request. Thread-safe, lock-free. */
void metrics_request(MetricsEndpoint ep, unsigned code);

/* One finished run: counted by its outcome (the RunOutcome, with RUN_EXITED split into "success"
 * and "error"), how long it ran (when it had a sandbox) and how long it waited for one.
 * Thread-safe, lock-free. */
void metrics_run(const RunResult *r);

/* The exposition text (text/plain; version=0.0.4), malloc'ed; NULL on out-of-memory. */
char *metrics_render(const PoolStatus *st, size_t *ret_len);

/* One answered session cell: its duration. Thread-safe, lock-free. */
void metrics_session_cell(const RunResult *r);

/* The outcome label of a run, as counted by metrics_run and shown in access logs. */
const char *metrics_outcome(const RunResult *r);
