/* Configuration. One table below lists every key with its type, default, range and help; the
 * `.env` reader, the environment reader, the start-up summary and `.env.example` are all loops
 * over that table, so a key added there is parsed, checked, documented and shown everywhere.
 * Values are checked strictly, because a typo here (a "5O" for a memory limit, a hex number, a
 * negative id) silently turning into some other limit is worse than refusing to start: every
 * bad value is an error naming the key, the value, where it came from and what is allowed.
 * Precedence is default < `.env` < environment. Nothing here logs; messages go to the caller. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "forward.h"
#include "pylibs.h"
#include "util/macro.h"
#include "util/str.h"

/* `.env` is a few dozen lines; the cap bounds what a stray `.env -> /dev/zero` or a huge file
 * can cost before the server even starts. */
#define DOTENV_MAX (64 * 1024)
#define MIB (UINT64_C(1) << 20)
/* Longest part of a value quoted back in a message; the rest is elided. */
#define SHOWN_VALUE_MAX 64
/* pylibs_foreach's token limit. */
#define LIB_NAME_MAX 127

typedef enum KeyType {
        KEY_COUNT, /* a plain number */
        KEY_SECONDS, /* a number of seconds */
        KEY_BYTES, /* a number of bytes */
        KEY_MEGABYTES, /* written in megabytes, stored in bytes */
        KEY_STRING, /* a char array, checked and normalized by Key.check */
} KeyType;

typedef struct Key {
        const char *name;
        KeyType type;
        size_t offset;
        size_t size; /* of the field: 4 or 8 for numbers (uint32_t or uint64_t) */
        /* Numbers, in the unit the user writes. */
        uint64_t def, min, max;
        /* Strings: the default, and a check that writes the value to be stored into buf (of the
         * field's size) and returns 0, -EINVAL, or -ENAMETOOLONG if it does not fit. */
        const char *def_str;
        int (*check)(const char *value, char *buf, size_t size);
        const char *allowed; /* strings: what check accepts, worded to follow "expected" */
        const char *help;
} Key;

static int check_libs(const char *value, char *buf, size_t size);
static int check_host(const char *value, char *buf, size_t size);
static int check_cache_dir(const char *value, char *buf, size_t size);
static int check_keys(const char *value, char *buf, size_t size);
static int check_log_format(const char *value, char *buf, size_t size);
static int check_origins(const char *value, char *buf, size_t size);
static int check_uid_range(const char *value, char *buf, size_t size);
static int check_peer_url(const char *value, char *buf, size_t size);
static int check_peer_token(const char *value, char *buf, size_t size);

#define FIELD_SIZE(f) sizeof(((Config *)0)->f)
#define SCALE(t) ((t) == KEY_MEGABYTES ? MIB : 1)
/* Evaluates to 0; fails the build unless cond holds. */
#define BUILD_CHECK(cond, msg)             \
        (0 * sizeof(struct {               \
                _Static_assert(cond, msg); \
                char c_;                   \
        }))

/* The table macros take member names and string literals that are pasted or concatenated, which
 * parentheses would break. NOLINTBEGIN(bugprone-macro-parentheses) */

/* A number key. The build fails if the field is not a uint32_t/uint64_t, if the default is out
 * of range, or if the maximum (in bytes, for megabytes) does not fit the field. */
#define NUM(key, t, f, d, lo, hi, h)                                                                      \
        {                                                                                                 \
                .name = key, .type = t, .size = FIELD_SIZE(f), .def = d, .min = lo, .max = hi, .help = h, \
                .offset = offsetof(Config, f) +                                                           \
                          BUILD_CHECK((FIELD_SIZE(f) == 4 || FIELD_SIZE(f) == 8) && (lo) <= (d) &&        \
                                              (d) <= (hi) &&                                              \
                                              SCALE(t) * (uint64_t)(hi) <=                                \
                                                      (FIELD_SIZE(f) == 4 ? UINT32_MAX : UINT64_MAX),     \
                                  key " does not fit its field or its default is out of range"),          \
        }

#define STR(key, f, d, fn, allow, h)                                                                 \
        {                                                                                            \
                .name = key, .type = KEY_STRING, .size = FIELD_SIZE(f), .def_str = d, .check = fn,   \
                .allowed = allow, .help = h,                                                         \
                .offset = offsetof(Config, f) +                                                      \
                          BUILD_CHECK(FIELD_SIZE(f) <= CONFIG_STR_MAX && sizeof(d) <= FIELD_SIZE(f), \
                                  key " is not a char array of at most CONFIG_STR_MAX bytes"),       \
        }
/* NOLINTEND(bugprone-macro-parentheses) */

static const Key keys[] = {
        NUM("EXECUTION_TIMEOUT", KEY_SECONDS, timeout_sec, 30, 1, 3600,
                "Wall-clock seconds a run may take; a run still going then is killed."),
        STR("PREINSTALL_LIBS", preinstall_libs, "pandas numpy matplotlib scikit-learn", check_libs,
                "package names (letters, digits, '.', '_', '-'; 127 bytes at most) split by spaces, tabs or "
                "commas, or empty",
                "Python packages imported once at start-up, so runs do not pay for the import."),
        STR("HOST", host, "127.0.0.1", check_host,
                "an IPv4 or IPv6 address (127.0.0.1, ::1, 0.0.0.0) or localhost",
                "Address the HTTP server listens on; 0.0.0.0 or :: exposes it to the network."),
        NUM("PORT", KEY_COUNT, port, 8080, 0, 65535,
                "TCP port the HTTP server listens on; 0 picks a free port."),
        NUM("MAX_CONCURRENCY", KEY_COUNT, max_concurrency, 16, 1, 1024,
                "Runs executing at once; further requests wait in the queue."),
        NUM("QUEUE_SIZE", KEY_COUNT, queue_size, 64, 0, 100000,
                "Requests that may wait for a sandbox beyond MAX_CONCURRENCY; more are answered 503."),
        NUM("QUEUE_TIMEOUT", KEY_SECONDS, queue_timeout_sec, 60, 1, 3600,
                "Seconds a request may wait in the queue before it is answered 503."),
        NUM("POOL_SIZE", KEY_COUNT, pool_size, 4, 0, 256,
                "Sealed sandboxes kept ready for the next request; 0 prepares one per request."),
        NUM("LEAN_POOL_SIZE", KEY_COUNT, lean_pool_size, 4, 0, 256,
                "Sealed sandboxes of the lean zygote (standard library only) kept ready; code that names "
                "no module of PREINSTALL_LIBS runs there, much faster. 0 runs everything in the full "
                "zygote."),
        NUM("MEMORY_LIMIT_MB", KEY_MEGABYTES, memory_limit_bytes, 1024, 16, 1048576,
                "Memory of one run in megabytes, its tmpfs files included (cgroup memory.max, else "
                "sampled with RLIMIT_AS per process)."),
        NUM("MAX_PROCESSES", KEY_COUNT, max_processes, 256, 1, 4096,
                "Processes and threads one run may have at once (every thread counts: a pids cgroup or "
                "RLIMIT_NPROC counts tasks)."),
        NUM("CPU_LIMIT_PERCENT", KEY_COUNT, cpu_limit_percent, 100, 1, 102400,
                "CPU one run may use, in percent of one core (100 = one core, 50 = half a core); "
                "enforced by the cpu cgroup's quota, where there is one."),
        NUM("TMP_SIZE_MB", KEY_MEGABYTES, tmp_size_bytes, 512, 1, 1048576,
                "Megabytes of the run's tmpfs (/tmp, the working directory and /dev/shm together); what "
                "it holds counts against MEMORY_LIMIT_MB too."),
        NUM("MAX_FILE_SIZE_MB", KEY_MEGABYTES, max_file_size_bytes, 512, 1, 1048576,
                "Largest file a run may write, in megabytes (RLIMIT_FSIZE)."),
        NUM("PREFAULT_MB", KEY_MEGABYTES, prefault_bytes, 16, 0, 1024,
                "Megabytes of the zygote's memory each waiting sandbox copies before it is used: "
                "the pages typical runs write, learned at start-up. More is faster and costs that much "
                "memory per ready sandbox; 0 turns it off."),
        NUM("ZYGOTE_MAX_SPAWNS", KEY_COUNT, zygote_max_spawns, 10000, 0, 1000000000,
                "Sandboxes one zygote makes before a fresh one replaces it (new hash secret, new address "
                "layout; runs are not interrupted); 0 = no limit."),
        NUM("ZYGOTE_MAX_AGE", KEY_SECONDS, zygote_max_age_sec, 3600, 0, 2592000,
                "Seconds a zygote serves before a fresh one replaces it, as ZYGOTE_MAX_SPAWNS; 0 = no "
                "limit."),
        NUM("MAX_OPEN_FILES", KEY_COUNT, max_open_files, 256, 16, 65536,
                "Open files of one process of a run (RLIMIT_NOFILE)."),
        NUM("MAX_OUTPUT_BYTES", KEY_BYTES, max_output_bytes, 1048576, 1024, 1073741824,
                "Bytes of stdout and stderr kept from a run; a run that writes more is stopped."),
        NUM("MAX_REQUEST_BYTES", KEY_BYTES, max_request_bytes, 1048576, 1024, 1073741824,
                "Largest request body in bytes; a larger one is answered 413."),
        NUM("MAX_FILES", KEY_COUNT, max_files, 64, 0, 10000, "Files one request may upload (\"files\")."),
        NUM("MAX_FILES_BYTES", KEY_BYTES, max_files_bytes, 8388608, 0, 1073741824,
                "Bytes, decoded, of all the files one request uploads."),
        NUM("MAX_RETURN_FILE_BYTES", KEY_BYTES, max_return_file_bytes, 1048576, 0, 1073741824,
                "Largest file returned with its content (\"return_files\"); a larger one is listed as "
                "truncated."),
        NUM("MAX_RETURN_BYTES", KEY_BYTES, max_return_bytes, 8388608, 0, 1073741824,
                "Bytes of all the files one answer returns; files past it are listed as truncated."),
        NUM("MAX_RETURN_FILES", KEY_COUNT, max_return_files, 256, 0, 100000,
                "Files one answer lists (\"return_files\"); more are counted in files_dropped."),
        NUM("MAX_IMAGES", KEY_COUNT, max_images, 16, 0, 1000,
                "Matplotlib figures one answer returns; more are counted in images_dropped."),
        NUM("MAX_IMAGE_BYTES", KEY_BYTES, max_image_bytes, 4194304, 1024, 268435456,
                "Largest rendered figure returned; a larger one is counted in images_dropped."),
        NUM("MAX_RESULT_BYTES", KEY_BYTES, max_result_bytes, 65536, 1024, 16777216,
                "Characters kept of the last expression's value (each of text/plain and text/html)."),
        NUM("SANDBOX_UID", KEY_COUNT, sandbox_uid, 65534, 1, 4294967294,
                "Host user id runs execute as when the server runs as root (65534 is nobody)."),
        NUM("SANDBOX_GID", KEY_COUNT, sandbox_gid, 65534, 1, 4294967294,
                "Host group id runs execute as when the server runs as root (65534 is nogroup)."),
        STR("SANDBOX_UID_RANGE", sandbox_uid_range, "auto", check_uid_range,
                "FIRST-LAST (host ids, 1 to 4294967294), auto or off",
                "Host uids given one per concurrent sandbox when the server runs as root, so runs do not "
                "share per-user kernel quotas (inotify, processes, pipe buffers); a run's gid is the same "
                "number. auto: 1879048192-1879113727, or SANDBOX_UID/SANDBOX_GID for every run when either "
                "was changed; off: SANDBOX_UID/SANDBOX_GID for every run. Must hold 2 x (POOL_SIZE + "
                "LEAN_POOL_SIZE + MAX_CONCURRENCY) ids."),
        STR("CACHE_DIR", cache_dir, "", check_cache_dir,
                "an absolute path without newlines or control characters, or nothing for automatic",
                "Directory for matplotlib's font cache; empty picks one automatically."),
        STR("API_KEYS", api_keys, "", check_keys, "keys separated by commas, or nothing",
                "API keys (comma-separated). When this or API_KEYS_FILE is set, every /api/ request needs "
                "'Authorization: Bearer <key>'."),
        STR("API_KEYS_FILE", api_keys_file, "", check_cache_dir,
                "an absolute path without control characters, or nothing",
                "A file of API keys, one per line ('#' starts a comment)."),
        NUM("AUTH_HEALTH", KEY_COUNT, auth_health, 0, 0, 1,
                "1: /health and /metrics need an API key too; 0: they are open."),
        STR("LOG_FORMAT", log_format, "text", check_log_format, "text or json",
                "Access log format on stderr: one line per request."),
        STR("CORS_ORIGINS", cors_origins, "", check_origins,
                "origins such as https://app.example.com separated by commas, or nothing",
                "Browser origins allowed to call the API (CORS); nothing allows none."),
        NUM("PLAYGROUND", KEY_COUNT, playground, 1, 0, 1,
                "1: GET /playground serves the notebook page (cells over a session, built into the "
                "binary) and GET / redirects there; 0: both are 404."),
        STR("MCP_ALLOWED_ORIGINS", mcp_allowed_origins, "", check_origins,
                "origins such as https://app.example.com separated by commas, or nothing",
                "Browser origins /mcp accepts; any other Origin gets 403 (DNS-rebinding protection)."),
        NUM("SHUTDOWN_GRACE", KEY_SECONDS, shutdown_grace_sec, 10, 0, 3600,
                "Seconds runs in flight may finish after SIGTERM or SIGINT before they are killed."),
        NUM("MAX_CONNECTIONS_PER_IP", KEY_COUNT, max_connections_per_ip, 128, 0, 1024,
                "Connections one client address may hold at once (the server takes 1024 in all); more are "
                "closed at once. Behind a reverse proxy every client has the proxy's address: raise it "
                "or set 0 (no limit) and limit clients at the proxy."),
        NUM("HEADER_TIMEOUT", KEY_SECONDS, header_timeout_sec, 30, 1, 300,
                "Seconds a connection has for a request's line and headers, counted from when it opened "
                "or its last answer was sent (so also how long a kept-alive connection may idle); then "
                "it is closed. Bodies and runs are not subject to it."),
        NUM("MAX_SESSIONS", KEY_COUNT, max_sessions, 8, 0, 1024,
                "Sessions (POST /api/sessions: a live interpreter kept across requests) at once; 0 "
                "disables sessions. They never take sandboxes or concurrency from /api/execute."),
        NUM("MAX_SESSIONS_PER_KEY", KEY_COUNT, max_sessions_per_key, 4, 1, 1024,
                "Sessions one API key may hold at once; more are answered 429. Without API keys only "
                "MAX_SESSIONS applies."),
        NUM("SESSION_IDLE_TIMEOUT", KEY_SECONDS, session_idle_timeout_sec, 600, 1, 86400,
                "Seconds a session may stay idle before it ends; the default and the largest "
                "\"idle_timeout\" a session may ask for."),
        NUM("SESSION_MAX_LIFETIME", KEY_SECONDS, session_max_lifetime_sec, 3600, 1, 604800,
                "Seconds a session may live in all; the default and the largest \"max_lifetime\"."),
        NUM("SESSION_MEMORY_MB", KEY_MEGABYTES, session_memory_bytes, 1024, 16, 1048576,
                "Memory of one session in megabytes, its files included; the default and the largest "
                "\"memory_mb\". Without a memory cgroup it is also capped by MEMORY_LIMIT_MB (RLIMIT_AS)."),
        NUM("SESSION_FILES_MB", KEY_MEGABYTES, session_files_bytes, 512, 1, 1048576,
                "Megabytes of a session's tmpfs (/work, /tmp and /dev/shm together), which persists "
                "between its cells; what it holds counts against the session's memory too."),
        NUM("INTERRUPT_GRACE", KEY_SECONDS, interrupt_grace_sec, 2, 0, 60,
                "Seconds a session's cell has to stop after an interrupt (SIGINT, KeyboardInterrupt) "
                "before its interpreter is killed and replaced (its variables are lost)."),
        NUM("NODE_ID", KEY_COUNT, node_id, 0, 0, 65535,
                "This server's number in session ids (<node>-<boot>-<random>), for routing sessions "
                "when several servers share a name; ids of another node are unknown here."),
        STR("PEER_URL", peer_url, "", check_peer_url,
                "an http:// or https:// URL with {node} in it (no spaces), or nothing",
                "Where another node's instance answers, with {node} for its NODE_ID (e.g. "
                "http://snakebox-{node}.snakebox-hl:8080): a request for a session of another node is "
                "forwarded there and its answer relayed. Nothing: such a request is answered 404. Needs "
                "PEER_TOKEN."),
        STR("PEER_TOKEN", peer_token, "", check_peer_token,
                "16 to 255 printable characters without spaces, or nothing",
                "A secret shared by the instances: forwarded requests carry it, and a request that says "
                "it was forwarded without it is refused (403). Nothing: forwarded requests are refused."),
        NUM("MAX_FORWARDS", KEY_COUNT, max_forwards, 256, 1, 1024,
                "Requests this server forwards to other nodes at once (a thread each); more are answered "
                "503 with Retry-After."),
};

_printf_(3, 0) static int vfail(char **ret_error, int r, const char *fmt, va_list ap) {
        char *msg;

        if (!ret_error)
                return r;
        if (vasprintf(&msg, fmt, ap) < 0) {
                *ret_error = NULL;
                return -ENOMEM;
        }
        *ret_error = msg;
        return r;
}

/* Sets *ret_error (if not NULL) to the formatted message. Returns -EINVAL, or -ENOMEM with
 * *ret_error NULL if the message could not be allocated. */
_printf_(2, 3) static int fail(char **ret_error, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vfail(ret_error, -EINVAL, fmt, ap);
        va_end(ap);
        return r;
}

/* Like fail(), but returns `cause` (a negative errno) rather than -EINVAL. */
_printf_(3, 4) static int fail_errno(char **ret_error, int cause, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vfail(ret_error, cause, fmt, ap);
        va_end(ap);
        return r;
}

/* Writes `value` for a message: C-style escapes for quotes, backslashes and anything not
 * printable ASCII (the message ends up in a terminal or a log), elided after SHOWN_VALUE_MAX. */
static void show_value(const char *value, char out[static SHOWN_VALUE_MAX * 4 + 4]) {
        size_t i, o = 0;

        for (i = 0; value[i] && i < SHOWN_VALUE_MAX; i++) {
                unsigned char ch = (unsigned char)value[i];

                if (ch == '"' || ch == '\\') {
                        out[o++] = '\\';
                        out[o++] = (char)ch;
                } else if (ch == '\n') {
                        out[o++] = '\\';
                        out[o++] = 'n';
                } else if (ch < 0x20 || ch >= 0x7f) {
                        static const char hex[] = "0123456789abcdef";

                        out[o++] = '\\';
                        out[o++] = 'x';
                        out[o++] = hex[ch >> 4];
                        out[o++] = hex[ch & 0xf];
                } else
                        out[o++] = (char)ch;
        }
        if (value[i]) {
                memcpy(out + o, "...", 3);
                o += 3;
        }
        out[o] = '\0';
}

/* The error for a bad value: `KEY="value" (from ORIGIN line N): expected WHAT`. line 0 means
 * the value came from the environment. */
_printf_(6, 7) static int fail_value(char **ret_error, const Key *k, const char *value, const char *origin,
        unsigned line, const char *fmt, ...) {
        char shown[SHOWN_VALUE_MAX * 4 + 4];
        _cleanup_free_ char *what = NULL;
        va_list ap;
        int r;

        if (!ret_error)
                return -EINVAL;
        va_start(ap, fmt);
        r = vasprintf(&what, fmt, ap);
        va_end(ap);
        if (r < 0) {
                what = NULL; /* undefined after a failed vasprintf */
                *ret_error = NULL;
                return -ENOMEM;
        }

        show_value(value, shown);
        if (line == 0)
                return fail(
                        ret_error, "%s=\"%s\" (from the environment): expected %s", k->name, shown, what);
        return fail(
                ret_error, "%s=\"%s\" (from %s line %u): expected %s", k->name, shown, origin, line, what);
}

/* The unit a number key is written in, or NULL for a plain count. */
static const char *unit_name(KeyType t) {
        switch (t) {
        case KEY_SECONDS:
                return "seconds";
        case KEY_BYTES:
                return "bytes";
        case KEY_MEGABYTES:
                return "megabytes";
        default:
                return NULL;
        }
}

static bool is_blank(char ch) {
        return ch == ' ' || ch == '\t';
}

/* Parses a whole decimal number: digits only, surrounding spaces and tabs allowed. No sign, no
 * base prefix, no trailing junk. Returns 0 and sets *ret, or -EINVAL (also on overflow). */
static int parse_number(const char *s, uint64_t *ret) {
        uint64_t v = 0;
        bool any = false;

        while (is_blank(*s))
                s++;
        for (; *s >= '0' && *s <= '9'; s++) {
                unsigned d = (unsigned)(*s - '0');

                if (v > (UINT64_MAX - d) / 10)
                        return -EINVAL;
                v = v * 10 + d;
                any = true;
        }
        while (is_blank(*s))
                s++;
        if (!any || *s)
                return -EINVAL;
        *ret = v;
        return 0;
}

static void *field_of(Config *c, const Key *k) {
        return (char *)c + k->offset;
}

static uint64_t get_number(const Config *c, const Key *k) {
        const char *field = (const char *)c + k->offset;
        uint32_t v32;
        uint64_t v64;

        if (k->size == sizeof(v32)) {
                memcpy(&v32, field, sizeof(v32));
                return v32;
        }
        memcpy(&v64, field, sizeof(v64));
        return v64;
}

static void set_number(Config *c, const Key *k, uint64_t v) {
        uint32_t v32 = (uint32_t)v;

        /* The table's build checks guarantee that max * scale fits the field. */
        if (k->size == sizeof(v32))
                memcpy(field_of(c, k), &v32, sizeof(v32));
        else
                memcpy(field_of(c, k), &v, sizeof(v));
}

/* Stores a checked string; the rest of the array is zeroed so that equal configs compare equal
 * byte for byte. */
static void set_string(Config *c, const Key *k, const char *s) {
        char *field = field_of(c, k);

        memset(field, 0, k->size);
        /* NUL-terminated by the memset; s was checked to fit. */
        memcpy(field, s, strlen(s)); // NOLINT(bugprone-not-null-terminated-result)
}

typedef struct LibList {
        char *buf;
        size_t size, len;
} LibList;

static int append_lib(const char *token, void *userdata) {
        LibList *l = userdata;
        char module[LIB_NAME_MAX + 1];
        size_t n = strlen(token);
        int r;

        /* pylibs_module checks the name; the module name itself is not needed here. */
        r = pylibs_module(token, module, sizeof(module));
        if (r < 0)
                return -EINVAL;
        if (l->len + (l->len > 0) + n >= l->size)
                return -ENOBUFS; /* not -ENAMETOOLONG, which pylibs_foreach returns for a long name */
        if (l->len > 0)
                l->buf[l->len++] = ' ';
        memcpy(l->buf + l->len, token, n + 1);
        l->len += n;
        return 0;
}

/* PREINSTALL_LIBS: checks each name and stores the list with single spaces, whatever the user
 * separated it with, so later readers see one canonical form. */
static int check_libs(const char *value, char *buf, size_t size) {
        LibList l = {.buf = buf, .size = size};
        int r;

        if (size == 0)
                return -ENAMETOOLONG;
        buf[0] = '\0';
        r = pylibs_foreach(value, append_lib, &l);
        if (r == -ENOBUFS)
                return -ENAMETOOLONG;
        return r < 0 ? -EINVAL : 0;
}

/* HOST: an address literal, so that listening never depends on name resolution. "localhost" is
 * the one name accepted, since it is what people write. */
static int check_host(const char *value, char *buf, size_t size) {
        struct in6_addr addr;

        if (strcasecmp(value, "localhost") == 0)
                value = "127.0.0.1";
        else if (inet_pton(AF_INET, value, &addr) != 1 && inet_pton(AF_INET6, value, &addr) != 1)
                return -EINVAL;
        return str_copy(buf, size, value);
}

/* CACHE_DIR: absolute, because the zygote may not run in the server's working directory; no
 * control characters, because the path is written into environment lines and logs. */
/* Keys: printable, no spaces inside a key; the list is stored as given. */
static int check_keys(const char *value, char *buf, size_t size) {
        for (const char *p = value; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        return -EINVAL;
        return str_copy(buf, size, value);
}

static int check_log_format(const char *value, char *buf, size_t size) {
        if (strcmp(value, "text") != 0 && strcmp(value, "json") != 0)
                return -EINVAL;
        return str_copy(buf, size, value);
}

static int check_peer_url(const char *value, char *buf, size_t size) {
        if (value[0] && !forward_url_template_ok(value))
                return -EINVAL;
        return str_copy(buf, size, value);
}

/* Long enough not to be guessed; printable because it travels in a header. */
static int check_peer_token(const char *value, char *buf, size_t size) {
        size_t n = strlen(value);
        if (n && (n < 16 || n > 255))
                return -EINVAL;
        for (const char *p = value; *p; p++)
                if ((unsigned char)*p <= 0x20 || *p == 0x7f)
                        return -EINVAL;
        return str_copy(buf, size, value);
}

/* "scheme://host[:port]" entries, comma-separated; a wildcard is refused on purpose. */
static int check_origins(const char *value, char *buf, size_t size) {
        const char *p = value;
        while (*p) {
                while (*p == ' ' || *p == ',')
                        p++;
                if (!*p)
                        break;
                size_t n = strcspn(p, ", ");
                if (!((n > 7 && strncmp(p, "http://", 7) == 0) || (n > 8 && strncmp(p, "https://", 8) == 0)))
                        return -EINVAL;
                const char *host = strstr(p, "://") + 3;
                for (const char *q = host; q < p + n; q++)
                        if (*q == '/' || *q == '*' || (unsigned char)*q <= 0x20 || *q == 0x7f)
                                return -EINVAL;
                p += n;
        }
        return str_copy(buf, size, value);
}

/* Parses "FIRST-LAST" strictly: decimal digits only, no sign, no spaces. */
static int parse_uid_range(const char *value, uint32_t *ret_first, uint32_t *ret_last) {
        uint64_t v[2] = {0, 0};
        const char *p = value;
        for (int i = 0; i < 2; i++) {
                const char *start = p;
                for (; *p >= '0' && *p <= '9'; p++) {
                        v[i] = v[i] * 10 + (uint64_t)(*p - '0');
                        if (v[i] > UINT32_MAX)
                                return -EINVAL;
                }
                if (p == start || p - start > 10 || (*start == '0' && p - start > 1))
                        return -EINVAL;
                if (i == 0 && *p++ != '-')
                        return -EINVAL;
        }
        /* 0 is root; 4294967295 is (uid_t)-1, "no change" to setresuid. */
        if (*p || v[0] < 1 || v[1] > 4294967294u || v[0] > v[1])
                return -EINVAL;
        *ret_first = (uint32_t)v[0];
        *ret_last = (uint32_t)v[1];
        return 0;
}

static int check_uid_range(const char *value, char *buf, size_t size) {
        uint32_t first, last;
        if (strcmp(value, "auto") != 0 && strcmp(value, "off") != 0 &&
                parse_uid_range(value, &first, &last) < 0)
                return -EINVAL;
        return str_copy(buf, size, value);
}

bool config_uid_range(const Config *c, uint32_t *ret_first, uint32_t *ret_last) {
        const char *v = c->sandbox_uid_range;
        if (strcmp(v, "auto") == 0 && c->sandbox_uid == 65534 && c->sandbox_gid == 65534) {
                *ret_first = SANDBOX_UID_RANGE_AUTO_FIRST;
                *ret_last = SANDBOX_UID_RANGE_AUTO_LAST;
                return true;
        }
        if (strcmp(v, "auto") != 0 && strcmp(v, "off") != 0 && parse_uid_range(v, ret_first, ret_last) == 0)
                return true;
        *ret_first = *ret_last = c->sandbox_uid;
        return false;
}

static int check_cache_dir(const char *value, char *buf, size_t size) {
        if (value[0] && value[0] != '/')
                return -EINVAL;
        for (const char *p = value; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        return -EINVAL;
        return str_copy(buf, size, value);
}

/* Checks `value` for key k and stores it in c. On error, leaves c as it was for this key. */
static int set_key(
        Config *c, const Key *k, const char *value, const char *origin, unsigned line, char **ret_error) {
        char buf[CONFIG_STR_MAX];
        uint64_t v;
        int r;

        if (k->type == KEY_STRING) {
                r = k->check(value, buf, k->size);
                if (r == -ENAMETOOLONG)
                        return fail_value(
                                ret_error, k, value, origin, line, "at most %zu bytes", k->size - 1);
                if (r < 0)
                        return fail_value(ret_error, k, value, origin, line, "%s", k->allowed);
                set_string(c, k, buf);
                return 0;
        }

        if (parse_number(value, &v) < 0 || v < k->min || v > k->max) {
                const char *unit = unit_name(k->type);

                return fail_value(ret_error, k, value, origin, line,
                        "a whole number%s%s from %" PRIu64 " to %" PRIu64, unit ? " of " : "",
                        unit ? unit : "", k->min, k->max);
        }
        set_number(c, k, v * SCALE(k->type));
        return 0;
}

static const Key *find_key(const char *name, size_t n) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (strlen(keys[i].name) == n && memcmp(keys[i].name, name, n) == 0)
                        return &keys[i];
        return NULL;
}

void config_init(Config *c) {
        memset(c, 0, sizeof(*c));
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                if (keys[i].type == KEY_STRING)
                        set_string(c, &keys[i], keys[i].def_str);
                else
                        set_number(c, &keys[i], keys[i].def * SCALE(keys[i].type));
        }
}

static bool is_key_start(char ch) {
        return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_';
}

static bool is_key_char(char ch) {
        return is_key_start(ch) || (ch >= '0' && ch <= '9');
}

/* Applies one line of a `.env` (no '\n', no NUL). */
static int apply_dotenv_line(
        Config *c, const char *line, size_t n, const char *origin, unsigned lineno, char **ret_error) {
        _cleanup_free_ char *buf = NULL;
        char *s, *key, *eq, *value, *rest = NULL;
        const Key *k;
        size_t klen;

        if (n > 0 && line[n - 1] == '\r')
                n--;
        buf = strndup(line, n);
        if (!buf) {
                if (ret_error)
                        *ret_error = NULL;
                return -ENOMEM;
        }

        s = buf + strspn(buf, " \t");
        if (!*s || *s == '#')
                return 0;
        if (strncmp(s, "export", 6) == 0 && is_blank(s[6]))
                s += 6 + strspn(s + 6, " \t");

        key = s;
        for (klen = 0; is_key_char(key[klen]); klen++)
                ;
        eq = key + klen + strspn(key + klen, " \t");
        if (!strchr(key, '='))
                return fail(ret_error, "%s line %u: expected KEY=VALUE", origin, lineno);
        if (*eq != '=' || klen == 0 || !is_key_start(key[0])) {
                char shown[SHOWN_VALUE_MAX * 4 + 4];

                *strchr(key, '=') = '\0';
                show_value(key, shown);
                return fail(ret_error, "%s line %u: \"%s\" is not a key name (letters, digits and '_')",
                        origin, lineno, shown);
        }
        key[klen] = '\0';

        value = eq + 1 + strspn(eq + 1, " \t");
        if (*value == '"') {
                char *in = value + 1, *out = value;

                for (;; in++) {
                        if (!*in)
                                return fail(ret_error, "%s line %u: %s: unterminated double quote", origin,
                                        lineno, key);
                        if (*in == '"')
                                break;
                        if (*in != '\\') {
                                *out++ = *in;
                                continue;
                        }
                        in++;
                        if (*in == '"' || *in == '\\')
                                *out++ = *in;
                        else if (*in == 'n')
                                *out++ = '\n';
                        else if (!*in)
                                return fail(ret_error, "%s line %u: %s: unterminated double quote", origin,
                                        lineno, key);
                        else
                                return fail(ret_error,
                                        "%s line %u: %s: unknown escape (allowed: \\\" \\\\ \\n)", origin,
                                        lineno, key);
                }
                *out = '\0';
                rest = in + 1;
        } else if (*value == '\'') {
                char *close = strchr(value + 1, '\'');

                if (!close)
                        return fail(
                                ret_error, "%s line %u: %s: unterminated single quote", origin, lineno, key);
                *close = '\0';
                value++;
                rest = close + 1;
        } else {
                char *end;

                /* " #" starts a comment; a '#' inside a word ("a#b") does not. eq is the '=', so
                 * p[-1] is always inside the line. */
                for (char *p = value; *p; p++)
                        if (*p == '#' && is_blank(p[-1])) {
                                *p = '\0';
                                break;
                        }
                end = value + strlen(value);
                while (end > value && is_blank(end[-1]))
                        end--;
                *end = '\0';
        }

        if (rest) {
                rest += strspn(rest, " \t");
                if (*rest && *rest != '#')
                        return fail(ret_error, "%s line %u: %s: unexpected text after the closing quote",
                                origin, lineno, key);
        }

        k = find_key(key, klen);
        if (!k)
                return fail(ret_error, "%s line %u: unknown key %s (.env.example lists every key)", origin,
                        lineno, key);
        return set_key(c, k, value, origin, lineno, ret_error);
}

int config_apply_dotenv(Config *c, const char *text, size_t len, const char *origin, char **ret_error) {
        Config next = *c;
        const char *p, *end, *nul;
        unsigned lineno;
        int r;

        if (!origin)
                origin = ".env";
        if (len > DOTENV_MAX)
                return fail(ret_error, "%s: larger than %d bytes", origin, DOTENV_MAX);
        if (len == 0)
                return 0;

        nul = memchr(text, '\0', len);
        if (nul) {
                lineno = 1;
                for (p = text; p < nul; p++)
                        lineno += *p == '\n';
                return fail(ret_error, "%s line %u: contains a NUL byte", origin, lineno);
        }

        p = text;
        end = text + len;
        /* Editors on Windows start UTF-8 files with a byte order mark; it is not part of a key. */
        if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
                p += 3;

        /* Changes go to a copy, so that a bad line leaves *c as it was. */
        for (lineno = 1; p < end; lineno++) {
                const char *eol = memchr(p, '\n', (size_t)(end - p));
                size_t n = eol ? (size_t)(eol - p) : (size_t)(end - p);

                r = apply_dotenv_line(&next, p, n, origin, lineno, ret_error);
                if (r < 0)
                        return r;
                p += n + (eol ? 1 : 0);
        }

        *c = next;
        return 0;
}

int config_apply_environ(Config *c, char *const *envp, char **ret_error) {
        Config next = *c;
        int r;

        for (char *const *e = envp; e && *e; e++) {
                const char *eq = strchr(*e, '=');
                const Key *k;

                if (!eq)
                        continue;
                k = find_key(*e, (size_t)(eq - *e));
                if (!k)
                        continue;
                r = set_key(&next, k, eq + 1, NULL, 0, ret_error);
                if (r < 0)
                        return r;
        }

        *c = next;
        return 0;
}

/* Reads at most DOTENV_MAX bytes of a regular file. Returns 0 and sets *ret_text (malloc'ed,
 * NUL-terminated) and *ret_len, -EFBIG if the file is larger, -EINVAL if it is not a regular
 * file, or the negative errno of open/read. */
static int read_dotenv(const char *path, char **ret_text, size_t *ret_len) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *text = NULL;
        struct stat st;
        size_t len = 0;

        /* O_NONBLOCK: a FIFO named .env must not hang start-up; it is refused below. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (S_ISDIR(st.st_mode))
                return -EISDIR;
        if (!S_ISREG(st.st_mode))
                return -EINVAL;

        /* One byte more than the cap, to tell "exactly the cap" from "larger". st_size is not
         * trusted: the file may be growing. */
        text = malloc(DOTENV_MAX + 2);
        if (!text)
                return -ENOMEM;
        while (len < DOTENV_MAX + 1) {
                ssize_t n = read(fd, text + len, DOTENV_MAX + 1 - len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        if (len > DOTENV_MAX)
                return -EFBIG;

        text[len] = '\0';
        *ret_text = TAKE_PTR(text);
        *ret_len = len;
        return 0;
}

int config_load(Config *c, const char *dotenv_path, char *const *envp, char **ret_error) {
        Config next;
        int r;

        config_init(&next);

        if (dotenv_path) {
                _cleanup_free_ char *text = NULL;
                size_t len = 0;

                r = read_dotenv(dotenv_path, &text, &len);
                if (r == -EFBIG)
                        return fail_errno(ret_error, r, "%s: larger than %d bytes", dotenv_path, DOTENV_MAX);
                if (r == -EINVAL)
                        return fail_errno(ret_error, r, "%s: not a regular file", dotenv_path);
                if (r < 0 && r != -ENOENT)
                        return fail_errno(ret_error, r, "%s: %s", dotenv_path, strerror(-r));
                if (r >= 0) {
                        r = config_apply_dotenv(&next, text, len, dotenv_path, ret_error);
                        if (r < 0)
                                return r;
                }
        }

        r = config_apply_environ(&next, envp, ret_error);
        if (r < 0)
                return r;

        *c = next;
        return 0;
}

/* Writes a value so that config_apply_dotenv reads it back unchanged: bare when it is made of
 * characters that need no quoting, else double-quoted with \" \\ \n escapes. */
static void write_value(FILE *f, const char *s) {
        if (strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-/:,+@%=") ==
                strlen(s)) {
                fputs(s, f);
                return;
        }
        fputc('"', f);
        for (; *s; s++) {
                if (*s == '"' || *s == '\\')
                        fputc('\\', f);
                if (*s == '\n')
                        fputs("\\n", f);
                else
                        fputc(*s, f);
        }
        fputc('"', f);
}

static void write_key_value(FILE *f, const Key *k, const Config *c) {
        fprintf(f, "%s=", k->name);
        if (k->type == KEY_STRING)
                write_value(f, (const char *)c + k->offset);
        else
                fprintf(f, "%" PRIu64, get_number(c, k) / SCALE(k->type));
        fputc('\n', f);
}

void config_write_example(FILE *f) {
        Config defaults;

        config_init(&defaults);
        fputs("# snakebox configuration: copy this file to .env and change what you need.\n"
              "# Precedence: the defaults below < .env < the environment. Unknown keys in .env are errors.\n"
              "# Generated by `snakebox example`; every key, its default and its allowed values.\n",
                f);

        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                const Key *k = &keys[i];

                fprintf(f, "\n# %s\n", k->help);
                if (k->type == KEY_STRING) {
                        fputs("# default: ", f);
                        fputs(k->def_str[0] ? k->def_str : "(empty)", f);
                        /* On its own line: the allowed text is too long to share one. */
                        fprintf(f, "\n# allowed: %s\n", k->allowed);
                } else
                        fprintf(f, "# default: %" PRIu64 ", range: %" PRIu64 "..%" PRIu64 "%s%s\n", k->def,
                                k->min, k->max, unit_name(k->type) ? " " : "", unit_name(k->type) ?: "");
                write_key_value(f, k, &defaults);
        }
}

void config_write_summary(const Config *c, FILE *f) {
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                write_key_value(f, &keys[i], c);
}

int config_cache_dir(const Config *c, char *buf, size_t n) {
        const char *home = getenv("HOME");
        int k;
        if (c->cache_dir[0])
                k = snprintf(buf, n, "%s", c->cache_dir);
        else if (geteuid() == 0)
                k = snprintf(buf, n, "/var/cache/snakebox");
        else if (home && home[0] == '/')
                k = snprintf(buf, n, "%s/.cache/snakebox", home);
        else
                k = snprintf(buf, n, "/tmp/snakebox-cache-%u", (unsigned)geteuid());
        if (k < 0 || (size_t)k >= n)
                return -ENAMETOOLONG;
        return 0;
}
