"""The program's own failures: exceptions and their tracebacks, syntax errors, exit codes,
and running as __main__. All are HTTP 200 answers."""

import re

from conftest import code, run_error, run_ok, show

FRAME_RE = re.compile(r'^  File "([^"]*)", line (\d+)', re.M)


def frames(traceback):
    return [(name, int(line)) for name, line in FRAME_RE.findall(traceback)]


def assert_no_snakebox_frames(text):
    lowered = text.lower()
    for word in ("snakebox", "runpy", "<frozen", "/work/main", "zygote"):
        assert word not in lowered, f"{word!r} leaks into the traceback:\n{text}"


def test_exception_keeps_earlier_output_and_shows_the_users_line(server):
    body = run_error(server, code('''
        print("before")
        x = 1
        raise ValueError("boom")
    '''))
    out = body["output"]
    assert out.startswith("before\n"), show(out)
    assert body["stdout"] == "before\n"
    assert "Traceback (most recent call last):" in out
    assert out.rstrip("\n").endswith("ValueError: boom"), show(out)
    err = body["error"]
    assert err["type"] == "ValueError"
    assert err["message"] == "boom"
    tb = err["traceback"]
    assert tb.strip() in out
    found = frames(tb)
    assert len(found) == 1, f"expected exactly the user's frame:\n{tb}"
    name, line = found[0]
    assert line == 3
    assert name, show(tb)
    assert re.search(r'line 3, in <module>\n    raise ValueError\("boom"\)\n', tb), show(tb)
    assert_no_snakebox_frames(tb)
    assert_no_snakebox_frames(out)
    assert body["exit_code"] != 0


def test_nested_traceback_shows_every_user_frame(server):
    body = run_error(server, code('''
        def divide(x):
            return 1 / x

        divide(0)
    '''))
    tb = body["error"]["traceback"]
    assert body["error"]["type"] == "ZeroDivisionError"
    assert [line for _, line in frames(tb)] == [4, 2], show(tb)
    assert "    divide(0)\n" in tb
    assert "    return 1 / x\n" in tb
    assert "ZeroDivisionError: division by zero" in body["output"]
    assert_no_snakebox_frames(tb)


def test_library_frames_are_shown_but_not_snakebox_frames(server):
    body = run_error(server, 'import json\n\njson.loads("{")\n')
    tb = body["error"]["traceback"]
    assert body["error"]["type"] == "JSONDecodeError"
    found = frames(tb)
    assert found[0][1] == 3, show(tb)
    assert '    json.loads("{")\n' in tb
    assert len(found) >= 2, show(tb)
    assert_no_snakebox_frames(tb)


def test_syntax_error_runs_nothing_and_names_the_line(server):
    body = run_error(server, 'print("fine")\nx = (1,\n')
    assert "fine" not in body["stdout"]
    assert body["error"]["type"] == "SyntaxError"
    out = body["output"]
    assert "SyntaxError" in out
    assert "line 2" in out
    assert "x = (1," in out
    assert all(line == 2 for _, line in frames(out)), show(out)
    assert_no_snakebox_frames(out)


def test_name_error(server):
    body = run_error(server, "print(undefined_name)")
    assert body["error"]["type"] == "NameError"
    assert "undefined_name" in body["error"]["message"]
    assert "NameError: name 'undefined_name' is not defined" in body["output"]


def test_import_error(server):
    body = run_error(server, "import no_such_module_xyz")
    assert body["error"]["type"] == "ModuleNotFoundError"
    assert "No module named 'no_such_module_xyz'" in body["output"]


def test_sys_exit_zero_is_success(server):
    body = run_ok(server, 'import sys\nprint("bye")\nsys.exit(0)\nprint("not reached")')
    assert body["output"] == "bye\n"
    assert body["exit_code"] == 0
    assert body["error"] is None


def test_sys_exit_nonzero_is_error_with_its_code(server):
    body = run_error(server, 'import sys\nprint("partial")\nsys.exit(3)')
    assert body["exit_code"] == 3
    assert body["output"].startswith("partial\n")
    assert body["signal"] is None


def test_sys_exit_with_message(server):
    body = run_error(server, 'import sys\nsys.exit("fatal problem")')
    assert body["exit_code"] == 1
    assert "fatal problem" in body["output"]
    assert "fatal problem" in body["stderr"]


def test_code_runs_as_main(server):
    body = run_ok(server, code('''
        import pickle, sys

        class Point:
            def __init__(self, x):
                self.x = x

        if __name__ == "__main__":
            print("as main")
        print(sys.modules["__main__"].Point is Point)
        print(pickle.loads(pickle.dumps(Point(7))).x)
    '''))
    assert body["output"] == "as main\nTrue\n7\n"
