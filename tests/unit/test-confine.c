/* Unit tests of src/confine.c: the parsers of /proc/self/status, the AppArmor label and
 * mountinfo, on text taken from a podman container and a plain host, and the hint's rule that a
 * flag is named only when its cause was seen and the failed step can be due to it. The
 * container-level check (each flag left out, the refusal names it) is tests/image. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "confine.h"
#include "proto.h"

/* From a podman container without systempaths=unconfined (abridged). */
static const char masked_mountinfo[] =
        "600 500 0:60 / / rw,relatime - overlay overlay rw\n"
        "601 600 0:62 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n"
        "602 600 0:63 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755\n"
        "610 601 0:64 / /proc/acpi ro,relatime - tmpfs tmpfs ro,size=0k\n"
        "611 601 0:5 /null /proc/kcore rw,nosuid - devtmpfs udev rw\n"
        "612 601 0:5 /null /proc/keys rw,nosuid - devtmpfs udev rw\n"
        "613 601 0:62 /sys /proc/sys ro,relatime - proc proc rw\n";

/* A host with systemd: binfmt_misc sits on a permanently empty procfs directory. */
static const char host_mountinfo[] =
        "22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        "23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n"
        "24 23 0:22 / /proc/sys/fs/binfmt_misc rw,relatime - autofs systemd-1 rw\n"
        "25 22 0:23 / /processes rw,relatime - tmpfs tmpfs rw\n";

static void test_status_seccomp_filter(void **state) {
        (void)state;
        Confinement c = {0};
        confine_parse_status(&c, "Name:\tsnakebox\nNoNewPrivs:\t0\nSeccomp:\t2\nSeccomp_filters:\t1\n");
        assert_true(c.seccomp);
        confine_parse_status(&c, "Name:\tsnakebox\nSeccomp:\t0\nSeccomp_filters:\t0\n");
        assert_false(c.seccomp);
        /* A kernel without the field: nothing is claimed. */
        confine_parse_status(&c, "Name:\tsnakebox\n");
        assert_false(c.seccomp);
}

static void test_apparmor_label(void **state) {
        (void)state;
        Confinement c = {0};
        confine_parse_apparmor(&c, "docker-default (enforce)\n");
        assert_string_equal(c.apparmor, "docker-default (enforce)");
        confine_parse_apparmor(&c, "unconfined\n");
        assert_string_equal(c.apparmor, "");
        confine_parse_apparmor(&c, "containers-default-0.50.1 (complain)\n");
        assert_string_equal(c.apparmor, "");
        confine_parse_apparmor(&c, "");
        assert_string_equal(c.apparmor, "");
}

static void test_mountinfo_masked_paths(void **state) {
        (void)state;
        Confinement c = {0};
        confine_parse_mountinfo(&c, masked_mountinfo);
        assert_string_equal(c.proc_covered, "/proc/acpi, /proc/kcore, /proc/keys, /proc/sys");
        confine_parse_mountinfo(&c, host_mountinfo);
        assert_string_equal(c.proc_covered, "");
}

static void test_mountinfo_many_paths_are_cut(void **state) {
        (void)state;
        char text[8192] = "";
        for (int i = 0; i < 40; i++) {
                char line[128];
                snprintf(line, sizeof line,
                        "%d 601 0:5 /null /proc/masked-entry-%02d rw - devtmpfs udev rw\n", 700 + i, i);
                strcat(text, line);
        }
        Confinement c = {0};
        confine_parse_mountinfo(&c, text);
        size_t n = strlen(c.proc_covered);
        assert_true(n < sizeof c.proc_covered);
        assert_non_null(strstr(c.proc_covered, "/proc/masked-entry-00, "));
        assert_string_equal(c.proc_covered + n - 3, "...");
}

/* One cause seen: exactly its flag is named, and none of the others. */
static void test_hint_names_only_what_was_seen(void **state) {
        (void)state;
        char buf[600];
        Confinement c = {0};

        confine_parse_mountinfo(&c, masked_mountinfo);
        const char *h = confine_hint(&c, SEAL_MOUNTS, EPERM, buf, sizeof buf);
        assert_non_null(strstr(h, "systempaths=unconfined"));
        assert_non_null(strstr(h, "/proc/kcore"));
        assert_null(strstr(h, "seccomp="));
        assert_null(strstr(h, "apparmor="));

        c = (Confinement){.seccomp = true};
        h = confine_hint(&c, SEAL_HOSTNAME, EPERM, buf, sizeof buf);
        assert_non_null(strstr(h, "seccomp=unconfined"));
        assert_null(strstr(h, "systempaths="));
        assert_null(strstr(h, "apparmor="));
        h = confine_hint(&c, CONFINE_CLONE, EPERM, buf, sizeof buf);
        assert_non_null(strstr(h, "seccomp=unconfined"));

        c = (Confinement){0};
        confine_parse_apparmor(&c, "docker-default (enforce)");
        h = confine_hint(&c, SEAL_MOUNTS, EACCES, buf, sizeof buf);
        assert_non_null(strstr(h, "apparmor=unconfined"));
        assert_non_null(strstr(h, "docker-default"));
        assert_null(strstr(h, "seccomp="));
        assert_null(strstr(h, "systempaths="));
}

static void test_hint_needs_a_matching_step_and_errno(void **state) {
        (void)state;
        char buf[600] = "untouched";
        Confinement c = {.seccomp = true};
        confine_parse_apparmor(&c, "docker-default (enforce)");
        confine_parse_mountinfo(&c, masked_mountinfo);
        /* Not a permission error: not the container's doing. */
        assert_string_equal(confine_hint(&c, SEAL_MOUNTS, ENOENT, buf, sizeof buf), "");
        /* Steps whose calls no container profile refuses. */
        assert_string_equal(confine_hint(&c, SEAL_RLIMITS, EPERM, buf, sizeof buf), "");
        assert_string_equal(confine_hint(&c, SEAL_SYNC, EPERM, buf, sizeof buf), "");
        /* sethostname: AppArmor and masked paths do not stop it. */
        assert_string_equal(buf, "untouched");
        const char *h = confine_hint(&c, SEAL_HOSTNAME, EPERM, buf, sizeof buf);
        assert_null(strstr(h, "apparmor="));
        assert_null(strstr(h, "systempaths="));
        /* Nothing seen: no hint, however the step failed. */
        c = (Confinement){0};
        assert_string_equal(confine_hint(&c, SEAL_MOUNTS, EPERM, buf, sizeof buf), "");
        /* All three seen at once: all three named, in a buffer that holds them. */
        c = (Confinement){.seccomp = true};
        confine_parse_apparmor(&c, "docker-default (enforce)");
        confine_parse_mountinfo(&c, masked_mountinfo);
        h = confine_hint(&c, SEAL_MOUNTS, EPERM, buf, sizeof buf);
        assert_non_null(strstr(h, "seccomp=unconfined"));
        assert_non_null(strstr(h, "apparmor=unconfined"));
        assert_non_null(strstr(h, "systempaths=unconfined"));
        /* A short buffer is cut, never overrun. */
        char small[16];
        h = confine_hint(&c, SEAL_MOUNTS, EPERM, small, sizeof small);
        assert_true(strlen(h) < sizeof small);
}

/* This process is not in a container with a filter: confine_read reads real files. */
static void test_read_self(void **state) {
        (void)state;
        Confinement c;
        assert_int_equal(confine_read(&c), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_status_seccomp_filter),
                cmocka_unit_test(test_apparmor_label),
                cmocka_unit_test(test_mountinfo_masked_paths),
                cmocka_unit_test(test_mountinfo_many_paths_are_cut),
                cmocka_unit_test(test_hint_names_only_what_was_seen),
                cmocka_unit_test(test_hint_needs_a_matching_step_and_errno),
                cmocka_unit_test(test_read_self),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
