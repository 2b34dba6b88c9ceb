#!/usr/bin/python3
"""snakebox benchmark (issue 3): latency, throughput, waiting code, memory, and baselines.

Run it with `make bench`, or directly (after `make`) with Debian's interpreter:

    /usr/bin/python3 bench/bench.py            # full run, a few minutes on 2 cores
    /usr/bin/python3 bench/bench.py --quick    # smoke run, about a minute
    /usr/bin/python3 bench/bench.py --only latency,memory --out /tmp/r.json

Standard library only. It builds nothing: it starts the existing build/snakebox (or
$SNAKEBOX_BIN, or --bin) with `serve`, HOST=127.0.0.1 and PORT=0 in a temporary working
directory, talks to it over loopback HTTP, and stops it with SIGTERM (SIGKILL after 10 s).

Phases (see bench/README.md):
  latency     sequential requests on one keep-alive connection, p50/p90/p99/p99.9 per snippet
  throughput  closed loop, 1/4/16/64 keep-alive clients, hello and pandas (p50/p99/p99.9 too)
  sleep       64 concurrent `time.sleep(1)` with MAX_CONCURRENCY=64: wall time to the last answer
  memory      server RSS, zygote RSS, PSS of an idle ready sandbox, total PSS at 16 clients
  baselines   (a) cold python3 per run inside bwrap --unshare-all, (b) a warm interpreter

It prints one report (aligned plain text) on stdout, progress on stderr, and writes every number
with metadata to bench/results/<date>-<commit>.json. The target checks are informational: the
exit status is 0 whenever the benchmark could run, whatever it measured.
"""

import argparse
import collections
import ctypes
import datetime
import http.client
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from serverproc import ServerProcess, ServerStartError  # noqa: E402
BENCH_DIR = ROOT / "bench"
SNIPPET_DIR = BENCH_DIR / "snippets"
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_BINARY = ROOT / "build" / "snakebox"
PYTHON = "/usr/bin/python3"
BWRAP = "/usr/bin/bwrap"

SNIPPETS = collections.OrderedDict([
    ("hello", "hello.py"),
    ("pandas", "pandas_example.py"),
    ("matplotlib", "matplotlib_png.py"),
    ("sklearn", "sklearn_fit.py"),
])
THROUGHPUT_SNIPPETS = ("hello", "pandas")
PHASES = ("latency", "throughput", "sleep", "memory", "baselines", "sessions")

ACCESS_LOG_RE = re.compile(r'^snakebox: access |"(msg|event)"\s*:\s*"access"')
START_TIMEOUT = 120
REQUEST_TIMEOUT = 120
SANDBOX_COMM = "snakebox-run"
MAIN_ZYGOTE_COMM = "snakebox-zygote"
SLEEP_CODE = "import time; time.sleep(1)"
MIB = 1024 * 1024

# Passed from our environment to the server and to the baselines: OpenBLAS needs them on some
# CPUs to compute correct results (snakebox hands exactly these two to its zygote).
PASSTHROUGH_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# What the runs see in the baselines, as close as possible to snakebox's runner environment.
RUN_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "PYTHONDONTWRITEBYTECODE": "1",
    "MPLBACKEND": "Agg",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}

# Baseline (a): a plain fork-and-exec sandbox. /etc gets only what the libraries need to load
# (Debian's BLAS is chosen through /etc/alternatives; matplotlib reads /etc/matplotlibrc), the
# same files snakebox's generated /etc provides. /mpl holds a matplotlib font cache built once.
BWRAP_ARGS = [
    BWRAP, "--unshare-all", "--die-with-parent",
    "--ro-bind", "/usr", "/usr",
    "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin",
    "--ro-bind", "/etc/alternatives", "/etc/alternatives",
    "--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache",
    "--ro-bind-try", "/etc/localtime", "/etc/localtime",
    "--ro-bind-try", "/etc/matplotlibrc", "/etc/matplotlibrc",
    "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
]

# Baseline (b): one interpreter with the libraries imported; each snippet exec'd once to warm,
# then timed. Writes its numbers to a file so that the snippets' output cannot mix with them.
WARM_HELPER = r'''
import contextlib, io, json, sys, time
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot
from matplotlib import font_manager
import numpy, pandas, sklearn

out_path, n = sys.argv[1], int(sys.argv[2])
result = {"versions": {"python": sys.version.split()[0], "numpy": numpy.__version__,
                       "pandas": pandas.__version__, "matplotlib": matplotlib.__version__,
                       "sklearn": sklearn.__version__},
          "times": {}, "errors": {}}
for item in sys.argv[3:]:
    name, path = item.split("=", 1)
    with open(path) as f:
        src = f.read()

    def once():
        g = {"__name__": "__main__", "__builtins__": __builtins__}
        buf = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            exec(compile(src, "<code>", "exec"), g)
        return time.perf_counter() - t0

    try:
        once()
        result["times"][name] = [once() for _ in range(n)]
    except BaseException as e:
        result["errors"][name] = "%s: %s" % (type(e).__name__, e)
with open(out_path, "w") as f:
    json.dump(result, f)
'''

# Sessions (issue 13): the DataFrame an earlier cell makes, and the statement a later cell times;
# the same two in a plain warm interpreter for the ratio.
SESSION_DF_CODE = ("import numpy as np, pandas as pd\n"
                   "rng = np.random.default_rng(0)\n"
                   "df = pd.DataFrame({'k': rng.integers(0, 1000, 1_000_000), "
                   "'v': rng.random(1_000_000), 'w': rng.integers(0, 100, 1_000_000)})\n")
SESSION_GROUPBY_CODE = "_ = df.groupby('k').sum()"
SESSION_PRINT_CODE = 'print("hi")'
WARM_GROUPBY_HELPER = r"""
import json, sys, time
out_path, n, setup, stmt = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
g = {"__name__": "__main__"}
exec(compile(setup, "<setup>", "exec"), g)
code = compile(stmt, "<cell>", "exec")
exec(code, g)
times = []
for _ in range(n):
    t0 = time.perf_counter()
    exec(code, g)
    times.append(time.perf_counter() - t0)
with open(out_path, "w") as f:
    json.dump({"times": times}, f)
"""


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- statistics -----------------------------------------------------------------------------------

def percentile(values, p):
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


# p99.9 is reported only from this many samples: below it, it is the maximum (one unlucky
# request), not a rate.
P99_9_MIN_N = 1000
# Back to back, the p99 of 200 requests is their second slowest: the same runs cut into fifths
# gave p99/p50 from 1.9x to 2.7x where the whole 1000 gave 2.3x to 2.55x (hello, 2026-12-01).
# The tail targets (issue 19) need a rate, not an outlier, so N is 1000 (p99.9 comes with it).
DEFAULT_N = 1000


def ms_summary(seconds):
    """p50/p90/p99/p99.9/min/max/mean in milliseconds of a list of durations in seconds, and the
    tail ratios p99/p50 and p99.9/p50 (issue 19). p99.9 only where N >= 1000."""
    if not seconds:
        return {"n": 0}
    ms = [x * 1000.0 for x in seconds]
    p50 = percentile(ms, 50)
    p99 = percentile(ms, 99)
    p999 = percentile(ms, 99.9) if len(ms) >= P99_9_MIN_N else None
    return {"n": len(ms), "p50_ms": p50, "p90_ms": percentile(ms, 90),
            "p99_ms": p99, "p99_9_ms": p999, "min_ms": min(ms), "max_ms": max(ms),
            "mean_ms": sum(ms) / len(ms),
            "p99_over_p50": p99 / p50 if p50 else None,
            "p99_9_over_p50": p999 / p50 if p50 and p999 is not None else None}


# --- /proc ----------------------------------------------------------------------------------------

def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def proc_comm(pid):
    t = read_text(f"/proc/{pid}/comm")
    return t.strip() if t else None


def proc_state(pid):
    t = read_text(f"/proc/{pid}/stat")
    if not t:
        return None
    return t[t.rindex(")") + 2:].split()[0]


def proc_stat_fields(pid):
    """Fields of /proc/pid/stat after the command name (index 0 = state)."""
    t = read_text(f"/proc/{pid}/stat")
    if not t:
        return None
    return t[t.rindex(")") + 2:].split()


def proc_status_kib(pid, key):
    t = read_text(f"/proc/{pid}/status")
    if not t:
        return None
    m = re.search(rf"^{key}:\s+(\d+) kB", t, re.M)
    return int(m.group(1)) if m else None


def proc_rollup_kib(pid):
    """/proc/pid/smaps_rollup as {field: kB}, or None if the process is gone."""
    t = read_text(f"/proc/{pid}/smaps_rollup")
    if not t:
        return None
    out = {}
    for m in re.finditer(r"^(\w+):\s+(\d+) kB", t, re.M):
        out[m.group(1)] = int(m.group(2))
    return out or None


def proc_children(pid):
    """Direct children of pid: /proc/pid/task/*/children, else a scan of /proc for the ppid."""
    kids = []
    found = False
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for tid in tasks:
        t = read_text(f"/proc/{pid}/task/{tid}/children")
        if t is not None:
            found = True
            kids.extend(int(x) for x in t.split())
    if found:
        return kids
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            f = proc_stat_fields(entry)
            if f and int(f[1]) == pid:
                kids.append(int(entry))
    return kids


def sandbox_kind(pid):
    """"full" if the sandbox maps any third-party package (it was cloned from the zygote that
    imported PREINSTALL_LIBS), else "lean" (a zygote with only the standard library). The init
    (pid) is a small program of its own: its runner, a descendant, shows which zygote it was."""
    for p in [pid] + proc_descendants(pid):
        maps = read_text(f"/proc/{p}/maps") or ""
        if "dist-packages" in maps or "site-packages" in maps:
            return "full"
    return "lean"


def proc_descendants(pid):
    out, todo = [], [pid]
    while todo:
        for c in proc_children(todo.pop()):
            out.append(c)
            todo.append(c)
    return out


def proc_cpu_seconds(pid, with_children=True):
    """utime+stime (+cutime+cstime: reaped children, here the finished sandboxes) in seconds."""
    f = proc_stat_fields(pid)
    if not f:
        return 0.0
    ticks = int(f[11]) + int(f[12])
    if with_children:
        ticks += int(f[13]) + int(f[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def runs_cgroup_file(server_pid):
    """The file that holds the CPU time of every process that ran in the server's run cgroups
    (their parent, "snakebox-<pid>", counts its removed leaves too), or None without one:
    (path, "usage" for v1's cpuacct.usage in ns, "usage_usec" for v2's cpu.stat)."""
    mounts = {}
    for line in (read_text("/proc/self/mountinfo") or "").splitlines():
        left, _, right = line.partition(" - ")
        f, r = left.split(), right.split()
        if len(f) > 4 and len(r) > 2 and r[0] in ("cgroup", "cgroup2"):
            key = "v2" if r[0] == "cgroup2" else ("cpuacct" if "cpuacct" in r[2].split(",") else None)
            if key:
                mounts.setdefault(key, f[4])
    for line in (read_text(f"/proc/{server_pid}/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        if "cpuacct" in ctrls.split(",") and "cpuacct" in mounts:
            f = f"{mounts['cpuacct']}{path.rstrip('/')}/snakebox-{server_pid}/cpuacct.usage"
            if os.path.exists(f):
                return f, "usage"
    for line in (read_text(f"/proc/{server_pid}/cgroup") or "").splitlines():
        if line.startswith("0::") and "v2" in mounts:
            path = line[3:].rstrip("/")
            if os.path.basename(path).startswith("snakebox-server-"):
                path = os.path.dirname(path)
            f = f"{mounts['v2']}{path}/snakebox-{server_pid}/cpu.stat"
            if os.path.exists(f):
                return f, "usage_usec"
    return None


def runs_cgroup_seconds(where):
    path, kind = where
    text = read_text(path) or ""
    if kind == "usage":
        return int(text.split()[0]) / 1e9 if text.strip() else 0.0
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k == "usage_usec":
            return int(v) / 1e6
    return 0.0


def machine_cpu_ticks():
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    line = read_text("/proc/stat").splitlines()[0].split()
    vals = [int(x) for x in line[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    total = sum(vals[:8])
    return total - idle, total


class CpuMeter:
    """CPU used between start() and stop(): this client process, the server and the zygotes plus
    every run (from the runs' cgroups, else the sandboxes the server reaped), and the whole
    machine (in cores: CPU seconds per wall second)."""

    def __init__(self, server):
        self.server = server

    def _snap(self):
        ru = resource.getrusage(resource.RUSAGE_SELF)
        srv = 0.0
        if self.server:
            # With the runs' cgroups: the server and zygotes themselves, plus everything that ran
            # in a run. Reaped children's times would miss a run's runner: killed with its pid
            # namespace, it is reaped by the kernel, and its time reaches no parent's rusage.
            cg = runs_cgroup_file(self.server.pid)
            srv = proc_cpu_seconds(self.server.pid, with_children=cg is None)
            for z in self.server.zygote_pids():
                srv += proc_cpu_seconds(z, with_children=cg is None)
            if cg:
                srv += runs_cgroup_seconds(cg)
        busy, total = machine_cpu_ticks()
        return time.perf_counter(), ru.ru_utime + ru.ru_stime, srv, busy, total

    def start(self):
        self.a = self._snap()

    def stop(self):
        b = self._snap()
        wall = max(b[0] - self.a[0], 1e-9)
        ncpu = os.cpu_count() or 1
        total = max(b[4] - self.a[4], 1)
        out = {"wall_s": wall,
               "client_cpu_cores": (b[1] - self.a[1]) / wall,
               "server_cpu_cores": (b[2] - self.a[2]) / wall,
               "machine_busy_cores": (b[3] - self.a[3]) / total * ncpu}
        # Everything else: kernel threads (e.g. network namespace clean-up), other processes.
        out["other_cpu_cores"] = max(0.0, out["machine_busy_cores"] - out["client_cpu_cores"]
                                     - out["server_cpu_cores"])
        return out


class PhaseMeter:
    """CPU of a whole phase, measured with no server of ours alive at either end: ours is this
    process and every child it reaped (servers with their zygotes and sandboxes, bwrap runs);
    other is the rest of the machine (other people's processes, kernel threads)."""

    def _snap(self):
        a = resource.getrusage(resource.RUSAGE_SELF)
        b = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy, total = machine_cpu_ticks()
        return (time.perf_counter(), a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime, busy, total)

    def start(self):
        self.a = self._snap()

    def stop(self):
        b = self._snap()
        wall = max(b[0] - self.a[0], 1e-9)
        machine = (b[2] - self.a[2]) / max(b[3] - self.a[3], 1) * (os.cpu_count() or 1)
        ours = (b[1] - self.a[1]) / wall
        return {"wall_s": wall, "ours_cpu_cores": ours, "machine_busy_cores": machine,
                "other_cpu_cores": max(0.0, machine - ours)}


# --- the server -----------------------------------------------------------------------------------

_live_servers = []
_our_pids = set()


def foreign_servers():
    """snakebox servers running on this machine that this benchmark did not start."""
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit() and int(e) not in _our_pids and proc_comm(e) == "snakebox":
            out.append(int(e))
    return sorted(out)


def _set_pdeathsig():
    # If the benchmark itself is killed (SIGKILL), the server still gets SIGTERM.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Server(ServerProcess):
    """One `snakebox serve` we started (tests/serverproc.py), in its own temporary working
    directory; it gets SIGTERM if the benchmark itself is killed."""

    def __init__(self, binary, config):
        self.config = dict(config)
        super().__init__(binary, self.config, prefix="snakebox-bench-", passthrough=PASSTHROUGH_ENV,
                         preexec_fn=_set_pdeathsig)
        _our_pids.add(self.pid)
        _live_servers.append(self)

    def wait_ready(self, timeout=START_TIMEOUT):
        return super().wait_ready(timeout)

    def log_after_start(self):
        """Server log lines written after the `listening` line (warnings under load, etc.)."""
        return [l for l in self.stderr()[self.listen_offset:].splitlines() if l.strip()]

    def stop(self):
        super().stop()
        if self in _live_servers:
            _live_servers.remove(self)

    def zygotes(self):
        """{pid: comm} of the server's live children that are zygotes: every `snakebox-*` child
        that is not a sandbox (`snakebox-zygote`, and e.g. a lean `snakebox-lean` if there is one)."""
        out = {}
        for c in proc_children(self.pid):
            comm = proc_comm(c)
            if (comm and comm.startswith("snakebox-") and comm != SANDBOX_COMM
                    and proc_state(c) not in (None, "Z", "X")):
                out[c] = comm
        return out

    def zygote_pids(self):
        return sorted(self.zygotes())

    def main_zygote_pid(self):
        for pid, comm in self.zygotes().items():
            if comm == MAIN_ZYGOTE_COMM:
                return pid
        return None

    def sandbox_pids(self):
        """Live (non-zombie) sandboxes: the server's children named snakebox-run."""
        return [c for c in proc_children(self.pid)
                if proc_comm(c) == SANDBOX_COMM and proc_state(c) not in (None, "Z", "X")]

    def wait_settled(self, timeout=30.0, stable=0.5):
        """Waits until the set of live sandboxes is non-empty and unchanged for `stable` s: the
        ready pool refilled and nothing running or retiring. Returns the count, or None on timeout."""
        deadline = time.monotonic() + timeout
        since, last = None, None
        while time.monotonic() < deadline:
            pids = sorted(self.sandbox_pids())
            if pids and pids == last:
                if since is None:
                    since = time.monotonic()
                if time.monotonic() - since >= stable:
                    return len(pids)
            else:
                since = None
            last = pids
            time.sleep(0.05)
        return None


def sandbox_rollup_kib(pid):
    """smaps_rollup of a sandbox: its init and the runner it forked (and anything else alive in
    it), summed key by key; None if the init is gone."""
    total = proc_rollup_kib(pid)
    if not total:
        return None
    for p in proc_descendants(pid):
        for k, v in (proc_rollup_kib(p) or {}).items():
            total[k] = total.get(k, 0) + v
    return total


def start_server(binary, config):
    s = Server(binary, config)
    try:
        s.wait_ready()
    except BaseException:
        s.stop()
        raise
    return s


def stop_all_servers():
    for s in list(_live_servers):
        try:
            s.stop()
        except Exception as e:  # keep stopping the others
            log(f"stopping server pid {s.pid}: {e}")


# --- the HTTP client ------------------------------------------------------------------------------

class Reply:
    __slots__ = ("ok", "latency", "done", "http_status", "answer", "error")

    def __init__(self, ok, latency, done, http_status, answer, error):
        self.ok, self.latency, self.done = ok, latency, done
        self.http_status, self.answer, self.error = http_status, answer, error

    def error_key(self):
        if self.ok:
            return None
        if self.http_status is None:
            return self.error.split(":")[0]
        if self.http_status != 200:
            return f"HTTP {self.http_status}"
        return "status " + str((self.answer or {}).get("status"))

    def error_sample(self):
        if self.http_status is None:
            return self.error
        out = (self.answer or {}).get("output") if isinstance(self.answer, dict) else None
        return f"HTTP {self.http_status}: {str(out if out is not None else self.error)[:300]}"


class Client:
    """One keep-alive connection (http.client reconnects by itself if the server closed it)."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
        self.connects = 0

    def connect(self):
        self.conn.connect()
        self.connects += 1

    def close(self):
        self.conn.close()

    def run(self, body):
        t0 = time.perf_counter()
        try:
            if self.conn.sock is None:
                self.connects += 1
            self.conn.request("POST", "/api/execute", body=body,
                              headers={"Content-Type": "application/json"})
            resp = self.conn.getresponse()
            data = resp.read()
            t1 = time.perf_counter()
        except (OSError, http.client.HTTPException) as e:
            t1 = time.perf_counter()
            self.conn.close()
            return Reply(False, t1 - t0, t1, None, None, f"{type(e).__name__}: {e}")
        if resp.will_close:
            self.conn.close()
        try:
            answer = json.loads(data)
        except ValueError as e:
            return Reply(False, t1 - t0, t1, resp.status, None, f"bad JSON: {e}: {data[:200]!r}")
        ok = resp.status == 200 and isinstance(answer, dict) and answer.get("status") == "Success"
        return Reply(ok, t1 - t0, t1, resp.status, answer, None)


def body_of(code):
    return json.dumps({"code": code}).encode()


def error_report(replies, samples=3):
    counts = collections.Counter(r.error_key() for r in replies if not r.ok)
    seen, out = set(), []
    for r in replies:
        if not r.ok and r.error_key() not in seen and len(out) < samples:
            seen.add(r.error_key())
            out.append(r.error_sample())
    return dict(counts), out


def concurrent_round(port, body, clients, duration=None):
    """`clients` threads, each its own connected keep-alive client, released together.
    With duration: a closed loop until t0 + duration (requests then in flight are finished and
    counted for errors and latency, not for the rate). Without: one request each.
    Returns (threads, per-thread reply lists, per-thread connection counts, t0, deadline); the
    caller joins the threads."""
    replies = [[] for _ in range(clients)]
    connects = [0] * clients
    ready = threading.Barrier(clients + 1)
    go = threading.Event()
    shared = {}

    def worker(i):
        cl = Client(port)
        try:
            try:
                cl.connect()
            except OSError as e:
                replies[i].append(Reply(False, 0.0, time.perf_counter(), None, None,
                                        f"{type(e).__name__}: {e}"))
            try:
                ready.wait(timeout=60)
            except threading.BrokenBarrierError:
                return
            go.wait()
            if duration is None:
                replies[i].append(cl.run(body))
            else:
                deadline = shared["deadline"]
                while time.perf_counter() < deadline:
                    replies[i].append(cl.run(body))
        finally:
            connects[i] = cl.connects
            cl.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    ready.wait(timeout=60)
    t0 = time.perf_counter()
    shared["deadline"] = t0 + (duration or 0)
    go.set()
    return threads, replies, connects, t0, shared["deadline"]


# --- phases ---------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.binary = Path(args.bin).resolve()
        self.snippets = collections.OrderedDict()
        for name, fn in SNIPPETS.items():
            self.snippets[name] = (SNIPPET_DIR / fn).read_text()
        self.results = {}
        self.servers_used = {}
        self.server_logs = {}
        self.access_log_lines = {}
        self.environment = {}
        self.warnings = []
        self.binary_id = None

    # Each phase gets a fresh server with the configuration it needs.
    def note_environment(self, phase):
        """Records what else runs on the machine: it disturbs every number here."""
        others = foreign_servers()
        load = (read_text("/proc/loadavg") or "").split()[:3]
        try:
            st = self.binary.stat()
            binary_id = (st.st_mtime_ns, st.st_size)
        except OSError:
            binary_id = None
        self.environment[phase] = {"foreign_snakebox_servers": others, "loadavg": load,
                                   "binary_mtime_ns": binary_id[0] if binary_id else None}
        if self.binary_id is not None and binary_id != self.binary_id:
            msg = f"{phase}: {self.binary} changed since the previous phase (rebuilt during the run?)"
            log("warning: " + msg)
            self.warnings.append(msg)
        self.binary_id = binary_id
        if others:
            msg = (f"{phase}: {len(others)} snakebox server(s) not started by this benchmark are running "
                   f"(pids {', '.join(map(str, others[:8]))}); idle ones cost little, busy ones show as other load")
            log("warning: " + msg)
            self.warnings.append(msg)

    def server(self, phase, config):
        self.servers_used[phase] = {"explicit": dict(config), "note": "every other key at its default"}
        log(f"{phase}: starting {self.binary} serve with "
            f"{' '.join(f'{k}={v}' for k, v in config.items()) or 'the default configuration'}")
        t0 = time.monotonic()
        s = start_server(self.binary, config)
        log(f"{phase}: listening on port {s.port} after {time.monotonic() - t0:.1f} s "
            f"(server pid {s.pid}, zygotes {s.zygotes()})")
        return s

    def finish_server(self, phase, s):
        lines = s.log_after_start()  # before stopping: the shutdown message is expected
        s.stop()
        # One access-log line per request is expected; anything else (warnings) is worth showing.
        access = [l for l in lines if ACCESS_LOG_RE.search(l)]
        other = [l for l in lines if not ACCESS_LOG_RE.search(l)]
        self.access_log_lines[phase] = len(access)
        if other:
            self.server_logs[phase] = other[-50:]

    # 1. Sequential latency.
    def phase_latency(self):
        a = self.args
        out = {"n": a.n, "warmup": a.warmup, "snippets": {}}
        s = self.server("latency", {})
        try:
            client = Client(s.port)
            for name, code in self.snippets.items():
                if name not in a.snippets:
                    continue
                s.wait_settled(timeout=15)
                body = body_of(code)
                for _ in range(a.warmup):
                    client.run(body)
                log(f"latency: {name} x{a.n}")
                meter = CpuMeter(s)
                meter.start()
                replies = [client.run(body) for _ in range(a.n)]
                cpu = meter.stop()
                ok = [r for r in replies if r.ok]
                res = ms_summary([r.latency for r in ok])
                for field in ("duration_ms", "cpu_ms", "memory_peak_bytes"):
                    vals = [r.answer.get(field) for r in ok if isinstance(r.answer.get(field), (int, float))]
                    res[f"server_{field}_p50"] = percentile(vals, 50)
                res["errors"] = len(replies) - len(ok)
                res["error_kinds"], res["error_samples"] = error_report(replies)
                res.update(cpu)
                out["snippets"][name] = res
            out["connects"] = client.connects
            client.close()
        finally:
            self.finish_server("latency", s)
        return out

    # 2. Throughput, closed loop.
    def run_level(self, s, body, clients, duration):
        meter = CpuMeter(s)
        meter.start()
        threads, replies, connects, t0, deadline = concurrent_round(s.port, body, clients, duration)
        time.sleep(max(0.0, deadline - time.perf_counter()))
        cpu = meter.stop()
        for t in threads:
            t.join(timeout=REQUEST_TIMEOUT + 30)
        tail_s = time.perf_counter() - deadline
        flat = [r for rs in replies for r in rs]
        ok = [r for r in flat if r.ok]
        in_window = [r for r in ok if r.done <= deadline]
        res = {"clients": clients, "duration_s": duration,
               "requests": len(flat), "ok": len(ok), "ok_in_window": len(in_window),
               "req_per_s": len(in_window) / duration,
               "errors": len(flat) - len(ok)}
        res["error_kinds"], res["error_samples"] = error_report(flat)
        lat = ms_summary([r.latency for r in ok])
        res.update({k: lat.get(k) for k in ("p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms",
                                            "p99_over_p50", "p99_9_over_p50")})
        res["connects"] = sum(connects)
        res["drain_after_window_s"] = tail_s
        res.update(cpu)
        return res

    def phase_throughput(self):
        a = self.args
        config = {"MAX_CONCURRENCY": "64", "QUEUE_SIZE": "256"}
        out = {"duration_s": a.duration, "clients": a.clients, "snippets": {}}
        s = self.server("throughput", config)
        try:
            for name in THROUGHPUT_SNIPPETS:
                if name not in a.snippets:
                    continue
                body = body_of(self.snippets[name])
                warm = Client(s.port)
                for _ in range(a.warmup):
                    warm.run(body)
                warm.close()
                levels = {}
                for c in a.clients:
                    if s.wait_settled(timeout=30) is None:
                        log("throughput: the sandbox pool did not settle within 30 s; going on")
                    log(f"throughput: {name}, {c} client(s), {a.duration:g} s")
                    r = self.run_level(s, body, c, a.duration)
                    log(f"throughput: {name} x{c}: {r['req_per_s']:.1f} req/s, {r['errors']} errors, "
                        f"client CPU {r['client_cpu_cores']:.2f} cores")
                    levels[str(c)] = r
                out["snippets"][name] = levels
        finally:
            self.finish_server("throughput", s)
        return out

    # 3. 64 concurrent sleeps.
    def phase_sleep(self):
        a = self.args
        n = 64
        config = {"MAX_CONCURRENCY": "64"}
        out = {"requests": n, "code": SLEEP_CODE, "rounds": []}
        s = self.server("sleep", config)
        try:
            body = body_of(SLEEP_CODE)
            warm = Client(s.port)
            warm.run(body)
            warm.close()
            for i in range(a.sleep_rounds):
                if s.wait_settled(timeout=30) is None:
                    log("sleep: the sandbox pool did not settle within 30 s; going on")
                log(f"sleep: round {i + 1}/{a.sleep_rounds}: {n} x time.sleep(1)")
                threads, replies, connects, t0, _ = concurrent_round(s.port, body, n)
                for t in threads:
                    t.join(timeout=REQUEST_TIMEOUT + 30)
                flat = [r for rs in replies for r in rs]
                ok = [r for r in flat if r.ok]
                done = [r.done - t0 for r in flat]
                durations = [r.answer.get("duration_ms") for r in ok
                             if isinstance(r.answer.get("duration_ms"), (int, float))]
                rnd = {"wall_s": max(done) if done else None,
                       "first_answer_s": min(done) if done else None,
                       "answers": len(flat), "errors": len(flat) - len(ok),
                       "server_duration_ms_max": max(durations) if durations else None,
                       "server_duration_ms_min": min(durations) if durations else None}
                rnd["error_kinds"], rnd["error_samples"] = error_report(flat)
                log(f"sleep: round {i + 1}: last answer after {rnd['wall_s']:.3f} s, "
                    f"{rnd['errors']} errors")
                out["rounds"].append(rnd)
            walls = [r["wall_s"] for r in out["rounds"] if r["wall_s"] is not None]
            out["wall_s_median"] = percentile(walls, 50)
            out["wall_s_max"] = max(walls) if walls else None
            out["errors"] = sum(r["errors"] for r in out["rounds"])
        finally:
            self.finish_server("sleep", s)
        return out

    # 4. Memory.
    def total_pss_kib(self, s):
        pids = [s.pid] + proc_descendants(s.pid)
        total, counted = 0, 0
        for p in pids:
            r = proc_rollup_kib(p)
            if r and "Pss" in r:
                total += r["Pss"]
                counted += 1
        return total, counted

    def phase_memory(self):
        a = self.args
        out = {}
        s = self.server("memory", {})
        try:
            hello, pandas = body_of(self.snippets["hello"]), body_of(self.snippets["pandas"])
            c = Client(s.port)
            for _ in range(10):
                c.run(hello)
            for _ in range(3):
                c.run(pandas)
            c.close()
            settled = s.wait_settled(timeout=30, stable=2.0)
            out["pool_settled"] = settled is not None
            if settled is None:
                log("memory: the sandbox pool did not settle within 30 s; measuring anyway")
            srv_roll = proc_rollup_kib(s.pid) or {}
            out["server_rss_kib"] = proc_status_kib(s.pid, "VmRSS")
            out["server_pss_kib"] = srv_roll.get("Pss")
            zyg = []
            for pid, comm in sorted(s.zygotes().items()):
                r = proc_rollup_kib(pid) or {}
                zyg.append({"pid": pid, "comm": comm, "rss_kib": proc_status_kib(pid, "VmRSS"),
                            "pss_kib": r.get("Pss")})
            out["zygotes"] = zyg
            main_z = next((z for z in zyg if z["comm"] == MAIN_ZYGOTE_COMM), zyg[0] if zyg else {})
            out["zygote_rss_kib"] = main_z.get("rss_kib")
            out["zygote_pss_kib"] = main_z.get("pss_kib")
            ready = []
            for p in s.sandbox_pids():
                r = sandbox_rollup_kib(p)
                if r:
                    ready.append({"pid": p, "kind": sandbox_kind(p), "pss_kib": r.get("Pss"),
                                  "rss_kib": r.get("Rss"), "pss_anon_kib": r.get("Pss_Anon"),
                                  "private_dirty_kib": r.get("Private_Dirty")})
            out["ready_sandboxes"] = ready
            kinds = {}
            for kind in sorted({r["kind"] for r in ready}):
                rs = [r for r in ready if r["kind"] == kind]
                kinds[kind] = {
                    "count": len(rs),
                    "pss_kib": percentile([r["pss_kib"] for r in rs], 50),
                    "rss_kib": percentile([r["rss_kib"] for r in rs], 50),
                    "private_dirty_kib": percentile(
                        [r["private_dirty_kib"] for r in rs if r["private_dirty_kib"] is not None], 50)}
            out["ready_by_kind"] = kinds
            # The headline number: a sandbox of the zygote with the libraries, else any.
            head = kinds.get("full") or (next(iter(kinds.values())) if kinds else {})
            out["ready_sandbox_pss_kib"] = head.get("pss_kib")
            out["ready_sandbox_rss_kib"] = head.get("rss_kib")
            out["ready_sandbox_private_dirty_kib"] = head.get("private_dirty_kib")
            out["ready_sandbox_pss_kib_max_kind"] = max(
                (k["pss_kib"] for k in kinds.values() if k["pss_kib"] is not None), default=None)
            out["idle_total_pss_kib"], out["idle_processes"] = self.total_pss_kib(s)

            # 16 clients running the pandas example; PSS of everything sampled meanwhile.
            clients = 16
            log(f"memory: total PSS while {clients} clients run the pandas example for {a.mem_duration:g} s")
            meter = CpuMeter(s)
            meter.start()
            threads, replies, connects, t0, deadline = concurrent_round(s.port, pandas, clients,
                                                                        a.mem_duration)
            samples = []
            while time.perf_counter() < deadline:
                total, n = self.total_pss_kib(s)
                samples.append({"t_s": time.perf_counter() - t0, "pss_kib": total, "processes": n})
                time.sleep(0.5)
            meter.stop()
            for t in threads:
                t.join(timeout=REQUEST_TIMEOUT + 30)
            flat = [r for rs in replies for r in rs]
            ok = [r for r in flat if r.ok]
            load_samples = [x for x in samples if x["t_s"] >= 1.0] or samples
            out["load"] = {
                "clients": clients, "snippet": "pandas", "duration_s": a.mem_duration,
                "samples": samples,
                "total_pss_kib_max": max(x["pss_kib"] for x in load_samples) if load_samples else None,
                "total_pss_kib_mean": (sum(x["pss_kib"] for x in load_samples) / len(load_samples)
                                       if load_samples else None),
                "processes_max": max(x["processes"] for x in load_samples) if load_samples else None,
                "requests": len(flat), "errors": len(flat) - len(ok),
                "req_per_s": len([r for r in ok if r.done <= deadline]) / a.mem_duration,
            }
            out["load"]["error_kinds"], out["load"]["error_samples"] = error_report(flat)
        finally:
            self.finish_server("memory", s)
        return out

    # 5. Baselines.
    def baseline_env(self):
        env = dict(RUN_ENV)
        for k in PASSTHROUGH_ENV:
            if k in os.environ:
                env[k] = os.environ[k]
        return env

    def phase_baselines(self):
        out = {}
        tmp = Path(tempfile.mkdtemp(prefix="snakebox-bench-base-"))
        try:
            mpl = tmp / "mpl"
            mpl.mkdir()
            out["bwrap_cold"] = self.baseline_bwrap(tmp, mpl)
            out["warm_interpreter"] = self.baseline_warm(tmp, mpl)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return out

    def bwrap_cmd(self, mpl, snippet_path):
        return BWRAP_ARGS + ["--bind", str(mpl), "/mpl", "--ro-bind", str(snippet_path), "/snippet.py",
                             "--chdir", "/tmp", PYTHON, "/snippet.py"]

    def baseline_bwrap(self, tmp, mpl):
        a = self.args
        out = {"n": a.cold_n, "warmup": 1, "snippets": {}}
        if not os.access(BWRAP, os.X_OK):
            out["error"] = f"{BWRAP} is missing (scripts/install-deps bench installs bubblewrap)"
            log("baselines: " + out["error"])
            return out
        env = self.baseline_env()
        env["MPLCONFIGDIR"] = "/mpl"
        out["command"] = " ".join(self.bwrap_cmd("<mplcache>", "<snippet.py>"))
        ver = subprocess.run([BWRAP, "--version"], capture_output=True, text=True)
        out["bwrap_version"] = ver.stdout.strip()
        # Verify it works, and build matplotlib's font cache once (not part of any timing).
        for name in ("hello", "matplotlib"):
            p = SNIPPET_DIR / SNIPPETS[name]
            r = subprocess.run(self.bwrap_cmd(mpl, p), env=env, capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                out["error"] = (f"bwrap run of {p.name} failed with status {r.returncode}: "
                                f"{(r.stderr or r.stdout)[-800:]}")
                log("baselines: " + out["error"])
                return out
        for name in self.snippets:
            cmd = self.bwrap_cmd(mpl, SNIPPET_DIR / SNIPPETS[name])
            log(f"baselines: cold python3 in bwrap: {name} x{a.cold_n}")
            times, errors, sample = [], 0, None
            for i in range(1 + a.cold_n):
                t0 = time.perf_counter()
                r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=300)
                dt = time.perf_counter() - t0
                if i < 1:
                    continue
                if r.returncode == 0:
                    times.append(dt)
                else:
                    errors += 1
                    sample = sample or r.stderr.decode(errors="replace")[-300:]
            res = ms_summary(times)
            res["errors"] = errors
            if sample:
                res["error_sample"] = sample
            out["snippets"][name] = res
        return out

    def baseline_warm(self, tmp, mpl):
        a = self.args
        helper = tmp / "warm_helper.py"
        helper.write_text(WARM_HELPER)
        result_path = tmp / "warm.json"
        env = self.baseline_env()
        env["MPLCONFIGDIR"] = str(mpl)
        argv = [PYTHON, str(helper), str(result_path), str(a.warm_n)]
        argv += [f"{name}={SNIPPET_DIR / fn}" for name, fn in SNIPPETS.items()]
        log(f"baselines: warm interpreter, each snippet x{a.warm_n}")
        out = {"n": a.warm_n, "snippets": {}}
        r = subprocess.run(argv, env=env, cwd=tmp, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=1800)
        if r.returncode != 0 or not result_path.exists():
            out["error"] = f"warm interpreter failed with status {r.returncode}: {r.stderr[-800:]}"
            log("baselines: " + out["error"])
            return out
        data = json.loads(result_path.read_text())
        out["versions"] = data["versions"]
        for name in self.snippets:
            if name in data["times"]:
                out["snippets"][name] = ms_summary(data["times"][name])
                out["snippets"][name]["errors"] = 0
            else:
                out["snippets"][name] = {"n": 0, "errors": 1,
                                         "error_sample": data["errors"].get(name, "missing")}
        return out

    def ratios(self):
        lat = self.results.get("latency", {}).get("snippets", {})
        base = self.results.get("baselines", {})
        out = {}
        for name in self.snippets:
            sb = lat.get(name, {}).get("p50_ms")
            row = {"snakebox_p50_ms": sb}
            for key in ("bwrap_cold", "warm_interpreter"):
                b = base.get(key, {}).get("snippets", {}).get(name, {}).get("p50_ms")
                row[f"{key}_p50_ms"] = b
                row[f"snakebox_over_{key}"] = (sb / b) if (sb is not None and b) else None
            out[name] = row
        return out

    # 6. Sessions (issue 13).
    def session_memory(self, conn, sid):
        """The session's memory_bytes (its cgroup's charge), or None."""
        st, ans, _ = self.session_call(conn, "GET", f"/api/sessions/{sid}")
        return ans.get("memory_bytes") if st == 200 and isinstance(ans, dict) else None

    def session_call(self, conn, method, path, obj=None):
        """One request on a keep-alive connection: (status, JSON answer or None, seconds)."""
        body = json.dumps(obj).encode() if obj is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        t0 = time.perf_counter()
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        dt = time.perf_counter() - t0
        try:
            answer = json.loads(data) if data else None
        except ValueError:
            answer = None
        return resp.status, answer, dt

    @staticmethod
    def server_ms(answer):
        """The server's own duration of an answer, in ms (finer than duration_ms when given)."""
        if not isinstance(answer, dict):
            return None
        if isinstance(answer.get("duration_us"), (int, float)):
            return answer["duration_us"] / 1000.0
        v = answer.get("duration_ms")
        return v if isinstance(v, (int, float)) else None

    def session_series(self, conn, sid, code, n, warmup):
        """n timed executes of code in session sid (after warmup): latency summary + server p50."""
        path = f"/api/sessions/{sid}/execute"
        for _ in range(warmup):
            self.session_call(conn, "POST", path, {"code": code})
        lat, srv, errors, sample, fine = [], [], 0, None, True
        for _ in range(n):
            st, ans, dt = self.session_call(conn, "POST", path, {"code": code})
            if st == 200 and isinstance(ans, dict) and ans.get("status") == "Success":
                lat.append(dt)
                if self.server_ms(ans) is not None:
                    srv.append(self.server_ms(ans))
                    fine = fine and isinstance(ans.get("duration_us"), (int, float))
            else:
                errors += 1
                sample = sample or f"HTTP {st}: {str(ans)[:300]}"
        res = ms_summary(lat)
        res["server_ms_p50"] = percentile(srv, 50)
        # duration_ms is whole milliseconds: below a few ms it cannot tell 0.3 from 1.
        res["server_ms_resolution"] = "us" if srv and fine else "ms"
        res["errors"] = errors
        if sample:
            res["error_sample"] = sample
        return res

    def phase_sessions(self):
        a = self.args
        out = {"n": a.n, "groupby_n": a.session_groupby_n, "create_n": a.session_create_n,
               "print_code": SESSION_PRINT_CODE, "groupby_code": SESSION_GROUPBY_CODE}
        s = self.server("sessions", {})
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=REQUEST_TIMEOUT)
        try:
            # Stateless hello on the same server, same connection: the yardstick for create.
            s.wait_settled(timeout=15)
            hello = body_of(self.snippets["hello"])
            client = Client(s.port)
            for _ in range(a.warmup):
                client.run(hello)
            log(f"sessions: stateless hello x{a.n}")
            replies = [client.run(hello) for _ in range(a.n)]
            client.close()
            ok = [r for r in replies if r.ok]
            out["stateless_hello"] = ms_summary([r.latency for r in ok])
            out["stateless_hello"]["errors"] = len(replies) - len(ok)

            # Create (then delete, not timed).
            log(f"sessions: create x{a.session_create_n}")
            lat, errors, sample, states = [], 0, None, collections.Counter()
            for i in range(a.session_create_n + 2):
                s.wait_settled(timeout=15)
                st, ans, dt = self.session_call(conn, "POST", "/api/sessions", {})
                if st != 201 or not isinstance(ans, dict):
                    errors += 1
                    sample = sample or f"HTTP {st}: {str(ans)[:300]}"
                    continue
                if i >= 2:
                    lat.append(dt)
                    states[str(ans.get("state"))] += 1
                self.session_call(conn, "DELETE", f"/api/sessions/{ans['session_id']}")
            out["create"] = ms_summary(lat)
            out["create"]["errors"] = errors
            out["create"]["states"] = dict(states)
            if sample:
                out["create"]["error_sample"] = sample
            if errors and not lat:
                raise RuntimeError(f"no session could be created: {sample}")

            st, ans, _ = self.session_call(conn, "POST", "/api/sessions", {})
            if st != 201:
                raise RuntimeError(f"create: HTTP {st}: {str(ans)[:300]}")
            sid = ans["session_id"]
            # What a session costs beyond the zygote it was cloned from: its cgroup's charge
            # (GET memory_bytes), idle after create, and after the 1,000,000-row DataFrame.
            out["memory_idle_bytes"] = self.session_memory(conn, sid)
            log(f"sessions: print(\"hi\") x{a.n} in one session")
            out["print"] = self.session_series(conn, sid, SESSION_PRINT_CODE, a.n, a.warmup)
            st, ans, dt = self.session_call(conn, "POST", f"/api/sessions/{sid}/execute",
                                            {"code": SESSION_DF_CODE})
            if st != 200 or not isinstance(ans, dict) or ans.get("status") != "Success":
                raise RuntimeError(f"the DataFrame cell failed: HTTP {st}: {str(ans)[:300]}")
            out["dataframe_cell_ms"] = dt * 1000
            out["memory_dataframe_bytes"] = self.session_memory(conn, sid)
            log(f"sessions: groupby on 1,000,000 rows x{a.session_groupby_n}")
            out["groupby"] = self.session_series(conn, sid, SESSION_GROUPBY_CODE, a.session_groupby_n, 2)
            self.session_call(conn, "DELETE", f"/api/sessions/{sid}")
            st, ans, _ = self.session_call(conn, "POST", "/api/sessions", {"profile": "lean"})
            if st == 201:
                out["memory_idle_lean_bytes"] = self.session_memory(conn, ans["session_id"])
                self.session_call(conn, "DELETE", f"/api/sessions/{ans['session_id']}")
        finally:
            conn.close()
            self.finish_server("sessions", s)

        # The same statement in a plain warm interpreter.
        tmp = Path(tempfile.mkdtemp(prefix="snakebox-bench-sess-"))
        try:
            helper, result = tmp / "warm_groupby.py", tmp / "warm_groupby.json"
            helper.write_text(WARM_GROUPBY_HELPER)
            log(f"sessions: the same groupby in a warm interpreter x{a.session_groupby_n}")
            r = subprocess.run([PYTHON, str(helper), str(result), str(a.session_groupby_n), SESSION_DF_CODE,
                                SESSION_GROUPBY_CODE], env=self.baseline_env(), cwd=tmp,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
            if r.returncode == 0 and result.exists():
                out["groupby_warm"] = ms_summary(json.loads(result.read_text())["times"])
            else:
                out["groupby_warm"] = {"error": f"status {r.returncode}: {r.stderr[-500:]}"}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

        def ratio(x, y):
            return x / y if x is not None and y else None

        out["ratios"] = {
            "print_e2e_over_stateless_hello": ratio(out["print"].get("p50_ms"), out["stateless_hello"].get("p50_ms")),
            "groupby_e2e_over_warm": ratio(out["groupby"].get("p50_ms"), out["groupby_warm"].get("p50_ms")),
            "groupby_server_over_warm": ratio(out["groupby"].get("server_ms_p50"),
                                              out["groupby_warm"].get("p50_ms")),
            "create_over_stateless_hello": ratio(out["create"].get("p50_ms"), out["stateless_hello"].get("p50_ms")),
        }
        return out


# --- targets --------------------------------------------------------------------------------------

def evaluate_targets(res):
    """The issue's targets as (result, description, measured)."""
    lat = res.get("latency", {}).get("snippets", {})
    thr = res.get("throughput", {}).get("snippets", {})
    ratios = res.get("ratios", {})
    out = []

    def add(ok, desc, measured):
        out.append({"target": desc, "measured": measured,
                    "result": "SKIP" if ok is None else ("PASS" if ok else "MISS")})

    h = lat.get("hello", {}).get("p50_ms")
    add(None if h is None else h <= 5, "hello world p50 <= 5 ms", None if h is None else f"{h:.2f} ms")

    p = lat.get("pandas", {}).get("p50_ms")
    b = ratios.get("pandas", {}).get("warm_interpreter_p50_ms")
    add(None if p is None or b is None else p <= 2 * b, "pandas p50 <= 2 x warm interpreter p50",
        None if p is None or b is None else f"{p:.1f} ms vs 2 x {b:.1f} ms = {2 * b:.1f} ms")
    add(None if p is None else p <= 40, "pandas p50 <= 40 ms", None if p is None else f"{p:.1f} ms")

    # Tail latency (issue 19): same-run ratios, back to back and at 4 clients.
    for name in ("hello", "pandas"):
        for where, s, bound in (("back to back", lat.get(name, {}), 2.5),
                                ("at 4 clients", thr.get(name, {}).get("4", {}), 3.0)):
            x, y = s.get("p99_ms"), s.get("p50_ms")
            add(None if x is None or y is None else x <= bound * y, f"{name} p99 <= {bound:g} x p50 {where}",
                None if x is None or y is None else f"{x:.1f} ms vs {bound:g} x {y:.1f} ms ({x / y:.2f}x)")

    for name, floor in (("hello", 200), ("pandas", 25)):
        r = thr.get(name, {}).get("16")
        add(None if r is None else (r["req_per_s"] >= floor and r["errors"] == 0),
            f"{name} at 16 clients >= {floor} req/s with no error",
            None if r is None else f"{r['req_per_s']:.1f} req/s, {r['errors']} errors")

    sl = res.get("sleep", {})
    w = sl.get("wall_s_max")
    add(None if w is None else (w <= 2.5 and sl.get("errors", 1) == 0),
        "64 concurrent 1 s sleeps all answered within 2.5 s (slowest round)",
        None if w is None else f"{w:.3f} s, {sl.get('errors')} errors")

    mem = res.get("memory", {})
    rss = mem.get("server_rss_kib")
    add(None if rss is None else rss <= 32 * 1024, "idle server RSS <= 32 MiB",
        None if rss is None else f"{rss / 1024:.1f} MiB")
    kinds = mem.get("ready_by_kind") or {}
    worst = mem.get("ready_sandbox_pss_kib_max_kind")
    add(None if worst is None else worst <= 16 * 1024, "each ready sandbox PSS <= 16 MiB (median per kind)",
        None if worst is None else ", ".join(f"{k} {v['pss_kib'] / 1024:.1f} MiB" for k, v in kinds.items()
                                             if v.get("pss_kib") is not None))

    ses = res.get("sessions", {})
    pr, gb, gw, cr, hl = (ses.get(k, {}) for k in ("print", "groupby", "groupby_warm", "create", "stateless_hello"))
    v = pr.get("server_ms_p50")
    coarse = pr.get("server_ms_resolution") == "ms"
    add(None if v is None or coarse else v <= 0.5, 'session print("hi") server-side p50 <= 0.5 ms',
        None if v is None else (f"{v:.3f} ms" + (" (whole-ms duration_ms only: cannot tell; see end to end)"
                                                  if coarse else "")))
    v = pr.get("p50_ms")
    add(None if v is None else v <= 1.5, 'session print("hi") end to end p50 <= 1.5 ms (keep-alive)',
        None if v is None else f"{v:.2f} ms")
    x, y = gb.get("p50_ms"), gw.get("p50_ms")
    add(None if x is None or y is None else x <= 1.2 * y, "session groupby on 1M rows p50 <= 1.2 x warm interpreter",
        None if x is None or y is None else f"{x:.1f} ms vs 1.2 x {y:.1f} ms = {1.2 * y:.1f} ms")
    x, y = cr.get("p50_ms"), hl.get("p50_ms")
    add(None if x is None or y is None else x <= y, "session create p50 <= stateless hello p50",
        None if x is None or y is None else f"{x:.2f} ms vs {y:.2f} ms")
    return out


# --- report ---------------------------------------------------------------------------------------

def fmt(v, spec=".1f", none="-"):
    if v is None:
        return none
    if isinstance(v, str):
        return v
    return format(v, spec)


def table(headers, rows, indent="  "):
    cells = [list(headers)] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for j, r in enumerate(cells):
        parts = []
        for i, c in enumerate(r):
            parts.append(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]))
        lines.append(indent + "  ".join(parts).rstrip())
        if j == 0:
            lines.append(indent + "  ".join("-" * w for w in widths))
    return lines


def config_str(cfg):
    if cfg is None:
        return ""
    e = cfg.get("explicit") or {}
    return " ".join(f"{k}={v}" for k, v in e.items()) or "default configuration"


def render(res):
    m = res["meta"]
    L = []
    L.append(f"snakebox benchmark  commit {m['git_commit_short']}{' (dirty tree)' if m.get('git_dirty') else ''}"
             f"  {m['date']}  mode {m['mode']}")
    L.append(f"machine: {m['cpu_model']}, {m['nproc']} CPUs, {m['mem_total_mib']:.0f} MiB RAM, "
             f"Linux {m['kernel']}")
    cfgs = res.get("server_config", {})

    if "latency" in res:
        r = res["latency"]
        L.append("")
        L.append(f"1. Sequential latency over HTTP, one keep-alive connection "
                 f"(N={r['n']} each after {r['warmup']} warm-up; {config_str(cfgs.get('latency'))})")
        rows = []
        for name, s in r["snippets"].items():
            rows.append([name, fmt(s.get("p50_ms"), ".2f"), fmt(s.get("p90_ms"), ".2f"),
                         fmt(s.get("p99_ms"), ".2f"), fmt(s.get("p99_9_ms"), ".2f"),
                         fmt(s.get("p99_over_p50"), ".2f") + "x", fmt(s.get("min_ms"), ".2f"),
                         fmt(s.get("max_ms"), ".2f"),
                         fmt(s.get("server_duration_ms_p50"), ".0f"), s.get("errors"),
                         fmt(s.get("server_cpu_cores"), ".2f"), fmt(s.get("other_cpu_cores"), ".2f")])
        L += table(["snippet", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "p99/p50", "min ms", "max ms",
                    "server duration p50", "errors", "server+runs CPU", "other CPU"], rows)
        if r["n"] < P99_9_MIN_N:
            L.append(f"  p99.9 only from N >= {P99_9_MIN_N} (use --n)")
    elif "latency_error" in res:
        L += ["", "1. Sequential latency: could not run: " + res["latency_error"].splitlines()[0]]

    if "throughput" in res:
        r = res["throughput"]
        L.append("")
        L.append(f"2. Throughput, closed loop, {r['duration_s']:g} s per level "
                 f"({config_str(cfgs.get('throughput'))}); CPU in cores of {m['nproc']}")
        rows = []
        for name, levels in r["snippets"].items():
            for c, s in levels.items():
                rows.append([name, c, fmt(s["req_per_s"], ".1f"), s["errors"], fmt(s.get("p50_ms"), ".1f"),
                             fmt(s.get("p99_ms"), ".1f"), fmt(s.get("p99_9_ms"), ".1f"),
                             fmt(s.get("p99_over_p50"), ".2f") + "x", fmt(s["client_cpu_cores"], ".2f"),
                             fmt(s["server_cpu_cores"], ".2f"), fmt(s["other_cpu_cores"], ".2f"),
                             fmt(s["machine_busy_cores"], ".2f")])
        L += table(["snippet", "clients", "req/s", "errors", "p50 ms", "p99 ms", "p99.9 ms", "p99/p50", "client CPU",
                    "server+runs CPU", "other CPU", "machine busy"], rows)
        L.append("  CPU columns, in cores: client = this benchmark process (near 1.0 = the Python client is"
                 " the bottleneck);")
        L.append("  server+runs = server, zygotes and every run (its cgroups); other = the rest of the machine"
                 " (kernel threads...)")
        errs = [(n, c, s["error_kinds"]) for n, lv in r["snippets"].items() for c, s in lv.items()
                if s["errors"]]
        for n, c, k in errs:
            L.append(f"  errors {n} x{c}: {k}")
    elif "throughput_error" in res:
        L += ["", "2. Throughput: could not run: " + res["throughput_error"].splitlines()[0]]

    if "sleep" in res:
        r = res["sleep"]
        L.append("")
        L.append(f"3. {r['requests']} concurrent `{r['code']}` ({config_str(cfgs.get('sleep'))})")
        rows = [[str(i + 1), fmt(x["wall_s"], ".3f"), fmt(x["first_answer_s"], ".3f"), x["errors"],
                 fmt(x["server_duration_ms_max"], ".0f")] for i, x in enumerate(r["rounds"])]
        L += table(["round", "last answer s", "first answer s", "errors", "server duration max ms"], rows)
    elif "sleep_error" in res:
        L += ["", "3. Concurrent sleeps: could not run: " + res["sleep_error"].splitlines()[0]]

    if "memory" in res:
        r = res["memory"]
        ld = r.get("load", {})

        def mib(k):
            return None if k is None else k / 1024

        L.append("")
        L.append(f"4. Memory ({config_str(cfgs.get('memory'))}; idle = the set of ready sandboxes unchanged "
                 f"for 2 s{'' if r.get('pool_settled') else ' - DID NOT SETTLE'})")
        rows = [["server RSS (idle)", fmt(mib(r.get("server_rss_kib"))),
                 f"PSS {fmt(mib(r.get('server_pss_kib')))}"]]
        for z in r.get("zygotes", []):
            rows.append([f"zygote RSS ({z['comm']})", fmt(mib(z.get("rss_kib"))),
                         f"PSS {fmt(mib(z.get('pss_kib')))}"])
        for kind, k in r.get("ready_by_kind", {}).items():
            rows.append([f"ready sandbox PSS, {kind} (median)", fmt(mib(k.get("pss_kib"))),
                         f"of {k['count']}; RSS {fmt(mib(k.get('rss_kib')))}, "
                         f"private dirty {fmt(mib(k.get('private_dirty_kib')))}"])
        rows += [
            ["total PSS idle", fmt(mib(r.get("idle_total_pss_kib"))), f"{r.get('idle_processes')} processes"],
            [f"total PSS, {ld.get('clients')} clients pandas (max)", fmt(mib(ld.get("total_pss_kib_max"))),
             f"mean {fmt(mib(ld.get('total_pss_kib_mean')))}, up to {ld.get('processes_max')} processes, "
             f"{fmt(ld.get('req_per_s'))} req/s, {ld.get('errors')} errors"],
        ]
        L += table(["measure", "MiB", "detail"], rows)
    elif "memory_error" in res:
        L += ["", "4. Memory: could not run: " + res["memory_error"].splitlines()[0]]

    if "baselines" in res:
        b = res["baselines"]
        cold, warm = b.get("bwrap_cold", {}), b.get("warm_interpreter", {})
        L.append("")
        L.append(f"5. Baselines, p50 ms: (a) cold {PYTHON} per run in bwrap --unshare-all "
                 f"(N={cold.get('n')}), (b) warm interpreter (N={warm.get('n')}); ratio = snakebox / baseline")
        rows = []
        for name, row in res.get("ratios", {}).items():
            rows.append([name, fmt(row["snakebox_p50_ms"], ".2f"), fmt(row["bwrap_cold_p50_ms"], ".2f"),
                         fmt(row["snakebox_over_bwrap_cold"], ".3f"), fmt(row["warm_interpreter_p50_ms"], ".2f"),
                         fmt(row["snakebox_over_warm_interpreter"], ".2f")])
        L += table(["snippet", "snakebox", "(a) bwrap cold", "ratio a", "(b) warm", "ratio b"], rows)
        for key, label in (("bwrap_cold", "(a)"), ("warm_interpreter", "(b)")):
            if b.get(key, {}).get("error"):
                L.append(f"  {label} could not run: {b[key]['error'].splitlines()[0]}")
            for name, s in b.get(key, {}).get("snippets", {}).items():
                if s.get("errors"):
                    L.append(f"  {label} {name}: {s['errors']} errors: {str(s.get('error_sample'))[:200]}")
    elif "baselines_error" in res:
        L += ["", "5. Baselines: could not run: " + res["baselines_error"].splitlines()[0]]

    if "sessions" in res:
        r = res["sessions"]
        q = r.get("ratios", {})
        pr, gb, gw, cr, hl = (r.get(k, {}) for k in ("print", "groupby", "groupby_warm", "create",
                                                      "stateless_hello"))
        L.append("")
        L.append(f"6. Sessions, one keep-alive connection ({config_str(cfgs.get('sessions'))}); "
                 f"ratios are of p50s measured in this run")
        rows = [
            ['session print("hi")', fmt(pr.get("p50_ms"), ".2f"), fmt(pr.get("server_ms_p50"), ".2f"),
             "stateless hello", fmt(hl.get("p50_ms"), ".2f"), fmt(q.get("print_e2e_over_stateless_hello"), ".3f"),
             pr.get("errors")],
            ["session groupby, 1M rows", fmt(gb.get("p50_ms"), ".2f"), fmt(gb.get("server_ms_p50"), ".2f"),
             "warm interpreter", fmt(gw.get("p50_ms"), ".2f"), fmt(q.get("groupby_e2e_over_warm"), ".3f"),
             gb.get("errors")],
            ["session create", fmt(cr.get("p50_ms"), ".2f"), "-", "stateless hello", fmt(hl.get("p50_ms"), ".2f"),
             fmt(q.get("create_over_stateless_hello"), ".3f"), cr.get("errors")],
        ]
        L += table(["measure", "p50 ms", "server p50 ms", "compared with", "its p50 ms", "ratio", "errors"], rows)
        L.append(f"  N: print {r.get('n')}, groupby {r.get('groupby_n')}, create {r.get('create_n')} "
                 f"(create answered in state {cr.get('states')}); the DataFrame cell took "
                 f"{fmt(r.get('dataframe_cell_ms'), '.0f')} ms; server p50 = the answers' duration "
                 f"(duration_us when given, else duration_ms, whole ms)")
        mib = {k: (f"{r[k] / 1048576:.1f} MiB" if isinstance(r.get(k), int) else "n/a")
               for k in ("memory_idle_bytes", "memory_dataframe_bytes", "memory_idle_lean_bytes")}
        L.append(f"  a session's memory beyond its zygote (its cgroup, GET memory_bytes): idle "
                 f"{mib['memory_idle_bytes']} (full), {mib['memory_idle_lean_bytes']} (lean); with the "
                 f"1,000,000-row DataFrame {mib['memory_dataframe_bytes']}")
        for k in ("print", "groupby", "create"):
            if r.get(k, {}).get("error_sample"):
                L.append(f"  {k} error: {r[k]['error_sample'][:200]}")
        if gw.get("error"):
            L.append(f"  warm interpreter could not run: {gw['error'].splitlines()[0] if gw['error'] else ''}")
    elif "sessions_error" in res:
        L += ["", "6. Sessions: could not run: " + res["sessions_error"].splitlines()[0]]

    if m.get("interrupted"):
        L += ["", "INTERRUPTED: only the phases above were measured completely"]

    L.append("")
    L.append("Targets (issue 3; informational)")
    for t in res.get("targets", []):
        L.append(f"  {t['result']:4}  {t['target']}" + (f": {t['measured']}" if t["measured"] else ""))

    env = res.get("environment") or {}
    if any("cpu" in e for e in env.values()):
        L.append("")
        L.append("Other load during each phase (CPU cores used by neither the benchmark nor its servers; "
                 "includes kernel threads):")
        L.append("  " + ", ".join(f"{ph} {e['cpu']['other_cpu_cores']:.2f}" for ph, e in env.items() if "cpu" in e))

    if res.get("warnings"):
        L.append("")
        L.append("Warnings:")
        for w in res["warnings"]:
            L.append(f"  {w}")

    if res.get("server_log"):
        L.append("")
        L.append("Server log lines after start-up, access-log lines left out (see the JSON):")
        for phase, lines in res["server_log"].items():
            for l in lines[:5]:
                L.append(f"  [{phase}] {l[:160]}")
            if len(lines) > 5:
                L.append(f"  [{phase}] ... {len(lines) - 5} more")
    return "\n".join(L)


# --- metadata and main ----------------------------------------------------------------------------

def git(*args):
    try:
        r = subprocess.run(["git", "--no-optional-locks", "-C", str(ROOT)] + list(args),
                           capture_output=True, text=True, timeout=30)
        return r.stdout.strip() if r.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def metadata(args, binary):
    cpuinfo = read_text("/proc/cpuinfo") or ""
    m = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    meminfo = read_text("/proc/meminfo") or ""
    mt = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.M)
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    st = binary.stat() if binary.exists() else None
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git_commit": commit,
        "git_commit_short": commit[:7] if commit else "unknown",
        "git_dirty": bool(status) if status is not None else None,
        "kernel": os.uname().release,
        "uname": " ".join(os.uname()),
        "nproc": os.cpu_count(),
        "mem_total_mib": int(mt.group(1)) / 1024 if mt else 0,
        "cpu_model": m.group(1).strip() if m else "unknown",
        "client_python": sys.version.split()[0],
        "binary": str(binary),
        "binary_mtime": (datetime.datetime.fromtimestamp(st.st_mtime).astimezone().isoformat(timespec="seconds")
                         if st else None),
        "binary_size": st.st_size if st else None,
        "mode": "quick" if args.quick else "full",
        "argv": sys.argv[1:],
        "passthrough_env": {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ},
    }


def parse_args(argv):
    p = argparse.ArgumentParser(description="snakebox benchmark (issue 3)")
    p.add_argument("--quick", action="store_true", help="small N and short phases (smoke run)")
    p.add_argument("--only", default=",".join(PHASES),
                   help=f"comma-separated phases to run, of: {','.join(PHASES)}")
    p.add_argument("--out", help="JSON result path (default bench/results/<date>-<commit>.json)")
    p.add_argument("--bin", default=os.environ.get("SNAKEBOX_BIN") or str(DEFAULT_BINARY),
                   help="the snakebox binary (default build/snakebox, or $SNAKEBOX_BIN)")
    p.add_argument("--n", type=int, help=f"sequential requests per snippet ({DEFAULT_N}; quick 30)")
    p.add_argument("--duration", type=float, help="seconds per throughput level (20; quick 3)")
    p.add_argument("--clients", help="throughput client counts (1,4,16,64)")
    p.add_argument("--snippets", default=",".join(SNIPPETS),
                   help=f"snippets the latency and throughput phases run, of: {','.join(SNIPPETS)}")
    p.add_argument("--cold-n", type=int, help="cold bwrap runs per snippet (20; quick 5)")
    p.add_argument("--warm-n", type=int, help="warm-interpreter runs per snippet (200; quick 30)")
    a = p.parse_args(argv)
    a.phases = [x.strip() for x in a.only.split(",") if x.strip()]
    bad = [x for x in a.phases if x not in PHASES]
    if bad:
        p.error(f"unknown phase(s) {', '.join(bad)}; choose from {', '.join(PHASES)}")
    a.snippets = [x.strip() for x in a.snippets.split(",") if x.strip()]
    bad = [x for x in a.snippets if x not in SNIPPETS]
    if bad:
        p.error(f"unknown snippet(s) {', '.join(bad)}; choose from {', '.join(SNIPPETS)}")
    q = a.quick
    a.n = a.n or (30 if q else DEFAULT_N)
    a.warmup = 3 if q else 5
    a.duration = a.duration or (3.0 if q else 20.0)
    a.clients = [int(x) for x in (a.clients or "1,4,16,64").split(",")]
    a.cold_n = a.cold_n or (5 if q else 20)
    a.warm_n = a.warm_n or (30 if q else 200)
    a.sleep_rounds = 1 if q else 3
    a.mem_duration = 3.0 if q else 10.0
    a.session_create_n = 10 if q else 50
    a.session_groupby_n = 10 if q else 30
    return a


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    binary = Path(args.bin).resolve()
    server_phases = [p for p in args.phases if p != "baselines"]
    if server_phases and not (binary.is_file() and os.access(binary, os.X_OK)):
        print(f"bench: {binary} does not exist or is not executable: run `make` first", file=sys.stderr)
        return 2
    for fn in SNIPPETS.values():
        if not (SNIPPET_DIR / fn).is_file():
            print(f"bench: missing snippet {SNIPPET_DIR / fn}", file=sys.stderr)
            return 2

    bench = Bench(args)
    res = {"meta": metadata(args, binary)}
    ran = 0
    t_start = time.monotonic()
    interrupted = False
    try:
        for phase in PHASES:
            if phase not in args.phases:
                continue
            t0 = time.monotonic()
            log(f"phase {phase}")
            bench.note_environment(phase)
            pm = PhaseMeter()
            pm.start()
            try:
                bench.results[phase] = res[phase] = getattr(bench, f"phase_{phase}")()
                ran += 1
            except Exception as e:  # record it and go on with the other phases
                res[f"{phase}_error"] = f"{type(e).__name__}: {e}"
                if not isinstance(e, ServerStartError):
                    res[f"{phase}_traceback"] = traceback.format_exc()
                log(f"phase {phase} could not run: {type(e).__name__}: {e}")
            finally:
                stop_all_servers()
                cpu = bench.environment[phase]["cpu"] = pm.stop()
                if cpu["other_cpu_cores"] > 0.5:
                    msg = (f"{phase}: the rest of the machine (other processes, kernel threads) used "
                           f"{cpu['other_cpu_cores']:.2f} of {os.cpu_count()} cores on average: "
                           f"numbers are disturbed")
                    log("warning: " + msg)
                    bench.warnings.append(msg)
            res["meta"].setdefault("phase_elapsed_s", {})[phase] = time.monotonic() - t0
            log(f"phase {phase} took {time.monotonic() - t0:.0f} s")
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping the server and writing what was measured")
    finally:
        stop_all_servers()

    res["ratios"] = bench.ratios()
    res["targets"] = evaluate_targets(res)
    res["server_config"] = bench.servers_used
    res["server_log"] = bench.server_logs
    res["server_access_log_lines"] = bench.access_log_lines
    res["environment"] = bench.environment
    res["warnings"] = bench.warnings
    res["meta"]["elapsed_s"] = time.monotonic() - t_start
    res["meta"]["interrupted"] = interrupted

    report = render(res)
    print(report, flush=True)

    if args.out:
        out = Path(args.out)
    else:
        stamp = datetime.datetime.now().strftime("%Y-%m-%dT%H%M%S")
        out = RESULTS_DIR / f"{stamp}-{res['meta']['git_commit_short']}.json"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        res["report"] = report
        out.write_text(json.dumps(res, indent=2) + "\n")
        print(f"\nresults: {out}", flush=True)
    except OSError as e:
        print(f"bench: cannot write {out}: {e}", file=sys.stderr)
    log(f"done in {time.monotonic() - t_start:.0f} s")
    if interrupted:
        return 130
    return 0 if ran > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
