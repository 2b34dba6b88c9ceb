/* What confines the server from outside, read when a sandbox cannot be made.
 *
 * A container hides three things the sandbox needs, one per `docker run` flag that the
 * deployment documents (deploy/README.md): the engine's seccomp profile refuses namespace and
 * mount calls (seccomp=unconfined), its AppArmor profile denies mount (apparmor=unconfined), and
 * its masked paths cover parts of /proc, which makes the kernel refuse a new /proc in a user
 * namespace (systempaths=unconfined). A seal step reports only (step, errno); the same EPERM at
 * "mounts" can come from any of the three. What tells them apart is visible from the server
 * itself, since every process of a container shares its confinement: the server installs no
 * seccomp filter, so "Seccomp: 2" in its status is the engine's; its AppArmor label; and mounts
 * over /proc's entries in its mountinfo. The hint names a flag only when its cause is seen, so
 * with one flag missing, that flag is the one named.
 *
 * Runs in the server, at a failure only: reading three small /proc files costs nothing then. */
#include "confine.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "util/fd.h"
#include "util/macro.h"

void confine_parse_status(Confinement *c, const char *status) {
        const char *s = strstr(status, "\nSeccomp:");
        if (!s)
                return;
        s += strlen("\nSeccomp:");
        s += strspn(s, " \t");
        c->seccomp = *s == '2';
}

void confine_parse_apparmor(Confinement *c, const char *attr_current) {
        size_t n = strcspn(attr_current, "\n");
        c->apparmor[0] = 0;
        /* "unconfined", or "profile (mode)"; a profile in complain mode denies nothing. */
        if (n == 0 || strncmp(attr_current, "unconfined", n) == 0)
                return;
        if (n >= strlen(" (complain)") &&
                strncmp(attr_current + n - strlen(" (complain)"), " (complain)", strlen(" (complain)")) == 0)
                return;
        snprintf(c->apparmor, sizeof c->apparmor, "%.*s", (int)MIN(n, sizeof c->apparmor - 1), attr_current);
}

/* Appends a path to the covered list, "..." once it is full. */
static void add_covered(Confinement *c, const char *path, size_t len) {
        size_t have = strlen(c->proc_covered);
        if (have && strcmp(c->proc_covered + have - 3, "...") == 0)
                return;
        if (have + len + 2 + 5 >= sizeof c->proc_covered) {
                snprintf(c->proc_covered + have, sizeof c->proc_covered - have, "%s...", have ? ", " : "");
                return;
        }
        snprintf(c->proc_covered + have, sizeof c->proc_covered - have, "%s%.*s", have ? ", " : "", (int)len,
                path);
}

void confine_parse_mountinfo(Confinement *c, const char *mountinfo) {
        c->proc_covered[0] = 0;
        for (const char *line = mountinfo; *line;) {
                const char *end = strchr(line, '\n');
                size_t len = end ? (size_t)(end - line) : strlen(line);
                /* "id parent major:minor root mountpoint ...": the fifth field. */
                const char *f = line;
                for (int i = 0; i < 4 && f; i++) {
                        f = memchr(f, ' ', len - (size_t)(f - line));
                        if (f)
                                f++;
                }
                if (f) {
                        size_t flen = strcspn(f, " \n");
                        /* binfmt_misc sits on a directory procfs keeps empty for ever, which the
                         * kernel allows to be covered; a host with systemd has it. */
                        if (flen > strlen("/proc/") && strncmp(f, "/proc/", strlen("/proc/")) == 0 &&
                                !(flen == strlen("/proc/sys/fs/binfmt_misc") &&
                                        strncmp(f, "/proc/sys/fs/binfmt_misc", flen) == 0))
                                add_covered(c, f, flen);
                }
                line += len + (end ? 1 : 0);
        }
}

int confine_read(Confinement *c) {
        _cleanup_free_ char *status = NULL, *attr = NULL, *mounts = NULL;
        size_t n;
        int r;

        *c = (Confinement){0};
        r = fd_read_file("/proc/self/status", 64 * 1024, &status, &n);
        if (r < 0)
                return r;
        confine_parse_status(c, status);
        /* The stacked-LSM file first (since Linux 5.8), the shared one where it is missing. */
        if (fd_read_file("/proc/self/attr/apparmor/current", 4096, &attr, &n) == 0 ||
                fd_read_file("/proc/self/attr/current", 4096, &attr, &n) == 0)
                confine_parse_apparmor(c, attr);
        if (fd_read_file("/proc/self/mountinfo", 4 * 1024 * 1024, &mounts, &n) == 0)
                confine_parse_mountinfo(c, mounts);
        return 0;
}

/* Appends one sentence to buf. */
static void say(char *buf, size_t n, const char *fmt, ...) _printf_(3, 4);
static void say(char *buf, size_t n, const char *fmt, ...) {
        size_t have = strnlen(buf, n);
        if (have + 1 >= n)
                return;
        if (have) {
                snprintf(buf + have, n - have, " ");
                have++;
        }
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf + have, n - have, fmt, ap);
        va_end(ap);
}

const char *confine_hint(const Confinement *c, int step, int error, char *buf, size_t n) {
        if (n == 0 || (error != EPERM && error != EACCES))
                return "";
        /* The steps whose calls a container's confinement refuses: clone with namespace flags,
         * unshare, mount and pivot_root, sethostname. */
        bool ns_call = step == CONFINE_CLONE || step == SEAL_CGROUPNS || step == SEAL_MOUNTS ||
                       step == SEAL_HOSTNAME;
        bool seccomp = ns_call && c->seccomp;
        bool apparmor = step == SEAL_MOUNTS && c->apparmor[0];
        bool proc = step == SEAL_MOUNTS && c->proc_covered[0];
        if (!seccomp && !apparmor && !proc)
                return "";
        buf[0] = 0;
        if (seccomp)
                say(buf, n,
                        "The server runs under a seccomp filter it did not install (its container's "
                        "profile), which refuses this call: run the container with --security-opt "
                        "seccomp=unconfined (each run still gets snakebox's own filter).");
        if (apparmor)
                say(buf, n,
                        "The server is confined by the AppArmor profile %s, which denies mount: run the "
                        "container with --security-opt apparmor=unconfined.",
                        c->apparmor);
        if (proc)
                say(buf, n,
                        "Paths of /proc are masked (%s), so the kernel refuses each run its own /proc: run "
                        "the container with --security-opt systempaths=unconfined.",
                        c->proc_covered);
        return buf;
}
