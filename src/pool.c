/* The pool: warm sealed sandboxes, the queue of requests waiting for one, and the one thread
 * that drives both.
 *
 * Theory of operation
 * -------------------
 * Processes. The server (this process) starts the zygote (zygote.c) and asks it for sandboxes.
 * A sandbox is cloned by the zygote with CLONE_PARENT, so the server is its parent: the pool
 * thread reaps it through a pidfd, reads its exit status and rusage, and kills it with
 * pidfd_send_signal(SIGKILL). The process we know is the sandbox's init (init/sandbox-init.c), pid 1
 * of its own pid namespace, whose child is the runner: one SIGKILL to it ends every process the
 * run started, daemons included; the kernel has killed them all before the init's exit is
 * reported. The sandboxes' parent-death signal is tied to this thread, which lives as long as
 * the server.
 *
 * File descriptors, per sandbox (all CLOEXEC, all non-blocking on our side):
 *   sock    SOCK_SEQPACKET pair: we send the request ('Q' frames); the sandbox sends READY,
 *           FAIL, output frames ('O', 'E'), its report ('R' pieces, then the binary 'Z'
 *           with the exit status), and the init's 'K' if the runner died of a signal
 *   out,err pipes: bytes written to fds 1 and 2 outside Python's sys.stdout/sys.stderr
 *   pidfd   readable when the sandbox's init exited
 *   timer   timerfd: the run's deadline, then the grace period for draining output
 * The sandbox's ends of sock, out and err, and the cgroup fds it joins through, are sent to the zygote
 * with SCM_RIGHTS and closed here at once; the zygote closes its copies after the clone. So
 * after a run, EOF on all three means no process of the run is left holding them.
 *
 * Life of a sandbox (pool-sandbox.c): SPAWNING (asked the zygote) -> SEALING (has a pid,
 * sealing itself) -> READY (sent FRAME_READY; waits in a blocking read for the request) ->
 * RUNNING (request sent, deadline armed) -> answered (on 'Z', or reaped and drained) -> DYING
 * (killed, its address space torn down at the lowest priority) -> reaped and released. A
 * sandbox runs one request, ever.
 *
 * Files. This one: the public API, the thread and its event loop, jobs and queues, dispatch.
 * pool-sandbox.c: a sandbox handle from spawn to release. pool-zygote.c: zygote supervision,
 * recycling, the start-up verdict. pool-sched.c: the policy, pure. pool-internal.h: what they
 * share.
 *
 * Threads. HTTP threads call pool_submit, which only appends to the inbox under the mutex and
 * writes the eventfd. Everything else (epoll, sandboxes, queue, zygote) belongs to the pool
 * thread, which calls each job's done callback; a waiting request holds no thread. Objects an
 * epoll event can name (sandboxes, client watches) are freed only after the batch of events
 * is handled, so a later event in the same batch never sees freed memory. */
#include "pool-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "memwatch.h"
#include "pool-sched.h"
#include "report.h"
#include "rootfs.h"
#include "util/fd.h"
#include "util/log.h"
#include "util/macro.h"

uint64_t now_ms(void) {
        return now_us() / 1000;
}

uint64_t now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

int ep_add(Pool *p, int fd, uint32_t events, Tag *tag) {
        struct epoll_event ev = {.events = events, .data.ptr = tag};
        return epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

void ep_mod(Pool *p, int fd, uint32_t events, Tag *tag) {
        struct epoll_event ev = {.events = events, .data.ptr = tag};
        epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &ev);
}

void ep_del(Pool *p, int fd) {
        if (fd >= 0)
                epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL);
}

void arm_timer(int fd, uint64_t ms) {
        struct itimerspec its = {
                .it_value = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000}};
        if (ms == 0)
                its.it_value.tv_nsec = 1;
        timerfd_settime(fd, 0, &its, NULL);
}

void publish_status(Pool *p) {
        uint32_t busy = 0;
        for (Session *s = p->sessions; s; s = s->next)
                busy += s->state == SS_BUSY || s->state == SS_INTERRUPTING;
        pthread_mutex_lock(&p->lock);
        p->status.sessions_active = p->n_sessions;
        p->status.sessions_busy = busy;
        p->status.sessions_max = p->max_sessions;
        p->status.zygote_up = p->kinds[POOL_FULL].zstate == Z_UP;
        /* The sessions' sealed spare is a ready sandbox too (its cgroup is one of the live). */
        p->status.ready = p->kinds[POOL_FULL].n_ready + p->kinds[POOL_LEAN].n_ready +
                          (p->session_spare && p->session_spare->state == SB_SESSION);
        p->status.busy = p->n_running;
        p->status.queued = p->queued;
        p->status.spawning = p->kinds[POOL_FULL].n_spawning + p->kinds[POOL_FULL].n_sealing +
                             p->kinds[POOL_LEAN].n_spawning + p->kinds[POOL_LEAN].n_sealing;
        snprintf(p->status.fatal, sizeof p->status.fatal, "%s", p->fatal);
        pthread_mutex_unlock(&p->lock);
}

void set_fatal(Pool *p, FatalCause cause, const char *why) {
        p->fatal_cause = cause;
        snprintf(p->fatal, sizeof p->fatal, "%s", cause == FATAL_NONE ? "" : why);
}

/* ---- jobs ---- */

/* Hands a job back to its owner with its outcome. The job must be off the queue. */
void job_finish(Pool *p, Job *job, RunOutcome outcome) {
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
        if (job->session)
                p->admitted_sessions--;
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

void fail_queues(Pool *p, RunOutcome outcome, const char *why) {
        for (int i = 0; i < _POOL_KINDS; i++)
                fail_queue(p, &p->kinds[i], outcome, why);
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
void reroute_to_lean(Pool *p) {
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

/* Why: spares made at once used to share the CPUs evenly and so became ready together, late: a
 * request that found none ready waited for the whole batch, the next few found one at once,
 * and back to back on a busy machine that spread was most of the tail (issue 19). The next
 * request takes the oldest spare, so the oldest one in the making gets the CPU it wants and
 * the younger ones are idle (cpu.idle): they use only what it and everything else leave, and
 * the spares become ready one after the other. Idle work still runs whenever a CPU is free, so
 * the total, and the throughput, stay the same. A spare's cgroup stops being idle when it is
 * ready (on_frame), taken (sb_assign) or torn down (sb_retire_now).
 * Sessions' sandboxes are not spares: someone waits for each of them. */
static void order_spares(Pool *p) {
        if (!p->cgroups.cpu_idle)
                return; /* the younger spares keep nice 5's weight, as before */
        for (int i = 0; i < _POOL_KINDS; i++) {
                const Kind *k = &p->kinds[i];
                const Sandbox *oldest = NULL;
                for (const Sandbox *sb = p->sandboxes; sb; sb = sb->next)
                        if (sb_spare_in_making(sb, k) && (!oldest || sb->id < oldest->id))
                                oldest = sb;
                for (Sandbox *sb = p->sandboxes; sb; sb = sb->next)
                        if (sb_spare_in_making(sb, k) && sb->cg.idle != (sb != oldest))
                                cgroup_cpu_weight(&p->cgroups, &sb->cg,
                                        sb != oldest ? CGROUP_CPU_IDLE : CGROUP_CPU_WAITING);
        }
}

void dispatch(Pool *p) {
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
        order_spares(p);
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
        if (!p->stopped)
                session_tick(p, now);
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
        if (job->session) {
                session_client_gone(p, job);
                return;
        }
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
                if (job->session) {
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
                        session_job(p, job);
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
                buf_free(&sb->image.data);
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
        session_stop_all(p);
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

        for (int i = 0; i < _POOL_KINDS; i++)
                if (p->kinds[i].enabled)
                        zygote_up(p, &p->kinds[i]);
        for (;;) {
                pthread_mutex_lock(&p->lock);
                bool stopping = p->phase == POOL_STOPPING;
                pthread_mutex_unlock(&p->lock);
                if (stopping && !p->stopped) {
                        p->stopped = true;
                        stop_everything(p);
                }
                if (p->stopped && !p->sandboxes)
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
                                if (!sb_released(sb))
                                        on_sb_pid(p, sb);
                                break;
                        case T_SB_SOCK:
                                if (!sb_released(sb))
                                        on_sb_sock(p, sb, e);
                                break;
                        case T_SB_OUT:
                        case T_SB_ERR:
                                if (!sb_released(sb))
                                        on_sb_pipe(p, sb, t->kind == T_SB_OUT ? 1 : 2);
                                break;
                        case T_SB_TIMER:
                                if (!sb_released(sb))
                                        on_sb_timer(p, sb);
                                break;
                        case T_CLIENT:
                                on_client(p, t->ptr);
                                break;
                        }
                }
                free_graveyard(p);
                if (!p->stopped)
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
        /* Sessions use the uids beyond what runs need (two each, as a run's: one live, one being
         * torn down; and the spare's), so that they never take a uid from a run: a range too
         * small for MAX_SESSIONS lowers it. */
        uint64_t room = (have - need) / 2;
        if (c->max_sessions && room < (uint64_t)c->max_sessions + 1) {
                p->max_sessions = room > 1 ? (uint32_t)room - 1 : 0;
                log_error("SANDBOX_UID_RANGE: %" PRIu32 "-%" PRIu32 " leaves uids for %" PRIu32
                          " sessions, not MAX_SESSIONS %" PRIu32 " (each session needs 2 beyond 2 x "
                          "(POOL_SIZE + LEAN_POOL_SIZE + MAX_CONCURRENCY) + 2, and 2 more for the spare)",
                        first, last, p->max_sessions, c->max_sessions);
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
        tombstones_free(&p->tombstones);
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
        p->max_sessions = c->max_sessions;
        p->epfd = p->wake_fd = p->tick_fd = p->image_fd = -1;
        for (int i = 0; i < _POOL_KINDS; i++)
                p->kinds[i] = (Kind){.id = (PoolKind)i, .zyg = {.pidfd = -1, .ctl = -1}};
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);

        r = session_boot_new(p->boot);
        if (r == 0)
                r = tombstones_init(&p->tombstones, c->max_sessions ? TOMBSTONES_MAX : 0);
        if (r < 0) {
                snprintf(why, whyn, "cannot prepare the session registry: %s", strerror(-r));
                goto fail;
        }
        r = rootfs_create(p->rt, sizeof p->rt, why, whyn);
        if (r < 0)
                goto fail;
        cgroup_root_init(&p->cgroups);
        r = config_cache_dir(c, cache, sizeof cache);
        if (r == 0)
                r = fd_mkdir_p(cache, 0700);
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

/* A submitted job's fresh state: unlinked, its output and report buffers bounded. */
static void job_prepare(Pool *p, Job *job) {
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
}

int pool_session_submit(Pool *p, Job *job) {
        job_prepare(p, job);

        pthread_mutex_lock(&p->lock);
        if (p->phase != POOL_SERVING) {
                pthread_mutex_unlock(&p->lock);
                return -ESHUTDOWN;
        }
        p->admitted++;
        p->admitted_sessions++;
        job->next = p->inbox;
        p->inbox = job;
        pthread_mutex_unlock(&p->lock);
        uint64_t one = 1;
        ssize_t k _unused_ = write(p->wake_fd, &one, sizeof one);
        return 0;
}

int pool_submit(Pool *p, Job *job) {
        job_prepare(p, job);

        pthread_mutex_lock(&p->lock);
        if (p->phase != POOL_SERVING) {
                pthread_mutex_unlock(&p->lock);
                return -ESHUTDOWN;
        }
        if (p->admitted - p->admitted_sessions >= p->cfg.max_concurrency + p->cfg.queue_size) {
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
        if (p->phase == POOL_SERVING)
                p->phase = POOL_DRAINING;
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
                p->phase = POOL_STOPPING;
                pthread_mutex_unlock(&p->lock);
                uint64_t one = 1;
                ssize_t k _unused_ = write(p->wake_fd, &one, sizeof one);
                pthread_join(p->thread, NULL);
        }
        pool_free(p);
}
