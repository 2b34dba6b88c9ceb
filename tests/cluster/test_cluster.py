"""Many instances behind nginx (issue 17): three snakebox instances (NODE_ID 0, 1, 2) with owner
forwarding (PEER_URL, PEER_TOKEN) and Debian's nginx with the shipped deploy/nginx/snakebox.conf
in front, all started here (tests/cluster/cluster.py) and stopped by the pids we started.

The tests that stop an instance start a fresh one (a new boot) on its port before they end, so
the order of the tests does not matter."""

import http.client
import json
import os
import signal
import threading
import time

import pytest

from cluster import Cluster, metric, ndjson_events, node_of
from conftest import assert_session_error, code, request, show

CELL_TIMEOUT = 60


@pytest.fixture(scope="module")
def cluster():
    c = Cluster()
    yield c
    c.stop()


def run_via(target, src, timeout=CELL_TIMEOUT):
    return request(target, "POST", "/api/execute", body=json.dumps({"code": src}),
                   headers={"Content-Type": "application/json"}, timeout=timeout)


def create_via(target):
    r = request(target, "POST", "/api/sessions", body="{}", headers={"Content-Type": "application/json"},
                timeout=CELL_TIMEOUT)
    assert r.status == 201, show(r)
    return r.json["session_id"]


def cell_via(target, sid, src, headers=None):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return request(target, "POST", f"/api/sessions/{sid}/execute", body=json.dumps({"code": src}),
                   headers=h, timeout=CELL_TIMEOUT)


def cell_value(target, sid, src):
    r = cell_via(target, sid, src)
    assert r.status == 200 and r.json.get("status") == "Success", show(r)
    return r.json["stdout"].strip()


def session_on(cluster, node):
    """A new session made on node (directly)."""
    sid = create_via(cluster.nodes[node])
    assert node_of(sid) == node, sid
    return sid


class Load:
    """Stateless runs through nginx from `clients` threads until stop(); every answer kept."""

    def __init__(self, target, clients=4):
        self.target = target
        self.results = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(i,)) for i in range(clients)]
        for t in self.threads:
            t.start()

    def _client(self, i):
        n = 0
        while not self.stopping.is_set():
            want = f"{i}-{n}"
            try:
                r = run_via(self.target, f"print({want!r})")
                ok = r.status == 200 and r.json and r.json.get("status") == "Success" and \
                    r.json.get("stdout") == want + "\n"
                item = (ok, r.status, r.body[:300])
            except Exception as e:  # a failure of the load is what the tests look for
                item = (False, None, repr(e))
            with self.lock:
                self.results.append(item)
            n += 1

    def count(self):
        with self.lock:
            return len(self.results)

    def wait_for(self, n, timeout=60):
        deadline = time.monotonic() + timeout
        while self.count() < n:
            assert time.monotonic() < deadline, f"the load made only {self.count()} requests"
            time.sleep(0.05)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=CELL_TIMEOUT + 10)
        failed = [r for r in self.results if not r[0]]
        return failed


def test_stateless_load_through_nginx_reaches_every_instance(cluster):
    """60 runs through nginx from 6 clients: every one succeeds, and every instance's
    snakebox_runs_total grew. Seen failing with the upstream's least_conn replaced by
    `hash $remote_addr` (every client is 127.0.0.1): one instance got all 60."""
    before = [metric(s, "snakebox_runs_total") for s in cluster.nodes]
    results = []
    lock = threading.Lock()

    def client(i):
        for n in range(10):
            r = run_via(cluster.nginx, f"import time; time.sleep(0.05); print({i * 100 + n})")
            with lock:
                results.append((r.status, r.json and r.json.get("stdout"), i * 100 + n))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 60, show(results)
    bad = [r for r in results if r[0] != 200 or r[1] != f"{r[2]}\n"]
    assert not bad, show(bad)
    after = [metric(s, "snakebox_runs_total") for s in cluster.nodes]
    grew = [a - b for a, b in zip(after, before)]
    assert all(g > 0 for g in grew), f"runs per instance: {grew}"
    assert sum(grew) == 60, f"runs per instance: {grew}"


def test_session_through_nginx_and_forwarded_by_a_non_owner(cluster):
    """A session made through nginx keeps its state over cells through nginx; the same session
    used directly through an instance that does not own it is forwarded to its owner (state
    kept), a live (NDJSON) cell's first output arrives through the forward while the cell is
    still running on the owner, and a DELETE through the non-owner ends it. Seen failing before
    owner forwarding existed: the non-owner answered 404 SessionNotFound."""
    sid = create_via(cluster.nginx)
    owner = node_of(sid)
    assert cell_value(cluster.nginx, sid, "x = 41\nprint(x)") == "41"
    assert cell_value(cluster.nginx, sid, "x += 1\nprint(x)") == "42"
    other = cluster.nodes[(owner + 1) % 3]
    assert cell_value(other, sid, "x += 1\nprint(x)") == "43"
    # Live through the non-owner: "first" must come while the owner still runs the cell.
    conn = http.client.HTTPConnection("127.0.0.1", other.port, timeout=CELL_TIMEOUT)
    try:
        conn.request("POST", f"/api/sessions/{sid}/execute",
                     body=json.dumps({"code": code('''
                         import time
                         print("first", x, flush=True)
                         time.sleep(3)
                         print("second")
                     ''')}),
                     headers={"Content-Type": "application/json", "Accept": "application/x-ndjson"})
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()
        assert resp.getheader("Content-Type", "").startswith("application/x-ndjson")
        events = []
        busy_seen = None
        for ev in ndjson_events(resp):
            events.append(ev)
            if ev["type"] == "stdout" and busy_seen is None:
                assert ev["text"] == "first 43\n", show(events)
                state = request(cluster.nodes[owner], "GET", f"/api/sessions/{sid}", timeout=10)
                busy_seen = state.json.get("state")
        assert events[0]["type"] == "start" and events[0]["session_id"] == sid, show(events)
        assert events[-1]["type"] == "end" and events[-1]["stdout"] == "first 43\nsecond\n", show(events)
        assert busy_seen == "busy", f"the first output came when the session was {busy_seen!r}: " \
                                    f"the forward held the stream back; {show(events)}"
    finally:
        conn.close()
    r = request(other, "DELETE", f"/api/sessions/{sid}", timeout=30)
    assert r.status in (200, 204), show(r)
    r = cell_via(cluster.nginx, sid, "print(x)")
    assert_session_error(r, 410, "SessionGone", "deleted")


def test_files_and_interrupt_through_a_non_owner(cluster):
    """The other session endpoints through a non-owner: a raw PUT of a file whose name needs
    encoding, its GET (bytes and Content-Disposition relayed), the listing, and an interrupt of a
    cell running on the owner (the cell's client gets its KeyboardInterrupt). Seen failing before
    owner forwarding existed: every one answered 404 SessionNotFound."""
    sid = session_on(cluster, 0)
    other = cluster.nodes[2]
    data = bytes(range(256)) * 8
    r = request(other, "PUT", f"/api/sessions/{sid}/files/dir/a%20b%3F.bin", body=data, timeout=30)
    assert r.status == 201, show(r)
    assert cell_value(cluster.nodes[0], sid, "print(len(open('/work/dir/a b?.bin', 'rb').read()))") == "2048"
    r = request(other, "GET", f"/api/sessions/{sid}/files/dir/a%20b%3F.bin", timeout=30)
    assert r.status == 200 and r.body == data, show(r)
    assert "attachment" in r.headers.get("content-disposition", ""), show(r)
    r = request(other, "GET", f"/api/sessions/{sid}/files", timeout=30)
    assert r.status == 200 and "dir/a b?.bin" in json.dumps(r.json), show(r)
    answers = []
    t = threading.Thread(target=lambda: answers.append(
        cell_via(cluster.nginx, sid, "import time\nprint('go', flush=True)\ntime.sleep(30)")))
    t.start()
    deadline = time.monotonic() + 20
    while request(cluster.nodes[0], "GET", f"/api/sessions/{sid}", timeout=10).json["state"] != "busy":
        assert time.monotonic() < deadline, "the cell never started"
        time.sleep(0.05)
    r = request(other, "POST", f"/api/sessions/{sid}/interrupt", timeout=30)
    assert r.status == 200 and r.json["interrupted"] is True, show(r)
    t.join(timeout=30)
    assert answers and answers[0].status == 200 and "KeyboardInterrupt" in answers[0].json["output"], \
        show(answers)


def mcp_call(target, name, arguments, id=1, accept="application/json, text/event-stream", meta=None):
    params = {"name": name, "arguments": arguments}
    if meta:
        params["_meta"] = meta
    return request(target, "POST", "/mcp", body=json.dumps(
        {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}),
        headers={"Content-Type": "application/json", "Accept": accept,
                 "MCP-Protocol-Version": "2025-06-18"}, timeout=CELL_TIMEOUT)


def mcp_text(r, id):
    assert r.status == 200, show(r)
    if r.headers.get("content-type", "").startswith("text/event-stream"):
        msgs = [json.loads(line[len("data: "):]) for line in r.body.decode().split("\n")
                if line.startswith("data: ")]
    else:
        msgs = [r.json]
    assert msgs[-1]["id"] == id and not msgs[-1]["result"].get("isError"), show(r)
    return msgs, msgs[-1]["result"]["content"][0]["text"]


def test_mcp_calls_reach_the_session_owner_through_any_instance(cluster):
    """MCP carries the session in the JSON-RPC body (session_id), so a balancer cannot route it:
    an instance that gets a call on another node's session forwards the message to the owner's
    /mcp and relays the response, progress notifications included. A session made through one
    instance keeps its variables through the two others. Failed before the MCP route used the
    forwarding (a non-owner answered isError: session not found)."""
    r = mcp_call(cluster.nodes[0], "create_session", {})
    assert r.status == 200 and not r.json["result"].get("isError"), show(r)
    sid = r.json["result"]["structuredContent"]["session_id"]
    assert node_of(sid) == 0, sid
    _, text = mcp_text(mcp_call(cluster.nodes[1], "run_python", {"code": "x = 6\nprint(x)", "session_id": sid},
                                id=2), 2)
    assert text.strip() == "6", text
    msgs, text = mcp_text(mcp_call(cluster.nodes[2], "run_python",
                                   {"code": "print(x * 7, flush=True)\nprint('done')", "session_id": sid},
                                   id=3, meta={"progressToken": "p"}), 3)
    assert text == "42\ndone\n", text
    assert msgs[:-1] and all(m["method"] == "notifications/progress" for m in msgs[:-1]), msgs
    r = mcp_call(cluster.nodes[1], "close_session", {"session_id": sid}, id=4)
    assert r.status == 200 and not r.json["result"].get("isError"), show(r)
    r = mcp_call(cluster.nodes[2], "run_python", {"code": "print(x)", "session_id": sid}, id=5)
    assert r.status == 200 and r.json["result"]["isError"] is True, show(r)
    assert "gone" in r.json["result"]["content"][0]["text"], show(r)


def test_peer_headers_without_the_token_are_refused_and_forwards_do_not_loop(cluster):
    """A request that says it was forwarded (X-Snakebox-Forwarded-By) without the cluster's
    PEER_TOKEN, or with a wrong one, is refused 403 by the owner; a forwarded request (right
    token) that reaches a non-owner is refused 508 instead of being forwarded again; nginx strips
    the peer headers of clients. Seen failing before the peer headers were checked: the owner
    ran the cell (200) and the non-owner forwarded (200)."""
    sid = session_on(cluster, 0)
    owner, other = cluster.nodes[0], cluster.nodes[1]
    for headers in ({"X-Snakebox-Forwarded-By": "1"},
                    {"X-Snakebox-Forwarded-By": "1", "X-Snakebox-Peer-Token": "x" * 32},
                    {"X-Snakebox-Peer-Token": cluster.token[:-1] + "0" if cluster.token[-1] != "0" else
                     cluster.token[:-1] + "1"}):
        assert_session_error(cell_via(owner, sid, "print(1)", headers), 403, "Forbidden")
    peer = {"X-Snakebox-Forwarded-By": "2", "X-Snakebox-Peer-Token": cluster.token}
    assert cell_value(owner, sid, "print('direct')") == "direct"
    assert cell_via(owner, sid, "print('peer')", peer).json["stdout"] == "peer\n"
    assert_session_error(cell_via(other, sid, "print(1)", peer), 508, "ForwardingLoop")
    # Through nginx a client's peer headers are dropped: the request is an ordinary one.
    r = cell_via(cluster.nginx, sid, "print('via nginx')", {"X-Snakebox-Forwarded-By": "1"})
    assert r.status == 200 and r.json["stdout"] == "via nginx\n", show(r)


def test_sigterm_under_load_drains_without_a_failed_request(cluster):
    """Stateless load through nginx; one instance gets SIGTERM while a run of its own is in
    flight: while it drains, its /health?ready=1 is 503 (plain /health stays 200), a run sent to
    it directly is 503 with Retry-After, and its run in flight finishes with its answer; no
    request of the load fails; it exits 0. Its session then answers 503 OwnerUnavailable through
    nginx and through a non-owner, and 410 server_restarted once a new boot of it is up; the
    other instances' sessions keep their state. Seen failing on main's binary (the instance
    closed its listening socket at SIGTERM: /health?ready=1 was a reset connection), and with
    http_503 left out of the shipped config's proxy_next_upstream (load requests failed with the
    draining instance's 503)."""
    victim = 2
    s = cluster.nodes[victim]
    sid = session_on(cluster, victim)
    others = {n: session_on(cluster, n) for n in (0, 1)}
    for n, osid in others.items():
        assert cell_value(cluster.nodes[n], osid, "y = 7\nprint(y)") == "7"
    try:
        drain_and_check(cluster, s, sid, others)
    finally:
        cluster.restart(victim)
    assert_session_error(cell_via(cluster.nginx, sid, "print(1)"), 410, "SessionGone", "server_restarted")
    assert_session_error(cell_via(cluster.nodes[1], sid, "print(1)"), 410, "SessionGone", "server_restarted")
    for n, osid in others.items():
        assert cell_value(cluster.nginx, osid, "y += 1\nprint(y)") == "8"


def drain_and_check(cluster, s, sid, others):
    load = Load(cluster.nginx)
    try:
        load.wait_for(20)
        inflight = []
        t = threading.Thread(target=lambda: inflight.append(run_via(s, code('''
            import time
            time.sleep(3)
            print("finished")
        '''))))
        t.start()
        time.sleep(1)
        os.kill(s.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while True:
            r = request(s, "GET", "/health?ready=1", timeout=10)
            if r.status == 503:
                break
            assert time.monotonic() < deadline, show(r)
            time.sleep(0.05)
        assert r.json["draining"] is True and r.json["ready"] is False, show(r)
        live = request(s, "GET", "/health", timeout=10)
        assert live.status == 200 and live.json["draining"] is True, show(live)
        refused = run_via(s, "print(1)")
        assert refused.status == 503 and "draining" in refused.json["output"], show(refused)
        assert refused.headers.get("retry-after") == "1", show(refused)
        t.join(timeout=30)
        assert inflight and inflight[0].status == 200 and inflight[0].json["stdout"] == "finished\n", \
            show(inflight)
        assert s.wait_exit(30) == 0, s.stderr()[-3000:]
        n = load.count()
        load.wait_for(n + 20)
    finally:
        failed = load.stop()
    assert not failed, show(failed[:5])
    r = cell_via(cluster.nginx, sid, "print(1)")
    assert_session_error(r, 503, "OwnerUnavailable")
    r = cell_via(cluster.nodes[0], sid, "print(1)")
    assert_session_error(r, 503, "OwnerUnavailable")


def test_kill9_of_an_instance_fails_only_its_sessions(cluster):
    """kill -9 one instance: its sessions answer 503 OwnerUnavailable (with Retry-After) through
    nginx and through another instance, stateless runs through nginx all succeed, and the other
    instances' sessions keep their state. Seen failing without the config's error_page (nginx's
    HTML 502 page) and on main's binary (the other instance: 404 SessionNotFound)."""
    victim = 1
    s = cluster.nodes[victim]
    sid = session_on(cluster, victim)
    others = {n: session_on(cluster, n) for n in (0, 2)}
    for n, osid in others.items():
        assert cell_value(cluster.nodes[n], osid, "z = 1\nprint(z)") == "1"
    os.kill(s.pid, signal.SIGKILL)
    assert s.wait_exit(10) is not None
    try:
        assert_session_error(cell_via(cluster.nginx, sid, "print(1)"), 503, "OwnerUnavailable")
        assert_session_error(cell_via(cluster.nodes[0], sid, "print(1)"), 503, "OwnerUnavailable")
        for i in range(20):
            r = run_via(cluster.nginx, f"print({i})")
            assert r.status == 200 and r.json["stdout"] == f"{i}\n", show(r)
        for n, osid in others.items():
            assert cell_value(cluster.nginx, osid, "z += 1\nprint(z)") == "2"
    finally:
        cluster.restart(victim)
