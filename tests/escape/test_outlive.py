"""Attack: outlive the run. Each process the attack leaves behind names itself with a random
token (prctl PR_SET_NAME) and proves it in the run's output; after the answer the host's /proc
must hold no process of that name. Against a naive server every one of them survives, or the
server waits for them and the request times out. Each gives up by itself after 60 s (longer
than any request of the suite waits), so a failed test leaves nothing behind for long."""

import json
import re

from conftest import (MARK_PRELUDE, TEST_LIMITS, assert_healthy, assert_no_processes_left,
                      code, new_token, run, show)

# Reads the test's parameters (the token, ...) from the run's stdin, sent as JSON.
READ_PARAMS = "import json, sys\nPARAMS = json.load(sys.stdin)\n"

# Runs in a process that must not survive: sleeps in a loop for at most 60 s, then leaves.
LINGER = code('''
    def linger():
        import time
        end = time.monotonic() + 60
        while time.monotonic() < end:
            time.sleep(0.2)
        os._exit(0)
''')


def test_double_forked_daemon_dies_with_the_run(server):
    token = new_token()
    status, body = run(server, MARK_PRELUDE + READ_PARAMS + "import os\n" + LINGER + code('''
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.setsid()
            if os.fork() == 0:
                name = mark(PARAMS["token"])
                os.write(w, name.encode())
                os.close(w)
                null = os.open("/dev/null", os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                linger()
            os._exit(0)
        os.close(w)
        os.waitpid(pid, 0)
        print("daemon named", os.read(r, 64).decode(), flush=True)
    '''), stdin=json.dumps({"token": token}))
    assert status == 200, show(body)
    assert f"daemon named {token}" in body["output"], f"the attack did not start: {body}"
    assert body["status"] == "Success", f"the program ended normally: {body}"
    assert_no_processes_left(token)
    assert_healthy(server)


def test_child_ignoring_sigterm_dies_with_the_run(server):
    token = new_token()
    status, body = run(server, MARK_PRELUDE + READ_PARAMS + "import os, signal\n" + LINGER + code('''
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            os.write(w, mark(PARAMS["token"]).encode())
            os.close(w)
            linger()
        os.close(w)
        print("child named", os.read(r, 64).decode(), flush=True)
    '''), stdin=json.dumps({"token": token}))
    assert status == 200, show(body)
    assert f"child named {token}" in body["output"], f"the attack did not start: {body}"
    assert body["status"] == "Success", f"the program ended normally: {body}"
    assert_no_processes_left(token)
    assert_healthy(server)


def test_timed_out_run_with_a_child_ignoring_sigterm_leaves_nothing(server):
    token = new_token()
    timeout = TEST_LIMITS["EXECUTION_TIMEOUT"]
    status, body = run(server, MARK_PRELUDE + READ_PARAMS + "import os, signal\n" + LINGER + code('''
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(w, mark(PARAMS["token"]).encode())
            os.close(w)
            linger()
        os.close(w)
        print("child named", os.read(r, 64).decode(), flush=True)
        while True:
            pass
    '''), stdin=json.dumps({"token": token}))
    assert status == 200, show(body)
    assert f"child named {token}" in body["output"], f"the attack did not start: {body}"
    assert body["status"] == "Error"
    assert body["error"] and body["error"]["type"] == "Timeout", show(body)
    assert f"Timeout Error: Code execution exceeded {timeout} seconds" in body["output"]
    assert_no_processes_left(token)
    assert_healthy(server)


def test_fork_bomb_is_capped_and_leaves_nothing(server):
    token = new_token()
    cap = int(TEST_LIMITS["MAX_PROCESSES"])
    attempts = 200  # bounded, so a server without a cap is not taken down by this test
    status, body = run(server, MARK_PRELUDE + READ_PARAMS + "import os\n" + LINGER + code('''
        made = 0
        for i in range(PARAMS["attempts"]):
            try:
                pid = os.fork()
            except OSError as e:
                print("fork refused: errno", e.errno, flush=True)
                break
            if pid == 0:
                mark(PARAMS["token"])
                linger()
            made += 1
        print("made", made, flush=True)
    '''), stdin=json.dumps({"token": token, "attempts": attempts}))
    assert status == 200, show(body)
    assert body["status"] in ("Success", "Error"), show(body)
    m = re.search(r"^made (\d+)$", body["output"], re.M)
    if m:
        made = int(m.group(1))
        assert made < cap, f"the run started {made} processes with MAX_PROCESSES={cap}"
    else:
        assert body["status"] == "Error", show(body)
    assert_no_processes_left(token)
    assert_healthy(server)
