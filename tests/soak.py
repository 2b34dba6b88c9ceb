#!/usr/bin/python3
"""Soak test (issue 6): many requests of every kind at many clients, then nothing lost or leaked.

    /usr/bin/python3 tests/soak.py [--requests N] [--clients C] [--seed S]

Starts its own `build/snakebox serve` (PORT=0, HOST=127.0.0.1, in a fresh temporary directory,
small limits), warms it up with 50 requests, records the server's RSS and open fd count, then
sends N requests (default 10000) from C client threads (default 32) with keep-alive connections:
a mix of hello, the old project's pandas example, exceptions, timeouts, memory bombs, fork bombs
bounded by MAX_PROCESSES, output floods, clients that disconnect mid-run, uploaded and returned
files, matplotlib images and bad requests.

Afterwards (the pool is given up to 10 s to settle) it checks and prints:
  - the server is alive and /health answers 200;
  - every request was answered (200, or the expected 4xx for a bad one) or cleanly refused (503),
    with no client-side error or timeout (the client timeout is 60 s);
  - no process of any run is left (every run names itself with a random token, prctl
    PR_SET_NAME, and the host's /proc/*/comm must not show it);
  - the server's cgroup tree snakebox-<pid> holds only its ready sandboxes (sb-*, at most
    POOL_SIZE + LEAN_POOL_SIZE + a few being made) and nothing else;
  - the server's mount table is unchanged;
  - the server's open fds, less FDS_PER_SANDBOX for each live sandbox, are back within +2 of
    the same figure at idle (the pool may hold more ready sandboxes after the load than before);
  - the server's RSS is within +5% (or +2 MiB, whichever is larger) of its value after warm-up;
then stops the server with SIGTERM and checks that it exits 0 leaving no runtime directory
(/run/snakebox-<pid>, or /tmp/snakebox-<pid> when not root) and no cgroup directory snakebox-<pid>.

It prints a table of the figures, then `soak: N passed, M failed` (N and M count the checks) as
its last line, and exits non-zero when a check failed. Standard library only. Only the pid it
started is ever signalled; nothing is killed by name.
"""

import argparse
import collections
import http.client
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

# The host-side checks are the test suites' own (tests/conftest.py; this file's directory is
# first on sys.path when it runs as a program).
from conftest import cgroup_dirs, host_processes

ROOT = Path(__file__).resolve().parent.parent
BINARY = Path(os.environ.get("SNAKEBOX_BIN") or ROOT / "build" / "snakebox").resolve()
READY_RE = re.compile(r"^snakebox: listening on http://127\.0\.0\.1:(\d+)\s*$", re.M)

POOL_SIZE = 4
LEAN_POOL_SIZE = 4
STARTING_SLACK = 4  # sandboxes being made when we look
SERVER_ENV = {
    "EXECUTION_TIMEOUT": "3",
    "MEMORY_LIMIT_MB": "256",
    "MAX_PROCESSES": "32",
    "MAX_OUTPUT_BYTES": "65536",
    "MAX_CONCURRENCY": "16",
    "QUEUE_SIZE": "64",
    "SHUTDOWN_GRACE": "2",
    "POOL_SIZE": str(POOL_SIZE),
    "LEAN_POOL_SIZE": str(LEAN_POOL_SIZE),
}
CLIENT_TIMEOUT = 60
WARMUP_REQUESTS = 50
SETTLE_SEC = 10
MIB = 1024 * 1024

# Names the calling process `token` (prctl PR_SET_NAME), as tests/conftest.py's MARK_PRELUDE.
# Children inherit the name, so a fork bomb's processes carry it too.
MARK_PRELUDE = textwrap.dedent('''
    import ctypes as _ctypes
    _libc = _ctypes.CDLL(None, use_errno=True)
    if _libc.prctl(15, {token!r}.encode(), 0, 0, 0) != 0:
        try:
            with open("/proc/self/comm", "w") as _f:
                _f.write({token!r})
        except OSError:
            pass
''').lstrip("\n")

PANDAS_EXAMPLE = (
    'import pandas as pd\nimport numpy as np\n\ndata = {\n    "date": pd.date_range(start="2024-01-01", '
    'periods=10),\n    "sales": np.random.randint(100, 1000, 10),\n    "category": np.random.choice(["A", '
    '"B", "C"], 10)\n}\ndf = pd.DataFrame(data)\nprint("\\nDaily Sales Summary:")\nprint(df.describe())\n'
    'print("\\nSales by Category:")\nprint(df.groupby("category")["sales"].agg(["mean", "sum"]))\n'
    'best_day = df.loc[df["sales"].idxmax()]\nprint(f"\\nBest Sales Day:\\n{best_day}")')

FORK_BOMB = textwrap.dedent('''
    import os, time
    n = 0
    try:
        for i in range(200):
            if os.fork() == 0:
                try:
                    os.fork()          # grandchildren too, while the limit lets them
                except OSError:
                    pass
                time.sleep(30)
                os._exit(0)
            n += 1
    except OSError as e:
        print("limit", n, e.errno)
''').lstrip("\n")

FILES_CODE = textwrap.dedent('''
    with open("in/data.txt") as f:
        words = f.read().split()
    with open("out.txt", "w") as f:
        f.write(" ".join(reversed(words)))
''').lstrip("\n")

IMAGE_CODE = textwrap.dedent('''
    import matplotlib.pyplot as plt
    plt.bar(["a", "b", "c"], [3, 5, 2])
    plt.title("soak")
    plt.show()
''').lstrip("\n")

# kind: percentage of the requests
MIX = {
    "hello": 40, "pandas": 15, "exception": 10, "timeout": 3, "memory": 3, "forkbomb": 2,
    "flood": 5, "disconnect": 5, "files": 7, "image": 5, "bad": 5,
}

# Bad requests: (method, path, content type, body, expected HTTP status)
BAD_REQUESTS = [
    ("POST", "/api/execute", "application/json", b'{"code": ', 400),
    ("POST", "/api/execute", "application/json", b'{"code": "print(1)", "bogus": 1}', 400),
    ("POST", "/api/execute", "application/json", b'{"code": ""}', 400),
    ("POST", "/api/execute", "application/json", b'{"code": "print(1)", "code": "print(2)"}', 400),
    ("POST", "/api/execute", "application/json", b'{"code": "print(\xff)"}', 400),
    ("POST", "/api/execute", "text/plain", b'{"code": "print(1)"}', 415),
    ("GET", "/api/execute", None, None, 405),
    ("POST", "/api/nope", "application/json", b'{"code": "print(1)"}', 404),
]


def log(msg):
    print(msg, flush=True)


# --- the server ---------------------------------------------------------------------------------

class Server:
    def __init__(self):
        if not BINARY.is_file() or not os.access(BINARY, os.X_OK):
            sys.exit(f"soak: {BINARY} does not exist or is not executable: run `make` first")
        self.workdir = Path(tempfile.mkdtemp(prefix="snakebox-soak-"))
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": os.environ.get("HOME", "/root"),
            "HOST": "127.0.0.1",
            "PORT": "0",
        }
        env.update(SERVER_ENV)
        self.stderr_path = self.workdir / "server.stderr"
        with open(self.workdir / "server.stdout", "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([str(BINARY), "serve"], cwd=self.workdir, env=env,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        self.pid = self.proc.pid
        self.port = None

    def stderr(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = READY_RE.search(self.stderr())
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        sys.exit(f"soak: the server did not start (status {self.proc.returncode}); stderr:\n"
                 + self.stderr()[-4000:])

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        """Last resort, only on the pid we started."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def cleanup(self):
        shutil.rmtree(self.workdir, ignore_errors=True)


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


# The server's end of each live sandbox: its socket, its stdout and stderr pipes, its pidfd and its
# timer (src/pool.c sb_new). The pool does not shrink back to POOL_SIZE + LEAN_POOL_SIZE after a
# load: a sandbox made for a request that waited stays ready (dispatch wants pool_size plus the
# queued requests a free slot could start). So raw fd counts at idle and after the load can differ
# by whole sandboxes without any leak; the check compares fds less this much per live sandbox.
FDS_PER_SANDBOX = 5


def fd_base(server):
    """(fds less FDS_PER_SANDBOX per live sandbox, fds, pool) read between two /health answers
    that show the same pool with nothing busy, queued or starting; None while it moves. A dying
    sandbox (killed, not yet reaped: only its pidfd left) is not in /health: it is gone within
    milliseconds, so the caller polls."""
    try:
        _, h1 = get_json(server.port, "/health", timeout=5)
        fds = fd_count(server.pid)
        _, h2 = get_json(server.port, "/health", timeout=5)
    except OSError:
        return None
    p1, p2 = (h1 or {}).get("pool"), (h2 or {}).get("pool")
    if not p1 or p1 != p2 or p1.get("busy") or p1.get("queued") or p1.get("starting"):
        return None
    return fds - FDS_PER_SANDBOX * p1["ready"], fds, p1


def fd_targets(pid):
    out = collections.Counter()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        out[re.sub(r"\[\d+\]", "[]", target)] += 1
    return out


def mount_count(pid):
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            return sum(1 for _ in f)
    except OSError:
        return -1


def cgroup_contents(pid):
    """(sandbox dirs per tree, other dirs) below each snakebox-<pid> directory."""
    per_tree, others = {}, []
    for top in cgroup_dirs(pid):
        if os.path.basename(top).startswith("snakebox-server-"):
            continue
        n = 0
        for dirpath, dirnames, _ in os.walk(top):
            for d in dirnames:
                rel = os.path.relpath(os.path.join(dirpath, d), top)
                if d.startswith("sb-") and "/" not in rel:
                    n += 1
                elif d != f"snakebox-server-{pid}":
                    others.append(os.path.join(dirpath, d))
            dirnames[:] = []  # sb-* leaves have no children of ours; do not descend
        per_tree[top] = n
    return per_tree, others


# --- HTTP ---------------------------------------------------------------------------------------

def get_json(port, path, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        try:
            return r.status, json.loads(body)
        except ValueError:
            return r.status, None
    finally:
        conn.close()


class Outcome:
    OK = "ok"                 # the expected answer
    SLOW = "ok-but-timeout"   # 200, but the run hit EXECUTION_TIMEOUT (load on 2 cores)
    REFUSED = "503"           # cleanly refused
    WRONG = "wrong-answer"    # 200 (or the expected 4xx) with a body not as expected
    STATUS = "bad-status"     # any other HTTP status
    ERROR = "client-error"    # no answer: reset, closed, timed out
    GONE = "disconnected"     # the disconnect kind, as meant


class Kinds:
    """Builds the request of each kind and judges its answer."""

    def __init__(self, token):
        self.token = token
        self.prelude = MARK_PRELUDE.format(token=token)

    def body(self, kind, i):
        p = self.prelude
        if kind == "hello":
            return {"code": p + 'print("Hello, World!")'}
        if kind == "pandas":
            return {"code": p + PANDAS_EXAMPLE}
        if kind == "exception":
            return {"code": p + 'print("before")\nx = 1/0'}
        if kind == "timeout":
            return {"code": p + "while True: pass"}
        if kind == "memory":
            return {"code": p + "chunks = []\nwhile True:\n    chunks.append(b'x' * (16 << 20))"}
        if kind == "forkbomb":
            return {"code": p + FORK_BOMB}
        if kind == "flood":
            return {"code": p + "while True:\n    print('x' * 1000)"}
        if kind == "disconnect":
            return {"code": p + "import time; time.sleep(2)"}
        if kind == "files":
            words = " ".join(f"w{i}-{k}" for k in range(20))
            return {"code": p + FILES_CODE,
                    "files": [{"name": "in/data.txt", "content": words}],
                    "return_files": ["*.txt"]}
        if kind == "image":
            return {"code": p + IMAGE_CODE}
        raise ValueError(kind)

    @staticmethod
    def judge(kind, i, status, body):
        """Returns (outcome, note)."""
        if status == 503:
            ok = isinstance(body, dict) and body.get("status") == "Error" and body.get("output")
            return (Outcome.REFUSED, "") if ok else (Outcome.WRONG, "503 without an error body")
        if kind == "bad":
            expected = BAD_REQUESTS[i % len(BAD_REQUESTS)][4]
            if status != expected:
                return Outcome.STATUS, f"HTTP {status}, expected {expected}"
            ok = isinstance(body, dict) and body.get("status") == "Error" and body.get("output")
            return (Outcome.OK, "") if ok else (Outcome.WRONG, "4xx without an error body")
        if status != 200:
            return Outcome.STATUS, f"HTTP {status}: {str(body)[:300]}"
        if not isinstance(body, dict):
            return Outcome.WRONG, "not a JSON object"
        err = body.get("error") or {}
        etype = err.get("type") if isinstance(err, dict) else None
        if kind not in ("timeout", "forkbomb") and etype == "Timeout":
            return Outcome.SLOW, (f"duration_ms={body.get('duration_ms')} cpu_ms={body.get('cpu_ms')} "
                                  f"memory_peak_bytes={body.get('memory_peak_bytes')}")
        out = body.get("stdout") or ""
        good = {
            "hello": lambda: body.get("status") == "Success" and body.get("output") == "Hello, World!\n",
            "pandas": lambda: body.get("status") == "Success" and "Daily Sales Summary" in out
                      and "Best Sales Day" in out,
            "exception": lambda: body.get("status") == "Error" and etype == "ZeroDivisionError"
                         and out == "before\n",
            "timeout": lambda: body.get("status") == "Error" and etype == "Timeout",
            "memory": lambda: body.get("status") == "Error" and etype in ("MemoryLimit", "MemoryError"),
            # bounded: fork() fails before MAX_PROCESSES, or the run is stopped at its time limit
            "forkbomb": lambda: (body.get("status") == "Success" and out.startswith("limit ")
                                 and int(out.split()[1]) < int(SERVER_ENV["MAX_PROCESSES"]))
                        or etype == "Timeout",
            "flood": lambda: body.get("status") == "Error" and body.get("truncated") is True
                     and etype == "OutputLimit",
            "files": lambda: body.get("status") == "Success" and any(
                f.get("name") == "out.txt" and f.get("content") == " ".join(
                    f"w{i}-{k}" for k in reversed(range(20))) for f in body.get("files") or []),
            "image": lambda: body.get("status") == "Success" and len(body.get("images") or []) == 1
                     and body["images"][0].get("format") == "png" and body["images"][0].get("data"),
        }[kind]
        try:
            ok = good()
        except (TypeError, ValueError, KeyError, IndexError, AttributeError):
            ok = False
        if ok:
            return Outcome.OK, ""
        summary = {k: body.get(k) for k in ("status", "error", "truncated", "exit_code", "signal")}
        summary["output"] = (body.get("output") or "")[:300]
        return Outcome.WRONG, json.dumps(summary)[:600]


class Client(threading.Thread):
    """Takes requests from the shared list, one keep-alive connection, reconnecting on errors."""

    def __init__(self, port, kinds, work, stats):
        super().__init__(daemon=True)
        self.port, self.kinds, self.work, self.stats = port, kinds, work, stats
        self.conn = None

    def run(self):
        while True:
            item = self.work.take()
            if item is None:
                break
            i, kind = item
            start = time.monotonic()
            try:
                outcome, note = self.one(i, kind)
            except Exception as e:  # counted; the soak goes on
                outcome, note = Outcome.ERROR, f"{type(e).__name__}: {e}"
                self.drop()
            self.stats.add(kind, outcome, note, time.monotonic() - start)
        self.drop()

    def drop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def one(self, i, kind):
        if kind == "disconnect":
            return self.disconnect(i)
        if kind == "bad":
            method, path, ctype, data, _ = BAD_REQUESTS[i % len(BAD_REQUESTS)]
        else:
            method, path, ctype = "POST", "/api/execute", "application/json"
            data = json.dumps(self.kinds.body(kind, i)).encode()
        headers = {"Content-Type": ctype} if ctype else {}
        for attempt in (1, 2):
            reused = self.conn is not None
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=CLIENT_TIMEOUT)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A keep-alive connection the server closed between two requests: legal HTTP;
                # retry once on a fresh connection (counted), never twice.
                self.drop()
                if reused and attempt == 1:
                    self.stats.count("keep-alive retries")
                    continue
                raise
            if resp.getheader("Connection", "").lower() == "close" or resp.will_close:
                self.drop()
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            return Kinds.judge(kind, i, resp.status, body)
        raise AssertionError("unreachable")

    def disconnect(self, i):
        data = json.dumps(self.kinds.body("disconnect", i)).encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=CLIENT_TIMEOUT) as s:
            s.sendall(b"POST /api/execute HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(data) + data)
            time.sleep(0.2)
        return Outcome.GONE, ""


class Work:
    def __init__(self, items):
        self.items = collections.deque(items)
        self.lock = threading.Lock()
        self.total = len(items)

    def take(self):
        with self.lock:
            return self.items.popleft() if self.items else None

    def left(self):
        with self.lock:
            return len(self.items)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.by_kind = collections.defaultdict(collections.Counter)
        self.notes = collections.defaultdict(list)
        self.events = collections.Counter()
        self.durations = collections.defaultdict(list)
        self.done = 0

    def add(self, kind, outcome, note, seconds):
        with self.lock:
            self.by_kind[kind][outcome] += 1
            self.durations[kind].append(seconds)
            self.done += 1
            if note and len(self.notes[(kind, outcome)]) < 3:
                self.notes[(kind, outcome)].append(note)

    def count(self, event):
        with self.lock:
            self.events[event] += 1


def make_mix(n, rng):
    total = sum(MIX.values())
    counts = {k: n * v // total for k, v in MIX.items()}
    kinds = list(MIX)
    j = 0
    while sum(counts.values()) < n:  # the remainder, to the biggest shares first
        counts[sorted(kinds, key=lambda k: -MIX[k])[j % len(kinds)]] += 1
        j += 1
    items = [k for k, c in counts.items() for _ in range(c)]
    rng.shuffle(items)
    return list(enumerate(items))


def run_load(port, kinds, items, clients, stats, progress=True):
    work = Work(items)
    threads = [Client(port, kinds, work, stats) for _ in range(clients)]
    for t in threads:
        t.start()
    last = time.monotonic()
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(timeout=1)
            if progress and time.monotonic() - last >= 10:
                last = time.monotonic()
                log(f"  ... {stats.done}/{work.total} answered")
    return threads


# --- settle and check ---------------------------------------------------------------------------

def wait_settled(server, token, deadline):
    """Until no marked process is left and the pool is back to ready sandboxes only."""
    while time.monotonic() < deadline:
        try:
            status, h = get_json(server.port, "/health", timeout=5)
        except OSError:
            status, h = None, None
        pool = (h or {}).get("pool") or {}
        if (status == 200 and not host_processes(token) and pool.get("busy") == 0
                and pool.get("queued") == 0 and pool.get("starting") == 0):
            return True
        time.sleep(0.2)
    return False


def poll(check, deadline):
    """Re-evaluates check() until it holds or the deadline passes; returns its last value."""
    while True:
        value = check()
        if value[0] or time.monotonic() >= deadline:
            return value
        time.sleep(0.2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    if args.requests < 1 or args.clients < 1:
        ap.error("--requests and --clients must be positive")
    seed = args.seed if args.seed is not None else secrets.randbelow(1 << 31)
    rng = random.Random(seed)
    token = "sbx" + secrets.token_hex(5)
    kinds = Kinds(token)

    server = Server()
    checks = []  # (name, passed, figure)
    stats = Stats()
    totals = collections.Counter()
    server_stderr = ""

    def check(name, passed, figure):
        checks.append((name, bool(passed), figure))

    try:
        server.wait_ready()
        log(f"soak: server pid {server.pid} on port {server.port}; {args.requests} requests at "
            f"{args.clients} clients; run token {token}; seed {seed}")
        mounts_start = mount_count(server.pid)

        # Warm-up: every kind but disconnects, so that every code path has allocated once.
        warm_kinds = [k for k in MIX if k != "disconnect"]
        warm = [(i, warm_kinds[i % len(warm_kinds)]) for i in range(WARMUP_REQUESTS)]
        warm_stats = Stats()
        t0 = time.monotonic()
        run_load(server.port, kinds, warm, min(8, args.clients), warm_stats, progress=False)
        warm_bad = {k: dict(c) for k, c in warm_stats.by_kind.items()
                    if set(c) - {Outcome.OK, Outcome.SLOW, Outcome.REFUSED}}
        log(f"soak: warm-up of {WARMUP_REQUESTS} requests in {time.monotonic() - t0:.1f} s"
            + (f"; unexpected: {warm_bad}" if warm_bad else ""))
        wait_settled(server, token, time.monotonic() + SETTLE_SEC)
        time.sleep(0.5)
        rss_warm = rss_bytes(server.pid)
        def fds_still():
            base = fd_base(server)
            return base is not None, base

        idle = poll(fds_still, time.monotonic() + SETTLE_SEC)[1]
        if idle is None:
            sys.exit("soak: the pool did not hold still after the warm-up (/health kept changing)")
        fd_kinds_idle = fd_targets(server.pid)

        # The load.
        items = make_mix(args.requests, rng)
        t0 = time.monotonic()
        run_load(server.port, kinds, items, args.clients, stats)
        elapsed = time.monotonic() - t0
        rss_after_load = rss_bytes(server.pid) if server.alive() else 0
        log(f"soak: {stats.done} requests in {elapsed:.1f} s ({stats.done / max(elapsed, 1e-9):.0f}/s)")

        # Settle, then check.
        deadline = time.monotonic() + SETTLE_SEC
        settled = wait_settled(server, token, deadline)
        alive = server.alive()
        try:
            hstatus, health = get_json(server.port, "/health", timeout=10)
        except OSError as e:
            hstatus, health = f"{type(e).__name__}: {e}", None
        check("server alive, /health 200", alive and hstatus == 200,
              f"alive={alive} /health={hstatus} pool={(health or {}).get('pool')}")

        for c in stats.by_kind.values():
            totals.update(c)
        failures = totals[Outcome.WRONG] + totals[Outcome.STATUS] + totals[Outcome.ERROR]
        check("every request answered as expected or refused 503", failures == 0 and stats.done == len(items),
              f"{stats.done}/{len(items)} done; ok {totals[Outcome.OK]}, ok-but-timeout "
              f"{totals[Outcome.SLOW]}, 503 {totals[Outcome.REFUSED]}, disconnected "
              f"{totals[Outcome.GONE]}, wrong {totals[Outcome.WRONG]}, bad status "
              f"{totals[Outcome.STATUS]}, client errors {totals[Outcome.ERROR]}")

        left = poll(lambda: (not host_processes(token), host_processes(token)), deadline)[1]
        check("no process of any run left", not left, f"marked processes: {left or 'none'}")

        bound = POOL_SIZE + LEAN_POOL_SIZE + STARTING_SLACK

        def cg_state():
            per_tree, others = cgroup_contents(server.pid)
            ok = bool(per_tree) and all(n <= bound for n in per_tree.values()) and not others
            if not os.access("/sys/fs/cgroup", os.W_OK):
                ok = not others
            return ok, per_tree, others

        cg_ok, per_tree, others = poll(cg_state, deadline)
        check(f"cgroups: only ready sandboxes (sb-* <= {bound}) under snakebox-{server.pid}", cg_ok,
              "; ".join(f"{p}: {n} sb-*" for p, n in per_tree.items()) or "no snakebox-<pid> cgroup"
              + (f"; other dirs {others[:5]}" if others else ""))

        mounts_end = mount_count(server.pid)
        check("server mount table unchanged", mounts_end == mounts_start,
              f"{mounts_start} -> {mounts_end} mounts")

        def fds_back():
            end = fd_base(server)
            return end is not None and end[0] <= idle[0] + 2, end

        end = poll(fds_back, max(deadline, time.monotonic() + 2))[1]
        fds_ok = end is not None and end[0] <= idle[0] + 2
        fd_note = ""
        if not fds_ok:
            diff = fd_targets(server.pid) - fd_kinds_idle
            fd_note = f"; extra: {dict(diff)}"
        after = (f"{end[1]} with {end[2]['ready']} ready sandboxes ({end[0]} less {FDS_PER_SANDBOX} each)"
                 if end else "unknown (the pool never held still)")
        check(f"server fds less {FDS_PER_SANDBOX} per live sandbox back to idle (+2)", fds_ok,
              f"idle {idle[1]} with {idle[2]['ready']} ready sandboxes ({idle[0]} less "
              f"{FDS_PER_SANDBOX} each), after {after}{fd_note}")

        rss_end = rss_bytes(server.pid)
        allowance = max(rss_warm * 5 // 100, 2 * MIB)
        check("server RSS within +5% or +2 MiB of post-warm-up", rss_end <= rss_warm + allowance,
              f"after warm-up {rss_warm / MIB:.2f} MiB, after soak {rss_end / MIB:.2f} MiB "
              f"({(rss_end - rss_warm) / MIB:+.2f} MiB, {100 * (rss_end - rss_warm) / max(rss_warm, 1):+.1f}%; "
              f"allowed +{allowance / MIB:.2f} MiB); right after the load {rss_after_load / MIB:.2f} MiB")
        check("pool settled within 10 s", settled,
              f"/health pool {(health or {}).get('pool')}")
    finally:
        # Stop: SIGTERM to our pid only, then check it left nothing.
        exit_status = None
        if server.proc.poll() is None:
            os.kill(server.pid, signal.SIGTERM)
            try:
                exit_status = server.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                exit_status = f"still running 30 s after SIGTERM (killed: {server.proc.returncode})"
        else:
            exit_status = f"had already exited with {server.proc.returncode}"
        runtime_dir = Path("/run" if os.geteuid() == 0 else "/tmp") / f"snakebox-{server.pid}"
        check("SIGTERM: exit status 0", exit_status == 0, f"exit status {exit_status}")
        check(f"SIGTERM: no {runtime_dir.parent}/snakebox-<pid>", not runtime_dir.exists(),
              f"{runtime_dir} {'exists' if runtime_dir.exists() else 'gone'}")
        left_cg = cgroup_dirs(server.pid)
        check("SIGTERM: no cgroup snakebox-<pid>", not left_cg, f"{left_cg or 'none'}")
        left_after = host_processes(token)
        check("SIGTERM: no marked process", not left_after, f"{left_after or 'none'}")
        server_stderr = server.stderr()
        server.cleanup()

    # Report.
    outcomes = [Outcome.OK, Outcome.SLOW, Outcome.REFUSED, Outcome.GONE, Outcome.WRONG,
                Outcome.STATUS, Outcome.ERROR]
    width = max(len(o) for o in outcomes)
    log("")
    log("requests by kind and outcome (p50 / max seconds per request):")
    log(f"  {'kind':<11}{'total':>7}" + "".join(f"{o:>{width + 2}}" for o in outcomes) + "    p50     max")
    for kind in MIX:
        c = stats.by_kind.get(kind, collections.Counter())
        d = sorted(stats.durations.get(kind, [])) or [0.0]
        log(f"  {kind:<11}{sum(c.values()):>7}" + "".join(f"{c[o]:>{width + 2}}" for o in outcomes)
            + f"  {d[len(d) // 2]:5.2f}  {d[-1]:6.2f}")
    log(f"  {'all':<11}{sum(totals.values()):>7}" + "".join(f"{totals[o]:>{width + 2}}" for o in outcomes))
    if stats.events:
        log(f"  events: {dict(stats.events)}")
    if stats.notes:
        log("examples (at most 3 per kind and outcome):")
        for (kind, outcome), notes in sorted(stats.notes.items()):
            for n in notes:
                log(f"  {kind} {outcome}: {n}")
    log("")
    log("checks:")
    for name, passed, figure in checks:
        log(f"  {'PASS' if passed else 'FAIL'}  {name}: {figure}")
    failed = sum(1 for _, p, _ in checks if not p)
    if failed:
        tail = [line for line in server_stderr.splitlines() if not line.startswith("snakebox: access ")]
        log("server stderr (without access lines, tail):")
        for line in tail[-30:]:
            log("  " + line)
    log(f"soak: {len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
