/* The pool: warm sealed sandboxes, the queue of requests waiting for one, and the one thread
 * that drives both.
 *
 * Theory of operation
 * -------------------
 * Processes. The server (this process) starts the zygote (zygote.c) and asks it for sandboxes.
 * A sandbox is cloned by the zygote with CLONE_PARENT, so the server is its parent: the pool
 * thread reaps it through a pidfd, reads its exit status and rusage, and kills it with
 * pidfd_send_signal(SIGKILL). A sandbox is the init of its own pid namespace, so that one
 * SIGKILL ends every process the run started, daemons included; the kernel has killed them all
 * before the init's exit is reported. The sandboxes' parent-death signal is tied to this
 * thread, which lives as long as the server.
 *
 * File descriptors, per sandbox (all CLOEXEC, all non-blocking on our side):
 *   sock    SOCK_SEQPACKET pair: we send the request ('Q' frames); the sandbox sends READY,
 *           FAIL, output frames ('O', 'E') and its report ('R')
 *   out,err pipes: bytes written to fds 1 and 2 outside Python's sys.stdout/sys.stderr
 *   pidfd   readable when the sandbox's init exited
 *   timer   timerfd: the run's deadline, then the grace period for draining output
 * The sandbox's ends of sock, out and err, and the cgroup.procs fds, are sent to the zygote
 * with SCM_RIGHTS and closed here at once; the zygote closes its copies after the clone. So
 * after a run, EOF on all three means no process of the run is left holding them.
 *
 * Life of a sandbox: SPAWNING (asked the zygote) -> SEALING (has a pid, sealing itself) ->
 * READY (sent FRAME_READY; waits in a blocking read for the request) -> RUNNING (request sent,
 * deadline armed) -> reaped and drained -> the job's done callback -> destroyed. A sandbox runs
 * one request, ever.
 *
 * Threads. HTTP threads call pool_submit, which only appends to the inbox under the mutex and
 * writes the eventfd. Everything else (epoll, sandboxes, queue, zygote) belongs to the pool
 * thread, which calls each job's done callback; a waiting request holds no thread. Objects an
 * epoll event can name (sandboxes, client watches) are freed only after the batch of events
 * is handled, so a later event in the same batch never sees freed memory. */
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "frame.h"
#include "memwatch.h"
#include "pool-sched.h"
#include "proto.h"
#include "report.h"
#include "rootfs.h"
#include "route.h"
#include "sandbox.h"
#include "util/fd.h"
#include "util/log.h"
#include "util/macro.h"
#include "zygote.h"

/* Receive buffer: larger than any frame a sandbox sends (runner.py CHUNK), so frames arrive
 * whole; a bigger one is cut and only hurts its sender. */
#define RBUF_SIZE (256 * 1024)
#define DRAIN_GRACE_MS 1000
#define TICK_MS 250
#define START_TIMEOUT_MS (600 * 1000)
#define STALE_CGROUPS_MAX 64
#define UID_SLOTS_MAX 65536

typedef enum TagKind {
        T_WAKE,
        T_TICK,
        T_ZCTL,
        T_ZPID,
        T_ZRECYCLE,
        T_SB_PID,
        T_SB_SOCK,
        T_SB_OUT,
        T_SB_ERR,
        T_SB_TIMER,
        T_CLIENT,
} TagKind;

typedef struct Tag {
        TagKind kind;
        void *ptr;
} Tag;

/* DYING: answered or abandoned, killed, waiting to be reaped before its cgroups go. */
typedef enum SbState { SB_SPAWNING, SB_SEALING, SB_READY, SB_RUNNING, SB_DYING } SbState;

typedef struct Kind Kind;

typedef struct Sandbox {
        uint64_t id;
        Kind *kind;
        SbState state;
        pid_t pid; /* its init, pid 1 of its namespace and leader of its process group */
        pid_t runner_pid; /* the runner, its init's child (0 when unknown) */
        int pidfd, sock, out, err, timer;
        Cgroup cg;
        uint32_t uid, gid; /* host ids of its slot, held until it is released (reaped) */
        bool has_slot;
        Job *job;
        size_t sent; /* request bytes sent */
        bool reaped, sock_eof, out_eof, err_eof, draining, dead;
        siginfo_t si;
        struct rusage ru;
        uint64_t start_ms, cpu_base_ms;
        uint64_t report_maxrss; /* from the runner's 'Z' frame */
        bool report_ok; /* a well-formed 'Z' came: report_code is the runner's exit code */
        int report_code;
        int runner_signal; /* from the init's 'K' frame: the runner died of it */
        /* Without a memory cgroup (memwatch.c): the Pss the sandbox held before its run (its
         * share of the zygote), and the most the run held beyond it. */
        uint64_t mem_before, mem_peak;
        RunOutcome kill_reason; /* RUN_EXITED when we did not kill it */
        SealFailure failure;
        bool failed;
        Tag t_pid, t_sock, t_out, t_err, t_timer;
        struct Sandbox *next;
} Sandbox;

/* Watches a client's socket for hang-up; owned by the pool, outlives its job by one batch. */
typedef struct Watch {
        Job *job;
        int fd;
        Tag tag;
        struct Watch *next_dead;
} Watch;

typedef enum ZState { Z_DOWN, Z_STARTING, Z_UP } ZState;

/* One zygote and its sandboxes. POOL_FULL imported PREINSTALL_LIBS; POOL_LEAN imported only
 * the standard library, so that its clones are small: cheap to fork, to copy on write and to
 * tear down. A request goes to the lean kind when its code names none of the modules the full
 * zygote has loaded (route.c); anything it imports anyway still works, at import cost. */
struct Kind {
        PoolKind id;
        const char *name;
        bool enabled;
        uint32_t pool_size;
        ZygoteConfig init;
        ZygoteProc zyg;
        ZState zstate;
        uint64_t retry_ms, backoff_ms, started_ms;
        bool ever_up;
        uint32_t n_spawning, n_sealing, n_ready;
        Job *queue_head, *queue_tail;
        uint32_t queued;
        Tag t_zctl, t_zpid;
        /* Recycling (see "recycling" below): a successor importing while zyg serves, and the
         * zygote it replaced, answering the spawns it was sent before it exits. */
        ZygoteProc next, old;
        ZState next_state; /* Z_DOWN: none; Z_STARTING: importing */
        bool old_live, old_killed, recycling, recycle_failing;
        const char *recycle_why; /* the config key that started the recycle in progress */
        uint64_t up_ms; /* zyg took over: its age counts from here */
        uint64_t spawned; /* spawn requests zyg has answered */
        uint64_t next_started_ms, old_since_ms, recycle_retry_ms, recycle_backoff_ms;
        uint64_t fresh_from; /* a sandbox with a smaller id comes from a replaced zygote */
        Tag t_recycle;
};

/* What set the pool's fatal message (see struct Pool). */
typedef enum FatalCause { FATAL_NONE, FATAL_ZYGOTE, FATAL_SANDBOX } FatalCause;

struct Pool {
        Config cfg;
        pthread_t thread;
        bool thread_started;
        int epfd, wake_fd, tick_fd;
        Tag t_wake, t_tick;

        /* shared with HTTP threads, under lock */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        Job *inbox;
        uint32_t admitted;
        bool stopping;
        bool draining;
        int start_state; /* 0 pending, 1 serving, <0 failed */
        char start_why[512];
        PoolStatus status;

        /* pool thread only */
        Kind kinds[_POOL_KINDS];
        uint32_t queued;
        Sandbox *sandboxes;
        uint32_t n_running, n_dying;
        Sandbox *graveyard;
        Watch *dead_watches;
        /* Cgroups that could not be removed yet (see sb_release), retried every tick. */
        Cgroup stale[STALE_CGROUPS_MAX];
        size_t nstale;
        uint32_t seal_failures;
        /* Why no request can be served (fatal, when set), and what set it: a zygote that
         * could not start is cleared by the next one that does; a host that cannot seal, by
         * the next sandbox that seals. */
        FatalCause fatal_cause;
        bool stopped; /* the thread's copy of stopping */
        bool started; /* every kind sealed a sandbox once */
        bool memwatch_warned; /* logged once: a run's memory figures could not be read */
        char fatal[512];
        uint64_t next_id;
        char *rbuf; /* receive buffer, one per pool */

        /* Host uids of sandboxes: uid_first + i for slot i, one live sandbox per slot (per-user
         * kernel counts are then not shared between runs); a single id for all when
         * uid_exclusive is false (SANDBOX_UID_RANGE=off, or an unprivileged server). */
        uint32_t uid_first, uid_gid_single, nslots, slot_next;
        bool uid_exclusive;
        bool *slot_used;

        int image_fd;
        Route *route; /* set once, before pool_start returns; read-only after */
        CgroupRoot cgroups;
        char rt[256];
};

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int ep_add(Pool *p, int fd, uint32_t events, Tag *tag) {
        struct epoll_event ev = {.events = events, .data.ptr = tag};
        return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void ep_mod(Pool *p, int fd, uint32_t events, Tag *tag) {
        struct epoll_event ev = {.events = events, .data.ptr = tag};
        epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev);
}

static void ep_del(Pool *p, int fd) {
        if (fd >= 0)
                epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL);
}

static void arm_timer(int fd, uint64_t ms) {
        struct itimerspec its = {
                .it_value = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000}};
        if (ms == 0)
                its.it_value.tv_nsec = 1;
        timerfd_settime(fd, 0, &its, NULL);
}

static void publish_status(Pool *p) {
        pthread_mutex_lock(&p->lock);
        p->status.zygote_up = p->kinds[POOL_FULL].zstate == Z_UP;
        p->status.ready = p->kinds[POOL_FULL].n_ready + p->kinds[POOL_LEAN].n_ready;
        p->status.busy = p->n_running;
        p->status.queued = p->queued;
        p->status.spawning = p->kinds[POOL_FULL].n_spawning + p->kinds[POOL_FULL].n_sealing +
                             p->kinds[POOL_LEAN].n_spawning + p->kinds[POOL_LEAN].n_sealing;
        snprintf(p->status.fatal, sizeof p->status.fatal, "%s", p->fatal);
        pthread_mutex_unlock(&p->lock);
}

static void set_fatal(Pool *p, FatalCause cause, const char *why) {
        p->fatal_cause = cause;
        snprintf(p->fatal, sizeof p->fatal, "%s", cause == FATAL_NONE ? "" : why);
}

static void start_failed(Pool *p, const char *why);
static void start_progress(Pool *p);
static void drain_pipe(Pool *p, Sandbox *sb, int stream);
static uint32_t recycle_stale(Pool *p, Kind *k, uint32_t want);
static bool spawn_reply_first(Pool *p, Sandbox *sb);

/* ---- jobs ---- */

/* Hands a job back to its owner with its outcome. The job must be off the queue. */
static void job_finish(Pool *p, Job *job, RunOutcome outcome) {
        Watch *w = job->watch;
        job->result.outcome = outcome;
        if (!job->sandbox)
                job->result.queue_ms = now_ms() - job->enqueued_ms;
        /* Stop watching the client before handing the job back: the HTTP layer may close its
         * socket as soon as done runs. */
        if (w) {
                ep_del(p, w->fd);
                w->job = NULL;
                w->next_dead = p->dead_watches;
                p->dead_watches = w;
                job->watch = NULL;
        }
        job->sandbox = NULL;
        pthread_mutex_lock(&p->lock);
        p->admitted--;
        if (p->admitted == 0)
                pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        job->done(job);
}

static void internal_error(Job *job, const char *why) {
        snprintf(job->result.internal_error, sizeof job->result.internal_error, "%s", why);
}

static void queue_push(Pool *p, Kind *k, Job *job) {
        job->next = NULL;
        if (k->queue_tail)
                k->queue_tail->next = job;
        else
                k->queue_head = job;
        k->queue_tail = job;
        k->queued++;
        p->queued++;
}

static Job *queue_pop(Pool *p, Kind *k) {
        Job *job = k->queue_head;
        if (!job)
                return NULL;
        k->queue_head = job->next;
        if (!k->queue_head)
                k->queue_tail = NULL;
        job->next = NULL;
        k->queued--;
        p->queued--;
        return job;
}

static void queue_remove(Pool *p, Kind *k, Job *job) {
        Job **pp = &k->queue_head, *prev = NULL;
        while (*pp && *pp != job) {
                prev = *pp;
                pp = &(*pp)->next;
        }
        if (!*pp)
                return;
        *pp = job->next;
        if (k->queue_tail == job)
                k->queue_tail = prev;
        job->next = NULL;
        k->queued--;
        p->queued--;
}

static void fail_queue(Pool *p, Kind *k, RunOutcome outcome, const char *why) {
        Job *job;
        while ((job = queue_pop(p, k))) {
                if (why)
                        internal_error(job, why);
                job_finish(p, job, outcome);
        }
}

static void fail_queues(Pool *p, RunOutcome outcome, const char *why) {
        for (int i = 0; i < _POOL_KINDS; i++)
                fail_queue(p, &p->kinds[i], outcome, why);
}

/* ---- sandboxes ---- */

static void sb_kill(Sandbox *sb, RunOutcome reason) {
        if (sb->kill_reason == RUN_EXITED)
                sb->kill_reason = reason;
        if (sb->pidfd >= 0 && !sb->reaped)
                syscall(SYS_pidfd_send_signal, sb->pidfd, SIGKILL, NULL, 0);
}

static void sb_count(Pool *p, Sandbox *sb, int delta) {
        uint32_t *c = sb->state == SB_SPAWNING  ? &sb->kind->n_spawning
                      : sb->state == SB_SEALING ? &sb->kind->n_sealing
                      : sb->state == SB_READY   ? &sb->kind->n_ready
                      : sb->state == SB_RUNNING ? &p->n_running
                                                : &p->n_dying;
        *c += (uint32_t)delta;
}

static void sb_set_state(Pool *p, Sandbox *sb, SbState st) {
        sb_count(p, sb, -1);
        sb->state = st;
        sb_count(p, sb, +1);
}

/* Gives sb a host uid no live sandbox has. Returns 0, or -EUSERS when every slot is held: the
 * caller tries again when one is released. */
static int slot_take(Pool *p, Sandbox *sb) {
        if (!p->uid_exclusive) {
                sb->uid = p->uid_first;
                sb->gid = p->uid_gid_single;
                return 0;
        }
        for (uint32_t i = 0; i < p->nslots; i++) {
                /* Round robin: a uid just released is the last to be reused. */
                uint32_t s = (p->slot_next + i) % p->nslots;
                if (p->slot_used[s])
                        continue;
                p->slot_used[s] = true;
                p->slot_next = (s + 1) % p->nslots;
                sb->uid = sb->gid = p->uid_first + s;
                sb->has_slot = true;
                return 0;
        }
        return -EUSERS;
}

static void slot_put(Pool *p, Sandbox *sb) {
        if (!sb->has_slot)
                return;
        p->slot_used[sb->uid - p->uid_first] = false;
        sb->has_slot = false;
}

/* Unlinks a sandbox, closes everything and queues it for freeing after this batch of events.
 * Only for one that was reaped or never had a process. */
static void sb_release(Pool *p, Sandbox *sb) {
        if (sb->dead)
                return;
        sb->dead = true;
        sb_count(p, sb, -1);
        for (Sandbox **pp = &p->sandboxes; *pp; pp = &(*pp)->next)
                if (*pp == sb) {
                        *pp = sb->next;
                        break;
                }
        sb->pidfd = safe_close(sb->pidfd);
        sb->sock = safe_close(sb->sock);
        sb->out = safe_close(sb->out);
        sb->err = safe_close(sb->err);
        sb->timer = safe_close(sb->timer);
        /* Reaped, so its pid namespace is empty: no process of it holds the uid any more. */
        slot_put(p, sb);
        /* A cgroup still holding a task refuses rmdir: one whose last task the kernel is still
         * tearing down, or a child the zygote cloned but died before reporting (it exits on
         * its own and the sweep reaps it). Kept and retried until it is empty; past the bound
         * they wait for shutdown, which removes the whole tree. */
        if (cgroup_destroy(&sb->cg) < 0 && p->nstale < STALE_CGROUPS_MAX)
                p->stale[p->nstale++] = sb->cg;
        sb->next = p->graveyard;
        p->graveyard = sb;
}

/* Ends a sandbox that is no longer needed: released at once if it has no process left,
 * otherwise killed and kept (DYING) until its pidfd says it was reaped; tearing down a large
 * address space takes milliseconds, which nobody should wait for. */
static void sb_retire(Pool *p, Sandbox *sb) {
        if (sb->dead || sb->state == SB_DYING)
                return;
        if (sb->reaped || sb->pidfd < 0) {
                sb_release(p, sb);
                return;
        }
        /* Its teardown (freeing its copy of the zygote's memory) runs in its own context:
         * at the lowest priority it takes CPU only from nobody, not from the next run. Its
         * processes share the init's process group (SEAL_SESSION), unless they left it. */
        setpriority(PRIO_PGRP, (id_t)sb->pid, 19);
        cgroup_cpu_weight(&p->cgroups, &sb->cg, CGROUP_CPU_DYING);
        syscall(SYS_pidfd_send_signal, sb->pidfd, SIGKILL, NULL, 0);
        sb->sock = safe_close(sb->sock);
        sb->out = safe_close(sb->out);
        sb->err = safe_close(sb->err);
        sb->timer = safe_close(sb->timer);
        sb->job = NULL;
        sb_set_state(p, sb, SB_DYING);
}

static int sb_new(Pool *p, Kind *k) {
        _cleanup_close_pair_ int sv[2] = {-1, -1}, po[2] = {-1, -1}, pe[2] = {-1, -1};
        Sandbox *sb;
        int r;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0 ||
                pipe2(po, O_CLOEXEC | O_NONBLOCK) < 0 || pipe2(pe, O_CLOEXEC | O_NONBLOCK) < 0)
                return -errno;
        /* The sandbox's ends block: its writes wait for us instead of failing. */
        int fl = fcntl(sv[1], F_GETFL);
        fcntl(sv[1], F_SETFL, fl & ~O_NONBLOCK);
        fl = fcntl(po[1], F_GETFL);
        fcntl(po[1], F_SETFL, fl & ~O_NONBLOCK);
        fl = fcntl(pe[1], F_GETFL);
        fcntl(pe[1], F_SETFL, fl & ~O_NONBLOCK);

        sb = calloc(1, sizeof *sb);
        if (!sb)
                return -ENOMEM;
        sb->id = ++p->next_id;
        sb->kind = k;
        sb->pidfd = sb->timer = -1;
        sb->kill_reason = RUN_EXITED;
        for (size_t i = 0; i < CGROUP_PROCS_MAX; i++)
                sb->cg.procs_fds[i] = -1;
        r = slot_take(p, sb);
        if (r < 0) {
                free(sb);
                return r;
        }
        r = cgroup_create(&p->cgroups, sb->id, &p->cfg, &sb->cg);
        if (r < 0) {
                slot_put(p, sb);
                free(sb);
                return r;
        }
        sb->timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (sb->timer < 0) {
                r = -errno;
                cgroup_destroy(&sb->cg);
                slot_put(p, sb);
                free(sb);
                return r;
        }
        _Static_assert(CGROUP_PROCS_MAX <= SPAWN_CGROUPS_MAX, "the zygote takes fewer cgroup fds");
        int fds[3 + CGROUP_PROCS_MAX] = {sv[1], po[1], pe[1]};
        memcpy(fds + 3, sb->cg.procs_fds, sizeof sb->cg.procs_fds);
        r = zygote_request_spawn(&k->zyg, sb->id, sb->uid, sb->gid, fds, (size_t)sb->cg.nprocs_fds);
        cgroup_close_fds(&sb->cg);
        if (r < 0) {
                safe_close(sb->timer);
                cgroup_destroy(&sb->cg);
                slot_put(p, sb);
                free(sb);
                return r;
        }
        sb->sock = TAKE_FD(sv[0]);
        sb->out = TAKE_FD(po[0]);
        sb->err = TAKE_FD(pe[0]);
        sb->t_sock = (Tag){T_SB_SOCK, sb};
        sb->t_out = (Tag){T_SB_OUT, sb};
        sb->t_err = (Tag){T_SB_ERR, sb};
        sb->t_pid = (Tag){T_SB_PID, sb};
        sb->t_timer = (Tag){T_SB_TIMER, sb};
        sb->state = SB_SPAWNING;
        sb->next = p->sandboxes;
        p->sandboxes = sb;
        sb_count(p, sb, +1);
        if (ep_add(p, sb->sock, EPOLLIN, &sb->t_sock) < 0 || ep_add(p, sb->out, EPOLLIN, &sb->t_out) < 0 ||
                ep_add(p, sb->err, EPOLLIN, &sb->t_err) < 0 ||
                ep_add(p, sb->timer, EPOLLIN, &sb->t_timer) < 0) {
                r = -errno;
                sb_retire(p, sb);
                return r;
        }
        pthread_mutex_lock(&p->lock);
        p->status.sandboxes_created++;
        pthread_mutex_unlock(&p->lock);
        return 0;
}

/* Sends what is left of the request; EPOLLOUT brings us back if the socket is full. */
static void sb_send_request(Pool *p, Sandbox *sb) {
        Job *job = sb->job;
        while (sb->sent < job->request_len) {
                size_t n = MIN((size_t)FRAME_CHUNK, job->request_len - sb->sent);
                char hdr[9];
                struct iovec iov[2];
                int k = 0;
                if (sb->sent == 0) {
                        uint64_t total = job->request_len;
                        hdr[0] = FRAME_REQUEST;
                        for (int i = 0; i < 8; i++)
                                hdr[1 + i] = (char)(total >> (8 * i));
                        iov[k++] = (struct iovec){hdr, sizeof hdr};
                }
                iov[k++] = (struct iovec){job->request + sb->sent, n};
                struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)k};
                ssize_t w = sendmsg(sb->sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w < 0) {
                        if (errno == EAGAIN) {
                                ep_mod(p, sb->sock, EPOLLIN | EPOLLOUT, &sb->t_sock);
                                return;
                        }
                        sb_kill(sb, RUN_EXITED); /* it died; the exit status tells the rest */
                        return;
                }
                sb->sent += n;
        }
        ep_mod(p, sb->sock, EPOLLIN, &sb->t_sock);
}

static void sb_output(Pool *p, Sandbox *sb, int stream, const char *data, size_t n) {
        size_t take = frame_add_output(&sb->job->result, p->cfg.max_output_bytes, stream, data, n);
        if (take > 0 && sb->job->on_output)
                sb->job->on_output(sb->job, stream, data, take);
        if (take < n)
                sb_kill(sb, RUN_OUTPUT_LIMIT);
}

/* CPU time of the sandbox's init and its waited-for children, in ms, from /proc/<pid>/stat:
 * the fallback when no cgroup counts the run's CPU (it misses children nobody waited for). */
static uint64_t proc_cpu_ms(pid_t pid) {
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        ssize_t k = read(fd, buf, sizeof buf - 1);
        if (k <= 0)
                return 0;
        buf[k] = 0;
        /* Fields after the command name, which may contain anything but ends at the last ')'. */
        char *q = strrchr(buf, ')');
        if (!q)
                return 0;
        unsigned long long v[4] = {0};
        if (sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &v[0], &v[1],
                    &v[2], &v[3]) != 4)
                return 0;
        long hz = sysconf(_SC_CLK_TCK);
        return (v[0] + v[1] + v[2] + v[3]) * 1000 / (uint64_t)(hz > 0 ? hz : 100);
}

/* CPU time of the run so far, in ms: every process of it when a cgroup counts it, otherwise
 * the runner and the init, each with its waited-for children (the runner's are the program's;
 * the init's are the orphans it reaped, and the runner itself once it ended). */
static uint64_t sb_cpu_ms(Pool *p, Sandbox *sb) {
        uint64_t us;
        if (cgroup_cpu_usage_us(&p->cgroups, &sb->cg, &us) == 0)
                return us / 1000;
        if (sb->reaped)
                return (uint64_t)(sb->ru.ru_utime.tv_sec + sb->ru.ru_stime.tv_sec) * 1000 +
                       (uint64_t)(sb->ru.ru_utime.tv_usec + sb->ru.ru_stime.tv_usec) / 1000;
        /* The runner first: should the init reap it in between, it is counted twice (a few ms
         * at the very end of a run), never missed. */
        uint64_t runner = sb->runner_pid > 0 ? proc_cpu_ms(sb->runner_pid) : 0;
        return runner + proc_cpu_ms(sb->pid);
}

/* The first child of pid (the runner, when pid is a sandbox's init that has just said it is
 * ready: nothing else runs in it yet), or 0. */
static pid_t proc_first_child(pid_t pid) {
        char path[64], buf[32];
        snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        ssize_t k = read(fd, buf, sizeof buf - 1);
        if (k <= 0)
                return 0;
        buf[k] = 0;
        long v = strtol(buf, NULL, 10); /* kernel-written */
        return v > 0 && v <= INT32_MAX ? (pid_t)v : 0;
}

static void sb_assign(Pool *p, Sandbox *sb, Job *job) {
        sb_set_state(p, sb, SB_RUNNING);
        sb->job = job;
        job->sandbox = sb;
        sb->start_ms = now_ms();
        job->result.queue_ms = sb->start_ms - job->enqueued_ms;
        sb->cpu_base_ms = sb_cpu_ms(p, sb); /* sealing is not the run's time */
        MemSample ms;
        /* Before the request nothing runs in it but its init and the runner. */
        if (p->cgroups.mode == CGROUP_NONE && memwatch_sample(sb->pid, 2, &ms) == 0)
                sb->mem_before = ms.pss_bytes - MIN(ms.private_bytes, ms.pss_bytes);
        /* Back to normal priority from the zygote's lower one (see zygote.c, cgroup.c). */
        setpriority(PRIO_PGRP, (id_t)sb->pid, 0);
        cgroup_cpu_weight(&p->cgroups, &sb->cg, CGROUP_CPU_RUNNING);
        uint64_t timeout_ms = job->timeout_ms ? job->timeout_ms : (uint64_t)p->cfg.timeout_sec * 1000;
        job->result.timeout_ms = (uint32_t)timeout_ms;
        job->result.memory_bytes = p->cfg.memory_limit_bytes;
        if (job->memory_bytes && job->memory_bytes < p->cfg.memory_limit_bytes) {
                /* Without a memory cgroup the runner lowers its RLIMIT_AS itself. */
                int r = cgroup_set_memory(&p->cgroups, &sb->cg, job->memory_bytes);
                if (r < 0 && r != -EOPNOTSUPP)
                        log_errno(r, "cannot lower a run's memory limit");
                job->result.memory_bytes = job->memory_bytes;
        }
        arm_timer(sb->timer, timeout_ms);
        sb_send_request(p, sb);
}

/* Fills the job's result and hands the job back; then the sandbox is retired. Two ways here:
 * the runner's report arrived (it is about to _exit: answer now, the teardown of its address
 * space happens while the client already has its answer), or the init was reaped. */
static void sb_complete(Pool *p, Sandbox *sb) {
        Job *job = sb->job;
        RunResult *r = &job->result;
        CgroupStats cs;

        r->duration_ms = now_ms() - sb->start_ms;
        uint64_t cpu = sb_cpu_ms(p, sb);
        r->cpu_ms = cpu > sb->cpu_base_ms ? cpu - sb->cpu_base_ms : 0;
        cgroup_read_stats(&p->cgroups, &sb->cg, &cs);
        if (p->cgroups.mode != CGROUP_NONE)
                r->memory_peak_bytes = cs.memory_peak_bytes;
        else
                r->memory_peak_bytes = MAX(
                        sb->mem_peak, sb->reaped ? (uint64_t)sb->ru.ru_maxrss * 1024 : sb->report_maxrss);
        r->process_limit_hit = cs.pids_max_hits > 0 || cs.pids_peak >= p->cfg.max_processes;
        if (!sb->reaped) {
                r->signal = 0;
        } else if (sb->si.si_code == CLD_EXITED && sb->runner_signal &&
                   sb->si.si_status == 128 + sb->runner_signal) {
                /* The init exits with 128 + the signal that killed the runner, and said which. */
                r->exit_code = -1;
                r->signal = sb->runner_signal;
        } else if (sb->si.si_code == CLD_EXITED) {
                r->exit_code = sb->si.si_status;
                r->signal = 0;
        } else {
                r->exit_code = -1;
                r->signal = sb->si.si_status;
        }
        RunOutcome outcome = sb->kill_reason;
        if (outcome == RUN_EXITED && cs.oom_kills > 0 && (r->signal != 0 || r->exit_code != 0))
                outcome = RUN_MEMORY_LIMIT;
        sb->job = NULL;
        job_finish(p, job, outcome);
        sb_retire(p, sb);
}

static void sb_maybe_complete(Pool *p, Sandbox *sb) {
        if (sb->state != SB_RUNNING || sb->dead)
                return;
        if (!sb->reaped) {
                /* The report is the runner's last act before _exit: all it wrote to the socket
                 * came before it; what its processes wrote to the pipes is read now. Anything
                 * still running is killed with the sandbox. The status is the runner's; only
                 * the program itself could have forged it. */
                if (sb->kill_reason != RUN_EXITED || !sb->report_ok)
                        return;
                drain_pipe(p, sb, 1);
                drain_pipe(p, sb, 2);
                if (sb->dead || sb->state != SB_RUNNING || sb->reaped)
                        return;
                sb->job->result.exit_code = sb->report_code;
                sb_complete(p, sb);
                return;
        }
        if (sb->sock_eof && sb->out_eof && sb->err_eof) {
                sb_complete(p, sb);
                return;
        }
        if (!sb->draining) {
                /* Every process of the run is gone, so EOF is near; do not wait forever if an
                 * fd was passed somewhere we cannot see. */
                sb->draining = true;
                arm_timer(sb->timer, DRAIN_GRACE_MS);
        }
}

static void seal_failed(Pool *p, Sandbox *sb) {
        char why[512];
        if (sb->failed) {
                const char *hint = seal_step_hint(sb->failure.step, sb->failure.error);
                snprintf(why, sizeof why, "a sandbox could not be sealed: step \"%s\" failed: %s%s%s",
                        seal_step_name(sb->failure.step), strerror(sb->failure.error), *hint ? ". " : "",
                        hint);
        } else
                snprintf(why, sizeof why, "a sandbox died while sealing (status %d)", sb->si.si_status);
        p->seal_failures++;
        start_failed(p, why); /* at start-up, the first failure is the verdict */
        if (p->seal_failures == 1 || p->seal_failures == SCHED_SEAL_FAILURES_FATAL)
                log_error("%s", why);
        if (p->seal_failures >= SCHED_SEAL_FAILURES_FATAL || !sb->kind->ever_up) {
                set_fatal(p, FATAL_SANDBOX, why);
                fail_queues(p, RUN_INTERNAL, why);
        }
}

static void on_sb_pid(Pool *p, Sandbox *sb) {
        if (sb->reaped)
                return;
        memset(&sb->si, 0, sizeof sb->si);
        if (syscall(SYS_waitid, P_PIDFD, sb->pidfd, &sb->si, WEXITED | WNOHANG, &sb->ru) < 0 ||
                sb->si.si_pid == 0)
                return;
        sb->reaped = true;
        ep_del(p, sb->pidfd);
        if (sb->state == SB_DYING) {
                sb_release(p, sb);
                return;
        }
        if (sb->state == SB_RUNNING) {
                sb_maybe_complete(p, sb);
                return;
        }
        /* Died before it ran anything: sealing failed, or it was killed while waiting. */
        if (sb->state == SB_SEALING)
                seal_failed(p, sb);
        else if (sb->state == SB_READY && !p->stopped)
                log_error("a ready sandbox died (status %d); replacing it", sb->si.si_status);
        sb_retire(p, sb);
}

static void on_frame(Pool *p, Sandbox *sb, const char *m, size_t n) {
        Frame f;
        FramePhase ph = FRAME_PHASE_QUIET;
        if (sb->state == SB_SEALING)
                ph = FRAME_PHASE_SEALING;
        else if (sb->state == SB_RUNNING)
                ph = sb->job->result.report_done ? FRAME_PHASE_REPORTED : FRAME_PHASE_RUNNING;
        frame_parse(ph, m, n, &f);
        switch (f.verdict) {
        case FRAME_IGNORE:
                break;
        case FRAME_IS_READY:
                sb->runner_pid = proc_first_child(sb->pid);
                sb_set_state(p, sb, SB_READY);
                p->seal_failures = 0;
                set_fatal(p, FATAL_NONE, "");
                start_progress(p);
                break;
        case FRAME_IS_FAIL:
                sb->failure = f.failure;
                sb->failed = true;
                break;
        case FRAME_IS_OUTPUT:
                sb_output(p, sb, f.stream, f.data, f.len);
                break;
        case FRAME_IS_REPORT:
                frame_add_report(&sb->job->result, f.data, f.len);
                break;
        case FRAME_IS_REPORT_END:
                /* The verdict, taken once: sb_maybe_complete only reads it. The report itself
                 * is parsed once, on the HTTP thread (api_build_answer): a report of the
                 * largest size takes longer to parse than this thread may stall for others. */
                sb->job->result.report_done = true;
                sb->report_ok = true;
                sb->report_code = f.exit_code;
                sb->report_maxrss = f.maxrss_bytes;
                break;
        case FRAME_IS_REPORT_BAD_END:
                sb->job->result.report_done = true;
                sb->job->result.report_end_bad = true;
                break;
        case FRAME_IS_RUNNER_KILLED:
                sb->runner_signal = f.signal;
                break;
        case FRAME_IS_HOSTILE:
                sb_kill(sb, RUN_EXITED);
                break;
        }
}

static void on_sb_sock(Pool *p, Sandbox *sb, uint32_t events) {
        if (sb->state == SB_SPAWNING && !spawn_reply_first(p, sb))
                return;
        if (events & EPOLLOUT && sb->state == SB_RUNNING && sb->job)
                sb_send_request(p, sb);
        for (int i = 0; i < 64 && !sb->sock_eof; i++) {
                ssize_t k = recv(sb->sock, p->rbuf, RBUF_SIZE, MSG_DONTWAIT);
                if (k < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        k = 0; /* ECONNRESET and the like: the same as EOF here */
                }
                if (k == 0) {
                        sb->sock_eof = true;
                        ep_del(p, sb->sock);
                        break;
                }
                on_frame(p, sb, p->rbuf, (size_t)k);
                if (sb->dead)
                        return;
        }
        sb_maybe_complete(p, sb);
}

/* Reads what the pipe holds (at most 1 MiB per call, to stay fair to other sandboxes). */
static void drain_pipe(Pool *p, Sandbox *sb, int stream) {
        int fd = stream == 1 ? sb->out : sb->err;
        bool *eof = stream == 1 ? &sb->out_eof : &sb->err_eof;
        for (int i = 0; i < 16 && !*eof && !sb->dead; i++) {
                ssize_t k = read(fd, p->rbuf, 65536);
                if (k < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        k = 0;
                }
                if (k == 0) {
                        *eof = true;
                        ep_del(p, fd);
                        break;
                }
                if (sb->state == SB_RUNNING && sb->job)
                        sb_output(p, sb, stream, p->rbuf, (size_t)k);
        }
}

static void on_sb_pipe(Pool *p, Sandbox *sb, int stream) {
        drain_pipe(p, sb, stream);
        sb_maybe_complete(p, sb);
}

static void on_sb_timer(Pool *p, Sandbox *sb) {
        uint64_t ticks;
        ssize_t k _unused_ = read(sb->timer, &ticks, sizeof ticks);
        if (sb->state != SB_RUNNING)
                return;
        if (!sb->reaped) {
                sb_kill(sb, RUN_TIMEOUT);
                return;
        }
        /* Drain grace over: take what arrived and finish. */
        on_sb_sock(p, sb, EPOLLIN);
        if (sb->dead)
                return;
        sb->sock_eof = sb->out_eof = sb->err_eof = true;
        sb_maybe_complete(p, sb);
}

static Sandbox *find_sandbox(Pool *p, uint64_t id) {
        for (Sandbox *sb = p->sandboxes; sb; sb = sb->next)
                if (sb->id == id)
                        return sb;
        return NULL;
}

/* ---- scheduling: pool-sched.c decides, this acts ---- */

static SchedKind sched_view(const Kind *k) {
        return (SchedKind){
                .enabled = k->enabled,
                .up = k->zstate == Z_UP,
                .pool_size = k->pool_size,
                .spawning = k->n_spawning,
                .sealing = k->n_sealing,
                .ready = k->n_ready,
                .queued = k->queued,
                .oldest_ms = k->queue_head ? k->queue_head->enqueued_ms : 0,
        };
}

static void sched_views(const Pool *p, SchedKind ret[_POOL_KINDS]) {
        for (int i = 0; i < _POOL_KINDS; i++)
                ret[i] = sched_view(&p->kinds[i]);
}

static Sandbox *find_ready(Pool *p, Kind *k) {
        for (Sandbox *sb = p->sandboxes; sb; sb = sb->next)
                if (sb->kind == k && sb->state == SB_READY)
                        return sb;
        return NULL;
}

/* Requests already queued for the full zygote go to the lean one when sched_choose_kind would
 * now send a new one there (the full zygote went down with none of its sandboxes ready). */
static void reroute_to_lean(Pool *p) {
        SchedKind v[_POOL_KINDS];
        sched_views(p, v);
        if (sched_choose_kind(v, POOL_FULL) != POOL_LEAN)
                return;
        Job *job;
        while ((job = queue_pop(p, &p->kinds[POOL_FULL]))) {
                job->kind = POOL_LEAN;
                queue_push(p, &p->kinds[POOL_LEAN], job);
        }
}

static void dispatch(Pool *p) {
        /* Requests that queued while the full zygote's last ready sandboxes were still there. */
        reroute_to_lean(p);
        for (;;) {
                SchedKind v[_POOL_KINDS];
                sched_views(p, v);
                int pick = sched_next_queue(v, p->n_running, p->cfg.max_concurrency);
                if (pick < 0)
                        break;
                Kind *k = &p->kinds[pick];
                sb_assign(p, find_ready(p, k), queue_pop(p, k));
        }
        if (p->stopped)
                return;
        for (int i = 0; i < _POOL_KINDS; i++) {
                Kind *k = &p->kinds[i];
                if (!k->enabled || k->zstate != Z_UP)
                        continue;
                SchedKind v = sched_view(k);
                uint32_t want = sched_want(&v, p->started, p->n_running, p->cfg.max_concurrency);
                /* Sandboxes of a replaced zygote are not counted: fresh ones replace them (and
                 * its ready ones beyond want are retired, so the counts are read again). */
                uint32_t stale = recycle_stale(p, k, want);
                v = sched_view(k);
                v.stale = stale;
                for (uint32_t n = sched_spawn_count(&v, want, p->seal_failures); n > 0; n--) {
                        int r = sb_new(p, k);
                        if (r == -EUSERS)
                                break; /* every uid is held: retried when one is released */
                        if (r < 0) {
                                log_errno(r, "cannot request a sandbox");
                                break;
                        }
                }
        }
}

/* ---- zygotes ---- */

static void zygote_down(Pool *p, Kind *k, const char *why) {
        if (k->zstate == Z_DOWN)
                return;
        ep_del(p, k->zyg.ctl);
        ep_del(p, k->zyg.pidfd);
        zygote_stop(&k->zyg);
        k->zstate = Z_DOWN;
        /* Requests the zygote never answered: their children, if any, exit on the closed pipe
         * and are reaped by the sweep. (Those sent to a zygote it replaced are that one's.) */
        Sandbox *next;
        for (Sandbox *sb = p->sandboxes; sb; sb = next) {
                next = sb->next;
                if (sb->kind == k && sb->state == SB_SPAWNING && !(k->old_live && sb->id < k->fresh_from))
                        sb_retire(p, sb);
        }
        reroute_to_lean(p);
        if (!p->stopped) {
                uint64_t now = now_ms();
                k->backoff_ms = sched_restart_backoff(now, k->started_ms, k->backoff_ms);
                k->retry_ms = now + k->backoff_ms;
                pthread_mutex_lock(&p->lock);
                p->status.zygote_restarts++;
                pthread_mutex_unlock(&p->lock);
                log_error(
                        "%s %s; starting a new one%s", k->name, why, k->backoff_ms ? " after a pause" : "");
        }
}

static void zygote_up(Pool *p, Kind *k) {
        if (k->next_state == Z_STARTING) {
                /* The zygote died while its successor was importing: the successor takes its
                 * place, and its ZygoteReady arrives as a restarted zygote's would. */
                k->zyg = k->next;
                k->next = (ZygoteProc){.pidfd = -1, .ctl = -1};
                k->next_state = Z_DOWN;
                k->started_ms = k->next_started_ms;
                k->zstate = Z_STARTING;
                k->t_zctl = (Tag){T_ZCTL, k};
                k->t_zpid = (Tag){T_ZPID, k};
                ep_mod(p, k->zyg.ctl, EPOLLIN, &k->t_zctl);
                ep_mod(p, k->zyg.pidfd, EPOLLIN, &k->t_zpid);
                return;
        }
        int r = zygote_start(p->image_fd, &k->init, &k->zyg);
        if (r < 0) {
                log_errno(r, "cannot start the %s", k->name);
                k->retry_ms = now_ms() + 1000;
                return;
        }
        k->started_ms = now_ms();
        k->zstate = Z_STARTING;
        k->t_zctl = (Tag){T_ZCTL, k};
        k->t_zpid = (Tag){T_ZPID, k};
        ep_add(p, k->zyg.ctl, EPOLLIN, &k->t_zctl);
        ep_add(p, k->zyg.pidfd, EPOLLIN, &k->t_zpid);
}

static void start_failed(Pool *p, const char *why) {
        pthread_mutex_lock(&p->lock);
        if (p->start_state == 0) {
                p->start_state = -1;
                snprintf(p->start_why, sizeof p->start_why, "%s", why);
                pthread_cond_broadcast(&p->cond);
        }
        pthread_mutex_unlock(&p->lock);
}

/* Start-up is done when every enabled kind has sealed a sandbox: the proof that the libraries
 * import and that this host can seal. */
static void start_progress(Pool *p) {
        for (int i = 0; i < _POOL_KINDS; i++)
                if (p->kinds[i].enabled && p->kinds[i].n_ready == 0)
                        return;
        p->started = true;
        pthread_mutex_lock(&p->lock);
        if (p->start_state == 0) {
                p->start_state = 1;
                pthread_cond_broadcast(&p->cond);
        }
        pthread_mutex_unlock(&p->lock);
}

static void on_zygote_ready(Pool *p, Kind *k, ZygoteReady *ready) {
        k->zstate = Z_UP;
        k->ever_up = true;
        k->up_ms = now_ms();
        k->spawned = 0;
        if (p->fatal_cause == FATAL_ZYGOTE)
                set_fatal(p, FATAL_NONE, "");
        if (k->id == POOL_FULL && !p->route && p->kinds[POOL_LEAN].enabled) {
                ready->modules[sizeof ready->modules - 1] = 0;
                if (route_new(ready->modules, &p->route) < 0)
                        log_error("cannot build the routing table; every run uses the full zygote");
        }
}

/* One SpawnReply, from the kind's zygote or from the one it replaced (which answers what it
 * was sent before it exits): the sandbox has a pid now and seals itself, or it failed. */
static void on_spawn_reply(Pool *p, Kind *k, const SpawnReply *rep) {
        Sandbox *sb = find_sandbox(p, rep->id);
        if (!sb || sb->state != SB_SPAWNING || sb->kind != k)
                return;
        if (rep->pid > 0) {
                sb->pid = rep->pid;
                /* We are the parent (CLONE_PARENT): the pid cannot be reused before we reap it,
                 * so opening a pidfd by number is race-free. */
                sb->pidfd = (int)syscall(SYS_pidfd_open, rep->pid, 0);
                if (sb->pidfd >= 0) {
                        fcntl(sb->pidfd, F_SETFD, FD_CLOEXEC);
                        ep_add(p, sb->pidfd, EPOLLIN, &sb->t_pid);
                } else
                        /* Retired below, which frees its uid slot: it must not live on holding
                         * that uid. Still unreaped, so the pid is still ours; sweep_children
                         * reaps it. */
                        kill(rep->pid, SIGKILL);
        }
        if (rep->error < 0 || sb->pidfd < 0) {
                if (rep->error < 0 && p->seal_failures++ == 0)
                        log_errno(rep->error, "the %s could not create a sandbox", k->name);
                if (!k->ever_up || p->seal_failures >= SCHED_SEAL_FAILURES_FATAL) {
                        char why[300];
                        snprintf(why, sizeof why, "cannot create a sandbox: %s",
                                strerror(rep->error < 0 ? -rep->error : errno));
                        set_fatal(p, FATAL_SANDBOX, why);
                        start_failed(p, why);
                }
                sb_retire(p, sb);
                return;
        }
        sb_set_state(p, sb, SB_SEALING);
        /* Watched again if its frame came first (spawn_reply_first); EEXIST otherwise. */
        (void)ep_add(p, sb->sock, EPOLLIN, &sb->t_sock);
}

static void on_zctl(Pool *p, Kind *k);
static void old_zygote_poll(Pool *p, Kind *k);

/* A sandbox's first frame (READY, or FAIL) can overtake its zygote's reply with its pid: the
 * zygote is descheduled between releasing the child and replying (seen under load on two
 * cores), or both land in one batch of events in the other order. A frame read while the
 * sandbox is SPAWNING would be taken for a waiting sandbox's talk and lost, and the sandbox
 * would stay SEALING for ever. So the reply is read first; if it is not there yet, the socket
 * is not watched until it is (on_spawn_reply), and the frame waits in it. Returns whether the
 * sandbox is past SPAWNING. */
static bool spawn_reply_first(Pool *p, Sandbox *sb) {
        Kind *k = sb->kind;
        if (k->zstate == Z_UP)
                on_zctl(p, k);
        if (k->old_live && !sb->dead && sb->state == SB_SPAWNING)
                old_zygote_poll(p, k);
        if (sb->dead)
                return false;
        if (sb->state != SB_SPAWNING)
                return true;
        ep_del(p, sb->sock);
        return false;
}

static void on_zctl(Pool *p, Kind *k) {
        if (k->zstate == Z_STARTING) {
                ZygoteReady ready;
                int r = zygote_recv_ready(&k->zyg, &ready);
                if (r == -EAGAIN)
                        return;
                if (r < 0 || ready.error < 0) {
                        char why[1100];
                        if (r < 0)
                                snprintf(why, sizeof why, "the %s failed to start: %s", k->name,
                                        strerror(-r));
                        else
                                snprintf(why, sizeof why, "%s", ready.message);
                        set_fatal(p, FATAL_ZYGOTE, why);
                        start_failed(p, why);
                        fail_queues(p, RUN_INTERNAL, why);
                        zygote_down(p, k, "could not start");
                        return;
                }
                on_zygote_ready(p, k, &ready);
                dispatch(p);
                return;
        }
        for (;;) {
                SpawnReply rep;
                int r = zygote_recv_reply(&k->zyg, &rep);
                if (r == -EAGAIN)
                        return;
                if (r < 0) {
                        zygote_down(p, k, "closed its control socket");
                        return;
                }
                k->spawned++;
                on_spawn_reply(p, k, &rep);
        }
}

static void on_zpid(Pool *p, Kind *k) {
        siginfo_t si = {0};
        if (waitid(P_PIDFD, (id_t)k->zyg.pidfd, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
                return;
        char why[96];
        if (si.si_code == CLD_EXITED)
                snprintf(why, sizeof why, "exited with status %d", si.si_status);
        else
                snprintf(why, sizeof why, "was killed by signal %d", si.si_status);
        if (k->zstate == Z_STARTING) {
                /* It may have said why before dying. */
                on_zctl(p, k);
                if (k->zstate != Z_STARTING)
                        return;
                char msg[160];
                snprintf(msg, sizeof msg, "the %s %s while importing PREINSTALL_LIBS", k->name, why);
                start_failed(p, msg);
        }
        k->zyg.pidfd = safe_close(k->zyg.pidfd); /* reaped: nothing left to kill */
        zygote_down(p, k, why);
}

/* ---- recycling ----
 *
 * Every run cloned from one zygote shares what the zygote drew when it started: Python's hash
 * secret, the address layout (ASLR) of its mappings, the stack canary and glibc's pointer
 * guard (SECURITY.md). To bound how many runs share them, and for how long, a zygote is
 * replaced by a fresh one after ZYGOTE_MAX_SPAWNS sandboxes or ZYGOTE_MAX_AGE seconds:
 *
 *   1. recycle_tick starts a successor (same image, same init) while the zygote serves on.
 *   2. The successor's ZygoteReady (recycle_switch): it becomes the kind's zygote and makes
 *      every new sandbox. The replaced one is asked for nothing more; once it has answered
 *      the spawn requests it already had (its sandboxes seal as usual), it is killed and
 *      reaped (old_zygote_poll).
 *   3. Its sandboxes still sealing or ready (ids below fresh_from) are not counted in the
 *      pool: fresh ones are made, and each fresh one that becomes ready retires a stale one
 *      (recycle_stale). Until then a request may still take a stale one (fresh ones first:
 *      the list is newest first), so that no request waits for the switch. Running sandboxes
 *      are the server's children and finish normally.
 *   4. When none is left waiting and the old zygote is reaped, the recycle is complete
 *      (snakebox_zygote_recycles_total); every run assigned after that comes from the new
 *      zygote. The next recycle of the kind can start only then.
 * A successor that fails to start is stopped: the zygote keeps serving, the failure is logged
 * once, and a successor is tried again after a growing pause. If the zygote dies while its
 * successor imports, the successor takes its place (zygote_up). */

/* An old zygote still not reaped this long after its switch is killed and reaped at once,
 * unanswered requests and all. It only has to answer the few spawn requests it already holds
 * (milliseconds each). */
#define OLD_ZYGOTE_GRACE_MS (30 * 1000)
#define RECYCLE_BACKOFF_MAX_MS (600 * 1000)

static void successor_stop(Pool *p, Kind *k) {
        if (k->next_state == Z_DOWN)
                return;
        ep_del(p, k->next.ctl);
        ep_del(p, k->next.pidfd);
        zygote_stop(&k->next);
        k->next_state = Z_DOWN;
}

static void recycle_failed(Pool *p, Kind *k, const char *why) {
        successor_stop(p, k);
        k->recycle_backoff_ms = MIN(MAX(k->recycle_backoff_ms * 2, 1000), RECYCLE_BACKOFF_MAX_MS);
        k->recycle_retry_ms = now_ms() + k->recycle_backoff_ms;
        if (!k->recycle_failing)
                log_error("the %s's replacement %s; the %s keeps serving, and a replacement is tried "
                          "again later",
                        k->name, why, k->name);
        k->recycle_failing = true;
}

/* Retires the sandboxes an old zygote was asked for but never answered: it was killed, or it
 * died. Their children, if any, exit on the closed pipe and are reaped by the sweep. */
static void old_zygote_forget(Pool *p, Kind *k) {
        Sandbox *next;
        for (Sandbox *sb = p->sandboxes; sb; sb = next) {
                next = sb->next;
                if (sb->kind == k && sb->state == SB_SPAWNING && sb->id < k->fresh_from)
                        sb_retire(p, sb);
        }
}

/* Ends the old zygote at once: kills it if still there, reaps it. */
static void old_zygote_stop(Pool *p, Kind *k) {
        if (!k->old_live)
                return;
        ep_del(p, k->old.ctl);
        ep_del(p, k->old.pidfd);
        zygote_stop(&k->old);
        k->old_live = false;
        old_zygote_forget(p, k);
}

/* Kills the old zygote once it has answered every spawn request it was sent, so that it never
 * leaves a half-made sandbox. Killed rather than told to exit: nothing of it runs at exit (a
 * sanitizer build's leak check of a whole interpreter). Reaped when its pidfd says so. */
static void old_zygote_kill_when_done(Pool *p, Kind *k) {
        if (k->old_killed)
                return;
        for (Sandbox *sb = p->sandboxes; sb; sb = sb->next)
                if (sb->kind == k && sb->state == SB_SPAWNING && sb->id < k->fresh_from)
                        return;
        syscall(SYS_pidfd_send_signal, k->old.pidfd, SIGKILL, NULL, 0);
        k->old_killed = true;
}

/* The old zygote's answers, then its death. */
static void old_zygote_poll(Pool *p, Kind *k) {
        while (k->old.ctl >= 0) {
                SpawnReply rep;
                int r = zygote_recv_reply(&k->old, &rep);
                if (r == -EAGAIN)
                        break;
                if (r < 0) {
                        /* EOF: it died (or is dying); its pidfd says when. */
                        ep_del(p, k->old.ctl);
                        k->old.ctl = safe_close(k->old.ctl);
                        break;
                }
                on_spawn_reply(p, k, &rep);
        }
        old_zygote_kill_when_done(p, k);
        siginfo_t si = {0};
        int w = waitid(P_PIDFD, (id_t)k->old.pidfd, &si, WEXITED | WNOHANG);
        if (w < 0 ? errno != ECHILD : si.si_pid == 0)
                return;
        /* Reaped: all it ever sent was read above; what it did not answer is lost. */
        old_zygote_stop(p, k);
}

/* The successor said it is ready: it serves from now on. */
static void recycle_switch(Pool *p, Kind *k) {
        uint64_t now = now_ms();
        ZygoteProc old = k->zyg;
        /* Down: the zygote died while its successor imported, and is already reaped. */
        bool had = k->zstate == Z_UP;

        k->zyg = k->next;
        k->next = (ZygoteProc){.pidfd = -1, .ctl = -1};
        k->next_state = Z_DOWN;
        k->t_zctl = (Tag){T_ZCTL, k};
        k->t_zpid = (Tag){T_ZPID, k};
        ep_mod(p, k->zyg.ctl, EPOLLIN, &k->t_zctl);
        ep_mod(p, k->zyg.pidfd, EPOLLIN, &k->t_zpid);
        k->started_ms = k->next_started_ms;
        k->zstate = Z_UP;
        k->up_ms = now;
        k->spawned = 0;
        if (had) {
                ep_mod(p, old.ctl, EPOLLIN, &k->t_recycle);
                ep_mod(p, old.pidfd, EPOLLIN, &k->t_recycle);
                k->old = old;
                k->old_live = true;
                k->old_killed = false;
                k->old_since_ms = now;
        }
        k->fresh_from = p->next_id + 1;
        if (had)
                old_zygote_kill_when_done(p, k);
        k->recycling = true;
        k->recycle_backoff_ms = 0;
        if (k->recycle_failing)
                log_info("the %s's replacement started", k->name);
        k->recycle_failing = false;
}

static void successor_poll(Pool *p, Kind *k) {
        ZygoteReady ready;
        char why[1100];
        int r = zygote_recv_ready(&k->next, &ready);
        if (r == 0 && ready.error == 0) {
                if (p->stopped)
                        successor_stop(p, k);
                else
                        recycle_switch(p, k);
                return;
        }
        if (r == -EAGAIN) {
                /* Nothing to read, but it may have died: a child it forked to learn its pages
                 * can hold the control socket open a moment longer. */
                siginfo_t si = {0};
                if (waitid(P_PIDFD, (id_t)k->next.pidfd, &si, WEXITED | WNOHANG | WNOWAIT) < 0 ||
                        si.si_pid == 0)
                        return;
                snprintf(why, sizeof why, "died while importing (%s %d)",
                        si.si_code == CLD_EXITED ? "status" : "signal", si.si_status);
        } else if (r < 0)
                snprintf(why, sizeof why, "died while importing (%s)", strerror(-r));
        else
                snprintf(why, sizeof why, "could not start: %s", ready.message);
        recycle_failed(p, k, why);
}

static void recycle_event(Pool *p, Kind *k) {
        if (k->next_state == Z_STARTING)
                successor_poll(p, k);
        if (k->old_live)
                old_zygote_poll(p, k);
}

/* Each tick: starts a successor when the zygote is over a limit; bounds the waits. */
static void recycle_tick(Pool *p, Kind *k, uint64_t now) {
        if (k->next_state == Z_STARTING && now - k->next_started_ms > START_TIMEOUT_MS)
                recycle_failed(p, k, "did not become ready in time");
        if (k->old_live && now - k->old_since_ms > OLD_ZYGOTE_GRACE_MS)
                old_zygote_stop(p, k);
        if (!k->enabled || p->stopped || !p->started || k->zstate != Z_UP || k->next_state != Z_DOWN ||
                k->old_live || k->recycling || now < k->recycle_retry_ms)
                return;
        const Config *c = &p->cfg;
        if (c->zygote_max_spawns && k->spawned >= c->zygote_max_spawns)
                k->recycle_why = "ZYGOTE_MAX_SPAWNS";
        else if (c->zygote_max_age_sec && now - k->up_ms >= (uint64_t)c->zygote_max_age_sec * 1000)
                k->recycle_why = "ZYGOTE_MAX_AGE";
        else
                return;
        int r = zygote_start(p->image_fd, &k->init, &k->next);
        if (r < 0) {
                char why[128];
                snprintf(why, sizeof why, "cannot be started: %s", strerror(-r));
                recycle_failed(p, k, why);
                return;
        }
        k->next_state = Z_STARTING;
        k->next_started_ms = now;
        k->t_recycle = (Tag){T_ZRECYCLE, k};
        if (ep_add(p, k->next.ctl, EPOLLIN, &k->t_recycle) < 0 ||
                ep_add(p, k->next.pidfd, EPOLLIN, &k->t_recycle) < 0)
                recycle_failed(p, k, "cannot be watched");
}

/* Called by dispatch for a kind whose zygote is up: retires stale ready sandboxes while more
 * than `want` are ready (so one for each fresh one), notes the end of a recycle, and returns
 * how many stale sandboxes still seal or wait (not counted as the pool's). */
static uint32_t recycle_stale(Pool *p, Kind *k, uint32_t want) {
        if (!k->recycling)
                return 0;
        uint32_t stale = 0;
        Sandbox *next;
        for (Sandbox *sb = p->sandboxes; sb; sb = next) {
                next = sb->next;
                if (sb->kind != k || sb->id >= k->fresh_from || sb->dead)
                        continue;
                if (sb->state == SB_READY && k->n_ready > want) {
                        sb_retire(p, sb);
                        continue;
                }
                if (sb->state == SB_SPAWNING || sb->state == SB_SEALING || sb->state == SB_READY)
                        stale++;
        }
        if (stale == 0 && !k->old_live) {
                k->recycling = false;
                pthread_mutex_lock(&p->lock);
                p->status.zygote_recycles[k->id]++;
                pthread_mutex_unlock(&p->lock);
                log_info("the %s was replaced by a fresh one (%s)", k->name, k->recycle_why);
        }
        return stale;
}

/* Shutdown: ends a successor and an old zygote, if any. */
static void recycle_stop(Pool *p, Kind *k) {
        successor_stop(p, k);
        old_zygote_stop(p, k);
}

/* Reaps children we do not track: a sandbox the zygote cloned but could not report before it
 * died. Tracked children are reaped through their pidfds. */
static void sweep_children(Pool *p) {
        for (int i = 0; i < 64; i++) {
                siginfo_t si = {0};
                if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
                        return;
                for (int j = 0; j < _POOL_KINDS; j++) {
                        const Kind *k = &p->kinds[j];
                        if (si.si_pid == k->zyg.pid ||
                                (k->next_state != Z_DOWN && si.si_pid == k->next.pid) ||
                                (k->old_live && si.si_pid == k->old.pid))
                                return;
                }
                for (Sandbox *sb = p->sandboxes; sb; sb = sb->next)
                        if (sb->pid == si.si_pid && !sb->reaped)
                                return;
                waitpid(si.si_pid, NULL, WNOHANG);
        }
}

/* Without a memory cgroup: sums what each run's processes and its tmpfs hold and kills a run
 * past its limit, as the cgroup's OOM killer would (memwatch.c says what is counted). */
static void watch_memory(Pool *p) {
        for (Sandbox *sb = p->sandboxes; sb; sb = sb->next) {
                MemSample ms;
                if (sb->state != SB_RUNNING || sb->reaped || sb->kill_reason != RUN_EXITED)
                        continue;
                int r = memwatch_sample(sb->pid, p->cfg.max_processes, &ms);
                if (r == -ESRCH || r == -ENOENT)
                        continue; /* exiting: its reap comes next */
                if (r < 0) {
                        /* A run we cannot measure would be a run without a memory limit. */
                        if (!p->memwatch_warned) {
                                log_errno(r, "cannot read a run's memory figures; ending it (memory limit)");
                                p->memwatch_warned = true;
                        }
                        sb_kill(sb, RUN_MEMORY_LIMIT);
                        continue;
                }
                uint64_t used = ms.pss_bytes > sb->mem_before ? ms.pss_bytes - sb->mem_before : 0;
                uint64_t files = 0;
                r = memwatch_tmpfs_bytes(sb->pid, &files);
                if (r == -ESRCH || r == -ENOENT)
                        continue;
                if (r < 0) {
                        if (!p->memwatch_warned) {
                                log_errno(r, "cannot read a run's tmpfs usage; ending it (memory limit)");
                                p->memwatch_warned = true;
                        }
                        sb_kill(sb, RUN_MEMORY_LIMIT);
                        continue;
                }
                used += files;
                sb->mem_peak = MAX(sb->mem_peak, used);
                if (used > sb->job->result.memory_bytes)
                        sb_kill(sb, RUN_MEMORY_LIMIT);
        }
}

static void on_tick(Pool *p) {
        uint64_t ticks, now = now_ms();
        ssize_t k _unused_ = read(p->tick_fd, &ticks, sizeof ticks);
        uint64_t limit = (uint64_t)p->cfg.queue_timeout_sec * 1000;
        for (int i = 0; i < _POOL_KINDS; i++) {
                Kind *kd = &p->kinds[i];
                while (kd->queue_head && sched_expired(now, kd->queue_head->enqueued_ms, limit))
                        job_finish(p, queue_pop(p, kd), RUN_QUEUE_TIMEOUT);
                if (!kd->enabled)
                        continue;
                if (kd->zstate == Z_DOWN && !p->stopped && now >= kd->retry_ms && kd->ever_up)
                        zygote_up(p, kd);
                if (kd->zstate == Z_STARTING && now > kd->started_ms &&
                        now - kd->started_ms > START_TIMEOUT_MS) {
                        start_failed(p, "the zygote did not become ready in time");
                        zygote_down(p, kd, "did not become ready in time");
                }
                recycle_tick(p, kd, now);
        }
        sweep_children(p);
        if (p->cgroups.mode == CGROUP_NONE)
                watch_memory(p);
        size_t keep = 0;
        for (size_t i = 0; i < p->nstale; i++)
                if (cgroup_destroy(&p->stale[i]) < 0)
                        p->stale[keep++] = p->stale[i];
        p->nstale = keep;
        dispatch(p);
}

static void on_client(Pool *p, Watch *w) {
        Job *job = w->job;
        if (!job)
                return;
        ep_del(p, w->fd);
        Sandbox *sb = job->sandbox;
        if (sb)
                sb_kill(sb, RUN_ABORTED); /* the job finishes when the sandbox is reaped */
        else {
                queue_remove(p, &p->kinds[job->kind], job);
                job_finish(p, job, RUN_ABORTED);
        }
}

static void take_inbox(Pool *p) {
        uint64_t v;
        ssize_t k _unused_ = read(p->wake_fd, &v, sizeof v);
        pthread_mutex_lock(&p->lock);
        Job *list = p->inbox;
        p->inbox = NULL;
        pthread_mutex_unlock(&p->lock);
        /* The inbox is a stack: reverse it to keep arrival order. */
        Job *rev = NULL;
        while (list) {
                Job *n = list->next;
                list->next = rev;
                rev = list;
                list = n;
        }
        while (rev) {
                Job *job = rev;
                rev = rev->next;
                job->enqueued_ms = now_ms();
                if (p->stopped) {
                        job_finish(p, job, RUN_SHUTDOWN);
                        continue;
                }
                if (p->fatal[0]) {
                        internal_error(job, p->fatal);
                        job_finish(p, job, RUN_INTERNAL);
                        continue;
                }
                SchedKind views[_POOL_KINDS];
                sched_views(p, views);
                job->kind = sched_choose_kind(views, job->kind == POOL_LEAN ? POOL_LEAN : POOL_FULL);
                if (job->client_fd >= 0) {
                        Watch *w = calloc(1, sizeof *w);
                        if (w) {
                                *w = (Watch){.job = job, .fd = job->client_fd};
                                w->tag = (Tag){T_CLIENT, w};
                                if (ep_add(p, w->fd, EPOLLRDHUP, &w->tag) == 0)
                                        job->watch = w;
                                else
                                        free(w);
                        }
                }
                queue_push(p, &p->kinds[job->kind], job);
        }
        dispatch(p);
}

static void free_graveyard(Pool *p) {
        while (p->graveyard) {
                Sandbox *sb = p->graveyard;
                p->graveyard = sb->next;
                free(sb);
        }
        while (p->dead_watches) {
                Watch *w = p->dead_watches;
                p->dead_watches = w->next_dead;
                free(w);
        }
}

static void stop_everything(Pool *p) {
        pthread_mutex_lock(&p->lock);
        Job *list = p->inbox;
        p->inbox = NULL;
        pthread_mutex_unlock(&p->lock);
        while (list) {
                Job *n = list->next;
                job_finish(p, list, RUN_SHUTDOWN);
                list = n;
        }
        fail_queues(p, RUN_SHUTDOWN, NULL);
        Sandbox *next;
        for (Sandbox *sb = p->sandboxes; sb; sb = next) {
                next = sb->next;
                if (sb->state == SB_RUNNING)
                        sb_kill(sb, RUN_SHUTDOWN);
                else
                        sb_retire(p, sb);
        }
}

static void *pool_thread(void *arg) {
        Pool *p = arg;
        struct epoll_event evs[64];
        bool stop_seen = false;

        for (int i = 0; i < _POOL_KINDS; i++)
                if (p->kinds[i].enabled)
                        zygote_up(p, &p->kinds[i]);
        for (;;) {
                pthread_mutex_lock(&p->lock);
                bool stopping = p->stopping;
                pthread_mutex_unlock(&p->lock);
                if (stopping && !stop_seen) {
                        stop_seen = p->stopped = true;
                        stop_everything(p);
                }
                if (stop_seen && !p->sandboxes)
                        break;
                publish_status(p);
                int n = epoll_wait(p->epfd, evs, ELEMENTSOF(evs), -1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        log_errno(-errno, "epoll_wait");
                        break;
                }
                for (int i = 0; i < n; i++) {
                        Tag *t = evs[i].data.ptr;
                        uint32_t e = evs[i].events;
                        Sandbox *sb = t->ptr;
                        Kind *k = t->ptr;
                        switch (t->kind) {
                        case T_WAKE:
                                take_inbox(p);
                                break;
                        case T_TICK:
                                on_tick(p);
                                break;
                        case T_ZCTL:
                                if (k->zstate != Z_DOWN)
                                        on_zctl(p, k);
                                break;
                        case T_ZPID:
                                if (k->zstate != Z_DOWN)
                                        on_zpid(p, k);
                                break;
                        case T_ZRECYCLE:
                                recycle_event(p, k);
                                break;
                        case T_SB_PID:
                                if (!sb->dead)
                                        on_sb_pid(p, sb);
                                break;
                        case T_SB_SOCK:
                                if (!sb->dead)
                                        on_sb_sock(p, sb, e);
                                break;
                        case T_SB_OUT:
                        case T_SB_ERR:
                                if (!sb->dead)
                                        on_sb_pipe(p, sb, t->kind == T_SB_OUT ? 1 : 2);
                                break;
                        case T_SB_TIMER:
                                if (!sb->dead)
                                        on_sb_timer(p, sb);
                                break;
                        case T_CLIENT:
                                on_client(p, t->ptr);
                                break;
                        }
                }
                free_graveyard(p);
                if (!stop_seen)
                        dispatch(p);
        }
        free_graveyard(p);
        for (int i = 0; i < _POOL_KINDS; i++) {
                Kind *k = &p->kinds[i];
                if (k->zstate != Z_DOWN) {
                        ep_del(p, k->zyg.ctl);
                        ep_del(p, k->zyg.pidfd);
                        zygote_stop(&k->zyg);
                        k->zstate = Z_DOWN;
                }
                recycle_stop(p, k);
        }
        /* Children the zygotes cloned but never reported (they were stopped mid-spawn) exit
         * on their closed sync pipe; reap them, so that their cgroups can be removed. */
        for (int i = 0; i < 200; i++) {
                siginfo_t si = {0};
                if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG) < 0)
                        break; /* ECHILD: none left */
                if (si.si_pid == 0) {
                        struct timespec ts = {0, 10 * 1000000};
                        nanosleep(&ts, NULL);
                }
        }
        publish_status(p);
        return NULL;
}

/* ---- public ---- */

static int cache_dir(const Config *c, char *buf, size_t n) {
        const char *home = getenv("HOME");
        int k;
        if (c->cache_dir[0])
                k = snprintf(buf, n, "%s", c->cache_dir);
        else if (geteuid() == 0)
                k = snprintf(buf, n, "/var/cache/snakebox");
        else if (home && home[0] == '/')
                k = snprintf(buf, n, "%s/.cache/snakebox", home);
        else
                k = snprintf(buf, n, "/tmp/snakebox-cache-%u", (unsigned)geteuid());
        if (k < 0 || (size_t)k >= n)
                return -ENAMETOOLONG;
        /* mkdir -p */
        for (char *s = buf + 1; *s; s++)
                if (*s == '/') {
                        *s = 0;
                        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                                return -errno;
                        *s = '/';
                }
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

void run_result_free(RunResult *r) {
        buf_free(&r->out);
        buf_free(&r->err);
        buf_free(&r->merged);
        buf_free(&r->report);
}

/* True when ids first..last all exist in our user namespace, by its map (a file of "inside
 * outside count" lines). */
static bool ids_mapped(const char *path, uint32_t first, uint32_t last) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        if (fd_read_file(path, 1 << 16, &text, &len) < 0)
                return false;
        for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
                unsigned long long in, out, count; /* kernel-written */
                if (sscanf(l, "%llu %llu %llu", &in, &out, &count) == 3 && first >= in &&
                        (unsigned long long)last < in + count)
                        return true;
        }
        return false;
}

/* Decides the sandboxes' host ids (config_uid_range) and checks that the range can give each
 * sandbox that may exist at once its own uid. Returns 0, or -EINVAL with why set. Logs the
 * mode once. */
static int uid_slots_init(Pool *p, const Config *c, char *why, size_t whyn) {
        uint32_t first, last;
        bool range = config_uid_range(c, &first, &last);

        if (geteuid() != 0) {
                /* The kernel lets an unprivileged process map only its own ids. */
                p->uid_first = (uint32_t)geteuid();
                p->uid_gid_single = (uint32_t)getegid();
                log_info("sandbox uids: unprivileged, every run maps to the server's uid %u: "
                         "concurrent runs share its per-user kernel limits%s",
                        p->uid_first,
                        strcmp(c->sandbox_uid_range, "auto") ? " (SANDBOX_UID_RANGE is ignored)" : "");
                return 0;
        }
        if (!range) {
                p->uid_first = c->sandbox_uid;
                p->uid_gid_single = c->sandbox_gid;
                log_info("sandbox uids: every run maps to SANDBOX_UID %u (SANDBOX_UID_RANGE=%s): "
                         "concurrent runs share its per-user kernel limits",
                        c->sandbox_uid, c->sandbox_uid_range);
                return 0;
        }
        /* Root of a user namespace (a rootless container) can use only the ids mapped into it:
         * the default range falls back to the single id there, an explicit one is an error. */
        if (!ids_mapped("/proc/self/uid_map", first, last) ||
                !ids_mapped("/proc/self/gid_map", first, last)) {
                if (strcmp(c->sandbox_uid_range, "auto") != 0) {
                        snprintf(why, whyn,
                                "SANDBOX_UID_RANGE: %" PRIu32 "-%" PRIu32
                                " is not mapped in the server's user namespace (/proc/self/uid_map, "
                                "gid_map); give a range inside it, or off",
                                first, last);
                        return -EINVAL;
                }
                p->uid_first = c->sandbox_uid;
                p->uid_gid_single = c->sandbox_gid;
                log_info("sandbox uids: every run maps to SANDBOX_UID %u: the default SANDBOX_UID_RANGE "
                         "is not mapped in this user namespace; concurrent runs share its per-user "
                         "kernel limits",
                        c->sandbox_uid);
                return 0;
        }
        /* Every sandbox that can be live (ready of both zygotes, running, at start-up one per
         * zygote) and as many being torn down, which hold their uid until reaped. */
        uint64_t need = 2 * ((uint64_t)c->pool_size + c->lean_pool_size + c->max_concurrency) + 2;
        uint64_t have = (uint64_t)last - first + 1;
        if (have < need) {
                snprintf(why, whyn,
                        "SANDBOX_UID_RANGE: %" PRIu32 "-%" PRIu32 " holds %" PRIu64
                        " uids, but up to %" PRIu64 " sandboxes can exist at once (2 x (POOL_SIZE %" PRIu32
                        " + LEAN_POOL_SIZE %" PRIu32 " + MAX_CONCURRENCY %" PRIu32
                        ") + 2); give it a larger range",
                        first, last, have, need, c->pool_size, c->lean_pool_size, c->max_concurrency);
                return -EINVAL;
        }
        /* The whole range (up to a bound on our table): a released uid is reused as late as
         * possible, and a burst of sandboxes being torn down rarely makes a new one wait. */
        p->nslots = (uint32_t)MIN(have, (uint64_t)UID_SLOTS_MAX);
        p->slot_used = calloc(p->nslots, sizeof *p->slot_used);
        if (!p->slot_used) {
                snprintf(why, whyn, "out of memory");
                return -ENOMEM;
        }
        p->uid_first = first;
        p->uid_exclusive = true;
        log_info("sandbox uids: one per sandbox, %" PRIu32 "-%" PRIu32 " (uid = gid)", first,
                first + p->nslots - 1);
        return 0;
}

static void pool_free(Pool *p) {
        if (!p)
                return;
        safe_close(p->epfd);
        safe_close(p->wake_fd);
        safe_close(p->tick_fd);
        safe_close(p->image_fd);
        cgroup_root_destroy(&p->cgroups);
        rootfs_remove(p->rt);
        free(p->rbuf);
        free(p->slot_used);
        route_free(p->route);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->cond);
        free(p);
}

int pool_start(const Config *c, Pool **ret, char *why, size_t whyn) {
        char cache[PROTO_PATH_MAX - 16];
        int r;

        Pool *p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->cfg = *c;
        p->epfd = p->wake_fd = p->tick_fd = p->image_fd = -1;
        for (int i = 0; i < _POOL_KINDS; i++)
                p->kinds[i] = (Kind){.id = (PoolKind)i, .zyg = {.pidfd = -1, .ctl = -1}};
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);

        r = rootfs_create(p->rt, sizeof p->rt, why, whyn);
        if (r < 0)
                goto fail;
        cgroup_root_init(&p->cgroups);
        r = cache_dir(c, cache, sizeof cache);
        if (r < 0) {
                snprintf(why, whyn, "CACHE_DIR: cannot create the cache directory: %s", strerror(-r));
                goto fail;
        }
        p->image_fd = zygote_image_open();
        if (p->image_fd < 0) {
                r = p->image_fd;
                snprintf(why, whyn, "cannot copy /proc/self/exe for the zygote: %s", strerror(-r));
                goto fail;
        }
        r = uid_slots_init(p, c, why, whyn);
        if (r < 0)
                goto fail;
        for (int i = 0; i < _POOL_KINDS; i++) {
                Kind *k = &p->kinds[i];
                /* Field by field: the zygote and every sandbox get only what they use. */
                k->init = (ZygoteConfig){
                        .magic = PROTO_MAGIC,
                        .memory_limit_bytes = c->memory_limit_bytes + ADDRESS_SPACE_HEADROOM_BYTES,
                        .tmp_size_bytes = c->tmp_size_bytes,
                        .max_file_size_bytes = c->max_file_size_bytes,
                        .prefault_bytes = c->prefault_bytes,
                        .timeout_sec = c->timeout_sec,
                        .max_processes = c->max_processes,
                        .max_open_files = c->max_open_files,
                };
                _Static_assert(sizeof k->init.preinstall_libs >= sizeof c->preinstall_libs,
                        "PREINSTALL_LIBS does not fit the zygote's message");
                snprintf(k->init.preinstall_libs, sizeof k->init.preinstall_libs, "%s", c->preinstall_libs);
                if (p->cgroups.mode == CGROUP_NONE)
                        k->init.flags |= ZYGOTE_F_RLIMIT_AS;
                snprintf(k->init.root_dir, sizeof k->init.root_dir, "%s/root", p->rt);
                snprintf(k->init.mpl_dir, sizeof k->init.mpl_dir, "%s/matplotlib", cache);
        }
        p->kinds[POOL_FULL].name = "zygote";
        p->kinds[POOL_FULL].enabled = true;
        p->kinds[POOL_FULL].pool_size = c->pool_size;
        /* With no libraries, the full zygote is already lean. */
        p->kinds[POOL_LEAN].name = "lean zygote";
        p->kinds[POOL_LEAN].enabled = c->lean_pool_size > 0 && c->preinstall_libs[0];
        p->kinds[POOL_LEAN].pool_size = c->lean_pool_size;
        p->kinds[POOL_LEAN].init.flags |= ZYGOTE_F_LEAN;
        p->kinds[POOL_LEAN].init.preinstall_libs[0] = 0;

        p->rbuf = malloc(RBUF_SIZE);
        p->epfd = epoll_create1(EPOLL_CLOEXEC);
        p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        p->tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (!p->rbuf || p->epfd < 0 || p->wake_fd < 0 || p->tick_fd < 0) {
                r = -errno;
                snprintf(why, whyn, "cannot set up the event loop: %s", strerror(-r));
                goto fail;
        }
        /* Without a memory cgroup the tick also samples the runs' memory: more often. */
        long tick_ns = (p->cgroups.mode == CGROUP_NONE ? MEMWATCH_INTERVAL_MS : TICK_MS) * 1000000L;
        struct itimerspec tick = {.it_interval = {0, tick_ns}, .it_value = {0, tick_ns}};
        timerfd_settime(p->tick_fd, 0, &tick, NULL);
        p->t_wake = (Tag){T_WAKE, NULL};
        p->t_tick = (Tag){T_TICK, NULL};
        if (ep_add(p, p->wake_fd, EPOLLIN, &p->t_wake) < 0 ||
                ep_add(p, p->tick_fd, EPOLLIN, &p->t_tick) < 0) {
                r = -errno;
                snprintf(why, whyn, "cannot set up the event loop: %s", strerror(-r));
                goto fail;
        }

        r = -pthread_create(&p->thread, NULL, pool_thread, p);
        if (r < 0) {
                snprintf(why, whyn, "cannot start the pool thread: %s", strerror(-r));
                goto fail;
        }
        p->thread_started = true;

        pthread_mutex_lock(&p->lock);
        while (p->start_state == 0)
                pthread_cond_wait(&p->cond, &p->lock);
        int state = p->start_state;
        snprintf(why, whyn, "%s", p->start_why);
        pthread_mutex_unlock(&p->lock);
        if (state < 0) {
                pool_stop(p);
                return -EIO;
        }
        *ret = p;
        return 0;
fail:
        pool_free(p);
        return r < 0 ? r : -EIO;
}

int pool_submit(Pool *p, Job *job) {
        job->next = NULL;
        job->sandbox = NULL;
        job->watch = NULL;
        job->result = (RunResult){.want_files = job->want_files};
        buf_init(&job->result.out, p->cfg.max_output_bytes);
        buf_init(&job->result.err, p->cfg.max_output_bytes);
        buf_init(&job->result.merged, p->cfg.max_output_bytes);
        /* The largest report a run can send under the caps (report.c); a bigger one is a
         * forgery, answered as malformed. */
        buf_init(&job->result.report, report_cap(&p->cfg));

        pthread_mutex_lock(&p->lock);
        if (p->stopping || p->draining) {
                pthread_mutex_unlock(&p->lock);
                return -ESHUTDOWN;
        }
        if (p->admitted >= p->cfg.max_concurrency + p->cfg.queue_size) {
                pthread_mutex_unlock(&p->lock);
                return -EBUSY;
        }
        p->admitted++;
        job->next = p->inbox;
        p->inbox = job;
        pthread_mutex_unlock(&p->lock);
        uint64_t one = 1;
        ssize_t k _unused_ = write(p->wake_fd, &one, sizeof one);
        return 0;
}

void pool_status(Pool *p, PoolStatus *ret) {
        pthread_mutex_lock(&p->lock);
        *ret = p->status;
        pthread_mutex_unlock(&p->lock);
}

const CgroupRoot *pool_cgroups(Pool *p) {
        return &p->cgroups;
}

PoolKind pool_route(Pool *p, const char *request, size_t len) {
        if (!p->route)
                return POOL_FULL;
        return route_needs_full(p->route, request, len) ? POOL_FULL : POOL_LEAN;
}

uint32_t pool_drain(Pool *p, uint64_t grace_ms) {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += (time_t)(grace_ms / 1000);
        deadline.tv_nsec += (long)(grace_ms % 1000) * 1000000;
        if (deadline.tv_nsec >= 1000000000) {
                deadline.tv_sec++;
                deadline.tv_nsec -= 1000000000;
        }
        pthread_mutex_lock(&p->lock);
        p->draining = true;
        while (p->admitted > 0 && pthread_cond_timedwait(&p->cond, &p->lock, &deadline) == 0)
                ;
        uint32_t left = p->admitted;
        pthread_mutex_unlock(&p->lock);
        return left;
}

void pool_stop(Pool *p) {
        if (!p)
                return;
        if (p->thread_started) {
                pthread_mutex_lock(&p->lock);
                p->stopping = true;
                pthread_mutex_unlock(&p->lock);
                uint64_t one = 1;
                ssize_t k _unused_ = write(p->wake_fd, &one, sizeof one);
                pthread_join(p->thread, NULL);
        }
        pool_free(p);
}
