"""The interface between the proxy's sync loop and a kernel dataplane.

The sync loop (``kpyops.proxy.proxier``) owns sources, change trackers, the bounded-frequency
runner, health and metrics. At each sync it calls exactly one method of a dataplane::

    result = dataplane.sync(services, endpoints, changed)

How to implement a dataplane (e.g. ``kpyops.proxy.ipvs.IpvsDataplane``):

- ``services`` is a :data:`~kpyops.proxy.model.ServiceMap` and ``endpoints`` an
  :data:`~kpyops.proxy.model.EndpointsMap` with *every* service port and its endpoints
  (frozen dataclasses from :mod:`kpyops.proxy.model`). Filter by IP family yourself
  (``ServicePort.cluster_ip(family)``, ``Endpoint.family``): one dataplane serves one family.
- Choose which endpoints receive traffic with
  :func:`kpyops.proxy.categorize.categorize_endpoints` (ready first, serving-terminating
  fallback, Local traffic policies), never by reading ``ready`` yourself.
- ``changed`` is the set of service port names whose service or endpoints changed since the
  previous *successful* sync, or ``None`` when the loop asks for a full resync (start-up,
  periodic, after a failure or a failed canary check). A dataplane may ignore ``changed`` and
  always reconcile everything; it must never program less than ``services``/``endpoints``
  describe.
- Return a :class:`SyncResult`. Raise :class:`DataplaneError` if the kernel refused the
  change; the loop then retries with a full sync after ``syncPeriod``.
- ``cleanup()`` removes everything this dataplane type could have created (chains, ipsets,
  interfaces, virtual servers) and nothing else; it must work in a fresh process that never
  synced (``kpyops proxy --cleanup``) and must be safe to run twice.
- ``check_canary()`` returns False if someone flushed our kernel state behind our back
  (iptables: the KUBE-PROXY-CANARY chain is gone); the loop then forces a full sync.
  Return True if the dataplane has nothing to check.

UDP conntrack cleanup is done by the loop, not by dataplanes (it only depends on the maps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from kpyops.proxy.model import EndpointsMap, ServiceMap, ServicePortName


class DataplaneError(RuntimeError):
    """The kernel (or a tool such as iptables-restore) refused a change."""


@dataclass(frozen=True)
class SyncResult:
    """What one dataplane sync did, for logs, metrics and tests."""

    full: bool  # every object was rewritten (False: only changed services)
    services_written: int  # service ports whose kernel state was (re)written
    objects_deleted: int = 0  # stale chains / virtual servers / set entries removed
    compute_seconds: float = 0.0  # building the desired state in Python (not reading the kernel)
    apply_seconds: float = 0.0  # handing it to the kernel (iptables-restore, netlink)
    details: dict[str, float] = field(default_factory=dict)  # dataplane-specific figures


@runtime_checkable
class Dataplane(Protocol):
    """A kernel dataplane the proxy's sync loop drives."""

    def sync(
        self,
        services: ServiceMap,
        endpoints: EndpointsMap,
        changed: set[ServicePortName] | None,
    ) -> SyncResult:
        """Make the kernel match ``services``/``endpoints`` (see the module docstring)."""
        ...

    def cleanup(self) -> None:
        """Remove everything this kind of dataplane creates; idempotent."""
        ...

    def check_canary(self) -> bool:
        """False if our kernel state was flushed by someone else (forces a full sync)."""
        ...
