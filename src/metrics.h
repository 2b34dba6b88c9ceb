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
        _EP_MAX,
} MetricsEndpoint;

/* One answered HTTP request. Thread-safe, lock-free. */
void metrics_request(MetricsEndpoint ep, unsigned code);

/* One finished run: its outcome ("success", "error", "timeout", ...), how long it ran and how
 * long it waited for a sandbox. Thread-safe, lock-free. */
void metrics_run(const char *outcome, uint64_t duration_ms, uint64_t queue_wait_ms);

/* The exposition text (text/plain; version=0.0.4), malloc'ed; NULL on out-of-memory. */
char *metrics_render(const PoolStatus *st, size_t *ret_len);

/* The outcome label of a run, as counted by metrics_run and shown in access logs. */
const char *metrics_outcome(const RunResult *r);
