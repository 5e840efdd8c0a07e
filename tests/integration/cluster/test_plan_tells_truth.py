"""The plan tells the truth, on a local cluster of 1 control plane + 1 node.

For representative spec changes in sequence, as a user makes them (get, edit, `update -f FILE
--hosts`, then `--yes`): the CPU-manager policy of a node group (drains its node), an etcd
setting (restarts etcd), a kubelet setting, an API server flag, the proxy mode (or its sync
period on a kernel without IPVS), and a node count change (a new machine):

- the plan's host check runs against the inventory the change would produce, and the state
  store is byte for byte what it was after it;
- the hosts, files, tasks, handlers and drains the plan names are exactly those the apply then
  reports, and the hosts the apply's recap counts changes on are the hosts the plan named
  (plus a new machine, which the plan names as not checked);
- a second plan after the apply is empty, and a run after it changes nothing.

Then a stopped machine shows in the plan (and is not checked), and the apply says it
started it. One cluster, every step in sequence: 29 cluster.yml runs (17 converges, 12 check
runs), about 90 minutes on a 2-core machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

# 17 cluster.yml runs on one cluster: longer than CI's cluster lane can hold next to the
# end-to-end test, so it is selected by hand (-m long); see scripts/test.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.long]
KPYOPS = str(Path(sys.executable).with_name("kpyops"))
IPVS = Path("/proc/sys/net/ipv4/vs")  # the kernel's IPVS, when loaded
PROXY_CONFIG = "/etc/kpyops/proxy.yaml"
POD_ROUTES = "/etc/systemd/system/kpyops-pod-routes.service"


def kpyops(state: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([KPYOPS, "--state", str(state), *args], capture_output=True, text=True,
                          timeout=1800, env={**os.environ, "COLUMNS": "1000"})
    assert proc.returncode == 0, f"kpyops {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def podman_names(label: str) -> list[str]:
    out = subprocess.run(["podman", "ps", "-a", "--filter", f"label={label}", "--format", "json"],
                         capture_output=True, text=True, check=True).stdout
    return sorted(c["Names"][0] for c in json.loads(out or "[]"))


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under a cluster's state: sha256 of a file's bytes, and modes."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = f"{p.stat().st_mode:o} " + (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
    return out


def report(stdout: str) -> dict[str, dict[str, list[str]]]:
    """host -> {"files": [...], "tasks": [...], "handlers": [...], "drains": [...]} from the
    CLI's per-host report lines (a handler by its name, whatever its state)."""
    hosts: dict[str, dict[str, list[str]]] = {}
    host = None
    for line in stdout.splitlines():
        if m := re.match(r"^  ~ host (\S+)$", line):
            host = m[1]
            hosts[host] = {"files": [], "tasks": [], "handlers": [], "drains": []}
        elif host and (m := re.match(r"^      ~ (file|task) (.+)$", line)):
            hosts[host][m[1] + "s"].append(m[2])
        elif host and (m := re.match(r"^      > handler (.+?)( \(.*\))?$", line)):
            hosts[host]["handlers"].append(m[1])
        elif host and (m := re.match(r"^      ! drain node (\S+)$", line)):
            hosts[host]["drains"].append(m[1])
        elif not line.startswith("      "):
            host = None
    return hosts


def recap(stderr: str) -> dict[str, int]:
    """host -> changed, from the CLI's 'converged in Ns: host changed=N, ...' line."""
    line = next(ln for ln in stderr.splitlines() if "converged in" in ln)
    return {h: int(c) for h, c in re.findall(r"(\S+) changed=(\d+)", line)}


@pytest.fixture
def cluster(tmp_path):
    name = f"pt{uuid.uuid4().hex[:6]}"
    yield tmp_path, name
    if (tmp_path / "clusters" / name).exists():
        subprocess.run([KPYOPS, "--state", str(tmp_path), "delete", "cluster", name, "--yes"],
                       capture_output=True, timeout=600)
    for c in podman_names(f"kpyops.io/cluster={name}"):
        subprocess.run(["podman", "rm", "-f", "-t", "0", c], capture_output=True)
    subprocess.run(["podman", "network", "rm", "-f", f"kpyops-{name}"], capture_output=True)


def test_plan_and_apply_agree(cluster):
    state, name = cluster
    cp, node = f"{name}-cp-1", f"{name}-node-1"
    folder = state / "clusters" / name
    created = kpyops(state, "create", "cluster", name, "--cloud", "local", "--control-planes", "1",
                     "--nodes", "1", "--yes")
    assert set(recap(created.stderr)) == {cp, node}
    assert set(recap(kpyops(state, "update", "cluster", name, "--yes").stderr).values()) == {0}

    def edit(change) -> Path:
        spec = yaml.safe_load(kpyops(state, "get", "cluster", name, "-o", "yaml").stdout)
        change(spec["spec"])
        path = state / f"edited-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(spec))
        return path

    proxy_mode = yaml.safe_load(kpyops(state, "get", "cluster", name, "-o", "yaml", "--full").stdout
                                )["spec"]["kubeProxy"]["mode"]
    if IPVS.exists() or proxy_mode == "ipvs":
        other_mode = {"ipvs": "iptables", "iptables": "ipvs", "nftables": "ipvs"}[proxy_mode]
        proxy = (f"the proxy mode ({proxy_mode} -> {other_mode})",
                 lambda s: s.setdefault("kubeProxy", {}).update(mode=other_mode),
                 {cp: {"/etc/modules-load.d/kpyops.conf", PROXY_CONFIG},
                  node: {"/etc/modules-load.d/kpyops.conf", PROXY_CONFIG}})
    else:
        # this kernel has no IPVS: ipvs mode is refused by the proxy role's preflight (by the
        # plan's check run as by the apply), so the proxy's sync period changes instead
        proxy = ("the proxy's sync period (the kernel has no IPVS for a mode switch)",
                 lambda s: s.setdefault("kubeProxy", {}).update(syncPeriod="45s"),
                 {cp: {PROXY_CONFIG}, node: {PROXY_CONFIG}})
    node2 = f"{name}-node-2"
    changes = [
        # (what, the spec change, files the plan must name on each host (at least), the nodes
        # it drains, and a machine it creates)
        ("the CPU-manager policy of the node group (none -> static)",
         lambda s: s["nodeGroups"][0].setdefault("kubelet", {}).update(
             cpuManagerPolicy="static", reservedSystemCPUs="0"),
         {node: {"/var/lib/kubelet/config.yaml"}}, {node}, None),
        ("an etcd setting (snapshotCount)",
         lambda s: s.setdefault("etcd", {}).setdefault("tuning", {}).update(snapshotCount=20000),
         {cp: {"/etc/etcd/etcd.env"}}, set(), None),
        ("kubelet maxPods", lambda s: s.setdefault("kubelet", {}).update(maxPods=55),
         {cp: {"/var/lib/kubelet/config.yaml"}, node: {"/var/lib/kubelet/config.yaml"}}, set(), None),
        ("an API server flag", lambda s: s.setdefault("controlPlane", {}).setdefault("extraArgs", {})
         .setdefault("kube-apiserver", {}).update({"max-requests-inflight": "500"}),
         {cp: {"/etc/kubernetes/manifests/kube-apiserver.yaml"}}, set(), None),
        (*proxy, set(), None),
        # a new machine: the plan cannot check it (it names it), and the running hosts change
        # only what names the newcomer: their hosts file and the route to its pod range (a
        # range given when it registers: the plan names the route, the apply writes it)
        ("the node count (1 -> 2)", lambda s: s["nodeGroups"][0].update(count=2),
         {cp: {"/etc/hosts", POD_ROUTES}, node: {"/etc/hosts", POD_ROUTES}}, set(), node2),
    ]
    for what, change, expected, drains, new_machine in changes:
        edited = edit(change)
        before = snapshot(folder)
        plan = kpyops(state, "update", "cluster", name, "-f", str(edited), "--hosts")
        # nothing stored: not the spec, not the inventory, no temporary folder left
        assert snapshot(folder) == before, what
        planned = report(plan.stdout)
        assert set(planned) == set(expected), f"{what}: plan names {planned}\n{plan.stdout}"
        for host, files in expected.items():
            assert files <= set(planned[host]["files"]), f"{what}: {host}: {planned[host]}"
        assert {n for r in planned.values() for n in r["drains"]} == drains, f"{what}\n{plan.stdout}"
        if new_machine:
            assert f"  + container {new_machine}" in plan.stdout, plan.stdout
            assert f"  ? host {new_machine}: not checked: a new machine" in plan.stdout, plan.stdout
            # only the newcomer runs cluster.yml; the others nothing but what names it
            assert f"nodes added only: cluster.yml would run on {new_machine}" in plan.stderr
            assert f"<the pod range of {new_machine}, given when it registers>" in plan.stdout

        applied = kpyops(state, "update", "cluster", name, "-f", str(edited), "--yes")
        done = report(applied.stdout)
        if new_machine:  # it did all of its work; the plan said it would not check it
            assert done.pop(new_machine)["files"], applied.stdout
            assert f"machines changed:\n  + container {new_machine}" in applied.stdout, applied.stdout
        # the apply changed exactly the hosts and files the plan named, and nothing else
        assert {h: sorted(r["files"]) for h, r in done.items()} == {
            h: sorted(r["files"]) for h, r in planned.items()}, f"{what}\nplan:\n{plan.stdout}\napply:\n{applied.stdout}"
        for part in ("tasks", "handlers", "drains"):
            assert {h: sorted(r[part]) for h, r in done.items()} == {
                h: sorted(r[part]) for h, r in planned.items()}, f"{what}: {part}\nplan:\n{plan.stdout}\napply:\n{applied.stdout}"
        assert {h for h, c in recap(applied.stderr).items() if c} == set(planned) | (
            {new_machine} if new_machine else set()), what

        # the second plan is empty, and a run changes nothing
        again = kpyops(state, "update", "cluster", name, "--hosts")
        assert "machines and inventory match the spec" in again.stderr, what
        assert "would change nothing" in again.stderr and report(again.stdout) == {}, f"{what}\n{again.stdout}"
        assert set(recap(kpyops(state, "update", "cluster", name, "--yes").stderr).values()) == {0}, what

    # the node whose policy changed runs pods again (uncordoned), and the new node is Ready
    nodes = json.loads(subprocess.run(
        ["podman", "exec", cp, "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "get",
         "nodes", "-o", "json"], capture_output=True, text=True, check=True).stdout)["items"]
    ready = {n["metadata"]["name"]: any(c["type"] == "Ready" and c["status"] == "True"
                                        for c in n["status"]["conditions"]) for n in nodes}
    assert ready == {cp: True, node: True, node2: True}, ready
    assert not any(n["spec"].get("unschedulable") for n in nodes), nodes

    # a stopped machine is drift: the plan says so, and does not pretend to check it
    subprocess.run(["podman", "stop", "-t", "5", node], check=True, capture_output=True)
    before = snapshot(folder)
    plan = kpyops(state, "update", "cluster", name, "--hosts")
    assert snapshot(folder) == before
    assert "match the spec" not in plan.stderr
    assert f"  ~ container {node}\n      state: 'exited' -> 'running'" in plan.stdout, plan.stdout
    assert f"  ? host {node}: not checked: its machine is exited" in plan.stdout
    assert report(plan.stdout) == {}  # the running control plane needs nothing
    applied = kpyops(state, "update", "cluster", name, "--yes")
    assert f"machines changed:\n  ~ container {node}" in applied.stdout, applied.stdout
    assert f"starting host {node} (it was exited)" in applied.stderr
    assert recap(applied.stderr)[cp] == 0
    assert set(recap(kpyops(state, "update", "cluster", name, "--yes").stderr).values()) == {0}
