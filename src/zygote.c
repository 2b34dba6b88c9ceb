/* The zygote: a process that embeds Debian's libpython, imports PREINSTALL_LIBS once, and then
 * only forks sandboxes. It never runs user code itself.
 *
 * Theory of operation
 * -------------------
 * The server starts the zygote with posix_spawn from a sealed copy of its own binary (a memfd,
 * so no sandbox can learn or reach the binary's path through /proc/1/exe) with a fixed
 * environment and three fds: 0 = /dev/null, 2 = the server's stderr (for its log lines), 3 = a
 * SOCK_SEQPACKET control socket. Messages on it (proto.h):
 *
 *   server -> zygote   ZygoteConfig             once: limits, libraries, the skeleton root
 *   zygote -> server   ZygoteReady              once: libraries imported, or why not
 *   server -> zygote   SpawnRequest + fds       per sandbox: its host uid/gid, its socket,
 *                                               stdout and stderr pipes, cgroup fds
 *   zygote -> server   SpawnReply               pid (in the server's pid namespace) or errno
 *
 * Each sandbox is one clone() with CLONE_PARENT and all six namespace flags. CLONE_PARENT makes
 * the server, not the zygote, the sandbox's parent: the server reaps it, gets its exit status
 * and rusage, kills it through a pidfd, and the sandbox outlives a crash of the zygote (runs in
 * flight finish; only new sandboxes wait for the restarted zygote). A root zygote clones with
 * its effective uid switched to the host uid of the sandbox's slot (SpawnRequest.uid), so that
 * the namespace's owner, which the kernel charges per-user counts to, differs between
 * concurrent runs (spawn_one). The child first joins the run's cgroups through the fds it
 * inherited (seal_join_cgroups: itself, so that the zygote never waits for the kernel's cgroup
 * locks); the zygote writes its id maps and releases it through a pipe; the child seals itself
 * (seal.c), starts the runner (a clone that shares its memory) and execs the run's init
 * (src/init/sandbox-init.c), which leaves the runner the only copy of the zygote; the runner
 * says FRAME_READY on the socket to the server, and blocks until the server sends the request.
 * The zygote keeps no fd of any sandbox.
 *
 * Whatever the zygote holds, every run can read in its own memory (it is a fork): so the
 * zygote starts in "/" with a fixed environment and argv, receives only ZygoteConfig (no key,
 * no path of the server but the skeleton and the font cache), and wipes even that once the
 * seal plan is built and the imports are done.
 *
 * Forking an interpreter without exec is only safe because the zygote stays single-threaded
 * (checked after the imports: BLAS and OpenMP pools are held at one thread by the environment),
 * every clone is bracketed by PyOS_BeforeFork/PyOS_AfterFork_Child, and the child re-seeds the
 * generators that were seeded at import (runner.py). The zygote dies with the server
 * (PR_SET_PDEATHSIG) and exits when its control socket closes. */
#include <Python.h>

#include <errno.h>
#include <linux/capability.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto.h"
#include "pylibs.h"
#include "seal.h"
#include "util/fd.h"
#include "util/log.h"
#include "util/macro.h"
#include "zygote.h"

extern const char runner_py[];
extern const char learn_py[];
extern const char warmup_py[];

#define RUNNER_FILE "<snakebox-runner>"
#define LEARN_FILE "<snakebox-learn>"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
/* At most this many ranges are kept: a bound on what a learning child can make us allocate. */
#define PREFAULT_RANGES_MAX 65536

static const char preload_py[] =
        "import os, sys, importlib, gc\n"
        "os.environ['MPLCONFIGDIR'] = MPL_DIR\n"
        "def _preload():\n"
        "    for pkg, mod, deb in LIBS:\n"
        "        try:\n"
        "            if mod == 'matplotlib':\n"
        "                import matplotlib\n"
        "                matplotlib.use('Agg')\n"
        "            importlib.import_module(mod)\n"
        "        except BaseException as e:\n"
        "            return ('PREINSTALL_LIBS entry %r: cannot import module %r (%s: %s); install it "
        "with: apt-get install %s' % (pkg, mod, type(e).__name__, e, deb))\n"
        "    if 'matplotlib' in sys.modules:\n"
        "        import matplotlib.pyplot\n"
        "        from matplotlib import font_manager  # loads, or builds once, the font cache\n"
        "    for m in ('json', 'traceback', 'linecache', 'types', 'io', 'random', 'threading',\n"
        "              'atexit', 're', 'math', 'collections', 'datetime', 'itertools', 'functools',\n"
        "              'string', 'time', 'statistics', 'decimal', 'fractions', 'csv', 'textwrap',\n"
        "              'operator', 'copy', 'heapq', 'bisect', 'dataclasses', 'typing', 'enum',\n"
        "              'ast', 'resource', 'base64', 'fnmatch', 'stat', 'contextlib'):\n"
        "        importlib.import_module(m)\n"
        "    return None\n"
        "ERROR = _preload()\n"
        "if ERROR is None:\n"
        "    _w = {'__name__': '_snakebox_warmup', '__builtins__': __builtins__}\n"
        "    exec(compile(WARMUP, '<snakebox-warmup>', 'exec'), _w)\n"
        "    _w['warm']()\n"
        "    WARM = _w['steps']()\n"
        "_std = set(sys.stdlib_module_names) | set(sys.builtin_module_names)\n"
        "MODULES = ' '.join(sorted(n for n in {m.split('.')[0] for m in list(sys.modules)} - _std\n"
        "                          if not n.startswith('_')))\n"
        "del os.environ['MPLCONFIGDIR']\n"
        "gc.collect()\n"
        "gc.freeze()\n";

typedef struct PrefaultRange {
        uint64_t start, pages;
} PrefaultRange;

typedef struct Zygote {
        int ctl;
        /* The init message, until start-up is over; then wiped (zygote_main). */
        ZygoteConfig init;
        SealPlan plan;
        PyObject *runner; /* the runner module (runner.py) */
        PyObject *runner_main;
        PyObject *warm;
        PrefaultRange *prefault; /* pages sandboxes copy before they say READY */
        char modules[8192]; /* reported in ZygoteReady */
        const char *name; /* for log lines */
        size_t nprefault;
} Zygote;

static void py_decrefp(PyObject **p) {
        Py_XDECREF(*p);
}
/* A reference owned by this scope: dropped on every way out, so no path drops it twice. */
#define _cleanup_pyobj_ _cleanup_(py_decrefp)

static int add_lib(const char *pkg, void *userdata) {
        PyObject *list = userdata;
        char mod[128], deb[160];
        int r = pylibs_module(pkg, mod, sizeof mod);
        if (r < 0)
                return r;
        r = pylibs_debian(pkg, deb, sizeof deb);
        if (r < 0)
                return r;
        _cleanup_pyobj_ PyObject *t = Py_BuildValue("(sss)", pkg, mod, deb);
        if (!t || PyList_Append(list, t) < 0)
                return -ENOMEM;
        return 0;
}

/* Formats the pending Python exception into msg. */
static void python_error(char *msg, size_t n, const char *what) {
        _cleanup_pyobj_ PyObject *type = NULL, *value = NULL, *tb = NULL;
        PyErr_Fetch(&type, &value, &tb);
        _cleanup_pyobj_ PyObject *s = value ? PyObject_Str(value) : NULL;
        const char *text = s ? PyUnicode_AsUTF8(s) : NULL;
        snprintf(msg, n, "%s: %s", what, text ? text : "unknown Python error");
        PyErr_Clear();
}

static int python_failed(char *msg, size_t n) {
        python_error(msg, n, "Python start-up failed");
        return -EINVAL;
}

/* Sets name in dict to value, a new reference this call consumes (NULL: a failed call). */
static int dict_set_new(PyObject *dict, const char *name, PyObject *value) {
        _cleanup_pyobj_ PyObject *v = value;
        return v && PyDict_SetItemString(dict, name, v) == 0 ? 0 : -ENOMEM;
}

/* What runner.py takes from proto.h, set in its module's globals before its code runs, so that
 * the frame tags, sizes, the socket's fd and the run's environment are written once. */
static int set_runner_globals(PyObject *g, void *userdata) {
        static const struct {
                const char *name;
                char tag;
        } tags[] = {
                {"ready", FRAME_READY},
                {"stdout", FRAME_STDOUT},
                {"stderr", FRAME_STDERR},
                {"report", FRAME_REPORT},
                {"report_end", FRAME_REPORT_END},
                {"request", FRAME_REQUEST},
                {"fd", FRAME_FD},
                {"image", FRAME_IMAGE},
                {"image_more", FRAME_IMAGE_MORE},
        };
        static const char *const env[] = {SANDBOX_ENV};
        (void)userdata;

        _cleanup_pyobj_ PyObject *frame = PyDict_New();
        _cleanup_pyobj_ PyObject *env_dict = PyDict_New();
        if (!frame || !env_dict)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(tags); i++)
                if (dict_set_new(frame, tags[i].name, PyBytes_FromStringAndSize(&tags[i].tag, 1)) < 0)
                        return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(env); i++) {
                const char *eq = strchr(env[i], '=');
                if (!eq)
                        return -EINVAL; /* a SANDBOX_ENV entry without "=" */
                _cleanup_pyobj_ PyObject *name = PyUnicode_FromStringAndSize(env[i], eq - env[i]);
                _cleanup_pyobj_ PyObject *value = PyUnicode_FromString(eq + 1);
                if (!name || !value || PyDict_SetItem(env_dict, name, value) < 0)
                        return -ENOMEM;
        }
        if (PyDict_SetItemString(g, "FRAME", frame) < 0 || PyDict_SetItemString(g, "ENV", env_dict) < 0 ||
                dict_set_new(g, "CHUNK", PyLong_FromLong(FRAME_CHUNK)) < 0 ||
                dict_set_new(g, "REQUEST_MAX", PyLong_FromLong(FRAME_REQUEST_HEADER + FRAME_CHUNK)) < 0 ||
                dict_set_new(g, "END_FORMAT", PyUnicode_FromString(FRAME_END_FORMAT)) < 0 ||
                dict_set_new(g, "END_SIZE", PyLong_FromLong(FRAME_END_SIZE)) < 0 ||
                dict_set_new(g, "IMAGE_FORMAT", PyUnicode_FromString(FRAME_IMAGE_FORMAT)) < 0 ||
                dict_set_new(g, "IMAGE_HEADER", PyLong_FromLong(FRAME_IMAGE_HEADER)) < 0 ||
                dict_set_new(g, "SOCK", PyLong_FromLong(SANDBOX_SOCK_FD)) < 0 ||
                dict_set_new(g, "RUNNER_FILE", PyUnicode_FromString(RUNNER_FILE)) < 0)
                return -ENOMEM;
        return 0;
}

/* Compiles source under file name and runs it as module name, with the given globals set
 * before it runs. Returns a new reference to the module, or NULL with a Python error set. */
static PyObject *exec_module(const char *name, const char *source, const char *file,
        int (*set_globals)(PyObject *g, void *userdata), void *userdata) {
        _cleanup_pyobj_ PyObject *code = Py_CompileString(source, file, Py_file_input);
        if (!code)
                return NULL;
        /* Made (or found) in sys.modules here, so that PyImport_ExecCodeModule runs the code
         * in this module, whose globals are set already. */
        PyObject *mod = PyImport_AddModule(name); /* borrowed */
        if (!mod)
                return NULL;
        if (set_globals(PyModule_GetDict(mod), userdata) < 0) {
                if (!PyErr_Occurred())
                        PyErr_NoMemory();
                return NULL;
        }
        return PyImport_ExecCodeModule(name, code);
}

static int set_learn_globals(PyObject *g, void *userdata) {
        return PyDict_SetItemString(g, "RUNNER", userdata) < 0 ? -ENOMEM : 0;
}

static int python_start(Zygote *z, char *msg, size_t n) {
        PyConfig config;
        PyStatus st;

        PyConfig_InitPythonConfig(&config);
        config.user_site_directory = 0;
        config.write_bytecode = 0;
        config.parse_argv = 0;
        /* sys.executable and sys.prefix as for Debian's python3, so that subprocess and
         * multiprocessing in a run start the same interpreter. */
        st = PyConfig_SetString(&config, &config.program_name, L"/usr/bin/python3");
        if (!PyStatus_Exception(st))
                st = Py_InitializeFromConfig(&config);
        PyConfig_Clear(&config);
        if (PyStatus_Exception(st)) {
                snprintf(msg, n, "cannot start Python: %s", st.err_msg ? st.err_msg : "unknown error");
                return -EINVAL;
        }

        _cleanup_pyobj_ PyObject *globals = PyDict_New();
        _cleanup_pyobj_ PyObject *libs = PyList_New(0);
        if (!globals || !libs)
                return python_failed(msg, n);
        int r = pylibs_foreach(z->init.preinstall_libs, add_lib, libs);
        if (r < 0) {
                snprintf(msg, n, "PREINSTALL_LIBS: invalid list: %s", strerror(-r));
                return r;
        }
        _cleanup_pyobj_ PyObject *mpl = PyUnicode_FromString(z->init.mpl_dir);
        _cleanup_pyobj_ PyObject *warmup = PyUnicode_FromString(warmup_py);
        if (!mpl || !warmup || PyDict_SetItemString(globals, "WARMUP", warmup) < 0 ||
                PyDict_SetItemString(globals, "LIBS", libs) < 0 ||
                PyDict_SetItemString(globals, "MPL_DIR", mpl) < 0 ||
                PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) < 0)
                return python_failed(msg, n);

        _cleanup_pyobj_ PyObject *res = PyRun_String(preload_py, Py_file_input, globals, globals);
        if (!res)
                return python_failed(msg, n);
        PyObject *err = PyDict_GetItemString(globals, "ERROR"); /* borrowed */
        if (err && err != Py_None) {
                const char *text = PyUnicode_AsUTF8(err);
                snprintf(msg, n, "%s", text ? text : "cannot import PREINSTALL_LIBS");
                return -ENOENT;
        }
        z->warm = Py_XNewRef(PyDict_GetItemString(globals, "WARM")); /* kept for learn_prefault */
        PyObject *modules = PyDict_GetItemString(globals, "MODULES"); /* borrowed */
        const char *names = modules ? PyUnicode_AsUTF8(modules) : NULL;
        if (names && strlen(names) < sizeof z->modules)
                snprintf(z->modules, sizeof z->modules, "%s", names);

        /* The runner: compiled under its own file name so its frames can be cut from
         * tracebacks. */
        _cleanup_pyobj_ PyObject *mod =
                exec_module("_snakebox_runner", runner_py, RUNNER_FILE, set_runner_globals, NULL);
        if (!mod)
                return python_failed(msg, n);
        _cleanup_pyobj_ PyObject *run = PyObject_GetAttrString(mod, "main");
        _cleanup_pyobj_ PyObject *check = PyObject_GetAttrString(mod, "check_private_apis");
        if (!run || !check)
                return python_failed(msg, n);
        /* After the imports: the private APIs of what PREINSTALL_LIBS loaded are checked too. A
         * missing one fails the start-up, naming it, instead of every run. */
        _cleanup_pyobj_ PyObject *missing = PyObject_CallNoArgs(check);
        if (!missing)
                return python_failed(msg, n);
        if (missing != Py_None) {
                const char *text = PyUnicode_AsUTF8(missing);
                snprintf(msg, n, "%s",
                        text ? text : "the sandbox runner needs a private API that is missing");
                return -ENOSYS;
        }
        z->runner = TAKE_PTR(mod);
        z->runner_main = TAKE_PTR(run);
        return 0;
}

/* Counts our threads: a library that started one would make every fork unsafe. */
static int thread_count(void) {
        char *text = NULL;
        size_t len;
        if (fd_read_file("/proc/self/status", 1 << 16, &text, &len) < 0)
                return -1;
        const char *p = strstr(text, "\nThreads:");
        int n = p ? atoi(p + 9) : -1; /* kernel-written */
        free(text);
        return n;
}

_noreturn_ static void child_main(
        Zygote *z, int *fds, size_t ncgroups, int sync_fd, const SpawnRequest *req) {
        int joined = seal_join_cgroups(fds + 3, ncgroups);
        /* Before the seal: the fork hooks libraries registered may still need what the seal
         * closes (matplotlib's clears its font cache, whose FreeType faces close their font
         * files; with those fds gone FreeType crashed). Python then stays untouched until the
         * runner, which goes on in this very memory (seal.c step_runner), takes over: it needs
         * no second PyOS_AfterFork. */
        PyOS_AfterFork_Child();
        /* A session's limits (SpawnRequest); this is the child's own copy of the plan. */
        if (req->cpu_limit_sec)
                z->plan.cpu_limit_sec = req->cpu_limit_sec;
        if (req->tmp_size_bytes)
                z->plan.tmp_size_bytes = req->tmp_size_bytes;
        /* Returns in the runner only: the sealed child stays behind as the run's init, an
         * exec'd program that no longer shares this memory. */
        if (seal_run(&z->plan, joined, fds[0], fds[1], fds[2], sync_fd) < 0)
                _exit(127);
        /* First copy, in one call per range, the pages the runner is going to write anyway
         * (see learn_prefault): its preparation writes hundreds of pages, and a copy-on-write
         * fault costs this VM two to three times more per page than MADV_POPULATE_WRITE.
         * Failures only mean the faults happen later. */
        long page = sysconf(_SC_PAGESIZE);
        for (size_t i = 0; i < z->nprefault; i++)
                (void)madvise((void *)(uintptr_t)z->prefault[i].start, z->prefault[i].pages * (size_t)page,
                        MADV_POPULATE_WRITE);
#if defined(__SANITIZE_ADDRESS__)
        /* A sanitizer build (tests only): a crash in user code must look as it does in a normal
         * build (killed by SIGSEGV), not be turned into ASan's report and exit status 1. */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        signal(SIGFPE, SIG_DFL);
        signal(SIGILL, SIG_DFL);
        signal(SIGABRT, SIG_DFL);
#endif
        PyObject *r = PyObject_CallNoArgs(z->runner_main);
        /* main() leaves with os._exit; reaching here is a runner bug. */
        if (!r)
                PyErr_Print();
        _exit(70);
}

/* The kernel charges per-user counts (inotify instances and watches, processes, message queue
 * bytes: kernel/ucount.c) in the user namespace of the process AND, in every ancestor
 * namespace, to the uid that OWNS the child namespace: the effective uid of whoever called
 * clone(CLONE_NEWUSER). Had the zygote (root) created every namespace, all runs would draw from
 * root's one count on the host, whatever uid they are mapped to: one run holding every inotify
 * instance would leave none to the next. So a root zygote creates each sandbox's namespace as
 * the slot's uid: it switches only its effective uid around the clone and keeps real and saved
 * uid 0, to switch back and write the id maps as root. Per-user counts kept by the real uid
 * (pipe buffers, fds in flight) follow the slot uid once the child's setresuid runs. */
/* Leaving euid 0 cleared our effective capabilities (the kernel's set-uid fix-up), but not the
 * permitted ones, since real and saved uid stay 0. The clone must keep CAP_SYS_ADMIN: hosts
 * that restrict user namespaces to privileged callers (kernel.unprivileged_userns_clone=0,
 * Ubuntu's AppArmor userns restriction) would refuse it, or fence the namespace, otherwise. */
static int effective_caps_from_permitted(void) {
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct d[2];
        if (syscall(SYS_capget, &h, d) < 0)
                return -errno;
        d[0].effective = d[0].permitted;
        d[1].effective = d[1].permitted;
        if (syscall(SYS_capset, &h, d) < 0)
                return -errno;
        return 0;
}

static int spawn_one(Zygote *z, int *fds, size_t ncgroups, const SpawnRequest *req, pid_t *ret_pid) {
        uint32_t uid = req->uid, gid = req->gid;
        _cleanup_close_pair_ int sync[2] = {-1, -1};
        int r = 0;

        *ret_pid = -1;
        if (pipe2(sync, O_CLOEXEC) < 0)
                return -errno;

        bool as_slot = geteuid() == 0;
        if (as_slot && setresuid((uid_t)-1, (uid_t)uid, (uid_t)-1) < 0)
                return -errno;
        if (as_slot && (r = effective_caps_from_permitted()) < 0) {
                /* Back to euid 0 (which restores the effective set); failing that the zygote
                 * must not go on, as below. */
                if (setresuid((uid_t)-1, 0, (uid_t)-1) < 0)
                        return -ENOTRECOVERABLE;
                return r;
        }
        PyOS_BeforeFork();
        pid_t pid = (pid_t)syscall(SYS_clone,
                CLONE_PARENT | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC |
                        CLONE_NEWUTS | SIGCHLD,
                NULL, NULL, NULL, 0);
        if (pid == 0) {
                sync[1] = safe_close(sync[1]);
                child_main(z, fds, ncgroups, sync[0], req);
        }
        int saved = errno;
        PyOS_AfterFork_Parent();
        /* Killed on every way out but success; the server, its parent, reaps it. */
        _cleanup_sigkill_ pid_t child = pid;
        if (as_slot && setresuid((uid_t)-1, 0, (uid_t)-1) < 0)
                /* Cannot happen with saved uid 0; a zygote that is not root any more must not
                 * go on (it could not map the next child): it exits and the server restarts it. */
                return -ENOTRECOVERABLE;
        if (pid < 0)
                return -saved;
        *ret_pid = pid;
        sync[0] = safe_close(sync[0]);

        /* The child joins its cgroups itself (seal_join_cgroups): only the maps are ours. */
        r = userns_write_maps(pid, uid, gid);
        if (r < 0)
                return r;
        if (fd_write_all(sync[1], "G", 1) < 0)
                return -EIO;
        TAKE_PID(child);
        return 0;
}

/* Learns which pages of the zygote a typical run writes: a plain fork (not a sandbox: it runs
 * only our warm-up code and one hello-world request) reads which pages are its own copy (the
 * exclusive bit of /proc/self/pagemap) after each step, and reports those ranges (learn.py).
 * learn.py is compiled here, before the fork, so that compiling it is not counted as a write
 * every run makes. On any failure sandboxes simply pre-copy nothing. */
static void learn_prefault(Zygote *z) {
        _cleanup_close_pair_ int p[2] = {-1, -1};
        uint64_t n = 0;

        if (z->init.prefault_bytes == 0 || !z->warm)
                return;
        _cleanup_pyobj_ PyObject *mod =
                exec_module("_snakebox_learn", learn_py, LEARN_FILE, set_learn_globals, z->runner);
        _cleanup_pyobj_ PyObject *learn = mod ? PyObject_GetAttrString(mod, "learn") : NULL;
        if (!learn) {
                char msg[512];
                python_error(msg, sizeof msg, "learn.py");
                log_error("%s: cannot learn the pages runs write: %s", z->name, msg);
                return;
        }
        if (pipe2(p, O_CLOEXEC) < 0)
                return;
        pid_t zygote = getpid();
        PyOS_BeforeFork();
        pid_t pid = fork();
        if (pid == 0) {
                /* It must not outlive the zygote (a server stopped during start-up kills the
                 * zygote mid-learning): it dies with it, and keeps only the pipe's write end, so
                 * a write to a zygote gone fails instead of blocking forever on a full pipe. */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != zygote)
                        _exit(1);
                p[0] = safe_close(p[0]);
                PyOS_AfterFork_Child();
                PyObject *r = PyObject_CallFunction(learn, "iO", p[1], z->warm);
                if (!r)
                        PyErr_Print();
                _exit(1);
        }
        PyOS_AfterFork_Parent();
        if (pid < 0)
                return;
        p[1] = safe_close(p[1]);
        FILE *f = fdopen(p[0], "r");
        if (f) {
                p[0] = -1;
                if (fread(&n, sizeof n, 1, f) == 1 && n > 0 && n <= PREFAULT_RANGES_MAX) {
                        PrefaultRange *r = calloc(n, sizeof *r);
                        if (r && fread(r, sizeof *r, n, f) == n) {
                                z->prefault = r;
                                z->nprefault = n;
                        } else
                                free(r);
                }
                fclose(f);
        }
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        /* Ranges come most common work first: keep them up to PREFAULT_MB. */
        uint64_t pages = 0, budget = z->init.prefault_bytes / (uint64_t)sysconf(_SC_PAGESIZE);
        size_t keep = 0;
        for (; keep < z->nprefault && pages + z->prefault[keep].pages <= budget; keep++)
                pages += z->prefault[keep].pages;
        z->nprefault = keep;
        log_info("%s: sandboxes pre-copy %llu pages (%llu KiB) in %zu ranges", z->name,
                (unsigned long long)pages,
                (unsigned long long)pages * (uint64_t)sysconf(_SC_PAGESIZE) / 1024, z->nprefault);
}

static int serve_requests(Zygote *z) {
        for (;;) {
                SpawnRequest req;
                int fds[3 + SPAWN_CGROUPS_MAX];
                size_t nfds = ELEMENTSOF(fds);
                ssize_t k = fd_recv(z->ctl, &req, sizeof req, fds, &nfds);
                if (k == 0)
                        return 0; /* the server closed its end */
                if (k < 0)
                        return (int)k;
                SpawnReply rep = {.magic = PROTO_MAGIC, .id = req.id, .pid = -1};
                /* A root zygote maps the run to these ids: 0 would be root on the host, and -1
                 * means "unchanged" to setresuid. An unprivileged one maps its own (and its gid
                 * may well be 0). */
                bool bad_ids = geteuid() == 0 && (req.uid == 0 || req.gid == 0 || req.uid == UINT32_MAX ||
                                                         req.gid == UINT32_MAX);
                if ((size_t)k != sizeof req || req.magic != PROTO_MAGIC ||
                        req.ncgroups > SPAWN_CGROUPS_MAX || nfds != 3 + req.ncgroups || bad_ids)
                        rep.error = -EBADMSG;
                else {
                        pid_t pid;
                        rep.error = spawn_one(z, fds, req.ncgroups, &req, &pid);
                        rep.pid = pid;
                }
                for (size_t i = 0; i < nfds; i++)
                        safe_close(fds[i]);
                if (rep.error == -ENOTRECOVERABLE)
                        return rep.error;
                int r = fd_send(z->ctl, &rep, sizeof rep, NULL, 0);
                if (r < 0)
                        return r;
        }
}

int zygote_main(void) {
        Zygote z = {.ctl = ZYGOTE_CTL_FD};
        ZygoteReady ready = {.magic = PROTO_MAGIC};
        int r;

        /* Making and sealing sandboxes in advance must not slow the runs in progress: the
         * zygote and the sandboxes it makes run at a lower priority, and the server restores
         * a sandbox's priority when it gives it a request. */
        if (setpriority(PRIO_PROCESS, 0, SANDBOX_WAITING_NICE) < 0)
                log_errno(-errno, "zygote: cannot lower its priority");
        /* If the server is already gone, the first recv below sees the socket closed. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
                return 1;

        size_t nfds = 0;
        ssize_t k = fd_recv(z.ctl, &z.init, sizeof z.init, NULL, &nfds);
        if (k != (ssize_t)sizeof z.init || z.init.magic != PROTO_MAGIC) {
                log_error("zygote: bad init message");
                return 1;
        }
        z.init.preinstall_libs[sizeof z.init.preinstall_libs - 1] = 0;
        bool lean = z.init.flags & ZYGOTE_F_LEAN;
        z.name = lean ? "lean zygote" : "zygote";
        prctl(PR_SET_NAME, lean ? "snakebox-lean" : "snakebox-zygote", 0, 0, 0);
        z.init.root_dir[sizeof z.init.root_dir - 1] = 0;
        z.init.mpl_dir[sizeof z.init.mpl_dir - 1] = 0;

        r = seal_plan_init(&z.plan, &z.init);
        if (r < 0) {
                ready.error = r;
                snprintf(ready.message, sizeof ready.message,
                        "cannot prepare the seal (seccomp filter, init program): %s", strerror(-r));
        } else {
                r = python_start(&z, ready.message, sizeof ready.message);
                if (r < 0)
                        ready.error = r;
                else if (thread_count() != 1) {
                        ready.error = -EPROTO;
                        snprintf(ready.message, sizeof ready.message,
                                "the zygote must stay single-threaded, but importing PREINSTALL_LIBS "
                                "started %d threads",
                                thread_count());
                }
        }
        if (ready.error == 0) {
                learn_prefault(&z);
                memcpy(ready.modules, z.modules, sizeof ready.modules);
        }
        /* What the seal needs is in z.plan now; every sandbox is a fork of this process, so the
         * message itself is not kept where they could read it. */
        explicit_bzero(&z.init, sizeof z.init);
        r = fd_send(z.ctl, &ready, sizeof ready, NULL, 0);
        if (r < 0 || ready.error < 0)
                return 1;

        r = serve_requests(&z);
        return r < 0 ? 1 : 0;
}
