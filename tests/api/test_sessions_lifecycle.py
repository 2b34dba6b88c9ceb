"""Sessions (issue 13): life and end. Idle expiry (restarted by every execute, never while busy),
max_lifetime (a cell's timeout clamped to what is left of it), DELETE, restart (count back to 0,
keep_files), gone vs unknown (410 SessionGone with its reason; 404 SessionNotFound for an id never
seen or another key's; 410 server_restarted for an id of an earlier boot), capacity (503
SessionCapacity, 429 SessionQuota, both with Retry-After), MAX_SESSIONS=0 (404 SessionsDisabled),
sessions never taking /api/execute's concurrency, nothing left on the host after DELETE, and a
shutdown with a busy session leaving nothing.

Every test here fails against a server without sessions (the create is a 404 there), except the
SessionsDisabled one, which checks the error's type as well."""

import json
import os
import signal
import threading
import time


from conftest import (MARK_PRELUDE, assert_cgroups_only_for_live_sandboxes, assert_no_processes_left,
                      assert_session_error, auth, cell, cell_ok, cgroup_dirs, code,
                      create_session, delete_session, host_processes, module_server, new_token, request,
                      run, runtime_dir, session_execute, session_request, show, wait_session_state)

KEYS = {"API_KEYS": "key-a,key-b", "MAX_SESSIONS": "3", "MAX_SESSIONS_PER_KEY": "2", "MAX_CONCURRENCY": "1"}
keys_server = module_server(KEYS)
A, B = "key-a", "key-b"


def wait_gone(server, sid, reason, key=None, timeout=15):
    """Polls GET (which does not extend the session's life) until 410; checks the reason."""
    deadline = time.monotonic() + timeout
    while True:
        r = session_request(server, "GET", f"/{sid}", key=key, timeout=10)
        if r.status != 200:
            return assert_session_error(r, 410, "SessionGone", reason)
        assert time.monotonic() < deadline, f"session still alive {timeout} s on: {show(r)}"
        time.sleep(0.1)


def start_marked_child(server, sid, key=None):
    """A cell forks a process named by a fresh token that sleeps 60 s past the cell; returns the
    token once the process shows on the host."""
    token = new_token()
    cell_ok(server, sid, MARK_PRELUDE + code('''
        import json, os, sys, time
        token = json.load(sys.stdin)
        if os.fork() == 0:
            mark(token)
            time.sleep(60)
            os._exit(0)
    '''), key=key, stdin=json.dumps(token))
    deadline = time.monotonic() + 10
    while not host_processes(token):
        assert time.monotonic() < deadline, "the marked child never showed up"
        time.sleep(0.05)
    return token


# --- idle, lifetime, delete ---------------------------------------------------------------------

def test_idle_session_expires_with_reason_idle_timeout(server):
    sid = create_session(server, idle_timeout=2)["session_id"]
    cell_ok(server, sid, "x = 1")
    wait_gone(server, sid, "idle_timeout")
    assert_session_error(session_execute(server, sid, "print(x)"), 410, "SessionGone", "idle_timeout")
    listed = session_request(server, "GET", "").json["sessions"]
    assert sid not in [s["session_id"] for s in listed], show(listed)


def test_every_execute_restarts_the_idle_clock(server):
    sid = create_session(server, idle_timeout=2)["session_id"]
    try:
        for i in range(3):  # the third cell is 2.8 s after the create, past idle_timeout 2
            body = cell_ok(server, sid, f"n = {i}")
            assert body["execution_count"] == i + 1, show(body)
            time.sleep(1.4)
    finally:
        delete_session(server, sid)


def test_idle_clock_does_not_run_while_busy(server):
    sid = create_session(server, idle_timeout=2)["session_id"]
    try:
        body = cell(server, sid, "import time\ntime.sleep(3.5)\nprint('long cell')")
        assert body["status"] == "Success" and body["stdout"] == "long cell\n", show(body)
        assert cell_ok(server, sid, "print('next')")["stdout"] == "next\n"
    finally:
        delete_session(server, sid)


def test_max_lifetime_ends_the_session_between_cells(server):
    sid = create_session(server, idle_timeout=60, max_lifetime=3)["session_id"]
    ok = 0
    deadline = time.monotonic() + 15
    while True:
        r = session_execute(server, sid, "print('alive')")
        if r.status != 200:
            assert_session_error(r, 410, "SessionGone", "max_lifetime")
            break
        assert r.json["status"] == "Success", show(r)
        ok += 1
        assert time.monotonic() < deadline, "the session outlived its max_lifetime of 3 s by far"
        time.sleep(0.4)
    assert ok >= 1, "no cell ran before the lifetime ended"
    wait_gone(server, sid, "max_lifetime")


def test_cell_timeout_is_clamped_to_the_remaining_lifetime(server):
    """EXECUTION_TIMEOUT is 5 s; a 4 s sleep in a session with 2 s to live times out."""
    sid = create_session(server, idle_timeout=60, max_lifetime=2)["session_id"]
    body = cell(server, sid, "import time\ntime.sleep(4)\nprint('slept')")
    assert body["status"] == "Error" and body["error"]["type"] == "Timeout", show(body)
    wait_gone(server, sid, "max_lifetime")


def test_delete_then_everything_is_410_deleted(server):
    sid = create_session(server)["session_id"]
    cell_ok(server, sid, "x = 1")
    r = delete_session(server, sid)
    assert r.status == 204 and r.body == b"", show(r)
    for method, path, obj, raw in (("GET", "", None, None), ("POST", "/execute", {"code": "x"}, None),
                                   ("POST", "/interrupt", None, None), ("POST", "/restart", {}, None),
                                   ("GET", "/files", None, None), ("PUT", "/files/a.txt", None, b"a"),
                                   ("DELETE", "", None, None)):
        reply = session_request(server, method, f"/{sid}{path}", obj, raw=raw)
        assert_session_error(reply, 410, "SessionGone", "deleted")


def test_unknown_ids_are_404(server):
    real = create_session(server)["session_id"]
    delete_session(server, real)
    node, boot, rand = real.split("-", 2)
    for sid in ("nope", f"{node}-{boot}-" + "C" * len(rand), "0-0-0", "x" * 300):
        for method, path in (("GET", ""), ("POST", "/execute"), ("DELETE", ""), ("GET", "/files")):
            r = session_request(server, method, f"/{sid}{path}", {"code": "1"} if path == "/execute" else None)
            assert_session_error(r, 404, "SessionNotFound")


def process_cgroups(pid):
    """The cgroup directories (host paths) that process pid is in, below the server's own."""
    found = set()
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if "snakebox-" not in path:
                continue
            names = [controllers] + controllers.split(",") if controllers else ["", "unified"]
            for name in names:
                d = os.path.join("/sys/fs/cgroup", name) + path
                if os.path.isdir(d):
                    found.add(os.path.realpath(d))
    return found


def session_footprint(server):
    """What of the server's sandboxes shows on the host: runtime directory entries (two levels),
    the server's mount table. (Cgroups: the session's own, from its process; a spare sandbox the
    server seals for the next create may appear meanwhile and rightly stays.)"""
    rt = runtime_dir(server.pid)
    entries = set()
    for d, dirs, files in os.walk(rt):
        if d.count("/") - str(rt).count("/") >= 2:
            dirs[:] = []
        entries |= {os.path.join(d, n) for n in dirs + files}
    try:
        with open(f"/proc/{server.pid}/mountinfo") as f:
            mounts = {" ".join(l.split()[3:5]) for l in f}
    except OSError:
        mounts = set()
    return {"runtime": entries, "mounts": mounts}


def test_after_delete_nothing_of_the_session_remains(server):
    before = session_footprint(server)
    sid = create_session(server)["session_id"]
    token = start_marked_child(server, sid)
    cell_ok(server, sid, "import threading, time\nthreading.Thread(target=time.sleep, args=(60,), daemon=True).start()")
    during = session_footprint(server)
    new = {k: during[k] - before[k] for k in during}
    new["cgroups"] = set()
    for pid in host_processes(token):
        new["cgroups"] |= process_cgroups(pid)
    if os.geteuid() == 0 and cgroup_dirs(server.pid):
        assert any("/memory" in d for d in new["cgroups"]), (
            f"the session's process is in no memory cgroup of the server's: {new['cgroups']}")
    assert delete_session(server, sid).status == 204
    assert_no_processes_left(token)
    deadline = time.monotonic() + 15
    while True:
        after = session_footprint(server)
        after["cgroups"] = {d for d in new["cgroups"] if os.path.isdir(d)}
        left = {k: sorted(new[k] & after[k]) for k in new if new[k] & after[k]}
        if not left:
            break
        assert time.monotonic() < deadline, f"left on the host after DELETE: {left}"
        time.sleep(0.2)
    assert_cgroups_only_for_live_sandboxes(server)


# --- restart ------------------------------------------------------------------------------------

def test_restart_gives_a_fresh_interpreter_and_keeps_files_when_asked(server):
    sid = create_session(server)["session_id"]
    try:
        cell_ok(server, sid, "x = 1\nopen('keep.txt', 'w').write('kept')")
        token = start_marked_child(server, sid)
        r = session_request(server, "POST", f"/{sid}/restart", {"keep_files": True}, timeout=60)
        assert r.status == 200, show(r)
        assert r.json["session_id"] == sid and r.json["execution_count"] == 0, show(r)
        assert r.json["state"] in ("idle", "starting"), show(r)
        assert_no_processes_left(token)
        body = cell(server, sid, "print(open('keep.txt').read())\nx")
        assert body["stdout"] == "kept\n" and body["error"]["type"] == "NameError", show(body)
        assert body["execution_count"] == 1, show(body)
        r = session_request(server, "POST", f"/{sid}/restart", {"keep_files": False}, timeout=60)
        assert r.status == 200 and r.json["execution_count"] == 0, show(r)
        body = cell(server, sid, "import os\nprint(os.path.exists('keep.txt'))")
        assert body["stdout"] == "False\n", show(body)
        assert_session_error(session_request(server, "POST", f"/{sid}/restart", {"keep_files": "yes"}),
                             400, "BadRequest")
    finally:
        delete_session(server, sid)


# --- keys, quota, capacity, concurrency ---------------------------------------------------------

def test_another_keys_session_is_404_and_not_listed(keys_server):
    sid = create_session(keys_server, key=A)["session_id"]
    try:
        cell_ok(keys_server, sid, "secret = 'of a'", key=A)
        for method, path, obj, raw in (("GET", "", None, None), ("POST", "/execute", {"code": "print(secret)"}, None),
                                       ("POST", "/interrupt", None, None), ("POST", "/restart", {}, None),
                                       ("GET", "/files", None, None), ("PUT", "/files/b.txt", None, b"b"),
                                       ("DELETE", "", None, None)):
            r = session_request(keys_server, method, f"/{sid}{path}", obj, key=B, raw=raw)
            assert_session_error(r, 404, "SessionNotFound")
        listed = session_request(keys_server, "GET", "", key=B)
        assert listed.status == 200 and sid not in [s["session_id"] for s in listed.json["sessions"]], show(listed)
        mine = session_request(keys_server, "GET", "", key=A)
        assert sid in [s["session_id"] for s in mine.json["sessions"]], show(mine)
        # Still alive and unchanged for its own key.
        assert cell_ok(keys_server, sid, "print(secret)", key=A)["stdout"] == "of a\n"
        for method, path in (("GET", ""), ("POST", "")):
            assert session_request(keys_server, method, path, {} if method == "POST" else None).status == 401
        assert session_request(keys_server, "GET", f"/{sid}").status == 401
    finally:
        delete_session(keys_server, sid, key=A)


def test_quota_is_429_and_capacity_is_503(keys_server):
    """MAX_SESSIONS=3, MAX_SESSIONS_PER_KEY=2; no session is idle for a minute, so none can be
    evicted."""
    made = []
    try:
        for _ in range(2):
            made.append((A, create_session(keys_server, key=A)["session_id"]))
        assert_session_error(session_request(keys_server, "POST", "", {}, key=A), 429, "SessionQuota")
        made.append((B, create_session(keys_server, key=B)["session_id"]))
        assert_session_error(session_request(keys_server, "POST", "", {}, key=B), 503, "SessionCapacity")
        h = session_request(keys_server, "GET", "", key=A)
        assert len(h.json["sessions"]) == 2, show(h)
        # Nobody was evicted to make room.
        for key, sid in made:
            assert session_request(keys_server, "GET", f"/{sid}", key=key).status == 200
        key, sid = made.pop(0)
        assert delete_session(keys_server, sid, key=key).status == 204
        made.append((B, create_session(keys_server, key=B)["session_id"]))
    finally:
        for key, sid in made:
            delete_session(keys_server, sid, key=key)


def test_busy_session_takes_no_concurrency_from_execute(keys_server):
    """MAX_CONCURRENCY=1 here: with a session busy, a stateless run still runs at once."""
    sid = create_session(keys_server, key=A)["session_id"]
    results = []
    t = threading.Thread(target=lambda: results.append(
        session_execute(keys_server, sid, "import time\ntime.sleep(3)\nprint('cell')", key=A, http_timeout=60)))
    try:
        t.start()
        wait_session_state(keys_server, sid, "busy", key=A)
        st = request(keys_server, "POST", "/api/execute", body=json.dumps({"code": "print('stateless')"}),
                     headers={"Content-Type": "application/json", **auth(A)}, timeout=30)
        assert st.status == 200 and st.json["stdout"] == "stateless\n", show(st)
        assert t.is_alive(), "the cell ended before the stateless run: cannot tell"
    finally:
        t.join(timeout=30)
        delete_session(keys_server, sid, key=A)
    assert results and results[0].status == 200 and results[0].json["stdout"] == "cell\n", show(results)


def test_max_sessions_zero_disables_sessions(start_server):
    s = start_server({"MAX_SESSIONS": "0"})
    for method, path, obj in (("POST", "", {}), ("GET", "", None), ("GET", "/0-0-" + "D" * 24, None),
                              ("POST", "/0-0-" + "D" * 24 + "/execute", {"code": "1"})):
        assert_session_error(session_request(s, method, path, obj), 404, "SessionsDisabled")
    status, body = run(s, "print('stateless still works')")
    assert status == 200 and body["stdout"] == "stateless still works\n", show(body)


def test_ids_of_an_earlier_boot_are_410_server_restarted(start_server):
    first = start_server({"NODE_ID": "7"})
    old = create_session(first)["session_id"]
    assert old.startswith("7-"), f"NODE_ID=7 is not the id's prefix: {old!r}"
    cell_ok(first, old, "x = 1")
    first.stop()
    second = start_server({"NODE_ID": "7"})
    assert_session_error(session_request(second, "GET", f"/{old}"), 410, "SessionGone", "server_restarted")
    assert_session_error(session_execute(second, old, "print(x)"), 410, "SessionGone", "server_restarted")
    new = create_session(second)["session_id"]
    assert new.split("-")[:2] != old.split("-")[:2], f"the boot part did not change: {old} {new}"
    node, boot, rand = new.split("-", 2)
    never = f"{node}-{boot}-" + "E" * len(rand)
    assert_session_error(session_request(second, "GET", f"/{never}"), 404, "SessionNotFound")
    # Another node's id is not this server's to judge: unknown, not gone.
    assert_session_error(session_request(second, "GET", f"/8-{boot}-{rand}"), 404, "SessionNotFound")


def test_shutdown_with_a_busy_session_leaves_nothing(start_server):
    s = start_server({"SHUTDOWN_GRACE": "1"})
    rt = runtime_dir(s.pid)
    idle_sid = create_session(s)["session_id"]
    idle_token = start_marked_child(s, idle_sid)
    busy_sid = create_session(s)["session_id"]
    busy_token = start_marked_child(s, busy_sid)
    results = []
    t = threading.Thread(target=lambda: results.append(
        session_execute(s, busy_sid, "import time\ntime.sleep(4.5)", http_timeout=60)))
    t.start()
    wait_session_state(s, busy_sid, "busy")
    os.kill(s.pid, signal.SIGTERM)
    t.join(timeout=30)
    assert s.wait_exit(timeout=30) == 0, s.stderr()[-3000:]
    for token in (idle_token, busy_token):
        assert_no_processes_left(token)
    assert not rt.exists(), f"{rt} was left behind"
    assert not cgroup_dirs(s.pid), f"cgroups left behind: {cgroup_dirs(s.pid)}"
