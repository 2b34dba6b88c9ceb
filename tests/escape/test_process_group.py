"""A run has a session and a process group of its own: kill(0, sig) and killpg address a process
group by its kernel object, across pid namespaces, so a run left in the group it was cloned in
could signal every process of that group that its host uid may signal.

Failed before (the sandboxes, the zygotes and the server shared one process group):
- under an unprivileged server, every sandbox runs as the server's uid: os.kill(0, SIGKILL) in a
  run killed the server itself, its zygotes, every run in flight, and pytest (the server was in
  its process group: the unprivileged suite died with "Killed");
- under a root server with SANDBOX_UID_RANGE=off (every run as one host uid), it killed the other
  runs in flight."""

import json
import threading

from conftest import assert_healthy, code, run, show


def test_kill_of_its_process_group_reaches_only_the_run(start_server):
    server = start_server({"SANDBOX_UID_RANGE": "off", "MAX_CONCURRENCY": "2", "EXECUTION_TIMEOUT": "10"})
    bystander = {}

    def wait_a_bit():
        bystander["answer"] = run(server, code('''
            import time
            print("started", flush=True)
            time.sleep(3)
            print("survived")
        '''))

    t = threading.Thread(target=wait_a_bit)
    t.start()
    # The attacker's second of sleep lets the bystander start first.
    status, body = run(server, code('''
        import json, os, signal, time
        time.sleep(1)
        print(json.dumps([os.getpgrp(), os.getsid(0)]), flush=True)
        os.kill(0, signal.SIGKILL)
    '''))
    t.join(timeout=30)
    assert server.alive(), f"a run's kill(0, SIGKILL) killed the server: {show(body)}"
    b_status, b_body = bystander["answer"]
    assert b_status == 200 and b_body["status"] == "Success", show(b_body)
    assert b_body["stdout"] == "started\nsurvived\n", show(b_body)
    # It killed itself, as a process that is not an init does.
    assert status == 200 and body["signal"] == "SIGKILL", show(body)
    # Its own group is its own: its init leads it.
    assert json.loads(body["stdout"]) == [1, 1], show(body)
    assert_healthy(server)
