"""Names of the nftables objects the proxy owns: one table per IP family, its base chains,
the chains they jump to, the verdict maps and sets, and per-service objects.

Everything lives in the table ``kpyops-proxy`` (``ip`` or ``ip6``): nothing else on the node
is touched, and ``cleanup()`` is deleting that table. Per-service objects are named like
kube-proxy's: a prefix, 8 base32 characters of a hash, then the readable service port name
(``service-HASH-ns/name/tcp/port``); a "/" appears in no other name of ours, which is how a
listing tells per-service chains and sets from the fixed ones.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass

from kpyops.proxy.model import Endpoint, ServicePortName

TABLE = "kpyops-proxy"


def family_keyword(family: int) -> str:
    """nftables' family (and address-match keyword) for an IP family: ip or ip6."""
    return "ip" if family == 4 else "ip6"


def table_ref(family: int) -> str:
    """``ip kpyops-proxy``: how commands name our table."""
    return f"{family_keyword(family)} {TABLE}"


@dataclass(frozen=True)
class BaseChain:
    name: str
    kind: str  # filter / nat
    hook: str
    priority: int  # numeric: dstnat is -100, srcnat 100 (the names are not valid on every hook)


# Filter chains run just before DNAT (they see the service address), except
# filter-output-post-dnat, which sees where DNAT sent the packet.
BASE_CHAINS: tuple[BaseChain, ...] = (
    BaseChain("filter-prerouting", "filter", "prerouting", -110),
    BaseChain("filter-input", "filter", "input", -110),
    BaseChain("filter-forward", "filter", "forward", -110),
    BaseChain("filter-output", "filter", "output", -110),
    BaseChain("filter-output-post-dnat", "filter", "output", -90),
    BaseChain("nat-prerouting", "nat", "prerouting", -100),
    BaseChain("nat-output", "nat", "output", -100),
    BaseChain("nat-postrouting", "nat", "postrouting", 100),
)

# Regular chains written at every full sync.
SERVICES = "services"  # nat: the service-ips / service-nodeports dispatch
MARK_MASQ = "mark-for-masquerade"
MASQUERADING = "masquerading"
SERVICE_ENDPOINTS_CHECK = "service-endpoints-check"  # no-endpoint-services: reject / drop
NODEPORT_ENDPOINTS_CHECK = "nodeport-endpoints-check"  # no-endpoint-nodeports
FIREWALL_CHECK = "firewall-check"  # firewall-ips: loadBalancerSourceRanges
CLUSTER_IPS_CHECK = "cluster-ips-check"  # a ClusterIP on a port no service has: reject
REJECT_CHAIN = "reject-chain"  # the target of "reject" verdicts in verdict maps

# (from base chain, match, to chain): the rules of the base chains, in order.
JUMPS: tuple[tuple[str, str, str], ...] = (
    ("filter-prerouting", "ct state new", FIREWALL_CHECK),
    ("filter-input", "ct state new", NODEPORT_ENDPOINTS_CHECK),
    ("filter-input", "ct state new", SERVICE_ENDPOINTS_CHECK),
    ("filter-forward", "ct state new", SERVICE_ENDPOINTS_CHECK),
    ("filter-forward", "ct state new", CLUSTER_IPS_CHECK),
    ("filter-output", "ct state new", SERVICE_ENDPOINTS_CHECK),
    ("filter-output", "ct state new", FIREWALL_CHECK),
    ("filter-output-post-dnat", "ct state new", CLUSTER_IPS_CHECK),
    ("nat-prerouting", "", SERVICES),
    ("nat-output", "", SERVICES),
    ("nat-postrouting", "", MASQUERADING),
)

# Verdict maps and sets, filled from every service's elements.
SERVICE_IPS = "service-ips"  # addr . proto . port : goto the service's chain
SERVICE_NODEPORTS = "service-nodeports"  # proto . port : goto external-...
NO_ENDPOINT_SERVICES = "no-endpoint-services"  # addr . proto . port : reject / drop
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"  # proto . port : reject / drop
FIREWALL_IPS = "firewall-ips"  # LB addr . proto . port : goto firewall-...
CLUSTER_IPS = "cluster-ips"  # every ClusterIP (a set)
NODEPORT_IPS = "nodeport-ips"  # nodePortAddresses CIDRs (a set), when not "all"
ELEMENT_CONTAINERS = (
    CLUSTER_IPS,
    SERVICE_IPS,
    SERVICE_NODEPORTS,
    NO_ENDPOINT_SERVICES,
    NO_ENDPOINT_NODEPORTS,
    FIREWALL_IPS,
)

# Per-service objects.
CLUSTER_PREFIX = "service-"  # Cluster policy: every usable endpoint
LOCAL_PREFIX = "local-"  # Local policy: this node's endpoints
EXTERNAL_PREFIX = "external-"  # external destinations: masquerade / short-circuit, then policy
FIREWALL_PREFIX = "firewall-"  # loadBalancerSourceRanges
ENDPOINT_PREFIX = "endpoint-"  # one endpoint: hairpin masquerade, affinity, DNAT
AFFINITY_PREFIX = "affinity-"  # a set of client addresses stuck to one endpoint


def is_service_object(name: str) -> bool:
    """True for per-service chains and sets (their names hold a '/'; ours otherwise don't)."""
    return "/" in name


def _hashed(text: str) -> str:
    digest = base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()
    return f"{digest[:8]}-{text}"


@functools.lru_cache(maxsize=1 << 16)
def _service_base(spn: ServicePortName) -> str:
    return _hashed(f"{spn.namespace}/{spn.name}/{spn.protocol.lower()}/{spn.port}")


def service_chain(prefix: str, spn: ServicePortName) -> str:
    """service-/local-/external-/firewall- chain of one service port."""
    return prefix + _service_base(spn)


@functools.lru_cache(maxsize=1 << 18)
def _endpoint_base(spn: ServicePortName, ip: str, port: int) -> str:
    # Colons are not allowed in names: an IPv6 address is written with dots.
    ep = f"{ip.replace(':', '.')}/{port}"
    return _hashed(f"{spn.namespace}/{spn.name}/{spn.protocol.lower()}/{spn.port}__{ep}")


def endpoint_chain(spn: ServicePortName, ep: Endpoint) -> str:
    """endpoint- chain of one endpoint of one service port."""
    return ENDPOINT_PREFIX + _endpoint_base(spn, ep.ip, ep.port)


def affinity_set(spn: ServicePortName, ep: Endpoint) -> str:
    """affinity- set of one endpoint of one service port (ClientIP session affinity)."""
    return AFFINITY_PREFIX + _endpoint_base(spn, ep.ip, ep.port)
