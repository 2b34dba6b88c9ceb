/* Per-run cgroups: a memory limit that counts what the run allocates, a process limit that
 * counts threads too, a CPU share and ceiling for the run as a whole, and the figures (peak
 * memory, OOM kills, CPU time of all its processes) read back after the run. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

#define CGROUP_PATH_MAX 512
/* Files a sandbox joins its cgroups through: v1 memory, pids, cpu, cpuacct (separate
 * hierarchies), or v2's one directory. */
#define CGROUP_PROCS_MAX 4
/* CFS period of the per-run quota: the kernel's default; a shorter one costs more accounting. */
#define CGROUP_CPU_PERIOD_US 100000

typedef enum CgroupMode {
        CGROUP_NONE = 0, /* no usable memory cgroup: the rlimit fallback applies */
        CGROUP_V1 = 1,
        CGROUP_V2 = 2,
} CgroupMode;

typedef struct CgroupRoot {
        CgroupMode mode;
        bool pids; /* a pids controller is usable */
        /* A cpu controller gives each run a weight and a quota: V1 (cpu hierarchy), V2 (the
         * memory dir's), or NONE (RLIMIT_CPU is all there is). Independent of mode on v1. */
        CgroupMode cpu;
        bool cpuacct; /* a run's CPU time can be read from its cgroup */
        /* The cpu controller has cpu.idle (Linux 5.15+): a leaf can be made SCHED_IDLE as a
         * group (CGROUP_CPU_IDLE). */
        bool cpu_idle;
        char mem_base[CGROUP_PATH_MAX]; /* v1: memory hierarchy dir; v2: the one dir */
        char pids_base[CGROUP_PATH_MAX]; /* v1 only */
        char cpu_base[CGROUP_PATH_MAX]; /* v1 only */
        char cpuacct_base[CGROUP_PATH_MAX]; /* v1 only, when not the cpu hierarchy itself */
        char why_not[256]; /* when mode is NONE: what was missing */
} CgroupRoot;

typedef struct Cgroup {
        char mem[CGROUP_PATH_MAX];
        char pids[CGROUP_PATH_MAX]; /* empty if same as mem (v2) or no pids controller */
        char cpu[CGROUP_PATH_MAX]; /* v1 only */
        char cpuacct[CGROUP_PATH_MAX]; /* v1 only, when a hierarchy of its own */
        int procs_fds[CGROUP_PROCS_MAX]; /* v1 `tasks` or v2 `cgroup.procs`: the sandbox joins itself */
        int nprocs_fds;
        bool idle; /* cpu.idle is 1 (cgroup_cpu_weight) */
} Cgroup;

typedef struct CgroupStats {
        uint64_t memory_peak_bytes;
        uint64_t oom_kills;
        uint64_t pids_max_hits;
        /* Most tasks the run had at once (pids.peak, Linux 6.12+; 0 when absent). RLIMIT_NPROC
         * has the same value and is checked before the cgroup, so it refuses the task first and
         * pids.events never counts: reaching the cap is what shows. */
        uint64_t pids_peak;
} CgroupStats;

/* Finds our own cgroups and creates "snakebox-<pid>" under them, after removing those of dead
 * servers. Never fails: if nothing is usable, mode is CGROUP_NONE and why_not says why. */
void cgroup_root_init(CgroupRoot *root);

/* Removes our "snakebox-<pid>" directories (they must be empty of processes). */
void cgroup_root_destroy(CgroupRoot *root);

/* Creates the run's cgroup(s) with the limits and opens the files the sandbox joins them
 * through (v1 `tasks`, v2 `cgroup.procs`). Returns 0 or
 * -errno. Does not log. */
int cgroup_create(const CgroupRoot *root, uint64_t id, const Config *c, Cgroup *ret);

/* Lowers the run's memory limit (a request's memory_mb). Returns 0, -EOPNOTSUPP without a
 * memory cgroup, or -errno. */
int cgroup_set_memory(const CgroupRoot *root, const Cgroup *cg, uint64_t bytes);

/* The run's CPU time so far, all its processes, in microseconds. Returns 0, -EOPNOTSUPP when
 * no cgroup counts it, or -errno. */
int cgroup_cpu_usage_us(const CgroupRoot *root, const Cgroup *cg, uint64_t *ret);

/* A run's CPU weight through its sandbox's life (see cgroup.c). */
typedef enum CgroupCpuWeight {
        CGROUP_CPU_WAITING, /* sealing, or waiting for its request: like nice 5 */
        CGROUP_CPU_RUNNING, /* running a request: the full weight, the same for every run */
        CGROUP_CPU_DYING, /* being torn down: takes CPU from nobody else, or nearly */
        /* A spare being made behind an older one (pool.c order_spares): cpu.idle, so that it
         * runs only on a CPU nothing else wants and anything else preempts it at once. Where
         * cpu.idle is missing, as CGROUP_CPU_WAITING. */
        CGROUP_CPU_IDLE,
} CgroupCpuWeight;

/* Sets the run's CPU weight. No-op without a cpu controller; best effort (does not fail). */
void cgroup_cpu_weight(const CgroupRoot *root, Cgroup *cg, CgroupCpuWeight w);

/* The most memory one run can hold at any instant: MEMORY_LIMIT_MB with a memory cgroup;
 * without one, the pool's sampling (memwatch.c) enforces MEMORY_LIMIT_MB only every
 * MEMWATCH_INTERVAL_MS, and between two samples only RLIMIT_AS per process bounds a run:
 * MAX_PROCESSES times (MEMORY_LIMIT_MB + ADDRESS_SPACE_HEADROOM_BYTES). */
uint64_t cgroup_memory_bound(const CgroupRoot *root, const Config *c);

/* What limits CPU, for /health, `check` and the start-up line: "cgroup v1", "cgroup v2" or
 * "none (RLIMIT_CPU only)". */
const char *cgroup_cpu_name(const CgroupRoot *root);

/* Closes the procs fds (once they were sent to the zygote, whose child inherits them). */
void cgroup_close_fds(Cgroup *cg);

void cgroup_read_stats(const CgroupRoot *root, const Cgroup *cg, CgroupStats *ret);

/* A session cell's peak memory (memory_peak_bytes is the cell's, not the session's): resets the
 * cgroup's peak. v1: memory.max_usage_in_bytes is reset for all (*fd stays -1); v2 (Linux
 * 6.12+): memory.peak is reset for one open file, kept in *fd (a previous one is closed).
 * Returns 0, or -errno when it cannot be reset (then only samples tell the peak). */
int cgroup_peak_reset(const CgroupRoot *root, const Cgroup *cg, int *fd);

/* The peak since cgroup_peak_reset (fd as it left it), or 0 when it cannot be read. */
uint64_t cgroup_peak_read(const CgroupRoot *root, const Cgroup *cg, int fd);

/* The memory the run's cgroup holds now (a session's memory_bytes, its cells' peaks), in bytes;
 * 0 without a memory cgroup or when it cannot be read. */
uint64_t cgroup_memory_current(const CgroupRoot *root, const Cgroup *cg);

/* Removes the run's cgroups; call after the run's last process was reaped. Returns 0, or the
 * -errno of an rmdir that failed (the cgroup still has a task, or one still being torn down):
 * what is left stays named in cg, so that calling again retries only that. */
int cgroup_destroy(Cgroup *cg);
