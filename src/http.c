/* HTTP with libmicrohttpd. One internal polling thread (epoll) parses requests; a request that
 * is waiting for its run is suspended (MHD_suspend_connection), so it holds no thread; the pool
 * thread resumes it when the run is done, and this thread builds and sends the answer.
 *
 * Limits applied here, before anything reaches a sandbox: the body is capped at
 * MAX_REQUEST_BYTES (413, checked on Content-Length first and again while reading, for chunked
 * bodies), the Content-Type must be JSON (415), the method must be POST (405 with Allow), the
 * path must exist (404), headers are capped by libmicrohttpd's per-connection memory limit, and
 * idle connections time out. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/macro.h"

#define CONNECTION_LIMIT 1024
#define IDLE_TIMEOUT_SEC 60
#define HEADER_MEMORY (64 * 1024)

struct Http {
        struct MHD_Daemon *daemon;
        Pool *pool;
        Config cfg;
};

typedef enum ReqState { REQ_READING, REQ_WAITING, REQ_DONE } ReqState;

typedef struct Req {
        Http *http;
        struct MHD_Connection *conn;
        ReqState state;
        Buf body;
        bool too_large;
        Job job;
} Req;

static enum MHD_Result send_body(struct MHD_Connection *conn, unsigned code, char *body, size_t len,
        const char *hname, const char *hvalue) {
        static const char fallback[] = "{\"status\":\"Error\",\"output\":\"out of memory\"}";
        struct MHD_Response *resp;
        if (body)
                resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
        else {
                code = MHD_HTTP_SERVICE_UNAVAILABLE;
                resp = MHD_create_response_from_buffer(
                        strlen(fallback), (void *)fallback, MHD_RESPMEM_PERSISTENT);
        }
        if (!resp) {
                free(body);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json; charset=utf-8");
        if (hname)
                MHD_add_response_header(resp, hname, hvalue);
        if (code == MHD_HTTP_SERVICE_UNAVAILABLE &&
                !(hname && strcmp(hname, MHD_HTTP_HEADER_RETRY_AFTER) == 0))
                MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
        enum MHD_Result r = MHD_queue_response(conn, code, resp);
        MHD_destroy_response(resp);
        return r;
}

static enum MHD_Result send_error(
        struct MHD_Connection *conn, unsigned code, const char *msg, const char *hname, const char *hvalue) {
        size_t len = 0;
        char *body = api_error_body(msg, &len);
        return send_body(conn, code, body, len, hname, hvalue);
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

static void job_done(Job *job) {
        Req *req = job->userdata;
        req->state = REQ_DONE;
        MHD_resume_connection(req->conn);
}

static enum MHD_Result on_first_call(
        Http *h, struct MHD_Connection *conn, const char *url, const char *method, void **con_cls) {
        if (strcmp(url, "/api/execute") != 0)
                return send_error(
                        conn, MHD_HTTP_NOT_FOUND, "not found: the API is POST /api/execute", NULL, NULL);
        if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
                return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: use POST",
                        MHD_HTTP_HEADER_ALLOW, "POST");
        const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!is_json(ct))
                return send_error(conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                        "unsupported media type: send Content-Type: application/json", NULL, NULL);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
                char *end;
                errno = 0;
                unsigned long long n = strtoull(cl, &end, 10);
                if (errno == 0 && *end == 0 && n > h->cfg.max_request_bytes) {
                        char msg[128];
                        snprintf(msg, sizeof msg,
                                "request body too large: the limit is MAX_REQUEST_BYTES (%llu bytes)",
                                (unsigned long long)h->cfg.max_request_bytes);
                        return send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, msg, NULL, NULL);
                }
        }
        Req *req = calloc(1, sizeof *req);
        if (!req)
                return send_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL, NULL);
        req->http = h;
        req->conn = conn;
        buf_init(&req->body, h->cfg.max_request_bytes);
        *con_cls = req;
        return MHD_YES;
}

static enum MHD_Result on_body_complete(Http *h, Req *req) {
        char why[512];
        struct MHD_Connection *conn = req->conn;

        if (req->too_large) {
                snprintf(why, sizeof why,
                        "request body too large: the limit is MAX_REQUEST_BYTES (%llu bytes)",
                        (unsigned long long)h->cfg.max_request_bytes);
                return send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, why, NULL, NULL);
        }
        ApiRequest ar;
        int code = api_decode_request(
                req->body.data ? req->body.data : "", req->body.len, &h->cfg, &ar, why, sizeof why);
        buf_free(&req->body);
        if (code == 503)
                return send_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL, NULL);
        if (code != 0)
                return send_error(conn, (unsigned)code, why, NULL, NULL);

        const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
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
        /* Suspend first: the pool may finish the job (and resume) before submit returns. */
        req->state = REQ_WAITING;
        MHD_suspend_connection(conn);
        int r = pool_submit(h->pool, &req->job);
        if (r < 0) {
                req->state = REQ_READING;
                MHD_resume_connection(conn);
                free(req->job.request);
                req->job.request = NULL;
                run_result_free(&req->job.result);
                if (r == -EBUSY)
                        return send_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                                "all sandboxes are busy and the queue is full (MAX_CONCURRENCY, "
                                "QUEUE_SIZE); "
                                "try again later",
                                MHD_HTTP_HEADER_RETRY_AFTER, "1");
                return send_error(
                        conn, MHD_HTTP_SERVICE_UNAVAILABLE, "the server is shutting down", NULL, NULL);
        }
        return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
        const char *method, const char *version, const char *upload_data, size_t *upload_data_size,
        void **con_cls) {
        Http *h = cls;
        Req *req = *con_cls;
        (void)version;

        if (!req)
                return on_first_call(h, conn, url, method, con_cls);

        switch (req->state) {
        case REQ_READING:
                if (*upload_data_size > 0) {
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
                /* Resumed before the job finished: only on a spurious wake-up. */
                return MHD_YES;
        case REQ_DONE: {
                char *body = NULL;
                size_t len = 0;
                int code = api_build_answer(&req->job.result, &h->cfg, &body, &len);
                return send_body(conn, (unsigned)code, body, len, NULL, NULL);
        }
        }
        return MHD_NO;
}

static void on_completed(
        void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
        Req *req = *con_cls;
        (void)cls;
        (void)conn;
        (void)toe;
        if (!req)
                return;
        buf_free(&req->body);
        free(req->job.request);
        run_result_free(&req->job.result);
        free(req);
        *con_cls = NULL;
}

int http_start(const Config *c, Pool *pool, Http **ret, uint16_t *ret_port, char *why, size_t whyn) {
        struct sockaddr_storage ss = {0};
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;

        if (strchr(c->host, ':')) {
                struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
                a->sin6_family = AF_INET6;
                a->sin6_port = htons((uint16_t)c->port);
                if (inet_pton(AF_INET6, c->host, &a->sin6_addr) != 1) {
                        snprintf(why, whyn, "HOST=%s is not an IP address", c->host);
                        return -EINVAL;
                }
                flags |= MHD_USE_IPv6;
        } else {
                struct sockaddr_in *a = (struct sockaddr_in *)&ss;
                a->sin_family = AF_INET;
                a->sin_port = htons((uint16_t)c->port);
                if (inet_pton(AF_INET, c->host, &a->sin_addr) != 1) {
                        snprintf(why, whyn, "HOST=%s is not an IP address", c->host);
                        return -EINVAL;
                }
        }

        Http *h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        h->pool = pool;
        h->cfg = *c;
        h->daemon = MHD_start_daemon(flags, (uint16_t)c->port, NULL, NULL, on_request, h,
                MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
                (unsigned)IDLE_TIMEOUT_SEC, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HEADER_MEMORY,
                MHD_OPTION_END);
        if (!h->daemon) {
                int r = errno ? -errno : -EADDRINUSE;
                snprintf(why, whyn, "cannot listen on %s:%u: %s", c->host, c->port, strerror(-r));
                free(h);
                return r;
        }
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
        *ret_port = di ? di->port : (uint16_t)c->port;
        *ret = h;
        return 0;
}

void http_quiesce(Http *h) {
        if (h && h->daemon) {
                MHD_socket s = MHD_quiesce_daemon(h->daemon);
                if (s != MHD_INVALID_SOCKET)
                        close(s);
        }
}

void http_stop(Http *h) {
        if (!h)
                return;
        if (h->daemon)
                MHD_stop_daemon(h->daemon);
        free(h);
}
