"""Sessions (issue 13): timeouts, interrupts and resets. A cell over its `timeout` first gets
SIGINT (KeyboardInterrupt in user code); if it stops within INTERRUPT_GRACE the answer is
`error.type: "Timeout"` and the state is kept (`session.reset: false`); if it does not (SIGINT
ignored, C code that does not return, KeyboardInterrupt caught) the session's processes are killed
and a fresh interpreter takes the same id (`session.reset: true`, a message that the variables were
lost). POST /interrupt and a client that disconnects during an execute do the same. A server
started with SIGINT ignored (a background job of a non-interactive shell) still delivers
KeyboardInterrupt. An OOM kill ends the cell with MemoryLimit and resets the session.

Every test here fails against a server without sessions: the create is a 404 there."""

import json
import re
import signal
import socket
import threading
import time

import pytest

from conftest import (MARK_PRELUDE, assert_no_processes_left, assert_session_error, cell, cell_ok, code,
                      create_session, delete_session, host_processes, new_token, session_execute,
                      session_request, show, wait_session_state)

LOOP_WITH_MARKER = code('''
    import time
    try:
        while True:
            time.sleep(0.02)
    except KeyboardInterrupt:
        got_keyboard_interrupt = True
        raise
''')


@pytest.fixture
def sid(server):
    s = create_session(server)
    yield s["session_id"]
    delete_session(server, s["session_id"])


def says_lost(body):
    text = " ".join(str(x or "") for x in (body.get("output"), (body.get("error") or {}).get("message"),
                                            (body.get("session") or {}).get("message")))
    return re.search(r"\blost\b", text, re.I) is not None


def assert_kept(server, sid, body, etype="Timeout"):
    assert body["status"] == "Error" and body["error"]["type"] == etype, show(body)
    assert body["session"]["session_id"] == sid and body["session"]["reset"] is False, show(body)
    after = cell_ok(server, sid, "print(x, got_keyboard_interrupt)")
    assert after["stdout"] == "kept True\n", f"the state was not kept: {show(after)}"
    assert after["session"]["reset"] is False, show(after)


def assert_reset(server, sid, body, etype="Timeout"):
    assert body["status"] == "Error" and body["error"]["type"] == etype, show(body)
    assert body["session"]["session_id"] == sid and body["session"]["reset"] is True, show(body)
    assert says_lost(body), f"the answer does not say the variables were lost: {show(body)}"
    after = cell(server, sid, "x")
    assert after["status"] == "Error" and after["error"]["type"] == "NameError", show(after)
    assert after["session"]["session_id"] == sid and after["session"]["reset"] is False, show(after)
    assert cell_ok(server, sid, "print('fresh')")["stdout"] == "fresh\n"


def test_timeout_interrupts_and_keeps_the_state(server, sid):
    cell_ok(server, sid, "x = 'kept'")
    body = cell(server, sid, LOOP_WITH_MARKER, timeout=1)
    assert_kept(server, sid, body)


def test_busy_pure_python_loop_is_interrupted_and_keeps_the_state(server, sid):
    cell_ok(server, sid, "x = 'kept'")
    body = cell(server, sid, code('''
        try:
            while True:
                pass
        except KeyboardInterrupt:
            got_keyboard_interrupt = True
            raise
    '''), timeout=1)
    assert_kept(server, sid, body)


@pytest.mark.parametrize("stubborn", [
    pytest.param(code('''
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        while True:
            pass
    '''), id="sigint-ignored"),
    pytest.param(code('''
        import time
        while True:
            try:
                time.sleep(0.05)
            except KeyboardInterrupt:
                pass
    '''), id="keyboardinterrupt-caught"),
    pytest.param(code('''
        import collections, itertools
        collections.deque(itertools.repeat(None), maxlen=0)
    '''), id="c-loop"),
    pytest.param(code('''
        import signal, threading, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        t = threading.Thread(target=time.sleep, args=(60,))
        t.start()
        t.join()
    '''), id="thread-sleep-sigint-ignored"),
])
def test_cell_that_does_not_stop_resets_the_session_under_the_same_id(server, sid, stubborn):
    cell_ok(server, sid, "x = 'will be lost'")
    t0 = time.monotonic()
    body = cell(server, sid, stubborn, timeout=1)
    assert_reset(server, sid, body)
    assert time.monotonic() - t0 < 30, "the reset took longer than timeout + INTERRUPT_GRACE by far"


def test_reset_kills_the_processes_the_session_had(server, sid):
    token = new_token()
    cell_ok(server, sid, MARK_PRELUDE + code('''
        import json, os, sys, time
        token = json.load(sys.stdin)
        if os.fork() == 0:
            mark(token)
            time.sleep(60)
            os._exit(0)
    '''), stdin=json.dumps(token))
    deadline = time.monotonic() + 10
    while not host_processes(token):
        assert time.monotonic() < deadline, "the marked child never showed up"
        time.sleep(0.05)
    body = cell(server, sid, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass",
                timeout=1)
    assert body["session"]["reset"] is True, show(body)
    assert_no_processes_left(token)


def start_cell(server, sid, src, **extra):
    results = []

    def go():
        results.append(session_execute(server, sid, src, http_timeout=60, **extra))

    t = threading.Thread(target=go)
    t.start()
    wait_session_state(server, sid, "busy")
    return t, results


def test_interrupt_endpoint_stops_a_cell_and_keeps_the_state(server, sid):
    cell_ok(server, sid, "x = 'kept'")
    idle = session_request(server, "POST", f"/{sid}/interrupt")
    assert idle.status == 200 and idle.json == {"interrupted": False, "reset": False}, show(idle)
    t, results = start_cell(server, sid, LOOP_WITH_MARKER)
    time.sleep(0.3)
    r = session_request(server, "POST", f"/{sid}/interrupt", timeout=30)
    t.join(timeout=30)
    assert r.status == 200 and r.json == {"interrupted": True, "reset": False}, show(r)
    assert results and results[0].status == 200, show(results)
    body = results[0].json
    assert body["status"] == "Error" and body["error"]["type"] in ("KeyboardInterrupt", "Interrupted"), show(body)
    assert body["session"]["reset"] is False, show(body)
    after = cell_ok(server, sid, "print(x, got_keyboard_interrupt)")
    assert after["stdout"] == "kept True\n", show(after)


def test_interrupt_endpoint_resets_a_cell_that_ignores_it(server, sid):
    cell_ok(server, sid, "x = 'will be lost'")
    t, results = start_cell(server, sid, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                         "while True: pass")
    time.sleep(0.3)
    r = session_request(server, "POST", f"/{sid}/interrupt", timeout=30)
    t.join(timeout=30)
    assert r.status == 200 and r.json == {"interrupted": True, "reset": True}, show(r)
    assert results and results[0].status == 200, show(results)
    assert results[0].json["session"]["reset"] is True, show(results[0])
    after = cell(server, sid, "x")
    assert after["error"]["type"] == "NameError", show(after)


def test_interrupt_of_an_unknown_session_is_404(server):
    r = session_request(server, "POST", "/0-0-" + "B" * 24 + "/interrupt")
    assert_session_error(r, 404, "SessionNotFound")


def test_client_disconnecting_mid_execute_interrupts_the_cell(server, sid):
    cell_ok(server, sid, "x = 'kept'")
    body = json.dumps({"code": LOOP_WITH_MARKER}).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        sock.sendall(f"POST /api/sessions/{sid}/execute HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        wait_session_state(server, sid, "busy")
        time.sleep(0.3)
    finally:
        sock.close()
    # Without the interrupt the cell would run until EXECUTION_TIMEOUT (5 s) and then time out;
    # the state then shows which happened.
    wait_session_state(server, sid, "idle", timeout=15)
    after = cell_ok(server, sid, "print(x, got_keyboard_interrupt)")
    assert after["stdout"] == "kept True\n", show(after)
    assert after["execution_count"] == 3, show(after)


def test_oom_in_a_cell_is_memory_limit_and_resets(server):
    obj = create_session(server, memory_mb=128)
    sid = obj["session_id"]
    try:
        assert obj["memory_mb"] == 128, show(obj)
        cell_ok(server, sid, "x = 'will be lost'")
        body = cell(server, sid, "blob = b'x' * (400 << 20)\nprint(len(blob))")
        assert body["status"] == "Error" and body["error"]["type"] == "MemoryLimit", show(body)
        assert body["session"]["session_id"] == sid and body["session"]["reset"] is True, show(body)
        after = cell(server, sid, "x")
        assert after["error"]["type"] == "NameError", show(after)
        assert cell_ok(server, sid, "print('after oom')")["stdout"] == "after oom\n"
        got = session_request(server, "GET", f"/{sid}")
        assert got.status == 200 and got.json["memory_mb"] == 128, show(got)
    finally:
        delete_session(server, sid)


class SigintIgnored:
    """SIGINT set to SIG_IGN in this process while a server is spawned: the server inherits it,
    as it would as a background job of a non-interactive shell (`sh -c 'snakebox serve &'`)."""

    def __enter__(self):
        self.old = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.old)


def sig_ignored(pid, signum):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("SigIgn:"):
                return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
    return False


def test_server_started_with_sigint_ignored_still_delivers_keyboard_interrupt(start_server):
    with SigintIgnored():
        s = start_server(wait=False)
    assert sig_ignored(s.pid, signal.SIGINT), "the server did not inherit SIGINT ignored: proves nothing"
    s.wait_ready()
    sid = create_session(s)["session_id"]
    cell_ok(s, sid, "x = 'kept'")
    body = cell(s, sid, LOOP_WITH_MARKER, timeout=1)
    assert_kept(s, sid, body)
    # A Python-level interrupt handler is in place in the session, whatever the server inherited.
    handler = cell_ok(s, sid, "import signal\nprint(signal.getsignal(signal.SIGINT) is signal.default_int_handler)")
    assert handler["stdout"] == "True\n", show(handler)


def test_oom_between_cells_resets_and_the_next_answer_says_so(server):
    """README ("Limits"): a thread that exhausts the session's memory while no cell runs resets
    the session; the next answer says so."""
    sid = create_session(server, memory_mb=128)["session_id"]
    try:
        cell_ok(server, sid, code('''
            import threading, time
            x = 'will be lost'
            def hog():
                time.sleep(0.3)
                hoard = b"x" * (400 << 20)
            threading.Thread(target=hog, daemon=True).start()
        '''))
        time.sleep(3)
        body = cell(server, sid, "print('after')\nx")
        assert body["session"]["session_id"] == sid and body["session"]["reset"] is True, show(body)
        assert says_lost(body), show(body)
        assert body["stdout"] == "after\n" and body["error"]["type"] == "NameError", show(body)
    finally:
        delete_session(server, sid)


def test_output_limit_in_a_cell_keeps_the_state(server, sid):
    cell_ok(server, sid, "x = 'kept'")
    body = cell(server, sid, "while True:\n    print('y' * 1000)")
    assert body["status"] == "Error" and body["error"]["type"] == "OutputLimit", show(body["error"])
    assert body["truncated"] is True and body["session"]["reset"] is False, show(body["session"])
    assert cell_ok(server, sid, "print(x)")["stdout"] == "kept\n"
