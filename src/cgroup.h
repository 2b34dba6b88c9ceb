/* Per-run cgroups: a memory limit that counts what the run allocates, a process limit that
 * counts threads too, and the figures (peak memory, OOM kills) read back after the run. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

#define CGROUP_PATH_MAX 512

typedef enum CgroupMode {
        CGROUP_NONE = 0, /* no usable memory cgroup: the rlimit fallback applies */
        CGROUP_V1 = 1,
        CGROUP_V2 = 2,
} CgroupMode;

typedef struct CgroupRoot {
        CgroupMode mode;
        bool pids; /* a pids controller is usable */
        char mem_base[CGROUP_PATH_MAX]; /* v1: memory hierarchy dir; v2: the one dir */
        char pids_base[CGROUP_PATH_MAX]; /* v1 only */
        char why_not[256]; /* when mode is NONE: what was missing */
} CgroupRoot;

typedef struct Cgroup {
        char mem[CGROUP_PATH_MAX];
        char pids[CGROUP_PATH_MAX]; /* empty if same as mem (v2) or no pids controller */
        int procs_fds[2]; /* cgroup.procs, opened for the zygote to write the pid */
        int nprocs_fds;
} Cgroup;

typedef struct CgroupStats {
        uint64_t memory_peak_bytes;
        uint64_t oom_kills;
        uint64_t pids_max_hits;
} CgroupStats;

/* Finds our own cgroups and creates "snakebox-<pid>" under them, after removing those of dead
 * servers. Never fails: if nothing is usable, mode is CGROUP_NONE and why_not says why. */
void cgroup_root_init(CgroupRoot *root);

/* Removes our "snakebox-<pid>" directories (they must be empty of processes). */
void cgroup_root_destroy(CgroupRoot *root);

/* Creates the run's cgroup(s) with the limits and opens their cgroup.procs. Returns 0 or
 * -errno. Does not log. */
int cgroup_create(const CgroupRoot *root, uint64_t id, const Config *c, Cgroup *ret);

/* Lowers the run's memory limit (a request's memory_mb). Returns 0, -EOPNOTSUPP without a
 * memory cgroup, or -errno. */
int cgroup_set_memory(const CgroupRoot *root, const Cgroup *cg, uint64_t bytes);

/* Closes the procs fds (once the zygote placed the child). */
void cgroup_close_fds(Cgroup *cg);

void cgroup_read_stats(const CgroupRoot *root, const Cgroup *cg, CgroupStats *ret);

/* Removes the run's cgroups; call after the run's last process was reaped. Returns 0, or the
 * -errno of an rmdir that failed (the cgroup still has a task, or one still being torn down):
 * what is left stays named in cg, so that calling again retries only that. */
int cgroup_destroy(Cgroup *cg);
