/* The run's system-call filter: an allow-list. It is compiled once, in the zygote, with
 * libseccomp, exported as classic BPF and kept in memory; each child loads that program with one
 * prctl, so a run pays no compilation and the child allocates nothing.
 *
 * One table, `syscalls`, names every call the filter knows, grouped, with a line per group that
 * says why. Its model is Docker's default profile (moby/profiles, seccomp/default_linux.go): we
 * allow what Docker allows a container without capabilities, minus what a run must not do even
 * there. A call gets one of four verdicts:
 * - allowed;
 * - denied with EPERM, so Python raises an ordinary PermissionError: calls that reach the
 *   kernel's global state (modules, kexec, reboot, swap, clocks, quotas, keyrings, NUMA policy),
 *   other processes' memory (ptrace, process_vm_*), new namespaces and mounts (the escape routes
 *   of a user namespace), large attack surfaces (bpf, perf_event_open, userfaultfd, io_uring,
 *   modify_ldt), and what Docker allows only with a capability a run lacks (but for lsm_*,
 *   left to the default);
 * - refused with ENOSYS, as if the kernel lacked it, where programs probe and fall back: clone3
 *   (its flags are behind a pointer the filter cannot read; glibc then uses clone, whose flags
 *   it checks), memfd_secret, listmount, statmount;
 * - decided by its arguments (clone, personality, socket, socketpair, ioctl: build_arg_rules).
 * Every number the table does not name, including calls newer than libseccomp or this table and
 * numbers no kernel has, is ENOSYS too: a new kernel interface stays closed until someone adds
 * it here, and a program that probes for it keeps running.
 *
 * Only the native architecture is in the filter. Any other calling convention (int 0x80 on
 * x86_64, x32's numbers, AArch32) kills the process: no ordinary code uses them, and their
 * different numbers are the classic way around a filter. 32-bit-only names (chown32, mmap2,
 * socketcall, the *_time64 calls, ...) are therefore left out of the table. */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "seal.h"
#include "util/macro.h"

typedef enum Verdict {
        ALLOW,
        DENY, /* EPERM */
        ABSENT, /* ENOSYS, the answer of a kernel without the call */
        BY_ARGS, /* allowed or denied by its arguments in build_arg_rules */
} Verdict;

typedef struct SyscallRule {
        const char *name;
        Verdict verdict;
} SyscallRule;

// clang-format off
#define A(n) {n, ALLOW}
#define D(n) {n, DENY}
#define N(n) {n, ABSENT}
#define R(n) {n, BY_ARGS}

/* A name this libseccomp does not know, or that this architecture lacks (open on aarch64), is
 * skipped: it then falls to the default, ENOSYS. Names marked "≥2.6" are unknown to libseccomp
 * 2.5.x; they are listed so that a newer libseccomp allows them as Docker does. */
static const SyscallRule syscalls[] = {
        /* Process lifetime, identity and limits: inside its pid and user namespaces a run has one
         * mapped uid and no capabilities, so these act on its own processes only, and hard
         * rlimits can only be lowered. */
        A("exit"), A("exit_group"), A("execve"), A("execveat"), A("fork"), A("vfork"),
        A("wait4"), A("waitid"), A("getpid"), A("getppid"), A("gettid"), A("getpgid"),
        A("getpgrp"), A("getsid"), A("setsid"), A("setpgid"), A("getuid"), A("geteuid"),
        A("getgid"), A("getegid"), A("getresuid"), A("getresgid"), A("getgroups"), A("setuid"),
        A("setgid"), A("setreuid"), A("setregid"), A("setresuid"), A("setresgid"),
        A("setfsuid"), A("setfsgid"), A("setgroups"), A("capget"), A("capset"),
        A("set_tid_address"), A("restart_syscall"), A("prctl"), A("seccomp"),
        A("landlock_create_ruleset"), A("landlock_add_rule"), A("landlock_restrict_self"),
        A("pidfd_open"), A("pidfd_send_signal"), A("process_mrelease"), A("uname"),
        A("sysinfo"), A("getcpu"), A("times"), A("getrusage"), A("getrlimit"), A("setrlimit"),
        A("prlimit64"), A("getpriority"), A("setpriority"), A("ioprio_get"), A("ioprio_set"),
        A("umask"), A("getrandom"),
        /* Threads and scheduling, what libc, CPython and OpenBLAS use; the cgroup and cpu
         * rlimit bound them, not the filter. clone's namespace flags are checked by argument;
         * clone3's are behind a pointer, so it is "absent" and glibc falls back to clone. */
        R("clone"), N("clone3"), A("set_robust_list"), A("get_robust_list"), A("rseq"),
        A("futex"), A("futex_waitv"), A("futex_wait"), A("futex_wake"), A("futex_requeue"),
        A("membarrier"), A("sched_yield"), A("sched_getaffinity"), A("sched_setaffinity"),
        A("sched_getparam"), A("sched_setparam"), A("sched_getscheduler"),
        A("sched_setscheduler"), A("sched_get_priority_max"), A("sched_get_priority_min"),
        A("sched_rr_get_interval"), A("sched_getattr"), A("sched_setattr"),
        /* Signals, clocks and timers; the pid namespace confines kill to the run. Setting a
         * clock is denied below. */
        A("rt_sigaction"), A("rt_sigprocmask"), A("rt_sigreturn"), A("rt_sigpending"),
        A("rt_sigsuspend"), A("rt_sigtimedwait"), A("rt_sigqueueinfo"), A("rt_tgsigqueueinfo"),
        A("sigaltstack"), A("signalfd"), A("signalfd4"), A("kill"), A("tkill"), A("tgkill"),
        A("alarm"), A("pause"), A("getitimer"), A("setitimer"), A("timer_create"),
        A("timer_delete"), A("timer_settime"), A("timer_gettime"), A("timer_getoverrun"),
        A("timerfd_create"), A("timerfd_settime"), A("timerfd_gettime"), A("nanosleep"),
        A("clock_nanosleep"), A("clock_gettime"), A("clock_getres"), A("gettimeofday"),
        A("time"),
        /* Memory of the run's own address space, bounded by the memory cgroup (or RLIMIT_AS)
         * and RLIMIT_MEMLOCK. */
        A("brk"), A("mmap"), A("munmap"), A("mremap"), A("mprotect"), A("madvise"),
        A("mincore"), A("msync"), A("mlock"), A("mlock2"), A("mlockall"), A("munlock"),
        A("munlockall"), A("remap_file_pages"), A("pkey_alloc"), A("pkey_free"),
        A("pkey_mprotect"), A("memfd_create"), A("map_shadow_stack"), A("mseal") /* ≥2.6 */,
        /* Files: the run's root holds only its own tmpfs, a read-only /usr, a fresh /proc and
         * five device nodes, so the kernel's permission checks on these are the boundary. */
        A("open"), A("openat"), A("openat2"), A("creat"), A("close"), A("close_range"),
        A("read"), A("write"), A("readv"), A("writev"), A("pread64"), A("pwrite64"),
        A("preadv"), A("pwritev"), A("preadv2"), A("pwritev2"), A("lseek"), A("dup"), A("dup2"),
        A("dup3"), A("fcntl"), A("flock"), A("fsync"), A("fdatasync"), A("sync"), A("syncfs"),
        A("sync_file_range"), A("fallocate"), A("fadvise64"), A("readahead"), A("cachestat"),
        A("truncate"), A("ftruncate"), A("stat"), A("fstat"), A("lstat"), A("newfstatat"),
        A("statx"), A("statfs"), A("fstatfs"), A("access"), A("faccessat"), A("faccessat2"),
        A("getdents"), A("getdents64"), A("getcwd"), A("chdir"), A("fchdir"), A("mkdir"),
        A("mkdirat"), A("rmdir"), A("rename"), A("renameat"), A("renameat2"), A("link"),
        A("linkat"), A("unlink"), A("unlinkat"), A("symlink"), A("symlinkat"), A("readlink"),
        A("readlinkat"), A("chmod"), A("fchmod"), A("fchmodat"), A("fchmodat2"), A("chown"),
        A("fchown"), A("fchownat"), A("lchown"), A("utime"), A("utimes"), A("utimensat"),
        A("futimesat"), A("mknod"), A("mknodat"), A("getxattr"), A("lgetxattr"),
        A("fgetxattr"), A("setxattr"), A("lsetxattr"), A("fsetxattr"), A("listxattr"),
        A("llistxattr"), A("flistxattr"), A("removexattr"), A("lremovexattr"),
        A("fremovexattr"), A("getxattrat") /* ≥2.6 */, A("setxattrat") /* ≥2.6 */,
        A("listxattrat") /* ≥2.6 */, A("removexattrat") /* ≥2.6 */, A("sendfile"),
        A("copy_file_range"), A("splice"), A("tee"), A("vmsplice"), A("pipe"), A("pipe2"), R("ioctl"),
        /* Waiting for events, and the old AIO interface (bounded by fs.aio-max-nr). */
        A("poll"), A("ppoll"), A("select"), A("pselect6"), A("epoll_create"),
        A("epoll_create1"), A("epoll_ctl"), A("epoll_ctl_old"), A("epoll_wait"),
        A("epoll_wait_old"), A("epoll_pwait"), A("epoll_pwait2"), A("eventfd"), A("eventfd2"),
        A("inotify_init"), A("inotify_init1"), A("inotify_add_watch"), A("inotify_rm_watch"),
        A("fanotify_mark"), A("io_setup"), A("io_destroy"), A("io_submit"), A("io_cancel"),
        A("io_getevents"), A("io_pgetevents"),
        /* Sockets: the network namespace has only lo and socket() admits only AF_UNIX, so the
         * rest act on unix sockets, the runner's frames among them. */
        R("socket"), R("socketpair"), A("bind"), A("connect"), A("listen"), A("accept"),
        A("accept4"), A("getsockname"), A("getpeername"), A("getsockopt"), A("setsockopt"),
        A("sendto"), A("recvfrom"), A("sendmsg"), A("recvmsg"), A("sendmmsg"), A("recvmmsg"),
        A("shutdown"),
        /* SysV and POSIX IPC, private to the run's ipc namespace. */
        A("msgget"), A("msgsnd"), A("msgrcv"), A("msgctl"), A("semget"), A("semop"),
        A("semtimedop"), A("semctl"), A("shmget"), A("shmat"), A("shmdt"), A("shmctl"),
        A("mq_open"), A("mq_unlink"), A("mq_timedsend"), A("mq_timedreceive"), A("mq_notify"),
        A("mq_getsetattr"),
        /* Architecture-specific calls libc needs: x86_64 thread pointer, RISC-V caches and
         * probing, the uretprobe trampoline. personality only with the values Docker allows
         * (by argument), not READ_IMPLIES_EXEC or ADDR_NO_RANDOMIZE. */
        A("arch_prctl"), A("set_thread_area"), A("get_thread_area"), A("riscv_flush_icache"),
        A("riscv_hwprobe") /* ≥2.6 */, A("uretprobe") /* ≥2.6 */, R("personality"),

        /* Denied: mounts and namespaces, the escape routes of a user namespace. */
        D("mount"), D("umount"), D("umount2"), D("pivot_root"), D("chroot"), D("unshare"),
        D("setns"), D("move_mount"), D("open_tree"), D("fsopen"), D("fsconfig"), D("fsmount"),
        D("fspick"), D("mount_setattr"),
        /* Denied: other processes' memory and files, even the run's own children's. */
        D("ptrace"), D("process_vm_readv"), D("process_vm_writev"), D("kcmp"),
        D("pidfd_getfd"), D("process_madvise"),
        /* Denied: keyrings, shared kernel state with a long record of bugs. */
        D("keyctl"), D("add_key"), D("request_key"),
        /* Denied: large kernel attack surfaces, and the 16-bit segment code of modify_ldt. */
        D("bpf"), D("perf_event_open"), D("userfaultfd"), D("io_uring_setup"),
        D("io_uring_enter"), D("io_uring_register"), D("fanotify_init"), D("modify_ldt"),
        /* Denied: handles that bypass the path walk, and the host's file-system statistics. */
        D("open_by_handle_at"), D("name_to_handle_at"), D("lookup_dcookie"), D("quotactl"),
        D("quotactl_fd"), D("ustat"), D("sysfs"), D("_sysctl"),
        /* Denied: hardware ports, vm86, obsolete calls. */
        D("iopl"), D("ioperm"), D("vm86"), D("vm86old"), D("nfsservctl"), D("vhangup"),
        D("uselib"), D("create_module"), D("get_kernel_syms"), D("query_module"),
        /* Denied: modules, kexec, reboot, swap, accounting, the kernel log. */
        D("init_module"), D("finit_module"), D("delete_module"), D("kexec_load"),
        D("kexec_file_load"), D("reboot"), D("swapon"), D("swapoff"), D("acct"), D("syslog"),
        /* Denied: the host's clocks (adjtimex with modes 0 only reads, but Docker denies it
         * too and no run needs it). */
        D("settimeofday"), D("clock_settime"), D("clock_adjtime"), D("adjtimex"), D("stime"),
        /* Denied: memory policy of the host's NUMA nodes. */
        D("mbind"), D("set_mempolicy"), D("get_mempolicy"), D("migrate_pages"),
        D("move_pages"), D("set_mempolicy_home_node"),
        /* Denied: names the uts namespace would allow, but nothing in a run needs. */
        D("sethostname"), D("setdomainname"),

        /* Absent: memory hidden from the kernel itself, and the mount table's new
         * interfaces; Docker allows them, a run has no use for them, and programs that probe
         * for them fall back on ENOSYS. Listed so that a newer libseccomp keeps them closed. */
        N("memfd_secret"), N("listmount") /* ≥2.6 */, N("statmount") /* ≥2.6 */,
};
// clang-format on

static int add_rule(
        scmp_filter_ctx ctx, uint32_t action, int nr, unsigned n, const struct scmp_arg_cmp *args) {
        int r = seccomp_rule_add_array(ctx, action, nr, n, args);
        /* A pseudo-number libseccomp keeps for another architecture is -EDOM/-EFAULT: skip it. */
        if (r == -EDOM || r == -EFAULT)
                return 0;
        return r;
}

static int add_named(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n,
        const struct scmp_arg_cmp *args) {
        int nr = seccomp_syscall_resolve_name(name);
        if (nr == __NR_SCMP_ERROR)
                return 0;
        return add_rule(ctx, action, nr, n, args);
}

/* The calls whose verdict depends on an argument. Every value an ALLOW rule admits is exact or
 * disjoint from its DENY rules, except where noted; anything else falls to the default
 * (ENOSYS), so each call also gets a DENY rule covering the rest. */
static int build_arg_rules(scmp_filter_ctx ctx) {
        const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
        int r;

        /* clone without a namespace flag; with any of them EPERM, as Docker. */
        const uint64_t ns_flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
                                  CLONE_NEWNET | CLONE_NEWCGROUP;
        struct scmp_arg_cmp no_ns = {.arg = 0, .op = SCMP_CMP_MASKED_EQ, .datum_a = ns_flags, .datum_b = 0};
        r = add_named(ctx, SCMP_ACT_ALLOW, "clone", 1, &no_ns);
        if (r < 0)
                return r;
        for (unsigned bit = 0; bit < 64; bit++) {
                uint64_t f = UINT64_C(1) << bit;
                if (!(ns_flags & f))
                        continue;
                struct scmp_arg_cmp a = {.arg = 0, .op = SCMP_CMP_MASKED_EQ, .datum_a = f, .datum_b = f};
                r = add_named(ctx, eperm, "clone", 1, &a);
                if (r < 0)
                        return r;
        }

        /* personality: Docker's values, PER_LINUX and PER_LINUX32 with or without UNAME26, and
         * 0xffffffff, the query libc and the sanitizers' runtimes make. READ_IMPLIES_EXEC would
         * make every readable mapping executable, ADDR_NO_RANDOMIZE would turn ASLR off for what
         * the run execs next. The kernel reads the argument as 32 bits, so the allowances mask
         * the upper half away (a C caller's personality(-1) is the query too). The denial
         * (anything but 0) overlaps the allowed values: libseccomp tests the masked matches
         * first, and tests/unit/test-seccomp.c checks that each allowed value passes. An
         * overlap can only deny an allowed value, never allow a denied one. */
        static const uint64_t personas[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};
        for (size_t i = 0; i < ELEMENTSOF(personas); i++) {
                struct scmp_arg_cmp a = {
                        .arg = 0, .op = SCMP_CMP_MASKED_EQ, .datum_a = 0xffffffffu, .datum_b = personas[i]};
                r = add_named(ctx, SCMP_ACT_ALLOW, "personality", 1, &a);
                if (r < 0)
                        return r;
        }
        struct scmp_arg_cmp not_zero = {.arg = 0, .op = SCMP_CMP_NE, .datum_a = 0, .datum_b = 0};
        r = add_named(ctx, eperm, "personality", 1, &not_zero);
        if (r < 0)
                return r;

        /* Sockets of AF_UNIX only: the network namespace is the wall, this the second one. */
        static const char *const socket_calls[] = {"socket", "socketpair"};
        for (size_t i = 0; i < ELEMENTSOF(socket_calls); i++) {
                struct scmp_arg_cmp unix_ = {.arg = 0, .op = SCMP_CMP_EQ, .datum_a = AF_UNIX, .datum_b = 0};
                struct scmp_arg_cmp not_unix = {
                        .arg = 0, .op = SCMP_CMP_NE, .datum_a = AF_UNIX, .datum_b = 0};
                r = add_named(ctx, SCMP_ACT_ALLOW, socket_calls[i], 1, &unix_);
                if (r < 0)
                        return r;
                r = add_named(ctx, eperm, socket_calls[i], 1, &not_unix);
                if (r < 0)
                        return r;
        }

        /* ioctl, but not TIOCSTI (faking terminal input into another session). The kernel reads
         * the request as 32 bits, so the denial masks the upper half away; the allowance (any
         * other 64-bit value) overlaps it for a TIOCSTI with garbage above: libseccomp tests the
         * masked rule first, and tests/unit/test-seccomp.c checks that such a call is denied. */
        struct scmp_arg_cmp tiocsti = {
                .arg = 1, .op = SCMP_CMP_MASKED_EQ, .datum_a = 0xffffffffu, .datum_b = TIOCSTI};
        struct scmp_arg_cmp not_tiocsti = {.arg = 1, .op = SCMP_CMP_NE, .datum_a = TIOCSTI, .datum_b = 0};
        r = add_named(ctx, eperm, "ioctl", 1, &tiocsti);
        if (r < 0)
                return r;
        r = add_named(ctx, SCMP_ACT_ALLOW, "ioctl", 1, &not_tiocsti);
        if (r < 0)
                return r;
        return 0;
}

/* Returns 0, or -EEXIST when the table names one call twice (directly or through an alias),
 * since two verdicts for one call would leave the outcome to libseccomp's merging. */
/* Without a memory cgroup the run's memory is measured from its processes' mappings
 * (memwatch.c): SysV shared memory that no process maps any more holds pages no process shows,
 * so in that mode shmget is EPERM. memfd_create stays: the runner gives the request's stdin as
 * a memfd; what a memfd holds unmapped is bounded by MAX_FILE_SIZE_MB per memfd and the open
 * files of the run (SECURITY.md, weaker when unprivileged). */
static bool unmeasurable(const char *name) {
        return strcmp(name, "shmget") == 0;
}

static int build_rules(scmp_filter_ctx ctx, bool no_memory_cgroup) {
        int nrs[ELEMENTSOF(syscalls)];
        size_t n_nrs = 0;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(syscalls); i++) {
                int nr = seccomp_syscall_resolve_name(syscalls[i].name);
                if (nr == __NR_SCMP_ERROR)
                        continue; /* newer than this libseccomp: ENOSYS by default */
                for (size_t j = 0; j < n_nrs; j++)
                        if (nrs[j] == nr)
                                return -EEXIST;
                nrs[n_nrs++] = nr;

                Verdict v = syscalls[i].verdict;
                if (v == ALLOW && no_memory_cgroup && unmeasurable(syscalls[i].name))
                        v = DENY;
                switch (v) {
                case ALLOW:
                        r = add_rule(ctx, SCMP_ACT_ALLOW, nr, 0, NULL);
                        break;
                case DENY:
                        r = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0, NULL);
                        break;
                case ABSENT: /* the default action: libseccomp refuses a rule that repeats it */
                case BY_ARGS:
                        r = 0;
                        break;
                default:
                        r = -EINVAL;
                }
                if (r < 0)
                        return r;
        }
        return build_arg_rules(ctx);
}

int seccomp_build(bool no_memory_cgroup, struct sock_fprog *ret) {
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(ENOSYS));
        if (!ctx)
                return -ENOMEM;
        int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        if (r >= 0)
                r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
        /* A binary search over the numbers instead of a list of ~300 tests, so a call's cost
         * does not depend on its place in the table. (The kernel also caches, per number, the
         * verdict of calls that take no argument test, and skips the program for them.) */
        if (r >= 0)
                r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
        if (r >= 0)
                r = build_rules(ctx, no_memory_cgroup);
        if (r < 0) {
                seccomp_release(ctx);
                return r;
        }

        /* libseccomp 2.5 exports to an fd only: go through a memfd and read the program back. */
        _cleanup_close_ int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                seccomp_release(ctx);
                return r;
        }
        r = seccomp_export_bpf(ctx, fd);
        seccomp_release(ctx);
        if (r < 0)
                return r;
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) != 0 ||
                st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS)
                return -EINVAL;
        struct sock_filter *insns = malloc((size_t)st.st_size);
        if (!insns)
                return -ENOMEM;
        if (pread(fd, insns, (size_t)st.st_size, 0) != st.st_size) {
                free(insns);
                return -EIO;
        }
        *ret = (struct sock_fprog){
                .len = (unsigned short)(st.st_size / sizeof(struct sock_filter)), .filter = insns};
        return 0;
}

int seccomp_load_prog(const struct sock_fprog *prog) {
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog, 0, 0) < 0)
                return -errno;
        return 0;
}
