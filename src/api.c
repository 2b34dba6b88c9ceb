/* /api/execute: what a request may contain and what an answer says. The answer keeps the old
 * python-sandbox contract ({"status", "output"}) and adds fields beside it, never instead.
 * Two kinds of failure are never mixed: the program's (exception, timeout, limits) is a 200
 * with status "Error"; ours (no sandbox could be made) is a 5xx; a bad request is a 4xx. */
#include "api.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"
#include "report.h"
#include "upload.h"
#include "util/macro.h"
#include "util/str.h"
#include "util/utf8.h"

static const char *const allowed_fields[] = {
        "code", "stdin", "files", "return_files", "timeout", "memory_mb", "image_format"};
#define ALLOWED_FIELDS_TEXT "code, stdin, files, return_files, timeout, memory_mb, image_format"

#define RETURN_PATTERNS_MAX 64
#define RETURN_PATTERN_LEN_MAX 256

/* A JSON string equal to one of the words: compared with its length, so an embedded NUL
 * ("png\u0000x") does not pass as "png". */
static bool string_is(json_t *v, const char *a, const char *b) {
        if (!json_is_string(v))
                return false;
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        return (n == strlen(a) && memcmp(s, a, n) == 0) || (b && n == strlen(b) && memcmp(s, b, n) == 0);
}

static bool is_blank(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r' && s[i] != '\f' &&
                        s[i] != '\v')
                        return false;
        return true;
}

/* "files": each entry {"name", "content", "encoding"?}; names checked by upload.c. */
static HttpStatus check_files(json_t *files, const Config *c, char *why, size_t whyn) {
        char reason[160];
        size_t index;
        json_t *f;

        if (!json_is_array(files)) {
                snprintf(why, whyn,
                        "field \"files\" must be a list of {\"name\", \"content\", \"encoding\"}");
                return HTTP_BAD_REQUEST;
        }
        size_t n = json_array_size(files);
        if (n > c->max_files) {
                snprintf(why, whyn, "field \"files\": %zu files, more than MAX_FILES (%u)", n, c->max_files);
                return HTTP_BAD_REQUEST;
        }
        _cleanup_free_ const char **names = calloc(n ? n : 1, sizeof *names);
        if (!names)
                return HTTP_SERVICE_UNAVAILABLE;
        uint64_t total = 0;
        json_array_foreach(files, index, f) {
                if (!json_is_object(f)) {
                        snprintf(why, whyn, "field \"files\": entry %zu is not an object", index);
                        return HTTP_BAD_REQUEST;
                }
                json_t *name = json_object_get(f, "name"), *content = json_object_get(f, "content"),
                       *encoding = json_object_get(f, "encoding");
                if (!json_is_string(name)) {
                        snprintf(why, whyn, "field \"files\": entry %zu needs a \"name\" string", index);
                        return HTTP_BAD_REQUEST;
                }
                const char *nm = json_string_value(name);
                size_t nlen = json_string_length(name);
                if (upload_check_name(nm, nlen, reason, sizeof reason) < 0) {
                        snprintf(why, whyn, "file \"%.200s\": %s", nm, reason);
                        return HTTP_BAD_REQUEST;
                }
                const char *key;
                json_t *v;
                json_object_foreach(f, key, v) {
                        if (strcmp(key, "name") != 0 && strcmp(key, "content") != 0 &&
                                strcmp(key, "encoding") != 0) {
                                snprintf(why, whyn,
                                        "file \"%.200s\": unknown key \"%.60s\" (allowed: name, content, "
                                        "encoding)",
                                        nm, key);
                                return HTTP_BAD_REQUEST;
                        }
                }
                if (!json_is_string(content)) {
                        snprintf(why, whyn, "file \"%.200s\": \"content\" must be a string", nm);
                        return HTTP_BAD_REQUEST;
                }
                bool base64 = encoding && string_is(encoding, "base64", NULL);
                size_t size = json_string_length(content);
                if (encoding && !base64 && !string_is(encoding, "utf-8", NULL)) {
                        snprintf(why, whyn, "file \"%.200s\": \"encoding\" must be \"utf-8\" or \"base64\"",
                                nm);
                        return HTTP_BAD_REQUEST;
                }
                if (base64 && upload_base64_size(
                                      json_string_value(content), json_string_length(content), &size) < 0) {
                        snprintf(why, whyn, "file \"%.200s\": \"content\" is not valid base64", nm);
                        return HTTP_BAD_REQUEST;
                }
                total += size;
                if (total > c->max_files_bytes) {
                        snprintf(why, whyn, "field \"files\": more than MAX_FILES_BYTES (%llu bytes) in all",
                                (unsigned long long)c->max_files_bytes);
                        return HTTP_BAD_REQUEST;
                }
                names[index] = nm;
        }
        const char *clash = NULL;
        int r = upload_find_conflict(names, n, &clash);
        if (r < 0)
                return HTTP_SERVICE_UNAVAILABLE;
        if (r > 0) {
                snprintf(why, whyn,
                        "file \"%.200s\": given twice, or also used as a directory by another file", clash);
                return HTTP_BAD_REQUEST;
        }
        return HTTP_STATUS_NONE;
}

static HttpStatus check_return_files(json_t *v, char *why, size_t whyn) {
        size_t i;
        json_t *pat;
        if (json_is_boolean(v))
                return HTTP_STATUS_NONE;
        if (!json_is_array(v) || json_array_size(v) > RETURN_PATTERNS_MAX) {
                snprintf(why, whyn,
                        "field \"return_files\" must be true, false, or a list of at most %d glob patterns",
                        RETURN_PATTERNS_MAX);
                return HTTP_BAD_REQUEST;
        }
        json_array_foreach(v, i, pat) {
                if (!json_is_string(pat) || json_string_length(pat) == 0 ||
                        json_string_length(pat) > RETURN_PATTERN_LEN_MAX ||
                        memchr(json_string_value(pat), 0, json_string_length(pat))) {
                        snprintf(why, whyn,
                                "field \"return_files\": pattern %zu must be a non-empty string of at most "
                                "%d bytes",
                                i, RETURN_PATTERN_LEN_MAX);
                        return HTTP_BAD_REQUEST;
                }
        }
        return HTTP_STATUS_NONE;
}

HttpStatus api_decode_request(
        const char *body, size_t len, const Config *c, ApiRequest *ret, char *why, size_t whyn) {
        json_error_t e;
        HttpStatus r;

        *ret = (ApiRequest){0};
        _cleanup_json_ json_t *root =
                json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &e);
        if (!root) {
                snprintf(why, whyn, "invalid JSON at line %d, column %d (position %d): %s", e.line, e.column,
                        e.position, e.text);
                return HTTP_BAD_REQUEST;
        }
        if (!json_is_object(root)) {
                snprintf(why, whyn, "the request body must be a JSON object like {\"code\": \"print(1)\"}");
                return HTTP_BAD_REQUEST;
        }
        const char *key;
        json_t *value;
        json_object_foreach(root, key, value) {
                bool known = false;
                for (size_t i = 0; i < ELEMENTSOF(allowed_fields); i++)
                        known = known || strcmp(key, allowed_fields[i]) == 0;
                if (!known) {
                        snprintf(why, whyn,
                                "unknown field \"%.100s\": the allowed fields are " ALLOWED_FIELDS_TEXT,
                                key);
                        return HTTP_BAD_REQUEST;
                }
        }
        json_t *code = json_object_get(root, "code");
        if (!code) {
                snprintf(why, whyn, "field \"code\" is required: send {\"code\": \"<python source>\"}");
                return HTTP_BAD_REQUEST;
        }
        if (!json_is_string(code)) {
                snprintf(why, whyn, "field \"code\" must be a string");
                return HTTP_BAD_REQUEST;
        }
        const char *src = json_string_value(code);
        size_t n = json_string_length(code);
        if (n == 0 || is_blank(src, n)) {
                snprintf(why, whyn, "field \"code\" must not be empty");
                return HTTP_BAD_REQUEST;
        }
        if (memchr(src, 0, n)) {
                snprintf(why, whyn, "field \"code\" must not contain NUL characters (\\u0000)");
                return HTTP_BAD_REQUEST;
        }

        _cleanup_json_ json_t *runner = json_pack("{sO}", "code", code);
        if (!runner)
                return HTTP_SERVICE_UNAVAILABLE;

        json_t *stdin_v = json_object_get(root, "stdin");
        if (stdin_v) {
                if (!json_is_string(stdin_v)) {
                        snprintf(why, whyn, "field \"stdin\" must be a string");
                        return HTTP_BAD_REQUEST;
                }
                json_object_set(runner, "stdin", stdin_v);
        }
        json_t *files = json_object_get(root, "files");
        if (files) {
                r = check_files(files, c, why, whyn);
                if (r)
                        return r;
                json_object_set(runner, "files", files);
        }
        json_t *ret_files = json_object_get(root, "return_files");
        if (ret_files) {
                r = check_return_files(ret_files, why, whyn);
                if (r)
                        return r;
                if (!json_is_false(ret_files) &&
                        !(json_is_array(ret_files) && json_array_size(ret_files) == 0)) {
                        json_object_set(runner, "return_files", ret_files);
                        ret->want_files = true;
                } else if (json_is_array(ret_files))
                        ret->want_files = true;
        }
        json_t *timeout = json_object_get(root, "timeout");
        if (timeout) {
                double t = json_is_number(timeout) ? json_number_value(timeout) : -1;
                if (!(t > 0) || t > c->timeout_sec) {
                        snprintf(why, whyn,
                                "field \"timeout\" must be a number of seconds above 0 and at most %u "
                                "(the server's EXECUTION_TIMEOUT)",
                                c->timeout_sec);
                        return HTTP_BAD_REQUEST;
                }
                ret->timeout_ms = (uint32_t)(t * 1000 + 0.5);
                if (ret->timeout_ms == 0)
                        ret->timeout_ms = 1;
                json_object_set_new(runner, "timeout_sec", json_real(t));
        }
        json_t *mem = json_object_get(root, "memory_mb");
        if (mem) {
                uint64_t max_mb = c->memory_limit_bytes >> 20;
                if (!json_is_integer(mem) || json_integer_value(mem) < 16 ||
                        (uint64_t)json_integer_value(mem) > max_mb) {
                        snprintf(why, whyn,
                                "field \"memory_mb\" must be a whole number from 16 to %llu (the server's "
                                "MEMORY_LIMIT_MB)",
                                (unsigned long long)max_mb);
                        return HTTP_BAD_REQUEST;
                }
                ret->memory_bytes = (uint64_t)json_integer_value(mem) << 20;
                json_object_set_new(runner, "memory_bytes", json_integer((json_int_t)ret->memory_bytes));
                /* Only used without a memory cgroup: the runner lowers its RLIMIT_AS to this. */
                uint64_t address_space = ret->memory_bytes + ADDRESS_SPACE_HEADROOM_BYTES;
                json_object_set_new(runner, "address_space_bytes", json_integer((json_int_t)address_space));
        }
        json_t *fmt = json_object_get(root, "image_format");
        if (fmt) {
                if (!string_is(fmt, "png", "svg")) {
                        snprintf(why, whyn, "field \"image_format\" must be \"png\" or \"svg\"");
                        return HTTP_BAD_REQUEST;
                }
                json_object_set(runner, "image_format", fmt);
        }
        json_t *limits = json_pack("{sI sI sI sI sI sI sI}", "images", (json_int_t)c->max_images,
                "image_bytes", (json_int_t)c->max_image_bytes, "return_file_bytes",
                (json_int_t)c->max_return_file_bytes, "return_bytes", (json_int_t)c->max_return_bytes,
                "return_files", (json_int_t)c->max_return_files, "result_bytes",
                (json_int_t)c->max_result_bytes, "error_bytes", (json_int_t)REPORT_ERROR_BYTES);
        if (!limits || json_object_set_new(runner, "limits", limits) < 0 ||
                json_object_set_new(runner, "mode", json_string("report")) < 0)
                return HTTP_SERVICE_UNAVAILABLE;

        ret->runner = json_dumps(runner, JSON_COMPACT);
        if (!ret->runner)
                return HTTP_SERVICE_UNAVAILABLE;
        ret->runner_len = strlen(ret->runner);
        return HTTP_STATUS_NONE;
}

int api_request_live(char **runner, size_t *len) {
        static const char live[] = "\"live\":true,";
        const size_t k = sizeof live - 1;
        /* The request is our own compact dump of an object that has at least "code", so it is
         * "{" + members + "}": the flag goes in front of them, with no re-parse of code and
         * files that may be megabytes long. */
        if (*len < 2 || (*runner)[0] != '{' || (*runner)[1] == '}')
                return -EINVAL;
        char *s = realloc(*runner, *len + k + 1);
        if (!s)
                return -ENOMEM;
        memmove(s + 1 + k, s + 1, *len); /* the members, the "}" and the NUL */
        memcpy(s + 1, live, k);
        *runner = s;
        *len += k;
        return 0;
}

int api_runner_request(const char *code, size_t n, char **ret, size_t *ret_len) {
        _cleanup_json_ json_t *req = json_pack("{ss%ss}", "code", code, n, "mode", "plain");
        if (!req)
                return -ENOMEM;
        char *s = json_dumps(req, JSON_COMPACT);
        if (!s)
                return -ENOMEM;
        *ret = s;
        *ret_len = strlen(s);
        return 0;
}

char *api_error_body(const char *msg, size_t *ret_len) {
        _cleanup_free_ char *clean = NULL;
        size_t n;
        clean = utf8_sanitize(msg, strlen(msg), &n);
        if (!clean)
                return NULL;
        _cleanup_json_ json_t *o = json_pack("{ssss%}", "status", "Error", "output", clean, n);
        if (!o)
                return NULL;
        char *s = json_dumps(o, JSON_COMPACT);
        if (s && ret_len)
                *ret_len = strlen(s);
        return s;
}

/* A JSON string from program bytes, repaired to valid UTF-8. */
static json_t *bytes_string(const char *p, size_t n) {
        size_t m;
        _cleanup_free_ char *s = utf8_sanitize(p ? p : "", p ? n : 0, &m);
        if (!s)
                return NULL;
        return json_stringn(s, m);
}

static const char *signal_name(int sig, char *buf, size_t n) {
        const char *abbrev = sigabbrev_np(sig);
        if (abbrev)
                snprintf(buf, n, "SIG%s", abbrev);
        else
                snprintf(buf, n, "signal %d", sig);
        return buf;
}

/* The runner's report, judged once (report.c): 0 and the checked report in *ret (NULL when
 * there is none: the run ended before its 'Z'); -EBADMSG and why when the run sent a report
 * that is not one the runner writes, which only the program can have forged; -ENOMEM. */
static int load_report(const RunResult *r, const Config *c, json_t **ret, char *why, size_t whyn) {
        *ret = NULL;
        if (!r->report_done)
                return 0;
        if (r->report_end_bad) {
                snprintf(why, whyn, "its end frame is not 'Z', an exit code 0..255 and the peak RSS");
                return -EBADMSG;
        }
        if (r->report.dropped) {
                snprintf(why, whyn, "larger than its cap (%zu bytes)", r->report.cap);
                return -EBADMSG;
        }
        return report_parse(r->report.data ? r->report.data : "", r->report.len, c, ret, why, whyn);
}

/* The runner's report of the exception, if it is well-formed. */
static json_t *report_error(json_t *rep) {
        json_t *e = rep ? json_object_get(rep, "error") : NULL;
        if (!json_is_object(e))
                return NULL;
        json_t *type = json_object_get(e, "type"), *msg = json_object_get(e, "message"),
               *tb = json_object_get(e, "traceback");
        if (!json_is_string(type) || !json_is_string(msg))
                return NULL;
        return json_pack("{sOsOsO}", "type", type, "message", msg, "traceback",
                json_is_string(tb) && json_string_length(tb) > 0 ? tb : json_null());
}

static json_t *limit_error(const char *type, const char *message) {
        return json_pack("{sssssn}", "type", type, "message", message, "traceback");
}

/* The reported exception's errno, when its message is an OSError's "[Errno N] ...", else 0. */
static int error_errno(json_t *error) {
        const char *m = json_string_value(json_object_get(error, "message"));
        int e = 0;
        if (!m || strncmp(m, "[Errno ", 7) != 0)
                return 0;
        for (m += 7; *m >= '0' && *m <= '9' && e < 10000; m++)
                e = e * 10 + (*m - '0');
        return *m == ']' ? e : 0;
}

/* Appends to msg (a line of its own) the limit behind a failure that shows only inside the
 * program, when the server can tell which: on the only file system a run can write (its
 * tmpfs), EFBIG or SIGXFSZ is RLIMIT_FSIZE, ENOSPC the tmpfs's size (or its inodes, which
 * follow the size), EMFILE RLIMIT_NOFILE; a pids cgroup's peak at the cap is the process
 * limit (process_limit_hit). A thread or fork refused with EAGAIN and no pids cgroup to say so
 * may be the process limit (RLIMIT_NPROC, which nothing outside counts) or memory for the new
 * stack (RLIMIT_AS), and is said as both; so is a MemoryError (numpy's is a subclass), which a
 * memory cgroup never raises (it kills) but RLIMIT_AS does, and so may a request the kernel's
 * overcommit check refuses. */
/* Which memory limit the run had, as the client knows it: its own memory_mb when that was below
 * the server's, and the value in MB. */
static const char *memory_limit_name(const RunResult *r, const Config *c) {
        return r->memory_bytes && r->memory_bytes < c->memory_limit_bytes ? "the request's memory_mb"
                                                                          : "MEMORY_LIMIT_MB";
}

static unsigned long long memory_limit_mb(const RunResult *r, const Config *c) {
        return (unsigned long long)((r->memory_bytes ? r->memory_bytes : c->memory_limit_bytes) >> 20);
}

static void add_limit_note(const RunResult *r, const Config *c, json_t *error, char *msg, size_t size) {
        char note[300];
        int e = error_errno(error);
        const char *type = json_string_value(json_object_get(error, "type"));
        const char *m = json_string_value(json_object_get(error, "message"));

        note[0] = 0;
        if (r->process_limit_hit)
                snprintf(note, sizeof note,
                        "Process Limit: the program reached MAX_PROCESSES (%u processes and threads, the "
                        "run's own included), where a new thread or process is refused",
                        c->max_processes);
        else if (e == EFBIG || r->signal == SIGXFSZ)
                snprintf(note, sizeof note, "File Size Limit: a file reached MAX_FILE_SIZE_MB (%llu MB)",
                        (unsigned long long)(c->max_file_size_bytes >> 20));
        else if (e == ENOSPC)
                snprintf(note, sizeof note,
                        "Disk Limit: /work, /tmp and /dev/shm together are full at TMP_SIZE_MB (%llu MB)",
                        (unsigned long long)(c->tmp_size_bytes >> 20));
        else if (e == EMFILE)
                snprintf(note, sizeof note,
                        "Open Files Limit: a process reached MAX_OPEN_FILES (%u open files)",
                        c->max_open_files);
        else if (type && (strcmp(type, "MemoryError") == 0 || strcmp(type, "_ArrayMemoryError") == 0))
                snprintf(note, sizeof note,
                        "Memory Limit: an allocation failed: the run may have reached %s (%llu MB; "
                        "without a memory cgroup, of address space per process)",
                        memory_limit_name(r, c), memory_limit_mb(r, c));
        else if (e == EAGAIN || (type && m && strcmp(type, "RuntimeError") == 0 &&
                                        strcmp(m, "can't start new thread") == 0))
                snprintf(note, sizeof note,
                        "Process Limit: a thread or process could not be created: the run may have "
                        "reached MAX_PROCESSES (%u processes and threads) or its memory limit",
                        c->max_processes);
        if (!note[0])
                return;
        size_t n = strlen(msg);
        snprintf(msg + n, size - n, "%s%s", n ? "\n" : "", note);
}

/* rep's value of key when it is of the wanted kind (rep was checked by report_parse, so a
 * present value is), else a new empty or zero one. */
static json_t *taken(json_t *rep, const char *key, json_type type) {
        json_t *v = rep ? json_object_get(rep, key) : NULL;
        if (v && json_typeof(v) == type)
                return json_incref(v);
        return type == JSON_ARRAY ? json_array() : type == JSON_INTEGER ? json_integer(0) : json_null();
}

/* The data results the runner reported (images, result, files), from the checked report. */
static int add_results(json_t *o, json_t *rep, const RunResult *r) {
        if (json_object_set_new(o, "images", taken(rep, "images", JSON_ARRAY)) < 0 ||
                json_object_set_new(o, "images_dropped", taken(rep, "images_dropped", JSON_INTEGER)) < 0 ||
                json_object_set_new(o, "result", taken(rep, "result", JSON_OBJECT)) < 0)
                return -1;
        if (r->want_files && (json_object_set_new(o, "files", taken(rep, "files", JSON_ARRAY)) < 0 ||
                                     json_object_set_new(o, "files_dropped",
                                             taken(rep, "files_dropped", JSON_INTEGER)) < 0))
                return -1;
        return 0;
}

HttpStatus api_build_answer(const RunResult *r, const Config *c, char **ret, size_t *ret_len) {
        char msg[768], sig[32], why[200];
        *ret = NULL;

        switch (r->outcome) {
        case RUN_QUEUE_TIMEOUT:
                *ret = api_error_body(
                        "all sandboxes stayed busy for QUEUE_TIMEOUT; try again later", ret_len);
                return HTTP_SERVICE_UNAVAILABLE;
        case RUN_SHUTDOWN:
                *ret = api_error_body("the server is shutting down; try again later", ret_len);
                return HTTP_SERVICE_UNAVAILABLE;
        case RUN_INTERNAL:
        case RUN_ABORTED:
                snprintf(msg, sizeof msg, "internal error: %s",
                        r->internal_error[0] ? r->internal_error : "the run was abandoned");
                *ret = api_error_body(msg, ret_len);
                return HTTP_INTERNAL_ERROR;
        default:
                break;
        }

        char bad[200];
        _cleanup_json_ json_t *rep = NULL;
        int rr = load_report(r, c, &rep, bad, sizeof bad);
        if (rr == -ENOMEM)
                return HTTP_SERVICE_UNAVAILABLE;
        bool malformed = rr < 0;
        bool ok = r->outcome == RUN_EXITED && r->signal == 0 && r->exit_code == 0 && !malformed;
        json_t *error = NULL;
        const char *suffix = NULL;
        switch (r->outcome) {
        case RUN_TIMEOUT:
                if (r->timeout_ms % 1000 == 0)
                        snprintf(msg, sizeof msg, "Timeout Error: Code execution exceeded %u seconds",
                                r->timeout_ms / 1000);
                else
                        snprintf(msg, sizeof msg, "Timeout Error: Code execution exceeded %g seconds",
                                r->timeout_ms / 1000.0);
                suffix = msg;
                /* The output line is the old project's, word for word; the message names the
                 * limit and its key. */
                snprintf(why, sizeof why, "%s (%s, EXECUTION_TIMEOUT=%u)", msg + strlen("Timeout Error: "),
                        r->timeout_ms && r->timeout_ms < c->timeout_sec * 1000U ? "the request's timeout"
                                                                                : "the server's limit",
                        c->timeout_sec);
                error = limit_error("Timeout", why);
                /* A thread the program waits for that could not be started hangs it. */
                add_limit_note(r, c, NULL, msg, sizeof msg);
                break;
        case RUN_MEMORY_LIMIT:
                snprintf(msg, sizeof msg,
                        "Memory Limit Error: the program used more than %s (%llu MB) and was killed; files "
                        "in /work, /tmp and /dev/shm count as memory",
                        memory_limit_name(r, c), memory_limit_mb(r, c));
                suffix = msg;
                error = limit_error("MemoryLimit", msg + strlen("Memory Limit Error: "));
                break;
        case RUN_OUTPUT_LIMIT:
                snprintf(msg, sizeof msg,
                        "Output Limit Error: the program wrote more than MAX_OUTPUT_BYTES (%llu bytes) and "
                        "was stopped",
                        (unsigned long long)c->max_output_bytes);
                suffix = msg;
                error = limit_error("OutputLimit", msg + strlen("Output Limit Error: "));
                break;
        default:
                if (ok)
                        break;
                msg[0] = 0;
                if (malformed) {
                        /* Only the program can have written it (the runner's report fits its
                         * schema and caps): its own failure, said as such. */
                        snprintf(msg, sizeof msg, "Report Error: the run's report is malformed: %s", bad);
                        error = limit_error("MalformedReport", msg + strlen("Report Error: "));
                        suffix = msg;
                        break;
                }
                error = report_error(rep);
                if (r->signal) {
                        snprintf(msg, sizeof msg, "Killed by %s", signal_name(r->signal, sig, sizeof sig));
                        if (!error)
                                error = limit_error("Signal", msg);
                } else if (!error) {
                        char code[64];
                        snprintf(code, sizeof code, "exit code %d", r->exit_code);
                        error = limit_error("SystemExit", code);
                }
                /* A failed run that hit a limit it could only see as an exception or a signal:
                 * the limit is the likely cause, and the note names its key. */
                add_limit_note(r, c, error, msg, sizeof msg);
                if (msg[0])
                        suffix = msg;
                break;
        }

        /* output: what the program wrote, in order, then why it stopped. */
        size_t olen = r->merged.len, slen = suffix ? strlen(suffix) : 0;
        _cleanup_free_ char *out = malloc(olen + slen + 2);
        if (!out) {
                json_decref(error);
                return HTTP_SERVICE_UNAVAILABLE;
        }
        if (olen)
                memcpy(out, r->merged.data, olen);
        if (suffix) {
                if (olen && out[olen - 1] != '\n')
                        out[olen++] = '\n';
                memcpy(out + olen, suffix, slen);
                olen += slen;
        }

        _cleanup_json_ json_t *o = json_object();
        _cleanup_json_ json_t *err_value = error ? error : json_null();
        /* json_object_set_new takes its value even on failure, so each value is made in place. */
        if (!o || json_object_set_new(o, "status", json_string(ok ? "Success" : "Error")) < 0 ||
                json_object_set_new(o, "output", bytes_string(out, olen)) < 0 ||
                json_object_set_new(o, "stdout", bytes_string(r->out.data, r->out.len)) < 0 ||
                json_object_set_new(o, "stderr", bytes_string(r->err.data, r->err.len)) < 0 ||
                json_object_set_new(
                        o, "exit_code", r->signal == 0 ? json_integer(r->exit_code) : json_null()) < 0 ||
                json_object_set_new(o, "signal",
                        r->signal ? json_string(signal_name(r->signal, sig, sizeof sig)) : json_null()) <
                        0 ||
                json_object_set(o, "error", err_value) < 0 ||
                json_object_set_new(o, "truncated", json_boolean(r->truncated)) < 0 ||
                json_object_set_new(o, "duration_ms", json_integer((json_int_t)r->duration_ms)) < 0 ||
                json_object_set_new(o, "duration_us", json_integer((json_int_t)r->duration_us)) < 0 ||
                json_object_set_new(o, "cpu_ms", json_integer((json_int_t)r->cpu_ms)) < 0 ||
                json_object_set_new(o, "memory_peak_bytes", json_integer((json_int_t)r->memory_peak_bytes)) <
                        0 ||
                add_results(o, rep, r) < 0)
                return HTTP_SERVICE_UNAVAILABLE;
        char *s = json_dumps(o, JSON_COMPACT);
        if (!s)
                return HTTP_SERVICE_UNAVAILABLE;
        *ret = s;
        *ret_len = strlen(s);
        return HTTP_OK;
}

/* ---- sessions ---- */

char *api_session_error(const char *type, const char *reason, const char *msg, size_t *ret_len) {
        _cleanup_free_ char *clean = NULL;
        size_t n;
        clean = utf8_sanitize(msg, strlen(msg), &n);
        if (!clean)
                return NULL;
        _cleanup_json_ json_t *o = json_pack("{ss ss% s{ss ss%}}", "status", "Error", "output", clean, n,
                "error", "type", type, "message", clean, n);
        if (!o)
                return NULL;
        if (reason)
                json_object_set_new(json_object_get(o, "error"), "reason", json_string(reason));
        char *s = json_dumps(o, JSON_COMPACT);
        if (s && ret_len)
                *ret_len = strlen(s);
        return s;
}

/* An optional whole number of seconds from 1 to max. */
static HttpStatus seconds_field(json_t *root, const char *name, uint32_t max, const char *key, uint32_t *ret,
        char *why, size_t whyn) {
        json_t *v = json_object_get(root, name);
        *ret = 0;
        if (!v)
                return HTTP_STATUS_NONE;
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > max) {
                snprintf(why, whyn,
                        "field \"%s\" must be a whole number of seconds from 1 to %u (the server's %s)",
                        name, max, key);
                return HTTP_BAD_REQUEST;
        }
        *ret = (uint32_t)json_integer_value(v);
        return HTTP_STATUS_NONE;
}

HttpStatus api_decode_session_create(
        const char *body, size_t len, const Config *c, ApiSessionCreate *ret, char *why, size_t whyn) {
        static const char *const fields[] = {
                "idle_timeout", "max_lifetime", "memory_mb", "profile", "files"};
        json_error_t e;
        HttpStatus r;

        *ret = (ApiSessionCreate){.full = true};
        e = (json_error_t){0};
        _cleanup_json_ json_t *root = NULL;
        if (len == 0 || is_blank(body, len))
                root = json_object();
        else
                root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &e);
        if (!root) {
                snprintf(why, whyn, "invalid JSON at line %d, column %d (position %d): %s", e.line, e.column,
                        e.position, e.text);
                return HTTP_BAD_REQUEST;
        }
        if (!json_is_object(root)) {
                snprintf(why, whyn, "the request body must be a JSON object");
                return HTTP_BAD_REQUEST;
        }
        const char *key;
        json_t *value;
        json_object_foreach(root, key, value) {
                bool known = false;
                for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                        known = known || strcmp(key, fields[i]) == 0;
                if (!known) {
                        snprintf(why, whyn,
                                "unknown field \"%.100s\": the allowed fields are idle_timeout, "
                                "max_lifetime, "
                                "memory_mb, profile, files",
                                key);
                        return HTTP_BAD_REQUEST;
                }
        }
        r = seconds_field(root, "idle_timeout", c->session_idle_timeout_sec, "SESSION_IDLE_TIMEOUT",
                &ret->idle_timeout_sec, why, whyn);
        if (r)
                return r;
        r = seconds_field(root, "max_lifetime", c->session_max_lifetime_sec, "SESSION_MAX_LIFETIME",
                &ret->max_lifetime_sec, why, whyn);
        if (r)
                return r;
        json_t *mem = json_object_get(root, "memory_mb");
        if (mem) {
                uint64_t max_mb = c->session_memory_bytes >> 20;
                if (!json_is_integer(mem) || json_integer_value(mem) < 16 ||
                        (uint64_t)json_integer_value(mem) > max_mb) {
                        snprintf(why, whyn,
                                "field \"memory_mb\" must be a whole number from 16 to %llu (the server's "
                                "SESSION_MEMORY_MB)",
                                (unsigned long long)max_mb);
                        return HTTP_BAD_REQUEST;
                }
                ret->memory_bytes = (uint64_t)json_integer_value(mem) << 20;
        }
        json_t *profile = json_object_get(root, "profile");
        if (profile) {
                if (!string_is(profile, "full", "lean")) {
                        snprintf(why, whyn, "field \"profile\" must be \"full\" or \"lean\"");
                        return HTTP_BAD_REQUEST;
                }
                ret->full = string_is(profile, "full", NULL);
        }
        _cleanup_json_ json_t *init = json_pack("{ssss}", "mode", "session", "op", "init");
        if (!init)
                return HTTP_SERVICE_UNAVAILABLE;
        json_t *files = json_object_get(root, "files");
        if (files) {
                r = check_files(files, c, why, whyn);
                if (r)
                        return r;
                json_object_set(init, "files", files);
        }
        ret->init = json_dumps(init, JSON_COMPACT);
        if (!ret->init)
                return HTTP_SERVICE_UNAVAILABLE;
        ret->init_len = strlen(ret->init);
        return HTTP_STATUS_NONE;
}

HttpStatus api_decode_session_restart(
        const char *body, size_t len, bool *ret_keep_files, char *why, size_t whyn) {
        json_error_t e;
        *ret_keep_files = false;
        if (len == 0 || is_blank(body, len))
                return HTTP_STATUS_NONE;
        _cleanup_json_ json_t *root =
                json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &e);
        if (!root || !json_is_object(root)) {
                snprintf(why, whyn, "the request body must be a JSON object like {\"keep_files\": false}");
                return HTTP_BAD_REQUEST;
        }
        const char *key;
        json_t *value;
        json_object_foreach(root, key, value) {
                if (strcmp(key, "keep_files") != 0 || !json_is_boolean(value)) {
                        snprintf(why, whyn, "the only field is \"keep_files\", a boolean");
                        return HTTP_BAD_REQUEST;
                }
                *ret_keep_files = json_is_true(value);
        }
        return HTTP_STATUS_NONE;
}

int api_merge_object(char **answer, size_t *len, const char *extra) {
        json_error_t e;
        _cleanup_json_ json_t *a = json_loadb(*answer, *len, 0, &e);
        _cleanup_json_ json_t *x = json_loads(extra, 0, &e);
        if (!a || !x || json_object_update(a, x) < 0)
                return -ENOMEM;
        char *s = json_dumps(a, JSON_COMPACT);
        if (!s)
                return -ENOMEM;
        free(*answer);
        *answer = s;
        *len = strlen(s);
        return 0;
}

/* ---- session files ---- */

HttpStatus api_file_request(int op, const char *name, const char *body, size_t len, uint32_t max_files,
        char **ret, size_t *ret_len) {
        _cleanup_json_ json_t *o = NULL;
        switch (op) {
        case SOP_FILES_LIST:
                o = json_pack("{sssI}", "op", "files_list", "max", (json_int_t)max_files);
                break;
        case SOP_FILE_GET:
                o = json_pack("{ssss}", "op", "file_get", "name", name);
                break;
        case SOP_FILE_DELETE:
                o = json_pack("{ssss}", "op", "file_delete", "name", name);
                break;
        case SOP_FILE_PUT: {
                _cleanup_free_ char *b64 = base64_encode(body, len);
                if (b64)
                        o = json_pack("{ssssss}", "op", "file_put", "name", name, "content", b64);
                break;
        }
        default:
                return HTTP_INTERNAL_ERROR;
        }
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (!s)
                return HTTP_SERVICE_UNAVAILABLE;
        *ret = s;
        *ret_len = strlen(s);
        return HTTP_STATUS_NONE;
}

int api_file_answer(
        const RunResult *r, int op, const Config *c, ApiFileAnswer *ret, char *msg, size_t msgn) {
        json_error_t e;
        *ret = (ApiFileAnswer){0};
        if (r->outcome != RUN_EXITED || !r->report_done || r->report_end_bad || r->report.dropped) {
                snprintf(msg, msgn,
                        "the file operation did not finish (the session's interpreter did not answer)");
                return -EIO;
        }
        (void)c;
        _cleanup_json_ json_t *rep = json_loadb(r->report.data ? r->report.data : "", r->report.len, 0, &e);
        if (!json_is_object(rep)) {
                snprintf(msg, msgn,
                        "the session's interpreter answered the file operation with a malformed report");
                return -EBADMSG;
        }
        json_t *err = json_object_get(rep, "error");
        if (json_is_object(err)) {
                const char *type = json_string_value(json_object_get(err, "type"));
                const char *m = json_string_value(json_object_get(err, "message"));
                type = type ? type : "OSError";
                m = m ? m : "";
                snprintf(msg, msgn, "%.100s: %.250s", type, m);
                if (strstr(m, "[Errno 28]") || strstr(m, "[Errno 27]"))
                        return 413;
                if (op != SOP_FILE_PUT || strstr(m, "[Errno 40]") || strcmp(type, "NotADirectoryError") == 0)
                        return 404;
                return 400;
        }
        if (op == SOP_FILE_PUT)
                ret->created = json_is_true(json_object_get(rep, "created"));
        if (op != SOP_FILES_LIST)
                return 0;
        /* The listing, as the server checks it: what the runner sent is the session's own (its
         * code may have forged it), so only well-formed entries are passed on. */
        json_t *files = json_object_get(rep, "files"), *list = json_array(), *f;
        size_t i;
        if (!list)
                return -ENOMEM;
        json_array_foreach(files, i, f) {
                json_t *name = json_object_get(f, "name"), *size = json_object_get(f, "size"),
                       *mtime = json_object_get(f, "mtime");
                if (json_is_string(name) && json_is_integer(size) && json_is_string(mtime))
                        json_array_append_new(
                                list, json_pack("{sOsOsO}", "name", name, "size", size, "mtime", mtime));
        }
        json_t *dropped = json_object_get(rep, "files_dropped");
        json_t *o = json_pack("{soso}", "files", list, "files_dropped",
                json_is_integer(dropped) ? json_incref(dropped) : json_integer(0));
        ret->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        return ret->body ? 0 : -ENOMEM;
}
