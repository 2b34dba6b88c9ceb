#!/usr/bin/python3
"""Where the pool's processes sleep (issue 19): reads a `perf sched record -g` trace and sums,
per process name and kernel stack, how long the snakebox processes (the server, the zygotes,
the sandboxes) were off CPU and not runnable, i.e. waiting for something other than a CPU.
bench/sched_delay.py is its complement (waits for a CPU).

    perf sched record -g -o /tmp/s.data -- /usr/bin/python3 bench/bench.py --only latency --snippets hello --n 1000
    /usr/bin/python3 bench/offcpu.py /tmp/s.data [FRAME ...]

With FRAME arguments (kernel function names, e.g. rcu_sync_enter cgroup_kn_lock_live) it also
prints, per process name, the single waits whose stack holds that frame: how many, and their
median, 90th percentile and longest. A few long waits are a tail; many short ones are not.

It reads `perf sched timehist`: a line is a task switched in, with how long it waited before
and the stack it went to sleep with at its previous switch-out, so each wait is charged to the
stack the task slept in. Waits in epoll, in a pipe or socket read and in rt_sigtimedwait are
idle servers, not delays; what matters is everything else, such as a sandbox's umount waiting
for an RCU grace period. Standard library only; needs `perf` (linux-perf).
"""

import collections
import re
import subprocess
import sys

LINE = re.compile(
    r"\s*[\d.]+\s+\[\d+\]\s+(.+?)\[(\d+)(?:/\d+)?\]\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*(.*)$")
GENERIC = ("schedule", "__schedule", "preempt_schedule", "schedule_timeout", "schedule_hrtimeout")


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: offcpu.py PERF_SCHED_DATA [FRAME ...]", file=sys.stderr)
        return 2
    frames_wanted = argv[2:]
    single = collections.defaultdict(list)
    text = subprocess.run(["perf", "sched", "timehist", "-i", argv[1]], capture_output=True,
                          text=True, check=True).stdout
    last = {}
    wait = collections.Counter()
    run = collections.Counter()
    delay = collections.Counter()
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        comm, tid = m.group(1).strip(), m.group(2)
        if not comm.startswith("snakebox"):
            continue
        waited, sch_delay, ran = (float(m.group(i)) for i in (3, 4, 5))
        if tid in last:
            frames = [f for f in last[tid].split(" <- ") if f and not f.startswith(GENERIC)]
            wait[(comm, " < ".join(frames[:4]))] += waited
            for want in frames_wanted:
                if any(f.split("+")[0] == want for f in frames):
                    single[(want, comm)].append(waited)
        run[comm] += ran
        delay[comm] += sch_delay
        last[tid] = m.group(6)
    print("by process name: ms on CPU, ms runnable but waiting for a CPU")
    for comm in sorted(run):
        print(f"  {comm:18s} {run[comm]:10.1f} {delay[comm]:10.1f}")
    print("ms asleep, by process name and the kernel stack it slept in (top 30)")
    for (comm, stack), ms in wait.most_common(30):
        print(f"  {ms:10.1f}  {comm:16s} {stack}")
    if frames_wanted:
        print("single waits whose stack holds FRAME, ms: count, median, p90, longest")
        for want in frames_wanted:
            for (w, comm), ws in sorted(single.items()):
                if w != want:
                    continue
                ws.sort()
                print(f"  {want:28s} {comm:16s} {len(ws):6d} {ws[len(ws) // 2]:8.2f} "
                      f"{ws[min(len(ws) - 1, int(len(ws) * 0.9))]:8.2f} {ws[-1]:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
