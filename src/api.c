/* /api/execute: what a request may contain and what an answer says. The answer keeps the old
 * python-sandbox contract ({"status", "output"}) and adds fields beside it, never instead.
 * Two kinds of failure are never mixed: the program's (exception, timeout, limits) is a 200
 * with status "Error"; ours (no sandbox could be made) is a 5xx; a bad request is a 4xx. */
#include "api.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/macro.h"
#include "util/utf8.h"

/* jansson's own cleanup attribute (json_auto_t) under our naming. */
#define _cleanup_json_ _cleanup_(json_decrefp)

static const char *const allowed_fields[] = {"code"};

static bool is_blank(const char *s, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r' && s[i] != '\f' &&
                        s[i] != '\v')
                        return false;
        return true;
}

int api_decode_request(const char *body, size_t len, char **ret, size_t *ret_len, char *why, size_t whyn) {
        json_error_t e;
        _cleanup_json_ json_t *root =
                json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &e);
        if (!root) {
                snprintf(why, whyn, "invalid JSON at line %d, column %d (position %d): %s", e.line, e.column,
                        e.position, e.text);
                return 400;
        }
        if (!json_is_object(root)) {
                snprintf(why, whyn, "the request body must be a JSON object like {\"code\": \"print(1)\"}");
                return 400;
        }
        const char *key;
        json_t *value;
        json_object_foreach(root, key, value) {
                bool known = false;
                for (size_t i = 0; i < ELEMENTSOF(allowed_fields); i++)
                        known = known || strcmp(key, allowed_fields[i]) == 0;
                if (!known) {
                        snprintf(why, whyn, "unknown field \"%.100s\": the allowed field is \"code\"", key);
                        return 400;
                }
        }
        json_t *code = json_object_get(root, "code");
        if (!code) {
                snprintf(why, whyn, "field \"code\" is required: send {\"code\": \"<python source>\"}");
                return 400;
        }
        if (!json_is_string(code)) {
                snprintf(why, whyn, "field \"code\" must be a string");
                return 400;
        }
        const char *src = json_string_value(code);
        size_t n = json_string_length(code);
        if (n == 0 || is_blank(src, n)) {
                snprintf(why, whyn, "field \"code\" must not be empty");
                return 400;
        }
        if (memchr(src, 0, n)) {
                snprintf(why, whyn, "field \"code\" must not contain NUL characters (\\u0000)");
                return 400;
        }
        return api_runner_request(src, n, ret, ret_len) < 0 ? 503 : 0;
}

int api_runner_request(const char *code, size_t n, char **ret, size_t *ret_len) {
        _cleanup_json_ json_t *req = json_pack("{ss%}", "code", code, n);
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

/* The runner's report of the exception, if it is well-formed. */
static json_t *report_error(const RunResult *r) {
        if (!r->report)
                return NULL;
        _cleanup_json_ json_t *rep = json_loadb(r->report, r->report_len, 0, NULL);
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

int api_build_answer(const RunResult *r, const Config *c, char **ret, size_t *ret_len) {
        char msg[256], sig[32];
        *ret = NULL;

        switch (r->outcome) {
        case RUN_QUEUE_TIMEOUT:
                *ret = api_error_body(
                        "all sandboxes stayed busy for QUEUE_TIMEOUT; try again later", ret_len);
                return 503;
        case RUN_SHUTDOWN:
                *ret = api_error_body("the server is shutting down; try again later", ret_len);
                return 503;
        case RUN_INTERNAL:
        case RUN_ABORTED:
                snprintf(msg, sizeof msg, "internal error: %s",
                        r->internal_error[0] ? r->internal_error : "the run was abandoned");
                *ret = api_error_body(msg, ret_len);
                return 500;
        default:
                break;
        }

        bool ok = r->outcome == RUN_EXITED && r->signal == 0 && r->exit_code == 0;
        json_t *error = NULL;
        const char *suffix = NULL;
        switch (r->outcome) {
        case RUN_TIMEOUT:
                snprintf(msg, sizeof msg, "Timeout Error: Code execution exceeded %u seconds",
                        r->timeout_sec);
                suffix = msg;
                error = limit_error("Timeout", msg + strlen("Timeout Error: "));
                break;
        case RUN_MEMORY_LIMIT:
                snprintf(msg, sizeof msg,
                        "Memory Limit Error: the program used more than MEMORY_LIMIT_MB (%llu MB) and was "
                        "killed",
                        (unsigned long long)(c->memory_limit_bytes >> 20));
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
                error = report_error(r);
                msg[0] = 0;
                if (r->signal) {
                        snprintf(msg, sizeof msg, "Killed by %s", signal_name(r->signal, sig, sizeof sig));
                        if (!error)
                                error = limit_error("Signal", msg);
                } else if (!error) {
                        char code[64];
                        snprintf(code, sizeof code, "exit code %d", r->exit_code);
                        error = limit_error("SystemExit", code);
                }
                /* A failed run that also hit the process cap: the cap is the likely cause. */
                if (r->process_limit_hit) {
                        size_t n = strlen(msg);
                        snprintf(msg + n, sizeof msg - n,
                                "%sProcess Limit: the program reached MAX_PROCESSES (%u)", n ? "\n" : "",
                                c->max_processes);
                }
                if (msg[0])
                        suffix = msg;
                break;
        }

        /* output: what the program wrote, in order, then why it stopped. */
        size_t olen = r->merged.len, slen = suffix ? strlen(suffix) : 0;
        _cleanup_free_ char *out = malloc(olen + slen + 2);
        if (!out) {
                json_decref(error);
                return 503;
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
                json_object_set_new(o, "cpu_ms", json_integer((json_int_t)r->cpu_ms)) < 0 ||
                json_object_set_new(o, "memory_peak_bytes", json_integer((json_int_t)r->memory_peak_bytes)) <
                        0)
                return 503;
        char *s = json_dumps(o, JSON_COMPACT);
        if (!s)
                return 503;
        *ret = s;
        *ret_len = strlen(s);
        return 200;
}
