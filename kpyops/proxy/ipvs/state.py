"""What IPVS mode should program, computed from the service and endpoint maps (pure).

One IP family at a time. For every service port with an address of that family:

- a virtual server per ClusterIP, external IP, load-balancer IP and (node IP x NodePort),
  with the configured scheduler, and persistence for ``sessionAffinity: ClientIP``;
- real servers from :func:`categorize_endpoints`: the Local set where a Local traffic
  policy applies, the Cluster set otherwise. With no usable endpoint a virtual server has
  no real server, and IPVS lets the packet through to the local stack, which refuses it;
- the addresses to bind on ``kube-ipvs0`` and the members of each ipset.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from kpyops.proxy.categorize import categorize_endpoints
from kpyops.proxy.ipvs import ipset as sets
from kpyops.proxy.ipvs.ipset import SetSpec, ip_port
from kpyops.proxy.ipvs.netlink import RealServer, VirtualServer
from kpyops.proxy.model import (
    Endpoint,
    EndpointsMap,
    ServiceMap,
    ServicePort,
    ServicePortName,
    ip_family,
)


@dataclass
class DesiredState:
    """Everything one sync programs, keyed for diffing against the kernel."""

    servers: dict[tuple[str, str, int], VirtualServer] = field(default_factory=dict)
    real_servers: dict[tuple[str, str, int], frozenset[RealServer]] = field(default_factory=dict)
    owners: dict[tuple[str, str, int], ServicePortName] = field(default_factory=dict)
    bound: set[str] = field(default_factory=set)  # addresses on kube-ipvs0
    ipsets: dict[SetSpec, set[str]] = field(default_factory=dict)

    def add_member(self, spec: SetSpec, member: str) -> None:
        self.ipsets.setdefault(spec, set()).add(member)

    def add_server(
        self, vs: VirtualServer, real: frozenset[RealServer], owner: ServicePortName
    ) -> None:
        self.servers[vs.key] = vs
        self.real_servers[vs.key] = real
        self.owners[vs.key] = owner


@functools.lru_cache(maxsize=1 << 17)
def _ip6(address: str) -> str:
    return str(ipaddress.ip_address(address))


def _ip(address: str) -> str:
    """The canonical text of an address, as the kernel and ``ipset save`` print it.

    IPv4 text that parsed at all is canonical already (``ipaddress`` refuses leading
    zeros); IPv6 text is compressed, through a cache (this is the hot path of a sync).
    """
    return _ip6(address) if ":" in address else address


def _in_family(address: str, family: int) -> bool:
    return ip_family(address) == family


def _real_servers(endpoints: Iterable[Endpoint]) -> frozenset[RealServer]:
    return frozenset(RealServer(_ip(ep.ip), ep.port) for ep in endpoints)


def _virtual_server(svc: ServicePort, address: str, port: int, scheduler: str) -> VirtualServer:
    affinity = svc.session_affinity_client_ip
    return VirtualServer(
        _ip(address),
        svc.protocol,
        port,
        scheduler,
        persistent=affinity,
        timeout=svc.sticky_max_age_seconds if affinity else 0,
    )


def node_port_addresses(
    local_addresses: Iterable[str], cidrs: Iterable[str], family: int
) -> list[str]:
    """Node IPs that take NodePort traffic: all of the family (but loopback and
    link-local), or those inside ``cidrs`` (keywords such as ``primary`` are ignored)."""
    nets = [ipaddress.ip_network(c) for c in cidrs if "/" in c]
    out = []
    for addr in local_addresses:
        ip = ipaddress.ip_address(addr)
        if ip.version != family or ip.is_loopback or ip.is_link_local:
            continue  # link-local addresses need a scope: no virtual server can use them
        if nets and not any(ip in n for n in nets if n.version == family):
            continue
        out.append(str(ip))
    return sorted(set(out))


def build_state(
    services: ServiceMap,
    endpoints: EndpointsMap,
    family: int,
    scheduler: str,
    node_ips: Iterable[str],
    zone: str = "",
    node_name: str = "",
) -> DesiredState:
    """The desired IPVS, address and ipset state of one IP family (on the node
    ``node_name`` in ``zone``, for topology hints)."""
    state = DesiredState()
    node_ips = sorted(set(node_ips))
    for name in sorted(services):
        svc = services[name]
        cluster_ip = svc.cluster_ip(family)
        if cluster_ip is None:
            continue
        cluster_ip = _ip(cluster_ip)
        proto = svc.protocol
        eps = [ep for ep in endpoints.get(name, ()) if ep.family == family]
        cat = categorize_endpoints(svc, eps, zone, node_name)
        internal = _real_servers(cat.local if svc.internal_policy_local else cat.cluster)
        external = _real_servers(cat.local if svc.external_policy_local else cat.cluster)

        def server(address: str, port: int, svc: ServicePort = svc) -> VirtualServer:
            return _virtual_server(svc, address, port, scheduler)

        # ClusterIP
        state.add_server(server(cluster_ip, svc.port), internal, name)
        state.bound.add(cluster_ip)
        state.add_member(sets.CLUSTER_IP, ip_port(cluster_ip, proto, svc.port))
        for ep in cat.all_reachable:
            if ep.is_local:
                ip = _ip(ep.ip)
                state.add_member(sets.LOOP_BACK, f"{ip},{proto.lower()}:{ep.port},{ip}")

        # external IPs
        for ext in map(_ip, svc.external_ips):
            if not _in_family(ext, family):
                continue
            state.add_server(server(ext, svc.port), external, name)
            if ext not in node_ips:
                state.bound.add(ext)
            spec = sets.EXTERNAL_IP_LOCAL if svc.external_policy_local else sets.EXTERNAL_IP
            state.add_member(spec, ip_port(ext, proto, svc.port))

        # load-balancer ingress IPs
        for lb in map(_ip, svc.load_balancer_ips):
            if not _in_family(lb, family):
                continue
            state.add_server(server(lb, svc.port), external, name)
            if lb not in node_ips:
                state.bound.add(lb)
            entry = ip_port(lb, proto, svc.port)
            state.add_member(sets.LOAD_BALANCER, entry)
            if svc.external_policy_local:
                state.add_member(sets.LOAD_BALANCER_LOCAL, entry)
            ranges = [r for r in svc.load_balancer_source_ranges if _in_family(r, family)]
            if ranges:
                state.add_member(sets.LOAD_BALANCER_FW, entry)
                nets = [ipaddress.ip_network(r, strict=False) for r in ranges]
                for net in nets:
                    state.add_member(sets.LOAD_BALANCER_SOURCE_CIDR, f"{entry},{net}")
                node_allowed = any(ipaddress.ip_address(n) in net for n in node_ips for net in nets)
                if node_allowed:
                    # traffic from this node to a locally bound LB IP has the LB IP as source
                    state.add_member(sets.LOAD_BALANCER_SOURCE_IP, f"{entry},{lb}")

        # NodePort on every node IP
        if svc.node_port:
            for node_ip in node_ips:
                state.add_server(server(node_ip, svc.node_port), external, name)
            if proto == "SCTP":
                for node_ip in node_ips:
                    entry = ip_port(node_ip, proto, svc.node_port)
                    state.add_member(sets.NODE_PORT_SETS[proto], entry)
                    if svc.external_policy_local:
                        state.add_member(sets.NODE_PORT_LOCAL_SETS[proto], entry)
            else:
                state.add_member(sets.NODE_PORT_SETS[proto], str(svc.node_port))
                if svc.external_policy_local:
                    state.add_member(sets.NODE_PORT_LOCAL_SETS[proto], str(svc.node_port))
        if svc.health_check_node_port:
            state.add_member(sets.HEALTH_CHECK_NODE_PORT, str(svc.health_check_node_port))

    for addr in state.bound:
        state.add_member(sets.IPVS_IPS, addr)
    return state
