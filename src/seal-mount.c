/* The run's file system. Instead of a read-only view of the host's "/" (which would carry its
 * sub-mounts, such as a writable shared /dev/shm), each run gets a root of its own:
 *
 *   /            the skeleton the server built at start-up (read-only bind): empty mount points,
 *                a minimal /etc, symlinks for /bin, /lib, /lib64, /sbin
 *   /usr         the host's /usr, read-only, nosuid, nodev (Python, the libraries)
 *   /proc        a fresh proc of the run's own pid namespace
 *   /dev/{null,zero,full,random,urandom}  binds of the host's devices
 *   /tmp, /work, /dev/shm   directories of ONE tmpfs capped at TMP_SIZE_MB, so that together they
 *                can never hold more than the cap; the tmpfs itself is mounted at /.scratch,
 *                then detached from there, so only the three views remain
 *
 * Runs in the child after it entered its user and mount namespaces, with all capabilities of its
 * user namespace; paths are relative to the skeleton (cwd) so that the steps after the fsuid
 * change do not need to traverse any host directory. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "seal.h"
#include "util/macro.h"

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
#define MOUNT_ATTR_NOEXEC 0x00000008
#endif

struct sb_mount_attr {
        uint64_t attr_set, attr_clr, propagation, userns_fd;
};

/* Makes the mount at path (and, if recursive, everything under it) carry attrs. mount_setattr
 * (Linux 5.12) does a whole tree in one call; on older kernels fall back to a remount of the
 * top mount, which is what the host layouts we bind (one mount each) need. */
static int set_attrs(const char *path, uint64_t attrs, bool recursive) {
        struct sb_mount_attr a = {.attr_set = attrs};
        if (syscall(SYS_mount_setattr, AT_FDCWD, path, recursive ? AT_RECURSIVE : 0, &a, sizeof a) == 0)
                return 0;
        if (errno != ENOSYS)
                return -errno;
        unsigned long fl = MS_REMOUNT | MS_BIND;
        if (attrs & MOUNT_ATTR_RDONLY)
                fl |= MS_RDONLY;
        if (attrs & MOUNT_ATTR_NOSUID)
                fl |= MS_NOSUID;
        if (attrs & MOUNT_ATTR_NODEV)
                fl |= MS_NODEV;
        if (attrs & MOUNT_ATTR_NOEXEC)
                fl |= MS_NOEXEC;
        if (mount(NULL, path, NULL, fl, NULL) < 0)
                return -errno;
        return 0;
}

static int bind(const char *src, const char *dst, uint64_t attrs, bool recursive) {
        if (mount(src, dst, NULL, MS_BIND | (recursive ? MS_REC : 0), NULL) < 0)
                return -errno;
        return attrs ? set_attrs(dst, attrs, recursive) : 0;
}

/* Formats "size=N,nr_inodes=N,mode=0755,uid=I,gid=I" without stdio's locale or allocation. */
static void fmt_u64(char **p, uint64_t v) {
        char tmp[24];
        int n = 0;
        do
                tmp[n++] = (char)('0' + v % 10);
        while ((v /= 10) > 0);
        while (n > 0)
                *(*p)++ = tmp[--n];
}

static void tmpfs_options(char *buf, uint64_t size) {
        char *p = buf;
        /* One inode per 4 KiB of cap keeps a flood of empty files bounded too. */
        const char *parts[] = {"size=", ",nr_inodes=", ",mode=0755,uid=", ",gid="};
        uint64_t vals[] = {size, MAX(size / 4096, (uint64_t)1024), SANDBOX_INNER_ID, SANDBOX_INNER_ID};
        for (size_t i = 0; i < ELEMENTSOF(parts); i++) {
                size_t n = strlen(parts[i]);
                memcpy(p, parts[i], n);
                p += n;
                fmt_u64(&p, vals[i]);
        }
        *p = 0;
}

int seal_mounts(const SealPlan *plan) {
        static const char *const devices[] = {"null", "zero", "full", "random", "urandom"};
        char opts[160], src[32], dst[32];
        int r;

        /* Nothing we mount may propagate back to the host. */
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return -errno;
        if (mount(plan->root_dir, plan->root_dir, NULL, MS_BIND, NULL) < 0)
                return -errno;
        if (chdir(plan->root_dir) < 0)
                return -errno;

        r = bind("/usr", "usr", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, true);
        if (r < 0)
                return r;
        if (mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                return -errno;
        for (size_t i = 0; i < ELEMENTSOF(devices); i++) {
                size_t n = strlen(devices[i]);
                /* The prefixes first, then the names with their NULs (n + 1). */
                memcpy(src, "/dev/", 5); // NOLINT(bugprone-not-null-terminated-result)
                memcpy(src + 5, devices[i], n + 1);
                memcpy(dst, "dev/", 4); // NOLINT(bugprone-not-null-terminated-result)
                memcpy(dst + 4, devices[i], n + 1);
                r = bind(src, dst, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, false);
                if (r < 0)
                        return r;
        }

        tmpfs_options(opts, plan->tmp_size_bytes);
        if (mount("tmpfs", ".scratch", "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
                return -errno;
        /* Files we create here must belong to the run's uid, which is mapped; uid 0 is not. */
        setfsgid(SANDBOX_INNER_ID);
        setfsuid(SANDBOX_INNER_ID);
        static const struct {
                const char *dir, *target;
                mode_t mode;
        } views[] = {
                {".scratch/tmp", "tmp", 01777},
                {".scratch/work", "work", 0755},
                {".scratch/shm", "dev/shm", 01777},
        };
        for (size_t i = 0; i < ELEMENTSOF(views); i++) {
                if (mkdir(views[i].dir, views[i].mode) < 0 || chmod(views[i].dir, views[i].mode) < 0)
                        return -errno;
                if (mount(views[i].dir, views[i].target, NULL, MS_BIND, NULL) < 0)
                        return -errno;
        }
        if (umount2(".scratch", MNT_DETACH) < 0)
                return -errno;

        r = set_attrs(".", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, false);
        if (r < 0)
                return r;
        /* pivot_root(".", ".") stacks the old root on top of the new one; detaching it leaves
         * only the new root, with no path back to the host's tree. */
        if (syscall(SYS_pivot_root, ".", ".") < 0)
                return -errno;
        if (umount2(".", MNT_DETACH) < 0)
                return -errno;
        if (chdir("/work") < 0)
                return -errno;
        return 0;
}
