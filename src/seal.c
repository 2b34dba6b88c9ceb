/* The child's sealing pipeline. A sandbox is a clone of the zygote in new user, pid, mount, net,
 * ipc and uts namespaces; before it may read any user code it runs the steps below, in order,
 * on itself. Each step is async-signal-safe and allocates nothing (the child is a copy of a
 * process whose other threads, had there been any, would not exist here); anything that can be
 * computed in advance is in the SealPlan the zygote built once. A step that fails sends one
 * FRAME_FAIL with (step, errno) on the socket, so the server can say exactly what the host
 * lacks, and the child exits: a sandbox that cannot be sealed never runs code. Seccomp is last
 * because once loaded it forbids the mount and namespace calls the earlier steps need. */
#include "seal.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/fd.h"
#include "util/macro.h"

static const char *const step_names[_SEAL_MAX] = {
        [SEAL_CGROUPS] = "join the run's cgroups",
        [SEAL_SYNC] = "wait for id maps",
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
        if (step == SEAL_CGROUPS && error == EACCES)
                return "the kernel checked the sandbox's own credentials, not the server's: Linux 5.16 "
                       "or later is needed";
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
        int joined; /* seal_join_cgroups' result */
        int sock_fd, out_fd, err_fd, sync_fd;
} SealCtx;

int seal_join_cgroups(const int *fds, size_t n) {
        int r = 0;
        for (size_t i = 0; i < n; i++) {
                /* "0": the calling thread (v1 `tasks`) or process (v2 `cgroup.procs`). */
                if (r == 0 && write(fds[i], "0", 1) != 1)
                        r = -errno;
                close(fds[i]);
        }
        return r;
}

/* The join ran before everything else (see seal.h); this step reports how it went. */
static int step_cgroups(SealCtx *c) {
        return c->joined;
}

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
         * four above 10 first, so the moves below cannot clobber each other. */
        int s = fcntl(c->sock_fd, F_DUPFD_CLOEXEC, 10);
        int o = fcntl(c->out_fd, F_DUPFD_CLOEXEC, 10);
        int e = fcntl(c->err_fd, F_DUPFD_CLOEXEC, 10);
        int i = fcntl(c->plan->init_fd, F_DUPFD_CLOEXEC, 10);
        if (s < 0 || o < 0 || e < 0 || i < 0)
                return -errno;
        if (move_fd(o, 1) < 0 || move_fd(e, 2) < 0)
                return -errno;
        /* The socket stays close-on-exec: programs the run starts do not inherit it. */
        if (dup3(s, SANDBOX_SOCK_FD, O_CLOEXEC) < 0)
                return -errno;
        c->sock_fd = SANDBOX_SOCK_FD;
        /* Kept for step_runner, which execs it in the init and closes it in the runner. */
        if (dup3(i, SANDBOX_INIT_FD, O_CLOEXEC) < 0)
                return -errno;
        /* Closes everything else, the user namespace's sync fd among them. */
        if (syscall(SYS_close_range, SANDBOX_INIT_FD + 1U, ~0U, 0U) < 0)
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

/* pid 1's last act as a copy of the zygote: runs on init_stack (see runner_clone), turns into
 * the init program, and never returns. Its fds are its own since the clone: the socket is
 * handed on (the init's one fd, for FRAME_RUNNER_KILLED), stdin/stdout/stderr are closed (the
 * runner's copies carry the output; ours would only keep the pipes open). */
_noreturn_ _no_asan_ static void init_exec(long runner, int sock_fd) {
        char pid[24], *p = pid + sizeof pid;
        *--p = 0;
        do
                *--p = (char)('0' + runner % 10);
        while ((runner /= 10) > 0);
        char *argv[] = {"snakebox-init", p, NULL}, *envp[] = {NULL};
        int r = -EBADF;
        if (fcntl(sock_fd, F_SETFD, 0) == 0 && syscall(SYS_close_range, 0U, 2U, 0U) == 0) {
                syscall(SYS_execveat, SANDBOX_INIT_FD, "", argv, envp, AT_EMPTY_PATH);
                r = -errno;
        }
        /* The runner must not go on without an init: our death ends the namespace. */
        report_failure(sock_fd, SEAL_RUNNER, r);
        _exit(127);
}

#if defined(__x86_64__)
/* pid 1's stack from the clone of the runner to the exec: the runner goes on on the one they
 * shared, so pid 1 must not touch it after the clone. Holds init_exec's frame only. */
static _Alignas(16) char init_stack[16384];
static int init_sock_fd;

_no_asan_ static void init_exec_on_stack(long runner) {
        init_exec(runner, init_sock_fd);
}

/* long runner_clone(unsigned long flags, pid_t *ctid, void *parent_stack, void (*parent)(long)):
 * clone(flags) in which the CHILD goes on on the caller's stack and returns 0 (or the call
 * returns -errno), while the parent moves to parent_stack and calls parent(child pid) there,
 * never to return. glibc's clone() does the opposite (the child gets the new stack), which
 * would leave the runner without the frames it returns through. Only registers are used
 * after the syscall: the child may already be writing the stack they shared. */
long runner_clone(unsigned long flags, pid_t *ctid, void *parent_stack, void (*parent)(long));
__asm__(".text\n"
        ".type runner_clone, @function\n"
        "runner_clone:\n"
        "        mov %rdx, %r9\n" /* the parent's stack: clone has no 6th argument */
        "        mov %rcx, %r8\n" /* the parent's function: tls, unused without CLONE_SETTLS */
        "        mov %rsi, %r10\n" /* child_tid */
        "        xor %esi, %esi\n" /* newsp 0: the child keeps this stack */
        "        xor %edx, %edx\n" /* parent_tid */
        "        mov $56, %eax\n" /* __NR_clone */
        "        syscall\n"
        "        test %rax, %rax\n"
        "        jle 1f\n"
        "        mov %r9, %rsp\n"
        "        mov %rax, %rdi\n"
        "        call *%r8\n"
        "        ud2\n"
        "1:      ret\n"
        ".size runner_clone, .-runner_clone\n");
#endif

/* Everything before this step binds both processes: the runner inherits namespaces, limits,
 * identity and the filter. The calling process becomes the run's init and never returns; the
 * runner goes on.
 *
 * The runner is made without copying the address space: a clone with CLONE_VM shares it with
 * pid 1, which then execs the init program (sandbox-init.c) and so leaves the runner the only
 * owner of the one copy of the zygote that the zygote's clone made. A fork here (as a glibc
 * fork) would copy the zygote's page tables a second time for every run and have the kernel
 * tear down two address spaces at its end, and the init would share every page with the
 * zygote and the runner; measured, it cost about 20 ms of CPU per pandas run.
 *
 * glibc keeps the calling thread's id in its thread descriptor: a fork updates it in the child,
 * a raw clone does not, and with the zygote's id there pthread_kill() of the main thread fails
 * with ESRCH. CLONE_CHILD_SETTID writes the runner's id there, as glibc's fork does, at the
 * offset glibc publishes for debuggers (seal_plan_init). Without that offset, or on another
 * architecture, the runner is a glibc fork and the init execs all the same. */
static int step_runner(SealCtx *c) {
        sigset_t all, none;
        sigfillset(&all);
        sigemptyset(&none);
        /* Blocked before the runner exists, so that no signal finds the init with its default
         * action (ignored, for a namespace's init) before it waits for signals; sigwaitinfo
         * takes blocked ones, and the mask survives the exec. Nor can a handler run on pid 1
         * while it shares the runner's memory. */
        if (sigprocmask(SIG_SETMASK, &all, NULL) < 0)
                return -errno;
        long runner = -1;
#if defined(__x86_64__)
        if (c->plan->tid_offset >= 0) {
                pid_t *tid = (pid_t *)(void *)((char *)pthread_self() + c->plan->tid_offset);
                init_sock_fd = c->sock_fd;
                runner = runner_clone(CLONE_VM | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD, tid,
                        init_stack + sizeof init_stack, init_exec_on_stack);
                if (runner < 0)
                        return (int)runner;
        }
#endif
        if (runner < 0) {
                runner = fork();
                if (runner < 0)
                        return -errno;
                if (runner > 0)
                        init_exec(runner, c->sock_fd);
        }
        /* The runner: the init program is not its business. */
        close(SANDBOX_INIT_FD);
#if defined(__x86_64__)
        /* The kernel forgets a CLONE_VM child's rseq area (a fork keeps it registered), while
         * glibc goes on reading it (sched_getcpu) and libraries may run critical sections on
         * it: register it again, as glibc does for each thread it starts (failing, it stays
         * unregistered, as glibc leaves it on a kernel without rseq). glibc's fork also
         * registers the child's robust-futex list, which this does not: glibc publishes no
         * offset for it, and only a process-shared robust mutex that the main thread holds when
         * it dies would notice (its waiters get no EOWNERDEAD). */
        if (c->plan->tid_offset >= 0 && __rseq_size > 0)
                (void)syscall(SYS_rseq, (char *)__builtin_thread_pointer() + __rseq_offset,
                        __rseq_size < 32 ? 32U : __rseq_size, 0, RSEQ_SIG);
#endif
        if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
                return -errno;
        /* FRAME_READY is sent by the runner, once it has prepared what does not depend on the
         * request. */
        return 0;
}

/* The pipeline, walked in this order; a failing step is reported as its SealStep. */
static const struct {
        SealStep step;
        int (*fn)(SealCtx *c);
} seal_steps[] = {
        {SEAL_CGROUPS, step_cgroups},
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

int seal_run(const SealPlan *plan, int joined, int sock_fd, int out_fd, int err_fd, int sync_fd) {
        SealCtx c = {.plan = plan,
                .joined = joined,
                .sock_fd = sock_fd,
                .out_fd = out_fd,
                .err_fd = err_fd,
                .sync_fd = sync_fd};

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

/* Where glibc stores a thread's id in its descriptor (struct pthread), as glibc publishes it
 * for libthread_db: {bits, count, offset}. Checked against the caller's id, so that a glibc
 * that changed the format is noticed, not written to blindly. Returns the offset or -1. */
static long glibc_tid_offset(void) {
        const uint32_t *d = dlsym(RTLD_DEFAULT, "_thread_db_pthread_tid");
        if (!d || d[0] != 8 * sizeof(pid_t) || d[1] != 1 || d[2] > 4096)
                return -1;
        const pid_t *tid = (const pid_t *)(const void *)((const char *)pthread_self() + d[2]);
        return *tid == (pid_t)syscall(SYS_gettid) ? (long)d[2] : -1;
}

extern const char sandbox_init_bin[], sandbox_init_bin_end[];

/* The init program, in a sealed memfd: nothing a sandbox does can change what the next one
 * execs, and no path on the host is involved. */
static int init_memfd(void) {
        _cleanup_close_ int fd = memfd_create("snakebox-init", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        size_t n = (size_t)(sandbox_init_bin_end - sandbox_init_bin);
        int r = fd_write_all(fd, sandbox_init_bin, n);
        if (r < 0)
                return r;
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
                return -errno;
        return TAKE_FD(fd);
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
                .init_fd = -1,
                .tid_offset = glibc_tid_offset(),
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
        plan->init_fd = init_memfd();
        if (plan->init_fd < 0)
                return plan->init_fd;
        return 0;
}
