"""Clouds: where a cluster's machines come from."""

from __future__ import annotations

from kpyops.clouds.base import Change, Cloud, InventoryHost, Progress
from kpyops.state.base import StateStore


def get_cloud(name: str, store: StateStore, progress: Progress = lambda _m: None) -> Cloud:
    if name == "local":
        from kpyops.clouds.local import LocalCloud

        return LocalCloud(store, progress)
    if name == "baremetal":
        from kpyops.clouds.baremetal import BaremetalCloud

        return BaremetalCloud(store, progress)
    if name == "aws":
        from kpyops.clouds.aws import AwsCloud

        return AwsCloud(store, progress)
    raise ValueError(f"unknown cloud {name!r}")


__all__ = ["Change", "Cloud", "InventoryHost", "get_cloud"]
