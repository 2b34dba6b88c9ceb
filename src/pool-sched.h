/* The pool's policy, as pure functions: which zygote serves a request, which queue is served
 * next, how many sandboxes to ask a zygote for, when a wait has expired, how long to pause
 * before restarting a zygote that keeps dying. No I/O and no Pool: pool.c fills a SchedKind per
 * zygote from its own state and acts on the answers, so that each decision is made in one place
 * and can be tested alone (tests/unit/test-pool-sched.c), the way frame.c judges frames. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "pool.h"

/* After this many sealing failures in a row, the pool asks for one sandbox at a time and
 * reports the host as unable to seal. */
#define SCHED_SEAL_FAILURES_FATAL 3
/* A zygote that dies within this long of starting is crash-looping: restarts pause, doubling
 * from SCHED_BACKOFF_MIN_MS up to SCHED_BACKOFF_MAX_MS. */
#define SCHED_CRASH_WINDOW_MS 5000
#define SCHED_BACKOFF_MIN_MS 250
#define SCHED_BACKOFF_MAX_MS 5000

/* What the policy needs to know of one zygote and its sandboxes. */
typedef struct SchedKind {
        bool enabled; /* configured (LEAN_POOL_SIZE > 0 for the lean one) */
        bool up; /* its zygote is ready to make sandboxes */
        uint32_t pool_size; /* ready sandboxes to keep */
        uint32_t spawning, sealing, ready;
        uint32_t stale; /* of those, made by a zygote being replaced (not counted as ours) */
        uint32_t queued; /* requests waiting for this kind */
        uint64_t oldest_ms; /* when the oldest of them arrived; meaningless when queued == 0 */
} SchedKind;

/* The zygote a request is queued for. wanted: what its code needs (route.c); the lean zygote
 * serves a request that needs the full one only while the full one is restarting with no
 * sandbox of it left ready (importing takes seconds; the libraries import there too, slower). */
PoolKind sched_choose_kind(const SchedKind kinds[_POOL_KINDS], PoolKind wanted);

/* The queue whose head starts next: the oldest head among kinds with a ready sandbox, while
 * fewer than max_concurrency run. Returns -1 when none can start now. */
int sched_next_queue(const SchedKind kinds[_POOL_KINDS], uint32_t running, uint32_t max_concurrency);

/* Sandboxes a kind should have made or in the making: its pool, at least one until start-up is
 * proven (started), and one more for each waiting request a free slot could start now. */
uint32_t sched_want(const SchedKind *k, bool started, uint32_t running, uint32_t max_concurrency);

/* How many to ask the zygote for now, given want: none while it is down; at most 4 spawning
 * at once, 1 after SCHED_SEAL_FAILURES_FATAL sealing failures in a row. */
uint32_t sched_spawn_count(const SchedKind *k, uint32_t want, uint32_t seal_failures);

/* Whether something that started at since_ms has waited limit_ms by now_ms. */
bool sched_expired(uint64_t now_ms, uint64_t since_ms, uint64_t limit_ms);

/* The pause before restarting a zygote that died now_ms, having started at started_ms, after a
 * previous pause of prev_ms: 0 unless it died within SCHED_CRASH_WINDOW_MS of starting. */
uint64_t sched_restart_backoff(uint64_t now_ms, uint64_t started_ms, uint64_t prev_ms);
