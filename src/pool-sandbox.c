/* A sandbox, from the spawn request to its release: its fds and cgroup, its uid slot, the frames
 * it sends (judged by frame.c), its output, the request sent to it, its deadline, its reaping,
 * and the run's result built from all of that. Without a memory cgroup, the watchdog that
 * samples each running sandbox's memory is here too. The pool's theory of operation is in
 * pool.c. */
#include "pool-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "confine.h"
#include "frame.h"
#include "memwatch.h"
#include "pool-sched.h"
#include "seal.h"
#include "util/fd.h"
#include "util/log.h"
#include "util/macro.h"
#include "util/proc.h"

/* ---- sandboxes ---- */

void sb_kill(Sandbox *sb, RunOutcome reason) {
        if (sb->kill_reason == RUN_EXITED)
                sb->kill_reason = reason;
        if (sb->pidfd >= 0 && !sb->reaped)
                syscall(SYS_pidfd_send_signal, sb->pidfd, SIGKILL, NULL, 0);
}

static void sb_count(Pool *p, Sandbox *sb, int delta) {
        if (sb->state == SB_RELEASED || (sb->for_session && sb->state != SB_DYING))
                return;
        uint32_t *c = sb->state == SB_SPAWNING  ? &sb->kind->n_spawning
                      : sb->state == SB_SEALING ? &sb->kind->n_sealing
                      : sb->state == SB_READY   ? &sb->kind->n_ready
                      : sb->state == SB_RUNNING ? &p->n_running
                                                : &p->n_dying;
        *c += (uint32_t)delta;
}

void sb_set_state(Pool *p, Sandbox *sb, SbState st) {
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
        if (sb_released(sb))
                return;
        sb_set_state(p, sb, SB_RELEASED);
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
        sb->peak_fd = safe_close(sb->peak_fd);
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

static void sb_retire_now(Pool *p, Sandbox *sb);

/* Ends a sandbox that is no longer needed: released at once if it has no process left,
 * otherwise killed and kept (DYING) until its pidfd says it was reaped; tearing down a large
 * address space takes milliseconds, which nobody should wait for. */
void sb_retire(Pool *p, Sandbox *sb) {
        if (sb_released(sb) || sb->state == SB_DYING)
                return;
        /* A session's sandbox retired under it (not by the session itself, which detaches it
         * first): the session replaces it or ends, after this one is gone. */
        Session *s = sb->sess;
        if (s) {
                sb->sess = NULL;
                if (s->sb == sb)
                        s->sb = NULL;
        }
        if (p->session_spare == sb)
                p->session_spare = NULL;
        bool was_init = s && sb->job == &s->init_job;
        sb_retire_now(p, sb);
        if (s)
                session_sb_lost(p, s, was_init);
}

static void sb_retire_now(Pool *p, Sandbox *sb) {
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

/* A sandbox being built by sb_new: what it has acquired so far, undone in reverse if sb_new
 * returns before handing it to the pool (then sb is NULL). */
typedef struct SbBuild {
        Pool *p;
        Sandbox *sb;
        bool slot, cg;
} SbBuild;

static void sb_build_undo(SbBuild *b) {
        if (!b->sb)
                return;
        safe_close(b->sb->timer);
        if (b->cg)
                cgroup_destroy(&b->sb->cg);
        if (b->slot)
                slot_put(b->p, b->sb);
        free(b->sb);
}

static int sb_spawn(Pool *p, Kind *k, Session *sess, bool for_session) {
        _cleanup_close_pair_ int sv[2] = {-1, -1}, po[2] = {-1, -1}, pe[2] = {-1, -1};
        _cleanup_(sb_build_undo) SbBuild b = {.p = p};
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

        sb = b.sb = calloc(1, sizeof *sb);
        if (!sb)
                return -ENOMEM;
        buf_init(&sb->image.data, SIZE_MAX); /* bounded by frame_add_image */
        sb->id = ++p->next_id;
        sb->kind = k;
        sb->for_session = for_session;
        sb->sess = sess;
        sb->pidfd = sb->timer = sb->peak_fd = -1;
        sb->kill_reason = RUN_EXITED;
        for (size_t i = 0; i < CGROUP_PROCS_MAX; i++)
                sb->cg.procs_fds[i] = -1;
        r = slot_take(p, sb);
        if (r < 0)
                return r;
        b.slot = true;
        r = cgroup_create(&p->cgroups, sb->id, &p->cfg, &sb->cg);
        if (r < 0)
                return r;
        b.cg = true;
        sb->timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (sb->timer < 0)
                return -errno;
        _Static_assert(CGROUP_PROCS_MAX <= SPAWN_CGROUPS_MAX, "the zygote takes fewer cgroup fds");
        int fds[3 + CGROUP_PROCS_MAX] = {sv[1], po[1], pe[1]};
        memcpy(fds + 3, sb->cg.procs_fds, sizeof sb->cg.procs_fds);
        /* A session's RLIMIT_CPU is a backstop over its life: its lifetime at its CPU quota
         * (pool-session.c limits each cell). */
        uint32_t cpu_limit = 0;
        if (for_session) {
                uint64_t life = sess ? sess->max_lifetime_sec : p->cfg.session_max_lifetime_sec;
                cpu_limit = (uint32_t)MIN(
                        life * ((p->cfg.cpu_limit_percent + 99) / 100) + 1, (uint64_t)UINT32_MAX - 2);
        }
        r = zygote_request_spawn(&k->zyg, sb->id, sb->uid, sb->gid, cpu_limit,
                for_session ? p->cfg.session_files_bytes : 0, fds, (size_t)sb->cg.nprocs_fds);
        cgroup_close_fds(&sb->cg);
        if (r < 0)
                return r;
        /* From here the pool owns it: sb_retire undoes everything. */
        TAKE_PTR(b.sb);
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
        if (sess)
                sess->sb = sb;
        return 0;
}

int sb_new(Pool *p, Kind *k) {
        return sb_spawn(p, k, NULL, false);
}

int sb_new_session(Pool *p, Kind *k, Session *sess) {
        return sb_spawn(p, k, sess, true);
}

/* Sends what is left of the request; EPOLLOUT brings us back if the socket is full. */
static void sb_send_request(Pool *p, Sandbox *sb) {
        if (!sb->job)
                return;
        Job *job = sb->job;
        while (sb->sent < job->request_len) {
                size_t n = MIN((size_t)FRAME_CHUNK, job->request_len - sb->sent);
                char hdr[FRAME_REQUEST_HEADER];
                struct iovec iov[2];
                int k = 0;
                if (sb->sent == 0)
                        iov[k++] = (struct iovec){hdr, frame_request_header(hdr, job->request_len)};
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
        if (take < n) {
                if (sb->for_session)
                        session_output_limit(p, sb);
                else
                        sb_kill(sb, RUN_OUTPUT_LIMIT);
        }
}

void sb_send_job(Pool *p, Sandbox *sb, Job *job) {
        sb->job = job;
        frame_image_reset(&sb->image);
        sb->image.count = 0;
        sb->sent = 0;
        sb->report_ok = false;
        sb->report_code = 0;
        sb->report_maxrss = 0;
        sb_send_request(p, sb);
}

/* CPU time of the run so far, in ms: every process of it when a cgroup counts it, otherwise
 * the runner and the init, each with its waited-for children (the runner's are the program's;
 * the init's are the orphans it reaped, and the runner itself once it ended). */
uint64_t sb_cpu_ms(Pool *p, Sandbox *sb) {
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

void sb_assign(Pool *p, Sandbox *sb, Job *job) {
        sb_set_state(p, sb, SB_RUNNING);
        sb->job = job;
        job->sandbox = sb;
        sb->start_us = now_us();
        sb->start_ms = sb->start_us / 1000;
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
        if (job->on_start)
                job->on_start(job);
        sb_send_request(p, sb);
}

/* Fills the job's result and hands the job back; then the sandbox is retired. Two ways here:
 * the runner's report arrived (it is about to _exit: answer now, the teardown of its address
 * space happens while the client already has its answer), or the init was reaped. */
static void sb_complete(Pool *p, Sandbox *sb) {
        Job *job = sb->job;
        RunOutcome outcome = sb_fill_result(p, sb, job);
        sb->job = NULL;
        job_finish(p, job, outcome);
        sb_retire(p, sb);
}

RunOutcome sb_fill_result(Pool *p, Sandbox *sb, Job *job) {
        RunResult *r = &job->result;
        CgroupStats cs;

        r->duration_us = now_us() - sb->start_us;
        r->duration_ms = r->duration_us / 1000;
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
        if (outcome == RUN_EXITED && cs.oom_kills > sb->oom_base && (r->signal != 0 || r->exit_code != 0))
                outcome = RUN_MEMORY_LIMIT;
        return outcome;
}

static void sb_maybe_complete(Pool *p, Sandbox *sb) {
        if (sb->state == SB_SESSION && !sb->reaped && sb->job && sb->report_ok) {
                /* A cell's 'Z': what its processes wrote to the pipes so far is the cell's. */
                drain_pipe(p, sb, 1);
                drain_pipe(p, sb, 2);
                if (!sb_released(sb) && sb->state == SB_SESSION && !sb->reaped && sb->job)
                        session_cell_done(p, sb);
                return;
        }
        if (sb->state != SB_RUNNING || sb_released(sb))
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
                if (sb_released(sb) || sb->state != SB_RUNNING || sb->reaped)
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
        char why[1024];
        if (sb->failed) {
                const char *hint = seal_step_hint(sb->failure.step, sb->failure.error);
                /* What confines the server too, when that explains the step's errno: the
                 * container flag to add (confine.c). */
                char buf[600];
                Confinement conf;
                const char *cause = "";
                if (confine_read(&conf) == 0)
                        cause = confine_hint(&conf, sb->failure.step, sb->failure.error, buf, sizeof buf);
                snprintf(why, sizeof why, "a sandbox could not be sealed: step \"%s\" failed: %s%s%s%s%s",
                        seal_step_name(sb->failure.step), strerror(sb->failure.error), *hint ? ". " : "",
                        hint, *cause ? ". " : "", cause);
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

void on_sb_pid(Pool *p, Sandbox *sb) {
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
        if (sb->state == SB_SESSION) {
                session_sb_died(p, sb);
                return;
        }
        /* Died before it ran anything: sealing failed, or it was killed while waiting. */
        if (sb->state == SB_SEALING)
                seal_failed(p, sb);
        else if (sb->state == SB_READY && !p->stopped)
                log_error("a ready sandbox died (status %d); replacing it", sb->si.si_status);
        if (sb->for_session) {
                session_sb_died(p, sb);
                return;
        }
        sb_retire(p, sb);
}

/* A piece of a figure for a live answer. When it is whole, the output written before it is
 * handed on first: the program's own writes came on this socket before the figure, but what
 * its subprocesses and C code wrote may still wait in the pipes, and the runner wrote all of
 * that before it sent the figure. */
static void on_image_frame(Pool *p, Sandbox *sb, const Frame *f) {
        if (!sb->job->on_image)
                return; /* not a live answer: the report carries the figures */
        if (frame_add_image(&sb->image, f, p->cfg.max_images, p->cfg.max_image_bytes) !=
                FRAME_IMAGE_COMPLETE)
                return;
        drain_pipe(p, sb, 1);
        drain_pipe(p, sb, 2);
        if (!sb_released(sb) && sb->job && sb->job->on_image)
                sb->job->on_image(sb->job, sb->image.format, sb->image.width, sb->image.height,
                        sb->image.data.data, sb->image.data.len);
        frame_image_reset(&sb->image);
}

static void on_frame(Pool *p, Sandbox *sb, const char *m, size_t n) {
        Frame f;
        FramePhase ph = FRAME_PHASE_QUIET;
        if (sb->state == SB_SEALING)
                ph = FRAME_PHASE_SEALING;
        else if ((sb->state == SB_RUNNING || sb->state == SB_SESSION) && sb->job)
                ph = sb->job->result.report_done ? FRAME_PHASE_REPORTED : FRAME_PHASE_RUNNING;
        else if (sb->state == SB_SESSION)
                ph = FRAME_PHASE_IDLE;
        frame_parse(ph, m, n, &f);
        /* Only a phase with a job (RUNNING, REPORTED) yields what the job takes. */
        bool for_job = f.verdict == FRAME_IS_OUTPUT || f.verdict == FRAME_IS_REPORT ||
                       f.verdict == FRAME_IS_REPORT_END || f.verdict == FRAME_IS_REPORT_BAD_END ||
                       f.verdict == FRAME_IS_IMAGE || f.verdict == FRAME_IS_IMAGE_MORE;
        if (for_job && !sb->job)
                return;
        switch (f.verdict) {
        case FRAME_IGNORE:
                break;
        case FRAME_IS_READY:
                /* The init's only child yet: the runner. */
                sb->runner_pid = proc_first_child(sb->pid);
                /* Idle only while an older spare was being made (order_spares). */
                if (sb->cg.idle)
                        cgroup_cpu_weight(&p->cgroups, &sb->cg, CGROUP_CPU_WAITING);
                sb_set_state(p, sb, sb->for_session ? SB_SESSION : SB_READY);
                p->seal_failures = 0;
                set_fatal(p, FATAL_NONE, "");
                start_progress(p);
                if (sb->for_session)
                        session_sb_ready(p, sb);
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
        case FRAME_IS_IMAGE:
        case FRAME_IS_IMAGE_MORE:
                on_image_frame(p, sb, &f);
                break;
        }
}

void on_sb_sock(Pool *p, Sandbox *sb, uint32_t events) {
        if (sb->state == SB_SPAWNING && !spawn_reply_first(p, sb))
                return;
        if (events & EPOLLOUT && (sb->state == SB_RUNNING || sb->state == SB_SESSION) && sb->job)
                sb_send_request(p, sb);
        for (int i = 0; i < 64 && !sb->sock_eof; i++) {
                /* A session's runner may pass a file's fd (FRAME_FD); recv() alone has the
                 * kernel drop any fd a stateless run sends. */
                ssize_t k = sb->for_session ? session_recv(p, sb)
                                            : recv(sb->sock, p->rbuf, RBUF_SIZE, MSG_DONTWAIT);
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
                if (sb_released(sb))
                        return;
        }
        sb_maybe_complete(p, sb);
}

/* Reads what the pipe holds (at most 1 MiB per call, to stay fair to other sandboxes). */
void drain_pipe(Pool *p, Sandbox *sb, int stream) {
        int fd = stream == 1 ? sb->out : sb->err;
        bool *eof = stream == 1 ? &sb->out_eof : &sb->err_eof;
        for (int i = 0; i < 16 && !*eof && !sb_released(sb); i++) {
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
                /* A session between cells: what its background work writes is dropped (README). */
                if ((sb->state == SB_RUNNING || sb->state == SB_SESSION) && sb->job)
                        sb_output(p, sb, stream, p->rbuf, (size_t)k);
        }
}

void on_sb_pipe(Pool *p, Sandbox *sb, int stream) {
        drain_pipe(p, sb, stream);
        sb_maybe_complete(p, sb);
}

void on_sb_timer(Pool *p, Sandbox *sb) {
        uint64_t ticks;
        ssize_t k _unused_ = read(sb->timer, &ticks, sizeof ticks);
        if (sb->state == SB_SESSION) {
                session_timer(p, sb);
                return;
        }
        if (sb->state != SB_RUNNING)
                return;
        if (!sb->reaped) {
                sb_kill(sb, RUN_TIMEOUT);
                return;
        }
        /* Drain grace over: take what arrived and finish. */
        on_sb_sock(p, sb, EPOLLIN);
        if (sb_released(sb))
                return;
        sb->sock_eof = sb->out_eof = sb->err_eof = true;
        sb_maybe_complete(p, sb);
}

Sandbox *find_sandbox(Pool *p, uint64_t id) {
        for (Sandbox *sb = p->sandboxes; sb; sb = sb->next)
                if (sb->id == id)
                        return sb;
        return NULL;
}

/* Without a memory cgroup: sums what each run's processes and its tmpfs hold and kills a run
 * past its limit, as the cgroup's OOM killer would (memwatch.c says what is counted). */
/* Whether a figure of a running sandbox was read (r is the reader's return): gone (its reap
 * comes next) is false; unreadable is false too, and the run is ended, since a run we cannot
 * measure would be a run without a memory limit (logged once per server). */
static bool watch_read(Pool *p, Sandbox *sb, int r, const char *what) {
        if (r == -ESRCH || r == -ENOENT)
                return false;
        if (r < 0) {
                if (!p->memwatch_warned) {
                        log_errno(r, "cannot read a run's %s; ending it (memory limit)", what);
                        p->memwatch_warned = true;
                }
                sb_kill(sb, RUN_MEMORY_LIMIT);
                return false;
        }
        return true;
}

void watch_memory(Pool *p) {
        for (Sandbox *sb = p->sandboxes; sb; sb = sb->next) {
                MemSample ms;
                bool session = sb->state == SB_SESSION && sb->sess;
                if ((sb->state != SB_RUNNING && !session) || sb->reaped || sb->kill_reason != RUN_EXITED)
                        continue;
                if (!watch_read(
                            p, sb, memwatch_sample(sb->pid, p->cfg.max_processes, &ms), "memory figures"))
                        continue;
                uint64_t used = ms.pss_bytes > sb->mem_before ? ms.pss_bytes - sb->mem_before : 0;
                uint64_t files = 0;
                if (!watch_read(p, sb, memwatch_tmpfs_bytes(sb->pid, &files), "tmpfs usage"))
                        continue;
                used += files;
                sb->mem_peak = MAX(sb->mem_peak, used);
                uint64_t limit = session ? session_memory_limit(sb) : sb->job->result.memory_bytes;
                if (used > limit)
                        sb_kill(sb, RUN_MEMORY_LIMIT);
        }
}
