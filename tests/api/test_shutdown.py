"""Graceful shutdown (issue 5).

On SIGTERM or SIGINT the server drains (it answers new work 503 and /health?ready=1 503 while it
still listens, issue 17), lets runs in flight finish for up to SHUTDOWN_GRACE seconds (their clients get their answers), kills what is still running then (those
clients get 503), and exits 0 leaving no process, no /run/snakebox-<pid> and no cgroup
snakebox-<pid>. Each test starts its own server and signals only that server's pid.
"""

import os
import signal
import threading
import time

import pytest

from conftest import runtime_dir as conftest_runtime_dir
from conftest import (MARK_PRELUDE, assert_no_processes_left, cgroup_dirs, code, host_processes,
                      new_token, request, run, show)

SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGINT, id="SIGINT")]


def can_use_cgroups():
    return any(os.access(p, os.W_OK) for p in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids"))


def start_marked_run(server, body_src):
    """Starts a run in a thread; returns (token, results, thread, answered_at) once the run's
    process exists on the host."""
    token = new_token()
    src = MARK_PRELUDE + f"mark({token!r})\n" + body_src
    results, answered = [], []

    def go():
        results.append(run(server, src, timeout=60))
        answered.append(time.monotonic())

    t = threading.Thread(target=go)
    t.start()
    deadline = time.monotonic() + 15
    while not host_processes(token):
        assert t.is_alive(), f"the run ended before it was seen running: {results}"
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.02)
    return token, results, t, answered


def assert_left_nothing(server, token, runtime_dir):
    assert_no_processes_left(token, timeout=5)
    assert not runtime_dir.exists(), f"{runtime_dir} was left behind"
    left = cgroup_dirs(server.pid)
    assert not left, f"cgroups left behind: {left}"


@pytest.mark.parametrize("sig", SIGNALS)
def test_run_in_flight_finishes_within_the_grace_period(start_server, sig):
    s = start_server({"SHUTDOWN_GRACE": "5"})
    runtime_dir = conftest_runtime_dir(s.pid)
    assert runtime_dir.exists(), f"{runtime_dir} does not exist while serving: the check after would prove nothing"
    if can_use_cgroups():
        assert cgroup_dirs(s.pid), "no cgroup snakebox-<pid> while serving: the check after would prove nothing"
    token, results, t, answered = start_marked_run(s, code('''
        import time
        time.sleep(2)
        print('done')
    '''))
    time.sleep(0.5)
    assert t.is_alive()
    sent = time.monotonic()
    os.kill(s.pid, sig)

    # While the run is still going the server drains (issue 17): it still listens, so that a
    # balancer's new requests get a quick 503 to retry elsewhere rather than a refused
    # connection, and says it is not ready.
    deadline = time.monotonic() + 1.2
    while request(s, "GET", "/health?ready=1", timeout=5).status != 503 and time.monotonic() < deadline:
        time.sleep(0.02)
    ready = request(s, "GET", "/health?ready=1", timeout=5)
    new_run = run(s, "print(1)", timeout=5)
    still_running = t.is_alive()
    assert ready.status == 503 and ready.json["draining"] is True, show(ready)
    assert new_run[0] == 503 and "draining" in new_run[1]["output"], show(new_run)
    assert still_running, "the run was over before the drain was seen: cannot tell"

    t.join(timeout=15)
    assert not t.is_alive(), "the client got no answer"
    status, body = results[0]
    assert status == 200, show((status, body))
    assert body["status"] == "Success" and body["stdout"] == "done\n", show(body)

    exit_status = s.wait_exit(timeout=15)
    elapsed = time.monotonic() - sent
    assert exit_status == 0, f"exit status {exit_status}\n" + s.stderr()[-3000:]
    assert elapsed < 5 + 2, f"the server took {elapsed:.1f} s to exit with SHUTDOWN_GRACE=5"
    assert_left_nothing(s, token, runtime_dir)


@pytest.mark.parametrize("sig", SIGNALS)
def test_run_still_going_after_the_grace_period_is_killed_and_answered_503(start_server, sig):
    s = start_server({"SHUTDOWN_GRACE": "1", "EXECUTION_TIMEOUT": "60"})
    runtime_dir = conftest_runtime_dir(s.pid)
    assert runtime_dir.exists()
    token, results, t, answered = start_marked_run(s, code('''
        import os, time
        if os.fork() == 0:           # a child too: it must not outlive the server either
            time.sleep(30)
            os._exit(0)
        time.sleep(30)
        print('should not get here')
    '''))
    deadline = time.monotonic() + 5
    while len(host_processes(token)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    sent = time.monotonic()
    os.kill(s.pid, sig)
    t.join(timeout=15)
    assert not t.is_alive(), "the client got no answer"
    status, body = results[0]
    assert status == 503, show((status, body))
    assert body.get("status") == "Error" and isinstance(body.get("output"), str), show(body)
    assert "should not get here" not in str(body)
    assert answered[0] - sent < 1 + 4, f"answered {answered[0] - sent:.1f} s after the signal (grace 1 s)"
    exit_status = s.wait_exit(timeout=15)
    assert exit_status == 0, f"exit status {exit_status}\n" + s.stderr()[-3000:]
    assert_left_nothing(s, token, runtime_dir)


@pytest.mark.parametrize("sig", SIGNALS)
def test_a_run_needing_more_than_the_grace_period_is_not_let_finish(start_server, sig):
    """SHUTDOWN_GRACE=1 and a run that needs about 2.5 s more when the signal comes: it must be
    killed when the grace period ends (503), not be allowed to finish (200 "done")."""
    s = start_server({"SHUTDOWN_GRACE": "1", "EXECUTION_TIMEOUT": "60"})
    runtime_dir = conftest_runtime_dir(s.pid)
    token, results, t, answered = start_marked_run(s, code('''
        import time
        time.sleep(3)
        print('done')
    '''))
    time.sleep(0.5)
    assert t.is_alive()
    os.kill(s.pid, sig)
    t.join(timeout=15)
    assert not t.is_alive(), "the client got no answer"
    status, body = results[0]
    assert status == 503, ("a run that needed 2.5 s more than the 1 s grace period was let finish: "
                           + show((status, body)))
    assert s.wait_exit(timeout=15) == 0, s.stderr()[-3000:]
    assert_left_nothing(s, token, runtime_dir)


@pytest.mark.parametrize("sig", SIGNALS)
def test_idle_server_exits_promptly(start_server, sig):
    """Nothing in flight: no reason to wait out the grace period."""
    s = start_server({"SHUTDOWN_GRACE": "30"})
    runtime_dir = conftest_runtime_dir(s.pid)
    assert runtime_dir.exists()
    status, body = run(s, "print(1)")
    assert status == 200, show(body)
    sent = time.monotonic()
    os.kill(s.pid, sig)
    exit_status = s.wait_exit(timeout=40)
    elapsed = time.monotonic() - sent
    assert exit_status == 0, f"exit status {exit_status}\n" + s.stderr()[-3000:]
    assert elapsed < 10, f"an idle server took {elapsed:.1f} s to exit (SHUTDOWN_GRACE=30)"
    assert not runtime_dir.exists(), f"{runtime_dir} was left behind"
    assert not cgroup_dirs(s.pid), f"cgroups left behind: {cgroup_dirs(s.pid)}"
