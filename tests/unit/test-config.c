/* Unit tests of src/config.c: defaults, every key's parsing and range, strict numbers, the `.env`
 * syntax (quotes, comments, export, CRLF, errors with line numbers), the environment's
 * precedence, HOST / PREINSTALL_LIBS / CACHE_DIR checks, config_load on real files, and the
 * example and summary writers reading back through the parser. The expected keys, defaults and
 * ranges are written out here again on purpose: they are the specification the table must meet. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "util/macro.h"

#define MIB (UINT64_C(1) << 20)

typedef struct NumSpec {
        const char *name;
        size_t offset, size;
        uint64_t def, min, max; /* in the user's unit */
        uint64_t scale; /* stored = written * scale */
        const char *unit; /* in messages, or NULL */
} NumSpec;

#define SPEC(n, f, d, lo, hi, sc, u) \
        { n, offsetof(Config, f), sizeof(((Config *)0)->f), d, lo, hi, sc, u }

static const NumSpec numbers[] = {
        SPEC("EXECUTION_TIMEOUT", timeout_sec, 30, 1, 3600, 1, "seconds"),
        SPEC("PORT", port, 8080, 0, 65535, 1, NULL),
        SPEC("MAX_CONCURRENCY", max_concurrency, 16, 1, 1024, 1, NULL),
        SPEC("QUEUE_SIZE", queue_size, 64, 0, 100000, 1, NULL),
        SPEC("QUEUE_TIMEOUT", queue_timeout_sec, 60, 1, 3600, 1, "seconds"),
        SPEC("POOL_SIZE", pool_size, 4, 0, 256, 1, NULL),
        SPEC("LEAN_POOL_SIZE", lean_pool_size, 4, 0, 256, 1, NULL),
        SPEC("MEMORY_LIMIT_MB", memory_limit_bytes, 1024, 16, 1048576, MIB, "megabytes"),
        SPEC("MAX_PROCESSES", max_processes, 256, 1, 4096, 1, NULL),
        SPEC("CPU_LIMIT_PERCENT", cpu_limit_percent, 100, 1, 102400, 1, NULL),
        SPEC("TMP_SIZE_MB", tmp_size_bytes, 512, 1, 1048576, MIB, "megabytes"),
        SPEC("MAX_FILE_SIZE_MB", max_file_size_bytes, 512, 1, 1048576, MIB, "megabytes"),
        SPEC("PREFAULT_MB", prefault_bytes, 16, 0, 1024, MIB, "megabytes"),
        SPEC("MAX_OPEN_FILES", max_open_files, 256, 16, 65536, 1, NULL),
        SPEC("MAX_OUTPUT_BYTES", max_output_bytes, 1048576, 1024, 1073741824, 1, "bytes"),
        SPEC("MAX_REQUEST_BYTES", max_request_bytes, 1048576, 1024, 1073741824, 1, "bytes"),
        SPEC("MAX_FILES", max_files, 64, 0, 10000, 1, NULL),
        SPEC("MAX_FILES_BYTES", max_files_bytes, 8388608, 0, 1073741824, 1, "bytes"),
        SPEC("MAX_RETURN_FILE_BYTES", max_return_file_bytes, 1048576, 0, 1073741824, 1, "bytes"),
        SPEC("MAX_RETURN_BYTES", max_return_bytes, 8388608, 0, 1073741824, 1, "bytes"),
        SPEC("MAX_IMAGES", max_images, 16, 0, 1000, 1, NULL),
        SPEC("MAX_IMAGE_BYTES", max_image_bytes, 4194304, 1024, 268435456, 1, "bytes"),
        SPEC("MAX_RESULT_BYTES", max_result_bytes, 65536, 1024, 16777216, 1, "bytes"),
        SPEC("SANDBOX_UID", sandbox_uid, 65534, 1, 4294967294, 1, NULL),
        SPEC("SANDBOX_GID", sandbox_gid, 65534, 1, 4294967294, 1, NULL),
        SPEC("AUTH_HEALTH", auth_health, 0, 0, 1, 1, NULL),
        SPEC("SHUTDOWN_GRACE", shutdown_grace_sec, 10, 0, 3600, 1, "seconds"),
        SPEC("MAX_RETURN_FILES", max_return_files, 256, 0, 100000, 1, NULL),
        SPEC("MAX_CONNECTIONS_PER_IP", max_connections_per_ip, 128, 0, 1024, 1, NULL),
        SPEC("HEADER_TIMEOUT", header_timeout_sec, 30, 1, 300, 1, "seconds"),
        /* Not in key order: tests below pick entries by index. */
        SPEC("ZYGOTE_MAX_SPAWNS", zygote_max_spawns, 10000, 0, 1000000000, 1, NULL),
        SPEC("ZYGOTE_MAX_AGE", zygote_max_age_sec, 3600, 0, 2592000, 1, "seconds"),
        SPEC("MAX_SESSIONS", max_sessions, 8, 0, 1024, 1, NULL),
        SPEC("MAX_SESSIONS_PER_KEY", max_sessions_per_key, 4, 1, 1024, 1, NULL),
        SPEC("SESSION_IDLE_TIMEOUT", session_idle_timeout_sec, 600, 1, 86400, 1, "seconds"),
        SPEC("SESSION_MAX_LIFETIME", session_max_lifetime_sec, 3600, 1, 604800, 1, "seconds"),
        SPEC("SESSION_MEMORY_MB", session_memory_bytes, 1024, 16, 1048576, MIB, "megabytes"),
        SPEC("SESSION_FILES_MB", session_files_bytes, 512, 1, 1048576, MIB, "megabytes"),
        SPEC("INTERRUPT_GRACE", interrupt_grace_sec, 2, 0, 60, 1, "seconds"),
        SPEC("NODE_ID", node_id, 0, 0, 65535, 1, NULL),
        SPEC("PLAYGROUND", playground, 1, 0, 1, 1, NULL),
        SPEC("MAX_FORWARDS", max_forwards, 256, 1, 1024, 1, NULL),
};

/* Every key, in the order the summary and the example list them. */
static const char *const key_order[] = {
        "EXECUTION_TIMEOUT",
        "PREINSTALL_LIBS",
        "HOST",
        "PORT",
        "MAX_CONCURRENCY",
        "QUEUE_SIZE",
        "QUEUE_TIMEOUT",
        "POOL_SIZE",
        "LEAN_POOL_SIZE",
        "MEMORY_LIMIT_MB",
        "MAX_PROCESSES",
        "CPU_LIMIT_PERCENT",
        "TMP_SIZE_MB",
        "MAX_FILE_SIZE_MB",
        "PREFAULT_MB",
        "ZYGOTE_MAX_SPAWNS",
        "ZYGOTE_MAX_AGE",
        "MAX_OPEN_FILES",
        "MAX_OUTPUT_BYTES",
        "MAX_REQUEST_BYTES",
        "MAX_FILES",
        "MAX_FILES_BYTES",
        "MAX_RETURN_FILE_BYTES",
        "MAX_RETURN_BYTES",
        "MAX_RETURN_FILES",
        "MAX_IMAGES",
        "MAX_IMAGE_BYTES",
        "MAX_RESULT_BYTES",
        "SANDBOX_UID",
        "SANDBOX_GID",
        "SANDBOX_UID_RANGE",
        "CACHE_DIR",
        "API_KEYS",
        "API_KEYS_FILE",
        "AUTH_HEALTH",
        "LOG_FORMAT",
        "CORS_ORIGINS",
        "PLAYGROUND",
        "MCP_ALLOWED_ORIGINS",
        "SHUTDOWN_GRACE",
        "MAX_CONNECTIONS_PER_IP",
        "HEADER_TIMEOUT",
        "MAX_SESSIONS",
        "MAX_SESSIONS_PER_KEY",
        "SESSION_IDLE_TIMEOUT",
        "SESSION_MAX_LIFETIME",
        "SESSION_MEMORY_MB",
        "SESSION_FILES_MB",
        "INTERRUPT_GRACE",
        "NODE_ID",
        "PEER_URL",
        "PEER_TOKEN",
        "MAX_FORWARDS",
};

static uint64_t get(const Config *c, const NumSpec *s) {
        const char *field = (const char *)c + s->offset;

        if (s->size == sizeof(uint32_t)) {
                uint32_t v;

                memcpy(&v, field, sizeof(v));
                return v;
        }
        assert_int_equal(s->size, sizeof(uint64_t));
        uint64_t v;
        memcpy(&v, field, sizeof(v));
        return v;
}

static void assert_config_equal(const Config *a, const Config *b) {
        for (size_t i = 0; i < ELEMENTSOF(numbers); i++)
                if (get(a, &numbers[i]) != get(b, &numbers[i]))
                        fail_msg("%s: %" PRIu64 " != %" PRIu64, numbers[i].name, get(a, &numbers[i]),
                                get(b, &numbers[i]));
        assert_string_equal(a->preinstall_libs, b->preinstall_libs);
        assert_string_equal(a->host, b->host);
        assert_string_equal(a->cache_dir, b->cache_dir);
}

#define assert_contains(hay, needle)                                                              \
        do {                                                                                      \
                const char *h_ = (hay);                                                           \
                if (!h_ || !strstr(h_, (needle)))                                                 \
                        fail_msg("\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", (needle)); \
        } while (0)

/* Applies a `.env` text named ".env". */
static int apply(Config *c, const char *text, char **err) {
        return config_apply_dotenv(c, text, strlen(text), ".env", err);
}

/* Applies `KEY=value` as line 1 of a `.env`; returns the result, message in *err. */
static int apply_kv(Config *c, const char *key, const char *value, char **err) {
        _cleanup_free_ char *text = NULL;

        assert_true(asprintf(&text, "%s=%s\n", key, value) > 0);
        return apply(c, text, err);
}

/* Applies `KEY=value` through the environment. */
static int apply_env(Config *c, const char *key, const char *value, char **err) {
        _cleanup_free_ char *var = NULL;
        char *envp[2] = {NULL, NULL};

        assert_true(asprintf(&var, "%s=%s", key, value) > 0);
        envp[0] = var;
        return config_apply_environ(c, envp, err);
}

static void test_defaults(void **state) {
        (void)state;
        Config c;

        config_init(&c);
        assert_int_equal(c.timeout_sec, 30);
        assert_string_equal(c.preinstall_libs, "pandas numpy matplotlib scikit-learn");
        assert_string_equal(c.host, "127.0.0.1");
        assert_int_equal(c.port, 8080);
        assert_int_equal(c.max_concurrency, 16);
        assert_int_equal(c.queue_size, 64);
        assert_int_equal(c.queue_timeout_sec, 60);
        assert_int_equal(c.pool_size, 4);
        assert_int_equal(c.memory_limit_bytes, 1024 * MIB);
        assert_int_equal(c.max_processes, 256);
        assert_int_equal(c.tmp_size_bytes, 512 * MIB);
        assert_int_equal(c.max_file_size_bytes, 512 * MIB);
        assert_int_equal(c.max_open_files, 256);
        assert_int_equal(c.max_output_bytes, 1048576);
        assert_int_equal(c.max_request_bytes, 1048576);
        assert_int_equal(c.sandbox_uid, 65534);
        assert_int_equal(c.sandbox_gid, 65534);
        assert_string_equal(c.cache_dir, "");

        for (size_t i = 0; i < ELEMENTSOF(numbers); i++)
                assert_int_equal(get(&c, &numbers[i]), numbers[i].def * numbers[i].scale);
}

/* Each number key lands in its own field, scaled, and nowhere else. */
static void test_each_number_key(void **state) {
        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(numbers); i++) {
                const NumSpec *s = &numbers[i];
                Config c, defaults;
                char value[32];
                char *err = NULL;
                uint64_t v = s->min + (s->max - s->min) / 2;

                if (v == s->def)
                        v++;
                snprintf(value, sizeof(value), "%" PRIu64, v);
                config_init(&c);
                config_init(&defaults);
                if (apply_kv(&c, s->name, value, &err) != 0)
                        fail_msg("%s=%s rejected: %s", s->name, value, err);
                assert_null(err);
                assert_int_equal(get(&c, s), v * s->scale);
                for (size_t j = 0; j < ELEMENTSOF(numbers); j++)
                        if (j != i && get(&c, &numbers[j]) != get(&defaults, &numbers[j]))
                                fail_msg("setting %s changed %s", s->name, numbers[j].name);
                assert_string_equal(c.preinstall_libs, defaults.preinstall_libs);
                assert_string_equal(c.host, defaults.host);
                assert_string_equal(c.cache_dir, defaults.cache_dir);
        }
}

static void expect_number_rejected(const NumSpec *s, const char *value, bool env) {
        Config c, defaults;
        char *err = NULL;
        char expected[256];
        int r;

        config_init(&c);
        config_init(&defaults);
        r = env ? apply_env(&c, s->name, value, &err) : apply_kv(&c, s->name, value, &err);
        if (r != -EINVAL)
                fail_msg("%s=\"%s\" accepted (r=%d, stored %" PRIu64 ")", s->name, value, r, get(&c, s));
        assert_non_null(err);
        snprintf(expected, sizeof(expected), "%s=\"", s->name);
        assert_contains(err, expected);
        assert_contains(err, env ? "(from the environment)" : "(from .env line 1)");
        snprintf(expected, sizeof(expected), "expected a whole number%s%s from %" PRIu64 " to %" PRIu64,
                s->unit ? " of " : "", s->unit ? s->unit : "", s->min, s->max);
        assert_contains(err, expected);
        /* A rejected value leaves the config as it was. */
        assert_config_equal(&c, &defaults);
        free(err);
}

static void expect_number_accepted(const NumSpec *s, const char *value, uint64_t written) {
        Config c;
        char *err = NULL;

        config_init(&c);
        if (apply_kv(&c, s->name, value, &err) != 0)
                fail_msg("%s=\"%s\" rejected: %s", s->name, value, err);
        assert_int_equal(get(&c, s), written * s->scale);
}

static void test_number_ranges(void **state) {
        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(numbers); i++) {
                const NumSpec *s = &numbers[i];
                char value[32];

                snprintf(value, sizeof(value), "%" PRIu64, s->min);
                expect_number_accepted(s, value, s->min);
                snprintf(value, sizeof(value), "%" PRIu64, s->max);
                expect_number_accepted(s, value, s->max);
                if (s->min > 0) {
                        snprintf(value, sizeof(value), "%" PRIu64, s->min - 1);
                        expect_number_rejected(s, value, false);
                        expect_number_rejected(s, value, true);
                }
                snprintf(value, sizeof(value), "%" PRIu64, s->max + 1);
                expect_number_rejected(s, value, false);
                expect_number_rejected(s, value, true);
        }
}

static void test_number_junk(void **state) {
        (void)state;
        static const char *const junk[] = {
                "abc",
                "",
                "12abc",
                "1 2",
                "-1",
                "-0",
                "+5",
                "0x10",
                "0X10",
                "1e3",
                "1.5",
                "1,000",
                "1_000",
                "\xef\xbc\x93", /* a full-width 3 */
                "18446744073709551616",
                "18446744073709551617",
                "99999999999999999999999999999",
                "4294967296",
                "4294967297",
        };

        for (size_t i = 0; i < ELEMENTSOF(numbers); i++)
                for (size_t j = 0; j < ELEMENTSOF(junk); j++) {
                        /* Through the environment: the .env reader would turn some into other errors. */
                        expect_number_rejected(&numbers[i], junk[j], true);
                        if (junk[j][0])
                                expect_number_rejected(&numbers[i], junk[j], false);
                }
}

static void test_number_message_exact(void **state) {
        (void)state;
        Config c;
        char *err = NULL;

        config_init(&c);
        assert_int_equal(apply(&c, "# timeouts\nPORT=9000\nEXECUTION_TIMEOUT=abc\n", &err), -EINVAL);
        assert_string_equal(err, "EXECUTION_TIMEOUT=\"abc\" (from .env line 3): expected a whole number of "
                                 "seconds from 1 to 3600");
        free(err);
        /* Nothing of the text was applied, not even the good line before the bad one. */
        assert_int_equal(c.port, 8080);

        err = NULL;
        assert_int_equal(apply_env(&c, "MEMORY_LIMIT_MB", "15", &err), -EINVAL);
        assert_string_equal(err, "MEMORY_LIMIT_MB=\"15\" (from the environment): expected a whole number of "
                                 "megabytes from 16 to "
                                 "1048576");
        free(err);
}

static void test_number_forms_accepted(void **state) {
        (void)state;
        const NumSpec *timeout = &numbers[0];
        const NumSpec *uid = &numbers[23];
        Config c;
        char *err = NULL;

        assert_string_equal(timeout->name, "EXECUTION_TIMEOUT");
        assert_string_equal(uid->name, "SANDBOX_UID");
        /* Leading zeros are decimal, not octal. */
        expect_number_accepted(timeout, "010", 10);
        expect_number_accepted(timeout, "  42  ", 42);
        expect_number_accepted(timeout, "\"7\"", 7);
        expect_number_accepted(timeout, "'8'", 8);
        expect_number_accepted(uid, "4294967294", 4294967294u);

        config_init(&c);
        assert_int_equal(apply_env(&c, "EXECUTION_TIMEOUT", "\t9 ", &err), 0);
        assert_int_equal(c.timeout_sec, 9);
        assert_int_equal(apply(&c, "MEMORY_LIMIT_MB=1048576\n", &err), 0);
        assert_int_equal(c.memory_limit_bytes, UINT64_C(1) << 40);
}

static void test_later_line_wins(void **state) {
        (void)state;
        Config c;
        char *err = NULL;

        config_init(&c);
        assert_int_equal(apply(&c, "PORT=1\nPORT=2\n", &err), 0);
        assert_int_equal(c.port, 2);
}

static const char *cache_dir_after(const char *line, Config *c) {
        char *err = NULL;

        config_init(c);
        if (apply(c, line, &err) != 0)
                fail_msg("\"%s\" rejected: %s", line, err);
        return c->cache_dir;
}

static void expect_syntax_error(const char *text, const char *needle) {
        Config c, defaults;
        char *err = NULL;

        config_init(&c);
        config_init(&defaults);
        if (apply(&c, text, &err) != -EINVAL)
                fail_msg("\"%s\" accepted", text);
        assert_contains(err, needle);
        assert_config_equal(&c, &defaults);
        free(err);
}

static void test_quoting(void **state) {
        (void)state;
        Config c;

        assert_string_equal(cache_dir_after("CACHE_DIR=\"/tmp/a b\"", &c), "/tmp/a b");
        assert_string_equal(cache_dir_after("CACHE_DIR=\"/tmp/a\\\\b\"", &c), "/tmp/a\\b");
        assert_string_equal(cache_dir_after("CACHE_DIR=\"/tmp/\\\"q\\\"\"", &c), "/tmp/\"q\"");
        assert_string_equal(cache_dir_after("CACHE_DIR=\"/tmp/a #b\"", &c), "/tmp/a #b");
        assert_string_equal(cache_dir_after("CACHE_DIR=\"/tmp/a\"  # comment", &c), "/tmp/a");
        assert_string_equal(cache_dir_after("CACHE_DIR=\"/tmp/a\"\t", &c), "/tmp/a");
        assert_string_equal(cache_dir_after("CACHE_DIR=\"\"", &c), "");
        /* Single quotes are literal: no escapes. */
        assert_string_equal(cache_dir_after("CACHE_DIR='/tmp/a\\nb \"x\"'", &c), "/tmp/a\\nb \"x\"");
        assert_string_equal(cache_dir_after("CACHE_DIR='/tmp/a #b' # c", &c), "/tmp/a #b");
        assert_string_equal(cache_dir_after("CACHE_DIR=''", &c), "");
        /* Unquoted: trailing blanks trimmed, " #" starts a comment, '#' inside a word does not. */
        assert_string_equal(cache_dir_after("CACHE_DIR=/tmp/x   \t", &c), "/tmp/x");
        assert_string_equal(cache_dir_after("CACHE_DIR=/tmp/a#b", &c), "/tmp/a#b");
        assert_string_equal(cache_dir_after("CACHE_DIR=/tmp/a #comment", &c), "/tmp/a");
        assert_string_equal(cache_dir_after("CACHE_DIR=/tmp/a\t#comment", &c), "/tmp/a");
        assert_string_equal(cache_dir_after("CACHE_DIR=/tmp/a b", &c), "/tmp/a b");
        assert_string_equal(cache_dir_after("CACHE_DIR=", &c), "");
        assert_string_equal(cache_dir_after("CACHE_DIR= #nothing", &c), "");
        assert_string_equal(cache_dir_after("CACHE_DIR = /spaced", &c), "/spaced");
        assert_string_equal(cache_dir_after("   CACHE_DIR=/indented", &c), "/indented");
        assert_string_equal(cache_dir_after("CACHE_DIR=/a=b", &c), "/a=b");
}

static void test_quoting_errors(void **state) {
        (void)state;
        /* "\n" is decoded to a newline, which CACHE_DIR refuses; undecoded it would be accepted. */
        expect_syntax_error("CACHE_DIR=\"/a\\nb\"", "CACHE_DIR=\"/a\\nb\" (from .env line 1): expected");
        expect_syntax_error("\nCACHE_DIR=\"/tmp/a", ".env line 2: CACHE_DIR: unterminated double quote");
        expect_syntax_error("CACHE_DIR=\"/tmp/a\\\"", ".env line 1: CACHE_DIR: unterminated double quote");
        expect_syntax_error("CACHE_DIR=\"/tmp/a\\", ".env line 1: CACHE_DIR: unterminated double quote");
        expect_syntax_error("CACHE_DIR='/tmp/a", ".env line 1: CACHE_DIR: unterminated single quote");
        expect_syntax_error("CACHE_DIR=\"/tmp/a\" junk", ".env line 1: CACHE_DIR: unexpected text after");
        expect_syntax_error("CACHE_DIR=\"/tmp/a\"junk", ".env line 1: CACHE_DIR: unexpected text after");
        expect_syntax_error("CACHE_DIR='/tmp/a'b", ".env line 1: CACHE_DIR: unexpected text after");
        expect_syntax_error("CACHE_DIR=\"/tmp/\\t\"", ".env line 1: CACHE_DIR: unknown escape");
        /* A quote does not continue onto the next line. */
        expect_syntax_error("CACHE_DIR=\"/tmp\nx\"", ".env line 1: CACHE_DIR: unterminated double quote");
}

static void test_export_prefix(void **state) {
        (void)state;
        Config c;
        char *err = NULL;

        config_init(&c);
        assert_int_equal(apply(&c, "export PORT=1234\n\texport  \tHOST=::1\n", &err), 0);
        assert_int_equal(c.port, 1234);
        assert_string_equal(c.host, "::1");
        expect_syntax_error("exportPORT=1", ".env line 1: unknown key exportPORT");
        expect_syntax_error("export PORT", ".env line 1: expected KEY=VALUE");
        expect_syntax_error("export", ".env line 1: expected KEY=VALUE");
}

static void test_comments_and_blank_lines(void **state) {
        (void)state;
        Config c;
        char *err = NULL;

        config_init(&c);
        assert_int_equal(
                apply(&c, "# comment\n\n   \n\t# indented = comment\n#PORT=1\nPORT=2 # two\n\n", &err), 0);
        assert_int_equal(c.port, 2);
        /* An empty text and a text of comments change nothing. */
        assert_int_equal(config_apply_dotenv(&c, "", 0, ".env", &err), 0);
        assert_int_equal(config_apply_dotenv(&c, NULL, 0, ".env", &err), 0);
        assert_int_equal(c.port, 2);
        /* A file without a final newline. */
        assert_int_equal(apply(&c, "PORT=3", &err), 0);
        assert_int_equal(c.port, 3);
}

static void test_crlf(void **state) {
        (void)state;
        Config c;
        char *err = NULL;

        config_init(&c);
        assert_int_equal(apply(&c,
                                 "# windows\r\n\r\nPORT=1234\r\nHOST=::1\r\nCACHE_DIR=\"/x "
                                 "y\"\r\nPOOL_SIZE=0 # c\r\n",
                                 &err),
                0);
        assert_int_equal(c.port, 1234);
        assert_string_equal(c.host, "::1");
        assert_string_equal(c.cache_dir, "/x y");
        assert_int_equal(c.pool_size, 0);
        /* A byte order mark from a Windows editor is not part of the first key. */
        assert_int_equal(apply(&c, "\xef\xbb\xbfPORT=5\r\n", &err), 0);
        assert_int_equal(c.port, 5);
}

static void test_malformed_lines(void **state) {
        (void)state;
        expect_syntax_error("PORT=1\nPORT 1234\n", ".env line 2: expected KEY=VALUE");
        expect_syntax_error("PORT=1\n\nPORT\n", ".env line 3: expected KEY=VALUE");
        expect_syntax_error("1PORT=3", ".env line 1: \"1PORT\" is not a key name");
        expect_syntax_error("PO-RT=3", ".env line 1: \"PO-RT\" is not a key name");
        expect_syntax_error("PORT NUMBER=3", ".env line 1: \"PORT NUMBER\" is not a key name");
        expect_syntax_error("=3", ".env line 1: \"\" is not a key name");
        expect_syntax_error("\"PORT\"=3", "is not a key name");
        expect_syntax_error("# ok\nPORT=1\n\nFOO=1\n", ".env line 4: unknown key FOO");
        /* Keys are case-sensitive, like environment variables. */
        expect_syntax_error("port=1", ".env line 1: unknown key port");
}

static void test_nul_and_size(void **state) {
        (void)state;
        static const char with_nul[] = "PORT=1\nHOST=1\0.2.3.4\n";
        Config c;
        char *err = NULL;
        _cleanup_free_ char *big = NULL;
        size_t cap = 64 * 1024;

        config_init(&c);
        assert_int_equal(config_apply_dotenv(&c, with_nul, sizeof(with_nul) - 1, "my.env", &err), -EINVAL);
        assert_contains(err, "my.env line 2: contains a NUL byte");
        free(err);
        err = NULL;

        /* Exactly 64 KiB of comments and one setting is accepted; one byte more is not. */
        big = malloc(cap + 2);
        assert_non_null(big);
        memset(big, '#', cap + 1);
        for (size_t i = 99; i < cap; i += 100)
                big[i] = '\n';
        memcpy(big + cap - 7, "\nPORT=7", 7);
        big[cap + 1] = '\0';
        assert_int_equal(config_apply_dotenv(&c, big, cap, ".env", &err), 0);
        assert_int_equal(c.port, 7);
        big[cap] = '\n';
        assert_int_equal(config_apply_dotenv(&c, big, cap + 1, ".env", &err), -EINVAL);
        assert_contains(err, ".env: larger than 65536 bytes");
        free(err);
}

static void test_environment(void **state) {
        (void)state;
        char *envp[] = {
                "PATH=/usr/bin:/bin",
                "EXECUTION_TIMEOUT=99",
                "FOO=bar",
                "NOEQUALS",
                "port=1",
                "HOST=::",
                "SNAKEBOX_UNKNOWN=\"x\"",
                "PREINSTALL_LIBS=",
                NULL,
        };
        Config c;
        char *err = NULL;

        config_init(&c);
        assert_int_equal(config_apply_environ(&c, envp, &err), 0);
        assert_null(err);
        assert_int_equal(c.timeout_sec, 99);
        assert_int_equal(c.port, 8080);
        assert_string_equal(c.host, "::");
        assert_string_equal(c.preinstall_libs, "");
        assert_int_equal(config_apply_environ(&c, NULL, &err), 0);

        /* Values from the environment are taken as they are: no quote removal. */
        assert_int_equal(apply_env(&c, "CACHE_DIR", "\"/x\"", &err), -EINVAL);
        assert_contains(err, "CACHE_DIR=\"\\\"/x\\\"\" (from the environment)");
        free(err);
        err = NULL;
        assert_int_equal(apply_env(&c, "CACHE_DIR", "/x #y", &err), 0);
        assert_string_equal(c.cache_dir, "/x #y");

        /* A bad variable leaves the config as it was, including variables before it. */
        {
                char *bad[] = {"PORT=1", "POOL_SIZE=999", NULL};
                Config before = c;

                assert_int_equal(config_apply_environ(&c, bad, &err), -EINVAL);
                assert_contains(err,
                        "POOL_SIZE=\"999\" (from the environment): expected a whole number from 0 to 256");
                assert_config_equal(&c, &before);
                free(err);
        }
}

static void expect_text_stored(const char *key, const char *value, const char *stored) {
        Config c;
        char *err = NULL;
        const char *field;

        config_init(&c);
        if (apply_env(&c, key, value, &err) != 0)
                fail_msg("%s=\"%s\" rejected: %s", key, value, err);
        field = strcmp(key, "HOST") == 0                ? c.host
                : strcmp(key, "CACHE_DIR") == 0         ? c.cache_dir
                : strcmp(key, "SANDBOX_UID_RANGE") == 0 ? c.sandbox_uid_range
                                                        : c.preinstall_libs;
        if (strcmp(field, stored) != 0)
                fail_msg("%s=\"%s\" stored \"%s\", expected \"%s\"", key, value, field, stored);
}

static void expect_text_rejected(const char *key, const char *value, const char *needle) {
        Config c, defaults;
        char *err = NULL;
        char prefix[64];

        config_init(&c);
        config_init(&defaults);
        if (apply_env(&c, key, value, &err) != -EINVAL)
                fail_msg("%s=\"%s\" accepted", key, value);
        snprintf(prefix, sizeof(prefix), "%s=\"", key);
        assert_contains(err, prefix);
        assert_contains(err, "(from the environment): expected ");
        assert_contains(err, needle);
        assert_config_equal(&c, &defaults);
        free(err);
}

static void test_host(void **state) {
        (void)state;
        static const char *const good[] = {"127.0.0.1", "0.0.0.0", "10.1.2.3", "::1", "::", "fe80::1",
                "2001:db8::42", "::ffff:127.0.0.1"};
        static const char *const bad[] = {"", "example.com", "127.1", "256.0.0.1", "1.2.3.4.5", "[::1]",
                "127.0.0.1:80", " 127.0.0.1", "127.0.0.1 ", "fe80::1%eth0", "localhost.", "0x7f.0.0.1",
                ":::"};

        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                expect_text_stored("HOST", good[i], good[i]);
        expect_text_stored("HOST", "localhost", "127.0.0.1");
        expect_text_stored("HOST", "LocalHost", "127.0.0.1");
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                expect_text_rejected("HOST", bad[i], "IPv4 or IPv6 address");
}

static void test_preinstall_libs(void **state) {
        (void)state;
        char list[1200], name[200];

        expect_text_stored("PREINSTALL_LIBS", "", "");
        expect_text_stored("PREINSTALL_LIBS", " , \t", "");
        expect_text_stored("PREINSTALL_LIBS", "numpy", "numpy");
        /* Stored with single spaces whatever the separators were. */
        expect_text_stored("PREINSTALL_LIBS", " pandas,numpy\tscipy ,  sympy ", "pandas numpy scipy sympy");
        expect_text_stored("PREINSTALL_LIBS", "scikit-learn python_dateutil PyYAML zope.interface",
                "scikit-learn python_dateutil PyYAML zope.interface");

        static const char *const bad[] = {"numpy==1.26", "pandas;id", "pandas numpy>=1", "a/b", "$(id)",
                "pandas\nnumpy", "numpy[all]", "\"numpy\"", "pan\xc3\xa4"};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                expect_text_rejected("PREINSTALL_LIBS", bad[i], "package names (letters, digits");

        /* 127 bytes is the longest name; 128 is refused. */
        memset(name, 'a', 127);
        name[127] = '\0';
        expect_text_stored("PREINSTALL_LIBS", name, name);
        name[127] = 'a';
        name[128] = '\0';
        expect_text_rejected("PREINSTALL_LIBS", name, "127 bytes at most");

        /* A list of valid names that does not fit the field. */
        list[0] = '\0';
        while (strlen(list) < 1100)
                strcat(list, "numpy ");
        expect_text_rejected("PREINSTALL_LIBS", list, "at most 1023 bytes");
}

static void test_cache_dir(void **state) {
        (void)state;
        char path[1100];

        expect_text_stored("CACHE_DIR", "", "");
        expect_text_stored("CACHE_DIR", "/var/cache/snakebox", "/var/cache/snakebox");
        expect_text_stored("CACHE_DIR", "/with space/and#hash", "/with space/and#hash");
        static const char *const bad[] = {
                "relative", "./x", "~/x", " /x", "/a\nb", "/a\tb", "/a\rb", "/a\x7f"};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                expect_text_rejected("CACHE_DIR", bad[i], "an absolute path");

        path[0] = '/';
        memset(path + 1, 'd', 1022);
        path[1023] = '\0';
        expect_text_stored("CACHE_DIR", path, path);
        path[1023] = 'd';
        path[1024] = '\0';
        expect_text_rejected("CACHE_DIR", path, "at most 1023 bytes");
}

static void test_uid_range(void **state) {
        (void)state;
        Config c;
        char *err = NULL;
        uint32_t first = 0, last = 0;

        expect_text_stored("SANDBOX_UID_RANGE", "auto", "auto");
        expect_text_stored("SANDBOX_UID_RANGE", "off", "off");
        expect_text_stored("SANDBOX_UID_RANGE", "100000-165535", "100000-165535");
        expect_text_stored("SANDBOX_UID_RANGE", "1-4294967294", "1-4294967294");
        expect_text_stored("SANDBOX_UID_RANGE", "7-7", "7-7");
        static const char *const bad[] = {"", "0-10", "10-5", "1-4294967295", "1-99999999999", "+1-5",
                "1 -5", "1- 5", "1-5 x", "01-5", "0x10-0x20", "-5", "5-", "5", "AUTO", "1--5"};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                expect_text_rejected("SANDBOX_UID_RANGE", bad[i], "FIRST-LAST");

        /* auto: the default range, unless SANDBOX_UID or SANDBOX_GID was changed. */
        config_init(&c);
        assert_true(config_uid_range(&c, &first, &last));
        assert_int_equal(first, SANDBOX_UID_RANGE_AUTO_FIRST);
        assert_int_equal(last, SANDBOX_UID_RANGE_AUTO_LAST);
        assert_int_equal(apply(&c, "SANDBOX_UID=1234\n", &err), 0);
        assert_false(config_uid_range(&c, &first, &last));
        assert_int_equal(first, 1234);
        assert_int_equal(last, 1234);
        config_init(&c);
        assert_int_equal(apply(&c, "SANDBOX_GID=1234\n", &err), 0);
        assert_false(config_uid_range(&c, &first, &last));
        assert_int_equal(first, 65534);
        /* An explicit range wins over SANDBOX_UID; off keeps the single id. */
        assert_int_equal(apply(&c, "SANDBOX_UID=1234\nSANDBOX_UID_RANGE=200000-200099\n", &err), 0);
        assert_true(config_uid_range(&c, &first, &last));
        assert_int_equal(first, 200000);
        assert_int_equal(last, 200099);
        config_init(&c);
        assert_int_equal(apply(&c, "SANDBOX_UID_RANGE=off\n", &err), 0);
        assert_false(config_uid_range(&c, &first, &last));
        assert_int_equal(first, 65534);
        assert_null(err);
}

static void test_message_escapes_value(void **state) {
        (void)state;
        Config c;
        char *err = NULL;
        char long_value[300];

        /* Control characters and quotes are escaped, so a message cannot forge log lines. */
        config_init(&c);
        assert_int_equal(apply_env(&c, "PORT", "1\n\"x\x1b", &err), -EINVAL);
        assert_contains(err, "PORT=\"1\\n\\\"x\\x1b\" (from the environment)");
        assert_null(strchr(err, '\n'));
        free(err);
        err = NULL;

        /* A long value is elided. */
        memset(long_value, '9', sizeof(long_value) - 1);
        long_value[sizeof(long_value) - 1] = '\0';
        assert_int_equal(apply_env(&c, "PORT", long_value, &err), -EINVAL);
        assert_contains(err, "9...\" (from the environment)");
        assert_true(strlen(err) < 200);
        free(err);

        /* ret_error may be NULL. */
        assert_int_equal(apply_env(&c, "PORT", "x", NULL), -EINVAL);
        assert_int_equal(apply(&c, "NOPE=1", NULL), -EINVAL);
}

/* config_load on files in /tmp; the path is removed by the teardown even if a test fails. */
static char temp_path[64];

static int teardown_temp(void **state) {
        (void)state;
        if (temp_path[0])
                unlink(temp_path);
        temp_path[0] = '\0';
        return 0;
}

static const char *write_temp(const char *text, size_t len) {
        int fd;

        teardown_temp(NULL);
        strcpy(temp_path, "/tmp/snakebox-test-config-XXXXXX");
        fd = mkstemp(temp_path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, len), (ssize_t)len);
        close(fd);
        return temp_path;
}

static void test_load_missing_file(void **state) {
        (void)state;
        char *envp[] = {"PORT=1", NULL};
        Config c;
        char *err = NULL;

        memset(&c, 0x5a, sizeof(c));
        assert_int_equal(config_load(&c, "/nonexistent-snakebox-dir/.env", envp, &err), 0);
        assert_null(err);
        assert_int_equal(c.port, 1);
        assert_int_equal(c.timeout_sec, 30);
        assert_string_equal(c.host, "127.0.0.1");

        memset(&c, 0x5a, sizeof(c));
        assert_int_equal(config_load(&c, NULL, NULL, &err), 0);
        assert_int_equal(c.port, 8080);
}

static void test_load_file_and_precedence(void **state) {
        (void)state;
        static const char text[] = "# test\nPORT=9001\nHOST=::1\nEXECUTION_TIMEOUT=5\n";
        char *envp[] = {"EXECUTION_TIMEOUT=7", "UNRELATED=1", NULL};
        const char *path = write_temp(text, strlen(text));
        Config c;
        char *err = NULL;

        /* config_load starts from the defaults, not from what *c held. */
        memset(&c, 0x5a, sizeof(c));
        assert_int_equal(config_load(&c, path, envp, &err), 0);
        assert_int_equal(c.port, 9001);
        assert_string_equal(c.host, "::1");
        assert_int_equal(c.timeout_sec, 7); /* the environment overrides .env */
        assert_int_equal(c.pool_size, 4);
}

static void test_load_errors(void **state) {
        (void)state;
        static const char bad[] = "PORT=1\nMAX_PROCESSES=0\n";
        _cleanup_free_ char *big = NULL;
        const size_t cap = 64 * 1024;
        Config c, before;
        char *err = NULL;
        const char *path;

        config_init(&c);
        assert_int_equal(apply(&c, "PORT=4242", &err), 0);
        before = c;

        /* A bad line names the file and the line, and *c is left alone. */
        path = write_temp(bad, strlen(bad));
        assert_int_equal(config_load(&c, path, NULL, &err), -EINVAL);
        assert_contains(err, "MAX_PROCESSES=\"0\" (from ");
        assert_contains(err, path);
        assert_contains(err, " line 2): expected a whole number from 1 to 4096");
        assert_config_equal(&c, &before);
        free(err);
        err = NULL;

        /* A bad environment variable fails the load even when .env is fine. */
        {
                char *envp[] = {"QUEUE_SIZE=-1", NULL};

                path = write_temp("PORT=1\n", 7);
                assert_int_equal(config_load(&c, path, envp, &err), -EINVAL);
                assert_contains(err, "QUEUE_SIZE=\"-1\" (from the environment)");
                assert_config_equal(&c, &before);
                free(err);
                err = NULL;
        }

        /* Not a file. */
        assert_int_equal(config_load(&c, "/tmp", NULL, &err), -EISDIR);
        assert_contains(err, "/tmp: ");
        free(err);
        err = NULL;

        /* A FIFO would block start-up or feed endless text: refused without reading. */
        path = write_temp("", 0);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(mkfifo(path, 0600), 0);
        assert_int_equal(config_load(&c, path, NULL, &err), -EINVAL);
        assert_contains(err, "not a regular file");
        free(err);
        err = NULL;

        /* Exactly the cap is read; one byte more is refused. */
        big = malloc(cap + 1);
        assert_non_null(big);
        memset(big, '#', cap + 1);
        memcpy(big, "PORT=77\n", 8);
        path = write_temp(big, cap);
        assert_int_equal(config_load(&c, path, NULL, &err), 0);
        assert_int_equal(c.port, 77);
        path = write_temp(big, cap + 1);
        c = before;
        assert_int_equal(config_load(&c, path, NULL, &err), -EFBIG);
        assert_contains(err, path);
        assert_contains(err, "larger than 65536 bytes");
        assert_config_equal(&c, &before);
        free(err);
}

static char *capture(
        void (*write_fn)(const Config *, FILE *), void (*write_example)(FILE *), const Config *c) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        assert_non_null(f);
        if (write_fn)
                write_fn(c, f);
        else
                write_example(f);
        assert_int_equal(fclose(f), 0);
        return text;
}

/* A config with every key away from its default. */
static void non_default_config(Config *c) {
        char *err = NULL;

        config_init(c);
        if (apply(c,
                    "EXECUTION_TIMEOUT=3600\nPREINSTALL_LIBS=sympy\nHOST=::\nPORT=0\nMAX_CONCURRENCY=1\n"
                    "QUEUE_SIZE=0\nQUEUE_TIMEOUT=1\nPOOL_SIZE=0\nMEMORY_LIMIT_MB=16\nMAX_PROCESSES=1\n"
                    "TMP_SIZE_MB=1\nMAX_FILE_SIZE_MB=1\nMAX_OPEN_FILES=16\nMAX_OUTPUT_BYTES=1024\n"
                    "MAX_REQUEST_BYTES=1024\nSANDBOX_UID=1\nSANDBOX_GID=2\nCACHE_DIR=/c\n",
                    &err) != 0)
                fail_msg("%s", err);
}

static void test_example(void **state) {
        (void)state;
        _cleanup_free_ char *text = capture(NULL, config_write_example, NULL);
        Config c, defaults;
        char *err = NULL;
        const char *p = text;
        size_t settings = 0;

        assert_int_equal(text[0], '#');
        /* Every key, in table order, each after its help and its default/range line. */
        for (size_t i = 0; i < ELEMENTSOF(key_order); i++) {
                char needle[64];
                const char *at;

                snprintf(needle, sizeof(needle), "\n%s=", key_order[i]);
                at = strstr(p, needle);
                if (!at)
                        fail_msg("%s missing or out of order in:\n%s", key_order[i], text);
                assert_true(at - p > 0);
                p = at + 1;
        }
        for (p = text; (p = strchr(p, '\n')); p++)
                settings += p[1] && p[1] != '#' && p[1] != '\n';
        assert_int_equal(settings, ELEMENTSOF(key_order));

        assert_contains(text, "\n# default: 30, range: 1..3600 seconds\nEXECUTION_TIMEOUT=30\n");
        assert_contains(text, "\n# default: 1024, range: 16..1048576 megabytes\nMEMORY_LIMIT_MB=1024\n");
        assert_contains(text, "\n# default: 8080, range: 0..65535\nPORT=8080\n");
        assert_contains(text, "\nPREINSTALL_LIBS=\"pandas numpy matplotlib scikit-learn\"\n");
        assert_contains(text, "\nHOST=127.0.0.1\n");
        assert_contains(text, "\nCACHE_DIR=\n");
        for (size_t i = 0; i < ELEMENTSOF(numbers); i++) {
                char needle[128];

                snprintf(needle, sizeof(needle), "# default: %" PRIu64 ", range: %" PRIu64 "..%" PRIu64,
                        numbers[i].def, numbers[i].min, numbers[i].max);
                assert_contains(text, needle);
        }

        /* Read back over a config with nothing at its default, it gives the defaults. */
        non_default_config(&c);
        config_init(&defaults);
        if (apply(&c, text, &err) != 0)
                fail_msg("example rejected: %s", err);
        assert_config_equal(&c, &defaults);
}

static void test_summary(void **state) {
        (void)state;
        Config c, back;
        char *err = NULL;
        _cleanup_free_ char *text = NULL;
        const char *p;
        size_t i;

        config_init(&c);
        text = capture(config_write_summary, NULL, &c);
        assert_contains(text, "EXECUTION_TIMEOUT=30\n");
        assert_contains(text, "\nMEMORY_LIMIT_MB=1024\n");
        assert_contains(text, "\nTMP_SIZE_MB=512\n");
        assert_contains(text, "\nMAX_OUTPUT_BYTES=1048576\n");
        assert_contains(text, "\nSANDBOX_UID=65534\n");

        /* One line per key, in table order. */
        for (i = 0, p = text; *p; i++) {
                const char *eol = strchr(p, '\n');
                size_t n = strlen(key_order[i]);

                assert_non_null(eol);
                assert_true(i < ELEMENTSOF(key_order));
                if (strncmp(p, key_order[i], n) != 0 || p[n] != '=')
                        fail_msg("summary line %zu is \"%.*s\", expected %s=...", i + 1, (int)(eol - p), p,
                                key_order[i]);
                p = eol + 1;
        }
        assert_int_equal(i, ELEMENTSOF(key_order));
        free(text);

        /* The summary of any config reads back to the same config. */
        assert_int_equal(
                apply(&c,
                        "PREINSTALL_LIBS=numpy,scipy\nCACHE_DIR='/a \"b\" \\c #d'\nMEMORY_LIMIT_MB=2048\n"
                        "HOST=localhost\n",
                        &err),
                0);
        text = capture(config_write_summary, NULL, &c);
        assert_contains(text, "\nMEMORY_LIMIT_MB=2048\n");
        assert_contains(text, "\nPREINSTALL_LIBS=\"numpy scipy\"\n");
        assert_contains(text, "\nHOST=127.0.0.1\n");
        non_default_config(&back);
        if (apply(&back, text, &err) != 0)
                fail_msg("summary rejected: %s\n%s", err, text);
        assert_config_equal(&back, &c);
        assert_string_equal(back.cache_dir, "/a \"b\" \\c #d");
}

static void test_cache_dir_resolved(void **state) {
        Config c;
        char buf[64];
        (void)state;
        config_init(&c);
        snprintf(c.cache_dir, sizeof c.cache_dir, "/srv/cache");
        assert_int_equal(config_cache_dir(&c, buf, sizeof buf), 0);
        assert_string_equal(buf, "/srv/cache");
        c.cache_dir[0] = 0;
        assert_int_equal(config_cache_dir(&c, buf, sizeof buf), 0);
        if (geteuid() == 0)
                assert_string_equal(buf, "/var/cache/snakebox");
        assert_int_equal(config_cache_dir(&c, buf, 4), -ENAMETOOLONG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cache_dir),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_each_number_key),
                cmocka_unit_test(test_number_ranges),
                cmocka_unit_test(test_number_junk),
                cmocka_unit_test(test_number_message_exact),
                cmocka_unit_test(test_number_forms_accepted),
                cmocka_unit_test(test_later_line_wins),
                cmocka_unit_test(test_quoting),
                cmocka_unit_test(test_quoting_errors),
                cmocka_unit_test(test_export_prefix),
                cmocka_unit_test(test_comments_and_blank_lines),
                cmocka_unit_test(test_crlf),
                cmocka_unit_test(test_malformed_lines),
                cmocka_unit_test(test_nul_and_size),
                cmocka_unit_test(test_environment),
                cmocka_unit_test(test_host),
                cmocka_unit_test(test_preinstall_libs),
                cmocka_unit_test(test_cache_dir_resolved),
                cmocka_unit_test(test_uid_range),
                cmocka_unit_test(test_message_escapes_value),
                cmocka_unit_test(test_load_missing_file),
                cmocka_unit_test_teardown(test_load_file_and_precedence, teardown_temp),
                cmocka_unit_test_teardown(test_load_errors, teardown_temp),
                cmocka_unit_test(test_example),
                cmocka_unit_test(test_summary),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
