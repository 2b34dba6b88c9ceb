"""Configuration: environment and `.env`, strict values, start-up errors that name the key."""

import pytest

from conftest import START_TIMEOUT, run, show


def assert_refuses_to_start(srv, *words):
    status = srv.wait_exit(START_TIMEOUT)
    assert status is not None, "the server kept running with an invalid configuration"
    assert status != 0, "the server exited with status 0 on an invalid configuration"
    messages = srv.stderr() + srv.stdout()
    assert "listening on" not in messages, show(messages)
    for word in words:
        assert word in messages, f"start-up error does not name {word!r}:\n{messages}"


@pytest.mark.parametrize("key,value", [
    ("EXECUTION_TIMEOUT", "abc"),
    ("EXECUTION_TIMEOUT", "-1"),
    ("EXECUTION_TIMEOUT", "10s"),
    ("EXECUTION_TIMEOUT", "99999999999999999999999"),
    ("MEMORY_LIMIT_MB", "lots"),
    ("MEMORY_LIMIT_MB", "1.5"),
    ("PORT", "70000"),
    ("MAX_PROCESSES", "many"),
    ("MAX_OUTPUT_BYTES", "1e6"),
    ("QUEUE_SIZE", "-5"),
])
def test_invalid_environment_value_stops_start_up(start_server, key, value):
    srv = start_server({key: value}, wait=False)
    assert_refuses_to_start(srv, key, value)


def test_invalid_dotenv_value_stops_start_up(start_server):
    srv = start_server(dotenv="EXECUTION_TIMEOUT=soon\n", limits=False, wait=False)
    assert_refuses_to_start(srv, "EXECUTION_TIMEOUT", "soon")


def test_unknown_dotenv_key_stops_start_up(start_server):
    srv = start_server(dotenv="NOT_A_SNAKEBOX_KEY=1\n", wait=False)
    assert_refuses_to_start(srv, "NOT_A_SNAKEBOX_KEY")


def test_library_that_cannot_be_imported_stops_start_up(start_server):
    srv = start_server({"PREINSTALL_LIBS": "numpy no-such-library-xyz"}, wait=False)
    status = srv.wait_exit(START_TIMEOUT)
    assert status is not None and status != 0, "the server started without a library it must preload"
    messages = srv.stderr() + srv.stdout()
    assert "no-such-library-xyz" in messages or "no_such_library_xyz" in messages, show(messages)


def test_dotenv_is_read_and_the_environment_wins(start_server):
    srv = start_server(
        {"EXECUTION_TIMEOUT": None, "MAX_OUTPUT_BYTES": "2048"},
        dotenv='# comment\nEXECUTION_TIMEOUT=2\nMAX_OUTPUT_BYTES=1024\n'
               'PREINSTALL_LIBS="pandas numpy matplotlib scikit-learn"\n')
    status, body = run(srv, "while True:\n    pass\n", timeout=30)
    assert status == 200 and body["status"] == "Error", show(body)
    assert "Timeout Error: Code execution exceeded 2 seconds" in body["output"], show(body)
    status, body = run(srv, "print('x' * 10000)", timeout=30)
    assert status == 200 and body["status"] == "Error", show(body)
    assert body["truncated"] is True, show(body)
    kept = len(body["stdout"].encode())
    assert 1024 < kept <= 2048, f"kept {kept} bytes of output with MAX_OUTPUT_BYTES=2048 in the environment"
