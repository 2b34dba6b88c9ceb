/* pid 1 of a sandbox: a tiny static program, embedded in snakebox (src/runner-blob.S) and
 * exec'd by the sealed child right after it started the runner (seal.c, step_runner). It does
 * for a run what tini or `docker run --init` do for a container:
 *
 * - it reaps every process that ends, so orphans (a shell's `cmd &`, daemonising tools,
 *   double-forking helpers) do not pile up as zombies against the run's process limit;
 * - it forwards every signal it receives to the runner; the server (which only knows the init's
 *   pid) and the runner's own processes can so reach the program as they would a process that
 *   is not an init, whose default actions apply (the kernel ignores default-action signals to a
 *   namespace's init, so SIGTERM to itself did nothing and os.abort() ended as SIGSEGV);
 * - it exits with the runner's status once the runner has ended, which ends every other
 *   process of the run (the kernel kills a pid namespace with its init). A runner killed by a
 *   signal is reported in a FRAME_RUNNER_KILLED first, since the init can only exit.
 *
 * Why a program of its own rather than the sealed child staying behind as it was: that child is
 * a copy of the zygote, so as an init it held a second copy of the zygote's page tables (the
 * runner being its fork), the kernel tore down two address spaces per run, and every page the
 * run shared with the zygote was counted in one more process. Exec'd, the init maps a few pages
 * of its own and the runner holds the only copy of the zygote (see step_runner).
 *
 * It starts sealed: the exec keeps the namespaces, identity, limits, no_new_privs and the seccomp
 * filter, and it is built without libc (-nostdlib -ffreestanding), so that it makes no call but
 * the few below, all of which the filter allows, and maps nothing but itself. argv[1] is the
 * runner's pid; fd 3 (SANDBOX_SOCK_FD) is the socket to the server, its only fd; every signal
 * is blocked on entry (the mask survives exec) and stays so: sigwaitinfo takes them. */
#include <asm/unistd.h>
#include <linux/prctl.h>
#include <linux/signal.h>
#include <linux/types.h>
#include <linux/wait.h>
#include <stddef.h>
#include <stdint.h>

#include "../proto.h"

#if !defined(__x86_64__) && !defined(__aarch64__)
#error "the sandbox init has syscall stubs for x86_64 and aarch64 only"
#endif

#define MSG_DONTWAIT 0x40
#define MSG_NOSIGNAL 0x4000
#define EINTR 4

static long sys6(long n, long a, long b, long c, long d, long e, long f) {
#if defined(__x86_64__)
        register long r10 __asm__("r10") = d;
        register long r8 __asm__("r8") = e;
        register long r9 __asm__("r9") = f;
        long ret;
        __asm__ volatile("syscall"
                         : "=a"(ret)
                         : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                         : "rcx", "r11", "memory");
        return ret;
#else
        register long x8 __asm__("x8") = n;
        register long x0 __asm__("x0") = a;
        register long x1 __asm__("x1") = b;
        register long x2 __asm__("x2") = c;
        register long x3 __asm__("x3") = d;
        register long x4 __asm__("x4") = e;
        register long x5 __asm__("x5") = f;
        __asm__ volatile("svc 0"
                         : "+r"(x0)
                         : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                         : "memory");
        return x0;
#endif
}

#define SYS(n, a, b, c, d) sys6(__NR_##n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

__attribute__((noreturn)) static void sys_exit(int code) {
        for (;;)
                SYS(exit_group, code, 0, 0, 0);
}

/* The kernel's sigset_t for rt_sig*: 64 signals, one word on both architectures. */
typedef unsigned long ksigset_t;

/* siginfo_t is 128 bytes; only si_signo (the first int) is read. */
typedef struct {
        int signo;
        int pad[31];
} ksiginfo_t;

static int parse_pid(const char *s) {
        int v = 0;
        if (!s || !*s)
                return -1;
        for (; *s; s++) {
                if (*s < '0' || *s > '9' || v > 100000000)
                        return -1;
                v = v * 10 + (*s - '0');
        }
        return v;
}

__attribute__((noreturn)) static void init_exit(int status) {
        if ((status & 0x7f) == 0) /* WIFEXITED */
                sys_exit((status >> 8) & 0xff);
        int32_t sig = status & 0x7f; /* WTERMSIG */
        char msg[FRAME_KILLED_SIZE] = {FRAME_RUNNER_KILLED};
        __builtin_memcpy(msg + 1, &sig, sizeof sig); /* little-endian on every host we build for */
        /* Never blocks: a server that stopped reading (the output cap) gets the status alone. */
        SYS(sendto, SANDBOX_SOCK_FD, msg, sizeof msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        sys_exit(128 + sig);
}

__attribute__((noreturn, used)) void init_main(long argc, char **argv);
__attribute__((noreturn, used)) void init_main(long argc, char **argv) {
        int runner = argc == 2 ? parse_pid(argv[1]) : -1;
        if (runner <= 1)
                sys_exit(127);
        /* The name `ps` and the server's tools see: the exec named us after the memfd's fd. */
        SYS(prctl, PR_SET_NAME, "snakebox-run", 0, 0);
        /* The exec kept the parent-death signal (our credentials did not change); set again so
         * that the run's end with the server does not hang on that. */
        SYS(prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0);
        ksigset_t all = ~0UL;
        /* Blocked already (the sealed child blocked them before it started the runner, and the
         * mask survives exec); set again so that nothing depends on it. */
        SYS(rt_sigprocmask, SIG_SETMASK, &all, 0, sizeof all);
        for (;;) {
                ksiginfo_t si;
                long sig = SYS(rt_sigtimedwait, &all, &si, 0, sizeof all);
                if (sig < 0)
                        continue; /* EINTR: nothing to do */
                if (sig != SIGCHLD) {
                        SYS(kill, runner, sig, 0, 0);
                        continue;
                }
                for (;;) {
                        int status = 0;
                        long pid = sys6(__NR_wait4, -1, (long)&status, WNOHANG | __WALL, 0, 0, 0);
                        if (pid == -EINTR)
                                continue;
                        if (pid <= 0)
                                break;
                        if (pid == runner)
                                init_exit(status);
                }
        }
}

/* The entry point: the kernel leaves argc, then argv, at the stack pointer. */
#if defined(__x86_64__)
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "        xor %rbp, %rbp\n"
        "        mov (%rsp), %rdi\n"
        "        lea 8(%rsp), %rsi\n"
        "        and $-16, %rsp\n"
        "        call init_main\n"
        "        hlt\n");
#else
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "        mov x29, #0\n"
        "        mov x30, #0\n"
        "        ldr x0, [sp]\n"
        "        add x1, sp, #8\n"
        "        bl init_main\n"
        "        brk #0\n");
#endif
