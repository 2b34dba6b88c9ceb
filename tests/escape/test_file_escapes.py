"""Attacks through files in and out (issue 4): an uploaded file name that tries to leave the
working directory, and returned files that are symlinks to /etc/passwd, /proc/1/environ or the
server's files, FIFOs that would block a reader, files swapped for symlinks while they are
collected. A naive server joins the name to the directory and follows whatever it finds."""

import base64
import json
import os

import pytest

from conftest import (MARK_PRELUDE, ROOT, assert_healthy, assert_no_processes_left, code,
                      new_token, post_json, show)


def execute(server, obj, http_timeout=None):
    r = post_json(server, obj, timeout=http_timeout)
    assert r.json is not None, f"answer is not valid JSON: {r!r}"
    return r.status, r.json, r.body


def returned_names(body):
    files = body.get("files")
    assert isinstance(files, list), show(body)
    return [f.get("name") for f in files]


def decoded_contents(body):
    """Every returned file's bytes (base64 decoded where needed)."""
    out = []
    for f in body.get("files") or []:
        if "content" not in f:
            continue
        if f.get("encoding") == "base64":
            out.append(base64.b64decode(f["content"]))
        else:
            out.append(f["content"].encode("utf-8"))
    return out


def host_passwd_lines():
    with open("/etc/passwd") as f:
        return [line for line in f.read().splitlines() if len(line) >= 12]


def sandbox_passwd_lines(server):
    status, body, _ = execute(server, {"code": "print(open('/etc/passwd').read())"})
    assert status == 200 and body["status"] == "Success", show(body)
    return [line for line in body["stdout"].splitlines() if len(line) >= 8]


def assert_no_leak(server, raw, body, secrets_lines):
    """None of the given lines appears in the raw answer nor in any decoded returned file."""
    blobs = [raw.decode("utf-8", "replace")] + [b.decode("utf-8", "replace")
                                                 for b in decoded_contents(body)]
    for line in secrets_lines:
        for blob in blobs:
            assert line not in blob, f"{line!r} leaked into the answer"
    for blob in blobs:
        assert server.secret not in blob, "the server's secret leaked into the answer"
        assert "root:x:0:0" not in blob, "an /etc/passwd line leaked into the answer"


# --- names that leave the working directory ------------------------------------------------------

@pytest.mark.parametrize("template", [
    "../{t}", "a/../../{t}", "../../../../../../tmp/{t}", "/tmp/{t}", "/work/../tmp/{t}",
    "/work/../etc/passwd", "{root}/{t}", "{workdir}/{t}", "sub/../../../{root}/{t}",
], ids=["parent", "down-and-up", "many-parents", "absolute-tmp", "work-then-up", "etc-passwd",
        "repo-root", "server-workdir", "relative-to-repo"])
def test_upload_name_that_leaves_the_working_directory_is_refused(server, template):
    token = new_token()
    name = template.format(t=token, root=str(ROOT).lstrip("/") if template.startswith("sub/")
                           else str(ROOT), workdir=str(server.workdir))
    host_targets = [f"/tmp/{token}", os.path.join(str(ROOT), token),
                    os.path.join(str(server.workdir), token), os.path.join(str(ROOT.parent), token)]
    try:
        status, body, _ = execute(server, {
            "code": 'print("RAN-THE-CODE")\n',
            "files": [{"name": name, "content": "escaped " + token}]})
        assert status == 400, show((status, body))
        assert body.get("status") == "Error", show(body)
        assert "RAN-THE-CODE" not in json.dumps(body), show(body)
        leaked = [p for p in host_targets if os.path.lexists(p)]
        assert not leaked, f"the upload was written on the host: {leaked}"
        with open("/etc/passwd") as f:
            assert token not in f.read(), "the upload overwrote the host's /etc/passwd"
    finally:
        for p in host_targets:
            if os.path.lexists(p) and not os.path.isdir(p):
                os.unlink(p)
    assert_healthy(server)


def test_upload_cannot_overwrite_files_of_the_sandbox_root(server):
    # Whatever names are accepted land in /work: a run afterwards sees /etc/passwd intact.
    before = sandbox_passwd_lines(server)
    for name in ("../etc/passwd", "/etc/passwd", "../usr/lib/python3/x.py", "../../etc/passwd"):
        status, body, _ = execute(server, {"code": "print(1)",
                                           "files": [{"name": name, "content": "pwned"}]})
        assert status == 400, show((name, status, body))
    assert sandbox_passwd_lines(server) == before


# --- returned symlinks and special files ---------------------------------------------------------

def test_returned_symlinks_are_not_followed(server):
    passwd_in_sandbox = sandbox_passwd_lines(server)
    assert passwd_in_sandbox, "the sandbox has an empty /etc/passwd: nothing to look for"
    readme = str(ROOT / "README.md")
    status, body, raw = execute(server, {
        "stdin": json.dumps({"readme": readme}),
        "code": code('''
            import json, os, sys
            readme = json.load(sys.stdin)["readme"]
            os.symlink("/etc/passwd", "passwd_link")
            os.symlink("/proc/1/environ", "environ_link")
            os.symlink("/proc/self/environ", "self_environ_link")
            os.symlink(readme, "readme_link")
            os.symlink("../etc/passwd", "relative_link")
            os.symlink("/etc", "etc_dir")
            os.symlink("/proc/1", "proc_dir")
            os.symlink("ok.txt", "alias_link")
            os.symlink("/nonexistent/target", "dangling_link")
            os.makedirs("sub")
            os.symlink("/etc/passwd", "sub/nested_link")
            # An uploaded file replaced by a symlink: changed, but a symlink.
            os.remove("upload.txt")
            os.symlink("/etc/passwd", "upload.txt")
            with open("ok.txt", "w") as f:
                f.write("plain file")
        '''),
        "files": [{"name": "upload.txt", "content": "original"}],
        "return_files": True,
    })
    assert status == 200 and body["status"] == "Success", show(body)
    assert returned_names(body) == ["ok.txt"], show(body["files"])
    assert_no_leak(server, raw, body, host_passwd_lines() + passwd_in_sandbox)
    assert not any(ln in raw.decode("utf-8", "replace") for ln in ("HOME=", "PATH=/")), show(body)


def test_symlink_loops_are_not_walked(server):
    status, body, _ = execute(server, {
        "code": code('''
            import os
            os.symlink(".", "self_loop")
            os.symlink("..", "parent")
            os.symlink("/", "root")
            os.symlink("/work", "work")
            os.makedirs("a/b")
            os.symlink("../..", "a/b/up")
            os.symlink("a", "a/b/c")
            with open("a/b/ok.txt", "w") as f:
                f.write("ok")
        '''),
        "return_files": True,
    }, http_timeout=server.timeout_sec + 15)
    assert status == 200 and body["status"] == "Success", show(body)
    assert returned_names(body) == ["a/b/ok.txt"], show(body["files"])


def test_symlinks_matched_by_a_pattern_are_not_followed(server):
    passwd_in_sandbox = sandbox_passwd_lines(server)
    status, body, raw = execute(server, {
        "code": code('''
            import os
            os.symlink("/etc/passwd", "passwd.csv")
            os.symlink("/proc/1/environ", "environ.csv")
            os.symlink("/etc", "out")
            with open("real.csv", "w") as f:
                f.write("a,b\\n")
        '''),
        "return_files": ["*.csv", "out/*", "passwd*", "/etc/passwd", "../etc/*", "*"],
    })
    if status == 400:
        # Refusing patterns that point outside the working directory is fine too; the others
        # must still work without them.
        status, body, raw = execute(server, {
            "code": code('''
                import os
                os.symlink("/etc/passwd", "passwd.csv")
                os.symlink("/etc", "out")
                with open("real.csv", "w") as f:
                    f.write("a,b\\n")
            '''),
            "return_files": ["*.csv", "out/*", "passwd*", "*"]})
    assert status == 200 and body["status"] == "Success", show(body)
    assert returned_names(body) == ["real.csv"], show(body["files"])
    assert_no_leak(server, raw, body, host_passwd_lines() + passwd_in_sandbox)


def test_patterns_do_not_reach_files_outside_the_working_directory(server):
    status, body, raw = execute(server, {
        "code": "open('/tmp/outside.txt', 'w').write('outside')\nprint('ok')\n",
        "return_files": ["/etc/passwd", "/tmp/*", "../tmp/*", "/proc/1/environ", "../../etc/passwd"],
    })
    assert status in (200, 400), show((status, body))
    if status == 200:
        assert body["status"] == "Success", show(body)
        assert body["files"] == [], show(body["files"])
    assert_no_leak(server, raw, body, host_passwd_lines())


def test_fifo_is_not_returned_and_does_not_hang(server):
    status, body, _ = execute(server, {
        "code": code('''
            import os
            os.mkfifo("pipe")
            os.mkfifo("data.csv")
            os.makedirs("sub")
            os.mkfifo("sub/deep.fifo")
            with open("ok.txt", "w") as f:
                f.write("ok")
        '''),
        "return_files": True,
    }, http_timeout=server.timeout_sec + 15)
    assert status == 200 and body["status"] == "Success", show(body)
    assert returned_names(body) == ["ok.txt"], show(body["files"])

    status, body, _ = execute(server, {
        "code": "import os\nos.mkfifo('data.csv')\nprint('made')\n",
        "return_files": ["*.csv", "data.csv"],
    }, http_timeout=server.timeout_sec + 15)
    assert status == 200 and body["status"] == "Success", show(body)
    assert body["files"] == [], show(body["files"])
    assert_healthy(server)


def test_unix_socket_file_is_not_returned(server):
    status, body, _ = execute(server, {
        "code": code('''
            import socket
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind("sock")
            s.listen(1)
            with open("ok.txt", "w") as f:
                f.write("ok")
        '''),
        "return_files": True,
    }, http_timeout=server.timeout_sec + 15)
    assert status == 200 and body["status"] == "Success", show(body)
    assert returned_names(body) == ["ok.txt"], show(body["files"])


def test_file_swapped_for_a_symlink_while_collected(server):
    # A child keeps swapping race.txt between a regular file and a symlink to /etc/passwd after
    # the program ends; the file collected must never be the link's target.
    token = new_token()
    passwd_in_sandbox = sandbox_passwd_lines(server)
    status, body, raw = execute(server, {
        "stdin": json.dumps({"token": token}),
        "code": MARK_PRELUDE + code('''
            import json, os, sys, time
            token = json.load(sys.stdin)["token"]
            with open("race.txt", "w") as f:
                f.write("regular")
            if os.fork() == 0:
                mark(token)
                os.setsid()
                end = time.monotonic() + 60
                while time.monotonic() < end:
                    try:
                        os.rename("race.txt", "race.tmp")
                        os.symlink("/etc/passwd", "race.txt")
                        os.unlink("race.txt")
                        os.rename("race.tmp", "race.txt")
                    except OSError:
                        pass
                os._exit(0)
            time.sleep(0.2)
            print("parent done")
        '''),
        "return_files": True,
    }, http_timeout=server.timeout_sec + 15)
    assert status == 200, show((status, body))
    assert_no_processes_left(token)
    for entry in body.get("files") or []:
        assert entry["name"] in ("race.txt", "race.tmp"), show(body["files"])
        if "content" in entry:
            assert entry["content"] == "regular", show(entry)
    assert_no_leak(server, raw, body, host_passwd_lines() + passwd_in_sandbox)
    assert_healthy(server)


# --- odd but legal names -------------------------------------------------------------------------

def test_files_with_odd_names_are_returned_correctly(server):
    names = ["new\nline.txt", "tab\there.txt", "carriage\rreturn", "sp ace.txt", "quo\"te's.txt",
             "back\\slash.txt", "ünïcödé ✓ 🐍.txt", "star*?[].txt", ".hidden", "-dash", "#hash",
             "semi;colon&amp", "dir with space/in ner.txt", "<html>&.txt", "\u00a0nbsp", "z" * 255]
    status, body, _ = execute(server, {
        "stdin": json.dumps(names),
        "code": code('''
            import json, os, sys
            for n in json.load(sys.stdin):
                d = os.path.dirname(n)
                if d:
                    os.makedirs(d, exist_ok=True)
                with open(n, "w") as f:
                    f.write("content of " + n)
        '''),
        "return_files": True,
    })
    assert status == 200 and body["status"] == "Success", show(body)
    files = body["files"]
    got = {f["name"]: f for f in files}
    assert sorted(got) == sorted(names), show([f["name"] for f in files])
    for n in names:
        entry = got[n]
        assert entry["encoding"] == "utf-8", show(entry)
        assert entry["content"] == "content of " + n, show(entry)
        assert entry["size"] == len(("content of " + n).encode("utf-8")), show(entry)
