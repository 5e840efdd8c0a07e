"""The iptables rules of one service port, as kube-proxy's iptables mode writes them.

:func:`service_rules` is pure: a ServicePort, its endpoints and the node's options in, the
lines it contributes to each top-level chain and its own nat chains out. The dataplane caches
the result per service port, so a partial sync only rebuilds what changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kpyops.proxy.iptables import chains as c
from kpyops.proxy.model import Endpoint, ServicePort
from kpyops.proxy.options import RuleOptions
from kpyops.proxy.policy import REJECT, service_policy

__all__ = ["RuleOptions", "ServiceRules", "fixed_rules", "node_ports_jump", "service_rules"]


@dataclass
class ServiceRules:
    """Everything one service port contributes to the ruleset."""

    nat_services: list[str] = field(default_factory=list)  # nat KUBE-SERVICES
    nat_nodeports: list[str] = field(default_factory=list)  # nat KUBE-NODEPORTS
    filter_services: list[str] = field(default_factory=list)  # filter KUBE-SERVICES
    filter_external: list[str] = field(default_factory=list)  # filter KUBE-EXTERNAL-SERVICES
    filter_nodeports: list[str] = field(default_factory=list)  # filter KUBE-NODEPORTS
    filter_firewall: list[str] = field(default_factory=list)  # filter KUBE-PROXY-FIREWALL
    chains: dict[str, list[str]] = field(default_factory=dict)  # own nat chains -> rules
    endpoints: int = 0  # endpoints programmed (for large-cluster decisions)


def _q(text: str) -> str:
    return f'"{text}"'


def service_rules(
    svc: ServicePort, endpoints: tuple[Endpoint, ...], opts: RuleOptions
) -> ServiceRules | None:
    """The rules of ``svc``, or None if it has no ClusterIP of this family."""
    pol = service_policy(svc, endpoints, opts)
    if pol is None:
        return None
    out = ServiceRules()
    name = str(svc.name)
    proto = svc.protocol.lower()
    match = f"-p {proto} -m {proto} --dport {svc.port}"
    vip, cat = pol.vip, pol.cat

    cluster_chain = c.service_chain(c.SVC_PREFIX, svc.name)
    local_chain = c.service_chain(c.SVL_PREFIX, svc.name)
    ext_chain = c.service_chain(c.EXT_PREFIX, svc.name)
    fw_chain = c.service_chain(c.FW_PREFIX, svc.name)
    internal_chain = local_chain if pol.internal_local else cluster_chain
    external_policy_chain = local_chain if pol.external_local else cluster_chain
    has_endpoints, has_internal, has_external = (
        pol.has_endpoints, pol.has_internal, pol.has_external
    )
    uses_ext_chain, uses_fw_chain = pol.uses_external, pol.uses_firewall
    lb_ips, ext_ips = pol.lb_ips, pol.external_ips
    lb_chain = fw_chain if uses_fw_chain else ext_chain
    verdicts = {REJECT: _reject(opts.family), "drop": "DROP", "": ""}
    internal_filter = verdicts[pol.internal_filter]
    external_filter = verdicts[pol.external_filter]
    why = "has no endpoints" if not has_endpoints else "has no local endpoints"
    h = opts.host_suffix

    # ClusterIP.
    comment = f"-m comment --comment {_q(name + ' cluster IP')}"
    if has_internal:
        out.nat_services.append(
            f"-A {c.SERVICES} -d {vip}{h} {comment} {match} -j {internal_chain}"
        )
    else:
        out.filter_services.append(
            f"-A {c.SERVICES} -d {vip}{h} -m comment --comment {_q(f'{name} {why}')} {match} -j {internal_filter}"
        )
    # externalIPs.
    for ip in ext_ips:
        if has_endpoints:
            out.nat_services.append(
                f"-A {c.SERVICES} -d {ip}{h} -m comment --comment {_q(name + ' external IP')} {match} -j {ext_chain}"
            )
        if not has_external:
            out.filter_external.append(
                f"-A {c.EXTERNAL_SERVICES} -d {ip}{h} -m comment --comment {_q(f'{name} {why}')} {match} -j {external_filter}"
            )
    # Load-balancer ingress IPs.
    for ip in lb_ips:
        if has_endpoints:
            out.nat_services.append(
                f"-A {c.SERVICES} -d {ip}{h} -m comment --comment {_q(name + ' loadbalancer IP')} {match} -j {lb_chain}"
            )
        if uses_fw_chain:
            out.filter_firewall.append(
                f"-A {c.PROXY_FIREWALL} -d {ip}{h} -m comment --comment {_q(name + ' traffic not accepted by ' + fw_chain)} {match} -j DROP"
            )
        if not has_external:
            out.filter_external.append(
                f"-A {c.EXTERNAL_SERVICES} -d {ip}{h} -m comment --comment {_q(f'{name} {why}')} {match} -j {external_filter}"
            )
    # NodePort.
    if svc.node_port:
        np_match = f"-p {proto} -m {proto} --dport {svc.node_port}"
        if has_endpoints:
            out.nat_nodeports.append(
                f"-A {c.NODEPORTS} -m comment --comment {_q(name)} {np_match} -j {ext_chain}"
            )
        if not has_external:
            out.filter_external.append(
                f"-A {c.EXTERNAL_SERVICES} -m comment --comment {_q(f'{name} {why}')} -m addrtype --dst-type LOCAL {np_match} -j {external_filter}"
            )
    if svc.health_check_node_port:
        out.filter_nodeports.append(
            f"-A {c.NODEPORTS} -m comment --comment {_q(name + ' health check node port')} "
            f"-p tcp -m tcp --dport {svc.health_check_node_port} -j ACCEPT"
        )

    # Own chains.
    ch = out.chains
    if has_internal:
        if opts.masquerade_all:
            ch.setdefault(internal_chain, []).append(
                f"-A {internal_chain} -d {vip}{h} {comment} {match} -j {c.MARK_MASQ}"
            )
        else:
            for cidr in opts.cluster_cidrs:
                ch.setdefault(internal_chain, []).append(
                    f"-A {internal_chain} ! -s {cidr} -d {vip}{h} {comment} {match} -j {c.MARK_MASQ}"
                )
    if uses_ext_chain:
        rules = ch.setdefault(ext_chain, [])
        if not svc.external_policy_local:
            rules.append(
                f"-A {ext_chain} -m comment --comment {_q('masquerade traffic for ' + name + ' external destinations')} -j {c.MARK_MASQ}"
            )
        else:
            for cidr in opts.cluster_cidrs:
                rules.append(
                    f"-A {ext_chain} -s {cidr} -m comment --comment {_q('pod traffic for ' + name + ' external destinations')} -j {cluster_chain}"
                )
            rules.append(
                f"-A {ext_chain} -m comment --comment {_q('masquerade LOCAL traffic for ' + name + ' external destinations')} -m addrtype --src-type LOCAL -j {c.MARK_MASQ}"
            )
            rules.append(
                f"-A {ext_chain} -m comment --comment {_q('route LOCAL traffic for ' + name + ' external destinations')} -m addrtype --src-type LOCAL -j {cluster_chain}"
            )
        if has_external:
            rules.append(f"-A {ext_chain} -j {external_policy_chain}")
    if uses_fw_chain:
        rules = ch.setdefault(fw_chain, [])
        for cidr in pol.source_ranges:
            rules.append(
                f"-A {fw_chain} -s {cidr} -m comment --comment {_q(name + ' loadbalancer IP')} -j {ext_chain}"
            )
    if pol.uses_cluster:
        _spread(ch.setdefault(cluster_chain, []), cluster_chain, svc, cat.cluster, opts)
    if pol.uses_local:
        _spread(ch.setdefault(local_chain, []), local_chain, svc, cat.local, opts)
    for ep in cat.all_reachable:
        sep = c.endpoint_chain(svc.name, ep)
        cm = f"-m comment --comment {_q(name)} " if opts.comments else ""
        affinity = (
            f"-m recent --set --name {sep} --mask {_full_mask(opts.family)} --rsource "
            if svc.session_affinity_client_ip
            else ""
        )
        ch[sep] = [
            f"-A {sep} -s {ep.ip}{h} {cm}-j {c.MARK_MASQ}",
            f"-A {sep} -p {proto} {cm}{affinity}-m {proto} -j DNAT --to-destination {ep.address}",
        ]
    out.endpoints = len(cat.all_reachable)
    return out


def _reject(family: int) -> str:
    kind = "icmp-port-unreachable" if family == 4 else "icmp6-port-unreachable"
    return f"REJECT --reject-with {kind}"


def _full_mask(family: int) -> str:
    return "255.255.255.255" if family == 4 else "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"


def _spread(
    rules: list[str], chain: str, svc: ServicePort, eps: tuple[Endpoint, ...], opts: RuleOptions
) -> None:
    """Affinity checks, then rule i of n matching with probability 1/(n-i); the last always."""
    name = str(svc.name)

    def comment(ep: Endpoint) -> str:
        return f"-m comment --comment {_q(f'{name} -> {ep.address}')} " if opts.comments else ""

    if svc.session_affinity_client_ip:
        for ep in eps:
            sep = c.endpoint_chain(svc.name, ep)
            rules.append(
                f"-A {chain} {comment(ep)}-m recent --rcheck --seconds {svc.sticky_max_age_seconds} "
                f"--reap --name {sep} --mask {_full_mask(opts.family)} --rsource -j {sep}"
            )
    n = len(eps)
    for i, ep in enumerate(eps):
        sep = c.endpoint_chain(svc.name, ep)
        chance = (
            f"-m statistic --mode random --probability {1.0 / (n - i):.11f} " if i < n - 1 else ""
        )
        rules.append(f"-A {chain} {comment(ep)}{chance}-j {sep}")


def node_ports_jump(opts: RuleOptions) -> list[str]:
    """The last rules of nat KUBE-SERVICES: local destinations go on to KUBE-NODEPORTS."""
    comment = '-m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"'
    if opts.node_port_cidrs:
        return [
            f"-A {c.SERVICES} -d {cidr} {comment} -j {c.NODEPORTS}" for cidr in opts.node_port_cidrs
        ]
    not_localhost = "" if opts.localhost_node_ports or opts.family == 6 else "! -d 127.0.0.0/8 "
    return [
        f"-A {c.SERVICES} {not_localhost}{comment} -m addrtype --dst-type LOCAL -j {c.NODEPORTS}"
    ]


def fixed_rules(opts: RuleOptions) -> dict[tuple[str, str], list[str]]:
    """Rules of the chains whose content does not depend on services: (table, chain) -> rules."""
    mark = opts.mark
    forward = (
        [] if opts.tcp_be_liberal else [f"-A {c.FORWARD} -m conntrack --ctstate INVALID -j DROP"]
    )
    forward += [
        f'-A {c.FORWARD} -m comment --comment "kubernetes forwarding rules" -m mark --mark {mark}/{mark} -j ACCEPT',
        f'-A {c.FORWARD} -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    ]
    return {
        ("nat", c.MARK_MASQ): [f"-A {c.MARK_MASQ} -j MARK --or-mark {mark}"],
        ("nat", c.POSTROUTING): [
            f"-A {c.POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN",
            f"-A {c.POSTROUTING} -j MARK --xor-mark {mark}",
            f'-A {c.POSTROUTING} -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
        ],
        ("filter", c.FORWARD): forward,
        **{(table, c.CANARY): [f"-A {c.CANARY} -j RETURN"] for table in c.TABLES},
    }
