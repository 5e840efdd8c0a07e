"""Adding a worker node to a running local cluster, and taking it out again (1 control plane
+ 1 node, then 2 nodes, then 1).

Adding: `update -f FILE --hosts` with the node group's count raised names the new machine
(not checked: it does not run yet) and, on the hosts already there, only what names the
newcomer: their hosts file and the route to its pod range, a range given when it registers.
`--yes` converges cluster.yml on the newcomer only, then the neighbours playbook on the others,
which change exactly what the plan named; the cluster validates with a probe pod on the new
node that reaches a Service, and a converge after it changes nothing. The seconds are printed
next to the create's.

Removing: `delete node` without --yes plans (drain, the Node object, the machine, the others'
hosts files and routes) and changes nothing; with --yes the node is drained and gone from the
API, the spec, the inventory and podman; the cluster validates and a converge changes nothing.
Run by hand (-m long): about 20 minutes on 2 cores.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
import yaml
from test_local_cluster import KPYOPS, kpyops
from test_plan_tells_truth import POD_ROUTES, podman_names, recap, report

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.long]


@pytest.fixture
def cluster(tmp_path):
    name = f"sc{uuid.uuid4().hex[:6]}"
    yield tmp_path, name
    subprocess.run([KPYOPS, "--state", str(tmp_path), "delete", "cluster", name, "--yes"],
                   capture_output=True, timeout=600)


def nodes(state, name: str, cp: str) -> dict[str, dict]:
    out = subprocess.run(["podman", "exec", cp, "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf",
                          "get", "nodes", "-o", "json"], capture_output=True, text=True, check=True)
    return {n["metadata"]["name"]: n for n in json.loads(out.stdout)["items"]}


def validated(state, name: str) -> dict:
    valid = json.loads(kpyops(state, "validate", "cluster", name, "--wait", "10m", "-o", "json").stdout)
    assert valid["valid"] is True, valid
    return valid


def test_add_a_node_then_remove_it(cluster):
    state, name = cluster
    cp, node, node2 = f"{name}-cp-1", f"{name}-node-1", f"{name}-node-2"
    started = time.monotonic()
    kpyops(state, "create", "cluster", name, "--cloud", "local", "--control-planes", "1",
           "--nodes", "1", "--yes")
    print(f"figure: create 1 control plane + 1 node: {time.monotonic() - started:.0f}s")
    validated(state, name)

    spec = yaml.safe_load(kpyops(state, "get", "cluster", name, "-o", "yaml").stdout)
    spec["spec"]["nodeGroups"][0]["count"] = 2
    edited = state / "two-nodes.yaml"
    edited.write_text(yaml.safe_dump(spec))
    plan = kpyops(state, "update", "cluster", name, "-f", str(edited), "--hosts")
    assert f"nodes added only: cluster.yml would run on {node2}" in plan.stderr, plan.stderr
    assert f"  + container {node2}" in plan.stdout and f"  ? host {node2}: not checked" in plan.stdout
    planned = report(plan.stdout)
    assert {h: sorted(r["files"]) for h, r in planned.items()} == {
        cp: sorted(["/etc/hosts", POD_ROUTES]), node: sorted(["/etc/hosts", POD_ROUTES])}, plan.stdout
    assert f"<the pod range of {node2}, given when it registers>" in plan.stdout

    started = time.monotonic()
    applied = kpyops(state, "update", "cluster", name, "-f", str(edited), "--yes")
    print(f"figure: add one node to a running cluster of 2 hosts: {time.monotonic() - started:.0f}s")
    assert f"adding {node2} to {name}: cluster.yml runs there" in applied.stderr, applied.stderr
    done = report(applied.stdout)
    assert done.pop(node2)["files"], applied.stdout  # the newcomer did all of its work
    # the others changed exactly what the plan named: files, tasks, handlers
    for part in ("files", "tasks", "handlers", "drains"):
        assert {h: sorted(r[part]) for h, r in done.items()} == {
            h: sorted(r[part]) for h, r in planned.items()}, f"{part}\nplan:\n{plan.stdout}\napply:\n{applied.stdout}"
    assert {h for h, c in recap(applied.stderr).items() if c} == {cp, node, node2}
    # the others route to the newcomer's pods, through its address
    cidr = nodes(state, name, cp)[node2]["spec"]["podCIDR"]
    for host in (cp, node):
        route = subprocess.run(["podman", "exec", host, "ip", "route", "show", cidr],
                               capture_output=True, text=True, check=True).stdout
        assert route.startswith(f"{cidr} via "), (host, route)
    # the probe pod on the new node reaches a Service (through a route the others just got)
    valid = validated(state, name)
    assert f"probe on {node2}" in {f["item"] for f in valid["findings"]}, valid
    assert set(recap(kpyops(state, "update", "cluster", name, "--yes").stderr).values()) == {0}

    # take it out again: the plan changes nothing
    preview = kpyops(state, "delete", "node", name, node2)
    assert "run again with --yes to remove it" in preview.stderr, preview.stderr
    assert f"  - container {node2}" in preview.stdout, preview.stdout
    assert node2 in nodes(state, name, cp) and f"{name}-node-2" in podman_names(f"kpyops.io/cluster={name}")
    assert not nodes(state, name, cp)[node2]["spec"].get("unschedulable")
    started = time.monotonic()
    removed = kpyops(state, "delete", "node", name, node2, "--yes")
    print(f"figure: delete node (drain, delete, machine, the others' names and routes): "
          f"{time.monotonic() - started:.0f}s")
    assert f"{node2} removed from {name}" in removed.stderr, removed.stderr
    assert set(nodes(state, name, cp)) == {cp, node}
    assert node2 not in podman_names(f"kpyops.io/cluster={name}")
    stored = yaml.safe_load(kpyops(state, "get", "cluster", name, "-o", "yaml").stdout)
    assert stored["spec"]["nodeGroups"][0]["count"] == 1
    for host in (cp, node):
        hosts = subprocess.run(["podman", "exec", host, "cat", "/etc/hosts"], capture_output=True,
                               text=True, check=True).stdout
        assert node2 not in hosts, (host, hosts)
        route = subprocess.run(["podman", "exec", host, "ip", "route", "show", cidr],
                               capture_output=True, text=True, check=True).stdout
        assert route == "", (host, route)
    validated(state, name)
    again = kpyops(state, "update", "cluster", name, "--hosts")
    assert "machines and inventory match the spec" in again.stderr and report(again.stdout) == {}, again.stdout
    assert set(recap(kpyops(state, "update", "cluster", name, "--yes").stderr).values()) == {0}
