#include "util/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/macro.h"

/* Reads at most n - 1 bytes of a /proc file into buf, NUL-terminated. Returns the length, or -1. */
static ssize_t read_proc(const char *path, char *buf, size_t n) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        ssize_t k = read(fd, buf, n - 1);
        if (k < 0)
                return -1;
        buf[k] = 0;
        return k;
}

int64_t proc_stat_ticks(const char *stat) {
        /* The command name may contain anything, spaces and ')' included, but ends at the last
         * ')'. Then: state, ppid, pgrp, session, tty_nr, tpgid, flags, minflt, cminflt, majflt,
         * cmajflt, utime, stime, cutime, cstime. */
        const char *q = strrchr(stat, ')');
        if (!q || q[1] != ' ')
                return -EINVAL;
        unsigned long long v[4] = {0};
        if (sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &v[0], &v[1],
                    &v[2], &v[3]) != 4)
                return -EINVAL;
        unsigned long long sum = v[0] + v[1] + v[2] + v[3];
        return sum > INT64_MAX ? -EINVAL : (int64_t)sum;
}

uint64_t proc_cpu_ms(pid_t pid) {
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        if (read_proc(path, buf, sizeof buf) <= 0)
                return 0;
        int64_t ticks = proc_stat_ticks(buf);
        if (ticks < 0)
                return 0;
        long hz = sysconf(_SC_CLK_TCK);
        return (uint64_t)ticks * 1000 / (uint64_t)(hz > 0 ? hz : 100);
}

bool proc_left_by_dead_server(const char *name) {
        char *end;
        if (strncmp(name, "snakebox-", 9) != 0)
                return false;
        errno = 0;
        long pid = strtol(name + 9, &end, 10);
        if (end == name + 9 || *end || errno || pid <= 0 || pid > INT32_MAX || pid == getpid())
                return false;
        return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

pid_t proc_first_child(pid_t pid) {
        char path[64], buf[32];
        snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
        if (read_proc(path, buf, sizeof buf) <= 0)
                return 0;
        long v = strtol(buf, NULL, 10); /* kernel-written */
        return v > 0 && v <= INT32_MAX ? (pid_t)v : 0;
}
