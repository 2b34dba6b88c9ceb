"""Attack (issue 13): the existing escape suite's attacks, run from inside a session. A session is
the same seal as a stateless run, nothing weaker; a session also lives on between requests, so an
attack gets a long-lived interpreter to work from. Each test here takes one attack of
tests/escape/* as it is and runs it with every POST /api/execute it makes sent as a cell of one
session instead (conftest.post_json, and the module's own import of it, swapped for a session
execute; `memory_mb`, which a cell does not take, is dropped). A bounded, representative choice:
the server's processes, files, port and environment, the host's loopback, identity, the root
file system, inherited descriptors, denied system calls, returned symlinks. The runs of one attack
are cells of one session (what one cell leaves, the next one has), except for the attacks in
FRESH, whose runs count on an empty working directory: each of their runs is a new session.

Every test here fails against a server without sessions: the create is a 404 there, and each
test checks that its attack's code did go through the session."""

import importlib

import pytest

import conftest
from conftest import create_session, delete_session, session_request, show

ATTACKS = [
    ("test_see_the_server", "test_proc_shows_only_the_runs_own_processes", {}),
    ("test_see_the_server", "test_cannot_signal_the_server_or_its_helpers", {}),
    ("test_see_the_server", "test_servers_directory_and_home_directories_are_not_visible", {}),
    ("test_see_the_server", "test_hostname_is_not_the_hosts", {}),
    ("test_network", "test_cannot_connect_to_the_servers_port", {}),
    ("test_network", "test_cannot_reach_a_listener_on_the_hosts_loopback", {}),
    ("test_network", "test_netlink_packet_raw_and_vsock_sockets_are_refused", {}),
    ("test_network", "test_network_namespace_has_only_loopback", {}),
    ("test_environment_leak", "test_os_environ_is_a_small_fixed_set", {}),
    ("test_environment_leak", "test_proc_environ_files_do_not_hold_the_secret", {}),
    ("test_identity", "test_runs_without_privileges", {}),
    ("test_filesystem", "test_writes_outside_the_scratch_directory_fail", {}),
    ("test_inherited_fds", "test_only_the_runs_own_descriptors_are_open", {}),
    ("test_seccomp", "test_denied_syscall_fails_with_eperm", {"name": "mount"}),
    ("test_seccomp", "test_denied_syscall_fails_with_eperm", {"name": "setns"}),
    ("test_seccomp", "test_denied_syscall_fails_with_eperm", {"name": "ptrace"}),
    ("test_seccomp", "test_denied_syscall_fails_with_eperm", {"name": "bpf"}),
    ("test_seccomp", "test_clone_with_a_namespace_flag_and_unshare_fail_with_eperm", {}),
    ("test_file_escapes", "test_returned_symlinks_are_not_followed", {}),
    ("test_file_escapes", "test_fifo_is_not_returned_and_does_not_hang", {}),
]
# Attacks whose runs each expect a fresh working directory: each of their runs gets a new session.
FRESH = {"test_fifo_is_not_returned_and_does_not_hang"}


class SessionRuns:
    """Sends every POST /api/execute of the test as a cell of one session (made on first use,
    made again if the server ended it), and counts the cells."""

    def __init__(self, original):
        self.original = original
        self.server = None
        self.sid = None
        self.cells = 0
        self.fresh = False

    def post_json(self, server, obj, path="/api/execute", timeout=None, conn=None):
        if path != "/api/execute":
            return self.original(server, obj, path=path, timeout=timeout, conn=conn)
        body = dict(obj) if isinstance(obj, dict) else obj
        if isinstance(body, dict):
            body.pop("memory_mb", None)
        if self.fresh:
            self.close()
        for _ in range(2):
            if self.sid is None:
                self.server = server
                self.sid = create_session(server)["session_id"]
            r = session_request(server, "POST", f"/{self.sid}/execute", body, timeout=timeout)
            if r.status not in (404, 410):
                self.cells += 1
                assert r.json is None or r.json.get("session", {}).get("session_id") == self.sid, show(r)
                return r
            self.sid = None
        return r

    def close(self):
        if self.sid is not None:
            delete_session(self.server, self.sid)
            self.sid = None


@pytest.fixture
def session_runs(monkeypatch):
    sr = SessionRuns(conftest.post_json)
    monkeypatch.setattr(conftest, "post_json", sr.post_json)
    yield sr, monkeypatch
    sr.close()


@pytest.mark.parametrize("module,name,kwargs", ATTACKS,
                         ids=[f"{m[5:]}-{n[5:45]}" + (f"-{k['name']}" if k else "") for m, n, k in ATTACKS])
def test_escape_attack_from_inside_a_session(server, session_runs, module, name, kwargs):
    sr, monkeypatch = session_runs
    sr.fresh = name in FRESH
    mod = importlib.import_module(module)
    if hasattr(mod, "post_json"):
        monkeypatch.setattr(mod, "post_json", sr.post_json)
    getattr(mod, name)(server, **kwargs)
    assert sr.cells >= 1, f"{module}.{name} sent no cell through the session: it proved nothing here"
