/* The memory a run holds when no memory cgroup counts it: its processes' Pss, and its tmpfs. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* How often the pool samples each running run without a memory cgroup. */
#define MEMWATCH_INTERVAL_MS 100

typedef struct MemSample {
        uint64_t pss_bytes; /* proportional set size, summed over the processes */
        uint64_t private_bytes; /* pages mapped by one process only */
        uint32_t nprocs; /* processes counted */
        bool truncated; /* more than max_procs were found; the rest are not counted */
} MemSample;

/* Sums /proc/<pid>/smaps_rollup over init and all its descendants (found through
 * /proc/<pid>/task/<tid>/children), at most max_procs processes. Returns 0; -ESRCH or -ENOENT
 * when init is gone; another -errno (-EACCES, -EPERM) when a process of the run is there but
 * its figures may not be read. Does not log. */
int memwatch_sample(pid_t init, uint32_t max_procs, MemSample *ret);

/* Bytes held by the tmpfs mounted at /dev/shm as init sees it (/proc/<init>/root/dev/shm): in a
 * sandbox, the one tmpfs behind /work, /tmp and /dev/shm. Returns 0; -ESRCH or -ENOENT when
 * init is gone; -EMEDIUMTYPE when that is not a tmpfs; another -errno. Does not log. */
int memwatch_tmpfs_bytes(pid_t init, uint64_t *ret);
