"""Day-2 operations as a library: delete node, rolling update, upgrade.

Each builds on the lifecycle (spec -> inventory -> playbooks): a plan first (the same
playbooks in check mode, nothing stored), then the change, host by host where it disrupts.
Adding nodes is part of `lifecycle.update` (it is a spec change); `lifecycle.reset_host`
resets one host. docs/day2.md says what each proves and what is not built yet.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import yaml

from kpyops.clouds import Change, get_cloud
from kpyops.clouds.capabilities import capabilities
from kpyops.lifecycle import (
    NEIGHBOURS_PLAYBOOK,
    HostsCheck,
    Plan,
    Progress,
    check_hosts,
    hosts_of,
    inventory_files,
    load_cluster,
    node_groups_of,
    proposed_inventory,
    save,
    stored_inventory,
    write_inventory,
)
from kpyops.lifecycle import plan as lifecycle_plan
from kpyops.lifecycle import update as lifecycle_update
from kpyops.render.growth import added_nodes
from kpyops.run.ansible import FACT_CACHE, PlaybookResult, combine, run_playbook
from kpyops.run.changes import HostChanges, host_changes
from kpyops.spec import Cluster, SpecError, complete
from kpyops.spec.hosts import NotRemovable, without_node
from kpyops.spec.skew import version_problems
from kpyops.state.base import INVENTORY_DIR, StateStore
from kpyops.state.workdir import synced

REMOVE_NODE_PLAYBOOK = "remove-node.yml"
ROLLING_UPDATE_PLAYBOOK = "rolling-update.yml"
# a batch of a rolling update may move the Kubernetes version (plain cluster.yml refuses it)
VERSION_CHANGE_ALLOWED = {"control_plane_version_change_allowed": True}


@dataclass
class Removal:
    """What `delete node` does (or, checked, would do)."""

    node: str
    spec: Cluster  # the user's spec without the node
    reset: bool  # its host is reset (else the cloud deletes its machine, or it is dead)
    cloud: list[Change]  # the machine deleted
    result: PlaybookResult  # remove-node.yml, then neighbours.yml on the others
    hosts: dict[str, HostChanges]


def remove_node(store: StateStore, name: str, node: str, progress: Progress, *,
                check: bool = False, reset: bool = True, on_task: Progress | None = None,
                on_line: Progress | None = None, verbosity: int = 0) -> Removal:
    """Take worker ``node`` out of cluster ``name``: drain it and delete its Node object,
    reset its host (where the cloud does not delete the machine, and unless ``reset`` is
    False: a dead host), drop it from the spec and the inventory, delete its machine, and write
    the remaining hosts into every /etc/hosts and their pod routes (neighbours.yml). Refused
    before anything runs (NotRemovable) unless the smaller inventory is the current one less
    this node and nothing else. With
    ``check``: the same playbooks in check mode, and nothing stored or deleted."""
    user = load_cluster(store, name, completed=False)
    completed = load_cluster(store, name)
    cloud = get_cloud(completed.spec.cloud, store, progress)
    old_files = inventory_files(store, completed, cloud)
    smaller = without_node(user, node, *node_groups_of(old_files))
    smaller_completed = complete(smaller)
    new_files = inventory_files(store, smaller_completed, cloud)
    if added_nodes(new_files, old_files) != [node]:
        raise NotRemovable(f"taking {node} out of the spec would change more than the list of "
                           "nodes (other hosts' variables or groups): not supported")
    # a machine the cloud made is deleted with its disks: resetting it first is wasted work
    reset = reset and capabilities(completed.spec.cloud).lists_hosts
    others = ",".join(h for h in hosts_of(new_files))
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
                    named = run(NEIGHBOURS_PLAYBOOK, str(inventory), limit=others)
                result = combine(removed, named)
                return Removal(node, smaller, reset, cloud.plan(smaller_completed), result,
                               host_changes(result.events))
        save(store, smaller, smaller_completed)
        changes = cloud.apply(smaller_completed)
        (FACT_CACHE / node).unlink(missing_ok=True)
        write_inventory(store, name, new_files)
        with synced(store, name) as wd:
            result = combine(removed, run(NEIGHBOURS_PLAYBOOK, str(wd / INVENTORY_DIR), limit=others))
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
    # what each batch runs (rolling-update.yml): cluster.yml, a version change allowed
    check = check_hosts(store, user, on_task=on_task, on_line=on_line, verbosity=verbosity,
                        extra_vars=VERSION_CHANGE_ALLOWED)
    if check.not_checked:
        raise RollingUpdateStopped("hosts whose machine does not run: " + ", ".join(
            f"{h} ({why})" for h, why in check.not_checked.items()) + "; run update cluster --yes first")
    _groups, masters = node_groups_of(files)
    hosts = [h for h in hosts_of(files) if force or h in check.changed]
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
    return combine(*results) if results else PlaybookResult(rc=0)


ETCD_BACKUP_PLAYBOOK = "etcd-backup.yml"
# What an upgrade changes on a host, by inventory group: the programs of that version
UPGRADED = {"kube_control_plane": ("kube-apiserver", "kube-controller-manager", "kube-scheduler"),
            "k8s_cluster": ("kubelet", "kubectl")}


@dataclass
class UpgradePlan:
    """What `upgrade cluster` would do: versions per host, the rules kept, the batches."""

    old: str
    new: str
    spec: Cluster  # the user's spec at the new version
    components: dict[str, list[str]]  # host -> programs that move from old to new
    update: Plan  # machines and inventory the new version changes


def upgrade_plan(store: StateStore, name: str, version: str) -> UpgradePlan:
    """The upgrade of cluster ``name`` to Kubernetes ``version``, checked against the version
    rules (spec.skew: SpecError) and planned, reading only. The same version as stored is a
    resumed upgrade: nothing to check, the rolling update goes on where it stopped."""
    user = load_cluster(store, name, completed=False)
    old = load_cluster(store, name).spec.kubernetes_version
    problems = version_problems(old, version)
    if problems:
        raise SpecError(problems=problems)
    new = user.model_copy(deep=True)
    new.spec.kubernetes_version = version
    completed = complete(new)
    files = inventory_files(store, completed, get_cloud(completed.spec.cloud, store))
    inventory = yaml.safe_load(files["hosts.yml"])["all"]
    children = inventory.get("children") or {}
    planes = set((children.get("kube_control_plane") or {}).get("hosts") or {})
    components = {h: [*(UPGRADED["kube_control_plane"] if h in planes else ()), *UPGRADED["k8s_cluster"]]
                  for h in hosts_of(files)}
    return UpgradePlan(old=old, new=version, spec=new, components=components,
                       update=lifecycle_plan(store, new))


def upgrade(store: StateStore, up: UpgradePlan, progress: Progress, *, max_unavailable: int = 1,
            validate_timeout: float = 600, on_task: Progress | None = None,
            on_line: Progress | None = None, verbosity: int = 0) -> PlaybookResult:
    """An etcd snapshot (etcd-backup.yml, copied to the state store), the new version stored
    with its machines and inventory (the hosts untouched), then a rolling update: control
    planes one at a time, then nodes drained ``max_unavailable`` at a time, the cluster
    validated after each batch. A re-run after a stop snapshots again and goes on."""
    name = up.spec.name
    run = functools.partial(run_playbook, on_task=on_task, on_line=on_line, verbosity=verbosity)
    progress(f"etcd snapshot of {name} before the upgrade ({ETCD_BACKUP_PLAYBOOK})")
    with store.lock(name, purpose="etcd snapshot before an upgrade"), synced(store, name) as wd:
        snapshot = run(ETCD_BACKUP_PLAYBOOK, str(wd / INVENTORY_DIR))
    progress(f"storing Kubernetes {up.new} for {name}: machines and inventory (hosts untouched)")
    lifecycle_update(store, up.spec, progress, converge=False)
    plan = rolling_plan(store, name, max_unavailable=max_unavailable, on_task=on_task,
                        on_line=on_line, verbosity=verbosity)
    rolled = rolling_update(store, name, plan, progress, validate_timeout=validate_timeout,
                            on_task=on_task, on_line=on_line, verbosity=verbosity)
    return combine(snapshot, rolled)
