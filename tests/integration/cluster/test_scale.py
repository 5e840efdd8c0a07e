"""Adding worker nodes to a running local cluster, and taking them out again (1 control plane
+ 1 node, then 3 nodes, then 1).

Adding: `update -f FILE --hosts` with the node group's count raised names the new machines
(not checked: they do not run yet) and, on the hosts already there, only what names the
newcomers: their hosts file and the routes to their pod ranges, ranges given when they
register. `--yes` converges cluster.yml on the newcomers only, then the neighbours playbook on
the others, which change exactly what the plan named; the others route to the newcomers'
pods; the cluster validates with a probe pod on each new node that reaches a Service, and a
converge after it changes nothing. The seconds are printed next to the create's.

Removing a live node: `delete node` without --yes plans and changes nothing; with --yes the
node is drained and gone from the API, the spec, the inventory and podman, and from the
others' hosts files and routes. Removing a dead node (its machine stopped, the Node NotReady)
with --no-reset ends without waiting for the drain timeout. After each the cluster validates;
at the end the plan is empty and a converge changes nothing. Run by hand (-m long).
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


def gone(state, name: str, cp: str, others: list[str], node: str, cidr: str) -> None:
    """``node`` is out of the API, the spec's machines, and the others' hosts files and routes."""
    assert node not in nodes(state, name, cp)
    assert node not in podman_names(f"kpyops.io/cluster={name}")
    for host in others:
        hosts = subprocess.run(["podman", "exec", host, "cat", "/etc/hosts"], capture_output=True,
                               text=True, check=True).stdout
        assert node not in hosts, (host, hosts)
        route = subprocess.run(["podman", "exec", host, "ip", "route", "show", cidr],
                               capture_output=True, text=True, check=True).stdout
        assert route == "", (host, route)


def test_add_nodes_then_remove_a_live_and_a_dead_one(cluster):
    state, name = cluster
    cp, node = f"{name}-cp-1", f"{name}-node-1"
    new = [f"{name}-node-2", f"{name}-node-3"]
    started = time.monotonic()
    kpyops(state, "create", "cluster", name, "--cloud", "local", "--control-planes", "1",
           "--nodes", "1", "--yes")
    print(f"figure: create 1 control plane + 1 node: {time.monotonic() - started:.0f}s")
    validated(state, name)

    spec = yaml.safe_load(kpyops(state, "get", "cluster", name, "-o", "yaml").stdout)
    spec["spec"]["nodeGroups"][0]["count"] = 3
    edited = state / "three-nodes.yaml"
    edited.write_text(yaml.safe_dump(spec))
    plan = kpyops(state, "update", "cluster", name, "-f", str(edited), "--hosts")
    assert f"nodes added only: cluster.yml would run on {', '.join(new)}" in plan.stderr, plan.stderr
    for n in new:
        assert f"  + container {n}" in plan.stdout and f"  ? host {n}: not checked" in plan.stdout
        assert f"<the pod range of {n}, given when it registers>" in plan.stdout
    planned = report(plan.stdout)
    assert {h: sorted(r["files"]) for h, r in planned.items()} == {
        cp: sorted(["/etc/hosts", POD_ROUTES]), node: sorted(["/etc/hosts", POD_ROUTES])}, plan.stdout

    started = time.monotonic()
    applied = kpyops(state, "update", "cluster", name, "-f", str(edited), "--yes")
    print(f"figure: add two nodes to a running cluster of 2 hosts: {time.monotonic() - started:.0f}s")
    assert f"adding {', '.join(new)} to {name}: cluster.yml runs there" in applied.stderr, applied.stderr
    done = report(applied.stdout)
    for n in new:
        assert done.pop(n)["files"], applied.stdout  # the newcomers did all of their work
    # the others changed exactly what the plan named: files, tasks, handlers
    for part in ("files", "tasks", "handlers", "drains"):
        assert {h: sorted(r[part]) for h, r in done.items()} == {
            h: sorted(r[part]) for h, r in planned.items()}, f"{part}\nplan:\n{plan.stdout}\napply:\n{applied.stdout}"
    assert {h for h, c in recap(applied.stderr).items() if c} == {cp, node, *new}
    # the others route to the newcomers' pods, through their addresses
    cidrs = {n: nodes(state, name, cp)[n]["spec"]["podCIDR"] for n in new}
    for host in (cp, node):
        for cidr in cidrs.values():
            route = subprocess.run(["podman", "exec", host, "ip", "route", "show", cidr],
                                   capture_output=True, text=True, check=True).stdout
            assert route.startswith(f"{cidr} via "), (host, route)
    # a probe pod on each new node reaches a Service (through routes the others just got)
    valid = validated(state, name)
    assert {f"probe on {n}" for n in new} <= {f["item"] for f in valid["findings"]}, valid
    assert set(recap(kpyops(state, "update", "cluster", name, "--yes").stderr).values()) == {0}

    # a live node out: the plan changes nothing
    live = new[1]
    preview = kpyops(state, "delete", "node", name, live)
    assert "run again with --yes to remove it" in preview.stderr, preview.stderr
    assert f"  - container {live}" in preview.stdout, preview.stdout
    assert live in nodes(state, name, cp) and live in podman_names(f"kpyops.io/cluster={name}")
    assert not nodes(state, name, cp)[live]["spec"].get("unschedulable")
    started = time.monotonic()
    removed = kpyops(state, "delete", "node", name, live, "--yes")
    print(f"figure: delete a live node (drain, Node, machine, the others' names and routes): "
          f"{time.monotonic() - started:.0f}s")
    assert f"{live} removed from {name}" in removed.stderr, removed.stderr
    gone(state, name, cp, [cp, node, new[0]], live, cidrs[live])
    validated(state, name)

    # a dead node out, its host left alone
    dead = new[0]
    subprocess.run(["podman", "stop", "-t", "5", dead], check=True, capture_output=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        conditions = nodes(state, name, cp)[dead]["status"]["conditions"]
        if any(c["type"] == "Ready" and c["status"] != "True" for c in conditions):
            break
        time.sleep(5)
    else:
        raise AssertionError(f"{dead} still Ready 300 s after its machine stopped")
    started = time.monotonic()
    removed = kpyops(state, "delete", "node", name, dead, "--yes", "--no-reset")
    # (a drain that waited for the dead kubelet would have failed at its timeout, and the command)
    print(f"figure: delete a dead node (--no-reset): {time.monotonic() - started:.0f}s")
    assert f"{dead} removed from {name}" in removed.stderr, removed.stderr
    gone(state, name, cp, [cp, node], dead, cidrs[dead])
    stored = yaml.safe_load(kpyops(state, "get", "cluster", name, "-o", "yaml").stdout)
    assert stored["spec"]["nodeGroups"][0]["count"] == 1
    validated(state, name)
    again = kpyops(state, "update", "cluster", name, "--hosts")
    assert "machines and inventory match the spec" in again.stderr and report(again.stdout) == {}, again.stdout
    assert set(recap(kpyops(state, "update", "cluster", name, "--yes").stderr).values()) == {0}
