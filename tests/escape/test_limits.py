"""Attacks on resources: memory bombs, output floods, endless loops. Each must end in an Error
answer that names the limit, within bounded time, with the server still healthy. A naive server
gives the first ones the memory and the output they ask for."""

import pytest

from conftest import TEST_LIMITS, assert_healthy, code, run_error, show

MEMORY_LIMIT = int(TEST_LIMITS["MEMORY_LIMIT_MB"]) << 20
OUTPUT_LIMIT = int(TEST_LIMITS["MAX_OUTPUT_BYTES"])
TIMEOUT = TEST_LIMITS["EXECUTION_TIMEOUT"]


@pytest.mark.parametrize("src", [
    # One block four times the limit, every page touched. Each is held a moment before it says
    # so: without a memory cgroup the limit is enforced by sampling every 100 ms.
    "import time\nblock = bytearray(1 << 30)\ntime.sleep(0.5)\nprint('allocated', len(block))\n",
    # Growth in 10 MiB steps, bounded at 1 GiB.
    code('''
        import time
        chunks = []
        for i in range(100):
            chunks.append(b"x" * (10 << 20))
        time.sleep(0.5)
        print("allocated", len(chunks) * 10, "MiB")
    '''),
], ids=["one-block", "growing"])
def test_memory_bomb_hits_the_memory_limit(server, src):
    assert MEMORY_LIMIT < 1 << 30
    body = run_error(server, src)
    assert "allocated" not in body["stdout"], show(body)
    assert body["error"]["type"] in ("MemoryLimit", "MemoryError"), show(body["error"])
    assert "memory" in body["output"].lower(), show(body["output"][-2000:])
    assert_healthy(server)


@pytest.mark.parametrize("src", [
    "while True:\n    print('flood ' * 16)\n",
    "import sys\nwhile True:\n    sys.stderr.write('flood ' * 16 + '\\n')\n",
    "import os\nos.write(1, b'x' * (16 << 20))\nwhile True:\n    pass\n",
], ids=["print-loop", "stderr-loop", "one-big-write"])
def test_output_flood_is_cut_at_the_output_limit(server, src):
    body = run_error(server, src)
    assert body["truncated"] is True, show(body["error"])
    assert body["error"]["type"] == "OutputLimit", show(body["error"])
    assert "output" in body["error"]["message"].lower() or "output" in body["output"][-300:].lower()
    assert len(body["stdout"].encode()) + len(body["stderr"].encode()) <= OUTPUT_LIMIT
    assert len(body["output"].encode()) <= OUTPUT_LIMIT + 1024, len(body["output"].encode())
    assert len(body["output"]) > OUTPUT_LIMIT // 2, "the output up to the limit is kept"
    assert_healthy(server)


def test_endless_loop_times_out(server):
    body = run_error(server, "while True:\n    pass\n")
    assert body["error"]["type"] == "Timeout", show(body["error"])
    assert f"Timeout Error: Code execution exceeded {TIMEOUT} seconds" in body["output"]
    assert body["signal"] in (None, "SIGKILL"), show(body)
    assert_healthy(server)


def test_sleeping_run_times_out_and_keeps_its_output(server):
    body = run_error(server, "import time\nprint('started', flush=True)\ntime.sleep(3600)\n")
    assert body["output"].startswith("started\n"), show(body["output"])
    assert body["error"]["type"] == "Timeout", show(body["error"])
    assert f"Timeout Error: Code execution exceeded {TIMEOUT} seconds" in body["output"]
    assert_healthy(server)
