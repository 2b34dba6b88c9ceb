"""The Kubernetes manifests (deploy/k8s, issue 17): yamllint passes with the directory's config,
and the fields the issue asks for are there and consistent with each other. No cluster is at hand:
these are the checks a reviewer would make by reading, made by a program. Each check was seen
failing by editing the manifest it reads (noted per test)."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"


def docs():
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        out += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return out


def one(kind, name=None):
    found = [d for d in docs() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} in deploy/k8s"
    return found[0]


def container():
    sts = one("StatefulSet")
    (c,) = [c for c in sts["spec"]["template"]["spec"]["containers"] if c["name"] == "snakebox"]
    return c


def env(c):
    return {e["name"]: e for e in c.get("env", [])}


def env_seconds(c, name):
    return int(env(c)[name]["value"])


def test_yamllint_passes():
    """yamllint with deploy/k8s/.yamllint. Seen failing with a line of 130 characters."""
    yl = shutil.which("yamllint")
    if not yl:
        pytest.fail("yamllint is not installed (scripts/install-deps installs it)")
    r = subprocess.run([yl, "-f", "parsable", "-c", str(K8S / ".yamllint"), str(K8S)], capture_output=True, text=True)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr


def test_statefulset_names_nodes_and_peers():
    """A StatefulSet whose serviceName is a headless Service (publishing not-ready pods), NODE_ID
    from the pod's ordinal, PEER_URL a {node} template on that Service, PEER_TOKEN from a Secret,
    and a Service for stateless traffic on the same pods. Seen failing with NODE_ID given as a
    fixed value."""
    sts = one("StatefulSet")
    hl = one("Service", sts["spec"]["serviceName"])
    assert hl["spec"].get("clusterIP") == "None"
    assert hl["spec"].get("publishNotReadyAddresses") is True
    labels = sts["spec"]["template"]["metadata"]["labels"]
    stateless = [d for d in docs() if d["kind"] == "Service" and d["spec"].get("clusterIP") != "None"]
    assert len(stateless) == 1
    for svc in (hl, stateless[0]):
        assert svc["spec"]["selector"].items() <= labels.items(), svc
    e = env(container())
    assert e["NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['apps.kubernetes.io/pod-index']"
    url = e["PEER_URL"]["value"]
    assert re.fullmatch(r"http://" + re.escape(sts["metadata"]["name"]) + r"-\{node\}\." +
                        re.escape(hl["metadata"]["name"]) + r":8080", url), url
    assert "secretKeyRef" in e["PEER_TOKEN"]["valueFrom"]


def test_probes_prestop_and_grace_period():
    """Startup, readiness (/health?ready=1) and liveness (/health) probes, a preStop pause, and
    terminationGracePeriodSeconds above the pause + SHUTDOWN_GRACE, with SHUTDOWN_GRACE at least
    EXECUTION_TIMEOUT. Seen failing with terminationGracePeriodSeconds: 30."""
    sts = one("StatefulSet")
    c = container()
    assert c["readinessProbe"]["httpGet"]["path"] == "/health?ready=1"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["startupProbe"]["httpGet"]["path"] == "/health"
    cmd = c["lifecycle"]["preStop"]["exec"]["command"]
    assert cmd[0] == "sleep"
    pause = int(cmd[1])
    timeout, grace = env_seconds(c, "EXECUTION_TIMEOUT"), env_seconds(c, "SHUTDOWN_GRACE")
    assert grace >= timeout
    assert sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > pause + grace


def test_pod_security_without_privileged():
    """hostUsers: false, procMount: Unmasked, a Localhost seccomp profile that exists and allows
    the namespace and mount calls, no privileged, no capability (all dropped, none added), no
    privilege escalation, not root. Seen failing with hostUsers removed, and with `mount` added
    to the profile's refused calls."""
    pod = one("StatefulSet")["spec"]["template"]["spec"]
    assert pod.get("hostUsers") is False
    sc = container()["securityContext"]
    assert sc.get("procMount") == "Unmasked"
    assert sc.get("privileged") in (None, False)
    assert sc.get("allowPrivilegeEscalation") is False
    assert sc.get("runAsNonRoot") is True
    assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
    prof = sc["seccompProfile"]
    assert prof["type"] == "Localhost"
    path = K8S / "seccomp" / Path(prof["localhostProfile"]).name
    profile = json.loads(path.read_text())
    needed = {"unshare", "clone", "clone3", "setns", "mount", "umount2", "pivot_root", "sethostname",
              "seccomp", "prctl", "mount_setattr"}
    if profile["defaultAction"] == "SCMP_ACT_ALLOW":
        refused = {n for rule in profile["syscalls"] if rule["action"] != "SCMP_ACT_ALLOW" for n in rule["names"]}
        assert not needed & refused, needed & refused
    else:
        allowed = {n for rule in profile["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW" for n in rule["names"]}
        assert needed <= allowed, needed - allowed


def test_disruption_budget_and_autoscaler():
    """A PodDisruptionBudget over the pods; an HPA on the StatefulSet scaling on CPU and on
    snakebox_queue_length (a metric /metrics has), whose scale-down stabilisation is longer than
    SESSION_IDLE_TIMEOUT. Seen failing with stabilizationWindowSeconds: 300."""
    sts = one("StatefulSet")
    pdb = one("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    assert "maxUnavailable" in pdb["spec"] or "minAvailable" in pdb["spec"]
    hpa = one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                             "name": sts["metadata"]["name"]}
    kinds = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert kinds["Resource"]["resource"]["name"] == "cpu"
    queue = kinds["Pods"]["pods"]["metric"]["name"]
    metrics_c = (ROOT / "src" / "metrics.c").read_text()
    assert f'"# TYPE {queue} ' in metrics_c or f"# TYPE {queue} " in metrics_c, queue
    down = hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"]
    assert down > env_seconds(container(), "SESSION_IDLE_TIMEOUT")
