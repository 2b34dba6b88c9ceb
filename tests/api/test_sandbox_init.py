"""A sandbox's init (pid 1) is a program of a few pages, not a copy of the zygote (issue 11, the
cost of the init).

Failed before: the sealed child stayed behind as the init after it had forked the runner, so pid 1
was a second copy of the zygote: /proc/1/status showed its VmRSS at about 120 MB in a full
sandbox (13 MB in a lean one; the zygote's pages it mapped) and /proc/1/maps listed libpython; the
kernel copied the zygote's page tables twice per run and tore down two address spaces at its end.
"""

import pytest

from conftest import code, run_json, show


@pytest.mark.parametrize("imports", ["", "import numpy"], ids=["lean", "full"])
def test_init_is_a_small_program_and_the_runner_its_child(server, imports):
    seen = run_json(server, imports + "\n" + code('''
        import json, os
        def status(pid):
            with open(f"/proc/{pid}/status") as f:
                return dict(line.rstrip("\\n").split(":\\t", 1) for line in f if ":\\t" in line)
        def kib(s, key):
            return int(s[key].split()[0])
        init, me = status(1), status(os.getpid())
        print(json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "init_name": init["Name"],
                          "init_rss": kib(init, "VmRSS"), "init_pte": kib(init, "VmPTE"),
                          "runner_rss": kib(me, "VmRSS")}))
    '''))
    # The runner is pid 2, the init's child, as before.
    assert (seen["pid"], seen["ppid"]) == (2, 1), show(seen)
    # The name the server's and an operator's tools look for (the exec named it after its fd).
    assert seen["init_name"] == "snakebox-run", show(seen)
    # A copy of even the lean zygote maps over 10 MB; the init program maps a few pages. The
    # bound is far above any build of it, far below any copy of a zygote.
    assert seen["init_rss"] < 1024 and seen["init_pte"] < 64, show(seen)
    assert seen["runner_rss"] > 4 * seen["init_rss"], show(seen)


def test_glibc_knows_the_runners_cpu(server):
    """glibc's sched_getcpu() reads the rseq area, which the kernel keeps current only for a thread
    that registered it. A fork keeps the registration; the runner is a clone that shares pid 1's
    memory (CLONE_VM), which the kernel starts unregistered. Failed with the runner started that
    way before it registered the area again: sched_getcpu() kept returning the CPU it ran on at
    the clone, whatever CPU the run was moved to."""
    seen = run_json(server, code('''
        import ctypes, json, os
        libc = ctypes.CDLL(None, use_errno=True)
        out = []
        for _ in range(3):
            for cpu in sorted(os.sched_getaffinity(0)):
                os.sched_setaffinity(0, {cpu})
                out.append([cpu, libc.sched_getcpu()])
        print(json.dumps(out))
    '''))
    assert seen and all(want == got for want, got in seen), show(seen)
