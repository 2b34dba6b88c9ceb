"""Sessions (issue 13), the notebook part: a session is created (201 + Location, the session
object), listed and read; its cells share one `__main__`; each cell has its own stdout/stderr,
figures, last-expression `result` and `return_files`; /work and /tmp persist; execution_count
counts every execute, errors included; cpu_ms and memory_peak_bytes are per cell, and CPU time is
limited per cell, not over the session's life; a background thread keeps running between cells;
one execution at a time (409 SessionBusy + Retry-After); sessions never take concurrency from
/api/execute; /health, /metrics and /openapi.json know about them.

Every test here fails against a server without sessions: the create is a 404 there."""

import base64
import datetime
import json
import re
import threading
import time

import pytest

from conftest import (SANITIZED, TEST_LIMITS, assert_session_error, cell, cell_json, cell_ok, code, create_session,
                      delete_session, request, run, session_execute, session_request, show,
                      wait_session_state)



@pytest.fixture
def cells_server(server):
    """The shared test server, sessions at their defaults (MAX_SESSIONS 8): every test here
    deletes the sessions it made."""
    return server


OBJECT_FIELDS = ("session_id", "state", "profile", "created_at", "last_active_at", "idle_timeout",
                 "idle_expires_at", "max_lifetime", "expires_at", "execution_count", "memory_mb",
                 "memory_bytes", "files_bytes")
ID_RE = re.compile(r"^([0-9A-Za-z]+)-([0-9A-Za-z]+)-([0-9A-Za-z_-]+)$")


@pytest.fixture
def sid(cells_server):
    """A fresh session, deleted after the test."""
    s = create_session(cells_server, idle_timeout=120, max_lifetime=600)
    yield s["session_id"]
    delete_session(cells_server, s["session_id"])


def assert_session_object(obj):
    assert isinstance(obj, dict), show(obj)
    missing = [f for f in OBJECT_FIELDS if f not in obj]
    assert not missing, f"the session object lacks {missing}: {show(obj)}"
    assert obj["state"] in ("starting", "idle", "busy"), show(obj)
    assert obj["profile"] in ("full", "lean"), show(obj)
    for f in ("idle_timeout", "max_lifetime", "execution_count", "memory_mb", "memory_bytes", "files_bytes"):
        assert isinstance(obj[f], int) and not isinstance(obj[f], bool) and obj[f] >= 0, show(obj)


# --- create, read, list -------------------------------------------------------------------------

def test_create_answers_201_with_location_and_the_session_object(cells_server):
    r = session_request(cells_server, "POST", "", {"idle_timeout": 77, "max_lifetime": 555})
    assert r.status == 201, show(r)
    obj = r.json
    assert_session_object(obj)
    sid = obj["session_id"]
    try:
        assert r.headers.get("location", "").endswith(f"/api/sessions/{sid}"), show(r)
        assert obj["idle_timeout"] == 77 and obj["max_lifetime"] == 555, show(obj)
        assert obj["execution_count"] == 0, show(obj)
        assert obj["profile"] == "full", show(obj)
        # An id is <node>-<boot>-<random>: node 0 by default, >= 128 random bits.
        m = ID_RE.match(sid)
        assert m, f"session id {sid!r} is not <node>-<boot>-<random>"
        assert m.group(1) == "0", f"NODE_ID defaults to 0: {sid!r}"
        assert len(m.group(3)) >= 22, f"the random part of {sid!r} holds fewer than 128 bits"
        other = create_session(cells_server)["session_id"]
        try:
            m2 = ID_RE.match(other)
            assert m2 and m2.group(1, 2) == m.group(1, 2), f"same server, same node and boot: {sid} {other}"
            assert m2.group(3) != m.group(3), (sid, other)
        finally:
            delete_session(cells_server, other)
        got = session_request(cells_server, "GET", f"/{sid}")
        assert got.status == 200, show(got)
        assert_session_object(got.json)
        assert got.json["session_id"] == sid and got.json["state"] == "idle", show(got)
        listed = session_request(cells_server, "GET", "")
        assert listed.status == 200 and isinstance(listed.json.get("sessions"), list), show(listed)
        assert sid in [s.get("session_id") for s in listed.json["sessions"]], show(listed)
    finally:
        delete_session(cells_server, sid)


def test_lean_profile_starts_with_only_the_standard_library(cells_server):
    obj = create_session(cells_server, profile="lean")
    try:
        assert obj["profile"] == "lean", show(obj)
        body = cell_ok(cells_server, obj["session_id"], "import sys\nprint('pandas' in sys.modules)")
        assert body["stdout"] == "False\n", f"a lean session starts with pandas imported: {show(body)}"
        full = create_session(cells_server)["session_id"]
        try:
            body = cell_ok(cells_server, full, "import sys\nprint('pandas' in sys.modules)")
            assert body["stdout"] == "True\n", f"a full session starts without pandas: {show(body)}"
        finally:
            delete_session(cells_server, full)
    finally:
        delete_session(cells_server, obj["session_id"])


@pytest.mark.parametrize("body", [
    {"idle_timeout": "60"}, {"idle_timeout": -1}, {"max_lifetime": "1h"}, {"profile": "fat"},
    {"memory_mb": "x"}, {"unknown_field": 1}, [], "not an object",
])
def test_bad_create_bodies_are_400(cells_server, body):
    r = session_request(cells_server, "POST", "", body)
    assert_session_error(r, 400, "BadRequest")


def test_create_with_bad_json_is_400(cells_server):
    r = request(cells_server, "POST", "/api/sessions", body=b"{not json",
                headers={"Content-Type": "application/json"})
    assert_session_error(r, 400, "BadRequest")


def seconds(stamp):
    """A timestamp of the session object (ISO 8601 text, or a number of seconds) in seconds."""
    if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
        return float(stamp)
    assert isinstance(stamp, str), stamp
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_get_does_not_extend_the_idle_life(cells_server):
    sid = create_session(cells_server, idle_timeout=60)["session_id"]
    try:
        obj = wait_session_state(cells_server, sid, "idle")
        time.sleep(1.2)
        got = session_request(cells_server, "GET", f"/{sid}").json
        # Equal but for the clock's rounding (a wall time derived from a monotonic one).
        for f in ("last_active_at", "idle_expires_at"):
            assert abs(seconds(got[f]) - seconds(obj[f])) < 0.1, f"a GET moved {f}: {show([obj, got])}"
        cell_ok(cells_server, sid, "pass")
        after = session_request(cells_server, "GET", f"/{sid}").json
        assert seconds(after["idle_expires_at"]) - seconds(obj["idle_expires_at"]) >= 1, show([obj, after])
        assert after["execution_count"] == 1, show(after)
    finally:
        delete_session(cells_server, sid)


# --- cells --------------------------------------------------------------------------------------

def test_cells_share_main_and_each_answer_has_its_own_output(cells_server, sid):
    a = cell_ok(cells_server, sid, code('''
        import sys
        x = 41
        def f(y):
            return x + y
        class K:
            pass
        print("out-1")
        print("err-1", file=sys.stderr)
    '''))
    assert a["stdout"] == "out-1\n" and a["stderr"] == "err-1\n", show(a)
    assert a["execution_count"] == 1, show(a)
    assert a["session"]["session_id"] == sid and a["session"]["reset"] is False, show(a)
    for f in ("output", "exit_code", "duration_ms", "cpu_ms", "memory_peak_bytes", "truncated", "error"):
        assert f in a, f"the cell answer lacks today's field {f}: {show(a)}"
    b = cell_ok(cells_server, sid, code('''
        print("out-2", f(1), K.__module__, __name__)
    '''))
    assert b["stdout"] == "out-2 42 __main__ __main__\n" and b["stderr"] == "", show(b)
    assert b["execution_count"] == 2, show(b)


def test_last_expression_is_the_cells_result(cells_server, sid):
    cell_ok(cells_server, sid, "import pandas as pd\ndf = pd.DataFrame({'x': [1, 2]})")
    a = cell_ok(cells_server, sid, "df['x'].sum() * 10")
    assert a["result"]["text/plain"] == "30", show(a)
    b = cell_ok(cells_server, sid, "df")
    assert "text/html" in b["result"] and "<table" in b["result"]["text/html"], show(b)
    c = cell_ok(cells_server, sid, "y = 1")
    assert c.get("result") is None, show(c)


def test_execution_count_counts_errors_too(cells_server, sid):
    assert cell_ok(cells_server, sid, "a = 1")["execution_count"] == 1
    e = cell(cells_server, sid, "a = 1 / 0")
    assert e["status"] == "Error" and e["error"]["type"] == "ZeroDivisionError", show(e)
    assert e["execution_count"] == 2 and e["session"]["reset"] is False, show(e)
    s = cell(cells_server, sid, "def broken(:\n    pass")
    assert s["status"] == "Error" and s["error"]["type"] == "SyntaxError", show(s)
    assert s["execution_count"] == 3, show(s)
    ok = cell_ok(cells_server, sid, "a")
    assert ok["execution_count"] == 4 and ok["result"]["text/plain"] == "1", show(ok)
    obj = session_request(cells_server, "GET", f"/{sid}").json
    assert obj["execution_count"] == 4, show(obj)


def test_an_exception_keeps_the_state_made_before_it(cells_server, sid):
    e = cell(cells_server, sid, "before = 'kept'\nraise ValueError('boom')\nafter = 1")
    assert e["status"] == "Error" and e["error"]["type"] == "ValueError", show(e)
    assert "boom" in e["error"]["message"], show(e)
    ok = cell_ok(cells_server, sid, "print(before, 'after' in globals())")
    assert ok["stdout"] == "kept False\n", show(ok)


def test_figures_are_per_cell(cells_server, sid):
    a = cell_ok(cells_server, sid, code('''
        import matplotlib.pyplot as plt
        plt.plot([1, 2, 3])
        plt.figure()
        plt.bar(["a", "b"], [3, 5])
    '''))
    assert len(a.get("images") or []) == 2, show({k: v for k, v in a.items() if k != "images"})
    png = base64.b64decode(a["images"][0]["data"])
    assert png.startswith(b"\x89PNG"), png[:16]
    # Rendered and closed at the end of their cell: the next cell starts with no figure.
    b = cell_ok(cells_server, sid, "print(len(plt.get_fignums()))")
    assert b["stdout"] == "0\n" and not b.get("images"), show(b)
    c = cell_ok(cells_server, sid, "plt.plot([3, 1])\nplt.show()", image_format="svg")
    assert len(c["images"]) == 1 and c["images"][0]["format"] == "svg", show(c)


def test_work_and_tmp_persist_and_return_files_are_per_cell(cells_server, sid):
    cell_ok(cells_server, sid, code('''
        import os
        open("a.csv", "w").write("x\\n1\\n")
        open("/tmp/t.txt", "w").write("tmp")
        print(os.getcwd())
    '''), files=[{"name": "up.txt", "content": "uploaded"}])
    b = cell_ok(cells_server, sid, code('''
        open("b.csv", "w").write("y\\n2\\n")
        print(open("a.csv").read() + open("/tmp/t.txt").read() + open("up.txt").read())
    '''), return_files=True)
    assert b["stdout"] == "x\n1\ntmpuploaded\n", show(b)
    names = [f["name"] for f in b.get("files") or []]
    # return_files=true reports what this cell created or changed, not the session's older files.
    assert names == ["b.csv"], show(b)
    c = cell_ok(cells_server, sid, "print(1)")
    assert not c.get("files"), show(c)


def test_stdin_is_per_cell(cells_server, sid):
    a = cell_ok(cells_server, sid, "name = input()\nprint('hello', name)", stdin="Ada\n")
    assert a["stdout"] == "hello Ada\n", show(a)
    b = cell_ok(cells_server, sid, "import sys\nprint(repr(sys.stdin.read()), name)")
    assert b["stdout"] == "'' Ada\n", show(b)


def test_timeout_above_the_servers_limit_is_400(cells_server, sid):
    limit = int(TEST_LIMITS["EXECUTION_TIMEOUT"])
    r = session_execute(cells_server, sid, "print(1)", timeout=limit + 1)
    assert_session_error(r, 400, "BadRequest")
    r = session_execute(cells_server, sid, "print(1)", bogus=1)
    assert_session_error(r, 400, "BadRequest")


def test_cpu_and_memory_peak_are_per_cell(cells_server, sid):
    heavy = cell_ok(cells_server, sid, code('''
        import time
        big = b"x" * (120 << 20)
        time.sleep(0.5)  # held long enough for a server that samples memory (no memory cgroup)
        del big
        end = time.process_time() + 0.6
        while time.process_time() < end:
            pass
    '''))
    light = cell_ok(cells_server, sid, "pass")
    assert heavy["memory_peak_bytes"] >= 120 << 20, show(heavy)
    if not SANITIZED:
        # Under ASan a freed block stays in its quarantine (256 MiB), held by the process: the
        # light cell starts, and peaks, with it still charged.
        assert light["memory_peak_bytes"] < heavy["memory_peak_bytes"] - (80 << 20), show([heavy, light])
    assert heavy["cpu_ms"] >= 400, show(heavy)
    assert light["cpu_ms"] < 300, f"cpu_ms is not per cell: {show([heavy, light])}"


def test_cpu_time_is_limited_per_cell_not_over_the_session(cells_server, sid):
    """Four cells of 1.6 s of CPU each: more than EXECUTION_TIMEOUT (5 s) in all, which an
    RLIMIT_CPU set once for the session would end."""
    for i in range(4):
        body = cell(cells_server, sid, code('''
            import time
            end = time.process_time() + 1.6
            while time.process_time() < end:
                pass
            print("cell done")
        '''))
        assert body["status"] == "Success" and body["stdout"] == "cell done\n", show((i, body))
        assert body["session"]["reset"] is False, show(body)


def test_background_thread_keeps_running_between_cells(cells_server, sid):
    cell_ok(cells_server, sid, code('''
        import threading, time
        ticks = []
        stop = threading.Event()
        def tick():
            while not stop.wait(0.05):
                ticks.append(1)
        th = threading.Thread(target=tick, daemon=True)
        th.start()
    '''))
    time.sleep(0.8)
    n = cell_json(cells_server, sid, "import json\nprint(json.dumps([len(ticks), th.is_alive()]))")
    assert n[1] is True and n[0] >= 5, f"the thread did not run between cells: {n}"
    cell_ok(cells_server, sid, "stop.set(); th.join(5)")


def test_background_output_between_cells_is_dropped(cells_server, sid):
    """README ("Between cells"): what a thread writes while no cell runs is read and dropped; it
    reaches no answer. The chatter ends 0.3 s before the next cell starts."""
    cell_ok(cells_server, sid, code('''
        import sys, threading, time
        def chatter():
            for i in range(20):
                print("bg-out", i, flush=True)
                print("bg-err", i, file=sys.stderr, flush=True)
                time.sleep(0.05)
        chatter_thread = threading.Thread(target=chatter, daemon=True)
        chatter_thread.start()
    '''))
    time.sleep(1.3)
    body = cell_ok(cells_server, sid, "print('fg', chatter_thread.is_alive())")
    assert body["stdout"] == "fg False\n" and body["stderr"] == "", show(body)
    assert body["execution_count"] == 2, show(body)
    status, hello = run(cells_server, "print('ok')")
    assert status == 200 and hello["stdout"] == "ok\n", show(hello)


def test_background_output_while_a_cell_runs_is_that_cells(cells_server, sid):
    """README ("Between cells"): what a thread writes while a cell runs is part of that cell's
    output; what it wrote before the cell is not. Each line carries the time it was written."""
    cell_ok(cells_server, sid, code('''
        import threading, time
        def ticker():
            end = time.time() + 4
            while time.time() < end:
                print("tick %.3f" % time.time(), flush=True)
                time.sleep(0.05)
        threading.Thread(target=ticker, daemon=True).start()
    '''))
    time.sleep(1.0)
    body = cell_ok(cells_server, sid, "import time\ncell_start = time.time()\ntime.sleep(0.8)\nprint('end', cell_start)")
    lines = body["stdout"].splitlines()
    assert lines and lines[-1].startswith("end "), show(body)
    start = float(lines[-1].split()[1])
    ticks = [float(l.split()[1]) for l in lines if l.startswith("tick ")]
    assert len(ticks) >= 5, f"the thread's output during the cell is not in its answer: {show(body)}"
    early = [t for t in ticks if t < start - 0.3]
    assert not early, f"output written before the cell (dropped by design) is in its answer: {early} < {start}"


# --- one execution at a time ---------------------------------------------------------------------

def start_cell_in_thread(server, sid, src, **extra):
    """Sends a cell from a thread; returns (thread, results list) once the session is busy."""
    results = []

    def go():
        results.append(session_execute(server, sid, src, http_timeout=60, **extra))

    t = threading.Thread(target=go)
    t.start()
    wait_session_state(server, sid, "busy")
    return t, results


def test_busy_session_answers_409_to_execute_restart_and_file_write(cells_server, sid):
    cell_ok(cells_server, sid, "x = 1")
    t, results = start_cell_in_thread(cells_server, sid, "import time\ntime.sleep(2.5)\nprint('slow done')")
    try:
        assert_session_error(session_execute(cells_server, sid, "print('second')"), 409, "SessionBusy")
        assert_session_error(session_request(cells_server, "POST", f"/{sid}/restart", {}), 409, "SessionBusy")
        assert_session_error(session_request(cells_server, "PUT", f"/{sid}/files/w.txt", raw=b"data"),
                             409, "SessionBusy")
        got = session_request(cells_server, "GET", f"/{sid}")
        assert got.status == 200 and got.json["state"] == "busy", show(got)
    finally:
        t.join(timeout=30)
    assert results and results[0].status == 200, show(results)
    assert results[0].json["stdout"] == "slow done\n", show(results[0])
    # Nothing was queued: the refused cell never ran.
    after = cell_ok(cells_server, sid, "x")
    assert after["execution_count"] == 3, show(after)
    ls = session_request(cells_server, "GET", f"/{sid}/files")
    assert "w.txt" not in [f["name"] for f in ls.json["files"]], show(ls)


# --- /health, /metrics, /openapi.json ------------------------------------------------------------

def test_health_has_a_sessions_block(cells_server, sid):
    h = request(cells_server, "GET", "/health").json
    block = h.get("sessions")
    assert isinstance(block, dict), show(h)
    assert block.get("max") == 8 and block.get("active", 0) >= 1, show(block)
    t, _ = start_cell_in_thread(cells_server, sid, "import time\ntime.sleep(1.5)")
    try:
        busy = request(cells_server, "GET", "/health").json["sessions"]
        assert busy.get("busy", 0) >= 1, show(busy)
    finally:
        t.join(timeout=30)


def metric_sum(text, name_re, label_re=""):
    """Sum of the samples whose name matches name_re and whose labels match label_re."""
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([0-9.eE+-]+|NaN|[+-]Inf)", line)
        if m and re.search(name_re, m.group(1)) and re.search(label_re, m.group(2) or ""):
            found = True
            total += float(m.group(3))
    return total if found else None


def test_metrics_count_sessions(cells_server):
    before = request(cells_server, "GET", "/metrics").body.decode()
    obj = create_session(cells_server)
    cell_ok(cells_server, obj["session_id"], "pass")
    active = metric_sum(request(cells_server, "GET", "/metrics").body.decode(), r"session.*active")
    assert active is not None and active >= 1, "no active-sessions gauge in /metrics"
    assert delete_session(cells_server, obj["session_id"]).status == 204
    after = request(cells_server, "GET", "/metrics").body.decode()
    created = (metric_sum(after, r"session.*created"), metric_sum(before, r"session.*created") or 0)
    assert created[0] is not None and created[0] >= created[1] + 1, f"sessions created counter: {created}"
    ended = (metric_sum(after, r"session.*end", r'reason="deleted"'),
             metric_sum(before, r"session.*end", r'reason="deleted"') or 0)
    assert ended[0] is not None and ended[0] >= ended[1] + 1, f"ended-by-reason counter: {ended}"
    assert metric_sum(after, r"(session|cell).*_bucket$") is not None, "no cell duration histogram"


def test_openapi_lists_the_session_endpoints(cells_server):
    doc = request(cells_server, "GET", "/openapi.json").json
    paths = {re.sub(r"\{[^}]*\}", "{}", p): set(v) for p, v in (doc or {}).get("paths", {}).items()}
    want = {
        "/api/sessions": {"get", "post"},
        "/api/sessions/{}": {"get", "delete"},
        "/api/sessions/{}/execute": {"post"},
        "/api/sessions/{}/interrupt": {"post"},
        "/api/sessions/{}/restart": {"post"},
        "/api/sessions/{}/files": {"get"},
        "/api/sessions/{}/files/{}": {"get", "put", "delete"},
    }
    for p, methods in want.items():
        assert p in paths, f"{p} not in openapi.json paths: {sorted(paths)}"
        assert methods <= paths[p], f"{p}: {methods - paths[p]} missing"
    assert "session" in json.dumps(doc.get("components", {})).lower(), "no session schema in components"


# --- create-time options and the object's figures -------------------------------------------------

def test_defaults_of_a_session_object(cells_server):
    """SESSION_IDLE_TIMEOUT (600) and SESSION_MAX_LIFETIME (3600) are the defaults."""
    obj = create_session(cells_server)
    try:
        assert obj["idle_timeout"] == 600 and obj["max_lifetime"] == 3600, show(obj)
        assert obj["execution_count"] == 0 and obj["state"] in ("starting", "idle"), show(obj)
    finally:
        delete_session(cells_server, obj["session_id"])


def test_files_given_at_create_are_in_the_working_directory(cells_server):
    obj = create_session(cells_server, files=[
        {"name": "seed.csv", "content": "a\n1\n2\n"},
        {"name": "raw/bytes.bin", "content": base64.b64encode(b"\x00\x01\x02").decode(), "encoding": "base64"},
    ])
    sid = obj["session_id"]
    try:
        out = cell_json(cells_server, sid, code('''
            import json
            print(json.dumps([open("seed.csv").read(), list(open("raw/bytes.bin", "rb").read())]))
        '''))
        assert out == ["a\n1\n2\n", [0, 1, 2]], out
        bad = session_request(cells_server, "POST", "", {"files": [{"name": "../x", "content": "x"}]})
        assert_session_error(bad, 400, "BadRequest")
    finally:
        delete_session(cells_server, sid)


def test_object_reports_memory_and_files_in_use(cells_server, sid):
    cell_ok(cells_server, sid, code('''
        hold = bytearray(64 << 20)
        for i in range(0, len(hold), 4096):
            hold[i] = 1
        with open("two-mb.bin", "wb") as f:
            f.write(b"z" * (2 << 20))
    '''))
    obj = session_request(cells_server, "GET", f"/{sid}").json
    assert obj["files_bytes"] >= 2 << 20, show(obj)
    assert obj["memory_bytes"] >= 64 << 20, show(obj)


def test_two_sessions_run_their_cells_at_the_same_time(cells_server):
    """One execution at a time is per session: two sessions' cells overlap (each reports when it
    ran; the windows must intersect)."""
    sids = [create_session(cells_server)["session_id"] for _ in range(2)]
    results = {}
    src = "import json, time\nt0 = time.time()\ntime.sleep(1.5)\nprint(json.dumps([t0, time.time()]))"

    def go(s):
        results[s] = session_execute(cells_server, s, src, http_timeout=60)

    threads = [threading.Thread(target=go, args=(s,)) for s in sids]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        windows = []
        for s in sids:
            r = results.get(s)
            assert r is not None and r.status == 200 and r.json["status"] == "Success", show(r)
            windows.append(json.loads(r.json["stdout"]))
        (a0, a1), (b0, b1) = windows
        assert a0 < b1 and b0 < a1, f"the two sessions' cells ran one after the other: {windows}"
    finally:
        for s in sids:
            delete_session(cells_server, s)
