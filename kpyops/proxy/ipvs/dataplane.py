"""IpvsDataplane: kube-proxy's IPVS mode behind kpyops' Dataplane interface.

A sync goes in this order:

1. ``kube-ipvs0`` exists and holds the new service addresses;
2. the ipsets get their new members in one ``ipset restore`` batch;
3. the constant-size iptables chains are rewritten with one ``iptables-restore --noflush``
   (and the jumps from built-in chains ensured on full syncs);
4. virtual servers are added or updated, and their real servers reconciled; removed TCP real
   servers are drained first (weight 0) and deleted once they have no connections; UDP and
   SCTP ones are deleted at once;
5. virtual servers nobody wants are deleted, except those inside ``ipvs.excludeCIDRs``, and
   their addresses unbound.

Full syncs (start, hourly, after a failure or a failed canary, a node address change)
rebuild the desired state and reconcile it against what the kernel and the tools report:
``ipset save`` + diff, kube-ipvs0's address list, the virtual servers read back. Partial
syncs cost what the changed service ports cost: the desired state is kept per service port
(:mod:`.aggregate`), and only its difference is applied: ipset add/del lines, addresses
bound or unbound one by one, the changed virtual servers; the iptables chains are rewritten
only when the set of non-empty ipsets (all they depend on) changes.

One dataplane serves one IP family; dual-stack runs two.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from kpyops.proxy.config import ProxyConfig
from kpyops.proxy.dataplane import DataplaneError, SyncResult
from kpyops.proxy.ipvs import ipset as sets
from kpyops.proxy.ipvs import rules
from kpyops.proxy.ipvs.aggregate import StateAggregate
from kpyops.proxy.ipvs.capability import require_ipvs
from kpyops.proxy.ipvs.device import IpvsDevice
from kpyops.proxy.ipvs.ipset import SetSpec
from kpyops.proxy.ipvs.netlink import IpvsClient, KernelIpvsTransport, RealServer, VirtualServer
from kpyops.proxy.ipvs.state import DesiredState, build_state, node_port_addresses
from kpyops.proxy.ipvs.tools import ToolRunner
from kpyops.proxy.model import EndpointsMap, ServiceMap, ServicePortName, ip_family

log = logging.getLogger(__name__)

# sysctls kube-proxy sets in IPVS mode (pkg/proxy/ipvs/proxier.go)
IPVS_SYSCTLS = {
    "net/ipv4/vs/conntrack": "1",  # let iptables SNAT (masquerade) see IPVS connections
    "net/ipv4/vs/expire_nodest_conn": "1",  # drop connections to deleted real servers
    "net/ipv4/vs/expire_quiescent_template": "1",  # and their persistence templates
    "net/ipv4/ip_forward": "1",
}
STRICT_ARP_SYSCTLS = {"net/ipv4/conf/all/arp_ignore": "1", "net/ipv4/conf/all/arp_announce": "2"}


def apply_sysctls(strict_arp: bool, root: Path = Path("/proc/sys")) -> dict[str, str]:
    """Write IPVS mode's sysctls (only those that differ); returns what was written."""
    wanted = dict(IPVS_SYSCTLS)
    if strict_arp:
        wanted.update(STRICT_ARP_SYSCTLS)
    written = {}
    for key, value in wanted.items():
        path = root / key
        if not path.exists():
            raise DataplaneError(f"sysctl {key} is missing (is the ip_vs module loaded?)")
        if path.read_text().strip() != value:
            path.write_text(value + "\n")
            written[key] = value
    return written


def local_addresses(netns: str | None, exclude_link: str) -> list[str]:
    """Every address on this node's interfaces except ``exclude_link`` (kube-ipvs0)."""
    with IPRoute(netns=netns) if netns else IPRoute() as ipr:
        skip = set(ipr.link_lookup(ifname=exclude_link))
        return sorted(
            {
                str(ipaddress.ip_address(a.get_attr("IFA_ADDRESS")))
                for a in ipr.addr("dump")
                if a["index"] not in skip
            }
        )


class IpvsDataplane:
    """Programs IPVS, ``kube-ipvs0``, the ipsets and the iptables chains of one IP family."""

    def __init__(
        self,
        config: ProxyConfig,
        family: int = 4,
        *,
        ipvs: IpvsClient | None = None,
        netns: str | None = None,
        device: IpvsDevice | None = None,
        node_ips: Callable[[], Iterable[str]] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        verify_per_full_sync: int = 1000,
    ) -> None:
        self.config = config
        self.family = family
        self.netns = netns
        self.runner = ToolRunner(netns)
        self.device = device or IpvsDevice(netns=netns)
        self.ipsets = sets.IpsetManager(self.runner, family)
        self.rules = rules.IptablesRules(self.runner, family)
        self._ipvs = ipvs
        self._node_ips = node_ips or (lambda: local_addresses(netns, self.device.name))
        self._clock = clock
        self._applied: dict[tuple[str, str, int], frozenset[RealServer]] = {}
        self._draining: set[tuple[tuple[str, str, int], tuple[str, int]]] = set()
        self._synced = False
        self._failed = False
        self._vs_cache: dict[tuple[str, str, int], VirtualServer] = {}
        self._aggregate = StateAggregate()  # the desired state, per service port
        self._rules_sets: frozenset[SetSpec] | None = None  # non-empty sets the rules match
        self._nodes: list[str] | None = None  # NodePort addresses of the last good sync
        self._verify_cursor = 0
        self.verify_per_full_sync = verify_per_full_sync
        self.exclude = [
            ipaddress.ip_network(c)
            for c in config.ipvs.exclude_cidrs
            if ipaddress.ip_network(c).version == family
        ]
        self.cluster_cidr = next((c for c in config.cluster_cidrs if ip_family(c) == family), None)

    @classmethod
    def for_node(cls, config: ProxyConfig, family: int = 4) -> IpvsDataplane:
        """The production dataplane: checks the kernel first and explains what is missing."""
        require_ipvs(config.ipvs.scheduler)
        apply_sysctls(config.ipvs.strict_arp)
        return cls(config, family)

    @property
    def ipvs(self) -> IpvsClient:
        if self._ipvs is None:
            self._ipvs = IpvsClient(KernelIpvsTransport(self.netns))
        return self._ipvs

    def _excluded(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in net for net in self.exclude)

    def _mine(self, vs: VirtualServer) -> bool:
        return ipaddress.ip_address(vs.address).version == self.family

    # --- sync -----------------------------------------------------------------------------
    def desired(
        self, services: ServiceMap, endpoints: EndpointsMap, nodes: list[str] | None = None
    ) -> DesiredState:
        if nodes is None:
            nodes = self._node_port_ips()
        return build_state(
            services,
            endpoints,
            self.family,
            self.config.ipvs.scheduler,
            nodes,
            zone=self.config.node_zone,
            node_name=self.config.hostname,
        )

    def _node_port_ips(self) -> list[str]:
        return node_port_addresses(self._node_ips(), self.config.node_port_addresses, self.family)

    def _part(
        self,
        services: ServiceMap,
        endpoints: EndpointsMap,
        name: ServicePortName,
        nodes: list[str],
    ) -> DesiredState | None:
        """One service port's desired state (None if it is gone or not of this family)."""
        svc = services.get(name)
        if svc is None:
            return None
        part = self.desired({name: svc}, {name: endpoints.get(name, ())}, nodes)
        return part if part.servers else None

    def sync(
        self,
        services: ServiceMap,
        endpoints: EndpointsMap,
        changed: set[ServicePortName] | None,
    ) -> SyncResult:
        """Full syncs (``changed is None``, the first one, any after a failure, or a node
        address change) rebuild and reconcile everything; partial ones apply the difference
        the changed service ports make, at a cost proportional to them.

        Node addresses are read on full syncs and on periodic ones (``changed`` empty), not
        on every partial one: listing them dumps every address of kube-ipvs0 (2.3 s with
        10,000 bound). A change of node address is thus noticed within ``syncPeriod``.
        """
        t0 = self._clock()
        full = changed is None or not self._synced or self._failed
        nodes = self._nodes if self._nodes is not None and changed else self._node_port_ips()
        if nodes != self._nodes:
            full = True
        try:
            if full:
                return self._sync_full(services, endpoints, nodes, t0)
            assert changed is not None
            return self._sync_partial(services, endpoints, changed, nodes, t0)
        except NetlinkError as err:
            self._failed = True
            raise DataplaneError(f"IPVS netlink request failed: {err}") from err
        except DataplaneError:
            self._failed = True
            raise

    def _render_rules(self, nonempty: frozenset[SetSpec]) -> str:
        return rules.render(
            self.family,
            [spec for spec in sets.ALL_SETS if spec in nonempty],
            masquerade_mark=1 << self.config.iptables.masquerade_bit,
            masquerade_all=self.config.iptables.masquerade_all,
            cluster_cidr=self.cluster_cidr,
        )

    def _sync_full(
        self, services: ServiceMap, endpoints: EndpointsMap, nodes: list[str], t0: float
    ) -> SyncResult:
        """Everything reconciled against what the kernel and the tools report."""
        self._nodes = None  # until this sync succeeds
        parts = ((name, self._part(services, endpoints, name, nodes)) for name in services)
        self._aggregate.reset((name, part) for name, part in parts if part is not None)
        state = self._aggregate.state()
        nonempty = self._aggregate.nonempty_sets()
        rules_text = self._render_rules(nonempty)
        t1 = self._clock()
        d: dict[str, float] = {}
        self.device.ensure()
        d["addresses_bound"], _ = self.device.reconcile(state.bound, self.family, unbind=False)
        t_ipset = self._clock()
        d["ipset_added"], d["ipset_deleted"] = self.ipsets.apply(state.ipsets)
        t_ipt = self._clock()
        self.rules.apply(rules_text)
        self._rules_sets = nonempty
        d["jumps_added"] = self.rules.ensure_jumps()
        t_ipvs = self._clock()
        if not self._synced:
            self._set_timeouts()
        self._sync_ipvs(state, d)
        t_end = self._clock()
        _, d["addresses_unbound"] = self.device.reconcile(state.bound, self.family)
        self._synced_ok(nodes)
        return self._result(True, len({state.owners[k] for k in state.servers}), d, t0, t1,
                            (t_ipset, t_ipt, t_ipvs, t_end))  # fmt: skip

    def _sync_partial(
        self,
        services: ServiceMap,
        endpoints: EndpointsMap,
        changed: set[ServicePortName],
        nodes: list[str],
        t0: float,
    ) -> SyncResult:
        """Only the difference the changed service ports make; nothing is read back."""
        delta = self._aggregate.replace(
            {name: self._part(services, endpoints, name, nodes) for name in changed}
        )
        nonempty = self._aggregate.nonempty_sets()
        rules_text = self._render_rules(nonempty) if nonempty != self._rules_sets else None
        t1 = self._clock()
        d: dict[str, float] = {}
        d["addresses_bound"] = self.device.bind(delta.bound_added)
        t_ipset = self._clock()
        d["ipset_added"], d["ipset_deleted"] = self.ipsets.apply_delta(
            delta.members_added, delta.members_deleted
        )
        t_ipt = self._clock()
        d["rules_written"] = 0
        if rules_text is not None:
            self.rules.apply(rules_text)
            self._rules_sets = nonempty
            d["rules_written"] = 1
        t_ipvs = self._clock()
        self._sync_ipvs_keys(delta.servers, d)
        t_end = self._clock()
        d["addresses_unbound"] = self.device.unbind(delta.bound_deleted)
        self._synced_ok(nodes)
        return self._result(False, len(changed), d, t0, t1, (t_ipset, t_ipt, t_ipvs, t_end))

    def _synced_ok(self, nodes: list[str]) -> None:
        self._synced = True
        self._failed = False
        self._nodes = nodes

    def _result(
        self,
        full: bool,
        written: int,
        d: dict[str, float],
        t0: float,
        t1: float,
        marks: tuple[float, float, float, float],
    ) -> SyncResult:
        t_ipset, t_ipt, t_ipvs, t_end = marks
        t2 = self._clock()
        d.update(
            ipset_seconds=t_ipt - t_ipset,
            iptables_seconds=t_ipvs - t_ipt,
            ipvs_seconds=t_end - t_ipvs,
        )
        return SyncResult(
            full=full,
            services_written=written,
            objects_deleted=int(d["vs_deleted"] + d["rs_deleted"] + d["ipset_deleted"]),
            compute_seconds=t1 - t0,
            apply_seconds=t2 - t1,
            details=d,
        )

    def _set_timeouts(self) -> None:
        """ipvs.tcpTimeout/tcpFinTimeout/udpTimeout, if any is set (0 keeps the kernel's)."""
        c = self.config.ipvs
        timeouts = (int(c.tcp_timeout), int(c.tcp_fin_timeout), int(c.udp_timeout))
        if any(timeouts):
            self.ipvs.set_timeouts(*timeouts)

    @staticmethod
    def _zero_counters(d: dict[str, float]) -> None:
        for k in ("vs_added", "vs_updated", "vs_deleted", "rs_added", "rs_updated",
                  "rs_deleted", "rs_draining", "rs_verified"):  # fmt: skip
            d[k] = 0

    def _sync_ipvs(self, state: DesiredState, d: dict[str, float]) -> None:
        """Virtual and real servers, all of them (full syncs).

        The kernel's virtual servers are read back, and the real servers of up to
        ``verify_per_full_sync`` of them, in rotation, so drift is repaired within a few
        sync periods at any scale. Partial syncs (:meth:`_sync_ipvs_keys`) trust what this
        process last applied and only touch what changed: reading back 20,000 virtual
        servers would cost seconds per endpoint change.
        """
        self._zero_counters(d)
        current = {vs.key: vs for vs in self.ipvs.list_virtual_servers() if self._mine(vs)}
        verify = self._verify_slice(sorted(state.servers))
        draining_keys = {k for k, _ in self._draining}
        for key, vs in state.servers.items():
            check = key in draining_keys or key in verify
            self._sync_server(vs, state.real_servers[key], current.get(key), check, d)

        kept = {}
        for key, vs in current.items():
            if key in state.servers:
                continue
            if self._excluded(vs.address):
                kept[key] = vs
                continue
            self._delete_server(vs, d)
        self._vs_cache = {**kept, **state.servers}

    def _sync_ipvs_keys(self, keys: set[tuple[str, str, int]], d: dict[str, float]) -> None:
        """Virtual and real servers at ``keys`` (and those still draining), from the cache."""
        self._zero_counters(d)
        draining_keys = {k for k, _ in self._draining}
        for key in sorted(keys | draining_keys):
            have = self._vs_cache.get(key)
            wanted = self._aggregate.server(key)
            if wanted is not None:
                vs, real = wanted
                self._sync_server(vs, real, have, key in draining_keys, d)
                self._vs_cache[key] = vs
            elif have is not None and not self._excluded(have.address):
                self._delete_server(have, d)
                del self._vs_cache[key]

    def _sync_server(
        self,
        vs: VirtualServer,
        wanted: frozenset[RealServer],
        have: VirtualServer | None,
        check: bool,
        d: dict[str, float],
    ) -> None:
        """One virtual server and its real servers; ``check`` reads the real servers back
        even if what we last applied is what is wanted."""
        if have is None:
            self.ipvs.add_virtual_server(vs)
            d["vs_added"] += 1
            real: list[RealServer] = []
        else:
            if have != vs:
                self.ipvs.update_virtual_server(vs)
                d["vs_updated"] += 1
            if self._applied.get(vs.key) == wanted and not check:
                return
            real = self.ipvs.list_real_servers(vs)
            d["rs_verified"] += 1
        self._sync_real_servers(vs, real, wanted, d)
        self._applied[vs.key] = wanted

    def _delete_server(self, vs: VirtualServer, d: dict[str, float]) -> None:
        self.ipvs.delete_virtual_server(vs)
        d["vs_deleted"] += 1
        self._applied.pop(vs.key, None)
        self._draining = {x for x in self._draining if x[0] != vs.key}

    def _verify_slice(self, keys: list[tuple[str, str, int]]) -> set[tuple[str, str, int]]:
        """The virtual servers whose real servers this full sync reads back (rotating)."""
        limit = self.verify_per_full_sync
        if len(keys) <= limit or not self._synced or self._failed:
            return set(keys)
        start = self._verify_cursor % len(keys)
        self._verify_cursor = start + limit
        chosen = keys[start : start + limit]
        return set(chosen + keys[: max(0, limit - len(chosen))])

    def _sync_real_servers(
        self,
        vs: VirtualServer,
        real: list[RealServer],
        wanted: frozenset[RealServer],
        d: dict[str, float],
    ) -> None:
        have = {rs.key: rs for rs in real}
        want = {rs.key for rs in wanted}
        for rs in sorted(wanted):
            cur = have.get(rs.key)
            if cur is None:
                self.ipvs.add_real_server(vs, rs)
                d["rs_added"] += 1
            elif cur.weight != rs.weight:
                self.ipvs.update_real_server(vs, rs)  # back from draining
                d["rs_updated"] += 1
            self._draining.discard((vs.key, rs.key))
        for key, cur in sorted(have.items()):
            if key in want:
                continue
            idle = cur.active_conns + cur.inactive_conns == 0
            if vs.protocol != "TCP" or idle:
                try:
                    self.ipvs.delete_real_server(vs, cur)
                except NetlinkError as err:
                    if err.code != errno.ENOENT:
                        raise
                self._draining.discard((vs.key, key))
                d["rs_deleted"] += 1
            else:
                if cur.weight != 0:
                    drained = RealServer(cur.address, cur.port, weight=0)
                    self.ipvs.update_real_server(vs, drained)
                self._draining.add((vs.key, key))
                d["rs_draining"] += 1

    # --- canary and cleanup -----------------------------------------------------------------
    def check_canary(self) -> bool:
        """False if our chains or kube-ipvs0 disappeared since the last sync."""
        if not self._synced:
            return True
        return self.rules.chains_present() and self.device.exists()

    def cleanup(self, flush_ipvs_state: bool = True) -> None:
        """Remove our virtual servers, chains, ipsets and kube-ipvs0; safe to run twice.

        Virtual servers are ours if their address is bound on kube-ipvs0, or if their port
        is one of our NodePorts (from the KUBE-NODE-PORT-* sets), or if this process made
        them; those inside ``ipvs.excludeCIDRs`` are kept.
        """
        if flush_ipvs_state:
            self._cleanup_virtual_servers()
        self.rules.remove()
        self.ipsets.destroy()
        self.device.delete()
        self._applied.clear()
        self._draining.clear()
        self._vs_cache.clear()
        self._aggregate.reset(())
        self._rules_sets = None
        self._nodes = None
        self._synced = False

    def _cleanup_virtual_servers(self) -> None:
        bound = self.device.addresses()
        members = self.ipsets.current()
        node_ports: set[tuple[str, int]] = set()
        for proto, spec in sets.NODE_PORT_SETS.items():
            for member in members.get(spec.name_for(self.family), ()):
                port = member.rsplit(":", 1)[-1]
                node_ports.add((proto, int(port)))
        try:
            current = self.ipvs.list_virtual_servers()
        except NetlinkError as err:
            if err.code == errno.ENOENT:
                return  # no IPVS in this kernel: nothing could have been created
            raise
        except DataplaneError:
            return
        for vs in current:
            if not self._mine(vs) or self._excluded(vs.address):
                continue
            if (
                vs.address in bound
                or (vs.protocol, vs.port) in node_ports
                or vs.key in self._applied
            ):
                self.ipvs.delete_virtual_server(vs)
