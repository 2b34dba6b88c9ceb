# The code that runs inside a sealed sandbox: it waits for one request on the socket at fd 3,
# runs the user's code as __main__, and reports. It is compiled once in the zygote, so a run
# pays no import; only main() runs in the child, after the C sealing pipeline.
#
# Output: sys.stdout and sys.stderr are real io.TextIOWrappers (reconfigure, .buffer.raw,
# detach work as scripts expect) over a small binary layer that sends each flushed piece as one
# SOCK_SEQPACKET message tagged 'O' or 'E'. One socket for both keeps the order in which the
# program wrote (a line of stdout, then a traceback on stderr) exact, which two pipes cannot.
# A stream's bytes go out at each newline and before the other stream writes. Writes that
# bypass Python (subprocesses, C code, os.write(1, ...)) go to the raw pipes at fds 1 and 2.
#
# The code runs as a script file, SCRIPT, so that __file__, sys.argv[0] and multiprocessing's
# spawn and forkserver (whose workers re-run the main file) work as under `python3 file`.
#
# The 'R' frame with the exception is a report, not the verdict: the server takes the exit
# status from the kernel, so user code that forges frames only misleads itself.

import builtins
import io
import json
import linecache
import os
import struct
import sys
import traceback
import types

# The protocol and the environment come from C (proto.h), set in this module's globals by
# zygote.c before this code runs, so that they are written once: FRAME, the tags by name, as
# bytes; CHUNK, the largest payload of one message (FRAME_CHUNK); REQUEST_MAX, the largest
# message the server sends; END_FORMAT and END_SIZE, the 'Z' frame; SOCK, the socket's fd;
# ENV, the run's environment; RUNNER_FILE, the file name this code is compiled under.
_FROM_C = ("FRAME", "CHUNK", "REQUEST_MAX", "END_FORMAT", "END_SIZE", "SOCK", "ENV", "RUNNER_FILE",
           "IMAGE_FORMAT", "IMAGE_HEADER")
_missing = [name for name in _FROM_C if name not in globals()]
if _missing:
    raise RuntimeError("runner.py: %s not set: zygote.c sets them from proto.h before this code runs"
                       % ", ".join(_missing))
FRAME, CHUNK, REQUEST_MAX = globals()["FRAME"], globals()["CHUNK"], globals()["REQUEST_MAX"]
END_FORMAT, END_SIZE, SOCK = globals()["END_FORMAT"], globals()["END_SIZE"], globals()["SOCK"]
ENV, RUNNER_FILE = globals()["ENV"], globals()["RUNNER_FILE"]
IMAGE_FORMAT, IMAGE_HEADER = globals()["IMAGE_FORMAT"], globals()["IMAGE_HEADER"]
if struct.calcsize(END_FORMAT) != END_SIZE - 1:
    raise RuntimeError("runner.py: END_FORMAT %r is not END_SIZE - 1 = %d bytes" % (END_FORMAT, END_SIZE - 1))
if struct.calcsize(IMAGE_FORMAT) != IMAGE_HEADER - 1:
    raise RuntimeError("runner.py: IMAGE_FORMAT %r is not IMAGE_HEADER - 1 = %d bytes"
                       % (IMAGE_FORMAT, IMAGE_HEADER - 1))
_TAG_READY, _TAG_OUT, _TAG_ERR = FRAME["ready"], FRAME["stdout"], FRAME["stderr"]
_TAG_REPORT, _TAG_END, _TAG_REQUEST = FRAME["report"], FRAME["report_end"], FRAME["request"]
_TAG_IMAGE, _TAG_IMAGE_MORE = FRAME["image"], FRAME["image_more"]
_REQUEST_HEADER = 1 + 8  # the tag, the total length

# The private APIs of CPython and matplotlib this file relies on, as (module, attribute path):
# none is documented, so an upgrade may rename or drop one. Checked against Debian 12's Python
# 3.11 and matplotlib 3.6 (PRIVATE_APIS_CHECKED); check_private_apis() runs once in the zygote
# at start-up, which fails naming the missing one rather than letting every run fail later.
# A module not loaded (matplotlib in the lean zygote) is not checked: nothing uses it then.
PRIVATE_APIS_CHECKED = {"python": "3.11", "matplotlib": "3.6"}
PRIVATE_APIS = (
    ("atexit", "_clear"),  # _prepare: the zygote's exit handlers are not the run's
    ("atexit", "_ncallbacks"),  # _prepare, _finish
    ("atexit", "_run_exitfuncs"),  # _finish: what interpreter exit does
    ("threading", "_shutdown"),  # _finish: waits for non-daemon threads
    ("threading", "Thread._set_native_id"),  # _prepare: the main thread's id in this process
    ("matplotlib.pyplot", "_pylab_helpers.Gcf.get_all_fig_managers"),  # _Figures.open_figures
)


def check_private_apis(modules=None):
    """None, or a message naming the first private API in PRIVATE_APIS that is missing.
    modules: {name: module} to look in (default sys.modules: what the zygote imported)."""
    modules = sys.modules if modules is None else modules
    for mod, path in PRIVATE_APIS:
        obj = modules.get(mod)
        if obj is None:
            continue
        for part in path.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                return ("the sandbox runner needs %s.%s, a private API that is missing here "
                        "(Python %s; runner.py PRIVATE_APIS was checked against %s)"
                        % (mod, path, sys.version.split()[0],
                           ", ".join("%s %s" % kv for kv in PRIVATE_APIS_CHECKED.items())))
    return None

# The user's code, written there before it runs. Not in /work: users upload files there, list
# it and get its files back (return_files "*"), so an extra file would be seen, returned or
# clobber one of theirs. /tmp is the run's own: the same capped tmpfs as /work (seal-mount.c),
# private to this run and gone with it. A hidden directory keeps it out of `ls /tmp` and of
# globs, and a name without "snakebox" keeps tracebacks about the user's code only.
SCRIPT_DIR = "/tmp/.main"
SCRIPT = SCRIPT_DIR + "/main.py"
# sys.path[0]: under `python3 file` it is the file's directory; here the program's directory is
# its working directory, where its uploaded modules are, as if the file were /work/main.py.
WORKDIR = "/work"

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


def _as_bytes(b):
    """A copy of a bytes-like object (the caller may reuse it), or the TypeError that Python's
    own buffered writer raises (bytes(5) would be five NULs)."""
    try:
        return memoryview(b).tobytes()
    except TypeError:
        raise TypeError("a bytes-like object is required, not '%s'" % type(b).__name__) from None


class _Raw(io.RawIOBase):
    """sys.stdout.buffer.raw: each write is one piece on the socket, after everything written
    before it on either stream."""

    def __init__(self, tag, fd, name):
        self._tag = tag
        self._fd = fd
        self.name = name
        self.buffer = None

    mode = "wb"

    def writable(self):
        return True

    def fileno(self):
        return self._fd

    def isatty(self):
        return False

    def write(self, b):
        if self.closed:
            raise ValueError("write to closed file")
        data = b if type(b) is bytes else _as_bytes(b)
        buf = self.buffer
        if buf.peer._parts or not buf.peer.text.write_through:
            buf.peer._drain()
        if buf._parts:
            buf._send()
        _send(self._tag, data)
        return len(data)


class _Buffer(io.BufferedIOBase):
    """sys.stdout.buffer. It holds bytes until a newline, an explicit flush, CHUNK bytes, or
    the other stream writing: before that, whatever this stream holds is sent, so the order
    between the two is exact. The text layer above writes through (it holds nothing), so text
    reaches here in the order it was written, and bytes written to .buffer after it follow it."""

    def __init__(self, raw):
        self.raw = raw
        raw.buffer = self
        self._tag = raw._tag
        self._parts = []
        self._size = 0
        self._open = True  # self.closed, without IOBase's attribute lookup on each write
        self.peer = None  # the other stream's _Buffer
        self.text = None  # the TextIOWrapper over this one

    mode = "wb"

    @property
    def name(self):
        return self.raw.name

    def writable(self):
        return True

    def fileno(self):
        return self.raw._fd

    def isatty(self):
        return False

    def write(self, b):
        if not self._open:
            raise ValueError("write to closed file")
        peer = self.peer
        # write_through False (the program's choice, by reconfigure) lets the peer's text layer
        # hold text: flushing it keeps the order then too.
        if peer._parts or not peer.text.write_through:
            peer._drain()
        data = b if type(b) is bytes else _as_bytes(b)
        parts = self._parts
        if b"\n" in data:
            if parts:
                parts.append(data)
                data = b"".join(parts)
                parts.clear()
                self._size = 0
            _send(self._tag, data)
        else:
            parts.append(data)
            self._size += len(data)
            if self._size >= CHUNK:
                self._send()
        return len(data)

    def flush(self):
        if not self._open:
            raise ValueError("flush of closed file")
        if self._parts:
            self._send()

    def _send(self):
        data = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        _send(self._tag, data)

    def _drain(self):
        """Sends what this stream holds, in its text layer too."""
        text = self.text
        if not text.write_through:
            try:
                text.flush()  # its text, then (through our write and flush) its bytes
            except ValueError:
                pass  # closed or detached: it holds nothing
        if self._parts:
            self._send()

    def close(self):
        if self._open:
            try:
                super().close()  # flushes
            finally:
                self._open = False
                self.raw.close()


def _stream(tag, fd, name, line_buffering):
    """A TextIOWrapper as Python's own sys.stdout is, over a _Buffer: UTF-8 and, as the server
    expects and Python's stderr does, backslashreplace for what cannot be encoded (a program
    that reconfigures to another encoding gets those bytes; the server shows invalid UTF-8 as
    U+FFFD, as it does for os.write). line_buffering as python3 sets it when the streams are
    pipes: on for stderr only (the _Buffer sends each line anyway; on, the wrapper also flushes
    at a carriage return, and costs a flush() call per line)."""
    buf = _Buffer(_Raw(tag, fd, name))
    text = io.TextIOWrapper(buf, encoding="utf-8", errors="backslashreplace", newline="\n",
                            line_buffering=line_buffering, write_through=True)
    text.mode = "w"
    buf.text = text
    return text


def _read_request():
    first = os.read(SOCK, REQUEST_MAX)
    if not first:
        os._exit(0)  # the server is gone before sending anything
    if first[:1] != _TAG_REQUEST or len(first) < _REQUEST_HEADER:
        os._exit(70)
    total = int.from_bytes(first[1:_REQUEST_HEADER], "little")
    parts = [first[_REQUEST_HEADER:]]
    got = len(parts[0])
    while got < total:
        m = os.read(SOCK, REQUEST_MAX)
        if not m:
            os._exit(0)
        parts.append(m)
        got += len(m)
    return json.loads(b"".join(parts))


_OUTPUT = ()  # the _Buffers of stdout and stderr (_prepare), whatever the program makes sys.stdout


def _send_image(fmt, width, height, data):
    """A figure to a live answer, where the program showed it: after what both streams hold
    (so that the server places it after the text written before it), then the image itself in
    frames of at most CHUNK bytes (proto.h FRAME_IMAGE)."""
    for b in _OUTPUT:
        try:
            b._drain()
        except Exception:
            pass  # a stream the program closed holds nothing
    width, height = (min(max(int(v), 0), 0xFFFFFFFF) for v in (width, height))
    head = _TAG_IMAGE + struct.pack(IMAGE_FORMAT, fmt[:1].encode(), width, height, len(data))
    first = CHUNK - len(head) + 1
    try:
        os.write(SOCK, head + data[:first])
    except OSError:
        return  # the server stopped reading: the run is being ended
    _send(_TAG_IMAGE_MORE, memoryview(data)[first:])


def _reseed():
    # Seeded once in the zygote at import: every child would replay the same sequence.
    import random
    random.seed()
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed()
    # multiprocessing's authkey (what its managers and connections authenticate with) was drawn
    # at import, in the zygote when a library imported it: every run would share it. When it is
    # not imported yet, the run's own import draws a fresh one.
    mp = sys.modules.get("multiprocessing.process")
    if mp is not None:
        mp.current_process().authkey = os.urandom(32)


def _exit_code(e):
    code = e.code
    if code is None:
        return 0, None
    if isinstance(code, int):
        return code & 0xFF, None
    # sys.exit("message"): Python prints it to stderr and exits 1.
    try:
        print(code, file=sys.stderr)
    except Exception:
        pass  # the program closed its stderr: Python prints nothing then either
    return 1, str(code)


def _is_user_file(name):
    """The user's code: the run's script, or a session's cell (see _session)."""
    return name == SCRIPT or name.startswith(CELL_PREFIX)


def _user_tb(tb):
    """The traceback from the user's first frame on: ours (and the parser's, for a syntax
    error) come before it. Frames of ours at the end (a stream's write that raised, where
    Python's own streams are C code and show none) are cut too."""
    first = tb
    while first is not None and not _is_user_file(first.tb_frame.f_code.co_filename):
        first = first.tb_next
    last = None
    t = first
    while t is not None:
        if t.tb_frame.f_code.co_filename != RUNNER_FILE:
            last = t
        t = t.tb_next
    if last is not None:
        last.tb_next = None
    return first


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

    out = _stream(_TAG_OUT, 1, "<stdout>", False)
    err = _stream(_TAG_ERR, 2, "<stderr>", True)
    out.buffer.peer, err.buffer.peer = err.buffer, out.buffer
    global _OUTPUT
    _OUTPUT = (out.buffer, err.buffer)
    sys.stdout = sys.__stdout__ = out
    sys.stderr = sys.__stderr__ = err

    # __main__ as `python3 SCRIPT` makes it: spawn's workers find the file through __file__
    # (with __spec__ None) and re-run it as __mp_main__.
    import importlib.machinery
    mod = types.ModuleType("__main__")
    mod.__dict__.update(__builtins__=builtins, __file__=SCRIPT, __cached__=None,
                        __loader__=importlib.machinery.SourceFileLoader("__main__", SCRIPT))
    sys.modules["__main__"] = mod
    sys.argv = [SCRIPT]
    if sys.path[:1] == [""]:
        del sys.path[0]
    if sys.path[:1] != [WORKDIR]:
        sys.path.insert(0, WORKDIR)
    # Touch the paths a request takes (decode, compile, exec, report) once, on scratch objects.
    json.loads('{"code": "x = 1"}')
    json.dumps({"exit_code": 0, "error": None})
    import threading
    threading.active_count()
    # threading read the main thread's kernel id in the zygote; this is another process.
    threading.main_thread()._set_native_id()
    atexit._ncallbacks()
    exec(compile("x = 1\n", SCRIPT, "exec", dont_inherit=True), {"__builtins__": builtins})
    _split_last_expression("x = 1\nx\n")
    return mod, out, err


def _set_stdin(text):
    """The request's stdin, at fd 0 so that subprocesses read it too: a memfd, then EOF."""
    fd = os.memfd_create("stdin", os.MFD_CLOEXEC)
    data = text.encode("utf-8", "surrogateescape")
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    os.dup2(fd, 0, inheritable=True)
    os.close(fd)
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")


def _write_files(files, replace=False):
    """Writes the uploaded files into the working directory; returns {name: content} to tell
    later which ones the run changed. Names were validated by the server. replace: a session's
    cell may upload a file an earlier cell wrote (never through a symlink, still)."""
    import base64
    written = {}
    for f in files:
        data = f["content"]
        if f.get("encoding") == "base64":
            data = base64.b64decode(data, validate=True)
        else:
            data = data.encode("utf-8", "surrogateescape")
        parent = os.path.dirname(f["name"])
        if parent:
            os.makedirs(parent, exist_ok=True)
        how = os.O_TRUNC if replace else os.O_EXCL
        fd = os.open(f["name"], os.O_WRONLY | os.O_CREAT | how | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        written[f["name"]] = data
    return written


def _file_stats():
    """{relative path: (size, mtime_ns, inode)} of the working directory's regular files: what
    a session's cell found, so that its return_files are what it created or changed."""
    import stat
    seen = {}
    for dirpath, dirnames, filenames in os.walk(".", followlinks=False):
        for fn in filenames:
            rel = os.path.normpath(os.path.join(dirpath, fn))
            try:
                st = os.lstat(rel)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                seen[rel] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return seen


def _collect_files(spec, uploaded, limits, before=None):
    """The regular files of the working directory the run created or changed, matching spec
    (True: all; a list: fnmatch patterns on the relative path). Symlinks and special files are
    never followed nor read. Over the caps a file is listed, truncated, without content.
    before: a session cell's _file_stats() from its start; a file it shows unchanged is the
    session's, not this cell's."""
    import base64
    import fnmatch
    import stat
    per_file, budget = limits["return_file_bytes"], limits["return_bytes"]
    found = []
    for dirpath, dirnames, filenames in os.walk(".", followlinks=False):
        dirnames.sort()
        for fn in filenames:
            rel = os.path.normpath(os.path.join(dirpath, fn))
            if spec is not True and not any(fnmatch.fnmatchcase(rel, pat) for pat in spec):
                continue
            try:
                st = os.lstat(rel)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            if before is not None and before.get(rel) == (st.st_size, st.st_mtime_ns, st.st_ino):
                continue
            found.append((rel, st))
    found.sort()
    listed = limits.get("return_files", len(found))
    dropped = max(0, len(found) - listed)
    out = []
    for rel, st in found[:listed]:
        entry = {"name": rel, "size": st.st_size}
        if rel not in uploaded and (st.st_size > per_file or st.st_size > budget):
            entry["truncated"] = True
            out.append(entry)
            continue
        try:
            fd = os.open(rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            chunks, left = [], max(per_file, len(uploaded.get(rel, b""))) + 1
            while left > 0:
                chunk = os.read(fd, min(left, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            data = b"".join(chunks)
        finally:
            os.close(fd)
        if rel in uploaded and uploaded[rel] == data:
            continue
        entry["size"] = max(len(data), st.st_size)
        if len(data) > per_file or len(data) > budget:
            entry["truncated"] = True
            out.append(entry)
            continue
        budget -= len(data)
        entry["encoding"], entry["content"] = "base64", base64.b64encode(data).decode()
        try:
            text = data.decode("utf-8")
            # As text only when its JSON is no longer than the base64: the server sizes the
            # report's cap on base64 (control characters would cost 6 bytes each).
            if len(json.dumps(text, ensure_ascii=False).encode("utf-8", "replace")) <= len(entry["content"]) + 2:
                entry["encoding"], entry["content"] = "utf-8", text
        except UnicodeDecodeError:
            pass
        out.append(entry)
    return out, dropped


_current_figures = None  # the cell's (or run's) _Figures, which plt.show() renders into


class _Figures:
    """Matplotlib figures, rendered when passed to plt.show() and at the end of the run."""

    def __init__(self, fmt, limits, live=False):
        self.fmt = fmt
        self.live = live  # a live answer: each figure is sent as it is shown (_send_image)
        self.max_images = limits["images"]
        self.max_bytes = limits["image_bytes"]
        self.images = []
        self.dropped = 0

    def capture(self, figs):
        if not figs:
            return  # and never import matplotlib for nothing: in the lean zygote that takes a second
        import base64
        import matplotlib.pyplot as plt
        for fig in figs:
            if len(self.images) >= self.max_images:
                self.dropped += 1
            else:
                try:
                    buf = io.BytesIO()
                    fig.savefig(buf, format=self.fmt)
                    data = buf.getvalue()
                except Exception as e:
                    print("snakebox: a figure could not be rendered: %s" % e, file=sys.stderr)
                    data = None
                if data is None or len(data) > self.max_bytes:
                    self.dropped += 1
                else:
                    w, h = self._size(fig, data)
                    self.images.append({"format": self.fmt, "width": w, "height": h,
                                        "data": base64.b64encode(data).decode()})
                    if self.live:
                        _send_image(self.fmt, w, h, data)
            plt.close(fig)

    def _size(self, fig, data):
        if self.fmt == "png" and data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
            return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        w, h = fig.get_size_inches() * fig.dpi
        return int(round(w)), int(round(h))

    def open_figures(self):
        """Open pyplot figures in creation order (numbers can be chosen: plt.figure(5))."""
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None:
            return []
        figs = [m.canvas.figure for m in plt._pylab_helpers.Gcf.get_all_fig_managers()]
        return sorted(figs, key=lambda f: (getattr(f, "_snakebox_seq", 1 << 62), f.number))

    def install(self):
        global _current_figures
        _current_figures = self
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None or getattr(plt.show, "_snakebox", False):
            return  # a session's later cell: the wrappers below find this one in _current_figures
        import itertools
        seq, new_figure = itertools.count(), plt.figure

        def figure(*args, **kwargs):
            fig = new_figure(*args, **kwargs)
            if not hasattr(fig, "_snakebox_seq"):
                fig._snakebox_seq = next(seq)
            return fig

        def show(*args, **kwargs):
            _current_figures.capture(_current_figures.open_figures())
        show._snakebox = True
        figure.__wrapped__ = new_figure
        plt.figure = figure
        plt.show = show


def _cut(text, limit):
    """At most limit bytes of UTF-8, cut at a character boundary."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def _result(value, limit):
    if value is None:
        return None
    try:
        text = repr(value)
    except Exception as e:
        text = "<repr() failed: %s: %s>" % (type(e).__name__, e)
    res = {"text/plain": _cut(text, limit)}
    html = getattr(value, "_repr_html_", None)
    if callable(html):
        try:
            h = html()
            if isinstance(h, str):
                res["text/html"] = _cut(h, limit)
        except Exception:
            pass
    return res


def _split_last_expression(code, filename=None):
    """(module code, expression code) when the code ends with an expression, as a notebook
    cell does; (None, None) otherwise. Line numbers stay the user's."""
    import ast
    filename = filename or SCRIPT
    tree = ast.parse(code, filename)
    if not tree.body or not isinstance(tree.body[-1], ast.Expr):
        return None, None
    last = tree.body.pop()
    body = compile(tree, filename, "exec", dont_inherit=True)
    expr = compile(ast.Expression(last.value), filename, "eval", dont_inherit=True)
    return body, expr


def _apply_limits(req):
    """Tighter limits of this request, for what the server cannot set from outside."""
    import resource
    timeout = req.get("timeout_sec")
    if timeout:
        cpu = int(timeout) + 1
        soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
        if soft == resource.RLIM_INFINITY or cpu < soft:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1 if hard == resource.RLIM_INFINITY else min(hard, cpu + 1)))
    # memory_bytes plus the server's headroom for what is address space but not memory.
    mem = req.get("address_space_bytes")
    if mem:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY and mem < soft:
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))


def _open_script():
    """Creates SCRIPT, empty, and returns an fd to write the code into: the directory and the
    file cost nothing on the request's path. Read-only for the program (it may chmod them
    back: they are its own), so that a cleanup of /tmp does not delete its main file from
    under spawn's workers."""
    try:
        os.mkdir(SCRIPT_DIR, 0o700)
        fd = os.open(SCRIPT, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o444)
        os.chmod(SCRIPT_DIR, 0o555)
        return fd
    except OSError:
        # Not expected (the tmpfs is new and empty); the run still works, without the file.
        return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)


# The runner's pid (2: the sandbox's init is 1, init/sandbox-init.c). Only the runner reports: a
# process the code forked and that returns from it instead of exiting must not.
_RUNNER_PID = None


def main():
    global _RUNNER_PID
    _RUNNER_PID = os.getpid()
    mod, out, err = _prepare()
    script = _open_script()
    os.write(SOCK, _TAG_READY)
    req = _read_request()
    if req.get("mode") == "session":
        os.close(script)
        _session(req, mod, out, err)
    _finish(out, err, _run(req, mod, err, script))


# A session's cells are compiled under these names ("<cell 3>"), each kept in linecache, so a
# traceback through a function an earlier cell defined shows that cell's lines.
CELL_PREFIX = "<cell "


def _walk_to(name, create_dirs=False):
    """(fd of the directory that holds name's last component, that component), name being a
    path relative to WORKDIR that the server checked as it checks uploads. No symlink is
    followed on the way: each directory is opened O_NOFOLLOW from the one before."""
    parts = name.split("/")
    dfd = os.open(WORKDIR, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            if create_dirs:
                try:
                    os.mkdir(part, 0o755, dir_fd=dfd)
                except FileExistsError:
                    pass
            nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            os.close(dfd)
            dfd = nfd
    except BaseException:
        os.close(dfd)
        raise
    return dfd, parts[-1]


def _files_list(req):
    """The regular files under WORKDIR (symlinks and special files are not listed, nor
    followed), at most req["max"] of them, in name order."""
    import stat
    import time
    found = []
    for dirpath, dirnames, filenames in os.walk(WORKDIR, followlinks=False):
        dirnames.sort()
        for fn in filenames:
            path = os.path.join(dirpath, fn)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                found.append((os.path.relpath(path, WORKDIR), st))
    found.sort()
    out = []
    for rel, st in found[:req.get("max", 1000)]:
        mtime = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(st.st_mtime)) + ".%03dZ" % (st.st_mtime_ns // 1000000 % 1000)
        out.append({"name": rel, "size": st.st_size, "mtime": mtime})
    return {"exit_code": 0, "error": None, "files": out, "files_dropped": max(0, len(found) - len(out))}


def _file_get(req):
    """Sends the file's fd (FRAME_FD, SCM_RIGHTS): the server serves it without ever opening a
    path in the sandbox. Regular files only, never through a symlink."""
    import stat
    dfd, last = _walk_to(req["name"])
    try:
        fd = os.open(last, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
    finally:
        os.close(dfd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError("not a regular file: %s" % req["name"])
        _send_fd(fd)
    finally:
        os.close(fd)
    return {"exit_code": 0, "error": None}


_sock = None


def _send_fd(fd):
    global _sock
    import socket
    if _sock is None:
        # A socket object over SOCK that never closes it (the runner writes to SOCK directly).
        _sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=os.dup(SOCK))
    socket.send_fds(_sock, [FRAME["fd"]], [fd])


def _file_put(req):
    """Writes the file (content base64), replacing one that is there; never through a symlink.
    Written beside it under a temporary name, then renamed over it: a write that fails (the
    session's tmpfs full) leaves neither a partial file nor a truncated old one. Reports
    whether it was created."""
    import base64
    import stat
    data = base64.b64decode(req["content"], validate=True)
    dfd, last = _walk_to(req["name"], create_dirs=True)
    try:
        try:
            created = False
            if not stat.S_ISREG(os.lstat(last, dir_fd=dfd).st_mode):
                raise IsADirectoryError("not a regular file: %s" % req["name"])
        except FileNotFoundError:
            created = True
        tmp = ".%s.snakebox-put-%s" % (last[:64], os.urandom(6).hex())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dfd)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.rename(tmp, last, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            os.unlink(tmp, dir_fd=dfd)
            raise
    finally:
        os.close(dfd)
    return {"exit_code": 0, "error": None, "created": created}


def _file_delete(req):
    import stat
    dfd, last = _walk_to(req["name"])
    try:
        if stat.S_ISDIR(os.lstat(last, dir_fd=dfd).st_mode):
            raise IsADirectoryError("a directory: %s" % req["name"])
        os.unlink(last, dir_fd=dfd)
    finally:
        os.close(dfd)
    return {"exit_code": 0, "error": None}


def _pack(req):
    """A restart that keeps the files: /work's regular files (no symlink followed, special files
    left out) as a tar in a memfd, passed to the server (FRAME_FD), which hands it to the fresh
    runner's init (_unpack). A file that changes size while it is read fails the pack: the
    server then answers the restart with an error and the session stays as it was."""
    import stat
    import tarfile
    fd = os.memfd_create("snakebox-carry", os.MFD_CLOEXEC)
    try:
        with open(os.dup(fd), "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for dirpath, dirnames, filenames in os.walk(WORKDIR, followlinks=False):
                dirnames.sort()
                for fn in sorted(filenames):
                    path = os.path.join(dirpath, fn)
                    try:
                        ffd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
                    except OSError:
                        continue  # a symlink (ELOOP), a FIFO opened elsewhere, gone meanwhile
                    with open(ffd, "rb") as fo:
                        st = os.fstat(ffd)
                        if not stat.S_ISREG(st.st_mode):
                            continue
                        info = tarfile.TarInfo(os.path.relpath(path, WORKDIR))
                        info.size = st.st_size
                        info.mode = st.st_mode & 0o777
                        info.mtime = st.st_mtime
                        tar.addfile(info, fo)
        _send_fd(fd)
    finally:
        os.close(fd)
    return {"exit_code": 0, "error": None}


def _unpack():
    """The packed /work of the sandbox this one replaces (_pack), passed right after the init
    request; written as uploads are (_walk_to, never through a symlink: the tmpfs is fresh)."""
    import socket
    import tarfile
    global _sock
    if _sock is None:
        _sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=os.dup(SOCK))
    msg, fds, _flags, _addr = socket.recv_fds(_sock, 16, 1)
    if msg != FRAME["fd"] or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        raise OSError("the packed files did not come")
    os.lseek(fds[0], 0, os.SEEK_SET)  # the packer's writes left the shared offset at the end
    with open(fds[0], "rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
        for m in tar:
            parts = m.name.split("/")
            if not m.isreg() or m.name.startswith("/") or any(x in ("", ".", "..") for x in parts):
                continue
            dfd, last = _walk_to(m.name, create_dirs=True)
            try:
                fd = os.open(last, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                             m.mode & 0o777, dir_fd=dfd)
            finally:
                os.close(dfd)
            with open(fd, "wb") as out, tar.extractfile(m) as src:
                while True:
                    chunk = src.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
                os.utime(out.fileno(), (m.mtime, m.mtime))


_FILE_OPS = {"files_list": _files_list, "file_get": _file_get, "file_put": _file_put,
             "file_delete": _file_delete, "pack": _pack}


def _ignore_interrupt(signum, frame):
    """SIGINT between a session's cells: nothing to interrupt (a late interrupt or timeout of
    the cell that just ended). A Python handler, not SIG_IGN, so that the C handler stays and
    the next cell's default_int_handler takes effect at once."""


def _session(req, mod, out, err):
    """A session's runner (the server sent {"mode": "session"} as the first request): answers
    each request with a report and its 'Z', then waits for the next, in the same __main__.
    Never returns; the server ends the session by killing the sandbox.

    SIGINT: the server interrupts a cell by sending it to the sandbox's init, which forwards it
    here. Its disposition is set here, not inherited: a server started in the background by a
    shell inherits SIGINT ignored, and so would we. During user code it raises
    KeyboardInterrupt (default_int_handler); between cells it does nothing."""
    import signal
    signal.signal(signal.SIGINT, _ignore_interrupt)
    cells = 0
    while True:
        op = req.get("op", "cell")  # a cell is the /api/execute request as it is
        peak_rss = 0  # the 'Z' frame's: a cell's own peak, 0 for the other ops
        if op == "cell":
            cells += 1
            measured = _reset_peak_rss()
            try:
                report = _run(req, mod, err, None, cell=cells)
            except KeyboardInterrupt:
                # Only when SIGINT came after the cell's code, before its handler was put
                # back: the cell was interrupted.
                signal.signal(signal.SIGINT, _ignore_interrupt)
                report = {"exit_code": 1, "error": {"type": "KeyboardInterrupt", "message": "",
                                                    "traceback": ""}}
            if measured:
                peak_rss = _cell_peak_rss()
        elif op in _FILE_OPS:
            try:
                report = _FILE_OPS[op](req)
            except OSError as e:
                report = {"exit_code": 1, "error": {"type": type(e).__name__, "message": str(e),
                                                    "traceback": ""}}
        elif op == "init":
            report = {"exit_code": 0, "error": None}
            try:
                if req.get("carry"):
                    _unpack()
                if req.get("files"):
                    _write_files(req["files"], replace=True)
            except Exception as e:
                report = {"exit_code": 1, "error": {"type": type(e).__name__, "message": str(e),
                                                    "traceback": ""}}
        else:
            report = {"exit_code": 70, "error": None}
        _report(out, err, report, peak_rss=peak_rss)
        req = _read_request()


def _write_script(fd, code):
    """The code into SCRIPT (fd from _open_script); False if it could not be written. The run
    goes on without it then: only spawn's workers, tracebacks and reading __file__ need it."""
    try:
        view = memoryview(code.encode("utf-8", "surrogatepass"))
        while view:
            view = view[os.write(fd, view):]
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _run(req, mod, err, script, cell=None):
    """Runs one request's code in mod and returns the report (without maxrss). script: the fd
    that _open_script returned; cell: a session's cell number instead (no script file)."""
    code = req["code"]
    # "report" (every client's request: api.c api_decode_request): the full report, with the
    # last expression's value, figures and files, within "limits". "plain" (the server's own
    # probe: api_runner_request): exit status and error only, the code run as a script.
    mode = req["mode"]
    if mode not in ("report", "plain"):
        raise ValueError("runner.py: unknown request mode %r" % (mode,))
    report_mode = mode == "report"
    limits = req["limits"] if report_mode else {}
    # Tracebacks read their lines from the file, as python3's do (and only when there is one
    # to show); without the file, from linecache (an mtime of None: checkcache keeps it).
    filename = SCRIPT
    if cell is not None:
        filename = "%s%d>" % (CELL_PREFIX, cell)
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    elif not _write_script(script, code):
        linecache.cache[SCRIPT] = (len(code), None, code.splitlines(True), SCRIPT)
    figures = None
    if report_mode:
        figures = _Figures(req.get("image_format", "png"), limits, live=req.get("live") is True)
    if figures:
        figures.install()

    status, error, value, uploaded = 0, None, None, {}
    before = _file_stats() if cell is not None and report_mode and req.get("return_files") else None
    try:
        if cell is None:
            _apply_limits(req)  # a session's limits are the server's, per cell
        if "stdin" in req or cell is not None:
            _set_stdin(req.get("stdin", ""))
        if req.get("files"):
            uploaded = _write_files(req["files"], replace=cell is not None)
        body, expr = _split_last_expression(code, filename) if report_mode else (None, None)
        if cell is not None:
            import signal
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            if expr is None:
                exec(compile(code, filename, "exec", dont_inherit=True), mod.__dict__)
            else:
                exec(body, mod.__dict__)
                value = eval(expr, mod.__dict__)
        finally:
            if cell is not None:
                signal.signal(signal.SIGINT, _ignore_interrupt)
    except SystemExit as e:
        status, message = _exit_code(e)
        if status != 0:
            error = {"type": "SystemExit", "message": message or str(status), "traceback": ""}
    except BaseException as e:
        tb = _user_tb(e.__traceback__)
        text = "".join(traceback.format_exception(type(e), e, tb))
        try:
            err.write(text)
            err.flush()
        except Exception:
            # The program closed, detached or re-encoded (errors="strict") its stderr: the
            # traceback still goes into the output.
            _send(_TAG_ERR, text.encode("utf-8", "backslashreplace"))
        status = 1
        try:
            message = str(e)
        except BaseException:
            message = "<exception str() failed>"
        error = {"type": type(e).__name__, "message": message, "traceback": text}

    if error is not None and "error_bytes" in limits:
        # The report's cap counts on these being cut; the whole traceback is in the output.
        error = {k: _cut(v, limits["error_bytes"]) for k, v in error.items()}
    report = {"exit_code": status, "error": error}
    if report_mode:
        try:
            report["result"] = _result(value, limits["result_bytes"]) if error is None else None
        except BaseException:
            report["result"] = None
        try:
            figures.capture(figures.open_figures())
        except BaseException as e:
            print("snakebox: figures could not be collected: %s" % e, file=sys.stderr)
        report["images"], report["images_dropped"] = figures.images, figures.dropped
        spec = req.get("return_files")
        if spec:
            try:
                report["files"], report["files_dropped"] = _collect_files(spec, uploaded, limits, before)
            except BaseException as e:
                print("snakebox: files could not be collected: %s" % e, file=sys.stderr)
                report["files"] = []
    return report


def _finish(out, err, report):
    # What a normal interpreter exit does: wait for non-daemon threads, run atexit. Each step
    # only when there is something to do: touching objects costs copy-on-write faults.
    try:
        import threading
        if threading.active_count() > 1:
            threading._shutdown()
    except BaseException:
        pass
    try:
        import atexit
        if atexit._ncallbacks():
            atexit._run_exitfuncs()
    except BaseException:
        pass
    status = _report(out, err, report)
    os._exit(status)


def _reset_peak_rss():
    """Sets this process's peak RSS (VmHWM) back to its current RSS, so that the next one read
    is a session cell's own, not the kernel's since the fork (getrusage's ru_maxrss never goes
    down). True if it could. The server's other measures of a cell's memory are its memory
    cgroup's peak, or without a cgroup, /proc samples every MEMWATCH_INTERVAL_MS, which miss
    a cell that allocates and frees between two samples."""
    try:
        fd = os.open("/proc/self/clear_refs", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"5")  # Documentation/filesystems/proc.rst: reset the peak RSS
        finally:
            os.close(fd)
        return True
    except OSError:
        return False


def _cell_peak_rss():
    """Bytes: this process's peak RSS since _reset_peak_rss, or 0 if unknown."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _report(out, err, report, peak_rss=None):
    """Flushes the streams, sends the report and its 'Z' (from the runner only); returns the
    exit status. The program's current streams (a TextIOWrapper of its own over
    sys.stdout.buffer holds text until Python flushes it at exit), then ours; each alone: one
    closed or detached must not hold back the others' output. peak_rss: the bytes the 'Z'
    frame says; None: this process's peak RSS since it began."""
    streams = [sys.stdout, sys.stderr]
    streams += [s for s in (out, err) if s is not streams[0] and s is not streams[1]]
    for stream in streams:
        try:
            stream.flush()
        except BaseException:
            pass
    status = report.pop("exit_code")
    if os.getpid() == _RUNNER_PID:
        maxrss = peak_rss or 0
        if peak_rss is None:
            try:
                import resource
                maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            except BaseException:
                pass
        # The report, in as many 'R' frames as it needs, then 'Z' with the exit status and
        # the peak RSS in binary (proto.h FRAME_END_SIZE): the report is complete.
        # UTF-8 that the server's JSON parser accepts: a lone surrogate (a file name with
        # undecodable bytes, say) becomes "?" instead of costing the whole report.
        _send(_TAG_REPORT, json.dumps(report, ensure_ascii=False).encode("utf-8", "replace"))
        os.write(SOCK, _TAG_END + struct.pack(END_FORMAT, status, maxrss))
    return status
