"""A local cluster end to end: real podman machines, real SSH, cluster.yml twice, delete.

Runs the product as a user would (the `kpyops` command), then checks the machines
themselves over SSH.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import kube
import pytest
import yaml

from kpyops import lifecycle
from kpyops.artifacts import COMPONENTS
from kpyops.artifacts.build import build
from kpyops.artifacts.catalog import KUBERNETES
from kpyops.clouds import get_cloud
from kpyops.run.ansible import PlaybookFailed
from kpyops.spec import complete
from kpyops.state import LocalStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]
KPYOPS = str(Path(sys.executable).with_name("kpyops"))
ROOT = Path(__file__).resolve().parents[3]
REFERENCE = Path(os.environ.get("KPYOPS_REFERENCE", ROOT.parent / "shared" / "reference"))


def k8s_flags(component: str) -> set[str]:
    """The component's flags in the shared reference (../shared/reference)."""
    data = json.loads((REFERENCE / "component-flags.json").read_text())
    return set(data["components"][component]["flags"])


def kpyops(state: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [KPYOPS, "--state", str(state), *args],
        capture_output=True,
        text=True,
        timeout=2700,  # a cold converge of a real cluster on a loaded 2-core machine
        env={**os.environ, "COLUMNS": "1000"},  # the CLI's lines unwrapped, as tests read them
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"kpyops {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def podman_names(label: str) -> list[str]:
    out = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label={label}", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(c["Names"][0] for c in json.loads(out or "[]"))


def network_exists(name: str) -> bool:
    return subprocess.run(["podman", "network", "exists", name]).returncode == 0


def ssh(state: Path, name: str, host: str, command: str) -> str:
    d = state / "clusters" / name
    ip = next(
        line.split()[0].split(",")[1]
        for line in (d / "ssh/known_hosts").read_text().splitlines()
        if line.startswith(host + ",")
    )
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(d / "ssh/id_ed25519"),
            "-o",
            f"UserKnownHostsFile={d / 'ssh/known_hosts'}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            f"root@{ip}",
            command,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout


@pytest.fixture
def cluster(tmp_path):
    name = f"e2e{uuid.uuid4().hex[:6]}"
    yield tmp_path, name
    # leave nothing behind, even when the test failed
    if (tmp_path / "clusters" / name).exists():
        kpyops(tmp_path, "delete", "cluster", name, "--yes", check=False)
    for c in podman_names(f"kpyops.io/cluster={name}"):
        subprocess.run(["podman", "rm", "-f", "-t", "0", c], capture_output=True)
    subprocess.run(["podman", "network", "rm", "-f", f"kpyops-{name}"], capture_output=True)


# CIS Kubernetes Benchmark file checks, made on every host the file belongs on:
# (path, mode it may have at most, owner:group, CIS ids, hosts: "cp" control planes,
# "etcd" etcd members, "all" every host). A mode "or stricter" has no permission bit the
# allowed mode lacks.
CIS_FILES = [
    ("/etc/kubernetes/manifests/kube-apiserver.yaml", 0o600, "root:root", "1.1.1 / 1.1.2", "cp"),
    ("/etc/kubernetes/manifests/kube-controller-manager.yaml", 0o600, "root:root", "1.1.3 / 1.1.4", "cp"),
    ("/etc/kubernetes/manifests/kube-scheduler.yaml", 0o600, "root:root", "1.1.5 / 1.1.6", "cp"),
    ("/var/lib/etcd", 0o700, "etcd:etcd", "1.1.11 / 1.1.12", "etcd"),
    ("/etc/kubernetes/admin.conf", 0o600, "root:root", "1.1.13 / 1.1.14", "cp"),
    ("/etc/kubernetes/scheduler.conf", 0o600, "root:root", "1.1.15 / 1.1.16", "cp"),
    ("/etc/kubernetes/controller-manager.conf", 0o600, "root:root", "1.1.17 / 1.1.18", "cp"),
    ("/etc/kubernetes/pki", 0o755, "root:root", "1.1.19", "all"),
    ("/etc/systemd/system/kubelet.service", 0o600, "root:root", "4.1.1 / 4.1.2", "all"),
    ("/etc/kubernetes/kubelet.conf", 0o600, "root:root", "4.1.5 / 4.1.6", "all"),
    ("/etc/kubernetes/pki/ca.crt", 0o644, "root:root", "4.1.7 / 4.1.8", "all"),
    ("/var/lib/kubelet/config.yaml", 0o600, "root:root", "4.1.9 / 4.1.10", "all"),
]
# and every file in /etc/kubernetes/pki (CIS 1.1.19 owner, 1.1.20 certificates, 1.1.21 keys)
CIS_PKI = {".crt": 0o644, ".pub": 0o644, ".key": 0o600}
# what changes of a host's configuration is watched for (sha256 of every file in them);
# of /var/lib/kubelet only what kpyops writes (the rest is the running kubelet's state)
WATCHED = ("/etc/kubernetes /var/lib/kubelet/config.yaml /var/lib/kubelet/kpyops /etc/etcd "
           "/etc/containerd /etc/cni/net.d")


def stricter(mode: int, allowed: int) -> bool:
    return mode & ~allowed == 0


def stats(state: Path, name: str, host: str, paths: list[str]) -> dict[str, tuple[int, str]]:
    out = ssh(state, name, host, "stat -c '%n %a %U:%G' " + " ".join(paths))
    return {p: (int(m, 8), o) for p, m, o in (line.split() for line in out.splitlines())}


def checksums(state: Path, name: str, host: str) -> dict[str, str]:
    out = ssh(state, name, host, f"for d in {WATCHED}; do [ ! -e $d ] || find $d -type f; done "
                                 "| sort | xargs -r sha256sum")
    return {path: digest for digest, path in (line.split(None, 1) for line in out.splitlines())}


def recap_of(converged: str) -> dict[str, int]:
    """host -> changed, from the CLI's 'converged in Ns: host changed=N, ...' line."""
    line = next(ln for ln in converged.splitlines() if "converged in" in ln)
    return {h: int(c) for h, c in re.findall(r"(\S+) changed=(\d+)", line)}


CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def check_running_kubernetes(state: Path, name: str, cps: list[str], hosts: list[str]) -> None:
    """What the cluster runs, seen from its API and from the processes themselves."""
    run = kube.ssh_runner(state, name)
    cp = cps[0]
    # every host registered as a Node with its own certificate, and is Ready (pod network up)
    def ready_nodes():
        items = kube.kubectl_json(run, cp, "get", "nodes")["items"]
        names = sorted(n["metadata"]["name"] for n in items)
        return items if names == sorted(hosts) and all(kube.ready(n) for n in items) else None

    nodes = kube.wait_for("every host a Ready node", ready_nodes)
    for node in nodes:
        assert node["status"]["nodeInfo"]["kubeletVersion"] == f"v{KUBERNETES.version()}"
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"] == f"containerd://{COMPONENTS['containerd'].version()}"
        assert node["spec"]["podCIDR"]
    # the control plane's static pods, as the API sees them
    pods = {p["metadata"]["name"]: p for p in kube.kubectl_json(run, cp, "-n", "kube-system", "get", "pods")["items"]}
    for host in cps:
        for component in CONTROL_PLANE:
            pod = pods[f"{component}-{host}"]
            assert pod["status"]["phase"] == "Running" and kube.ready(pod), (component, pod["status"])
    assert run(cp, f"{kube.KUBECTL} get --raw /readyz").strip() == "ok"
    for port in (10257, 10259):  # controller-manager, scheduler
        assert run(cp, f"curl -sk https://127.0.0.1:{port}/healthz").strip() == "ok"
    # every flag rendered is a flag the running binary took: the process's own argv is the
    # manifest's command, and the CIS settings read from the processes, not the files
    for host in cps:
        for component in CONTROL_PLANE:
            manifest = yaml.safe_load(run(host, f"cat /etc/kubernetes/manifests/{component}.yaml"))
            args = kube.process_args(run, host, component)
            assert args[1:] == manifest["spec"]["containers"][0]["command"][1:], component
        api = dict(a.removeprefix("--").split("=", 1) for a in kube.process_args(run, host, "kube-apiserver")[1:])
        assert {"Node", "RBAC"} <= set(api["authorization-mode"].split(","))  # CIS 1.2.6-1.2.8
        assert "AlwaysAllow" not in api["authorization-mode"]
        assert api["profiling"] == "false"  # CIS 1.2.15
        assert "NodeRestriction" in api["enable-admission-plugins"]  # CIS 1.2.13
        assert api["kubelet-certificate-authority"] and api["tls-cert-file"]  # CIS 1.2.4, 1.2.25
        assert api["service-account-lookup"] == "true"  # CIS 1.2.19
        kcm = dict(a.removeprefix("--").split("=", 1) for a in kube.process_args(run, host, "kube-controller-manager")[1:])
        assert kcm["use-service-account-credentials"] == "true" and kcm["profiling"] == "false"  # CIS 1.3.2-1.3.3
        sched = dict(a.removeprefix("--").split("=", 1) for a in kube.process_args(run, host, "kube-scheduler")[1:])
        assert sched["profiling"] == "false"  # CIS 1.4.1
    # each kubelet's live configuration (its own /configz), CIS 4.2.x
    for host in hosts:
        live = json.loads(run(cp, f"{kube.KUBECTL} get --raw /api/v1/nodes/{host}/proxy/configz"))["kubeletconfig"]
        assert live["authentication"]["anonymous"]["enabled"] is False  # 4.2.1
        assert live["authorization"]["mode"] == "Webhook"  # 4.2.2
        assert live.get("readOnlyPort", 0) == 0  # 4.2.4 (0 is left out of /configz)
        assert live["rotateCertificates"] is True and live["serverTLSBootstrap"] is True  # 4.2.9-4.2.10
        assert kube.process_args(run, host, "kubelet")[1:3] == [
            "--config=/var/lib/kubelet/config.yaml", "--kubeconfig=/etc/kubernetes/kubelet.conf"]


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
      nodeSelector: {kubernetes.io/hostname: '@NODE@'}
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, runAsUser: 65534, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: web
        image: '@IMAGE@'
        args: [serve, "8080"]
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 2}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true,
                          capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 8080, targetPort: 8080}]
"""


def check_validate_and_services(state: Path, name: str, cps: list[str], nodes: list[str],
                                created_at: float) -> None:
    """`validate cluster` passes; pods reach Services by DNS name and NodePort through the
    proxy, across nodes; a deleted backend stops getting traffic; the exported kubeconfig
    works from this machine until it expires."""
    hosts = cps + nodes
    valid = kpyops(state, "validate", "cluster", name, "--wait", "10m", "-o", "json")
    report = json.loads(valid.stdout)
    print(f"figure: create to validate passing: {time.monotonic() - created_at:.0f}s")
    assert report["valid"] is True, report
    found = {f["item"]: f for f in report["findings"]}
    wanted = ({f"node {h}" for h in hosts} | {f"probe on {h}" for h in hosts}
              | {f"etcd {cp}" for cp in cps}
              | {f"pod kube-system/{c}-{cp}" for cp in cps for c in CONTROL_PLANE})
    assert wanted <= set(found), sorted(wanted - set(found))
    assert sum(i.startswith("pod kube-system/coredns-") for i in found) == 2  # both replicas

    run = kube.ssh_runner(state, name)
    cp = cps[0]
    # a Deployment of two probe servers on node-2 behind a NodePort Service
    image = next(p["spec"]["template"]["spec"]["containers"][0]["image"]
                 for p in [kube.kubectl_json(run, cp, "-n", "kpyops-validate", "get", "daemonset", "probe")])
    run(cp, f"{kube.KUBECTL} apply -f - <<'EOF'\n{WEB.replace('@NODE@', nodes[1]).replace('@IMAGE@', image)}\nEOF")
    kube.wait_for("web pods ready", lambda: (lambda d: d.get("status", {}).get("readyReplicas") == 2)(
        kube.kubectl_json(run, cp, "get", "deployment", "web")))
    web = {p["metadata"]["name"]: p for p in kube.kubectl_json(run, cp, "get", "pods", "-l", "app=web")["items"]}
    assert {p["spec"]["nodeName"] for p in web.values()} == {nodes[1]}
    node_port = kube.kubectl_json(run, cp, "get", "service", "web")["spec"]["ports"][0]["nodePort"]
    client = next(p["metadata"]["name"] for p in kube.kubectl_json(
        run, cp, "-n", "kpyops-validate", "get", "pods")["items"] if p["spec"]["nodeName"] == nodes[0])
    node2 = next(line.split()[0].split(",")[1] for line in
                 (state / "clusters" / name / "ssh/known_hosts").read_text().splitlines()
                 if line.startswith(nodes[1] + ","))

    said: list[str] = []

    def answers(url: str, times: int = 24) -> list[str]:
        """Which pods answered, from the probe pod on node-1."""
        out = run(cp, f"{kube.KUBECTL} -n kpyops-validate exec {client} -- /probe check "
                  + " ".join([url] * times))
        said[:] = [out]
        return re.findall(r"pod=(\S+) node=" + re.escape(nodes[1]), out)

    # the first answer once the proxies have the new Service (programmed within a sync)
    kube.wait_for("the web Service answers by name", lambda: answers(
        "http://web.default.svc.cluster.local:8080/", 1), timeout=60, every=1)
    by_name = answers("http://web.default.svc.cluster.local:8080/")
    assert len(by_name) == 24 and set(by_name) == set(web), said  # DNS, ClusterIP, both pods
    by_node_port = answers(f"http://{node2}:{node_port}/")
    assert len(by_node_port) == 24 and set(by_node_port) <= set(web), said

    # a deleted backend stops getting traffic as soon as the proxy syncs its endpoints
    gone = sorted(web)[0]
    deleted_at = time.monotonic()
    run(cp, f"{kube.KUBECTL} delete pod {gone} --wait=false")
    kube.wait_for("the deleted pod gets no more traffic",
                  lambda: (lambda a: len(a) == 24 and gone not in a)(
                      answers("http://web.default.svc.cluster.local:8080/")), timeout=60, every=0.5)
    print(f"figure: deleted backend out of rotation after {time.monotonic() - deleted_at:.1f}s")
    metrics = run(nodes[0], "curl -s http://127.0.0.1:10249/metrics")
    total = dict(re.findall(r"^kubeproxy_network_programming_duration_seconds_(sum|count) (\S+)$",
                            metrics, re.M))
    if total.get("count") and float(total["count"]):
        print(f"figure: network programming latency on {nodes[0]} (proxy metrics): "
              f"{float(total['sum']) / float(total['count']):.2f}s mean over {float(total['count']):.0f}")
    run(cp, f"{kube.KUBECTL} delete deployment,service web")

    # the exported kubeconfig: a context of its own beside others, kubectl works from this
    # machine with it, and stops working once its admin certificate expires
    kubeconfig = state / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "other",
        "clusters": [{"name": "other", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "other", "user": {"token": "x"}}],
        "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other"}}]}))
    kpyops(state, "export", "kubeconfig", name, "--admin", "40s", "--kubeconfig", str(kubeconfig))
    exported_at = time.monotonic()
    merged = yaml.safe_load(kubeconfig.read_text())
    assert merged["current-context"] == name and {c["name"] for c in merged["contexts"]} == {"other", name}
    kubectl = str(build(KUBERNETES, KUBERNETES.version()).path("kubectl"))
    listed = subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "get", "nodes", "-o", "name"],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.split()) == sorted(f"node/{h}" for h in hosts)
    time.sleep(max(0.0, 45 - (time.monotonic() - exported_at)))
    expired = subprocess.run([kubectl, "--kubeconfig", str(kubeconfig), "get", "nodes"],
                             capture_output=True, text=True, timeout=60)
    assert expired.returncode != 0 and "Unauthorized" in expired.stderr, expired.stderr
    # get cluster names the API endpoint (on stderr: stdout stays the spec)
    assert f"API endpoint: {merged['clusters'][-1]['cluster']['server']}" in kpyops(
        state, "get", "cluster", name).stderr


# What the cluster leaves on a host, one line per thing found (empty: nothing).
LEFTOVERS = r"""
for u in kubelet containerd kpyops-proxy kpyops-pod-routes etcd; do
  systemctl is-active -q "$u" && echo "active $u"
done
for p in /etc/kubernetes /var/lib/kubelet /var/lib/containerd /run/containerd /etc/containerd \
         /etc/cni/net.d /var/lib/cni /opt/cni /etc/kpyops /opt/kpyops /var/lib/kpyops \
         /usr/local/bin/kubelet /usr/local/bin/kubectl /usr/local/bin/containerd /usr/local/bin/runc \
         /etc/systemd/system/kubelet.service /etc/systemd/system/containerd.service \
         /etc/systemd/system/kpyops-proxy.service /etc/sysctl.d/90-kpyops-net.conf; do
  # a folder that is a mount point of the machine (a volume) is emptied, not removed
  if mountpoint -q "$p"; then [ -n "$(ls -A "$p")" ] && echo "path $p (not empty)"
  elif [ -e "$p" ]; then echo "path $p"; fi
done
pgrep -x containerd-shim >/dev/null && echo "process containerd-shim"
pgrep -x pause >/dev/null && echo "process pause"
findmnt -rn -o TARGET | grep -E '^(/var/lib/kubelet|/run/containerd|/var/lib/containerd)/' | sed 's/^/mount /'
iptables-save | grep -E '^:(KUBE-|KPYOPS-|CNI-)' | sed 's/^/chain /'
iptables-save | grep -E -- '-j (KUBE-|KPYOPS-|CNI-)|kpyops-pod-egress' | sed 's/^/rule /'
for l in cni0 kpyops-svc0; do ip link show "$l" >/dev/null 2>&1 && echo "link $l"; done
ip route show proto 77 | sed 's/^/route /'
getent passwd etcd >/dev/null && echo "user etcd"
grep -q 'kpyops cluster hosts' /etc/hosts && echo "hosts block"
true
"""
HOST_RULE = "INPUT -s 192.0.2.1/32 -m comment --comment the-host-s-own -j DROP"


def check_reset_and_rejoin(state: Path, name: str, store, user, hosts: list[str], node: str) -> None:
    """`reset host` takes a node back to before the install, keeping the host's own rules;
    a converge installs it again, changing nothing elsewhere; the cluster is valid again."""
    ssh(state, name, node, f"iptables -A {HOST_RULE}")
    before = ssh(state, name, node, LEFTOVERS).split("\n")
    assert {"active kubelet", "active containerd", "path /etc/kubernetes"} <= set(before), before
    # without --yes: what it would remove, and nothing touched
    preview = kpyops(state, "reset", "host", name, node)
    assert f"run again with --yes to reset {node}" in preview.stderr
    assert "file /etc/kubernetes" in preview.stdout, preview.stdout
    assert ssh(state, name, node, "systemctl is-active kubelet").strip() == "active"
    # a host that is not the cluster's is refused before anything runs
    refused = kpyops(state, "reset", "host", name, f"{name}-nosuch", check=False)
    assert refused.returncode != 0 and f"is not a host of cluster {name}" in refused.stderr
    started = time.monotonic()
    kpyops(state, "reset", "host", name, node, "--yes")
    print(f"figure: reset host: {time.monotonic() - started:.0f}s")
    left = [ln for ln in ssh(state, name, node, LEFTOVERS).splitlines() if ln.strip()]
    assert left == [], left
    assert ssh(state, name, node, f"iptables -C {HOST_RULE} && echo kept").strip() == "kept"
    # the Node object stays (the API is not touched), NotReady until the node is back
    started = time.monotonic()
    back = converge(store, user)
    print(f"figure: converge after reset host: {time.monotonic() - started:.0f}s")
    changed = {h: r["changed"] for h, r in back.recap.items()}
    assert changed[node] > 0, changed
    assert {h: c for h, c in changed.items() if h != node} == dict.fromkeys(set(hosts) - {node}, 0), changed
    valid = json.loads(kpyops(state, "validate", "cluster", name, "--wait", "10m", "-o", "json").stdout)
    assert valid["valid"] is True, valid
    # pods run on the rejoined node again (its probe pod: a new sandbox on a fresh runtime)
    assert f"probe on {node}" in {f["item"] for f in valid["findings"]}, valid
    again = converge(store, user)
    assert {h: r["changed"] for h, r in again.recap.items()} == dict.fromkeys(hosts, 0)


def converge(store, user):
    """lifecycle.apply; a failed run fails the test with Ansible's last lines."""
    try:
        return lifecycle.apply(store, user, progress=lambda _m: None)
    except PlaybookFailed as err:
        raise AssertionError(f"{err}\n" + "\n".join(err.tail)) from None


def test_create_converge_twice_and_delete(cluster):
    """A real Kubernetes cluster from `kpyops create cluster --cloud local`: every component
    built from Go modules, fetched and pulled by the hosts from the cluster's own files
    repository and registry; one control plane and two nodes."""
    state, name = cluster
    created_at = time.monotonic()
    created = kpyops(state, "create", "cluster", name, "--cloud", "local", "--control-planes", "1",
                     "--nodes", "2", "--yes")
    assert "converged" in created.stderr
    assert "SKIPPED" not in created.stderr
    cps = [f"{name}-cp-1"]
    nodes = [f"{name}-node-1", f"{name}-node-2"]
    hosts = cps + nodes
    # three hosts, and the files repository and registry that served them
    assert podman_names(f"kpyops.io/cluster={name}") == sorted([*hosts, f"{name}-files"])
    inventory = state / "clusters" / name / "inventory"
    groups = yaml.safe_load((inventory / "hosts.yml").read_text())["all"]["children"]
    etcd_members = sorted(groups["etcd"]["hosts"])
    assert etcd_members == cps

    # the second converge changes nothing on any host
    store = LocalStore(state)
    user = lifecycle.load_cluster(store, name, completed=False)
    rerun = converge(store, user)
    assert set(rerun.recap) == set(hosts)
    assert {h: r["changed"] for h, r in rerun.recap.items()} == dict.fromkeys(hosts, 0)

    # what the roles did, seen on the machines over SSH with host-key checking on
    modules = ssh(state, name, f"{name}-node-1", "cat /etc/modules-load.d/kpyops.conf")
    listed = {line for line in modules.splitlines() if line and not line.startswith("#")}
    assert listed == {"br_netfilter", "overlay", "nf_conntrack"}  # iptables mode: no ip_vs
    assert ssh(state, name, f"{name}-node-2", "cat /proc/sys/net/ipv4/ip_forward").strip() == "1"
    # every stage ran for real where it can: etcd over TLS, containerd, the proxy, manifests
    cp = cps[0]
    health = ssh(state, name, cp, "ETCDCTL_API=3 /usr/local/bin/etcdctl --endpoints=https://127.0.0.1:2379 "
                 "--cacert=/etc/etcd/pki/ca.crt --cert=/etc/etcd/pki/healthcheck-client.crt "
                 "--key=/etc/etcd/pki/healthcheck-client.key endpoint health 2>&1")
    assert "https://127.0.0.1:2379 is healthy" in health, health
    for host in hosts:
        assert ssh(state, name, host, "systemctl is-active containerd kpyops-proxy").split() == ["active"] * 2
        assert ssh(state, name, host, "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:10256/healthz") == "200"
        assert ssh(state, name, host, "systemctl is-enabled kubelet; systemctl is-active kubelet; true"
                   ).split() == ["enabled", "active"]
    for host in cps:
        assert ssh(state, name, host, "ls /etc/kubernetes/manifests").split() == [
            "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"]
    for host in nodes:
        assert ssh(state, name, host, "ls -A /etc/kubernetes/manifests") == ""
    # the active kubelet configuration is the assigned one, written by the kubelet role
    kubelet_cfg = yaml.safe_load(ssh(state, name, f"{name}-node-1", "cat /var/lib/kubelet/config.yaml"))
    assert kubelet_cfg["kind"] == "KubeletConfiguration" and kubelet_cfg["readOnlyPort"] == 0
    assert ssh(state, name, f"{name}-node-1", "cmp /var/lib/kubelet/config.yaml "
               "/var/lib/kubelet/kpyops/assigned.yaml && echo same").strip() == "same"

    check_running_kubernetes(state, name, cps, hosts)
    check_validate_and_services(state, name, cps, nodes, created_at)

    # CIS file checks, on every host each file belongs on
    where = {"cp": cps, "etcd": etcd_members, "all": hosts}
    checked = 0
    for host in hosts:
        mine = [(p, m, o, cis) for p, m, o, cis, on in CIS_FILES if host in where[on]]
        pki = ssh(state, name, host, "find /etc/kubernetes/pki -mindepth 1 -type f").split()
        assert any(p.endswith(".key") for p in pki) and any(p.endswith(".crt") for p in pki), pki
        for p in pki:
            assert Path(p).suffix in CIS_PKI, f"{host}:{p} is neither a certificate nor a key"
        mine += [(p, CIS_PKI[Path(p).suffix], "root:root", "1.1.19-1.1.21") for p in pki]
        pki_dirs = ssh(state, name, host, "find /etc/kubernetes/pki -mindepth 1 -type d").split()
        mine += [(p, 0o755, "root:root", "1.1.19") for p in pki_dirs]
        found = stats(state, name, host, [p for p, *_ in mine])
        for path, allowed, owner, cis in mine:
            mode, got_owner = found[path]
            assert stricter(mode, allowed), f"CIS {cis}: {host}:{path} is {mode:o}, wants {allowed:o} or stricter"
            assert got_owner == owner, f"CIS {cis}: {host}:{path} is owned by {got_owner}, wants {owner}"
            checked += 1
    assert checked >= len(CIS_FILES)  # every check ran, each on at least one host

    # the plan for hosts (check mode) is read-only and names what drifted
    assert "would change nothing" in kpyops(state, "update", "cluster", name, "--hosts").stderr
    ssh(state, name, f"{name}-node-1", "sysctl -qw net.ipv4.ip_forward=0")
    planned = kpyops(state, "update", "cluster", name, "--hosts")
    assert (f"  ~ host {name}-node-1\n      ~ task kernel_modules : sysctls | Apply values"
            in planned.stdout), planned.stdout
    assert f"host {name}-node-2" not in planned.stdout
    assert ssh(state, name, f"{name}-node-1", "sysctl -n net.ipv4.ip_forward").strip() == "0"

    # one kube-apiserver flag changed in the spec, as a user does it (get, edit, update -f):
    # the next run rewrites exactly that manifest on each control plane, and nothing else
    # (it also repairs the sysctl drift above, which is not in a file)
    flag, value = "max-requests-inflight", "500"
    assert flag in k8s_flags("kube-apiserver")
    before = {host: checksums(state, name, host) for host in hosts}
    assert all(before.values())
    for host in cps:
        assert f"--{flag}=" not in ssh(state, name, host, "cat /etc/kubernetes/manifests/kube-apiserver.yaml")
    spec = yaml.safe_load(kpyops(state, "get", "cluster", name, "-o", "yaml").stdout)
    spec["spec"].setdefault("controlPlane", {}).setdefault("extraArgs", {}).setdefault(
        "kube-apiserver", {})[flag] = value
    edited = state / "edited.yaml"
    edited.write_text(yaml.safe_dump(spec))
    plan = kpyops(state, "update", "cluster", name, "-f", str(edited))
    assert f"{flag}" in plan.stdout, plan.stdout
    updated = kpyops(state, "update", "cluster", name, "-f", str(edited), "--yes")
    # each control plane changed its manifest, node-1 its sysctl, node-2 nothing
    assert recap_of(updated.stderr) == {**dict.fromkeys(cps, 1), nodes[0]: 1, nodes[1]: 0}
    after = {host: checksums(state, name, host) for host in hosts}
    changed = sorted(
        (host, path)
        for host in hosts
        for path in before[host].keys() | after[host].keys()
        if before[host].get(path) != after[host].get(path)
    )
    assert changed == [(host, "/etc/kubernetes/manifests/kube-apiserver.yaml") for host in cps]
    run = kube.ssh_runner(state, name)
    for host in cps:
        assert f"--{flag}={value}" in kube.process_args(run, host, "kube-apiserver"), host
        # the apiserver came back (the handler waited for /readyz); the others did not restart
        assert run(host, f"{kube.KUBECTL} get --raw /readyz").strip() == "ok"
    # controller-manager's manifest is unchanged (above); with one control plane it may still
    # restart itself when it loses its leader lease while the API server restarts: healthy again
    for host in cps:
        kube.wait_for("controller-manager healthy after the API server's restart",
                      lambda h=host: run(h, "curl -sk https://127.0.0.1:10257/healthz").strip() == "ok")
    for host in cps:
        pod = yaml.safe_load(ssh(state, name, host, "cat /etc/kubernetes/manifests/kube-apiserver.yaml"))
        assert f"--{flag}={value}" in pod["spec"]["containers"][0]["command"], host
    assert ssh(state, name, f"{name}-node-1", "sysctl -n net.ipv4.ip_forward").strip() == "1"
    # and the cluster is valid again
    revalidated = json.loads(kpyops(state, "validate", "cluster", name, "--wait", "5m", "-o", "json").stdout)
    assert revalidated["valid"] is True, revalidated
    # the stored spec is the edited one, and a run of it changes nothing
    user = lifecycle.load_cluster(store, name, completed=False)
    assert user.spec.control_plane.extra_args["kube-apiserver"][flag] == value
    again = converge(store, user)
    assert {h: r["changed"] for h, r in again.recap.items()} == dict.fromkeys(hosts, 0)

    # the inventory works without the CLI, like kubespray's
    plain = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible-playbook")),
            "-i",
            str(inventory),
            "cluster.yml",
            "--tags",
            "kernel_modules",
        ],
        cwd=Path(__file__).resolve().parents[3],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0"},
    )
    assert plain.returncode == 0, plain.stdout[-3000:]
    assert "changed=0" in plain.stdout and "changed=1" not in plain.stdout

    check_reset_and_rejoin(state, name, store, user, hosts, nodes[1])

    # delete leaves no container, network or state behind
    kpyops(state, "delete", "cluster", name, "--yes")
    assert podman_names(f"kpyops.io/cluster={name}") == []
    assert not network_exists(f"kpyops-{name}")
    assert not (state / "clusters" / name).exists()


def test_bad_input_creates_no_machine(cluster):
    state, name = cluster
    for args in (["--control-planes", "2"], ["--control-planes", "3", "--nodes", "-1"]):
        bad = kpyops(state, "create", "cluster", name, *args, "--yes", check=False)
        assert bad.returncode == 2, bad.stderr
        assert "spec." in bad.stderr and "nothing was changed" in bad.stderr
    assert podman_names(f"kpyops.io/cluster={name}") == []
    assert not network_exists(f"kpyops-{name}")
    assert not (state / "clusters" / name).exists()


def test_failed_converge_is_reported(cluster):
    """A host that cannot install its packages fails the run with Ansible's own words."""
    state, name = cluster
    kpyops(state, "create", "cluster", name, "--nodes", "0")  # the spec only: no machine yet
    store = LocalStore(state)
    user = lifecycle.load_cluster(store, name, completed=False)
    # the machine, without a converge (its first cluster.yml run is the one that must fail)
    get_cloud("local", store).apply(complete(user))
    # take a base package away and leave apt no index and no mirror to get it back from
    subprocess.run(
        [
            "podman",
            "exec",
            f"{name}-cp-1",
            "sh",
            "-c",
            "dpkg -r --force-depends conntrack >/dev/null && rm -rf /var/lib/apt/lists/* "
            "&& echo 'deb http://invalid.invalid/debian bookworm main' > /etc/apt/sources.list",
        ],
        check=True,
    )
    with pytest.raises(PlaybookFailed) as err:
        lifecycle.apply(store, user, progress=lambda _m: None)
    assert any("fatal: [" + f"{name}-cp-1]" in line for line in err.value.tail), err.value.tail
