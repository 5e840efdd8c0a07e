"""Flushing stale UDP conntrack entries after endpoints go away, with ``conntrack -D``.

UDP has no connection teardown: an entry DNATed to an endpoint that no longer exists keeps
black-holing the client's "connection" until it times out. After each sync, for every UDP
service port whose endpoints changed, entries whose reply comes from a removed endpoint are
deleted, for each address the service is reached by (ClusterIP, external and LB IPs, and the
NodePort on any address); when a UDP service gains its first endpoint, entries to it (created
while it had none) are deleted too.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from kpyops.proxy.model import UDP, Endpoint, ServicePort, ServicePortName, ip_family

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConntrackDeletion:
    """One ``conntrack -D`` filter."""

    family: int
    orig_dst: str | None  # service address, or None for a NodePort (any address)
    orig_port_dst: int
    reply_src: str | None  # endpoint IP, or None for every entry to the service

    def args(self) -> list[str]:
        out = ["conntrack", "-D", "-f", "ipv4" if self.family == 4 else "ipv6", "-p", "udp"]
        if self.orig_dst:
            out += ["--orig-dst", self.orig_dst]
        out += ["--orig-port-dst", str(self.orig_port_dst)]
        if self.reply_src:
            out += ["--reply-src", self.reply_src]
        return out


def _serving(eps: Sequence[Endpoint]) -> set[str]:
    return {ep.ip for ep in eps if ep.ready or (ep.serving and ep.terminating)}


def stale_udp_deletions(
    services: Mapping[ServicePortName, ServicePort],
    previous: Mapping[ServicePortName, Sequence[Endpoint]],
    current: Mapping[ServicePortName, Sequence[Endpoint]],
) -> list[ConntrackDeletion]:
    """The deletions needed after a sync; ``previous`` holds only changed service ports."""
    out: list[ConntrackDeletion] = []
    for spn, before in previous.items():
        svc = services.get(spn)
        if svc is None or svc.protocol != UDP:
            continue
        was, now = _serving(before), _serving(current.get(spn, ()))
        addresses = [*svc.cluster_ips, *svc.external_ips, *svc.load_balancer_ips]
        for ep_ip in sorted(was - now):
            fam = ip_family(ep_ip)
            for addr in addresses:
                if ip_family(addr) == fam:
                    out.append(ConntrackDeletion(fam, addr, svc.port, ep_ip))
            if svc.node_port:
                out.append(ConntrackDeletion(fam, None, svc.node_port, ep_ip))
        if not was and now:
            for addr in addresses:
                out.append(ConntrackDeletion(ip_family(addr), addr, svc.port, None))
    return out


def run_conntrack(args: list[str]) -> None:
    """Run one conntrack command; "no entries" (exit 1) is not an error."""
    try:
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        log.warning("conntrack is not installed: stale UDP entries are not flushed")
        return
    if proc.returncode not in (0, 1):
        log.warning("%s failed: %s", " ".join(args), proc.stderr.strip())


class ConntrackCleaner:
    def __init__(self, runner: Callable[[list[str]], None] = run_conntrack) -> None:
        self.runner = runner

    def clean(
        self,
        services: Mapping[ServicePortName, ServicePort],
        previous: Mapping[ServicePortName, Sequence[Endpoint]],
        current: Mapping[ServicePortName, Sequence[Endpoint]],
    ) -> int:
        """Delete stale entries; returns how many ``conntrack -D`` filters were run."""
        deletions = stale_udp_deletions(services, previous, current)
        for deletion in deletions:
            self.runner(deletion.args())
        return len(deletions)
