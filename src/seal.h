/* The sandbox's sealing: what the zygote prepares once (SealPlan) and the ordered steps a new
 * sandbox runs on itself before any user code arrives. */
#pragma once

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"
#include "util/macro.h"

/* The uid and gid a run has inside its user namespace; mapped outside to the host ids of the
 * sandbox's slot (SANDBOX_UID_RANGE, or SANDBOX_UID/GID). */
#define SANDBOX_INNER_ID 1000
#define SANDBOX_HOSTNAME "sandbox"

const char *seal_step_name(int step);
/* What an administrator can do when a step fails with this errno; "" when nothing useful. */
const char *seal_step_hint(int step, int error);

typedef struct SealPlan {
        char root_dir[PROTO_PATH_MAX];
        uint64_t tmp_size_bytes;
        uint64_t max_file_size_bytes;
        uint64_t memory_limit_bytes; /* RLIMIT_AS when rlimit_as is set */
        bool rlimit_as;
        bool unprivileged; /* the zygote is not root: setgroups is denied in the namespace */
        uint32_t max_processes;
        uint32_t max_open_files;
        uint32_t cpu_limit_sec;
        int cap_last;
        struct sock_fprog filter; /* compiled once in the zygote */
        int init_fd; /* sealed memfd of the sandboxes' init program (src/init/sandbox-init.c) */
        /* Where glibc keeps the calling thread's id, from pthread_self(); -1 if not found (the
         * runner is then forked by glibc, which updates it: see step_runner). */
        long tid_offset;
} SealPlan;

/* The fd at which the sealed child keeps the init program until it execs it; the runner
 * closes its copy. */
#define SANDBOX_INIT_FD 4

/* Fills plan from the zygote's init message; compiles the seccomp filter; puts the init
 * program in a sealed memfd. Returns 0 or -errno. Runs in the zygote. */
int seal_plan_init(SealPlan *plan, const ZygoteConfig *init);

/* The child's very first act: writes "0" to each of the n files the server opened for it
 * (cgroup_create: v1 `tasks`, v2 `cgroup.procs`), which moves it into the run's cgroups, and
 * closes them. First, so that what it allocates from then on (PyOS_AfterFork_Child, the seal)
 * is the run's. The sandbox does this itself, not the zygote: on v1 a thread moving itself
 * takes no global lock (cgroup.c open_procs), and on v2 the wait for an RCU grace period that
 * a process move costs is the child's, in parallel, instead of the zygote's, in series with
 * every other sandbox. Returns 0 or the first -errno; seal_run reports it (SEAL_CGROUPS).
 * Child; async-signal-safe. */
int seal_join_cgroups(const int *fds, size_t n);

/* Runs every step on the calling process, a fresh clone in new namespaces. joined:
 * seal_join_cgroups' result. fds: the socket, stdout and stderr pipes; sync_fd: read end of
 * the zygote's "maps written" pipe. The last step
 * starts the runner: the calling process stays pid 1 of the namespace, execs the init program
 * and never returns from here; seal_run returns 0 in the runner, pid 2, on the same stack and
 * with the same memory. On failure it reports FRAME_FAIL on the socket and returns -errno.
 * Runs in the child; allocates nothing. */
int seal_run(const SealPlan *plan, int joined, int sock_fd, int out_fd, int err_fd, int sync_fd);

/* --- seal-mount.c --- */
/* Builds the run's root from the skeleton and pivots into it; cwd ends as /work. Child. */
int seal_mounts(const SealPlan *plan);

/* --- seal-seccomp.c --- */
/* Compiles the allow-list filter to classic BPF in a malloc'ed program. Returns 0, -EEXIST
 * when its table names a call twice, or another -errno. */
int seccomp_build(bool no_memory_cgroup, struct sock_fprog *ret);
/* Loads a compiled filter on the calling thread (needs no_new_privs). Child; no allocation. */
int seccomp_load_prog(const struct sock_fprog *prog);

/* --- seal-ns.c --- */
/* Parent half, in the zygote: writes the id maps of a fresh child. Returns 0 or -errno. */
int userns_write_maps(pid_t pid, uint32_t host_uid, uint32_t host_gid);
/* Child half (SEAL_SYNC): waits on sync_fd until the zygote has written the maps. Returns 0, or
 * -EPERM when the zygote closed the pipe instead (it could not map our ids), or -errno. Child;
 * async-signal-safe. */
int userns_wait_maps(int sync_fd);
