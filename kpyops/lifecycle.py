"""Cluster lifecycle: the library behind `kpyops create|update|delete cluster`.

spec -> completed spec -> state store -> inventory -> machines -> cluster.yml.
The CLI only parses arguments and prints; every step lives here so tests can call it.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kpyops.clouds import Change, get_cloud
from kpyops.clouds.base import Cloud
from kpyops.clouds.capabilities import capabilities
from kpyops.render.growth import added_nodes
from kpyops.render.inventory import render_inventory
from kpyops.run.ansible import FACT_CACHE, PlaybookResult, combine, run_playbook
from kpyops.run.changes import HostChanges, host_changes
from kpyops.spec import Cluster, SpecError, complete, dumps, loads
from kpyops.spec.hosts import removals
from kpyops.spec.model import Cluster as ClusterModel
from kpyops.spec.skew import version_problems
from kpyops.state.base import (
    CLUSTER_ID,
    COMPLETED_SPEC,
    INVENTORY_DIR,
    PKI_DIR,
    SPEC,
    SSH_KEY,
    ClusterNotFound,
    StateStore,
)
from kpyops.state.workdir import cache_dir, synced, workdir

Progress = Callable[[str], None]
KNOWN_HOSTS = "ssh/known_hosts"
# What the hosts already in a cluster run when worker nodes join it or one leaves: the hosts
# file and the routes to the nodes' pod ranges (the newcomers' once they registered)
NEIGHBOURS_PLAYBOOK = "playbooks/neighbours.yml"


class ClusterExists(RuntimeError):
    pass


@dataclass
class Plan:
    cloud: list[Change] = field(default_factory=list)
    inventory: dict[str, str] = field(default_factory=dict)  # path -> unified diff

    @property
    def empty(self) -> bool:
        return not self.cloud and not self.inventory


@dataclass
class HostsCheck:
    """cluster.yml in check mode against the inventory a change would produce."""

    hosts: dict[str, HostChanges] = field(default_factory=dict)  # every checked host
    not_checked: dict[str, str] = field(default_factory=dict)  # host -> why not
    result: PlaybookResult | None = None  # None when no host could be checked
    added: list[str] = field(default_factory=list)  # nodes added: only they run cluster.yml

    @property
    def changed(self) -> dict[str, HostChanges]:
        return {h: r for h, r in self.hosts.items() if not r.empty}


@dataclass
class Applied:
    """What `update --yes` did: machine changes, then the converge and its per-host report."""

    cloud: list[Change]
    result: PlaybookResult | None  # None: machines only (--target cloud)
    hosts: dict[str, HostChanges]
    added: list[str] = field(default_factory=list)  # nodes added: only they ran cluster.yml


def load_cluster(store: StateStore, name: str, *, completed: bool = True) -> ClusterModel:
    if not store.exists(name, SPEC):
        raise ClusterNotFound(f"cluster {name!r} not found in {store.url}")
    return loads(store.read_text(name, COMPLETED_SPEC if completed else SPEC))


def inventory_files(store: StateStore, cluster: Cluster, cloud: Cloud | None = None) -> dict[str, str]:
    wd = workdir(store, cluster.name)
    hosts = cloud.inventory_hosts(cluster) if cloud and hasattr(cloud, "inventory_hosts") else None
    caps = capabilities(cluster.spec.cloud)
    has_key = caps.ssh_key_in_store or store.exists(cluster.name, SSH_KEY)
    return render_inventory(
        cluster,
        hosts=hosts,
        ssh_key_file=str(wd / SSH_KEY) if has_key else None,
        state_dir=str(wd),
        known_hosts_file=str(wd / KNOWN_HOSTS) if caps.known_hosts_in_store else None,
    )


def save(store: StateStore, user: Cluster, completed: Cluster) -> None:
    store.write_text(user.name, SPEC, dumps(user, full=False))
    store.write_text(user.name, COMPLETED_SPEC, dumps(completed))
    (workdir(store, user.name) / PKI_DIR).mkdir(parents=True, exist_ok=True, mode=0o700)


def write_inventory(store: StateStore, name: str, files: dict[str, str]) -> Path:
    for old in store.list(name, INVENTORY_DIR + "/"):
        if old.removeprefix(INVENTORY_DIR + "/") not in files:
            store.delete(name, old)
    for rel, text in files.items():
        store.write_text(name, f"{INVENTORY_DIR}/{rel}", text)
    return workdir(store, name) / INVENTORY_DIR


def diff_inventory(store: StateStore, name: str, files: dict[str, str]) -> dict[str, str]:
    diffs = {}
    for rel, text in files.items():
        key = f"{INVENTORY_DIR}/{rel}"
        old = store.read_text(name, key) if store.exists(name, key) else ""
        if old != text:
            diffs[rel] = "".join(difflib.unified_diff(
                old.splitlines(True), text.splitlines(True), f"a/{rel}", f"b/{rel}"))
    return diffs


def stored_inventory(store: StateStore, name: str) -> dict[str, str]:
    """The inventory files in the store, by path relative to the inventory folder."""
    prefix = INVENTORY_DIR + "/"
    return {key.removeprefix(prefix): store.read_text(name, key) for key in store.list(name, prefix)}


def create(store: StateStore, user: Cluster, progress: Progress) -> Cluster:
    """Write a new cluster's spec, completed spec and inventory. Raises SpecError first.
    What the cloud chooses for it (a local cluster's subnet) is written into the spec."""
    if store.exists(user.name, SPEC):  # said early; checked again under the lock
        raise ClusterExists(f"cluster {user.name!r} already exists in {store.url}")
    cloud = get_cloud(user.spec.cloud, store)
    user = cloud.choose(user)  # reads only
    completed = complete(user)
    cloud.preflight(completed)  # a wrong zone or instance type: said before anything is stored
    with store.lock(user.name, purpose="create cluster"):
        if store.exists(user.name, SPEC):
            raise ClusterExists(f"cluster {user.name!r} already exists in {store.url}")
        try:
            store.write_text(user.name, CLUSTER_ID, uuid.uuid4().hex + "\n")
            save(store, user, completed)
            write_inventory(store, user.name, inventory_files(store, completed))
        except BaseException:
            # a create that did not finish leaves nothing: running it again starts afresh
            store.delete_cluster(user.name)
            raise
    progress(f"cluster {user.name} written to {store.url}")
    return completed


def refuse_unsafe(store: StateStore, completed: Cluster, *, converging: bool = False) -> None:
    """SpecError, before anything runs, if the change would take machines away (see
    spec.hosts.removals) or break the version rules (spec.skew); when it converges the
    hosts, also if it changes the Kubernetes version: that is `upgrade cluster`'s work (the
    control planes first, nodes drained, validated in between), not one run of cluster.yml."""
    if not store.exists(completed.name, COMPLETED_SPEC):
        return
    stored = load_cluster(store, completed.name)
    old, new = stored.spec.kubernetes_version, completed.spec.kubernetes_version
    problems = removals(stored, completed) + version_problems(old, new)
    if converging and old != new and not problems:
        problems.append(("spec.kubernetesVersion", f"{old} -> {new}: upgrade with `kpyops upgrade "
                         f"cluster {completed.name} --kubernetes-version {new}` (control planes "
                         "first, nodes drained, validated in between)"))
    if problems:
        raise SpecError(problems=problems)


def plan(store: StateStore, user: Cluster) -> Plan:
    """What `update --yes` would change, reading only."""
    completed = complete(user)
    refuse_unsafe(store, completed)
    cloud = get_cloud(completed.spec.cloud, store)
    return Plan(cloud=cloud.plan(completed),
                inventory=diff_inventory(store, user.name, inventory_files(store, completed, cloud)))


@contextlib.contextmanager
def proposed_inventory(wd: Path, files: dict[str, str]) -> Iterator[Path]:
    """The inventory a change would produce, in a temporary folder next to the real one and
    removed afterwards: the store is not written. The files are rendered with the work
    folder's paths (SSH key, known_hosts, PKI, state), so Ansible reaches the hosts as in a
    real run."""
    wd.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder = Path(tempfile.mkdtemp(prefix=f".{INVENTORY_DIR}-proposed-", dir=wd))
    try:
        for rel, text in files.items():
            path = folder / rel
            for parent in reversed(path.relative_to(folder).parents[:-1]):
                (folder / parent).mkdir(exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def not_yet_running(changes: list[Change], hosts: list[str]) -> dict[str, str]:
    """Inventory hosts a check run cannot reach: their machine is to be created or started."""
    why = {}
    for ch in changes:
        if ch.name not in hosts:
            continue
        if ch.action == "create":
            why[ch.name] = "a new machine: cluster.yml would do all of its work there"
        elif ch.action == "modify" and "state" in ch.fields:
            why[ch.name] = (f"its machine is {ch.fields['state'][0]}: it would be started, "
                            "then converged")
    return why


def check_hosts(store: StateStore, user: Cluster, *, cloud_changes: list[Change] | None = None,
                on_task: Progress | None = None, on_line: Progress | None = None,
                verbosity: int = 0, extra_vars: dict | None = None) -> HostsCheck:
    """cluster.yml in check mode with diffs, against the inventory the spec would produce
    (rendered in a temporary folder, not stored): what a converge would change on each host.
    Hosts whose machine does not run yet (``cloud_changes``, else the cloud's plan) are left
    out and said so. When the change only adds worker nodes, what `update` runs on the hosts
    already there is checked instead (the neighbours playbook), and the newcomers are not."""
    completed = complete(user)
    refuse_unsafe(store, completed, converging=True)
    cloud = get_cloud(completed.spec.cloud, store)
    changes = cloud.plan(completed) if cloud_changes is None else cloud_changes
    files = inventory_files(store, completed, cloud)
    hosts = list(hosts_of(files))
    skipped = not_yet_running(changes, hosts)
    added = added_nodes(stored_inventory(store, user.name), files)
    for host in added:  # a node added to a running cluster: no check run can show its work
        skipped.setdefault(host, "a new node: cluster.yml would do all of its work there")
    check = HostsCheck(not_checked=skipped, added=added)
    if all(h in skipped for h in hosts):
        return check
    # what update --yes would run on the hosts already there (see there), in check mode
    with synced(store, user.name) as wd, proposed_inventory(wd, files) as inventory:
        check.result = run_playbook(
            NEIGHBOURS_PLAYBOOK if added else "cluster.yml", str(inventory), check=True,
            diff=True, on_task=on_task, on_line=on_line, verbosity=verbosity,
            limit=",".join(f"!{h}" for h in skipped) or None, extra_vars=extra_vars)
    reports = host_changes(check.result.events)
    check.hosts = {h: reports.get(h, HostChanges(h)) for h in hosts if h not in skipped}
    check.hosts.update({h: r for h, r in reports.items() if h not in check.hosts and not r.empty})
    return check


def node_groups_of(files: dict[str, str]) -> tuple[dict[str, list[str]], set[str]]:
    """Each node group's hosts in inventory order, and the control planes and etcd members."""
    inventory = yaml.safe_load(files["hosts.yml"])["all"]
    groups: dict[str, list[str]] = {}
    for host, hostvars in (inventory.get("hosts") or {}).items():
        groups.setdefault((hostvars or {}).get("kpyops_node_group", ""), []).append(host)
    children = inventory.get("children") or {}
    masters = {h for g in ("kube_control_plane", "etcd") for h in ((children.get(g) or {}).get("hosts") or {})}
    return groups, masters


def hosts_of(files: dict[str, str]) -> dict:
    return yaml.safe_load(files["hosts.yml"])["all"].get("hosts") or {}


def apply(store: StateStore, user: Cluster, progress: Progress, *, verbosity: int = 0,
          on_line: Progress | None = None, on_task: Progress | None = None,
          extra_vars: dict | None = None) -> PlaybookResult:
    """Make machines match the spec, render the inventory, and converge cluster.yml."""
    return update(store, user, progress, verbosity=verbosity, on_line=on_line, on_task=on_task,
                  extra_vars=extra_vars).result


def update(store: StateStore, user: Cluster, progress: Progress, *, verbosity: int = 0,
           on_line: Progress | None = None, on_task: Progress | None = None,
           extra_vars: dict | None = None, converge: bool = True) -> Applied:
    """apply, returning what was done: the machine changes (each also said through
    ``progress`` as it is made) and the converge with its per-host report. Without
    ``converge`` only the machines and the inventory are made (kops' --target)."""
    completed = complete(user)
    refuse_unsafe(store, completed, converging=converge)
    with store.lock(user.name, purpose="update cluster"):
        save(store, user, completed)
        cloud = get_cloud(completed.spec.cloud, store, progress)
        changes = cloud.apply(completed)
        for ch in changes:
            if ch.kind == "container" and ch.action in ("create", "delete"):
                (FACT_CACHE / ch.name).unlink(missing_ok=True)  # a new machine, new facts
        files = inventory_files(store, completed, cloud)
        added = added_nodes(stored_inventory(store, user.name), files)
        write_inventory(store, user.name, files)
        if not converge:
            return Applied(cloud=changes, result=None, hosts={})
        with synced(store, user.name) as wd:
            run = functools.partial(run_playbook, inventory=str(wd / INVENTORY_DIR), on_line=on_line,
                                    on_task=on_task, verbosity=verbosity, extra_vars=extra_vars,
                                    diff=True)
            if added:
                others = [h for h in hosts_of(files) if h not in added]
                progress(f"adding {', '.join(added)} to {user.name}: cluster.yml runs there, then "
                         f"the {len(others)} other host(s) get only their names and pod routes "
                         f"({NEIGHBOURS_PLAYBOOK})")
                result = combine(run("cluster.yml", limit=",".join(added)),
                                 run(NEIGHBOURS_PLAYBOOK, limit=",".join(others)))
            else:
                progress(f"converging cluster.yml on {user.name}")
                result = run("cluster.yml")
    return Applied(cloud=changes, result=result, hosts=host_changes(result.events), added=added)


class UnknownHost(ValueError):
    """A host name that is not in the cluster's inventory."""


def reset_host(store: StateStore, name: str, host: str, *, check: bool = False,
               on_task: Progress | None = None, on_line: Progress | None = None,
               verbosity: int = 0) -> tuple[PlaybookResult, HostChanges]:
    """reset.yml on one host of cluster ``name`` (the reset role: services, files, rules and
    etcd data of the cluster leave the host; the cluster's API is not touched), and what it
    changed there. With ``check``, the check-mode run only: what the reset would remove."""
    cluster = load_cluster(store, name)
    files = inventory_files(store, cluster, get_cloud(cluster.spec.cloud, store))
    hosts = list(hosts_of(files))
    if host not in hosts:
        raise UnknownHost(f"{host!r} is not a host of cluster {name}: {', '.join(hosts)}")
    with store.lock(name, purpose=f"reset host {host}"), synced(store, name) as wd:
        result = run_playbook("reset.yml", str(wd / INVENTORY_DIR), check=check, diff=True,
                                  extra_vars={"node": host, "reset_confirmed": "true"},
                                  on_task=on_task, on_line=on_line, verbosity=verbosity)
    if not check:
        (FACT_CACHE / host).unlink(missing_ok=True)  # its facts describe an installed host
    return result, host_changes(result.events).get(host, HostChanges(host))


def delete(store: StateStore, name: str, progress: Progress) -> list[Change]:
    cluster = load_cluster(store, name)
    cloud = get_cloud(cluster.spec.cloud, store, progress)
    with store.lock(name, purpose="delete cluster"):
        changes = cloud.delete(cluster)
        for ch in changes:
            if ch.kind == "container":
                (FACT_CACHE / ch.name).unlink(missing_ok=True)
    store.delete_cluster(name)
    shutil.rmtree(cache_dir(name), ignore_errors=True)
    return changes
