"""The ipsets of IPVS mode (as kube-proxy's), reconciled in one ``ipset restore`` batch.

The iptables rules of IPVS mode are constant-size: they match these sets, and a sync only
changes set members. Each sync reads the current members of *our* sets (``ipset save``),
diffs them with the desired members and sends every create/add/del in one
``ipset -exist restore``. Partial syncs know what changed and skip the save: they send
only the members to add and delete (:meth:`IpsetManager.apply_delta`), in one batch too.
Cleanup destroys our sets and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kpyops.proxy.ipvs.tools import ToolRunner

HASH_IP = "hash:ip"
HASH_IP_PORT = "hash:ip,port"
HASH_IP_PORT_IP = "hash:ip,port,ip"
HASH_IP_PORT_NET = "hash:ip,port,net"
BITMAP_PORT = "bitmap:port"
MAX_NAME_LENGTH = 31  # IPSET_MAXNAMELEN - 1


@dataclass(frozen=True)
class SetSpec:
    name: str  # the IPv4 name; IPv6 sets are KUBE-6-<rest>
    type: str
    comment: str

    def name_for(self, family: int) -> str:
        if family == 6:
            return ("KUBE-6-" + self.name.removeprefix("KUBE-"))[:MAX_NAME_LENGTH]
        return self.name

    def create_line(self, family: int) -> str:
        name = self.name_for(family)
        if self.type == BITMAP_PORT:
            return f"create {name} {self.type} range 0-65535"
        inet = "inet6" if family == 6 else "inet"
        return f"create {name} {self.type} family {inet} hashsize 1024 maxelem 65536"


LOOP_BACK = SetSpec(
    "KUBE-LOOP-BACK", HASH_IP_PORT_IP,
    "Kubernetes endpoints dst ip:port, source ip for solving hairpin purpose",
)  # fmt: skip
CLUSTER_IP = SetSpec(
    "KUBE-CLUSTER-IP", HASH_IP_PORT, "Kubernetes service cluster ip + port for masquerade purpose"
)
EXTERNAL_IP = SetSpec(
    "KUBE-EXTERNAL-IP", HASH_IP_PORT, "Kubernetes service external ip + port for masquerade and filter purpose"
)  # fmt: skip
EXTERNAL_IP_LOCAL = SetSpec(
    "KUBE-EXTERNAL-IP-LOCAL", HASH_IP_PORT, "Kubernetes service external ip + port with externalTrafficPolicy=local"
)  # fmt: skip
LOAD_BALANCER = SetSpec("KUBE-LOAD-BALANCER", HASH_IP_PORT, "Kubernetes service lb portal")
LOAD_BALANCER_LOCAL = SetSpec(
    "KUBE-LOAD-BALANCER-LOCAL", HASH_IP_PORT, "Kubernetes service load balancer ip + port with externalTrafficPolicy=local"
)  # fmt: skip
LOAD_BALANCER_FW = SetSpec(
    "KUBE-LOAD-BALANCER-FW", HASH_IP_PORT, "Kubernetes service load balancer ip + port for load balancer with sourceRange"
)  # fmt: skip
LOAD_BALANCER_SOURCE_IP = SetSpec(
    "KUBE-LOAD-BALANCER-SOURCE-IP", HASH_IP_PORT_IP, "Kubernetes service load balancer ip + port + source IP for packet filter purpose"
)  # fmt: skip
LOAD_BALANCER_SOURCE_CIDR = SetSpec(
    "KUBE-LOAD-BALANCER-SOURCE-CIDR", HASH_IP_PORT_NET, "Kubernetes service load balancer ip + port + source cidr for packet filter purpose"
)  # fmt: skip
NODE_PORT_TCP = SetSpec(
    "KUBE-NODE-PORT-TCP", BITMAP_PORT, "Kubernetes nodeport TCP port for masquerade purpose"
)
NODE_PORT_LOCAL_TCP = SetSpec(
    "KUBE-NODE-PORT-LOCAL-TCP", BITMAP_PORT, "Kubernetes nodeport TCP port with externalTrafficPolicy=local"
)  # fmt: skip
NODE_PORT_UDP = SetSpec(
    "KUBE-NODE-PORT-UDP", BITMAP_PORT, "Kubernetes nodeport UDP port for masquerade purpose"
)
NODE_PORT_LOCAL_UDP = SetSpec(
    "KUBE-NODE-PORT-LOCAL-UDP", BITMAP_PORT, "Kubernetes nodeport UDP port with externalTrafficPolicy=local"
)  # fmt: skip
NODE_PORT_SCTP = SetSpec(
    "KUBE-NODE-PORT-SCTP-HASH", HASH_IP_PORT, "Kubernetes nodeport SCTP port for masquerade purpose with type 'hash ip:port'"
)  # fmt: skip
NODE_PORT_LOCAL_SCTP = SetSpec(
    "KUBE-NODE-PORT-LOCAL-SCTP-HASH", HASH_IP_PORT, "Kubernetes nodeport SCTP port with externalTrafficPolicy=local with type 'hash ip:port'"
)  # fmt: skip
HEALTH_CHECK_NODE_PORT = SetSpec(
    "KUBE-HEALTH-CHECK-NODE-PORT", BITMAP_PORT, "Kubernetes health check node port"
)
IPVS_IPS = SetSpec("KUBE-IPVS-IPS", HASH_IP, "IPVS service addresses bound on kube-ipvs0")

ALL_SETS: tuple[SetSpec, ...] = (
    LOOP_BACK, CLUSTER_IP, EXTERNAL_IP, EXTERNAL_IP_LOCAL, LOAD_BALANCER, LOAD_BALANCER_LOCAL,
    LOAD_BALANCER_FW, LOAD_BALANCER_SOURCE_IP, LOAD_BALANCER_SOURCE_CIDR, NODE_PORT_TCP,
    NODE_PORT_LOCAL_TCP, NODE_PORT_UDP, NODE_PORT_LOCAL_UDP, NODE_PORT_SCTP,
    NODE_PORT_LOCAL_SCTP, HEALTH_CHECK_NODE_PORT, IPVS_IPS,
)  # fmt: skip
NODE_PORT_SETS = {"TCP": NODE_PORT_TCP, "UDP": NODE_PORT_UDP, "SCTP": NODE_PORT_SCTP}
NODE_PORT_LOCAL_SETS = {
    "TCP": NODE_PORT_LOCAL_TCP, "UDP": NODE_PORT_LOCAL_UDP, "SCTP": NODE_PORT_LOCAL_SCTP,
}  # fmt: skip


def ip_port(ip: str, protocol: str, port: int) -> str:
    """An ``ip,proto:port`` member, as ``ipset save`` prints it."""
    return f"{ip},{protocol.lower()}:{port}"


def parse_save(text: str, names: Iterable[str]) -> dict[str, set[str]]:
    """Members of the named sets (those that exist) from ``ipset save`` output."""
    wanted = set(names)
    out: dict[str, set[str]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] in wanted:
            if parts[0] == "create":
                out.setdefault(parts[1], set())
            elif parts[0] == "add" and len(parts) >= 3:
                out.setdefault(parts[1], set()).add(parts[2])
    return out


def restore_script(
    family: int,
    desired: Mapping[SetSpec, set[str]],
    current: Mapping[str, set[str]],
) -> tuple[str, int, int]:
    """The ``ipset restore`` input turning ``current`` into ``desired``: (text, adds, dels).

    Every set of ``ALL_SETS`` is created (empty sets are kept, as the iptables rules
    reference them); members are added and deleted by difference.
    """
    lines: list[str] = []
    adds = dels = 0
    for spec in ALL_SETS:
        name = spec.name_for(family)
        want = desired.get(spec, set())
        have = current.get(name)
        if have is None:
            lines.append(spec.create_line(family))
            have = set()
        for member in sorted(have - want):
            lines.append(f"del {name} {member}")
            dels += 1
        for member in sorted(want - have):
            lines.append(f"add {name} {member}")
            adds += 1
    return ("\n".join(lines) + "\n" if lines else ""), adds, dels


def delta_script(
    family: int,
    added: Mapping[SetSpec, Iterable[str]],
    deleted: Mapping[SetSpec, Iterable[str]],
) -> tuple[str, int, int]:
    """The ``ipset -exist restore`` input adding and deleting these members: (text, adds, dels).

    The sets exist already (the last full sync created them); ``-exist`` makes adding a
    present member or deleting an absent one a no-op, so a retry is harmless.
    """
    lines: list[str] = []
    adds = dels = 0
    for spec in ALL_SETS:
        name = spec.name_for(family)
        for member in sorted(deleted.get(spec, ())):
            lines.append(f"del {name} {member}")
            dels += 1
        for member in sorted(added.get(spec, ())):
            lines.append(f"add {name} {member}")
            adds += 1
    return ("\n".join(lines) + "\n" if lines else ""), adds, dels


class IpsetManager:
    """Reads and writes our ipsets through the ``ipset`` tool."""

    def __init__(self, runner: ToolRunner, family: int = 4) -> None:
        self.runner = runner
        self.family = family

    def names(self) -> list[str]:
        return [spec.name_for(self.family) for spec in ALL_SETS]

    def current(self) -> dict[str, set[str]]:
        return parse_save(self.runner.run(["ipset", "save"]), self.names())

    def apply(self, desired: Mapping[SetSpec, set[str]]) -> tuple[int, int]:
        """Reconcile our sets with ``desired`` in one batch; returns (added, deleted)."""
        script, adds, dels = restore_script(self.family, desired, self.current())
        if script:
            self.runner.run(["ipset", "-exist", "restore"], stdin=script)
        return adds, dels

    def apply_delta(
        self,
        added: Mapping[SetSpec, Iterable[str]],
        deleted: Mapping[SetSpec, Iterable[str]],
    ) -> tuple[int, int]:
        """Add and delete these members in one batch, without reading the sets back."""
        script, adds, dels = delta_script(self.family, added, deleted)
        if script:
            self.runner.run(["ipset", "-exist", "restore"], stdin=script)
        return adds, dels

    def destroy(self) -> None:
        """Destroy our sets (after the iptables rules that reference them are gone)."""
        existing = self.current()
        script = "".join(f"destroy {name}\n" for name in self.names() if name in existing)
        if script:
            self.runner.run(["ipset", "restore"], stdin=script)
