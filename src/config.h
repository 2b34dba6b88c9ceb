/* Configuration: one table of keys, read from defaults < `.env` < the environment. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_STR_MAX 1024

typedef struct Config {
        /* EXECUTION_TIMEOUT: wall-clock seconds a run may take. */
        uint32_t timeout_sec;
        /* PREINSTALL_LIBS: space-separated package names imported by the zygote. */
        char preinstall_libs[CONFIG_STR_MAX];
        /* HOST, PORT: where the HTTP server listens. PORT 0 picks a free port. */
        char host[256];
        uint32_t port;
        /* MAX_CONCURRENCY: runs executing at once. */
        uint32_t max_concurrency;
        /* QUEUE_SIZE: requests waiting for a sandbox beyond MAX_CONCURRENCY; then 503. */
        uint32_t queue_size;
        /* QUEUE_TIMEOUT: seconds a request may wait in the queue before a 503. */
        uint32_t queue_timeout_sec;
        /* POOL_SIZE: sealed sandboxes kept ready for the next request. */
        uint32_t pool_size;
        /* LEAN_POOL_SIZE: sealed sandboxes of the lean zygote kept ready; 0 = no lean zygote. */
        uint32_t lean_pool_size;
        /* MEMORY_LIMIT_MB: memory of one run (cgroup, else RLIMIT_AS). */
        uint64_t memory_limit_bytes;
        /* MAX_PROCESSES: processes and threads of one run. */
        uint32_t max_processes;
        /* CPU_LIMIT_PERCENT: CPU time one run may use per second of wall time, in percent of one
         * core (the cpu cgroup's quota). */
        uint32_t cpu_limit_percent;
        /* TMP_SIZE_MB: the run's tmpfs (/tmp, working directory, /dev/shm together). */
        uint64_t tmp_size_bytes;
        /* MAX_FILE_SIZE_MB: largest file a run may write (RLIMIT_FSIZE). */
        uint64_t max_file_size_bytes;
        /* PREFAULT_MB: memory each waiting sandbox copies in advance (0 = none). */
        uint64_t prefault_bytes;
        /* ZYGOTE_MAX_SPAWNS, ZYGOTE_MAX_AGE: a zygote is replaced by a fresh one (new hash
         * secret, new address layout) after this many sandboxes or seconds; 0 = never. */
        uint32_t zygote_max_spawns;
        uint32_t zygote_max_age_sec;
        /* MAX_OPEN_FILES: open files of one process of a run (RLIMIT_NOFILE). */
        uint32_t max_open_files;
        /* MAX_OUTPUT_BYTES: stdout + stderr kept from a run; beyond it the run is stopped. */
        uint64_t max_output_bytes;
        /* MAX_REQUEST_BYTES: largest request body; beyond it 413. */
        uint64_t max_request_bytes;
        /* MAX_FILES, MAX_FILES_BYTES: files a request may upload, and their decoded size. */
        uint32_t max_files;
        uint64_t max_files_bytes;
        /* MAX_RETURN_FILE_BYTES, MAX_RETURN_BYTES: a returned file, and all of them. */
        uint64_t max_return_file_bytes;
        uint64_t max_return_bytes;
        /* MAX_RETURN_FILES: entries of "files" in one answer; bounds the report's size. */
        uint32_t max_return_files;
        /* MAX_IMAGES, MAX_IMAGE_BYTES: figures returned, and the size of one. */
        uint32_t max_images;
        uint64_t max_image_bytes;
        /* MAX_RESULT_BYTES: characters kept of the last expression's text/plain and text/html. */
        uint64_t max_result_bytes;
        /* SANDBOX_UID, SANDBOX_GID: host ids a run executes as (when the server is root). */
        uint32_t sandbox_uid;
        uint32_t sandbox_gid;
        /* SANDBOX_UID_RANGE: "auto", "off" or "FIRST-LAST": host ids of one uid per concurrent
         * sandbox (when the server is root); see config_uid_range. */
        char sandbox_uid_range[32];
        /* CACHE_DIR: where the zygote keeps matplotlib's font cache; "" = automatic. */
        char cache_dir[CONFIG_STR_MAX];
        /* API_KEYS: comma-separated keys; API_KEYS_FILE: one per line. Either set: /api/ needs
         * "Authorization: Bearer <key>". Secrets: never logged or printed. */
        char api_keys[CONFIG_STR_MAX];
        char api_keys_file[CONFIG_STR_MAX];
        /* AUTH_HEALTH: 1 when /health and /metrics need a key too. */
        uint32_t auth_health;
        /* LOG_FORMAT: "text" or "json" access log lines. */
        char log_format[8];
        /* CORS_ORIGINS: comma-separated origins allowed to call the API from a browser. */
        char cors_origins[CONFIG_STR_MAX];
        /* PLAYGROUND: 1 serves the notebook page at /playground (and redirects / there). */
        uint32_t playground;
        char mcp_allowed_origins[CONFIG_STR_MAX];
        /* SHUTDOWN_GRACE: seconds runs in flight may finish after SIGTERM/SIGINT. */
        uint32_t shutdown_grace_sec;
        /* MAX_CONNECTIONS_PER_IP: connections one client address may hold at once (0: no limit). */
        uint32_t max_connections_per_ip;
        /* HEADER_TIMEOUT: seconds a connection may take to send a request's headers. */
        uint32_t header_timeout_sec;
        /* Sessions (pool-session.c): how many at once (0: none), per API key; their default and
         * largest idle timeout, lifetime and memory; the wait between an interrupt and the kill
         * that replaces an interpreter that did not stop; and this server's node in session
         * ids. */
        uint32_t max_sessions;
        uint32_t max_sessions_per_key;
        uint32_t session_idle_timeout_sec;
        uint32_t session_max_lifetime_sec;
        uint64_t session_memory_bytes;
        uint64_t session_files_bytes; /* SESSION_FILES_MB: a session's tmpfs */
        uint32_t interrupt_grace_sec;
        uint32_t node_id;
        /* Owner forwarding (forward.c): PEER_URL (a template with {node}; empty: none), the
         * PEER_TOKEN instances share, and MAX_FORWARDS at once. */
        char peer_url[CONFIG_STR_MAX];
        char peer_token[256];
        uint32_t max_forwards;
} Config;

/* Fills every field with its default. */
void config_init(Config *c);

/* Applies KEY=VALUE lines of a `.env` text. Unknown keys and malformed lines are errors.
 * Returns 0, or -EINVAL and sets *ret_error to a malloc'ed message naming the line, the key,
 * the value and what is allowed (-ENOMEM with *ret_error NULL if out of memory). On error *c is
 * unchanged. ret_error may be NULL. Does not log. */
int config_apply_dotenv(Config *c, const char *text, size_t len, const char *origin, char **ret_error);

/* Applies every known key present in envp (a NULL-terminated "KEY=VALUE" array); other
 * variables are ignored. Same error contract as config_apply_dotenv. */
int config_apply_environ(Config *c, char *const *envp, char **ret_error);

/* Defaults, then `dotenv_path` if it exists (a missing file is not an error), then envp.
 * Same error contract as above; an unreadable or oversized `.env` is an error too, with a
 * message and the open/read errno, -EFBIG over 64 KiB, or -EINVAL if not a regular file. */
int config_load(Config *c, const char *dotenv_path, char *const *envp, char **ret_error);

/* Where the cache lives: CACHE_DIR, else /var/cache/snakebox for root, ~/.cache/snakebox, or
 * /tmp/snakebox-cache-<uid> without a usable HOME. Writes it to buf. Returns 0 or
 * -ENAMETOOLONG. Creates nothing. */
int config_cache_dir(const Config *c, char *buf, size_t n);

/* SANDBOX_UID_RANGE's default range: in the block systemd leaves unused (0x70000000 and up,
 * docs/UIDS-GIDS.md), 65536 ids. */
/* Without a memory cgroup, each process of a run gets RLIMIT_AS = its memory limit plus this:
 * address space is not memory. The full zygote's image is ~300 MB of it, each thread reserves an
 * 8 MB stack and the first 16 a 64 MB malloc arena, so with the limit alone a hundred threads
 * (or 11, with numpy loaded) could not start. What a run holds is bounded by the watchdog's
 * samples (memwatch.c); this ceiling only bounds one process between two samples. */
#define ADDRESS_SPACE_HEADROOM_BYTES (UINT64_C(2048) << 20)
#define SANDBOX_UID_RANGE_AUTO_FIRST UINT32_C(1879048192)
#define SANDBOX_UID_RANGE_AUTO_LAST UINT32_C(1879113727)

/* The host ids runs map to, decided from SANDBOX_UID_RANGE, SANDBOX_UID and SANDBOX_GID for a
 * root server: "FIRST-LAST" gives each concurrent sandbox its own uid (its gid is the same
 * number); "off" maps every run to SANDBOX_UID/SANDBOX_GID; "auto" is the default range unless
 * SANDBOX_UID or SANDBOX_GID was changed from 65534, which keeps the old single-id behaviour.
 * Sets *ret_first and *ret_last (equal in single-id mode) and returns true for a range of
 * per-sandbox ids, false for single-id mode. The value must have passed the table's check. */
bool config_uid_range(const Config *c, uint32_t *ret_first, uint32_t *ret_last);

/* Writes the `.env.example` text: every key, its help, default and range. */
void config_write_example(FILE *f);

/* Writes one "KEY=value" line per key, for the start-up summary. */
void config_write_summary(const Config *c, FILE *f);
