# The code that runs inside a sealed sandbox: it waits for one request on the socket at fd 3,
# runs the user's code as __main__, and reports. It is compiled once in the zygote, so a run
# pays no import; only main() runs in the child, after the C sealing pipeline.
#
# Output: sys.stdout and sys.stderr are replaced by streams that send each flushed piece as one
# SOCK_SEQPACKET message tagged 'O' or 'E'. One socket for both keeps the order in which the
# program wrote (a line of stdout, then a traceback on stderr) exact, which two pipes cannot.
# A stream is flushed at each newline and before the other stream writes. Writes that bypass
# Python (subprocesses, C code, os.write(1, ...)) go to the raw pipes at fds 1 and 2.
#
# The 'R' frame with the exception is a report, not the verdict: the server takes the exit
# status from the kernel, so user code that forges frames only misleads itself.

import builtins
import io
import json
import linecache
import os
import sys
import traceback
import types

SOCK = 3
CHUNK = 60000  # well under the socket's buffer: one message per chunk
FILENAME = "<code>"
RUNNER_FILE = "<snakebox-runner>"

ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/work",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "USER": "sandbox",
    "LOGNAME": "sandbox",
    "PYTHONDONTWRITEBYTECODE": "1",
    "MPLBACKEND": "Agg",
    "MPLCONFIGDIR": "/tmp/.matplotlib",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


def _send(tag, data):
    mv = memoryview(data)
    for off in range(0, len(mv), CHUNK):
        try:
            os.writev(SOCK, [tag, mv[off:off + CHUNK]])
        except OSError:
            return  # the server stopped reading (output cap): the run is being ended


class _Bytes(io.RawIOBase):
    """sys.stdout.buffer: bytes written straight through, after the text already buffered."""

    def __init__(self, stream):
        self._stream = stream

    def writable(self):
        return True

    def fileno(self):
        return self._stream.fileno()

    def write(self, b):
        self._stream._write_bytes(bytes(b))
        return len(b)


class _Stream(io.TextIOBase):
    def __init__(self, tag, fd, name):
        self._tag = tag
        self._fd = fd
        self._name = name
        self._parts = []
        self._size = 0
        self.peer = None
        self.buffer = _Bytes(self)

    encoding = "utf-8"
    errors = "backslashreplace"
    line_buffering = True

    @property
    def name(self):
        return self._name

    def writable(self):
        return True

    def isatty(self):
        return False

    def fileno(self):
        return self._fd

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not %s" % type(s).__name__)
        if self.peer._parts:
            self.peer.flush()
        self._parts.append(s)
        self._size += len(s)
        if "\n" in s or self._size >= CHUNK:
            self.flush()
        return len(s)

    def _write_bytes(self, b):
        if self.peer._parts:
            self.peer.flush()
        self.flush()
        _send(self._tag, b)

    def flush(self):
        if self._parts:
            text = "".join(self._parts)
            self._parts.clear()
            self._size = 0
            _send(self._tag, text.encode("utf-8", "backslashreplace"))

    def close(self):
        self.flush()


def _read_request():
    first = os.read(SOCK, CHUNK * 2)
    if not first:
        os._exit(0)  # the server is gone before sending anything
    if first[:1] != b"Q" or len(first) < 9:
        os._exit(70)
    total = int.from_bytes(first[1:9], "little")
    parts = [first[9:]]
    got = len(parts[0])
    while got < total:
        m = os.read(SOCK, CHUNK * 2)
        if not m:
            os._exit(0)
        parts.append(m)
        got += len(m)
    return json.loads(b"".join(parts))


def _reseed():
    # Seeded once in the zygote at import: every child would replay the same sequence.
    import random
    random.seed()
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed()


def _exit_code(e):
    code = e.code
    if code is None:
        return 0, None
    if isinstance(code, int):
        return code & 0xFF, None
    # sys.exit("message"): Python prints it to stderr and exits 1.
    print(code, file=sys.stderr)
    return 1, str(code)


def _user_tb(tb):
    while tb is not None and tb.tb_frame.f_code.co_filename == RUNNER_FILE:
        tb = tb.tb_next
    return tb


def _prepare():
    """Everything that does not depend on the request, done before the sandbox says it is
    ready: the copy-on-write faults and allocations it costs are paid while no one waits."""
    import atexit
    # Exit handlers registered by the zygote's imports belong to the zygote; a run runs only
    # its own.
    atexit._clear()
    _reseed()
    os.environ.clear()
    os.environ.update(ENV)

    out = _Stream(b"O", 1, "<stdout>")
    err = _Stream(b"E", 2, "<stderr>")
    out.peer, err.peer = err, out
    sys.stdout = sys.__stdout__ = out
    sys.stderr = sys.__stderr__ = err

    mod = types.ModuleType("__main__")
    mod.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = mod
    sys.argv = ["-c"]
    if sys.path[:1] != [""]:
        sys.path.insert(0, "")
    # Touch the paths a request takes (decode, compile, exec, report) once, on scratch objects.
    json.loads('{"code": "x = 1"}')
    json.dumps({"exit_code": 0, "error": None})
    import threading
    threading.active_count()
    atexit._ncallbacks()
    exec(compile("x = 1\n", FILENAME, "exec", dont_inherit=True), {"__builtins__": builtins})
    return mod, out, err


def main():
    mod, out, err = _prepare()
    os.write(SOCK, b"Y")
    req = _read_request()
    code = req["code"]
    linecache.cache[FILENAME] = (len(code), None, code.splitlines(True), FILENAME)

    status, error = 0, None
    try:
        exec(compile(code, FILENAME, "exec", dont_inherit=True), mod.__dict__)
    except SystemExit as e:
        status, message = _exit_code(e)
        if status != 0:
            error = {"type": "SystemExit", "message": message or str(status), "traceback": ""}
    except BaseException as e:
        tb = _user_tb(e.__traceback__)
        text = "".join(traceback.format_exception(type(e), e, tb))
        err.write(text)
        status = 1
        try:
            message = str(e)
        except BaseException:
            message = "<exception str() failed>"
        error = {"type": type(e).__name__, "message": message, "traceback": text}

    # What a normal interpreter exit does: wait for non-daemon threads, run atexit.
    try:
        import threading
        threading._shutdown()
    except BaseException:
        pass
    try:
        import atexit
        atexit._run_exitfuncs()
    except BaseException:
        pass
    try:
        out.flush()
        err.flush()
    except BaseException:
        pass
    if os.getpid() == 1:
        _send(b"R", json.dumps({"exit_code": status, "error": error}).encode())
    os._exit(status)


def learn(fd, steps):
    """Runs in a throw-away child of the zygote at start-up, never in a sandbox: after what a
    sandbox does before READY, it runs the warm-up steps once more and reports, on fd, which
    pages of the zygote's memory each step wrote. Sandboxes then copy those pages in advance,
    with one madvise per range, instead of taking a copy-on-write fault on each page in the
    middle of a request (measured here: 40 us per faulted page, 12-20 us per page copied by
    MADV_POPULATE_WRITE)."""
    try:
        _learn(fd, steps)
    except BaseException:
        os.write(2, ("snakebox: zygote: learning the pages runs write failed:\n%s"
                     % traceback.format_exc()).encode())
    os._exit(1)


def _learn(fd, steps):
    import contextlib
    import struct
    # fd 3 is the zygote's control socket here: make sure nothing can write to it.
    null = os.open("/dev/null", os.O_WRONLY)
    os.dup2(null, SOCK)
    _prepare()
    maps = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            perms = parts[1]
            name = parts[5] if len(parts) > 5 else ""
            if perms[:2] != "rw" or perms[3] != "p" or name in ("[vvar]", "[vdso]", "[vsyscall]", "[stack]"):
                continue
            a, b = (int(x, 16) for x in parts[0].split("-"))
            maps.append((a, b))
    page = os.sysconf("SC_PAGE_SIZE")

    def exclusive():
        # Bit 56 of a pagemap entry: the page is mapped by this process only. After fork every
        # page is shared with the zygote; one this child writes becomes its own copy. (The
        # kernel's soft-dirty bits would say the same, but are not built into every kernel.)
        pages = set()
        with open("/proc/self/pagemap", "rb") as pm:
            for a, b in maps:
                pm.seek(a // page * 8)
                data = pm.read((b - a) // page * 8)
                for i, (entry,) in enumerate(struct.iter_unpack("<Q", data)):
                    if entry >> 63 & 1 and entry >> 56 & 1:
                        pages.add(a + i * page)
        return pages

    # Learned step by step, in the order of how common the work is: a sandbox copies the
    # pages of the first steps first, up to the zygote's budget.
    seen = exclusive()
    out = []
    sink = io.StringIO()
    for step in [lambda: print("Hello, World!")] + list(steps):
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            try:
                step()
            except Exception:
                pass
            json.dumps({"exit_code": 0, "error": None})
        now = exclusive()
        ranges = []
        for addr in sorted(now - seen):
            if ranges and ranges[-1][0] + ranges[-1][1] * page == addr:
                ranges[-1][1] += 1
            else:
                ranges.append([addr, 1])
        out += ranges
        seen = now
    blob = b"".join(struct.pack("<QQ", s, n) for s, n in out)
    os.write(fd, struct.pack("<Q", len(out)))
    view = memoryview(blob)
    while view:
        k = os.write(fd, view)
        view = view[k:]
    os._exit(0)
