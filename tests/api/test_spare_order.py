"""Spares made at once become ready one after the other (issue 19).

When several requests take spares together, the zygote makes as many new ones. They used to
share the CPUs evenly and so became ready together, late: the next request waited for the whole
batch. Now the oldest spare in the making has its cgroup's weight and every younger one is idle
(cpu.idle 1), using only the CPU nothing else wants; a spare's cgroup is not idle any more once
it is ready, taken or torn down (pool.c order_spares).

The test reads the spares' cgroups from the host while the pool refills. It needs root and a cpu
controller with cpu.idle (Linux 5.15+), and is skipped otherwise, saying why. Before the change,
test_younger_spares_wait_for_the_oldest failed on its first check: no spare's cpu.idle was ever 1
(11,943 snapshots). With the order reversed (the youngest spare first) it failed on the order
check ("spare 9 idle with no older spare going first: {9: 1, 10: 1}"). The last check (no ready
spare left idle) did not catch a build without the reset at ready: in order, each spare is the
oldest, so no longer idle, by the time it is ready; the reset is for the ones that finish early.
"""

import os
import re
import threading

import pytest

from conftest import children, own_pid_namespace, request, run, show, wait_for

SPARES = 8
SLEEP = "import time; time.sleep(3)"


def pool(server):
    return (request(server, "GET", "/health", timeout=10).json or {}).get("pool", {})


def settled(server, size):
    wait_for(lambda: (lambda p: p.get("ready") == size and not p.get("starting") and not p.get("busy"))(
        pool(server)), 60, f"the pool settles at {size} ready sandboxes: {pool(server)}")


def spares_dir(server):
    """The directory of the server's sandbox cgroups (…/snakebox-<pid>, holding sb-<id>) in the
    cpu hierarchy (v1) or the unified one (v2), from a sandbox's /proc/<pid>/cgroup; or None."""
    for pid in children(server.pid):
        if own_pid_namespace(pid):
            continue  # a zygote
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if "cpu" in controllers.split(",") or line.startswith("0::"):
                root = "/sys/fs/cgroup/cpu" if controllers else "/sys/fs/cgroup"
                if re.search(r"/sb-\d+$", path) and os.path.exists(f"{root}{path}/cpu.idle"):
                    return os.path.dirname(f"{root}{path}")
    return None


def snapshot(base, skip):
    """{sandbox id: cpu.idle} of the sandbox cgroups under base whose id is not in skip: listed
    first, then read in ascending id, so that an idle spare's older sibling is read before it."""
    try:
        ids = sorted(int(d[3:]) for d in os.listdir(base) if d.startswith("sb-"))
    except OSError:
        return {}
    out = {}
    for i in ids:
        if i in skip:
            continue
        try:
            with open(f"{base}/sb-{i}/cpu.idle") as f:
                out[i] = int(f.read())
        except (OSError, ValueError):
            pass  # torn down meanwhile
    return out


def test_younger_spares_wait_for_the_oldest(start_server):
    if os.geteuid() != 0:
        pytest.skip("needs root: the sandboxes' cgroups exist only under a root server")
    server = start_server({"POOL_SIZE": str(SPARES), "LEAN_POOL_SIZE": "0",
                           "MAX_CONCURRENCY": str(SPARES)})
    settled(server, SPARES)
    base = spares_dir(server)
    if base is None:
        pytest.skip("no cpu cgroup controller with cpu.idle (Linux 5.15+) for the sandboxes")
    taken = set(snapshot(base, set()))
    assert len(taken) == SPARES, show(taken)

    # Every spare is taken at once by a run that sleeps: the pool makes SPARES new ones together.
    results = []
    threads = [threading.Thread(target=lambda: results.append(run(server, SLEEP, timeout=60)))
               for _ in range(SPARES)]
    for t in threads:
        t.start()
    snaps = []
    while any(t.is_alive() for t in threads):
        s = snapshot(base, taken)
        if s:
            snaps.append(s)
    for t in threads:
        t.join()
    assert len(results) == SPARES and all(st == 200 and b.get("status") == "Success" for st, b in results), \
        show(results)

    idle_seen = [s for s in snaps if 1 in s.values()]
    assert idle_seen, f"no spare in the making was ever idle; {len(snaps)} snapshots, last {show(snaps[-3:])}"
    for s in snaps:
        for i, v in s.items():
            if v == 1:
                assert any(j < i and w == 0 for j, w in s.items()), \
                    f"spare {i} idle with no older spare going first: {s}"

    settled(server, SPARES)
    final = snapshot(base, taken)
    assert len(final) == SPARES and all(v == 0 for v in final.values()), \
        f"ready spares must not stay idle: {final}"
