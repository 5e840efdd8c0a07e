"""Node-wide settings that shape every service's rules, shared by the iptables and nftables
dataplanes (both are kube-proxy's rule designs over netfilter, with the same knobs)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RuleOptions:
    """Node-wide settings that shape every service's rules."""

    family: int = 4
    masquerade_bit: int = 14
    masquerade_all: bool = False
    cluster_cidrs: tuple[str, ...] = ()  # pod CIDRs of this family: the local-traffic detector
    node_port_cidrs: tuple[str, ...] = ()  # empty: NodePorts on every local address
    localhost_node_ports: bool = True
    tcp_be_liberal: bool = False
    comments: bool = True  # per-endpoint comments (kube-proxy drops them past 1,000 endpoints)
    zone: str = ""  # this node's topology zone (zone hints); "" if unknown
    node_name: str = ""  # this node's name (node hints); "" if unknown

    @property
    def mark(self) -> str:
        return hex(1 << self.masquerade_bit)

    @property
    def host_suffix(self) -> str:
        return "/32" if self.family == 4 else "/128"


def of_family(addresses: tuple[str, ...], family: int) -> list[str]:
    """The addresses (or CIDRs) of ``addresses`` that belong to IP ``family``."""
    return [a for a in addresses if (":" in a) == (family == 6)]
