/* The child's sealing pipeline. A sandbox is a clone of the zygote in new user, pid, mount, net,
 * ipc and uts namespaces; before it may read any user code it runs the steps below, in order,
 * on itself. Each step is async-signal-safe and allocates nothing (the child is a copy of a
 * process whose other threads, had there been any, would not exist here); anything that can be
 * computed in advance is in the SealPlan the zygote built once. A step that fails sends one
 * FRAME_FAIL with (step, errno) on the socket, so the server can say exactly what the host
 * lacks, and the child exits: a sandbox that cannot be sealed never runs code. Seccomp is last
 * because once loaded it forbids the mount and namespace calls the earlier steps need. */
#include "seal.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/macro.h"

static const char *const step_names[_SEAL_MAX] = {
        [SEAL_SYNC] = "wait for id maps and cgroups",
        [SEAL_FDS] = "file descriptors",
        [SEAL_SESSION] = "session and process group",
        [SEAL_CGROUPNS] = "cgroup namespace",
        [SEAL_MOUNTS] = "mounts and pivot_root",
        [SEAL_HOSTNAME] = "hostname",
        [SEAL_RLIMITS] = "resource limits",
        [SEAL_IDENTITY] = "unprivileged uid/gid and capabilities",
        [SEAL_NNP] = "no_new_privs",
        [SEAL_SECCOMP] = "seccomp filter",
        [SEAL_RUNNER] = "start the runner under an init",
};

const char *seal_step_name(int step) {
        if (step < 0 || step >= _SEAL_MAX)
                return "unknown step";
        return step_names[step];
}

const char *seal_step_hint(int step, int error) {
        if (step == SEAL_SYNC && error == EPERM)
                return "user namespaces are restricted: enable them with "
                       "`sysctl -w kernel.unprivileged_userns_clone=1` and "
                       "`sysctl -w user.max_user_namespaces=15000`, or run the server as root";
        if (step == SEAL_MOUNTS)
                return "mounting inside a user namespace was refused: the host (or the container "
                       "running snakebox) must allow it";
        if (step == SEAL_SECCOMP)
                return "the kernel must be built with CONFIG_SECCOMP_FILTER";
        return "";
}

/* What the steps share: the plan and the fds the child was given. step_fds moves the socket to
 * fd 3 and updates sock_fd, so a later failure is reported on the right fd. */
typedef struct SealCtx {
        const SealPlan *plan;
        int sock_fd, out_fd, err_fd, sync_fd;
} SealCtx;

static int step_sync(SealCtx *c) {
        return userns_wait_maps(c->sync_fd);
}

/* Moves fd to target unless it is already there. */
static int move_fd(int fd, int target) {
        if (fd == target)
                return fcntl(fd, F_SETFD, 0) < 0 ? -errno : 0;
        if (dup2(fd, target) < 0)
                return -errno;
        return 0;
}

static int step_fds(SealCtx *c) {
        /* fd 3 may hold one of the others (the zygote's control socket sits at 3): park all
         * three above 10 first, so the moves below cannot clobber each other. */
        int s = fcntl(c->sock_fd, F_DUPFD_CLOEXEC, 10);
        int o = fcntl(c->out_fd, F_DUPFD_CLOEXEC, 10);
        int e = fcntl(c->err_fd, F_DUPFD_CLOEXEC, 10);
        if (s < 0 || o < 0 || e < 0)
                return -errno;
        if (move_fd(o, 1) < 0 || move_fd(e, 2) < 0)
                return -errno;
        /* The socket stays close-on-exec: programs the run starts do not inherit it. */
        if (dup3(s, SANDBOX_SOCK_FD, O_CLOEXEC) < 0)
                return -errno;
        c->sock_fd = SANDBOX_SOCK_FD;
        /* Closes everything else, the user namespace's sync fd among them. */
        if (syscall(SYS_close_range, 4U, ~0U, 0U) < 0)
                return -errno;
        return 0;
}

/* kill(0, sig), and a terminal's signals, address a process group by its kernel object, across
 * pid namespaces: a run left in the zygote's group could signal every other sandbox of the same
 * host uid (all of them, for an unprivileged server). */
static int step_session(_unused_ SealCtx *c) {
        return setsid() < 0 ? -errno : 0;
}

static int step_cgroupns(_unused_ SealCtx *c) {
        return unshare(CLONE_NEWCGROUP) < 0 ? -errno : 0;
}

static int step_mounts(SealCtx *c) {
        return seal_mounts(c->plan);
}

static int step_hostname(_unused_ SealCtx *c) {
        return sethostname(SANDBOX_HOSTNAME, strlen(SANDBOX_HOSTNAME)) < 0 ? -errno : 0;
}

static int step_rlimits(SealCtx *c) {
        const SealPlan *p = c->plan;
        struct {
                int resource;
                rlim_t soft, hard;
        } limits[] = {
                {RLIMIT_CPU, p->cpu_limit_sec, p->cpu_limit_sec + 1},
                {RLIMIT_FSIZE, p->max_file_size_bytes, p->max_file_size_bytes},
                {RLIMIT_NOFILE, p->max_open_files, p->max_open_files},
                {RLIMIT_NPROC, p->max_processes, p->max_processes},
                {RLIMIT_CORE, 0, 0},
                {RLIMIT_MEMLOCK, 64 * 1024, 64 * 1024},
                {RLIMIT_MSGQUEUE, 64 * 1024, 64 * 1024},
                {RLIMIT_AS, p->memory_limit_bytes, p->memory_limit_bytes},
        };
        for (size_t i = 0; i < ELEMENTSOF(limits); i++) {
                if (limits[i].resource == RLIMIT_AS && !p->rlimit_as)
                        continue;
                struct rlimit rl = {.rlim_cur = limits[i].soft, .rlim_max = limits[i].hard};
                if (setrlimit(limits[i].resource, &rl) < 0)
                        return -errno;
        }
        return 0;
}

static int step_identity(SealCtx *c) {
        const SealPlan *p = c->plan;
        /* The bounding set needs CAP_SETPCAP, which goes with the uid change below. */
        for (int cap = 0; cap <= p->cap_last; cap++)
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
                        return -errno;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return -errno;
        if (setgroups(0, NULL) < 0 && !(p->unprivileged && errno == EPERM))
                return -errno;
        if (setresgid(SANDBOX_INNER_ID, SANDBOX_INNER_ID, SANDBOX_INNER_ID) < 0)
                return -errno;
        if (setresuid(SANDBOX_INNER_ID, SANDBOX_INNER_ID, SANDBOX_INNER_ID) < 0)
                return -errno;
        /* The uid change does not clear the sets here: the kernel clears them when leaving the
         * namespace's uid 0, and our old uid (the host's) is not uid 0 of this namespace, it
         * is unmapped. So clear them explicitly, then check. */
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct d[2] = {{0}};
        if (syscall(SYS_capset, &h, d) < 0)
                return -errno;
        if (syscall(SYS_capget, &h, d) < 0)
                return -errno;
        for (int i = 0; i < 2; i++)
                if (d[i].effective || d[i].permitted || d[i].inheritable)
                        return -EPERM;
        return 0;
}

static int step_nnp(SealCtx *c) {
        const SealPlan *p = c->plan;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return -errno;
        /* Without a memory cgroup the server measures the run from /proc/<pid>/smaps_rollup
         * (memwatch.c), which a non-dumpable process hides from a server without
         * CAP_SYS_PTRACE; the uid change above made us non-dumpable when the host uid changed
         * (a root server). Dumpable only lets processes of the same host uid read us, and in
         * their own pid namespace and under seccomp no other run can reach us. A run that
         * makes itself non-dumpable again is ended by the server as unmeasurable. */
        if (p->rlimit_as && prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
                return -errno;
        /* Set after the uid change, which resets it. The parent is the server (CLONE_PARENT):
         * if it dies, the run dies with it. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
                return -errno;
        return 0;
}

static void report_failure(int sock_fd, int step, int r) {
        char msg[1 + sizeof(SealFailure)];
        SealFailure f = {.step = step, .error = -r};
        msg[0] = FRAME_FAIL;
        memcpy(msg + 1, &f, sizeof f);
        ssize_t k _unused_ = send(sock_fd, msg, sizeof msg, MSG_NOSIGNAL);
}

static int step_seccomp(SealCtx *c) {
        return seccomp_load_prog(&c->plan->filter);
}

/* Everything before this step binds both processes: the fork inherits namespaces, limits,
 * identity and the filter. The calling process becomes the run's init and never returns; the
 * runner goes on. */
static int step_runner(SealCtx *c) {
        pid_t runner = init_fork_runner();
        if (runner < 0)
                return (int)runner;
        if (runner > 0)
                init_serve(runner, c->sock_fd);
        /* FRAME_READY is sent by the runner, once it has prepared what does not depend on the
         * request. */
        return 0;
}

/* The pipeline, walked in this order; a failing step is reported as its SealStep. */
static const struct {
        SealStep step;
        int (*fn)(SealCtx *c);
} seal_steps[] = {
        {SEAL_SYNC, step_sync},
        {SEAL_FDS, step_fds},
        {SEAL_SESSION, step_session},
        {SEAL_CGROUPNS, step_cgroupns},
        {SEAL_MOUNTS, step_mounts},
        {SEAL_HOSTNAME, step_hostname},
        {SEAL_RLIMITS, step_rlimits},
        {SEAL_IDENTITY, step_identity},
        {SEAL_NNP, step_nnp},
        {SEAL_SECCOMP, step_seccomp},
        {SEAL_RUNNER, step_runner},
};
_Static_assert(ELEMENTSOF(seal_steps) == _SEAL_MAX, "every SealStep has its function");

int seal_run(const SealPlan *plan, int sock_fd, int out_fd, int err_fd, int sync_fd) {
        SealCtx c = {
                .plan = plan, .sock_fd = sock_fd, .out_fd = out_fd, .err_fd = err_fd, .sync_fd = sync_fd};

        /* Tells an operator's ps which processes are runs; not a security measure. */
        prctl(PR_SET_NAME, "snakebox-run", 0, 0, 0);
        for (size_t i = 0; i < ELEMENTSOF(seal_steps); i++) {
                int r = seal_steps[i].fn(&c);
                if (r < 0) {
                        report_failure(c.sock_fd, seal_steps[i].step, r);
                        return r;
                }
        }
        return 0;
}

int seal_plan_init(SealPlan *plan, const ZygoteConfig *c) {
        int r;

        *plan = (SealPlan){
                .tmp_size_bytes = c->tmp_size_bytes,
                .max_file_size_bytes = c->max_file_size_bytes,
                .memory_limit_bytes = c->memory_limit_bytes,
                .rlimit_as = c->flags & ZYGOTE_F_RLIMIT_AS,
                .max_processes = c->max_processes,
                .max_open_files = c->max_open_files,
                /* The wall-clock deadline is the real limit; CPU time is the backstop for a
                 * run whose processes escape the deadline's accounting somehow. */
                .cpu_limit_sec = c->timeout_sec + 1,
                .cap_last = CAP_LAST_CAP,
                .unprivileged = geteuid() != 0,
        };
        memcpy(plan->root_dir, c->root_dir, sizeof plan->root_dir);
        plan->root_dir[sizeof plan->root_dir - 1] = 0;

        /* The running kernel may know more capabilities than our headers. */
        _cleanup_close_ int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                char b[16] = {0};
                if (read(fd, b, sizeof b - 1) > 0) {
                        int v = atoi(b); /* kernel-written, not user input */
                        if (v > 0 && v < 64)
                                plan->cap_last = v;
                }
        }
        r = seccomp_build(plan->rlimit_as, &plan->filter);
        if (r < 0)
                return r;
        return 0;
}
