/* HTTP with libmicrohttpd. One internal polling thread (epoll) parses requests; a request that
 * is waiting for its run is suspended (MHD_suspend_connection), so it holds no thread; the pool
 * thread resumes it when the run is done, and this thread builds and sends the answer.
 *
 * Limits applied here, before anything reaches a sandbox: the body is capped at
 * MAX_REQUEST_BYTES (413, checked on Content-Length first and again while reading, for chunked
 * bodies), the Content-Type must be JSON (415), the method must be allowed (405 with Allow), the
 * path must exist (404), an API key is needed when keys are configured (401), headers are capped
 * by libmicrohttpd's per-connection memory limit, and idle connections time out.
 *
 * Connections, so that one client cannot shut out the others: at most CONNECTION_LIMIT in all
 * and MAX_CONNECTIONS_PER_IP from one address (libmicrohttpd closes the extra ones as soon as it
 * accepts them). A connection waiting for a request's line and headers (a new one, or a kept-
 * alive one between requests) has HEADER_TIMEOUT seconds for them, counted from when it began
 * waiting: libmicrohttpd's timeouts are idle timeouts (each byte received restarts them), so a
 * client trickling a header byte now and then would keep its connection; the header watch (a
 * thread of this file, see `Waiting`) shuts down the socket of a connection past its deadline,
 * and libmicrohttpd then closes it. The daemon's idle timeout is HEADER_TIMEOUT too. From the
 * first call of the access handler (headers complete) the connection's idle timeout is
 * IDLE_TIMEOUT_SEC, so a body may arrive slowly, and on_completed puts it back. A suspended
 * connection (a run in flight) is never timed out by libmicrohttpd.
 *
 * Every request gets a request id (the client's X-Request-Id when it is a sane token, else a
 * random one), returned in X-Request-Id and written in its one access-log line. Neither code nor
 * output nor keys are ever logged. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdatomic.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "mcp.h"
#include "forward.h"
#include "metrics.h"
#include "playground.h"
#include "stream.h"
#include "upload.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/macro.h"
#include "util/utf8.h"

#define CONNECTION_LIMIT 1024
#define IDLE_TIMEOUT_SEC 60
#define HEADER_MEMORY (64 * 1024)
#define REQUEST_ID_MAX 64
/* A live answer's output is sent at STREAM_TEXT_MAX bytes or this long after its first unsent
 * byte, whichever comes first; a keepalive event after LIVE_KEEPALIVE_MS without any. */
#define LIVE_FLUSH_MS 50
#define LIVE_KEEPALIVE_MS 15000

extern const char openapi_json[];

/* A connection waiting for a request's headers, in the header watch's list. Owned by the
 * connection (its socket context): made when it opens, freed when it closes. */
typedef struct Waiting {
        struct Waiting *prev, *next;
        int fd; /* the connection's socket, open while the connection is (CLOSED comes first) */
        uint64_t since_ms; /* CLOCK_MONOTONIC when it began waiting */
        bool listed;
} Waiting;

struct Http {
        struct MHD_Daemon *daemon;
        Pool *pool;
        Auth *auth;
        Config cfg;
        _Atomic uint32_t active; /* requests between their first call and their completion */
        /* SIGTERM came (http_drain): not ready, new stateless work and sessions refused. */
        _Atomic bool draining;
        /* The header watch: connections waiting for headers, oldest first (each joins at the
         * tail with the current time), and the thread that ends those past HEADER_TIMEOUT. */
        pthread_mutex_t watch_lock;
        pthread_cond_t watch_cond; /* CLOCK_MONOTONIC */
        Waiting *head, *tail;
        bool watch_stop, watch_started;
        pthread_t watch;
        /* Live answers whose headers went out, until on_completed: the watch thread also
         * flushes their output after LIVE_FLUSH_MS and sends their keepalives. */
        struct Req *lives;
        /* MCP tool calls in flight, for notifications/cancelled (under watch_lock). */
        struct Req *mcp_calls;
};

typedef enum ReqState { REQ_ROUTE, REQ_READING, REQ_WAITING, REQ_DONE, REQ_ANSWERED } ReqState;

/* A request's place in one of Http's lists of requests (lives, mcp_calls), under watch_lock. */
typedef struct ReqLink {
        struct Req *prev, *next;
        bool listed;
} ReqLink;

/* A live answer (stream.h) of an execute request. The pool thread adds output and marks start
 * and end; this thread turns them into events when the client can take more (the content
 * reader, live_read). Everything here is under lock. The connection is suspended while there is
 * nothing to send (before the run starts, and whenever the reader runs dry): suspended says so,
 * and whoever brings something resumes it, exactly once. */
typedef struct Live {
        StreamFraming framing; /* STREAM_NONE: not a live answer */
        pthread_mutex_t lock;
        StreamQueue q; /* output not yet made into events */
        Buf wire; /* events made and not yet all sent, from wire_off */
        size_t wire_off;
        uint64_t seq;
        size_t images_sent; /* figures streamed as shown: the end's report has them first */
        uint64_t t0_ms, done_ms; /* CLOCK_MONOTONIC at the run's start and end */
        /* A duplicate of the client's socket, the one the pool watches for a hang-up: it stays
         * valid while the run goes on even after libmicrohttpd closed its own. */
        int fd;
        bool init; /* lock, wire and fd to free */
        ReqLink link; /* in Http.lives */
        uint64_t first_ms; /* when the oldest unsent output came (0: none waiting) */
        uint64_t last_event_ms; /* when the last event was made */
        bool keepalive_due;
        bool started, done, suspended, ended, start_sent;
        /* libmicrohttpd is done with the request (on_completed): nothing may touch conn; the
         * job's done callback frees the request if it comes later. */
        bool completed;
} Live;

typedef struct Req {
        Http *http;
        struct MHD_Connection *conn;
        ReqState state;
        MetricsEndpoint endpoint;
        Buf body;
        bool too_large;
        bool ran;
        bool session; /* a session endpoint: job.session is &sreq */
        SessionReq sreq;
        char file[512]; /* a file endpoint's path under /work, checked as uploads are */
        /* Another node's session: the owner's URL for it (forward.h), and the transfer. */
        char *fwd_url;
        Buf mcp_message; /* /mcp: the JSON-RPC message, forwarded as it came to a session's owner */
        int fwd_node;
        Forward *fwd;
        Job job;
        struct timespec start;
        char method[16];
        char path[128];
        char id[REQUEST_ID_MAX + 1];
        char origin[256]; /* echoed in CORS headers only when allowed */
        unsigned code;
        size_t bytes_in, bytes_out;
        const char *outcome;
        Live live;
        /* /mcp: the request is an MCP message (mcp_post); mcp, once set, is the tool call it
         * runs, and every answer of the /api code path is turned into its result (send_body). */
        bool is_mcp;
        McpRevision mcp_rev;
        McpCall *mcp;
        int mcp_owner;
        int mcp_fd; /* a duplicate of the client's socket: shut down to cancel the call */
        char mcp_peer[64]; /* the client's address: a cancellation must come from it */
        ReqLink mcp_link; /* in Http.mcp_calls */
} Req;

/* Under watch_lock: puts req in (on) or takes it out of the list at *head, whose links are the
 * ReqLink at offset off in a Req. Returns whether that changed anything. */
static bool req_list(Req **head, Req *req, size_t off, bool on) {
#define LINK(r) ((ReqLink *)(void *)((char *)(r) + off))
        ReqLink *l = LINK(req);
        if (on == l->listed)
                return false;
        if (on) {
                l->next = *head;
                l->prev = NULL;
                if (*head)
                        LINK(*head)->prev = req;
                *head = req;
        } else {
                *(l->prev ? &LINK(l->prev)->next : head) = l->next;
                if (l->next)
                        LINK(l->next)->prev = l->prev;
                l->prev = l->next = NULL;
        }
        l->listed = on;
        return true;
#undef LINK
}

static uint64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Both under watch_lock. */
static void watch_unlist(Http *h, Waiting *w) {
        if (!w->listed)
                return;
        *(w->prev ? &w->prev->next : &h->head) = w->next;
        *(w->next ? &w->next->prev : &h->tail) = w->prev;
        w->prev = w->next = NULL;
        w->listed = false;
}

static void watch_list(Http *h, Waiting *w) {
        watch_unlist(h, w);
        w->since_ms = now_ms();
        w->prev = h->tail;
        *(h->tail ? &h->tail->next : &h->head) = w;
        h->tail = w;
        w->listed = true;
        if (w == h->head)
                pthread_cond_signal(&h->watch_cond);
}

static Waiting *waiting_of(struct MHD_Connection *conn) {
        const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        return ci ? ci->socket_context : NULL;
}

/* The connection waits for headers (waiting) or has them (!waiting). */
static void watch_set(Http *h, struct MHD_Connection *conn, bool waiting) {
        Waiting *w = waiting_of(conn);
        if (!w)
                return;
        pthread_mutex_lock(&h->watch_lock);
        if (waiting)
                watch_list(h, w);
        else
                watch_unlist(h, w);
        pthread_mutex_unlock(&h->watch_lock);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
        enum MHD_ConnectionNotificationCode code) {
        Http *h = cls;
        if (code == MHD_CONNECTION_NOTIFY_STARTED) {
                const union MHD_ConnectionInfo *ci =
                        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
                Waiting *w = ci ? calloc(1, sizeof *w) : NULL;
                if (!w)
                        return; /* out of memory: only the idle timeout applies to this one */
                w->fd = ci->connect_fd;
                *socket_context = w;
                pthread_mutex_lock(&h->watch_lock);
                watch_list(h, w);
                pthread_mutex_unlock(&h->watch_lock);
                return;
        }
        /* Closed: libmicrohttpd closes the socket only after this returns, so the watch never
         * shuts down an fd number that was reused. */
        Waiting *w = *socket_context;
        if (!w)
                return;
        pthread_mutex_lock(&h->watch_lock);
        watch_unlist(h, w);
        pthread_mutex_unlock(&h->watch_lock);
        free(w);
        *socket_context = NULL;
}

static uint64_t live_tick(Http *h, uint64_t now);

/* The header watch thread: shuts down (both ways) the socket of each connection that has waited
 * HEADER_TIMEOUT for its headers; libmicrohttpd sees the end of the stream and closes it. It
 * also keeps the time of live answers (live_tick). */
static void *watch_main(void *arg) {
        Http *h = arg;
        uint64_t limit_ms = (uint64_t)h->cfg.header_timeout_sec * 1000;
        pthread_mutex_lock(&h->watch_lock);
        while (!h->watch_stop) {
                uint64_t now = now_ms();
                while (h->head && now - h->head->since_ms >= limit_ms) {
                        Waiting *w = h->head;
                        watch_unlist(h, w);
                        shutdown(w->fd, SHUT_RDWR);
                }
                struct timespec until;
                clock_gettime(CLOCK_MONOTONIC, &until);
                uint64_t wait_ms = h->head ? h->head->since_ms + limit_ms - now : limit_ms;
                wait_ms = MIN(wait_ms, live_tick(h, now));
                until.tv_sec += (time_t)(wait_ms / 1000);
                until.tv_nsec += (long)(wait_ms % 1000) * 1000000;
                if (until.tv_nsec >= 1000000000) {
                        until.tv_sec++;
                        until.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&h->watch_cond, &h->watch_lock, &until);
        }
        pthread_mutex_unlock(&h->watch_lock);
        return NULL;
}

static const char *header(struct MHD_Connection *conn, const char *name) {
        return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* A client's request id is kept when it is a plain token; otherwise we make one. */
static void request_id(struct MHD_Connection *conn, char *buf) {
        const char *given = header(conn, "X-Request-Id");
        size_t n = given ? strlen(given) : 0;
        bool ok = n > 0 && n <= REQUEST_ID_MAX;
        for (size_t i = 0; ok && i < n; i++) {
                char ch = given[i];
                ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                     ch == '-' || ch == '_' || ch == '.' || ch == ':';
        }
        if (ok) {
                memcpy(buf, given, n + 1);
                return;
        }
        unsigned char r[12];
        if (getrandom(r, sizeof r, GRND_NONBLOCK) != sizeof r)
                memset(r, 0, sizeof r);
        for (size_t i = 0; i < sizeof r; i++)
                snprintf(buf + 2 * i, 3, "%02x", r[i]);
}

/* True when list (origins separated by commas or spaces) names origin exactly. */
static bool origin_listed(const char *list, const char *origin) {
        size_t n = strlen(origin);
        for (const char *p = list; *p;) {
                while (*p == ' ' || *p == ',')
                        p++;
                size_t m = strcspn(p, ", ");
                if (m && m == n && strncmp(p, origin, n) == 0)
                        return true;
                p += m;
        }
        return false;
}

/* The Origin, when CORS_ORIGINS lists it exactly; NULL otherwise (no CORS headers at all). */
static const char *allowed_origin(Http *h, const char *origin) {
        return origin && origin_listed(h->cfg.cors_origins, origin) ? origin : NULL;
}

static enum MHD_Result queue(Req *req, unsigned code, struct MHD_Response *resp) {
        MHD_add_response_header(resp, "X-Request-Id", req->id);
        if (req->origin[0]) {
                MHD_add_response_header(resp, "Access-Control-Allow-Origin", req->origin);
                MHD_add_response_header(resp, "Access-Control-Expose-Headers", "X-Request-Id, Retry-After");
                MHD_add_response_header(resp, "Vary", "Origin");
        }
        req->code = code;
        req->state = REQ_ANSWERED;
        enum MHD_Result r = MHD_queue_response(req->conn, code, resp);
        MHD_destroy_response(resp);
        return r;
}

/* Sends body (malloc'ed, taken; NULL means out-of-memory: a fixed 503). */
static enum MHD_Result send_body_raw(Req *req, unsigned code, char *body, size_t len, const char *ctype,
        const char *hname, const char *hvalue) {
        static const char fallback[] = "{\"status\":\"Error\",\"output\":\"out of memory\"}";
        struct MHD_Response *resp;
        if (body)
                resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
        else {
                code = MHD_HTTP_SERVICE_UNAVAILABLE;
                ctype = "application/json; charset=utf-8";
                len = strlen(fallback);
                resp = MHD_create_response_from_buffer(len, (void *)fallback, MHD_RESPMEM_PERSISTENT);
        }
        if (!resp) {
                free(body);
                return MHD_NO;
        }
        req->bytes_out = len;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
        if (hname)
                MHD_add_response_header(resp, hname, hvalue);
        if (code == MHD_HTTP_SERVICE_UNAVAILABLE &&
                !(hname && strcmp(hname, MHD_HTTP_HEADER_RETRY_AFTER) == 0))
                MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        return queue(req, code, resp);
}

/* The answer of an MCP tool call: what the /api code path answered (status, body; for read_file
 * the file's bytes), as the JSON-RPC response, always 200. */
static enum MHD_Result mcp_answer(
        Req *req, unsigned code, const char *body, size_t len, const char *file, size_t file_len, bool cut) {
        size_t n = 0;
        char *res = mcp_call_result(req->mcp, code, body, len, file, file_len, cut, &n);
        req->is_mcp = false; /* answered: nothing more goes through mcp_answer */
        return send_body_raw(req, 200, res, n, "application/json", NULL, NULL);
}

/* Sends body (malloc'ed, taken; NULL means out-of-memory: a fixed 503); an MCP tool call's is
 * turned into its result first. */
static enum MHD_Result send_body(Req *req, unsigned code, char *body, size_t len, const char *ctype,
        const char *hname, const char *hvalue) {
        if (req->is_mcp && req->mcp) {
                enum MHD_Result r = mcp_answer(req, code, body, body ? len : 0, NULL, 0, false);
                free(body);
                return r;
        }
        return send_body_raw(req, code, body, len, ctype, hname, hvalue);
}

static enum MHD_Result send_json(Req *req, unsigned code, char *body, size_t len) {
        return send_body(req, code, body, len, "application/json; charset=utf-8", NULL, NULL);
}

static enum MHD_Result send_error(
        Req *req, unsigned code, const char *msg, const char *hname, const char *hvalue) {
        size_t len = 0;
        char *body = api_error_body(msg, &len);
        return send_body(req, code, body, len, "application/json; charset=utf-8", hname, hvalue);
}

/* application/json, with optional parameters ("; charset=utf-8"), case-insensitive. */
static bool is_json(const char *ct) {
        if (!ct)
                return false;
        while (*ct == ' ')
                ct++;
        size_t n = strlen("application/json");
        if (strncasecmp(ct, "application/json", n) != 0)
                return false;
        ct += n;
        while (*ct == ' ')
                ct++;
        return *ct == 0 || *ct == ';';
}

/* True when the request's Content-Length names more than limit bytes: refused before its body
 * is read. One that does not parse is left to the reader's cap. */
static bool declared_over(struct MHD_Connection *conn, uint64_t limit) {
        const char *cl = header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (!cl)
                return false;
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        return errno == 0 && *end == 0 && n > limit;
}

static void req_free(Req *req);

/* Under live.lock: resumes the connection if it waits for the pool and still exists. */
static void live_wake(Req *req) {
        if (req->live.suspended && !req->live.completed) {
                req->live.suspended = false;
                MHD_resume_connection(req->conn);
        }
}

static void job_done(Job *job) {
        Req *req = job->userdata;
        if (req->live.framing == STREAM_NONE) {
                req->state = REQ_DONE;
                MHD_resume_connection(req->conn);
                return;
        }
        pthread_mutex_lock(&req->live.lock);
        req->live.done = true;
        req->live.done_ms = now_ms();
        if (!req->live.started)
                req->state = REQ_DONE; /* refused or ended before it ran: the buffered answer */
        bool orphan = req->live.completed;
        live_wake(req);
        pthread_mutex_unlock(&req->live.lock);
        if (orphan)
                req_free(req);
}

/* Pool thread: the run begins; the answer's headers can go out. */
static void live_start(Job *job) {
        Req *req = job->userdata;
        pthread_mutex_lock(&req->live.lock);
        req->live.started = true;
        req->live.t0_ms = now_ms();
        live_wake(req);
        pthread_mutex_unlock(&req->live.lock);
}

/* Pool thread: output the pool accepted (under MAX_OUTPUT_BYTES). Queued raw; never blocks on
 * the client. Out of memory here loses only deltas: the end event still has all of it. */
static void live_output(Job *job, int stream, const char *data, size_t n) {
        Req *req = job->userdata;
        uint64_t now = now_ms();
        pthread_mutex_lock(&req->live.lock);
        if (!req->live.completed)
                (void)stream_queue_add(&req->live.q, stream, data, n, now - req->live.t0_ms);
        if (!req->live.first_ms)
                req->live.first_ms = now;
        /* A full event's worth goes at once; less waits for the watch thread (LIVE_FLUSH_MS), so
         * that a program printing a line at a time does not make an event of each. */
        if (req->live.q.bytes >= STREAM_TEXT_MAX)
                live_wake(req);
        pthread_mutex_unlock(&req->live.lock);
}

/* Pool thread: a figure the program showed, after the output written before it. An event of
 * its own, so it goes at once. */
static void live_image(Job *job, char format, uint32_t width, uint32_t height, const char *data, size_t n) {
        Req *req = job->userdata;
        uint64_t now = now_ms();
        pthread_mutex_lock(&req->live.lock);
        if (!req->live.completed)
                (void)stream_queue_add_image(
                        &req->live.q, format, width, height, data, n, now - req->live.t0_ms);
        if (!req->live.first_ms)
                req->live.first_ms = now;
        live_wake(req);
        pthread_mutex_unlock(&req->live.lock);
}

/* Makes req (an execute, stateless or a cell) a live answer when its Accept asks for one:
 * sets the job's hooks and its watched fd. Returns the fd the pool is to watch. */
static int live_prepare(Req *req, int client_fd) {
        const char *accept = header(req->conn, MHD_HTTP_HEADER_ACCEPT);
        if (req->mcp)
                /* An MCP call streams only when it asked for progress and takes SSE. */
                req->live.framing =
                        req->mcp->progress_token && accept && strcasestr(accept, "text/event-stream")
                                ? STREAM_SSE
                                : STREAM_NONE;
        else
                req->live.framing = stream_negotiate(accept);
        if (req->live.framing == STREAM_NONE)
                return client_fd;
        req->live.fd = client_fd >= 0 ? fcntl(client_fd, F_DUPFD_CLOEXEC, 3) : -1;
        if (req->live.fd < 0) {
                req->live.framing = STREAM_NONE; /* cannot watch it: answer buffered */
                return client_fd;
        }
        pthread_mutex_init(&req->live.lock, NULL);
        req->live.init = true;
        buf_init(&req->live.wire, SIZE_MAX / 2);
        req->live.suspended = true; /* the caller suspends before submitting */
        req->job.on_output = live_output;
        req->job.on_start = live_start;
        /* Figures as they are shown need the runner to send them: without the flag (no memory
         * for it) they still come, in the end's report, streamed just before it. An MCP call's
         * progress is text only: its figures are image blocks of the result. */
        if (!req->mcp && api_request_live(&req->job.request, &req->job.request_len) == 0)
                req->job.on_image = live_image;
        return req->live.fd;
}

static enum MHD_Result send_health(Req *req) {
        Http *h = req->http;
        PoolStatus st;
        pool_status(h->pool, &st);
        const CgroupRoot *cg = pool_cgroups(h->pool);
        bool ok = st.zygote_up && !st.fatal[0];
        /* ?ready=1 is the balancer's question (Kubernetes' readinessProbe): a draining server is
         * alive but takes no new work. Without it, the answer stays about liveness. */
        bool draining = atomic_load(&h->draining);
        bool ask_ready = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, "ready") != NULL;
        json_t *o = json_pack("{ss s{sIsIsIsI} ss s{sIsIsIsIsIsI} s{ss sb sb sb sb sb sb sb sb}}", "status",
                ok ? "ok" : "unavailable", "pool", "ready", (json_int_t)st.ready, "busy",
                (json_int_t)st.busy, "queued", (json_int_t)st.queued, "starting", (json_int_t)st.spawning,
                "zygote", st.zygote_up ? "up" : "down", "limits", "timeout_sec",
                (json_int_t)h->cfg.timeout_sec, "memory_mb", (json_int_t)(h->cfg.memory_limit_bytes >> 20),
                "max_processes", (json_int_t)h->cfg.max_processes, "tmp_size_mb",
                (json_int_t)(h->cfg.tmp_size_bytes >> 20), "max_output_bytes",
                (json_int_t)h->cfg.max_output_bytes, "max_concurrency", (json_int_t)h->cfg.max_concurrency,
                "isolation", "memory_limit",
                cg->mode == CGROUP_V2   ? "cgroup v2"
                : cg->mode == CGROUP_V1 ? "cgroup v1"
                                        : "watchdog + rlimit",
                "pids_cgroup", cg->pids, "user_namespace", 1, "pid_namespace", 1, "mount_namespace", 1,
                "network_namespace", 1, "ipc_namespace", 1, "uts_namespace", 1, "seccomp", 1);
        json_t *lim = o ? json_object_get(o, "limits") : NULL,
               *iso = o ? json_object_get(o, "isolation") : NULL;
        if (lim && iso) {
                json_object_set_new(
                        lim, "cpu_limit_percent", json_integer((json_int_t)h->cfg.cpu_limit_percent));
                json_object_set_new(lim, "memory_bound_mb",
                        json_integer((json_int_t)(cgroup_memory_bound(cg, &h->cfg) >> 20)));
                json_object_set_new(iso, "cpu_limit", json_string(cgroup_cpu_name(cg)));
        }
        if (o)
                json_object_set_new(o, "sessions",
                        json_pack("{sIsIsI}", "active", (json_int_t)st.sessions_active, "busy",
                                (json_int_t)st.sessions_busy, "max", (json_int_t)st.sessions_max));
        if (o && st.fatal[0])
                json_object_set_new(o, "error", json_string(st.fatal));
        if (o) {
                json_object_set_new(o, "ready", json_boolean(ok && !draining));
                json_object_set_new(o, "draining", json_boolean(draining));
                json_object_set_new(o, "node", json_integer((json_int_t)h->cfg.node_id));
        }
        char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        return send_json(req, ok && !(ask_ready && draining) ? 200 : 503, body, body ? strlen(body) : 0);
}

static enum MHD_Result send_metrics(Req *req) {
        PoolStatus st;
        size_t len = 0;
        pool_status(req->http->pool, &st);
        char *text = metrics_render(&st, &len);
        return send_body(req, 200, text, len, "text/plain; version=0.0.4; charset=utf-8", NULL, NULL);
}

static enum MHD_Result send_openapi(Req *req) {
        char *doc = strdup(openapi_json);
        return send_json(req, 200, doc, doc ? strlen(doc) : 0);
}

/* CORS preflight: only for allowed origins; anything else is a plain 405. PUT and DELETE are the
 * session files API's and DELETE a session's. */
static enum MHD_Result send_preflight(Req *req) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", "POST, GET, PUT, DELETE, OPTIONS");
        MHD_add_response_header(
                resp, "Access-Control-Allow-Headers", "Content-Type, Authorization, X-Request-Id");
        MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
        return queue(req, MHD_HTTP_NO_CONTENT, resp);
}

/* The playground page's files (src/playground.c), and GET / redirecting to the page. Not behind
 * the key: the page holds nothing secret, and asks for a key itself when the API wants one. */
static enum MHD_Result send_playground(Req *req, const char *url, const char *method) {
        PlaygroundFile f;
        req->endpoint = EP_OTHER;
        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
                return send_error(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use GET",
                        MHD_HTTP_HEADER_ALLOW, MHD_HTTP_METHOD_GET);
        bool root = playground_find(url, &f) < 0;
        struct MHD_Response *resp =
                root ? MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT)
                     : MHD_create_response_from_buffer(f.len, (void *)f.data, MHD_RESPMEM_PERSISTENT);
        if (!resp)
                return MHD_NO;
        if (root) {
                MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, "/playground");
                return queue(req, MHD_HTTP_FOUND, resp);
        }
        req->bytes_out = f.len;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, f.content_type);
        for (size_t i = 0; playground_headers[i][0]; i++)
                MHD_add_response_header(resp, playground_headers[i][0], playground_headers[i][1]);
        return queue(req, MHD_HTTP_OK, resp);
}

typedef struct UrlRoute {
        const char *path;
        const char *method;
        MetricsEndpoint endpoint;
        bool api; /* under /api/: always behind the key */
} UrlRoute;

static const UrlRoute routes[] = {
        {"/api/execute", MHD_HTTP_METHOD_POST, EP_EXECUTE, true},
        {"/health", MHD_HTTP_METHOD_GET, EP_HEALTH, false},
        {"/metrics", MHD_HTTP_METHOD_GET, EP_METRICS, false},
        {"/openapi.json", MHD_HTTP_METHOD_GET, EP_OPENAPI, false},
};

static enum MHD_Result route_request(Http *h, Req *req, const char *url, const char *method);
static enum MHD_Result on_body_complete(Http *h, Req *req);

static enum MHD_Result on_first_call(
        Http *h, struct MHD_Connection *conn, const char *url, const char *method, void **con_cls) {
        Req *req = calloc(1, sizeof *req);
        if (!req)
                return MHD_NO;
        atomic_fetch_add(&h->active, 1);
        /* The headers are in: from here on the connection is idle only when the client is slow
         * with its body; it gets the longer timeout (on_completed restores the short one). */
        MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_SEC);
        watch_set(h, conn, false);
        req->http = h;
        req->conn = conn;
        req->outcome = "-";
        clock_gettime(CLOCK_MONOTONIC, &req->start);
        snprintf(req->method, sizeof req->method, "%s", method);
        snprintf(req->path, sizeof req->path, "%s", url);
        request_id(conn, req->id);
        const char *origin = allowed_origin(h, header(conn, "Origin"));
        if (origin)
                snprintf(req->origin, sizeof req->origin, "%s", origin);
        *con_cls = req;

        /* An answer queued on this first call makes libmicrohttpd close the connection (it
         * cannot know what body may follow). A request without a body is answered on the next
         * call instead, which keeps the connection alive for monitors and browsers. */
        const char *cl = header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
        bool bodyless = !header(conn, MHD_HTTP_HEADER_TRANSFER_ENCODING) && (!cl || strcmp(cl, "0") == 0);
        if (bodyless) {
                req->state = REQ_ROUTE;
                return MHD_YES;
        }
        return route_request(h, req, url, method);
}

/* The answer to an execute (stateless or a cell) that ran: the buffered body, and the end
 * event of a live one, made by the same code. */
static HttpStatus exec_answer(Http *h, Req *req, char **body, size_t *len) {
        HttpStatus code = api_build_answer(&req->job.result, &h->cfg, body, len);
        req->outcome = metrics_outcome(&req->job.result);
        if (!req->session)
                return code;
        metrics_session_cell(&req->job.result);
        if (*body && code == HTTP_OK && req->sreq.extra &&
                api_merge_object(body, len, req->sreq.extra) < 0) {
                free(*body);
                *body = NULL;
        }
        return code;
}

/* Under live.lock, the run done and its output all sent: the images of its report, then the
 * end event, the buffered answer itself. A failure of ours (a 5xx answer) is an end with
 * status "Error" and error.type "Internal": the 200 is already sent. An answer that has its
 * own error object (a session's, such as SessionGone) keeps it; every non-200 adds
 * http_status, the status the buffered answer would have had. */
static void live_end(Req *req) {
        Live *l = &req->live;
        char *body = NULL;
        size_t len = 0;
        HttpStatus code;
        if (req->session && req->sreq.status != 0) {
                /* The session ended under the cell (deleted, expired, its memory): the error
                 * the pool answered, as it is, with its status. */
                code = (HttpStatus)req->sreq.status;
                body = TAKE_PTR(req->sreq.body);
                len = body ? strlen(body) : 0;
        } else
                code = exec_answer(req->http, req, &body, &len);
        if (req->mcp) {
                /* MCP: the JSON-RPC response is the stream's last event. */
                size_t n = 0;
                _cleanup_free_ char *res = mcp_call_result(req->mcp, code, body, len, NULL, 0, false, &n);
                free(body);
                if (res)
                        (void)stream_sse(&l->wire, "message", res, n);
                l->ended = true;
                return;
        }
        json_t *ans = body ? json_loadb(body, len, 0, NULL) : NULL;
        free(body);
        if (!ans)
                ans = json_pack("{ssss}", "status", "Error", "output", "internal error: out of memory");
        if (ans && code != HTTP_OK && json_is_object(json_object_get(ans, "error")))
                json_object_set_new(ans, "http_status", json_integer((json_int_t)code));
        else if (ans && code != HTTP_OK) {
                json_t *out = json_object_get(ans, "output");
                json_object_set_new(ans, "error",
                        json_pack("{sssOsn}", "type", "Internal", "message",
                                json_is_string(out) ? out : json_string(""), "traceback"));
                json_object_set_new(ans, "http_status", json_integer((json_int_t)code));
        }
        uint64_t t = l->done_ms - l->t0_ms;
        /* The figures streamed as they were shown are the report's first ones; any other (the
         * runner could not send it live) goes now, in order, just before the end. */
        json_t *images = json_object_get(ans, "images"), *img;
        size_t i;
        json_array_foreach(images, i, img) {
                if (i >= l->images_sent && json_is_object(img))
                        (void)stream_event(&l->wire, l->framing, "image", l->seq++, t, img);
        }
        (void)stream_event(&l->wire, l->framing, "end", l->seq++, t, ans);
        json_decref(ans);
        l->ended = true;
}

/* Under live.lock: makes the next events, at least one when there is anything to say. */
static void live_fill(Req *req) {
        Live *l = &req->live;
        if (!l->start_sent && req->mcp)
                l->start_sent = true; /* MCP: the output is progress, the end the response */
        if (!l->start_sent) {
                json_t *ev = json_pack("{ss so so}", "request_id", req->id, "session_id",
                        req->session ? json_string(req->sreq.id) : json_null(), "execution_count",
                        req->session ? json_integer((json_int_t)req->sreq.execution_count) : json_null());
                (void)stream_event(&l->wire, l->framing, "start", l->seq++, UINT64_MAX, ev);
                json_decref(ev);
                l->start_sent = true;
        }
        char text[STREAM_TEXT_MAX];
        int stream;
        uint64_t t;
        size_t n;
        while (l->wire.len < STREAM_TEXT_MAX) {
                StreamSeg *img = stream_queue_take_image(&l->q);
                if (img) {
                        json_t *ev = stream_image_event(img);
                        if (ev && stream_event(&l->wire, l->framing, "image", l->seq++, img->t_ms, ev) == 0)
                                l->images_sent++;
                        json_decref(ev);
                        stream_seg_free(img);
                        continue;
                }
                if ((n = stream_queue_take(&l->q, l->done, text, &stream, &t)) == 0)
                        break;
                size_t m;
                _cleanup_free_ char *clean = utf8_sanitize(text, n, &m);
                if (req->mcp && clean) {
                        size_t en = 0;
                        _cleanup_free_ char *ev = mcp_progress_event(req->mcp, clean, m, &en);
                        if (ev)
                                (void)buf_append(&l->wire, ev, en);
                        continue;
                }
                json_t *ev = clean ? json_pack("{ss%}", "text", clean, m) : NULL;
                if (ev)
                        (void)stream_event(
                                &l->wire, l->framing, stream == 2 ? "stderr" : "stdout", l->seq++, t, ev);
                json_decref(ev);
        }
        if (l->q.bytes == 0)
                l->first_ms = 0;
        if (l->wire.len == 0 && l->done && !l->ended && l->q.bytes == 0)
                live_end(req);
        uint64_t now = now_ms();
        if (l->wire.len == 0 && l->keepalive_due && !l->ended && req->mcp)
                (void)buf_append(&l->wire, ": keepalive\n\n", strlen(": keepalive\n\n"));
        else if (l->wire.len == 0 && l->keepalive_due && !l->ended) {
                /* SSE: also a comment line, the form proxies and EventSource know. */
                if (l->framing == STREAM_SSE)
                        (void)buf_append(&l->wire, ": keepalive\n", strlen(": keepalive\n"));
                (void)stream_event(&l->wire, l->framing, "keepalive", l->seq++, now - l->t0_ms, NULL);
        }
        l->keepalive_due = false;
        if (l->wire.len > 0)
                l->last_event_ms = now;
}

/* Watch thread, under watch_lock: wakes the live answers whose output has waited
 * LIVE_FLUSH_MS, or that said nothing for LIVE_KEEPALIVE_MS (a keepalive: also how a client
 * that vanished without a word is found, by the write that fails). Returns how long until the
 * next tick is needed. */
static uint64_t live_tick(Http *h, uint64_t now) {
        uint64_t next = UINT64_MAX;
        for (Req *req = h->lives; req; req = req->live.link.next) {
                Live *l = &req->live;
                pthread_mutex_lock(&l->lock);
                /* The other threads stamp with their own clock reads, which may be later than
                 * now: every difference is taken the safe way round. */
                uint64_t flush_at = l->first_ms + LIVE_FLUSH_MS,
                         keepalive_at = l->last_event_ms + LIVE_KEEPALIVE_MS;
                if (l->first_ms && now >= flush_at)
                        live_wake(req);
                else if (l->first_ms)
                        next = MIN(next, flush_at - now);
                if (!l->ended && now >= keepalive_at) {
                        l->keepalive_due = true;
                        l->last_event_ms = now; /* once per period, sent or not */
                        live_wake(req);
                } else if (!l->ended)
                        next = MIN(next, keepalive_at - now);
                pthread_mutex_unlock(&l->lock);
        }
        /* Output that comes later is noticed at the next tick: at most LIVE_FLUSH_MS late. */
        return h->lives ? MIN(next, (uint64_t)LIVE_FLUSH_MS) : next;
}

static void live_list(Http *h, Req *req, bool on) {
        pthread_mutex_lock(&h->watch_lock);
        if (req_list(&h->lives, req, offsetof(Req, live.link), on) && on)
                pthread_cond_signal(&h->watch_cond);
        pthread_mutex_unlock(&h->watch_lock);
}

/* libmicrohttpd's content reader: what is ready, the end, or (nothing yet) the connection
 * suspended until the pool brings more: returning 0 without suspending would spin the
 * daemon's thread. */
static ssize_t live_read(void *cls, _unused_ uint64_t pos, char *buf, size_t max) {
        Req *req = cls;
        Live *l = &req->live;
        ssize_t n;
        pthread_mutex_lock(&l->lock);
        if (l->wire_off == l->wire.len) {
                l->wire.len = 0;
                l->wire_off = 0;
                live_fill(req);
        }
        if (l->wire_off < l->wire.len) {
                size_t k = MIN(max, l->wire.len - l->wire_off);
                memcpy(buf, l->wire.data + l->wire_off, k);
                l->wire_off += k;
                req->bytes_out += k;
                n = (ssize_t)k;
        } else if (l->ended)
                n = MHD_CONTENT_READER_END_OF_STREAM;
        else {
                l->suspended = true;
                MHD_suspend_connection(req->conn);
                n = 0;
        }
        pthread_mutex_unlock(&l->lock);
        return n;
}

/* The run of a live answer began: 200 and a chunked body of events. */
static enum MHD_Result send_live(Req *req) {
        pthread_mutex_lock(&req->live.lock);
        bool started = req->live.started;
        pthread_mutex_unlock(&req->live.lock);
        if (!started)
                return MHD_YES;
        struct MHD_Response *resp =
                MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, live_read, req, NULL);
        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, stream_content_type(req->live.framing));
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
        req->outcome = "client-gone"; /* until the end is built */
        req->live.last_event_ms = now_ms();
        live_list(req->http, req, true);
        return queue(req, 200, resp);
}

/* ---- sessions ---- */

static enum MHD_Result send_session_error(
        Req *req, unsigned code, const char *type, const char *reason, const char *msg) {
        size_t len = 0;
        char *body = api_session_error(type, reason, msg, &len);
        return send_body(req, code, body, len, "application/json; charset=utf-8",
                code == 429 || code == 409 || code == 503 ? MHD_HTTP_HEADER_RETRY_AFTER : NULL, "1");
}

/* ---- owner forwarding (forward.h) ---- */

/* Both run with the Forward's lock held: they only suspend or resume. */
static void fwd_wake(void *userdata) {
        Req *req = userdata;
        MHD_resume_connection(req->conn);
}

static void fwd_suspend(void *userdata) {
        Req *req = userdata;
        MHD_suspend_connection(req->conn);
}

/* The relayed body: what the owner sent so far, or (nothing yet) the connection suspended until
 * the transfer brings more. */
static ssize_t fwd_read(void *cls, _unused_ uint64_t pos, char *buf, size_t max) {
        Req *req = cls;
        long n = forward_read(req->fwd, buf, max, fwd_suspend, req);
        if (n > 0) {
                req->bytes_out += (size_t)n;
                return n;
        }
        if (n == 0)
                return 0;
        if (n == -EPIPE) {
                req->outcome = "forwarded";
                return MHD_CONTENT_READER_END_OF_STREAM;
        }
        req->outcome = "forward-broken";
        return MHD_CONTENT_READER_END_WITH_ERROR;
}

/* "Name: value", malloc'ed, or NULL (out of memory). */
static char *header_line(const char *name, const char *value) {
        char *line = NULL;
        if (asprintf(&line, "%s: %s", name, value) < 0)
                return NULL; /* asprintf leaves line undefined then */
        return line;
}

/* A header line of the client's request, or NULL when absent (or out of memory: the owner then
 * answers as if it was not sent). */
static char *pass_header(struct MHD_Connection *conn, const char *name) {
        const char *v = header(conn, name);
        return v ? header_line(name, v) : NULL;
}

/* Sends the session request to its owner (req->fwd_url); its answer is relayed by send_forward.
 * The owner checks the API key, limits and everything else again: this server passes on the
 * client's Authorization, Content-Type, Accept (a live cell stays live) and request id, and adds
 * the peer headers. */
static enum MHD_Result forward_begin(Http *h, Req *req) {
        struct MHD_Connection *conn = req->conn;
        char *lines[10] = {0};
        size_t k = 0;
        static const char *const passed[] = {MHD_HTTP_HEADER_AUTHORIZATION, MHD_HTTP_HEADER_CONTENT_TYPE,
                MHD_HTTP_HEADER_ACCEPT, "MCP-Protocol-Version"};
        for (size_t i = 0; i < ELEMENTSOF(passed); i++)
                if ((lines[k] = pass_header(conn, passed[i])))
                        k++;
        char hop[16];
        snprintf(hop, sizeof hop, "%u", h->cfg.node_id);
        bool ok = (lines[k++] = header_line("X-Request-Id", req->id)) &&
                  (lines[k++] = header_line(FORWARD_TOKEN_HEADER, h->cfg.peer_token)) &&
                  (lines[k++] = header_line(FORWARD_HOP_HEADER, hop)) &&
                  /* libcurl's own defaults: no 100-continue round trip, no form type. */
                  (lines[k++] = strdup("Expect:")) &&
                  (header(conn, MHD_HTTP_HEADER_CONTENT_TYPE) || (lines[k++] = strdup("Content-Type:")));
        int r = -ENOMEM;
        if (ok) {
                const union MHD_ConnectionInfo *ci =
                        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
                ForwardRequest fr = {
                        .url = req->fwd_url,
                        .method = req->method,
                        .headers = (const char *const *)lines,
                        .body = req->body.data,
                        .body_len = req->body.len,
                        /* The longest a cell may take, and its grace, with room for the queue. */
                        .timeout_ms = (h->cfg.timeout_sec + h->cfg.interrupt_grace_sec + 60) * 1000,
                        .connect_timeout_ms = 3000,
                        .client_fd = ci ? ci->connect_fd : -1,
                };
                /* Suspend first: the transfer may wake the connection before start returns. */
                req->state = REQ_WAITING;
                MHD_suspend_connection(conn);
                r = forward_start(&fr, h->cfg.max_forwards, fwd_wake, req, &req->fwd);
                if (r < 0) {
                        req->state = REQ_READING;
                        MHD_resume_connection(conn);
                }
        }
        for (size_t i = 0; i < ELEMENTSOF(lines); i++)
                free(lines[i]);
        buf_free(&req->body);
        if (r == -EBUSY)
                return send_session_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "ServiceUnavailable", NULL,
                        "too many requests are being forwarded to other nodes (MAX_FORWARDS); try again "
                        "later");
        if (r < 0)
                return send_session_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "ServiceUnavailable", NULL,
                        "cannot forward the request to the session's node: out of memory or threads");
        return MHD_YES;
}

/* The transfer has the owner's answer's headers (or failed): relay it. */
static enum MHD_Result send_forward(Req *req) {
        long status = 0;
        ForwardHeaders fh;
        ForwardState st = forward_state(req->fwd, &status, &fh);
        if (st == FORWARD_CONNECTING)
                return MHD_YES; /* a spurious wake-up; the transfer's wake comes later */
        if (st == FORWARD_FAILED && status == 0) {
                char msg[200];
                snprintf(msg, sizeof msg,
                        "session %.64s lives on node %d, which cannot be reached now (it may be "
                        "restarting); try again later",
                        req->sreq.id, req->fwd_node);
                req->outcome = "owner-unavailable";
                return send_session_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "OwnerUnavailable", NULL, msg);
        }
        struct MHD_Response *resp =
                status == 204 || status == 304
                        ? MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT)
                        : MHD_create_response_from_callback(
                                  MHD_SIZE_UNKNOWN, 16 * 1024, fwd_read, req, NULL);
        if (!resp)
                return MHD_NO;
        const struct {
                const char *name, *value;
        } relay[] = {
                {MHD_HTTP_HEADER_CONTENT_TYPE, fh.content_type},
                {MHD_HTTP_HEADER_RETRY_AFTER, fh.retry_after},
                {MHD_HTTP_HEADER_LOCATION, fh.location},
                {MHD_HTTP_HEADER_CONTENT_DISPOSITION, fh.content_disposition},
                {MHD_HTTP_HEADER_CACHE_CONTROL, fh.cache_control},
                {MHD_HTTP_HEADER_ALLOW, fh.allow},
                {MHD_HTTP_HEADER_WWW_AUTHENTICATE, fh.www_authenticate},
        };
        for (size_t i = 0; i < ELEMENTSOF(relay); i++)
                if (relay[i].value[0])
                        MHD_add_response_header(resp, relay[i].name, relay[i].value);
        /* A relayed live answer must not be held back by a proxy in front of this server. */
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
        req->outcome = "client-gone"; /* until the relay ends */
        return queue(req, status >= 100 && status <= 599 ? (unsigned)status : 502, resp);
}

/* Whether a session request is served here, refused (answered), or forwarded to its owner (the
 * URL in req->fwd_url; the body is read first). Returns true when it answered. */
static bool session_route_owner(Http *h, Req *req, const char *url, enum MHD_Result *ret) {
        struct MHD_Connection *conn = req->conn;
        ForwardInbound in = forward_inbound(
                header(conn, FORWARD_TOKEN_HEADER), header(conn, FORWARD_HOP_HEADER), h->cfg.peer_token);
        if (in == FORWARD_BAD_TOKEN) {
                *ret = send_session_error(req, MHD_HTTP_FORBIDDEN, "Forbidden", NULL,
                        "a forwarded request (" FORWARD_TOKEN_HEADER ", " FORWARD_HOP_HEADER
                        ") without this cluster's PEER_TOKEN");
                return true;
        }
        if (req->sreq.op == SOP_LIST || req->sreq.op == SOP_CREATE)
                return false; /* served by whichever node gets them */
        int owner = forward_owner(req->sreq.id, strlen(req->sreq.id));
        if (owner < 0 || (uint32_t)owner == h->cfg.node_id)
                return false;
        if (in == FORWARD_PEER) {
                /* Never forward twice: a PEER_URL that maps a node to the wrong instance would
                 * otherwise bounce the request until something ran out. */
                char msg[300];
                snprintf(msg, sizeof msg,
                        "forwarding loop: session %.64s belongs to node %d, but node %.8s forwarded it to "
                        "this server (node %u): PEER_URL maps node %d to the wrong instance",
                        req->sreq.id, owner, header(conn, FORWARD_HOP_HEADER) ?: "?", h->cfg.node_id, owner);
                *ret = send_session_error(req, 508, "ForwardingLoop", NULL, msg);
                return true;
        }
        if (!h->cfg.peer_url[0])
                return false; /* no peers: another node's id is unknown here (404) */
        char buf[FORWARD_URL_MAX];
        if (forward_url(h->cfg.peer_url, (uint32_t)owner, url, buf, sizeof buf) < 0 ||
                !(req->fwd_url = strdup(buf))) {
                *ret = send_session_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "ServiceUnavailable", NULL,
                        "cannot make the URL of the session's node (PEER_URL)");
                return true;
        }
        req->fwd_node = owner;
        return false;
}

/* Submits the session request in req->sreq (the cell, for an execute, in req->job.request). */
static enum MHD_Result session_submit(Http *h, Req *req) {
        const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        char *request = req->job.request;
        size_t request_len = req->job.request_len;
        uint32_t timeout_ms = req->job.timeout_ms;
        bool want_files = req->job.want_files;
        req->job = (Job){
                .request = request,
                .request_len = request_len,
                /* Only a cell is interrupted when its client goes away. */
                .client_fd = ci && req->sreq.op == SOP_EXECUTE ? ci->connect_fd : -1,
                .timeout_ms = timeout_ms,
                .want_files = want_files,
                .done = job_done,
                .userdata = req,
                .session = &req->sreq,
        };
        if (req->sreq.op == SOP_EXECUTE)
                req->job.client_fd = live_prepare(req, req->job.client_fd);
        req->state = REQ_WAITING;
        MHD_suspend_connection(req->conn);
        int r = pool_session_submit(h->pool, &req->job);
        if (r < 0) {
                req->state = REQ_READING;
                req->live.framing = STREAM_NONE;
                MHD_resume_connection(req->conn);
                return send_session_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "ServiceUnavailable", NULL,
                        "the server is shutting down");
        }
        return MHD_YES;
}

/* 413 for a session request whose body is over its limit: a file upload's (MAX_FILES_BYTES) or
 * any other's (MAX_REQUEST_BYTES). The same answer whether Content-Length said so or the body
 * outgrew the cap while being read. */
static enum MHD_Result send_session_too_large(Http *h, Req *req) {
        bool file = req->sreq.op == SOP_FILE_PUT;
        char why[160];
        snprintf(why, sizeof why, "%s too large: the limit is %s (%llu bytes)",
                file ? "file" : "request body", file ? "MAX_FILES_BYTES" : "MAX_REQUEST_BYTES",
                (unsigned long long)(file ? h->cfg.max_files_bytes : h->cfg.max_request_bytes));
        return send_session_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "TooLarge", NULL, why);
}

/* The body of a session request is in: decode it, then submit. */
static enum MHD_Result session_body_complete(Http *h, Req *req) {
        char why[512];
        const char *body = req->body.data ? req->body.data : "";
        size_t len = req->body.len;
        HttpStatus code = HTTP_STATUS_NONE;
        if (req->too_large)
                return send_session_too_large(h, req);
        if (req->fwd_url)
                return forward_begin(h, req);
        if (req->sreq.op == SOP_CREATE && atomic_load(&h->draining))
                return send_session_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "ServiceUnavailable", NULL,
                        "this server is draining (shutting down): make the session on another one");
        switch (req->sreq.op) {
        case SOP_CREATE: {
                ApiSessionCreate ac;
                code = api_decode_session_create(body, len, &h->cfg, &ac, why, sizeof why);
                if (code == HTTP_STATUS_NONE) {
                        req->sreq.idle_timeout_sec = ac.idle_timeout_sec;
                        req->sreq.max_lifetime_sec = ac.max_lifetime_sec;
                        req->sreq.memory_bytes = ac.memory_bytes;
                        req->sreq.kind = ac.full ? POOL_FULL : POOL_LEAN;
                        req->sreq.init_request = ac.init;
                        req->sreq.init_len = ac.init_len;
                }
                break;
        }
        case SOP_EXECUTE: {
                ApiRequest ar;
                code = api_decode_request(body, len, &h->cfg, &ar, why, sizeof why);
                if (code == HTTP_STATUS_NONE && ar.memory_bytes) {
                        free(ar.runner);
                        snprintf(why, sizeof why,
                                "field \"memory_mb\" belongs to the session (POST /api/sessions), not to a "
                                "cell");
                        code = HTTP_BAD_REQUEST;
                }
                if (code == HTTP_STATUS_NONE) {
                        req->job.request = ar.runner;
                        req->job.request_len = ar.runner_len;
                        req->job.timeout_ms = ar.timeout_ms;
                        req->job.want_files = ar.want_files;
                }
                break;
        }
        case SOP_RESTART: {
                bool keep = false;
                code = api_decode_session_restart(body, len, &keep, why, sizeof why);
                if (code == HTTP_STATUS_NONE && keep) {
                        /* The old runner packs /work first; the new one unpacks it. */
                        req->job.request = strdup("{\"mode\":\"session\",\"op\":\"pack\"}");
                        if (!req->job.request)
                                code = HTTP_SERVICE_UNAVAILABLE;
                        else
                                req->job.request_len = strlen(req->job.request);
                        req->sreq.keep_files = true;
                }
                break;
        }
        case SOP_FILES_LIST:
        case SOP_FILE_GET:
        case SOP_FILE_PUT:
        case SOP_FILE_DELETE:
                code = api_file_request(req->sreq.op, req->file, body, len, h->cfg.max_return_files,
                        &req->job.request, &req->job.request_len);
                break;
        default:
                break; /* no body expected; what came is ignored */
        }
        buf_free(&req->body);
        if (code == HTTP_SERVICE_UNAVAILABLE)
                return send_session_error(req, 503, "ServiceUnavailable", NULL, "out of memory");
        if (code != HTTP_STATUS_NONE)
                return send_session_error(req, (unsigned)code, "BadRequest", NULL, why);
        return session_submit(h, req);
}

/* /api/sessions[/{id}[/execute|/interrupt|/restart]]: decides the operation, checks method and
 * key; then reads the body (on_body_complete) or submits at once. */
static enum MHD_Result route_session(Http *h, Req *req, const char *url, const char *method, bool bodyless) {
        struct MHD_Connection *conn = req->conn;
        const char *rest = url + strlen("/api/sessions");
        const char *allow;
        SessionOp op;
        req->endpoint = EP_SESSIONS;
        req->session = true;
        req->sreq = (SessionReq){.fd = -1};
        bool put = strcmp(method, MHD_HTTP_METHOD_PUT) == 0;
        bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
        bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
        bool del = strcmp(method, MHD_HTTP_METHOD_DELETE) == 0;
        if (*rest == 0 || strcmp(rest, "/") == 0) {
                allow = "GET, POST";
                op = get ? SOP_LIST : SOP_CREATE;
                if (!get && !post)
                        goto not_allowed;
        } else {
                rest++;
                size_t n = strcspn(rest, "/");
                if (n == 0 || n >= sizeof req->sreq.id)
                        return send_session_error(
                                req, MHD_HTTP_NOT_FOUND, "SessionNotFound", NULL, "no such session");
                memcpy(req->sreq.id, rest, n);
                req->sreq.id[n] = 0;
                const char *sub = rest + n;
                if (*sub == 0) {
                        allow = "GET, DELETE";
                        op = get ? SOP_GET : SOP_DELETE;
                        if (!get && !del)
                                goto not_allowed;
                } else if (strcmp(sub, "/execute") == 0 || strcmp(sub, "/interrupt") == 0 ||
                           strcmp(sub, "/restart") == 0) {
                        allow = "POST";
                        op = sub[1] == 'e' ? SOP_EXECUTE : sub[1] == 'i' ? SOP_INTERRUPT : SOP_RESTART;
                        if (!post)
                                goto not_allowed;
                } else if (strcmp(sub, "/files") == 0 || strcmp(sub, "/files/") == 0) {
                        allow = "GET";
                        op = SOP_FILES_LIST;
                        if (!get)
                                goto not_allowed;
                } else if (strncmp(sub, "/files/", 7) == 0) {
                        char reason[160];
                        const char *name = sub + 7;
                        if (upload_check_name(name, strlen(name), reason, sizeof reason) < 0) {
                                char msg[400];
                                snprintf(msg, sizeof msg, "file \"%.200s\": %s", name, reason);
                                return send_session_error(
                                        req, MHD_HTTP_BAD_REQUEST, "BadRequest", NULL, msg);
                        }
                        snprintf(req->file, sizeof req->file, "%s", name);
                        allow = "GET, PUT, DELETE";
                        op = get ? SOP_FILE_GET : put ? SOP_FILE_PUT : SOP_FILE_DELETE;
                        if (!get && !put && !del)
                                goto not_allowed;
                } else
                        return send_session_error(req, MHD_HTTP_NOT_FOUND, "NotFound", NULL,
                                "not found: a session's endpoints are execute, interrupt, restart and "
                                "files");
        }
        req->sreq.op = op;
        if (!auth_check(h->auth, header(conn, MHD_HTTP_HEADER_AUTHORIZATION)))
                return send_error(req, MHD_HTTP_UNAUTHORIZED,
                        "unauthorized: send the header Authorization: Bearer <API key>",
                        MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"snakebox\"");
        req->sreq.owner = auth_owner(h->auth, header(conn, MHD_HTTP_HEADER_AUTHORIZATION));
        req->sreq.keyed = auth_enabled(h->auth);
        enum MHD_Result answered;
        if (session_route_owner(h, req, url, &answered))
                return answered;
        if (h->cfg.max_sessions == 0 && !req->fwd_url)
                return send_session_error(req, MHD_HTTP_NOT_FOUND, "SessionsDisabled", NULL,
                        "sessions are disabled on this server (MAX_SESSIONS=0)");
        if (op == SOP_FILE_PUT) {
                /* Raw bytes, any type; MAX_FILES_BYTES per upload, as "files" in a request. */
                if (declared_over(conn, h->cfg.max_files_bytes))
                        return send_session_too_large(h, req);
                req->state = REQ_READING;
                buf_init(&req->body, h->cfg.max_files_bytes);
                if (bodyless)
                        return session_body_complete(h, req);
                return MHD_YES;
        }
        bool wants_body = op == SOP_CREATE || op == SOP_EXECUTE || op == SOP_RESTART;
        if (bodyless || !wants_body) {
                req->state = REQ_READING;
                if (!bodyless) {
                        /* A body nobody reads: dropped as it comes (REQ_READING with no cap). */
                        buf_init(&req->body, 0);
                        req->too_large = false;
                        return MHD_YES;
                }
                return session_body_complete(h, req);
        }
        if (!is_json(header(conn, MHD_HTTP_HEADER_CONTENT_TYPE)))
                return send_session_error(req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "BadRequest", NULL,
                        "unsupported media type: send Content-Type: application/json");
        if (declared_over(conn, h->cfg.max_request_bytes))
                return send_session_too_large(h, req);
        req->state = REQ_READING;
        buf_init(&req->body, h->cfg.max_request_bytes);
        return MHD_YES;
not_allowed : {
        char msg[96];
        snprintf(msg, sizeof msg, "method not allowed: use %s", allow);
        size_t len = 0;
        char *body = api_session_error("BadRequest", NULL, msg, &len);
        return send_body(req, MHD_HTTP_METHOD_NOT_ALLOWED, body, len, "application/json; charset=utf-8",
                MHD_HTTP_HEADER_ALLOW, allow);
}
}

/* read_file of MCP: the file's first MAX_RETURN_FILE_BYTES bytes (the cap of a file returned in a
 * JSON answer), read from the fd the runner passed, into the tool's result. */
static enum MHD_Result mcp_file(Http *h, Req *req, uint64_t size) {
        size_t want = (size_t)MIN(size, h->cfg.max_return_file_bytes);
        _cleanup_free_ char *data = malloc(want + 1);
        size_t got = 0;
        while (data && got < want) {
                ssize_t n = pread(req->sreq.fd, data + got, want - got, (off_t)got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                got += (size_t)n;
        }
        if (!data)
                return send_error(req, 503, "out of memory", NULL, NULL);
        return mcp_answer(req, 200, NULL, 0, data, got, got < size);
}

/* The runner answered a file operation: its report (checked here), and for a GET the file's
 * fd, served as it is: regular, on the sandbox's tmpfs (an fd of anything else the sandbox can
 * open, /proc or the read-only root, is refused), never opened by path in the server. */
static enum MHD_Result send_file_answer(Http *h, Req *req) {
        SessionReq *s = &req->sreq;
        ApiFileAnswer fa;
        char msg[400];
        int kind = api_file_answer(&req->job.result, s->op, &h->cfg, &fa, msg, sizeof msg);
        if (kind < 0)
                return send_session_error(req, 500, "Internal", NULL, msg);
        if (kind > 0) {
                const char *type = kind == 404 ? "FileNotFound" : kind == 413 ? "TooLarge" : "BadRequest";
                return send_session_error(req, (unsigned)kind, type, NULL, msg);
        }
        if (s->op == SOP_FILES_LIST)
                return send_json(req, 200, fa.body, fa.body ? strlen(fa.body) : 0);
        free(fa.body);
        if ((s->op == SOP_FILE_PUT || s->op == SOP_FILE_DELETE) && req->is_mcp && req->mcp)
                return mcp_answer(
                        req, s->op == SOP_FILE_PUT && fa.created ? 201 : 204, NULL, 0, NULL, 0, false);
        if (s->op == SOP_FILE_PUT || s->op == SOP_FILE_DELETE) {
                struct MHD_Response *resp =
                        MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
                if (!resp)
                        return MHD_NO;
                return queue(req, s->op == SOP_FILE_PUT && fa.created ? 201 : 204, resp);
        }
        struct stat st;
        struct statfs sf;
        if (s->fd < 0 || fstat(s->fd, &st) < 0 || !S_ISREG(st.st_mode) || fstatfs(s->fd, &sf) < 0 ||
                sf.f_type != TMPFS_MAGIC)
                return send_session_error(
                        req, 404, "FileNotFound", NULL, "not a regular file of the session");
        if (req->is_mcp && req->mcp)
                return mcp_file(h, req, (uint64_t)st.st_size);
        struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, s->fd);
        if (!resp)
                return MHD_NO;
        s->fd = -1; /* the response owns it */
        req->bytes_out = (size_t)st.st_size;
        const char *base = strrchr(req->file, '/');
        base = base ? base + 1 : req->file;
        char disp[400];
        size_t k = (size_t)snprintf(disp, sizeof disp, "attachment; filename=\"");
        for (const char *c = base; *c && k < sizeof disp - 3; c++)
                disp[k++] =
                        (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
                                ? '_'
                                : *c;
        disp[k++] = '"';
        disp[k] = 0;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
        MHD_add_response_header(resp, "Content-Disposition", disp);
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        return queue(req, 200, resp);
}

/* The pool answered a session request. */
static enum MHD_Result send_session_answer(Http *h, Req *req) {
        SessionReq *s = &req->sreq;
        if (s->status == 0 && s->op >= SOP_FILES_LIST && req->job.result.outcome != RUN_SHUTDOWN)
                return send_file_answer(h, req);
        if (s->status == 0) {
                if (s->op != SOP_EXECUTE || req->job.result.outcome == RUN_SHUTDOWN)
                        return send_session_error(
                                req, 503, "ServiceUnavailable", NULL, "the server is shutting down");
                char *body = NULL;
                size_t len = 0;
                HttpStatus code = exec_answer(h, req, &body, &len);
                return send_json(req, (unsigned)code, body, len);
        }
        if (s->status == 204 && req->is_mcp && req->mcp)
                return mcp_answer(req, 204, NULL, 0, NULL, 0, false);
        if (s->status == 204) {
                struct MHD_Response *resp =
                        MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
                if (!resp)
                        return MHD_NO;
                return queue(req, 204, resp);
        }
        char *body = TAKE_PTR(s->body);
        size_t len = body ? strlen(body) : 0;
        char retry[16];
        snprintf(retry, sizeof retry, "%u", s->retry_after);
        if (s->location[0] && !(req->is_mcp && req->mcp)) {
                struct MHD_Response *resp =
                        body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE) : NULL;
                if (!resp) {
                        free(body);
                        return send_json(req, 503, NULL, 0);
                }
                req->bytes_out = len;
                MHD_add_response_header(
                        resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
                MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, s->location);
                return queue(req, s->status, resp);
        }
        return send_body(req, s->status, body, len, "application/json; charset=utf-8",
                s->retry_after ? MHD_HTTP_HEADER_RETRY_AFTER : NULL, retry);
}

/* ---- MCP (mcp.c): /mcp, over the paths above ---- */

/* True when origin is this server's own address on loopback ("http://" + a Host of
 * 127.0.0.1, localhost or [::1], with its port): a page that DNS rebinding brings here has its
 * own name in both Origin and Host, never a loopback one, so such a request cannot be one. */
static bool loopback_same_origin(const char *origin, const char *host) {
        static const char *const loopback[] = {"127.0.0.1", "localhost", "[::1]"};
        if (!host || strncmp(origin, "http://", 7) != 0 || strcmp(origin + 7, host) != 0)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(loopback); i++) {
                size_t n = strlen(loopback[i]);
                if (strncmp(host, loopback[i], n) == 0 && (host[n] == 0 || host[n] == ':'))
                        return true;
        }
        return false;
}

/* An answer of /mcp before any message is read: a JSON-RPC error without id, as the transport's
 * HTTP status. */
static enum MHD_Result mcp_http_error(
        Req *req, unsigned code, const char *msg, const char *hname, const char *hvalue) {
        size_t len = 0;
        char *body = mcp_error(NULL, -32000, msg, &len);
        return send_body_raw(req, code, body, len, "application/json", hname, hvalue);
}

/* The MCP calls in flight are listed so that a notifications/cancelled can find its call: by
 * the request id, from the same key (owner) and the same client address. */
static void mcp_list(Http *h, Req *req, bool on) {
        pthread_mutex_lock(&h->watch_lock);
        (void)req_list(&h->mcp_calls, req, offsetof(Req, mcp_link), on);
        pthread_mutex_unlock(&h->watch_lock);
}

/* Cancels the call id_text of this client: its socket is shut down, which the pool sees as a
 * client gone, as for /api: a run is killed, a session's cell interrupted. The spec wants no
 * response to a cancelled request, and none can be sent. */
static void mcp_cancel(Http *h, Req *by, const char *id_text) {
        pthread_mutex_lock(&h->watch_lock);
        for (Req *r = h->mcp_calls; r; r = r->mcp_link.next)
                if (r->mcp && r->mcp_fd >= 0 && r->mcp_owner == by->mcp_owner &&
                        strcmp(r->mcp_peer, by->mcp_peer) == 0 && strcmp(r->mcp->id_text, id_text) == 0)
                        shutdown(r->mcp_fd, SHUT_RDWR);
        pthread_mutex_unlock(&h->watch_lock);
}

/* The body of an MCP POST is in: answered at once, or a tool call run through the /api path it
 * translates to (stateless: on_body_complete; a session's: session_body_complete). */
static enum MHD_Result mcp_body_complete(Http *h, Req *req) {
        if (req->too_large) {
                char why[128];
                snprintf(why, sizeof why,
                        "request body too large: the limit is MAX_REQUEST_BYTES (%llu bytes)",
                        (unsigned long long)h->cfg.max_request_bytes);
                return mcp_http_error(req, MHD_HTTP_CONTENT_TOO_LARGE, why, NULL, NULL);
        }
        McpAnswer a;
        const char *accept = header(req->conn, MHD_HTTP_HEADER_ACCEPT);
        int r = mcp_handle(req->body.data ? req->body.data : "", req->body.len, req->mcp_rev,
                accept && strcasestr(accept, "text/event-stream"), &h->cfg, &a);
        /* The JSON-RPC message itself, kept for a call on another node's session, which goes to
         * that node's /mcp as it came. */
        req->mcp_message = req->body;
        req->body = (Buf){0};
        if (r < 0)
                return send_body_raw(req, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, 0, NULL, NULL, NULL);
        if (a.cancel[0])
                mcp_cancel(h, req, a.cancel);
        if (!a.call) {
                if (a.http_status == MHD_HTTP_ACCEPTED) {
                        struct MHD_Response *resp =
                                MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
                        if (!resp)
                                return MHD_NO;
                        return queue(req, MHD_HTTP_ACCEPTED, resp);
                }
                return send_body_raw(req, a.http_status, a.body, a.body_len, "application/json", NULL, NULL);
        }
        McpCall *call = req->mcp = a.call;
        req->outcome = "-";
        buf_init(&req->body, call->op == SOP_FILE_PUT ? h->cfg.max_files_bytes : h->cfg.max_request_bytes);
        if (call->body_len > req->body.cap)
                req->too_large = true;
        else if (buf_append(&req->body, call->body, call->body_len) < 0)
                return send_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL, NULL);
        const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        req->mcp_fd = ci ? fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 3) : -1;
        if (req->mcp_fd >= 0)
                mcp_list(h, req, true);
        if (!call->session) {
                buf_free(&req->mcp_message);
                return on_body_complete(h, req);
        }
        if (h->cfg.max_sessions == 0)
                return send_session_error(req, MHD_HTTP_NOT_FOUND, "SessionsDisabled", NULL,
                        "sessions are disabled on this server (MAX_SESSIONS=0)");
        req->session = true;
        req->sreq = (SessionReq){
                .fd = -1,
                .op = (SessionOp)call->op,
                .owner = req->mcp_owner,
                .keyed = auth_enabled(h->auth),
        };
        snprintf(req->sreq.id, sizeof req->sreq.id, "%s", call->session_id);
        snprintf(req->file, sizeof req->file, "%s", call->path);
        /* The session's owner is in its id: another node's call is forwarded as the REST
         * session routes are (same checks, same loop guard), the whole JSON-RPC message to its
         * /mcp; the owner's answer is already the JSON-RPC response and is relayed as it is. */
        enum MHD_Result answered;
        if (session_route_owner(h, req, "/mcp", &answered))
                return answered;
        if (req->fwd_url) {
                buf_free(&req->body);
                req->body = req->mcp_message;
                req->mcp_message = (Buf){0};
                return forward_begin(h, req);
        }
        buf_free(&req->mcp_message);
        return session_body_complete(h, req);
}

/* POST /mcp: the transport's checks, in the order the spec gives them, then the body. */
static enum MHD_Result route_mcp(Http *h, Req *req, const char *method, bool bodyless) {
        struct MHD_Connection *conn = req->conn;
        req->endpoint = EP_MCP;
        req->is_mcp = true;
        req->mcp_fd = -1;
        /* DNS rebinding: a page of another site that reaches this port through a name it
         * controls sends its own Origin; browsers always send one with a POST. */
        const char *origin = header(conn, "Origin");
        if (origin && !origin_listed(h->cfg.mcp_allowed_origins, origin) &&
                !loopback_same_origin(origin, header(conn, MHD_HTTP_HEADER_HOST)))
                return mcp_http_error(req, MHD_HTTP_FORBIDDEN,
                        "Forbidden: this Origin is not in MCP_ALLOWED_ORIGINS", NULL, NULL);
        if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
                return mcp_http_error(req, MHD_HTTP_METHOD_NOT_ALLOWED,
                        "Method not allowed: /mcp takes POST (this server opens no SSE stream of its own "
                        "and keeps no MCP session to delete)",
                        MHD_HTTP_HEADER_ALLOW, MHD_HTTP_METHOD_POST);
        const char *authz = header(conn, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!auth_check(h->auth, authz))
                return mcp_http_error(req, MHD_HTTP_UNAUTHORIZED,
                        "Unauthorized: send the header Authorization: Bearer <API key>",
                        MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"snakebox\"");
        req->mcp_owner = auth_owner(h->auth, authz);
        const char *v = header(conn, "MCP-Protocol-Version");
        req->mcp_rev = MCP_REV_DEFAULT;
        if (v && mcp_revision_parse(v, &req->mcp_rev) < 0)
                return mcp_http_error(req, MHD_HTTP_BAD_REQUEST,
                        "Bad Request: unsupported MCP-Protocol-Version; this server answers 2025-03-26, "
                        "2025-06-18 and 2025-11-25",
                        NULL, NULL);
        if (!is_json(header(conn, MHD_HTTP_HEADER_CONTENT_TYPE)))
                return mcp_http_error(req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                        "Unsupported Media Type: send Content-Type: application/json", NULL, NULL);
        if (declared_over(conn, h->cfg.max_request_bytes))
                return mcp_http_error(req, MHD_HTTP_CONTENT_TOO_LARGE,
                        "request body too large: the limit is MAX_REQUEST_BYTES", NULL, NULL);
        const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
                const struct sockaddr *sa = ci->client_addr;
                if (sa->sa_family == AF_INET)
                        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, req->mcp_peer,
                                sizeof req->mcp_peer);
                else if (sa->sa_family == AF_INET6)
                        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, req->mcp_peer,
                                sizeof req->mcp_peer);
        }
        buf_init(&req->body, h->cfg.max_request_bytes);
        if (bodyless)
                return mcp_body_complete(h, req);
        return MHD_YES;
}

static enum MHD_Result route_request(Http *h, Req *req, const char *url, const char *method) {
        struct MHD_Connection *conn = req->conn;
        req->state = REQ_READING;
        if (strcmp(url, "/mcp") == 0) {
                const char *cl = header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
                bool bodyless =
                        !header(conn, MHD_HTTP_HEADER_TRANSFER_ENCODING) && (!cl || strcmp(cl, "0") == 0);
                return route_mcp(h, req, method, bodyless);
        }
        if (strncmp(url, "/api/sessions", strlen("/api/sessions")) == 0 &&
                (url[strlen("/api/sessions")] == 0 || url[strlen("/api/sessions")] == '/')) {
                if (strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0 && req->origin[0])
                        return send_preflight(req);
                const char *cl = header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
                bool bodyless =
                        !header(conn, MHD_HTTP_HEADER_TRANSFER_ENCODING) && (!cl || strcmp(cl, "0") == 0);
                return route_session(h, req, url, method, bodyless);
        }
        PlaygroundFile page;
        if (h->cfg.playground && (strcmp(url, "/") == 0 || playground_find(url, &page) == 0))
                return send_playground(req, url, method);
        const UrlRoute *route = NULL;
        for (size_t i = 0; i < ELEMENTSOF(routes); i++)
                if (strcmp(url, routes[i].path) == 0)
                        route = &routes[i];
        if (!route) {
                req->endpoint = EP_OTHER;
                return send_error(req, MHD_HTTP_NOT_FOUND,
                        "not found: the API is POST /api/execute (also GET /health, /metrics, "
                        "/openapi.json)",
                        NULL, NULL);
        }
        req->endpoint = route->endpoint;
        if (strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0 && req->origin[0])
                return send_preflight(req);
        bool head =
                strcmp(method, MHD_HTTP_METHOD_HEAD) == 0 && strcmp(route->method, MHD_HTTP_METHOD_GET) == 0;
        if (strcmp(method, route->method) != 0 && !head) {
                char msg[96];
                snprintf(msg, sizeof msg, "method not allowed: use %s", route->method);
                return send_error(
                        req, MHD_HTTP_METHOD_NOT_ALLOWED, msg, MHD_HTTP_HEADER_ALLOW, route->method);
        }
        if ((route->api || h->cfg.auth_health) &&
                !auth_check(h->auth, header(conn, MHD_HTTP_HEADER_AUTHORIZATION)))
                return send_error(req, MHD_HTTP_UNAUTHORIZED,
                        "unauthorized: send the header Authorization: Bearer <API key>",
                        MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"snakebox\"");
        switch (route->endpoint) {
        case EP_HEALTH:
                return send_health(req);
        case EP_METRICS:
                return send_metrics(req);
        case EP_OPENAPI:
                return send_openapi(req);
        default:
                break;
        }
        if (!is_json(header(conn, MHD_HTTP_HEADER_CONTENT_TYPE)))
                return send_error(req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                        "unsupported media type: send Content-Type: application/json", NULL, NULL);
        if (declared_over(conn, h->cfg.max_request_bytes)) {
                char msg[128];
                snprintf(msg, sizeof msg,
                        "request body too large: the limit is MAX_REQUEST_BYTES (%llu bytes)",
                        (unsigned long long)h->cfg.max_request_bytes);
                return send_error(req, MHD_HTTP_CONTENT_TOO_LARGE, msg, NULL, NULL);
        }
        buf_init(&req->body, h->cfg.max_request_bytes);
        return MHD_YES;
}

static enum MHD_Result on_body_complete(Http *h, Req *req) {
        char why[512];

        if (req->is_mcp && !req->mcp)
                return mcp_body_complete(h, req);
        if (req->session)
                return session_body_complete(h, req);
        if (req->too_large) {
                snprintf(why, sizeof why,
                        "request body too large: the limit is MAX_REQUEST_BYTES (%llu bytes)",
                        (unsigned long long)h->cfg.max_request_bytes);
                return send_error(req, MHD_HTTP_CONTENT_TOO_LARGE, why, NULL, NULL);
        }
        if (atomic_load(&h->draining)) {
                /* A balancer retries a 503 elsewhere (nginx: proxy_next_upstream http_503). */
                req->outcome = "draining";
                return send_error(req, MHD_HTTP_SERVICE_UNAVAILABLE,
                        "this server is draining (shutting down): send the request to another one",
                        MHD_HTTP_HEADER_RETRY_AFTER, "1");
        }
        ApiRequest ar;
        HttpStatus code = api_decode_request(
                req->body.data ? req->body.data : "", req->body.len, &h->cfg, &ar, why, sizeof why);
        buf_free(&req->body);
        if (code == HTTP_SERVICE_UNAVAILABLE)
                return send_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL, NULL);
        if (code != HTTP_STATUS_NONE)
                return send_error(req, (unsigned)code, why, NULL, NULL);

        const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        req->job = (Job){
                .request = ar.runner,
                .request_len = ar.runner_len,
                .client_fd = ci ? ci->connect_fd : -1,
                .kind = pool_route(h->pool, ar.runner, ar.runner_len),
                .timeout_ms = ar.timeout_ms,
                .memory_bytes = ar.memory_bytes,
                .want_files = ar.want_files,
                .done = job_done,
                .userdata = req,
        };
        req->job.client_fd = live_prepare(req, req->job.client_fd);
        /* Suspend first: the pool may finish the job (and resume) before submit returns. */
        req->state = REQ_WAITING;
        MHD_suspend_connection(req->conn);
        int r = pool_submit(h->pool, &req->job);
        if (r < 0) {
                req->state = REQ_READING;
                req->live.framing = STREAM_NONE;
                MHD_resume_connection(req->conn);
                free(req->job.request);
                req->job.request = NULL;
                run_result_free(&req->job.result);
                if (r == -EBUSY)
                        return send_error(req, MHD_HTTP_SERVICE_UNAVAILABLE,
                                "all sandboxes are busy and the queue is full (MAX_CONCURRENCY, "
                                "QUEUE_SIZE); "
                                "try again later",
                                MHD_HTTP_HEADER_RETRY_AFTER, "1");
                return send_error(
                        req, MHD_HTTP_SERVICE_UNAVAILABLE, "the server is shutting down", NULL, NULL);
        }
        req->ran = true;
        return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
        const char *method, _unused_ const char *version, const char *upload_data, size_t *upload_data_size,
        void **con_cls) {
        Http *h = cls;
        Req *req = *con_cls;

        if (!req)
                return on_first_call(h, conn, url, method, con_cls);

        switch (req->state) {
        case REQ_ROUTE:
                if (*upload_data_size > 0) {
                        /* Announced no body but sent some: drop it. */
                        req->bytes_in += *upload_data_size;
                        *upload_data_size = 0;
                        return MHD_YES;
                }
                return route_request(h, req, url, method);
        case REQ_READING:
                if (*upload_data_size > 0) {
                        req->bytes_in += *upload_data_size;
                        if (!req->too_large) {
                                if (req->body.len + *upload_data_size > req->body.cap)
                                        req->too_large = true;
                                else if (buf_append(&req->body, upload_data, *upload_data_size) < 0)
                                        return MHD_NO;
                        }
                        *upload_data_size = 0;
                        return MHD_YES;
                }
                return on_body_complete(h, req);
        case REQ_WAITING:
                if (req->fwd)
                        return send_forward(req);
                /* A live answer's run began: its headers go out now. Else resumed before the
                 * job finished: only on a spurious wake-up. */
                if (req->live.framing != STREAM_NONE)
                        return send_live(req);
                return MHD_YES;
        case REQ_DONE: {
                if (req->session)
                        return send_session_answer(h, req);
                char *body = NULL;
                size_t len = 0;
                HttpStatus code = exec_answer(h, req, &body, &len);
                return send_json(req, (unsigned)code, body, len);
        }
        case REQ_ANSWERED:
                /* The answer is queued; the rest of an uploaded body is read and dropped. */
                *upload_data_size = 0;
                return MHD_YES;
        }
        return MHD_NO;
}

/* One line per request: text by default, JSON lines with LOG_FORMAT=json. */
static void access_log(Http *h, Req *req, uint64_t ms) {
        char when[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (strcmp(h->cfg.log_format, "json") == 0) {
                json_t *o = json_pack("{ss ss ss ss sI ss sI sI sI}", "time", when, "request_id", req->id,
                        "method", req->method, "path", req->path, "status", (json_int_t)req->code, "outcome",
                        req->outcome, "duration_ms", (json_int_t)ms, "bytes_in", (json_int_t)req->bytes_in,
                        "bytes_out", (json_int_t)req->bytes_out);
                char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
                if (line)
                        log_info("%s", line);
                free(line);
                json_decref(o);
                return;
        }
        /* The path is the client's: show it without control characters. */
        char path[sizeof req->path];
        size_t i = 0;
        for (; req->path[i] && i < sizeof path - 1; i++)
                path[i] = (unsigned char)req->path[i] < 0x20 || req->path[i] == 0x7f ? '?' : req->path[i];
        path[i] = 0;
        log_info("access %s id=%s %s %s %u outcome=%s %llums in=%zu out=%zu", when, req->id, req->method,
                path, req->code, req->outcome, (unsigned long long)ms, req->bytes_in, req->bytes_out);
}

static void on_completed(
        void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
        Http *h = cls;
        Req *req = *con_cls;
        if (!req)
                return;
        /* Kept alive, the connection now waits for the next request's headers. */
        MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)h->cfg.header_timeout_sec);
        watch_set(h, conn, true);
        struct timespec end;
        clock_gettime(CLOCK_MONOTONIC, &end);
        uint64_t ms = (uint64_t)(end.tv_sec - req->start.tv_sec) * 1000 +
                      (uint64_t)((end.tv_nsec - req->start.tv_nsec) / 1000000);
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && req->code == 0)
                req->outcome = "client-gone";
        bool in_flight = false;
        if (req->live.framing != STREAM_NONE) {
                live_list(h, req, false);
                pthread_mutex_lock(&req->live.lock);
                req->live.completed = true;
                in_flight = !req->live.done;
                if (!req->live.ended)
                        req->outcome = "client-gone";
                pthread_mutex_unlock(&req->live.lock);
        }
        access_log(h, req, ms);
        metrics_request(req->endpoint, req->code);
        *con_cls = NULL;
        atomic_fetch_sub(&h->active, 1);
        if (req->mcp_link.listed)
                mcp_list(h, req, false);
        if (in_flight) {
                /* The client left a live answer mid-run: the pool sees the hang-up on our copy
                 * of the socket, kills the run (or interrupts the cell), and its done callback
                 * frees the request. */
                shutdown(req->live.fd, SHUT_RDWR);
                return;
        }
        req_free(req);
}

static void req_free(Req *req) {
        if (req->mcp_link.listed)
                mcp_list(req->http, req, false);
        if (req->mcp && req->mcp_fd >= 0)
                close(req->mcp_fd);
        mcp_call_free(req->mcp);
        if (req->ran)
                metrics_run(&req->job.result);
        if (req->live.init) {
                close(req->live.fd);
                stream_queue_free(&req->live.q);
                buf_free(&req->live.wire);
                pthread_mutex_destroy(&req->live.lock);
        }
        buf_free(&req->body);
        free(req->job.request);
        run_result_free(&req->job.result);
        free(req->sreq.body);
        free(req->sreq.extra);
        free(req->sreq.init_request);
        forward_release(req->fwd);
        free(req->fwd_url);
        buf_free(&req->mcp_message);
        if (req->session && req->sreq.fd >= 0)
                close(req->sreq.fd);
        free(req);
}

int http_start(
        const Config *c, Pool *pool, Auth *auth, Http **ret, uint16_t *ret_port, char *why, size_t whyn) {
        struct sockaddr_storage ss = {0};
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;

        if (strchr(c->host, ':')) {
                struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
                a->sin6_family = AF_INET6;
                a->sin6_port = htons((uint16_t)c->port);
                if (inet_pton(AF_INET6, c->host, &a->sin6_addr) != 1) {
                        snprintf(why, whyn, "HOST=%s is not an IP address", c->host);
                        auth_free(auth);
                        return -EINVAL;
                }
                flags |= MHD_USE_IPv6;
        } else {
                struct sockaddr_in *a = (struct sockaddr_in *)&ss;
                a->sin_family = AF_INET;
                a->sin_port = htons((uint16_t)c->port);
                if (inet_pton(AF_INET, c->host, &a->sin_addr) != 1) {
                        snprintf(why, whyn, "HOST=%s is not an IP address", c->host);
                        auth_free(auth);
                        return -EINVAL;
                }
        }

        if (c->peer_url[0] && !c->peer_token[0]) {
                snprintf(why, whyn,
                        "PEER_URL is set but PEER_TOKEN is not: the owners would refuse every forwarded "
                        "request");
                auth_free(auth);
                return -EINVAL;
        }
        Http *h = calloc(1, sizeof *h);
        if (!h) {
                auth_free(auth);
                return -ENOMEM;
        }
        h->pool = pool;
        h->cfg = *c;
        h->auth = auth;
        pthread_mutex_init(&h->watch_lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&h->watch_cond, &ca);
        pthread_condattr_destroy(&ca);
        int r = -pthread_create(&h->watch, NULL, watch_main, h);
        if (r < 0) {
                snprintf(why, whyn, "cannot start the header watch thread: %s", strerror(-r));
                http_stop(h);
                return r;
        }
        h->watch_started = true;
        h->daemon = MHD_start_daemon(flags, (uint16_t)c->port, NULL, NULL, on_request, h,
                MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_CONNECTION_LIMIT,
                (unsigned)CONNECTION_LIMIT, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                (unsigned)c->max_connections_per_ip, MHD_OPTION_CONNECTION_TIMEOUT,
                (unsigned)c->header_timeout_sec, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HEADER_MEMORY,
                MHD_OPTION_END);
        if (!h->daemon) {
                r = errno ? -errno : -EADDRINUSE;
                snprintf(why, whyn, "cannot listen on %s:%u: %s", c->host, c->port, strerror(-r));
                http_stop(h);
                return r;
        }
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
        *ret_port = di ? di->port : (uint16_t)c->port;
        if (auth_enabled(h->auth))
                log_info("API keys required for /api/%s", c->auth_health ? ", /health and /metrics" : "");
        *ret = h;
        return 0;
}

void http_drain(Http *h) {
        if (h)
                atomic_store(&h->draining, true);
}

void http_quiesce(Http *h) {
        if (h && h->daemon) {
                MHD_socket s = MHD_quiesce_daemon(h->daemon);
                if (s != MHD_INVALID_SOCKET)
                        close(s);
        }
}

void http_wait_idle(Http *h, uint64_t ms) {
        for (uint64_t waited = 0; h && atomic_load(&h->active) > 0 && waited < ms; waited += 10) {
                struct timespec ts = {0, 10 * 1000000};
                nanosleep(&ts, NULL);
        }
}

/* Also tears down a half-started Http (http_start's failure paths). */
void http_stop(Http *h) {
        if (!h)
                return;
        if (h->watch_started) {
                pthread_mutex_lock(&h->watch_lock);
                h->watch_stop = true;
                pthread_cond_signal(&h->watch_cond);
                pthread_mutex_unlock(&h->watch_lock);
                pthread_join(h->watch, NULL);
        }
        /* Closes every connection; each CLOSED notification frees its Waiting. */
        if (h->daemon)
                MHD_stop_daemon(h->daemon);
        pthread_cond_destroy(&h->watch_cond);
        pthread_mutex_destroy(&h->watch_lock);
        auth_free(h->auth);
        free(h);
}
