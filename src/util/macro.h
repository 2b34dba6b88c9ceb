/* Cleanup attributes and ownership helpers shared by every module.
 *
 * Every owning local carries a cleanup attribute so that early returns cannot leak; ownership is
 * handed on with TAKE_PTR()/TAKE_FD(), which read the value and reset the variable in one step. */
#pragma once

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _noreturn_ __attribute__((noreturn))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_ __attribute__((warn_unused_result))
/* Code that runs on a stack AddressSanitizer does not know (seal.c's init_stack): instrumented,
 * its calls to noreturn functions print a stack-switch warning into the run's stderr. */
#define _no_asan_ __attribute__((no_sanitize_address))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define TAKE_PTR(p)                      \
        ({                               \
                __typeof__(p) _p_ = (p); \
                (p) = NULL;              \
                _p_;                     \
        })

#define TAKE_FD(fd)              \
        ({                       \
                int _fd_ = (fd); \
                (fd) = -1;       \
                _fd_;            \
        })

#define TAKE_PID(pid)                \
        ({                           \
                pid_t _pid_ = (pid); \
                (pid) = 0;           \
                _pid_;               \
        })

static inline void freep(void *p) {
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)
/* jansson's own cleanup (json_auto_t's json_decrefp) under our naming: for files that include
 * jansson.h, where json_decrefp is declared. */
#define _cleanup_json_ _cleanup_(json_decrefp)

/* Closes an fd and keeps errno intact, so it can run on error paths. Returns -1. */
static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                close(fd);
                errno = saved;
        }
        return -1;
}

static inline void closep(int *fd) {
        safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void close_pair(int p[2]) {
        p[0] = safe_close(p[0]);
        p[1] = safe_close(p[1]);
}
static inline void close_pairp(int (*p)[2]) {
        close_pair(*p);
}
#define _cleanup_close_pair_ _cleanup_(close_pairp)

/* The negative errno of the last failed libc call, never 0 (a caller testing r < 0 must see it). */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

/* Kills and reaps a child that has not been handed on yet (crun's cleanup_pid): a spawn whose
 * set-up fails half-way must not leave a process behind. Keeps errno intact. */
static inline void sigkill_waitp(pid_t *pid) {
        if (*pid > 0) {
                int saved = errno;
                kill(*pid, SIGKILL);
                while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                errno = saved;
        }
}
#define _cleanup_sigkill_wait_ _cleanup_(sigkill_waitp)

/* Kills a child someone else reaps (the zygote's sandboxes are the server's children:
 * CLONE_PARENT) unless it was handed on with TAKE_PID; keeps errno intact. */
static inline void sigkillp(pid_t *pid) {
        if (*pid > 0) {
                int saved = errno;
                kill(*pid, SIGKILL);
                errno = saved;
        }
}
#define _cleanup_sigkill_ _cleanup_(sigkillp)
