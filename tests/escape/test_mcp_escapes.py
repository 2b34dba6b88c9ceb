"""The attacks of /api/execute, sent through MCP (issue 15): a tool call runs the same job as the
REST endpoint, and must be sealed the same way, in a stateless run and in a session's cell. A
naive MCP server (a subprocess per call, as the stdio sandbox servers run one) lets each of them
through.

Before this branch (main at 0f66fd8) there was no /mcp: each test failed on the 404 of the
path (the status assertion in mcp_call). They cannot fail on the sealing itself unless the
MCP path bypasses it, which is what they guard."""

import json

from conftest import code, request


def mcp_call(server, args, name="run_python"):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": args}}
    r = request(server, "POST", "/mcp", body=json.dumps(body),
                headers={"Content-Type": "application/json", "MCP-Protocol-Version": "2025-06-18"})
    assert r.status == 200, r
    return r.json["result"]


def text_of(result):
    return "".join(c.get("text", "") for c in result["content"])


ATTACK = code('''
    import os, socket
    found = []
    for path in ["/proc/1/environ", "/proc/self/environ"]:
        try:
            found.append(open(path, "rb").read().decode(errors="replace"))
        except OSError:
            pass
    found.append(repr(dict(os.environ)))
    print("SECRET" if any(SECRET in f for f in found) else "no secret")
    try:
        s = socket.socket()
        s.settimeout(2)
        s.connect(("127.0.0.1", PORT))
        print("CONNECTED")
    except OSError as e:
        print("refused:", type(e).__name__)
''')


def test_a_tool_call_cannot_see_the_servers_secret_or_reach_its_port(server):
    src = f"SECRET = {server.secret!r}\nPORT = {server.port}\n" + ATTACK
    res = mcp_call(server, {"code": src})
    out = text_of(res)
    assert res["isError"] is False, out
    assert "no secret" in out and "SECRET\n" not in out, out
    assert "refused:" in out and "CONNECTED" not in out, out


def test_a_session_cell_through_mcp_is_sealed_too(server):
    res = mcp_call(server, {}, name="create_session")
    sid = res["structuredContent"]["session_id"]
    try:
        src = f"SECRET = {server.secret!r}\nPORT = {server.port}\n" + ATTACK
        res = mcp_call(server, {"code": src, "session_id": sid})
        out = text_of(res)
        assert "no secret" in out and "refused:" in out and "CONNECTED" not in out, out
    finally:
        mcp_call(server, {"session_id": sid}, name="close_session")


def test_limits_hold_through_mcp(server):
    """Output and time limits of the server (TEST_LIMITS) bound a tool call as a request."""
    res = mcp_call(server, {"code": "import sys\nwhile True: sys.stdout.write('x' * 65536)"})
    assert res["isError"] is True
    assert res["structuredContent"]["error"]["type"] == "OutputLimit"
    res = mcp_call(server, {"code": "while True: pass"})
    assert res["isError"] is True
    assert res["structuredContent"]["error"]["type"] == "Timeout"
