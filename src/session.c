/* Session ids, tombstones and the eviction choice: see session.h. Pure but for getrandom. */
#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static const char *const end_names[_SESSION_END_MAX] = {
        [SESSION_END_IDLE_TIMEOUT] = "idle_timeout",
        [SESSION_END_MAX_LIFETIME] = "max_lifetime",
        [SESSION_END_EVICTED] = "evicted",
        [SESSION_END_DELETED] = "deleted",
        [SESSION_END_MEMORY] = "memory",
        [SESSION_END_SERVER_RESTARTED] = "server_restarted",
        [SESSION_END_SHUTDOWN] = "server_restarted",
};

const char *session_end_name(SessionEnd e) {
        return (unsigned)e < _SESSION_END_MAX ? end_names[e] : "deleted";
}

/* n random bytes as 2n lowercase hex digits and a NUL. */
static int random_hex(char *out, size_t nbytes) {
        unsigned char r[32];
        if (nbytes > sizeof r)
                return -EINVAL;
        size_t got = 0;
        while (got < nbytes) {
                ssize_t k = getrandom(r + got, nbytes - got, 0);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                got += (size_t)k;
        }
        for (size_t i = 0; i < nbytes; i++)
                snprintf(out + 2 * i, 3, "%02x", r[i]);
        return 0;
}

int session_boot_new(char boot[SESSION_BOOT_LEN + 1]) {
        return random_hex(boot, SESSION_BOOT_LEN / 2);
}

int session_id_new(uint32_t node, const char *boot, char *buf, size_t n) {
        char rnd[SESSION_RANDOM_LEN + 1];
        int r = random_hex(rnd, SESSION_RANDOM_LEN / 2);
        if (r < 0)
                return r;
        int k = snprintf(buf, n, "%u-%s-%s", node, boot, rnd);
        return k < 0 || (size_t)k >= n ? -ENAMETOOLONG : 0;
}

static bool is_hex(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

SessionIdKind session_id_classify(const char *id, size_t len, uint32_t node, const char *boot) {
        /* The node: 1 to 5 digits, no leading zero but "0" itself, at most 65535. */
        size_t i = 0;
        uint32_t v = 0;
        while (i < len && i < 6 && id[i] >= '0' && id[i] <= '9')
                v = v * 10 + (uint32_t)(id[i++] - '0');
        if (i == 0 || i > 5 || v > 65535 || (i > 1 && id[0] == '0'))
                return SESSION_ID_MALFORMED;
        if (len != i + 1 + SESSION_BOOT_LEN + 1 + SESSION_RANDOM_LEN || id[i] != '-' ||
                id[i + 1 + SESSION_BOOT_LEN] != '-' || !is_hex(id + i + 1, SESSION_BOOT_LEN) ||
                !is_hex(id + i + 2 + SESSION_BOOT_LEN, SESSION_RANDOM_LEN))
                return SESSION_ID_MALFORMED;
        if (v != node)
                return SESSION_ID_OTHER_NODE;
        if (memcmp(id + i + 1, boot, SESSION_BOOT_LEN) != 0)
                return SESSION_ID_OLD_BOOT;
        return SESSION_ID_THIS_BOOT;
}

int tombstones_init(Tombstones *t, size_t cap) {
        *t = (Tombstones){0};
        if (cap == 0)
                return 0;
        t->ring = calloc(cap, sizeof *t->ring);
        if (!t->ring)
                return -ENOMEM;
        t->cap = cap;
        return 0;
}

void tombstones_free(Tombstones *t) {
        free(t->ring);
        *t = (Tombstones){0};
}

void tombstones_add(Tombstones *t, const char *id, int owner, SessionEnd reason, uint64_t now_ms) {
        if (t->cap == 0)
                return;
        Tombstone *s = &t->ring[t->next];
        snprintf(s->id, sizeof s->id, "%s", id);
        s->owner = owner;
        s->reason = reason;
        s->ended_ms = now_ms;
        t->next = (t->next + 1) % t->cap;
        if (t->n < t->cap)
                t->n++;
}

const Tombstone *tombstones_find(const Tombstones *t, const char *id, uint64_t now_ms) {
        /* Newest first: an id is never reused, but the newest is the one that counts. */
        for (size_t k = 0; k < t->n; k++) {
                const Tombstone *s = &t->ring[(t->next + t->cap - 1 - k) % t->cap];
                if (now_ms - s->ended_ms >= TOMBSTONE_TTL_MS)
                        return NULL; /* older ones are older still */
                if (strcmp(s->id, id) == 0)
                        return s;
        }
        return NULL;
}

int session_pick_victim(const SessionView *v, size_t n, uint64_t now_ms, uint64_t min_idle_ms) {
        int best = -1;
        for (size_t i = 0; i < n; i++) {
                if (!v[i].idle || now_ms < v[i].last_active_ms || now_ms - v[i].last_active_ms < min_idle_ms)
                        continue;
                if (best < 0 || v[i].last_active_ms < v[(size_t)best].last_active_ms)
                        best = (int)i;
        }
        return best;
}
