"""The state store interface: where a cluster's spec, inventory, PKI and keys live.

A store holds one folder-like namespace per cluster. Keys are relative POSIX paths
("spec.yaml", "pki/ca.crt"). The local folder store and the S3 store implement it.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterator

# What a cluster's namespace holds, by key
SPEC = "spec.yaml"  # the user's spec, as given
COMPLETED_SPEC = "cluster-completed.yaml"  # every default filled
INVENTORY_DIR = "inventory"  # rendered hosts.yml and group_vars/
PKI_DIR = "pki"  # CAs, certificates and keys (written by the pki role on the control machine)
SECRETS_DIR = "secrets"  # e.g. the encryption-at-rest key (control_plane role)
BACKUPS_DIR = "backups"  # etcd snapshots copied off the hosts (etcd-backup.yml)
SSH_DIR = "ssh"
CLUSTER_ID = "cluster-id"  # a random id made by create; cloud resources carry it
SSH_KEY = f"{SSH_DIR}/id_ed25519"


class StateError(RuntimeError):
    pass


class ClusterNotFound(StateError):
    pass


class LockHeld(StateError):
    """Another run holds the cluster's lock."""


class StateStore(abc.ABC):
    """Abstract store. ``secret=True`` writes are private to the owner (mode 0600 / SSE)."""

    url: str

    @abc.abstractmethod
    def clusters(self) -> list[str]: ...

    @abc.abstractmethod
    def exists(self, cluster: str, key: str = SPEC) -> bool: ...

    @abc.abstractmethod
    def read(self, cluster: str, key: str) -> bytes: ...

    @abc.abstractmethod
    def write(self, cluster: str, key: str, data: bytes, *, secret: bool = False) -> None: ...

    @abc.abstractmethod
    def delete(self, cluster: str, key: str) -> None: ...

    @abc.abstractmethod
    def list(self, cluster: str, prefix: str = "") -> list[str]: ...

    @abc.abstractmethod
    def delete_cluster(self, cluster: str) -> None: ...

    @abc.abstractmethod
    @contextlib.contextmanager
    def lock(self, cluster: str, *, purpose: str) -> Iterator[None]:
        """Hold the cluster's lock for the block; raise LockHeld if another run has it."""

    def break_lock(self, cluster: str, holder: str) -> str:
        """Remove a lock left by a run that is gone, if ``holder`` (``HOST/PID`` as the
        LockHeld message says) still holds it; returns what the lock said."""
        raise StateError(f"{self.url} keeps no lock a run can leave behind: its locks end "
                         "with the process that holds them")

    def local_path(self, cluster: str) -> str | None:
        """A filesystem folder with the cluster's files, if the store has one (local store)."""
        return None

    def read_text(self, cluster: str, key: str) -> str:
        return self.read(cluster, key).decode()

    def write_text(self, cluster: str, key: str, text: str, *, secret: bool = False) -> None:
        self.write(cluster, key, text.encode(), secret=secret)
