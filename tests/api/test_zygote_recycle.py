"""State every run of one zygote shares (issue 9): multiprocessing's authkey is drawn afresh for
each run, and a zygote is replaced by a fresh one (a new hash secret, a new address layout) after
ZYGOTE_MAX_SPAWNS sandboxes or ZYGOTE_MAX_AGE seconds, while requests keep being served.

Python's str hash is keyed by a secret drawn when the interpreter starts (PYTHONHASHSEED is not
set in the zygote's environment), so `hash("snakebox")` names the zygote a run was cloned from.
Each test starts its own server with PREINSTALL_LIBS=numpy (the cheapest full zygote): code that
imports numpy runs in the full zygote's sandboxes, code that names no library in the lean one's.
Only pids found among that server's children are ever signalled.
"""

import os
import re
import signal
import threading
import time

from conftest import children, comm, own_pid_namespace, request, run, show, wait_for

HASH = 'print(hash("snakebox"))'
FULL_HASH = 'import numpy\nprint(hash("snakebox"))'
HELLO = 'print("Hello, World!")'


def recycles(server):
    """{'full': n, 'lean': n}: completed recycles, from /metrics."""
    text = request(server, "GET", "/metrics", timeout=10).body.decode()
    found = dict(re.findall(r'^snakebox_zygote_recycles_total\{zygote="(\w+)"\} (\d+)$', text, re.M))
    return {k: int(v) for k, v in found.items()}


def full_zygotes(server):
    return sorted(c for c in children(server.pid) if comm(c) == "snakebox-zygote" and own_pid_namespace(c))


def hash_of(server, src):
    status, body = run(server, src, timeout=60)
    assert status == 200 and body.get("status") == "Success", show((status, body))
    return int(body["output"])


class Load:
    """Requests from one thread per source, in the background, until stop() and then `tail`
    more each (at most `cap` each); every answer is kept."""

    def __init__(self, server, sources, tail=5, cap=200):
        self.server = server
        self.stopping = threading.Event()
        self.results = {src: [] for src in sources}
        self.threads = [threading.Thread(target=self._one, args=(src, tail, cap)) for src in sources]
        for t in self.threads:
            t.start()

    def _one(self, src, tail, cap):
        left = None
        while len(self.results[src]) < cap and left != 0:
            if left is None and self.stopping.is_set():
                left = tail
            try:
                self.results[src].append(run(self.server, src, timeout=60))
            except Exception as e:  # noqa: BLE001 - kept and reported by check()
                self.results[src].append(("exception", repr(e)))
            if left:
                left -= 1

    def stop(self, timeout=300):
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self.threads), "some requests got no answer"

    def check(self):
        """Asserts every request succeeded; returns {src: [output, ...]} in request order."""
        outputs = {}
        for src, got in self.results.items():
            bad = [r for r in got if not (r[0] == 200 and r[1].get("status") == "Success")]
            assert not bad, f"{len(bad)} of {len(got)} requests {src!r} failed: {show(bad[:3])}"
            outputs[src] = [r[1]["output"] for r in got]
        return outputs


def test_multiprocessing_authkey_differs_between_runs(server):
    """multiprocessing draws its authkey (the key its managers and connections authenticate
    with) once, at import. The full zygote imports it (through its libraries), so every run it
    cloned printed the same key: on the old code the two full runs printed the same hex. The
    lean zygote does not import it, so there a run's own import draws a fresh one."""
    probe = ("import sys\npre = 'multiprocessing.process' in sys.modules\n"
             "import multiprocessing\nprint(pre, multiprocessing.current_process().authkey.hex())\n")
    full = [hash_of_text(server, "import numpy\n" + probe) for _ in range(2)]
    assert full[0][0] == "True", f"the full zygote did not preload multiprocessing: {full}"
    assert full[0][1] != full[1][1], f"two runs of the full zygote share the authkey {full[0][1]}"
    lean = [hash_of_text(server, probe) for _ in range(2)]
    assert lean[0][1] != lean[1][1], f"two runs of the lean zygote share the authkey {lean[0][1]}"


def hash_of_text(server, src):
    status, body = run(server, src, timeout=60)
    assert status == 200 and body.get("status") == "Success", show((status, body))
    return body["output"].split()


def test_recycle_after_max_spawns_under_load(start_server):
    """ZYGOTE_MAX_SPAWNS=5: both zygotes are replaced again and again while three clients send
    requests (hash probes to each kind, and hello worlds) until each kind's runs have shown two
    hash secrets, then five more each (at most 200 each). Every request succeeds, and /metrics
    counts completed recycles of both kinds. On the old code every run of a kind printed the
    same hash: 'the full zygote's runs printed one hash secret in 120 s'."""
    s = start_server({"PREINSTALL_LIBS": "numpy", "ZYGOTE_MAX_SPAWNS": "5", "POOL_SIZE": "2",
                      "LEAN_POOL_SIZE": "2", "MAX_CONCURRENCY": "4", "EXECUTION_TIMEOUT": "20"})
    load = Load(s, [HASH, FULL_HASH, HELLO])

    def secrets_seen(src):
        return {r[1].get("output") for r in list(load.results[src]) if r[0] == 200}

    try:
        for name, src in (("full", FULL_HASH), ("lean", HASH)):
            wait_for(lambda: len(secrets_seen(src)) >= 2 or not any(t.is_alive() for t in load.threads),
                     120, f"the {name} zygote's runs printed one hash secret in 120 s")
    finally:
        load.stop()
    out = load.check()
    assert all(o == "Hello, World!\n" for o in out[HELLO]), show(out[HELLO])
    lean, full = set(out[HASH]), set(out[FULL_HASH])
    assert len(full) >= 2, f"the full zygote's runs all printed one hash secret: {full}"
    assert len(lean) >= 2, f"the lean zygote's runs all printed one hash secret: {lean}"
    wait_for(lambda: min(recycles(s).get(k, 0) for k in ("full", "lean")) >= 1, 30,
             f"/metrics counts no completed recycle of each kind: {recycles(s)}")
    assert "was replaced by a fresh one (ZYGOTE_MAX_SPAWNS)" in s.stderr()
    assert s.alive()


def test_recycle_after_max_age_changes_the_hash_secret(start_server):
    """ZYGOTE_MAX_AGE=2: with a client sending hello worlds all along, a run's hash is taken;
    once /metrics counts two more completed recycles of its kind, every run comes from a newer
    zygote than that run's, so the hash differs (a recycle in progress may still serve the run
    from the zygote before it: hence two). On the old code the count never moved: 'no recycle of
    the full zygote within 120 s'."""
    s = start_server({"PREINSTALL_LIBS": "numpy", "ZYGOTE_MAX_AGE": "2", "POOL_SIZE": "2",
                      "LEAN_POOL_SIZE": "2", "EXECUTION_TIMEOUT": "20"})
    load = Load(s, [HELLO])
    try:
        for kind, src in (("full", FULL_HASH), ("lean", HASH)):
            before = hash_of(s, src)
            seen = recycles(s).get(kind, 0)
            wait_for(lambda: recycles(s).get(kind, 0) >= seen + 2, 120,
                     f"no recycle of the {kind} zygote within 120 s (count {seen})")
            after = hash_of(s, src)
            assert after != before, f"the {kind} zygote's hash secret did not change: {before}"
    finally:
        load.stop()
    out = load.check()
    assert all(o == "Hello, World!\n" for o in out[HELLO]), show(out[HELLO])
    assert "was replaced by a fresh one (ZYGOTE_MAX_AGE)" in s.stderr()


def test_successor_that_dies_while_importing_leaves_the_zygote_serving(start_server):
    """The full zygote's successor is killed twice while it imports: the zygote it was to
    replace keeps serving (every request of a concurrent stream succeeds), the failure is logged
    once, and a later successor takes over. On the old code no successor ever appeared: 'no
    successor of the full zygote appeared'."""
    s = start_server({"PREINSTALL_LIBS": "numpy", "ZYGOTE_MAX_AGE": "2", "POOL_SIZE": "2",
                      "EXECUTION_TIMEOUT": "20"})
    first = full_zygotes(s)
    assert len(first) == 1, f"expected one snakebox-zygote among the server's children: {first}"
    load = Load(s, [HELLO, FULL_HASH])
    killed = []
    try:
        for _ in range(2):
            succ = wait_for(lambda: [z for z in full_zygotes(s) if z not in first + killed], 30,
                            "no successor of the full zygote appeared")
            assert recycles(s).get("full", 0) == 0, "the successor took over before it could be killed"
            os.kill(succ[0], signal.SIGKILL)
            killed.append(succ[0])
            wait_for(lambda: succ[0] not in full_zygotes(s), 10, f"killed successor {succ[0]} not reaped")
            assert first[0] in full_zygotes(s), "the zygote being replaced did not keep serving"
        wait_for(lambda: recycles(s).get("full", 0) >= 1, 60, "no successor took over after the kills")
    finally:
        load.stop()
    out = load.check()
    assert all(o == "Hello, World!\n" for o in out[HELLO]), show(out[HELLO])
    log = s.stderr()
    assert log.count("the zygote's replacement died while importing") == 1, log[-3000:]
    assert "the zygote's replacement started" in log, log[-3000:]


def test_stop_during_a_recycle(start_server):
    """SIGTERM while the full zygote's successor imports: the server exits 0 and both zygotes
    are gone with it. On the old code no successor appeared, so the state could not be reached:
    'no successor of the full zygote appeared'."""
    s = start_server({"PREINSTALL_LIBS": "numpy", "ZYGOTE_MAX_AGE": "2"})
    first = full_zygotes(s)
    both = wait_for(lambda: len(full_zygotes(s)) == 2 and full_zygotes(s), 30,
                    "no successor of the full zygote appeared")
    assert set(first) <= set(both), (first, both)
    os.kill(s.pid, signal.SIGTERM)
    assert s.wait_exit(30) == 0, s.stderr()[-3000:]
    for z in both:
        wait_for(lambda: not os.path.exists(f"/proc/{z}") or comm(z) is None, 10, f"zygote {z} outlived the server")


def test_zygote_killed_while_its_successor_imports(start_server):
    """The full zygote is SIGKILLed while its successor imports: the successor takes its place
    (no third zygote is started for the restart), and every request of a concurrent stream
    succeeds. On the old code no successor appeared: 'no successor of the full zygote
    appeared'."""
    s = start_server({"PREINSTALL_LIBS": "numpy", "ZYGOTE_MAX_AGE": "2", "POOL_SIZE": "2",
                      "EXECUTION_TIMEOUT": "20"})
    first = full_zygotes(s)
    assert len(first) == 1, f"expected one snakebox-zygote among the server's children: {first}"
    load = Load(s, [HELLO, FULL_HASH])
    try:
        succ = wait_for(lambda: [z for z in full_zygotes(s) if z not in first], 30,
                        "no successor of the full zygote appeared")
        assert recycles(s).get("full", 0) == 0, "the successor took over before the zygote was killed"
        os.kill(first[0], signal.SIGKILL)
        wait_for(lambda: first[0] not in full_zygotes(s), 10, f"killed zygote {first[0]} not reaped")
        wait_for(lambda: request(s, "GET", "/health", timeout=10).json.get("zygote") == "up", 60,
                 "the zygote did not come up again")
        # Up again: the adopted successor serves, and its own successor is 2 s away.
        assert full_zygotes(s) == succ, f"not the successor {succ} alone: {full_zygotes(s)}"
    finally:
        load.stop()
    out = load.check()
    assert all(o == "Hello, World!\n" for o in out[HELLO]), show(out[HELLO])
    text = request(s, "GET", "/metrics", timeout=10).body.decode()
    assert re.search(r"^snakebox_zygote_restarts_total 1$", text, re.M), text


def test_no_sandbox_stays_sealing_after_a_burst(start_server):
    """A sandbox's READY can arrive before its zygote's reply with its pid (the zygote is
    descheduled between releasing the child and replying, on a busy host). The old code read it
    while the sandbox was still 'spawning', dropped it as a waiting sandbox's talk, and the
    sandbox stayed 'starting' for ever: the pool shrank for good, and requests could wait for a
    sandbox that never came. Recycling made it common (a successor's import keeps the host busy);
    here it is tested without. Three clients send 300 requests each; all succeed, and then the
    pool settles full (4 ready, none starting). On the old code, 4 runs of 4 failed, e.g. 'the
    pool did not settle within 30 s: {'ready': 3, 'busy': 0, 'queued': 0, 'starting': 1}' (a
    20 s probe also saw requests unanswered for 35 s)."""
    s = start_server({"PREINSTALL_LIBS": "numpy", "POOL_SIZE": "2", "LEAN_POOL_SIZE": "2",
                      "EXECUTION_TIMEOUT": "20"})
    load = Load(s, [HELLO, 'print("lean")', 'import numpy\nprint("full")'], tail=0, cap=300)
    for t in load.threads:
        t.join(600)
    assert not any(t.is_alive() for t in load.threads), "some requests got no answer"
    load.check()
    deadline = time.monotonic() + 30
    while True:
        pool = request(s, "GET", "/health", timeout=10).json["pool"]
        if pool["starting"] == 0 and pool["ready"] == 4:
            break
        assert time.monotonic() < deadline, f"the pool did not settle within 30 s: {pool}"
        time.sleep(0.1)
