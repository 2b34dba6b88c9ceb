/* Sampling a run's memory from /proc, for hosts where the server has no memory cgroup (an
 * unprivileged server without a delegated cgroup v2 subtree). RLIMIT_AS alone is a limit per
 * process, and every fork gets its own: 8 processes held 3.3 GiB under a 512 MiB limit. So the
 * pool sums the memory of all of a run's processes every MEMWATCH_INTERVAL_MS and kills the run
 * past MEMORY_LIMIT_MB (pool.c); RLIMIT_AS stays as the hard per-process ceiling.
 *
 * The measure is Pss, the proportional set size: a page mapped by n processes counts 1/n in
 * each, so the sum over the run counts the pages its processes share with each other (a fork's
 * copy-on-write pages) once, and the pages they share with the zygote and other sandboxes in
 * part. The pool subtracts the part a sandbox held before its run (its share of the zygote):
 * what remains is, like a cgroup's charge, what the run allocated or copied, give or take the
 * drift of that share as other sandboxes come and go (never more than the zygote's resident
 * size). Kernel memory (page tables, socket buffers) is not counted.
 *
 * Files in the run's tmpfs are memory too (shmem pages, with no swap nowhere else to go), but
 * Pss sees only the pages some process maps: 60 MB written to /dev/shm under a 32 MB limit went
 * unnoticed. A memory cgroup charges them to the writer; here the pool adds the tmpfs's used
 * blocks (statfs through /proc/<init>/root), so files count against MEMORY_LIMIT_MB in both
 * modes. A tmpfs file that is also mapped is then counted twice (once in Pss): an over-count
 * bounded by TMP_SIZE_MB, chosen over subtracting Pss_Shmem, which would also hide mapped
 * memfds and shared anonymous memory, that no statfs shows.
 *
 * The server may read the figures: the sandbox runs as the server's own uid (unprivileged), or
 * the server is root; and it owns the sandbox's user namespace either way. */
#include "memwatch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

#include "util/macro.h"

/* The value in kB of "key:   N kB" in smaps_rollup text, 0 if absent. */
static uint64_t rollup_kb(const char *text, const char *key) {
        size_t n = strlen(key);
        for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
                if (strncmp(l, key, n) == 0 && l[n] == ':')
                        return strtoull(l + n + 1, NULL, 10); /* kernel-written */
        return 0;
}

/* Reads a /proc file of at most n - 1 bytes into buf, NUL-terminated. Returns its length or
 * -errno. */
static int read_small(const char *path, char *buf, size_t n) {
        buf[0] = 0;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        size_t len = 0;
        while (len < n - 1) {
                ssize_t k = read(fd, buf + len, n - 1 - len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                len += (size_t)k;
        }
        close(fd);
        buf[len] = 0;
        return (int)len;
}

/* Appends the children of every thread of pid to pids[*n..max). A thread's list is read whole
 * up to CHILDREN_MAX bytes (about 8,000 pids); when it fills the buffer, its last number may be
 * cut, so it is dropped and the sample marked truncated. */
#define CHILDREN_MAX 65536
static void add_children(pid_t pid, pid_t *pids, uint32_t *n, uint32_t max, bool *truncated) {
        char path[64];
        static char buf[CHILDREN_MAX]; /* only the pool thread samples */
        snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
        DIR *d = opendir(path);
        if (!d)
                return;
        struct dirent *e;
        while ((e = readdir(d))) {
                if (e->d_name[0] < '0' || e->d_name[0] > '9')
                        continue;
                char cpath[300];
                snprintf(cpath, sizeof cpath, "/proc/%d/task/%s/children", (int)pid, e->d_name);
                int len = read_small(cpath, buf, sizeof buf);
                if (len <= 0)
                        continue;
                if ((size_t)len == sizeof buf - 1) {
                        char *last = strrchr(buf, ' ');
                        *(last ? last : buf) = 0;
                        *truncated = true;
                }
                for (char *s = buf, *end; *s; s = end) {
                        long c = strtol(s, &end, 10);
                        if (end == s)
                                break;
                        if (c <= 0)
                                continue;
                        if (*n >= max) {
                                *truncated = true;
                                break;
                        }
                        pids[(*n)++] = (pid_t)c;
                }
        }
        closedir(d);
}

int memwatch_sample(pid_t init, uint32_t max_procs, MemSample *ret) {
        char path[64], text[4096];
        uint32_t n = 1;
        MemSample s = {0};

        if (max_procs == 0)
                max_procs = 1;
        pid_t *pids = calloc(max_procs, sizeof *pids);
        if (!pids)
                return -ENOMEM;
        pids[0] = init;
        for (uint32_t i = 0; i < n; i++) {
                snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pids[i]);
                int r = read_small(path, text, sizeof text);
                if (r <= 0) {
                        /* A child may be gone, or a zombie with no memory left: skipped. One that
                         * is there but may not be read (the run made itself non-dumpable, with
                         * prctl(PR_SET_DUMPABLE, 0)) cannot be accounted for: the whole sample
                         * fails, and the pool ends the run rather than let it go unmeasured. */
                        if (i == 0 || (r < 0 && r != -ENOENT && r != -ESRCH)) {
                                free(pids);
                                return r < 0 ? r : -ESRCH;
                        }
                        continue;
                }
                s.pss_bytes += rollup_kb(text, "Pss") * 1024;
                s.private_bytes +=
                        (rollup_kb(text, "Private_Clean") + rollup_kb(text, "Private_Dirty")) * 1024;
                s.nprocs++;
                add_children(pids[i], pids, &n, max_procs, &s.truncated);
        }
        free(pids);
        *ret = s;
        return 0;
}

int memwatch_tmpfs_bytes(pid_t init, uint64_t *ret) {
        char path[64];
        struct statfs st;

        /* The magic link is the init's root, so the walk crosses its mounts, not ours. */
        snprintf(path, sizeof path, "/proc/%d/root/dev/shm", (int)init);
        if (statfs(path, &st) < 0)
                return -errno;
        if (st.f_type != TMPFS_MAGIC)
                return -EMEDIUMTYPE;
        *ret = (uint64_t)(st.f_blocks - st.f_bfree) * (uint64_t)st.f_bsize;
        return 0;
}
