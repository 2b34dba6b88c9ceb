#include "pool-sched.h"

#include "util/macro.h"

PoolKind sched_choose_kind(const SchedKind kinds[_POOL_KINDS], PoolKind wanted) {
        const SchedKind *full = &kinds[POOL_FULL], *lean = &kinds[POOL_LEAN];
        if (!lean->enabled)
                return POOL_FULL;
        if (wanted == POOL_LEAN)
                return POOL_LEAN;
        if (!full->up && full->ready == 0 && lean->up)
                return POOL_LEAN;
        return POOL_FULL;
}

int sched_next_queue(const SchedKind kinds[_POOL_KINDS], uint32_t running, uint32_t max_concurrency) {
        if (running >= max_concurrency)
                return -1;
        int pick = -1;
        for (int i = 0; i < _POOL_KINDS; i++) {
                const SchedKind *k = &kinds[i];
                if (k->queued == 0 || k->ready == 0)
                        continue;
                if (pick < 0 || k->oldest_ms < kinds[pick].oldest_ms)
                        pick = i;
        }
        return pick;
}

uint32_t sched_want(const SchedKind *k, bool started, uint32_t running, uint32_t max_concurrency) {
        uint32_t free_slots = max_concurrency - MIN(running, max_concurrency);
        return MAX(k->pool_size, started ? 0u : 1u) + MIN(k->queued, free_slots);
}

uint32_t sched_spawn_count(const SchedKind *k, uint32_t want, uint32_t seal_failures) {
        if (!k->enabled || !k->up)
                return 0;
        uint32_t limit = seal_failures >= SCHED_SEAL_FAILURES_FATAL ? 1 : 4;
        uint32_t made = k->spawning + k->sealing + k->ready;
        uint32_t have = made - MIN(k->stale, made);
        if (have >= want || k->spawning >= limit)
                return 0;
        return MIN(want - have, limit - k->spawning);
}

bool sched_expired(uint64_t now_ms, uint64_t since_ms, uint64_t limit_ms) {
        return now_ms >= since_ms && now_ms - since_ms >= limit_ms;
}

uint64_t sched_restart_backoff(uint64_t now_ms, uint64_t started_ms, uint64_t prev_ms) {
        if (now_ms < started_ms || now_ms - started_ms >= SCHED_CRASH_WINDOW_MS)
                return 0;
        return MIN(MAX(prev_ms * 2, (uint64_t)SCHED_BACKOFF_MIN_MS), (uint64_t)SCHED_BACKOFF_MAX_MS);
}
