"""Each sandbox joins its own cgroups itself, before anything else (seal.c seal_join_cgroups).

The server opens, per sandbox, the files that place a process in the run's cgroups (v1 `tasks`,
v2 `cgroup.procs`); the sandbox, a fresh clone of the zygote, writes "0" to them as its first
act, so that the zygote never waits on the kernel's cgroup locks (issue 19). These tests read,
from the host, where the sandboxes and the zygotes are: every sandbox (its init and its runner)
in a cgroup "sb-<id>" of its own in every hierarchy the server uses, the same id in each, no
two sandboxes sharing one; no zygote in any sandbox's cgroup (a "0" written by the zygote would
have moved the zygote itself); the limits of the cgroup hold for the run. Root only: an
unprivileged server has no cgroups of its own to read.
"""

import os
import re

import pytest

from conftest import children, own_pid_namespace, request, run, show, wait_for

POOL = 3


def cgroups_of(pid):
    """{hierarchy: path} from /proc/<pid>/cgroup: "memory", "pids", "cpu,cpuacct", ... for v1,
    "" for the unified (v2) one; None if the process is gone."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    out = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        out[controllers] = path
    return out


def sandbox_ids(groups):
    """{hierarchy: id} of the hierarchies in which the process is in a sandbox's cgroup."""
    out = {}
    for h, path in groups.items():
        m = re.search(r"/snakebox-\d+/sb-(\d+)$", path)
        if m:
            out[h] = int(m.group(1))
    return out


def expected_hierarchies(isolation):
    """The hierarchies a root server places every sandbox in, from what /health says it uses:
    memory (and pids) in v1's own hierarchies or v2's unified one."""
    mode = isolation.get("memory_limit")
    if mode == "cgroup v2":
        return {""}
    if mode == "cgroup v1":
        names = {"memory"}
        if isolation.get("pids_cgroup"):
            names.add("pids")
        return names
    return set()


def test_every_sandbox_is_alone_in_its_cgroups_and_no_zygote_is(start_server):
    if os.geteuid() != 0:
        pytest.skip("needs root: an unprivileged server has no sandbox cgroups to read")
    server = start_server({"POOL_SIZE": str(POOL), "LEAN_POOL_SIZE": "1"})
    health = request(server, "GET", "/health", timeout=10).json
    isolation = health["isolation"]
    want = expected_hierarchies(isolation)
    if not want:
        pytest.skip(f"the server has no memory cgroup here: {show(isolation)}")
    wait_for(lambda: (request(server, "GET", "/health", timeout=10).json or {}).get("pool", {}).get("ready")
             == POOL + 1, 60, "the pools fill")

    kids = children(server.pid)
    zygotes = [p for p in kids if own_pid_namespace(p)]
    sandboxes = [p for p in kids if not own_pid_namespace(p)]
    assert len(zygotes) == 2 and len(sandboxes) == POOL + 1, show({"zygotes": zygotes, "sandboxes": sandboxes})

    for z in zygotes:
        groups = cgroups_of(z)
        assert groups is not None and not sandbox_ids(groups), f"zygote {z} is in a sandbox's cgroup: {groups}"

    seen = {}
    for sb in sandboxes:
        # The init, and the runner it started after the join (it inherits the cgroups).
        procs = [sb] + children(sb)
        assert len(procs) == 2, f"sandbox {sb}: init and runner expected, found {procs}"
        ids = None
        for p in procs:
            groups = cgroups_of(p)
            assert groups is not None, f"process {p} of sandbox {sb} vanished"
            got = sandbox_ids(groups)
            assert want <= set(got), f"process {p} of sandbox {sb} is not in its cgroups: {groups}"
            assert len(set(got.values())) == 1, f"process {p} is in several sandboxes' cgroups: {groups}"
            if ids is None:
                ids = got
            assert got == ids, f"init and runner of sandbox {sb} are apart: {ids} vs {got}"
        sid = next(iter(ids.values()))
        assert sid not in seen, f"sandboxes {seen[sid]} and {sb} share cgroup sb-{sid}"
        seen[sid] = sb

    # The cgroup the sandbox joined is the one with the run's limits: a run over its memory is
    # stopped there (MemoryError or killed), and what it used is counted.
    status, body = run(server, "x = bytearray(300 << 20); x[::4096] = b'1' * len(x[::4096])",
                       timeout=60, memory_mb=100)
    assert status == 200 and body.get("status") == "Error", show(body)
    status, body = run(server, "x = bytearray(60 << 20); x[::4096] = b'1' * len(x[::4096])", timeout=60)
    assert status == 200 and body.get("status") == "Success", show(body)
    assert body.get("memory_peak_bytes", 0) >= 60 << 20, show(body)
