/* The skeleton root. Each sandbox bind-mounts <runtime>/root read-only as its "/" and mounts
 * /usr, /proc, devices and its tmpfs on the empty mount points prepared here. Building the
 * skeleton once keeps the per-sandbox work to mount calls, with no file creation at all.
 *
 * /etc holds only what Python and the libraries read at run time: generated passwd, group,
 * hosts, hostname, nsswitch.conf; copies of ld.so.cache (dlopen of libraries imported late),
 * localtime, matplotlibrc, mime.types, os-release; and /etc/alternatives as symlinks (Debian's
 * BLAS and LAPACK are found through it). Nothing else of the host's /etc is visible. */
#include "rootfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fd.h"
#include "util/macro.h"
#include "util/proc.h"

static int rm_entry(const char *path, _unused_ const struct stat *st, int flag, _unused_ struct FTW *ftw) {
        if (flag == FTW_DP)
                rmdir(path);
        else
                unlink(path);
        return 0;
}

void rootfs_remove(const char *rt) {
        if (rt && rt[0])
                nftw(rt, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static int write_text(const char *path, const char *text) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return -errno;
        return fd_write_all(fd, text, strlen(text));
}

/* Copies a regular file (following the host's symlinks); a missing source is not an error. */
static int copy_file(const char *src, const char *dst) {
        _cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return errno == ENOENT ? 0 : -errno;
        struct stat st;
        if (fstat(in, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return 0;
        _cleanup_close_ int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (out < 0)
                return -errno;
        /* A file that shrank while we copied it is copied as far as it went. */
        ssize_t k = fd_copy(out, in, st.st_size);
        return k < 0 ? (int)k : 0;
}

/* Recreates the symlinks of a directory (such as /etc/alternatives); their targets are absolute
 * paths under /usr, which the run sees. */
static int copy_symlinks(const char *src, const char *dst) {
        DIR *d = opendir(src);
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        int r = 0;
        struct dirent *e;
        while ((e = readdir(d)) && r == 0) {
                char from[PATH_MAX], to[PATH_MAX], target[PATH_MAX];
                if (e->d_name[0] == '.')
                        continue;
                snprintf(from, sizeof from, "%s/%s", src, e->d_name);
                ssize_t k = readlink(from, target, sizeof target - 1);
                if (k < 0)
                        continue;
                target[k] = 0;
                snprintf(to, sizeof to, "%s/%s", dst, e->d_name);
                if (symlink(target, to) < 0)
                        r = -errno;
        }
        closedir(d);
        return r;
}

/* Removes runtime dirs of servers that no longer run ("snakebox-<pid>" in base). */
static void remove_stale(const char *base) {
        DIR *d = opendir(base);
        if (!d)
                return;
        struct dirent *e;
        while ((e = readdir(d))) {
                /* Only servers known to be gone; ours is replaced by the caller. */
                if (!proc_left_by_dead_server(e->d_name))
                        continue;
                char p[PATH_MAX];
                snprintf(p, sizeof p, "%s/%s", base, e->d_name);
                struct stat st;
                if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid())
                        rootfs_remove(p);
        }
        closedir(d);
}

int rootfs_create(char *rt, size_t n, char *why, size_t whyn) {
        static const char *const dirs[] = {"root", "root/usr", "root/etc", "root/proc", "root/dev",
                "root/dev/shm", "root/tmp", "root/work", "root/.scratch", "root/etc/alternatives"};
        static const char *const devices[] = {"null", "zero", "full", "random", "urandom"};
        static const struct {
                const char *name, *target;
        } dev_links[] = {{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"},
                {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"}};
        static const struct {
                const char *name, *text;
        } etc_files[] = {
                {"passwd", "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                           "sandbox:x:1000:1000:sandbox:/work:/usr/sbin/nologin\n"
                           "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"},
                {"group", "root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n"},
                {"hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\tsandbox\n"},
                {"hostname", "sandbox\n"},
                {"nsswitch.conf", "passwd: files\ngroup: files\nhosts: files\n"},
                {"resolv.conf", ""},
        };
        static const char *const etc_copies[] = {
                "ld.so.cache", "localtime", "timezone", "matplotlibrc", "mime.types", "os-release"};
        char p[PATH_MAX], q[PATH_MAX];
        const char *base = geteuid() == 0 ? "/run" : "/tmp";
        int r;

        remove_stale(base);
        if ((size_t)snprintf(rt, n, "%s/snakebox-%d", base, (int)getpid()) >= n)
                return -ENAMETOOLONG;
        rootfs_remove(rt);
        if (mkdir(rt, 0755) < 0) {
                r = -errno;
                snprintf(why, whyn, "cannot create %s: %s", rt, strerror(-r));
                return r;
        }
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                snprintf(p, sizeof p, "%s/%s", rt, dirs[i]);
                if (mkdir(p, 0755) < 0)
                        goto fail_errno;
        }
        for (size_t i = 0; i < ELEMENTSOF(devices); i++) {
                snprintf(p, sizeof p, "%s/root/dev/%s", rt, devices[i]);
                r = write_text(p, "");
                if (r < 0)
                        goto fail;
        }
        for (size_t i = 0; i < ELEMENTSOF(dev_links); i++) {
                snprintf(p, sizeof p, "%s/root/dev/%s", rt, dev_links[i].name);
                if (symlink(dev_links[i].target, p) < 0)
                        goto fail_errno;
        }
        /* Top-level directories merged into /usr (Debian 12) become the same symlinks. */
        static const char *const merged[] = {"bin", "sbin", "lib", "lib64", "lib32", "libx32"};
        for (size_t i = 0; i < ELEMENTSOF(merged); i++) {
                char target[PATH_MAX];
                snprintf(q, sizeof q, "/%s", merged[i]);
                ssize_t k = readlink(q, target, sizeof target - 1);
                if (k < 0)
                        continue; /* absent, or a real directory: not visible in runs */
                target[k] = 0;
                if (strncmp(target, "usr/", 4) != 0 && strncmp(target, "/usr/", 5) != 0)
                        continue;
                snprintf(p, sizeof p, "%s/root/%s", rt, merged[i]);
                if (symlink(target, p) < 0)
                        goto fail_errno;
        }
        for (size_t i = 0; i < ELEMENTSOF(etc_files); i++) {
                snprintf(p, sizeof p, "%s/root/etc/%s", rt, etc_files[i].name);
                r = write_text(p, etc_files[i].text);
                if (r < 0)
                        goto fail;
        }
        for (size_t i = 0; i < ELEMENTSOF(etc_copies); i++) {
                snprintf(p, sizeof p, "/etc/%s", etc_copies[i]);
                snprintf(q, sizeof q, "%s/root/etc/%s", rt, etc_copies[i]);
                r = copy_file(p, q);
                if (r < 0)
                        goto fail;
        }
        snprintf(p, sizeof p, "%s/root/etc/alternatives", rt);
        r = copy_symlinks("/etc/alternatives", p);
        if (r < 0)
                goto fail;
        return 0;

fail_errno:
        r = -errno;
fail:
        snprintf(why, whyn, "cannot build the sandbox root in %s: %s", rt, strerror(-r));
        rootfs_remove(rt);
        return r;
}
