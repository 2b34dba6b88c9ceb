"""Attack: starve or signal another run through the kernel's per-user counts. The kernel counts
inotify instances, processes, message queue bytes, pipe buffers and fds in flight per user; if all
runs are one host user, one run holding every inotify instance makes another's inotify_init1 fail
(EMFILE), and holding and releasing them is a channel between concurrent runs. A root server
gives each concurrent sandbox its own host uid (SANDBOX_UID_RANGE) and makes that uid the owner
of the sandbox's user namespace, which is the uid the kernel charges on the host.

An unprivileged server can only map its own uid: every run shares it (SECURITY.md), so these
tests need a root server."""

import json
import os
import threading

import pytest

from conftest import code, run, show
from test_cross_run import READ_PARAMS, holder, run_pair

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="an unprivileged server maps every run to its own uid (SECURITY.md)")

LIBC = code('''
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    def host_uid():
        with open("/proc/self/uid_map") as f:
            inside, outside, count = f.read().split()
        return int(outside)
''')


@needs_root
def test_one_run_holding_every_inotify_instance_leaves_others_theirs(start_server):
    """Run A takes inotify instances until the kernel refuses one (at most the per-user max,
    /proc/sys/fs/inotify/max_user_instances) and holds them; run B, concurrently, opens one.
    Before the fix every run was the same host user and every sandbox's user namespace was owned
    by root, so the kernel charged all of them to one count: A got EMFILE at its 128th
    instance or before, and every probe of B failed with EMFILE (24). Also checks that the two
    runs have different host uids (/proc/self/uid_map), which they did not (65534 both)."""
    server = start_server({"PREINSTALL_LIBS": "", "MAX_OPEN_FILES": "4096", "POOL_SIZE": "2"})
    with open("/proc/sys/fs/inotify/max_user_instances") as f:
        limit = int(f.read())
    setup = LIBC + code('''
        held = []
        err = 0
        for _ in range(PARAMS["limit"] + 1):
            fd = libc.inotify_init1(0o2000000)
            if fd < 0:
                err = ctypes.get_errno()
                break
            held.append(fd)
        HELD = {"count": len(held), "errno": err, "uid": host_uid()}
    ''')
    # run_pair() sends {hold, probe, limit} as stdin; READ_PARAMS reads it into PARAMS.
    prober = READ_PARAMS + LIBC + code('''
        def probe():
            fd = libc.inotify_init1(0o2000000)
            if fd < 0:
                return -ctypes.get_errno()
            os.close(fd)
            return fd
        probes = []
        end = time.time() + PARAMS["probe"]
        while time.time() < end:
            probes.append([time.time(), probe()])
            time.sleep(0.1)
        print(json.dumps({"probes": probes, "uid": host_uid()}))
    ''')
    held, b, overlapping = run_pair(server, holder(setup), prober, {"limit": limit})
    a = held["held"]
    # A really took what one user may have: the kernel (or the bound of the loop) stopped it.
    assert a["count"] >= 1 and (a["errno"] == 24 or a["count"] == limit + 1), show(held)
    failed = [p for p in overlapping if p[1] < 0]
    assert not failed, (
        f"run A holds {a['count']} inotify instances and run B cannot open one "
        f"(errors {sorted({p[1] for p in failed})}): the runs share one per-user count")
    assert a["uid"] != b["uid"], f"two concurrent runs have the same host uid {a['uid']}"


@needs_root
def test_runs_reuse_uids_only_after_the_sandbox_is_gone(start_server):
    """A range just large enough (2 x (POOL_SIZE 1 + LEAN_POOL_SIZE 0 + MAX_CONCURRENCY 2) + 2 =
    8 uids): many runs, three at a time, all succeed, each within the range, and two runs that
    overlap never have the same uid. Before, the key was ignored and every run was uid 65534."""
    first = 1879100000
    server = start_server({"PREINSTALL_LIBS": "", "POOL_SIZE": "1", "LEAN_POOL_SIZE": "0",
                           "MAX_CONCURRENCY": "2", "SANDBOX_UID_RANGE": f"{first}-{first + 7}"})
    src = LIBC + code('''
        import json, time
        t0 = time.time()
        time.sleep(0.3)
        print(json.dumps({"uid": host_uid(), "gid": int(open("/proc/self/gid_map").read().split()[1]),
                          "t0": t0, "t1": time.time()}))
    ''')
    answers = []
    lock = threading.Lock()

    def go():
        for _ in range(4):
            status, body = run(server, src)
            with lock:
                answers.append((status, body))

    threads = [threading.Thread(target=go) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a run never answered"
    assert len(answers) == 12
    runs = []
    for status, body in answers:
        assert status == 200 and body["status"] == "Success", show(body)
        runs.append(json.loads(body["stdout"].strip().splitlines()[-1]))
    for r in runs:
        assert first <= r["uid"] <= first + 7 and r["gid"] == r["uid"], show(runs)
    for i, x in enumerate(runs):
        for y in runs[i + 1:]:
            if x["t0"] < y["t1"] and y["t0"] < x["t1"]:
                assert x["uid"] != y["uid"], f"two overlapping runs share uid {x['uid']}: {show(runs)}"


@needs_root
def test_a_range_too_small_for_the_pool_is_refused_at_start(start_server):
    """The range must give every sandbox that can exist at once its own uid: a server whose range
    cannot refuses to start, naming the key (before: the key was ignored and the server
    started)."""
    server = start_server({"SANDBOX_UID_RANGE": "1879100000-1879100003", "POOL_SIZE": "4",
                           "MAX_CONCURRENCY": "4", "PREINSTALL_LIBS": ""}, wait=False)
    status = server.wait_exit(timeout=60)
    assert status not in (None, 0), "the server started with a range smaller than its pool"
    assert "SANDBOX_UID_RANGE" in server.stderr() and "larger range" in server.stderr(), server.stderr()
