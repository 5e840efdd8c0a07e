"""Names of the iptables chains the proxy owns, and the jump rules that lead into them."""

from __future__ import annotations

import functools
import hashlib
import shlex
from dataclasses import dataclass

from kpyops.proxy.model import Endpoint, ServicePortName

# Top-level chains, rewritten whole when their content changes.
SERVICES = "KUBE-SERVICES"
EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
NODEPORTS = "KUBE-NODEPORTS"
POSTROUTING = "KUBE-POSTROUTING"
MARK_MASQ = "KUBE-MARK-MASQ"
FORWARD = "KUBE-FORWARD"
PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
CANARY = "KUBE-PROXY-CANARY"

# Per-service-port chains (nat), named by a hash like kube-proxy's.
SVC_PREFIX = "KUBE-SVC-"  # Cluster policy: spread over all endpoints
SVL_PREFIX = "KUBE-SVL-"  # Local policy: this node's endpoints
EXT_PREFIX = "KUBE-EXT-"  # external destinations: masquerade / short-circuit, then SVC or SVL
FW_PREFIX = "KUBE-FW-"  # loadBalancerSourceRanges
SEP_PREFIX = "KUBE-SEP-"  # one endpoint: hairpin masquerade + DNAT
SERVICE_CHAIN_PREFIXES = (SVC_PREFIX, SVL_PREFIX, EXT_PREFIX, FW_PREFIX, SEP_PREFIX)

FIXED_CHAINS: dict[str, tuple[str, ...]] = {
    "filter": (SERVICES, EXTERNAL_SERVICES, FORWARD, NODEPORTS, PROXY_FIREWALL, CANARY),
    "nat": (SERVICES, NODEPORTS, POSTROUTING, MARK_MASQ, CANARY),
    "mangle": (CANARY,),
}
TABLES = ("filter", "nat", "mangle")


def is_owned_chain(table: str, chain: str) -> bool:
    """True for chains this dataplane creates (and so may delete)."""
    if chain in FIXED_CHAINS.get(table, ()):
        return True
    return table == "nat" and chain.startswith(SERVICE_CHAIN_PREFIXES)


def _hash16(text: str) -> str:
    """16 upper-case hex digits of sha256(text) (kube-proxy uses base32; hex is cheaper)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16].upper()


@functools.lru_cache(maxsize=1 << 16)
def service_chain(prefix: str, spn: ServicePortName) -> str:
    """KUBE-SVC-/SVL-/EXT-/FW- chain of one service port."""
    return prefix + _hash16(str(spn) + spn.protocol.lower())


@functools.lru_cache(maxsize=1 << 18)
def _endpoint_chain(spn: ServicePortName, address: str) -> str:
    return SEP_PREFIX + _hash16(str(spn) + spn.protocol.lower() + address)


def endpoint_chain(spn: ServicePortName, ep: Endpoint) -> str:
    """KUBE-SEP- chain of one endpoint of one service port."""
    return _endpoint_chain(spn, ep.address)


@dataclass(frozen=True)
class JumpRule:
    """A rule in a built-in chain that leads into ours, written as iptables-save prints it."""

    table: str
    chain: str
    spec: str  # everything after "-A CHAIN "

    @property
    def args(self) -> list[str]:
        return shlex.split(self.spec)


_NEW = "-m conntrack --ctstate NEW "
JUMP_RULES: tuple[JumpRule, ...] = (
    JumpRule(
        "filter",
        "INPUT",
        _NEW + f'-m comment --comment "kubernetes load balancer firewall" -j {PROXY_FIREWALL}',
    ),
    JumpRule(
        "filter",
        "INPUT",
        f'-m comment --comment "kubernetes health check service ports" -j {NODEPORTS}',
    ),
    JumpRule(
        "filter",
        "INPUT",
        _NEW
        + f'-m comment --comment "kubernetes externally-visible service portals" -j {EXTERNAL_SERVICES}',
    ),
    JumpRule(
        "filter",
        "FORWARD",
        _NEW + f'-m comment --comment "kubernetes load balancer firewall" -j {PROXY_FIREWALL}',
    ),
    JumpRule(
        "filter", "FORWARD", f'-m comment --comment "kubernetes forwarding rules" -j {FORWARD}'
    ),
    JumpRule(
        "filter",
        "FORWARD",
        _NEW + f'-m comment --comment "kubernetes service portals" -j {SERVICES}',
    ),
    JumpRule(
        "filter",
        "FORWARD",
        _NEW
        + f'-m comment --comment "kubernetes externally-visible service portals" -j {EXTERNAL_SERVICES}',
    ),
    JumpRule(
        "filter",
        "OUTPUT",
        _NEW + f'-m comment --comment "kubernetes load balancer firewall" -j {PROXY_FIREWALL}',
    ),
    JumpRule(
        "filter",
        "OUTPUT",
        _NEW + f'-m comment --comment "kubernetes service portals" -j {SERVICES}',
    ),
    JumpRule("nat", "OUTPUT", f'-m comment --comment "kubernetes service portals" -j {SERVICES}'),
    JumpRule(
        "nat", "PREROUTING", f'-m comment --comment "kubernetes service portals" -j {SERVICES}'
    ),
    JumpRule(
        "nat",
        "POSTROUTING",
        f'-m comment --comment "kubernetes postrouting rules" -j {POSTROUTING}',
    ),
)
