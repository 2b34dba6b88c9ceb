"""HTTP behaviour: keep-alive, concurrent requests, back-pressure (503 with Retry-After)."""

import http.client
import threading
import time

from conftest import assert_healthy, post_json, request, run, run_ok, show


def test_keep_alive_serves_several_requests_on_one_connection(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.connect()
        sock = conn.sock
        for i in range(4):
            reply = post_json(server, {"code": f"print({i} * 7)"}, conn=conn)
            assert reply.status == 200, show(reply)
            assert reply.json["output"] == f"{i * 7}\n", show(reply.json)
            assert reply.headers.get("connection", "").lower() != "close", show(reply.headers)
            assert conn.sock is sock, "the server closed the connection after a request"
    finally:
        conn.close()


def test_concurrent_requests_are_all_answered(server):
    results = {}

    def worker(i):
        try:
            results[i] = run(server, f"import time\ntime.sleep(0.5)\nprint('run', {i})")
        except Exception as e:  # recorded, asserted below
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a concurrent request hangs"
    for i in range(8):
        assert not isinstance(results[i], Exception), show(results[i])
        status, body = results[i]
        assert status == 200, show(body)
        assert body["status"] == "Success", show(body)
        assert body["output"] == f"run {i}\n", show(body)


def test_busy_and_queue_full_is_503_with_retry_after(start_server):
    srv = start_server({"MAX_CONCURRENCY": "1", "QUEUE_SIZE": "0", "EXECUTION_TIMEOUT": "10"})
    run_ok(srv, "print('warm')")
    holder = {}

    def long_run():
        holder["answer"] = run(srv, "import time\ntime.sleep(4)\nprint('held')")

    t = threading.Thread(target=long_run)
    t.start()
    try:
        time.sleep(1.5)  # the long run now holds the only slot
        reply = post_json(srv, {"code": "print('rejected')"})
        assert reply.status == 503, show(reply)
        retry = reply.headers.get("retry-after")
        assert retry is not None and retry.strip().isdigit(), show(reply.headers)
        assert reply.json is not None and reply.json["status"] == "Error", show(reply)
        assert isinstance(reply.json["output"], str) and reply.json["output"], show(reply.json)
    finally:
        t.join(timeout=30)
    assert not t.is_alive(), "the long run never finished"
    status, body = holder["answer"]
    assert status == 200 and body["status"] == "Success" and body["output"] == "held\n", show(body)
    assert_healthy(srv)


def test_head_or_options_do_not_crash_the_server(server):
    for method in ("HEAD", "OPTIONS"):
        reply = request(server, method, "/api/execute")
        assert 400 <= reply.status < 500, show(reply)
    assert_healthy(server)
