"""Attack: reach another run, later or concurrent, through files, POSIX shared memory, SysV IPC
or an abstract unix socket. Against a naive server all of these are shared.

The concurrent tests overlap two runs: run A creates the resource and holds it for a few
seconds, run B (sent shortly after) keeps probing for it. Both report wall-clock times, and the
test checks that B probed while A held the resource, so it cannot pass just because the runs
happened one after the other."""

import json
import os
import threading
import time

from conftest import code, new_token, run, run_json, run_json_with, show

HOLD = 3.5  # seconds run A holds its resource; below the test server's 5 s timeout
PROBE = 3.0  # seconds run B keeps probing



def run_pair(server, holder_src, prober_src, params=None):
    """Runs holder_src (A) and, 0.3 s later, prober_src (B) concurrently. A's last stdout line is
    JSON with t0/t1 (when it held the resource); B's is JSON with "probes": [[time, result]].
    Both get {"hold": HOLD, "probe": PROBE} plus params as stdin (JSON), which holder() and
    prober() read into PARAMS. Returns (A's JSON, B's JSON, B's probes made while A held the
    resource)."""
    stdin = json.dumps({"hold": HOLD, "probe": PROBE, **(params or {})})
    answers = {}

    def go(name, src):
        try:
            answers[name] = run(server, src, stdin=stdin)
        except Exception as e:  # reported below
            answers[name] = e

    a = threading.Thread(target=go, args=("A", holder_src))
    b = threading.Thread(target=go, args=("B", prober_src))
    a.start()
    time.sleep(0.3)
    b.start()
    a.join(timeout=60)
    b.join(timeout=60)
    assert not a.is_alive() and not b.is_alive(), "a run never answered"
    result = {}
    for name in ("A", "B"):
        assert not isinstance(answers[name], Exception), show(answers[name])
        status, body = answers[name]
        assert status == 200 and body["status"] == "Success", show((name, body))
        result[name] = json.loads(body["stdout"].strip().splitlines()[-1])
    held = result["A"]
    overlapping = [p for p in result["B"]["probes"] if held["t0"] < p[0] < held["t1"]]
    assert overlapping, (
        f"the two runs did not overlap (A held {held}, B probed {result['B']['probes'][:3]}...): "
        "the server must run at least two requests at once")
    return held, result["B"], overlapping


# The parameters run_pair() sends as stdin, for the setup and probe code to read.
READ_PARAMS = code('''
    import json, os, sys, time
    PARAMS = json.load(sys.stdin)
''')


def holder(setup, cleanup=""):
    """Run A: setup (which sets HELD), hold for PARAMS["hold"] seconds, cleanup, report."""
    return "\n".join([READ_PARAMS, setup, code('''
        t0 = time.time()
        time.sleep(PARAMS["hold"])
        t1 = time.time()
    '''), cleanup, code('''
        print(json.dumps({"t0": t0, "t1": t1, "held": HELD}))
    ''')])


def prober(probe):
    """Run B: defines probe() and calls it every 0.1 s for PARAMS["probe"] seconds."""
    return "\n".join([READ_PARAMS, probe, code('''
        probes = []
        end = time.time() + PARAMS["probe"]
        while time.time() < end:
            probes.append([time.time(), probe()])
            time.sleep(0.1)
        print(json.dumps({"probes": probes}))
    ''')])


def test_later_run_sees_nothing_of_an_earlier_one(server):
    token = new_token()
    places = [f"/tmp/{token}", f"{token}", f"/dev/shm/{token}", f"/var/tmp/{token}"]
    params = {"places": places, "token": token}
    planted = run_json_with(server, code('''
        import json, os, sys
        params = json.load(sys.stdin)
        token = params["token"]
        planted = []
        for p in params["places"]:
            try:
                with open(p, "w") as f:
                    f.write(token)
                planted.append(p)
            except OSError:
                pass
        os.environ[token.upper()] = "1"
        os.putenv(token.upper(), "1")
        print(json.dumps(planted))
    '''), params)
    assert f"/tmp/{token}" in planted and token in planted, show(planted)
    try:
        seen = run_json_with(server, code('''
            import json, os, sys
            params = json.load(sys.stdin)
            token = params["token"]
            found = [p for p in params["places"] if os.path.exists(p)]
            for d in ("/tmp", ".", "/dev/shm"):
                found += [os.path.join(d, n) for n in os.listdir(d) if token in n]
            found += [k for k in os.environ if token.upper() in k]
            print(json.dumps(found))
        '''), params)
        assert seen == [], f"a later run sees what an earlier one left: {seen}"
    finally:
        for p in places:
            if os.path.isabs(p) and os.path.exists(p):
                os.unlink(p)  # only a server without isolation leaves these on the host


def test_concurrent_run_cannot_see_files(server):
    token = new_token()
    paths = [f"/tmp/{token}", token, f"/dev/shm/{token}"]
    try:
        setup = code('''
            for p in PARAMS["paths"]:
                open(p, "w").write("x")
            HELD = PARAMS["paths"]
        ''')
        cleanup = code('''
            for p in PARAMS["paths"]:
                os.unlink(p)
        ''')
        _, _, overlapping = run_pair(server, holder(setup, cleanup), prober(code('''
            def probe():
                return [p for p in PARAMS["paths"] if os.path.exists(p)]
        ''')), {"paths": paths})
        seen = [p for p in overlapping if p[1]]
        assert not seen, f"a concurrent run sees the other's files: {seen}"
    finally:
        for p in (f"/tmp/{token}", f"/dev/shm/{token}"):
            if os.path.exists(p):
                os.unlink(p)


def test_concurrent_run_cannot_open_posix_shared_memory(server):
    name = "/" + new_token()
    setup = code('''
        import _posixshmem
        fd = _posixshmem.shm_open(PARAMS["name"], os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o666)
        os.ftruncate(fd, 4096)
        os.write(fd, b"shared")
        HELD = PARAMS["name"]
    ''')
    cleanup = '_posixshmem.shm_unlink(PARAMS["name"])'
    _, _, overlapping = run_pair(server, holder(setup, cleanup), prober(code('''
        import _posixshmem
        def probe():
            try:
                fd = _posixshmem.shm_open(PARAMS["name"], os.O_RDONLY, 0)
            except OSError as e:
                return None
            os.close(fd)
            return "opened"
    ''')), {"name": name})
    seen = [p for p in overlapping if p[1]]
    assert not seen, f"a concurrent run opened the other's shared memory: {seen}"
    host_path = "/dev/shm" + name
    if os.path.exists(host_path):
        os.unlink(host_path)
        raise AssertionError("the run's shared memory was created in the host's /dev/shm")


def test_concurrent_run_cannot_attach_sysv_ipc(server):
    key = int.from_bytes(os.urandom(3), "big") + 0x5b000000
    libc = code('''
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
    ''')
    setup = libc + code('''
        key = PARAMS["key"]
        shm = libc.shmget(key, 4096, 0o1000 | 0o666)    # IPC_CREAT
        msg = libc.msgget(key, 0o1000 | 0o666)
        sem = libc.semget(key, 1, 0o1000 | 0o666)
        HELD = [shm, msg, sem]  # -1 each if the sandbox refuses SysV IPC altogether
    ''')
    cleanup = code('''
        if shm >= 0:
            libc.shmctl(shm, 0, None)   # IPC_RMID
        if msg >= 0:
            libc.msgctl(msg, 0, None)
        if sem >= 0:
            libc.semctl(sem, 0, 0)
    ''')
    _, _, overlapping = run_pair(server, holder(setup, cleanup), prober(libc + code('''
        key = PARAMS["key"]
        def probe():
            found = [libc.shmget(key, 0, 0), libc.msgget(key, 0), libc.semget(key, 0, 0)]
            return [x for x in found if x >= 0]
    ''')), {"key": key})
    seen = [p for p in overlapping if p[1]]
    assert not seen, f"a concurrent run attached the other's SysV IPC objects: {seen}"


def test_concurrent_run_cannot_connect_to_an_abstract_socket(server):
    name = "\0" + new_token()
    setup = code('''
        import socket
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(PARAMS["name"])
        listener.listen(8)
        listener.setblocking(False)
        HELD = PARAMS["name"][1:]
    ''')
    cleanup = code('''
        try:
            listener.accept()
            HELD = "ACCEPTED A CONNECTION"
        except BlockingIOError:
            pass
    ''')
    held, _, overlapping = run_pair(server, holder(setup, cleanup), prober(code('''
        import socket
        def probe():
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(PARAMS["name"])
                return "connected"
            except OSError:
                return None
            finally:
                s.close()
    ''')), {"name": name})
    seen = [p for p in overlapping if p[1]]
    assert not seen, f"a concurrent run connected to the other's abstract socket: {seen}"
    assert held["held"] != "ACCEPTED A CONNECTION", show(held)


def test_scratch_space_does_not_show_the_hosts(server):
    seen = run_json(server, code('''
        import json, os
        print(json.dumps({d: os.listdir(d) for d in ("/tmp", "/dev/shm")}))
    '''))
    for d, entries in seen.items():
        host = set(os.listdir(d))
        shared = sorted(set(entries) & host)
        assert not shared, f"the run's {d} shows the host's entries: {shared}"
    assert server.workdir.name not in seen["/tmp"]
