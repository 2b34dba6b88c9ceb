#!/usr/bin/python3
"""Where a request's CPU waits go (issue 19): reads a `perf sched record` trace and reports how
long the tasks on a request's path waited for a CPU once runnable, and who had the CPU.

    perf sched record -o /tmp/s.data -- /usr/bin/python3 bench/bench.py --only latency --snippets hello --n 200
    /usr/bin/python3 bench/sched_delay.py /tmp/s.data

A task waits from its wake-up (sched_wakeup, sched_wakeup_new) or from being preempted (switched
out still runnable) until it is switched in. Waiters counted: nice-0 tasks, the ones on a
request's path (the client, the server's threads, the run being served; spares being made are
nice 5 and teardowns nice 19). The task switched out when the waiter got its CPU is blamed,
sorted by what the pool gave it: a sandbox ("snakebox-run") at nice 19 is a teardown, at nice
5 a spare being made (sealing, pre-copying pages, or its runner preparing); "snakebox-zygote"
/ "snakebox-lean" at nice 5 is a zygote cloning (or its clone before it renames itself).
bench/offcpu.py is its complement: where the same tasks sleep (not waiting for a CPU).
Standard library only; needs `perf` (linux-perf) to turn the trace into text.
"""

import collections
import re
import subprocess
import sys

LINE = re.compile(r"\[(\d+)\]\s+([\d.]+):\s+sched:(\w+):\s+(.*)$")
KV = re.compile(r"(\w+)=(.*?)(?=\s+\w+=|\s+==>|$)")


def fields(text):
    return {k: v.strip() for k, v in KV.findall(text)}


def classify(comm, prio):
    nice = prio - 120 if 100 <= prio < 140 else None
    if comm == "snakebox-run":
        return {19: "sandbox teardown (nice 19)", 5: "spare being made (nice 5)",
                0: "another run (nice 0)"}.get(nice, f"sandbox (prio {prio})")
    if comm in ("snakebox-zygote", "snakebox-lean"):
        return "zygote clone (nice 5)" if nice == 5 else f"zygote (prio {prio})"
    if comm.startswith("snakebox"):
        return "server thread"
    if comm.startswith("python3"):
        return "bench client"
    if comm.startswith("swapper"):
        return "idle CPU"
    return "other (kernel threads, other processes)"


def pct(values, p):
    if not values:
        return 0.0
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = subprocess.run(["perf", "script", "-i", argv[1]], capture_output=True, text=True, check=True).stdout
    runnable = {}  # pid -> (since, nice-0 waiter?)
    delays = []  # (ms, waiter comm, blamed class)
    for line in out.splitlines():
        m = LINE.search(line)
        if not m:
            continue
        t = float(m.group(2))
        ev, f = m.group(3), fields(m.group(4))
        if ev in ("sched_wakeup", "sched_wakeup_new"):
            try:
                runnable.setdefault(int(f["pid"]), (t, int(f["prio"]) == 120, f["comm"]))
            except (KeyError, ValueError):
                pass
        elif ev == "sched_switch":
            try:
                prev, nxt = int(f["prev_pid"]), int(f["next_pid"])
                prev_prio = int(f["prev_prio"])
                next_prio = int(f["next_prio"])
            except (KeyError, ValueError):
                continue
            if f.get("prev_state", "").startswith("R") and prev != 0:
                runnable[prev] = (t, prev_prio == 120, f.get("prev_comm", ""))
            w = runnable.pop(nxt, None)
            if w and w[1] and next_prio == 120:
                delays.append(((t - w[0]) * 1000.0, w[2], classify(f.get("prev_comm", ""), prev_prio)))
    if not delays:
        print("no nice-0 wake-ups in the trace")
        return 1
    ms = [d[0] for d in delays]
    print(f"{len(delays)} waits of nice-0 tasks for a CPU: p50 {pct(ms, 50):.3f} ms, p99 {pct(ms, 99):.3f} ms, "
          f"p99.9 {pct(ms, 99.9):.3f} ms, max {max(ms):.3f} ms, total {sum(ms):.1f} ms")
    for bound in (0.5, 1.0):
        long = [d for d in delays if d[0] >= bound]
        by = collections.defaultdict(lambda: [0, 0.0])
        for d in long:
            by[d[2]][0] += 1
            by[d[2]][1] += d[0]
        print(f"\nwaits >= {bound} ms: {len(long)}, {sum(d[0] for d in long):.1f} ms in all; "
              f"who had the CPU when the waiter got it:")
        for cls, (n, total) in sorted(by.items(), key=lambda kv: -kv[1][1]):
            print(f"  {cls:45s} {n:6d} waits {total:9.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
