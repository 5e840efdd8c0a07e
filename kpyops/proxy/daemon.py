"""Running the proxy: build the dataplane, sources, servers and loop from a ProxyConfig."""

from __future__ import annotations

import ipaddress
import logging
import threading
from dataclasses import replace
from pathlib import Path

from kpyops.proxy.config import ProxyConfig
from kpyops.proxy.conntrack import ConntrackCleaner
from kpyops.proxy.dataplane import Dataplane, DataplaneError
from kpyops.proxy.dualstack import DualStackDataplane
from kpyops.proxy.health import ProxierHealth
from kpyops.proxy.iptables import IptablesDataplane
from kpyops.proxy.iptables.commands import IptablesCommands
from kpyops.proxy.localnet import DEFAULT_STATE_DIR, enable_route_localnet, restore_route_localnet
from kpyops.proxy.metrics import ProxyMetrics
from kpyops.proxy.model import ip_family
from kpyops.proxy.nftables import NftablesDataplane
from kpyops.proxy.node import (
    NodeInfo,
    fetch_node_info,
    resolve_node_port_addresses,
    with_bind_address,
)
from kpyops.proxy.options import RuleOptions
from kpyops.proxy.proxier import Proxier
from kpyops.proxy.servers import serve_healthz, serve_metrics
from kpyops.proxy.service_health import ServiceHealthServers

log = logging.getLogger(__name__)


def proxy_families(config: ProxyConfig) -> list[int]:
    """IPv4, plus IPv6 when the cluster CIDRs say the cluster is dual-stack or IPv6."""
    return sorted({ip_family(c) for c in config.cluster_cidrs}) or [4]


def _node_port_cidrs(config: ProxyConfig, family: int) -> tuple[str, ...]:
    """nodePortAddresses of one family (keywords already resolved: :func:`node_config`)."""
    return tuple(c for c in config.node_port_addresses if ip_family(c) == family)


def node_config(config: ProxyConfig, node: NodeInfo) -> ProxyConfig:
    """``config`` completed with what is known of the node: nodePortAddresses keywords
    resolved to CIDRs (ConfigError if ``primary`` has no IP to use), and the zone."""
    node = with_bind_address(node, config.bind_address)
    return replace(
        config,
        node_port_addresses=resolve_node_port_addresses(config.node_port_addresses, node),
        node_zone=node.zone,
    )


def health_check_addresses(config: ProxyConfig) -> list[str]:
    """Where health-check node ports listen: every address (IPv4 "any", or IPv6 "any" on
    IPv6-only clusters), or this node's addresses inside the nodePortAddresses CIDRs."""
    families = proxy_families(config)
    nets = [ipaddress.ip_network(c) for f in families for c in _node_port_cidrs(config, f)]
    if not nets:
        return ["::"] if families == [6] else ["0.0.0.0"]
    from kpyops.proxy.ipvs.dataplane import local_addresses

    return [
        addr
        for addr in local_addresses(None, "kube-ipvs0")
        if any(ipaddress.ip_address(addr) in n for n in nets)
        and not ipaddress.ip_address(addr).is_link_local
    ]


def rule_options(config: ProxyConfig, family: int) -> RuleOptions:
    """The rule-based modes' node-wide options (iptables and nftables: each mode has its own
    masquerade settings; localhost NodePorts are an iptables-mode feature only)."""
    mode = config.nftables if config.mode == "nftables" else config.iptables
    return RuleOptions(
        family=family,
        masquerade_bit=mode.masquerade_bit,
        masquerade_all=mode.masquerade_all,
        cluster_cidrs=tuple(c for c in config.cluster_cidrs if ip_family(c) == family),
        node_port_cidrs=_node_port_cidrs(config, family),
        localhost_node_ports=config.mode != "nftables" and config.iptables.localhost_node_ports,
        tcp_be_liberal=config.conntrack.tcp_be_liberal,
        zone=config.node_zone,
        node_name=config.hostname,
    )


def iptables_dataplane(
    config: ProxyConfig, family: int, backend: str = "system"
) -> IptablesDataplane:
    return IptablesDataplane(rule_options(config, family), IptablesCommands(family, backend))


def nftables_dataplane(config: ProxyConfig, family: int) -> NftablesDataplane:
    """nftables mode: no localhost NodePorts (as kube-proxy's nftables mode), so no
    route_localnet."""
    return NftablesDataplane(rule_options(config, family))


def localhost_node_ports(config: ProxyConfig) -> bool:
    """NodePorts answer on 127.0.0.1 (so route_localnet is needed), as kube-proxy decides:
    iptables.localhostNodePorts, IPv4, and nodePortAddresses all or including loopback."""
    if 4 not in proxy_families(config) or not config.iptables.localhost_node_ports:
        return False
    cidrs = _node_port_cidrs(config, 4)
    loopback = ipaddress.ip_network("127.0.0.0/8")
    return not cidrs or any(ipaddress.ip_network(c).overlaps(loopback) for c in cidrs)


def build_dataplane(
    config: ProxyConfig, iptables_backend: str = "system", state_dir: Path = DEFAULT_STATE_DIR
) -> Dataplane:
    """The dataplane of the configured mode; in ipvs mode, raises IpvsUnavailable if the
    kernel cannot do IPVS (the message says what is missing)."""
    if config.mode == "ipvs":
        from kpyops.proxy.ipvs import IpvsDataplane

        planes: list[Dataplane] = [
            IpvsDataplane.for_node(config, f) for f in proxy_families(config)
        ]
    elif config.mode == "nftables":
        planes = [nftables_dataplane(config, f) for f in proxy_families(config)]
    else:
        planes = [iptables_dataplane(config, f, iptables_backend) for f in proxy_families(config)]
        if localhost_node_ports(config):
            enable_route_localnet(state_dir)
    return planes[0] if len(planes) == 1 else DualStackDataplane(planes)


def cleanup_all(
    config: ProxyConfig, iptables_backend: str = "system", state_dir: Path = DEFAULT_STATE_DIR
) -> None:
    """``--cleanup``: remove what every mode creates (iptables mode, the nftables tables of
    both families, and IPVS where possible), and put back route_localnet if the proxy
    changed it."""
    for family in proxy_families(config):
        iptables_dataplane(config, family, iptables_backend).cleanup()
    try:
        for family in (4, 6):
            nftables_dataplane(config, family).cleanup()
    except DataplaneError as err:  # no nft on this node: nothing of it to clean
        log.info("nftables cleanup skipped: %s", err)
    try:
        from kpyops.proxy.ipvs import IpvsDataplane

        for family in proxy_families(config):
            IpvsDataplane(config, family).cleanup()
    except Exception as err:  # no IPVS in this kernel: nothing of it to clean
        log.info("IPVS cleanup skipped: %s", err)
    restore_route_localnet(state_dir)


class ProxyDaemon:
    """The running proxy: servers, a source, and the sync loop, stoppable from a test."""

    def __init__(
        self,
        config: ProxyConfig,
        source_dir: str | None = None,
        poll_interval: float = 0.5,
        iptables_backend: str = "system",
        node: NodeInfo | None = None,
        state_dir: Path = DEFAULT_STATE_DIR,
    ) -> None:
        client = None
        self.node_watch = None
        from_api = node is None and not source_dir  # not given on the command line
        if from_api:
            from kpyops.proxy.sources.api import ApiClient

            client = ApiClient.from_kubeconfig(config.kubeconfig or None)
            node = fetch_node_info(lambda path: client.get_json(path, {}), config.hostname)
        config = node_config(config, node or NodeInfo())
        self.config = config
        self.stop_event = threading.Event()
        self.metrics = ProxyMetrics()
        self.health = ProxierHealth(2 * config.sync_period)
        self.dataplane = build_dataplane(config, iptables_backend, state_dir)
        self.service_health = ServiceHealthServers(
            health_check_addresses(config), self.health.is_healthy
        )
        self.proxier = Proxier(
            self.dataplane,
            hostname=config.hostname,
            sync_period=config.sync_period,
            min_sync_period=config.min_sync_period,
            conntrack=ConntrackCleaner(),
            metrics=self.metrics,
            health=self.health,
            service_health=self.service_health,
        )
        if source_dir:
            from kpyops.proxy.sources.directory import DirectorySource

            self.source = DirectorySource(source_dir, self.proxier, poll_interval)
        else:
            from kpyops.proxy.sources.api import ApiClient, ApiSource
            from kpyops.proxy.sources.node_watch import NodeWatch

            client = client or ApiClient.from_kubeconfig(config.kubeconfig or None)
            self.source = ApiSource(client, self.proxier, resync_period=config.config_sync_period)
            if from_api:
                self.node_watch = NodeWatch(client, config.hostname, node, self._node_changed,
                                            resync_period=config.config_sync_period)
        self.servers = []
        self.exit_code = 0

    def _node_changed(self, what: str) -> None:
        """The Node no longer matches what the dataplanes were built from: stop, exit 1."""
        self.exit_code = 1
        self.stop()

    def run(self) -> None:
        """Serve and sync until :meth:`stop`."""
        if self.config.healthz_bind_address:
            self.servers.append(
                serve_healthz(self.config.healthz_bind_address, self.health, self.metrics)
            )
        if self.config.metrics_bind_address:
            self.servers.append(
                serve_metrics(self.config.metrics_bind_address, self.metrics, self.config.mode)
            )
        source = threading.Thread(
            target=self.source.run, args=(self.stop_event,), name="source", daemon=True
        )
        source.start()
        if self.node_watch is not None:
            threading.Thread(target=self.node_watch.run, args=(self.stop_event,),
                             name="watch-node", daemon=True).start()
        log.info(
            "kpyops proxy running in %s mode as node %s", self.config.mode, self.config.hostname
        )
        self.proxier.runner.loop()
        self.stop_event.set()
        for server in self.servers:
            server.shutdown()
        self.service_health.close_all()

    def stop(self) -> None:
        self.stop_event.set()
        self.proxier.runner.stop()
