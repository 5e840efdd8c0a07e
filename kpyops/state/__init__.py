"""State stores: where clusters live between runs."""

from __future__ import annotations

from kpyops.state.base import ClusterNotFound, LockHeld, StateError, StateStore
from kpyops.state.local import LocalStore


def open_store(url: str | None = None) -> StateStore:
    """A store for a URL: none or a path -> local folder; s3://bucket/prefix -> S3."""
    if url and url.startswith("s3://"):
        from kpyops.state.s3 import S3Store  # imported late: boto3 only when needed

        return S3Store(url)
    if url and url.startswith("file://"):
        url = url.removeprefix("file://")
    return LocalStore(url)


__all__ = ["ClusterNotFound", "LocalStore", "LockHeld", "StateError", "StateStore", "open_store"]
