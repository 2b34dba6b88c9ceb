"""Three snakebox instances (NODE_ID 0, 1, 2) on loopback ports and Debian's nginx in front of
them with the shipped config (deploy/nginx/snakebox.conf, its addresses and port templated to
ours), for tests/cluster. Everything is started by us and stopped by the pids we started.

The instances listen on ports B, B+1, B+2 with B a multiple of 10, so that one PEER_URL
template, http://127.0.0.1:<B/10>{node}, names each node's instance: owner forwarding is
exercised exactly as on Kubernetes (http://snakebox-{node}.snakebox-hl:8080), only with the node
in the port instead of the host name."""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import TEST_LIMITS, Server, request
from serverproc import ServerStartError

ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = ROOT / "deploy" / "nginx" / "snakebox.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NODES = 3
START_TIMEOUT = 120

# Small instances: the three share this machine's cores with nginx and the test.
CLUSTER_ENV = dict(TEST_LIMITS)
CLUSTER_ENV.update({
    "PREINSTALL_LIBS": "",
    "POOL_SIZE": "1",
    "LEAN_POOL_SIZE": "2",
    "MAX_CONCURRENCY": "4",
    "QUEUE_SIZE": "64",
    "MAX_SESSIONS": "8",
    "SHUTDOWN_GRACE": "10",
    "MAX_CONNECTIONS_PER_IP": "0",
})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_base():
    """A multiple of 10 whose first NODES ports are free now."""
    for _ in range(200):
        base = secrets.randbelow(4000) * 10 + 20000
        ok = True
        for port in range(base, base + NODES):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free block of ports")


def templated_conf(ports, listen):
    """The shipped config with our instances' ports and nginx's own."""
    text = NGINX_CONF.read_text()
    shipped = re.findall(r"server 127\.0\.0\.1:(\d+)", text)
    assert len(set(shipped)) == NODES, f"the shipped config does not list {NODES} instances: {shipped}"
    for i, old in enumerate(sorted(set(shipped), key=int)):
        text = text.replace(f"127.0.0.1:{old};", f"127.0.0.1:{ports[i]};")
        text = text.replace(f"127.0.0.1:{old} ", f"127.0.0.1:{ports[i]} ")
    text, n = re.subn(r"listen 8080;", f"listen 127.0.0.1:{listen};", text)
    assert n == 1, "the shipped config has no `listen 8080;` to template"
    return text


class Nginx:
    def __init__(self, ports):
        self.dir = Path(tempfile.mkdtemp(prefix="snakebox-nginx-"))
        self.port = free_port()
        (self.dir / "snakebox.conf").write_text(templated_conf(ports, self.port))
        temp = self.dir / "temp"
        temp.mkdir()
        user = "user root root;\n" if os.geteuid() == 0 else ""
        (self.dir / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {self.dir}/nginx.pid;\n"
            f"error_log {self.dir}/error.log info;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"  access_log {self.dir}/access.log;\n"
            f"  client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n"
            f"  fastcgi_temp_path {temp}/fastcgi;\n  uwsgi_temp_path {temp}/uwsgi;\n"
            f"  scgi_temp_path {temp}/scgi;\n"
            f"  include {self.dir}/snakebox.conf;\n"
            "}\n")
        check = subprocess.run([NGINX, "-t", "-e", str(self.dir / "error.log"), "-p", str(self.dir),
                                "-c", str(self.dir / "nginx.conf")], capture_output=True, text=True)
        assert check.returncode == 0, f"nginx -t refuses the shipped config:\n{check.stderr}"
        self.proc = subprocess.Popen(
            [NGINX, "-e", str(self.dir / "error.log"), "-p", str(self.dir), "-c", str(self.dir / "nginx.conf")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                assert self.proc.poll() is None, f"nginx exited: {self.error_log()}"
                assert time.monotonic() < deadline, "nginx does not listen"
                time.sleep(0.05)
        self.timeout_sec = 30

    def error_log(self):
        try:
            return (self.dir / "error.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGQUIT)  # nginx's graceful stop; its workers follow
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class Cluster:
    def __init__(self):
        self.base = free_base()
        self.ports = [self.base + i for i in range(NODES)]
        self.token = secrets.token_hex(16)
        self.peer_url = f"http://127.0.0.1:{self.base // 10}{{node}}"
        self.nodes = [None] * NODES
        self.nginx = None
        try:
            for i in range(NODES):
                self.nodes[i] = self._server(i, wait=False)
            for i in range(NODES):
                self._ready(self.nodes[i])
            self.nginx = Nginx(self.ports)
        except BaseException:
            self.stop()
            raise

    def _server(self, node, wait=True):
        env = dict(CLUSTER_ENV)
        env.update({"NODE_ID": str(node), "PORT": str(self.ports[node]), "PEER_URL": self.peer_url,
                    "PEER_TOKEN": self.token})
        s = Server(env)
        if wait:
            self._ready(s)
        return s

    def _ready(self, s):
        try:
            s.wait_ready(START_TIMEOUT)
        except ServerStartError as e:
            pytest.fail(str(e), pytrace=False)

    def restart(self, node):
        """A fresh instance of node (a new boot) on its port, after the old one is gone."""
        old = self.nodes[node]
        if old is not None:
            old.stop()
        self.nodes[node] = self._server(node)
        return self.nodes[node]

    def stop(self):
        if self.nginx:
            self.nginx.stop()
        for s in self.nodes:
            if s is not None:
                s.stop()


def node_of(session_id):
    return int(session_id.split("-", 1)[0])


def metric(server, name):
    """The sum of a counter's samples in server's /metrics."""
    r = request(server, "GET", "/metrics", timeout=10)
    assert r.status == 200, r
    total = 0.0
    for line in r.body.decode().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def ndjson_events(resp):
    """Yields the events of a live (NDJSON) answer as they arrive."""
    while True:
        line = resp.readline()
        if not line:
            return
        line = line.strip()
        if line:
            yield json.loads(line)
