/* The run's system-call filter. It is compiled once, in the zygote, with libseccomp, exported
 * as classic BPF and kept in memory; each child loads that program with one prctl, so a run
 * pays no compilation. The filter allows by default and denies, with EPERM so Python raises a
 * normal OSError, at least what Docker's default profile denies: calls that reach the kernel's
 * global state (modules, kexec, reboot, swap, clock, quotas, keyrings), other processes'
 * memory (ptrace, process_vm_*), new namespaces and mounts (the escape routes of a user
 * namespace), large attack surfaces (bpf, perf_event_open, userfaultfd, io_uring), and sockets
 * of any family but AF_UNIX. clone3 fails with ENOSYS, because its flags are behind a pointer
 * the filter cannot read; glibc then falls back to clone, whose flags it checks. Any other
 * architecture's calling convention (e.g. int 0x80) kills the process. */
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

#include "sandbox.h"
#include "util/macro.h"

static const char *const denied[] = {
        /* mounts and namespaces */
        "mount",
        "umount",
        "umount2",
        "pivot_root",
        "chroot",
        "unshare",
        "setns",
        "move_mount",
        "open_tree",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "mount_setattr",
        /* other processes */
        "ptrace",
        "process_vm_readv",
        "process_vm_writev",
        "kcmp",
        "pidfd_getfd",
        "process_madvise",
        /* keyrings */
        "keyctl",
        "add_key",
        "request_key",
        /* kernel attack surface */
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "fanotify_init",
        "open_by_handle_at",
        "name_to_handle_at",
        "lookup_dcookie",
        "quotactl",
        "quotactl_fd",
        "nfsservctl",
        "vhangup",
        "uselib",
        "ustat",
        "sysfs",
        "_sysctl",
        "iopl",
        "ioperm",
        "vm86",
        "vm86old",
        "create_module",
        "get_kernel_syms",
        "query_module",
        /* modules, kexec, reboot, swap, accounting, logs */
        "init_module",
        "finit_module",
        "delete_module",
        "kexec_load",
        "kexec_file_load",
        "reboot",
        "swapon",
        "swapoff",
        "acct",
        "syslog",
        /* clocks */
        "settimeofday",
        "clock_settime",
        "clock_adjtime",
        "adjtimex",
        "stime",
        /* memory policy of the host's NUMA nodes */
        "mbind",
        "set_mempolicy",
        "migrate_pages",
        "move_pages",
        /* names the uts namespace would allow, but nothing in a run needs */
        "sethostname",
        "setdomainname",
};

static int add_rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n,
        const struct scmp_arg_cmp *args) {
        int nr = seccomp_syscall_resolve_name(name);
        if (nr == __NR_SCMP_ERROR)
                return 0; /* not a call on this architecture */
        int r = seccomp_rule_add_array(ctx, action, nr, n, args);
        /* A name libseccomp knows but this architecture lacks is -EDOM/-EFAULT: skip it. */
        if (r == -EDOM || r == -EFAULT)
                return 0;
        return r;
}

static int build_rules(scmp_filter_ctx ctx) {
        const uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
        int r;

        for (size_t i = 0; i < ELEMENTSOF(denied); i++) {
                r = add_rule(ctx, eperm, denied[i], 0, NULL);
                if (r < 0)
                        return r;
        }
        r = add_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL);
        if (r < 0)
                return r;

        static const uint64_t ns_flags[] = {CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER,
                CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP};
        for (size_t i = 0; i < ELEMENTSOF(ns_flags); i++) {
                struct scmp_arg_cmp a = SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]);
                r = add_rule(ctx, eperm, "clone", 1, &a);
                if (r < 0)
                        return r;
        }

        /* Spelled out: SCMP_A0 leaves datum_b to an implicit zero, which clang warns about. */
        struct scmp_arg_cmp not_unix = {.arg = 0, .op = SCMP_CMP_NE, .datum_a = AF_UNIX, .datum_b = 0};
        r = add_rule(ctx, eperm, "socket", 1, &not_unix);
        if (r < 0)
                return r;
        r = add_rule(ctx, eperm, "socketpair", 1, &not_unix);
        if (r < 0)
                return r;

        /* Faking terminal input into another session. */
        struct scmp_arg_cmp tiocsti = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI);
        r = add_rule(ctx, eperm, "ioctl", 1, &tiocsti);
        if (r < 0)
                return r;
        return 0;
}

int seccomp_build(struct sock_fprog *ret) {
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx)
                return -ENOMEM;
        int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        if (r >= 0)
                r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
        if (r >= 0)
                r = build_rules(ctx);
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
