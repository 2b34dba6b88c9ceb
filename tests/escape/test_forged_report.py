"""Attack: forge the runner's report. User code can write frames to fd 3 (the run's SOCK_SEQPACKET
channel to the server, one send() = one frame) before the runner does, so what arrives as 'R'
pieces and the 'Z' end frame is the program's to choose. A report must cost the server a bounded,
small amount whatever its shape, its values must be checked before they reach an answer, and one
run must not stall the pool's thread for everyone else.

Against the old server (before the report was scanned and checked once): 3.5 MiB of
`{"images": [{}, {}, ...]}` took the server's peak RSS from ~40 MiB to ~600 MiB (it parsed the
report twice, jansson spending ~150 bytes per 3-byte "{},"), forged values were copied into the
answer ("Success" with a 3.5 MiB "result"), and a report with an out-of-range exit code plus a
junk frame every few ms was re-parsed on each one, so a concurrent hello took seconds."""

import threading
import time

from conftest import SANITIZED, assert_healthy, code, run, show

# Caps small enough that forged reports up to the cap are quick to send: the server's report
# cap is then ~11 MiB (report.c), the old one ~3.9 MiB; every forgery here is 3.5 MiB.
SMALL_CAPS = {
    "MAX_IMAGES": "1",
    "MAX_IMAGE_BYTES": "1048576",
    "MAX_RETURN_BYTES": "1048576",
    "MAX_RETURN_FILE_BYTES": "1048576",
    "MAX_RESULT_BYTES": "65536",
}
FORGED_BYTES = 3_500_000

# Peak RSS the server may gain over all the forged runs. Why 64 MiB: the server keeps the bytes
# received (3.5 MiB, at most 8 MiB with the buffer's doubling), the scan allocates nothing, and
# the one shape that reaches the parser (a single huge string) costs about twice its size once;
# all of that is far below 64 MiB, while the old server's first forgery alone cost > 500 MiB.
RSS_GROWTH_BOUND = 64 << 20

# The forger: the report pieces as the runner frames them ('R' + at most CHUNK bytes), a
# well-formed binary 'Z' (exit code 0, so the server answers at once), and the old one-byte 'Z'
# (ignored after the first by this server; the end frame of the old one).
FORGE = code('''
    import os, struct
    body = BODY
    for off in range(0, len(body), 60000):
        os.write(3, b"R" + body[off:off + 60000])
    os.write(3, b"Z" + struct.pack("<iQ", 0, 0))
    os.write(3, b"Z")
''')


def shapes():
    n = FORGED_BYTES
    return {
        "empty objects": 'b\'{"images": [\' + b"{}," * %d + b"{}]}"' % (n // 3),
        "empty arrays": 'b\'{"files": [\' + b"[]," * %d + b"[]]}"' % (n // 3),
        "deep arrays": 'b"[" * %d + b"]" * %d' % (n // 2, n // 2),
        "huge string": 'b\'{"result": {"text/plain": "\' + b"x" * %d + b\'"}}\'' % n,
        "many files": 'b\'{"files": [\' + b\'{"name": "a", "size": 0, "truncated": true},\' * %d + b"{}]}"'
                      % (n // 44),
        "many images": 'b\'{"images": [\' + b\'{"format": "png", "width": 1, "height": 1, "data": "AA=="},\''
                       ' * %d + b"{}]}"' % (n // 60),
        "numbers": 'b\'{"images_dropped": [\' + b"0," * %d + b"0]}"' % (n // 2),
    }


def vm(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def test_forged_reports_cost_little_and_are_named(start_server):
    server = start_server(env=SMALL_CAPS)
    assert_healthy(server)
    base = vm(server.pid, "VmHWM")
    for name, body in shapes().items():
        status, answer = run(server, FORGE.replace("BODY", body))
        assert server.alive(), f"the server died on the forged report {name!r}"
        grown = vm(server.pid, "VmHWM") - base
        # Under AddressSanitizer freed memory sits in quarantine and every allocation has
        # redzones: the RSS says nothing about the server's own costs there.
        if not SANITIZED:
            assert grown < RSS_GROWTH_BOUND, (
                f"after the forged report {name!r} the server's peak RSS grew by {grown >> 20} MiB "
                f"(bound {RSS_GROWTH_BOUND >> 20} MiB)")
        assert status == 200, show((name, status, answer))
        assert answer["status"] == "Error", show((name, answer))
        error = answer["error"] or {}
        assert error.get("type") == "MalformedReport", show((name, answer))
        assert "report is malformed" in error.get("message", ""), show((name, answer))
        assert answer["result"] is None and answer["images"] == [], show((name, answer))
    assert_healthy(server)


# The staller: a complete report (16 MiB, with an exit code no runner sends), the end frame, then
# a junk frame every 5 ms until the run's timeout. Each junk frame is an event on the pool's
# thread; a server that re-decides on the report at each event parses 16 MiB each time.
STALL = code('''
    import os, time
    body = b'{"exit_code": 999, "error": null, "pad": "' + b"x" * (16 << 20) + b'"}'
    for off in range(0, len(body), 60000):
        os.write(3, b"R" + body[off:off + 60000])
    os.write(3, b"Z")
    while True:
        os.write(3, b"X")
        time.sleep(0.005)
''')

# A hello takes a few ms of the server's time; 1 s is far beyond any healthy run on a loaded
# host, while the old server took seconds while the staller ran.
HELLO_BOUND_MS = 1000


def test_forged_report_does_not_stall_other_runs(start_server):
    server = start_server(env={"EXECUTION_TIMEOUT": "6", "MEMORY_LIMIT_MB": "256"})
    assert_healthy(server)
    attacker = {}

    def attack():
        attacker["answer"] = run(server, STALL)
        attacker["done"] = time.monotonic()

    t = threading.Thread(target=attack, daemon=True)
    t.start()
    time.sleep(2)  # sending 16 MiB in 60 KB frames takes well under a second
    assert t.is_alive(), show(attacker)
    durations = []
    for _ in range(3):
        status, answer = run(server, 'print("Hello, World!")', timeout=30)
        assert status == 200 and answer["status"] == "Success", show(answer)
        durations.append(answer["duration_ms"])
    # The hellos were answered while the attacker was still running, and promptly.
    assert t.is_alive(), f"the attacker finished before the hellos: {show(attacker)}"
    assert max(durations) < HELLO_BOUND_MS, f"hello durations during the attack: {durations} ms"
    t.join(30)
    status, answer = attacker["answer"]
    assert status == 200 and answer["error"]["type"] == "Timeout", show(answer)
    assert_healthy(server)
