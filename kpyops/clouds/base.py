"""What every cloud provides: machines for a completed spec, and their removal.

kops-style: ``plan`` reads what exists and says what ``apply`` would change, writing
nothing; ``apply`` makes it so; ``delete`` removes everything the cluster owns.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field

from kpyops.clouds.capabilities import Capabilities, capabilities
from kpyops.spec.model import Cluster
from kpyops.state.base import StateStore

Progress = Callable[[str], None]


class CloudError(RuntimeError):
    """A cloud operation failed; ``str()`` is one line a person can act on (no secrets)."""


@dataclass
class Change:
    action: str  # "create" | "modify" | "delete"
    kind: str  # resource type, e.g. "container", "network", "vpc"
    name: str
    fields: dict[str, tuple[object, object]] = field(default_factory=dict)  # field -> (old, new)

    def __str__(self) -> str:
        sign = {"create": "+", "modify": "~", "delete": "-"}.get(self.action, "?")
        extra = "".join(f"\n      {k}: {o!r} -> {n!r}" for k, (o, n) in self.fields.items())
        return f"  {sign} {self.kind} {self.name}{extra}"


@dataclass
class InventoryHost:
    """A machine as the inventory needs it: its name, cluster address and SSH address."""

    name: str
    address: str
    ssh_host: str
    groups: list[str]
    vars: dict[str, object] = field(default_factory=dict)


class Cloud(abc.ABC):
    name: str

    def __init__(self, store: StateStore, progress: Progress = lambda _msg: None):
        self.store = store
        self.progress = progress

    @property
    def capabilities(self) -> Capabilities:
        return capabilities(self.name)

    def choose(self, user: Cluster) -> Cluster:
        """The user's spec with what this cloud picks for a new cluster where the spec leaves
        it open (as kops writes its choices into the spec at create); reads only."""
        return user

    def preflight(self, cluster: Cluster) -> None:
        """Check the cloud's facts the completed spec relies on (credentials, zones, machine
        types, image) before the spec is stored; raise CloudError naming the first wrong one.
        Reads only. Local machines and bare metal have no such facts to check."""
        return None

    def api_endpoint(self, cluster: Cluster) -> str | None:
        """The API's address when the cloud gives it one (a load balancer's name)."""
        return None

    def probe_image(self, cluster: Cluster) -> str | None:
        """The reference of kpyops' probe image when a registry the cluster pulls from
        serves it (validate's in-cluster check); None when none does."""
        return None

    @abc.abstractmethod
    def plan(self, cluster: Cluster) -> list[Change]:
        """What apply would change; reads only."""

    @abc.abstractmethod
    def apply(self, cluster: Cluster) -> list[Change]:
        """Create or change machines so they match the completed spec."""

    @abc.abstractmethod
    def delete(self, cluster: Cluster) -> list[Change]:
        """Remove every machine and resource the cluster owns."""

    def plan_delete(self, cluster: Cluster) -> list[Change]:
        """What delete would remove; reads only."""
        return []
