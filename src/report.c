/* The runner's report, judged once: a scan of the raw bytes that bounds what the JSON parser
 * may allocate, the parse, and a check against the schema runner.py writes and the caps it
 * obeys. jansson spends some 100-300 bytes on each node, while "{}," costs a sender 3 bytes:
 * a 4 MiB report of empty objects once took the server from 8 MiB to 652 MiB. So the number of
 * nodes and the depth are counted on the bytes first, and a report with more than its schema
 * can hold under the server's caps never reaches the parser. */
#include "report.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upload.h"
#include "util/macro.h"

/* {"files": [{"name": ...}]}: the deepest a well-formed report nests. */
#define REPORT_DEPTH_MAX 3
/* Longer than any key of the schema ("images_dropped", "text/plain", ...). */
#define REPORT_KEY_MAX 32

static uint64_t base64_len(uint64_t n) {
        return (n + 2) / 3 * 4;
}

/* The cap, as the sum of what each part of a well-formed report can take:
 *   64 KiB                                  keys, punctuation, numbers
 * + 3 * 6 * REPORT_ERROR_BYTES              error type, message, traceback: cut by the runner,
 *                                           each byte at worst "\u00XX" in JSON
 * + 2 * 6 * MAX_RESULT_BYTES                result text/plain and text/html, the same
 * + MAX_IMAGES * (base64(MAX_IMAGE_BYTES) + 128)        each figure, base64, and its keys
 * + base64(MAX_RETURN_BYTES)                returned contents: the runner sends a file as UTF-8
 *                                           only when that is no longer than its base64
 * + MAX_RETURN_FILES * (6 * REPORT_NAME_MAX + 128)      each entry: its name escaped, its keys
 * With the defaults: 64 KiB + 1.1 MiB + 0.75 MiB + 16 * 5.3 MiB + 10.7 MiB + 6 MiB = 104 MiB;
 * nearly all of it figures. The buffer grows with what arrives, so the cap costs nothing until
 * used, and the parse costs a small multiple of what arrived (report_parse). */
uint64_t report_cap(const Config *c) {
        return 64 * 1024 + 3 * 6 * (uint64_t)REPORT_ERROR_BYTES + 2 * 6 * c->max_result_bytes +
               (uint64_t)c->max_images * (base64_len(c->max_image_bytes) + 128) +
               base64_len(c->max_return_bytes) + (uint64_t)c->max_return_files * (6 * REPORT_NAME_MAX + 128);
}

/* Structural bytes ('{', '[', ':', ',') a well-formed report has at most: each value or key but
 * the first of the whole text follows one of them. An object of m members costs 2m, an array of
 * k elements k: so an array of k objects of m members costs k * (2m + 1). Top level: error,
 * result, images (objects of 4 members), images_dropped, files (at most 5), files_dropped. */
static uint64_t tokens_max(const Config *c) {
        return 32 + 2 * 6 + 2 * 3 /* error */ + 2 * 2 /* result */ + 1 +
               (uint64_t)c->max_images * (2 * 4 + 1) + 1 + (uint64_t)c->max_return_files * (2 * 5 + 1);
}

/* The longest string, as JSON text, a well-formed report holds: a figure's base64, a file's
 * content (the runner sends UTF-8 only when it is no longer than base64), or a text of the
 * result, the error or a name with every byte escaped. Checked by the scan too, so that a huge
 * string is refused before the parser copies it (jansson takes ~3 ms per MiB of string). */
static uint64_t string_max(const Config *c) {
        uint64_t m = MAX(base64_len(c->max_image_bytes), base64_len(c->max_return_file_bytes) + 2);
        m = MAX(m, 6 * c->max_result_bytes);
        m = MAX(m, 6 * (uint64_t)REPORT_ERROR_BYTES);
        return MAX(m, 6 * (uint64_t)REPORT_NAME_MAX) + 2;
}

/* Counts structural bytes and the depth outside strings, stopping at the first excess. Does not
 * validate JSON (the parser does); only bounds what the parser can be made to allocate. */
static int scan(const char *p, size_t n, uint64_t max_tokens, uint64_t max_string, char *why, size_t whyn) {
        uint64_t tokens = 0;
        unsigned depth = 0;
        bool in_string = false;
        size_t start = 0;
        for (size_t i = 0; i < n; i++) {
                char ch = p[i];
                if (in_string) {
                        if (ch == '\\')
                                i++;
                        else if (ch == '"')
                                in_string = false;
                        if (i - start > max_string) {
                                snprintf(why, whyn,
                                        "a string longer than any the report can hold (%llu bytes)",
                                        (unsigned long long)max_string);
                                return -EBADMSG;
                        }
                        continue;
                }
                switch (ch) {
                case '"':
                        in_string = true;
                        start = i;
                        break;
                case '{':
                case '[':
                        if (++depth > REPORT_DEPTH_MAX) {
                                snprintf(why, whyn, "nested deeper than %d levels", REPORT_DEPTH_MAX);
                                return -EBADMSG;
                        }
                        if (++tokens > max_tokens)
                                goto too_many;
                        break;
                case ':':
                case ',':
                        if (++tokens > max_tokens)
                                goto too_many;
                        break;
                case '}':
                case ']':
                        if (depth > 0)
                                depth--;
                        break;
                default:
                        break;
                }
        }
        return 0;
too_many:
        snprintf(why, whyn, "more than %llu values", (unsigned long long)max_tokens);
        return -EBADMSG;
}

/* A JSON reader for the report alone. jansson's reads a string a character at a time (measured
 * here: 4 MiB in 270-370 ms, 16 MiB in 1.3 s, on the thread that serves every HTTP connection),
 * while a report's bulk is a few long base64 strings without escapes: those are taken whole, at
 * the speed of UTF-8 validation. It reads what runner.py's json.dumps writes: objects, arrays,
 * strings, whole numbers, true, false, null; a fraction or an exponent (no report has one) is
 * refused like any other malformation. Values are built with jansson, for api.c. */
typedef struct Reader {
        const char *s;
        size_t n, i;
        const char *err; /* what was wrong, at i */
} Reader;

static void skip_ws(Reader *r) {
        while (r->i < r->n &&
                (r->s[r->i] == ' ' || r->s[r->i] == '\t' || r->s[r->i] == '\n' || r->s[r->i] == '\r'))
                r->i++;
}

static int hex4(const char *p) {
        int v = 0;
        for (int k = 0; k < 4; k++) {
                char ch = p[k];
                int d = ch >= '0' && ch <= '9'   ? ch - '0'
                        : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                        : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                                 : -1;
                if (d < 0)
                        return -1;
                v = v << 4 | d;
        }
        return v;
}

static size_t put_utf8(char *o, uint32_t cp) {
        if (cp < 0x80) {
                o[0] = (char)cp;
                return 1;
        }
        if (cp < 0x800) {
                o[0] = (char)(0xC0 | cp >> 6);
                o[1] = (char)(0x80 | (cp & 0x3F));
                return 2;
        }
        if (cp < 0x10000) {
                o[0] = (char)(0xE0 | cp >> 12);
                o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
                o[2] = (char)(0x80 | (cp & 0x3F));
                return 3;
        }
        o[0] = (char)(0xF0 | cp >> 18);
        o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[3] = (char)(0x80 | (cp & 0x3F));
        return 4;
}

/* A string at r->i (its opening quote): its text, unescaped, in *ret and *ret_len. Without
 * escapes that is the input itself (*ret_owned NULL), else a malloc'ed copy in *ret_owned. */
static int read_string(Reader *r, const char **ret, char **ret_owned, size_t *ret_len) {
        size_t start = ++r->i, end = start;
        bool escaped = false;
        while (end < r->n && r->s[end] != '"') {
                if ((unsigned char)r->s[end] < 0x20) {
                        r->err = "a control character in a string";
                        return -EBADMSG;
                }
                if (r->s[end] == '\\') {
                        escaped = true;
                        end++;
                }
                end++;
        }
        if (end >= r->n) {
                r->err = "an unterminated string";
                return -EBADMSG;
        }
        *ret_owned = NULL;
        if (!escaped) {
                r->i = end + 1;
                *ret = r->s + start;
                *ret_len = end - start;
                return 0;
        }
        /* Unescaped text is never longer than its escaped form. */
        char *o = malloc(end - start + 1);
        if (!o)
                return -ENOMEM;
        size_t len = 0;
        for (size_t i = start; i < end;) {
                if (r->s[i] != '\\') {
                        o[len++] = r->s[i++];
                        continue;
                }
                char e = r->s[i + 1];
                i += 2;
                const char *simple = strchr("\"\\/bfnrt", e);
                if (e && simple) {
                        o[len++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
                        continue;
                }
                int cp = e == 'u' && end - i >= 4 ? hex4(r->s + i) : -1;
                if (cp < 0)
                        goto bad_escape;
                i += 4;
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                        goto bad_escape;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                        int lo = end - i >= 6 && r->s[i] == '\\' && r->s[i + 1] == 'u' ? hex4(r->s + i + 2)
                                                                                       : -1;
                        if (lo < 0xDC00 || lo > 0xDFFF)
                                goto bad_escape;
                        i += 6;
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                len += put_utf8(o + len, (uint32_t)cp);
        }
        r->i = end + 1;
        *ret = *ret_owned = o;
        *ret_len = len;
        return 0;
bad_escape:
        free(o);
        r->err = "an invalid escape in a string";
        return -EBADMSG;
}

static int read_value(Reader *r, unsigned depth, json_t **ret);

static int read_container(Reader *r, unsigned depth, bool object, json_t **ret) {
        char close = object ? '}' : ']';
        if (depth >= REPORT_DEPTH_MAX) {
                r->err = "nesting too deep";
                return -EBADMSG;
        }
        _cleanup_(json_decrefp) json_t *c = object ? json_object() : json_array();
        if (!c)
                return -ENOMEM;
        r->i++;
        skip_ws(r);
        if (r->i < r->n && r->s[r->i] == close) {
                r->i++;
                *ret = TAKE_PTR(c);
                return 0;
        }
        for (;;) {
                _cleanup_free_ char *owned = NULL;
                const char *text = NULL;
                char key[REPORT_KEY_MAX + 1];
                size_t klen = 0;
                json_t *v = NULL;
                int k;
                skip_ws(r);
                if (object) {
                        if (r->i >= r->n || r->s[r->i] != '"') {
                                r->err = "a key that is not a string";
                                return -EBADMSG;
                        }
                        k = read_string(r, &text, &owned, &klen);
                        if (k < 0)
                                return k;
                        /* The schema's keys are short: a longer one is refused here already. */
                        if (klen > REPORT_KEY_MAX || memchr(text, 0, klen)) {
                                r->err = "a key of the report it cannot have";
                                return -EBADMSG;
                        }
                        memcpy(key, text, klen);
                        key[klen] = 0;
                        if (json_object_get(c, key)) {
                                r->err = "a key given twice";
                                return -EBADMSG;
                        }
                        skip_ws(r);
                        if (r->i >= r->n || r->s[r->i] != ':') {
                                r->err = "no ':' after a key";
                                return -EBADMSG;
                        }
                        r->i++;
                }
                k = read_value(r, depth + 1, &v);
                if (k < 0)
                        return k;
                /* Both take v, even on failure. */
                k = object ? json_object_setn_new(c, key, klen, v) : json_array_append_new(c, v);
                if (k < 0) {
                        r->err = "a key that is not UTF-8";
                        return -EBADMSG;
                }
                skip_ws(r);
                if (r->i < r->n && r->s[r->i] == ',') {
                        r->i++;
                        continue;
                }
                if (r->i < r->n && r->s[r->i] == close) {
                        r->i++;
                        *ret = TAKE_PTR(c);
                        return 0;
                }
                r->err = "no ',' or end after a value";
                return -EBADMSG;
        }
}

static int read_value(Reader *r, unsigned depth, json_t **ret) {
        skip_ws(r);
        if (r->i >= r->n) {
                r->err = "the end of the text where a value belongs";
                return -EBADMSG;
        }
        char ch = r->s[r->i];
        if (ch == '{' || ch == '[')
                return read_container(r, depth, ch == '{', ret);
        if (ch == '"') {
                _cleanup_free_ char *owned = NULL;
                const char *text;
                size_t len;
                int k = read_string(r, &text, &owned, &len);
                if (k < 0)
                        return k;
                /* json_stringn checks that the text is UTF-8; the runner sends nothing else. */
                *ret = json_stringn(text, len);
                if (!*ret) {
                        r->err = "a string that is not UTF-8";
                        return -EBADMSG;
                }
                return 0;
        }
        static const char *const words[] = {"true", "false", "null"};
        for (size_t w = 0; w < ELEMENTSOF(words); w++) {
                size_t wl = strlen(words[w]);
                if (r->n - r->i >= wl && memcmp(r->s + r->i, words[w], wl) == 0) {
                        r->i += wl;
                        *ret = w == 0 ? json_true() : w == 1 ? json_false() : json_null();
                        return 0;
                }
        }
        /* A whole number: -?(0|[1-9][0-9]*), within json_int_t. */
        bool neg = ch == '-';
        size_t i = r->i + neg, digits = 0;
        uint64_t v = 0;
        while (i < r->n && r->s[i] >= '0' && r->s[i] <= '9') {
                uint64_t d = (uint64_t)(r->s[i++] - '0');
                if (v > ((uint64_t)INT64_MAX - d) / 10) {
                        r->err = "a number out of range";
                        return -EBADMSG;
                }
                v = v * 10 + d;
                digits++;
        }
        if (digits == 0 || (digits > 1 && r->s[r->i + neg] == '0') ||
                (i < r->n && (r->s[i] == '.' || r->s[i] == 'e' || r->s[i] == 'E'))) {
                r->err = "not a value of a report";
                return -EBADMSG;
        }
        r->i = i;
        *ret = json_integer(neg ? -(json_int_t)v : (json_int_t)v);
        return *ret ? 0 : -ENOMEM;
}

/* Every key of o is one of the NULL-terminated keys. */
static bool only_keys(json_t *o, const char *const *keys, const char **ret_bad) {
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v) {
                bool known = false;
                for (size_t i = 0; keys[i] && !known; i++)
                        known = strcmp(k, keys[i]) == 0;
                if (!known) {
                        *ret_bad = k;
                        return false;
                }
        }
        return true;
}

static bool is_count(json_t *v) {
        return json_is_integer(v) && json_integer_value(v) >= 0;
}

static bool is_text(json_t *v, uint64_t max) {
        return json_is_string(v) && json_string_length(v) <= max;
}

#define BAD(...)                                  \
        do {                                      \
                snprintf(why, whyn, __VA_ARGS__); \
                return -EBADMSG;                  \
        } while (0)

static int check_error(json_t *e, char *why, size_t whyn) {
        static const char *const keys[] = {"type", "message", "traceback", NULL};
        const char *bad;
        if (json_is_null(e))
                return 0;
        if (!json_is_object(e))
                BAD("\"error\" is not an object");
        if (!only_keys(e, keys, &bad))
                BAD("\"error\" has an unknown key \"%.60s\"", bad);
        if (!is_text(json_object_get(e, "type"), REPORT_ERROR_BYTES) ||
                !is_text(json_object_get(e, "message"), REPORT_ERROR_BYTES))
                BAD("\"error\" needs \"type\" and \"message\" strings of at most %d bytes",
                        REPORT_ERROR_BYTES);
        json_t *tb = json_object_get(e, "traceback");
        if (tb && !is_text(tb, REPORT_ERROR_BYTES))
                BAD("\"error.traceback\" is not a string of at most %d bytes", REPORT_ERROR_BYTES);
        return 0;
}

static int check_result(json_t *res, const Config *c, char *why, size_t whyn) {
        static const char *const keys[] = {"text/plain", "text/html", NULL};
        const char *bad;
        if (json_is_null(res))
                return 0;
        if (!json_is_object(res))
                BAD("\"result\" is not an object");
        if (!only_keys(res, keys, &bad))
                BAD("\"result\" has an unknown key \"%.60s\"", bad);
        json_t *plain = json_object_get(res, "text/plain"), *html = json_object_get(res, "text/html");
        if (!is_text(plain, c->max_result_bytes) || (html && !is_text(html, c->max_result_bytes)))
                BAD("\"result\" needs strings of at most MAX_RESULT_BYTES (%llu)",
                        (unsigned long long)c->max_result_bytes);
        return 0;
}

static int check_images(json_t *images, const Config *c, char *why, size_t whyn) {
        static const char *const keys[] = {"format", "width", "height", "data", NULL};
        const char *bad;
        size_t i, size;
        json_t *img;
        if (!json_is_array(images) || json_array_size(images) > c->max_images)
                BAD("\"images\" is not a list of at most MAX_IMAGES (%u)", c->max_images);
        json_array_foreach(images, i, img) {
                if (!json_is_object(img) || !only_keys(img, keys, &bad))
                        BAD("image %zu is not {\"format\", \"width\", \"height\", \"data\"}", i);
                json_t *fmt = json_object_get(img, "format"), *data = json_object_get(img, "data");
                if (!json_is_string(fmt) ||
                        (strcmp(json_string_value(fmt), "png") != 0 &&
                                strcmp(json_string_value(fmt), "svg") != 0) ||
                        json_string_length(fmt) != 3)
                        BAD("image %zu: \"format\" is not \"png\" or \"svg\"", i);
                if (!is_count(json_object_get(img, "width")) || !is_count(json_object_get(img, "height")))
                        BAD("image %zu: \"width\" and \"height\" are not whole numbers", i);
                if (!json_is_string(data) ||
                        upload_base64_size(json_string_value(data), json_string_length(data), &size) < 0 ||
                        size > c->max_image_bytes)
                        BAD("image %zu: \"data\" is not base64 of at most MAX_IMAGE_BYTES (%llu)", i,
                                (unsigned long long)c->max_image_bytes);
        }
        return 0;
}

static int check_files(json_t *files, const Config *c, char *why, size_t whyn) {
        static const char *const keys[] = {"name", "size", "truncated", "encoding", "content", NULL};
        const char *bad;
        size_t i, size;
        json_t *f;
        uint64_t total = 0;
        if (!json_is_array(files) || json_array_size(files) > c->max_return_files)
                BAD("\"files\" is not a list of at most MAX_RETURN_FILES (%u)", c->max_return_files);
        json_array_foreach(files, i, f) {
                if (!json_is_object(f) || !only_keys(f, keys, &bad))
                        BAD("file %zu is not {\"name\", \"size\", \"truncated\"?, \"encoding\"?, "
                            "\"content\"?}",
                                i);
                json_t *name = json_object_get(f, "name"), *trunc = json_object_get(f, "truncated"),
                       *enc = json_object_get(f, "encoding"), *content = json_object_get(f, "content");
                if (!json_is_string(name) || json_string_length(name) == 0 ||
                        json_string_length(name) > REPORT_NAME_MAX ||
                        memchr(json_string_value(name), 0, json_string_length(name)))
                        BAD("file %zu: \"name\" is not a path of at most %d bytes", i, REPORT_NAME_MAX);
                if (!is_count(json_object_get(f, "size")))
                        BAD("file %zu: \"size\" is not a whole number", i);
                if (trunc && !json_is_true(trunc))
                        BAD("file %zu: \"truncated\" is not true", i);
                if (trunc || (!enc && !content)) {
                        if (enc || content)
                                BAD("file %zu: a truncated file has no content", i);
                        continue;
                }
                if (!json_is_string(enc) || !json_is_string(content))
                        BAD("file %zu: \"encoding\" and \"content\" go together", i);
                const char *e = json_string_value(enc);
                size = json_string_length(content);
                if (strcmp(e, "base64") == 0 && json_string_length(enc) == 6) {
                        if (upload_base64_size(json_string_value(content), size, &size) < 0)
                                BAD("file %zu: \"content\" is not base64", i);
                } else if (!(strcmp(e, "utf-8") == 0 && json_string_length(enc) == 5))
                        BAD("file %zu: \"encoding\" is not \"utf-8\" or \"base64\"", i);
                total += size;
                if (size > c->max_return_file_bytes || total > c->max_return_bytes)
                        BAD("file %zu: more content than MAX_RETURN_FILE_BYTES (%llu) or "
                            "MAX_RETURN_BYTES (%llu)",
                                i, (unsigned long long)c->max_return_file_bytes,
                                (unsigned long long)c->max_return_bytes);
        }
        return 0;
}

int report_parse(const char *data, size_t len, const Config *c, json_t **ret, char *why, size_t whyn) {
        static const char *const keys[] = {
                "error", "result", "images", "images_dropped", "files", "files_dropped", NULL};
        const char *bad;
        json_t *v;
        int r;

        if (len > report_cap(c))
                BAD("larger than its cap (%llu bytes)", (unsigned long long)report_cap(c));
        r = scan(data, len, tokens_max(c), string_max(c), why, whyn);
        if (r < 0)
                return r;
        Reader rd = {.s = data, .n = len};
        json_t *rep = NULL;
        r = read_value(&rd, 0, &rep);
        _cleanup_(json_decrefp) json_t *owned = rep;
        if (r == -ENOMEM)
                return r;
        if (r == 0) {
                skip_ws(&rd);
                if (rd.i < rd.n) {
                        r = -EBADMSG;
                        rd.err = "text after the report";
                }
        }
        if (r < 0)
                BAD("invalid JSON at byte %zu: %s", rd.i, rd.err);
        if (!json_is_object(rep))
                BAD("not an object");
        if (!only_keys(rep, keys, &bad))
                BAD("unknown key \"%.60s\"", bad);
        if ((v = json_object_get(rep, "error")) && (r = check_error(v, why, whyn)) < 0)
                return r;
        if ((v = json_object_get(rep, "result")) && (r = check_result(v, c, why, whyn)) < 0)
                return r;
        if ((v = json_object_get(rep, "images")) && (r = check_images(v, c, why, whyn)) < 0)
                return r;
        if ((v = json_object_get(rep, "files")) && (r = check_files(v, c, why, whyn)) < 0)
                return r;
        if ((v = json_object_get(rep, "images_dropped")) && !is_count(v))
                BAD("\"images_dropped\" is not a whole number");
        if ((v = json_object_get(rep, "files_dropped")) && !is_count(v))
                BAD("\"files_dropped\" is not a whole number");
        *ret = TAKE_PTR(owned);
        return 0;
}
