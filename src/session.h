/* Sessions, the parts without I/O or processes: their ids (which name this server's node and
 * boot), the tombstones ended sessions leave, and the choice of which idle session a new one
 * may evict at capacity. The pool thread (pool-session.c) owns the sessions themselves; this
 * module is what it decides with, tested alone (tests/unit/test-session.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "<node>-<boot>-<random>": node in decimal (NODE_ID, up to 65535), boot 8 hex digits drawn at
 * start-up, random 32 hex digits (128 bits) from getrandom. URL-safe; clients treat it as
 * opaque. */
#define SESSION_BOOT_LEN 8
#define SESSION_RANDOM_LEN 32
#define SESSION_ID_MAX (5 + 1 + SESSION_BOOT_LEN + 1 + SESSION_RANDOM_LEN)

/* Ended sessions are remembered this long, at most this many (the oldest go first). */
#define TOMBSTONE_TTL_MS (3600ULL * 1000)
#define TOMBSTONES_MAX 4096
/* At capacity a new session may evict an idle one only if it has been idle this long. */
#define SESSION_EVICT_IDLE_MS (60ULL * 1000)

/* Why a session ended: the "reason" of a 410 SessionGone. */
typedef enum SessionEnd {
        SESSION_END_IDLE_TIMEOUT,
        SESSION_END_MAX_LIFETIME,
        SESSION_END_EVICTED,
        SESSION_END_DELETED,
        SESSION_END_MEMORY,
        SESSION_END_SERVER_RESTARTED,
        SESSION_END_SHUTDOWN, /* the server stopped; a later boot answers server_restarted */
        _SESSION_END_MAX,
} SessionEnd;

/* Its name in answers and metrics ("idle_timeout", ...). */
const char *session_end_name(SessionEnd e);

/* A fresh boot token (SESSION_BOOT_LEN hex digits and a NUL). Returns 0 or -errno. */
int session_boot_new(char boot[SESSION_BOOT_LEN + 1]);

/* A fresh id of this node and boot into buf (at least SESSION_ID_MAX + 1 bytes). Returns 0 or
 * -errno (getrandom). */
int session_id_new(uint32_t node, const char *boot, char *buf, size_t n);

typedef enum SessionIdKind {
        SESSION_ID_MALFORMED, /* not an id this server could have made: unknown */
        SESSION_ID_OTHER_NODE, /* another node's: unknown here */
        SESSION_ID_OLD_BOOT, /* this node's, from an earlier start: gone (server_restarted) */
        SESSION_ID_THIS_BOOT, /* this node and boot: look it up */
} SessionIdKind;

/* What id (len bytes, from a URL) is, for this node and boot. */
SessionIdKind session_id_classify(const char *id, size_t len, uint32_t node, const char *boot);

typedef struct Tombstone {
        char id[SESSION_ID_MAX + 1];
        int owner;
        SessionEnd reason;
        uint64_t ended_ms;
} Tombstone;

/* A ring of the last TOMBSTONES_MAX ended sessions. */
typedef struct Tombstones {
        Tombstone *ring;
        size_t cap, next, n;
} Tombstones;

int tombstones_init(Tombstones *t, size_t cap); /* 0 or -ENOMEM */
void tombstones_free(Tombstones *t);
void tombstones_add(Tombstones *t, const char *id, int owner, SessionEnd reason, uint64_t now_ms);
/* The tombstone of id if it is there and younger than TOMBSTONE_TTL_MS, else NULL. */
const Tombstone *tombstones_find(const Tombstones *t, const char *id, uint64_t now_ms);

/* What eviction looks at of each live session. */
typedef struct SessionView {
        bool idle; /* idle now (not busy, starting or ending) */
        uint64_t last_active_ms;
} SessionView;

/* The index of the least recently active idle session idle for at least min_idle_ms, or -1. */
int session_pick_victim(const SessionView *v, size_t n, uint64_t now_ms, uint64_t min_idle_ms);
