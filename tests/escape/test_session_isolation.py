"""Attack (issue 13): reach another session, or a stateless run, from a session, and the other way
round: its files (/work, /tmp, /dev/shm), its processes, POSIX shared memory, SysV IPC, abstract
unix sockets. A session keeps what it made between cells, so a resource planted by one session's
cell is held while the other side probes; a stateless run holds its resources for a few seconds
while a session's cell probes, and the test checks from both sides' clocks that the probes fell
inside the holding window. Against a naive server (one python3 for everyone) all of these are
shared.

Every test here fails against a server without sessions: the create is a 404 there."""

import json
import os
import threading
import time

import pytest

from conftest import (MARK_PRELUDE, cell_json, code, create_session, delete_session, host_processes,
                      new_token, run, show)

HOLD = 3.5   # seconds a stateless run holds its resources; below the test server's 5 s timeout
PROBE = 3.0  # seconds a probing cell keeps looking

# Plants every resource named in PARAMS and keeps it (module globals of the session, or held for
# PARAMS["hold"] seconds in a stateless run). Prints what it holds.
PLANT = MARK_PRELUDE + code('''
    import ctypes, json, os, socket, sys, time, _posixshmem
    PARAMS = json.load(sys.stdin)
    tok = PARAMS["token"]
    held = {"files": []}
    for d in (".", "/tmp", "/dev/shm", "/var/tmp"):
        try:
            with open(os.path.join(d, tok), "w") as f:
                f.write(tok)
            held["files"].append(os.path.abspath(os.path.join(d, tok)))
        except OSError:
            pass
    held_shm_fd = _posixshmem.shm_open("/" + tok + "-shm", os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o666)
    os.ftruncate(held_shm_fd, 4096)
    held["posix_shm"] = True
    libc = ctypes.CDLL(None, use_errno=True)
    key = PARAMS["key"]
    held["sysv"] = [libc.shmget(key, 4096, 0o1000 | 0o666), libc.msgget(key, 0o1000 | 0o666),
                    libc.semget(key, 1, 0o1000 | 0o666)]
    held_listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    held_listener.bind("\\0" + tok)
    held_listener.listen(8)
    held_listener.setblocking(False)
    held_secret = ("MEM-" + tok).encode()
    child = os.fork()
    if child == 0:
        mark(tok)
        time.sleep(PARAMS.get("child_sleep", 60))
        os._exit(0)
    held["child"] = child
    if PARAMS.get("hold"):
        t0 = time.time()
        time.sleep(PARAMS["hold"])
        held["t0"], held["t1"] = t0, time.time()
        try:
            held_listener.accept()
            held["accepted"] = True
        except BlockingIOError:
            held["accepted"] = False
        os.kill(child, 9)
    print(json.dumps(held))
''')

# One look for every resource; probe() returns the list of what it found of the other side.
PROBE_DEF = code('''
    import ctypes, json, os, socket, sys, time, _posixshmem
    PARAMS = json.load(sys.stdin)
    tok = PARAMS["token"]
    libc = ctypes.CDLL(None, use_errno=True)

    def probe():
        found = []
        for d in (".", "/work", "/tmp", "/dev/shm", "/var/tmp"):
            try:
                found += [os.path.join(d, n) for n in os.listdir(d) if tok in n]
            except OSError:
                pass
        try:
            fd = _posixshmem.shm_open("/" + tok + "-shm", os.O_RDONLY, 0)
            os.close(fd)
            found.append("posix shm opened")
        except OSError:
            pass
        key = PARAMS["key"]
        for kind, r in (("shm", libc.shmget(key, 0, 0)), ("msg", libc.msgget(key, 0)),
                        ("sem", libc.semget(key, 0, 0))):
            if r >= 0:
                found.append("sysv " + kind)
        for name in ("shm", "msg", "sem"):
            try:
                with open("/proc/sysvipc/" + name) as f:
                    if any(line.split()[:1] == [str(key)] for line in f):
                        found.append("sysv listed " + name)
            except OSError:
                pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect("\\0" + tok)
            found.append("abstract socket connected")
        except OSError:
            pass
        finally:
            s.close()
        try:
            with open("/proc/net/unix") as f:
                if tok in f.read():
                    found.append("abstract socket listed")
        except OSError:
            pass
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    with open("/proc/%s/comm" % p) as f:
                        if f.read().strip() == tok:
                            found.append("process %s" % p)
                except OSError:
                    pass
        for pid in PARAMS.get("host_pids", []):
            for what in ("environ", "cmdline", "mem"):
                try:
                    with open("/proc/%d/%s" % (pid, what), "rb") as f:
                        data = f.read(4096)
                    with open("/proc/%d/comm" % pid) as f:
                        if f.read().strip() == tok:
                            found.append("read /proc/%d/%s" % (pid, what))
                except OSError:
                    pass
        return found
''')

PROBE_ONCE = PROBE_DEF + 'print(json.dumps(probe()))\n'
PROBE_LOOP = PROBE_DEF + code('''
    probes = []
    end = time.time() + PARAMS["probe"]
    while time.time() < end:
        probes.append([time.time(), probe()])
        time.sleep(0.1)
    print(json.dumps({"probes": probes}))
''')


def params():
    return {"token": new_token(), "key": int.from_bytes(os.urandom(3), "big") + 0x5c000000}


def remove_host_copies(token):
    """Only a server without isolation leaves these on the host."""
    for p in ("/tmp/" + token, "/dev/shm/" + token, "/var/tmp/" + token, f"/dev/shm/{token}-shm"):
        if os.path.exists(p):
            os.unlink(p)


@pytest.fixture
def two_sessions(server):
    sids = [create_session(server)["session_id"] for _ in range(2)]
    yield sids
    for s in sids:
        delete_session(server, s)


def plant_in_session(server, sid, p):
    held = cell_json(server, sid, PLANT, p)
    assert len(held["files"]) >= 3 and held["posix_shm"], show(held)
    # The planted process lives on between cells, on the host.
    deadline = time.monotonic() + 10
    while not host_processes(p["token"]):
        assert time.monotonic() < deadline, "the planted process is not running between cells"
        time.sleep(0.05)
    return held


@pytest.mark.parametrize("direction", ["first-to-second", "second-to-first"])
def test_a_session_cannot_reach_another_sessions_resources(server, two_sessions, direction):
    planter, prober = two_sessions if direction == "first-to-second" else two_sessions[::-1]
    p = params()
    try:
        plant_in_session(server, planter, p)
        p["host_pids"] = host_processes(p["token"])
        found = cell_json(server, prober, PROBE_ONCE, p)
        assert found == [], f"a session reached another session's resources: {found}"
        # The planter still sees its own: the probe would have found them if they were shared.
        own = cell_json(server, planter, PROBE_ONCE, {**p, "host_pids": []})
        assert any("posix shm" in f for f in own) and any("abstract socket connected" == f for f in own), show(own)
        assert any(f.startswith("process") for f in own), show(own)
    finally:
        remove_host_copies(p["token"])


def test_a_stateless_run_cannot_reach_a_sessions_resources(server, two_sessions):
    p = params()
    try:
        plant_in_session(server, two_sessions[0], p)
        p["host_pids"] = host_processes(p["token"])
        status, body = run(server, PROBE_ONCE, stdin=json.dumps(p))
        assert status == 200 and body["status"] == "Success", show(body)
        found = json.loads(body["stdout"].strip().splitlines()[-1])
        assert found == [], f"a stateless run reached a session's resources: {found}"
    finally:
        remove_host_copies(p["token"])


def test_a_later_session_sees_nothing_of_a_deleted_one(server):
    p = params()
    first = create_session(server)["session_id"]
    try:
        plant_in_session(server, first, p)
    finally:
        delete_session(server, first)
    second = create_session(server)["session_id"]
    try:
        found = cell_json(server, second, PROBE_ONCE, p)
        assert found == [], f"a new session sees what a deleted one held: {found}"
    finally:
        delete_session(server, second)
        remove_host_copies(p["token"])


def test_a_session_cannot_reach_a_concurrent_stateless_runs_resources(server, two_sessions):
    p = params()
    p.update(hold=HOLD, probe=PROBE, child_sleep=HOLD + 2)
    answers = {}

    def holder():
        answers["run"] = run(server, PLANT, stdin=json.dumps(p))

    t = threading.Thread(target=holder)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while not host_processes(p["token"]):
            assert t.is_alive() and time.monotonic() < deadline, f"the holding run never started: {answers}"
            time.sleep(0.02)
        p["host_pids"] = host_processes(p["token"])
        probes = cell_json(server, two_sessions[0], PROBE_LOOP, p)["probes"]
        t.join(timeout=60)
        status, body = answers["run"]
        assert status == 200 and body["status"] == "Success", show(body)
        held = json.loads(body["stdout"].strip().splitlines()[-1])
        overlapping = [x for x in probes if held["t0"] < x[0] < held["t1"]]
        assert overlapping, f"the probes did not overlap the holding run: held {held}, probes {probes[:3]}"
        seen = [x for x in overlapping if x[1]]
        assert not seen, f"a session reached a concurrent stateless run's resources: {seen}"
        assert held["accepted"] is False, show(held)
    finally:
        t.join(timeout=60)
        remove_host_copies(p["token"])
