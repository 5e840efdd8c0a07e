"""`kpyops certs` as a library: list a cluster's certificates, and renew some through Ansible."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kpyops.pki.inspect import CertInfo, list_certs
from kpyops.run.ansible import PlaybookResult, run_playbook
from kpyops.state.base import INVENTORY_DIR, PKI_DIR, ClusterNotFound, StateStore
from kpyops.state.workdir import pull, synced, workdir

WARN_DAYS = 30
# The playbooks that rebuild the PKI folder and put renewed certificates in service (etcd
# restarts one member at a time). Control-plane components pick theirs up in cluster.yml.
RENEW_PLAYBOOKS = ("playbooks/pki.yml", "playbooks/etcd.yml")


def pki_dir(store: StateStore, name: str) -> Path:
    """The cluster's PKI folder on this machine (pulled from the store first, if remote)."""
    pull(store, name)
    path = workdir(store, name) / PKI_DIR
    if not any(path.rglob("*.crt")):
        raise ClusterNotFound(f"cluster {name!r} has no certificates yet in {path}: create it first")
    return path


def certificates(store: StateStore, name: str) -> list[CertInfo]:
    return list_certs(pki_dir(store, name))


def expiring(certs: list[CertInfo], days: float = WARN_DAYS) -> list[CertInfo]:
    return [c for c in certs if c.days_left < days]


def to_renew(certs: list[CertInfo], names: tuple[str, ...], every: bool, days: float) -> list[str]:
    """Leaf certificates to renew: the named ones, all, or those under ``days`` left."""
    leaves = {c.name: c for c in certs if not c.is_ca}
    if names:
        unknown = sorted(set(names) - set(leaves))
        if unknown:
            raise KeyError(f"no such leaf certificate: {', '.join(unknown)} "
                           f"(CAs are not renewed here; see `kpyops certs check`)")
        return list(names)
    if every:
        return sorted(leaves)
    return sorted(c.name for c in expiring(list(leaves.values()), days))


def renew(store: StateStore, name: str, leaves: list[str], *,
          on_task: Callable[[str], None] | None = None,
          on_line: Callable[[str], None] | None = None) -> list[PlaybookResult]:
    """Renew ``leaves`` in the PKI folder and roll them out (pki.yml, then etcd.yml)."""
    results = []
    with store.lock(name, purpose="renew certificates"), synced(store, name) as wd:
        inventory = wd / INVENTORY_DIR
        for playbook in RENEW_PLAYBOOKS:
            extra = {"pki_force_renew": ",".join(leaves)} if playbook.endswith("pki.yml") and leaves else None
            results.append(run_playbook(playbook, str(inventory), extra_vars=extra,
                                        on_task=on_task, on_line=on_line))
    return results
