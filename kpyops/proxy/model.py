"""The proxy's internal data model: what a dataplane is asked to program.

Everything here is a frozen dataclass, built by the change trackers from Services and
EndpointSlices, and never mutated afterwards: a dataplane may keep references between syncs
and compare them with ``==`` to find what changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

TCP = "TCP"
UDP = "UDP"
SCTP = "SCTP"
PROTOCOLS = (TCP, UDP, SCTP)

DEFAULT_STICKY_MAX_AGE_SECONDS = 10800  # core/v1 ClientIPConfig.timeoutSeconds default


def ip_family(address: str) -> int:
    """4 or 6, for an address or a CIDR (of a valid address: only IPv6 has colons)."""
    return 6 if ":" in address else 4


@dataclass(frozen=True, order=True)
class ServicePortName:
    """One port of one Service: the unit a proxy load-balances."""

    namespace: str
    name: str
    port: str  # the port's name; "" for a single unnamed port
    protocol: str = TCP

    def __str__(self) -> str:
        suffix = f":{self.port}" if self.port else ""
        return f"{self.namespace}/{self.name}{suffix}/{self.protocol.lower()}"


@dataclass(frozen=True)
class ServicePort:
    """What the proxy needs to know about one service port."""

    name: ServicePortName
    cluster_ips: tuple[str, ...]  # one per IP family (dual-stack); never "None"
    port: int
    protocol: str = TCP
    node_port: int = 0  # 0: no NodePort
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()  # status.loadBalancer.ingress[].ip
    load_balancer_source_ranges: tuple[str, ...] = ()
    health_check_node_port: int = 0
    session_affinity_client_ip: bool = False
    sticky_max_age_seconds: int = DEFAULT_STICKY_MAX_AGE_SECONDS
    external_policy_local: bool = False  # externalTrafficPolicy: Local
    internal_policy_local: bool = False  # internalTrafficPolicy: Local
    topology_aware: bool = False  # the Service asks for topology-aware routing (hints)

    @property
    def has_external_addresses(self) -> bool:
        """True if traffic can arrive from outside the cluster (NodePort, externalIPs, LB)."""
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)

    def cluster_ip(self, family: int) -> str | None:
        """The ClusterIP of one IP family, if the service has one."""
        return next((ip for ip in self.cluster_ips if ip_family(ip) == family), None)


@dataclass(frozen=True, order=True)
class Endpoint:
    """One backend of a service port, from an EndpointSlice."""

    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str | None = None
    zone: str | None = None
    is_local: bool = False  # node_name is this proxy's node
    zone_hints: tuple[str, ...] = ()  # hints.forZones[].name
    node_hints: tuple[str, ...] = ()  # hints.forNodes[].name

    @property
    def address(self) -> str:
        """ip:port, with brackets for IPv6."""
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"

    @property
    def family(self) -> int:
        return ip_family(self.ip)


ServiceMap = Mapping[ServicePortName, ServicePort]
"""Every service port the proxy knows, after skipping headless/ExternalName/foreign ones."""

EndpointsMap = Mapping[ServicePortName, tuple[Endpoint, ...]]
"""Every endpoint of each service port, merged over all its EndpointSlices, sorted."""
