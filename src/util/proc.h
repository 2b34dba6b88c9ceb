/* Figures the server reads about a process from /proc: its CPU time and its first child. Used
 * where no cgroup counts a run (an unprivileged server), so every reader tolerates a process that
 * is gone (0). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* User and system CPU time of pid and of its waited-for children, in ms; 0 if it is gone. */
uint64_t proc_cpu_ms(pid_t pid);

/* The first child of pid's main thread, or 0 (none, or pid is gone). */
pid_t proc_first_child(pid_t pid);

/* The fields after the command name of a /proc/<pid>/stat line: (utime + stime + cutime +
 * cstime) in clock ticks, or -EINVAL when the text is not such a line. Pure, for tests. */
int64_t proc_stat_ticks(const char *stat);

/* Whether name is "snakebox-<pid>" for a pid that is not ours and no longer runs: what a server
 * that died left behind (its runtime directory, its cgroups), which the next one removes. */
bool proc_left_by_dead_server(const char *name);
