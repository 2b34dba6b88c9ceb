/* The zygote process (zygote.c) and the server's handle on it (zygote-ctl.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

/* The nice value of the zygote and of sandboxes not yet running a request. */
#define SANDBOX_WAITING_NICE 5

/* The control socket's fd number in the zygote. */
#define ZYGOTE_CTL_FD 3
/* argv[0] the zygote is started with; main() dispatches on it. */
#define ZYGOTE_ARGV0 "snakebox-zygote"

/* The zygote's main: reads ZygoteConfig, imports, serves spawn requests. Runs in the zygote
 * process; returns its exit status. */
int zygote_main(void);

typedef struct ZygoteProc {
        pid_t pid;
        int pidfd; /* readable when the zygote died; the server reaps it through this */
        int ctl; /* the server's end of the control socket, non-blocking */
} ZygoteProc;

/* Copies /proc/self/exe into a sealed memfd, once; zygotes are started from it so that no
 * sandbox can see the binary's path. Returns the fd or -errno. */
int zygote_image_open(void);

/* Starts a zygote from image_fd, in "/" rather than our working directory, and sends it init.
 * Does not wait for it to be ready: its ZygoteReady arrives on ctl. Returns 0 or -errno.
 * Thread-safe (posix_spawn). */
int zygote_start(int image_fd, const ZygoteConfig *init, ZygoteProc *ret);

/* Reads the ZygoteReady message. Returns 0, -EAGAIN when not there yet, or -errno; on a
 * refusal (the zygote's error) copies its message into ret. */
int zygote_recv_ready(ZygoteProc *z, ZygoteReady *ret);

/* Asks for one sandbox that runs as host uid/gid; cpu_limit_sec and tmp_size_bytes: its
 * RLIMIT_CPU and tmpfs size, 0 for a run's (SpawnRequest); fds: socket, stdout pipe, stderr
 * pipe, then ncgroups cgroup fds (the child joins through them). Returns 0 or -errno. */
int zygote_request_spawn(ZygoteProc *z, uint64_t id, uint32_t uid, uint32_t gid, uint32_t cpu_limit_sec,
        uint64_t tmp_size_bytes, const int *fds, size_t ncgroups);

/* Reads one SpawnReply. Returns 0, -EAGAIN, or -errno (-EPIPE when the zygote is gone). */
int zygote_recv_reply(ZygoteProc *z, SpawnReply *ret);

/* Kills and reaps the zygote, closes its fds. Safe on a zeroed or stopped handle. */
void zygote_stop(ZygoteProc *z);
