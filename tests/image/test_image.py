"""The container image (deploy/Dockerfile), run as deploy/README.md documents it.

Run by `make image-test` (scripts/image test), which builds the image first and passes
SNAKEBOX_IMAGE (its tag) and SNAKEBOX_ENGINE (docker or podman); without them this file skips.
Each container is started by this file, published on a loopback port only, and removed at the
end of its test or module, whatever happened: none is left running.

- the image: no compiler or test tool in it, and no source or host build output;
- the documented run (the three flags): /health, the HEALTHCHECK's own command, the README's
  hello and pandas examples, then a short escape subset through the container: each run under
  snakebox's own seccomp filter, no network (not even the server's own port on the container's
  loopback; no interface but the run's own lo), no write to /etc, and an environment variable
  given to the server's container is visible to no run;
- the hardened variant (read-only root, no capabilities, no-new-privileges) still serves;
- each flag left out: the container exits non-zero, and its message names that flag (taken from
  what the failed seal step and the server's own confinement showed, src/confine.c). Before
  that change, without seccomp=unconfined podman's run ended with 'step "hostname" failed:
  Operation not permitted' and no hint at all, and without systempaths=unconfined the hint
  named seccomp=unconfined and apparmor=unconfined, flags that were given: both of those tests
  failed on the old binary. AppArmor's case can only be seen where the host runs AppArmor.
"""

import json
import os
import re
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from conftest import request, run

ROOT = Path(__file__).resolve().parent.parent.parent
IMAGE = os.environ.get("SNAKEBOX_IMAGE")
ENGINE = os.environ.get("SNAKEBOX_ENGINE")

pytestmark = pytest.mark.skipif(not IMAGE or not ENGINE,
                                reason="SNAKEBOX_IMAGE/SNAKEBOX_ENGINE unset: run `make image-test`")

# The three flags of deploy/README.md, by the name the message must use.
FLAGS = {
    "seccomp": ["--security-opt", "seccomp=unconfined"],
    "apparmor": ["--security-opt", "apparmor=unconfined"],
    "systempaths": ["--security-opt", "systempaths=unconfined"],
}
START_TIMEOUT = 120  # importing pandas and sklearn in a container on a loaded 2-core machine
SECRET_KEY = "SNAKEBOX_IMAGE_TEST_SECRET"


def engine(*args, timeout=120, check=True):
    r = subprocess.run([ENGINE, *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{ENGINE} {' '.join(args)}: exit {r.returncode}\n{r.stderr[-3000:]}")
    return r


def apparmor_enabled():
    try:
        return Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    except OSError:
        return False


class Container:
    """One detached container of the image; .port is its 8080 published on 127.0.0.1."""

    def __init__(self, flags, env=None, extra=()):
        self.name = f"snakebox-image-test-{secrets.token_hex(4)}"
        args = ["run", "-d", "--name", self.name, "-p", "127.0.0.1::8080", *extra]
        for f in flags:
            args += FLAGS[f]
        for k, v in (env or {}).items():
            args += ["-e", f"{k}={v}"]
        engine(*args, IMAGE)
        out = engine("port", self.name, "8080").stdout.strip().splitlines()[0]
        self.port = int(out.rsplit(":", 1)[1])

    def logs(self):
        r = engine("logs", self.name, check=False)
        return r.stdout + r.stderr

    def wait_listening(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if "snakebox: listening on" in self.logs():
                return
            if engine("inspect", "-f", "{{.State.Running}}", self.name).stdout.strip() != "true":
                raise AssertionError(f"the container stopped while starting:\n{self.logs()[-3000:]}")
            time.sleep(1)
        raise AssertionError(f"not listening after {START_TIMEOUT} s:\n{self.logs()[-3000:]}")

    def remove(self):
        engine("rm", "-f", self.name, check=False, timeout=60)


@pytest.fixture(scope="module")
def container():
    secret = secrets.token_hex(16)
    c = Container(FLAGS, env={SECRET_KEY: secret, "EXECUTION_TIMEOUT": "20"})
    c.secret = secret
    try:
        c.wait_listening()
        yield c
    finally:
        c.remove()
        assert engine("ps", "-a", "-q", "--filter", f"name={c.name}").stdout.strip() == ""


def shell(*cmd):
    """A command in a throwaway container of the image, without the server."""
    return engine("run", "--rm", "--network=none", "--entrypoint", cmd[0], IMAGE, *cmd[1:])


def test_image_has_no_toolchain_and_no_sources():
    out = shell("sh", "-c",
                "for c in gcc cc g++ c++ cpp clang as ld make pytest pytest-3 clang-tidy; do "
                "command -v $c; done; "
                "dpkg-query -W -f='${Package} ${Status}\\n' 2>/dev/null | grep ' installed$' | "
                "grep -E '^(gcc|g\\+\\+|cpp|clang)(-[0-9]+)? |^(binutils|libcmocka-dev|python3-pytest|"
                "libc6-dev|python3-dev|libpython3[.0-9]*-dev|python3-pythran) ' ; "
                "ls /opt/snakebox; ls -d /src /opt/snakebox/src /opt/snakebox/.git 2>/dev/null; true")
    lines = out.stdout.split()
    # Only the binary: no compiler, no test tool, no -dev package, no source tree.
    assert lines == ["snakebox"], out.stdout


def test_health_and_healthcheck(container):
    reply = request(container, "GET", "/health", timeout=10)
    assert reply.status == 200, reply.body
    health = reply.json
    assert health["status"] == "ok"
    assert health["isolation"]["network_namespace"] is True
    assert health["isolation"]["seccomp"] is True
    # The image's HEALTHCHECK command, as the engine would run it (it kept it: --format docker).
    test = json.loads(engine("image", "inspect", "-f", "{{json .Config.Healthcheck.Test}}", IMAGE).stdout)
    assert test and test[0] == "CMD", test
    r = engine("exec", container.name, *test[1:], check=False, timeout=60)
    assert r.returncode == 0, r.stderr


def test_hello(container):
    status, body = run(container, 'print("Hello, World!")', timeout=60)
    assert status == 200, body
    assert body["status"] == "Success", body
    assert body["output"] == "Hello, World!\n"


def readme_pandas_example():
    text = (ROOT / "README.md").read_text()
    m = re.search(r"^-d '(\{\"code\": \"import pandas as pd\\nimport numpy.*\})'$", text, re.M)
    assert m, "the README's pandas example is gone"
    return json.loads(m.group(1))["code"]


def test_readme_pandas_example(container):
    status, body = run(container, readme_pandas_example(), timeout=120)
    assert status == 200, body
    assert body["status"] == "Success", body
    for heading in ("Daily Sales Summary:", "Sales by Category:", "Best Sales Day:"):
        assert heading in body["output"]


def test_no_network(container):
    # The server listens on 8080 in the container's network namespace; a run has its own: even
    # the server's own port on the container's loopback cannot be reached (the socket call
    # itself may be refused, by snakebox's seccomp filter), and the container's interface is
    # not there.
    status, body = run(container, (
        "import os, socket\n"
        "try:\n"
        "    s = socket.create_connection(('127.0.0.1', 8080), timeout=5)\n"
        "    print('CONNECTED')\n"
        "except OSError as e:\n"
        "    print('refused', type(e).__name__)\n"
        "print('IFACES', sorted(l.split(':')[0].strip() for l in open('/proc/self/net/dev').readlines()[2:]))\n"),
        timeout=60)
    assert status == 200, body
    assert "CONNECTED" not in body["output"], body
    assert "refused" in body["output"], body
    assert "IFACES ['lo']\n" in body["output"], body
    # The same file seen by the server lists the container's interface: the run's is not it.
    r = engine("exec", container.name, "cat", "/proc/self/net/dev")
    assert len(r.stdout.splitlines()[2:]) > 1, r.stdout


def test_runs_get_snakeboxs_seccomp_filter(container):
    # The container runs with seccomp=unconfined: the filter a run has is snakebox's own. In the
    # container (the server's view) there is none, so the check can tell the two apart.
    status, body = run(container, (
        "import ctypes, errno\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "seccomp = [l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp:')]\n"
        "print(seccomp, libc.unshare(0x00020000), errno.errorcode[ctypes.get_errno()])\n"), timeout=60)
    assert status == 200, body
    assert body["output"] == "['2'] -1 EPERM\n", body
    r = engine("exec", container.name, "grep", "^Seccomp:", "/proc/1/status")
    assert r.stdout.split() == ["Seccomp:", "0"], r.stdout


def test_no_write_to_etc(container):
    status, body = run(container, (
        "for path in ('/etc/passwd', '/etc/snakebox-was-here'):\n"
        "    try:\n"
        "        open(path, 'a').write('x')\n"
        "        print('WROTE', path)\n"
        "    except OSError as e:\n"
        "        print('denied', path, e.errno)\n"), timeout=60)
    assert status == 200, body
    assert "WROTE" not in body["output"], body
    assert body["output"].count("denied") == 2, body
    # Nor did it land in the container's /etc (the server's view).
    r = engine("exec", container.name, "ls", "/etc/snakebox-was-here", check=False)
    assert r.returncode != 0


def test_server_env_not_visible(container):
    # The secret is in the container's environment (the server's); a run looks everywhere it
    # can: its own environment, and every /proc/*/environ it can read.
    status, body = run(container, (
        "import os, glob\n"
        f"key = {SECRET_KEY!r}\n"
        "seen = [k for k, v in os.environ.items() if key in k or " + repr(container.secret) + " in v]\n"
        "for p in glob.glob('/proc/*/environ'):\n"
        "    try:\n"
        "        data = open(p, 'rb').read()\n"
        "    except OSError:\n"
        "        continue\n"
        "    if key.encode() in data:\n"
        "        seen.append(p)\n"
        "print('SEEN', seen)\n"), timeout=60)
    assert status == 200, body
    assert body["output"] == "SEEN []\n", body
    assert container.secret not in json.dumps(body)
    # The variable did reach the server's process, so the check above could have seen it.
    r = engine("exec", container.name, "sh", "-c", f"tr '\\0' '\\n' < /proc/1/environ | grep -c {SECRET_KEY}",
               check=False)
    assert r.stdout.strip() == "1", r.stdout + r.stderr


def test_hardened_run():
    # deploy/README.md's hardened variant (and Kubernetes' readOnlyRootFilesystem, drop ALL,
    # allowPrivilegeEscalation: false): the three flags are still all it needs.
    c = Container(FLAGS, env={"CACHE_DIR": "/tmp/cache"},
                  extra=["--read-only", "--tmpfs", "/tmp", "--cap-drop=ALL",
                         "--security-opt", "no-new-privileges"])
    try:
        c.wait_listening()
        status, body = run(c, "import pandas, matplotlib.pyplot\nprint('ok')", timeout=60)
        assert status == 200, body
        assert body["output"] == "ok\n", body
        r = engine("exec", c.name, "grep", "-E", "^(NoNewPrivs|CapEff)", "/proc/1/status")
        assert r.stdout.split() == ["CapEff:", "0000000000000000", "NoNewPrivs:", "1"], r.stdout
    finally:
        c.remove()


@pytest.mark.parametrize("missing", sorted(FLAGS))
def test_missing_flag_is_named(missing):
    if missing == "apparmor" and not apparmor_enabled():
        pytest.skip("this host runs no AppArmor: without apparmor=unconfined nothing is refused here")
    flags = [f for f in FLAGS if f != missing]
    name = f"snakebox-image-test-{secrets.token_hex(4)}"
    args = ["run", "--name", name, "--network=none"]
    for f in flags:
        args += FLAGS[f]
    try:
        r = engine(*args, IMAGE, check=False, timeout=START_TIMEOUT + 30)
    finally:
        engine("rm", "-f", name, check=False)
    out = r.stdout + r.stderr
    assert r.returncode != 0, f"started without {missing}=unconfined:\n{out[-3000:]}"
    assert "cannot start" in out, out[-3000:]
    refusal = [line for line in out.splitlines() if "cannot start" in line][-1]
    assert f"{missing}=unconfined" in refusal, refusal
    # Only the missing one: the flags that were given are not suggested.
    for given in flags:
        assert f"{given}=unconfined" not in refusal, refusal
