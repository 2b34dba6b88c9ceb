"""Shared fixtures for the black-box suites in tests/api and tests/escape.

Every test talks to the real built server (build/snakebox) over HTTP on loopback. The server is
started with `build/snakebox serve`, HOST=127.0.0.1 and PORT=0, in a fresh temporary working
directory (so no `.env` is read unless a test writes one), with a small fixed environment. It
announces itself on stderr with one line `snakebox: listening on http://127.0.0.1:<port>`.
Servers are stopped with SIGTERM to the pid we started, then SIGKILL after 10 s.

Only the standard library is used, so the suite runs with Debian's pytest:
    /usr/bin/python3 -m pytest tests/api tests/escape

Helpers meant for the tests (import them with `from conftest import ...`):
    run(server, code, **extra)       -> (http_status, json_body)
    execute(server, obj)             -> (http_status, json_body), obj posted as it is
    execute_ok(server, obj)          -> json_body of a request that must succeed
    module_server(env)               a module-scoped server fixture (TEST_LIMITS + env)
    request(server, method, path...) -> Reply(status, headers, body, json)
    assert_healthy(server)           a hello world still succeeds
    new_token()                      a random marker, short enough for a process name
    MARK_PRELUDE                     Python source defining mark(token): names the calling
                                     process `token` (prctl PR_SET_NAME) and returns the name
    host_processes(token)            host pids whose /proc/<pid>/comm is `token`
    assert_no_processes_left(token)  polls the host's /proc for up to 5 s
"""

import http.client
import json
import os
import re
import secrets
import textwrap
import time
from pathlib import Path

import pytest

from serverproc import ServerProcess, ServerStartError

ROOT = Path(__file__).resolve().parent.parent
# SNAKEBOX_BIN runs the suite against another build of the server; SNAKEBOX_SANITIZED=1 says it is
# built with sanitizers (make api-sanitized), which skips the few tests that cannot work then.
BINARY = Path(os.environ.get("SNAKEBOX_BIN") or ROOT / "build" / "snakebox").resolve()

START_TIMEOUT = 60  # importing pandas and sklearn takes a few seconds

CONFIG_KEYS = (
    "EXECUTION_TIMEOUT", "PREINSTALL_LIBS", "HOST", "PORT", "MAX_CONCURRENCY", "QUEUE_SIZE",
    "QUEUE_TIMEOUT", "POOL_SIZE", "MEMORY_LIMIT_MB", "MAX_PROCESSES", "TMP_SIZE_MB",
    "MAX_FILE_SIZE_MB", "MAX_OPEN_FILES", "MAX_OUTPUT_BYTES", "MAX_REQUEST_BYTES",
)

# The limits every test server runs with unless a test says otherwise. Small, so that the limit
# tests are fast and bounded even against a server that does not enforce them.
TEST_LIMITS = {
    "EXECUTION_TIMEOUT": "5",
    "MEMORY_LIMIT_MB": "256",
    "MAX_PROCESSES": "32",
    "MAX_OUTPUT_BYTES": "65536",
    "TMP_SIZE_MB": "16",
    "MAX_REQUEST_BYTES": "65536",
    # Runs in flight at a test server's SIGTERM get this long before they are killed.
    "SHUTDOWN_GRACE": "2",
}

SANITIZED = os.environ.get("SNAKEBOX_SANITIZED") == "1"
SECRET_KEY = "SNAKEBOX_TEST_SECRET"
SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error: ")

_live_servers = []


class Server(ServerProcess):
    """One `build/snakebox serve` process we started (tests/serverproc.py), tracked so that a
    failing test shows its stderr and a sanitizer report in it fails the test."""

    def __init__(self, env=None, dotenv=None):
        if not BINARY.is_file() or not os.access(BINARY, os.X_OK):
            pytest.fail(f"{BINARY} does not exist or is not executable: run `make` first", pytrace=False)
        super().__init__(BINARY, env, prefix="snakebox-test-",
                         files={".env": dotenv} if dotenv is not None else None)
        timeout = self.env.get("EXECUTION_TIMEOUT", "30")
        self.timeout_sec = int(timeout) if timeout.isdigit() else 30
        _live_servers.append(self)

    def wait_ready(self, timeout=START_TIMEOUT):
        return super().wait_ready(timeout)

    def wait_exit(self, timeout=START_TIMEOUT):
        return super().wait_exit(timeout)

    def stop(self):
        log = super().stop()
        if self in _live_servers:
            _live_servers.remove(self)
        # A sanitizer build (make api-sanitized) reports memory errors, undefined behaviour and
        # leaks of the server and its zygotes here; any report fails the test that ran it.
        m = SANITIZER_RE.search(log)
        if m:
            raise AssertionError(f"sanitizer report in snakebox's stderr:\n{log[m.start():][:6000]}")


def ready_server(env):
    """A started Server that is listening; the test fails (no traceback) if it does not start.
    For module- and session-scoped fixtures, which stop it themselves."""
    s = Server(env)
    try:
        s.wait_ready()
    except ServerStartError as e:
        s.stop()
        pytest.fail(str(e), pytrace=False)
    return s


def module_server(env=None, limits=True):
    """A module-scoped fixture: a server with TEST_LIMITS (unless limits=False) and env laid over
    them, started once for the tests of the module that assigns it, stopped after them:
        cors = module_server({"CORS_ORIGINS": "https://a.example"})"""
    @pytest.fixture(scope="module")
    def fixture():
        full = dict(TEST_LIMITS) if limits else {}
        full.update(env or {})
        s = ready_server(full)
        yield s
        s.stop()
    return fixture


@pytest.fixture(scope="session")
def server():
    """The shared server: defaults, plus TEST_LIMITS and a secret in its environment that no
    run may ever see (server.secret)."""
    secret = "s3cr3t-" + secrets.token_hex(16)
    env = dict(TEST_LIMITS)
    env[SECRET_KEY] = secret
    s = ready_server(env)
    s.secret = secret
    yield s
    s.stop()


@pytest.fixture
def start_server():
    """Factory: start_server(env=None, dotenv=None, limits=True, wait=True) -> Server.
    env is laid over TEST_LIMITS (unless limits=False); a None value removes a key. With
    wait=True, waits until it listens (fails the test if it cannot). Every server started is
    stopped when the test ends."""
    started = []

    def start(env=None, dotenv=None, limits=True, wait=True):
        full = dict(TEST_LIMITS) if limits else {}
        full.update(env or {})
        s = Server(full, dotenv=dotenv)
        started.append(s)
        if wait:
            try:
                s.wait_ready()
            except ServerStartError as e:
                pytest.fail(str(e), pytrace=False)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the tail of every live server's stderr to the report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for s in list(_live_servers):
            rep.sections.append((f"snakebox pid {s.pid} stderr (tail)", s.stderr()[-3000:]))


# --- HTTP helpers -------------------------------------------------------------------------------

def show(value, limit=6000):
    """A failure message that shows all of an answer (pytest cuts non-string messages short)."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, Reply):
        text = repr(value)
    else:
        try:
            text = json.dumps(value, indent=1, ensure_ascii=False, default=repr)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> value
        self.body = body
        try:
            self.json = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self.json = None

    def __repr__(self):
        return f"Reply({self.status}, {self.headers!r}, {self.body[:2000]!r})"


def request(server, method, path, body=None, headers=None, timeout=None, conn=None):
    """One HTTP request; returns a Reply. Uses `conn` (kept open) when given, else a fresh
    connection that is closed afterwards."""
    if timeout is None:
        timeout = server.timeout_sec + 30
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        if isinstance(body, str):
            body = body.encode("utf-8")
        try:
            conn.request(method, path, body=body, headers=headers or {})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer (413) before reading the whole body
        try:
            resp = conn.getresponse()
            data = resp.read()
        except TimeoutError:
            pytest.fail(f"{method} {path}: no answer from the server within {timeout} s", pytrace=False)
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        return Reply(resp.status, hdrs, data)
    finally:
        if own:
            conn.close()


def post_json(server, obj, path="/api/execute", timeout=None, conn=None):
    return request(server, "POST", path, body=json.dumps(obj),
                   headers={"Content-Type": "application/json"}, timeout=timeout, conn=conn)


def execute(server, obj, timeout=None):
    """POSTs obj as it is (so that any request field can be sent, or left out) to /api/execute;
    returns (http_status, json_body). Fails the test if the body is not JSON."""
    r = post_json(server, obj, timeout=timeout)
    assert r.json is not None, f"answer is not valid JSON: {r!r}"
    return r.status, r.json


def execute_ok(server, obj, timeout=None):
    """execute() for a request that must succeed; returns the body."""
    status, body = execute(server, obj, timeout)
    assert status == 200, show((status, body))
    assert body.get("status") == "Success", show(body)
    return body


def run(server, code, timeout=None, **extra):
    """POSTs {"code": code, **extra} to /api/execute; returns (http_status, json_body).
    Fails the test if the body is not JSON."""
    obj = {"code": code}
    obj.update(extra)
    r = post_json(server, obj, timeout=timeout)
    assert r.json is not None, f"answer is not valid JSON: {r!r}"
    return r.status, r.json


def run_ok(server, code, timeout=None):
    """Runs code that must succeed; returns the body."""
    status, body = run(server, code, timeout=timeout)
    assert status == 200, show((status, body))
    assert body.get("status") == "Success", show(body)
    return body


def run_json(server, code, timeout=None):
    """Runs code that must succeed and whose last stdout line is JSON; returns that value."""
    body = run_ok(server, code, timeout=timeout)
    lines = body["stdout"].strip().splitlines()
    assert lines, show(body)
    return json.loads(lines[-1])


def run_error(server, code, timeout=None):
    """Runs code that must end in an Error answer (HTTP 200, an error object); returns the body."""
    status, body = run(server, code, timeout=timeout)
    assert status == 200, show((status, body))
    assert body["status"] == "Error", show(body)
    assert body["error"] is not None, show(body)
    return body


def run_ok_with(server, code, params, timeout=None):
    """run_ok, with params sent as the run's stdin (JSON), which the program reads with
    json.load(sys.stdin): the program stays plain source, with no host values pasted into it."""
    status, body = run(server, code, timeout=timeout, stdin=json.dumps(params))
    assert status == 200, show((status, body))
    assert body.get("status") == "Success", show(body)
    return body


def run_json_with(server, code, params, timeout=None):
    """run_json, with params sent as the run's stdin (JSON), as run_ok_with."""
    body = run_ok_with(server, code, params, timeout=timeout)
    lines = body["stdout"].strip().splitlines()
    assert lines, show(body)
    return json.loads(lines[-1])


def assert_healthy(server):
    assert server.alive(), f"the server exited with status {server.proc.returncode}"
    status, body = run(server, 'print("Hello, World!")')
    assert status == 200, show((status, body))
    assert body["status"] == "Success", show(body)
    assert body["output"] == "Hello, World!\n", show(body)


def wait_for(predicate, timeout, what, step=0.02):
    """predicate()'s first true value, polled every step seconds; fails saying what it waited
    for once timeout seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} (waited {timeout} s)"
        time.sleep(step)


def code(src):
    """Dedents a block of test Python source."""
    return textwrap.dedent(src).lstrip("\n")


# --- host-side process checks -------------------------------------------------------------------

# Finding a server's zygotes and sandboxes among its children, for the tests that kill one.
def children(pid):
    """Direct children of pid (all its threads')."""
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def own_pid_namespace(pid):
    """True for a process in the host's pid namespace (a zygote), false for a sandbox, which is
    pid 1 of a namespace of its own (its NSpid line has two numbers)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return len(line.split()) == 2
    except OSError:
        pass
    return False


def runtime_dir(pid):
    """The server's runtime directory: /run/snakebox-<pid> for root, /tmp/snakebox-<pid> for an
    unprivileged server (the suites run as the server's user, see scripts/test-unprivileged)."""
    return Path("/run" if os.geteuid() == 0 else "/tmp") / f"snakebox-{pid}"


def new_token():
    """A random marker; 13 characters, so it fits a process name (15 bytes max)."""
    return "sbx" + secrets.token_hex(5)


# Python source that defines mark(token): sets the calling process's name (prctl PR_SET_NAME,
# falling back on writing /proc/self/comm) and returns the name now in /proc/self/comm, so the
# run can prove the marking worked and the host can find the process by its name.
MARK_PRELUDE = code('''
    import ctypes as _ctypes
    _libc = _ctypes.CDLL(None, use_errno=True)

    def mark(token):
        if _libc.prctl(15, token.encode(), 0, 0, 0) != 0:
            try:
                with open("/proc/self/comm", "w") as f:
                    f.write(token)
            except OSError:
                pass
        with open("/proc/self/comm") as f:
            return f.read().strip()
''')


def host_processes(token):
    """Pids on the host whose name (/proc/<pid>/comm) is token, zombies included."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == token:
                    found.append(int(entry))
        except OSError:
            pass
    return found


def cgroup_dirs(pid):
    """Every directory snakebox-<pid> (or snakebox-server-<pid>) in the cgroup hierarchies."""
    names = (f"snakebox-{pid}", f"snakebox-server-{pid}")
    roots = [r for r in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu",
                         "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/unified")
             if os.path.isdir(r)] or ["/sys/fs/cgroup"]
    found = []
    for root in roots:
        for dirpath, dirnames, _ in os.walk(root):
            found += [os.path.join(dirpath, d) for d in dirnames if d in names]
            dirnames[:] = [d for d in dirnames if not d.startswith(("sb-", "snakebox-"))]
    return sorted(found)


def sandbox_cgroups(pid):
    """{cgroup directory snakebox-<pid>: number of sb-* cgroups in it}, in every hierarchy; {}
    when the server made none (unprivileged without a delegated cgroup)."""
    return {d: sum(e.startswith("sb-") for e in os.listdir(d))
            for d in cgroup_dirs(pid) if os.path.basename(d) == f"snakebox-{pid}"}


def assert_cgroups_only_for_live_sandboxes(server, timeout=30):
    """Polls until each of the server's cgroup trees holds exactly one sb-* cgroup per live
    sandbox (ready, running or starting, as /health counts them): no cgroup outlives its run."""
    deadline = time.monotonic() + timeout
    while True:
        pool = (request(server, "GET", "/health", timeout=5).json or {}).get("pool", {})
        counts = sandbox_cgroups(server.pid)
        live = sum(pool.get(k, 0) for k in ("ready", "busy", "starting"))
        # As root the server always has its cgroup trees; unprivileged, usually none.
        found = bool(counts) or os.geteuid() != 0
        if pool and found and all(n == live for n in counts.values()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{timeout} s on, the server's cgroups do not match its sandboxes: sb-* per tree "
                f"{counts}, /health pool {pool}")
        time.sleep(0.2)


def assert_no_processes_left(token, timeout=5):
    """Polls the host's /proc for up to `timeout` seconds until no process named token is left."""
    deadline = time.monotonic() + timeout
    left = host_processes(token)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = host_processes(token)
    assert not left, (
        f"processes started by the run are still alive on the host {timeout} s after the answer: "
        f"pids {left} named {token!r}")


# --- sessions (issue 13) ------------------------------------------------------------------------
# Helpers for tests/api/test_sessions_*.py and tests/escape/test_session_*.py. Every non-2xx
# answer of a session endpoint is {"status": "Error", "output", "error": {"type", "message"}}.

def auth(key):
    """Request headers with `Authorization: Bearer key` (none for key=None)."""
    return {"Authorization": f"Bearer {key}"} if key else {}


def session_request(server, method, path, obj=None, key=None, timeout=None, conn=None, raw=None):
    """A request to a session endpoint (path relative to /api/sessions, "" for the collection);
    obj is sent as JSON, raw as it is. Returns a Reply."""
    headers = auth(key)
    body = raw
    if obj is not None:
        body = json.dumps(obj)
        headers["Content-Type"] = "application/json"
    return request(server, method, "/api/sessions" + path, body=body, headers=headers,
                   timeout=timeout, conn=conn)


def create_session(server, key=None, **fields):
    """POST /api/sessions with fields as the body; returns the session object of a 201."""
    r = session_request(server, "POST", "", fields, key=key)
    assert r.status == 201, show(r)
    assert r.json and isinstance(r.json.get("session_id"), str), show(r)
    return r.json


def session_execute(server, sid, src, key=None, http_timeout=None, conn=None, **extra):
    """POST /api/sessions/{sid}/execute with {"code": src, **extra} (so `timeout` is the cell's);
    returns the Reply."""
    obj = {"code": src}
    obj.update(extra)
    return session_request(server, "POST", f"/{sid}/execute", obj, key=key, timeout=http_timeout, conn=conn)


def cell(server, sid, src, key=None, **extra):
    """A session execute answered 200 (Success or Error); returns the body."""
    r = session_execute(server, sid, src, key=key, **extra)
    assert r.status == 200 and r.json is not None, show(r)
    return r.json


def cell_ok(server, sid, src, key=None, **extra):
    """A session execute that must succeed; returns the body."""
    body = cell(server, sid, src, key=key, **extra)
    assert body.get("status") == "Success", show(body)
    return body


def cell_json(server, sid, src, params=None, key=None, **extra):
    """A cell that must succeed and whose last stdout line is JSON; params (if given) are its
    stdin as JSON. Returns that value."""
    if params is not None:
        extra["stdin"] = json.dumps(params)
    body = cell_ok(server, sid, src, key=key, **extra)
    lines = body["stdout"].strip().splitlines()
    assert lines, show(body)
    return json.loads(lines[-1])


def delete_session(server, sid, key=None):
    return session_request(server, "DELETE", f"/{sid}", key=key, timeout=30)


def assert_session_error(reply, status, etype, reason=None):
    """reply is the error convention's answer: HTTP status, JSON with status "Error", a
    non-empty output, error.type etype (and error.reason when given). Returns the body."""
    assert reply.status == status, show(reply)
    body = reply.json
    assert isinstance(body, dict), show(reply)
    assert body.get("status") == "Error", show(reply)
    assert isinstance(body.get("output"), str) and body["output"].strip(), show(reply)
    err = body.get("error")
    assert isinstance(err, dict) and err.get("type") == etype, show(reply)
    assert isinstance(err.get("message"), str) and err["message"].strip(), show(reply)
    if reason is not None:
        assert err.get("reason") == reason, show(reply)
    if status in (409, 429, 503):
        ra = reply.headers.get("retry-after", "")
        assert ra.isdigit() and int(ra) >= 1, f"no valid Retry-After with {status}: {reply!r}"
    return body


def wait_session_state(server, sid, state, key=None, timeout=15):
    """Polls GET /api/sessions/{sid} until its state is `state`; returns the session object."""
    deadline = time.monotonic() + timeout
    while True:
        r = session_request(server, "GET", f"/{sid}", key=key, timeout=10)
        if r.status == 200 and r.json and r.json.get("state") == state:
            return r.json
        assert time.monotonic() < deadline, f"session {sid} not {state} within {timeout} s: {r!r}"
        time.sleep(0.05)
