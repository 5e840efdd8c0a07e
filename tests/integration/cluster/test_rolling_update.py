"""rolling-update cluster on a real local cluster (1 control plane + 1 node).

A new spec is stored without touching the hosts (`update -f FILE --yes --target cloud`), then
`rolling-update cluster` names the hosts whose check run is not empty, in batches (control
plane alone first), and with --yes drains, converges and uncordons each batch and validates
the cluster before the next. Afterwards the plan is empty, a converge changes nothing, and no
node is left cordoned. Run by hand (-m long): about 15 minutes on 2 cores.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid

import pytest
import yaml
from test_local_cluster import KPYOPS, kpyops

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.long]


def recap(stderr: str, word: str = "converged in") -> dict[str, int]:
    line = next(ln for ln in stderr.splitlines() if word in ln)
    return {h: int(c) for h, c in re.findall(r"(\S+) changed=(\d+)", line)}


@pytest.fixture
def cluster(tmp_path):
    name = f"ru{uuid.uuid4().hex[:6]}"
    yield tmp_path, name
    subprocess.run([KPYOPS, "--state", str(tmp_path), "delete", "cluster", name, "--yes"],
                   capture_output=True, timeout=600)


def test_rolling_update_drains_converges_and_validates_batch_by_batch(cluster):
    state, name = cluster
    cp, node = f"{name}-cp-1", f"{name}-node-1"
    kpyops(state, "create", "cluster", name, "--cloud", "local", "--control-planes", "1",
           "--nodes", "1", "--yes")
    assert "no host of" in kpyops(state, "rolling-update", "cluster", name).stderr

    spec = yaml.safe_load(kpyops(state, "get", "cluster", name, "-o", "yaml").stdout)
    spec["spec"].setdefault("kubelet", {})["maxPods"] = 60
    edited = state / "edited.yaml"
    edited.write_text(yaml.safe_dump(spec))
    plan = kpyops(state, "update", "cluster", name, "-f", str(edited), "--hosts")
    assert "would restart a service or drain" in plan.stderr and "rolling-update cluster" in plan.stderr, plan.stderr
    kpyops(state, "update", "cluster", name, "-f", str(edited), "--yes", "--target", "cloud")

    planned = kpyops(state, "rolling-update", "cluster", name)
    assert f"  batch 1: {cp}\n  batch 2: {node}\n" in planned.stdout, planned.stdout
    assert "/var/lib/kubelet/config.yaml" in planned.stdout
    assert "run again with --yes" in planned.stderr
    started = time.monotonic()
    done = kpyops(state, "rolling-update", "cluster", name, "--yes")
    seconds = time.monotonic() - started
    print(f"figure: rolling update of 2 hosts (drain, converge, uncordon, validate each): "
          f"{seconds:.0f}s, {seconds / 2:.0f}s per host")
    assert "batch 1/2: validating" in done.stderr and "batch 2/2: validating" in done.stderr, done.stderr
    changed = recap(done.stderr, "rolling update of")
    assert changed[cp] > 0 and changed[node] > 0, changed

    # every node schedulable again, with the new setting live
    ssh = ["podman", "exec", cp, "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"]
    nodes = json.loads(subprocess.run([*ssh, "get", "nodes", "-o", "json"], capture_output=True,
                                      text=True, check=True).stdout)["items"]
    assert {n["metadata"]["name"] for n in nodes} == {cp, node}
    assert not any(n["spec"].get("unschedulable") for n in nodes), [n["spec"] for n in nodes]
    assert {n["status"]["capacity"]["pods"] for n in nodes} == {"60"}
    # nothing left to do: no batch, an empty plan, a converge that changes nothing
    assert "no host of" in kpyops(state, "rolling-update", "cluster", name).stderr
    again = kpyops(state, "update", "cluster", name, "--hosts")
    assert "would change nothing" in again.stderr, again.stdout
    assert set(recap(kpyops(state, "update", "cluster", name, "--yes").stderr).values()) == {0}
