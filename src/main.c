/* snakebox's commands; the only place that exits.
 *
 *   serve          run the HTTP server (the default)
 *   run FILE|-     run one script in the same sealed sandbox, without a server
 *   check          say what this host supports and seal one sandbox; non-zero if it cannot
 *   example        print .env.example (every config key, its default and range)
 *   apt-packages   print the Debian packages that provide PREINSTALL_LIBS
 *
 * The binary is also the zygote: when started as ZYGOTE_ARGV0 it runs zygote_main(). */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "cgroup.h"
#include "memwatch.h"
#include "config.h"
#include "forward.h"
#include "http.h"
#include "pool.h"
#include "pylibs.h"
#include "util/fd.h"
#include "util/log.h"
#include "util/macro.h"
#include "util/ttysafe.h"
#include "zygote.h"

extern char **environ;

static int load_config(Config *c) {
        _cleanup_free_ char *err = NULL;
        int r = config_load(c, ".env", environ, &err);
        if (r < 0)
                log_error("configuration: %s", err ? err : strerror(-r));
        return r;
}

/* Signals are taken by sigwait in the main thread only; every thread started later inherits
 * the blocked mask. */
static void block_signals(sigset_t *set) {
        sigemptyset(set);
        sigaddset(set, SIGTERM);
        sigaddset(set, SIGINT);
        sigaddset(set, SIGHUP);
        pthread_sigmask(SIG_BLOCK, set, NULL);
        signal(SIGPIPE, SIG_IGN);
}

/* Our own fds: one per sandbox in flight plus one per connection; the soft default of 1024 is
 * too small for MAX_CONCURRENCY + QUEUE_SIZE at their upper ranges. */
static void raise_nofile(void) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
}

/* What the memory limit is without a memory cgroup, for serve's log and check's report. */
static void memwatch_line(const CgroupRoot *cg, const Config *c, char *buf, size_t n) {
        snprintf(buf, n,
                "memory limit: %llu MB per run, sampled every %d ms; between samples a run can hold up to "
                "%llu MB (RLIMIT_AS per process x MAX_PROCESSES): no memory cgroup (%s)",
                (unsigned long long)(c->memory_limit_bytes >> 20), MEMWATCH_INTERVAL_MS,
                (unsigned long long)(cgroup_memory_bound(cg, c) >> 20), cg->why_not);
}

static int cmd_serve(void) {
        Config c;
        sigset_t set;
        char why[1024];
        Pool *pool = NULL;
        Http *http = NULL;
        Auth *auth = NULL;
        uint16_t port = 0;
        int r, sig = 0;

        if (load_config(&c) < 0)
                return 2;
        /* Keys first: a missing or empty keys file is reported at once, not after the import. */
        r = auth_new(&c, &auth, why, sizeof why);
        if (r < 0) {
                log_error("cannot start: %s", why);
                return 2;
        }
        block_signals(&set);
        raise_nofile();
        log_info("starting: importing %s", c.preinstall_libs[0] ? c.preinstall_libs : "(no libraries)");
        r = pool_start(&c, &pool, why, sizeof why);
        if (r < 0) {
                log_error("cannot start: %s", why);
                auth_free(auth);
                return 1;
        }
        const CgroupRoot *cg = pool_cgroups(pool);
        char line[512];
        if (cg->mode == CGROUP_NONE) {
                memwatch_line(cg, &c, line, sizeof line);
                log_info("%s", line);
        } else {
                log_info("memory limit: cgroup v%d%s", cg->mode,
                        cg->pids ? ", process limit: pids cgroup" : "");
        }
        log_info("CPU limit: %s, %u%% of a core per run", cgroup_cpu_name(cg), c.cpu_limit_percent);
        r = forward_global_init();
        if (r < 0) {
                log_error("cannot start: libcurl's initialisation failed");
                pool_stop(pool);
                auth_free(auth);
                return 1;
        }
        r = http_start(&c, pool, TAKE_PTR(auth), &http, &port, why, sizeof why);
        if (r < 0) {
                log_error("cannot start: %s", why);
                pool_stop(pool);
                return 1;
        }
        log_info("listening on http://%s%s%s:%u", strchr(c.host, ':') ? "[" : "", c.host,
                strchr(c.host, ':') ? "]" : "", port);

        while (sigwait(&set, &sig) != 0 || sig == SIGHUP)
                ;
        /* Graceful: no new connections or runs; runs in flight get SHUTDOWN_GRACE to finish and
         * their answers are sent; what is left is killed and answered 503; nothing stays. */
        log_info("%s: shutting down (runs in flight have %u s)", strsignal(sig), c.shutdown_grace_sec);
        /* Still listening while runs finish: a balancer's new requests get a quick 503 (and go
         * elsewhere) rather than a refused connection, which a plain Kubernetes Service would
         * pass on to its client; /health?ready=1 says 503 from now on. */
        http_drain(http);
        uint32_t left = pool_drain(pool, (uint64_t)c.shutdown_grace_sec * 1000);
        http_quiesce(http);
        if (left)
                log_info("%u runs still going after SHUTDOWN_GRACE: killing them", left);
        else
                http_wait_idle(http, 2000); /* the answers made, sent */
        pool_stop(pool);
        http_wait_idle(http, 2000); /* the 503s of the runs killed, sent */
        http_stop(http);
        forward_global_cleanup();
        return 0;
}

typedef struct Probe {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool done;
} Probe;

static void probe_signal(Probe *pr) {
        pthread_mutex_lock(&pr->lock);
        pr->done = true;
        pthread_cond_signal(&pr->cond);
        pthread_mutex_unlock(&pr->lock);
}

static void probe_done(Job *job) {
        probe_signal(job->userdata);
}

/* Submits job and waits until its done callback has signalled pr. Returns pool_submit's 0 or
 * -errno (then nothing ran and nothing is waited for). */
static int submit_and_wait(Pool *pool, Job *job, Probe *pr) {
        int r = pool_submit(pool, job);
        if (r < 0)
                return r;
        pthread_mutex_lock(&pr->lock);
        while (!pr->done)
                pthread_cond_wait(&pr->cond, &pr->lock);
        pthread_mutex_unlock(&pr->lock);
        return 0;
}

/* Runs inside a sandbox and reports what it sees, so `check` shows the seal from the inside. */
static const char probe_code[] =
        "import os\n"
        "st = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines() if ':\\t' in "
        "l)\n"
        "print('  uid/gid inside:', os.getuid(), os.getgid(), 'groups:', os.getgroups())\n"
        "print('  capabilities:', st['CapEff'].strip(), 'no_new_privs:', st['NoNewPrivs'].strip(),\n"
        "      'seccomp:', st['Seccomp'].strip())\n"
        "print('  processes visible:', sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
        "print('  network interfaces:', [l.split(':')[0].strip() for l in "
        "open('/proc/net/dev').readlines()[2:]])\n"
        "print('  root:', sorted(os.listdir('/')))\n"
        "print('  environment:', sorted(os.environ))\n";

static int cmd_check(void) {
        Config c;
        char why[1024];
        struct utsname u;
        Pool *pool = NULL;
        sigset_t set;

        if (load_config(&c) < 0)
                return 2;
        block_signals(&set);
        uname(&u);
        printf("kernel: %s %s\n", u.sysname, u.release);
        uint32_t first, last;
        if (geteuid() != 0)
                printf("running as: uid %u (every run maps to this uid in its own user namespace)\n",
                        (unsigned)geteuid());
        else if (config_uid_range(&c, &first, &last))
                printf("running as: uid 0 (each concurrent run maps to its own host uid from "
                       "SANDBOX_UID_RANGE %u-%u)\n",
                        first, last);
        else
                printf("running as: uid 0 (every run maps to SANDBOX_UID %u in its own user namespace)\n",
                        first);
        c.pool_size = 1;
        int r = pool_start(&c, &pool, why, sizeof why);
        if (r < 0) {
                printf("sandbox: CANNOT BE SEALED: %s\n", why);
                return 1;
        }
        const CgroupRoot *cg = pool_cgroups(pool);
        char line[512];
        if (cg->mode == CGROUP_NONE) {
                memwatch_line(cg, &c, line, sizeof line);
                printf("%s\n", line);
        } else {
                printf("memory limit: %llu MB per run, cgroup v%d (%s)\n",
                        (unsigned long long)(c.memory_limit_bytes >> 20), cg->mode, cg->mem_base);
        }
        printf("process limit: %s\n", cg->pids ? "pids cgroup + RLIMIT_NPROC" : "RLIMIT_NPROC only");
        if (cg->cpu != CGROUP_NONE)
                printf("CPU limit: %s (equal weight per run, at most %u%% of a core each)\n",
                        cgroup_cpu_name(cg), c.cpu_limit_percent);
        else
                printf("CPU limit: %s\n", cgroup_cpu_name(cg));
        printf("sandbox: sealed (user, pid, mount, net, ipc, uts, cgroup namespaces; seccomp; no "
               "capabilities)\n");

        Probe pr = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
        char *req_json = NULL;
        size_t len = 0;
        r = api_runner_request(probe_code, strlen(probe_code), &req_json, &len);
        Job job = {.request = req_json,
                .request_len = len,
                .client_fd = -1,
                .done = probe_done,
                .userdata = &pr};
        int status = 0;
        if (r == 0 && submit_and_wait(pool, &job, &pr) == 0) {
                printf("inside a sandbox:\n%.*s", (int)job.result.merged.len,
                        job.result.merged.data ? job.result.merged.data : "");
                if (job.result.outcome != RUN_EXITED || job.result.exit_code != 0) {
                        printf("the probe run failed (outcome %d, exit %d)\n", job.result.outcome,
                                job.result.exit_code);
                        status = 1;
                }
        } else
                status = 1;
        run_result_free(&job.result);
        free(req_json);
        pool_stop(pool);
        return status;
}

/* `snakebox run`'s state: the run's end, and how its output reaches our stdout and stderr. */
typedef struct RunTerm {
        Probe probe;
        /* Per stream (1, 2): the destination is a terminal and --raw was not given, so control
         * characters are shown escaped (util/ttysafe.h) instead of reaching the terminal. */
        bool filter[3];
        TtySafe state[3];
} RunTerm;

static void run_done(Job *job) {
        RunTerm *rt = job->userdata;
        probe_signal(&rt->probe);
}

/* Slices of a run's output are filtered through a buffer of this size on the stack. */
#define RUN_SLICE 4096

static void run_output(Job *job, int stream, const char *data, size_t n) {
        RunTerm *rt = job->userdata;
        int fd = stream == 1 ? STDOUT_FILENO : STDERR_FILENO;
        stream = stream == 1 ? 1 : 2;
        if (!rt->filter[stream]) {
                (void)fd_write_all(fd, data, n);
                return;
        }
        char out[TTYSAFE_MAX(RUN_SLICE)];
        for (size_t at = 0; at < n; at += RUN_SLICE) {
                size_t len = n - at < RUN_SLICE ? n - at : RUN_SLICE;
                size_t k = ttysafe_feed(&rt->state[stream], data + at, len, out);
                (void)fd_write_all(fd, out, k);
        }
}

/* The end of the run's output: a sequence it left incomplete is shown as bytes. */
static void run_output_end(RunTerm *rt) {
        char out[TTYSAFE_MAX(0)];
        for (int stream = 1; stream <= 2; stream++)
                if (rt->filter[stream]) {
                        size_t k = ttysafe_flush(&rt->state[stream], out);
                        (void)fd_write_all(stream == 1 ? STDOUT_FILENO : STDERR_FILENO, out, k);
                }
}

/* Reads a whole file ("-": standard input), at most max bytes. */
static int read_input(const char *path, size_t max, char **ret, size_t *ret_len) {
        if (strcmp(path, "-") != 0)
                return fd_read_file(path, max, ret, ret_len);
        size_t alloc = 65536, len = 0;
        char *b = malloc(alloc);
        if (!b)
                return -ENOMEM;
        for (;;) {
                if (len + 1 >= alloc) {
                        if (alloc > max) {
                                free(b);
                                return -EFBIG;
                        }
                        char *nb = realloc(b, alloc * 2);
                        if (!nb) {
                                free(b);
                                return -ENOMEM;
                        }
                        b = nb;
                        alloc *= 2;
                }
                ssize_t k = read(STDIN_FILENO, b + len, alloc - len - 1);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        int r = -errno;
                        free(b);
                        return r;
                }
                if (k == 0)
                        break;
                len += (size_t)k;
        }
        b[len] = 0;
        *ret = b;
        *ret_len = len;
        return 0;
}

#define RUN_USAGE "usage: snakebox run [--timeout SECONDS] [--stdin FILE] [--raw] FILE|-\n"

/* snakebox run [--timeout N] [--stdin FILE] [--raw] FILE|-: one run, its output streamed to the
 * terminal as it is written, and the program's exit status as ours (124 on timeout, 128+N when
 * a signal ended it, 125 when snakebox itself failed). The output is the program's, so it is
 * untrusted: where it goes to a terminal, control characters are shown escaped unless --raw. */
static int cmd_run(int argc, char **argv) {
        const char *script = NULL, *stdin_path = NULL, *timeout = NULL;
        bool raw = false;
        char why[1024];
        Config c;
        sigset_t set;

        for (int i = 2; i < argc; i++) {
                if (strcmp(argv[i], "--raw") == 0)
                        raw = true;
                else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
                        timeout = argv[++i];
                else if (strcmp(argv[i], "--stdin") == 0 && i + 1 < argc)
                        stdin_path = argv[++i];
                else if (!script && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0))
                        script = argv[i];
                else {
                        fprintf(stderr, RUN_USAGE);
                        return 2;
                }
        }
        if (!script) {
                fprintf(stderr, RUN_USAGE);
                return 2;
        }
        if (load_config(&c) < 0)
                return 2;

        _cleanup_free_ char *code = NULL, *input = NULL;
        size_t code_len = 0, input_len = 0;
        int r = read_input(script, c.max_request_bytes, &code, &code_len);
        if (r < 0) {
                log_errno(r, "cannot read %s", script);
                return 2;
        }
        if (stdin_path) {
                r = read_input(stdin_path, c.max_request_bytes, &input, &input_len);
                if (r < 0) {
                        log_errno(r, "cannot read %s", stdin_path);
                        return 2;
                }
        }
        /* The request goes through the API's own checks, as a client's would. */
        json_t *req = json_pack("{ss%}", "code", code, code_len);
        if (!req)
                return 125;
        if (input)
                json_object_set_new(req, "stdin", json_stringn(input, input_len));
        if (timeout) {
                char *end;
                errno = 0;
                double t = strtod(timeout, &end);
                if (errno || *end || end == timeout) {
                        log_error("--timeout %s: expected a number of seconds", timeout);
                        json_decref(req);
                        return 2;
                }
                json_object_set_new(req, "timeout", json_real(t));
        }
        _cleanup_free_ char *body = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        if (!body)
                return 125;
        ApiRequest ar;
        HttpStatus decoded = api_decode_request(body, strlen(body), &c, &ar, why, sizeof why);
        if (decoded != HTTP_STATUS_NONE) {
                log_error("%s", decoded == HTTP_BAD_REQUEST ? why : "out of memory");
                return 2;
        }

        block_signals(&set);
        /* One run: one sandbox of the full zygote, nothing kept warm, nothing learned. */
        c.pool_size = 1;
        c.lean_pool_size = 0;
        c.prefault_bytes = 0;
        Pool *pool = NULL;
        r = pool_start(&c, &pool, why, sizeof why);
        if (r < 0) {
                log_error("cannot start: %s", why);
                free(ar.runner);
                return 125;
        }
        RunTerm rt = {.probe = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER},
                .filter = {false, !raw && isatty(STDOUT_FILENO), !raw && isatty(STDERR_FILENO)}};
        ttysafe_init(&rt.state[1]);
        ttysafe_init(&rt.state[2]);
        Job job = {.request = ar.runner,
                .request_len = ar.runner_len,
                .client_fd = -1,
                .done = run_done,
                .on_output = run_output,
                .userdata = &rt,
                .timeout_ms = ar.timeout_ms};
        int status = 125;
        if (submit_and_wait(pool, &job, &rt.probe) == 0) {
                run_output_end(&rt);
                RunResult *res = &job.result;
                switch (res->outcome) {
                case RUN_EXITED:
                        status = res->signal ? 128 + res->signal : res->exit_code;
                        if (res->signal)
                                fprintf(stderr, "snakebox: killed by signal %d\n", res->signal);
                        break;
                case RUN_TIMEOUT:
                        fprintf(stderr, "Timeout Error: Code execution exceeded %g seconds\n",
                                res->timeout_ms / 1000.0);
                        status = 124;
                        break;
                case RUN_MEMORY_LIMIT:
                        fprintf(stderr,
                                "Memory Limit Error: the program used more than its memory limit (%llu "
                                "MB)\n",
                                (unsigned long long)(res->memory_bytes >> 20));
                        status = 137;
                        break;
                case RUN_OUTPUT_LIMIT:
                        fprintf(stderr,
                                "Output Limit Error: the program wrote more than MAX_OUTPUT_BYTES\n");
                        status = 1;
                        break;
                default:
                        fprintf(stderr, "snakebox: the run failed: %s\n",
                                res->internal_error[0] ? res->internal_error : "internal error");
                        break;
                }
        }
        run_result_free(&job.result);
        free(ar.runner);
        pool_stop(pool);
        return status;
}

static int print_debian(const char *pkg, _unused_ void *userdata) {
        char deb[160];
        int r = pylibs_debian(pkg, deb, sizeof deb);
        if (r < 0)
                return r;
        printf("%s\n", deb);
        return 0;
}

static int cmd_apt_packages(void) {
        Config c;
        if (load_config(&c) < 0)
                return 2;
        return pylibs_foreach(c.preinstall_libs, print_debian, NULL) < 0 ? 2 : 0;
}

#if defined(__SANITIZE_ADDRESS__)
/* Sanitizer builds (make SANITIZE=address,...) only. The zygote and its sandboxes start with a
 * fixed environment, so ASAN_OPTIONS cannot reach them; these are the defaults every process of
 * the build gets. Python asks for absurd sizes on purpose (the memory tests, bytearray(10**12)),
 * which must come back as NULL and MemoryError, not abort the run. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
        return "allocator_may_return_null=1";
}
#endif

static void usage(FILE *f) {
        fprintf(f,
                "usage: snakebox [serve|check|run|example|apt-packages]\n"
                "       snakebox run [--timeout SECONDS] [--stdin FILE] [--raw] FILE|-\n"
                "  serve         run the HTTP server (configured by the environment and .env)\n"
                "  run           run one script in a sandbox, its output streamed to the terminal; control\n"
                "                characters in it are shown escaped on a terminal (--raw: as they are)\n"
                "  check         show what this host supports; exit non-zero if no sandbox can be sealed\n"
                "  example       print .env.example\n"
                "  apt-packages  print the Debian packages providing PREINSTALL_LIBS\n");
}

int main(int argc, char **argv) {
        if (argc >= 1 && strcmp(argv[0], ZYGOTE_ARGV0) == 0)
                return zygote_main();
        const char *cmd = argc > 1 ? argv[1] : "serve";
        if (argc > 2 && strcmp(cmd, "run") != 0) {
                usage(stderr);
                return 2;
        }
        if (strcmp(cmd, "serve") == 0)
                return cmd_serve();
        if (strcmp(cmd, "check") == 0)
                return cmd_check();
        if (strcmp(cmd, "run") == 0)
                return cmd_run(argc, argv);
        if (strcmp(cmd, "example") == 0) {
                config_write_example(stdout);
                return 0;
        }
        if (strcmp(cmd, "apt-packages") == 0)
                return cmd_apt_packages();
        if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
                usage(stdout);
                return 0;
        }
        usage(stderr);
        return 2;
}
