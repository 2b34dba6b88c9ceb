"""Attacks on the file system: write outside the run's scratch space (system directories, the
Python libraries later runs import, the server's directory) and fill the disk. A naive server
running as root writes everywhere; as any user it writes to /tmp, /var/tmp and /dev/shm of the
host without limit."""

import errno
import os
import shutil

import pytest

from conftest import ROOT, TEST_LIMITS, assert_healthy, code, new_token, run_json_with, show

MIB = 1 << 20



def remove_host_copies(paths):
    """Removes what a failed containment left on the host: only the token-named entries the run
    itself tried to create."""
    for p in paths:
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        elif os.path.lexists(p):
            os.unlink(p)


def test_writes_outside_the_scratch_directory_fail(server):
    token = new_token()
    dirs = ["/", "/usr", "/usr/lib", "/usr/local", "/etc", "/root", "/home", "/var", "/var/tmp",
            "/opt", "/bin", "/lib", "/dev", "/run", "/srv", "/mnt", str(ROOT), str(server.workdir)]
    created_on_host = [os.path.join(d, token + s) for d in dirs for s in ("", "_d")]
    result = {}
    try:
        result = run_json_with(server, code('''
            import json, os, sys, numpy
            params = json.load(sys.stdin)
            token = params["token"]
            dirs = params["dirs"]
            dirs += [os.path.dirname(json.__file__), os.path.dirname(os.__file__),
                     os.path.dirname(numpy.__file__)]
            result = {}
            for d in dirs:
                outcome = []
                try:
                    with open(os.path.join(d, token), "x") as f:
                        f.write("escaped")
                    outcome.append("file created")
                except OSError as e:
                    outcome.append(e.errno)
                try:
                    os.mkdir(os.path.join(d, token + "_d"))
                    outcome.append("dir created")
                except OSError as e:
                    outcome.append(e.errno)
                result[d] = outcome
            print(json.dumps(result))
        '''), {"dirs": dirs, "token": token})
        written = {d: r for d, r in result.items() if any(isinstance(x, str) for x in r)}
        assert not written, f"the run wrote outside its scratch space: {written}"
        assert len(result) >= len(dirs) + 1, show(result)
        leaked = [p for p in created_on_host if os.path.lexists(p)]
        assert not leaked, f"files created by the run appeared on the host: {leaked}"
    finally:
        # The run also tried the directories of the Python libraries, which it reports.
        remove_host_copies(created_on_host + [os.path.join(d, token + s)
                                              for d in result if d not in dirs for s in ("", "_d")])


def test_cwd_tmp_and_dev_shm_are_writable(server):
    name = new_token()
    try:
        result = run_json_with(server, code('''
            import json, os, sys
            name = json.load(sys.stdin)["name"]
            result = {}
            for d in (".", "/tmp", "/dev/shm"):
                p = os.path.join(d, name)
                with open(p, "w") as f:
                    f.write(d)
                with open(p) as f:
                    result[d] = f.read()
            print(json.dumps(result))
        '''), {"name": name})
        assert result == {".": ".", "/tmp": "/tmp", "/dev/shm": "/dev/shm"}
    finally:
        remove_host_copies([f"/tmp/{name}", f"/dev/shm/{name}"])


@pytest.mark.parametrize("directory", ["/tmp", "/dev/shm", "."])
def test_filling_the_scratch_space_fails_with_enospc(server, directory):
    token = new_token()
    limit = int(TEST_LIMITS["TMP_SIZE_MB"]) * MIB
    attempts = 3 * int(TEST_LIMITS["TMP_SIZE_MB"])  # 1 MiB files: three times the limit
    host_dir = directory if directory != "." else None
    created_on_host = [os.path.join(host_dir, f"{token}_{i}") for i in range(attempts)] if host_dir else []
    try:
        result = run_json_with(server, code('''
            import json, os, sys
            params = json.load(sys.stdin)
            chunk = b"x" * params["chunk"]
            written, error = 0, None
            try:
                for i in range(params["attempts"]):
                    name = "%s_%d" % (params["token"], i)
                    with open(os.path.join(params["directory"], name), "wb") as f:
                        f.write(chunk)
                    written += len(chunk)
            except OSError as e:
                error = e.errno
            print(json.dumps({"written": written, "errno": error}))
        '''), {"chunk": MIB, "attempts": attempts, "directory": directory, "token": token})
        assert result["errno"] == errno.ENOSPC, f"{directory} is not capped by TMP_SIZE_MB: {result}"
        assert result["written"] <= limit, show(result)
    finally:
        remove_host_copies(created_on_host)
    assert_healthy(server)
