/* The pool's zygotes: starting one and watching it, its spawn replies, its death and the
 * pause before the next (pool-sched.c), the start-up verdict (every kind sealed a sandbox once),
 * recycling a zygote for a fresh one, and reaping children nobody tracks. The pool's theory of
 * operation is in pool.c. */
#include "pool-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "confine.h"
#include "pool-sched.h"
#include "util/fd.h"
#include "util/log.h"
#include "util/macro.h"

/* ---- zygotes ---- */

void zygote_down(Pool *p, Kind *k, const char *why) {
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

void zygote_up(Pool *p, Kind *k) {
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

void start_failed(Pool *p, const char *why) {
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
void start_progress(Pool *p) {
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
                        char why[900], buf[600];
                        int e = rep->error < 0 ? -rep->error : errno;
                        Confinement conf;
                        const char *cause = "";
                        if (confine_read(&conf) == 0)
                                cause = confine_hint(&conf, CONFINE_CLONE, e, buf, sizeof buf);
                        snprintf(why, sizeof why, "cannot create a sandbox: %s%s%s", strerror(e),
                                *cause ? ". " : "", cause);
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

static void old_zygote_poll(Pool *p, Kind *k);

/* A sandbox's first frame (READY, or FAIL) can overtake its zygote's reply with its pid: the
 * zygote is descheduled between releasing the child and replying (seen under load on two
 * cores), or both land in one batch of events in the other order. A frame read while the
 * sandbox is SPAWNING would be taken for a waiting sandbox's talk and lost, and the sandbox
 * would stay SEALING for ever. So the reply is read first; if it is not there yet, the socket
 * is not watched until it is (on_spawn_reply), and the frame waits in it. Returns whether the
 * sandbox is past SPAWNING. */
bool spawn_reply_first(Pool *p, Sandbox *sb) {
        Kind *k = sb->kind;
        if (k->zstate == Z_UP)
                on_zctl(p, k);
        if (k->old_live && !sb_released(sb) && sb->state == SB_SPAWNING)
                old_zygote_poll(p, k);
        if (sb_released(sb))
                return false;
        if (sb->state != SB_SPAWNING)
                return true;
        ep_del(p, sb->sock);
        return false;
}

void on_zctl(Pool *p, Kind *k) {
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

void on_zpid(Pool *p, Kind *k) {
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

void recycle_event(Pool *p, Kind *k) {
        if (k->next_state == Z_STARTING)
                successor_poll(p, k);
        if (k->old_live)
                old_zygote_poll(p, k);
}

/* Each tick: starts a successor when the zygote is over a limit; bounds the waits. */
void recycle_tick(Pool *p, Kind *k, uint64_t now) {
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
uint32_t recycle_stale(Pool *p, Kind *k, uint32_t want) {
        if (!k->recycling)
                return 0;
        uint32_t stale = 0;
        Sandbox *next;
        for (Sandbox *sb = p->sandboxes; sb; sb = next) {
                next = sb->next;
                if (sb->kind != k || sb->id >= k->fresh_from || sb_released(sb))
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
void recycle_stop(Pool *p, Kind *k) {
        successor_stop(p, k);
        old_zygote_stop(p, k);
}

/* Reaps children we do not track: a sandbox the zygote cloned but could not report before it
 * died. Tracked children are reaped through their pidfds. */
void sweep_children(Pool *p) {
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
