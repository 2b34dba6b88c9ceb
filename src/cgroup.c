/* Per-run cgroups, for cgroup v1 (separate memory, pids, cpu and cpuacct hierarchies) and v2
 * (one unified hierarchy), behind the same small interface. Every run gets its own leaf,
 * created before its sandbox is forked (off the request path) and removed after its last
 * process was reaped.
 *
 * Memory is charged to the cgroup that first touches a page. The pages a sandbox shares with
 * the zygote stay charged to the zygote; the limit therefore counts what the run itself
 * allocates or copies, which is what MEMORY_LIMIT_MB promises. Swap is capped too where the
 * knob exists, or the limit would only move memory to swap.
 *
 * CPU. The scheduler shares CPU between the groups of a level by weight, whatever the number of
 * processes inside each: every running run's leaf has the same weight (v1 cpu.shares 1024, v2
 * cpu.weight 100), so a run of 60 busy processes gets the same share as a run of one, and a
 * quota (CPU_LIMIT_PERCENT of CGROUP_CPU_PERIOD_US) caps each run even on an idle host. A
 * sandbox joins its leaf before it seals itself. While it seals and waits for its request its
 * leaf has nice 5's weight (335, 33), as the zygote has: preparing sandboxes yields to runs in
 * progress, yet a busy run cannot starve it, since it no longer competes with the run's
 * processes one by one but with the run as one group (a quarter of a core at worst against one
 * busy run). The pool gives the full weight when it hands the sandbox a request, and a small one
 * when it tears it down (cgroup_cpu_weight). Of the spares a zygote is making at once, all but
 * the oldest are idle (cpu.idle; order_spares in pool.c): they finish one after the other
 * instead of all together. The leaves sit under "snakebox-<pid>", which competes as one group
 * of the default weight with the server and the zygotes in the cgroup above it: however many
 * processes the runs start, a zygote (nice 5) keeps about a quarter of a core under full load,
 * the server's threads (nice 0) half of one. The run's CPU time is read
 * from its cgroup (cpuacct.usage, cpu.stat), so it counts every process of the run.
 *
 * v2 forbids processes in a cgroup whose controllers are delegated to children ("no internal
 * processes"), so when our own cgroup has processes we move the server into a "server" leaf
 * first, as systemd's Delegate=yes units are expected to. */
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/fd.h"
#include "util/macro.h"
#include "util/proc.h"

/* Reads our path in one hierarchy from /proc/self/cgroup: "N:<controller>:/path" (v1) or
 * "0::/path" (v2, controller ""). */
static int own_path(const char *controller, char *buf, size_t n) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = fd_read_file("/proc/self/cgroup", 1 << 16, &text, &len);
        if (r < 0)
                return r;
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
                char *a = strchr(line, ':');
                char *b = a ? strchr(a + 1, ':') : NULL;
                if (!b)
                        continue;
                *b = 0;
                const char *ctrls = a + 1;
                bool match = false;
                if (!*controller)
                        match = !*ctrls && line[0] == '0' && a == line + 1;
                else {
                        /* "cpu,cpuacct" style lists */
                        _cleanup_free_ char *dup = strdup(ctrls);
                        if (!dup)
                                return -ENOMEM;
                        char *save = NULL;
                        for (char *c = strtok_r(dup, ",", &save); c; c = strtok_r(NULL, ",", &save))
                                if (strcmp(c, controller) == 0)
                                        match = true;
                }
                if (match) {
                        if ((size_t)snprintf(buf, n, "%s", b + 1) >= n)
                                return -ENAMETOOLONG;
                        return 0;
                }
        }
        return -ENOENT;
}

static bool file_exists(const char *dir, const char *name) {
        char p[CGROUP_PATH_MAX + 64];
        snprintf(p, sizeof p, "%s/%s", dir, name);
        return access(p, F_OK) == 0;
}

static int write_knob(const char *dir, const char *name, const char *value) {
        char p[CGROUP_PATH_MAX + 64];
        snprintf(p, sizeof p, "%s/%s", dir, name);
        return fd_write_file(p, value);
}

static uint64_t read_u64(const char *dir, const char *name) {
        char p[CGROUP_PATH_MAX + 64];
        _cleanup_free_ char *text = NULL;
        size_t len;
        snprintf(p, sizeof p, "%s/%s", dir, name);
        if (fd_read_file(p, 4096, &text, &len) < 0)
                return 0;
        return strtoull(text, NULL, 10); /* kernel-written */
}

/* The value of "key N" in a flat-keyed file (memory.events, memory.oom_control, pids.events). */
static uint64_t read_key(const char *dir, const char *name, const char *key) {
        char p[CGROUP_PATH_MAX + 64];
        _cleanup_free_ char *text = NULL;
        size_t len, klen = strlen(key);
        snprintf(p, sizeof p, "%s/%s", dir, name);
        if (fd_read_file(p, 1 << 16, &text, &len) < 0)
                return 0;
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
                if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
                        return strtoull(line + klen + 1, NULL, 10);
        return 0;
}

/* Removes leaves of a directory of ours, then the directory (cgroup dirs only hold knobs, which
 * rmdir ignores). */
static void remove_tree(const char *dir) {
        DIR *d = opendir(dir);
        if (d) {
                struct dirent *e;
                while ((e = readdir(d))) {
                        if (e->d_type != DT_DIR || e->d_name[0] == '.')
                                continue;
                        char p[CGROUP_PATH_MAX + 300];
                        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                        remove_tree(p);
                }
                closedir(d);
        }
        rmdir(dir);
}

/* Removes "snakebox-<pid>" directories of servers that no longer run. */
static void remove_stale(const char *parent) {
        DIR *d = opendir(parent);
        if (!d)
                return;
        struct dirent *e;
        while ((e = readdir(d))) {
                if (!proc_left_by_dead_server(e->d_name))
                        continue;
                char p[CGROUP_PATH_MAX + 300];
                snprintf(p, sizeof p, "%s/%s", parent, e->d_name);
                remove_tree(p);
        }
        closedir(d);
}

static int make_base(const char *mount, const char *own, char *ret, size_t n) {
        char parent[CGROUP_PATH_MAX];
        if ((size_t)snprintf(parent, sizeof parent, "%s%s", mount, strcmp(own, "/") ? own : "") >=
                sizeof parent)
                return -ENAMETOOLONG;
        remove_stale(parent);
        /* Leave room for "/sb-<id>/<knob>" below it. */
        if ((size_t)snprintf(ret, n, "%s/snakebox-%d", parent, (int)getpid()) >= n - 64)
                return -ENAMETOOLONG;
        if (mkdir(ret, 0755) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static void init_v2(CgroupRoot *root) {
        char own[CGROUP_PATH_MAX], dir[CGROUP_PATH_MAX + 32], leaf[CGROUP_PATH_MAX + 64];
        if (own_path("", own, sizeof own) < 0) {
                snprintf(root->why_not, sizeof root->why_not, "no cgroup v2 path in /proc/self/cgroup");
                return;
        }
        snprintf(dir, sizeof dir, "/sys/fs/cgroup%s", strcmp(own, "/") ? own : "");
        if (!file_exists(dir, "cgroup.subtree_control") || !file_exists(dir, "cgroup.controllers")) {
                snprintf(root->why_not, sizeof root->why_not, "%s is not a cgroup v2 directory", dir);
                return;
        }
        if (write_knob(dir, "cgroup.subtree_control", "+memory") < 0) {
                /* Processes in our cgroup: move the server to a leaf of its own, then retry. */
                snprintf(leaf, sizeof leaf, "%s/snakebox-server-%d", dir, (int)getpid());
                char pid[32];
                snprintf(pid, sizeof pid, "%d", (int)getpid());
                if ((mkdir(leaf, 0755) < 0 && errno != EEXIST) ||
                        write_knob(leaf, "cgroup.procs", pid) < 0 ||
                        write_knob(dir, "cgroup.subtree_control", "+memory") < 0) {
                        snprintf(root->why_not, sizeof root->why_not,
                                "cannot enable the memory controller in %s (not delegated to us?)", dir);
                        return;
                }
        }
        root->pids = write_knob(dir, "cgroup.subtree_control", "+pids") == 0;
        bool cpu = write_knob(dir, "cgroup.subtree_control", "+cpu") == 0;
        if (make_base("/sys/fs/cgroup", own, root->mem_base, sizeof root->mem_base) < 0) {
                snprintf(root->why_not, sizeof root->why_not, "cannot create a cgroup under %s", dir);
                return;
        }
        write_knob(root->mem_base, "cgroup.subtree_control", root->pids ? "+memory +pids" : "+memory");
        if (cpu && write_knob(root->mem_base, "cgroup.subtree_control", "+cpu") == 0) {
                root->cpu = CGROUP_V2;
                root->cpu_idle = file_exists(root->mem_base, "cpu.idle");
        }
        /* cpu.stat's usage_usec is kept for every cgroup, with or without the cpu controller. */
        root->cpuacct = true;
        root->mode = CGROUP_V2;
}

static void init_v1(CgroupRoot *root) {
        char own[CGROUP_PATH_MAX];
        if (own_path("memory", own, sizeof own) < 0 || access("/sys/fs/cgroup/memory", W_OK) < 0) {
                snprintf(root->why_not, sizeof root->why_not,
                        "no writable cgroup v1 memory hierarchy at /sys/fs/cgroup/memory");
                return;
        }
        if (make_base("/sys/fs/cgroup/memory", own, root->mem_base, sizeof root->mem_base) < 0) {
                snprintf(root->why_not, sizeof root->why_not,
                        "cannot create a cgroup under /sys/fs/cgroup/memory%s", own);
                return;
        }
        root->mode = CGROUP_V1;
        if (own_path("pids", own, sizeof own) == 0 && access("/sys/fs/cgroup/pids", W_OK) == 0 &&
                make_base("/sys/fs/cgroup/pids", own, root->pids_base, sizeof root->pids_base) == 0)
                root->pids = true;
}

/* v1 cpu and cpuacct: their own hierarchies, often mounted together ("cpu,cpuacct", with
 * /sys/fs/cgroup/cpu and /sys/fs/cgroup/cpuacct as links to it), sometimes not. */
static void init_v1_cpu(CgroupRoot *root) {
        char own[CGROUP_PATH_MAX], cpu_mnt[PATH_MAX], acct_mnt[PATH_MAX];
        bool together = realpath("/sys/fs/cgroup/cpu", cpu_mnt) &&
                        realpath("/sys/fs/cgroup/cpuacct", acct_mnt) && strcmp(cpu_mnt, acct_mnt) == 0;
        if (own_path("cpu", own, sizeof own) == 0 && access("/sys/fs/cgroup/cpu", W_OK) == 0 &&
                make_base("/sys/fs/cgroup/cpu", own, root->cpu_base, sizeof root->cpu_base) == 0) {
                root->cpu = CGROUP_V1;
                root->cpuacct = together;
                root->cpu_idle = file_exists(root->cpu_base, "cpu.idle");
        }
        if (!together && own_path("cpuacct", own, sizeof own) == 0 &&
                access("/sys/fs/cgroup/cpuacct", W_OK) == 0 &&
                make_base("/sys/fs/cgroup/cpuacct", own, root->cpuacct_base, sizeof root->cpuacct_base) == 0)
                root->cpuacct = true;
}

void cgroup_root_init(CgroupRoot *root) {
        *root = (CgroupRoot){0};
        if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0)
                init_v2(root);
        else {
                init_v1(root);
                init_v1_cpu(root);
        }
}

void cgroup_root_destroy(CgroupRoot *root) {
        char *bases[] = {root->mem_base, root->pids_base, root->cpu_base, root->cpuacct_base};
        if (root->mode == CGROUP_NONE && root->cpu == CGROUP_NONE && !root->cpuacct)
                return;
        /* A cgroup whose last task is still being torn down refuses rmdir for a moment. */
        for (int i = 0; i < 100; i++) {
                bool left = false;
                for (size_t j = 0; j < ELEMENTSOF(bases); j++)
                        if (bases[j][0]) {
                                remove_tree(bases[j]);
                                left = left || access(bases[j], F_OK) == 0;
                        }
                if (!left)
                        break;
                struct timespec ts = {0, 10 * 1000000};
                nanosleep(&ts, NULL);
        }
        if (root->mode == CGROUP_V2) {
                char leaf[CGROUP_PATH_MAX + 64];
                char *slash = strrchr(root->mem_base, '/');
                if (slash) {
                        snprintf(leaf, sizeof leaf, "%.*s/snakebox-server-%d", (int)(slash - root->mem_base),
                                root->mem_base, (int)getpid());
                        rmdir(leaf); /* fails while we are in it; harmless */
                }
        }
        root->mode = root->cpu = CGROUP_NONE;
        root->cpuacct = false;
}

/* Opens the file through which a sandbox joins the cgroup at dir: v1's `tasks`, v2's
 * `cgroup.procs`. The sandbox writes "0" to it itself (seal_join_cgroups): on v1 that moves only
 * the writing thread (the sandbox is single-threaded then), for which the kernel takes no global
 * lock (kernel/cgroup/cgroup.c cgroup_procs_write_start: the thread is `current`), while moving
 * a process through cgroup.procs write-locks cgroup_threadgroup_rwsem, which waits for an RCU
 * grace period, holding cgroup_mutex (unless the host mounted cgroup2 with favordynmods). The
 * kernel checks the credentials of whoever opened the file (Linux 5.16+), so the sandbox needs
 * no right of its own on the host's cgroup tree. */
static int open_procs(const char *dir, CgroupMode mode, int *ret) {
        char p[CGROUP_PATH_MAX + 32];
        snprintf(p, sizeof p, "%s/%s", dir, mode == CGROUP_V1 ? "tasks" : "cgroup.procs");
        int fd = open(p, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        *ret = fd;
        return 0;
}

/* Makes a v1 leaf "sb-<id>" under base and opens its `tasks` for the sandbox to join. */
static int make_leaf_v1(const char *base, uint64_t id, char *path, Cgroup *cg) {
        snprintf(path, CGROUP_PATH_MAX, "%s/sb-%" PRIu64, base, id);
        if (mkdir(path, 0755) < 0) {
                int r = -errno;
                path[0] = 0;
                return r;
        }
        int r = open_procs(path, CGROUP_V1, &cg->procs_fds[cg->nprocs_fds]);
        if (r < 0)
                return r;
        cg->nprocs_fds++;
        return 0;
}

/* The run's CPU weight and quota; the cpuacct leaf (v1). Destroys all of ret on failure. */
static int create_cpu(const CgroupRoot *root, uint64_t id, const Config *c, Cgroup *ret) {
        char quota[32], period[32];
        int r = 0;

        snprintf(period, sizeof period, "%d", CGROUP_CPU_PERIOD_US);
        snprintf(quota, sizeof quota, "%" PRIu64,
                (uint64_t)c->cpu_limit_percent * CGROUP_CPU_PERIOD_US / 100);
        if (root->cpu == CGROUP_V1) {
                r = make_leaf_v1(root->cpu_base, id, ret->cpu, ret);
                if (r == 0)
                        r = write_knob(ret->cpu, "cpu.shares", "335");
                if (r == 0)
                        r = write_knob(ret->cpu, "cpu.cfs_period_us", period);
                /* v1 refuses a quota over an ancestor's (a container's --cpus): that one then
                 * caps the run already. */
                if (r == 0) {
                        r = write_knob(ret->cpu, "cpu.cfs_quota_us", quota);
                        if (r == -EINVAL)
                                r = 0;
                }
        } else if (root->cpu == CGROUP_V2) {
                char max[64];
                snprintf(max, sizeof max, "%s %s", quota, period);
                r = write_knob(ret->mem, "cpu.weight", "33");
                if (r == 0)
                        r = write_knob(ret->mem, "cpu.max", max);
        }
        if (r == 0 && root->cpuacct_base[0])
                r = make_leaf_v1(root->cpuacct_base, id, ret->cpuacct, ret);
        if (r < 0)
                cgroup_destroy(ret);
        return r;
}

int cgroup_create(const CgroupRoot *root, uint64_t id, const Config *c, Cgroup *ret) {
        char v[32];
        int r;

        *ret = (Cgroup){.procs_fds = {-1, -1, -1, -1}};
        if (root->mode == CGROUP_NONE)
                return create_cpu(root, id, c, ret);
        snprintf(ret->mem, sizeof ret->mem, "%s/sb-%" PRIu64, root->mem_base, id);
        if (mkdir(ret->mem, 0755) < 0)
                return -errno;
        snprintf(v, sizeof v, "%" PRIu64, c->memory_limit_bytes);
        if (root->mode == CGROUP_V1) {
                r = write_knob(ret->mem, "memory.limit_in_bytes", v);
                if (r == 0 && file_exists(ret->mem, "memory.memsw.limit_in_bytes"))
                        r = write_knob(ret->mem, "memory.memsw.limit_in_bytes", v);
        } else {
                r = write_knob(ret->mem, "memory.max", v);
                if (r == 0 && file_exists(ret->mem, "memory.swap.max"))
                        r = write_knob(ret->mem, "memory.swap.max", "0");
        }
        if (r < 0)
                goto fail;
        r = open_procs(ret->mem, root->mode, &ret->procs_fds[ret->nprocs_fds]);
        if (r < 0)
                goto fail;
        ret->nprocs_fds++;

        if (root->pids) {
                snprintf(v, sizeof v, "%" PRIu32, c->max_processes);
                if (root->mode == CGROUP_V1) {
                        snprintf(ret->pids, sizeof ret->pids, "%s/sb-%" PRIu64, root->pids_base, id);
                        if (mkdir(ret->pids, 0755) < 0) {
                                r = -errno;
                                ret->pids[0] = 0;
                                goto fail;
                        }
                        r = write_knob(ret->pids, "pids.max", v);
                        if (r == 0)
                                r = open_procs(ret->pids, CGROUP_V1, &ret->procs_fds[ret->nprocs_fds]);
                        if (r < 0)
                                goto fail;
                        ret->nprocs_fds++;
                } else {
                        r = write_knob(ret->mem, "pids.max", v);
                        if (r < 0)
                                goto fail;
                }
        }
        return create_cpu(root, id, c, ret);
fail:
        cgroup_destroy(ret);
        return r;
}

int cgroup_set_memory(const CgroupRoot *root, const Cgroup *cg, uint64_t bytes) {
        char v[32];
        int r;
        if (root->mode == CGROUP_NONE || !cg->mem[0])
                return -EOPNOTSUPP;
        snprintf(v, sizeof v, "%" PRIu64, bytes);
        if (root->mode == CGROUP_V1) {
                /* memsw must stay >= the memory limit: lower it second, raise it first (a
                 * session's SESSION_MEMORY_MB may be above MEMORY_LIMIT_MB). */
                bool memsw = file_exists(cg->mem, "memory.memsw.limit_in_bytes");
                r = write_knob(cg->mem, "memory.limit_in_bytes", v);
                if (r == -EINVAL && memsw) {
                        r = write_knob(cg->mem, "memory.memsw.limit_in_bytes", v);
                        return r < 0 ? r : write_knob(cg->mem, "memory.limit_in_bytes", v);
                }
                if (r == 0 && memsw)
                        r = write_knob(cg->mem, "memory.memsw.limit_in_bytes", v);
                return r;
        }
        return write_knob(cg->mem, "memory.max", v);
}

int cgroup_peak_reset(const CgroupRoot *root, const Cgroup *cg, int *fd) {
        char p[CGROUP_PATH_MAX + 64];
        if (root->mode == CGROUP_NONE || !cg->mem[0])
                return -EOPNOTSUPP;
        if (root->mode == CGROUP_V1)
                return write_knob(cg->mem, "memory.max_usage_in_bytes", "0");
        *fd = safe_close(*fd);
        snprintf(p, sizeof p, "%s/memory.peak", cg->mem);
        _cleanup_close_ int f = open(p, O_RDWR | O_CLOEXEC);
        if (f < 0)
                return -errno;
        if (write(f, "reset\n", 6) != 6)
                return -errno; /* before 6.12: not resettable */
        *fd = TAKE_FD(f);
        return 0;
}

uint64_t cgroup_peak_read(const CgroupRoot *root, const Cgroup *cg, int fd) {
        char b[32];
        if (root->mode == CGROUP_V1)
                return read_u64(cg->mem, "memory.max_usage_in_bytes");
        if (fd < 0)
                return 0;
        ssize_t k = pread(fd, b, sizeof b - 1, 0);
        if (k <= 0)
                return 0;
        b[k] = 0;
        return strtoull(b, NULL, 10); /* kernel-written */
}

uint64_t cgroup_memory_current(const CgroupRoot *root, const Cgroup *cg) {
        if (root->mode == CGROUP_NONE || !cg->mem[0])
                return 0;
        return read_u64(cg->mem, root->mode == CGROUP_V2 ? "memory.current" : "memory.usage_in_bytes");
}

int cgroup_cpu_usage_us(const CgroupRoot *root, const Cgroup *cg, uint64_t *ret) {
        char p[CGROUP_PATH_MAX + 64];
        _cleanup_free_ char *text = NULL;
        size_t len;
        const char *dir, *key;
        int r;

        if (!root->cpuacct)
                return -EOPNOTSUPP;
        if (root->mode == CGROUP_V2) {
                dir = cg->mem;
                snprintf(p, sizeof p, "%s/cpu.stat", dir);
                key = "usage_usec ";
        } else {
                dir = root->cpuacct_base[0] ? cg->cpuacct : cg->cpu;
                snprintf(p, sizeof p, "%s/cpuacct.usage", dir);
                key = "";
        }
        if (!dir[0])
                return -EOPNOTSUPP;
        r = fd_read_file(p, 1 << 16, &text, &len);
        if (r < 0)
                return r;
        const char *v = *key ? strstr(text, key) : text;
        if (!v || (v != text && v[-1] != '\n'))
                return -EBADMSG;
        /* Kernel-written: a decimal number, nanoseconds (v1) or microseconds (v2). */
        uint64_t n = strtoull(v + strlen(key), NULL, 10);
        *ret = root->mode == CGROUP_V2 ? n : n / 1000;
        return 0;
}

void cgroup_cpu_weight(const CgroupRoot *root, Cgroup *cg, CgroupCpuWeight w) {
        /* v1 shares of 1024 and v2 weights of 100 are nice 0's; 335 and 33 are nice 5's, the
         * zygote's; a teardown gets an eighth of a run's weight, so that it still ends while
         * runs are busy. An idle group keeps the weight it had for when it stops being idle,
         * and the kernel refuses a new weight while it is idle: off first, and idle after. */
        static const char *const v1[] = {"335", "1024", "128"}, *const v2[] = {"33", "100", "12"};
        const char *dir = root->cpu == CGROUP_V1 ? cg->cpu : root->cpu == CGROUP_V2 ? cg->mem : "";
        if (!dir[0])
                return;
        if (w == CGROUP_CPU_IDLE) {
                if (root->cpu_idle && !cg->idle && write_knob(dir, "cpu.idle", "1") == 0)
                        cg->idle = true;
                return;
        }
        if (cg->idle && write_knob(dir, "cpu.idle", "0") == 0)
                cg->idle = false;
        write_knob(dir, root->cpu == CGROUP_V1 ? "cpu.shares" : "cpu.weight",
                (root->cpu == CGROUP_V1 ? v1 : v2)[w]);
}

uint64_t cgroup_memory_bound(const CgroupRoot *root, const Config *c) {
        if (root->mode != CGROUP_NONE)
                return c->memory_limit_bytes;
        return (c->memory_limit_bytes + ADDRESS_SPACE_HEADROOM_BYTES) * c->max_processes;
}

const char *cgroup_cpu_name(const CgroupRoot *root) {
        return root->cpu == CGROUP_V2   ? "cgroup v2"
               : root->cpu == CGROUP_V1 ? "cgroup v1"
                                        : "none (RLIMIT_CPU only)";
}

void cgroup_close_fds(Cgroup *cg) {
        for (int i = 0; i < CGROUP_PROCS_MAX; i++)
                cg->procs_fds[i] = safe_close(cg->procs_fds[i]);
        cg->nprocs_fds = 0;
}

void cgroup_read_stats(const CgroupRoot *root, const Cgroup *cg, CgroupStats *ret) {
        *ret = (CgroupStats){0};
        if (!cg->mem[0])
                return;
        if (root->mode == CGROUP_V1) {
                ret->memory_peak_bytes = read_u64(cg->mem, "memory.max_usage_in_bytes");
                ret->oom_kills = read_key(cg->mem, "memory.oom_control", "oom_kill");
                if (cg->pids[0]) {
                        ret->pids_max_hits = read_key(cg->pids, "pids.events", "max");
                        ret->pids_peak = read_u64(cg->pids, "pids.peak");
                }
        } else {
                ret->memory_peak_bytes = read_u64(cg->mem, "memory.peak");
                ret->oom_kills = read_key(cg->mem, "memory.events", "oom_kill");
                ret->pids_max_hits = read_key(cg->mem, "pids.events", "max");
                ret->pids_peak = read_u64(cg->mem, "pids.peak");
        }
}

static int remove_dir(char *path) {
        if (!path[0])
                return 0;
        if (rmdir(path) < 0 && errno != ENOENT)
                return -errno;
        path[0] = 0;
        return 0;
}

int cgroup_destroy(Cgroup *cg) {
        char *dirs[] = {cg->cpuacct, cg->cpu, cg->pids, cg->mem};
        int r = 0;
        cgroup_close_fds(cg);
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                int k = remove_dir(dirs[i]);
                if (k < 0 && r == 0)
                        r = k;
        }
        return r;
}
