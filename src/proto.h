/* The messages between the server, the zygote and the sandboxes. All three are the same binary
 * on the same host, so fixed structs are sent as they are; every receiver still checks sizes,
 * magic numbers and ranges, since a sandbox's side of its socket is controlled by user code.
 *
 * server <-> zygote: a SOCK_SEQPACKET pair, one message per struct.
 * server <-> sandbox: a SOCK_SEQPACKET pair, one frame per message, the first byte its kind. */
#pragma once

#include <stdint.h>

#define PROTO_MAGIC 0x736e6b62u /* "snkb" */
#define PROTO_PATH_MAX 512

/* Where the sandbox's files and memory limits come from; decided by the server at start-up. */
enum {
        ZYGOTE_F_RLIMIT_AS = 1u << 0, /* no memory cgroup: cap the address space instead */
        ZYGOTE_F_LEAN = 1u << 1, /* import no library, only common standard modules */
};

/* server -> zygote, once, right after the zygote starts: exactly what the zygote and the seal
 * use, never the server's Config. Every sandbox is a fork of the zygote, so anything here can be
 * read by every run (it is on the zygote's stack or heap until wiped, and in the copies the
 * forks inherit): it holds no secret and no path of the server beyond the two directories the
 * zygote needs. This header includes no server header, so that a field cannot creep in. */
typedef struct ZygoteConfig {
        uint32_t magic;
        uint32_t flags; /* ZYGOTE_F_* */
        uint64_t memory_limit_bytes; /* RLIMIT_AS of a run's processes, when ZYGOTE_F_RLIMIT_AS */
        uint64_t tmp_size_bytes;
        uint64_t max_file_size_bytes;
        uint64_t prefault_bytes;
        uint32_t timeout_sec; /* RLIMIT_CPU is derived from it */
        uint32_t max_processes;
        uint32_t max_open_files;
        uint32_t reserved;
        char preinstall_libs[1024]; /* space-separated; empty for the lean zygote */
        char root_dir[PROTO_PATH_MAX]; /* the read-only skeleton that becomes "/" */
        char mpl_dir[PROTO_PATH_MAX]; /* matplotlib's config and font cache (zygote only) */
} ZygoteConfig;

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
 * socket, the stdout pipe, the stderr pipe, then the files the sandbox joins its cgroups
 * through (ncgroups: v1 `tasks`, v2 `cgroup.procs`; the child writes itself into them). uid and
 * gid: the host ids of the sandbox's slot (a root zygote maps the run to them and makes them
 * the owner of its user namespace; an unprivileged one can only map its own and ignores them). */
#define SPAWN_CGROUPS_MAX 4
typedef struct SpawnRequest {
        uint32_t magic;
        uint32_t ncgroups;
        uint64_t id;
        uint32_t uid;
        uint32_t gid;
        /* RLIMIT_CPU of this sandbox's processes in seconds, or 0 for the run's (EXECUTION_TIMEOUT
         * + 1). A session's runner lives through many cells: RLIMIT_CPU counts a process's whole
         * life, so the server limits each cell's CPU itself and this is only the backstop over
         * the session's life (pool-session.c). */
        uint32_t cpu_limit_sec;
        uint32_t reserved;
        /* The size of this sandbox's tmpfs, or 0 for a run's (TMP_SIZE_MB): a session's is
         * SESSION_FILES_MB. */
        uint64_t tmp_size_bytes;
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
        FRAME_REPORT = 'R', /* followed by a piece of the report (JSON, runner.py main) */
        FRAME_REPORT_END = 'Z', /* + FRAME_END_SIZE - 1 bytes: the report is complete */
        FRAME_RUNNER_KILLED = 'K', /* + int32 signal: from the init, the runner died of it */
        /* A session's runner, answering a file GET: 'D' alone, carrying the file's fd
         * (SCM_RIGHTS), before its report. Taken only then (pool-session.c); any other fd a
         * sandbox sends is closed unread. */
        FRAME_FD = 'D',
        /* A figure, sent at plt.show() only to a live answer (stream.h): 'I' + FRAME_IMAGE_HEADER
         * - 1 bytes (format, width, height, size) + its first bytes, then 'J' + more bytes until
         * size. Its place among 'O' and 'E' frames is where the program showed it. The report
         * still carries every figure: a live answer's end event is the buffered answer. */
        FRAME_IMAGE = 'I',
        FRAME_IMAGE_MORE = 'J',
};

/* 'K' + int32 signal number, little-endian: the init's last word when the runner was killed by
 * a signal. The init itself can only exit (pid 1 cannot die of a signal it sends itself), with
 * 128 + the signal; this frame lets the server report the signal, as a shell would. */
#define FRAME_KILLED_SIZE 5

/* 'Z' + int32 exit code (0..255) + uint64 peak RSS in bytes, little-endian, nothing else: the
 * runner's status travels in binary so that the pool's thread decides on it without parsing
 * the report (runner.py _finish packs it with "<iQ"). */
#define FRAME_END_SIZE 13

/* 'I' + uint8 format ('p' PNG, 's' SVG) + uint32 width + uint32 height + uint32 size of the
 * image in bytes, little-endian (runner.py packs it with FRAME_IMAGE_FORMAT), then data. */
#define FRAME_IMAGE_HEADER 14
#define FRAME_IMAGE_FORMAT "<cIII"
/* The struct module format of the 'Z' frame after its tag: runner.py packs it, and checks at
 * load that it is FRAME_END_SIZE - 1 bytes. */
#define FRAME_END_FORMAT "<iQ"

/* Frames the server sends: 'Q' + uint64 total length (little-endian), then the JSON request in
 * messages of at most FRAME_CHUNK bytes (the first one also carries the 9-byte header). */
#define FRAME_REQUEST 'Q'
#define FRAME_REQUEST_HEADER 9
/* The largest payload of one message either way: the server's request pieces, and the
 * runner's 'O', 'E' and 'R' pieces (runner.py CHUNK). A SOCK_SEQPACKET message is read whole or
 * cut: the server reads each into a buffer of RBUF_SIZE (256 KiB, pool-internal.h), the runner
 * into FRAME_REQUEST_HEADER + FRAME_CHUNK bytes; and 1 + 65536 bytes is well under a socket's
 * default send buffer (net.core.wmem_default, 208 KiB), which bounds what one send may carry. */
#define FRAME_CHUNK 65536

/* The fd at which a sandbox's runner finds its socket (seal.c step_fds puts it there). */
#define SANDBOX_SOCK_FD 3

/* The runner's environment, "NAME=value" each: os.environ of every run (runner.py ENV, handed
 * over by zygote.c). Not the zygote's own environment (zygote-ctl.c build_env), which the
 * zygote's imports see and the runner replaces with this one. */
#define SANDBOX_ENV                                                                                       \
        "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/work", "TMPDIR=/tmp", "LANG=C.UTF-8", "USER=sandbox", \
                "LOGNAME=sandbox", "PYTHONDONTWRITEBYTECODE=1", "MPLBACKEND=Agg",                         \
                "MPLCONFIGDIR=/tmp/.matplotlib", "OMP_NUM_THREADS=1", "OPENBLAS_NUM_THREADS=1",           \
                "MKL_NUM_THREADS=1", "NUMEXPR_NUM_THREADS=1"

/* Each step of the child's pipeline, in order; a failure reports its step. */
typedef enum SealStep {
        SEAL_CGROUPS, /* joined the run's cgroups (seal_join_cgroups, before the others) */
        SEAL_SYNC, /* wait until the zygote wrote the id maps */
        SEAL_FDS, /* 0 = /dev/null, 1 = stdout pipe, 2 = stderr pipe, 3 = socket; close rest */
        SEAL_SESSION, /* a session and process group of our own */
        SEAL_CGROUPNS, /* a cgroup namespace rooted at the run's own cgroup */
        SEAL_MOUNTS, /* the built root, pivot_root into it */
        SEAL_HOSTNAME,
        SEAL_RLIMITS,
        SEAL_IDENTITY, /* drop the bounding set, groups, uid, gid; verify no capability is left */
        SEAL_NNP, /* no_new_privs, parent-death signal */
        SEAL_SECCOMP, /* after it, the filter also binds us */
        SEAL_RUNNER, /* start the runner; we exec its init (init/sandbox-init.c) */
        _SEAL_MAX,
} SealStep;

typedef struct SealFailure {
        int32_t step; /* SealStep; its name and hint: seal_step_name/seal_step_hint (seal.c) */
        int32_t error; /* positive errno */
} SealFailure;
