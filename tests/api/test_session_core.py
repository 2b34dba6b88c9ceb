"""Sessions (issue 13), the implementer's focused tests: each piece of the session machinery
works as built. The comprehensive black-box suite is tests/api/test_sessions*.py.

Every test here fails on the code before sessions: /api/sessions did not exist (404 "not
found: the API is POST /api/execute"), so the first create of each test fails; the tests that
check a piece of the machinery say below what else they would catch."""
import json
import re
import signal
import threading
import time

import pytest

from conftest import BINARY, SANITIZED, Server, code, post_json, request, show
from serverproc import ServerProcess

SESSION_ENV = {"MAX_SESSIONS": "4", "MAX_SESSIONS_PER_KEY": "4", "INTERRUPT_GRACE": "1"}
ID_RE = re.compile(r"^0-[0-9a-f]{8}-[0-9a-f]{32}$")


def create(server, body=None, headers=None):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return request(server, "POST", "/api/sessions", body=json.dumps(body or {}), headers=h)


def create_ok(server, body=None, headers=None):
    r = create(server, body, headers)
    assert r.status == 201, show(r)
    return r.json["session_id"]


def cell(server, sid, src, headers=None, **extra):
    obj = {"code": src}
    obj.update(extra)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    r = request(server, "POST", f"/api/sessions/{sid}/execute", body=json.dumps(obj), headers=h)
    assert r.json is not None, show(r)
    return r.status, r.json


def cell_ok(server, sid, src, **extra):
    status, body = cell(server, sid, src, **extra)
    assert status == 200 and body["status"] == "Success", show((status, body))
    return body


def assert_error(r, status, etype, reason=None):
    assert r.status == status, show(r)
    body = r.json
    assert body["status"] == "Error" and body["output"] == body["error"]["message"], show(body)
    assert body["error"]["type"] == etype, show(body)
    if reason:
        assert body["error"]["reason"] == reason, show(body)


@pytest.fixture(scope="module")
def srv():
    from conftest import TEST_LIMITS, ready_server
    env = dict(TEST_LIMITS)
    env.update(SESSION_ENV)
    s = ready_server(env)
    yield s
    s.stop()


def test_state_kept_across_cells(srv):
    r = create(srv)
    assert r.status == 201, show(r)
    s = r.json
    assert ID_RE.match(s["session_id"]), s
    assert r.headers["location"] == "/api/sessions/" + s["session_id"]
    assert s["state"] == "idle" and s["execution_count"] == 0 and s["profile"] == "full", s
    for k in ("created_at", "last_active_at", "idle_timeout", "idle_expires_at", "max_lifetime",
              "expires_at", "memory_mb", "memory_bytes", "files_bytes"):
        assert k in s, (k, s)
    sid = s["session_id"]
    a = cell_ok(srv, sid, "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3]})\nx = 41\nprint('one')")
    assert a["stdout"] == "one\n" and a["execution_count"] == 1, show(a)
    assert a["session"] == {"session_id": sid, "reset": False}, show(a)
    b = cell_ok(srv, sid, "x + int(df.a.sum())")
    assert b["result"]["text/plain"] == "47" and b["execution_count"] == 2, show(b)
    # An error counts too, and a traceback names the cell; the next cell still has the state.
    status, c = cell(srv, sid, "def f():\n    return 1 / 0\nf()")
    assert status == 200 and c["error"]["type"] == "ZeroDivisionError", show(c)
    assert '"<cell 3>", line 2' in c["stderr"], show(c)
    d = cell_ok(srv, sid, "print(x)")
    assert d["stdout"] == "41\n" and d["execution_count"] == 4, show(d)
    # sys.exit in a cell ends the cell, not the session.
    status, e = cell(srv, sid, "import sys\nsys.exit(3)")
    assert e["exit_code"] == 3 and e["session"]["reset"] is False, show(e)
    assert cell_ok(srv, sid, "x")["result"]["text/plain"] == "41"
    g = request(srv, "GET", f"/api/sessions/{sid}")
    assert g.status == 200 and g.json["execution_count"] == 6, show(g)
    lst = request(srv, "GET", "/api/sessions")
    assert sid in [x["session_id"] for x in lst.json["sessions"]], show(lst)
    assert request(srv, "DELETE", f"/api/sessions/{sid}").status == 204
    assert_error(request(srv, "GET", f"/api/sessions/{sid}"), 410, "SessionGone", "deleted")
    assert_error(post_json(srv, {"code": "1"}, path=f"/api/sessions/{sid}/execute"), 410,
                 "SessionGone", "deleted")


def test_unknown_ids(srv):
    sid = create_ok(srv)
    node, boot, rnd = sid.split("-")
    other_boot = ("0" if boot[0] != "0" else "1") + boot[1:]
    assert_error(request(srv, "GET", f"/api/sessions/{node}-{boot}-{'0' * 32}"), 404, "SessionNotFound")
    assert_error(request(srv, "GET", f"/api/sessions/{node}-{other_boot}-{rnd}"), 410, "SessionGone",
                 "server_restarted")
    assert_error(request(srv, "GET", f"/api/sessions/7-{boot}-{rnd}"), 404, "SessionNotFound")
    assert_error(request(srv, "GET", "/api/sessions/nonsense"), 404, "SessionNotFound")
    assert request(srv, "DELETE", f"/api/sessions/{sid}").status == 204


def test_timeout_keeps_state(srv):
    sid = create_ok(srv)
    cell_ok(srv, sid, "x = 'kept'")
    status, t = cell(srv, sid, "while True:\n    pass", timeout=1)
    assert status == 200 and t["error"]["type"] == "Timeout", show(t)
    assert t["session"]["reset"] is False, show(t)
    assert cell_ok(srv, sid, "x")["result"]["text/plain"] == "'kept'"
    # A cell that ignores SIGINT is killed after INTERRUPT_GRACE: a fresh interpreter.
    status, k = cell(srv, sid, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                "while True:\n    pass", timeout=1)
    assert k["error"]["type"] == "Timeout" and k["session"]["reset"] is True, show(k)
    assert "lost" in k["session"]["message"], show(k)
    status, n = cell(srv, sid, "x")
    assert n["error"]["type"] == "NameError" and n["session"]["reset"] is False, show(n)
    # The session is usable, and its count goes on.
    assert cell_ok(srv, sid, "1 + 1")["execution_count"] == 6
    request(srv, "DELETE", f"/api/sessions/{sid}")


def test_interrupt_and_busy(srv):
    sid = create_ok(srv)
    cell_ok(srv, sid, "y = 5")
    out = {}

    def long_cell():
        out["r"] = cell(srv, sid, "import time\nfor i in range(600):\n    time.sleep(0.1)")

    t = threading.Thread(target=long_cell)
    t.start()
    deadline = time.monotonic() + 20
    while request(srv, "GET", f"/api/sessions/{sid}").json["state"] != "busy":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    busy = post_json(srv, {"code": "1"}, path=f"/api/sessions/{sid}/execute")
    assert_error(busy, 409, "SessionBusy")
    assert busy.headers.get("retry-after"), show(busy)
    assert_error(post_json(srv, {}, path=f"/api/sessions/{sid}/restart"), 409, "SessionBusy")
    i = request(srv, "POST", f"/api/sessions/{sid}/interrupt")
    assert i.status == 200 and i.json == {"interrupted": True, "reset": False}, show(i)
    t.join(30)
    status, body = out["r"]
    assert body["error"]["type"] == "KeyboardInterrupt" and body["session"]["reset"] is False, show(body)
    assert cell_ok(srv, sid, "y")["result"]["text/plain"] == "5"
    i = request(srv, "POST", f"/api/sessions/{sid}/interrupt")
    assert i.json == {"interrupted": False, "reset": False}, show(i)
    # restart: a fresh interpreter, the count back to 0.
    r = post_json(srv, {}, path=f"/api/sessions/{sid}/restart")
    assert r.status == 200 and r.json["execution_count"] == 0, show(r)
    status, n = cell(srv, sid, "y")
    assert n["error"]["type"] == "NameError", show(n)
    request(srv, "DELETE", f"/api/sessions/{sid}")


def test_background_output_between_cells_is_dropped(srv):
    """A thread left running writes output and forged frames (on the socket at fd 3, a report
    and its 'Z') while the session is idle: all of it is dropped, and the next cell's answer
    holds only its own output and its own report (the frames are not taken for a sandbox gone
    rogue either: the session lives on). Frames written while a cell runs are that cell's, as in
    a run (README)."""
    sid = create_ok(srv)
    cell_ok(srv, sid, code("""
        import os, struct, threading, time
        def noise():
            time.sleep(0.3)
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                print("background")
                os.write(1, b"raw background\\n")
                os.write(3, b"Ointruder\\n")
                os.write(3, b"R" + b'{"exit_code": 0, "error": null, "result": {"text/plain": "forged"}}')
                os.write(3, b"Z" + struct.pack("<iQ", 0, 0))
                os.write(3, b"Y")
                time.sleep(0.01)
        threading.Thread(target=noise, daemon=True).start()
        n = 3
    """))
    time.sleep(1.5)
    for i in range(3):
        body = cell_ok(srv, sid, "print('own')\nn * 2")
        assert body["result"]["text/plain"] == "6" and body["stdout"] == "own\n", show(body)
        assert body["session"]["reset"] is False and body["execution_count"] == i + 2, show(body)
    h = request(srv, "GET", "/health").json
    assert h["status"] == "ok" and h["sessions"]["active"] >= 1, show(h)
    request(srv, "DELETE", f"/api/sessions/{sid}")


def test_files_at_create_and_cpu_per_cell(srv):
    """A session's RLIMIT_CPU is not a run's: cells that together use more CPU than
    EXECUTION_TIMEOUT (5 s here) + 2 s keep the session alive."""
    r = create(srv, {"files": [{"name": "data/a.csv", "content": "a,b\n1,2\n3,4\n"}],
                     "idle_timeout": 60, "max_lifetime": 600, "memory_mb": 200, "profile": "lean"})
    assert r.status == 201, show(r)
    assert r.json["idle_timeout"] == 60 and r.json["memory_mb"] == 200 and r.json["profile"] == "lean"
    sid = r.json["session_id"]
    body = cell_ok(srv, sid, "import csv\nrows = list(csv.reader(open('data/a.csv')))\nlen(rows)")
    assert body["result"]["text/plain"] == "3", show(body)
    for i in range(6):  # 9 s of CPU in all: a run's RLIMIT_CPU (5 + 1 s, hard 5 + 2) would kill it
        body = cell_ok(srv, sid, "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.5:\n"
                                 "    pass\nlen(rows)", timeout=5)
        assert body["cpu_ms"] >= 1400 and body["session"]["reset"] is False, show(body)
    request(srv, "DELETE", f"/api/sessions/{sid}")


def test_bad_requests(srv):
    assert_error(create(srv, {"idle_timeout": 0}), 400, "BadRequest")
    assert_error(create(srv, {"memory_mb": 10 ** 9}), 400, "BadRequest")
    assert_error(create(srv, {"nope": 1}), 400, "BadRequest")
    assert_error(create(srv, {"files": [{"name": "../x", "content": ""}]}), 400, "BadRequest")
    sid = create_ok(srv)
    assert_error(post_json(srv, {"code": ""}, path=f"/api/sessions/{sid}/execute"), 400, "BadRequest")
    assert_error(post_json(srv, {"code": "1", "memory_mb": 64}, path=f"/api/sessions/{sid}/execute"), 400,
                 "BadRequest")
    r = request(srv, "PUT", f"/api/sessions/{sid}")
    assert r.status == 405 and "DELETE" in r.headers["allow"], show(r)
    request(srv, "DELETE", f"/api/sessions/{sid}")


def test_memory_limit_resets(srv):
    sid = create_ok(srv, {"memory_mb": 64})
    cell_ok(srv, sid, "z = 1")
    status, body = cell(srv, sid, "b = bytearray(300 * 1024 * 1024)\nb[::4096] = b'x' * len(b[::4096])")
    assert status == 200 and body["error"]["type"] in ("MemoryLimit", "MemoryError"), show(body)
    if body["error"]["type"] == "MemoryLimit":
        assert body["session"]["reset"] is True, show(body)
    assert cell_ok(srv, sid, "1")["session"]["reset"] is False
    request(srv, "DELETE", f"/api/sessions/{sid}")


def test_capacity_quota_expiry(start_server):
    s = start_server({"MAX_SESSIONS": "2", "MAX_SESSIONS_PER_KEY": "1", "API_KEYS": "ka,kb",
                      "MAX_CONCURRENCY": "1"})
    ka, kb = {"Authorization": "Bearer ka"}, {"Authorization": "Bearer kb"}
    a = create_ok(s, {"idle_timeout": 1}, headers=ka)
    q = create(s, {}, headers=ka)
    assert_error(q, 429, "SessionQuota")
    assert q.headers.get("retry-after"), show(q)
    # Another key does not see it.
    assert_error(request(s, "GET", f"/api/sessions/{a}", headers=kb), 404, "SessionNotFound")
    assert request(s, "GET", "/api/sessions", headers=kb).json == {"sessions": []}
    b = create_ok(s, {"max_lifetime": 2}, headers=kb)
    # At capacity, nobody idle for a minute: 503.
    c = create(s, {}, headers={"Authorization": "Bearer ka"})
    assert c.status in (429, 503), show(c)
    # A session cell does not take /api/execute's one slot (MAX_CONCURRENCY=1).
    out = {}
    t = threading.Thread(target=lambda: out.update(r=cell(s, b, "import time\ntime.sleep(1.5)", headers=kb)))
    t.start()
    time.sleep(0.3)
    r = request(s, "POST", "/api/execute", body=json.dumps({"code": "print(1)"}),
                headers={"Content-Type": "application/json", **ka})
    assert r.status == 200 and r.json["stdout"] == "1\n", show(r)
    t.join(30)
    time.sleep(2.5)
    assert_error(request(s, "GET", f"/api/sessions/{a}", headers=ka), 410, "SessionGone", "idle_timeout")
    assert_error(request(s, "GET", f"/api/sessions/{b}", headers=kb), 410, "SessionGone", "max_lifetime")
    m = request(s, "GET", "/metrics", headers=ka).body.decode()
    assert 'snakebox_sessions_ended_total{reason="idle_timeout"} 1' in m
    assert "snakebox_sessions_created_total 2" in m
    h = request(s, "GET", "/health").json
    assert h["sessions"] == {"active": 0, "busy": 0, "max": 2}, show(h)


def test_a_cell_that_ignored_sigint_does_not_disarm_the_next_one(srv):
    """A cell that sets SIGINT to SIG_IGN and ends: the next cell's timeout still interrupts it
    with the state kept, since the runner sets SIGINT's handler itself before each cell. Without
    that (seen by disabling it), the next cell ignored the SIGINT and the session was reset."""
    sid = create_ok(srv)
    cell_ok(srv, sid, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nkept = 7")
    status, t = cell(srv, sid, "while True:\n    pass", timeout=1)
    assert t["error"]["type"] == "Timeout" and t["session"]["reset"] is False, show(t)
    assert cell_ok(srv, sid, "kept")["result"]["text/plain"] == "7"
    request(srv, "DELETE", f"/api/sessions/{sid}")


def test_sessions_disabled(start_server):
    s = start_server({"MAX_SESSIONS": "0"})
    assert_error(create(s), 404, "SessionsDisabled")
    assert_error(request(s, "GET", "/api/sessions/0-00000000-" + "0" * 32), 404, "SessionsDisabled")


class IgnoringSigint(Server):
    """A server started as a non-interactive shell's `snakebox serve &` starts it: SIGINT
    ignored, inherited by the zygote and every sandbox."""

    def __init__(self, env):
        ServerProcess.__init__(self, BINARY, env, prefix="snakebox-test-",
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        self.timeout_sec = 5
        import conftest
        conftest._live_servers.append(self)


def test_interrupt_with_sigint_ignored_by_the_server(start_server):
    """Python installs its KeyboardInterrupt handler only if SIGINT is not ignored at start: a
    server started with SIGINT ignored must still interrupt cells. (The zygote is spawned with
    every signal at its default, POSIX_SPAWN_SETSIGDEF, so this holds even without the runner's
    own handler; the test guards the whole chain. The runner's handler is what
    test_a_cell_that_ignored_sigint_does_not_disarm_the_next_one needs.)"""
    from conftest import TEST_LIMITS
    env = dict(TEST_LIMITS)
    env.update(SESSION_ENV)
    s = IgnoringSigint(env)
    try:
        s.wait_ready()
        sid = create_ok(s)
        cell_ok(s, sid, "v = 9")
        status, t = cell(s, sid, "while True:\n    pass", timeout=1)
        assert t["error"]["type"] == "Timeout" and t["session"]["reset"] is False, show(t)
        assert cell_ok(s, sid, "v")["result"]["text/plain"] == "9"
    finally:
        s.stop()


def test_delete_and_shutdown_leave_nothing(start_server):
    """DELETE kills the session's processes (a daemon it started included) and removes its
    cgroup; SIGTERM lets a busy cell finish within SHUTDOWN_GRACE, answers it, then ends every
    session: no process, cgroup or runtime directory is left."""
    from conftest import (MARK_PRELUDE, assert_no_processes_left, cgroup_dirs, host_processes,
                          new_token, runtime_dir, sandbox_cgroups)
    s = start_server(SESSION_ENV)
    tok1, tok2 = new_token(), new_token()
    daemon = MARK_PRELUDE + code("""
        import os, time
        if os.fork() == 0:
            mark(TOKEN)
            while True:
                time.sleep(1)
    """)
    a = create_ok(s)
    cell_ok(s, a, daemon.replace("TOKEN", repr(tok1)))
    b = create_ok(s)
    cell_ok(s, b, daemon.replace("TOKEN", repr(tok2)))
    deadline = time.monotonic() + 10
    while not (host_processes(tok1) and host_processes(tok2)):
        assert time.monotonic() < deadline, "the daemons did not start"
        time.sleep(0.1)
    assert request(s, "DELETE", f"/api/sessions/{a}").status == 204
    assert_no_processes_left(tok1)
    assert host_processes(tok2), "deleting one session must not touch another"
    # One sb-* cgroup per live sandbox: the pool's, and the one session left.
    deadline = time.monotonic() + 20
    while True:
        h = request(s, "GET", "/health").json
        live = sum(h["pool"][k] for k in ("ready", "busy", "starting")) + h["sessions"]["active"]
        counts = sandbox_cgroups(s.pid)
        if h["sessions"]["active"] == 1 and all(n == live for n in counts.values()):
            break
        assert time.monotonic() < deadline, (counts, h)
        time.sleep(0.2)
    out = {}
    t = threading.Thread(target=lambda: out.update(r=cell(s, b, "import time\ntime.sleep(1)\n'done'")))
    t.start()
    time.sleep(0.4)
    pid = s.pid
    s.proc.send_signal(signal.SIGTERM)
    t.join(30)
    status, body = out["r"]
    assert status == 200 and body["result"]["text/plain"] == "'done'", show(body)
    s.wait_exit(30)
    assert_no_processes_left(tok2)
    assert cgroup_dirs(pid) == [] and not runtime_dir(pid).exists()


def raw(server, method, path, body=None):
    h = {"Content-Type": "application/octet-stream"} if body is not None else {}
    return request(server, method, path, body=body, headers=h)


def test_files_api(srv):
    """Files of a session's /work: PUT (201 new, 204 replaced), list, GET (raw bytes, an
    attachment, never through a symlink, regular files only: the runner passes the open file to
    the server, which checks it is a regular file of the sandbox's tmpfs), DELETE; names are
    checked as uploads are; a file operation while a cell runs is 409."""
    sid = create_ok(srv)
    base = f"/api/sessions/{sid}/files"
    assert raw(srv, "PUT", base + "/data/in.bin", b"\x00\x01binary\xff").status == 201
    assert raw(srv, "PUT", base + "/data/in.bin", b"\x00\x01binary\xff!").status == 204
    body = cell_ok(srv, sid, code("""
        import os
        data = open("data/in.bin", "rb").read()
        open("out.txt", "w").write("result %d" % len(data))
        os.symlink("/etc/passwd", "passwd")
        os.symlink("/tmp", "tmplink")
        open("/tmp/secret", "w").write("not in /work")
        os.mkfifo("fifo")
        os.mkdir("adir")
        len(data)
    """))
    assert body["result"]["text/plain"] == "10", show(body)
    lst = request(srv, "GET", base)
    assert lst.status == 200, show(lst)
    names = [f["name"] for f in lst.json["files"]]
    assert names == ["data/in.bin", "out.txt"], show(lst)
    assert all(isinstance(f["size"], int) and isinstance(f["mtime"], str) for f in lst.json["files"])
    g = raw(srv, "GET", base + "/out.txt")
    assert g.status == 200 and g.body == b"result 10", show(g)
    assert g.headers["content-type"] == "application/octet-stream"
    assert g.headers["content-disposition"] == 'attachment; filename="out.txt"'
    assert g.headers["x-content-type-options"] == "nosniff"
    assert raw(srv, "GET", base + "/data/in.bin").body == b"\x00\x01binary\xff!"
    for name in ("passwd", "tmplink/secret", "fifo", "adir", "missing"):
        assert_error(raw(srv, "GET", base + "/" + name), 404, "FileNotFound")
    # PUT through a symlinked directory does not write outside /work.
    r = raw(srv, "PUT", base + "/tmplink/secret", b"overwritten")
    assert r.status >= 400, show(r)
    assert cell_ok(srv, sid, "open('/tmp/secret').read()")["result"]["text/plain"] == "'not in /work'"
    assert_error(raw(srv, "GET", base + "/.%2E/etc/passwd"), 400, "BadRequest")
    assert raw(srv, "DELETE", base + "/out.txt").status == 204
    assert_error(raw(srv, "DELETE", base + "/out.txt"), 404, "FileNotFound")
    # Too large for one PUT: MAX_FILES_BYTES (8 MiB by default).
    big = raw(srv, "PUT", base + "/big", b"x" * (8 * 1024 * 1024 + 1))
    assert big.status == 413 and big.json["error"]["type"] == "TooLarge", show(big)
    # Busy: 409.
    t = threading.Thread(target=lambda: cell(srv, sid, "import time\ntime.sleep(1.5)"))
    t.start()
    deadline = time.monotonic() + 20
    while request(srv, "GET", f"/api/sessions/{sid}").json["state"] != "busy":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert_error(raw(srv, "GET", base + "/data/in.bin"), 409, "SessionBusy")
    assert_error(raw(srv, "PUT", base + "/x", b"1"), 409, "SessionBusy")
    t.join(30)
    # Files do not count as cells.
    assert request(srv, "GET", f"/api/sessions/{sid}").json["execution_count"] == 3
    request(srv, "DELETE", f"/api/sessions/{sid}")


def test_answers_match_the_openapi_document(srv):
    """Each kind of session answer validates against docs/openapi.json (closed schemas: a field
    the document does not describe fails)."""
    from conftest import ROOT
    from test_openapi import check
    doc = json.loads((ROOT / "docs" / "openapi.json").read_text())

    def schema(path, method, status, media="application/json"):
        return doc["paths"][path][method]["responses"][str(status)]["content"][media]["schema"]

    def valid(r, path, method):
        errors = check(doc, schema(path, method, r.status), r.json)
        assert not errors, (errors, show(r))

    r = create(srv, {"files": [{"name": "a.txt", "content": "x"}]})
    valid(r, "/api/sessions", "post")
    sid = r.json["session_id"]
    one = "/api/sessions/{id}"
    valid(request(srv, "GET", f"/api/sessions/{sid}"), one, "get")
    valid(request(srv, "GET", "/api/sessions"), "/api/sessions", "get")
    valid(post_json(srv, {"code": "import matplotlib.pyplot as plt\nplt.plot([1, 2])\n1",
                          "return_files": True}, path=f"/api/sessions/{sid}/execute"), one + "/execute", "post")
    valid(post_json(srv, {"code": "while True: pass", "timeout": 1}, path=f"/api/sessions/{sid}/execute"),
          one + "/execute", "post")
    valid(request(srv, "POST", f"/api/sessions/{sid}/interrupt"), one + "/interrupt", "post")
    valid(request(srv, "GET", f"/api/sessions/{sid}/files"), one + "/files", "get")
    valid(raw(srv, "GET", f"/api/sessions/{sid}/files/nope"), one + "/files/{path}", "get")
    valid(post_json(srv, {}, path=f"/api/sessions/{sid}/restart"), one + "/restart", "post")
    valid(create(srv, {"bad": 1}), "/api/sessions", "post")
    assert request(srv, "DELETE", f"/api/sessions/{sid}").status == 204
    valid(request(srv, "GET", f"/api/sessions/{sid}"), one, "get")
    valid(request(srv, "GET", "/health"), "/health", "get")


def test_cpu_and_memory_figures_are_per_cell(srv):
    """cpu_ms and memory_peak_bytes are the cell's: a cell after one that burnt CPU and touched
    150 MB (then freed it) reports neither (the sandbox's lifetime counters would)."""
    sid = create_ok(srv)
    big = cell_ok(srv, sid, code("""
        import time
        b = bytearray(150 * 1024 * 1024)
        b[::4096] = b"x" * len(b[::4096])
        del b
        t = time.process_time()
        while time.process_time() - t < 0.5:
            pass
    """))
    small = cell_ok(srv, sid, "x = 1")
    assert big["cpu_ms"] >= 400 and small["cpu_ms"] < 300, show((big, small))
    # All 150 MB, though they were held for less than the 100 ms between two samples of the
    # watchdog's that measures memory without a cgroup: the runner's own peak RSS counts too.
    assert big["memory_peak_bytes"] >= 150 * 1024 * 1024, show(big)
    # A sanitizer build's allocator keeps freed memory (its quarantine): the next cell holds it.
    if not SANITIZED:
        assert small["memory_peak_bytes"] < big["memory_peak_bytes"] - 80 * 1024 * 1024, show((big, small))
    request(srv, "DELETE", f"/api/sessions/{sid}")


def test_client_gone_interrupts_and_timeout_clamped_to_lifetime(srv):
    """A client that disconnects during a cell interrupts it (the variables stay); a cell's
    timeout never runs past the session's max_lifetime, which ends the session between cells."""
    import socket
    sid = create_ok(srv, {"max_lifetime": 4})
    cell_ok(srv, sid, "w = 'still here'")
    body = json.dumps({"code": "while True:\n    pass"}).encode()
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"POST /api/sessions/%s/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % (sid.encode(), len(body)) + body)
    deadline = time.monotonic() + 20
    while request(srv, "GET", f"/api/sessions/{sid}").json["state"] != "busy":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    s.close()
    while request(srv, "GET", f"/api/sessions/{sid}").json["state"] != "idle":
        assert time.monotonic() < deadline, "the cell was not interrupted"
        time.sleep(0.05)
    assert cell_ok(srv, sid, "w")["result"]["text/plain"] == "'still here'"
    status, t = cell(srv, sid, "import time\ntime.sleep(30)", timeout=5)
    assert t["error"]["type"] == "Timeout" and t["duration_ms"] < 4500, show(t)
    time.sleep(1)
    assert_error(request(srv, "GET", f"/api/sessions/{sid}"), 410, "SessionGone", "max_lifetime")


def test_session_tmpfs_is_session_files_mb(start_server):
    """A session's tmpfs is SESSION_FILES_MB, not a run's TMP_SIZE_MB: a PUT that does not fit
    is 413 TooLarge, a cell that writes past it gets ENOSPC, and the session lives on."""
    s = start_server({"SESSION_FILES_MB": "4", "TMP_SIZE_MB": "16"})
    sid = create_ok(s)
    base = f"/api/sessions/{sid}/files"
    assert raw(s, "PUT", base + "/a.bin", b"a" * (3 * 1024 * 1024)).status == 201
    r = raw(s, "PUT", base + "/b.bin", b"b" * (2 * 1024 * 1024))
    assert r.status == 413 and r.json["error"]["type"] == "TooLarge", show(r)
    status, body = cell(s, sid, "open('c.bin', 'wb').write(b'c' * (2 * 1024 * 1024))")
    assert body["error"]["type"] == "OSError" and "No space left" in body["error"]["message"], show(body)
    assert cell_ok(s, sid, "import os\nos.path.getsize('a.bin')")["result"]["text/plain"] == str(3 * 1024 * 1024)
    files = request(s, "GET", f"/api/sessions/{sid}").json["files_bytes"]
    assert 3 * 1024 * 1024 <= files <= 4 * 1024 * 1024, files


def test_restart_keeping_files(srv):
    """A restart with keep_files carries /work's regular files (nested, their modes) into the
    fresh interpreter, and not the variables, symlinks or special files; a restart without it
    starts empty. Failed before: keep_files true was a 400 "not supported yet"."""
    sid = create_ok(srv)
    cell_ok(srv, sid, code("""
        import os
        os.makedirs("d/e")
        open("d/e/data.csv", "w").write("a,b\\n1,2\\n")
        open("run.sh", "w").write("echo hi")
        os.chmod("run.sh", 0o750)
        os.symlink("/etc/passwd", "link")
        os.mkfifo("fifo")
        x = 41
    """))
    r = request(srv, "POST", f"/api/sessions/{sid}/restart", body=json.dumps({"keep_files": True}),
                headers={"Content-Type": "application/json"})
    assert r.status == 200 and r.json["execution_count"] == 0, show(r)
    body = cell_ok(srv, sid, code("""
        import os, stat
        print(open("d/e/data.csv").read(), end="")
        print(oct(stat.S_IMODE(os.stat("run.sh").st_mode)))
        print(sorted(os.listdir(".")), "x" in globals())
    """))
    assert body["stdout"] == "a,b\n1,2\n0o750\n['d', 'run.sh'] False\n", show(body)
    r = request(srv, "POST", f"/api/sessions/{sid}/restart", body=json.dumps({"keep_files": False}),
                headers={"Content-Type": "application/json"})
    assert r.status == 200, show(r)
    assert cell_ok(srv, sid, "import os\nprint(os.listdir('.'))")["stdout"] == "[]\n"
    assert request(srv, "DELETE", f"/api/sessions/{sid}").status == 204


def test_capacity_evicts_the_least_recently_active_idle_session(start_server):
    """At MAX_SESSIONS a create evicts the least recently active session idle for a minute
    (410 evicted afterwards), and only such a one: one idle for less is kept. Waits a minute:
    the spec fixes the threshold. Failed before sessions: the first create was a 404."""
    s = start_server({"MAX_SESSIONS": "2"})
    old = create_ok(s)
    cell_ok(s, old, "x = 1")
    time.sleep(45)
    young = create_ok(s)  # idle for less than a minute when the third create comes
    time.sleep(16)
    third = create(s)
    assert third.status == 201, show(third)
    assert_error(request(s, "GET", f"/api/sessions/{old}"), 410, "SessionGone", "evicted")
    assert cell_ok(s, young, "print(2)")["stdout"] == "2\n"
    # Now both are active within the minute: nobody to evict.
    assert_error(create(s), 503, "SessionCapacity")
    m = request(s, "GET", "/metrics").body.decode()
    assert 'snakebox_sessions_ended_total{reason="evicted"} 1' in m, m
