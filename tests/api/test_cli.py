"""`snakebox run`: one script in the same sealed sandbox, without a server."""

import os
import subprocess
import time

from conftest import BINARY


def cli(args, stdin=None, timeout=120, cwd=None):
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": os.environ.get("HOME", "/root"),
           "EXECUTION_TIMEOUT": "10"}
    return subprocess.run([str(BINARY), "run"] + args, input=stdin, capture_output=True, env=env,
                          timeout=timeout, cwd=cwd)


def test_exit_status_stdout_stderr_and_stdin(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("import sys\nprint('out')\nprint('err', input(), file=sys.stderr)\nsys.exit(3)\n")
    data = tmp_path / "in.txt"
    data.write_text("line1\n")
    p = cli(["--stdin", str(data), str(script)], cwd=tmp_path)
    assert p.returncode == 3, p
    assert p.stdout == b"out\n"
    assert p.stderr.endswith(b"err line1\n"), p.stderr


def test_script_from_standard_input_and_traceback(tmp_path):
    p = cli(["-"], stdin=b"print('a')\n1/0\n", cwd=tmp_path)
    assert p.returncode == 1
    assert p.stdout == b"a\n"
    assert b"ZeroDivisionError" in p.stderr and b'File "<code>", line 2' in p.stderr


def test_timeout_is_124_and_says_so(tmp_path):
    t = time.monotonic()
    p = cli(["--timeout", "1", "-"], stdin=b"while True: pass\n", cwd=tmp_path)
    assert p.returncode == 124, p
    assert b"Timeout Error: Code execution exceeded 1 seconds" in p.stderr
    assert time.monotonic() - t < 60


def test_timeout_above_the_server_maximum_is_refused(tmp_path):
    p = cli(["--timeout", "11", "-"], stdin=b"print(1)\n", cwd=tmp_path)
    assert p.returncode == 2
    assert b"10" in p.stderr


def test_output_is_streamed_while_the_program_runs(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": os.environ.get("HOME", "/root")}
    proc = subprocess.Popen([str(BINARY), "run", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    proc.stdin.write(b"import time\nprint('first', flush=True)\ntime.sleep(4)\nprint('second')\n")
    proc.stdin.close()
    try:
        first = proc.stdout.readline()
        seen = time.monotonic()
        rest = proc.stdout.read()
        ended = time.monotonic()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert first == b"first\n" and rest == b"second\n"
    assert ended - seen > 3, "the first line arrived only when the program ended"


def test_the_run_is_sealed(tmp_path):
    p = cli(["-"], stdin=b"import os, socket\nprint(os.getuid(), os.listdir('/proc')[:0])\n"
                      b"socket.socket(socket.AF_INET)\n", cwd=tmp_path)
    assert p.returncode == 1
    assert p.stdout.startswith(b"1000 ")
    assert b"PermissionError" in p.stderr
