"""The shape of a 200 answer: content type, the fields, the streams and their order, UTF-8."""

import json
import numbers
import os

from conftest import code, new_token, post_json, run, run_ok, show

FIELDS = {"status", "output", "stdout", "stderr", "exit_code", "signal", "error", "truncated",
          "duration_ms", "duration_us", "cpu_ms", "memory_peak_bytes"}


def is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def test_content_type_and_every_field(server):
    r = post_json(server, {"code": "print(1)"})
    assert r.status == 200
    ctype = r.headers.get("content-type", "").replace(" ", "").lower()
    assert ctype == "application/json;charset=utf-8", show(r.headers)
    body = json.loads(r.body.decode("utf-8"))
    assert FIELDS <= set(body), FIELDS - set(body)
    assert isinstance(body["output"], str)
    assert isinstance(body["stdout"], str)
    assert isinstance(body["stderr"], str)
    assert isinstance(body["truncated"], bool)
    for key in ("duration_ms", "cpu_ms", "memory_peak_bytes"):
        assert is_number(body[key]) and body[key] >= 0, (key, body[key])
    # The same duration, finer (a session cell takes well under a millisecond).
    assert isinstance(body["duration_us"], int) and body["duration_us"] // 1000 == body["duration_ms"], body


def test_stdout_and_stderr_are_separate_and_merged_in_write_order(server):
    body = run_ok(server, code('''
        import sys
        print("one")
        print("two", file=sys.stderr)
        print("three")
        sys.stderr.write("four\\n")
        print("five")
    '''))
    assert body["stdout"] == "one\nthree\nfive\n"
    assert body["stderr"] == "two\nfour\n"
    assert body["output"] == "one\ntwo\nthree\nfour\nfive\n"


def test_output_without_trailing_newline_is_kept(server):
    body = run_ok(server, 'import sys\nsys.stdout.write("no newline")')
    assert body["output"] == "no newline"


def test_unicode_output_round_trips(server):
    text = "héllo ✓ 日本語 🐍"
    body = run_ok(server, f"print({text!r})")
    assert body["output"] == text + "\n"
    assert body["stdout"] == text + "\n"


def test_invalid_utf8_output_becomes_replacement_characters(server):
    r = post_json(server, {"code": 'import os\nos.write(1, b"a\\xff\\xfeb\\n")\nos.write(2, b"\\xc3\\n")'})
    assert r.status == 200
    body = json.loads(r.body.decode("utf-8"))  # strict: the JSON itself is valid UTF-8
    assert body["status"] == "Success", show(body)
    assert body["stdout"].startswith("a") and body["stdout"].rstrip("\n").endswith("b")
    assert "\ufffd" in body["stdout"]
    assert "\ufffd" in body["stderr"]
    assert "\ufffd" in body["output"]


def test_large_output_under_the_limit_is_complete(server):
    body = run_ok(server, 'for i in range(2000):\n    print("%05d" % i + "x" * 20)')
    lines = body["output"].splitlines()
    assert len(lines) == 2000
    assert lines[0] == "00000" + "x" * 20 and lines[-1] == "01999" + "x" * 20
    assert body["truncated"] is False


def test_metrics_measure_the_run(server):
    body = run_ok(server, code('''
        import time
        block = bytearray(64 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        end = time.process_time() + 0.4
        while time.process_time() < end:
            pass
        time.sleep(0.3)
        print("done")
    '''))
    assert body["output"] == "done\n"
    assert body["duration_ms"] >= 600, show(body)
    assert body["cpu_ms"] >= 300, show(body)
    assert body["memory_peak_bytes"] >= 64 * 1024 * 1024, show(body)


def test_cwd_is_writable_scratch(server):
    name = new_token()
    try:
        body = run_ok(server, code(f'''
            import os
            with open("{name}", "w") as f:
                f.write("kept")
            with open(os.path.join(os.getcwd(), "{name}")) as f:
                print(f.read())
            with open("/tmp/{name}", "w") as f:
                f.write("tmp")
            print(open("/tmp/{name}").read())
        '''))
        assert body["output"] == "kept\ntmp\n"
    finally:
        if os.path.exists(f"/tmp/{name}"):
            os.unlink(f"/tmp/{name}")  # only a server without a private /tmp leaves it


def test_code_with_unicode_source(server):
    status, body = run(server, 'nom = "café"\nprint(nom.upper())')
    assert status == 200
    assert body["output"] == "CAFÉ\n"
