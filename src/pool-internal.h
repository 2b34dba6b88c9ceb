/* What the pool's files share, and nothing outside them sees: the sandbox handle, the zygote
 * "kind", the pool itself, and the functions each file offers the others. pool.c is the public
 * API, the thread, its event loop and dispatch; pool-sandbox.c a sandbox from spawn to release;
 * pool-zygote.c zygote supervision, recycling and the start-up verdict; pool-sched.c the policy,
 * as pure functions. Everything here runs on the pool's thread unless a comment says otherwise. */
#pragma once

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>

#include "cgroup.h"
#include "config.h"
#include "frame.h"
#include "pool.h"
#include "proto.h"
#include "route.h"
#include "session.h"
#include "zygote.h"

#define RBUF_SIZE (256 * 1024)
_Static_assert(1 + FRAME_CHUNK <= RBUF_SIZE, "a runner frame must arrive whole");
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

/* DYING: answered or abandoned, killed, waiting to be reaped before its cgroups go. RELEASED:
 * unlinked, its fds closed, waiting in the graveyard to be freed after this batch of events
 * (an event later in the batch may still name it: it must find it RELEASED and do nothing). */
/* SESSION: sealed and owned by a session (pool-session.c), never by the ready list; what it is
 * doing is the session's state. */
typedef enum SbState {
        SB_SPAWNING,
        SB_SEALING,
        SB_READY,
        SB_RUNNING,
        SB_SESSION,
        SB_DYING,
        SB_RELEASED
} SbState;

typedef struct Kind Kind;
typedef struct Session Session;

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
        bool reaped, sock_eof, out_eof, err_eof, draining;
        siginfo_t si;
        struct rusage ru;
        uint64_t start_ms, cpu_base_ms;
        uint64_t start_us; /* start_ms finer, for RunResult.duration_us */
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
        /* A session's sandbox: made for it, counted apart from the stateless pool (never in a
         * kind's spawning/sealing/ready counts nor in n_running), for its whole life. sess is
         * its session while it serves one (NULL once detached, e.g. killed and replaced). */
        bool for_session;
        Session *sess;
        int peak_fd; /* a session cell's memory.peak (cgroup_peak_reset), or -1 */
        uint64_t oom_base; /* OOM kills its cgroup counted before the cell */
        FrameImage image; /* a figure on its way to a live answer (frame.h), reset per job */
        struct Sandbox *next;
} Sandbox;

/* A session's life (pool-session.c): STARTING (its sandbox seals, then writes the initial
 * files) -> IDLE <-> BUSY (a cell runs) -> INTERRUPTING (SIGINT sent, INTERRUPT_GRACE to stop)
 * -> back to IDLE if the cell stopped, else RESETTING (killed, a fresh sandbox starts under the
 * same id) -> IDLE; ENDING: deleted, expired or evicted, its sandbox killed, gone at once. */
typedef enum SessState { SS_STARTING, SS_IDLE, SS_BUSY, SS_INTERRUPTING, SS_RESETTING } SessState;

struct Session {
        char id[SESSION_ID_MAX + 1];
        int owner;
        PoolKind kind;
        SessState state;
        Sandbox *sb;
        /* The request in progress: the create or restart waiting for a sealed sandbox, or the
         * execute whose cell runs. Internal work (the initial files) runs as init_job. */
        Job *job;
        Job init_job;
        Job *interrupter; /* an interrupt request waiting for the cell to stop */
        RunOutcome stop_reason; /* why the cell is being interrupted: TIMEOUT, OUTPUT_LIMIT, ABORTED */
        bool reset; /* the interpreter was replaced since the last answer: say so once */
        bool lost_memory; /* its sandbox died of the memory limit */
        bool peak_exact; /* the cgroup's peak was reset at the cell's start */
        char *init_request;
        size_t init_len;
        int carry_fd; /* a restart's packed /work (a memfd the old runner made), for the new runner's init, or -1 */
        uint64_t created_ms, created_wall_ms, last_active_ms;
        uint32_t idle_timeout_sec, max_lifetime_sec;
        uint64_t memory_bytes;
        uint64_t execution_count;
        uint64_t cell_start_ms, cell_cpu_base_ms, cell_mem_peak, cell_deadline_ms;
        struct Session *next;
};

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

/* Serving, then (pool_drain) refusing new jobs while admitted ones finish, then (pool_stop)
 * ending everything. Set by other threads under the lock; the pool thread keeps its own copy of
 * "stopping" in Pool.stopped. */
typedef enum PoolPhase { POOL_SERVING, POOL_DRAINING, POOL_STOPPING } PoolPhase;

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
        PoolPhase phase;
        int start_state; /* 0 pending, 1 serving, <0 failed */
        char start_why[1024];
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
        bool stopped; /* the thread saw POOL_STOPPING and began to end everything */
        bool started; /* every kind sealed a sandbox once */
        bool memwatch_warned; /* logged once: a run's memory figures could not be read */
        char fatal[512];
        uint64_t next_id;
        char *rbuf; /* receive buffer, one per pool */

        /* Sessions (pool-session.c): the live ones, newest first, and the ended ones. */
        Session *sessions;
        uint32_t n_sessions;
        Tombstones tombstones;
        /* A session sandbox sealed in advance (of the full zygote), so that a create costs
         * what a stateless run's take does; made once sessions are used, counted against
         * MAX_SESSIONS (none while MAX_SESSIONS are open). SB_SESSION without a session. */
        Sandbox *session_spare;
        bool sessions_used;
        char boot[SESSION_BOOT_LEN + 1];
        uint32_t admitted_sessions; /* of admitted, session requests (under lock) */
        uint32_t max_sessions; /* MAX_SESSIONS, lowered when the uid range is too small */

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

/* --- pool.c: the event loop's helpers, jobs and queues, dispatch --- */
uint64_t now_ms(void); /* CLOCK_MONOTONIC */
uint64_t now_us(void); /* the same clock, in microseconds */
int ep_add(Pool *p, int fd, uint32_t events, Tag *tag);
void ep_mod(Pool *p, int fd, uint32_t events, Tag *tag);
void ep_del(Pool *p, int fd); /* fd < 0: nothing */
void arm_timer(int fd, uint64_t ms); /* a one-shot timerfd; 0 fires at once */
/* Sets or (FATAL_NONE) clears why no request can be served, and what set it. */
void set_fatal(Pool *p, FatalCause cause, const char *why);
/* Hands a job back to its owner with its outcome. The job must be off the queue. */
void job_finish(Pool *p, Job *job, RunOutcome outcome);
/* Finishes every queued job with outcome (and why as the internal error, if not NULL). */
void fail_queues(Pool *p, RunOutcome outcome, const char *why);
/* Moves the full zygote's queue to the lean one when pool-sched.c would route there now. */
void reroute_to_lean(Pool *p);
/* Starts what can start and asks the zygotes for the sandboxes the pool is short of. */
void dispatch(Pool *p);

/* --- pool-sandbox.c: a sandbox from spawn to release --- */
/* sb is a spare of kind k that a zygote is still making (spawning or sealing). */
static inline bool sb_spare_in_making(const Sandbox *sb, const Kind *k) {
        return sb->kind == k && !sb->for_session && (sb->state == SB_SPAWNING || sb->state == SB_SEALING);
}
/* Asks k's zygote for a new sandbox. Returns 0, -EUSERS when every uid slot is held, or
 * another -errno. */
int sb_new(Pool *p, Kind *k);
Sandbox *find_sandbox(Pool *p, uint64_t id);
void sb_set_state(Pool *p, Sandbox *sb, SbState st); /* keeps the per-state counts */
/* Gives a ready sandbox its job: priority, cgroup weight, deadline, the request. */
void sb_assign(Pool *p, Sandbox *sb, Job *job);
/* Kills it (once reason is set, it stays: the first reason is the run's outcome). */
void sb_kill(Sandbox *sb, RunOutcome reason);
/* Ends a sandbox no longer needed: released now if it has no process, else killed and DYING. */
void sb_retire(Pool *p, Sandbox *sb);
/* Event handlers for its pidfd, socket, pipes (stream 1 or 2) and timer. */
void on_sb_pid(Pool *p, Sandbox *sb);
void on_sb_sock(Pool *p, Sandbox *sb, uint32_t events);
void on_sb_pipe(Pool *p, Sandbox *sb, int stream);
void on_sb_timer(Pool *p, Sandbox *sb);
void drain_pipe(Pool *p, Sandbox *sb, int stream); /* reads what the pipe holds, bounded */
/* Without a memory cgroup: samples every running sandbox and kills those past their limit. */
void watch_memory(Pool *p);

/* --- pool-zygote.c: zygotes, recycling, the start-up verdict, stray children --- */
void zygote_up(Pool *p, Kind *k); /* starts k's zygote (or promotes its successor) */
/* Stops k's zygote, retires what it never answered, and sets the pause before the next. */
void zygote_down(Pool *p, Kind *k, const char *why);
/* Event handlers for a zygote's control socket and pidfd, and for a recycle's two zygotes. */
void on_zctl(Pool *p, Kind *k);
void on_zpid(Pool *p, Kind *k);
void recycle_event(Pool *p, Kind *k);
/* A sandbox's first frame can overtake its zygote's reply: reads the reply first. Returns
 * whether the sandbox is past SPAWNING. */
bool spawn_reply_first(Pool *p, Sandbox *sb);
/* Start-up: the first failure is the verdict; success once every kind sealed a sandbox. */
void start_failed(Pool *p, const char *why);
void start_progress(Pool *p);
/* Each tick: starts a successor for a zygote over ZYGOTE_MAX_SPAWNS/AGE; bounds the waits. */
void recycle_tick(Pool *p, Kind *k, uint64_t now);
/* Retires stale ready sandboxes beyond want; returns how many stale ones still count. */
uint32_t recycle_stale(Pool *p, Kind *k, uint32_t want);
void recycle_stop(Pool *p, Kind *k); /* shutdown: ends a successor and an old zygote */
void sweep_children(Pool *p); /* reaps children no handle tracks */

/* --- pool-session.c: sessions, on the pool thread --- */
/* A session request from the inbox. */
void session_job(Pool *p, Job *job);
/* A session sandbox said READY / sent its 'Z' / was reaped / its timer fired. */
void session_sb_ready(Pool *p, Sandbox *sb);
void session_cell_done(Pool *p, Sandbox *sb);
void session_sb_died(Pool *p, Sandbox *sb);
/* s's sandbox was retired under it (died, or its zygote went away while it spawned): replace
 * it, or end the session. Called by sb_retire, with s->sb already NULL. */
void session_sb_lost(Pool *p, Session *s, bool was_init);
void session_timer(Pool *p, Sandbox *sb);
/* The output cap of a cell was reached: interrupt it (its state is kept if it stops). */
void session_output_limit(Pool *p, Sandbox *sb);
/* A client of an execute went away: the cell is interrupted as by the interrupt endpoint. */
void session_client_gone(Pool *p, Job *job);
/* Each tick: idle and lifetime expiry, per-cell CPU. */
void session_tick(Pool *p, uint64_t now);
/* Shutdown: ends every session (their jobs answered RUN_SHUTDOWN). */
void session_stop_all(Pool *p);
/* recv() of a session sandbox's socket into p->rbuf: an fd it passes is kept only when it is
 * the one a file GET waits for (FRAME_FD alone), else closed. */
ssize_t session_recv(Pool *p, Sandbox *sb);
/* The memory limit a session sandbox has (memwatch), 0 if none. */
uint64_t session_memory_limit(const Sandbox *sb);
/* Asks k's zygote for a sandbox for sess (sb_new's twin); sess NULL: the spare. */
int sb_new_session(Pool *p, Kind *k, Session *sess);
/* Sends a request on a session sandbox (a cell or its init): the deadline is the caller's. */
void sb_send_job(Pool *p, Sandbox *sb, Job *job);
/* The CPU time of everything in the sandbox so far, in ms. */
uint64_t sb_cpu_ms(Pool *p, Sandbox *sb);
/* Fills job's result from the sandbox's figures after a cell or run (exit status, CPU, memory),
 * and returns its outcome. */
RunOutcome sb_fill_result(Pool *p, Sandbox *sb, Job *job);
void publish_status(Pool *p);

/* A sandbox already released: only freeing is left (see SB_RELEASED). */
static inline bool sb_released(const Sandbox *sb) {
        return sb->state == SB_RELEASED;
}
