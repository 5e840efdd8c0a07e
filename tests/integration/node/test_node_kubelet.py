"""kubelet role on real test hosts, with the kubelet test double (fake_kubelet.py).

Runs the real playbook (playbooks/kubelet.yml, binary download skipped by an explicit
variable) and checks files, modes, the CPU-manager policy switch and the last-known-good
rollback on the hosts afterwards.
"""

from __future__ import annotations

import json

import pytest
import yaml
from nodelab import ROOT, Lab, install_fake_kubelet

pytestmark = pytest.mark.integration

PLAYBOOK = ROOT / "playbooks/kubelet.yml"
# these hosts have the kubelet test double instead of a downloaded kubelet: it is started and
# checked for real
SKIP = {"kube_binaries_skip_download": True, "kubelet_start": True}
NODES = ["kpckl-work-1", "kpckl-work-2"]
SPEC = {
    "metadata": {"name": "kpckl"},
    "spec": {
        "cloud": "local",
        "local": {"subnet": "10.214.242.0/24"},
        "nodeGroups": [{"name": "work", "count": 2}],
    },
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with Lab.running(SPEC, tmp_path_factory.mktemp("kubelet")) as lab:
        install_fake_kubelet(lab, NODES)
        yield lab


def run(lab: Lab, *args: str, **extra):
    return lab.playbook(PLAYBOOK, *args, limit=",".join(NODES), extra_vars={**SKIP, **extra})


def set_work_kubelet(lab: Lab, *, unchecked: bool = False, **settings) -> None:
    """New kubelet settings for the work group, through the spec; unchecked: written into
    the inventory as an operator editing group_vars by hand would, past the spec's checks."""
    cluster = lab.cluster.model_copy(deep=True)
    group = next(g for g in cluster.spec.node_groups if g.name == "work")
    data = group.kubelet.model_dump(by_alias=True, exclude_none=True)
    data.update(settings)
    if unchecked:  # model_copy(update=...) does not validate; the spec is not completed again
        group.kubelet = group.kubelet.model_copy(update=settings)
        lab.cluster = cluster
        lab.write_inventory()
        return
    group.kubelet = type(group.kubelet).model_validate(data)
    lab.write_inventory(cluster)


def active(lab: Lab, host: str, name: str = "config.yaml") -> dict:
    return yaml.safe_load(lab.sh(host, f"cat /var/lib/kubelet/{'kpyops/' if name != 'config.yaml' else ''}{name}"))


def checkpoint(lab: Lab, host: str) -> str:
    return json.loads(lab.sh(host, "cat /var/lib/kubelet/cpu_manager_state"))["policyName"]


def test_1_converge_writes_files_with_cis_modes_and_is_idempotent(lab):
    first = run(lab)
    first.assert_ok()
    assert "SKIPPED: kube_binaries_skip_download is true" in first.output
    run(lab).assert_no_change()
    for host in NODES:
        assert lab.sh(host, "systemctl is-active kubelet").strip() == "active"
        assert lab.sh(host, "curl -s http://127.0.0.1:10248/healthz") == "ok"
        assert checkpoint(lab, host) == "none"
        cfg = active(lab, host)
        assert cfg["cpuManagerPolicy"] == "none" and cfg["readOnlyPort"] == 0
        # CIS checks on files (mode at most, owner root:root)
        for path, mode in {
            "/var/lib/kubelet/config.yaml": "600",          # 4.1.9 / 4.1.10
            "/etc/systemd/system/kubelet.service": "600",   # 4.1.1 / 4.1.2
            "/etc/kubernetes/kubelet.conf": "600",          # 4.1.5 / 4.1.6
            "/var/lib/kubelet": "700",
            "/etc/kubernetes/manifests": "700",
        }.items():
            assert lab.stat(host, path) == (mode, "root:root"), path


def test_2_cpu_manager_switch_drains_stops_removes_checkpoint_and_starts(lab):
    set_work_kubelet(lab, cpuManagerPolicy="static", reservedSystemCPUs="0")
    r = run(lab)
    r.assert_ok()
    out = r.output
    assert "CPU manager policy none -> static" in out
    # no API on the test hosts: the role says it did not drain, and goes on
    assert "is not cordoned nor drained before the CPU-manager switch" in out
    # the sequence on each node, and serial: node 1 is healthy before node 2 is stopped
    ev = [(t, h, s) for t, h, s in r.events() if t.startswith(("Rollout |", "Health |", "Drain |"))]
    order = [(t, h) for t, h, s in ev if s in ("changed", "ok", "included")]

    def at(task, host):
        return order.index((task, host))

    for host in NODES:
        steps = ["Drain | Check whether the API answers (from the first control plane)",
                 "Rollout | Stop kubelet for the CPU-manager policy switch",
                 "Rollout | Remove the CPU manager's checkpoint of the old policy",
                 "Rollout | Make the assigned configuration active",
                 "Rollout | Restart kubelet with the new configuration",
                 "Health | Probe kubelet's /healthz until it answers ok"]
        positions = [at(step, host) for step in steps]
        assert positions == sorted(positions), host
    assert at("Health | Probe kubelet's /healthz until it answers ok", NODES[0]) < at(
        "Rollout | Stop kubelet for the CPU-manager policy switch", NODES[1])
    for host in NODES:
        assert checkpoint(lab, host) == "static"
        assert active(lab, host)["cpuManagerPolicy"] == "static"
        assert active(lab, host, "last-known-good.yaml")["cpuManagerPolicy"] == "none"
        assert lab.sh(host, "curl -s http://127.0.0.1:10248/healthz") == "ok"
    run(lab).assert_no_change()


def test_3_without_removing_the_checkpoint_kubelet_would_crash(lab):
    """The negative control for test 2: the double refuses a policy that differs from the
    checkpoint, like kubelet; so the removal in the role is what made test 2 pass."""
    host = NODES[0]
    out = lab.sh(host, "sed 's/cpuManagerPolicy: static/cpuManagerPolicy: none/' "
                       "/var/lib/kubelet/config.yaml > /tmp/c.yaml; "
                       "timeout 5 /usr/local/bin/kubelet --config=/tmp/c.yaml; echo rc=$?", check=False)
    assert "differs from state checkpoint policy" in out and "rc=1" in out


def test_4_bad_config_is_rolled_back_to_last_known_good(lab):
    before = {h: active(lab, h) for h in NODES}
    # a value kubelet refuses; the spec refuses it too, so it comes in past the spec
    set_work_kubelet(lab, unchecked=True, eviction_hard={"memory.available": "lots"})
    r = run(lab, kubelet_health_timeout=12)
    assert r.rc != 0
    first = NODES[0]
    assert r.recap[first]["failed"] == 1
    assert f"kubelet on {first} did not report healthy within 12s" in r.output
    assert "Restored the last-known-good configuration; kubelet is healthy again" in r.output
    assert "failed to parse evictionHard threshold" in r.output  # the reason, from kubelet's log
    # serial + any_errors_fatal: the second node was never touched
    assert NODES[1] not in r.recap or r.recap[NODES[1]]["changed"] == 0
    assert active(lab, NODES[1]) == before[NODES[1]]
    # the first node runs its previous configuration again, healthy
    assert active(lab, first) == before[first]
    assert lab.sh(first, "curl -s http://127.0.0.1:10248/healthz") == "ok"
    assigned = active(lab, first, "assigned.yaml")
    assert assigned["evictionHard"]["memory.available"] == "lots"
    assert lab.stat(first, "/var/lib/kubelet/kpyops/last-known-good.yaml") == ("600", "root:root")


def test_5_fixed_spec_converges_again(lab):
    set_work_kubelet(lab, evictionHard={"memory.available": "200Mi"})
    run(lab).assert_ok()
    for host in NODES:
        assert active(lab, host)["evictionHard"]["memory.available"] == "200Mi"
        assert lab.sh(host, "curl -s http://127.0.0.1:10248/healthz") == "ok"
    run(lab).assert_no_change()


def test_6_without_start_files_are_written_but_kubelet_is_left_alone(lab):
    """kubelet_start false (the local cloud's setting): a CPU-manager switch back to none
    still writes the configuration, keeps last-known-good and removes the old checkpoint,
    but kubelet is not stopped, restarted or drained; check mode shows exactly that."""
    pids = {h: lab.sh(h, "systemctl show -p MainPID --value kubelet").strip() for h in NODES}
    assert all(pid != "0" for pid in pids.values())
    config_sum = {h: lab.sh(h, "sha256sum /var/lib/kubelet/config.yaml") for h in NODES}
    assert {checkpoint(lab, h) for h in NODES} == {"static"}
    set_work_kubelet(lab, cpuManagerPolicy="none", reservedSystemCPUs=None)

    plan = run(lab, "--check", "--diff", kubelet_start=False)
    plan.assert_ok()
    assert "-cpuManagerPolicy: static" in plan.output and "+cpuManagerPolicy: none" in plan.output
    planned = {(t, h) for t, h, st in plan.events() if st == "changed"}
    for host in NODES:
        assert f"SKIPPED: kubelet not started on {host}: " in plan.output
        assert ("Rollout | Make the assigned configuration active", host) in planned
        assert ("Rollout | Remove the CPU manager's checkpoint of the old policy", host) in planned
        # check mode touched nothing
        assert lab.sh(host, "sha256sum /var/lib/kubelet/config.yaml") == config_sum[host]
        assert checkpoint(lab, host) == "static"
    assert not [t for t, _h in planned if "kubelet" in t.lower() and "start" in t.lower()]

    r = run(lab, kubelet_start=False)
    r.assert_ok()
    ran = {(t, st) for t, _h, st in r.events()}
    for task in ("Rollout | Stop kubelet for the CPU-manager policy switch",
                 "Rollout | Restart kubelet with the new configuration",
                 "Rollout | Drain the node before a CPU-manager policy switch",
                 "Rollout | Wait for kubelet to report healthy", "Files | Enable kubelet"):
        assert not {(task, st) for st in ("changed", "ok", "included")} & ran, task
    for host in NODES:
        assert active(lab, host)["cpuManagerPolicy"] == "none"
        assert active(lab, host, "last-known-good.yaml")["cpuManagerPolicy"] == "static"
        assert lab.sh(host, "test -e /var/lib/kubelet/cpu_manager_state && echo present || echo gone"
                      ).strip() == "gone"
        assert lab.stat(host, "/var/lib/kubelet/config.yaml") == ("600", "root:root")
        # the running kubelet was not restarted
        assert lab.sh(host, "systemctl show -p MainPID --value kubelet").strip() == pids[host]
    run(lab, kubelet_start=False).assert_no_change()
