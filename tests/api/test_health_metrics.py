"""GET /health and GET /metrics (issue 5).

/health: 200 {"status": "ok", "pool": {...}, "zygote": "up", "limits": {...}, "isolation": {...}},
HEAD allowed, other methods 405 with Allow: GET.

/metrics: the Prometheus text exposition format 0.0.4. Every scrape is checked line by line
against the format's grammar by `parse_exposition` below (which has tests of its own, run without
a server, so that a validator that accepts anything is caught), and the counters must move by
exactly what the test did.
"""

import math
import os
import re
import threading
import time

import pytest

from conftest import (MARK_PRELUDE, TEST_LIMITS, code, host_processes, new_token, post_json,
                      request, run, show)


# --- a validator of the text exposition format 0.0.4 ---------------------------------------------

METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
FLOAT_RE = re.compile(r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[Ii]nf(?:inity)?|NaN)\Z")
TIMESTAMP_RE = re.compile(r"-?\d+\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class ExpositionError(AssertionError):
    pass


def _fail(lineno, line, why):
    raise ExpositionError(f"line {lineno}: {why}: {line!r}")


def _parse_float(tok, lineno, line):
    if not FLOAT_RE.match(tok):
        _fail(lineno, line, f"{tok!r} is not a float value")
    return float(tok)


def _unescape_help(text, lineno, line):
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            nxt = text[i + 1:i + 2]
            if nxt == "\\":
                out.append("\\")
            elif nxt == "n":
                out.append("\n")
            else:
                _fail(lineno, line, f"invalid escape \\{nxt} in a HELP text")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _parse_labels(s, i, lineno, line):
    """Parses from s[i] == '{' to its '}'; returns (labels, index after '}')."""
    assert s[i] == "{"
    i += 1
    labels = {}
    while True:
        while i < len(s) and s[i] in " \t":
            i += 1
        if i >= len(s):
            _fail(lineno, line, "unterminated label set")
        if s[i] == "}":
            return labels, i + 1
        m = LABEL_NAME_RE.match(s, i)
        if not m:
            _fail(lineno, line, f"invalid label name at column {i}")
        name = m.group(0)
        if name.startswith("__"):
            _fail(lineno, line, f"label name {name!r} is reserved (leading __)")
        if name in labels:
            _fail(lineno, line, f"label {name!r} appears twice")
        i = m.end()
        while i < len(s) and s[i] in " \t":
            i += 1
        if s[i:i + 1] != "=":
            _fail(lineno, line, f"expected '=' after label name {name!r}")
        i += 1
        while i < len(s) and s[i] in " \t":
            i += 1
        if s[i:i + 1] != '"':
            _fail(lineno, line, f"label value of {name!r} is not quoted")
        i += 1
        value = []
        while True:
            if i >= len(s):
                _fail(lineno, line, f"unterminated label value of {name!r}")
            ch = s[i]
            if ch == '"':
                i += 1
                break
            if ch == "\\":
                nxt = s[i + 1:i + 2]
                if nxt == "\\":
                    value.append("\\")
                elif nxt == '"':
                    value.append('"')
                elif nxt == "n":
                    value.append("\n")
                else:
                    _fail(lineno, line, f"invalid escape \\{nxt} in the value of {name!r}")
                i += 2
                continue
            value.append(ch)
            i += 1
        labels[name] = "".join(value)
        while i < len(s) and s[i] in " \t":
            i += 1
        if s[i:i + 1] == ",":
            i += 1
        elif s[i:i + 1] != "}":
            _fail(lineno, line, "expected ',' or '}' after a label")


def _family_of(name, types):
    """The declared family a sample name belongs to, or None."""
    if name in types and types[name] not in ("histogram", "summary"):
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            base = name[:-len(suffix)]
            t = types.get(base)
            if t == "histogram" or (t == "summary" and suffix != "_bucket"):
                return base
    if name in types and types[name] == "summary":
        return name
    return None


def parse_exposition(text):
    """Validates `text` against the Prometheus text format 0.0.4 and returns
    {family: {"type": t, "help": str|None, "samples": [(name, labels, value)]}}.
    Raises ExpositionError on the first violation."""
    if not text.endswith("\n"):
        raise ExpositionError("the exposition does not end with a line feed")
    types, helps, families = {}, {}, {}
    seen_series = set()
    finished = set()      # families whose samples are over (another family started after them)
    current = None
    for lineno, line in enumerate(text[:-1].split("\n"), 1):
        if line.strip() == "":
            continue
        if line.startswith("#"):
            parts = line[1:].lstrip(" \t").split(None, 2) if line[1:2] in (" ", "\t") else []
            if len(parts) >= 2 and parts[0] in ("HELP", "TYPE"):
                kind, name = parts[0], parts[1]
                if not METRIC_NAME_RE.fullmatch(name):
                    _fail(lineno, line, f"invalid metric name {name!r} in {kind}")
                rest = parts[2] if len(parts) > 2 else ""
                if kind == "HELP":
                    if name in helps:
                        _fail(lineno, line, f"second HELP for {name}")
                    helps[name] = _unescape_help(rest, lineno, line)
                    families.setdefault(name, {"type": None, "help": None, "samples": []})
                    families[name]["help"] = helps[name]
                else:
                    if name in types:
                        _fail(lineno, line, f"second TYPE for {name}")
                    if rest.strip() not in TYPES or rest != rest.strip():
                        _fail(lineno, line, f"unknown metric type {rest!r}")
                    if name in families and families[name]["samples"]:
                        _fail(lineno, line, f"TYPE for {name} after its samples")
                    types[name] = rest
                    families.setdefault(name, {"type": None, "help": None, "samples": []})
                    families[name]["type"] = rest
            continue  # any other comment is ignored by the format
        m = METRIC_NAME_RE.match(line)
        if not m:
            _fail(lineno, line, "a sample line must start with a metric name")
        name = m.group(0)
        i = m.end()
        labels = {}
        if line[i:i + 1] == "{":
            labels, i = _parse_labels(line, i, lineno, line)
        if line[i:i + 1] not in (" ", "\t"):
            _fail(lineno, line, "expected blanks between the metric and its value")
        tokens = line[i:].split()
        if len(tokens) not in (1, 2):
            _fail(lineno, line, "expected a value and an optional timestamp")
        value = _parse_float(tokens[0], lineno, line)
        if len(tokens) == 2 and not TIMESTAMP_RE.match(tokens[1]):
            _fail(lineno, line, f"timestamp {tokens[1]!r} is not an integer")
        family = _family_of(name, types)
        if family is None:
            _fail(lineno, line, f"sample {name} has no TYPE declared before it")
        if family in finished:
            _fail(lineno, line, f"samples of {family} are not together")
        if current is not None and current != family:
            finished.add(current)
        current = family
        t = types[family]
        key = (name, tuple(sorted(labels.items())))
        if key in seen_series:
            _fail(lineno, line, "the same series appears twice")
        seen_series.add(key)
        if t == "histogram":
            if name == family:
                _fail(lineno, line, f"histogram {family} has a sample without _bucket/_sum/_count")
            if name.endswith("_bucket"):
                if "le" not in labels:
                    _fail(lineno, line, "histogram bucket without an le label")
                _parse_float(labels["le"], lineno, line)
            elif "le" in labels:
                _fail(lineno, line, "le label outside a bucket")
        if t == "summary" and name == family and "quantile" not in labels:
            _fail(lineno, line, "summary sample without a quantile label")
        if t == "counter" or name.endswith(("_count", "_bucket")) and t in ("histogram", "summary"):
            if math.isnan(value) or value < 0:
                _fail(lineno, line, "a counter is negative or NaN")
        families[family]["samples"].append((name, labels, value))

    for family, info in families.items():
        if info["type"] == "histogram":
            _check_histogram(family, info["samples"])
    return families


def _check_histogram(family, samples):
    groups = {}
    for name, labels, value in samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if name == family + "_bucket":
            g["buckets"].append((float(labels["le"]), value))
        elif name == family + "_sum":
            g["sum"] = value
        else:
            g["count"] = value
    if not groups:
        raise ExpositionError(f"histogram {family} has no samples")
    for rest, g in groups.items():
        where = f"histogram {family}{dict(rest) or ''}"
        if g["count"] is None or g["sum"] is None:
            raise ExpositionError(f"{where} lacks _sum or _count")
        les = [le for le, _ in g["buckets"]]
        if les != sorted(les) or len(set(les)) != len(les):
            raise ExpositionError(f"{where}: buckets not in increasing le order: {les}")
        if not les or les[-1] != math.inf:
            raise ExpositionError(f"{where} has no le=\"+Inf\" bucket")
        counts = [c for _, c in g["buckets"]]
        if any(b < a for a, b in zip(counts, counts[1:])):
            raise ExpositionError(f"{where}: bucket counts are not cumulative: {counts}")
        if counts[-1] != g["count"]:
            raise ExpositionError(f"{where}: +Inf bucket {counts[-1]} != _count {g['count']}")


def sample(families, name, **labels):
    """The value of the one series `name{labels}` (labels given must match exactly)."""
    found = [v for fam in families.values() for n, l, v in fam["samples"] if n == name and l == labels]
    assert len(found) == 1, f"expected one series {name}{labels}, found {len(found)}"
    return found[0]


def scrape(server, headers=None):
    r = request(server, "GET", "/metrics", headers=headers, timeout=30)
    assert r.status == 200, show(r)
    ctype = r.headers.get("content-type", "")
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, show(r)
    return parse_exposition(r.body.decode("utf-8"))


def wait_for(server, predicate, timeout=5):
    """Scrapes until predicate(families) holds (counters move when a request completes, which
    may be a moment after its answer was read); returns the last scrape."""
    deadline = time.monotonic() + timeout
    fams = scrape(server)
    while not predicate(fams) and time.monotonic() < deadline:
        time.sleep(0.05)
        fams = scrape(server)
    return fams


# --- the validator itself ------------------------------------------------------------------------

GOOD = (
    '# HELP http_total Requests, with a \\\\ and a \\n in the help.\n'
    '# TYPE http_total counter\n'
    'http_total{path="/a",code="200"} 3\n'
    'http_total{path="quote \\" back \\\\ nl \\n",code="500",} 1.5e3 1700000000000\n'
    '# a plain comment\n'
    '\n'
    '# TYPE temp gauge\n'
    'temp NaN\n'
    '# TYPE lat histogram\n'
    'lat_bucket{le="0.1"} 1\n'
    'lat_bucket{le="1"} 2\n'
    'lat_bucket{le="+Inf"} 2\n'
    'lat_sum 0.7\n'
    'lat_count 2\n'
    '# TYPE neg gauge\n'
    'neg -Inf\n'
)

BAD = {
    "no final newline": GOOD.rstrip("\n"),
    "no TYPE": "foo 1\n",
    "TYPE after sample": "# TYPE a gauge\na 1\nb 2\n# TYPE b gauge\n",
    "bad metric name": "# TYPE 1abc gauge\n1abc 1\n",
    "bad label name": '# TYPE a gauge\na{1x="v"} 1\n',
    "reserved label": '# TYPE a gauge\na{__x="v"} 1\n',
    "unquoted label value": "# TYPE a gauge\na{x=v} 1\n",
    "bad escape": '# TYPE a gauge\na{x="\\t"} 1\n',
    "unterminated value": '# TYPE a gauge\na{x="v} 1\n',
    "bad float": "# TYPE a gauge\na 1,5\n",
    "missing value": "# TYPE a gauge\na\n",
    "bad timestamp": "# TYPE a gauge\na 1 1.5\n",
    "extra token": "# TYPE a gauge\na 1 2 3\n",
    "unknown type": "# TYPE a thing\na 1\n",
    "duplicate TYPE": "# TYPE a gauge\n# TYPE a gauge\na 1\n",
    "duplicate series": '# TYPE a gauge\na{x="1"} 1\na{x="1"} 2\n',
    "family split": "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na 2\n",
    "negative counter": "# TYPE a counter\na -1\n",
    "no +Inf bucket": '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
    "buckets not cumulative": ('# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="2"} 1\n'
                               'h_bucket{le="+Inf"} 2\nh_sum 1\nh_count 2\n'),
    "+Inf differs from count": ('# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\n'
                                'h_sum 1\nh_count 2\n'),
    "bucket without le": '# TYPE h histogram\nh_bucket 1\nh_sum 1\nh_count 1\n',
    "histogram without count": '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_sum 1\n',
    "unsorted buckets": ('# TYPE h histogram\nh_bucket{le="2"} 1\nh_bucket{le="1"} 1\n'
                         'h_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'),
    "bad HELP escape": "# HELP a x\\y\n# TYPE a gauge\na 1\n",
}


def test_validator_accepts_a_valid_exposition():
    fams = parse_exposition(GOOD)
    assert sample(fams, "http_total", path='quote " back \\ nl \n', code="500") == 1500.0
    assert math.isnan(sample(fams, "temp"))
    assert sample(fams, "lat_count") == 2
    assert fams["http_total"]["help"] == "Requests, with a \\ and a \n in the help."


@pytest.mark.parametrize("name", sorted(BAD))
def test_validator_rejects_invalid_expositions(name):
    with pytest.raises(ExpositionError):
        parse_exposition(BAD[name])


# --- /health -------------------------------------------------------------------------------------

# "sessions": {"active", "busy", "max"} since issue 13.
HEALTH_KEYS = {"status", "pool", "zygote", "limits", "isolation", "sessions", "ready", "draining", "node"}
POOL_KEYS = {"ready", "busy", "queued", "starting"}
LIMIT_KEYS = {"timeout_sec", "memory_mb", "max_processes", "tmp_size_mb", "max_output_bytes",
              "max_concurrency", "cpu_limit_percent", "memory_bound_mb"}


def get_health(server, headers=None):
    r = request(server, "GET", "/health", headers=headers, timeout=30)
    assert r.json is not None, show(r)
    return r


def test_health_ok_with_pool_zygote_limits_and_isolation(server):
    r = get_health(server)
    assert r.status == 200, show(r)
    assert r.headers.get("content-type", "").startswith("application/json"), show(r)
    h = r.json
    assert set(h) == HEALTH_KEYS, show(h)
    assert h["status"] == "ok", show(h)
    assert h["zygote"] == "up", show(h)
    assert set(h["pool"]) == POOL_KEYS, show(h)
    for k in POOL_KEYS:
        assert isinstance(h["pool"][k], int) and not isinstance(h["pool"][k], bool) and h["pool"][k] >= 0, show(h)
    assert set(h["limits"]) == LIMIT_KEYS, show(h)
    assert h["limits"]["timeout_sec"] == int(TEST_LIMITS["EXECUTION_TIMEOUT"]), show(h)
    assert h["limits"]["memory_mb"] == int(TEST_LIMITS["MEMORY_LIMIT_MB"]), show(h)
    assert h["limits"]["max_processes"] == int(TEST_LIMITS["MAX_PROCESSES"]), show(h)
    assert h["limits"]["tmp_size_mb"] == int(TEST_LIMITS["TMP_SIZE_MB"]), show(h)
    assert h["limits"]["max_output_bytes"] == int(TEST_LIMITS["MAX_OUTPUT_BYTES"]), show(h)
    assert h["limits"]["max_concurrency"] == 16, show(h)  # the default
    iso = h["isolation"]
    assert iso["memory_limit"] in ("cgroup v1", "cgroup v2", "watchdog + rlimit"), show(h)
    assert iso["cpu_limit"] in ("cgroup v1", "cgroup v2", "none (RLIMIT_CPU only)"), show(h)
    assert h["limits"]["cpu_limit_percent"] == 100, show(h)  # the default
    # The bound stated is what holds: the limit itself with a memory cgroup; without one, what
    # RLIMIT_AS lets MAX_PROCESSES processes hold between two samples.
    mem, procs = int(TEST_LIMITS["MEMORY_LIMIT_MB"]), int(TEST_LIMITS["MAX_PROCESSES"])
    # (RLIMIT_AS is the memory limit plus 2048 MB of headroom for what is address space only.)
    bound = mem if iso["memory_limit"].startswith("cgroup") else (mem + 2048) * procs
    assert h["limits"]["memory_bound_mb"] == bound, show(h)
    assert isinstance(iso["pids_cgroup"], bool), show(h)
    assert iso["user_namespace"] is True, show(h)
    assert iso["seccomp"] is True, show(h)
    for k, v in iso.items():
        if k not in ("memory_limit", "cpu_limit"):
            assert isinstance(v, bool), show(h)


def _own_cgroup_dirs(pid, root):
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        found += [os.path.join(dirpath, d) for d in dirnames if d == f"snakebox-{pid}"]
    return found


def test_health_isolation_matches_the_cgroups_the_server_made(server):
    """What /health reports is what the server did on the host: a cgroup v1 memory limit means
    a memory cgroup snakebox-<pid> exists, and a pids cgroup one means a pids cgroup exists."""
    iso = get_health(server).json["isolation"]
    mem_v1 = _own_cgroup_dirs(server.pid, "/sys/fs/cgroup/memory")
    pids_v1 = _own_cgroup_dirs(server.pid, "/sys/fs/cgroup/pids")
    if mem_v1 or iso["memory_limit"] == "cgroup v1":
        assert iso["memory_limit"] == "cgroup v1" and mem_v1, (iso, mem_v1)
    if iso["memory_limit"] == "watchdog + rlimit":
        assert not mem_v1, (iso, mem_v1)
    if pids_v1:
        assert iso["pids_cgroup"] is True, (iso, pids_v1)
    if iso["pids_cgroup"] and iso["memory_limit"] != "cgroup v2":
        assert pids_v1, (iso, pids_v1)


def test_head_health_is_allowed(server):
    r = request(server, "HEAD", "/health", timeout=30)
    assert r.status == 200, show(r)
    assert r.body == b"", show(r)


@pytest.mark.parametrize("path", ["/health", "/metrics"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405_with_allow_get(server, path, method):
    r = request(server, method, path, body=b"{}", headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status == 405, show(r)
    assert r.headers.get("allow") == "GET", show(r)
    assert r.json and r.json.get("status") == "Error", show(r)


def test_health_and_metrics_show_a_run_in_progress_as_busy(server):
    token = new_token()
    src = MARK_PRELUDE + code(f'''
        mark({token!r})
        import time
        time.sleep(2)
        print("done")
    ''')
    results = []
    t = threading.Thread(target=lambda: results.append(run(server, src, timeout=30)))
    t.start()
    try:
        deadline = time.monotonic() + 10
        while not host_processes(token):
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        h = get_health(server).json
        fams = scrape(server)
        assert h["pool"]["busy"] >= 1, show(h)
        assert sample(fams, "snakebox_pool_sandboxes", state="busy") >= 1
    finally:
        t.join(timeout=30)
    assert results and results[0][0] == 200 and results[0][1]["stdout"] == "done\n", show(results)
    deadline = time.monotonic() + 5
    while get_health(server).json["pool"]["busy"] != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert get_health(server).json["pool"]["busy"] == 0


def test_queue_is_reported_and_a_queue_timeout_is_counted(start_server):
    """One run at a time: a second request waits in the queue (health and metrics show it), then
    gives up after QUEUE_TIMEOUT with a 503 that is counted as outcome queue_timeout."""
    s = start_server({"MAX_CONCURRENCY": "1", "QUEUE_TIMEOUT": "2"})
    h = get_health(s).json
    assert h["limits"]["max_concurrency"] == 1, show(h)
    before = scrape(s)
    token = new_token()
    first = MARK_PRELUDE + code(f'''
        mark({token!r})
        import time
        time.sleep(4)
        print("first")
    ''')
    results = {}
    t1 = threading.Thread(target=lambda: results.__setitem__("first", run(s, first, timeout=30)))
    t1.start()
    try:
        deadline = time.monotonic() + 10
        while not host_processes(token):
            assert time.monotonic() < deadline, "the first run never started"
            time.sleep(0.05)
        t2 = threading.Thread(target=lambda: results.__setitem__("second", run(s, "print(2)", timeout=30)))
        t2.start()
        seen_health = seen_metric = False
        deadline = time.monotonic() + 1.8
        while not (seen_health and seen_metric) and time.monotonic() < deadline:
            seen_health = seen_health or get_health(s).json["pool"]["queued"] == 1
            seen_metric = seen_metric or sample(scrape(s), "snakebox_queue_length") == 1
            time.sleep(0.05)
        t2.join(timeout=30)
    finally:
        t1.join(timeout=30)
    assert seen_health, "/health never showed pool.queued == 1 while a request waited"
    assert seen_metric, "snakebox_queue_length never showed 1 while a request waited"
    assert results["second"][0] == 503, show(results)
    assert results["first"][0] == 200 and results["first"][1]["stdout"] == "first\n", show(results)
    after = wait_for(s, lambda f: sample(f, "snakebox_runs_total", outcome="success")
                     - sample(before, "snakebox_runs_total", outcome="success") >= 1)
    d = lambda name, **l: sample(after, name, **l) - sample(before, name, **l)
    assert d("snakebox_runs_total", outcome="queue_timeout") == 1
    assert d("snakebox_runs_total", outcome="success") == 1
    assert d("snakebox_queue_wait_seconds_count") == 2
    assert d("snakebox_queue_wait_seconds_sum") >= 1.9, "the queue timeout waited 2 s"
    assert d("snakebox_http_requests_total", endpoint="/api/execute", code="503") == 1
    assert sample(after, "snakebox_queue_length") == 0


# --- /metrics ------------------------------------------------------------------------------------

EXPECTED_TYPES = {
    "snakebox_http_requests_total": "counter",
    "snakebox_runs_total": "counter",
    "snakebox_run_duration_seconds": "histogram",
    "snakebox_queue_wait_seconds": "histogram",
    "snakebox_queue_length": "gauge",
    "snakebox_pool_sandboxes": "gauge",
    "snakebox_zygote_up": "gauge",
    "snakebox_zygote_restarts_total": "counter",
    "snakebox_sandboxes_created_total": "counter",
}
OUTCOMES = ("success", "error", "timeout", "memory_limit", "output_limit", "aborted", "queue_timeout",
            "shutdown", "internal")


def test_metrics_follow_the_exposition_format_and_declare_every_family(server):
    run(server, 'print("warm")')  # so that every histogram has a sample
    fams = scrape(server)
    for name, t in EXPECTED_TYPES.items():
        assert name in fams and fams[name]["type"] == t, f"{name}: {fams.get(name)}"
        assert fams[name]["help"], f"{name} has no HELP"
        assert fams[name]["samples"], f"{name} has no samples"
    for outcome in OUTCOMES:
        sample(fams, "snakebox_runs_total", outcome=outcome)
    for state in ("ready", "busy", "starting"):
        sample(fams, "snakebox_pool_sandboxes", state=state)
    assert sample(fams, "snakebox_zygote_up") == 1
    for name in ("snakebox_http_requests_total",):
        for _, labels, _ in fams[name]["samples"]:
            assert set(labels) == {"endpoint", "code"}, labels
    assert sample(fams, "snakebox_run_duration_seconds_count") >= 1
    # The /metrics request that produced this scrape is counted (once) when it has completed.
    key = dict(endpoint="/metrics", code="200")
    n = sample(fams, "snakebox_http_requests_total", **key)
    deadline = time.monotonic() + 5
    for j in range(1, 1000):
        v = sample(scrape(server), "snakebox_http_requests_total", **key)
        # Scrape j can count the first scrape and the j - 1 scrapes before it, not more.
        assert v <= n + j, f"/metrics 200 went from {n} to {v} after {j} more scrapes"
        if v > n or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert v > n, "the /metrics request itself was never counted"


def test_run_counters_and_histograms_move_by_what_ran(server):
    before = scrape(server)
    s1, b1 = run(server, 'print("ok")')
    assert s1 == 200 and b1["status"] == "Success", show(b1)
    s2, b2 = run(server, 'raise ValueError("boom")')
    assert s2 == 200 and b2["status"] == "Error", show(b2)
    s3, b3 = run_with_timeout(server)
    assert s3 == 200 and b3["error"]["type"] == "Timeout", show(b3)
    bad = request(server, "POST", "/api/execute", body=b"{not json",
                  headers={"Content-Type": "application/json"}, timeout=30)
    assert bad.status == 400, show(bad)

    def moved(f):
        return (sample(f, "snakebox_http_requests_total", endpoint="/api/execute", code="400")
                > sample(before, "snakebox_http_requests_total", endpoint="/api/execute", code="400")
                and sample(f, "snakebox_run_duration_seconds_count")
                >= sample(before, "snakebox_run_duration_seconds_count") + 3)

    after = wait_for(server, moved)
    d = lambda name, **l: sample(after, name, **l) - sample(before, name, **l)
    assert d("snakebox_runs_total", outcome="success") == 1
    assert d("snakebox_runs_total", outcome="error") == 1
    assert d("snakebox_runs_total", outcome="timeout") == 1
    for other in ("memory_limit", "output_limit", "aborted", "queue_timeout", "shutdown", "internal"):
        assert d("snakebox_runs_total", outcome=other) == 0, other
    assert d("snakebox_http_requests_total", endpoint="/api/execute", code="200") == 3
    assert d("snakebox_http_requests_total", endpoint="/api/execute", code="400") == 1
    assert d("snakebox_run_duration_seconds_count") == 3
    assert d("snakebox_queue_wait_seconds_count") == 3
    # The timeout run lasted at least 1 s: its sum grew by that and it is above the 0.5 s bucket.
    assert d("snakebox_run_duration_seconds_sum") >= 0.9
    assert (d("snakebox_run_duration_seconds_bucket", le="+Inf")
            - d("snakebox_run_duration_seconds_bucket", le="0.5")) >= 1
    assert sample(after, "snakebox_sandboxes_created_total") >= sample(before, "snakebox_sandboxes_created_total") + 3


def run_with_timeout(server):
    r = post_json(server, {"code": "import time\ntime.sleep(10)", "timeout": 1}, timeout=30)
    assert r.json is not None, show(r)
    return r.status, r.json


def test_output_and_memory_limit_outcomes_are_counted(server):
    before = scrape(server)
    s1, b1 = run(server, "import sys\nsys.stdout.write('x' * 200000)\n")
    assert s1 == 200 and b1["error"] and b1["error"]["type"] == "OutputLimit", show(b1)
    s2, b2 = run(server, "x = b'y' * (600 * 1024 * 1024)\nprint(len(x))\n")
    assert s2 == 200 and b2["error"] and b2["error"]["type"] in ("MemoryLimit", "MemoryError"), show(b2)
    mem_outcome = "memory_limit" if b2["error"]["type"] == "MemoryLimit" else "error"
    after = wait_for(server, lambda f: sample(f, "snakebox_run_duration_seconds_count")
                     >= sample(before, "snakebox_run_duration_seconds_count") + 2)
    d = lambda name, **l: sample(after, name, **l) - sample(before, name, **l)
    assert d("snakebox_runs_total", outcome="output_limit") == 1
    assert d("snakebox_runs_total", outcome=mem_outcome) == 1
    assert d("snakebox_runs_total", outcome="success") == 0


def test_health_and_metrics_requests_are_counted_by_endpoint(server):
    before = scrape(server)
    for _ in range(3):
        assert get_health(server).status == 200
    r = request(server, "POST", "/health", timeout=30)
    assert r.status == 405
    after = wait_for(server, lambda f: sample(f, "snakebox_http_requests_total", endpoint="/health", code="405")
                     > sample(before, "snakebox_http_requests_total", endpoint="/health", code="405"))
    d = lambda name, **l: sample(after, name, **l) - sample(before, name, **l)
    assert d("snakebox_http_requests_total", endpoint="/health", code="200") == 3
    assert d("snakebox_http_requests_total", endpoint="/health", code="405") == 1
    assert d("snakebox_http_requests_total", endpoint="/api/execute", code="200") == 0
    # Only the scrape `before` itself (and those wait_for made) counted for /metrics.
    assert d("snakebox_http_requests_total", endpoint="/metrics", code="200") >= 1
