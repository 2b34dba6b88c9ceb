"""One `snakebox serve` that we started and own, for everything here that starts servers: the
HTTP test suites (tests/conftest.py), the compatibility suite (tests/compat/compat.py) and the
benchmark (bench/bench.py). Standard library only.

A server runs in a fresh temporary working directory (so no `.env` is read unless the caller
writes one there), with a small fixed environment, HOST=127.0.0.1 and PORT=0, and announces
itself on stderr with `snakebox: listening on http://127.0.0.1:<port>`. It is stopped by the pid
we started: SIGTERM, then SIGKILL after STOP_TIMEOUT seconds."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

READY_RE = re.compile(r"^snakebox: listening on http://127\.0\.0\.1:(\d+)\s*$", re.M)
STOP_TIMEOUT = 10
# OpenBLAS computes wrong results on some CPUs without these; snakebox passes them on to runs.
OPENBLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


class ServerStartError(Exception):
    pass


class ServerProcess:
    """env is laid over the fixed environment (a None value removes a key); passthrough names
    variables copied from ours when set; files ({name: text}) are written into the working
    directory first (a `.env`, say)."""

    def __init__(self, binary, env=None, prefix="snakebox-", passthrough=(), files=None, preexec_fn=None):
        self.binary = Path(binary)
        self.workdir = Path(tempfile.mkdtemp(prefix=prefix))
        for name, text in (files or {}).items():
            (self.workdir / name).write_text(text)
        self.env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "HOME": os.environ.get("HOME", "/root"),
            "HOST": "127.0.0.1",
            "PORT": "0",
        }
        for key in passthrough:
            if key in os.environ:
                self.env[key] = os.environ[key]
        for key, value in (env or {}).items():
            if value is None:
                self.env.pop(key, None)
            else:
                self.env[key] = str(value)
        self.stdout_path = self.workdir / "server.stdout"
        self.stderr_path = self.workdir / "server.stderr"
        self.port = None
        self.listen_offset = 0
        self._last_stderr = ""
        try:
            with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
                self.proc = subprocess.Popen(
                    [str(self.binary), "serve"], cwd=self.workdir, env=self.env,
                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, preexec_fn=preexec_fn)
        except BaseException:
            # No server, so nobody will call stop(): its working directory goes now.
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        self.pid = self.proc.pid

    def stderr(self):
        """What the server wrote on stderr so far (after stop(): all of it)."""
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return self._last_stderr

    def stdout(self):
        try:
            return self.stdout_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, timeout):
        """Waits for the `listening` line; raises ServerStartError if the server exits first or
        does not print it within timeout seconds. Returns self."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.stderr()
            m = READY_RE.search(text)
            if m:
                self.port = int(m.group(1))
                self.listen_offset = m.end()
                return self
            if self.proc.poll() is not None:
                raise ServerStartError(
                    f"snakebox exited with status {self.proc.returncode} before listening; "
                    f"stderr:\n{text[-4000:]}")
            time.sleep(0.05)
        raise ServerStartError(
            f"snakebox did not print `snakebox: listening on http://127.0.0.1:<port>` within "
            f"{timeout} s; stderr:\n{self.stderr()[-4000:]}")

    def wait_exit(self, timeout):
        """Returns the exit status, or None if still running after timeout seconds."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        """SIGTERM to our pid, SIGKILL after STOP_TIMEOUT; removes the working directory.
        Returns what the server wrote on stderr. Idempotent."""
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        if self.workdir.exists():
            self._last_stderr = self.stderr()
            shutil.rmtree(self.workdir, ignore_errors=True)
        return self._last_stderr

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def alive(self):
        return self.proc.poll() is None
