"""The constant-size iptables rules of IPVS mode, around the ipsets (as kube-proxy writes them).

Our chains are written with one ``iptables-restore --noflush`` (filter then nat): declaring a
chain flushes it, so every sync rewrites them whole. The jumps from the built-in chains are
ensured one by one (``-C`` then ``-I``), and removed by ``cleanup``, which touches nothing
but these chains and jumps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kpyops.proxy.ipvs import ipset as sets
from kpyops.proxy.ipvs.ipset import SetSpec
from kpyops.proxy.ipvs.tools import ToolRunner

KUBE_SERVICES = "KUBE-SERVICES"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_NODE_PORT = "KUBE-NODE-PORT"
KUBE_LOAD_BALANCER = "KUBE-LOAD-BALANCER"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_PROXY_FIREWALL = "KUBE-PROXY-FIREWALL"
KUBE_SOURCE_RANGES_FIREWALL = "KUBE-SOURCE-RANGES-FIREWALL"
KUBE_IPVS_FILTER = "KUBE-IPVS-FILTER"

NAT_CHAINS = (KUBE_SERVICES, KUBE_POSTROUTING, KUBE_NODE_PORT, KUBE_LOAD_BALANCER, KUBE_MARK_MASQ)
FILTER_CHAINS = (
    KUBE_FORWARD, KUBE_NODE_PORT, KUBE_PROXY_FIREWALL, KUBE_SOURCE_RANGES_FIREWALL,
    KUBE_IPVS_FILTER,
)  # fmt: skip


@dataclass(frozen=True)
class Jump:
    table: str
    chain: str  # built-in chain
    target: str  # our chain
    comment: str

    def spec(self) -> list[str]:
        return ["-m", "comment", "--comment", self.comment, "-j", self.target]


JUMPS = (
    Jump("nat", "OUTPUT", KUBE_SERVICES, "kubernetes service portals"),
    Jump("nat", "PREROUTING", KUBE_SERVICES, "kubernetes service portals"),
    Jump("nat", "POSTROUTING", KUBE_POSTROUTING, "kubernetes postrouting rules"),
    Jump("filter", "FORWARD", KUBE_FORWARD, "kubernetes forwarding rules"),
    Jump("filter", "INPUT", KUBE_NODE_PORT, "kubernetes health check rules"),
    Jump("filter", "INPUT", KUBE_PROXY_FIREWALL, "kube-proxy firewall rules"),
    Jump("filter", "FORWARD", KUBE_PROXY_FIREWALL, "kube-proxy firewall rules"),
    Jump("filter", "INPUT", KUBE_IPVS_FILTER, "kubernetes ipvs access filter"),
)

# (set, table, from chain, to target, match directions, protocol): rules that exist only
# while their set has members, in kube-proxy's order (ipsetWithIptablesChain).
SET_RULES: tuple[tuple[SetSpec, str, str, str, str, str], ...] = (
    (sets.LOOP_BACK, "nat", KUBE_POSTROUTING, "MASQUERADE", "dst,dst,src", ""),
    (sets.LOAD_BALANCER, "nat", KUBE_SERVICES, KUBE_LOAD_BALANCER, "dst,dst", ""),
    (sets.LOAD_BALANCER_LOCAL, "nat", KUBE_LOAD_BALANCER, "RETURN", "dst,dst", ""),
    (sets.LOAD_BALANCER_FW, "filter", KUBE_PROXY_FIREWALL, KUBE_SOURCE_RANGES_FIREWALL, "dst,dst", ""),
    (sets.LOAD_BALANCER_SOURCE_CIDR, "filter", KUBE_SOURCE_RANGES_FIREWALL, "RETURN", "dst,dst,src", ""),
    (sets.LOAD_BALANCER_SOURCE_IP, "filter", KUBE_SOURCE_RANGES_FIREWALL, "RETURN", "dst,dst,src", ""),
    (sets.NODE_PORT_LOCAL_TCP, "nat", KUBE_NODE_PORT, "RETURN", "dst", "tcp"),
    (sets.NODE_PORT_TCP, "nat", KUBE_NODE_PORT, KUBE_MARK_MASQ, "dst", "tcp"),
    (sets.NODE_PORT_LOCAL_UDP, "nat", KUBE_NODE_PORT, "RETURN", "dst", "udp"),
    (sets.NODE_PORT_UDP, "nat", KUBE_NODE_PORT, KUBE_MARK_MASQ, "dst", "udp"),
    (sets.NODE_PORT_LOCAL_SCTP, "nat", KUBE_NODE_PORT, "RETURN", "dst,dst", "sctp"),
    (sets.NODE_PORT_SCTP, "nat", KUBE_NODE_PORT, KUBE_MARK_MASQ, "dst,dst", "sctp"),
    (sets.HEALTH_CHECK_NODE_PORT, "filter", KUBE_NODE_PORT, "ACCEPT", "dst", "tcp"),
)  # fmt: skip


def _q(text: str) -> str:
    return f'"{text}"'


def render(
    family: int,
    nonempty: Iterable[SetSpec],
    masquerade_mark: int = 0x4000,
    masquerade_all: bool = False,
    cluster_cidr: str | None = None,
) -> str:
    """The ``iptables-restore --noflush`` input for our filter and nat chains."""
    live = set(nonempty)

    def name(spec: SetSpec) -> str:
        return spec.name_for(family)

    mark = f"0x{masquerade_mark:x}"
    loopback = "::1/128" if family == 6 else "127.0.0.0/8"
    nat: list[str] = [f"-A {KUBE_SERVICES} -s {loopback} -j RETURN"]
    filt: list[str] = []
    for spec, table, src, target, match, proto in SET_RULES:
        if spec not in live:
            continue
        rule = f"-A {src}" + (f" -p {proto}" if proto else "")
        rule += f" -m comment --comment {_q(spec.comment)} -m set --match-set {name(spec)} {match}"
        (filt if table == "filter" else nat).append(f"{rule} -j {target}")

    if sets.CLUSTER_IP in live:
        rule = (
            f"-A {KUBE_SERVICES} -m comment --comment {_q(sets.CLUSTER_IP.comment)}"
            f" -m set --match-set {name(sets.CLUSTER_IP)}"
        )
        if masquerade_all:
            nat.append(f"{rule} dst,dst -j {KUBE_MARK_MASQ}")
        elif cluster_cidr:
            nat.append(f"{rule} dst,dst ! -s {cluster_cidr} -j {KUBE_MARK_MASQ}")
        else:
            nat.append(f"{rule} src,dst -j {KUBE_MARK_MASQ}")

    def external_ip_rules(rule: str) -> None:
        # accept external-IP traffic from off the machine, or to a local address
        nat.append(f"{rule} -m physdev ! --physdev-is-in -m addrtype ! --src-type LOCAL -j ACCEPT")
        nat.append(f"{rule} -m addrtype --dst-type LOCAL -j ACCEPT")

    for spec, masq in ((sets.EXTERNAL_IP, True), (sets.EXTERNAL_IP_LOCAL, False)):
        if spec in live:
            rule = (
                f"-A {KUBE_SERVICES} -m comment --comment {_q(spec.comment)}"
                f" -m set --match-set {name(spec)} dst,dst"
            )
            if masq:
                nat.append(f"{rule} -j {KUBE_MARK_MASQ}")
            external_ip_rules(rule)

    nat.append(f"-A {KUBE_SERVICES} -m addrtype --dst-type LOCAL -j {KUBE_NODE_PORT}")
    nat.append(f"-A {KUBE_LOAD_BALANCER} -j {KUBE_MARK_MASQ}")
    filt.append(f"-A {KUBE_SOURCE_RANGES_FIREWALL} -j DROP")
    # accept traffic to virtual servers even if later rules would drop it (end of KUBE-SERVICES)
    for spec in (sets.CLUSTER_IP, sets.LOAD_BALANCER):
        if spec in live:
            nat.append(f"-A {KUBE_SERVICES} -m set --match-set {name(spec)} dst,dst -j ACCEPT")

    # KUBE-IPVS-FILTER: only the service ports of kube-ipvs0 addresses are open (#72236)
    for spec in (sets.LOAD_BALANCER, sets.CLUSTER_IP, sets.EXTERNAL_IP, sets.EXTERNAL_IP_LOCAL):
        filt.append(f"-A {KUBE_IPVS_FILTER} -m set --match-set {name(spec)} dst,dst -j RETURN")
    filt.append(
        f"-A {KUBE_IPVS_FILTER} -m set --match-set {name(sets.HEALTH_CHECK_NODE_PORT)} dst -j RETURN"
    )
    filt.append(
        f"-A {KUBE_IPVS_FILTER} -m conntrack --ctstate NEW"
        f" -m set --match-set {name(sets.IPVS_IPS)} dst -j REJECT"
    )

    filt.append(f"-A {KUBE_FORWARD} -m conntrack --ctstate INVALID -j DROP")
    filt.append(
        f"-A {KUBE_FORWARD} -m comment --comment {_q('kubernetes forwarding rules')}"
        f" -m mark --mark {mark}/{mark} -j ACCEPT"
    )
    filt.append(
        f"-A {KUBE_FORWARD} -m comment --comment {_q('kubernetes forwarding conntrack rule')}"
        " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    )

    nat.append(f"-A {KUBE_POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN")
    nat.append(f"-A {KUBE_POSTROUTING} -j MARK --xor-mark {mark}")
    nat.append(
        f"-A {KUBE_POSTROUTING} -m comment --comment"
        f" {_q('kubernetes service traffic requiring SNAT')} -j MASQUERADE --random-fully"
    )
    nat.append(f"-A {KUBE_MARK_MASQ} -j MARK --or-mark {mark}")

    out = ["*filter", *(f":{c} - [0:0]" for c in FILTER_CHAINS), *filt, "COMMIT"]
    out += ["*nat", *(f":{c} - [0:0]" for c in NAT_CHAINS), *nat, "COMMIT"]
    return "\n".join(out) + "\n"


class IptablesRules:
    """Writes and removes IPVS mode's chains and jumps with iptables/ip6tables."""

    def __init__(self, runner: ToolRunner, family: int = 4) -> None:
        self.runner = runner
        self.family = family
        self.binary = "ip6tables" if family == 6 else "iptables"

    def apply(self, text: str) -> None:
        self.runner.run([f"{self.binary}-restore", "-w", "--noflush"], stdin=text)

    def ensure_jumps(self) -> int:
        """Insert the missing jumps from built-in chains; returns how many were added."""
        added = 0
        for jump in JUMPS:
            base = [self.binary, "-w", "-t", jump.table]
            if not self.runner.ok([*base, "-C", jump.chain, *jump.spec()]):
                self.runner.run([*base, "-I", jump.chain, *jump.spec()])
                added += 1
        return added

    def chains_present(self) -> bool:
        """True if all of our chains exist (the canary: someone may have flushed them)."""
        for table, chains in (("nat", NAT_CHAINS), ("filter", FILTER_CHAINS)):
            text = self.runner.run([f"{self.binary}-save", "-t", table], check=False)
            declared = {line[1:].split()[0] for line in text.splitlines() if line.startswith(":")}
            if not set(chains) <= declared:
                return False
        return True

    def remove(self) -> None:
        """Delete our jumps, then flush and delete our chains; safe to run twice."""
        for jump in JUMPS:
            base = [self.binary, "-w", "-t", jump.table]
            while self.runner.ok([*base, "-C", jump.chain, *jump.spec()]):
                self.runner.run([*base, "-D", jump.chain, *jump.spec()])
        present = {
            table: {
                line[1:].split()[0]
                for line in self.runner.run(
                    [f"{self.binary}-save", "-t", table], check=False
                ).splitlines()
                if line.startswith(":")
            }
            for table in ("nat", "filter")
        }
        out = []
        for table, chains in (("filter", FILTER_CHAINS), ("nat", NAT_CHAINS)):
            mine = [c for c in chains if c in present[table]]
            if mine:
                out += [f"*{table}", *(f":{c} - [0:0]" for c in mine)]
                out += [f"-X {c}" for c in mine] + ["COMMIT"]
        if out:
            self.apply("\n".join(out) + "\n")
