"""Bare metal: the machines exist already; kpyops only checks it can reach them."""

from __future__ import annotations

from kpyops.clouds.base import Change, Cloud
from kpyops.spec.model import Cluster


class BaremetalCloud(Cloud):
    name = "baremetal"

    def plan(self, cluster: Cluster) -> list[Change]:
        return []  # nothing to create: hosts are the user's

    def apply(self, cluster: Cluster) -> list[Change]:
        return []

    def delete(self, cluster: Cluster) -> list[Change]:
        return []  # never touches the user's machines; only the state is removed
