"""Bad requests: a 4xx with {"status": "Error", "output": "<reason>"}, never a 5xx, never a run."""

import json

import pytest

from conftest import TEST_LIMITS, request, show

JSON = {"Content-Type": "application/json"}


def assert_error(reply, status):
    assert reply.status == status, show(reply)
    assert reply.json is not None, f"error body is not JSON: {reply!r}"
    assert reply.headers.get("content-type", "").lower().startswith("application/json"), show(reply)
    assert reply.json.get("status") == "Error", show(reply.json)
    output = reply.json.get("output")
    assert isinstance(output, str) and output.strip(), show(reply.json)
    return output


def post(server, body, headers=JSON):
    return request(server, "POST", "/api/execute", body=body, headers=headers)


@pytest.mark.parametrize("body", ['{"code": ', '{"code": "print(1)",}', "{code: 1}", "nonsense",
                                  '{"code": "x"} trailing'])
def test_invalid_json_names_the_position(server, body):
    output = assert_error(post(server, body), 400)
    lowered = output.lower()
    assert any(w in lowered for w in ("line", "position", "column", "offset")), show(output)


def test_body_that_is_not_utf8(server):
    assert_error(post(server, b'{"code": "print(\xff)"}'), 400)


def test_empty_body(server):
    assert_error(post(server, b""), 400)


@pytest.mark.parametrize("body", ['["print(1)"]', '"print(1)"', "42", "null", "true"])
def test_body_not_an_object(server, body):
    assert_error(post(server, body), 400)


@pytest.mark.parametrize("obj", [{}, {"code": ""}, {"code": 5}, {"code": None}, {"code": ["x"]},
                                 {"code": {"a": 1}}, {"code": True}])
def test_bad_code_field_is_named(server, obj):
    output = assert_error(post(server, json.dumps(obj)), 400)
    assert "code" in output, show(output)


def test_unknown_field_is_named(server):
    output = assert_error(post(server, json.dumps({"code": "print(1)", "bogus_field": 1})), 400)
    assert "bogus_field" in output, show(output)


def test_body_over_the_limit_is_413(server):
    limit = int(TEST_LIMITS["MAX_REQUEST_BYTES"])
    body = json.dumps({"code": "#" + "x" * (limit + 1000) + "\nprint(1)"})
    assert_error(post(server, body), 413)


def test_body_just_under_the_limit_runs(server):
    limit = int(TEST_LIMITS["MAX_REQUEST_BYTES"])
    body = json.dumps({"code": "#" + "x" * (limit - 1000) + "\nprint('big')"})
    assert len(body) < limit
    reply = post(server, body)
    assert reply.status == 200, show(reply)
    assert reply.json["status"] == "Success", show(reply.json)
    assert reply.json["output"] == "big\n"


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "application/jsonx", None])
def test_wrong_content_type_is_415(server, ctype):
    headers = {"Content-Type": ctype} if ctype else {}
    assert_error(post(server, json.dumps({"code": "print(1)"}), headers=headers), 415)


def test_json_content_type_with_charset_is_accepted(server):
    reply = post(server, json.dumps({"code": "print(1)"}),
                 headers={"Content-Type": "application/json; charset=utf-8"})
    assert reply.status == 200, show(reply)
    assert reply.json["output"] == "1\n"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_405_with_allow(server, method):
    body = json.dumps({"code": "print(1)"}) if method in ("PUT", "PATCH") else None
    reply = request(server, method, "/api/execute", body=body, headers=JSON)
    assert_error(reply, 405)
    assert "POST" in reply.headers.get("allow", "").upper(), show(reply.headers)


# GET / redirects to the playground page (tests/api/test_playground.py; 404 with PLAYGROUND=0).
@pytest.mark.parametrize("method,path", [("GET", "/index.html"), ("GET", "/nope"), ("POST", "/api/nope"),
                                         ("POST", "/api/execute/extra"), ("POST", "/api")])
def test_unknown_path_is_404(server, method, path):
    body = json.dumps({"code": "print(1)"}) if method == "POST" else None
    assert_error(request(server, method, path, body=body, headers=JSON), 404)


def test_nul_in_code_is_not_a_server_error(server):
    reply = post(server, json.dumps({"code": "print(1)\u0000"}))
    assert reply.status in (200, 400), show(reply)
    assert reply.json is not None and reply.json["status"] == "Error", show(reply)
