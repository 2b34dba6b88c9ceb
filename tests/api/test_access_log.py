"""Access log and request ids (issue 5).

One line per request on stderr. Text by default: "access", "id=<request id>", the method, the
path, the HTTP code, "outcome=<outcome>" ("-" when nothing ran), "<N>ms", "in=<bytes> out=<bytes>".
LOG_FORMAT=json: one JSON object per line after "snakebox: " with time, request_id, method, path,
status, outcome, duration_ms, bytes_in, bytes_out. The code and what it printed are never logged.

X-Request-Id: the client's when it is a token of [A-Za-z0-9._:-] of at most 64 characters, else a
generated one; returned on every response.
"""

import json
import re
import secrets
import time

import pytest

from conftest import request, show

ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")


def new_id(prefix="req"):
    return f"{prefix}-{secrets.token_hex(8)}"


def execute(server, obj, rid=None, timeout=30):
    body = json.dumps(obj).encode()
    headers = {"Content-Type": "application/json"}
    if rid is not None:
        headers["X-Request-Id"] = rid
    r = request(server, "POST", "/api/execute", body=body, headers=headers, timeout=timeout)
    return body, r


def log_lines_with(server, needle, timeout=5):
    """The stderr lines containing needle, waiting until there is at least one (the access line
    is written when the request completes, just after the answer is sent)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [l for l in server.stderr().splitlines() if needle in l]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def text_line(server, rid):
    lines = log_lines_with(server, f"id={rid}")
    assert len(lines) == 1, f"expected one access line with id={rid}, got {lines}\n" + server.stderr()[-3000:]
    line = lines[0]
    assert "access" in line, line
    return line


def assert_text_fields(line, rid, method, path, status, outcome, bytes_in=None, bytes_out=None):
    tokens = line.split()
    assert f"id={rid}" in tokens, line
    assert method in tokens, line
    assert path in tokens, line
    assert str(status) in tokens, line
    assert f"outcome={outcome}" in tokens, line
    assert any(re.fullmatch(r"\d+ms", t) for t in tokens), f"no duration <N>ms: {line}"
    m = re.search(r"\bin=(\d+) out=(\d+)\b", line)
    assert m, f"no in=<bytes> out=<bytes>: {line}"
    if bytes_in is not None:
        assert int(m.group(1)) == bytes_in, f"in= should be {bytes_in}: {line}"
    if bytes_out is not None:
        assert int(m.group(2)) == bytes_out, f"out= should be {bytes_out}: {line}"


# --- text format (the shared server) -------------------------------------------------------------

def test_a_run_is_logged_once_with_every_field(server):
    rid = new_id()
    body, r = execute(server, {"code": 'print("hi")'}, rid)
    assert r.status == 200 and r.json["status"] == "Success", show(r)
    line = text_line(server, rid)
    assert_text_fields(line, rid, "POST", "/api/execute", 200, "success", len(body), len(r.body))


@pytest.mark.parametrize("src,outcome", [
    ('raise ValueError("x")', "error"),
    ("import sys\nsys.exit(3)", "error"),
])
def test_a_failed_run_is_logged_as_error(server, src, outcome):
    rid = new_id()
    body, r = execute(server, {"code": src}, rid)
    assert r.status == 200 and r.json["status"] == "Error", show(r)
    assert_text_fields(text_line(server, rid), rid, "POST", "/api/execute", 200, outcome, len(body), len(r.body))


def test_a_timeout_is_logged_as_timeout(server):
    rid = new_id()
    body, r = execute(server, {"code": "import time\ntime.sleep(10)", "timeout": 1}, rid)
    assert r.status == 200 and r.json["error"]["type"] == "Timeout", show(r)
    line = text_line(server, rid)
    assert_text_fields(line, rid, "POST", "/api/execute", 200, "timeout", len(body), len(r.body))
    ms = int(next(t for t in line.split() if re.fullmatch(r"\d+ms", t))[:-2])
    assert ms >= 900, f"a 1 s timeout run logged {ms} ms: {line}"


@pytest.mark.parametrize("method,path,body,status", [
    ("GET", "/health", None, 200),
    ("GET", "/metrics", None, 200),
    ("GET", "/openapi.json", None, 200),
    ("GET", "/nowhere", None, 404),
    ("GET", "/api/execute", None, 405),
    ("POST", "/api/execute", b'{"code": 1}', 400),
])
def test_requests_without_a_run_are_logged_with_outcome_dash(server, method, path, body, status):
    rid = new_id()
    headers = {"X-Request-Id": rid}
    if body is not None:
        headers["Content-Type"] = "application/json"
    r = request(server, method, path, body=body, headers=headers, timeout=30)
    assert r.status == status, show(r)
    assert_text_fields(text_line(server, rid), rid, method, path, status, "-",
                       len(body) if body else 0, len(r.body))


def test_code_and_output_are_never_logged(server):
    code_marker = "CODEMARK" + secrets.token_hex(8)
    out_a, out_b = "OUTMARK", secrets.token_hex(8)
    err_a, err_b = "ERRMARK", secrets.token_hex(8)
    src = (f"# {code_marker}\n"
           f"import sys\n"
           f"print({out_a!r} + {out_b!r})\n"
           f"print({err_a!r} + {err_b!r}, file=sys.stderr)\n")
    rid1 = new_id()
    _, r = execute(server, {"code": src}, rid1)
    assert r.status == 200 and (out_a + out_b) in r.json["stdout"], show(r)
    rid2 = new_id()
    _, r = execute(server, {"code": src + f"raise RuntimeError({err_a!r} + {err_b!r} + 'tb')\n"}, rid2)
    assert r.status == 200 and r.json["error"]["traceback"], show(r)
    rid3 = new_id()
    _, r = execute(server, {"code": f"{code_marker} = (", "timeout": 1}, rid3)  # a SyntaxError
    assert r.status == 200 and r.json["status"] == "Error", show(r)
    rid4 = new_id()
    _, r = execute(server, {"code": src, "bogus": code_marker}, rid4)  # a 400
    assert r.status == 400, show(r)
    for rid in (rid1, rid2, rid3, rid4):
        text_line(server, rid)  # each was logged, so the stderr checked below is complete
    err = server.stderr()
    for marker in (code_marker, out_a + out_b, err_a + err_b, out_b, err_b):
        assert marker not in err, f"{marker!r} (from the code or its output) is in the server's stderr"


# --- request ids ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method,path,body,status", [
    ("POST", "/api/execute", b'{"code": "print(1)"}', 200),
    ("POST", "/api/execute", b'{"code": 1}', 400),
    ("POST", "/api/execute", b'{nope', 400),
    ("GET", "/nowhere", None, 404),
    ("PUT", "/api/execute", None, 405),
    ("GET", "/health", None, 200),
    ("HEAD", "/health", None, 200),
    ("GET", "/metrics", None, 200),
    ("GET", "/openapi.json", None, 200),
])
def test_request_id_round_trips_on_every_response(server, method, path, body, status):
    rid = new_id("rt")
    headers = {"X-Request-Id": rid}
    if body is not None:
        headers["Content-Type"] = "application/json"
    r = request(server, method, path, body=body, headers=headers, timeout=30)
    assert r.status == status, show(r)
    assert r.headers.get("x-request-id") == rid, show(r)


@pytest.mark.parametrize("rid", [
    "a", "0123456789" * 6 + "abcd", "A.b_c:d-e", "550e8400-e29b-41d4-a716-446655440000",
])
def test_every_allowed_request_id_is_kept(server, rid):
    _, r = execute(server, {"code": "pass"}, rid)
    assert r.status == 200, show(r)
    assert r.headers.get("x-request-id") == rid, show(r)


@pytest.mark.parametrize("rid", [
    "0123456789" * 6 + "abcde",      # 65 characters
    "has space", "a/b", "a;b", "<script>", "a\"b", "caf\u00e9", "x=1", "a,b", "tab\there",
])
def test_an_unacceptable_request_id_is_replaced(server, rid):
    headers = {"Content-Type": "application/json", "X-Request-Id": rid.encode("latin-1")}
    r = request(server, "POST", "/api/execute", body=b'{"code": "pass"}', headers=headers, timeout=30)
    assert r.status == 200, show(r)
    got = r.headers.get("x-request-id")
    assert got and got != rid and ID_RE.match(got), show(r)
    line = text_line(server, got)
    assert rid not in line, line


@pytest.mark.parametrize("given", [None, "bad id"])
def test_generated_ids_are_non_empty_and_unique(server, given):
    ids = set()
    for _ in range(5):
        headers = {} if given is None else {"X-Request-Id": given}
        r = request(server, "GET", "/health", headers=headers, timeout=30)
        assert r.status == 200, show(r)
        got = r.headers.get("x-request-id")
        assert got and ID_RE.match(got), show(r)
        ids.add(got)
    assert len(ids) == 5, f"generated ids repeat: {ids}"


def test_generated_id_is_the_one_logged(server):
    body, r = execute(server, {"code": "print(2)"})
    rid = r.headers.get("x-request-id")
    assert rid, show(r)
    assert_text_fields(text_line(server, rid), rid, "POST", "/api/execute", 200, "success", len(body), len(r.body))


# --- JSON lines ----------------------------------------------------------------------------------

JSON_KEYS = {"time", "request_id", "method", "path", "status", "outcome", "duration_ms", "bytes_in",
             "bytes_out"}


def json_records(server):
    out = []
    for line in server.stderr().splitlines():
        if not line.startswith("snakebox: {"):
            continue
        try:
            out.append(json.loads(line[len("snakebox: "):]))
        except ValueError:
            pytest.fail(f"an access line is not valid JSON: {line!r}")
    return out


def json_record(server, rid, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        found = [o for o in json_records(server) if o.get("request_id") == rid]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(found) == 1, f"expected one JSON access line for {rid}, got {found}\n" + server.stderr()[-3000:]
    o = found[0]
    assert set(o) == JSON_KEYS, show(o)
    return o


def test_json_log_format(start_server):
    s = start_server({"LOG_FORMAT": "json"})
    marker = "JSONMARK" + secrets.token_hex(8)
    cases = [
        ({"code": f"# {marker}\nprint('a' + {marker[4:]!r})"}, 200, "success"),
        ({"code": f"raise KeyError({marker[4:]!r})"}, 200, "error"),
        ({"code": "import time\ntime.sleep(10)", "timeout": 1}, 200, "timeout"),
        ({"code": 1}, 400, "-"),
    ]
    for obj, status, outcome in cases:
        rid = new_id("js")
        body, r = execute(s, obj, rid)
        assert r.status == status, show(r)
        o = json_record(s, rid)
        assert o["method"] == "POST" and o["path"] == "/api/execute", show(o)
        assert o["status"] == status and o["outcome"] == outcome, show(o)
        assert o["bytes_in"] == len(body) and o["bytes_out"] == len(r.body), show(o)
        for k in ("duration_ms", "bytes_in", "bytes_out", "status"):
            assert isinstance(o[k], int) and not isinstance(o[k], bool) and o[k] >= 0, show(o)
        assert isinstance(o["time"], str) and re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", o["time"]), show(o)
        if outcome == "timeout":
            assert o["duration_ms"] >= 900, show(o)

    rid = new_id("js")
    r = request(s, "GET", "/health", headers={"X-Request-Id": rid}, timeout=30)
    assert r.status == 200
    o = json_record(s, rid)
    assert (o["method"], o["path"], o["status"], o["outcome"]) == ("GET", "/health", 200, "-"), show(o)
    assert o["bytes_in"] == 0 and o["bytes_out"] == len(r.body), show(o)

    # Unacceptable id: a generated one is logged and returned.
    r = request(s, "GET", "/nowhere", headers={"X-Request-Id": "no good"}, timeout=30)
    assert r.status == 404
    o = json_record(s, r.headers["x-request-id"])
    assert o["status"] == 404 and o["path"] == "/nowhere", show(o)

    err = s.stderr()
    assert marker not in err and marker[4:] not in err, "the code or its output is in the log"
    # Every access line is JSON: no text-format access line slipped through.
    assert not [l for l in err.splitlines() if re.search(r"\baccess\b.*\bid=", l)], err[-3000:]
