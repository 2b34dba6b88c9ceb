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
    assert b"ZeroDivisionError" in p.stderr and b'File "/tmp/.main/main.py", line 2' in p.stderr


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


# --- untrusted escape sequences and a terminal (issue item 11) ----------------------------------

# An OSC title, an OSC 52 clipboard write, a CSI colour, a C1 CSI in UTF-8 and as a raw byte, a
# tab, a carriage return and some UTF-8 text, on stdout and stderr. The euro sign is written in
# two pieces (split inside the character) to test a sequence cut between two writes.
HOSTILE = rb"""
import os, sys
out = sys.stdout.buffer
out.write(b"title:\x1b]0;pwned\x07|clip:\x1b]52;c;cHduZWQ=\x1b\\|csi:\x1b[2J|c1:\xc2\x9b31m|raw:\x9b|")
out.write(b"tab:\t|cr:\r|caf\xc3\xa9 \xe2\x82")
out.flush()
out.write(b"\xac \xf0\x9f\x90\x8d\n")
out.flush()
sys.stderr.buffer.write(b"err:\x1b]52;c;ZXJy\x07\n")
sys.stderr.flush()
"""

ESCAPED_OUT = (b"title:\\x1b]0;pwned\\x07|clip:\\x1b]52;c;cHduZWQ=\\x1b\\|csi:\\x1b[2J|c1:\\u009b31m|"
               b"raw:\\x9b|tab:\t|cr:\r|caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8d\n")
ESCAPED_ERR = b"err:\\x1b]52;c;ZXJy\\x07\n"
RAW_OUT = (b"title:\x1b]0;pwned\x07|clip:\x1b]52;c;cHduZWQ=\x1b\\|csi:\x1b[2J|c1:\xc2\x9b31m|raw:\x9b|"
           b"tab:\t|cr:\r|caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8d\n")
RAW_ERR = b"err:\x1b]52;c;ZXJy\x07\n"


def run_on_ptys(args, tmp_path, timeout=120):
    """`snakebox run ARGS` with stdout and stderr on two pseudo-terminals (raw mode, so the line
    discipline neither translates \\n nor eats bytes); returns (status, stdout bytes, stderr bytes)."""
    import pty
    import select
    import tty
    fds = []
    try:
        for _ in range(2):
            master, slave = pty.openpty()
            tty.setraw(slave)
            fds.append((master, slave))
        # No libraries to import: this is about the output, and it is faster.
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": os.environ.get("HOME", "/root"),
               "EXECUTION_TIMEOUT": "10", "PREINSTALL_LIBS": ""}
        proc = subprocess.Popen([str(BINARY), "run"] + args, stdin=subprocess.DEVNULL,
                                stdout=fds[0][1], stderr=fds[1][1], env=env, cwd=tmp_path)
        for _, slave in fds:
            os.close(slave)
        got = {fds[0][0]: b"", fds[1][0]: b""}
        open_ = set(got)
        deadline = time.monotonic() + timeout
        while open_ and time.monotonic() < deadline:
            ready, _, _ = select.select(list(open_), [], [], 1)
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: every slave end is closed
                    data = b""
                if data:
                    got[fd] += data
                else:
                    open_.discard(fd)
            if proc.poll() is not None and not ready:
                break
        status = proc.wait(timeout=max(1, deadline - time.monotonic()))
        return status, got[fds[0][0]], got[fds[1][0]]
    finally:
        for master, slave in fds:
            for fd in (master, slave):
                try:
                    os.close(fd)
                except OSError:
                    pass


def test_escape_sequences_are_shown_escaped_on_a_terminal(tmp_path):
    """On a terminal, the script's ESC, BEL, C1 CSI (UTF-8 and raw) come out as visible text;
    newline, tab, carriage return and UTF-8 (also cut between two writes) are kept. The old code
    wrote the title and clipboard sequences to the terminal unchanged (stdout was RAW_OUT)."""
    script = tmp_path / "hostile.py"
    script.write_bytes(HOSTILE)
    status, out, err = run_on_ptys([str(script)], tmp_path)
    assert status == 0, (out, err)
    assert out == ESCAPED_OUT, out
    assert err.endswith(ESCAPED_ERR), err
    assert b"\x1b" not in out + err and b"\x07" not in out + err


def test_raw_keeps_the_bytes_on_a_terminal(tmp_path):
    script = tmp_path / "hostile.py"
    script.write_bytes(HOSTILE)
    status, out, err = run_on_ptys(["--raw", str(script)], tmp_path)
    assert status == 0, (out, err)
    assert out == RAW_OUT, out
    assert err.endswith(RAW_ERR), err


def test_output_to_a_pipe_is_unchanged(tmp_path):
    """Not a terminal (a pipe, a file): the bytes pass through as the program wrote them."""
    script = tmp_path / "hostile.py"
    script.write_bytes(HOSTILE)
    p = cli([str(script)], cwd=tmp_path)
    assert p.returncode == 0, p
    assert p.stdout == RAW_OUT
    assert p.stderr.endswith(RAW_ERR), p.stderr
