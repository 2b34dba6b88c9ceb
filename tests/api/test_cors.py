"""CORS (issue 5): off by default; CORS_ORIGINS is an allow-list of exact origins.

An allowed Origin is echoed in Access-Control-Allow-Origin with Vary: Origin; any other origin
gets no CORS header at all, and "*" is never sent. A preflight (OPTIONS) from an allowed origin is
204 with the methods and headers a browser needs; from any other origin it is not (405).
CORS_ORIGINS="*" is refused at start-up.
"""

import json

import pytest

from conftest import module_server, request, show

A = "https://a.example"
B = "http://b.example:8080"

CORS_HEADERS = ("access-control-allow-origin", "access-control-allow-methods",
                "access-control-allow-headers", "access-control-allow-credentials")


def execute(server, origin=None):
    headers = {"Content-Type": "application/json"}
    if origin is not None:
        headers["Origin"] = origin
    return request(server, "POST", "/api/execute", body=json.dumps({"code": "print(1)"}),
                   headers=headers, timeout=30)


def preflight(server, origin, path="/api/execute"):
    headers = {"Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "content-type, authorization"}
    if origin is not None:
        headers["Origin"] = origin
    return request(server, "OPTIONS", path, headers=headers, timeout=30)


def tokens(value):
    return {t.strip().lower() for t in (value or "").split(",") if t.strip()}


def assert_no_cors(r):
    for h in CORS_HEADERS:
        assert h not in r.headers, f"{h} sent where CORS must be off: {r!r}"


cors = module_server({"CORS_ORIGINS": f"{A},{B}"})


# --- off by default ------------------------------------------------------------------------------

@pytest.mark.parametrize("origin", [A, "https://evil.example", "null"])
def test_off_by_default(server, origin):
    r = execute(server, origin)
    assert r.status == 200, show(r)
    assert_no_cors(r)
    r = request(server, "GET", "/health", headers={"Origin": origin}, timeout=30)
    assert r.status == 200, show(r)
    assert_no_cors(r)


def test_preflight_is_refused_by_default(server):
    r = preflight(server, A)
    assert r.status != 204 and r.status == 405, show(r)
    assert_no_cors(r)


# --- an allow-list -------------------------------------------------------------------------------

@pytest.mark.parametrize("origin", [A, B])
def test_allowed_origin_is_echoed_with_vary(cors, origin):
    r = execute(cors, origin)
    assert r.status == 200 and r.json["stdout"] == "1\n", show(r)
    assert r.headers.get("access-control-allow-origin") == origin, show(r)
    assert "origin" in tokens(r.headers.get("vary")), show(r)


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/health", 200), ("GET", "/metrics", 200), ("GET", "/openapi.json", 200),
])
def test_allowed_origin_is_echoed_on_other_endpoints(cors, method, path, status):
    r = request(cors, method, path, headers={"Origin": A}, timeout=30)
    assert r.status == status, show(r)
    assert r.headers.get("access-control-allow-origin") == A, show(r)
    assert "origin" in tokens(r.headers.get("vary")), show(r)


@pytest.mark.parametrize("origin", [
    "https://c.example",
    "http://a.example",               # another scheme
    "https://a.example:443",          # not byte-for-byte the listed origin
    "https://a.example.evil.com",     # the listed one as a prefix
    "https://evil.com/https://a.example",
    "https://xa.example",
    "http://b.example",               # the listed one without its port
    "http://b.example:808",           # a prefix of it
    "https://A.EXAMPLE",
    "null",
    "*",
    "",
    f"{A}, {B}",                      # both at once is not one of them
])
def test_other_origins_get_no_cors_headers(cors, origin):
    r = execute(cors, origin)
    assert r.status == 200, show(r)
    assert_no_cors(r)


def test_no_origin_no_cors_headers(cors):
    r = execute(cors, None)
    assert r.status == 200, show(r)
    assert_no_cors(r)


def test_never_a_wildcard(cors):
    for origin in (A, B, "https://c.example", None):
        r = execute(cors, origin)
        assert r.headers.get("access-control-allow-origin") != "*", show(r)
        r = preflight(cors, origin)
        assert r.headers.get("access-control-allow-origin") != "*", show(r)


@pytest.mark.parametrize("origin", [A, B])
def test_preflight_from_an_allowed_origin(cors, origin):
    r = preflight(cors, origin)
    assert r.status == 204, show(r)
    assert r.body == b"", show(r)
    assert r.headers.get("access-control-allow-origin") == origin, show(r)
    assert "post" in tokens(r.headers.get("access-control-allow-methods")), show(r)
    allowed = tokens(r.headers.get("access-control-allow-headers"))
    assert {"content-type", "authorization"} <= allowed, show(r)
    assert "origin" in tokens(r.headers.get("vary")), show(r)


@pytest.mark.parametrize("origin", ["https://c.example", "http://a.example", "https://a.example.evil.com", None])
def test_preflight_from_another_origin_is_refused(cors, origin):
    r = preflight(cors, origin)
    assert r.status != 204 and r.status == 405, show(r)
    assert_no_cors(r)


def test_errors_from_an_allowed_origin_carry_cors_headers(cors):
    """A browser can only read a 400's reason if the answer carries the CORS headers too."""
    r = request(cors, "POST", "/api/execute", body=b'{"code": 1}',
                headers={"Content-Type": "application/json", "Origin": A}, timeout=30)
    assert r.status == 400, show(r)
    assert r.headers.get("access-control-allow-origin") == A, show(r)


# --- start-up ------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["*", f"{A},*", f"{A}, *"])
def test_wildcard_is_refused_at_start_up(start_server, value):
    s = start_server({"CORS_ORIGINS": value}, wait=False)
    status = s.wait_exit(timeout=60)
    assert status is not None, "the server started with CORS_ORIGINS=" + value
    assert status != 0, show(s.stderr())
    assert "CORS_ORIGINS" in s.stderr(), show(s.stderr())
    assert "listening on" not in s.stderr(), show(s.stderr())


def test_preflight_allows_the_session_files_methods(cors):
    """A browser app on an allowed origin may PUT and DELETE a session's files. Failed before:
    the preflight allowed only POST, GET and OPTIONS."""
    r = request(cors, "OPTIONS", "/api/sessions/0-00000000-x/files/a.csv",
                headers={"Origin": A, "Access-Control-Request-Method": "PUT"}, timeout=30)
    assert r.status == 204, show(r)
    assert {"put", "delete"} <= tokens(r.headers.get("access-control-allow-methods")), show(r)
