/* Sessions on the pool thread: a sealed sandbox that keeps its interpreter between requests.
 *
 * A session's sandbox is made exactly as a run's (sb_new_session: the same zygote spawn, the
 * same seal, its own cgroups and uid slot), but it is never on the ready list and never counts
 * against MAX_CONCURRENCY: the session owns it (Sandbox.for_session, state SB_SESSION once
 * sealed). Its runner gets {"mode": "session", "op": "init"} as its first request, which puts
 * it in session mode (runner.py _session): it answers each request with a report and a 'Z',
 * then waits for the next one in the same __main__.
 *
 * States (pool-internal.h SessState): STARTING (sealing, then the init request writes the
 * initial files) -> IDLE <-> BUSY (a cell: its deadline on the sandbox's timer) ->
 * INTERRUPTING (SIGINT to the sandbox's init, which forwards it to the runner; the timer is
 * INTERRUPT_GRACE) -> IDLE when the cell's 'Z' comes, else RESETTING: the sandbox is killed
 * and detached (it dies as any retired one), a fresh one is spawned under the same id, and the
 * answer of the request that was in progress is sent once the fresh one is sealed, with
 * session.reset true. A sandbox that dies on its own (os._exit, the OOM killer) is replaced
 * the same way; while IDLE, the next answer says reset. Ending (delete, idle timeout, lifetime,
 * eviction, shutdown) kills the sandbox and leaves a tombstone (session.c).
 *
 * Between cells the sandbox may still write (threads and processes a cell left running): its
 * socket and pipes are read as always, and what arrives is dropped (frame.c FRAME_PHASE_IDLE,
 * drain_pipe); only what arrives while a cell runs is that cell's.
 *
 * Per-cell limits: the wall-clock deadline (the request's timeout, at most EXECUTION_TIMEOUT,
 * clamped to the remaining lifetime), and the CPU time of the cell, checked each tick against
 * the same number (RLIMIT_CPU counts a process's whole life: for a session it is only a
 * backstop, see sb_spawn). cpu_ms and memory_peak_bytes are the cell's: CPU as a difference
 * of the sandbox's counters, memory as the most its cgroup held at the cell's start, each
 * tick and its end (without a cgroup: the most of the watchdog's samples and the runner's
 * peak RSS, which it sets back to its current RSS as each cell starts). */
#include "pool-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "memwatch.h"
#include "util/log.h"
#include "util/macro.h"

#define RETRY_BUSY_SEC 1
#define RETRY_CAPACITY_SEC 5
/* A fresh sandbox has this long to seal and write its initial files. */
#define SESSION_START_MS (60 * 1000)

static uint64_t wall_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- answers ---- */

static char *dump(json_t *o, size_t *ret_len) {
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (s && ret_len)
                *ret_len = strlen(s);
        return s;
}

/* Hands a session request back with an HTTP status and a body (taken; NULL: none). */
static void answer(Pool *p, Job *job, unsigned status, char *body, unsigned retry_after) {
        SessionReq *r = job->session;
        r->status = status;
        free(r->body);
        r->body = body;
        r->body_len = body ? strlen(body) : 0;
        r->retry_after = retry_after;
        job_finish(p, job, RUN_EXITED);
}

_printf_(6, 7) static void answer_error(
        Pool *p, Job *job, unsigned status, const char *type, const char *reason, const char *fmt, ...) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        json_t *o = json_pack(
                "{ss ss s{ss ss}}", "status", "Error", "output", msg, "error", "type", type, "message", msg);
        if (o && reason)
                json_object_set_new(json_object_get(o, "error"), "reason", json_string(reason));
        unsigned retry = status == 409                    ? RETRY_BUSY_SEC
                         : status == 429 || status == 503 ? RETRY_CAPACITY_SEC
                                                          : 0;
        answer(p, job, status, dump(o, NULL), retry);
}

static void iso_time(uint64_t ms, char *buf, size_t n) {
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + k, n - k, ".%03uZ", (unsigned)(ms % 1000));
}

static const char *state_name(SessState st) {
        switch (st) {
        case SS_IDLE:
                return "idle";
        case SS_BUSY:
        case SS_INTERRUPTING:
                return "busy";
        default:
                return "starting";
        }
}

/* What the session's sandbox holds now: memory (its cgroup, else the watchdog's sample) and
 * files (its tmpfs). */
static void sandbox_usage(Pool *p, Session *s, uint64_t *mem, uint64_t *files) {
        *mem = *files = 0;
        Sandbox *sb = s->sb;
        if (!sb || sb->state != SB_SESSION || sb->reaped)
                return;
        if (p->cgroups.mode != CGROUP_NONE)
                *mem = cgroup_memory_current(&p->cgroups, &sb->cg);
        else {
                MemSample ms;
                if (memwatch_sample(sb->pid, p->cfg.max_processes, &ms) == 0)
                        *mem = ms.pss_bytes > sb->mem_before ? ms.pss_bytes - sb->mem_before : 0;
        }
        if (memwatch_tmpfs_bytes(sb->pid, files) < 0)
                *files = 0;
}

static json_t *session_json(Pool *p, Session *s) {
        char created[40], active[40], idle_exp[40], exp[40];
        uint64_t now = now_ms(), wall = wall_ms();
        uint64_t to_wall = wall - MIN(wall, now); /* monotonic -> wall clock */
        uint64_t mem, files;
        sandbox_usage(p, s, &mem, &files);
        iso_time(s->created_ms + to_wall, created, sizeof created);
        iso_time(s->last_active_ms + to_wall, active, sizeof active);
        iso_time(s->last_active_ms + to_wall + (uint64_t)s->idle_timeout_sec * 1000, idle_exp,
                sizeof idle_exp);
        iso_time(s->created_ms + to_wall + (uint64_t)s->max_lifetime_sec * 1000, exp, sizeof exp);
        return json_pack("{ss ss ss ss ss sI ss sI ss sI sI sI sI}", "session_id", s->id, "state",
                state_name(s->state), "profile", s->kind == POOL_LEAN ? "lean" : "full", "created_at",
                created, "last_active_at", active, "idle_timeout", (json_int_t)s->idle_timeout_sec,
                "idle_expires_at", idle_exp, "max_lifetime", (json_int_t)s->max_lifetime_sec, "expires_at",
                exp, "execution_count", (json_int_t)s->execution_count, "memory_mb",
                (json_int_t)(s->memory_bytes >> 20), "memory_bytes", (json_int_t)mem, "files_bytes",
                (json_int_t)files);
}

static void answer_session(Pool *p, Job *job, Session *s, unsigned status) {
        if (status == 201)
                snprintf(job->session->location, sizeof job->session->location, "/api/sessions/%s", s->id);
        answer(p, job, status, dump(session_json(p, s), NULL), 0);
}

/* ---- the registry ---- */

static Session *find_live(Pool *p, const char *id) {
        for (Session *s = p->sessions; s; s = s->next)
                if (strcmp(s->id, id) == 0)
                        return s;
        return NULL;
}

/* The session the request names, or NULL after answering 404 or 410. */
static Session *lookup(Pool *p, Job *job) {
        SessionReq *r = job->session;
        SessionIdKind kind = session_id_classify(r->id, strlen(r->id), p->cfg.node_id, p->boot);
        if (kind == SESSION_ID_OLD_BOOT) {
                answer_error(p, job, 410, "SessionGone", "server_restarted",
                        "session %s is gone: the server restarted since it was made", r->id);
                return NULL;
        }
        if (kind == SESSION_ID_THIS_BOOT) {
                Session *s = find_live(p, r->id);
                if (s && s->owner == r->owner)
                        return s;
                const Tombstone *t = s ? NULL : tombstones_find(&p->tombstones, r->id, now_ms());
                if (t && t->owner == r->owner) {
                        answer_error(p, job, 410, "SessionGone", session_end_name(t->reason),
                                "session %s is gone (%s)", r->id, session_end_name(t->reason));
                        return NULL;
                }
        }
        answer_error(p, job, 404, "SessionNotFound", NULL, "no such session: %.80s", r->id);
        return NULL;
}

static void count_ended(Pool *p, SessionEnd why) {
        _Static_assert(
                _SESSION_END_MAX <= ELEMENTSOF(p->status.sessions_ended), "sessions_ended is too small");
        pthread_mutex_lock(&p->lock);
        p->status.sessions_ended[why]++;
        pthread_mutex_unlock(&p->lock);
}

static void init_job_free(Session *s) {
        free(s->init_job.request);
        s->init_job.request = NULL;
        run_result_free(&s->init_job.result);
}

/* Detaches the session's sandbox and kills it (it dies and is released as any retired one). */
static void drop_sandbox(Pool *p, Session *s) {
        Sandbox *sb = s->sb;
        s->sb = NULL;
        if (!sb)
                return;
        sb->sess = NULL;
        sb->job = NULL;
        sb_retire(p, sb);
}

static void sb_disarm(Sandbox *sb) {
        struct itimerspec off = {0};
        timerfd_settime(sb->timer, 0, &off, NULL);
}

/* The answer a request in progress gets when its session ends under it. */
static void fail_job(Pool *p, Session *s, Job *job, SessionEnd why) {
        if (!job)
                return;
        if (why == SESSION_END_SHUTDOWN) {
                if (job->session->op == SOP_EXECUTE) {
                        job_finish(p, job, RUN_SHUTDOWN);
                        return;
                }
                answer_error(p, job, 503, "ServiceUnavailable", NULL, "the server is shutting down");
                return;
        }
        answer_error(p, job, 410, "SessionGone", session_end_name(why), "session %s is gone (%s)", s->id,
                session_end_name(why));
}

static void end_session(Pool *p, Session *s, SessionEnd why) {
        for (Session **pp = &p->sessions; *pp; pp = &(*pp)->next)
                if (*pp == s) {
                        *pp = s->next;
                        break;
                }
        p->n_sessions--;
        tombstones_add(&p->tombstones, s->id, s->owner, why, now_ms());
        count_ended(p, why);
        drop_sandbox(p, s);
        Job *job = TAKE_PTR(s->job), *intr = TAKE_PTR(s->interrupter);
        fail_job(p, s, job, why);
        fail_job(p, s, intr, why);
        init_job_free(s);
        free(s->init_request);
        if (s->carry_fd >= 0)
                close(s->carry_fd);
        free(s);
}

/* A session that never became usable (its first sandbox could not be made): no tombstone, the
 * create is answered with why. */
static void abort_create(Pool *p, Session *s, const char *why) {
        for (Session **pp = &p->sessions; *pp; pp = &(*pp)->next)
                if (*pp == s) {
                        *pp = s->next;
                        break;
                }
        p->n_sessions--;
        drop_sandbox(p, s);
        Job *job = TAKE_PTR(s->job);
        if (job)
                answer_error(
                        p, job, 503, "SessionCapacity", NULL, "the session could not be started: %s", why);
        init_job_free(s);
        free(s->init_request);
        if (s->carry_fd >= 0)
                close(s->carry_fd);
        free(s);
}

/* ---- the sandbox ---- */

static Kind *session_kind(Pool *p, Session *s) {
        Kind *k = &p->kinds[s->kind];
        if (!k->enabled || k->zstate != Z_UP)
                k = &p->kinds[POOL_FULL];
        return k;
}

/* Keeps one spare sealed while sessions are in use and fewer than MAX_SESSIONS are open. */
static void refill_spare(Pool *p) {
        Kind *k = &p->kinds[POOL_FULL];
        if (p->session_spare || !p->sessions_used || p->stopped || p->n_sessions + 1 > p->max_sessions ||
                k->zstate != Z_UP)
                return;
        Sandbox *before = p->sandboxes;
        if (sb_new_session(p, k, NULL) == 0 && p->sandboxes != before)
                p->session_spare = p->sandboxes; /* sb_spawn links the new one first */
}

/* Spawns a fresh sandbox for s, or gives it the spare when that is sealed. Returns 0 or
 * -errno. */
static int start_sandbox(Pool *p, Session *s) {
        if (p->stopped)
                return -ESHUTDOWN;
        Kind *k = session_kind(p, s);
        Sandbox *spare = p->session_spare;
        if (k->id == POOL_FULL && spare && !spare->reaped && !spare->sess) {
                /* Sealed: used at once; still sealing: its READY goes to s (on_frame). */
                p->session_spare = NULL;
                spare->sess = s;
                s->sb = spare;
                if (spare->state == SB_SESSION)
                        session_sb_ready(p, spare);
                return 0;
        }
        if (k->zstate != Z_UP)
                return -EAGAIN;
        return sb_new_session(p, k, s);
}

/* One FRAME_FD message carrying fd (SCM_RIGHTS). Returns 0 or -errno. */
static int send_fd(int sock, int fd) {
        char tag = FRAME_FD;
        struct iovec iov = {&tag, 1};
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } u = {0};
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
        return sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) == 1 ? 0 : -errno;
}

void session_sb_ready(Pool *p, Sandbox *sb) {
        Session *s = sb->sess;
        if (!s) {
                if (sb != p->session_spare)
                        sb_retire(p, sb);
                return; /* the spare waits, at the zygote's low priority, for a create */
        }
        int r = cgroup_set_memory(&p->cgroups, &sb->cg, s->memory_bytes);
        if (r < 0 && r != -EOPNOTSUPP)
                log_errno(r, "cannot set a session's memory limit");
        /* Back to normal priority from the zygote's lower one; sessions keep it. */
        setpriority(PRIO_PGRP, (id_t)sb->pid, 0);
        cgroup_cpu_weight(&p->cgroups, &sb->cg, CGROUP_CPU_RUNNING);
        MemSample ms;
        if (p->cgroups.mode == CGROUP_NONE && memwatch_sample(sb->pid, 2, &ms) == 0)
                sb->mem_before = ms.pss_bytes - MIN(ms.private_bytes, ms.pss_bytes);
        /* The init request: session mode, and the initial files (only on create). */
        init_job_free(s);
        Job *ij = &s->init_job;
        *ij = (Job){.client_fd = -1};
        buf_init(&ij->result.out, p->cfg.max_output_bytes);
        buf_init(&ij->result.err, p->cfg.max_output_bytes);
        buf_init(&ij->result.merged, p->cfg.max_output_bytes);
        buf_init(&ij->result.report, 4096);
        bool carry = false;
        if (s->init_request && s->state == SS_STARTING) {
                ij->request = TAKE_PTR(s->init_request);
                ij->request_len = s->init_len;
        } else if (s->carry_fd >= 0) {
                /* A restart that keeps the files: the packed /work follows the request. */
                ij->request = strdup("{\"mode\":\"session\",\"op\":\"init\",\"carry\":true}");
                ij->request_len = ij->request ? strlen(ij->request) : 0;
                carry = true;
        } else {
                ij->request = strdup("{\"mode\":\"session\",\"op\":\"init\"}");
                ij->request_len = ij->request ? strlen(ij->request) : 0;
        }
        if (!ij->request) {
                session_sb_died(p, sb);
                return;
        }
        sb->start_us = now_us();
        sb->start_ms = sb->start_us / 1000;
        arm_timer(sb->timer, SESSION_START_MS);
        sb_send_job(p, sb, ij);
        if (carry) {
                _cleanup_close_ int fd = TAKE_FD(s->carry_fd);
                /* A fresh sandbox's socket is empty: the small request went at once, and the
                 * runner reads this message right after it. Should either fail, the runner
                 * does not answer the init and the session is replaced at SESSION_START_MS. */
                int e = sb->sent == ij->request_len ? send_fd(sb->sock, fd) : -EAGAIN;
                if (e < 0)
                        log_errno(e, "cannot pass a session's files to its fresh sandbox");
        }
}

/* The request in progress gets its answer now that the session is usable again. */
static void session_usable(Pool *p, Session *s) {
        s->state = SS_IDLE;
        s->last_active_ms = now_ms();
        Job *job = TAKE_PTR(s->job);
        Job *intr = TAKE_PTR(s->interrupter);
        if (intr)
                answer(p, intr, 200, strdup("{\"interrupted\":true,\"reset\":true}"), 0);
        if (!job)
                return;
        switch (job->session->op) {
        case SOP_CREATE:
                answer_session(p, job, s, 201);
                break;
        case SOP_RESTART:
                answer_session(p, job, s, 200);
                break;
        case SOP_EXECUTE: {
                /* The cell ended in a reset: its result was filled when it ended. */
                json_t *extra =
                        json_pack("{sI s{ss sb ss}}", "execution_count", (json_int_t)s->execution_count,
                                "session", "session_id", s->id, "reset", 1, "message",
                                "the session's interpreter was replaced by a fresh one: its variables, "
                                "imports and files "
                                "were lost");
                s->reset = false;
                job->session->extra = dump(extra, NULL);
                job_finish(p, job, job->result.outcome);
                break;
        }
        default:
                answer_error(p, job, 500, "Internal", NULL,
                        "the session's interpreter was replaced during the file operation; try again");
                break;
        }
}

/* Replaces s's sandbox by a fresh one: the cell in progress (if any) keeps its result and is
 * answered when the fresh one is usable. */
static void reset_session(Pool *p, Session *s, bool memory) {
        drop_sandbox(p, s);
        s->reset = true;
        s->state = SS_RESETTING;
        int r = start_sandbox(p, s);
        if (r < 0) {
                log_errno(r, "cannot replace a session's sandbox; ending the session");
                end_session(p, s, memory ? SESSION_END_MEMORY : SESSION_END_DELETED);
        }
}

static void restart(Pool *p, Job *job, Session *s);

void session_cell_done(Pool *p, Sandbox *sb) {
        Session *s = sb->sess;
        Job *job = sb->job;
        sb->job = NULL;
        sb_disarm(sb);
        if (!s)
                return;
        if (job == &s->init_job) {
                bool ok = sb->report_code == 0;
                init_job_free(s);
                if (!ok && s->state == SS_STARTING && s->job && s->job->session->op == SOP_CREATE) {
                        Job *cj = TAKE_PTR(s->job);
                        abort_create(p, s, "");
                        answer_error(p, cj, 400, "BadRequest", NULL,
                                "the initial files could not be written into the session (is it over "
                                "TMP_SIZE_MB?)");
                        return;
                }
                session_usable(p, s);
                return;
        }
        RunResult *r = &job->result;
        RunOutcome outcome = sb_fill_result(p, sb, job);
        r->exit_code = sb->report_code;
        if (p->cgroups.mode != CGROUP_NONE) {
                r->memory_peak_bytes = MAX(s->cell_mem_peak, cgroup_memory_current(&p->cgroups, &sb->cg));
                if (s->peak_exact)
                        r->memory_peak_bytes = MAX(
                                r->memory_peak_bytes, cgroup_peak_read(&p->cgroups, &sb->cg, sb->peak_fd));
        } else /* the runner's own peak RSS for the cell (runner.py _reset_peak_rss) catches what
                * the samples miss; the samples, what the cell's other processes held */
                r->memory_peak_bytes = MAX(sb->mem_peak, sb->report_maxrss);
        if (s->state == SS_INTERRUPTING && s->stop_reason != RUN_EXITED)
                outcome = s->stop_reason;
        Job *intr = TAKE_PTR(s->interrupter);
        s->job = NULL;
        s->state = SS_IDLE;
        s->last_active_ms = now_ms();
        if (job->session->op == SOP_RESTART) {
                /* The old runner packed /work: the restart goes on with it, or the session
                 * stays as it was. */
                int fd = TAKE_FD(job->session->fd);
                if (outcome == RUN_EXITED && sb->report_code == 0 && fd >= 0) {
                        s->carry_fd = fd;
                        restart(p, job, s);
                } else {
                        if (fd >= 0)
                                close(fd);
                        answer_error(p, job, 500, "RestartFailed", NULL,
                                "the files in /work could not be packed for the restart (more than the "
                                "session's memory can hold, or a file changed while it was read); the "
                                "session is unchanged");
                }
                if (intr)
                        answer(p, intr, 200, strdup("{\"interrupted\":true,\"reset\":false}"), 0);
                return;
        }
        if (job->session->op != SOP_EXECUTE) {
                job_finish(p, job, outcome);
                if (intr)
                        answer(p, intr, 200, strdup("{\"interrupted\":false,\"reset\":false}"), 0);
                return;
        }
        json_t *extra = json_pack("{sI s{ss sb}}", "execution_count", (json_int_t)s->execution_count,
                "session", "session_id", s->id, "reset", s->reset);
        if (extra && s->reset)
                json_object_set_new(json_object_get(extra, "session"), "message",
                        json_string("the session's interpreter was replaced by a fresh one since the last "
                                    "answer: its "
                                    "variables, imports and files were lost"));
        s->reset = false;
        job->session->extra = dump(extra, NULL);
        job_finish(p, job, outcome);
        if (intr)
                answer(p, intr, 200, strdup("{\"interrupted\":true,\"reset\":false}"), 0);
}

/* Gives a cell whose sandbox we killed (it did not stop when interrupted) the status it ended
 * with, as a run killed at its deadline has. */
static void killed_result(Job *job) {
        job->result.exit_code = -1;
        job->result.signal = SIGKILL;
}

void session_sb_died(Pool *p, Sandbox *sb) {
        Session *s = sb->sess;
        Job *job = sb->job;
        if (s && job && job != &s->init_job && sb->reaped) {
                RunOutcome outcome = sb_fill_result(p, sb, job);
                if (s->stop_reason != RUN_EXITED && outcome == RUN_EXITED)
                        outcome = s->stop_reason;
                job->result.outcome = outcome;
                s->lost_memory = outcome == RUN_MEMORY_LIMIT;
        } else if (s && sb->reaped) {
                CgroupStats cs;
                cgroup_read_stats(&p->cgroups, &sb->cg, &cs);
                s->lost_memory = cs.oom_kills > 0 || sb->kill_reason == RUN_MEMORY_LIMIT;
        }
        sb_retire(p, sb); /* calls session_sb_lost */
}

void session_sb_lost(Pool *p, Session *s, bool was_init) {
        bool memory = s->lost_memory;
        s->lost_memory = false;
        if (s->state == SS_STARTING) {
                abort_create(p, s, "its sandbox died while starting");
                return;
        }
        if (s->state == SS_RESETTING) {
                /* A fresh sandbox died before it was usable: not retried in a loop. */
                end_session(p, s, memory ? SESSION_END_MEMORY : SESSION_END_DELETED);
                return;
        }
        (void)was_init;
        reset_session(p, s, memory);
}

void session_timer(Pool *p, Sandbox *sb) {
        Session *s = sb->sess;
        if (!s || sb->reaped)
                return;
        switch (s->state) {
        case SS_BUSY:
                s->stop_reason = RUN_TIMEOUT;
                s->state = SS_INTERRUPTING;
                syscall(SYS_pidfd_send_signal, sb->pidfd, SIGINT, NULL, 0);
                arm_timer(sb->timer, (uint64_t)p->cfg.interrupt_grace_sec * 1000);
                break;
        case SS_INTERRUPTING:
                /* The cell did not stop: the interpreter is replaced. */
                if (sb->job) {
                        Job *job = sb->job;
                        RunOutcome outcome = sb_fill_result(p, sb, job);
                        job->result.outcome = s->stop_reason != RUN_EXITED ? s->stop_reason : outcome;
                        killed_result(job);
                }
                reset_session(p, s, false);
                break;
        case SS_STARTING:
        case SS_RESETTING:
                if (sb->job == &s->init_job) {
                        sb_kill(sb, RUN_INTERNAL); /* its death ends it (session_sb_died) */
                }
                break;
        default:
                break;
        }
}

static void interrupt(Pool *p, Session *s, RunOutcome why) {
        Sandbox *sb = s->sb;
        if (s->state != SS_BUSY || !sb)
                return;
        s->stop_reason = why;
        s->state = SS_INTERRUPTING;
        syscall(SYS_pidfd_send_signal, sb->pidfd, SIGINT, NULL, 0);
        arm_timer(sb->timer, (uint64_t)p->cfg.interrupt_grace_sec * 1000);
}

void session_output_limit(Pool *p, Sandbox *sb) {
        if (sb->sess)
                interrupt(p, sb->sess, RUN_OUTPUT_LIMIT);
}

void session_client_gone(Pool *p, Job *job) {
        for (Session *s = p->sessions; s; s = s->next)
                if (s->job == job && s->state == SS_BUSY)
                        interrupt(p, s, RUN_ABORTED);
}

uint64_t session_memory_limit(const Sandbox *sb) {
        return sb->sess ? sb->sess->memory_bytes : 0;
}

/* ---- requests ---- */

static uint32_t sessions_of(Pool *p, int owner) {
        uint32_t n = 0;
        for (Session *s = p->sessions; s; s = s->next)
                n += s->owner == owner;
        return n;
}

/* At capacity: ends the least recently active session idle for a minute. Returns whether one
 * was. */
static bool evict_one(Pool *p) {
        SessionView v[1024];
        Session *by_index[1024];
        size_t n = 0;
        for (Session *s = p->sessions; s && n < ELEMENTSOF(v); s = s->next) {
                v[n] = (SessionView){.idle = s->state == SS_IDLE, .last_active_ms = s->last_active_ms};
                by_index[n++] = s;
        }
        int i = session_pick_victim(v, n, now_ms(), SESSION_EVICT_IDLE_MS);
        if (i < 0)
                return false;
        end_session(p, by_index[i], SESSION_END_EVICTED);
        return true;
}

static void op_create(Pool *p, Job *job) {
        SessionReq *r = job->session;
        if (r->keyed && sessions_of(p, r->owner) >= p->cfg.max_sessions_per_key) {
                answer_error(p, job, 429, "SessionQuota", NULL,
                        "this API key holds MAX_SESSIONS_PER_KEY (%u) sessions already; delete one first",
                        p->cfg.max_sessions_per_key);
                return;
        }
        if (p->n_sessions >= p->max_sessions && !evict_one(p)) {
                answer_error(p, job, 503, "SessionCapacity", NULL,
                        "MAX_SESSIONS (%u) sessions are open and none has been idle for a minute; try "
                        "again later",
                        p->max_sessions);
                return;
        }
        Session *s = calloc(1, sizeof *s);
        if (!s || session_id_new(p->cfg.node_id, p->boot, s->id, sizeof s->id) < 0) {
                free(s);
                answer_error(p, job, 503, "SessionCapacity", NULL, "out of memory");
                return;
        }
        s->owner = r->owner;
        s->kind = r->kind;
        s->carry_fd = -1;
        s->state = SS_STARTING;
        s->stop_reason = RUN_EXITED;
        s->idle_timeout_sec = r->idle_timeout_sec ? r->idle_timeout_sec : p->cfg.session_idle_timeout_sec;
        s->max_lifetime_sec = r->max_lifetime_sec ? r->max_lifetime_sec : p->cfg.session_max_lifetime_sec;
        s->memory_bytes = r->memory_bytes ? r->memory_bytes : p->cfg.session_memory_bytes;
        s->created_ms = s->last_active_ms = now_ms();
        s->init_request = TAKE_PTR(r->init_request);
        s->init_len = r->init_len;
        s->job = job;
        s->next = p->sessions;
        p->sessions = s;
        p->n_sessions++;
        p->sessions_used = true;
        int e = start_sandbox(p, s);
        if (e < 0) {
                abort_create(p, s, e == -EUSERS ? "every sandbox uid is in use" : strerror(-e));
                return;
        }
        refill_spare(p);
        pthread_mutex_lock(&p->lock);
        p->status.sessions_created++;
        pthread_mutex_unlock(&p->lock);
}

static void op_execute(Pool *p, Job *job, Session *s) {
        if (s->state != SS_IDLE || !s->sb) {
                answer_error(p, job, 409, "SessionBusy", NULL,
                        "session %s is %s: one request at a time; try again when it is idle", s->id,
                        state_name(s->state));
                return;
        }
        uint64_t now = now_ms();
        uint64_t end = s->created_ms + (uint64_t)s->max_lifetime_sec * 1000;
        if (now >= end) {
                end_session(p, s, SESSION_END_MAX_LIFETIME);
                answer_error(p, job, 410, "SessionGone", "max_lifetime", "session %s is gone (max_lifetime)",
                        job->session->id);
                return;
        }
        Sandbox *sb = s->sb;
        s->execution_count++;
        s->job = job;
        s->state = SS_BUSY;
        s->stop_reason = RUN_EXITED;
        uint64_t timeout_ms = job->timeout_ms ? job->timeout_ms : (uint64_t)p->cfg.timeout_sec * 1000;
        timeout_ms = MIN(timeout_ms, end - now);
        s->cell_deadline_ms = timeout_ms;
        job->result.timeout_ms = (uint32_t)timeout_ms;
        job->result.memory_bytes = s->memory_bytes;
        sb->start_us = now_us();
        sb->start_ms = now;
        sb->cpu_base_ms = sb_cpu_ms(p, sb);
        sb->mem_peak = 0;
        sb->runner_signal = 0;
        s->cell_mem_peak = cgroup_memory_current(&p->cgroups, &sb->cg);
        s->peak_exact = cgroup_peak_reset(&p->cgroups, &sb->cg, &sb->peak_fd) == 0;
        CgroupStats cs;
        cgroup_read_stats(&p->cgroups, &sb->cg, &cs);
        sb->oom_base = cs.oom_kills;
        arm_timer(sb->timer, timeout_ms);
        job->session->execution_count = s->execution_count;
        if (job->on_start)
                job->on_start(job);
        sb_send_job(p, sb, job);
}

/* A file operation: a request to the runner while the session is idle. */
static void op_file(Pool *p, Job *job, Session *s) {
        if (s->state != SS_IDLE || !s->sb) {
                answer_error(p, job, 409, "SessionBusy", NULL,
                        "session %s is %s: files can be read and written when it is idle", s->id,
                        state_name(s->state));
                return;
        }
        Sandbox *sb = s->sb;
        s->job = job;
        s->state = SS_BUSY;
        s->stop_reason = RUN_EXITED;
        s->cell_deadline_ms = (uint64_t)p->cfg.timeout_sec * 1000;
        job->result.timeout_ms = (uint32_t)s->cell_deadline_ms;
        sb->start_us = now_us();
        sb->start_ms = sb->start_us / 1000;
        sb->cpu_base_ms = sb_cpu_ms(p, sb);
        arm_timer(sb->timer, s->cell_deadline_ms);
        sb_send_job(p, sb, job);
}

ssize_t session_recv(Pool *p, Sandbox *sb) {
        char cbuf[CMSG_SPACE(sizeof(int) * 8)];
        struct iovec iov = {p->rbuf, RBUF_SIZE};
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
        ssize_t k = recvmsg(sb->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (k < 0)
                return k;
        Job *job = sb->job;
        bool want = k == 1 && p->rbuf[0] == FRAME_FD && sb->sess && job && job->session &&
                    (job->session->op == SOP_FILE_GET ||
                            (job->session->op == SOP_RESTART && job->session->keep_files)) &&
                    job->session->fd < 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < n; i++) {
                        int fd;
                        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                        if (want) {
                                job->session->fd = fd;
                                want = false;
                        } else
                                close(fd);
                }
        }
        return k;
}

static void op_interrupt(Pool *p, Job *job, Session *s) {
        if (s->state == SS_BUSY || s->state == SS_INTERRUPTING) {
                if (s->interrupter) {
                        answer(p, job, 200, strdup("{\"interrupted\":true,\"reset\":false}"), 0);
                        return;
                }
                s->interrupter = job;
                if (s->state == SS_BUSY)
                        interrupt(p, s, RUN_EXITED);
                return;
        }
        answer(p, job, 200, strdup("{\"interrupted\":false,\"reset\":false}"), 0);
}

/* Replaces s's sandbox by a fresh one for job, a restart (with s->carry_fd the files to keep). */
static void restart(Pool *p, Job *job, Session *s) {
        s->job = job;
        s->execution_count = 0;
        drop_sandbox(p, s);
        s->reset = false;
        s->state = SS_RESETTING;
        int r = start_sandbox(p, s);
        if (r < 0) {
                log_errno(r, "cannot restart a session");
                end_session(p, s, SESSION_END_DELETED);
        }
}

static void op_restart(Pool *p, Job *job, Session *s) {
        if (s->state != SS_IDLE) {
                answer_error(p, job, 409, "SessionBusy", NULL,
                        "session %s is %s: restart it when it is idle", s->id, state_name(s->state));
                return;
        }
        if (job->session->keep_files) {
                /* First the runner packs /work (session_cell_done goes on from there). */
                op_file(p, job, s);
                return;
        }
        restart(p, job, s);
}

static void op_list(Pool *p, Job *job) {
        json_t *a = json_array();
        for (Session *s = p->sessions; s && a; s = s->next)
                if (s->owner == job->session->owner)
                        json_array_append_new(a, session_json(p, s));
        answer(p, job, 200, dump(json_pack("{so}", "sessions", a), NULL), 0);
}

void session_job(Pool *p, Job *job) {
        SessionReq *r = job->session;
        if (p->cfg.max_sessions == 0) {
                answer_error(
                        p, job, 404, "SessionsDisabled", NULL, "sessions are disabled (MAX_SESSIONS=0)");
                return;
        }
        if (r->op == SOP_CREATE) {
                op_create(p, job);
                return;
        }
        if (r->op == SOP_LIST) {
                op_list(p, job);
                return;
        }
        Session *s = lookup(p, job);
        if (!s)
                return;
        switch (r->op) {
        case SOP_GET:
                answer_session(p, job, s, 200);
                break;
        case SOP_EXECUTE:
                op_execute(p, job, s);
                break;
        case SOP_INTERRUPT:
                op_interrupt(p, job, s);
                break;
        case SOP_RESTART:
                op_restart(p, job, s);
                break;
        case SOP_DELETE:
                end_session(p, s, SESSION_END_DELETED);
                answer(p, job, 204, NULL, 0);
                break;
        case SOP_FILES_LIST:
        case SOP_FILE_GET:
        case SOP_FILE_PUT:
        case SOP_FILE_DELETE:
                op_file(p, job, s);
                break;
        default:
                answer(p, job, 500, NULL, 0);
                break;
        }
}

void session_tick(Pool *p, uint64_t now) {
        Session *next;
        refill_spare(p);
        /* At MAX_SESSIONS the spare is not kept: it would be a session's worth of memory. */
        if (p->session_spare && p->n_sessions >= p->max_sessions)
                sb_retire(p, p->session_spare);
        for (Session *s = p->sessions; s; s = next) {
                next = s->next;
                Sandbox *sb = s->sb;
                if (s->state == SS_IDLE) {
                        if (now - s->last_active_ms >= (uint64_t)s->idle_timeout_sec * 1000)
                                end_session(p, s, SESSION_END_IDLE_TIMEOUT);
                        else if (now - s->created_ms >= (uint64_t)s->max_lifetime_sec * 1000)
                                end_session(p, s, SESSION_END_MAX_LIFETIME);
                        continue;
                }
                if (s->state == SS_INTERRUPTING && sb && !sb->reaped) {
                        /* Again each tick until the cell stops or the grace is over: a SIGINT that
                         * came while the runner was still reading the cell, before the cell's
                         * KeyboardInterrupt handler was set, did nothing. */
                        syscall(SYS_pidfd_send_signal, sb->pidfd, SIGINT, NULL, 0);
                        continue;
                }
                if (s->state != SS_BUSY || !sb || sb->reaped)
                        continue;
                /* The cell's CPU time, against the same limit as its wall-clock time. */
                uint64_t cpu = sb_cpu_ms(p, sb);
                if (cpu > sb->cpu_base_ms && cpu - sb->cpu_base_ms > s->cell_deadline_ms)
                        interrupt(p, s, RUN_TIMEOUT);
                s->cell_mem_peak = MAX(s->cell_mem_peak, cgroup_memory_current(&p->cgroups, &sb->cg));
        }
}

void session_stop_all(Pool *p) {
        while (p->sessions)
                end_session(p, p->sessions, SESSION_END_SHUTDOWN);
}
