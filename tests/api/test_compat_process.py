"""A run's process behaves as under plain python3: signals arrive (nothing is blocked, Python's own
dispositions), orphans are reaped by an init that is not the program, a signal the program sends
itself takes its default action, and glibc knows the main thread's real id.

Each test here failed on the server before the sandbox got its init (issue 11, items 1-3); its
docstring says how."""

import signal

from conftest import code, run, run_json, run_ok, show


def test_no_signal_is_blocked_and_dispositions_are_pythons(server):
    """Failed before: SigBlk showed SIGHUP, SIGINT and SIGTERM blocked, in the run and in every
    subprocess it started (inherited from the server's sigwait thread)."""
    seen = run_json(server, code('''
        import json, signal, subprocess
        blocked = sorted(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))
        child = subprocess.run(["grep", "^SigBlk", "/proc/self/status"], capture_output=True, text=True).stdout
        disp = {}
        for name in ("SIGINT", "SIGPIPE", "SIGXFSZ", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGCHLD", "SIGQUIT"):
            h = signal.getsignal(getattr(signal, name))
            disp[name] = "python" if h is signal.default_int_handler else int(h)
        print(json.dumps({"blocked": blocked, "child": child.split(), "disp": disp}))
    '''))
    assert seen["blocked"] == [], show(seen)
    assert seen["child"] == ["SigBlk:", "0000000000000000"], show(seen)
    # What `python3 -c` has: Python's SIGINT handler, SIGPIPE and SIGXFSZ ignored, the rest default.
    ign, dfl = int(signal.SIG_IGN), int(signal.SIG_DFL)
    assert seen["disp"] == {"SIGINT": "python", "SIGPIPE": ign, "SIGXFSZ": ign, "SIGTERM": dfl,
                            "SIGHUP": dfl, "SIGUSR1": dfl, "SIGCHLD": dfl, "SIGQUIT": dfl}, show(seen)


def test_popen_terminate_ends_the_child(server):
    """Failed before: terminate() did nothing (SIGTERM blocked in the child) and wait() timed
    out."""
    seen = run_json(server, code('''
        import json, subprocess
        p = subprocess.Popen(["sleep", "30"])
        p.terminate()
        print(json.dumps(p.wait(timeout=3)))
    '''))
    assert seen == -signal.SIGTERM


def test_multiprocessing_pool_terminate_returns(server):
    """Failed before: Pool.terminate() never returned; the run ended at its timeout."""
    body = run_ok(server, code('''
        import multiprocessing, time
        def nap(x):
            time.sleep(30)
        pool = multiprocessing.Pool(2)
        pool.map_async(nap, range(4))
        time.sleep(0.3)
        pool.terminate()
        pool.join()
        print("terminated")
    '''))
    assert body["stdout"] == "terminated\n", show(body)


def test_sigint_raises_keyboard_interrupt(server):
    """Failed before: os.kill(os.getpid(), SIGINT) raised nothing (blocked)."""
    body = run_ok(server, code('''
        import os, signal, time
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(2)
            print("not interrupted")
        except KeyboardInterrupt:
            print("KeyboardInterrupt")
    '''))
    assert body["stdout"] == "KeyboardInterrupt\n", show(body)


def test_the_program_is_not_pid_1(server):
    """Failed before: the program was pid 1 of its namespace, with no parent in it."""
    seen = run_json(server, code('''
        import json, os
        print(json.dumps([os.getpid(), os.getppid(), os.getpgrp(), os.getsid(0)]))
    '''))
    pid, ppid, pgrp, sid = seen
    assert pid != 1 and ppid == 1, show(seen)
    assert pgrp == 1 and sid == 1, show(seen)


def test_orphans_are_reaped(server):
    """Failed before: every `cmd &` of a shell left a zombie that no one reaped (the program was
    the init and never waited for it): 20 zombies after 20 calls, and "Cannot fork" once they
    filled the process limit."""
    seen = run_json(server, code('''
        import json, os, subprocess, time
        for _ in range(20):
            subprocess.run("true &", shell=True, check=True)
        def zombies():
            n = 0
            for p in os.listdir("/proc"):
                try:
                    with open("/proc/%s/stat" % p) as f:
                        n += f.read().rsplit(")", 1)[1].split()[0] == "Z"
                except (OSError, IndexError):
                    pass
            return n
        deadline = time.monotonic() + 3
        while zombies() and time.monotonic() < deadline:
            time.sleep(0.05)
        print(json.dumps(zombies()))
    '''))
    assert seen == 0, f"{seen} zombie processes were never reaped"


def test_more_orphans_than_the_process_limit(server):
    """Failed before: with the test server's MAX_PROCESSES=32, the 31st `true &` failed with
    "Cannot fork"/BlockingIOError, the zombies holding every slot."""
    body = run_ok(server, code('''
        import subprocess
        for i in range(100):
            subprocess.run("true &", shell=True, check=True)
        print("done")
    '''), timeout=30)
    assert body["stdout"] == "done\n", show(body)


def test_a_signal_to_itself_takes_its_default_action(server):
    """Failed before: SIGTERM and SIGUSR2 to itself were ignored (default-action signals to a
    namespace's init are dropped): the program printed "alive" and succeeded."""
    for name in ("SIGTERM", "SIGUSR2"):
        status, body = run(server, code(f'''
            import os, signal, time
            os.kill(os.getpid(), signal.{name})
            time.sleep(1)
            print("alive")
        '''))
        assert status == 200, show(body)
        assert body["status"] == "Error" and body["stdout"] == "", show(body)
        assert body["signal"] == name and body["exit_code"] is None, show(body)
        assert body["error"]["message"] == f"Killed by {name}", show(body)


def test_abort_is_sigabrt(server):
    """Failed before: os.abort() ended the run as SIGSEGV (abort()'s SIGABRT is dropped for an
    init, and glibc's fallback crashes)."""
    status, body = run(server, "import os\nos.abort()\n")
    assert body["signal"] == "SIGABRT", show(body)


def test_exit_status_of_an_exit_that_skips_the_report(server):
    """os._exit skips the runner's report: the status comes through the init's own exit. Passed
    before too (the runner was the init); kept as the init must pass it on."""
    status, body = run(server, "import os\nprint('x', flush=True)\nos._exit(7)\n")
    assert body["exit_code"] == 7 and body["signal"] is None, show(body)
    assert body["stdout"] == "x\n", show(body)


def test_pthread_kill_and_cpu_clock_of_the_main_thread(server):
    """Failed before: glibc still held the zygote's thread id for the main thread (the sandbox
    came from a raw clone), so pthread_kill(main) from a thread failed with ESRCH and
    pthread_getcpuclockid(main) with EINVAL."""
    seen = run_json(server, code('''
        import json, signal, threading, time
        got = []
        signal.signal(signal.SIGUSR1, lambda *a: got.append("usr1"))
        main = threading.main_thread()
        errors = []
        def poke():
            try:
                signal.pthread_kill(main.ident, signal.SIGUSR1)
            except OSError as e:
                errors.append(e.errno)
        t = threading.Thread(target=poke)
        t.start()
        t.join()
        time.sleep(0.1)
        clock = time.pthread_getcpuclockid(main.ident)
        cpu = time.clock_gettime(clock)
        print(json.dumps({"got": got, "errors": errors, "cpu": cpu > 0,
                          "native": main.native_id == threading.get_native_id()}))
    '''))
    assert seen == {"got": ["usr1"], "errors": [], "cpu": True, "native": True}, show(seen)
