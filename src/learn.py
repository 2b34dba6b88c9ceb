# The page-learning profiler: runs once per zygote start-up, in a throw-away child of the
# zygote (zygote.c learn_prefault), never in a sandbox. It does what a sandbox does before READY
# and then one hello-world request, with the runner's own code, and reports which of the
# zygote's pages that wrote, so that sandboxes copy them in advance.
#
# RUNNER, the runner module (runner.py, already loaded in the zygote), is set in this module's
# globals by zygote.c before this code runs.

import io
import json
import os
import struct
import traceback

if "RUNNER" not in globals():
    raise RuntimeError("learn.py: RUNNER not set: zygote.c sets it before this code runs")
RUNNER = globals()["RUNNER"]


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
    # The runner's socket fd is the zygote's control socket here: make sure nothing can write to it.
    null = os.open("/dev/null", os.O_WRONLY)
    os.dup2(null, RUNNER.SOCK)
    mod, _, err = RUNNER._prepare()
    maps = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            perms = parts[1]
            name = parts[5] if len(parts) > 5 else ""
            if perms[:2] != "rw" or perms[3] != "p" or name in ("[vvar]", "[vdso]", "[vsyscall]", "[stack]"):
                continue
            a, b = (int(x, 16) for x in parts[0].split("-"))
            # Mappings this large are address-space reservations (a sanitizer's shadow memory),
            # not the interpreter's heap: scanning them would take minutes for nothing.
            if b - a <= 1 << 30:
                maps.append((a, b))
    page = os.sysconf("SC_PAGE_SIZE")

    def exclusive():
        # Bit 56 of a pagemap entry: the page is mapped by this process only. After fork every
        # page is shared with the zygote; one this child writes becomes its own copy. (The
        # kernel's soft-dirty bits would say the same, but are not built into every kernel.)
        pages = set()
        with open("/proc/self/pagemap", "rb") as pm:
            for a, b in maps:
                for start in range(a, b, 1 << 27):  # 32768 pages per read
                    pm.seek(start // page * 8)
                    data = pm.read((min(b, start + (1 << 27)) - start) // page * 8)
                    for i, (entry,) in enumerate(struct.iter_unpack("<Q", data)):
                        if entry >> 63 & 1 and entry >> 56 & 1:
                            pages.add(start + i * page)
        return pages

    # Learned step by step, in the order of how common the work is: a sandbox copies the
    # pages of the first steps first, up to the zygote's budget. Right after fork nothing is
    # this process's own, so what is already exclusive now was written by PyOS_AfterFork_Child
    # and _prepare: every sandbox writes those, and copies them first, before either runs.
    def ranges_of(pages):
        ranges = []
        for addr in sorted(pages):
            if ranges and ranges[-1][0] + ranges[-1][1] * page == addr:
                ranges[-1][1] += 1
            else:
                ranges.append([addr, 1])
        return ranges

    seen = exclusive()
    out = ranges_of(seen)
    # Then a whole hello-world request, down main()'s path (decode, split off the last
    # expression, compile, exec, the output streams, the report), writing to /dev/null.
    hello = json.dumps({"code": 'print("Hello, World!")', "mode": "report", "limits": {
        "images": 1, "image_bytes": 1 << 20, "return_file_bytes": 1 << 20, "return_bytes": 1 << 20,
        "result_bytes": 1 << 16}})
    try:
        # The code goes to /dev/null: this child is not sandboxed, SCRIPT would be the host's.
        script = os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)
        json.dumps(RUNNER._run(json.loads(hello), mod, err, script), ensure_ascii=False).encode("utf-8", "replace")
    except Exception:
        pass
    now = exclusive()
    out += ranges_of(now - seen)
    seen = now
    sink = io.StringIO()
    for step in steps:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            try:
                step()
            except Exception:
                pass
            json.dumps({"exit_code": 0, "error": None})
        now = exclusive()
        out += ranges_of(now - seen)
        seen = now
    blob = b"".join(struct.pack("<QQ", s, n) for s, n in out)
    os.write(fd, struct.pack("<Q", len(out)))
    view = memoryview(blob)
    while view:
        k = os.write(fd, view)
        view = view[k:]
    os._exit(0)
