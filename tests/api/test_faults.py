"""Fault injection (issue 6): the zygote killed under load, the scratch tmpfs full, SIGTERM under
load. Each test starts its own server; only pids found among that server's children (or the
server itself) are ever signalled.
"""

import errno
import json
import os
import signal
import threading
import time

from conftest import runtime_dir as conftest_runtime_dir
from conftest import assert_cgroups_only_for_live_sandboxes, children, comm, own_pid_namespace, wait_for
from conftest import (MARK_PRELUDE, assert_healthy, assert_no_processes_left, cgroup_dirs, code,
                      host_processes, new_token, request, run, run_json, show)


def full_zygote(server):
    zs = [c for c in children(server.pid) if comm(c) == "snakebox-zygote" and own_pid_namespace(c)]
    assert len(zs) == 1, f"expected one snakebox-zygote among the server's children, found {zs}"
    return zs[0]


def is_answer(status, body):
    """200 with a run's answer, or a 5xx with the error body."""
    if not isinstance(body, dict):
        return False
    if status == 200:
        return body.get("status") in ("Success", "Error") and isinstance(body.get("output"), str)
    return 500 <= status < 600 and body.get("status") == "Error" and bool(body.get("output"))


def test_zygote_killed_with_16_runs_in_flight(start_server):
    """Half the runs use the full zygote (numpy), half the lean one. The full zygote is SIGKILLed
    while all 16 are in flight: every client gets an answer, and a new numpy request is served
    without waiting for the restarted zygote: its answer comes while /health still says the
    zygote is down (it once waited for the replacement's imports, seconds).

    Order, not time: this used to assert "within 2 s of the kill" after waiting for the zygote to
    outlive the crash-loop window (5 s, hard-coded here from src/pool.c). A crash-loop pause only
    delays the restart, which can only make the order easier to meet, so neither is needed."""
    # 17 slots: the probe below waits for no run's slot, only (if broken) for the restart.
    s = start_server({"MAX_CONCURRENCY": "17", "EXECUTION_TIMEOUT": "20"})
    assert_healthy(s)
    run(s, "import numpy\nprint(numpy.__version__)", timeout=30)
    token = new_token()
    results = {}

    def one(i):
        src = MARK_PRELUDE + f"mark({token!r})\n"
        src += ("import numpy\n" if i % 2 == 0 else "") + "import time\ntime.sleep(1.5)\nprint('done', %d)\n" % i
        try:
            results[i] = run(s, src, timeout=60)
        except BaseException as e:  # recorded, asserted below
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    # In flight: some runs already execute (marked), the others wait for their sandboxes.
    wait_for(lambda: len(host_processes(token)) >= 4, 15, "the runs did not start")
    zygote = full_zygote(s)
    assert zygote in children(s.pid)
    os.kill(zygote, signal.SIGKILL)
    killed_at = time.monotonic()
    recovery = watch_recovery(s, zygote, killed_at)

    # A new numpy request, sent right after the kill: it must be answered before the restarted
    # zygote is up (the watcher's up_at is read at or after the real moment, so a late poll can
    # only let a slow server pass, never fail a correct one).
    recovered_at, probe_answers = None, []
    while time.monotonic() - killed_at < 30:
        status, body = run(s, "import numpy\nprint(int(numpy.arange(4).sum()))", timeout=30)
        probe_answers.append((round(time.monotonic() - killed_at, 2), status,
                              body.get("status"), body.get("output", "")[:200]))
        if status == 200 and body.get("status") == "Success" and body.get("output") == "6\n":
            recovered_at = time.monotonic()
            break
        time.sleep(0.05)

    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "some clients got no answer after the zygote was killed"
    for i in range(16):
        r = results.get(i)
        assert r is not None and not isinstance(r, BaseException), f"run {i}: {r!r}"
        status, body = r
        assert is_answer(status, body), f"run {i}: " + show((status, body))
        if status == 200 and body["status"] == "Success":
            assert body["stdout"] == f"done {i}\n", show(body)
    assert recovered_at is not None, f"no numpy run served within 30 s of the kill: {probe_answers}"
    took = recovered_at - killed_at
    recovery["stop"].set()
    recovery["thread"].join(timeout=5)
    up_at = recovery.get("up_at")
    assert up_at is None or took < up_at, (
        f"the first numpy request after the zygote's SIGKILL was served {took:.2f} s after the kill, "
        f"after the restarted zygote was up ({up_at} s): it waited for the restart; "
        f"answers meanwhile (s after kill, HTTP, status, output): {probe_answers}; "
        f"seconds after the kill: new zygote process {recovery.get('new_pid_at')}, /health "
        f"zygote down {recovery.get('down_at')}, up again {recovery.get('up_at')}; "
        f"in-flight answers: {[(i, results[i][0], results[i][1].get('status')) for i in range(16)]}")
    wait_for(lambda: full_zygote_or_none(s) not in (None, zygote), 20, "no new snakebox-zygote")
    assert "zygote" in s.stderr(), "the zygote's death was not logged"
    assert_no_processes_left(token)
    assert_healthy(s)
    # Sandboxes the dead zygote had cloned but not yet reported still got cgroups: those go
    # too, once their processes have exited.
    assert_cgroups_only_for_live_sandboxes(s)


def watch_recovery(server, old_zygote, since):
    """In the background: when (seconds after `since`) a new full zygote process appears and when
    /health reports the zygote down and up again. For the failure message only."""
    found = {"stop": threading.Event()}

    def watch():
        while not found["stop"].is_set() and time.monotonic() - since < 30:
            now = round(time.monotonic() - since, 2)
            if "new_pid_at" not in found and full_zygote_or_none(server) not in (None, old_zygote):
                found["new_pid_at"] = now
            try:
                h = request(server, "GET", "/health", timeout=5).json or {}
            except BaseException:  # pytest.fail in request(): only a figure is lost
                h = {}
            if h.get("zygote") == "down" and "down_at" not in found:
                found["down_at"] = now
            if h.get("zygote") == "up" and "down_at" in found and "up_at" not in found:
                found["up_at"] = now
            if "up_at" in found and "new_pid_at" in found:
                break
            time.sleep(0.05)

    found["thread"] = threading.Thread(target=watch, daemon=True)
    found["thread"].start()
    return found


def full_zygote_or_none(server):
    try:
        return full_zygote(server)
    except AssertionError:
        return None


def test_server_killed_while_the_zygote_learns_leaves_no_process(start_server):
    """At start-up the zygote forks a child that learns which pages runs write (seconds of
    warm-up work). A server killed then must take that child with it: it once stayed behind,
    blocked writing its results to a pipe nobody read."""
    s = start_server(wait=False)
    learner, seen = {}, {}

    def learning():
        # The learning child is the zygote's only child that lives long (more than 0.2 s).
        now = time.monotonic()
        for z in children(s.pid):
            if comm(z) == "snakebox-zygote":
                for kid in children(z):
                    if now - seen.setdefault(kid, now) > 0.2:
                        learner["pid"] = kid
                        return True
        return False

    wait_for(learning, 60, "no learning child of the zygote appeared")
    os.kill(s.pid, signal.SIGKILL)
    s.wait_exit(10)
    pid = learner["pid"]

    def gone():
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except OSError:
            return True

    wait_for(gone, 2, f"the zygote's learning child {pid} outlived the killed server")


def test_full_tmpfs_is_enospc_for_the_program_and_harmless_for_the_server(start_server):
    s = start_server({"TMP_SIZE_MB": "8"})
    result = run_json(s, code('''
        import errno, json, os
        chunk = b"x" * (1 << 20)
        written, err, other = 0, None, None
        try:
            with open("/tmp/fill", "wb") as f:
                while written < (64 << 20):
                    f.write(chunk)
                    f.flush()
                    written += len(chunk)
        except OSError as e:
            err = e.errno
        # /work and /dev/shm are the same tmpfs: full too.
        try:
            with open("/work/more", "wb") as f:
                f.write(chunk)
                f.flush()
        except OSError as e:
            other = e.errno
        print(json.dumps({"written": written, "errno": err, "work_errno": other}))
    '''))
    assert result["errno"] == errno.ENOSPC, f"the program got no ENOSPC: {result}"
    assert result["work_errno"] == errno.ENOSPC, f"/work is not on the same capped tmpfs: {result}"
    assert 4 << 20 <= result["written"] <= 8 << 20, show(result)
    assert_healthy(s)
    # The next run has a fresh, empty tmpfs.
    again = run_json(s, code('''
        import json, os
        before = os.path.exists("/tmp/fill")
        with open("/tmp/fill", "wb") as f:
            f.write(b"y" * (6 << 20))
        print(json.dumps({"existed": before, "size": os.path.getsize("/tmp/fill")}))
    '''))
    assert again == {"existed": False, "size": 6 << 20}, show(again)


def test_sigterm_with_8_runs_in_flight(start_server):
    """SIGTERM with 8 runs in flight and SHUTDOWN_GRACE=1: every client gets a 503 and the server
    exits before the runs would have ended (each sleeps 40 s, EXECUTION_TIMEOUT is 60 s, and the
    waits here give up after 20 s), so exiting at all shows that it did not wait for them. This
    used to time the exit ("within 9 s" of runs that slept 5 s)."""
    s = start_server({"SHUTDOWN_GRACE": "1", "EXECUTION_TIMEOUT": "60"})
    runtime_dir = conftest_runtime_dir(s.pid)
    assert runtime_dir.exists(), f"{runtime_dir} does not exist while serving: the check after would prove nothing"
    token = new_token()
    src = MARK_PRELUDE + f"mark({token!r})\n" + "import time\ntime.sleep(40)\nprint('should not get here')\n"
    results = {}

    def one(i):
        try:
            results[i] = run(s, src, timeout=60)
        except BaseException as e:
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    wait_for(lambda: len(host_processes(token)) >= 8, 20, "the 8 runs did not all start")
    os.kill(s.pid, signal.SIGTERM)
    answered_by = time.monotonic() + 20  # one wait for all: half the runs' sleep(40)
    for t in threads:
        t.join(timeout=max(0.0, answered_by - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "some clients got no answer"
    for i in range(8):
        r = results.get(i)
        assert r is not None and not isinstance(r, BaseException), f"run {i}: {r!r}"
        status, body = r
        assert status == 503, f"run {i}: " + show((status, body))
        assert body.get("status") == "Error" and isinstance(body.get("output"), str) and body["output"], show(body)
        assert "should not get here" not in json.dumps(body)
    # Order: the server is gone while the runs' sleep(40) would still go on (a wait bound, not a
    # timing assertion: 20 s is half of what a server that let the runs finish would need).
    exit_status = s.wait_exit(timeout=20)
    assert exit_status == 0, f"exit status {exit_status}\n" + s.stderr()[-3000:]
    assert_no_processes_left(token)
    assert not runtime_dir.exists(), f"{runtime_dir} was left behind"
    left = cgroup_dirs(s.pid)
    assert not left, f"cgroups left behind: {left}"
