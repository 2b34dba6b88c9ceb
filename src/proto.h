/* The messages between the server, the zygote and the sandboxes. All three are the same binary
 * on the same host, so fixed structs are sent as they are; every receiver still checks sizes,
 * magic numbers and ranges, since a sandbox's side of its socket is controlled by user code.
 *
 * server <-> zygote: a SOCK_SEQPACKET pair, one message per struct.
 * server <-> sandbox: a SOCK_SEQPACKET pair, one frame per message, the first byte its kind. */
#pragma once

#include <stdint.h>

#include "config.h"

#define PROTO_MAGIC 0x736e6b62u /* "snkb" */
#define PROTO_PATH_MAX 512

/* Where the sandbox's files and memory limits come from; decided by the server at start-up. */
enum {
        ZYGOTE_F_RLIMIT_AS = 1u << 0, /* no memory cgroup: cap the address space instead */
        ZYGOTE_F_LEAN = 1u << 1, /* import no library, only common standard modules */
};

/* server -> zygote, once, right after the zygote starts. */
typedef struct ZygoteInit {
        uint32_t magic;
        uint32_t flags;
        Config cfg;
        char root_dir[PROTO_PATH_MAX]; /* the read-only skeleton that becomes "/" */
        char mpl_dir[PROTO_PATH_MAX]; /* matplotlib's config and font cache (zygote only) */
} ZygoteInit;

/* zygote -> server, once, when the libraries are imported (ok) or cannot be (message). */
typedef struct ZygoteReady {
        uint32_t magic;
        int32_t error; /* 0 or a negative errno */
        char message[1024];
        /* Space-separated top-level modules the zygote loaded beyond the standard library
         * (pandas, numpy, scipy, ...): code naming none of them can use the lean zygote. */
        char modules[8192];
} ZygoteReady;

/* server -> zygote: make one sandbox. Carries fds, in this order: the sandbox's end of its
 * socket, the stdout pipe, the stderr pipe, then optional cgroup.procs fds (ncgroups). */
#define SPAWN_CGROUPS_MAX 4
typedef struct SpawnRequest {
        uint32_t magic;
        uint32_t ncgroups;
        uint64_t id;
} SpawnRequest;

/* zygote -> server: the sandbox's pid in the server's pid namespace, or why there is none. */
typedef struct SpawnReply {
        uint32_t magic;
        int32_t error;
        uint64_t id;
        int32_t pid;
} SpawnReply;

/* Frames a sandbox sends on its socket, by first byte. */
enum {
        FRAME_READY = 'Y', /* sealed; waiting for the request */
        FRAME_FAIL = 'F', /* followed by SealFailure: sealing failed, nothing ran */
        FRAME_STDOUT = 'O', /* followed by bytes written to sys.stdout */
        FRAME_STDERR = 'E', /* followed by bytes written to sys.stderr */
        FRAME_RESULT = 'R', /* followed by a piece of the report (JSON, runner.py main) */
        FRAME_RESULT_END = 'Z', /* the report is complete; the runner is about to _exit */
};

/* Frames the server sends: 'Q' + uint64 total length (little-endian), then the JSON request in
 * messages of at most FRAME_CHUNK bytes. */
#define FRAME_REQUEST 'Q'
#define FRAME_CHUNK 65536

typedef struct SealFailure {
        int32_t step; /* SealStep */
        int32_t error; /* positive errno */
} SealFailure;
