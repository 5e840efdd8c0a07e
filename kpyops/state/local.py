"""The local folder state store: $KPYOPS_STATE (default ~/.kpyops)/clusters/NAME/..."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from kpyops.spec.names import CLUSTER_NAME_MAX, check_cluster_name, is_valid
from kpyops.state.base import ClusterNotFound, LockHeld, StateError, StateStore

LOCK_FILE = ".lock"


def default_root() -> Path:
    return Path(os.environ.get("KPYOPS_STATE") or Path.home() / ".kpyops")


class LocalStore(StateStore):
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root else default_root()
        self.url = f"file://{self.root}"

    def _dir(self, cluster: str) -> Path:
        """The cluster's folder; every path of the store is built here, from a checked name."""
        return self.root / "clusters" / check_cluster_name(cluster)

    def _make_dir(self, cluster: str) -> Path:
        """The cluster's folder, made if missing: it, the store's root and every folder
        between are private (0700)."""
        d = self._dir(cluster)
        for folder in (self.root, self.root / "clusters", d):
            folder.mkdir(exist_ok=True, mode=0o700)
            if folder.stat().st_mode & 0o077:
                os.chmod(folder, 0o700)
        return d

    def _path(self, cluster: str, key: str) -> Path:
        p = (self._dir(cluster) / key).resolve()
        if not p.is_relative_to(self._dir(cluster).resolve()):
            raise StateError(f"key {key!r} escapes the cluster folder")
        return p

    def clusters(self) -> list[str]:
        base = self.root / "clusters"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir()
                      if is_valid(p.name, CLUSTER_NAME_MAX) and (p / "spec.yaml").is_file())

    def exists(self, cluster: str, key: str = "spec.yaml") -> bool:
        return self._path(cluster, key).exists()

    def read(self, cluster: str, key: str) -> bytes:
        try:
            return self._path(cluster, key).read_bytes()
        except FileNotFoundError:
            if not self._dir(cluster).is_dir():
                raise ClusterNotFound(f"cluster {cluster!r} not found in {self.url}") from None
            raise StateError(f"{key} not found for cluster {cluster!r}") from None

    def write(self, cluster: str, key: str, data: bytes, *, secret: bool = False) -> None:
        path = self._path(cluster, key)
        d = self._make_dir(cluster)
        for parent in reversed(path.relative_to(d.resolve()).parents[:-1]):
            (d / parent).mkdir(exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o600 if secret else 0o644)
        os.replace(tmp, path)  # atomic: a reader never sees half a file

    def delete(self, cluster: str, key: str) -> None:
        path = self._path(cluster, key)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)

    def list(self, cluster: str, prefix: str = "") -> list[str]:
        base = self._dir(cluster)
        if not base.is_dir():
            return []
        return sorted(
            str(p.relative_to(base))
            for p in base.rglob("*")
            if p.is_file() and p.name != LOCK_FILE and str(p.relative_to(base)).startswith(prefix)
        )

    def delete_cluster(self, cluster: str) -> None:
        shutil.rmtree(self._dir(cluster), ignore_errors=True)

    def local_path(self, cluster: str) -> str:
        return str(self._dir(cluster))

    @contextlib.contextmanager
    def lock(self, cluster: str, *, purpose: str) -> Iterator[None]:
        d = self._make_dir(cluster)
        path = d / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = path.read_text(errors="replace").strip() or "another run"
                raise LockHeld(f"cluster {cluster!r} is locked by {holder}") from None
            os.ftruncate(fd, 0)
            os.write(
                fd,
                json.dumps(
                    {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose,
                     "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                ).encode(),
            )
            yield
        finally:
            os.close(fd)  # closing releases the flock; a crashed run releases it too
