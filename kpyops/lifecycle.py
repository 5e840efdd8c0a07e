"""Cluster lifecycle: the library behind `kpyops create|update|delete cluster`.

spec -> completed spec -> state store -> inventory -> machines -> cluster.yml.
The CLI only parses arguments and prints; every step lives here so tests can call it.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import json
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
from kpyops.spec.hosts import NotRemovable, removals, without_node
from kpyops.spec.model import Cluster as ClusterModel
from kpyops.state.base import (
    CLUSTER_ID,
    COMPLETED_SPEC,
    CONVERGED,
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
# What hosts already in the cluster run when a change only adds nodes: the newcomers' names
ETC_HOSTS_PLAYBOOK = "playbooks/etc_hosts.yml"
REMOVE_NODE_PLAYBOOK = "remove-node.yml"
ROLLING_UPDATE_PLAYBOOK = "rolling-update.yml"


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


def inventory_digest(files: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def converged_digest(store: StateStore, name: str) -> str | None:
    """The digest of the inventory the last converge of every host ran to success, if any
    (a failed or partial run, or a host reset since, leaves none)."""
    if not store.exists(name, CONVERGED):
        return None
    return json.loads(store.read_text(name, CONVERGED)).get("inventory")


def nodes_to_add(store: StateStore, name: str, files: dict[str, str]) -> list[str]:
    """The hosts ``files`` adds, when adding worker nodes is all it does and the stored
    inventory was converged: then only they need cluster.yml, the others their hosts file."""
    old = stored_inventory(store, name)
    if not old or converged_digest(store, name) != inventory_digest(old):
        return []
    return added_nodes(old, files)


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


def refuse_removals(store: StateStore, completed: Cluster) -> None:
    """SpecError, before anything runs, if the change would take machines away (see
    spec.hosts.removals): a plan shows it as update --yes would."""
    if store.exists(completed.name, COMPLETED_SPEC):
        problems = removals(load_cluster(store, completed.name), completed)
        if problems:
            raise SpecError(problems=problems)


def plan(store: StateStore, user: Cluster) -> Plan:
    """What `update --yes` would change, reading only."""
    completed = complete(user)
    refuse_removals(store, completed)
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
                verbosity: int = 0) -> HostsCheck:
    """cluster.yml in check mode with diffs, against the inventory the spec would produce
    (rendered in a temporary folder, not stored): what a converge would change on each host.
    Hosts whose machine does not run yet (``cloud_changes``, else the cloud's plan) are left
    out and said so."""
    completed = complete(user)
    refuse_removals(store, completed)
    cloud = get_cloud(completed.spec.cloud, store)
    changes = cloud.plan(completed) if cloud_changes is None else cloud_changes
    files = inventory_files(store, completed, cloud)
    hosts = list(_inventory_hosts(files))
    skipped = not_yet_running(changes, hosts)
    added = nodes_to_add(store, user.name, files)
    check = HostsCheck(not_checked=skipped, added=added)
    runs = []  # (playbook, limit): what update --yes would run, in check mode
    if added:
        if any(h not in added for h in hosts):
            runs.append((ETC_HOSTS_PLAYBOOK, ",".join(h for h in hosts if h not in added)))
        if any(h not in skipped for h in added):
            runs.append(("cluster.yml", ",".join(h for h in added if h not in skipped)))
    elif not all(h in skipped for h in hosts):
        runs.append(("cluster.yml", ",".join(f"!{h}" for h in skipped) or None))
    if not runs:
        return check
    with synced(store, user.name) as wd, proposed_inventory(wd, files) as inventory:
        check.result = combine(*(run_playbook(
            playbook, str(inventory), check=True, diff=True, on_task=on_task, on_line=on_line,
            verbosity=verbosity, limit=limit) for playbook, limit in runs))
    reports = host_changes(check.result.events)
    check.hosts = {h: reports.get(h, HostChanges(h)) for h in hosts if h not in skipped}
    check.hosts.update({h: r for h, r in reports.items() if h not in check.hosts and not r.empty})
    return check


def _node_groups(files: dict[str, str]) -> tuple[dict[str, list[str]], set[str]]:
    """Each node group's hosts in inventory order, and the control planes and etcd members."""
    inventory = yaml.safe_load(files["hosts.yml"])["all"]
    groups: dict[str, list[str]] = {}
    for host, hostvars in (inventory.get("hosts") or {}).items():
        groups.setdefault((hostvars or {}).get("kpyops_node_group", ""), []).append(host)
    children = inventory.get("children") or {}
    masters = {h for g in ("kube_control_plane", "etcd") for h in ((children.get(g) or {}).get("hosts") or {})}
    return groups, masters


def _inventory_hosts(files: dict[str, str]) -> dict:
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
    refuse_removals(store, completed)
    with store.lock(user.name, purpose="update cluster"):
        save(store, user, completed)
        cloud = get_cloud(completed.spec.cloud, store, progress)
        changes = cloud.apply(completed)
        for ch in changes:
            if ch.kind == "container" and ch.action in ("create", "delete"):
                (FACT_CACHE / ch.name).unlink(missing_ok=True)  # a new machine, new facts
        files = inventory_files(store, completed, cloud)
        added = nodes_to_add(store, user.name, files)
        write_inventory(store, user.name, files)
        if not converge:
            return Applied(cloud=changes, result=None, hosts={})
        store.delete(user.name, CONVERGED)  # until this converge succeeds
        with synced(store, user.name) as wd:
            inventory = str(wd / INVENTORY_DIR)
            run = functools.partial(run_playbook, on_line=on_line, on_task=on_task,
                                    verbosity=verbosity, extra_vars=extra_vars, diff=True)
            if added:
                others = [h for h in _inventory_hosts(files) if h not in added]
                progress(f"adding {', '.join(added)} to {user.name}: cluster.yml runs there; "
                         f"{len(others)} other host(s) only get the new names ({ETC_HOSTS_PLAYBOOK})")
                result = combine(run(ETC_HOSTS_PLAYBOOK, inventory, limit=",".join(others)),
                                 run("cluster.yml", inventory, limit=",".join(added)))
            else:
                progress(f"converging cluster.yml on {user.name}")
                result = run("cluster.yml", inventory)
        store.write_text(user.name, CONVERGED, json.dumps({"inventory": inventory_digest(files)}))
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
    hosts = list(_inventory_hosts(files))
    if host not in hosts:
        raise UnknownHost(f"{host!r} is not a host of cluster {name}: {', '.join(hosts)}")
    with store.lock(name, purpose=f"reset host {host}"), synced(store, name) as wd:
        if not check:
            store.delete(name, CONVERGED)  # a reset host is not converged any more
        result = run_playbook("reset.yml", str(wd / INVENTORY_DIR), check=check, diff=True,
                                  extra_vars={"node": host, "reset_confirmed": "true"},
                                  on_task=on_task, on_line=on_line, verbosity=verbosity)
    if not check:
        (FACT_CACHE / host).unlink(missing_ok=True)  # its facts describe an installed host
    return result, host_changes(result.events).get(host, HostChanges(host))


@dataclass
class Removal:
    """What `delete node` does (or, checked, would do)."""

    node: str
    spec: Cluster  # the user's spec without the node
    reset: bool  # its host is reset (else the cloud deletes its machine, or it is dead)
    cloud: list[Change]  # the machine deleted
    result: PlaybookResult  # remove-node.yml, then etc_hosts.yml on the others
    hosts: dict[str, HostChanges]


def remove_node(store: StateStore, name: str, node: str, progress: Progress, *,
                check: bool = False, reset: bool = True, on_task: Progress | None = None,
                on_line: Progress | None = None, verbosity: int = 0) -> Removal:
    """Take worker ``node`` out of cluster ``name``: drain it and delete its Node object,
    reset its host (where the cloud does not delete the machine, and unless ``reset`` is
    False: a dead host), drop it from the spec and the inventory, delete its machine, and write
    the remaining hosts into every /etc/hosts. Refused before anything runs (NotRemovable)
    unless the smaller inventory is the current one less this node and nothing else. With
    ``check``: the same playbooks in check mode, and nothing stored or deleted."""
    user = load_cluster(store, name, completed=False)
    completed = load_cluster(store, name)
    cloud = get_cloud(completed.spec.cloud, store, progress)
    old_files = inventory_files(store, completed, cloud)
    smaller = without_node(user, node, *_node_groups(old_files))
    smaller_completed = complete(smaller)
    new_files = inventory_files(store, smaller_completed, cloud)
    if added_nodes(new_files, old_files) != [node]:
        raise NotRemovable(f"taking {node} out of the spec would change more than the list of "
                           "nodes (other hosts' variables or groups): not supported")
    # a machine the cloud made is deleted with its disks: resetting it first is wasted work
    reset = reset and capabilities(completed.spec.cloud).lists_hosts
    others = ",".join(h for h in _inventory_hosts(new_files))
    playbook_vars = {"node": node, "remove_node_reset": str(reset).lower(),
                     "reset_confirmed": "true"}
    run = functools.partial(run_playbook, on_task=on_task, on_line=on_line, verbosity=verbosity,
                            diff=True, check=check)
    # a plan writes nothing to the store, not even the lock's holder
    lock = contextlib.nullcontext() if check else store.lock(name, purpose=f"delete node {node}")
    with lock:
        with synced(store, name) as wd:
            removed = run(REMOVE_NODE_PLAYBOOK, str(wd / INVENTORY_DIR), extra_vars=playbook_vars)
            if check:
                with proposed_inventory(wd, new_files) as inventory:
                    named = run(ETC_HOSTS_PLAYBOOK, str(inventory), limit=others)
                result = combine(removed, named)
                return Removal(node, smaller, reset, cloud.plan(smaller_completed), result,
                               host_changes(result.events))
        was_converged = converged_digest(store, name) == inventory_digest(stored_inventory(store, name))
        save(store, smaller, smaller_completed)
        changes = cloud.apply(smaller_completed)
        (FACT_CACHE / node).unlink(missing_ok=True)
        write_inventory(store, name, new_files)
        store.delete(name, CONVERGED)
        with synced(store, name) as wd:
            result = combine(removed, run(ETC_HOSTS_PLAYBOOK, str(wd / INVENTORY_DIR), limit=others))
        if was_converged:  # the others now hold what a whole run of the new inventory gives
            store.write_text(name, CONVERGED, json.dumps({"inventory": inventory_digest(new_files)}))
    return Removal(node, smaller, reset, changes, result, host_changes(result.events))


class RollingUpdateStopped(RuntimeError):
    """A batch of a rolling update left the cluster invalid: the update stops there (a re-run
    goes on from the hosts that still need it)."""


@dataclass
class RollingPlan:
    """Which hosts a rolling update would converge, in which batches, and why."""

    batches: list[list[str]]
    check: HostsCheck  # cluster.yml --check against the stored inventory
    forced: bool = False


def rolling_plan(store: StateStore, name: str, *, max_unavailable: int = 1, force: bool = False,
                 on_task: Progress | None = None, on_line: Progress | None = None,
                 verbosity: int = 0) -> RollingPlan:
    """The hosts whose check run is not empty (every host with ``force``): control planes
    first, one at a time, then the others ``max_unavailable`` at a time."""
    user = load_cluster(store, name, completed=False)
    files = inventory_files(store, load_cluster(store, name), get_cloud(user.spec.cloud, store))
    if files != stored_inventory(store, name):  # the batches run the stored inventory
        raise RollingUpdateStopped(f"the stored inventory is not the stored spec's: run `kpyops "
                                   f"update cluster {name} --yes --target cloud` first")
    check = check_hosts(store, user, on_task=on_task, on_line=on_line, verbosity=verbosity)
    if check.not_checked:
        raise RollingUpdateStopped("hosts whose machine does not run: " + ", ".join(
            f"{h} ({why})" for h, why in check.not_checked.items()) + "; run update cluster --yes first")
    _groups, masters = _node_groups(files)
    hosts = [h for h in _inventory_hosts(files) if force or h in check.changed]
    planes = [h for h in hosts if h in masters]
    others = [h for h in hosts if h not in masters]
    batches = [[h] for h in planes]
    batches += [others[i:i + max_unavailable] for i in range(0, len(others), max_unavailable)]
    return RollingPlan(batches=batches, check=check, forced=force)


def rolling_update(store: StateStore, name: str, plan: RollingPlan, progress: Progress, *,
                   validate_timeout: float = 600, on_task: Progress | None = None,
                   on_line: Progress | None = None, verbosity: int = 0) -> PlaybookResult:
    """Each batch of ``plan`` in turn: drained, converged and uncordoned (rolling-update.yml
    --limit BATCH), then the cluster validated (within ``validate_timeout`` seconds) before
    the next one. RollingUpdateStopped when a batch leaves it invalid."""
    from kpyops import validate  # the API client: only when hosts are touched

    results = []
    if plan.batches:
        store.delete(name, CONVERGED)  # until every batch has run
    for i, batch in enumerate(plan.batches, 1):
        progress(f"batch {i}/{len(plan.batches)}: draining, converging and uncordoning "
                 + ", ".join(batch))
        with store.lock(name, purpose=f"rolling update of {', '.join(batch)}"), \
                synced(store, name) as wd:
            results.append(run_playbook(ROLLING_UPDATE_PLAYBOOK, str(wd / INVENTORY_DIR),
                                        limit=",".join(batch), diff=True, on_task=on_task,
                                        on_line=on_line, verbosity=verbosity))
        progress(f"batch {i}/{len(plan.batches)}: validating {name} (up to {validate_timeout:.0f}s)")
        with validate.for_cluster(store, name) as (api, expected, etcd):
            findings = validate.validate(api, expected, etcd, wait=validate_timeout, progress=progress)
        failing = [f"{f.item}: {f.detail}" for f in findings if not f.ok]
        if failing:
            raise RollingUpdateStopped(f"the cluster is not valid after {', '.join(batch)} "
                                       f"({'; '.join(failing)}): stopped before the next batch")
    # the hosts left out had nothing to do: every host now runs the stored inventory
    store.write_text(name, CONVERGED, json.dumps(
        {"inventory": inventory_digest(stored_inventory(store, name))}))
    return combine(*results) if results else PlaybookResult(rc=0)


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
