"""Attacks on the server itself: see its processes, signal them, look at its files, learn the
host's name. A naive server (python3 in a subprocess) allows all of them."""

import os
import socket

from conftest import ROOT, code, run_json, run_json_with, show



def host_descendants(pid):
    """The host pids of pid's descendants (the zygote, ready sandboxes)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_proc_shows_only_the_runs_own_processes(server):
    seen = run_json(server, code('''
        import json, os
        pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        print(json.dumps({"pids": pids, "me": os.getpid()}))
    '''))
    assert seen["me"] in seen["pids"], show(seen)
    assert len(seen["pids"]) <= 3, f"the run sees processes that are not its own: {seen}"
    assert server.pid not in seen["pids"] or server.pid <= 3, show(seen)


def test_cannot_signal_the_server_or_its_helpers(server):
    targets = [server.pid] + host_descendants(server.pid) + [os.getpid(), os.getppid()]
    targets = [p for p in targets if p > 10]  # small numbers exist inside any pid namespace
    assert server.pid in targets, "the server's pid is too small to test"
    result = run_json_with(server, code('''
        import json, os, sys
        result = {}
        for pid in json.load(sys.stdin):
            try:
                os.kill(pid, 0)  # signal 0: checks the right to signal, sends nothing
                result[pid] = "signalable"
            except OSError as e:
                result[pid] = "errno %d" % e.errno
            if os.path.exists("/proc/%d" % pid):
                result[pid] += " visible"
        print(json.dumps(result))
    '''), targets)
    reachable = {p: r for p, r in result.items() if r == "signalable" or "visible" in r}
    assert not reachable, f"the run can see or signal host processes: {reachable}"


def test_servers_directory_and_home_directories_are_not_visible(server):
    hidden = [str(ROOT), str(ROOT / "build" / "snakebox"), str(ROOT / "Makefile"),
              str(server.workdir), str(server.stderr_path), "/work/shared"]
    homes = ["/root", "/home"]
    seen = run_json_with(server, code('''
        import json, os, sys
        result = {}
        for p in json.load(sys.stdin):
            entry = {"exists": os.path.exists(p)}
            try:
                entry["list"] = sorted(os.listdir(p))
            except OSError as e:
                entry["list"] = None
            try:
                with open(p, "rb") as f:
                    f.read(1)
                entry["read"] = True
            except OSError:
                entry["read"] = False
            result[p] = entry
        print(json.dumps(result))
    '''), hidden + homes)
    for p in hidden:
        assert seen[p]["exists"] is False and seen[p]["list"] is None and seen[p]["read"] is False, (
            f"the run can see {p}: {seen[p]}")
    for p in homes:
        listed = set(seen[p]["list"] or [])
        try:
            host_entries = set(os.listdir(p)) if os.path.isdir(p) else set()
        except PermissionError:
            # The suite runs unprivileged too: then the run must not list it at all.
            assert not listed, f"the run can list {p}, which its own user cannot: {sorted(listed)}"
            continue
        assert not (listed & host_entries), f"the run can list the host's {p}: {sorted(listed)}"


def test_hostname_is_not_the_hosts(server):
    seen = run_json(server, code('''
        import json, os, socket
        print(json.dumps([socket.gethostname(), os.uname().nodename]))
    '''))
    assert socket.gethostname() not in seen, f"the run sees the host's name: {seen}"
    assert os.uname().nodename not in seen, show(seen)
