/* Owner forwarding: a session lives in one instance's memory, and its id names that instance
 * (session.h: "<node>-<boot>-<random>"). An instance that gets a request for another node's
 * session passes it to the owner, at the address PEER_URL gives for the node, with libcurl, and
 * relays the owner's answer as it comes (a live cell's events included). The pure parts (the
 * owner of an id, the URL of a node, the verdict on a request's peer headers) are tested alone
 * (tests/unit/test-forward.c); the transfer runs in a thread of its own per request, bounded by
 * MAX_FORWARDS, and hands bytes to http.c through a small locked buffer.
 *
 * Peer requests carry two headers: FORWARD_TOKEN_HEADER (PEER_TOKEN, shared by the instances)
 * and FORWARD_HOP_HEADER (the forwarding node). An owner refuses a request that has either
 * header without the right token, and never forwards a request that was already forwarded: a
 * PEER_URL that points a node at the wrong instance ends in a clear 508, not a loop. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FORWARD_TOKEN_HEADER "X-Snakebox-Peer-Token"
#define FORWARD_HOP_HEADER "X-Snakebox-Forwarded-By"
/* A relayed answer is read from the owner at most this far ahead of the client. */
#define FORWARD_BUFFER_MAX (256 * 1024)
#define FORWARD_URL_MAX 2048

/* The node named by a session id's prefix (len bytes), or -EINVAL when id does not start with
 * one ("<1 to 5 digits, no leading zero>-", at most 65535). */
int forward_owner(const char *id, size_t len);

/* The URL of node's instance: tmpl with every "{node}" replaced by the number, then path (which
 * starts with '/', decoded: it is percent-encoded again but for unreserved characters and '/').
 * Returns 0, -EINVAL (no "{node}" in tmpl, or path not absolute), or
 * -ENAMETOOLONG when it does not fit n bytes. */
int forward_url(const char *tmpl, uint32_t node, const char *path, char *buf, size_t n);

/* Whether PEER_URL is acceptable: http:// or https://, at least one "{node}", printable, no
 * spaces. */
bool forward_url_template_ok(const char *tmpl);

typedef enum ForwardInbound {
        FORWARD_CLIENT, /* no peer header: an ordinary request */
        FORWARD_PEER, /* a peer's, with the right token: serve it here, never forward it again */
        FORWARD_BAD_TOKEN, /* a peer header without the right token (or none configured) */
} ForwardInbound;

/* Judges a request's peer headers (NULL when absent) against PEER_TOKEN (empty: none, so
 * every peer request is refused). Compares the token in constant time. */
ForwardInbound forward_inbound(const char *token_header, const char *hop_header, const char *peer_token);

/* ---- the transfer ---- */

typedef struct Forward Forward;

typedef enum ForwardState {
        FORWARD_CONNECTING, /* no answer's headers yet */
        FORWARD_HEADERS, /* status and headers known; body bytes may follow */
        FORWARD_DONE, /* the whole answer is in the buffer */
        FORWARD_FAILED, /* the owner could not be reached, or the transfer broke */
} ForwardState;

/* Answer headers relayed to the client (the rest are the relaying server's own). */
typedef struct ForwardHeaders {
        char content_type[128];
        char retry_after[16];
        char location[256];
        char content_disposition[512];
        char cache_control[64];
        char allow[64];
        char www_authenticate[128];
} ForwardHeaders;

typedef struct ForwardRequest {
        const char *url;
        const char *method;
        const char *const *headers; /* "Name: value" lines, NULL-terminated; copied */
        const char *body; /* copied */
        size_t body_len;
        uint32_t timeout_ms; /* the whole transfer */
        uint32_t connect_timeout_ms;
        /* The client's socket: when it hangs up, the transfer is abandoned, so the owner sees
         * its client leave too (and interrupts a cell). -1: not watched. Duplicated. */
        int client_fd;
} ForwardRequest;

/* Called from the transfer's thread whenever there is something new (headers, bytes, the end,
 * a failure), with Forward's lock held: it must only wake the connection, not call back in. Not
 * called after forward_release. */
typedef void (*ForwardWake)(void *userdata);

/* Libcurl's global set-up, before any thread starts. Returns 0 or -EIO. */
int forward_global_init(void);
void forward_global_cleanup(void);

/* Starts the transfer in a thread of its own. At most max_inflight run at once (-EBUSY beyond).
 * Returns 0 and sets *ret (the caller's reference, given up with forward_release), or -errno.
 * Does not log. */
int forward_start(
        const ForwardRequest *fr, uint32_t max_inflight, ForwardWake wake, void *userdata, Forward **ret);

/* A snapshot of the transfer: its state, the owner's status (when HEADERS or later), and the
 * relayed headers (copied into *h when not NULL). */
ForwardState forward_state(Forward *f, long *ret_status, ForwardHeaders *h);

/* Takes up to max bytes of the answer's body into buf. Returns how many (> 0); 0 when none are
 * there yet, after calling suspend(userdata) under the lock, so that the wake for the next bytes
 * cannot come between "none" and the suspension (it comes exactly once); -EPIPE at the end;
 * -EIO when the transfer broke after its headers. */
long forward_read(Forward *f, char *buf, size_t max, void (*suspend)(void *userdata), void *userdata);

/* Gives up the caller's reference: no more wake calls; a transfer still going is abandoned
 * (its connection to the owner closed). NULL is allowed. */
void forward_release(Forward *f);
