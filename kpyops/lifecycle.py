"""Cluster lifecycle: the library behind `kpyops create|update|delete cluster`.

spec -> completed spec -> state store -> inventory -> machines -> cluster.yml.
The CLI only parses arguments and prints; every step lives here so tests can call it.
"""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kpyops.clouds import Change, get_cloud
from kpyops.clouds.base import Cloud
from kpyops.render.inventory import render_inventory
from kpyops.run.ansible import FACT_CACHE, PlaybookResult, run_playbook
from kpyops.spec import Cluster, complete, dumps, loads
from kpyops.spec.model import Cluster as ClusterModel
from kpyops.state.base import (
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


class ClusterExists(RuntimeError):
    pass


@dataclass
class Plan:
    cloud: list[Change] = field(default_factory=list)
    inventory: dict[str, str] = field(default_factory=dict)  # path -> unified diff

    @property
    def empty(self) -> bool:
        return not self.cloud and not self.inventory


def load_cluster(store: StateStore, name: str, *, completed: bool = True) -> ClusterModel:
    if not store.exists(name, SPEC):
        raise ClusterNotFound(f"cluster {name!r} not found in {store.url}")
    return loads(store.read_text(name, COMPLETED_SPEC if completed else SPEC))


def inventory_files(store: StateStore, cluster: Cluster, cloud: Cloud | None = None) -> dict[str, str]:
    wd = workdir(store, cluster.name)
    hosts = cloud.inventory_hosts(cluster) if cloud and hasattr(cloud, "inventory_hosts") else None
    return render_inventory(
        cluster,
        hosts=hosts,
        ssh_key_file=str(wd / SSH_KEY) if store.exists(cluster.name, SSH_KEY) or cluster.spec.cloud == "local" else None,
        state_dir=str(wd),
        known_hosts_file=str(wd / KNOWN_HOSTS) if cluster.spec.cloud == "local" else None,
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


def create(store: StateStore, user: Cluster, progress: Progress) -> Cluster:
    """Write a new cluster's spec, completed spec and inventory. Raises SpecError first."""
    completed = complete(user)
    if store.exists(user.name, SPEC):
        raise ClusterExists(f"cluster {user.name!r} already exists in {store.url}")
    with store.lock(user.name, purpose="create cluster"):
        save(store, user, completed)
        write_inventory(store, user.name, inventory_files(store, completed))
    progress(f"cluster {user.name} written to {store.url}")
    return completed


def plan(store: StateStore, user: Cluster) -> Plan:
    """What `update --yes` would change, reading only."""
    completed = complete(user)
    cloud = get_cloud(completed.spec.cloud, store)
    return Plan(cloud=cloud.plan(completed),
                inventory=diff_inventory(store, user.name, inventory_files(store, completed, cloud)))


def check_hosts(store: StateStore, name: str, *, on_task: Progress | None = None) -> PlaybookResult:
    """cluster.yml in check mode with diffs: what a converge would change on the hosts."""
    with synced(store, name) as wd:
        return run_playbook("cluster.yml", str(wd / INVENTORY_DIR), check=True, diff=True,
                            on_task=on_task)


def apply(store: StateStore, user: Cluster, progress: Progress, *, verbosity: int = 0,
          on_line: Progress | None = None, on_task: Progress | None = None,
          extra_vars: dict | None = None) -> PlaybookResult:
    """Make machines match the spec, render the inventory, and converge cluster.yml."""
    completed = complete(user)
    with store.lock(user.name, purpose="update cluster"):
        save(store, user, completed)
        cloud = get_cloud(completed.spec.cloud, store, progress)
        changes = cloud.apply(completed)
        for ch in changes:
            if ch.kind == "container" and ch.action in ("create", "delete"):
                (FACT_CACHE / ch.name).unlink(missing_ok=True)  # a new machine, new facts
        write_inventory(store, user.name, inventory_files(store, completed, cloud))
        with synced(store, user.name) as wd:
            progress(f"converging cluster.yml on {user.name}")
            return run_playbook("cluster.yml", str(wd / INVENTORY_DIR), on_line=on_line,
                                on_task=on_task, verbosity=verbosity, extra_vars=extra_vars)


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
