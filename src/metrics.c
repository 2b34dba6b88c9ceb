/* Prometheus metrics. Counters are plain atomics (relaxed: a scrape may see one request's
 * counters a moment apart, which the format allows); the pool's gauges come from pool_status
 * at scrape time. Label values are fixed strings, so the output needs no escaping. */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

static const char *const endpoint_names[_EP_MAX] = {
        "/api/execute", "/health", "/metrics", "/openapi.json", "other", "/api/sessions", "/mcp"};
static const unsigned codes[] = {
        200, 201, 202, 204, 400, 401, 403, 404, 405, 409, 410, 413, 415, 429, 500, 503};
#define NCODES (sizeof codes / sizeof codes[0])
static _Atomic uint64_t requests[_EP_MAX][NCODES + 1]; /* last: any other code */

/* Indexed by outcome_index. */
static const char *const outcomes[] = {"success", "error", "timeout", "memory_limit", "output_limit",
        "aborted", "queue_timeout", "shutdown", "internal"};
#define NOUTCOMES (sizeof outcomes / sizeof outcomes[0])
static _Atomic uint64_t runs[NOUTCOMES];

/* Seconds; a run's duration and a request's wait for a sandbox. */
static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define NBOUNDS (sizeof bounds / sizeof bounds[0])
typedef struct Histogram {
        _Atomic uint64_t buckets[NBOUNDS + 1];
        _Atomic uint64_t sum_ms;
        _Atomic uint64_t count;
} Histogram;
static Histogram run_duration, queue_wait, cell_duration;

void metrics_request(MetricsEndpoint ep, unsigned code) {
        size_t i = 0;
        while (i < NCODES && codes[i] != code)
                i++;
        if (ep >= _EP_MAX)
                ep = EP_OTHER;
        atomic_fetch_add_explicit(&requests[ep][i], 1, memory_order_relaxed);
}

static void observe(Histogram *h, uint64_t ms) {
        size_t i = 0;
        while (i < NBOUNDS && (double)ms / 1000.0 > bounds[i])
                i++;
        atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&h->sum_ms, ms, memory_order_relaxed);
        atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

/* The index of r's outcome in outcomes[]: RUN_EXITED splits by how the program ended. */
static size_t outcome_index(const RunResult *r) {
        switch (r->outcome) {
        case RUN_EXITED:
                return r->signal == 0 && r->exit_code == 0 ? 0 : 1;
        case RUN_TIMEOUT:
                return 2;
        case RUN_MEMORY_LIMIT:
                return 3;
        case RUN_OUTPUT_LIMIT:
                return 4;
        case RUN_ABORTED:
                return 5;
        case RUN_QUEUE_TIMEOUT:
                return 6;
        case RUN_SHUTDOWN:
                return 7;
        default:
                return 8;
        }
}

void metrics_run(const RunResult *r) {
        atomic_fetch_add_explicit(&runs[outcome_index(r)], 1, memory_order_relaxed);
        /* Only a run that had a sandbox has a duration; queued, shut down and failed ones do not. */
        if (r->outcome <= RUN_MEMORY_LIMIT || r->outcome == RUN_ABORTED)
                observe(&run_duration, r->duration_ms);
        observe(&queue_wait, r->queue_ms);
}

void metrics_session_cell(const RunResult *r) {
        observe(&cell_duration, r->duration_ms);
}

const char *metrics_outcome(const RunResult *r) {
        return outcomes[outcome_index(r)];
}

static void printf_buf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void printf_buf(Buf *b, const char *fmt, ...) {
        char line[512];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        if (n > 0)
                buf_append(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void render_histogram(Buf *b, const char *name, const char *help, Histogram *h) {
        uint64_t cum = 0;
        printf_buf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
        for (size_t i = 0; i < NBOUNDS; i++) {
                cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
                printf_buf(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum);
        }
        cum += atomic_load_explicit(&h->buckets[NBOUNDS], memory_order_relaxed);
        printf_buf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
        printf_buf(b, "%s_sum %.3f\n", name,
                (double)atomic_load_explicit(&h->sum_ms, memory_order_relaxed) / 1000.0);
        printf_buf(b, "%s_count %llu\n", name, (unsigned long long)cum);
}

char *metrics_render(const PoolStatus *st, size_t *ret_len) {
        Buf b;
        buf_init(&b, 1 << 20);
        printf_buf(&b,
                "# HELP snakebox_http_requests_total HTTP requests answered, by endpoint and status code.\n"
                "# TYPE snakebox_http_requests_total counter\n");
        for (int e = 0; e < _EP_MAX; e++)
                for (size_t i = 0; i <= NCODES; i++) {
                        uint64_t v = atomic_load_explicit(&requests[e][i], memory_order_relaxed);
                        if (i < NCODES)
                                printf_buf(&b,
                                        "snakebox_http_requests_total{endpoint=\"%s\",code=\"%u\"} %llu\n",
                                        endpoint_names[e], codes[i], (unsigned long long)v);
                        else
                                printf_buf(&b,
                                        "snakebox_http_requests_total{endpoint=\"%s\",code=\"other\"} "
                                        "%llu\n",
                                        endpoint_names[e], (unsigned long long)v);
                }
        printf_buf(&b, "# HELP snakebox_runs_total Runs finished, by outcome.\n# TYPE snakebox_runs_total "
                       "counter\n");
        for (size_t i = 0; i < NOUTCOMES; i++)
                printf_buf(&b, "snakebox_runs_total{outcome=\"%s\"} %llu\n", outcomes[i],
                        (unsigned long long)atomic_load_explicit(&runs[i], memory_order_relaxed));
        render_histogram(
                &b, "snakebox_run_duration_seconds", "Wall time of runs that started.", &run_duration);
        render_histogram(
                &b, "snakebox_queue_wait_seconds", "Time requests waited for a sandbox.", &queue_wait);
        render_histogram(&b, "snakebox_session_cell_duration_seconds",
                "Wall time of session cells that ran.", &cell_duration);
        printf_buf(&b,
                "# HELP snakebox_sessions_active Sessions open now.\n# TYPE snakebox_sessions_active gauge\n"
                "snakebox_sessions_active %u\n"
                "# HELP snakebox_sessions_created_total Sessions created.\n"
                "# TYPE snakebox_sessions_created_total counter\nsnakebox_sessions_created_total %llu\n"
                "# HELP snakebox_sessions_ended_total Sessions ended, by reason.\n"
                "# TYPE snakebox_sessions_ended_total counter\n",
                st->sessions_active, (unsigned long long)st->sessions_created);
        /* In SessionEnd's order (session.h). */
        static const char *const reasons[] = {"idle_timeout", "max_lifetime", "evicted", "deleted", "memory",
                "server_restarted", "shutdown"};
        for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
                printf_buf(&b, "snakebox_sessions_ended_total{reason=\"%s\"} %llu\n", reasons[i],
                        (unsigned long long)st->sessions_ended[i]);
        printf_buf(&b,
                "# HELP snakebox_queue_length Requests waiting for a sandbox.\n# TYPE snakebox_queue_length "
                "gauge\n"
                "snakebox_queue_length %u\n",
                st->queued);
        printf_buf(&b,
                "# HELP snakebox_pool_sandboxes Sandboxes by state.\n# TYPE snakebox_pool_sandboxes gauge\n"
                "snakebox_pool_sandboxes{state=\"ready\"} %u\nsnakebox_pool_sandboxes{state=\"busy\"} %u\n"
                "snakebox_pool_sandboxes{state=\"starting\"} %u\n",
                st->ready, st->busy, st->spawning);
        printf_buf(&b,
                "# HELP snakebox_zygote_up Whether the zygote is ready.\n# TYPE snakebox_zygote_up gauge\n"
                "snakebox_zygote_up %d\n",
                st->zygote_up ? 1 : 0);
        printf_buf(&b,
                "# HELP snakebox_zygote_restarts_total Zygotes started again after one died.\n"
                "# TYPE snakebox_zygote_restarts_total counter\nsnakebox_zygote_restarts_total %llu\n",
                (unsigned long long)st->zygote_restarts);
        printf_buf(&b,
                "# HELP snakebox_zygote_recycles_total Zygotes replaced by a fresh one (ZYGOTE_MAX_SPAWNS, "
                "ZYGOTE_MAX_AGE), by kind.\n"
                "# TYPE snakebox_zygote_recycles_total counter\n"
                "snakebox_zygote_recycles_total{zygote=\"full\"} %llu\n"
                "snakebox_zygote_recycles_total{zygote=\"lean\"} %llu\n",
                (unsigned long long)st->zygote_recycles[POOL_FULL],
                (unsigned long long)st->zygote_recycles[POOL_LEAN]);
        printf_buf(&b,
                "# HELP snakebox_sandboxes_created_total Sandboxes requested from the zygotes.\n"
                "# TYPE snakebox_sandboxes_created_total counter\nsnakebox_sandboxes_created_total %llu\n",
                (unsigned long long)st->sandboxes_created);
        if (!b.data) {
                buf_free(&b);
                return NULL;
        }
        *ret_len = b.len;
        return b.data; /* the Buf's storage, handed over */
}
