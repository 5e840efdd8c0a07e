"""delete node: refused before anything runs unless only a worker leaves; the plan runs the
same playbooks in check mode and stores nothing; the apply drains, forgets and deletes.
update refuses to take machines away; rolling-update batches, validates and stops."""

from __future__ import annotations

import contextlib

import pytest
import yaml
from click.testing import CliRunner
from test_plan import CP, NAME, NODE, created, snapshot  # noqa: F401 (created: a fixture)

from kpyops import day2, lifecycle
from kpyops.cli.main import cli
from kpyops.clouds.local.cloud import LocalCloud
from kpyops.render.inventory import render_inventory
from kpyops.spec import SpecError, complete, parse
from kpyops.spec.hosts import NotRemovable, removals, without_node

NODE2 = f"{NAME}-node-2"


def spec(**extra):
    return parse({"apiVersion": "kpyops.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "rm"},
                  "spec": {"cloud": "baremetal", **extra}})


BARE = {"controlPlane": {"hosts": [{"name": "cp1", "address": "192.0.2.11"}]},
        "nodeGroups": [{"name": "w", "hosts": [{"name": "w1", "address": "192.0.2.21"},
                                               {"name": "w2", "address": "192.0.2.22"}]}]}


def remove(user, host):
    return without_node(user, host, *lifecycle.node_groups_of(render_inventory(complete(user))))


def test_a_listed_node_leaves_its_list_and_a_counted_group_only_its_last():
    user = spec(**BARE)
    smaller = remove(user, "w1")
    assert [h.name for h in smaller.spec.node_groups[0].hosts] == ["w2"]
    assert [h.name for h in user.spec.node_groups[0].hosts] == ["w1", "w2"]  # a copy
    counted = parse({"apiVersion": "kpyops.io/v1alpha1", "kind": "Cluster", "metadata": {"name": "rm"},
                     "spec": {"cloud": "local", "nodeGroups": [{"name": "n", "count": 3}]}})
    assert remove(counted, "rm-n-3").spec.node_groups[0].count == 2
    with pytest.raises(NotRemovable, match="only its last one, rm-n-3"):
        remove(counted, "rm-n-1")
    with pytest.raises(NotRemovable, match="control plane"):
        remove(user, "cp1")
    with pytest.raises(NotRemovable, match="not a node of cluster rm"):
        remove(user, "w9")


def test_update_refuses_to_take_machines_away():
    user = spec(**BARE)
    fewer = spec(**{**BARE, "nodeGroups": [{"name": "w", "hosts": BARE["nodeGroups"][0]["hosts"][:1]}]})
    (problem,) = removals(complete(user), complete(fewer))
    assert problem[0] == "spec.nodeGroups[0]" and "would lose w2 without draining" in problem[1]
    assert "kpyops delete node rm NODE" in problem[1]
    three = spec(controlPlane={"hosts": [{"name": f"cp{i}", "address": f"192.0.2.1{i}"} for i in (1, 2, 3)]},
                 nodeGroups=BARE["nodeGroups"])
    fields = [f for f, _ in removals(complete(three), complete(user))]
    assert fields == ["spec.controlPlane.count", "spec.etcd.members"]
    assert removals(complete(user), complete(three)) == [] and removals(complete(user), complete(user)) == []


@pytest.fixture
def two_nodes(request, monkeypatch):
    """test_plan's cluster grown to two nodes and converged (fakes), machines included."""
    store, root, podman, runs = request.getfixturevalue("created")
    monkeypatch.setattr(day2, "run_playbook", lifecycle.run_playbook)  # the fixture's recorder
    monkeypatch.setattr(day2, "get_cloud", lifecycle.get_cloud)  # ... and its fake podman

    def made(self, cluster):
        changes = self.plan(cluster)
        for ch in changes:
            if ch.action == "create":
                podman.machines[ch.name] = "running"
            elif ch.action == "delete":
                podman.machines.pop(ch.name)
        return changes

    monkeypatch.setattr(LocalCloud, "apply", made)
    user = lifecycle.load_cluster(store, NAME, completed=False)
    user.spec.node_groups[0].count = 2
    lifecycle.update(store, user, progress=lambda _m: None)
    runs.clear()
    return store, root, podman, runs


def test_the_plan_runs_the_playbooks_in_check_mode_and_stores_nothing(two_nodes):
    store, root, podman, runs = two_nodes
    before = snapshot(root)
    removal = day2.remove_node(store, NAME, NODE2, lambda _m: None, check=True)
    assert snapshot(root) == before and NODE2 in podman.machines
    assert [(r["playbook"], r["kwargs"]["check"], r["kwargs"].get("limit")) for r in runs] == [
        (day2.REMOVE_NODE_PLAYBOOK, True, None),
        (lifecycle.NEIGHBOURS_PLAYBOOK, True, f"{CP},{NODE}")]
    # the machine is deleted by the cloud: no reset of its host
    assert runs[0]["kwargs"]["extra_vars"] == {"node": NODE2, "remove_node_reset": "false",
                                               "reset_confirmed": "true"}
    assert NODE2 not in yaml.safe_load(runs[1]["files"]["hosts.yml"])["all"]["hosts"]
    assert ("delete", NODE2) in [(c.action, c.name) for c in removal.cloud]
    assert removal.spec.spec.node_groups[0].count == 1


def test_the_apply_forgets_the_node_and_deletes_its_machine(two_nodes):
    store, _root, podman, runs = two_nodes
    removal = day2.remove_node(store, NAME, NODE2, lambda _m: None)
    assert [(r["playbook"], r["kwargs"]["check"]) for r in runs] == [
        (day2.REMOVE_NODE_PLAYBOOK, False), (lifecycle.NEIGHBOURS_PLAYBOOK, False)]
    assert NODE2 not in podman.machines and ("delete", NODE2) in [(c.action, c.name) for c in removal.cloud]
    assert lifecycle.load_cluster(store, NAME, completed=False).spec.node_groups[0].count == 1
    stored = yaml.safe_load(store.read_text(NAME, "inventory/hosts.yml"))["all"]["hosts"]
    assert set(stored) == {CP, NODE}


def test_refusals_come_before_any_run(two_nodes):
    _store, root, _podman, runs = two_nodes
    before = snapshot(root)
    r = CliRunner().invoke(cli, ["--state", str(root), "delete", "node", NAME, NODE, "--yes"])
    assert r.exit_code != 0 and f"only its last one, {NODE2}" in r.stderr, r.output
    r = CliRunner().invoke(cli, ["--state", str(root), "delete", "node", NAME, CP, "--yes"])
    assert r.exit_code != 0 and "control plane" in r.stderr, r.output
    assert runs == [] and snapshot(root) == before
    # a lower count is refused by update (plan and apply) before anything runs: delete node drains
    one = root / "one-node.yaml"
    one.write_text(yaml.safe_dump({"apiVersion": "kpyops.io/v1alpha1", "kind": "Cluster", "metadata": {"name": NAME},
                                   "spec": {"cloud": "local", "nodeGroups": [{"name": "node", "count": 1}]}}))
    before = snapshot(root)
    for how in ([], ["--hosts"], ["--yes"]):
        r = CliRunner().invoke(cli, ["--state", str(root), "update", "cluster", NAME, "-f", str(one), *how])
        assert r.exit_code == 2 and f"node group node would lose {NODE2} without draining" in r.stderr, r.output
    assert runs == [] and snapshot(root) == before


def test_rolling_update_batches_validates_and_stops(request, monkeypatch):
    """Hosts whose check run is not empty, control planes alone first; each batch is
    rolling-update.yml --limit BATCH, then validate; an invalid cluster stops the update."""
    store, _root, _podman, runs = request.getfixturevalue("created")
    monkeypatch.setattr(day2, "run_playbook", lifecycle.run_playbook)  # the fixture's recorder
    monkeypatch.setattr(day2, "get_cloud", lifecycle.get_cloud)  # ... and its fake podman
    plan = day2.rolling_plan(store, NAME)  # the fake check run changes the node only
    assert plan.batches == [[NODE]] and runs[-1]["kwargs"]["check"]
    # its check run is what a batch runs: cluster.yml with a version change allowed
    assert runs[-1]["kwargs"]["extra_vars"] == {"control_plane_version_change_allowed": True}
    assert day2.rolling_plan(store, NAME, force=True).batches == [[CP], [NODE]]
    runs.clear()

    from kpyops import validate
    from kpyops.validate import Finding

    said: list[str] = []
    verdicts = iter([[Finding("node x", True, "Ready")], [Finding(f"node {NODE}", False, "NotReady")]])

    monkeypatch.setattr(validate, "for_cluster", lambda store, name: contextlib.nullcontext((None, None, None)))
    monkeypatch.setattr(validate, "validate", lambda *a, **k: next(verdicts))
    day2.rolling_update(store, NAME, plan, said.append, validate_timeout=5)
    assert [(r["playbook"], r["kwargs"]["limit"]) for r in runs] == [(day2.ROLLING_UPDATE_PLAYBOOK, NODE)]
    with pytest.raises(day2.RollingUpdateStopped, match=f"not valid after {NODE}"):
        day2.rolling_update(store, NAME, plan, said.append, validate_timeout=5)


def test_upgrade_keeps_the_version_rules_and_goes_in_order(request, monkeypatch):
    store, root, _podman, runs = request.getfixturevalue("created")
    monkeypatch.setattr(day2, "run_playbook", lifecycle.run_playbook)  # the fixture's recorder
    monkeypatch.setattr(day2, "get_cloud", lifecycle.get_cloud)  # ... and its fake podman
    old = lifecycle.load_cluster(store, NAME).spec.kubernetes_version
    major, minor, _patch = (int(x) for x in old.split("."))
    before = snapshot(root)
    for bad, words in ((f"{major}.{minor + 2}.0", "skips a minor release"), (f"{major}.{minor - 1}.0", "goes down")):
        with pytest.raises(SpecError, match=words):
            day2.upgrade_plan(store, NAME, bad)
    up = day2.upgrade_plan(store, NAME, f"{major}.{minor}.{_patch + 1}")
    assert up.components == {CP: ["kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                  "kubelet", "kubectl"], NODE: ["kubelet", "kubectl"]}
    assert snapshot(root) == before and runs == []  # a plan reads only
    # a converging update with a new version is refused: that is upgrade's work
    r = CliRunner().invoke(cli, ["--state", str(root), "upgrade", "cluster", NAME, "--kubernetes-version",
                                 f"{major}.{minor + 2}.0"])
    assert r.exit_code == 2 and "skips a minor release" in r.stderr, r.output
    with pytest.raises(SpecError, match="upgrade with `kpyops upgrade cluster"):
        lifecycle.update(store, up.spec, progress=lambda _m: None)
    assert runs == []

    from kpyops import validate

    monkeypatch.setattr(validate, "for_cluster", lambda store, name: contextlib.nullcontext((None, None, None)))
    monkeypatch.setattr(validate, "validate", lambda *a, **k: [])
    monkeypatch.setattr(LocalCloud, "apply", lambda self, cluster: self.plan(cluster))  # no podman
    day2.upgrade(store, up, progress=lambda _m: None)
    # the snapshot first, then (the check run, in check mode) one batch per host needing it
    assert [r["playbook"] for r in runs if not r["kwargs"].get("check")] == [
        day2.ETCD_BACKUP_PLAYBOOK, day2.ROLLING_UPDATE_PLAYBOOK]
    assert lifecycle.load_cluster(store, NAME).spec.kubernetes_version == up.new
