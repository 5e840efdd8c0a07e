"""What the proxy knows of its own Node: the zone (topology hints) and primary IPs.

In API mode both come from the Node object named like the proxy's hostname, read once at
start: the ``topology.kubernetes.io/zone`` label, and the first InternalIP (else ExternalIP)
of each IP family. With the directory source there is no Node: ``kpyops proxy --node-zone``
and ``--node-ip`` give them. As in kube-proxy, a specific ``bindAddress`` is a primary IP.

``nodePortAddresses`` keywords are resolved here into CIDRs: ``primary`` -> the node's primary
IPs (/32, /128), ``localhost`` -> 127.0.0.0/8 and ::1/128; ``all`` is the empty list.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kpyops.proxy.config import ConfigError
from kpyops.proxy.model import ip_family

log = logging.getLogger(__name__)

LABEL_ZONE = "topology.kubernetes.io/zone"


@dataclass(frozen=True)
class NodeInfo:
    zone: str = ""
    ips: tuple[str, ...] = ()  # primary IPs, at most one per family


def node_info_from_object(node: dict) -> NodeInfo:
    """Zone label and primary IPs of a Node (wire-form dict)."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    addresses = (node.get("status") or {}).get("addresses") or []
    ips: dict[int, str] = {}
    for kind in ("InternalIP", "ExternalIP"):
        for addr in addresses:
            if addr.get("type") == kind and addr.get("address"):
                ips.setdefault(ip_family(addr["address"]), addr["address"])
    return NodeInfo(labels.get(LABEL_ZONE, ""), tuple(ips[f] for f in sorted(ips)))


def fetch_node_info(
    get_json: Callable[[str], dict], name: str, attempts: int = 5, delay: float = 2.0
) -> NodeInfo:
    """Read the Node ``name``; after ``attempts`` failures, go on without it (logged)."""
    for attempt in range(1, attempts + 1):
        try:
            return node_info_from_object(get_json(f"/api/v1/nodes/{name}"))
        except Exception as err:  # the API may not be up yet; the proxy must still start
            log.warning("cannot read Node %s (attempt %d/%d): %s", name, attempt, attempts, err)
            if attempt < attempts:
                time.sleep(delay)
    return NodeInfo()


def with_bind_address(info: NodeInfo, bind_address: str) -> NodeInfo:
    """A specific bindAddress is the node's primary IP of its family (kube-proxy's rule)."""
    ip = ipaddress.ip_address(bind_address.strip("[]"))
    if ip.is_unspecified:
        return info
    others = tuple(a for a in info.ips if ip_family(a) != ip.version)
    return NodeInfo(info.zone, tuple(sorted((*others, str(ip)), key=ip_family)))


def resolve_node_port_addresses(values: Iterable[str], node: NodeInfo) -> tuple[str, ...]:
    """nodePortAddresses (CIDRs and keywords, as the config loader kept them) -> CIDRs."""
    out: list[str] = []
    for value in values:
        if value == "primary":
            if not node.ips:
                raise ConfigError(
                    "nodePortAddresses",
                    "'primary' needs the node's IPs: none known (the Node object has no "
                    "InternalIP/ExternalIP, or give --node-ip with --services-dir)",
                )
            out += [f"{ip}/{32 if ip_family(ip) == 4 else 128}" for ip in node.ips]
        elif value == "localhost":
            out += ["127.0.0.0/8", "::1/128"]
        else:
            out.append(value)
    return tuple(dict.fromkeys(out))
