"""Live answers (issue 14): POST /api/execute and POST /api/sessions/{id}/execute stream their
events (start, stdout, stderr, image, end) when Accept asks for application/x-ndjson or
text/event-stream; anything else keeps today's buffered JSON.

Before this branch (main at 0f81fac, run with SNAKEBOX_BIN pointing at that build) every request
here got the buffered JSON answer (Content-Type application/json, one body at the end): 23 of
the 33 tests failed, on the Content-Type assertion in open_stream (or, for the 401 test, on
lines that are not events); the 10 that passed pin what must not change (the Accept values that
keep the buffered JSON, refusals before the run, the SSE parser's own test). The disconnect
tests were also seen failing with the pool's watch of the client removed, the coalescing test
with the 50 ms wait removed.

The SSE tests read the stream with SSEParser below, a line-by-line implementation of the WHATWG
HTML standard's "Parsing an event stream" and "Dispatching the event" (section 9.2.6), not a
pattern match: no SSE client library is packaged for Debian 12 and the suites use only the
standard library."""

import http.client
import base64
import json
import os
import signal
import socket
import time

import pytest

from conftest import (MARK_PRELUDE, assert_cgroups_only_for_live_sandboxes, assert_no_processes_left, assert_healthy, code, host_processes, create_session, new_token, run,
                      session_execute, show, wait_session_state, cell_ok, delete_session,
                      module_server)

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"

# Runs that outlive the shared server's EXECUTION_TIMEOUT (5 s): a disconnect test must see the run
# end well before its own timeout would have ended it.
long_server = module_server({"EXECUTION_TIMEOUT": "60"})


class SSEParser:
    """The event stream interpretation of the HTML standard, fed bytes, yielding
    (type, data, last_event_id) for each dispatched event. Lines end with CRLF, LF or CR; a line
    starting with ':' is a comment; "field: value" strips one space after the colon; data lines
    are joined with LF and the last LF removed; an empty data buffer dispatches nothing; the
    type defaults to "message"."""

    def __init__(self):
        self.pending = b""
        self.data = ""
        self.type = ""
        self.last_id = ""
        self.comments = 0
        self.first = True

    def feed(self, chunk):
        self.pending += chunk
        events = []
        while True:
            cut = -1
            for i, b in enumerate(self.pending):
                if b in (10, 13):
                    cut = i
                    break
            if cut < 0:
                return events
            # A CR at the very end may be the first half of a CRLF: wait for the next byte.
            if self.pending[cut] == 13 and cut + 1 == len(self.pending):
                return events
            line = self.pending[:cut].decode("utf-8")
            skip = 2 if self.pending[cut:cut + 2] == b"\r\n" else 1
            self.pending = self.pending[cut + skip:]
            if self.first:
                line = line[1:] if line.startswith("\ufeff") else line
                self.first = False
            ev = self.line(line)
            if ev:
                events.append(ev)

    def line(self, line):
        if line == "":
            if self.data == "":
                self.type = ""
                return None
            data = self.data[:-1] if self.data.endswith("\n") else self.data
            ev = (self.type or "message", data, self.last_id)
            self.data, self.type = "", ""
            return ev
        if line.startswith(":"):
            self.comments += 1
            return None
        if ":" in line:
            field, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            field, value = line, ""
        if field == "event":
            self.type = value
        elif field == "data":
            self.data += value + "\n"
        elif field == "id" and "\0" not in value:
            self.last_id = value
        return None


def test_sse_parser_follows_the_standard():
    """The parser itself, on the standard's own examples (multi-line data, comments, CR and CRLF
    line ends, a field without a colon, a final event without its blank line)."""
    p = SSEParser()
    got = p.feed(b": test stream\r\n\r\ndata: first event\nid: 1\n\ndata:second event\rid\r\r"
                 b"data:  third event\n\nevent: add\ndata: YHOO\ndata: +2\ndata\n\ndata: lost")
    assert got == [("message", "first event", "1"), ("message", "second event", ""),
                   ("message", " third event", ""), ("add", "YHOO\n+2\n", "")], got
    assert p.comments == 1


class Stream:
    """One live answer: the HTTP response (status and headers read), and its events as dicts
    with, for each, the client's monotonic time of receipt (the key "_got")."""

    def __init__(self, server, obj, accept, path="/api/execute", timeout=60):
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
        self.conn.request("POST", path, body=json.dumps(obj),
                          headers={"Content-Type": "application/json", "Accept": accept})
        self.resp = self.conn.getresponse()
        self.accept = accept
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}
        self.parser = SSEParser()

    def events(self):
        """Yields the events as they arrive. SSE: the event's type must equal its JSON's."""
        while True:
            if self.accept == NDJSON:
                line = self.resp.readline()
                if not line:
                    return
                assert line.endswith(b"\n"), line
                ev = json.loads(line)
                ev["_got"] = time.monotonic()
                yield ev
                continue
            chunk = self.resp.read1(65536)
            if not chunk:
                return
            for etype, data, _ in self.parser.feed(chunk):
                ev = json.loads(data)
                assert ev.get("type") == etype, (etype, data)
                ev["_got"] = time.monotonic()
                yield ev

    def all(self):
        evs = list(self.events())
        self.close()
        return evs

    def close(self):
        self.conn.close()


def open_stream(server, obj, accept=NDJSON, path="/api/execute"):
    s = Stream(server, obj, accept, path)
    assert s.status == 200, (s.status, s.headers, s.resp.read()[:2000])
    ctype = s.headers.get("content-type", "")
    assert ctype.split(";")[0] == accept, (s.headers, s.resp.read()[:2000])
    assert s.headers.get("cache-control") == "no-store", s.headers
    assert s.headers.get("x-accel-buffering") == "no", s.headers
    assert s.headers.get("transfer-encoding") == "chunked", s.headers
    return s


def check_sequence(evs):
    """start first, end last and only once, seq 0, 1, 2, ...; t never decreasing."""
    assert evs and evs[0]["type"] == "start", show(evs)
    assert evs[-1]["type"] == "end", show(evs)
    assert [e["seq"] for e in evs] == list(range(len(evs))), show(evs)
    assert sum(e["type"] == "end" for e in evs) == 1, show(evs)
    ts = [e["t"] for e in evs[1:]]
    assert all(isinstance(t, int) and t >= 0 for t in ts), show(evs)
    assert ts == sorted(ts), show(evs)
    for e in evs[1:-1]:
        assert e["type"] in ("stdout", "stderr", "image", "keepalive"), show(e)
    return evs[-1]


def end_answer(end):
    """The end event without the event's own keys: the buffered answer."""
    return {k: v for k, v in end.items() if k not in ("type", "seq", "t", "_got")}


def texts(evs):
    """[(stream, text)] with consecutive pieces of one stream merged (how pieces are cut into
    events is the server's choice)."""
    out = []
    for e in evs:
        if e["type"] in ("stdout", "stderr"):
            if out and out[-1][0] == e["type"]:
                out[-1] = (e["type"], out[-1][1] + e["text"])
            else:
                out.append((e["type"], e["text"]))
    return out


# Fields of the answer that measure the run (time, CPU, memory) rather than say what it did.
TIMINGS = ("duration_ms", "duration_us", "cpu_ms", "memory_peak_bytes", "memory_peak_mb", "queue_ms")


def same_modulo_timings(a, b):
    assert sorted(a) == sorted(b), show((a, b))
    for k in a:
        if k not in TIMINGS:
            assert a[k] == b[k], show((k, a[k], b[k]))


@pytest.mark.parametrize("accept", [NDJSON, SSE])
def test_first_output_arrives_while_the_program_still_sleeps(server, accept):
    """A program prints and flushes, sleeps 2 s, prints again: the first stdout event comes
    before the end, its t is earlier than the end's by most of the sleep, and the client had it
    well before the end arrived (a buffered answer gives it only with the end)."""
    s = open_stream(server, {"code": code('''
        import time
        print("first", flush=True)
        time.sleep(2)
        print("second")
    ''')}, accept)
    evs = s.all()
    end = check_sequence(evs)
    first = next(e for e in evs if e["type"] == "stdout")
    assert first["text"] == "first\n", show(evs)
    assert evs.index(first) < len(evs) - 1
    assert end["t"] - first["t"] >= 1500, show(evs)
    assert end["_got"] - first["_got"] >= 1.0, show(evs)
    assert end["status"] == "Success" and end["stdout"] == "first\nsecond\n", show(end)
    assert evs[0]["session_id"] is None and evs[0]["execution_count"] is None, show(evs[0])
    assert evs[0]["request_id"] == s.headers["x-request-id"], show(evs[0])


@pytest.mark.parametrize("accept", [NDJSON, SSE])
def test_events_follow_write_order_and_end_is_the_buffered_answer(server, accept):
    """stdout and stderr interleaved through print, .buffer and .buffer.raw, a subprocess's and
    C code's (os.write) bytes, then an exception: the events' texts in order make the answer's
    output; per stream they make its stdout and stderr; the Python-level writes are in the
    order written (os.write and a subprocess go through the raw pipes: their bytes are included,
    their place among the others is not promised, as in the buffered answer). The end equals
    the buffered answer of the same program, timings aside."""
    src = code('''
        import os, subprocess, sys
        sys.stdout.write("a")
        sys.stderr.write("b")
        sys.stdout.buffer.write(b"c")
        sys.stderr.buffer.raw.write(b"d")
        print("e", flush=True)
        os.write(1, b"<raw>")
        subprocess.run(["/bin/echo", "<sub>"])
        print("f", file=sys.stderr)
        print("\u00e9\u4e2d")
        raise ValueError("g")
    ''')
    evs = open_stream(server, {"code": src}, accept).all()
    end = check_sequence(evs)
    pieces = texts(evs)
    assert "".join(t for _, t in pieces) == end["output"], show(evs)
    assert "".join(t for k, t in pieces if k == "stdout") == end["stdout"], show(evs)
    assert "".join(t for k, t in pieces if k == "stderr") == end["stderr"], show(evs)
    python_level = [(k, t.replace("<raw>", "").replace("<sub>\n", "")) for k, t in pieces]
    merged = "".join(f"{k[3]}:{t}|" for k, t in python_level if t)
    assert merged.startswith("o:a|e:b|o:c|e:d|o:e\n|"), show(pieces)
    assert "<raw>" in end["stdout"] and "<sub>\n" in end["stdout"], show(end)
    assert "\u00e9\u4e2d\n" in end["stdout"], show(end)
    assert end["status"] == "Error" and end["error"]["type"] == "ValueError", show(end)
    status, buffered = run(server, src)
    assert status == 200, show(buffered)
    # The raw pipes' bytes may land anywhere among the others, in either answer (seen in
    # make test: after "abcde\n" in one, at the end in the other): compared without them.
    live = end_answer(end)
    for answer in (live, buffered):
        for k in ("output", "stdout"):
            assert "<raw>" in answer[k] and "<sub>\n" in answer[k], show(answer)
            answer[k] = answer[k].replace("<raw>", "").replace("<sub>\n", "")
    same_modulo_timings(live, buffered)


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/json, */*;q=0.5",
                                    "text/html", "application/x-ndjson;q=0", "text/event-stream;q=0"])
def test_other_accepts_keep_the_buffered_json(server, accept):
    """Absent, */*, application/json, anything else, or a stream type refused with q=0: today's
    buffered JSON, unchanged."""
    headers = {"Content-Type": "application/json"}
    if accept is not None:
        headers["Accept"] = accept
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("POST", "/api/execute", body=json.dumps({"code": "print(1)"}), headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status == 200, body
    assert resp.getheader("Content-Type").startswith("application/json"), resp.getheaders()
    assert resp.getheader("Content-Length") is not None, resp.getheaders()
    assert json.loads(body)["stdout"] == "1\n"


def test_accept_picks_the_preferred_stream_type(server):
    s = open_stream(server, {"code": "print(1)"}, SSE)
    s.close()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("POST", "/api/execute", body=json.dumps({"code": "print(1)"}),
                 headers={"Content-Type": "application/json",
                          "Accept": "application/x-ndjson;q=0.4, text/event-stream;q=0.9"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert resp.getheader("Content-Type").startswith(SSE), resp.getheaders()


@pytest.mark.parametrize("accept", [NDJSON, SSE])
def test_refused_before_the_run_keeps_its_status_and_json(server, accept):
    """400 (bad body), 404 (no such path), 415 (not JSON), 413 (too large): status and JSON body
    as without Accept."""
    h = {"Content-Type": "application/json", "Accept": accept}
    cases = [("/api/execute", json.dumps({"nope": 1}), h, 400),
             ("/api/execute", json.dumps({"code": ""}), h, 400),
             ("/api/nothing", json.dumps({"code": "1"}), h, 404),
             ("/api/execute", "code", {"Content-Type": "text/plain", "Accept": accept}, 415),
             ("/api/execute", json.dumps({"code": "#" * 70000}), h, 413)]
    for path, body, headers, want in cases:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        assert resp.status == want, (path, resp.status, data)
        assert resp.getheader("Content-Type").startswith("application/json"), resp.getheaders()
        assert json.loads(data)["status"] == "Error", data


@pytest.mark.parametrize("accept", [NDJSON, SSE])
def test_output_over_the_limit_ends_with_the_output_limit(server, accept):
    """MAX_OUTPUT_BYTES (65536 here) bounds what is streamed as it bounds the answer: the deltas
    add up to the answer's output, at most the limit, and the end says OutputLimit."""
    evs = open_stream(server, {"code": code('''
        import sys
        for i in range(4000):
            print("x" * 99, flush=(i % 100 == 0))
    ''')}, accept).all()
    end = check_sequence(evs)
    assert end["status"] == "Error" and end["error"]["type"] == "OutputLimit", show(end)
    streamed = "".join(t for _, t in texts(evs))
    assert len(streamed.encode()) <= 65536, len(streamed)
    assert streamed == end["stdout"], (len(streamed), len(end["stdout"]))
    assert all(len(e["text"].encode()) <= 4096 for e in evs if e["type"] == "stdout"), show(evs[:3])


def test_timeout_memory_kill_and_exception_each_end_with_their_answer(server):
    cases = [
        ({"code": "import time\nprint('a', flush=True)\ntime.sleep(30)", "timeout": 1}, "Timeout"),
        ({"code": code('''
            print("a", flush=True)
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        '''), "memory_mb": 64}, "MemoryLimit"),
        ({"code": "print('a')\n1/0"}, "ZeroDivisionError"),
    ]
    for obj, etype in cases:
        evs = open_stream(server, obj, NDJSON).all()
        end = check_sequence(evs)
        # Without a memory cgroup (unprivileged) the address-space limit raises MemoryError.
        want = (etype, "MemoryError") if etype == "MemoryLimit" else (etype,)
        assert end["status"] == "Error" and end["error"]["type"] in want, show(end)
        assert texts(evs)[0][0] == "stdout" and texts(evs)[0][1].startswith("a\n"), show(evs)


IMAGE_KEYS = ("format", "width", "height", "data")


def image_of(ev):
    return {k: v for k, v in ev.items() if k in IMAGE_KEYS}


@pytest.mark.parametrize("accept", [NDJSON, SSE])
def test_a_figure_is_an_image_event_when_shown_in_write_order(server, accept):
    """Text, a subprocess's line, a figure, more text, a second figure, text on stderr: the
    events come in that order, each image where plt.show() was called, and the image events
    are the answer's images, the same objects. The figure is sent while the program sleeps 2 s
    after showing it: its t is earlier than the end's by most of the sleep, and the client had
    it well before the end. Failed before the runner sent figures as they are shown (they came
    from the report, both just before the end, after "after-2" and the stderr line)."""
    evs = open_stream(server, {"code": code('''
        import subprocess, sys, time
        import matplotlib.pyplot as plt
        print("before-1")
        subprocess.run(["/bin/echo", "sub"])
        plt.figure(figsize=(2, 1))
        plt.plot([1, 2])
        plt.show()
        time.sleep(2)
        print("after-1")
        plt.figure(figsize=(3, 1))
        plt.plot([2, 1])
        plt.show()
        print("after-2", file=sys.stderr)
    ''')}, accept).all()
    end = check_sequence(evs)
    assert end["status"] == "Success", show(end)
    kinds = []
    for e in evs[1:-1]:
        if e["type"] == "image":
            kinds.append("image")
        elif e["type"] in ("stdout", "stderr"):
            for line in e["text"].splitlines():
                kinds.append(line)
    assert kinds == ["before-1", "sub", "image", "after-1", "image", "after-2"], show(evs)
    images = [e for e in evs if e["type"] == "image"]
    assert [image_of(e) for e in images] == end["images"], show(evs)
    assert [(e["width"], e["height"]) for e in images] == [(200, 100), (300, 100)], show(images)
    assert base64.b64decode(images[0]["data"])[:8] == b"\x89PNG\r\n\x1a\n", show(images)
    assert end["t"] - images[0]["t"] >= 1500, show(evs)
    assert end["_got"] - images[0]["_got"] >= 1.0, show(evs)


def test_svg_figures_and_figures_left_open_stream_too(server):
    """image_format svg: the event says svg and carries the SVG; a figure never shown is
    rendered at the end, as in the buffered answer, and streamed before the end."""
    evs = open_stream(server, {"image_format": "svg", "code": code('''
        import matplotlib.pyplot as plt
        plt.plot([1, 2])
        plt.show()
        print("shown")
        plt.figure()
        plt.plot([2, 1])
    ''')}, NDJSON).all()
    end = check_sequence(evs)
    images = [e for e in evs if e["type"] == "image"]
    assert len(images) == 2 and [image_of(e) for e in images] == end["images"], show(evs)
    assert all(e["format"] == "svg" for e in images), show(images)
    assert b"<svg" in base64.b64decode(images[0]["data"]), show(images)
    order = [e["type"] for e in evs]
    assert order.index("stdout") > evs.index(images[0]) and evs.index(images[1]) == len(evs) - 2, show(evs)


def test_figures_past_max_images_are_dropped_live_as_in_the_answer(start_server):
    """MAX_IMAGES=2 and three figures shown: two image events, the answer's two images and
    images_dropped 1."""
    server = start_server({"MAX_IMAGES": "2"})
    evs = open_stream(server, {"code": code('''
        import matplotlib.pyplot as plt
        for i in range(3):
            plt.figure(figsize=(1, 1))
            plt.plot([i])
            plt.show()
    ''')}, NDJSON).all()
    end = check_sequence(evs)
    images = [e for e in evs if e["type"] == "image"]
    assert [image_of(e) for e in images] == end["images"] and len(images) == 2, show(evs)
    assert end["images_dropped"] == 1, show(end)


def test_a_forged_image_frame_reaches_only_its_own_stream(server):
    """The program writes a figure frame on the runner's socket itself: at most it shows up in
    its own stream (the end keeps the report's images: none), the server stays well, and a
    frame over the image limit or announcing more than it sends is dropped."""
    evs = open_stream(server, {"code": code('''
        import os, struct
        os.write(3, b"I" + struct.pack("<cIII", b"p", 1, 1, 4) + b"abcd")
        os.write(3, b"I" + struct.pack("<cIII", b"p", 1, 1, 1 << 30) + b"x")
        os.write(3, b"J" + b"y" * 100)
        os.write(3, b"I" + struct.pack("<cIII", b"q", 1, 1, 4) + b"abcd")
        print("still here")
    ''')}, NDJSON).all()
    end = check_sequence(evs)
    images = [e for e in evs if e["type"] == "image"]
    assert [image_of(e) for e in images] == [
        {"format": "png", "width": 1, "height": 1, "data": base64.b64encode(b"abcd").decode()}], show(evs)
    assert end["status"] == "Success" and end["stdout"] == "still here\n" and end["images"] == [], show(end)
    assert_healthy(server)


def test_client_leaving_mid_stream_kills_the_run(long_server):
    """The client reads the first output and closes: the run's processes (it and a child) are
    gone within 15 s, where they would sleep 50 s under a 60 s timeout, and the server goes on
    answering."""
    server = long_server
    token = new_token()
    s = open_stream(server, {"code": MARK_PRELUDE + code(f'''
        import subprocess, time
        subprocess.Popen(["/bin/sleep", "50"])
        print(mark("{token}"), flush=True)
        time.sleep(50)
    ''')}, NDJSON)
    for ev in s.events():
        if ev["type"] == "stdout":
            assert ev["text"] == token + "\n", show(ev)
            break
    s.close()
    assert_no_processes_left(token, timeout=15)
    assert_cgroups_only_for_live_sandboxes(server)
    status, body = run(server, "print(2)")
    assert status == 200 and body["stdout"] == "2\n", show(body)


@pytest.fixture
def session(server):
    sid = create_session(server)["session_id"]
    yield sid
    delete_session(server, sid)


@pytest.mark.parametrize("accept", [NDJSON, SSE])
def test_session_cell_streams_and_ends_with_its_answer(server, session, accept):
    cell_ok(server, session, "x = 41")
    evs = open_stream(server, {"code": code('''
        import time
        print("one", flush=True)
        time.sleep(1.5)
        x += 1
        print(x)
    ''')}, accept, f"/api/sessions/{session}/execute").all()
    end = check_sequence(evs)
    assert evs[0]["session_id"] == session and evs[0]["execution_count"] == 2, show(evs[0])
    assert end["status"] == "Success" and end["stdout"] == "one\n42\n", show(end)
    assert end["execution_count"] == 2 and end["session"]["session_id"] == session, show(end)
    assert texts(evs) == [("stdout", "one\n42\n")] or texts(evs)[0] == ("stdout", "one\n"), show(evs)
    assert end["t"] - next(e for e in evs if e["type"] == "stdout")["t"] >= 1000, show(evs)


def test_a_session_cell_streams_its_figure_when_shown(server, session):
    """A cell's figure is streamed at plt.show(), before the text printed after it; the next
    cell, not live, still gets its figure in its answer."""
    cell_ok(server, session, "import matplotlib.pyplot as plt")
    evs = open_stream(server, {"code": code('''
        plt.figure(figsize=(2, 1))
        plt.plot([1, 2])
        plt.show()
        print("after")
    ''')}, NDJSON, f"/api/sessions/{session}/execute").all()
    end = check_sequence(evs)
    types = [e["type"] for e in evs]
    assert types == ["start", "image", "stdout", "end"], show(evs)
    assert [image_of(evs[1])] == end["images"], show(evs)
    body = cell_ok(server, session, "plt.plot([3]); plt.show()")
    assert len(body["images"]) == 1, show(body)


def test_session_refusals_keep_their_status_and_json(server, session):
    """404 (no such session) and 409 (busy) with Accept: application/x-ndjson: plain JSON."""
    h = {"Content-Type": "application/json", "Accept": NDJSON}
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("POST", "/api/sessions/nosuch/execute", body=json.dumps({"code": "1"}), headers=h)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    assert resp.status == 404 and resp.getheader("Content-Type").startswith("application/json"), data
    assert json.loads(data)["error"]["type"] == "SessionNotFound", data
    busy = open_stream(server, {"code": "import time\nprint(1, flush=True)\ntime.sleep(3)"}, NDJSON,
                       f"/api/sessions/{session}/execute")
    next(e for e in busy.events() if e["type"] == "stdout")
    r = session_execute(server, session, "1")
    assert r.status == 409 and r.headers["content-type"].startswith("application/json"), show(r)
    busy.all()


def test_client_leaving_a_cell_interrupts_it_and_keeps_the_session(long_server):
    """The client of a cell that would sleep 50 s leaves: the session is idle again within 15 s
    (the cell was interrupted, not left to its 60 s timeout) and keeps its variables."""
    server = long_server
    session = create_session(server)["session_id"]
    cell_ok(server, session, "y = 7")
    s = open_stream(server, {"code": "import time\nprint('go', flush=True)\ntime.sleep(50)"}, SSE,
                    f"/api/sessions/{session}/execute")
    next(e for e in s.events() if e["type"] == "stdout")
    s.close()
    wait_session_state(server, session, "idle", timeout=15)
    assert cell_ok(server, session, "print(y)")["stdout"] == "7\n"
    delete_session(server, session)


@pytest.mark.parametrize("accept", [NDJSON, SSE])
def test_a_quiet_run_gets_a_keepalive_after_15_seconds(long_server, accept):
    """17 s without output after the first line: one keepalive event between them and the end,
    at least 15 s after the last event (in SSE also a ':' comment line)."""
    s = long_server
    st = open_stream(s, {"code": "import time\nprint('a', flush=True)\ntime.sleep(17)"}, accept)
    evs = st.all()
    end = check_sequence(evs)
    assert end["status"] == "Success", show(end)
    kinds = [e["type"] for e in evs]
    assert kinds == ["start", "stdout", "keepalive", "end"], show(evs)
    assert evs[2]["t"] - evs[1]["t"] >= 14900, show(evs)
    assert set(evs[2]) == {"type", "seq", "t", "_got"}, show(evs[2])
    if accept == SSE:
        assert st.parser.comments == 1, st.parser.comments


def test_every_event_matches_the_document(server, session):
    """Each event of a run with output, a figure and an exception, of an output-limited run and
    of a session cell validates against docs/openapi.json's StreamEvent (closed objects: an
    undescribed field fails)."""
    from test_openapi import DOC_PATH, check
    doc = json.loads(DOC_PATH.read_text(encoding="utf-8"))
    schema = {"$ref": "#/components/schemas/StreamEvent"}
    streams = [
        open_stream(server, {"code": code('''
            import matplotlib.pyplot as plt, sys
            print("a", flush=True)
            print("b", file=sys.stderr)
            plt.plot([1, 2]); plt.show()
            1/0
        ''')}, NDJSON),
        open_stream(server, {"code": "while True: print('x' * 999)"}, SSE),
        open_stream(server, {"code": "print(1)"}, NDJSON, f"/api/sessions/{session}/execute"),
    ]
    for st in streams:
        evs = st.all()
        check_sequence(evs)
        for ev in evs:
            ev = {k: v for k, v in ev.items() if k != "_got"}
            errors = check(doc, schema, ev)
            assert not errors, show((errors, ev))


def test_the_readme_curl_example_streams(server):
    """The README's `curl -N -H 'Accept: application/x-ndjson'` example, run as written (only the
    port changed): NDJSON lines, the first output before the end and 2 s earlier by t."""
    import subprocess
    from conftest import ROOT
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Live output"):]
    block = section[section.index("```sh\n") + 6:]
    block = block[:block.index("```")]
    command = "\n".join(line for line in block.splitlines() if not line.startswith("#"))
    assert command.startswith("curl -N ") and "application/x-ndjson" in command, command
    command = command.replace("http://localhost:8080", f"http://127.0.0.1:{server.port}")
    out = subprocess.run(["bash", "-c", command], capture_output=True, timeout=60, check=True).stdout
    evs = [json.loads(line) for line in out.decode().splitlines()]
    end = check_sequence(evs)
    assert [e["type"] for e in evs] == ["start", "stdout", "stdout", "end"], show(evs)
    assert end["stdout"] == "fitting...\ndone\n" and evs[1]["text"] == "fitting...\n", show(evs)
    assert end["t"] - evs[1]["t"] >= 1500, show(evs)


def test_a_session_deleted_under_a_streaming_cell_ends_the_stream_with_its_error(server):
    """DELETE while a live cell runs: the stream ends with the session's error (SessionGone,
    reason deleted) and http_status 410, the status the buffered answer has."""
    from test_openapi import DOC_PATH, check
    sid = create_session(server)["session_id"]
    st = open_stream(server, {"code": "import time\nprint('in', flush=True)\ntime.sleep(60)"}, NDJSON,
                     f"/api/sessions/{sid}/execute")
    evs = []
    for ev in st.events():
        evs.append(ev)
        if ev["type"] == "stdout":
            assert delete_session(server, sid).status == 204
    st.close()
    end = check_sequence(evs)
    assert end["status"] == "Error" and end["error"]["type"] == "SessionGone", show(end)
    assert end["error"]["reason"] == "deleted" and end["http_status"] == 410, show(end)
    doc = json.loads(DOC_PATH.read_text(encoding="utf-8"))
    ev = {k: v for k, v in end.items() if k != "_got"}
    assert not check(doc, {"$ref": "#/components/schemas/StreamEvent"}, ev), show(ev)


def test_a_client_leaving_while_output_flows_kills_the_run(long_server):
    """The client leaves while the run writes steadily for 40 s (the server is writing to it,
    not waiting): the run's processes are gone within 15 s, and the server answers the next
    one."""
    server = long_server
    token = new_token()
    st = open_stream(server, {"code": MARK_PRELUDE + code(f'''
        import time
        mark("{token}")
        for i in range(400):
            print(i, flush=True)
            time.sleep(0.1)
    ''')}, SSE)
    n = 0
    for ev in st.events():
        n += ev["type"] == "stdout"
        if n == 3:
            break
    st.close()
    assert_no_processes_left(token, timeout=15)
    status, body = run(server, "print(3)")
    assert status == 200 and body["stdout"] == "3\n", show(body)


def test_a_client_that_stops_reading_is_closed_and_its_run_killed(start_server):
    """The client asks for a live answer, then reads nothing more while the program writes on
    (slowly enough to stay under MAX_OUTPUT_BYTES for minutes). Once the socket buffers are
    full the server can send nothing: libmicrohttpd's idle timeout (60 s) closes the
    connection, and the run is killed as for a client that left, long before its 300 s time
    limit. The pool's thread never blocked on the client meanwhile: another run answers."""
    server = start_server({"EXECUTION_TIMEOUT": "300", "MAX_OUTPUT_BYTES": str(256 << 20)})
    token = new_token()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        sock.connect(("127.0.0.1", server.port))
        body = json.dumps({"code": MARK_PRELUDE + code(f'''
            import sys, time
            mark("{token}")
            line = "x" * 1023 + "\\n"
            while True:
                sys.stdout.write(line * 256)
                time.sleep(0.1)
        ''')}).encode()
        sock.sendall(b"POST /api/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Accept: application/x-ndjson\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        assert sock.recv(12) == b"HTTP/1.1 200", "no live answer"
        deadline = time.monotonic() + 10
        while not host_processes(token) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert host_processes(token), "the run never started"
        status, other = run(server, "print(7)")
        assert status == 200 and other["stdout"] == "7\n", show(other)
        assert_no_processes_left(token, timeout=120)
    finally:
        sock.close()
    assert_cgroups_only_for_live_sandboxes(server)
    assert_healthy(server)


def test_many_small_writes_are_coalesced(server):
    """2000 flushed lines written as fast as the program can: far fewer events than lines
    (output waits up to 50 ms or 4 KiB for more), and together they are the whole stdout."""
    evs = open_stream(server, {"code": code('''
        for i in range(2000):
            print(f"{i:05d}", flush=True)
    ''')}, NDJSON).all()
    end = check_sequence(evs)
    texts_ = [e["text"] for e in evs if e["type"] == "stdout"]
    assert "".join(texts_) == end["stdout"] == "".join(f"{i:05d}\n" for i in range(2000))
    assert len(texts_) <= 100, f"{len(texts_)} stdout events for 2000 lines"


def test_a_key_is_still_needed_and_refused_with_401_json(start_server):
    s = start_server({"API_KEYS": "stream-key-1"})
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
    conn.request("POST", "/api/execute", body=json.dumps({"code": "print(1)"}),
                 headers={"Content-Type": "application/json", "Accept": NDJSON})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    assert resp.status == 401 and resp.getheader("Content-Type").startswith("application/json"), data
    st = Stream(s, {"code": "print(1)"}, NDJSON)
    assert st.status == 401, st.status
    st.close()
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
    conn.request("POST", "/api/execute", body=json.dumps({"code": "print(1)"}),
                 headers={"Content-Type": "application/json", "Accept": NDJSON,
                          "Authorization": "Bearer stream-key-1"})
    resp = conn.getresponse()
    evs = [json.loads(line) for line in resp.read().splitlines()]
    conn.close()
    assert resp.status == 200 and evs[-1]["type"] == "end" and evs[-1]["stdout"] == "1\n", evs


def test_a_failure_of_ours_after_the_headers_is_an_internal_end(start_server):
    """SIGTERM with SHUTDOWN_GRACE=1 while a live run sleeps 30 s: the buffered answer would be
    a 503; the stream, already a 200, ends with status Error, error.type Internal and
    http_status 503, and the server exits cleanly."""
    s = start_server({"SHUTDOWN_GRACE": "1", "EXECUTION_TIMEOUT": "60"})
    st = open_stream(s, {"code": "import time\nprint('up', flush=True)\ntime.sleep(30)"}, SSE)
    evs = []
    for ev in st.events():
        evs.append(ev)
        if ev["type"] == "stdout":
            os.kill(s.pid, signal.SIGTERM)
    st.close()
    end = check_sequence(evs)
    assert end["status"] == "Error" and end["error"]["type"] == "Internal", show(end)
    assert end["http_status"] == 503 and "shutting down" in end["output"], show(end)
    assert s.wait_exit(timeout=15) == 0, s.stderr()[-3000:]
