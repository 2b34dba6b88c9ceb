/* Unit tests of src/upload.c: which uploaded file names are accepted (every relative path that
 * stays in the working directory, whatever its bytes) and which are rejected with a reason that
 * does not repeat the name; the decoded size of strict base64, checked against a reference rule
 * over every 4-byte string of a small alphabet; and the conflicts between names (a repeat, or a
 * name that is also the directory of another). Every input is an exact-size heap copy with no
 * NUL after it, so that AddressSanitizer sees any read past the given length. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "upload.h"
#include "util/str.h"

#define WHY_SIZE 512

/* ---- ownership: the teardown frees what a test allocated, even after a failed assertion ---- */

static void **owned;
static size_t n_owned, n_alloc;

static void *own(void *p) {
        if (n_owned == n_alloc) {
                size_t want = n_alloc ? 2 * n_alloc : 64;
                void **o = realloc(owned, want * sizeof *o);
                assert_non_null(o);
                owned = o;
                n_alloc = want;
        }
        owned[n_owned++] = p;
        return p;
}

static int release_all(void **state) {
        (void)state;
        while (n_owned > 0)
                free(owned[--n_owned]);
        free(owned);
        owned = NULL;
        n_alloc = 0;
        return 0;
}

static void *xmalloc(size_t n) {
        void *p = malloc(n ? n : 1);
        assert_non_null(p);
        return own(p);
}

static char *exact_copy(const char *s, size_t n) {
        char *p = xmalloc(n);
        memcpy(p, s, n);
        return p;
}

/* A NUL-terminated string of n copies of c. */
static char *repeat(char c, size_t n) {
        char *p = xmalloc(n + 1);
        memset(p, c, n);
        p[n] = 0;
        return p;
}

/* A path of the given component lengths ('a', 'b', ... per component), joined with '/'. */
static char *path_of(const size_t *lens, size_t k) {
        size_t total = k ? k - 1 : 0;
        for (size_t i = 0; i < k; i++)
                total += lens[i];
        char *p = xmalloc(total + 1), *w = p;
        for (size_t i = 0; i < k; i++) {
                if (i)
                        *w++ = '/';
                memset(w, 'a' + (int)(i % 26), lens[i]);
                w += lens[i];
        }
        *w = 0;
        return p;
}

/* ---- upload_check_name ---- */

static void expect_name_ok(const char *name, size_t len) {
        char why[WHY_SIZE] = "untouched";
        int r = upload_check_name(exact_copy(name, len), len, why, sizeof why);
        if (r != 0)
                fail_msg("name \"%.*s\" (%zu bytes): %d (%s), want 0", (int)(len > 80 ? 80 : len), name, len,
                        r, why);
}

/* Expects -EINVAL with a non-empty reason that contains word (if not NULL) and does not repeat
 * the name (checked for names of 3 bytes or more: a shorter name can be a word of the reason,
 * such as the ".." component it names). Returns the reason in why. */
static void expect_name_bad(const char *name, size_t len, const char *word, char *why) {
        memset(why, 'Z', WHY_SIZE);
        int r = upload_check_name(exact_copy(name, len), len, why, WHY_SIZE);
        int shown = len > 80 ? 80 : (int)len;
        if (r != -EINVAL)
                fail_msg("name \"%.*s\" (%zu bytes): %d, want -EINVAL", shown, name, len, r);
        size_t n = strnlen(why, WHY_SIZE);
        if (n == 0 || n == WHY_SIZE)
                fail_msg("name \"%.*s\": the reason is empty or not NUL-terminated", shown, name);
        if (word && !strstr(why, word))
                fail_msg("name \"%.*s\": reason \"%s\" does not mention \"%s\"", shown, name, why, word);
        if (len >= 3 && memmem(why, n, name, len))
                fail_msg("name \"%.*s\": reason \"%s\" repeats the name", shown, name, why);
}

#define NAME_OK(s) expect_name_ok(s, sizeof s - 1)
#define NAME_BAD(s, word) expect_name_bad(s, sizeof s - 1, word, why)

static void test_name_valid(void **state) {
        (void)state;
        NAME_OK("a");
        NAME_OK("a.csv");
        NAME_OK("data.csv");
        NAME_OK("dir/sub/file.txt");
        NAME_OK("my file.csv");
        NAME_OK(" leading and trailing ");
        NAME_OK("dir with space/file name.txt");
        NAME_OK("donn\xc3\xa9\x65s/\xc3\xa9t\xc3\xa9.csv");
        NAME_OK("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e.txt");
        NAME_OK("\xf0\x9f\x90\x8d/\xf0\x9f\x90\x8d");
        NAME_OK(".hidden");
        NAME_OK("dir/.hidden");
        NAME_OK(".config/app.ini");
        NAME_OK("a..b");
        NAME_OK("...");
        NAME_OK("..a");
        NAME_OK("a..");
        NAME_OK(".a/..b/...c/.d.");
        NAME_OK("back\\slash");
        NAME_OK("-rf");
        NAME_OK("~");
        NAME_OK("*?[]");
}

static void test_name_invalid(void **state) {
        (void)state;
        char why[WHY_SIZE];
        NAME_BAD("", "empty");
        NAME_BAD("/", "absolute");
        NAME_BAD("/abs", "absolute");
        NAME_BAD("/etc/passwd", "absolute");
        NAME_BAD("//x", "absolute");
        NAME_BAD("a//b", "empty");
        NAME_BAD("a/", "empty");
        NAME_BAD("dir/sub/", "empty");
        NAME_BAD(".", "\".\"");
        NAME_BAD("./a", "\".\"");
        NAME_BAD("a/./b", "\".\"");
        NAME_BAD("a/.", "\".\"");
        NAME_BAD("..", "\"..\"");
        NAME_BAD("../x", "\"..\"");
        NAME_BAD("../../etc/passwd", "\"..\"");
        NAME_BAD("a/../b", "\"..\"");
        NAME_BAD("a/..", "\"..\"");
        NAME_BAD("a/b/../../..", "\"..\"");
}

/* NUL anywhere in the given length is refused; the length, not a terminator, bounds the name. */
static void test_name_nul_and_length(void **state) {
        (void)state;
        char why[WHY_SIZE];
        NAME_BAD("a\0b", "NUL");
        NAME_BAD("\0", "NUL");
        NAME_BAD("abc\0", "NUL");
        NAME_BAD("dir/\0/x", NULL);

        /* only len bytes are read: "a/" cut to one byte is "a", "x/../y" cut to one is "x" */
        char *p = exact_copy("a/", 2);
        assert_int_equal(upload_check_name(p, 1, why, sizeof why), 0);
        p = exact_copy("x/../y", 6);
        assert_int_equal(upload_check_name(p, 1, why, sizeof why), 0);
        /* and a good name cut to nothing is empty */
        assert_int_equal(upload_check_name(p, 0, why, sizeof why), -EINVAL);
}

static void test_name_component_length(void **state) {
        (void)state;
        char why[WHY_SIZE];
        char *c255 = repeat('c', UPLOAD_COMPONENT_MAX), *c256 = repeat('c', UPLOAD_COMPONENT_MAX + 1);
        assert_int_equal(strlen(c255), 255);

        expect_name_ok(c255, 255);
        expect_name_bad(c256, 256, "255", why);

        /* at the start, in the middle and at the end of a path */
        char *buf = xmalloc(600);
        int n = snprintf(buf, 600, "d/%s/f", c255);
        expect_name_ok(buf, (size_t)n);
        n = snprintf(buf, 600, "d/%s/f", c256);
        expect_name_bad(buf, (size_t)n, "255", why);
        n = snprintf(buf, 600, "%s/f", c256);
        expect_name_bad(buf, (size_t)n, "255", why);
        n = snprintf(buf, 600, "d/%s", c256);
        expect_name_bad(buf, (size_t)n, "255", why);

        /* bytes, not characters: 85 three-byte characters fit, 86 do not */
        const char *kanji = "\xe6\x97\xa5";
        for (int i = 0; i < 86; i++)
                memcpy(buf + 3 * i, kanji, 3);
        expect_name_ok(buf, 85 * 3);
        expect_name_bad(buf, 86 * 3, "255", why);
}

static void test_name_total_length(void **state) {
        (void)state;
        char why[WHY_SIZE];
        /* 255 + 255 + 255 + 254 + 1 bytes and four slashes: exactly 1024 */
        static const size_t fits[] = {255, 255, 255, 254, 1};
        char *name = path_of(fits, 5);
        assert_int_equal(strlen(name), UPLOAD_NAME_MAX);
        expect_name_ok(name, UPLOAD_NAME_MAX);

        /* one byte more, every component still within 255: refused for the whole length */
        static const size_t over[] = {255, 255, 255, 255, 1};
        name = path_of(over, 5);
        assert_int_equal(strlen(name), UPLOAD_NAME_MAX + 1);
        expect_name_bad(name, UPLOAD_NAME_MAX + 1, "1024", why);

        /* far longer, with ".." at the end (the length is refused whatever else is wrong) */
        size_t big = 100000;
        char *huge = repeat('h', big);
        memcpy(huge + big - 3, "/..", 3);
        expect_name_bad(huge, big, NULL, why);
}

/* The reason never carries the name: the caller quotes the name once, cut to a size. */
static void test_name_reason_without_name(void **state) {
        (void)state;
        static const char *const names[] = {
                "/secret-XYZ",
                "secret-XYZ/../x",
                "secret-XYZ//x",
                "./secret-XYZ",
                "secret-XYZ/.",
                "secret-XYZ/",
                "../secret-XYZ",
        };
        char why[WHY_SIZE];
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
                expect_name_bad(names[i], strlen(names[i]), NULL, why);
                if (strstr(why, "secret-XYZ"))
                        fail_msg("name \"%s\": reason \"%s\" repeats it", names[i], why);
        }
        const char nul[] = "secret-XYZ\0";
        expect_name_bad(nul, sizeof nul - 1, NULL, why);
        assert_null(strstr(why, "secret-XYZ"));

        char *comp = repeat('q', 300);
        expect_name_bad(comp, 300, NULL, why);
        assert_null(strstr(why, "qqqq"));
        char *whole = repeat('w', 2000);
        expect_name_bad(whole, 2000, NULL, why);
        assert_null(strstr(why, "wwww"));
}

/* A reason longer than the buffer is cut and stays NUL-terminated within it (ASan watches). */
static void test_name_small_why_buffer(void **state) {
        (void)state;
        static const char *const names[] = {"", "/abs", "a//b", "..", "a/./b"};
        char *why = xmalloc(8);
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
                memset(why, 'Z', 8);
                assert_int_equal(
                        upload_check_name(exact_copy(names[i], strlen(names[i])), strlen(names[i]), why, 8),
                        -EINVAL);
                assert_int_equal(strlen(why), 7);
        }
}

/* ---- upload_base64_size ---- */

static int b64(const char *s, size_t n, size_t *ret) {
        return upload_base64_size(exact_copy(s, n), n, ret);
}

static void test_base64_valid(void **state) {
        (void)state;
        static const struct {
                const char *s;
                size_t size;
        } cases[] = {
                {"", 0}, {"QQ==", 1}, {"QUI=", 2}, {"QUJD", 3}, {"QUJDRA==", 4}, {"QUJDREU=", 5},
                {"QUJDREVG", 6}, {"AAAA", 3}, {"////", 3}, {"++++", 3}, {"+/==", 1}, {"zz9=", 2},
                {"aGVsbG8gd29ybGQ=", 11},
                {"QR==", 1}, /* non-zero unused bits: accepted, as Python's b64decode does */
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                size_t size = 12345;
                int r = b64(cases[i].s, strlen(cases[i].s), &size);
                if (r != 0 || size != cases[i].size)
                        fail_msg("\"%s\": %d, size %zu; want 0, size %zu", cases[i].s, r, size,
                                cases[i].size);
        }
}

static void test_base64_invalid(void **state) {
        (void)state;
        static const struct {
                const char *s;
                size_t n;
        } cases[] = {
#define C(s) {s, sizeof s - 1}
                C("Q"),
                C("QQ"),
                C("QUJ"),
                C("QQ="),
                C("QUJDR"),
                C("="),
                C("=="),
                C("Q==="),
                C("===="),
                C("=QQQ"),
                C("Q=QQ"),
                C("QQ=A"),
                C("QQ==QUJD"),
                C("QUI=QUJD"),
                C("QUJD===="),
                C("QUJD=QQ="),
                C("QUJD\n"),
                C("QUJ\n"),
                C("\nQUJ"),
                C("QU J"),
                C("QU\tJ"),
                C("QUJD\r\nQUJD"),
                C(" QQ="),
                C("QQ= "),
                C("-_-_"),
                C("QQ-_"),
                C("ab_="),
                C("QU.D"),
                C("QU\0D"),
                C("QQ=\0"),
                C("\xc3\xa9QQ"),
                C("QQ\x80="),
#undef C
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                size_t size = 0;
                int r = b64(cases[i].s, cases[i].n, &size);
                if (r != -EINVAL)
                        fail_msg("case %zu \"%.*s\": %d (size %zu), want -EINVAL", i, (int)cases[i].n,
                                cases[i].s, r, size);
        }
}

/* Only n bytes are read. */
static void test_base64_uses_length(void **state) {
        (void)state;
        size_t size = 0;
        assert_int_equal(b64("QUJDRA==", 4, &size), 0);
        assert_int_equal(size, 3);
        assert_int_equal(b64("QQ==junk", 4, &size), 0);
        assert_int_equal(size, 1);
        assert_int_equal(b64("QQ", 0, &size), 0);
        assert_int_equal(size, 0);
}

/* The rule, checked over every 4-byte string of an alphabet of edge characters, then in the
 * last group of an 8-byte string: valid when the first two are base64 characters and the last
 * two are both base64 characters, or one and '=', or "=="; '=' is only ever at the end. */
static bool in_alphabet(char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
               c == '/';
}

static int reference(const char *q, size_t *ret) {
        if (!in_alphabet(q[0]) || !in_alphabet(q[1]))
                return -EINVAL;
        if (in_alphabet(q[2]) && in_alphabet(q[3]))
                *ret = 3;
        else if (in_alphabet(q[2]) && q[3] == '=')
                *ret = 2;
        else if (q[2] == '=' && q[3] == '=')
                *ret = 1;
        else
                return -EINVAL;
        return 0;
}

static void test_base64_exhaustive_groups(void **state) {
        (void)state;
        static const char alpha[] = "AZaz09+/=-_ \n.\0\x80\xff@[`{";
        size_t na = sizeof alpha - 1, valid = 0;
        char s[8] = "QUJD";
        for (size_t i = 0; i < na * na * na * na; i++) {
                char *q = s + 4;
                q[0] = alpha[i % na];
                q[1] = alpha[i / na % na];
                q[2] = alpha[i / na / na % na];
                q[3] = alpha[i / na / na / na];
                size_t want = 0, got = 99;
                int rw = reference(q, &want);

                int r = upload_base64_size(q, 4, &got);
                if (r != rw || (r == 0 && got != want))
                        fail_msg("%02x %02x %02x %02x: %d size %zu, want %d size %zu", (unsigned char)q[0],
                                (unsigned char)q[1], (unsigned char)q[2], (unsigned char)q[3], r, got, rw,
                                want);
                valid += r == 0;

                /* after a full group: the same answer, 3 bytes more */
                r = upload_base64_size(s, 8, &got);
                if (r != rw || (r == 0 && got != want + 3))
                        fail_msg("QUJD + %02x %02x %02x %02x: %d size %zu", (unsigned char)q[0],
                                (unsigned char)q[1], (unsigned char)q[2], (unsigned char)q[3], r, got);

                /* before a full group: valid only without padding */
                char t[8];
                memcpy(t, q, 4);
                memcpy(t + 4, "QUJD", 4);
                r = upload_base64_size(t, 8, &got);
                int rt = rw == 0 && want == 3 ? 0 : -EINVAL;
                if (r != rt || (r == 0 && got != 6))
                        fail_msg("%02x %02x %02x %02x + QUJD: %d size %zu, want %d", (unsigned char)q[0],
                                (unsigned char)q[1], (unsigned char)q[2], (unsigned char)q[3], r, got, rt);
        }
        assert_true(valid > 1000); /* the loop did test accepted strings */
}

static void test_base64_large(void **state) {
        (void)state;
        size_t n = 12u << 20; /* 12 MiB of text, 9 MiB decoded */
        char *s = xmalloc(n);
        for (size_t i = 0; i < n; i++)
                s[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i % 64];
        size_t size = 0;
        assert_int_equal(upload_base64_size(s, n, &size), 0);
        assert_int_equal(size, UINT64_C(9) << 20);

        s[n - 1] = '=';
        assert_int_equal(upload_base64_size(s, n, &size), 0);
        assert_int_equal(size, (UINT64_C(9) << 20) - 1);
        s[n - 2] = '=';
        assert_int_equal(upload_base64_size(s, n, &size), 0);
        assert_int_equal(size, (UINT64_C(9) << 20) - 2);

        /* one bad byte anywhere spoils it */
        s[n / 2] = '\n';
        assert_int_equal(upload_base64_size(s, n, &size), -EINVAL);
        s[n / 2] = 'A';
        s[0] = '=';
        assert_int_equal(upload_base64_size(s, n, &size), -EINVAL);
        s[0] = 'A';
        assert_int_equal(upload_base64_size(s, n - 1, &size), -EINVAL);
}

/* ---- upload_find_conflict ---- */

/* Runs the check on heap copies of the names; returns the index of *ret among them, -1 when
 * there is no conflict. *ret must be one of the given pointers. */
static int conflict(const char *const *names, size_t n) {
        const char **copies = xmalloc(n * sizeof *copies);
        for (size_t i = 0; i < n; i++) {
                size_t len = strlen(names[i]);
                copies[i] = exact_copy(names[i], len + 1);
        }
        const char *sentinel = "sentinel", *ret = sentinel;
        int r = upload_find_conflict(copies, n, &ret);
        if (r == 0) {
                assert_ptr_equal(ret, sentinel);
                return -1;
        }
        assert_int_equal(r, 1);
        for (size_t i = 0; i < n; i++)
                if (ret == copies[i])
                        return (int)i;
        fail_msg("*ret is not one of the names");
        return -2;
}

#define NAMES(...) \
        (const char *const[]){__VA_ARGS__}, sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *)

static void expect_no_conflict(const char *const *names, size_t n) {
        int i = conflict(names, n);
        if (i >= 0)
                fail_msg("%zu names: conflict reported at \"%s\"", n, names[i]);
}

/* Expects a conflict reported at a name equal to want. */
static void expect_conflict(const char *const *names, size_t n, const char *want) {
        int i = conflict(names, n);
        if (i < 0)
                fail_msg("%zu names (first \"%s\"): no conflict, want \"%s\"", n, names[0], want);
        if (strcmp(names[i], want) != 0)
                fail_msg("conflict at \"%s\", want \"%s\"", names[i], want);
}

static void test_conflict_none(void **state) {
        (void)state;
        expect_no_conflict(NAMES("a"));
        expect_no_conflict(NAMES("a", "b", "c/d"));
        expect_no_conflict(NAMES("ab", "a/b"));
        expect_no_conflict(NAMES("a/b", "ab"));
        expect_no_conflict(NAMES("a", "ab/c"));
        expect_no_conflict(NAMES("a-b", "a/b", "a.b", "a b", "a0"));
        expect_no_conflict(NAMES("a/b", "a/c", "a/d/e", "a/d/f"));
        expect_no_conflict(NAMES("b/a", "a/b"));
        expect_no_conflict(NAMES("x/a", "a"));
        expect_no_conflict(NAMES("a/b/c", "a/bc"));
        expect_no_conflict(NAMES("A", "a/x")); /* case matters */
}

static void test_conflict_zero_names(void **state) {
        (void)state;
        const char *names[1] = {"unused"};
        const char *sentinel = "sentinel", *ret = sentinel;
        assert_int_equal(upload_find_conflict(names, 0, &ret), 0);
        assert_ptr_equal(ret, sentinel);
}

static void test_conflict_duplicate(void **state) {
        (void)state;
        expect_conflict(NAMES("a", "a"), "a");
        expect_conflict(NAMES("x", "data.csv", "y", "data.csv"), "data.csv");
        expect_conflict(NAMES("d/e.txt", "z", "d/e.txt"), "d/e.txt");
        expect_conflict(NAMES("\xc3\xa9", "e", "\xc3\xa9"), "\xc3\xa9");
}

static void test_conflict_directory(void **state) {
        (void)state;
        expect_conflict(NAMES("a", "a/b"), "a/b");
        expect_conflict(NAMES("a/b", "a"), "a/b");
        expect_conflict(NAMES("a/b/c", "a/b"), "a/b/c");
        expect_conflict(NAMES("a/b", "a/b/c"), "a/b/c");
        expect_conflict(NAMES("a/b/c", "a"), "a/b/c");
        expect_conflict(NAMES("zz", "a-b", "a/b", "a.b", "a"), "a/b");
        expect_conflict(NAMES("dir/x", "dir/y", "dir"), "dir/x");
}

/* A directory part of the longest allowed name is found too (and fits the prefix buffer). */
static void test_conflict_longest_names(void **state) {
        (void)state;
        static const size_t dir[] = {255, 255, 255, 254}, file[] = {255, 255, 255, 254, 1};
        char *d = path_of(dir, 4), *f = path_of(file, 5);
        assert_int_equal(strlen(f), UPLOAD_NAME_MAX);
        expect_conflict((const char *const[]){f, d}, 2, f);
        expect_conflict((const char *const[]){d, f}, 2, f);
        expect_no_conflict((const char *const[]){f}, 1);
}

static void test_conflict_many_names(void **state) {
        (void)state;
        size_t n = 10000;
        const char **names = xmalloc((n + 1) * sizeof *names);
        for (size_t i = 0; i < n; i++) {
                char *s = xmalloc(40);
                snprintf(s, 40, "dir%zu/file%zu.csv", i % 100, i);
                names[i] = s;
        }
        expect_no_conflict(names, n);

        /* a file named like one of the directories, at the end */
        names[n] = "dir42";
        int i = conflict(names, n + 1);
        assert_true(i >= 0);
        assert_true(strncmp(names[i], "dir42/", 6) == 0);

        /* a repeat far from its first occurrence */
        names[n] = names[3];
        expect_conflict(names, n + 1, names[3]);
        names[n] = "dir3/file9999.csv"; /* not a repeat: 9999 is in dir99 */
        expect_no_conflict(names, n + 1);
        names[n] = "dir99/file9999.csv";
        expect_conflict(names, n + 1, "dir99/file9999.csv");
}

/* Decoding: every padding length, all 256 byte values, NUL after the bytes; what the size
 * check refuses is refused. */
static void test_base64_decode(void **state) {
        (void)state;
        static const struct {
                const char *in, *out;
                size_t n;
        } ok[] = {
                {"", "", 0}, {"YQ==", "a", 1}, {"YWI=", "ab", 2}, {"YWJj", "abc", 3}, {"AP8=", "\0\xff", 2}};
        for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
                char *out = NULL;
                size_t n = 99;
                assert_int_equal(upload_base64_decode(
                                         exact_copy(ok[i].in, strlen(ok[i].in)), strlen(ok[i].in), &out, &n),
                        0);
                assert_int_equal(n, ok[i].n);
                assert_memory_equal(out, ok[i].out, n);
                assert_int_equal(out[n], 0);
                free(out);
        }
        char all[256], *enc, *out;
        for (int i = 0; i < 256; i++)
                all[i] = (char)i;
        enc = base64_encode(all, sizeof all);
        size_t n;
        assert_int_equal(upload_base64_decode(enc, strlen(enc), &out, &n), 0);
        assert_int_equal(n, sizeof all);
        assert_memory_equal(out, all, sizeof all);
        free(out);
        free(enc);
        assert_int_equal(upload_base64_decode(exact_copy("YQ=", 3), 3, &out, &n), -EINVAL);
        assert_int_equal(upload_base64_decode(exact_copy("Y!==", 4), 4, &out, &n), -EINVAL);
}

#define T(f) cmocka_unit_test_teardown(f, release_all)

int main(void) {
        const struct CMUnitTest tests[] = {
                T(test_name_valid),
                T(test_name_invalid),
                T(test_name_nul_and_length),
                T(test_name_component_length),
                T(test_name_total_length),
                T(test_name_reason_without_name),
                T(test_name_small_why_buffer),
                T(test_base64_valid),
                T(test_base64_invalid),
                T(test_base64_uses_length),
                T(test_base64_decode),
                T(test_base64_exhaustive_groups),
                T(test_base64_large),
                T(test_conflict_none),
                T(test_conflict_zero_names),
                T(test_conflict_duplicate),
                T(test_conflict_directory),
                T(test_conflict_longest_names),
                T(test_conflict_many_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
