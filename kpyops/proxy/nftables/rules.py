"""The nftables objects of one service port, and the fixed part of the table.

:func:`service_objects` is pure: a ServicePort, its endpoints and the node's options in, the
service's own chains (with their rules), its affinity sets, and the elements it puts in the
shared verdict maps out. The dataplane caches the result per service port and diffs the old
and new result of a changed service, so a partial sync writes only what changed.

Traffic path (as kube-proxy's nftables mode):

- nat-prerouting / nat-output jump to ``services``, which looks the destination address,
  protocol and port up in ``service-ips`` (ClusterIP, externalIPs, LB IPs) and, for local
  destinations, protocol and port in ``service-nodeports``; both send to the service's chain.
- ``service-...`` (Cluster policy) / ``local-...`` (Local policy) pick an endpoint with
  ``numgen random`` rules (after the affinity sets, for ClientIP affinity); ``external-...``
  masquerades or short-circuits external traffic first; ``endpoint-...`` DNATs.
- Filter chains (just before DNAT) reject or drop traffic to services without endpoints
  (``no-endpoint-services``, ``no-endpoint-nodeports``), apply loadBalancerSourceRanges
  (``firewall-ips``), and reject ClusterIP traffic to ports no service has (``cluster-ips``).
- nat-postrouting masquerades packets carrying the masquerade mark.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kpyops.proxy.model import Endpoint, ServicePort
from kpyops.proxy.nftables import names as n
from kpyops.proxy.options import RuleOptions
from kpyops.proxy.policy import DROP, REJECT, service_policy

VERDICTS = {REJECT: f"goto {n.REJECT_CHAIN}", DROP: "drop"}


@dataclass
class ServiceObjects:
    """Everything one service port contributes to the table."""

    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> rules
    sets: dict[str, int] = field(default_factory=dict)  # affinity set -> timeout (s)
    elements: dict[str, dict[str, str]] = field(default_factory=dict)  # map -> key -> verdict
    endpoints: int = 0

    def add_element(self, container: str, key: str, value: str = "") -> None:
        self.elements.setdefault(container, {})[key] = value


def _set_of(values: tuple[str, ...] | list[str]) -> str:
    """One value as itself, several as an anonymous set."""
    return values[0] if len(values) == 1 else "{ " + ", ".join(values) + " }"


def service_objects(
    svc: ServicePort, endpoints: tuple[Endpoint, ...], opts: RuleOptions
) -> ServiceObjects | None:
    """The objects of ``svc``, or None if it has no ClusterIP of this family."""
    pol = service_policy(svc, endpoints, opts)
    if pol is None:
        return None
    ip = n.family_keyword(opts.family)
    proto = svc.protocol.lower()
    out = ServiceObjects()
    spn = svc.name

    cluster_chain = n.service_chain(n.CLUSTER_PREFIX, spn)
    local_chain = n.service_chain(n.LOCAL_PREFIX, spn)
    ext_chain = n.service_chain(n.EXTERNAL_PREFIX, spn)
    fw_chain = n.service_chain(n.FIREWALL_PREFIX, spn)
    internal_chain = local_chain if pol.internal_local else cluster_chain
    external_policy_chain = local_chain if pol.external_local else cluster_chain

    def key(addr: str, port: int) -> str:
        return f"{addr} . {proto} . {port}"

    # Elements of the shared maps: where each destination goes.
    out.add_element(n.CLUSTER_IPS, pol.vip)
    if pol.has_internal:
        out.add_element(n.SERVICE_IPS, key(pol.vip, svc.port), f"goto {internal_chain}")
    else:
        out.add_element(
            n.NO_ENDPOINT_SERVICES, key(pol.vip, svc.port), VERDICTS[pol.internal_filter]
        )
    for addr in (*pol.external_ips, *pol.lb_ips):
        if pol.has_endpoints:
            out.add_element(n.SERVICE_IPS, key(addr, svc.port), f"goto {ext_chain}")
        if not pol.has_external:
            out.add_element(
                n.NO_ENDPOINT_SERVICES, key(addr, svc.port), VERDICTS[pol.external_filter]
            )
    if pol.uses_firewall:
        for addr in pol.lb_ips:
            out.add_element(n.FIREWALL_IPS, key(addr, svc.port), f"goto {fw_chain}")
    if svc.node_port:
        np_key = f"{proto} . {svc.node_port}"
        if pol.has_endpoints:
            out.add_element(n.SERVICE_NODEPORTS, np_key, f"goto {ext_chain}")
        if not pol.has_external:
            out.add_element(n.NO_ENDPOINT_NODEPORTS, np_key, VERDICTS[pol.external_filter])

    # The service's own chains.
    chains: dict[str, list[str]] = {}
    if pol.has_internal:
        dest = f"{ip} daddr {pol.vip} {proto} dport {svc.port}"
        if opts.masquerade_all:
            chains.setdefault(internal_chain, []).append(f"{dest} jump {n.MARK_MASQ}")
        elif opts.cluster_cidrs:
            # Off-cluster sources reaching a ClusterIP through this node: masquerade, so
            # the answer comes back through us.
            pods = _set_of(opts.cluster_cidrs)
            chains.setdefault(internal_chain, []).append(
                f"{dest} {ip} saddr != {pods} jump {n.MARK_MASQ}"
            )
    if pol.uses_external:
        rules = chains.setdefault(ext_chain, [])
        if not pol.external_local:
            rules.append(f"jump {n.MARK_MASQ}")  # may leave the node: masquerade
        else:
            # Pods and the node itself reach external addresses cluster-wide (as if going
            # out to a load balancer and back); the node's own traffic is masqueraded.
            if opts.cluster_cidrs:
                rules.append(f"{ip} saddr {_set_of(opts.cluster_cidrs)} goto {cluster_chain}")
            rules.append(f"fib saddr type local jump {n.MARK_MASQ}")
            rules.append(f"fib saddr type local goto {cluster_chain}")
        if pol.has_external:
            rules.append(f"goto {external_policy_chain}")
    if pol.uses_firewall:
        allowed = pol.source_ranges
        chains[fw_chain] = [f"{ip} saddr != {_set_of(allowed)} drop" if allowed else "drop"]
    affinity = svc.session_affinity_client_ip
    if pol.uses_cluster:  # after the masquerade rule of internal traffic, if any
        chains.setdefault(cluster_chain, []).extend(_spread(svc, pol.cat.cluster, ip))
    if pol.uses_local:
        chains.setdefault(local_chain, []).extend(_spread(svc, pol.cat.local, ip))
    for ep in pol.cat.all_reachable:
        rules = [f"{ip} saddr {ep.ip} jump {n.MARK_MASQ}"]  # hairpin: a pod to itself
        if affinity:
            aff = n.affinity_set(spn, ep)
            out.sets[aff] = svc.sticky_max_age_seconds
            rules.append(f"update @{aff} {{ {ip} saddr }}")
        rules.append(f"meta l4proto {proto} dnat to {ep.address}")
        chains[n.endpoint_chain(spn, ep)] = rules
    out.chains = {name: tuple(rules) for name, rules in chains.items()}
    out.endpoints = len(pol.cat.all_reachable)
    return out


def _spread(svc: ServicePort, eps: tuple[Endpoint, ...], ip: str) -> list[str]:
    """Affinity lookups first, then one endpoint chosen at random with equal chances.

    Rule i of n matches with probability 1/(n-i) (``numgen random mod n-i == 0``), the last
    always, as the iptables mode's statistic rules. kube-proxy writes one rule with an
    anonymous verdict map instead (``numgen random mod n vmap { 0 : goto ..., ... }``), but the
    kernel binds each anonymous set by walking the whole transaction: a full sync of 10,000
    services took 156 s that way here (~1.5 s at 1,000), most of it in __nft_set_trans_bind.
    """
    rules = []
    chains = [n.endpoint_chain(svc.name, ep) for ep in eps]
    if svc.session_affinity_client_ip:
        for ep, chain in zip(eps, chains, strict=True):
            rules.append(f"{ip} saddr @{n.affinity_set(svc.name, ep)} goto {chain}")
    count = len(chains)
    for i, chain in enumerate(chains[:-1]):
        rules.append(f"numgen random mod {count - i} == 0 goto {chain}")
    rules.append(f"goto {chains[-1]}")
    return rules


def _addr_type(family: int) -> str:
    return "ipv4_addr" if family == 4 else "ipv6_addr"


def fixed_chains(opts: RuleOptions) -> dict[str, list[str]]:
    """Every chain that does not belong to one service, with its rules (base chains too)."""
    ip = n.family_keyword(opts.family)
    loopback = "127.0.0.0/8" if opts.family == 4 else "::1"
    node_port_cidrs = _node_port_cidrs(opts)
    chains: dict[str, list[str]] = {bc.name: [] for bc in n.BASE_CHAINS}
    if not opts.tcp_be_liberal:  # as the iptables mode's KUBE-FORWARD
        chains["filter-forward"].append("ct state invalid drop")
    for base, match, target in n.JUMPS:
        chains[base].append(f"{match} jump {target}".strip())
    mark = opts.mark
    chains[n.MARK_MASQ] = [f"mark set mark or {mark}"]
    chains[n.MASQUERADING] = [
        f"mark and {mark} == 0 return",
        f"mark set mark xor {mark}",
        "masquerade fully-random",
    ]
    chains[n.CLUSTER_IPS_CHECK] = [f"{ip} daddr @{n.CLUSTER_IPS} reject"]
    chains[n.REJECT_CHAIN] = ["reject"]
    lookup = f"{ip} daddr . meta l4proto . th dport vmap"
    chains[n.SERVICE_ENDPOINTS_CHECK] = [f"{lookup} @{n.NO_ENDPOINT_SERVICES}"]
    chains[n.FIREWALL_CHECK] = [f"{lookup} @{n.FIREWALL_IPS}"]
    nodeport_dest = (
        f"{ip} daddr @{n.NODEPORT_IPS}" if node_port_cidrs else f"{ip} daddr != {loopback}"
    )
    chains[n.NODEPORT_ENDPOINTS_CHECK] = [
        f"{nodeport_dest} meta l4proto . th dport vmap @{n.NO_ENDPOINT_NODEPORTS}"
    ]
    chains[n.SERVICES] = [
        f"{lookup} @{n.SERVICE_IPS}",
        f"fib daddr type local {nodeport_dest} meta l4proto . th dport vmap @{n.SERVICE_NODEPORTS}",
    ]
    return chains


def _node_port_cidrs(opts: RuleOptions) -> tuple[str, ...]:
    """nodePortAddresses without loopback: NodePorts on localhost need route_localnet and
    are not offered in nftables mode (as upstream)."""
    import ipaddress

    loopback = ipaddress.ip_network("127.0.0.0/8" if opts.family == 4 else "::1/128")
    return tuple(
        c for c in opts.node_port_cidrs if not ipaddress.ip_network(c).subnet_of(loopback)  # type: ignore[arg-type]
    )


def table_setup(opts: RuleOptions, reset_base_chains: bool) -> list[str]:
    """The commands of a full sync's fixed part: the table created if missing and flushed
    (every rule of every chain gone; set contents, such as affinity, kept), every fixed chain
    rewritten, the verdict maps and the cluster-ips set created and emptied.

    ``reset_base_chains`` deletes and re-creates the base chains (first sync of a process:
    a previous version may have made them with other priorities, which "add" cannot change).
    """
    t = n.table_ref(opts.family)
    addr = _addr_type(opts.family)
    lines = [f'add table {t} {{ comment "kpyops service proxy"; }}', f"flush table {t}"]
    if reset_base_chains:
        for bc in n.BASE_CHAINS:
            lines += [f"add chain {t} {bc.name}", f"delete chain {t} {bc.name}"]
    for bc in n.BASE_CHAINS:
        lines.append(
            f"add chain {t} {bc.name} {{ type {bc.kind} hook {bc.hook} priority {bc.priority}; }}"
        )
    chains = fixed_chains(opts)
    base = {bc.name for bc in n.BASE_CHAINS}
    lines += [f"add chain {t} {name}" for name in chains if name not in base]
    node_port_cidrs = _node_port_cidrs(opts)
    lines.append(f"add set {t} {n.CLUSTER_IPS} {{ type {addr}; }}")
    lines.append(f"add set {t} {n.NODEPORT_IPS} {{ type {addr}; flags interval; }}")
    if node_port_cidrs:
        lines.append(f"flush set {t} {n.NODEPORT_IPS}")
        lines.append(f"add element {t} {n.NODEPORT_IPS} {{ {', '.join(node_port_cidrs)} }}")
    else:
        lines.append(f"delete set {t} {n.NODEPORT_IPS}")
    key3 = f"{addr} . inet_proto . inet_service : verdict"
    key2 = "inet_proto . inet_service : verdict"
    for name, kind in (
        (n.SERVICE_IPS, key3),
        (n.SERVICE_NODEPORTS, key2),
        (n.NO_ENDPOINT_SERVICES, key3),
        (n.NO_ENDPOINT_NODEPORTS, key2),
        (n.FIREWALL_IPS, key3),
    ):
        lines.append(f"add map {t} {name} {{ type {kind}; }}")
        lines.append(f"flush map {t} {name}")
    lines.append(f"flush set {t} {n.CLUSTER_IPS}")
    for name, rules in chains.items():
        lines += [f"add rule {t} {name} {rule}" for rule in rules]
    return lines
