/* pid 1 of a sandbox. The sealed child forks the runner as its last seal step and stays behind
 * as the run's init, the way tini or `docker run --init` do for a container:
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
 * The runner being a fork made by glibc also makes glibc's own record of the main thread's id
 * true again: the sandbox itself comes from a raw clone(), after which glibc still held the
 * zygote's tid, and pthread_kill() of the main thread failed with ESRCH.
 *
 * The init runs after the seal (same namespaces, identity, limits and seccomp filter as the
 * runner), runs no Python, allocates nothing, and keeps only the socket open, to send that one
 * frame. The fork costs one copy of the zygote's page tables; it happens before the sandbox
 * says it is ready, so no request waits for it. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "seal.h"

pid_t init_fork_runner(void) {
        sigset_t all, none;
        sigfillset(&all);
        sigemptyset(&none);
        /* Blocked before the fork, so that no signal finds the init with its default action
         * (ignored, for a namespace's init) before it waits for signals; sigwaitinfo takes
         * blocked ones. */
        if (sigprocmask(SIG_SETMASK, &all, NULL) < 0)
                return -errno;
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0 && sigprocmask(SIG_SETMASK, &none, NULL) < 0)
                _exit(127);
        return pid;
}

_noreturn_ static void init_exit(int status, int sock_fd) {
        if (WIFEXITED(status))
                _exit(WEXITSTATUS(status));
        int32_t sig = WTERMSIG(status);
        char msg[FRAME_KILLED_SIZE] = {FRAME_RUNNER_KILLED};
        memcpy(msg + 1, &sig, sizeof sig); /* little-endian on every host we build for */
        /* Never blocks: a server that stopped reading (the output cap) gets the status alone. */
        ssize_t k _unused_ = send(sock_fd, msg, sizeof msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        _exit(128 + sig);
}

_noreturn_ void init_serve(pid_t runner, int sock_fd) {
        sigset_t all;
        sigfillset(&all);
        /* The runner's output goes to the server through its own copies; ours would only keep
         * the pipes open. */
        for (int fd = 0; fd <= 2; fd++)
                close(fd);
        for (;;) {
                siginfo_t si;
                int sig = sigwaitinfo(&all, &si);
                if (sig < 0)
                        continue; /* EINTR: nothing to do */
                if (sig != SIGCHLD) {
                        (void)kill(runner, sig);
                        continue;
                }
                int status;
                pid_t pid;
                while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
                        if (pid == runner)
                                init_exit(status, sock_fd);
        }
}
