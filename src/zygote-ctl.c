/* The server's side of the zygote: start it from a sealed in-memory copy of our binary with a
 * fixed environment, talk to it over the control socket, and stop it. See zygote.c for the
 * protocol and the theory of operation. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/fd.h"
#include "util/macro.h"
#include "zygote.h"

int zygote_image_open(void) {
        _cleanup_close_ int src = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
        if (src < 0)
                return -errno;
        struct stat st;
        if (fstat(src, &st) < 0)
                return -errno;
        _cleanup_close_ int mfd = memfd_create(ZYGOTE_ARGV0, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (mfd < 0)
                return -errno;
        ssize_t k = fd_copy(mfd, src, st.st_size);
        if (k < 0)
                return (int)k;
        /* A short image would be a broken zygote: ours cannot shrink while we run. */
        if (k < st.st_size)
                return -EIO;
        if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
                return -errno;
        return TAKE_FD(mfd);
}

/* The zygote's environment: fixed, plus the OpenBLAS tuning variables, which must be seen when
 * numpy loads (some CPUs compute wrong results without them) and carry no secret. */
static void build_env(char **env, size_t max, char storage[][128]) {
        static const char *const fixed[] = {
                "PATH=/usr/local/bin:/usr/bin:/bin",
                "HOME=/work",
                "TMPDIR=/tmp",
                "LANG=C.UTF-8",
                "PYTHONDONTWRITEBYTECODE=1",
                "MPLBACKEND=Agg",
                "OMP_NUM_THREADS=1",
                "OPENBLAS_NUM_THREADS=1",
                "MKL_NUM_THREADS=1",
                "NUMEXPR_NUM_THREADS=1",
        };
        static const char *const passed[] = {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"};
        size_t n = 0;
        for (size_t i = 0; i < ELEMENTSOF(fixed) && n + 1 < max; i++)
                env[n++] = (char *)fixed[i];
        for (size_t i = 0; i < ELEMENTSOF(passed) && n + 1 < max; i++) {
                const char *v = getenv(passed[i]);
                if (!v || strlen(v) > 64)
                        continue;
                snprintf(storage[i], 128, "%s=%s", passed[i], v);
                env[n++] = storage[i];
        }
        env[n] = NULL;
}

/* The zygote starts with no signal blocked, every disposition at its default, and a session of
 * its own. Everything it has, every sandbox inherits: the server blocks SIGHUP, SIGINT and SIGTERM
 * for its sigwait thread and ignores SIGPIPE, and a run that inherited that mask could not be
 * interrupted or terminated (Popen.terminate() did nothing, Pool.terminate() hung). Its own
 * session keeps it and every sandbox out of the server's process group, which a terminal's
 * Ctrl-C and kill(0, sig) address across pid namespaces (each sandbox takes a session of its
 * own too: seal.c, SEAL_SESSION). Returns 0 or a positive error number, as posix_spawn. */
static int spawn_attr_init(posix_spawnattr_t *attr) {
        sigset_t none, all;
        sigemptyset(&none);
        sigfillset(&all);
        int r = posix_spawnattr_init(attr);
        if (r != 0)
                return r;
        r = posix_spawnattr_setsigmask(attr, &none);
        if (r == 0)
                r = posix_spawnattr_setsigdefault(attr, &all);
        if (r == 0)
                r = posix_spawnattr_setflags(
                        attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
        if (r != 0)
                posix_spawnattr_destroy(attr);
        return r;
}

int zygote_start(int image_fd, const ZygoteConfig *init, ZygoteProc *ret) {
        _cleanup_close_pair_ int sv[2] = {-1, -1};
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        char path[64], storage[2][128];
        char *env[16];
        char *argv[] = {(char *)ZYGOTE_ARGV0, NULL};
        _cleanup_sigkill_wait_ pid_t pid = 0;
        int r;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        build_env(env, ELEMENTSOF(env), storage);
        snprintf(path, sizeof path, "/proc/self/fd/%d", image_fd);

        r = posix_spawn_file_actions_init(&fa);
        if (r != 0)
                return -r;
        /* dup2 clears close-on-exec on the target; everything else of ours is CLOEXEC. */
        r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        /* Not our working directory: every sandbox is a fork of the zygote, and its cwd's path
         * would end up in the interpreter's memory (sys.path handling, os.getcwd) of every run. */
        if (r == 0)
                r = posix_spawn_file_actions_addchdir_np(&fa, "/");
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, 1);
        if (r == 0)
                r = posix_spawn_file_actions_adddup2(&fa, sv[1], ZYGOTE_CTL_FD);
        if (r == 0)
                r = spawn_attr_init(&attr);
        if (r == 0) {
                r = posix_spawn(&pid, path, &fa, &attr, argv, env);
                posix_spawnattr_destroy(&attr);
        }
        posix_spawn_file_actions_destroy(&fa);
        if (r != 0)
                return -r;

        _cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0)
                return -errno;
        r = fd_send(sv[0], init, sizeof *init, NULL, 0);
        if (r == 0)
                r = fd_nonblock(sv[0]);
        if (r < 0)
                return r;
        *ret = (ZygoteProc){.pid = TAKE_PID(pid), .pidfd = TAKE_FD(pidfd), .ctl = TAKE_FD(sv[0])};
        return 0;
}

/* Receives one fixed-size message of the zygote into ret (size bytes, starting with its uint32
 * magic). Returns 0, -EPIPE when the zygote has gone, -EBADMSG for anything not exactly one of
 * our messages, or -errno. */
static int recv_fixed(ZygoteProc *z, void *ret, size_t size) {
        size_t nfds = 0;
        uint32_t magic;
        ssize_t k = fd_recv(z->ctl, ret, size, NULL, &nfds);
        if (k < 0)
                return (int)k;
        if (k == 0)
                return -EPIPE;
        if (k != (ssize_t)size)
                return -EBADMSG;
        memcpy(&magic, ret, sizeof magic);
        return magic == PROTO_MAGIC ? 0 : -EBADMSG;
}

int zygote_recv_ready(ZygoteProc *z, ZygoteReady *ret) {
        _Static_assert(offsetof(ZygoteReady, magic) == 0, "recv_fixed reads the magic first");
        int r = recv_fixed(z, ret, sizeof *ret);
        if (r < 0)
                return r;
        ret->message[sizeof ret->message - 1] = 0;
        return 0;
}

int zygote_request_spawn(ZygoteProc *z, uint64_t id, uint32_t uid, uint32_t gid, uint32_t cpu_limit_sec,
        uint64_t tmp_size_bytes, const int *fds, size_t ncgroups) {
        SpawnRequest req = {.magic = PROTO_MAGIC,
                .ncgroups = (uint32_t)ncgroups,
                .id = id,
                .uid = uid,
                .gid = gid,
                .cpu_limit_sec = cpu_limit_sec,
                .tmp_size_bytes = tmp_size_bytes};
        return fd_send(z->ctl, &req, sizeof req, fds, 3 + ncgroups);
}

int zygote_recv_reply(ZygoteProc *z, SpawnReply *ret) {
        _Static_assert(offsetof(SpawnReply, magic) == 0, "recv_fixed reads the magic first");
        return recv_fixed(z, ret, sizeof *ret);
}

void zygote_stop(ZygoteProc *z) {
        z->ctl = safe_close(z->ctl);
        if (z->pidfd >= 0) {
                syscall(SYS_pidfd_send_signal, z->pidfd, SIGKILL, NULL, 0);
                siginfo_t si;
                while (waitid(P_PIDFD, (id_t)z->pidfd, &si, WEXITED) < 0 && errno == EINTR)
                        ;
                z->pidfd = safe_close(z->pidfd);
        }
        z->pid = 0;
}
