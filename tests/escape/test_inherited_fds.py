"""Attack: use a file descriptor inherited from the server (its listening socket, a client's
connection, a log file, a directory) to reach past the sandbox. The run may hold only its own
stdin/stdout/stderr and its channel to the server. A naive server that forks without closing
its descriptors (as the old project's multiprocessing did) hands over its listening socket."""

import re

from conftest import code, run_json, show

FD_SCAN = code('''
    import json, os, socket, stat
    result = {}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        entry = {}
        try:
            entry["target"] = os.readlink("/proc/self/fd/" + name)
            st = os.fstat(fd)
        except OSError as e:
            continue  # the descriptor os.listdir itself used, closed by now
        entry["dir"] = stat.S_ISDIR(st.st_mode)
        entry["regular"] = stat.S_ISREG(st.st_mode)
        if stat.S_ISSOCK(st.st_mode):
            s = socket.socket(fileno=fd)
            try:
                entry["family"] = int(s.family)
                entry["listening"] = bool(s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
            finally:
                s.detach()
        result[fd] = entry
    print(json.dumps(result))
''')

ALLOWED_TARGET = re.compile(r"^(pipe:\[\d+\]|socket:\[\d+\]|anon_inode:.*|/dev/null|/memfd:.*)$")


def test_only_the_runs_own_descriptors_are_open(server):
    fds = run_json(server, FD_SCAN)
    assert {"0", "1", "2"} <= set(fds), show(fds)
    assert len(fds) <= 3 + 5, f"the run holds more descriptors than its own channels: {fds}"
    for fd, entry in fds.items():
        target = entry["target"]
        assert ALLOWED_TARGET.match(target), f"fd {fd} refers to {target!r}: {fds}"
        assert not entry["dir"], f"fd {fd} is a directory: {entry}"
        assert not entry["regular"] or target.startswith("/memfd:"), f"fd {fd} is a file: {entry}"
        if "family" in entry:
            assert entry["family"] == 1, f"fd {fd} is a network socket (family {entry['family']})"
            assert not entry["listening"], f"fd {fd} is a listening socket: {entry}"
