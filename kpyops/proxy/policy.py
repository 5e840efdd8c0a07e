"""Where each kind of traffic to one service port goes: kube-proxy's decisions that every
rule-based dataplane (iptables, nftables) shares, apart from how it writes them down.

Internal traffic (to the ClusterIP) follows ``internalTrafficPolicy``, external traffic
(NodePort, externalIPs, load-balancer IPs) ``externalTrafficPolicy``. A service with no usable
endpoint anywhere rejects; a Local policy with no endpoint on this node drops (only that kind
of traffic: pods and the node itself still reach external addresses cluster-wide).
"""

from __future__ import annotations

from dataclasses import dataclass

from kpyops.proxy.categorize import CategorizedEndpoints, categorize_endpoints
from kpyops.proxy.model import Endpoint, ServicePort
from kpyops.proxy.options import RuleOptions, of_family

REJECT = "reject"
DROP = "drop"


@dataclass(frozen=True)
class ServicePolicy:
    vip: str  # the ClusterIP of this dataplane's family
    cat: CategorizedEndpoints
    has_endpoints: bool  # the service has usable endpoints somewhere in the cluster
    has_internal: bool  # ClusterIP traffic has endpoints (else internal_filter)
    has_external: bool  # external traffic has endpoints (else external_filter)
    internal_local: bool  # ClusterIP traffic goes to the Local set
    external_local: bool  # external traffic goes to the Local set
    uses_cluster: bool  # the Cluster set is written (a chain of it exists)
    uses_local: bool  # the Local set is written
    uses_external: bool  # the external-destinations step exists (masquerade, short-circuit)
    uses_firewall: bool  # loadBalancerSourceRanges apply to the LB IPs
    internal_filter: str  # REJECT / DROP / "" for ClusterIP traffic with no endpoint
    external_filter: str  # REJECT / DROP / "" for external traffic with no endpoint
    external_ips: tuple[str, ...]  # of this family
    lb_ips: tuple[str, ...]  # of this family
    source_ranges: tuple[str, ...]  # loadBalancerSourceRanges of this family


def service_policy(
    svc: ServicePort, endpoints: tuple[Endpoint, ...], opts: RuleOptions
) -> ServicePolicy | None:
    """The traffic decisions for ``svc`` on this node, or None without a ClusterIP of
    ``opts.family`` (the other family's dataplane serves it)."""
    vip = svc.cluster_ip(opts.family)
    if vip is None:
        return None
    eps = tuple(ep for ep in endpoints if ep.family == opts.family)
    cat = categorize_endpoints(svc, eps, opts.zone, opts.node_name)
    # kube-proxy's hasEndpoints: usable endpoints anywhere, even where this node's policy
    # cannot send (internal Local with none here: dropped, not rejected)
    has_endpoints = cat.has_any
    has_internal = has_endpoints and (not svc.internal_policy_local or bool(cat.local))
    has_external = has_endpoints and (not svc.external_policy_local or bool(cat.local))
    lb_ips = tuple(of_family(svc.load_balancer_ips, opts.family))
    ranges = tuple(of_family(svc.load_balancer_source_ranges, opts.family))
    if not has_endpoints:
        internal_filter = external_filter = REJECT
    else:
        internal_filter = "" if has_internal else DROP
        external_filter = "" if has_external else DROP
    return ServicePolicy(
        vip=vip,
        cat=cat,
        has_endpoints=has_endpoints,
        has_internal=has_internal,
        has_external=has_external,
        internal_local=svc.internal_policy_local,
        external_local=svc.external_policy_local,
        uses_cluster=bool(cat.cluster),
        uses_local=bool(cat.local),
        uses_external=has_endpoints and svc.has_external_addresses,
        uses_firewall=has_endpoints and bool(lb_ips) and bool(svc.load_balancer_source_ranges),
        internal_filter=internal_filter,
        external_filter=external_filter,
        external_ips=tuple(of_family(svc.external_ips, opts.family)),
        lb_ips=lb_ips,
        source_ranges=ranges,
    )
