"""The local work folder Ansible runs from.

A local store *is* the work folder: Ansible reads and writes the store's own files. A store
without a local folder (S3) gets a private cache, ``~/.cache/kpyops/clusters/NAME``: before a
run it receives what Ansible reads (inventory, SSH key, PKI, secrets) from the store; after
the run, what the playbooks wrote on the control machine (PKI, secrets, etcd snapshots) goes
back to the store, even when the run failed. Losing the control machine then loses nothing:
the CA keys and the encryption-at-rest key live in the store, not only in a cache.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from kpyops.spec.names import check_cluster_name
from kpyops.state.base import (
    BACKUPS_DIR,
    INVENTORY_DIR,
    PKI_DIR,
    SECRETS_DIR,
    SSH_DIR,
    StateStore,
)

# Store -> work folder before a run; INVENTORY_DIR is mirrored (stale files removed).
PULLED = (INVENTORY_DIR, SSH_DIR, PKI_DIR, SECRETS_DIR)
# Work folder -> store after a run: what playbooks write on the control machine.
PUSHED = (PKI_DIR, SECRETS_DIR, BACKUPS_DIR)


def cache_root() -> Path:
    return Path.home() / ".cache" / "kpyops" / "clusters"


def cache_dir(name: str) -> Path:
    """The private cache folder of a cluster kept in a remote store (a checked name only)."""
    return cache_root() / check_cluster_name(name)


def workdir(store: StateStore, name: str) -> Path:
    """The folder holding the cluster's files for Ansible (the store's own, if local)."""
    path = store.local_path(name)
    return Path(path) if path else cache_dir(name)


def _private_folders(path: Path) -> None:
    """``path``'s folder made, it and every folder from the cache root down to it 0700."""
    root = cache_root() if path.is_relative_to(cache_root()) else path.parent
    root.parent.mkdir(parents=True, exist_ok=True)
    folders = [root]
    for part in path.parent.relative_to(root).parts:
        folders.append(folders[-1] / part)
    for folder in folders:
        folder.mkdir(exist_ok=True, mode=0o700)
        if folder.stat().st_mode & 0o077:
            os.chmod(folder, 0o700)


def _write_private(path: Path, data: bytes) -> None:
    _private_folders(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def pull(store: StateStore, name: str) -> list[str]:
    """Copy the store's files Ansible reads into the work folder (files 0600, folders 0700).

    Returns the keys whose local copy was written. A no-op for a local store.
    """
    if store.local_path(name) is not None:
        return []
    root = workdir(store, name)
    _private_folders(root / ".keep")
    written = []
    for folder in PULLED:
        keys = set(store.list(name, folder + "/"))
        for key in sorted(keys):
            local = root / key
            data = store.read(name, key)
            if not local.is_file() or local.read_bytes() != data:
                _write_private(local, data)
                written.append(key)
        if folder == INVENTORY_DIR and (root / folder).is_dir():
            for stale in (root / folder).rglob("*"):
                if stale.is_file() and stale.relative_to(root).as_posix() not in keys:
                    stale.unlink()
    return written


def push(store: StateStore, name: str) -> list[str]:
    """Copy what the playbooks wrote in the work folder back to the store, as secrets.

    Only new or changed files are written. Returns their keys. A no-op for a local store.
    """
    if store.local_path(name) is not None:
        return []
    root = workdir(store, name)
    written = []
    for folder in PUSHED:
        base = root / folder
        if not base.is_dir():
            continue
        stored = set(store.list(name, folder + "/"))
        for path in sorted(p for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")):
            key = path.relative_to(root).as_posix()
            data = path.read_bytes()
            if key not in stored or store.read(name, key) != data:
                store.write(name, key, data, secret=True)
                written.append(key)
    return written


@contextlib.contextmanager
def synced(store: StateStore, name: str) -> Iterator[Path]:
    """The work folder, pulled from the store, and pushed back when the block ends."""
    pull(store, name)
    try:
        yield workdir(store, name)
    finally:
        push(store, name)
