/* The pool: warm sealed sandboxes, the queue of requests waiting for one, and the event loop
 * that runs them. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "cgroup.h"
#include "config.h"
#include "run.h"

/* Which zygote a run is forked from (see pool.c, struct Kind). */
typedef enum PoolKind {
        POOL_FULL, /* PREINSTALL_LIBS imported */
        POOL_LEAN, /* standard library only: much cheaper to fork */
        _POOL_KINDS,
} PoolKind;

typedef struct Job Job;
typedef void (*JobDone)(Job *job);

/* What a session request asks (pool_session_submit); the pool thread answers in the same
 * struct. */
typedef enum SessionOp {
        SOP_CREATE,
        SOP_LIST,
        SOP_GET,
        SOP_EXECUTE, /* the cell is Job.request; the answer is Job.result, then extra */
        SOP_INTERRUPT,
        SOP_RESTART,
        SOP_DELETE,
        /* Files of its /work, through its runner (runner.py _FILE_OPS), when it is idle: the
         * runner request is Job.request, the answer its report (and fd, for a GET). */
        SOP_FILES_LIST,
        SOP_FILE_GET,
        SOP_FILE_PUT,
        SOP_FILE_DELETE,
} SessionOp;

typedef struct SessionReq {
        SessionOp op;
        char id[64]; /* from the URL: any bytes the client sent, NUL-terminated */
        int owner; /* auth_owner */
        bool keyed; /* API keys are configured: MAX_SESSIONS_PER_KEY applies */
        /* SOP_CREATE (0: the server's default) */
        uint32_t idle_timeout_sec, max_lifetime_sec;
        uint64_t memory_bytes;
        PoolKind kind;
        char *init_request; /* JSON for the runner's "init": the files to write; owned */
        size_t init_len;
        /* The answer. status 0: SOP_EXECUTE ran (Job.result, plus extra); else the HTTP
         * status and body (JSON text, malloc'ed; NULL: no body). retry_after: seconds, 0 for
         * none. extra: {"execution_count", "session"} to add to an execute's answer. */
        unsigned status;
        char *body;
        size_t body_len;
        unsigned retry_after;
        char location[128];
        char *extra;
        int fd; /* SOP_FILE_GET: the file, passed by the runner (-1 until then); owned. SOP_RESTART
                 * with keep_files: the old runner's packed /work, the same way */
        bool keep_files; /* SOP_RESTART: job.request asks the runner to pack /work first */
        uint64_t execution_count; /* SOP_EXECUTE: this cell's number, set before Job.on_start */
} SessionReq;

/* One request's run. Owned by the caller (the HTTP layer), which must keep it alive until done
 * is called; done runs on the pool's thread, exactly once. */
struct Job {
        char *request; /* JSON for the runner: {"code": ...}; owned by the job */
        size_t request_len;
        int client_fd; /* watched for hang-up while the job waits or runs; -1 if none */
        PoolKind kind; /* from pool_route; POOL_FULL when unsure */
        uint32_t timeout_ms; /* tighter than EXECUTION_TIMEOUT, or 0 */
        uint64_t memory_bytes; /* tighter than MEMORY_LIMIT_MB, or 0 */
        bool want_files; /* copied to result.want_files */
        JobDone done;
        /* Optional: each piece of output as it arrives (pool thread), for live streaming. */
        void (*on_output)(Job *job, int stream, const char *data, size_t n);
        /* Optional: a figure the program showed (plt.show()), after the output written before it
         * (pool thread). Only for a request that asked the runner for them (api_request_live). */
        void (*on_image)(Job *job, char format, uint32_t width, uint32_t height, const char *data, size_t n);
        /* Optional: the run begins now: the request is on its way to a sandbox (pool thread).
         * Not called for a job refused or ended before (queue timeout, a busy session...). */
        void (*on_start)(Job *job);
        void *userdata;
        SessionReq *session; /* a session request (pool_session_submit), else NULL */
        RunResult result;
        /* pool-private */
        Job *next;
        void *sandbox;
        void *watch;
        uint64_t enqueued_ms;
};

typedef struct Pool Pool;

typedef struct PoolStatus {
        bool zygote_up;
        uint32_t ready, busy, queued, spawning;
        uint64_t zygote_restarts, sandboxes_created;
        uint64_t zygote_recycles[_POOL_KINDS]; /* replaced by a fresh one (ZYGOTE_MAX_SPAWNS/AGE) */
        uint32_t sessions_active, sessions_busy, sessions_max;
        uint64_t sessions_created;
        uint64_t sessions_ended[8]; /* by SessionEnd (session.h) */
        char fatal[512]; /* why no sandbox can be sealed, if so */
} PoolStatus;

/* Prepares the runtime dir, cgroups and zygote, and starts the pool's thread. Blocks until the
 * first sandbox is sealed (the proof that this host can seal one) or it is clear that none can
 * be. Returns 0, or -errno with a message for the operator in why. */
int pool_start(const Config *c, Pool **ret, char *why, size_t whyn);

/* Queues a job. Returns 0, or -EBUSY when MAX_CONCURRENCY runs and QUEUE_SIZE waiting requests
 * are taken (503), or -ESHUTDOWN. Thread-safe. */
int pool_submit(Pool *p, Job *job);

/* Queues a session request (job->session set; job->request the cell for SOP_EXECUTE). Not
 * counted against MAX_CONCURRENCY or QUEUE_SIZE: sessions have their own limits. Returns 0, or
 * -ESHUTDOWN. Thread-safe. */
int pool_session_submit(Pool *p, Job *job);

/* The kind of sandbox a runner request (its JSON) needs. Thread-safe. */
PoolKind pool_route(Pool *p, const char *request, size_t len);

void pool_status(Pool *p, PoolStatus *ret);
const CgroupRoot *pool_cgroups(Pool *p);

/* Graceful stop, first half: refuses new jobs (-ESHUTDOWN) and waits until every admitted job
 * has finished, or grace_ms passed. Returns the number of jobs still unfinished. */
uint32_t pool_drain(Pool *p, uint64_t grace_ms);

/* Ends every job (RUN_SHUTDOWN for the queued ones, kill for the running), stops the zygote,
 * joins the thread, removes cgroups and the runtime dir. */
void pool_stop(Pool *p);
