"""Which endpoints of a service port receive traffic: kube-proxy's CategorizeEndpoints.

Ready endpoints are used first; only when a set has no ready endpoint do serving-terminating
endpoints take over (so connections still succeed during a rolling update). ``Local`` traffic
policies restrict internal and/or external traffic to endpoints on this node.

Topology-aware routing narrows the Cluster set by the EndpointSlice hints, when the Service
asks for it (``ServicePort.topology_aware``: the topology-mode annotation or a topology
``trafficDistribution``). Node hints come first (``PreferSameNode``): when every ready
endpoint carries a node hint and one is hinted for this node, only those hinted for this node
are used. Otherwise zone hints: when this node's zone is known, every ready endpoint carries
a zone hint and one is hinted for this zone, only those hinted for this zone. Otherwise every
ready endpoint is used. There is no topology in the serving-terminating fallback or the
Local sets. (kube-proxy applies hints without looking at the Service; the EndpointSlice
controller writes them only when asked, so the result is the same for its slices, and stray
hints in hand-written slices are ignored here.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kpyops.proxy.model import Endpoint, ServicePort


@dataclass(frozen=True)
class CategorizedEndpoints:
    cluster: tuple[Endpoint, ...]  # for traffic under the Cluster policy
    local: tuple[Endpoint, ...]  # for traffic under a Local policy (this node only)
    all_reachable: tuple[Endpoint, ...]  # union: endpoints some traffic can reach
    has_any: bool  # the service has usable endpoints somewhere in the cluster


def uses_cluster_endpoints(svc: ServicePort) -> bool:
    """Some traffic to ``svc`` may go to any node's endpoints.

    True for a Cluster internal policy, and for any externally reachable service: even under
    an external Local policy, pods and the node itself reach external addresses cluster-wide
    ("short-circuit"), as if going out to a load balancer and back.
    """
    return not svc.internal_policy_local or svc.has_external_addresses


def uses_local_endpoints(svc: ServicePort) -> bool:
    """Some traffic to ``svc`` may only go to this node's endpoints."""
    return svc.internal_policy_local or (svc.has_external_addresses and svc.external_policy_local)


def _serving_terminating(ep: Endpoint) -> bool:
    return ep.serving and ep.terminating


def topology_filter(
    svc: ServicePort, endpoints: tuple[Endpoint, ...], node_name: str, zone: str
) -> Callable[[Endpoint], bool] | None:
    """kube-proxy's choice of hints for ``svc`` on node ``node_name`` in ``zone``: a test an
    endpoint must pass to be used for Cluster traffic, or None (no topology)."""
    if not svc.topology_aware:
        return None
    ready = [ep for ep in endpoints if ep.ready]
    if not ready:
        return None
    nodes = [ep.node_hints for ep in ready]
    if node_name and all(nodes) and any(node_name in hints for hints in nodes):
        return lambda ep: node_name in ep.node_hints
    zones = [ep.zone_hints for ep in ready]
    if zone and all(zones) and any(zone in hints for hints in zones):
        return lambda ep: zone in ep.zone_hints
    return None


def categorize_endpoints(
    svc: ServicePort, endpoints: Iterable[Endpoint], zone: str = "", node_name: str = ""
) -> CategorizedEndpoints:
    """Split ``endpoints`` of ``svc`` into the sets each traffic policy uses, on the node
    ``node_name`` in ``zone`` ("" if unknown: no hints of that kind are used)."""
    eps = tuple(endpoints)
    cluster: tuple[Endpoint, ...] = ()
    local: tuple[Endpoint, ...] = ()
    has_any = False

    if uses_cluster_endpoints(svc):
        usable = topology_filter(svc, eps, node_name, zone)
        cluster = tuple(ep for ep in eps if ep.ready and (usable is None or usable(ep)))
        if not cluster:
            cluster = tuple(ep for ep in eps if _serving_terminating(ep))
        has_any = bool(cluster)

    if not uses_local_endpoints(svc):
        return CategorizedEndpoints(cluster, (), cluster, has_any)

    has_any = has_any or any(ep.ready or _serving_terminating(ep) for ep in eps)
    local = tuple(ep for ep in eps if ep.is_local and ep.ready)
    if not local:
        local = tuple(ep for ep in eps if ep.is_local and _serving_terminating(ep))

    if not uses_cluster_endpoints(svc) or not cluster:
        return CategorizedEndpoints(cluster, local, local, has_any)

    union = {ep.address: ep for ep in cluster}
    union.update({ep.address: ep for ep in local})
    return CategorizedEndpoints(cluster, local, tuple(union.values()), has_any)
