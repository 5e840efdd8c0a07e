"""The plan tells the truth: machine drift is listed, and the host check runs against the
inventory the change would produce, rendered in a temporary folder, the store untouched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from kpyops import lifecycle
from kpyops.cli import commands
from kpyops.cli.main import cli
from kpyops.clouds.base import Change, CloudError
from kpyops.clouds.local.cloud import LABEL, LocalCloud
from kpyops.clouds.local.cloud import registry_lacks as REGISTRY_LACKS
from kpyops.clouds.local.complete import local_subnet, local_subnets
from kpyops.run.ansible import PlaybookResult
from kpyops.spec import complete, parse
from kpyops.state import LocalStore

for _c in commands.all_commands():
    cli.add_command(_c)

NAME = "pl"
CP, NODE, FILES = f"{NAME}-cp-1", f"{NAME}-node-1", f"{NAME}-files"


class FakePodman:
    """The machines podman would list: name -> state; and whether the network exists."""

    def __init__(self, machines: dict[str, str], network: bool = True,
                 subnets: dict[str, list[str]] | None = None):
        self.machines, self.network = machines, network
        self.subnets = subnets or {"podman": ["10.88.0.0/16"]}
        self.ran: list[list[str]] = []

    def network_subnets(self) -> dict[str, list[str]]:
        return self.subnets

    def containers(self, label: str) -> list[dict]:
        assert label == f"{LABEL}={NAME}"
        return [{"Names": [n], "State": s} for n, s in self.machines.items()]

    def network_exists(self, name: str) -> bool:
        return self.network


def user_spec(**kubelet) -> object:
    spec = {"cloud": "local", "nodeGroups": [{"name": "node", "count": 1}]}
    if kubelet:
        spec["kubelet"] = kubelet
    return parse({"apiVersion": "kpyops.io/v1alpha1", "kind": "Cluster", "metadata": {"name": NAME},
                  "spec": spec})


RUNNING = {CP: "running", NODE: "running", FILES: "running"}


@pytest.mark.parametrize(
    ("machines", "network", "expected"),
    [
        (RUNNING, True, []),
        ({**RUNNING, NODE: "exited"}, True,
         [Change("modify", "container", NODE, {"state": ("exited", "running")})]),
        ({CP: "running", FILES: "running"}, True,
         [Change("create", "container", NODE, {"address": (None, "ADDRESS")})]),
        ({**RUNNING, f"{NAME}-node-2": "running"}, True,
         [Change("delete", "container", f"{NAME}-node-2")]),
        (RUNNING, False, [Change("create", "network", f"kpyops-{NAME}", {"subnet": (None, "SUBNET")})]),
    ],
    ids=["in-step", "stopped", "missing", "extra", "no-network"],
)
def test_machine_drift_is_planned(tmp_path, no_routes, machines, network, expected):
    cluster = complete(user_spec())
    node_ip = str(next(h.address for h in cluster.spec.node_groups[0].hosts))
    for ch in expected:
        for k, (old, new) in ch.fields.items():
            ch.fields[k] = (old, {"ADDRESS": node_ip, "SUBNET": str(cluster.spec.local.subnet)}.get(new, new))
    cloud = LocalCloud(LocalStore(tmp_path), podman=FakePodman(machines, network))
    assert cloud.plan(cluster) == expected


@pytest.fixture(autouse=True)
def registry_has_every_image(monkeypatch):
    """The files server the fake podman lists is not there to ask: it lacks no image."""
    monkeypatch.setattr("kpyops.clouds.local.cloud.registry_lacks", lambda cluster, ip: [])


@pytest.fixture
def no_routes(monkeypatch):
    """The host's routes as this test says (none), not the real machine's."""
    routes: list = []
    monkeypatch.setattr("kpyops.clouds.local.cloud.host_routes", lambda: routes)
    return routes


def test_create_takes_the_names_own_subnet_when_it_is_free(tmp_path, no_routes):
    user = user_spec()
    chosen = LocalCloud(LocalStore(tmp_path), podman=FakePodman({})).choose(user)
    assert chosen.spec.local.subnet == local_subnet(NAME)
    assert user.spec.local is None  # the caller's spec is not changed


def test_create_skips_subnets_other_networks_and_routes_use(tmp_path, no_routes):
    own = local_subnet(NAME)
    candidates = list(local_subnets(NAME))
    assert candidates[0] == own and len(set(candidates)) == 250
    podman = FakePodman({}, subnets={"other": [str(own)], "podman": ["10.88.0.0/16"]})
    no_routes.append((candidates[1].supernet(new_prefix=23), "eth9"))  # a /23 over the 2nd
    chosen = LocalCloud(LocalStore(tmp_path), podman=podman).choose(user_spec())
    free = [c for c in candidates[1:] if not c.overlaps(candidates[1].supernet(new_prefix=23))]
    assert chosen.spec.local.subnet == free[0]


def test_a_subnet_the_user_set_is_kept_and_a_used_one_is_refused_before_any_change(
        tmp_path, no_routes):
    user = parse({"metadata": {"name": NAME},
                  "spec": {"cloud": "local", "local": {"subnet": "10.213.7.0/24"}}})
    podman = FakePodman({}, network=False, subnets={"kpyops-x": ["10.213.7.0/24"]})
    cloud = LocalCloud(LocalStore(tmp_path), podman=podman)
    assert cloud.choose(user) is user
    with pytest.raises(CloudError, match=r"10\.213\.7\.0/24 is already used by podman network kpyops-x"):
        cloud.plan(complete(user))


def test_every_subnet_in_use_is_a_clear_error(tmp_path, no_routes):
    podman = FakePodman({}, subnets={"wide": ["10.213.0.0/16"]})
    with pytest.raises(CloudError, match="every local subnet"):
        LocalCloud(LocalStore(tmp_path), podman=podman).choose(user_spec())


def test_stopped_machine_is_shown_as_drift():
    ch = Change("modify", "container", NODE, {"state": ("exited", "running")})
    assert str(ch) == f"  ~ container {NODE}\n      state: 'exited' -> 'running'"
    assert lifecycle.not_yet_running([ch, Change("create", "container", "new-1"),
                                      Change("delete", "container", "old-1")], [CP, NODE, "new-1"]) == {
        NODE: "its machine is exited: it would be started, then converged",
        "new-1": "a new machine: cluster.yml would do all of its work there",
    }


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under root: its mode, and a file's bytes."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = (p.stat().st_mode, p.read_bytes() if p.is_file() else None)
    return out


@pytest.fixture
def created(tmp_path, monkeypatch):
    """A cluster written to a local store (spec, completed spec, inventory), its machines
    reported by a fake podman, and ansible-playbook replaced by a recorder."""
    store = LocalStore(tmp_path)
    podman = FakePodman(dict(RUNNING))
    monkeypatch.setattr(lifecycle, "get_cloud", lambda name, store, progress=None: LocalCloud(store, podman=podman))
    monkeypatch.setattr("kpyops.clouds.get_cloud", lambda name, store, progress=None: LocalCloud(store, podman=podman))
    monkeypatch.setattr("kpyops.clouds.local.cloud.host_routes", lambda: [])  # not this machine's
    lifecycle.create(store, user_spec(), progress=lambda _m: None)
    assert lifecycle.load_cluster(store, NAME, completed=False).spec.local.subnet == local_subnet(NAME)
    (tmp_path / "clusters" / NAME / "ssh").mkdir(mode=0o700)
    (tmp_path / "clusters" / NAME / "ssh" / "id_ed25519").write_text("key\n")
    (tmp_path / "clusters" / NAME / "ssh" / "known_hosts").write_text("hosts\n")
    runs: list[dict] = []

    def run_playbook(playbook, inventory, **kwargs):
        inv = Path(inventory)
        runs.append({
            "playbook": playbook, "inventory": inv, "kwargs": kwargs,
            "files": {p.relative_to(inv).as_posix(): p.read_text() for p in inv.rglob("*") if p.is_file()},
            "modes": {p.relative_to(inv).as_posix(): p.stat().st_mode & 0o777 for p in inv.rglob("*")},
        })
        events = [{"host": NODE, "task": "kubelet : Rollout | Make the assigned configuration active",
                   "action": "ansible.builtin.template", "status": "changed", "changed": True,
                   "notify": ["Restart kubelet"],
                   "diff": [{"before_header": "/var/lib/kubelet/config.yaml", "before": "maxPods: 110\n",
                             "after_header": "dynamically generated", "after": "maxPods: 55\n"}]},
                  {"host": NODE, "task": "kubelet : Restart kubelet", "handler": True, "status": "skipped"},
                  {"host": CP, "task": "bootstrap : Packages", "action": "ansible.builtin.apt", "status": "ok"}]
        return PlaybookResult(rc=0, recap={CP: {"changed": 0}, NODE: {"changed": 1}}, events=events)

    monkeypatch.setattr(lifecycle, "run_playbook", run_playbook)
    return store, tmp_path, podman, runs


def test_check_runs_on_the_proposed_inventory_and_writes_nothing(created):
    store, root, _podman, runs = created
    wd = root / "clusters" / NAME
    before = snapshot(root)
    stored_vars = store.read_text(NAME, "inventory/group_vars/all/cluster.yml")
    check = lifecycle.check_hosts(store, user_spec(maxPods=55))
    # the store is byte for byte (and mode for mode) what it was; no folder is left behind
    assert snapshot(root) == before
    (run,) = runs
    inv = run["inventory"]
    # the proposed inventory was rendered next to the real one, private to its owner
    assert inv.parent == wd and inv.name.startswith(".inventory-proposed-") and not inv.exists()
    assert set(run["modes"].values()) <= {0o600, 0o700}
    assert run["kwargs"]["check"] and run["kwargs"]["diff"] and run["kwargs"]["limit"] is None
    # ... from the new spec, not the stored one
    proposed = yaml.safe_load(run["files"]["group_vars/all/cluster.yml"])
    assert "55" not in stored_vars
    assert {g["kubelet"]["maxPods"] for g in proposed["kpyops_node_groups"].values()} == {55}
    assert run["files"].keys() == set(lifecycle.inventory_files(store, complete(user_spec(maxPods=55))))
    # ... with the real key, known_hosts and state paths, so Ansible reaches the hosts
    hosts = yaml.safe_load(run["files"]["hosts.yml"])["all"]["vars"]
    assert hosts["ansible_ssh_private_key_file"] == str(wd / "ssh" / "id_ed25519")
    assert f"UserKnownHostsFile={wd / 'ssh' / 'known_hosts'}" in hosts["ansible_ssh_common_args"]
    assert f'pki_dir: "{wd / "pki"}"' in run["files"]["group_vars/all/pki.yml"]
    # per host what would change: the file with its diff, the handler (skipped here)
    assert check.changed.keys() == {NODE} and check.hosts.keys() == {CP, NODE}
    node = check.hosts[NODE]
    assert list(node.files) == ["/var/lib/kubelet/config.yaml"]
    assert "-maxPods: 110\n+maxPods: 55\n" in node.files["/var/lib/kubelet/config.yaml"]
    assert node.handlers == {"Restart kubelet": "skipped"}


def test_a_stopped_machine_is_left_out_of_the_check_and_said_so(created):
    store, _root, podman, runs = created
    podman.machines[CP] = "exited"
    check = lifecycle.check_hosts(store, user_spec())
    assert runs[0]["kwargs"]["limit"] == f"!{CP}"
    assert check.not_checked == {CP: "its machine is exited: it would be started, then converged"}
    assert CP not in check.hosts


def test_no_machine_running_yet_runs_no_check(created):
    store, _root, podman, runs = created
    podman.machines.clear()
    check = lifecycle.check_hosts(store, user_spec())
    assert runs == [] and check.result is None and set(check.not_checked) == {CP, NODE}


def test_cli_plan_with_hosts(created):
    _store, root, podman, runs = created
    podman.machines[f"{NAME}-node-2"] = "running"  # an extra machine
    spec = root / "edited.yaml"
    spec.write_text(yaml.safe_dump({"metadata": {"name": NAME},
                                    "spec": {"cloud": "local", "nodeGroups": [{"name": "node", "count": 1}],
                                             "kubelet": {"maxPods": 55}}}))
    before = snapshot(root)
    r = CliRunner().invoke(cli, ["--state", str(root), "update", "cluster", NAME, "-f", str(spec), "--hosts"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert snapshot(root) == before
    out = r.stdout
    assert f"  - container {NAME}-node-2" in out
    assert "maxPods" in out  # the inventory diff
    assert f"  ~ host {NODE}\n      ~ file /var/lib/kubelet/config.yaml\n" in out
    assert "          +maxPods: 55" in out
    assert "      > handler Restart kubelet (skipped here: its condition is false)" in out
    assert f"host {CP}" not in out
    assert "would change nothing" not in r.stderr
    assert len(runs) == 1


class StoppedNodeCloud(LocalCloud):
    """The local cloud's plan over the fake podman; apply 'starts' what the plan says."""

    def apply(self, cluster):
        changes = self.plan(cluster)
        for ch in changes:
            self.progress(f"starting host {ch.name} (it was {ch.fields['state'][0]})")
            self.podman.machines[ch.name] = "running"
        return changes


def test_cli_apply_says_what_it_did_to_machines_and_hosts(created, monkeypatch):
    _store, root, podman, runs = created
    podman.machines[NODE] = "exited"

    def get_cloud(name, store, progress=lambda _m: None):
        return StoppedNodeCloud(store, progress, podman=podman)

    monkeypatch.setattr(lifecycle, "get_cloud", get_cloud)
    r = CliRunner().invoke(cli, ["--state", str(root), "update", "cluster", NAME], catch_exceptions=False)
    assert f"  ~ container {NODE}\n      state: 'exited' -> 'running'" in r.stdout
    assert "match the spec" not in r.stderr
    r = CliRunner().invoke(cli, ["--state", str(root), "update", "cluster", NAME, "--yes"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert f"starting host {NODE} (it was exited)" in r.stderr
    assert f"machines changed:\n  ~ container {NODE}\n      state: 'exited' -> 'running'\n" in r.stdout
    assert f"hosts changed:\n  ~ host {NODE}\n      ~ file /var/lib/kubelet/config.yaml\n" in r.stdout
    assert "+maxPods" not in r.stdout  # the apply names files; the plan shows their diffs
    assert runs[-1]["kwargs"]["diff"] and not runs[-1]["kwargs"].get("check")
    assert runs[-1]["inventory"] == root / "clusters" / NAME / "inventory"


def test_a_create_that_fails_half_way_leaves_nothing_and_can_be_run_again(tmp_path, monkeypatch, no_routes):
    store = LocalStore(tmp_path)
    monkeypatch.setattr(lifecycle, "get_cloud", lambda name, store, progress=None: LocalCloud(
        store, podman=FakePodman({})))

    def broken(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(lifecycle, "write_inventory", broken)  # after the spec was saved
    with pytest.raises(OSError, match="disk full"):
        lifecycle.create(store, user_spec(), progress=lambda _m: None)
    assert store.list(NAME) == [] and store.clusters() == []
    assert not (tmp_path / "clusters" / NAME).exists()
    monkeypatch.undo()
    monkeypatch.setattr(lifecycle, "get_cloud", lambda name, store, progress=None: LocalCloud(
        store, podman=FakePodman({})))
    monkeypatch.setattr("kpyops.clouds.local.cloud.host_routes", lambda: [])
    lifecycle.create(store, user_spec(), progress=lambda _m: None)
    assert store.clusters() == [NAME]
    assert lifecycle.load_cluster(store, NAME, completed=False).spec.local.subnet == local_subnet(NAME)


def test_the_plan_ends_with_a_count_of_its_changes():
    from kpyops.cli.cluster import plan_summary

    changes = [Change("create", "container", "a"), Change("create", "network", "n"),
               Change("modify", "container", "b"), Change("untag", "vpc", "v")]
    assert plan_summary(changes, 2) == ("Plan: 2 to create, 1 to modify, 0 to delete, 1 other; "
                                        "2 inventory file(s) to change")


def test_target_cloud_makes_machines_and_inventory_and_converges_nothing(created, monkeypatch):
    store, root, _podman, runs = created
    (root / "clusters" / NAME / "inventory" / "hosts.yml").unlink()
    made = Change("create", "container", NODE)
    monkeypatch.setattr(LocalCloud, "apply", lambda self, cluster: [made])  # the machines: made
    applied = lifecycle.update(store, user_spec(), progress=lambda _m: None, converge=False)
    assert applied.cloud == [made] and applied.result is None and applied.hosts == {}
    assert runs == []  # no playbook ran
    assert (root / "clusters" / NAME / "inventory" / "hosts.yml").is_file()  # written again


def test_a_new_image_version_is_planned_for_a_running_files_server(tmp_path, monkeypatch, no_routes):
    """A spec whose probe, pause or CoreDNS version the running registry lacks: apply pushes it."""
    import kpyops.clouds.local.cloud as lc
    from kpyops.artifacts import needs
    from kpyops.artifacts.catalog import PROBE

    monkeypatch.setattr(lc, "registry_lacks", REGISTRY_LACKS)  # the real one, over a fake registry
    monkeypatch.setattr(needs, "in_registry", lambda registry, image: image.program != "probe")
    monkeypatch.setattr(lc, "missing_files", lambda cluster: [])
    plan = LocalCloud(LocalStore(tmp_path), podman=FakePodman(dict(RUNNING))).plan(complete(user_spec()))
    assert plan == [Change("modify", "files-server", FILES,
                           {"serves": (None, f"kpyops/probe:{PROBE.version()}")})]


def test_create_checks_for_the_cluster_again_under_the_lock(tmp_path, monkeypatch, no_routes):
    """Two creates of one name at once: the one that gets the lock second finds the first's
    spec and stops, leaving it as written."""
    store = LocalStore(tmp_path)
    monkeypatch.setattr(lifecycle, "get_cloud", lambda name, store, progress=None: LocalCloud(
        store, podman=FakePodman({})))
    lifecycle.create(store, user_spec(), progress=lambda _m: None)  # the other run's create
    before = {k: store.read(NAME, k) for k in store.list(NAME)}
    checks = []
    real_exists = LocalStore.exists

    def racing_exists(self, cluster, key="spec.yaml"):
        checks.append(key)
        return False if len(checks) == 1 else real_exists(self, cluster, key)  # early check: not yet

    monkeypatch.setattr(LocalStore, "exists", racing_exists)
    with pytest.raises(lifecycle.ClusterExists):
        lifecycle.create(store, user_spec(maxPods=55), progress=lambda _m: None)
    monkeypatch.undo()
    assert {k: store.read(NAME, k) for k in store.list(NAME)} == before



def test_nodes_added_only_run_cluster_yml_on_the_newcomers_and_the_neighbours_playbook_elsewhere(
        created, monkeypatch):
    """A change that only adds a worker: the plan checks the hosts already there with the
    neighbours playbook (their names and pod routes) and names the newcomer as not checked; the
    apply converges cluster.yml on the newcomer first, then that playbook on the others. Any
    other change to the inventory runs cluster.yml everywhere."""
    store, _root, podman, runs = created
    node2 = f"{NAME}-node-2"
    more = parse({"apiVersion": "kpyops.io/v1alpha1", "kind": "Cluster", "metadata": {"name": NAME},
                  "spec": {"cloud": "local", "nodeGroups": [{"name": "node", "count": 2}],
                           "local": {"subnet": local_subnet(NAME)}}})

    def made(self, cluster):  # the machines the plan names, made
        changes = self.plan(cluster)
        podman.machines.update({ch.name: "running" for ch in changes if ch.action == "create"})
        return changes

    monkeypatch.setattr(LocalCloud, "apply", made)
    check = lifecycle.check_hosts(store, more)
    assert check.added == [node2] and set(check.not_checked) == {node2}
    assert [(r["playbook"], r["kwargs"]["limit"], r["kwargs"]["check"]) for r in runs] == [
        (lifecycle.NEIGHBOURS_PLAYBOOK, f"!{node2}", True)]
    # the proposed inventory, with the newcomer in it (the others' hosts file names it)
    assert node2 in yaml.safe_load(runs[0]["files"]["hosts.yml"])["all"]["hosts"]
    runs.clear()

    said: list[str] = []
    applied = lifecycle.update(store, more, progress=said.append)
    assert applied.added == [node2]
    assert [(r["playbook"], r["kwargs"]["limit"]) for r in runs] == [
        ("cluster.yml", node2), (lifecycle.NEIGHBOURS_PLAYBOOK, f"{CP},{NODE}")]
    assert any(f"adding {node2} to {NAME}: cluster.yml runs there" in m for m in said), said
    assert applied.result.recap[NODE] == {"changed": 2}  # both runs' recaps, summed
    runs.clear()

    # the inventory now has the newcomer: the same spec again is an ordinary converge
    assert lifecycle.check_hosts(store, more).added == []
    three = more.model_copy(deep=True)
    three.spec.node_groups[0].count = 3
    three.spec.kubelet.max_pods = 55  # more than nodes added: everything runs everywhere
    assert lifecycle.check_hosts(store, three).added == []
    assert [r["playbook"] for r in runs] == ["cluster.yml", "cluster.yml"]
