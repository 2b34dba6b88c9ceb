/* Owner forwarding (forward.h): the pure decisions, and one libcurl easy transfer per forwarded
 * request in a detached thread of its own. A thread per transfer rather than one multi handle:
 * a forwarded request is rare next to the runs it asks for (it costs its owner a sandbox; here
 * it costs a thread blocked in poll), MAX_FORWARDS bounds them, and the blocking easy API keeps
 * the relay a straight line: connect, send, then hand each piece of the answer to the client's
 * connection through a buffer bounded by FORWARD_BUFFER_MAX (the transfer waits while the client
 * is behind, so a slow client slows its owner's stream instead of filling our memory).
 *
 * Lifetime: two references, the caller's and the thread's; the last one out frees. The client
 * going away is seen twice over: forward_release (libmicrohttpd completed the request) and a
 * hang-up on the client's socket, polled from libcurl's progress callback at least once a
 * second; either aborts the transfer, so the owner sees its client leave, as it would directly. */
#include "forward.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/macro.h"
#include "util/str.h"

int forward_owner(const char *id, size_t len) {
        size_t i = 0;
        uint32_t v = 0;
        while (i < len && i < 6 && id[i] >= '0' && id[i] <= '9')
                v = v * 10 + (uint32_t)(id[i++] - '0');
        if (i == 0 || i > 5 || v > 65535 || (i > 1 && id[0] == '0') || i >= len || id[i] != '-')
                return -EINVAL;
        return (int)v;
}

int forward_url(const char *tmpl, uint32_t node, const char *path, char *buf, size_t n) {
        static const char mark[] = "{node}";
        char num[8];
        size_t out = 0;
        bool seen = false;
        if (path[0] != '/' || n == 0)
                return -EINVAL;
        int k = snprintf(num, sizeof num, "%u", node);
        if (k < 0 || (size_t)k >= sizeof num)
                return -EINVAL;
        for (const char *p = tmpl; *p;) {
                const char *piece = p;
                size_t len = 1;
                if (strncmp(p, mark, sizeof mark - 1) == 0) {
                        piece = num;
                        len = (size_t)k;
                        p += sizeof mark - 1;
                        seen = true;
                } else
                        p++;
                if (out + len >= n)
                        return -ENAMETOOLONG;
                memcpy(buf + out, piece, len);
                out += len;
        }
        if (!seen)
                return -EINVAL;
        /* "http://host:8080/" + "/api/..." would make "//api": one slash between them. */
        if (out > 0 && buf[out - 1] == '/')
                out--;
        /* The path as libmicrohttpd gave it is decoded: encoded again, all but what needs no
         * encoding in a path (RFC 3986 unreserved and '/'). */
        for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
                bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                             (*p >= '0' && *p <= '9') || strchr("-._~/", *p);
                if (out + (plain ? 1 : 3) >= n)
                        return -ENAMETOOLONG;
                if (plain)
                        buf[out++] = (char)*p;
                else {
                        snprintf(buf + out, 4, "%%%02X", *p);
                        out += 3;
                }
        }
        buf[out] = 0;
        return 0;
}

bool forward_url_template_ok(const char *tmpl) {
        if (strncmp(tmpl, "http://", 7) != 0 && strncmp(tmpl, "https://", 8) != 0)
                return false;
        for (const char *p = tmpl; *p; p++)
                if ((unsigned char)*p <= 0x20 || *p == 0x7f)
                        return false;
        return strstr(tmpl, "{node}") != NULL;
}

/* Constant time in the length of b (the secret). */
static bool same_secret(const char *a, const char *b) {
        size_t nb = strlen(b);
        return str_ct_differs(a, strlen(a), b, nb, nb) == 0;
}

ForwardInbound forward_inbound(const char *token_header, const char *hop_header, const char *peer_token) {
        if (!token_header && !hop_header)
                return FORWARD_CLIENT;
        if (!token_header || !peer_token[0] || !same_secret(token_header, peer_token))
                return FORWARD_BAD_TOKEN;
        return FORWARD_PEER;
}

/* ---- the transfer ---- */

static _Atomic uint32_t inflight;

struct Forward {
        pthread_mutex_t lock;
        pthread_cond_t cond; /* the buffer has room again, or the caller left */
        int refs; /* under lock */
        ForwardState state;
        long status;
        ForwardHeaders headers;
        Buf body; /* bytes not yet read, from off */
        size_t off;
        bool waiting; /* the connection is suspended for more: wake it once */
        bool released; /* the caller left: abandon the transfer, wake no one */
        ForwardWake wake;
        void *userdata;
        int client_fd;
        /* The request, owned. */
        char *url, *method, *req_body;
        size_t req_body_len;
        struct curl_slist *req_headers;
        uint32_t timeout_ms, connect_timeout_ms;
};

static void forward_free(Forward *f) {
        if (!f)
                return;
        if (f->client_fd >= 0)
                close(f->client_fd);
        buf_free(&f->body);
        free(f->url);
        free(f->method);
        free(f->req_body);
        curl_slist_free_all(f->req_headers);
        pthread_cond_destroy(&f->cond);
        pthread_mutex_destroy(&f->lock);
        free(f);
}

/* Drops one reference; frees on the last. */
static void forward_unref(Forward *f) {
        pthread_mutex_lock(&f->lock);
        bool last = --f->refs == 0;
        pthread_mutex_unlock(&f->lock);
        if (last) {
                forward_free(f);
                atomic_fetch_sub(&inflight, 1);
        }
}

/* Under lock. */
static void wake_locked(Forward *f) {
        if (f->waiting && !f->released) {
                f->waiting = false;
                f->wake(f->userdata);
        }
}

static void keep_header(char *dst, size_t size, const char *value, size_t len) {
        while (len > 0 && (value[len - 1] == '\r' || value[len - 1] == '\n' || value[len - 1] == ' '))
                len--;
        while (len > 0 && *value == ' ') {
                value++;
                len--;
        }
        if (len >= size)
                len = size - 1; /* a relayed header cut short: only over-long ones, by design */
        memcpy(dst, value, len);
        dst[len] = 0;
}

/* The answer's headers are complete: known from the first body byte, or from the end. */
static void headers_done(Forward *f, CURL *c) {
        if (f->state != FORWARD_CONNECTING)
                return;
        long code = 0;
        /* NOLINTNEXTLINE(cppcoreguidelines-pro-type-vararg) */
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        f->status = code;
        f->state = FORWARD_HEADERS;
}

typedef struct Xfer {
        Forward *f;
        CURL *c;
} Xfer;

static size_t on_header(char *line, size_t size, size_t nitems, void *userdata) {
        Xfer *x = userdata;
        Forward *f = x->f;
        size_t n = size * nitems;
        static const struct {
                const char *name;
                size_t off, size;
        } relayed[] = {
                {"Content-Type", offsetof(ForwardHeaders, content_type),
                        sizeof(((ForwardHeaders *)0)->content_type)},
                {"Retry-After", offsetof(ForwardHeaders, retry_after),
                        sizeof(((ForwardHeaders *)0)->retry_after)},
                {"Location", offsetof(ForwardHeaders, location), sizeof(((ForwardHeaders *)0)->location)},
                {"Content-Disposition", offsetof(ForwardHeaders, content_disposition),
                        sizeof(((ForwardHeaders *)0)->content_disposition)},
                {"Cache-Control", offsetof(ForwardHeaders, cache_control),
                        sizeof(((ForwardHeaders *)0)->cache_control)},
                {"Allow", offsetof(ForwardHeaders, allow), sizeof(((ForwardHeaders *)0)->allow)},
                {"WWW-Authenticate", offsetof(ForwardHeaders, www_authenticate),
                        sizeof(((ForwardHeaders *)0)->www_authenticate)},
        };
        pthread_mutex_lock(&f->lock);
        if (n >= 5 && strncmp(line, "HTTP/", 5) == 0)
                f->headers = (ForwardHeaders){0}; /* a new response (after a 1xx): its own headers */
        else if (n <= 2 && (n == 0 || line[0] == '\r' || line[0] == '\n')) {
                /* The end of a response's headers: the final one unless it is a 1xx. A live
                 * answer's client hears of it now, before the first event. */
                long code = 0;
                /* NOLINTNEXTLINE(cppcoreguidelines-pro-type-vararg) */
                curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &code);
                if (code >= 200) {
                        headers_done(f, x->c);
                        wake_locked(f);
                }
        } else {
                for (size_t i = 0; i < ELEMENTSOF(relayed); i++) {
                        size_t k = strlen(relayed[i].name);
                        if (n > k && strncasecmp(line, relayed[i].name, k) == 0 && line[k] == ':') {
                                keep_header((char *)&f->headers + relayed[i].off, relayed[i].size,
                                        line + k + 1, n - k - 1);
                                break;
                        }
                }
        }
        pthread_mutex_unlock(&f->lock);
        return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata) {
        Xfer *x = userdata;
        Forward *f = x->f;
        size_t n = size * nmemb;
        pthread_mutex_lock(&f->lock);
        headers_done(f, x->c);
        while (!f->released && f->body.len - f->off >= FORWARD_BUFFER_MAX)
                pthread_cond_wait(&f->cond, &f->lock);
        if (f->released) {
                pthread_mutex_unlock(&f->lock);
                return 0; /* abandons the transfer */
        }
        if (f->off == f->body.len)
                f->body.len = f->off = 0;
        int r = buf_append(&f->body, data, n);
        if (r >= 0)
                wake_locked(f);
        pthread_mutex_unlock(&f->lock);
        return r < 0 ? 0 : n;
}

/* At least once a second: the transfer stops when the caller left or the client hung up. */
static int on_progress(void *userdata, _unused_ curl_off_t dltotal, _unused_ curl_off_t dlnow,
        _unused_ curl_off_t ultotal, _unused_ curl_off_t ulnow) {
        Forward *f = userdata;
        pthread_mutex_lock(&f->lock);
        bool gone = f->released;
        pthread_mutex_unlock(&f->lock);
        if (!gone && f->client_fd >= 0) {
                struct pollfd p = {.fd = f->client_fd, .events = POLLRDHUP};
                gone = poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
        }
        return gone ? 1 : 0;
}

static void *forward_main(void *arg) {
        Forward *f = arg;
        Xfer x = {.f = f, .c = curl_easy_init()};
        CURLcode rc = CURLE_OUT_OF_MEMORY;
        if (x.c) {
                /* NOLINTBEGIN(cppcoreguidelines-pro-type-vararg) */
                curl_easy_setopt(x.c, CURLOPT_URL, f->url);
                curl_easy_setopt(x.c, CURLOPT_PROTOCOLS_STR, "http,https");
                curl_easy_setopt(x.c, CURLOPT_NOSIGNAL, 1L);
                curl_easy_setopt(x.c, CURLOPT_CUSTOMREQUEST, f->method);
                if (strcmp(f->method, "HEAD") == 0)
                        curl_easy_setopt(x.c, CURLOPT_NOBODY, 1L);
                else if (f->req_body || strcmp(f->method, "POST") == 0 || strcmp(f->method, "PUT") == 0) {
                        /* A POST or PUT without a body still says Content-Length: 0. */
                        curl_easy_setopt(x.c, CURLOPT_POSTFIELDS, f->req_body ? f->req_body : "");
                        curl_easy_setopt(x.c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)f->req_body_len);
                }
                curl_easy_setopt(x.c, CURLOPT_HTTPHEADER, f->req_headers);
                curl_easy_setopt(x.c, CURLOPT_HEADERFUNCTION, on_header);
                curl_easy_setopt(x.c, CURLOPT_HEADERDATA, &x);
                curl_easy_setopt(x.c, CURLOPT_WRITEFUNCTION, on_body);
                curl_easy_setopt(x.c, CURLOPT_WRITEDATA, &x);
                curl_easy_setopt(x.c, CURLOPT_NOPROGRESS, 0L);
                curl_easy_setopt(x.c, CURLOPT_XFERINFOFUNCTION, on_progress);
                curl_easy_setopt(x.c, CURLOPT_XFERINFODATA, f);
                curl_easy_setopt(x.c, CURLOPT_TIMEOUT_MS, (long)f->timeout_ms);
                curl_easy_setopt(x.c, CURLOPT_CONNECTTIMEOUT_MS, (long)f->connect_timeout_ms);
                /* Compressed answers would need decoding to relay: ask for none. */
                curl_easy_setopt(x.c, CURLOPT_ACCEPT_ENCODING, NULL);
                /* NOLINTEND(cppcoreguidelines-pro-type-vararg) */
                rc = curl_easy_perform(x.c);
        }
        pthread_mutex_lock(&f->lock);
        if (rc == CURLE_OK) {
                headers_done(f, x.c);
                f->state = FORWARD_DONE;
        } else
                f->state = FORWARD_FAILED;
        wake_locked(f);
        pthread_mutex_unlock(&f->lock);
        curl_easy_cleanup(x.c);
        forward_unref(f);
        return NULL;
}

int forward_global_init(void) {
        return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void forward_global_cleanup(void) {
        curl_global_cleanup();
}

int forward_start(
        const ForwardRequest *fr, uint32_t max_inflight, ForwardWake wake, void *userdata, Forward **ret) {
        if (atomic_fetch_add(&inflight, 1) >= max_inflight) {
                atomic_fetch_sub(&inflight, 1);
                return -EBUSY;
        }
        Forward *f = calloc(1, sizeof *f);
        if (!f) {
                atomic_fetch_sub(&inflight, 1);
                return -ENOMEM;
        }
        pthread_mutex_init(&f->lock, NULL);
        pthread_cond_init(&f->cond, NULL);
        f->refs = 2;
        f->state = FORWARD_CONNECTING;
        f->waiting = true; /* the caller suspends its connection before starting */
        f->wake = wake;
        f->userdata = userdata;
        f->timeout_ms = fr->timeout_ms;
        f->connect_timeout_ms = fr->connect_timeout_ms;
        buf_init(&f->body, SIZE_MAX / 2);
        f->client_fd = fr->client_fd >= 0 ? fcntl(fr->client_fd, F_DUPFD_CLOEXEC, 3) : -1;
        f->url = strdup(fr->url);
        f->method = strdup(fr->method);
        bool ok = f->url && f->method;
        if (ok && fr->body && fr->body_len) {
                f->req_body = malloc(fr->body_len);
                ok = f->req_body != NULL;
                if (ok)
                        memcpy(f->req_body, fr->body, fr->body_len);
                f->req_body_len = fr->body_len;
        }
        for (const char *const *h = fr->headers; ok && *h; h++) {
                struct curl_slist *l = curl_slist_append(f->req_headers, *h);
                ok = l != NULL;
                if (ok)
                        f->req_headers = l;
        }
        pthread_t t;
        pthread_attr_t attr;
        int r = -ENOMEM;
        if (ok && pthread_attr_init(&attr) == 0) {
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                /* libcurl's easy transfer needs little stack; the default 8 MiB is address space
                 * a thousand forwards would not need. */
                pthread_attr_setstacksize(&attr, 256 * 1024);
                r = -pthread_create(&t, &attr, forward_main, f);
                pthread_attr_destroy(&attr);
        }
        if (r < 0) {
                forward_free(f);
                atomic_fetch_sub(&inflight, 1);
                return r;
        }
        *ret = f;
        return 0;
}

ForwardState forward_state(Forward *f, long *ret_status, ForwardHeaders *h) {
        pthread_mutex_lock(&f->lock);
        ForwardState s = f->state;
        if (ret_status)
                *ret_status = f->status;
        if (h)
                *h = f->headers;
        pthread_mutex_unlock(&f->lock);
        return s;
}

long forward_read(Forward *f, char *buf, size_t max, void (*suspend)(void *userdata), void *userdata) {
        long n;
        pthread_mutex_lock(&f->lock);
        if (f->off < f->body.len) {
                size_t k = MIN(max, f->body.len - f->off);
                memcpy(buf, f->body.data + f->off, k);
                f->off += k;
                pthread_cond_signal(&f->cond);
                n = (long)k;
        } else if (f->state == FORWARD_DONE)
                n = -EPIPE;
        else if (f->state == FORWARD_FAILED)
                n = -EIO;
        else {
                f->waiting = true;
                suspend(userdata);
                n = 0;
        }
        pthread_mutex_unlock(&f->lock);
        return n;
}

void forward_release(Forward *f) {
        if (!f)
                return;
        pthread_mutex_lock(&f->lock);
        f->released = true;
        pthread_cond_signal(&f->cond);
        pthread_mutex_unlock(&f->lock);
        forward_unref(f);
}
