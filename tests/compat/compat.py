#!/usr/bin/python3
"""snakebox compatibility suite (issue 11): real code, run through snakebox and through python3.

    /usr/bin/python3 tests/compat/compat.py             # the whole corpus (make compat)
    /usr/bin/python3 tests/compat/compat.py --subset    # the short subset (make compat-subset)
    /usr/bin/python3 tests/compat/compat.py --only cpython/test_os,pandas/10min
    /usr/bin/python3 tests/compat/compat.py --rejudge   # the last run against expected.toml

Every item of tests/compat/corpus.py is run twice, one item at a time:
  - through snakebox: POST /api/execute on a server this script starts from build/snakebox
    (or $SNAKEBOX_BIN) on loopback, with the item's timeout in the request;
  - through plain /usr/bin/python3, as an unprivileged user (nobody, when this script runs as
    root) in a fresh temporary working directory, with the environment the sandbox's runner
    gives a run (SANDBOX_ENV in src/proto.h, read from there), the script written to a file.
Then each item is "same", "differs-by-design" (every difference is listed, with its reason, in
tests/compat/expected.toml) or "differs". Scripts are compared on exit status, the exception
raised, and stdout with memory addresses and the working directory's path normalised; when the
stdouts differ, python3 runs the item again and, if its own two stdouts differ too, stdout is
not compared (the program prints something that changes between runs, such as timings).
Unittest modules are compared test by test; a test whose outcome changes between two python3
runs is flaky there and not compared either.

The report (markdown: counts per corpus, every item, then each difference) is printed at the end
and written to build/compat/report.md (build/compat/subset.md for --subset) after every item,
with its data beside it (report.json), from which --rejudge remakes it after expected.toml is
edited. Exit status: 0 when no item
differs, 1 when one does, 2 when the suite could not run (server does not start, a corpus
package is missing). Standard library only.
"""

import argparse
import collections
import datetime
import difflib
import fnmatch
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import corpus

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from serverproc import OPENBLAS_ENV, ServerProcess, ServerStartError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_FILE = Path(__file__).resolve().parent / "expected.toml"
BINARY = Path(os.environ.get("SNAKEBOX_BIN") or ROOT / "build" / "snakebox").resolve()
PYTHON = "/usr/bin/python3"
NATIVE_USER = "nobody"

START_TIMEOUT = 120
RESULT_PREFIX = "COMPAT-RESULT "
TEST_PREFIX = "COMPAT-TEST "

# The server of --subset runs with the project's defaults: the subset is the promise that this
# code behaves as under python3 on a server nobody tuned. Only what no run can observe is set:
# one run at a time and small pools (this machine's 2 cores are shared).
SERVER_ENV_SUBSET = {
    "MAX_CONCURRENCY": "1",
    "POOL_SIZE": "1",
    "LEAN_POOL_SIZE": "1",
}
# The full run raises the limits a run can hit to what the host gives plain python3 (about a
# gigabyte or more of memory, hundreds of threads, files of hundreds of MB, fds as `ulimit -n`,
# a long test module's output), so that a default that is merely small (issue 11, item 6) does
# not hide every other difference behind it. Those defaults are compared by the subset.
SERVER_ENV_FULL = dict(SERVER_ENV_SUBSET, **{
    "EXECUTION_TIMEOUT": "900",
    "MEMORY_LIMIT_MB": "4096",
    "MAX_PROCESSES": "1024",
    "TMP_SIZE_MB": "2048",
    "MAX_FILE_SIZE_MB": "2048",
    "MAX_OPEN_FILES": "1024",
    "MAX_OUTPUT_BYTES": str(64 * 1024 * 1024),
})

# Exceptions the answer's error.type names that are not the program's own exception.
NOT_RAISED = {"Timeout", "MemoryLimit", "OutputLimit", "SystemExit", "Signal", "MalformedReport"}
ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{6,16}")


def log(msg):
    print(f"[compat {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def runner_env():
    """SANDBOX_ENV of src/proto.h: the environment every sandboxed run gets (the zygote hands it
    to runner.py), read from the macro's string literals."""
    text = (ROOT / "src" / "proto.h").read_text()
    m = re.search(r"^#define SANDBOX_ENV((?:.*\\\n)*.*)$", text, re.M)
    if not m:
        raise SystemExit("compat: src/proto.h has no SANDBOX_ENV: update runner_env()")
    env = dict(entry.split("=", 1) for entry in re.findall(r'"([^"]*)"', m.group(1)))
    if "PATH" not in env:
        raise SystemExit(f"compat: SANDBOX_ENV read from src/proto.h makes no sense: {env}")
    return env


# --- the two sides ----------------------------------------------------------------------------

class Outcome:
    """What one side ("python3" or "snakebox") did with one item: status ("exit 0", "exit 1",
    "signal SIGKILL", "timeout", "memory limit", ...), the exception it raised (class name) or
    None, its stdout, its wall time in seconds, and a note for the report."""

    def __init__(self, name, status, raised, stdout, seconds, note=""):
        self.name, self.status, self.raised, self.stdout = name, status, raised, stdout
        self.seconds, self.note = seconds, note

    def result(self):
        """{"run": count, "outcomes": {test id: outcome}} of a unittest item's COMPAT-RESULT
        line (tests that passed are not listed), or None without one."""
        for line in reversed(self.stdout.splitlines()):
            if line.startswith(RESULT_PREFIX):
                return json.loads(line[len(RESULT_PREFIX):])
        return None

    def tests(self):
        result = self.result()
        return result["outcomes"] if result else None

    def last_test(self):
        """Where a unittest item that did not finish was: the last test it started."""
        started = [ln[len(TEST_PREFIX):] for ln in self.stdout.splitlines() if ln.startswith(TEST_PREFIX)]
        return f"; the last test started was {started[-1]}" if started else ""

    def summary(self):
        s = self.status + (f", raised {self.raised}" if self.raised else "")
        result = self.result()
        if result:
            counts = collections.Counter(result["outcomes"].values())
            s += f", {result['run']} tests" + "".join(f", {n} {k}" for k, n in sorted(counts.items()))
        return s + (f" ({self.note})" if self.note else "")


class Server(ServerProcess):
    """build/snakebox serve on loopback (tests/serverproc.py)."""

    def __init__(self, env):
        if not os.access(BINARY, os.X_OK):
            raise SystemExit(f"compat: {BINARY} is missing: run `make` first")
        super().__init__(BINARY, env, prefix="snakebox-compat-", passthrough=OPENBLAS_ENV)
        # Requests may not ask for more time than the server's EXECUTION_TIMEOUT (default 30).
        self.max_timeout = int(self.env.get("EXECUTION_TIMEOUT", "30"))

    def wait_ready(self):
        try:
            super().wait_ready(START_TIMEOUT)
        except ServerStartError as e:
            self.stop()
            raise SystemExit(f"compat: snakebox did not start: {e}")

    def run(self, item):
        body = json.dumps({"code": item.code, "timeout": item.timeout})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=item.timeout + 60)
        t0 = time.monotonic()
        try:
            conn.request("POST", "/api/execute", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        seconds = time.monotonic() - t0
        answer = json.loads(data)
        if resp.status != 200:
            return Outcome("snakebox", f"http {resp.status}", None, "", seconds, answer.get("output", "")[:200])
        error = answer.get("error") or {}
        kind = error.get("type")
        if kind == "Timeout":
            status = "timeout"
        elif kind == "MemoryLimit":
            status = "memory limit"
        elif kind == "OutputLimit":
            status = "output limit"
        elif answer.get("signal"):
            status = "signal " + answer["signal"]
        else:
            status = f"exit {answer.get('exit_code')}"
        raised = kind if kind and kind not in NOT_RAISED else None
        note = error.get("message", "")[:200] if status.endswith("limit") else ""
        return Outcome("snakebox", status, raised, answer.get("stdout", ""), seconds, note)


def native_raised(stderr):
    """The class name of the exception in python3's final traceback, or None."""
    lines = stderr.rstrip("\n").splitlines()
    if not any(ln.startswith("Traceback (most recent call last):") for ln in lines):
        return None
    m = re.match(r"^([A-Za-z_][\w.]*)(:|$)", lines[-1])
    return m.group(1).rsplit(".", 1)[-1] if m else None


class Native:
    """Plain /usr/bin/python3 as an unprivileged user: each run gets a fresh directory (its
    working directory, HOME and TMPDIR), the runner's environment and no stdin. One matplotlib
    cache is shared by all runs, as snakebox shares its font cache (CACHE_DIR)."""

    def __init__(self):
        self.as_root = os.geteuid() == 0
        self.base = Path(tempfile.mkdtemp(prefix="snakebox-compat-native-"))
        self.base.chmod(0o755)
        self.mplcache = self.base / "matplotlib"
        self.mplcache.mkdir()
        self._own(self.mplcache)
        self.env = runner_env()

    def _own(self, path):
        if self.as_root:
            shutil.chown(path, NATIVE_USER)

    def run(self, item):
        run_dir = Path(tempfile.mkdtemp(dir=self.base))
        run_dir.chmod(0o755)
        work, tmp = run_dir / "work", run_dir / "tmp"
        for d in (work, tmp):
            d.mkdir()
            self._own(d)
        script = run_dir / "main.py"
        script.write_text(item.code)
        script.chmod(0o644)
        env = dict(self.env, HOME=str(work), TMPDIR=str(tmp), MPLCONFIGDIR=str(self.mplcache))
        argv = [PYTHON, str(script)]
        if self.as_root:
            argv = ["/usr/sbin/runuser", "-u", NATIVE_USER, "--"] + argv
        t0 = time.monotonic()
        # Its own session, so that a timeout kills the whole process group it started; and the
        # signal state of a shell's foreground command, whatever ours is (a background job of a
        # non-interactive shell, `make compat &`, ignores SIGINT and SIGQUIT, and python3 then
        # installs no KeyboardInterrupt handler: test_threading's interrupt_main tests fail).
        proc = subprocess.Popen(argv, cwd=work, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                preexec_fn=_default_signals)
        try:
            out, err = proc.communicate(timeout=item.timeout)
            status = (f"exit {proc.returncode}" if proc.returncode >= 0
                      else "signal " + signal.Signals(-proc.returncode).name)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            status = "timeout"
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)  # the suite is being stopped
            proc.wait()
            raise
        seconds = time.monotonic() - t0
        stdout = out.decode("utf-8", "replace").replace(str(work), "/work")
        raised = native_raised(err.decode("utf-8", "replace")) if status == "exit 1" else None
        shutil.rmtree(run_dir, ignore_errors=True)
        return Outcome("python3", status, raised, stdout, seconds)

    def close(self):
        shutil.rmtree(self.base, ignore_errors=True)


# --- comparison -------------------------------------------------------------------------------

def normalise(stdout):
    return ADDRESS_RE.sub("0xADDR", stdout)


def differences(item, native, sandbox, native_again):
    """The list of differences between the two sides, each a (key, text) pair: key is what
    expected.toml may name (the item's id, or "<item id>::<test id>"). native_again() runs
    python3 once more, for the flakiness checks."""
    diffs = []
    if (native.status, native.raised) != (sandbox.status, sandbox.raised):
        diffs.append((item.id, f"python3: {native.summary()}; snakebox: {sandbox.summary()}"))
    if item.kind == "unittest":
        return diffs + test_differences(item, native, sandbox, native_again)
    if normalise(native.stdout) != normalise(sandbox.stdout):
        again = native_again()
        if normalise(again.stdout) != normalise(native.stdout):
            native.note = "stdout changes between python3 runs: not compared"
        else:
            diff = difflib.unified_diff(normalise(native.stdout).splitlines(),
                                        normalise(sandbox.stdout).splitlines(),
                                        "python3", "snakebox", n=1, lineterm="")
            diffs.append((item.id, "stdout differs:\n" + "\n".join(list(diff)[:40])))
    return diffs


def test_differences(item, native, sandbox, native_again):
    ours, theirs = native.tests(), sandbox.tests()
    if ours is None or theirs is None:
        return [(item.id, f"no test results from {side.name}" + side.last_test())
                for side in (native, sandbox) if side.tests() is None]
    if native.result()["run"] == 0:
        return [(item.id, "python3 ran no test: the item's selection (corpus.py) matches nothing")]
    changed = sorted(t for t in set(ours) | set(theirs) if ours.get(t, "ok") != theirs.get(t, "ok"))
    if changed:
        again = native_again().tests() or {}
        flaky = [t for t in changed if again.get(t, "ok") != ours.get(t, "ok")]
        if flaky:
            native.note = f"{len(flaky)} test(s) flaky under python3, not compared"
        changed = [t for t in changed if t not in flaky]
    why = {**native.result()["why"], **sandbox.result()["why"]}
    return [(f"{item.id}::{t}", f"{t}: python3 {ours.get(t, 'ok')}, snakebox {theirs.get(t, 'ok')}"
             + (f" ({why[t]})" if t in why else "")) for t in changed]


def _default_signals():
    """In the child before exec: every signal at its default action, none blocked."""
    for sig in range(1, signal.NSIG):
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def reason(key, expected):
    """Why a difference is by design: its own entry in expected.toml, its item's, or the first
    entry whose key is a pattern (fnmatch: "*", "?", "[...]") that matches it; or None."""
    why = expected.get(key) or expected.get(key.split("::")[0])
    if why:
        return why
    for pattern, why in expected.items():
        if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(key, pattern):
            return why
    return None


def verdict(diffs, expected):
    """"same", "differs-by-design" (every difference is in expected.toml) or "differs"."""
    if not diffs:
        return "same"
    return "differs-by-design" if all(reason(key, expected) for key, _ in diffs) else "differs"


# --- report -----------------------------------------------------------------------------------

def git_commit():
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def report(rows, expected, meta):
    """The markdown report: counts per corpus, every item, then each difference."""
    lines = [f"# snakebox compatibility report ({'subset' if meta['subset'] else 'full corpus'})", "",
             f"{meta['date']}, commit {meta['commit']}, python {meta['python']}; server env: "
             + " ".join(f"{k}={v}" for k, v in sorted(meta["server_env"].items())), "",
             "| corpus | items | same | differs-by-design | differs | skipped |",
             "| --- | --- | --- | --- | --- | --- |"]
    totals = [0] * 5
    for name in corpus.CORPORA:
        mine = [r for r in rows if r["id"].startswith(name + "/")]
        if not mine:
            continue
        counts = [len(mine)] + [sum(r["verdict"] == v for r in mine)
                                for v in ("same", "differs-by-design", "differs", "skipped")]
        totals = [a + b for a, b in zip(totals, counts)]
        lines.append(f"| {name} | " + " | ".join(map(str, counts)) + " |")
    lines += ["| **all** | " + " | ".join(f"**{n}**" for n in totals) + " |", "",
              "| item | verdict | python3 | snakebox | s (python3 / snakebox) |",
              "| --- | --- | --- | --- | --- |"]
    for r in rows:
        if r["verdict"] == "skipped":
            lines.append(f"| {r['id']} | skipped | {r['skip']} | | |")
            continue
        lines.append(f"| {r['id']} | {r['verdict']} | {r['python3']} | {r['snakebox']} | "
                     f"{r['seconds'][0]} / {r['seconds'][1]} |")
    details = [r for r in rows if r.get("diffs")]
    if details:
        lines += ["", "## Differences", ""]
    for r in details:
        lines.append(f"### {r['id']}: {r['verdict']}")
        lines.append("```")
        for key, text in r["diffs"]:
            why = reason(key, expected)
            lines.append(text + (f"    [by design: {why}]" if why else ""))
        lines.append("```")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subset", action="store_true", help="only corpus.SUBSET, default limits")
    parser.add_argument("--only", help="comma-separated item ids or corpus names")
    parser.add_argument("--out", help="report file (default build/compat/report.md or subset.md)")
    parser.add_argument("--rejudge", action="store_true",
                        help="run nothing: judge the last run (--out) again against expected.toml")
    args = parser.parse_args()

    expected = tomllib.loads(EXPECTED_FILE.read_text())["by_design"]
    out = Path(args.out) if args.out else ROOT / "build" / "compat" / ("subset.md" if args.subset else "report.md")
    if args.rejudge:
        return rejudge(out, expected)
    names = set(args.only.split(",")) if args.only else None
    wanted = corpus.SUBSET if args.subset else None
    items = []
    for name, make in corpus.CORPORA.items():
        if names and name not in names and not any(n.startswith(name + "/") for n in names):
            continue
        if wanted and not any(w.startswith(name + "/") for w in wanted):
            continue
        pkg = corpus.PACKAGES[name]
        if subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True,
                          text=True).stdout != "install ok installed":
            print(f"compat: the Debian package {pkg} is missing: run scripts/install-deps compat",
                  file=sys.stderr)
            return 2
        items += [it for it in make()
                  if (not names or name in names or it.id in names) and (not wanted or it.id in wanted)]

    # SIGTERM (a CI's stop, or kill) ends the suite through the same clean-up as Ctrl-C: the
    # server and the native run in flight are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    server_env = SERVER_ENV_SUBSET if args.subset else SERVER_ENV_FULL
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": git_commit(), "python": sys.version.split()[0], "server_env": server_env,
            "subset": args.subset}
    server = Server(server_env)
    native = Native()
    rows = []
    try:
        server.wait_ready()
        log(f"server pid {server.proc.pid} on port {server.port}; {len(items)} items; report: {out}")
        for item in items:
            if item.skip:
                rows.append({"id": item.id, "verdict": "skipped", "skip": item.skip})
                continue
            item.timeout = min(item.timeout, server.max_timeout)
            log(f"{item.id}: python3")
            n = native.run(item)
            log(f"{item.id}: snakebox")
            s = server.run(item)
            diffs = differences(item, n, s, lambda: native.run(item))
            v = verdict(diffs, expected)
            rows.append({"id": item.id, "verdict": v, "diffs": diffs,
                         "python3": n.summary(), "snakebox": s.summary(),
                         "seconds": [round(n.seconds, 1), round(s.seconds, 1)]})
            log(f"{item.id}: {v} ({n.seconds:.1f} s / {s.seconds:.1f} s)")
            # Written after every item, so that a run cut short still shows what it found.
            save(out, rows, meta, expected)
    finally:
        server.stop()
        native.close()

    return finish(out, rows, meta, expected)


def save(out, rows, meta, expected):
    """Writes the report and, beside it, its data (.json), from which --rejudge remakes it."""
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    text = report(rows, expected, meta)
    out.write_text(text)
    return text


def finish(out, rows, meta, expected):
    print(save(out, rows, meta, expected))
    print(f"compat: report written to {out}")
    return 1 if any(r["verdict"] == "differs" for r in rows) else 0


def rejudge(out, expected):
    """Judges a finished run again against expected.toml as it is now (after reviewing a
    difference), without running anything."""
    data = json.loads(out.with_suffix(".json").read_text())
    for r in data["rows"]:
        if r["verdict"] != "skipped":
            r["verdict"] = verdict([tuple(d) for d in r["diffs"]], expected)
    return finish(out, data["rows"], data["meta"], expected)

if __name__ == "__main__":
    sys.exit(main())
