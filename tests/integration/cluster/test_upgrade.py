"""upgrade cluster between two Kubernetes minors built from Go modules, on a real local
cluster (1 control plane + 2 nodes), with a workload that keeps serving.

The cluster is made at the previous minor (PREVIOUS), a Deployment of two web servers (a
PodDisruptionBudget, a preStop pause so that proxies drop a pod before it stops) runs behind
a NodePort Service, and a client on this machine sends requests through the control plane's
NodePort for the whole upgrade. `upgrade cluster --kubernetes-version` (the default version)
refuses a skipped minor first and plans; with the new version stored, cluster.yml run by hand
refuses to move it and changes nothing; then the upgrade snapshots etcd and goes host by host. The failed
requests are counted and printed (the target is zero); then every node and the API server
run the new version, the cluster validates, and a converge changes nothing. Run by hand
(-m long); it builds Kubernetes PREVIOUS from Go modules when it is not cached (many minutes).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from test_local_cluster import KPYOPS, kpyops

from kpyops.artifacts.catalog import KUBERNETES
from kpyops.run.ansible import PROJECT

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.long]
PREVIOUS = os.environ.get("KPYOPS_UPGRADE_FROM", "1.34.4")

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      automountServiceAccountToken: false
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm: {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: web}}}
      securityContext: {runAsNonRoot: true, runAsUser: 65534, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: web
        image: '@IMAGE@'
        args: [serve, "8080"]
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
        lifecycle: {preStop: {sleep: {seconds: 5}}}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true,
                          capabilities: {drop: [ALL]}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: default}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 8080, targetPort: 8080}]
"""


class Client(threading.Thread):
    """Requests to a URL every 0.1 s until stopped; counts answers and failures."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.ok, self.failed, self.errors = url, 0, 0, []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=3) as r:
                    r.read()
                self.ok += 1
            except OSError as err:
                self.failed += 1
                self.errors.append(f"{time.strftime('%H:%M:%S')} {err}")
            time.sleep(0.1)


@pytest.fixture
def cluster(tmp_path):
    name = f"up{uuid.uuid4().hex[:6]}"
    yield tmp_path, name
    subprocess.run([KPYOPS, "--state", str(tmp_path), "delete", "cluster", name, "--yes"],
                   capture_output=True, timeout=600)


def test_upgrade_one_minor_with_a_workload_serving(cluster):
    state, name = cluster
    new = KUBERNETES.version()
    kpyops(state, "artifacts", "build", "--only", "kubernetes", "--kubernetes-version", PREVIOUS)
    kpyops(state, "create", "cluster", name, "--cloud", "local", "--control-planes", "1", "--nodes", "2",
           "--kubernetes-version", PREVIOUS, "--yes")
    cp = f"{name}-cp-1"
    kubectl = ["podman", "exec", "-i", cp, "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"]

    def k(*args: str, stdin: str | None = None) -> str:
        return subprocess.run([*kubectl, *args], input=stdin, capture_output=True, text=True,
                              check=True).stdout

    valid = json.loads(kpyops(state, "validate", "cluster", name, "--wait", "10m", "-o", "json").stdout)
    assert valid["valid"] is True, valid
    image = json.loads(k("-n", "kpyops-validate", "get", "daemonset", "probe", "-o", "json")
                       )["spec"]["template"]["spec"]["containers"][0]["image"]
    k("apply", "-f", "-", stdin=WEB.replace("@IMAGE@", image))
    k("rollout", "status", "deployment/web", "--timeout=300s")
    port = json.loads(k("get", "service", "web", "-o", "json"))["spec"]["ports"][0]["nodePort"]
    address = next(line.split()[0].split(",")[1] for line in
                   (state / "clusters" / name / "ssh/known_hosts").read_text().splitlines()
                   if line.startswith(cp + ","))

    # the rules first: no skipped minor, nothing stored
    major, minor = (int(x) for x in PREVIOUS.split(".")[:2])
    refused = kpyops(state, "upgrade", "cluster", name, "--kubernetes-version", f"{major}.{minor + 2}.0", check=False)
    assert refused.returncode == 2 and "skips a minor release" in refused.stderr, refused.stderr
    plan = kpyops(state, "upgrade", "cluster", name, "--kubernetes-version", new)
    assert f"Kubernetes {PREVIOUS} -> {new}" in plan.stdout, plan.stdout
    assert f"  ~ host {cp}: kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl -> {new}" in plan.stdout
    assert yaml.safe_load(kpyops(state, "get", "cluster", name, "-o", "yaml", "--full").stdout
                          )["spec"]["kubernetesVersion"] == PREVIOUS

    # the new version stored (hosts untouched): cluster.yml run by hand refuses to move it
    spec = yaml.safe_load(kpyops(state, "get", "cluster", name, "-o", "yaml").stdout)
    spec["spec"]["kubernetesVersion"] = new
    (state / "new.yaml").write_text(yaml.safe_dump(spec))
    kpyops(state, "update", "cluster", name, "-f", str(state / "new.yaml"), "--yes", "--target", "cloud")
    by_hand = subprocess.run(
        [str(Path(KPYOPS).with_name("ansible-playbook")), "-i", str(state / "clusters" / name / "inventory"),
         "cluster.yml"], cwd=PROJECT, capture_output=True, text=True, timeout=900,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0"})
    assert by_hand.returncode != 0 and "cluster.yml does not change versions" in by_hand.stdout, by_hand.stdout[-3000:]
    assert not re.search(r"changed=[1-9]", by_hand.stdout), by_hand.stdout[-3000:]
    assert json.loads(k("version", "-o", "json"))["serverVersion"]["gitVersion"] == f"v{PREVIOUS}"

    client = Client(f"http://{address}:{port}/")
    client.start()
    time.sleep(5)
    started = time.monotonic()
    upgraded = kpyops(state, "upgrade", "cluster", name, "--kubernetes-version", new, "--yes")
    seconds = time.monotonic() - started
    time.sleep(5)
    client.done.set()
    client.join()
    print(f"figure: upgrade {PREVIOUS} -> {new} of 3 hosts: {seconds:.0f}s, {seconds / 3:.0f}s per host")
    print(f"figure: requests during the upgrade: {client.ok} answered, {client.failed} failed "
          f"(target 0){': ' + '; '.join(client.errors[:5]) if client.errors else ''}")
    assert client.ok > 100, (client.ok, client.failed)
    assert "etcd snapshot" in upgraded.stderr and "batch 3/3: validating" in upgraded.stderr, upgraded.stderr

    nodes = json.loads(k("get", "nodes", "-o", "json"))["items"]
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == {f"v{new}"}
    assert not any(n["spec"].get("unschedulable") for n in nodes)
    assert json.loads(k("version", "-o", "json"))["serverVersion"]["gitVersion"] == f"v{new}"
    valid = json.loads(kpyops(state, "validate", "cluster", name, "--wait", "10m", "-o", "json").stdout)
    assert valid["valid"] is True, valid
    again = kpyops(state, "update", "cluster", name, "--yes")
    line = next(ln for ln in again.stderr.splitlines() if "converged in" in ln)
    assert "changed=0" in line and all(part.endswith("changed=0") for part in line.split(": ", 1)[1].split(", ")), line
