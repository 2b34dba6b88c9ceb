"""Compatibility with plain `python3 file` (issue 11, items 4 and 5): sys.stdout and sys.stderr
are real io.TextIOWrappers (reconfigure, .buffer.raw, detach) that keep the exact order between
the two streams, and the code runs as a script file (__file__, sys.argv, multiprocessing's spawn
and forkserver workers that re-run the main file), kept out of the user's /work.

Each docstring says how the test failed against the server before these items (main at c9d20c1,
run with SNAKEBOX_BIN pointing at that build)."""

import re

from conftest import code, run, run_error, run_json, run_ok, show

SCRIPT = "/tmp/.main/main.py"  # runner.py SCRIPT: shown in tracebacks, as python3 shows a path


# --- item 4: the streams are TextIOWrappers -----------------------------------------------------

def test_streams_are_text_io_wrappers_with_their_attributes(server):
    """Before: sys.stdout was the runner's _Stream, not a TextIOWrapper; the run failed on
    `s.buffer.raw` with AttributeError: '_Bytes' object has no attribute 'raw'."""
    got = run_json(server, code('''
        import io, json, sys
        def describe(s, fd):
            return {
                "wrapper": isinstance(s, io.TextIOWrapper),
                "buffered": isinstance(s.buffer, io.BufferedIOBase),
                "raw": isinstance(s.buffer.raw, io.RawIOBase),
                "fileno": [s.fileno(), s.buffer.fileno(), s.buffer.raw.fileno()] == [fd] * 3,
                "isatty": s.isatty(), "name": s.name, "mode": s.mode, "encoding": s.encoding,
                "newlines": s.newlines, "write_through": s.write_through,
                "line_buffering": s.line_buffering, "errors": s.errors,
                "writable": s.writable(), "readable": s.readable(), "seekable": s.seekable(),
                "closed": s.closed,
            }
        print(json.dumps([describe(sys.stdout, 1), describe(sys.stderr, 2),
                          sys.stdout is sys.__stdout__, sys.stderr is sys.__stderr__]))
    '''))
    common = {"wrapper": True, "buffered": True, "raw": True, "fileno": True, "isatty": False,
              "mode": "w", "encoding": "utf-8", "newlines": None, "write_through": True,
              "writable": True, "readable": False, "seekable": False, "closed": False,
              "errors": "backslashreplace"}
    # line_buffering as python3 sets it for pipes; write_through is ours (the order guarantee).
    assert got == [dict(common, name="<stdout>", line_buffering=False),
                   dict(common, name="<stderr>", line_buffering=True), True, True], show(got)


def test_reconfigure_as_scripts_start_keeps_the_output(server):
    """The first lines of many scripts, tqdm and rich set-ups. Before: AttributeError:
    '_Stream' object has no attribute 'reconfigure', on the first line."""
    body = run_ok(server, code('''
        import sys
        sys.stdout.reconfigure(encoding="utf-8", line_buffering=True)
        sys.stderr.reconfigure(encoding="utf-8", errors="backslashreplace")
        print("caf\\u00e9", sys.stdout.line_buffering, sys.stdout.encoding)
        print("warn", file=sys.stderr)
        sys.stdout.reconfigure(line_buffering=False, write_through=False)
        print("held until exit", sys.stdout.line_buffering, sys.stdout.write_through)
    '''))
    assert body["stdout"] == "caf\u00e9 True utf-8\nheld until exit False False\n", show(body)
    assert body["stderr"] == "warn\n", show(body)
    assert body["output"] == "caf\u00e9 True utf-8\nwarn\nheld until exit False False\n", show(body)


def test_reconfigured_encoding_is_what_reaches_the_answer(server):
    """A program that asks for another encoding gets those bytes; the answer repairs invalid
    UTF-8 to U+FFFD, as it does for os.write. errors="strict" raises as in Python. Before:
    AttributeError on reconfigure."""
    body = run_ok(server, code('''
        import sys
        sys.stdout.reconfigure(encoding="latin-1")
        print("\\u00e9t\\u00e9")
        sys.stdout.reconfigure(encoding="ascii", errors="strict")
        try:
            print("\\u00e9")
        except UnicodeEncodeError:
            print("strict", file=sys.stderr)
        sys.stdout.reconfigure(encoding="utf-8", errors="backslashreplace")
        print("\\udcff lone")
    '''))
    assert body["stdout"] == "\ufffdt\ufffd\n\\udcff lone\n", show(body)
    assert body["stderr"] == "strict\n", show(body)


def test_order_between_streams_is_exact_through_text_buffer_and_raw(server):
    """Unfinished lines, .buffer and .buffer.raw writes, print(flush=True), then a traceback:
    every piece in the order written. os.write(1, ...) goes to the raw pipe, as before: its bytes
    are in stdout, its place in the merged output is not promised. Before: AttributeError:
    '_Bytes' object has no attribute 'raw' (sys.stderr.buffer.raw)."""
    body = run_error(server, code('''
        import os, sys
        sys.stdout.write("a")
        sys.stderr.write("b")
        sys.stdout.buffer.write(b"c")
        sys.stderr.buffer.raw.write(b"d")
        os.write(1, b"<raw>")
        print("e", end="", flush=True)
        sys.stdout.write("f")
        print("g", file=sys.stderr)
        sys.stdout.buffer.write(b"h\\n")
        sys.stdout.write("i")
        raise ValueError("j")
    '''))
    out = body["output"].replace("<raw>", "", 1)
    assert "<raw>" in body["stdout"], show(body)
    assert out.startswith("abcdefg\nh\niTraceback (most recent call last):\n"), show(body)
    assert out.endswith("ValueError: j\n"), show(body)
    assert body["stdout"].replace("<raw>", "", 1) == "acefh\ni", show(body)
    assert body["stderr"].startswith("bdg\nTraceback"), show(body)


def test_order_is_kept_when_the_program_turns_write_through_off(server):
    """write_through=False lets the text layer hold text; the other stream still flushes it
    before it writes. Before: AttributeError on reconfigure."""
    body = run_ok(server, code('''
        import sys
        sys.stdout.reconfigure(write_through=False, line_buffering=False)
        sys.stdout.write("1")
        sys.stderr.write("2")
        sys.stdout.write("3")
        print("4", file=sys.stderr)
        sys.stdout.write("5")
    '''))
    assert body["output"] == "1234\n5", show(body)
    assert body["stdout"] == "135" and body["stderr"] == "24\n", show(body)


def test_a_wrapper_of_the_programs_own_is_flushed_at_exit(server):
    """`sys.stdout = io.TextIOWrapper(sys.stdout.buffer, ...)` and the detach() idiom, with
    text left in the program's own wrapper at exit: Python flushes sys.stdout at exit. Before:
    the first lost its text (only the runner's stream was flushed: output ""), the second
    raised io.UnsupportedOperation: detach. (The test stopped at the first: output "".)"""
    body = run_ok(server, code('''
        import io, sys
        sys.stdout = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8")
        print("own wrapper")
    '''))
    assert body["output"] == "own wrapper\n", show(body)
    body = run_ok(server, code('''
        import io, sys
        sys.stderr = io.TextIOWrapper(sys.stderr.detach(), encoding="utf-8", errors="replace")
        sys.stderr.write("detached")
    '''))
    assert body["stderr"] == "detached", show(body)


def test_a_closed_stream_is_closed_and_the_traceback_still_shows(server):
    """close() closes, as in Python (a write then raises ValueError), and the runner's
    traceback still reaches the output. Before: close() only flushed; the write went through
    ("late" in the output, no "closed")."""
    body = run_error(server, code('''
        import sys
        print("out")
        sys.stderr.close()
        try:
            sys.stderr.write("late")
        except ValueError:
            print("closed")
        raise KeyError("k")
    '''))
    assert body["error"]["type"] == "KeyError", show(body)
    assert body["output"].startswith("out\nclosed\nTraceback (most recent call last):\n"), show(body)
    assert body["output"].endswith("KeyError: 'k'\n"), show(body)


def test_buffer_takes_bytes_like_objects_and_refuses_the_rest_as_python_does(server):
    """memoryview and bytearray are written; a str or an int raises Python's TypeError, and the
    traceback ends at the user's line (Python's streams are C code: no frame of theirs).
    Before: buffer.write(5) wrote five NUL bytes, then raised "object of type 'int' has no
    len()"; a str raised "string argument without an encoding" with a "<snakebox-runner>" frame
    in the traceback."""
    body = run_error(server, code('''
        import sys
        sys.stdout.buffer.write(memoryview(b"mv "))
        sys.stdout.buffer.write(bytearray(b"ba\\n"))
        try:
            sys.stdout.buffer.write(5)
        except TypeError as e:
            print(e)
        sys.stdout.buffer.write("text")
    '''))
    assert body["stdout"] == "mv ba\na bytes-like object is required, not 'int'\n", show(body)
    assert body["error"]["message"] == "a bytes-like object is required, not 'str'", show(body)
    tb = body["error"]["traceback"]
    assert re.findall(r'^  File "([^"]*)", line (\d+)', tb, re.M) == [(SCRIPT, "8")], show(tb)


# --- item 5: the code is a script file -----------------------------------------------------------

def test_code_runs_as_a_script_file(server):
    """__file__ is a real file holding the code, sys.argv == [__file__], __main__ looks as under
    `python3 file`. Before: NameError: name '__file__' is not defined (and sys.argv == ['-c'])."""
    src = code('''
        import json, os, sys
        import __main__
        with open(__file__, encoding="utf-8") as f:
            text = f.read()
        print(json.dumps({
            "file": __file__, "dirname": os.path.dirname(__file__), "argv": sys.argv,
            "name": __name__, "spec": repr(__spec__), "main_file": __main__.__file__,
            "loader": __loader__.get_filename(), "path0": sys.path[0], "cwd": os.getcwd(),
            "text": text,
        }))
    ''')
    got = run_json(server, src)
    assert got == {"file": SCRIPT, "dirname": "/tmp/.main", "argv": [SCRIPT], "name": "__main__",
                   "spec": "None", "main_file": SCRIPT, "loader": SCRIPT, "path0": "/work",
                   "cwd": "/work", "text": src}, show(got)


def test_the_script_is_not_among_the_users_files(server):
    """The file lives outside /work: not listed there, not returned by return_files "*" nor
    true. Before: NameError on __file__ (no file at all)."""
    status, body = run(server, code('''
        import os
        assert os.path.isfile(__file__)
        print(sorted(os.listdir(".")), sorted(os.listdir("/work")), os.listdir("/tmp"))
        with open("made.txt", "w") as f:
            f.write("made")
    '''), files=[{"name": "up.txt", "content": "up"}], return_files=["*"])
    assert status == 200 and body["status"] == "Success", show(body)
    assert body["stdout"] == "['up.txt'] ['up.txt'] ['.main']\n", show(body)
    assert [f["name"] for f in body["files"]] == ["made.txt"], show(body)
    status, body = run(server, 'open("a.txt", "w").write(open(__file__).read())\n', return_files=True)
    assert status == 200 and body["status"] == "Success", show(body)
    assert [f["name"] for f in body["files"]] == ["a.txt"], show(body)


def test_uploaded_modules_import_from_the_working_directory(server):
    """sys.path[0] is /work (the program's directory, as for `python3 /work/main.py`), so an
    uploaded module imports, also after a chdir. Before: sys.path[0] was '' (the cwd): after
    os.chdir("/tmp") the import failed with ModuleNotFoundError."""
    status, body = run(server, code('''
        import os
        import helper
        os.chdir("/tmp")
        import helper2
        print(helper.X, helper2.Y)
    '''), files=[{"name": "helper.py", "content": "X = 'one'\n"},
                 {"name": "helper2.py", "content": "Y = 'two'\n"}])
    assert status == 200 and body["status"] == "Success", show(body)
    assert body["stdout"] == "one two\n", show(body)


POOL = '''
import multiprocessing as mp

def square(x):
    return x * x

if __name__ == "__main__":
    with mp.get_context("{method}").Pool(2) as pool:
        print(pool.map(square, range(6)))
'''


def test_spawn_pool_runs_a_function_defined_in_the_code(server):
    """Spawned workers re-run the main file as __mp_main__ to find `square`. Before: every
    worker failed with "AttributeError: Can't get attribute 'square' on <module '__main__'
    (built-in)>" and the run hung until its timeout (status Error, empty stdout)."""
    body = run_ok(server, POOL.format(method="spawn"))
    assert body["stdout"] == "[0, 1, 4, 9, 16, 25]\n", show(body)


def test_forkserver_pool_runs_a_function_defined_in_the_code(server):
    """The forkserver preloads the main file. Before: as for spawn, "Can't get attribute
    'square'" in every worker and a Timeout."""
    body = run_ok(server, POOL.format(method="forkserver"))
    assert body["stdout"] == "[0, 1, 4, 9, 16, 25]\n", show(body)


def test_a_spawned_worker_that_cannot_find_its_function_fails_as_under_python3(server):
    """A function defined only under `if __name__ == "__main__"` does not exist in a worker that
    re-ran the file as __mp_main__: as under python3, ProcessPoolExecutor raises
    BrokenProcessPool in the program and the worker's traceback names the file. (A
    multiprocessing.Pool hangs in that case under python3 too, printing the worker's traceback
    at each retry.) Before: the worker never ran the file: "Can't get attribute 'f' on <module
    '__main__' (built-in)>"."""
    body = run_ok(server, code('''
        import concurrent.futures as cf
        import multiprocessing as mp
        if __name__ == "__main__":
            def f(x):
                return x
            try:
                with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as ex:
                    list(ex.map(f, range(2)))
            except cf.process.BrokenProcessPool:
                print("broken")
    '''))
    assert body["stdout"].endswith("broken\n"), show(body)
    assert f"Can't get attribute 'f' on <module '__mp_main__' from '{SCRIPT}'>" in body["stderr"], show(body)


def test_tracebacks_show_the_script_path_and_the_users_lines(server):
    """The file name python3 would show, the user's lines, none of the runner's frames, also
    for a function called from the last expression and for a syntax error. Before: the file
    was shown as "<code>"."""
    body = run_error(server, code('''
        def boom():
            raise RuntimeError("x")

        print("before")
        boom()
    '''))
    tb = body["error"]["traceback"]
    assert re.findall(r'^  File "([^"]*)", line (\d+)', tb, re.M) == [(SCRIPT, "5"), (SCRIPT, "2")], show(tb)
    assert "    boom()\n" in tb and '    raise RuntimeError("x")\n' in tb, show(tb)
    for word in ("snakebox", "runner", "runpy", "<frozen", "zygote"):
        assert word not in tb.lower(), show(tb)

    body = run_error(server, "x = 1\nboom(\n")
    assert body["error"]["type"] == "SyntaxError", show(body)
    assert f'  File "{SCRIPT}", line 2\n' in body["error"]["traceback"], show(body)

    status, body = run(server, "import os\nos.path.basename(__file__)\n")
    assert status == 200 and body["status"] == "Success", show(body)
    assert body["result"] == {"text/plain": "'main.py'"}, show(body)


def test_the_run_can_read_its_source_with_inspect(server):
    """inspect.getsource and warnings read the user's lines. Before: the NameError on
    __file__, first; the warning was reported against "<code>"."""
    body = run_ok(server, code('''
        import inspect, warnings
        def twice(x):
            return 2 * x
        print(inspect.getsource(twice), end="")
        print(inspect.getsourcefile(twice) == __file__)
        warnings.warn("careful")
    '''))
    assert body["stdout"] == "def twice(x):\n    return 2 * x\nTrue\n", show(body)
    assert body["stderr"] == f'{SCRIPT}:6: UserWarning: careful\n  warnings.warn("careful")\n', show(body)
