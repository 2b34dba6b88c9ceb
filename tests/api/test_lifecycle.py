"""The server's own life: the zygote dying, clients leaving, shutting down, and `check`.

Each test starts its own server, so killing its zygote or stopping it harms no other test.
Processes are found by walking the server's children in /proc; only pids we found that way
(descendants of the server we started) are ever signalled.
"""

import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import runtime_dir as conftest_runtime_dir
from conftest import children, comm, own_pid_namespace
from conftest import (BINARY, MARK_PRELUDE, assert_healthy, assert_no_processes_left, code,
                      cgroup_dirs, host_processes, new_token, run, show)


def zygote_of(server, name="snakebox-zygote"):
    """The full zygote (snakebox-zygote) or the lean one (snakebox-lean) of a server we started.
    Sandboxes carry the zygote's name for a moment after they are cloned: they are told apart
    by their pid namespace."""
    zs = [c for c in children(server.pid) if comm(c) == name and own_pid_namespace(c)]
    assert len(zs) == 1, f"expected one {name} among the server's children, found {zs}"
    return zs[0]


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


# Runs that name numpy go to the full zygote; the others to the lean one.
@pytest.mark.parametrize("name,prelude", [("snakebox-zygote", "import numpy\n"), ("snakebox-lean", "")])
def test_zygote_killed_during_runs_every_client_is_answered_and_service_resumes(start_server, name, prelude):
    s = start_server({"MAX_CONCURRENCY": "8", "POOL_SIZE": "2", "LEAN_POOL_SIZE": "2"})
    assert_healthy(s)
    results = []

    def one():
        results.append(run(s, prelude + "import time\ntime.sleep(1.5)\nprint('done')", timeout=30))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    old = zygote_of(s, name)
    os.kill(old, signal.SIGKILL)
    for t in threads:
        t.join(timeout=40)
    assert len(results) == 6, "some clients got no answer after the zygote was killed"
    for status, body in results:
        # Runs already executing are the server's children and finish; none may hang or 5xx
        # without a message.
        assert status in (200, 500, 503), show(body)
        assert body["status"] in ("Success", "Error") and body["output"], show(body)

    deadline = time.monotonic() + 10
    while True:
        status, body = run(s, prelude + "print('after')", timeout=20)
        if status == 200 and body["status"] == "Success":
            break
        assert time.monotonic() < deadline, f"no service 10 s after the zygote died: {show(body)}"
        time.sleep(0.2)
    assert body["output"] == "after\n"
    deadline = time.monotonic() + 10
    while True:
        try:
            if zygote_of(s, name) != old:
                break
        except AssertionError:
            pass
        assert time.monotonic() < deadline, f"no new {name} 10 s after the old one died"
        time.sleep(0.2)
    assert "zygote" in s.stderr(), "the zygote's death was not logged"


def test_client_that_disconnects_gets_its_run_killed(start_server):
    s = start_server()
    token = new_token()
    src = MARK_PRELUDE + code(f'''
        mark({token!r})
        import time
        time.sleep(30)
    ''')
    body = json.dumps({"code": src}).encode()
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body)
    deadline = time.monotonic() + 10
    while not host_processes(token):
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)
    sock.close()
    assert_no_processes_left(token, timeout=2)
    assert_healthy(s)


def test_server_fds_return_to_their_idle_count(start_server):
    s = start_server({"POOL_SIZE": "2"})
    assert_healthy(s)
    time.sleep(1)
    idle = fd_count(s.pid)
    bodies = ["print(1)", "1/0", "import sys; sys.exit(3)", "while True: print('x' * 1000)",
              "import os; os.write(1, b'raw')", "import time; time.sleep(0.1)"]
    for src in bodies * 3:
        run(s, src, timeout=30)
    for bad in (b"{", b"[]", b'{"code": 1}'):
        conn = socket.create_connection(("127.0.0.1", s.port))
        conn.sendall(b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(bad) + bad)
        conn.recv(65536)
        conn.close()
    deadline = time.monotonic() + 5
    while fd_count(s.pid) > idle and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fd_count(s.pid) <= idle, (
        f"the server holds {fd_count(s.pid)} fds after the runs, {idle} before: "
        f"{sorted(os.readlink(f'/proc/{s.pid}/fd/{f}') for f in os.listdir(f'/proc/{s.pid}/fd'))}")


def test_sigterm_stops_cleanly_and_leaves_nothing_behind(start_server):
    s = start_server()
    token = new_token()
    src = MARK_PRELUDE + code(f'''
        mark({token!r})
        import time
        time.sleep(30)
    ''')
    results = []
    t = threading.Thread(target=lambda: results.append(run(s, src, timeout=30)))
    t.start()
    deadline = time.monotonic() + 10
    while not host_processes(token):
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)
    assert cgroup_dirs(s.pid) or not os.access("/sys/fs/cgroup/memory", os.W_OK)
    rt = conftest_runtime_dir(s.pid)
    os.kill(s.pid, signal.SIGTERM)
    assert s.wait_exit(timeout=15) == 0, show(s.stderr())
    t.join(timeout=15)
    assert results and results[0][0] in (200, 503), "the run in flight got no answer"
    assert_no_processes_left(token, timeout=2)
    assert not rt.exists(), f"{rt} was left behind"
    assert not cgroup_dirs(s.pid), f"cgroups left behind: {cgroup_dirs(s.pid)}"
    kids = children(s.pid)
    assert not kids, f"processes of the server left: {kids}"


def test_check_seals_a_sandbox_and_reports_from_inside(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": os.environ.get("HOME", "/root")}
    p = subprocess.run([str(BINARY), "check"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "sandbox: sealed" in p.stdout, p.stdout
    assert "capabilities: 0000000000000000" in p.stdout, p.stdout
    assert "no_new_privs: 1" in p.stdout and "seccomp: 2" in p.stdout, p.stdout
    assert "network interfaces: ['lo']" in p.stdout, p.stdout


def test_check_fails_when_a_library_cannot_be_imported(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": os.environ.get("HOME", "/root"),
           "PREINSTALL_LIBS": "numpy no-such-lib-xyz"}
    p = subprocess.run([str(BINARY), "check"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode != 0
    assert "no-such-lib-xyz" in p.stdout + p.stderr
    assert "apt-get install python3-no-such-lib-xyz" in p.stdout + p.stderr
