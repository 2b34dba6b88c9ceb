"""runner.py outside the zygote, with /usr/bin/python3: its list of the private CPython and
matplotlib APIs it relies on (PRIVATE_APIS) and the check the zygote runs once at start-up
(check_private_apis; a message from it fails the start-up, zygote.c python_start), and the
protocol constants zygote.c sets before its code runs (from proto.h).

No server: the zygote's path is the same function, called after the imports. Failed on the old
code: runner.py had no PRIVATE_APIS nor check_private_apis (AttributeError), and did not
refuse to load without the constants (it defined its own)."""

import importlib
import re
import struct
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "src" / "runner.py"
PROTO = ROOT / "src" / "proto.h"


def proto_constants():
    """What zygote.c runner_set_globals sets, read from proto.h's text."""
    text = PROTO.read_text()

    def define(name):
        m = re.search(r"#define %s (\S+)" % name, text)
        assert m, name
        return m.group(1)

    def tag(name):
        m = re.search(r"%s = '(.)'" % name, text)
        assert m, name
        return m.group(1).encode()

    env = re.search(r"#define SANDBOX_ENV(.*?)\n\n", text, re.S).group(1)
    return {
        "FRAME": {"ready": tag("FRAME_READY"), "stdout": tag("FRAME_STDOUT"),
                  "stderr": tag("FRAME_STDERR"), "report": tag("FRAME_REPORT"),
                  "report_end": tag("FRAME_REPORT_END"), "image": tag("FRAME_IMAGE"),
                  "image_more": tag("FRAME_IMAGE_MORE"),
                  "request": define("FRAME_REQUEST").strip("'").encode()},
        "CHUNK": int(define("FRAME_CHUNK")),
        "REQUEST_MAX": int(define("FRAME_REQUEST_HEADER")) + int(define("FRAME_CHUNK")),
        "END_FORMAT": define("FRAME_END_FORMAT").strip('"'),
        "END_SIZE": int(define("FRAME_END_SIZE")),
        "IMAGE_FORMAT": define("FRAME_IMAGE_FORMAT").strip('"'),
        "IMAGE_HEADER": int(define("FRAME_IMAGE_HEADER")),
        "SOCK": int(define("SANDBOX_SOCK_FD")),
        "ENV": dict(kv.split("=", 1) for kv in re.findall(r'"([^"]*)"', env)),
        "RUNNER_FILE": "<snakebox-runner>",
    }


def load_runner(constants):
    mod = types.ModuleType("_snakebox_runner_test")
    mod.__dict__.update(constants)
    exec(compile(RUNNER.read_text(), str(RUNNER), "exec"), mod.__dict__)
    return mod


def test_check_passes_on_this_python():
    # What the zygote has imported when it checks.
    for name in ("atexit", "threading", "matplotlib.pyplot"):
        importlib.import_module(name)
    runner = load_runner(proto_constants())
    assert runner.check_private_apis() is None
    assert ("atexit", "_clear") in runner.PRIVATE_APIS
    assert ("threading", "_shutdown") in runner.PRIVATE_APIS
    assert any(mod == "matplotlib.pyplot" for mod, _ in runner.PRIVATE_APIS)
    # The Python the list was checked against (Debian 12's).
    assert runner.PRIVATE_APIS_CHECKED["python"] == "%d.%d" % sys.version_info[:2]


@pytest.mark.parametrize("index", range(6))
def test_check_names_the_missing_api(index):
    runner = load_runner(proto_constants())
    assert len(runner.PRIVATE_APIS) == 6
    mod, path = runner.PRIVATE_APIS[index]
    # A fake of every listed module with every listed attribute path, but this one.
    fakes = {}
    for m, p in runner.PRIVATE_APIS:
        obj = fakes.setdefault(m, types.SimpleNamespace())
        parts = p.split(".")
        for part in parts[:-1]:
            if not hasattr(obj, part):
                setattr(obj, part, types.SimpleNamespace())
            obj = getattr(obj, part)
        if (m, p) != (mod, path):
            setattr(obj, parts[-1], lambda: None)
    assert runner.check_private_apis(fakes) is not None
    message = runner.check_private_apis(fakes)
    assert "%s.%s" % (mod, path) in message
    assert "PRIVATE_APIS" in message


def test_module_not_loaded_is_not_checked():
    runner = load_runner(proto_constants())
    # The lean zygote has no matplotlib: nothing of it is used, nothing is checked.
    assert runner.check_private_apis({}) is None


def test_runner_refuses_to_load_without_the_constants():
    constants = proto_constants()
    del constants["CHUNK"], constants["SOCK"]
    with pytest.raises(RuntimeError, match="CHUNK, SOCK not set"):
        load_runner(constants)


def test_runner_refuses_an_end_format_not_matching_end_size():
    constants = proto_constants()
    constants["END_SIZE"] = struct.calcsize(constants["END_FORMAT"])  # one short of the tag
    with pytest.raises(RuntimeError, match="END_FORMAT"):
        load_runner(constants)


def test_runner_refuses_an_image_format_not_matching_image_header():
    constants = proto_constants()
    constants["IMAGE_HEADER"] += 1
    with pytest.raises(RuntimeError, match="IMAGE_FORMAT"):
        load_runner(constants)


def test_runner_uses_the_constants():
    runner = load_runner(proto_constants())
    assert runner.CHUNK == 65536
    assert runner.ENV["HOME"] == "/work" and runner.ENV["USER"] == "sandbox"
    assert runner.SOCK == 3
