/* Unit tests of src/seal-seccomp.c: the table builds (no call named twice, which the builder
 * refuses with -EEXIST) into a program the kernel accepts, and, loaded in a forked child, gives
 * each kind of call its verdict: allowed calls run; denied ones fail with EPERM; numbers past
 * the table, calls newer than libseccomp and clone3 fail with ENOSYS; the argument rules let
 * exactly Docker's personality values, AF_UNIX sockets, clone without namespace flags and every
 * ioctl but TIOCSTI through, also where an ALLOW and a DENY rule overlap (so that a change in
 * libseccomp's merging of such rules is seen here); and another ABI's number kills the process.
 * The checks run in children: a seccomp filter cannot be removed once loaded. */
#include <errno.h>
#include <linux/filter.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "seal.h"

/* Numbers that are the same on x86_64 and aarch64 (the unified table from 424 on). */
#define NR_CLONE3 435
#define NR_MEMFD_SECRET 447
#define NR_STATMOUNT 457
#define NR_LISTMOUNT 458
#define NR_PAST_ANY_TABLE 1000

#define PER_READ_IMPLIES_EXEC 0x0400000
#define PER_ADDR_NO_RANDOMIZE 0x0040000

static struct sock_fprog prog;

static int setup(void **state) {
        (void)state;
        int r = seccomp_build(false, &prog);
        if (r < 0)
                print_error("seccomp_build: %s\n", strerror(-r));
        return r < 0 ? -1 : 0;
}

static int teardown(void **state) {
        (void)state;
        free(prog.filter);
        return 0;
}

/* One check in the filtered child: a raw call's result against the expected errno (0: success).
 * Reports a mismatch on stderr and counts it. */
static int failures;

static void expect(const char *what, long r, int want_errno) {
        int got = r < 0 ? errno : 0;
        if (got != want_errno) {
                dprintf(2, "%s: returned %ld, errno %d (%s); expected errno %d (%s)\n", what, r, got,
                        strerror(got), want_errno, strerror(want_errno));
                failures++;
        }
}

#define CHECK(want, call)                \
        do {                             \
                errno = 0;               \
                long r_ = (call);        \
                expect(#call, r_, want); \
        } while (0)

/* Forks, loads the filter in the child and runs fn there; returns the child's wait status. */
static int run_filtered(void (*fn)(void)) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || seccomp_load_prog(&prog) < 0)
                        _exit(100);
                fn();
                _exit(failures > 99 ? 99 : failures);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return status;
}

static void test_builds_within_bpf_limits(void **state) {
        (void)state;
        assert_non_null(prog.filter);
        assert_true(prog.len > 0 && prog.len <= BPF_MAXINSNS);
        print_message("filter: %u instructions\n", prog.len);
}

static void verdicts(void) {
        int p[2];
        if (pipe(p) < 0)
                _exit(98);

        /* Allowed. */
        CHECK(0, syscall(SYS_getpid));
        CHECK(0, syscall(SYS_write, p[1], "x", 1));
        int n;
        CHECK(0, syscall(SYS_ioctl, p[0], FIONREAD, &n));
        CHECK(0, syscall(SYS_personality, 0xffffffffUL));
        CHECK(0, syscall(SYS_personality, 0x0UL));
        CHECK(0, syscall(SYS_personality, 0x20008UL));
        CHECK(0, syscall(SYS_personality, 0x20000UL));
        CHECK(0, syscall(SYS_personality, 0x8UL));
        CHECK(0, syscall(SYS_personality, 0x100000000UL)); /* the kernel reads 32 bits: 0 */
        CHECK(0, syscall(SYS_personality, -1L)); /* the query, as personality(-1) in C */
        CHECK(0, syscall(SYS_personality, 0x0UL));
        long fd = syscall(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        expect("socket(AF_UNIX)", fd, 0);
        int sv[2];
        CHECK(0, syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
        long child = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
        if (child == 0)
                _exit(0);
        expect("clone(SIGCHLD)", child, 0);
        if (child > 0)
                waitpid((pid_t)child, NULL, 0);

        /* Denied: EPERM. */
        CHECK(EPERM, syscall(SYS_personality, PER_READ_IMPLIES_EXEC));
        CHECK(EPERM, syscall(SYS_personality, PER_ADDR_NO_RANDOMIZE));
        CHECK(EPERM, syscall(SYS_personality, (1UL << 32) | PER_ADDR_NO_RANDOMIZE));
        CHECK(EPERM, syscall(SYS_socket, AF_INET, SOCK_STREAM, 0));
        CHECK(EPERM, syscall(SYS_socket, AF_NETLINK, SOCK_RAW, 0));
        CHECK(EPERM, syscall(SYS_socketpair, AF_INET, SOCK_STREAM, 0, sv));
        CHECK(EPERM, syscall(SYS_ioctl, p[0], TIOCSTI, "x"));
        CHECK(EPERM, syscall(SYS_ioctl, p[0], (1UL << 32) | TIOCSTI, "x"));
        CHECK(EPERM, syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
        CHECK(EPERM, syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0));
        CHECK(EPERM, syscall(SYS_unshare, CLONE_NEWNS));
        CHECK(EPERM, syscall(SYS_ptrace, 0, 0, 0, 0));
        CHECK(EPERM, syscall(SYS_mount, 0, 0, 0, 0, 0));
        CHECK(EPERM, syscall(SYS_bpf, 0, 0, 0));
        CHECK(EPERM, syscall(SYS_get_mempolicy, 0, 0, 0, 0, 0));
#ifdef SYS_modify_ldt
        CHECK(EPERM, syscall(SYS_modify_ldt, 0, 0, 0));
#endif

        /* Absent: ENOSYS, and the process goes on. */
        CHECK(ENOSYS, syscall(NR_CLONE3, 0, 0));
        CHECK(ENOSYS, syscall(NR_MEMFD_SECRET, 0));
        CHECK(ENOSYS, syscall(NR_STATMOUNT, 0, 0, 0, 0));
        CHECK(ENOSYS, syscall(NR_LISTMOUNT, 0, 0, 0, 0));
        CHECK(ENOSYS, syscall(NR_PAST_ANY_TABLE));
        CHECK(ENOSYS, syscall(0x3fffffffL));
        CHECK(0, syscall(SYS_getppid));
}

static void test_verdicts(void **state) {
        (void)state;
        int status = run_filtered(verdicts);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

#if defined(__x86_64__)
static void x32_call(void) {
        /* getpid through the x32 ABI: the x86_64 architecture token with bit 30 set. */
        syscall(0x40000000L | SYS_getpid);
        _exit(0);
}

static void test_other_abi_kills(void **state) {
        (void)state;
        int status = run_filtered(x32_call);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGSYS);
}
#endif

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_builds_within_bpf_limits),
                cmocka_unit_test(test_verdicts),
#if defined(__x86_64__)
                cmocka_unit_test(test_other_abi_kills),
#endif
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
